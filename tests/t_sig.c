/* SPDX-License-Identifier: MIT */
/*
 * Signals (SPEC §3): ctx_signal_init takes over INT, TERM, HUP and QUIT;
 * notify contexts end with the signal as cause; registrations end with
 * their context; unknown signals are refused; a signal nobody waits for
 * keeps its usual effect; second_exits. Runs in its own process.
 */
#include "t.h"

#include <ctx/sig.h>

#include <libgen.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

extern char **environ;

/* Before main: the harness's own threads must inherit the blocked mask,
 * as ctx_signal_init's documentation asks. */
__attribute__((constructor)) static void take_over_signals(void)
{
    if (ctx_signal_init() != 0)
        abort();
}

static int run_child(const char *mode)
{
    char self[4096], path[4200];
    char *argv[] = {path, (char *)mode, NULL};
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    pid_t pid;
    int status = -1;
    if (n <= 0)
        return -1;
    self[n] = 0;
    snprintf(path, sizeof path, "%s/sig_child", dirname(self));
    {
        /* The child must not inherit our blocked signals. */
        posix_spawnattr_t a;
        sigset_t none;
        sigemptyset(&none);
        posix_spawnattr_init(&a);
        posix_spawnattr_setsigmask(&a, &none);
        posix_spawnattr_setflags(&a, POSIX_SPAWN_SETSIGMASK);
        if (posix_spawn(&pid, path, NULL, &a, argv, environ) != 0)
            return -1;
        posix_spawnattr_destroy(&a);
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return status;
}

T_CASE(init_and_notify)
{
    ctx_t *c, *d;
    int sigs[] = {SIGTERM, SIGINT}, term[] = {SIGTERM};
    const char *why;
    T_OK(ctx_signal_init());
    T_OK(ctx_signal_init()); /* again: nothing */
    T_OK(ctx_signal_notify(ctx_background(), sigs, 2, &c));
    T_OK(ctx_signal_notify(ctx_background(), term, 1, &d));
    T_ERR(ctx_err(c), 0);
    T_OK(kill(getpid(), SIGTERM));
    T_OK(ctx_wait(c, 5 * CTX_SECOND));
    T_OK(ctx_wait(d, 5 * CTX_SECOND)); /* every waiting context gets it */
    T_ERR(ctx_err(c), ECANCELED);
    T_EQ(ctx_cause(c, &why), CTX_SIGNAL_CAUSE(SIGTERM));
    T_STREQ(why, "signal SIGTERM");
    T_EQ(ctx_signal_of(c), SIGTERM);
    T_EQ(ctx_signal_of(ctx_background()), 0);
    ctx_release(c);
    ctx_release(d);
    /* A child of a signal context reports it too. */
    T_OK(ctx_signal_notify(ctx_background(), sigs, 2, &c));
    T_OK(ctx_with_cancel(c, &d));
    T_OK(kill(getpid(), SIGINT));
    T_OK(ctx_wait(d, 5 * CTX_SECOND));
    T_EQ(ctx_signal_of(d), SIGINT);
    ctx_release(d);
    ctx_release(c);
}

T_CASE(registration_ends_with_its_context)
{
    ctx_t *p, *c;
    int sigs[] = {SIGHUP};
    T_OK(ctx_signal_init());
    T_OK(ctx_with_cancel(ctx_background(), &p));
    T_OK(ctx_signal_notify(p, sigs, 1, &c));
    ctx_cancel(p); /* the registration goes with it */
    T_ERR(ctx_err(c), ECANCELED);
    T_EQ(ctx_signal_of(c), 0);
    ctx_release(c);
    ctx_release(p);
    T_EQ(t_live_contexts(), 0);
    /* The Go pattern: cancel (stop) and release, never signalled. */
    T_OK(ctx_signal_notify(ctx_background(), sigs, 1, &c));
    ctx_cancel(c);
    ctx_release(c);
    T_EQ(t_live_contexts(), 0);
    /* Born done under a done parent: registers nothing. */
    T_OK(ctx_with_cancel(ctx_background(), &p));
    ctx_cancel(p);
    T_OK(ctx_signal_notify(p, sigs, 1, &c));
    T_ERR(ctx_err(c), ECANCELED);
    ctx_release(c);
    ctx_release(p);
    T_EQ(t_live_contexts(), 0);
}

T_CASE(bad_input)
{
    ctx_t *c = (ctx_t *)&c;
    int usr1[] = {SIGUSR1}, zero[] = {0}, big[] = {999}, term[] = {SIGTERM};
    T_OK(ctx_signal_init());
    T_ERR(ctx_signal_notify(ctx_background(), usr1, 1, &c), EINVAL);
    T_NULL(c);
    T_ERR(ctx_signal_notify(ctx_background(), zero, 1, &c), EINVAL);
    T_ERR(ctx_signal_notify(ctx_background(), big, 1, &c), EINVAL);
    T_ERR(ctx_signal_notify(ctx_background(), term, 0, &c), EINVAL);
    T_ERR(ctx_signal_notify(ctx_background(), NULL, 1, &c), EINVAL);
    T_ERR(ctx_signal_notify(NULL, term, 1, &c), EINVAL);
    T_ERR(ctx_signal_notify(ctx_background(), term, 1, NULL), EINVAL);
    T_EQ(t_live_contexts(), 0);
}

T_CASE(unwatched_signals_keep_their_meaning)
{
    int st = run_child("plain");
    T_TRUE(WIFSIGNALED(st));
    T_EQ(WTERMSIG(st), SIGTERM);
    st = run_child("ignored");
    T_TRUE(WIFEXITED(st));
    T_EQ(WEXITSTATUS(st), 0);
}

T_CASE(second_signal_exits)
{
    int st = run_child("second");
    T_TRUE(WIFSIGNALED(st));
    T_EQ(WTERMSIG(st), SIGTERM);
}

T_CASE(threads_made_later_block_them)
{
    sigset_t cur;
    T_OK(ctx_signal_init());
    pthread_sigmask(SIG_BLOCK, NULL, &cur);
    T_TRUE(sigismember(&cur, SIGTERM));
    T_TRUE(sigismember(&cur, SIGINT));
    T_TRUE(sigismember(&cur, SIGHUP));
    T_TRUE(sigismember(&cur, SIGQUIT));
}
