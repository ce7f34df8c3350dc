/* l_image.c -- the image functions behind lua/duel/image.lua (module field _image). Positions
 * arrive 1-based and leave for the core 0-based; option tables are read in Lua. */
#include "../image.h"
#include "l_util.h"

static const char *checkpath(lua_State *L, int idx, const char *op) {
    if (lua_type(L, idx) != LUA_TSTRING)
        luaL_error(L, "%s: path must be a string, got %s", op, l_typename(L, idx));
    return lua_tostring(L, idx);
}

static int checkchannels(lua_State *L, int idx, const char *op) {
    if (lua_isnoneornil(L, idx)) return 0;
    int64_t c = l_checkint(L, idx, op, "channels");
    if (c != 1 && c != 3 && c != 4)
        luaL_error(L, "%s: channels must be 1, 3 or 4, got %lld", op, (long long)c);
    return (int)c;
}

static int l_load(lua_State *L) {
    const char *path = checkpath(L, 1, "image.load");
    int c = checkchannels(L, 2, "image.load");
    l_newslot(L);
    return l_finish(L, duel_image_load(path, c));
}

static int l_info(lua_State *L) {
    const char *path = checkpath(L, 1, "image.info");
    const char *op = luaL_optstring(L, 2, "image.info");
    char err[512];
    int w, h, c;
    if (duel_image_info(path, op, &w, &h, &c, err, sizeof err)) return luaL_error(L, "%s", err);
    lua_pushinteger(L, w);
    lua_pushinteger(L, h);
    lua_pushinteger(L, c);
    return 3;
}

static int l_save(lua_State *L) {
    const char *path = checkpath(L, 1, "image.save");
    duel_tensor *img = l_checktensor(L, 2, "image.save");
    int64_t q = lua_isnoneornil(L, 3) ? 95 : l_checkint(L, 3, "image.save", "quality");
    if (q < 1 || q > 100)
        return luaL_error(L, "image.save: quality must be in [1, 100], got %lld", (long long)q);
    if (duel_image_save(path, img, (int)q)) return l_error(L);
    return 0;
}

static int64_t checksize(lua_State *L, int idx, const char *op, const char *what) {
    int64_t v = l_checkint(L, idx, op, what);
    if (v < 1 || v > DUEL_IMAGE_MAX_SIDE)
        luaL_error(L, "%s: %s must be in [1, %d], got %lld", op, what, DUEL_IMAGE_MAX_SIDE,
                   (long long)v);
    return v;
}

static int l_resize(lua_State *L) {
    duel_tensor *x = l_checktensor(L, 1, "image.resize");
    int64_t h = checksize(L, 2, "image.resize", "height");
    int64_t w = checksize(L, 3, "image.resize", "width");
    l_newslot(L);
    return l_finish(L, duel_image_resize(x, h, w));
}

static int l_crop(lua_State *L) {
    duel_tensor *x = l_checktensor(L, 1, "image.crop");
    int64_t y = l_checkint(L, 2, "image.crop", "y"), xx = l_checkint(L, 3, "image.crop", "x");
    int64_t h = l_checkint(L, 4, "image.crop", "height"),
            w = l_checkint(L, 5, "image.crop", "width");
    l_newslot(L);
    return l_finish(L, duel_image_crop(x, y - 1, xx - 1, h, w));
}

static int l_hflip(lua_State *L) {
    duel_tensor *x = l_checktensor(L, 1, "image.hflip");
    l_newslot(L);
    return l_finish(L, duel_image_hflip(x));
}

static int l_grid(lua_State *L) {
    duel_tensor *x = l_checktensor(L, 1, "image.grid");
    int64_t nrow = l_checkint(L, 2, "image.grid", "nrow");
    int64_t pad = l_checkint(L, 3, "image.grid", "padding");
    float v = (float)l_checknumber(L, 4, "image.grid", "pad_value");
    l_newslot(L);
    return l_finish(L, duel_image_grid(x, nrow, pad, v));
}

static int l_sobel(lua_State *L) {
    duel_tensor *x = l_checktensor(L, 1, "sobel_edges");
    float th = (float)l_checknumber(L, 2, "sobel_edges", "threshold");
    l_newslot(L);
    return l_finish(L, duel_sobel_edges(x, th));
}

void l_register_image(lua_State *L, int t) {
    static const luaL_Reg fns[] = {
        {"load", l_load},     {"info", l_info},         {"save", l_save},
        {"resize", l_resize}, {"crop", l_crop},         {"hflip", l_hflip},
        {"grid", l_grid},     {"sobel_edges", l_sobel}, {NULL, NULL}};
    for (const luaL_Reg *r = fns; r->name; r++) {
        lua_pushcfunction(L, r->func);
        lua_setfield(L, t, r->name);
    }
    lua_pushinteger(L, DUEL_IMAGE_MAX_SIDE);
    lua_setfield(L, t, "max_side");
    lua_pushnumber(L, (lua_Number)DUEL_IMAGE_MAX_PIXELS);
    lua_setfield(L, t, "max_pixels");
}
