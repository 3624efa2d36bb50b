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
 * Cancellation latency: for every task of a group whose context was
 * cancelled while the task ran (or waited to run), the time from the
 * cancellation to the task's return, counted in log-scale buckets:
 * bucket i holds the samples in (bound(i - 1), bound(i)], bound(i) being
 * 1 us << i, and the last bucket everything above. A task that cancels
 * its group itself (by failing) is not a sample. This is how long work
 * takes to notice it is no longer wanted: the figure a shutdown budget
 * must cover.
 */
#define CTX_LATENCY_BUCKETS 24

typedef struct ctx_latency {
    int64_t count;                       /* samples */
    int64_t sum_ns;                      /* their total, in nanoseconds */
    int64_t bucket[CTX_LATENCY_BUCKETS]; /* per bucket, not cumulative */
} ctx_latency_t;

/*
 * ctx_cancel_latency - the histogram of cancellation latencies since the
 * process started.
 *
 * Returns: 0; EINVAL if out is NULL.
 * Thread safety: safe from any thread; the fields are summed one by one,
 * not as one snapshot, while tasks return.
 */
CTX_API int ctx_cancel_latency(ctx_latency_t *out);

/*
 * ctx_latency_bound - the upper bound of bucket i: CTX_MICROSECOND << i,
 * and CTX_NO_DEADLINE for the last bucket.
 *
 * Returns: the bound; -1 if i is not in [0, CTX_LATENCY_BUCKETS).
 */
CTX_API ctx_time_t ctx_latency_bound(int i);

/*
 * ctx_metrics_text - every counter of ctx_stats and the latency
 * histogram in the Prometheus text exposition format (version 0.0.4),
 * one family each, names prefixed "libctx_": gauges for live objects,
 * counters ("_total") for events, and the histogram
 * libctx_cancel_latency_seconds. The text ends with a newline, so a
 * program may append families of its own after it.
 *
 * Writes at most `cap` bytes to buf, NUL-terminated, and the length the
 * whole text needs (without the NUL) to *len when len is not NULL.
 *
 * Returns: 0; ENOSPC if cap was too small (buf then holds nothing useful:
 * call again with *len + 1 bytes); EINVAL if buf is NULL with cap > 0.
 * Thread safety: safe from any thread.
 * Go: promhttp.Handler's output for the runtime collector.
 */
CTX_API int ctx_metrics_text(char *buf, size_t cap, size_t *len);

/*
 * ctx_metrics_write - ctx_metrics_text written to `fd` (blocking write,
 * restarted on EINTR and partial writes).
 *
 * Returns: 0; EINVAL if fd < 0; ENOMEM; a write(2) error.
 */
CTX_API int ctx_metrics_write(int fd);

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
 * line per live task: its name (see ctx_group_go_opts and
 * ctx_task_set_name), group, state (running, or blocked and on what: a
 * context, a semaphore, a channel, a group slot, a descriptor with its
 * number, a child process with its pid, a sleep), and age (since it
 * started or was last renamed); then the number of tasks queued, not
 * started yet. For debugging hangs, for a shutdown that does not finish,
 * and for ctx_leak_check's report. Lines look like
 *
 *   task conn 3: GET /work  group 0x55d0c8 blocked  12 ms  on fd 7 (read)
 *
 * Returns: 0; EINVAL if fd < 0. Write errors are ignored.
 * Blocks: only on the writes.
 */
CTX_API int ctx_dump(int fd);

/*
 * ctx_leak_check - for the end of a test: wait up to `grace` for every
 * live context, armed timer, task, subprocess (ctx/proc.h) and descriptor
 * owned by a libctx object (ctx_fd eventfds, pidfds, pipes) to be gone,
 * backing off from 1 us to 100 ms between looks, as goleak does.
 * Descriptors libctx keeps for the life of a thread or of the process
 * (a thread's wake-up eventfd, the isolation helper's, ctx_fd of a static
 * context) are not leaks.
 *
 * Returns: the number of objects still live after `grace` (0: no leak).
 * When not 0 it writes what is left, by kind, to standard error, then
 * the live tasks (as ctx_dump does).
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
