/* SPDX-License-Identifier: MIT */
/*
 * Groups: Go's errgroup and Trio's nursery in one. Tasks started in a group
 * run on a process-wide pool of worker threads; the first task to fail
 * cancels the others; no task outlives ctx_group_wait or ctx_group_free.
 *
 *     ctx_group_t *g;
 *     if ((rc = ctx_group_new(parent, &g)) != 0)
 *         return rc;
 *     ctx_group_set_limit(g, 8);               // at most 8 at once
 *     for (int i = 0; i < n; i++)
 *         if ((rc = ctx_group_go(g, fetch, &jobs[i])) != 0)
 *             break;                           // cancelled, or EAGAIN
 *     rc2 = ctx_group_wait(g);                 // first task error, or 0
 *     ctx_group_free(g);
 *
 * A task is `int fn(ctx_t *c, void *arg)`: `c` is the group's context
 * (borrowed: valid while the task runs); a non-zero return is an error
 * that cancels the group with that code as the cause.
 */
#ifndef CTX_GROUP_H
#define CTX_GROUP_H

#include <ctx/ctx.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ctx_group ctx_group_t;
typedef int (*ctx_task_fn)(ctx_t *c, void *arg);

/*
 * ctx_group_new - a group whose context is a child of `parent`.
 *
 * Returns: 0 and the group in *out (owned by the caller, freed with
 * ctx_group_free).
 * Errors: EINVAL if parent or out is NULL; ENOMEM. On error *out is NULL.
 * Go: errgroup.WithContext.
 */
CTX_API int ctx_group_new(ctx_t *parent, ctx_group_t **out);

/*
 * ctx_group_ctx - the group's context: done when the parent is, when a
 * task fails (ECANCELED, cause = the task's result), or once
 * ctx_group_wait has returned. Borrowed: valid until ctx_group_free;
 * ctx_retain it to keep it longer. NULL for NULL.
 */
CTX_API ctx_t *ctx_group_ctx(ctx_group_t *g);

/*
 * ctx_group_set_limit - at most `n` tasks of this group run at once; a
 * negative n removes the limit (the default). Lowering the limit below the
 * number running only delays later ctx_group_go calls.
 *
 * Returns: 0; EINVAL if g is NULL or n is 0 (no task could ever start).
 * Go: errgroup.(*Group).SetLimit.
 */
CTX_API int ctx_group_set_limit(ctx_group_t *g, int n);

/*
 * ctx_group_go - start fn(ctx, arg) as a task of the group.
 *
 * Returns 0 when it accepted fn; an accepted fn always runs, exactly once
 * (it may find the context done and return at once). Below the limit it
 * does not block. At the limit it blocks until a slot frees or the
 * group's context is done; in the second case it returns that context's
 * error and fn never runs (unlike Go's errgroup, golang/go#27837).
 * May be called from tasks of the same group.
 *
 * Returns: 0 if accepted.
 * Errors: EINVAL if g or fn is NULL; ECANCELED or ETIMEDOUT if the group's
 * context was done while waiting for a slot; ENOMEM; EAGAIN if the pool
 * needed a new thread and could not make one. On error fn does not run and
 * the group is unchanged.
 * Blocks: at the limit, as above.
 * Go: errgroup.(*Group).Go.
 */
CTX_API int ctx_group_go(ctx_group_t *g, ctx_task_fn fn, void *arg);

/*
 * ctx_group_try_go - ctx_group_go that never blocks: EAGAIN at the limit.
 *
 * Errors: as ctx_group_go, plus EAGAIN at the limit.
 * Go: errgroup.(*Group).TryGo.
 */
CTX_API int ctx_group_try_go(ctx_group_t *g, ctx_task_fn fn, void *arg);

/* Options for ctx_group_go_opts; start from CTX_GO_OPTS_INIT. */
typedef struct ctx_go_opts {
    const char *name; /* shown by ctx_dump; copied (first 31 bytes) */
    bool try_only;    /* do not block at the limit: EAGAIN instead */
} ctx_go_opts_t;

#define CTX_GO_OPTS_INIT                                                       \
    {                                                                          \
        NULL, false                                                            \
    }

/*
 * ctx_group_go_opts - ctx_group_go with options (a task name for dumps and
 * metrics; try_only). NULL opts means the defaults.
 *
 * Errors: as ctx_group_go / ctx_group_try_go.
 */
CTX_API int ctx_group_go_opts(ctx_group_t *g, const ctx_go_opts_t *opts,
                              ctx_task_fn fn, void *arg);

/*
 * ctx_task_set_name - rename the calling task for ctx_dump (a connection
 * task showing the request it serves, say): copies the first 31 bytes of
 * `name`, and restarts the age ctx_dump shows. Costs a few stores, no
 * system call, no allocation.
 *
 * Returns: 0; EINVAL if name is NULL; ESRCH if the caller is not a task
 * of a group (nothing changes).
 * Thread safety: affects the calling task only.
 */
CTX_API int ctx_task_set_name(const char *name);

/*
 * ctx_group_wait - wait until every accepted task has returned, then
 * cancel the group's context (as Go's errgroup does).
 *
 * Tasks started by tasks of the group are waited for too. Not cancellable:
 * no task outlives it (cancel the group's context to make them stop).
 *
 * Returns: the result of the first task that returned non-zero, or 0.
 * Errors: EINVAL if g is NULL.
 * Blocks: until the tasks have returned.
 * Go: errgroup.(*Group).Wait.
 */
CTX_API int ctx_group_wait(ctx_group_t *g);

/*
 * ctx_group_free - wait as ctx_group_wait does if tasks still run, then
 * free the group and release its context. NULL does nothing. Calling it
 * from a task of the same group is a misuse (it would wait for itself),
 * caught by an assertion in debug builds and answered by returning without
 * freeing in release builds.
 */
CTX_API void ctx_group_free(ctx_group_t *g);

/*
 * The worker pool behind every group: process-wide, started on first use,
 * growing when tasks wait (a blocked task never keeps another from
 * starting) and shrinking when workers stay idle. Its threads block every
 * signal. A task must return to end: calling pthread_exit from a task is
 * a misuse (asserted in debug builds; in release builds the task counts as
 * returning ECANCELED and the worker thread is lost).
 */

/*
 * ctx_pool_set_idle_timeout - how long an idle worker waits for work
 * before it exits (default 10 s).
 *
 * Returns: 0; EINVAL if d <= 0.
 */
CTX_API int ctx_pool_set_idle_timeout(ctx_time_t d);

#ifdef __cplusplus
}
#endif

#endif /* CTX_GROUP_H */
