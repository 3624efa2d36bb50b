/* SPDX-License-Identifier: MIT */
/*
 * The queue-worker case study (examples/pgworker) against a real
 * PostgreSQL (tests/pg_run.sh): 100 runs of the worker, each stopped at a
 * random point by SIGTERM (graceful drain), two SIGTERMs (straight to the
 * force phase) or SIGKILL (a crash), then one run that empties the queue:
 * every job is done exactly once (one effect, state done), none lost,
 * none failed; a graceful run with a drain budget longer than any job
 * exits 0 with nothing rolled back; runs cut by the force phase exit 3
 * having rolled back what they cut.
 */
#include "t.h"

#include <ctx/io.h>
#include <ctx/pq.h>
#include <ctx/proc.h>

#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <sys/wait.h>

#define JOBS 300

static PGconn *db_open(void)
{
    PGconn *db = NULL;
    char err[256];
    if (ctx_pq_connect(ctx_background(), "", &db, err, sizeof err) != 0)
        fprintf(stderr, "  connect: %s\n", err);
    return db;
}

static int q(PGconn *db, const char *sql, char *val, size_t len)
{
    PGresult *r;
    int rc = ctx_pq_exec(ctx_background(), db, sql, &r);
    if (rc != 0)
        fprintf(stderr, "  %s: %s\n", sql,
                r ? PQresultErrorMessage(r) : ctx_errname(rc));
    if (val && len)
        snprintf(val, len, "%s",
                 rc == 0 && PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
    return rc;
}

static long qnum(PGconn *db, const char *sql)
{
    char v[32];
    return q(db, sql, v, sizeof v) == 0 ? atol(v) : -1;
}

static char prog[PATH_MAX];

static int find_worker(void)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return -1;
    self[n] = '\0';
    /* build/tests/t_pgworker -> build/examples/pgworker/pgworker */
    snprintf(prog, sizeof prog, "%s/../examples/pgworker/pgworker",
             dirname(self));
    return access(prog, X_OK);
}

struct run {
    int status; /* wait status */
    long done, rolled_back, failed;
    char out[256];
    char err[4096]; /* the start of its standard error */
};

/* Read more of the worker's standard error (what does not fit is read
 * and dropped). Returns what read returned. */
static ssize_t read_err(ctx_proc_t *p, struct run *r)
{
    char drop[512];
    size_t n = strlen(r->err);
    bool room = n < sizeof r->err - 1;
    ssize_t k =
        ctx_read(ctx_background(), ctx_proc_stderr(p), room ? r->err + n : drop,
                 room ? sizeof r->err - 1 - n : sizeof drop);
    if (k > 0 && room)
        r->err[n + (size_t)k] = '\0';
    return k;
}

/* Start the worker with args; kill it `after` ns later with `how` (0: let
 * it run out; SIGKILL; SIGTERM; -SIGTERM: two of them 20 ms apart). */
static int run_worker(char **args, long long after, int how, struct run *r)
{
    char *argv[16] = {prog};
    ctx_proc_opts_t o = CTX_PROC_OPTS_INIT;
    ctx_proc_t *p;
    const char *out;
    int rc, i;

    for (i = 0; args[i] && i < 14; i++)
        argv[i + 1] = args[i];
    argv[i + 1] = NULL;
    o.argv = argv;
    o.stdout_fd = CTX_PROC_CAPTURE;
    o.stderr_fd = CTX_PROC_PIPE;
    o.wait_delay = CTX_NO_DEADLINE;
    if ((rc = ctx_proc_spawn(ctx_background(), &o, &p)) != 0)
        return rc;
    r->err[0] = '\0';
    if (how != 0) {
        /* Signals count from its "ready" (its signal handling is set).
         * They go to the worker's pid only: ctx_proc_signal would send
         * them twice (to its group, and again through the tree marker),
         * and a second SIGTERM means "skip to the force phase". */
        while (!strstr(r->err, "ready") && read_err(p, r) > 0)
            ;
        t_sleep_ns(after);
        kill(ctx_proc_pid(p), how < 0 ? -how : how);
        if (how < 0) {
            t_sleep_ns(20000000);
            kill(ctx_proc_pid(p), -how);
        }
    }
    while (read_err(p, r) > 0)
        ;
    rc = ctx_proc_wait(p, &r->status);
    out = ctx_proc_output(p, 1, NULL);
    snprintf(r->out, sizeof r->out, "%s", out ? out : "");
    r->done = r->rolled_back = r->failed = -1;
    if (strstr(r->out, "pgworker: run="))
        sscanf(strstr(r->out, "claimed="),
               "claimed=%*d done=%ld rolled_back=%ld failed=%ld", &r->done,
               &r->rolled_back, &r->failed);
    ctx_proc_free(p);
    return rc;
}

T_CASE(jobs_done_exactly_once_across_kills)
{
    PGconn *db = db_open();
    long runs = t_scale(100) < 10 ? 10 : t_scale(100);
    long graceful = 0, forced = 0, killed = 0, bad = 0;
    uint64_t seed = 100;
    char runid[32];
    char *args[14];
    struct run r;

    T_NOTNULL(db);
    T_OK(find_worker());
    /* Jobs: mostly short, one in five long enough to be cut by a short
     * drain budget. */
    T_OK(q(db,
           "DROP TABLE IF EXISTS jobs, effects;"
           "CREATE TABLE jobs (id bigint PRIMARY KEY, work_ms int NOT NULL, "
           "state text NOT NULL DEFAULT 'queued', attempts int NOT NULL "
           "DEFAULT 0, done_by text);"
           "CREATE TABLE effects (job_id bigint NOT NULL, run text);"
           "INSERT INTO jobs (id, work_ms) SELECT i, CASE WHEN i % 5 = 0 "
           "THEN 200 + (i * 37) % 200 ELSE 1 + (i * 13) % 30 END "
           "FROM generate_series(1, 300) i",
           NULL, 0));
    for (long i = 0; i < runs && !t_failed(); i++) {
        int kind = (int)(t_rand(&seed) % 5);
        long long after = (long long)(t_rand(&seed) % 300) * 1000000;
        int how = kind < 2 ? SIGKILL : kind < 4 ? SIGTERM : -SIGTERM;
        snprintf(runid, sizeof runid, "run%ld", i);
        args[0] = "-w", args[1] = "4", args[2] = "-D", args[3] = "150";
        args[4] = "-F", args[5] = "2000", args[6] = "-p", args[7] = "10";
        /* The jobs' deadline (10 s) far from their length (at most
         * 400 ms): none may fail, even on a loaded machine. */
        args[8] = "-r", args[9] = runid, args[10] = "-d", args[11] = "10000";
        args[12] = NULL;
        T_OK(run_worker(args, after, how, &r));
        if (how == SIGKILL) {
            killed++;
            T_TRUE(WIFSIGNALED(r.status));
            continue;
        }
        /* Drained (0), or the force phase cut long jobs (3): nothing
         * else, and what was cut was rolled back. */
        T_TRUE(WIFEXITED(r.status));
        if (WEXITSTATUS(r.status) == 0) {
            graceful++;
            if (r.rolled_back != 0)
                bad++;
        } else if (WEXITSTATUS(r.status) == 3) {
            forced++;
        } else {
            fprintf(stderr, "  run %ld: status %d: %s%s\n", i,
                    WEXITSTATUS(r.status), r.out, r.err);
            bad++;
        }
        if (r.failed != 0)
            fprintf(stderr, "  run %ld: %s%s\n", i, r.out, r.err);
        T_EQ(r.failed, 0);
    }
    /* A drain budget longer than any job: in-flight jobs finish and are
     * committed, exit 0, nothing rolled back. */
    args[0] = "-w", args[1] = "4", args[2] = "-D", args[3] = "5000";
    args[4] = "-r", args[5] = "drain", args[6] = NULL;
    T_OK(run_worker(args, 100000000, SIGTERM, &r));
    if (!WIFEXITED(r.status) || WEXITSTATUS(r.status) != 0)
        fprintf(stderr, "  drain run: %s%s\n", r.out, r.err);
    T_TRUE(WIFEXITED(r.status));
    T_EQ(WEXITSTATUS(r.status), 0);
    T_EQ(r.rolled_back, 0);
    /* The rest of the queue. */
    args[0] = "-w", args[1] = "4", args[2] = "-e", args[3] = "-r";
    args[4] = "final", args[5] = NULL;
    T_OK(run_worker(args, 0, 0, &r));
    T_TRUE(WIFEXITED(r.status));
    T_EQ(WEXITSTATUS(r.status), 0);

    printf("  %ld runs: %ld killed, %ld drained, %ld forced; %ld jobs done "
           "by the final run\n",
           runs, killed, graceful, forced, r.done);
    T_EQ(bad, 0);
    T_EQ(qnum(db, "SELECT count(*) FROM jobs WHERE state = 'done'"), JOBS);
    T_EQ(qnum(db, "SELECT count(*) FROM effects"), JOBS);
    T_EQ(qnum(db, "SELECT count(DISTINCT job_id) FROM effects"), JOBS);
    T_EQ(qnum(db, "SELECT count(*) FROM jobs j WHERE done_by IS DISTINCT "
                  "FROM (SELECT run FROM effects e WHERE e.job_id = j.id)"),
         0);
    T_EQ(qnum(db, "SELECT count(*) FROM jobs WHERE attempts > 0"), 0);
    T_GT(killed, 0);
    T_GT(graceful + forced, 0);
    PQfinish(db);
}

/* Bad usage is an error, not a run. */
T_CASE(bad_usage)
{
    char *args[] = {"-w", "0", NULL};
    struct run r;
    T_OK(find_worker());
    T_OK(run_worker(args, 0, 0, &r));
    T_TRUE(WIFEXITED(r.status));
    T_EQ(WEXITSTATUS(r.status), 1);
}
