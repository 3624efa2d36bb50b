/* SPDX-License-Identifier: MIT */
/*
 * Cancellable I/O: ctx_read, ctx_write, ctx_accept, ctx_connect,
 * ctx_poll, ctx_sleep.
 *
 * DESIGN
 *
 * Try first, wait only when the call would block. Reads and writes use
 * preadv2/pwritev2 with RWF_NOWAIT at the current position: on a pipe, a
 * socket or a regular file that makes one attempt that does not block,
 * whatever the descriptor's O_NONBLOCK, so a read that finds data costs
 * one system call and the caller's descriptor flags are never touched.
 * (RWF_NOWAIT on a regular file whose data is not cached says EAGAIN
 * though poll says readable: after a ready poll, a second EAGAIN falls
 * back to a plain read, which waits for the disk but not for a peer.)
 * Descriptors that refuse RWF_NOWAIT (a terminal, say) are polled first.
 *
 * Waiting is poll(2) on the descriptor and on the calling thread's
 * wake-up eventfd, registered on the context with a ctx__waitrec: the
 * cancellation (a ctx_cancel, or the context's deadline firing on the
 * timer thread or the test clock) writes the eventfd. Nothing polls in a
 * loop and no timeout is computed here: the context's own timer ends the
 * wait. The eventfd is drained only when the cancellation did write it
 * (the registration was found detached), so a stale wake-up never reaches
 * the next call. EINTR from a handled signal restarts the wait.
 *
 * The eventfd is per thread (made on first need, O_CLOEXEC, closed by a
 * key destructor at thread exit, counted in ctx_stats.fds), not per
 * context: a context waited on once costs no descriptor.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <ctx/io.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define STACK_FDS 64

/* ------------------------------------------------------------ wake fd */

static _Thread_local int wake_fd = -1;
static pthread_key_t wake_key;
static pthread_once_t wake_once = PTHREAD_ONCE_INIT;
static int wake_key_ok;

static void close_wake(void *p)
{
    int fd = (int)(intptr_t)p - 1;
    close(fd);
    atomic_fetch_sub(&ctx__fds, 1);
    atomic_fetch_sub(&ctx__kept_fds, 1);
    wake_fd = -1;
}

static void make_key(void)
{
    wake_key_ok = pthread_key_create(&wake_key, close_wake) == 0;
}

/* This thread's wake-up eventfd; -1 with errno when none can be made. */
static int thread_wake_fd(void)
{
    int fd;

    if (CTX_LIKELY(wake_fd >= 0))
        return wake_fd;
    pthread_once(&wake_once, make_key);
    if (ctx__fault(CTX__FAULT_EVENTFD)) {
        errno = EMFILE;
        return -1;
    }
    fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd < 0)
        return -1;
    if (!wake_key_ok ||
        pthread_setspecific(wake_key, (void *)(intptr_t)(fd + 1)) != 0) {
        close(fd);
        errno = ENOMEM;
        return -1;
    }
    atomic_fetch_add(&ctx__fds, 1);
    atomic_fetch_add(&ctx__kept_fds, 1);
    wake_fd = fd;
    return fd;
}

static void drain(int fd)
{
    uint64_t v;
    while (read(fd, &v, sizeof v) < 0 && errno == EINTR)
        ;
}

/*
 * Poll `fds` (n of them, room for one more at the end) and the thread's
 * wake-up fd until an event, `until` (real clock; CTX_NO_DEADLINE: no
 * limit), or c done. Returns poll's count for the caller's fds (0 on
 * timeout), or -1 with errno: c's error, or poll's.
 */
static int wait_any(ctx_t *c, struct pollfd *fds, nfds_t n, ctx_time_t until)
{
    struct ctx__waitrec wr;
    int efd = thread_wake_fd(), r, rc, saved;

    if (efd < 0)
        return -1;
    wr.word = NULL;
    wr.bit = 0;
    wr.fd = efd;
    wr.stamp = NULL;
    if ((rc = ctx__wait_register(c, &wr)) != 0) {
        errno = rc;
        return -1;
    }
    fds[n].fd = efd;
    fds[n].events = POLLIN;
    fds[n].revents = 0;
    for (;;) {
        struct timespec ts, *tp = NULL;
        if (until != CTX_NO_DEADLINE) {
            ctx_time_t left = until - ctx__real_now();
            if (left < 0)
                left = 0;
            ts.tv_sec = (time_t)(left / CTX_SECOND);
            ts.tv_nsec = (long)(left % CTX_SECOND);
            tp = &ts;
        }
        r = ppoll(fds, n + 1, tp, NULL);
        if (r >= 0 || errno != EINTR)
            break;
    }
    saved = errno;
    if (ctx__wait_unregister(c, &wr))
        drain(efd); /* the cancellation wrote it */
    if (ctx_done(c)) {
        errno = ctx_err(c);
        return -1;
    }
    if (r < 0) {
        errno = saved;
        return -1;
    }
    return r - (fds[n].revents != 0);
}

/* Wait until fd has `events` or c is done: 0, or -1 with errno. */
static int wait_fd(ctx_t *c, int fd, short events)
{
    struct pollfd p[2] = {{fd, events, 0}, {-1, 0, 0}};
    int r;
    ctx__note_wait_num(events == POLLIN ? "fd (read)" : "fd (write)", fd);
    r = wait_any(c, p, 1, CTX_NO_DEADLINE);
    ctx__note_done();
    if (r < 0)
        return -1;
    if (p[0].revents & POLLNVAL) {
        errno = EBADF;
        return -1;
    }
    return 0;
}

static int cancelled(ctx_t *c)
{
    if (!c) {
        errno = EINVAL;
        return 1;
    }
    if (ctx_done(c)) {
        errno = ctx_err(c);
        return 1;
    }
    return 0;
}

/* ------------------------------------------------------------ read/write */

/* A second EAGAIN from RWF_NOWAIT after poll said ready: a regular file
 * whose data is not cached (then read and wait for the disk), or another
 * reader or writer got there first (then wait again). */
static int is_regular(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
}

ssize_t ctx_read(ctx_t *c, int fd, void *buf, size_t n)
{
    int nowait = 1, ready = 0;

    if (cancelled(c))
        return -1;
    for (;;) {
        struct iovec iov = {buf, n};
        ssize_t r;
        if (nowait) {
            r = preadv2(fd, &iov, 1, -1, RWF_NOWAIT);
            if (r < 0 && errno == EAGAIN && ready && is_regular(fd))
                r = read(fd, buf, n);
        } else if (ready) {
            r = read(fd, buf, n); /* poll said ready */
        } else {
            r = -1;
            errno = EAGAIN;
        }
        if (r >= 0)
            return r;
        if (errno == EINTR)
            continue;
        if (errno == EOPNOTSUPP && nowait) {
            nowait = 0; /* a descriptor without RWF_NOWAIT: poll first */
            errno = EAGAIN;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        if (wait_fd(c, fd, POLLIN) < 0)
            return -1;
        ready = 1;
    }
}

ssize_t ctx_write(ctx_t *c, int fd, const void *buf, size_t n)
{
    size_t done = 0;
    int blocking = -1, nowait = 1, ready = 0;

    if (cancelled(c))
        return -1;
    for (;;) {
        struct iovec iov = {(char *)buf + done, n - done};
        ssize_t r;
        if (nowait) {
            r = pwritev2(fd, &iov, 1, -1, RWF_NOWAIT);
            if (r < 0 && errno == EAGAIN && ready && is_regular(fd))
                r = write(fd, (const char *)buf + done, n - done);
        } else if (ready) {
            r = write(fd, (const char *)buf + done, n - done);
        } else {
            r = -1;
            errno = EAGAIN;
        }
        if (r >= 0) {
            done += (size_t)r;
            if (done >= n)
                return (ssize_t)done;
            if (blocking < 0) {
                int fl = fcntl(fd, F_GETFL);
                blocking = fl >= 0 && !(fl & O_NONBLOCK);
            }
            if (!blocking && r > 0)
                return (ssize_t)done; /* as write(2) on O_NONBLOCK */
            ready = 0;
            if (ctx_done(c))
                return (ssize_t)done; /* some went: report that */
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno == EOPNOTSUPP && nowait) {
            nowait = 0;
            errno = EAGAIN;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return done ? (ssize_t)done : -1;
        if (wait_fd(c, fd, POLLOUT) < 0)
            return done ? (ssize_t)done : -1;
        ready = 1;
    }
}

/* ------------------------------------------------------------ sockets */

int ctx_accept(ctx_t *c, int fd, struct sockaddr *addr, socklen_t *len)
{
    int fl, first_try;

    if (cancelled(c))
        return -1;
    fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -1;
    /* A blocking listener would block in accept: poll it first. */
    first_try = (fl & O_NONBLOCK) != 0;
    for (;;) {
        int r;
        if (!first_try && wait_fd(c, fd, POLLIN) < 0)
            return -1;
        first_try = 0;
        r = accept4(fd, addr, len, SOCK_CLOEXEC);
        if (r >= 0)
            return r;
        if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        if (cancelled(c))
            return -1;
    }
}

int ctx_connect(ctx_t *c, int fd, const struct sockaddr *addr, socklen_t len)
{
    int fl, r, err = 0, rc = -1;
    socklen_t elen = sizeof err;

    if (cancelled(c))
        return -1;
    if ((fl = fcntl(fd, F_GETFL)) < 0)
        return -1;
    if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -1;
    r = connect(fd, addr, len);
    if (r == 0) {
        rc = 0;
    } else if (errno == EINPROGRESS || errno == EINTR || errno == EALREADY) {
        /* It goes on in the background: wait, then ask how it went. */
        if (wait_fd(c, fd, POLLOUT) == 0) {
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
                err = errno;
            if (err == 0)
                rc = 0;
            else
                errno = err;
        }
    }
    err = errno;
    if (!(fl & O_NONBLOCK))
        fcntl(fd, F_SETFL, fl);
    errno = err;
    return rc;
}

/* ------------------------------------------------------------ poll/sleep */

int ctx_poll(ctx_t *c, struct pollfd *fds, nfds_t n, ctx_time_t timeout)
{
    struct pollfd stack[STACK_FDS + 1], *p = stack;
    int r;

    if (cancelled(c))
        return -1;
    if ((!fds && n) || n > (nfds_t)(1 << 20)) {
        errno = EINVAL;
        return -1;
    }
    if (n > STACK_FDS && !(p = ctx__malloc((n + 1) * sizeof *p))) {
        errno = ENOMEM;
        return -1;
    }
    for (nfds_t i = 0; i < n; i++)
        p[i] = fds[i];
    if (n == 1)
        ctx__note_wait_num("fd (poll)", fds[0].fd);
    else
        ctx__note_wait("poll", fds);
    r = wait_any(c, p, n,
                 timeout < 0 ? CTX_NO_DEADLINE
                             : ctx__time_add(ctx__real_now(), timeout));
    ctx__note_done();
    if (r >= 0)
        for (nfds_t i = 0; i < n; i++)
            fds[i].revents = p[i].revents;
    if (p != stack)
        ctx__free(p);
    return r;
}

int ctx_sleep(ctx_t *c, ctx_time_t d)
{
    int rc;

    if (!c)
        return EINVAL;
    if (ctx_done(c) || d <= 0)
        return ctx_err(c);
    ctx__note_wait("sleep", c);
    rc = ctx__wait_until(c, ctx__time_add(ctx_now(), d));
    ctx__note_done();
    return rc == ETIMEDOUT ? 0 : ctx_err(c);
}
