/* SPDX-License-Identifier: MIT */
/*
 * Subprocesses bound to a context: spawn, the kill sequence on
 * cancellation, wait with captured output, free.
 *
 * DESIGN
 *
 * Spawn is posix_spawn (glibc's is clone(CLONE_VM|CLONE_VFORK): safe in a
 * threaded program, and it reports the exec's error), with an empty
 * signal mask, every signal's default disposition, its own process group,
 * all descriptors from 3 + extras closed in the child (whatever their
 * close-on-exec flag: nothing leaks to it), and an environment with the
 * tree marker (tree.c) and, if asked, CTX_DEADLINE. A pidfd is opened at
 * once: the child is ours and unreaped, so its pid cannot have been
 * reused (that needs SIGCHLD not to be set to SIG_IGN, which reaps behind
 * our back: spawn refuses then).
 *
 * `mu` orders signalling against reaping. A signal to the group,
 * kill(-pid), is sent only under `mu` while `reaped` is false: until we
 * reap the leader, its pid is reserved, and with it the group id. The
 * marker search is race-free by itself (pidfds).
 *
 * Cancellation: an after-function on the context sends the cancel signal
 * (and SIGCONT, for a stopped tree) to the group and to the marked
 * descendants, and arms the kill: a context with the deadline now + wait
 * delay whose after-function, on the timer thread, sends SIGKILL the same
 * way. ctx_proc_wait does the same at that time if it is waiting (should
 * the arming have failed for lack of memory).
 *
 * Wait polls the pidfd and the captured pipes (non-blocking at our end);
 * after the child's exit, captured pipes still open are read until end of
 * file or the wait delay, then closed (Go's WaitDelay: a grandchild that
 * holds them cannot hang the wait). If the context ended the child, the
 * rest of its tree must be gone too before the wait returns: before
 * reaping the leader (the group id is still reserved), it waits on the
 * pidfds of the marked processes left, up to the kill time, kills what
 * remains, and waits for that.
 */
#define _GNU_SOURCE
#include "tree.h"

#include <ctx/parse.h>
#include <ctx/proc.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define TREE_FDS 256

struct capture {
    bool on; /* this stream is captured */
    int fd;  /* our end, non-blocking; -1 once closed */
    char *buf;
    size_t len, cap;
};

struct ctx_proc {
    ctx_t *c; /* a reference */
    pid_t pid;
    int pidfd;
    int in_fd, out_fd, err_fd; /* CTX_PROC_PIPE ends, or -1 */
    struct capture cap[2];     /* stdout, stderr when captured */
    int cancel_signal;
    ctx_time_t wait_delay;
    bool foreground;
    char marker[64]; /* "CTX_PROC_TREE_<pid>_<n>=1" */
    ctx_after_t *on_cancel;
    ctx__mutex_t mu;
    bool reaped;          /* guarded by mu */
    bool cancelled;       /* guarded by mu */
    ctx_time_t kill_at;   /* guarded by mu */
    bool killed;          /* guarded by mu: SIGKILL sent */
    int status;           /* guarded by mu, once reaped */
    int result;           /* guarded by mu, once reaped */
    ctx_t *kill_timer;    /* guarded by mu */
    ctx_after_t *on_kill; /* guarded by mu */
};

static atomic_uint tree_seq;

/* ------------------------------------------------------------ signals */

static int pidfd_signal(int pidfd, int sig)
{
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

/* Send sig to p's tree; p->mu held. */
static void send_tree(ctx_proc_t *p, int sig) CTX_REQUIRES(p->mu)
{
    if (p->reaped)
        return;
    if (p->foreground) {
        pidfd_signal(p->pidfd, sig);
    } else {
        kill(-p->pid, sig);
        ctx__tree_signal(p->marker, sig, p->pid, NULL, 0, NULL);
    }
    if (sig != SIGKILL && sig != SIGCONT) {
        if (p->foreground)
            pidfd_signal(p->pidfd, SIGCONT);
        else
            kill(-p->pid, SIGCONT);
    }
    ctx__count(CTX__C_KILLS, 1);
}

static void kill_now(ctx_proc_t *p) CTX_REQUIRES(p->mu)
{
    if (!p->killed) {
        p->killed = true;
        send_tree(p, SIGKILL);
    }
}

static void on_kill(void *arg)
{
    ctx_proc_t *p = arg;
    ctx__lock(&p->mu);
    kill_now(p);
    ctx__unlock(&p->mu);
}

static void on_cancel(void *arg)
{
    ctx_proc_t *p = arg;
    ctx_t *t = NULL;

    ctx__lock(&p->mu);
    if (p->reaped || p->cancelled) {
        ctx__unlock(&p->mu);
        return;
    }
    p->cancelled = true;
    p->kill_at = ctx__time_add(ctx__real_now(), p->wait_delay);
    send_tree(p, p->cancel_signal);
    if (p->wait_delay != CTX_NO_DEADLINE &&
        ctx_with_timeout(ctx_background(), p->wait_delay, &t) == 0) {
        p->kill_timer = t;
        if (ctx_after_func(t, on_kill, p, &p->on_kill) != 0) {
            p->kill_timer = NULL;
            ctx_release(t); /* ctx_proc_wait kills at kill_at itself */
        }
    }
    ctx__unlock(&p->mu);
}

int ctx_proc_signal(ctx_proc_t *p, int sig)
{
    int rc = 0;
    if (!p || sig <= 0 || sig >= NSIG)
        return EINVAL;
    ctx__lock(&p->mu);
    if (p->reaped)
        rc = ESRCH;
    else
        send_tree(p, sig);
    ctx__unlock(&p->mu);
    return rc;
}

/* ------------------------------------------------------------ spawn */

static int stream_ok(int v, int can_capture)
{
    return v >= 0 || v == CTX_PROC_INHERIT || v == CTX_PROC_PIPE ||
           v == CTX_PROC_NULL || (can_capture && v == CTX_PROC_CAPTURE);
}

static int make_pipe(int fds[2])
{
    if (ctx__fault(CTX__FAULT_PIPE)) {
        errno = EMFILE;
        return -1;
    }
    if (pipe2(fds, O_CLOEXEC) < 0)
        return -1;
    atomic_fetch_add(&ctx__fds, 2);
    return 0;
}

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        atomic_fetch_sub(&ctx__fds, 1);
        *fd = -1;
    }
}

/*
 * Set up the child's side of one stream: the file action for `target`,
 * and our end in *ours (pipes). child_end collects what to close after.
 */
static int stream(posix_spawn_file_actions_t *fa, int how, int target,
                  int *ours, int *child_end)
{
    int fds[2];
    *ours = -1;
    *child_end = -1;
    if (how == CTX_PROC_INHERIT)
        return 0;
    if (how == CTX_PROC_NULL)
        return posix_spawn_file_actions_addopen(
            fa, target, "/dev/null", target == 0 ? O_RDONLY : O_WRONLY, 0);
    if (how >= 0)
        return posix_spawn_file_actions_adddup2(fa, how, target);
    if (make_pipe(fds) < 0)
        return errno;
    *ours = target == 0 ? fds[1] : fds[0];
    *child_end = target == 0 ? fds[0] : fds[1];
    return posix_spawn_file_actions_adddup2(fa, *child_end, target);
}

/* The child's environment: envp (or environ) without CTX_DEADLINE when
 * exporting, plus the marker and the deadline. */
static char **child_env(char *const *envp, const char *marker,
                        const char *deadline)
{
    char *const *src = envp ? envp : environ;
    size_t n = 0, k = 0;
    char **env;
    while (src && src[n])
        n++;
    env = ctx__calloc(n + 3, sizeof *env);
    if (!env)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (!deadline || strncmp(src[i], "CTX_DEADLINE=", 13) != 0)
            env[k++] = src[i];
    env[k++] = (char *)marker;
    if (deadline)
        env[k++] = (char *)deadline;
    env[k] = NULL;
    return env;
}

static int check_opts(ctx_t *c, const ctx_proc_opts_t *o)
{
    struct sigaction sa;
    if (!c || !o || !o->argv || !o->argv[0] || !stream_ok(o->stdin_fd, 0) ||
        !stream_ok(o->stdout_fd, 1) || !stream_ok(o->stderr_fd, 1) ||
        o->wait_delay < 0 || o->cancel_signal < 0 || o->cancel_signal >= NSIG ||
        (o->n_extra_fds && !o->extra_fds))
        return EINVAL;
    /* An extra descriptor numbered where an earlier one lands would be
     * overwritten before it is moved. */
    for (size_t i = 0; i < o->n_extra_fds; i++) {
        int fd = o->extra_fds[i];
        if (fd < 0 ||
            (fd >= 3 && (size_t)fd < 3 + o->n_extra_fds && (size_t)fd != 3 + i))
            return EINVAL;
    }
    /* SIGCHLD ignored reaps children behind our back: their pid could be
     * reused before we open the pidfd. */
    if (sigaction(SIGCHLD, NULL, &sa) == 0 &&
        (sa.sa_handler == SIG_IGN || (sa.sa_flags & SA_NOCLDWAIT)))
        return EINVAL;
    return 0;
}

static int do_spawn(ctx_proc_t *p, const ctx_proc_opts_t *o, ctx_t *c)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, all;
    char deadline[64], **env = NULL;
    int child_ends[3] = {-1, -1, -1}, rc;
    const int hows[3] = {o->stdin_fd, o->stdout_fd, o->stderr_fd};
    int ours[3];
    ctx_time_t dl;

    if ((rc = posix_spawn_file_actions_init(&fa)) != 0)
        return rc;
    if ((rc = posix_spawnattr_init(&attr)) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        return rc;
    }
    for (int i = 0; i < 3 && rc == 0; i++)
        rc = stream(&fa, hows[i], i, &ours[i], &child_ends[i]);
    for (size_t i = 0; rc == 0 && i < o->n_extra_fds; i++)
        rc = posix_spawn_file_actions_adddup2(&fa, o->extra_fds[i], 3 + (int)i);
    if (rc == 0)
        rc = posix_spawn_file_actions_addclosefrom_np(&fa,
                                                      3 + (int)o->n_extra_fds);
    if (rc == 0 && o->dir)
        rc = posix_spawn_file_actions_addchdir_np(&fa, o->dir);
    sigemptyset(&none);
    sigfillset(&all);
    sigdelset(&all, SIGKILL);
    sigdelset(&all, SIGSTOP);
    if (rc == 0)
        rc = posix_spawnattr_setsigmask(&attr, &none);
    if (rc == 0)
        rc = posix_spawnattr_setsigdefault(&attr, &all);
    if (rc == 0 && !o->foreground)
        rc = posix_spawnattr_setpgroup(&attr, 0);
    if (rc == 0)
        rc = posix_spawnattr_setflags(
            &attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                       (o->foreground ? 0 : POSIX_SPAWN_SETPGROUP));
    if (rc == 0) {
        bool has_dl = o->export_deadline && ctx_deadline(c, &dl);
        /* The child reads it back with ctx_from_env: the same format. */
        if (has_dl) {
            memcpy(deadline, "CTX_DEADLINE=", 13);
            ctx_deadline_format(dl, deadline + 13, sizeof deadline - 13);
        }
        env = child_env(o->envp, p->marker, has_dl ? deadline : NULL);
        if (!env)
            rc = ENOMEM;
    }
    if (rc == 0 && ctx__fault(CTX__FAULT_SPAWN))
        rc = EAGAIN;
    if (rc == 0) {
        const char *path = o->path ? o->path : o->argv[0];
        rc = strchr(path, '/')
                 ? posix_spawn(&p->pid, path, &fa, &attr, o->argv, env)
                 : posix_spawnp(&p->pid, path, &fa, &attr, o->argv, env);
    }
    for (int i = 0; i < 3; i++)
        close_fd(&child_ends[i]);
    if (rc != 0)
        for (int i = 0; i < 3; i++)
            close_fd(&ours[i]);
    p->in_fd = ours[0];
    for (int i = 1; i < 3; i++) { /* stdout, stderr: ours, or captured */
        int *plain = i == 1 ? &p->out_fd : &p->err_fd;
        if (hows[i] == CTX_PROC_CAPTURE) {
            p->cap[i - 1].on = true;
            p->cap[i - 1].fd = ours[i];
            *plain = -1;
        } else {
            *plain = ours[i];
        }
    }
    ctx__free(env);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    return rc;
}

/* Kill and reap a child we cannot keep (spawn failed after it started). */
static void discard_child(pid_t pid)
{
    int st;
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
}

int ctx_proc_spawn(ctx_t *c, const ctx_proc_opts_t *o, ctx_proc_t **out)
{
    ctx_proc_t *p;
    int rc;

    if (out)
        *out = NULL;
    if (!out || (rc = check_opts(c, o)) != 0)
        return EINVAL;
    if (ctx_done(c))
        return ctx_err(c);
    p = ctx__calloc(1, sizeof *p);
    if (!p)
        return ENOMEM;
    pthread_mutex_init(&p->mu.m, NULL);
    p->pidfd = -1;
    p->cap[0].fd = p->cap[1].fd = -1;
    p->cancel_signal = o->cancel_signal ? o->cancel_signal : SIGTERM;
    p->wait_delay = o->wait_delay ? o->wait_delay : CTX_PROC_WAIT_DELAY;
    p->foreground = o->foreground;
    snprintf(p->marker, sizeof p->marker, "CTX_PROC_TREE_%ld_%u=1",
             (long)getpid(), atomic_fetch_add(&tree_seq, 1));
    if ((rc = do_spawn(p, o, c)) != 0)
        goto fail;
    if (ctx__fault(CTX__FAULT_PIDFD)) {
        rc = EMFILE;
    } else if ((p->pidfd = (int)syscall(SYS_pidfd_open, p->pid, 0)) < 0) {
        rc = errno;
    } else {
        fcntl(p->pidfd, F_SETFD, FD_CLOEXEC);
        atomic_fetch_add(&ctx__fds, 1);
    }
    if (rc != 0) {
        discard_child(p->pid);
        goto fail_fds;
    }
    for (int i = 0; i < 2; i++)
        if (p->cap[i].fd >= 0)
            fcntl(p->cap[i].fd, F_SETFL, O_NONBLOCK);
    atomic_fetch_add(&ctx__children, 1);
    p->c = ctx_retain(c);
    /* If c is done by now, the kill sequence starts right here. */
    if ((rc = ctx_after_func(c, on_cancel, p, &p->on_cancel)) != 0) {
        ctx__lock(&p->mu);
        kill_now(p);
        ctx__unlock(&p->mu);
        ctx_proc_free(p);
        return rc;
    }
    *out = p;
    return 0;

fail_fds:
    close_fd(&p->pidfd);
    close_fd(&p->in_fd);
    close_fd(&p->out_fd);
    close_fd(&p->err_fd);
    close_fd(&p->cap[0].fd);
    close_fd(&p->cap[1].fd);
fail:
    pthread_mutex_destroy(&p->mu.m);
    ctx__free(p);
    return rc;
}

/* ------------------------------------------------------------ accessors */

pid_t ctx_proc_pid(const ctx_proc_t *p)
{
    return p ? p->pid : -1;
}

int ctx_proc_stdin(const ctx_proc_t *p)
{
    return p ? p->in_fd : -1;
}

int ctx_proc_stdout(const ctx_proc_t *p)
{
    return p ? p->out_fd : -1;
}

int ctx_proc_stderr(const ctx_proc_t *p)
{
    return p ? p->err_fd : -1;
}

int ctx_proc_close_stdin(ctx_proc_t *p)
{
    if (!p || p->in_fd < 0)
        return EINVAL;
    close_fd(&p->in_fd);
    return 0;
}

const char *ctx_proc_output(const ctx_proc_t *p, int stream, size_t *len)
{
    const struct capture *cp;
    if (len)
        *len = 0;
    if (!p || (stream != 1 && stream != 2))
        return NULL;
    cp = &p->cap[stream - 1];
    if (!cp->on)
        return NULL;
    if (len)
        *len = cp->len;
    return cp->buf ? cp->buf : "";
}

/* ------------------------------------------------------------ wait */

/* Read what is there from a captured pipe; close it at end of file. */
static void slurp(struct capture *cp)
{
    for (;;) {
        ssize_t r;
        if (cp->cap - cp->len < 4096 + 1) {
            size_t ncap = cp->cap ? cp->cap * 2 : 8192;
            char *nb = ctx__realloc(cp->buf, ncap);
            if (!nb) { /* out of memory: drop the rest, keep reading */
                char sink[4096];
                r = read(cp->fd, sink, sizeof sink);
                if (r == 0)
                    close_fd(&cp->fd);
                if (r <= 0)
                    return;
                continue;
            }
            cp->buf = nb;
            cp->cap = ncap;
            cp->buf[cp->len] = 0;
        }
        r = read(cp->fd, cp->buf + cp->len, cp->cap - cp->len - 1);
        if (r > 0) {
            cp->len += (size_t)r;
            cp->buf[cp->len] = 0;
            continue;
        }
        if (r == 0)
            close_fd(&cp->fd);
        else if (errno == EINTR)
            continue;
        return;
    }
}

static void sleep_until_real(ctx_time_t until, struct pollfd *pf, int n)
{
    ctx_time_t left = until - ctx__real_now();
    struct timespec ts;
    if (left < 0)
        left = 0;
    ts.tv_sec = (time_t)(left / CTX_SECOND);
    ts.tv_nsec = (long)(left % CTX_SECOND);
    ppoll(pf, (nfds_t)n, until == CTX_NO_DEADLINE ? NULL : &ts, NULL);
}

/* The context ended the child: wait for the rest of its tree to go, up to
 * the kill time, then kill it and wait for that. The leader is a zombie,
 * not reaped: its group id is still reserved. */
static void wait_tree(ctx_proc_t *p)
{
    int fds[TREE_FDS], n;
    ctx_time_t kill_at;

    ctx__lock(&p->mu);
    kill_at = p->kill_at;
    ctx__unlock(&p->mu);
    for (int round = 0; round < 100; round++) {
        struct pollfd pf[TREE_FDS];
        int alive = 0;
        ctx__tree_signal(p->marker, 0, 0, fds, TREE_FDS, &n);
        for (int i = 0; i < n; i++)
            pf[i] = (struct pollfd){fds[i], POLLIN, 0};
        if (n > 0) {
            bool killed;
            ctx__lock(&p->mu);
            killed = p->killed;
            ctx__unlock(&p->mu);
            if (!killed && ctx__real_now() < kill_at) {
                sleep_until_real(kill_at, pf, n);
            } else {
                /* Killed: their pidfds turn readable as they die. */
                sleep_until_real(ctx__real_now() + 100 * CTX_MILLISECOND, pf,
                                 n);
            }
            if (ctx__real_now() >= kill_at) {
                ctx__lock(&p->mu);
                kill_now(p);
                ctx__unlock(&p->mu);
            }
        }
        for (int i = 0; i < n; i++) {
            struct pollfd one = {fds[i], POLLIN, 0};
            if (poll(&one, 1, 0) == 0)
                alive++;
            close(fds[i]);
        }
        if (n == 0 || (alive == 0 && n < TREE_FDS))
            break;
    }
}

static int to_status(const siginfo_t *si)
{
    if (si->si_code == CLD_EXITED)
        return W_EXITCODE(si->si_status & 0xff, 0);
    return W_EXITCODE(0, si->si_status) |
           (si->si_code == CLD_DUMPED ? 0x80 : 0);
}

int ctx_proc_wait(ctx_proc_t *p, int *status)
{
    ctx_time_t pipes_until = CTX_NO_DEADLINE;
    bool exited = false, cancelled;
    siginfo_t si;
    int rc;

    if (!p)
        return EINVAL;
    ctx__lock(&p->mu);
    if (p->reaped) {
        if (status)
            *status = p->status;
        rc = p->result;
        ctx__unlock(&p->mu);
        return rc;
    }
    ctx__unlock(&p->mu);
    ctx__note_wait_num("child pid", (long)p->pid);
    for (;;) {
        struct pollfd pf[3];
        int n = 0, idx[3];
        ctx_time_t until = pipes_until, kill_at;
        bool killed;
        if (!exited)
            pf[n] = (struct pollfd){p->pidfd, POLLIN, 0}, idx[n++] = -1;
        for (int i = 0; i < 2; i++)
            if (p->cap[i].fd >= 0)
                pf[n] = (struct pollfd){p->cap[i].fd, POLLIN, 0}, idx[n++] = i;
        if (n == 0)
            break;
        ctx__lock(&p->mu);
        cancelled = p->cancelled;
        killed = p->killed;
        kill_at = p->kill_at;
        ctx__unlock(&p->mu);
        if (cancelled && !killed && kill_at < until)
            until = kill_at;
        sleep_until_real(until, pf, n);
        for (int i = 0; i < n; i++) {
            if (!pf[i].revents)
                continue;
            if (idx[i] < 0) {
                exited = true;
                if (p->wait_delay != CTX_NO_DEADLINE)
                    pipes_until = ctx__time_add(ctx__real_now(), p->wait_delay);
            } else {
                slurp(&p->cap[idx[i]]);
            }
        }
        if (cancelled && !killed && ctx__real_now() >= kill_at) {
            ctx__lock(&p->mu);
            kill_now(p);
            ctx__unlock(&p->mu);
        }
        if (exited && ctx__real_now() >= pipes_until) {
            close_fd(&p->cap[0].fd); /* a grandchild holds them: enough */
            close_fd(&p->cap[1].fd);
        }
    }
    ctx__lock(&p->mu);
    cancelled = p->cancelled;
    ctx__unlock(&p->mu);
    if (cancelled && !p->foreground)
        wait_tree(p);
    ctx__lock(&p->mu);
    memset(&si, 0, sizeof si);
    while (waitid(P_PIDFD, (id_t)p->pidfd, &si, WEXITED) < 0 && errno == EINTR)
        ;
    p->reaped = true;
    p->status = to_status(&si);
    p->result = p->cancelled ? ctx_err(p->c) : 0;
    if (status)
        *status = p->status;
    rc = p->result;
    ctx__unlock(&p->mu);
    atomic_fetch_sub(&ctx__children, 1);
    ctx__note_done();
    return rc;
}

/* ------------------------------------------------------------ free */

void ctx_proc_free(ctx_proc_t *p)
{
    ctx_t *t;
    ctx_after_t *a;

    if (!p)
        return;
    if (p->on_cancel)
        ctx_after_stop(p->on_cancel); /* not running after this */
    ctx__lock(&p->mu);
    if (!p->reaped)
        kill_now(p); /* never waited for: no zombie left behind */
    ctx__unlock(&p->mu);
    ctx_proc_wait(p, NULL);
    ctx__lock(&p->mu);
    t = p->kill_timer;
    a = p->on_kill;
    p->kill_timer = NULL;
    p->on_kill = NULL;
    ctx__unlock(&p->mu);
    if (a)
        ctx_after_stop(a);
    if (t) {
        ctx_cancel(t);
        ctx_release(t);
    }
    close_fd(&p->pidfd);
    close_fd(&p->in_fd);
    close_fd(&p->out_fd);
    close_fd(&p->err_fd);
    close_fd(&p->cap[0].fd);
    close_fd(&p->cap[1].fd);
    ctx__free(p->cap[0].buf);
    ctx__free(p->cap[1].buf);
    ctx_release(p->c);
    pthread_mutex_destroy(&p->mu.m);
    ctx__free(p);
}
