/* SPDX-License-Identifier: MIT */
/*
 * The allocation fault sweep of the sync layer (RELIABILITY #15, G4): each
 * allocation of each constructor of groups, semaphores, limiters, channels
 * and stages fails in turn, once and for good, until the call succeeds;
 * each failure must be ENOMEM with nothing changed and everything still
 * usable. Thread-creation failures are in t_pool_fault.c (a fresh pool).
 */
#include "t.h"

#include "internal.h"

static int sentinel;
#define SENTINEL ((void *)&sentinel)

static int count_task(ctx_t *c, void *arg)
{
    (void)c;
    atomic_fetch_add((atomic_int *)arg, 1);
    return 0;
}

/* A stage that passes each element on (a send cut short by the group's
 * cancellation is not an error of the stage). */
static int pass_on(ctx_t *c, void *elem, ctx_chan_t *out, void *arg)
{
    (void)arg;
    (void)ctx_chan_send(out, c, elem);
    return 0;
}

/* ------------------------------------------------------------ the world */

/*
 * What a constructor works on: a parent context with a child, a group on
 * it that has run a task (so the pool is warm), and two channels for a
 * stage. After a failed call all of it must still work.
 */
struct world {
    ctx_t *p, *kid;
    ctx_group_t *g;
    ctx_chan_t *in, *out;
    atomic_int runs;
    int accepted;       /* tasks of g that must have run */
    int stage;          /* a stage runs from in to out */
    int stage_may_fail; /* its worker may have met the fault (ENOMEM) */
};

static void world_open(struct world *w)
{
    memset(w, 0, sizeof *w);
    T_OK(ctx_with_cancel(ctx_background(), &w->p));
    T_OK(ctx_with_cancel(w->p, &w->kid));
    T_OK(ctx_group_new(w->p, &w->g));
    T_OK(ctx_group_go(w->g, count_task, &w->runs));
    w->accepted = 1;
    T_OK(ctx_chan_new(16, sizeof(long), &w->in));
    T_OK(ctx_chan_new(16, sizeof(long), &w->out));
    while (atomic_load(&w->runs) < 1)
        t_sleep_ns(10000); /* the task has run: the pool is warm */
    for (;;) { /* and has returned: the sweep compares live task counts */
        ctx_stats_t s;
        T_OK(ctx_stats(&s));
        if (s.tasks == 0)
            break;
        t_sleep_ns(10000);
    }
}

/*
 * Use everything: the group takes one more task (and, with a stage, the
 * stage takes elements and ends when its input closes), its wait returns
 * 0 (or ENOMEM if a stage worker met the fault), the channels work, and
 * cancelling the parent reaches the old child and a new one.
 */
static void world_close(struct world *w)
{
    ctx_t *n;
    long v;
    int rc, sent = 0, got = 0;
    T_OK(ctx_group_go(w->g, count_task, &w->runs));
    w->accepted++;
    if (w->stage) {
        for (long i = 0; i < 4; i++) {
            rc = ctx_chan_send(w->in, ctx_background(), &i);
            if (rc == 0)
                sent++;
            else
                T_ERR(rc, EPIPE); /* its failed worker closed it */
        }
    }
    ctx_chan_close(w->in);
    rc = ctx_group_wait(w->g);
    if (w->stage_may_fail && rc == ENOMEM)
        rc = 0;
    T_OK(rc);
    T_EQ(atomic_load(&w->runs), w->accepted);
    if (w->stage) {
        /* What the stage passed on, then EPIPE: the stage closed out (a
         * stage that forgot to gives ETIMEDOUT, not a hang). */
        ctx_t *to;
        T_OK(ctx_with_timeout(ctx_background(), 5 * CTX_SECOND, &to));
        while ((rc = ctx_chan_recv(w->out, to, &v)) == 0)
            got++;
        ctx_release(to);
        T_ERR(rc, EPIPE);
        T_LE(got, sent);
        if (!w->stage_may_fail)
            T_EQ(got, sent);
    } else {
        v = 5;
        T_OK(ctx_chan_send(w->out, ctx_background(), &v));
        T_OK(ctx_chan_recv(w->out, ctx_background(), &v));
        T_EQ(v, 5);
    }
    T_OK(ctx_with_cancel(w->p, &n));
    ctx_cancel_cause(w->p, EPROTO, NULL);
    T_ERR(ctx_cause(w->kid, NULL), EPROTO);
    T_ERR(ctx_cause(n, NULL), EPROTO);
    ctx_release(n);
    ctx_group_free(w->g);
    ctx_chan_free(w->in);
    ctx_chan_free(w->out);
    ctx_release(w->kid);
    ctx_release(w->p);
}

/* ------------------------------------------------------------ sweep */

struct ctor {
    const char *name;
    int (*make)(struct world *w, void **out); /* out: NULL if none */
    void (*use)(struct world *w, void *obj);  /* check and free it */
    int stage;                                /* starts a stage */
};

static int mk_group(struct world *w, void **out)
{
    return ctx_group_new(w->p, (ctx_group_t **)out);
}

static void use_group(struct world *w, void *obj)
{
    ctx_group_t *g = obj;
    (void)w;
    T_NOTNULL(g);
    T_OK(ctx_group_go(g, count_task, &w->runs));
    w->accepted++;
    T_OK(ctx_group_wait(g));
    ctx_group_free(g);
}

static int mk_go(struct world *w, void **out)
{
    int rc = ctx_group_go(w->g, count_task, &w->runs);
    (void)out;
    w->accepted += rc == 0;
    return rc;
}

static int mk_go_named(struct world *w, void **out)
{
    ctx_go_opts_t o = CTX_GO_OPTS_INIT;
    int rc;
    (void)out;
    o.name = "a-named-task";
    rc = ctx_group_go_opts(w->g, &o, count_task, &w->runs);
    w->accepted += rc == 0;
    return rc;
}

static int mk_sem(struct world *w, void **out)
{
    (void)w;
    return ctx_sem_new(3, (ctx_sem_t **)out);
}

static void use_sem(struct world *w, void *obj)
{
    ctx_sem_t *s = obj;
    (void)w;
    T_NOTNULL(s);
    T_OK(ctx_sem_acquire(s, ctx_background(), 3));
    T_FALSE(ctx_sem_try_acquire(s, 1));
    ctx_sem_release(s, 3);
    ctx_sem_free(s);
}

static int mk_limiter(struct world *w, void **out)
{
    (void)w;
    return ctx_limiter_new(1, 5, (ctx_limiter_t **)out);
}

static void use_limiter(struct world *w, void *obj)
{
    ctx_limiter_t *l = obj;
    (void)w;
    T_NOTNULL(l);
    T_TRUE(ctx_limiter_allow_n(l, 5));
    ctx_limiter_free(l);
}

static int mk_chan0(struct world *w, void **out)
{
    (void)w;
    return ctx_chan_new(0, sizeof(long), (ctx_chan_t **)out);
}

static int mk_chan64(struct world *w, void **out)
{
    (void)w;
    return ctx_chan_new(64, sizeof(long), (ctx_chan_t **)out);
}

static void use_chan(struct world *w, void *obj)
{
    ctx_chan_t *ch = obj;
    long v = 3;
    (void)w;
    T_NOTNULL(ch);
    if (ctx_chan_cap(ch) > 0) {
        T_OK(ctx_chan_try_send(ch, &v));
        T_OK(ctx_chan_try_recv(ch, &v));
        T_EQ(v, 3);
    }
    ctx_chan_close(ch);
    T_ERR(ctx_chan_try_recv(ch, &v), EPIPE);
    ctx_chan_free(ch);
}

static int mk_stage(struct world *w, int workers)
{
    ctx_stage_opts_t o = CTX_STAGE_OPTS_INIT;
    int rc;
    o.workers = workers;
    o.name = "pass-on";
    rc = ctx_stage_start(w->g, w->in, w->out, pass_on, &o);
    w->stage = rc == 0;
    return rc;
}

static int mk_stage1(struct world *w, void **out)
{
    (void)out;
    return mk_stage(w, 1);
}

static int mk_stage3(struct world *w, void **out)
{
    (void)out;
    return mk_stage(w, 3);
}

static const struct ctor ctors[] = {
    {"ctx_group_new", mk_group, use_group, 0},
    {"ctx_group_go", mk_go, NULL, 0},
    {"ctx_group_go_opts (named)", mk_go_named, NULL, 0},
    {"ctx_sem_new", mk_sem, use_sem, 0},
    {"ctx_limiter_new", mk_limiter, use_limiter, 0},
    {"ctx_chan_new (capacity 0)", mk_chan0, use_chan, 0},
    {"ctx_chan_new (capacity 64)", mk_chan64, use_chan, 0},
    {"ctx_stage_start (1 worker)", mk_stage1, NULL, 1},
    {"ctx_stage_start (3 workers)", mk_stage3, NULL, 1},
};

#define NCTORS (sizeof ctors / sizeof ctors[0])

/* One call with its n-th allocation failing; *ok = 1 if it succeeded. */
static void sweep_step(const void *kv, long n, int persistent, int *ok)
{
    const struct ctor *k = kv;
    struct world w;
    void *obj = SENTINEL;
    void **out = k->use ? &obj : NULL;
    ctx_stats_t s0, s1;
    long h0, hits;
    int rc;

    world_open(&w);
    if (t_failed())
        return;
    T_OK(ctx_stats(&s0));
    h0 = ctx__fault_hits(CTX__FAULT_ALLOC);
    ctx__fault_arm(CTX__FAULT_ALLOC, n, persistent);
    rc = k->make(&w, out);
    ctx__fault_disarm_all();
    hits = ctx__fault_hits(CTX__FAULT_ALLOC) - h0;
    T_OK(ctx_stats(&s1));
    if (rc == 0) {
        *ok = 1;
        /* A stage's worker allocates on a pool thread: it may meet the
         * fault, armed until just now, and fail the group with ENOMEM. */
        w.stage_may_fail = k->stage && hits > 0;
        if (!k->stage)
            T_EQ(hits, 0); /* the n-th allocation was never reached */
        if (k->use)
            k->use(&w, obj);
        world_close(&w);
        return;
    }
    T_ERR(rc, ENOMEM);
    if (out)
        T_NULL(obj);
    if (persistent)
        T_GE(hits, 1);
    else
        T_EQ(hits, 1);
    T_EQ(s1.contexts, s0.contexts);
    T_EQ(s1.tasks, s0.tasks);
    T_EQ(s1.cancels, s0.cancels);
    world_close(&w);
}

T_CASE(alloc_sweep_constructors)
{
    ctx_stats_t base, end;
    T_OK(ctx_pool_set_idle_timeout(60 * CTX_SECOND)); /* keep it warm */
    T_OK(ctx_stats(&base));
    for (size_t i = 0; i < NCTORS; i++) {
        const struct ctor *k = &ctors[i];
        long sites = t_sweep_sites(k->name, sweep_step, k);
        if (sites < 0)
            return;
        T_GE(sites, 0);
    }
    T_OK(ctx_stats(&end));
    T_EQ(end.contexts, base.contexts);
    T_EQ(end.tasks, base.tasks);
    T_OK(ctx_pool_set_idle_timeout(10 * CTX_SECOND));
}

/*
 * The allocation a stage's worker makes on its pool thread (its element
 * buffer): with every allocation failing from the n-th on, kept failing
 * until the group is done, a start that succeeds has workers that all
 * return ENOMEM, which fails the group; the stage still closes its output,
 * and an element sent to its input is dropped, not left behind.
 */
T_CASE(stage_worker_allocation_fails)
{
    ctx_group_t *g;
    atomic_int runs = 0;
    /* A warm pool: its idle workers take the tasks without allocating. */
    T_OK(ctx_pool_set_idle_timeout(60 * CTX_SECOND));
    T_OK(ctx_group_new(ctx_background(), &g));
    for (int i = 0; i < 3; i++)
        T_OK(ctx_group_go(g, count_task, &runs));
    T_OK(ctx_group_wait(g));
    ctx_group_free(g);
    for (int workers = 1; workers <= 3; workers += 2) {
        ctx_stage_opts_t o = CTX_STAGE_OPTS_INIT;
        long sites = -1;
        o.workers = workers;
        for (long n = 1; n <= 32 && sites < 0 && !t_failed(); n++) {
            ctx_chan_t *in, *out;
            long v = 1;
            int rc, src, wrc;
            T_OK(ctx_group_new(ctx_background(), &g));
            T_OK(ctx_chan_new(16, sizeof(long), &in));
            T_OK(ctx_chan_new(16, sizeof(long), &out));
            ctx__fault_arm(CTX__FAULT_ALLOC, n, 1);
            rc = ctx_stage_start(g, in, out, pass_on, &o);
            src = ctx_chan_send(in, ctx_background(), &v);
            ctx_chan_close(in);
            wrc = ctx_group_wait(g);
            ctx__fault_disarm_all();
            if (rc == 0) {
                sites = n - 1;
                T_TRUE(src == 0 || src == EPIPE); /* EPIPE: drained */
                T_ERR(wrc, ENOMEM);
                T_ERR(ctx_chan_recv(out, ctx_background(), &v), EPIPE);
                T_EQ(ctx_chan_len(in), 0);
            } else {
                T_ERR(rc, ENOMEM);
                T_OK(src);
                T_OK(wrc);
                T_EQ(ctx_chan_len(in), 1);
            }
            ctx_group_free(g);
            ctx_chan_free(in);
            ctx_chan_free(out);
        }
        T_GE(sites, 0);
        printf("  ctx_stage_start (%d worker%s): %ld site(s) in the call, "
               "then one in each worker\n",
               workers, workers > 1 ? "s" : "", sites);
    }
    T_OK(ctx_pool_set_idle_timeout(10 * CTX_SECOND));
}

/*
 * A stage whose later workers are refused: the group has a limit of 1, so
 * ctx_stage_start blocks at the limit for its second worker while the
 * first waits on the empty input. Another thread then sends an element on
 * which the stage fails: the first worker returns EIO, which cancels the
 * group, so the blocked go returns ECANCELED, and so does the third; the
 * start returns 0 ("the stage runs with those that did"). Its only worker
 * has returned by then, before the start gave up on the others: the
 * stage must still close its output and drop what is left in its input.
 */
static int fail_on(ctx_t *c, void *elem, ctx_chan_t *out, void *arg)
{
    (void)c;
    (void)elem;
    (void)out;
    (void)arg;
    return EIO;
}

struct sender {
    ctx_chan_t *ch;
    long long delay_ns;
};

static void *send_later(void *arg)
{
    struct sender *k = arg;
    long v[2] = {1, 2};
    t_sleep_ns(k->delay_ns);
    ctx_chan_send(k->ch, ctx_background(), &v[0]);
    ctx_chan_send(k->ch, ctx_background(), &v[1]);
    return NULL;
}

T_CASE(stage_start_partly_refused_still_closes_output)
{
    ctx_group_t *g;
    ctx_chan_t *in, *out;
    ctx_stage_opts_t o = CTX_STAGE_OPTS_INIT;
    struct sender k;
    pthread_t t;
    ctx_t *to;
    long v;
    int rc;
    T_OK(ctx_group_new(ctx_background(), &g));
    T_OK(ctx_group_set_limit(g, 1));
    T_OK(ctx_chan_new(4, sizeof(long), &in));
    T_OK(ctx_chan_new(4, sizeof(long), &out));
    o.workers = 3;
    k.ch = in;
    k.delay_ns = 20000000LL;
    T_OK(pthread_create(&t, NULL, send_later, &k));
    T_OK(ctx_stage_start(g, in, out, fail_on, &o)); /* one worker ran */
    pthread_join(t, NULL);
    T_ERR(ctx_group_wait(g), EIO);
    T_OK(ctx_with_timeout(ctx_background(), 2 * CTX_SECOND, &to));
    rc = ctx_chan_recv(out, to, &v);
    ctx_release(to);
    T_EXPECT_ERR(rc, EPIPE);          /* ETIMEDOUT: nobody closed it */
    T_EXPECT_EQ(ctx_chan_len(in), 0); /* the second element dropped */
    ctx_group_free(g);
    ctx_chan_free(in);
    ctx_chan_free(out);
}
