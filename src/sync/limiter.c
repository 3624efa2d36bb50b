/* SPDX-License-Identifier: MIT */
/*
 * The token-bucket rate limiter (Go's x/time/rate): allow, wait and
 * reservations, on ctx_now()'s clock so the test clock drives it (read
 * through ctx__now_fast: the TSC where the kernel uses it too).
 *
 * DESIGN
 *
 * The arithmetic is Go's: the bucket is refilled lazily from `last` to
 * now when it is used (capped at the burst), a request may drive the
 * token count negative, which is a reservation of future tokens, and
 * `last_event` is the time the latest reservation may act, so that a
 * cancelled reservation gives back only the tokens no later reservation
 * has counted on. Every operation is a few floating-point steps under a
 * spin lock; the one system-level cost is the clock read (the TSC, or a
 * vDSO call). The TSC reading may be tens of ns out of order with another
 * thread's: advance() clamps a `now` before `last`, as Go's does.
 */
#include "sync_int.h"

#include <errno.h>
#include <math.h>

struct ctx_limiter {
    ctx__spin_t lock;
    double limit;          /* guarded by lock; tokens per second; inf: none */
    int64_t burst;         /* guarded by lock */
    double tokens;         /* guarded by lock */
    ctx_time_t last;       /* guarded by lock; tokens were valid then */
    ctx_time_t last_event; /* guarded by lock; latest reservation */
};

static bool bad_rate(double per_second)
{
    return isnan(per_second) || per_second < 0;
}

int ctx_limiter_new(double per_second, int64_t burst, ctx_limiter_t **out)
{
    ctx_limiter_t *l;

    if (out)
        *out = NULL;
    if (bad_rate(per_second) || burst < 0 || !out)
        return EINVAL;
    l = ctx__calloc(1, sizeof *l);
    if (!l)
        return ENOMEM;
    l->limit = per_second;
    l->burst = burst;
    l->tokens = (double)burst;
    l->last = ctx__now_fast();
    l->last_event = l->last;
    *out = l;
    return 0;
}

void ctx_limiter_free(ctx_limiter_t *l)
{
    ctx__free(l);
}

static double tokens_for(double limit, ctx_time_t d)
{
    if (limit <= 0)
        return 0;
    return (double)d / (double)CTX_SECOND * limit;
}

static ctx_time_t duration_for(double limit, double tokens)
{
    double ns;
    if (limit <= 0)
        return CTX_NO_DEADLINE;
    ns = tokens / limit * (double)CTX_SECOND;
    if (ns >= (double)CTX_NO_DEADLINE)
        return CTX_NO_DEADLINE;
    return (ctx_time_t)ns;
}

/* The tokens at `now` (refilled from last, capped); *last_out gets last,
 * clamped if now is earlier (Go's advance). */
static double advance(ctx_limiter_t *l, ctx_time_t now, ctx_time_t *last_out)
    CTX_REQUIRES(l->lock)
{
    ctx_time_t last = l->last < now ? l->last : now;
    double t = l->tokens + tokens_for(l->limit, now - last);
    if (t > (double)l->burst)
        t = (double)l->burst;
    *last_out = last;
    return t;
}

/*
 * Reserve n tokens at `now` if they can be used within max_wait; fills r
 * (ok or not) and updates the bucket only when ok.
 */
static void reserve(ctx_limiter_t *l, ctx_time_t now, int64_t n,
                    ctx_time_t max_wait, ctx_reservation_t *r)
    CTX_REQUIRES(l->lock)
{
    ctx_time_t last, wait = 0;
    double t;

    r->lim = l;
    r->limit = l->limit;
    r->tokens = 0;
    r->time_to_act = now;
    if (isinf(l->limit)) {
        r->ok = true;
        r->tokens = n;
        return;
    }
    if (l->limit == 0) { /* only the burst, never refilled */
        r->ok = l->burst >= n;
        if (r->ok) {
            l->burst -= n;
            r->tokens = n;
        }
        return;
    }
    t = advance(l, now, &last) - (double)n;
    if (t < 0)
        wait = duration_for(l->limit, -t);
    r->ok = n <= l->burst && wait <= max_wait;
    if (r->ok) {
        r->tokens = n;
        r->time_to_act = ctx__time_add(now, wait);
        l->last = now;
        l->tokens = t;
        l->last_event = r->time_to_act;
    } else {
        l->last = last;
    }
}

bool ctx_limiter_allow_n(ctx_limiter_t *l, int64_t n)
{
    ctx_reservation_t r;
    ctx_time_t now;

    if (!l || n < 0)
        return false;
    now = ctx__now_fast();
    ctx__spin_lock(&l->lock);
    reserve(l, now, n, 0, &r);
    ctx__spin_unlock(&l->lock);
    return r.ok;
}

bool ctx_limiter_allow(ctx_limiter_t *l)
{
    return ctx_limiter_allow_n(l, 1);
}

int ctx_limiter_reserve(ctx_limiter_t *l, int64_t n, ctx_reservation_t *r)
{
    ctx_time_t now;

    if (!l || !r || n < 0)
        return EINVAL;
    now = ctx__now_fast();
    ctx__spin_lock(&l->lock);
    reserve(l, now, n, CTX_NO_DEADLINE, r);
    ctx__spin_unlock(&l->lock);
    return 0;
}

bool ctx_reservation_ok(const ctx_reservation_t *r)
{
    return r && r->ok;
}

ctx_time_t ctx_reservation_delay(const ctx_reservation_t *r)
{
    ctx_time_t now;
    if (!r || !r->ok)
        return CTX_NO_DEADLINE;
    now = ctx__now_fast();
    return r->time_to_act > now ? r->time_to_act - now : 0;
}

static void cancel_at(ctx_reservation_t *r, ctx_time_t now)
{
    ctx_limiter_t *l = r->lim;
    double restore, t;
    ctx_time_t last;

    if (!r->ok)
        return;
    r->ok = false;
    ctx__spin_lock(&l->lock);
    if (isinf(l->limit) || r->tokens == 0 || r->time_to_act < now)
        goto out;
    if (l->limit == 0 && r->limit == 0) {
        l->burst += r->tokens; /* a burst-only bucket gets it back */
        goto out;
    }
    /* Tokens reserved after r (up to last_event) stay counted. */
    restore = (double)r->tokens -
              tokens_for(r->limit, l->last_event - r->time_to_act);
    if (restore <= 0)
        goto out;
    t = advance(l, now, &last) + restore;
    if (t > (double)l->burst)
        t = (double)l->burst;
    l->last = now;
    l->tokens = t;
    if (r->time_to_act == l->last_event) {
        ctx_time_t prev =
            r->time_to_act - duration_for(r->limit, (double)r->tokens);
        if (prev >= now)
            l->last_event = prev;
    }
out:
    ctx__spin_unlock(&l->lock);
}

void ctx_reservation_cancel(ctx_reservation_t *r)
{
    if (r && r->ok && r->lim)
        cancel_at(r, ctx__now_fast());
}

int ctx_limiter_wait(ctx_limiter_t *l, ctx_t *c, int64_t n)
{
    ctx_reservation_t r;
    ctx_time_t now, deadline, max_wait = CTX_NO_DEADLINE;
    int rc;

    if (!l || !c || n < 0)
        return EINVAL;
    now = ctx__now_fast();
    if (ctx_deadline(c, &deadline))
        max_wait = deadline - now;
    ctx__spin_lock(&l->lock);
    rc = n > l->burst && !isinf(l->limit) ? EINVAL
         : ctx_done(c)                    ? ctx_err(c)
                                          : 0;
    if (!rc)
        reserve(l, now, n, max_wait, &r);
    ctx__spin_unlock(&l->lock);
    if (rc)
        return rc;
    if (!r.ok)
        return ETIMEDOUT; /* the wait would pass c's deadline */
    if (r.time_to_act <= now)
        return 0;
    ctx__note_wait("rate limiter", l);
    rc = ctx__wait_until(c, r.time_to_act);
    ctx__note_done();
    if (rc == ETIMEDOUT)
        return 0; /* waited the delay out */
    /* Cancelled. Go's Wait returns the error even when the tokens' time
     * has come by then, and keeps them; here the outcome is one or the
     * other: tokens whose time has come are taken and the wait succeeds,
     * otherwise they are given back in full and it fails. */
    now = ctx__now_fast();
    if (now >= r.time_to_act)
        return 0;
    cancel_at(&r, now);
    return ctx_err(c);
}

int ctx_limiter_set(ctx_limiter_t *l, double per_second, int64_t burst)
{
    ctx_time_t now, last;
    double t;

    if (!l || bad_rate(per_second) || burst < 0)
        return EINVAL;
    now = ctx__now_fast();
    ctx__spin_lock(&l->lock);
    t = advance(l, now, &last);
    l->last = now;
    l->tokens = t > (double)burst ? (double)burst : t;
    l->limit = per_second;
    l->burst = burst;
    ctx__spin_unlock(&l->lock);
    return 0;
}

double ctx_limiter_tokens(ctx_limiter_t *l)
{
    ctx_time_t now, last;
    double t;
    if (!l)
        return 0;
    now = ctx__now_fast();
    ctx__spin_lock(&l->lock);
    t = advance(l, now, &last);
    ctx__spin_unlock(&l->lock);
    return t;
}
