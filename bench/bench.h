/* SPDX-License-Identifier: MIT */
/*
 * A tiny benchmark harness with the peers' methodology (../shared/peers):
 *
 *   hot loops   body(n) is run with n doubling (or scaled up) until one run
 *               takes >= 0.5 s; the figure is total time / n (ns/op);
 *   2 threads   each of 2 threads runs body(n) on the same object; the
 *               figure is wall time / (2 n), what Go's b.RunParallel
 *               reports (per-thread cost is twice that);
 *   events      the caller times one event per repetition (fixture built
 *               untimed) and reports the median.
 *
 * Output: one line per figure, "RESULT <name> <value> <unit>", the format
 * of the peers' C and C++ programs. KEEP(v) makes v opaque to the compiler
 * (and is a compiler memory barrier), so measured work is not optimised
 * away.
 */
#ifndef CTX_BENCH_H
#define CTX_BENCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define KEEP(v) __asm__ volatile("" : : "r"(v) : "memory")

/* Names are prefixed with this (e.g. "static." for the static build). */
#ifndef BENCH_PREFIX
#define BENCH_PREFIX ""
#endif

/* One run of a hot loop: do the operation n times. */
typedef void (*bench_loop_fn)(long n, void *arg);

static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static inline void bench_result(const char *name, double v, const char *unit)
{
    printf("RESULT %s%s %.3f %s\n", BENCH_PREFIX, name, v, unit);
    fflush(stdout);
}

static inline int bench_cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Sorts v. */
static inline double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, bench_cmpd);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Nearest-rank percentile (0 < p <= 100); sorts v. */
static inline double bench_percentile(double *v, int n, double p)
{
    int k;
    qsort(v, (size_t)n, sizeof *v, bench_cmpd);
    k = (int)(p / 100.0 * n + 0.999999) - 1;
    if (k < 0)
        k = 0;
    if (k >= n)
        k = n - 1;
    return v[k];
}

/* The next iteration count: as the peers, x100 while a run is too short to
 * time, else scaled to ~0.6 s, and at least doubled. */
static inline long bench_next_n(long n, double dt, double tiny)
{
    long next = dt < tiny ? n * 100 : (long)((double)n * (6e8 / dt));
    return next > 2 * n ? next : 2 * n;
}

/* ns per operation of body, calibrated until one run takes >= 0.5 s. */
static inline double bench_per_op(bench_loop_fn body, void *arg)
{
    long n = 1;
    for (;;) {
        double t0 = bench_now(), dt;
        body(n, arg);
        dt = bench_now() - t0;
        if (dt >= 5e8)
            return dt / (double)n;
        n = bench_next_n(n, dt, 1e3);
    }
}

struct bench_par {
    bench_loop_fn body;
    void *arg;
    long n;
    atomic_int ready;
    atomic_int go;
};

static inline void *bench_par_thread(void *p)
{
    struct bench_par *bp = p;
    atomic_fetch_add(&bp->ready, 1);
    while (!atomic_load_explicit(&bp->go, memory_order_acquire))
        ;
    bp->body(bp->n, bp->arg);
    return NULL;
}

/* 2 threads each run body(n) at once: wall time / total operations. */
static inline double bench_per_op_parallel(bench_loop_fn body, void *arg)
{
    enum { THREADS = 2 };
    long n = 1;
    for (;;) {
        struct bench_par bp = {.body = body, .arg = arg, .n = n};
        pthread_t t[THREADS];
        double t0, dt;
        for (int i = 0; i < THREADS; i++)
            if (pthread_create(&t[i], NULL, bench_par_thread, &bp) != 0)
                abort();
        while (atomic_load(&bp.ready) != THREADS)
            ;
        t0 = bench_now();
        atomic_store_explicit(&bp.go, 1, memory_order_release);
        for (int i = 0; i < THREADS; i++)
            pthread_join(t[i], NULL);
        dt = bench_now() - t0;
        if (dt >= 5e8)
            return dt / ((double)n * THREADS);
        n = bench_next_n(n, dt, 1e4);
    }
}

#endif /* CTX_BENCH_H */
