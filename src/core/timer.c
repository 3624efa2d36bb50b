/* SPDX-License-Identifier: MIT */
/*
 * Deadlines: one process-wide timer thread over a binary min-heap of the
 * armed contexts, and the virtual test clock that can replace it.
 *
 * DESIGN
 *
 * The heap holds struct ctx_timed pointers ordered by (when, seq); each
 * node records its slot, so arm and disarm are O(log n) and a released or
 * cancelled context is removed at once. `timer_lock` is a spin lock
 * (ctx__spin): every critical section is a heap operation, and a mutex would
 * cost the with_timeout + cancel pair twice as much.
 *
 * The thread is started on the first arm (its failure is that arm's
 * error, EAGAIN), with all signals blocked, and sleeps with
 * FUTEX_WAIT_BITSET on `wake` until the earliest deadline (an absolute
 * CLOCK_MONOTONIC time, so no drift). `sleep_until` is the time it sleeps
 * for; an arm that is earlier bumps `wake` and wakes it, any other arm
 * does not make a system call (arming a far deadline and cancelling it,
 * the usual pattern, never wakes the thread). Removal never wakes it: at
 * worst it wakes for a deadline that is gone and sleeps again.
 *
 * Firing: under the lock the earliest node is popped and a reference
 * taken with tryget (a node whose count is 0 is being freed, and its
 * disarm waits for the lock, so the memory is valid here); then, with the
 * lock dropped, it is cancelled with its deadline cause and released.
 *
 * Lock order: node locks before `timer_lock` (a cancellation disarms
 * timers while it holds the nodes of its path); nothing takes a node lock
 * while holding `timer_lock`: firing a virtual waiter marks it under the
 * lock and wakes it after dropping it.
 *
 * Test clock: `ctx__virt` switches ctx_now() to `vnow`. The thread then fires
 * nothing; ctx_testclock_advance pops and fires due deadlines itself, in
 * (when, seq) order, stepping `vnow` to each deadline as it fires it.
 * ctx_wait with a timeout parks as usual but registers a `vwaiter` that
 * the advance fires: it sets `fired` under timer_lock, then, with the lock
 * dropped, clears S_WAITERS in the waited context under that context's
 * lock, which changes the futex word and wakes it; `busy` keeps the
 * waiter from returning while the firer still uses its record.
 */
#define _DEFAULT_SOURCE
#include "ctx_int.h"

#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

struct vwaiter {
    ctx_time_t until;
    struct ctx *c;
    atomic_int fired;
    atomic_uint busy;              /* the firer still touches it */
    struct vwaiter *next, **pprev; /* guarded by timer_lock; pprev NULL: off */
};

static ctx__spin_t timer_lock = CTX__SPIN_INIT;

static struct {
    struct ctx_timed **heap CTX_GUARDED_BY(timer_lock);
    uint32_t n CTX_GUARDED_BY(timer_lock);
    uint32_t cap CTX_GUARDED_BY(timer_lock);
    uint64_t seq CTX_GUARDED_BY(timer_lock);
    ctx_time_t sleep_until CTX_GUARDED_BY(timer_lock);
    struct vwaiter *vw CTX_GUARDED_BY(timer_lock);
    _Atomic uint32_t wake; /* futex the thread sleeps on */
    atomic_int running;    /* the thread was started */
} T = {.sleep_until = CTX_NO_DEADLINE};

static ctx__mutex_t start_mu = CTX__MUTEX_INIT;
atomic_int ctx__virt;
static _Atomic ctx_time_t vnow;

ctx_time_t ctx_now(void)
{
    if (CTX_UNLIKELY(ctx__load_relaxed(&ctx__virt)))
        return atomic_load_explicit(&vnow, memory_order_acquire);
    return ctx__real_now();
}

bool ctx_testclock_enabled(void)
{
    return ctx__load_relaxed(&ctx__virt) != 0;
}

/* ------------------------------------------------------------ heap */

static inline int before(const struct ctx_timed *a, const struct ctx_timed *b)
{
    return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static void place(uint32_t i, struct ctx_timed *t) CTX_REQUIRES(timer_lock)
{
    T.heap[i] = t;
    t->idx = i;
}

static void sift_up(uint32_t i, struct ctx_timed *t) CTX_REQUIRES(timer_lock)
{
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (!before(t, T.heap[p]))
            break;
        place(i, T.heap[p]);
        i = p;
    }
    place(i, t);
}

static void sift_down(uint32_t i, struct ctx_timed *t) CTX_REQUIRES(timer_lock)
{
    for (;;) {
        uint32_t l = 2 * i + 1, m;
        if (l >= T.n)
            break;
        m = (l + 1 < T.n && before(T.heap[l + 1], T.heap[l])) ? l + 1 : l;
        if (!before(T.heap[m], t))
            break;
        place(i, T.heap[m]);
        i = m;
    }
    place(i, t);
}

static void heap_remove(struct ctx_timed *t) CTX_REQUIRES(timer_lock)
{
    uint32_t i = t->idx;
    struct ctx_timed *last = T.heap[--T.n];
    t->idx = TIMER_NO_SLOT;
    if (last == t)
        return;
    if (i > 0 && before(last, T.heap[(i - 1) / 2]))
        sift_up(i, last);
    else
        sift_down(i, last);
}

/* ------------------------------------------------------------ firing */

static void wake_thread(void)
{
    syscall(SYS_futex, &T.wake, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* Pop the earliest node and cancel it; drops and retakes the lock. */
static void fire_first(void) CTX_REQUIRES(timer_lock)
{
    struct ctx_timed *t = T.heap[0];
    int got;

    heap_remove(t);
    got = ctx__tryget(&t->c);
    ctx__spin_unlock(&timer_lock);
    if (got) {
        if (t->dl_why)
            atomic_fetch_add_explicit(&t->dl_why->refs, 1,
                                      memory_order_relaxed);
        if (ctx__cancel(&t->c, ETIMEDOUT, t->dl_code, t->dl_why))
            ctx__count(CTX__C_EXPIRIES, 1);
        ctx_release(&t->c);
    }
    ctx__spin_lock(&timer_lock);
}

static void *timer_main(void *arg)
{
    (void)arg;
    ctx__thread_name("ctx-timer");
    ctx__spin_lock(&timer_lock);
    for (;;) {
        ctx_time_t until;
        uint32_t w;
        if (!ctx__load_relaxed(&ctx__virt) && T.n &&
            T.heap[0]->when <= ctx__real_now()) {
            fire_first();
            continue;
        }
        until = (ctx__load_relaxed(&ctx__virt) || !T.n) ? CTX_NO_DEADLINE
                                                        : T.heap[0]->when;
        T.sleep_until = until;
        w = atomic_load(&T.wake);
        ctx__spin_unlock(&timer_lock);
        ctx__futex_wait(&T.wake, w, until);
        ctx__spin_lock(&timer_lock);
    }
    return NULL;
}

/*
 * After fork() only the forking thread exists in the child: the timer
 * thread must be started again, and the lock must not be left held.
 */
static void atfork_prepare(void) CTX_NO_TSA
{
    ctx__spin_lock(&timer_lock);
}

static void atfork_parent(void) CTX_NO_TSA
{
    ctx__spin_unlock(&timer_lock);
}

static void atfork_child(void) CTX_NO_TSA
{
    if (atomic_load(&T.running)) {
        atomic_store(&T.running, 0);
        ctx__thread_exiting();
    }
    T.sleep_until = CTX_NO_DEADLINE;
    ctx__spin_unlock(&timer_lock);
}

static int start_thread(void)
{
    static int atfork_done;
    pthread_t tid;
    int rc = 0;

    ctx__lock(&start_mu);
    if (!atomic_load(&T.running)) {
        if (!atfork_done &&
            pthread_atfork(atfork_prepare, atfork_parent, atfork_child) == 0)
            atfork_done = 1;
        rc = ctx__thread_start(&tid, timer_main, NULL);
        if (rc == 0)
            atomic_store(&T.running, 1);
    }
    ctx__unlock(&start_mu);
    return rc;
}

int ctx__timer_arm(struct ctx_timed *t)
{
    int wake = 0;

    if (CTX_UNLIKELY(!atomic_load_explicit(&T.running, memory_order_acquire))) {
        int rc = start_thread();
        if (rc)
            return rc;
    }
    ctx__spin_lock(&timer_lock);
    if (T.n == T.cap) {
        uint32_t cap = T.cap ? T.cap * 2 : 64;
        struct ctx_timed **h = NULL;
        if (cap > T.cap)
            h = ctx__realloc(T.heap, cap * sizeof *h);
        if (!h) {
            ctx__spin_unlock(&timer_lock);
            return ENOMEM;
        }
        T.heap = h;
        T.cap = cap;
    }
    t->seq = ++T.seq;
    T.n++;
    sift_up(T.n - 1, t);
    if (!ctx__load_relaxed(&ctx__virt) && t->when < T.sleep_until) {
        T.sleep_until = t->when;
        atomic_fetch_add(&T.wake, 1);
        wake = 1;
    }
    ctx__spin_unlock(&timer_lock);
    if (wake)
        wake_thread();
    return 0;
}

void ctx__timer_disarm(struct ctx_timed *t)
{
    ctx__spin_lock(&timer_lock);
    if (t->idx != TIMER_NO_SLOT)
        heap_remove(t);
    ctx__spin_unlock(&timer_lock);
}

int64_t ctx__timer_count(void)
{
    int64_t n;
    ctx__spin_lock(&timer_lock);
    n = T.n;
    ctx__spin_unlock(&timer_lock);
    return n;
}

/* ------------------------------------------------------------ test clock */

/*
 * Fire a virtual waiter: under timer_lock, take it off the list and mark it
 * fired and busy; the caller wakes it after dropping timer_lock (node
 * locks are never taken under timer_lock), then clears busy, and only then
 * may the waiter return and pop its frame.
 */
static void vfire(struct vwaiter *w, struct vwaiter **fired)
    CTX_REQUIRES(timer_lock)
{
    *w->pprev = w->next;
    if (w->next)
        w->next->pprev = w->pprev;
    w->pprev = NULL;
    atomic_store(&w->busy, 1);
    atomic_store(&w->fired, 1);
    w->next = *fired;
    *fired = w;
}

static void vfire_due(ctx_time_t now, struct vwaiter **fired)
    CTX_REQUIRES(timer_lock)
{
    struct vwaiter *w = T.vw;
    while (w) {
        struct vwaiter *next = w->next;
        if (w->until <= now)
            vfire(w, fired);
        w = next;
    }
}

/* Wake fired waiters; no lock held. Clearing S_WAITERS changes the futex
 * word, so a waiter about to park cannot miss it. */
static void vwake(struct vwaiter *w)
{
    while (w) {
        struct vwaiter *next = w->next;
        struct ctx *c = w->c;
        uint32_t s = node_lock(c);
        node_unlock(c, s & ~S_WAITERS);
        if (s & S_WAITERS)
            ctx__futex_wake_all(&c->state);
        atomic_store_explicit(&w->busy, 0, memory_order_release);
        w = next;
    }
}

int ctx__vwait(struct ctx *c, ctx_time_t until)
{
    struct vwaiter w = {.until = until, .c = c};

    atomic_init(&w.busy, 0);
    int rc;

    ctx__spin_lock(&timer_lock);
    if (!ctx__load_relaxed(&ctx__virt)) {
        ctx__spin_unlock(&timer_lock);
        return -1;
    }
    if (until <= atomic_load(&vnow)) {
        ctx__spin_unlock(&timer_lock);
        return (state_of(c) & S_ERR_MASK) ? 0 : ETIMEDOUT;
    }
    w.next = T.vw;
    w.pprev = &T.vw;
    if (T.vw)
        T.vw->pprev = &w.next;
    T.vw = &w;
    ctx__spin_unlock(&timer_lock);

    for (;;) {
        uint32_t s = state_of(c);
        if (s & S_ERR_MASK) {
            rc = 0;
            break;
        }
        if (atomic_load(&w.fired)) {
            rc = ETIMEDOUT;
            break;
        }
        if (!(s & S_WAITERS)) {
            if (s & S_LOCK)
                ctx__spin_wait(&c->state, S_LOCK);
            else
                atomic_compare_exchange_weak(&c->state, &s, s | S_WAITERS);
            continue; /* look at `fired` again with the bit set */
        }
        ctx__futex_wait(&c->state, s, CTX_NO_DEADLINE);
    }

    ctx__spin_lock(&timer_lock);
    if (w.pprev) {
        *w.pprev = w.next;
        if (w.next)
            w.next->pprev = w.pprev;
    }
    ctx__spin_unlock(&timer_lock);
    /* A firer may still be waking us. The acquire load that sees its
     * release of `busy` is what lets our frame be reused after we return
     * (ctx__spin_wait's loads are relaxed). */
    while (atomic_load_explicit(&w.busy, memory_order_acquire))
        ctx__spin_wait(&w.busy, ~0u);
    return rc;
}

int ctx_testclock_enable(void)
{
    ctx__spin_lock(&timer_lock);
    if (ctx__load_relaxed(&ctx__virt)) {
        ctx__spin_unlock(&timer_lock);
        return EBUSY;
    }
    atomic_store(&vnow, ctx__real_now());
    atomic_store(&ctx__virt, 1);
    atomic_fetch_add(&T.wake, 1);
    ctx__spin_unlock(&timer_lock);
    wake_thread();
    return 0;
}

void ctx_testclock_disable(void)
{
    struct vwaiter *fired = NULL;
    ctx__spin_lock(&timer_lock);
    if (ctx__load_relaxed(&ctx__virt)) {
        atomic_store(&ctx__virt, 0);
        while (T.vw)
            vfire(T.vw, &fired);
        T.sleep_until = CTX_NO_DEADLINE;
        atomic_fetch_add(&T.wake, 1);
    }
    ctx__spin_unlock(&timer_lock);
    vwake(fired);
    wake_thread();
}

int ctx_testclock_advance(ctx_time_t d)
{
    ctx_time_t target;
    struct vwaiter *fired = NULL;

    if (d < 0)
        return EINVAL;
    ctx__spin_lock(&timer_lock);
    if (!ctx__load_relaxed(&ctx__virt)) {
        ctx__spin_unlock(&timer_lock);
        return EINVAL;
    }
    target = ctx__time_add(atomic_load(&vnow), d);
    while (ctx__load_relaxed(&ctx__virt) && T.n && T.heap[0]->when <= target) {
        ctx_time_t when = T.heap[0]->when;
        if (when > atomic_load(&vnow))
            atomic_store_explicit(&vnow, when, memory_order_release);
        vfire_due(atomic_load(&vnow), &fired);
        if (fired) { /* wake them before the deadline's callbacks run */
            ctx__spin_unlock(&timer_lock);
            vwake(fired);
            fired = NULL;
            ctx__spin_lock(&timer_lock);
            continue;
        }
        fire_first();
    }
    if (ctx__load_relaxed(&ctx__virt)) {
        if (target > atomic_load(&vnow))
            atomic_store_explicit(&vnow, target, memory_order_release);
        vfire_due(atomic_load(&vnow), &fired);
    }
    ctx__spin_unlock(&timer_lock);
    vwake(fired);
    return 0;
}

int ctx_testclock_set(ctx_time_t t)
{
    ctx_time_t now;
    if (!ctx_testclock_enabled())
        return EINVAL;
    now = ctx_now();
    if (t < now)
        return EINVAL;
    return ctx_testclock_advance(t - now);
}
