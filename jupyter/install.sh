#!/bin/sh
# jupyter/install.sh DIR: install the duel kernelspec as DIR/kernels/duel, with this checkout's
# absolute path written into kernel.json. Jupyter finds it when DIR is on JUPYTER_PATH (or DIR is
# a standard data dir such as ~/.local/share/jupyter). Tests install into a temporary DIR.
set -e
[ -n "$1" ] || { echo "usage: jupyter/install.sh DIR  (kernels/duel is created under DIR)" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
case "$here" in *'|'*|*'&'*|*'\'*|*'"'*) echo "install.sh: unsupported characters in path $here" >&2; exit 2;; esac
mkdir -p "$1/kernels/duel"
sed "s|@JUPYTER_DIR@|$here|" "$here/kernelspec/kernel.json" > "$1/kernels/duel/kernel.json"
echo "installed $1/kernels/duel/kernel.json"
