/* SPDX-License-Identifier: MIT */
/*
 * Channels, select and pipeline stages (SPEC §2): FIFO order, rendezvous,
 * close, cancellation with no effect, select fairness, drain accounting
 * (8 producers x 8 consumers, nothing lost, nothing twice) and the three
 * stage policies.
 */
#include "t.h"

#include <math.h>

T_CASE(buffered_fifo)
{
    ctx_chan_t *ch;
    int v;
    T_OK(ctx_chan_new(4, sizeof(int), &ch));
    T_EQ(ctx_chan_cap(ch), 4);
    for (int i = 0; i < 4; i++)
        T_OK(ctx_chan_send(ch, ctx_background(), &i));
    T_EQ(ctx_chan_len(ch), 4);
    v = 99;
    T_ERR(ctx_chan_try_send(ch, &v), EAGAIN);
    for (int i = 0; i < 4; i++) {
        T_OK(ctx_chan_recv(ch, ctx_background(), &v));
        T_EQ(v, i);
    }
    T_ERR(ctx_chan_try_recv(ch, &v), EAGAIN);
    ctx_chan_free(ch);
}

T_CASE(bad_input)
{
    ctx_chan_t *ch = (ctx_chan_t *)&ch;
    int v = 0;
    size_t chosen = 7;
    ctx_chan_op_t op = {NULL, CTX_CHAN_RECV, &v};
    T_ERR(ctx_chan_new(1, 0, &ch), EINVAL);
    T_NULL(ch);
    T_ERR(ctx_chan_new(1, 4, NULL), EINVAL);
    T_ERR(ctx_chan_new(SIZE_MAX, 8, &ch), ENOMEM);
    T_ERR(ctx_chan_new(SIZE_MAX / 2, 4, &ch), ENOMEM);
    T_OK(ctx_chan_new(1, sizeof v, &ch));
    T_ERR(ctx_chan_send(NULL, ctx_background(), &v), EINVAL);
    T_ERR(ctx_chan_send(ch, NULL, &v), EINVAL);
    T_ERR(ctx_chan_send(ch, ctx_background(), NULL), EINVAL);
    T_ERR(ctx_chan_recv(ch, ctx_background(), NULL), EINVAL);
    T_ERR(ctx_chan_select(ctx_background(), NULL, 1, &chosen), EINVAL);
    T_ERR(ctx_chan_select(ctx_background(), &op, 0, &chosen), EINVAL);
    T_ERR(ctx_chan_select(ctx_background(), &op, 1, NULL), EINVAL);
    op.dir = 3;
    T_ERR(ctx_chan_select(ctx_background(), &op, 1, &chosen), EINVAL);
    T_EQ(chosen, 1);
    T_EQ(ctx_chan_len(NULL), 0);
    T_EQ(ctx_chan_drain(NULL, NULL, NULL), 0);
    ctx_chan_close(NULL);
    ctx_chan_free(NULL);
    ctx_chan_free(ch);
}

struct peer {
    ctx_chan_t *ch;
    ctx_t *c;
    int val;
    atomic_int rc;
};

static void *sender(void *p)
{
    struct peer *a = p;
    atomic_store(&a->rc, ctx_chan_send(a->ch, a->c, &a->val));
    return NULL;
}

static void *receiver(void *p)
{
    struct peer *a = p;
    atomic_store(&a->rc, ctx_chan_recv(a->ch, a->c, &a->val));
    return NULL;
}

static void start(pthread_t *t, void *(*fn)(void *), struct peer *a,
                  ctx_chan_t *ch, ctx_t *c, int val)
{
    a->ch = ch;
    a->c = c;
    a->val = val;
    atomic_store(&a->rc, -1);
    pthread_create(t, NULL, fn, a);
}

T_CASE(rendezvous)
{
    ctx_chan_t *ch;
    pthread_t t;
    struct peer a;
    int v;
    T_OK(ctx_chan_new(0, sizeof(int), &ch));
    v = 1;
    T_ERR(ctx_chan_try_send(ch, &v), EAGAIN); /* nobody to take it */
    start(&t, sender, &a, ch, ctx_background(), 42);
    t_sleep_ns(20000000LL);
    T_EQ(atomic_load(&a.rc), -1); /* blocked until a receiver comes */
    T_OK(ctx_chan_recv(ch, ctx_background(), &v));
    T_EQ(v, 42);
    pthread_join(t, NULL);
    T_OK(atomic_load(&a.rc));
    start(&t, receiver, &a, ch, ctx_background(), 0);
    t_sleep_ns(20000000LL);
    v = 7;
    T_OK(ctx_chan_try_send(ch, &v)); /* a receiver is waiting */
    pthread_join(t, NULL);
    T_OK(atomic_load(&a.rc));
    T_EQ(a.val, 7);
    ctx_chan_free(ch);
}

T_CASE(close_semantics)
{
    ctx_chan_t *ch;
    pthread_t ts, tr;
    struct peer s, r;
    int v = 5;
    T_OK(ctx_chan_new(2, sizeof(int), &ch));
    T_OK(ctx_chan_send(ch, ctx_background(), &v));
    T_OK(ctx_chan_send(ch, ctx_background(), &v));
    start(&ts, sender, &s, ch, ctx_background(), 6); /* blocked: full */
    t_sleep_ns(20000000LL);
    ctx_chan_close(ch);
    pthread_join(ts, NULL);
    T_ERR(atomic_load(&s.rc), EPIPE); /* not sent */
    T_ERR(ctx_chan_send(ch, ctx_background(), &v), EPIPE);
    T_OK(ctx_chan_recv(ch, ctx_background(), &v)); /* still buffered */
    T_OK(ctx_chan_recv(ch, ctx_background(), &v));
    T_ERR(ctx_chan_recv(ch, ctx_background(), &v), EPIPE);
    ctx_chan_close(ch); /* twice: nothing */
    ctx_chan_free(ch);
    T_OK(ctx_chan_new(0, sizeof(int), &ch));
    start(&tr, receiver, &r, ch, ctx_background(), 0);
    t_sleep_ns(20000000LL);
    ctx_chan_close(ch);
    pthread_join(tr, NULL);
    T_ERR(atomic_load(&r.rc), EPIPE);
    ctx_chan_free(ch);
}

T_CASE(cancel_unblocks_with_no_effect)
{
    ctx_chan_t *ch;
    ctx_t *c;
    pthread_t t;
    struct peer a;
    int v = 1;
    T_OK(ctx_chan_new(1, sizeof(int), &ch));
    T_OK(ctx_chan_send(ch, ctx_background(), &v));
    T_OK(ctx_with_cancel(ctx_background(), &c));
    start(&t, sender, &a, ch, c, 2); /* full: the back-pressure case */
    t_sleep_ns(20000000LL);
    ctx_cancel_cause(c, ESHUTDOWN, NULL);
    pthread_join(t, NULL);
    T_ERR(atomic_load(&a.rc), ECANCELED);
    T_EQ(ctx_chan_len(ch), 1); /* not sent */
    T_OK(ctx_chan_recv(ch, ctx_background(), &v));
    T_EQ(v, 1);
    T_ERR(ctx_chan_recv(ch, c, &v), ECANCELED); /* done before: no wait */
    ctx_release(c);
    T_OK(ctx_with_timeout(ctx_background(), 20 * CTX_MILLISECOND, &c));
    T_ERR(ctx_chan_recv(ch, c, &v), ETIMEDOUT);
    ctx_release(c);
    ctx_chan_free(ch);
}

T_CASE(select_takes_the_ready_one)
{
    ctx_chan_t *a, *b;
    int va = 1, vb = 2, out = 0, seen[2] = {0, 0};
    size_t chosen;
    ctx_chan_op_t ops[3];
    T_OK(ctx_chan_new(1, sizeof(int), &a));
    T_OK(ctx_chan_new(1, sizeof(int), &b));
    ops[0] = (ctx_chan_op_t){a, CTX_CHAN_RECV, &out};
    ops[1] = (ctx_chan_op_t){b, CTX_CHAN_RECV, &out};
    ops[2] = (ctx_chan_op_t){NULL, CTX_CHAN_RECV, &out}; /* never ready */
    T_ERR(ctx_chan_try_select(ops, 3, &chosen), EAGAIN);
    T_EQ(chosen, 3);
    T_OK(ctx_chan_send(b, ctx_background(), &vb));
    T_OK(ctx_chan_select(ctx_background(), ops, 3, &chosen));
    T_EQ(chosen, 1);
    T_EQ(out, 2);
    /* Both ready: each is chosen some of the time. */
    for (int i = 0; i < 400; i++) {
        ctx_chan_try_send(a, &va);
        ctx_chan_try_send(b, &vb);
        T_OK(ctx_chan_select(ctx_background(), ops, 2, &chosen));
        seen[chosen]++;
        T_EQ(out, chosen == 0 ? 1 : 2);
    }
    T_GT(seen[0], 100);
    T_GT(seen[1], 100);
    ctx_chan_close(a);
    ctx_chan_drain(b, NULL, NULL);
    ctx_chan_drain(a, NULL, NULL);
    T_ERR(ctx_chan_select(ctx_background(), ops, 1, &chosen), EPIPE);
    T_EQ(chosen, 0);
    ctx_chan_free(a);
    ctx_chan_free(b);
}

struct selector {
    ctx_chan_op_t *ops;
    size_t n;
    ctx_t *c;
    size_t chosen;
    atomic_int rc;
};

static void *selector(void *p)
{
    struct selector *s = p;
    atomic_store(&s->rc, ctx_chan_select(s->c, s->ops, s->n, &s->chosen));
    return NULL;
}

T_CASE(select_blocks_then_completes_one_case)
{
    ctx_chan_t *a, *b;
    ctx_t *c;
    int in = 0, v = 9, out = 3;
    ctx_chan_op_t ops[2];
    struct selector s;
    pthread_t t;
    T_OK(ctx_chan_new(0, sizeof(int), &a));
    T_OK(ctx_chan_new(0, sizeof(int), &b));
    ops[0] = (ctx_chan_op_t){a, CTX_CHAN_RECV, &in};
    ops[1] = (ctx_chan_op_t){b, CTX_CHAN_SEND, &out};
    s.ops = ops;
    s.n = 2;
    s.c = ctx_background();
    atomic_store(&s.rc, -1);
    T_OK(pthread_create(&t, NULL, selector, &s));
    t_sleep_ns(20000000LL);
    T_EQ(atomic_load(&s.rc), -1);
    T_OK(ctx_chan_send(a, ctx_background(), &v));
    pthread_join(t, NULL);
    T_OK(atomic_load(&s.rc));
    T_EQ(s.chosen, 0);
    T_EQ(in, 9);
    T_ERR(ctx_chan_try_recv(b, &v), EAGAIN); /* the send case is gone */
    /* And cancellation. */
    T_OK(ctx_with_cancel(ctx_background(), &c));
    s.c = c;
    atomic_store(&s.rc, -1);
    T_OK(pthread_create(&t, NULL, selector, &s));
    t_sleep_ns(20000000LL);
    ctx_cancel(c);
    pthread_join(t, NULL);
    T_ERR(atomic_load(&s.rc), ECANCELED);
    T_EQ(s.chosen, 2);
    T_ERR(ctx_chan_try_recv(b, &v), EAGAIN);
    T_ERR(ctx_chan_try_send(a, &v), EAGAIN);
    ctx_release(c);
    ctx_chan_free(a);
    ctx_chan_free(b);
}

/* ------------------------------------------------------------ drain */

struct mp {
    ctx_chan_t *ch;
    ctx_t *c;
    int id;
    long per;
    long sent;
    long received;
    unsigned char *seen; /* one byte per sequence number */
    atomic_long *dups;
    atomic_long *progress; /* items sent by all, counted 64 at a time */
};

#define DR_DONE ((long)1 << 40) /* a producer is done, in `progress` */

static void *producer(void *p)
{
    struct mp *m = p;
    for (long i = 0; i < m->per; i++) {
        long item = (long)m->id * m->per + i;
        int rc = ctx_chan_send(m->ch, m->c, &item);
        if (rc != 0)
            break;
        if (++m->sent % 64 == 0)
            atomic_fetch_add_explicit(m->progress, 64, memory_order_relaxed);
    }
    atomic_fetch_add(m->progress, DR_DONE); /* this one is done */
    return NULL;
}

static void mark(struct mp *m, long item)
{
    /* Each item at most once; atomics for the cross-thread byte. */
    if (__atomic_exchange_n(&m->seen[item], 1, __ATOMIC_RELAXED))
        atomic_fetch_add(m->dups, 1);
}

static void *consumer(void *p)
{
    struct mp *m = p;
    long item;
    while (ctx_chan_recv(m->ch, m->c, &item) == 0) {
        mark(m, item);
        m->received++;
    }
    return NULL;
}

static void drained(void *elem, void *arg)
{
    struct mp *m = arg;
    mark(m, *(long *)elem);
    m->received++; /* counted apart: `received` of the drainer record */
}

/*
 * One run of 8 producers x 8 consumers over a channel of capacity `cap`:
 * producer i sends items i*per, i*per+1, ... until a send fails. With
 * cancel_at < 0 nothing cancels it: the channel is closed once every item
 * is sent, and the consumers take everything. Otherwise the context is
 * cancelled once cancel_at items are sent (or every producer is done) and
 * the channel drained. Every item sent must have been received or drained
 * exactly once, and no other: the item a producer failed to send, and the
 * ones after it, never. Returns the items sent.
 */
enum { DR_P = 8, DR_C = 8 };

static long drain_run(size_t cap, long total, unsigned char *seen,
                      long cancel_at)
{
    ctx_chan_t *ch;
    ctx_t *c;
    pthread_t tp[DR_P], tc[DR_C];
    struct mp mp[DR_P], mc[DR_C], md;
    atomic_long dups = 0, progress = 0;
    long per = total / DR_P, sent = 0, got = 0;
    memset(seen, 0, (size_t)total);
    if (ctx_chan_new(cap, sizeof(long), &ch) != 0) {
        T_EXPECT(0);
        return 0;
    }
    if (ctx_with_cancel(ctx_background(), &c) != 0) {
        ctx_chan_free(ch);
        T_EXPECT(0);
        return 0;
    }
    for (int i = 0; i < DR_P; i++) {
        mp[i] = (struct mp){ch, c, i, per, 0, 0, seen, &dups, &progress};
        T_EXPECT_EQ(pthread_create(&tp[i], NULL, producer, &mp[i]), 0);
    }
    for (int i = 0; i < DR_C; i++) {
        mc[i] = (struct mp){ch, c, i, per, 0, 0, seen, &dups, &progress};
        T_EXPECT_EQ(pthread_create(&tc[i], NULL, consumer, &mc[i]), 0);
    }
    if (cancel_at >= 0) {
        long v;
        while ((v = atomic_load(&progress)) % DR_DONE < cancel_at &&
               v / DR_DONE < DR_P)
            t_sleep_ns(20000);
        ctx_cancel(c);
    }
    for (int i = 0; i < DR_P; i++)
        pthread_join(tp[i], NULL);
    if (cancel_at < 0)
        ctx_chan_close(ch); /* all sent: the consumers end on EPIPE */
    for (int i = 0; i < DR_C; i++)
        pthread_join(tc[i], NULL);
    md = (struct mp){ch, c, 0, per, 0, 0, seen, &dups, &progress};
    T_EXPECT_EQ((long)ctx_chan_drain(ch, drained, &md), md.received);
    for (int i = 0; i < DR_P; i++)
        sent += mp[i].sent;
    for (int i = 0; i < DR_C; i++)
        got += mc[i].received;
    T_EXPECT_EQ(sent, got + md.received);
    T_EXPECT_EQ(atomic_load(&dups), 0);
    for (int i = 0; i < DR_P; i++) {
        long base = (long)i * per, bad = 0;
        for (long k = 0; k < per; k++)
            bad += seen[base + k] != (k < mp[i].sent);
        if (bad)
            fprintf(stderr,
                    "  producer %d: %ld items received or not "
                    "against what its sends said\n",
                    i, bad);
        T_EXPECT_EQ(bad, 0);
    }
    if (cancel_at < 0) {
        T_EXPECT_EQ(sent, per * DR_P);
        T_EXPECT_EQ(md.received, 0);
    }
    ctx_release(c);
    ctx_chan_free(ch);
    return sent;
}

/*
 * RELIABILITY G9: 8 producers x 8 consumers, 10^6 items, 100 seeds, each
 * cancelled at a random point and drained: nothing lost, nothing twice.
 * The point is a count of items sent (a time would not do: a run takes
 * from 0.3 s to several seconds here, for the same capacity), uniform
 * over the whole run for even seeds, and log-uniform from 1 item to all
 * for odd ones, so that the start (threads still arriving) is covered as
 * well as the end, and the seeds cost half a run on average, not more.
 * One run is not cancelled at all. The seeds stop early, and say so,
 * after 20 s (a slow or loaded machine).
 */
T_CASE(drain_loses_nothing)
{
    long total = t_scale(1000000) / DR_P * DR_P;
    int seeds = (int)t_scale(100) < 3 ? 3 : (int)t_scale(100), seed;
    int tenth[10] = {0};
    long long t0 = t_now_ns();
    unsigned char *seen = calloc((size_t)total, 1);
    T_NOTNULL(seen);
    drain_run(16, total, seen, -1);
    printf("  uncancelled run: %.0f ms\n", (double)(t_now_ns() - t0) / 1e6);
    for (seed = 1; seed <= seeds && !t_failed(); seed++) {
        if (t_now_ns() - t0 > 20000000000LL)
            break;
        uint64_t r = (uint64_t)seed * 7919;
        size_t cap = 1 + t_rand(&r) % 64;
        long at = (long)(t_rand(&r) % (uint64_t)total);
        if (seed % 2) /* 1 to total, each factor of 10 alike */
            at = (long)exp(log((double)total) * (double)(t_rand(&r) % 10001) /
                           10000.0);
        long sent = drain_run(cap, total, seen, at);
        tenth[sent * 10 / (total + 1)]++;
    }
    free(seen);
    printf("  %d seeds in %.1f s%s; how far each run got (items sent, by "
           "tenth of the run): %d %d %d %d %d %d %d %d %d %d\n",
           seed - 1, (double)(t_now_ns() - t0) / 1e9,
           seed <= seeds && !t_failed() ? " (stopped by the 20 s budget)" : "",
           tenth[0], tenth[1], tenth[2], tenth[3], tenth[4], tenth[5], tenth[6],
           tenth[7], tenth[8], tenth[9]);
}

/* ------------------------------------------------------------ stages */

struct pipe_state {
    atomic_long processed;
    atomic_long drained;
    atomic_long flushed;
    atomic_long sink_sum;
};

static int square(ctx_t *c, void *elem, ctx_chan_t *out, void *arg)
{
    struct pipe_state *ps = arg;
    long v = *(long *)elem;
    long sq = v * v;
    atomic_fetch_add(&ps->processed, 1);
    return ctx_chan_send(out, c, &sq) == 0 ? 0 : 0;
}

static int sum_sink(ctx_t *c, void *elem, ctx_chan_t *out, void *arg)
{
    struct pipe_state *ps = arg;
    (void)c;
    (void)out;
    atomic_fetch_add(&ps->sink_sum, *(long *)elem);
    return 0;
}

static void count_drain(void *elem, void *arg)
{
    struct pipe_state *ps = arg;
    (void)elem;
    atomic_fetch_add(&ps->drained, 1);
}

T_CASE(pipeline_runs_to_completion)
{
    ctx_group_t *g;
    ctx_chan_t *in, *mid;
    struct pipe_state ps = {0};
    ctx_stage_opts_t o = CTX_STAGE_OPTS_INIT;
    long want = 0;
    T_OK(ctx_group_new(ctx_background(), &g));
    T_OK(ctx_chan_new(16, sizeof(long), &in));
    T_OK(ctx_chan_new(16, sizeof(long), &mid));
    o.workers = 4;
    o.arg = &ps;
    o.name = "square";
    T_OK(ctx_stage_start(g, in, mid, square, &o));
    o.workers = 1;
    o.name = "sum";
    T_OK(ctx_stage_start(g, mid, NULL, sum_sink, &o));
    for (long i = 1; i <= 1000; i++) {
        T_OK(ctx_chan_send(in, ctx_background(), &i));
        want += i * i;
    }
    ctx_chan_close(in); /* the stages end one after the other */
    T_OK(ctx_group_wait(g));
    T_EQ(atomic_load(&ps.processed), 1000);
    T_EQ(atomic_load(&ps.sink_sum), want);
    ctx_group_free(g);
    ctx_chan_free(in);
    ctx_chan_free(mid);
}

static int slow_stage(ctx_t *c, void *elem, ctx_chan_t *out, void *arg)
{
    struct pipe_state *ps = arg;
    (void)elem;
    (void)out;
    atomic_fetch_add(&ps->processed, 1);
    ctx_wait(c, 2 * CTX_MILLISECOND);
    return 0;
}

T_CASE(pipeline_drain_policy)
{
    ctx_group_t *g;
    ctx_chan_t *in;
    struct pipe_state ps = {0};
    ctx_stage_opts_t o = CTX_STAGE_OPTS_INIT;
    long sent = 0;
    T_OK(ctx_group_new(ctx_background(), &g));
    T_OK(ctx_chan_new(64, sizeof(long), &in));
    o.policy = CTX_STAGE_DRAIN;
    o.drain = count_drain;
    o.arg = &ps;
    o.workers = 2;
    T_OK(ctx_stage_start(g, in, NULL, slow_stage, &o));
    for (long i = 0; i < 50; i++)
        if (ctx_chan_send(in, ctx_background(), &i) == 0)
            sent++;
    t_sleep_ns(5000000LL);
    ctx_cancel(ctx_group_ctx(g));
    T_OK(ctx_group_wait(g));
    T_EQ(sent, 50);
    T_EQ(atomic_load(&ps.processed) + atomic_load(&ps.drained), 50);
    T_GT(atomic_load(&ps.drained), 0);
    ctx_group_free(g);
    ctx_chan_free(in);
}

static int flush_partial(ctx_t *c, ctx_chan_t *out, void *arg)
{
    struct pipe_state *ps = arg;
    long marker = -1;
    T_EXPECT_EQ(ctx_err(c), 0); /* a fresh context, not the cancelled */
    atomic_fetch_add(&ps->flushed, 1);
    return ctx_chan_send(out, c, &marker);
}

T_CASE(pipeline_emit_partial_policy)
{
    ctx_group_t *g;
    ctx_chan_t *in, *out;
    struct pipe_state ps = {0};
    ctx_stage_opts_t o = CTX_STAGE_OPTS_INIT;
    long v = 1, got;
    T_OK(ctx_group_new(ctx_background(), &g));
    T_OK(ctx_chan_new(8, sizeof(long), &in));
    T_OK(ctx_chan_new(8, sizeof(long), &out));
    o.policy = CTX_STAGE_EMIT_PARTIAL;
    T_ERR(ctx_stage_start(g, in, out, square, &o), EINVAL); /* no flush */
    o.flush = flush_partial;
    o.arg = &ps;
    T_OK(ctx_stage_start(g, in, out, square, &o));
    T_OK(ctx_chan_send(in, ctx_background(), &v));
    T_OK(ctx_chan_recv(out, ctx_background(), &got));
    T_EQ(got, 1);
    ctx_cancel(ctx_group_ctx(g));
    T_OK(ctx_group_wait(g));
    T_EQ(atomic_load(&ps.flushed), 1);
    T_OK(ctx_chan_recv(out, ctx_background(), &got));
    T_EQ(got, -1); /* the partial result */
    T_ERR(ctx_chan_recv(out, ctx_background(), &got), EPIPE); /* closed */
    ctx_group_free(g);
    ctx_chan_free(in);
    ctx_chan_free(out);
}
