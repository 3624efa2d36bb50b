/* SPDX-License-Identifier: MIT */
/*
 * Benchmarks of the sync layer: groups, the semaphore, the rate limiter
 * and channels, each defined as the Go row it is compared with
 * (../shared/peers/go/peers_test.go for errgroup, semaphore and rate;
 * bench/go/chan_test.go for channels). See bench.h for the methodology.
 *
 *   bench_sync [group] [sem] [rate] [chan] [firsterr]
 *
 * runs the named sections (all by default, in this order: the first-error
 * section leaves a thousand idle pool threads behind) and prints "RESULT
 * <name> <value> <unit>" lines. Every libctx call is checked, and each
 * section first checks, untimed, that the operation does what its row
 * says (tasks run once and within the limit, the semaphore excludes,
 * channels deliver every element in order); a failure aborts. It also
 * reports the share of the machine other processes took while each
 * section ran (others_cpu_share.<section>), and over the whole run.
 */
#define _GNU_SOURCE
#define BENCH_NAME "bench_sync"
#include "bench.h"

#include <ctx/ctx.h>

#include <limits.h>
#include <linux/futex.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ------------------------------------------------------------ groups */

enum { TASKS = 1000 }; /* peers_test.go's egTasks */

/* Go's `g.Go(func() error { return nil })`. */
static int task_noop(ctx_t *c, void *arg)
{
    (void)c;
    (void)arg;
    return 0;
}

/*
 * One group as Go's benchErrgroup: WithContext(Background) [+ SetLimit] +
 * 1000 x Go(no-op) + Wait; here also ctx_group_free.
 */
static void one_group(int limit, ctx_task_fn fn, void *arg)
{
    ctx_group_t *g;

    if (ctx_group_new(ctx_background(), &g) != 0)
        die("ctx_group_new failed");
    if (limit > 0 && ctx_group_set_limit(g, limit) != 0)
        die("ctx_group_set_limit failed");
    for (int k = 0; k < TASKS; k++)
        if (ctx_group_go(g, fn, arg) != 0)
            die("ctx_group_go failed");
    if (ctx_group_wait(g) != 0)
        die("ctx_group_wait reported a task error");
    if (!ctx_done(ctx_group_ctx(g)))
        die("group context live after ctx_group_wait");
    ctx_group_free(g);
}

static void loop_group(long n, void *arg)
{
    int limit = *(const int *)arg;
    for (long i = 0; i < n; i++)
        one_group(limit, task_noop, NULL);
}

/* The check: every task runs once, never more than `limit` at a time,
 * and sees the group's context live. */
struct census {
    atomic_int running, max, total;
};

static int task_census(ctx_t *c, void *arg)
{
    struct census *k = arg;
    int r = atomic_fetch_add(&k->running, 1) + 1;
    int m = atomic_load(&k->max);

    while (r > m && !atomic_compare_exchange_weak(&k->max, &m, r))
        ;
    if (ctx_done(c))
        die("a task saw its group's context done");
    atomic_fetch_sub(&k->running, 1);
    atomic_fetch_add(&k->total, 1);
    return 0;
}

static void group_check(int limit)
{
    for (int rep = 0; rep < 20; rep++) {
        struct census k = {0};
        one_group(limit, task_census, &k);
        if (atomic_load(&k.total) != TASKS)
            die("a group did not run each task exactly once");
        if (limit > 0 && atomic_load(&k.max) > limit)
            die("a group ran more tasks at once than its limit");
    }
}

/*
 * The machine's cross-CPU latency when the group rows run: two threads
 * pass a counter back and forth through two cache lines, 10^5 times; ns
 * per round trip. On this VM it moves between two levels over minutes,
 * and a group task costs at least one transfer each way between the
 * submitter and the worker, so the group rows move with it.
 */
enum { RT_ROUNDS = 100000 };

static struct {
    _Alignas(64) atomic_long ping;
    _Alignas(64) atomic_long pong;
} rt;

static void *rt_echo(void *arg)
{
    (void)arg;
    for (long i = 1; i <= RT_ROUNDS; i++) {
        while (atomic_load_explicit(&rt.ping, memory_order_acquire) != i)
            ;
        atomic_store_explicit(&rt.pong, i, memory_order_release);
    }
    return NULL;
}

static double round_trip_ns(void)
{
    pthread_t t;
    double t0;

    atomic_store(&rt.ping, 0);
    atomic_store(&rt.pong, 0);
    if (pthread_create(&t, NULL, rt_echo, NULL) != 0)
        die("pthread_create failed");
    t0 = bench_now();
    for (long i = 1; i <= RT_ROUNDS; i++) {
        atomic_store_explicit(&rt.ping, i, memory_order_release);
        while (atomic_load_explicit(&rt.pong, memory_order_acquire) != i)
            ;
    }
    t0 = bench_now() - t0;
    pthread_join(t, NULL);
    return t0 / RT_ROUNDS;
}

static void bench_group(void)
{
    static int nolimit = -1, limit2 = 2;

    bench_result("group.xcpu_round_trip", round_trip_ns(), "ns");
    group_check(nolimit);
    group_check(limit2);
    bench_result("group.nolimit", bench_per_op(loop_group, &nolimit) / TASKS,
                 "ns/task");
    bench_result("group.limit=2", bench_per_op(loop_group, &limit2) / TASKS,
                 "ns/task");
}

/* ------------------------------------------------------------ first error */

enum { SIBLINGS = 1000, FE_REPS = 20 }; /* as ErrgroupFirstError, 20x */

/*
 * ErrgroupFirstError: SIBLINGS tasks parked in ctx_wait on the group's
 * context and one more blocked on a trigger (a futex word) that returns
 * an error once released. Timed: from releasing the trigger to
 * ctx_group_wait returning (the error cancels the group, which wakes the
 * siblings; the last task to return wakes the waiter).
 */
struct fe {
    atomic_int started;
    atomic_int saw_done; /* siblings that saw the context done */
    atomic_int trigger;
    atomic_int ntids;
    pid_t tids[SIBLINGS + 1];
};

static void fe_started(struct fe *f)
{
    f->tids[atomic_fetch_add(&f->ntids, 1)] = (pid_t)syscall(SYS_gettid);
    atomic_fetch_add(&f->started, 1);
}

static int task_sibling(ctx_t *c, void *arg)
{
    struct fe *f = arg;
    fe_started(f);
    if (ctx_wait(c, CTX_NO_DEADLINE) != 0)
        die("ctx_wait failed");
    if (ctx_err(c) != ECANCELED)
        die("sibling's context done, but not cancelled");
    atomic_fetch_add(&f->saw_done, 1);
    return 0;
}

static int task_trigger(ctx_t *c, void *arg)
{
    struct fe *f = arg;
    (void)c;
    fe_started(f);
    while (atomic_load(&f->trigger) == 0)
        futex_wait(&f->trigger, 0);
    return EIO;
}

/* Started, then the peers' 2 ms + 2 us per thread to park (Go: 3 ms). */
static void settle(atomic_int *started, int n)
{
    while (atomic_load(started) != n)
        sleep_us(100);
    sleep_us(3000 + 2 * (long)n);
}

static double firsterr_once(int verify)
{
    struct fe *f = calloc(1, sizeof *f);
    ctx_group_t *g;
    double t0, dt;
    int rc;

    if (!f)
        die("out of memory");
    if (ctx_group_new(ctx_background(), &g) != 0)
        die("ctx_group_new failed");
    for (int k = 0; k < SIBLINGS; k++)
        if (ctx_group_go(g, task_sibling, f) != 0)
            die("ctx_group_go failed");
    if (ctx_group_go(g, task_trigger, f) != 0)
        die("ctx_group_go failed");
    settle(&f->started, SIBLINGS + 1);
    for (int i = 0; verify && i < SIBLINGS + 1; i++)
        if (!thread_sleeping(f->tids[i]))
            warn("a task is not parked after the settling time");

    t0 = bench_now();
    atomic_store(&f->trigger, 1);
    futex_wake(&f->trigger, 1);
    rc = ctx_group_wait(g);
    dt = bench_now() - t0;

    if (rc != EIO)
        die("ctx_group_wait did not return the first error");
    if (atomic_load(&f->saw_done) != SIBLINGS)
        die("a sibling did not see the group cancelled");
    ctx_group_free(g);
    free(f);
    return dt;
}

/*
 * The same event with raw futexes, interleaved with the libctx one: one
 * thread blocked on the trigger, then FUTEX_WAKE(INT_MAX) of SIBLINGS
 * threads blocked on one word; every thread (trigger included) counts
 * down, the last wakes the main thread. Threads park again afterwards, so
 * thread exit is not timed (as bench_ctx's wake).
 */
struct rawfe {
    atomic_int word, trigger, started, left, done, exit;
};

static void raw_finish(struct rawfe *r)
{
    if (atomic_fetch_sub(&r->left, 1) == 1) {
        atomic_store(&r->done, 1);
        futex_wake(&r->done, 1);
    }
    while (atomic_load(&r->exit) == 0)
        futex_wait(&r->exit, 0);
}

static void *raw_sibling(void *arg)
{
    struct rawfe *r = arg;
    atomic_fetch_add(&r->started, 1);
    while (atomic_load(&r->word) == 0)
        futex_wait(&r->word, 0);
    raw_finish(r);
    return NULL;
}

static void *raw_trigger(void *arg)
{
    struct rawfe *r = arg;
    atomic_fetch_add(&r->started, 1);
    while (atomic_load(&r->trigger) == 0)
        futex_wait(&r->trigger, 0);
    atomic_store(&r->word, 1);
    futex_wake(&r->word, INT_MAX);
    raw_finish(r);
    return NULL;
}

static double firsterr_raw_once(void)
{
    struct rawfe r = {.left = SIBLINGS + 1};
    pthread_t *t = calloc(SIBLINGS + 1, sizeof *t);
    pthread_attr_t a;
    double t0, dt;

    if (!t)
        die("out of memory");
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, 64 * 1024);
    for (int i = 0; i < SIBLINGS + 1; i++)
        if (pthread_create(&t[i], &a, i < SIBLINGS ? raw_sibling : raw_trigger,
                           &r) != 0)
            die("pthread_create failed");
    pthread_attr_destroy(&a);
    settle(&r.started, SIBLINGS + 1);

    t0 = bench_now();
    atomic_store(&r.trigger, 1);
    futex_wake(&r.trigger, 1);
    while (atomic_load(&r.done) == 0)
        futex_wait(&r.done, 0);
    dt = bench_now() - t0;

    atomic_store(&r.exit, 1);
    futex_wake(&r.exit, INT_MAX);
    for (int i = 0; i < SIBLINGS + 1; i++)
        pthread_join(t[i], NULL);
    free(t);
    return dt;
}

static void bench_firsterr(void)
{
    double tc[FE_REPS], tf[FE_REPS];

    firsterr_once(1); /* warm-up: grows the pool, checks the tasks park */
    firsterr_raw_once();
    for (int i = 0; i < FE_REPS; i++) {
        tc[i] = firsterr_once(0);
        tf[i] = firsterr_raw_once();
    }
    bench_result("group.first_error", bench_median(tc, FE_REPS), "ns");
    bench_result("group.first_error_futex_inline", bench_median(tf, FE_REPS),
                 "ns");
}

/* ------------------------------------------------------------ semaphore */

static void loop_sem(long n, void *arg)
{
    ctx_sem_t *s = arg;
    ctx_t *bg = ctx_background(); /* Go: context.Background() */
    for (long i = 0; i < n; i++) {
        if (ctx_sem_acquire(s, bg, 1) != 0)
            die("ctx_sem_acquire failed");
        ctx_sem_release(s, 1);
    }
}

/*
 * The check: two threads on a semaphore of 1 never overlap. It also counts
 * hand-overs (a hold by the other thread than the previous one): with few
 * of them the two threads mostly ran one after the other, and the
 * contended figure is close to the uncontended one.
 */
struct sem_check {
    ctx_sem_t *s;
    long inside;   /* plain: a data race if the semaphore did not exclude */
    long handoffs; /* likewise */
    int last;      /* likewise: the previous holder */
    atomic_int holders;
    atomic_int ids;
};

static void loop_sem_check(long n, void *arg)
{
    struct sem_check *k = arg;
    ctx_t *bg = ctx_background();
    int me = atomic_fetch_add(&k->ids, 1) + 1;
    for (long i = 0; i < n; i++) {
        if (ctx_sem_acquire(k->s, bg, 1) != 0)
            die("ctx_sem_acquire failed");
        if (atomic_fetch_add(&k->holders, 1) != 0)
            die("two holders of a semaphore of 1");
        k->inside++;
        if (k->last != me) {
            k->handoffs++;
            k->last = me;
        }
        atomic_fetch_sub(&k->holders, 1);
        ctx_sem_release(k->s, 1);
    }
}

static void bench_sem(void)
{
    enum { CHECK_N = 1000000 };
    struct sem_check k = {.inside = 0};
    ctx_sem_t *one, *big;

    if (ctx_sem_new(1, &one) != 0 || ctx_sem_new(1 << 20, &big) != 0)
        die("ctx_sem_new failed");
    k.s = one;
    bench_run_parallel(loop_sem_check, &k, CHECK_N);
    if (k.inside != (long)CHECK_N * BENCH_THREADS)
        die("semaphore let a hold be lost");
    bench_result("sem.contended.holds_per_handoff",
                 (double)k.inside / (double)(k.handoffs ? k.handoffs : 1),
                 "holds");
    if (ctx_sem_try_acquire(one, 1))
        ctx_sem_release(one, 1);
    else
        die("semaphore not free after the check");

    bench_result("sem.uncontended", bench_per_op(loop_sem, one), "ns/op");
    bench_result("sem.contended.parallel", bench_per_op_parallel(loop_sem, one),
                 "ns/op");
    bench_result("sem.nowait.parallel", bench_per_op_parallel(loop_sem, big),
                 "ns/op");
    /* Every unit is back: all of the big one can be taken at once. */
    if (!ctx_sem_try_acquire(one, 1) || !ctx_sem_try_acquire(big, 1 << 20))
        die("semaphore units lost");
    ctx_sem_release(one, 1);
    ctx_sem_release(big, 1 << 20);
    ctx_sem_free(one);
    ctx_sem_free(big);
}

/* ------------------------------------------------------------ rate */

struct rate_arg {
    ctx_limiter_t *l;
    ctx_t *c;
};

static void loop_allow(long n, void *arg)
{
    struct rate_arg *r = arg;
    long refused = 0;
    for (long i = 0; i < n; i++)
        refused += !ctx_limiter_allow(r->l);
    if (refused)
        die("ctx_limiter_allow refused with a token available");
}

static void loop_wait(long n, void *arg)
{
    struct rate_arg *r = arg;
    for (long i = 0; i < n; i++)
        if (ctx_limiter_wait(r->l, r->c, 1) != 0)
            die("ctx_limiter_wait failed");
}

static void bench_rate(void)
{
    /* peers_test.go's newFullLimiter: a token is always there, but the
     * rate is finite, so the whole arithmetic and a clock read run. */
    struct rate_arg r;

    if (ctx_limiter_new(1e10, (int64_t)1 << 30, &r.l) != 0)
        die("ctx_limiter_new failed");
    r.c = child_of(ctx_background()); /* live, cancellable */
    bench_result("rate.allow", bench_per_op(loop_allow, &r), "ns/op");
    bench_result("rate.wait", bench_per_op(loop_wait, &r), "ns/op");
    if (ctx_done(r.c))
        die("context changed");
    ctx_cancel(r.c);
    ctx_release(r.c);
    ctx_limiter_free(r.l);
}

/* ------------------------------------------------------------ channels */

/*
 * One producer thread sends 0, 1, ..., n-1 (int64_t, as Go's chan int);
 * the calling thread receives them and checks the order. With two
 * channels (select), even numbers go to `a`, odd ones to `b`. All
 * operations take a live cancellable context. Timed: the whole transfer,
 * thread start and join included (Go: the goroutine's start).
 */
struct chan_run {
    ctx_chan_t *a, *b;
    ctx_t *c;
    long n;
};

static void *chan_producer(void *arg)
{
    struct chan_run *r = arg;
    for (long i = 0; i < r->n; i++) {
        int64_t v = i;
        ctx_chan_t *ch = r->b && (i & 1) ? r->b : r->a;
        if (ctx_chan_send(ch, r->c, &v) != 0)
            die("ctx_chan_send failed");
    }
    return NULL;
}

static void loop_chan(long n, void *arg)
{
    struct chan_run *r = arg;
    pthread_t t;

    r->n = n;
    if (pthread_create(&t, NULL, chan_producer, r) != 0)
        die("pthread_create failed");
    for (long i = 0; i < n; i++) {
        int64_t v;
        if (ctx_chan_recv(r->a, r->c, &v) != 0)
            die("ctx_chan_recv failed");
        if (v != i)
            die("channel delivered out of order");
    }
    pthread_join(t, NULL);
}

static void loop_select(long n, void *arg)
{
    struct chan_run *r = arg;
    int64_t va = -1, vb = -1, next[2] = {0, 1};
    ctx_chan_op_t ops[2] = {{r->a, CTX_CHAN_RECV, &va},
                            {r->b, CTX_CHAN_RECV, &vb}};
    pthread_t t;

    r->n = n;
    if (pthread_create(&t, NULL, chan_producer, r) != 0)
        die("pthread_create failed");
    for (long i = 0; i < n; i++) {
        size_t k;
        if (ctx_chan_select(r->c, ops, 2, &k) != 0)
            die("ctx_chan_select failed");
        if (k > 1 || (k == 0 ? va : vb) != next[k])
            die("select delivered out of order");
        next[k] += 2;
    }
    pthread_join(t, NULL);
}

static void chan_series(const char *name, bench_loop_fn body, size_t cap,
                        int two)
{
    struct chan_run r = {.c = child_of(ctx_background())};

    if (ctx_chan_new(cap, sizeof(int64_t), &r.a) != 0 ||
        (two && ctx_chan_new(cap, sizeof(int64_t), &r.b) != 0))
        die("ctx_chan_new failed");
    body(100000, &r); /* the check: the loops verify every element */
    bench_result(name, bench_per_op(body, &r), "ns/elem");
    if (ctx_chan_len(r.a) != 0 || (r.b && ctx_chan_len(r.b) != 0))
        die("elements left in a channel");
    ctx_chan_free(r.a);
    ctx_chan_free(r.b);
    ctx_cancel(r.c);
    ctx_release(r.c);
}

static void bench_chan(void)
{
    chan_series("chan.buffered.cap=128", loop_chan, 128, 0);
    chan_series("chan.rendezvous", loop_chan, 0, 0);
    chan_series("chan.select2.cap=128", loop_select, 128, 1);
}

/* ------------------------------------------------------------ others */

/*
 * How much of the machine others took while we ran: CPU time the whole
 * machine spent busy (including time stolen by the hypervisor), minus
 * this process's own, as a share of wall time x CPUs. On 2 CPUs, a
 * two-thread row is only meaningful if this stays near 0.
 */
struct load_mark {
    double wall, busy, self; /* seconds */
};

static double machine_busy(void)
{
    unsigned long long v[10] = {0};
    double hz = (double)sysconf(_SC_CLK_TCK);
    FILE *f = fopen("/proc/stat", "r");

    if (!f)
        return 0;
    if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1],
               &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) != 8)
        v[0] = v[1] = v[2] = v[5] = v[6] = v[7] = 0;
    fclose(f);
    /* user nice system [idle iowait] irq softirq steal */
    return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / hz;
}

static void load_mark(struct load_mark *m)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    m->wall = bench_now() / 1e9;
    m->busy = machine_busy();
    m->self = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
              (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* Others' share since m0, as "others_cpu_share[.what]". */
static void others_result(const struct load_mark *m0, const char *what)
{
    struct load_mark m1;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    double other, cap;
    char name[64];

    load_mark(&m1);
    other = (m1.busy - m0->busy) - (m1.self - m0->self);
    cap = (m1.wall - m0->wall) * (double)(ncpu > 0 ? ncpu : 1);
    snprintf(name, sizeof name, "others_cpu_share%s%s", what ? "." : "",
             what ? what : "");
    bench_result(name, other > 0 && cap > 0 ? other / cap : 0, "share");
}

/* ------------------------------------------------------------ main */

static const struct bench_section sections[] = {
    {"group", bench_group}, {"sem", bench_sem},           {"rate", bench_rate},
    {"chan", bench_chan},   {"firsterr", bench_firsterr},
};

int main(int argc, char **argv)
{
    size_t ns = sizeof sections / sizeof sections[0];
    struct load_mark m0, ms;

    if (bench_check_args(argc, argv, sections, ns))
        return 2;
    load_mark(&m0);
    for (size_t k = 0; k < ns; k++) {
        if (!bench_wanted(argc, argv, sections[k].name))
            continue;
        load_mark(&ms);
        sections[k].run();
        others_result(&ms, sections[k].name);
    }
    others_result(&m0, NULL);
    if (ctx_leak_check(CTX_SECOND) != 0)
        die("contexts or tasks leaked");
    return 0;
}
