/* SPDX-License-Identifier: MIT */
/*
 * Signals as contexts (Go's signal.NotifyContext): a context that is done
 * when SIGINT, SIGTERM, SIGHUP or SIGQUIT arrives, its cause naming the
 * signal.
 *
 *     int main(void) {
 *         ctx_signal_init();            // first, before any thread
 *         ctx_t *c;
 *         int sigs[] = {SIGINT, SIGTERM};
 *         ctx_signal_notify(ctx_background(), sigs, 2, &c);
 *         serve(c);                     // returns once c is done
 *         ctx_cancel(c);                // Go's stop(): unregisters
 *         ctx_release(c);
 *     }
 */
#ifndef CTX_SIG_H
#define CTX_SIG_H

#include <ctx/ctx.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * ctx_signal_init - take over SIGINT, SIGTERM, SIGHUP and SIGQUIT: block
 * them in the calling thread, and so in every thread it creates later,
 * and start the one thread that receives them (with sigwaitinfo).
 *
 * Call it first in main, before any thread exists: a thread made earlier
 * does not have them blocked and could take one with its default action.
 * A signal that no ctx_signal_notify context is waiting for gets its
 * usual disposition (the default action kills the process as before; an
 * installed handler runs, on libctx's signal thread; an ignored signal is
 * ignored). Subprocesses started with ctx/proc.h do not inherit the mask;
 * after fork() the mask is restored in the child. Calling it again does
 * nothing.
 *
 * Returns: 0; EAGAIN if the signal thread could not be started.
 */
CTX_API int ctx_signal_init(void);

/* Options of ctx_signal_notify_opts; start from CTX_SIGNAL_OPTS_INIT. */
typedef struct ctx_signal_opts {
    /* Once this context is done by a signal, the same signal a second
     * time ends the process at once with that signal's default action
     * (the "press Ctrl-C twice" exit of servers that drain slowly). */
    bool second_exits;
} ctx_signal_opts_t;

#define CTX_SIGNAL_OPTS_INIT                                                   \
    {                                                                          \
        false                                                                  \
    }

/*
 * The cause code of a context ended by a signal: CTX_SIGNAL_CAUSE(sig),
 * with the text "signal SIGTERM" (say); ctx_err is ECANCELED.
 */
#define CTX_SIGNAL_CAUSE_BASE 0x10000
#define CTX_SIGNAL_CAUSE(sig) (CTX_SIGNAL_CAUSE_BASE + (sig))

/*
 * ctx_signal_notify - a child of `parent` that is done when one of the n
 * signals in `sigs` arrives, with cause CTX_SIGNAL_CAUSE(sig).
 *
 * Every notify context waiting for a signal gets it. The registration
 * ends when the context is done for any reason: cancel it when no longer
 * needed (Go's stop), then release it.
 *
 * Returns: 0 and the context in *out (one reference, the caller's).
 * Errors: EINVAL if parent, sigs or out is NULL, n is 0, or a signal is
 * not one ctx_signal_init took over (SIGINT, SIGTERM, SIGHUP, SIGQUIT) or
 * ctx_signal_init was not called; ENOMEM. On error *out is NULL.
 * Go: signal.NotifyContext.
 */
CTX_API int ctx_signal_notify(ctx_t *parent, const int *sigs, size_t n,
                              ctx_t **out);

/* ctx_signal_notify with options (NULL: the defaults). */
CTX_API int ctx_signal_notify_opts(ctx_t *parent, const int *sigs, size_t n,
                                   const ctx_signal_opts_t *opts, ctx_t **out);

/*
 * ctx_signal_of - the signal whose arrival ended `c` (directly or through
 * an ancestor), or 0 if c is not done or was ended otherwise.
 */
CTX_API int ctx_signal_of(const ctx_t *c);

#ifdef __cplusplus
}
#endif

#endif /* CTX_SIG_H */
