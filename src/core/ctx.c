/* SPDX-License-Identifier: MIT */
/*
 * Making contexts, reading them, and freeing them. Cancellation and its
 * propagation are in cancel.c; the layout and the locking rules are in
 * ctx_int.h.
 *
 * DESIGN
 *
 * Attaching. A new child is linked into its parent's list under the
 * parent's lock, after checking, under the same lock, that the parent is
 * not done: a cancellation either sees the child in the list or the child
 * sees the parent done and is born done with the parent's cause. Parents
 * that can never be done (the statics, ctx_without_cancel) are not linked
 * into at all, so the background is never a point of contention.
 *
 * Freeing. When a count reaches 0 the node is first unlinked from each
 * parent (taking that parent's lock only if the link is still in place: a
 * link detached by a cancellation stays detached, and its pprev of 0 is
 * published with release ordering after the canceller's last access to
 * the node). Only then is it unreachable and its fields ours. Freeing it
 * drops its references to its parents; a parent whose count reaches 0 is
 * unlinked in turn and joins a free list threaded through its `children`
 * field, so freeing a chain a million long is a loop, not a recursion.
 */
#include "ctx_int.h"

#include <string.h>

static struct ctx bg = {.state = K_STATIC | K_NOCANCEL, .refs = 1};
static struct ctx todo = {.state = K_STATIC | K_NOCANCEL, .refs = 1};

ctx_t *ctx_background(void)
{
    return &bg;
}

ctx_t *ctx_todo(void)
{
    return &todo;
}

/* The immutable kind bits; they never change, so relaxed is enough. */
static inline uint32_t kind_of(const struct ctx *c)
{
    return atomic_load_explicit(&((struct ctx *)c)->state,
                                memory_order_relaxed) &
           0xffff0000u;
}

static inline struct ctx_timed *timed(const struct ctx *c)
{
    return ctx__container_of(c, struct ctx_timed, c);
}

static inline struct ctx_valued *valued(const struct ctx *c)
{
    return ctx__container_of(c, struct ctx_valued, c);
}

static inline struct ctx_merged *merged(const struct ctx *c)
{
    return ctx__container_of(c, struct ctx_merged, c);
}

/* ------------------------------------------------------------ texts */

struct ctx_text *ctx__text_new(const char *s)
{
    size_t n = strlen(s) + 1;
    struct ctx_text *t = ctx__malloc(sizeof *t + n);
    if (!t)
        return NULL;
    atomic_init(&t->refs, 1);
    memcpy(t->s, s, n);
    return t;
}

void ctx__text_release(struct ctx_text *t)
{
    if (t && atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) == 1)
        ctx__free(t);
}

/* ------------------------------------------------------------ making */

static void node_init(struct ctx *c, uint32_t kind, struct ctx *parent)
{
    atomic_init(&c->state, kind);
    atomic_init(&c->refs, 1);
    c->parent = parent ? ctx_retain(parent) : NULL;
    c->link.next = NULL;
    atomic_init(&c->link.pprev, 0);
    c->children = NULL;
    atomic_init(&c->cause, 0);
    c->code = 0;
    ctx__count_kind(kind, 1);
}

/*
 * Link the new, not yet shared node `c` under `p`, or, if `p` is done,
 * make `c` done with p's error and cause.
 */
static void attach(struct ctx *c, struct ctx *p)
{
    uint32_t ps;

    if (kind_of(p) & K_NOCANCEL)
        return;
    ps = node_lock(p);
    if (ps & S_ERR_MASK) {
        struct ctx_text *t =
            cause_text(atomic_load_explicit(&p->cause, memory_order_relaxed));
        int code = p->code;
        if (t)
            atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
        node_unlock(p, ps);
        c->code = code;
        atomic_store_explicit(&c->cause, (uintptr_t)t, memory_order_relaxed);
        atomic_store_explicit(
            &c->state,
            atomic_load_explicit(&c->state, memory_order_relaxed) |
                (ps & S_ERR_MASK),
            memory_order_relaxed);
        ctx__count(CTX__C_CANCELS, 1);
        return;
    }
    link_push(p, &c->link, LK_CHILD);
    node_unlock(p, ps);
}

int ctx_with_cancel(ctx_t *parent, ctx_t **out)
{
    struct ctx *c;

    if (out)
        *out = NULL;
    if (!parent || !out)
        return EINVAL;
    c = ctx__malloc(sizeof *c);
    if (!c)
        return ENOMEM;
    node_init(c, 0, parent);
    attach(c, parent);
    *out = c;
    return 0;
}

/* The deadline c inherits or owns; CTX_NO_DEADLINE if none. */
static ctx_time_t deadline_of(const struct ctx *c)
{
    for (; c; c = c->parent) {
        uint32_t k = kind_of(c);
        if (k & K_TIMED)
            return timed(c)->when;
        if (k & K_MERGE)
            return merged(c)->deadline;
        if (k & K_NOCANCEL)
            break;
    }
    return CTX_NO_DEADLINE;
}

/*
 * The body of ctx_with_deadline*: `future` says the caller knows that `d`
 * is later than now (ctx_with_timeout with a positive timeout), which
 * saves a clock read.
 */
static int make_timed(ctx_t *parent, ctx_time_t d, int code, const char *why,
                      int future, ctx_t **out)
{
    struct ctx_text *t = NULL;
    struct ctx_timed *tc;
    int rc;

    if (out)
        *out = NULL;
    if (!parent || !out)
        return EINVAL;
    if (code == 0)
        code = ETIMEDOUT;
    if (d >= deadline_of(parent))
        return ctx_with_cancel(parent, out); /* the parent ends first */
    if (why && !(t = ctx__text_new(why)))
        return ENOMEM;
    tc = ctx__malloc(sizeof *tc);
    if (!tc) {
        ctx__text_release(t);
        return ENOMEM;
    }
    tc->when = d;
    tc->seq = 0;
    tc->idx = TIMER_NO_SLOT;
    tc->dl_code = code;
    tc->dl_why = t;
    node_init(&tc->c, K_TIMED, parent);
    attach(&tc->c, parent);
    if (!(state_of(&tc->c) & S_ERR_MASK)) {
        if (!future && d <= ctx_now()) {
            if (t)
                atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
            if (ctx__cancel(&tc->c, ETIMEDOUT, code, t))
                ctx__count(CTX__C_EXPIRIES, 1);
        } else if ((rc = ctx__timer_arm(tc)) != 0) {
            ctx_release(&tc->c);
            return rc;
        } else if (state_of(&tc->c) & S_ERR_MASK) {
            /* Cancelled between attach and arm: its disarm came first. */
            ctx__timer_disarm(tc);
        }
    }
    *out = &tc->c;
    return 0;
}

int ctx_with_deadline(ctx_t *parent, ctx_time_t deadline, ctx_t **out)
{
    return make_timed(parent, deadline, ETIMEDOUT, NULL, 0, out);
}

int ctx_with_deadline_cause(ctx_t *parent, ctx_time_t deadline, int code,
                            const char *why, ctx_t **out)
{
    return make_timed(parent, deadline, code, why, 0, out);
}

int ctx_with_timeout(ctx_t *parent, ctx_time_t timeout, ctx_t **out)
{
    if (timeout <= 0)
        return make_timed(parent, INT64_MIN, ETIMEDOUT, NULL, 0, out);
    return make_timed(parent, ctx__time_add(ctx_now(), timeout), ETIMEDOUT,
                      NULL, 1, out);
}

int ctx_with_value(ctx_t *parent, const void *key, void *value,
                   void (*free_value)(void *), ctx_t **out)
{
    struct ctx_valued *v;

    if (out)
        *out = NULL;
    if (!parent || !key || !out)
        return EINVAL;
    v = ctx__malloc(sizeof *v);
    if (!v)
        return ENOMEM;
    v->key = key;
    v->value = value;
    v->free_value = free_value;
    node_init(&v->c, K_VALUE, parent);
    attach(&v->c, parent);
    *out = &v->c;
    return 0;
}

int ctx_without_cancel(ctx_t *parent, ctx_t **out)
{
    struct ctx *c;

    if (out)
        *out = NULL;
    if (!parent || !out)
        return EINVAL;
    c = ctx__malloc(sizeof *c);
    if (!c)
        return ENOMEM;
    node_init(c, K_NOCANCEL, parent); /* values only: never linked */
    *out = c;
    return 0;
}

int ctx_merge(ctx_t *const *parents, size_t n, ctx_t **out)
{
    struct ctx_merged *m;
    ctx_time_t dl = CTX_NO_DEADLINE;

    if (out)
        *out = NULL;
    if (!parents || n == 0 || !out)
        return EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!parents[i])
            return EINVAL;
    if (n > (SIZE_MAX - sizeof *m) / sizeof m->links[0])
        return ENOMEM;
    m = ctx__malloc(sizeof *m + n * sizeof m->links[0]);
    if (!m)
        return ENOMEM;
    node_init(&m->c, K_MERGE, NULL);
    m->n = n;
    for (size_t i = 0; i < n; i++) {
        ctx_time_t d = deadline_of(parents[i]);
        if (d < dl)
            dl = d;
        m->links[i].link.next = NULL;
        atomic_init(&m->links[i].link.pprev, 0);
        m->links[i].owner = &m->c;
        m->links[i].parent = ctx_retain(parents[i]);
    }
    m->deadline = dl;
    /*
     * Link into each parent in order. Once linked into one, the node is
     * shared: a parent found done makes it done through ctx__cancel, under
     * its lock, and later parents are not linked at all.
     */
    for (size_t i = 0; i < n; i++) {
        struct ctx *p = parents[i];
        uint32_t ps;
        if (kind_of(p) & K_NOCANCEL)
            continue;
        ps = node_lock(p);
        if (ps & S_ERR_MASK) {
            struct ctx_text *t = cause_text(
                atomic_load_explicit(&p->cause, memory_order_relaxed));
            int code = p->code;
            if (t)
                atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
            node_unlock(p, ps);
            ctx__cancel(&m->c, (int)(ps & S_ERR_MASK), code, t);
            break;
        }
        link_push(p, &m->links[i].link, LK_MERGE);
        node_unlock(p, ps);
    }
    *out = &m->c;
    return 0;
}

/* ------------------------------------------------------------ reading */

/* The header maps these to inline loads; here are the real functions. */
#undef ctx_err
#undef ctx_done
_Static_assert(offsetof(struct ctx, state) == 0 && sizeof(uint32_t) == 4,
               "ctx.h's inline poll reads the state word at offset 0");
_Static_assert(S_ERR_MASK == 0xffu, "ctx.h's inline poll masks 0xff");
/* Sizes that keep a live child in one 64-byte malloc chunk (96 with a
 * deadline): glibc rounds a request of n bytes up to n + 8, in 16s. */
_Static_assert(sizeof(struct ctx) <= 56, "a child must fit 64 B");
_Static_assert(sizeof(struct ctx_timed) <= 88, "a deadline must fit 96 B");

int ctx_err(const ctx_t *c)
{
    if (!c)
        return EINVAL;
    return (int)(state_of(c) & S_ERR_MASK);
}

bool ctx_done(const ctx_t *c)
{
    return !c || (state_of(c) & S_ERR_MASK) != 0;
}

int ctx_cause(const ctx_t *c, const char **why)
{
    struct ctx_text *t;

    if (why)
        *why = NULL;
    if (!c)
        return EINVAL;
    if (!(state_of(c) & S_ERR_MASK))
        return 0;
    t = cause_text(
        atomic_load_explicit(&((struct ctx *)c)->cause, memory_order_acquire));
    if (why && t)
        *why = t->s;
    return c->code;
}

bool ctx_deadline(const ctx_t *c, ctx_time_t *deadline)
{
    ctx_time_t d = c ? deadline_of(c) : CTX_NO_DEADLINE;
    if (deadline)
        *deadline = d;
    return d != CTX_NO_DEADLINE;
}

/*
 * Walk towards the root. At a merge, the parents are searched in order;
 * all but the last by recursion, the last by continuing the loop, so only
 * merges nested through a non-last parent cost stack.
 */
static void *lookup(const struct ctx *c, const void *key)
{
    while (c) {
        uint32_t k = kind_of(c);
        if ((k & K_VALUE) && valued(c)->key == key)
            return valued(c)->value;
        if (k & K_MERGE) {
            const struct ctx_merged *m = merged(c);
            for (size_t i = 0; i + 1 < m->n; i++) {
                void *v = lookup(m->links[i].parent, key);
                if (v)
                    return v;
            }
            c = m->links[m->n - 1].parent;
            continue;
        }
        c = c->parent;
    }
    return NULL;
}

void *ctx_value(const ctx_t *c, const void *key)
{
    if (!c || !key)
        return NULL;
    return lookup(c, key);
}

/* ------------------------------------------------------------ freeing */

ctx_t *ctx_retain(ctx_t *c)
{
    if (c && !(kind_of(c) & K_STATIC))
        atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    return c;
}

static void unlink_from(struct ctx *p, struct ctx__link *l)
{
    uint32_t s;
    if (!atomic_load_explicit(&l->pprev, memory_order_acquire))
        return; /* detached by a cancellation, for good */
    s = node_lock(p);
    if (atomic_load_explicit(&l->pprev, memory_order_relaxed))
        link_remove(l);
    node_unlock(p, s);
}

/*
 * A node whose count reached 0: take it out of every parent's list. Until
 * then a cancellation may still find it there (under the parent's lock)
 * and read or write it; after, nobody can reach it.
 */
static void unlink_all(struct ctx *c)
{
    if (kind_of(c) & K_MERGE) {
        struct ctx_merged *m = merged(c);
        for (size_t i = 0; i < m->n; i++)
            unlink_from(m->links[i].parent, &m->links[i].link);
    } else if (c->parent) {
        unlink_from(c->parent, &c->link);
    }
}

/* Drop a reference to a parent; a dead one, unlinked, joins the list. */
static void put(struct ctx *p, struct ctx **list)
{
    if (kind_of(p) & K_STATIC)
        return;
    if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) == 1) {
        unlink_all(p);
        p->children = (struct ctx__link *)(void *)*list;
        *list = p;
    }
}

/* Free c: unreachable (unlinked), count 0. */
static void free_one(struct ctx *c, struct ctx **list)
{
    uint32_t kind = kind_of(c);
    uintptr_t cause;

    if (kind & K_TIMED) {
        ctx__timer_disarm(timed(c));
        ctx__text_release(timed(c)->dl_why);
    }
    cause = atomic_load_explicit(&c->cause, memory_order_acquire);
    if (cause & 1)
        ctx__ext_free((struct ctx_ext *)(cause & ~(uintptr_t)1));
    else
        ctx__text_release((struct ctx_text *)cause);
    if ((kind & K_VALUE) && valued(c)->free_value)
        valued(c)->free_value(valued(c)->value);
    ctx__count_kind(kind, -1);
    if (kind & K_MERGE) {
        struct ctx_merged *m = merged(c);
        for (size_t i = 0; i < m->n; i++)
            put(m->links[i].parent, list);
    } else if (c->parent) {
        put(c->parent, list);
    }
    ctx__free(c);
}

/* Free c, whose count reached 0, and every parent that dies with it. The
 * free list is threaded through `children`: empty once a node's count is 0
 * (children and registrations hold references), and unread once it is
 * unlinked. */
void ctx__free_chain(struct ctx *c)
{
    struct ctx *list = NULL;
    unlink_all(c);
    while (c) {
        free_one(c, &list);
        c = list;
        if (c)
            list = (struct ctx *)(void *)c->children;
    }
}

void ctx_release(ctx_t *c)
{
    if (!c || (kind_of(c) & K_STATIC))
        return;
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
        ctx__free_chain(c);
}
