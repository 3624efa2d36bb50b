/* SPDX-License-Identifier: MIT */
/*
 * ctxrun --group: command lines run by /bin/sh -c as the tasks of a
 * ctx_group (errgroup for processes). The first to fail stops the group:
 * no new command starts, and with --halt now the running ones are ended
 * by the escalation; the exit status is the failure's.
 *
 * A task spawns its command through esc_spawn, which refuses once the
 * group is halted or the escalation started, under the escalation's lock:
 * so after the first failure no command starts, race or not. -j is the
 * group's limit: ctx_group_go blocks at it until a slot frees or the
 * group's context is done (a failed task cancels it), and then the rest
 * are not started.
 */
#define _DEFAULT_SOURCE
#include "ctxrun.h"

#include <ctx/group.h>
#include <ctx/proc.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

enum state { C_WAITING, C_RUNNING, C_OK, C_FAILED, C_CANCELLED };

struct cmd {
    size_t slot;
    char *line;
    enum state state; /* guarded by G.mu */
};

static struct {
    pthread_mutex_t mu;
    const struct opts *o; /* immutable */
    struct cmd *cmds;     /* immutable array */
    long first_fail;      /* guarded by mu: the slot, or -1 */
    int first_code;       /* guarded by mu */
    long first_after;     /* guarded by mu: first to end non-zero after the
                             escalation started, or -1 */
    int after_code;       /* guarded by mu */
} G = {.mu = PTHREAD_MUTEX_INITIALIZER, .first_fail = -1, .first_after = -1};

static int code_of(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return 1;
}

static void set_state(struct cmd *k, enum state s)
{
    pthread_mutex_lock(&G.mu);
    k->state = s;
    pthread_mutex_unlock(&G.mu);
}

/* k failed with exit status `code`; the first failure halts the group.
 * Returns the task's result: non-zero cancels the group's context. */
static int failed(struct cmd *k, int code, const char *how)
{
    char why[96];
    bool first;

    pthread_mutex_lock(&G.mu);
    k->state = C_FAILED;
    first = G.first_fail < 0;
    if (first) {
        G.first_fail = (long)k->slot;
        G.first_code = code;
    }
    pthread_mutex_unlock(&G.mu);
    say("command %zu failed (%s): %s", k->slot + 1, how, k->line);
    if (first) {
        esc_halt();
        snprintf(why, sizeof why, "command %zu failed", k->slot + 1);
        if (!G.o->halt_soon)
            esc_start(TRIG_FAILURE, 0, why);
    }
    return 1;
}

static int task(ctx_t *gc, void *arg)
{
    struct cmd *k = arg;
    char *argv[] = {"/bin/sh", "-c", k->line, NULL};
    char text[64];
    ctx_proc_t *p;
    int rc, status;
    enum trigger t;

    (void)gc; /* the group's context: esc_spawn knows when to refuse */
    rc = esc_spawn(k->slot, argv, &p);
    if (rc == ECANCELED || rc == ETIMEDOUT)
        return 0; /* halted before it started: stays C_WAITING */
    if (rc != 0) {
        int code = spawn_failed(argv[0], rc);
        snprintf(text, sizeof text, "exit status %d", code);
        return failed(k, code, text);
    }
    set_state(k, C_RUNNING);
    say("command %zu started (pid %ld): %s", k->slot + 1, (long)ctx_proc_pid(p),
        k->line);
    ctx_proc_wait(p, &status);
    t = esc_remove(k->slot);
    ctx_proc_free(p);
    status_text(status, text, sizeof text);
    if (status == 0) {
        set_state(k, C_OK);
        say("command %zu done: %s", k->slot + 1, k->line);
        return 0;
    }
    if (t == TRIG_NONE)
        return failed(k, code_of(status), text);
    pthread_mutex_lock(&G.mu);
    k->state = C_CANCELLED;
    if (G.first_after < 0) {
        G.first_after = (long)k->slot;
        G.after_code = code_of(status);
    }
    pthread_mutex_unlock(&G.mu);
    say("command %zu cancelled (%s): %s", k->slot + 1, text, k->line);
    return 0;
}

int run_group(const struct opts *o, ctx_t *pctx)
{
    ctx_group_t *g;
    int rc, status = 0, tsig;
    size_t started = 0;
    enum trigger t;

    G.o = o;
    G.cmds = calloc(o->ncmd, sizeof *G.cmds);
    if (!G.cmds || (rc = ctx_group_new(pctx, &g)) != 0) {
        free(G.cmds);
        fprintf(stderr, "ctxrun: %s\n", strerror(ENOMEM));
        return EXIT_CANCELED;
    }
    if (o->jobs > 0)
        ctx_group_set_limit(g, o->jobs);
    for (size_t i = 0; i < o->ncmd; i++) {
        G.cmds[i].slot = i;
        G.cmds[i].line = o->cmd[i];
    }
    for (; started < o->ncmd; started++) {
        rc = ctx_group_go(g, task, &G.cmds[started]);
        if (rc == ECANCELED || rc == ETIMEDOUT)
            break; /* halted while waiting for a slot */
        if (rc != 0) {
            fprintf(stderr, "ctxrun: cannot start command %zu: %s\n",
                    started + 1, strerror(rc));
            esc_halt();
            esc_start(TRIG_FAILURE, 0, "ctxrun failed");
            status = EXIT_CANCELED;
            break;
        }
    }
    ctx_group_wait(g);
    ctx_group_free(g);

    pthread_mutex_lock(&G.mu);
    for (size_t i = 0; i < o->ncmd; i++)
        if (G.cmds[i].state == C_WAITING)
            say("command %zu not started: %s", i + 1, G.cmds[i].line);
    t = esc_trigger(&tsig);
    if (G.first_fail >= 0)
        status = G.first_code;
    else if (status != 0)
        ; /* ctxrun's own failure */
    else if (t == TRIG_TIMEOUT && o->preserve_status)
        status = G.first_after >= 0 ? G.after_code : 0;
    else if (t == TRIG_TIMEOUT)
        status = esc_killed() ? 128 + SIGKILL : EXIT_TIMEDOUT;
    else if (t == TRIG_SIGNAL)
        status = 0x100 | tsig;
    pthread_mutex_unlock(&G.mu);
    free(G.cmds);
    return status;
}
