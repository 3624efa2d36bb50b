/* SPDX-License-Identifier: MIT */
/*
 * Run by t_sig in a process of its own: what a signal does to a process
 * that called ctx_signal_init, as the exit status shows.
 *   sig_child plain       SIGTERM with no notify context: dies by SIGTERM
 *   sig_child ignored     SIGHUP ignored, no context: survives, exits 0
 *   sig_child second      TERM ends a second_exits context, the next TERM
 *                         ends the process by SIGTERM
 *   sig_child mask        prints its SigBlk after init (the test reads it)
 */
#define _POSIX_C_SOURCE 200809L
#include <ctx/ctx.h>
#include <ctx/sig.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    if (ctx_signal_init() != 0)
        return 10;
    if (strcmp(mode, "plain") == 0) {
        kill(getpid(), SIGTERM);
        ctx_sleep(ctx_background(), 5 * CTX_SECOND);
        return 11; /* should not get here */
    }
    if (strcmp(mode, "ignored") == 0) {
        signal(SIGHUP, SIG_IGN);
        kill(getpid(), SIGHUP);
        ctx_sleep(ctx_background(), 100 * CTX_MILLISECOND);
        return 0;
    }
    if (strcmp(mode, "second") == 0) {
        ctx_signal_opts_t o = CTX_SIGNAL_OPTS_INIT;
        int sigs[] = {SIGTERM};
        ctx_t *c;
        o.second_exits = true;
        if (ctx_signal_notify_opts(ctx_background(), sigs, 1, &o, &c))
            return 12;
        kill(getpid(), SIGTERM);
        if (ctx_wait(c, 5 * CTX_SECOND) != 0 || ctx_signal_of(c) != SIGTERM)
            return 13;
        kill(getpid(), SIGTERM); /* the second: the process ends */
        ctx_sleep(ctx_background(), 5 * CTX_SECOND);
        return 14;
    }
    return 2;
}
