/* fuzz_options.c -- libFuzzer target: the option-table readers of the Lua binding. One LuaJIT
 * state loads duel (luaopen_duel_core as duel.core, the Lua modules from lua/); each input is a
 * sequence of calls to the public entry points listed in options_driver.lua (duel.F ops, duel.nn
 * constructors and their forward, duel.optim constructors and a step, duel.gan losses) with
 * arguments decoded from the bytes: any type, NaN/inf, huge and negative numbers, nested option
 * tables. Every call runs under pcall: a Lua error is fine, a crash, sanitizer report or Lua
 * panic is a finding. options_replay.lua decodes inputs the same way, in Lua.
 *
 * Run from the repository root (duel.lua and lua/ are found by relative path). Numbers
 * decoded from raw bytes are folded into [-64, 64] unless they are non-finite, tiny or beyond
 * 2^53: a legal size in between (say 2^30) would only ask for more memory than the fuzzer's
 * limit, not test a reader. */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int luaopen_duel_core(lua_State *L);

typedef struct {
    const uint8_t *p;
    size_t n;
} input;

static unsigned byte(input *in) {
    if (!in->n) return 0;
    in->n--;
    return *in->p++;
}

static double number(input *in) {
    static const double special[] = {NAN, INFINITY, -INFINITY, -0.0, 0.0, 1.0, -1.0, 0.5,
                                     1e-300, 1e300, -1e300, 9007199254740992.0,
                                     9223372036854775808.0, -9007199254740992.0, 3.0, 2.0};
    unsigned k = byte(in);
    if (k < 96) return (double)(int)(k % 73) - 8; /* small whole numbers, -8..64 */
    if (k < 192) return special[k % 16];
    double d = 0;
    uint8_t b[8] = {0};
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)byte(in);
    memcpy(&d, b, 8);
    if (isfinite(d) && fabs(d) >= 1 && fabs(d) < 9007199254740992.0) d = fmod(d, 64.0);
    return d;
}

static const char *words[] = {"zero", "reflect", "replicate", "nearest", "bilinear",
                              "nonsaturating", "hinge", "wasserstein", "lsgan", "relativistic",
                              "mean", "sum", "none", "", "Conv2d", "x"};
static const char *keys[] = {"stride", "padding", "dilation", "groups", "bias", "mode",
                             "scale", "output_padding", "eps", "momentum", "affine",
                             "track_running_stats", "lr", "beta1", "beta2", "betas",
                             "weight_decay", "nesterov", "dampening", "alpha", "centered",
                             "kernel_size", "size", "scale_factor", "reduction", "weight",
                             "training", "p", "negative_slope", "dim", "ignore_index", "bogus"};

static void value(lua_State *L, input *in, int depth);

static void tensor(lua_State *L, input *in) {
    unsigned b = byte(in);
    int nd = (int)(b % 5);
    lua_getglobal(L, "MK");
    lua_createtable(L, nd, 0);
    for (int d = 0; d < nd; d++) {
        lua_pushinteger(L, (lua_Integer)(byte(in) % 7)); /* sizes 0..6: empty tensors too */
        lua_rawseti(L, -2, d + 1);
    }
    lua_pushboolean(L, (b >> 3) & 1);
    if ((b >> 4) & 1)
        lua_pushnumber(L, number(in));
    else
        lua_pushnil(L);
    lua_call(L, 3, 1);
}

static void value(lua_State *L, input *in, int depth) {
    luaL_checkstack(L, 8, "fuzz_options");
    unsigned k = byte(in);
    switch (k % 10) {
    case 0: lua_pushnil(L); break;
    case 1: lua_pushboolean(L, (k >> 4) & 1); break;
    case 2:
    case 3: lua_pushnumber(L, number(in)); break;
    case 4: lua_pushstring(L, words[(k >> 4) % 16]); break;
    case 5:
    case 6: tensor(L, in); break;
    case 7: { /* an array */
        int n = depth > 2 ? 0 : (int)((k >> 4) % 5);
        lua_createtable(L, n, 0);
        for (int i = 0; i < n; i++) {
            value(L, in, depth + 1);
            lua_rawseti(L, -2, i + 1);
        }
        break;
    }
    case 8: { /* an options table */
        int n = depth > 2 ? 0 : (int)((k >> 4) % 5);
        lua_createtable(L, 0, n);
        for (int i = 0; i < n; i++) {
            value(L, in, depth + 1);
            lua_setfield(L, -2, keys[byte(in) % 32]);
        }
        break;
    }
    default: lua_pushnumber(L, (double)(int)((k >> 4) % 8)); break;
    }
}

static lua_State *L;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!L) {
        L = luaL_newstate();
        luaL_openlibs(L);
        lua_getglobal(L, "package");
        lua_getfield(L, -1, "preload");
        lua_pushcfunction(L, luaopen_duel_core);
        lua_setfield(L, -2, "duel.core");
        lua_pop(L, 2);
        if (luaL_dofile(L, "tests/fuzz/options_driver.lua")) abort();
        /* The readers, not the kernels, are the target: run them on im2col + OpenBLAS. oneDNN
         * keeps what it builds for each new shape (primitives, JIT code), so an input that meets
         * a new shape ends with more mallocs than frees, which makes libFuzzer run LeakSanitizer
         * mid-run; that then reported a tensor from MK, which a single replay of the input does
         * not leak. `make check` runs the whole suite on oneDNN under LeakSanitizer at exit
         * (the Lua state closed first) with no report. */
        if (luaL_dostring(L, "local d = require 'duel' d.set_conv_backend('gemm') "
                             "d.set_sgemm_backend('openblas')"))
            abort();
    }
    input in = {data, size};
    for (int call = 0; call < 8 && in.n; call++) {
        int top = lua_gettop(L);
        lua_getglobal(L, "CALL");
        lua_pushinteger(L, (lua_Integer)byte(&in));
        int nargs = (int)(byte(&in) % 6);
        for (int a = 0; a < nargs; a++) value(L, &in, 0);
        lua_call(L, 1 + nargs, 0); /* CALL itself never raises: it pcalls */
        lua_settop(L, top);
    }
    lua_gc(L, LUA_GCCOLLECT, 0); /* finalise this input's tensors before the next */
    return 0;
}
