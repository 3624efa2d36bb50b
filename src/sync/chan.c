/* SPDX-License-Identifier: MIT */
/*
 * Channels and select, after Go's runtime/chan.go and select.go.
 *
 * DESIGN
 *
 * A channel is a ring of `cap` elements and two FIFOs of blocked cases
 * (sendq, recvq), all under the channel's spin lock. Every blocked
 * operation, a plain send or receive as well as a select, is a `sel` on
 * the caller's stack with one `cw` (case waiter) per channel it waits on.
 * sel.word goes 0 -> CLAIMED -> CLAIMED|READY when an operation on one of
 * the channels completes one of its cases: the completer wins a CAS from 0
 * (so only one case of a select ever happens), copies the element, writes
 * `chosen` and `result`, then sets READY (release) and wakes the futex.
 * A cancellation sets CANCELLED through the context (ctx__waitrec): if it
 * lands first, the claim CAS fails and no case can happen any more; if the
 * claim lands first, the operation has happened and the waiter reports it.
 * So a blocked operation has exactly one outcome.
 *
 * Completers skip (and unlink) cases whose sel is already claimed or
 * cancelled. A waiter, once woken, locks each of its channels in turn to
 * unlink its remaining cases: taking the lock also waits out any completer
 * still looking at a case of ours, so the stack frame can then go.
 *
 * select locks all its channels at once, in address order (duplicates
 * once), polls the cases in a random order, and only then queues. A
 * channel lock is taken before a context's node lock (registering the
 * waitrec); nothing takes them the other way round.
 *
 * Blocked callers spin on their word for a few microseconds before they
 * park: a partner on the other CPU usually arrives within that. A waiter
 * that parks says so (PARKED) first, and a completer makes the wake system
 * call only then: a hand-over to a spinning partner costs no system call.
 */
#include "sync_int.h"

#include <errno.h>
#include <string.h>

#define CLAIMED    1u
#define READY      2u
#define CANCELLED  4u
#define PARKED     8u /* the waiter sleeps on the futex: wake it */
#define SELECT_MAX 64
#define SPIN_FOR   (20 * CTX_MICROSECOND)

struct sel {
    _Atomic uint32_t word;
    size_t chosen; /* written by the claimer before READY */
    int result;    /* likewise: 0 or EPIPE */
};

struct cw {
    struct cw *next;   /* guarded by the channel's lock */
    struct cw **pprev; /* NULL once out of the queue */
    struct sel *sel;
    size_t idx;
    void *elem;
};

struct waitq {
    struct cw *head;
    struct cw **tail;
};

struct ctx_chan {
    ctx__spin_t lock;
    size_t cap;         /* immutable */
    size_t esize;       /* immutable */
    size_t first;       /* guarded by lock */
    size_t count;       /* guarded by lock */
    bool closed;        /* guarded by lock */
    bool draining;      /* guarded by lock */
    struct waitq sendq; /* guarded by lock */
    struct waitq recvq; /* guarded by lock */
    char *scratch;      /* one element, for ctx_chan_drain */
    char buf[];         /* cap elements */
};

int ctx_chan_new(size_t capacity, size_t elem_size, ctx_chan_t **out)
{
    ctx_chan_t *ch;
    size_t bytes;

    if (out)
        *out = NULL;
    if (elem_size == 0 || !out)
        return EINVAL;
    if (__builtin_mul_overflow(capacity + 1, elem_size, &bytes) ||
        capacity == SIZE_MAX || bytes > SIZE_MAX - sizeof *ch)
        return ENOMEM;
    ch = ctx__calloc(1, sizeof *ch + bytes);
    if (!ch)
        return ENOMEM;
    ch->cap = capacity;
    ch->esize = elem_size;
    ch->sendq.tail = &ch->sendq.head;
    ch->recvq.tail = &ch->recvq.head;
    ch->scratch = ch->buf + capacity * elem_size;
    *out = ch;
    return 0;
}

void ctx_chan_free(ctx_chan_t *ch)
{
    if (!ch)
        return;
    CTX_ASSERT(!ch->sendq.head && !ch->recvq.head); /* nobody blocked */
    ctx__free(ch);
}

/* ------------------------------------------------------------ queues */

static void q_push(struct waitq *q, struct cw *w)
{
    w->next = NULL;
    w->pprev = q->tail;
    *q->tail = w;
    q->tail = &w->next;
}

static void q_remove(struct waitq *q, struct cw *w)
{
    *w->pprev = w->next;
    if (w->next)
        w->next->pprev = w->pprev;
    else
        q->tail = w->pprev;
    w->pprev = NULL;
}

/* Unlink and return the first case that we could claim, or NULL. */
static struct cw *q_claim(struct waitq *q)
{
    struct cw *w;
    while ((w = q->head) != NULL) {
        uint32_t v = atomic_load_explicit(&w->sel->word, memory_order_relaxed);
        q_remove(q, w);
        /* Only PARKED may be set in a live case's word. */
        while (!(v & ~PARKED))
            if (atomic_compare_exchange_weak(&w->sel->word, &v, v | CLAIMED))
                return w;
        /* claimed by another channel, or cancelled: a stale case */
    }
    return NULL;
}

/* Complete a claimed case; returns the word to wake (after unlocking), or
 * NULL when its waiter is not asleep. */
static _Atomic uint32_t *complete(struct cw *w, int result)
{
    struct sel *s = w->sel;
    s->chosen = w->idx;
    s->result = result;
    if (atomic_fetch_or_explicit(&s->word, READY, memory_order_acq_rel) &
        PARKED)
        return &s->word; /* s may be gone once we unlock: address only */
    return NULL;
}

static inline char *slot(ctx_chan_t *ch, size_t i)
{
    return ch->buf + ((ch->first + i) % ch->cap) * ch->esize;
}

/* ------------------------------------------------------------ one op */

/*
 * Try to do one operation now, with ch locked. Returns 0 or EPIPE if it
 * happened, EAGAIN if it would block; *wake is a word to wake afterwards.
 */
static int try_send(ctx_chan_t *ch, const void *elem, _Atomic uint32_t **wake)
    CTX_REQUIRES(ch->lock)
{
    struct cw *w;
    if (ch->closed)
        return EPIPE;
    if ((w = q_claim(&ch->recvq)) != NULL) {
        memcpy(w->elem, elem, ch->esize);
        *wake = complete(w, 0);
        return 0;
    }
    if (ch->count < ch->cap) {
        memcpy(slot(ch, ch->count), elem, ch->esize);
        ch->count++;
        return 0;
    }
    return EAGAIN;
}

static int try_recv(ctx_chan_t *ch, void *elem, _Atomic uint32_t **wake)
    CTX_REQUIRES(ch->lock)
{
    struct cw *w;
    if (ch->count > 0) {
        memcpy(elem, slot(ch, 0), ch->esize);
        ch->first = (ch->first + 1) % ch->cap;
        ch->count--;
        /* A blocked sender's element moves into the freed place. */
        if ((w = q_claim(&ch->sendq)) != NULL) {
            memcpy(slot(ch, ch->count), w->elem, ch->esize);
            ch->count++;
            *wake = complete(w, 0);
        }
        return 0;
    }
    if ((w = q_claim(&ch->sendq)) != NULL) { /* rendezvous */
        memcpy(elem, w->elem, ch->esize);
        *wake = complete(w, 0);
        return 0;
    }
    return ch->closed ? EPIPE : EAGAIN;
}

static int try_op(ctx_chan_op_t *op, _Atomic uint32_t **wake)
    CTX_REQUIRES(op->ch->lock)
{
    return op->dir == CTX_CHAN_SEND ? try_send(op->ch, op->elem, wake)
                                    : try_recv(op->ch, op->elem, wake);
}

static void wake(_Atomic uint32_t *w)
{
    if (w)
        ctx__futex_wake(w, 1);
}

/* ------------------------------------------------------------ select */

static _Thread_local uint64_t rnd;

static size_t rand_below(size_t n)
{
    uint64_t x = rnd ? rnd : (uint64_t)(uintptr_t)&rnd | 1;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    rnd = x;
    return (size_t)(x % n);
}

/* The distinct channels of ops, in address order: the lock order. */
static size_t lock_order(const ctx_chan_op_t *ops, size_t n, ctx_chan_t **order)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        ctx_chan_t *ch = ops[i].ch;
        size_t j;
        if (!ch)
            continue;
        for (j = m; j > 0 && order[j - 1] > ch; j--)
            ;
        if (j > 0 && order[j - 1] == ch)
            continue;
        memmove(&order[j + 1], &order[j], (m - j) * sizeof *order);
        order[j] = ch;
        m++;
    }
    return m;
}

static void lock_all(ctx_chan_t **order, size_t m) CTX_NO_TSA
{
    for (size_t i = 0; i < m; i++)
        ctx__spin_lock(&order[i]->lock);
}

static void unlock_all(ctx_chan_t **order, size_t m) CTX_NO_TSA
{
    for (size_t i = m; i > 0; i--)
        ctx__spin_unlock(&order[i - 1]->lock);
}

static const char *op_name(const ctx_chan_op_t *op)
{
    return op->dir == CTX_CHAN_SEND ? "channel send" : "channel receive";
}

/*
 * The body of every channel operation: poll in random order, then (if
 * `c`) queue a case on every channel and wait for one to complete.
 */
static int do_select(ctx_t *c, ctx_chan_op_t *ops, size_t n,
                     size_t *chosen) CTX_NO_TSA
{
    ctx_chan_t *order[SELECT_MAX];
    size_t perm[SELECT_MAX];
    struct cw cws[SELECT_MAX];
    struct sel s;
    struct ctx__waitrec wr;
    _Atomic uint32_t *w = NULL;
    size_t m;
    uint32_t v;
    int rc;

    *chosen = n;
    for (size_t i = 0; i < n; i++) {
        size_t j = rand_below(i + 1); /* inside-out Fisher-Yates */
        perm[i] = perm[j];
        perm[j] = i;
    }
    m = lock_order(ops, n, order);
    lock_all(order, m);
    for (size_t k = 0; k < n; k++) {
        ctx_chan_op_t *op = &ops[perm[k]];
        if (!op->ch)
            continue;
        rc = try_op(op, &w);
        if (rc != EAGAIN) {
            unlock_all(order, m);
            wake(w);
            *chosen = perm[k];
            return rc;
        }
    }
    if (!c) {
        unlock_all(order, m);
        return EAGAIN;
    }
    if (m == 0) { /* only nil channels: wait for the context alone */
        unlock_all(order, m);
        ctx__wait_until(c, CTX_NO_DEADLINE);
        return ctx_err(c);
    }
    atomic_init(&s.word, 0);
    wr.word = &s.word;
    wr.bit = CANCELLED;
    wr.fd = -1;
    wr.stamp = NULL;
    if ((rc = ctx__wait_register(c, &wr)) != 0) {
        unlock_all(order, m);
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        ctx_chan_op_t *op = &ops[i];
        cws[i].pprev = NULL;
        if (!op->ch)
            continue;
        cws[i].sel = &s;
        cws[i].idx = i;
        cws[i].elem = op->elem;
        q_push(op->dir == CTX_CHAN_SEND ? &op->ch->sendq : &op->ch->recvq,
               &cws[i]);
    }
    unlock_all(order, m);

    ctx__note_wait(n == 1 ? op_name(&ops[0]) : "channel select",
                   n == 1 ? (const void *)ops[0].ch : (const void *)ops);
    {
        ctx_time_t until = ctx__real_now() + SPIN_FOR;
        for (unsigned i = 1; !(atomic_load(&s.word) & (READY | CANCELLED));
             i++) {
            ctx__cpu_relax();
            if (i % 64 == 0 && ctx__real_now() >= until)
                break;
        }
    }
    for (;;) {
        v = atomic_load_explicit(&s.word, memory_order_acquire);
        if ((v & READY) || ((v & CANCELLED) && !(v & CLAIMED)))
            break;
        ctx__park(&s.word, v, PARKED);
    }
    ctx__note_done();

    lock_all(order, m);
    for (size_t i = 0; i < n; i++) {
        if (cws[i].pprev) {
            ctx_chan_t *ch = ops[i].ch;
            q_remove(ops[i].dir == CTX_CHAN_SEND ? &ch->sendq : &ch->recvq,
                     &cws[i]);
        }
    }
    unlock_all(order, m);
    ctx__wait_unregister(c, &wr);
    if (v & READY) {
        *chosen = s.chosen;
        return s.result;
    }
    return ctx_err(c);
}

static int check_ops(const ctx_chan_op_t *ops, size_t n)
{
    if (!ops || n == 0 || n > SELECT_MAX)
        return EINVAL;
    for (size_t i = 0; i < n; i++)
        if ((ops[i].dir != CTX_CHAN_SEND && ops[i].dir != CTX_CHAN_RECV) ||
            !ops[i].elem)
            return EINVAL;
    return 0;
}

int ctx_chan_select(ctx_t *c, ctx_chan_op_t *ops, size_t n, size_t *chosen)
{
    int rc;
    if (chosen)
        *chosen = n;
    if (!c || !chosen || (rc = check_ops(ops, n)) != 0)
        return EINVAL;
    if (ctx_done(c))
        return ctx_err(c);
    return do_select(c, ops, n, chosen);
}

int ctx_chan_try_select(ctx_chan_op_t *ops, size_t n, size_t *chosen)
{
    int rc;
    if (chosen)
        *chosen = n;
    if (!chosen || (rc = check_ops(ops, n)) != 0)
        return EINVAL;
    return do_select(NULL, ops, n, chosen);
}

/* ------------------------------------------------------------ send/recv */

/* One operation: a locked fast path, then the general one. */
static int one(ctx_chan_t *ch, ctx_t *c, int dir, void *elem) CTX_NO_TSA
{
    ctx_chan_op_t op = {ch, dir, elem};
    _Atomic uint32_t *w = NULL;
    size_t chosen;
    int rc;

    if (c && ctx_done(c))
        return ctx_err(c);
    ctx__spin_lock(&ch->lock);
    rc = try_op(&op, &w);
    ctx__spin_unlock(&ch->lock);
    wake(w);
    if (rc != EAGAIN || !c)
        return rc;
    return do_select(c, &op, 1, &chosen);
}

int ctx_chan_send(ctx_chan_t *ch, ctx_t *c, const void *elem)
{
    if (!ch || !c || !elem)
        return EINVAL;
    return one(ch, c, CTX_CHAN_SEND, (void *)elem);
}

int ctx_chan_recv(ctx_chan_t *ch, ctx_t *c, void *elem)
{
    if (!ch || !c || !elem)
        return EINVAL;
    return one(ch, c, CTX_CHAN_RECV, elem);
}

int ctx_chan_try_send(ctx_chan_t *ch, const void *elem)
{
    if (!ch || !elem)
        return EINVAL;
    return one(ch, NULL, CTX_CHAN_SEND, (void *)elem);
}

int ctx_chan_try_recv(ctx_chan_t *ch, void *elem)
{
    if (!ch || !elem)
        return EINVAL;
    return one(ch, NULL, CTX_CHAN_RECV, elem);
}

/* ------------------------------------------------------------ closing */

/* Complete every queued case of q with EPIPE. */
static void close_queue(struct waitq *q)
{
    struct cw *w;
    while ((w = q_claim(q)) != NULL)
        wake(complete(w, EPIPE)); /* under the lock: no list to keep */
}

void ctx_chan_close(ctx_chan_t *ch)
{
    if (!ch)
        return;
    ctx__spin_lock(&ch->lock);
    if (!ch->closed) {
        ch->closed = true;
        close_queue(&ch->recvq); /* empty, or they would have taken */
        close_queue(&ch->sendq);
    }
    ctx__spin_unlock(&ch->lock);
}

size_t ctx_chan_drain(ctx_chan_t *ch, void (*fn)(void *elem, void *arg),
                      void *arg)
{
    size_t n = 0;

    if (!ch)
        return 0;
    ctx_chan_close(ch);
    ctx__spin_lock(&ch->lock);
    if (ch->draining) { /* another thread drains it all */
        ctx__spin_unlock(&ch->lock);
        return 0;
    }
    ch->draining = true;
    while (ch->count > 0) {
        memcpy(ch->scratch, slot(ch, 0), ch->esize);
        ch->first = (ch->first + 1) % ch->cap;
        ch->count--;
        ctx__spin_unlock(&ch->lock);
        if (fn)
            fn(ch->scratch, arg);
        n++;
        ctx__spin_lock(&ch->lock);
    }
    ch->draining = false;
    ctx__spin_unlock(&ch->lock);
    return n;
}

size_t ctx_chan_len(ctx_chan_t *ch)
{
    size_t n;
    if (!ch)
        return 0;
    ctx__spin_lock(&ch->lock);
    n = ch->count;
    ctx__spin_unlock(&ch->lock);
    return n;
}

size_t ctx_chan_cap(ctx_chan_t *ch)
{
    return ch ? ch->cap : 0;
}

size_t ctx__chan_elem_size(ctx_chan_t *ch)
{
    return ch->esize;
}
