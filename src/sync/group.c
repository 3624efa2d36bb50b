/* SPDX-License-Identifier: MIT */
/*
 * Groups: errgroup and nursery in one, on the worker pool.
 *
 * DESIGN
 *
 * Counting. `started` (tasks accepted, bumped by callers of go) and
 * `finished` (tasks returned, bumped by workers) live on separate cache
 * lines, so a burst of go calls and the workers running them do not pass
 * one line back and forth; the tasks still running are started -
 * finished (mod 2^32). With no limit, ctx_group_go is one fetch_add; with
 * a limit, a CAS on `started` while started - finished < limit.
 *
 * Waiting. ctx_group_wait arms `finished` with the count it waits for
 * (its high half: ARMED | started) and parks on its low half (a futex);
 * the task whose increment reaches that count wakes it, and no other
 * finish pays a system call. A finisher learns it from its own fetch_add,
 * without reading `started`: after that increment the group may be gone.
 * Tasks started by tasks after the waiter armed raise `started`; the
 * waiter, woken early, arms again.
 *
 * At the limit, ctx_group_go first spins briefly (a slot of a short task
 * frees within microseconds, and parking would cost two system calls and a
 * context switch per task), then queues a `slotwait` on the group (FIFO,
 * under `mu`) and parks on its own word, registered on the group's context
 * so that its cancellation wakes it too. While a waiter is queued, new
 * calls queue behind it instead of taking a slot on the fast path.
 *
 * Handing slots over without a lost wakeup: the queue's being non-empty
 * is a bit of `finished` itself (QUEUED, set and cleared under `mu` as
 * the queue fills and empties), so a finishing task decides and counts in
 * one atomic step: its CAS bumps the count only while QUEUED is clear;
 * seeing it set, it hands its slot to the first waiter instead (neither
 * counter moves). A waiter sets QUEUED (with the enqueue), then
 * dispatches: takes any free slot for the queue's head. Both touch the
 * same word, so either the finisher's increment came first and the
 * waiter's dispatch sees it, or the finisher sees the bit. A finisher
 * touches the group only before its hand-over or its increment: after it,
 * ctx_group_wait may return and the group be freed (the futex wake that
 * follows uses only the address). Granted waiters are told after `mu` is
 * released, for the same reason.
 *
 * A waiter that finds the context done when it wakes returns its error
 * and leaves no trace: it takes itself out of the queue under `mu`, and
 * gives on a slot that was handed to it meanwhile (the slot may well have
 * been freed by that same cancellation, a task returning because the
 * context is done). Only a waiter whose context is not done keeps a slot.
 *
 * The first task to return non-zero wins a CAS on `first_err` and cancels
 * the context with its code as cause. ctx_group_wait cancels the context
 * once every task has returned (Go's errgroup does the same).
 *
 * Latency. A group registers `cw` on its context for its whole life, with
 * only a stamp to fill: the cancellation stores its time there. A task
 * that returns while the context is done (and did not cancel it itself)
 * records now - cancelled_at, the cancellation latency ctx_cancel_latency
 * reports. The context's error is published before the walk that stamps,
 * so a task may see it done with no stamp yet: it returned within the
 * cancellation itself and counts as 0.
 *
 * Lock order: g->mu, then a context's node lock (inside ctx__wait_*).
 */
#include "sync_int.h"

#include <errno.h>
#include <string.h>

#define ARMED    ((uint64_t)1 << 63) /* ctx_group_wait sleeps on the count */
#define QUEUED   ((uint64_t)1 << 62) /* slot waiters are queued */
#define TARGET   0x3fffffffu         /* what the waiter waits for: bits 32-61 */
#define LOW      0xffffffffu
#define SPIN_FOR (20 * CTX_MICROSECOND) /* at the limit, before queueing */

struct slotwait {
    _Atomic uint32_t word; /* 0 waiting, GOT: slot handed over, CANCELLED */
    struct slotwait *next; /* guarded by g->mu */
    struct slotwait **pprev;
};

#define GOT       1u
#define CANCELLED 2u

struct ctx_group {
    ctx_t *ctx;           /* owned; immutable */
    atomic_int limit;     /* < 0: none */
    atomic_int first_err; /* 0 until a task fails */
    atomic_int nqueued;   /* slot waiters queued (fast-path hint) */
    ctx__mutex_t mu;
    struct slotwait *qhead;                /* guarded by mu */
    struct slotwait **qtail;               /* guarded by mu */
    struct ctx__waitrec cw;                /* on ctx: stamps its cancellation */
    _Atomic ctx_time_t cancelled_at;       /* written by the canceller, see
                                              DESIGN (Latency); 0 until then */
    bool cw_linked;                        /* immutable: cw was registered */
    _Alignas(64) _Atomic uint32_t started; /* see DESIGN */
    _Alignas(64) _Atomic uint64_t finished; /* count | flags | target */
};

/* The low half of `finished`: the count, and the waiter's futex word. */
static _Atomic uint32_t *finished_word(ctx_group_t *g)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return (_Atomic uint32_t *)(void *)&g->finished;
#else
    return (_Atomic uint32_t *)(void *)&g->finished + 1;
#endif
}

static uint32_t running(ctx_group_t *g)
{
    return atomic_load(&g->started) - (uint32_t)atomic_load(&g->finished);
}

int ctx_group_new(ctx_t *parent, ctx_group_t **out)
{
    ctx_group_t *g;
    int rc;

    if (out)
        *out = NULL;
    if (!parent || !out)
        return EINVAL;
    g = ctx__calloc(1, sizeof *g);
    if (!g)
        return ENOMEM;
    if ((rc = ctx_with_cancel(parent, &g->ctx)) != 0) {
        ctx__free(g);
        return rc;
    }
    atomic_init(&g->cancelled_at, 0);
    g->cw.word = NULL;
    g->cw.bit = 0;
    g->cw.fd = -1;
    g->cw.stamp = &g->cancelled_at;
    if (ctx__wait_register(g->ctx, &g->cw) != 0)
        atomic_store(&g->cancelled_at, ctx__real_now()); /* done already */
    else
        g->cw_linked = true;
    atomic_init(&g->started, 0);
    atomic_init(&g->finished, 0);
    atomic_init(&g->limit, -1);
    pthread_mutex_init(&g->mu.m, NULL);
    g->qtail = &g->qhead;
    *out = g;
    return 0;
}

ctx_t *ctx_group_ctx(ctx_group_t *g)
{
    return g ? g->ctx : NULL;
}

int ctx_group_set_limit(ctx_group_t *g, int n)
{
    if (!g || n == 0)
        return EINVAL;
    atomic_store(&g->limit, n < 0 ? -1 : n);
    return 0;
}

/* ------------------------------------------------------------ slots */

/* Take a slot if one is free (running < limit). */
static bool take_slot(ctx_group_t *g, int limit)
{
    uint32_t st = atomic_load(&g->started);
    while (st - (uint32_t)atomic_load(&g->finished) < (uint32_t)limit) {
        if (atomic_compare_exchange_weak(&g->started, &st, st + 1))
            return true;
    }
    return false;
}

static bool fast_slot(ctx_group_t *g)
{
    int limit = atomic_load_explicit(&g->limit, memory_order_relaxed);
    if (limit < 0) {
        atomic_fetch_add(&g->started, 1);
        return true;
    }
    if (atomic_load(&g->nqueued))
        return false; /* first come, first served */
    return take_slot(g, limit);
}

static void unqueue(ctx_group_t *g, struct slotwait *w) CTX_REQUIRES(g->mu)
{
    *w->pprev = w->next;
    if (w->next)
        w->next->pprev = w->pprev;
    else
        g->qtail = w->pprev;
    w->pprev = NULL;
    if (atomic_fetch_sub(&g->nqueued, 1) == 1)
        atomic_fetch_and(&g->finished, ~QUEUED);
}

/*
 * Waiters get their slot only after `mu` is unlocked: once its word says
 * GOT a waiter may return, the group finish and be freed, and an unlock
 * after that would touch freed memory. Granted waiters are collected
 * through `next` (they are off the queue and still parked).
 */
static void grant_all(struct slotwait *w)
{
    while (w) {
        struct slotwait *next = w->next;
        atomic_store(&w->word, GOT);
        ctx__futex_wake(&w->word, 1); /* the address only, from here */
        w = next;
    }
}

/* Give free slots to queued waiters, in order. */
static void dispatch(ctx_group_t *g)
{
    struct slotwait *granted = NULL, **tail = &granted, *w;

    ctx__lock(&g->mu);
    while ((w = g->qhead) != NULL) {
        int limit = atomic_load(&g->limit);
        if (limit >= 0 && !take_slot(g, limit))
            break;
        if (limit < 0)
            atomic_fetch_add(&g->started, 1);
        unqueue(g, w);
        w->next = NULL;
        *tail = w;
        tail = &w->next;
    }
    ctx__unlock(&g->mu);
    grant_all(granted);
}

/*
 * A task returned (or a slot taken for it is given back): hand the slot to
 * a queued waiter, or free it and wake ctx_group_wait if it was the last.
 * Touches g only before handing over or decrementing (see DESIGN).
 */
static void put_slot(ctx_group_t *g)
{
    uint64_t old, new;

    __builtin_prefetch(&g->finished, 1); /* one transfer for load + CAS */
    old = atomic_load(&g->finished);

    for (;;) {
        if (old & QUEUED) {
            struct slotwait *w;
            ctx__lock(&g->mu);
            if ((w = g->qhead) != NULL) {
                unqueue(g, w); /* our slot becomes theirs */
                w->next = NULL;
                ctx__unlock(&g->mu);
                grant_all(w);
                return;
            }
            ctx__unlock(&g->mu); /* emptied meanwhile: QUEUED is clear */
            old = atomic_load(&g->finished);
            continue;
        }
        /* The count wraps within its half: no carry into the flags. */
        new = (old & ~(uint64_t)LOW) | (uint32_t)(old + 1);
        if (atomic_compare_exchange_weak(&g->finished, &old, new))
            break;
    }
    if ((old & ARMED) &&
        ((uint32_t) new &TARGET) == (uint32_t)(old >> 32 & TARGET))
        ctx__futex_wake_all(finished_word(g)); /* the address only */
}

/* At the limit: spin, then queue and park. 0, or the context's error. */
static int slow_slot(ctx_group_t *g)
{
    struct slotwait w;
    struct ctx__waitrec wr;
    uint32_t v;
    int rc;

    ctx_time_t until = 0;

    for (unsigned i = 1; !atomic_load(&g->nqueued); i++) {
        if (ctx_done(g->ctx))
            return ctx_err(g->ctx);
        if (fast_slot(g))
            return 0;
        if (i % 64 == 0) { /* no clock read for slots that free at once */
            ctx_time_t now = ctx__real_now();
            if (!until)
                until = now + SPIN_FOR;
            else if (now >= until)
                break;
        }
        ctx__cpu_relax();
    }
    atomic_init(&w.word, 0);
    wr.word = &w.word;
    wr.bit = CANCELLED;
    wr.fd = -1;
    wr.stamp = NULL;
    if ((rc = ctx__wait_register(g->ctx, &wr)) != 0)
        return rc;
    ctx__lock(&g->mu);
    w.next = NULL;
    w.pprev = g->qtail;
    *g->qtail = &w;
    g->qtail = &w.next;
    if (atomic_fetch_add(&g->nqueued, 1) == 0)
        atomic_fetch_or(&g->finished, QUEUED); /* see DESIGN */
    ctx__unlock(&g->mu);
    dispatch(g); /* a slot may have been freed before we were queued */

    ctx__note_wait("group slot", g);
    while (!((v = atomic_load(&w.word)) & (GOT | CANCELLED)))
        ctx__futex_wait(&w.word, v, CTX_NO_DEADLINE);
    ctx__note_done();
    ctx__wait_unregister(g->ctx, &wr);
    if (!(v & GOT)) {
        bool handed;
        ctx__lock(&g->mu);
        handed = !w.pprev;
        if (!handed)
            unqueue(g, &w);
        ctx__unlock(&g->mu);
        /* Handed a slot just before: its giver sets GOT after unlocking,
         * and our frame must outlive that store. */
        while (handed && !((v = atomic_load(&w.word)) & GOT))
            ctx__futex_wait(&w.word, v, CTX_NO_DEADLINE);
    }
    if (!ctx_done(g->ctx))
        return 0;
    /* Cancelled while waiting: even if a slot came (it may have been freed
     * by that very cancellation), give it on; fn must not run. */
    if (v & GOT)
        put_slot(g);
    return ctx_err(g->ctx);
}

/* ------------------------------------------------------------ tasks */

static void finish(ctx_group_t *g, int rc)
{
    bool cancelled_it = false;
    if (rc != 0) {
        int zero = 0;
        if (atomic_compare_exchange_strong(&g->first_err, &zero, rc)) {
            ctx_cancel_cause(g->ctx, rc, NULL);
            cancelled_it = true;
        }
    }
    if (ctx_done(g->ctx) && !cancelled_it)
        ctx__latency_record(
            atomic_load_explicit(&g->cancelled_at, memory_order_relaxed));
    ctx__count(CTX__C_TASK_END, 1);
    put_slot(g);
}

void ctx__task_run(struct ctx__task *t)
{
    finish(t->g, t->fn(t->g->ctx, t->arg));
}

void ctx__task_lost(struct ctx__task *t)
{
    finish(t->g, ECANCELED);
}

int ctx_group_go_opts(ctx_group_t *g, const ctx_go_opts_t *opts, ctx_task_fn fn,
                      void *arg)
{
    struct ctx__task t;
    int rc;

    if (!g || !fn)
        return EINVAL;
    if (!fast_slot(g)) {
        rc = opts && opts->try_only ? EAGAIN : slow_slot(g);
        if (rc)
            return rc;
    }
    t.g = g;
    t.fn = fn;
    t.arg = arg;
    memset(t.name, 0, sizeof t.name);
    if (opts && opts->name)
        strncpy(t.name, opts->name, sizeof t.name - 1);
    ctx__count(CTX__C_TASK_NEW, 1);
    if ((rc = ctx__pool_submit(&t)) != 0) {
        ctx__count(CTX__C_TASK_END, 1);
        put_slot(g);
    }
    return rc;
}

int ctx_group_go(ctx_group_t *g, ctx_task_fn fn, void *arg)
{
    return ctx_group_go_opts(g, NULL, fn, arg);
}

int ctx_group_try_go(ctx_group_t *g, ctx_task_fn fn, void *arg)
{
    static const ctx_go_opts_t try_only = {NULL, true};
    return ctx_group_go_opts(g, &try_only, fn, arg);
}

/* ------------------------------------------------------------ waiting */

int ctx_group_wait(ctx_group_t *g)
{
    ctx_time_t spin_until;

    if (!g)
        return EINVAL;
    ctx__note_wait("group", g);
    /* The last tasks of a burst are often microseconds from done. */
    spin_until = ctx__real_now() + 20 * CTX_MICROSECOND;
    for (unsigned i = 1; running(g) != 0; i++)
        if (i % 64 == 0 && ctx__real_now() >= spin_until)
            break;
    for (;;) {
        /* finished first: then f <= st, and f == st means that when f was
         * read nothing ran and nothing started until st was read. */
        uint64_t f = atomic_load(&g->finished);
        uint32_t st = atomic_load(&g->started);
        uint64_t armed =
            (f & (LOW | QUEUED)) | ARMED | ((uint64_t)(st & TARGET) << 32);
        if ((uint32_t)f == st)
            break;
        if (f != armed &&
            !atomic_compare_exchange_strong(&g->finished, &f, armed))
            continue;
        ctx__futex_wait(finished_word(g), (uint32_t)f, CTX_NO_DEADLINE);
    }
    ctx__note_done();
    ctx_cancel(g->ctx);
    return atomic_load(&g->first_err);
}

void ctx_group_free(ctx_group_t *g)
{
    const struct ctx__task *cur;

    if (!g)
        return;
    cur = ctx__pool_current();
    if (CTX_NEVER(cur && cur->g == g))
        return; /* it would wait for itself */
    ctx_group_wait(g);
    if (g->cw_linked)
        ctx__wait_unregister(g->ctx, &g->cw);
    ctx_release(g->ctx);
    pthread_mutex_destroy(&g->mu.m);
    ctx__free(g);
}
