/* autograd.c -- grad mode, graph recording, and the reverse-mode engine behind backward/grad.
 *
 * Each tensor is its own graph node (op, src[]). The engine (1) sorts the nodes reachable from the
 * roots, (2) runs each node's backward rule with grad mode = create_graph, so rules record nodes
 * only when a differentiable gradient is asked for, (3) accumulates with duel_add and reduces
 * broadcast gradients with duel_sum_to, and (4) unless retain_graph, drops each node's sources as
 * soon as it is processed, freeing saved activations at once. */
#include "duel_impl.h"

static int grad_mode = 1;
static uint64_t epoch_counter;

int duel_grad_enabled(void) { return grad_mode; }
int duel_set_grad_enabled(int on) {
    int prev = grad_mode;
    grad_mode = on ? 1 : 0;
    return prev;
}

const char *duel_op_name(const duel_tensor *t) { return t->op ? t->op->name : NULL; }

int duel_record(duel_tensor *y, const duel_opdef *op, duel_tensor **srcs, int n) {
    if (!grad_mode) return 0;
    int any = 0;
    for (int i = 0; i < n; i++) any |= srcs[i] && srcs[i]->requires_grad;
    if (!any) return 0;
    DUEL_ASSERT(n <= DUEL_MAXSRC && !y->op);
    y->op = op;
    y->nsrc = n;
    y->requires_grad = 1;
    for (int i = 0; i < n; i++) {
        y->src[i] = srcs[i];
        if (srcs[i]) {
            duel_retain(srcs[i]);
            y->src_version[i] = srcs[i]->storage->version;
        }
    }
    y->out_version = y->storage->version;
    return 0;
}

int duel_set_requires_grad(duel_tensor *t, int on) {
    DUEL_CHECK_INT(!t->op || on,
                   "requires_grad_: only leaf tensors can stop requiring grad (use detach()), got "
                   "a tensor computed by %s",
                   t->op ? t->op->name : "?");
    if (!t->op) t->requires_grad = on ? 1 : 0;
    return 0;
}

duel_tensor *duel_detach(duel_tensor *t) {
    return duel_view_of(t, t->shape, t->stride, t->ndim, t->offset);
}

/* ---- the engine ------------------------------------------------------------------------- */

enum { F_INPUT = 1, F_DONE = 2, F_OPEN = 4 };

typedef struct {
    duel_tensor **v;
    int64_t n, cap;
} vec;

static int vec_push(vec *a, duel_tensor *t) {
    if (a->n == a->cap) {
        int64_t cap = a->cap ? a->cap * 2 : 64;
        duel_tensor **v = realloc(a->v, (size_t)cap * sizeof *v);
        if (!v) {
            duel_seterr(DUEL_ENOMEM, "backward: out of memory, got a graph of %lld nodes",
                        (long long)a->n);
            return -1;
        }
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = t;
    return 0;
}

static void touch(duel_tensor *t, uint64_t e) {
    if (t->epoch != e) {
        t->epoch = e;
        t->wanted = 0;
        t->need = 0;
        duel_release(t->gacc);
        t->gacc = NULL;
    }
}

/* Post-order DFS over nodes that require grad; each pushed node is retained so that dropping
 * sources mid-traversal cannot free a node still listed. `wanted` bit 8 marks "leads to an
 * input" in grad mode. */
static int topo_sort(duel_tensor **roots, int nroots, uint64_t e, int want_all, vec *order) {
    vec stack = {0};
    int rc = 0;
    for (int r = 0; r < nroots && !rc; r++) {
        duel_tensor *root = roots[r];
        touch(root, e);
        if (root->wanted & (F_DONE | F_OPEN)) continue;
        root->wanted |= F_OPEN;
        if (vec_push(&stack, root)) {
            rc = -1;
            break;
        }
        while (stack.n > 0 && !rc) {
            duel_tensor *t = stack.v[stack.n - 1];
            int pushed = 0;
            for (int i = 0; i < t->nsrc; i++) {
                duel_tensor *s = t->src[i];
                if (!s || !s->requires_grad) continue;
                touch(s, e);
                if (s->wanted & (F_DONE | F_OPEN)) continue;
                s->wanted |= F_OPEN;
                if (vec_push(&stack, s)) {
                    rc = -1;
                    break;
                }
                pushed = 1;
                break;
            }
            if (pushed || rc) continue;
            stack.n--;
            t->wanted = (t->wanted & ~F_OPEN) | F_DONE;
            int leads = want_all || (t->wanted & F_INPUT);
            for (int i = 0; i < t->nsrc && !leads; i++) {
                duel_tensor *s = t->src[i];
                leads = s && s->requires_grad && s->epoch == e && (s->wanted & 256);
            }
            if (leads) t->wanted |= 256;
            duel_retain(t);
            if (vec_push(order, t)) {
                duel_release(t);
                rc = -1;
            }
        }
    }
    free(stack.v);
    return rc;
}

static int accumulate(duel_tensor **slot, duel_tensor *g) { /* steals g */
    if (!*slot) {
        *slot = g;
        return 0;
    }
    duel_tensor *s = duel_add(*slot, g);
    duel_release(g);
    if (!s) return -1;
    duel_release(*slot);
    *slot = s;
    return 0;
}

static int accumulate_leaf(duel_tensor *leaf, duel_tensor *g, int create_graph) {
    if (create_graph) {
        duel_retain(g);
        return accumulate(&leaf->grad, g);
    }
    if (leaf->grad && !leaf->grad->requires_grad && duel_is_contiguous(leaf->grad))
        return duel_add_(leaf->grad, g, 1.0f); /* in place, as PyTorch accumulates */
    if (!leaf->grad && g->refcount == 1 && g->storage->refcount == 1 && !g->requires_grad &&
        duel_is_contiguous(g)) {
        duel_retain(g);
        leaf->grad = g;
        return 0;
    }
    /* g is shared (e.g. passed through by add's rule to another leaf too): own a copy */
    duel_tensor *c = duel_clone(g);
    if (!c) return -1;
    return accumulate(&leaf->grad, c);
}

static int check_versions(duel_tensor *y) {
    int saved = y->op->saved;
    for (int i = 0; i < y->nsrc; i++) {
        duel_tensor *s = y->src[i];
        if (s && (saved & DUEL_SAVE_SRC(i)) && s->storage->version != y->src_version[i]) {
            duel_seterr(DUEL_EINVAL,
                        "%s: an input needed for its gradient was modified in place (by %s), got "
                        "version %u, expected %u",
                        y->op->name, s->storage->last_write ? s->storage->last_write : "?",
                        s->storage->version, y->src_version[i]);
            return -1;
        }
    }
    if ((saved & DUEL_SAVE_OUT) && y->storage->version != y->out_version) {
        duel_seterr(DUEL_EINVAL,
                    "%s: its output, needed for its gradient, was modified in place (by %s), got "
                    "version %u, expected %u",
                    y->op->name, y->storage->last_write ? y->storage->last_write : "?",
                    y->storage->version, y->out_version);
        return -1;
    }
    return 0;
}

static int run_node(duel_tensor *y, uint64_t e, int want_all, int create_graph) {
    int need = 0;
    for (int i = 0; i < y->nsrc; i++) {
        duel_tensor *s = y->src[i];
        if (s && s->requires_grad && s->epoch == e && (want_all || (s->wanted & 256)))
            need |= 1 << i;
    }
    if (!need) return 0;
    if (check_versions(y)) return -1;
    y->need = need;
    duel_tensor *dx[DUEL_MAXSRC] = {0};
    int prev = duel_set_grad_enabled(create_graph);
    int rc = y->op->backward(y, y->gacc, dx);
    for (int i = 0; i < y->nsrc && rc == 0; i++) {
        if (!dx[i] || !(need >> i & 1)) continue;
        duel_tensor *s = y->src[i], *g = dx[i];
        dx[i] = NULL;
        if (!duel_same_shape(g, s)) {
            duel_tensor *r = duel_sum_to(g, s->shape, s->ndim);
            duel_release(g);
            if (!r) {
                rc = -1;
                break;
            }
            g = r;
        }
        if (accumulate(&s->gacc, g)) rc = -1;
    }
    duel_set_grad_enabled(prev);
    for (int i = 0; i < DUEL_MAXSRC; i++) duel_release(dx[i]);
    return rc;
}

static void drop_sources(duel_tensor *y) {
    for (int i = 0; i < y->nsrc; i++) {
        duel_release(y->src[i]);
        y->src[i] = NULL;
    }
    y->released = 1;
}

static int engine(const char *api, duel_tensor **roots, duel_tensor **gouts, int nroots,
                  duel_tensor **inputs, int ninputs, duel_tensor **out, int create_graph,
                  int retain_graph, int allow_unused) {
    DUEL_CHECK_INT(nroots >= 1, "%s: need at least one output, got %d", api, nroots);
    for (int r = 0; r < nroots; r++) {
        duel_tensor *t = roots[r], *g = gouts ? gouts[r] : NULL;
        DUEL_CHECK_INT(t->requires_grad,
                       "%s: output %d does not require grad and has no grad history, got a tensor "
                       "of shape %s",
                       api, r + 1, SHAPE(t));
        if (g)
            DUEL_CHECK_INT(duel_same_shape(g, t),
                           "%s: grad_outputs[%d] must have its output's shape %s, got %s", api,
                           r + 1, SHAPE(t), SHAPE(g));
        else
            DUEL_CHECK_INT(duel_numel(t) == 1,
                           "%s: grad can be implicitly created only for a one-element output "
                           "(pass grad_outputs), got %s",
                           api, SHAPE(t));
    }
    for (int k = 0; k < ninputs; k++) {
        out[k] = NULL;
        DUEL_CHECK_INT(inputs[k]->requires_grad,
                       "%s: input %d does not require grad, got a tensor of shape %s", api, k + 1,
                       SHAPE(inputs[k]));
    }
    uint64_t e = ++epoch_counter;
    int want_all = inputs == NULL;
    for (int k = 0; k < ninputs; k++) {
        touch(inputs[k], e);
        inputs[k]->wanted |= F_INPUT;
    }
    vec order = {0};
    int rc = topo_sort(roots, nroots, e, want_all, &order);
    /* refuse unreachable inputs before running anything, so that the graph survives the error */
    for (int k = 0; k < ninputs && rc == 0 && !allow_unused; k++) {
        if (inputs[k]->wanted & F_DONE) continue;
        duel_seterr(DUEL_EINVAL,
                    "%s: input %d is not reachable from the outputs (pass allow_unused=true), got "
                    "a tensor of shape %s",
                    api, k + 1, SHAPE(inputs[k]));
        rc = -1;
    }
    int prev = duel_set_grad_enabled(create_graph);
    for (int r = 0; r < nroots && rc == 0; r++) {
        duel_tensor *g = gouts && gouts[r] ? gouts[r] : NULL;
        if (g) duel_retain(g);
        else g = duel_full(roots[r]->shape, roots[r]->ndim, 1.0f);
        if (!g || accumulate(&roots[r]->gacc, g)) rc = -1;
    }
    duel_set_grad_enabled(prev);
    for (int64_t i = order.n - 1; i >= 0 && rc == 0; i--) {
        duel_tensor *y = order.v[i];
        if (!y->gacc) continue;
        if (y->wanted & F_INPUT)
            for (int k = 0; k < ninputs; k++)
                if (inputs[k] == y && !out[k]) {
                    duel_retain(y->gacc);
                    out[k] = y->gacc;
                }
        if (y->op) {
            if (y->released) {
                duel_seterr(DUEL_EINVAL,
                            "%s: the graph through %s was freed by an earlier backward (pass "
                            "retain_graph=true to keep it), got a released %s node",
                            api, y->op->name, y->op->name);
                rc = -1;
                break;
            }
            if (run_node(y, e, want_all, create_graph)) {
                rc = -1;
                break;
            }
        } else if (want_all) {
            int p = duel_set_grad_enabled(create_graph);
            rc = accumulate_leaf(y, y->gacc, create_graph);
            duel_set_grad_enabled(p);
        }
        duel_release(y->gacc);
        y->gacc = NULL;
        if (!retain_graph && y->op) drop_sources(y);
    }
    /* reachable inputs whose every path carried no gradient (e.g. only through where's mask)
     * get zeros, the true derivative */
    for (int k = 0; k < ninputs && rc == 0; k++)
        if (!out[k] && (inputs[k]->wanted & F_DONE) &&
            !(out[k] = duel_zeros(inputs[k]->shape, inputs[k]->ndim)))
            rc = -1;
    for (int64_t i = 0; i < order.n; i++) {
        duel_tensor *y = order.v[i];
        duel_release(y->gacc);
        y->gacc = NULL;
        y->epoch = 0;
        duel_release(y);
    }
    for (int k = 0; k < ninputs; k++) inputs[k]->epoch = 0;
    free(order.v);
    if (rc)
        for (int k = 0; k < ninputs; k++) {
            duel_release(out[k]);
            out[k] = NULL;
        }
    return rc;
}

int duel_backward(duel_tensor **roots, duel_tensor **grad_outputs, int nroots, int create_graph,
                  int retain_graph) {
    return engine("backward", roots, grad_outputs, nroots, NULL, 0, NULL, create_graph,
                  retain_graph, 1);
}

int duel_grad(duel_tensor **roots, duel_tensor **grad_outputs, int nroots, duel_tensor **inputs,
              int ninputs, duel_tensor **out, int create_graph, int retain_graph,
              int allow_unused) {
    DUEL_CHECK_INT(ninputs >= 1, "grad: need at least one input, got %d", ninputs);
    return engine("grad", roots, grad_outputs, nroots, inputs, ninputs, out, create_graph,
                  retain_graph, allow_unused);
}
