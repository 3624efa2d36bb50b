/* SPDX-License-Identifier: MIT */
/*
 * gRPC core (the C API of grpc/grpc.h) bound to a context: a call's
 * deadline is the context's, the call is cancelled when the context ends,
 * and on the server each incoming call gets a context with the call's
 * deadline (from its grpc-timeout) that ends when the client cancels.
 * Part of libctx-grpc (pkg-config libctx-grpc).
 *
 *     grpc_init();
 *     grpc_channel_credentials *cr = grpc_insecure_credentials_create();
 *     grpc_channel *ch = grpc_channel_create("127.0.0.1:50051", cr, NULL);
 *     ctx_grpc_status_t st;
 *     void *resp;
 *     size_t len;
 *     int rc = ctx_grpc_unary(c, ch, "/pkg.Svc/Get", req, req_len,
 *                             &resp, &len, &st);  // ETIMEDOUT: c's deadline
 *     free(resp);
 *
 * Messages are raw bytes: serialise them with the protobuf library of
 * your choice (protobuf-c, nanopb). Cancelling from inside a gRPC
 * callback-API callback cancels the call inline on gRPC's thread; cancel
 * from your own threads (grpc/grpc#18310).
 */
#ifndef CTX_GRPC_H
#define CTX_GRPC_H

#include <ctx/ctx.h>

#include <grpc/grpc.h>
#include <grpc/support/time.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The final status of a call: its code and the server's message. */
typedef struct ctx_grpc_status {
    grpc_status_code code;
    char message[256]; /* NUL-terminated, cut to fit */
} ctx_grpc_status_t;

/*
 * ctx_grpc_deadline - the deadline of `c` as gRPC takes it: on
 * GPR_CLOCK_MONOTONIC, gpr_inf_future when c has none, now when it has
 * passed. Precise to the microsecond (both clocks are CLOCK_MONOTONIC).
 *
 * Returns: 0 and the deadline in *out; EINVAL if c or out is NULL.
 */
CTX_API int ctx_grpc_deadline(const ctx_t *c, gpr_timespec *out);

/*
 * ctx_grpc_unary - make a unary call of `method` ("/pkg.Service/Method")
 * on `ch` with the request bytes, under `c`.
 *
 * The call's deadline is c's (sent to the server as grpc-timeout); when c
 * ends first the call is cancelled (grpc_call_cancel_with_status,
 * CANCELLED or DEADLINE_EXCEEDED) and the call returns at once. If c is
 * done before the call starts, no call is made and nothing is sent.
 *
 * Returns: 0 when the server answered OK: the response in *resp (malloc'd,
 * free it; NULL when empty) and *resp_len; st->code GRPC_STATUS_OK.
 * Errors: ECANCELED or ETIMEDOUT when c ended first, or gRPC ended the
 * call at c's deadline (st->code GRPC_STATUS_CANCELLED or
 * GRPC_STATUS_DEADLINE_EXCEEDED); EIO when the call ended with another
 * status (st says which, with the server's message); EINVAL if c, ch,
 * method, resp, resp_len or st is NULL, or req is NULL with a length;
 * ENOMEM. On error *resp is NULL.
 * Blocks: in grpc_completion_queue_pluck until the call ends (c's end
 * ends it).
 * Go: a generated client's method called with ctx.
 */
CTX_API int ctx_grpc_unary(ctx_t *c, grpc_channel *ch, const char *method,
                           const void *req, size_t req_len, void **resp,
                           size_t *resp_len, ctx_grpc_status_t *st);

/* A call bound to a context (ctx_grpc_bind). */
typedef struct ctx_grpc_bind ctx_grpc_bind_t;

/*
 * ctx_grpc_bind - cancel `call` (with status CANCELLED, or
 * DEADLINE_EXCEEDED for a deadline) when `c` ends: for calls made with
 * the core API directly (streams). Create the call with
 * ctx_grpc_deadline(c) as its deadline. The binding holds a reference to
 * the call until ctx_grpc_unbind. If c is done already, the call is
 * cancelled at once (gRPC allows it before the first batch: the batches
 * then fail with that status).
 *
 * Returns: 0 and the binding in *out.
 * Errors: EINVAL if c, call or out is NULL; ENOMEM.
 */
CTX_API int ctx_grpc_bind(ctx_t *c, grpc_call *call, ctx_grpc_bind_t **out);

/*
 * ctx_grpc_unbind - end the binding: after it returns the cancel will not
 * run and is not running. NULL does nothing.
 */
CTX_API void ctx_grpc_unbind(ctx_grpc_bind_t *b);

/* ------------------------------------------------------------ server */

/*
 * ctx_grpc_server_ctx - the context of an incoming call (from
 * grpc_server_request_call): a child of `parent` whose deadline is the
 * call's (details->deadline, from the client's grpc-timeout; none if the
 * client gave none), with the cause text "grpc: deadline of the call".
 *
 * Returns: 0 and the context in *out (one reference, the caller's).
 * Errors: EINVAL if parent, details or out is NULL; ENOMEM.
 */
CTX_API int ctx_grpc_server_ctx(ctx_t *parent, const grpc_call_details *details,
                                ctx_t **out);

/* The watch of an incoming call for the client's cancellation. */
typedef struct ctx_grpc_watch ctx_grpc_watch_t;

/*
 * ctx_grpc_server_watch - watch the incoming `call` for the client's
 * cancellation: starts a GRPC_OP_RECV_CLOSE_ON_SERVER batch whose tag is
 * the watch (*out). When the server's completion queue yields that tag,
 * pass it to ctx_grpc_server_closed, which cancels `c` if the client
 * cancelled the call (or it failed) and frees the watch.
 *
 * Returns: 0 and the watch in *out.
 * Errors: EINVAL if c, call or out is NULL, or gRPC refused the batch
 * (the call already has one); ENOMEM.
 */
CTX_API int ctx_grpc_server_watch(ctx_t *c, grpc_call *call,
                                  ctx_grpc_watch_t **out);

/*
 * ctx_grpc_server_closed - the watch's batch completed (its tag came out
 * of the completion queue, with `success`): cancel the context with cause
 * ECANCELED, "grpc: cancelled by the client", if the client cancelled,
 * then free w.
 *
 * Returns: true if the client cancelled the call.
 */
CTX_API bool ctx_grpc_server_closed(ctx_grpc_watch_t *w, bool success);

#ifdef __cplusplus
}
#endif

#endif /* CTX_GRPC_H */
