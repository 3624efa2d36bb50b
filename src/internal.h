/* SPDX-License-Identifier: MIT */
/*
 * What every layer of libctx shares: the allocation hook, assertions, lock
 * wrappers with clang thread-safety annotations, named fault points and
 * process-wide counters. Nothing here is public API.
 */
#ifndef CTX_INTERNAL_H
#define CTX_INTERNAL_H

#include <ctx/ctx.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------ compiler */

#define CTX_LIKELY(x)   __builtin_expect(!!(x), 1)
#define CTX_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define CTX_UNUSED      __attribute__((unused))
#define CTX_COLD        __attribute__((cold, noinline))

#define ctx__container_of(p, type, member)                                     \
    ((type *)(void *)((char *)(p)-offsetof(type, member)))

/* Relaxed atomic helpers for counters and flags that order nothing. */
#define ctx__load_relaxed(p) atomic_load_explicit((p), memory_order_relaxed)
#define ctx__store_relaxed(p, v)                                               \
    atomic_store_explicit((p), (v), memory_order_relaxed)

/* ------------------------------------------------------------ asserts */

/*
 * CTX_ASSERT(x): checked in debug and sanitizer builds (CTX_DEBUG), gone in
 * release builds. CTX_NEVER(x): for defensive branches that must not be
 * taken, `if (CTX_NEVER(x)) return EINVAL;` asserts in debug builds and
 * still defends in release builds (SQLite's NEVER()).
 */
#ifdef CTX_DEBUG
#define CTX_ASSERT(x) ((x) ? (void)0 : ctx__assert_fail(#x, __FILE__, __LINE__))
#define CTX_NEVER(x)  ((x) ? (ctx__assert_fail(#x, __FILE__, __LINE__), 1) : 0)
#else
#define CTX_ASSERT(x) ((void)0)
#define CTX_NEVER(x)  CTX_UNLIKELY(x)
#endif

_Noreturn void ctx__assert_fail(const char *expr, const char *file, int line);

/* ------------------------------------------------------------ memory */

/*
 * Every allocation of the library goes through these, so that tests can
 * fail the 1st, 2nd, ... allocation of an operation (CTX__FAULT_ALLOC).
 */
void *ctx__malloc(size_t n);
void *ctx__calloc(size_t n, size_t size);
void *ctx__realloc(void *p, size_t n);
void ctx__free(void *p);
char *ctx__strdup(const char *s);

/* ------------------------------------------------------------ faults */

/*
 * Named fault points. A test arms one to fail its n-th check from now
 * (n = 1: the next one), once or from then on; ctx__fault(p) is true when
 * the operation at that point must fail. Disarmed, a check is one relaxed
 * load of a global flag.
 */
enum ctx__fault_point {
    CTX__FAULT_ALLOC,
    CTX__FAULT_THREAD_CREATE,
    CTX__FAULT_EVENTFD,
    CTX__FAULT_PIDFD,
    CTX__FAULT_SPAWN,
    CTX__FAULT_PIPE,
    CTX__FAULT_COUNT
};

extern atomic_int ctx__faults_armed;

void ctx__fault_arm(enum ctx__fault_point p, long nth, int persistent);
void ctx__fault_disarm_all(void);
long ctx__fault_hits(enum ctx__fault_point p);
int ctx__fault_check(enum ctx__fault_point p);

static inline int ctx__fault(enum ctx__fault_point p)
{
    if (CTX_LIKELY(!ctx__load_relaxed(&ctx__faults_armed)))
        return 0;
    return ctx__fault_check(p);
}

/* ------------------------------------------------------------ locks */

#if defined(__clang__)
#define CTX__TSA(x) __attribute__((x))
#else
#define CTX__TSA(x)
#endif
#define CTX_CAPABILITY(x) CTX__TSA(capability(x))
#define CTX_GUARDED_BY(x) CTX__TSA(guarded_by(x))
#define CTX_ACQUIRE(...)  CTX__TSA(acquire_capability(__VA_ARGS__))
#define CTX_RELEASE(...)  CTX__TSA(release_capability(__VA_ARGS__))
#define CTX_REQUIRES(...) CTX__TSA(requires_capability(__VA_ARGS__))
#define CTX_EXCLUDES(...) CTX__TSA(locks_excluded(__VA_ARGS__))
#define CTX_NO_TSA        CTX__TSA(no_thread_safety_analysis)

/* A pthread mutex the thread-safety analysis can follow. */
typedef struct CTX_CAPABILITY("mutex") ctx__mutex {
    pthread_mutex_t m;
} ctx__mutex_t;

#define CTX__MUTEX_INIT                                                        \
    {                                                                          \
        PTHREAD_MUTEX_INITIALIZER                                              \
    }

static inline void ctx__lock(ctx__mutex_t *mu) CTX_ACQUIRE(mu) CTX_NO_TSA
{
    pthread_mutex_lock(&mu->m);
}

static inline void ctx__unlock(ctx__mutex_t *mu) CTX_RELEASE(mu) CTX_NO_TSA
{
    pthread_mutex_unlock(&mu->m);
}

/*
 * A spin lock for critical sections of a few dozen instructions: one CAS
 * to take, one release store to drop. A waiter spins briefly, then yields
 * the CPU between attempts, so a holder preempted on a 2-core machine is
 * not starved by its waiters.
 */
typedef struct CTX_CAPABILITY("mutex") ctx__spin {
    atomic_uint v;
} ctx__spin_t;

#define CTX__SPIN_INIT                                                         \
    {                                                                          \
        0                                                                      \
    }

void ctx__spin_wait(atomic_uint *v, unsigned busy_bit);

static inline void ctx__spin_lock(ctx__spin_t *l) CTX_ACQUIRE(l) CTX_NO_TSA
{
    unsigned z = 0;
    while (!atomic_compare_exchange_weak_explicit(
        &l->v, &z, 1, memory_order_acquire, memory_order_relaxed)) {
        ctx__spin_wait(&l->v, 1);
        z = 0;
    }
}

static inline void ctx__spin_unlock(ctx__spin_t *l) CTX_RELEASE(l) CTX_NO_TSA
{
    atomic_store_explicit(&l->v, 0, memory_order_release);
}

/*
 * Start an internal thread with every signal blocked from its first
 * instruction (the mask is inherited, so there is no window in which a
 * process signal could land on it). Counted in ctx_stats.internal_threads
 * until it calls ctx__thread_exiting(). Returns 0 or EAGAIN (also when
 * CTX__FAULT_THREAD_CREATE fires). The thread names itself first with
 * ctx__thread_name (at most 15 bytes; ps, top, gdb and /proc show it).
 */
int ctx__thread_start(pthread_t *t, void *(*fn)(void *), void *arg);
void ctx__thread_name(const char *name);
void ctx__thread_exiting(void);

/* A value identifying the calling thread, cheaper than pthread_self(). */
uintptr_t ctx__self(void);

/* ------------------------------------------------------------ counters */

/*
 * Event counters are per thread: each thread adds to its own slots with
 * plain (relaxed) stores, and ctx_stats sums every thread's slots plus the
 * totals of threads that have exited. So counting costs no atomic
 * read-modify-write and no shared cache line on a hot path.
 */
enum ctx__counter {
    CTX__C_NEW_PLAIN, /* contexts made, by kind: with_cancel */
    CTX__C_NEW_TIMED, /* with an armed deadline */
    CTX__C_NEW_VALUE,
    CTX__C_NEW_WITHOUT,
    CTX__C_NEW_MERGE,
    CTX__C_FREE_PLAIN, /* contexts freed, same order */
    CTX__C_FREE_TIMED,
    CTX__C_FREE_VALUE,
    CTX__C_FREE_WITHOUT,
    CTX__C_FREE_MERGE,
    CTX__C_CANCELS,
    CTX__C_EXPIRIES,
    CTX__C_TASK_NEW,
    CTX__C_TASK_END,
    CTX__C_INTERRUPTS,
    CTX__C_KILLS,
    CTX__C_LAT_SUM, /* cancellation latency: sum of samples, ns */
    CTX__C_LAT_0,   /* and one count per bucket (CTX_LATENCY_BUCKETS) */
    CTX__C_COUNT = CTX__C_LAT_0 + CTX_LATENCY_BUCKETS
};

#define CTX__KINDS 5

struct ctx__tcounters {
    atomic_llong v[CTX__C_COUNT]; /* written by the owner thread only */
    struct ctx__tcounters *next;  /* registry; guarded by its mutex */
    struct ctx__tcounters **pprev;
    int registered; /* owner only: 0 not yet, 1 yes, -1 fall back */
};

extern _Thread_local struct ctx__tcounters ctx__tc
    __attribute__((tls_model("initial-exec")));

void ctx__count_slow(enum ctx__counter k, int64_t d);

/* Add d to this thread's counter k: a load and a store, no RMW. */
static inline void ctx__count(enum ctx__counter k, int64_t d)
{
    struct ctx__tcounters *t = &ctx__tc;
    if (CTX_LIKELY(t->registered > 0))
        ctx__store_relaxed(&t->v[k], ctx__load_relaxed(&t->v[k]) + d);
    else
        ctx__count_slow(k, d);
}

int64_t ctx__counter_sum(enum ctx__counter k);

/* Live contexts, in total and by kind (the order of CTX__C_NEW_*). */
int64_t ctx__live_contexts(int64_t by_kind[CTX__KINDS]);

/* Gauges kept by other modules, read by ctx_stats. */
extern atomic_llong ctx__internal_threads;
extern atomic_llong ctx__pool_threads;
extern atomic_llong ctx__idle_threads;
extern atomic_llong ctx__fds;      /* descriptors libctx holds */
extern atomic_llong ctx__kept_fds; /* of those, held for the life of a
                                      thread or of the process (wake-up
                                      eventfds, the isolation helper's):
                                      not leaks */
extern atomic_llong ctx__children; /* live subprocesses */
int64_t ctx__timer_count(void);

/*
 * Record one cancellation-latency sample: a task of a context cancelled
 * at `cancelled_at` (ctx__real_now's clock) returned now. Per-thread
 * counters, as above.
 */
void ctx__latency_record(ctx_time_t cancelled_at);

/* ------------------------------------------------------------ waiting */

/*
 * A link in a context's child list (layout owned by the core; defined
 * here only so that a wait registration can be embedded on a stack).
 */
struct ctx__link {
    struct ctx__link *next;  /* guarded by the parent's lock; once detached,
                                reused as the link of a work list */
    _Atomic uintptr_t pprev; /* (struct ctx__link **) | kind, 0 = detached.
                                Written under the parent's lock (release);
                                release() peeks at it without (acquire). */
};

/*
 * A blocked primitive's registration on a context (semaphore, channel,
 * group limit, I/O...): when the context is done, the core sets `bit` in
 * *word and wakes the futex at `word`, and writes to `fd` if there is one
 * (a thread waiting in poll(2)). It lives on the waiter's stack and costs
 * no allocation.
 *
 *     struct ctx__waitrec w = {.word = &me.state, .bit = CANCELLED,
 *                              .fd = -1, .stamp = NULL};
 *     if (ctx__wait_register(c, &w) != 0)   // already done
 *         return ctx_err(c);
 *     ... park on me.state until granted or CANCELLED ...
 *     ctx__wait_unregister(c, &w);          // the core lets go of w
 */
struct ctx__waitrec {
    struct ctx__link link;  /* the core's */
    _Atomic uint32_t *word; /* NULL: no word to set */
    uint32_t bit;
    int fd; /* >= 0: an eventfd the cancellation writes 1 to; else -1 */
    _Atomic ctx_time_t *stamp; /* not NULL: the cancellation stores its
                                  time (ctx__real_now) there first */
};

/*
 * Register w on c. Returns 0, or c's error if c is already done (then w is
 * not registered and unregister must not be called). A context that can
 * never be done registers nothing and returns 0.
 */
int ctx__wait_register(ctx_t *c, struct ctx__waitrec *w);

/* Undo a registration; after it returns the core no longer touches w.
 * Returns true if a cancellation had fired it (set the bit, wrote fd). */
bool ctx__wait_unregister(ctx_t *c, struct ctx__waitrec *w);

/* Futex wait/wake on a 32-bit word (absolute CLOCK_MONOTONIC `until`, or
 * CTX_NO_DEADLINE). Returns 0, ETIMEDOUT, EAGAIN or EINTR; keeps errno. */
int ctx__futex_wait(_Atomic uint32_t *word, uint32_t val, ctx_time_t until);
void ctx__futex_wake(_Atomic uint32_t *word, int n);
void ctx__futex_wake_all(_Atomic uint32_t *word);

/*
 * Parking with an announced sleeper, for words one thread waits on and
 * another completes (a semaphore grant, a channel hand-over): the waiter
 * sets `parked` in the word before it sleeps, and the completer makes the
 * wake system call only if it finds that bit, so a hand-over to a waiter
 * still spinning costs no system call.
 *
 * ctx__park: sleep while *word == v, after adding `parked` to it; returns
 * at once if the word changed first (the caller looks at it again).
 * ctx__unpark: add `bits` (release) and wake the sleeper if there is one.
 * Wakes through the address only: the waiter may be gone when it runs,
 * and a stray wake of a reused address is harmless (waiters recheck).
 */
void ctx__park(_Atomic uint32_t *word, uint32_t v, uint32_t parked);

static inline void ctx__unpark(_Atomic uint32_t *word, uint32_t bits,
                               uint32_t parked)
{
    if (atomic_fetch_or_explicit(word, bits, memory_order_acq_rel) & parked)
        ctx__futex_wake(word, 1);
}

/* One iteration of a spin-wait: PAUSE on x86, YIELD on arm64. */
static inline void ctx__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

/*
 * What the calling thread is blocked on, for ctx_dump: the pool points
 * ctx__note at its worker's record; blocking primitives of every layer
 * note what they wait for (a static string and the object) and clear it.
 */
struct ctx__wait_note {
    _Atomic(const char *) what;
    _Atomic(const void *) obj;
    atomic_long num; /* a descriptor or process id to show, or -1 */
};

extern _Thread_local struct ctx__wait_note *ctx__note;

static inline void ctx__note_wait(const char *what, const void *obj)
{
    struct ctx__wait_note *n = ctx__note;
    if (n) {
        atomic_store_explicit(&n->obj, obj, memory_order_relaxed);
        atomic_store_explicit(&n->num, -1, memory_order_relaxed);
        atomic_store_explicit(&n->what, what, memory_order_relaxed);
    }
}

/* The same for a wait on a descriptor or a process: `what` names it
 * ("fd (read)", "child pid"), `num` is its number. */
static inline void ctx__note_wait_num(const char *what, long num)
{
    struct ctx__wait_note *n = ctx__note;
    if (n) {
        atomic_store_explicit(&n->obj, NULL, memory_order_relaxed);
        atomic_store_explicit(&n->num, num, memory_order_relaxed);
        atomic_store_explicit(&n->what, what, memory_order_relaxed);
    }
}

static inline void ctx__note_done(void)
{
    struct ctx__wait_note *n = ctx__note;
    if (n)
        atomic_store_explicit(&n->what, NULL, memory_order_relaxed);
}

/* Write the pool's tasks to fd, one line each (src/sync, for ctx_dump). */
void ctx__pool_dump(int fd);

/* ------------------------------------------------------------ time */

/* Real CLOCK_MONOTONIC, whatever the test clock says. */
ctx_time_t ctx__real_now(void);

/* CLOCK_MONOTONIC_COARSE: a few ns, a few ms of resolution (dump ages). */
ctx_time_t ctx__coarse_now(void);

/*
 * CLOCK_MONOTONIC read through the TSC where the kernel uses it too
 * (fastclock.c): ~10 ns against ~23. Within ~100 ns of the real clock,
 * but an unordered read: readings may be out of order by tens of ns (in
 * one thread too). Elsewhere, and for its first millisecond, it is
 * ctx__real_now.
 */
ctx_time_t ctx__tsc_now(void);
bool ctx__tsc_active(void); /* tests: the TSC is being used */
void ctx__tsc_off(void);    /* tests: use ctx__real_now from now on */

/* The test clock is on (timer.c). */
extern atomic_int ctx__virt;

/* ctx_now() for hot paths: the test clock if on, else ctx__tsc_now. */
static inline ctx_time_t ctx__now_fast(void)
{
    if (CTX_UNLIKELY(ctx__load_relaxed(&ctx__virt)))
        return ctx_now();
    return ctx__tsc_now();
}

/* a + b, saturating at CTX_NO_DEADLINE and at INT64_MIN. */
static inline ctx_time_t ctx__time_add(ctx_time_t a, ctx_time_t b)
{
    ctx_time_t r;
    if (__builtin_add_overflow(a, b, &r))
        return b > 0 ? CTX_NO_DEADLINE : INT64_MIN;
    return r;
}

/*
 * Block until `c` is done or the absolute time `until` (on ctx_now()'s
 * clock) has passed. Returns 0 when done, ETIMEDOUT otherwise. The shared
 * waiting primitive of ctx_wait and, later, ctx_sleep.
 */
int ctx__wait_until(ctx_t *c, ctx_time_t until);

#endif /* CTX_INTERNAL_H */
