/* SPDX-License-Identifier: MIT */
/*
 * What the files of src/sync share: the worker pool's task records (the
 * pool runs each submitted task exactly once on one of its threads) and a
 * few accessors of private layouts.
 */
#ifndef CTX_SYNC_INT_H
#define CTX_SYNC_INT_H

#include "internal.h"

#include <ctx/ctx.h>

/*
 * A task: a group's function to run. The submitter fills one (on its
 * stack) and the pool copies it into its queue; the worker that runs it
 * copies it out again, so no task costs an allocation. With the queue's
 * sequence word it fills one cache line.
 */
struct ctx__task {
    struct ctx_group *g;
    ctx_task_fn fn;
    void *arg;
    char name[32]; /* for dumps; "" if unnamed */
};

/* Run a task on a worker, and finish it in its group (group.c). */
void ctx__task_run(struct ctx__task *t);

/* The thread running t ended inside it (pthread_exit): finish t as if it
 * had returned ECANCELED (group.c). */
void ctx__task_lost(struct ctx__task *t);

/*
 * Submit a copy of *t to run once on a pool thread. Returns 0 (it will
 * run exactly once); EAGAIN if the pool had to start a thread and could
 * not; ENOMEM if the queue was full and its overflow could not grow. On
 * error it will not run.
 */
int ctx__pool_submit(const struct ctx__task *t);

/* The task the calling thread is running, or NULL. */
const struct ctx__task *ctx__pool_current(void);

/* The element size of a channel (chan.c). */
size_t ctx__chan_elem_size(ctx_chan_t *ch);

#endif /* CTX_SYNC_INT_H */
