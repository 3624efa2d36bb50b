/* SPDX-License-Identifier: MIT */
/*
 * The process-wide elastic worker pool that runs group tasks.
 *
 * DESIGN
 *
 * Queue. Tasks are copied into a bounded lock-free ring (Vyukov's MPMC
 * queue: each cell's sequence number says whose turn it is, producers and
 * consumers each advance their own position with a CAS), so submitting
 * costs no allocation and no lock, and producers and consumers touch
 * different cache lines. A cell (sequence word and task) is one cache
 * line, and a spinning worker watches the head cell rather than the
 * producers' position, so a task costs one line's transfer each way. When the
 * ring is full, tasks go to an overflow FIFO under `ovf_lock` (allocated
 * copies); while the overflow holds anything, new tasks go there too, and
 * workers take from the ring first, so the order stays first in, first out.
 *
 * Workers. `state` packs three counts: threads, idle (parked on their own
 * futex word) and spinning (awake with nothing to do, watching the queue).
 * A worker running a task is in none of the last two, and moving from one
 * task to the next costs it no update of `state`: only going spinning,
 * idle, or away does. At most max_spinners workers spin (half the CPUs).
 *
 * Submitting pushes the task, then reads `state`:
 *  - a spinner will take it: done;
 *  - every worker is idle: wake one (it becomes a spinner before it runs);
 *  - otherwise workers are running tasks and will come back for it; kick
 *    the monitor, which watches while tasks wait (see below).
 * Before pushing, a submitter starts a thread itself if there is none, or
 * if every worker is busy and the monitor found the pool stuck and could
 * not add a thread (`exhausted`): then the failure to start one is its
 * EAGAIN, and the task is not queued. The submit path reads no clock and
 * no consumer-side cache line.
 *
 * No lost wakeup between a spinner going idle and a submitter: the spinner
 * moves itself from spinning to idle in `state`, then looks at the queue
 * again; the submitter pushes, then reads `state` (all seq_cst). Either
 * the submitter sees the spinner, which then sees the task, or it sees it
 * idle and wakes it (or another).
 *
 * A thread being started is counted (spinning) before it exists, so that
 * a burst of submits starts one thread, not one each; a submitter that
 * reads `state` meanwhile leaves its task to it. If the start fails, the
 * starter takes the count back, then looks at the queue and kicks the
 * monitor if anything waits: the same pair (the submitter pushes, then
 * reads `state`; the starter updates `state`, then reads the queue).
 *
 * Monitor. Kicked when tasks wait behind busy workers, it looks every
 * GRACE while work keeps coming (a kick while it is awake is a flag, not a
 * system call) and parks after a quiet while; when the queue did not move
 * for a GRACE,
 * the workers are blocked or long, and it wakes or starts one worker per
 * waiting task (in batches). So trivial tasks in a burst run on the one or
 * two awake workers with no system call, and blocking tasks each get a
 * thread after about GRACE: the starvation rule of Go's sysmon and .NET's
 * pool, with a short grace.
 *
 * Retiring. An idle worker not woken within the idle timeout leaves. Idle
 * workers are a LIFO stack under `idle_lock`; a waker takes one off the
 * stack and counts it spinning before waking it, so counts never lag
 * behind wakes.
 *
 * Dumps read what a worker runs through a per-worker sequence lock over
 * atomic fields; a task that ends its thread (pthread_exit) is caught by
 * the worker's key destructor.
 */
#define _DEFAULT_SOURCE
#include "sync_int.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define GRACE    (100 * CTX_MICROSECOND)
#define SPIN_FOR (50 * CTX_MICROSECOND)
#define BATCH    16
#define LINGER   64  /* looks at the queue after a task, before spinning */
#define RING     512 /* cells, a power of two */
#define PREFETCH 4   /* cells ahead a submitter asks for (see ring_push) */

/* ------------------------------------------------------------ state */

/* state: threads (bits 0-19) | idle (20-39) | spinning (40-59). */
#define ST_THREAD         ((uint64_t)1)
#define ST_IDLE           ((uint64_t)1 << 20)
#define ST_SPIN           ((uint64_t)1 << 40)
#define ST_FIELD(s, unit) ((int)(((s) / (unit)) & 0xfffff))

static _Atomic uint64_t state;

static inline int n_threads(uint64_t s)
{
    return ST_FIELD(s, ST_THREAD);
}

static inline int n_idle(uint64_t s)
{
    return ST_FIELD(s, ST_IDLE);
}

static inline int n_spinning(uint64_t s)
{
    return ST_FIELD(s, ST_SPIN);
}

/*
 * Publish the counts for ctx_stats. Two updaters may store out of order;
 * each looks at `state` again after storing and stores again if it moved,
 * so the last store is of the last state.
 */
static void gauges(uint64_t s)
{
    for (;;) {
        uint64_t now;
        atomic_store(&ctx__pool_threads, n_threads(s));
        atomic_store(&ctx__idle_threads, n_idle(s));
        now = atomic_load(&state);
        if ((now & (ST_SPIN - 1)) == (s & (ST_SPIN - 1)))
            return; /* threads and idle as stored (spinning is not shown) */
        s = now;
    }
}

static void state_add(uint64_t plus, uint64_t minus)
{
    uint64_t s = atomic_fetch_add(&state, plus - minus) + plus - minus;
    gauges(s);
}

/* ------------------------------------------------------------ the ring */

struct cell {
    _Alignas(64) _Atomic size_t seq;
    struct ctx__task task;
};

_Static_assert(sizeof(struct cell) == 64, "a cell is one cache line");

static struct {
    _Alignas(64) _Atomic size_t enq; /* producers' position */
    _Alignas(64) _Atomic size_t deq; /* consumers' position */
    _Alignas(64) struct cell cells[RING];
} Q;

static atomic_int ring_ready;

static void ring_init(void)
{
    for (size_t i = 0; i < RING; i++)
        atomic_init(&Q.cells[i].seq, i);
    atomic_store(&ring_ready, 1);
}

static bool ring_push(const struct ctx__task *t)
{
    size_t pos = atomic_load_explicit(&Q.enq, memory_order_relaxed);
    struct cell *c;
    for (;;) {
        size_t seq;
        intptr_t dif;
        c = &Q.cells[pos & (RING - 1)];
        seq = atomic_load_explicit(&c->seq, memory_order_acquire);
        dif = (intptr_t)seq - (intptr_t)pos;
        if (dif == 0) {
            if (atomic_compare_exchange_weak(&Q.enq, &pos, pos + 1))
                break;
        } else if (dif < 0) {
            return false; /* full */
        } else {
            pos = atomic_load_explicit(&Q.enq, memory_order_relaxed);
        }
    }
    /* Ask for lines ahead now: a burst of submits then waits for the
     * consumer's cache lines (released a ring ago) in parallel, not one
     * after the other. (Not so on the consumer's side: a worker close
     * behind the submitter would fetch cells not written yet, and make
     * the submitter's writes take them back.) */
    __builtin_prefetch(&Q.cells[(pos + PREFETCH) & (RING - 1)], 1);
    c->task = *t;
    atomic_store_explicit(&c->seq, pos + 1, memory_order_release);
    return true;
}

static bool ring_pop(struct ctx__task *t)
{
    size_t pos = atomic_load_explicit(&Q.deq, memory_order_relaxed);
    struct cell *c;
    for (;;) {
        size_t seq;
        intptr_t dif;
        c = &Q.cells[pos & (RING - 1)];
        seq = atomic_load_explicit(&c->seq, memory_order_acquire);
        dif = (intptr_t)seq - (intptr_t)(pos + 1);
        if (dif == 0) {
            if (atomic_compare_exchange_weak(&Q.deq, &pos, pos + 1))
                break;
        } else if (dif < 0) {
            return false; /* empty */
        } else {
            pos = atomic_load_explicit(&Q.deq, memory_order_relaxed);
        }
    }
    *t = c->task;
    atomic_store_explicit(&c->seq, pos + RING, memory_order_release);
    return true;
}

/* ------------------------------------------------------------ overflow */

struct ovf {
    struct ovf *next;
    struct ctx__task task;
};

static ctx__spin_t ovf_lock = CTX__SPIN_INIT;
static struct ovf *ovf_head CTX_GUARDED_BY(ovf_lock);
static struct ovf **ovf_tail CTX_GUARDED_BY(ovf_lock) = &ovf_head;
static atomic_size_t ovf_len; /* queued in the overflow */
static atomic_size_t ovf_pops;

static int ovf_push(const struct ctx__task *t)
{
    struct ovf *o = ctx__malloc(sizeof *o);
    if (!o)
        return ENOMEM;
    o->next = NULL;
    o->task = *t;
    ctx__spin_lock(&ovf_lock);
    *ovf_tail = o;
    ovf_tail = &o->next;
    atomic_fetch_add(&ovf_len, 1);
    ctx__spin_unlock(&ovf_lock);
    return 0;
}

static bool ovf_pop(struct ctx__task *t)
{
    struct ovf *o;
    if (!atomic_load(&ovf_len))
        return false;
    ctx__spin_lock(&ovf_lock);
    o = ovf_head;
    if (o) {
        ovf_head = o->next;
        if (!ovf_head)
            ovf_tail = &ovf_head;
        atomic_fetch_sub(&ovf_len, 1);
        atomic_fetch_add_explicit(&ovf_pops, 1, memory_order_relaxed);
    }
    ctx__spin_unlock(&ovf_lock);
    if (!o)
        return false;
    *t = o->task;
    ctx__free(o);
    return true;
}

/* ------------------------------------------------------------ the queue */

static int push(const struct ctx__task *t)
{
    if (!atomic_load(&ovf_len) && ring_push(t))
        return 0;
    return ovf_push(t);
}

static bool pop(struct ctx__task *t)
{
    return ring_pop(t) || ovf_pop(t);
}

static size_t queued(void)
{
    size_t e = atomic_load(&Q.enq), d = atomic_load(&Q.deq);
    return (e > d ? e - d : 0) + atomic_load(&ovf_len);
}

/*
 * Is a task there to take? What a spinner watches: the ring's head cell
 * (a line the submitter writes anyway), not the producers' position, so
 * watching costs the submitter no extra cache-line transfer.
 */
static bool ready(void)
{
    size_t pos = atomic_load_explicit(&Q.deq, memory_order_relaxed);
    size_t seq = atomic_load_explicit(&Q.cells[pos & (RING - 1)].seq,
                                      memory_order_relaxed);
    return seq == pos + 1 ||
           atomic_load_explicit(&ovf_len, memory_order_relaxed) != 0;
}

/* Tasks taken so far: how the monitor sees progress. */
static size_t taken(void)
{
    return atomic_load(&Q.deq) +
           atomic_load_explicit(&ovf_pops, memory_order_relaxed);
}

/* ------------------------------------------------------------ workers */

struct worker {
    _Atomic uint32_t word; /* futex: 0 parked, 1 woken */
    struct worker *inext;  /* idle stack; guarded by idle_lock */
    struct worker **iprev; /* NULL when not on it */
    struct worker *next;   /* all workers; guarded by workers_lock */
    struct worker **pprev;
    struct ctx__task cur;       /* what it runs; the worker's own */
    struct ctx__wait_note note; /* what its task waits on (atomics) */
    /* What it runs, for dumps: a sequence lock over atomics. */
    _Atomic uint32_t dseq; /* odd while being written */
    _Atomic(const void *) dgroup;
    _Atomic ctx_time_t dsince;
    _Atomic uint64_t dname[4];
    atomic_int running;
};

static ctx__spin_t idle_lock = CTX__SPIN_INIT;
static struct worker *idle_top CTX_GUARDED_BY(idle_lock);
static ctx__spin_t workers_lock = CTX__SPIN_INIT;
static struct worker *workers CTX_GUARDED_BY(workers_lock);
static int max_spinners = 1;
static _Atomic ctx_time_t idle_timeout = 10 * CTX_SECOND;
static _Thread_local struct worker *self;
static pthread_key_t worker_key;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* The monitor's (see below). */
static ctx__spin_t mon_lock = CTX__SPIN_INIT;
static atomic_bool mon_running;   /* written under mon_lock */
static atomic_bool mon_kicked;    /* a watch is asked for */
static atomic_bool mon_asleep;    /* parked on mon_word: kicks must wake */
static _Atomic uint32_t mon_word; /* the monitor's futex */
static atomic_bool exhausted;     /* the monitor could not add a thread */

static void worker_lost(void *p);
static void kick(void);

const struct ctx__task *ctx__pool_current(void)
{
    return self && atomic_load_explicit(&self->running, memory_order_relaxed)
               ? &self->cur
               : NULL;
}

static void sleep_for(ctx_time_t d)
{
    struct timespec ts = {(time_t)(d / CTX_SECOND), (long)(d % CTX_SECOND)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void atfork_prepare(void) CTX_NO_TSA
{
    ctx__spin_lock(&workers_lock);
    ctx__spin_lock(&idle_lock);
    ctx__spin_lock(&ovf_lock);
    ctx__spin_lock(&mon_lock);
}

static void atfork_parent(void) CTX_NO_TSA
{
    ctx__spin_unlock(&mon_lock);
    ctx__spin_unlock(&ovf_lock);
    ctx__spin_unlock(&idle_lock);
    ctx__spin_unlock(&workers_lock);
}

/* The child has none of the workers, nor the monitor: start from an empty
 * pool, whose first watch starts a monitor of its own. Queued tasks stay
 * queued and run if the child submits more. */
static void atfork_child(void) CTX_NO_TSA
{
    for (struct worker *w = workers; w; w = w->next)
        ctx__thread_exiting(); /* counted in the parent's internal threads */
    if (atomic_load(&mon_running))
        ctx__thread_exiting();
    workers = NULL;
    idle_top = NULL;
    atomic_store(&state, 0);
    gauges(0);
    self = NULL;
    atomic_store(&mon_running, false);
    atomic_store(&mon_kicked, false);
    atomic_store(&mon_asleep, false);
    atomic_store(&exhausted, false);
    atfork_parent();
}

static void init(void)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (pthread_key_create(&worker_key, worker_lost) != 0)
        abort(); /* only EAGAIN for PTHREAD_KEYS_MAX keys: a broken host */
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
    max_spinners = ncpu > 2 ? (int)(ncpu / 2) : 1;
    ring_init();
}

int ctx_pool_set_idle_timeout(ctx_time_t d)
{
    if (d <= 0)
        return EINVAL;
    pthread_once(&init_once, init);
    atomic_store(&idle_timeout, d);
    ctx__spin_lock(&idle_lock);
    for (struct worker *w = idle_top; w; w = w->inext)
        ctx__futex_wake(&w->word, 1); /* to look at the new timeout */
    ctx__spin_unlock(&idle_lock);
    return 0;
}

/* Take an idle worker off the stack, count it spinning, wake it. */
static bool wake_one(void)
{
    struct worker *w;
    ctx__spin_lock(&idle_lock);
    w = idle_top;
    if (w) {
        idle_top = w->inext;
        if (idle_top)
            idle_top->iprev = &idle_top;
        w->iprev = NULL;
        state_add(ST_SPIN, ST_IDLE);
        atomic_store(&w->word, 1);
    }
    ctx__spin_unlock(&idle_lock);
    if (w)
        ctx__futex_wake(&w->word, 1); /* its address only, from here */
    return w != NULL;
}

/*
 * Watch the queue for SPIN_FOR. Every 64 looks the spinner also offers its
 * CPU to other runnable threads (sched_yield: a system call that returns
 * at once when there are none), so that a burst of woken threads, e.g.
 * a thousand tasks returning at a cancel, is not slowed by a spinner
 * waiting for work they are about to stop doing.
 */
static void spin(void)
{
    ctx_time_t until = ctx__real_now() + SPIN_FOR;
    for (unsigned i = 1; !ready(); i++) {
        if (i % 64 == 0) {
            if (ctx__real_now() >= until)
                return;
            sched_yield();
        }
        ctx__cpu_relax();
    }
}

/*
 * Park until woken (returns 0: we are spinning again, counted by the
 * waker) or the idle timeout passes (1: retired, uncounted). Entered
 * counted idle and pushed on the stack.
 */
static int park(struct worker *w)
{
    ctx_time_t since = ctx__real_now(), until;
    while (atomic_load(&w->word) == 0) {
        /* Recomputed each time: a new idle timeout pokes every sleeper. */
        until = ctx__time_add(since, atomic_load(&idle_timeout));
        if (ctx__real_now() >= until)
            break;
        ctx__futex_wait(&w->word, 0, until);
    }
    ctx__spin_lock(&idle_lock);
    if (!w->iprev) {
        ctx__spin_unlock(&idle_lock);
        return 0; /* a waker took us off the stack */
    }
    *w->iprev = w->inext;
    if (w->inext)
        w->inext->iprev = w->iprev;
    w->iprev = NULL;
    state_add(0, ST_IDLE + ST_THREAD);
    ctx__spin_unlock(&idle_lock);
    return 1;
}

/*
 * Go idle: from spinning (or running) to idle, then look at the queue
 * once more before parking (see DESIGN). Returns 0 to go on working, 1 if
 * retired.
 */
static int go_idle(struct worker *w, bool spinning)
{
    ctx__spin_lock(&idle_lock);
    state_add(ST_IDLE, spinning ? ST_SPIN : 0);
    atomic_store(&w->word, 0);
    w->inext = idle_top;
    w->iprev = &idle_top;
    if (idle_top)
        idle_top->iprev = &w->inext;
    idle_top = w;
    ctx__spin_unlock(&idle_lock);
    if (queued()) {
        ctx__spin_lock(&idle_lock);
        if (w->iprev) { /* still ours to undo: back to spinning */
            *w->iprev = w->inext;
            if (w->inext)
                w->inext->iprev = w->iprev;
            w->iprev = NULL;
            state_add(ST_SPIN, ST_IDLE);
        }
        ctx__spin_unlock(&idle_lock);
        return 0; /* spinning either way (a waker counted us so) */
    }
    return park(w);
}

static void publish(struct worker *w, const struct ctx__task *t)
{
    uint64_t name[4];
    uint32_t q = atomic_load_explicit(&w->dseq, memory_order_relaxed);
    memcpy(name, t->name, sizeof name);
    atomic_store_explicit(&w->dseq, q + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&w->dgroup, (const void *)t->g, memory_order_relaxed);
    atomic_store_explicit(&w->dsince, ctx__coarse_now(), memory_order_relaxed);
    for (int i = 0; i < 4; i++)
        atomic_store_explicit(&w->dname[i], name[i], memory_order_relaxed);
    atomic_store_explicit(&w->dseq, q + 2, memory_order_release);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    bool spinning = true; /* counted so by whoever started us */
    unsigned streak = 0;  /* tasks run since we last parked */

    ctx__thread_name("ctx-worker");
    self = w;
    ctx__note = &w->note;
    pthread_setspecific(worker_key, w);
    for (;;) {
        if (pop(&w->cur)) {
            if (spinning) {
                uint64_t s;
                spinning = false;
                state_add(0, ST_SPIN);
                s = atomic_load(&state);
                /* We were the spinner and more waits: have the monitor
                 * watch. (Waking another worker here would cost a system
                 * call per burst of short tasks, which we will run next
                 * anyway; if ours blocks, the monitor sees no progress.) */
                if (n_spinning(s) == 0 && queued())
                    kick();
            }
            publish(w, &w->cur);
            atomic_store_explicit(&w->running, 1, memory_order_relaxed);
            ctx__task_run(&w->cur);
            atomic_store_explicit(&w->running, 0, memory_order_relaxed);
            ctx__note_done();
            streak++;
            continue;
        }
        if (!spinning) {
            uint64_t s;
            /* In a stream of tasks (a second one since we parked), the
             * submitter is often writing the next cell: watch it a moment
             * before counting ourselves spinning (which moves `state`, a
             * line every submitter reads). Not after a lone task: a
             * thousand returning at a cancel would each linger. */
            if (streak >= 2) {
                unsigned i = 0;
                while (!ready() && ++i < LINGER)
                    ctx__cpu_relax();
                if (i < LINGER)
                    continue;
            }
            s = atomic_load(&state);
            while (n_spinning(s) < max_spinners) {
                if (atomic_compare_exchange_weak(&state, &s, s + ST_SPIN)) {
                    spinning = true;
                    break;
                }
            }
        }
        if (spinning) {
            spin();
            if (queued())
                continue;
        }
        if (go_idle(w, spinning))
            break;
        spinning = true; /* woken or undone: counted spinning */
        streak = 0;
    }
    ctx__spin_lock(&workers_lock);
    *w->pprev = w->next;
    if (w->next)
        w->next->pprev = w->pprev;
    ctx__spin_unlock(&workers_lock);
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

    CTX_ASSERT(!"a libctx task called pthread_exit; tasks must return");
    ctx__spin_lock(&workers_lock);
    *w->pprev = w->next;
    if (w->next)
        w->next->pprev = w->pprev;
    ctx__spin_unlock(&workers_lock);
    state_add(0, ST_THREAD); /* it was running: neither idle nor spinning */
    if (atomic_load(&w->running))
        ctx__task_lost(&w->cur);
    self = NULL;
    ctx__note = NULL;
    ctx__free(w);
    ctx__thread_exiting();
}

/* Start a worker, counted as a spinning thread; EAGAIN or ENOMEM. */
static int grow(void)
{
    struct worker *w = ctx__calloc(1, sizeof *w);
    pthread_t tid;
    int rc;

    if (!w)
        return ENOMEM;
    state_add(ST_THREAD + ST_SPIN, 0);
    ctx__spin_lock(&workers_lock);
    w->next = workers;
    w->pprev = &workers;
    if (workers)
        workers->pprev = &w->next;
    workers = w;
    ctx__spin_unlock(&workers_lock);
    rc = ctx__thread_start(&tid, worker_main, w);
    if (rc) {
        ctx__spin_lock(&workers_lock);
        *w->pprev = w->next;
        if (w->next)
            w->next->pprev = w->pprev;
        ctx__spin_unlock(&workers_lock);
        state_add(0, ST_THREAD + ST_SPIN);
        ctx__free(w);
        /* A submitter may have left its task to the thread we counted
         * (see DESIGN): have the monitor see to what waits. */
        if (queued())
            kick();
    }
    return rc;
}

/* ------------------------------------------------------------ monitor */

/* Give the queue one awake worker per waiting task, up to a batch. */
static int relieve(void)
{
    uint64_t s = atomic_load(&state);
    int need = (int)queued() - n_spinning(s);
    if (need > BATCH)
        need = BATCH;
    for (; need > 0; need--) {
        if (!wake_one()) {
            int rc = grow();
            if (rc)
                return rc;
        }
    }
    return 0;
}

/* Park until kicked; false if the idle timeout passed first (then the
 * monitor is marked not running and must exit). */
static bool monitor_park(void)
{
    atomic_store(&mon_asleep, true);
    while (!atomic_exchange(&mon_kicked, false)) {
        uint32_t v = atomic_load(&mon_word);
        ctx_time_t until =
            ctx__time_add(ctx__real_now(), atomic_load(&idle_timeout));
        if (atomic_load(&mon_kicked))
            continue;
        if (ctx__futex_wait(&mon_word, v, until) == ETIMEDOUT &&
            ctx__real_now() >= until) {
            ctx__spin_lock(&mon_lock);
            if (!atomic_load(&mon_kicked)) {
                atomic_store(&mon_running, false);
                ctx__spin_unlock(&mon_lock);
                return false;
            }
            ctx__spin_unlock(&mon_lock);
        }
    }
    atomic_store(&mon_asleep, false);
    return true;
}

/*
 * Once kicked, the monitor stays awake and looks every GRACE for as long
 * as work keeps arriving (kicks then cost their sender a flag, no system
 * call), and parks after QUIET looks with nothing queued and no kick.
 */
#define QUIET 50

static void *monitor_main(void *arg)
{
    ctx_time_t backoff = GRACE;
    (void)arg;
    ctx__thread_name("ctx-pool-mon");
    while (monitor_park()) {
        for (int quiet = 0; quiet < QUIET;) {
            size_t t0 = taken();
            bool kicked;
            sleep_for(backoff);
            kicked = atomic_exchange(&mon_kicked, false);
            if (!queued()) {
                quiet = kicked ? 0 : quiet + 1;
                atomic_store(&exhausted, false);
                continue;
            }
            quiet = 0;
            if (n_spinning(atomic_load(&state)) > 0 || taken() != t0) {
                backoff = GRACE; /* someone is on it, or it moves */
                atomic_store(&exhausted, false);
                continue;
            }
            /* It stood still for a GRACE: the workers are stuck. */
            if (relieve() != 0) { /* out of threads: try again later */
                atomic_store(&exhausted, true);
                if (backoff < 100 * CTX_MILLISECOND)
                    backoff *= 2;
            } else {
                atomic_store(&exhausted, false);
                backoff = GRACE;
            }
        }
    }
    ctx__thread_exiting();
    return NULL;
}

/* Start the monitor if it is not running: 0, or EAGAIN. */
static int monitor_up(void)
{
    pthread_t tid;
    bool start = false;

    ctx__spin_lock(&mon_lock);
    if (!atomic_load(&mon_running)) {
        atomic_store(&mon_running, true);
        start = true;
    }
    ctx__spin_unlock(&mon_lock);
    if (!start)
        return 0;
    if (ctx__thread_start(&tid, monitor_main, NULL) != 0) {
        ctx__spin_lock(&mon_lock);
        atomic_store(&mon_running, false);
        ctx__spin_unlock(&mon_lock);
        return EAGAIN;
    }
    return 0;
}

/* Have the monitor watch the queue. */
static void kick(void)
{
    if (atomic_load_explicit(&mon_kicked, memory_order_relaxed) ||
        atomic_exchange(&mon_kicked, true))
        return; /* a watch is asked for already */
    if (monitor_up() != 0) {
        /* No monitor: the task is queued; a worker that comes back
         * takes it. (Submitters make sure of a monitor or a thread
         * before queueing behind busy workers.) */
        atomic_store(&mon_kicked, false);
        return;
    }
    if (atomic_load(&mon_asleep)) { /* else it looks by itself */
        atomic_fetch_add(&mon_word, 1);
        ctx__futex_wake(&mon_word, 1);
    }
}

/* ------------------------------------------------------------ submit */

int ctx__pool_submit(const struct ctx__task *t)
{
    uint64_t s;
    bool need;
    int rc;

    pthread_once(&init_once, init);
    s = atomic_load(&state);
    need = n_threads(s) == 0;
    if (!need && n_spinning(s) == 0 && n_idle(s) == 0) {
        /* Every worker is busy: the task will wait for one to come back
         * unless they are stuck, which the monitor watches for. Without
         * a monitor, or once it found the pool stuck and could not add a
         * thread, a thread is needed now. (A running monitor is seen
         * without its lock, as this is asked on every task behind busy
         * workers; one retiring meanwhile is restarted by kick(), which
         * looks under the lock.) */
        need = atomic_load_explicit(&exhausted, memory_order_relaxed) ||
               (!atomic_load_explicit(&mon_running, memory_order_relaxed) &&
                monitor_up() != 0);
    }
    if (need && (rc = grow()) != 0)
        return rc == ENOMEM ? EAGAIN : rc; /* not queued: fn never runs */
    if ((rc = push(t)) != 0)
        return rc;
    s = atomic_load(&state);
    if (n_spinning(s) > 0)
        return 0;
    if (n_idle(s) > 0 && n_idle(s) == n_threads(s) && wake_one())
        return 0;
    kick();
    return 0;
}

int ctx_task_set_name(const char *name)
{
    struct worker *w = self;
    if (!name)
        return EINVAL;
    if (!w || !atomic_load_explicit(&w->running, memory_order_relaxed))
        return ESRCH;
    memset(w->cur.name, 0, sizeof w->cur.name);
    strncpy(w->cur.name, name, sizeof w->cur.name - 1);
    publish(w, &w->cur);
    return 0;
}

/* ------------------------------------------------------------ dump */

void ctx__pool_dump(int fd)
{
    ctx_time_t now = ctx__coarse_now();
    size_t q;

    pthread_once(&init_once, init);
    ctx__spin_lock(&workers_lock);
    for (struct worker *w = workers; w; w = w->next) {
        uint64_t name[4];
        const void *g, *obj;
        const char *what;
        long num;
        ctx_time_t since;
        uint32_t s1, s2;
        int tries = 0;
        do {
            s1 = atomic_load_explicit(&w->dseq, memory_order_acquire);
            g = atomic_load_explicit(&w->dgroup, memory_order_relaxed);
            since = atomic_load_explicit(&w->dsince, memory_order_relaxed);
            for (int i = 0; i < 4; i++)
                name[i] =
                    atomic_load_explicit(&w->dname[i], memory_order_relaxed);
            atomic_thread_fence(memory_order_acquire);
            s2 = atomic_load_explicit(&w->dseq, memory_order_relaxed);
        } while ((s1 != s2 || (s1 & 1)) && ++tries < 100);
        if (!atomic_load(&w->running) || s1 != s2)
            continue;
        what = atomic_load(&w->note.what);
        obj = atomic_load(&w->note.obj);
        num = atomic_load(&w->note.num);
        ((char *)name)[sizeof name - 1] = 0;
        dprintf(fd, "task %-28s group %p %-7s %6lld ms",
                ((char *)name)[0] ? (char *)name : "(unnamed)", g,
                what ? "blocked" : "running",
                (long long)((now - since) / CTX_MILLISECOND));
        if (what && num >= 0)
            dprintf(fd, "  on %s %ld", what, num);
        else if (what)
            dprintf(fd, "  on %s %p", what, obj);
        dprintf(fd, "\n");
    }
    ctx__spin_unlock(&workers_lock);
    if ((q = queued()) != 0)
        dprintf(fd, "%zu task(s) queued, not started yet\n", q);
}
