/* error.c -- errors as values: a thread-local message, and shape formatting for messages. */
#include "duel_impl.h"
#include <stdarg.h>

static _Thread_local char errbuf[512];
static _Thread_local int errcode;

void duel_seterr(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, sizeof errbuf, fmt, ap);
    va_end(ap);
    errcode = code;
}

const char *duel_errmsg(void) { return errbuf[0] ? errbuf : "duel: unknown error"; }
int duel_errcode(void) { return errcode; }
void duel_clear_error(void) {
    errbuf[0] = 0;
    errcode = DUEL_OK;
}

const char *duel_shape_str(const int64_t *shape, int ndim) {
    static _Thread_local char ring[4][160];
    static _Thread_local int next;
    char *b = ring[next];
    next = (next + 1) & 3;
    size_t n = 0;
    b[n++] = '{';
    for (int i = 0; i < ndim && n < 140; i++)
        n += (size_t)snprintf(b + n, 160 - n, i ? ",%lld" : "%lld", (long long)shape[i]);
    b[n++] = '}';
    b[n] = 0;
    return b;
}
