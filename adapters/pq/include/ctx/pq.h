/* SPDX-License-Identifier: MIT */
/*
 * libpq bound to a context: connect and run statements so that the end of
 * the context stops the statement on the server, and the connection stays
 * usable for the next one. Part of libctx-pq (pkg-config libctx-pq).
 *
 *     PGconn *db;
 *     char err[256];
 *     if (ctx_pq_connect(c, "dbname=app", &db, err, sizeof err) != 0)
 *         return fprintf(stderr, "%s\n", err), 1;
 *     PGresult *r;
 *     int rc = ctx_pq_exec(c, db, "SELECT count(*) FROM jobs", &r);
 *     if (rc == 0)
 *         printf("%s jobs\n", PQgetvalue(r, 0, 0));
 *     PQclear(r);                     // NULL when rc is not 0 or EIO
 *     PQfinish(db);
 *
 * Nothing blocks a thread beyond the context: libpq is driven in
 * non-blocking mode (PQsendQuery, PQconsumeInput) and every wait is a
 * ctx_poll on PQsocket. When the context ends while a statement runs,
 * the server is sent a cancel request (PQgetCancel/PQcancel: the libpq
 * of PostgreSQL 15 has no PQcancelCreate), the statement's end is awaited
 * (for up to CTX_PQ_CANCEL_WAIT) and its results are drained, so the
 * connection is idle again when the call returns, and the request cannot
 * hit the next statement: PQcancel returns only once the server has
 * taken the request, and the next statement is sent after that, when a
 * late request is discarded by the idle server.
 *
 * With a deadline, the statement also runs under statement_timeout = the
 * time left (set for the statement, put back after it), so the server
 * stops it even if this process dies or hangs.
 *
 * A connection is used by one thread at a time, as libpq requires.
 */
#ifndef CTX_PQ_H
#define CTX_PQ_H

#include <ctx/ctx.h>

#include <libpq-fe.h>

#ifdef __cplusplus
extern "C" {
#endif

/* How long, after the cancel request, a call waits for the server to end
 * the statement before it gives the connection up (ECONNABORTED). */
#define CTX_PQ_CANCEL_WAIT (5 * CTX_SECOND)

/*
 * ctx_pq_connect - open a connection (PQconnectStart + PQconnectPoll),
 * waiting with `c`.
 *
 * `conninfo` is libpq's: "key=value ..." or a postgresql:// URI; PG*
 * environment variables fill what it leaves out. A host name is resolved
 * by libpq before the first wait, without the context (a numeric address
 * or a unix socket directory is not). On failure, a message saying why
 * (libpq's) is copied to err (up to errlen bytes, NUL-terminated) when err
 * is not NULL.
 *
 * Returns: 0 and the open connection in *out (PQfinish it).
 * Errors: EINVAL if c, conninfo or out is NULL, or conninfo is malformed
 * (an unknown key, a missing '=', a bad URI); ECONNREFUSED if libpq could
 * not connect with it: a value it rejects (a port that is not a number),
 * an unknown host, no server there, a refused connection or login (err
 * says which); the error of c (ECANCELED, ETIMEDOUT) if c ended first;
 * ENOMEM. On error *out is NULL and nothing is left open.
 * Blocks: until connected, failed, or c done.
 */
CTX_API int ctx_pq_connect(ctx_t *c, const char *conninfo, PGconn **out,
                           char *err, size_t errlen);

/*
 * ctx_pq_exec - run `sql` (one or more statements, the simple query
 * protocol, as PQexec) on `conn` until it ends or `c` does.
 *
 * When c ends first, the statement is cancelled on the server and
 * awaited (see above), and the call returns c's error; if the statement
 * completed before the cancel request reached it, its result is returned
 * as if c had not ended (it took effect). With a deadline, each
 * statement runs under statement_timeout (the remaining time, rounded up
 * to a millisecond, at least 100 ms), set by a statement before `sql` and
 * put back to its former value by one after; a `sql` that opens a transaction
 * and leaves it failed keeps the timeout until that transaction ends (the
 * server refuses the statement that puts it back).
 *
 * Returns: 0 and the last result in *out (PGRES_COMMAND_OK,
 * PGRES_TUPLES_OK...; PQclear it).
 * Errors: EIO when the server reported an error: its result is in *out
 * (PQresultErrorMessage, PQresultErrorField(r, PG_DIAG_SQLSTATE); PQclear
 * it); ECANCELED or ETIMEDOUT when c ended first (or the statement
 * timeout set from c's deadline stopped it): the statement did not
 * complete, the connection is idle and usable; EINVAL if c, conn, sql or
 * out is NULL, or conn is in pipeline mode, or sql started a COPY (the
 * COPY is ended with an error: use libpq's COPY calls for it); ENOTCONN
 * if conn is not connected (PQstatus not CONNECTION_OK); EBUSY if conn
 * is running another statement; ECONNRESET if the connection failed
 * (PQerrorMessage(conn) says why); ECONNABORTED if the server did not
 * end a cancelled statement within CTX_PQ_CANCEL_WAIT (the connection
 * is left busy: PQfinish or PQreset it); ENOMEM. On error other than EIO
 * *out is NULL.
 * Blocks: until the statement ends, or c ends and then the server
 * acknowledges the cancel (at most CTX_PQ_CANCEL_WAIT more). PQcancel
 * itself connects to the server and waits for it to take the request.
 * Thread safety: conn must not be used by another thread meanwhile.
 * Go: pgx's conn.Exec(ctx, sql).
 */
CTX_API int ctx_pq_exec(ctx_t *c, PGconn *conn, const char *sql,
                        PGresult **out);

/*
 * ctx_pq_exec_params - ctx_pq_exec for one statement with n parameters
 * ($1...$n) given as text (NULL for SQL NULL), their types inferred by the
 * server, results in text (PQexecParams with types, lengths and formats
 * NULL).
 *
 * Returns and errors: as ctx_pq_exec; EINVAL also if n < 0, or n > 0 and
 * values is NULL.
 */
CTX_API int ctx_pq_exec_params(ctx_t *c, PGconn *conn, const char *sql, int n,
                               const char *const *values, PGresult **out);

#ifdef __cplusplus
}
#endif

#endif /* CTX_PQ_H */
