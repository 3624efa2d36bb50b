/* SPDX-License-Identifier: MIT */
/*
 * What the race programs share: random skew, a 5 s no-progress watchdog,
 * a crew of persistent threads that play one round of a race with the
 * main thread, and waiting for the live contexts to settle.
 */
#ifndef CTX_TEST_RACE_H
#define CTX_TEST_RACE_H

#include "t.h"

#include <sched.h>

#define FAILED() t_failed()

static inline long at_least(long n, long min)
{
    return n < min ? min : n;
}

static inline unsigned rnd(uint64_t *seed, unsigned n)
{
    return (unsigned)(t_rand(seed) % n);
}

/*
 * A random pause so that the threads of a race meet in every order: 0 to
 * n turns of an empty loop (a few ns each), or, one time in 16, a yield.
 */
static inline void skew(uint64_t *seed, unsigned n)
{
    uint64_t r = t_rand(seed);
    if (r % 16 == 0) {
        sched_yield();
        return;
    }
    for (volatile unsigned i = (unsigned)((r >> 8) % (n + 1)); i > 0; i--)
        ;
}

/* Yield until *flag is not 0. */
static inline void await_flag(atomic_int *flag)
{
    while (!atomic_load(flag))
        sched_yield();
}

static inline void count_run(void *p)
{
    atomic_fetch_add((atomic_int *)p, 1);
}

/*
 * The live contexts once the timer thread has dropped the references it
 * takes while firing (up to 2 s).
 */
static inline int64_t settle(int64_t base)
{
    long long end = t_now_ns() + 2000000000LL;
    for (;;) {
        int64_t n = t_live_contexts();
        if (n == base || t_now_ns() > end)
            return n;
        sched_yield();
    }
}

/* The armed timers, once no cancellation is still disarming (up to 2 s). */
static inline int64_t settle_timers(void)
{
    long long end = t_now_ns() + 2000000000LL;
    for (;;) {
        ctx_stats_t st;
        ctx_stats(&st);
        if (st.timers == 0 || t_now_ns() > end)
            return st.timers;
        sched_yield();
    }
}

/*
 * A race stops early, and says so, once it has run for 30 s: a heavily
 * loaded machine then slows it down rather than failing it on the
 * harness's 120 s limit per case. Unloaded, every race ends well before.
 */
#define RACE_BUDGET_NS 30000000000LL

static inline int in_budget(long long t0)
{
    return t_now_ns() - t0 < RACE_BUDGET_NS;
}

static inline const char *budget_note(long done, long want)
{
    if (done >= want)
        return "";
    return FAILED() ? " (stopped by a failure)"
                    : " (stopped by the 30 s budget)";
}

static inline void report(const char *name, long done, long want, long long t0)
{
    printf("  %s: %ld rounds in %.2f s%s\n", name, done,
           (double)(t_now_ns() - t0) / 1e9, budget_note(done, want));
}

/* ------------------------------------------------------------ watchdog */

/*
 * A watchdog for one race: if `progress` does not move for 5 s, print what
 * is stuck and abort (a thread blocked for good cannot be got back).
 */
static struct {
    atomic_long progress;
    atomic_int stop;
    const char *what;
    void (*stuck)(void);
    pthread_t t;
} wd;

static inline void *wd_main(void *arg)
{
    long last = -1;
    long long since = t_now_ns();
    (void)arg;
    while (!atomic_load(&wd.stop)) {
        long p = atomic_load(&wd.progress);
        if (p != last) {
            last = p;
            since = t_now_ns();
        } else if (t_now_ns() - since > 5000000000LL) {
            fprintf(stderr, "watchdog: %s: no progress for 5 s, round %ld\n",
                    wd.what, p);
            if (wd.stuck)
                wd.stuck();
            abort();
        }
        t_sleep_ns(10000000LL);
    }
    return NULL;
}

static inline void wd_start(const char *what, void (*stuck)(void))
{
    atomic_store(&wd.progress, 0);
    atomic_store(&wd.stop, 0);
    wd.what = what;
    wd.stuck = stuck;
    if (pthread_create(&wd.t, NULL, wd_main, NULL) != 0)
        abort();
}

static inline void wd_tick(void)
{
    atomic_fetch_add(&wd.progress, 1);
}

static inline void wd_stop(void)
{
    atomic_store(&wd.stop, 1);
    pthread_join(wd.t, NULL);
}

/* ------------------------------------------------------------ crew */

/*
 * Persistent threads that play one round of a race together with the main
 * thread: all meet at `start`, play their part, meet at `end`. The main
 * thread sets up the round before crew_go and checks it after crew_wait.
 */
#define CREW_MAX 8

static struct {
    int n;
    pthread_t t[CREW_MAX];
    pthread_barrier_t start, end;
    void (*role)(int who, long round, uint64_t *seed);
    long round; /* written by main before `start` */
    int quit;   /* written by main before `start` */
} crew;

static inline void *crew_main(void *arg)
{
    int who = (int)(intptr_t)arg;
    uint64_t seed = 0x9e3779b97f4a7c15ULL * (uint64_t)(who + 1);
    for (;;) {
        pthread_barrier_wait(&crew.start);
        if (crew.quit)
            return NULL;
        crew.role(who, crew.round, &seed);
        pthread_barrier_wait(&crew.end);
    }
}

static inline void crew_open(int n, void (*role)(int, long, uint64_t *))
{
    crew.n = n;
    crew.role = role;
    crew.quit = 0;
    pthread_barrier_init(&crew.start, NULL, (unsigned)n + 1);
    pthread_barrier_init(&crew.end, NULL, (unsigned)n + 1);
    for (int i = 0; i < n; i++)
        if (pthread_create(&crew.t[i], NULL, crew_main, (void *)(intptr_t)i))
            abort();
}

static inline void crew_go(long round)
{
    crew.round = round;
    pthread_barrier_wait(&crew.start);
}

static inline void crew_wait(void)
{
    pthread_barrier_wait(&crew.end);
}

static inline void crew_close(void)
{
    crew.quit = 1;
    pthread_barrier_wait(&crew.start);
    for (int i = 0; i < crew.n; i++)
        pthread_join(crew.t[i], NULL);
    pthread_barrier_destroy(&crew.start);
    pthread_barrier_destroy(&crew.end);
}

#endif /* CTX_TEST_RACE_H */
