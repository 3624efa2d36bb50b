/* SPDX-License-Identifier: MIT */
/*
 * Races of channels (RELIABILITY G1, G2; catalogue #1, #2): send and
 * receive against cancellation on buffered and rendezvous channels, select
 * over 2-4 channels against cancellation and close, close against blocked
 * senders and receivers, and lost wakeups of blocked receivers, 10^5
 * rounds each. Every round accounts for every item: each one sent is
 * received or left in the channel exactly once, or its send failed.
 */
#include "sync_race.h"

/*
 * The items of a round, numbered below LEDGER_MAX: what went in (prefilled
 * or sent with success) and what came out (received or drained at the
 * end) must be the same set, each item once.
 */
#define LEDGER_MAX 512

struct ledger {
    unsigned char in[LEDGER_MAX], out[LEDGER_MAX];
    int dup_in, dup_out, bad;
};

static void ledger_reset(struct ledger *l)
{
    memset(l, 0, sizeof *l);
}

static void put_in(struct ledger *l, long item)
{
    if (item < 0 || item >= LEDGER_MAX)
        l->bad++;
    else if (l->in[item]++)
        l->dup_in++;
}

static void put_out(struct ledger *l, long item)
{
    if (item < 0 || item >= LEDGER_MAX)
        l->bad++;
    else if (l->out[item]++)
        l->dup_out++;
}

/* Take what is left in ch into the ledger; returns how many. */
static int drain_into(struct ledger *l, ctx_chan_t *ch)
{
    long item;
    int n = 0, rc;
    while ((rc = ctx_chan_try_recv(ch, &item)) == 0) {
        put_out(l, item);
        n++;
    }
    T_EXPECT(rc == EAGAIN || rc == EPIPE);
    return n;
}

/* Check the ledger; prints the first difference of a round. */
static int ledger_ok(const struct ledger *l, long round)
{
    if (l->dup_in || l->dup_out || l->bad) {
        fprintf(stderr,
                "  round %ld: %d items in twice, %d out twice, %d "
                "bad\n",
                round, l->dup_in, l->dup_out, l->bad);
        return 0;
    }
    for (int i = 0; i < LEDGER_MAX; i++) {
        if (l->in[i] != l->out[i]) {
            fprintf(stderr,
                    "  round %ld: item %d went in %d times, came out "
                    "%d times\n",
                    round, i, l->in[i], l->out[i]);
            return 0;
        }
    }
    return 1;
}

/* ------------------------------------------------------------ send/recv */

/*
 * Two senders and two receivers on one channel (capacity 0, 1, 2 or 4,
 * prefilled at random), sender i and receiver i with context i; the main
 * thread cancels both contexts, 0-50 us in, in a random order. Every
 * operation returns 0 or ECANCELED; the items are conserved.
 */
static struct {
    ctx_chan_t *ch;
    ctx_t *c[2];
    long item[2];
    long got[2];
    int src[2], rrc[2];
} cs;

static void cs_role(int who, long round, uint64_t *seed)
{
    (void)round;
    skew_us(seed, 20);
    if (who < 2)
        cs.src[who] = ctx_chan_send(cs.ch, cs.c[who], &cs.item[who]);
    else
        cs.rrc[who - 2] = ctx_chan_recv(cs.ch, cs.c[who - 2], &cs.got[who - 2]);
}

T_CASE(send_recv_race_cancel)
{
    static const size_t caps[] = {0, 1, 2, 4};
    long rounds = t_scale(100000), r, sent = 0, unsent = 0, got = 0, not = 0;
    long long t0 = t_now_ns();
    uint64_t seed = 59;
    struct ledger l;
    wd_start("send_recv_race_cancel", NULL);
    crew_open(4, cs_role);
    for (r = 0; r < rounds && !FAILED() && in_budget(t0); r++) {
        size_t cap = caps[r % 4];
        int pre = (int)rnd(&seed, (unsigned)cap + 1),
            first = (int)rnd(&seed, 2);
        ledger_reset(&l);
        T_EXPECT_ERR(ctx_chan_new(cap, sizeof(long), &cs.ch), 0);
        if (FAILED())
            break;
        for (long k = 0; k < pre; k++) {
            long item = 10 + k;
            T_EXPECT_ERR(ctx_chan_try_send(cs.ch, &item), 0);
            put_in(&l, item);
        }
        for (int i = 0; i < 2; i++) {
            T_EXPECT_ERR(ctx_with_cancel(ctx_background(), &cs.c[i]), 0);
            cs.item[i] = 1 + i;
            cs.got[i] = -1;
            cs.src[i] = cs.rrc[i] = -1;
        }
        crew_go(r);
        skew_us(&seed, 50);
        ctx_cancel(cs.c[first]);
        skew_us(&seed, 20);
        ctx_cancel(cs.c[!first]);
        crew_wait();
        for (int i = 0; i < 2; i++) {
            if (cs.src[i] == 0) {
                put_in(&l, cs.item[i]);
                sent++;
            } else {
                T_EXPECT_ERR(cs.src[i], ECANCELED);
                unsent++;
            }
            if (cs.rrc[i] == 0) {
                put_out(&l, cs.got[i]);
                got++;
            } else {
                T_EXPECT_ERR(cs.rrc[i], ECANCELED);
                not ++;
            }
        }
        drain_into(&l, cs.ch);
        T_EXPECT(ledger_ok(&l, r));
        for (int i = 0; i < 2; i++)
            ctx_release(cs.c[i]);
        ctx_chan_free(cs.ch);
        wd_tick();
    }
    crew_close();
    wd_stop();
    printf("  send_recv_race_cancel (capacity 0-4): %ld rounds in %.2f s "
           "(sends %ld done, %ld cancelled; receives %ld done, %ld "
           "cancelled)%s\n",
           r, (double)(t_now_ns() - t0) / 1e9, sent, unsent, got, not,
           budget_note(r, rounds));
    T_GT(sent, 0);
    T_GT(unsent, 0);
    T_GT(got, 0);
    T_GT(not, 0);
}

/* ------------------------------------------------------------ select */

/*
 * A select over 2-4 channels (capacity 0 or 1, some prefilled), each case
 * a send or a receive at random, against: a partner doing one send or
 * receive on one of the channels with a context of its own, a closer
 * closing one of them (or none), and the main thread cancelling both
 * contexts. The select does at most one operation: 0 or EPIPE with the
 * index of a case (EPIPE only on the closed channel), or ECANCELED with
 * no case (index n) and no effect. The items are conserved.
 */
#define SS_MAX 4

static struct {
    int m;
    ctx_chan_t *ch[SS_MAX];
    ctx_chan_op_t ops[SS_MAX];
    long buf[SS_MAX]; /* per case: the item sent, or where one is received */
    ctx_t *c, *c2;
    size_t chosen;
    int rc;
    int pj, pdir, prc; /* the partner: channel, direction, result */
    long pitem;
    int close_k; /* -1: none */
} ss;

static void ss_role(int who, long round, uint64_t *seed)
{
    (void)round;
    if (who == 0) {
        skew_us(seed, 10);
        ss.rc = ctx_chan_select(ss.c, ss.ops, (size_t)ss.m, &ss.chosen);
    } else if (who == 1) {
        skew_us(seed, 30);
        if (ss.pdir == CTX_CHAN_SEND)
            ss.prc = ctx_chan_send(ss.ch[ss.pj], ss.c2, &ss.pitem);
        else
            ss.prc = ctx_chan_recv(ss.ch[ss.pj], ss.c2, &ss.pitem);
    } else if (ss.close_k >= 0) {
        skew_us(seed, 50);
        ctx_chan_close(ss.ch[ss.close_k]);
    }
}

T_CASE(select_races_cancel_and_close)
{
    long rounds = t_scale(100000), r, done = 0, piped = 0, cancelled = 0;
    long long t0 = t_now_ns();
    uint64_t seed = 61;
    struct ledger l;
    wd_start("select_races_cancel_and_close", NULL);
    crew_open(3, ss_role);
    for (r = 0; r < rounds && !FAILED() && in_budget(t0); r++) {
        ledger_reset(&l);
        ss.m = 2 + (int)(r % 3);
        for (int i = 0; i < ss.m; i++) {
            size_t cap = rnd(&seed, 2);
            T_EXPECT_ERR(ctx_chan_new(cap, sizeof(long), &ss.ch[i]), 0);
            if (cap && rnd(&seed, 2)) {
                long item = 100 + i;
                T_EXPECT_ERR(ctx_chan_try_send(ss.ch[i], &item), 0);
                put_in(&l, item);
            }
            ss.ops[i].ch = ss.ch[i];
            ss.ops[i].dir = rnd(&seed, 2) ? CTX_CHAN_SEND : CTX_CHAN_RECV;
            ss.buf[i] = ss.ops[i].dir == CTX_CHAN_SEND ? 200 + i : -1;
            ss.ops[i].elem = &ss.buf[i];
        }
        if (FAILED())
            break;
        T_EXPECT_ERR(ctx_with_cancel(ctx_background(), &ss.c), 0);
        T_EXPECT_ERR(ctx_with_cancel(ctx_background(), &ss.c2), 0);
        ss.pj = (int)rnd(&seed, (unsigned)ss.m);
        ss.pdir = rnd(&seed, 2) ? CTX_CHAN_SEND : CTX_CHAN_RECV;
        ss.pitem = ss.pdir == CTX_CHAN_SEND ? 300 : -1;
        ss.close_k = (int)rnd(&seed, (unsigned)ss.m + 1) - 1;
        ss.rc = ss.prc = -1;
        ss.chosen = SIZE_MAX;
        crew_go(r);
        skew_us(&seed, 50);
        ctx_cancel(ss.c);
        skew_us(&seed, 30);
        ctx_cancel(ss.c2);
        crew_wait();
        if (ss.rc == ECANCELED) {
            cancelled++;
            T_EXPECT_EQ(ss.chosen, ss.m);
        } else if (ss.rc == 0 || ss.rc == EPIPE) {
            int k = (int)ss.chosen;
            T_EXPECT(ss.chosen < (size_t)ss.m);
            if (ss.chosen >= (size_t)ss.m)
                break;
            if (ss.rc == EPIPE) {
                piped++;
                T_EXPECT_EQ(k, ss.close_k);
            } else if (ss.ops[k].dir == CTX_CHAN_SEND) {
                done++;
                put_in(&l, ss.buf[k]);
            } else {
                done++;
                put_out(&l, ss.buf[k]);
            }
        } else {
            T_EXPECT_ERR(ss.rc, ECANCELED);
        }
        if (ss.prc == 0 && ss.pdir == CTX_CHAN_SEND)
            put_in(&l, ss.pitem);
        else if (ss.prc == 0)
            put_out(&l, ss.pitem);
        else if (ss.prc == EPIPE)
            T_EXPECT_EQ(ss.pj, ss.close_k);
        else
            T_EXPECT_ERR(ss.prc, ECANCELED);
        for (int i = 0; i < ss.m; i++)
            drain_into(&l, ss.ch[i]);
        T_EXPECT(ledger_ok(&l, r));
        for (int i = 0; i < ss.m; i++)
            ctx_chan_free(ss.ch[i]);
        ctx_release(ss.c);
        ctx_release(ss.c2);
        wd_tick();
    }
    crew_close();
    wd_stop();
    printf("  select_races_cancel_and_close (2-4 channels): %ld rounds in "
           "%.2f s (a case done %ld, EPIPE %ld, cancelled %ld)%s\n",
           r, (double)(t_now_ns() - t0) / 1e9, done, piped, cancelled,
           budget_note(r, rounds));
    T_GT(done, 0);
    T_GT(piped, 0);
    T_GT(cancelled, 0);
}

/* ------------------------------------------------------------ close */

/*
 * Close against blocked operations whose contexts never end, so a close
 * that misses a waiter hangs the round (5 s watchdog). In even rounds two
 * senders block on a full channel (capacity 0-2): both must get EPIPE and
 * the buffered items stay receivable. In odd rounds two receivers block on
 * an empty one while a third thread sends one item: each receiver gets the
 * item or EPIPE, the send succeeds or gets EPIPE, and a sent item is
 * received or left in the channel, exactly once.
 */
static struct {
    ctx_chan_t *ch;
    int senders; /* even rounds */
    long item[3];
    int rc[3];
} cc;

static void cc_role(int who, long round, uint64_t *seed)
{
    (void)round;
    skew_us(seed, 20);
    if (cc.senders && who < 2)
        cc.rc[who] = ctx_chan_send(cc.ch, ctx_background(), &cc.item[who]);
    else if (!cc.senders && who < 2)
        cc.rc[who] = ctx_chan_recv(cc.ch, ctx_background(), &cc.item[who]);
    else if (!cc.senders)
        cc.rc[who] = ctx_chan_send(cc.ch, ctx_background(), &cc.item[who]);
}

T_CASE(close_races_blocked_ops)
{
    long rounds = t_scale(100000), r, handed = 0, piped = 0;
    long long t0 = t_now_ns();
    uint64_t seed = 67;
    struct ledger l;
    wd_start("close_races_blocked_ops", NULL);
    crew_open(3, cc_role);
    for (r = 0; r < rounds && !FAILED() && in_budget(t0); r++) {
        size_t cap = (size_t)(r / 2 % 3);
        ledger_reset(&l);
        cc.senders = r % 2 == 0;
        T_EXPECT_ERR(ctx_chan_new(cap, sizeof(long), &cc.ch), 0);
        if (FAILED())
            break;
        for (long k = 0; cc.senders && k < (long)cap; k++) {
            long item = 10 + k;
            T_EXPECT_ERR(ctx_chan_try_send(cc.ch, &item), 0);
            put_in(&l, item);
        }
        for (int i = 0; i < 3; i++) {
            cc.item[i] = cc.senders || i == 2 ? 1 + i : -1;
            cc.rc[i] = -1;
        }
        crew_go(r);
        skew_us(&seed, 50);
        ctx_chan_close(cc.ch);
        crew_wait();
        for (int i = 0; i < 3; i++) {
            if (cc.senders) {
                if (i < 2)
                    T_EXPECT_ERR(cc.rc[i], EPIPE);
                continue;
            }
            if (cc.rc[i] == EPIPE) {
                piped++;
                continue;
            }
            T_EXPECT_ERR(cc.rc[i], 0);
            if (i < 2) {
                put_out(&l, cc.item[i]);
                handed++;
            } else {
                put_in(&l, cc.item[i]);
            }
        }
        drain_into(&l, cc.ch);
        T_EXPECT(ledger_ok(&l, r));
        ctx_chan_free(cc.ch);
        wd_tick();
    }
    crew_close();
    wd_stop();
    report_outcomes("close_races_blocked_ops", r, rounds, t0, "items received",
                    handed, "EPIPE", piped);
    T_GT(handed, 0);
    T_GT(piped, 0);
}

/* ------------------------------------------------------------ wakeups */

/*
 * Lost wakeups (RELIABILITY #2 ii) for ctx_chan_recv: four receivers
 * block on an empty channel (capacity 0 or 1) with a context that has no
 * deadline of theirs, racing its end (direct cancel, a parent's, or a
 * 0-50 us deadline); in half the rounds the main thread also offers one
 * item (try_send), racing the end. Every receiver returns (5 s watchdog),
 * with the context's error or the item; the item is received or left in
 * the channel, exactly once.
 */
#define CL_N 4

static struct {
    ctx_chan_t *ch;
    struct ending e;
    atomic_int state[CL_N];
    long got[CL_N];
    int rc[CL_N];
} cl;

static void cl_stuck(void)
{
    for (int i = 0; i < CL_N; i++)
        fprintf(stderr, "  receiver %d: %s\n", i,
                atomic_load(&cl.state[i]) == 1 ? "in ctx_chan_recv"
                                               : "not blocked");
}

static void cl_role(int who, long round, uint64_t *seed)
{
    (void)round;
    skew_us(seed, 20);
    atomic_store(&cl.state[who], 1);
    cl.rc[who] = ctx_chan_recv(cl.ch, cl.e.c, &cl.got[who]);
    atomic_store(&cl.state[who], 2);
}

T_CASE(chan_recv_lost_wakeups)
{
    long rounds = t_scale(100000), r, handed = 0;
    long long t0 = t_now_ns();
    uint64_t seed = 71;
    struct ledger l;
    wd_start("chan_recv_lost_wakeups", cl_stuck);
    crew_open(CL_N, cl_role);
    for (r = 0; r < rounds && !FAILED() && in_budget(t0); r++) {
        int offer = (int)(r / END_KINDS % 2);
        long item = 7;
        ledger_reset(&l);
        T_EXPECT_ERR(ctx_chan_new(r / 2 % 2, sizeof(long), &cl.ch), 0);
        T_EXPECT_ERR(ending_open(&cl.e, (int)(r % END_KINDS), &seed), 0);
        if (FAILED())
            break;
        for (int i = 0; i < CL_N; i++) {
            atomic_store(&cl.state[i], 0);
            cl.rc[i] = -1;
        }
        crew_go(r);
        skew_us(&seed, 50);
        if (offer && rnd(&seed, 2) && ctx_chan_try_send(cl.ch, &item) == 0) {
            put_in(&l, item);
            offer = 0;
        }
        ending_fire(&cl.e);
        if (offer && ctx_chan_try_send(cl.ch, &item) == 0)
            put_in(&l, item);
        crew_wait();
        for (int i = 0; i < CL_N; i++) {
            if (cl.rc[i] == 0) {
                put_out(&l, cl.got[i]);
                handed++;
            } else {
                T_EXPECT_ERR(cl.rc[i], ending_err(&cl.e));
            }
        }
        drain_into(&l, cl.ch);
        T_EXPECT(ledger_ok(&l, r));
        ending_close(&cl.e);
        ctx_chan_free(cl.ch);
        wd_tick();
    }
    crew_close();
    wd_stop();
    printf("  chan_recv_lost_wakeups (4 receivers): %ld rounds, %ld items "
           "received, in %.2f s%s\n",
           r, handed, (double)(t_now_ns() - t0) / 1e9, budget_note(r, rounds));
    T_GT(handed, 0);
}
