/* SPDX-License-Identifier: MIT */
/*
 * Races of after-functions (RELIABILITY G1; catalogue #3, #4): stop
 * against a running or queued fn, stop from inside fn, register, stop and
 * cancel in three threads, and fn calling back into libctx, each with an
 * exact invariant checked every round.
 */
#include "race.h"

/* ------------------------------------------------------------ slow fn */

/*
 * RELIABILITY #3 (a): fn sleeps 20 ms, then writes *arg; the main thread
 * calls ctx_after_stop, then frees arg. Stop must not return while fn can
 * still touch arg (ASan reports a use after free if it does).
 */
struct slow {
    atomic_int started;
    atomic_int finished;
    int value;
};

static void slow_write(void *p)
{
    struct slow *s = p;
    atomic_store(&s->started, 1);
    t_sleep_ns(20000000LL);
    s->value = 42;
    atomic_store(&s->finished, 1);
}

struct delayed_cancel {
    ctx_t *c;
    long long delay_ns;
};

static void *delayed_cancel(void *p)
{
    struct delayed_cancel *d = p;
    t_sleep_ns(d->delay_ns);
    ctx_cancel(d->c);
    return NULL;
}

T_CASE(after_stop_waits_for_slow_fn)
{
    long runs = at_least(t_scale(200), 20), r, prevented = 0;
    long long t0 = t_now_ns();
    uint64_t seed = 3;
    for (r = 0; r < runs && !FAILED() && in_budget(t0); r++) {
        struct slow *s = calloc(1, sizeof *s);
        struct delayed_cancel d;
        ctx_after_t *a;
        pthread_t t;
        bool stopped;
        T_NOTNULL(s);
        T_OK(ctx_with_cancel(ctx_background(), &d.c));
        T_OK(ctx_after_func(d.c, slow_write, s, &a));
        /* Case 1 stops at once, well before its cancel (5 ms). */
        d.delay_ns =
            r % 3 == 1 ? 5000000LL : (long long)rnd(&seed, 2000) * 1000;
        T_OK(pthread_create(&t, NULL, delayed_cancel, &d));
        switch (r % 3) {
        case 0: /* while fn sleeps */
            await_flag(&s->started);
            break;
        case 1: /* before the cancel */
            break;
        default: /* any time */
            t_sleep_ns((long long)rnd(&seed, 25000) * 1000);
            break;
        }
        stopped = ctx_after_stop(a);
        if (stopped) {
            T_EXPECT_EQ(atomic_load(&s->started), 0);
            prevented++;
        } else {
            T_EXPECT_EQ(atomic_load(&s->finished), 1);
        }
        free(s); /* fn must not touch it from now on */
        pthread_join(t, NULL);
        ctx_release(d.c);
    }
    printf("  after_stop_waits_for_slow_fn: %ld runs (%ld prevented) in "
           "%.2f s%s\n",
           r, prevented, (double)(t_now_ns() - t0) / 1e9, budget_note(r, runs));
    T_GT(prevented, 0);
    T_LT(prevented, r);
}

/* ------------------------------------------------------------ self stop */

/*
 * RELIABILITY #3 (b): fn calls ctx_after_stop on its own registration
 * (false, at once) and on one queued behind it (true: it never runs),
 * when run by a cancel on this thread, at once by ctx_after_func on a done
 * context, or by the timer thread.
 */
struct selfstop {
    ctx_after_t *self;  /* written by ctx_after_func before fn can run */
    ctx_after_t *later; /* queued behind self, or NULL */
    int stop_self, stop_later;
    atomic_int later_runs;
    atomic_int done;
};

static void selfstop_fn(void *p)
{
    struct selfstop *s = p;
    s->stop_self = ctx_after_stop(s->self);
    if (s->later)
        s->stop_later = ctx_after_stop(s->later);
    atomic_store(&s->done, 1);
}

T_CASE(after_stop_from_inside_fn)
{
    long rounds = t_scale(100000), r;
    long long t0 = t_now_ns();
    int64_t base = t_live_contexts();
    uint64_t seed = 5;
    wd_start("after_stop_from_inside_fn", NULL);
    for (r = 0; r < rounds && !FAILED() && in_budget(t0); r++) {
        struct selfstop s;
        ctx_t *c;
        int how = (int)(r % 3);
        memset(&s, 0, sizeof s);
        if (how == 2) {
            T_EXPECT_ERR(ctx_with_timeout(ctx_background(),
                                          rnd(&seed, 30) * CTX_MICROSECOND, &c),
                         0);
        } else {
            T_EXPECT_ERR(ctx_with_cancel(ctx_background(), &c), 0);
            if (how == 1)
                ctx_cancel(c);
        }
        T_EXPECT_ERR(ctx_after_func(c, selfstop_fn, &s, &s.self), 0);
        if (how == 0) {
            T_EXPECT_ERR(ctx_after_func(c, count_run, &s.later_runs, &s.later),
                         0);
            ctx_cancel(c);
        }
        await_flag(&s.done);
        T_EXPECT_EQ(s.stop_self, 0);
        if (how == 0)
            T_EXPECT_EQ(s.stop_later, 1);
        T_EXPECT_EQ(atomic_load(&s.later_runs), 0);
        ctx_release(c);
        wd_tick();
    }
    wd_stop();
    T_EQ(settle(base), base);
    report("after_stop_from_inside_fn", r, rounds, t0);
}

/* ------------------------------------------------------------ three threads */

/*
 * RELIABILITY #3 (c): register, stop and cancel in three threads. Exactly
 * one outcome: stop returned false and fn ran (and had returned when stop
 * returned), or stop returned true and fn never runs.
 */
static struct {
    ctx_t *c;
    _Atomic(ctx_after_t *) h;
    atomic_int runs;
    int stopped;
} rs;

static void rs_role(int who, long round, uint64_t *seed)
{
    ctx_after_t *h = NULL;
    (void)round;
    skew(seed, 2000);
    switch (who) {
    case 0:
        T_EXPECT_ERR(ctx_after_func(rs.c, count_run, &rs.runs, &h), 0);
        atomic_store(&rs.h, h);
        break;
    case 1:
        while (!(h = atomic_load(&rs.h)))
            sched_yield();
        skew(seed, 500);
        rs.stopped = ctx_after_stop(h);
        T_EXPECT_EQ(atomic_load(&rs.runs), rs.stopped ? 0 : 1);
        break;
    default:
        ctx_cancel(rs.c);
        break;
    }
}

T_CASE(after_register_stop_cancel)
{
    long rounds = t_scale(100000), r, prevented = 0;
    long long t0 = t_now_ns();
    int64_t base = t_live_contexts();
    wd_start("after_register_stop_cancel", NULL);
    crew_open(3, rs_role);
    for (r = 0; r < rounds && !FAILED() && in_budget(t0); r++) {
        T_EXPECT_ERR(ctx_with_cancel(ctx_background(), &rs.c), 0);
        atomic_store(&rs.h, NULL);
        atomic_store(&rs.runs, 0);
        crew_go(r);
        crew_wait();
        T_EXPECT_ERR(ctx_err(rs.c), ECANCELED);
        T_EXPECT_EQ(atomic_load(&rs.runs), rs.stopped ? 0 : 1);
        prevented += rs.stopped;
        ctx_release(rs.c);
        wd_tick();
    }
    crew_close();
    wd_stop();
    T_EQ(t_live_contexts(), base);
    printf("  after_register_stop_cancel: %ld rounds (%ld prevented) in "
           "%.2f s%s\n",
           r, prevented, (double)(t_now_ns() - t0) / 1e9,
           budget_note(r, rounds));
}

/* ------------------------------------------------------------ stop #73 */

/*
 * RELIABILITY #3 (d), the coreclr bug: 100 after-functions on one
 * context; while the cancel runs #1 (slow: it waits until the other
 * thread is about to stop), another thread stops #73. Stop must either
 * keep #73 from running (true) or return only after it has returned
 * (false); every other function runs exactly once.
 */
#define HD_N 100

static struct {
    ctx_t *c;
    ctx_after_t *h[HD_N];
    atomic_int runs[HD_N];
    atomic_int finished[HD_N];
    atomic_int first_running, stopping;
    int stopped;
} hd;

static void hd_fn(void *p)
{
    int i = (int)(intptr_t)p;
    atomic_fetch_add(&hd.runs[i], 1);
    if (i == 0) {
        atomic_store(&hd.first_running, 1);
        await_flag(&hd.stopping);
        sched_yield(); /* give the stop a head start */
    }
    atomic_store(&hd.finished[i], 1);
}

static void hd_role(int who, long round, uint64_t *seed)
{
    (void)who;
    (void)round;
    await_flag(&hd.first_running);
    atomic_store(&hd.stopping, 1);
    skew(seed, 200);
    hd.stopped = ctx_after_stop(hd.h[72]);
    if (hd.stopped)
        T_EXPECT_EQ(atomic_load(&hd.runs[72]), 0);
    else
        T_EXPECT_EQ(atomic_load(&hd.finished[72]), 1);
}

T_CASE(after_stop_73_while_1_runs)
{
    long rounds = t_scale(100000), r, prevented = 0;
    long long t0 = t_now_ns();
    int64_t base = t_live_contexts();
    wd_start("after_stop_73_while_1_runs", NULL);
    crew_open(1, hd_role);
    for (r = 0; r < rounds && !FAILED() && in_budget(t0); r++) {
        T_EXPECT_ERR(ctx_with_cancel(ctx_background(), &hd.c), 0);
        atomic_store(&hd.first_running, 0);
        atomic_store(&hd.stopping, 0);
        for (int i = 0; i < HD_N; i++) {
            atomic_store(&hd.runs[i], 0);
            atomic_store(&hd.finished[i], 0);
            T_EXPECT_ERR(
                ctx_after_func(hd.c, hd_fn, (void *)(intptr_t)i, &hd.h[i]), 0);
        }
        crew_go(r);
        ctx_cancel(hd.c);
        crew_wait();
        for (int i = 0; i < HD_N; i++) {
            if (i == 72)
                continue;
            T_EXPECT_EQ(atomic_load(&hd.runs[i]), 1);
            T_EXPECT(!ctx_after_stop(hd.h[i]));
        }
        T_EXPECT_EQ(atomic_load(&hd.runs[72]), hd.stopped ? 0 : 1);
        prevented += hd.stopped;
        ctx_release(hd.c);
        wd_tick();
    }
    crew_close();
    wd_stop();
    T_EQ(t_live_contexts(), base);
    printf("  after_stop_73_while_1_runs: %ld rounds (%ld prevented) in "
           "%.2f s%s\n",
           r, prevented, (double)(t_now_ns() - t0) / 1e9,
           budget_note(r, rounds));
}

/* ------------------------------------------------------------ re-entrancy */

/*
 * RELIABILITY #4: an after-function on C (a child of P) that calls
 * ctx_cancel, ctx_with_cancel, ctx_with_timeout, ctx_after_func,
 * ctx_after_stop and ctx_release on C and on P, run by a cancel of C or
 * of P on another thread, or by the timer thread (C or P timed). No
 * deadlock (watchdog), every nested call behaves.
 */
struct re {
    ctx_t *p, *c;       /* fn owns one reference to each */
    ctx_after_t *self;  /* set before fn can run */
    ctx_after_t *later; /* on C, queued behind self, or NULL */
    ctx_after_t *on_p;  /* on P, registered first */
    atomic_int later_runs, on_p_runs, inner_runs;
    int stop_self, stop_later, stop_on_p;
    atomic_int done;
};

static void re_fn(void *arg)
{
    struct re *s = arg;
    ctx_t *x;
    ctx_after_t *h;

    /* Cancel C (done: nothing) and P (maybe a nested cancellation). */
    ctx_cancel(s->c);
    ctx_cancel_cause(s->p, EIO, "from fn");
    T_EXPECT(ctx_done(s->p));
    /* New children: born done. */
    T_EXPECT_ERR(ctx_with_cancel(s->c, &x), 0);
    T_EXPECT(ctx_done(x));
    ctx_release(x);
    T_EXPECT_ERR(ctx_with_timeout(s->p, CTX_HOUR, &x), 0);
    T_EXPECT(ctx_done(x));
    ctx_release(x);
    /* A live timer armed and disarmed from here (maybe the timer thread). */
    T_EXPECT_ERR(ctx_with_timeout(ctx_background(), CTX_HOUR, &x), 0);
    T_EXPECT(!ctx_done(x));
    ctx_cancel(x);
    ctx_release(x);
    /* Registrations on done contexts run at once, here. */
    T_EXPECT_ERR(ctx_after_func(s->c, count_run, &s->inner_runs, &h), 0);
    T_EXPECT_EQ(atomic_load(&s->inner_runs), 1);
    T_EXPECT(!ctx_after_stop(h));
    T_EXPECT_ERR(ctx_after_func(s->p, count_run, &s->inner_runs, &h), 0);
    T_EXPECT_EQ(atomic_load(&s->inner_runs), 2);
    T_EXPECT(!ctx_after_stop(h));
    /* Stops: self, one queued behind, one on P. */
    s->stop_self = ctx_after_stop(s->self);
    if (s->later)
        s->stop_later = ctx_after_stop(s->later);
    s->stop_on_p = ctx_after_stop(s->on_p);
    T_EXPECT_EQ(atomic_load(&s->on_p_runs), s->stop_on_p ? 0 : 1);
    /* fn's references: maybe the last ones but the registrations'. */
    ctx_release(s->c);
    ctx_release(s->p);
    atomic_store(&s->done, 1);
}

static struct {
    ctx_t *c; /* what the crew cancels, or NULL */
} re_target;

static void re_role(int who, long round, uint64_t *seed)
{
    (void)who;
    (void)round;
    skew(seed, 1000);
    if (re_target.c)
        ctx_cancel(re_target.c);
}

T_CASE(after_fn_reentrancy)
{
    long rounds = t_scale(100000), r;
    long long t0 = t_now_ns();
    int64_t base = t_live_contexts();
    uint64_t seed = 11;
    wd_start("after_fn_reentrancy", NULL);
    crew_open(1, re_role);
    for (r = 0; r < rounds && !FAILED() && in_budget(t0); r++) {
        struct re s;
        ctx_t *p, *c;
        int how = (int)(r % 4); /* cancel C, cancel P, C timed, P timed */
        ctx_time_t d = (ctx_time_t)rnd(&seed, 30) * CTX_MICROSECOND;
        memset(&s, 0, sizeof s);
        if (how == 3)
            T_EXPECT_ERR(ctx_with_timeout(ctx_background(), d, &p), 0);
        else
            T_EXPECT_ERR(ctx_with_cancel(ctx_background(), &p), 0);
        if (how == 2)
            T_EXPECT_ERR(ctx_with_timeout(p, d, &c), 0);
        else
            T_EXPECT_ERR(ctx_with_cancel(p, &c), 0);
        s.p = ctx_retain(p);
        s.c = ctx_retain(c);
        T_EXPECT_ERR(ctx_after_func(p, count_run, &s.on_p_runs, &s.on_p), 0);
        T_EXPECT_ERR(ctx_after_func(c, re_fn, &s, &s.self), 0);
        if (how < 2)
            T_EXPECT_ERR(ctx_after_func(c, count_run, &s.later_runs, &s.later),
                         0);
        re_target.c = how == 0 ? c : how == 1 ? p : NULL;
        crew_go(r);
        if (how >= 2) {
            /* Drop ours now: fn's may be the last. */
            ctx_release(c);
            ctx_release(p);
        }
        crew_wait();
        await_flag(&s.done);
        if (how < 2) {
            ctx_release(c);
            ctx_release(p);
        }
        T_EXPECT_EQ(s.stop_self, 0);
        T_EXPECT_EQ(s.stop_on_p, 0); /* P was done before fn ended */
        T_EXPECT_EQ(atomic_load(&s.on_p_runs), 1);
        if (how < 2)
            T_EXPECT_EQ(s.stop_later, 1);
        T_EXPECT_EQ(atomic_load(&s.later_runs), 0);
        T_EXPECT_EQ(settle(base), base);
        wd_tick();
    }
    crew_close();
    wd_stop();
    report("after_fn_reentrancy", r, rounds, t0);
}
