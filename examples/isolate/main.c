/* SPDX-License-Identifier: MIT */
/*
 * isolate: decode PNG files with a decoder that may crash or never end,
 * each in a process of its own under a deadline, and keep going.
 *
 *     isolate [-t MILLISECONDS] FILE...
 *
 * One line per file: its size and checksum, or why it failed (the
 * decoder crashed, or ran past the deadline and was killed). Ctrl-C (or
 * SIGTERM) stops the run at once, killing the decoder at work. Exit
 * status: 0 if every file decoded, 1 if some did not, 2 for bad usage,
 * 130 when interrupted.
 *
 * DESIGN
 *
 * ctx_isolate_init comes first, while the program has one thread: the
 * decoder's processes are forked from that copy, with no lock held.
 * ctx_signal_init follows, before libctx starts a thread, so SIGINT and
 * SIGTERM reach only the run's context: each file's context is a child of
 * it, so a signal kills the decoder at work and the loop stops.
 */
#define _POSIX_C_SOURCE 200809L
#include "decode.h"

#include <ctx/force.h>
#include <ctx/sig.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int read_file(const char *path, unsigned char **data, size_t *len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *p = NULL, *q;
    size_t n = 0, cap = 0, r;

    if (!f)
        return errno;
    do {
        if (n == cap) {
            cap = cap ? 2 * cap : 65536;
            if (!(q = realloc(p, cap))) {
                free(p);
                fclose(f);
                return ENOMEM;
            }
            p = q;
        }
        r = fread(p + n, 1, cap - n, f);
        n += r;
    } while (r > 0);
    fclose(f);
    *data = p;
    *len = n;
    return 0;
}

static int decode_file(ctx_t *run, const char *path, ctx_time_t timeout)
{
    unsigned char *data = NULL;
    size_t len = 0;
    image_t img;
    char why[128];
    ctx_t *c;
    int rc;

    if ((rc = read_file(path, &data, &len)) != 0) {
        printf("%s: cannot read: %s\n", path, strerror(rc));
        return rc;
    }
    if ((rc = ctx_with_timeout(run, timeout, &c)) == 0) {
        rc = decode_png(c, data, len, &img, why, sizeof why);
        if (rc == 0)
            printf("%s: %ux%u checksum %016llx\n", path, img.width, img.height,
                   (unsigned long long)img.checksum);
        else if (rc == ETIMEDOUT)
            printf("%s: error: decoder still busy after %lld ms, killed\n",
                   path, (long long)(timeout / CTX_MILLISECOND));
        else
            printf("%s: error: %s\n", path, why);
        image_free(&img);
        ctx_cancel(c);
        ctx_release(c);
    }
    free(data);
    return rc;
}

int main(int argc, char **argv)
{
    ctx_time_t timeout = 2 * CTX_SECOND;
    int sigs[] = {SIGINT, SIGTERM}, opt, failed = 0, status;
    ctx_t *run;

    /* The decoder's helper process, made while we have one thread. */
    if (ctx_isolate_init() != 0 || ctx_signal_init() != 0) {
        fprintf(stderr, "isolate: cannot start\n");
        return 1;
    }
    while ((opt = getopt(argc, argv, "t:")) != -1) {
        if (opt != 't' || atol(optarg) <= 0) {
            fprintf(stderr, "usage: isolate [-t MILLISECONDS] FILE...\n");
            return 2;
        }
        timeout = atol(optarg) * CTX_MILLISECOND;
    }
    if (optind == argc) {
        fprintf(stderr, "usage: isolate [-t MILLISECONDS] FILE...\n");
        return 2;
    }
    if (ctx_signal_notify(ctx_background(), sigs, 2, &run) != 0)
        return 1;
    for (int i = optind; i < argc && !ctx_done(run); i++)
        if (decode_file(run, argv[i], timeout) != 0)
            failed = 1;
    status = ctx_done(run) ? 130 : failed;
    if (status == 130)
        fprintf(stderr, "isolate: interrupted\n");
    ctx_cancel(run);
    ctx_release(run);
    fflush(stdout);
    return status;
}
