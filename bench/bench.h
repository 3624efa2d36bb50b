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

#include <ctx/ctx.h>

#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define KEEP(v) __asm__ volatile("" : : "r"(v) : "memory")

/* The program's name in messages. */
#ifndef BENCH_NAME
#define BENCH_NAME "bench"
#endif

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

enum { BENCH_THREADS = 2 };

/* One run: 2 threads each run body(n), released at once; the wall time. */
static inline double bench_run_parallel(bench_loop_fn body, void *arg, long n)
{
    struct bench_par bp = {.body = body, .arg = arg, .n = n};
    pthread_t t[BENCH_THREADS];
    double t0;
    for (int i = 0; i < BENCH_THREADS; i++)
        if (pthread_create(&t[i], NULL, bench_par_thread, &bp) != 0)
            abort();
    while (atomic_load(&bp.ready) != BENCH_THREADS)
        ;
    t0 = bench_now();
    atomic_store_explicit(&bp.go, 1, memory_order_release);
    for (int i = 0; i < BENCH_THREADS; i++)
        pthread_join(t[i], NULL);
    return bench_now() - t0;
}

/* 2 threads each run body(n) at once: wall time / total operations. */
static inline double bench_per_op_parallel(bench_loop_fn body, void *arg)
{
    long n = 1;
    for (;;) {
        double dt = bench_run_parallel(body, arg, n);
        if (dt >= 5e8)
            return dt / ((double)n * BENCH_THREADS);
        n = bench_next_n(n, dt, 1e4);
    }
}

/* ------------------------------------------------------------ helpers */

_Noreturn static inline void die(const char *what)
{
    fprintf(stderr, "%s: %s\n", BENCH_NAME, what);
    abort();
}

static inline void warn(const char *what)
{
    fprintf(stderr, "%s: warning: %s\n", BENCH_NAME, what);
}

static inline ctx_t *child_of(ctx_t *parent)
{
    ctx_t *c;
    if (ctx_with_cancel(parent, &c) != 0)
        die("ctx_with_cancel failed");
    return c;
}

static inline void futex_wait(atomic_int *word, int val)
{
    syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static inline void futex_wake(atomic_int *word, int n)
{
    syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

static inline void sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/*
 * Whether thread `tid` of this process is asleep (state S): a waiter that
 * has announced itself and is asleep is parked in the kernel.
 */
static inline int thread_sleeping(pid_t tid)
{
    char path[64], buf[512], *p;
    FILE *f;
    size_t n;

    snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
    f = fopen(path, "r");
    if (!f)
        return 0;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    p = strrchr(buf, ')');
    return p && p[1] == ' ' && p[2] == 'S';
}

/* ------------------------------------------------------------ sections */

/* A program's sections, run by name from the command line (all when it
 * names none), in the table's order. */
struct bench_section {
    const char *name;
    void (*run)(void);
};

/* 0 if every argument names a section; else prints the usage: 2. */
static inline int bench_check_args(int argc, char **argv,
                                   const struct bench_section *s, size_t n)
{
    for (int i = 1; i < argc; i++) {
        size_t k = 0;
        while (k < n && strcmp(argv[i], s[k].name) != 0)
            k++;
        if (k == n) {
            fprintf(stderr, "usage: %s", argv[0]);
            for (k = 0; k < n; k++)
                fprintf(stderr, "%s%s", k ? "|" : " [", s[k].name);
            fprintf(stderr, "]...\n");
            return 2;
        }
    }
    return 0;
}

/* Whether the command line asks for section `name`. */
static inline int bench_wanted(int argc, char **argv, const char *name)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return 1;
    return argc == 1;
}

/* Run the sections the command line names; 2 on a bad name, else 0. */
static inline int bench_run(int argc, char **argv,
                            const struct bench_section *s, size_t n)
{
    if (bench_check_args(argc, argv, s, n))
        return 2;
    for (size_t k = 0; k < n; k++)
        if (bench_wanted(argc, argv, s[k].name))
            s[k].run();
    return 0;
}

#endif /* CTX_BENCH_H */
