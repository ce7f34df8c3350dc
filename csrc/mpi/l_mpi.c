/* l_mpi.c -- duel.mpi: the optional MPI backend of duel.dist (lua/duel/dist.lua).
 *
 * Built only where mpi.h exists (Makefile: MPI_LIBS from pkg-config ompi-c). It links core.so
 * from its own directory (rpath $ORIGIN), so the loader maps the one core already loaded by
 * `require 'duel.core'` (same file) and the tensors, grad mode and error state are shared.
 *
 *   init()                       MPI_Init_thread(FUNNELED) once; returns rank, size
 *   allreduce_(list, op)         in place over ranks, op 'sum' | 'mean' | 'max' | 'min'; the
 *                                tensors are packed into one flat buffer (tensor fusion), so a
 *                                whole gradient list costs one MPI_Allreduce
 *   broadcast_(list, root)       rank root's values everywhere (one fused MPI_Bcast)
 *   allreduce(x)                 a new tensor, the sum of x over ranks, recorded in the graph:
 *                                its backward is allreduce(dy) (the sum is self-adjoint across
 *                                ranks), so gradients of any order flow through it (SyncBN)
 *   allreduce_numbers(t, op)     a Lua array of numbers reduced in double precision
 *   broadcast_string(s, root)    rank root's string everywhere
 *   barrier(), stats(), reset_stats()   stats: seconds inside collectives, calls, bytes
 *
 * At exit (glibc's on_exit, which sees the status): MPI_Finalize after a normal exit, and
 * MPI_Abort after a failing one, so a rank that dies with a Lua error takes the job down instead
 * of leaving the others blocked in a collective. Errors read "<op>: <what>, got <value>". */
#include "../duel.h"
#include <lauxlib.h>
#include <lua.h>
#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int inited;   /* this module called MPI_Init_thread */
static double t_comm; /* seconds inside collectives */
static double n_calls, n_bytes;
static float *buf;   /* the fusion buffer, grown as needed and kept */
static int64_t buf_cap;

static int l_fail(lua_State *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int l_fail(lua_State *L, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    lua_pushstring(L, msg);
    return lua_error(L);
}

static void check_init(lua_State *L, const char *op) {
    if (!inited) l_fail(L, "%s: MPI is not initialised (call dist.init() first), got no init", op);
}

static const char *mpi_err(int rc) {
    static char s[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, s, &len);
    return s;
}

/* after a failing exit, abort the job (the other ranks may wait in a collective forever) */
static void at_exit(int status, void *ud) {
    (void)ud;
    int fin = 0;
    MPI_Finalized(&fin);
    if (fin) return;
    if (status != 0) MPI_Abort(MPI_COMM_WORLD, status);
    else MPI_Finalize();
}

static int l_init(lua_State *L) {
    if (!inited) {
        int already = 0, provided = 0;
        MPI_Initialized(&already);
        if (!already) {
            int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
            if (rc != MPI_SUCCESS) return l_fail(L, "init: MPI_Init_thread failed, got %s", mpi_err(rc));
            on_exit(at_exit, NULL);
        }
        /* errors come back as codes, turned into Lua errors below */
        MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
        inited = 1;
    }
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    lua_pushinteger(L, rank);
    lua_pushinteger(L, size);
    return 2;
}

static int l_initialized(lua_State *L) {
    lua_pushboolean(L, inited);
    return 1;
}

/* ---- tensor lists -------------------------------------------------------------------------- */

static duel_tensor *list_item(lua_State *L, int t, int i, const char *op) {
    lua_rawgeti(L, t, i);
    duel_tensor **slot = luaL_testudata(L, -1, "duel.Tensor");
    if (!slot || !*slot) {
        const char *tn = luaL_typename(L, -1);
        l_fail(L, "%s: element %d must be a duel.Tensor, got %s", op, i, tn);
    }
    lua_pop(L, 1);
    return *slot;
}

/* the tensors of the list at t (a table; one tensor is taken as a list of one) and their total
 * size; each must be writable in place */
static int64_t list_numel(lua_State *L, int t, int *n, const char *op, int write) {
    if (lua_type(L, t) != LUA_TTABLE)
        l_fail(L, "%s: expected a table of tensors, got %s", op, luaL_typename(L, t));
    *n = (int)lua_objlen(L, t);
    int64_t total = 0;
    for (int i = 1; i <= *n; i++) {
        duel_tensor *x = list_item(L, t, i, op);
        if (write && duel_check_inplace(x, op)) l_fail(L, "%s", duel_errmsg());
        total += duel_numel(x);
    }
    return total;
}

static float *grow(lua_State *L, int64_t n, const char *op) {
    if (n <= buf_cap) return buf;
    float *p = realloc(buf, (size_t)n * sizeof *p);
    if (!p) l_fail(L, "%s: cannot allocate a fusion buffer of %lld floats, got out of memory", op,
                  (long long)n);
    buf = p;
    buf_cap = n;
    return buf;
}

static void pack(lua_State *L, int t, int n, float *dst, const char *op) {
    for (int i = 1; i <= n; i++) {
        duel_tensor *x = list_item(L, t, i, op);
        int64_t k = duel_numel(x);
        if (duel_is_contiguous(x)) memcpy(dst, x->data, (size_t)k * sizeof *dst);
        else for (int64_t j = 0; j < k; j++) dst[j] = duel_flat_get(x, j);
        dst += k;
    }
}

static void unpack(lua_State *L, int t, int n, const float *src, float scale, const char *op) {
    for (int i = 1; i <= n; i++) {
        duel_tensor *x = list_item(L, t, i, op);
        int64_t k = duel_numel(x);
        if (duel_is_contiguous(x)) {
            float *d = x->data;
            if (scale == 1.0f) memcpy(d, src, (size_t)k * sizeof *d);
            else for (int64_t j = 0; j < k; j++) d[j] = src[j] * scale;
        } else {
            for (int64_t j = 0; j < k; j++) duel_flat_set(x, j, src[j] * scale);
        }
        duel_bump_version(x, op);
        src += k;
    }
}

/* MPI counts are ints: large buffers go in pieces */
#define CHUNK ((int64_t)1 << 28)

static int allreduce_floats(float *p, int64_t n, MPI_Op mop) {
    double t0 = MPI_Wtime();
    for (int64_t off = 0; off < n; off += CHUNK) {
        int c = (int)(n - off < CHUNK ? n - off : CHUNK);
        int rc = MPI_Allreduce(MPI_IN_PLACE, p + off, c, MPI_FLOAT, mop, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return rc;
    }
    t_comm += MPI_Wtime() - t0;
    n_calls += 1;
    n_bytes += (double)n * sizeof(float);
    return MPI_SUCCESS;
}

static int check_op(lua_State *L, int idx, const char *op, MPI_Op *mop) {
    const char *s = luaL_optstring(L, idx, "sum");
    if (!strcmp(s, "sum")) *mop = MPI_SUM;
    else if (!strcmp(s, "mean")) *mop = MPI_SUM;
    else if (!strcmp(s, "max")) *mop = MPI_MAX;
    else if (!strcmp(s, "min")) *mop = MPI_MIN;
    else l_fail(L, "%s: op must be 'sum', 'mean', 'max' or 'min', got '%s'", op, s);
    return !strcmp(s, "mean");
}

static int l_allreduce_(lua_State *L) {
    const char *op = "allreduce_";
    check_init(L, op);
    MPI_Op mop;
    int mean = check_op(L, 2, op, &mop), n, size;
    int64_t total = list_numel(L, 1, &n, op, 1);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    float *p = grow(L, total > 0 ? total : 1, op);
    pack(L, 1, n, p, op);
    int rc = allreduce_floats(p, total, mop);
    if (rc != MPI_SUCCESS) return l_fail(L, "%s: MPI_Allreduce failed, got %s", op, mpi_err(rc));
    unpack(L, 1, n, p, mean ? 1.0f / (float)size : 1.0f, op);
    lua_settop(L, 1);
    return 1;
}

static int l_broadcast_(lua_State *L) {
    const char *op = "broadcast_";
    check_init(L, op);
    int size, rank, n;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    lua_Integer root = luaL_optinteger(L, 2, 0);
    if (lua_type(L, 2) != LUA_TNONE && lua_type(L, 2) != LUA_TNIL && lua_type(L, 2) != LUA_TNUMBER)
        return l_fail(L, "%s: root must be a rank number, got %s", op, luaL_typename(L, 2));
    if (root < 0 || root >= size)
        return l_fail(L, "%s: root must be a rank in [0, %d], got %lld", op, size - 1,
                     (long long)root);
    int64_t total = list_numel(L, 1, &n, op, rank != root);
    /* every rank must bring the same number of values: checked first, so a mismatch is an
     * error on every rank rather than a truncated message on some */
    double mm[2] = {(double)total, -(double)total};
    double t0 = MPI_Wtime();
    int rc = MPI_Allreduce(MPI_IN_PLACE, mm, 2, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return l_fail(L, "%s: MPI_Allreduce failed, got %s", op, mpi_err(rc));
    if (mm[0] != -mm[1])
        return l_fail(L, "%s: every rank must pass the same number of values, got %lld here and "
                        "from %.0f to %.0f across ranks", op, (long long)total, -mm[1], mm[0]);
    float *p = grow(L, total > 0 ? total : 1, op);
    if (rank == root) pack(L, 1, n, p, op);
    for (int64_t off = 0; off < total; off += CHUNK) {
        int c = (int)(total - off < CHUNK ? total - off : CHUNK);
        rc = MPI_Bcast(p + off, c, MPI_FLOAT, (int)root, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return l_fail(L, "%s: MPI_Bcast failed, got %s", op, mpi_err(rc));
    }
    t_comm += MPI_Wtime() - t0;
    n_calls += 1;
    n_bytes += (double)total * sizeof(float);
    if (rank != root) unpack(L, 1, n, p, 1.0f, op);
    lua_settop(L, 1);
    return 1;
}

/* ---- differentiable sum over ranks (synchronised BatchNorm's statistics) --------------------- */

static duel_tensor *allreduce_sum(duel_tensor *x);

static int allreduce_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) {
    (void)y;
    dx[0] = allreduce_sum(dy); /* every rank runs this node's backward: the graphs match */
    return dx[0] ? 0 : -1;
}
static const duel_opdef OP_ALLREDUCE = {"allreduce", 1, allreduce_backward, 0};

static const char *ar_err; /* MPI failure inside allreduce_sum, for the binding's message */

static duel_tensor *allreduce_sum(duel_tensor *x) {
    duel_tensor *xc = duel_contiguous(x), *y = xc ? duel_empty_like(xc) : NULL;
    if (y) {
        memcpy(y->data, xc->data, (size_t)duel_numel(y) * sizeof(float));
        int rc = allreduce_floats(y->data, duel_numel(y), MPI_SUM);
        if (rc != MPI_SUCCESS) {
            ar_err = mpi_err(rc);
            duel_release(y);
            y = NULL;
        } else if (duel_record(y, &OP_ALLREDUCE, &xc, 1)) {
            duel_release(y);
            y = NULL;
        }
    }
    duel_release(xc);
    return y;
}

static int l_allreduce(lua_State *L) {
    const char *op = "allreduce";
    check_init(L, op);
    duel_tensor **slot = luaL_testudata(L, 1, "duel.Tensor");
    if (!slot || !*slot) return l_fail(L, "%s: expected a duel.Tensor, got %s", op, luaL_typename(L, 1));
    duel_tensor **out = lua_newuserdata(L, sizeof *out);
    *out = NULL;
    luaL_getmetatable(L, "duel.Tensor");
    lua_setmetatable(L, -2);
    ar_err = NULL;
    *out = allreduce_sum(*slot);
    if (!*out) {
        if (ar_err) return l_fail(L, "%s: MPI_Allreduce failed, got %s", op, ar_err);
        return l_fail(L, "%s", duel_errmsg());
    }
    return 1;
}

/* ---- plain values -------------------------------------------------------------------------- */

static int l_allreduce_numbers(lua_State *L) {
    const char *op = "allreduce_numbers";
    check_init(L, op);
    luaL_checktype(L, 1, LUA_TTABLE);
    MPI_Op mop;
    int mean = check_op(L, 2, op, &mop), size;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int n = (int)lua_objlen(L, 1);
    double *v = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
    if (!v) return l_fail(L, "%s: out of memory, got %d numbers", op, n);
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, 1, i);
        if (lua_type(L, -1) != LUA_TNUMBER) {
            free(v);
            return l_fail(L, "%s: element %d must be a number, got %s", op, i, luaL_typename(L, -1));
        }
        v[i - 1] = lua_tonumber(L, -1);
        lua_pop(L, 1);
    }
    double t0 = MPI_Wtime();
    int rc = MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, mop, MPI_COMM_WORLD);
    t_comm += MPI_Wtime() - t0;
    if (rc != MPI_SUCCESS) {
        free(v);
        return l_fail(L, "%s: MPI_Allreduce failed, got %s", op, mpi_err(rc));
    }
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushnumber(L, mean ? v[i] / size : v[i]);
        lua_rawseti(L, -2, i + 1);
    }
    free(v);
    return 1;
}

static int l_broadcast_string(lua_State *L) {
    const char *op = "broadcast_string";
    check_init(L, op);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    lua_Integer root = luaL_optinteger(L, 2, 0);
    if (root < 0 || root >= size)
        return l_fail(L, "%s: root must be a rank in [0, %d], got %lld", op, size - 1, (long long)root);
    size_t len = 0;
    const char *s = rank == root ? luaL_checklstring(L, 1, &len) : NULL;
    long long n = (long long)len;
    int rc = MPI_Bcast(&n, 1, MPI_LONG_LONG, (int)root, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return l_fail(L, "%s: MPI_Bcast failed, got %s", op, mpi_err(rc));
    char *b = malloc((size_t)n + 1);
    if (!b) return l_fail(L, "%s: out of memory, got %lld bytes", op, n);
    if (rank == root) memcpy(b, s, (size_t)n);
    rc = MPI_Bcast(b, (int)n, MPI_CHAR, (int)root, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) {
        free(b);
        return l_fail(L, "%s: MPI_Bcast failed, got %s", op, mpi_err(rc));
    }
    lua_pushlstring(L, b, (size_t)n);
    free(b);
    return 1;
}

static int l_barrier(lua_State *L) {
    check_init(L, "barrier");
    double t0 = MPI_Wtime();
    int rc = MPI_Barrier(MPI_COMM_WORLD);
    t_comm += MPI_Wtime() - t0;
    if (rc != MPI_SUCCESS) return l_fail(L, "barrier: MPI_Barrier failed, got %s", mpi_err(rc));
    return 0;
}

static int l_stats(lua_State *L) {
    lua_createtable(L, 0, 3);
    lua_pushnumber(L, t_comm);
    lua_setfield(L, -2, "seconds");
    lua_pushnumber(L, n_calls);
    lua_setfield(L, -2, "calls");
    lua_pushnumber(L, n_bytes);
    lua_setfield(L, -2, "bytes");
    return 1;
}

static int l_reset_stats(lua_State *L) {
    (void)L;
    t_comm = n_calls = n_bytes = 0;
    return 0;
}

static int l_processor(lua_State *L) {
    char name[MPI_MAX_PROCESSOR_NAME];
    int len = 0;
    MPI_Get_processor_name(name, &len);
    lua_pushlstring(L, name, (size_t)len);
    return 1;
}

int luaopen_duel_mpi(lua_State *L) {
    static const luaL_Reg fns[] = {{"init", l_init},
                                   {"initialized", l_initialized},
                                   {"allreduce_", l_allreduce_},
                                   {"broadcast_", l_broadcast_},
                                   {"allreduce", l_allreduce},
                                   {"allreduce_numbers", l_allreduce_numbers},
                                   {"broadcast_string", l_broadcast_string},
                                   {"barrier", l_barrier},
                                   {"stats", l_stats},
                                   {"reset_stats", l_reset_stats},
                                   {"processor_name", l_processor},
                                   {NULL, NULL}};
    lua_newtable(L);
    luaL_register(L, NULL, fns);
    return 1;
}
