/* SPDX-License-Identifier: MIT */
/*
 * Process-wide counters (ctx_stats) and the cancellation-latency
 * histogram.
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
 *
 * The latency histogram is more of the same counters: a sum and one count
 * per bucket, so a sample costs two relaxed load + store pairs.
 */
#define _DEFAULT_SOURCE
#include "ctx_int.h"

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

int64_t ctx__live_contexts(int64_t by_kind[CTX__KINDS])
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
atomic_llong ctx__kept_fds;
atomic_llong ctx__children;

/* ------------------------------------------------------------ latency */

void ctx__latency_record(ctx_time_t cancelled_at)
{
    ctx_time_t d = cancelled_at > 0 ? ctx__real_now() - cancelled_at : 0;
    int i = 0;
    if (d < 0)
        d = 0;
    /* The first bucket whose bound (1 us << i) is >= d. */
    if (d > CTX_MICROSECOND) {
        uint64_t q = (uint64_t)(d - 1) / (uint64_t)CTX_MICROSECOND;
        i = 64 - __builtin_clzll(q);
        if (i > CTX_LATENCY_BUCKETS - 1)
            i = CTX_LATENCY_BUCKETS - 1;
    }
    ctx__count(CTX__C_LAT_SUM, d);
    ctx__count((enum ctx__counter)(CTX__C_LAT_0 + i), 1);
}

int ctx_cancel_latency(ctx_latency_t *out)
{
    if (!out)
        return EINVAL;
    out->count = 0;
    out->sum_ns = ctx__counter_sum(CTX__C_LAT_SUM);
    for (int i = 0; i < CTX_LATENCY_BUCKETS; i++) {
        out->bucket[i] =
            ctx__counter_sum((enum ctx__counter)(CTX__C_LAT_0 + i));
        out->count += out->bucket[i];
    }
    return 0;
}

ctx_time_t ctx_latency_bound(int i)
{
    if (i < 0 || i >= CTX_LATENCY_BUCKETS)
        return -1;
    return i == CTX_LATENCY_BUCKETS - 1 ? CTX_NO_DEADLINE
                                        : CTX_MICROSECOND << i;
}

/* ------------------------------------------------------------ stats */

int ctx_stats(ctx_stats_t *out)
{
    int64_t kinds[CTX__KINDS];
    if (!out)
        return EINVAL;
    out->contexts = ctx__live_contexts(kinds);
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
