/* winograd.c -- 3x3 stride-1 convolutions by Winograd's minimal filtering F(2x2, 3x3) (Lavin &
 * Gray 2016): each 2x2 output tile is A^T [ (G g G^T) .* (B^T d B) ] A over a 4x4 input tile d,
 * so the channel sums become 16 GEMMs of {Co,Ci} x {Ci,tiles}: 16 multiplies per tile and channel
 * pair where im2col + GEMM does 36, 2.25x fewer. conv.c routes conv2d (D_FWD) and its adjoint
 * (D_ADJ: conv_transpose2d, and conv2d's input gradient) here for wide layers; the adjoint of a
 * 3x3 stride-1 correlation is the correlation of the output with the flipped, transposed filters
 * and padding 2 - p. The weight gradient (D_WGT) is the adjoint of the same computation in U:
 * dU_k = sum over tiles of (A dy A^T)_k (B^T d B)_k^T, 16 GEMMs again, then dg = G^T dU G. The
 * op graph is unchanged (these are kernels of the same ops), so every derivative stays exact;
 * only float rounding differs from the GEMM path (relative 1e-6). */
#include "../duel_impl.h"
#include <cblas.h>

/* V and M hold 16 * (Ci + Co) floats a tile: tiles are taken in blocks under this many floats */
#ifndef DUEL_WINO_BUDGET
#define DUEL_WINO_BUDGET (4 << 20)
#endif

/* The 16 planes of U, V and M sit this many floats past a multiple of their size: with plane
 * sizes of 2^k floats the 16 streams of a transform would share one set of the L1 cache, and
 * the transforms ran at a tenth of their speed. */
#define PLANE_PAD 48
static int64_t padded(int64_t n) { return n + PLANE_PAD; }

/* tile t in row-major order over {N, th, tw}: its sample and its output row and column */
static inline void tile_at(int64_t t, int64_t th, int64_t tw, int64_t *n, int64_t *h0,
                           int64_t *w0) {
    int64_t r = t % (th * tw);
    *n = t / (th * tw);
    *h0 = 2 * (r / tw);
    *w0 = 2 * (r % tw);
}

/* U {16,Co,Ci} = G g G^T of every filter; g is w[o][c] (fwd: Co = O, Ci = C) or, for the
 * adjoint, w[c][o] flipped in both directions (Co = C, Ci = O). w is {O,C,3,3}. */
static void filter_transform(float *U, const float *w, int adj, int64_t Co, int64_t Ci) {
    int64_t plane = padded(Co * Ci);
    DUEL_PAR_FOR(Co * Ci * 16 >= DUEL_PAR_MIN,
    for (int64_t a = 0; a < Co; a++) {
        for (int64_t b = 0; b < Ci; b++) {
            float g[9];
            if (!adj) {
                memcpy(g, w + (a * Ci + b) * 9, sizeof g);
            } else {
                const float *s = w + (b * Co + a) * 9;
                for (int k = 0; k < 9; k++) g[k] = s[8 - k];
            }
            float t[4][3]; /* G g */
            for (int j = 0; j < 3; j++) {
                float g0 = g[j], g1 = g[3 + j], g2 = g[6 + j];
                t[0][j] = g0;
                t[1][j] = 0.5f * (g0 + g1 + g2);
                t[2][j] = 0.5f * (g0 - g1 + g2);
                t[3][j] = g2;
            }
            for (int i = 0; i < 4; i++) { /* (G g) G^T */
                float t0 = t[i][0], t1 = t[i][1], t2 = t[i][2];
                float *u = U + (4 * i) * plane + a * Ci + b;
                u[0] = t0;
                u[plane] = 0.5f * (t0 + t1 + t2);
                u[2 * plane] = 0.5f * (t0 - t1 + t2);
                u[3 * plane] = t2;
            }
        }
    });
}

/* V {16,Ci,nt} = B^T d B for tiles [t0, t0+nt) of in {N,Ci,Hi,Wi}, zero-padded by ph, pw; tile t
 * is (n, ty, tx) in row-major order over {N, th, tw}, its input window starting at row 2ty - ph */
static void input_transform(float *V, const float *in, int64_t Ci, int64_t Hi, int64_t Wi,
                            int64_t th, int64_t tw, int64_t ph, int64_t pw, int64_t t0,
                            int64_t nt) {
    int64_t plane = padded(Ci * nt);
    DUEL_PAR_FOR(Ci * nt * 16 >= DUEL_PAR_MIN,
    for (int64_t c = 0; c < Ci; c++) {
        for (int64_t k = 0; k < nt; k++) {
            int64_t n, h0, w0;
            tile_at(t0 + k, th, tw, &n, &h0, &w0);
            h0 -= ph;
            w0 -= pw;
            const float *src = in + (n * Ci + c) * Hi * Wi;
            float d[4][4];
            if (h0 >= 0 && w0 >= 0 && h0 + 4 <= Hi && w0 + 4 <= Wi) {
                for (int i = 0; i < 4; i++)
                    for (int j = 0; j < 4; j++) d[i][j] = src[(h0 + i) * Wi + w0 + j];
            } else {
                for (int i = 0; i < 4; i++)
                    for (int j = 0; j < 4; j++) {
                        int64_t h = h0 + i, x = w0 + j;
                        d[i][j] = h >= 0 && h < Hi && x >= 0 && x < Wi ? src[h * Wi + x] : 0.0f;
                    }
            }
            float s[4][4]; /* B^T d */
            for (int j = 0; j < 4; j++) {
                s[0][j] = d[0][j] - d[2][j];
                s[1][j] = d[1][j] + d[2][j];
                s[2][j] = d[2][j] - d[1][j];
                s[3][j] = d[1][j] - d[3][j];
            }
            float *v = V + c * nt + k;
            for (int i = 0; i < 4; i++) { /* (B^T d) B */
                v[(4 * i) * plane] = s[i][0] - s[i][2];
                v[(4 * i + 1) * plane] = s[i][1] + s[i][2];
                v[(4 * i + 2) * plane] = s[i][2] - s[i][1];
                v[(4 * i + 3) * plane] = s[i][1] - s[i][3];
            }
        }
    });
}

/* out's 2x2 tiles [t0, t0+nt) (+)= A^T m A, m from M {16,Co,nt}; edge tiles keep what fits */
static void output_transform(float *out, const float *M, int64_t Co, int64_t Ho, int64_t Wo,
                             int64_t th, int64_t tw, int64_t t0, int64_t nt, int acc) {
    int64_t plane = padded(Co * nt);
    DUEL_PAR_FOR(Co * nt * 16 >= DUEL_PAR_MIN,
    for (int64_t o = 0; o < Co; o++) {
        for (int64_t k = 0; k < nt; k++) {
            int64_t n, h0, w0;
            tile_at(t0 + k, th, tw, &n, &h0, &w0);
            const float *m = M + o * nt + k;
            float p[2][4]; /* A^T m */
            for (int j = 0; j < 4; j++) {
                float m0 = m[j * plane], m1 = m[(4 + j) * plane];
                float m2 = m[(8 + j) * plane], m3 = m[(12 + j) * plane];
                p[0][j] = m0 + m1 + m2;
                p[1][j] = m1 - m2 - m3;
            }
            float *dst = out + (n * Co + o) * Ho * Wo;
            for (int i = 0; i < 2 && h0 + i < Ho; i++) { /* (A^T m) A */
                float y0 = p[i][0] + p[i][1] + p[i][2], y1 = p[i][1] - p[i][2] - p[i][3];
                float *row = dst + (h0 + i) * Wo + w0;
                if (acc) {
                    row[0] += y0;
                    if (w0 + 1 < Wo) row[1] += y1;
                } else {
                    row[0] = y0;
                    if (w0 + 1 < Wo) row[1] = y1;
                }
            }
        }
    });
}

/* The output's 2x2 tiles (th x tw a sample, T in all), taken blk at a time, and the scratch: U
 * {16,Co,Ci} (or dU), then V {16,Ci,blk} and M {16,Co,blk}, each plane padded, in conv.c's
 * scratch */
typedef struct {
    int64_t th, tw, T, blk;
    float *U, *V, *M;
} plan;

static int make_plan(plan *p, int64_t N, int64_t Ci, int64_t Co, int64_t Ho, int64_t Wo,
                     const char *op) {
    p->th = (Ho + 1) / 2;
    p->tw = (Wo + 1) / 2;
    p->T = N * p->th * p->tw;
    p->blk = DUEL_WINO_BUDGET / (16 * (Ci + Co));
    if (p->blk < 16) p->blk = 16;
    if (p->blk > p->T) p->blk = p->T;
    p->U = duel_conv_scratch(16 * (padded(Co * Ci) + padded(Ci * p->blk) + padded(Co * p->blk)),
                             op);
    if (!p->U) return -1;
    p->V = p->U + 16 * padded(Co * Ci);
    p->M = p->V + 16 * padded(Ci * p->blk);
    return 0;
}

int duel_winograd3x3(float *out, const float *in, const float *w, int adj, int64_t N, int64_t Ci,
                     int64_t Hi, int64_t Wi, int64_t Co, int64_t Ho, int64_t Wo, int64_t ph,
                     int64_t pw, int acc, const char *op) {
    plan p;
    if (N * Ho * Wo == 0) return 0;
    if (make_plan(&p, N, Ci, Co, Ho, Wo, op)) return -1;
    int64_t th = p.th, tw = p.tw, T = p.T, blk = p.blk;
    float *U = p.U, *V = p.V, *M = p.M;
    filter_transform(U, w, adj, Co, Ci);
    for (int64_t t0 = 0; t0 < T; t0 += blk) {
        int64_t nt = T - t0 < blk ? T - t0 : blk;
        input_transform(V, in, Ci, Hi, Wi, th, tw, ph, pw, t0, nt);
        for (int xi = 0; xi < 16; xi++) {
            duel_sgemm(CblasNoTrans, CblasNoTrans, Co, nt, Ci, U + xi * padded(Co * Ci), Ci,
                       V + xi * padded(Ci * nt), nt, 0.0f, M + xi * padded(Co * nt), nt);
        }
        output_transform(out, M, Co, Ho, Wo, th, tw, t0, nt, acc);
    }
    return 0;
}

/* Mp {16,Co,nt} = A g A^T of out-gradient tiles [t0, t0+nt) of g {N,Co,Ho,Wo} (2x2 -> 4x4, the
 * adjoint of output_transform; entries past the map edge are zero) */
static void grad_transform(float *Mp, const float *g, int64_t Co, int64_t Ho, int64_t Wo,
                           int64_t th, int64_t tw, int64_t t0, int64_t nt) {
    int64_t plane = padded(Co * nt);
    DUEL_PAR_FOR(Co * nt * 16 >= DUEL_PAR_MIN,
    for (int64_t o = 0; o < Co; o++) {
        for (int64_t k = 0; k < nt; k++) {
            int64_t n, h0, w0;
            tile_at(t0 + k, th, tw, &n, &h0, &w0);
            const float *src = g + (n * Co + o) * Ho * Wo;
            float d[2][2];
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 2; j++)
                    d[i][j] = h0 + i < Ho && w0 + j < Wo ? src[(h0 + i) * Wo + w0 + j] : 0.0f;
            float a[4][2] = {{d[0][0], d[0][1]}, /* A d: rows of A are (1,0) (1,1) (1,-1) (0,-1) */
                             {d[0][0] + d[1][0], d[0][1] + d[1][1]},
                             {d[0][0] - d[1][0], d[0][1] - d[1][1]},
                             {-d[1][0], -d[1][1]}};
            float *m = Mp + o * nt + k;
            for (int i = 0; i < 4; i++) { /* (A d) A^T */
                m[(4 * i) * plane] = a[i][0];
                m[(4 * i + 1) * plane] = a[i][0] + a[i][1];
                m[(4 * i + 2) * plane] = a[i][0] - a[i][1];
                m[(4 * i + 3) * plane] = -a[i][1];
            }
        }
    });
}

/* dw {Co,Ci,3,3} += G^T dU G of dU {16,Co,Ci} (4x4 -> 3x3, the adjoint of filter_transform) */
static void filter_adjoint(float *dw, const float *dU, int64_t Co, int64_t Ci) {
    int64_t plane = padded(Co * Ci);
    DUEL_PAR_FOR(Co * Ci * 16 >= DUEL_PAR_MIN,
    for (int64_t a = 0; a < Co; a++) {
        for (int64_t b = 0; b < Ci; b++) {
            const float *u = dU + a * Ci + b;
            float s[3][4]; /* G^T dU */
            for (int j = 0; j < 4; j++) {
                float u0 = u[j * plane], u1 = u[(4 + j) * plane];
                float u2 = u[(8 + j) * plane], u3 = u[(12 + j) * plane];
                s[0][j] = u0 + 0.5f * (u1 + u2);
                s[1][j] = 0.5f * (u1 - u2);
                s[2][j] = 0.5f * (u1 + u2) + u3;
            }
            float *d = dw + (a * Ci + b) * 9;
            for (int k = 0; k < 3; k++) { /* (G^T dU) G */
                d[3 * k] += s[k][0] + 0.5f * (s[k][1] + s[k][2]);
                d[3 * k + 1] += 0.5f * (s[k][1] - s[k][2]);
                d[3 * k + 2] += 0.5f * (s[k][1] + s[k][2]) + s[k][3];
            }
        }
    });
}

int duel_winograd3x3_wgt(float *dw, const float *x, const float *g, int64_t N, int64_t Ci,
                         int64_t Hi, int64_t Wi, int64_t Co, int64_t Ho, int64_t Wo, int64_t ph,
                         int64_t pw, const char *op) {
    plan p;
    if (N * Ho * Wo == 0) return 0;
    if (make_plan(&p, N, Ci, Co, Ho, Wo, op)) return -1;
    int64_t th = p.th, tw = p.tw, T = p.T, blk = p.blk;
    float *dU = p.U, *V = p.V, *Mp = p.M;
    for (int64_t t0 = 0; t0 < T; t0 += blk) {
        int64_t nt = T - t0 < blk ? T - t0 : blk;
        input_transform(V, x, Ci, Hi, Wi, th, tw, ph, pw, t0, nt);
        grad_transform(Mp, g, Co, Ho, Wo, th, tw, t0, nt);
        for (int xi = 0; xi < 16; xi++) {
            duel_sgemm(CblasNoTrans, CblasTrans, Co, Ci, nt, Mp + xi * padded(Co * nt), nt,
                       V + xi * padded(Ci * nt), nt, t0 == 0 ? 0.0f : 1.0f,
                       dU + xi * padded(Co * Ci), Ci);
        }
    }
    filter_adjoint(dw, dU, Co, Ci);
    return 0;
}
