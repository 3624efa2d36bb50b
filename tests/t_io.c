/* SPDX-License-Identifier: MIT */
/*
 * Cancellable I/O (SPEC §3): reads and writes on blocking and
 * non-blocking pipes and sockets, accept and connect, poll and sleep;
 * cancellation and deadlines (real and test clock), no effect when the
 * context ended first, no EINTR under a signal storm, the per-thread
 * wake-up descriptor's lifetime.
 */
#include "t.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

static int64_t lib_fds(void)
{
    ctx_stats_t st;
    ctx_stats(&st);
    return st.fds;
}

struct later {
    int fd;
    long long after_ns;
    const char *data;
    ctx_t *cancel;
};

static void *do_later(void *p)
{
    struct later *l = p;
    t_sleep_ns(l->after_ns);
    if (l->cancel)
        ctx_cancel_cause(l->cancel, ESHUTDOWN, "later");
    else if (write(l->fd, l->data, strlen(l->data)) < 0)
        perror("write");
    return NULL;
}

T_CASE(read_ready_data_needs_no_wait)
{
    int p[2];
    char buf[16];
    ctx_t *c;
    int64_t fds0;
    T_OK(pipe(p));
    T_OK(ctx_with_cancel(ctx_background(), &c));
    T_EQ(write(p[1], "hello", 5), 5);
    fds0 = lib_fds();
    T_EQ(ctx_read(c, p[0], buf, sizeof buf), 5);
    T_EQ(memcmp(buf, "hello", 5), 0);
    T_EQ(lib_fds(), fds0); /* no wake-up descriptor was needed */
    close(p[1]);
    T_EQ(ctx_read(c, p[0], buf, sizeof buf), 0); /* end of file */
    close(p[0]);
    ctx_release(c);
}

T_CASE(read_waits_blocking_and_nonblocking)
{
    for (int nb = 0; nb < 2; nb++) {
        int p[2];
        char buf[16] = {0};
        pthread_t t;
        struct later l;
        T_OK(pipe(p));
        if (nb)
            fcntl(p[0], F_SETFL, O_NONBLOCK);
        l = (struct later){p[1], 20000000LL, "late", NULL};
        T_OK(pthread_create(&t, NULL, do_later, &l));
        T_EQ(ctx_read(ctx_background(), p[0], buf, sizeof buf), 4);
        T_STREQ(buf, "late");
        pthread_join(t, NULL);
        close(p[0]);
        close(p[1]);
    }
}

T_CASE(read_cancelled_and_timed_out)
{
    int p[2];
    char buf[8];
    ctx_t *c;
    pthread_t t;
    struct later l;
    long long t0;
    T_OK(pipe(p));
    T_OK(ctx_with_cancel(ctx_background(), &c));
    l = (struct later){-1, 20000000LL, NULL, c};
    T_OK(pthread_create(&t, NULL, do_later, &l));
    errno = 0;
    T_EQ(ctx_read(c, p[0], buf, sizeof buf), -1);
    T_ERR(errno, ECANCELED);
    pthread_join(t, NULL);
    /* Done before: nothing is read, even with data there. */
    T_EQ(write(p[1], "x", 1), 1);
    errno = 0;
    T_EQ(ctx_read(c, p[0], buf, sizeof buf), -1);
    T_ERR(errno, ECANCELED);
    ctx_release(c);
    T_EQ(ctx_read(ctx_background(), p[0], buf, sizeof buf), 1);
    /* A deadline, real clock: never before it. */
    t0 = t_now_ns();
    T_OK(ctx_with_timeout(ctx_background(), 30 * CTX_MILLISECOND, &c));
    errno = 0;
    T_EQ(ctx_read(c, p[0], buf, sizeof buf), -1);
    T_ERR(errno, ETIMEDOUT);
    ctx_release(c);
    close(p[0]);
    close(p[1]);
    T_GE(t_now_ns() - t0, 30LL * 1000000LL);
}

struct reader {
    ctx_t *c;
    int fd;
    ssize_t r;
    int err;
};

static void *do_read(void *p)
{
    struct reader *r = p;
    char buf[8];
    r->r = ctx_read(r->c, r->fd, buf, sizeof buf);
    r->err = errno;
    return NULL;
}

T_CASE(read_deadline_on_test_clock)
{
    int p[2];
    ctx_t *c;
    pthread_t t;
    struct reader r;
    T_OK(pipe(p));
    T_OK(ctx_testclock_enable());
    T_OK(ctx_with_timeout(ctx_background(), 10 * CTX_SECOND, &c));
    r = (struct reader){c, p[0], 99, 0};
    T_OK(pthread_create(&t, NULL, do_read, &r));
    t_sleep_ns(20000000LL);
    T_EQ(r.r, 99); /* still waiting: virtual time has not moved */
    T_OK(ctx_testclock_advance(10 * CTX_SECOND));
    pthread_join(t, NULL);
    T_EQ(r.r, -1);
    T_ERR(r.err, ETIMEDOUT);
    ctx_release(c);
    ctx_testclock_disable();
    close(p[0]);
    close(p[1]);
}

struct drainer {
    int fd;
    size_t want;
    size_t got;
};

static void *do_drain(void *p)
{
    struct drainer *d = p;
    char buf[4096];
    while (d->got < d->want) {
        ssize_t r = read(d->fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        d->got += (size_t)r;
    }
    return NULL;
}

T_CASE(write_all_on_blocking_pipe)
{
    size_t n = 1 << 20; /* far more than a pipe holds */
    char *big = malloc(n);
    int p[2];
    pthread_t t;
    struct drainer d;
    T_NOTNULL(big);
    memset(big, 'x', n);
    T_OK(pipe(p));
    d = (struct drainer){p[0], n, 0};
    T_OK(pthread_create(&t, NULL, do_drain, &d));
    T_EQ(ctx_write(ctx_background(), p[1], big, n), (ssize_t)n);
    pthread_join(t, NULL);
    T_EQ(d.got, n);
    close(p[0]);
    close(p[1]);
    free(big);
}

T_CASE(write_partial_and_cancelled)
{
    size_t n = 1 << 20;
    char *big = malloc(n);
    int p[2];
    ctx_t *c;
    ssize_t w;
    T_NOTNULL(big);
    memset(big, 'y', n);
    T_OK(pipe(p));
    /* Non-blocking: returns what fit. */
    fcntl(p[1], F_SETFL, O_NONBLOCK);
    w = ctx_write(ctx_background(), p[1], big, n);
    T_GT(w, 0);
    T_LT(w, (ssize_t)n);
    /* Full pipe, deadline: nothing more goes. */
    T_OK(ctx_with_timeout(ctx_background(), 20 * CTX_MILLISECOND, &c));
    errno = 0;
    T_EQ(ctx_write(c, p[1], big, 1), -1);
    T_ERR(errno, ETIMEDOUT);
    ctx_release(c);
    /* Blocking pipe, half drained, then cancelled: the count so far. */
    fcntl(p[1], F_SETFL, 0);
    {
        char sink[8192];
        T_EQ(read(p[0], sink, sizeof sink), (ssize_t)sizeof sink);
    }
    T_OK(ctx_with_timeout(ctx_background(), 20 * CTX_MILLISECOND, &c));
    w = ctx_write(c, p[1], big, n);
    T_EQ(w, 8192);
    ctx_release(c);
    close(p[0]);
    close(p[1]);
    free(big);
}

static int tcp_listener(struct sockaddr_in *a, int backlog, int nonblock)
{
    int fd =
        socket(AF_INET,
               SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
    socklen_t len = sizeof *a;
    memset(a, 0, sizeof *a);
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)a, sizeof *a) < 0 ||
        listen(fd, backlog) < 0 ||
        getsockname(fd, (struct sockaddr *)a, &len) < 0)
        return -1;
    return fd;
}

struct acceptor {
    ctx_t *c;
    int fd;
    int r;
    int err;
};

static void *do_accept(void *p)
{
    struct acceptor *a = p;
    a->r = ctx_accept(a->c, a->fd, NULL, NULL);
    a->err = errno;
    return NULL;
}

T_CASE(accept_connect_loopback)
{
    for (int nb = 0; nb < 2; nb++) {
        struct sockaddr_in a;
        int l = tcp_listener(&a, 16, nb), s;
        pthread_t t;
        struct acceptor ac = {ctx_background(), l, -1, 0};
        char buf[8] = {0};
        T_GE(l, 0);
        T_OK(pthread_create(&t, NULL, do_accept, &ac));
        t_sleep_ns(10000000LL);
        s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        T_OK(ctx_connect(ctx_background(), s, (struct sockaddr *)&a, sizeof a));
        T_EQ(fcntl(s, F_GETFL) & O_NONBLOCK, 0); /* restored */
        pthread_join(t, NULL);
        T_GE(ac.r, 0);
        T_TRUE(fcntl(ac.r, F_GETFD) & FD_CLOEXEC);
        T_EQ(ctx_write(ctx_background(), s, "ping", 4), 4);
        T_EQ(ctx_read(ctx_background(), ac.r, buf, sizeof buf), 4);
        T_STREQ(buf, "ping");
        close(ac.r);
        close(s);
        close(l);
    }
}

T_CASE(accept_cancelled)
{
    struct sockaddr_in a;
    int l = tcp_listener(&a, 16, 0);
    ctx_t *c;
    pthread_t t;
    struct acceptor ac;
    T_GE(l, 0);
    T_OK(ctx_with_cancel(ctx_background(), &c));
    ac = (struct acceptor){c, l, 0, 0};
    T_OK(pthread_create(&t, NULL, do_accept, &ac));
    t_sleep_ns(20000000LL);
    ctx_cancel(c);
    pthread_join(t, NULL);
    T_EQ(ac.r, -1);
    T_ERR(ac.err, ECANCELED);
    ctx_release(c);
    close(l);
}

T_CASE(connect_cancelled_while_pending)
{
    /* A listener that never accepts, backlog filled: a further connect
     * stays pending (its SYN is dropped), until the deadline. */
    struct sockaddr_in a;
    int l = tcp_listener(&a, 0, 0), fill[4], s, rc = 0;
    ctx_t *c;
    T_GE(l, 0);
    for (int i = 0; i < 4; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fill[i], (struct sockaddr *)&a, sizeof a);
    }
    t_sleep_ns(20000000LL);
    s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    T_OK(ctx_with_timeout(ctx_background(), 100 * CTX_MILLISECOND, &c));
    errno = 0;
    rc = ctx_connect(c, s, (struct sockaddr *)&a, sizeof a);
    if (rc == 0) {
        /* This kernel accepted it anyway: nothing pending to cancel. */
        fprintf(stderr, "  (the backlog did not fill: skipped)\n");
    } else {
        T_ERR(errno, ETIMEDOUT);
        T_EQ(fcntl(s, F_GETFL) & O_NONBLOCK, 0); /* restored */
    }
    ctx_release(c);
    close(s);
    for (int i = 0; i < 4; i++)
        close(fill[i]);
    close(l);
}

T_CASE(poll_semantics)
{
    int p[2];
    struct pollfd pf;
    ctx_t *c;
    long long t0;
    T_OK(pipe(p));
    pf = (struct pollfd){p[0], POLLIN, 0};
    T_EQ(ctx_poll(ctx_background(), &pf, 1, 0), 0); /* checks once */
    t0 = t_now_ns();
    T_EQ(ctx_poll(ctx_background(), &pf, 1, 20 * CTX_MILLISECOND), 0);
    T_GE(t_now_ns() - t0, 20LL * 1000000LL);
    T_EQ(write(p[1], "z", 1), 1);
    T_EQ(ctx_poll(ctx_background(), &pf, 1, -1), 1);
    T_TRUE(pf.revents & POLLIN);
    T_EQ(ctx_poll(ctx_background(), NULL, 0, 0), 0);
    errno = 0;
    T_EQ(ctx_poll(ctx_background(), NULL, 1, 0), -1);
    T_ERR(errno, EINVAL);
    T_OK(ctx_with_timeout(ctx_background(), 10 * CTX_MILLISECOND, &c));
    pf.fd = -1; /* ignored entry: only the context can end it */
    errno = 0;
    T_EQ(ctx_poll(c, &pf, 1, -1), -1);
    T_ERR(errno, ETIMEDOUT);
    ctx_release(c);
    close(p[0]);
    close(p[1]);
}

T_CASE(poll_many_fds)
{
    enum { N = 100 };
    int p[N][2];
    struct pollfd pf[N];
    for (int i = 0; i < N; i++) {
        T_OK(pipe(p[i]));
        pf[i] = (struct pollfd){p[i][0], POLLIN, 0};
    }
    T_EQ(write(p[77][1], "q", 1), 1);
    T_EQ(ctx_poll(ctx_background(), pf, N, -1), 1);
    T_TRUE(pf[77].revents & POLLIN);
    T_EQ(pf[3].revents, 0);
    for (int i = 0; i < N; i++) {
        close(p[i][0]);
        close(p[i][1]);
    }
}

T_CASE(sleep_precision_and_cancel)
{
    ctx_t *c;
    long long best = -1;
    /* Never early; within 10 ms when the machine lets us run: the best
     * of up to 5 (a loaded CI machine may delay any one wake-up). */
    for (int i = 0; i < 5 && (best < 0 || best >= 110LL * 1000000LL); i++) {
        long long t0 = t_now_ns(), dt;
        T_OK(ctx_sleep(ctx_background(), 100 * CTX_MILLISECOND));
        dt = t_now_ns() - t0;
        T_GE(dt, 100LL * 1000000LL);
        if (best < 0 || dt < best)
            best = dt;
    }
    T_LT(best, 110LL * 1000000LL);
    T_OK(ctx_sleep(ctx_background(), 0));
    T_OK(ctx_sleep(ctx_background(), -5));
    T_ERR(ctx_sleep(NULL, 1), EINVAL);
    T_OK(ctx_with_timeout(ctx_background(), 10 * CTX_MILLISECOND, &c));
    T_ERR(ctx_sleep(c, CTX_HOUR), ETIMEDOUT);
    T_ERR(ctx_sleep(c, 1), ETIMEDOUT);
    ctx_release(c);
}

struct sleeper {
    ctx_t *c;
    ctx_time_t d;
    atomic_int rc;
};

static void *do_sleep(void *p)
{
    struct sleeper *s = p;
    atomic_store(&s->rc, ctx_sleep(s->c, s->d));
    return NULL;
}

T_CASE(sleep_on_test_clock)
{
    ctx_t *c;
    pthread_t t1, t2;
    struct sleeper a, b;
    T_OK(ctx_testclock_enable());
    T_OK(ctx_with_timeout(ctx_background(), CTX_HOUR, &c));
    a.c = ctx_background();
    a.d = 5 * CTX_SECOND;
    atomic_store(&a.rc, -1);
    b.c = c;
    b.d = 2 * CTX_HOUR;
    atomic_store(&b.rc, -1);
    T_OK(pthread_create(&t1, NULL, do_sleep, &a));
    T_OK(pthread_create(&t2, NULL, do_sleep, &b));
    t_sleep_ns(20000000LL);
    T_OK(ctx_testclock_advance(5 * CTX_SECOND - 1));
    t_sleep_ns(10000000LL);
    T_EQ(atomic_load(&a.rc), -1);
    T_OK(ctx_testclock_advance(1));
    pthread_join(t1, NULL);
    T_OK(atomic_load(&a.rc)); /* slept its 5 s, in no real time */
    T_EQ(atomic_load(&b.rc), -1);
    T_OK(ctx_testclock_advance(CTX_HOUR));
    pthread_join(t2, NULL);
    T_ERR(atomic_load(&b.rc), ETIMEDOUT); /* its context's deadline */
    ctx_release(c);
    ctx_testclock_disable();
}

static void on_alarm(int sig)
{
    (void)sig;
}

T_CASE(no_eintr_under_a_signal_storm)
{
    for (int restart = 0; restart < 2; restart++) {
        struct sigaction sa;
        struct itimerval it = {{0, 1000}, {0, 1000}}; /* 1 kHz */
        int p[2];
        char buf[8] = {0};
        pthread_t t;
        struct later l;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_alarm;
        sa.sa_flags = restart ? SA_RESTART : 0;
        sigaction(SIGALRM, &sa, NULL);
        setitimer(ITIMER_REAL, &it, NULL);
        T_OK(pipe(p));
        l = (struct later){p[1], 50000000LL, "calm", NULL};
        T_OK(pthread_create(&t, NULL, do_later, &l));
        T_EQ(ctx_read(ctx_background(), p[0], buf, sizeof buf), 4);
        T_STREQ(buf, "calm");
        T_OK(ctx_sleep(ctx_background(), 20 * CTX_MILLISECOND));
        pthread_join(t, NULL);
        it = (struct itimerval){{0, 0}, {0, 0}};
        setitimer(ITIMER_REAL, &it, NULL);
        signal(SIGALRM, SIG_DFL);
        close(p[0]);
        close(p[1]);
    }
}

static void *wait_in_thread(void *p)
{
    int *fd = p;
    char buf[4];
    *fd = (int)ctx_read(ctx_background(), *fd, buf, sizeof buf);
    return NULL;
}

T_CASE(wake_fd_lives_with_its_thread)
{
    int p[2], arg;
    pthread_t t;
    int64_t before = lib_fds();
    int fds_before = t_fd_count();
    T_OK(pipe(p));
    arg = p[0];
    T_OK(pthread_create(&t, NULL, wait_in_thread, &arg));
    t_sleep_ns(20000000LL);
    T_EQ(lib_fds(), before + 1); /* the waiting thread made one */
    T_EQ(write(p[1], "a", 1), 1);
    pthread_join(t, NULL);
    T_EQ(arg, 1);
    T_EQ(lib_fds(), before); /* closed when the thread exited */
    close(p[0]);
    close(p[1]);
    T_EQ(t_fd_count(), fds_before);
}

T_CASE(bad_input)
{
    char b;
    errno = 0;
    T_EQ(ctx_read(NULL, 0, &b, 1), -1);
    T_ERR(errno, EINVAL);
    errno = 0;
    T_EQ(ctx_write(NULL, 1, &b, 1), -1);
    T_ERR(errno, EINVAL);
    errno = 0;
    T_EQ(ctx_accept(NULL, 0, NULL, NULL), -1);
    T_ERR(errno, EINVAL);
    errno = 0;
    T_EQ(ctx_connect(NULL, 0, NULL, 0), -1);
    T_ERR(errno, EINVAL);
    errno = 0;
    T_EQ(ctx_poll(NULL, NULL, 0, 0), -1);
    T_ERR(errno, EINVAL);
    errno = 0;
    T_EQ(ctx_read(ctx_background(), -1, &b, 1), -1);
    T_ERR(errno, EBADF);
}
