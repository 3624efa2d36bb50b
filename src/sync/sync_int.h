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

/* Task states, for dumps. */
#define TASK_QUEUED  1
#define TASK_RUNNING 2

struct ctx__task {
    struct ctx__task *next;            /* pool queue; guarded by its lock */
    void (*run)(struct ctx__task *t);  /* immutable; owns t from then on */
    void (*lost)(struct ctx__task *t); /* the thread died inside run */
    struct ctx_group *g;               /* immutable; NULL if not a group's */
    ctx_task_fn fn;                    /* immutable */
    void *arg;                         /* immutable */
    ctx_time_t queued_at;              /* immutable: when submitted */
    ctx_time_t started_at;             /* written by the worker */
    char name[32];                     /* immutable */
};

/*
 * Submit `t` to run on a pool thread. Returns 0 (t will run exactly once)
 * or EAGAIN: the pool had to start a thread and could not (t will not run
 * and is still the caller's).
 */
int ctx__pool_submit(struct ctx__task *t);

/* The task the calling thread is running, or NULL. */
struct ctx__task *ctx__pool_current(void);

/* The element size of a channel (chan.c). */
size_t ctx__chan_elem_size(ctx_chan_t *ch);

#endif /* CTX_SYNC_INT_H */
