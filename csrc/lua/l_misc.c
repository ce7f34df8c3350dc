/* l_misc.c -- RNG, threads, and the _core internals used by tests and Lua helpers. */
#include "l_util.h"
#include <math.h>
#include <time.h>

static int l_manual_seed(lua_State *L) {
    double s = l_checknumber(L, 1, "manual_seed", "seed");
    if (!isfinite(s) || s != floor(s) || fabs(s) > 9007199254740992.0)
        return luaL_error(L, "manual_seed: seed must be a finite whole number, got %s",
                          lua_tostring(L, 1));
    duel_manual_seed((uint64_t)(int64_t)s);
    return 0;
}

/* duel.clock(): monotonic seconds, for timing steps without FFI declarations in every script */
static int l_clock(lua_State *L) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9);
    return 1;
}

static int l_set_num_threads(lua_State *L) {
    int64_t n = l_checkint(L, 1, "set_num_threads", "thread count");
    if (n < 1 || n > 1024)
        return luaL_error(L, "set_num_threads: need a thread count in [1, 1024], got %lld",
                          (long long)n);
    if (duel_set_num_threads((int)n)) return l_error(L);
    return 0;
}

/* duel.set_conv_backend('onednn' | 'gemm'), set_sgemm_backend('onednn' | 'openblas'); the
 * getters return the name in use */
static int set_backend(lua_State *L, const char *op, const char *other, int (*set)(const char *)) {
    if (lua_type(L, 1) != LUA_TSTRING)
        return luaL_error(L, "%s: backend must be 'onednn' or '%s', got %s", op, other,
                          luaL_typename(L, 1));
    if (set(lua_tostring(L, 1))) return l_error(L);
    return 0;
}

static int l_set_conv_backend(lua_State *L) {
    return set_backend(L, "set_conv_backend", "gemm", duel_set_conv_backend);
}

static int l_set_sgemm_backend(lua_State *L) {
    return set_backend(L, "set_sgemm_backend", "openblas", duel_set_sgemm_backend);
}

static int l_conv_backend(lua_State *L) {
    lua_pushstring(L, duel_conv_backend());
    return 1;
}

static int l_sgemm_backend(lua_State *L) {
    lua_pushstring(L, duel_sgemm_backend());
    return 1;
}

/* _core.conv_dnnl_counts() -> calls oneDNN took, calls it declined (shape), on this thread */
static int l_conv_dnnl_counts(lua_State *L) {
    int64_t t, d;
    duel_dnnl_counts(&t, &d);
    lua_pushnumber(L, (lua_Number)t);
    lua_pushnumber(L, (lua_Number)d);
    return 2;
}

static int l_get_num_threads(lua_State *L) {
    lua_pushinteger(L, duel_get_num_threads());
    return 1;
}

/* RNG state as two numbers (seed, offset); exact up to 2^53 */
static int l_rng_state(lua_State *L) {
    uint64_t s, o;
    duel_rng_get_state(&s, &o);
    lua_pushnumber(L, (lua_Number)(int64_t)s);
    lua_pushnumber(L, (lua_Number)o);
    return 2;
}

static int l_set_rng_state(lua_State *L) {
    int64_t s = l_checkint(L, 1, "set_rng_state", "seed");
    int64_t o = l_checkint(L, 2, "set_rng_state", "offset");
    if (o < 0) return luaL_error(L, "set_rng_state: offset must be non-negative, got %lld", (long long)o);
    duel_rng_set_state((uint64_t)s, (uint64_t)o);
    return 0;
}

static int l_live_bytes(lua_State *L) {
    lua_pushnumber(L, (lua_Number)duel_live_bytes());
    return 1;
}

static int l_empty_cache(lua_State *L) {
    lua_pushnumber(L, (lua_Number)duel_cached_bytes());
    duel_empty_cache();
    return 1;
}

static int l_cached_bytes(lua_State *L) {
    lua_pushnumber(L, (lua_Number)duel_cached_bytes());
    return 1;
}

static int l_available_bytes(lua_State *L) {
    lua_pushnumber(L, (lua_Number)duel_available_bytes());
    return 1;
}

static int l_op_names(lua_State *L) {
    int n;
    const duel_opdef *const *ops = duel_registry(&n);
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushstring(L, ops[i]->name);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* element i (1-based, row-major) of any tensor: what gradcheck perturbs */
static int l_flat_get(lua_State *L) {
    duel_tensor *t = l_checktensor(L, 1, "flat_get");
    int64_t i = l_checkint(L, 2, "flat_get", "index");
    if (i < 1 || i > duel_numel(t)) return luaL_error(L, "flat_get: index out of range, got %lld", (long long)i);
    lua_pushnumber(L, duel_flat_get(t, i - 1));
    return 1;
}

static int l_flat_set(lua_State *L) {
    duel_tensor *t = l_checktensor(L, 1, "flat_set");
    int64_t i = l_checkint(L, 2, "flat_set", "index");
    float v = (float)l_checknumber(L, 3, "flat_set", "value");
    if (i < 1 || i > duel_numel(t)) return luaL_error(L, "flat_set: index out of range, got %lld", (long long)i);
    duel_flat_set(t, i - 1, v);
    duel_bump_version(t, "flat_set");
    return 0;
}

/* identity of the tensor behind a wrapper (each access to a field makes a new userdata) */
static int l_id(lua_State *L) {
    lua_pushlightuserdata(L, l_checktensor(L, 1, "id"));
    return 1;
}

/* Internal adjoint ops, exposed so that the gradcheck suite can test each registered op. */
static int l_embed(lua_State *L) {
    duel_tensor *x = l_checktensor(L, 1, "embed");
    int d = l_checkdim(L, 2, x->ndim, "embed", 0);
    int64_t start = l_checkint(L, 3, "embed", "start"), size = l_checkint(L, 4, "embed", "size");
    l_newslot(L);
    return l_finish(L, duel_embed(x, d, start - 1, size));
}

static int l_index_add(lua_State *L) {
    duel_tensor *x = l_checktensor(L, 1, "index_add");
    int d = l_checkdim(L, 2, x->ndim, "index_add", 0);
    duel_tensor *idx = l_checktensor(L, 3, "index_add");
    int64_t size = l_checkint(L, 4, "index_add", "size");
    l_newslot(L);
    return l_finish(L, duel_index_add(x, d, idx, size));
}

static int l_sum_to(lua_State *L) {
    duel_tensor *x = l_checktensor(L, 1, "sum_to");
    int64_t shape[DUEL_MAXDIM];
    int nd = l_checkshape(L, 2, shape, "sum_to", 0);
    l_newslot(L);
    return l_finish(L, duel_sum_to(x, shape, nd));
}

void l_register_misc(lua_State *L, int duel, int methods, int core) {
    (void)methods;
    static const luaL_Reg pub[] = {{"manual_seed", l_manual_seed},
                                   {"set_num_threads", l_set_num_threads},
                                   {"get_num_threads", l_get_num_threads},
                                   {"set_conv_backend", l_set_conv_backend},
                                   {"conv_backend", l_conv_backend},
                                   {"set_sgemm_backend", l_set_sgemm_backend},
                                   {"sgemm_backend", l_sgemm_backend},
                                   {"clock", l_clock},
                                   {"empty_cache", l_empty_cache},
                                   {NULL, NULL}};
    for (const luaL_Reg *r = pub; r->name; r++) {
        lua_pushcfunction(L, r->func);
        lua_setfield(L, duel, r->name);
    }
    static const luaL_Reg internal[] = {{"rng_state", l_rng_state},   {"set_rng_state", l_set_rng_state},
                                        {"live_bytes", l_live_bytes}, {"op_names", l_op_names},
                                        {"flat_get", l_flat_get},     {"flat_set", l_flat_set},
                                        {"embed", l_embed},           {"index_add", l_index_add},
                                        {"sum_to", l_sum_to},         {"id", l_id},
                                        {"cached_bytes", l_cached_bytes},
                                        {"conv_dnnl_counts", l_conv_dnnl_counts},
                                        {"available_bytes", l_available_bytes},
                                        {NULL, NULL}};
    for (const luaL_Reg *r = internal; r->name; r++) {
        lua_pushcfunction(L, r->func);
        lua_setfield(L, core, r->name);
    }
}
