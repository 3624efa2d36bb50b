/* SPDX-License-Identifier: MIT */
/*
 * A client that t_pq kills: it connects (PG* environment), prints its
 * server process id, then runs pg_sleep(60) through ctx_pq_exec under a
 * deadline of argv[1] milliseconds. Killed meanwhile, it cannot cancel
 * anything: only the statement timeout set from the deadline stops the
 * statement on the server.
 */
#include <ctx/pq.h>

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    PGconn *db;
    PGresult *r;
    ctx_t *c;
    char err[256];
    int rc;

    if (argc != 2)
        return 2;
    if (ctx_pq_connect(ctx_background(), "", &db, err, sizeof err) != 0) {
        fprintf(stderr, "pq_client: %s\n", err);
        return 1;
    }
    printf("%d\n", PQbackendPID(db));
    fflush(stdout);
    if (ctx_with_timeout(ctx_background(), atoi(argv[1]) * CTX_MILLISECOND,
                         &c) != 0)
        return 1;
    rc = ctx_pq_exec(c, db, "SELECT pg_sleep(60)", &r);
    printf("%s\n", ctx_errname(rc));
    PQclear(r);
    ctx_cancel(c);
    ctx_release(c);
    PQfinish(db);
    return 0;
}
