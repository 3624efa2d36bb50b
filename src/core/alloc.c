/* SPDX-License-Identifier: MIT */
/*
 * The one allocation hook of the library, the named fault points tests use
 * to make allocations, thread creation and descriptors fail on purpose,
 * and the assertion failure path.
 *
 * DESIGN
 *
 * A fault point is a countdown: armed with n, its n-th check from then on
 * fails (and, when persistent, every later one too). A global flag says
 * whether any point is armed, so a disarmed check is one relaxed load.
 * Countdowns are atomics because the thread that trips one may not be the
 * test's own (the timer thread allocates when the heap grows).
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

atomic_int ctx__faults_armed;

static struct {
    atomic_long countdown; /* 0: disarmed; 1: the next check fails */
    atomic_int persistent;
    atomic_long hits;
} faults[CTX__FAULT_COUNT];

void ctx__fault_arm(enum ctx__fault_point p, long nth, int persistent)
{
    atomic_store(&faults[p].persistent, persistent);
    atomic_store(&faults[p].countdown, nth > 0 ? nth : 0);
    atomic_store(&ctx__faults_armed, 1);
}

void ctx__fault_disarm_all(void)
{
    for (int i = 0; i < CTX__FAULT_COUNT; i++) {
        atomic_store(&faults[i].countdown, 0);
        atomic_store(&faults[i].persistent, 0);
    }
    atomic_store(&ctx__faults_armed, 0);
}

long ctx__fault_hits(enum ctx__fault_point p)
{
    return atomic_load(&faults[p].hits);
}

int ctx__fault_check(enum ctx__fault_point p)
{
    long c = atomic_load(&faults[p].countdown);
    while (c > 0) {
        if (c == 1 && atomic_load(&faults[p].persistent)) {
            atomic_fetch_add(&faults[p].hits, 1);
            return 1; /* stays at 1: every later check fails too */
        }
        if (atomic_compare_exchange_weak(&faults[p].countdown, &c, c - 1)) {
            if (c == 1) {
                atomic_fetch_add(&faults[p].hits, 1);
                return 1;
            }
            return 0;
        }
    }
    return 0;
}

void *ctx__malloc(size_t n)
{
    if (ctx__fault(CTX__FAULT_ALLOC))
        return NULL;
    return malloc(n);
}

void *ctx__calloc(size_t n, size_t size)
{
    if (ctx__fault(CTX__FAULT_ALLOC))
        return NULL;
    return calloc(n, size);
}

void *ctx__realloc(void *p, size_t n)
{
    if (ctx__fault(CTX__FAULT_ALLOC))
        return NULL;
    return realloc(p, n);
}

void ctx__free(void *p)
{
    free(p);
}

char *ctx__strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = ctx__malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

void ctx__assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "libctx: assertion failed: %s (%s:%d)\n", expr, file, line);
    abort();
}
