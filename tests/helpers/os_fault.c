/* SPDX-License-Identifier: MIT */
/*
 * Run under strace -e inject=... by tests/strace_os.sh: one operation of
 * the OS layer whose first system call of a kind fails, then the same
 * operation again, which must work. Prints "first=<errname> then=<errname>"
 * and exits 0 if the first failed cleanly and the second worked, with
 * nothing left behind (no child, no descriptor of libctx's).
 *   os_fault spawn     posix_spawn, pipes, pidfd_open
 *   os_fault wait      a ctx_read that must wait (the thread's eventfd)
 *   os_fault isolate   ctx_isolate (socketpair, memfd, the helper's fork)
 *   os_fault signal    ctx_signal_init + ctx_signal_notify (the signal
 *                      thread; signals are taken with sigwaitinfo, there
 *                      is no signalfd to fail)
 */
#define _GNU_SOURCE
#include <ctx/ctx.h>
#include <ctx/force.h>
#include <ctx/proc.h>
#include <ctx/sig.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int spawn_once(void)
{
    char *argv[] = {"true", NULL};
    ctx_proc_opts_t o = CTX_PROC_OPTS_INIT;
    ctx_proc_t *p;
    int rc, st;
    o.argv = argv;
    o.stdout_fd = CTX_PROC_PIPE;
    if ((rc = ctx_proc_spawn(ctx_background(), &o, &p)) != 0)
        return rc;
    rc = ctx_proc_wait(p, &st);
    ctx_proc_free(p);
    return rc;
}

static int wait_once(void)
{
    int pf[2], rc = 0;
    char b;
    ctx_t *c;
    if (pipe2(pf, O_CLOEXEC) < 0)
        return errno;
    if (ctx_with_timeout(ctx_background(), 20 * CTX_MILLISECOND, &c) != 0)
        return ENOMEM;
    if (ctx_read(c, pf[0], &b, 1) < 0 && errno != ETIMEDOUT)
        rc = errno;
    ctx_release(c);
    close(pf[0]);
    close(pf[1]);
    return rc;
}

static int upper(const void *in, size_t n, void *out, size_t cap, size_t *len)
{
    (void)in;
    (void)n;
    (void)out;
    (void)cap;
    *len = 0;
    return 7;
}

static int isolate_once(void)
{
    ctx_isolate_result_t r;
    int rc = ctx_isolate(ctx_background(), upper, NULL, 0, NULL, 0, &r);
    return rc ? rc : (r.value == 7 ? 0 : EIO);
}

static int signal_once(void)
{
    int sigs[] = {SIGHUP}, rc;
    ctx_t *c;
    if ((rc = ctx_signal_init()) != 0)
        return rc;
    if ((rc = ctx_signal_notify(ctx_background(), sigs, 1, &c)) != 0)
        return rc;
    if (ctx_err(c) != 0) /* no SIGHUP came: it must be live */
        rc = EIO;
    ctx_cancel(c);
    ctx_release(c);
    return rc;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    int (*op)(void) = strcmp(mode, "spawn") == 0     ? spawn_once
                      : strcmp(mode, "wait") == 0    ? wait_once
                      : strcmp(mode, "isolate") == 0 ? isolate_once
                      : strcmp(mode, "signal") == 0  ? signal_once
                                                     : NULL;
    ctx_stats_t st;
    int first, then;
    if (!op)
        return 2;
    first = op();
    then = op();
    /* strace counts per process: a helper process made by the second
     * call has a first call of its own that fails too. */
    if (then != 0)
        then = op();
    ctx_stats(&st);
    printf("first=%s then=%s children=%lld\n", ctx_errname(first),
           ctx_errname(then), (long long)st.children);
    return first != 0 && then == 0 && st.children == 0 ? 0 : 1;
}
