/* SPDX-License-Identifier: MIT */
/*
 * Signals as contexts: ctx_signal_init and ctx_signal_notify.
 *
 * DESIGN
 *
 * ctx_signal_init blocks the four signals in the calling thread, so every
 * thread made later inherits the mask, and starts one thread that takes
 * them with sigwaitinfo: no handler runs anywhere, so nothing needs to be
 * async-signal-safe. (libctx's own threads block everything anyway.)
 *
 * The thread keeps a registry of notify contexts under `mu`, each with
 * the signals it waits for and a reference to its context. When a signal
 * arrives it takes references to the interested contexts under `mu`,
 * then cancels them with no lock held (their after-functions may call
 * back into here). A registration ends when its context is done, for any
 * reason: an after-function removes it and drops the reference. So a
 * notify context that is cancelled and released leaves nothing behind.
 *
 * A signal nobody is waiting for keeps its usual meaning: the thread
 * unblocks it for itself and raises it, so the current disposition (the
 * default action, a user's handler, or SIG_IGN) applies, then blocks it
 * again. With second_exits, a signal that arrives after a context asking
 * for it was ended by that same signal resets the disposition to the
 * default and raises: the process ends the way the signal says.
 *
 * fork: the child has no signal thread; an atfork handler unblocks the
 * four in the child so that it behaves as a process without libctx.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <ctx/sig.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#define NSIGS 65

struct reg {
    struct reg *next, **pprev; /* guarded by mu */
    ctx_t *c;                  /* a reference, dropped with the reg */
    sigset_t sigs;
    bool second_exits;
    ctx_after_t *after;
};

static ctx__mutex_t mu = CTX__MUTEX_INIT;
static struct reg *regs CTX_GUARDED_BY(mu);
static bool armed[NSIGS] CTX_GUARDED_BY(mu); /* second_exits fired */
static atomic_int started;
static sigset_t taken; /* immutable once started */

static const int taken_sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

static const char *signame(int sig)
{
    switch (sig) {
    case SIGINT:
        return "signal SIGINT";
    case SIGTERM:
        return "signal SIGTERM";
    case SIGHUP:
        return "signal SIGHUP";
    case SIGQUIT:
        return "signal SIGQUIT";
    default:
        return "signal";
    }
}

/* Let the signal do what it would do without libctx, on this thread. */
static void pass_on(int sig, bool to_default)
{
    sigset_t one;
    if (to_default)
        signal(sig, SIG_DFL);
    sigemptyset(&one);
    sigaddset(&one, sig);
    pthread_sigmask(SIG_UNBLOCK, &one, NULL);
    raise(sig); /* thread-directed: delivered here, now */
    pthread_sigmask(SIG_BLOCK, &one, NULL);
}

static void deliver(int sig)
{
    ctx_t *hit[32];
    size_t n = 0;
    bool more = false, exit_now;

    ctx__lock(&mu);
    exit_now = sig < NSIGS && armed[sig];
    for (struct reg *r = regs; r; r = r->next) {
        if (!sigismember(&r->sigs, sig) || ctx_done(r->c))
            continue;
        if (n == sizeof hit / sizeof hit[0]) {
            more = true;
            break;
        }
        hit[n++] = ctx_retain(r->c);
        if (r->second_exits && sig < NSIGS)
            armed[sig] = true;
    }
    ctx__unlock(&mu);
    if (exit_now) {
        pass_on(sig, true);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        ctx_cancel_cause(hit[i], CTX_SIGNAL_CAUSE(sig), signame(sig));
        ctx_release(hit[i]);
    }
    if (more)
        deliver(sig); /* the rest (the first ones are done now) */
    else if (n == 0)
        pass_on(sig, false);
}

static void *signal_main(void *arg)
{
    (void)arg;
    ctx__thread_name("ctx-signal");
    for (;;) {
        siginfo_t si;
        int sig = sigwaitinfo(&taken, &si);
        if (sig > 0)
            deliver(sig);
    }
    return NULL;
}

static void atfork_child(void)
{
    pthread_sigmask(SIG_UNBLOCK, &taken, NULL);
}

int ctx_signal_init(void)
{
    static ctx__mutex_t init_mu = CTX__MUTEX_INIT;
    pthread_t tid;
    int rc = 0;

    ctx__lock(&init_mu);
    if (!atomic_load(&started)) {
        sigemptyset(&taken);
        for (size_t i = 0; i < sizeof taken_sigs / sizeof taken_sigs[0]; i++)
            sigaddset(&taken, taken_sigs[i]);
        pthread_sigmask(SIG_BLOCK, &taken, NULL);
        rc = ctx__thread_start(&tid, signal_main, NULL);
        if (rc == 0) {
            pthread_atfork(NULL, NULL, atfork_child);
            atomic_store(&started, 1);
        } else {
            pthread_sigmask(SIG_UNBLOCK, &taken, NULL);
        }
    }
    ctx__unlock(&init_mu);
    return rc;
}

/* The registration's context is done: it ends. */
static void on_done(void *arg)
{
    struct reg *r = arg;
    ctx__lock(&mu);
    *r->pprev = r->next;
    if (r->next)
        r->next->pprev = r->pprev;
    ctx__unlock(&mu);
    ctx_after_stop(r->after); /* from inside: freed once we return */
    ctx_release(r->c);
    ctx__free(r);
}

int ctx_signal_notify_opts(ctx_t *parent, const int *sigs, size_t n,
                           const ctx_signal_opts_t *opts, ctx_t **out)
{
    struct reg *r;
    ctx_t *c;
    int rc;

    if (out)
        *out = NULL;
    if (!parent || !sigs || n == 0 || !out || !atomic_load(&started))
        return EINVAL;
    for (size_t i = 0; i < n; i++)
        if (sigs[i] <= 0 || sigs[i] >= NSIGS || !sigismember(&taken, sigs[i]))
            return EINVAL;
    r = ctx__calloc(1, sizeof *r);
    if (!r)
        return ENOMEM;
    if ((rc = ctx_with_cancel(parent, &c)) != 0) {
        ctx__free(r);
        return rc;
    }
    sigemptyset(&r->sigs);
    for (size_t i = 0; i < n; i++)
        sigaddset(&r->sigs, sigs[i]);
    r->second_exits = opts && opts->second_exits;
    r->c = ctx_retain(c);
    ctx__lock(&mu);
    r->next = regs;
    r->pprev = &regs;
    if (regs)
        regs->pprev = &r->next;
    regs = r;
    ctx__unlock(&mu);
    /* If c is done already (a done parent), on_done runs right here. */
    if ((rc = ctx_after_func(c, on_done, r, &r->after)) != 0) {
        ctx__lock(&mu);
        *r->pprev = r->next;
        if (r->next)
            r->next->pprev = r->pprev;
        ctx__unlock(&mu);
        ctx_release(r->c);
        ctx__free(r);
        ctx_release(c);
        return rc;
    }
    *out = c;
    return 0;
}

int ctx_signal_notify(ctx_t *parent, const int *sigs, size_t n, ctx_t **out)
{
    return ctx_signal_notify_opts(parent, sigs, n, NULL, out);
}

int ctx_signal_of(const ctx_t *c)
{
    int code = c ? ctx_cause(c, NULL) : 0;
    if (code > CTX_SIGNAL_CAUSE_BASE && code < CTX_SIGNAL_CAUSE_BASE + NSIGS)
        return code - CTX_SIGNAL_CAUSE_BASE;
    return 0;
}
