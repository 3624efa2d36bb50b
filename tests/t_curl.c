/* SPDX-License-Identifier: MIT */
/*
 * The libcurl adapter against an HTTP server the test runs on loopback (a
 * small one of its own, on libctx groups and ctx_accept/ctx_read): a
 * stalled transfer aborted within 50 ms of the cancel, its connection
 * closed, no thread started or left blocked, no SIGPIPE; the deadline as
 * curl's own timeout (shown on the test clock, where the context's
 * deadline never fires by itself); curl's errors as EIO with the code.
 */
#include "t.h"

#include <ctx/curl.h>
#include <ctx/group.h>
#include <ctx/io.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

/* ------------------------------------------------------------ the server */

static struct {
    ctx_t *c;
    ctx_group_t *g;
    int lfd;
    int port;
    atomic_int accepted;
    atomic_int stalling;      /* requests the server began to stall */
    atomic_int stalls_closed; /* stalled requests whose client hung up */
} srv;

static int send_all(ctx_t *c, int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = ctx_write(c, fd, s, n);
        if (w < 0)
            return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Hold the connection until the client hangs up (or the server stops). */
static void stall(ctx_t *c, int fd)
{
    char b[256];
    ssize_t r;
    atomic_fetch_add(&srv.stalling, 1);
    while ((r = ctx_read(c, fd, b, sizeof b)) > 0)
        ;
    if (r == 0)
        atomic_fetch_add(&srv.stalls_closed, 1);
}

static int serve_conn(ctx_t *c, void *arg)
{
    static const char hello[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
                                "Connection: close\r\n\r\nhello";
    static const char slow[] = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n"
                               "Connection: close\r\n\r\nfirst bytes";
    int fd = (int)(intptr_t)arg;
    char req[4096];
    size_t n = 0;
    ssize_t r;

    while (n < sizeof req - 1 &&
           (r = ctx_read(c, fd, req + n, sizeof req - 1 - n)) > 0) {
        n += (size_t)r;
        req[n] = '\0';
        if (strstr(req, "\r\n\r\n"))
            break;
    }
    req[n] = '\0';
    if (strncmp(req, "GET /hello ", 11) == 0) {
        send_all(c, fd, hello, sizeof hello - 1);
    } else if (strncmp(req, "GET /stall ", 11) == 0) {
        stall(c, fd);
    } else if (strncmp(req, "GET /slow ", 10) == 0) {
        if (send_all(c, fd, slow, sizeof slow - 1) == 0)
            stall(c, fd);
    } else {
        /* /reset: hang up with a reset, the client still sending. */
        struct linger lg = {1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    close(fd);
    return 0;
}

static int accept_loop(ctx_t *c, void *arg)
{
    (void)arg;
    for (;;) {
        int fd = ctx_accept(c, srv.lfd, NULL, NULL);
        if (fd < 0)
            return ctx_done(c) ? 0 : errno;
        atomic_fetch_add(&srv.accepted, 1);
        if (ctx_group_go(srv.g, serve_conn, (void *)(intptr_t)fd) != 0)
            close(fd);
    }
}

static int server_start(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof a;

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    srv.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (srv.lfd < 0 || bind(srv.lfd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(srv.lfd, 64) != 0 ||
        getsockname(srv.lfd, (struct sockaddr *)&a, &len) != 0)
        return errno;
    srv.port = ntohs(a.sin_port);
    if (ctx_group_new(ctx_background(), &srv.g) != 0)
        return ENOMEM;
    srv.c = ctx_group_ctx(srv.g);
    return ctx_group_go(srv.g, accept_loop, NULL);
}

static void server_stop(void)
{
    ctx_cancel(srv.c);
    ctx_group_free(srv.g);
    close(srv.lfd);
}

/* ------------------------------------------------------------ client */

struct body {
    char buf[256];
    size_t n;
};

static size_t on_data(char *p, size_t size, size_t nmemb, void *userp)
{
    struct body *b = userp;
    size_t n = size * nmemb;
    size_t room = sizeof b->buf - 1 - b->n;
    memcpy(b->buf + b->n, p, n < room ? n : room);
    b->n += n < room ? n : room;
    b->buf[b->n] = '\0';
    return n;
}

static CURL *handle(const char *path, struct body *b)
{
    char url[128];
    CURL *h = curl_easy_init();
    if (!h)
        return NULL;
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", srv.port, path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
    return h;
}

struct canceller {
    pthread_t t;
    ctx_t *c;
    int stalling;    /* cancel once the server stalls more than this, */
    long long after; /* and this much later */
    long long cancelled_ns;
    int threads; /* of the process just before the cancel */
};

/* Threads of the process that are not libctx's own (its pool grows as the
 * server's handlers block). */
static int other_threads(void)
{
    ctx_stats_t st;
    ctx_stats(&st);
    return t_thread_count() - (int)st.internal_threads;
}

static void *cancel_stalled(void *p)
{
    struct canceller *k = p;
    for (int i = 0; i < 5000 && atomic_load(&srv.stalling) <= k->stalling; i++)
        t_sleep_ns(1000000);
    t_sleep_ns(k->after);
    k->threads = other_threads();
    k->cancelled_ns = t_now_ns();
    ctx_cancel(k->c);
    return NULL;
}

static atomic_int sigpipes;

static void on_sigpipe(int sig)
{
    (void)sig;
    atomic_fetch_add(&sigpipes, 1);
}

/* ------------------------------------------------------------ cases */

/* Before any thread, as curl asks. */
__attribute__((constructor)) static void setup(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigpipe;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGPIPE, &sa, NULL) != 0 ||
        curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        abort();
}

__attribute__((destructor)) static void teardown(void)
{
    curl_global_cleanup();
}

T_CASE(transfer_completes)
{
    struct body b = {.n = 0};
    CURL *h;
    CURLcode cc = CURLE_FAILED_INIT;
    long code = 0;

    T_OK(server_start());
    h = handle("/hello", &b);
    T_NOTNULL(h);
    T_OK(ctx_curl_perform(ctx_background(), h, &cc));
    T_EQ(cc, CURLE_OK);
    T_STREQ(b.buf, "hello");
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    T_EQ(code, 200);
    /* The handle is reusable, and reusable with a deadline. */
    {
        ctx_t *c;
        b.n = 0;
        T_OK(ctx_with_timeout(ctx_background(), 10 * CTX_SECOND, &c));
        T_OK(ctx_curl_perform(c, h, NULL));
        T_STREQ(b.buf, "hello");
        ctx_release(c);
    }
    curl_easy_cleanup(h);
    server_stop();
}

/* A stalled transfer (no response at all, or a body cut short), cancelled
 * 20-50 ms after the server began to stall it: back within 50 ms of the
 * cancel, the server sees the connection closed, curl started no thread. */
T_CASE(stalled_transfer_aborted_within_50ms)
{
    enum { ROUNDS = 40 };
    long long lat[ROUNDS];
    long rounds = t_scale(ROUNDS);
    int closed0 = atomic_load(&srv.stalls_closed), extra_threads = 0;
    uint64_t seed = 50;

    T_OK(server_start());
    for (long i = 0; i < rounds && !t_failed(); i++) {
        struct body b = {.n = 0};
        CURL *h = handle(i % 2 ? "/slow" : "/stall", &b);
        struct canceller k;
        CURLcode cc = CURLE_OK;
        int before = other_threads();
        T_NOTNULL(h);
        T_OK(ctx_with_cancel(ctx_background(), &k.c));
        k.stalling = atomic_load(&srv.stalling);
        k.after = (20 + (long long)(t_rand(&seed) % 31)) * 1000000;
        T_OK(pthread_create(&k.t, NULL, cancel_stalled, &k));
        T_ERR(ctx_curl_perform(k.c, h, &cc), ECANCELED);
        lat[i] = t_now_ns() - k.cancelled_ns;
        pthread_join(k.t, NULL);
        T_EQ(cc, CURLE_ABORTED_BY_CALLBACK);
        if (i % 2)
            T_STREQ(b.buf, "first bytes");
        /* The canceller is the one thread more. */
        if (k.threads != before + 1)
            extra_threads++;
        ctx_release(k.c);
        curl_easy_cleanup(h);
    }
    T_EQ(extra_threads, 0);
    for (int i = 0;
         i < 500 && atomic_load(&srv.stalls_closed) < closed0 + (int)rounds;
         i++)
        t_sleep_ns(2000000);
    T_EQ(atomic_load(&srv.stalls_closed), closed0 + (int)rounds);
    for (long i = 1; i < rounds; i++)
        for (long j = i; j > 0 && lat[j] < lat[j - 1]; j--) {
            long long x = lat[j];
            lat[j] = lat[j - 1];
            lat[j - 1] = x;
        }
    printf("  cancel -> return over %ld stalled transfers: p50 %.3f ms, p95 "
           "%.3f ms, max %.3f ms\n",
           rounds, lat[rounds / 2] / 1e6, lat[rounds * 95 / 100] / 1e6,
           lat[rounds - 1] / 1e6);
    T_LT(lat[rounds * 95 / 100], 50000000LL);
    T_LT(lat[rounds - 1], 1000000000LL);
    server_stop();
}

/* A deadline ends a stalled transfer as ETIMEDOUT. */
T_CASE(deadline_ends_stalled_transfer)
{
    struct body b = {.n = 0};
    CURL *h;
    CURLcode cc;
    long long t0, dt;
    ctx_t *c;

    T_OK(server_start());
    h = handle("/stall", &b);
    T_NOTNULL(h);
    t0 = t_now_ns();
    T_OK(ctx_with_timeout(ctx_background(), 100 * CTX_MILLISECOND, &c));
    T_ERR(ctx_curl_perform(c, h, &cc), ETIMEDOUT);
    dt = t_now_ns() - t0;
    T_GE(dt, 99000000LL);
    T_LT(dt, 100000000LL + 1000000000LL);
    ctx_release(c);
    curl_easy_cleanup(h);
    server_stop();
}

/*
 * The deadline is curl's timeout: on the test clock the context's
 * deadline never fires by itself, yet the transfer ends at it, ended by
 * curl (CURLE_OPERATION_TIMEDOUT), reported as ETIMEDOUT.
 */
T_CASE(deadline_is_the_transfer_timeout)
{
    struct body b = {.n = 0};
    CURL *h;
    CURLcode cc = CURLE_OK;
    long long t0, dt = 0;
    ctx_t *c;
    int rc;

    T_OK(server_start());
    h = handle("/stall", &b);
    T_NOTNULL(h);
    T_OK(ctx_testclock_enable());
    t0 = t_now_ns();
    rc = ctx_with_timeout(ctx_background(), 200 * CTX_MILLISECOND, &c);
    if (rc == 0) {
        rc = ctx_curl_perform(c, h, &cc);
        dt = t_now_ns() - t0;
        T_EXPECT(!ctx_done(c));
        ctx_release(c);
    }
    ctx_testclock_disable();
    T_ERR(rc, ETIMEDOUT);
    T_EQ(cc, CURLE_OPERATION_TIMEDOUT);
    T_GE(dt, 199000000LL);
    T_LT(dt, 200000000LL + 1000000000LL);
    /* The timeout does not stay on the handle. */
    b.n = 0;
    curl_easy_setopt(h, CURLOPT_URL, "http://127.0.0.1:1/");
    snprintf(b.buf, sizeof b.buf, "http://127.0.0.1:%d/hello", srv.port);
    curl_easy_setopt(h, CURLOPT_URL, b.buf);
    b.buf[0] = '\0';
    T_OK(ctx_curl_perform(ctx_background(), h, &cc));
    T_STREQ(b.buf, "hello");
    curl_easy_cleanup(h);
    server_stop();
}

/* curl's own failures: EIO and the code; no SIGPIPE on a reset upload. */
T_CASE(curl_errors_and_no_signals)
{
    static char big[4 << 20];
    struct body b = {.n = 0};
    CURL *h;
    CURLcode cc = CURLE_OK;

    T_OK(server_start());
    h = handle("/reset", &b);
    T_NOTNULL(h);
    memset(big, 'x', sizeof big);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, big);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)sizeof big);
    T_ERR(ctx_curl_perform(ctx_background(), h, &cc), EIO);
    T_TRUE(cc == CURLE_SEND_ERROR || cc == CURLE_RECV_ERROR ||
           cc == CURLE_GOT_NOTHING);
    T_EQ(atomic_load(&sigpipes), 0);
    curl_easy_cleanup(h);

    h = handle("/hello", &b);
    T_NOTNULL(h);
    curl_easy_setopt(h, CURLOPT_URL, "http://127.0.0.1:1/");
    T_ERR(ctx_curl_perform(ctx_background(), h, &cc), EIO);
    T_EQ(cc, CURLE_COULDNT_CONNECT);
    curl_easy_setopt(h, CURLOPT_URL, "nosuchscheme://x/");
    T_ERR(ctx_curl_perform(ctx_background(), h, &cc), EIO);
    T_EQ(cc, CURLE_UNSUPPORTED_PROTOCOL);
    curl_easy_cleanup(h);
    server_stop();
}

/* Bad input, and a done context: nothing sent. */
T_CASE(bad_input_and_done_context)
{
    struct body b = {.n = 0};
    CURL *h;
    CURLM *m = curl_multi_init();
    int accepted = atomic_load(&srv.accepted);
    ctx_t *c;

    T_OK(server_start());
    h = handle("/hello", &b);
    T_NOTNULL(h);
    T_ERR(ctx_curl_perform(NULL, h, NULL), EINVAL);
    T_ERR(ctx_curl_perform(ctx_background(), NULL, NULL), EINVAL);
    T_OK(ctx_with_cancel(ctx_background(), &c));
    ctx_cancel(c);
    T_ERR(ctx_curl_perform(c, h, NULL), ECANCELED);
    ctx_release(c);
    t_sleep_ns(20000000);
    T_EQ(atomic_load(&srv.accepted), accepted);
    /* A handle already in a multi handle. */
    T_EQ(curl_multi_add_handle(m, h), CURLM_OK);
    T_ERR(ctx_curl_perform(ctx_background(), h, NULL), EINVAL);
    curl_multi_remove_handle(m, h);
    curl_multi_cleanup(m);
    curl_easy_cleanup(h);
    server_stop();
}
