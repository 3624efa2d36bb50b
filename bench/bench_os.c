/* SPDX-License-Identifier: MIT */
/*
 * The OS layer's measured paths (issue 5):
 *
 *   spawn      spawn and wait for /bin/true: ctx_proc_spawn + ctx_proc_wait
 *              + ctx_proc_free under ctx_background() and under a context
 *              with a deadline (watched while waiting), beside the floor:
 *              posix_spawn + waitpid of the same program. Median of 300
 *              of each, interleaved. Go's exec.Command("/bin/true").Run()
 *              is bench/go (BenchmarkExecTrue).
 *   killafter  a child that ignores SIGTERM, cancelled with a wait delay
 *              of 100 ms: the time from ctx_cancel to ctx_proc_wait's
 *              return, less the wait delay (the overshoot; the target is
 *              under 50 ms). Median and worst of 20.
 *   read       a read that finds its data ready: write 1 byte to a pipe and
 *              read it back, with ctx_read (background; a live context
 *              with a deadline) and with read(2); ns per pair, and the
 *              difference, what ctx_read adds to a read.
 *
 * Output: "RESULT <name> <value> <unit>" lines (bench.h).
 */
#define _GNU_SOURCE
#define BENCH_NAME "bench_os"
#include "bench.h"

#include <ctx/ctx.h>
#include <ctx/io.h>
#include <ctx/proc.h>

#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* ------------------------------------------------------------ spawn */

enum { SPAWN_REPS = 300 };

static double spawn_ctx(ctx_t *c)
{
    char *argv[] = {"/bin/true", NULL};
    ctx_proc_opts_t o = CTX_PROC_OPTS_INIT;
    ctx_proc_t *p;
    int st;
    double t0 = bench_now();
    o.argv = argv;
    if (ctx_proc_spawn(c, &o, &p) != 0)
        die("ctx_proc_spawn failed");
    if (ctx_proc_wait(p, &st) != 0 || !WIFEXITED(st) || WEXITSTATUS(st))
        die("/bin/true failed");
    ctx_proc_free(p);
    return bench_now() - t0;
}

static double spawn_raw(void)
{
    char *argv[] = {"/bin/true", NULL};
    pid_t pid;
    int st;
    double t0 = bench_now();
    if (posix_spawn(&pid, argv[0], NULL, NULL, argv, environ) != 0)
        die("posix_spawn failed");
    while (waitpid(pid, &st, 0) < 0)
        ;
    if (!WIFEXITED(st) || WEXITSTATUS(st))
        die("/bin/true failed");
    return bench_now() - t0;
}

static void run_spawn(void)
{
    static double bg[SPAWN_REPS], dl[SPAWN_REPS], raw[SPAWN_REPS];
    ctx_t *c;
    if (ctx_with_timeout(ctx_background(), 3600 * CTX_SECOND, &c) != 0)
        die("ctx_with_timeout failed");
    for (int i = 0; i < 20; i++) /* warm the page cache and the paths */
        spawn_ctx(c), spawn_raw();
    for (int i = 0; i < SPAWN_REPS; i++) {
        bg[i] = spawn_ctx(ctx_background());
        dl[i] = spawn_ctx(c);
        raw[i] = spawn_raw();
    }
    ctx_release(c);
    bench_result("spawn.true.ctx", bench_median(bg, SPAWN_REPS), "ns");
    bench_result("spawn.true.ctx_deadline", bench_median(dl, SPAWN_REPS), "ns");
    bench_result("spawn.true.posix_spawn", bench_median(raw, SPAWN_REPS), "ns");
}

/* ------------------------------------------------------------ killafter */

enum { KILL_REPS = 20 };
#define KILL_DELAY (100 * CTX_MILLISECOND)

static double kill_after_once(void)
{
    char *argv[] = {"sh", "-c", "trap '' TERM; echo ready; exec sleep 60",
                    NULL};
    ctx_proc_opts_t o = CTX_PROC_OPTS_INIT;
    ctx_proc_t *p;
    ctx_t *c;
    char line[16];
    int st;
    double t0, dt;
    o.argv = argv;
    o.stdout_fd = CTX_PROC_PIPE;
    o.wait_delay = KILL_DELAY;
    if (ctx_with_cancel(ctx_background(), &c) != 0)
        die("ctx_with_cancel failed");
    if (ctx_proc_spawn(c, &o, &p) != 0)
        die("ctx_proc_spawn failed");
    /* SIGTERM is ignored once the shell has said so. */
    if (ctx_read(ctx_background(), ctx_proc_stdout(p), line, sizeof line) <= 0)
        die("the child did not start");
    t0 = bench_now();
    ctx_cancel(c);
    if (ctx_proc_wait(p, &st) != ECANCELED || !WIFSIGNALED(st) ||
        WTERMSIG(st) != SIGKILL)
        die("the child was not killed");
    dt = bench_now() - t0;
    ctx_proc_free(p);
    ctx_release(c);
    return dt - (double)KILL_DELAY;
}

static void run_killafter(void)
{
    double v[KILL_REPS];
    for (int i = 0; i < KILL_REPS; i++)
        v[i] = kill_after_once();
    bench_result("killafter.overshoot", bench_median(v, KILL_REPS), "ns");
    bench_result("killafter.overshoot_max", v[KILL_REPS - 1], "ns");
}

/* ------------------------------------------------------------ read */

struct pipe_arg {
    int fd[2];
    ctx_t *c; /* NULL: read(2) */
};

static void pair_loop(long n, void *arg)
{
    struct pipe_arg *a = arg;
    char b = 'x';
    for (long i = 0; i < n; i++) {
        if (write(a->fd[1], &b, 1) != 1)
            die("write failed");
        if ((a->c ? ctx_read(a->c, a->fd[0], &b, 1) : read(a->fd[0], &b, 1)) !=
            1)
            die("read failed");
        KEEP(b);
    }
}

static void run_read(void)
{
    struct pipe_arg a;
    ctx_t *c;
    double raw, bg, dl;
    if (pipe(a.fd) != 0)
        die("pipe failed");
    if (ctx_with_timeout(ctx_background(), 3600 * CTX_SECOND, &c) != 0)
        die("ctx_with_timeout failed");
    a.c = NULL;
    raw = bench_per_op(pair_loop, &a);
    a.c = ctx_background();
    bg = bench_per_op(pair_loop, &a);
    a.c = c;
    dl = bench_per_op(pair_loop, &a);
    bench_result("read.ready.raw_pair_ns", raw, "ns");
    bench_result("read.ready.ctx_pair_ns", bg, "ns");
    bench_result("read.ready.ctx_deadline_pair_ns", dl, "ns");
    bench_result("read.ready.ctx_added_ns", dl - raw, "ns");
    ctx_release(c);
    close(a.fd[0]);
    close(a.fd[1]);
}

/* ------------------------------------------------------------ main */

static const struct bench_section sections[] = {
    {"spawn", run_spawn},
    {"killafter", run_killafter},
    {"read", run_read},
};

int main(int argc, char **argv)
{
    if (bench_run(argc, argv, sections, sizeof sections / sizeof *sections))
        return 2;
    if (ctx_leak_check(CTX_SECOND) != 0)
        die("contexts leaked");
    return 0;
}
