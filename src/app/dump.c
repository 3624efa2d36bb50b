/* SPDX-License-Identifier: MIT */
/*
 * ctx_dump: the counters and every live task, for people looking at a
 * process that does not stop.
 */
#define _DEFAULT_SOURCE
#include "internal.h"

#include <errno.h>
#include <stdio.h>

int ctx_dump(int fd)
{
    ctx_stats_t st;

    if (fd < 0)
        return EINVAL;
    ctx_stats(&st);
    dprintf(fd,
            "libctx %s: %lld contexts, %lld timers, %lld tasks, "
            "%lld pool threads (%lld idle), %lld internal threads; "
            "%lld cancels, %lld deadline expiries\n",
            ctx_version(), (long long)st.contexts, (long long)st.timers,
            (long long)st.tasks, (long long)st.pool_threads,
            (long long)st.idle_threads, (long long)st.internal_threads,
            (long long)st.cancels, (long long)st.deadline_expiries);
    ctx__pool_dump(fd);
    return 0;
}
