#!/bin/sh
# jupyter/run_notebooks.sh [-o OUTDIR] NOTEBOOK...: execute notebooks headlessly (nbconvert) through
# the duel kernel, installed for this run into a temporary JUPYTER_PATH (nothing is written under
# the user's home). Executed copies go to OUTDIR (default: a new /tmp/duel-notebooks.* folder).
# The exit status is non-zero when any cell fails. `make notebooks` runs this on notebooks/*.ipynb.
set -e
out=
if [ "$1" = -o ]; then out=$2; shift 2; fi
[ $# -gt 0 ] || { echo "usage: jupyter/run_notebooks.sh [-o OUTDIR] NOTEBOOK..." >&2; exit 2; }
jp=$(mktemp -d /tmp/duel-jupyter.XXXXXX)
trap 'rm -rf "$jp"' EXIT
[ -n "$out" ] || out=$(mktemp -d /tmp/duel-notebooks.XXXXXX)
"$(dirname "$0")/install.sh" "$jp" >/dev/null
JUPYTER_PATH="$jp" JUPYTER_RUNTIME_DIR="$jp/runtime" IPYTHONDIR="$jp/ipython" \
  PYDEVD_DISABLE_FILE_VALIDATION=1 "${JUPYTER:-/usr/bin/jupyter}" nbconvert --to notebook \
  --execute --ExecutePreprocessor.timeout="${NB_TIMEOUT:-600}" --output-dir "$out" "$@"
echo "executed notebooks in $out"
