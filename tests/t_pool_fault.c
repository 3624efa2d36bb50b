/* SPDX-License-Identifier: MIT */
/*
 * The worker pool failing to start threads (RELIABILITY #14), in a process
 * of its own: no task has run before, so the first ctx_group_go must start
 * the pool's first thread, and its failure must be that call's EAGAIN with
 * nothing run and nothing counted. Then the pool recovers, and a pool
 * whose workers are all blocked reports EAGAIN or runs what it accepted,
 * never hanging. The cases depend on their order (definition order).
 */
#include "t.h"

#include "internal.h"
#include "stress/race.h"

#include <sys/wait.h>

static int count_task(ctx_t *c, void *arg)
{
    (void)c;
    atomic_fetch_add((atomic_int *)arg, 1);
    return 0;
}

static ctx_stats_t stats(void)
{
    ctx_stats_t st;
    ctx_stats(&st);
    return st;
}

/*
 * Wait (up to 5 s) until every worker of the pool is parked, so that the
 * next go wakes one rather than asking for the pool to be watched.
 */
static int await_idle_pool(void)
{
    long long until = t_now_ns() + 5000000000LL;
    for (;;) {
        ctx_stats_t st = stats();
        if (st.idle_threads == st.pool_threads)
            return 1;
        if (t_now_ns() > until)
            return 0;
        t_sleep_ns(1000000);
    }
}

/* ctx_group_go, ctx_group_try_go or ctx_group_go_opts, by i % 3. */
static int go_some_way(ctx_group_t *g, int i, atomic_int *runs)
{
    ctx_go_opts_t o = CTX_GO_OPTS_INIT;
    o.name = "counted";
    if (i % 3 == 1)
        return ctx_group_try_go(g, count_task, runs);
    if (i % 3 == 2)
        return ctx_group_go_opts(g, &o, count_task, runs);
    return ctx_group_go(g, count_task, runs);
}

/*
 * A pool that has no thread yet cannot start one: every way of starting
 * a task returns EAGAIN, the task never runs, no task is counted and no
 * thread is left. The same when the first worker's record cannot be
 * allocated (a sweep, once and for good, until the go succeeds). Then the
 * group works.
 */
T_CASE(cold_pool_thread_start_fails)
{
    ctx_group_t *g;
    atomic_int runs = 0;
    ctx_stats_t st = stats();
    long h0 = ctx__fault_hits(CTX__FAULT_THREAD_CREATE), sites = -1;

    T_EQ(st.pool_threads, 0); /* nothing started a task before */
    T_EQ(st.internal_threads, 0);
    T_OK(ctx_group_new(ctx_background(), &g));

    ctx__fault_arm(CTX__FAULT_THREAD_CREATE, 1, 0);
    T_ERR(ctx_group_go(g, count_task, &runs), EAGAIN);
    ctx__fault_disarm_all();
    T_EQ(ctx__fault_hits(CTX__FAULT_THREAD_CREATE) - h0, 1);

    ctx__fault_arm(CTX__FAULT_THREAD_CREATE, 1, 1);
    for (int i = 0; i < 6; i++)
        T_ERR(go_some_way(g, i, &runs), EAGAIN);
    ctx__fault_disarm_all();
    T_GE(ctx__fault_hits(CTX__FAULT_THREAD_CREATE) - h0, 7);
    t_sleep_ns(10000000LL);
    T_EQ(atomic_load(&runs), 0); /* no refused task ran */
    st = stats();
    T_EQ(st.tasks, 0);
    T_EQ(st.pool_threads, 0);
    T_EQ(st.internal_threads, 0);

    /* The first allocations of the first go: the worker's record (and,
     * with tasks that are allocated, the task's). */
    for (long n = 1; n <= 8 && sites < 0; n++) {
        for (int persistent = 1; persistent >= 0; persistent--) {
            int rc;
            ctx__fault_arm(CTX__FAULT_ALLOC, n, persistent);
            rc = ctx_group_go(g, count_task, &runs);
            ctx__fault_disarm_all();
            if (rc == 0) {
                T_EQ(persistent, 1); /* once fails if persistent did */
                sites = n - 1;
                break;
            }
            T_TRUE(rc == ENOMEM || rc == EAGAIN);
        }
    }
    T_GE(sites, 0);
    printf("  first ctx_group_go of the process: %ld allocation site(s)\n",
           sites);

    T_OK(ctx_group_wait(g));
    T_EQ(atomic_load(&runs), 1); /* only the one accepted */
    ctx_group_free(g);
    st = stats();
    T_EQ(st.tasks, 0);
    T_EQ(st.pool_threads, 1);

    T_TRUE(await_idle_pool());
    T_OK(ctx_group_new(ctx_background(), &g));
    T_OK(ctx_group_go(g, count_task, &runs));
    T_OK(ctx_group_wait(g));
    T_EQ(atomic_load(&runs), 2);
    ctx_group_free(g);
    T_TRUE(await_idle_pool());
}

/* ------------------------------------------------------------ blocked */

struct gate {
    ctx_sem_t *s; /* one unit, taken while shut */
    ctx_t *c;     /* what the blocked tasks wait with */
    atomic_int started;
};

static int blocker(ctx_t *c, void *arg)
{
    struct gate *gt = arg;
    int rc;
    (void)c;
    atomic_fetch_add(&gt->started, 1);
    rc = ctx_sem_acquire(gt->s, gt->c, 1);
    if (rc == 0)
        ctx_sem_release(gt->s, 1); /* for the next one */
    return rc;
}

static int opener(ctx_t *c, void *arg)
{
    struct gate *gt = arg;
    (void)c;
    ctx_sem_release(gt->s, 1);
    return 0;
}

/*
 * Block every worker of the pool on the gate: start blocked tasks until
 * at least `min` have started and no worker is idle. Returns how many.
 */
static int block_all_workers(ctx_group_t *g, struct gate *gt, int min)
{
    int n = 0;
    do {
        long long until = t_now_ns() + 5000000000LL;
        if (ctx_group_go(g, blocker, gt) != 0)
            return -1;
        n++;
        while (atomic_load(&gt->started) < n && t_now_ns() < until)
            t_sleep_ns(100000);
        if (atomic_load(&gt->started) < n)
            return -1;
        t_sleep_ns(1000000); /* let spinning workers go idle */
    } while ((n < min || stats().idle_threads > 0) && n < 64);
    return n;
}

/*
 * The only worker is blocked on a gate that a task still to be started
 * opens, and the next thread start fails once (a new worker's, or the
 * thread that watches for blocked workers). The go reports EAGAIN, or it
 * accepted the opener, which must then start although every worker is
 * blocked ("a blocked task never keeps another from starting"): the
 * blocked task waits 3 s at most, then fails the group with ETIMEDOUT.
 */
T_CASE(opener_starts_though_a_thread_start_failed)
{
    ctx_group_t *g;
    struct gate gt;
    ctx_stats_t st;
    long long t0;
    int rc, wrc, n;

    T_TRUE(await_idle_pool());
    st = stats();
    if (st.pool_threads != 1 || st.internal_threads != st.pool_threads) {
        printf("  skipped: needs one idle worker and no other thread (run "
               "the cases in order)\n");
        return;
    }
    atomic_init(&gt.started, 0);
    T_OK(ctx_sem_new(1, &gt.s));
    T_TRUE(ctx_sem_try_acquire(gt.s, 1));
    T_OK(ctx_with_timeout(ctx_background(), 3 * CTX_SECOND, &gt.c));
    T_OK(ctx_group_new(ctx_background(), &g));
    n = block_all_workers(g, &gt, 1);
    T_EQ(n, 1);

    ctx__fault_arm(CTX__FAULT_THREAD_CREATE, 1, 0);
    rc = ctx_group_go(g, opener, &gt);
    ctx__fault_disarm_all();
    t0 = t_now_ns();
    if (rc == EAGAIN)
        ctx_sem_release(gt.s, 1); /* refused: open it ourselves */
    else
        T_EXPECT_ERR(rc, 0);
    wrc = ctx_group_wait(g);
    printf("  go %s, the gate opened after %.1f ms\n",
           rc == EAGAIN ? "refused" : "accepted",
           (double)(t_now_ns() - t0) / 1e6);
    /* ETIMEDOUT: the opener did not start while the worker was blocked */
    T_EXPECT_ERR(wrc, 0);
    ctx_group_free(g);
    ctx_release(gt.c);
    ctx_sem_free(gt.s);
}

/*
 * Every worker blocked and no thread can start, for good: each go returns
 * EAGAIN (once the queue has stood still, the pool needs a thread it
 * cannot make) or is accepted. The accepted tasks run once the blocked
 * ones are released, still with no thread able to start; the wait
 * returns; after the fault, go works again.
 */
T_CASE(all_workers_blocked_thread_start_fails)
{
    ctx_group_t *g;
    struct gate gt;
    atomic_int runs = 0;
    int n, accepted = 0, refused = 0;

    atomic_init(&gt.started, 0);
    T_OK(ctx_sem_new(1, &gt.s));
    T_TRUE(ctx_sem_try_acquire(gt.s, 1));
    gt.c = ctx_background();
    T_OK(ctx_group_new(ctx_background(), &g));
    /* Two at least: the second one needs a new thread, so the pool has
     * watched for blocked workers (and grown) before the fault. */
    n = block_all_workers(g, &gt, 2);
    T_GE(n, 2);

    ctx__fault_arm(CTX__FAULT_THREAD_CREATE, 1, 1);
    for (int i = 0; i < 400 && !refused; i++) {
        int rc = go_some_way(g, i, &runs);
        if (rc == 0)
            accepted++;
        else if (rc == EAGAIN)
            refused++;
        else
            T_ERR(rc, EAGAIN);
        t_sleep_ns(250000);
    }
    T_EQ(atomic_load(&runs), 0); /* no worker was free to run them */
    ctx_sem_release(gt.s, 1);    /* the blocked tasks return... */
    T_OK(ctx_group_wait(g));     /* ...and run the accepted ones */
    ctx__fault_disarm_all();
    T_EQ(atomic_load(&runs), accepted);
    printf("  %d workers blocked: %d go accepted, then EAGAIN\n", n, accepted);
    T_GT(refused, 0); /* the pool needed a thread and could not make one */
    ctx_group_free(g);

    T_OK(ctx_group_new(ctx_background(), &g));
    T_OK(ctx_group_go(g, count_task, &runs));
    T_OK(ctx_group_wait(g));
    T_EQ(atomic_load(&runs), accepted + 1);
    ctx_group_free(g);
    ctx_sem_free(gt.s);
}

/* ------------------------------------------------------------ fork */

/*
 * fork() while the pool is watched (its workers blocked, so that the
 * monitor runs): the child has none of the parent's threads, the monitor
 * included. Its only worker blocked on a gate that a task still to be
 * started opens, the child's pool must watch for it and start the opener
 * on a new thread (the blocked task gives up after 2 s, and the child's
 * group then fails with ETIMEDOUT).
 */
static int forked_child(void)
{
    struct gate gt;
    ctx_group_t *g;
    long long until = t_now_ns() + 5000000000LL;
    int rc;

    ctx_stats_t st;

    alarm(10);
    /* 5: the child counts the parent's threads as its own */
    ctx_stats(&st);
    if (st.pool_threads != 0 || st.idle_threads != 0 ||
        st.internal_threads != 0)
        return 5;
    atomic_init(&gt.started, 0);
    if (ctx_sem_new(1, &gt.s) != 0 || !ctx_sem_try_acquire(gt.s, 1) ||
        ctx_with_timeout(ctx_background(), 2 * CTX_SECOND, &gt.c) != 0 ||
        ctx_group_new(ctx_background(), &g) != 0 ||
        ctx_group_go(g, blocker, &gt) != 0)
        return 2;
    while (atomic_load(&gt.started) < 1 && t_now_ns() < until)
        t_sleep_ns(100000);
    if (atomic_load(&gt.started) < 1 || ctx_group_go(g, opener, &gt) != 0)
        return 2;
    rc = ctx_group_wait(g);
    return rc == 0 ? 0 : rc == ETIMEDOUT ? 3 : 4;
}

T_CASE(fork_child_watches_its_own_pool)
{
    ctx_group_t *g;
    struct gate gt;
    pid_t pid, wr;
    int status;

#ifdef T_TSAN
    return; /* TSan cannot start threads after a multi-threaded fork */
#endif
    atomic_init(&gt.started, 0);
    T_OK(ctx_sem_new(1, &gt.s));
    T_TRUE(ctx_sem_try_acquire(gt.s, 1));
    gt.c = ctx_background();
    T_OK(ctx_group_new(ctx_background(), &g));
    /* Two at least: the second go, one worker blocked, has it watched. */
    T_GE(block_all_workers(g, &gt, 2), 2);
    pid = fork();
    if (pid == 0)
        _exit(forked_child());
    ctx_sem_release(gt.s, 1);
    T_OK(ctx_group_wait(g));
    ctx_group_free(g);
    ctx_sem_free(gt.s);
    T_GT(pid, 0);
    while ((wr = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
        ;
    T_EQ(wr, pid);
    T_TRUE(WIFEXITED(status));
    /* 3: the opener did not start while the child's worker was blocked;
     * 5: the child's stats count the parent's threads */
    T_EQ(WEXITSTATUS(status), 0);
}

/* ------------------------------------------------------------ first */

/*
 * A thread start failing beside another go, on a pool with no thread.
 * The go that starts the pool's first thread counts it (spinning) before
 * the start, and takes it back when the start fails; a go in between
 * must not take that thread for one that will run its task. Each round:
 * the pool back to no thread, the next thread start armed to fail, two
 * threads call ctx_group_go 0-1.5 us apart. Each go returns EAGAIN (its
 * fn never runs) or 0 (its fn runs exactly once, and the group's wait
 * returns: a task queued with no thread to run it leaves the wait blocked
 * for good, and the watchdog aborts).
 */
static struct {
    atomic_long round; /* the helper plays round r once it reads r */
    atomic_long ready; /* the helper is waiting for `go` in round r */
    atomic_long go;
    atomic_long done;
    ctx_group_t *g; /* the helper's */
    atomic_int runs;
    atomic_int rc;
    unsigned delay_ns;
} fs;

static void spin_ns(unsigned ns)
{
    long long until = t_now_ns() + ns;
    while (t_now_ns() < until)
        ;
}

static void *fs_helper(void *arg)
{
    (void)arg;
    for (long r = 1;; r++) {
        long at;
        while ((at = atomic_load(&fs.round)) >= 0 && at < r)
            sched_yield();
        if (at < 0)
            return NULL;
        atomic_store(&fs.ready, r);
        while (atomic_load(&fs.go) < r)
            ctx__cpu_relax();
        spin_ns(fs.delay_ns);
        fs.rc = ctx_group_go(fs.g, count_task, &fs.runs);
        atomic_store(&fs.done, r);
    }
}

/* Until the pool has no thread left (up to 2 s). */
static int await_empty_pool(void)
{
    long long until = t_now_ns() + 2000000000LL;
    while (stats().pool_threads != 0)
        if (t_now_ns() > until)
            return 0;
        else
            t_sleep_ns(20000);
    return 1;
}

static atomic_int fs_rc, fs_runs; /* the main thread's go */

static void fs_stuck(void)
{
    ctx_stats_t st = stats();
    fprintf(stderr,
            "  go: %s (ran %d), the other go: %s (ran %d); pool threads "
            "%lld, idle %lld, tasks %lld\n",
            ctx_errname(fs_rc), atomic_load(&fs_runs), ctx_errname(fs.rc),
            atomic_load(&fs.runs), (long long)st.pool_threads,
            (long long)st.idle_threads, (long long)st.tasks);
}

T_CASE(first_thread_start_fails_beside_a_go)
{
    long rounds = t_scale(20000), r, refused = 0;
    long long t0 = t_now_ns();
    uint64_t seed = 5;
    pthread_t helper;
    ctx_group_t *g;

    T_OK(ctx_pool_set_idle_timeout(50 * CTX_MICROSECOND));
    T_EQ(pthread_create(&helper, NULL, fs_helper, NULL), 0);
    wd_start("first_thread_start_fails_beside_a_go", fs_stuck);
    for (r = 1; r <= rounds && !FAILED() && in_budget(t0); r++) {
        unsigned d = (unsigned)(t_rand(&seed) % 3001);
        unsigned mine = d > 1500 ? d - 1500 : 0;
        T_EXPECT(await_empty_pool());
        if (FAILED())
            break;
        T_EXPECT_ERR(ctx_group_new(ctx_background(), &g), 0);
        T_EXPECT_ERR(ctx_group_new(ctx_background(), &fs.g), 0);
        if (FAILED())
            break;
        atomic_store(&fs_runs, 0);
        atomic_store(&fs.runs, 0);
        fs.rc = -1;
        fs.delay_ns = d > 1500 ? 0 : d;
        ctx__fault_arm(CTX__FAULT_THREAD_CREATE, 1, 0);
        atomic_store(&fs.round, r);
        while (atomic_load(&fs.ready) < r)
            sched_yield();
        atomic_store(&fs.go, r);
        spin_ns(mine);
        fs_rc = -1;
        fs_rc = ctx_group_go(g, count_task, &fs_runs);
        while (atomic_load(&fs.done) < r)
            sched_yield();
        ctx__fault_disarm_all();
        T_EXPECT(fs_rc == 0 || fs_rc == EAGAIN);
        T_EXPECT(fs.rc == 0 || fs.rc == EAGAIN);
        refused += (fs_rc == EAGAIN) + (fs.rc == EAGAIN);
        T_EXPECT_ERR(ctx_group_wait(g), 0);
        T_EXPECT_ERR(ctx_group_wait(fs.g), 0);
        T_EXPECT_EQ(atomic_load(&fs_runs), fs_rc == 0);
        T_EXPECT_EQ(atomic_load(&fs.runs), fs.rc == 0);
        ctx_group_free(g);
        ctx_group_free(fs.g);
        wd_tick();
    }
    atomic_store(&fs.round, -1);
    pthread_join(helper, NULL);
    wd_stop();
    T_OK(ctx_pool_set_idle_timeout(10 * CTX_SECOND));
    report("first_thread_start_fails_beside_a_go", r - 1, rounds, t0);
    T_GT(refused, 0);
}
