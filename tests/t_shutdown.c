/* SPDX-License-Identifier: MIT */
/*
 * The phased shutdown manager (SPEC §4): phases in order with exact
 * budgets on the test clock, in-flight counting, subsystems stopped in
 * reverse order with fresh bounded contexts, force actions, stragglers
 * named, a second signal skipping to force, bad configuration refused.
 * Runs in its own process (it takes over SIGINT and SIGTERM).
 */
#include "t.h"

#include <ctx/shutdown.h>

#include "internal.h"

#include <fcntl.h>
#include <signal.h>

/* Before main, as ctx_signal_init asks: the harness's threads inherit. */
__attribute__((constructor)) static void take_over_signals(void)
{
    if (ctx_signal_init() != 0)
        abort();
}

/* ------------------------------------------------------------ recorder */

#define MAX_EV 16

struct rec {
    pthread_mutex_t mu;
    int n;
    ctx_phase_t phase[MAX_EV];
    ctx_time_t elapsed[MAX_EV];
    int64_t inflight[MAX_EV];
    char order[64]; /* stops and force actions, in the order they ran */
};

static void on_phase(ctx_shutdown_t *sd, ctx_phase_t p, ctx_time_t e, void *arg)
{
    struct rec *r = arg;
    pthread_mutex_lock(&r->mu);
    if (r->n < MAX_EV) {
        r->phase[r->n] = p;
        r->elapsed[r->n] = e;
        r->inflight[r->n] = ctx_shutdown_inflight(sd);
        r->n++;
    }
    pthread_mutex_unlock(&r->mu);
}

static int rec_count(struct rec *r)
{
    int n;
    pthread_mutex_lock(&r->mu);
    n = r->n;
    pthread_mutex_unlock(&r->mu);
    return n;
}

static void rec_mark(struct rec *r, char c)
{
    pthread_mutex_lock(&r->mu);
    size_t n = strlen(r->order);
    if (n + 1 < sizeof r->order)
        r->order[n] = c;
    pthread_mutex_unlock(&r->mu);
}

/* Wait (real time) until the phase callback has run for phase p (the
 * phase is published before its callback runs). */
static int wait_phase(struct rec *r, ctx_phase_t p)
{
    for (int i = 0; i < 20000; i++) {
        int seen = 0;
        pthread_mutex_lock(&r->mu);
        for (int k = 0; k < r->n; k++)
            seen |= r->phase[k] == p;
        pthread_mutex_unlock(&r->mu);
        if (seen)
            return 1;
        t_sleep_ns(100000);
    }
    return 0;
}

struct driver {
    pthread_t t;
    ctx_shutdown_t *sd;
    int rc;
};

static void *drive(void *p)
{
    struct driver *d = p;
    d->rc = ctx_shutdown_wait(d->sd);
    return NULL;
}

static void opts_for_test(ctx_shutdown_opts_t *o, struct rec *r, int log_fd)
{
    ctx_shutdown_opts_t init = CTX_SHUTDOWN_OPTS_INIT;
    *o = init;
    o->no_signals = true;
    o->no_exit = true;
    o->on_phase = on_phase;
    o->arg = r;
    o->log_fd = log_fd;
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
}

/* Read what is in a pipe now (non-blocking read end). */
static void read_log(int fd, char *buf, size_t cap)
{
    size_t off = 0;
    ssize_t n;
    while (off + 1 < cap && (n = read(fd, buf + off, cap - 1 - off)) > 0)
        off += (size_t)n;
    buf[off] = 0;
}

static int log_pipe(int fds[2])
{
    if (pipe(fds) != 0)
        return -1;
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    return 0;
}

/* ------------------------------------------------------------ config */

static int stop_ok(ctx_t *c, void *arg)
{
    (void)c;
    (void)arg;
    return 0;
}

T_CASE(bad_configuration_is_refused)
{
    ctx_shutdown_opts_t o = CTX_SHUTDOWN_OPTS_INIT, bad;
    ctx_shutdown_t *sd = (ctx_shutdown_t *)1;
    int usr1[] = {SIGUSR1}, many[9] = {SIGTERM};

    T_ERR(ctx_shutdown_new(NULL, &sd), EINVAL);
    T_NULL(sd);
    T_ERR(ctx_shutdown_new(&o, NULL), EINVAL);
    bad = o;
    bad.drain = -1;
    T_ERR(ctx_shutdown_new(&bad, &sd), EINVAL);
    bad = o;
    bad.force = -CTX_SECOND;
    T_ERR(ctx_shutdown_new(&bad, &sd), EINVAL);
    bad = o;
    bad.lame_duck = -1;
    T_ERR(ctx_shutdown_new(&bad, &sd), EINVAL);
    bad = o;
    bad.stop = -1;
    T_ERR(ctx_shutdown_new(&bad, &sd), EINVAL);
    bad = o;
    bad.signals = usr1; /* not one ctx_signal_init takes over */
    bad.n_signals = 1;
    T_ERR(ctx_shutdown_new(&bad, &sd), EINVAL);
    bad.signals = many;
    bad.n_signals = 9;
    T_ERR(ctx_shutdown_new(&bad, &sd), EINVAL);
    bad.signals = NULL;
    bad.n_signals = 1;
    T_ERR(ctx_shutdown_new(&bad, &sd), EINVAL);
    T_NULL(sd);
    T_EQ(t_live_contexts(), 0);

    o.no_signals = true;
    o.log_fd = -1;
    T_OK(ctx_shutdown_new(&o, &sd));
    T_ERR(ctx_shutdown_register(sd, "x", stop_ok, NULL, -1), EINVAL);
    T_ERR(ctx_shutdown_register(sd, NULL, stop_ok, NULL, 0), EINVAL);
    T_ERR(ctx_shutdown_register(sd, "x", NULL, NULL, 0), EINVAL);
    T_ERR(ctx_shutdown_register(NULL, "x", stop_ok, NULL, 0), EINVAL);
    T_ERR(ctx_shutdown_on_force(sd, "x", NULL, NULL), EINVAL);
    T_ERR(ctx_shutdown_enter(NULL), EINVAL);
    T_ERR(ctx_shutdown_start(NULL, NULL), EINVAL);
    T_ERR(ctx_shutdown_wait(NULL), EINVAL);
    T_EQ(ctx_shutdown_phase(sd), CTX_PHASE_SERVING);
    T_EQ(ctx_shutdown_elapsed(sd), 0);
    T_OK(ctx_shutdown_start(sd, "test"));
    T_ERR(ctx_shutdown_start(sd, "again"), EALREADY);
    /* Registering after the shutdown began: refused, nothing added. */
    T_ERR(ctx_shutdown_register(sd, "late", stop_ok, NULL, 0), EBUSY);
    T_ERR(ctx_shutdown_on_force(sd, "late", stop_ok, NULL), EBUSY);
    T_OK(ctx_shutdown_wait(sd));
    T_ERR(ctx_shutdown_wait(sd), EALREADY);
    T_EQ(ctx_shutdown_phase(sd), CTX_PHASE_DONE);
    ctx_shutdown_free(sd);
    ctx_shutdown_free(NULL);
    T_STREQ(ctx_phase_name(CTX_PHASE_LAME_DUCK), "lame duck");
    T_STREQ(ctx_phase_name((ctx_phase_t)99), "?");
}

/* Fail the 1st, 2nd, ... allocation of ctx_shutdown_new and of a
 * registration: ENOMEM, *out NULL, no context left; then it succeeds. */
T_CASE(allocation_failures_leave_nothing)
{
    ctx_shutdown_opts_t o = CTX_SHUTDOWN_OPTS_INIT;
    ctx_shutdown_t *sd;
    int done = 0;
    long n;
    o.log_fd = -1; /* with signals: the notify context is swept too */
    for (n = 1; n < 64 && !done; n++) {
        int rc;
        sd = (ctx_shutdown_t *)1;
        ctx__fault_arm(CTX__FAULT_ALLOC, n, 0);
        rc = ctx_shutdown_new(&o, &sd);
        ctx__fault_disarm_all();
        if (rc == 0) {
            done = 1;
            ctx__fault_arm(CTX__FAULT_ALLOC, 1, 0);
            T_ERR(ctx_shutdown_register(sd, "x", stop_ok, NULL, 0), ENOMEM);
            ctx__fault_disarm_all();
            T_OK(ctx_shutdown_register(sd, "x", stop_ok, NULL, 0));
            ctx_shutdown_free(sd);
        } else {
            T_ERR(rc, ENOMEM);
            T_NULL(sd);
        }
        T_EQ(t_live_contexts(), 0);
    }
    T_TRUE(done);
    T_GT(n, 10); /* the manager, its contexts, its group, ... */
}

/* ------------------------------------------------------------ phases */

struct stopper {
    struct rec *r;
    char mark;
    ctx_time_t want_budget;
    atomic_int bad;
};

static int stop_marking(ctx_t *c, void *arg)
{
    struct stopper *s = arg;
    ctx_time_t dl;
    /* A fresh context: not cancelled, its own deadline. */
    if (ctx_done(c) || !ctx_deadline(c, &dl) ||
        dl - ctx_now() != s->want_budget)
        atomic_store(&s->bad, 1);
    rec_mark(s->r, s->mark);
    return s->mark == 'b' ? EIO : 0; /* a failing stop is logged */
}

T_CASE(clean_drain_runs_the_phases_on_schedule)
{
    ctx_shutdown_opts_t o;
    struct rec r;
    struct driver d;
    struct stopper sa, sb, sc;
    char log[4096];
    int lfd[2];

    T_OK(log_pipe(lfd));
    opts_for_test(&o, &r, lfd[1]);
    o.lame_duck = 2 * CTX_SECOND;
    o.drain = 10 * CTX_SECOND;
    T_OK(ctx_testclock_enable());
    T_OK(ctx_shutdown_new(&o, &d.sd));
    sa = (struct stopper){&r, 'a', 300 * CTX_MILLISECOND, 0};
    sb = (struct stopper){&r, 'b', 2 * CTX_SECOND, 0};
    sc = (struct stopper){&r, 'c', 2 * CTX_SECOND, 0};
    T_OK(ctx_shutdown_register(d.sd, "a", stop_marking, &sa,
                               300 * CTX_MILLISECOND));
    T_OK(ctx_shutdown_register(d.sd, "b", stop_marking, &sb, 0));
    T_OK(ctx_shutdown_register(d.sd, "c", stop_marking, &sc, 0));
    T_OK(ctx_shutdown_enter(d.sd));
    T_OK(ctx_shutdown_enter(d.sd));
    T_EQ(ctx_shutdown_inflight(d.sd), 2);
    T_OK(pthread_create(&d.t, NULL, drive, &d));
    T_OK(ctx_shutdown_start(d.sd, "test stop"));
    T_TRUE(wait_phase(&r, CTX_PHASE_LAME_DUCK));
    /* Lame duck: still accepting; nothing cancelled. */
    T_OK(ctx_shutdown_enter(d.sd));
    T_FALSE(ctx_done(ctx_shutdown_ingress(d.sd)));
    T_OK(ctx_testclock_advance(2 * CTX_SECOND - 1));
    t_sleep_ns(2000000);
    T_EQ(ctx_shutdown_phase(d.sd), CTX_PHASE_LAME_DUCK); /* not yet */
    T_OK(ctx_testclock_advance(1));
    T_TRUE(wait_phase(&r, CTX_PHASE_DRAINING));
    T_ERR(ctx_shutdown_enter(d.sd), ECANCELED);
    T_ERR(ctx_err(ctx_shutdown_ingress(d.sd)), ECANCELED);
    T_ERR(ctx_err(ctx_shutdown_draining(d.sd)), ECANCELED);
    T_OK(ctx_err(ctx_shutdown_work(d.sd)));
    T_EQ(ctx_shutdown_inflight(d.sd), 3);
    ctx_shutdown_leave(d.sd);
    ctx_shutdown_leave(d.sd);
    t_sleep_ns(2000000);
    T_EQ(strlen(r.order), 0); /* stops wait for the in-flight work */
    ctx_shutdown_leave(d.sd);
    T_OK(pthread_join(d.t, NULL));
    T_OK(d.rc);
    T_STREQ(r.order, "cba"); /* reverse registration order */
    T_EQ(atomic_load(&sa.bad) + atomic_load(&sb.bad) + atomic_load(&sc.bad), 0);
    T_OK(ctx_err(ctx_shutdown_work(d.sd)));
    T_EQ(r.n, 4);
    T_EQ(r.phase[0], CTX_PHASE_LAME_DUCK);
    T_EQ(r.elapsed[0], 0);
    T_EQ(r.inflight[0], 2);
    T_EQ(r.phase[1], CTX_PHASE_REFUSING);
    T_EQ(r.elapsed[1], 2 * CTX_SECOND);
    T_EQ(r.inflight[1], 3);
    T_EQ(r.phase[2], CTX_PHASE_DRAINING);
    T_EQ(r.elapsed[2], 2 * CTX_SECOND);
    T_EQ(r.phase[3], CTX_PHASE_DONE);
    T_EQ(r.elapsed[3], 2 * CTX_SECOND);
    T_EQ(r.inflight[3], 0);
    read_log(lfd[0], log, sizeof log);
    T_TRUE(strstr(log, "shutdown: +0.000 s  lame duck (in flight 2); "
                       "began: test stop\n") != NULL);
    T_TRUE(strstr(log, "shutdown: +2.000 s  refusing  (in flight 3)") != NULL);
    T_TRUE(strstr(log, "subsystem \"b\" failed: EIO") != NULL);
    T_TRUE(strstr(log, "subsystem \"a\" stopped in 0 ms") != NULL);
    T_TRUE(strstr(log, "done      (in flight 0); clean") != NULL);
    ctx_shutdown_free(d.sd);
    ctx_testclock_disable();
    close(lfd[0]);
    close(lfd[1]);
}

struct holder {
    ctx_shutdown_t *sd;
    pthread_t t;
};

/* Work that stops only when the work context is cancelled (force). */
static void *hold_until_forced(void *p)
{
    struct holder *h = p;
    ctx_wait(ctx_shutdown_work(h->sd), CTX_NO_DEADLINE);
    ctx_shutdown_leave(h->sd);
    return NULL;
}

static int force_action(ctx_t *c, void *arg)
{
    struct stopper *s = arg;
    ctx_time_t dl;
    if (ctx_done(c) || !ctx_deadline(c, &dl))
        atomic_store(&s->bad, 1);
    rec_mark(s->r, s->mark);
    return 0;
}

T_CASE(drain_budget_passed_goes_to_force)
{
    ctx_shutdown_opts_t o;
    struct rec r;
    struct driver d;
    struct holder h;
    struct stopper sf, ss;
    char log[4096];
    int lfd[2];

    T_OK(log_pipe(lfd));
    opts_for_test(&o, &r, lfd[1]);
    o.drain = 3 * CTX_SECOND;
    o.force = 2 * CTX_SECOND;
    T_OK(ctx_testclock_enable());
    T_OK(ctx_shutdown_new(&o, &d.sd));
    sf = (struct stopper){&r, 'f', 0, 0};
    ss = (struct stopper){&r, 's', o.stop, 0};
    T_OK(ctx_shutdown_on_force(d.sd, "close fds", force_action, &sf));
    T_OK(ctx_shutdown_register(d.sd, "store", stop_marking, &ss, 0));
    T_OK(ctx_shutdown_enter(d.sd));
    h.sd = d.sd;
    T_OK(pthread_create(&h.t, NULL, hold_until_forced, &h));
    T_OK(pthread_create(&d.t, NULL, drive, &d));
    T_OK(ctx_shutdown_start(d.sd, NULL));
    T_TRUE(wait_phase(&r, CTX_PHASE_DRAINING));
    T_OK(ctx_testclock_advance(3 * CTX_SECOND - 1));
    t_sleep_ns(2000000);
    T_EQ(ctx_shutdown_phase(d.sd), CTX_PHASE_DRAINING);
    T_OK(ctx_testclock_advance(1));
    T_OK(pthread_join(d.t, NULL));
    T_OK(pthread_join(h.t, NULL));
    T_ERR(d.rc, ETIMEDOUT);
    T_ERR(ctx_err(ctx_shutdown_work(d.sd)), ECANCELED);
    T_STREQ(r.order, "fs"); /* force action, then the subsystem */
    T_EQ(atomic_load(&sf.bad) + atomic_load(&ss.bad), 0);
    T_EQ(r.n, 4); /* refusing, draining, forcing, done */
    T_EQ(r.phase[2], CTX_PHASE_FORCING);
    T_EQ(r.elapsed[2], 3 * CTX_SECOND);
    T_EQ(r.inflight[2], 1);
    T_EQ(r.phase[3], CTX_PHASE_DONE);
    read_log(lfd[0], log, sizeof log);
    T_TRUE(strstr(log, "drain budget of 3000 ms passed with 1 in flight") !=
           NULL);
    T_TRUE(strstr(log, "force action \"close fds\" ran") != NULL);
    T_TRUE(strstr(log, "forced, everything stopped") != NULL);
    ctx_shutdown_free(d.sd);
    ctx_testclock_disable();
    close(lfd[0]);
    close(lfd[1]);
}

struct stuck {
    atomic_int release;
    atomic_int entered;
};

/* A stop that ignores its context until the test lets it go. */
static int stop_stuck(ctx_t *c, void *arg)
{
    struct stuck *s = arg;
    (void)c;
    atomic_store(&s->entered, 1);
    while (!atomic_load(&s->release))
        t_sleep_ns(1000000);
    return 0;
}

T_CASE(stragglers_are_named)
{
    ctx_shutdown_opts_t o;
    struct rec r;
    struct driver d;
    struct stuck st = {0, 0};
    struct stopper ok;
    char log[8192];
    int lfd[2];

    T_OK(log_pipe(lfd));
    opts_for_test(&o, &r, lfd[1]);
    o.force = CTX_SECOND;
    T_OK(ctx_testclock_enable());
    T_OK(ctx_shutdown_new(&o, &d.sd));
    ok = (struct stopper){&r, 'o', CTX_SECOND, 0};
    T_OK(ctx_shutdown_register(d.sd, "stuck-db", stop_stuck, &st, CTX_SECOND));
    T_OK(ctx_shutdown_register(d.sd, "cache", stop_marking, &ok, CTX_SECOND));
    T_OK(pthread_create(&d.t, NULL, drive, &d));
    T_OK(ctx_shutdown_start(d.sd, NULL));
    while (!atomic_load(&st.entered)) /* cache stopped, stuck-db runs */
        t_sleep_ns(100000);
    T_STREQ(r.order, "o");
    /* Its budget and the grace after it: the manager forces. */
    T_OK(ctx_testclock_advance(CTX_SECOND + 100 * CTX_MILLISECOND));
    T_TRUE(wait_phase(&r, CTX_PHASE_FORCING));
    T_OK(ctx_testclock_advance(CTX_SECOND));
    T_OK(pthread_join(d.t, NULL));
    T_ERR(d.rc, EBUSY);
    read_log(lfd[0], log, sizeof log);
    T_TRUE(strstr(log, "a subsystem overran its budget") != NULL);
    T_TRUE(strstr(log, "did not stop: subsystem \"stuck-db\" "
                       "(still running)") != NULL);
    T_TRUE(strstr(log, "task stop: stuck-db") != NULL); /* the dump */
    T_TRUE(strstr(log, "forced, something did not stop") != NULL);
    atomic_store(&st.release, 1);
    ctx_shutdown_free(d.sd); /* waits for the stop to return */
    ctx_testclock_disable();
    close(lfd[0]);
    close(lfd[1]);
}

T_CASE(second_signal_skips_to_force)
{
    ctx_shutdown_opts_t o = CTX_SHUTDOWN_OPTS_INIT;
    struct rec r;
    struct driver d;
    struct holder h;

    memset(&r, 0, sizeof r);
    pthread_mutex_init(&r.mu, NULL);
    o.lame_duck = CTX_HOUR; /* only the second signal ends it */
    o.on_phase = on_phase;
    o.arg = &r;
    o.log_fd = -1;
    o.no_exit = true;
    T_OK(ctx_shutdown_new(&o, &d.sd));
    T_OK(ctx_shutdown_enter(d.sd));
    h.sd = d.sd;
    T_OK(pthread_create(&h.t, NULL, hold_until_forced, &h));
    T_OK(pthread_create(&d.t, NULL, drive, &d));
    T_OK(kill(getpid(), SIGTERM));
    T_TRUE(wait_phase(&r, CTX_PHASE_LAME_DUCK));
    T_EQ(ctx_signal_of(ctx_shutdown_work(d.sd)), 0);
    /* Without the manager's second registration this would kill us. */
    T_OK(kill(getpid(), SIGINT));
    T_OK(pthread_join(d.t, NULL));
    T_OK(pthread_join(h.t, NULL));
    T_ERR(d.rc, ETIMEDOUT);
    T_EQ(rec_count(&r), 3);
    T_EQ(r.phase[0], CTX_PHASE_LAME_DUCK);
    T_EQ(r.phase[1], CTX_PHASE_FORCING);
    T_LT(r.elapsed[1], 10 * CTX_SECOND);
    T_EQ(r.phase[2], CTX_PHASE_DONE);
    ctx_shutdown_free(d.sd);
}

T_CASE(parent_end_starts_it)
{
    ctx_shutdown_opts_t o;
    struct rec r;
    ctx_t *parent;
    const char *why;
    opts_for_test(&o, &r, -1);
    T_OK(ctx_with_value(ctx_background(), &r, &r, NULL, &parent));
    o.parent = parent;
    {
        ctx_shutdown_t *sd;
        T_OK(ctx_shutdown_new(&o, &sd));
        T_TRUE(ctx_value(ctx_shutdown_work(sd), &r) == &r);
        ctx_cancel_cause(parent, EPIPE, "upstream went away");
        T_OK(ctx_shutdown_wait(sd));
        T_EQ(r.n, 3); /* refusing, draining, done */
        T_EQ(ctx_cause(ctx_shutdown_ingress(sd), &why), ECANCELED);
        T_STREQ(why, "shutdown: refusing");
        ctx_shutdown_free(sd);
    }
    ctx_release(parent);
}

T_CASE(cleanup_ctx_is_fresh_and_bounded)
{
    ctx_t *c, *clean;
    ctx_time_t dl;
    T_OK(ctx_with_value(ctx_background(), &dl, &dl, NULL, &c));
    ctx_cancel(c);
    T_ERR(ctx_cleanup_ctx(NULL, CTX_SECOND, &clean), EINVAL);
    T_ERR(ctx_cleanup_ctx(c, CTX_SECOND, NULL), EINVAL);
    T_OK(ctx_cleanup_ctx(c, CTX_SECOND, &clean));
    T_OK(ctx_err(clean));
    T_TRUE(ctx_value(clean, &dl) == &dl);
    T_TRUE(ctx_deadline(clean, &dl));
    T_LE(dl - ctx_now(), CTX_SECOND);
    T_GT(dl - ctx_now(), CTX_SECOND / 2);
    ctx_release(clean);
    T_OK(ctx_cleanup_ctx(c, 0, &clean));
    T_ERR(ctx_err(clean), ETIMEDOUT);
    ctx_release(clean);
    ctx_release(c);
}

/* ------------------------------------------------------------ in flight */

struct churn {
    ctx_shutdown_t *sd;
    atomic_long entered;
};

static void *enter_leave(void *p)
{
    struct churn *ch = p;
    for (;;) {
        if (ctx_shutdown_enter(ch->sd) != 0)
            return NULL;
        atomic_fetch_add(&ch->entered, 1);
        ctx_shutdown_leave(ch->sd);
    }
}

T_CASE(enter_and_refuse_race)
{
    ctx_shutdown_opts_t o;
    struct rec r;
    long rounds = t_scale(200);
    opts_for_test(&o, &r, -1);
    o.drain = CTX_HOUR;
    for (long i = 0; i < rounds && !t_failed(); i++) {
        struct churn ch;
        pthread_t t[4];
        T_OK(ctx_shutdown_new(&o, &ch.sd));
        atomic_init(&ch.entered, 0);
        for (int k = 0; k < 4; k++)
            T_OK(pthread_create(&t[k], NULL, enter_leave, &ch));
        t_sleep_ns(20000 + (i % 7) * 10000);
        T_OK(ctx_shutdown_start(ch.sd, NULL));
        /* The drain finishes: whichever of the refuse and the last
         * leave comes second ends it, exactly once. */
        T_OK(ctx_shutdown_wait(ch.sd));
        for (int k = 0; k < 4; k++)
            T_OK(pthread_join(t[k], NULL));
        T_EQ(ctx_shutdown_inflight(ch.sd), 0);
        T_ERR(ctx_shutdown_enter(ch.sd), ECANCELED);
        ctx_shutdown_free(ch.sd);
    }
}
