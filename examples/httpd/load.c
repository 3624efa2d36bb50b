/* SPDX-License-Identifier: MIT */
/*
 * httpload: the clients of the httpd demo and test, on libctx too.
 *
 *   httpload --port P [--conns N] [--streams S] [--health-ms M]
 *            [--duration-ms D] [--term PID --term-after-ms T]
 *            [--hold PATH]
 *
 * --conns: N keep-alive connections sending GET /work one after another
 * until the duration ends or the server refuses them; --streams: S
 * /stream clients that check each event and that the stream ends with
 * its closing event and the chunked terminator; --health-ms: a probe of
 * /healthz every M ms, as a load balancer would; --term: send SIGTERM to
 * the server after T ms; --hold: one request to PATH, waiting for its
 * answer (for a handler that never answers).
 *
 * Every response is parsed with http_parser. A request is lost when the
 * connection ends before its response is complete, except on a new
 * connection reset before any byte of answer: that one is "unanswered"
 * (the kernel queued the connection and the listener closed; the
 * server's own count tells whether it read the request). A stream is cut
 * when it ends without its closing event. The last lines are counts, as
 * "key=value" for scripts; the exit status is 1 if anything was lost.
 */
#define _GNU_SOURCE
#include <ctx/ctx.h>

#include <http_parser.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct {
    int port, conns, streams;
    ctx_time_t health, duration, term_after;
    pid_t term;
    const char *hold;
} opt = {0, 0, 0, 0, 10 * CTX_SECOND, 0, 0, NULL};

static struct {
    atomic_long sent, complete, s200, s503, sother, lost, refused, errors;
    atomic_long closed_by_server, unanswered;
    atomic_long streams, clean, cut, ticks;
    atomic_long h200, h503, hrefused, hlost;
    atomic_llong first_503_ns;
} n;

static ctx_time_t t0;

/* ------------------------------------------------------------ responses */

struct resp {
    http_parser p;
    bool started, complete, saw_close_event;
    long ticks;
    char line[64]; /* the SSE line being read */
    size_t line_len;
};

static int on_begin(http_parser *p)
{
    ((struct resp *)p->data)->started = true;
    return 0;
}

static int on_complete(http_parser *p)
{
    ((struct resp *)p->data)->complete = true;
    http_parser_pause(p, 1);
    return 0;
}

/* SSE lines of a /stream body: count ticks, note the closing event. */
static int on_body(http_parser *p, const char *at, size_t len)
{
    struct resp *r = p->data;
    for (size_t i = 0; i < len; i++) {
        if (at[i] != '\n') {
            if (r->line_len + 1 < sizeof r->line)
                r->line[r->line_len++] = at[i];
            continue;
        }
        r->line[r->line_len] = 0;
        if (strcmp(r->line, "event: tick") == 0)
            r->ticks++;
        else if (strcmp(r->line, "event: close") == 0)
            r->saw_close_event = true;
        r->line_len = 0;
    }
    return 0;
}

static http_parser_settings settings;

static void resp_init(struct resp *r)
{
    memset(r, 0, sizeof *r);
    http_parser_init(&r->p, HTTP_RESPONSE);
    r->p.data = r;
}

/*
 * Read one response on fd into r (buffer `b` keeps what follows it).
 * 0: complete; -1: the connection ended first (or c did).
 */
struct rbuf {
    char d[16384];
    size_t len, pos;
};

static struct rbuf *rbuf_new(void)
{
    struct rbuf *b = malloc(sizeof *b);
    if (b)
        b->len = b->pos = 0;
    return b;
}

static int read_response(ctx_t *c, int fd, struct rbuf *b, struct resp *r)
{
    for (;;) {
        if (b->pos < b->len) {
            size_t got = http_parser_execute(&r->p, &settings, b->d + b->pos,
                                             b->len - b->pos);
            enum http_errno e = HTTP_PARSER_ERRNO(&r->p);
            b->pos += got;
            if (r->complete)
                return 0;
            if (e != HPE_OK)
                return -1;
        }
        b->len = b->pos = 0;
        ssize_t k = ctx_read(c, fd, b->d, sizeof b->d);
        if (k <= 0) {
            if (k == 0) /* EOF: lets a close-delimited body complete */
                http_parser_execute(&r->p, &settings, NULL, 0);
            return r->complete ? 0 : -1;
        }
        b->len = (size_t)k;
    }
}

/* ------------------------------------------------------------ connecting */

/* A connected socket, or -1 (errno ECONNREFUSED when refused). */
static int dial(ctx_t *c)
{
    struct sockaddr_in a;
    int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)opt.port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (ctx_connect(c, fd, (struct sockaddr *)&a, sizeof a) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static bool send_all(ctx_t *c, int fd, const char *s)
{
    size_t len = strlen(s);
    while (len) {
        ssize_t w = ctx_write(c, fd, s, len);
        if (w <= 0)
            return false;
        s += w;
        len -= (size_t)w;
    }
    return true;
}

/* ------------------------------------------------------------ clients */

struct job {
    ctx_t *stop; /* no new request once done */
};

static const char work_req[] = "GET /work HTTP/1.1\r\nHost: demo\r\n\r\n";

/* One keep-alive connection of requests, reconnecting when the server
 * closes it, until `stop` or a refused connect. */
static int load_conn(ctx_t *c, void *arg)
{
    struct job *j = arg;
    struct rbuf *b = malloc(sizeof *b);
    int fd = -1;
    bool fresh = false;
    if (!b)
        return ENOMEM;
    while (!ctx_done(j->stop)) {
        struct resp r;
        if (fd < 0) {
            fresh = true;
            b->len = b->pos = 0;
            if ((fd = dial(c)) < 0) {
                atomic_fetch_add(errno == ECONNREFUSED ? &n.refused : &n.errors,
                                 1);
                break;
            }
        }
        resp_init(&r);
        if (!send_all(c, fd, work_req)) {
            /* The server closed between responses: nothing was sent. */
            close(fd);
            fd = -1;
            continue;
        }
        atomic_fetch_add(&n.sent, 1);
        if (read_response(c, fd, b, &r) != 0) {
            /* Reset before a byte of answer on a new connection: the
             * kernel had queued it and the listener closed (the server's
             * count says whether it ever read the request). */
            atomic_fetch_add(fresh && !r.started ? &n.unanswered : &n.lost, 1);
            close(fd);
            fd = -1;
            continue;
        }
        fresh = false;
        atomic_fetch_add(&n.complete, 1);
        atomic_fetch_add(r.p.status_code == 200   ? &n.s200
                         : r.p.status_code == 503 ? &n.s503
                                                  : &n.sother,
                         1);
        if (!http_should_keep_alive(&r.p)) {
            atomic_fetch_add(&n.closed_by_server, 1);
            close(fd);
            fd = -1;
        }
    }
    if (fd >= 0)
        close(fd);
    free(b);
    return 0;
}

static int stream_client(ctx_t *c, void *arg)
{
    struct rbuf *b = rbuf_new();
    struct resp r;
    int fd;
    (void)arg;
    if (!b)
        return ENOMEM;
    resp_init(&r);
    if ((fd = dial(c)) < 0) {
        atomic_fetch_add(&n.errors, 1);
        free(b);
        return 0;
    }
    atomic_fetch_add(&n.streams, 1);
    if (send_all(c, fd, "GET /stream HTTP/1.1\r\nHost: demo\r\n\r\n") &&
        read_response(c, fd, b, &r) == 0 && r.saw_close_event &&
        r.p.status_code == 200)
        atomic_fetch_add(&n.clean, 1);
    else
        atomic_fetch_add(&n.cut, 1);
    atomic_fetch_add(&n.ticks, r.ticks);
    close(fd);
    free(b);
    return 0;
}

/* A load balancer's health check: a fresh connection every period. */
static int health_probe(ctx_t *c, void *arg)
{
    struct job *j = arg;
    struct rbuf *b = malloc(sizeof *b);
    if (!b)
        return ENOMEM;
    while (!ctx_done(j->stop)) {
        struct resp r;
        int fd = dial(c);
        if (fd < 0) {
            atomic_fetch_add(&n.hrefused, 1);
            break; /* the listener is closed: the server is going */
        }
        b->len = b->pos = 0;
        resp_init(&r);
        if (send_all(c, fd,
                     "GET /healthz HTTP/1.1\r\nHost: demo\r\n"
                     "Connection: close\r\n\r\n") &&
            read_response(c, fd, b, &r) == 0) {
            if (r.p.status_code == 503) {
                long long zero = 0;
                atomic_compare_exchange_strong(&n.first_503_ns, &zero,
                                               ctx_now() - t0);
                atomic_fetch_add(&n.h503, 1);
            } else {
                atomic_fetch_add(&n.h200, 1);
            }
        } else if (!r.started) { /* reset in the accept queue */
            atomic_fetch_add(&n.hrefused, 1);
            close(fd);
            break;
        } else {
            atomic_fetch_add(&n.hlost, 1);
        }
        close(fd);
        ctx_sleep(j->stop, opt.health);
    }
    free(b);
    return 0;
}

static int terminate(ctx_t *c, void *arg)
{
    (void)arg;
    if (ctx_sleep(c, opt.term_after) == 0) {
        printf("httpload: [%+8.3f s] SIGTERM to %d\n",
               (double)(ctx_now() - t0) / 1e9, (int)opt.term);
        kill(opt.term, SIGTERM);
    }
    return 0;
}

static int hold(ctx_t *c, void *arg)
{
    struct rbuf *b = rbuf_new();
    struct resp r;
    char req[256];
    int fd;
    (void)arg;
    if (!b)
        return ENOMEM;
    resp_init(&r);
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: demo\r\n\r\n",
             opt.hold);
    if ((fd = dial(c)) >= 0) {
        atomic_fetch_add(&n.sent, 1);
        if (send_all(c, fd, req) && read_response(c, fd, b, &r) == 0)
            atomic_fetch_add(&n.complete, 1);
        else
            atomic_fetch_add(&n.lost, 1);
        close(fd);
    }
    free(b);
    return 0;
}

/* ------------------------------------------------------------ main */

static int args(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (strcmp(a, "--port") == 0)
            opt.port = atoi(v);
        else if (strcmp(a, "--conns") == 0)
            opt.conns = atoi(v);
        else if (strcmp(a, "--streams") == 0)
            opt.streams = atoi(v);
        else if (strcmp(a, "--health-ms") == 0)
            opt.health = (ctx_time_t)atoll(v) * CTX_MILLISECOND;
        else if (strcmp(a, "--duration-ms") == 0)
            opt.duration = (ctx_time_t)atoll(v) * CTX_MILLISECOND;
        else if (strcmp(a, "--term") == 0)
            opt.term = (pid_t)atoi(v);
        else if (strcmp(a, "--term-after-ms") == 0)
            opt.term_after = (ctx_time_t)atoll(v) * CTX_MILLISECOND;
        else if (strcmp(a, "--hold") == 0)
            opt.hold = v;
        else
            return -1;
    }
    return argc % 2 == 1 && opt.port > 0 && opt.port < 65536 ? 0 : -1;
}

int main(int argc, char **argv)
{
    ctx_group_t *g;
    struct job j;
    int rc = 0;

    signal(SIGPIPE, SIG_IGN);
    if (args(argc, argv) != 0) {
        fprintf(stderr, "usage: httpload --port P [--conns N] [--streams S] "
                        "[--health-ms M] [--duration-ms D] [--term PID "
                        "--term-after-ms T] [--hold PATH]\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    settings.on_message_begin = on_begin;
    settings.on_body = on_body;
    settings.on_message_complete = on_complete;
    t0 = ctx_now();
    if (ctx_with_timeout(ctx_background(), opt.duration, &j.stop) != 0 ||
        ctx_group_new(ctx_background(), &g) != 0)
        return 1;
    ctx_group_set_limit(g, -1);
    for (int i = 0; i < opt.streams && rc == 0; i++)
        rc = ctx_group_go(g, stream_client, &j);
    /* Streams first, so that they are open when the shutdown begins. */
    ctx_sleep(j.stop, 50 * CTX_MILLISECOND);
    for (int i = 0; i < opt.conns && rc == 0; i++)
        rc = ctx_group_go(g, load_conn, &j);
    if (opt.health > 0 && rc == 0)
        rc = ctx_group_go(g, health_probe, &j);
    if (opt.term > 0 && rc == 0)
        rc = ctx_group_go(g, terminate, &j);
    if (opt.hold && rc == 0)
        rc = ctx_group_go(g, hold, &j);
    if (rc != 0)
        ctx_cancel(ctx_group_ctx(g));
    ctx_group_wait(g);
    ctx_group_free(g);
    ctx_cancel(j.stop);
    ctx_release(j.stop);
    printf("load: sent=%ld complete=%ld status_200=%ld status_503=%ld "
           "status_other=%ld lost=%ld unanswered=%ld closed_by_server=%ld "
           "refused=%ld errors=%ld\n",
           atomic_load(&n.sent), atomic_load(&n.complete), atomic_load(&n.s200),
           atomic_load(&n.s503), atomic_load(&n.sother), atomic_load(&n.lost),
           atomic_load(&n.unanswered), atomic_load(&n.closed_by_server),
           atomic_load(&n.refused), atomic_load(&n.errors));
    printf("streams: opened=%ld clean=%ld cut=%ld ticks=%ld\n",
           atomic_load(&n.streams), atomic_load(&n.clean), atomic_load(&n.cut),
           atomic_load(&n.ticks));
    printf("health: ok=%ld unavailable=%ld refused=%ld lost=%ld "
           "first_503_ms=%lld\n",
           atomic_load(&n.h200), atomic_load(&n.h503), atomic_load(&n.hrefused),
           atomic_load(&n.hlost), atomic_load(&n.first_503_ns) / 1000000);
    return rc != 0 || atomic_load(&n.lost) || atomic_load(&n.cut) ||
                   atomic_load(&n.hlost) || atomic_load(&n.errors)
               ? 1
               : 0;
}
