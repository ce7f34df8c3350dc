/* duel.h -- the one public C header of duel's core.
 *
 * duel is a float32 tensor library with reverse-mode autograd of any order. The core is pure C11
 * (no lua.h); the LuaJIT binding in csrc/lua/ is one client of it and the C tests are another.
 *
 *   duel_tensor *x = duel_randn((int64_t[]){2, 3}, 2);     // new ref
 *   duel_set_requires_grad(x, 1);
 *   duel_tensor *y = duel_tanh(x), *s = duel_sum(y);       // each a new ref; NULL + duel_errmsg()
 *   duel_tensor *g[1];
 *   duel_grad(&s, NULL, 1, &x, 1, g, 1, 1);                // g[0] = 1 - tanh(x)^2, itself differentiable
 *
 * Conventions
 * - Dimensions are 0-based here (the binding converts from Lua's 1-based ones).
 * - Ownership words: "new ref" (caller releases with duel_release), "borrowed", "steals".
 * - Errors are values: a function returning a tensor returns NULL, one returning int returns -1,
 *   and duel_errmsg() holds "<op>: <what is wrong>, got <value>". Nothing here aborts on user input.
 * - Every op that records a graph node has a backward written in duel_* ops, so gradients can be
 *   differentiated again (create_graph).
 */
#ifndef DUEL_H
#define DUEL_H

#include <stddef.h>
#include <stdint.h>

#define DUEL_MAXDIM 8
#define DUEL_MAXSRC 4

enum { DUEL_OK = 0, DUEL_EINVAL = 1, DUEL_ENOMEM = 2 };

typedef struct duel_storage {
    float *data;
    int64_t nbytes;
    int refcount;
    uint32_t version;       /* bumped by every in-place write through any view */
    const char *last_write; /* name of the in-place op that last bumped version */
} duel_storage;

typedef struct duel_tensor duel_tensor;

/* A backward rule: given output y (borrowed) and its gradient dy (borrowed), set dx[i] to a new
 * ref (or leave NULL) for each source i whose bit is set in y->need. Written in duel_* ops. */
typedef int (*duel_backward_fn)(duel_tensor *y, duel_tensor *dy, duel_tensor **dx);

typedef struct duel_opdef {
    const char *name;
    int nsrc;
    duel_backward_fn backward;
    int saved; /* values the rule reads: DUEL_SAVE_SRC(i) | DUEL_SAVE_OUT (checked for in-place writes) */
} duel_opdef;
#define DUEL_SAVE_SRC(i) (1 << (i))
#define DUEL_SAVE_OUT (1 << DUEL_MAXSRC)

struct duel_tensor {
    float *data; /* storage->data + offset */
    duel_storage *storage;
    int64_t offset;
    int64_t shape[DUEL_MAXDIM];
    int64_t stride[DUEL_MAXDIM]; /* in elements */
    int ndim;
    int refcount;
    int requires_grad;
    duel_tensor *grad; /* leaf gradient (new ref held), or NULL */
    /* graph node: the tensor is its own node */
    const duel_opdef *op;
    duel_tensor *src[DUEL_MAXSRC];
    int nsrc;
    int released; /* src[] dropped by a backward without retain_graph */
    uint32_t src_version[DUEL_MAXSRC];
    uint32_t out_version;
    float fparam[4];
    int64_t iparam[DUEL_MAXDIM + 4];
    /* autograd engine scratch, valid during one traversal only */
    duel_tensor *gacc;
    uint64_t epoch;
    int need;   /* bit i: src i needs a gradient in this traversal */
    int wanted; /* this node leads to a requested input */
};

/* ---- errors ---------------------------------------------------------------------------- */
const char *duel_errmsg(void); /* borrowed; the last error of this thread */
int duel_errcode(void);
void duel_clear_error(void);
/* "{2,3}" for messages (a thread-local ring of buffers, valid for the next few calls) */
const char *duel_shape_str(const int64_t *shape, int ndim);

/* ---- memory ---------------------------------------------------------------------------- */
int64_t duel_live_bytes(void);      /* bytes of tensor storage alive now */
int64_t duel_take_alloc_debt(void); /* bytes allocated since the last call (for GC pressure) */
/* Called once when an allocation fails, before the op reports DUEL_ENOMEM; it may free memory
 * (the binding runs a full Lua GC), after which the allocation is retried once. */
void duel_set_oom_hook(void (*hook)(void *), void *ud);
int64_t duel_max_bytes(void); /* refuse any single tensor larger than this */
/* Freed tensor memory is kept by size for reuse (up to 1 GiB); this returns it to the system. */
void duel_empty_cache(void);
int64_t duel_cached_bytes(void);
/* What the kernel can still give (MemAvailable + SwapFree, capped by a cgroup v2 limit), or -1.
 * Requests from 64 MiB up are refused with DUEL_ENOMEM when larger than this. */
int64_t duel_available_bytes(void);

/* ---- threads and RNG -------------------------------------------------------------------- */
int duel_set_num_threads(int n); /* OpenMP and OpenBLAS together; -1 on n < 1 */
int duel_get_num_threads(void);
/* convolutions through oneDNN ("onednn", the default where the build has it) or im2col + sgemm
 * ("gemm"); -1 on an unknown name or "onednn" in a build without it */
int duel_set_conv_backend(const char *name);
const char *duel_conv_backend(void);
void duel_dnnl_counts(int64_t *taken, int64_t *declined); /* oneDNN calls on this thread (tests) */
/* every sgemm (matmul, linear, the gemm convolutions) by oneDNN's ("onednn", the default where
 * the build has it) or OpenBLAS's ("openblas"); -1 on an unknown name or "onednn" without it */
int duel_set_sgemm_backend(const char *name);
const char *duel_sgemm_backend(void);
void duel_manual_seed(uint64_t seed);
void duel_rng_get_state(uint64_t *seed, uint64_t *offset);
void duel_rng_set_state(uint64_t seed, uint64_t offset);

/* ---- lifecycle ---------------------------------------------------------------------------- */
void duel_retain(duel_tensor *t);
void duel_release(duel_tensor *t); /* NULL-safe */
int64_t duel_numel(const duel_tensor *t);
int duel_is_contiguous(const duel_tensor *t);

/* ---- creation (all new ref) ---------------------------------------------------------------- */
duel_tensor *duel_empty(const int64_t *shape, int ndim);
duel_tensor *duel_zeros(const int64_t *shape, int ndim);
duel_tensor *duel_full(const int64_t *shape, int ndim, float v);
duel_tensor *duel_scalar(float v); /* 0-dim */
duel_tensor *duel_arange(double start, double stop, double step);
duel_tensor *duel_rand(const int64_t *shape, int ndim);  /* U[0,1) */
duel_tensor *duel_randn(const int64_t *shape, int ndim); /* N(0,1) */
duel_tensor *duel_empty_like(const duel_tensor *t);
duel_tensor *duel_zeros_like(const duel_tensor *t);

/* ---- element access and in-place writes (not differentiable) ------------------------------- */
int duel_get(const duel_tensor *t, const int64_t *idx, int n, float *out);
int duel_set_(duel_tensor *t, const int64_t *idx, int n, float v);
float duel_flat_get(const duel_tensor *t, int64_t i); /* logical row-major index, unchecked */
void duel_flat_set(duel_tensor *t, int64_t i, float v);
int duel_fill_(duel_tensor *t, float v);
int duel_copy_(duel_tensor *dst, duel_tensor *src); /* src broadcast to dst's shape */
int duel_check_inplace(duel_tensor *t, const char *op);
void duel_bump_version(duel_tensor *t, const char *op);

/* ---- autograd ---------------------------------------------------------------------------- */
int duel_grad_enabled(void);
int duel_set_grad_enabled(int on); /* returns the previous mode */
int duel_set_requires_grad(duel_tensor *t, int on);
duel_tensor *duel_detach(duel_tensor *t); /* new ref: shares storage, no history */
/* Accumulate d(roots)/d(leaf) into every reachable leaf's ->grad. grad_outputs may be NULL
 * (then every root must have one element). */
int duel_backward(duel_tensor **roots, duel_tensor **grad_outputs, int nroots, int create_graph,
                  int retain_graph);
/* out[i] = d(sum of roots . grad_outputs)/d(inputs[i]) as new refs (NULL where unreachable
 * when allow_unused, else an error). Leaves' ->grad is untouched. */
int duel_grad(duel_tensor **roots, duel_tensor **grad_outputs, int nroots, duel_tensor **inputs,
              int ninputs, duel_tensor **out, int create_graph, int retain_graph, int allow_unused);
const char *duel_op_name(const duel_tensor *t); /* NULL for leaves */
/* The registry of differentiable ops, for the gradcheck coverage test. */
const duel_opdef *const *duel_registry(int *n);
/* For modules outside the core (duel.mpi): record y = op(srcs) as a graph node, a no-op unless
 * grad mode is on and a src needs grad. Takes new references to the sources; op (static) must
 * outlive the nodes. Its backward follows the duel_backward_fn contract above. */
int duel_record(duel_tensor *y, const duel_opdef *op, duel_tensor **srcs, int n);

/* ---- views (share storage; differentiable) ------------------------------------------------- */
duel_tensor *duel_view(duel_tensor *x, const int64_t *shape, int ndim); /* one -1 allowed */
duel_tensor *duel_reshape(duel_tensor *x, const int64_t *shape, int ndim);
duel_tensor *duel_transpose(duel_tensor *x, int d0, int d1);
duel_tensor *duel_permute(duel_tensor *x, const int *perm, int n);
duel_tensor *duel_narrow(duel_tensor *x, int dim, int64_t start, int64_t len);
duel_tensor *duel_select(duel_tensor *x, int dim, int64_t i);
duel_tensor *duel_expand(duel_tensor *x, const int64_t *shape, int ndim); /* -1 keeps a size */
duel_tensor *duel_unsqueeze(duel_tensor *x, int dim);
duel_tensor *duel_squeeze(duel_tensor *x, int dim); /* dim < 0: every size-1 dim */
duel_tensor *duel_contiguous(duel_tensor *x);       /* x itself (retained) when contiguous */
duel_tensor *duel_clone(duel_tensor *x);
/* narrow's adjoint: x placed at [start, start+len) of dim in zeros of size `size` there. */
duel_tensor *duel_embed(duel_tensor *x, int dim, int64_t start, int64_t size);
/* Sum x down to `shape` (broadcast's adjoint); expand's backward. */
duel_tensor *duel_sum_to(duel_tensor *x, const int64_t *shape, int ndim);

/* ---- elementwise (broadcasting binary ops) --------------------------------------------------- */
duel_tensor *duel_add(duel_tensor *a, duel_tensor *b);
duel_tensor *duel_sub(duel_tensor *a, duel_tensor *b);
duel_tensor *duel_mul(duel_tensor *a, duel_tensor *b);
duel_tensor *duel_div(duel_tensor *a, duel_tensor *b);
duel_tensor *duel_add_scalar(duel_tensor *a, float s);
duel_tensor *duel_mul_scalar(duel_tensor *a, float s);
duel_tensor *duel_pow(duel_tensor *x, float p);
duel_tensor *duel_pow_tensor(duel_tensor *a, duel_tensor *b); /* a^b, a > 0 where b is not whole */
duel_tensor *duel_neg(duel_tensor *x);
duel_tensor *duel_exp(duel_tensor *x);
duel_tensor *duel_log(duel_tensor *x);
duel_tensor *duel_sqrt(duel_tensor *x);
duel_tensor *duel_abs(duel_tensor *x);
duel_tensor *duel_tanh(duel_tensor *x);
duel_tensor *duel_sigmoid(duel_tensor *x);
duel_tensor *duel_relu(duel_tensor *x);
duel_tensor *duel_sign(duel_tensor *x);
duel_tensor *duel_sin(duel_tensor *x);
duel_tensor *duel_cos(duel_tensor *x);
duel_tensor *duel_clamp(duel_tensor *x, float lo, float hi); /* NaN bound = unbounded */
duel_tensor *duel_where(duel_tensor *mask, duel_tensor *a, duel_tensor *b);
/* comparisons give 0/1 tensors with no gradient */
duel_tensor *duel_gt(duel_tensor *a, duel_tensor *b);
duel_tensor *duel_lt(duel_tensor *a, duel_tensor *b);
duel_tensor *duel_ge(duel_tensor *a, duel_tensor *b);
duel_tensor *duel_le(duel_tensor *a, duel_tensor *b);
duel_tensor *duel_eq(duel_tensor *a, duel_tensor *b);
/* in place, no graph: dst += alpha * src (src broadcast to dst) */
int duel_add_(duel_tensor *dst, duel_tensor *src, float alpha);
int duel_mul_scalar_(duel_tensor *dst, float s);

/* ---- reductions (dim < 0: over every element, giving a 0-dim tensor) -------------------------- */
duel_tensor *duel_sum(duel_tensor *x);
duel_tensor *duel_sum_dim(duel_tensor *x, int dim, int keepdim);
duel_tensor *duel_mean(duel_tensor *x);
duel_tensor *duel_mean_dim(duel_tensor *x, int dim, int keepdim);
/* values (differentiable) and, when idx != NULL, 1-based indices as floats (new ref) */
duel_tensor *duel_max_dim(duel_tensor *x, int dim, int keepdim, duel_tensor **idx);
duel_tensor *duel_min_dim(duel_tensor *x, int dim, int keepdim, duel_tensor **idx);
duel_tensor *duel_max(duel_tensor *x);
duel_tensor *duel_min(duel_tensor *x);
duel_tensor *duel_argmax(duel_tensor *x, int dim, int keepdim); /* 1-based; dim<0: flat index */
duel_tensor *duel_var(duel_tensor *x, int dim, int keepdim, int unbiased);
duel_tensor *duel_std(duel_tensor *x, int dim, int keepdim, int unbiased);
duel_tensor *duel_logsumexp(duel_tensor *x, int dim, int keepdim);
duel_tensor *duel_norm(duel_tensor *x, float p, int dim, int keepdim);

/* ---- joining and indexing ------------------------------------------------------------------ */
duel_tensor *duel_cat(duel_tensor **xs, int n, int dim);
duel_tensor *duel_stack(duel_tensor **xs, int n, int dim);
/* idx: 1-D, whole numbers, 1-based (index data is 1-based in C too); gathers along dim */
duel_tensor *duel_index_select(duel_tensor *x, int dim, duel_tensor *idx);
/* index_select's adjoint: zeros with `size` along dim, rows of x added at idx */
duel_tensor *duel_index_add(duel_tensor *x, int dim, duel_tensor *idx, int64_t size);

/* ---- matmul ------------------------------------------------------------------------------ */
/* {M,K}x{K,N}, {B,M,K}x{B,K,N}, {B,M,K}x{K,N}, {M,K}x{B,K,N}: cblas_sgemm, strides folded into
 * transpose flags where possible. */
duel_tensor *duel_matmul(duel_tensor *a, duel_tensor *b);

/* ==== optimizers (optim.c): fused in-place updates, unrecorded; p->grad must be set ========== */
/* hyper-parameters are doubles so that what a script sets is what it reads back */
typedef struct duel_sgd_opts {
    double lr, momentum, dampening, weight_decay;
    int nesterov;
} duel_sgd_opts;
typedef struct duel_adam_opts {
    double lr, beta1, beta2, eps, weight_decay;
    int decoupled; /* AdamW */
} duel_adam_opts;
typedef struct duel_rmsprop_opts {
    double lr, alpha, eps, weight_decay, momentum;
    int centered;
} duel_rmsprop_opts;
/* buf: momentum buffer (NULL without momentum); first: the buffer is initialised to the gradient */
int duel_sgd_step(duel_tensor *p, duel_tensor *buf, const duel_sgd_opts *o, int first);
int duel_adam_step(duel_tensor *p, duel_tensor *m, duel_tensor *v, const duel_adam_opts *o,
                   int64_t t); /* t: 1-based step count */
int duel_rmsprop_step(duel_tensor *p, duel_tensor *sq, duel_tensor *gavg, duel_tensor *buf,
                      const duel_rmsprop_opts *o);
double duel_sq_norm(const duel_tensor *t); /* sum of squares, in double */
int duel_clamp_(duel_tensor *t, float lo, float hi); /* in place, unrecorded */

/* ==== layer ops (duel.F) ======================================================================
 * Each family is one file in csrc/ops/ with its Lua binding in csrc/lua/l_<family>.c. */

/* ---- activations (ops/activation.c) ---------------------------------------------------------- */
duel_tensor *duel_leaky_relu(duel_tensor *x, float slope);
duel_tensor *duel_elu(duel_tensor *x, float alpha);
/* log(1 + exp(beta x)) / beta, linear above threshold (PyTorch's softplus) */
duel_tensor *duel_softplus(duel_tensor *x, float beta, float threshold);
duel_tensor *duel_softmax(duel_tensor *x, int dim);
duel_tensor *duel_log_softmax(duel_tensor *x, int dim);
/* inverted dropout: zero with probability p, scale the rest by 1/(1-p); identity unless training */
duel_tensor *duel_dropout(duel_tensor *x, float p, int training);
/* 0/1 tensor, 1 with probability p, from the counter-based RNG (random.c) */
duel_tensor *duel_bernoulli(const int64_t *shape, int ndim, float p);

/* ---- losses (ops/loss.c): each is the mean over all elements ----------------------------------- */
duel_tensor *duel_bce_with_logits(duel_tensor *logits, duel_tensor *target);
duel_tensor *duel_mse(duel_tensor *a, duel_tensor *b);
duel_tensor *duel_l1(duel_tensor *a, duel_tensor *b);
/* logits {N,C}, labels {N} holding 1-based class numbers; mean over N */
duel_tensor *duel_cross_entropy(duel_tensor *logits, duel_tensor *labels);

/* ---- linear and convolution (ops/conv.c), pooling (ops/pool.c) --------------------------------- */
typedef struct duel_conv2d_opts {
    int64_t stride[2], padding[2], dilation[2], output_padding[2]; /* {h, w} */
    int64_t groups;
} duel_conv2d_opts;
/* x {...,in}, w {out,in}, b {out} or NULL */
duel_tensor *duel_linear(duel_tensor *x, duel_tensor *w, duel_tensor *b);
/* x {N,C,H,W}, w {O,C/groups,kh,kw}, b {O} or NULL */
duel_tensor *duel_conv2d(duel_tensor *x, duel_tensor *w, duel_tensor *b, const duel_conv2d_opts *o);
/* x {N,C,H,W}, w {C,O/groups,kh,kw} (PyTorch's layout), b {O} or NULL; the adjoint of conv2d */
duel_tensor *duel_conv_transpose2d(duel_tensor *x, duel_tensor *w, duel_tensor *b,
                                   const duel_conv2d_opts *o);
/* x {N,C,H,W}; count_include_pad as PyTorch's default (true) */
duel_tensor *duel_avg_pool2d(duel_tensor *x, const int64_t k[2], const int64_t stride[2],
                             const int64_t pad[2]);
duel_tensor *duel_max_pool2d(duel_tensor *x, const int64_t k[2], const int64_t stride[2],
                             const int64_t pad[2]);

/* ---- normalisation (ops/norm.c) ------------------------------------------------------------- */
/* x {N,C,...}; training: batch statistics, and running stats (if given) updated in place with
 * momentum (unbiased variance, as PyTorch); eval: running statistics. weight/bias {C} or NULL. */
duel_tensor *duel_batch_norm(duel_tensor *x, duel_tensor *running_mean, duel_tensor *running_var,
                             duel_tensor *weight, duel_tensor *bias, int training, float momentum,
                             float eps);
/* x {N,C,H,W}: per sample and channel over H,W; weight/bias {C} or NULL */
duel_tensor *duel_instance_norm(duel_tensor *x, duel_tensor *weight, duel_tensor *bias, float eps);
/* normalise over the last `nnorm` dims; weight/bias of those dims' shape, or NULL */
duel_tensor *duel_layer_norm(duel_tensor *x, int nnorm, duel_tensor *weight, duel_tensor *bias,
                             float eps);
/* instance-normalise x {N,C,H,W}, then per sample and channel scale {N,C} and shift {N,C} */
duel_tensor *duel_adain(duel_tensor *x, duel_tensor *scale, duel_tensor *bias, float eps);

/* ---- padding and resampling (ops/resample.c) --------------------------------------------------- */
enum { DUEL_PAD_ZERO = 0, DUEL_PAD_REFLECT = 1, DUEL_PAD_REPLICATE = 2 };
/* pad the last two dims by {left, right, top, bottom} */
duel_tensor *duel_pad2d(duel_tensor *x, const int64_t pad[4], int mode);
enum { DUEL_UP_NEAREST = 0, DUEL_UP_BILINEAR = 1 };
/* x {N,C,H,W} -> {N,C,H*sh,W*sw}; bilinear with align_corners=false (PyTorch's default) */
duel_tensor *duel_upsample(duel_tensor *x, int64_t sh, int64_t sw, int mode);

/* ---- GAN losses and penalty term (ops/gan_loss.c): fused, mean-reduced, scalar results ------ */
/* Kinds and formulas: the header of ops/gan_loss.c and docs/gan.md. Outputs are logits / critic
 * values of any shape; 'relativistic' pairs real and fake by index (shapes must match). */
enum {
    DUEL_GAN_MINIMAX, DUEL_GAN_NONSATURATING, DUEL_GAN_LSGAN, DUEL_GAN_HINGE, DUEL_GAN_WGAN,
    DUEL_GAN_RELATIVISTIC, DUEL_GAN_NKINDS
};
int duel_gan_kind(const char *name);       /* -1 if unknown */
const char *duel_gan_kind_name(int kind); /* NULL if unknown */
duel_tensor *duel_gan_d_loss(int kind, duel_tensor *real_out, duel_tensor *fake_out);
/* real_out is read by 'relativistic' only (NULL allowed otherwise) */
duel_tensor *duel_gan_g_loss(int kind, duel_tensor *fake_out, duel_tensor *real_out);
/* g {N,...}: weight * mean_i (|g_i| - center)^2, |g_i| the L2 norm of sample i (one_sided:
 * max(0, |g_i| - center)^2). norms (may be NULL): set to a new ref {N} of the norms, no graph. */
duel_tensor *duel_grad_norm_penalty(duel_tensor *g, float center, float weight, int one_sided,
                                    duel_tensor **norms);

/* ==== checkpoints (serialize.c): safetensors files ============================================
 * An entry is a tensor (tensor set, value NULL) or a __metadata__ string (tensor NULL). Keys and
 * values are byte strings with lengths (UTF-8; NUL allowed). Errors name the op "save"/"load". */
typedef struct duel_st_entry {
    char *key;
    size_t key_len;
    duel_tensor *tensor; /* borrowed when saving; a new ref held by duel_st when loaded */
    char *value;
    size_t value_len;
} duel_st_entry;
typedef struct duel_st {
    duel_st_entry *entries; /* metadata first, then tensors in file order */
    int n;
} duel_st;
/* the file's bytes in a new malloc'd buffer: tensors as F32 sorted by name, header padded with
 * spaces to a multiple of 8 */
int duel_st_encode(const duel_st_entry *e, int n, unsigned char **out, size_t *len);
/* atomic: writes <path>.tmp.<pid>, fsyncs it, renames it over path, fsyncs the directory */
int duel_st_save(const char *path, const duel_st_entry *e, int n);
/* strict, bounded parse of a whole file in memory or on disk; tensors come back as float32 */
duel_st *duel_st_decode(const unsigned char *buf, size_t len);
duel_st *duel_st_load(const char *path);
void duel_st_free(duel_st *st); /* NULL-safe; releases the tensors */

#endif
