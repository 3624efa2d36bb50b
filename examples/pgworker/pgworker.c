/* SPDX-License-Identifier: MIT */
/*
 * pgworker: a pool of workers consuming jobs from a PostgreSQL table, each
 * job under a deadline, draining gracefully on SIGTERM or SIGINT.
 *
 *     pgworker [-w WORKERS] [-d JOB_DEADLINE_MS] [-D DRAIN_MS]
 *              [-F FORCE_MS] [-p POLL_MS] [-r RUN] [-e]
 *
 * The connection comes from the PG* environment. The queue is the table
 *     jobs(id bigint primary key, work_ms int, state text default
 *          'queued', attempts int default 0, done_by text)
 *     effects(job_id bigint, run text)
 * (created if missing): a job is done when its effect is written and its
 * state set to 'done', in the one transaction that holds its row lock.
 * -e: exit once the queue is empty. At exit one line on stdout:
 *     pgworker: run=RUN claimed=N done=N rolled_back=N failed=N
 * Exit status: 0 drained (or the queue empty); 3 the force phase cut
 * jobs (rolled back, still queued); 2 work still running after the force
 * budget; 1 an error (the database unreachable, bad usage).
 *
 * DESIGN
 *
 * Exactly once. A worker claims a job with SELECT ... FOR UPDATE SKIP
 * LOCKED inside a transaction, does the work, then writes the job's
 * effect and marks it done and commits, all in that transaction. So a job
 * is done exactly when that commit happened: a worker killed at any point
 * before it leaves the transaction open, which the server rolls back when
 * the connection drops (the job is still queued and another run takes
 * it); killed after it, the job is done and is never claimed again. The
 * commit (and a rollback) run with a fresh bounded context, made with
 * ctx_without_cancel from the job's, never the job's own: a job that
 * finished its work is committed even if the force phase starts during
 * the commit.
 *
 * Phases, without ctx/shutdown.h (not in this tree yet): ctx_signal_notify
 * and a group, directly. `intake` is the signal context: once done, no
 * worker claims a new job (the claim checks it first), and idle workers
 * waiting for jobs wake and leave. `work` is independent of the signal:
 * in-flight jobs keep running under it (each under its own deadline, a
 * child of it) for the drain budget. Then the force phase cancels `work`:
 * the jobs still running see their context done, roll back and leave.
 * A second signal during the drain skips to the force phase. If anything
 * still runs after the force budget, the process logs what (ctx_dump)
 * and exits 2.
 */
#define _POSIX_C_SOURCE 200809L
#include <ctx/group.h>
#include <ctx/obs.h>
#include <ctx/pq.h>
#include <ctx/sig.h>

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_WORKERS 64

static struct {
    int workers;
    ctx_time_t job_deadline, drain, force, poll, commit;
    const char *run;
    bool exit_when_empty;
} opt = {4,
         2 * CTX_SECOND,
         5 * CTX_SECOND,
         2 * CTX_SECOND,
         50 * CTX_MILLISECOND,
         5 * CTX_SECOND,
         "run",
         false};

static ctx_t *intake;   /* done: claim no new job */
static ctx_t *finished; /* done: every worker has left */
static atomic_int live_workers;
static atomic_long claimed, done, rolled_back, failed;
static atomic_int errors;

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS jobs (id bigint PRIMARY KEY, work_ms int "
    "NOT NULL, state text NOT NULL DEFAULT 'queued', attempts int NOT NULL "
    "DEFAULT 0, done_by text);"
    "CREATE TABLE IF NOT EXISTS effects (job_id bigint NOT NULL, run text)";

/* Run q (with n text parameters; n < 0: several statements, no
 * parameters) under c; 0 or the error, logged. */
static int sql(ctx_t *c, PGconn *db, const char *q, int n,
               const char *const *vals, PGresult **out)
{
    PGresult *r;
    int rc = n < 0 ? ctx_pq_exec(c, db, q, &r)
                   : ctx_pq_exec_params(c, db, q, n, vals, &r);
    if (rc == EIO)
        fprintf(stderr, "pgworker: %s: %s", q, PQresultErrorMessage(r));
    else if (rc == ECONNRESET || rc == ECONNABORTED)
        fprintf(stderr, "pgworker: %s: %s", q, PQerrorMessage(db));
    if (out && rc == 0)
        *out = r;
    else
        PQclear(r);
    return rc;
}

/* A fresh context for cleanup: c's values, not its end, and a time limit
 * of its own (Go's context.WithoutCancel + WithTimeout). */
static int fresh_ctx(ctx_t *c, ctx_t **out)
{
    ctx_t *base;
    int rc = ctx_without_cancel(c, &base);
    if (rc != 0) {
        *out = NULL;
        return rc;
    }
    rc = ctx_with_timeout(base, opt.commit, out);
    ctx_release(base);
    return rc;
}

/* End the transaction with a fresh context: c may be done already. */
static int finish_tx(ctx_t *c, PGconn *db, const char *how)
{
    ctx_t *fresh;
    int rc = fresh_ctx(c, &fresh);
    if (rc != 0)
        return rc;
    rc = sql(fresh, db, how, 0, NULL, NULL);
    ctx_cancel(fresh);
    ctx_release(fresh);
    return rc;
}

/*
 * Claim one job and do it. Returns 0 after a job (done or rolled back),
 * EAGAIN when the queue had none, or an error (the connection failed, or
 * c was cancelled: the force phase).
 */
static int one_job(ctx_t *c, PGconn *db)
{
    static const char claim[] =
        "SELECT id, work_ms FROM jobs WHERE state = 'queued' "
        "ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED";
    char id[24];
    const char *vals[2] = {id, opt.run};
    PGresult *r;
    ctx_t *job, *fresh;
    int rc, work_ms;

    if (ctx_done(intake))
        return ECANCELED;
    if ((rc = sql(c, db, "BEGIN", 0, NULL, NULL)) != 0)
        return rc;
    if ((rc = sql(c, db, claim, 0, NULL, &r)) != 0) {
        finish_tx(c, db, "ROLLBACK");
        return rc;
    }
    if (PQntuples(r) == 0) {
        PQclear(r);
        finish_tx(c, db, "COMMIT");
        return EAGAIN;
    }
    snprintf(id, sizeof id, "%s", PQgetvalue(r, 0, 0));
    work_ms = atoi(PQgetvalue(r, 0, 1));
    PQclear(r);
    atomic_fetch_add(&claimed, 1);

    /* The work, under the job's deadline (a child of the work context). */
    if ((rc = ctx_with_timeout(c, opt.job_deadline, &job)) != 0) {
        finish_tx(c, db, "ROLLBACK");
        return rc;
    }
    rc = ctx_sleep(job, work_ms * CTX_MILLISECOND);

    /* Its result, committed with a fresh bounded context. */
    if (fresh_ctx(job, &fresh) == 0) {
        if (rc == 0 &&
            (rc = sql(fresh, db,
                      "INSERT INTO effects (job_id, run) VALUES ($1, $2)", 2,
                      vals, NULL)) == 0 &&
            (rc = sql(fresh, db,
                      "UPDATE jobs SET state = 'done', done_by = $2 "
                      "WHERE id = $1",
                      2, vals, NULL)) == 0 &&
            (rc = sql(fresh, db, "COMMIT", 0, NULL, NULL)) == 0) {
            atomic_fetch_add(&done, 1);
        } else {
            sql(fresh, db, "ROLLBACK", 0, NULL, NULL);
            atomic_fetch_add(&rolled_back, 1);
            /* Its own deadline passed (not a shutdown): one attempt used;
             * three, and it fails for good. */
            if (rc == ETIMEDOUT && !ctx_done(c)) {
                fprintf(stderr, "pgworker: job %s: past its deadline\n", id);
                sql(fresh, db,
                    "UPDATE jobs SET attempts = attempts + 1, state = CASE "
                    "WHEN attempts >= 2 THEN 'failed' ELSE state END "
                    "WHERE id = $1",
                    1, vals, NULL);
                atomic_fetch_add(&failed, 1);
            }
        }
        ctx_cancel(fresh);
        ctx_release(fresh);
    }
    ctx_cancel(job);
    ctx_release(job);
    return ctx_done(c) ? ctx_err(c) : 0;
}

static int worker(ctx_t *c, void *arg)
{
    PGconn *db = NULL;
    char err[256];
    int rc;

    (void)arg;
    rc = ctx_pq_connect(c, "", &db, err, sizeof err);
    if (rc != 0 && !ctx_done(c))
        fprintf(stderr, "pgworker: connect: %s\n", err);
    while (rc == 0 && !ctx_done(intake)) {
        rc = one_job(c, db);
        if (rc == EAGAIN) {
            if (opt.exit_when_empty)
                break;
            ctx_sleep(intake, opt.poll); /* a signal ends it: leave */
            rc = 0;
        }
    }
    if (rc != 0 && rc != ECANCELED && rc != EAGAIN && !ctx_done(c))
        atomic_fetch_add(&errors, 1);
    PQfinish(db);
    if (atomic_fetch_sub(&live_workers, 1) == 1)
        ctx_cancel(finished);
    return 0;
}

static int setup(void)
{
    PGconn *db;
    char err[256];
    int rc = ctx_pq_connect(ctx_background(), "", &db, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "pgworker: connect: %s\n", err);
        return rc;
    }
    rc = sql(ctx_background(), db, schema, -1, NULL, NULL);
    PQfinish(db);
    return rc;
}

static ctx_time_t ms(const char *s)
{
    long v = atol(s);
    return v > 0 ? v * CTX_MILLISECOND : -1;
}

static int usage(void)
{
    fprintf(stderr, "usage: pgworker [-w WORKERS] [-d JOB_DEADLINE_MS] "
                    "[-D DRAIN_MS] [-F FORCE_MS] [-p POLL_MS] [-r RUN] "
                    "[-e]\n");
    return 1;
}

static int parse(int argc, char **argv)
{
    int o;
    while ((o = getopt(argc, argv, "w:d:D:F:p:r:e")) != -1) {
        switch (o) {
        case 'w':
            opt.workers = atoi(optarg);
            if (opt.workers < 1 || opt.workers > MAX_WORKERS)
                return -1;
            break;
        case 'd':
            opt.job_deadline = ms(optarg);
            break;
        case 'D':
            opt.drain = ms(optarg);
            break;
        case 'F':
            opt.force = ms(optarg);
            break;
        case 'p':
            opt.poll = ms(optarg);
            break;
        case 'r':
            opt.run = optarg;
            break;
        case 'e':
            opt.exit_when_empty = true;
            break;
        default:
            return -1;
        }
    }
    if (optind != argc || opt.job_deadline < 0 || opt.drain < 0 ||
        opt.force < 0 || opt.poll < 0)
        return -1;
    return 0;
}

/* Wait for the workers: all of them, or the signal; then the drain
 * budget, then the force phase. Returns the exit status. */
static int supervise(ctx_t *work)
{
    static const int sigs[] = {SIGINT, SIGTERM};
    ctx_t *both[2] = {intake, finished}, *any, *second, *end;
    int status = 0;

    if (ctx_merge(both, 2, &any) != 0)
        return 1;
    ctx_wait(any, CTX_NO_DEADLINE);
    ctx_release(any);
    if (ctx_done(finished))
        return 0;
    fprintf(stderr, "pgworker: %s: draining (%lld ms)\n",
            strsignal(ctx_signal_of(intake)),
            (long long)(opt.drain / CTX_MILLISECOND));
    /* A second signal skips to the force phase. */
    if (ctx_signal_notify(ctx_background(), sigs, 2, &second) != 0)
        return 1;
    both[0] = second;
    if (ctx_merge(both, 2, &end) == 0) {
        ctx_wait(end, opt.drain);
        ctx_release(end);
    }
    ctx_cancel(second);
    ctx_release(second);
    if (!ctx_done(finished)) {
        fprintf(stderr, "pgworker: force: cancelling the jobs in flight\n");
        status = 3;
        ctx_cancel(work);
        if (ctx_wait(finished, opt.force) != 0) {
            fprintf(stderr, "pgworker: still running after the force "
                            "budget:\n");
            ctx_dump(2);
            fflush(NULL);
            _exit(2);
        }
    }
    return status;
}

static void ignore(int sig)
{
    (void)sig;
}

int main(int argc, char **argv)
{
    static const int sigs[] = {SIGINT, SIGTERM};
    struct sigaction sa;
    ctx_group_t *g;
    ctx_t *work;
    int status;

    if (ctx_signal_init() != 0)
        return 1;
    /* A signal that comes when no context waits for one (between the
     * phases, or a third) gets this handler, not the default action that
     * would end the process in the middle of its drain. */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = ignore;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (parse(argc, argv) != 0)
        return usage();
    if (setup() != 0)
        return 1;
    if (ctx_signal_notify(ctx_background(), sigs, 2, &intake) != 0 ||
        ctx_with_cancel(ctx_background(), &finished) != 0 ||
        ctx_with_cancel(ctx_background(), &work) != 0 ||
        ctx_group_new(work, &g) != 0)
        return 1;
    atomic_store(&live_workers, opt.workers);
    for (int i = 0; i < opt.workers; i++) {
        ctx_go_opts_t o = CTX_GO_OPTS_INIT;
        o.name = "pgworker";
        if (ctx_group_go_opts(g, &o, worker, NULL) != 0 &&
            atomic_fetch_sub(&live_workers, 1) == 1)
            ctx_cancel(finished);
    }
    fprintf(stderr, "pgworker: ready, %d workers\n", opt.workers);
    status = supervise(work);
    ctx_group_free(g);
    if (status == 0 && atomic_load(&errors))
        status = 1;
    printf("pgworker: run=%s claimed=%ld done=%ld rolled_back=%ld "
           "failed=%ld\n",
           opt.run, atomic_load(&claimed), atomic_load(&done),
           atomic_load(&rolled_back), atomic_load(&failed));
    ctx_cancel(work);
    ctx_release(work);
    ctx_cancel(finished);
    ctx_release(finished);
    ctx_cancel(intake);
    ctx_release(intake);
    return status;
}
