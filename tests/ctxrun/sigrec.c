/* SPDX-License-Identifier: MIT */
/*
 * A command for the ctxrun scenarios that records the signals it gets:
 * `sigrec FILE` appends "SIGNAME MONOTONIC_NS" to FILE for each SIGTERM,
 * SIGINT, SIGHUP, SIGQUIT or SIGUSR1 it receives and goes on (only
 * SIGKILL ends it), after writing "ready MONOTONIC_NS" once its handlers
 * are in place.
 *
 * The handler uses only write(2) and clock_gettime(2), which are
 * async-signal-safe.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int out = -1;

static void record(const char *what)
{
    char line[64], digits[24];
    struct timespec ts;
    long long ns;
    size_t n = 0, k = 0;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    ns = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    while (*what && n < 32)
        line[n++] = *what++;
    line[n++] = ' ';
    do {
        digits[k++] = (char)('0' + ns % 10);
        ns /= 10;
    } while (ns > 0);
    while (k > 0)
        line[n++] = digits[--k];
    line[n++] = '\n';
    if (write(out, line, n) < 0)
        _exit(3);
}

static void on_signal(int sig)
{
    int saved = errno;
    switch (sig) {
    case SIGTERM:
        record("SIGTERM");
        break;
    case SIGINT:
        record("SIGINT");
        break;
    case SIGHUP:
        record("SIGHUP");
        break;
    case SIGQUIT:
        record("SIGQUIT");
        break;
    default:
        record("SIGUSR1");
        break;
    }
    errno = saved;
}

int main(int argc, char **argv)
{
    static const int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1};
    struct sigaction sa;

    if (argc != 2) {
        fprintf(stderr, "usage: sigrec FILE\n");
        return 2;
    }
    out = open(argv[1], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (out < 0) {
        perror(argv[1]);
        return 2;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaction(sigs[i], &sa, NULL);
    record("ready");
    for (;;)
        pause();
}
