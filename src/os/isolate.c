/* SPDX-License-Identifier: MIT */
/*
 * Isolation: running a function in a process of its own, killed when the
 * context ends, whose crash is reported instead of taking the caller down.
 *
 * DESIGN
 *
 * Why a helper. Forking a threaded program and running arbitrary code in
 * the child is unsafe: any lock another thread held at the fork stays
 * held in the child. So the work is forked from a helper process (a
 * "zygote") made once, ideally by ctx_isolate_init while the program has
 * one thread; made later, it is forked from the threaded program, and the
 * helper's own code until it forks a worker is only system calls (no
 * malloc, no locks). glibc readies malloc and stdio for fork(), so the
 * user's function may use them in the worker either way (documented).
 *
 * A call. The caller puts the input in a memfd mapped shared (a header,
 * then in, then room for out), makes a socketpair for this call, and
 * sends the helper {fn, sizes} with the memfd and its end of the pair
 * (SCM_RIGHTS) over the helper's socket, under `zmu`. The helper forks a
 * worker, which maps the memfd, runs fn, writes the result into the
 * header and leaves with _exit (after fflush: the parent's atexit
 * handlers must not run there). The helper answers on the call's socket
 * with the worker's pidfd, opened before the worker can be reaped, and
 * later with its wait status, once it reaped it (it polls its request
 * socket and the workers' pidfds). The caller waits on its socket with
 * the context; if the context ends first, it kills the worker through
 * the pidfd (no pid-reuse race) and still waits for the status, so the
 * process is gone when the call returns.
 *
 * The helper leaves when its request socket reaches end of file (the
 * parent process is gone); workers die with the helper (PR_SET_PDEATHSIG:
 * the helper has one thread, so that is the right parent). If the helper
 * died, the next call reaps it and makes another.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <ctx/force.h>
#include <ctx/io.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define HDR         64
#define MAX_WORKERS 256

struct header {
    int value;
    unsigned done; /* fn returned */
    uint64_t out_len;
};

struct request {
    uint64_t fn;
    uint64_t in_len;
    uint64_t out_cap;
};

struct reply {
    int kind;   /* 1: started (with a pidfd), 2: ended, 3: no fork */
    int status; /* 1: the pid; 2: its wait status; 3: the errno */
};

static ctx__mutex_t zmu = CTX__MUTEX_INIT;
static int zsock CTX_GUARDED_BY(zmu) = -1;
static int zpidfd CTX_GUARDED_BY(zmu) = -1;

/* ------------------------------------------------------------ messages */

static int send_fds(int sock, const void *msg, size_t len, const int *fds,
                    int nfds)
{
    char cbuf[CMSG_SPACE(2 * sizeof(int))];
    struct iovec iov = {(void *)msg, len};
    struct msghdr mh = {0};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    if (nfds) {
        struct cmsghdr *cm;
        memset(cbuf, 0, sizeof cbuf);
        mh.msg_control = cbuf;
        mh.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
        cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
        memcpy(CMSG_DATA(cm), fds, (size_t)nfds * sizeof(int));
    }
    for (;;) {
        ssize_t r = sendmsg(sock, &mh, MSG_NOSIGNAL);
        if (r == (ssize_t)len)
            return 0;
        if (r < 0 && errno == EINTR)
            continue;
        return r < 0 ? errno : EIO;
    }
}

/* Receive one message and up to 2 descriptors (-1 where none came). */
static ssize_t recv_fds(int sock, void *msg, size_t len, int *fds)
{
    char cbuf[CMSG_SPACE(2 * sizeof(int))];
    struct iovec iov = {msg, len};
    struct msghdr mh = {0};
    ssize_t r;
    fds[0] = fds[1] = -1;
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = cbuf;
    mh.msg_controllen = sizeof cbuf;
    do
        r = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
    while (r < 0 && errno == EINTR);
    if (r > 0)
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm;
             cm = CMSG_NXTHDR(&mh, cm))
            if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
                memcpy(fds, CMSG_DATA(cm),
                       cm->cmsg_len - CMSG_LEN(0) < 2 * sizeof(int)
                           ? cm->cmsg_len - CMSG_LEN(0)
                           : 2 * sizeof(int));
    return r;
}

/* ------------------------------------------------------------ helper */

/* In a worker: run the call and leave. */
static _Noreturn void worker(int memfd, const struct request *rq)
{
    size_t size = HDR + rq->in_len + rq->out_cap;
    char *map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    struct header *h = (struct header *)(void *)map;
    size_t out_len = 0;
    ctx_isolated_fn fn = (ctx_isolated_fn)(uintptr_t)rq->fn;
    if (map == MAP_FAILED)
        _exit(127);
    h->value = fn(map + HDR, rq->in_len, map + HDR + rq->in_len, rq->out_cap,
                  &out_len);
    h->out_len = out_len > rq->out_cap ? rq->out_cap : out_len;
    h->done = 1;
    fflush(NULL);
    _exit(0);
}

/* The helper's loop: fork workers on request, report their ends. */
static _Noreturn void helper_main(int sock, pid_t parent)
{
    struct {
        int pidfd;
        int reply;
    } w[MAX_WORKERS];
    int nw = 0;
    sigset_t none;

    /* No PDEATHSIG here: it fires when the parent *thread* that forked us
     * exits, which may be any thread. End of file on `sock` tells us the
     * parent process is gone. */
    if (getppid() != parent)
        _exit(0);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (sock != 3) {
        dup2(sock, 3);
        sock = 3;
    }
    syscall(SYS_close_range, 4, ~0U, 0); /* the parent's, not ours */
    for (;;) {
        struct pollfd pf[MAX_WORKERS + 1];
        pf[0] = (struct pollfd){sock, nw < MAX_WORKERS ? POLLIN : 0, 0};
        for (int i = 0; i < nw; i++)
            pf[i + 1] = (struct pollfd){w[i].pidfd, POLLIN, 0};
        if (poll(pf, (nfds_t)nw + 1, -1) < 0)
            continue;
        for (int i = nw - 1; i >= 0; i--) {
            siginfo_t si;
            struct reply rp = {2, 0};
            if (!pf[i + 1].revents)
                continue;
            memset(&si, 0, sizeof si);
            if (waitid(P_PIDFD, (id_t)w[i].pidfd, &si, WEXITED) != 0)
                continue;
            rp.status = si.si_code == CLD_EXITED
                            ? W_EXITCODE(si.si_status & 0xff, 0)
                            : W_EXITCODE(0, si.si_status);
            send_fds(w[i].reply, &rp, sizeof rp, NULL, 0);
            close(w[i].pidfd);
            close(w[i].reply);
            w[i] = w[--nw];
        }
        if (pf[0].revents) {
            struct request rq;
            int fds[2];
            ssize_t r = recv_fds(sock, &rq, sizeof rq, fds);
            pid_t pid;
            if (r == 0 || (r < 0 && errno != EAGAIN))
                _exit(0); /* the parent is gone */
            if (r != (ssize_t)sizeof rq || fds[0] < 0 || fds[1] < 0) {
                if (fds[0] >= 0)
                    close(fds[0]);
                if (fds[1] >= 0)
                    close(fds[1]);
                continue;
            }
            pid = fork();
            if (pid == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                close(sock);
                close(fds[1]);
                worker(fds[0], &rq);
            }
            close(fds[0]);
            if (pid > 0) {
                struct reply rp = {1, (int)pid};
                int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
                send_fds(fds[1], &rp, sizeof rp, &pfd, pfd >= 0);
                w[nw].pidfd = pfd;
                w[nw].reply = fds[1];
                nw++;
                if (pfd < 0) { /* cannot watch it: wait for it now */
                    int st;
                    waitpid(pid, &st, 0);
                    nw--;
                    rp = (struct reply){2, st};
                    send_fds(fds[1], &rp, sizeof rp, NULL, 0);
                    close(fds[1]);
                }
            } else {
                struct reply rp = {3, errno == ENOMEM ? ENOMEM : EAGAIN};
                send_fds(fds[1], &rp, sizeof rp, NULL, 0);
                close(fds[1]);
            }
        }
    }
}

/* ------------------------------------------------------------ parent */

static void close_counted(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        atomic_fetch_sub(&ctx__fds, 1);
        atomic_fetch_sub(&ctx__kept_fds, 1);
        *fd = -1;
    }
}

/* Make the helper; zmu held. */
static int helper_up(void) CTX_REQUIRES(zmu)
{
    int sv[2];
    pid_t pid, self = getpid();
    if (zsock >= 0)
        return 0;
    if (ctx__fault(CTX__FAULT_SPAWN))
        return EAGAIN;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return errno;
    fflush(NULL); /* or buffered output would be written again by workers */
    pid = fork();
    if (pid == 0)
        helper_main(sv[1], self);
    close(sv[1]);
    if (pid < 0) {
        int e = errno;
        close(sv[0]);
        return e == ENOMEM ? ENOMEM : EAGAIN;
    }
    zsock = sv[0];
    zpidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    atomic_fetch_add(&ctx__fds, zpidfd >= 0 ? 2 : 1);
    atomic_fetch_add(&ctx__kept_fds, zpidfd >= 0 ? 2 : 1); /* for good */
    return 0;
}

/* The helper died: reap it, forget it; zmu held. */
static void helper_down(void) CTX_REQUIRES(zmu)
{
    if (zpidfd >= 0) {
        siginfo_t si;
        syscall(SYS_pidfd_send_signal, zpidfd, SIGKILL, NULL, 0);
        waitid(P_PIDFD, (id_t)zpidfd, &si, WEXITED);
        close_counted(&zpidfd);
    }
    close_counted(&zsock);
}

int ctx_isolate_init(void)
{
    int rc;
    ctx__lock(&zmu);
    rc = helper_up();
    ctx__unlock(&zmu);
    return rc;
}

/* Send a request to the helper, making it (again) if needed. */
static int submit(const struct request *rq, int memfd, int reply)
{
    int fds[2] = {memfd, reply}, rc;
    ctx__lock(&zmu);
    for (int tries = 0;; tries++) {
        if ((rc = helper_up()) != 0)
            break;
        rc = send_fds(zsock, rq, sizeof *rq, fds, 2);
        if (rc == 0 || tries == 1 ||
            (rc != EPIPE && rc != ECONNRESET && rc != ECONNREFUSED))
            break;
        helper_down(); /* it died: once more with a new one */
    }
    ctx__unlock(&zmu);
    return rc;
}

/* Wait for the next reply on the call's socket (no cancellation). */
static int next_reply(int sock, struct reply *rp, int *pidfd)
{
    int fds[2];
    for (;;) {
        struct pollfd pf = {sock, POLLIN, 0};
        ssize_t r;
        if (ctx_poll(ctx_background(), &pf, 1, -1) < 0)
            return errno;
        r = recv_fds(sock, rp, sizeof *rp, fds);
        if (fds[1] >= 0)
            close(fds[1]);
        if (pidfd)
            *pidfd = fds[0];
        else if (fds[0] >= 0)
            close(fds[0]);
        if (r == (ssize_t)sizeof *rp)
            return 0;
        if (r == 0)
            return EPIPE; /* the helper died */
        if (r < 0 && errno != EAGAIN)
            return errno;
    }
}

int ctx_isolate(ctx_t *c, ctx_isolated_fn fn, const void *in, size_t in_len,
                void *out, size_t out_cap, ctx_isolate_result_t *res)
{
    struct request rq;
    struct reply rp;
    struct header *h;
    char *map = MAP_FAILED;
    size_t size;
    int memfd = -1, sp[2] = {-1, -1}, pidfd = -1, rc, killed = 0;

    if (res)
        memset(res, 0, sizeof *res);
    if (!c || !fn || !res || (!in && in_len) || (!out && out_cap))
        return EINVAL;
    if (ctx_done(c))
        return ctx_err(c);
    if (__builtin_add_overflow(in_len, out_cap, &size) ||
        __builtin_add_overflow(size, (size_t)HDR, &size))
        return ENOMEM;
    if ((memfd = memfd_create("ctx-isolate", MFD_CLOEXEC)) < 0)
        return errno;
    if (ftruncate(memfd, (off_t)size) < 0 ||
        (map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd,
                    0)) == MAP_FAILED) {
        rc = errno;
        goto out;
    }
    if (in_len)
        memcpy(map + HDR, in, in_len);
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
        rc = errno;
        goto out;
    }
    rq = (struct request){(uint64_t)(uintptr_t)fn, in_len, out_cap};
    if ((rc = submit(&rq, memfd, sp[1])) != 0)
        goto out;
    close(sp[1]);
    sp[1] = -1;
    /* The worker's pidfd first: the one way to kill it. */
    if ((rc = next_reply(sp[0], &rp, &pidfd)) != 0)
        goto out;
    if (rp.kind == 3) { /* the helper could not fork a worker */
        rc = rp.status;
        goto out;
    }
    if (rp.kind == 1) {
        struct pollfd pf = {sp[0], POLLIN, 0};
        ctx__note_wait("isolated call", c);
        if (ctx_poll(c, &pf, 1, -1) < 0 && ctx_done(c)) {
            if (pidfd >= 0)
                syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
            killed = 1;
            ctx__count(CTX__C_KILLS, 1);
        }
        ctx__note_done();
        if ((rc = next_reply(sp[0], &rp, NULL)) != 0)
            goto out;
    }
    h = (struct header *)(void *)map;
    if (killed) {
        rc = ctx_err(c);
    } else if (WIFEXITED(rp.status) && WEXITSTATUS(rp.status) == 0 && h->done) {
        res->value = h->value;
        res->out_len = (size_t)h->out_len;
        if (res->out_len)
            memcpy(out, map + HDR + in_len, res->out_len);
        rc = 0;
    } else {
        if (WIFSIGNALED(rp.status))
            res->signal = WTERMSIG(rp.status);
        else
            res->exit_code = WEXITSTATUS(rp.status);
        rc = ECHILD;
    }
out:
    if (pidfd >= 0)
        close(pidfd);
    if (sp[0] >= 0)
        close(sp[0]);
    if (sp[1] >= 0)
        close(sp[1]);
    if (map != MAP_FAILED)
        munmap(map, size);
    if (memfd >= 0)
        close(memfd);
    return rc;
}
