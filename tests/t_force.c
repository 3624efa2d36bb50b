/* SPDX-License-Identifier: MIT */
/*
 * Forced cancellation (SPEC §3): a thread blocked in a read(2) it does not
 * know about a context is interrupted when the context ends, repeatedly,
 * and never after its region; a function run in isolation is killed when
 * the context ends, and its crashes are reported, not suffered. Both end
 * the same genuinely blocking call.
 */
#include "t.h"

#include <ctx/force.h>

#include <sched.h>
#include <signal.h>
#include <sys/wait.h>

/* The helper process of ctx_isolate, made while the program has one
 * thread, as ctx_isolate_init's documentation asks. */
__attribute__((constructor)) static void make_helper(void)
{
    if (ctx_isolate_init() != 0)
        abort();
}

/* ------------------------------------------------------------ interrupt */

struct blocked {
    ctx_t *c;
    int fd;
    int rc;    /* of the region */
    ssize_t r; /* of read */
    int err;
    long long returned_ns;
};

/* Third-party code: a plain blocking read that knows nothing of c. */
static void *read_in_region(void *p)
{
    struct blocked *b = p;
    ctx_interrupt_t *r;
    char buf[8];
    sigset_t alrm;
    /* Only the interrupt may end this read, not a test-suite storm. */
    sigemptyset(&alrm);
    sigaddset(&alrm, SIGALRM);
    pthread_sigmask(SIG_BLOCK, &alrm, NULL);
    b->rc = ctx_interrupt_begin(b->c, &r);
    if (b->rc != 0)
        return NULL;
    b->r = read(b->fd, buf, sizeof buf);
    b->err = errno;
    b->returned_ns = t_now_ns();
    ctx_interrupt_end(r);
    return NULL;
}

T_CASE(interrupt_ends_a_blocking_read)
{
    int p[2];
    ctx_t *c;
    pthread_t t;
    struct blocked b;
    long long t0;
    ctx_stats_t st;
    T_OK(pipe(p));
    T_OK(ctx_with_cancel(ctx_background(), &c));
    b = (struct blocked){c, p[0], -1, 0, 0, 0};
    T_OK(pthread_create(&t, NULL, read_in_region, &b));
    t_sleep_ns(30000000LL);
    T_EQ(b.returned_ns, 0); /* blocked */
    t0 = t_now_ns();
    ctx_cancel(c);
    pthread_join(t, NULL);
    T_OK(b.rc);
    T_EQ(b.r, -1);
    T_ERR(b.err, EINTR);
    /* Promptly: without the interrupt the read never returns. The bound
     * leaves room for the scheduling of a 2-CPU machine running other
     * tests beside this one (12 ms was seen once with 10). */
    T_LT(b.returned_ns - t0, 50LL * 1000000LL);
    ctx_stats(&st);
    T_GT(st.interrupts, 0);
    ctx_release(c);
    close(p[0]);
    close(p[1]);
}

/* The cancel lands before the thread enters read: the repeats catch it. */
T_CASE(interrupt_catches_a_late_entry)
{
    int p[2];
    ctx_t *c;
    pthread_t t;
    struct blocked b;
    T_OK(pipe(p));
    T_OK(ctx_with_cancel(ctx_background(), &c));
    ctx_cancel(c); /* before the region even opens */
    b = (struct blocked){c, p[0], -1, 0, 0, 0};
    T_OK(pthread_create(&t, NULL, read_in_region, &b));
    pthread_join(t, NULL);
    T_OK(b.rc);
    T_EQ(b.r, -1);
    T_ERR(b.err, EINTR);
    ctx_release(c);
    close(p[0]);
    close(p[1]);
}

struct racer {
    ctx_t *volatile c;
    atomic_int go;
    atomic_int stop;
};

static void *cancel_soon(void *p)
{
    struct racer *r = p;
    uint64_t seed = 42;
    while (!atomic_load(&r->stop)) {
        ctx_t *c;
        while (!atomic_load(&r->go) && !atomic_load(&r->stop))
            sched_yield(); /* a core of its own is not promised */
        if (!atomic_load(&r->go))
            break; /* stopped */
        c = r->c;
        atomic_store(&r->go, 0);
        if (!c)
            continue;
        for (volatile uint64_t i = t_rand(&seed) % 2000; i > 0; i--)
            ;
        ctx_cancel(c);
        ctx_release(c);
    }
    return NULL;
}

/* RELIABILITY #5: regions opened and closed racing cancellation; no
 * signal may reach the thread once its region is closed. */
T_CASE(no_signal_after_the_region)
{
    long n = t_scale(100000), stray = 0;
    pthread_t t;
    struct racer r = {NULL, 0, 0};
    ctx_stats_t s0, s1;
    ctx_stats(&s0);
    T_OK(pthread_create(&t, NULL, cancel_soon, &r));
    for (long i = 0; i < n; i++) {
        ctx_t *c;
        ctx_interrupt_t *reg;
        sigset_t pend;
        T_OK(ctx_with_cancel(ctx_background(), &c));
        r.c = ctx_retain(c);
        atomic_store(&r.go, 1);
        T_OK(ctx_interrupt_begin(c, &reg));
        for (volatile int k = 0; k < 500; k++)
            ;
        if (i % 16 == 0) /* now and then, surely inside: signals fly */
            while (!ctx_done(c))
                sched_yield();
        ctx_interrupt_end(reg);
        sigpending(&pend);
        if (sigismember(&pend, SIGURG))
            stray++;
        if (i % 1000 == 0) { /* now and then, a blocking call after */
            struct timespec ts = {0, 200000};
            sigset_t alrm, old;
            sigemptyset(&alrm); /* only SIGURG counts, not a storm's */
            sigaddset(&alrm, SIGALRM);
            pthread_sigmask(SIG_BLOCK, &alrm, &old);
            if (nanosleep(&ts, NULL) != 0 && errno == EINTR)
                stray++;
            pthread_sigmask(SIG_SETMASK, &old, NULL);
        }
        while (atomic_load(&r.go))
            sched_yield();
        ctx_release(c);
    }
    atomic_store(&r.stop, 1);
    pthread_join(t, NULL);
    T_EQ(stray, 0);
    /* Cancels landed inside regions: every 16th surely, others by chance. */
    ctx_stats(&s1);
    printf("     %ld signals sent in %ld regions\n",
           (long)(s1.interrupts - s0.interrupts), n);
    T_GE(s1.interrupts - s0.interrupts, (n + 15) / 16);
}

T_CASE(interrupt_bad_input)
{
    ctx_interrupt_t *r = (ctx_interrupt_t *)&r;
    T_ERR(ctx_interrupt_begin(NULL, &r), EINVAL);
    T_NULL(r);
    T_ERR(ctx_interrupt_begin(ctx_background(), NULL), EINVAL);
    T_ERR(ctx_interrupt_set_signal(SIGKILL), EINVAL);
    T_ERR(ctx_interrupt_set_signal(0), EINVAL);
    T_ERR(ctx_interrupt_set_signal(SIGUSR2), EBUSY); /* regions were used */
    ctx_interrupt_end(NULL);
    /* A context that is never done: a region that costs nothing. */
    T_OK(ctx_interrupt_begin(ctx_background(), &r));
    ctx_interrupt_end(r);
}

/* ------------------------------------------------------------ isolate */

static int upper(const void *in, size_t in_len, void *out, size_t cap,
                 size_t *out_len)
{
    const char *s = in;
    char *d = out;
    size_t n = in_len < cap ? in_len : cap;
    for (size_t i = 0; i < n; i++)
        d[i] = (char)(s[i] >= 'a' && s[i] <= 'z' ? s[i] - 32 : s[i]);
    *out_len = n;
    return 42;
}

static int segfault(const void *in, size_t in_len, void *out, size_t cap,
                    size_t *out_len)
{
    (void)in;
    (void)in_len;
    (void)out;
    (void)cap;
    (void)out_len;
    raise(SIGSEGV); /* what a bad pointer does, without the warning */
    return 0;
}

static int aborts(const void *in, size_t in_len, void *out, size_t cap,
                  size_t *out_len)
{
    (void)in;
    (void)in_len;
    (void)out;
    (void)cap;
    (void)out_len;
    abort();
}

static int exits(const void *in, size_t in_len, void *out, size_t cap,
                 size_t *out_len)
{
    (void)in;
    (void)in_len;
    (void)out;
    (void)cap;
    (void)out_len;
    _exit(9);
}

/* Third-party code stuck for good: a read nobody will ever satisfy. */
static int stuck(const void *in, size_t in_len, void *out, size_t cap,
                 size_t *out_len)
{
    int p[2];
    char b;
    (void)in;
    (void)in_len;
    (void)out;
    (void)cap;
    (void)out_len;
    if (pipe(p) == 0)
        while (read(p[0], &b, 1) != 0)
            ;
    return 0;
}

T_CASE(isolate_returns_value_and_output)
{
    ctx_isolate_result_t res;
    char out[16] = {0};
    T_OK(ctx_isolate(ctx_background(), upper, "hello", 5, out, sizeof out,
                     &res));
    T_EQ(res.value, 42);
    T_EQ(res.out_len, 5);
    T_STREQ(out, "HELLO");
    T_EQ(res.signal, 0);
    /* Output bigger than the room: cut at out_cap. */
    memset(out, 0, sizeof out);
    T_OK(ctx_isolate(ctx_background(), upper, "abcdef", 6, out, 3, &res));
    T_EQ(res.out_len, 3);
    T_STREQ(out, "ABC");
}

T_CASE(isolate_reports_crashes)
{
    ctx_isolate_result_t res;
    char out[4];
    T_ERR(
        ctx_isolate(ctx_background(), segfault, NULL, 0, out, sizeof out, &res),
        ECHILD);
    if (t_sanitizer()[0]) /* its runtime catches SIGSEGV, reports, ends */
        T_TRUE(res.signal != 0 || res.exit_code != 0);
    else
        T_EQ(res.signal, SIGSEGV);
    T_ERR(ctx_isolate(ctx_background(), aborts, NULL, 0, NULL, 0, &res),
          ECHILD);
    T_EQ(res.signal, SIGABRT);
    T_ERR(ctx_isolate(ctx_background(), exits, NULL, 0, NULL, 0, &res), ECHILD);
    T_EQ(res.signal, 0);
    T_EQ(res.exit_code, 9);
    /* And the caller is fine: the next call works. */
    T_OK(ctx_isolate(ctx_background(), upper, "x", 1, out, sizeof out, &res));
    T_EQ(res.value, 42);
}

T_CASE(isolate_killed_on_cancel)
{
    ctx_isolate_result_t res;
    ctx_t *c;
    long long t0 = t_now_ns();
    T_OK(ctx_with_timeout(ctx_background(), 50 * CTX_MILLISECOND, &c));
    T_ERR(ctx_isolate(c, stuck, NULL, 0, NULL, 0, &res), ETIMEDOUT);
    T_LT(t_now_ns() - t0, 2000LL * 1000000LL);
    ctx_release(c);
    T_ERR(ctx_isolate(c = ctx_background(), NULL, NULL, 0, NULL, 0, &res),
          EINVAL);
    T_ERR(ctx_isolate(c, upper, NULL, 3, NULL, 0, &res), EINVAL);
    T_ERR(ctx_isolate(c, upper, NULL, 0, NULL, 0, NULL), EINVAL);
}

struct iso_arg {
    int ok;
};

static void *many_isolated(void *p)
{
    struct iso_arg *a = p;
    for (int i = 0; i < 20; i++) {
        ctx_isolate_result_t res;
        char out[8];
        if (ctx_isolate(ctx_background(), upper, "abc", 3, out, sizeof out,
                        &res) == 0 &&
            res.value == 42 && memcmp(out, "ABC", 3) == 0)
            a->ok++;
    }
    return NULL;
}

static void *churn_malloc(void *p)
{
    atomic_int *stop = p;
    while (!atomic_load(stop)) {
        void *m = malloc(100);
        char b[64];
        snprintf(b, sizeof b, "%p", m);
        free(m);
    }
    return NULL;
}

/* RELIABILITY #7: isolated calls from several threads while others churn
 * malloc and stdio. */
T_CASE(isolate_concurrent_under_churn)
{
    enum { N = 4, C = 4 };
    pthread_t t[N], ch[C];
    struct iso_arg a[N];
    atomic_int stop = 0;
    for (int i = 0; i < C; i++)
        T_OK(pthread_create(&ch[i], NULL, churn_malloc, &stop));
    for (int i = 0; i < N; i++) {
        a[i].ok = 0;
        T_OK(pthread_create(&t[i], NULL, many_isolated, &a[i]));
    }
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        T_EQ(a[i].ok, 20);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < C; i++)
        pthread_join(ch[i], NULL);
}
