/* SPDX-License-Identifier: MIT */
/*
 * Process-wide counters (ctx_stats) and the leak check for tests.
 *
 * DESIGN
 *
 * Counting must not cost the hot paths an atomic read-modify-write or a
 * shared cache line: creating and freeing a context would otherwise bounce
 * one line between every thread that makes contexts. So each thread counts
 * in its own thread-local slots with relaxed load + store (only the owner
 * writes them), and registers them once in a list under `reg_mu`. ctx_stats
 * sums the list plus `retired`, the totals of exited threads, which a
 * pthread key destructor folds in at thread exit. A thread whose
 * registration failed (pthread_setspecific out of memory), or that counts
 * again from a later destructor, adds to `retired` atomically instead.
 * Sums are not one snapshot while threads run; the leak check retries.
 */
#define _DEFAULT_SOURCE
#include "ctx_int.h"

#include <stdio.h>
#include <time.h>

_Thread_local struct ctx__tcounters ctx__tc
    __attribute__((tls_model("initial-exec")));

static ctx__mutex_t reg_mu = CTX__MUTEX_INIT;
static struct ctx__tcounters *reg_head CTX_GUARDED_BY(reg_mu);
static atomic_llong retired[CTX__C_COUNT];
static pthread_key_t reg_key;
static pthread_once_t reg_once = PTHREAD_ONCE_INIT;

static void unregister(void *p)
{
    struct ctx__tcounters *t = p;
    ctx__lock(&reg_mu);
    for (int k = 0; k < CTX__C_COUNT; k++)
        atomic_fetch_add(&retired[k], ctx__load_relaxed(&t->v[k]));
    *t->pprev = t->next;
    if (t->next)
        t->next->pprev = t->pprev;
    ctx__unlock(&reg_mu);
    t->registered = -1;
}

/* fork() must not leave reg_mu held by a thread the child does not have. */
static void atfork_prepare(void) CTX_NO_TSA
{
    ctx__lock(&reg_mu);
}

static void atfork_release(void) CTX_NO_TSA
{
    ctx__unlock(&reg_mu);
}

static void make_key(void)
{
    if (pthread_key_create(&reg_key, unregister) != 0)
        reg_key = (pthread_key_t)-1;
    pthread_atfork(atfork_prepare, atfork_release, atfork_release);
}

static int register_thread(struct ctx__tcounters *t)
{
    if (t->registered < 0)
        return 0;
    pthread_once(&reg_once, make_key);
    if (reg_key == (pthread_key_t)-1) {
        t->registered = -1;
        return 0;
    }
    ctx__lock(&reg_mu);
    t->next = reg_head;
    t->pprev = &reg_head;
    if (reg_head)
        reg_head->pprev = &t->next;
    reg_head = t;
    ctx__unlock(&reg_mu);
    if (pthread_setspecific(reg_key, t) != 0) {
        unregister(t);
        return 0;
    }
    t->registered = 1;
    return 1;
}

void ctx__count_slow(enum ctx__counter k, int64_t d)
{
    struct ctx__tcounters *t = &ctx__tc;
    if (!register_thread(t)) {
        atomic_fetch_add(&retired[k], d);
        return;
    }
    ctx__store_relaxed(&t->v[k], ctx__load_relaxed(&t->v[k]) + d);
}

int64_t ctx__counter_sum(enum ctx__counter k)
{
    int64_t sum;
    ctx__lock(&reg_mu);
    sum = atomic_load(&retired[k]);
    for (struct ctx__tcounters *t = reg_head; t; t = t->next)
        sum += ctx__load_relaxed(&t->v[k]);
    ctx__unlock(&reg_mu);
    return sum;
}

static int64_t live_contexts(int64_t by_kind[CTX__KINDS])
{
    int64_t total = 0;
    for (int i = 0; i < CTX__KINDS; i++) {
        by_kind[i] =
            ctx__counter_sum((enum ctx__counter)(CTX__C_NEW_PLAIN + i)) -
            ctx__counter_sum((enum ctx__counter)(CTX__C_FREE_PLAIN + i));
        total += by_kind[i];
    }
    return total;
}

atomic_llong ctx__pool_threads;
atomic_llong ctx__idle_threads;
atomic_llong ctx__fds;
atomic_llong ctx__children;

int ctx_stats(ctx_stats_t *out)
{
    int64_t kinds[CTX__KINDS];
    if (!out)
        return EINVAL;
    out->contexts = live_contexts(kinds);
    out->timers = ctx__timer_count();
    out->tasks =
        ctx__counter_sum(CTX__C_TASK_NEW) - ctx__counter_sum(CTX__C_TASK_END);
    out->pool_threads = atomic_load(&ctx__pool_threads);
    out->idle_threads = atomic_load(&ctx__idle_threads);
    out->internal_threads = atomic_load(&ctx__internal_threads);
    out->cancels = ctx__counter_sum(CTX__C_CANCELS);
    out->deadline_expiries = ctx__counter_sum(CTX__C_EXPIRIES);
    out->interrupts = ctx__counter_sum(CTX__C_INTERRUPTS);
    out->kills = ctx__counter_sum(CTX__C_KILLS);
    out->fds = atomic_load(&ctx__fds);
    out->children = atomic_load(&ctx__children);
    return 0;
}

static int64_t leftover(int64_t kinds[CTX__KINDS], int64_t *tasks)
{
    *tasks =
        ctx__counter_sum(CTX__C_TASK_NEW) - ctx__counter_sum(CTX__C_TASK_END);
    return live_contexts(kinds) + *tasks;
}

int ctx_leak_check(ctx_time_t grace)
{
    static const char *const kind_names[CTX__KINDS] = {
        "cancel", "deadline", "value", "without_cancel", "merge"};
    int64_t kinds[CTX__KINDS], tasks, left;
    ctx_time_t end = ctx__time_add(ctx__real_now(), grace > 0 ? grace : 0);
    ctx_time_t pause = CTX_MICROSECOND;

    for (;;) {
        left = leftover(kinds, &tasks);
        if (left == 0)
            return 0;
        ctx_time_t now = ctx__real_now();
        if (now >= end)
            break;
        ctx_time_t d = end - now < pause ? end - now : pause;
        struct timespec ts = {(time_t)(d / CTX_SECOND), (long)(d % CTX_SECOND)};
        nanosleep(&ts, NULL);
        if (pause < 100 * CTX_MILLISECOND)
            pause *= 2;
    }
    fprintf(stderr,
            "libctx: leak check: %lld left after %lld ms:", (long long)left,
            (long long)(grace / CTX_MILLISECOND));
    for (int i = 0; i < CTX__KINDS; i++)
        if (kinds[i])
            fprintf(stderr, " %lld %s context(s);", (long long)kinds[i],
                    kind_names[i]);
    fprintf(stderr, " %lld armed timer(s); %lld task(s)\n",
            (long long)ctx__timer_count(), (long long)tasks);
    return left > INT32_MAX ? INT32_MAX : (int)left;
}
