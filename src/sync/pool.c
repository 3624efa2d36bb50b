/* SPDX-License-Identifier: MIT */
/*
 * The process-wide elastic worker pool that runs group tasks.
 *
 * DESIGN
 *
 * One FIFO of tasks under `pool_lock` (a spin lock: every critical section
 * is a few pointer moves). Each worker is, under that lock, in one of three
 * counts: searching (awake, about to look at the queue, or spinning on it),
 * running a task, or sleeping on its own futex word.
 *
 * Submitting pushes the task and then, so that it starts without waking a
 * thread per task:
 *  - if a worker is searching, nothing more: it will take the task;
 *  - if there is no worker at all, start one now (its failure is the
 *    submitter's EAGAIN, and the task is taken back);
 *  - if every worker sleeps, wake one;
 *  - otherwise every worker is running a task. If the queue made progress
 *    lately (a task was taken in the last GRACE), a worker will soon come
 *    back for it: kick the monitor to watch, and return. If it made none
 *    in GRACE, the workers are blocked or long: wake a sleeper or start a
 *    thread now (EAGAIN as above).
 * The monitor thread, kicked when work queues behind busy workers, looks
 * every GRACE; while the queue stands still it wakes or starts one worker
 * per waiting task (in batches), so a blocked task never keeps another
 * from starting for more than about GRACE. This is the starvation rule of
 * Go's sysmon and .NET's thread pool, with a short grace: trivial tasks in
 * a burst run on the one or two awake workers with no system call, and
 * blocking tasks each get a thread.
 *
 * A worker that finds the queue empty spins for up to SPIN_FOR if fewer
 * than half the CPUs are spinning, then sleeps; a sleeper not woken within
 * the idle timeout retires. Wakers move a sleeper to searching under the
 * lock before waking it, so counts never lag behind wakes.
 *
 * Worker records are heap objects linked in `workers` (for ctx_dump) and
 * freed by their own thread when it retires. A task that ends its thread
 * (pthread_exit) is caught by the worker's key destructor.
 */
#define _DEFAULT_SOURCE
#include "sync_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define GRACE    (100 * CTX_MICROSECOND)
#define SPIN_FOR (50 * CTX_MICROSECOND)
#define BATCH    16

struct worker {
    _Atomic uint32_t word; /* futex: 0 asleep, 1 woken */
    struct worker *snext;  /* sleepers; guarded by pool_lock */
    struct worker **sprev; /* NULL when not asleep */
    struct worker *next;   /* all workers; guarded by pool_lock */
    struct worker **pprev;
    struct ctx__task *current;  /* guarded by pool_lock */
    struct ctx__wait_note note; /* what its task waits on (atomics) */
};

static ctx__spin_t pool_lock = CTX__SPIN_INIT;

static struct {
    struct ctx__task *head CTX_GUARDED_BY(pool_lock);
    struct ctx__task **tail CTX_GUARDED_BY(pool_lock);
    struct worker *workers CTX_GUARDED_BY(pool_lock);
    struct worker *sleepers CTX_GUARDED_BY(pool_lock);
    int nthreads CTX_GUARDED_BY(pool_lock);
    int nsearching CTX_GUARDED_BY(pool_lock);
    int nsleeping CTX_GUARDED_BY(pool_lock);
    int nspinning CTX_GUARDED_BY(pool_lock);
    int max_spinners CTX_GUARDED_BY(pool_lock);
    uint64_t pops CTX_GUARDED_BY(pool_lock);
    uint64_t starve_pops CTX_GUARDED_BY(pool_lock);
    ctx_time_t starve_since CTX_GUARDED_BY(pool_lock);
    bool mon_running CTX_GUARDED_BY(pool_lock);
    bool mon_kicked CTX_GUARDED_BY(pool_lock);
} P;

static atomic_uint qlen;          /* tasks queued; spinners read it */
static _Atomic uint32_t mon_word; /* the monitor's futex */
static _Atomic ctx_time_t idle_timeout = 10 * CTX_SECOND;
static _Thread_local struct worker *self;
static pthread_key_t worker_key;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void init(void);
static void worker_lost(void *p);
static int kick(void) CTX_REQUIRES(pool_lock);

static void gauges(void) CTX_REQUIRES(pool_lock)
{
    atomic_store_explicit(&ctx__pool_threads, P.nthreads, memory_order_relaxed);
    atomic_store_explicit(&ctx__idle_threads, P.nsleeping,
                          memory_order_relaxed);
}

int ctx_pool_set_idle_timeout(ctx_time_t d)
{
    if (d <= 0)
        return EINVAL;
    atomic_store(&idle_timeout, d);
    pthread_once(&init_once, init);
    ctx__spin_lock(&pool_lock);
    for (struct worker *w = P.sleepers; w; w = w->snext)
        ctx__futex_wake(&w->word, 1); /* to look at the new timeout */
    ctx__spin_unlock(&pool_lock);
    return 0;
}

struct ctx__task *ctx__pool_current(void)
{
    return self ? self->current : NULL;
}

static void sleep_for(ctx_time_t d)
{
    struct timespec ts = {(time_t)(d / CTX_SECOND), (long)(d % CTX_SECOND)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ------------------------------------------------------------ workers */

static void atfork_prepare(void) CTX_NO_TSA
{
    ctx__spin_lock(&pool_lock);
}

static void atfork_parent(void) CTX_NO_TSA
{
    ctx__spin_unlock(&pool_lock);
}

/* The child has none of the workers: start from an empty pool. Queued
 * tasks stay queued and run if the child submits more. */
static void atfork_child(void) CTX_NO_TSA
{
    P.workers = NULL;
    P.sleepers = NULL;
    P.nthreads = P.nsearching = P.nsleeping = P.nspinning = 0;
    P.mon_running = P.mon_kicked = false;
    self = NULL;
    gauges();
    ctx__spin_unlock(&pool_lock);
}

static void init(void)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (pthread_key_create(&worker_key, worker_lost) != 0)
        abort(); /* only EAGAIN for PTHREAD_KEYS_MAX keys: a broken host */
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
    ctx__spin_lock(&pool_lock);
    P.tail = &P.head;
    P.max_spinners = ncpu > 2 ? (int)(ncpu / 2) : 1;
    ctx__spin_unlock(&pool_lock);
}

/* Take the first sleeper and make it searching; wake it after unlocking. */
static struct worker *wake_locked(void) CTX_REQUIRES(pool_lock)
{
    struct worker *w = P.sleepers;
    P.sleepers = w->snext;
    if (w->snext)
        w->snext->sprev = &P.sleepers;
    w->sprev = NULL;
    P.nsleeping--;
    P.nsearching++;
    atomic_store(&w->word, 1);
    gauges();
    return w;
}

static void unlink_worker(struct worker *w) CTX_REQUIRES(pool_lock)
{
    *w->pprev = w->next;
    if (w->next)
        w->next->pprev = w->pprev;
    P.nthreads--;
    gauges();
}

/* Sleep until woken (0) or retired after the idle timeout (1). */
static int worker_sleep(struct worker *w) CTX_REQUIRES(pool_lock)
{
    ctx_time_t since, until;

    P.nsearching--;
    P.nsleeping++;
    w->snext = P.sleepers;
    w->sprev = &P.sleepers;
    if (P.sleepers)
        P.sleepers->sprev = &w->snext;
    P.sleepers = w;
    atomic_store(&w->word, 0);
    gauges();
    ctx__spin_unlock(&pool_lock);

    since = ctx__real_now();
    while (atomic_load(&w->word) == 0) {
        /* Recomputed each time: a new idle timeout pokes every sleeper. */
        until = ctx__time_add(since, atomic_load(&idle_timeout));
        if (ctx__real_now() >= until)
            break;
        ctx__futex_wait(&w->word, 0, until);
    }
    ctx__spin_lock(&pool_lock);
    if (!w->sprev)
        return 0; /* a waker made us searching */
    *w->sprev = w->snext;
    if (w->snext)
        w->snext->sprev = w->sprev;
    P.nsleeping--;
    unlink_worker(w);
    return 1;
}

static void spin(void) CTX_NO_TSA
{
    ctx_time_t until = ctx__real_now() + SPIN_FOR;
    for (unsigned i = 1;; i++) {
        if (atomic_load_explicit(&qlen, memory_order_relaxed))
            return;
        if (i % 64 == 0 && ctx__real_now() >= until)
            return;
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;

    ctx__thread_name("ctx-worker");
    self = w;
    ctx__note = &w->note;
    pthread_setspecific(worker_key, w);
    ctx__spin_lock(&pool_lock);
    for (;;) {
        struct ctx__task *t = P.head;
        if (t) {
            P.head = t->next;
            if (!P.head)
                P.tail = &P.head;
            atomic_fetch_sub_explicit(&qlen, 1, memory_order_relaxed);
            P.pops++;
            P.nsearching--;
            t->started_at = ctx__coarse_now();
            w->current = t;
            if (P.head && P.nsearching == 0)
                kick(); /* more waits behind us: have it watched */
            ctx__spin_unlock(&pool_lock);
            t->run(t);
            ctx__note_done();
            ctx__spin_lock(&pool_lock);
            w->current = NULL;
            P.nsearching++;
            continue;
        }
        if (P.nspinning < P.max_spinners) {
            P.nspinning++;
            ctx__spin_unlock(&pool_lock);
            spin();
            ctx__spin_lock(&pool_lock);
            P.nspinning--;
            if (P.head)
                continue;
        }
        if (worker_sleep(w))
            break;
    }
    ctx__spin_unlock(&pool_lock);
    pthread_setspecific(worker_key, NULL);
    self = NULL;
    ctx__note = NULL;
    ctx__free(w);
    ctx__thread_exiting();
    return NULL;
}

/*
 * A task called pthread_exit: its worker's key destructor runs. A misuse
 * (tasks must return); in release builds the task is finished as if it
 * had returned ECANCELED, so its group does not wait forever.
 */
static void worker_lost(void *p)
{
    struct worker *w = p;
    struct ctx__task *t;

    CTX_ASSERT(!"a libctx task called pthread_exit; tasks must return");
    ctx__spin_lock(&pool_lock);
    t = w->current;
    w->current = NULL;
    unlink_worker(w);
    ctx__spin_unlock(&pool_lock);
    if (t && t->lost)
        t->lost(t);
    self = NULL;
    ctx__note = NULL;
    ctx__free(w);
    ctx__thread_exiting();
}

/*
 * Start a worker; the caller has counted it in nthreads and nsearching
 * under the lock and undoes that if this fails (EAGAIN or ENOMEM).
 */
static int spawn(void) CTX_EXCLUDES(pool_lock)
{
    struct worker *w = ctx__calloc(1, sizeof *w);
    pthread_t tid;
    int rc;

    if (!w)
        return ENOMEM;
    ctx__spin_lock(&pool_lock);
    w->next = P.workers;
    w->pprev = &P.workers;
    if (P.workers)
        P.workers->pprev = &w->next;
    P.workers = w;
    ctx__spin_unlock(&pool_lock);
    rc = ctx__thread_start(&tid, worker_main, w);
    if (rc) {
        ctx__spin_lock(&pool_lock);
        *w->pprev = w->next;
        if (w->next)
            w->next->pprev = w->pprev;
        ctx__spin_unlock(&pool_lock);
        ctx__free(w);
    }
    return rc;
}

/* Reserve, start, and on failure unreserve a worker. */
static int grow(void) CTX_EXCLUDES(pool_lock)
{
    int rc;
    ctx__spin_lock(&pool_lock);
    P.nthreads++;
    P.nsearching++;
    gauges();
    ctx__spin_unlock(&pool_lock);
    rc = spawn();
    if (rc) {
        ctx__spin_lock(&pool_lock);
        P.nthreads--;
        P.nsearching--;
        gauges();
        ctx__spin_unlock(&pool_lock);
    }
    return rc;
}

/* ------------------------------------------------------------ monitor */

/* True if the queue has waited GRACE with no task taken. */
static bool starving(void) CTX_REQUIRES(pool_lock)
{
    ctx_time_t now = ctx__real_now();
    if (P.pops != P.starve_pops) {
        P.starve_pops = P.pops;
        P.starve_since = now;
        return false;
    }
    return now - P.starve_since >= GRACE;
}

static void *monitor_main(void *arg)
{
    ctx_time_t backoff = GRACE;
    (void)arg;
    ctx__thread_name("ctx-pool-mon");
    ctx__spin_lock(&pool_lock);
    for (;;) {
        while (!P.mon_kicked) {
            uint32_t v = atomic_load(&mon_word);
            ctx_time_t until =
                ctx__time_add(ctx__real_now(), atomic_load(&idle_timeout));
            int rc;
            ctx__spin_unlock(&pool_lock);
            rc = ctx__futex_wait(&mon_word, v, until);
            ctx__spin_lock(&pool_lock);
            if (!P.mon_kicked && rc == ETIMEDOUT && ctx__real_now() >= until) {
                P.mon_running = false;
                ctx__spin_unlock(&pool_lock);
                ctx__thread_exiting();
                return NULL;
            }
        }
        P.mon_kicked = false;
        /* Watch while tasks wait; act when none was taken for a while. */
        while (P.head) {
            uint64_t pops0 = P.pops;
            int need;
            ctx__spin_unlock(&pool_lock);
            sleep_for(backoff);
            ctx__spin_lock(&pool_lock);
            if (P.nsearching > 0 || P.pops != pops0) {
                backoff = GRACE; /* someone is on it, or it moves */
                continue;
            }
            need = (int)atomic_load(&qlen) - P.nsearching;
            if (need > BATCH)
                need = BATCH;
            while (need > 0 && P.nsleeping > 0) {
                struct worker *w = wake_locked();
                ctx__futex_wake(&w->word, 1);
                need--;
            }
            while (need-- > 0) {
                int rc;
                ctx__spin_unlock(&pool_lock);
                rc = grow();
                ctx__spin_lock(&pool_lock);
                if (rc) { /* out of threads: try again later */
                    if (backoff < 100 * CTX_MILLISECOND)
                        backoff *= 2;
                    break;
                }
                backoff = GRACE;
            }
        }
    }
}

/* Have the monitor watch the queue; 0, or EAGAIN if it cannot start. */
static int kick(void) CTX_REQUIRES(pool_lock)
{
    pthread_t tid;
    int rc = 0;

    if (P.mon_kicked)
        return 0;
    P.mon_kicked = true;
    if (P.mon_running) {
        atomic_fetch_add(&mon_word, 1);
        ctx__futex_wake(&mon_word, 1);
        return 0;
    }
    P.mon_running = true;
    ctx__spin_unlock(&pool_lock);
    rc = ctx__thread_start(&tid, monitor_main, NULL);
    ctx__spin_lock(&pool_lock);
    if (rc) {
        P.mon_running = false;
        P.mon_kicked = false;
    }
    return rc;
}

/* ------------------------------------------------------------ submit */

/* Take t back out of the queue; false if a worker already took it. */
static bool unqueue(struct ctx__task *t) CTX_REQUIRES(pool_lock)
{
    struct ctx__task **pp = &P.head, *prev = NULL;
    for (; *pp; prev = *pp, pp = &(*pp)->next) {
        if (*pp == t) {
            *pp = t->next;
            if (P.tail == &t->next)
                P.tail = prev ? &prev->next : &P.head;
            atomic_fetch_sub(&qlen, 1);
            return true;
        }
    }
    return false;
}

int ctx__pool_submit(struct ctx__task *t)
{
    struct worker *w = NULL;
    int rc = 0;

    pthread_once(&init_once, init);
    t->next = NULL;
    t->queued_at = ctx__coarse_now();
    ctx__spin_lock(&pool_lock);
    *P.tail = t;
    P.tail = &t->next;
    atomic_fetch_add_explicit(&qlen, 1, memory_order_relaxed);
    if (P.nsearching > 0) {
        ctx__spin_unlock(&pool_lock);
        return 0;
    }
    if (P.nthreads > 0 && P.nsleeping == P.nthreads) {
        w = wake_locked();
        ctx__spin_unlock(&pool_lock);
        ctx__futex_wake(&w->word, 1);
        return 0;
    }
    if (P.nthreads > 0 && !starving()) {
        rc = kick();
        ctx__spin_unlock(&pool_lock);
        if (rc == 0)
            return 0;
        /* No monitor: this task needs a thread now. */
    } else if (P.nsleeping > 0) {
        w = wake_locked();
        ctx__spin_unlock(&pool_lock);
        ctx__futex_wake(&w->word, 1);
        return 0;
    } else {
        ctx__spin_unlock(&pool_lock);
    }
    rc = grow();
    if (rc) {
        bool taken;
        ctx__spin_lock(&pool_lock);
        taken = !unqueue(t);
        ctx__spin_unlock(&pool_lock);
        if (taken)
            rc = 0; /* a worker freed up and took it meanwhile */
    }
    return rc == ENOMEM ? EAGAIN : rc;
}

/* ------------------------------------------------------------ dump */

struct snap {
    char name[32];
    int state;
    ctx_time_t since;
    const char *what;
    const void *obj;
    const void *group;
};

void ctx__pool_dump(int fd)
{
    size_t cap, n = 0, more = 0;
    struct snap *s;
    ctx_time_t now = ctx__coarse_now();

    pthread_once(&init_once, init);
    ctx__spin_lock(&pool_lock);
    cap = (size_t)P.nthreads + atomic_load(&qlen) + 16;
    ctx__spin_unlock(&pool_lock);
    s = ctx__calloc(cap, sizeof *s);
    if (!s) {
        dprintf(fd, "libctx: dump: out of memory\n");
        return;
    }
    ctx__spin_lock(&pool_lock);
    for (struct worker *w = P.workers; w; w = w->next) {
        struct ctx__task *t = w->current;
        if (!t)
            continue;
        if (n == cap) {
            more++;
            continue;
        }
        memcpy(s[n].name, t->name, sizeof s[n].name);
        s[n].state = TASK_RUNNING;
        s[n].since = t->started_at;
        s[n].what = atomic_load(&w->note.what);
        s[n].obj = atomic_load(&w->note.obj);
        s[n].group = t->g;
        n++;
    }
    for (struct ctx__task *t = P.head; t; t = t->next) {
        if (n == cap) {
            more++;
            continue;
        }
        memcpy(s[n].name, t->name, sizeof s[n].name);
        s[n].state = TASK_QUEUED;
        s[n].since = t->queued_at;
        s[n].what = NULL;
        s[n].group = t->g;
        n++;
    }
    ctx__spin_unlock(&pool_lock);
    for (size_t i = 0; i < n; i++) {
        dprintf(fd, "task %-24s group %p %-7s %6lld ms",
                s[i].name[0] ? s[i].name : "(unnamed)", s[i].group,
                s[i].state == TASK_RUNNING ? "running" : "queued",
                (long long)((now - s[i].since) / CTX_MILLISECOND));
        if (s[i].what)
            dprintf(fd, "  waiting on %s %p", s[i].what, s[i].obj);
        dprintf(fd, "\n");
    }
    if (more)
        dprintf(fd, "... and %zu more tasks\n", more);
    ctx__free(s);
}
