/* idx.c -- IDX files (the MNIST family's format), gzipped or plain, read through zlib.
 *
 * Layout: bytes 0-1 are zero, byte 2 the element type (only 0x08, unsigned byte, is accepted),
 * byte 3 the number of dims, then one big-endian u32 size per dim, then the elements in row-major
 * order. Parsing is strict: a bad magic number, another dtype, a size of 0 or too many elements,
 * data shorter or longer than the header announces, and a corrupt gzip stream (zlib checks the
 * CRC at the end) are each an error naming the file. */
#include "duel_impl.h"
#include "image.h"
#include <errno.h>
#include <zlib.h>

#define IDX_MAX_DIMS 4
#define IDX_MAX_ELEMS ((int64_t)1 << 31)

/* read exactly n bytes; returns the count read (short at the end) or -1 on a zlib error */
static int64_t gz_readn(gzFile f, uint8_t *buf, int64_t n) {
    int64_t got = 0;
    while (got < n) {
        int64_t want = n - got > (1 << 30) ? (1 << 30) : n - got;
        int r = gzread(f, buf + got, (unsigned)want);
        if (r < 0) return -1;
        if (r == 0) break;
        got += r;
    }
    return got;
}

/* a message for a failed or short read: zlib's own error when it has one */
static void read_error(gzFile f, const char *path, const char *what, int64_t want, int64_t got) {
    int code;
    const char *msg = gzerror(f, &code);
    if (code != Z_OK && code != Z_STREAM_END)
        duel_seterr(DUEL_EINVAL,
                    "idx_load: cannot read '%s' (corrupt or truncated gzip data), got %s", path,
                    msg);
    else
        duel_seterr(DUEL_EINVAL, "idx_load: '%s' is truncated: the %s needs %lld bytes, got %lld",
                    path, what, (long long)want, (long long)(got < 0 ? 0 : got));
}

duel_tensor *duel_idx_load(const char *path, double scale, double shift, int64_t pad,
                           float pad_value) {
    DUEL_CHECK(pad >= 0 && pad <= 4096, "idx_load: pad must be in [0, 4096], got %lld",
               (long long)pad);
    gzFile f = gzopen(path, "rb");
    if (!f) {
        duel_seterr(DUEL_EINVAL, "idx_load: cannot open '%s', got %s", path,
                    errno ? strerror(errno) : "out of memory");
        return NULL;
    }
    gzbuffer(f, 1 << 17);
    duel_tensor *t = NULL;
    uint8_t *chunk = NULL;
    uint8_t hdr[4 + 4 * IDX_MAX_DIMS];
    int64_t got = gz_readn(f, hdr, 4);
    if (got != 4) {
        read_error(f, path, "header", 4, got);
        goto fail;
    }
    if (hdr[0] || hdr[1]) {
        duel_seterr(DUEL_EINVAL,
                    "idx_load: '%s' is not an IDX file (bad magic number), got "
                    "0x%02x%02x%02x%02x",
                    path, hdr[0], hdr[1], hdr[2], hdr[3]);
        goto fail;
    }
    if (hdr[2] != 0x08) {
        duel_seterr(DUEL_EINVAL,
                    "idx_load: '%s' has an unsupported element type (only 0x08, "
                    "unsigned byte), got 0x%02x",
                    path, hdr[2]);
        goto fail;
    }
    int nd = hdr[3];
    if (nd < 1 || nd > IDX_MAX_DIMS) {
        duel_seterr(DUEL_EINVAL, "idx_load: '%s' must have 1 to %d dims, got %d", path,
                    IDX_MAX_DIMS, nd);
        goto fail;
    }
    got = gz_readn(f, hdr + 4, 4 * nd);
    if (got != 4 * nd) {
        read_error(f, path, "header", 4 + 4 * nd, got < 0 ? got : 4 + got);
        goto fail;
    }
    int64_t shape[IDX_MAX_DIMS], n = 1;
    for (int d = 0; d < nd; d++) {
        const uint8_t *p = hdr + 4 + 4 * d;
        shape[d] = (int64_t)p[0] << 24 | (int64_t)p[1] << 16 | (int64_t)p[2] << 8 | p[3];
        if (shape[d] < 1 || shape[d] > IDX_MAX_ELEMS || (n *= shape[d]) > IDX_MAX_ELEMS) {
            duel_seterr(DUEL_EINVAL,
                        "idx_load: '%s' announces an unreasonable size (each dim in "
                        "[1, 2^31], at most 2^31 elements), got %s",
                        path, duel_shape_str(shape, d + 1));
            goto fail;
        }
    }
    if (pad && nd < 2) {
        duel_seterr(DUEL_EINVAL, "idx_load: padding needs at least 2 dims, got %s in '%s'",
                    duel_shape_str(shape, nd), path);
        goto fail;
    }
    /* all the bytes first, in a buffer that grows as they arrive: a short file cannot make us
     * allocate (and fill) the 4 bytes a float for every element its header announces */
    int64_t cap = n < (1 << 20) ? n : (1 << 20), have = 0;
    chunk = malloc((size_t)cap);
    while (chunk) {
        int64_t r = gz_readn(f, chunk + have, cap - have);
        if (r < 0) break;
        have += r;
        if (have < cap || cap == n) break;
        cap = 2 * cap < n ? 2 * cap : n;
        uint8_t *grown = realloc(chunk, (size_t)cap);
        if (!grown) {
            free(chunk);
            chunk = NULL;
        } else {
            chunk = grown;
        }
    }
    if (!chunk) {
        duel_seterr(DUEL_ENOMEM, "idx_load: out of memory reading '%s', got %lld bytes", path,
                    (long long)cap);
        goto fail;
    }
    if (have != n) {
        read_error(f, path, "data", n, have);
        goto fail;
    }
    int64_t oshape[IDX_MAX_DIMS];
    memcpy(oshape, shape, sizeof shape);
    if (pad) {
        oshape[nd - 2] += 2 * pad;
        oshape[nd - 1] += 2 * pad;
    }
    t = duel_new(oshape, nd, "idx_load");
    if (!t) goto fail;
    int64_t H = nd >= 2 ? shape[nd - 2] : 1, W = shape[nd - 1], OW = oshape[nd - 1];
    int64_t OH = nd >= 2 ? oshape[nd - 2] : 1, planes = n / (H * W);
    if (pad) duel_fill_(t, pad_value);
    float lut[256]; /* computed in double, rounded once: 255*(2/255)-1 gives exactly 1 */
    for (int v = 0; v < 256; v++) lut[v] = (float)(v * scale + shift);
    for (int64_t p = 0; p < planes; p++) {
        const uint8_t *in = chunk + p * H * W;
        float *o = t->data + p * OH * OW + pad * OW + pad;
        for (int64_t i = 0; i < H; i++)
            for (int64_t j = 0; j < W; j++) o[i * OW + j] = lut[in[i * W + j]];
    }
    /* the data must end exactly here; reading on also makes zlib check the stream's CRC */
    uint8_t extra;
    got = gz_readn(f, &extra, 1);
    if (got != 0) {
        if (got < 0)
            read_error(f, path, "data", n, n);
        else
            duel_seterr(DUEL_EINVAL,
                        "idx_load: '%s' has bytes after the %lld its header "
                        "announces, got at least one more",
                        path, (long long)n);
        goto fail;
    }
    int code;
    const char *msg = gzerror(f, &code);
    if (code != Z_OK && code != Z_STREAM_END) {
        duel_seterr(DUEL_EINVAL,
                    "idx_load: cannot read '%s' (corrupt or truncated gzip data), "
                    "got %s",
                    path, msg);
        goto fail;
    }
    free(chunk);
    gzclose(f);
    return t;
fail:
    free(chunk);
    duel_release(t);
    gzclose(f);
    return NULL;
}
