/* l_util.h -- helpers shared by the binding files: tensor slots, argument checks, options. */
#ifndef DUEL_L_UTIL_H
#define DUEL_L_UTIL_H

#include "../duel.h"
#include <lauxlib.h>
#include <lua.h>

#define L_TENSOR_MT "duel.Tensor"

/* Raise "<op>: <what is wrong>, got <value>" exactly: formatted with the C library's vsnprintf
 * (full printf syntax, checked by the compiler) and without luaL_error's position prefix, which
 * LuaJIT attaches inconsistently through tail calls. Every binding error goes through it. */
int l_raise(lua_State *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define luaL_error l_raise

/* The userdata slot comes first (liolib's newfile): if anything throws afterwards, the slot is
 * collected holding NULL and nothing leaks. */
duel_tensor **l_newslot(lua_State *L);
/* Store t (steals it) in the slot on top of the stack, or raise the core's error if t is NULL.
 * Also feeds the bytes allocated since the last call to the Lua GC. Returns 1 (the slot). */
int l_finish(lua_State *L, duel_tensor *t);
/* Push a new userdata holding t (steals it; raises on NULL). */
void l_push(lua_State *L, duel_tensor *t);
int l_error(lua_State *L);

duel_tensor *l_checktensor(lua_State *L, int idx, const char *op);
duel_tensor *l_opttensor(lua_State *L, int idx, const char *op); /* nil -> NULL */
int l_istensor(lua_State *L, int idx);
/* A tensor, or a number turned into a 0-dim tensor that replaces it on the stack (GC-owned). */
duel_tensor *l_totensor(lua_State *L, int idx, const char *op);

/* 1-based (or negative from the end) dimension -> 0-based; raises when out of range */
int l_checkdim(lua_State *L, int idx, int ndim, const char *op, int allow_end);
int l_optdim(lua_State *L, int idx, int ndim, const char *op); /* nil -> -1 (all dims) */
/* A shape given as a table {2,3} or as numbers from idx on. Returns ndim. */
int l_checkshape(lua_State *L, int idx, int64_t *shape, const char *op, int allow_neg1);
double l_checknumber(lua_State *L, int idx, const char *op, const char *what);
int64_t l_checkint(lua_State *L, int idx, const char *op, const char *what);
int l_optbool(lua_State *L, int idx, int dflt, const char *op, const char *what);
/* option tables: field of the table at idx (absent or nil -> default) */
int l_optfield_bool(lua_State *L, int idx, const char *key, int dflt, const char *op);
/* The options table at idx: absent or nil gives 0; otherwise every key must be one of `keys`
 * (NULL-terminated; `list` names them in the message), so that a typo such as {strid=2} is an
 * error rather than silently ignored. Returns idx. */
int l_check_options(lua_State *L, int idx, const char *op, const char *const *keys,
                    const char *list);
const char *l_typename(lua_State *L, int idx);
void l_gc_pressure(lua_State *L);

void l_open_tensor(lua_State *L); /* registers the metatable; leaves nothing on the stack */
void l_register_tensor(lua_State *L, int duel, int methods);
void l_register_ops(lua_State *L, int duel, int methods);
void l_register_autograd(lua_State *L, int duel, int methods, int core);
void l_register_misc(lua_State *L, int duel, int methods, int core);
/* layer op families (weak: registered when built); F is the duel.F table */
#define L_WEAK __attribute__((weak))
void l_register_activation(lua_State *L, int F, int methods) L_WEAK;
void l_register_loss(lua_State *L, int F, int methods) L_WEAK;
void l_register_conv(lua_State *L, int F, int methods) L_WEAK;
void l_register_norm(lua_State *L, int F, int methods) L_WEAK;
void l_register_resample(lua_State *L, int F, int methods) L_WEAK;
void l_register_nn(lua_State *L, int nn) L_WEAK;
void l_register_optim(lua_State *L, int optim) L_WEAK;
void l_register_gan(lua_State *L, int gan) L_WEAK;

#endif
