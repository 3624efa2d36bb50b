/* SPDX-License-Identifier: MIT */
/*
 * Thread interrupt: a region of a thread bound to a context, in which the
 * thread is signalled until the region ends once the context is done, so
 * that blocking system calls in code we do not control return EINTR.
 *
 * DESIGN
 *
 * The signal's handler does nothing; it is installed without SA_RESTART,
 * which is what makes a blocked read(), accept(), nanosleep()... return
 * EINTR. One signal is not enough: it may land just before the thread
 * enters the blocking call (the race that makes pthread_cancel unsafe),
 * so an interrupter thread repeats it, every millisecond for the first
 * ten, then every 10 ms, for as long as the region is open.
 *
 * A region becomes active in an after-function of its context (the
 * cancelling thread sends the first signal at once). All sends happen
 * under `mu`, the interrupter's included, and ctx_interrupt_end first
 * stops the after-function (waiting for it if it runs), then takes the
 * region off the active list under `mu`: after that nothing sends to the
 * thread. A signal sent before that is already pending on the thread
 * (tgkill makes it pending before it returns), and ctx_interrupt_end
 * takes it away with sigtimedwait while the signal is blocked. So no
 * signal reaches the thread after the region.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <ctx/force.h>

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

struct ctx_interrupt {
    pid_t tid;                    /* immutable: the region's thread */
    ctx_after_t *after;           /* immutable after begin */
    struct ctx_interrupt *next;   /* active list; guarded by mu */
    struct ctx_interrupt **pprev; /* NULL when not active */
    unsigned sent;                /* guarded by mu */
};

static ctx__mutex_t mu = CTX__MUTEX_INIT;
static struct ctx_interrupt *active CTX_GUARDED_BY(mu);
static int isig CTX_GUARDED_BY(mu) = SIGURG;
static bool installed CTX_GUARDED_BY(mu);
static bool running CTX_GUARDED_BY(mu);
static _Atomic uint32_t kick_word;

static void handler(int s)
{
    (void)s; /* being delivered is the point: the syscall returns EINTR */
}

int ctx_interrupt_set_signal(int sig)
{
    int rc = 0;
    if (sig <= 0 || sig >= NSIG || sig == SIGKILL || sig == SIGSTOP)
        return EINVAL;
    ctx__lock(&mu);
    if (installed)
        rc = EBUSY;
    else
        isig = sig;
    ctx__unlock(&mu);
    return rc;
}

/* Send the signal to r's thread; mu held. */
static void send_one(struct ctx_interrupt *r) CTX_REQUIRES(mu)
{
    syscall(SYS_tgkill, getpid(), r->tid, isig);
    r->sent++;
    ctx__count(CTX__C_INTERRUPTS, 1);
}

static void *interrupter_main(void *arg)
{
    (void)arg;
    ctx__thread_name("ctx-interrupt");
    ctx__lock(&mu);
    for (;;) {
        ctx_time_t pause = 10 * CTX_MILLISECOND;
        if (!active) {
            uint32_t v = atomic_load(&kick_word);
            ctx_time_t until = ctx__real_now() + 10 * CTX_SECOND;
            int rc;
            ctx__unlock(&mu);
            rc = ctx__futex_wait(&kick_word, v, until);
            ctx__lock(&mu);
            if (!active && rc == ETIMEDOUT && ctx__real_now() >= until)
                break; /* idle: retire; begin starts another */
            continue;
        }
        for (struct ctx_interrupt *r = active; r; r = r->next) {
            send_one(r);
            if (r->sent < 10)
                pause = CTX_MILLISECOND;
        }
        ctx__unlock(&mu);
        {
            struct timespec ts = {0, (long)pause};
            nanosleep(&ts, NULL);
        }
        ctx__lock(&mu);
    }
    running = false;
    ctx__unlock(&mu);
    ctx__thread_exiting();
    return NULL;
}

/* Install the handler and start the interrupter; mu held. */
static int setup(void) CTX_REQUIRES(mu)
{
    pthread_t tid;
    int rc;
    if (!installed) {
        struct sigaction sa, old;
        if (sigaction(isig, NULL, &old) != 0)
            return EINVAL;
        if (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN &&
            old.sa_handler != handler)
            return EBUSY; /* someone else's handler */
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = handler;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = 0; /* no SA_RESTART: that is the point */
        if (sigaction(isig, &sa, NULL) != 0)
            return EINVAL;
        installed = true;
    }
    if (!running) {
        if ((rc = ctx__thread_start(&tid, interrupter_main, NULL)) != 0)
            return rc;
        running = true;
    }
    return 0;
}

static void on_cancel(void *arg)
{
    struct ctx_interrupt *r = arg;
    ctx__lock(&mu);
    r->next = active;
    r->pprev = &active;
    if (active)
        active->pprev = &r->next;
    active = r;
    send_one(r);    /* at once, from the cancelling thread */
    if (!running) { /* it retired since begin: start it again */
        pthread_t tid;
        if (ctx__thread_start(&tid, interrupter_main, NULL) == 0)
            running = true;
    }
    ctx__unlock(&mu);
    atomic_fetch_add(&kick_word, 1);
    ctx__futex_wake(&kick_word, 1);
}

int ctx_interrupt_begin(ctx_t *c, ctx_interrupt_t **out)
{
    struct ctx_interrupt *r;
    int rc;

    if (out)
        *out = NULL;
    if (!c || !out)
        return EINVAL;
    ctx__lock(&mu);
    rc = setup();
    ctx__unlock(&mu);
    if (rc)
        return rc;
    r = ctx__calloc(1, sizeof *r);
    if (!r)
        return ENOMEM;
    r->tid = (pid_t)syscall(SYS_gettid);
    /* If c is done already, on_cancel runs here and the signals start. */
    if ((rc = ctx_after_func(c, on_cancel, r, &r->after)) != 0) {
        ctx__free(r);
        return rc;
    }
    *out = r;
    return 0;
}

void ctx_interrupt_end(ctx_interrupt_t *r)
{
    sigset_t one, old;
    struct timespec zero = {0, 0};
    int sig;

    if (!r)
        return;
    ctx_after_stop(r->after); /* on_cancel is not running after this */
    ctx__lock(&mu);
    sig = isig;
    if (r->pprev) {
        *r->pprev = r->next;
        if (r->next)
            r->next->pprev = r->pprev;
        r->pprev = NULL;
    }
    ctx__unlock(&mu);
    /* Nothing is sent any more; take away what is pending. */
    sigemptyset(&one);
    sigaddset(&one, sig);
    pthread_sigmask(SIG_BLOCK, &one, &old);
    while (sigtimedwait(&one, NULL, &zero) == sig)
        ;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    ctx__free(r);
}
