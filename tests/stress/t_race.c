/* SPDX-License-Identifier: MIT */
/*
 * Races of the context core (RELIABILITY G1, G2; catalogue #2, #16):
 * simultaneous cancels, cancel against release, creation and after_stop,
 * lost wakeups, the last release by a woken waiter, and deadlines against
 * cancel and release, each run 10^5 times or more (CTX_TEST_SCALE lowers
 * it under sanitizers) with an exact invariant checked every round.
 */
#include "race.h"

#include <poll.h>

static int key;

/* ------------------------------------------------------------ cancels */

/*
 * Go's TestSimultaneousCancels: a DAG of 1111 contexts (a tree of fan-out
 * 10, four levels, with timed, value and merged nodes), and 8 threads that
 * each cancel every node, in their own random order, with their own cause.
 * Every node must end done with the first cause that reached it: its own
 * cancellation's, or one a parent has (so, by induction, the cause of the
 * first cancellation on a path from the named ancestor).
 */
#define SC_N       1111
#define SC_THREADS 8

static struct {
    ctx_t *node[SC_N];
    int parent[SC_N][2]; /* -1: none */
    char text[SC_THREADS][SC_N][12];
    int perm[SC_THREADS][SC_N];
} sc;

static void sc_role(int who, long round, uint64_t *seed)
{
    int *perm = sc.perm[who];
    (void)round;
    for (int i = 0; i < SC_N; i++)
        perm[i] = i;
    for (int i = SC_N - 1; i > 0; i--) {
        int j = (int)rnd(seed, (unsigned)i + 1), x = perm[i];
        perm[i] = perm[j];
        perm[j] = x;
    }
    skew(seed, 2000);
    for (int i = 0; i < SC_N; i++)
        ctx_cancel_cause(sc.node[perm[i]], 1000 + who, sc.text[who][perm[i]]);
}

static void sc_build(void)
{
    T_OK(ctx_with_cancel(ctx_background(), &sc.node[0]));
    sc.parent[0][0] = sc.parent[0][1] = -1;
    for (int i = 1; i < SC_N; i++) {
        int p = (i - 1) / 10, g = p ? (p - 1) / 10 : -1;
        ctx_t *pc = sc.node[p];
        sc.parent[i][0] = p;
        sc.parent[i][1] = -1;
        if (i % 7 == 3) {
            T_OK(ctx_with_timeout(pc, CTX_HOUR, &sc.node[i]));
        } else if (i % 7 == 5) {
            T_OK(ctx_with_value(pc, &key, NULL, NULL, &sc.node[i]));
        } else if (i % 7 == 6 && g >= 0) {
            ctx_t *ps[2] = {pc, sc.node[g]};
            T_OK(ctx_merge(ps, 2, &sc.node[i]));
            sc.parent[i][1] = g;
        } else {
            T_OK(ctx_with_cancel(pc, &sc.node[i]));
        }
    }
}

/* Check node i: done, with the first cause that reached it. */
static void sc_check(int i)
{
    const char *why = NULL, *pwhy;
    int code = ctx_cause(sc.node[i], &why), w = -1, x = -1, ok = 0;
    T_EXPECT_ERR(ctx_err(sc.node[i]), ECANCELED);
    if (!why || sscanf(why, "%d:%d", &w, &x) != 2) {
        T_EXPECT(why != NULL && 0);
        return;
    }
    T_EXPECT_EQ(code, 1000 + w);
    if (x == i)
        return; /* its own cancellation came first */
    for (int k = 0; k < 2; k++) {
        int p = sc.parent[i][k];
        if (p >= 0 && ctx_cause(sc.node[p], &pwhy) == code && pwhy &&
            strcmp(pwhy, why) == 0)
            ok = 1;
    }
    if (!ok)
        fprintf(stderr, "  node %d has cause %s, no parent has\n", i, why);
    T_EXPECT(ok);
}

T_CASE(simultaneous_cancels)
{
    /* Under TSan a round costs ~15x more: a fifth of the rounds. */
    long rounds = at_least(
             t_scale(20000) / (strcmp(t_sanitizer(), "thread") ? 1 : 5), 20),
         r;
    long long t0 = t_now_ns();
    int64_t base = t_live_contexts();
    for (int w = 0; w < SC_THREADS; w++)
        for (int i = 0; i < SC_N; i++)
            snprintf(sc.text[w][i], sizeof sc.text[w][i], "%d:%d", w, i);
    wd_start("simultaneous_cancels", NULL);
    crew_open(SC_THREADS, sc_role);
    for (r = 0; r < rounds && !FAILED() && in_budget(t0); r++) {
        ctx_stats_t st;
        sc_build();
        if (FAILED())
            break;
        crew_go(r);
        crew_wait();
        for (int i = 0; i < SC_N; i++)
            sc_check(i);
        for (int i = SC_N - 1; i >= 0; i--)
            ctx_release(sc.node[i]);
        ctx_stats(&st);
        T_EXPECT_EQ(st.contexts, base);
        T_EXPECT_EQ(st.timers, 0);
        wd_tick();
    }
    crew_close();
    wd_stop();
    report("simultaneous_cancels (1111 contexts x 8 threads)", r, rounds, t0);
}

/*
 * ctx_cancel_cause: "Before the call returns, c and all of its
 * descendants are done", also for a call that finds c done while the
 * first cancellation (another thread, or the timer thread) still
 * propagates: as in Go, where the second cancel waits for the first one's
 * lock, it must not return before every descendant is done. The children
 * here have an eventfd, so they are not leaves: the first cancellation
 * visits them after it has published c as done, and writing their
 * eventfds makes that last longer than a time slice.
 */
#define SEC_N 8000

static struct {
    ctx_t *root;
    ctx_t *kid[SEC_N];
} sec;

static void *sec_cancel(void *arg)
{
    (void)arg;
    ctx_cancel_cause(sec.root, EOWNERDEAD, "first");
    return NULL;
}

T_CASE(second_cancel_returns_after_propagation)
{
    long rounds = at_least(t_scale(100), 10), r, bad_rounds = 0;
    long long t0 = t_now_ns();
    int64_t base = t_live_contexts();
    for (r = 0; r < rounds && in_budget(t0); r++) {
        pthread_t t;
        int timer = r % 2, not_done = 0;
        if (timer)
            T_OK(
                ctx_with_timeout(ctx_background(), CTX_MILLISECOND, &sec.root));
        else
            T_OK(ctx_with_cancel(ctx_background(), &sec.root));
        for (int i = 0; i < SEC_N; i++) {
            T_OK(ctx_with_cancel(sec.root, &sec.kid[i]));
            T_GE(ctx_fd(sec.kid[i]), 0);
        }
        if (!timer)
            T_OK(pthread_create(&t, NULL, sec_cancel, NULL));
        while (!ctx_done(sec.root))
            sched_yield();
        ctx_cancel_cause(sec.root, ENOTRECOVERABLE, "second");
        for (int i = 0; i < SEC_N; i++)
            not_done += !ctx_done(sec.kid[i]);
        if (not_done) {
            if (!bad_rounds)
                fprintf(stderr,
                        "  round %ld (%s first): %d of %d children not done "
                        "when the second ctx_cancel_cause returned\n",
                        r, timer ? "timer" : "thread", not_done, SEC_N);
            bad_rounds++;
        }
        if (!timer)
            pthread_join(t, NULL);
        for (int i = 0; i < SEC_N; i++) {
            T_OK(ctx_wait(sec.kid[i], 30 * CTX_SECOND));
            ctx_release(sec.kid[i]);
        }
        ctx_release(sec.root);
    }
    T_EQ(settle(base), base);
    report("second_cancel_returns_after_propagation", r, rounds, t0);
    if (bad_rounds)
        fprintf(stderr, "  %ld of %ld rounds had children not done\n",
                bad_rounds, r);
    T_EQ(bad_rounds, 0);
}

/* ------------------------------------------------------------ churn */

/*
 * A parent P is cancelled by one thread while another makes children of
 * every kind under it (releasing some at once, keeping others), a third
 * registers after-functions on it and stops them, and the main thread
 * drops its reference: every thread owns one reference to P, so any of
 * them may free it. A child made after the cancel returned must be born
 * done with P's cause; every kept child ends done; after-functions ran
 * exactly when their stop returned false; nothing is left.
 */
#define CH_KIDS  6
#define CH_AFTER 3

static struct {
    ctx_t *p;
    int timed_p;
    atomic_int cancelled; /* ctx_cancel_cause(p) has returned */
    ctx_t *kept[CH_KIDS];
    atomic_int runs[CH_AFTER];
    int stopped[CH_AFTER];
} ch;

static int ch_make(int kind, uint64_t *seed, ctx_t **out)
{
    ctx_t *ps[2];
    switch (kind) {
    case 0:
        return ctx_with_cancel(ch.p, out);
    case 1:
        return ctx_with_timeout(ch.p, rnd(seed, 50) * CTX_MICROSECOND, out);
    case 2:
        return ctx_with_value(ch.p, &key, NULL, NULL, out);
    case 3:
        ps[0] = ch.p;
        ps[1] = rnd(seed, 2) ? ch.p : ctx_background();
        return ctx_merge(ps, 2, out);
    case 4:
        return ctx_with_deadline_cause(ch.p, ctx_now() + CTX_HOUR, EPROTO,
                                       "never", out);
    default:
        return ctx_without_cancel(ch.p, out);
    }
}

static void ch_role(int who, long round, uint64_t *seed)
{
    ctx_after_t *h[CH_AFTER];
    int order[CH_AFTER] = {0, 1, 2};

    switch (who) {
    case 0: /* the canceller */
        skew(seed, 3000);
        ctx_cancel_cause(ch.p, ECONNRESET, "reset");
        atomic_store(&ch.cancelled, 1);
        break;
    case 1: /* makes children */
        for (int j = 0; j < CH_KIDS; j++) {
            int was = atomic_load(&ch.cancelled), pe, pc;
            ctx_t *kid = NULL, *g = NULL;
            T_EXPECT_ERR(ch_make(j, seed, &kid), 0);
            if (!kid)
                continue;
            if (was && j != 5) {
                /* Born after the cancel: done with P's cause. */
                pe = ctx_err(ch.p);
                pc = ctx_cause(ch.p, NULL);
                T_EXPECT_ERR(ctx_err(kid), pe);
                T_EXPECT_ERR(ctx_cause(kid, NULL), pc);
            }
            if (j == 5)
                T_EXPECT_ERR(ctx_err(kid), 0);
            if ((j + round) % 2) {
                ch.kept[j] = kid;
                continue;
            }
            if (rnd(seed, 2))
                T_EXPECT_ERR(ctx_with_cancel(kid, &g), 0);
            skew(seed, 500);
            ctx_release(kid);
            skew(seed, 500);
            ctx_release(g);
        }
        break;
    case 2: /* registers and stops after-functions */
        for (int k = 0; k < CH_AFTER; k++) {
            h[k] = NULL;
            T_EXPECT_ERR(ctx_after_func(ch.p, count_run, &ch.runs[k], &h[k]),
                         0);
            skew(seed, 300);
        }
        for (int k = CH_AFTER - 1; k > 0; k--) {
            int j = (int)rnd(seed, (unsigned)k + 1), x = order[k];
            order[k] = order[j];
            order[j] = x;
        }
        for (int k = 0; k < CH_AFTER; k++) {
            int i = order[k];
            bool r;
            skew(seed, 1000);
            r = ctx_after_stop(h[i]);
            /* false: fn has run and returned; true: it never will. */
            T_EXPECT_EQ(atomic_load(&ch.runs[i]), r ? 0 : 1);
            ch.stopped[i] = r;
        }
        break;
    }
    skew(seed, 500);
    ctx_release(ch.p);
}

/* Is (err, cause) one a kept child of kind j may end with? */
static int ch_cause_ok(int j, int err, int code, const char *why)
{
    if (j == 5)
        return err == 0;
    if (err == ECANCELED)
        return code == ECONNRESET && why && strcmp(why, "reset") == 0;
    if (err == ETIMEDOUT)
        return (ch.timed_p || j == 1) && code == ETIMEDOUT && !why;
    return 0;
}

T_CASE(cancel_release_create_stop)
{
    long rounds = t_scale(100000), r;
    long long t0 = t_now_ns();
    int64_t base = t_live_contexts();
    uint64_t seed = 42;
    wd_start("cancel_release_create_stop", NULL);
    crew_open(3, ch_role);
    for (r = 0; r < rounds && !FAILED() && in_budget(t0); r++) {
        ctx_stats_t st;
        int64_t live;
        ch.timed_p = r % 4 == 3;
        if (ch.timed_p)
            T_EXPECT_ERR(ctx_with_timeout(ctx_background(),
                                          rnd(&seed, 30) * CTX_MICROSECOND,
                                          &ch.p),
                         0);
        else
            T_EXPECT_ERR(ctx_with_cancel(ctx_background(), &ch.p), 0);
        for (int i = 0; i < 3; i++)
            ctx_retain(ch.p); /* one for each thread of the crew */
        atomic_store(&ch.cancelled, 0);
        for (int k = 0; k < CH_AFTER; k++)
            atomic_store(&ch.runs[k], 0);
        for (int j = 0; j < CH_KIDS; j++)
            ch.kept[j] = NULL;
        crew_go(r);
        skew(&seed, 3000);
        ctx_release(ch.p);
        crew_wait();
        /* No timer may be left armed (allowing the timer thread a moment
           to finish propagating an expiry of P). */
        T_EXPECT_EQ(settle_timers(), 0);
        for (int j = 0; j < CH_KIDS; j++) {
            const char *why;
            int err, code;
            if (!ch.kept[j])
                continue;
            /* The timer thread may still be propagating P's expiry. */
            if (j != 5)
                T_EXPECT_ERR(ctx_wait(ch.kept[j], 30 * CTX_SECOND), 0);
            err = ctx_err(ch.kept[j]);
            code = ctx_cause(ch.kept[j], &why);
            if (!ch_cause_ok(j, err, code, why))
                fprintf(stderr, "  kid %d: %s, cause %s %s\n", j,
                        ctx_errname(err), ctx_errname(code),
                        why ? why : "(none)");
            T_EXPECT(ch_cause_ok(j, err, code, why));
            ctx_release(ch.kept[j]);
        }
        for (int k = 0; k < CH_AFTER; k++)
            T_EXPECT_EQ(atomic_load(&ch.runs[k]), ch.stopped[k] ? 0 : 1);
        ctx_stats(&st);
        T_EXPECT_EQ(st.timers, 0);
        live = settle(base);
        T_EXPECT_EQ(live, base);
        wd_tick();
    }
    crew_close();
    wd_stop();
    report("cancel_release_create_stop", r, rounds, t0);
}

/* ------------------------------------------------------------ wakeups */

/*
 * Lost wakeups (RELIABILITY #2 ii): each round four waiters block without
 * a time limit, two in ctx_wait and two in poll on ctx_fd, racing one
 * cancellation: direct, through a parent, or by the timer thread. A
 * waiter still blocked 5 s later is a lost wakeup. The two ctx_fd calls,
 * racing each other and the cancel, must give the same descriptor.
 */
enum { W_IDLE, W_WAIT, W_POLL, W_DONE };

static struct {
    ctx_t *c;
    atomic_int state[4];
    int fd[4]; /* what ctx_fd gave each poll waiter */
} lw;

static void lw_stuck(void)
{
    static const char *const names[] = {"idle", "in ctx_wait", "in poll",
                                        "done"};
    for (int i = 0; i < 4; i++)
        fprintf(stderr, "  waiter %d: %s\n", i,
                names[atomic_load(&lw.state[i])]);
}

static void lw_role(int who, long round, uint64_t *seed)
{
    (void)round;
    skew(seed, 2000);
    if (who % 2 == 0) {
        atomic_store(&lw.state[who], W_WAIT);
        T_EXPECT_ERR(ctx_wait(lw.c, CTX_NO_DEADLINE), 0);
    } else {
        struct pollfd p;
        int n, fd = ctx_fd(lw.c);
        T_EXPECT(fd >= 0);
        lw.fd[who] = fd;
        p.fd = fd;
        p.events = POLLIN;
        p.revents = 0;
        atomic_store(&lw.state[who], W_POLL);
        while ((n = poll(&p, 1, -1)) < 0 && errno == EINTR)
            ;
        T_EXPECT_EQ(n, 1);
        T_EXPECT(p.revents & POLLIN);
    }
    atomic_store(&lw.state[who], W_DONE);
    T_EXPECT(ctx_done(lw.c));
}

T_CASE(lost_wakeups)
{
    long rounds = t_scale(100000), r;
    long long t0 = t_now_ns();
    int64_t base = t_live_contexts();
    uint64_t seed = 7;
    wd_start("lost_wakeups", lw_stuck);
    crew_open(4, lw_role);
    for (r = 0; r < rounds && !FAILED() && in_budget(t0); r++) {
        ctx_t *q = NULL;
        int how = (int)(r % 3);
        if (how == 0) {
            T_EXPECT_ERR(ctx_with_cancel(ctx_background(), &lw.c), 0);
        } else if (how == 1) {
            T_EXPECT_ERR(ctx_with_cancel(ctx_background(), &q), 0);
            T_EXPECT_ERR(ctx_with_cancel(q, &lw.c), 0);
        } else {
            T_EXPECT_ERR(ctx_with_timeout(ctx_background(),
                                          rnd(&seed, 50) * CTX_MICROSECOND,
                                          &lw.c),
                         0);
        }
        for (int i = 0; i < 4; i++)
            atomic_store(&lw.state[i], W_IDLE);
        crew_go(r);
        skew(&seed, 5000);
        if (how == 0)
            ctx_cancel(lw.c);
        else if (how == 1)
            ctx_cancel(q);
        crew_wait();
        T_EXPECT_ERR(ctx_err(lw.c), how == 2 ? ETIMEDOUT : ECANCELED);
        T_EXPECT_EQ(lw.fd[1], lw.fd[3]); /* one descriptor per context */
        T_EXPECT_EQ(ctx_fd(lw.c), lw.fd[1]);
        ctx_release(lw.c);
        ctx_release(q);
        wd_tick();
    }
    crew_close();
    wd_stop();
    T_EQ(settle(base), base);
    report("lost_wakeups (4 waiters)", r, rounds, t0);
}

/* ------------------------------------------------------------ lifetime */

/*
 * RELIABILITY #16: the canceller cancels P while the waiter, which owns
 * the only reference to P's child C, waits on C (ctx_wait or poll on
 * ctx_fd) and releases C the moment the wait returns, while the canceller
 * may still be inside ctx_cancel(P). A pipeline: the canceller hands C
 * over, waits until it is taken, cancels P and releases it.
 */
static struct {
    _Atomic(ctx_t *) slot; /* NULL: empty; &lr_stop: no more */
} lr;

static char lr_stop;
#define LR_STOP ((ctx_t *)(void *)&lr_stop)

static void *lr_waiter(void *arg)
{
    uint64_t seed = 99;
    (void)arg;
    for (long i = 0;; i++) {
        ctx_t *c;
        while (!(c = atomic_exchange(&lr.slot, NULL)))
            sched_yield();
        if (c == LR_STOP)
            return NULL;
        skew(&seed, 300);
        if (i % 2 == 0) {
            T_EXPECT_ERR(ctx_wait(c, CTX_NO_DEADLINE), 0);
        } else {
            struct pollfd p = {ctx_fd(c), POLLIN, 0};
            int n;
            T_EXPECT(p.fd >= 0);
            while ((n = poll(&p, 1, -1)) < 0 && errno == EINTR)
                ;
            T_EXPECT_EQ(n, 1);
        }
        ctx_release(c);
    }
}

/* Hand c to the waiter; return once it has taken it. */
static void lr_hand(ctx_t *c)
{
    atomic_store(&lr.slot, c);
    while (atomic_load(&lr.slot))
        sched_yield();
}

T_CASE(waiter_releases_last_reference)
{
    long rounds = t_scale(1000000), r;
    long long t0 = t_now_ns();
    int64_t base = t_live_contexts();
    uint64_t seed = 13;
    pthread_t t;
    atomic_store(&lr.slot, NULL);
    wd_start("waiter_releases_last_reference", NULL);
    T_OK(pthread_create(&t, NULL, lr_waiter, NULL));
    for (r = 0; r < rounds && !FAILED() && in_budget(t0); r++) {
        ctx_t *p = NULL, *c = NULL;
        T_EXPECT_ERR(ctx_with_cancel(ctx_background(), &p), 0);
        if (r % 4 < 2) /* a plain child, or a timed one (not a leaf) */
            T_EXPECT_ERR(ctx_with_cancel(p, &c), 0);
        else
            T_EXPECT_ERR(ctx_with_timeout(p, CTX_HOUR, &c), 0);
        if (!c)
            break;
        lr_hand(c);
        skew(&seed, 300);
        ctx_cancel(p);
        ctx_release(p);
        wd_tick();
    }
    lr_hand(LR_STOP);
    pthread_join(t, NULL);
    wd_stop();
    T_EQ(settle(base), base);
    report("waiter_releases_last_reference", r, rounds, t0);
}

/*
 * Freeing racing a cancel: a thread drops the last references of a
 * subtree of P (a chain k <- g, and a merge m of two children a and b,
 * whose release frees m, then a and b in one go) while the main thread
 * cancels P. A node whose count reached 0 is still linked in P until its
 * free unlinks it (waiting for P's lock); the cancel may meet it there and
 * must neither touch what the free is reusing nor free it twice.
 */
static struct {
    ctx_t *p, *k, *g, *a, *b, *m;
} fr;

static void fr_role(int who, long round, uint64_t *seed)
{
    (void)who;
    skew(seed, 2000);
    if (round % 2) {
        ctx_release(fr.k); /* g keeps it */
        ctx_release(fr.g); /* frees g, then k */
    }
    ctx_release(fr.a); /* m keeps a and b */
    ctx_release(fr.b);
    skew(seed, 200);
    ctx_release(fr.m); /* frees m, then b and a */
    if (!(round % 2)) {
        ctx_release(fr.k);
        ctx_release(fr.g);
    }
}

T_CASE(release_races_cancel)
{
    long rounds = t_scale(100000), r;
    long long t0 = t_now_ns();
    int64_t base = t_live_contexts();
    uint64_t seed = 29;
    wd_start("release_races_cancel", NULL);
    crew_open(1, fr_role);
    for (r = 0; r < rounds && !FAILED() && in_budget(t0); r++) {
        ctx_t *ps[2], *extra[8];
        T_EXPECT_ERR(ctx_with_cancel(ctx_background(), &fr.p), 0);
        /* Siblings, so that the cancel spends a while in P's list. */
        for (int i = 0; i < 4; i++)
            T_EXPECT_ERR(ctx_with_cancel(fr.p, &extra[i]), 0);
        T_EXPECT_ERR(ctx_with_cancel(fr.p, &fr.k), 0);
        T_EXPECT_ERR(ctx_with_cancel(fr.k, &fr.g), 0);
        T_EXPECT_ERR(ctx_with_cancel(fr.p, &fr.a), 0);
        T_EXPECT_ERR(ctx_with_cancel(fr.p, &fr.b), 0);
        ps[0] = fr.a;
        ps[1] = fr.b;
        T_EXPECT_ERR(ctx_merge(ps, 2, &fr.m), 0);
        for (int i = 4; i < 8; i++)
            T_EXPECT_ERR(ctx_with_cancel(fr.p, &extra[i]), 0);
        crew_go(r);
        skew(&seed, 3000);
        ctx_cancel(fr.p);
        crew_wait();
        for (int i = 0; i < 8; i++) {
            T_EXPECT_ERR(ctx_err(extra[i]), ECANCELED);
            ctx_release(extra[i]);
        }
        ctx_release(fr.p);
        T_EXPECT_EQ(t_live_contexts(), base);
        wd_tick();
    }
    crew_close();
    wd_stop();
    report("release_races_cancel", r, rounds, t0);
}

/* ------------------------------------------------------------ arming */

/*
 * Arming a deadline racing the cancellation of its parent: one thread
 * makes children with far deadlines under P while the main thread cancels
 * P. Every child ends done, and, once both calls have returned, no timer
 * may be left armed: a child cancelled between its linking and its arm
 * must not keep a live timer.
 */
#define AR_N 16

static struct {
    ctx_t *p;
    ctx_t *kid[AR_N];
} ar;

static void ar_role(int who, long round, uint64_t *seed)
{
    (void)who;
    skew(seed, 200);
    for (int i = 0; i < AR_N; i++) {
        ar.kid[i] = NULL;
        if ((i + round) % 2)
            T_EXPECT_ERR(ctx_with_timeout(ar.p, CTX_HOUR, &ar.kid[i]), 0);
        else
            T_EXPECT_ERR(ctx_with_deadline_cause(ar.p, ctx_now() + CTX_HOUR,
                                                 EPROTO, "far", &ar.kid[i]),
                         0);
    }
}

T_CASE(arm_races_parent_cancel)
{
    long rounds = t_scale(100000), r;
    long long t0 = t_now_ns();
    int64_t base = t_live_contexts();
    uint64_t seed = 23;
    wd_start("arm_races_parent_cancel", NULL);
    crew_open(1, ar_role);
    for (r = 0; r < rounds && !FAILED() && in_budget(t0); r++) {
        ctx_stats_t st;
        T_EXPECT_ERR(ctx_with_cancel(ctx_background(), &ar.p), 0);
        crew_go(r);
        skew(&seed, 3000);
        ctx_cancel_cause(ar.p, ECONNRESET, "reset");
        crew_wait();
        ctx_stats(&st);
        T_EXPECT_EQ(st.timers, 0);
        for (int i = 0; i < AR_N; i++) {
            T_EXPECT_ERR(ctx_cause(ar.kid[i], NULL), ECONNRESET);
            ctx_release(ar.kid[i]);
        }
        ctx_release(ar.p);
        ctx_stats(&st);
        T_EXPECT_EQ(st.timers, 0);
        T_EXPECT_EQ(st.contexts, base);
        wd_tick();
    }
    crew_close();
    wd_stop();
    report("arm_races_parent_cancel", r, rounds, t0);
}

/* ------------------------------------------------------------ deadlines */

/*
 * Deadlines of 0-100 us on the real clock racing cancellation and release
 * by other threads: every context still held ends done, with ETIMEDOUT
 * and a deadline cause, or ECANCELED and a cancel cause, of its own or of
 * its timed parent; no timer is left armed.
 */
#define DL_N 64

enum { DL_CANCEL, DL_DROP_EXTRA, DL_DROP_ONLY };

static struct {
    ctx_t *tp; /* a timed parent of every fourth context */
    int tp_cancelled;
    ctx_t *c[DL_N];
    int role[DL_N];
    int with_cause[DL_N]; /* made by ctx_with_deadline_cause */
} dl;

static void dl_role(int who, long round, uint64_t *seed)
{
    int order[DL_N];
    (void)round;
    for (int i = 0; i < DL_N; i++)
        order[i] = i;
    for (int i = DL_N - 1; i > 0; i--) {
        int j = (int)rnd(seed, (unsigned)i + 1), x = order[i];
        order[i] = order[j];
        order[j] = x;
    }
    if (who == 0 && dl.tp_cancelled) {
        skew(seed, 20000);
        ctx_cancel_cause(dl.tp, ENETDOWN, "parent cancelled");
    }
    for (int k = 0; k < DL_N; k++) {
        int i = order[k];
        if ((who == 0) != (dl.role[i] == DL_CANCEL))
            continue;
        skew(seed, 2000);
        if (who == 0)
            ctx_cancel_cause(dl.c[i], ECONNABORTED, "cancelled");
        else
            ctx_release(dl.c[i]);
    }
}

static int dl_text_is(const char *why, const char *want)
{
    return want ? why && strcmp(why, want) == 0 : why == NULL;
}

/* Does context i end as it may? */
static int dl_ok(int i, int err, int code, const char *why)
{
    int under_tp = i % 4 == 3;
    if (err == ETIMEDOUT) {
        if (dl.with_cause[i] && code == EPROTO)
            return dl_text_is(why, "own deadline");
        if (!dl.with_cause[i] && code == ETIMEDOUT && !why)
            return 1;
        return under_tp && code == ETIME && dl_text_is(why, "tp deadline");
    }
    if (err == ECANCELED) {
        if (dl.role[i] == DL_CANCEL && code == ECONNABORTED)
            return dl_text_is(why, "cancelled");
        return under_tp && dl.tp_cancelled && code == ENETDOWN &&
               dl_text_is(why, "parent cancelled");
    }
    return 0;
}

static int dl_tp_ok(void)
{
    const char *why;
    int err = ctx_err(dl.tp), code = ctx_cause(dl.tp, &why);
    if (err == ETIMEDOUT)
        return code == ETIME && dl_text_is(why, "tp deadline");
    return err == ECANCELED && dl.tp_cancelled && code == ENETDOWN &&
           dl_text_is(why, "parent cancelled");
}

T_CASE(deadlines_race_cancel_and_release)
{
    long rounds = at_least(t_scale(10000), 50), r, fired = 0;
    long long t0 = t_now_ns();
    int64_t base = t_live_contexts();
    uint64_t seed = 17;
    ctx_stats_t st0, st;
    T_EXPECT_ERR(ctx_stats(&st0), 0);
    wd_start("deadlines_race_cancel_and_release", NULL);
    crew_open(2, dl_role);
    for (r = 0; r < rounds && !FAILED() && in_budget(t0); r++) {
        int64_t live;
        dl.tp_cancelled = rnd(&seed, 2);
        T_EXPECT_ERR(
            ctx_with_deadline_cause(ctx_background(),
                                    ctx_now() + (ctx_time_t)rnd(&seed, 100) *
                                                    CTX_MICROSECOND,
                                    ETIME, "tp deadline", &dl.tp),
            0);
        for (int i = 0; i < DL_N; i++) {
            ctx_t *parent = i % 4 == 3 ? dl.tp : ctx_background();
            ctx_time_t d = (ctx_time_t)rnd(&seed, 100) * CTX_MICROSECOND;
            dl.with_cause[i] = rnd(&seed, 2);
            dl.role[i] = (int)rnd(&seed, 3);
            if (dl.with_cause[i])
                T_EXPECT_ERR(ctx_with_deadline_cause(parent, ctx_now() + d,
                                                     EPROTO, "own deadline",
                                                     &dl.c[i]),
                             0);
            else
                T_EXPECT_ERR(ctx_with_timeout(parent, d, &dl.c[i]), 0);
            if (dl.role[i] == DL_DROP_EXTRA)
                ctx_retain(dl.c[i]);
        }
        crew_go(r);
        crew_wait();
        for (int i = 0; i < DL_N; i++) {
            const char *why;
            int err, code;
            if (dl.role[i] == DL_DROP_ONLY)
                continue;
            T_EXPECT_ERR(ctx_wait(dl.c[i], 30 * CTX_SECOND), 0);
            err = ctx_err(dl.c[i]);
            code = ctx_cause(dl.c[i], &why);
            if (!dl_ok(i, err, code, why))
                fprintf(stderr, "  context %d (role %d): %s, cause %s %s\n", i,
                        dl.role[i], ctx_errname(err), ctx_errname(code),
                        why ? why : "(none)");
            T_EXPECT(dl_ok(i, err, code, why));
            ctx_release(dl.c[i]);
        }
        T_EXPECT_ERR(ctx_wait(dl.tp, 30 * CTX_SECOND), 0);
        T_EXPECT(dl_tp_ok());
        ctx_release(dl.tp);
        /* The timer thread may still be propagating tp's expiry. */
        T_EXPECT_EQ(settle_timers(), 0);
        live = settle(base);
        T_EXPECT_EQ(live, base);
        wd_tick();
    }
    crew_close();
    wd_stop();
    T_EXPECT_ERR(ctx_stats(&st), 0);
    fired = (long)(st.deadline_expiries - st0.deadline_expiries);
    printf("  deadlines_race_cancel_and_release: %ld rounds, %ld contexts, "
           "%ld deadlines fired, in %.2f s%s\n",
           r, r * (DL_N + 1), fired, (double)(t_now_ns() - t0) / 1e9,
           budget_note(r, rounds));
    T_GT(fired, 0);
}
