/* SPDX-License-Identifier: MIT */
/*
 * Observability and testing: counters of live objects and events, the
 * leak check for tests (Go's goleak), and the virtual test clock (Go's
 * testing/synctest).
 */
#ifndef CTX_OBS_H
#define CTX_OBS_H

#include <ctx/base.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Process-wide counters. "Live" fields are gauges; the others count events
 * since the process started. Fields of parts of the library not in use
 * stay 0.
 */
typedef struct ctx_stats {
    int64_t contexts;          /* live contexts (the static ones excluded) */
    int64_t timers;            /* armed deadline timers */
    int64_t tasks;             /* live group tasks */
    int64_t pool_threads;      /* worker pool threads, busy or idle */
    int64_t idle_threads;      /* worker pool threads waiting for work */
    int64_t internal_threads;  /* every thread libctx started and still runs
                                  (timer, pool, signal) */
    int64_t cancels;           /* contexts that became done, any cause */
    int64_t deadline_expiries; /* deadlines that fired */
    int64_t interrupts;        /* forced: thread-interrupt signals sent */
    int64_t kills;             /* forced: processes signalled to stop */
    int64_t fds;               /* descriptors libctx holds now (ctx_fd
                                  eventfds, wake-up eventfds of threads
                                  that waited in ctx/io.h, pidfds, pipes) */
    int64_t children;          /* live subprocesses (ctx/proc.h) */
} ctx_stats_t;

/*
 * ctx_stats - a snapshot of the counters. Each field is read atomically;
 * the fields are not one consistent snapshot while other threads run.
 *
 * Returns: 0; EINVAL if out is NULL.
 * Thread safety: safe from any thread.
 */
CTX_API int ctx_stats(ctx_stats_t *out);

/*
 * ctx_dump - write a human-readable report to `fd`: the counters, then one
 * line per live task: its name, group, state (queued or running), age, and
 * what it is blocked on (a context, a semaphore, a channel, a group slot).
 * For debugging hangs and for ctx_leak_check's report.
 *
 * Returns: 0; EINVAL if fd < 0. Write errors are ignored.
 * Blocks: only on the writes.
 */
CTX_API int ctx_dump(int fd);

/*
 * ctx_leak_check - for the end of a test: wait up to `grace` for every
 * live context, timer and task to be gone (backing off from 1 us to
 * 100 ms between looks, as goleak does).
 *
 * Returns: the number of objects still live after `grace` (0: no leak).
 * When not 0 it writes what is left, by kind, to standard error.
 * Blocks: up to `grace`, in real time even while the test clock is on.
 */
CTX_API int ctx_leak_check(ctx_time_t grace);

/*
 * The test clock: a virtual CLOCK_MONOTONIC that tests move by hand, so
 * that deadline logic is tested exactly and without sleeping.
 *
 * While it is enabled, ctx_now() returns the virtual time, deadlines fire
 * only when ctx_testclock_advance or ctx_testclock_set moves the time past
 * them (never by real time), and ctx_wait timeouts are measured on it.
 * Deadlines armed before enabling keep their absolute value. The clock is
 * process-wide; enable it at the start of a test and disable it at the
 * end, when no thread is waiting on virtual time (such waits then return
 * ETIMEDOUT).
 */

/*
 * ctx_testclock_enable - switch to virtual time, starting at the current
 * real time (so deadlines already armed stay meaningful).
 *
 * Returns: 0; EBUSY if already enabled.
 */
CTX_API int ctx_testclock_enable(void);

/*
 * ctx_testclock_disable - return to real time. Deadlines that passed in
 * virtual time but not in real time fire when real time reaches them.
 */
CTX_API void ctx_testclock_disable(void);

/* ctx_testclock_enabled - whether the virtual clock is on. */
CTX_API bool ctx_testclock_enabled(void);

/*
 * ctx_testclock_advance - move virtual time forward by `d`, firing on the
 * calling thread, in deadline order (ties in arming order), every deadline
 * that falls due. While a deadline fires, ctx_now() reads that deadline;
 * afterwards it reads the old time plus `d`. After-functions of the
 * contexts that expire run on the calling thread.
 *
 * Returns: 0; EINVAL if d < 0 or the test clock is not enabled.
 */
CTX_API int ctx_testclock_advance(ctx_time_t d);

/*
 * ctx_testclock_set - move virtual time forward to the absolute time `t`,
 * as ctx_testclock_advance(t - ctx_now()).
 *
 * Returns: 0; EINVAL if t is earlier than the virtual time or the test
 * clock is not enabled.
 */
CTX_API int ctx_testclock_set(ctx_time_t t);

#ifdef __cplusplus
}
#endif

#endif /* CTX_OBS_H */
