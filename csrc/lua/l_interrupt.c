/* l_interrupt.c -- Ctrl-C for the REPL (bin/duel) and the notebook server: _core.catch_interrupts.
 *
 * LuaJIT's own SIGINT handler turns the first Ctrl-C into an "interrupted!" error and resets the
 * signal to its default action, so that a second Ctrl-C kills a process stuck in C code. A REPL
 * must then put the handler back after every interrupt, and any SIGINT that lands before it does
 * (or after the last line, when luajit's main has already reset the default) ends the session.
 * This handler stays installed: a Ctrl-C sets a hook that raises "interrupted!" at the next Lua
 * instruction; only a second Ctrl-C while that error is still pending (the process is inside one
 * long C call) takes the default action. */
#include "l_util.h"
#include <pthread.h>
#include <signal.h>
#include <string.h>

static lua_State *interrupt_L;
static pthread_t interrupt_main; /* the thread that runs interrupt_L */
static volatile sig_atomic_t interrupt_pending;
static struct sigaction interrupt_prev;
static int interrupt_installed;

static void interrupt_hook(lua_State *L, lua_Debug *ar) {
    lua_Debug d;
    int level = 0;
    (void)ar;
    lua_sethook(L, NULL, 0, 0);
    interrupt_pending = 0;
    /* the hook may fire on the call or return of a C function, which has no line: name the
     * nearest Lua function on the stack instead */
    while (lua_getstack(L, level, &d) && lua_getinfo(L, "l", &d) && d.currentline <= 0) level++;
    luaL_where(L, level);
    lua_pushfstring(L, "%sinterrupted!", lua_tostring(L, -1));
    lua_error(L);
}

static void interrupt_action(int sig) {
    /* The kernel hands a process's signal to any thread that does not hold it back; the main
     * thread holds signals while oneDNN runs (duel_impl.h). Another thread passes it on, so
     * that it waits for the main thread and the hook is set there. */
    if (!pthread_equal(pthread_self(), interrupt_main)) {
        pthread_kill(interrupt_main, sig);
        return;
    }
    if (interrupt_pending) {
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    interrupt_pending = 1;
    /* lua_sethook is the one Lua API call documented as safe from a signal handler */
    lua_sethook(interrupt_L, interrupt_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

/* _core.catch_interrupts(mode): 'error' installs the handler above (call it from the main
 * thread); 'ignore' ignores SIGINT (a session that is closing); 'restore' puts back what was
 * there before the first call. Any pending interrupt is dropped. */
static int l_catch_interrupts(lua_State *L) {
    const char *mode = luaL_checkstring(L, 1);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    if (strcmp(mode, "error") == 0) {
        int is_main = lua_pushthread(L);
        lua_pop(L, 1);
        if (!is_main) return l_raise(L, "catch_interrupts: call it from the main thread, got a coroutine");
        interrupt_L = L;
        interrupt_main = pthread_self();
        sa.sa_handler = interrupt_action;
    } else if (strcmp(mode, "ignore") == 0) {
        sa.sa_handler = SIG_IGN;
    } else if (strcmp(mode, "restore") == 0) {
        if (!interrupt_installed) return 0;
        sa = interrupt_prev;
    } else {
        return l_raise(L, "catch_interrupts: mode must be 'error', 'ignore' or 'restore', got '%s'", mode);
    }
    if (interrupt_L) lua_sethook(interrupt_L, NULL, 0, 0);
    interrupt_pending = 0;
    if (!interrupt_installed) {
        sigaction(SIGINT, &sa, &interrupt_prev);
        interrupt_installed = 1;
    } else {
        sigaction(SIGINT, &sa, NULL);
    }
    return 0;
}

void l_register_interrupt(lua_State *L, int core) {
    lua_pushcfunction(L, l_catch_interrupts);
    lua_setfield(L, core, "catch_interrupts");
}
