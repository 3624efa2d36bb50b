/* SPDX-License-Identifier: MIT */
/*
 * libcurl bound to a context: a transfer that ends when the context does,
 * with no thread blocked and no signal used. Part of libctx-curl
 * (pkg-config libctx-curl).
 *
 *     CURL *h = curl_easy_init();
 *     curl_easy_setopt(h, CURLOPT_URL, "http://127.0.0.1:8080/data");
 *     curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, save);
 *     CURLcode cc;
 *     int rc = ctx_curl_perform(c, h, &cc);
 *     if (rc == EIO)
 *         fprintf(stderr, "%s\n", curl_easy_strerror(cc));
 *     curl_easy_cleanup(h);
 *
 * The transfer runs on the calling thread through a multi handle of its
 * own (curl_multi_socket_action), its sockets and curl's timer waited on
 * with ctx_poll: the end of the context wakes that wait at once (not the
 * progress callback, which curl may call only once a second on a stalled
 * transfer), the transfer is removed from the multi handle and its
 * connection closed. CURLOPT_NOSIGNAL is set on the handle: curl then
 * uses no signal (no SIGALRM around name resolution, SIGPIPE avoided with
 * MSG_NOSIGNAL). Name resolution, if the URL has a host name, is curl's
 * (its resolver thread, with Debian's libcurl); a numeric address needs
 * none.
 *
 * Call curl_global_init before any thread is started, as curl asks.
 */
#ifndef CTX_CURL_H
#define CTX_CURL_H

#include <ctx/ctx.h>

#include <curl/curl.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * ctx_curl_perform - curl_easy_perform(easy), ended when `c` ends.
 *
 * With a deadline, the transfer's CURLOPT_TIMEOUT_MS is set to the time
 * left (rounded up to a millisecond), so curl's own timer ends it too,
 * and set back to 0 (no limit) when the call returns: a caller's own
 * CURLOPT_TIMEOUT_MS is replaced; give c a shorter deadline instead.
 * Connections are not kept between calls (each call has its multi
 * handle) unless the easy handle shares a connection cache
 * (CURLOPT_SHARE with CURL_LOCK_DATA_CONNECT).
 *
 * Returns: 0 when the transfer completed (curl said CURLE_OK; an HTTP
 * error status is a completed transfer: see CURLINFO_RESPONSE_CODE).
 * *res (when res is not NULL) gets curl's result: CURLE_OK,
 * CURLE_ABORTED_BY_CALLBACK when c ended it, or curl's error.
 * Errors: ECANCELED or ETIMEDOUT when c ended before the transfer did
 * (also when curl's timeout set from c's deadline ended it); EIO when
 * curl failed (*res says why: curl_easy_strerror); EINVAL if c or easy
 * is NULL, or easy is already in a multi handle (CURLM_ADDED_ALREADY);
 * ENOMEM. If c is done when the call starts, nothing is sent.
 * Blocks: until the transfer ends or c does.
 * Thread safety: easy must not be used by another thread meanwhile.
 * Go: http.NewRequestWithContext + client.Do.
 */
CTX_API int ctx_curl_perform(ctx_t *c, CURL *easy, CURLcode *res);

#ifdef __cplusplus
}
#endif

#endif /* CTX_CURL_H */
