/* SPDX-License-Identifier: MIT */
/*
 * Cancellation: marking a context done and propagating that to every
 * descendant, iteratively.
 *
 * DESIGN
 *
 * One cancellation visits the subtree in breadth-first order with an
 * explicit FIFO of links, threaded through the `next` field of each link
 * it has detached, so it needs no memory and no stack beyond a constant.
 *
 * Visiting a node X: take X's lock; if X is done already, stop (whoever
 * made it done handled its subtree). Otherwise write the code and cause,
 * take X's whole child list, and for each link:
 *  - an after-function registration is marked QUEUED and set aside, to run
 *    once the whole tree is marked;
 *  - a child that is a leaf (no children, no waiters, no eventfd, no
 *    timer) is marked done right there, under X's lock then its own (the
 *    parent-before-child order): no reference taken, nothing queued. This
 *    is the common case of a wide fan-out, and costs one CAS per child;
 *  - any other child is queued with a reference taken (tryget), so it
 *    stays valid after X's lock is dropped. A child whose count already
 *    reached 0 is being freed: it waits for X's lock to unlink itself, so
 *    it is simply detached and skipped.
 * Each detached link gets pprev = 0 (release) after the last access to
 * its owner, which is what lets a dying child skip X's lock (ctx.c).
 * Then X is unlocked with the error stored: that release store publishes
 * code and cause. After the unlock, with no lock held, X's waiters are
 * woken (futex), its eventfd is written, and its timer disarmed.
 *
 * The cause text is shared by every node of the tree. Rather than one
 * atomic increment per node, the canceller adds a large bias first,
 * counts the references it hands out, and settles the difference once at
 * the end; the count cannot reach 0 in between.
 *
 * After-functions run last, on this thread, with no lock held, in
 * registration order for each context and tree order across contexts.
 */
#include "ctx_int.h"

#define TEXT_BIAS ((uint64_t)1 << 40)

struct cancel {
    int err;
    int code;
    struct ctx_text *why;
    uint64_t used; /* references to `why` handed to nodes */
};

/* FIFO of detached links; each `next` holds the next link | its kind. */
struct work {
    struct ctx_link *head;
    struct ctx_link **tail;
};

/* FIFO of queued after-function registrations, through link.next. */
struct runq {
    struct ctx_link *head;
    struct ctx_link **tail;
};

static inline void work_push(struct work *w, struct ctx_link *l, unsigned k)
{
    l->next = NULL;
    *w->tail = (struct ctx_link *)((uintptr_t)l | k);
    w->tail = &l->next;
}

static inline struct ctx_link *work_pop(struct work *w, unsigned *k)
{
    uintptr_t v = (uintptr_t)w->head;
    struct ctx_link *l;
    if (!v)
        return NULL;
    l = (struct ctx_link *)(v & ~(uintptr_t)LK_MASK);
    *k = (unsigned)(v & LK_MASK);
    w->head = l->next;
    if (!w->head)
        w->tail = &w->head;
    return l;
}

static inline struct ctx *owner_of(struct ctx_link *l, unsigned k)
{
    if (k == LK_MERGE)
        return ctx__container_of(l, struct ctx_mlink, link)->owner;
    return ctx__container_of(l, struct ctx, link);
}

/* Write code and cause into x, whose lock is held; s is its word. */
static inline void mark(struct ctx *x, uint32_t s, struct cancel *cv)
{
    x->code = cv->code;
    if (cv->why) {
        cv->used++;
        if (s & S_EXT)
            ((struct ctx_ext *)(atomic_load_explicit(&x->cause,
                                                     memory_order_relaxed) &
                                ~(uintptr_t)1))
                ->why = cv->why;
        else
            atomic_store_explicit(&x->cause, (uintptr_t)cv->why,
                                  memory_order_relaxed);
    }
}

/*
 * Mark the leaf child y done under its parent's lock. Returns 1 if y is
 * done now (by us or earlier), 0 if it needs a full visit.
 */
static int leaf(struct ctx *y, struct cancel *cv)
{
    uint32_t s = node_lock(y);
    if (s & S_ERR_MASK) {
        node_unlock(y, s);
        return 1;
    }
    if (y->children || (s & (S_WAITERS | S_EXT | K_TIMED))) {
        node_unlock(y, s);
        return 0;
    }
    mark(y, s, cv);
    node_unlock(y, s | (uint32_t)cv->err);
    ctx__count(CTX__C_CANCELS, 1);
    return 1;
}

/*
 * Visit x (see DESIGN). Returns x's word as it was when locked, or 0 if x
 * was done already or can never be done.
 */
static uint32_t take(struct ctx *x, struct cancel *cv, struct work *w,
                     struct runq *rq)
{
    struct ctx_link *afters = NULL, *last = NULL;
    struct ctx_link *l;
    uint32_t s = node_lock(x);

    if (s & (S_ERR_MASK | K_NOCANCEL)) {
        node_unlock(x, s);
        return 0;
    }
    mark(x, s, cv);
    l = x->children;
    x->children = NULL;
    while (l) {
        struct ctx_link *next = l->next;
        unsigned k =
            link_kind(atomic_load_explicit(&l->pprev, memory_order_relaxed));
        if (k == LK_AFTER) {
            struct ctx_after *a = (struct ctx_after *)(void *)l;
            atomic_store_explicit(&a->runner, ctx__self(),
                                  memory_order_relaxed);
            atomic_store_explicit(&a->state, AF_QUEUED, memory_order_relaxed);
            /* The list is newest first: pushing reverses it. */
            l->next = afters;
            afters = l;
            if (!last)
                last = l;
        } else {
            struct ctx *y = owner_of(l, k);
            if (!leaf(y, cv) && ctx__tryget(y))
                work_push(w, l, k);
        }
        atomic_store_explicit(&l->pprev, 0, memory_order_release);
        l = next;
    }
    node_unlock(x, (s & ~S_WAITERS) | (uint32_t)cv->err);
    ctx__count(CTX__C_CANCELS, 1);
    if (afters) {
        *rq->tail = afters;
        rq->tail = &last->next;
    }
    return s;
}

/* Tell the world about x, just made done; we hold a reference to it. */
static void notify(struct ctx *x, uint32_t s)
{
    if (s & S_WAITERS)
        ctx__futex_wake_all(&x->state);
    if (s & S_EXT)
        ctx__ext_signal(
            (struct ctx_ext *)(atomic_load_explicit(&x->cause,
                                                    memory_order_acquire) &
                               ~(uintptr_t)1));
    if (s & K_TIMED)
        ctx__timer_disarm(ctx__container_of(x, struct ctx_timed, c));
}

int ctx__cancel(struct ctx *c, int err, int code, struct ctx_text *why)
{
    struct cancel cv = {err, code, why, 0};
    struct work w = {NULL, NULL};
    struct runq rq = {NULL, NULL};
    uint32_t s;
    int did = 0;

    w.tail = &w.head;
    rq.tail = &rq.head;
    if (why)
        atomic_fetch_add_explicit(&why->refs, TEXT_BIAS, memory_order_relaxed);
    if ((s = take(c, &cv, &w, &rq)) != 0) {
        struct ctx_link *l;
        unsigned k;
        did = 1;
        notify(c, s);
        while ((l = work_pop(&w, &k)) != NULL) {
            struct ctx *y = owner_of(l, k);
            if ((s = take(y, &cv, &w, &rq)) != 0)
                notify(y, s);
            ctx_release(y);
        }
    }
    if (why) {
        uint64_t drop = TEXT_BIAS + 1 - cv.used;
        if (atomic_fetch_sub_explicit(&why->refs, drop, memory_order_acq_rel) ==
            drop)
            ctx__free(why);
    }
    ctx__after_run(rq.head);
    return did;
}

void ctx_cancel(ctx_t *c)
{
    ctx_cancel_cause(c, ECANCELED, NULL);
}

void ctx_cancel_cause(ctx_t *c, int code, const char *why)
{
    struct ctx_text *t = NULL;

    if (!c || (state_of(c) & (S_ERR_MASK | K_NOCANCEL)))
        return;
    if (code == 0)
        code = ECANCELED;
    if (why)
        t = ctx__text_new(why); /* NULL when out of memory: no text */
    ctx__cancel(c, ECANCELED, code, t);
}
