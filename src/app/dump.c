/* SPDX-License-Identifier: MIT */
/*
 * ctx_dump and ctx_leak_check: the counters and every live task, for
 * people looking at a process that does not stop, and for tests that
 * must end with nothing left behind (Go's goleak).
 *
 * DESIGN
 *
 * Both only read: gauges and per-thread counters through ctx_stats, the
 * tasks through the pool's dump (a sequence lock per worker, never a lock
 * a task holds), so they are safe while the process is stuck, which is
 * when they are wanted. The leak check counts what an object owns (a
 * context, a task, a subprocess, a descriptor of a context or process)
 * and leaves out what libctx keeps for the life of a thread or of the
 * process (ctx__kept_fds).
 */
#define _DEFAULT_SOURCE
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <time.h>

int ctx_dump(int fd)
{
    ctx_stats_t st;

    if (fd < 0)
        return EINVAL;
    ctx_stats(&st);
    dprintf(fd,
            "libctx %s: %lld contexts, %lld timers, %lld tasks, "
            "%lld pool threads (%lld idle), %lld internal threads, "
            "%lld descriptors, %lld subprocesses; %lld cancels, "
            "%lld deadline expiries, %lld interrupts, %lld kills\n",
            ctx_version(), (long long)st.contexts, (long long)st.timers,
            (long long)st.tasks, (long long)st.pool_threads,
            (long long)st.idle_threads, (long long)st.internal_threads,
            (long long)st.fds, (long long)st.children, (long long)st.cancels,
            (long long)st.deadline_expiries, (long long)st.interrupts,
            (long long)st.kills);
    ctx__pool_dump(fd);
    return 0;
}

struct leftovers {
    int64_t kinds[CTX__KINDS];
    int64_t contexts, tasks, timers, children, fds;
};

/* What is live. Timers are reported, but each lives in a live context,
 * so they are not counted twice. */
static int64_t leftover(struct leftovers *l)
{
    ctx_stats_t st;
    ctx_stats(&st);
    l->contexts = ctx__live_contexts(l->kinds);
    l->tasks = st.tasks;
    l->timers = st.timers;
    l->children = st.children;
    l->fds = st.fds - atomic_load(&ctx__kept_fds);
    if (l->fds < 0)
        l->fds = 0;
    return l->contexts + l->tasks + l->children + l->fds;
}

int ctx_leak_check(ctx_time_t grace)
{
    static const char *const kind_names[CTX__KINDS] = {
        "cancel", "deadline", "value", "without_cancel", "merge"};
    struct leftovers l;
    int64_t left;
    ctx_time_t end = ctx__time_add(ctx__real_now(), grace > 0 ? grace : 0);
    ctx_time_t pause = CTX_MICROSECOND;

    for (;;) {
        ctx_time_t now, d;
        struct timespec ts;
        left = leftover(&l);
        if (left == 0)
            return 0;
        now = ctx__real_now();
        if (now >= end)
            break;
        d = end - now < pause ? end - now : pause;
        ts.tv_sec = (time_t)(d / CTX_SECOND);
        ts.tv_nsec = (long)(d % CTX_SECOND);
        nanosleep(&ts, NULL);
        if (pause < 100 * CTX_MILLISECOND)
            pause *= 2;
    }
    fprintf(stderr,
            "libctx: leak check: %lld left after %lld ms:", (long long)left,
            (long long)(grace / CTX_MILLISECOND));
    for (int i = 0; i < CTX__KINDS; i++)
        if (l.kinds[i])
            fprintf(stderr, " %lld %s context(s);", (long long)l.kinds[i],
                    kind_names[i]);
    fprintf(stderr,
            " %lld armed timer(s); %lld task(s); %lld subprocess(es); "
            "%lld descriptor(s)\n",
            (long long)l.timers, (long long)l.tasks, (long long)l.children,
            (long long)l.fds);
    fflush(stderr);
    if (l.tasks)
        ctx__pool_dump(2);
    return left > INT32_MAX ? INT32_MAX : (int)left;
}
