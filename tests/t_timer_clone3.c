/* SPDX-License-Identifier: MIT */
/*
 * Run by strace_clone3.sh under `strace -e inject=clone3:error=EAGAIN`,
 * aimed at the clone3 of the timer thread, the first thread the program
 * creates. ctx_with_timeout must return EAGAIN with nothing changed, and
 * the next call must succeed and its deadline fire. No harness here: t.h
 * starts a watchdog thread, which would take the injected failure.
 */
#include "bare.h"
#include <ctx/ctx.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    ctx_t *c = ctx_background();
    ctx_stats_t s;
    ctx_time_t t0;
    int rc;

    if (!traced()) {
        printf("SKIP: not under strace (run me through strace_clone3.sh)\n");
        return 77;
    }
    rc = ctx_with_timeout(ctx_background(), 10 * CTX_MILLISECOND, &c);
    printf("first ctx_with_timeout: %s\n", ctx_errname(rc));
    CHECK(rc == EAGAIN);
    CHECK(c == NULL);
    ctx_stats(&s);
    CHECK(s.contexts == 0);
    CHECK(s.timers == 0);
    CHECK(s.internal_threads == 0);

    t0 = ctx_now();
    rc = ctx_with_timeout(ctx_background(), 10 * CTX_MILLISECOND, &c);
    printf("second ctx_with_timeout: %s\n", ctx_errname(rc));
    CHECK(rc == 0);
    if (rc == 0) {
        ctx_stats(&s);
        CHECK(s.internal_threads == 1);
        CHECK(ctx_wait(c, 30 * CTX_SECOND) == 0);
        CHECK(ctx_now() - t0 >= 10 * CTX_MILLISECOND);
        CHECK(ctx_err(c) == ETIMEDOUT);
        ctx_release(c);
    }
    CHECK(ctx_leak_check(500 * CTX_MILLISECOND) == 0);
    printf("%s\n", failures ? "FAIL" : "ok");
    return failures ? 1 : 0;
}
