/* serialize.c -- safetensors files for duel.save / duel.load.
 *
 * Layout: 8 bytes N (u64 little-endian), N bytes of UTF-8 JSON header, then the data buffer. The
 * header maps names to {"dtype", "shape", "data_offsets": [begin, end)} (offsets relative to the
 * buffer), plus an optional "__metadata__" string -> string map.
 *
 * The header is read by a schema-directed parser written here: it never recurses, never evaluates
 * anything, and checks what the reference reader checks (header length <= 100,000,000 and inside
 * the file, valid UTF-8, a '{' first, no duplicate keys, offsets contiguous from 0 with no holes
 * or overlaps and exactly covering the buffer, end - begin == numel * itemsize without overflow).
 * Any defect is an error value; nothing here reads outside the bytes it was given. */
#include "duel_impl.h"
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

#define ST_MAX_HEADER 100000000ULL

/* ---- dtypes --------------------------------------------------------------------------------- */

enum { T_F32, T_F64, T_F16, T_BF16, T_I64, T_I32, T_I16, T_I8, T_U64, T_U32, T_U16, T_U8,
       T_BOOL, T_F8_E5M2, T_F8_E4M3, T_COUNT };
static const char *dtype_names[T_COUNT] = {"F32", "F64", "F16", "BF16", "I64", "I32",
                                           "I16", "I8",  "U64", "U32",  "U16", "U8",
                                           "BOOL", "F8_E5M2", "F8_E4M3"};
static const int dtype_size[T_COUNT] = {4, 8, 2, 2, 8, 4, 2, 1, 8, 4, 2, 1, 1, 1, 1};
#define T_READABLE(d) ((d) <= T_BOOL) /* converted to float32 on load; the F8 kinds are not */

static int host_is_le(void) {
    const uint16_t one = 1;
    return *(const unsigned char *)&one == 1;
}

/* ---- UTF-8 and key display ----------------------------------------------------------------- */

/* index of the first byte that is not part of valid UTF-8 (no overlongs, no surrogates,
 * nothing above U+10FFFF), or n when all of s is valid */
static size_t utf8_invalid_at(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len;
        unsigned lo = 0x80, hi = 0xBF;
        if (c < 0x80) { i++; continue; }
        else if (c >= 0xC2 && c <= 0xDF) len = 2;
        else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else return i;
        if (n - i < len) return i;
        if (s[i + 1] < lo || s[i + 1] > hi) return i;
        for (size_t k = 2; k < len; k++)
            if ((s[i + k] & 0xC0) != 0x80) return i;
        i += len;
    }
    return n;
}

/* a name for messages: at most 60 bytes, control bytes shown as '?' */
static const char *show_key(const char *k, size_t n) {
    static _Thread_local char ring[2][72];
    static _Thread_local int next;
    char *b = ring[next];
    next ^= 1;
    size_t m = n > 60 ? 60 : n, j = 0;
    for (size_t i = 0; i < m; i++) b[j++] = (unsigned char)k[i] < 0x20 ? '?' : k[i];
    if (m < n) b[j++] = '.', b[j++] = '.', b[j++] = '.';
    b[j] = 0;
    return b;
}

/* ---- writing --------------------------------------------------------------------------------- */

typedef struct {
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (n > SIZE_MAX / 2 - b->len) {
        b->oom = 1;
        return;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n) cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}
static void sb_str(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }
static void sb_u64(sbuf *b, uint64_t v) {
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v);
    sb_add(b, tmp, (size_t)n);
}

/* a JSON string; s is valid UTF-8 (checked by the caller), so only '"', '\\' and control bytes
 * need escapes */
static void sb_json(sbuf *b, const char *s, size_t n) {
    sb_add(b, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        sb_add(b, s + run, i - run);
        char esc[8];
        if (c == '"' || c == '\\') snprintf(esc, sizeof esc, "\\%c", c);
        else snprintf(esc, sizeof esc, "\\u%04x", c);
        sb_str(b, esc);
        run = i + 1;
    }
    sb_add(b, s + run, n - run);
    sb_add(b, "\"", 1);
}

static int cmp_bytes(const char *a, size_t na, const char *b, size_t nb) {
    int c = memcmp(a, b, na < nb ? na : nb);
    if (c) return c;
    return na < nb ? -1 : na > nb;
}
static int cmp_entry(const void *x, const void *y) {
    const duel_st_entry *a = *(const duel_st_entry *const *)x;
    const duel_st_entry *b = *(const duel_st_entry *const *)y;
    return cmp_bytes(a->key, a->key_len, b->key, b->key_len);
}

/* Validate the entries and build the padded header; *order receives the tensors in file order
 * (sorted by name). Returns 0, or -1 with the error set. */
static int build_header(const duel_st_entry *e, int n, sbuf *hb, const duel_st_entry ***order,
                        int *ntensors) {
    DUEL_CHECK_INT(n >= 0, "save: entry count must be >= 0, got %d", n);
    const duel_st_entry **tens = malloc(sizeof *tens * (size_t)(n ? n : 1));
    const duel_st_entry **meta = malloc(sizeof *meta * (size_t)(n ? n : 1));
    int nt = 0, nm = 0;
    if (!tens || !meta) goto oom;
    for (int i = 0; i < n; i++) {
        const duel_st_entry *x = &e[i];
        const char *what = x->tensor ? "tensor name" : "metadata key";
        if (!x->key) {
            duel_seterr(DUEL_EINVAL, "save: %s is missing, got NULL", what);
            goto fail;
        }
        size_t bad = utf8_invalid_at((const unsigned char *)x->key, x->key_len);
        if (bad < x->key_len) {
            duel_seterr(DUEL_EINVAL, "save: %s is not valid UTF-8, got byte 0x%02x in '%s'", what,
                        (unsigned char)x->key[bad], show_key(x->key, x->key_len));
            goto fail;
        }
        if (x->tensor) {
            if (x->key_len == 12 && !memcmp(x->key, "__metadata__", 12)) {
                duel_seterr(DUEL_EINVAL, "save: a tensor may not be named '__metadata__', got %s",
                            SHAPE(x->tensor));
                goto fail;
            }
            tens[nt++] = x;
        } else {
            if (!x->value) {
                duel_seterr(DUEL_EINVAL, "save: metadata '%s' has no value, got NULL",
                            show_key(x->key, x->key_len));
                goto fail;
            }
            bad = utf8_invalid_at((const unsigned char *)x->value, x->value_len);
            if (bad < x->value_len) {
                duel_seterr(DUEL_EINVAL,
                            "save: metadata '%s' is not valid UTF-8, got byte 0x%02x at %zu",
                            show_key(x->key, x->key_len), (unsigned char)x->value[bad], bad);
                goto fail;
            }
            meta[nm++] = x;
        }
    }
    qsort(tens, (size_t)nt, sizeof *tens, cmp_entry);
    qsort(meta, (size_t)nm, sizeof *meta, cmp_entry);
    for (int i = 1; i < nt; i++)
        if (!cmp_entry(&tens[i - 1], &tens[i])) {
            duel_seterr(DUEL_EINVAL, "save: duplicate tensor name, got '%s'",
                        show_key(tens[i]->key, tens[i]->key_len));
            goto fail;
        }
    for (int i = 1; i < nm; i++)
        if (!cmp_entry(&meta[i - 1], &meta[i])) {
            duel_seterr(DUEL_EINVAL, "save: duplicate metadata key, got '%s'",
                        show_key(meta[i]->key, meta[i]->key_len));
            goto fail;
        }
    sb_add(hb, "{", 1);
    if (nm) {
        sb_str(hb, "\"__metadata__\":{");
        for (int i = 0; i < nm; i++) {
            if (i) sb_add(hb, ",", 1);
            sb_json(hb, meta[i]->key, meta[i]->key_len);
            sb_add(hb, ":", 1);
            sb_json(hb, meta[i]->value, meta[i]->value_len);
        }
        sb_add(hb, "}", 1);
    }
    uint64_t off = 0;
    for (int i = 0; i < nt; i++) {
        const duel_tensor *t = tens[i]->tensor;
        uint64_t bytes = (uint64_t)duel_numel(t) * sizeof(float);
        if (nm || i) sb_add(hb, ",", 1);
        sb_json(hb, tens[i]->key, tens[i]->key_len);
        sb_str(hb, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            if (d) sb_add(hb, ",", 1);
            sb_u64(hb, (uint64_t)t->shape[d]);
        }
        sb_str(hb, "],\"data_offsets\":[");
        sb_u64(hb, off);
        sb_add(hb, ",", 1);
        sb_u64(hb, off + bytes);
        sb_str(hb, "]}");
        off += bytes;
    }
    sb_add(hb, "}", 1);
    while (!hb->oom && hb->len % 8) sb_add(hb, " ", 1); /* keeps the data 8-byte aligned */
    if (hb->oom) goto oom;
    DUEL_CHECK_INT(hb->len <= ST_MAX_HEADER, "save: header too large (over %llu bytes), got %zu",
                   ST_MAX_HEADER, hb->len);
    free(meta);
    *order = tens;
    *ntensors = nt;
    return 0;
oom:
    duel_seterr(DUEL_ENOMEM, "save: out of memory building the header, got %d entries", n);
fail:
    free(tens);
    free(meta);
    return -1;
}

/* where bytes go: a FILE, or a growing memory buffer */
typedef struct {
    FILE *f;
    sbuf mem;
} sink;

static int sink_put(sink *s, const void *p, size_t n) {
    if (!n) return 0;
    if (s->f) return fwrite(p, 1, n, s->f) == n ? 0 : -1;
    sb_add(&s->mem, p, n);
    return s->mem.oom ? -1 : 0;
}

static void bswap32(float *d, int64_t n) {
    uint32_t *u = (uint32_t *)d;
    for (int64_t i = 0; i < n; i++) u[i] = __builtin_bswap32(u[i]);
}

/* header length, header, then each tensor's floats in row-major little-endian order */
static int emit(sink *s, const sbuf *hb, const duel_st_entry **tens, int nt) {
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)hb->len >> (8 * i));
    if (sink_put(s, len8, 8) || sink_put(s, hb->p, hb->len)) return -1;
    for (int i = 0; i < nt; i++) {
        const duel_tensor *t = tens[i]->tensor;
        int64_t n = duel_numel(t);
        if (!n) continue;
        if (duel_is_contiguous(t) && host_is_le()) {
            if (sink_put(s, t->data, (size_t)n * sizeof(float))) return -1;
            continue;
        }
        float *tmp = malloc((size_t)n * sizeof(float));
        if (!tmp) {
            errno = ENOMEM;
            return -1;
        }
        duel_strided_copy(tmp, t);
        if (!host_is_le()) bswap32(tmp, n);
        int rc = sink_put(s, tmp, (size_t)n * sizeof(float));
        free(tmp);
        if (rc) return -1;
    }
    return 0;
}

int duel_st_encode(const duel_st_entry *e, int n, unsigned char **out, size_t *len) {
    sbuf hb = {0};
    const duel_st_entry **tens = NULL;
    int nt = 0;
    *out = NULL;
    *len = 0;
    if (build_header(e, n, &hb, &tens, &nt)) {
        free(hb.p);
        return -1;
    }
    sink s = {0};
    int rc = emit(&s, &hb, tens, nt);
    free(hb.p);
    free(tens);
    if (rc) {
        free(s.mem.p);
        duel_seterr(DUEL_ENOMEM, "save: out of memory encoding, got %d entries", n);
        return -1;
    }
    *out = (unsigned char *)s.mem.p;
    *len = s.mem.len;
    return 0;
}

/* best effort: make the rename itself durable (some file systems refuse fsync on directories) */
static void fsync_dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir;
    if (!slash) dir = strdup(".");
    else if (slash == path) dir = strdup("/");
    else dir = strndup(path, (size_t)(slash - path));
    if (!dir) return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

/* Atomic replace: the data goes to <path>.tmp.<pid>, is flushed to disk, and only then renamed
 * over path. A crash at any point leaves either the old file or the new one at path (a stale
 * temporary may remain next to it). */
int duel_st_save(const char *path, const duel_st_entry *e, int n) {
    DUEL_CHECK_INT(path && *path, "save: path must be a non-empty string, got '%s'",
                   path ? path : "(null)");
    sbuf hb = {0};
    const duel_st_entry **tens = NULL;
    int nt = 0, err = 0;
    if (build_header(e, n, &hb, &tens, &nt)) {
        free(hb.p);
        return -1;
    }
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 32);
    if (!tmp) {
        free(hb.p);
        free(tens);
        duel_seterr(DUEL_ENOMEM, "save: out of memory, got path '%s'", path);
        return -1;
    }
    snprintf(tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());
    const char *stage = "create";
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    sink s = {.f = fd >= 0 ? fdopen(fd, "wb") : NULL};
    if (!s.f) {
        err = errno;
        if (fd >= 0) close(fd), unlink(tmp);
        goto fail;
    }
    stage = "write";
    int rc = emit(&s, &hb, tens, nt) || fflush(s.f);
    if (!rc) stage = "sync", rc = fsync(fileno(s.f));
    err = errno;
    if (fclose(s.f) && !rc) stage = "close", rc = -1, err = errno;
    if (!rc) stage = "rename", rc = rename(tmp, path), err = errno;
    if (rc) {
        unlink(tmp);
        goto fail;
    }
    fsync_dir_of(path);
    free(tmp);
    free(hb.p);
    free(tens);
    return 0;
fail:
    duel_seterr(DUEL_EINVAL, "save: cannot %s '%s' (%s), got path '%s'", stage, tmp,
                strerror(err), path);
    free(tmp);
    free(hb.p);
    free(tens);
    return -1;
}

/* ---- reading: the header parser ------------------------------------------------------------- */

typedef struct {
    char *key;
    size_t key_len;
    int is_meta;
    char *value; /* metadata */
    size_t value_len;
    int dtype, ndim; /* tensors */
    int64_t shape[DUEL_MAXDIM];
    uint64_t begin, end;
} item;

typedef struct {
    const unsigned char *s;
    size_t n, i;
    item *items;
    int nitems, cap;
    int failed;
} parser;

/* what stands at the parse position, for messages */
static const char *got_here(const parser *P) {
    static _Thread_local char b[40];
    if (P->i >= P->n) return "the end of the header";
    unsigned char c = P->s[P->i];
    if (c >= 0x20 && c < 0x7f) snprintf(b, sizeof b, "'%c' at byte %zu", c, P->i);
    else snprintf(b, sizeof b, "byte 0x%02x at %zu", c, P->i);
    return b;
}

static void perr(parser *P, const char *fmt, ...) DUEL_PRINTF(2, 3);
static void perr(parser *P, const char *fmt, ...) {
    if (P->failed) return;
    char what[360];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    duel_seterr(DUEL_EINVAL, "load: bad header JSON: %s, got %s", what, got_here(P));
    P->failed = 1;
}

static void skip_ws(parser *P) {
    while (P->i < P->n) {
        unsigned char c = P->s[P->i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        P->i++;
    }
}

static int expect(parser *P, char c, const char *what) {
    skip_ws(P);
    if (P->i < P->n && P->s[P->i] == (unsigned char)c) {
        P->i++;
        return 0;
    }
    perr(P, "expected %s", what);
    return -1;
}

static int hexval(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int read_hex4(parser *P, unsigned *out) {
    if (P->n - P->i < 4) return -1;
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        int h = hexval(P->s[P->i + (size_t)k]);
        if (h < 0) return -1;
        v = v << 4 | (unsigned)h;
    }
    P->i += 4;
    *out = v;
    return 0;
}

/* A JSON string at the position (after whitespace) into a new buffer with its length. The
 * header was checked to be valid UTF-8 already, so raw bytes copy through unchanged. */
static int parse_string(parser *P, char **out, size_t *len, const char *what) {
    skip_ws(P);
    if (P->i >= P->n || P->s[P->i] != '"') {
        perr(P, "expected %s (a string)", what);
        return -1;
    }
    size_t start = ++P->i;
    /* the decoded string is never longer than its source */
    size_t cap = 1;
    for (size_t j = start; j < P->n && P->s[j] != '"'; j++) cap++, j += P->s[j] == '\\';
    char *b = malloc(cap);
    if (!b) {
        duel_seterr(DUEL_ENOMEM, "load: out of memory reading the header, got %zu bytes", cap);
        P->failed = 1;
        return -1;
    }
    size_t k = 0;
    for (;;) {
        if (P->i >= P->n) {
            free(b);
            perr(P, "unterminated string (started at byte %zu)", start - 1);
            return -1;
        }
        unsigned char c = P->s[P->i];
        if (c == '"') break;
        if (c < 0x20) {
            free(b);
            perr(P, "control character inside a string (escape it)");
            return -1;
        }
        if (c != '\\') {
            b[k++] = (char)c;
            P->i++;
            continue;
        }
        P->i++;
        if (P->i >= P->n) continue; /* reported as unterminated */
        unsigned char e = P->s[P->i++];
        unsigned cp;
        switch (e) {
        case '"': b[k++] = '"'; break;
        case '\\': b[k++] = '\\'; break;
        case '/': b[k++] = '/'; break;
        case 'b': b[k++] = '\b'; break;
        case 'f': b[k++] = '\f'; break;
        case 'n': b[k++] = '\n'; break;
        case 'r': b[k++] = '\r'; break;
        case 't': b[k++] = '\t'; break;
        case 'u':
            if (read_hex4(P, &cp)) goto bad_escape;
            if (cp >= 0xDC00 && cp <= 0xDFFF) goto bad_escape; /* lone low surrogate */
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo;
                if (P->n - P->i < 2 || P->s[P->i] != '\\' || P->s[P->i + 1] != 'u') goto bad_escape;
                P->i += 2;
                if (read_hex4(P, &lo) || lo < 0xDC00 || lo > 0xDFFF) goto bad_escape;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            /* a \uXXXX escape takes 6 source bytes (12 for a pair) and at most 4 here */
            if (cp < 0x80) b[k++] = (char)cp;
            else if (cp < 0x800) {
                b[k++] = (char)(0xC0 | cp >> 6);
                b[k++] = (char)(0x80 | (cp & 0x3F));
            } else if (cp < 0x10000) {
                b[k++] = (char)(0xE0 | cp >> 12);
                b[k++] = (char)(0x80 | (cp >> 6 & 0x3F));
                b[k++] = (char)(0x80 | (cp & 0x3F));
            } else {
                b[k++] = (char)(0xF0 | cp >> 18);
                b[k++] = (char)(0x80 | (cp >> 12 & 0x3F));
                b[k++] = (char)(0x80 | (cp >> 6 & 0x3F));
                b[k++] = (char)(0x80 | (cp & 0x3F));
            }
            break;
        default:
        bad_escape:
            free(b);
            P->i--;
            perr(P, "invalid escape sequence in a string");
            return -1;
        }
    }
    P->i++; /* closing quote */
    b[k] = 0;
    *out = b;
    *len = k;
    return 0;
}

/* a whole number >= 0 below 2^63, digits only (no sign, fraction or exponent) */
static int parse_uint(parser *P, uint64_t *out, const char *what) {
    skip_ws(P);
    size_t j = P->i;
    uint64_t v = 0;
    while (j < P->n && P->s[j] >= '0' && P->s[j] <= '9') {
        unsigned d = P->s[j] - '0';
        if (v > (UINT64_C(0x7FFFFFFFFFFFFFFF) - d) / 10) {
            perr(P, "%s is too large (over 2^63 - 1)", what);
            return -1;
        }
        v = v * 10 + d;
        j++;
    }
    int digits = (int)(j - P->i);
    int leading_zero = digits > 1 && P->s[P->i] == '0';
    if (!digits || leading_zero ||
        (j < P->n && (P->s[j] == '.' || P->s[j] == 'e' || P->s[j] == 'E'))) {
        perr(P, "%s must be a whole number >= 0 written with digits only", what);
        return -1;
    }
    P->i = j;
    *out = v;
    return 0;
}

/* "[a, b, ...]" of whole numbers into v (at most max of them); returns the count or -1 */
static int parse_uint_array(parser *P, uint64_t *v, int max, const char *what) {
    if (expect(P, '[', "'[' to open an array")) return -1;
    skip_ws(P);
    int k = 0;
    if (P->i < P->n && P->s[P->i] == ']') {
        P->i++;
        return 0;
    }
    for (;;) {
        if (k == max) {
            perr(P, "%s has more than %d entries", what, max);
            return -1;
        }
        if (parse_uint(P, &v[k++], what)) return -1;
        skip_ws(P);
        if (P->i < P->n && P->s[P->i] == ',') {
            P->i++;
            continue;
        }
        if (expect(P, ']', "',' or ']' in an array")) return -1;
        return k;
    }
}

static item *new_item(parser *P) {
    if (P->nitems == P->cap) {
        int cap = P->cap ? P->cap * 2 : 16;
        item *q = realloc(P->items, sizeof *q * (size_t)cap);
        if (!q) {
            duel_seterr(DUEL_ENOMEM, "load: out of memory reading the header, got %d entries",
                        P->nitems);
            P->failed = 1;
            return NULL;
        }
        P->items = q;
        P->cap = cap;
    }
    item *it = &P->items[P->nitems++];
    memset(it, 0, sizeof *it);
    return it;
}

static int key_is(const char *k, size_t n, const char *lit) {
    return n == strlen(lit) && !memcmp(k, lit, n);
}

/* {"dtype": "F32", "shape": [..], "data_offsets": [b, e]} in any order, each exactly once */
static int parse_tensor_info(parser *P, item *it) {
    if (expect(P, '{', "'{' to open the entry of a tensor")) return -1;
    int have[3] = {0, 0, 0};
    skip_ws(P);
    if (P->i < P->n && P->s[P->i] == '}') goto close;
    for (;;) {
        char *f;
        size_t fl;
        if (parse_string(P, &f, &fl, "a field name")) return -1;
        int which = key_is(f, fl, "dtype") ? 0 : key_is(f, fl, "shape") ? 1
                  : key_is(f, fl, "data_offsets") ? 2 : -1;
        if (which < 0 || have[which]) {
            duel_seterr(DUEL_EINVAL, "load: tensor '%s' has %s field, got '%s'",
                        show_key(it->key, it->key_len), which < 0 ? "an unknown" : "a duplicate",
                        show_key(f, fl));
            P->failed = 1;
            free(f);
            return -1;
        }
        free(f);
        have[which] = 1;
        if (expect(P, ':', "':' after a field name")) return -1;
        if (which == 0) {
            char *d;
            size_t dl;
            if (parse_string(P, &d, &dl, "a dtype")) return -1;
            it->dtype = -1;
            for (int t = 0; t < T_COUNT; t++)
                if (key_is(d, dl, dtype_names[t])) it->dtype = t;
            if (it->dtype < 0) {
                duel_seterr(DUEL_EINVAL, "load: tensor '%s' has an unknown dtype, got '%s'",
                            show_key(it->key, it->key_len), show_key(d, dl));
                P->failed = 1;
            } else if (!T_READABLE(it->dtype)) {
                duel_seterr(DUEL_EINVAL,
                            "load: tensor '%s' has a dtype duel cannot read (it reads F32, F64, "
                            "F16, BF16, BOOL and integers), got %s",
                            show_key(it->key, it->key_len), dtype_names[it->dtype]);
                P->failed = 1;
            }
            free(d);
            if (P->failed) return -1;
        } else if (which == 1) {
            uint64_t dims[DUEL_MAXDIM];
            int nd = parse_uint_array(P, dims, DUEL_MAXDIM, "a shape");
            if (nd < 0) return -1;
            it->ndim = nd;
            for (int d = 0; d < nd; d++) it->shape[d] = (int64_t)dims[d];
        } else {
            uint64_t o[2];
            int no = parse_uint_array(P, o, 2, "data_offsets");
            if (no < 0) return -1;
            if (no != 2) {
                perr(P, "data_offsets must hold two numbers [begin, end]");
                return -1;
            }
            it->begin = o[0];
            it->end = o[1];
        }
        skip_ws(P);
        if (P->i < P->n && P->s[P->i] == ',') {
            P->i++;
            continue;
        }
        break;
    }
close:
    if (expect(P, '}', "',' or '}' in the entry of a tensor")) return -1;
    for (int k = 0; k < 3; k++)
        if (!have[k]) {
            static const char *names[] = {"dtype", "shape", "data_offsets"};
            duel_seterr(DUEL_EINVAL,
                        "load: tensor '%s' needs dtype, shape and data_offsets, got no %s",
                        show_key(it->key, it->key_len), names[k]);
            P->failed = 1;
            return -1;
        }
    return 0;
}

/* "__metadata__": {"key": "value", ...} */
static int parse_metadata(parser *P) {
    if (expect(P, '{', "'{' to open __metadata__")) return -1;
    skip_ws(P);
    if (P->i < P->n && P->s[P->i] == '}') {
        P->i++;
        return 0;
    }
    for (;;) {
        item *it = new_item(P);
        if (!it) return -1;
        it->is_meta = 1;
        if (parse_string(P, &it->key, &it->key_len, "a metadata key")) return -1;
        if (expect(P, ':', "':' after a metadata key")) return -1;
        if (parse_string(P, &it->value, &it->value_len, "a metadata value"))
            return -1;
        skip_ws(P);
        if (P->i < P->n && P->s[P->i] == ',') {
            P->i++;
            continue;
        }
        return expect(P, '}', "',' or '}' in __metadata__");
    }
}

static int parse_header(parser *P) {
    if (P->i >= P->n || P->s[P->i] != '{') {
        duel_seterr(DUEL_EINVAL, "load: the header must be a JSON object starting with '{', got %s",
                    got_here(P));
        P->failed = 1;
        return -1;
    }
    P->i++;
    int seen_meta = 0;
    skip_ws(P);
    if (P->i < P->n && P->s[P->i] == '}') {
        P->i++;
        goto tail;
    }
    for (;;) {
        char *k;
        size_t kl;
        if (parse_string(P, &k, &kl, "a tensor name")) return -1;
        if (expect(P, ':', "':' after a tensor name")) {
            free(k);
            return -1;
        }
        if (key_is(k, kl, "__metadata__")) {
            free(k);
            if (seen_meta++) {
                duel_seterr(DUEL_EINVAL, "load: duplicate key in the header, got '__metadata__'");
                P->failed = 1;
                return -1;
            }
            if (parse_metadata(P)) return -1;
        } else {
            item *it = new_item(P);
            if (!it) {
                free(k);
                return -1;
            }
            it->key = k;
            it->key_len = kl;
            if (parse_tensor_info(P, it)) return -1;
        }
        skip_ws(P);
        if (P->i < P->n && P->s[P->i] == ',') {
            P->i++;
            continue;
        }
        if (expect(P, '}', "',' or '}' after an entry")) return -1;
        break;
    }
tail:
    skip_ws(P);
    if (P->i != P->n) {
        perr(P, "only spaces may follow the header object");
        return -1;
    }
    return 0;
}

/* ---- reading: validation -------------------------------------------------------------------- */

static int cmp_item_key(const void *x, const void *y) {
    const item *a = *(const item *const *)x, *b = *(const item *const *)y;
    if (a->is_meta != b->is_meta) return a->is_meta - b->is_meta;
    return cmp_bytes(a->key, a->key_len, b->key, b->key_len);
}
static int cmp_item_off(const void *x, const void *y) {
    const item *a = *(const item *const *)x, *b = *(const item *const *)y;
    if (a->begin != b->begin) return a->begin < b->begin ? -1 : 1;
    if (a->end != b->end) return a->end < b->end ? -1 : 1;
    return 0;
}

/* Check the parsed entries against each other and the data size; *order receives the tensors
 * sorted by offset. */
static int validate(item *items, int n, uint64_t data_len, item ***order, int *ntens) {
    item **v = malloc(sizeof *v * (size_t)(n ? n : 1));
    if (!v) {
        duel_seterr(DUEL_ENOMEM, "load: out of memory, got %d entries", n);
        return -1;
    }
    for (int i = 0; i < n; i++) v[i] = &items[i];
    qsort(v, (size_t)n, sizeof *v, cmp_item_key);
    for (int i = 1; i < n; i++)
        if (!cmp_item_key(&v[i - 1], &v[i])) {
            duel_seterr(DUEL_EINVAL, "load: duplicate %s in the header, got '%s'",
                        v[i]->is_meta ? "metadata key" : "tensor name",
                        show_key(v[i]->key, v[i]->key_len));
            goto fail;
        }
    int nt = 0;
    for (int i = 0; i < n; i++) {
        if (v[i]->is_meta) continue;
        item *it = v[i];
        v[nt++] = it;
        const char *name = show_key(it->key, it->key_len);
        /* numel * itemsize, refusing any product past 2^63 */
        uint64_t bytes = (uint64_t)dtype_size[it->dtype];
        for (int d = 0; d < it->ndim; d++) {
            uint64_t s = (uint64_t)it->shape[d];
            if (s && bytes > (UINT64_C(0x7FFFFFFFFFFFFFFF)) / s) {
                duel_seterr(DUEL_EINVAL, "load: tensor '%s' is too large, got shape %s", name,
                            duel_shape_str(it->shape, it->ndim));
                goto fail;
            }
            bytes *= s;
        }
        if (it->end < it->begin) {
            duel_seterr(DUEL_EINVAL, "load: tensor '%s' has data_offsets that end before they "
                        "begin, got [%llu, %llu]", name, (unsigned long long)it->begin,
                        (unsigned long long)it->end);
            goto fail;
        }
        if (it->end > data_len) {
            duel_seterr(DUEL_EINVAL, "load: tensor '%s' has data_offsets past the end of the "
                        "data (%llu bytes), got [%llu, %llu]", name,
                        (unsigned long long)data_len, (unsigned long long)it->begin,
                        (unsigned long long)it->end);
            goto fail;
        }
        if (it->end - it->begin != bytes) {
            duel_seterr(DUEL_EINVAL, "load: tensor '%s' of shape %s and dtype %s needs %llu bytes, "
                        "got data_offsets [%llu, %llu]", name,
                        duel_shape_str(it->shape, it->ndim), dtype_names[it->dtype],
                        (unsigned long long)bytes, (unsigned long long)it->begin,
                        (unsigned long long)it->end);
            goto fail;
        }
    }
    qsort(v, (size_t)nt, sizeof *v, cmp_item_off);
    uint64_t at = 0;
    for (int i = 0; i < nt; i++) {
        const char *name = show_key(v[i]->key, v[i]->key_len);
        if (v[i]->begin < at) {
            duel_seterr(DUEL_EINVAL, "load: tensor '%s' overlaps tensor '%s' (which ends at %llu), "
                        "got data_offsets [%llu, %llu]", name,
                        show_key(v[i - 1]->key, v[i - 1]->key_len), (unsigned long long)at,
                        (unsigned long long)v[i]->begin, (unsigned long long)v[i]->end);
            goto fail;
        }
        if (v[i]->begin > at) {
            duel_seterr(DUEL_EINVAL,
                        "load: hole in the data before tensor '%s' (bytes %llu to %llu unused), "
                        "got data_offsets [%llu, %llu]", name, (unsigned long long)at,
                        (unsigned long long)v[i]->begin, (unsigned long long)v[i]->begin,
                        (unsigned long long)v[i]->end);
            goto fail;
        }
        at = v[i]->end;
    }
    if (at != data_len) {
        duel_seterr(DUEL_EINVAL, "load: the tensors cover %llu bytes of data but the file holds "
                    "more, got %llu bytes of data", (unsigned long long)at,
                    (unsigned long long)data_len);
        goto fail;
    }
    *order = v;
    *ntens = nt;
    return 0;
fail:
    free(v);
    return -1;
}

/* ---- reading: the data ---------------------------------------------------------------------- */

typedef struct {
    FILE *f;                /* read from a file, or */
    const unsigned char *p; /* from memory */
    size_t left;
} source;

static int src_read(source *s, void *dst, size_t n) {
    if (s->f) return fread(dst, 1, n, s->f) == n ? 0 : -1;
    if (n > s->left) return -1;
    memcpy(dst, s->p, n);
    s->p += n;
    s->left -= n;
    return 0;
}

static float half_to_float(uint16_t h) {
    int e = h >> 10 & 0x1F;
    float m = (float)(h & 0x3FF);
    float v = e == 0 ? ldexpf(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexpf(m + 1024, e - 25);
    return h >> 15 ? -v : v;
}

static void convert(float *dst, const unsigned char *b, size_t n, int dt) {
    for (size_t i = 0; i < n; i++) {
        const unsigned char *q = b + i * (size_t)dtype_size[dt];
        uint64_t u = 0;
        for (int k = dtype_size[dt] - 1; k >= 0; k--) u = u << 8 | q[k]; /* little-endian */
        float v;
        switch (dt) {
        case T_F32: {
            uint32_t w = (uint32_t)u;
            memcpy(&v, &w, 4);
            break;
        }
        case T_F64: {
            double d;
            memcpy(&d, &u, 8);
            v = (float)d;
            break;
        }
        case T_F16: v = half_to_float((uint16_t)u); break;
        case T_BF16: {
            uint32_t w = (uint32_t)u << 16;
            memcpy(&v, &w, 4);
            break;
        }
        case T_I64: v = (float)(int64_t)u; break;
        case T_I32: v = (float)(int32_t)(uint32_t)u; break;
        case T_I16: v = (float)(int16_t)(uint16_t)u; break;
        case T_I8: v = (float)(int8_t)(uint8_t)u; break;
        case T_BOOL: v = u ? 1.0f : 0.0f; break;
        default: v = (float)u; break; /* unsigned */
        }
        dst[i] = v;
    }
}

static int read_tensor(source *src, item *it, duel_tensor **out) {
    duel_tensor *t = duel_new(it->shape, it->ndim, "load");
    if (!t) return -1;
    size_t n = (size_t)duel_numel(t), isz = (size_t)dtype_size[it->dtype];
    int rc = 0;
    if (it->dtype == T_F32 && host_is_le()) {
        rc = src_read(src, t->data, n * 4);
    } else {
        unsigned char buf[1 << 15];
        size_t per = sizeof buf / isz;
        for (size_t at = 0; at < n && !rc; at += per) {
            size_t k = n - at < per ? n - at : per;
            rc = src_read(src, buf, k * isz);
            if (!rc) convert(t->data + at, buf, k, it->dtype);
        }
    }
    if (rc) {
        duel_release(t);
        duel_seterr(DUEL_EINVAL, "load: the file ended inside tensor '%s' (truncated?), got "
                    "fewer than %llu bytes", show_key(it->key, it->key_len),
                    (unsigned long long)(it->end - it->begin));
        return -1;
    }
    *out = t;
    return 0;
}

static void free_items(item *items, int n) {
    for (int i = 0; i < n; i++) {
        free(items[i].key);
        free(items[i].value);
    }
    free(items);
}

/* parse header h (n bytes), then read the tensors from src holding data_len bytes */
static duel_st *decode(const unsigned char *h, size_t n, source *src, uint64_t data_len) {
    size_t bad = utf8_invalid_at(h, n);
    DUEL_CHECK(bad == n, "load: the header is not valid UTF-8, got byte 0x%02x at %zu",
               bad < n ? h[bad] : 0, bad);
    parser P = {.s = h, .n = n};
    item **order = NULL;
    int nt = 0;
    duel_st *st = NULL;
    if (parse_header(&P) || validate(P.items, P.nitems, data_len, &order, &nt)) goto done;
    st = calloc(1, sizeof *st);
    if (st) st->entries = calloc((size_t)(P.nitems ? P.nitems : 1), sizeof *st->entries);
    if (!st || !st->entries) {
        free(st);
        st = NULL;
        duel_seterr(DUEL_ENOMEM, "load: out of memory, got %d entries", P.nitems);
        goto done;
    }
    /* metadata first, then the tensors in file order; keys and values change owner */
    for (int i = 0; i < P.nitems; i++) {
        item *it = &P.items[i];
        if (!it->is_meta) continue;
        duel_st_entry *e = &st->entries[st->n++];
        e->key = it->key, e->key_len = it->key_len;
        e->value = it->value, e->value_len = it->value_len;
        it->key = it->value = NULL;
    }
    for (int i = 0; i < nt; i++) {
        duel_st_entry *e = &st->entries[st->n];
        if (read_tensor(src, order[i], &e->tensor)) {
            duel_st_free(st);
            st = NULL;
            goto done;
        }
        e->key = order[i]->key, e->key_len = order[i]->key_len;
        order[i]->key = NULL;
        st->n++;
    }
done:
    free(order);
    free_items(P.items, P.nitems);
    return st;
}

static uint64_t le64(const unsigned char *b) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | b[i];
    return v;
}

/* header length against the limits and the size of what holds it */
static int check_hlen(uint64_t hlen, uint64_t size) {
    DUEL_CHECK_INT(hlen <= ST_MAX_HEADER, "load: header length exceeds %llu bytes, got %llu",
                   ST_MAX_HEADER, (unsigned long long)hlen);
    DUEL_CHECK_INT(hlen <= size - 8, "load: header length runs past the end of the file "
                   "(%llu bytes), got %llu", (unsigned long long)size, (unsigned long long)hlen);
    return 0;
}

duel_st *duel_st_decode(const unsigned char *buf, size_t len) {
    DUEL_CHECK(buf || !len, "load: no buffer, got NULL with %zu bytes", len);
    DUEL_CHECK(len >= 8, "load: too short for a safetensors file (8-byte header length), got %zu "
               "bytes", len);
    uint64_t hlen = le64(buf);
    if (check_hlen(hlen, len)) return NULL;
    source src = {.p = buf + 8 + hlen, .left = len - 8 - (size_t)hlen};
    return decode(buf + 8, (size_t)hlen, &src, src.left);
}

duel_st *duel_st_load(const char *path) {
    DUEL_CHECK(path, "load: path must be a string, got NULL");
    FILE *f = fopen(path, "rb");
    DUEL_CHECK(f, "load: cannot open '%s' (%s), got path '%s'", path, strerror(errno), path);
    struct stat sb;
    duel_st *st = NULL;
    unsigned char *h = NULL, len8[8];
    if (fstat(fileno(f), &sb) || !S_ISREG(sb.st_mode)) {
        duel_seterr(DUEL_EINVAL, "load: not a regular file, got path '%s'", path);
        goto done;
    }
    uint64_t size = (uint64_t)sb.st_size;
    if (size < 8 || fread(len8, 1, 8, f) != 8) {
        duel_seterr(DUEL_EINVAL, "load: too short for a safetensors file (8-byte header length), "
                    "got %llu bytes", (unsigned long long)size);
        goto done;
    }
    uint64_t hlen = le64(len8);
    if (check_hlen(hlen, size)) goto done;
    h = malloc(hlen ? (size_t)hlen : 1);
    if (!h) {
        duel_seterr(DUEL_ENOMEM, "load: out of memory for the header, got %llu bytes",
                    (unsigned long long)hlen);
        goto done;
    }
    if (fread(h, 1, (size_t)hlen, f) != hlen) {
        duel_seterr(DUEL_EINVAL, "load: the file ended inside the header (truncated?), got "
                    "path '%s'", path);
        goto done;
    }
    source src = {.f = f};
    st = decode(h, (size_t)hlen, &src, size - 8 - hlen);
done:
    free(h);
    fclose(f);
    return st;
}

void duel_st_free(duel_st *st) {
    if (!st) return;
    for (int i = 0; i < st->n; i++) {
        free(st->entries[i].key);
        free(st->entries[i].value);
        duel_release(st->entries[i].tensor);
    }
    free(st->entries);
    free(st);
}
