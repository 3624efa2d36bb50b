/* SPDX-License-Identifier: MIT */
/*
 * Subprocesses (SPEC §3): spawn, exit statuses, errors with nothing left
 * behind, pipes and captured output, what the child inherits (signal mask,
 * dispositions, descriptors, deadline), cancellation with TERM then KILL
 * for the whole tree including escapees, the grandchild holding a pipe,
 * and no signal after the wait.
 */
#include "t.h"

#include <ctx/proc.h>

#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

static char helper_dir[4096];

static const char *helper(const char *name)
{
    static char path[4200];
    if (!helper_dir[0]) {
        ssize_t n =
            readlink("/proc/self/exe", helper_dir, sizeof helper_dir - 1);
        helper_dir[n > 0 ? n : 0] = 0;
        dirname(helper_dir);
    }
    snprintf(path, sizeof path, "%s/%s", helper_dir, name);
    return path;
}

/* Strings that live through a case: a ring of buffers. */
static char *fmt(const char *f, ...)
{
    static char ring[16][256];
    static int next;
    char *b = ring[next++ % 16];
    va_list ap;
    va_start(ap, f);
    vsnprintf(b, sizeof ring[0], f, ap);
    va_end(ap);
    return b;
}

/* A sleeper's tag, its seconds: about a minute, and unique to this process
 * and case, so that runs side by side never count each other's. */
static char *tag(int n)
{
    return fmt("61.%05d%03d", (int)(getpid() % 100000), n);
}

/* Processes alive (not zombies) whose command line is `sleep <tag>`. */
static int alive_tagged(const char *tag)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d)) != NULL) {
        char path[300], buf[256], st[512];
        FILE *f;
        size_t len;
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "/proc/%s/cmdline", e->d_name);
        if (!(f = fopen(path, "r")))
            continue;
        len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = 0;
        if (strcmp(buf, "sleep") != 0 || len < 7 || strcmp(buf + 6, tag) != 0)
            continue;
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        if (!(f = fopen(path, "r")))
            continue;
        if (fgets(st, sizeof st, f)) {
            char *rp = strrchr(st, ')');
            if (rp && rp[2] != 'Z')
                n++;
        }
        fclose(f);
    }
    if (d)
        closedir(d);
    return n;
}

static int run(ctx_t *c, ctx_proc_opts_t *o, int *status)
{
    ctx_proc_t *p;
    int rc = ctx_proc_spawn(c, o, &p);
    if (rc)
        return rc;
    rc = ctx_proc_wait(p, status);
    ctx_proc_free(p);
    return rc;
}

static int64_t children(void)
{
    ctx_stats_t st;
    ctx_stats(&st);
    return st.children;
}

T_CASE(exit_statuses)
{
    char *t[] = {"true", NULL}, *f[] = {"false", NULL},
         *seven[] = {"sh", "-c", "exit 7", NULL},
         *killed[] = {"sh", "-c", "kill -9 $$", NULL};
    ctx_proc_opts_t o = CTX_PROC_OPTS_INIT;
    int st = -1;
    o.argv = t;
    T_OK(run(ctx_background(), &o, &st));
    T_TRUE(WIFEXITED(st));
    T_EQ(WEXITSTATUS(st), 0);
    o.argv = f;
    T_OK(run(ctx_background(), &o, &st));
    T_EQ(WEXITSTATUS(st), 1);
    o.argv = seven;
    T_OK(run(ctx_background(), &o, &st));
    T_EQ(WEXITSTATUS(st), 7);
    o.argv = killed;
    T_OK(run(ctx_background(), &o, &st));
    T_TRUE(WIFSIGNALED(st));
    T_EQ(WTERMSIG(st), SIGKILL);
    T_EQ(children(), 0);
}

T_CASE(spawn_errors_leave_nothing)
{
    char *none[] = {"/no/such/program", NULL},
         *nope[] = {"no-such-prog-x", NULL}, *notexec[] = {NULL, NULL},
         *empty[] = {NULL}, *t[] = {"true", NULL};
    ctx_proc_opts_t o = CTX_PROC_OPTS_INIT;
    ctx_proc_t *p = (ctx_proc_t *)&p;
    ctx_t *c;
    int fds = t_fd_count();
    o.stdout_fd = CTX_PROC_PIPE;
    o.stderr_fd = CTX_PROC_CAPTURE;
    o.argv = none;
    T_ERR(ctx_proc_spawn(ctx_background(), &o, &p), ENOENT);
    T_NULL(p);
    o.argv = nope;
    T_ERR(ctx_proc_spawn(ctx_background(), &o, &p), ENOENT);
    {
        /* A file without the execute permission. */
        char path[] = "/tmp/t_proc_noexec_XXXXXX";
        int fd = mkstemp(path);
        T_GE(fd, 0);
        fchmod(fd, 0644);
        close(fd);
        fds = t_fd_count();
        notexec[0] = path;
        o.argv = notexec;
        T_ERR(ctx_proc_spawn(ctx_background(), &o, &p), EACCES);
        unlink(path);
    }
    o.argv = empty;
    T_ERR(ctx_proc_spawn(ctx_background(), &o, &p), EINVAL);
    o.argv = t;
    T_ERR(ctx_proc_spawn(NULL, &o, &p), EINVAL);
    T_ERR(ctx_proc_spawn(ctx_background(), NULL, &p), EINVAL);
    T_ERR(ctx_proc_spawn(ctx_background(), &o, NULL), EINVAL);
    o.stdin_fd = CTX_PROC_CAPTURE; /* stdin cannot be captured */
    T_ERR(ctx_proc_spawn(ctx_background(), &o, &p), EINVAL);
    o.stdin_fd = CTX_PROC_INHERIT;
    o.wait_delay = -1;
    T_ERR(ctx_proc_spawn(ctx_background(), &o, &p), EINVAL);
    o.wait_delay = 0;
    o.cancel_signal = 999;
    T_ERR(ctx_proc_spawn(ctx_background(), &o, &p), EINVAL);
    o.cancel_signal = 0;
    T_OK(ctx_with_cancel(ctx_background(), &c));
    ctx_cancel(c);
    T_ERR(ctx_proc_spawn(c, &o, &p), ECANCELED); /* nothing started */
    ctx_release(c);
    T_EQ(t_fd_count(), fds);
    T_EQ(children(), 0);
    T_EQ(ctx_proc_wait(NULL, NULL), EINVAL);
    T_EQ(ctx_proc_signal(NULL, SIGTERM), EINVAL);
    ctx_proc_free(NULL);
}

T_CASE(pipes_both_ways)
{
    char *cat[] = {"cat", NULL};
    ctx_proc_opts_t o = CTX_PROC_OPTS_INIT;
    ctx_proc_t *p;
    char buf[64] = {0};
    int st;
    o.argv = cat;
    o.stdin_fd = CTX_PROC_PIPE;
    o.stdout_fd = CTX_PROC_PIPE;
    T_OK(ctx_proc_spawn(ctx_background(), &o, &p));
    T_GE(ctx_proc_stdin(p), 0);
    T_GE(ctx_proc_stdout(p), 0);
    T_EQ(ctx_proc_stderr(p), -1);
    T_TRUE(fcntl(ctx_proc_stdin(p), F_GETFD) & FD_CLOEXEC);
    T_EQ(ctx_write(ctx_background(), ctx_proc_stdin(p), "round trip", 10), 10);
    T_OK(ctx_proc_close_stdin(p));
    T_ERR(ctx_proc_close_stdin(p), EINVAL);
    T_EQ(ctx_read(ctx_background(), ctx_proc_stdout(p), buf, sizeof buf), 10);
    T_STREQ(buf, "round trip");
    T_OK(ctx_proc_wait(p, &st));
    T_EQ(WEXITSTATUS(st), 0);
    ctx_proc_free(p);
}

T_CASE(capture_output)
{
    char *sh[] = {"sh", "-c", "echo out; echo err >&2; exit 3", NULL};
    ctx_proc_opts_t o = CTX_PROC_OPTS_INIT;
    ctx_proc_t *p;
    size_t len;
    int st;
    o.argv = sh;
    o.stdout_fd = CTX_PROC_CAPTURE;
    o.stderr_fd = CTX_PROC_CAPTURE;
    T_OK(ctx_proc_spawn(ctx_background(), &o, &p));
    T_OK(ctx_proc_wait(p, &st));
    T_EQ(WEXITSTATUS(st), 3);
    T_STREQ(ctx_proc_output(p, 1, &len), "out\n");
    T_EQ(len, 4);
    T_STREQ(ctx_proc_output(p, 2, NULL), "err\n");
    T_NULL(ctx_proc_output(p, 3, &len));
    ctx_proc_free(p);
    /* Not captured: NULL; captured but empty: "". */
    sh[2] = "true";
    o.stderr_fd = CTX_PROC_NULL;
    T_OK(ctx_proc_spawn(ctx_background(), &o, &p));
    T_OK(ctx_proc_wait(p, &st));
    T_STREQ(ctx_proc_output(p, 1, &len), "");
    T_EQ(len, 0);
    T_NULL(ctx_proc_output(p, 2, &len));
    ctx_proc_free(p);
}

/* The child's view: descriptors, signal masks, deadline. */
static int child_report(ctx_t *c, ctx_proc_opts_t *o, char *out, size_t n)
{
    char *argv[] = {(char *)helper("fdlist"), NULL, NULL};
    ctx_proc_t *p;
    int rc, st;
    o->argv = argv;
    o->stdout_fd = CTX_PROC_CAPTURE;
    if ((rc = ctx_proc_spawn(c, o, &p)) != 0)
        return rc;
    rc = ctx_proc_wait(p, &st);
    snprintf(out, n, "%s", ctx_proc_output(p, 1, NULL));
    ctx_proc_free(p);
    return rc;
}

T_CASE(child_gets_clean_mask_and_only_its_fds)
{
    ctx_proc_opts_t o = CTX_PROC_OPTS_INIT;
    char out[512];
    sigset_t block, old;
    int leak = open("/dev/null", O_RDONLY); /* no O_CLOEXEC: would leak */
    /* As after ctx_signal_init: blocked in the parent; and ignored. */
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    signal(SIGHUP, SIG_IGN);
    T_OK(child_report(ctx_background(), &o, out, sizeof out));
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    signal(SIGHUP, SIG_DFL);
    close(leak);
    T_TRUE(strstr(out, "fds: 0 1 2\n") != NULL);
    T_TRUE(strstr(out, "SigBlk:\t0000000000000000") != NULL);
    {
        /* No standard signal ignored. (glibc's posix_spawn leaves its two
         * internal real-time signals, 32 and 33, ignored in the child;
         * the new program's glibc takes them over.) */
        const char *ig = strstr(out, "SigIgn:\t");
        unsigned long long m = ~0ULL;
        T_NOTNULL(ig);
        sscanf(ig + 8, "%llx", &m);
        T_EQ(m & 0xffffffffULL & ~(1ULL << 31), 0);
    }
    T_TRUE(strstr(out, "CTX_DEADLINE: -") != NULL);
}

T_CASE(extra_fds_and_deadline_export)
{
    ctx_proc_opts_t o = CTX_PROC_OPTS_INIT;
    ctx_proc_t *p;
    ctx_t *c;
    char out[512], want[64], buf[16] = {0};
    char *argv[] = {(char *)helper("fdlist"), "3", NULL};
    int pf[2], extra[1], st;
    ctx_time_t dl;
    T_OK(pipe2(pf, O_CLOEXEC));
    extra[0] = pf[1];
    o.argv = argv;
    o.extra_fds = extra;
    o.n_extra_fds = 1;
    o.export_deadline = true;
    o.stdout_fd = CTX_PROC_CAPTURE;
    T_OK(ctx_with_timeout(ctx_background(), CTX_HOUR, &c));
    T_TRUE(ctx_deadline(c, &dl));
    T_OK(ctx_proc_spawn(c, &o, &p));
    T_OK(ctx_proc_wait(p, &st));
    snprintf(out, sizeof out, "%s", ctx_proc_output(p, 1, NULL));
    ctx_proc_free(p);
    T_EQ(read(pf[0], buf, sizeof buf), 5);
    T_STREQ(buf, "extra");
    T_TRUE(strstr(out, "fds: 0 1 2 3\n") != NULL);
    snprintf(want, sizeof want, "CTX_DEADLINE: %lld\n", (long long)dl);
    T_TRUE(strstr(out, want) != NULL);
    ctx_release(c);
    close(pf[0]);
    close(pf[1]);
    /* A misnumbered extra is refused. */
    extra[0] = 4;
    o.n_extra_fds = 1;
    {
        int two[2] = {4, 3};
        o.extra_fds = two;
        o.n_extra_fds = 2;
        T_ERR(ctx_proc_spawn(ctx_background(), &o, &p), EINVAL);
    }
}

T_CASE(working_directory)
{
    char *pwd[] = {"pwd", NULL};
    ctx_proc_opts_t o = CTX_PROC_OPTS_INIT;
    ctx_proc_t *p;
    int st;
    o.argv = pwd;
    o.dir = "/";
    o.stdout_fd = CTX_PROC_CAPTURE;
    T_OK(ctx_proc_spawn(ctx_background(), &o, &p));
    T_OK(ctx_proc_wait(p, &st));
    T_STREQ(ctx_proc_output(p, 1, NULL), "/\n");
    ctx_proc_free(p);
}

T_CASE(cancel_terminates)
{
    char *argv[] = {"sleep", tag(101), NULL};
    ctx_proc_opts_t o = CTX_PROC_OPTS_INIT;
    ctx_proc_t *p;
    ctx_t *c;
    int st;
    long long t0;
    o.argv = argv;
    T_OK(ctx_with_cancel(ctx_background(), &c));
    T_OK(ctx_proc_spawn(c, &o, &p));
    t_sleep_ns(20000000LL);
    T_EQ(alive_tagged(tag(101)), 1);
    t0 = t_now_ns();
    ctx_cancel(c);
    T_ERR(ctx_proc_wait(p, &st), ECANCELED);
    T_LT(t_now_ns() - t0, 1000LL * 1000000LL);
    T_TRUE(WIFSIGNALED(st));
    T_EQ(WTERMSIG(st), SIGTERM);
    T_ERR(ctx_proc_wait(p, &st), ECANCELED);   /* again: same */
    T_ERR(ctx_proc_signal(p, SIGTERM), ESRCH); /* never after the wait */
    ctx_proc_free(p);
    ctx_release(c);
    T_EQ(alive_tagged(tag(101)), 0);
}

T_CASE(term_ignored_then_killed_in_time)
{
    char *argv[] = {"sh", "-c", fmt("trap '' TERM; sleep %s", tag(102)), NULL};
    ctx_proc_opts_t o = CTX_PROC_OPTS_INIT;
    ctx_proc_t *p;
    ctx_t *c;
    int st;
    long long t0, dt;
    o.argv = argv;
    o.wait_delay = 200 * CTX_MILLISECOND;
    T_OK(ctx_with_cancel(ctx_background(), &c));
    T_OK(ctx_proc_spawn(c, &o, &p));
    t_sleep_ns(50000000LL);
    t0 = t_now_ns();
    ctx_cancel(c);
    T_ERR(ctx_proc_wait(p, &st), ECANCELED);
    dt = t_now_ns() - t0;
    T_TRUE(WIFSIGNALED(st));
    T_EQ(WTERMSIG(st), SIGKILL);
    T_GE(dt, 200LL * 1000000LL);
    T_LT(dt, 250LL * 1000000LL); /* wait delay + 50 ms */
    T_EQ(alive_tagged(tag(102)), 0);
    ctx_proc_free(p);
    ctx_release(c);
}

T_CASE(escaped_descendants_are_killed)
{
    /* setsid, a double fork, a background job, and the child itself;
     * stdout captured and held by all of them. */
    char *argv[] = {"sh", "-c",
                    fmt("setsid sleep %s & (sleep %s &) ; "
                        "sleep %s & exec sleep %s",
                        tag(201), tag(202), tag(203), tag(204)),
                    NULL};
    ctx_proc_opts_t o = CTX_PROC_OPTS_INIT;
    ctx_proc_t *p;
    ctx_t *c;
    int st;
    long long t0, dt;
    o.argv = argv;
    o.stdout_fd = CTX_PROC_CAPTURE;
    o.wait_delay = 300 * CTX_MILLISECOND;
    T_OK(ctx_with_cancel(ctx_background(), &c));
    T_OK(ctx_proc_spawn(c, &o, &p));
    for (int i = 0;
         i < 300 &&
         (alive_tagged(tag(201)) == 0 || alive_tagged(tag(202)) == 0 ||
          alive_tagged(tag(203)) == 0 || alive_tagged(tag(204)) == 0);
         i++)
        t_sleep_ns(10000000LL); /* all four started (a slow machine) */
    T_EQ(alive_tagged(tag(201)) + alive_tagged(tag(202)) +
             alive_tagged(tag(203)) + alive_tagged(tag(204)),
         4);
    t0 = t_now_ns();
    ctx_cancel(c);
    T_ERR(ctx_proc_wait(p, &st), ECANCELED);
    dt = t_now_ns() - t0;
    T_LT(dt, 350LL * 1000000LL);
    T_EQ(alive_tagged(tag(201)), 0);
    T_EQ(alive_tagged(tag(202)), 0);
    T_EQ(alive_tagged(tag(203)), 0);
    T_EQ(alive_tagged(tag(204)), 0);
    ctx_proc_free(p);
    ctx_release(c);
}

/* A signal to the tree reaches each process once: members of the child's
 * process group by kill(-pgid), escapees by the marker search, not both
 * (a second SIGINT means "force" to many programs). The shell runs its
 * trap at once in `wait`, so a second delivery would be a second line. */
T_CASE(tree_signal_arrives_once)
{
    char path[64];
    char *argv[] = {"sh", "-c", NULL, NULL};
    char *kill_it[] = {"pkill", "-f", fmt("sleep %s", tag(701)), NULL};
    ctx_proc_opts_t o = CTX_PROC_OPTS_INIT;
    ctx_proc_t *p;
    char buf[256] = "";
    ctx_t *c;
    FILE *f;
    int st;
    snprintf(path, sizeof path, "/tmp/t_proc_once.%ld", (long)getpid());
    argv[2] = fmt("trap 'echo usr1 >>%s' USR1; echo up >>%s; "
                  "while :; do sleep %s & wait $!; done",
                  path, path, tag(701));
    unlink(path);
    o.argv = argv;
    o.wait_delay = 100 * CTX_MILLISECOND;
    T_OK(ctx_with_cancel(ctx_background(), &c));
    T_OK(ctx_proc_spawn(c, &o, &p));
    for (int i = 0; i < 200 && alive_tagged(tag(701)) == 0; i++)
        t_sleep_ns(10000000LL);
    T_OK(ctx_proc_signal(p, SIGUSR1));
    t_sleep_ns(300000000LL); /* a second one would be here by now */
    ctx_cancel(c);
    ctx_proc_wait(p, &st);
    ctx_proc_free(p);
    ctx_release(c);
    f = fopen(path, "r");
    T_TRUE(f != NULL);
    T_EQ(fread(buf, 1, sizeof buf - 1, f) > 0, 1);
    fclose(f);
    unlink(path);
    T_STREQ(buf, "up\nusr1\n");
    o = (ctx_proc_opts_t)CTX_PROC_OPTS_INIT;
    o.argv = kill_it;
    run(ctx_background(), &o, &st);
}

T_CASE(grandchild_holding_the_pipe)
{
    /* Not cancelled: the child exits at once, a grandchild in a session
     * of its own keeps stdout open for a minute. */
    char *argv[] = {"sh", "-c", fmt("setsid sleep %s & echo hi", tag(301)),
                    NULL};
    char *kill_it[] = {"pkill", "-f", fmt("sleep %s", tag(301)), NULL};
    ctx_proc_opts_t o = CTX_PROC_OPTS_INIT;
    ctx_proc_t *p;
    int st;
    long long t0, dt;
    o.argv = argv;
    o.stdout_fd = CTX_PROC_CAPTURE;
    o.wait_delay = 200 * CTX_MILLISECOND;
    t0 = t_now_ns();
    T_OK(ctx_proc_spawn(ctx_background(), &o, &p));
    T_OK(ctx_proc_wait(p, &st));
    dt = t_now_ns() - t0;
    T_EQ(WEXITSTATUS(st), 0);
    T_STREQ(ctx_proc_output(p, 1, NULL), "hi\n");
    T_LT(dt, 1000LL * 1000000LL); /* not a minute */
    ctx_proc_free(p);
    o = (ctx_proc_opts_t)CTX_PROC_OPTS_INIT;
    o.argv = kill_it;
    run(ctx_background(), &o, &st);
}

T_CASE(deadline_kills)
{
    char *argv[] = {"sleep", tag(401), NULL};
    ctx_proc_opts_t o = CTX_PROC_OPTS_INIT;
    ctx_t *c;
    int st;
    o.argv = argv;
    T_OK(ctx_with_timeout(ctx_background(), 50 * CTX_MILLISECOND, &c));
    T_ERR(run(c, &o, &st), ETIMEDOUT);
    T_EQ(WTERMSIG(st), SIGTERM);
    ctx_release(c);
}

T_CASE(free_without_wait_reaps)
{
    char *argv[] = {"sleep", tag(501), NULL};
    ctx_proc_opts_t o = CTX_PROC_OPTS_INIT;
    ctx_proc_t *p;
    o.argv = argv;
    T_OK(ctx_proc_spawn(ctx_background(), &o, &p));
    T_EQ(children(), 1);
    ctx_proc_free(p);
    T_EQ(children(), 0);
    T_EQ(alive_tagged(tag(501)), 0);
}

T_CASE(foreground_signals_only_the_child)
{
    char *argv[] = {"sh", "-c", fmt("sleep %s & wait", tag(601)), NULL};
    char *kill_it[] = {"pkill", "-f", fmt("sleep %s", tag(601)), NULL};
    ctx_proc_opts_t o = CTX_PROC_OPTS_INIT;
    ctx_proc_t *p;
    ctx_t *c;
    int st;
    o.argv = argv;
    o.foreground = true;
    T_OK(ctx_with_cancel(ctx_background(), &c));
    T_OK(ctx_proc_spawn(c, &o, &p));
    T_EQ(getpgid(ctx_proc_pid(p)), getpgrp()); /* our own group */
    t_sleep_ns(50000000LL);
    ctx_cancel(c);
    T_ERR(ctx_proc_wait(p, &st), ECANCELED);
    T_EQ(alive_tagged(tag(601)), 1); /* as timeout --foreground */
    ctx_proc_free(p);
    ctx_release(c);
    o = (ctx_proc_opts_t)CTX_PROC_OPTS_INIT;
    o.argv = kill_it;
    run(ctx_background(), &o, &st);
}

struct churner {
    atomic_int stop;
};

static void *fd_churn(void *p)
{
    struct churner *ch = p;
    while (!atomic_load(&ch->stop)) {
        int pf[2];
        ctx_t *c;
        if (pipe(pf) == 0) { /* deliberately not O_CLOEXEC */
            close(pf[0]);
            close(pf[1]);
        }
        if (ctx_with_cancel(ctx_background(), &c) == 0) {
            ctx_fd(c);
            ctx_release(c);
        }
    }
    return NULL;
}

/* RELIABILITY #8: 1000 spawns while 8 threads make descriptors. */
T_CASE(no_descriptor_leaks_under_churn)
{
    enum { T = 8 };
    pthread_t th[T];
    struct churner ch = {0};
    long n = t_scale(1000);
    ctx_proc_opts_t o = CTX_PROC_OPTS_INIT;
    char out[512];
    int bad = 0;
    for (int i = 0; i < T; i++)
        T_OK(pthread_create(&th[i], NULL, fd_churn, &ch));
    for (long i = 0; i < n; i++) {
        if (child_report(ctx_background(), &o, out, sizeof out) != 0 ||
            !strstr(out, "fds: 0 1 2\n")) {
            if (!bad++)
                fprintf(stderr, "  child saw: %s", out);
        }
    }
    atomic_store(&ch.stop, 1);
    for (int i = 0; i < T; i++)
        pthread_join(th[i], NULL);
    T_EQ(bad, 0);
}

T_CASE(sigchld_ignored_is_refused)
{
    char *t[] = {"true", NULL};
    ctx_proc_opts_t o = CTX_PROC_OPTS_INIT;
    ctx_proc_t *p;
    o.argv = t;
    signal(SIGCHLD, SIG_IGN);
    T_ERR(ctx_proc_spawn(ctx_background(), &o, &p), EINVAL);
    signal(SIGCHLD, SIG_DFL);
}
