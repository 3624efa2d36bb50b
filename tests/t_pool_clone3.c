/* SPDX-License-Identifier: MIT */
/*
 * Run by strace_clone3.sh under `strace -f -e inject=clone3:...`:
 * groups of tasks that sleep a little, so that the pool starts workers
 * (and the thread that watches them) while a chosen clone3 fails with
 * EAGAIN. Every ctx_group_go must return 0 or EAGAIN, every accepted task
 * must run exactly once, every wait must return, nothing may be left. No
 * harness here: t.h starts a watchdog thread, which would take the
 * injected failure; the script bounds the run with timeout(1).
 */
#define _POSIX_C_SOURCE 200809L
#include "bare.h"
#include <ctx/ctx.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ROUNDS 4
#define TASKS  8

static int nap(ctx_t *c, void *arg)
{
    struct timespec ts = {0, 2000000};
    (void)c;
    nanosleep(&ts, NULL);
    atomic_fetch_add((atomic_int *)arg, 1);
    return 0;
}

int main(void)
{
    atomic_int runs = 0;
    int accepted = 0, refused = 0;
    ctx_stats_t st;

    if (!traced()) {
        printf("SKIP: not under strace (run me through "
               "strace_clone3.sh)\n");
        return 77;
    }
    for (int r = 0; r < ROUNDS; r++) {
        ctx_group_t *g;
        CHECK(ctx_group_new(ctx_background(), &g) == 0);
        if (failures)
            break;
        for (int i = 0; i < TASKS; i++) {
            int rc = ctx_group_go(g, nap, &runs);
            CHECK(rc == 0 || rc == EAGAIN);
            accepted += rc == 0;
            refused += rc == EAGAIN;
        }
        CHECK(ctx_group_wait(g) == 0);
        ctx_group_free(g);
    }
    CHECK(atomic_load(&runs) == accepted);
    ctx_stats(&st);
    CHECK(st.tasks == 0);
    CHECK(ctx_leak_check(500 * CTX_MILLISECOND) == 0);
    printf("%d accepted, %d refused (EAGAIN), %d ran: %s\n", accepted, refused,
           atomic_load(&runs), failures ? "FAIL" : "ok");
    return failures ? 1 : 0;
}
