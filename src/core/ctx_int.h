/* SPDX-License-Identifier: MIT */
/*
 * Private layout of contexts and the per-node lock, shared by the files of
 * src/core/. Nothing outside the core may include this.
 *
 * DESIGN
 *
 * State word. Every context has one 32-bit atomic `state`: the error in
 * bits 0-7 (0, ECANCELED, ETIMEDOUT), a lock bit, a "someone waits" bit,
 * an "has an eventfd" bit, and immutable kind bits. ctx_err is one acquire
 * load of it. The word is also the futex ctx_wait parks on.
 *
 * Node lock. LOCK is a bit of the state word taken with a CAS. While it is
 * held nobody else writes the word (every writer either holds the lock or
 * CASes from a value without LOCK), so unlocking is a plain release store
 * of the word the holder computed, which is how cancellation publishes the
 * error: code and cause are written first, then the store makes them
 * visible (release) to any thread that sees the error (acquire).
 *
 * Lock order: a parent's lock before a child's (the graph of contexts is a
 * DAG ordered by creation, so this is a partial order); the timer mutex
 * before any node lock; never the timer mutex while a node lock is held.
 * No lock is held while user code (after-functions, free_value) runs.
 *
 * Children. A parent keeps an intrusive doubly linked list of links
 * (`children`), each one of: the primary link embedded in a child, one of
 * the links of a merged context (one per parent), or an after-function
 * registration. The kind is tagged in the low bits of `pprev`; pprev == 0
 * means "not linked", and once a link is detached (by release, or by a
 * cancellation that takes the parent's whole list) it is never relinked.
 * Unlinking is O(1) through pprev; a parent never scans its siblings.
 *
 * Lifetime. A child holds a reference to each parent; a parent holds none
 * on its children: a child whose count reaches 0 first takes its parent's
 * lock to unlink itself, so a node found in a list under the parent's lock
 * is still valid memory. A registration holds a reference to its context.
 */
#ifndef CTX_CORE_INT_H
#define CTX_CORE_INT_H

#include "internal.h"

#include <errno.h>

/* ------------------------------------------------------------ state word */

#define S_ERR_MASK 0xffu
#define S_LOCK     (1u << 8)
#define S_WAITERS  (1u << 9)  /* a thread is (about to be) parked on state */
#define S_EXT      (1u << 10) /* `cause` points to a struct ctx_ext */

/* Kind bits: set at creation, never changed. */
#define K_STATIC   (1u << 16) /* background, todo: not reference-counted */
#define K_NOCANCEL (1u << 17) /* never done: statics and without_cancel */
#define K_TIMED    (1u << 18) /* struct ctx_timed: owns a timer */
#define K_VALUE    (1u << 19) /* struct ctx_valued */
#define K_MERGE    (1u << 20) /* struct ctx_merged: no primary parent */

/* Link kinds, tagged in the low bits of pprev. */
#define LK_CHILD 0u
#define LK_MERGE 1u
#define LK_AFTER 2u
#define LK_WAIT  3u /* a struct ctx__waitrec of a blocked primitive */
#define LK_MASK  3u

/* A cause text shared by every context a cancellation reached. */
struct ctx_text {
    _Atomic uint64_t refs;
    char s[];
};

/* Made by ctx_fd: the eventfd; the cause text moves here. */
struct ctx_ext {
    struct ctx_text *why; /* written under the node lock before S_ERR */
    int fd;               /* immutable */
};

struct ctx {
    _Atomic uint32_t state;     /* see above */
    _Atomic uint32_t refs;      /* ignored for K_STATIC */
    struct ctx *parent;         /* immutable; NULL for statics and merges */
    struct ctx__link link;      /* in parent->children (LK_CHILD) */
    struct ctx__link *children; /* guarded by the lock; once refs == 0, the
                                  link of the free list */
    _Atomic uintptr_t cause;    /* struct ctx_text *, or ctx_ext * | 1 when
                                   S_EXT; set before S_ERR is published */
    int code;                   /* cause code; set before S_ERR is published */
};

struct ctx_timed {
    struct ctx c;
    ctx_time_t when; /* immutable: the deadline */
    uint64_t seq;    /* immutable: arming order, breaks ties */
    uint32_t idx;    /* guarded by the timer mutex: heap slot or NO_SLOT */
    int dl_code;     /* immutable: cause when the deadline fires */
    struct ctx_text *dl_why; /* immutable */
};

#define TIMER_NO_SLOT UINT32_MAX

struct ctx_valued {
    struct ctx c;
    const void *key; /* immutable */
    void *value;
    void (*free_value)(void *);
};

struct ctx_mlink {
    struct ctx__link link; /* in parent->children (LK_MERGE) */
    struct ctx *owner;     /* immutable: the merged context */
    struct ctx *parent;    /* immutable; holds a reference */
};

struct ctx_merged {
    struct ctx c;
    ctx_time_t deadline; /* immutable: earliest of the parents' */
    size_t n;
    struct ctx_mlink links[];
};

/* ctx_after states; AF_STOPPED may be or-ed into QUEUED and RUNNING. */
#define AF_LINKED  1u /* in c->children, cancel not seen */
#define AF_NEVER   2u /* c can never be done: not linked */
#define AF_QUEUED  3u /* detached by a canceller, will run */
#define AF_RUNNING 4u /* fn is running on `runner` */
#define AF_DONE    5u /* fn returned; nothing touches it but its owner */
#define AF_MASK    7u
#define AF_STOPPED 8u  /* ctx_after_stop was called on the runner thread */
#define AF_WAITED  16u /* a thread waits for AF_DONE on the futex */

struct ctx_after {
    struct ctx__link link; /* in c->children (LK_AFTER); then in a run list */
    struct ctx *c;         /* immutable; holds a reference */
    void (*fn)(void *);    /* immutable */
    void *arg;             /* immutable */
    _Atomic uint32_t state;
    _Atomic uintptr_t runner; /* thread that queued/runs it (ctx__self) */
};

/* ------------------------------------------------------------ node lock */

/* Take c's lock; returns the state word as it is while locked. */
static inline uint32_t node_lock(struct ctx *c)
{
    uint32_t s = atomic_load_explicit(&c->state, memory_order_relaxed);
    for (;;) {
        if (CTX_UNLIKELY(s & S_LOCK)) {
            ctx__spin_wait(&c->state, S_LOCK);
            s = atomic_load_explicit(&c->state, memory_order_relaxed);
            continue;
        }
        if (atomic_compare_exchange_weak_explicit(&c->state, &s, s | S_LOCK,
                                                  memory_order_acquire,
                                                  memory_order_relaxed))
            return s | S_LOCK;
    }
}

/* Release c's lock, leaving the word `s` (without LOCK). */
static inline void node_unlock(struct ctx *c, uint32_t s)
{
    atomic_store_explicit(&c->state, s & ~S_LOCK, memory_order_release);
}

static inline uint32_t state_of(const struct ctx *c)
{
    return atomic_load_explicit(&((struct ctx *)c)->state,
                                memory_order_acquire);
}

/* ------------------------------------------------------------ links */

static inline unsigned link_kind(uintptr_t pprev)
{
    return (unsigned)(pprev & LK_MASK);
}

static inline struct ctx__link **link_pp(uintptr_t pprev)
{
    return (struct ctx__link **)(pprev & ~(uintptr_t)LK_MASK);
}

/* Push `l` of kind `k` at the head of p's children. Requires p's lock. */
static inline void link_push(struct ctx *p, struct ctx__link *l, unsigned k)
{
    struct ctx__link *h = p->children;
    l->next = h;
    if (h)
        atomic_store_explicit(&h->pprev,
                              (uintptr_t)&l->next |
                                  link_kind(atomic_load_explicit(
                                      &h->pprev, memory_order_relaxed)),
                              memory_order_relaxed);
    atomic_store_explicit(&l->pprev, (uintptr_t)&p->children | k,
                          memory_order_release);
    p->children = l;
}

/* Remove a linked `l` from its parent's list. Requires the parent's lock. */
static inline void link_remove(struct ctx__link *l)
{
    uintptr_t pp = atomic_load_explicit(&l->pprev, memory_order_relaxed);
    struct ctx__link **prev = link_pp(pp);
    struct ctx__link *next = l->next;
    *prev = next;
    if (next)
        atomic_store_explicit(&next->pprev,
                              (uintptr_t)prev |
                                  link_kind(atomic_load_explicit(
                                      &next->pprev, memory_order_relaxed)),
                              memory_order_relaxed);
    atomic_store_explicit(&l->pprev, 0, memory_order_release);
}

/* ------------------------------------------------------------ texts */

struct ctx_text *ctx__text_new(const char *s);
void ctx__text_release(struct ctx_text *t);

static inline struct ctx_text *cause_text(uintptr_t cause)
{
    if (cause & 1)
        return ((struct ctx_ext *)(cause & ~(uintptr_t)1))->why;
    return (struct ctx_text *)cause;
}

/* ------------------------------------------------------------ internals */

/*
 * Cancel `c` and its subtree with error `err` and cause (code, why),
 * consuming one reference to `why` (which may be NULL). Returns 1 if it
 * made `c` done, 0 if `c` was done already or can never be done.
 */
int ctx__cancel(struct ctx *c, int err, int code, struct ctx_text *why);

/* Take a reference unless the count already reached 0. */
static inline int ctx__tryget(struct ctx *c)
{
    uint32_t r = atomic_load_explicit(&c->refs, memory_order_relaxed);
    while (r != 0) {
        if (atomic_compare_exchange_weak_explicit(&c->refs, &r, r + 1,
                                                  memory_order_relaxed,
                                                  memory_order_relaxed))
            return 1;
    }
    return 0;
}

/*
 * Run the after-function registrations queued by a cancellation, a list
 * of their links through `next` (after.c).
 */
void ctx__after_run(struct ctx__link *head);

/* Free a node whose count reached 0, and any parent that follows it. */
void ctx__free_chain(struct ctx *c);

/* Timer (timer.c). */
int ctx__timer_arm(struct ctx_timed *t);
void ctx__timer_disarm(struct ctx_timed *t);
uint64_t ctx__timer_seq(void);
ctx_time_t ctx__virtual_now(int *on);

/* Waiting (wait.c). */
void ctx__eventfd_signal(int fd);
void ctx__ext_signal(struct ctx_ext *e);
void ctx__ext_free(struct ctx_ext *e);

/*
 * Wait on the test clock (timer.c): as ctx__wait_until, or -1 if the test
 * clock is off (the caller then waits in real time).
 */
int ctx__vwait(struct ctx *c, ctx_time_t until);

/* Count a context of the given kind made (d = 1) or freed (d = -1). */
static inline void ctx__count_kind(uint32_t kind_bits, int64_t d)
{
    int i = (kind_bits & K_TIMED)      ? 1
            : (kind_bits & K_VALUE)    ? 2
            : (kind_bits & K_NOCANCEL) ? 3
            : (kind_bits & K_MERGE)    ? 4
                                       : 0;
    if (d > 0)
        ctx__count((enum ctx__counter)(CTX__C_NEW_PLAIN + i), d);
    else
        ctx__count((enum ctx__counter)(CTX__C_FREE_PLAIN + i), -d);
}

#endif /* CTX_CORE_INT_H */
