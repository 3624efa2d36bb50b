/* SPDX-License-Identifier: MIT */
/*
 * The gRPC core adapter over loopback: against a Python server
 * (python3-grpcio, tests/helpers/grpc_server.py), an expired context
 * yields DEADLINE_EXCEEDED with nothing sent, a cancel reaches the server
 * within 50 ms, the deadline arrives as the call's; against a server of
 * our own in this process, the server-side context of each call carries
 * the client's deadline and ends when the client cancels.
 *
 * Each case runs gRPC from grpc_init to grpc_shutdown_blocking, so that
 * gRPC's threads are gone when the harness counts threads at exit.
 */
#include "t.h"

#include <ctx/grpc.h>
#include <ctx/io.h>
#include <ctx/proc.h>

#include <grpc/grpc_security.h>

/* gRPC keeps its poller's descriptors (an epoll set and an eventfd) from
 * the first grpc_init to the end of the process, the same two however
 * often it starts and stops: make them before the harness counts the
 * descriptors open at start. */
__attribute__((constructor)) static void grpc_poller(void)
{
    grpc_init();
    grpc_shutdown_blocking();
}

/* ------------------------------------------------------------ Python */

static struct {
    ctx_proc_t *p;
    grpc_channel *ch;
} py;

static grpc_channel *channel_to(int port)
{
    char target[64];
    grpc_channel_credentials *cr = grpc_insecure_credentials_create();
    grpc_channel *ch;
    snprintf(target, sizeof target, "127.0.0.1:%d", port);
    ch = grpc_channel_create(target, cr, NULL);
    grpc_channel_credentials_release(cr);
    return ch;
}

static int py_start(void)
{
    char *argv[] = {T_GRPC_PYTHON, T_GRPC_SERVER_PY, NULL};
    ctx_proc_opts_t o = CTX_PROC_OPTS_INIT;
    char line[32];
    size_t n = 0;
    ssize_t r;
    int rc;

    o.argv = argv;
    o.stdin_fd = CTX_PROC_PIPE;
    o.stdout_fd = CTX_PROC_PIPE;
    o.wait_delay = CTX_SECOND;
    if ((rc = ctx_proc_spawn(ctx_background(), &o, &py.p)) != 0)
        return rc;
    while (n < sizeof line - 1 && !memchr(line, '\n', n) &&
           (r = ctx_read(ctx_background(), ctx_proc_stdout(py.p), line + n,
                         sizeof line - 1 - n)) > 0)
        n += (size_t)r;
    line[n] = '\0';
    if (atoi(line) <= 0) {
        fprintf(stderr, "  python server: no port (%s)\n", line);
        return EIO;
    }
    grpc_init();
    py.ch = channel_to(atoi(line));
    return 0;
}

static void py_stop(void)
{
    grpc_channel_destroy(py.ch);
    grpc_shutdown_blocking();
    ctx_proc_close_stdin(py.p); /* the server leaves at end of input */
    ctx_proc_wait(py.p, NULL);
    ctx_proc_free(py.p);
}

struct stats {
    int calls, sleeps, remaining_ms;
    long long cancelled_ns;
};

static int py_stats(struct stats *s)
{
    ctx_grpc_status_t st;
    void *resp;
    size_t len;
    char buf[256];
    int rc = ctx_grpc_unary(ctx_background(), py.ch, "/t.T/Stats", NULL, 0,
                            &resp, &len, &st);
    if (rc != 0)
        return rc;
    snprintf(buf, sizeof buf, "%.*s", (int)len, (char *)resp);
    free(resp);
    return sscanf(buf, "calls=%d sleeps=%d cancelled_ns=%lld remaining_ms=%d",
                  &s->calls, &s->sleeps, &s->cancelled_ns,
                  &s->remaining_ms) == 4
               ? 0
               : EIO;
}

T_CASE(unary_call_and_errors)
{
    ctx_grpc_status_t st;
    void *resp = (void *)1;
    size_t len = 9;
    ctx_t *c;

    T_OK(py_start());
    T_OK(ctx_with_timeout(ctx_background(), 10 * CTX_SECOND, &c));
    T_OK(ctx_grpc_unary(c, py.ch, "/t.T/Echo", "hello", 5, &resp, &len, &st));
    T_EQ(st.code, GRPC_STATUS_OK);
    T_EQ(len, 5);
    T_TRUE(memcmp(resp, "hello", 5) == 0);
    free(resp);
    T_OK(ctx_grpc_unary(c, py.ch, "/t.T/Echo", NULL, 0, &resp, &len, &st));
    T_NULL(resp);
    T_EQ(len, 0);
    /* A status that is not OK: EIO with it. */
    T_ERR(ctx_grpc_unary(c, py.ch, "/t.T/Nope", "x", 1, &resp, &len, &st), EIO);
    T_EQ(st.code, GRPC_STATUS_UNIMPLEMENTED);
    T_NULL(resp);
    /* Bad input. */
    T_ERR(ctx_grpc_unary(NULL, py.ch, "/t.T/Echo", "x", 1, &resp, &len, &st),
          EINVAL);
    T_ERR(ctx_grpc_unary(c, NULL, "/t.T/Echo", "x", 1, &resp, &len, &st),
          EINVAL);
    T_ERR(ctx_grpc_unary(c, py.ch, NULL, "x", 1, &resp, &len, &st), EINVAL);
    T_ERR(ctx_grpc_unary(c, py.ch, "/t.T/Echo", NULL, 1, &resp, &len, &st),
          EINVAL);
    T_ERR(ctx_grpc_unary(c, py.ch, "/t.T/Echo", "x", 1, &resp, &len, NULL),
          EINVAL);
    ctx_release(c);
    py_stop();
}

/* A context done before the call: DEADLINE_EXCEEDED (or CANCELLED), and
 * the server saw nothing. */
T_CASE(expired_context_sends_nothing)
{
    ctx_grpc_status_t st;
    struct stats s0, s1;
    void *resp;
    size_t len;
    ctx_t *c;

    T_OK(py_start());
    T_OK(py_stats(&s0));
    T_OK(ctx_with_timeout(ctx_background(), -1, &c));
    T_ERR(ctx_grpc_unary(c, py.ch, "/t.T/Echo", "x", 1, &resp, &len, &st),
          ETIMEDOUT);
    T_EQ(st.code, GRPC_STATUS_DEADLINE_EXCEEDED);
    ctx_release(c);
    T_OK(ctx_with_cancel(ctx_background(), &c));
    ctx_cancel(c);
    T_ERR(ctx_grpc_unary(c, py.ch, "/t.T/Echo", "x", 1, &resp, &len, &st),
          ECANCELED);
    T_EQ(st.code, GRPC_STATUS_CANCELLED);
    ctx_release(c);
    T_OK(py_stats(&s1));
    T_EQ(s1.calls, s0.calls); /* Stats calls are not counted */
    py_stop();
}

struct canceller {
    pthread_t t;
    ctx_t *c;
    int sleeps;          /* cancel once the server holds more Sleeps, */
    long long cancel_ns; /* and when it was cancelled */
};

static void *cancel_when_held(void *p)
{
    struct canceller *k = p;
    struct stats s = {0};
    for (int i = 0; i < 2500; i++) {
        if (py_stats(&s) == 0 && s.sleeps > k->sleeps)
            break;
        t_sleep_ns(2000000);
    }
    t_sleep_ns(10000000);
    k->cancel_ns = t_now_ns();
    ctx_cancel(k->c);
    return NULL;
}

static void *cancel_later(void *p)
{
    struct canceller *k = p;
    t_sleep_ns(100000000);
    k->cancel_ns = t_now_ns();
    ctx_cancel(k->c);
    return NULL;
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

/* A call the server holds, cancelled: the client returns ECANCELED at
 * once and the server learns of it within 50 ms (its clock is ours:
 * CLOCK_MONOTONIC). */
T_CASE(cancel_reaches_the_server_within_50ms)
{
    enum { ROUNDS = 20 };
    long long lat[ROUNDS], back[ROUNDS];
    long rounds = t_scale(ROUNDS) < 5 ? 5 : t_scale(ROUNDS);
    struct stats s = {0};

    T_OK(py_start());
    for (long i = 0; i < rounds && !t_failed(); i++) {
        struct canceller k;
        ctx_grpc_status_t st;
        void *resp;
        size_t len;
        T_OK(py_stats(&s));
        k.sleeps = s.sleeps;
        T_OK(ctx_with_cancel(ctx_background(), &k.c));
        T_OK(pthread_create(&k.t, NULL, cancel_when_held, &k));
        T_ERR(
            ctx_grpc_unary(k.c, py.ch, "/t.T/Sleep", "z", 1, &resp, &len, &st),
            ECANCELED);
        back[i] = t_now_ns();
        pthread_join(k.t, NULL);
        back[i] -= k.cancel_ns;
        T_EQ(st.code, GRPC_STATUS_CANCELLED);
        ctx_release(k.c);
        for (int j = 0; j < 500; j++) {
            T_OK(py_stats(&s));
            if (s.cancelled_ns >= k.cancel_ns)
                break;
            t_sleep_ns(2000000);
        }
        T_GE(s.cancelled_ns, k.cancel_ns);
        lat[i] = s.cancelled_ns - k.cancel_ns;
    }
    qsort(lat, (size_t)rounds, sizeof lat[0], cmp_ll);
    qsort(back, (size_t)rounds, sizeof back[0], cmp_ll);
    printf("  cancel -> server over %ld calls: p50 %.2f ms, p95 %.2f ms, max "
           "%.2f ms; cancel -> client return: max %.2f ms\n",
           rounds, lat[rounds / 2] / 1e6, lat[rounds * 95 / 100] / 1e6,
           lat[rounds - 1] / 1e6, back[rounds - 1] / 1e6);
    T_LT(lat[rounds * 95 / 100], 50000000LL);
    T_LT(lat[rounds - 1], 1000000000LL);
    py_stop();
}

/* The deadline reaches the server as the call's (grpc-timeout), and ends
 * the call at the client as ETIMEDOUT. */
T_CASE(deadline_reaches_the_server)
{
    ctx_grpc_status_t st;
    struct stats s;
    void *resp;
    size_t len;
    long long t0, dt;
    ctx_t *c;

    T_OK(py_start());
    t0 = t_now_ns();
    T_OK(ctx_with_timeout(ctx_background(), 700 * CTX_MILLISECOND, &c));
    T_ERR(ctx_grpc_unary(c, py.ch, "/t.T/Sleep", "z", 1, &resp, &len, &st),
          ETIMEDOUT);
    dt = t_now_ns() - t0;
    T_EQ(st.code, GRPC_STATUS_DEADLINE_EXCEEDED);
    ctx_release(c);
    T_GE(dt, 699000000LL);
    T_LT(dt, 700000000LL + 1000000000LL);
    T_OK(py_stats(&s));
    printf("  700 ms deadline: %d ms left at the server's arrival\n",
           s.remaining_ms);
    T_LE(s.remaining_ms, 700);
    T_GT(s.remaining_ms, 500);
    py_stop();
}

/* ------------------------------------------------------------ C server */

/* A call of our server: its context, its watch, and what its handler saw
 * (the context's deadline, when and how it ended). */
struct scall {
    grpc_call *call;
    grpc_call_details details;
    grpc_metadata_array md;
    ctx_t *c;
    ctx_grpc_watch_t *watch;
    int pending; /* batches not yet back: the watch, the finish */
    int finish_tag;
    pthread_t handler;
    ctx_time_t deadline;   /* of c, CTX_NO_DEADLINE if none */
    int err;               /* c's error when the handler saw it end */
    atomic_llong ended_ns; /* published after err */
};

static struct {
    grpc_server *server;
    grpc_completion_queue *cq;
    pthread_t loop;
    int port, new_tag, shutdown_tag;
    struct scall *next; /* the call being requested */
    struct scall *calls[64];
    atomic_int ncalls; /* published after calls[ncalls - 1] */
} cs;

static void request_next(void)
{
    cs.next = calloc(1, sizeof *cs.next);
    grpc_call_details_init(&cs.next->details);
    grpc_metadata_array_init(&cs.next->md);
    grpc_server_request_call(cs.server, &cs.next->call, &cs.next->details,
                             &cs.next->md, cs.cq, cs.cq, &cs.new_tag);
}

/* The handler holds the call until its context ends (the client's cancel
 * or deadline), then answers. */
static void *handle(void *p)
{
    struct scall *sc = p;
    grpc_op ops[2];
    ctx_wait(sc->c, 30 * CTX_SECOND);
    sc->err = ctx_err(sc->c);
    sc->ended_ns = t_now_ns();
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[1].data.send_status_from_server.status = GRPC_STATUS_CANCELLED;
    grpc_call_start_batch(sc->call, ops, 2, &sc->finish_tag, NULL);
    return NULL;
}

static void call_done(struct scall *sc)
{
    if (--sc->pending > 0)
        return;
    pthread_join(sc->handler, NULL);
    grpc_call_unref(sc->call);
    grpc_call_details_destroy(&sc->details);
    grpc_metadata_array_destroy(&sc->md);
    ctx_release(sc->c);
}

static void *server_loop(void *arg)
{
    (void)arg;
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(
            cs.cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            return NULL;
        if (ev.tag == &cs.shutdown_tag)
            continue;
        if (ev.tag == &cs.new_tag) {
            struct scall *sc = cs.next;
            if (!ev.success) {
                grpc_call_details_destroy(&sc->details);
                grpc_metadata_array_destroy(&sc->md);
                free(sc);
                continue;
            }
            ctx_grpc_server_ctx(ctx_background(), &sc->details, &sc->c);
            if (!ctx_deadline(sc->c, &sc->deadline))
                sc->deadline = CTX_NO_DEADLINE;
            ctx_grpc_server_watch(sc->c, sc->call, &sc->watch);
            sc->pending = 2;
            cs.calls[cs.ncalls] = sc;
            cs.ncalls = cs.ncalls + 1; /* the loop is its only writer */
            pthread_create(&sc->handler, NULL, handle, sc);
            request_next();
            continue;
        }
        for (int i = 0; i < cs.ncalls; i++) {
            struct scall *sc = cs.calls[i];
            if (sc->watch && ev.tag == sc->watch) {
                /* Freed there: its address may come back for another. */
                ctx_grpc_server_closed(sc->watch, ev.success);
                sc->watch = NULL;
                call_done(sc);
                break;
            }
            if (ev.tag == &sc->finish_tag) {
                call_done(sc);
                break;
            }
        }
    }
}

static int cserver_start(void)
{
    grpc_server_credentials *cr;
    grpc_init();
    cs.cq = grpc_completion_queue_create_for_next(NULL);
    cs.server = grpc_server_create(NULL, NULL);
    grpc_server_register_completion_queue(cs.server, cs.cq, NULL);
    cr = grpc_insecure_server_credentials_create();
    cs.port = grpc_server_add_http2_port(cs.server, "127.0.0.1:0", cr);
    grpc_server_credentials_release(cr);
    if (cs.port <= 0)
        return EADDRNOTAVAIL;
    grpc_server_start(cs.server);
    cs.ncalls = 0;
    request_next();
    return pthread_create(&cs.loop, NULL, server_loop, NULL);
}

static void cserver_stop(void)
{
    grpc_server_shutdown_and_notify(cs.server, cs.cq, &cs.shutdown_tag);
    grpc_server_cancel_all_calls(cs.server);
    /* The loop sees the shutdown tag; then no more events but ours. */
    grpc_completion_queue_shutdown(cs.cq);
    pthread_join(cs.loop, NULL);
    grpc_server_destroy(cs.server);
    grpc_completion_queue_destroy(cs.cq);
    for (int i = 0; i < cs.ncalls; i++)
        free(cs.calls[i]);
    grpc_shutdown_blocking();
}

/*
 * The server's context of a call has the client's deadline (±5 ms: the
 * wire carries the time left, re-read on arrival) and ends at it (within
 * 50 ms); a client's cancel ends it within 50 ms.
 */
T_CASE(server_context_has_deadline_and_cancel)
{
    grpc_channel *ch;
    ctx_grpc_status_t st;
    void *resp;
    size_t len;
    ctx_t *c;
    ctx_time_t d;
    long long t_cancel;
    struct scall *sc;

    T_OK(cserver_start());
    ch = channel_to(cs.port);

    /* The deadline, carried over and ending the server's context. */
    T_OK(ctx_with_timeout(ctx_background(), 400 * CTX_MILLISECOND, &c));
    T_TRUE(ctx_deadline(c, &d));
    T_ERR(ctx_grpc_unary(c, ch, "/s.S/Hold", "x", 1, &resp, &len, &st),
          ETIMEDOUT);
    ctx_release(c);
    for (int i = 0; i < 500 && (cs.ncalls < 1 || !cs.calls[0]->ended_ns); i++)
        t_sleep_ns(2000000);
    T_EQ(cs.ncalls, 1);
    sc = cs.calls[0];
    printf("  server deadline - client deadline: %+.3f ms; server context "
           "ended %+.3f ms after the deadline (%s)\n",
           (sc->deadline - d) / 1e6, (sc->ended_ns - d) / 1e6,
           ctx_errname(sc->err));
    T_LT(sc->deadline - d, 5 * CTX_MILLISECOND);
    T_GT(sc->deadline - d, -5 * CTX_MILLISECOND);
    /* Ended by its own deadline, or by the client's cancel that its
     * deadline sent first: at the deadline either way. */
    T_TRUE(sc->err == ETIMEDOUT || sc->err == ECANCELED);
    T_GE(sc->ended_ns, d - CTX_MILLISECOND);
    T_LT(sc->ended_ns, d + 50 * CTX_MILLISECOND);

    /* The client's cancel, 100 ms into the call, reaching the server's
     * context. */
    {
        struct canceller k = {.sleeps = 0};
        T_OK(ctx_with_cancel(ctx_background(), &c));
        k.c = c;
        T_OK(pthread_create(&k.t, NULL, cancel_later, &k));
        T_ERR(ctx_grpc_unary(c, ch, "/s.S/Hold", "x", 1, &resp, &len, &st),
              ECANCELED);
        pthread_join(k.t, NULL);
        t_cancel = k.cancel_ns;
    }
    ctx_release(c);
    for (int i = 0; i < 500 && (cs.ncalls < 2 || !cs.calls[1]->ended_ns); i++)
        t_sleep_ns(2000000);
    T_EQ(cs.ncalls, 2);
    sc = cs.calls[1];
    printf("  client cancel -> server context done: %.3f ms\n",
           (sc->ended_ns - t_cancel) / 1e6);
    T_EQ(sc->deadline, CTX_NO_DEADLINE);
    T_ERR(sc->err, ECANCELED);
    T_LT(sc->ended_ns - t_cancel, 50000000LL);
    grpc_channel_destroy(ch);
    cserver_stop();
}
