/* l_serialize.c -- the safetensors layer under duel.save / duel.load (csrc/serialize.c does the
 * bytes; lua/duel/checkpoint.lua flattens nested tables onto it):
 *   _core.st_save(path, tensors, meta)    tensors: name -> tensor, meta: key -> string (or nil)
 *   _core.st_encode(tensors, meta)        -> the file's bytes as a Lua string
 *   _core.st_load(path)                   -> tensors, meta
 *   _core.st_decode(bytes)                -> tensors, meta */
#include "l_util.h"
#include <stdlib.h>
#include <string.h>

#define L_ST_BOX "duel.safetensors_box"

/* Entries from the table at tidx (string -> tensor) and the one at midx (string -> string, or
 * nil), in a GC-owned array pushed on the stack: nothing leaks if a check raises. Keys and values
 * point into Lua strings that the argument tables keep alive. */
static duel_st_entry *collect(lua_State *L, int tidx, int midx, const char *op, int *n) {
    if (!lua_istable(L, tidx))
        luaL_error(L, "%s: tensors must be a table of name -> tensor, got %s", op,
                   l_typename(L, tidx));
    int has_meta = !lua_isnoneornil(L, midx);
    if (has_meta && !lua_istable(L, midx))
        luaL_error(L, "%s: metadata must be a table of string -> string, got %s", op,
                   l_typename(L, midx));
    int count = 0;
    for (int pass = 0; pass < 2; pass++) {
        int t = pass ? midx : tidx;
        if (pass && !has_meta) break;
        lua_pushnil(L);
        while (lua_next(L, t)) {
            count++;
            lua_pop(L, 1);
        }
    }
    duel_st_entry *e = lua_newuserdata(L, sizeof *e * (size_t)(count ? count : 1));
    int k = 0;
    for (int pass = 0; pass < 2; pass++) {
        int t = pass ? midx : tidx;
        if (pass && !has_meta) break;
        lua_pushnil(L);
        while (lua_next(L, t)) {
            if (lua_type(L, -2) != LUA_TSTRING) /* lua_tolstring would convert the key in place */
                luaL_error(L, "%s: %s must be strings, got %s", op,
                           pass ? "metadata keys" : "tensor names", l_typename(L, -2));
            memset(&e[k], 0, sizeof e[k]);
            e[k].key = (char *)lua_tolstring(L, -2, &e[k].key_len);
            if (!pass) {
                if (!l_istensor(L, -1))
                    luaL_error(L, "%s: entry '%s' must be a duel.Tensor, got %s", op, e[k].key,
                               l_typename(L, -1));
                e[k].tensor = *(duel_tensor **)lua_touserdata(L, -1);
            } else {
                if (lua_type(L, -1) != LUA_TSTRING)
                    luaL_error(L, "%s: metadata '%s' must be a string, got %s", op, e[k].key,
                               l_typename(L, -1));
                e[k].value = (char *)lua_tolstring(L, -1, &e[k].value_len);
            }
            k++;
            lua_pop(L, 1);
        }
    }
    *n = k;
    return e;
}

static int l_st_save(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    int n;
    duel_st_entry *e = collect(L, 2, 3, "save", &n);
    if (duel_st_save(path, e, n)) return l_error(L);
    return 0;
}

static int l_st_encode(lua_State *L) {
    int n;
    duel_st_entry *e = collect(L, 1, 2, "save", &n);
    unsigned char *buf;
    size_t len;
    if (duel_st_encode(e, n, &buf, &len)) return l_error(L);
    /* lua_pushlstring may raise on OOM and leak buf; bounded by that OOM */
    lua_pushlstring(L, (const char *)buf, len);
    free(buf);
    return 1;
}

static int box_gc(lua_State *L) {
    duel_st **box = luaL_checkudata(L, 1, L_ST_BOX);
    duel_st_free(*box);
    *box = NULL;
    return 0;
}

/* a GC-owned holder for a loaded duel_st, created before loading so that nothing leaks if
 * building the result tables raises */
static duel_st **new_box(lua_State *L) {
    duel_st **box = lua_newuserdata(L, sizeof *box);
    *box = NULL;
    if (luaL_newmetatable(L, L_ST_BOX)) {
        lua_pushcfunction(L, box_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    return box;
}

/* push tensors, meta from the loaded file in *box (which keeps ownership until each moves) */
static int push_loaded(lua_State *L, duel_st **box) {
    duel_st *st = *box;
    if (!st) return l_error(L);
    lua_newtable(L);
    int tens = lua_gettop(L);
    lua_newtable(L);
    int meta = tens + 1;
    for (int i = 0; i < st->n; i++) {
        duel_st_entry *e = &st->entries[i];
        lua_pushlstring(L, e->key, e->key_len);
        if (e->tensor) {
            duel_tensor **slot = l_newslot(L);
            *slot = e->tensor;
            e->tensor = NULL;
            lua_rawset(L, tens);
        } else {
            lua_pushlstring(L, e->value, e->value_len);
            lua_rawset(L, meta);
        }
    }
    duel_st_free(st);
    *box = NULL;
    l_gc_pressure(L);
    return 2;
}

static int l_st_load(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    duel_st **box = new_box(L);
    *box = duel_st_load(path);
    return push_loaded(L, box);
}

static int l_st_decode(lua_State *L) {
    size_t len;
    if (lua_type(L, 1) != LUA_TSTRING)
        return luaL_error(L, "load: bytes must be a string, got %s", l_typename(L, 1));
    const char *s = lua_tolstring(L, 1, &len);
    duel_st **box = new_box(L);
    *box = duel_st_decode((const unsigned char *)s, len);
    return push_loaded(L, box);
}

void l_register_serialize(lua_State *L, int core) {
    static const luaL_Reg fns[] = {{"st_save", l_st_save},
                                   {"st_encode", l_st_encode},
                                   {"st_load", l_st_load},
                                   {"st_decode", l_st_decode},
                                   {NULL, NULL}};
    for (const luaL_Reg *r = fns; r->name; r++) {
        lua_pushcfunction(L, r->func);
        lua_setfield(L, core, r->name);
    }
}
