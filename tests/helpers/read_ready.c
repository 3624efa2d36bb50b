/* SPDX-License-Identifier: MIT */
/*
 * Run under strace -c by tests/strace_count.sh: N reads through ctx_read
 * (and N writes through ctx_write) that find their descriptor ready, to
 * count the system calls they cost. Prints the number of operations.
 *   read_ready pipe|socket background|deadline N
 */
#define _GNU_SOURCE
#include <ctx/ctx.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int fds[2], rc;
    long n;
    ctx_t *c = ctx_background();
    char b = 'x';

    if (argc != 4 || (n = atol(argv[3])) <= 0) {
        fprintf(stderr, "usage: read_ready pipe|socket background|deadline "
                        "N\n");
        return 2;
    }
    rc = strcmp(argv[1], "pipe") == 0
             ? pipe(fds)
             : socketpair(AF_UNIX, SOCK_STREAM, 0, fds);
    if (rc != 0) {
        perror("read_ready");
        return 1;
    }
    if (strcmp(argv[2], "deadline") == 0 &&
        ctx_with_timeout(ctx_background(), 3600 * CTX_SECOND, &c) != 0)
        return 1;
    /* Each write finds room, each read finds the byte just written. */
    for (long i = 0; i < n; i++)
        if (ctx_write(c, fds[1], &b, 1) != 1 || ctx_read(c, fds[0], &b, 1) != 1)
            return 1;
    if (c != ctx_background())
        ctx_release(c);
    printf("%ld\n", n);
    return 0;
}
