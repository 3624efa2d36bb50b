/* SPDX-License-Identifier: MIT */
/*
 * Waiting for a context: ctx_wait parks on a futex, ctx_fd hands out an
 * eventfd. The only Linux-specific code of the core (futex, eventfd).
 *
 * DESIGN
 *
 * A waiter parks on the context's state word itself, after setting
 * S_WAITERS in it with a CAS from an unlocked value. Every lock holder
 * starts from a snapshot that already has the bit (nobody writes the word
 * while it is locked), so the cancellation, which unlocks with the error
 * stored, knows from its snapshot that it must wake, and does so after
 * the store: a waiter either sees the error before parking, or parks on a
 * value the store then changes (the kernel compares atomically), or is
 * woken. No lost wakeup, no timed polling. The cancellation clears the bit
 * and wakes all waiters in one FUTEX_WAKE.
 *
 * The eventfd is made lazily (EFD_SEMAPHORE, O_CLOEXEC, O_NONBLOCK) and
 * recorded under the node lock together with S_EXT; whoever makes the
 * context done, or ctx_fd if it finds it done, writes 2^62 to it: with a
 * semaphore eventfd a reader takes one unit per read, so it stays
 * readable even if a user reads it now and then, and two writes (a race
 * between the two writers is harmless) still fit the counter.
 */
#define _DEFAULT_SOURCE
#include "ctx_int.h"

#include <limits.h>
#include <linux/futex.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int ctx__futex_wait(_Atomic uint32_t *word, uint32_t val, ctx_time_t until)
{
    struct timespec ts, *tp = NULL;
    int saved = errno, rc = 0;

    if (until != CTX_NO_DEADLINE) {
        if (until < 0)
            until = 0;
        ts.tv_sec = (time_t)(until / CTX_SECOND);
        ts.tv_nsec = (long)(until % CTX_SECOND);
        tp = &ts;
    }
    /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC time. */
    if (syscall(SYS_futex, word, FUTEX_WAIT_BITSET_PRIVATE, val, tp, NULL,
                FUTEX_BITSET_MATCH_ANY) != 0)
        rc = errno;
    errno = saved;
    return rc;
}

void ctx__futex_wake(_Atomic uint32_t *word, int n)
{
    int saved = errno;
    syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
    errno = saved;
}

void ctx__futex_wake_all(_Atomic uint32_t *word)
{
    ctx__futex_wake(word, INT_MAX);
}

void ctx__park(_Atomic uint32_t *word, uint32_t v, uint32_t parked)
{
    if (!(v & parked)) {
        if (!atomic_compare_exchange_strong(word, &v, v | parked))
            return; /* it changed: the caller looks again */
        v |= parked;
    }
    ctx__futex_wait(word, v, CTX_NO_DEADLINE);
}

/* ------------------------------------------------------------ waitrec */

int ctx__wait_register(ctx_t *c, struct ctx__waitrec *w)
{
    uint32_t s;

    w->link.next = NULL;
    atomic_init(&w->link.pprev, 0);
    s = node_lock(c);
    if (s & S_ERR_MASK) {
        node_unlock(c, s);
        return (int)(s & S_ERR_MASK);
    }
    if (!(s & K_NOCANCEL))
        link_push(c, &w->link, LK_WAIT);
    node_unlock(c, s);
    return 0;
}

bool ctx__wait_unregister(ctx_t *c, struct ctx__waitrec *w)
{
    /* A cancellation touches w only under c's lock: once we hold it, w is
     * either still linked (ours to unlink) or done with. */
    uint32_t s = node_lock(c);
    bool fired = !atomic_load_explicit(&w->link.pprev, memory_order_relaxed);
    if (!fired)
        link_remove(&w->link);
    node_unlock(c, s);
    return fired && !(s & K_NOCANCEL);
}

int ctx__wait_until(ctx_t *c, ctx_time_t until)
{
    uint32_t s = state_of(c);

    if (s & S_ERR_MASK)
        return 0;
    if (CTX_UNLIKELY(ctx_testclock_enabled())) {
        int rc = ctx__vwait(c, until);
        if (rc >= 0)
            return rc;
    }
    for (;;) {
        s = state_of(c);
        if (s & S_ERR_MASK)
            return 0;
        if (until != CTX_NO_DEADLINE && ctx__real_now() >= until)
            return ETIMEDOUT;
        if (!(s & S_WAITERS)) {
            if (s & S_LOCK) {
                ctx__spin_wait(&c->state, S_LOCK);
                continue;
            }
            if (!atomic_compare_exchange_weak(&c->state, &s, s | S_WAITERS))
                continue;
            s |= S_WAITERS;
        }
        ctx__futex_wait(&c->state, s, until);
    }
}

int ctx_wait(ctx_t *c, ctx_time_t timeout)
{
    int rc;

    if (!c)
        return EINVAL;
    if (state_of(c) & S_ERR_MASK)
        return 0;
    if (timeout <= 0)
        return ETIMEDOUT;
    ctx__note_wait("context", c);
    rc = ctx__wait_until(c, timeout == CTX_NO_DEADLINE
                                ? CTX_NO_DEADLINE
                                : ctx__time_add(ctx_now(), timeout));
    ctx__note_done();
    return rc;
}

/* ------------------------------------------------------------ eventfd */

void ctx__ext_signal(struct ctx_ext *e)
{
    uint64_t v = (uint64_t)1 << 62;
    int saved = errno;
    /* EAGAIN: the other writer got there first; nothing to do. */
    if (write(e->fd, &v, sizeof v) < 0)
        CTX_ASSERT(errno == EAGAIN);
    errno = saved;
}

void ctx__eventfd_signal(int fd)
{
    uint64_t one = 1;
    int saved = errno;
    if (write(fd, &one, sizeof one) < 0) /* only a full counter: ignore */
        CTX_ASSERT(errno == EAGAIN);
    errno = saved;
}

void ctx__ext_free(struct ctx_ext *e)
{
    close(e->fd);
    atomic_fetch_sub(&ctx__fds, 1);
    ctx__text_release(e->why);
    ctx__free(e);
}

int ctx_fd(ctx_t *c)
{
    struct ctx_ext *e;
    uint32_t s;
    int fd;

    if (!c) {
        errno = EINVAL;
        return -1;
    }
    s = node_lock(c);
    if (s & S_EXT) {
        fd = ((struct ctx_ext *)(atomic_load_explicit(&c->cause,
                                                      memory_order_relaxed) &
                                 ~(uintptr_t)1))
                 ->fd;
        node_unlock(c, s);
        return fd;
    }
    node_unlock(c, s);

    e = ctx__malloc(sizeof *e);
    if (!e) {
        errno = ENOMEM;
        return -1;
    }
    if (ctx__fault(CTX__FAULT_EVENTFD)) {
        ctx__free(e);
        errno = EMFILE;
        return -1;
    }
    fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK | EFD_SEMAPHORE);
    if (fd < 0) {
        int err = errno;
        ctx__free(e);
        errno = err;
        return -1;
    }
    e->fd = fd;
    atomic_fetch_add(&ctx__fds, 1);

    s = node_lock(c);
    if (s & S_EXT) { /* another thread made one meanwhile */
        int theirs = ((struct ctx_ext *)(atomic_load_explicit(
                                             &c->cause, memory_order_relaxed) &
                                         ~(uintptr_t)1))
                         ->fd;
        node_unlock(c, s);
        close(fd);
        atomic_fetch_sub(&ctx__fds, 1);
        ctx__free(e);
        return theirs;
    }
    e->why = (struct ctx_text *)atomic_load_explicit(&c->cause,
                                                     memory_order_relaxed);
    atomic_store_explicit(&c->cause, (uintptr_t)e | 1, memory_order_release);
    node_unlock(c, s | S_EXT);
    if (s & K_STATIC) /* a static context keeps it for good: not a leak */
        atomic_fetch_add(&ctx__kept_fds, 1);
    if (s & S_ERR_MASK)
        ctx__ext_signal(e);
    return fd;
}
