/* SPDX-License-Identifier: MIT */
/* Built against an installed libctx-pq by tests/lint/install.sh. */
#include <ctx/pq.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
    PGconn *db;
    char err[128];
    if (ctx_pq_connect(ctx_background(), "colour=red", &db, err, sizeof err) !=
            EINVAL ||
        db != NULL || strstr(err, "colour") == NULL)
        return 1;
    printf("consumer: ok (libctx-pq, libpq %d)\n", PQlibVersion());
    return 0;
}
