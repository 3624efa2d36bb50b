/* SPDX-License-Identifier: MIT */
/*
 * For the few test programs that run without t.h under strace's fault
 * injection (t.h starts a watchdog thread, which would take the injected
 * clone3 failure): a CHECK that counts failures, and whether a tracer is
 * attached.
 */
#ifndef CTX_TESTS_BARE_H
#define CTX_TESTS_BARE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

#define CHECK(x)                                                               \
    do {                                                                       \
        if (!(x)) {                                                            \
            fprintf(stderr, "  %s:%d: %s\n", __FILE__, __LINE__, #x);          \
            failures++;                                                        \
        }                                                                      \
    } while (0)

/* Whether a tracer is attached (strace), from /proc/self/status. */
static inline int traced(void)
{
    char line[256];
    int pid = 0;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "TracerPid:", 10) == 0)
            pid = atoi(line + 10);
    fclose(f);
    return pid != 0;
}

#endif /* CTX_TESTS_BARE_H */
