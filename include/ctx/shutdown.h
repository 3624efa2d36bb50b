/* SPDX-License-Identifier: MIT */
/*
 * Phased graceful shutdown: one object that owns the signal context and,
 * once SIGTERM (or SIGINT, or ctx_shutdown_start) arrives, drives four
 * phases with budgets, so that a server stops without losing work and
 * says who did not stop when it must stop anyway.
 *
 *  1. lame duck: ctx_shutdown_phase says so (health checks answer 503),
 *     work is still accepted, for `lame_duck`, so that load balancers
 *     notice and send no more;
 *  2. refuse: the ingress context is cancelled (accept loops end and close
 *     their listeners), ctx_shutdown_enter refuses;
 *  3. drain: the draining context is cancelled (long-lived work such as
 *     streams is told to finish, cleanly); in-flight work, counted by
 *     ctx_shutdown_enter / ctx_shutdown_leave, has `drain` to reach zero;
 *     then the registered subsystems stop in reverse registration order,
 *     each called with a fresh context bounded by its own budget;
 *  4. force, if the drain did not finish in time, or a second signal came:
 *     the work context is cancelled, the force actions run (close
 *     descriptors, kill processes), and what still runs gets `force`; if
 *     anything is left then, the manager logs which subsystems, actions
 *     and tasks did not stop (with ctx_dump) and exits the process with a
 *     non-zero status.
 *
 *     int main(void) {
 *         ctx_signal_init();                         // first
 *         ctx_shutdown_opts_t o = CTX_SHUTDOWN_OPTS_INIT;
 *         o.lame_duck = 2 * CTX_SECOND;
 *         o.drain = 10 * CTX_SECOND;
 *         ctx_shutdown_new(&o, &sd);
 *         start_server(ctx_shutdown_ingress(sd), ...);  // accept loop
 *         ctx_shutdown_register(sd, "db pool", stop_db, db, CTX_SECOND);
 *         rc = ctx_shutdown_wait(sd);       // returns after the phases
 *         ctx_shutdown_free(sd);
 *     }
 *
 * Contexts: work (cancelled in force) is the parent of draining
 * (cancelled in drain), the parent of ingress (cancelled in refuse), so a
 * later phase ends the earlier phases' contexts too. All three carry the
 * values of opts.parent but not its cancellation: the parent ending (or
 * the signal) starts the shutdown, it does not cut the work.
 *
 * Every transition is observable: opts.on_phase is called, and a line is
 * written to opts.log_fd with the time since the shutdown began and the
 * work in flight, e.g.
 *
 *     shutdown: +1.002 s  refusing  (in flight 17)
 *
 * Go: http.Server.Shutdown, signal.NotifyContext and the lame-duck /
 * drain / force sequence servers write by hand around them.
 */
#ifndef CTX_SHUTDOWN_H
#define CTX_SHUTDOWN_H

#include <ctx/ctx.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ctx_shutdown ctx_shutdown_t;

/* A subsystem's stop, or a force action: gets a fresh bounded context;
 * returns 0 or an error code (logged). The same shape as ctx_task_fn. */
typedef int (*ctx_stop_fn)(ctx_t *c, void *arg);

/* The phases, in the order they come. */
typedef enum ctx_phase {
    CTX_PHASE_SERVING = 0, /* no shutdown yet */
    CTX_PHASE_LAME_DUCK,   /* unhealthy, still accepting */
    CTX_PHASE_REFUSING,    /* ingress cancelled, enter refused */
    CTX_PHASE_DRAINING,    /* waiting for in-flight work, then subsystems */
    CTX_PHASE_FORCING,     /* work cancelled, force actions run */
    CTX_PHASE_DONE         /* ctx_shutdown_wait returns */
} ctx_phase_t;

/*
 * A phase callback: the manager entered `phase`, `elapsed` after the
 * shutdown began (0 for the lame duck). Runs on the thread in
 * ctx_shutdown_wait; may call any ctx_shutdown_ query.
 */
typedef void (*ctx_phase_fn)(ctx_shutdown_t *sd, ctx_phase_t phase,
                             ctx_time_t elapsed, void *arg);

/* Options of ctx_shutdown_new; start from CTX_SHUTDOWN_OPTS_INIT. */
typedef struct ctx_shutdown_opts {
    ctx_t *parent;      /* its values flow to the contexts; its end starts
                           the shutdown. NULL: ctx_background() */
    const int *signals; /* the signals that start it (and a second one
                           skips to force); NULL: SIGINT and SIGTERM */
    size_t n_signals;
    bool no_signals;      /* only ctx_shutdown_start (or the parent's end)
                             starts it; ctx_signal_init not needed */
    ctx_time_t lame_duck; /* time in lame duck; 0: none */
    ctx_time_t drain;     /* budget for in-flight work to finish */
    ctx_time_t force;     /* budget after the work context is cancelled */
    ctx_time_t stop;      /* default budget of a subsystem's stop */
    ctx_phase_fn on_phase;
    void *arg;       /* for on_phase */
    int log_fd;      /* phase lines and the final report; -1: none */
    bool no_exit;    /* with stragglers after force, ctx_shutdown_wait
                        returns EBUSY instead of exiting (for tests) */
    int exit_status; /* the exit status with stragglers; 0: 1 */
} ctx_shutdown_opts_t;

#define CTX_SHUTDOWN_OPTS_INIT                                                 \
    {                                                                          \
        NULL, NULL, 0, false, 0, 10 * CTX_SECOND, 5 * CTX_SECOND,              \
            2 * CTX_SECOND, NULL, NULL, 2, false, 0                            \
    }

/*
 * ctx_shutdown_new - a manager waiting for the shutdown to begin.
 *
 * With signals (the default), ctx_signal_init must have been called: the
 * manager makes a ctx_signal_notify context for them.
 *
 * Returns: 0 and the manager in *out (freed with ctx_shutdown_free).
 * Errors: EINVAL if o or out is NULL, a budget is negative, or a signal
 * is not one ctx_signal_init takes over (or it was not called); ENOMEM.
 * On error *out is NULL and nothing is left behind.
 */
CTX_API int ctx_shutdown_new(const ctx_shutdown_opts_t *o,
                             ctx_shutdown_t **out);

/*
 * ctx_shutdown_ingress, _draining, _work - the three contexts (borrowed:
 * valid until ctx_shutdown_free; ctx_retain to keep longer). Ingress ends
 * in refuse (cause ECANCELED, "shutdown: refusing"), draining in drain
 * ("shutdown: draining"), work in force ("shutdown: forced"). NULL for
 * NULL.
 */
CTX_API ctx_t *ctx_shutdown_ingress(ctx_shutdown_t *sd);
CTX_API ctx_t *ctx_shutdown_draining(ctx_shutdown_t *sd);
CTX_API ctx_t *ctx_shutdown_work(ctx_shutdown_t *sd);

/*
 * ctx_shutdown_phase - the current phase (CTX_PHASE_SERVING for NULL).
 * A health check answers 200 in CTX_PHASE_SERVING only.
 * Thread safety: safe from any thread; one atomic load.
 */
CTX_API ctx_phase_t ctx_shutdown_phase(const ctx_shutdown_t *sd);

/* ctx_phase_name - "serving", "lame duck", "refusing", "draining",
 * "forcing", "done"; "?" for another value. */
CTX_API const char *ctx_phase_name(ctx_phase_t phase);

/*
 * ctx_shutdown_enter - count one piece of work in flight (a connection, a
 * request, a job), to be ended by ctx_shutdown_leave. Work entered before
 * the refuse phase is what the drain waits for.
 *
 * Returns: 0 (counted); ECANCELED once the manager refuses (nothing
 * counted: do not leave); EINVAL for NULL.
 * Thread safety: safe from any thread; one CAS, no lock.
 */
CTX_API int ctx_shutdown_enter(ctx_shutdown_t *sd);

/* ctx_shutdown_leave - the end of work counted by ctx_shutdown_enter.
 * Leaving more than was entered is a misuse (asserted in debug builds). */
CTX_API void ctx_shutdown_leave(ctx_shutdown_t *sd);

/* ctx_shutdown_inflight - the work in flight now (0 for NULL). */
CTX_API int64_t ctx_shutdown_inflight(const ctx_shutdown_t *sd);

/*
 * ctx_shutdown_register - a subsystem to stop in the drain phase, after
 * the in-flight work (subsystems stop in reverse registration order, as
 * Go's defers run). stop(c, arg) gets a fresh context with the values of
 * the work context, not cancelled, with a deadline `budget` away (0: the
 * manager's default, opts.stop); it runs on a pool task and should return
 * by that deadline; a non-zero result is logged. One that does not return
 * in time sends the manager to force, where it has the force budget left.
 *
 * Returns: 0.
 * Errors: EINVAL if sd, name or stop is NULL or budget is negative; EBUSY
 * once the shutdown began (nothing registered); ENOMEM.
 */
CTX_API int ctx_shutdown_register(ctx_shutdown_t *sd, const char *name,
                                  ctx_stop_fn stop, void *arg,
                                  ctx_time_t budget);

/*
 * ctx_shutdown_on_force - an action for the force phase (close the
 * descriptors a stuck handler blocks on, kill processes). Force actions
 * all start at once when the force phase begins, each on a pool task with
 * a fresh context bounded by the force budget.
 *
 * Returns: 0.
 * Errors: EINVAL if sd, name or fn is NULL; EBUSY once the shutdown
 * began; ENOMEM.
 */
CTX_API int ctx_shutdown_on_force(ctx_shutdown_t *sd, const char *name,
                                  ctx_stop_fn fn, void *arg);

/*
 * ctx_shutdown_start - begin the shutdown now, as a signal would, with
 * `why` (copied; NULL: "shutdown requested") as the cause shown in the
 * log.
 *
 * Returns: 0; EALREADY if it had begun; EINVAL for NULL.
 */
CTX_API int ctx_shutdown_start(ctx_shutdown_t *sd, const char *why);

/*
 * ctx_shutdown_force - skip to the force phase now, as a second signal
 * does (begins the shutdown first if needed).
 *
 * Returns: 0; EINVAL for NULL.
 */
CTX_API int ctx_shutdown_force(ctx_shutdown_t *sd);

/*
 * ctx_shutdown_wait - wait for the shutdown to begin, then run the phases
 * on the calling thread, calling on_phase and logging each. Call it from
 * one thread, once (main, typically, after starting the server).
 *
 * Returns: 0 when the drain finished: no work in flight, every subsystem
 * stopped in its budget (a stop that returned an error still counts as
 * stopped, and is logged); ETIMEDOUT when the force phase was needed
 * (drain budget or a stop budget passed, or a second signal) and
 * everything stopped within the force budget; EBUSY (only with no_exit)
 * when something still ran after it, as logged. Without no_exit that case
 * does not return: the process exits with opts.exit_status after the log
 * and ctx_dump, without running atexit handlers (a stuck thread may hold
 * what they need).
 * Errors: EINVAL for NULL; EALREADY if called a second time.
 * Blocks: until the shutdown began and ended.
 */
CTX_API int ctx_shutdown_wait(ctx_shutdown_t *sd);

/*
 * ctx_shutdown_elapsed - the time since the shutdown began (0 before it
 * began, and for NULL).
 */
CTX_API ctx_time_t ctx_shutdown_elapsed(const ctx_shutdown_t *sd);

/*
 * ctx_cleanup_ctx - a fresh context for cleanup work: the values of
 * `from`, none of its cancellation, and a deadline `budget` away
 * (ctx_without_cancel + ctx_with_timeout in one). Use it to flush, log or
 * release after `from` was cancelled: never run cleanup on the cancelled
 * context itself.
 *
 * Returns: 0 and the context in *out (one reference, the caller's).
 * Errors: EINVAL if from or out is NULL; ENOMEM. A budget <= 0 gives a
 * context already expired, as ctx_with_timeout does.
 */
CTX_API int ctx_cleanup_ctx(ctx_t *from, ctx_time_t budget, ctx_t **out);

/*
 * ctx_shutdown_free - end the signal registration, cancel the contexts,
 * wait for stop and force callbacks still running (no task outlives it),
 * free. NULL does nothing. Not while another thread is in
 * ctx_shutdown_wait.
 */
CTX_API void ctx_shutdown_free(ctx_shutdown_t *sd);

#ifdef __cplusplus
}
#endif

#endif /* CTX_SHUTDOWN_H */
