/* SPDX-License-Identifier: MIT */
/*
 * For t_obs_prom: make some of everything the metrics count (contexts
 * cancelled, a deadline expired, cancellation-latency samples), let it
 * settle, then write ctx_metrics_write to stdout and, to stderr, the same
 * figures as ctx_stats and ctx_cancel_latency give them, one "name value"
 * a line, for tests/prom_check.py to compare after parsing.
 */
#include <ctx/ctx.h>

#include <stdio.h>
#include <stdlib.h>

static int wait_then_linger(ctx_t *c, void *arg)
{
    (void)arg;
    ctx_wait(c, CTX_NO_DEADLINE);
    return 0;
}

int main(void)
{
    ctx_group_t *g;
    ctx_t *expired, *live;
    ctx_stats_t st;
    ctx_latency_t h;

    if (ctx_group_new(ctx_background(), &g) != 0)
        return 1;
    for (int i = 0; i < 5; i++)
        if (ctx_group_go(g, wait_then_linger, NULL) != 0)
            return 1;
    ctx_sleep(ctx_background(), 20 * CTX_MILLISECOND);
    ctx_cancel(ctx_group_ctx(g));
    ctx_group_free(g);
    if (ctx_with_timeout(ctx_background(), CTX_MILLISECOND, &expired) != 0 ||
        ctx_with_timeout(ctx_background(), CTX_HOUR, &live) != 0)
        return 1;
    ctx_wait(expired, CTX_NO_DEADLINE);
    /* The timer thread counts the expiry and drops the timer just after
     * the cancellation that ended the wait: let it finish. */
    ctx_sleep(ctx_background(), 100 * CTX_MILLISECOND);
    fflush(stdout);
    if (ctx_metrics_write(1) != 0)
        return 1;
    ctx_stats(&st);
    ctx_cancel_latency(&h);
    fprintf(stderr,
            "contexts %lld\ntimers %lld\ncancels_total %lld\n"
            "deadline_expiries_total %lld\nlatency_count %lld\n"
            "latency_sum_ns %lld\n",
            (long long)st.contexts, (long long)st.timers, (long long)st.cancels,
            (long long)st.deadline_expiries, (long long)h.count,
            (long long)h.sum_ns);
    ctx_release(expired);
    ctx_cancel(live);
    ctx_release(live);
    return 0;
}
