/* SPDX-License-Identifier: MIT */
/*
 * After-functions: ctx_after_func and ctx_after_stop (Go's AfterFunc), and
 * running the registrations a cancellation queued.
 *
 * DESIGN
 *
 * A registration is a link in its context's child list (LK_AFTER) while it
 * waits. Its state moves LINKED -> QUEUED -> RUNNING -> DONE; LINKED ->
 * QUEUED happens under the context's lock, when a cancellation detaches the
 * list (setting pprev = 0 and `runner` to the cancelling thread). So
 * ctx_after_stop decides under the same lock: still linked means fn has not
 * been queued, and unlinking it there keeps it from ever running (true).
 *
 * Otherwise fn is queued or running on `runner`. From another thread,
 * ctx_after_stop waits for DONE on a futex (AF_WAITED asks the runner to
 * wake it), then frees the registration (false). This is libstdc++'s
 * stop_callback rule: stop never returns while fn may still run, so `arg`
 * can be freed after it. From the runner thread itself (inside fn, or
 * inside another fn of the same cancellation) waiting would deadlock, so
 * it sets AF_STOPPED and returns at once; the runner then skips fn (if
 * still QUEUED: stop returns true) and frees the registration itself.
 *
 * After the runner's final exchange to DONE the registration may be freed
 * at once by the waiting thread; the futex wake that follows only uses
 * the address, which a private futex wake never dereferences.
 */
#include "ctx_int.h"

static void after_free(struct ctx_after *a)
{
    ctx_release(a->c);
    ctx__free(a);
}

/* Run fn on this thread; a is QUEUED or freshly made, owned by us. */
static void run_one(struct ctx_after *a)
{
    uint32_t st = atomic_load(&a->state), old;

    for (;;) {
        if (st & AF_STOPPED) {
            /* Stopped from this thread while queued: it never runs. */
            after_free(a);
            return;
        }
        if (atomic_compare_exchange_weak(&a->state, &st,
                                         AF_RUNNING | (st & AF_WAITED)))
            break;
    }
    a->fn(a->arg);
    old = atomic_exchange(&a->state, AF_DONE);
    if (old & AF_STOPPED)
        after_free(a); /* ctx_after_stop was called from fn */
    else if (old & AF_WAITED)
        ctx__futex_wake_all(&a->state);
}

void ctx__after_run(struct ctx__link *l)
{
    while (l) {
        struct ctx__link *next = l->next; /* read before fn may free it */
        run_one((struct ctx_after *)(void *)l);
        l = next;
    }
}

int ctx_after_func(ctx_t *c, void (*fn)(void *), void *arg, ctx_after_t **out)
{
    struct ctx_after *a;
    uint32_t s;

    if (out)
        *out = NULL;
    if (!c || !fn || !out)
        return EINVAL;
    a = ctx__malloc(sizeof *a);
    if (!a)
        return ENOMEM;
    a->c = ctx_retain(c);
    a->fn = fn;
    a->arg = arg;
    a->link.next = NULL;
    atomic_init(&a->link.pprev, 0);
    atomic_init(&a->runner, 0);
    *out = a;
    s = node_lock(c);
    if (s & K_NOCANCEL) {
        node_unlock(c, s);
        atomic_init(&a->state, AF_NEVER);
        return 0;
    }
    if (s & S_ERR_MASK) {
        node_unlock(c, s);
        atomic_init(&a->state, AF_QUEUED);
        atomic_store_explicit(&a->runner, ctx__self(), memory_order_relaxed);
        run_one(a); /* already done: at once, here */
        return 0;
    }
    atomic_init(&a->state, AF_LINKED);
    link_push(c, &a->link, LK_AFTER);
    node_unlock(c, s);
    return 0;
}

bool ctx_after_stop(ctx_after_t *a)
{
    struct ctx *c;
    uint32_t s, st;

    if (!a)
        return false;
    c = a->c;
    s = node_lock(c);
    if (atomic_load_explicit(&a->link.pprev, memory_order_relaxed)) {
        link_remove(&a->link);
        node_unlock(c, s);
        after_free(a);
        return true;
    }
    node_unlock(c, s);
    st = atomic_load(&a->state);
    for (;;) {
        switch (st & AF_MASK) {
        case AF_NEVER:
            after_free(a);
            return true;
        case AF_DONE:
            after_free(a);
            return false;
        default: /* QUEUED or RUNNING */
            break;
        }
        if (atomic_load_explicit(&a->runner, memory_order_relaxed) ==
            ctx__self()) {
            if (atomic_compare_exchange_weak(&a->state, &st, st | AF_STOPPED))
                return (st & AF_MASK) == AF_QUEUED;
            continue;
        }
        if (!(st & AF_WAITED)) {
            if (!atomic_compare_exchange_weak(&a->state, &st, st | AF_WAITED))
                continue;
            st |= AF_WAITED;
        }
        ctx__futex_wait(&a->state, st, CTX_NO_DEADLINE);
        st = atomic_load(&a->state);
    }
}
