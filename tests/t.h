/* SPDX-License-Identifier: MIT */
/*
 * The libctx test harness: named cases, assertions that print both values
 * and error names, --list and name filters, a per-case watchdog, and an
 * exit-time check that no context, task, timer, descriptor or thread
 * outlived the tests.
 *
 * A test program is one .c file that includes this header (which provides
 * main) and defines cases:
 *
 *     T_CASE(cancel_sets_err) {
 *         ctx_t *c;
 *         T_OK(ctx_with_cancel(ctx_background(), &c));
 *         ctx_cancel(c);
 *         T_ERR(ctx_err(c), ECANCELED);
 *         ctx_release(c);
 *     }
 *
 * T_* assertions end the case on failure (they `return`); in a thread of
 * the test use T_EXPECT, which records the failure and goes on.
 * Environment: CTX_TEST_SCALE (a factor for iteration counts, lowered
 * under sanitizers), CTX_TEST_SANITIZER (address, thread or empty),
 * CTX_TEST_CASE_TIMEOUT (seconds, default 120).
 */
#ifndef CTX_TEST_T_H
#define CTX_TEST_T_H

#define _GNU_SOURCE
#include <ctx/ctx.h>

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

typedef void (*t_fn)(void);

#define T_MAX_CASES 256

static struct {
    const char *name;
    t_fn fn;
} t__cases[T_MAX_CASES];
static int t__ncases;
static atomic_int t__failures; /* in the current case */
static const char *volatile t__current;
static atomic_llong t__case_start_ns;

static void t__register(const char *name, t_fn fn)
{
    if (t__ncases == T_MAX_CASES) {
        fprintf(stderr, "t.h: too many cases\n");
        abort();
    }
    t__cases[t__ncases].name = name;
    t__cases[t__ncases].fn = fn;
    t__ncases++;
}

#define T_CASE(name)                                                           \
    static void t_case_##name(void);                                           \
    __attribute__((constructor)) static void t_reg_##name(void)                \
    {                                                                          \
        t__register(#name, t_case_##name);                                     \
    }                                                                          \
    static void t_case_##name(void)

__attribute__((format(printf, 3, 4))) static void
t__fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    flockfile(stderr);
    fprintf(stderr, "  %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    funlockfile(stderr);
    atomic_fetch_add(&t__failures, 1);
}

#define T__CMP(a, op, b, ret)                                                  \
    do {                                                                       \
        long long t_a_ = (long long)(a), t_b_ = (long long)(b);                \
        if (!(t_a_ op t_b_)) {                                                 \
            t__fail(__FILE__, __LINE__, "%s %s %s: %lld vs %lld", #a, #op, #b, \
                    t_a_, t_b_);                                               \
            ret;                                                               \
        }                                                                      \
    } while (0)

#define T_EQ(a, b) T__CMP(a, ==, b, return )
#define T_NE(a, b) T__CMP(a, !=, b, return )
#define T_LT(a, b) T__CMP(a, <, b, return )
#define T_LE(a, b) T__CMP(a, <=, b, return )
#define T_GT(a, b) T__CMP(a, >, b, return )
#define T_GE(a, b) T__CMP(a, >=, b, return )
#define T_TRUE(x)  T__CMP(!!(x), ==, 1, return )
#define T_FALSE(x) T__CMP(!!(x), ==, 0, return )

#define T__ERRCMP(rc, code, ret)                                               \
    do {                                                                       \
        int t_rc_ = (rc), t_code_ = (code);                                    \
        if (t_rc_ != t_code_) {                                                \
            t__fail(__FILE__, __LINE__, "%s: got %s (%d), want %s (%d)", #rc,  \
                    ctx_errname(t_rc_), t_rc_, ctx_errname(t_code_), t_code_); \
            ret;                                                               \
        }                                                                      \
    } while (0)

#define T_OK(rc)        T__ERRCMP(rc, 0, return )
#define T_ERR(rc, code) T__ERRCMP(rc, code, return )

#define T_NULL(p)    T__CMP((p) == NULL, ==, 1, return )
#define T_NOTNULL(p) T__CMP((p) != NULL, ==, 1, return )

#define T_STREQ(a, b)                                                          \
    do {                                                                       \
        const char *t_sa_ = (a), *t_sb_ = (b);                                 \
        if (!t_sa_ || !t_sb_ || strcmp(t_sa_, t_sb_) != 0) {                   \
            t__fail(__FILE__, __LINE__, "%s == %s: \"%s\" vs \"%s\"", #a, #b,  \
                    t_sa_ ? t_sa_ : "(null)", t_sb_ ? t_sb_ : "(null)");       \
            return;                                                            \
        }                                                                      \
    } while (0)

/* For threads of a test: record the failure, do not return. */
#define T_EXPECT(x)            T__CMP(!!(x), ==, 1, (void)0)
#define T_EXPECT_EQ(a, b)      T__CMP(a, ==, b, (void)0)
#define T_EXPECT_ERR(rc, code) T__ERRCMP(rc, code, (void)0)

/* ------------------------------------------------------------ helpers */

/* T_TSAN: built with ThreadSanitizer (which cannot follow fork()). */
#if defined(__SANITIZE_THREAD__)
#define T_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define T_TSAN 1
#endif
#endif

static inline long long t_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline void t_sleep_ns(long long ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000LL),
                          (long)(ns % 1000000000LL)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* True once the current case has recorded a failure (to stop loops). */
static inline int t_failed(void)
{
    return atomic_load(&t__failures) != 0;
}

/*
 * The allocation-failure sweep of one constructor (RELIABILITY G4):
 * step(k, n, persistent, &ok) makes the call with its n-th allocation
 * failing, once or from then on, checks what it must, and sets ok when the
 * call succeeded (n was past its last allocation). Returns the number of
 * allocation sites, found the same both ways, or -1 after a failure.
 */
typedef void (*t_sweep_fn)(const void *k, long n, int persistent, int *ok);

static inline long t_sweep_sites(const char *name, t_sweep_fn step,
                                 const void *k)
{
    long sites[2] = {-1, -1};
    for (int persistent = 0; persistent < 2; persistent++) {
        for (long n = 1; n <= 32; n++) {
            int ok = 0;
            step(k, n, persistent, &ok);
            if (t_failed()) {
                printf("  failed: %s, allocation %ld, %s\n", name, n,
                       persistent ? "persistent" : "once");
                return -1;
            }
            if (ok) {
                sites[persistent] = n - 1;
                break;
            }
        }
    }
    T_EXPECT_EQ(sites[0], sites[1]);
    if (t_failed())
        return -1;
    printf("  %-44s %ld allocation site(s)\n", name, sites[0]);
    return sites[0];
}

/* The sanitizer of this build: "address", "thread" or "" (none). */
static inline const char *t_sanitizer(void)
{
    const char *s = getenv("CTX_TEST_SANITIZER");
    return s ? s : "";
}

/* Iteration count n scaled by CTX_TEST_SCALE (at least 1). */
static inline long t_scale(long n)
{
    const char *s = getenv("CTX_TEST_SCALE");
    double f = s ? atof(s) : 1.0;
    long r = (long)((double)n * (f > 0 ? f : 1.0));
    return r > 0 ? r : 1;
}

/* A small deterministic PRNG for tests (xorshift64*). */
static inline uint64_t t_rand(uint64_t *s)
{
    uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ULL;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static inline int t_count_dir(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    int n = 0;
    if (!d)
        return -1;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* Open descriptors of this process (the directory's own not counted). */
static inline int t_fd_count(void)
{
    return t_count_dir("/proc/self/fd") - 1;
}

static inline int t_thread_count(void)
{
    return t_count_dir("/proc/self/task");
}

static inline int64_t t_live_contexts(void)
{
    ctx_stats_t st;
    ctx_stats(&st);
    return st.contexts;
}

/* ------------------------------------------------------------ main */

static int t__fd_baseline, t__thread_baseline;

/* Call after a test deliberately keeps descriptors (ctx_fd of a static). */
static inline void t_fd_baseline_add(int n)
{
    t__fd_baseline += n;
}

static void *t__watchdog(void *arg)
{
    long limit = (long)(intptr_t)arg;
    for (;;) {
        long long start = atomic_load(&t__case_start_ns);
        t_sleep_ns(200000000LL);
        if (start && atomic_load(&t__case_start_ns) == start &&
            t_now_ns() - start > (long long)limit * 1000000000LL) {
            fprintf(stderr, "t.h: case %s still running after %ld s\n",
                    t__current ? t__current : "?", limit);
            abort();
        }
    }
    return NULL;
}

/* CTX_TEST_STORM=restart|intr: a SIGALRM every millisecond for the whole
 * run, its handler installed with or without SA_RESTART (RELIABILITY:
 * EINTR). Every test must pass under it exactly as without. */
static atomic_long t__storm_hits;

static void t__storm_handler(int sig)
{
    (void)sig;
    atomic_fetch_add_explicit(&t__storm_hits, 1, memory_order_relaxed);
}

static int t__storm(int on)
{
    const char *s = getenv("CTX_TEST_STORM");
    struct itimerval it = {{0, 1000}, {0, 1000}};
    struct sigaction sa;

    if (!s || !*s)
        return 0;
    if (!on) {
        memset(&it, 0, sizeof it);
        setitimer(ITIMER_REAL, &it, NULL);
        return 1;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = t__storm_handler;
    sa.sa_flags = strcmp(s, "restart") == 0 ? SA_RESTART : 0;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGALRM, &sa, NULL) != 0 ||
        setitimer(ITIMER_REAL, &it, NULL) != 0) {
        perror("t.h: storm");
        exit(2);
    }
    printf("storm: SIGALRM every 1 ms, handler %s SA_RESTART\n",
           sa.sa_flags ? "with" : "without");
    return 1;
}

static int t__selected(const char *name, int argc, char **argv)
{
    int any = 0;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-')
            continue;
        any = 1;
        if (strstr(name, argv[i]))
            return 1;
    }
    return !any;
}

int main(int argc, char **argv)
{
    int passed = 0, failed = 0, leaks = 0;
    const char *tl = getenv("CTX_TEST_CASE_TIMEOUT");
    long limit = tl ? atol(tl) : 120;
    pthread_t wd;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--list") == 0) {
            for (int k = 0; k < t__ncases; k++)
                printf("%s\n", t__cases[k].name);
            return 0;
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    pthread_create(&wd, NULL, t__watchdog, (void *)(intptr_t)limit);
    pthread_detach(wd);
    {
        /* Descriptors libctx already holds (a constructor may have made
         * some) are counted apart, in st.fds, at exit. */
        ctx_stats_t st0;
        ctx_stats(&st0);
        t__fd_baseline = t_fd_count() - (int)st0.fds;
    }
    t__thread_baseline = t_thread_count();
    t__storm(1);

    for (int k = 0; k < t__ncases; k++) {
        long long t0;
        if (!t__selected(t__cases[k].name, argc, argv))
            continue;
        atomic_store(&t__failures, 0);
        t__current = t__cases[k].name;
        t0 = t_now_ns();
        atomic_store(&t__case_start_ns, t0);
        t__cases[k].fn();
        atomic_store(&t__case_start_ns, 0);
        if (atomic_load(&t__failures)) {
            printf("FAIL %s\n", t__cases[k].name);
            failed++;
        } else {
            printf("ok   %s (%.1f ms)\n", t__cases[k].name,
                   (double)(t_now_ns() - t0) / 1e6);
            passed++;
        }
    }

    if (t__storm(0)) {
        /* A storm that never hit proves nothing. */
        long hits = atomic_load(&t__storm_hits);
        printf("storm: %ld signals handled\n", hits);
        if (hits == 0 && passed + failed > 0)
            failed++;
    }

    /* Nothing may outlive the tests. */
    if (ctx_leak_check(500 * CTX_MILLISECOND) != 0)
        leaks++;
    {
        ctx_stats_t st;
        int fds = t_fd_count(), threads;
        ctx_stats(&st);
        /* libctx may keep some for itself (a thread's wake-up eventfd). */
        if (fds != t__fd_baseline + st.fds) {
            fprintf(stderr,
                    "t.h: %d descriptors open at exit, %d before + %lld "
                    "libctx's own\n",
                    fds, t__fd_baseline, (long long)st.fds);
            leaks++;
        }
        /* Internal threads may retire lazily: allow them a moment. */
        for (int i = 0; i < 50; i++) {
            ctx_stats(&st);
            threads = t_thread_count();
            if (threads <= t__thread_baseline + st.internal_threads)
                break;
            t_sleep_ns(10000000LL);
        }
        if (threads > t__thread_baseline + st.internal_threads) {
            fprintf(
                stderr, "t.h: %d threads at exit, %d before + %lld internal\n",
                threads, t__thread_baseline, (long long)st.internal_threads);
            leaks++;
        }
    }
    printf("%d passed, %d failed%s\n", passed, failed,
           leaks ? ", leaks found" : "");
    return failed || leaks ? 1 : 0;
}

#endif /* CTX_TEST_T_H */
