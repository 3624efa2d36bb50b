/* SPDX-License-Identifier: MIT */
/*
 * Quotas and rates that a cancelled caller walks away from: a weighted FIFO
 * semaphore (Go's x/sync/semaphore) and a token-bucket rate limiter with
 * reservations (Go's x/time/rate). Both read time on ctx_now()'s clock, so
 * the test clock drives them exactly. Where the kernel itself reads the
 * clock through the CPU's invariant TSC, the limiter reads the TSC
 * directly (a third of clock_gettime's cost): its time is then within
 * ~100 ns of ctx_now(), and may be that much out of order between calls.
 */
#ifndef CTX_SYNC_H
#define CTX_SYNC_H

#include <ctx/ctx.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------ semaphore */

typedef struct ctx_sem ctx_sem_t;

/*
 * ctx_sem_new - a weighted semaphore holding `capacity` units, all free.
 * Bulkheads are separate semaphores.
 *
 * Returns: 0 and the semaphore in *out (freed with ctx_sem_free).
 * Errors: EINVAL if capacity < 0 or out is NULL; ENOMEM.
 * Go: semaphore.NewWeighted.
 */
CTX_API int ctx_sem_new(int64_t capacity, ctx_sem_t **out);

/*
 * ctx_sem_acquire - take `n` units, blocking until they are free or `c` is
 * done.
 *
 * Waiters are served first come, first served: a large request at the head
 * is not overtaken by smaller ones behind it. If `c` is done (before or
 * while waiting) it returns c's error and has taken nothing; a cancelled
 * waiter at the head that was blocking others lets them through. n = 0
 * takes nothing and returns 0 unless c is done.
 *
 * Returns: 0 once the units are taken.
 * Errors: ECANCELED or ETIMEDOUT (c's error; nothing taken); EINVAL if s
 * or c is NULL, n < 0, or n > capacity (Go would block until c is done:
 * a request that can never be granted is reported at once).
 * Blocks: yes. Go: (*Weighted).Acquire.
 */
CTX_API int ctx_sem_acquire(ctx_sem_t *s, ctx_t *c, int64_t n);

/*
 * ctx_sem_try_acquire - take `n` units if they are free now and nobody is
 * waiting; never blocks.
 *
 * Returns: true if taken; false otherwise, or for NULL, n < 0.
 * Go: (*Weighted).TryAcquire.
 */
CTX_API bool ctx_sem_try_acquire(ctx_sem_t *s, int64_t n);

/*
 * ctx_sem_release - give back `n` units and wake the waiters they let
 * through, in order.
 *
 * Releasing more than is held is a misuse: an assertion fails in debug
 * builds; in release builds the call changes nothing.
 * Go: (*Weighted).Release.
 */
CTX_API void ctx_sem_release(ctx_sem_t *s, int64_t n);

/*
 * ctx_sem_free - free the semaphore. NULL does nothing. Freeing one that a
 * thread is waiting on is a misuse (asserted in debug builds).
 */
CTX_API void ctx_sem_free(ctx_sem_t *s);

/* ------------------------------------------------------------ limiter */

typedef struct ctx_limiter ctx_limiter_t;

/* "No limit" for ctx_limiter_new: every request is allowed at once. */
#define CTX_RATE_INF (__builtin_inf())

/*
 * ctx_limiter_new - a token bucket that refills at `per_second` tokens a
 * second up to `burst`, starting full.
 *
 * per_second may be CTX_RATE_INF (everything is allowed). A burst of 0
 * allows nothing unless the rate is infinite.
 *
 * Returns: 0 and the limiter in *out (freed with ctx_limiter_free).
 * Errors: EINVAL if per_second is negative or NaN, burst < 0, or out is
 * NULL; ENOMEM.
 * Go: rate.NewLimiter.
 */
CTX_API int ctx_limiter_new(double per_second, int64_t burst,
                            ctx_limiter_t **out);

/*
 * ctx_limiter_allow - take one token if there is one now.
 *
 * Returns: true if taken; false otherwise (and for NULL).
 * Go: (*Limiter).Allow.
 */
CTX_API bool ctx_limiter_allow(ctx_limiter_t *l);

/* ctx_limiter_allow_n - take `n` tokens if they are there now (n >= 0). */
CTX_API bool ctx_limiter_allow_n(ctx_limiter_t *l, int64_t n);

/*
 * ctx_limiter_wait - take `n` tokens, waiting for them to accumulate.
 *
 * If `c` has a deadline that the wait would pass, it returns ETIMEDOUT at
 * once without consuming anything. If `c` is done while waiting, the
 * tokens are given back (as a cancelled reservation) and c's error is
 * returned.
 *
 * Returns: 0 when the tokens are taken.
 * Errors: ECANCELED or ETIMEDOUT as above; EINVAL if l or c is NULL, n < 0
 * or n > burst (with a finite rate).
 * Blocks: up to the wait. Go: (*Limiter).WaitN.
 */
CTX_API int ctx_limiter_wait(ctx_limiter_t *l, ctx_t *c, int64_t n);

/*
 * ctx_limiter_set - change the rate and the burst from now on (tokens
 * accumulated so far are kept, up to the new burst).
 *
 * Returns: 0; EINVAL for a NULL limiter or bad values, as ctx_limiter_new.
 * Go: (*Limiter).SetLimit and SetBurst.
 */
CTX_API int ctx_limiter_set(ctx_limiter_t *l, double per_second, int64_t burst);

/* ctx_limiter_tokens - the tokens available now (may be negative while
 * reservations are outstanding). Go: (*Limiter).Tokens. */
CTX_API double ctx_limiter_tokens(ctx_limiter_t *l);

/* ctx_limiter_free - free the limiter. NULL does nothing. */
CTX_API void ctx_limiter_free(ctx_limiter_t *l);

/*
 * A reservation: `n` tokens set aside now, usable after a delay. The
 * caller owns the struct (no allocation); read it only through the
 * functions below.
 */
typedef struct ctx_reservation {
    ctx_limiter_t *lim;
    int64_t tokens;
    ctx_time_t time_to_act;
    double limit;
    bool ok;
} ctx_reservation_t;

/*
 * ctx_limiter_reserve - reserve `n` tokens and say when they can be used.
 *
 * Returns: 0 and a reservation in *r. r is not OK (ctx_reservation_ok
 * false, nothing reserved) when n > burst with a finite rate.
 * Errors: EINVAL if l or r is NULL or n < 0.
 * Go: (*Limiter).ReserveN.
 */
CTX_API int ctx_limiter_reserve(ctx_limiter_t *l, int64_t n,
                                ctx_reservation_t *r);

/* Whether the reservation holds tokens. Go: (*Reservation).OK. */
CTX_API bool ctx_reservation_ok(const ctx_reservation_t *r);

/*
 * How long from now until the reserved tokens may be used: 0 if at once;
 * CTX_NO_DEADLINE if the reservation is not OK. Go: (*Reservation).Delay.
 */
CTX_API ctx_time_t ctx_reservation_delay(const ctx_reservation_t *r);

/*
 * Give the reserved tokens back, as far as later reservations have not
 * already counted on them (Go's rule), and make the reservation not OK.
 * A second cancel does nothing. Go: (*Reservation).Cancel.
 */
CTX_API void ctx_reservation_cancel(ctx_reservation_t *r);

#ifdef __cplusplus
}
#endif

#endif /* CTX_SYNC_H */
