/* image.c -- image files through Debian's stb_image / stb_image_write (the one
 * STB_*_IMPLEMENTATION of the build), resampling kernels, and one image through the loading
 * pipeline (decode, split, resize, crop, flip, rescale) for the prefetcher.
 *
 * Decoding is defensive: the file is read whole (bounded), its format is recognised by its
 * signature (or by the .tga extension, which has none), the header's dimensions are checked
 * against DUEL_IMAGE_MAX_* before any pixel buffer exists, and formats whose stb decoder pads a
 * truncated file with zeros (JPEG, BMP, TGA) are checked for completeness first. Every failure is
 * a message naming the file and the problem, never a crash. */
#include "duel_impl.h"
#include "image.h"
#include <ctype.h>
#include <strings.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

/* Only the four formats the API promises are compiled in: less decoder surface for hostile
 * files. Everything is static to this file, so no symbol clashes with a libstb elsewhere. */
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_ONLY_BMP
#define STBI_ONLY_TGA
#define STBI_NO_STDIO
#define STBI_NO_LINEAR
#define STBI_NO_HDR
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
/* stb's JPEG writer shifts set bits into the sign of an int (stbiw__jpg_writeBits); wrapping
 * semantics make that defined, so the sanitizer build (make check) stays clean */
#pragma GCC push_options
#pragma GCC optimize("wrapv")
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized" /* -O3 false positives in stbi__context */
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop
#pragma GCC pop_options
/* the static prototypes of the formats left out (GIF, HDR) are never defined; gcc reports that
 * at the end of the file, so the warning stays off for this file */
#pragma GCC diagnostic ignored "-Wunused-function"

static void seterr(char *err, size_t len, const char *fmt, ...) DUEL_PRINTF(3, 4);
static void seterr(char *err, size_t len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
}

/* ---- formats --------------------------------------------------------------------------------- */
enum { FMT_NONE, FMT_PNG, FMT_JPEG, FMT_BMP, FMT_TGA };
static const char *fmt_name[] = {"image", "PNG", "JPEG", "BMP", "TGA"};

static int ext_format(const char *path) {
    const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
    if (!dot || (slash && dot < slash)) return FMT_NONE;
    const char *e = dot + 1;
    if (!strcasecmp(e, "png")) return FMT_PNG;
    if (!strcasecmp(e, "jpg") || !strcasecmp(e, "jpeg")) return FMT_JPEG;
    if (!strcasecmp(e, "bmp")) return FMT_BMP;
    if (!strcasecmp(e, "tga")) return FMT_TGA;
    return FMT_NONE;
}

static const char *ext_of(const char *path) {
    const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
    return (!dot || (slash && dot < slash)) ? "" : dot;
}

static int sig_format(const uint8_t *b, size_t n) {
    if (n >= 8 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8)) return FMT_PNG;
    /* stb_image takes any run of 0xFF fill bytes before the SOI marker, and anything after it,
     * as a JPEG, whatever the name: such a file must get the JPEG checks, never pass as a TGA */
    if (n >= 2 && b[0] == 0xFF) {
        size_t i = 1;
        while (i < n && b[i] == 0xFF) i++;
        if (i < n && b[i] == 0xD8) return FMT_JPEG;
    }
    if (n >= 2 && b[0] == 'B' && b[1] == 'M') return FMT_BMP;
    return FMT_NONE;
}

static uint32_t le16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t le32(const uint8_t *p) { return le16(p) | le16(p + 2) << 16; }

/* 1 when every Huffman table of a DHT segment (b: its payload, n bytes) declares at most 256
 * codes that fit in the segment. Debian's stb_image (2022-09) builds a table from the declared
 * counts without that check and writes past its 257-entry array, so a hostile file is stopped
 * here, before stb sees it. */
static int jpeg_dht_ok(const uint8_t *b, size_t n, uint8_t defined[2][4]) {
    size_t i = 0;
    while (i < n) {
        if (n - i < 17) return 0;
        if (b[i] >> 4 <= 1 && (b[i] & 15) <= 3) defined[b[i] >> 4][b[i] & 15] = 1;
        size_t codes = 0;
        for (int k = 1; k <= 16; k++) codes += b[i + k];
        if (codes > 256 || codes > n - i - 17) return 0;
        i += 17 + codes;
    }
    return 1;
}

/* 1 when every Huffman table a scan (SOS payload b, n bytes) decodes with has been defined.
 * stb_image keeps its tables in uninitialised memory, so a scan naming a table no DHT defined
 * would make it index with garbage. DC tables are read by first DC scans (Ss = 0, Ah = 0), AC
 * tables by scans that reach past the DC term (Se > 0). */
static int jpeg_sos_ok(const uint8_t *b, size_t n, uint8_t defined[2][4]) {
    if (n < 1 || n < 1 + 2 * (size_t)b[0] + 3) return 0;
    size_t ns = b[0];
    int ss = b[1 + 2 * ns], se = b[2 + 2 * ns], ah = b[3 + 2 * ns] >> 4;
    for (size_t k = 0; k < ns; k++) {
        int td = b[2 + 2 * k] >> 4, ta = b[2 + 2 * k] & 15;
        if (ss == 0 && ah == 0 && (td > 3 || !defined[0][td])) return 0;
        if (se > 0 && (ta > 3 || !defined[1][ta])) return 0;
    }
    return 1;
}

/* 1 when the JPEG stream reaches its end-of-image marker with sound Huffman tables; 0 when it is
 * truncated, -1 when a table is corrupt or missing. stb_image decodes a truncated scan without
 * complaint (it reads zeros past the end), so truncation is found on the marker structure:
 * segments are skipped by their length, entropy-coded data up to the next marker. */
static int jpeg_complete(const uint8_t *b, size_t n) {
    uint8_t defined[2][4] = {{0}};
    size_t i = 2;
    while (i + 1 < n) {
        if (b[i] != 0xFF) { /* stray bytes between segments: decoders skip them too */
            i++;
            continue;
        }
        uint8_t m = b[i + 1];
        if (m == 0xFF) { /* fill byte */
            i++;
            continue;
        }
        if (m == 0xD9) return 1;
        if (m == 0x01 || (m >= 0xD0 && m <= 0xD8)) { /* markers without a length */
            i += 2;
            continue;
        }
        if (i + 3 >= n) return 0;
        size_t len = (size_t)b[i + 2] << 8 | b[i + 3];
        if (len < 2) return 0;
        if (m == 0xC4 && (len > n - i - 2 || !jpeg_dht_ok(b + i + 4, len - 2, defined))) return -1;
        if (m == 0xDA && len <= n - i - 2 && !jpeg_sos_ok(b + i + 4, len - 2, defined)) return -1;
        i += 2 + len;
        if (m == 0xDA) /* start of scan: data runs to a marker other than a stuffed 0 or RSTn */
            while (i + 1 < n && !(b[i] == 0xFF && b[i + 1] != 0x00 && b[i + 1] != 0xFF &&
                                  !(b[i + 1] >= 0xD0 && b[i + 1] <= 0xD7)))
                i++;
    }
    return 0;
}

/* 1 when the PNG's chunk list runs complete up to its IEND chunk (CRC included) */
static int png_complete(const uint8_t *b, size_t n) {
    size_t i = 8;
    while (i + 12 <= n) {
        size_t len = (size_t)b[i] << 24 | (size_t)b[i + 1] << 16 | (size_t)b[i + 2] << 8 | b[i + 3];
        if (len > (size_t)1 << 31 || len > n - i - 12) return 0;
        if (!memcmp(b + i + 4, "IEND", 4)) return 1;
        i += 12 + len;
    }
    return 0;
}

/* 1 when an uncompressed BMP holds all the rows its header announces (stb pads with zeros) */
static int bmp_complete(const uint8_t *b, size_t n) {
    if (n < 26) return 0;
    uint32_t off = le32(b + 10), hsz = le32(b + 14);
    int64_t w, h, bpp, comp = 0;
    if (hsz == 12) {
        w = le16(b + 18), h = le16(b + 20), bpp = le16(b + 24);
    } else {
        if (n < 34) return 0;
        w = (int32_t)le32(b + 18), h = (int32_t)le32(b + 22), bpp = le16(b + 28);
        comp = le32(b + 30);
    }
    if (h < 0) h = -h;
    if (w <= 0 || w > DUEL_IMAGE_MAX_SIDE || h > DUEL_IMAGE_MAX_SIDE ||
        (comp != 0 && comp != 3 && comp != 6))
        return 1; /* the size check or stb reports these */
    int64_t row = (w * bpp + 31) / 32 * 4;
    return (int64_t)n >= (int64_t)off + row * h;
}

/* 1 when a TGA holds all the pixels its header announces, walking RLE packets if compressed */
static int tga_complete(const uint8_t *b, size_t n) {
    if (n < 18) return 0;
    int type = b[2], bits = b[16];
    int64_t w = le16(b + 12), h = le16(b + 14), px = (bits + 7) / 8;
    int64_t pos = 18 + b[0] + (b[1] == 1 ? (int64_t)le16(b + 5) * ((b[7] + 7) / 8) : 0);
    int64_t npx = w * h;
    if (type == 1 || type == 2 || type == 3) return (int64_t)n >= pos + npx * px;
    if (type != 9 && type != 10 && type != 11) return 1; /* stb rejects these itself */
    for (int64_t got = 0; got < npx;) {
        if (pos >= (int64_t)n) return 0;
        int hdr = b[pos++];
        int64_t run = (hdr & 0x7F) + 1;
        pos += (hdr & 0x80) ? px : run * px;
        got += run;
        if (pos > (int64_t)n) return 0;
    }
    return 1;
}

/* ---- reading a file -------------------------------------------------------------------------- */
/* The whole file, read with open/fstat/read: O_NONBLOCK keeps a FIFO named like an image from
 * blocking the open, and only regular files are read. strerror_r (GNU form): worker threads call
 * this too. */
static uint8_t *read_file(const char *path, const char *op, size_t *len, char *err, size_t errlen) {
    char eb[128];
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        seterr(err, errlen, "%s: cannot open '%s', got %s", op, path,
               strerror_r(errno, eb, sizeof eb));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        seterr(err, errlen, "%s: '%s' is not a regular file, got %s", op, path,
               S_ISDIR(st.st_mode) ? "a directory" : "another kind of file");
        close(fd);
        return NULL;
    }
    if ((int64_t)st.st_size > DUEL_IMAGE_MAX_FILE) {
        seterr(err, errlen, "%s: file '%s' is too large (at most %lld bytes), got %lld bytes", op,
               path, (long long)DUEL_IMAGE_MAX_FILE, (long long)st.st_size);
        close(fd);
        return NULL;
    }
    size_t n = (size_t)st.st_size, got = 0;
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) {
        seterr(err, errlen, "%s: out of memory reading '%s', got %zu bytes", op, path, n);
        close(fd);
        return NULL;
    }
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    if (got != n) { /* the file shrank while being read, or a read error */
        seterr(err, errlen, "%s: cannot read '%s', got %zu of %zu bytes", op, path, got, n);
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

/* the format the extension names; FMT_NONE with err set for any other extension */
static int check_ext(const char *path, const char *op, char *err, size_t errlen) {
    int ext = ext_format(path);
    if (ext == FMT_NONE)
        seterr(
            err, errlen,
            "%s: '%s' has an unknown image extension (expected .png, .jpg, .jpeg, .bmp or .tga), "
            "got '%s'",
            op, path, ext_of(path));
    return ext;
}

/* The file's format, after the checks every reader shares (signature, structure, header,
 * size bounds); FMT_NONE with err set on failure. */
static int check_format(const char *path, const char *op, const uint8_t *buf, size_t n, int *w,
                        int *h, int *c, char *err, size_t errlen) {
    int ext = ext_format(path);
    if (n == 0) {
        seterr(err, errlen, "%s: cannot decode '%s' (empty file), got 0 bytes", op, path);
        return FMT_NONE;
    }
    /* the signature decides; only a .tga file (no signature) goes to stb without one, so that
     * random bytes named .png are never guessed to be some TGA */
    int fmt = sig_format(buf, n);
    if (fmt == FMT_NONE && ext == FMT_TGA) fmt = FMT_TGA;
    if (fmt == FMT_NONE) {
        seterr(err, errlen,
               "%s: cannot decode '%s' (not a PNG, JPEG, BMP or TGA file), got first bytes "
               "%02x %02x %02x %02x",
               op, path, buf[0], n > 1 ? buf[1] : 0, n > 2 ? buf[2] : 0, n > 3 ? buf[3] : 0);
        return FMT_NONE;
    }
    /* structure first: stb's header parser (stbi_info) already builds JPEG Huffman tables */
    int complete = fmt == FMT_PNG    ? png_complete(buf, n)
                   : fmt == FMT_JPEG ? jpeg_complete(buf, n)
                   : fmt == FMT_BMP  ? bmp_complete(buf, n)
                                     : tga_complete(buf, n);
    if (complete != 1) {
        seterr(err, errlen, "%s: cannot decode '%s' (corrupt or truncated %s), got %s", op, path,
               fmt_name[fmt],
               complete < 0      ? "a corrupt Huffman table"
               : fmt == FMT_PNG  ? "no complete IEND chunk"
               : fmt == FMT_JPEG ? "no end-of-image marker"
                                 : "fewer pixel bytes than its header says");
        return FMT_NONE;
    }
    if (n > INT32_MAX || !stbi_info_from_memory(buf, (int)n, w, h, c)) {
        seterr(err, errlen, "%s: cannot decode '%s' (corrupt or truncated %s), got %s", op, path,
               fmt_name[fmt], n > INT32_MAX ? "a file over 2 GiB" : stbi_failure_reason());
        return FMT_NONE;
    }
    if (*w < 1 || *h < 1 || *w > DUEL_IMAGE_MAX_SIDE || *h > DUEL_IMAGE_MAX_SIDE ||
        (int64_t)*w * *h > DUEL_IMAGE_MAX_PIXELS) {
        seterr(err, errlen,
               "%s: image '%s' is too large (at most %d pixels a side and %lld in all), got %dx%d",
               op, path, DUEL_IMAGE_MAX_SIDE, (long long)DUEL_IMAGE_MAX_PIXELS, *w, *h);
        return FMT_NONE;
    }
    return fmt;
}

int duel_image_info(const char *path, const char *op, int *w, int *h, int *c, char *err,
                    size_t errlen) {
    if (check_ext(path, op, err, errlen) == FMT_NONE) return -1;
    size_t n;
    uint8_t *buf = read_file(path, op, &n, err, errlen);
    if (!buf) return -1;
    int fmt = check_format(path, op, buf, n, w, h, c, err, errlen);
    free(buf);
    return fmt == FMT_NONE ? -1 : 0;
}

float *duel_image_decode_mem(const uint8_t *buf, size_t n, const char *path, int channels,
                             const char *op, int *c, int *h, int *w, char *err, size_t errlen) {
    if (channels != 0 && channels != 1 && channels != 3 && channels != 4) {
        seterr(err, errlen, "%s: channels must be 1, 3 or 4, got %d", op, channels);
        return NULL;
    }
    if (check_ext(path, op, err, errlen) == FMT_NONE) return NULL;
    int fc;
    int fmt = check_format(path, op, buf, n, w, h, &fc, err, errlen);
    if (fmt == FMT_NONE) return NULL;
    int x, y, comp;
    uint8_t *px = stbi_load_from_memory(buf, (int)n, &x, &y, &comp, channels);
    if (!px) {
        seterr(err, errlen, "%s: cannot decode '%s' (corrupt or truncated %s), got %s", op, path,
               fmt_name[fmt], stbi_failure_reason());
        return NULL;
    }
    /* the header and the decoder disagree: trust neither */
    if (x != *w || y != *h || comp < 1 || comp > 4) {
        seterr(err, errlen, "%s: cannot decode '%s' (corrupt %s), got a header of %dx%d and %s", op,
               path, fmt_name[fmt], *w, *h, "different pixels");
        stbi_image_free(px);
        return NULL;
    }
    int C = channels ? channels : comp;
    int64_t hw = (int64_t)x * y;
    float *out = malloc((size_t)(C * hw) * sizeof(float));
    if (!out) {
        seterr(err, errlen, "%s: out of memory decoding '%s', got %dx%dx%d", op, path, C, y, x);
        stbi_image_free(px);
        return NULL;
    }
    /* interleaved HWC bytes -> planar CHW floats in [0,1]; k/255 correctly rounded, so 255 is
     * exactly 1 and saving rounds every value back to its byte */
    float lut[256];
    for (int v = 0; v < 256; v++) lut[v] = (float)v / 255.0f;
    for (int ch = 0; ch < C; ch++)
        for (int64_t i = 0; i < hw; i++) out[ch * hw + i] = lut[px[i * C + ch]];
    stbi_image_free(px);
    *c = C;
    return out;
}

float *duel_image_decode(const char *path, int channels, const char *op, int *c, int *h, int *w,
                         char *err, size_t errlen) {
    if (check_ext(path, op, err, errlen) == FMT_NONE) return NULL;
    size_t n;
    uint8_t *buf = read_file(path, op, &n, err, errlen);
    if (!buf) return NULL;
    float *out = duel_image_decode_mem(buf, n, path, channels, op, c, h, w, err, errlen);
    free(buf);
    return out;
}

duel_tensor *duel_image_load(const char *path, int channels) {
    char err[512];
    int c, h, w;
    float *px = duel_image_decode(path, channels, "image.load", &c, &h, &w, err, sizeof err);
    if (!px) {
        duel_seterr(DUEL_EINVAL, "%s", err);
        return NULL;
    }
    duel_tensor *t = duel_new((int64_t[]){c, h, w}, 3, "image.load");
    if (t) memcpy(t->data, px, (size_t)c * h * w * sizeof(float));
    free(px);
    return t;
}

/* ---- writing --------------------------------------------------------------------------------- */
typedef struct {
    FILE *f;
    int failed;
} write_ctx;

static void write_fn(void *ctx, void *data, int size) {
    write_ctx *w = ctx;
    if (!w->failed && size > 0 && fwrite(data, 1, (size_t)size, w->f) != (size_t)size)
        w->failed = 1;
}

int duel_image_save(const char *path, duel_tensor *img, int quality) {
    int fmt = ext_format(path);
    DUEL_CHECK_INT(fmt != FMT_NONE,
                   "image.save: '%s' has an unknown image extension (expected .png, .jpg, .jpeg, "
                   ".bmp or .tga), got '%s'",
                   path, ext_of(path));
    DUEL_CHECK_INT(img->ndim == 2 || img->ndim == 3,
                   "image.save: image must be {C,H,W} or {H,W}, got %s", SHAPE(img));
    int64_t C = img->ndim == 3 ? img->shape[0] : 1, H = img->shape[img->ndim - 2],
            W = img->shape[img->ndim - 1];
    DUEL_CHECK_INT(C >= 1 && C <= 4, "image.save: image must have 1 to 4 channels, got %s",
                   SHAPE(img));
    DUEL_CHECK_INT(
        H >= 1 && W >= 1 && H <= DUEL_IMAGE_MAX_SIDE && W <= DUEL_IMAGE_MAX_SIDE &&
            H * W <= DUEL_IMAGE_MAX_PIXELS,
        "image.save: image must be 1 to %d pixels a side and at most %lld in all, got %s",
        DUEL_IMAGE_MAX_SIDE, (long long)DUEL_IMAGE_MAX_PIXELS, SHAPE(img));
    DUEL_CHECK_INT(quality >= 1 && quality <= 100,
                   "image.save: quality must be in [1, 100], got %d", quality);
    duel_tensor *xc = duel_contiguous(img);
    if (!xc) return -1;
    int64_t hw = H * W;
    uint8_t *px = malloc((size_t)(C * hw));
    if (!px) {
        duel_release(xc);
        duel_seterr(DUEL_ENOMEM, "image.save: out of memory, got %s", SHAPE(img));
        return -1;
    }
    /* planar floats -> interleaved bytes; clamped, NaN to 0, rounded to nearest */
    for (int64_t ch = 0; ch < C; ch++)
        for (int64_t i = 0; i < hw; i++) {
            float v = xc->data[ch * hw + i];
            v = v > 0.0f ? (v < 1.0f ? v : 1.0f) : 0.0f;
            px[i * C + ch] = (uint8_t)(v * 255.0f + 0.5f);
        }
    duel_release(xc);
    FILE *f = fopen(path, "wb");
    if (!f) {
        char eb[128];
        free(px);
        duel_seterr(DUEL_EINVAL, "image.save: cannot write '%s', got %s", path,
                    strerror_r(errno, eb, sizeof eb));
        return -1;
    }
    write_ctx ctx = {f, 0};
    int w = (int)W, h = (int)H, c = (int)C, ok;
    switch (fmt) {
    case FMT_PNG: ok = stbi_write_png_to_func(write_fn, &ctx, w, h, c, px, w * c); break;
    case FMT_JPEG: ok = stbi_write_jpg_to_func(write_fn, &ctx, w, h, c, px, quality); break;
    case FMT_BMP: ok = stbi_write_bmp_to_func(write_fn, &ctx, w, h, c, px); break;
    default: ok = stbi_write_tga_to_func(write_fn, &ctx, w, h, c, px); break;
    }
    free(px);
    int closed = fclose(f) == 0;
    if (!ok || ctx.failed || !closed) {
        char eb[128];
        duel_seterr(DUEL_EINVAL, "image.save: cannot write '%s', got %s", path,
                    ok ? strerror_r(errno, eb, sizeof eb) : "an encoder failure");
        return -1;
    }
    return 0;
}

/* ---- resampling ------------------------------------------------------------------------------ */
/* Output sample i of an axis reads input [lo[i], lo[i]+taps) with weights w[i*taps ...]. The
 * filter is a triangle of radius 1 output pixel, i.e. max(1, in/out) input pixels: plain
 * bilinear (align_corners=False, edges clamped) when enlarging, an area-weighted average with no
 * aliasing when shrinking. Weights are renormalised where the window leaves the image. Every
 * window has the same length (zero weights pad the short ones and windows at the right edge
 * start earlier), so the kernels run a fixed-length loop. */
typedef struct {
    int64_t *lo;
    float *w;
    int taps;
} rs_axis;

static void rs_free(rs_axis *a) {
    free(a->lo);
    free(a->w);
}

static double tri(double d) { return fabs(d) < 1.0 ? 1.0 - fabs(d) : 0.0; }

/* the inputs with a non-zero weight for output i: j + 0.5 strictly within fs of the centre */
static void rs_support(double center, double fs, int64_t in, int64_t *lo, int64_t *hi) {
    *lo = (int64_t)floor(center - fs - 0.5) + 1;
    *hi = (int64_t)ceil(center + fs - 0.5);
    if (*lo < 0) *lo = 0;
    if (*hi > in) *hi = in;
    if (*hi <= *lo) { /* cannot happen (the nearest input is within 0.5), but stay in range */
        *lo = (int64_t)(center < (double)in ? center : (double)(in - 1));
        *hi = *lo + 1;
    }
}

static int rs_make(rs_axis *a, int64_t in, int64_t out) {
    double scale = (double)in / (double)out, fs = scale > 1.0 ? scale : 1.0;
    int64_t taps = 1, lo, hi;
    for (int64_t i = 0; i < out; i++) {
        rs_support(((double)i + 0.5) * scale, fs, in, &lo, &hi);
        if (hi - lo > taps) taps = hi - lo;
    }
    a->taps = (int)taps;
    a->lo = malloc((size_t)out * sizeof *a->lo);
    a->w = calloc((size_t)out * (size_t)taps, sizeof *a->w);
    if (!a->lo || !a->w) {
        rs_free(a);
        return -1;
    }
    for (int64_t i = 0; i < out; i++) {
        double center = ((double)i + 0.5) * scale, sum = 0.0;
        rs_support(center, fs, in, &lo, &hi);
        int64_t start = lo + taps > in ? in - taps : lo; /* taps <= in: start >= 0 */
        for (int64_t j = lo; j < hi; j++) sum += tri(((double)j + 0.5 - center) / fs);
        float *w = a->w + i * taps;
        for (int64_t j = lo; j < hi; j++)
            w[j - start] = (float)(tri(((double)j + 0.5 - center) / fs) / sum);
        a->lo[i] = start;
    }
    return 0;
}

/* src: planes x ih x iw -> dst: planes x oh x ow; horizontal pass into tmp, then vertical */
int duel_resize_raw(float *dst, const float *src, int64_t planes, int64_t ih, int64_t iw,
                    int64_t oh, int64_t ow, int par) {
    if (ih == oh && iw == ow) {
        memcpy(dst, src, (size_t)(planes * ih * iw) * sizeof(float));
        return 0;
    }
    rs_axis ax = {0}, ay = {0};
    float *tmp = malloc((size_t)(planes * ih * ow) * sizeof(float));
    if (!tmp || rs_make(&ax, iw, ow) || rs_make(&ay, ih, oh)) {
        free(tmp);
        rs_free(&ax);
        return -1;
    }
    int64_t rows = planes * ih;
    par = par && planes * oh * ow * (ax.taps + ay.taps) >= DUEL_PAR_MIN;
    const float *restrict xw = ax.w, *restrict yw = ay.w;
    const int64_t *xlo = ax.lo, *ylo = ay.lo;
    const int xt = ax.taps, yt = ay.taps;
    DUEL_PAR_FOR(par,
    for (int64_t r = 0; r < rows; r++) {
        const float *restrict s = src + r * iw;
        float *restrict t = tmp + r * ow;
        for (int64_t j = 0; j < ow; j++) {
            const float *w = xw + j * xt, *sj = s + xlo[j];
            float acc = 0.0f;
            for (int k = 0; k < xt; k++) acc += w[k] * sj[k];
            t[j] = acc;
        }
    });
    DUEL_PAR_FOR(par,
    for (int64_t p = 0; p < planes * oh; p++) {
        int64_t plane = p / oh, i = p % oh;
        const float *restrict t = tmp + (plane * ih + ylo[i]) * ow;
        float *restrict d = dst + p * ow;
        float w0 = yw[i * yt];
        for (int64_t j = 0; j < ow; j++) d[j] = w0 * t[j];
        for (int k = 1; k < yt; k++) {
            float wk = yw[i * yt + k];
            if (wk == 0.0f) continue;
            const float *restrict tk = t + k * ow;
            for (int64_t j = 0; j < ow; j++) d[j] += wk * tk[j];
        }
    });
    free(tmp);
    rs_free(&ax);
    rs_free(&ay);
    return 0;
}

/* the last two dims of x as planes x H x W, plus the shape of a result with new H, W */
static int64_t planes_of(const duel_tensor *x) {
    int64_t p = 1;
    for (int d = 0; d < x->ndim - 2; d++) p *= x->shape[d];
    return p;
}

static duel_tensor *new_hw(const duel_tensor *x, int64_t h, int64_t w, const char *op) {
    int64_t shape[DUEL_MAXDIM];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 2] = h;
    shape[x->ndim - 1] = w;
    return duel_new(shape, x->ndim, op);
}

duel_tensor *duel_image_resize(duel_tensor *img, int64_t h, int64_t w) {
    DUEL_CHECK(img->ndim >= 2, "image.resize: image must have at least 2 dims {H,W}, got %s",
               SHAPE(img));
    DUEL_CHECK(h >= 1 && w >= 1 && h <= DUEL_IMAGE_MAX_SIDE && w <= DUEL_IMAGE_MAX_SIDE,
               "image.resize: size must be 1 to %d a side, got %lldx%lld", DUEL_IMAGE_MAX_SIDE,
               (long long)h, (long long)w);
    int64_t ih = img->shape[img->ndim - 2], iw = img->shape[img->ndim - 1];
    DUEL_CHECK(ih >= 1 && iw >= 1, "image.resize: image must not be empty, got %s", SHAPE(img));
    duel_tensor *xc = duel_contiguous(img);
    if (!xc) return NULL;
    duel_tensor *y = new_hw(xc, h, w, "image.resize");
    if (y && duel_resize_raw(y->data, xc->data, planes_of(xc), ih, iw, h, w, 1)) {
        duel_release(y);
        y = NULL;
        duel_seterr(DUEL_ENOMEM, "image.resize: out of memory, got %s", SHAPE(img));
    }
    duel_release(xc);
    return y;
}

duel_tensor *duel_image_crop(duel_tensor *img, int64_t y, int64_t x, int64_t h, int64_t w) {
    DUEL_CHECK(img->ndim >= 2, "image.crop: image must have at least 2 dims {H,W}, got %s",
               SHAPE(img));
    int64_t H = img->shape[img->ndim - 2], W = img->shape[img->ndim - 1];
    DUEL_CHECK(h >= 1 && w >= 1 && y >= 0 && x >= 0 && y + h <= H && x + w <= W,
               "image.crop: region (y=%lld, x=%lld, h=%lld, w=%lld) must lie inside the image %s",
               (long long)y + 1, (long long)x + 1, (long long)h, (long long)w, SHAPE(img));
    duel_tensor *xc = duel_contiguous(img);
    if (!xc) return NULL;
    duel_tensor *out = new_hw(xc, h, w, "image.crop");
    if (out) {
        int64_t P = planes_of(xc);
        for (int64_t p = 0; p < P; p++)
            for (int64_t i = 0; i < h; i++)
                memcpy(out->data + (p * h + i) * w, xc->data + (p * H + y + i) * W + x,
                       (size_t)w * sizeof(float));
    }
    duel_release(xc);
    return out;
}

duel_tensor *duel_image_hflip(duel_tensor *img) {
    DUEL_CHECK(img->ndim >= 2, "image.hflip: image must have at least 2 dims {H,W}, got %s",
               SHAPE(img));
    duel_tensor *xc = duel_contiguous(img);
    if (!xc) return NULL;
    duel_tensor *out = duel_empty_like(xc);
    if (out) {
        int64_t W = xc->shape[xc->ndim - 1], rows = W ? duel_numel(xc) / W : 0;
        for (int64_t r = 0; r < rows; r++)
            for (int64_t j = 0; j < W; j++) out->data[r * W + j] = xc->data[r * W + W - 1 - j];
    }
    duel_release(xc);
    return out;
}

duel_tensor *duel_image_grid(duel_tensor *batch, int64_t nrow, int64_t pad, float pad_value) {
    DUEL_CHECK(batch->ndim == 4, "image.grid: batch must be {N,C,H,W}, got %s", SHAPE(batch));
    DUEL_CHECK(nrow >= 1, "image.grid: nrow must be at least 1, got %lld", (long long)nrow);
    DUEL_CHECK(pad >= 0 && pad <= 4096, "image.grid: padding must be in [0, 4096], got %lld",
               (long long)pad);
    int64_t N = batch->shape[0], C = batch->shape[1], H = batch->shape[2], W = batch->shape[3];
    DUEL_CHECK(N >= 1 && C >= 1 && H >= 1 && W >= 1, "image.grid: batch must not be empty, got %s",
               SHAPE(batch));
    int64_t cols = nrow < N ? nrow : N, rows = (N + cols - 1) / cols;
    int64_t GH = rows * (H + pad) + pad, GW = cols * (W + pad) + pad;
    DUEL_CHECK(GH <= DUEL_IMAGE_MAX_SIDE && GW <= DUEL_IMAGE_MAX_SIDE,
               "image.grid: the grid would exceed %d pixels a side, got %lldx%lld",
               DUEL_IMAGE_MAX_SIDE, (long long)GH, (long long)GW);
    duel_tensor *xc = duel_contiguous(batch);
    if (!xc) return NULL;
    duel_tensor *g = duel_full((int64_t[]){C, GH, GW}, 3, pad_value);
    if (g)
        for (int64_t n = 0; n < N; n++) {
            int64_t y0 = (n / cols) * (H + pad) + pad, x0 = (n % cols) * (W + pad) + pad;
            for (int64_t c = 0; c < C; c++)
                for (int64_t i = 0; i < H; i++)
                    memcpy(g->data + (c * GH + y0 + i) * GW + x0,
                           xc->data + ((n * C + c) * H + i) * W, (size_t)W * sizeof(float));
        }
    duel_release(xc);
    return g;
}

duel_tensor *duel_sobel_edges(duel_tensor *img, float threshold) {
    DUEL_CHECK(img->ndim == 2 || (img->ndim == 3 && img->shape[0] == 1),
               "sobel_edges: image must be {H,W} or {1,H,W}, got %s", SHAPE(img));
    DUEL_CHECK(threshold >= 0.0f, "sobel_edges: threshold must be non-negative, got %g", threshold);
    int64_t H = img->shape[img->ndim - 2], W = img->shape[img->ndim - 1];
    duel_tensor *xc = duel_contiguous(img);
    if (!xc) return NULL;
    duel_tensor *out = duel_empty_like(xc);
    if (out) {
        const float *p = xc->data;
#define PX(i, j)                                                                                   \
    p[((i) < 0 ? 0 : (i) >= H ? H - 1 : (i)) * W + ((j) < 0 ? 0 : (j) >= W ? W - 1 : (j))]
        for (int64_t i = 0; i < H; i++)
            for (int64_t j = 0; j < W; j++) {
                float gx = (PX(i - 1, j + 1) + 2 * PX(i, j + 1) + PX(i + 1, j + 1)) -
                           (PX(i - 1, j - 1) + 2 * PX(i, j - 1) + PX(i + 1, j - 1));
                float gy = (PX(i + 1, j - 1) + 2 * PX(i + 1, j) + PX(i + 1, j + 1)) -
                           (PX(i - 1, j - 1) + 2 * PX(i - 1, j) + PX(i - 1, j + 1));
                out->data[i * W + j] = sqrtf(gx * gx + gy * gy) > threshold ? 0.0f : 1.0f;
            }
#undef PX
    }
    duel_release(xc);
    return out;
}

/* ---- one image through the loading pipeline -------------------------------------------------- */
int duel_image_job_run(const duel_image_job *job, char *err, size_t errlen) {
    int c, h, w;
    float *img = duel_image_decode(job->path, job->channels, job->op, &c, &h, &w, err, errlen);
    if (!img) return -1;
    int rc = -1, parts = job->split ? 2 : 1, pw = job->split ? w / 2 : w;
    float *part = NULL, *loaded = NULL;
    if (job->split && w % 2) {
        seterr(err, errlen,
               "%s: aligned image '%s' must hold A|B side by side with an even width, got %dx%d",
               job->op, job->path, w, h);
        goto done;
    }
    int lh = job->load_h ? job->load_h : h, lw = job->load_w ? job->load_w : pw;
    if (job->crop_y < 0 || job->crop_x < 0 || job->crop_y + job->out_h > lh ||
        job->crop_x + job->out_w > lw) {
        seterr(err, errlen, "%s: crop (y=%d, x=%d, h=%d, w=%d) does not fit image '%s' of %dx%d",
               job->op, job->crop_y + 1, job->crop_x + 1, job->out_h, job->out_w, job->path, lw,
               lh);
        goto done;
    }
    part = malloc((size_t)c * h * pw * sizeof(float));
    loaded = malloc((size_t)c * lh * lw * sizeof(float));
    if (!part || !loaded) {
        seterr(err, errlen, "%s: out of memory loading '%s', got %dx%d", job->op, job->path, w, h);
        goto done;
    }
    float scale = job->hi - job->lo;
    for (int p = 0; p < parts; p++) {
        for (int64_t r = 0; r < (int64_t)c * h; r++) /* the part's columns, contiguous */
            memcpy(part + r * pw, img + r * w + p * pw, (size_t)pw * sizeof(float));
        if (duel_resize_raw(loaded, part, c, h, pw, lh, lw, 0)) {
            seterr(err, errlen, "%s: out of memory resizing '%s', got %dx%d", job->op, job->path,
                   lw, lh);
            goto done;
        }
        float *out = job->out[p];
        for (int ch = 0; ch < c; ch++)
            for (int i = 0; i < job->out_h; i++) {
                const float *row = loaded + ((int64_t)ch * lh + job->crop_y + i) * lw + job->crop_x;
                float *o = out + ((int64_t)ch * job->out_h + i) * job->out_w;
                for (int j = 0; j < job->out_w; j++)
                    o[j] = job->lo + scale * row[job->flip ? job->out_w - 1 - j : j];
            }
    }
    rc = 0;
done:
    free(img);
    free(part);
    free(loaded);
    return rc;
}
