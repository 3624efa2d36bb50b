/* SPDX-License-Identifier: MIT */
/*
 * The escalation that ends ctxrun's process trees: its trigger (the
 * deadline, a received signal, a failed command), its steps on libctx's
 * timer, the set of live processes it reaches, and the -v log.
 *
 * DESIGN
 *
 * Everything here is guarded by `mu`: the live set, the state of the
 * escalation, the step timers. Three kinds of threads call in: the main
 * thread (spawn, remove, and the deadline and signals it watches until
 * the escalation starts) or the group's tasks (spawn, remove, a failure),
 * libctx's timer thread (each step; the deadline in group mode), libctx's
 * signal thread (a received signal, once it watches). A signal goes out
 * under `mu`, so a process is either spawned and put in the live set
 * before a step is sent (and gets it), or spawned after the escalation
 * started and refused: no process misses the first signal.
 *
 * The escalation cancels `pctx` between two holds of `mu`: after the
 * trigger is set (no spawn after that) and before the first signal (so
 * libctx waits for the tree of a command that dies of it).
 *
 * Lock order: `mu` before a process's own lock (ctx_proc_signal). No
 * libctx cancellation runs under `mu`: cancelling `pctx` runs the
 * processes' after-functions, which take their locks, and stopping a step
 * timer waits for its after-function, which takes `mu`.
 *
 * Each step is a context with an absolute deadline (start + the waits so
 * far): a late step does not delay the next one. Its after-function sends
 * the step and arms the next; esc_stop marks the escalation stopped under
 * `mu` (no timer is armed after that) and then stops the timers with no
 * lock held.
 */
#define _DEFAULT_SOURCE
#include "ctxrun.h"

#include <ctx/proc.h>
#include <ctx/sig.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static ctx_time_t t0;  /* immutable after log_init */
static bool verbose;   /* immutable after log_init */
static bool inherited; /* immutable after esc_init */

static struct {
    pthread_mutex_t mu;
    const struct opts *o;             /* immutable */
    ctx_t *pctx;                      /* immutable */
    char **env;                       /* immutable */
    size_t nslots;                    /* immutable */
    ctx_proc_t **live;                /* guarded by mu */
    size_t nlive;                     /* guarded by mu */
    bool halted;                      /* guarded by mu */
    bool stopped;                     /* guarded by mu */
    enum trigger trig;                /* guarded by mu */
    int trig_sig;                     /* guarded by mu */
    struct step steps[MAX_STEPS + 1]; /* guarded by mu: this escalation's */
    size_t nsteps, next;              /* guarded by mu */
    bool killed;                      /* guarded by mu: SIGKILL sent */
    ctx_time_t start, at;             /* guarded by mu: step times */
    ctx_t *timers[MAX_STEPS + 1];     /* guarded by mu */
    ctx_after_t *afters[MAX_STEPS + 1];
    size_t ntimers;
    /* The watchers: the signal one is set up by esc_watch_signals and
     * renewed by its own after-function (on the signal thread). */
    bool watching;          /* guarded by mu: the signal thread's */
    ctx_t *sigctx, *sigold; /* guarded by mu */
    ctx_after_t *sigafter, *sigafter_old;
    ctx_after_t *deadline_after; /* main thread only */
} E = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* ------------------------------------------------------------ the log */

void log_init(bool on)
{
    t0 = ctx_now();
    verbose = on;
}

void say(const char *fmt, ...)
{
    va_list ap;
    char line[512];
    int n;
    if (!verbose)
        return;
    n = snprintf(line, sizeof line,
                 "ctxrun: +%.6fs: ", (double)(ctx_now() - t0) / 1e9);
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", line); /* one write per line, whole */
}

const char *status_text(int status, char *buf, size_t cap)
{
    char name[32];
    if (WIFEXITED(status))
        snprintf(buf, cap, "exit status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, cap, "killed by %s",
                 sig_name(WTERMSIG(status), name, sizeof name));
    else
        snprintf(buf, cap, "status 0x%x", (unsigned)status);
    return buf;
}

int spawn_failed(const char *cmd, int err)
{
    fprintf(stderr, "ctxrun: failed to run command '%s': %s\n", cmd,
            strerror(err));
    switch (err) {
    case ENOENT:
        return EXIT_ENOENT;
    case EAGAIN:
    case ENOMEM:
    case EMFILE:
    case ENFILE:
    case EINVAL:
        return EXIT_CANCELED; /* no process, or ctxrun's own fault */
    default:
        return EXIT_CANNOT_INVOKE;
    }
}

/* ------------------------------------------------------------ the set */

int esc_init(const struct opts *o, ctx_t *pctx, char **env, size_t nslots,
             bool deadline_inherited)
{
    inherited = deadline_inherited;
    E.o = o;
    E.pctx = pctx;
    E.env = env;
    E.nslots = nslots;
    E.live = calloc(nslots, sizeof *E.live);
    return E.live ? 0 : ENOMEM;
}

/* Send sig to every live tree; mu held. */
static void send_all(int sig)
{
    if (sig == SIGKILL)
        E.killed = true;
    if (sig == 0)
        return;
    for (size_t i = 0; i < E.nslots; i++)
        if (E.live[i])
            ctx_proc_signal(E.live[i], sig);
}

int esc_spawn(size_t slot, char *const *argv, ctx_proc_t **out)
{
    ctx_proc_opts_t po = CTX_PROC_OPTS_INIT;
    int rc;

    po.argv = argv;
    po.envp = E.env; /* with the deadline of `run` in CTX_DEADLINE */
    po.foreground = E.o->foreground;
    /* The escalation sends the signals itself; cancelling pctx makes the
     * wait see the whole tree gone. SIGCONT wakes a stopped tree so that
     * it can act on them. No SIGKILL of libctx's own: the escalation
     * says whether and when. */
    po.cancel_signal = SIGCONT;
    po.wait_delay = CTX_NO_DEADLINE;
    *out = NULL;
    pthread_mutex_lock(&E.mu);
    if (E.trig != TRIG_NONE || E.halted) {
        rc = ECANCELED;
    } else if ((rc = ctx_proc_spawn(E.pctx, &po, out)) == 0) {
        E.live[slot] = *out;
        E.nlive++;
    }
    pthread_mutex_unlock(&E.mu);
    return rc;
}

enum trigger esc_remove(size_t slot)
{
    enum trigger t;
    pthread_mutex_lock(&E.mu);
    if (E.live[slot]) {
        E.live[slot] = NULL;
        E.nlive--;
    }
    t = E.trig;
    pthread_mutex_unlock(&E.mu);
    return t;
}

void esc_halt(void)
{
    pthread_mutex_lock(&E.mu);
    E.halted = true;
    pthread_mutex_unlock(&E.mu);
}

enum trigger esc_trigger(int *sig)
{
    enum trigger t;
    pthread_mutex_lock(&E.mu);
    t = E.trig;
    if (sig)
        *sig = E.trig_sig;
    pthread_mutex_unlock(&E.mu);
    return t;
}

bool esc_killed(void)
{
    bool k;
    pthread_mutex_lock(&E.mu);
    k = E.killed;
    pthread_mutex_unlock(&E.mu);
    return k;
}

/* ------------------------------------------------------------ steps */

static const char *target(char *buf, size_t cap)
{
    if (!E.o->group)
        snprintf(buf, cap, "the process tree");
    else
        snprintf(buf, cap, "%zu running command%s", E.nlive,
                 E.nlive == 1 ? "" : "s");
    return buf;
}

/* A step timer whose deadline has passed runs its after-function at once,
 * inside ctx_after_func, on the thread that holds `mu`: it only notes it
 * there, and that thread sends the step itself. */
static _Thread_local bool arming, fired_inline;

static void run_steps(void);

static void on_step(void *arg)
{
    (void)arg;
    if (arming) {
        fired_inline = true;
        return;
    }
    pthread_mutex_lock(&E.mu);
    run_steps();
    pthread_mutex_unlock(&E.mu);
}

/* A timer for E.at; mu held. 0: armed; 1: due already; -1: no memory. */
static int arm(void)
{
    size_t k = E.ntimers;
    int rc;
    if (k == MAX_STEPS + 1 ||
        ctx_with_deadline(ctx_background(), E.at, &E.timers[k]) != 0)
        return -1;
    E.ntimers++;
    arming = true;
    fired_inline = false;
    rc = ctx_after_func(E.timers[k], on_step, NULL, &E.afters[k]);
    arming = false;
    if (rc != 0) {
        E.afters[k] = NULL;
        return -1;
    }
    return fired_inline ? 1 : 0;
}

/* Send step E.next and those due after it, then arm the timer of the
 * next one; mu held. */
static void run_steps(void)
{
    char name[32], who[48];
    while (!E.stopped && E.next < E.nsteps) {
        int sig = E.steps[E.next].sig;
        say("step %zu of %zu: sending %s to %s", E.next + 1, E.nsteps,
            sig_name(sig, name, sizeof name), target(who, sizeof who));
        send_all(sig);
        E.next++;
        if (E.next == E.nsteps)
            break;
        E.at += E.steps[E.next - 1].wait;
        switch (arm()) {
        case 1:
            continue;
        case -1:
            say("cannot time the next step: out of memory; sending it now");
            continue;
        default:
            return;
        }
    }
}

/* This escalation's steps; mu held. */
static void plan(enum trigger t, int sig)
{
    const struct opts *o = E.o;
    memcpy(E.steps, o->seq, o->nseq * sizeof o->seq[0]);
    E.nsteps = o->nseq;
    if (t == TRIG_SIGNAL) {
        /* The signal first, in place of the sequence's first. */
        E.steps[0].sig = sig;
        if (E.nsteps == 1) { /* nothing after it: do not wait forever */
            E.steps[0].wait = SIGNAL_GRACE;
            E.steps[1] = (struct step){SIGKILL, 0};
            E.nsteps = 2;
        }
    }
}

bool esc_start(enum trigger t, int sig, const char *why)
{
    char name[32], who[48];
    bool first;

    pthread_mutex_lock(&E.mu);
    first = E.trig == TRIG_NONE && !E.stopped;
    if (first) {
        E.trig = t; /* from here on esc_spawn refuses */
        E.trig_sig = sig;
        plan(t, sig);
    } else if (t == TRIG_SIGNAL && !E.stopped) {
        /* Escalating already: a signal is passed on as it comes, and
         * the steps go on. */
        say("%s: sending %s to %s", why, sig_name(sig, name, sizeof name),
            target(who, sizeof who));
        send_all(sig);
    }
    pthread_mutex_unlock(&E.mu);
    if (!first)
        return false;
    /* From here on the main thread blocks in a wait: signals are taken by
     * libctx's signal thread. */
    if (esc_watch_signals() != 0)
        say("cannot watch for more signals");
    /* Cancelled before the first signal: a process that dies of it is
     * waited for with the rest of its tree (libctx's wait does that for
     * a child whose context ended), never alone. */
    ctx_cancel_cause(E.pctx, t == TRIG_TIMEOUT ? ETIMEDOUT : ECANCELED, why);
    pthread_mutex_lock(&E.mu);
    if (!E.stopped) {
        E.start = E.at = ctx_now();
        say("%s: step 1 of %zu: sending %s to %s", why, E.nsteps,
            sig_name(E.steps[0].sig, name, sizeof name),
            target(who, sizeof who));
        send_all(E.steps[0].sig);
        E.next = 1;
        if (E.nsteps > 1) {
            E.at += E.steps[0].wait;
            if (arm() != 0)
                run_steps();
        }
    }
    pthread_mutex_unlock(&E.mu);
    return true;
}

/* ------------------------------------------------------------ watchers */

static const int watched[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

static void on_signal(void *arg);

/* Register for the next signal; mu held. */
static int watch_signals(void)
{
    ctx_t *c;
    int rc = ctx_signal_notify(ctx_background(), watched,
                               sizeof watched / sizeof watched[0], &c);
    if (rc != 0)
        return rc;
    E.sigctx = c;
    if ((rc = ctx_after_func(c, on_signal, c, &E.sigafter)) != 0) {
        E.sigctx = NULL;
        ctx_cancel(c);
        ctx_release(c);
    }
    return rc;
}

/* On the signal thread: a registration ends with its signal, so a new one
 * is made at once (the thread takes the next signal after this returns),
 * and the one before is freed (its after-function has returned). */
static void on_signal(void *arg)
{
    ctx_t *c = arg;
    int sig = ctx_signal_of(c);

    pthread_mutex_lock(&E.mu);
    if (E.stopped) {
        pthread_mutex_unlock(&E.mu);
        return;
    }
    if (E.sigold) {
        ctx_after_stop(E.sigafter_old);
        ctx_release(E.sigold);
    }
    E.sigold = E.sigctx;
    E.sigafter_old = E.sigafter;
    E.sigctx = NULL;
    E.sigafter = NULL;
    if (watch_signals() != 0)
        say("cannot watch for more signals: out of memory");
    pthread_mutex_unlock(&E.mu);
    esc_signalled(sig);
}

void esc_signalled(int sig)
{
    char name[32], why[64];
    snprintf(why, sizeof why, "received %s", sig_name(sig, name, sizeof name));
    esc_start(TRIG_SIGNAL, sig, why);
}

void esc_timed_out(void)
{
    char why[64], d[CTX_DURATION_BUFSIZE];
    if (!inherited) {
        ctx_format_duration(E.o->timeout, d, sizeof d);
        snprintf(why, sizeof why, "timed out after %s", d);
    } else {
        snprintf(why, sizeof why, "timed out (deadline from CTX_DEADLINE)");
    }
    esc_start(TRIG_TIMEOUT, 0, why);
}

static void on_deadline(void *arg)
{
    if (ctx_err(arg) == ETIMEDOUT)
        esc_timed_out();
}

int esc_watch_signals(void)
{
    int rc = 0;
    pthread_mutex_lock(&E.mu);
    if (!E.watching && !E.stopped) {
        /* The four signals are blocked in every thread by now (the main
         * thread blocked them first, libctx's threads block everything),
         * so starting the signal thread late is as safe as first. */
        rc = ctx_signal_init();
        if (rc == 0)
            rc = watch_signals();
        E.watching = rc == 0;
    }
    pthread_mutex_unlock(&E.mu);
    return rc;
}

int esc_watch_deadline(ctx_t *run)
{
    return ctx_after_func(run, on_deadline, run, &E.deadline_after);
}

void esc_stop(void)
{
    ctx_t *sc, *so;
    ctx_after_t *sa, *sao;

    pthread_mutex_lock(&E.mu);
    E.stopped = true; /* no timer or signal watch is made after this */
    sc = E.sigctx;
    sa = E.sigafter;
    so = E.sigold;
    sao = E.sigafter_old;
    E.sigctx = E.sigold = NULL;
    E.sigafter = E.sigafter_old = NULL; /* a second call does nothing */
    pthread_mutex_unlock(&E.mu);
    ctx_after_stop(E.deadline_after);
    E.deadline_after = NULL;
    ctx_after_stop(sa);
    ctx_after_stop(sao);
    if (sc) {
        ctx_cancel(sc);
        ctx_release(sc);
    }
    if (so)
        ctx_release(so);
    for (size_t i = 0; i < E.ntimers; i++) {
        ctx_after_stop(E.afters[i]);
        ctx_cancel(E.timers[i]);
        ctx_release(E.timers[i]);
    }
    E.ntimers = 0;
    free(E.live);
    E.live = NULL;
}
