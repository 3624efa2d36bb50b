/* SPDX-License-Identifier: MIT */
/*
 * The weighted FIFO semaphore (Go's x/sync/semaphore) with cancellable
 * acquire.
 *
 * DESIGN
 *
 * `word` packs the units in use (low 63 bits) and QUEUED (bit 63: waiters
 * are queued). With QUEUED clear, acquire and release are one CAS each
 * and take no lock. With QUEUED set, both go through `mu`, which guards
 * the FIFO of waiters; only holders of `mu` change the word then, except
 * a fast-path CAS that started before the bit was set, which then fails
 * and retries on the slow path.
 *
 * An acquire that must wait queues a record on its stack, sets QUEUED, and
 * runs `grant` itself (a release may have happened between its check and
 * the bit), then parks on the record's word, registered on the context
 * (a cancellation sets CANCELLED in that word). `grant` serves waiters
 * strictly in order: it stops at the first that does not fit, so a large
 * request at the head is never overtaken. A cancelled waiter leaves the
 * queue under `mu` and runs `grant` again, because it may have been the
 * one blocking those behind it. If it was granted just before it saw the
 * cancellation it gives the units back: a done context means an error and
 * no effect, never both.
 *
 * Waiting spins first, for up to SPIN_FOR: before queueing, on the word
 * (a short hold ends soon, and the fast path takes the units); after, on
 * the record's word. A waiter announces that it sleeps (PARKED), and a
 * granter makes the futex system call only then, so a hand-over between
 * two threads on two CPUs costs a lock and a few cache misses, no system
 * call.
 */
#include "sync_int.h"

#include <errno.h>

#define QUEUED    ((uint64_t)1 << 63)
#define GRANTED   1u
#define CANCELLED 2u
#define PARKED    4u /* the waiter sleeps on the futex: wake it */
#define SPIN_FOR  (20 * CTX_MICROSECOND)

struct semwait {
    int64_t n;
    _Atomic uint32_t word;
    struct semwait *next;
    struct semwait **pprev; /* NULL once out of the queue */
};

struct ctx_sem {
    _Atomic uint64_t word; /* in use | QUEUED */
    int64_t size;          /* immutable */
    ctx__mutex_t mu;
    struct semwait *head;  /* guarded by mu */
    struct semwait **tail; /* guarded by mu */
};

int ctx_sem_new(int64_t capacity, ctx_sem_t **out)
{
    ctx_sem_t *s;

    if (out)
        *out = NULL;
    if (capacity < 0 || !out)
        return EINVAL;
    s = ctx__calloc(1, sizeof *s);
    if (!s)
        return ENOMEM;
    atomic_init(&s->word, 0);
    s->size = capacity;
    pthread_mutex_init(&s->mu.m, NULL);
    s->tail = &s->head;
    *out = s;
    return 0;
}

void ctx_sem_free(ctx_sem_t *s)
{
    if (!s)
        return;
    CTX_ASSERT(!(atomic_load(&s->word) & QUEUED)); /* nobody waits */
    pthread_mutex_destroy(&s->mu.m);
    ctx__free(s);
}

/* Take n units if no one is queued and they fit. */
static bool fast_acquire(ctx_sem_t *s, int64_t n)
{
    uint64_t w = atomic_load_explicit(&s->word, memory_order_relaxed);
    while (!(w & QUEUED) && s->size - (int64_t)w >= n) {
        if (atomic_compare_exchange_weak_explicit(&s->word, &w, w + (uint64_t)n,
                                                  memory_order_acquire,
                                                  memory_order_relaxed))
            return true;
    }
    return false;
}

bool ctx_sem_try_acquire(ctx_sem_t *s, int64_t n)
{
    if (!s || n < 0)
        return false;
    return fast_acquire(s, n);
}

static void dequeue(ctx_sem_t *s, struct semwait *w) CTX_REQUIRES(s->mu)
{
    *w->pprev = w->next;
    if (w->next)
        w->next->pprev = w->pprev;
    else
        s->tail = w->pprev;
    w->pprev = NULL;
}

/*
 * Serve queued waiters in order while the head fits; clear QUEUED when the
 * queue empties. The served ones come back as a list (through `next`) for
 * wake(), called after `mu` is unlocked: a waiter that sees GRANTED may
 * return at once and its caller free the semaphore.
 */
static struct semwait *grant(ctx_sem_t *s) CTX_REQUIRES(s->mu)
{
    struct semwait *w, *granted = NULL, **tail = &granted;
    while ((w = s->head) != NULL) {
        uint64_t used = atomic_load(&s->word) & ~QUEUED;
        if (s->size - (int64_t)used < w->n)
            return granted;
        atomic_fetch_add(&s->word, (uint64_t)w->n);
        dequeue(s, w);
        w->next = NULL;
        *tail = w;
        tail = &w->next;
    }
    atomic_fetch_and(&s->word, ~QUEUED);
    return granted;
}

static void wake(struct semwait *w)
{
    while (w) {
        struct semwait *next = w->next;
        ctx__unpark(&w->word, GRANTED, PARKED); /* w may go after this */
        w = next;
    }
}

/* One turn of a spin (the i-th, from 1): true once SPIN_FOR has passed
 * since the 64th (the clock is read every 64 turns). */
static bool spun_out(unsigned i, ctx_time_t *until)
{
    ctx_time_t now;
    ctx__cpu_relax();
    if (i % 64 != 0)
        return false;
    now = ctx__real_now();
    if (!*until)
        *until = now + SPIN_FOR;
    return now >= *until;
}

/* Spin until the units are taken through the fast path (true), or waiters
 * are queued, or SPIN_FOR passed (false: queue). */
static bool spin_acquire(ctx_sem_t *s, int64_t n)
{
    ctx_time_t until = 0;
    for (unsigned i = 1;; i++) {
        uint64_t w = atomic_load_explicit(&s->word, memory_order_relaxed);
        if (w & QUEUED)
            return false; /* first come, first served: join them */
        if (s->size - (int64_t)w >= n && fast_acquire(s, n))
            return true;
        if (spun_out(i, &until))
            return false;
    }
}

/* Spin, then park, until the record's word has one of `bits`. */
static uint32_t await(struct semwait *w, uint32_t bits)
{
    ctx_time_t until = 0;
    uint32_t v;
    for (unsigned i = 1; !((v = atomic_load(&w->word)) & bits); i++)
        if (spun_out(i, &until))
            break;
    while (!((v = atomic_load(&w->word)) & bits))
        ctx__park(&w->word, v, PARKED);
    return v;
}

int ctx_sem_acquire(ctx_sem_t *s, ctx_t *c, int64_t n)
{
    struct semwait w, *granted;
    struct ctx__waitrec wr;
    uint32_t v;
    int rc;

    if (!s || !c || n < 0 || n > s->size)
        return EINVAL;
    if (ctx_done(c))
        return ctx_err(c);
    if (fast_acquire(s, n) || spin_acquire(s, n))
        return 0;

    w.n = n;
    atomic_init(&w.word, 0);
    wr.word = &w.word;
    wr.bit = CANCELLED;
    wr.fd = -1;
    wr.stamp = NULL;
    if ((rc = ctx__wait_register(c, &wr)) != 0)
        return rc;
    ctx__lock(&s->mu);
    w.next = NULL;
    w.pprev = s->tail;
    *s->tail = &w;
    s->tail = &w.next;
    atomic_fetch_or(&s->word, QUEUED);
    granted = grant(s); /* units freed before QUEUED was set, maybe ours */
    ctx__unlock(&s->mu);
    wake(granted);

    ctx__note_wait("semaphore", s);
    v = await(&w, GRANTED | CANCELLED);
    ctx__note_done();
    ctx__wait_unregister(c, &wr);
    if (!(v & CANCELLED) && !ctx_done(c))
        return 0; /* granted */
    ctx__lock(&s->mu);
    if (w.pprev) {
        dequeue(s, &w);
        granted = grant(s); /* we may have been blocking those behind */
        ctx__unlock(&s->mu);
        wake(granted);
        return ctx_err(c);
    }
    ctx__unlock(&s->mu);
    /* Granted (the granter sets the word after its unlock: wait for that,
     * our frame must outlive its store), but the context is done too:
     * give the units back, so the call has no effect, as its error says. */
    await(&w, GRANTED);
    ctx_sem_release(s, n);
    return ctx_err(c);
}

void ctx_sem_release(ctx_sem_t *s, int64_t n)
{
    struct semwait *granted;
    uint64_t w;

    if (!s || n < 0)
        return;
    w = atomic_load_explicit(&s->word, memory_order_relaxed);
    while (!(w & QUEUED)) {
        if (CTX_NEVER((int64_t)w < n))
            return; /* released more than held: a misuse */
        if (atomic_compare_exchange_weak_explicit(&s->word, &w, w - (uint64_t)n,
                                                  memory_order_release,
                                                  memory_order_relaxed))
            return;
    }
    ctx__lock(&s->mu);
    w = atomic_load(&s->word);
    if (CTX_NEVER((int64_t)(w & ~QUEUED) < n)) {
        ctx__unlock(&s->mu);
        return;
    }
    atomic_fetch_sub(&s->word, (uint64_t)n);
    granted = grant(s);
    ctx__unlock(&s->mu);
    wake(granted);
}
