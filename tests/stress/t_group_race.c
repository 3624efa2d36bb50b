/* SPDX-License-Identifier: MIT */
/*
 * Races of groups (RELIABILITY G1; catalogue #1, #16): ctx_group_go at the
 * limit against cancellation, many tasks failing at once, ctx_group_free
 * against tasks finishing, and tasks starting tasks (a tree, a chain)
 * against ctx_group_wait and cancellation, 10^5 rounds or tasks each with
 * an exact invariant.
 */
#include "sync_race.h"

static int64_t live_tasks(void)
{
    ctx_stats_t st;
    ctx_stats(&st);
    return st.tasks;
}

static int count_task(ctx_t *c, void *arg)
{
    (void)c;
    atomic_fetch_add((atomic_int *)arg, 1);
    return 0;
}

/* ------------------------------------------------------------ go */

/*
 * Catalogue #1 for ctx_group_go: the group's slots (limit 1 or 2) are
 * held by tasks blocked on a gate (a semaphore); two threads call
 * ctx_group_go at the limit; a third opens the gate while the main thread
 * cancels the group's parent, 0-50 us apart. Each go either returns 0 and
 * its fn runs exactly once, or returns ECANCELED and its fn never runs;
 * ctx_group_wait returns 0 and no task is left.
 */
#define GL_GOERS 2

static struct {
    ctx_t *p;
    ctx_group_t *g;
    ctx_sem_t *gate; /* one unit, taken while the gate is shut */
    int rc[GL_GOERS];
    atomic_int runs[GL_GOERS];
} gl;

static int gl_block(ctx_t *c, void *arg)
{
    (void)arg;
    if (ctx_sem_acquire(gl.gate, c, 1) == 0)
        ctx_sem_release(gl.gate, 1); /* for the next blocker */
    return 0;
}

static void gl_role(int who, long round, uint64_t *seed)
{
    (void)round;
    if (who < GL_GOERS) {
        skew_us(seed, 20);
        gl.rc[who] = ctx_group_go(gl.g, count_task, &gl.runs[who]);
    } else {
        skew_us(seed, 50);
        ctx_sem_release(gl.gate, 1);
    }
}

T_CASE(go_at_limit_races_cancel)
{
    long rounds = t_scale(100000), r, accepted = 0, refused = 0;
    long long t0 = t_now_ns();
    uint64_t seed = 41;
    int64_t tasks0 = live_tasks();
    T_OK(ctx_sem_new(1, &gl.gate));
    wd_start("go_at_limit_races_cancel", NULL);
    crew_open(GL_GOERS + 1, gl_role);
    for (r = 0; r < rounds && !FAILED() && in_budget(t0); r++) {
        int limit = 1 + (int)(r % 2);
        T_EXPECT(ctx_sem_try_acquire(gl.gate, 1)); /* shut */
        T_EXPECT_ERR(ctx_with_cancel(ctx_background(), &gl.p), 0);
        T_EXPECT_ERR(ctx_group_new(gl.p, &gl.g), 0);
        if (FAILED())
            break;
        T_EXPECT_ERR(ctx_group_set_limit(gl.g, limit), 0);
        for (int i = 0; i < limit; i++)
            T_EXPECT_ERR(ctx_group_go(gl.g, gl_block, NULL), 0);
        for (int i = 0; i < GL_GOERS; i++) {
            gl.rc[i] = -1;
            atomic_store(&gl.runs[i], 0);
        }
        crew_go(r);
        skew_us(&seed, 50);
        ctx_cancel(gl.p);
        crew_wait();
        T_EXPECT_ERR(ctx_group_wait(gl.g), 0);
        for (int i = 0; i < GL_GOERS; i++) {
            if (gl.rc[i] == 0) {
                accepted++;
                T_EXPECT_EQ(atomic_load(&gl.runs[i]), 1);
            } else {
                refused++;
                T_EXPECT_ERR(gl.rc[i], ECANCELED);
                T_EXPECT_EQ(atomic_load(&gl.runs[i]), 0);
            }
        }
        ctx_group_free(gl.g);
        ctx_release(gl.p);
        T_EXPECT_EQ(live_tasks(), tasks0);
        wd_tick();
    }
    crew_close();
    wd_stop();
    ctx_sem_free(gl.gate);
    report_outcomes("go_at_limit_races_cancel (2 goers)", r, rounds, t0,
                    "accepted", accepted, "refused", refused);
    T_GT(accepted, 0);
    T_GT(refused, 0);
}

/*
 * The hand-over of a slot against the submitter queueing for it: limit 1,
 * one task at a time busy for 0-60 us, so that ctx_group_go, which spins
 * for a while at the limit and then queues, queues at every distance from
 * the moment the task returns. A task returning just as the submitter
 * queues must either hand its slot over or be seen freeing it; a lost
 * hand-over leaves ctx_group_go blocked for good (the watchdog aborts).
 * Every task runs exactly once.
 */
static atomic_long busy_runs;

static int busy_task(ctx_t *c, void *arg)
{
    long long until = t_now_ns() + (long long)(uintptr_t)arg;
    (void)c;
    while (t_now_ns() < until)
        ;
    atomic_fetch_add(&busy_runs, 1);
    return 0;
}

T_CASE(slot_handover_races_queueing)
{
    long rounds = t_scale(100000), r;
    long long t0 = t_now_ns();
    uint64_t seed = 7;
    int64_t tasks0 = live_tasks();
    ctx_group_t *g;

    T_OK(ctx_group_new(ctx_background(), &g));
    T_OK(ctx_group_set_limit(g, 1));
    wd_start("slot_handover_races_queueing", NULL);
    for (r = 0; r < rounds && !FAILED() && in_budget(t0); r++) {
        uintptr_t ns = (uintptr_t)(t_rand(&seed) % 60000);
        T_EXPECT_ERR(ctx_group_go(g, busy_task, (void *)ns), 0);
        wd_tick();
    }
    T_EXPECT_ERR(ctx_group_wait(g), 0);
    wd_stop();
    ctx_group_free(g);
    T_EXPECT_EQ(atomic_load(&busy_runs), r);
    T_EXPECT_EQ(live_tasks(), tasks0);
    report("slot_handover_races_queueing", r, rounds, t0);
}

/* ------------------------------------------------------------ errors */

/*
 * Many tasks failing at once: four tasks wait for a signal, then each
 * returns its own code (one in four returns 0). ctx_group_wait must return
 * the code of one that failed (0 only if none did), and the group's
 * context must be cancelled with that same code as its cause.
 */
#define GE_N 4

static struct {
    atomic_int fire;
    int code[GE_N];
} ge;

static int ge_task(ctx_t *c, void *arg)
{
    int i = (int)(intptr_t)arg;
    (void)c;
    while (!atomic_load(&ge.fire))
        sched_yield();
    return ge.code[i];
}

T_CASE(first_error_races)
{
    long rounds = t_scale(100000), r, none = 0;
    long long t0 = t_now_ns();
    uint64_t seed = 43;
    int64_t tasks0 = live_tasks();
    long won[GE_N] = {0};
    wd_start("first_error_races", NULL);
    for (r = 0; r < rounds && !FAILED() && in_budget(t0); r++) {
        ctx_group_t *g;
        int rc, cause, ok = 0, any = 0;
        atomic_store(&ge.fire, 0);
        for (int i = 0; i < GE_N; i++) {
            ge.code[i] = rnd(&seed, 4) ? 1000 + i : 0;
            any |= ge.code[i];
        }
        T_EXPECT_ERR(ctx_group_new(ctx_background(), &g), 0);
        if (FAILED())
            break;
        for (int i = 0; i < GE_N; i++)
            T_EXPECT_ERR(ctx_group_go(g, ge_task, (void *)(intptr_t)i), 0);
        skew_us(&seed, 20);
        atomic_store(&ge.fire, 1);
        rc = ctx_group_wait(g);
        cause = ctx_cause(ctx_group_ctx(g), NULL);
        for (int i = 0; i < GE_N; i++)
            if (rc != 0 && rc == ge.code[i]) {
                ok = 1;
                won[i]++;
            }
        if (!any) {
            none++;
            T_EXPECT_ERR(rc, 0);
            T_EXPECT_ERR(cause, ECANCELED); /* wait's own cancel */
        } else {
            if (!ok)
                fprintf(stderr, "  round %ld: wait returned %d\n", r, rc);
            T_EXPECT(ok);
            T_EXPECT_EQ(cause, rc);
        }
        T_EXPECT_ERR(ctx_err(ctx_group_ctx(g)), ECANCELED);
        ctx_group_free(g);
        T_EXPECT_EQ(live_tasks(), tasks0);
        wd_tick();
    }
    wd_stop();
    printf("  first_error_races (4 tasks): %ld rounds in %.2f s, won by "
           "task 0-3: %ld %ld %ld %ld, no failure %ld%s\n",
           r, (double)(t_now_ns() - t0) / 1e9, won[0], won[1], won[2], won[3],
           none, budget_note(r, rounds));
    for (int i = 0; i < GE_N; i++)
        T_GT(won[i], 0);
}

/* ------------------------------------------------------------ free */

/*
 * ctx_group_free called, without ctx_group_wait, while the group's tasks
 * are finishing (0-20 us of work each, against 0-20 us before the free):
 * a finishing task must not touch the group once free may return (ASan,
 * TSan), and when free returns every accepted task has run and none is
 * left. (With a limit of 2, a go at the limit is refused once a task has
 * failed.)
 */
#define GF_N 4

static int gf_task(ctx_t *c, void *arg)
{
    uint64_t seed = (uint64_t)(uintptr_t)&seed ^ (uint64_t)t_now_ns();
    (void)c;
    skew_us(&seed, 20);
    atomic_fetch_add((atomic_int *)arg, 1);
    return rnd(&seed, 8) ? 0 : EIO;
}

T_CASE(free_races_finishing_tasks)
{
    long rounds = t_scale(100000), r;
    long long t0 = t_now_ns();
    uint64_t seed = 47;
    int64_t tasks0 = live_tasks();
    int64_t ctx0 = t_live_contexts();
    wd_start("free_races_finishing_tasks", NULL);
    for (r = 0; r < rounds && !FAILED() && in_budget(t0); r++) {
        ctx_group_t *g;
        atomic_int runs = 0;
        int accepted = 0;
        T_EXPECT_ERR(ctx_group_new(ctx_background(), &g), 0);
        if (FAILED())
            break;
        if (r % 2)
            T_EXPECT_ERR(ctx_group_set_limit(g, 2), 0);
        for (int i = 0; i < GF_N; i++) {
            /* At the limit, a failed task's cancellation refuses it. */
            int rc = ctx_group_go(g, gf_task, &runs);
            if (rc == 0)
                accepted++;
            else
                T_EXPECT_ERR(rc, ECANCELED);
        }
        skew_us(&seed, 20);
        ctx_group_free(g);
        T_EXPECT_EQ(atomic_load(&runs), accepted);
        T_EXPECT_EQ(live_tasks(), tasks0);
        T_EXPECT_EQ(t_live_contexts(), ctx0);
        wd_tick();
    }
    wd_stop();
    report("free_races_finishing_tasks (4 tasks)", r, rounds, t0);
}

/* ------------------------------------------------------------ trees */

/*
 * Tasks starting tasks: a root task starts two, each of which starts two,
 * to depth 3 (15 tasks). Without a limit the main thread calls
 * ctx_group_wait at once, racing the starts: it must not return before all
 * 15 have run. With a limit of 2, tasks block in ctx_group_go at the limit
 * (the parents hold the slots), and the main thread cancels the group's
 * parent 0-100 us in: every go from a task returns 0 or ECANCELED, the
 * tasks that ran are exactly the accepted ones, and the refused ones with
 * the subtrees they would have started make up the rest of the 15.
 */
#define GT_DEPTH 3
#define GT_ALL   15

static struct {
    ctx_group_t *g;
    atomic_int runs, accepted, refused;
} gt;

static void gt_stuck(void)
{
    ctx_stats_t st;
    ctx_stats(&st);
    fprintf(stderr,
            "  %d tasks ran, %d accepted, %d refused; live tasks %lld, pool "
            "threads %lld (%lld idle)\n",
            atomic_load(&gt.runs), atomic_load(&gt.accepted),
            atomic_load(&gt.refused), (long long)st.tasks,
            (long long)st.pool_threads, (long long)st.idle_threads);
    ctx_dump(2);
}

static int gt_node(ctx_t *c, void *arg)
{
    int depth = (int)(intptr_t)arg;
    (void)c;
    atomic_fetch_add(&gt.runs, 1);
    if (depth < GT_DEPTH) {
        for (int i = 0; i < 2; i++) {
            int rc = ctx_group_go(gt.g, gt_node, (void *)(intptr_t)(depth + 1));
            if (rc == 0) {
                atomic_fetch_add(&gt.accepted, 1);
            } else {
                T_EXPECT_ERR(rc, ECANCELED);
                /* the child and the subtree it would have started */
                atomic_fetch_add(&gt.refused, (1 << (GT_DEPTH - depth)) - 1);
            }
        }
    }
    return 0;
}

T_CASE(tasks_start_tasks_race_wait_and_cancel)
{
    long rounds = t_scale(100000), r, refused = 0;
    long long t0 = t_now_ns();
    uint64_t seed = 53;
    int64_t tasks0 = live_tasks();
    wd_start("tasks_start_tasks_race_wait_and_cancel", gt_stuck);
    for (r = 0; r < rounds && !FAILED() && in_budget(t0); r++) {
        ctx_t *p;
        int limited = (int)(r % 2);
        T_EXPECT_ERR(ctx_with_cancel(ctx_background(), &p), 0);
        T_EXPECT_ERR(ctx_group_new(p, &gt.g), 0);
        if (FAILED())
            break;
        atomic_store(&gt.runs, 0);
        atomic_store(&gt.accepted, 1);
        atomic_store(&gt.refused, 0);
        if (limited)
            T_EXPECT_ERR(ctx_group_set_limit(gt.g, 2), 0);
        T_EXPECT_ERR(ctx_group_go(gt.g, gt_node, (void *)(intptr_t)0), 0);
        if (limited) {
            skew_us(&seed, 100);
            ctx_cancel(p);
        }
        T_EXPECT_ERR(ctx_group_wait(gt.g), 0);
        T_EXPECT_EQ(atomic_load(&gt.runs), atomic_load(&gt.accepted));
        T_EXPECT_EQ(atomic_load(&gt.accepted) + atomic_load(&gt.refused),
                    GT_ALL);
        if (!limited)
            T_EXPECT_EQ(atomic_load(&gt.runs), GT_ALL);
        refused += atomic_load(&gt.refused);
        ctx_group_free(gt.g);
        ctx_release(p);
        T_EXPECT_EQ(live_tasks(), tasks0);
        wd_tick();
    }
    wd_stop();
    printf("  tasks_start_tasks_race_wait_and_cancel (15 tasks): %ld rounds "
           "in %.2f s, %ld tasks refused%s\n",
           r, (double)(t_now_ns() - t0) / 1e9, refused, budget_note(r, rounds));
    T_GT(refused, 0);
}

/*
 * ctx_group_wait against a chain: each task starts the next, then returns,
 * so tasks start and finish all the while the waiter looks at the counts
 * (at most two run at once, and the waiter is woken every other task). It
 * must return exactly once the last of the chain has run, never before,
 * never hanging.
 */
#define GC_LEN 1000

static struct {
    ctx_group_t *g;
    atomic_int runs;
} gc;

static void gc_stuck(void)
{
    fprintf(stderr, "  %d of %d tasks of the chain ran, %lld live\n",
            atomic_load(&gc.runs), GC_LEN, (long long)live_tasks());
}

static int gc_link(ctx_t *c, void *arg)
{
    long left = (long)(intptr_t)arg;
    (void)c;
    atomic_fetch_add(&gc.runs, 1);
    if (left > 1)
        T_EXPECT_ERR(ctx_group_go(gc.g, gc_link, (void *)(intptr_t)(left - 1)),
                     0);
    return 0;
}

T_CASE(wait_races_a_chain_of_tasks)
{
    long rounds = at_least(t_scale(3000000) / GC_LEN, 1000), r;
    long long t0 = t_now_ns();
    int64_t tasks0 = live_tasks();
    wd_start("wait_races_a_chain_of_tasks", gc_stuck);
    for (r = 0; r < rounds && !FAILED() && in_budget(t0); r++) {
        int runs;
        T_EXPECT_ERR(ctx_group_new(ctx_background(), &gc.g), 0);
        if (FAILED())
            break;
        atomic_store(&gc.runs, 0);
        T_EXPECT_ERR(ctx_group_go(gc.g, gc_link, (void *)(intptr_t)GC_LEN), 0);
        T_EXPECT_ERR(ctx_group_wait(gc.g), 0);
        runs = atomic_load(&gc.runs);
        if (runs != GC_LEN) {
            long long until = t_now_ns() + 5000000000LL;
            fprintf(stderr, "  chain %ld: wait returned after %d of %d\n", r,
                    runs, GC_LEN);
            /* Let the rest of the chain end before the group is freed. */
            while (atomic_load(&gc.runs) < GC_LEN && t_now_ns() < until)
                t_sleep_ns(1000000);
            t_sleep_ns(10000000);
        }
        T_EXPECT_EQ(runs, GC_LEN);
        ctx_group_free(gc.g);
        T_EXPECT_EQ(live_tasks(), tasks0);
        wd_tick();
    }
    wd_stop();
    printf("  wait_races_a_chain_of_tasks: %ld chains of %d in %.2f s%s\n", r,
           GC_LEN, (double)(t_now_ns() - t0) / 1e9, budget_note(r, rounds));
}
