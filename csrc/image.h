/* image.h -- images and data for duel's core: stb_image decoding and writing, resampling kernels,
 * gzipped IDX files, 2-D toy mixtures, Sobel edges, and the background image prefetcher.
 *
 * Same conventions as duel.h (0-based here, errors as values with duel_errmsg(), "new ref").
 * Images are float32 C x H x W (or N x C x H x W) with values in [0,1] unless said otherwise.
 *
 * Thread safety: duel_image_job_run and the functions marked "raw" use only malloc and their
 * arguments (never the tensor allocator, whose counters belong to the Lua thread), so the
 * prefetcher's worker threads may call them. */
#ifndef DUEL_IMAGE_H
#define DUEL_IMAGE_H

#include "duel.h"

/* Decoding refuses larger images before it allocates anything for them (checked on the header
 * with stbi_info_from_memory): a corrupt or hostile header cannot ask for gigabytes. */
#define DUEL_IMAGE_MAX_SIDE 16384
#define DUEL_IMAGE_MAX_PIXELS ((int64_t)1 << 26)
#define DUEL_IMAGE_MAX_FILE ((int64_t)1 << 30) /* bytes read from one image file */

/* ---- decoding and writing (image.c) ---------------------------------------------------------- */
/* raw: decode path into a malloc'd C x H x W float buffer in [0,1]. channels: 0 keeps the file's
 * own count (1-4), else 1, 3 or 4 (gray <-> RGB conversion, alpha added as opaque or dropped).
 * op names the caller in messages. Returns NULL and writes the message into err on failure. */
float *duel_image_decode(const char *path, int channels, const char *op, int *c, int *h, int *w,
                         char *err, size_t errlen);
/* raw: the same, for a file already in memory; path only names it (and its extension decides
 * whether a signature-less file may be a TGA) */
float *duel_image_decode_mem(const uint8_t *buf, size_t n, const char *path, int channels,
                             const char *op, int *c, int *h, int *w, char *err, size_t errlen);
/* raw: the header's width, height and channel count, without decoding the pixels */
int duel_image_info(const char *path, const char *op, int *w, int *h, int *c, char *err,
                    size_t errlen);
duel_tensor *duel_image_load(const char *path, int channels); /* new ref */
/* img: {C,H,W} or {H,W}, values clamped to [0,1] and rounded to 8 bits. The format follows the
 * extension: .png, .jpg/.jpeg (quality 1-100), .bmp, .tga. */
int duel_image_save(const char *path, duel_tensor *img, int quality);

/* ---- resampling (image.c); all work on the last two dims of a tensor with >= 2 dims ---------- */
/* bilinear; shrinking widens the triangle filter by the shrink factor (area-weighted, no
 * aliasing), as PIL's BILINEAR and torch's antialias=True do. Not differentiable. */
duel_tensor *duel_image_resize(duel_tensor *img, int64_t h, int64_t w); /* new ref */
duel_tensor *duel_image_crop(duel_tensor *img, int64_t y, int64_t x, int64_t h, int64_t w);
duel_tensor *duel_image_hflip(duel_tensor *img);
/* raw: planes x ih x iw -> planes x oh x ow (par: may use OpenMP; 0 in worker threads) */
int duel_resize_raw(float *dst, const float *src, int64_t planes, int64_t ih, int64_t iw,
                    int64_t oh, int64_t ow, int par);
/* {N,C,H,W} -> {C, rows*(H+pad)+pad, cols*(W+pad)+pad} with cols = min(nrow, N) */
duel_tensor *duel_image_grid(duel_tensor *batch, int64_t nrow, int64_t pad, float pad_value);
/* {H,W} or {1,H,W} in [0,1] -> same shape: 0 where the Sobel gradient magnitude exceeds
 * threshold (an edge, drawn black), 1 elsewhere (white paper); borders replicate. */
duel_tensor *duel_sobel_edges(duel_tensor *img, float threshold);

/* ---- one image through the loading pipeline (image.c) ---------------------------------------- */
typedef struct duel_image_job {
    const char *path; /* borrowed (the prefetcher keeps its own copies of path and op) */
    const char *op;   /* names the caller in messages ("data.Unaligned") */
    int channels;     /* 1, 3 or 4 */
    int split;        /* 0: whole image -> out[0]; 1: A|B halves -> out[0] = left, out[1] = right */
    int load_h, load_w; /* resize each part to this first; 0: keep the decoded size */
    int crop_y, crop_x; /* 0-based offset of the crop in the loaded part */
    int out_h, out_w;   /* crop size = the output size */
    int flip;           /* mirror left-right */
    float lo, hi;       /* [0,1] maps linearly to [lo,hi] */
    float *out[2];      /* channels*out_h*out_w floats each */
} duel_image_job;
/* raw: decode, split, resize, crop, flip, rescale into job->out. 0, or -1 with err written. */
int duel_image_job_run(const duel_image_job *job, char *err, size_t errlen);

/* ---- IDX files, gzipped or not (idx.c) ------------------------------------------------------- */
/* An unsigned-byte IDX file (magic 0x00 0x00 0x08 ndim) as floats v*scale + shift. When pad > 0
 * and ndim >= 3, the last two dims grow by pad on every side, filled with pad_value. */
duel_tensor *duel_idx_load(const char *path, double scale, double shift, int64_t pad,
                           float pad_value);

/* ---- synthetic data (data.c) ----------------------------------------------------------------- */
/* n x 2 samples of an equal-weight mixture of k isotropic Gaussians with the given means
 * (k x 2, row-major) and std, drawn from duel's RNG (reproducible with duel_manual_seed). */
duel_tensor *duel_toy2d(const double *means, int k, double std, int64_t n);
/* the loader's counter-based uniforms: a pure function of (seed, stream, index, k), in [0,1) */
double duel_data_uniform(uint64_t seed, uint64_t stream, uint64_t index, uint64_t k);

/* ---- the prefetcher (loader.c) --------------------------------------------------------------- */
typedef struct duel_prefetcher duel_prefetcher;
/* workers == 0: no thread, jobs run on the caller's thread at wait time (the same code) */
duel_prefetcher *duel_prefetcher_new(int workers);
void duel_prefetcher_free(duel_prefetcher *p); /* waits for running jobs, drops queued ones */
/* Queue a batch: jobs (copied, paths too) write into outs (retained until waited for).
 * Returns a ticket > 0, or -1 with the error set. */
int64_t duel_prefetcher_submit(duel_prefetcher *p, const duel_image_job *jobs, int njobs,
                               duel_tensor **outs, int nouts);
/* Block until the batch is done. ready: set to 1 when it was already done on arrival. Returns 0,
 * or -1 with duel_errmsg() holding the error of the batch's first failing job. */
int duel_prefetcher_wait(duel_prefetcher *p, int64_t ticket, int *ready);
int duel_prefetcher_workers(const duel_prefetcher *p);

#endif
