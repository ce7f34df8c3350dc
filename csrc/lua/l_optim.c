/* l_optim.c -- "duel.Optimizer": SGD, Adam, AdamW and RMSprop as userdata over a parameter list.
 * One step() is one C call that runs the fused kernel of csrc/optim.c over every parameter that
 * has a gradient; state tensors are created at a parameter's first step, as in PyTorch. */
#include "l_util.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define L_OPTIM_MT "duel.Optimizer"

enum { K_SGD, K_ADAM, K_ADAMW, K_RMSPROP };
static const char *kind_names[] = {"SGD", "Adam", "AdamW", "RMSprop"};
/* state tensor names per kind, as PyTorch's state_dict calls them */
static const char *state_names[][3] = {{"momentum_buffer", NULL, NULL},
                                       {"exp_avg", "exp_avg_sq", NULL},
                                       {"exp_avg", "exp_avg_sq", NULL},
                                       {"square_avg", "grad_avg", "momentum_buffer"}};

typedef struct {
    int kind, n;
    duel_tensor **params;
    duel_tensor **state[3]; /* per parameter, NULL until its first step (or unused) */
    int64_t *steps;         /* per parameter */
    duel_sgd_opts sgd;
    duel_adam_opts adam;
    duel_rmsprop_opts rms;
} l_optim;

static l_optim *check_optim(lua_State *L, int idx, const char *op) {
    l_optim *o = luaL_testudata(L, idx, L_OPTIM_MT);
    if (!o || !o->params) luaL_error(L, "%s: expected an optimizer, got %s", op, l_typename(L, idx));
    return o;
}

static void free_optim(l_optim *o) {
    for (int i = 0; i < o->n; i++) {
        if (o->params) duel_release(o->params[i]);
        for (int k = 0; k < 3; k++)
            if (o->state[k]) duel_release(o->state[k][i]);
    }
    free(o->params);
    for (int k = 0; k < 3; k++) free(o->state[k]);
    free(o->steps);
    o->params = NULL;
    o->n = 0;
}

static int l_optim_gc(lua_State *L) {
    l_optim *o = luaL_testudata(L, 1, L_OPTIM_MT);
    if (o) free_optim(o);
    return 0;
}

/* ---- option reading -------------------------------------------------------------------------- */

static double opt_num(lua_State *L, int t, const char *key, double dflt, double lo, double hi,
                     const char *op) {
    lua_getfield(L, t, key);
    double v = dflt;
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TNUMBER)
            luaL_error(L, "%s: option '%s' must be a number, got %s", op, key, l_typename(L, -1));
        v = lua_tonumber(L, -1);
    }
    lua_pop(L, 1);
    if (!(v >= lo && v <= hi)) /* also refuses NaN */
        luaL_error(L, "%s: option '%s' must be in [%g, %g], got %g", op, key, lo, hi, v);
    return v;
}

/* betas = {b1, b2}, or beta1/beta2 as state_dict() writes them */
static void read_betas(lua_State *L, int t, const char *op, double *b1, double *b2) {
    *b1 = opt_num(L, t, "beta1", 0.9, 0, 0.999999999, op);
    *b2 = opt_num(L, t, "beta2", 0.999, 0, 0.999999999, op);
    lua_getfield(L, t, "betas");
    if (!lua_isnil(L, -1)) {
        if (!lua_istable(L, -1) || lua_objlen(L, -1) != 2)
            luaL_error(L, "%s: option 'betas' must be a table of two numbers, got %s", op,
                       l_typename(L, -1));
        double *b[2] = {b1, b2};
        for (int i = 0; i < 2; i++) {
            lua_rawgeti(L, -1, i + 1);
            double v = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : -1;
            if (!(v >= 0 && v < 1))
                luaL_error(L, "%s: betas must be numbers in [0, 1), got %s", op,
                           lua_type(L, -1) == LUA_TNUMBER ? lua_tostring(L, -1) : l_typename(L, -1));
            *b[i] = v;
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
}

static void read_options(lua_State *L, int t, l_optim *o) {
    const char *op = kind_names[o->kind];
    switch (o->kind) {
    case K_SGD:
        o->sgd.lr = opt_num(L, t, "lr", NAN, 0, HUGE_VAL, op); /* required, as in PyTorch */
        o->sgd.momentum = opt_num(L, t, "momentum", 0, 0, HUGE_VAL, op);
        o->sgd.dampening = opt_num(L, t, "dampening", 0, 0, 1, op);
        o->sgd.weight_decay = opt_num(L, t, "weight_decay", 0, 0, HUGE_VAL, op);
        o->sgd.nesterov = l_optfield_bool(L, t, "nesterov", 0, op);
        if (o->sgd.nesterov && (o->sgd.momentum <= 0 || o->sgd.dampening != 0))
            luaL_error(L, "SGD: nesterov needs momentum > 0 and dampening 0, got momentum %g and "
                          "dampening %g", o->sgd.momentum, o->sgd.dampening);
        break;
    case K_ADAM:
    case K_ADAMW:
        o->adam.lr = opt_num(L, t, "lr", 1e-3, 0, HUGE_VAL, op);
        read_betas(L, t, op, &o->adam.beta1, &o->adam.beta2);
        o->adam.eps = opt_num(L, t, "eps", 1e-8, 0, HUGE_VAL, op);
        o->adam.weight_decay =
            opt_num(L, t, "weight_decay", o->kind == K_ADAMW ? 1e-2 : 0, 0, HUGE_VAL, op);
        o->adam.decoupled = o->kind == K_ADAMW;
        break;
    default:
        o->rms.lr = opt_num(L, t, "lr", 1e-2, 0, HUGE_VAL, op);
        o->rms.alpha = opt_num(L, t, "alpha", 0.99, 0, 1, op);
        o->rms.eps = opt_num(L, t, "eps", 1e-8, 0, HUGE_VAL, op);
        o->rms.weight_decay = opt_num(L, t, "weight_decay", 0, 0, HUGE_VAL, op);
        o->rms.momentum = opt_num(L, t, "momentum", 0, 0, HUGE_VAL, op);
        o->rms.centered = l_optfield_bool(L, t, "centered", 0, op);
    }
}

/* ---- construction ---------------------------------------------------------------------------- */

/* _optim.new(kind, {params}, {options}) */
static int l_optim_new(lua_State *L) {
    int kind = (int)luaL_checkinteger(L, 1);
    if (kind < 0 || kind > K_RMSPROP) return luaL_error(L, "optim: unknown kind, got %d", kind);
    const char *op = kind_names[kind];
    if (!lua_istable(L, 2))
        return luaL_error(L, "%s: parameters must be a table of tensors, got %s", op,
                          l_typename(L, 2));
    if (!lua_isnoneornil(L, 3) && !lua_istable(L, 3))
        return luaL_error(L, "%s: options must be a table, got %s", op, l_typename(L, 3));
    if (lua_isnoneornil(L, 3)) {
        lua_settop(L, 2);
        lua_newtable(L);
    }
    int n = (int)lua_objlen(L, 2);
    if (n < 1) return luaL_error(L, "%s: got an empty parameter list", op);
    l_optim *o = lua_newuserdata(L, sizeof *o); /* slot first: __gc frees partial state */
    memset(o, 0, sizeof *o);
    luaL_getmetatable(L, L_OPTIM_MT);
    lua_setmetatable(L, -2);
    o->kind = kind;
    read_options(L, 3, o);
    o->params = calloc((size_t)n, sizeof *o->params);
    o->steps = calloc((size_t)n, sizeof *o->steps);
    for (int k = 0; k < 3; k++) o->state[k] = calloc((size_t)n, sizeof *o->state[k]);
    if (!o->params || !o->steps || !o->state[0] || !o->state[1] || !o->state[2])
        return luaL_error(L, "%s: out of memory, got %d parameters", op, n);
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, 2, i + 1);
        if (!l_istensor(L, -1))
            return luaL_error(L, "%s: parameter %d must be a duel.Tensor, got %s", op, i + 1,
                              l_typename(L, -1));
        duel_tensor *p = *(duel_tensor **)lua_touserdata(L, -1);
        lua_pop(L, 1);
        if (p->op)
            return luaL_error(L, "%s: parameter %d must be a leaf tensor, got one computed by %s",
                              op, i + 1, p->op->name);
        if (!p->requires_grad)
            return luaL_error(L, "%s: parameter %d must require grad, got a tensor of shape %s", op,
                              i + 1, duel_shape_str(p->shape, p->ndim));
        if (!duel_is_contiguous(p))
            return luaL_error(L, "%s: parameter %d must be contiguous, got a view of shape %s", op,
                              i + 1, duel_shape_str(p->shape, p->ndim));
        for (int j = 0; j < o->n; j++)
            if (o->params[j]->storage == p->storage)
                return luaL_error(L, "%s: parameter %d shares storage with parameter %d, got a "
                                     "duplicate", op, i + 1, j + 1);
        duel_retain(p);
        o->params[o->n++] = p;
    }
    return 1;
}

/* ---- stepping -------------------------------------------------------------------------------- */

static duel_tensor *state_tensor(lua_State *L, l_optim *o, int k, int i) {
    if (!o->state[k][i]) {
        duel_tensor *p = o->params[i];
        if (!(o->state[k][i] = duel_zeros(p->shape, p->ndim))) l_error(L);
    }
    return o->state[k][i];
}

static int l_optim_step(lua_State *L) {
    l_optim *o = check_optim(L, 1, "step");
    for (int i = 0; i < o->n; i++) {
        duel_tensor *p = o->params[i];
        if (!p->grad) continue;
        int rc = 0, first = o->steps[i] == 0;
        o->steps[i]++;
        switch (o->kind) {
        case K_SGD: {
            duel_tensor *buf = o->sgd.momentum > 0 ? state_tensor(L, o, 0, i) : NULL;
            rc = duel_sgd_step(p, buf, &o->sgd, first);
            break;
        }
        case K_ADAM:
        case K_ADAMW:
            rc = duel_adam_step(p, state_tensor(L, o, 0, i), state_tensor(L, o, 1, i), &o->adam,
                                o->steps[i]);
            break;
        default: {
            duel_tensor *ga = o->rms.centered ? state_tensor(L, o, 1, i) : NULL;
            duel_tensor *buf = o->rms.momentum > 0 ? state_tensor(L, o, 2, i) : NULL;
            rc = duel_rmsprop_step(p, state_tensor(L, o, 0, i), ga, buf, &o->rms);
        }
        }
        if (rc) return l_error(L);
    }
    l_gc_pressure(L);
    return 0;
}

/* zero_grad(): gradients become nil (PyTorch's set_to_none), so nothing stale accumulates */
static int l_optim_zero_grad(lua_State *L) {
    l_optim *o = check_optim(L, 1, "zero_grad");
    for (int i = 0; i < o->n; i++) {
        duel_release(o->params[i]->grad);
        o->params[i]->grad = NULL;
    }
    return 0;
}

static int l_optim_params(lua_State *L) {
    l_optim *o = check_optim(L, 1, "params");
    lua_createtable(L, o->n, 0);
    for (int i = 0; i < o->n; i++) {
        duel_retain(o->params[i]);
        l_push(L, o->params[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* ---- hyper-parameters as fields ------------------------------------------------------------- */

typedef struct {
    const char *name;
    int kinds; /* bit per kind */
    size_t off;
    int is_bool;
} field;
#define ALLK 15
static const field fields[] = {
    {"lr", 1 << K_SGD, offsetof(l_optim, sgd.lr), 0},
    {"momentum", 1 << K_SGD, offsetof(l_optim, sgd.momentum), 0},
    {"dampening", 1 << K_SGD, offsetof(l_optim, sgd.dampening), 0},
    {"weight_decay", 1 << K_SGD, offsetof(l_optim, sgd.weight_decay), 0},
    {"nesterov", 1 << K_SGD, offsetof(l_optim, sgd.nesterov), 1},
    {"lr", 1 << K_ADAM | 1 << K_ADAMW, offsetof(l_optim, adam.lr), 0},
    {"beta1", 1 << K_ADAM | 1 << K_ADAMW, offsetof(l_optim, adam.beta1), 0},
    {"beta2", 1 << K_ADAM | 1 << K_ADAMW, offsetof(l_optim, adam.beta2), 0},
    {"eps", 1 << K_ADAM | 1 << K_ADAMW, offsetof(l_optim, adam.eps), 0},
    {"weight_decay", 1 << K_ADAM | 1 << K_ADAMW, offsetof(l_optim, adam.weight_decay), 0},
    {"lr", 1 << K_RMSPROP, offsetof(l_optim, rms.lr), 0},
    {"alpha", 1 << K_RMSPROP, offsetof(l_optim, rms.alpha), 0},
    {"eps", 1 << K_RMSPROP, offsetof(l_optim, rms.eps), 0},
    {"weight_decay", 1 << K_RMSPROP, offsetof(l_optim, rms.weight_decay), 0},
    {"momentum", 1 << K_RMSPROP, offsetof(l_optim, rms.momentum), 0},
    {"centered", 1 << K_RMSPROP, offsetof(l_optim, rms.centered), 1},
};

static const field *find_field(const l_optim *o, const char *k) {
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++)
        if ((fields[i].kinds >> o->kind & 1) && !strcmp(fields[i].name, k)) return &fields[i];
    return NULL;
}

static int l_optim_index(lua_State *L) {
    l_optim *o = check_optim(L, 1, "index");
    const char *k = lua_tostring(L, 2);
    lua_getmetatable(L, 1);
    lua_getfield(L, -1, "methods");
    lua_pushvalue(L, 2);
    lua_rawget(L, -2);
    if (!lua_isnil(L, -1)) return 1;
    const field *f = k ? find_field(o, k) : NULL;
    if (f) {
        char *base = (char *)o;
        if (f->is_bool) lua_pushboolean(L, *(int *)(base + f->off));
        else lua_pushnumber(L, *(double *)(base + f->off));
        return 1;
    }
    if (k && !strcmp(k, "kind")) return lua_pushstring(L, kind_names[o->kind]), 1;
    if (k && !strcmp(k, "betas") && (o->kind == K_ADAM || o->kind == K_ADAMW)) {
        lua_createtable(L, 2, 0);
        lua_pushnumber(L, o->adam.beta1);
        lua_rawseti(L, -2, 1);
        lua_pushnumber(L, o->adam.beta2);
        lua_rawseti(L, -2, 2);
        return 1;
    }
    lua_pushnil(L);
    return 1;
}

/* opt.lr = 1e-4 (schedules), and any other hyper-parameter of the optimizer's kind */
static int l_optim_newindex(lua_State *L) {
    l_optim *o = check_optim(L, 1, "newindex");
    const char *k = lua_tostring(L, 2);
    const char *op = kind_names[o->kind];
    const field *f = k ? find_field(o, k) : NULL;
    if (!f)
        return luaL_error(L, "%s: no hyper-parameter '%s' to set, got %s", op,
                          k ? k : "?", l_typename(L, 3));
    char *base = (char *)o;
    if (f->is_bool) {
        if (lua_type(L, 3) != LUA_TBOOLEAN)
            return luaL_error(L, "%s: '%s' must be a boolean, got %s", op, k, l_typename(L, 3));
        *(int *)(base + f->off) = lua_toboolean(L, 3);
    } else {
        double v = l_checknumber(L, 3, op, k);
        if (!(v >= 0) || isinf(v))
            return luaL_error(L, "%s: '%s' must be a finite non-negative number, got %g", op, k, v);
        *(double *)(base + f->off) = v;
    }
    return 0;
}

/* ---- state ------------------------------------------------------------------------------- */

static void push_opts(lua_State *L, l_optim *o) {
    lua_newtable(L);
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
        const field *f = &fields[i];
        if (!(f->kinds >> o->kind & 1)) continue;
        char *base = (char *)o;
        if (f->is_bool) lua_pushboolean(L, *(int *)(base + f->off));
        else lua_pushnumber(L, *(double *)(base + f->off));
        lua_setfield(L, -2, f->name);
    }
}

/* {kind=, options={...}, step={n per parameter}, state={[i]={exp_avg=..., ...}}}; tensors cloned */
static int l_optim_state_dict(lua_State *L) {
    l_optim *o = check_optim(L, 1, "state_dict");
    lua_newtable(L);
    lua_pushstring(L, kind_names[o->kind]);
    lua_setfield(L, -2, "kind");
    push_opts(L, o);
    lua_setfield(L, -2, "options");
    lua_createtable(L, o->n, 0);
    for (int i = 0; i < o->n; i++) {
        lua_pushnumber(L, (lua_Number)o->steps[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "step");
    lua_createtable(L, o->n, 0);
    for (int i = 0; i < o->n; i++) {
        lua_newtable(L);
        for (int k = 0; k < 3; k++) {
            if (!o->state[k][i] || !state_names[o->kind][k]) continue;
            int prev = duel_set_grad_enabled(0);
            duel_tensor *c = duel_clone(o->state[k][i]);
            duel_set_grad_enabled(prev);
            l_push(L, c);
            lua_setfield(L, -2, state_names[o->kind][k]);
        }
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "state");
    return 1;
}

static int l_optim_load_state_dict(lua_State *L) {
    l_optim *o = check_optim(L, 1, "load_state_dict");
    const char *op = "load_state_dict";
    if (!lua_istable(L, 2))
        return luaL_error(L, "%s: expected a table from state_dict(), got %s", op, l_typename(L, 2));
    lua_getfield(L, 2, "kind");
    if (!lua_isstring(L, -1) || strcmp(lua_tostring(L, -1), kind_names[o->kind]))
        return luaL_error(L, "%s: state is for optimizer %s, got %s", op, kind_names[o->kind],
                          lua_isstring(L, -1) ? lua_tostring(L, -1) : l_typename(L, -1));
    lua_getfield(L, 2, "step");
    lua_getfield(L, 2, "state");
    if (!lua_istable(L, -1) || !lua_istable(L, -2) || (int)lua_objlen(L, -1) != o->n ||
        (int)lua_objlen(L, -2) != o->n)
        return luaL_error(L, "%s: need step and state for %d parameters, got %d", op, o->n,
                          lua_istable(L, -1) ? (int)lua_objlen(L, -1) : 0);
    int st = lua_gettop(L), steps = st - 1;
    /* validate everything before changing anything */
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < o->n; i++) {
            lua_rawgeti(L, steps, i + 1);
            double s = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : -1;
            lua_pop(L, 1);
            if (!(s >= 0) || s != floor(s))
                return luaL_error(L, "%s: step %d must be a whole number >= 0, got %g", op, i + 1, s);
            lua_rawgeti(L, st, i + 1);
            for (int k = 0; k < 3; k++) {
                if (!state_names[o->kind][k]) continue;
                lua_getfield(L, -1, state_names[o->kind][k]);
                if (!lua_isnil(L, -1)) {
                    if (!l_istensor(L, -1))
                        return luaL_error(L, "%s: state %d.%s must be a tensor, got %s", op, i + 1,
                                          state_names[o->kind][k], l_typename(L, -1));
                    duel_tensor *t = *(duel_tensor **)lua_touserdata(L, -1), *p = o->params[i];
                    if (t->ndim != p->ndim || memcmp(t->shape, p->shape, sizeof(int64_t) * p->ndim))
                        return luaL_error(L, "%s: state %d.%s must have shape %s, got %s", op, i + 1,
                                          state_names[o->kind][k],
                                          duel_shape_str(p->shape, p->ndim),
                                          duel_shape_str(t->shape, t->ndim));
                    if (pass == 1) {
                        int prev = duel_set_grad_enabled(0);
                        duel_tensor *c = duel_clone(t);
                        duel_set_grad_enabled(prev);
                        if (!c) return l_error(L);
                        duel_release(o->state[k][i]);
                        o->state[k][i] = c;
                    }
                } else if (pass == 1) {
                    duel_release(o->state[k][i]);
                    o->state[k][i] = NULL;
                }
                lua_pop(L, 1);
            }
            lua_pop(L, 1);
            if (pass == 1) o->steps[i] = (int64_t)s;
        }
    lua_getfield(L, 2, "options");
    if (lua_istable(L, -1)) read_options(L, lua_gettop(L), o);
    return 0;
}

static int l_optim_tostring(lua_State *L) {
    l_optim *o = check_optim(L, 1, "tostring");
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    lua_pushfstring(L, "%s(", kind_names[o->kind]);
    luaL_addvalue(&b);
    int first = 1;
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
        const field *f = &fields[i];
        if (!(f->kinds >> o->kind & 1)) continue;
        char buf[96];
        char *base = (char *)o;
        if (f->is_bool) snprintf(buf, sizeof buf, "%s%s=%s", first ? "" : ", ", f->name,
                                 *(int *)(base + f->off) ? "true" : "false");
        else snprintf(buf, sizeof buf, "%s%s=%g", first ? "" : ", ", f->name,
                      *(double *)(base + f->off));
        luaL_addstring(&b, buf);
        first = 0;
    }
    lua_pushfstring(L, "; %d parameters)", o->n);
    luaL_addvalue(&b);
    luaL_pushresult(&b);
    return 1;
}

/* ---- clipping helpers (optim.clip_grad_norm_, optim.clip_weights_) --------------------------- */

static duel_tensor *list_tensor(lua_State *L, int t, int i, const char *op) {
    lua_rawgeti(L, t, i);
    if (!l_istensor(L, -1))
        luaL_error(L, "%s: parameter %d must be a duel.Tensor, got %s", op, i, l_typename(L, -1));
    duel_tensor *p = *(duel_tensor **)lua_touserdata(L, -1);
    lua_pop(L, 1);
    return p;
}

/* clip_grad_norm_(params, max_norm): the 2-norm over all gradients; scaled down in place when
 * above max_norm (factor max_norm / (norm + 1e-6), as PyTorch). Returns the norm before. */
static int l_clip_grad_norm_(lua_State *L) {
    const char *op = "clip_grad_norm_";
    luaL_checktype(L, 1, LUA_TTABLE);
    double maxn = l_checknumber(L, 2, op, "max_norm");
    if (!(maxn > 0)) return luaL_error(L, "%s: max_norm must be positive, got %g", op, maxn);
    int n = (int)lua_objlen(L, 1);
    double sq = 0;
    for (int i = 1; i <= n; i++) {
        duel_tensor *p = list_tensor(L, 1, i, op);
        if (p->grad) sq += duel_sq_norm(p->grad);
    }
    double norm = sqrt(sq);
    if (norm > maxn) {
        float s = (float)(maxn / (norm + 1e-6));
        for (int i = 1; i <= n; i++) {
            duel_tensor *p = list_tensor(L, 1, i, op);
            if (!p->grad) continue;
            int prev = duel_set_grad_enabled(0);
            int rc = duel_mul_scalar_(p->grad, s);
            duel_set_grad_enabled(prev);
            if (rc) return l_error(L);
        }
    }
    lua_pushnumber(L, norm);
    return 1;
}

/* clip_weights_(params, c): clamp every parameter into [-c, c] in place (WGAN's critic) */
static int l_clip_weights_(lua_State *L) {
    const char *op = "clip_weights_";
    luaL_checktype(L, 1, LUA_TTABLE);
    double c = l_checknumber(L, 2, op, "c");
    if (!(c >= 0) || isinf(c))
        return luaL_error(L, "%s: c must be a finite non-negative number, got %g", op, c);
    int n = (int)lua_objlen(L, 1);
    for (int i = 1; i <= n; i++)
        if (duel_clamp_(list_tensor(L, 1, i, op), (float)-c, (float)c)) return l_error(L);
    return 0;
}

void l_register_optim(lua_State *L, int optim) {
    luaL_newmetatable(L, L_OPTIM_MT);
    lua_pushcfunction(L, l_optim_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_optim_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_optim_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushcfunction(L, l_optim_tostring);
    lua_setfield(L, -2, "__tostring");
    static const luaL_Reg methods[] = {{"step", l_optim_step},
                                       {"zero_grad", l_optim_zero_grad},
                                       {"params", l_optim_params},
                                       {"state_dict", l_optim_state_dict},
                                       {"load_state_dict", l_optim_load_state_dict},
                                       {NULL, NULL}};
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "methods");
    lua_pop(L, 1);
    lua_pushcfunction(L, l_optim_new);
    lua_setfield(L, optim, "new");
    for (int k = 0; k <= K_RMSPROP; k++) {
        lua_pushinteger(L, k);
        lua_setfield(L, optim, kind_names[k]);
    }
    lua_pushcfunction(L, l_clip_grad_norm_);
    lua_setfield(L, optim, "clip_grad_norm_");
    lua_pushcfunction(L, l_clip_weights_);
    lua_setfield(L, optim, "clip_weights_");
}
