/* conv.c -- linear (a fused op), and conv2d / conv_transpose2d / conv2d_weight: a family closed
 * under differentiation (DESIGN.md's table). All three share one geometry, the conv2d relation
 * between an image x {N,C,H,W} and a column-side map y {N,O,Ho,Wo} through a weight {O,C/g,kh,kw}:
 *   conv2d(x, w)           x -> y          im2col, then Y_g = W_g . col
 *   conv_transpose2d(y, w) y -> x          col = W_g^T . Y_g, then col2im (the adjoint)
 *   conv2d_weight(x, y)    (x, y) -> w     dW_g = Y_g . col^T
 * The batch is folded into the GEMM's column dimension: col is {C/g*kh*kw, nb*Ho*Wo} for a block
 * of nb samples, so small feature maps still give large GEMMs. Special cases skip im2col: a kernel
 * covering the whole image (DCGAN's first and last layers) is one plain GEMM on x, a 1x1 stride-1
 * kernel reads x's planes as col, at most 4 output channels (an RGB output layer) use direct
 * kernels, since a GEMM with M <= 4 spends its time copying col, and wide 3x3 stride-1 layers
 * (ResNet blocks) take Winograd's F(2x2,3x3) for all three (winograd.c). */
#include "../duel_impl.h"
#include <cblas.h>

/* Scratch for one block of im2col columns, in floats: blocks of whole samples while they fit,
 * else of whole output rows of one sample, so a large image never needs a giant buffer. */
#ifndef DUEL_CONV_COL_BUDGET
#define DUEL_CONV_COL_BUDGET (4 << 20)
#endif
/* Scratch (col and the permute buffer, or winograd.c's transforms) is kept between calls: a
 * fresh multi-MB buffer page-faults on every touch, measured at a fifth of a large conv's time.
 * One buffer serves both, as no call uses the two at once. Ops run on the Lua thread only;
 * _Thread_local keeps it correct for several states in several threads all the same. */
static _Thread_local float *scratch;
static _Thread_local int64_t scratch_n;

float *duel_conv_scratch(int64_t n, const char *op) {
    if (n <= scratch_n) return scratch;
    /* not into the tensor cache, which would keep every outgrown size: oneDNN's scratch grows
     * several times over a pix2pix128b16 step, and its peak RSS went 1477 -> 1359 MB for this
     * (bench/README.md, item 13) */
    duel_release_floats(scratch, scratch_n);
    scratch_n = 0;
    if (!(scratch = duel_alloc_floats(n, op))) return NULL;
    scratch_n = n;
    return scratch;
}

/* Maps at least this large get one GEMM per sample straight into/out of the tensor; smaller ones
 * one GEMM for the whole block through a permuting copy. On one thread 256 to 4096 measured the
 * same; larger GEMMs split better over many threads. */
#ifndef DUEL_CONV_PER_SAMPLE
#define DUEL_CONV_PER_SAMPLE 4096
#endif

typedef struct {
    int64_t N, C, H, W; /* image side */
    int64_t O, Ho, Wo;  /* column side */
    int64_t kh, kw, sh, sw, ph, pw, dh, dw, g;
} geom;

/* iparam layout of every node of the family: sh sw ph pw dh dw groups [kh kw] */
enum { P_SH, P_SW, P_PH, P_PW, P_DH, P_DW, P_G, P_KH, P_KW };

static int64_t conv_out(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d) {
    int64_t span = in + 2 * p - d * (k - 1) - 1;
    return span < 0 ? 0 : span / s + 1;
}

/* Ho, Wo are explicit: conv_transpose2d's output_padding may exceed the stride (when smaller
 * than the dilation), and then its adjoint conv2d keeps fewer rows than the natural size. */
static geom make_geom(const int64_t *xshape, int64_t O, int64_t kh, int64_t kw, int64_t Ho,
                      int64_t Wo, const int64_t *ip) {
    /* clang-format off */
    geom q = {xshape[0], xshape[1], xshape[2], xshape[3], O, Ho, Wo, kh, kw,
              ip[P_SH], ip[P_SW], ip[P_PH], ip[P_PW], ip[P_DH], ip[P_DW], ip[P_G]};
    /* clang-format on */
    return q;
}

/* the kernel covers the whole unpadded image: a fully connected layer on x's flattened planes */
static int is_dense(const geom *q) {
    return q->Ho == 1 && q->Wo == 1 && q->ph == 0 && q->pw == 0 && q->kh == q->H && q->kw == q->W &&
           (q->dh == 1 || q->kh == 1) && (q->dw == 1 || q->kw == 1);
}

/* Winograd F(2x2,3x3) (winograd.c) for all three modes: 3x3, stride 1, no dilation or
 * groups, natural output size, both channel counts at least DUEL_WINO_MIN_CH (narrower layers
 * spend their time in the transforms) and at least DUEL_WINO_MIN_TILES 2x2 output tiles in the
 * batch (the filter transform does not shrink with the map; 64 is a cautious guess, see
 * bench/conv_shapes.lua). -DDUEL_WINO_MIN_CH=1000000 turns it off, for comparisons. */
#ifndef DUEL_WINO_MIN_CH
#define DUEL_WINO_MIN_CH 32
#endif
#ifndef DUEL_WINO_MIN_TILES
#define DUEL_WINO_MIN_TILES 64
#endif
static int is_winograd(const geom *q) {
    return q->g == 1 && q->kh == 3 && q->kw == 3 && q->sh == 1 && q->sw == 1 && q->dh == 1 &&
           q->dw == 1 && q->ph <= 2 && q->pw <= 2 && q->Ho == q->H + 2 * q->ph - 2 &&
           q->Wo == q->W + 2 * q->pw - 2 && q->C >= DUEL_WINO_MIN_CH && q->O >= DUEL_WINO_MIN_CH &&
           q->N * ((q->Ho + 1) / 2) * ((q->Wo + 1) / 2) >= DUEL_WINO_MIN_TILES;
}

static int is_pointwise(const geom *q) {
    return q->kh == 1 && q->kw == 1 && q->sh == 1 && q->sw == 1 && q->ph == 0 && q->pw == 0 &&
           q->Ho == q->H && q->Wo == q->W;
}

/* ---- kernels ----------------------------------------------------------------------------- */

/* Output columns [lo, hi) whose input column ow*sw + off lies inside [0, W). */
static void valid_cols(int64_t off, int64_t sw, int64_t W, int64_t Wo, int64_t *lo, int64_t *hi) {
    int64_t a = off >= 0 ? 0 : (-off + sw - 1) / sw;
    int64_t b = W - 1 - off < 0 ? 0 : (W - 1 - off) / sw + 1;
    if (b > Wo) b = Wo;
    if (a > b) a = b;
    *lo = a;
    *hi = b;
}

/* col {Cg*kh*kw, nb*nr*Wo} <- x {N,C,H,W}: channels [c0, c0+Cg), samples [n0, n0+nb), output
 * rows [r0, r0+nr); column (s*nr + r)*Wo + ow, zero where the window reads padding.
 * Rows of col are independent: parallel over them (a 3-channel input still has 3*kh*kw). */
static void im2col_kernel(float *col, const float *x, const geom *q, int64_t c0, int64_t n0,
                          int64_t nb, int64_t r0, int64_t nr) {
    int64_t Cg = q->C / q->g, K = q->kh * q->kw, rows = Cg * K, ncol = nb * nr * q->Wo;
    int64_t H = q->H, W = q->W, Wo = q->Wo, sw = q->sw;
    DUEL_PAR_FOR(rows * ncol >= DUEL_PAR_MIN,
    for (int64_t row = 0; row < rows; row++) {
        int64_t c = row / K, i = row % K / q->kw, j = row % q->kw;
        int64_t off = j * q->dw - q->pw, lo, hi;
        valid_cols(off, sw, W, Wo, &lo, &hi);
        for (int64_t s = 0; s < nb; s++) {
            const float *xp = x + ((n0 + s) * q->C + c0 + c) * H * W;
            for (int64_t r = 0; r < nr; r++) {
                float *d = col + row * ncol + (s * nr + r) * Wo;
                int64_t ih = (r0 + r) * q->sh - q->ph + i * q->dh;
                if (ih < 0 || ih >= H) {
                    memset(d, 0, (size_t)Wo * sizeof(float));
                    continue;
                }
                const float *xr = xp + ih * W + off;
                for (int64_t ow = 0; ow < lo; ow++) d[ow] = 0.0f;
                /* short rows (Wo of 4 or 8 is common): an inline loop, not a memcpy call */
                if (sw == 1) {
_Pragma("omp simd")
                    for (int64_t ow = lo; ow < hi; ow++) d[ow] = xr[ow];
                } else {
_Pragma("omp simd")
                    for (int64_t ow = lo; ow < hi; ow++) d[ow] = xr[ow * sw];
                }
                for (int64_t ow = hi; ow < Wo; ow++) d[ow] = 0.0f;
            }
        }
    });
}

/* x {N,C,H,W} += col2im(col): the adjoint of im2col_kernel over the same block. Windows overlap
 * within a channel, so the parallel loop runs over (sample, channel) planes. */
static void col2im_kernel(float *x, const float *col, const geom *q, int64_t c0, int64_t n0,
                          int64_t nb, int64_t r0, int64_t nr) {
    int64_t Cg = q->C / q->g, K = q->kh * q->kw, ncol = nb * nr * q->Wo;
    int64_t H = q->H, W = q->W, Wo = q->Wo, sw = q->sw;
    DUEL_PAR_FOR(Cg * K * ncol >= DUEL_PAR_MIN,
    for (int64_t p = 0; p < nb * Cg; p++) {
        int64_t s = p / Cg, c = p % Cg;
        float *xp = x + ((n0 + s) * q->C + c0 + c) * H * W;
        for (int64_t i = 0; i < q->kh; i++)
            for (int64_t j = 0; j < q->kw; j++) {
                int64_t off = j * q->dw - q->pw, lo, hi;
                valid_cols(off, sw, W, Wo, &lo, &hi);
                const float *src = col + (c * K + i * q->kw + j) * ncol + s * nr * Wo;
                for (int64_t r = 0; r < nr; r++) {
                    int64_t ih = (r0 + r) * q->sh - q->ph + i * q->dh;
                    if (ih < 0 || ih >= H) continue;
                    float *xr = xp + ih * W + off;
                    const float *sr = src + r * Wo;
                    if (sw == 1) {
_Pragma("omp simd")
                        for (int64_t ow = lo; ow < hi; ow++) xr[ow] += sr[ow];
                    } else {
                        for (int64_t ow = lo; ow < hi; ow++) xr[ow * sw] += sr[ow];
                    }
                }
            }
    });
}

/* Between a map y {N,O,HW} and a block matrix t {Og, nb*HW} of group channels [o0, o0+Og):
 * to_block: t <- y (gather), else y <- t (scatter). */
static void permute_kernel(float *t, float *y, int64_t O, int64_t o0, int64_t Og, int64_t n0,
                           int64_t nb, int64_t HW, int to_block) {
    DUEL_PAR_FOR(nb * Og * HW >= DUEL_PAR_MIN,
    for (int64_t p = 0; p < nb * Og; p++) {
        int64_t s = p / Og, o = p % Og;
        float *a = t + o * nb * HW + s * HW, *b = y + ((n0 + s) * O + o0 + o) * HW;
        if (to_block)
            memcpy(a, b, (size_t)HW * sizeof(float));
        else
            memcpy(b, a, (size_t)HW * sizeof(float));
    });
}

/* y {N,O,HW} += b {O} (or y = b when set) */
static void bias_kernel(float *y, const float *b, int64_t N, int64_t O, int64_t HW, int set) {
    DUEL_PAR_FOR(N * O * HW >= DUEL_PAR_MIN,
    for (int64_t p = 0; p < N * O; p++) {
        float v = b ? b[p % O] : 0.0f, *yr = y + p * HW;
        if (set)
            for (int64_t i = 0; i < HW; i++) yr[i] = v;
        else
            for (int64_t i = 0; i < HW; i++) yr[i] += v;
    });
}


enum { D_FWD, D_ADJ, D_WGT }; /* conv_run's modes, below */

/* ---- direct kernels for at most 4 output channels ------------------------------------------- */
/* With O <= 4 a GEMM does 2*O flops per element of col: all the time goes to writing col and
 * packing it (CycleGAN's last layer, 64->3 k7, ran at 5% of sgemm). These kernels read a padded
 * copy of one sample instead, vectorised along output columns (stride 1 along W). */

/* 8 floats (AVX where enabled, else what the target has); v8u for unaligned access. Macros, not
 * functions: a vector argument or return value would change the ABI without AVX (-Wpsabi). */
typedef float v8 __attribute__((vector_size(32)));
typedef float v8u __attribute__((vector_size(32), aligned(4), may_alias));
#define LOAD8(p) (*(const v8u *)(p))
#define STORE8(p, v) (*(v8u *)(p) = (v))

static int is_small_out(const geom *q) {
    return q->g == 1 && q->O <= 4 && q->sw == 1 && q->Wo >= 8;
}

/* xp {C,Hp,Wp} = x {C,H,W} (one sample) with ph, pw zeros around */
static void pad_kernel(float *xp, const float *x, const geom *q, int64_t Hp, int64_t Wp) {
    DUEL_PAR_FOR(q->C * Hp * Wp >= DUEL_PAR_MIN,
    for (int64_t c = 0; c < q->C; c++) {
        float *d = xp + c * Hp * Wp;
        memset(d, 0, (size_t)(q->ph * Wp) * sizeof(float));
        for (int64_t h = 0; h < q->H; h++) {
            float *dr = d + (h + q->ph) * Wp;
            memset(dr, 0, (size_t)q->pw * sizeof(float));
            memcpy(dr + q->pw, x + (c * q->H + h) * q->W, (size_t)q->W * sizeof(float));
            memset(dr + q->pw + q->W, 0, (size_t)(Wp - q->pw - q->W) * sizeof(float));
        }
        memset(d + (q->H + q->ph) * Wp, 0, (size_t)((Hp - q->H - q->ph) * Wp) * sizeof(float));
    });
}

/* x {C,H,W} += the interior of xp {C,Hp,Wp} (one sample) */
static void unpad_add_kernel(float *x, const float *xp, const geom *q, int64_t Hp, int64_t Wp) {
    DUEL_PAR_FOR(q->C * q->H * q->W >= DUEL_PAR_MIN,
    for (int64_t c = 0; c < q->C; c++)
        for (int64_t h = 0; h < q->H; h++) {
            float *d = x + (c * q->H + h) * q->W;
            const float *s = xp + (c * Hp + h + q->ph) * Wp + q->pw;
            for (int64_t w = 0; w < q->W; w++) d[w] += s[w];
        });
}

/* OpenMP outlines a parallel loop before inlining, so the loops below sit in always_inline row
 * functions that each parallel loop calls through a switch on NO: every NO gets its own code,
 * with the accumulators in registers. */

/* y[o][oh][:] for o < NO = sum over c,i,j of w[o,c,i,j] xp[c][oh*sh + i*dh][ow + j*dw] (one
 * sample): 16 output columns of all NO channels stay in registers through the c,i,j loop */
static inline __attribute__((always_inline)) void small_fwd_row(int NO, float *y, const float *xp,
                                                                const float *w, const geom *q,
                                                                int64_t Hp, int64_t Wp,
                                                                int64_t oh) {
    int64_t CK = q->C * q->kh * q->kw, Wo = q->Wo, ow0 = 0;
    for (; ow0 + 16 <= Wo; ow0 += 16) {
        /* named accumulators: an array indexed by o is kept in memory by the compiler */
        v8 a0 = {0}, b0 = {0}, a1 = {0}, b1 = {0}, a2 = {0}, b2 = {0}, a3 = {0}, b3 = {0};
        for (int64_t c = 0; c < q->C; c++)
            for (int64_t i = 0; i < q->kh; i++) {
                const float *xr = xp + (c * Hp + oh * q->sh + i * q->dh) * Wp + ow0;
                const float *wr = w + (c * q->kh + i) * q->kw;
                for (int64_t j = 0; j < q->kw; j++) {
                    v8 x0 = LOAD8(xr + j * q->dw), x1 = LOAD8(xr + j * q->dw + 8);
                    a0 += x0 * wr[j];
                    b0 += x1 * wr[j];
                    if (NO > 1) {
                        a1 += x0 * wr[CK + j];
                        b1 += x1 * wr[CK + j];
                    }
                    if (NO > 2) {
                        a2 += x0 * wr[2 * CK + j];
                        b2 += x1 * wr[2 * CK + j];
                    }
                    if (NO > 3) {
                        a3 += x0 * wr[3 * CK + j];
                        b3 += x1 * wr[3 * CK + j];
                    }
                }
            }
        v8 acc[8] = {a0, b0, a1, b1, a2, b2, a3, b3};
        for (int o = 0; o < NO; o++) {
            STORE8(y + (o * q->Ho + oh) * Wo + ow0, acc[2 * o]);
            STORE8(y + (o * q->Ho + oh) * Wo + ow0 + 8, acc[2 * o + 1]);
        }
    }
    for (int64_t ow = ow0; ow < Wo; ow++) /* the last Wo % 16 columns */
        for (int o = 0; o < NO; o++) {
            float acc = 0.0f;
            for (int64_t c = 0; c < q->C; c++)
                for (int64_t i = 0; i < q->kh; i++) {
                    const float *xr = xp + (c * Hp + oh * q->sh + i * q->dh) * Wp + ow;
                    const float *wr = w + o * CK + (c * q->kh + i) * q->kw;
                    for (int64_t j = 0; j < q->kw; j++) acc += wr[j] * xr[j * q->dw];
                }
            y[(o * q->Ho + oh) * Wo + ow] = acc;
        }
}

/* dxp[c] += the adjoint of small_fwd_row's map applied to g {NO,Ho,Wo} (one sample, channel c) */
static inline __attribute__((always_inline)) void small_adj_plane(int NO, float *dxp,
                                                                  const float *g, const float *w,
                                                                  const geom *q, int64_t Hp,
                                                                  int64_t Wp, int64_t c) {
    int64_t CK = q->C * q->kh * q->kw, Wo = q->Wo, HoWo = q->Ho * Wo;
    for (int64_t oh = 0; oh < q->Ho; oh++) {
        const float *g0 = g + oh * Wo, *g1 = g0 + HoWo, *g2 = g1 + HoWo, *g3 = g2 + HoWo;
        for (int64_t i = 0; i < q->kh; i++) {
            float *dr = dxp + (c * Hp + oh * q->sh + i * q->dh) * Wp;
            const float *wr = w + (c * q->kh + i) * q->kw;
            for (int64_t j = 0; j < q->kw; j++) {
                float *d = dr + j * q->dw;
                float w0 = wr[j], w1 = NO > 1 ? wr[CK + j] : 0.0f;
                float w2 = NO > 2 ? wr[2 * CK + j] : 0.0f, w3 = NO > 3 ? wr[3 * CK + j] : 0.0f;
#pragma omp simd
                for (int64_t ow = 0; ow < Wo; ow++) {
                    float s = w0 * g0[ow];
                    if (NO > 1) s += w1 * g1[ow];
                    if (NO > 2) s += w2 * g2[ow];
                    if (NO > 3) s += w3 * g3[ow];
                    d[ow] += s;
                }
            }
        }
    }
}

/* dw[o][ck] for o < NO += sum over oh,ow of g[o][oh][ow] xp[c][oh*sh + i*dh][ow + j*dw] (one
 * sample, ck = (c,i,j)), summed in a fixed order */
static inline __attribute__((always_inline)) void small_wgt_tap(int NO, float *dw, const float *xp,
                                                                const float *g, const geom *q,
                                                                int64_t Hp, int64_t Wp,
                                                                int64_t ck) {
    int64_t CK = q->C * q->kh * q->kw, Wo = q->Wo, HoWo = q->Ho * Wo;
    int64_t c = ck / (q->kh * q->kw), i = ck / q->kw % q->kh, j = ck % q->kw;
    /* two independent accumulators per output: one chain would wait on each add's latency */
    v8 a0 = {0}, b0 = {0}, a1 = {0}, b1 = {0}, a2 = {0}, b2 = {0}, a3 = {0}, b3 = {0};
    float t[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int64_t oh = 0; oh < q->Ho; oh++) {
        const float *xr = xp + (c * Hp + oh * q->sh + i * q->dh) * Wp + j * q->dw;
        const float *g0 = g + oh * Wo, *g1 = g0 + HoWo, *g2 = g1 + HoWo, *g3 = g2 + HoWo;
        int64_t ow = 0;
        for (; ow + 16 <= Wo; ow += 16) {
            v8 x0 = LOAD8(xr + ow), x1 = LOAD8(xr + ow + 8);
            a0 += LOAD8(g0 + ow) * x0;
            b0 += LOAD8(g0 + ow + 8) * x1;
            if (NO > 1) {
                a1 += LOAD8(g1 + ow) * x0;
                b1 += LOAD8(g1 + ow + 8) * x1;
            }
            if (NO > 2) {
                a2 += LOAD8(g2 + ow) * x0;
                b2 += LOAD8(g2 + ow + 8) * x1;
            }
            if (NO > 3) {
                a3 += LOAD8(g3 + ow) * x0;
                b3 += LOAD8(g3 + ow + 8) * x1;
            }
        }
        for (; ow < Wo; ow++) {
            t[0] += g0[ow] * xr[ow];
            if (NO > 1) t[1] += g1[ow] * xr[ow];
            if (NO > 2) t[2] += g2[ow] * xr[ow];
            if (NO > 3) t[3] += g3[ow] * xr[ow];
        }
    }
    v8 acc[4] = {a0 + b0, a1 + b1, a2 + b2, a3 + b3};
    float sum[4];
    for (int o = 0; o < NO; o++) {
        sum[o] = t[o];
        for (int k = 0; k < 8; k++) sum[o] += acc[o][k];
    }
    for (int o = 0; o < NO; o++) dw[o * CK + ck] += sum[o];
}

#define SMALL_SWITCH(NO, call)                                                                     \
    switch (NO) {                                                                                  \
    case 1: call(1); break;                                                                        \
    case 2: call(2); break;                                                                        \
    case 3: call(3); break;                                                                        \
    default: call(4); break;                                                                       \
    }

/* one sample: y {O,Ho,Wo} from xp (D_FWD), xp += adjoint of y (D_ADJ), w += dW (D_WGT) */
static void small_kernel(int mode, float *y, float *xp, float *w, const geom *q, int64_t Hp,
                         int64_t Wp) {
    int64_t NO = q->O, CK = q->C * q->kh * q->kw, work = NO * CK * q->Ho * q->Wo;
    if (mode == D_FWD) {
#define FWD(K) small_fwd_row(K, y, xp, w, q, Hp, Wp, oh)
        DUEL_PAR_FOR(work >= DUEL_PAR_MIN,
        for (int64_t oh = 0; oh < q->Ho; oh++) SMALL_SWITCH(NO, FWD)
        );
#undef FWD
    } else if (mode == D_ADJ) {
#define ADJ(K) small_adj_plane(K, xp, y, w, q, Hp, Wp, c)
        DUEL_PAR_FOR(work >= DUEL_PAR_MIN,
        for (int64_t c = 0; c < q->C; c++) SMALL_SWITCH(NO, ADJ)
        );
#undef ADJ
    } else {
#define WGT(K) small_wgt_tap(K, w, xp, y, q, Hp, Wp, ck)
        DUEL_PAR_FOR(work >= DUEL_PAR_MIN,
        for (int64_t ck = 0; ck < CK; ck++) SMALL_SWITCH(NO, WGT)
        );
#undef WGT
    }
}
#undef SMALL_SWITCH

/* conv_run's modes through the kernels above, one sample at a time */
static int small_run(int mode, const geom *q, float *x, float *y, float *w, const char *op) {
    int64_t Hp = q->H + 2 * q->ph, Wp = q->W + 2 * q->pw, XS = q->C * q->H * q->W;
    int64_t YS = q->O * q->Ho * q->Wo;
    float *xp = duel_conv_scratch(q->C * Hp * Wp, op);
    if (!xp) return -1;
    for (int64_t n = 0; n < q->N; n++) {
        float *xn = x + n * XS, *yn = y + n * YS;
        if (mode == D_ADJ)
            memset(xp, 0, (size_t)(q->C * Hp * Wp) * sizeof(float));
        else
            pad_kernel(xp, xn, q, Hp, Wp);
        small_kernel(mode, yn, xp, w, q, Hp, Wp);
        if (mode == D_ADJ) unpad_add_kernel(xn, xp, q, Hp, Wp);
    }
    return 0;
}

/* ---- the three drivers: block loop, im2col/col2im, GEMMs ------------------------------------ */

/* D_FWD: y = conv(x, w)      (y overwritten)
 * D_ADJ: x += conv^T(y, w)   (x pre-filled by the caller: zeros or bias)
 * D_WGT: w += dW(x, y)       (w pre-zeroed)
 * x {N,C,H,W}, y {N,O,Ho,Wo}, w {O,C/g,kh,kw}, all contiguous. Returns -1 on allocation failure. */
static int conv_run(int mode, const geom *q, float *x, float *y, float *w, const char *op) {
    int64_t Cg = q->C / q->g, Og = q->O / q->g, rows = Cg * q->kh * q->kw;
    int64_t HW = q->Ho * q->Wo, XHW = q->H * q->W;
    if (q->N == 0 || HW == 0) return 0;
    if (is_dense(q)) { /* col^T is x {N, C*H*W} itself, and y is {N, O}: no im2col */
        int64_t K = Cg * XHW, CK = q->C * XHW;
        for (int64_t g = 0; g < q->g; g++) {
            float *xg = x + g * K, *yg = y + g * Og, *wg = w + g * Og * K;
            if (mode == D_FWD)
                duel_sgemm(CblasNoTrans, CblasTrans, q->N, Og, K, xg, CK, wg, K, 0.0f, yg, q->O);
            else if (mode == D_ADJ)
                duel_sgemm(CblasNoTrans, CblasNoTrans, q->N, K, Og, yg, q->O, wg, K, 1.0f, xg, CK);
            else
                duel_sgemm(CblasTrans, CblasNoTrans, Og, K, q->N, yg, q->O, xg, CK, 1.0f, wg, K);
        }
        return 0;
    }
    if (is_small_out(q) && !is_pointwise(q)) return small_run(mode, q, x, y, w, op);
    if (mode == D_FWD && is_winograd(q))
        return duel_winograd3x3(y, x, w, 0, q->N, q->C, q->H, q->W, q->O, q->Ho, q->Wo, q->ph,
                                q->pw, 0, op);
    if (mode == D_ADJ && is_winograd(q)) /* the flipped filters over y, padded by 2 - p */
        return duel_winograd3x3(x, y, w, 1, q->N, q->O, q->Ho, q->Wo, q->C, q->H, q->W, 2 - q->ph,
                                2 - q->pw, 1, op);
    if (mode == D_WGT && is_winograd(q))
        return duel_winograd3x3_wgt(w, x, y, q->N, q->C, q->H, q->W, q->O, q->Ho, q->Wo, q->ph,
                                    q->pw, op);
    if (is_pointwise(q) && HW >= DUEL_CONV_PER_SAMPLE) { /* x's planes are already col */
        for (int64_t n = 0; n < q->N; n++)
            for (int64_t g = 0; g < q->g; g++) {
                float *xg = x + (n * q->C + g * Cg) * XHW, *yg = y + (n * q->O + g * Og) * HW;
                float *wg = w + g * Og * Cg;
                if (mode == D_FWD)
                    duel_sgemm(CblasNoTrans, CblasNoTrans, Og, HW, Cg, wg, Cg, xg, HW, 0.0f, yg,
                               HW);
                else if (mode == D_ADJ)
                    duel_sgemm(CblasTrans, CblasNoTrans, Cg, HW, Og, wg, Cg, yg, HW, 1.0f, xg, HW);
                else
                    duel_sgemm(CblasNoTrans, CblasTrans, Og, Cg, HW, yg, HW, xg, HW, 1.0f, wg, Cg);
            }
        return 0;
    }
    int64_t budget = DUEL_CONV_COL_BUDGET / (rows + Og), spc, rpc; /* columns per block */
    if (budget < q->Wo) budget = q->Wo;
    if (HW <= budget) {
        spc = budget / HW < q->N ? budget / HW : q->N;
        rpc = q->Ho;
    } else {
        spc = 1;
        rpc = budget / q->Wo;
    }
    int per_sample = HW >= DUEL_CONV_PER_SAMPLE;
    int64_t maxcol = spc * rpc * q->Wo;
    float *col = duel_conv_scratch((rows + Og) * maxcol, op);
    if (!col) return -1;
    float *tmp = col + rows * maxcol;
    for (int64_t n0 = 0; n0 < q->N; n0 += spc)
        for (int64_t r0 = 0; r0 < q->Ho; r0 += rpc) {
            int64_t nb = q->N - n0 < spc ? q->N - n0 : spc,
                    nr = q->Ho - r0 < rpc ? q->Ho - r0 : rpc;
            int64_t ncol = nb * nr * q->Wo;
            for (int64_t g = 0; g < q->g; g++) {
                float *wg = w + g * Og * rows;
                /* this block's Y_g {Og, ncol}: in place when the block is one sample */
                float *yb = y + (n0 * q->O + g * Og) * HW + r0 * q->Wo;
                if (mode != D_ADJ) im2col_kernel(col, x, q, g * Cg, n0, nb, r0, nr);
                if (nb == 1 || per_sample) {
                    for (int64_t s = 0; s < nb; s++) {
                        float *ys = yb + s * q->O * HW, *cs = col + s * HW;
                        if (mode == D_FWD)
                            duel_sgemm(CblasNoTrans, CblasNoTrans, Og, nr * q->Wo, rows, wg, rows,
                                       cs, ncol, 0.0f, ys, HW);
                        else if (mode == D_ADJ)
                            duel_sgemm(CblasTrans, CblasNoTrans, rows, nr * q->Wo, Og, wg, rows, ys,
                                       HW, 0.0f, cs, ncol);
                        else
                            duel_sgemm(CblasNoTrans, CblasTrans, Og, rows, nr * q->Wo, ys, HW, cs,
                                       ncol, 1.0f, wg, rows);
                    }
                } else if (mode == D_FWD) {
                    duel_sgemm(CblasNoTrans, CblasNoTrans, Og, ncol, rows, wg, rows, col, ncol,
                               0.0f, tmp, ncol);
                    permute_kernel(tmp, y, q->O, g * Og, Og, n0, nb, HW, 0);
                } else {
                    permute_kernel(tmp, y, q->O, g * Og, Og, n0, nb, HW, 1);
                    if (mode == D_ADJ)
                        duel_sgemm(CblasTrans, CblasNoTrans, rows, ncol, Og, wg, rows, tmp, ncol,
                                   0.0f, col, ncol);
                    else
                        duel_sgemm(CblasNoTrans, CblasTrans, Og, rows, ncol, tmp, ncol, col, ncol,
                                   1.0f, wg, rows);
                }
                if (mode == D_ADJ) col2im_kernel(x, col, q, g * Cg, n0, nb, r0, nr);
            }
        }
    return 0;
}

/* ---- the family's ops (inputs already validated; any strides) -------------------------------- */

/* oneDNN (conv_dnnl.c) where the build has it, the backend is on and the shape suits it: not
 * for groups, nor the dense case (already one plain GEMM with no im2col), nor where the GEMM
 * path measured faster (bench/conv.lua, both backends): at most 4 output channels (the direct
 * kernels; c7s1-3 forward 3.6 against 4.8 ms) and the adjoint onto at most 4 image channels
 * (DCGAN's convT 64->3: 2.9 against 7.4 ms). 1: not taken. */
static int try_dnnl(int mode, const geom *q, float *x, float *y, float *w, const char *op) {
    if (!duel_conv_dnnl_on || q->g != 1 || is_dense(q) || q->N == 0 || q->Ho * q->Wo == 0)
        return 1;
    if ((is_small_out(q) && !is_pointwise(q)) || (mode == D_ADJ && q->C <= 4)) return 1;
    int64_t d[15] = {q->N,  q->C,  q->H,  q->W,  q->O,  q->Ho, q->Wo, q->kh,
                     q->kw, q->sh, q->sw, q->ph, q->pw, q->dh, q->dw};
    return duel_dnnl_conv(mode, d, x, y, w, op);
}

/* D_FWD and D_WGT overwrite their output either way (D_WGT's is pre-zeroed for the GEMM path) */
static int by_dnnl(int mode, const geom *q, float *x, float *y, float *w, const char *op) {
    int rc = try_dnnl(mode, q, x, y, w, op);
    return rc == 1 ? conv_run(mode, q, x, y, w, op) : rc;
}

static int conv2d_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx);
static int conv_transpose2d_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx);
static int conv2d_weight_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx);
static const duel_opdef OP_CONV2D = {"conv2d", 3, conv2d_backward,
                                     DUEL_SAVE_SRC(0) | DUEL_SAVE_SRC(1)};
static const duel_opdef OP_CONV_TRANSPOSE2D = {"conv_transpose2d", 3, conv_transpose2d_backward,
                                               DUEL_SAVE_SRC(0) | DUEL_SAVE_SRC(1)};
static const duel_opdef OP_CONV2D_WEIGHT = {"conv2d_weight", 2, conv2d_weight_backward,
                                            DUEL_SAVE_SRC(0) | DUEL_SAVE_SRC(1)};

/* conv2d(x {N,C,H,W}, w {O,C/g,kh,kw}, b {O} or NULL) -> {N,O,Ho,Wo}; ip: P_SH..P_G */
static duel_tensor *conv_fwd(duel_tensor *x, duel_tensor *w, duel_tensor *b, const int64_t *ip,
                             int64_t Ho, int64_t Wo) {
    geom q = make_geom(x->shape, w->shape[0], w->shape[2], w->shape[3], Ho, Wo, ip);
    int64_t shp[4] = {q.N, q.O, q.Ho, q.Wo};
    duel_tensor *xc = duel_contiguous(x), *wc = xc ? duel_contiguous(w) : NULL;
    duel_tensor *bc = wc && b ? duel_contiguous(b) : NULL;
    duel_tensor *y = wc && (bc || !b) ? duel_new(shp, 4, "conv2d") : NULL;
    if (y && by_dnnl(D_FWD, &q, xc->data, y->data, wc->data, "conv2d")) {
        duel_release(y);
        y = NULL;
    }
    if (y && b) bias_kernel(y->data, bc->data, q.N, q.O, q.Ho * q.Wo, 0);
    duel_release(xc);
    duel_release(wc);
    duel_release(bc);
    if (!y) return NULL;
    memcpy(y->iparam, ip, (P_G + 1) * sizeof(int64_t));
    duel_tensor *srcs[3] = {x, w, b};
    duel_record(y, &OP_CONV2D, srcs, 3);
    return y;
}

/* conv_transpose2d(u {N,O,Ho,Wo}, w {O,C/g,kh,kw}, b {C} or NULL) -> {N,C,H,W}, the image size
 * given (several sizes map to the same Ho,Wo) */
static duel_tensor *conv_adj(duel_tensor *u, duel_tensor *w, duel_tensor *b, const int64_t *ip,
                             int64_t H, int64_t W) {
    int64_t shp[4] = {u->shape[0], w->shape[1] * ip[P_G], H, W};
    geom q = make_geom(shp, w->shape[0], w->shape[2], w->shape[3], u->shape[2], u->shape[3], ip);
    duel_tensor *uc = duel_contiguous(u), *wc = uc ? duel_contiguous(w) : NULL;
    duel_tensor *bc = wc && b ? duel_contiguous(b) : NULL;
    duel_tensor *y = wc && (bc || !b) ? duel_new(shp, 4, "conv_transpose2d") : NULL;
    int rc = y ? try_dnnl(D_ADJ, &q, y->data, uc->data, wc->data, "conv_transpose2d") : -1;
    if (rc == 0 && b) bias_kernel(y->data, bc->data, q.N, q.C, H * W, 0);
    if (rc == 1) { /* the GEMM path accumulates onto the bias */
        bias_kernel(y->data, bc ? bc->data : NULL, q.N, q.C, H * W, 1);
        rc = conv_run(D_ADJ, &q, y->data, uc->data, wc->data, "conv_transpose2d");
    }
    if (y && rc) {
        duel_release(y);
        y = NULL;
    }
    duel_release(uc);
    duel_release(wc);
    duel_release(bc);
    if (!y) return NULL;
    memcpy(y->iparam, ip, (P_G + 1) * sizeof(int64_t));
    duel_tensor *srcs[3] = {u, w, b};
    duel_record(y, &OP_CONV_TRANSPOSE2D, srcs, 3);
    return y;
}

/* conv2d_weight(x {N,C,H,W}, u {N,O,Ho,Wo}) -> {O,C/g,kh,kw}: conv2d's weight gradient */
static duel_tensor *conv_wgt(duel_tensor *x, duel_tensor *u, const int64_t *ip, int64_t kh,
                             int64_t kw) {
    geom q = make_geom(x->shape, u->shape[1], kh, kw, u->shape[2], u->shape[3], ip);
    int64_t shp[4] = {q.O, q.C / q.g, kh, kw};
    duel_tensor *xc = duel_contiguous(x), *uc = xc ? duel_contiguous(u) : NULL;
    duel_tensor *y = uc ? duel_zeros(shp, 4) : NULL;
    if (y && by_dnnl(D_WGT, &q, xc->data, uc->data, y->data, "conv2d_weight")) {
        duel_release(y);
        y = NULL;
    }
    duel_release(xc);
    duel_release(uc);
    if (!y) return NULL;
    memcpy(y->iparam, ip, (P_G + 1) * sizeof(int64_t));
    y->iparam[P_KH] = kh;
    y->iparam[P_KW] = kw;
    duel_tensor *srcs[2] = {x, u};
    duel_record(y, &OP_CONV2D_WEIGHT, srcs, 2);
    return y;
}

/* the bias gradient: dy {N,O,Ho,Wo} summed over N, Ho, Wo (a differentiable sum) */
static duel_tensor *bias_grad(duel_tensor *dy) {
    int reduced[4] = {1, 0, 1, 1};
    return duel_sum_reduce(dy, reduced, &dy->shape[1], 1, "sum");
}

static int conv2d_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) {
    duel_tensor *x = y->src[0], *w = y->src[1];
    if (DUEL_NEED(y, 0) && !(dx[0] = conv_adj(dy, w, NULL, y->iparam, x->shape[2], x->shape[3])))
        return -1;
    if (DUEL_NEED(y, 1) && !(dx[1] = conv_wgt(x, dy, y->iparam, w->shape[2], w->shape[3])))
        return -1;
    if (DUEL_NEED(y, 2) && !(dx[2] = bias_grad(dy))) return -1;
    return 0;
}

static int conv_transpose2d_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) {
    duel_tensor *u = y->src[0], *w = y->src[1];
    if (DUEL_NEED(y, 0) && !(dx[0] = conv_fwd(dy, w, NULL, y->iparam, u->shape[2], u->shape[3])))
        return -1;
    if (DUEL_NEED(y, 1) && !(dx[1] = conv_wgt(dy, u, y->iparam, w->shape[2], w->shape[3])))
        return -1;
    if (DUEL_NEED(y, 2) && !(dx[2] = bias_grad(dy))) return -1;
    return 0;
}

/* <conv2d_weight(x,u), G> = <conv2d(x,G), u> = <x, conv_transpose2d(u,G)> */
static int conv2d_weight_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) {
    duel_tensor *x = y->src[0], *u = y->src[1];
    if (DUEL_NEED(y, 0) && !(dx[0] = conv_adj(u, dy, NULL, y->iparam, x->shape[2], x->shape[3])))
        return -1;
    if (DUEL_NEED(y, 1) && !(dx[1] = conv_fwd(x, dy, NULL, y->iparam, u->shape[2], u->shape[3])))
        return -1;
    return 0;
}

/* ---- public ops: validation ------------------------------------------------------------------ */

static const duel_conv2d_opts default_opts = {{1, 1}, {0, 0}, {1, 1}, {0, 0}, 1};

static int check_opts(const char *op, const duel_conv2d_opts *o, int64_t *ip) {
    DUEL_CHECK_INT(o->stride[0] > 0 && o->stride[1] > 0,
                   "%s: stride must be positive, got {%lld,%lld}", op, (long long)o->stride[0],
                   (long long)o->stride[1]);
    DUEL_CHECK_INT(o->padding[0] >= 0 && o->padding[1] >= 0,
                   "%s: padding must be non-negative, got {%lld,%lld}", op,
                   (long long)o->padding[0], (long long)o->padding[1]);
    DUEL_CHECK_INT(o->dilation[0] > 0 && o->dilation[1] > 0,
                   "%s: dilation must be positive, got {%lld,%lld}", op, (long long)o->dilation[0],
                   (long long)o->dilation[1]);
    DUEL_CHECK_INT(o->groups > 0, "%s: groups must be positive, got %lld", op,
                   (long long)o->groups);
    int64_t v[7] = {o->stride[0],   o->stride[1],   o->padding[0], o->padding[1],
                    o->dilation[0], o->dilation[1], o->groups};
    memcpy(ip, v, sizeof v);
    return 0;
}

static int check_weight(const char *op, const char *layout, duel_tensor *x, duel_tensor *w) {
    DUEL_CHECK_INT(x->ndim == 4, "%s: input must be 4-D {N,C,H,W}, got %s", op, SHAPE(x));
    DUEL_CHECK_INT(w->ndim == 4, "%s: weight must be 4-D %s, got %s", op, layout, SHAPE(w));
    DUEL_CHECK_INT(w->shape[0] > 0 && w->shape[1] > 0 && w->shape[2] > 0 && w->shape[3] > 0,
                   "%s: weight must have positive sizes, got %s", op, SHAPE(w));
    return 0;
}

static int check_bias(const char *op, duel_tensor *b, int64_t n) {
    DUEL_CHECK_INT(!b || (b->ndim == 1 && b->shape[0] == n), "%s: bias must be {%lld}, got %s", op,
                   (long long)n, b ? SHAPE(b) : "nil");
    return 0;
}

/* every GEMM dimension and leading dimension must fit BLAS's int */
static int check_blas(const char *op, const geom *q, duel_tensor *x, duel_tensor *w) {
    int64_t big = INT32_MAX, Cg = q->C / q->g;
    DUEL_CHECK_INT(
        Cg * q->kh * q->kw <= big && q->O <= big && q->Ho * q->Wo <= big && q->H * q->W <= big,
        "%s: sizes too large for BLAS, got input %s and weight %s", op, SHAPE(x), SHAPE(w));
    return 0;
}

duel_tensor *duel_conv2d(duel_tensor *x, duel_tensor *w, duel_tensor *b,
                         const duel_conv2d_opts *o) {
    const char *op = "conv2d";
    int64_t ip[DUEL_MAXDIM + 4] = {0};
    if (!o) o = &default_opts;
    if (check_opts(op, o, ip) || check_weight(op, "{out,in/groups,kh,kw}", x, w)) return NULL;
    int64_t g = o->groups, O = w->shape[0];
    DUEL_CHECK(O % g == 0,
               "conv2d: groups must divide the output channels, got groups %lld and "
               "weight %s",
               (long long)g, SHAPE(w));
    DUEL_CHECK(x->shape[1] == w->shape[1] * g,
               "conv2d: weight expects %lld input channels (x groups %lld), got input %s",
               (long long)w->shape[1], (long long)g, SHAPE(x));
    if (check_bias(op, b, O)) return NULL;
    int64_t Ho = conv_out(x->shape[2], w->shape[2], ip[P_SH], ip[P_PH], ip[P_DH]);
    int64_t Wo = conv_out(x->shape[3], w->shape[3], ip[P_SW], ip[P_PW], ip[P_DW]);
    geom q = make_geom(x->shape, O, w->shape[2], w->shape[3], Ho, Wo, ip);
    DUEL_CHECK(q.Ho > 0 && q.Wo > 0,
               "conv2d: padded input is smaller than the dilated kernel {%lld,%lld} (padding "
               "{%lld,%lld}, dilation {%lld,%lld}), got input %s",
               (long long)q.kh, (long long)q.kw, (long long)q.ph, (long long)q.pw, (long long)q.dh,
               (long long)q.dw, SHAPE(x));
    if (check_blas(op, &q, x, w)) return NULL;
    return conv_fwd(x, w, b, ip, Ho, Wo);
}

duel_tensor *duel_conv_transpose2d(duel_tensor *x, duel_tensor *w, duel_tensor *b,
                                   const duel_conv2d_opts *o) {
    const char *op = "conv_transpose2d";
    int64_t ip[DUEL_MAXDIM + 4] = {0};
    if (!o) o = &default_opts;
    if (check_opts(op, o, ip) || check_weight(op, "{in,out/groups,kh,kw}", x, w)) return NULL;
    int64_t g = o->groups, C = x->shape[1];
    DUEL_CHECK(o->output_padding[0] >= 0 && o->output_padding[1] >= 0,
               "conv_transpose2d: output_padding must be non-negative, got {%lld,%lld}",
               (long long)o->output_padding[0], (long long)o->output_padding[1]);
    for (int i = 0; i < 2; i++)
        DUEL_CHECK(o->output_padding[i] < o->stride[i] || o->output_padding[i] < o->dilation[i],
                   "conv_transpose2d: output_padding must be smaller than stride or dilation, got "
                   "output_padding {%lld,%lld} with stride {%lld,%lld} and dilation {%lld,%lld}",
                   (long long)o->output_padding[0], (long long)o->output_padding[1],
                   (long long)o->stride[0], (long long)o->stride[1], (long long)o->dilation[0],
                   (long long)o->dilation[1]);
    DUEL_CHECK(C == w->shape[0],
               "conv_transpose2d: weight expects %lld input channels, got input %s",
               (long long)w->shape[0], SHAPE(x));
    DUEL_CHECK(C % g == 0,
               "conv_transpose2d: groups must divide the input channels, got groups %lld and "
               "input %s",
               (long long)g, SHAPE(x));
    DUEL_CHECK(x->shape[2] > 0 && x->shape[3] > 0,
               "conv_transpose2d: input must have positive spatial sizes, got %s", SHAPE(x));
    int64_t Cout = w->shape[1] * g, ksz[2] = {w->shape[2], w->shape[3]}, out[2];
    if (check_bias(op, b, Cout)) return NULL;
    for (int i = 0; i < 2; i++)
        out[i] = (x->shape[2 + i] - 1) * o->stride[i] - 2 * o->padding[i] +
                 o->dilation[i] * (ksz[i] - 1) + o->output_padding[i] + 1;
    DUEL_CHECK(out[0] > 0 && out[1] > 0,
               "conv_transpose2d: padding {%lld,%lld} leaves no output, got output size "
               "{%lld,%lld} for input %s",
               (long long)o->padding[0], (long long)o->padding[1], (long long)out[0],
               (long long)out[1], SHAPE(x));
    int64_t ishape[4] = {x->shape[0], Cout, out[0], out[1]};
    geom q = make_geom(ishape, C, ksz[0], ksz[1], x->shape[2], x->shape[3], ip);
    if (check_blas(op, &q, x, w)) return NULL;
    return conv_adj(x, w, b, ip, out[0], out[1]);
}

/* ---- linear: one fused op, its backward in matmuls ---------------------------------------- */

/* x2 = x viewed as {M, in}; dy viewed as {M, out} (g2):
 * dx = g2 w, dW = g2^T x2 ({out,in} directly, no transposed copy), db = column sums of g2 */
static int linear_backward(duel_tensor *y, duel_tensor *dy, duel_tensor **dx) {
    duel_tensor *x = y->src[0], *w = y->src[1];
    int64_t in = w->shape[1], out = w->shape[0], M = in ? duel_numel(x) / in : 0;
    int64_t s2[2] = {M, out}, x2s[2] = {M, in};
    duel_tensor *g2 = duel_reshape(dy, s2, 2);
    if (!g2) return -1;
    int rc = 0;
    if (DUEL_NEED(y, 0)) {
        duel_tensor *gx = duel_matmul(g2, w);
        dx[0] = gx ? duel_reshape(gx, x->shape, x->ndim) : NULL;
        duel_release(gx);
        rc |= !dx[0];
    }
    if (!rc && DUEL_NEED(y, 1)) {
        duel_tensor *gt = duel_transpose(g2, 0, 1), *x2 = gt ? duel_reshape(x, x2s, 2) : NULL;
        dx[1] = x2 ? duel_matmul(gt, x2) : NULL;
        duel_release(gt);
        duel_release(x2);
        rc |= !dx[1];
    }
    if (!rc && DUEL_NEED(y, 2)) rc |= !(dx[2] = duel_sum_dim(g2, 0, 0));
    duel_release(g2);
    return rc ? -1 : 0;
}
static const duel_opdef OP_LINEAR = {"linear", 3, linear_backward,
                                     DUEL_SAVE_SRC(0) | DUEL_SAVE_SRC(1)};

/* x {...,in} -> {...,out} = x w^T + b: the output starts as b's rows and one sgemm adds x w^T
 * (beta = 1), so the bias costs no extra pass; a transposed w (tied weights) needs no copy */
duel_tensor *duel_linear(duel_tensor *x, duel_tensor *w, duel_tensor *b) {
    DUEL_CHECK(w->ndim == 2, "linear: weight must be 2-D {out,in}, got %s", SHAPE(w));
    int64_t in = w->shape[1], out = w->shape[0];
    DUEL_CHECK(x->ndim >= 1 && x->shape[x->ndim - 1] == in,
               "linear: input's last dimension must be %lld (weight %s), got input %s",
               (long long)in, SHAPE(w), SHAPE(x));
    DUEL_CHECK(!b || (b->ndim == 1 && b->shape[0] == out), "linear: bias must be {%lld}, got %s",
               (long long)out, b ? SHAPE(b) : "nil");
    int64_t M = 1, shp[DUEL_MAXDIM];
    for (int i = 0; i < x->ndim - 1; i++) M *= shp[i] = x->shape[i];
    shp[x->ndim - 1] = out;
    DUEL_CHECK(M <= INT32_MAX && in <= INT32_MAX && out <= INT32_MAX,
               "linear: sizes too large for BLAS, got input %s and weight %s", SHAPE(x), SHAPE(w));
    int wt = !duel_is_contiguous(w) && w->stride[0] == 1 && w->stride[1] >= (out > 1 ? out : 1);
    duel_tensor *xc = duel_contiguous(x), *wc = !xc  ? NULL
                                                : wt ? (duel_retain(w), w)
                                                     : duel_contiguous(w);
    duel_tensor *bc = wc && b ? duel_contiguous(b) : NULL;
    duel_tensor *y = wc && (bc || !b) ? duel_new(shp, x->ndim, "linear") : NULL;
    if (y) {
        float *yd = y->data;
        if (bc) {
            for (int64_t r = 0; r < M; r++) memcpy(yd + r * out, bc->data, (size_t)out * sizeof *yd);
        } else {
            memset(yd, 0, (size_t)(M * out) * sizeof *yd);
        }
        if (M > 0 && out > 0 && in > 0) {
            duel_sgemm(CblasNoTrans, wt ? CblasNoTrans : CblasTrans, M, out, in, xc->data, in,
                       wc->data, wt ? w->stride[1] : in, 1.0f, yd, out);
        }
    }
    duel_release(xc);
    duel_release(wc);
    duel_release(bc);
    if (!y) return NULL;
    duel_tensor *srcs[3] = {x, w, b};
    duel_record(y, &OP_LINEAR, srcs, 3);
    return y;
}

const duel_opdef *const duel_conv_ops[] = {&OP_CONV2D, &OP_CONV_TRANSPOSE2D, &OP_CONV2D_WEIGHT,
                                           &OP_LINEAR, NULL};
