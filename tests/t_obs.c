/* SPDX-License-Identifier: MIT */
/*
 * Observability (SPEC §4): the cancellation-latency histogram, the
 * Prometheus text export, ctx_dump's task lines (names, renames, what a
 * task is blocked on) and ctx_leak_check over every kind of object.
 * The export is also parsed by a real Prometheus parser (t_obs_prom).
 */
#include "t.h"

#include <fcntl.h>
#include <sys/wait.h>

/* Read all of a pipe's read end into buf (NUL-terminated). */
static ssize_t slurp(int fd, char *buf, size_t cap)
{
    size_t off = 0;
    for (;;) {
        ssize_t n = read(fd, buf + off, cap - 1 - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    buf[off] = 0;
    return (ssize_t)off;
}

/* Dump into a string. */
static void dump_to(char *buf, size_t cap)
{
    int fds[2];
    buf[0] = 0;
    if (pipe(fds) != 0)
        return;
    ctx_dump(fds[1]);
    close(fds[1]);
    slurp(fds[0], buf, cap);
    close(fds[0]);
}

static void latency_delta(const ctx_latency_t *a, const ctx_latency_t *b,
                          ctx_latency_t *d)
{
    d->count = b->count - a->count;
    d->sum_ns = b->sum_ns - a->sum_ns;
    for (int i = 0; i < CTX_LATENCY_BUCKETS; i++)
        d->bucket[i] = b->bucket[i] - a->bucket[i];
}

/* ------------------------------------------------------------ latency */

T_CASE(latency_bounds)
{
    T_EQ(ctx_latency_bound(0), CTX_MICROSECOND);
    T_EQ(ctx_latency_bound(10), 1024 * CTX_MICROSECOND);
    T_EQ(ctx_latency_bound(CTX_LATENCY_BUCKETS - 2),
         CTX_MICROSECOND << (CTX_LATENCY_BUCKETS - 2));
    T_EQ(ctx_latency_bound(CTX_LATENCY_BUCKETS - 1), CTX_NO_DEADLINE);
    T_EQ(ctx_latency_bound(-1), -1);
    T_EQ(ctx_latency_bound(CTX_LATENCY_BUCKETS), -1);
    T_ERR(ctx_cancel_latency(NULL), EINVAL);
}

static int wait_for_cancel(ctx_t *c, void *arg)
{
    atomic_fetch_add((atomic_int *)arg, 1);
    ctx_wait(c, CTX_NO_DEADLINE);
    return 0;
}

static int fail_at_once(ctx_t *c, void *arg)
{
    (void)c;
    (void)arg;
    return EIO;
}

/* A group running n tasks `fn`, each counting itself into *started first;
 * returns once all n have started (NULL on error). */
static ctx_group_t *group_started(int n, ctx_task_fn fn, atomic_int *started)
{
    ctx_group_t *g;
    if (ctx_group_new(ctx_background(), &g) != 0)
        return NULL;
    for (int i = 0; i < n; i++)
        if (ctx_group_go(g, fn, started) != 0) {
            ctx_cancel(ctx_group_ctx(g));
            ctx_group_free(g);
            return NULL;
        }
    while (atomic_load(started) < n)
        t_sleep_ns(100000);
    return g;
}

T_CASE(latency_counts_each_task_of_a_cancelled_group)
{
    ctx_latency_t a, b, d;
    ctx_group_t *g;
    atomic_int started = 0;
    int64_t sum = 0;

    T_OK(ctx_cancel_latency(&a));
    T_NOTNULL(g = group_started(8, wait_for_cancel, &started));
    /* The task that fails cancels the group: it is the cause, not a
     * sample; the eight waiting are. */
    T_OK(ctx_group_go(g, fail_at_once, NULL));
    T_ERR(ctx_group_wait(g), EIO);
    ctx_group_free(g);
    T_OK(ctx_cancel_latency(&b));
    latency_delta(&a, &b, &d);
    T_EQ(d.count, 8);
    for (int i = 0; i < CTX_LATENCY_BUCKETS; i++)
        sum += d.bucket[i];
    T_EQ(sum, 8);
    T_GE(d.sum_ns, 0);
}

static int slow_to_notice(ctx_t *c, void *arg)
{
    atomic_fetch_add((atomic_int *)arg, 1);
    ctx_wait(c, CTX_NO_DEADLINE);
    t_sleep_ns(30000000LL); /* 30 ms of ignoring it */
    return 0;
}

T_CASE(latency_lands_in_its_log_bucket)
{
    ctx_latency_t a, b, d;
    ctx_group_t *g;
    atomic_int started = 0;
    int64_t below = 0;

    T_OK(ctx_cancel_latency(&a));
    T_NOTNULL(g = group_started(1, slow_to_notice, &started));
    ctx_cancel(ctx_group_ctx(g));
    T_OK(ctx_group_wait(g));
    ctx_group_free(g);
    T_OK(ctx_cancel_latency(&b));
    latency_delta(&a, &b, &d);
    T_EQ(d.count, 1);
    T_GE(d.sum_ns, 30 * CTX_MILLISECOND);
    /* 30 ms is above bound(14) = 16.384 ms: no sample below bucket 15. */
    for (int i = 0; i < 15; i++)
        below += d.bucket[i];
    T_EQ(below, 0);
}

static int quick(ctx_t *c, void *arg)
{
    (void)c;
    atomic_fetch_add((atomic_int *)arg, 1);
    return 0;
}

T_CASE(tasks_ending_before_any_cancel_are_no_sample)
{
    ctx_latency_t a, b;
    ctx_group_t *g;
    atomic_int n = 0;

    T_OK(ctx_cancel_latency(&a));
    T_OK(ctx_group_new(ctx_background(), &g));
    for (int i = 0; i < 16; i++)
        T_OK(ctx_group_go(g, quick, &n));
    T_OK(ctx_group_wait(g)); /* cancels the context once all returned */
    ctx_group_free(g);
    T_EQ(atomic_load(&n), 16);
    T_OK(ctx_cancel_latency(&b));
    T_EQ(b.count - a.count, 0);
}

/* ------------------------------------------------------------ metrics */

/* The value of the sample line that starts with `name ` (-1 if none). */
static long long sample(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p)
        if (strncmp(p, name, n) == 0 && p[n] == ' ')
            return atoll(p + n + 1);
    return -1;
}

T_CASE(metrics_text_sizes_and_values)
{
    char small[16], *buf;
    size_t need = 0, need2 = 0;
    ctx_t *c;
    ctx_stats_t st;

    T_OK(ctx_with_timeout(ctx_background(), 0, &c)); /* expired: a count */
    T_ERR(ctx_metrics_text(small, sizeof small, &need), ENOSPC);
    T_GT(need, sizeof small);
    T_ERR(ctx_metrics_text(NULL, 0, &need2), ENOSPC);
    T_EQ(need2, need);
    T_ERR(ctx_metrics_text(NULL, 10, NULL), EINVAL);
    buf = malloc(need + 64);
    T_NOTNULL(buf);
    T_OK(ctx_metrics_text(buf, need + 64, &need2));
    T_EQ(strlen(buf), need2);
    T_EQ(buf[need2 - 1], '\n');
    T_OK(ctx_stats(&st));
    T_GE(sample(buf, "libctx_contexts"), 1);
    T_GE(sample(buf, "libctx_deadline_expiries_total"), 1);
    T_LE(sample(buf, "libctx_deadline_expiries_total"), st.deadline_expiries);
    T_GE(sample(buf, "libctx_cancels_total"), 1);
    T_TRUE(strstr(buf, "# TYPE libctx_cancel_latency_seconds histogram\n"));
    T_TRUE(strstr(buf, "libctx_cancel_latency_seconds_bucket{le=\"1e-06\"} "));
    T_TRUE(strstr(buf, "libctx_cancel_latency_seconds_bucket{le=\"+Inf\"} "));
    T_EQ(sample(buf, "libctx_cancel_latency_seconds_bucket{le=\"+Inf\"}"),
         sample(buf, "libctx_cancel_latency_seconds_count"));
    free(buf);
    ctx_release(c);
    T_ERR(ctx_metrics_write(-1), EINVAL);
}

T_CASE(metrics_write_to_a_descriptor)
{
    char buf[16384];
    int fds[2];
    T_OK(pipe(fds));
    T_OK(ctx_metrics_write(fds[1]));
    close(fds[1]);
    T_GT(slurp(fds[0], buf, sizeof buf), 100);
    close(fds[0]);
    T_TRUE(strncmp(buf, "# HELP libctx_contexts ", 23) == 0);
    T_TRUE(strstr(buf, "libctx_cancel_latency_seconds_count ") != NULL);
}

/* ------------------------------------------------------------ dump */

struct reader {
    int fd;
    atomic_int started;
};

static int read_pipe(ctx_t *c, void *arg)
{
    struct reader *r = arg;
    char b;
    T_EXPECT_EQ(ctx_task_set_name("reader of the pipe"), 0);
    atomic_store(&r->started, 1);
    T_EXPECT_EQ(ctx_read(c, r->fd, &b, 1), -1);
    T_EXPECT_ERR(errno, ECANCELED);
    return 0;
}

static int sleep_long(ctx_t *c, void *arg)
{
    atomic_store((atomic_int *)arg, 1);
    ctx_sleep(c, CTX_HOUR);
    return 0;
}

T_CASE(dump_names_state_and_what_tasks_wait_on)
{
    ctx_group_t *g;
    ctx_go_opts_t o = CTX_GO_OPTS_INIT;
    struct reader r;
    atomic_int slept = 0;
    char buf[16384], want[64];
    int fds[2];
    T_OK(pipe(fds));
    r.fd = fds[0];
    atomic_init(&r.started, 0);
    T_OK(ctx_group_new(ctx_background(), &g));
    o.name = "first name";
    T_OK(ctx_group_go_opts(g, &o, read_pipe, &r));
    o.name = "sleeper";
    T_OK(ctx_group_go_opts(g, &o, sleep_long, &slept));
    while (!atomic_load(&r.started) || !atomic_load(&slept))
        t_sleep_ns(100000);
    /* Until both are parked, the notes may not be there yet. */
    snprintf(want, sizeof want, "on fd (read) %d", fds[0]);
    for (int i = 0; i < 2000; i++) {
        dump_to(buf, sizeof buf);
        if (strstr(buf, want) && strstr(buf, "on sleep"))
            break;
        t_sleep_ns(1000000);
    }
    T_TRUE(strstr(buf, want) != NULL);
    T_TRUE(strstr(buf, "task reader of the pipe ") != NULL);
    T_TRUE(strstr(buf, "first name") == NULL);
    T_TRUE(strstr(buf, "task sleeper ") != NULL);
    T_TRUE(strstr(buf, "on sleep") != NULL);
    T_TRUE(strstr(buf, "blocked") != NULL);
    T_TRUE(strstr(buf, " ms ") != NULL);
    T_TRUE(strncmp(buf, "libctx ", 7) == 0);
    ctx_cancel(ctx_group_ctx(g));
    T_OK(ctx_group_wait(g));
    ctx_group_free(g);
    close(fds[0]);
    close(fds[1]);
}

T_CASE(rename_outside_a_task_is_refused)
{
    T_ERR(ctx_task_set_name("x"), ESRCH);
    T_ERR(ctx_task_set_name(NULL), EINVAL);
}

/* ------------------------------------------------------------ leaks */

T_CASE(leak_check_sees_contexts_and_descriptors)
{
    ctx_t *c;
    T_EQ(ctx_leak_check(0), 0);
    T_OK(ctx_with_cancel(ctx_background(), &c));
    T_GE(ctx_fd(c), 0);
    /* One context and its eventfd, reported after the grace. */
    T_EQ(ctx_leak_check(5 * CTX_MILLISECOND), 2);
    ctx_release(c);
    T_EQ(ctx_leak_check(0), 0);
}

T_CASE(leak_check_sees_subprocesses)
{
    char *argv[] = {"sleep", "30", NULL};
    ctx_proc_opts_t o = CTX_PROC_OPTS_INIT;
    ctx_proc_t *p;
    ctx_t *c;
    int left;
    T_OK(ctx_with_cancel(ctx_background(), &c));
    o.argv = argv;
    T_OK(ctx_proc_spawn(c, &o, &p));
    left = ctx_leak_check(5 * CTX_MILLISECOND);
    /* the context, the child, and its pidfd (at least) */
    T_GE(left, 3);
    ctx_cancel(c);
    T_ERR(ctx_proc_wait(p, NULL), ECANCELED);
    ctx_proc_free(p);
    ctx_release(c);
    T_EQ(ctx_leak_check(500 * CTX_MILLISECOND), 0);
}

T_CASE(leak_check_waits_for_tasks)
{
    ctx_group_t *g;
    atomic_int started = 0;
    T_NOTNULL(g = group_started(1, wait_for_cancel, &started));
    /* the task and the group's context */
    T_EQ(ctx_leak_check(5 * CTX_MILLISECOND), 2);
    ctx_cancel(ctx_group_ctx(g));
    ctx_group_free(g);
    T_EQ(ctx_leak_check(500 * CTX_MILLISECOND), 0);
}

T_CASE(static_context_descriptor_is_not_a_leak)
{
    T_GE(ctx_fd(ctx_todo()), 0);
    T_EQ(ctx_leak_check(0), 0);
}
