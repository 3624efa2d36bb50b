/* SPDX-License-Identifier: MIT */
/*
 * A libcurl transfer driven by the calling thread through the multi
 * socket interface, every wait a ctx_poll.
 *
 * DESIGN
 *
 * Each call makes a multi handle of its own and adds the easy handle. The
 * multi handle tells us, through its socket callback, which descriptors
 * to watch for what, and through its timer callback when to call it
 * again; we keep those in a small array (`struct loop`) and wait for
 * them with ctx_poll, whose timeout is curl's timer. Readiness and timer
 * expiry go back to curl with curl_multi_socket_action, and the transfer
 * is over when curl_multi_info_read reports it done.
 *
 * The context's end ends that ctx_poll at once (it is woken through the
 * thread's wake-up descriptor by the cancelling thread, or by the timer
 * thread at the deadline), so the abort latency is the wake-up's, not
 * the progress callback's (which a stalled transfer may see only once a
 * second). The transfer is then removed from the multi handle, which
 * closes its connection, and the multi handle is cleaned up: nothing of
 * the transfer outlives the call, on any thread.
 *
 * Everything here runs on the calling thread; curl's callbacks are called
 * from within curl_multi_socket_action on that thread, so `struct loop`
 * needs no lock.
 */
#define _POSIX_C_SOURCE 200809L
#include <ctx/curl.h>
#include <ctx/io.h>

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <time.h>

/* What the multi handle wants watched. */
struct loop {
    struct pollfd *fds; /* the sockets, with the events curl asked for */
    size_t n, cap;
    ctx_time_t timer; /* when curl wants to be called, CTX_NO_DEADLINE:
                         never (real clock) */
    bool nomem;       /* a socket could not be recorded */
};

static ctx_time_t mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (ctx_time_t)ts.tv_sec * CTX_SECOND + ts.tv_nsec;
}

static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp,
                     void *socketp)
{
    struct loop *l = userp;
    short ev = 0;
    size_t i;

    (void)easy;
    (void)socketp;
    for (i = 0; i < l->n && l->fds[i].fd != s; i++)
        ;
    if (what == CURL_POLL_REMOVE) {
        if (i < l->n)
            l->fds[i] = l->fds[--l->n];
        return 0;
    }
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        ev |= POLLIN;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        ev |= POLLOUT;
    if (i == l->n) {
        if (l->n == l->cap) {
            size_t cap = l->cap ? 2 * l->cap : 4;
            struct pollfd *f = realloc(l->fds, cap * sizeof *f);
            if (!f) {
                l->nomem = true;
                return -1;
            }
            l->fds = f;
            l->cap = cap;
        }
        l->fds[l->n++].fd = s;
    }
    l->fds[i].events = ev;
    l->fds[i].revents = 0;
    return 0;
}

static int on_timer(CURLM *multi, long ms, void *userp)
{
    struct loop *l = userp;
    (void)multi;
    l->timer = ms < 0 ? CTX_NO_DEADLINE : mono_now() + ms * CTX_MILLISECOND;
    return 0;
}

/* Hand the ready sockets (or the expired timer) to curl. */
static CURLMcode dispatch(CURLM *multi, struct loop *l, int ready)
{
    struct pollfd fds[16];
    int running;
    size_t n = 0;
    CURLMcode mc = CURLM_OK;

    if (ready == 0 || (l->timer != CTX_NO_DEADLINE && mono_now() >= l->timer))
        mc = curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
    /* The callbacks may change l->fds while we go: work on a copy (a
     * transfer has a handful of sockets at most; more wait a turn). */
    for (size_t i = 0; i < l->n && n < 16; i++)
        if (l->fds[i].revents)
            fds[n++] = l->fds[i];
    for (size_t i = 0; i < n && mc == CURLM_OK; i++) {
        int ev = 0;
        if (fds[i].revents & (POLLIN | POLLHUP))
            ev |= CURL_CSELECT_IN;
        if (fds[i].revents & POLLOUT)
            ev |= CURL_CSELECT_OUT;
        if (fds[i].revents & (POLLERR | POLLNVAL))
            ev |= CURL_CSELECT_ERR;
        mc = curl_multi_socket_action(multi, fds[i].fd, ev, &running);
    }
    return mc;
}

/* The transfer's result once curl reports it done; -1 while it runs. */
static int finished(CURLM *multi, CURLcode *cc)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(multi, &left)) != NULL) {
        if (m->msg == CURLMSG_DONE) {
            *cc = m->data.result;
            return 1;
        }
    }
    return 0;
}

static int run(ctx_t *c, CURLM *multi, struct loop *l, CURLcode *cc)
{
    CURLMcode mc;
    int ready, running;

    mc = curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
    while (mc == CURLM_OK && !l->nomem && !finished(multi, cc)) {
        ctx_time_t left = -1;
        if (l->timer != CTX_NO_DEADLINE) {
            left = l->timer - mono_now();
            if (left < 0)
                left = 0;
        }
        ready = ctx_poll(c, l->fds, (nfds_t)l->n, left);
        if (ready < 0)
            return errno; /* c's error, or poll(2)'s */
        mc = dispatch(multi, l, ready);
    }
    if (l->nomem || mc == CURLM_OUT_OF_MEMORY)
        return ENOMEM;
    return mc == CURLM_OK ? 0 : EIO;
}

int ctx_curl_perform(ctx_t *c, CURL *easy, CURLcode *res)
{
    struct loop l = {NULL, 0, 0, CTX_NO_DEADLINE, false};
    CURLcode cc = CURLE_ABORTED_BY_CALLBACK;
    ctx_time_t deadline;
    bool timed = false;
    CURLMcode mc;
    CURLM *multi;
    int rc;

    if (res)
        *res = CURLE_ABORTED_BY_CALLBACK;
    if (!c || !easy)
        return EINVAL;
    if ((rc = ctx_err(c)) != 0)
        return rc;
    if (!(multi = curl_multi_init()))
        return ENOMEM;
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    if (ctx_deadline(c, &deadline)) {
        ctx_time_t ms =
            (deadline - ctx_now() + CTX_MILLISECOND - 1) / CTX_MILLISECOND;
        if (ms < LONG_MAX) {
            curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long)(ms < 1 ? 1 : ms));
            timed = true;
        }
    }
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, &l);
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(multi, CURLMOPT_TIMERDATA, &l);
    mc = curl_multi_add_handle(multi, easy);
    if (mc != CURLM_OK) {
        rc = mc == CURLM_OUT_OF_MEMORY ? ENOMEM : EINVAL;
    } else {
        rc = run(c, multi, &l, &cc);
        /* Removing an unfinished transfer aborts it and closes its
         * connection. */
        curl_multi_remove_handle(multi, easy);
    }
    curl_multi_cleanup(multi);
    free(l.fds);
    if (timed)
        curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 0L);

    if (rc == 0 && cc != CURLE_OK) {
        if (cc == CURLE_OPERATION_TIMEDOUT && (timed || ctx_done(c)))
            rc = ctx_done(c) ? ctx_err(c) : ETIMEDOUT;
        else if (cc == CURLE_OUT_OF_MEMORY)
            rc = ENOMEM;
        else
            rc = EIO;
    }
    if (res)
        *res = cc;
    return rc;
}
