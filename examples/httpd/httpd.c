/* SPDX-License-Identifier: MIT */
/*
 * httpd: an HTTP/1.1 server on libctx whose shutdown loses nothing.
 *
 *   GET /work          bounded CPU work under a per-request deadline
 *   GET /stream        Server-Sent Events until the drain, then a closing
 *                      event and the end of the chunked body
 *   GET /healthz       200, then 503 from the lame duck on
 *   GET /metrics       libctx's and the server's metrics, Prometheus text
 *   GET /debug/tasks   ctx_dump: every live task and what it waits on
 *   GET /stuck         (--stuck only) a handler that ignores cancellation
 *
 * On SIGTERM the shutdown manager (ctx/shutdown.h) drives the phases; the
 * server prints one timeline line per phase and a summary at the end.
 * Uses only the public headers, and Node's http_parser (Debian's
 * libhttp-parser-dev) to parse requests.
 *
 * DESIGN
 *
 * Contexts. Connections are tasks of a group on the manager's draining
 * context: when the drain begins every connection task sees its context
 * done and winds down in its own way: an idle keep-alive connection closes
 * (after a short grace for a request already on the wire), a stream sends
 * its closing event, a busy one finishes its request and closes. Requests
 * run on contexts under the work context (one per connection, one per
 * request with the request deadline), which only the force phase cancels,
 * so the drain never cuts a request. The accept loop runs on the ingress
 * context: the refuse phase ends it and it closes the listener. The
 * libctx cancellation-latency histogram then measures, for each
 * connection, the time from the drain to its task returning.
 *
 * In flight. A connection is entered with the manager when accepted and
 * left when closed, so the drain waits for every connection (streams
 * included) to close; once refusing, a connection the kernel still
 * queued is closed unanswered: it never sent a request we read.
 *
 * Force. A force action shuts down the sockets of the connections still
 * open, which ends any read or write blocked on them; a handler that
 * ignores everything (/stuck) is what the manager then names before it
 * exits non-zero.
 */
#define _GNU_SOURCE
#include <ctx/ctx.h>

#include <http_parser.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define RBUF 8192

/* ------------------------------------------------------------ options */

static struct {
    int port;
    const char *port_file;
    ctx_time_t lame_duck, drain, force, request_timeout, idle_timeout;
    ctx_time_t stream_interval, close_grace;
    int work_kib;
    bool stuck;
} opt = {0,
         NULL,
         CTX_SECOND,
         5 * CTX_SECOND,
         2 * CTX_SECOND,
         2 * CTX_SECOND,
         30 * CTX_SECOND,
         100 * CTX_MILLISECOND,
         50 * CTX_MILLISECOND,
         16,
         false};

/* ------------------------------------------------------------ counters */

static struct {
    atomic_long conns, requests, complete, failed, bad;
    atomic_long code200, code404, code503, code_other;
    atomic_long work200, health200, health503;
    atomic_long streams, streams_clean, streams_cut;
    atomic_long closed_idle;   /* drain: no request came within the grace */
    atomic_long swept;         /* taken from the accept queue at refuse */
    atomic_long closed_unread; /* closed with request bytes not read */
    atomic_long busy;          /* requests being handled now */
    atomic_long streams_open;  /* streams open now */
} n;

static ctx_shutdown_t *sd;

/* ------------------------------------------------------------ conns */

struct conn {
    int fd;
    int id;
    struct conn *next, **pprev; /* open connections; guarded by reg_mu */
    http_parser parser;
    char url[256];
    size_t url_len;
    bool in_message, complete, url_long;
    bool entered; /* counted in flight by itself (else by the acceptor) */
    char rbuf[RBUF];
    size_t rlen, rpos;
};

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct conn *open_conns;

static void reg_add(struct conn *k)
{
    pthread_mutex_lock(&reg_mu);
    k->next = open_conns;
    k->pprev = &open_conns;
    if (open_conns)
        open_conns->pprev = &k->next;
    open_conns = k;
    pthread_mutex_unlock(&reg_mu);
}

static void reg_remove(struct conn *k)
{
    pthread_mutex_lock(&reg_mu);
    *k->pprev = k->next;
    if (k->next)
        k->next->pprev = k->pprev;
    pthread_mutex_unlock(&reg_mu);
}

/* The force action: end every blocked read and write on open sockets. */
static int shut_sockets(ctx_t *c, void *arg)
{
    int k = 0;
    (void)c;
    (void)arg;
    pthread_mutex_lock(&reg_mu);
    for (struct conn *p = open_conns; p; p = p->next, k++)
        shutdown(p->fd, SHUT_RDWR);
    pthread_mutex_unlock(&reg_mu);
    printf("[%+8.3f s] force: shut down %d open connection(s)\n",
           (double)ctx_shutdown_elapsed(sd) / 1e9, k);
    return 0;
}

/* ------------------------------------------------------------ parsing */

static int on_begin(http_parser *p)
{
    struct conn *k = p->data;
    k->url_len = 0;
    k->url_long = false;
    k->in_message = true;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct conn *k = p->data;
    if (k->url_len + len >= sizeof k->url) {
        k->url_long = true;
        len = sizeof k->url - 1 - k->url_len;
    }
    memcpy(k->url + k->url_len, at, len);
    k->url_len += len;
    k->url[k->url_len] = 0;
    return 0;
}

static int on_complete(http_parser *p)
{
    struct conn *k = p->data;
    k->complete = true;
    k->in_message = false;
    http_parser_pause(p, 1); /* one request at a time */
    return 0;
}

static http_parser_settings settings;

/* Parse what is buffered. 0 ok (maybe a complete request), -1 bad. */
static int parse(struct conn *k)
{
    size_t got;
    enum http_errno e;
    if (k->rpos == k->rlen)
        return 0;
    got = http_parser_execute(&k->parser, &settings, k->rbuf + k->rpos,
                              k->rlen - k->rpos);
    k->rpos += got;
    e = HTTP_PARSER_ERRNO(&k->parser);
    return e == HPE_OK || e == HPE_PAUSED ? 0 : -1;
}

/* ------------------------------------------------------------ writing */

static bool write_all(ctx_t *c, int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t w = ctx_write(c, fd, p, len);
        if (w <= 0)
            return false;
        p += w;
        len -= (size_t)w;
    }
    return true;
}

static void count_code(int code)
{
    atomic_long *k = code == 200   ? &n.code200
                     : code == 404 ? &n.code404
                     : code == 503 ? &n.code503
                                   : &n.code_other;
    atomic_fetch_add(k, 1);
}

/* A whole response with a Content-Length; true if it was all written. */
static bool respond(ctx_t *c, struct conn *k, int code, const char *ctype,
                    const char *body, size_t blen, bool keep)
{
    char buf[4096];
    const char *reason = code == 200   ? "OK"
                         : code == 404 ? "Not Found"
                         : code == 400 ? "Bad Request"
                                       : "Service Unavailable";
    int h = snprintf(buf, sizeof buf,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
                     "Content-Length: %zu\r\nConnection: %s\r\n\r\n",
                     code, reason, ctype, blen, keep ? "keep-alive" : "close");
    bool ok;
    if ((size_t)h + blen <= sizeof buf) {
        memcpy(buf + h, body, blen);
        ok = write_all(c, k->fd, buf, (size_t)h + blen);
    } else {
        ok = write_all(c, k->fd, buf, (size_t)h) &&
             write_all(c, k->fd, body, blen);
    }
    if (ok) {
        atomic_fetch_add(&n.complete, 1);
        count_code(code);
    } else {
        atomic_fetch_add(&n.failed, 1);
    }
    return ok;
}

/* ------------------------------------------------------------ handlers */

static unsigned char work_data[64 * 1024];

/* FNV-1a over opt.work_kib KiB of work_data (wrapping), in 4 KiB chunks
 * with a look at the deadline before each (bench/go/httpd does the same). */
static int do_work(ctx_t *rq, uint32_t *out)
{
    uint32_t h = 2166136261u;
    size_t len = (size_t)opt.work_kib * 1024;
    for (size_t off = 0; off < len; off += 4096) {
        const unsigned char *p = work_data + off % sizeof work_data;
        if (ctx_done(rq))
            return ctx_err(rq);
        for (size_t i = 0; i < 4096; i++)
            h = (h ^ p[i]) * 16777619u;
    }
    *out = h;
    return 0;
}

/* Server-Sent Events on a chunked body, until the drain (soft) ends it. */
static bool stream(ctx_t *soft, ctx_t *hard, struct conn *k)
{
    static const char head[] = "HTTP/1.1 200 OK\r\n"
                               "Content-Type: text/event-stream\r\n"
                               "Cache-Control: no-cache\r\n"
                               "Transfer-Encoding: chunked\r\n"
                               "Connection: close\r\n\r\n";
    char ev[128], chunk[160];
    bool ok;
    int len;

    atomic_fetch_add(&n.streams, 1);
    atomic_fetch_add(&n.streams_open, 1);
    ok = write_all(hard, k->fd, head, sizeof head - 1);
    for (long i = 0; ok; i++) {
        if (ctx_sleep(soft, opt.stream_interval) != 0)
            break; /* the drain: finish cleanly */
        len = snprintf(ev, sizeof ev, "event: tick\ndata: %ld\n\n", i);
        len = snprintf(chunk, sizeof chunk, "%x\r\n%s\r\n", len, ev);
        ok = write_all(hard, k->fd, chunk, (size_t)len);
    }
    if (ok) {
        len =
            snprintf(ev, sizeof ev, "event: close\ndata: server draining\n\n");
        len = snprintf(chunk, sizeof chunk, "%x\r\n%s\r\n0\r\n\r\n", len, ev);
        ok = write_all(hard, k->fd, chunk, (size_t)len);
    }
    atomic_fetch_sub(&n.streams_open, 1);
    atomic_fetch_add(ok ? &n.streams_clean : &n.streams_cut, 1);
    atomic_fetch_add(ok ? &n.complete : &n.failed, 1);
    if (ok)
        count_code(200);
    return false; /* the connection closes after a stream */
}

static bool metrics(ctx_t *rq, struct conn *k, bool keep)
{
    char *buf;
    size_t need = 0, off;
    bool ok;
    ctx_metrics_text(NULL, 0, &need);
    need += 2048;
    if (!(buf = malloc(need)))
        return respond(rq, k, 503, "text/plain", "no memory\n", 10, false);
    if (ctx_metrics_text(buf, need, &off) != 0)
        off = 0;
    off += (size_t)snprintf(
        buf + off, need - off,
        "# TYPE httpd_requests_total counter\nhttpd_requests_total %ld\n"
        "# TYPE httpd_responses_total counter\n"
        "httpd_responses_total{code=\"200\"} %ld\n"
        "httpd_responses_total{code=\"404\"} %ld\n"
        "httpd_responses_total{code=\"503\"} %ld\n"
        "# TYPE httpd_streams_open gauge\nhttpd_streams_open %ld\n"
        "# TYPE httpd_inflight gauge\nhttpd_inflight %lld\n"
        "# TYPE httpd_phase gauge\nhttpd_phase %d\n",
        atomic_load(&n.requests), atomic_load(&n.code200),
        atomic_load(&n.code404), atomic_load(&n.code503),
        atomic_load(&n.streams_open), (long long)ctx_shutdown_inflight(sd),
        (int)ctx_shutdown_phase(sd));
    ok = respond(rq, k, 200, "text/plain; version=0.0.4", buf, off, keep);
    free(buf);
    return ok;
}

static bool debug_tasks(ctx_t *rq, struct conn *k, bool keep)
{
    int fd = memfd_create("dump", MFD_CLOEXEC);
    char *buf = NULL;
    off_t len;
    bool ok;
    if (fd < 0 || ctx_dump(fd) != 0 || (len = lseek(fd, 0, SEEK_CUR)) < 0 ||
        !(buf = malloc((size_t)len + 1)) ||
        pread(fd, buf, (size_t)len, 0) != len) {
        if (fd >= 0)
            close(fd);
        free(buf);
        return respond(rq, k, 503, "text/plain", "dump failed\n", 12, false);
    }
    close(fd);
    ok = respond(rq, k, 200, "text/plain", buf, (size_t)len, keep);
    free(buf);
    return ok;
}

/* A handler that ignores every cancellation: the force phase names it. */
static bool stuck(void)
{
    for (;;)
        sleep(3600);
    return false;
}

/* Serve k's complete request. Returns whether to keep the connection. */
static bool handle(ctx_t *soft, ctx_t *hard, ctx_t *rq, struct conn *k)
{
    char name[48];
    const char *u = k->url;
    bool keep = http_should_keep_alive(&k->parser) && !ctx_done(soft);
    ctx_phase_t ph = ctx_shutdown_phase(sd);

    atomic_fetch_add(&n.requests, 1);
    snprintf(name, sizeof name, "conn %d: %s %.24s", k->id,
             http_method_str((enum http_method)k->parser.method), u);
    ctx_task_set_name(name);
    if (k->parser.method != HTTP_GET || k->url_long)
        return respond(rq, k, 404, "text/plain", "not found\n", 10, keep);
    if (strcmp(u, "/work") == 0 || strcmp(u, "/") == 0) {
        uint32_t h = 0;
        char body[32];
        int len;
        if (do_work(rq, &h) != 0)
            return respond(rq, k, 503, "text/plain", "deadline exceeded\n", 18,
                           false);
        len = snprintf(body, sizeof body, "ok %08x\n", h);
        atomic_fetch_add(&n.work200, 1);
        return respond(rq, k, 200, "text/plain", body, (size_t)len, keep);
    }
    if (strcmp(u, "/healthz") == 0) {
        if (ph == CTX_PHASE_SERVING) {
            atomic_fetch_add(&n.health200, 1);
            return respond(rq, k, 200, "text/plain", "ok\n", 3, keep);
        }
        atomic_fetch_add(&n.health503, 1);
        return respond(rq, k, 503, "text/plain", "shutting down\n", 14, keep);
    }
    if (strcmp(u, "/stream") == 0)
        return stream(soft, hard, k);
    if (strcmp(u, "/metrics") == 0)
        return metrics(rq, k, keep);
    if (strcmp(u, "/debug/tasks") == 0)
        return debug_tasks(rq, k, keep);
    if (opt.stuck && strcmp(u, "/stuck") == 0)
        return stuck();
    return respond(rq, k, 404, "text/plain", "not found\n", 10, keep);
}

/*
 * Between requests: wait for the next one. 1: bytes to read; 0: close
 * (idle timeout, client gone, or the drain and no request came within
 * the grace).
 */
static int idle_wait(ctx_t *soft, ctx_t *hard, struct conn *k)
{
    struct pollfd p = {k->fd, POLLIN, 0};
    int r = ctx_poll(soft, &p, 1, opt.idle_timeout);
    if (r > 0)
        return 1;
    if (r == 0 || !ctx_done(soft))
        return 0;
    /* Draining: a request may already be on the wire; serve it. */
    p.revents = 0;
    if (ctx_poll(hard, &p, 1, opt.close_grace) > 0)
        return 1;
    atomic_fetch_add(&n.closed_idle, 1);
    return 0;
}

static void serve(ctx_t *soft, ctx_t *hard, struct conn *k)
{
    ctx_t *rq = NULL;
    for (;;) {
        ssize_t got;
        if (parse(k) != 0) {
            atomic_fetch_add(&n.bad, 1);
            respond(hard, k, 400, "text/plain", "bad request\n", 12, false);
            break;
        }
        if (k->complete) {
            bool keep;
            if (!rq && ctx_with_timeout(hard, opt.request_timeout, &rq) != 0)
                break;
            atomic_fetch_add(&n.busy, 1);
            keep = handle(soft, hard, rq, k);
            atomic_fetch_sub(&n.busy, 1);
            ctx_cancel(rq);
            ctx_release(rq);
            rq = NULL;
            if (!keep)
                break;
            k->complete = false;
            http_parser_pause(&k->parser, 0);
            continue;
        }
        if (k->rpos == k->rlen)
            k->rpos = k->rlen = 0;
        if (k->rlen == sizeof k->rbuf) { /* a request larger than RBUF */
            memmove(k->rbuf, k->rbuf + k->rpos, k->rlen - k->rpos);
            k->rlen -= k->rpos;
            k->rpos = 0;
            if (k->rlen == sizeof k->rbuf)
                break;
        }
        if (!k->in_message && k->rlen == 0 && !idle_wait(soft, hard, k))
            break;
        if (!rq && ctx_with_timeout(hard, opt.request_timeout, &rq) != 0)
            break;
        got = ctx_read(rq, k->fd, k->rbuf + k->rlen, sizeof k->rbuf - k->rlen);
        if (got <= 0)
            break; /* closed, reset, or the request deadline */
        k->rlen += (size_t)got;
    }
    if (rq) {
        ctx_cancel(rq);
        ctx_release(rq);
    }
}

/* A connection task: `soft` is the group's context, done in the drain. */
static int conn_task(ctx_t *soft, void *arg)
{
    struct conn *k = arg;
    bool entered = k->entered;
    ctx_t *hard;
    if (ctx_with_cancel(ctx_shutdown_work(sd), &hard) == 0) {
        serve(soft, hard, k);
        ctx_cancel(hard);
        ctx_release(hard);
    }
    reg_remove(k);
    {
        int unread = 0;
        if (k->rpos < k->rlen ||
            (ioctl(k->fd, FIONREAD, &unread) == 0 && unread > 0))
            atomic_fetch_add(&n.closed_unread, 1);
    }
    close(k->fd);
    free(k);
    if (entered)
        ctx_shutdown_leave(sd);
    return 0;
}

/* ------------------------------------------------------------ accept */

struct server {
    int lfd;
    ctx_group_t *conns;
};

/* Serve fd as a task of g; `entered`: it counts itself in flight. */
static void start_conn(ctx_group_t *g, int fd, int id, bool entered)
{
    ctx_go_opts_t go = CTX_GO_OPTS_INIT;
    struct conn *k = calloc(1, sizeof *k);
    char name[32];
    int one = 1;
    if (!k) {
        close(fd);
        if (entered)
            ctx_shutdown_leave(sd);
        return;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    k->fd = fd;
    k->id = id;
    k->entered = entered;
    http_parser_init(&k->parser, HTTP_REQUEST);
    k->parser.data = k;
    reg_add(k);
    atomic_fetch_add(&n.conns, 1);
    snprintf(name, sizeof name, "conn %d", id);
    go.name = name;
    if (ctx_group_go_opts(g, &go, conn_task, k) != 0) {
        reg_remove(k);
        close(fd);
        free(k);
        if (entered)
            ctx_shutdown_leave(sd);
    }
}

/*
 * The accept loop is itself work in flight (main entered it), so the
 * drain waits for it. When the ingress ends it takes, without waiting,
 * the connections the kernel already queued (their clients think they
 * are connected and have sent requests: closing the listener would
 * reset them), closes the listener, and serves those before it leaves.
 */
static int accept_loop(ctx_t *c, void *arg)
{
    struct server *s = arg;
    ctx_group_t *swept = NULL;
    int id = 0, fd;
    for (;;) {
        fd = ctx_accept(c, s->lfd, NULL, NULL);
        if (fd < 0) {
            if (errno == ECANCELED || errno == ETIMEDOUT)
                break;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
                errno == ENOMEM) /* out of something: back off a little */
                ctx_sleep(c, 10 * CTX_MILLISECOND);
            continue;
        }
        if (ctx_shutdown_enter(sd) == 0)
            start_conn(s->conns, fd, ++id, true);
        else if (swept || ctx_group_new(ctx_shutdown_draining(sd), &swept) ==
                              0) /* refusing: covered by our own entry */
            start_conn(swept, fd, ++id, false);
        else
            close(fd);
    }
    while ((fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
        atomic_fetch_add(&n.swept, 1);
        if (swept || ctx_group_new(ctx_shutdown_draining(sd), &swept) == 0)
            start_conn(swept, fd, ++id, false);
        else
            close(fd);
    }
    close(s->lfd); /* refused from now on */
    ctx_group_free(swept);
    ctx_shutdown_leave(sd);
    return 0;
}

static int stop_listener(ctx_t *c, void *arg)
{
    (void)c;
    return ctx_group_wait(arg);
}

/* ------------------------------------------------------------ timeline */

static void on_phase(ctx_shutdown_t *m, ctx_phase_t ph, ctx_time_t e, void *arg)
{
    static const char *const what[] = {
        "",
        "/healthz answers 503; work still accepted",
        "listener closed; new connections refused",
        "streams told to finish; idle connections close",
        "work context cancelled",
        "all phases done"};
    (void)arg;
    printf("[%+8.3f s] %-9s in flight: %lld connection(s), %ld request(s) "
           "being served, %ld stream(s) open; %s\n",
           (double)e / 1e9, ctx_phase_name(ph),
           (long long)ctx_shutdown_inflight(m), atomic_load(&n.busy),
           atomic_load(&n.streams_open), what[ph]);
    fflush(stdout);
}

static void print_latency(void)
{
    ctx_latency_t h;
    int64_t max = 0;
    ctx_cancel_latency(&h);
    printf("drain latency (libctx cancellation latency: from the drain to "
           "each connection task returning), %lld task(s):\n",
           (long long)h.count);
    for (int i = 0; i < CTX_LATENCY_BUCKETS; i++)
        if (h.bucket[i] > max)
            max = h.bucket[i];
    for (int i = 0; i < CTX_LATENCY_BUCKETS; i++) {
        ctx_time_t b = ctx_latency_bound(i);
        char bar[41];
        int w;
        if (!h.bucket[i])
            continue;
        w = (int)(h.bucket[i] * 40 / (max ? max : 1));
        memset(bar, '#', (size_t)(w ? w : 1));
        bar[w ? w : 1] = 0;
        if (b == CTX_NO_DEADLINE)
            printf("   >%9.3f ms %6lld %s\n",
                   (double)ctx_latency_bound(i - 1) / 1e6,
                   (long long)h.bucket[i], bar);
        else
            printf("  <=%9.3f ms %6lld %s\n", (double)b / 1e6,
                   (long long)h.bucket[i], bar);
    }
}

static void print_summary(int rc)
{
    printf("summary: shutdown %s in %.3f s; connections %ld; requests %ld; "
           "complete responses %ld (200: %ld, 404: %ld, 503: %ld, other: "
           "%ld); failed responses %ld; bad requests %ld; /work 200 %ld; "
           "/healthz 200 %ld, 503 %ld; streams %ld, closed with closing "
           "event %ld, cut %ld; connections closed idle in the drain %ld, "
           "closed with unread bytes %ld\n",
           rc == 0 ? "clean" : ctx_errname(rc),
           (double)ctx_shutdown_elapsed(sd) / 1e9, atomic_load(&n.conns),
           atomic_load(&n.requests), atomic_load(&n.complete),
           atomic_load(&n.code200), atomic_load(&n.code404),
           atomic_load(&n.code503), atomic_load(&n.code_other),
           atomic_load(&n.failed), atomic_load(&n.bad), atomic_load(&n.work200),
           atomic_load(&n.health200), atomic_load(&n.health503),
           atomic_load(&n.streams), atomic_load(&n.streams_clean),
           atomic_load(&n.streams_cut), atomic_load(&n.closed_idle),
           atomic_load(&n.closed_unread));
    /* The same for scripts (the demo and the tests compare them). */
    printf("counts: requests=%ld complete=%ld failed=%ld work200=%ld "
           "health200=%ld health503=%ld streams=%ld streams_clean=%ld "
           "streams_cut=%ld closed_idle=%ld closed_unread=%ld swept=%ld\n",
           atomic_load(&n.requests), atomic_load(&n.complete),
           atomic_load(&n.failed), atomic_load(&n.work200),
           atomic_load(&n.health200), atomic_load(&n.health503),
           atomic_load(&n.streams), atomic_load(&n.streams_clean),
           atomic_load(&n.streams_cut), atomic_load(&n.closed_idle),
           atomic_load(&n.closed_unread), atomic_load(&n.swept));
}

/* ------------------------------------------------------------ main */

static ctx_time_t ms_arg(const char *s)
{
    return (ctx_time_t)atoll(s) * CTX_MILLISECOND;
}

static int parse_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--stuck") == 0) {
            opt.stuck = true;
            continue;
        }
        if (!v)
            return -1;
        i++;
        if (strcmp(a, "--port") == 0)
            opt.port = atoi(v);
        else if (strcmp(a, "--port-file") == 0)
            opt.port_file = v;
        else if (strcmp(a, "--lame-duck-ms") == 0)
            opt.lame_duck = ms_arg(v);
        else if (strcmp(a, "--drain-ms") == 0)
            opt.drain = ms_arg(v);
        else if (strcmp(a, "--force-ms") == 0)
            opt.force = ms_arg(v);
        else if (strcmp(a, "--request-timeout-ms") == 0)
            opt.request_timeout = ms_arg(v);
        else if (strcmp(a, "--stream-interval-ms") == 0)
            opt.stream_interval = ms_arg(v);
        else if (strcmp(a, "--work-kib") == 0)
            opt.work_kib = atoi(v);
        else
            return -1;
    }
    return opt.port < 0 || opt.port > 65535 || opt.work_kib < 0 ? -1 : 0;
}

static int listen_on(int port)
{
    struct sockaddr_in a;
    socklen_t al = sizeof a;
    int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(fd, 1024) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &al) != 0 ||
        fcntl(fd, F_SETFL, O_NONBLOCK) != 0) {
        close(fd);
        return -1;
    }
    printf("httpd: listening on 127.0.0.1:%d (pid %d)\n", ntohs(a.sin_port),
           (int)getpid());
    fflush(stdout);
    if (opt.port_file) {
        FILE *f = fopen(opt.port_file, "w");
        if (f) {
            fprintf(f, "%d\n", ntohs(a.sin_port));
            fclose(f);
        }
    }
    return fd;
}

int main(int argc, char **argv)
{
    ctx_shutdown_opts_t so = CTX_SHUTDOWN_OPTS_INIT;
    struct server srv;
    ctx_group_t *acc;
    int rc;

    signal(SIGPIPE, SIG_IGN);
    if (ctx_signal_init() != 0 || parse_args(argc, argv) != 0) {
        fprintf(stderr,
                "usage: httpd [--port N] [--port-file F] [--lame-duck-ms N] "
                "[--drain-ms N] [--force-ms N] [--request-timeout-ms N] "
                "[--stream-interval-ms N] [--work-kib N] [--stuck]\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (size_t i = 0; i < sizeof work_data; i++)
        work_data[i] = (unsigned char)(i * 131u + 7u);
    http_parser_settings_init(&settings);
    settings.on_message_begin = on_begin;
    settings.on_url = on_url;
    settings.on_message_complete = on_complete;

    so.lame_duck = opt.lame_duck;
    so.drain = opt.drain;
    so.force = opt.force;
    so.on_phase = on_phase;
    so.exit_status = 3;
    if ((rc = ctx_shutdown_new(&so, &sd)) != 0) {
        fprintf(stderr, "httpd: shutdown manager: %s\n", ctx_errname(rc));
        return 1;
    }
    if ((srv.lfd = listen_on(opt.port)) < 0) {
        perror("httpd: listen");
        return 1;
    }
    if ((rc = ctx_group_new(ctx_shutdown_draining(sd), &srv.conns)) != 0 ||
        (rc = ctx_group_new(ctx_shutdown_ingress(sd), &acc)) != 0 ||
        (rc = ctx_shutdown_enter(sd)) != 0 || /* the accept loop's */
        (rc = ctx_group_go(acc, accept_loop, &srv)) != 0 ||
        (rc = ctx_shutdown_register(sd, "listener", stop_listener, acc, 0)) !=
            0 ||
        (rc = ctx_shutdown_on_force(sd, "shut down sockets", shut_sockets,
                                    NULL)) != 0) {
        fprintf(stderr, "httpd: start: %s\n", ctx_errname(rc));
        return 1;
    }
    rc = ctx_shutdown_wait(sd);
    ctx_group_free(acc);
    ctx_group_free(srv.conns);
    print_latency();
    print_summary(rc);
    ctx_shutdown_free(sd);
    return rc == 0 && atomic_load(&n.failed) == 0 &&
                   atomic_load(&n.streams_cut) == 0
               ? 0
               : 1;
}
