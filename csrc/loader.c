/* loader.c -- the data loader's prefetcher: worker pthreads decode and augment the images of the
 * batches queued ahead while the Lua thread runs the training step.
 *
 * The Lua side chooses every random parameter (file, crop, flip) from the loader's seeded
 * counter-based RNG and hands over complete jobs, so a job's result is a pure function of its
 * description: batches are identical with any number of workers, or none. Workers only run
 * duel_image_job_run (malloc and stb, no tensor allocation), write into output tensors that the
 * Lua thread allocated and retained at submit time, and never touch a refcount: retain and
 * release happen on the Lua thread (submit, wait, free), as DESIGN.md's plain-int refcounts
 * require. The first failing job of a batch (lowest index, so the same error whatever the
 * scheduling) becomes the batch's error. */
#include "duel_impl.h"
#include "image.h"
#include <errno.h>
#include <pthread.h>

#define PF_MAX_WORKERS 64
#define PF_MAX_OUTS 8
#define PF_ERRLEN 512

typedef struct pf_batch {
    int64_t ticket;
    duel_image_job *jobs; /* paths and op names owned (strdup) */
    int njobs, next, done;
    int err_index; /* lowest failing job, or njobs */
    char err[PF_ERRLEN];
    duel_tensor *outs[PF_MAX_OUTS];
    int nouts;
    struct pf_batch *link; /* the queue, oldest first */
} pf_batch;

struct duel_prefetcher {
    pthread_mutex_t mu;
    pthread_cond_t work; /* a job was queued, or stop */
    pthread_cond_t done; /* a job finished */
    pthread_t threads[PF_MAX_WORKERS];
    int nthreads, stop;
    pf_batch *head, *tail;
    int64_t next_ticket;
};

static void batch_free(pf_batch *b) {
    if (!b) return;
    for (int i = 0; i < b->njobs; i++) {
        free((char *)b->jobs[i].path);
        free((char *)b->jobs[i].op);
    }
    free(b->jobs);
    for (int i = 0; i < b->nouts; i++) duel_release(b->outs[i]);
    free(b);
}

static void run_one(pf_batch *b, int i, pthread_mutex_t *mu) {
    char err[PF_ERRLEN];
    int rc = duel_image_job_run(&b->jobs[i], err, sizeof err);
    if (mu) pthread_mutex_lock(mu);
    if (rc && i < b->err_index) {
        b->err_index = i;
        memcpy(b->err, err, sizeof err);
    }
    b->done++;
    if (mu) pthread_mutex_unlock(mu);
}

/* claim the oldest unclaimed job of the queue (mu held) */
static pf_batch *claim(duel_prefetcher *p, int *i) {
    for (pf_batch *b = p->head; b; b = b->link)
        if (b->next < b->njobs) {
            *i = b->next++;
            return b;
        }
    return NULL;
}

static void *worker(void *arg) {
    duel_prefetcher *p = arg;
    duel_signals_block_thread();
    pthread_mutex_lock(&p->mu);
    for (;;) {
        int i = 0;
        pf_batch *b = NULL;
        while (!p->stop && !(b = claim(p, &i))) pthread_cond_wait(&p->work, &p->mu);
        if (p->stop) break;
        pthread_mutex_unlock(&p->mu);
        run_one(b, i, &p->mu);
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

duel_prefetcher *duel_prefetcher_new(int workers) {
    DUEL_CHECK(workers >= 0 && workers <= PF_MAX_WORKERS,
               "DataLoader: workers must be in [0, %d], got %d", PF_MAX_WORKERS, workers);
    duel_prefetcher *p = calloc(1, sizeof *p);
    if (!p) {
        duel_seterr(DUEL_ENOMEM, "DataLoader: out of memory, got %d workers", workers);
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->done, NULL);
    for (int i = 0; i < workers; i++) {
        int e = pthread_create(&p->threads[i], NULL, worker, p);
        if (e) {
            duel_prefetcher_free(p);
            duel_seterr(DUEL_ENOMEM, "DataLoader: cannot start worker thread %d, got %s", i + 1,
                        strerror(e));
            return NULL;
        }
        p->nthreads++;
    }
    return p;
}

void duel_prefetcher_free(duel_prefetcher *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nthreads; i++) pthread_join(p->threads[i], NULL);
    while (p->head) { /* workers are gone: nothing reads these any more */
        pf_batch *b = p->head;
        p->head = b->link;
        batch_free(b);
    }
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

int duel_prefetcher_workers(const duel_prefetcher *p) { return p->nthreads; }

int64_t duel_prefetcher_submit(duel_prefetcher *p, const duel_image_job *jobs, int njobs,
                               duel_tensor **outs, int nouts) {
    DUEL_CHECK_INT(njobs >= 0 && nouts >= 0 && nouts <= PF_MAX_OUTS,
                   "DataLoader: a batch takes at most %d output tensors, got %d", PF_MAX_OUTS,
                   nouts);
    pf_batch *b = calloc(1, sizeof *b);
    duel_image_job *copy = calloc((size_t)(njobs ? njobs : 1), sizeof *copy);
    if (!b || !copy) {
        free(b);
        free(copy);
        duel_seterr(DUEL_ENOMEM, "DataLoader: out of memory queueing a batch, got %d jobs", njobs);
        return -1;
    }
    b->jobs = copy;
    for (int i = 0; i < njobs; i++) {
        copy[i] = jobs[i];
        copy[i].path = strdup(jobs[i].path);
        copy[i].op = strdup(jobs[i].op);
        if (!copy[i].path || !copy[i].op) {
            b->njobs = i + 1;
            batch_free(b);
            duel_seterr(DUEL_ENOMEM, "DataLoader: out of memory queueing a batch, got %d jobs",
                        njobs);
            return -1;
        }
    }
    b->njobs = njobs;
    b->err_index = njobs;
    for (int i = 0; i < nouts; i++) {
        duel_retain(outs[i]);
        b->outs[b->nouts++] = outs[i];
    }
    pthread_mutex_lock(&p->mu);
    b->ticket = ++p->next_ticket;
    if (p->tail)
        p->tail->link = b;
    else
        p->head = b;
    p->tail = b;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    return b->ticket;
}

int duel_prefetcher_wait(duel_prefetcher *p, int64_t ticket, int *ready) {
    pthread_mutex_lock(&p->mu);
    pf_batch *b = p->head, *prev = NULL;
    while (b && b->ticket != ticket) {
        prev = b;
        b = b->link;
    }
    if (!b) {
        pthread_mutex_unlock(&p->mu);
        duel_seterr(DUEL_EINVAL, "DataLoader: no queued batch has ticket %lld", (long long)ticket);
        return -1;
    }
    if (ready) *ready = b->done == b->njobs;
    if (p->nthreads == 0) { /* no workers: run the jobs here, in order, with the same code */
        int i;
        while (b->next < b->njobs) {
            i = b->next++;
            run_one(b, i, NULL);
        }
    }
    while (b->done < b->njobs) pthread_cond_wait(&p->done, &p->mu);
    if (prev)
        prev->link = b->link; /* off the queue; workers no longer see it */
    else
        p->head = b->link;
    if (p->tail == b) p->tail = prev;
    pthread_mutex_unlock(&p->mu);
    int rc = 0;
    if (b->err_index < b->njobs) {
        duel_seterr(DUEL_EINVAL, "%s", b->err);
        rc = -1;
    }
    batch_free(b);
    return rc;
}
