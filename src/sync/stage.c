/* SPDX-License-Identifier: MIT */
/*
 * Pipeline stages: tasks of a group that take elements from one channel,
 * process them and pass results to the next, with a declared policy for
 * the work left when the group is cancelled.
 *
 * DESIGN
 *
 * The stage record is shared by its workers and freed by the last one to
 * return, which also closes the output channel (Go's pipeline rule: a
 * stage closes what it sends on once its input is exhausted, so the next
 * stage ends too). On cancellation each worker applies the policy:
 * ctx_chan_drain closes the input, so a producer's send either completed
 * before (its element is then received by a worker or drained) or fails
 * with EPIPE; the drain itself is done once, by whichever worker gets to
 * it first, and the others find nothing left.
 */
#include "sync_int.h"

#include <errno.h>
#include <string.h>

struct stage {
    ctx_chan_t *in;
    ctx_chan_t *out;
    ctx_stage_fn fn;
    ctx_stage_opts_t opts;
    size_t esize;
    atomic_int workers; /* still running; the last frees the stage */
};

static void on_cancel(struct stage *st, ctx_t *gctx)
{
    ctx_t *bg, *fc;

    if (st->opts.policy == CTX_STAGE_EMIT_PARTIAL && st->opts.flush) {
        ctx_time_t d =
            st->opts.flush_timeout > 0 ? st->opts.flush_timeout : CTX_SECOND;
        if (ctx_without_cancel(gctx, &bg) == 0) {
            if (ctx_with_timeout(bg, d, &fc) == 0) {
                st->opts.flush(fc, st->out, st->opts.arg);
                ctx_cancel(fc);
                ctx_release(fc);
            }
            ctx_release(bg);
        }
    }
    ctx_chan_drain(st->in, st->opts.drain, st->opts.arg);
}

/* The last worker out: what a failed worker left queued is dropped or
 * drained, the next stage is told (out closed), the stage freed. */
static void finish(struct stage *st, bool failed)
{
    if (failed)
        ctx_chan_drain(st->in, st->opts.drain, st->opts.arg);
    ctx_chan_close(st->out);
    ctx__free(st);
}

static int worker(ctx_t *gctx, void *arg)
{
    struct stage *st = arg;
    void *elem = ctx__malloc(st->esize);
    int rc = 0;

    if (!elem) {
        rc = ENOMEM;
    } else {
        for (;;) {
            int r = ctx_chan_recv(st->in, gctx, elem);
            if (r == EPIPE)
                break; /* input closed and empty: done */
            if (r != 0) {
                on_cancel(st, gctx);
                break;
            }
            if ((rc = st->fn(gctx, elem, st->out, st->opts.arg)) != 0)
                break;
        }
        ctx__free(elem);
    }
    if (atomic_fetch_sub(&st->workers, 1) == 1)
        finish(st, rc != 0 || ctx_done(gctx));
    return rc;
}

int ctx_stage_start(ctx_group_t *g, ctx_chan_t *in, ctx_chan_t *out,
                    ctx_stage_fn fn, const ctx_stage_opts_t *opts)
{
    static const ctx_stage_opts_t defaults = CTX_STAGE_OPTS_INIT;
    struct stage *st;
    ctx_go_opts_t go = CTX_GO_OPTS_INIT;
    int n, rc = 0, started = 0;

    if (!opts)
        opts = &defaults;
    if (!g || !in || !fn ||
        (opts->policy != CTX_STAGE_DROP && opts->policy != CTX_STAGE_DRAIN &&
         opts->policy != CTX_STAGE_EMIT_PARTIAL) ||
        (opts->policy == CTX_STAGE_EMIT_PARTIAL && !opts->flush) ||
        opts->workers < 0)
        return EINVAL;
    n = opts->workers ? opts->workers : 1;
    st = ctx__calloc(1, sizeof *st);
    if (!st)
        return ENOMEM;
    st->in = in;
    st->out = out;
    st->fn = fn;
    st->opts = *opts;
    st->esize = ctx__chan_elem_size(in);
    atomic_init(&st->workers, n);
    go.name = opts->name;
    for (; started < n; started++)
        if ((rc = ctx_group_go_opts(g, &go, worker, st)) != 0)
            break;
    if (started < n) {
        /* Account for the workers that did not start. If none did, the
         * stage is ours to free; if some did and have all returned
         * already, we are the last one out. */
        if (atomic_fetch_sub(&st->workers, n - started) == n - started) {
            if (started)
                finish(st, true);
            else
                ctx__free(st);
        }
        return started ? 0 : rc;
    }
    return 0;
}
