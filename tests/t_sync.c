/* SPDX-License-Identifier: MIT */
/*
 * The weighted semaphore and the rate limiter (SPEC §2): FIFO order,
 * cancellation without a trace, exact token arithmetic on the test clock,
 * reservations, and bad input.
 */
#include "t.h"

#include "internal.h"

#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------ semaphore */

T_CASE(sem_basic)
{
    ctx_sem_t *s;
    T_OK(ctx_sem_new(5, &s));
    T_OK(ctx_sem_acquire(s, ctx_background(), 3));
    T_TRUE(ctx_sem_try_acquire(s, 2));
    T_FALSE(ctx_sem_try_acquire(s, 1));
    T_OK(ctx_sem_acquire(s, ctx_background(), 0));
    ctx_sem_release(s, 4);
    T_TRUE(ctx_sem_try_acquire(s, 4));
    T_FALSE(ctx_sem_try_acquire(s, 1));
    ctx_sem_release(s, 5);
    T_TRUE(ctx_sem_try_acquire(s, 5));
    ctx_sem_release(s, 5);
    ctx_sem_free(s);
}

T_CASE(sem_bad_input)
{
    ctx_sem_t *s = (ctx_sem_t *)&s;
    T_ERR(ctx_sem_new(-1, &s), EINVAL);
    T_NULL(s);
    T_ERR(ctx_sem_new(1, NULL), EINVAL);
    T_OK(ctx_sem_new(2, &s));
    T_ERR(ctx_sem_acquire(s, ctx_background(), -1), EINVAL);
    T_ERR(ctx_sem_acquire(s, ctx_background(), 3), EINVAL);
    T_ERR(ctx_sem_acquire(s, NULL, 1), EINVAL);
    T_ERR(ctx_sem_acquire(NULL, ctx_background(), 1), EINVAL);
    T_FALSE(ctx_sem_try_acquire(s, -1));
    T_FALSE(ctx_sem_try_acquire(NULL, 1));
    ctx_sem_release(NULL, 1);
    ctx_sem_release(s, -1);
    T_TRUE(ctx_sem_try_acquire(s, 2)); /* nothing changed */
    ctx_sem_release(s, 2);
    ctx_sem_free(s);
    ctx_sem_free(NULL);
}

#ifndef CTX_DEBUG
T_CASE(sem_release_more_than_held_changes_nothing)
{
    ctx_sem_t *s;
    T_OK(ctx_sem_new(4, &s));
    T_TRUE(ctx_sem_try_acquire(s, 1));
    ctx_sem_release(s, 3); /* misuse: only 1 held */
    T_TRUE(ctx_sem_try_acquire(s, 3));
    T_FALSE(ctx_sem_try_acquire(s, 1));
    ctx_sem_release(s, 4);
    ctx_sem_free(s);
}
#endif

T_CASE(sem_done_context_takes_nothing)
{
    ctx_sem_t *s;
    ctx_t *c;
    T_OK(ctx_sem_new(1, &s));
    T_OK(ctx_with_cancel(ctx_background(), &c));
    ctx_cancel(c);
    T_ERR(ctx_sem_acquire(s, c, 1), ECANCELED);
    T_TRUE(ctx_sem_try_acquire(s, 1));
    ctx_sem_release(s, 1);
    ctx_release(c);
    ctx_sem_free(s);
}

struct acq {
    ctx_sem_t *s;
    ctx_t *c;
    int64_t n;
    atomic_int rc;
    atomic_int order; /* when it returned */
};

static atomic_int order_counter;

static void *acquirer(void *p)
{
    struct acq *a = p;
    int rc = ctx_sem_acquire(a->s, a->c, a->n);
    atomic_store(&a->order, atomic_fetch_add(&order_counter, 1));
    atomic_store(&a->rc, rc);
    return NULL;
}

static void start_acq(pthread_t *t, struct acq *a, ctx_sem_t *s, ctx_t *c,
                      int64_t n)
{
    a->s = s;
    a->c = c;
    a->n = n;
    atomic_store(&a->rc, -1);
    pthread_create(t, NULL, acquirer, a);
    t_sleep_ns(20000000LL); /* let it queue */
}

T_CASE(sem_fifo_large_head_not_overtaken)
{
    ctx_sem_t *s;
    pthread_t ta, tb;
    struct acq a, b;
    T_OK(ctx_sem_new(10, &s));
    T_OK(ctx_sem_acquire(s, ctx_background(), 10));
    start_acq(&ta, &a, s, ctx_background(), 10); /* head: wants all */
    start_acq(&tb, &b, s, ctx_background(), 1);  /* behind it */
    ctx_sem_release(s, 1);
    t_sleep_ns(20000000LL);
    T_EQ(atomic_load(&b.rc), -1);       /* 1 unit free, but a is first */
    T_FALSE(ctx_sem_try_acquire(s, 1)); /* nor may newcomers take it */
    ctx_sem_release(s, 9);
    pthread_join(ta, NULL);
    T_OK(atomic_load(&a.rc));
    T_EQ(atomic_load(&b.rc), -1);
    ctx_sem_release(s, 10);
    pthread_join(tb, NULL);
    T_OK(atomic_load(&b.rc));
    ctx_sem_release(s, 1);
    T_TRUE(ctx_sem_try_acquire(s, 10));
    ctx_sem_release(s, 10);
    ctx_sem_free(s);
}

T_CASE(sem_cancelled_head_lets_others_through)
{
    ctx_sem_t *s;
    ctx_t *ca;
    pthread_t ta, tb;
    struct acq a, b;
    T_OK(ctx_sem_new(10, &s));
    T_OK(ctx_with_cancel(ctx_background(), &ca));
    T_OK(ctx_sem_acquire(s, ctx_background(), 5));
    start_acq(&ta, &a, s, ca, 10);              /* blocks the queue */
    start_acq(&tb, &b, s, ctx_background(), 2); /* fits, but behind */
    T_EQ(atomic_load(&b.rc), -1);
    ctx_cancel(ca);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    T_ERR(atomic_load(&a.rc), ECANCELED);
    T_OK(atomic_load(&b.rc));
    /* No trace of a: 7 in use. */
    T_TRUE(ctx_sem_try_acquire(s, 3));
    T_FALSE(ctx_sem_try_acquire(s, 1));
    ctx_sem_release(s, 10);
    ctx_release(ca);
    ctx_sem_free(s);
}

T_CASE(sem_acquire_deadline_on_test_clock)
{
    ctx_sem_t *s;
    ctx_t *c;
    pthread_t t;
    struct acq a;
    T_OK(ctx_testclock_enable());
    T_OK(ctx_sem_new(1, &s));
    T_OK(ctx_sem_acquire(s, ctx_background(), 1));
    T_OK(ctx_with_timeout(ctx_background(), 5 * CTX_SECOND, &c));
    start_acq(&t, &a, s, c, 1);
    T_OK(ctx_testclock_advance(4 * CTX_SECOND));
    t_sleep_ns(10000000LL);
    T_EQ(atomic_load(&a.rc), -1);
    T_OK(ctx_testclock_advance(CTX_SECOND));
    pthread_join(t, NULL);
    T_ERR(atomic_load(&a.rc), ETIMEDOUT);
    ctx_sem_release(s, 1);
    T_TRUE(ctx_sem_try_acquire(s, 1));
    ctx_sem_release(s, 1);
    ctx_release(c);
    ctx_sem_free(s);
    ctx_testclock_disable();
}

struct churn {
    ctx_sem_t *s;
    long iters;
    atomic_long *inside;
    atomic_int bad;
};

static void *sem_churn(void *p)
{
    struct churn *c = p;
    for (long i = 0; i < c->iters; i++) {
        if (ctx_sem_acquire(c->s, ctx_background(), 2) != 0) {
            atomic_store(&c->bad, 1);
            continue;
        }
        if (atomic_fetch_add(c->inside, 2) + 2 > 3)
            atomic_store(&c->bad, 2);
        atomic_fetch_sub(c->inside, 2);
        ctx_sem_release(c->s, 2);
    }
    return NULL;
}

T_CASE(sem_never_over_capacity)
{
    enum { N = 4 };
    ctx_sem_t *s;
    pthread_t t[N];
    struct churn c[N];
    atomic_long inside = 0;
    T_OK(ctx_sem_new(3, &s)); /* only one holder of 2 fits */
    for (int i = 0; i < N; i++) {
        c[i].s = s;
        c[i].iters = t_scale(50000);
        c[i].inside = &inside;
        atomic_store(&c[i].bad, 0);
        T_OK(pthread_create(&t[i], NULL, sem_churn, &c[i]));
    }
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        T_EQ(atomic_load(&c[i].bad), 0);
    }
    T_TRUE(ctx_sem_try_acquire(s, 3));
    ctx_sem_release(s, 3);
    ctx_sem_free(s);
}

/* ------------------------------------------------------------ limiter */

T_CASE(limiter_bad_input)
{
    ctx_limiter_t *l = (ctx_limiter_t *)&l;
    ctx_reservation_t r;
    T_ERR(ctx_limiter_new(-1, 1, &l), EINVAL);
    T_NULL(l);
    T_ERR(ctx_limiter_new(NAN, 1, &l), EINVAL);
    T_ERR(ctx_limiter_new(1, -1, &l), EINVAL);
    T_ERR(ctx_limiter_new(1, 1, NULL), EINVAL);
    T_OK(ctx_limiter_new(10, 2, &l));
    T_ERR(ctx_limiter_wait(l, ctx_background(), 3), EINVAL); /* > burst */
    T_ERR(ctx_limiter_wait(l, ctx_background(), -1), EINVAL);
    T_ERR(ctx_limiter_wait(l, NULL, 1), EINVAL);
    T_ERR(ctx_limiter_wait(NULL, ctx_background(), 1), EINVAL);
    T_ERR(ctx_limiter_reserve(l, -1, &r), EINVAL);
    T_ERR(ctx_limiter_reserve(l, 1, NULL), EINVAL);
    T_ERR(ctx_limiter_set(l, NAN, 1), EINVAL);
    T_ERR(ctx_limiter_set(l, 1, -1), EINVAL);
    T_FALSE(ctx_limiter_allow(NULL));
    T_FALSE(ctx_limiter_allow_n(l, -1));
    T_TRUE(ctx_limiter_allow_n(l, 2)); /* nothing consumed by the above */
    ctx_limiter_free(l);
    ctx_limiter_free(NULL);
}

T_CASE(limiter_allow_is_exact)
{
    ctx_limiter_t *l;
    T_OK(ctx_testclock_enable());
    T_OK(ctx_limiter_new(2, 3, &l)); /* 2 a second, burst 3, starts full */
    T_TRUE(ctx_limiter_allow(l));
    T_TRUE(ctx_limiter_allow(l));
    T_TRUE(ctx_limiter_allow(l));
    T_FALSE(ctx_limiter_allow(l));
    T_OK(ctx_testclock_advance(500 * CTX_MILLISECOND - 1));
    T_FALSE(ctx_limiter_allow(l));
    T_OK(ctx_testclock_advance(1));
    T_TRUE(ctx_limiter_allow(l)); /* one token per 500 ms */
    T_FALSE(ctx_limiter_allow(l));
    T_OK(ctx_testclock_advance(10 * CTX_SECOND)); /* capped at the burst */
    T_TRUE(ctx_limiter_allow_n(l, 3));
    T_FALSE(ctx_limiter_allow(l));
    ctx_limiter_free(l);
    ctx_testclock_disable();
}

T_CASE(limiter_inf_and_zero)
{
    ctx_limiter_t *l;
    T_OK(ctx_limiter_new(CTX_RATE_INF, 0, &l));
    for (int i = 0; i < 1000; i++)
        T_TRUE(ctx_limiter_allow(l));
    T_OK(ctx_limiter_wait(l, ctx_background(), 1000000));
    ctx_limiter_free(l);
    T_OK(ctx_limiter_new(0, 2, &l)); /* the burst, never refilled */
    T_TRUE(ctx_limiter_allow(l));
    T_TRUE(ctx_limiter_allow(l));
    T_FALSE(ctx_limiter_allow(l));
    ctx_limiter_free(l);
}

struct lwait {
    ctx_limiter_t *l;
    ctx_t *c;
    int64_t n;
    atomic_int rc;
};

static void *lwaiter(void *p)
{
    struct lwait *w = p;
    atomic_store(&w->rc, ctx_limiter_wait(w->l, w->c, w->n));
    return NULL;
}

T_CASE(limiter_wait_sleeps_the_exact_time)
{
    ctx_limiter_t *l;
    pthread_t t;
    struct lwait w;
    T_OK(ctx_testclock_enable());
    T_OK(ctx_limiter_new(1, 2, &l));
    T_OK(ctx_limiter_wait(l, ctx_background(), 2)); /* available: at once */
    w.l = l;
    w.c = ctx_background();
    w.n = 2;
    atomic_store(&w.rc, -1);
    T_OK(pthread_create(&t, NULL, lwaiter, &w));
    t_sleep_ns(20000000LL);
    T_OK(ctx_testclock_advance(2 * CTX_SECOND - 1));
    t_sleep_ns(20000000LL);
    T_EQ(atomic_load(&w.rc), -1);
    T_OK(ctx_testclock_advance(1));
    pthread_join(t, NULL);
    T_OK(atomic_load(&w.rc));
    T_FALSE(ctx_limiter_allow(l));
    ctx_limiter_free(l);
    ctx_testclock_disable();
}

T_CASE(limiter_wait_past_deadline_fails_at_once)
{
    ctx_limiter_t *l;
    ctx_t *c;
    T_OK(ctx_testclock_enable());
    T_OK(ctx_limiter_new(1, 1, &l));
    T_TRUE(ctx_limiter_allow(l)); /* empty: next token in 1 s */
    T_OK(ctx_with_timeout(ctx_background(), 500 * CTX_MILLISECOND, &c));
    T_ERR(ctx_limiter_wait(l, c, 1), ETIMEDOUT); /* no waiting */
    T_EQ(ctx_err(c), 0);
    /* Nothing consumed: the token is there after one second. */
    T_OK(ctx_testclock_advance(CTX_SECOND));
    T_TRUE(ctx_limiter_allow(l));
    ctx_release(c);
    ctx_limiter_free(l);
    ctx_testclock_disable();
}

T_CASE(limiter_cancelled_wait_gives_tokens_back)
{
    ctx_limiter_t *l;
    ctx_t *c;
    pthread_t t;
    struct lwait w;
    T_OK(ctx_testclock_enable());
    T_OK(ctx_limiter_new(1, 3, &l));
    T_TRUE(ctx_limiter_allow_n(l, 3));
    T_OK(ctx_with_cancel(ctx_background(), &c));
    w.l = l;
    w.c = c;
    w.n = 3;
    atomic_store(&w.rc, -1);
    T_OK(pthread_create(&t, NULL, lwaiter, &w));
    t_sleep_ns(20000000LL);
    T_TRUE(ctx_limiter_tokens(l) < -2.9); /* reserved ahead */
    ctx_cancel(c);
    pthread_join(t, NULL);
    T_ERR(atomic_load(&w.rc), ECANCELED);
    T_TRUE(fabs(ctx_limiter_tokens(l)) < 1e-9); /* back to empty */
    T_OK(ctx_testclock_advance(CTX_SECOND));
    T_TRUE(ctx_limiter_allow(l));
    ctx_release(c);
    ctx_limiter_free(l);
    ctx_testclock_disable();
}

T_CASE(limiter_reservations)
{
    ctx_limiter_t *l;
    ctx_reservation_t a, b, bad;
    T_OK(ctx_testclock_enable());
    T_OK(ctx_limiter_new(1, 5, &l));
    T_OK(ctx_limiter_reserve(l, 5, &a));
    T_TRUE(ctx_reservation_ok(&a));
    T_EQ(ctx_reservation_delay(&a), 0);
    T_OK(ctx_limiter_reserve(l, 2, &b));
    T_TRUE(ctx_reservation_ok(&b));
    T_EQ(ctx_reservation_delay(&b), 2 * CTX_SECOND);
    T_OK(ctx_limiter_reserve(l, 6, &bad));
    T_FALSE(ctx_reservation_ok(&bad));
    T_EQ(ctx_reservation_delay(&bad), CTX_NO_DEADLINE);
    ctx_reservation_cancel(&bad); /* not OK: nothing to give back */
    ctx_reservation_cancel(&b);   /* the latest: all of it comes back */
    T_TRUE(fabs(ctx_limiter_tokens(l)) < 1e-9);
    T_FALSE(ctx_reservation_ok(&b));
    ctx_reservation_cancel(&b); /* twice: nothing */
    T_TRUE(fabs(ctx_limiter_tokens(l)) < 1e-9);
    T_OK(ctx_testclock_advance(CTX_SECOND));
    T_EQ(ctx_reservation_delay(&a), 0);
    T_TRUE(ctx_limiter_allow(l));
    ctx_limiter_free(l);
    ctx_testclock_disable();
}

T_CASE(limiter_set_changes_rate)
{
    ctx_limiter_t *l;
    T_OK(ctx_testclock_enable());
    T_OK(ctx_limiter_new(1, 1, &l));
    T_TRUE(ctx_limiter_allow(l));
    T_OK(ctx_limiter_set(l, 10, 1));
    T_OK(ctx_testclock_advance(100 * CTX_MILLISECOND));
    T_TRUE(ctx_limiter_allow(l));
    T_FALSE(ctx_limiter_allow(l));
    ctx_limiter_free(l);
    ctx_testclock_disable();
}

/* ------------------------------------------------------------ fast clock */

/* The kernel reads time through the TSC here: ours must be in use then. */
static bool clocksource_is_tsc(void)
{
    char buf[16] = "";
    int fd = open("/sys/devices/system/clocksource/clocksource0/"
                  "current_clocksource",
                  O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    if (read(fd, buf, sizeof buf - 1) < 0)
        buf[0] = 0;
    close(fd);
    return strcmp(buf, "tsc\n") == 0;
}

#define FC_SLACK (1 * CTX_MICROSECOND)

static atomic_long fc_outside; /* readings outside their bracket */
static atomic_long fc_reads;

/* For 300 ms (calibration and six resyncs): every reading lies between
 * the real clock read just before and just after it, give or take the
 * fast clock's allowed error. */
static void *fc_reader(void *arg)
{
    ctx_time_t end = ctx__real_now() + 300 * CTX_MILLISECOND;
    long n = 0, bad = 0;
    (void)arg;
    for (;;) {
        ctx_time_t r1 = ctx__real_now();
        ctx_time_t f = ctx__tsc_now();
        ctx_time_t r2 = ctx__real_now();
        if (f < r1 - FC_SLACK || f > r2 + FC_SLACK)
            bad++;
        n++;
        if (r2 >= end)
            break;
    }
    atomic_fetch_add(&fc_outside, bad);
    atomic_fetch_add(&fc_reads, n);
    return NULL;
}

T_CASE(fast_clock_tracks_the_monotonic_clock)
{
    pthread_t t[3];
    long reads, outside;
    for (int i = 0; i < 3; i++)
        T_EQ(pthread_create(&t[i], NULL, fc_reader, NULL), 0);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    reads = atomic_load(&fc_reads);
    outside = atomic_load(&fc_outside);
    T_GT(reads, 1000);
    T_EQ(outside, 0);
    if (clocksource_is_tsc())
        T_TRUE(ctx__tsc_active());
    else
        T_FALSE(ctx__tsc_active());
}

/* On the real clock: 2000 tokens a second, burst 20, asked for as fast
 * as possible for 250 ms, grants the burst plus 500, never more (+1 for a
 * reading at the end). Less only by tokens that overflowed the bucket
 * while the loop was off the CPU: a pause of over 1 ms (the loop drains
 * the bucket in microseconds otherwise) is counted as lost in full, as
 * two pauses close together can overflow it between them. */
T_CASE(limiter_rate_on_the_real_clock)
{
    ctx_limiter_t *l;
    long granted = 0, refill;
    ctx_time_t t0, end, prev, now, paused = 0;
    T_OK(ctx_limiter_new(2000, 20, &l));
    t0 = prev = ctx__real_now();
    end = t0 + 250 * CTX_MILLISECOND;
    while ((now = ctx__real_now()) < end) {
        if (now - prev > CTX_MILLISECOND)
            paused += now - prev;
        prev = now;
        granted += ctx_limiter_allow(l);
    }
    while (ctx_limiter_allow(l)) /* what came during the last pause */
        granted++;
    end = ctx__real_now();
    ctx_limiter_free(l);
    refill = (long)((end - t0) * 2000 / CTX_SECOND);
    T_LE(granted, 20 + refill + 1);
    T_GE(granted, 20 + refill - (long)(paused * 2000 / CTX_SECOND) - 3);
}

T_CASE(fast_clock_off_reads_the_real_clock)
{
    ctx_time_t r1, f, r2;
    ctx__tsc_off();
    T_FALSE(ctx__tsc_active());
    r1 = ctx__real_now();
    f = ctx__tsc_now();
    r2 = ctx__real_now();
    T_LE(r1, f);
    T_LE(f, r2);
}
