/* SPDX-License-Identifier: MIT */
/*
 * Contexts: trees of cancellable work carrying a deadline, a cause and
 * values, as Go's package context. Including this header brings in the
 * whole libctx API.
 *
 * A context is an opaque, reference-counted object. Cancelling one cancels
 * all of its descendants before the call returns; observing cancellation
 * (ctx_err, ctx_done) is one atomic load. Every function here is safe to
 * call from any thread on any context the caller holds a reference to.
 *
 * The usual shape, Go's `ctx, cancel := context.WithTimeout(p, d); defer
 * cancel()`:
 *
 *     ctx_t *c;
 *     int rc = ctx_with_timeout(parent, 2 * CTX_SECOND, &c);
 *     if (rc != 0)
 *         return rc;                    // ENOMEM, EAGAIN; c is NULL
 *     rc = do_work(c);                  // polls ctx_done(c) or blocks in
 *                                       // calls that take c
 *     ctx_cancel(c);                    // stops its timer and children
 *     ctx_release(c);
 */
#ifndef CTX_CTX_H
#define CTX_CTX_H

#include <ctx/base.h>

#include <errno.h>

#ifdef __cplusplus
extern "C" {
#endif

/* An opaque, reference-counted context. */
typedef struct ctx ctx_t;

/* A registration made by ctx_after_func. */
typedef struct ctx_after ctx_after_t;

/*
 * ctx_background - the root of every context tree: never done, no deadline,
 * no values. It is a static object: ctx_retain and ctx_release do nothing
 * to it, and ctx_cancel leaves it alone.
 *
 * Returns: the background context (never NULL).
 * Go: context.Background().
 */
CTX_API ctx_t *ctx_background(void);

/*
 * ctx_todo - like ctx_background, but marks a place where the right context
 * is not known yet. A distinct static object that behaves as the background.
 *
 * Go: context.TODO().
 */
CTX_API ctx_t *ctx_todo(void);

/*
 * ctx_with_cancel - a child of `parent` that can be cancelled on its own.
 *
 * The child is done when ctx_cancel is called on it or when its parent is
 * done, whichever comes first; in the second case it reports the parent's
 * error and cause. If the parent is already done the child is born done.
 * The child holds a reference to its parent; the parent does not keep the
 * child alive.
 *
 * Returns: 0 and a new context in *out, holding one reference owned by the
 * caller.
 * Errors: EINVAL if parent or out is NULL; ENOMEM. On error *out is NULL
 * (when out is not NULL) and nothing changed.
 * Go: context.WithCancel / WithCancelCause.
 */
CTX_API int ctx_with_cancel(ctx_t *parent, ctx_t **out);

/*
 * ctx_with_deadline - a child of `parent` that is done at `deadline`
 * (absolute, on CLOCK_MONOTONIC / ctx_now()).
 *
 * The child's deadline is the earlier of `deadline` and the parent's. When
 * its own deadline passes the child is done with ETIMEDOUT and its cause is
 * ETIMEDOUT (no text). A deadline already passed gives a child that is done
 * at once. A deadline of CTX_NO_DEADLINE, or one not earlier than the
 * parent's, arms no timer (the parent's timer will end both). Otherwise one
 * process-wide timer thread, started on first use, serves the deadline; no
 * thread is made per context. ctx_cancel or ctx_release disarms the timer.
 *
 * Returns: 0 and a new context in *out (one reference, the caller's).
 * Errors: EINVAL if parent or out is NULL; ENOMEM; EAGAIN if the timer
 * thread could not be started. On error *out is NULL and nothing changed.
 * Go: context.WithDeadline.
 */
CTX_API int ctx_with_deadline(ctx_t *parent, ctx_time_t deadline, ctx_t **out);

/*
 * ctx_with_timeout - ctx_with_deadline(parent, ctx_now() + timeout, out),
 * saturating at CTX_NO_DEADLINE. A timeout <= 0 is not an error: the child
 * is done at once with ETIMEDOUT, as in Go.
 *
 * Errors: as ctx_with_deadline.
 * Go: context.WithTimeout.
 */
CTX_API int ctx_with_timeout(ctx_t *parent, ctx_time_t timeout, ctx_t **out);

/*
 * ctx_with_deadline_cause - ctx_with_deadline, but when this context's own
 * deadline passes its cause is `code` with the text `why` (copied; may be
 * NULL). ctx_err still reports ETIMEDOUT. A `code` of 0 means ETIMEDOUT.
 * If the parent's deadline is earlier, the parent's timer ends the child
 * with the parent's cause, as in Go.
 *
 * Errors: as ctx_with_deadline.
 * Go: context.WithDeadlineCause.
 */
CTX_API int ctx_with_deadline_cause(ctx_t *parent, ctx_time_t deadline,
                                    int code, const char *why, ctx_t **out);

/*
 * ctx_with_value - a child of `parent` that carries `value` under `key`.
 *
 * Keys are compared by address: use the address of a static object of your
 * own, so no two libraries collide. The child is cancelled with its parent
 * like any child (and ctx_cancel on it cancels it and its descendants).
 * `free_value`, when not NULL, is called with `value` once, on the thread
 * that releases the last reference, when the context is freed.
 *
 * Returns: 0 and a new context in *out (one reference, the caller's).
 * Errors: EINVAL if parent, key or out is NULL; ENOMEM. On error *out is
 * NULL, nothing changed and free_value is not called.
 * Go: context.WithValue.
 */
CTX_API int ctx_with_value(ctx_t *parent, const void *key, void *value,
                           void (*free_value)(void *), ctx_t **out);

/*
 * ctx_without_cancel - a context with the values of `parent` that is never
 * done and has no deadline, for cleanup work that must outlive a cancelled
 * request (give it its own bound with ctx_with_timeout). ctx_cancel on it
 * does nothing; its own children can still be cancelled.
 *
 * Returns: 0 and a new context in *out (one reference, the caller's).
 * Errors: EINVAL if parent or out is NULL; ENOMEM.
 * Go: context.WithoutCancel.
 */
CTX_API int ctx_without_cancel(ctx_t *parent, ctx_t **out);

/*
 * ctx_merge - a context that is done as soon as any of `parents` is done,
 * with that parent's error and cause (Go lacks it).
 *
 * Its deadline is the earliest of the parents' deadlines; ctx_value looks
 * the key up in each parent in array order. If a parent is already done,
 * the first such parent in array order decides the error and cause. No
 * helper thread is made: the merged context is linked into each parent as
 * a child. A parent may appear more than once.
 *
 * Returns: 0 and a new context in *out (one reference, the caller's).
 * Errors: EINVAL if parents or out is NULL, n is 0, or an element is NULL;
 * ENOMEM. On error *out is NULL and nothing changed.
 */
CTX_API int ctx_merge(ctx_t *const *parents, size_t n, ctx_t **out);

/*
 * ctx_cancel - cancel `c` and every descendant, with cause ECANCELED.
 *
 * Same as ctx_cancel_cause(c, ECANCELED, NULL).
 * Go: the CancelFunc of context.WithCancel.
 */
CTX_API void ctx_cancel(ctx_t *c);

/*
 * ctx_cancel_cause - cancel `c` and every descendant with cause `code` and
 * the text `why` (copied; may be NULL).
 *
 * The first cancellation wins; later calls do nothing. Before the call
 * returns, `c` and all of its descendants are done: ctx_err is ECANCELED,
 * ctx_cause is `code` (ECANCELED when `code` is 0). Threads blocked in
 * ctx_wait or polling ctx_fd are woken; after-functions registered on any
 * of them run on this thread, after every state has been set. Memory
 * writes made before this call are visible to any thread that then sees
 * the context done. Ancestors and siblings are never touched. Propagation
 * is iterative: any depth or breadth uses a constant amount of stack.
 *
 * Cancelling the background, ctx_todo or a ctx_without_cancel context, or
 * NULL, does nothing. If the text cannot be copied for lack of memory, the
 * cause keeps its code and has no text.
 *
 * Blocks: only for the time the after-functions take to run.
 * Go: the CancelCauseFunc of context.WithCancelCause.
 */
CTX_API void ctx_cancel_cause(ctx_t *c, int code, const char *why);

/*
 * ctx_retain - take one more reference to `c`.
 *
 * Returns: c (NULL for NULL). The background and ctx_todo are not counted.
 */
CTX_API ctx_t *ctx_retain(ctx_t *c);

/*
 * ctx_release - drop one reference to `c`. Dropping the last one unlinks
 * `c` from its parents in O(1), disarms its timer, closes its ctx_fd
 * descriptor, runs its free_value, drops its references to its parents,
 * and frees it. Releasing NULL, the background or ctx_todo does nothing.
 *
 * Releasing does not cancel: a released context that has children (they
 * hold references to it) lives on until they are released.
 */
CTX_API void ctx_release(ctx_t *c);

/*
 * ctx_err - whether `c` is done, and how.
 *
 * Returns: 0 while not done; ECANCELED once cancelled (directly, through
 * an ancestor, or by a merged parent); ETIMEDOUT once a deadline passed;
 * EINVAL if c is NULL.
 * Cost: one atomic load with acquire ordering; no lock.
 * Go: ctx.Err().
 */
CTX_API int ctx_err(const ctx_t *c);

/*
 * ctx_done - ctx_err(c) != 0. The cancel flag for loops that cannot take a
 * context: one atomic load. True for NULL.
 *
 * Go: select { case <-ctx.Done(): ... default: }.
 */
CTX_API bool ctx_done(const ctx_t *c);

/*
 * ctx_cause - why `c` is done.
 *
 * Returns: 0 while not done; otherwise the cause code: the code given to
 * ctx_cancel_cause (ECANCELED for ctx_cancel), ETIMEDOUT or the code of
 * ctx_with_deadline_cause for a deadline; a context cancelled through a
 * parent reports the parent's cause. EINVAL if c is NULL.
 * When `why` is not NULL it receives the cause text, or NULL if none was
 * given; the text lives as long as `c`.
 * Go: context.Cause(ctx).
 */
CTX_API int ctx_cause(const ctx_t *c, const char **why);

/*
 * ctx_deadline - the time at which `c` will be done by a deadline, its own
 * or an ancestor's (for a merge, the earliest parent's).
 *
 * Returns: true and *deadline set (when not NULL) if there is a deadline;
 * false, with *deadline = CTX_NO_DEADLINE, if there is none or c is NULL.
 * Go: ctx.Deadline().
 */
CTX_API bool ctx_deadline(const ctx_t *c, ctx_time_t *deadline);

/*
 * ctx_value - the value stored under `key` by the nearest ctx_with_value
 * between `c` and the root (for a merge: in each parent, in array order).
 *
 * Returns: the value, or NULL if no context on the way carries `key` (or c
 * or key is NULL).
 * Go: ctx.Value(key).
 */
CTX_API void *ctx_value(const ctx_t *c, const void *key);

/*
 * ctx_wait - block the calling thread until `c` is done or `timeout`
 * nanoseconds have passed.
 *
 * The thread parks on a futex; nothing polls. It returns within tens of
 * microseconds of the cancellation. A timeout <= 0 checks once without
 * blocking; CTX_NO_DEADLINE waits without a limit. While the test clock is
 * enabled the timeout is measured on it (see <ctx/obs.h>).
 *
 * Returns: 0 once c is done; ETIMEDOUT if the timeout passed first;
 * EINVAL if c is NULL.
 * Blocks: yes. Go: <-ctx.Done() in a select with time.After.
 */
CTX_API int ctx_wait(ctx_t *c, ctx_time_t timeout);

/*
 * ctx_fd - a file descriptor that becomes readable when `c` is done, for
 * poll, epoll, libuv or io_uring loops.
 *
 * An eventfd made on the first call (O_CLOEXEC, non-blocking) and owned by
 * `c`: later calls return the same descriptor; ctx_release of the last
 * reference closes it. Once readable it stays readable; poll it, do not
 * read it, and never close it yourself.
 *
 * Returns: the descriptor (>= 0); -1 with errno set on error.
 * Errors: EINVAL if c is NULL; EMFILE, ENFILE, ENOMEM from eventfd(2).
 */
CTX_API int ctx_fd(ctx_t *c);

/*
 * ctx_after_func - arrange for fn(arg) to run once, after `c` is done.
 *
 * It runs on the thread that cancels `c` (or an ancestor, or the timer
 * thread for a deadline), after the whole cancelled tree is marked done
 * and with no libctx lock held; if `c` is already done it runs at once on
 * the calling thread, before ctx_after_func returns. Keep fn short and
 * non-blocking. fn may call any libctx function, including
 * ctx_after_stop on its own registration. If `c` can never be done (the
 * background, a ctx_without_cancel context) fn never runs.
 *
 * The registration holds a reference to `c` until ctx_after_stop; every
 * successful call must be matched by exactly one ctx_after_stop.
 *
 * Returns: 0 and the registration in *out.
 * Errors: EINVAL if c, fn or out is NULL; ENOMEM. On error fn does not run
 * and *out is NULL.
 * Go: context.AfterFunc.
 */
CTX_API int ctx_after_func(ctx_t *c, void (*fn)(void *), void *arg,
                           ctx_after_t **out);

/*
 * ctx_after_stop - stop a registration made by ctx_after_func and free it.
 *
 * After it returns, fn will not run and is not running, so `arg` may be
 * freed, with one exception: called from inside fn itself, it returns at
 * once (fn is, of course, still running).
 *
 * Returns: true if it kept fn from running; false if fn has run or is
 * running (it then waited until fn returned, unless called from fn or from
 * another after-function run by the same cancellation). NULL: false.
 * Blocks: while fn runs on another thread.
 * Go: the stop function returned by context.AfterFunc.
 */
CTX_API bool ctx_after_stop(ctx_after_t *a);

/*
 * The poll, inline. The first 32-bit word of every context is its state
 * word, whose low 8 bits hold the error (0, ECANCELED or ETIMEDOUT), so
 * ctx_err and ctx_done compile to one acquire load (a plain load on x86)
 * and a mask, with no call. The functions above still exist (their
 * address can be taken; `(ctx_err)(c)` calls them). Define
 * CTX_NO_INLINE_POLL before including to use the calls only.
 */
#ifndef CTX_NO_INLINE_POLL
struct ctx__head {
    uint32_t state; /* layout shared with the library; not API */
};

static inline int ctx__err_inline(const ctx_t *c)
{
    if (!c)
        return EINVAL;
    return (int)(__atomic_load_n(
                     &((const struct ctx__head *)(const void *)c)->state,
                     __ATOMIC_ACQUIRE) &
                 0xffu);
}

#define ctx_err(c)  ctx__err_inline(c)
#define ctx_done(c) (ctx__err_inline(c) != 0)
#endif

#ifdef __cplusplus
}
#endif

#include <ctx/obs.h>
#include <ctx/group.h>
#include <ctx/sync.h>
#include <ctx/chan.h>
#include <ctx/io.h>
#include <ctx/sig.h>
#include <ctx/proc.h>
#include <ctx/force.h>
#include <ctx/shutdown.h>
#include <ctx/parse.h>

#endif /* CTX_CTX_H */
