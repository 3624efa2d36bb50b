/* SPDX-License-Identifier: MIT */
/*
 * Channels: bounded multi-producer multi-consumer queues of fixed-size
 * elements, with Go's semantics (capacity 0 is a rendezvous, close wakes
 * everyone), a select over several of them plus a context, and pipeline
 * stages that declare what happens to queued items on cancellation.
 *
 * Every blocking call takes a context and returns its error once it is
 * done: a producer blocked on a full channel does not hang. An operation
 * either happens or reports an error and has no effect, never both.
 */
#ifndef CTX_CHAN_H
#define CTX_CHAN_H

#include <ctx/ctx.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ctx_chan ctx_chan_t;
typedef struct ctx_group ctx_group_t; /* <ctx/group.h> */

/*
 * ctx_chan_new - a channel of elements of `elem_size` bytes holding up to
 * `capacity` of them; capacity 0 makes every send wait for a receiver.
 * Elements are copied in and out.
 *
 * Returns: 0 and the channel in *out (freed with ctx_chan_free).
 * Errors: EINVAL if elem_size is 0 or out is NULL; ENOMEM (also when
 * capacity * elem_size overflows).
 * Go: make(chan T, capacity).
 */
CTX_API int ctx_chan_new(size_t capacity, size_t elem_size, ctx_chan_t **out);

/*
 * ctx_chan_send - copy *elem into the channel, waiting for room (or, for
 * capacity 0, for a receiver to take it).
 *
 * Returns: 0 once sent.
 * Errors: EPIPE if the channel is or becomes closed (not sent);
 * ECANCELED or ETIMEDOUT once c is done (not sent); EINVAL if ch, c or
 * elem is NULL.
 * Blocks: yes. Go: ch <- v (but a closed channel is an error, not a panic).
 */
CTX_API int ctx_chan_send(ctx_chan_t *ch, ctx_t *c, const void *elem);

/*
 * ctx_chan_recv - take the oldest element into *elem, waiting for one.
 *
 * Elements sent before close are still received after it.
 *
 * Returns: 0 with *elem filled.
 * Errors: EPIPE if the channel is closed and empty; ECANCELED or
 * ETIMEDOUT once c is done (nothing taken); EINVAL for NULL arguments.
 * Blocks: yes. Go: v, ok := <-ch.
 */
CTX_API int ctx_chan_recv(ctx_chan_t *ch, ctx_t *c, void *elem);

/* ctx_chan_try_send - send without waiting: EAGAIN if it would block. */
CTX_API int ctx_chan_try_send(ctx_chan_t *ch, const void *elem);

/* ctx_chan_try_recv - receive without waiting: EAGAIN if it would block. */
CTX_API int ctx_chan_try_recv(ctx_chan_t *ch, void *elem);

/*
 * ctx_chan_close - close the channel: later sends fail with EPIPE, blocked
 * senders return EPIPE, receivers take what is buffered and then get
 * EPIPE. Closing twice, or NULL, does nothing.
 * Go: close(ch) (closing twice is not a panic here).
 */
CTX_API void ctx_chan_close(ctx_chan_t *ch);

/*
 * ctx_chan_drain - close the channel and hand every element still buffered
 * to fn(elem, arg), oldest first, on this thread. With it, "every element
 * sent is either received or drained": a send either completed before the
 * close (and its element is received or drained) or fails with EPIPE.
 *
 * Returns: the number of elements handed to fn (fn may be NULL to drop
 * them); 0 for NULL ch.
 */
CTX_API size_t ctx_chan_drain(ctx_chan_t *ch, void (*fn)(void *elem, void *arg),
                              void *arg);

/* ctx_chan_len - elements buffered now. ctx_chan_cap - the capacity. */
CTX_API size_t ctx_chan_len(ctx_chan_t *ch);
CTX_API size_t ctx_chan_cap(ctx_chan_t *ch);

/*
 * ctx_chan_free - free the channel; elements still buffered are dropped.
 * NULL does nothing. Freeing a channel a thread is blocked on is a misuse
 * (asserted in debug builds).
 */
CTX_API void ctx_chan_free(ctx_chan_t *ch);

/* ------------------------------------------------------------ select */

#define CTX_CHAN_SEND 1
#define CTX_CHAN_RECV 2

/* One case of a select. A NULL channel is never ready (Go's nil chan). */
typedef struct ctx_chan_op {
    ctx_chan_t *ch;
    int dir;    /* CTX_CHAN_SEND or CTX_CHAN_RECV */
    void *elem; /* what to send, or where to receive */
} ctx_chan_op_t;

/*
 * ctx_chan_select - do exactly one of the `n` operations, the first that
 * can proceed; if several can at once, one of them at random (as Go's
 * select). Waits until one can, or until `c` is done.
 *
 * A receive from a closed, empty channel and a send to a closed channel
 * can always proceed: they are chosen and report EPIPE.
 *
 * Returns: the result of the chosen operation (0, or EPIPE) with its index
 * in *chosen.
 * Errors: ECANCELED or ETIMEDOUT once c is done (no operation done,
 * *chosen = n); EINVAL if c, ops or chosen is NULL, n is 0, or a case has
 * a bad direction or a NULL elem.
 * Blocks: yes. Go: select { case ...: ... case <-ctx.Done(): ... }.
 */
CTX_API int ctx_chan_select(ctx_t *c, ctx_chan_op_t *ops, size_t n,
                            size_t *chosen);

/*
 * ctx_chan_try_select - ctx_chan_select that does not wait: EAGAIN (and
 * *chosen = n) if no operation can proceed now. Go: select with default.
 */
CTX_API int ctx_chan_try_select(ctx_chan_op_t *ops, size_t n, size_t *chosen);

/* ------------------------------------------------------------ pipelines */

/*
 * What a stage does with work not yet done when its context is done.
 */
typedef enum ctx_stage_policy {
    /* Stop; elements still queued on the input are dropped (handed to
     * `drain`, if set, so they can be freed). */
    CTX_STAGE_DROP,
    /* Stop taking elements; every element already sent to the input is
     * handed to `drain`: each one is processed or drained, none lost. */
    CTX_STAGE_DRAIN,
    /* Stop, then call `flush` once per worker with a fresh context bounded
     * by `flush_timeout`, to send a partial result downstream; queued
     * input is then dropped as with CTX_STAGE_DROP. */
    CTX_STAGE_EMIT_PARTIAL
} ctx_stage_policy_t;

/*
 * Processes one element of the input (`elem` points to a copy owned by
 * the stage for the duration of the call); may send to `out` (NULL for a
 * sink). A non-zero result fails the group, as any task's.
 */
typedef int (*ctx_stage_fn)(ctx_t *c, void *elem, ctx_chan_t *out, void *arg);

typedef struct ctx_stage_opts {
    ctx_stage_policy_t policy;
    int workers;                          /* tasks running fn; 0 = 1 */
    void (*drain)(void *elem, void *arg); /* see the policies */
    int (*flush)(ctx_t *c, ctx_chan_t *out, void *arg);
    ctx_time_t flush_timeout; /* 0: one second */
    void *arg;                /* for fn, drain, flush */
    const char *name;         /* task names, for dumps */
} ctx_stage_opts_t;

#define CTX_STAGE_OPTS_INIT                                                    \
    {                                                                          \
        CTX_STAGE_DROP, 1, NULL, NULL, 0, NULL, NULL                           \
    }

/*
 * ctx_stage_start - run a pipeline stage as tasks of group `g`: each of
 * `workers` tasks receives from `in` and calls fn. When `in` is closed
 * and empty the workers return, and the last one closes `out` (so stages
 * chain like Go's pipelines). When the group's context is done, the
 * stage applies its policy, then closes `out`.
 *
 * Returns: 0 when at least one worker was accepted by the group (if some
 * could not start, the stage runs with those that did).
 * Errors: EINVAL if g, in or fn is NULL, workers < 0, or the policy is
 * unknown or needs a callback that is missing (EMIT_PARTIAL without
 * flush); otherwise as ctx_group_go, when no worker could start.
 */
CTX_API int ctx_stage_start(ctx_group_t *g, ctx_chan_t *in, ctx_chan_t *out,
                            ctx_stage_fn fn, const ctx_stage_opts_t *opts);

#ifdef __cplusplus
}
#endif

#endif /* CTX_CHAN_H */
