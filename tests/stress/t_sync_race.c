/* SPDX-License-Identifier: MIT */
/*
 * Races of the semaphore and the rate limiter (RELIABILITY G1, G2;
 * catalogue #1, #2): acquire against cancellation and release, a large
 * head never overtaken, lost wakeups of blocked acquirers, and limiter
 * waits against cancellation on the real and the test clock, 10^5 rounds
 * each with an exact invariant checked every round.
 */
#include "sync_race.h"

#include "internal.h"

#include <math.h>

/* ------------------------------------------------------------ acquire */

/*
 * Catalogue #1 for ctx_sem_acquire: the waiter A asks for `big` units with
 * a context the main thread cancels; units it lacks are released by
 * another thread (the main thread held them); B, with a context that never
 * ends, asks for one, before or behind A. All with 0-50 us of skew. A
 * either returns 0 holding its units or ECANCELED holding none; B always
 * gets through (a cancelled head lets it by); no moment sees more units
 * held than the capacity; afterwards every unit is back.
 */
#define SA_CAP 4

static struct {
    ctx_sem_t *s;
    ctx_t *c;
    int64_t big;
    int64_t held;       /* by the main thread, given back by the releaser */
    atomic_long inside; /* units held, by everyone */
    atomic_int over;    /* inside exceeded the capacity */
    int rc_a, rc_b;
} sa;

static void sa_hold(int64_t n, uint64_t *seed)
{
    if (atomic_fetch_add(&sa.inside, n) + n > SA_CAP)
        atomic_store(&sa.over, 1);
    skew_us(seed, 5);
    atomic_fetch_sub(&sa.inside, n);
    ctx_sem_release(sa.s, n);
}

static void sa_role(int who, long round, uint64_t *seed)
{
    (void)round;
    if (who == 0) {
        skew_us(seed, 20);
        sa.rc_a = ctx_sem_acquire(sa.s, sa.c, sa.big);
        if (sa.rc_a == 0)
            sa_hold(sa.big, seed);
    } else if (who == 1) {
        skew_us(seed, 30);
        sa.rc_b = ctx_sem_acquire(sa.s, ctx_background(), 1);
        if (sa.rc_b == 0)
            sa_hold(1, seed);
    } else {
        skew_us(seed, 50);
        atomic_fetch_sub(&sa.inside, sa.held);
        ctx_sem_release(sa.s, sa.held);
    }
}

/* Every unit of s is free: take them all and give them back. */
static int sem_all_free(ctx_sem_t *s, int64_t cap)
{
    if (!ctx_sem_try_acquire(s, cap))
        return 0;
    ctx_sem_release(s, cap);
    return 1;
}

T_CASE(sem_acquire_races_cancel_and_release)
{
    long rounds = t_scale(100000), r, got = 0, cancelled = 0;
    long long t0 = t_now_ns();
    uint64_t seed = 11;
    T_OK(ctx_sem_new(SA_CAP, &sa.s));
    wd_start("sem_acquire_races_cancel_and_release", NULL);
    crew_open(3, sa_role);
    for (r = 0; r < rounds && !FAILED() && in_budget(t0); r++) {
        sa.big = 1 + (int64_t)rnd(&seed, SA_CAP);
        sa.held = (int64_t)rnd(&seed, SA_CAP + 1);
        T_EXPECT(ctx_sem_try_acquire(sa.s, sa.held));
        atomic_store(&sa.inside, sa.held);
        T_EXPECT_ERR(ctx_with_cancel(ctx_background(), &sa.c), 0);
        sa.rc_a = sa.rc_b = -1;
        crew_go(r);
        skew_us(&seed, 50);
        ctx_cancel(sa.c);
        crew_wait();
        if (sa.rc_a != 0 && sa.rc_a != ECANCELED)
            T_EXPECT_ERR(sa.rc_a, ECANCELED);
        T_EXPECT_ERR(sa.rc_b, 0);
        got += sa.rc_a == 0;
        cancelled += sa.rc_a == ECANCELED;
        T_EXPECT_EQ(atomic_load(&sa.over), 0);
        T_EXPECT_EQ(atomic_load(&sa.inside), 0);
        if (!sem_all_free(sa.s, SA_CAP)) {
            fprintf(stderr, "  round %ld: units lost (A wanted %lld: %s)\n", r,
                    (long long)sa.big, ctx_errname(sa.rc_a));
            T_EXPECT(0);
        }
        ctx_release(sa.c);
        wd_tick();
    }
    crew_close();
    wd_stop();
    ctx_sem_free(sa.s);
    report_outcomes("sem_acquire_races_cancel_and_release", r, rounds, t0,
                    "acquired", got, "cancelled", cancelled);
    T_GT(got, 0);
    T_GT(cancelled, 0);
}

/* ------------------------------------------------------------ FIFO */

/*
 * A waiter for the whole capacity queues first; three small waiters queue
 * behind it while the main thread releases the units one at a time. Free
 * units fit the small ones long before the big one, but it is at the head:
 * it must be served first (grant order 0), whatever the interleaving of
 * the releases with the small waiters' arrival.
 */
#define SF_CAP   4
#define SF_SMALL 3

static struct {
    ctx_sem_t *s;
    atomic_int queued; /* the big waiter is in the queue */
    atomic_int next;   /* grant order */
    int order[1 + SF_SMALL];
    int64_t want[1 + SF_SMALL];
} sf;

static void sf_role(int who, long round, uint64_t *seed)
{
    (void)round;
    if (who > 0) {
        await_flag(&sf.queued);
        skew_us(seed, 20);
    }
    T_EXPECT_ERR(ctx_sem_acquire(sf.s, ctx_background(), sf.want[who]), 0);
    sf.order[who] = atomic_fetch_add(&sf.next, 1);
    skew_us(seed, 3);
    ctx_sem_release(sf.s, sf.want[who]);
}

T_CASE(sem_big_head_never_overtaken)
{
    long rounds = t_scale(100000), r;
    long long t0 = t_now_ns();
    uint64_t seed = 5;
    T_OK(ctx_sem_new(SF_CAP, &sf.s));
    wd_start("sem_big_head_never_overtaken", NULL);
    crew_open(1 + SF_SMALL, sf_role);
    for (r = 0; r < rounds && !FAILED() && in_budget(t0); r++) {
        T_EXPECT(ctx_sem_try_acquire(sf.s, SF_CAP));
        atomic_store(&sf.queued, 0);
        atomic_store(&sf.next, 0);
        sf.want[0] = SF_CAP;
        for (int i = 1; i <= SF_SMALL; i++)
            sf.want[i] = 1 + (int64_t)rnd(&seed, 2);
        crew_go(r);
        /* try_acquire(0) fails only while someone is queued. */
        while (ctx_sem_try_acquire(sf.s, 0))
            sched_yield();
        atomic_store(&sf.queued, 1);
        for (int i = 0; i < SF_CAP; i++) {
            skew_us(&seed, 10);
            ctx_sem_release(sf.s, 1);
        }
        crew_wait();
        if (sf.order[0] != 0)
            fprintf(stderr, "  round %ld: the big waiter came %d\n", r,
                    sf.order[0]);
        T_EXPECT_EQ(sf.order[0], 0);
        T_EXPECT(sem_all_free(sf.s, SF_CAP));
        wd_tick();
    }
    crew_close();
    wd_stop();
    ctx_sem_free(sf.s);
    report("sem_big_head_never_overtaken (1 big, 3 small)", r, rounds, t0);
}

/* ------------------------------------------------------------ wakeups */

/*
 * Lost wakeups (RELIABILITY #2 ii) for ctx_sem_acquire: four waiters block
 * with a context that has no deadline of theirs, racing its end (direct
 * cancel, a parent's, or a 0-50 us deadline). In half the rounds the main
 * thread also releases the one unit, racing that end. Every waiter must
 * return (a 5 s watchdog), with 0 (only if the unit was released) or the
 * context's error; afterwards the unit is free.
 */
#define SL_N 4

static struct {
    ctx_sem_t *s;
    struct ending e;
    atomic_int state[SL_N]; /* 0 idle, 1 acquiring, 2 returned */
    int rc[SL_N];
    atomic_int inside, over;
} sl;

static void sl_stuck(void)
{
    for (int i = 0; i < SL_N; i++)
        fprintf(stderr, "  waiter %d: %s\n", i,
                atomic_load(&sl.state[i]) == 1 ? "in ctx_sem_acquire"
                                               : "not blocked");
}

static void sl_role(int who, long round, uint64_t *seed)
{
    (void)round;
    skew_us(seed, 20);
    atomic_store(&sl.state[who], 1);
    sl.rc[who] = ctx_sem_acquire(sl.s, sl.e.c, 1);
    atomic_store(&sl.state[who], 2);
    if (sl.rc[who] == 0) {
        if (atomic_fetch_add(&sl.inside, 1) != 0)
            atomic_store(&sl.over, 1);
        atomic_fetch_sub(&sl.inside, 1);
        ctx_sem_release(sl.s, 1);
    }
}

T_CASE(sem_lost_wakeups)
{
    long rounds = t_scale(100000), r, granted = 0;
    long long t0 = t_now_ns();
    uint64_t seed = 19;
    T_OK(ctx_sem_new(1, &sl.s));
    wd_start("sem_lost_wakeups", sl_stuck);
    crew_open(SL_N, sl_role);
    for (r = 0; r < rounds && !FAILED() && in_budget(t0); r++) {
        int release = (int)(r / END_KINDS % 2);
        int first = release && rnd(&seed, 2); /* release before the end */
        T_EXPECT_ERR(ending_open(&sl.e, (int)(r % END_KINDS), &seed), 0);
        T_EXPECT(ctx_sem_try_acquire(sl.s, 1));
        for (int i = 0; i < SL_N; i++)
            atomic_store(&sl.state[i], 0);
        crew_go(r);
        skew_us(&seed, 50);
        if (first)
            ctx_sem_release(sl.s, 1);
        ending_fire(&sl.e);
        if (release && !first) {
            skew_us(&seed, 10);
            ctx_sem_release(sl.s, 1);
        }
        crew_wait();
        for (int i = 0; i < SL_N; i++) {
            if (sl.rc[i] == 0 && release) {
                granted++;
                continue;
            }
            T_EXPECT_ERR(sl.rc[i], ending_err(&sl.e));
        }
        T_EXPECT_EQ(atomic_load(&sl.over), 0);
        if (!release)
            ctx_sem_release(sl.s, 1);
        T_EXPECT(sem_all_free(sl.s, 1));
        ending_close(&sl.e);
        wd_tick();
    }
    crew_close();
    wd_stop();
    ctx_sem_free(sl.s);
    printf("  sem_lost_wakeups (4 waiters): %ld rounds, %ld grants, in "
           "%.2f s%s\n",
           r, granted, (double)(t_now_ns() - t0) / 1e9, budget_note(r, rounds));
}

/* ------------------------------------------------------------ limiter */

/*
 * Catalogue #1 for ctx_limiter_wait on the real clock: an empty bucket
 * refilling at one token per 10 us, a wait for 1-5 tokens (10-50 us), and
 * a cancel 0-80 us after it starts. The wait either returns 0 having
 * taken its tokens or ECANCELED having given them back: the tokens read
 * after it are those read before, plus the refill in between (known to a
 * fraction of a token from clock readings on either side), minus n only
 * on success.
 */
#define LR_RATE     1e5
#define LR_BURST    1000000
#define LR_CLOCK_NS 200 /* the fast clock's ordering slack, both ends */

static struct {
    ctx_limiter_t *l;
    ctx_t *c;
    int64_t n;
    int rc;
} lr;

static void lr_role(int who, long round, uint64_t *seed)
{
    (void)who;
    (void)round;
    (void)seed;
    lr.rc = ctx_limiter_wait(lr.l, lr.c, lr.n);
}

/*
 * The tokens now, with the time they were read at (the middle of two clock
 * readings) and the uncertainty of that time (their distance). The clock
 * is the limiter's own (the TSC-based reading of CLOCK_MONOTONIC, tens of
 * ns from clock_gettime, and unordered by as much: LR_CLOCK_NS is added
 * to the uncertainty): the check is of the tokens, to a few 0.01.
 */
static double lr_tokens(ctx_limiter_t *l, ctx_time_t *at, ctx_time_t *width)
{
    double v = 0;
    for (int i = 0; i < 100; i++) {
        ctx_time_t a = ctx__now_fast();
        v = ctx_limiter_tokens(l);
        ctx_time_t b = ctx__now_fast();
        *at = a + (b - a) / 2;
        *width = b - a;
        if (*width < 2 * CTX_MICROSECOND)
            break;
    }
    return v;
}

T_CASE(limiter_wait_races_cancel_real_clock)
{
    long rounds = t_scale(100000), r, ok = 0, back = 0, unsure = 0, bad = 0;
    long long t0 = t_now_ns();
    uint64_t seed = 31;
    wd_start("limiter_wait_races_cancel_real_clock", NULL);
    crew_open(1, lr_role);
    for (r = 0; r < rounds && !FAILED() && in_budget(t0); r++) {
        ctx_time_t tb, wb, ta, wa;
        double before, after, want, tol;
        T_EXPECT_ERR(ctx_limiter_new(LR_RATE, LR_BURST, &lr.l), 0);
        T_EXPECT(ctx_limiter_allow_n(lr.l, LR_BURST)); /* empty */
        T_EXPECT_ERR(ctx_with_cancel(ctx_background(), &lr.c), 0);
        lr.n = 1 + (int64_t)rnd(&seed, 5);
        lr.rc = -1;
        before = lr_tokens(lr.l, &tb, &wb);
        crew_go(r);
        skew_us(&seed, 80);
        ctx_cancel(lr.c);
        crew_wait();
        after = lr_tokens(lr.l, &ta, &wa);
        want = before + LR_RATE * (double)(ta - tb) / 1e9 -
               (lr.rc == 0 ? (double)lr.n : 0);
        tol = LR_RATE * ((double)(wa + wb) / 2 + LR_CLOCK_NS) / 1e9 + 1e-6;
        if (lr.rc != 0 && lr.rc != ECANCELED)
            T_EXPECT_ERR(lr.rc, ECANCELED);
        if (wa >= 2 * CTX_MICROSECOND || wb >= 2 * CTX_MICROSECOND) {
            unsure++; /* preempted while reading: no exact answer */
        } else if (fabs(after - want) > tol) {
            if (!bad++)
                fprintf(stderr,
                        "  round %ld: wait(%lld) gave %s; tokens %.3f, "
                        "want %.3f (off by %.3f)\n",
                        r, (long long)lr.n, ctx_errname(lr.rc), after, want,
                        after - want);
        } else if (lr.rc == 0) {
            ok++;
        } else {
            back++;
        }
        ctx_release(lr.c);
        ctx_limiter_free(lr.l);
        wd_tick();
    }
    crew_close();
    wd_stop();
    report_outcomes("limiter_wait_races_cancel_real_clock", r, rounds, t0,
                    "took", ok, "gave back", back);
    if (bad)
        fprintf(stderr,
                "  %ld of %ld rounds: the tokens do not match the result\n",
                bad, r);
    printf("  (%ld rounds not checked: preempted while reading)\n", unsure);
    T_EQ(bad, 0);
    T_GT(ok, 0);
    T_GT(back, 0);
}

/*
 * The same on the test clock, exactly: one token per virtual millisecond,
 * a wait for 1-3 tokens, and, racing it, a thread moving the clock by a
 * random amount (0, just short of the wait, just enough, just over, or
 * more) while the main thread cancels. Afterwards the tokens are exactly
 * the advance's refill, minus n only if the wait returned 0.
 */
#define LT_RATE  1000.0
#define LT_BURST 10

static struct {
    ctx_limiter_t *l;
    ctx_t *c;
    int64_t n;
    ctx_time_t adv;
    int rc;
} lt;

static void lt_role(int who, long round, uint64_t *seed)
{
    (void)round;
    if (who == 0) {
        skew_us(seed, 10);
        lt.rc = ctx_limiter_wait(lt.l, lt.c, lt.n);
    } else {
        skew_us(seed, 30);
        T_EXPECT_ERR(ctx_testclock_advance(lt.adv), 0);
    }
}

T_CASE(limiter_wait_races_cancel_test_clock)
{
    long rounds = t_scale(100000), r, ok = 0, back = 0, bad = 0;
    long long t0 = t_now_ns();
    uint64_t seed = 37;
    T_OK(ctx_testclock_enable());
    wd_start("limiter_wait_races_cancel_test_clock", NULL);
    crew_open(2, lt_role);
    for (r = 0; r < rounds && !FAILED() && in_budget(t0); r++) {
        ctx_time_t d;
        double after, want;
        T_EXPECT_ERR(ctx_limiter_new(LT_RATE, LT_BURST, &lt.l), 0);
        T_EXPECT(ctx_limiter_allow_n(lt.l, LT_BURST));
        T_EXPECT_ERR(ctx_with_cancel(ctx_background(), &lt.c), 0);
        lt.n = 1 + (int64_t)rnd(&seed, 3);
        d = lt.n * CTX_MILLISECOND;
        switch (rnd(&seed, 5)) {
        case 0:
            lt.adv = 0;
            break;
        case 1:
            lt.adv = d - 1;
            break;
        case 2:
            lt.adv = d;
            break;
        case 3:
            lt.adv = d + 1;
            break;
        default:
            lt.adv = d + (ctx_time_t)rnd(&seed, 1000) * CTX_MICROSECOND;
        }
        lt.rc = -1;
        crew_go(r);
        skew_us(&seed, 50);
        ctx_cancel(lt.c);
        crew_wait();
        after = ctx_limiter_tokens(lt.l);
        want = LT_RATE * (double)lt.adv / 1e9 - (lt.rc == 0 ? (double)lt.n : 0);
        if (lt.rc != 0 && lt.rc != ECANCELED)
            T_EXPECT_ERR(lt.rc, ECANCELED);
        if (fabs(after - want) > 1e-9) {
            if (!bad++)
                fprintf(stderr,
                        "  round %ld: wait(%lld), clock moved %lld ns: %s; "
                        "tokens %.6f, want %.6f\n",
                        r, (long long)lt.n, (long long)lt.adv,
                        ctx_errname(lt.rc), after, want);
        } else if (lt.rc == 0) {
            ok++;
        } else {
            back++;
        }
        ctx_release(lt.c);
        ctx_limiter_free(lt.l);
        wd_tick();
    }
    crew_close();
    wd_stop();
    ctx_testclock_disable();
    report_outcomes("limiter_wait_races_cancel_test_clock", r, rounds, t0,
                    "took", ok, "gave back", back);
    if (bad)
        fprintf(stderr,
                "  %ld of %ld rounds: the tokens do not match the result\n",
                bad, r);
    T_EQ(bad, 0);
    T_GT(ok, 0);
    T_GT(back, 0);
}
