/* SPDX-License-Identifier: MIT */
/*
 * Cancellation: marking a context done and propagating that to every
 * descendant, iteratively.
 *
 * DESIGN
 *
 * A depth-first walk with an explicit stack, in which each context stays
 * locked from the moment it is marked done until its whole subtree is. As
 * in Go, where cancel holds the parent's mutex while it cancels the
 * children, anyone else who needs that lock (a second ctx_cancel, a new
 * child, ctx_fd, a child being freed) waits for the subtree, so "c and all
 * of its descendants are done before ctx_cancel returns" holds for every
 * caller, not only the first.
 *
 * Opening a node X (locked, not done): write code and cause, publish the
 * error with a release store that keeps the lock bit (readers of ctx_err
 * see it at once), wake the threads parked in ctx_wait, write the
 * eventfd. Then walk X's list once:
 *  - an after-function registration is marked QUEUED and set aside, to
 *    run once the whole tree is marked;
 *  - a wait registration of a blocked primitive gets its bit set in its
 *    word and is woken (its owner unregisters under X's lock, so the
 *    record outlives our use of it);
 *  - a child Y is locked (parent before child); if it has no children it
 *    is opened and closed at once (the common leaf of a wide fan-out costs
 *    one CAS), else it is unlocked again and kept in X's list, which then
 *    holds only the subtrees to descend into, one at a time: a child is
 *    locked again, opened and walked when the walk descends into it.
 * Closing a node unlocks it and disarms its timer. Only then does its link
 * in the parent get pprev = 0 (release): until that store, a thread
 * freeing the node finds the link in place and waits for the parent's
 * lock, which we hold, so no reference needs to be taken on the way
 * down; after it, the node is no longer ours.
 *
 * The stack is threaded through the `next` field of the link by which each
 * node was reached (free once the link is off the parent's list; its kind
 * tag in pprev still holds, as it is detached only when popped): no
 * memory, no recursion, whatever the depth.
 *
 * Deadlock freedom: node locks are taken parent before child, and a walk
 * holds only the nodes of one path of the DAG of contexts. Two walks meet only
 * at a merged context, which the later one waits for; everything the earlier
 * one will still lock lies below it, where the later one holds nothing. The
 * timer lock is taken under node locks (disarming), never the other way round.
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

/* FIFO of queued after-function registrations, through link.next. */
struct runq {
    struct ctx__link *head;
    struct ctx__link **tail;
};

static inline struct ctx *owner_of(struct ctx__link *l, unsigned k)
{
    if (k == LK_MERGE)
        return ctx__container_of(l, struct ctx_mlink, link)->owner;
    return ctx__container_of(l, struct ctx, link);
}

/* Mark x (locked, word s) done and tell its waiters; x stays locked. */
static void open_node(struct ctx *x, uint32_t s, struct cancel *cv)
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
    atomic_store_explicit(&x->state,
                          (s & ~S_WAITERS) | S_LOCK | (uint32_t)cv->err,
                          memory_order_release);
    if (s & S_WAITERS)
        ctx__futex_wake_all(&x->state);
    if (s & S_EXT)
        ctx__ext_signal(
            (struct ctx_ext *)(atomic_load_explicit(&x->cause,
                                                    memory_order_relaxed) &
                               ~(uintptr_t)1));
    ctx__count(CTX__C_CANCELS, 1);
}

/* Unlock x, opened by us and with its list walked, and disarm its timer. */
static void close_node(struct ctx *x)
{
    node_unlock(x, atomic_load_explicit(&x->state, memory_order_relaxed));
    if (atomic_load_explicit(&x->state, memory_order_relaxed) & K_TIMED)
        ctx__timer_disarm(ctx__container_of(x, struct ctx_timed, c));
}

static inline void detach(struct ctx__link *l)
{
    atomic_store_explicit(&l->pprev, 0, memory_order_release);
}

/*
 * Walk x's list once, x locked and opened: queue its after-functions (the
 * list is newest first; they are queued oldest first), wake its wait
 * registrations, and open and close its leaf children on the spot. What
 * is left in x->children, chained through `next`, are the children with
 * children of their own, to descend into one at a time (only the path of
 * the walk is ever locked); their links stay in place (pprev not 0) until
 * their subtrees are done.
 */
static void walk(struct ctx *x, struct cancel *cv, struct runq *rq)
{
    struct ctx__link *l = x->children, *afters = NULL, *last = NULL;
    struct ctx__link **keep = &x->children;

    while (l) {
        struct ctx__link *next = l->next;
        unsigned k =
            link_kind(atomic_load_explicit(&l->pprev, memory_order_relaxed));
        if (k == LK_AFTER) {
            struct ctx_after *a = (struct ctx_after *)(void *)l;
            atomic_store_explicit(&a->runner, ctx__self(),
                                  memory_order_relaxed);
            atomic_store_explicit(&a->state, AF_QUEUED, memory_order_relaxed);
            detach(l);
            l->next = afters;
            afters = l;
            if (!last)
                last = l;
        } else if (k == LK_WAIT) {
            struct ctx__waitrec *wr =
                ctx__container_of(l, struct ctx__waitrec, link);
            detach(l);
            if (wr->stamp)
                atomic_store_explicit(wr->stamp, ctx__real_now(),
                                      memory_order_relaxed);
            if (wr->word) {
                atomic_fetch_or(wr->word, wr->bit);
                ctx__futex_wake_all(wr->word);
            }
            if (wr->fd >= 0)
                ctx__eventfd_signal(wr->fd);
        } else {
            struct ctx *y = owner_of(l, k);
            uint32_t sy = node_lock(y);
            if (sy & S_ERR_MASK) { /* done by someone else, wholly */
                node_unlock(y, sy);
                detach(l);
            } else if (!y->children) { /* a leaf: done here */
                open_node(y, sy, cv);
                close_node(y);
                detach(l);
            } else { /* kept, unlocked, for the descent */
                node_unlock(y, sy);
                *keep = l;
                keep = &l->next;
            }
        }
        l = next;
    }
    *keep = NULL;
    if (afters) {
        *rq->tail = afters;
        rq->tail = &last->next;
    }
}

int ctx__cancel(struct ctx *c, int err, int code, struct ctx_text *why)
{
    struct cancel cv = {err, code, why, 0};
    struct runq rq = {NULL, NULL};
    struct ctx__link *frames = NULL; /* links of the nodes above c */
    struct ctx *t = c;
    uint32_t s;
    int did = 0;

    rq.tail = &rq.head;
    if (why)
        atomic_fetch_add_explicit(&why->refs, TEXT_BIAS, memory_order_relaxed);
    s = node_lock(c);
    if (s & (S_ERR_MASK | K_NOCANCEL)) {
        node_unlock(c, s);
    } else {
        did = 1;
        open_node(c, s, &cv);
        walk(c, &cv, &rq);
        for (;;) {
            struct ctx__link *l = t->children;
            if (l) { /* descend into the next pending child */
                struct ctx *y =
                    owner_of(l, link_kind(atomic_load_explicit(
                                    &l->pprev, memory_order_relaxed)));
                uint32_t sy;
                t->children = l->next;
                sy = node_lock(y);
                if (sy & S_ERR_MASK) { /* cancelled meanwhile, wholly */
                    node_unlock(y, sy);
                    detach(l);
                    continue;
                }
                open_node(y, sy, &cv);
                walk(y, &cv, &rq);
                l->next = frames; /* free now: the stack's link */
                frames = l;
                t = y;
                continue;
            }
            /* t's list is empty: its subtree is done. */
            close_node(t);
            if (!frames)
                break;
            l = frames;
            frames = l->next;
            detach(l); /* after this store, t is not ours */
            /* A link on the stack is not detached yet: its tag holds. */
            t = frames ? owner_of(frames,
                                  link_kind(atomic_load_explicit(
                                      &frames->pprev, memory_order_relaxed)))
                       : c;
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
    uint32_t s;

    if (!c)
        return;
    s = state_of(c);
    /* Done and unlocked: its propagation is over. Done but locked: it may
     * still be running, and ctx__cancel waits for it on the lock. */
    if ((s & K_NOCANCEL) || ((s & S_ERR_MASK) && !(s & S_LOCK)))
        return;
    if (code == 0)
        code = ECANCELED;
    if (why)
        t = ctx__text_new(why); /* NULL when out of memory: no text */
    ctx__cancel(c, ECANCELED, code, t);
}
