/* optim.c -- fused in-place update kernels for SGD, Adam/AdamW and RMSprop (llm.c's update
 * style: one pass over each parameter reads p, g and the state and writes them back). The
 * updates are not recorded in any graph; each bumps the parameter's version so that a graph
 * that saved the old values refuses to backpropagate through them. */
#include "duel_impl.h"

/* p, g, buf: n floats. buf is the momentum buffer (NULL when momentum == 0). */
static void sgd_kernel(float *p, const float *g, float *buf, int64_t n, const duel_sgd_opts *o,
                       int first) {
    float lr = (float)o->lr, wd = (float)o->weight_decay, mom = (float)o->momentum,
          damp = (float)o->dampening;
    DUEL_PAR_FOR(n >= DUEL_PAR_MIN,
    for (int64_t i = 0; i < n; i++) {
        float d = g[i] + wd * p[i];
        if (buf) {
            float b = first ? d : mom * buf[i] + (1.0f - damp) * d;
            buf[i] = b;
            d = o->nesterov ? d + mom * b : b;
        }
        p[i] -= lr * d;
    });
}

/* Adam (Kingma & Ba 2015) in PyTorch's arrangement: step = lr / (1 - b1^t),
 * denom = sqrt(v) / sqrt(1 - b2^t) + eps. AdamW decays p by lr*wd before the step instead of
 * adding wd*p to the gradient. */
static void adam_kernel(float *p, const float *g, float *m, float *v, int64_t n,
                        const duel_adam_opts *o, int64_t t) {
    float b1 = (float)o->beta1, b2 = (float)o->beta2, eps = (float)o->eps,
          wd = (float)o->weight_decay;
    double bc1 = 1.0 - pow(o->beta1, (double)t), bc2 = 1.0 - pow(o->beta2, (double)t);
    float step = (float)(o->lr / bc1), rbc2 = (float)(1.0 / sqrt(bc2));
    float decay = o->decoupled ? (float)(1.0 - o->lr * o->weight_decay) : 1.0f;
    DUEL_PAR_FOR(n >= DUEL_PAR_MIN,
    for (int64_t i = 0; i < n; i++) {
        float d = o->decoupled ? g[i] : g[i] + wd * p[i];
        float mi = b1 * m[i] + (1.0f - b1) * d;
        float vi = b2 * v[i] + (1.0f - b2) * d * d;
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i] * decay - step * mi / (sqrtf(vi) * rbc2 + eps);
    });
}

/* RMSprop (Hinton's lecture 6e, PyTorch's arrangement): sq = alpha sq + (1-alpha) g^2;
 * centered subtracts the squared running mean; momentum accumulates g / (sqrt(avg) + eps). */
static void rmsprop_kernel(float *p, const float *g, float *sq, float *gavg, float *buf, int64_t n,
                           const duel_rmsprop_opts *o) {
    float a = (float)o->alpha, eps = (float)o->eps, wd = (float)o->weight_decay,
          lr = (float)o->lr, mom = (float)o->momentum;
    DUEL_PAR_FOR(n >= DUEL_PAR_MIN,
    for (int64_t i = 0; i < n; i++) {
        float d = g[i] + wd * p[i];
        float s = a * sq[i] + (1.0f - a) * d * d;
        sq[i] = s;
        if (gavg) {
            float ga = a * gavg[i] + (1.0f - a) * d;
            gavg[i] = ga;
            s -= ga * ga;
        }
        float u = d / (sqrtf(s) + eps);
        if (buf) {
            buf[i] = mom * buf[i] + u;
            u = buf[i];
        }
        p[i] -= lr * u;
    });
}

/* The gradient as contiguous floats (a new ref; usually g itself). */
static duel_tensor *grad_of(duel_tensor *p, const char *op) {
    duel_tensor *g = p->grad;
    DUEL_CHECK(duel_same_shape(g, p), "%s: gradient shape %s does not match its parameter %s", op,
               SHAPE(g), SHAPE(p));
    return duel_contiguous(g);
}

int duel_sgd_step(duel_tensor *p, duel_tensor *buf, const duel_sgd_opts *o, int first) {
    duel_tensor *g = grad_of(p, "SGD");
    if (!g) return -1;
    sgd_kernel(p->data, g->data, buf ? buf->data : NULL, duel_numel(p), o, first);
    duel_release(g);
    duel_bump_version(p, "SGD.step");
    if (buf) duel_bump_version(buf, "SGD.step");
    return 0;
}

int duel_adam_step(duel_tensor *p, duel_tensor *m, duel_tensor *v, const duel_adam_opts *o,
                   int64_t t) {
    duel_tensor *g = grad_of(p, o->decoupled ? "AdamW" : "Adam");
    if (!g) return -1;
    adam_kernel(p->data, g->data, m->data, v->data, duel_numel(p), o, t);
    duel_release(g);
    duel_bump_version(p, "Adam.step");
    return 0;
}

int duel_rmsprop_step(duel_tensor *p, duel_tensor *sq, duel_tensor *gavg, duel_tensor *buf,
                      const duel_rmsprop_opts *o) {
    duel_tensor *g = grad_of(p, "RMSprop");
    if (!g) return -1;
    rmsprop_kernel(p->data, g->data, sq->data, gavg ? gavg->data : NULL, buf ? buf->data : NULL,
                   duel_numel(p), o);
    duel_release(g);
    duel_bump_version(p, "RMSprop.step");
    return 0;
}

/* ---- clipping ------------------------------------------------------------------------------ */

/* Fixed-size chunks summed in order: the same bits whatever the thread count (resumable runs
 * clip identically). */
#define SQ_CHUNK 16384
double duel_sq_norm(const duel_tensor *t) {
    int64_t n = duel_numel(t);
    double s = 0.0;
    if (duel_is_contiguous(t)) {
        const float *d = t->data;
        int64_t nch = (n + SQ_CHUNK - 1) / SQ_CHUNK;
        double small[64], *part = nch <= 64 ? small : malloc((size_t)nch * sizeof *part);
        if (!part) { /* no scratch: serial, still deterministic */
            for (int64_t i = 0; i < n; i++) s += (double)d[i] * d[i];
            return s;
        }
        DUEL_PAR_FOR(n >= DUEL_PAR_MIN,
        for (int64_t c = 0; c < nch; c++) {
            int64_t e = (c + 1) * SQ_CHUNK < n ? (c + 1) * SQ_CHUNK : n;
            double acc = 0.0;
            for (int64_t i = c * SQ_CHUNK; i < e; i++) acc += (double)d[i] * d[i];
            part[c] = acc;
        });
        for (int64_t c = 0; c < nch; c++) s += part[c];
        if (part != small) free(part);
    } else {
        for (int64_t i = 0; i < n; i++) {
            double v = duel_flat_get(t, i);
            s += v * v;
        }
    }
    return s;
}

int duel_clamp_(duel_tensor *t, float lo, float hi) {
    DUEL_CHECK_INT(duel_is_contiguous(t), "clip_weights_: parameter must be contiguous, got %s",
                   SHAPE(t));
    int64_t n = duel_numel(t);
    float *d = t->data;
    DUEL_PAR_FOR(n >= DUEL_PAR_MIN,
    for (int64_t i = 0; i < n; i++) d[i] = d[i] < lo ? lo : d[i] > hi ? hi : d[i];
    );
    duel_bump_version(t, "clip_weights_");
    return 0;
}
