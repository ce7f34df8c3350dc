# duel -- build, test and install. Every variable can be overridden (LuaRocks passes its own).
LUA_INCDIR ?= /usr/include/luajit-2.1
LUA ?= luajit
CC ?= gcc
# -O3 vectorises the elementwise kernels (205 loops against 25 at -O2); -fno-trapping-math lets
# it if-convert their selects (relu, leaky_relu, tanh) and -fno-math-errno inline sqrt (randn).
# None of them reorders float arithmetic.
OPTFLAGS ?= -O3 -march=native -fno-trapping-math -fno-math-errno
CFLAGS ?= $(OPTFLAGS) -fPIC
LIBFLAG ?= -shared
DUEL_CFLAGS = -std=c11 -D_GNU_SOURCE -Wall -Wextra -fopenmp -Icsrc
LDLIBS = -lopenblas -lgomp -lm -lz -lpthread
LIBDIR ?= /usr/local/lib/lua/5.1
LUADIR ?= /usr/local/share/lua/5.1
BINDIR ?= /usr/local/bin
BUILD ?= build

# Debian packages the build and the tests need; `make deps` installs the missing ones.
DEPS = gcc make luajit libluajit-5.1-dev luarocks libopenblas-dev libstb-dev zlib1g-dev libdnnl-dev dataset-fashion-mnist libedit2 bsdutils \
  libopenmpi-dev openmpi-bin

# the notebook stage (make notebooks, tests/test_notebooks.lua, which skips without Jupyter)
DEPS += jupyter-nbconvert python3-ipykernel jupyter-client python3-nbclient

# every op family is one file in csrc/ops/, every binding family one file in csrc/lua/
CORE_SRC = $(wildcard csrc/*.c csrc/ops/*.c)
BIND_SRC = $(wildcard csrc/lua/*.c)
HEADERS = $(wildcard csrc/*.h csrc/lua/*.h)

CORE_OBJ = $(CORE_SRC:%.c=$(BUILD)/obj/%.o)
BIND_OBJ = $(BIND_SRC:%.c=$(BUILD)/obj/%.o)
MODULE = lua/duel/core.so
TEST_CORE = $(BUILD)/test_core

# duel.mpi, the optional MPI backend of duel.dist (csrc/mpi/): built beside the core module when
# mpi.h is found (libopenmpi-dev; flags from pkg-config or mpicc); without it duel.dist runs as
# one process. It links the core from its own folder (rpath $ORIGIN), so both share one core.
MPI_CFLAGS ?= $(shell pkg-config --cflags ompi-c 2>/dev/null || mpicc --showme:compile 2>/dev/null)
MPI_LIBS ?= $(shell pkg-config --libs ompi-c 2>/dev/null || mpicc --showme:link 2>/dev/null)
HASH := \#
HAVE_MPI := $(shell echo '$(HASH)include <mpi.h>' | $(CC) $(MPI_CFLAGS) -fsyntax-only -x c - >/dev/null 2>&1 && echo 1)
MPI_MODULE = $(dir $(MODULE))mpi.so

# oneDNN (libdnnl-dev), the convolution backend (csrc/ops/conv_dnnl.c) where its header is found;
# without it every convolution takes conv.c's im2col + OpenBLAS path.
HAVE_DNNL := $(shell echo '$(HASH)include <oneapi/dnnl/dnnl.h>' | $(CC) -fsyntax-only -x c - >/dev/null 2>&1 && echo 1)
ifeq ($(HAVE_DNNL),1)
DUEL_CFLAGS += -DDUEL_DNNL
LDLIBS += -ldnnl
endif
# the two objects that read DUEL_DNNL are rebuilt when its detection changes (a build made before
# `make deps` installed the header, say): their stamp's name says which way it went
DNNL_STAMP = $(BUILD)/dnnl-$(if $(HAVE_DNNL),on,off).stamp
MPI_TARGET = $(if $(HAVE_MPI),$(MPI_MODULE))

.PHONY: all deps test check valgrind fuzz bench bench-compare demo demo-autograd results module mpi install clean

all: $(MODULE) $(TEST_CORE) $(MPI_TARGET)

$(BUILD)/obj/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(DUEL_CFLAGS) -I$(LUA_INCDIR) -c $< -o $@

$(DNNL_STAMP):
	@mkdir -p $(dir $@)
	@rm -f $(BUILD)/dnnl-*.stamp
	@touch $@

$(BUILD)/obj/csrc/ops/conv_dnnl.o $(BUILD)/obj/csrc/parallel.o: $(DNNL_STAMP)

$(MODULE): $(CORE_OBJ) $(BIND_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LIBFLAG) $(CFLAGS) -fopenmp -Wl,-z,nodelete -o $@.tmp $^ $(LDLIBS)
	@mv -f $@.tmp $@ # a new file, not one rewritten in place under a process that has it loaded

$(MPI_MODULE): csrc/mpi/l_mpi.c csrc/duel.h $(MODULE)
	$(CC) $(LIBFLAG) $(CFLAGS) $(DUEL_CFLAGS) -I$(LUA_INCDIR) $(MPI_CFLAGS) -o $@.tmp $< \
	  -L$(dir $(MODULE)) -l:$(notdir $(MODULE)) -Wl,-rpath,'$$ORIGIN' -Wl,-z,nodelete $(MPI_LIBS)
	@mv -f $@.tmp $@

mpi: $(MPI_MODULE)

$(TEST_CORE): tests/c/test_core.c $(CORE_OBJ)
	$(CC) $(CFLAGS) $(DUEL_CFLAGS) -o $@ $^ $(LDLIBS)

deps:
	@missing=""; for p in $(DEPS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# The test runner prints one closing line "N passed, N failed" and exits non-zero on failure.
test: deps
	@$(MAKE) --no-print-directory all
	$(LUA) tests/run.lua

# AddressSanitizer + UBSan build of the same module and tests. LuaJIT itself is not
# instrumented, so the ASan runtime is preloaded into it.
# CFLAGS is passed whole (not via OPTFLAGS) so that a CFLAGS in the environment cannot drop
# the sanitizer flags. libdnnl, where the module links it, is preloaded too (by its soname's
# file: a symlink's name costs the loader an allocation that LSan reports): loaded later, through
# dlopen() of the core, its thread-local storage makes GCC 12's LeakSanitizer segfault at exit
# ("Tracer caught signal 11"). tests/lsan.supp suppresses only OpenBLAS's own allocations;
# tests/run.lua closes the Lua state at exit, so every tensor is finalised before LSan looks.
ASAN_FLAGS = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
# stb_image_write's JPEG writer, compiled into csrc/image.c, shifts a negative int left (UB that
# upstream stb keeps); that one object is exempt from the shift-base check, nothing else.
build/asan/obj/csrc/image.o: override CFLAGS += -fno-sanitize=shift-base
check: deps
	@mkdir -p build/asan/duel
	@$(MAKE) --no-print-directory BUILD=build/asan MODULE=build/asan/duel/core.so \
	  CFLAGS="$(ASAN_FLAGS) -fPIC" build/asan/duel/core.so build/asan/test_core \
	  $(if $(HAVE_MPI),build/asan/duel/mpi.so)
	preload="$$($(CC) -print-file-name=libasan.so)"; \
	if ldd build/asan/duel/core.so | grep -q libdnnl; then \
	  preload="$$preload $$($(CC) -print-file-name=libdnnl.so.2)"; fi; \
	LD_PRELOAD="$$preload" \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 \
	  DUEL_TEST_CORE=build/asan/test_core DUEL_CPATH="build/asan/?.so" $(LUA) tests/run.lua

# The C core tests under valgrind: a plain -O1 -g build (no sanitizers), one thread so OpenMP's
# and OpenBLAS's pools stay out of the way; any memory error or definite leak fails the target.
valgrind:
	@mkdir -p build/valgrind
	@$(MAKE) --no-print-directory BUILD=build/valgrind CFLAGS="-O1 -g -fPIC" build/valgrind/test_core
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 valgrind -q --error-exitcode=99 --leak-check=full \
	  --show-leak-kinds=definite --errors-for-leak-kinds=definite build/valgrind/test_core

# libFuzzer targets (tests/fuzz/): clang-14 builds the core (and, for the option readers, the
# binding) with -fsanitize=fuzzer,address,undefined; each target runs FUZZ_SECONDS on a scratch
# copy of its committed corpus plus its regression inputs. Crashers land in build/fuzz/.
FUZZ_DEPS = clang-14 libclang-rt-14-dev
FUZZ_SECONDS ?= 60
FUZZ_TARGETS = image safetensors idx options
FUZZ_FLAGS = -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined \
  -fno-sanitize-recover=undefined
build/fuzz/obj/csrc/image.o: override CFLAGS += -fno-sanitize=shift-base
fuzz:
	@$(MAKE) --no-print-directory deps DEPS="$(FUZZ_DEPS)"
	@$(MAKE) --no-print-directory BUILD=build/fuzz CC=clang-14 CFLAGS="$(FUZZ_FLAGS)" \
	  $(FUZZ_TARGETS:%=build/fuzz/fuzz_%)
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p build/fuzz/work/$$t tests/fuzz/regressions/$$t && \
	  echo "== fuzz_$$t: $(FUZZ_SECONDS) s" && \
	  OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 build/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) \
	    -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix=build/fuzz/crash-$$t- \
	    build/fuzz/work/$$t tests/fuzz/corpus/$$t tests/fuzz/regressions/$$t \
	    >build/fuzz/$$t.log 2>&1; rc=$$?; \
	  grep -E "^Done|stat::number_of_executed_units|stat::peak_rss" build/fuzz/$$t.log; \
	  [ $$rc -eq 0 ] || { tail -40 build/fuzz/$$t.log; exit 1; }; \
	done

$(BUILD)/fuzz_options: tests/fuzz/fuzz_options.c $(CORE_OBJ) $(BIND_OBJ)
	$(CC) $(CFLAGS) -fsanitize=fuzzer $(DUEL_CFLAGS) -I$(LUA_INCDIR) -o $@ $^ $(LDLIBS) -lluajit-5.1

$(BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(CORE_OBJ)
	$(CC) $(CFLAGS) -fsanitize=fuzzer $(DUEL_CFLAGS) -o $@ $^ $(LDLIBS)

bench: all
	$(LUA) bench/ops.lua
	$(LUA) bench/conv.lua

# duel vs PyTorch training steps, sides alternating (bench/compare.lua: BENCH_ROUNDS, BENCH_CASES)
bench-compare: all
	$(LUA) bench/compare.lua

# the headline: CycleGAN's default run (Sneaker <-> Ankle boot); outputs in runs/cyclegan-<time>/
demo: deps
	@$(MAKE) --no-print-directory all
	$(LUA) experiments/cyclegan.lua

demo-autograd: deps
	@$(MAKE) --no-print-directory all
	$(LUA) experiments/autograd_demo.lua

# notebooks/*.ipynb executed headlessly through the duel Jupyter kernel (docs/notebooks.md), which
# jupyter/run_notebooks.sh installs into a temporary JUPYTER_PATH; executed copies go to NB_OUT
# (default: a new /tmp folder). A failing cell fails the target.
.PHONY: notebooks notebooks-install
notebooks: $(MODULE)
	jupyter/run_notebooks.sh $(if $(NB_OUT),-o $(NB_OUT)) notebooks/*.ipynb

# the kernelspec for interactive use, with this checkout's absolute path: JUPYTER_DIR/kernels/duel
JUPYTER_DIR ?= $(HOME)/.local/share/jupyter
notebooks-install:
	jupyter/install.sh $(JUPYTER_DIR)

# every default experiment for seeds 1-3, scored (experiments/evaluate.lua) into results/summary.json
# and RESULTS.md; RESULTS_ONLY=name,... and RESULTS_SEEDS=1,... rerun a part (tools/results.lua)
results: deps
	@$(MAKE) --no-print-directory all
	$(LUA) tools/results.lua

# the Lua module alone (what `luarocks make` builds: build_target = "module")
module: $(MODULE) $(MPI_TARGET)

install: $(MODULE) $(MPI_TARGET)
	mkdir -p $(LIBDIR)/duel $(LUADIR)/duel
	cp $(MODULE) $(LIBDIR)/duel/core.so
	[ -z "$(MPI_TARGET)" ] || cp $(MPI_MODULE) $(LIBDIR)/duel/mpi.so
	cd lua && find duel \( -name '*.lua' -o -name '*.safetensors' \) -exec install -D -m 644 {} $(LUADIR)/{} \;
	[ -z "$(BINDIR)" ] || install -D -m 755 bin/duel $(BINDIR)/duel # LuaRocks: BINDIR= (install.bin)

clean:
	rm -rf build $(MODULE) $(MPI_MODULE)
