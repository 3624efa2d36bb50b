/* SPDX-License-Identifier: MIT */
/*
 * The phased shutdown manager: lame duck, refuse, drain, force.
 *
 * DESIGN
 *
 * One thread drives the phases: the one in ctx_shutdown_wait. Everything
 * it waits for is a context, so every wait is a ctx_wait with a timeout on
 * ctx_now()'s clock (the test clock drives budgets exactly), and nothing
 * polls:
 *  - `trigger` is done when the shutdown begins: the signal context (or a
 *    plain child of the parent with no_signals); ctx_shutdown_start
 *    cancels it with its cause;
 *  - `skip` is done when a second signal or ctx_shutdown_force asks for
 *    force; before the force phase, the driver waits on a merge of skip
 *    and what it waits for, so a skip ends any wait at once (in the force
 *    phase skip is done, and the waits are on the contexts alone);
 *  - `drained` is done when the in-flight count reaches 0 with the
 *    refusing bit set, a state that cannot be left: one-shot;
 *  - each stop or force action's `returned` is done when its callback
 *    returned, one-shot too.
 * After each wait the driver looks at the state itself (a job's `state`,
 * the count), so a skip that also ended the wait is told apart.
 *
 * In flight: `inflight` is the count in the low bits and REFUSING in the
 * top bit, so enter is one CAS that fails once the bit is set, and the
 * leave that brings the count to 0 under the bit (or the refuse that finds
 * it 0) is the one that cancels `drained`: exactly one, no lock.
 *
 * The second signal. A notify registration ends with its context, so once
 * the first SIGTERM ended `trigger` a second one would take the default
 * action and kill the process before force could log anything. The
 * trigger's after-function registers a second notify context, for the same
 * signals, whose after-function cancels `skip`. It runs inside the
 * delivery of the first signal, on the signal thread, which takes the
 * next signal only after that delivery returned: no window in which a
 * second signal finds nobody registered.
 *
 * Stops and force actions run on pool tasks of the manager's own group,
 * each with a fresh context (ctx_cleanup_ctx of `work`: its values, not its
 * cancellation, plus the job's deadline), so a stuck callback never holds
 * up the driver: it waits with a deadline and moves on to force; the
 * group is only freed by ctx_shutdown_free.
 *
 * Lock order: mu, then a context's node lock. mu guards the registration
 * list and `began`; the list is read without mu by the driver once began
 * is set (no more registrations then).
 */
#define _DEFAULT_SOURCE
#include "internal.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define REFUSING   ((uint64_t)1 << 63)
#define MAX_SIGS   8
#define STOP_GRACE (100 * CTX_MILLISECOND) /* past a stop's deadline */

enum { J_IDLE, J_RUNNING, J_RETURNED };

struct job {
    struct job *next; /* newest first; guarded by mu until began */
    ctx_shutdown_t *sd;
    char name[48];
    ctx_stop_fn fn;
    void *arg;
    ctx_time_t budget; /* stops: their own; force actions: unused */
    bool force;
    ctx_t *c;         /* made when it starts; driver's */
    ctx_t *returned;  /* made when it starts; see DESIGN */
    ctx_time_t until; /* its deadline; driver's */
    atomic_int state; /* J_*: set by the task, read by the driver */
    int rc;           /* written before state = J_RETURNED (seq_cst) */
    ctx_time_t took;  /* likewise */
    bool reported;    /* driver's */
};

struct ctx_shutdown {
    ctx_time_t lame_duck, drain, force, stop; /* immutable */
    ctx_phase_fn on_phase;                    /* immutable */
    void *arg;
    int log_fd, exit_status; /* immutable */
    bool no_exit;
    int sigs[MAX_SIGS];
    size_t nsigs; /* 0: no signals */
    ctx_t *trigger, *skip, *base, *work, *draining, *ingress, *drained;
    ctx_after_t *trigger_af;
    ctx_t *second; /* written by on_trigger; read after trigger_af stops */
    ctx_after_t *second_af;
    ctx_group_t *g;
    ctx__mutex_t mu;
    struct job *jobs;      /* guarded by mu */
    bool began;            /* guarded by mu */
    _Atomic ctx_time_t t0; /* when it began; 0 before */
    _Atomic uint64_t inflight;
    atomic_int phase;
    atomic_int waited;
};

/* ------------------------------------------------------------ log */

static const char *const phase_names[] = {"serving",  "lame duck", "refusing",
                                          "draining", "forcing",   "done"};

const char *ctx_phase_name(ctx_phase_t p)
{
    if ((int)p < 0 || (size_t)p >= sizeof phase_names / sizeof *phase_names)
        return "?";
    return phase_names[p];
}

ctx_time_t ctx_shutdown_elapsed(const ctx_shutdown_t *sd)
{
    ctx_time_t t0 = sd ? atomic_load(&((ctx_shutdown_t *)sd)->t0) : 0;
    return t0 ? ctx_now() - t0 : 0;
}

static void vsay(ctx_shutdown_t *sd, ctx_time_t e, const char *fmt, va_list ap)
{
    char line[512];
    int n;
    if (sd->log_fd < 0)
        return;
    n = snprintf(line, sizeof line, "shutdown: +%lld.%03lld s  ",
                 (long long)(e / CTX_SECOND),
                 (long long)(e % CTX_SECOND / CTX_MILLISECOND));
    vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    n = (int)strlen(line);
    line[n++] = '\n';
    for (int off = 0; off < n;) {
        ssize_t w = write(sd->log_fd, line + off, (size_t)(n - off));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (int)w;
    }
}

/* A log line stamped with the time since the shutdown began. */
__attribute__((format(printf, 2, 3))) static void say(ctx_shutdown_t *sd,
                                                      const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsay(sd, ctx_shutdown_elapsed(sd), fmt, ap);
    va_end(ap);
}

__attribute__((format(printf, 3, 4))) static void
say_at(ctx_shutdown_t *sd, ctx_time_t e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsay(sd, e, fmt, ap);
    va_end(ap);
}

/* The time and the work in flight are taken before the phase is
 * published: a thread that sees the new phase may move on (enter more
 * work, move the test clock) before the log line and the callback. */
static void enter_phase(ctx_shutdown_t *sd, ctx_phase_t p, const char *more)
{
    ctx_time_t e = ctx_shutdown_elapsed(sd);
    long long inflight = (long long)ctx_shutdown_inflight(sd);
    atomic_store(&sd->phase, (int)p);
    say_at(sd, e, "%-9s (in flight %lld)%s%s", ctx_phase_name(p), inflight,
           more ? "; " : "", more ? more : "");
    if (sd->on_phase)
        sd->on_phase(sd, p, e, sd->arg);
}

/* ------------------------------------------------------------ new/free */

static void on_second(void *arg)
{
    ctx_shutdown_t *sd = arg;
    ctx_cancel_cause(sd->skip, ECANCELED, "second signal");
}

/* The trigger is done: runs on the thread that ended it (see DESIGN). */
static void on_trigger(void *arg)
{
    ctx_shutdown_t *sd = arg;
    ctx_time_t zero = 0;
    ctx_t *s2;

    ctx__lock(&sd->mu);
    sd->began = true;
    ctx__unlock(&sd->mu);
    atomic_compare_exchange_strong(&sd->t0, &zero, ctx_now());
    if (sd->nsigs == 0 ||
        ctx_signal_notify(ctx_background(), sd->sigs, sd->nsigs, &s2) != 0)
        return;
    if (ctx_after_func(s2, on_second, sd, &sd->second_af) != 0) {
        ctx_cancel(s2);
        ctx_release(s2);
        return;
    }
    sd->second = s2;
}

static int check_opts(const ctx_shutdown_opts_t *o)
{
    if (o->lame_duck < 0 || o->drain < 0 || o->force < 0 || o->stop < 0)
        return EINVAL;
    if (!o->no_signals && (o->n_signals > MAX_SIGS ||
                           (o->signals == NULL) != (o->n_signals == 0)))
        return EINVAL;
    return 0;
}

int ctx_shutdown_new(const ctx_shutdown_opts_t *o, ctx_shutdown_t **out)
{
    static const int default_sigs[] = {SIGINT, SIGTERM};
    ctx_shutdown_t *sd;
    ctx_t *parent;
    int rc;

    if (out)
        *out = NULL;
    if (!o || !out)
        return EINVAL;
    if ((rc = check_opts(o)) != 0)
        return rc;
    if (!(sd = ctx__calloc(1, sizeof *sd)))
        return ENOMEM;
    sd->lame_duck = o->lame_duck;
    sd->drain = o->drain;
    sd->force = o->force;
    sd->stop = o->stop;
    sd->on_phase = o->on_phase;
    sd->arg = o->arg;
    sd->log_fd = o->log_fd;
    sd->no_exit = o->no_exit;
    sd->exit_status = o->exit_status ? o->exit_status : 1;
    if (!o->no_signals) {
        sd->nsigs = o->signals ? o->n_signals : 2;
        memcpy(sd->sigs, o->signals ? o->signals : default_sigs,
               sd->nsigs * sizeof(int));
    }
    pthread_mutex_init(&sd->mu.m, NULL);
    parent = o->parent ? o->parent : ctx_background();
    rc = sd->nsigs
             ? ctx_signal_notify(parent, sd->sigs, sd->nsigs, &sd->trigger)
             : ctx_with_cancel(parent, &sd->trigger);
    if (rc == 0)
        rc = ctx_with_cancel(ctx_background(), &sd->skip);
    if (rc == 0)
        rc = ctx_with_cancel(ctx_background(), &sd->drained);
    if (rc == 0)
        rc = ctx_without_cancel(parent, &sd->base);
    if (rc == 0)
        rc = ctx_with_cancel(sd->base, &sd->work);
    if (rc == 0)
        rc = ctx_with_cancel(sd->work, &sd->draining);
    if (rc == 0)
        rc = ctx_with_cancel(sd->draining, &sd->ingress);
    if (rc == 0)
        rc = ctx_group_new(ctx_background(), &sd->g);
    /* Last: once registered, the trigger may fire. */
    if (rc == 0)
        rc = ctx_after_func(sd->trigger, on_trigger, sd, &sd->trigger_af);
    if (rc != 0) {
        ctx_shutdown_free(sd);
        return rc;
    }
    *out = sd;
    return 0;
}

void ctx_shutdown_free(ctx_shutdown_t *sd)
{
    struct job *j, *next;

    if (!sd)
        return;
    if (sd->trigger_af)
        ctx_after_stop(sd->trigger_af); /* waits for on_trigger */
    if (sd->second) {
        ctx_after_stop(sd->second_af);
        ctx_cancel(sd->second); /* ends the signal registration */
        ctx_release(sd->second);
    }
    if (sd->skip)
        ctx_cancel(sd->skip);
    if (sd->work)
        ctx_cancel(sd->work);
    ctx_group_free(sd->g); /* no stop or force task outlives us */
    ctx__lock(&sd->mu);
    j = sd->jobs;
    sd->jobs = NULL;
    ctx__unlock(&sd->mu);
    for (; j; j = next) {
        next = j->next;
        ctx_release(j->c);
        ctx_release(j->returned);
        ctx__free(j);
    }
    {
        ctx_t *cs[] = {sd->ingress, sd->draining, sd->work,   sd->base,
                       sd->drained, sd->skip,     sd->trigger};
        for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++)
            if (cs[i]) {
                ctx_cancel(cs[i]);
                ctx_release(cs[i]);
            }
    }
    pthread_mutex_destroy(&sd->mu.m);
    ctx__free(sd);
}

ctx_t *ctx_shutdown_ingress(ctx_shutdown_t *sd)
{
    return sd ? sd->ingress : NULL;
}

ctx_t *ctx_shutdown_draining(ctx_shutdown_t *sd)
{
    return sd ? sd->draining : NULL;
}

ctx_t *ctx_shutdown_work(ctx_shutdown_t *sd)
{
    return sd ? sd->work : NULL;
}

ctx_phase_t ctx_shutdown_phase(const ctx_shutdown_t *sd)
{
    return sd ? (ctx_phase_t)atomic_load(&((ctx_shutdown_t *)sd)->phase)
              : CTX_PHASE_SERVING;
}

int ctx_cleanup_ctx(ctx_t *from, ctx_time_t budget, ctx_t **out)
{
    ctx_t *wc;
    int rc;

    if (out)
        *out = NULL;
    if (!from || !out)
        return EINVAL;
    if ((rc = ctx_without_cancel(from, &wc)) != 0)
        return rc;
    rc = ctx_with_timeout(wc, budget, out);
    ctx_release(wc); /* the child holds it */
    return rc;
}

/* ------------------------------------------------------------ in flight */

int ctx_shutdown_enter(ctx_shutdown_t *sd)
{
    uint64_t v;
    if (!sd)
        return EINVAL;
    v = atomic_load(&sd->inflight);
    do {
        if (v & REFUSING)
            return ECANCELED;
    } while (!atomic_compare_exchange_weak(&sd->inflight, &v, v + 1));
    return 0;
}

void ctx_shutdown_leave(ctx_shutdown_t *sd)
{
    uint64_t v;
    if (!sd)
        return;
    v = atomic_fetch_sub(&sd->inflight, 1);
    CTX_ASSERT((v & ~REFUSING) != 0); /* more leaves than enters */
    if (v - 1 == REFUSING)
        ctx_cancel(sd->drained);
}

int64_t ctx_shutdown_inflight(const ctx_shutdown_t *sd)
{
    if (!sd)
        return 0;
    return (int64_t)(atomic_load(&((ctx_shutdown_t *)sd)->inflight) &
                     ~REFUSING);
}

/* Set the bit; whoever sees the count 0 with it cancels `drained`. */
static void refuse(ctx_shutdown_t *sd)
{
    uint64_t v = atomic_fetch_or(&sd->inflight, REFUSING);
    if (v == 0)
        ctx_cancel(sd->drained);
    ctx_cancel_cause(sd->ingress, ECANCELED, "shutdown: refusing");
}

/* ------------------------------------------------------------ jobs */

static int add_job(ctx_shutdown_t *sd, const char *name, ctx_stop_fn fn,
                   void *arg, ctx_time_t budget, bool force)
{
    struct job *j;
    if (!sd || !name || !fn || budget < 0)
        return EINVAL;
    if (!(j = ctx__calloc(1, sizeof *j)))
        return ENOMEM;
    strncpy(j->name, name, sizeof j->name - 1);
    j->sd = sd;
    j->fn = fn;
    j->arg = arg;
    j->budget = budget ? budget : sd->stop;
    j->force = force;
    atomic_init(&j->state, J_IDLE);
    ctx__lock(&sd->mu);
    if (sd->began) {
        ctx__unlock(&sd->mu);
        ctx__free(j);
        return EBUSY;
    }
    j->next = sd->jobs;
    sd->jobs = j;
    ctx__unlock(&sd->mu);
    return 0;
}

int ctx_shutdown_register(ctx_shutdown_t *sd, const char *name,
                          ctx_stop_fn stop, void *arg, ctx_time_t budget)
{
    return add_job(sd, name, stop, arg, budget, false);
}

int ctx_shutdown_on_force(ctx_shutdown_t *sd, const char *name, ctx_stop_fn fn,
                          void *arg)
{
    return add_job(sd, name, fn, arg, 0, true);
}

static int run_job(ctx_t *gc, void *arg)
{
    struct job *j = arg;
    ctx_time_t t = ctx_now();
    (void)gc;
    j->rc = j->fn(j->c, j->arg);
    j->took = ctx_now() - t;
    atomic_store(&j->state, J_RETURNED);
    ctx_cancel(j->returned);
    return 0;
}

/* Start j with a context ending at `until`. */
static void start_job(ctx_shutdown_t *sd, struct job *j, ctx_time_t until)
{
    ctx_go_opts_t go = CTX_GO_OPTS_INIT;
    char name[64];
    int rc;

    j->until = until;
    rc = ctx_cleanup_ctx(sd->work, until - ctx_now(), &j->c);
    if (rc == 0)
        rc = ctx_with_cancel(ctx_background(), &j->returned);
    if (rc != 0) { /* could not even start it: a failure, logged */
        j->rc = rc;
        atomic_store(&j->state, J_RETURNED);
        return;
    }
    atomic_store(&j->state, J_RUNNING);
    snprintf(name, sizeof name, "%s %s",
             j->force ? "force:" : "stop:", j->name);
    go.name = name;
    if (ctx_group_go_opts(sd->g, &go, run_job, j) != 0)
        run_job(NULL, j); /* no thread for it: here, then */
}

/*
 * Wait until c is done or `until`; in the drain phase (skippable) a skip
 * ends the wait too. A merged context costs an allocation and no thread;
 * without memory for it, a skip is noticed at `until` only.
 */
static void wait_for(ctx_shutdown_t *sd, ctx_t *c, ctx_time_t until,
                     bool skippable)
{
    ctx_t *both[2] = {c, sd->skip}, *m;
    if (skippable && ctx_merge(both, 2, &m) == 0) {
        ctx__wait_until(m, until);
        ctx_release(m);
        return;
    }
    ctx__wait_until(c, until);
}

/* Wait for j as wait_for does; true if it returned. */
static bool wait_job(ctx_shutdown_t *sd, struct job *j, ctx_time_t until,
                     bool skippable)
{
    if (atomic_load(&j->state) == J_RUNNING)
        wait_for(sd, j->returned, until, skippable);
    return atomic_load(&j->state) == J_RETURNED;
}

static void report_job(ctx_shutdown_t *sd, struct job *j)
{
    if (j->reported)
        return;
    j->reported = true;
    if (j->rc)
        say(sd, "%s \"%s\" failed: %s (%lld ms)",
            j->force ? "force action" : "subsystem", j->name,
            ctx_errname(j->rc), (long long)(j->took / CTX_MILLISECOND));
    else
        say(sd, "%s \"%s\" %s in %lld ms",
            j->force ? "force action" : "subsystem", j->name,
            j->force ? "ran" : "stopped",
            (long long)(j->took / CTX_MILLISECOND));
}

/* Stop the subsystems not started yet, newest first, each until its own
 * deadline capped at `cap`. False if one did not return in time. */
static bool stop_subsystems(ctx_shutdown_t *sd, struct job *jobs,
                            ctx_time_t cap, bool skippable)
{
    for (struct job *j = jobs; j; j = j->next) {
        ctx_time_t until, wait_until;
        if (j->force || atomic_load(&j->state) != J_IDLE)
            continue;
        until = ctx__time_add(ctx_now(), j->budget);
        if (until > cap)
            until = cap;
        start_job(sd, j, until);
        wait_until = ctx__time_add(until, STOP_GRACE);
        if (wait_until > cap)
            wait_until = cap;
        if (!wait_job(sd, j, wait_until, skippable))
            return false;
        report_job(sd, j);
    }
    return true;
}

/* ------------------------------------------------------------ driver */

int ctx_shutdown_start(ctx_shutdown_t *sd, const char *why)
{
    if (!sd)
        return EINVAL;
    if (ctx_done(sd->trigger))
        return EALREADY;
    ctx_cancel_cause(sd->trigger, ECANCELED, why ? why : "shutdown requested");
    return 0;
}

int ctx_shutdown_force(ctx_shutdown_t *sd)
{
    if (!sd)
        return EINVAL;
    ctx_shutdown_start(sd, "forced");
    ctx_cancel_cause(sd->skip, ECANCELED, "shutdown forced");
    return 0;
}

/* Whether the drain phase finished: in flight 0, every stop returned. */
static bool drain_phase(ctx_shutdown_t *sd, struct job *jobs)
{
    /* The budget runs from here; fixed before the phase is announced, so
     * that a test clock moved as soon as it is cannot move it. */
    ctx_time_t d_end = ctx__time_add(ctx_now(), sd->drain);

    /* Each phase is announced (with the work in flight) just before its
     * context is cancelled. */
    enter_phase(sd, CTX_PHASE_REFUSING, "listeners close");
    refuse(sd);
    enter_phase(sd, CTX_PHASE_DRAINING, NULL);
    ctx_cancel_cause(sd->draining, ECANCELED, "shutdown: draining");
    wait_for(sd, sd->drained, d_end, true);
    if (ctx_done(sd->skip))
        return false;
    if (ctx_shutdown_inflight(sd) != 0) {
        say(sd, "drain budget of %lld ms passed with %lld in flight",
            (long long)(sd->drain / CTX_MILLISECOND),
            (long long)ctx_shutdown_inflight(sd));
        return false;
    }
    say(sd, "in-flight work finished");
    if (!stop_subsystems(sd, jobs, CTX_NO_DEADLINE, true)) {
        if (!ctx_done(sd->skip))
            say(sd, "a subsystem overran its budget");
        return false;
    }
    return true;
}

/* After the force budget: log what did not stop; how many. */
static int stragglers(ctx_shutdown_t *sd, struct job *jobs)
{
    int n = 0;
    if (ctx_shutdown_inflight(sd) != 0) {
        say(sd, "did not stop: %lld work item(s) in flight",
            (long long)ctx_shutdown_inflight(sd));
        n++;
    }
    for (struct job *j = jobs; j; j = j->next) {
        int st = atomic_load(&j->state);
        if (st == J_RETURNED)
            continue;
        say(sd, "did not stop: %s \"%s\" (%s)",
            j->force ? "force action" : "subsystem", j->name,
            st == J_RUNNING ? "still running"
                            : "never stopped: work in flight");
        n++;
    }
    return n;
}

static int force_phase(ctx_shutdown_t *sd, struct job *jobs)
{
    ctx_time_t f_end = ctx__time_add(ctx_now(), sd->force); /* as d_end */
    int left;

    refuse(sd);
    enter_phase(sd, CTX_PHASE_FORCING,
                ctx_done(sd->skip) ? "skipped to force" : NULL);
    ctx_cancel_cause(sd->work, ECANCELED, "shutdown: forced");
    for (struct job *j = jobs; j; j = j->next)
        if (j->force)
            start_job(sd, j, f_end);
    wait_for(sd, sd->drained, f_end, false);
    if (ctx_shutdown_inflight(sd) == 0)
        stop_subsystems(sd, jobs, f_end, false);
    for (struct job *j = jobs; j; j = j->next)
        if (atomic_load(&j->state) != J_IDLE && wait_job(sd, j, f_end, false))
            report_job(sd, j);
    left = stragglers(sd, jobs);
    if (left == 0)
        return 0;
    if (sd->log_fd >= 0) {
        say(sd, "tasks still running:");
        ctx_dump(sd->log_fd);
    }
    if (!sd->no_exit) {
        say(sd, "exiting with status %d", sd->exit_status);
        fflush(NULL);
        _exit(sd->exit_status);
    }
    return left;
}

int ctx_shutdown_wait(ctx_shutdown_t *sd)
{
    struct job *jobs;
    const char *why = NULL;
    ctx_time_t zero = 0;
    char more[128];
    int rc = 0;

    if (!sd)
        return EINVAL;
    if (atomic_exchange(&sd->waited, 1))
        return EALREADY;
    ctx_wait(sd->trigger, CTX_NO_DEADLINE);
    /* on_trigger may still be running on the thread that ended it. */
    atomic_compare_exchange_strong(&sd->t0, &zero, ctx_now());
    ctx__lock(&sd->mu);
    sd->began = true;
    jobs = sd->jobs;
    ctx__unlock(&sd->mu);
    ctx_cause(sd->trigger, &why);
    snprintf(more, sizeof more, "began: %s", why ? why : "parent done");
    if (sd->lame_duck > 0) {
        enter_phase(sd, CTX_PHASE_LAME_DUCK, more);
        /* On the schedule from t0, so budgets do not drift. */
        ctx__wait_until(sd->skip,
                        ctx__time_add(atomic_load(&sd->t0), sd->lame_duck));
    } else {
        say(sd, "%s", more);
    }
    if (ctx_done(sd->skip) || !drain_phase(sd, jobs)) {
        if (force_phase(sd, jobs) != 0)
            rc = EBUSY;
        else
            rc = ETIMEDOUT;
    }
    enter_phase(sd, CTX_PHASE_DONE,
                rc == 0           ? "clean"
                : rc == ETIMEDOUT ? "forced, everything stopped"
                                  : "forced, something did not stop");
    return rc;
}
