/* SPDX-License-Identifier: MIT */
/*
 * The timer thread failing to start (RELIABILITY #14). It starts on the
 * first deadline armed in the process, so this program arms none before:
 * its failure must be that call's EAGAIN with nothing changed, and the
 * next call must start it and see its deadline fire.
 */
#include "t.h"

#include "internal.h"

static int sentinel;
#define SENTINEL ((ctx_t *)(void *)&sentinel)

static void check_stats(const ctx_stats_t *s0)
{
    ctx_stats_t s;
    T_OK(ctx_stats(&s));
    T_EQ(s.contexts, s0->contexts);
    T_EQ(s.timers, 0);
    T_EQ(s.cancels, s0->cancels);
    T_EQ(s.internal_threads, 0);
}

T_CASE(timer_thread_start_fails_then_recovers)
{
    ctx_t *p, *kid, *c;
    ctx_stats_t s0, s1;
    ctx_time_t t0;
    const char *why;
    long h0 = ctx__fault_hits(CTX__FAULT_THREAD_CREATE);

    T_OK(ctx_with_cancel(ctx_background(), &p));
    T_OK(ctx_with_cancel(p, &kid));
    T_OK(ctx_stats(&s0));
    T_EQ(s0.internal_threads, 0); /* no deadline armed yet */
    T_EQ(s0.timers, 0);

    /* Deadlines that need no timer do not need the thread. */
    ctx__fault_arm(CTX__FAULT_THREAD_CREATE, 1, 1);
    T_OK(ctx_with_timeout(p, 0, &c));
    T_ERR(ctx_err(c), ETIMEDOUT);
    ctx_release(c);
    T_OK(ctx_with_deadline(p, CTX_NO_DEADLINE, &c));
    T_ERR(ctx_err(c), 0);
    ctx_release(c);
    ctx__fault_disarm_all();
    T_EQ(ctx__fault_hits(CTX__FAULT_THREAD_CREATE), h0);
    T_OK(ctx_stats(&s0));

    /* Once: the call fails, nothing changed. */
    ctx__fault_arm(CTX__FAULT_THREAD_CREATE, 1, 0);
    c = SENTINEL;
    T_ERR(ctx_with_timeout(p, 10 * CTX_MILLISECOND, &c), EAGAIN);
    ctx__fault_disarm_all();
    T_NULL(c);
    T_EQ(ctx__fault_hits(CTX__FAULT_THREAD_CREATE), h0 + 1);
    check_stats(&s0);

    /* For good: every kind of armed deadline fails the same way. */
    ctx__fault_arm(CTX__FAULT_THREAD_CREATE, 1, 1);
    c = SENTINEL;
    T_ERR(ctx_with_deadline(p, ctx_now() + CTX_SECOND, &c), EAGAIN);
    T_NULL(c);
    c = SENTINEL;
    T_ERR(ctx_with_deadline_cause(p, ctx_now() + CTX_SECOND, EPROTO,
                                  "text freed", &c),
          EAGAIN);
    T_NULL(c);
    c = SENTINEL;
    T_ERR(ctx_with_timeout(ctx_background(), CTX_SECOND, &c), EAGAIN);
    T_NULL(c);
    ctx__fault_disarm_all();
    T_EQ(ctx__fault_hits(CTX__FAULT_THREAD_CREATE), h0 + 4);
    check_stats(&s0);
    T_ERR(ctx_err(kid), 0);

    /* The next call starts the thread; the deadline fires, not early. */
    t0 = ctx_now();
    T_OK(ctx_with_timeout(p, 20 * CTX_MILLISECOND, &c));
    T_OK(ctx_stats(&s1));
    T_EQ(s1.internal_threads, 1);
    T_LE(s1.timers, 1); /* 0 if it fired already (a loaded machine) */
    T_OK(ctx_wait(c, 30 * CTX_SECOND));
    T_GE(ctx_now() - t0, 20 * CTX_MILLISECOND);
    T_ERR(ctx_err(c), ETIMEDOUT);
    T_ERR(ctx_cause(c, &why), ETIMEDOUT);
    T_NULL(why);
    T_ERR(ctx_err(p), 0);
    ctx_release(c);

    /* The parent still works. */
    ctx_cancel(p);
    T_ERR(ctx_err(kid), ECANCELED);
    ctx_release(kid);
    ctx_release(p);
    /* The timer thread drops its reference to c just after firing it. */
    T_EQ(ctx_leak_check(2 * CTX_SECOND), 0);
    T_OK(ctx_stats(&s1));
    T_EQ(s1.timers, 0);
}
