/* SPDX-License-Identifier: MIT */
/*
 * The parts of ctxrun shared by its files: options, the escalation that
 * ends the process trees, signal names, and the -v log.
 */
#ifndef CTXRUN_H
#define CTXRUN_H

#include <ctx/ctx.h>

#include <stdbool.h>
#include <stddef.h>

/* Exit statuses, those of timeout(1). */
#define EXIT_TIMEDOUT      124
#define EXIT_CANCELED      125 /* ctxrun itself failed */
#define EXIT_CANNOT_INVOKE 126
#define EXIT_ENOENT        127

#define MAX_STEPS 16

/* From the first signal to SIGKILL for a signal ctxrun received, when the
 * escalation the user gave has no step after the first (no -k). */
#define SIGNAL_GRACE (5 * CTX_SECOND)

/* One step of an escalation: send `sig` (0: none), then wait `wait`
 * before the next step. */
struct step {
    int sig;
    ctx_time_t wait;
};

struct opts {
    ctx_time_t timeout; /* 0: none */
    const char *timeout_text;
    struct step seq[MAX_STEPS]; /* the escalation on a timeout */
    size_t nseq;
    bool preserve_status;
    bool foreground;
    bool verbose;
    bool group;
    int jobs;       /* group mode: at most this many at once; 0: no limit */
    bool halt_soon; /* group mode: a failure lets running commands finish */
    char **cmd;     /* the command, or the group's command lines */
    size_t ncmd;
};

/* What started the escalation. */
enum trigger { TRIG_NONE, TRIG_TIMEOUT, TRIG_SIGNAL, TRIG_FAILURE };

/* ------------------------------------------------------------ signame.c */

/* A signal operand as timeout(1) reads it: a number (an exit status above
 * 128 means its signal), or a name with or without SIG, in any case.
 * Returns the signal, 0 for EXIT / 0, or -1 when it is not one. */
int sig_parse(const char *s);

/* "SIGTERM", "SIGRTMIN+2", "signal 0": a name for messages. */
const char *sig_name(int sig, char *buf, size_t cap);

/* ------------------------------------------------------------ escalate.c */

/* A wait status in words: "exit status 3", "killed by SIGTERM". */
const char *status_text(int status, char *buf, size_t cap);

/* A command that could not be started (posix_spawn's error): the
 * message, and the exit status timeout(1) gives: 127 not found, 126
 * cannot run, 125 for a failure of ctxrun itself (no process, memory). */
int spawn_failed(const char *cmd, int err);

/* The -v log: `on` or not; its times count from this call. */
void log_init(bool on);

/* One -v line on stderr: "ctxrun: +1.000123s: " and the text. */
void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prepare: the processes run in `pctx`, which the escalation cancels
 * before its first signal, with the environment `env`; `nslots` commands
 * can be live at once (1, or the group's command count);
 * `deadline_inherited`: the deadline is the one from CTX_DEADLINE (for
 * -v). */
int esc_init(const struct opts *o, ctx_t *pctx, char **env, size_t nslots,
             bool deadline_inherited);

/* Spawn a command into slot `slot`: refused (ECANCELED) once the
 * escalation started or the group was halted (esc_halt). Otherwise
 * ctx_proc_spawn's answer; on success the process is live: the
 * escalation's signals reach it. */
int esc_spawn(size_t slot, char *const *argv, ctx_proc_t **out);

/* The process in `slot` ended: it leaves the live set. Returns the
 * trigger of an escalation started before this point (TRIG_NONE if none). */
enum trigger esc_remove(size_t slot);

/* Group mode: no command starts after this (a failure under --halt). */
void esc_halt(void);

/* Start the escalation: for a timeout or a failure, the sequence of the
 * options; for a received signal `sig`, that signal first, then the rest
 * of the sequence (or SIGKILL after SIGNAL_GRACE). `why` is for -v.
 * Once started, a received signal is forwarded as it comes. Returns true
 * if this call started it. */
bool esc_start(enum trigger t, int sig, const char *why);

/* What started the escalation, and for a signal which (in *sig). */
enum trigger esc_trigger(int *sig);

/* Whether the escalation got to send SIGKILL. */
bool esc_killed(void);

/* The time ran out / ctxrun received `sig`: start the escalation (with
 * the -v text saying so). */
void esc_timed_out(void);
void esc_signalled(int sig);

/* Take INT, TERM, HUP and QUIT on libctx's signal thread from now on (the
 * caller has them blocked). Called by the first esc_start, and at once in
 * group mode. */
int esc_watch_signals(void);

/* Start the escalation when `run` reaches its deadline (group mode). */
int esc_watch_deadline(ctx_t *run);

/* Stop watching and escalating, free everything (no callback runs after). */
void esc_stop(void);

/* ------------------------------------------------------------ group.c */

/* Run the command lines of o->cmd under /bin/sh -c, their processes in
 * `pctx`. Returns the exit status, or 0x100 | N: die of signal N. */
int run_group(const struct opts *o, ctx_t *pctx);

#endif /* CTXRUN_H */
