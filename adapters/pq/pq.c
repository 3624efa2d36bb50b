/* SPDX-License-Identifier: MIT */
/*
 * libpq bound to a context: non-blocking libpq, every wait a ctx_poll on
 * the connection's socket, and a server-side cancel when the context ends.
 *
 * DESIGN
 *
 * One statement is a round trip: send it (PQsendQuery or
 * PQsendQueryParams), push the output out (PQflush, reading as we go:
 * the server may wait for us to read before it reads more), then read
 * results (PQconsumeInput, PQgetResult while !PQisBusy) until libpq has
 * none left, which is when the server has said ReadyForQuery: the
 * connection is idle again. Each wait is ctx_poll on PQsocket with the
 * caller's context, so a cancel wakes the thread at once.
 *
 * When the context ends mid-statement, the rest of the round trip runs
 * with no context but a time limit (CTX_PQ_CANCEL_WAIT, real clock): the
 * output is flushed (a half-sent message cannot be taken back), a cancel
 * request goes to the server (PQcancel: the packaged libpq 15 has no
 * PQcancelCreate), and the results are drained. A cancel request is
 * asynchronous on the server: it may arrive before the statement began
 * (then it is dropped: we send it again until the statement ends), or
 * after the statement ended,
 * and if the next statement were already running it would cancel that
 * one. Two facts close that window. PQcancel returns only after the
 * server closed the cancel connection, which it does after it signalled
 * the backend: by then the signal is pending there. And we send nothing
 * more until PQcancel returned and the statement's results are drained:
 * a backend that is idle (reading the next command) when the signal is
 * handled discards it (PostgresMain resets QueryCancelPending while
 * DoingCommandRead). So a late request dies in the idle backend; the
 * t_pq race test checks it 1000 times.
 *
 * The statement timeout. With a deadline, the server is told too, so it
 * stops the statement even if this process is gone: one round trip reads
 * the current statement_timeout and sets the time left (a MATERIALIZED
 * CTE reads before set_config writes), the statement runs, and one more
 * puts the old value back. Session-level set_config rather than SET
 * LOCAL: SET LOCAL needs a transaction block, and wrapping the caller's
 * SQL in one would break statements that refuse to run in one (VACUUM,
 * CREATE DATABASE). Inside the caller's transaction the setting is
 * transactional, so a rollback puts it back too.
 */
#define _POSIX_C_SOURCE 200809L
#include <ctx/io.h>
#include <ctx/pq.h>

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define QUERY_CANCELED "57014" /* SQLSTATE of a cancelled statement */

/* The least statement_timeout given to the server: it also bounds the
 * statement that puts the old value back, which must not be stopped by
 * it for a moment's delay on a loaded server. The client ends the
 * statement at its deadline itself; the server's timeout is for a client
 * that cannot. */
#define MIN_TIMEOUT_MS 100

/* One statement: the simple protocol when n < 0. */
struct stmt {
    const char *sql;
    int n;
    const char *const *values;
};

/* How a round trip waits: on c, and not past `until` (real clock). */
struct waiter {
    ctx_t *c;
    ctx_time_t until; /* CTX_NO_DEADLINE: no limit */
};

static ctx_time_t mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (ctx_time_t)ts.tv_sec * CTX_SECOND + ts.tv_nsec;
}

static void say(char *err, size_t len, const char *what, const char *msg)
{
    size_t n;
    if (!err || len == 0)
        return;
    snprintf(err, len, "%s%s", what, msg ? msg : "");
    n = strlen(err);
    while (n > 0 && (err[n - 1] == '\n' || err[n - 1] == ' '))
        err[--n] = '\0';
}

/*
 * Wait until the socket of conn has `events`, w's context ends (its
 * error) or w's time limit passes (ECONNABORTED: the server did not
 * answer in time).
 */
static int wait_sock(const struct waiter *w, PGconn *conn, short events,
                     short *revents)
{
    struct pollfd p = {PQsocket(conn), events, 0};
    ctx_time_t left = -1;
    int n;

    if (p.fd < 0)
        return ECONNRESET;
    if (w->until != CTX_NO_DEADLINE) {
        left = w->until - mono_now();
        if (left < 0)
            left = 0;
    }
    n = ctx_poll(w->c, &p, 1, left);
    if (n < 0)
        return errno;
    if (n == 0)
        return ECONNABORTED;
    if (revents)
        *revents = p.revents;
    return 0;
}

/* ------------------------------------------------------------ connect */

int ctx_pq_connect(ctx_t *c, const char *conninfo, PGconn **out, char *err,
                   size_t errlen)
{
    struct waiter w = {c, CTX_NO_DEADLINE};
    PQconninfoOption *opts;
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    char *perr = NULL;
    PGconn *conn;
    int rc;

    say(err, errlen, "", "");
    if (out)
        *out = NULL;
    if (!c || !conninfo || !out) {
        say(err, errlen, "ctx_pq_connect: ", "NULL argument");
        return EINVAL;
    }
    /* A malformed string is the caller's mistake: EINVAL, before any
     * connection is tried. */
    opts = PQconninfoParse(conninfo, &perr);
    if (!opts) {
        say(err, errlen, "", perr ? perr : "out of memory");
        rc = perr ? EINVAL : ENOMEM;
        PQfreemem(perr);
        return rc;
    }
    PQconninfoFree(opts);
    if ((rc = ctx_err(c)) != 0) {
        say(err, errlen, "not connected: ", ctx_errname(rc));
        return rc;
    }
    conn = PQconnectStart(conninfo);
    if (!conn) {
        say(err, errlen, "", "out of memory");
        return ENOMEM;
    }
    while (st != PGRES_POLLING_OK) {
        if (PQstatus(conn) == CONNECTION_BAD || st == PGRES_POLLING_FAILED) {
            say(err, errlen, "", PQerrorMessage(conn));
            PQfinish(conn);
            return ECONNREFUSED;
        }
        rc = wait_sock(&w, conn, st == PGRES_POLLING_READING ? POLLIN : POLLOUT,
                       NULL);
        if (rc != 0) {
            say(err, errlen, "not connected: ", ctx_errname(rc));
            PQfinish(conn);
            return rc;
        }
        st = PQconnectPoll(conn);
    }
    *out = conn;
    return 0;
}

/* ------------------------------------------------------------ a round trip */

/* Push libpq's buffered output to the server. */
static int flush_out(const struct waiter *w, PGconn *conn)
{
    int r, rc;
    short rev = 0;

    while ((r = PQflush(conn)) == 1) {
        if ((rc = wait_sock(w, conn, POLLIN | POLLOUT, &rev)) != 0)
            return rc;
        if ((rev & POLLIN) && !PQconsumeInput(conn))
            return ECONNRESET;
    }
    return r == 0 ? 0 : ECONNRESET;
}

/* The statement started a COPY, for which we have no data: end it (the
 * server then reports an error for COPY FROM STDIN), discard what COPY
 * TO STDOUT sends. */
static int end_copy(const struct waiter *w, PGconn *conn, ExecStatusType st)
{
    char *buf;
    int n, rc;

    if (st == PGRES_COPY_IN) {
        if (PQputCopyEnd(conn, "ctx_pq_exec does not run COPY FROM STDIN") < 0)
            return ECONNRESET;
        return flush_out(w, conn);
    }
    for (;;) {
        n = PQgetCopyData(conn, &buf, 1);
        if (n > 0) {
            PQfreemem(buf);
        } else if (n == 0) {
            if ((rc = wait_sock(w, conn, POLLIN, NULL)) != 0)
                return rc;
            if (!PQconsumeInput(conn))
                return ECONNRESET;
        } else {
            return n == -1 ? 0 : ECONNRESET;
        }
    }
}

/*
 * Read results until libpq has none left (the server is idle). *res gets
 * the first error result, or else the last result; *copy is set if a
 * COPY was started (and ended by us).
 */
static int collect(const struct waiter *w, PGconn *conn, PGresult **res,
                   bool *copy)
{
    PGresult *r;
    ExecStatusType st;
    int rc;

    for (;;) {
        while (!PQisBusy(conn)) {
            if ((r = PQgetResult(conn)) == NULL)
                return 0;
            st = PQresultStatus(r);
            if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT ||
                st == PGRES_COPY_BOTH) {
                PQclear(r);
                *copy = true;
                if (st == PGRES_COPY_BOTH)
                    return ECONNRESET; /* replication: not ours to end */
                if ((rc = end_copy(w, conn, st)) != 0)
                    return rc;
                continue;
            }
            if (*res && PQresultStatus(*res) == PGRES_FATAL_ERROR) {
                PQclear(r);
                continue;
            }
            PQclear(*res);
            *res = r;
        }
        if ((rc = wait_sock(w, conn, POLLIN, NULL)) != 0)
            return rc;
        if (!PQconsumeInput(conn))
            return ECONNRESET;
    }
}

/* Ask the server to cancel what conn runs; PQcancel returns once the
 * server has taken the request (see DESIGN). */
static void cancel_request(PGconn *conn)
{
    char buf[256];
    PGcancel *pc = PQgetCancel(conn);
    if (pc) {
        /* A failed request (the server unreachable) leaves the statement
         * to end by itself, or the wait below to give up. */
        (void)PQcancel(pc, buf, (int)sizeof buf);
        PQfreeCancel(pc);
    }
}

/*
 * Run one statement to its end, waiting with w. If w's context ends
 * first, cancel it on the server and wait (up to CTX_PQ_CANCEL_WAIT)
 * for its end; *cancelled tells. Returns 0 with the statement's result
 * in *res (which may be an error result), or a failure of the connection
 * (ECONNRESET, ECONNABORTED, ENOMEM) with *res NULL.
 */
static int roundtrip(const struct waiter *w, PGconn *conn, const struct stmt *s,
                     PGresult **res, bool *cancelled, bool *copy)
{
    struct waiter g = {ctx_background(), 0};
    ctx_time_t end, step = 10 * CTX_MILLISECOND;
    int ok, rc;

    *res = NULL;
    *cancelled = false;
    ok = s->n < 0 ? PQsendQuery(conn, s->sql)
                  : PQsendQueryParams(conn, s->sql, s->n, NULL, s->values, NULL,
                                      NULL, 0);
    if (!ok)
        return PQstatus(conn) == CONNECTION_OK ? ENOMEM : ECONNRESET;
    rc = flush_out(w, conn);
    if (rc == 0)
        rc = collect(w, conn, res, copy);
    if (rc == 0 || !ctx_done(w->c) || rc != ctx_err(w->c)) {
        if (rc != 0) {
            PQclear(*res);
            *res = NULL;
        }
        return rc;
    }
    /* The context ended with the statement under way. A request that
     * reaches the backend before it began the statement (still reading
     * it) is dropped there: so the request is sent again, 10, 20, 40 ...
     * ms apart, until the statement ends. */
    *cancelled = true;
    end = mono_now() + CTX_PQ_CANCEL_WAIT;
    g.until = end;
    rc = flush_out(&g, conn);
    while (rc == 0) {
        cancel_request(conn);
        g.until = mono_now() + step < end ? mono_now() + step : end;
        rc = collect(&g, conn, res, copy);
        if (rc != ECONNABORTED || mono_now() >= end)
            break;
        rc = 0;
        step = step < CTX_SECOND / 2 ? 2 * step : CTX_SECOND;
    }
    if (rc != 0) {
        PQclear(*res);
        *res = NULL;
    }
    return rc;
}

/* ------------------------------------------------------------ statements */

static bool is_error(const PGresult *r)
{
    ExecStatusType st = PQresultStatus(r);
    return st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE ||
           st == PGRES_NONFATAL_ERROR;
}

static bool was_cancelled(const PGresult *r)
{
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    return state && strcmp(state, QUERY_CANCELED) == 0;
}

/*
 * What the caller gets for a statement that ended with *res: 0 if it
 * succeeded (even if c ended meanwhile: it took effect); c's error if it
 * was cancelled because c ended (ETIMEDOUT if our statement timeout
 * stopped it before c's own deadline fired); EIO for another error.
 */
static int outcome(ctx_t *c, PGresult **res, bool timed)
{
    if (!*res)
        return ECONNRESET;
    if (!is_error(*res))
        return 0;
    if (was_cancelled(*res) && (ctx_done(c) || timed)) {
        PQclear(*res);
        *res = NULL;
        return ctx_done(c) ? ctx_err(c) : ETIMEDOUT;
    }
    return EIO;
}

/*
 * Set statement_timeout to the time left before `deadline`, keeping the
 * old value in old[]. *timed is set when the setting changed (and must
 * be put back).
 */
static int set_timeout(const struct waiter *w, PGconn *conn,
                       ctx_time_t deadline, char *old, size_t oldlen,
                       bool *timed)
{
    static const char sql[] =
        "WITH o AS MATERIALIZED "
        "(SELECT current_setting('statement_timeout') AS v) "
        "SELECT v, set_config('statement_timeout', $1, false) FROM o";
    ctx_time_t ms =
        (deadline - ctx_now() + CTX_MILLISECOND - 1) / CTX_MILLISECOND;
    char num[24];
    const char *vals[1] = {num};
    struct stmt s = {sql, 1, vals};
    PGresult *r;
    bool cancelled, copy = false;
    int rc;

    if (ms > INT_MAX)
        return 0; /* beyond what the server can take: no timeout */
    snprintf(num, sizeof num, "%lld",
             (long long)(ms < MIN_TIMEOUT_MS ? MIN_TIMEOUT_MS : ms));
    if ((rc = roundtrip(w, conn, &s, &r, &cancelled, &copy)) != 0)
        return rc;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        snprintf(old, oldlen, "%s", PQgetvalue(r, 0, 0));
        *timed = true;
    }
    rc = outcome(w->c, &r, false);
    PQclear(r);
    return rc;
}

/*
 * Put statement_timeout back (waiting up to CTX_PQ_CANCEL_WAIT, whatever
 * became of the caller's context). This statement runs under the
 * timeout it removes: should the server be slow enough for that timeout
 * to stop it, it is sent again.
 */
static int restore_timeout(PGconn *conn, const char *old)
{
    struct waiter g = {ctx_background(), mono_now() + CTX_PQ_CANCEL_WAIT};
    const char *vals[1] = {old};
    struct stmt s = {"SELECT set_config('statement_timeout', $1, false)", 1,
                     vals};
    PGresult *r;
    bool cancelled, copy = false, again;
    int rc;

    do {
        if ((rc = roundtrip(&g, conn, &s, &r, &cancelled, &copy)) != 0)
            return rc;
        /* A failed transaction refuses it (documented); the rollback of a
         * transaction open before set_timeout puts it back. */
        again = is_error(r) && was_cancelled(r);
        PQclear(r);
    } while (again && mono_now() < g.until);
    return again ? ECONNABORTED : 0;
}

static int run(ctx_t *c, PGconn *conn, const struct stmt *s, PGresult **out)
{
    struct waiter w = {c, CTX_NO_DEADLINE};
    PGresult *res = NULL;
    ctx_time_t deadline;
    char old[64];
    bool timed = false, cancelled = false, copy = false;
    int nb, rc, rc2;

    if (out)
        *out = NULL;
    if (!c || !conn || !s->sql || !out || s->n < -1 || (s->n > 0 && !s->values))
        return EINVAL;
    if (PQstatus(conn) != CONNECTION_OK)
        return ENOTCONN;
    if (PQpipelineStatus(conn) != PQ_PIPELINE_OFF)
        return EINVAL;
    if (PQtransactionStatus(conn) == PQTRANS_ACTIVE || PQisBusy(conn))
        return EBUSY;
    if ((rc = ctx_err(c)) != 0)
        return rc; /* nothing sent */
    nb = PQisnonblocking(conn);
    if (!nb && PQsetnonblocking(conn, 1) != 0)
        return ECONNRESET;

    if (ctx_deadline(c, &deadline) &&
        PQtransactionStatus(conn) != PQTRANS_INERROR)
        rc = set_timeout(&w, conn, deadline, old, sizeof old, &timed);
    if (rc == 0 && (rc = ctx_err(c)) == 0) {
        rc = roundtrip(&w, conn, s, &res, &cancelled, &copy);
        if (rc == 0)
            rc = outcome(c, &res, timed);
        if (copy && rc != ECONNRESET && rc != ECONNABORTED) {
            PQclear(res);
            res = NULL;
            rc = EINVAL;
        }
    }
    if (timed && rc != ECONNRESET && rc != ECONNABORTED &&
        (rc2 = restore_timeout(conn, old)) != 0) {
        PQclear(res);
        res = NULL;
        rc = rc2;
    }
    if (!nb && !PQisBusy(conn))
        PQsetnonblocking(conn, 0);
    *out = res;
    return rc;
}

int ctx_pq_exec(ctx_t *c, PGconn *conn, const char *sql, PGresult **out)
{
    struct stmt s = {sql, -1, NULL};
    return run(c, conn, &s, out);
}

int ctx_pq_exec_params(ctx_t *c, PGconn *conn, const char *sql, int n,
                       const char *const *values, PGresult **out)
{
    struct stmt s = {sql, n, values};
    if (n < 0) {
        if (out)
            *out = NULL;
        return EINVAL;
    }
    return run(c, conn, &s, out);
}
