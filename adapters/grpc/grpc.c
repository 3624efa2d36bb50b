/* SPDX-License-Identifier: MIT */
/*
 * gRPC core calls bound to a context: the deadline handed to gRPC, the
 * cancellation handed to grpc_call_cancel_with_status, and on the server
 * a context per incoming call.
 *
 * DESIGN
 *
 * Deadlines. libctx deadlines and gRPC's GPR_CLOCK_MONOTONIC are both
 * CLOCK_MONOTONIC, but gRPC's may be offset (it measures from its own
 * start in some builds), so a deadline crosses over as the time left:
 * gpr_now(MONOTONIC) + (deadline - ctx_now()), and back the same way.
 * gRPC sends it to the server as grpc-timeout, which the server turns
 * into the call's deadline (grpc_call_details.deadline).
 *
 * Cancellation. An after-function of the context cancels the call. It
 * runs on the thread that cancels the context (or the timer thread at
 * the deadline), which is not a gRPC thread unless the user cancels from
 * a gRPC callback (documented). The binding holds a reference to the
 * call, and ctx_after_stop, which waits for a running after-function,
 * comes before that reference is dropped: the after-function never
 * touches a freed call.
 *
 * A unary call waits on a completion queue of its own (pluck) for its one
 * batch; cancelling the call completes that batch with the status given,
 * so the wait ends without any polling.
 *
 * Server. The client's cancellation reaches the server as the completion
 * of a RECV_CLOSE_ON_SERVER batch with `cancelled` set; the watch object
 * is that batch's tag and the storage of that flag, so it lives until
 * the user's completion-queue loop hands it back.
 */
#include <ctx/grpc.h>

#include <grpc/byte_buffer_reader.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ctx_grpc_bind {
    ctx_t *c;
    grpc_call *call;
    ctx_after_t *after;
};

struct ctx_grpc_watch {
    ctx_t *c;
    int cancelled; /* written by gRPC when the batch completes */
};

int ctx_grpc_deadline(const ctx_t *c, gpr_timespec *out)
{
    ctx_time_t d, left;

    if (!c || !out)
        return EINVAL;
    if (!ctx_deadline(c, &d) || d == CTX_NO_DEADLINE) {
        *out = gpr_inf_future(GPR_CLOCK_MONOTONIC);
        return 0;
    }
    left = d - ctx_now();
    if (left < 0)
        left = 0;
    *out = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                        gpr_time_from_nanos(left, GPR_TIMESPAN));
    return 0;
}

/* ------------------------------------------------------------ cancel */

static void cancel_call(void *arg)
{
    struct ctx_grpc_bind *b = arg;
    bool deadline = ctx_err(b->c) == ETIMEDOUT;
    grpc_call_cancel_with_status(
        b->call,
        deadline ? GRPC_STATUS_DEADLINE_EXCEEDED : GRPC_STATUS_CANCELLED,
        deadline ? "context deadline exceeded" : "context canceled", NULL);
}

int ctx_grpc_bind(ctx_t *c, grpc_call *call, ctx_grpc_bind_t **out)
{
    struct ctx_grpc_bind *b;
    int rc;

    if (out)
        *out = NULL;
    if (!c || !call || !out)
        return EINVAL;
    if (!(b = calloc(1, sizeof *b)))
        return ENOMEM;
    b->c = ctx_retain(c);
    b->call = call;
    grpc_call_ref(call);
    if ((rc = ctx_after_func(c, cancel_call, b, &b->after)) != 0) {
        grpc_call_unref(call);
        ctx_release(c);
        free(b);
        return rc;
    }
    *out = b;
    return 0;
}

void ctx_grpc_unbind(ctx_grpc_bind_t *b)
{
    if (!b)
        return;
    ctx_after_stop(b->after); /* waits for a running cancel_call */
    grpc_call_unref(b->call);
    ctx_release(b->c);
    free(b);
}

/* ------------------------------------------------------------ unary */

static void set_status(ctx_grpc_status_t *st, grpc_status_code code,
                       const char *msg, size_t len)
{
    st->code = code;
    if (len >= sizeof st->message)
        len = sizeof st->message - 1;
    memcpy(st->message, msg, len);
    st->message[len] = '\0';
}

static void set_ctx_status(ctx_grpc_status_t *st, int err)
{
    static const char d[] = "context deadline exceeded",
                      k[] = "context canceled";
    if (err == ETIMEDOUT)
        set_status(st, GRPC_STATUS_DEADLINE_EXCEEDED, d, sizeof d - 1);
    else
        set_status(st, GRPC_STATUS_CANCELLED, k, sizeof k - 1);
}

/* Copy a response message out of gRPC's buffer. */
static int take_message(grpc_byte_buffer *bb, void **resp, size_t *len)
{
    grpc_byte_buffer_reader r;
    grpc_slice all;
    size_t n;

    if (!bb)
        return 0;
    if (!grpc_byte_buffer_reader_init(&r, bb))
        return ENOMEM;
    all = grpc_byte_buffer_reader_readall(&r);
    grpc_byte_buffer_reader_destroy(&r);
    n = GRPC_SLICE_LENGTH(all);
    if (n > 0) {
        if (!(*resp = malloc(n))) {
            grpc_slice_unref(all);
            return ENOMEM;
        }
        memcpy(*resp, GRPC_SLICE_START_PTR(all), n);
        *len = n;
    }
    grpc_slice_unref(all);
    return 0;
}

/* The call's ops: send the request and close, receive everything. */
struct unary {
    grpc_byte_buffer *req, *resp;
    grpc_metadata_array initial, trailing;
    grpc_status_code code;
    grpc_slice details;
    grpc_op ops[6];
};

static void unary_ops(struct unary *u)
{
    memset(u->ops, 0, sizeof u->ops);
    u->ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    u->ops[1].op = GRPC_OP_SEND_MESSAGE;
    u->ops[1].data.send_message.send_message = u->req;
    u->ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    u->ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    u->ops[3].data.recv_initial_metadata.recv_initial_metadata = &u->initial;
    u->ops[4].op = GRPC_OP_RECV_MESSAGE;
    u->ops[4].data.recv_message.recv_message = &u->resp;
    u->ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    u->ops[5].data.recv_status_on_client.status = &u->code;
    u->ops[5].data.recv_status_on_client.status_details = &u->details;
    u->ops[5].data.recv_status_on_client.trailing_metadata = &u->trailing;
}

/* Make the call and wait for its one batch; 0 once it completed. */
static int unary_run(ctx_t *c, grpc_channel *ch, const char *method,
                     struct unary *u)
{
    grpc_completion_queue *cq;
    grpc_call *call = NULL;
    ctx_grpc_bind_t *b = NULL;
    gpr_timespec deadline;
    grpc_slice m;
    grpc_event ev;
    int rc = 0;

    if (!(cq = grpc_completion_queue_create_for_pluck(NULL)))
        return ENOMEM;
    ctx_grpc_deadline(c, &deadline);
    m = grpc_slice_from_copied_string(method);
    call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, m,
                                    NULL, deadline, NULL);
    grpc_slice_unref(m);
    if (!call)
        rc = ENOMEM;
    if (rc == 0)
        rc = ctx_grpc_bind(c, call, &b);
    if (rc == 0) {
        unary_ops(u);
        if (grpc_call_start_batch(call, u->ops, 6, u, NULL) != GRPC_CALL_OK)
            rc = EINVAL;
    }
    if (rc == 0) {
        ev = grpc_completion_queue_pluck(
            cq, u, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type != GRPC_OP_COMPLETE)
            rc = EIO;
    }
    ctx_grpc_unbind(b);
    if (call)
        grpc_call_unref(call);
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_pluck(cq, NULL,
                                       gpr_inf_future(GPR_CLOCK_REALTIME), NULL)
               .type != GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(cq);
    return rc;
}

int ctx_grpc_unary(ctx_t *c, grpc_channel *ch, const char *method,
                   const void *req, size_t req_len, void **resp,
                   size_t *resp_len, ctx_grpc_status_t *st)
{
    struct unary u;
    grpc_slice s;
    int rc;

    if (resp)
        *resp = NULL;
    if (resp_len)
        *resp_len = 0;
    if (st)
        set_status(st, GRPC_STATUS_INVALID_ARGUMENT, "bad argument", 12);
    if (!c || !ch || !method || (!req && req_len) || !resp || !resp_len || !st)
        return EINVAL;
    if ((rc = ctx_err(c)) != 0) {
        set_ctx_status(st, rc); /* no call made, nothing sent */
        return rc;
    }
    memset(&u, 0, sizeof u);
    s = grpc_slice_from_copied_buffer(req ? req : "", req_len);
    u.req = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    u.code = GRPC_STATUS_UNKNOWN;
    u.details = grpc_empty_slice();
    grpc_metadata_array_init(&u.initial);
    grpc_metadata_array_init(&u.trailing);

    rc = unary_run(c, ch, method, &u);
    if (rc == 0) {
        set_status(st, u.code, (const char *)GRPC_SLICE_START_PTR(u.details),
                   GRPC_SLICE_LENGTH(u.details));
        if (u.code == GRPC_STATUS_OK)
            rc = take_message(u.resp, resp, resp_len);
        else if (ctx_done(c) && (u.code == GRPC_STATUS_CANCELLED ||
                                 u.code == GRPC_STATUS_DEADLINE_EXCEEDED))
            rc = ctx_err(c);
        else if (u.code == GRPC_STATUS_DEADLINE_EXCEEDED &&
                 ctx_deadline(c, NULL))
            rc = ETIMEDOUT; /* gRPC's timer at c's deadline, first */
        else
            rc = EIO;
    }
    grpc_byte_buffer_destroy(u.req);
    if (u.resp)
        grpc_byte_buffer_destroy(u.resp);
    grpc_slice_unref(u.details);
    grpc_metadata_array_destroy(&u.initial);
    grpc_metadata_array_destroy(&u.trailing);
    return rc;
}

/* ------------------------------------------------------------ server */

int ctx_grpc_server_ctx(ctx_t *parent, const grpc_call_details *details,
                        ctx_t **out)
{
    gpr_timespec d, now;
    ctx_time_t left;

    if (out)
        *out = NULL;
    if (!parent || !details || !out)
        return EINVAL;
    d = details->deadline;
    if (gpr_time_cmp(d, gpr_inf_future(d.clock_type)) == 0)
        return ctx_with_cancel(parent, out);
    d = gpr_convert_clock_type(d, GPR_CLOCK_MONOTONIC);
    now = gpr_now(GPR_CLOCK_MONOTONIC);
    left = (ctx_time_t)(d.tv_sec - now.tv_sec) * CTX_SECOND +
           (d.tv_nsec - now.tv_nsec);
    return ctx_with_deadline_cause(parent, ctx_now() + left, ETIMEDOUT,
                                   "grpc: deadline of the call", out);
}

int ctx_grpc_server_watch(ctx_t *c, grpc_call *call, ctx_grpc_watch_t **out)
{
    struct ctx_grpc_watch *w;
    grpc_op op;

    if (out)
        *out = NULL;
    if (!c || !call || !out)
        return EINVAL;
    if (!(w = calloc(1, sizeof *w)))
        return ENOMEM;
    w->c = ctx_retain(c);
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    op.data.recv_close_on_server.cancelled = &w->cancelled;
    if (grpc_call_start_batch(call, &op, 1, w, NULL) != GRPC_CALL_OK) {
        ctx_release(w->c);
        free(w);
        return EINVAL;
    }
    *out = w;
    return 0;
}

bool ctx_grpc_server_closed(ctx_grpc_watch_t *w, bool success)
{
    bool cancelled;

    if (!w)
        return false;
    cancelled = w->cancelled || !success;
    if (cancelled)
        ctx_cancel_cause(w->c, ECANCELED, "grpc: cancelled by the client");
    ctx_release(w->c);
    free(w);
    return cancelled;
}
