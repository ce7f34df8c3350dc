/* l_data.c -- the C helpers behind lua/duel/data/ (module field _data): IDX files, folder
 * listing (opendir/readdir, no shell), mkdir -p, toy2d, the loader's counter-based RNG, and the
 * "duel.Prefetcher" userdata that decodes batches on worker threads. */
#include "../image.h"
#include "l_util.h"
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PF_MT "duel.Prefetcher"

static const char *checkstr(lua_State *L, int idx, const char *op, const char *what) {
    if (lua_type(L, idx) != LUA_TSTRING)
        luaL_error(L, "%s: %s must be a string, got %s", op, what, l_typename(L, idx));
    return lua_tostring(L, idx);
}

static uint64_t checkseed(lua_State *L, int idx, const char *op, const char *what) {
    int64_t v = l_checkint(L, idx, op, what);
    if (v < 0) luaL_error(L, "%s: %s must be non-negative, got %lld", op, what, (long long)v);
    return (uint64_t)v;
}

static int l_idx_load(lua_State *L) {
    const char *path = checkstr(L, 1, "idx_load", "path");
    double scale = l_checknumber(L, 2, "idx_load", "scale");
    double shift = l_checknumber(L, 3, "idx_load", "shift");
    int64_t pad = lua_isnoneornil(L, 4) ? 0 : l_checkint(L, 4, "idx_load", "pad");
    float pv = lua_isnoneornil(L, 5) ? 0.0f : (float)l_checknumber(L, 5, "idx_load", "pad value");
    l_newslot(L);
    return l_finish(L, duel_idx_load(path, scale, shift, pad, pv));
}

/* ---- the file system ------------------------------------------------------------------------- */
static const char *kind_of(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) return NULL; /* follows symlinks: a link to a folder is a folder */
    return S_ISDIR(st.st_mode) ? "dir" : S_ISREG(st.st_mode) ? "file" : "other";
}

static int l_kind(lua_State *L) {
    const char *k = kind_of(checkstr(L, 1, "kind", "path"));
    if (k)
        lua_pushstring(L, k);
    else
        lua_pushnil(L);
    return 1;
}

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* listdir(path, op, all) -> names (sorted bytewise; hidden entries skipped unless all), kinds;
 * raises on error */
static int l_listdir(lua_State *L) {
    const char *op = lua_isnoneornil(L, 2) ? "listdir" : checkstr(L, 2, "listdir", "op");
    int all = lua_toboolean(L, 3);
    const char *path = checkstr(L, 1, op, "folder");
    DIR *d = opendir(path);
    if (!d) {
        const char *k = kind_of(path);
        return luaL_error(L, "%s: cannot open folder '%s', got %s", op, path,
                          k && strcmp(k, "dir") ? "a file, not a folder" : strerror(errno));
    }
    size_t n = 0, cap = 64;
    char **names = malloc(cap * sizeof *names);
    struct dirent *e;
    int oom = !names;
    while (!oom && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (e->d_name[0] == '.' && !all) continue; /* hidden files such as .DS_Store */
        if (n == cap) {
            char **more = realloc(names, 2 * cap * sizeof *names);
            if (!more) {
                oom = 1;
                break;
            }
            names = more;
            cap *= 2;
        }
        if (!(names[n] = strdup(e->d_name)))
            oom = 1;
        else
            n++;
    }
    closedir(d);
    if (oom) {
        for (size_t i = 0; i < n; i++) free(names[i]);
        free(names);
        return luaL_error(L, "%s: out of memory listing '%s', got %zu entries", op, path, n);
    }
    qsort(names, n, sizeof *names, cmp_names);
    /* the Lua tables are built after the C list is complete; a Lua error from here on
     * (out of memory) would leak the names, so they are freed as they are pushed */
    lua_createtable(L, (int)n, 0);
    lua_createtable(L, (int)n, 0);
    size_t plen = strlen(path);
    char *full = malloc(plen + 2 + 4096);
    for (size_t i = 0; i < n; i++) {
        lua_pushstring(L, names[i]);
        lua_rawseti(L, -3, (int)i + 1);
        const char *k = NULL;
        if (full && strlen(names[i]) < 4096) {
            memcpy(full, path, plen);
            full[plen] = '/';
            strcpy(full + plen + 1, names[i]);
            k = kind_of(full);
        }
        lua_pushstring(L, k ? k : "other");
        lua_rawseti(L, -2, (int)i + 1);
        free(names[i]);
    }
    free(full);
    free(names);
    return 2;
}

/* mkdir -p */
static int l_mkdir(lua_State *L) {
    const char *op = lua_isnoneornil(L, 2) ? "mkdir" : checkstr(L, 2, "mkdir", "op");
    const char *path = checkstr(L, 1, op, "folder");
    size_t n = strlen(path);
    char *p = malloc(n + 1);
    if (!p) return luaL_error(L, "%s: out of memory, got a path of %zu bytes", op, n);
    memcpy(p, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != 0) continue;
        char c = p[i];
        p[i] = 0;
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            int e = errno;
            free(p);
            return luaL_error(L, "%s: cannot create folder '%s', got %s", op, path, strerror(e));
        }
        p[i] = c;
    }
    free(p);
    const char *k = kind_of(path);
    if (!k || strcmp(k, "dir"))
        return luaL_error(L, "%s: cannot create folder '%s', got %s", op, path,
                          k ? "an existing file of that name" : "nothing created");
    return 0;
}

/* ---- synthetic data and the loader's RNG ----------------------------------------------------- */
static int l_toy2d(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    int k = (int)lua_objlen(L, 1) / 2;
    if (k < 1 || k > 4096) return luaL_error(L, "toy2d: need 1 to 4096 means, got %d", k);
    double *means = lua_newuserdata(L, sizeof(double) * 2 * (size_t)k); /* GC-owned scratch */
    for (int i = 0; i < 2 * k; i++) {
        lua_rawgeti(L, 1, i + 1);
        means[i] = lua_tonumber(L, -1);
        lua_pop(L, 1);
    }
    double std = l_checknumber(L, 2, "toy2d", "std");
    int64_t n = l_checkint(L, 3, "toy2d", "sample count");
    l_newslot(L);
    return l_finish(L, duel_toy2d(means, k, std, n));
}

static int l_uniform(lua_State *L) {
    uint64_t seed = checkseed(L, 1, "uniform", "seed"),
             stream = checkseed(L, 2, "uniform", "stream");
    uint64_t index = checkseed(L, 3, "uniform", "index"), k = checkseed(L, 4, "uniform", "k");
    lua_pushnumber(L, duel_data_uniform(seed, stream, index, k));
    return 1;
}

/* permutation(n, seed, stream) -> {1..n shuffled}: Fisher-Yates on counter-based uniforms */
static int l_permutation(lua_State *L) {
    int64_t n = l_checkint(L, 1, "permutation", "n");
    if (n < 0 || n > (1 << 30))
        return luaL_error(L, "permutation: n must be in [0, 2^30], got %lld", (long long)n);
    uint64_t seed = checkseed(L, 2, "permutation", "seed");
    uint64_t stream = checkseed(L, 3, "permutation", "stream");
    int32_t *p = lua_newuserdata(L, sizeof(int32_t) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++) p[i] = (int32_t)(i + 1);
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(duel_data_uniform(seed, stream, (uint64_t)i, 0) * (double)(i + 1));
        if (j > i) j = i;
        int32_t t = p[i];
        p[i] = p[j];
        p[j] = t;
    }
    lua_createtable(L, (int)n, 0);
    for (int64_t i = 0; i < n; i++) {
        lua_pushinteger(L, p[i]);
        lua_rawseti(L, -2, (int)i + 1);
    }
    return 1;
}

/* ---- the prefetcher -------------------------------------------------------------------------- */
static duel_prefetcher **checkpf(lua_State *L) {
    duel_prefetcher **pp = luaL_checkudata(L, 1, PF_MT);
    if (!*pp) luaL_error(L, "DataLoader: the prefetcher was closed, got a closed handle");
    return pp;
}

static int l_pf_new(lua_State *L) {
    int64_t w = l_checkint(L, 1, "DataLoader", "workers");
    duel_prefetcher **pp = lua_newuserdata(L, sizeof *pp);
    *pp = NULL;
    luaL_getmetatable(L, PF_MT);
    lua_setmetatable(L, -2);
    if (w < 0 || w > 64)
        return luaL_error(L, "DataLoader: workers must be in [0, 64], got %lld", (long long)w);
    if (!(*pp = duel_prefetcher_new((int)w))) return l_error(L);
    return 1;
}

static int l_pf_gc(lua_State *L) {
    duel_prefetcher **pp = luaL_checkudata(L, 1, PF_MT);
    duel_prefetcher_free(*pp);
    *pp = NULL;
    return 0;
}

static int64_t jobint(lua_State *L, int t, const char *key, int64_t lo, int64_t hi, int64_t dflt) {
    lua_getfield(L, t, key);
    int64_t v = dflt;
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TNUMBER || lua_tonumber(L, -1) != floor(lua_tonumber(L, -1)))
            luaL_error(L, "DataLoader: job field '%s' must be a whole number, got %s", key,
                       l_typename(L, -1));
        double d = lua_tonumber(L, -1);
        if (d < (double)lo || d > (double)hi)
            luaL_error(L, "DataLoader: job field '%s' must be in [%lld, %lld], got %g", key,
                       (long long)lo, (long long)hi, d);
        v = (int64_t)d;
    }
    lua_pop(L, 1);
    return v;
}

static double jobnum(lua_State *L, int t, const char *key, double dflt) {
    lua_getfield(L, t, key);
    double v = lua_isnil(L, -1) ? dflt : l_checknumber(L, lua_gettop(L), "DataLoader", key);
    lua_pop(L, 1);
    return v;
}

static const char *jobstr(lua_State *L, int t, const char *key) {
    lua_getfield(L, t, key);
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "DataLoader: job field '%s' must be a string, got %s", key,
                   l_typename(L, -1));
    const char *s = lua_tostring(L, -1); /* stays alive: the job table holds it */
    lua_pop(L, 1);
    return s;
}

/* pf:submit(jobs, outs) -> ticket. outs: contiguous {N,C,H,W} tensors; job i writes image slot
 * `slot` (0-based) of outs[out] (and of outs[out2] for the B half of a split job). */
static int l_pf_submit(lua_State *L) {
    duel_prefetcher **pp = checkpf(L);
    luaL_checktype(L, 2, LUA_TTABLE);
    luaL_checktype(L, 3, LUA_TTABLE);
    int nouts = (int)lua_objlen(L, 3), njobs = (int)lua_objlen(L, 2);
    if (nouts > 8) return luaL_error(L, "DataLoader: at most 8 image fields, got %d", nouts);
    duel_tensor *outs[8];
    for (int i = 0; i < nouts; i++) {
        lua_rawgeti(L, 3, i + 1);
        outs[i] = l_checktensor(L, lua_gettop(L), "DataLoader");
        if (outs[i]->ndim != 4 || !duel_is_contiguous(outs[i]))
            return luaL_error(L,
                              "DataLoader: output %d must be a contiguous {N,C,H,W} tensor, "
                              "got %s",
                              i + 1, duel_shape_str(outs[i]->shape, outs[i]->ndim));
        lua_pop(L, 1); /* the outs table keeps it alive */
    }
    duel_image_job *jobs = lua_newuserdata(L, sizeof *jobs * (size_t)(njobs ? njobs : 1));
    for (int i = 0; i < njobs; i++) {
        lua_rawgeti(L, 2, i + 1);
        int t = lua_gettop(L);
        if (!lua_istable(L, t))
            return luaL_error(L, "DataLoader: job %d must be a table, got %s", i + 1,
                              l_typename(L, t));
        duel_image_job *j = &jobs[i];
        memset(j, 0, sizeof *j);
        j->path = jobstr(L, t, "path");
        j->op = jobstr(L, t, "op");
        j->channels = (int)jobint(L, t, "channels", 1, 4, 3);
        lua_getfield(L, t, "split");
        j->split = lua_toboolean(L, -1);
        lua_getfield(L, t, "flip");
        j->flip = lua_toboolean(L, -1);
        lua_pop(L, 2);
        j->load_h = (int)jobint(L, t, "load_h", 0, DUEL_IMAGE_MAX_SIDE, 0);
        j->load_w = (int)jobint(L, t, "load_w", 0, DUEL_IMAGE_MAX_SIDE, 0);
        j->crop_y = (int)jobint(L, t, "crop_y", 0, DUEL_IMAGE_MAX_SIDE, 0);
        j->crop_x = (int)jobint(L, t, "crop_x", 0, DUEL_IMAGE_MAX_SIDE, 0);
        j->lo = (float)jobnum(L, t, "lo", 0.0);
        j->hi = (float)jobnum(L, t, "hi", 1.0);
        int64_t slot = jobint(L, t, "slot", 0, INT32_MAX, 0);
        int parts = j->split ? 2 : 1;
        for (int p = 0; p < parts; p++) {
            int64_t o = jobint(L, t, p ? "out2" : "out", 1, nouts, 1) - 1;
            duel_tensor *dst = outs[o];
            if (p == 0) {
                j->out_h = (int)dst->shape[2];
                j->out_w = (int)dst->shape[3];
            }
            if (slot >= dst->shape[0] || dst->shape[1] != j->channels ||
                dst->shape[2] != j->out_h || dst->shape[3] != j->out_w)
                return luaL_error(L,
                                  "DataLoader: job %d (slot %lld, %d channels, %dx%d) does not "
                                  "fit output %lld, got %s",
                                  i + 1, (long long)slot + 1, j->channels, j->out_w, j->out_h,
                                  (long long)o + 1, duel_shape_str(dst->shape, 4));
            j->out[p] = dst->data + slot * dst->shape[1] * dst->shape[2] * dst->shape[3];
        }
        lua_pop(L, 1);
    }
    int64_t ticket = duel_prefetcher_submit(*pp, jobs, njobs, outs, nouts);
    if (ticket < 0) return l_error(L);
    lua_pushnumber(L, (lua_Number)ticket);
    return 1;
}

/* pf:wait(ticket) -> ready (true when the batch was finished before wait was called) */
static int l_pf_wait(lua_State *L) {
    duel_prefetcher **pp = checkpf(L);
    int64_t ticket = l_checkint(L, 2, "DataLoader", "ticket");
    int ready = 0;
    if (duel_prefetcher_wait(*pp, ticket, &ready)) return l_error(L);
    lua_pushboolean(L, ready);
    return 1;
}

static int l_pf_workers(lua_State *L) {
    lua_pushinteger(L, duel_prefetcher_workers(*checkpf(L)));
    return 1;
}

void l_register_data(lua_State *L, int t) {
    static const luaL_Reg fns[] = {{"idx_load", l_idx_load},
                                   {"listdir", l_listdir},
                                   {"kind", l_kind},
                                   {"mkdir", l_mkdir},
                                   {"toy2d", l_toy2d},
                                   {"uniform", l_uniform},
                                   {"permutation", l_permutation},
                                   {"Prefetcher", l_pf_new},
                                   {NULL, NULL}};
    for (const luaL_Reg *r = fns; r->name; r++) {
        lua_pushcfunction(L, r->func);
        lua_setfield(L, t, r->name);
    }
    if (luaL_newmetatable(L, PF_MT)) {
        static const luaL_Reg m[] = {
            {"submit", l_pf_submit}, {"wait", l_pf_wait}, {"workers", l_pf_workers}, {NULL, NULL}};
        lua_newtable(L);
        for (const luaL_Reg *r = m; r->name; r++) {
            lua_pushcfunction(L, r->func);
            lua_setfield(L, -2, r->name);
        }
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_pf_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
}
