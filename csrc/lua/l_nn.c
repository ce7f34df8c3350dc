/* l_nn.c -- built-in layers as "duel.Layer" userdata owning their parameters and buffers. The
 * forward calls the same differentiable ops as duel.F, so gradients of any order flow through
 * every layer; layers keep no activations. Construction options are parsed in lua/duel/nn/init.lua
 * (which also initialises the parameters as PyTorch does); the generic module methods
 * (named_parameters, state_dict, train/eval, apply...) come from lua/duel/nn/Module.lua. */
#include "l_util.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define L_LAYER_MT "duel.Layer"
#define MAXP 3

enum {
    K_LINEAR, K_CONV2D, K_CONVT2D, K_BN1D, K_BN2D, K_IN2D, K_LAYERNORM, K_EMBEDDING, K_CBN2D,
    K_ADAIN, K_RELU, K_LEAKYRELU, K_TANH, K_SIGMOID, K_DROPOUT, K_REFLPAD, K_ZEROPAD, K_UPSAMPLE,
    K_FLATTEN, K_VIEW, K_IDENTITY, K_COUNT
};
static const char *kind_names[K_COUNT] = {
    "Linear",   "Conv2d",    "ConvTranspose2d", "BatchNorm1d",     "BatchNorm2d",
    "InstanceNorm2d", "LayerNorm", "Embedding", "ConditionalBatchNorm2d", "AdaIN",
    "ReLU",     "LeakyReLU", "Tanh",     "Sigmoid",   "Dropout",
    "ReflectionPad2d", "ZeroPad2d", "Upsample", "Flatten", "View", "Identity"};

typedef struct {
    int kind, training, np, nb;
    const char *pname[MAXP], *bname[MAXP];
    duel_tensor *p[MAXP], *b[MAXP];
    int64_t i[16];
    double f[4];
} l_layer;

static l_layer *check_layer(lua_State *L, int idx, const char *op) {
    l_layer *m = luaL_testudata(L, idx, L_LAYER_MT);
    if (!m) luaL_error(L, "%s: expected a built-in layer, got %s", op, l_typename(L, idx));
    return m;
}

static int l_layer_gc(lua_State *L) {
    l_layer *m = luaL_testudata(L, 1, L_LAYER_MT);
    if (!m) return 0;
    for (int k = 0; k < MAXP; k++) {
        duel_release(m->p[k]);
        duel_release(m->b[k]);
        m->p[k] = m->b[k] = NULL;
    }
    return 0;
}

/* ---- description -------------------------------------------------------------------------- */

static void hw(char *buf, size_t n, const char *tag, int64_t h, int64_t w, int64_t dflt) {
    if (h == dflt && w == dflt) return;
    size_t len = strlen(buf);
    if (h == w) snprintf(buf + len, n - len, ", %s%lld", tag, (long long)h);
    else snprintf(buf + len, n - len, ", %s{%lld,%lld}", tag, (long long)h, (long long)w);
}

/* one line naming the layer and its configuration: "Conv2d(64->128, k4, s2, p1)" */
static void describe(const l_layer *m, char *buf, size_t n) {
    const int64_t *i = m->i;
    const char *name = kind_names[m->kind];
    switch (m->kind) {
    case K_LINEAR:
        snprintf(buf, n, "%s(%lld->%lld%s)", name, (long long)i[0], (long long)i[1],
                 i[2] ? "" : ", no bias");
        break;
    case K_CONV2D:
    case K_CONVT2D: {
        snprintf(buf, n, "%s(%lld->%lld", name, (long long)i[0], (long long)i[1]);
        size_t len = strlen(buf);
        if (i[2] == i[3]) snprintf(buf + len, n - len, ", k%lld", (long long)i[2]);
        else snprintf(buf + len, n - len, ", k{%lld,%lld}", (long long)i[2], (long long)i[3]);
        hw(buf, n, "s", i[4], i[5], 1);
        hw(buf, n, "p", i[6], i[7], 0);
        hw(buf, n, "d", i[8], i[9], 1);
        if (m->kind == K_CONVT2D) hw(buf, n, "op", i[12], i[13], 0);
        len = strlen(buf);
        if (i[10] != 1) snprintf(buf + len, n - len, ", groups %lld", (long long)i[10]);
        len = strlen(buf);
        snprintf(buf + len, n - len, "%s)", i[11] ? "" : ", no bias");
        break;
    }
    case K_BN1D:
    case K_BN2D:
    case K_IN2D:
        snprintf(buf, n, "%s(%lld%s)", name, (long long)i[0],
                 m->kind == K_IN2D ? (i[1] ? ", affine" : "") : (i[1] ? "" : ", no affine"));
        break;
    case K_LAYERNORM: {
        snprintf(buf, n, "%s({", name);
        for (int k = 0; k < i[0]; k++) {
            size_t len = strlen(buf);
            snprintf(buf + len, n - len, k ? ",%lld" : "%lld", (long long)i[1 + k]);
        }
        size_t len = strlen(buf);
        snprintf(buf + len, n - len, "})");
        break;
    }
    case K_EMBEDDING:
    case K_CBN2D:
    case K_ADAIN:
        snprintf(buf, n, "%s(%lld, %lld)", name, (long long)i[0], (long long)i[1]);
        break;
    case K_LEAKYRELU:
    case K_DROPOUT: snprintf(buf, n, "%s(%g)", name, m->f[0]); break;
    case K_REFLPAD:
    case K_ZEROPAD:
        if (i[0] == i[1] && i[1] == i[2] && i[2] == i[3])
            snprintf(buf, n, "%s(%lld)", name, (long long)i[0]);
        else
            snprintf(buf, n, "%s({%lld,%lld,%lld,%lld})", name, (long long)i[0], (long long)i[1],
                     (long long)i[2], (long long)i[3]);
        break;
    case K_UPSAMPLE:
        if (i[0] == i[1])
            snprintf(buf, n, "%s(scale=%lld, %s)", name, (long long)i[0],
                     i[2] == DUEL_UP_BILINEAR ? "bilinear" : "nearest");
        else
            snprintf(buf, n, "%s(scale={%lld,%lld}, %s)", name, (long long)i[0], (long long)i[1],
                     i[2] == DUEL_UP_BILINEAR ? "bilinear" : "nearest");
        break;
    case K_FLATTEN: snprintf(buf, n, "%s(%lld)", name, (long long)i[0] + 1); break;
    case K_VIEW: {
        snprintf(buf, n, "%s({", name);
        for (int k = 0; k < i[0]; k++) {
            size_t len = strlen(buf);
            snprintf(buf + len, n - len, k ? ",%lld" : "%lld", (long long)i[1 + k]);
        }
        size_t len = strlen(buf);
        snprintf(buf + len, n - len, "})");
        break;
    }
    default: snprintf(buf, n, "%s()", name);
    }
}

/* ---- forward ---------------------------------------------------------------------------------- */

/* Every forward error names the layer: "Conv2d(64->128, k4, s2): <what>, got <value>". */
static int layer_error(lua_State *L, const l_layer *m, const char *msg) {
    char d[200];
    describe(m, d, sizeof d);
    return luaL_error(L, "%s: %s", d, msg);
}

static void expect_channels(lua_State *L, const l_layer *m, duel_tensor *x, int rank, int64_t c,
                            const char *layout) {
    if (x->ndim != rank || (c >= 0 && x->shape[1] != c)) {
        char msg[200];
        snprintf(msg, sizeof msg, "expected input %s with %lld channels, got %s", layout,
                 (long long)c, duel_shape_str(x->shape, x->ndim));
        layer_error(L, m, msg);
    }
}

static duel_tensor *opt_labels(lua_State *L, int idx, const l_layer *m) {
    if (!l_istensor(L, idx)) {
        char msg[160];
        snprintf(msg, sizeof msg, "needs a second argument (a tensor), got %s", l_typename(L, idx));
        layer_error(L, m, msg);
    }
    return *(duel_tensor **)lua_touserdata(L, idx);
}

static duel_conv2d_opts conv_opts(const l_layer *m) {
    const int64_t *i = m->i;
    duel_conv2d_opts o = {{i[4], i[5]}, {i[6], i[7]}, {i[8], i[9]}, {i[12], i[13]}, i[10]};
    return o;
}

static duel_tensor *forward(lua_State *L, l_layer *m, duel_tensor *x) {
    const int64_t *i = m->i;
    duel_tensor **p = m->p, **b = m->b;
    switch (m->kind) {
    case K_LINEAR:
        if (x->ndim < 1 || x->shape[x->ndim - 1] != i[0]) {
            char msg[200];
            snprintf(msg, sizeof msg, "expected input {...,%lld}, got %s", (long long)i[0],
                     duel_shape_str(x->shape, x->ndim));
            layer_error(L, m, msg);
        }
        return duel_linear(x, p[0], p[1]);
    case K_CONV2D: {
        expect_channels(L, m, x, 4, i[0], "{N,C,H,W}");
        duel_conv2d_opts o = conv_opts(m);
        return duel_conv2d(x, p[0], p[1], &o);
    }
    case K_CONVT2D: {
        expect_channels(L, m, x, 4, i[0], "{N,C,H,W}");
        duel_conv2d_opts o = conv_opts(m);
        return duel_conv_transpose2d(x, p[0], p[1], &o);
    }
    case K_BN1D:
        if (!(x->ndim == 2 || x->ndim == 3) || x->shape[1] != i[0]) {
            char msg[200];
            snprintf(msg, sizeof msg, "expected input {N,%lld} or {N,%lld,L}, got %s",
                     (long long)i[0], (long long)i[0], duel_shape_str(x->shape, x->ndim));
            layer_error(L, m, msg);
        }
        return duel_batch_norm(x, b[0], b[1], p[0], p[1], m->training, (float)m->f[1],
                               (float)m->f[0]);
    case K_BN2D:
        expect_channels(L, m, x, 4, i[0], "{N,C,H,W}");
        return duel_batch_norm(x, b[0], b[1], p[0], p[1], m->training, (float)m->f[1],
                               (float)m->f[0]);
    case K_IN2D:
        expect_channels(L, m, x, 4, i[0], "{N,C,H,W}");
        return duel_instance_norm(x, p[0], p[1], (float)m->f[0]);
    case K_LAYERNORM:
        return duel_layer_norm(x, (int)i[0], p[0], p[1], (float)m->f[0]);
    case K_EMBEDDING: { /* idx any shape -> idx.shape .. {D} */
        int64_t n = duel_numel(x), shp[DUEL_MAXDIM];
        if (x->ndim >= DUEL_MAXDIM) layer_error(L, m, "index tensor has too many dimensions");
        duel_tensor *flat = duel_reshape(x, &n, 1);
        duel_tensor *rows = flat ? duel_index_select(p[0], 0, flat) : NULL;
        duel_release(flat);
        if (!rows) return NULL;
        memcpy(shp, x->shape, sizeof(int64_t) * (size_t)x->ndim);
        shp[x->ndim] = i[1];
        duel_tensor *y = duel_reshape(rows, shp, x->ndim + 1);
        duel_release(rows);
        return y;
    }
    case K_CBN2D: { /* BN without affine, then per-class scale and shift chosen by the labels */
        expect_channels(L, m, x, 4, i[0], "{N,C,H,W}");
        duel_tensor *y = opt_labels(L, 2, m);
        if (y->ndim != 1 || y->shape[0] != x->shape[0]) {
            char msg[200];
            snprintf(msg, sizeof msg, "expected labels {%lld} (one per sample), got %s",
                     (long long)x->shape[0], duel_shape_str(y->shape, y->ndim));
            layer_error(L, m, msg);
        }
        duel_tensor *h = duel_batch_norm(x, b[0], b[1], NULL, NULL, m->training, (float)m->f[1],
                                         (float)m->f[0]);
        duel_tensor *g = h ? duel_index_select(p[0], 0, y) : NULL;
        duel_tensor *be = g ? duel_index_select(p[1], 0, y) : NULL;
        int64_t s4[4] = {x->shape[0], i[0], 1, 1};
        duel_tensor *g4 = be ? duel_view(g, s4, 4) : NULL, *b4 = g4 ? duel_view(be, s4, 4) : NULL;
        duel_tensor *hg = b4 ? duel_mul(h, g4) : NULL, *out = hg ? duel_add(hg, b4) : NULL;
        duel_release(h);
        duel_release(g);
        duel_release(be);
        duel_release(g4);
        duel_release(b4);
        duel_release(hg);
        return out;
    }
    case K_ADAIN: { /* style w {N,style_dim} -> scale, shift {N,C} by one linear map */
        expect_channels(L, m, x, 4, i[0], "{N,C,H,W}");
        duel_tensor *w = opt_labels(L, 2, m);
        if (w->ndim != 2 || w->shape[1] != i[1] || w->shape[0] != x->shape[0]) {
            char msg[200];
            snprintf(msg, sizeof msg, "expected style {%lld,%lld}, got %s", (long long)x->shape[0],
                     (long long)i[1], duel_shape_str(w->shape, w->ndim));
            layer_error(L, m, msg);
        }
        duel_tensor *s = duel_linear(w, p[0], p[1]);
        duel_tensor *sc = s ? duel_narrow(s, 1, 0, i[0]) : NULL;
        duel_tensor *sh = sc ? duel_narrow(s, 1, i[0], i[0]) : NULL;
        duel_tensor *out = sh ? duel_adain(x, sc, sh, 1e-5f) : NULL;
        duel_release(s);
        duel_release(sc);
        duel_release(sh);
        return out;
    }
    case K_RELU: return duel_relu(x);
    case K_LEAKYRELU: return duel_leaky_relu(x, (float)m->f[0]);
    case K_TANH: return duel_tanh(x);
    case K_SIGMOID: return duel_sigmoid(x);
    case K_DROPOUT: return duel_dropout(x, (float)m->f[0], m->training);
    case K_REFLPAD:
    case K_ZEROPAD:
        return duel_pad2d(x, i, m->kind == K_REFLPAD ? DUEL_PAD_REFLECT : DUEL_PAD_ZERO);
    case K_UPSAMPLE: return duel_upsample(x, i[0], i[1], (int)i[2]);
    case K_FLATTEN: {
        if (x->ndim < i[0]) {
            char msg[160];
            snprintf(msg, sizeof msg, "expected at least %lld dimensions, got %s",
                     (long long)i[0], duel_shape_str(x->shape, x->ndim));
            layer_error(L, m, msg);
        }
        int64_t shp[DUEL_MAXDIM];
        int nd = (int)i[0];
        memcpy(shp, x->shape, sizeof(int64_t) * (size_t)nd);
        shp[nd] = -1;
        return duel_reshape(x, shp, nd + 1);
    }
    case K_VIEW: { /* keeps the batch dimension: {N, sizes...} */
        if (x->ndim < 1) layer_error(L, m, "expected a batch {N,...}, got a 0-dim tensor");
        int64_t shp[DUEL_MAXDIM];
        shp[0] = x->shape[0];
        for (int k = 0; k < i[0]; k++) shp[1 + k] = i[1 + k];
        return duel_reshape(x, shp, (int)i[0] + 1);
    }
    default: duel_retain(x); return x;
    }
}

static int l_layer_forward(lua_State *L) {
    l_layer *m = check_layer(L, 1, "forward");
    char d[200];
    if (!l_istensor(L, 2)) {
        describe(m, d, sizeof d);
        return luaL_error(L, "%s: expected an input tensor, got %s", d, l_typename(L, 2));
    }
    duel_tensor *x = *(duel_tensor **)lua_touserdata(L, 2);
    lua_remove(L, 1); /* extra arguments (labels, style) now start at 2 */
    l_newslot(L);
    duel_tensor *y = forward(L, m, x);
    if (!y) {
        describe(m, d, sizeof d);
        return luaL_error(L, "%s: %s", d, duel_errmsg());
    }
    return l_finish(L, y);
}

/* ---- module protocol ------------------------------------------------------------------------ */

static void push_named(lua_State *L, const char **names, duel_tensor **ts, int n) {
    lua_newtable(L);
    int k = 0;
    for (int j = 0; j < n; j++) {
        if (!ts[j]) continue;
        lua_createtable(L, 2, 0);
        lua_pushstring(L, names[j]);
        lua_rawseti(L, -2, 1);
        duel_retain(ts[j]);
        l_push(L, ts[j]);
        lua_rawseti(L, -2, 2);
        lua_rawseti(L, -2, ++k);
    }
}

static int l_layer_own_parameters(lua_State *L) {
    l_layer *m = check_layer(L, 1, "parameters");
    push_named(L, m->pname, m->p, m->np);
    return 1;
}

static int l_layer_own_buffers(lua_State *L) {
    l_layer *m = check_layer(L, 1, "buffers");
    push_named(L, m->bname, m->b, m->nb);
    return 1;
}

static int l_layer_children(lua_State *L) {
    check_layer(L, 1, "named_children");
    lua_newtable(L);
    return 1;
}

static int l_layer_set_training(lua_State *L) {
    check_layer(L, 1, "train")->training = lua_toboolean(L, 2);
    return 0;
}

static int l_layer_line(lua_State *L) {
    char d[200];
    describe(check_layer(L, 1, "tostring"), d, sizeof d);
    lua_pushstring(L, d);
    return 1;
}

static const char *config_names[K_COUNT][6] = {
    [K_LINEAR] = {"in_features", "out_features"},
    [K_CONV2D] = {"in_channels", "out_channels"},
    [K_CONVT2D] = {"in_channels", "out_channels"},
    [K_BN1D] = {"num_features"},
    [K_BN2D] = {"num_features"},
    [K_IN2D] = {"num_features"},
    [K_EMBEDDING] = {"num_embeddings", "embedding_dim"},
    [K_CBN2D] = {"num_features", "num_classes"},
    [K_ADAIN] = {"num_features", "style_dim"},
};

static int l_layer_index(lua_State *L) {
    l_layer *m = check_layer(L, 1, "index");
    lua_getmetatable(L, 1);
    lua_getfield(L, -1, "methods");
    lua_pushvalue(L, 2);
    lua_rawget(L, -2);
    if (!lua_isnil(L, -1)) return 1;
    const char *k = lua_tostring(L, 2);
    if (!k) return lua_pushnil(L), 1;
    for (int j = 0; j < m->np; j++)
        if (!strcmp(k, m->pname[j])) {
            if (!m->p[j]) return lua_pushnil(L), 1;
            duel_retain(m->p[j]);
            l_push(L, m->p[j]);
            return 1;
        }
    for (int j = 0; j < m->nb; j++)
        if (!strcmp(k, m->bname[j])) {
            if (!m->b[j]) return lua_pushnil(L), 1;
            duel_retain(m->b[j]);
            l_push(L, m->b[j]);
            return 1;
        }
    for (int j = 0; j < 6 && config_names[m->kind][j]; j++)
        if (!strcmp(k, config_names[m->kind][j])) return lua_pushnumber(L, (double)m->i[j]), 1;
    if (!strcmp(k, "training")) return lua_pushboolean(L, m->training), 1;
    if (!strcmp(k, "__name")) return lua_pushstring(L, kind_names[m->kind]), 1;
    if (!strcmp(k, "eps") && ((m->kind >= K_BN1D && m->kind <= K_LAYERNORM) || m->kind == K_CBN2D))
        return lua_pushnumber(L, m->f[0]), 1;
    if (!strcmp(k, "momentum") && (m->kind == K_BN1D || m->kind == K_BN2D || m->kind == K_CBN2D))
        return lua_pushnumber(L, m->f[1]), 1;
    if (!strcmp(k, "negative_slope") && m->kind == K_LEAKYRELU) return lua_pushnumber(L, m->f[0]), 1;
    if (!strcmp(k, "p") && m->kind == K_DROPOUT) return lua_pushnumber(L, m->f[0]), 1;
    if (m->kind == K_CONV2D || m->kind == K_CONVT2D) {
        const char *pairs[] = {"kernel_size", "stride", "padding", "dilation", NULL, NULL,
                               "output_padding"};
        for (int j = 0; j < 7; j++)
            if (pairs[j] && !strcmp(k, pairs[j])) {
                lua_createtable(L, 2, 0);
                lua_pushnumber(L, (double)m->i[2 + 2 * j]);
                lua_rawseti(L, -2, 1);
                lua_pushnumber(L, (double)m->i[3 + 2 * j]);
                lua_rawseti(L, -2, 2);
                return 1;
            }
        if (!strcmp(k, "groups")) return lua_pushnumber(L, (double)m->i[10]), 1;
    }
    lua_pushnil(L);
    return 1;
}

/* m.weight = t replaces a parameter (any tensor of the same shape: nn.functional_call and
 * spectral_norm substitute computed tensors this way); buffers likewise. */
static int l_layer_newindex(lua_State *L) {
    l_layer *m = check_layer(L, 1, "newindex");
    const char *k = lua_tostring(L, 2);
    char d[200];
    describe(m, d, sizeof d);
    for (int side = 0; side < 2 && k; side++) {
        const char **names = side ? m->bname : m->pname;
        duel_tensor **ts = side ? m->b : m->p;
        int n = side ? m->nb : m->np;
        for (int j = 0; j < n; j++) {
            if (strcmp(k, names[j])) continue;
            if (lua_isnil(L, 3)) {
                if (ts[j] && side == 0 && !strcmp(k, "weight"))
                    return luaL_error(L, "%s: weight cannot be removed, got nil", d);
                duel_release(ts[j]);
                ts[j] = NULL;
                return 0;
            }
            duel_tensor *t = l_checktensor(L, 3, k);
            if (ts[j] && (t->ndim != ts[j]->ndim ||
                          memcmp(t->shape, ts[j]->shape, sizeof(int64_t) * (size_t)t->ndim)))
                return luaL_error(L, "%s: %s must keep shape %s, got %s", d, k,
                                  duel_shape_str(ts[j]->shape, ts[j]->ndim),
                                  duel_shape_str(t->shape, t->ndim));
            duel_retain(t);
            duel_release(ts[j]);
            ts[j] = t;
            return 0;
        }
    }
    return luaL_error(L, "%s: no parameter or buffer named '%s' to set, got %s", d,
                      k ? k : "?", l_typename(L, 3));
}

/* ---- construction: _nn.new(kind_name, {ints}, {floats}) -------------------------------------- */

static int find_kind(const char *name) {
    for (int k = 0; k < K_COUNT; k++)
        if (!strcmp(kind_names[k], name)) return k;
    return -1;
}

static int add_failed; /* an allocation in l_layer_new failed; duel_errmsg() says why */

static void add(l_layer *m, int buffer, const char *name, const int64_t *shape, int nd, int on) {
    int j = buffer ? m->nb++ : m->np++;
    (buffer ? m->bname : m->pname)[j] = name;
    if (!on) return;
    duel_tensor *t = duel_zeros(shape, nd);
    if (!t) add_failed = 1;
    if (t && !buffer) t->requires_grad = 1;
    (buffer ? m->b : m->p)[j] = t;
}

static int l_layer_new(lua_State *L) {
    const char *name = luaL_checkstring(L, 1);
    int kind = find_kind(name);
    if (kind < 0) return luaL_error(L, "nn: unknown layer kind, got %s", name);
    l_layer *m = lua_newuserdata(L, sizeof *m);
    memset(m, 0, sizeof *m);
    luaL_getmetatable(L, L_LAYER_MT);
    lua_setmetatable(L, -2);
    m->kind = kind;
    m->training = 1;
    add_failed = 0;
    for (int j = 0; j < 16 && lua_istable(L, 2); j++) {
        lua_rawgeti(L, 2, j + 1);
        /* sizes past 2^62 (or NaN) would be UB to convert; -1 makes their allocation fail */
        lua_Number v = lua_tonumber(L, -1);
        if (lua_isnumber(L, -1)) m->i[j] = fabs(v) < 0x1p62 ? (int64_t)v : -1;
        lua_pop(L, 1);
    }
    for (int j = 0; j < 4 && lua_istable(L, 3); j++) {
        lua_rawgeti(L, 3, j + 1);
        if (lua_isnumber(L, -1)) m->f[j] = lua_tonumber(L, -1);
        lua_pop(L, 1);
    }
    const int64_t *i = m->i;
    switch (kind) {
    case K_LINEAR: {
        int64_t w[2] = {i[1], i[0]};
        add(m, 0, "weight", w, 2, 1);
        add(m, 0, "bias", &w[0], 1, (int)i[2]);
        break;
    }
    case K_CONV2D:
    case K_CONVT2D: {
        int64_t g = i[10], w[4] = {i[1], i[0] / g, i[2], i[3]};
        if (kind == K_CONVT2D) {
            w[0] = i[0];
            w[1] = i[1] / g;
        }
        add(m, 0, "weight", w, 4, 1);
        add(m, 0, "bias", &i[1], 1, (int)i[11]);
        break;
    }
    case K_BN1D:
    case K_BN2D:
    case K_IN2D:
        add(m, 0, "weight", &i[0], 1, (int)i[1]);
        add(m, 0, "bias", &i[0], 1, (int)i[1]);
        if (kind != K_IN2D && i[2]) {
            add(m, 1, "running_mean", &i[0], 1, 1);
            add(m, 1, "running_var", &i[0], 1, 1);
        }
        break;
    case K_LAYERNORM:
        add(m, 0, "weight", &i[1], (int)i[0], (int)i[7]);
        add(m, 0, "bias", &i[1], (int)i[0], (int)i[7]);
        break;
    case K_EMBEDDING: add(m, 0, "weight", i, 2, 1); break;
    case K_CBN2D: {
        int64_t w[2] = {i[1], i[0]};
        add(m, 0, "weight", w, 2, 1);
        add(m, 0, "bias", w, 2, 1);
        add(m, 1, "running_mean", &i[0], 1, 1);
        add(m, 1, "running_var", &i[0], 1, 1);
        break;
    }
    case K_ADAIN: {
        int64_t w[2] = {2 * i[0], i[1]};
        add(m, 0, "weight", w, 2, 1);
        add(m, 0, "bias", &w[0], 1, 1);
        break;
    }
    default: break;
    }
    if (add_failed) return l_error(L); /* e.g. a size too large: say so, not a nil weight */
    l_gc_pressure(L);
    return 1;
}

void l_register_nn(lua_State *L, int nn) {
    luaL_newmetatable(L, L_LAYER_MT);
    lua_pushcfunction(L, l_layer_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_layer_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_layer_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushcfunction(L, l_layer_forward);
    lua_setfield(L, -2, "__call");
    static const luaL_Reg methods[] = {{"forward", l_layer_forward},
                                       {"_own_parameters", l_layer_own_parameters},
                                       {"_own_buffers", l_layer_own_buffers},
                                       {"named_children", l_layer_children},
                                       {"_set_training", l_layer_set_training},
                                       {"__tostring_line", l_layer_line},
                                       {NULL, NULL}};
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_pushvalue(L, -1);
    lua_setfield(L, nn, "methods"); /* lua/duel/nn adds the generic module methods here */
    lua_setfield(L, -2, "methods");
    lua_setfield(L, nn, "metatable");
    lua_pushcfunction(L, l_layer_new);
    lua_setfield(L, nn, "new");
}
