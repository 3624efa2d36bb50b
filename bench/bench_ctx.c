/* SPDX-License-Identifier: MIT */
/*
 * Benchmarks of the context core, each defined as the peers' row it is
 * compared with (../shared/peers: Go's context, C++20 stop_token, tokio's
 * CancellationToken, and the C floor). See bench.h for the methodology.
 *
 *   bench_ctx [poll] [pair] [tree] [wake] [mem] [latency]
 *
 * runs the named sections (all by default) and prints "RESULT <name>
 * <value> <unit>" lines. Every libctx call is checked; a failure aborts.
 */
#define _GNU_SOURCE
#define BENCH_NAME "bench_ctx"
#include "bench.h"

#include <ctx/ctx.h>

#include <limits.h>
#include <linux/futex.h>
#include <malloc.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ------------------------------------------------------------ poll */

static void loop_poll(long n, void *arg)
{
    ctx_t *c = arg;
    long hits = 0;
    for (long i = 0; i < n; i++) {
        bool r = ctx_done(c); /* the header's inline acquire load */
        KEEP(r);
        hits += r;
    }
    if (hits)
        die("live context seen done");
}

static void loop_poll_call(long n, void *arg)
{
    ctx_t *c = arg;
    long hits = 0;
    for (long i = 0; i < n; i++) {
        bool r = (ctx_done)(c); /* the exported function */
        KEEP(r);
        hits += r;
    }
    if (hits)
        die("live context seen done");
}

static void bench_poll(void)
{
    ctx_t *root = child_of(ctx_background());
    ctx_t *c = child_of(root);

    bench_result("poll.ctx_done", bench_per_op(loop_poll, c), "ns/op");
    bench_result("poll.ctx_done.parallel", bench_per_op_parallel(loop_poll, c),
                 "ns/op");
    bench_result("poll.ctx_done_call", bench_per_op(loop_poll_call, c),
                 "ns/op");
    ctx_cancel(root);
    ctx_release(c);
    ctx_release(root);
}

/* ------------------------------------------------------------ pairs */

static void loop_root(long n, void *arg)
{
    (void)arg;
    for (long i = 0; i < n; i++) {
        ctx_t *c;
        if (ctx_with_cancel(ctx_background(), &c) != 0)
            die("ctx_with_cancel failed");
        KEEP(c);
        ctx_cancel(c);
        ctx_release(c);
    }
}

static void loop_child(long n, void *arg)
{
    ctx_t *parent = arg;
    for (long i = 0; i < n; i++) {
        ctx_t *c;
        if (ctx_with_cancel(parent, &c) != 0)
            die("ctx_with_cancel failed");
        KEEP(c);
        ctx_cancel(c);
        ctx_release(c);
    }
}

static void loop_child_nocancel(long n, void *arg)
{
    ctx_t *parent = arg;
    for (long i = 0; i < n; i++) {
        ctx_t *c;
        if (ctx_with_cancel(parent, &c) != 0)
            die("ctx_with_cancel failed");
        KEEP(c);
        ctx_release(c);
    }
}

static void loop_child_fd(long n, void *arg)
{
    ctx_t *parent = arg;
    for (long i = 0; i < n; i++) {
        ctx_t *c;
        if (ctx_with_cancel(parent, &c) != 0)
            die("ctx_with_cancel failed");
        if (ctx_fd(c) < 0)
            die("ctx_fd failed");
        ctx_cancel(c);
        ctx_release(c);
    }
}

static void loop_timeout(long n, void *arg)
{
    ctx_t *parent = arg;
    for (long i = 0; i < n; i++) {
        ctx_t *c;
        if (ctx_with_timeout(parent, CTX_HOUR, &c) != 0)
            die("ctx_with_timeout failed");
        KEEP(c);
        ctx_cancel(c);
        ctx_release(c);
    }
}

static void bench_pair(void)
{
    ctx_t *parent = child_of(ctx_background()); /* live, cancellable */
    ctx_time_t dl;

    bench_result("pair.root", bench_per_op(loop_root, NULL), "ns/op");
    bench_result("pair.child", bench_per_op(loop_child, parent), "ns/op");
    bench_result("pair.child_nocancel",
                 bench_per_op(loop_child_nocancel, parent), "ns/op");
    bench_result("pair.child_fd", bench_per_op(loop_child_fd, parent), "ns/op");
    bench_result("pair.timeout", bench_per_op(loop_timeout, parent), "ns/op");
    if (ctx_done(parent) || ctx_deadline(parent, &dl))
        die("parent changed");
    ctx_cancel(parent);
    ctx_release(parent);
}

/* ------------------------------------------------------------ trees */

/*
 * Build a live root and n descendants (flat: all children of the root;
 * chain: each the child of the previous), untimed; time ctx_cancel(root);
 * check every descendant is done and release everything, untimed.
 */
static double tree_once(ctx_t **nodes, int n, int chain)
{
    ctx_t *root = child_of(ctx_background());
    double t0, dt;

    for (int i = 0; i < n; i++)
        nodes[i] = child_of(chain && i > 0 ? nodes[i - 1] : root);
    t0 = bench_now();
    ctx_cancel(root);
    dt = bench_now() - t0;
    for (int i = 0; i < n; i++)
        if (!ctx_done(nodes[i]) || ctx_err(nodes[i]) != ECANCELED)
            die("descendant not done after the root's cancel");
    for (int i = n - 1; i >= 0; i--)
        ctx_release(nodes[i]);
    ctx_release(root);
    return dt;
}

static void tree_series(ctx_t **nodes, int n, int chain, int reps)
{
    char name[64];
    double *t = malloc((size_t)reps * sizeof *t), m;

    if (!t)
        die("out of memory");
    tree_once(nodes, n, chain); /* warm-up */
    for (int r = 0; r < reps; r++)
        t[r] = tree_once(nodes, n, chain);
    m = bench_median(t, reps);
    free(t);
    if (chain)
        snprintf(name, sizeof name, "tree.chain.depth=%d", n);
    else
        snprintf(name, sizeof name, "tree.flat.n=%d", n);
    bench_result(name, m / n, "ns/descendant");
    strncat(name, ".total", sizeof name - strlen(name) - 1);
    bench_result(name, m, "ns");
}

static void bench_tree(void)
{
    static const int ns[] = {1, 10, 100, 1000, 10000, 100000};
    ctx_t **nodes = malloc(100000 * sizeof *nodes);

    if (!nodes)
        die("out of memory");
    for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
        int n = ns[k];
        /* the C++ peer's repetitions; Go takes 20 of each */
        tree_series(nodes, n, 0, n >= 100000 ? 20 : n >= 10000 ? 40 : 200);
    }
    tree_series(nodes, 1000, 1, 200);
    free(nodes);
}

/* ------------------------------------------------------------ wake */

/*
 * n threads blocked on one context in ctx_wait(c, CTX_NO_DEADLINE) (or,
 * for the floor measured alongside, in FUTEX_WAIT on one word, as
 * floor.c's futex_wake_all). Each woken thread decrements `left`; the last
 * one wakes the main thread, which is blocked in FUTEX_WAIT on `done`.
 * Woken threads then park again, so thread exit is not timed.
 */
struct wake {
    ctx_t *c; /* NULL: raw futex on `word` */
    atomic_int word;
    atomic_int ready, left, done, exit;
    pid_t *tids;
};

struct waiter {
    struct wake *w;
    int i;
};

static void *wake_waiter(void *arg)
{
    struct waiter *me = arg;
    struct wake *w = me->w;

    w->tids[me->i] = (pid_t)syscall(SYS_gettid);
    atomic_fetch_add(&w->ready, 1);
    if (w->c) {
        if (ctx_wait(w->c, CTX_NO_DEADLINE) != 0)
            die("ctx_wait failed");
    } else {
        while (atomic_load(&w->word) == 0)
            futex_wait(&w->word, 0);
    }
    if (atomic_fetch_sub(&w->left, 1) == 1) {
        atomic_store(&w->done, 1);
        futex_wake(&w->done, 1);
    }
    while (atomic_load(&w->exit) == 0)
        futex_wait(&w->exit, 0);
    return NULL;
}

/*
 * One wake-up of n waiters; raw: the futex floor instead of a context.
 * verify: check, after the wait the peers use, that every waiter is
 * asleep, and warn if not. Only for the untimed warm-up: reading /proc
 * even 2 ms before the timed region slows the wake-up of one thread by
 * ~2 us on this VM, raw futex waiters as much as libctx's.
 */
static double wake_once(int n, int raw, int verify)
{
    struct wake w = {.c = NULL};
    pthread_t *t = calloc((size_t)n, sizeof *t);
    struct waiter *me = calloc((size_t)n, sizeof *me);
    pthread_attr_t a;
    double t0, dt;

    w.tids = calloc((size_t)n, sizeof *w.tids);
    if (!t || !me || !w.tids)
        die("out of memory");
    if (!raw)
        w.c = child_of(ctx_background());
    atomic_store(&w.left, n);
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, 64 * 1024);
    for (int i = 0; i < n; i++) {
        me[i].w = &w;
        me[i].i = i;
        if (pthread_create(&t[i], &a, wake_waiter, &me[i]) != 0)
            die("pthread_create failed");
    }
    pthread_attr_destroy(&a);
    /* All announced, then the peers' 2 ms (+2 us per waiter) to park. */
    while (atomic_load(&w.ready) != n)
        sleep_us(100);
    sleep_us(2000 + 2 * (long)n);
    for (int i = 0; verify && i < n; i++)
        if (!thread_sleeping(w.tids[i]))
            warn("a waiter is not parked after the peers' 2 ms");

    t0 = bench_now();
    if (raw) {
        atomic_store(&w.word, 1);
        futex_wake(&w.word, INT_MAX);
    } else {
        ctx_cancel(w.c);
    }
    while (atomic_load(&w.done) == 0)
        futex_wait(&w.done, 0);
    dt = bench_now() - t0;

    atomic_store(&w.exit, 1);
    futex_wake(&w.exit, INT_MAX);
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    ctx_release(w.c);
    free(w.tids);
    free(me);
    free(t);
    return dt;
}

static void bench_wake(void)
{
    static const int ns[] = {1, 100, 1000};
    static const int reps[] = {200, 40, 15}; /* floor.c's repetitions */
    char name[64];

    for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
        int n = ns[k], r = reps[k];
        double *tc = malloc((size_t)r * sizeof *tc);
        double *tf = malloc((size_t)r * sizeof *tf);
        double mc, mf;
        if (!tc || !tf)
            die("out of memory");
        wake_once(n, 0, 1); /* warm-up, checking the waiters park */
        wake_once(n, 1, 1);
        /* Interleaved with the raw futex, so both see the same machine. */
        for (int i = 0; i < r; i++) {
            tc[i] = wake_once(n, 0, 0);
            tf[i] = wake_once(n, 1, 0);
        }
        mc = bench_median(tc, r);
        mf = bench_median(tf, r);
        snprintf(name, sizeof name, "wake.n=%d.total", n);
        bench_result(name, mc, "ns");
        snprintf(name, sizeof name, "wake.n=%d", n);
        bench_result(name, mc / n, "ns/waiter");
        snprintf(name, sizeof name, "wake_futex_inline.n=%d.total", n);
        bench_result(name, mf, "ns");
        free(tc);
        free(tf);
    }
}

/* ------------------------------------------------------------ memory */

/* Heap bytes in use: malloc chunks (uordblks), and the same plus mmapped
 * chunks (hblkhd), where a large array such as the timer heap lands. */
static void heap_in_use(size_t *chunks, size_t *with_mmap)
{
    struct mallinfo2 mi = mallinfo2();
    *chunks = mi.uordblks;
    *with_mmap = mi.uordblks + mi.hblkhd;
}

/* Bytes per live child of one live root, over 100000 children. */
static void mem_once(int timed, const char *name)
{
    enum { N = 100000 };
    ctx_t *root = child_of(ctx_background());
    ctx_t **v = malloc(N * sizeof *v);
    size_t b0, bm0, b1, bm1;
    char full[64];

    if (!v)
        die("out of memory");
    malloc_trim(0);
    heap_in_use(&b0, &bm0);
    for (int i = 0; i < N; i++) {
        if (timed) {
            if (ctx_with_timeout(root, CTX_HOUR, &v[i]) != 0)
                die("ctx_with_timeout failed");
        } else {
            v[i] = child_of(root);
        }
    }
    heap_in_use(&b1, &bm1);
    /* The peers' accounting (malloc chunks), and with mmapped chunks. */
    snprintf(full, sizeof full, "%s.chunks", name);
    bench_result(full, (double)(b1 - b0) / N, "B/live-child");
    bench_result(name, (double)(bm1 - bm0) / N, "B/live-child");
    ctx_cancel(root);
    for (int i = 0; i < N; i++) {
        if (!ctx_done(v[i]))
            die("child not done");
        ctx_release(v[i]);
    }
    ctx_release(root);
    free(v);
}

static void bench_mem(void)
{
    mem_once(0, "mem.child");
    mem_once(1, "mem.child_timeout");
}

/* ------------------------------------------------------------ latency */

/*
 * One waiter thread, reused: for each sample it blocks in ctx_wait on a
 * fresh context and timestamps its return; the main thread timestamps
 * just before ctx_cancel. Same clock, both threads.
 */
struct lat {
    ctx_t *_Atomic c;
    atomic_int gen;  /* bumped by main: a new context to wait on */
    atomic_int seen; /* the waiter's last generation, before ctx_wait */
    atomic_int back; /* the waiter's last generation, after ctx_wait */
    double t1;
    pid_t tid;
};

static void *lat_waiter(void *arg)
{
    struct lat *l = arg;
    int g = 0;

    l->tid = (pid_t)syscall(SYS_gettid);
    for (;;) {
        while (atomic_load(&l->gen) == g)
            futex_wait(&l->gen, g);
        g = atomic_load(&l->gen);
        if (g < 0)
            return NULL;
        atomic_store(&l->seen, g);
        if (ctx_wait(atomic_load(&l->c), CTX_NO_DEADLINE) != 0)
            die("ctx_wait failed");
        l->t1 = bench_now();
        atomic_store(&l->back, g);
        futex_wake(&l->back, 1);
    }
}

static void bench_latency(void)
{
    enum { WARMUP = 20, SAMPLES = 1000 };
    static double v[WARMUP + SAMPLES];
    struct lat l = {.t1 = 0};
    pthread_t t;

    if (pthread_create(&t, NULL, lat_waiter, &l) != 0)
        die("pthread_create failed");
    for (int i = 0; i < WARMUP + SAMPLES; i++) {
        ctx_t *c = child_of(ctx_background());
        int g = i + 1;
        double t0;
        atomic_store(&l.c, c);
        atomic_store(&l.gen, g);
        futex_wake(&l.gen, 1);
        while (atomic_load(&l.seen) != g)
            sleep_us(50);
        sleep_us(2000);
        if (i < WARMUP && !thread_sleeping(l.tid)) /* as in wake_once */
            warn("the waiter is not parked after 2 ms");
        t0 = bench_now();
        ctx_cancel(c);
        while (atomic_load(&l.back) != g)
            futex_wait(&l.back, atomic_load(&l.back));
        v[i] = l.t1 - t0;
        ctx_release(c);
    }
    atomic_store(&l.gen, -1);
    futex_wake(&l.gen, 1);
    pthread_join(t, NULL);
    /* The warm-up samples, checked through /proc, are not counted. */
    bench_result("latency.wait.p50", bench_percentile(v + WARMUP, SAMPLES, 50),
                 "ns");
    bench_result("latency.wait.p99", bench_percentile(v + WARMUP, SAMPLES, 99),
                 "ns");
    bench_result("latency.wait.max", v[WARMUP + SAMPLES - 1], "ns");
}

/* ------------------------------------------------------------ main */

static const struct bench_section sections[] = {
    {"poll", bench_poll}, {"pair", bench_pair}, {"tree", bench_tree},
    {"wake", bench_wake}, {"mem", bench_mem},   {"latency", bench_latency},
};

int main(int argc, char **argv)
{
    if (bench_run(argc, argv, sections, sizeof sections / sizeof *sections))
        return 2;
    if (ctx_leak_check(CTX_SECOND) != 0)
        die("contexts leaked");
    return 0;
}
