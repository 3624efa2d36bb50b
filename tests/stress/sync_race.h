/* SPDX-License-Identifier: MIT */
/*
 * What the races of the sync layer add to race.h: skew measured in
 * microseconds (RELIABILITY #1 asks for 0-50 us), the three ways a waiter's
 * context ends, and a tally of how the rounds of a race came out.
 */
#ifndef CTX_TEST_SYNC_RACE_H
#define CTX_TEST_SYNC_RACE_H

#include "race.h"

/*
 * Spin for a random 0 to max_us microseconds on the real clock, or, one
 * time in 16, yield instead, so that the threads of a round meet in every
 * order, including one preempted at the worst moment.
 */
static inline void skew_us(uint64_t *seed, unsigned max_us)
{
    uint64_t r = t_rand(seed);
    long long until;
    if (r % 16 == 0) {
        sched_yield();
        return;
    }
    until = t_now_ns() + (long long)((r >> 8) % ((uint64_t)max_us * 1000 + 1));
    while (t_now_ns() < until)
        ;
}

/*
 * How a round's waiters get their context: one the main thread cancels
 * (END_CANCEL), a child of one it cancels (END_PARENT), or one whose
 * deadline of 0-50 us fires on the timer thread (END_DEADLINE).
 */
enum { END_CANCEL, END_PARENT, END_DEADLINE, END_KINDS };

struct ending {
    int how;
    ctx_t *parent; /* END_PARENT: what is cancelled */
    ctx_t *c;      /* what the waiters use */
};

static inline int ending_open(struct ending *e, int how, uint64_t *seed)
{
    int rc;
    e->how = how;
    e->parent = NULL;
    e->c = NULL;
    switch (how) {
    case END_CANCEL:
        return ctx_with_cancel(ctx_background(), &e->c);
    case END_PARENT:
        if ((rc = ctx_with_cancel(ctx_background(), &e->parent)) != 0)
            return rc;
        return ctx_with_cancel(e->parent, &e->c);
    default:
        return ctx_with_timeout(ctx_background(),
                                (ctx_time_t)rnd(seed, 51) * CTX_MICROSECOND,
                                &e->c);
    }
}

/* End the context now (a deadline ends on its own). */
static inline void ending_fire(struct ending *e)
{
    if (e->how == END_CANCEL)
        ctx_cancel(e->c);
    else if (e->how == END_PARENT)
        ctx_cancel(e->parent);
}

/* The error the waiters must see once it has ended. */
static inline int ending_err(const struct ending *e)
{
    return e->how == END_DEADLINE ? ETIMEDOUT : ECANCELED;
}

static inline void ending_close(struct ending *e)
{
    ctx_release(e->c);
    ctx_release(e->parent);
    e->c = e->parent = NULL;
}

/* Print a race's report line with how its rounds came out. */
static inline void report_outcomes(const char *name, long done, long want,
                                   long long t0, const char *a, long na,
                                   const char *b, long nb)
{
    printf("  %s: %ld rounds in %.2f s (%s %ld, %s %ld)%s\n", name, done,
           (double)(t_now_ns() - t0) / 1e9, a, na, b, nb,
           budget_note(done, want));
}

#endif /* CTX_TEST_SYNC_RACE_H */
