/* SPDX-License-Identifier: MIT */
/*
 * Contexts (SPEC §1): construction, cancellation, causes, deadlines on the
 * test clock, values, merge, without_cancel, waiting, the eventfd,
 * after-functions, bad input and statistics.
 */
#include "t.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>

static int readable(int fd)
{
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

/* ------------------------------------------------------------ basics */

T_CASE(background_and_todo)
{
    ctx_t *bg = ctx_background(), *todo = ctx_todo();
    ctx_time_t d = 0;
    T_NOTNULL(bg);
    T_NOTNULL(todo);
    T_TRUE(bg != todo);
    T_ERR(ctx_err(bg), 0);
    T_FALSE(ctx_done(bg));
    T_FALSE(ctx_deadline(bg, &d));
    T_EQ(d, CTX_NO_DEADLINE);
    T_NULL(ctx_value(bg, &d));
    T_ERR(ctx_cause(bg, NULL), 0);
    ctx_cancel(bg);
    ctx_cancel_cause(todo, EIO, "no");
    T_ERR(ctx_err(bg), 0);
    T_ERR(ctx_err(todo), 0);
    T_TRUE(ctx_retain(bg) == bg);
    ctx_release(bg);
    ctx_release(bg);
    ctx_release(todo);
    T_ERR(ctx_err(bg), 0);
    T_ERR(ctx_wait(bg, 0), ETIMEDOUT);
}

T_CASE(cancel_sets_err_and_cause)
{
    ctx_t *c;
    const char *why = "x";
    T_OK(ctx_with_cancel(ctx_background(), &c));
    T_ERR(ctx_err(c), 0);
    T_FALSE(ctx_done(c));
    T_ERR(ctx_cause(c, &why), 0);
    T_NULL(why);
    ctx_cancel(c);
    T_ERR(ctx_err(c), ECANCELED);
    T_TRUE(ctx_done(c));
    T_ERR(ctx_cause(c, &why), ECANCELED);
    T_NULL(why);
    ctx_release(c);
}

T_CASE(first_cause_wins)
{
    ctx_t *c;
    const char *why;
    T_OK(ctx_with_cancel(ctx_background(), &c));
    ctx_cancel_cause(c, EPIPE, "peer went away");
    ctx_cancel_cause(c, EIO, "second");
    ctx_cancel(c);
    T_ERR(ctx_err(c), ECANCELED);
    T_ERR(ctx_cause(c, &why), EPIPE);
    T_STREQ(why, "peer went away");
    ctx_release(c);
}

T_CASE(cause_code_zero_means_canceled)
{
    ctx_t *c;
    T_OK(ctx_with_cancel(ctx_background(), &c));
    ctx_cancel_cause(c, 0, NULL);
    T_ERR(ctx_cause(c, NULL), ECANCELED);
    ctx_release(c);
}

T_CASE(cause_text_is_copied)
{
    ctx_t *c;
    char buf[32];
    const char *why;
    strcpy(buf, "original");
    T_OK(ctx_with_cancel(ctx_background(), &c));
    ctx_cancel_cause(c, -1, buf);
    strcpy(buf, "changed");
    T_ERR(ctx_cause(c, &why), -1);
    T_STREQ(why, "original");
    ctx_release(c);
}

T_CASE(propagation_down_not_up)
{
    ctx_t *root, *a, *b, *a1, *a2, *a11;
    const char *why;
    T_OK(ctx_with_cancel(ctx_background(), &root));
    T_OK(ctx_with_cancel(root, &a));
    T_OK(ctx_with_cancel(root, &b));
    T_OK(ctx_with_cancel(a, &a1));
    T_OK(ctx_with_cancel(a, &a2));
    T_OK(ctx_with_cancel(a1, &a11));
    ctx_cancel_cause(a, ENOLINK, "a went down");
    T_ERR(ctx_err(root), 0);
    T_ERR(ctx_err(b), 0);
    T_ERR(ctx_err(a), ECANCELED);
    T_ERR(ctx_err(a1), ECANCELED);
    T_ERR(ctx_err(a2), ECANCELED);
    T_ERR(ctx_err(a11), ECANCELED);
    T_ERR(ctx_cause(a11, &why), ENOLINK);
    T_STREQ(why, "a went down");
    ctx_cancel(root);
    T_ERR(ctx_err(b), ECANCELED);
    T_ERR(ctx_cause(b, NULL), ECANCELED);
    T_ERR(ctx_cause(a11, NULL), ENOLINK); /* first cause kept */
    ctx_release(a11);
    ctx_release(a2);
    ctx_release(a1);
    ctx_release(b);
    ctx_release(a);
    ctx_release(root);
}

T_CASE(child_of_done_parent_is_born_done)
{
    ctx_t *p, *c, *v;
    const char *why;
    T_OK(ctx_with_cancel(ctx_background(), &p));
    ctx_cancel_cause(p, ESHUTDOWN, "closing");
    T_OK(ctx_with_cancel(p, &c));
    T_ERR(ctx_err(c), ECANCELED);
    T_ERR(ctx_cause(c, &why), ESHUTDOWN);
    T_STREQ(why, "closing");
    T_OK(ctx_with_value(p, &why, NULL, NULL, &v));
    T_ERR(ctx_err(v), ECANCELED);
    ctx_release(v);
    ctx_release(c);
    ctx_release(p);
}

T_CASE(parent_released_before_child)
{
    ctx_t *p, *c, *g;
    T_OK(ctx_with_cancel(ctx_background(), &p));
    T_OK(ctx_with_cancel(p, &c));
    T_OK(ctx_with_cancel(c, &g));
    ctx_release(p); /* c keeps p alive */
    ctx_release(c); /* g keeps c alive */
    T_ERR(ctx_err(g), 0);
    ctx_cancel(g);
    T_ERR(ctx_err(g), ECANCELED);
    ctx_release(g); /* frees g, c, p in turn */
    T_EQ(t_live_contexts(), 0);
}

T_CASE(release_unlinks_from_live_parent)
{
    ctx_t *p, *kids[100];
    for (int pass = 0; pass < 2; pass++) {
        T_OK(ctx_with_cancel(ctx_background(), &p));
        for (int i = 0; i < 100; i++)
            T_OK(ctx_with_cancel(p, &kids[i]));
        /* Release out of order: every other one, then the rest. */
        for (int i = 0; i < 100; i += 2)
            ctx_release(kids[i]);
        if (pass == 1)
            ctx_cancel(p);
        for (int i = 1; i < 100; i += 2) {
            T_ERR(ctx_err(kids[i]), pass ? ECANCELED : 0);
            ctx_release(kids[i]);
        }
        T_EQ(t_live_contexts(), 1);
        ctx_release(p);
    }
    T_EQ(t_live_contexts(), 0);
}

T_CASE(retain_release_counts)
{
    ctx_t *c;
    T_OK(ctx_with_cancel(ctx_background(), &c));
    T_TRUE(ctx_retain(c) == c);
    T_TRUE(ctx_retain(c) == c);
    ctx_release(c);
    ctx_release(c);
    T_EQ(t_live_contexts(), 1);
    ctx_release(c);
    T_EQ(t_live_contexts(), 0);
    T_NULL(ctx_retain(NULL));
    ctx_release(NULL);
}

/* ------------------------------------------------------------ bad input */

T_CASE(bad_input)
{
    ctx_t *c = (ctx_t *)&c, *parents[2] = {NULL, NULL};
    ctx_after_t *a = (ctx_after_t *)&a;
    const char *why = "x";
    ctx_time_t d = 0;

    T_ERR(ctx_with_cancel(NULL, &c), EINVAL);
    T_NULL(c);
    T_ERR(ctx_with_cancel(ctx_background(), NULL), EINVAL);
    c = (ctx_t *)&c;
    T_ERR(ctx_with_deadline(NULL, 0, &c), EINVAL);
    T_NULL(c);
    T_ERR(ctx_with_deadline(ctx_background(), 0, NULL), EINVAL);
    c = (ctx_t *)&c;
    T_ERR(ctx_with_timeout(NULL, CTX_SECOND, &c), EINVAL);
    T_NULL(c);
    T_ERR(ctx_with_deadline_cause(NULL, 0, 1, "x", &c), EINVAL);
    c = (ctx_t *)&c;
    T_ERR(ctx_with_value(ctx_background(), NULL, NULL, NULL, &c), EINVAL);
    T_NULL(c);
    T_ERR(ctx_with_value(NULL, &c, NULL, NULL, &c), EINVAL);
    T_ERR(ctx_without_cancel(NULL, &c), EINVAL);
    T_ERR(ctx_without_cancel(ctx_background(), NULL), EINVAL);
    c = (ctx_t *)&c;
    T_ERR(ctx_merge(NULL, 1, &c), EINVAL);
    T_NULL(c);
    T_ERR(ctx_merge(parents, 0, &c), EINVAL);
    T_ERR(ctx_merge(parents, 2, &c), EINVAL);
    parents[0] = ctx_background();
    T_ERR(ctx_merge(parents, 2, &c), EINVAL);
    T_ERR(ctx_merge(parents, 1, NULL), EINVAL);
    T_ERR(ctx_err(NULL), EINVAL);
    T_TRUE(ctx_done(NULL));
    T_ERR(ctx_cause(NULL, &why), EINVAL);
    T_NULL(why);
    T_FALSE(ctx_deadline(NULL, &d));
    T_EQ(d, CTX_NO_DEADLINE);
    T_NULL(ctx_value(NULL, &d));
    T_NULL(ctx_value(ctx_background(), NULL));
    T_ERR(ctx_wait(NULL, 0), EINVAL);
    errno = 0;
    T_EQ(ctx_fd(NULL), -1);
    T_ERR(errno, EINVAL);
    T_ERR(ctx_after_func(NULL, (void (*)(void *))free, NULL, &a), EINVAL);
    T_NULL(a);
    T_ERR(ctx_after_func(ctx_background(), NULL, NULL, &a), EINVAL);
    T_ERR(ctx_after_func(ctx_background(), (void (*)(void *))free, NULL, NULL),
          EINVAL);
    T_FALSE(ctx_after_stop(NULL));
    ctx_cancel(NULL);
    ctx_cancel_cause(NULL, EIO, "x");
    T_EQ(t_live_contexts(), 0);
}

T_CASE(errname)
{
    T_STREQ(ctx_errname(0), "OK");
    T_STREQ(ctx_errname(ECANCELED), "ECANCELED");
    T_STREQ(ctx_errname(ETIMEDOUT), "ETIMEDOUT");
    T_STREQ(ctx_errname(EINVAL), "EINVAL");
    T_STREQ(ctx_errname(ENOMEM), "ENOMEM");
    T_STREQ(ctx_errname(EAGAIN), "EAGAIN");
    T_STREQ(ctx_errname(-1), "EUNKNOWN");
    T_STREQ(ctx_errname(100000), "EUNKNOWN");
    T_TRUE(strlen(ctx_version()) >= 5);
}

/* ------------------------------------------------------------ deadlines */

T_CASE(timeout_fires_exactly_on_test_clock)
{
    ctx_t *c;
    ctx_time_t d, t0;
    const char *why = "x";
    T_OK(ctx_testclock_enable());
    t0 = ctx_now();
    T_OK(ctx_with_timeout(ctx_background(), 5 * CTX_SECOND, &c));
    T_TRUE(ctx_deadline(c, &d));
    T_EQ(d, t0 + 5 * CTX_SECOND);
    T_OK(ctx_testclock_advance(5 * CTX_SECOND - 1));
    T_ERR(ctx_err(c), 0);
    T_OK(ctx_testclock_advance(1));
    T_ERR(ctx_err(c), ETIMEDOUT);
    T_ERR(ctx_cause(c, &why), ETIMEDOUT);
    T_NULL(why);
    T_EQ(ctx_now(), t0 + 5 * CTX_SECOND);
    ctx_release(c);
    ctx_testclock_disable();
}

T_CASE(deadline_cause)
{
    ctx_t *c, *child;
    const char *why;
    T_OK(ctx_testclock_enable());
    T_OK(ctx_with_deadline_cause(ctx_background(), ctx_now() + CTX_SECOND,
                                 EPROTO, "slow upstream", &c));
    T_OK(ctx_with_cancel(c, &child));
    T_OK(ctx_testclock_advance(CTX_SECOND));
    T_ERR(ctx_err(c), ETIMEDOUT);
    T_ERR(ctx_cause(c, &why), EPROTO);
    T_STREQ(why, "slow upstream");
    T_ERR(ctx_err(child), ETIMEDOUT);
    T_ERR(ctx_cause(child, &why), EPROTO);
    T_STREQ(why, "slow upstream");
    ctx_release(child);
    ctx_release(c);
    ctx_testclock_disable();
}

T_CASE(deadlines_inherit)
{
    ctx_t *p, *later, *earlier, *plain, *v;
    ctx_time_t now, d;
    T_OK(ctx_testclock_enable());
    now = ctx_now();
    T_OK(ctx_with_deadline(ctx_background(), now + 10 * CTX_SECOND, &p));
    T_OK(ctx_with_deadline(p, now + 20 * CTX_SECOND, &later));
    T_OK(ctx_with_timeout(p, 3 * CTX_SECOND, &earlier));
    T_OK(ctx_with_cancel(p, &plain));
    T_OK(ctx_with_value(plain, &d, NULL, NULL, &v));
    T_TRUE(ctx_deadline(later, &d));
    T_EQ(d, now + 10 * CTX_SECOND); /* never later than the parent's */
    T_TRUE(ctx_deadline(earlier, &d));
    T_EQ(d, now + 3 * CTX_SECOND);
    T_TRUE(ctx_deadline(v, &d));
    T_EQ(d, now + 10 * CTX_SECOND);
    T_OK(ctx_testclock_advance(3 * CTX_SECOND));
    T_ERR(ctx_err(earlier), ETIMEDOUT);
    T_ERR(ctx_err(p), 0);
    T_ERR(ctx_err(later), 0);
    T_OK(ctx_testclock_advance(7 * CTX_SECOND));
    T_ERR(ctx_err(p), ETIMEDOUT);
    T_ERR(ctx_err(later), ETIMEDOUT);
    T_ERR(ctx_err(v), ETIMEDOUT);
    ctx_release(v);
    ctx_release(plain);
    ctx_release(earlier);
    ctx_release(later);
    ctx_release(p);
    ctx_testclock_disable();
}

T_CASE(timeout_not_positive_is_done_at_once)
{
    ctx_t *c, *p;
    T_OK(ctx_with_timeout(ctx_background(), 0, &c));
    T_ERR(ctx_err(c), ETIMEDOUT);
    T_ERR(ctx_cause(c, NULL), ETIMEDOUT);
    ctx_release(c);
    T_OK(ctx_with_timeout(ctx_background(), -CTX_HOUR, &c));
    T_ERR(ctx_err(c), ETIMEDOUT);
    ctx_release(c);
    T_OK(ctx_with_deadline(ctx_background(), ctx_now() - 1, &c));
    T_ERR(ctx_err(c), ETIMEDOUT);
    ctx_release(c);
    /* A done parent's cause beats an expired deadline. */
    T_OK(ctx_with_cancel(ctx_background(), &p));
    ctx_cancel_cause(p, EIO, NULL);
    T_OK(ctx_with_timeout(p, 0, &c));
    T_ERR(ctx_err(c), ECANCELED);
    T_ERR(ctx_cause(c, NULL), EIO);
    ctx_release(c);
    ctx_release(p);
}

T_CASE(timeout_overflow_saturates)
{
    ctx_t *c;
    ctx_time_t d;
    T_OK(ctx_with_timeout(ctx_background(), CTX_NO_DEADLINE, &c));
    T_FALSE(ctx_deadline(c, &d));
    T_EQ(d, CTX_NO_DEADLINE);
    T_ERR(ctx_err(c), 0);
    ctx_release(c);
    T_OK(ctx_with_timeout(ctx_background(), CTX_NO_DEADLINE - 5, &c));
    T_FALSE(ctx_deadline(c, NULL));
    ctx_release(c);
}

T_CASE(cancel_and_release_disarm_timers)
{
    ctx_t *a, *b, *c;
    ctx_stats_t st;
    T_OK(ctx_with_timeout(ctx_background(), CTX_HOUR, &a));
    T_OK(ctx_with_timeout(ctx_background(), CTX_HOUR, &b));
    T_OK(ctx_with_timeout(a, 30 * CTX_MINUTE, &c));
    ctx_stats(&st);
    T_EQ(st.timers, 3);
    ctx_cancel(a); /* disarms a and, through propagation, c */
    ctx_stats(&st);
    T_EQ(st.timers, 1);
    ctx_release(b); /* released without cancel: disarmed too */
    ctx_stats(&st);
    T_EQ(st.timers, 0);
    ctx_release(c);
    ctx_release(a);
}

T_CASE(real_timer_fires)
{
    ctx_t *c;
    long long t0 = t_now_ns();
    ctx_time_t d;
    T_OK(ctx_with_timeout(ctx_background(), 20 * CTX_MILLISECOND, &c));
    T_TRUE(ctx_deadline(c, &d));
    T_OK(ctx_wait(c, 10 * CTX_SECOND));
    T_ERR(ctx_err(c), ETIMEDOUT);
    T_GE(ctx_now(), d);                        /* never early */
    T_LT(t_now_ns() - t0, 5000LL * 1000000LL); /* generous bound */
    ctx_release(c);
}

/* The mask of the thread whose comm is `name`, from /proc; 0 if none. */
static unsigned long long sigblk_of(const char *name)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    unsigned long long mask = 0;
    while (d && (e = readdir(d)) != NULL) {
        char path[300], comm[64] = "", line[256];
        FILE *f;
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        if (!(f = fopen(path, "r")))
            continue;
        if (!fgets(comm, sizeof comm, f))
            comm[0] = 0;
        fclose(f);
        comm[strcspn(comm, "\n")] = 0;
        if (strcmp(comm, name) != 0)
            continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/status", e->d_name);
        if (!(f = fopen(path, "r")))
            continue;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "SigBlk: %llx", &mask) == 1)
                break;
        fclose(f);
    }
    if (d)
        closedir(d);
    return mask;
}

T_CASE(timer_thread_blocks_all_signals)
{
    ctx_t *c;
    unsigned long long m;
    T_OK(ctx_with_timeout(ctx_background(), CTX_HOUR, &c));
    /* The thread names itself as it starts: give it a moment. */
    for (int i = 0; i < 1000 && !(m = sigblk_of("ctx-timer")); i++)
        t_sleep_ns(1000000);
    T_NE(m, 0);
    for (int sig = 1; sig < 32; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP)
            continue;
        if (!(m & (1ULL << (sig - 1)))) {
            ctx_release(c);
            T_EQ(sig, 0); /* a signal the timer thread does not block */
        }
    }
    ctx_release(c);
}

T_CASE(many_deadlines_one_thread)
{
    enum { N = 100000 };
    ctx_t **cs = malloc(N * sizeof *cs);
    ctx_stats_t before, st;
    int threads = t_thread_count();
    T_NOTNULL(cs);
    ctx_stats(&before);
    for (int i = 0; i < N; i++)
        T_OK(ctx_with_timeout(ctx_background(),
                              CTX_HOUR + (ctx_time_t)(i % 977) * CTX_SECOND,
                              &cs[i]));
    ctx_stats(&st);
    T_EQ(st.timers, N);
    T_LE(t_thread_count(), threads + 1); /* at most the timer thread */
    T_LE(st.internal_threads, before.internal_threads + 1);
    for (int i = 0; i < N; i++) {
        if (i % 2)
            ctx_cancel(cs[i]);
        ctx_release(cs[i]);
    }
    ctx_stats(&st);
    T_EQ(st.timers, 0);
    free(cs);
}

T_CASE(test_clock_api)
{
    ctx_time_t t;
    T_FALSE(ctx_testclock_enabled());
    T_ERR(ctx_testclock_advance(1), EINVAL);
    T_ERR(ctx_testclock_set(0), EINVAL);
    T_OK(ctx_testclock_enable());
    T_ERR(ctx_testclock_enable(), EBUSY);
    T_TRUE(ctx_testclock_enabled());
    t = ctx_now();
    T_ERR(ctx_testclock_advance(-1), EINVAL);
    T_EQ(ctx_now(), t);
    T_OK(ctx_testclock_set(t + CTX_HOUR));
    T_EQ(ctx_now(), t + CTX_HOUR);
    T_ERR(ctx_testclock_set(t), EINVAL);
    ctx_testclock_disable();
    T_FALSE(ctx_testclock_enabled());
}

T_CASE(test_clock_fires_in_deadline_order)
{
    enum { N = 50 };
    ctx_t *cs[N];
    ctx_time_t t0;
    uint64_t seed = 7;
    T_OK(ctx_testclock_enable());
    t0 = ctx_now();
    for (int i = 0; i < N; i++)
        T_OK(ctx_with_deadline(ctx_background(),
                               t0 + 1 + (ctx_time_t)(t_rand(&seed) % 1000),
                               &cs[i]));
    for (ctx_time_t step = 0; step <= 1000; step++) {
        for (int i = 0; i < N; i++) {
            ctx_time_t d;
            ctx_deadline(cs[i], &d);
            T_EQ(ctx_err(cs[i]) != 0, d <= ctx_now());
        }
        T_OK(ctx_testclock_advance(1));
    }
    for (int i = 0; i < N; i++)
        ctx_release(cs[i]);
    ctx_testclock_disable();
}

struct wait_arg {
    ctx_t *c;
    ctx_time_t timeout;
    int rc;
    long long returned_ns;
};

static void *waiter(void *p)
{
    struct wait_arg *w = p;
    w->rc = ctx_wait(w->c, w->timeout);
    w->returned_ns = t_now_ns();
    return NULL;
}

T_CASE(wait_timeout_on_test_clock)
{
    ctx_t *c;
    pthread_t t;
    struct wait_arg w;
    T_OK(ctx_testclock_enable());
    T_OK(ctx_with_cancel(ctx_background(), &c));
    w.c = c;
    w.timeout = 10 * CTX_SECOND;
    w.rc = -1;
    T_OK(pthread_create(&t, NULL, waiter, &w));
    t_sleep_ns(20000000LL);
    T_OK(ctx_testclock_advance(9 * CTX_SECOND)); /* not yet */
    t_sleep_ns(20000000LL);
    T_EQ(w.rc, -1);
    T_OK(ctx_testclock_advance(CTX_SECOND));
    pthread_join(t, NULL);
    T_ERR(w.rc, ETIMEDOUT);
    T_ERR(ctx_err(c), 0);
    ctx_release(c);
    ctx_testclock_disable();
}

/* ------------------------------------------------------------ values */

static int key_a, key_b, key_c;
static atomic_int freed_values;

static void free_value(void *v)
{
    (void)v;
    atomic_fetch_add(&freed_values, 1);
}

T_CASE(values)
{
    ctx_t *a, *b, *shadow, *plain;
    atomic_store(&freed_values, 0);
    T_OK(ctx_with_value(ctx_background(), &key_a, "A", free_value, &a));
    T_OK(ctx_with_cancel(a, &plain));
    T_OK(ctx_with_value(plain, &key_b, "B", free_value, &b));
    T_OK(ctx_with_value(b, &key_a, "A2", NULL, &shadow));
    T_STREQ(ctx_value(b, &key_a), "A");
    T_STREQ(ctx_value(b, &key_b), "B");
    T_STREQ(ctx_value(shadow, &key_a), "A2");
    T_STREQ(ctx_value(shadow, &key_b), "B");
    T_NULL(ctx_value(shadow, &key_c));
    T_NULL(ctx_value(a, &key_b));
    ctx_cancel(shadow); /* a value context can be cancelled on its own */
    T_ERR(ctx_err(shadow), ECANCELED);
    T_ERR(ctx_err(b), 0);
    ctx_release(shadow);
    ctx_release(a);
    ctx_release(plain);
    T_EQ(atomic_load(&freed_values), 0);
    ctx_release(b);
    T_EQ(atomic_load(&freed_values), 2);
}

T_CASE(without_cancel)
{
    ctx_t *p, *w, *wc;
    ctx_time_t d;
    T_OK(ctx_with_value(ctx_background(), &key_a, "A", NULL, &p));
    T_OK(ctx_with_timeout(p, CTX_HOUR, &wc));
    T_OK(ctx_without_cancel(wc, &w));
    ctx_release(wc);
    T_OK(ctx_with_cancel(p, &wc));
    T_STREQ(ctx_value(w, &key_a), "A");
    T_FALSE(ctx_deadline(w, &d));
    ctx_cancel(p);
    T_ERR(ctx_err(w), 0);
    ctx_cancel(w);
    T_ERR(ctx_err(w), 0);
    ctx_release(wc);
    /* Its own children still cancel. */
    T_OK(ctx_with_cancel(w, &wc));
    T_ERR(ctx_err(wc), 0);
    ctx_cancel(wc);
    T_ERR(ctx_err(wc), ECANCELED);
    ctx_release(wc);
    ctx_release(w);
    ctx_release(p);
}

/* ------------------------------------------------------------ merge */

T_CASE(merge_done_when_any_parent_is)
{
    ctx_t *a, *b, *c, *m, *child;
    const char *why;
    ctx_t *ps[3];
    T_OK(ctx_with_cancel(ctx_background(), &a));
    T_OK(ctx_with_cancel(ctx_background(), &b));
    T_OK(ctx_with_cancel(ctx_background(), &c));
    ps[0] = a;
    ps[1] = b;
    ps[2] = c;
    T_OK(ctx_merge(ps, 3, &m));
    T_OK(ctx_with_cancel(m, &child));
    T_ERR(ctx_err(m), 0);
    ctx_cancel_cause(b, ECONNRESET, "b reset");
    T_ERR(ctx_err(m), ECANCELED);
    T_ERR(ctx_cause(m, &why), ECONNRESET);
    T_STREQ(why, "b reset");
    T_ERR(ctx_err(child), ECANCELED);
    T_ERR(ctx_cause(child, NULL), ECONNRESET);
    T_ERR(ctx_err(a), 0);
    ctx_cancel(a); /* later parents change nothing */
    T_ERR(ctx_cause(m, NULL), ECONNRESET);
    ctx_release(child);
    ctx_release(m);
    ctx_release(a);
    ctx_release(b);
    ctx_release(c);
}

T_CASE(merge_deadline_values_and_done_parents)
{
    ctx_t *a, *b, *m, *d1, *d2, *ps[3];
    ctx_time_t d, now;
    T_OK(ctx_testclock_enable());
    now = ctx_now();
    T_OK(ctx_with_value(ctx_background(), &key_a, "a", NULL, &a));
    T_OK(ctx_with_value(ctx_background(), &key_a, "b", NULL, &b));
    T_OK(ctx_with_deadline(a, now + 7 * CTX_SECOND, &d1));
    T_OK(ctx_with_deadline(b, now + 4 * CTX_SECOND, &d2));
    ps[0] = d1;
    ps[1] = d2;
    ps[2] = d2; /* duplicates are fine */
    T_OK(ctx_merge(ps, 3, &m));
    T_TRUE(ctx_deadline(m, &d));
    T_EQ(d, now + 4 * CTX_SECOND);
    T_STREQ(ctx_value(m, &key_a), "a"); /* parent order */
    T_OK(ctx_testclock_advance(4 * CTX_SECOND));
    T_ERR(ctx_err(m), ETIMEDOUT);
    ctx_release(m);
    /* Born done: the first done parent in array order decides. */
    ctx_cancel_cause(a, EBADF, NULL);
    ps[0] = ctx_background();
    ps[1] = d2; /* timed out */
    ps[2] = d1; /* cancelled through a */
    T_OK(ctx_merge(ps, 3, &m));
    T_ERR(ctx_err(m), ETIMEDOUT);
    T_ERR(ctx_cause(m, NULL), ETIMEDOUT);
    ctx_release(m);
    ps[1] = d1;
    T_OK(ctx_merge(ps, 2, &m));
    T_ERR(ctx_cause(m, NULL), EBADF);
    ctx_release(m);
    /* Only never-done parents: never done. */
    ps[0] = ctx_background();
    ps[1] = ctx_todo();
    T_OK(ctx_merge(ps, 2, &m));
    T_FALSE(ctx_deadline(m, NULL));
    ctx_cancel(m);
    T_ERR(ctx_err(m), ECANCELED); /* but it can be cancelled itself */
    ctx_release(m);
    ctx_release(d1);
    ctx_release(d2);
    ctx_release(a);
    ctx_release(b);
    ctx_testclock_disable();
}

/* ------------------------------------------------------------ waiting */

T_CASE(wait_returns_on_cancel_and_times_out)
{
    ctx_t *c;
    long long t0;
    T_OK(ctx_with_cancel(ctx_background(), &c));
    T_ERR(ctx_wait(c, 0), ETIMEDOUT);
    T_ERR(ctx_wait(c, -5), ETIMEDOUT);
    t0 = t_now_ns();
    T_ERR(ctx_wait(c, 20 * CTX_MILLISECOND), ETIMEDOUT);
    T_GE(t_now_ns() - t0, 20LL * 1000000LL);
    ctx_cancel(c);
    T_OK(ctx_wait(c, 0));
    T_OK(ctx_wait(c, CTX_NO_DEADLINE));
    ctx_release(c);
}

T_CASE(wait_64_waiters_within_100ms)
{
    enum { N = 64 };
    pthread_t t[N];
    struct wait_arg w[N];
    ctx_t *c;
    long long t_cancel, worst = 0;
    T_OK(ctx_with_cancel(ctx_background(), &c));
    for (int i = 0; i < N; i++) {
        w[i].c = c;
        w[i].timeout = CTX_NO_DEADLINE;
        w[i].rc = -1;
        T_OK(pthread_create(&t[i], NULL, waiter, &w[i]));
    }
    t_sleep_ns(50000000LL);
    for (int i = 0; i < N; i++)
        T_EQ(w[i].rc, -1);
    t_cancel = t_now_ns();
    ctx_cancel(c);
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        T_EXPECT_ERR(w[i].rc, 0);
        if (w[i].returned_ns - t_cancel > worst)
            worst = w[i].returned_ns - t_cancel;
    }
    ctx_release(c);
    T_LT(worst, 100LL * 1000000LL);
}

T_CASE(fd_readable_once_done)
{
    ctx_t *c, *child;
    int fd, fd2, cfd, before = t_fd_count();
    T_OK(ctx_with_cancel(ctx_background(), &c));
    T_OK(ctx_with_cancel(c, &child));
    fd = ctx_fd(c);
    T_GE(fd, 0);
    fd2 = ctx_fd(c);
    T_EQ(fd, fd2);
    cfd = ctx_fd(child);
    T_GE(cfd, 0);
    T_FALSE(readable(fd));
    T_FALSE(readable(cfd));
    ctx_cancel_cause(c, EIO, "io");
    T_TRUE(readable(fd));
    T_TRUE(readable(cfd));
    {
        uint64_t v;
        T_EQ(read(fd, &v, sizeof v), 8); /* a stray read does not drain */
    }
    T_TRUE(readable(fd));
    T_ERR(ctx_cause(child, NULL), EIO);
    {
        const char *why;
        T_ERR(ctx_cause(c, &why), EIO);
        T_STREQ(why, "io");
    }
    T_EQ(t_fd_count(), before + 2);
    ctx_release(child);
    ctx_release(c);
    T_EQ(t_fd_count(), before);
}

T_CASE(fd_of_done_context_is_readable)
{
    ctx_t *c;
    int fd;
    const char *why;
    T_OK(ctx_with_cancel(ctx_background(), &c));
    ctx_cancel_cause(c, ENOSPC, "full");
    fd = ctx_fd(c);
    T_GE(fd, 0);
    T_TRUE(readable(fd));
    T_ERR(ctx_cause(c, &why), ENOSPC);
    T_STREQ(why, "full");
    T_TRUE((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
    ctx_release(c);
}

/* ------------------------------------------------------------ after */

struct rec {
    atomic_int runs;
    ctx_t *seen_done; /* checked in fn: is this context done? */
    int seen_err;
    int order[8];
    atomic_int norder;
};

static void record(void *p)
{
    struct rec *r = p;
    atomic_fetch_add(&r->runs, 1);
    if (r->seen_done)
        r->seen_err = ctx_err(r->seen_done);
}

T_CASE(after_func_runs_once_on_cancel)
{
    ctx_t *p, *c, *g;
    ctx_after_t *a;
    struct rec r = {0};
    T_OK(ctx_with_cancel(ctx_background(), &p));
    T_OK(ctx_with_cancel(p, &c));
    T_OK(ctx_with_cancel(c, &g));
    r.seen_done = g;
    T_OK(ctx_after_func(c, record, &r, &a));
    T_EQ(atomic_load(&r.runs), 0);
    ctx_cancel(p);
    T_EQ(atomic_load(&r.runs), 1);
    T_ERR(r.seen_err, ECANCELED); /* the whole tree was marked first */
    ctx_cancel(c);
    T_EQ(atomic_load(&r.runs), 1);
    T_FALSE(ctx_after_stop(a));
    ctx_release(g);
    ctx_release(c);
    ctx_release(p);
}

T_CASE(after_func_on_done_runs_at_once)
{
    ctx_t *c;
    ctx_after_t *a;
    struct rec r = {0};
    T_OK(ctx_with_cancel(ctx_background(), &c));
    ctx_cancel(c);
    T_OK(ctx_after_func(c, record, &r, &a));
    T_EQ(atomic_load(&r.runs), 1);
    T_FALSE(ctx_after_stop(a));
    ctx_release(c);
}

T_CASE(after_stop_before_cancel_prevents)
{
    ctx_t *c;
    ctx_after_t *a;
    struct rec r = {0};
    T_OK(ctx_with_cancel(ctx_background(), &c));
    T_OK(ctx_after_func(c, record, &r, &a));
    T_TRUE(ctx_after_stop(a));
    ctx_cancel(c);
    T_EQ(atomic_load(&r.runs), 0);
    ctx_release(c);
}

T_CASE(after_func_on_never_done)
{
    ctx_t *w;
    ctx_after_t *a;
    struct rec r = {0};
    T_OK(ctx_after_func(ctx_background(), record, &r, &a));
    T_TRUE(ctx_after_stop(a));
    T_OK(ctx_without_cancel(ctx_background(), &w));
    T_OK(ctx_after_func(w, record, &r, &a));
    ctx_cancel(w);
    T_TRUE(ctx_after_stop(a));
    T_EQ(atomic_load(&r.runs), 0);
    ctx_release(w);
}

T_CASE(after_func_keeps_context_alive)
{
    ctx_t *p, *c;
    ctx_after_t *a;
    struct rec r = {0};
    T_OK(ctx_with_cancel(ctx_background(), &p));
    T_OK(ctx_with_cancel(p, &c));
    T_OK(ctx_after_func(c, record, &r, &a));
    ctx_release(c); /* the registration still holds it */
    ctx_cancel(p);
    T_EQ(atomic_load(&r.runs), 1);
    T_FALSE(ctx_after_stop(a));
    ctx_release(p);
}

static struct {
    int order[16];
    int n;
} seq;

static void note(void *p)
{
    seq.order[seq.n++] = (int)(intptr_t)p;
}

T_CASE(after_funcs_run_in_registration_order)
{
    ctx_t *c;
    ctx_after_t *a[5];
    seq.n = 0;
    T_OK(ctx_with_cancel(ctx_background(), &c));
    for (int i = 0; i < 5; i++)
        T_OK(ctx_after_func(c, note, (void *)(intptr_t)i, &a[i]));
    ctx_cancel(c);
    T_EQ(seq.n, 5);
    for (int i = 0; i < 5; i++) {
        T_EQ(seq.order[i], i);
        T_FALSE(ctx_after_stop(a[i]));
    }
    ctx_release(c);
}

struct selfstop {
    ctx_after_t *self;
    ctx_after_t *later;
    int stop_self;
    int stop_later;
    int ran;
};

static void stops(void *p)
{
    struct selfstop *s = p;
    s->ran++;
    s->stop_self = ctx_after_stop(s->self);
    if (s->later)
        s->stop_later = ctx_after_stop(s->later);
}

T_CASE(after_stop_from_inside_fn)
{
    ctx_t *c;
    struct selfstop s = {0};
    struct rec r = {0};
    T_OK(ctx_with_cancel(ctx_background(), &c));
    T_OK(ctx_after_func(c, stops, &s, &s.self));
    T_OK(ctx_after_func(c, record, &r, &s.later));
    ctx_cancel(c);
    T_EQ(s.ran, 1);
    T_FALSE(s.stop_self); /* fn is running */
    T_TRUE(s.stop_later); /* queued behind it: kept from running */
    T_EQ(atomic_load(&r.runs), 0);
    ctx_release(c);
}

struct slow {
    atomic_int started;
    atomic_int finished;
    int *arg_alive;
};

static void slow_fn(void *p)
{
    struct slow *s = p;
    atomic_store(&s->started, 1);
    t_sleep_ns(20000000LL);
    *s->arg_alive = 42; /* would be a use after free if stop returned */
    atomic_store(&s->finished, 1);
}

static void *cancel_thread(void *p)
{
    ctx_cancel(p);
    return NULL;
}

T_CASE(after_stop_waits_for_running_fn)
{
    ctx_t *c;
    ctx_after_t *a;
    pthread_t t;
    struct slow s = {0};
    s.arg_alive = malloc(sizeof(int));
    T_OK(ctx_with_cancel(ctx_background(), &c));
    T_OK(ctx_after_func(c, slow_fn, &s, &a));
    T_OK(pthread_create(&t, NULL, cancel_thread, c));
    while (!atomic_load(&s.started))
        t_sleep_ns(100000);
    T_FALSE(ctx_after_stop(a));
    T_EQ(atomic_load(&s.finished), 1);
    free(s.arg_alive);
    pthread_join(t, NULL);
    ctx_release(c);
}

/* ------------------------------------------------------------ size */

/* A million, also under ASan (the stack must not grow); fewer under TSan,
 * whose shadow memory makes it slow. */
static long a_million(void)
{
    return strcmp(t_sanitizer(), "thread") == 0 ? t_scale(1000000) : 1000000;
}

T_CASE(chain_of_a_million)
{
    long n = a_million();
    ctx_t *root, *c, *leaf;
    T_OK(ctx_with_cancel(ctx_background(), &root));
    c = root;
    for (long i = 0; i < n; i++) {
        ctx_t *next;
        T_OK(ctx_with_cancel(c, &next));
        if (c != root)
            ctx_release(c); /* the child keeps it alive */
        c = next;
    }
    leaf = c;
    ctx_cancel_cause(root, EXDEV, "deep");
    T_ERR(ctx_err(leaf), ECANCELED);
    T_ERR(ctx_cause(leaf, NULL), EXDEV);
    ctx_release(root); /* the chain keeps it alive */
    T_EQ(t_live_contexts(), n + 1);
    ctx_release(leaf); /* frees the whole chain, iteratively */
    T_EQ(t_live_contexts(), 0);
}

T_CASE(fanout_of_a_million)
{
    long n = a_million();
    ctx_t *root, **kids = malloc((size_t)n * sizeof *kids);
    T_NOTNULL(kids);
    T_OK(ctx_with_cancel(ctx_background(), &root));
    for (long i = 0; i < n; i++)
        T_OK(ctx_with_cancel(root, &kids[i]));
    ctx_cancel(root);
    for (long i = 0; i < n; i++) {
        T_ERR(ctx_err(kids[i]), ECANCELED);
        ctx_release(kids[i]);
    }
    ctx_release(root);
    free(kids);
    T_EQ(t_live_contexts(), 0);
}

/* ------------------------------------------------------------ stats */

T_CASE(stats_count)
{
    ctx_stats_t a, b;
    ctx_t *c, *d;
    T_OK(ctx_stats(&a));
    T_ERR(ctx_stats(NULL), EINVAL);
    T_OK(ctx_with_cancel(ctx_background(), &c));
    T_OK(ctx_with_cancel(c, &d));
    T_OK(ctx_stats(&b));
    T_EQ(b.contexts, a.contexts + 2);
    ctx_cancel(c);
    T_OK(ctx_stats(&b));
    T_EQ(b.cancels, a.cancels + 2);
    ctx_release(d);
    ctx_release(c);
    T_OK(ctx_stats(&b));
    T_EQ(b.contexts, a.contexts);
    T_EQ(ctx_leak_check(0), 0);
}
