/* SPDX-License-Identifier: MIT */
/*
 * The counters of ctx_stats and the cancellation-latency histogram in the
 * Prometheus text exposition format (version 0.0.4).
 *
 * DESIGN
 *
 * The text is formatted into the caller's buffer with a bounded appender
 * that keeps counting past the end, so a caller learns the size it needs
 * in one call and nothing allocates (a /metrics handler can use a buffer
 * on its stack, a server under memory pressure can still answer). Values
 * are read once, before formatting: each family is self-consistent (the
 * histogram's buckets, _count and _sum come from one read), the families
 * are not one snapshot, as ctx_stats documents. Bucket bounds are printed
 * in seconds with %.9g, which gives the exact decimal of 1 us << i, and
 * the cumulative counts Prometheus expects.
 */
#define _DEFAULT_SOURCE
#include "internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct out {
    char *buf;
    size_t cap;
    size_t len; /* what the whole text needs so far */
};

__attribute__((format(printf, 2, 3))) static void put(struct out *o,
                                                      const char *fmt, ...)
{
    va_list ap;
    int n;
    size_t room = o->len < o->cap ? o->cap - o->len : 0;
    va_start(ap, fmt);
    n = vsnprintf(room ? o->buf + o->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n > 0)
        o->len += (size_t)n;
}

static void histogram(struct out *o, const ctx_latency_t *h)
{
    const char *n = "libctx_cancel_latency_seconds";
    int64_t cum = 0;
    put(o,
        "# HELP %s Time from a group context's cancellation to each of its "
        "tasks returning.\n# TYPE %s histogram\n",
        n, n);
    for (int i = 0; i < CTX_LATENCY_BUCKETS; i++) {
        cum += h->bucket[i];
        if (i == CTX_LATENCY_BUCKETS - 1)
            put(o, "%s_bucket{le=\"+Inf\"} %lld\n", n, (long long)cum);
        else
            put(o, "%s_bucket{le=\"%.9g\"} %lld\n", n,
                (double)ctx_latency_bound(i) / 1e9, (long long)cum);
    }
    put(o, "%s_sum %.9f\n%s_count %lld\n", n, (double)h->sum_ns / 1e9, n,
        (long long)cum);
}

int ctx_metrics_text(char *buf, size_t cap, size_t *len)
{
    struct out o = {buf, cap, 0};
    ctx_stats_t st;
    ctx_latency_t h;

    if (!buf && cap > 0)
        return EINVAL;
    ctx_stats(&st);
    ctx_cancel_latency(&h);
    {
        const struct {
            const char *name, *type, *help;
            int64_t v;
        } fam[] = {
            {"contexts", "gauge", "Live contexts.", st.contexts},
            {"timers", "gauge", "Armed deadline timers.", st.timers},
            {"tasks", "gauge", "Live group tasks, queued or running.",
             st.tasks},
            {"pool_threads", "gauge", "Worker pool threads.", st.pool_threads},
            {"pool_idle_threads", "gauge",
             "Worker pool threads waiting for work.", st.idle_threads},
            {"internal_threads", "gauge",
             "Threads libctx started and still runs.", st.internal_threads},
            {"fds", "gauge", "Descriptors libctx holds.", st.fds},
            {"subprocesses", "gauge", "Live subprocesses.", st.children},
            {"cancels_total", "counter", "Contexts that became done.",
             st.cancels},
            {"deadline_expiries_total", "counter", "Deadlines that fired.",
             st.deadline_expiries},
            {"interrupts_total", "counter",
             "Thread-interrupt signals sent (forced cancellation).",
             st.interrupts},
            {"kills_total", "counter",
             "Processes signalled to stop (forced cancellation).", st.kills},
        };
        for (size_t i = 0; i < sizeof fam / sizeof fam[0]; i++)
            put(&o,
                "# HELP libctx_%s %s\n# TYPE libctx_%s %s\nlibctx_%s %lld\n",
                fam[i].name, fam[i].help, fam[i].name, fam[i].type, fam[i].name,
                (long long)fam[i].v);
    }
    histogram(&o, &h);
    if (len)
        *len = o.len;
    return o.len < cap ? 0 : ENOSPC;
}

int ctx_metrics_write(int fd)
{
    char stack[4096], *p = stack;
    size_t need = 0, off = 0;
    int rc;

    if (fd < 0)
        return EINVAL;
    rc = ctx_metrics_text(stack, sizeof stack, &need);
    if (rc == ENOSPC) {
        if (!(p = ctx__malloc(need + 1)))
            return ENOMEM;
        rc = ctx_metrics_text(p, need + 1, &need);
    }
    while (rc == 0 && off < need) {
        ssize_t n = write(fd, p + off, need - off);
        if (n < 0 && errno != EINTR)
            rc = errno;
        else if (n > 0)
            off += (size_t)n;
    }
    if (p != stack)
        ctx__free(p);
    return rc;
}
