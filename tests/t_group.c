/* SPDX-License-Identifier: MIT */
/*
 * Groups and the worker pool (SPEC §2): results, first error, limits,
 * cancellation while waiting for a slot, pool growth when tasks block,
 * idle retirement, names in dumps, and misuse.
 */
#include "t.h"

#include <sys/mman.h>
#include <sys/wait.h>

static atomic_int counter;

static int incr(ctx_t *c, void *arg)
{
    (void)c;
    (void)arg;
    atomic_fetch_add(&counter, 1);
    return 0;
}

T_CASE(many_tasks_all_run)
{
    ctx_group_t *g;
    ctx_stats_t st;
    long n = t_scale(10000);
    atomic_store(&counter, 0);
    T_OK(ctx_group_new(ctx_background(), &g));
    for (long i = 0; i < n; i++)
        T_OK(ctx_group_go(g, incr, NULL));
    T_OK(ctx_group_wait(g));
    T_EQ(atomic_load(&counter), n);
    T_ERR(ctx_err(ctx_group_ctx(g)), ECANCELED); /* wait cancels it */
    T_ERR(ctx_cause(ctx_group_ctx(g), NULL), ECANCELED);
    ctx_stats(&st);
    T_EQ(st.tasks, 0);
    ctx_group_free(g);
}

struct fail_arg {
    int code;
    atomic_int *returned;
};

static int block_until_done(ctx_t *c, void *arg)
{
    atomic_int *returned = arg;
    ctx_wait(c, CTX_NO_DEADLINE);
    atomic_fetch_add(returned, 1);
    return 0;
}

static int fail_with(ctx_t *c, void *arg)
{
    (void)c;
    return (int)(intptr_t)arg;
}

T_CASE(first_error_cancels_the_rest)
{
    ctx_group_t *g;
    atomic_int returned = 0;
    const char *why = "x";
    T_OK(ctx_group_new(ctx_background(), &g));
    for (int i = 0; i < 20; i++)
        T_OK(ctx_group_go(g, block_until_done, &returned));
    T_OK(ctx_group_go(g, fail_with, (void *)(intptr_t)-7));
    T_EQ(ctx_group_wait(g), -7);
    T_EQ(atomic_load(&returned), 20);
    T_ERR(ctx_err(ctx_group_ctx(g)), ECANCELED);
    T_EQ(ctx_cause(ctx_group_ctx(g), &why), -7);
    T_NULL(why);
    T_EQ(ctx_group_wait(g), -7); /* again: same answer */
    ctx_group_free(g);
}

T_CASE(group_follows_parent)
{
    ctx_t *p;
    ctx_group_t *g;
    atomic_int returned = 0;
    T_OK(ctx_with_cancel(ctx_background(), &p));
    T_OK(ctx_group_new(p, &g));
    for (int i = 0; i < 5; i++)
        T_OK(ctx_group_go(g, block_until_done, &returned));
    ctx_cancel_cause(p, ESHUTDOWN, "stopping");
    T_OK(ctx_group_wait(g)); /* cancellation is not a task error */
    T_EQ(atomic_load(&returned), 5);
    T_EQ(ctx_cause(ctx_group_ctx(g), NULL), ESHUTDOWN);
    ctx_group_free(g);
    ctx_release(p);
}

static atomic_int running, max_running;

static int count_concurrency(ctx_t *c, void *arg)
{
    int r = atomic_fetch_add(&running, 1) + 1, m;
    (void)c;
    (void)arg;
    while ((m = atomic_load(&max_running)) < r &&
           !atomic_compare_exchange_weak(&max_running, &m, r))
        ;
    t_sleep_ns(200000);
    atomic_fetch_sub(&running, 1);
    return 0;
}

T_CASE(limit_bounds_concurrency)
{
    ctx_group_t *g;
    atomic_store(&running, 0);
    atomic_store(&max_running, 0);
    T_OK(ctx_group_new(ctx_background(), &g));
    T_ERR(ctx_group_set_limit(g, 0), EINVAL);
    T_OK(ctx_group_set_limit(g, 3));
    for (int i = 0; i < 60; i++)
        T_OK(ctx_group_go(g, count_concurrency, NULL));
    T_OK(ctx_group_wait(g));
    T_LE(atomic_load(&max_running), 3);
    T_GE(atomic_load(&max_running), 2); /* and the pool did run them */
    ctx_group_free(g);
}

static int wait_gate(ctx_t *c, void *arg)
{
    atomic_int *gate = arg;
    while (!atomic_load(gate) && !ctx_done(c))
        t_sleep_ns(100000);
    return 0;
}

T_CASE(try_go_at_limit)
{
    ctx_group_t *g;
    atomic_int gate = 0;
    T_OK(ctx_group_new(ctx_background(), &g));
    T_OK(ctx_group_set_limit(g, 2));
    T_OK(ctx_group_try_go(g, wait_gate, &gate));
    T_OK(ctx_group_try_go(g, wait_gate, &gate));
    T_ERR(ctx_group_try_go(g, wait_gate, &gate), EAGAIN);
    atomic_store(&gate, 1);
    T_OK(ctx_group_wait(g));
    ctx_group_free(g);
}

static atomic_int never_ran;

static int must_not_run(ctx_t *c, void *arg)
{
    (void)c;
    (void)arg;
    atomic_store(&never_ran, 1);
    return 0;
}

struct goer {
    ctx_group_t *g;
    int rc;
};

static void *go_blocked(void *p)
{
    struct goer *a = p;
    a->rc = ctx_group_go(a->g, must_not_run, NULL);
    return NULL;
}

/* golang/go#27837: Go at the limit must return once the context is done. */
T_CASE(go_at_limit_returns_when_cancelled)
{
    ctx_t *p;
    ctx_group_t *g;
    atomic_int gate = 0;
    pthread_t th;
    struct goer a;
    atomic_store(&never_ran, 0);
    T_OK(ctx_with_cancel(ctx_background(), &p));
    T_OK(ctx_group_new(p, &g));
    T_OK(ctx_group_set_limit(g, 1));
    T_OK(ctx_group_go(g, wait_gate, &gate));
    a.g = g;
    a.rc = -1;
    T_OK(pthread_create(&th, NULL, go_blocked, &a));
    t_sleep_ns(30000000LL);
    T_EQ(a.rc, -1); /* still blocked at the limit */
    ctx_cancel(p);
    pthread_join(th, NULL);
    T_ERR(a.rc, ECANCELED);
    T_OK(ctx_group_wait(g));
    T_EQ(atomic_load(&never_ran), 0);
    ctx_group_free(g);
    ctx_release(p);
}

T_CASE(go_at_limit_gets_the_freed_slot)
{
    ctx_group_t *g;
    atomic_int gate = 0;
    pthread_t th;
    struct goer a;
    atomic_store(&never_ran, 0);
    T_OK(ctx_group_new(ctx_background(), &g));
    T_OK(ctx_group_set_limit(g, 1));
    T_OK(ctx_group_go(g, wait_gate, &gate));
    a.g = g;
    a.rc = -1;
    T_OK(pthread_create(&th, NULL, go_blocked, &a));
    t_sleep_ns(30000000LL);
    T_EQ(a.rc, -1);
    atomic_store(&gate, 1);
    pthread_join(th, NULL);
    T_OK(a.rc);
    T_OK(ctx_group_wait(g));
    T_EQ(atomic_load(&never_ran), 1);
    ctx_group_free(g);
}

struct barrier {
    atomic_int arrived;
    int n;
};

static int meet(ctx_t *c, void *arg)
{
    struct barrier *b = arg;
    atomic_fetch_add(&b->arrived, 1);
    /* Every task blocks until all have started: needs n threads. */
    while (atomic_load(&b->arrived) < b->n && !ctx_done(c))
        t_sleep_ns(100000);
    return atomic_load(&b->arrived) >= b->n ? 0 : ETIMEDOUT;
}

T_CASE(blocked_tasks_do_not_stop_others)
{
    ctx_t *to;
    ctx_group_t *g;
    struct barrier b = {0, 64};
    T_OK(ctx_with_timeout(ctx_background(), 20 * CTX_SECOND, &to));
    T_OK(ctx_group_new(to, &g));
    for (int i = 0; i < b.n; i++)
        T_OK(ctx_group_go(g, meet, &b));
    T_OK(ctx_group_wait(g));
    ctx_group_free(g);
    ctx_release(to);
}

static int spawn_children(ctx_t *c, void *arg)
{
    ctx_group_t *g = arg;
    (void)c;
    for (int i = 0; i < 10; i++)
        if (ctx_group_go(g, incr, NULL) != 0)
            return EIO;
    return 0;
}

T_CASE(tasks_start_tasks)
{
    ctx_group_t *g;
    atomic_store(&counter, 0);
    T_OK(ctx_group_new(ctx_background(), &g));
    for (int i = 0; i < 10; i++)
        T_OK(ctx_group_go(g, spawn_children, g));
    T_OK(ctx_group_wait(g));
    T_EQ(atomic_load(&counter), 100);
    ctx_group_free(g);
}

T_CASE(free_waits_for_tasks)
{
    ctx_group_t *g;
    atomic_store(&counter, 0);
    T_OK(ctx_group_new(ctx_background(), &g));
    for (int i = 0; i < 8; i++)
        T_OK(ctx_group_go(g, count_concurrency, NULL));
    ctx_group_free(g);
    T_EQ(atomic_load(&running), 0);
}

T_CASE(bad_input)
{
    ctx_group_t *g = (ctx_group_t *)&g;
    T_ERR(ctx_group_new(NULL, &g), EINVAL);
    T_NULL(g);
    T_ERR(ctx_group_new(ctx_background(), NULL), EINVAL);
    T_NULL(ctx_group_ctx(NULL));
    T_ERR(ctx_group_set_limit(NULL, 1), EINVAL);
    T_ERR(ctx_group_go(NULL, incr, NULL), EINVAL);
    T_ERR(ctx_group_try_go(NULL, incr, NULL), EINVAL);
    T_ERR(ctx_group_wait(NULL), EINVAL);
    ctx_group_free(NULL);
    T_OK(ctx_group_new(ctx_background(), &g));
    T_ERR(ctx_group_go(g, NULL, NULL), EINVAL);
    T_ERR(ctx_group_go_opts(g, NULL, NULL, NULL), EINVAL);
    T_OK(ctx_group_set_limit(g, -5)); /* no limit */
    T_OK(ctx_group_wait(g));
    ctx_group_free(g);
    T_ERR(ctx_pool_set_idle_timeout(0), EINVAL);
}

static int named_wait(ctx_t *c, void *arg)
{
    atomic_int *started = arg;
    atomic_fetch_add(started, 1);
    ctx_wait(c, CTX_NO_DEADLINE);
    return 0;
}

T_CASE(names_show_in_dump)
{
    ctx_group_t *g;
    ctx_go_opts_t o = CTX_GO_OPTS_INIT;
    atomic_int started = 0;
    char buf[8192];
    int fds[2];
    ssize_t n;
    T_OK(pipe(fds));
    T_OK(ctx_group_new(ctx_background(), &g));
    o.name = "fetch-user-profile";
    T_OK(ctx_group_go_opts(g, &o, named_wait, &started));
    o.name = "a-name-longer-than-thirty-one-bytes-is-cut";
    T_OK(ctx_group_go_opts(g, &o, named_wait, &started));
    while (atomic_load(&started) < 2)
        t_sleep_ns(100000);
    t_sleep_ns(2000000);
    T_OK(ctx_dump(fds[1]));
    close(fds[1]);
    while ((n = read(fds[0], buf, sizeof buf - 1)) < 0 && errno == EINTR)
        ;
    close(fds[0]);
    T_GT(n, 0);
    buf[n] = 0;
    T_TRUE(strstr(buf, "fetch-user-profile") != NULL);
    T_TRUE(strstr(buf, "a-name-longer-than-thirty-one-b") != NULL);
    T_TRUE(strstr(buf, "a-name-longer-than-thirty-one-by") == NULL);
    T_TRUE(strstr(buf, "on context") != NULL);
    T_TRUE(strstr(buf, "blocked") != NULL);
    T_ERR(ctx_dump(-1), EINVAL);
    ctx_cancel(ctx_group_ctx(g));
    T_OK(ctx_group_wait(g));
    ctx_group_free(g);
}

T_CASE(idle_workers_retire)
{
    ctx_group_t *g;
    ctx_stats_t st;
    T_OK(ctx_pool_set_idle_timeout(30 * CTX_MILLISECOND));
    T_OK(ctx_group_new(ctx_background(), &g));
    for (int i = 0; i < 8; i++)
        T_OK(ctx_group_go(g, count_concurrency, NULL));
    T_OK(ctx_group_wait(g));
    ctx_group_free(g);
    ctx_stats(&st);
    T_GT(st.pool_threads, 0);
    for (int i = 0; i < 200 && st.pool_threads > 0; i++) {
        t_sleep_ns(10000000LL);
        ctx_stats(&st);
    }
    T_EQ(st.pool_threads, 0);
    T_EQ(st.idle_threads, 0);
    T_OK(ctx_pool_set_idle_timeout(10 * CTX_SECOND));
    /* And the pool comes back on demand. */
    atomic_store(&counter, 0);
    T_OK(ctx_group_new(ctx_background(), &g));
    T_OK(ctx_group_go(g, incr, NULL));
    T_OK(ctx_group_wait(g));
    ctx_group_free(g);
    T_EQ(atomic_load(&counter), 1);
}

static int call_pthread_exit(ctx_t *c, void *arg)
{
    (void)c;
    (void)arg;
    pthread_exit(NULL);
}

/* A task that ends its thread is a misuse: asserted in debug builds, and
 * in release builds the group sees ECANCELED instead of hanging. */
T_CASE(pthread_exit_in_a_task_is_caught)
{
    pid_t pid, wr;
    int status;
#ifdef T_TSAN
    return; /* TSan cannot start threads after a multi-threaded fork */
#endif
    pid = fork();
    if (pid == 0) {
        ctx_group_t *g;
        int rc;
        alarm(10);
        if (ctx_group_new(ctx_background(), &g) != 0)
            _exit(2);
        ctx_group_go(g, call_pthread_exit, NULL);
        rc = ctx_group_wait(g);
        _exit(rc == ECANCELED ? 0 : 3);
    }
    T_GT(pid, 0);
    while ((wr = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
        ;
    T_EQ(wr, pid);
#ifdef CTX_DEBUG
    T_TRUE(WIFSIGNALED(status));
    T_EQ(WTERMSIG(status), SIGABRT);
#else
    T_TRUE(WIFEXITED(status));
    T_EQ(WEXITSTATUS(status), 0);
#endif
}
