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
 * A task: what to run. The submitter fills one (on its stack) and the pool
 * copies it into its queue; the worker that runs it copies it out again,
 * so no task costs an allocation.
 */
struct ctx__task {
    void (*run)(struct ctx__task *t);  /* runs the task on a worker */
    void (*lost)(struct ctx__task *t); /* the thread died inside run */
    struct ctx_group *g;               /* NULL if not a group's */
    ctx_task_fn fn;
    void *arg;
    char name[32]; /* for dumps; "" if unnamed */
};

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
