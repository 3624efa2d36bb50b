/* SPDX-License-Identifier: MIT */
/*
 * The allocation fault sweep of the context core (RELIABILITY #15, G4):
 * every allocation of every constructor fails in turn, once and for good,
 * until the call succeeds; each failure must be ENOMEM with nothing
 * changed. Also cause texts, ctx_fd's allocation and eventfd faults.
 */
#include "t.h"

#include "internal.h"

#include <poll.h>

static int key;
static int sentinel;
#define SENTINEL ((void *)&sentinel)

static int freed; /* free_value calls */
static int runs;  /* runs of the after-function under test */

static void free_value(void *v)
{
    (void)v;
    freed++;
}

static void count_run(void *p)
{
    (*(int *)p)++;
}

static int readable(int fd)
{
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

/* ------------------------------------------------------------ the world */

/*
 * What a constructor works on: three independent cancellable parents, each
 * with a child and an after-function made before the fault, and a context
 * that is done already. After a failed call every one of them must work.
 */
struct world {
    ctx_t *p[3];
    ctx_t *kid[3];
    ctx_after_t *af[3];
    int af_runs[3];
    ctx_t *done;
};

static void world_open(struct world *w)
{
    memset(w, 0, sizeof *w);
    for (int i = 0; i < 3; i++) {
        T_OK(ctx_with_cancel(ctx_background(), &w->p[i]));
        T_OK(ctx_with_cancel(w->p[i], &w->kid[i]));
        T_OK(ctx_after_func(w->p[i], count_run, &w->af_runs[i], &w->af[i]));
    }
    T_OK(ctx_with_cancel(w->p[1], &w->done));
    ctx_cancel_cause(w->done, EBADF, "done before");
}

/*
 * Check that the parents still work: a new child and a new after-function
 * on each, then cancel it; the old and new children must be done with its
 * cause, the old and new after-functions must have run once.
 */
static void world_close(struct world *w)
{
    for (int i = 0; i < 3; i++) {
        ctx_t *n;
        ctx_after_t *g;
        int g_runs = 0;
        const char *why;
        char text[16];
        snprintf(text, sizeof text, "parent %d", i);
        T_OK(ctx_with_cancel(w->p[i], &n));
        T_OK(ctx_after_func(w->p[i], count_run, &g_runs, &g));
        T_ERR(ctx_err(w->kid[i]), 0);
        T_EQ(w->af_runs[i], 0);
        ctx_cancel_cause(w->p[i], 100 + i, text);
        T_ERR(ctx_err(w->p[i]), ECANCELED);
        T_ERR(ctx_err(w->kid[i]), ECANCELED);
        T_ERR(ctx_cause(w->kid[i], &why), 100 + i);
        T_STREQ(why, text);
        T_ERR(ctx_err(n), ECANCELED);
        T_ERR(ctx_cause(n, &why), 100 + i);
        T_STREQ(why, text);
        T_EQ(w->af_runs[i], 1);
        T_EQ(g_runs, 1);
        T_FALSE(ctx_after_stop(g));
        T_FALSE(ctx_after_stop(w->af[i]));
        ctx_release(n);
        ctx_release(w->kid[i]);
    }
    T_ERR(ctx_cause(w->done, NULL), EBADF);
    ctx_release(w->done);
    for (int i = 0; i < 3; i++)
        ctx_release(w->p[i]);
}

/* ------------------------------------------------------------ the heap */

/*
 * Far deadlines kept armed so that the timer heap is full: the next arm
 * must then grow it. Full is detected by failing the second allocation of
 * an arm: only a growing arm makes one.
 */
static ctx_t **fillers;
static size_t nfillers, capfillers;

static ctx_time_t far(void)
{
    return ctx_now() + CTX_HOUR;
}

static void keep_filler(ctx_t *c)
{
    if (nfillers == capfillers) {
        capfillers = capfillers ? 2 * capfillers : 256;
        fillers = realloc(fillers, capfillers * sizeof *fillers);
        if (!fillers)
            abort();
    }
    fillers[nfillers++] = c;
}

/* 1 if the next arm grows the heap; a probe that leaves nothing behind. */
static int heap_full(void)
{
    ctx_t *c;
    int rc;
    ctx__fault_arm(CTX__FAULT_ALLOC, 2, 0);
    rc = ctx_with_deadline(ctx_background(), far(), &c);
    ctx__fault_disarm_all();
    if (rc == 0) {
        ctx_release(c);
        return 0;
    }
    return 1;
}

/*
 * Fill the heap, with more than 64 timers armed in all, so that the next
 * arm reallocates a heap that already holds timers (the first arm of the
 * process allocates the first 64 slots).
 */
static void fill_heap(void)
{
    for (;;) {
        ctx_t *c;
        if (heap_full() && nfillers > 64)
            return;
        T_OK(ctx_with_deadline(ctx_background(), far(), &c));
        keep_filler(c);
    }
}

/* Make sure the next arm does not grow the heap. */
static void heap_room(void)
{
    if (heap_full()) {
        ctx_t *c;
        T_OK(ctx_with_deadline(ctx_background(), far(), &c));
        keep_filler(c); /* grown: room for as many again */
    }
}

static void drop_fillers(void)
{
    for (size_t i = 0; i < nfillers; i++)
        ctx_release(fillers[i]);
    free(fillers);
    fillers = NULL;
    nfillers = capfillers = 0;
}

/* ------------------------------------------------------------ sweep */

struct obj {
    ctx_t *c;
    ctx_after_t *a;
};

enum expect {
    E_DONE,     /* a context, done once p[0] is cancelled */
    E_NEVER,    /* a context that is never done */
    E_AFTER,    /* a registration that runs once p[0] is cancelled */
    E_AFTER_RAN /* a registration that ran at once */
};

struct ctor {
    const char *name;
    int grow; /* runs with a full timer heap */
    enum expect expect;
    int (*make)(struct world *w, struct obj *o);
};

static int mk_cancel(struct world *w, struct obj *o)
{
    return ctx_with_cancel(w->p[0], &o->c);
}

static int mk_cancel_done(struct world *w, struct obj *o)
{
    return ctx_with_cancel(w->done, &o->c);
}

static int mk_deadline(struct world *w, struct obj *o)
{
    return ctx_with_deadline(w->p[0], far(), &o->c);
}

static int mk_timeout(struct world *w, struct obj *o)
{
    return ctx_with_timeout(w->p[0], CTX_HOUR, &o->c);
}

static int mk_cause_text(struct world *w, struct obj *o)
{
    return ctx_with_deadline_cause(w->p[0], far(), EPROTO, "too late", &o->c);
}

static int mk_cause_notext(struct world *w, struct obj *o)
{
    return ctx_with_deadline_cause(w->p[0], far(), EPROTO, NULL, &o->c);
}

static int mk_value(struct world *w, struct obj *o)
{
    return ctx_with_value(w->p[0], &key, "v", free_value, &o->c);
}

static int mk_without(struct world *w, struct obj *o)
{
    return ctx_without_cancel(w->p[0], &o->c);
}

static int mk_merge1(struct world *w, struct obj *o)
{
    return ctx_merge(w->p, 1, &o->c);
}

static int mk_merge3(struct world *w, struct obj *o)
{
    return ctx_merge(w->p, 3, &o->c);
}

static int mk_merge3_done(struct world *w, struct obj *o)
{
    ctx_t *ps[3] = {w->p[2], w->done, w->p[0]};
    return ctx_merge(ps, 3, &o->c);
}

static int mk_after(struct world *w, struct obj *o)
{
    return ctx_after_func(w->p[0], count_run, &runs, &o->a);
}

static int mk_after_done(struct world *w, struct obj *o)
{
    return ctx_after_func(w->done, count_run, &runs, &o->a);
}

static const struct ctor ctors[] = {
    {"ctx_with_cancel", 0, E_DONE, mk_cancel},
    {"ctx_with_cancel (parent done)", 0, E_DONE, mk_cancel_done},
    {"ctx_with_deadline", 0, E_DONE, mk_deadline},
    {"ctx_with_deadline (heap grows)", 1, E_DONE, mk_deadline},
    {"ctx_with_timeout", 0, E_DONE, mk_timeout},
    {"ctx_with_timeout (heap grows)", 1, E_DONE, mk_timeout},
    {"ctx_with_deadline_cause (text)", 0, E_DONE, mk_cause_text},
    {"ctx_with_deadline_cause (text, heap grows)", 1, E_DONE, mk_cause_text},
    {"ctx_with_deadline_cause (no text)", 0, E_DONE, mk_cause_notext},
    {"ctx_with_value", 0, E_DONE, mk_value},
    {"ctx_without_cancel", 0, E_NEVER, mk_without},
    {"ctx_merge (n = 1)", 0, E_DONE, mk_merge1},
    {"ctx_merge (n = 3)", 0, E_DONE, mk_merge3},
    {"ctx_merge (n = 3, a parent done)", 0, E_DONE, mk_merge3_done},
    {"ctx_after_func", 0, E_AFTER, mk_after},
    {"ctx_after_func (context done)", 0, E_AFTER_RAN, mk_after_done},
};

#define NCTORS (sizeof ctors / sizeof ctors[0])

static long sites_of[NCTORS];

/* Check and drop what a successful call made; p[0] is cancelled. */
static void check_obj(const struct ctor *k, struct obj *o)
{
    switch (k->expect) {
    case E_DONE:
        T_NOTNULL(o->c);
        T_ERR(ctx_err(o->c), ECANCELED);
        ctx_release(o->c);
        break;
    case E_NEVER:
        T_NOTNULL(o->c);
        T_ERR(ctx_err(o->c), 0);
        ctx_release(o->c);
        break;
    case E_AFTER:
    case E_AFTER_RAN:
        T_NOTNULL(o->a);
        T_EQ(runs, 1);
        T_FALSE(ctx_after_stop(o->a));
        break;
    }
}

/* One call with its n-th allocation failing; *ok = 1 if it succeeded. */
static void sweep_step(const void *kv, long n, int persistent, int *ok)
{
    const struct ctor *k = kv;
    struct world w;
    struct obj o = {SENTINEL, SENTINEL};
    ctx_stats_t s0, s1;
    long h0, hits;
    int rc;

    world_open(&w);
    if (k->grow)
        fill_heap();
    else
        heap_room();
    if (t_failed())
        return;
    runs = 0;
    freed = 0;
    T_OK(ctx_stats(&s0));
    h0 = ctx__fault_hits(CTX__FAULT_ALLOC);
    ctx__fault_arm(CTX__FAULT_ALLOC, n, persistent);
    rc = k->make(&w, &o);
    ctx__fault_disarm_all();
    hits = ctx__fault_hits(CTX__FAULT_ALLOC) - h0;
    T_OK(ctx_stats(&s1));
    if (rc == 0) {
        *ok = 1;
        T_EQ(hits, 0); /* the n-th allocation was never reached */
        T_EQ(runs, k->expect == E_AFTER_RAN ? 1 : 0);
        world_close(&w);
        check_obj(k, &o);
        T_EQ(freed, k->make == mk_value ? 1 : 0);
        return;
    }
    T_ERR(rc, ENOMEM);
    if (k->expect == E_AFTER || k->expect == E_AFTER_RAN)
        T_NULL(o.a);
    else
        T_NULL(o.c);
    if (persistent)
        T_GE(hits, 1);
    else
        T_EQ(hits, 1);
    T_EQ(s1.contexts, s0.contexts);
    T_EQ(s1.timers, s0.timers);
    T_EQ(s1.cancels, s0.cancels);
    T_EQ(runs, 0);
    world_close(&w);
    T_EQ(runs, 0);  /* a failed registration never runs */
    T_EQ(freed, 0); /* nor is a failed value freed */
}

T_CASE(alloc_sweep_constructors)
{
    ctx_stats_t base, end;
    T_OK(ctx_stats(&base));
    for (size_t i = 0; i < NCTORS; i++) {
        const struct ctor *k = &ctors[i];
        long sites = t_sweep_sites(k->name, sweep_step, k);
        if (sites < 0)
            return;
        T_GE(sites, 1);
        sites_of[i] = sites;
    }
    /* The grown variants reached the heap's reallocation: one more site. */
    T_EQ(sites_of[3], sites_of[2] + 1);
    T_EQ(sites_of[5], sites_of[4] + 1);
    T_EQ(sites_of[7], sites_of[6] + 1);
    /* A text is one allocation more. */
    T_EQ(sites_of[6], sites_of[8] + 1);
    drop_fillers();
    T_OK(ctx_stats(&end));
    T_EQ(end.contexts, base.contexts);
    T_EQ(end.timers, base.timers);
}

/* ------------------------------------------------------------ cancel */

/*
 * ctx_cancel_cause whose text cannot be copied: the cancellation happens,
 * with its code and no text, through the whole tree.
 */
T_CASE(cancel_cause_text_copy_fails)
{
    for (int persistent = 0; persistent < 2; persistent++) {
        ctx_t *p, *kid, *fdkid;
        ctx_after_t *a;
        int ran = 0;
        const char *why = "x";
        long h0 = ctx__fault_hits(CTX__FAULT_ALLOC);
        T_OK(ctx_with_cancel(ctx_background(), &p));
        T_OK(ctx_with_cancel(p, &kid));
        T_OK(ctx_with_cancel(p, &fdkid));
        T_GE(ctx_fd(fdkid), 0);
        T_OK(ctx_after_func(kid, count_run, &ran, &a));
        ctx__fault_arm(CTX__FAULT_ALLOC, 1, persistent);
        ctx_cancel_cause(p, EHOSTDOWN, "no memory for this");
        ctx__fault_disarm_all();
        T_EQ(ctx__fault_hits(CTX__FAULT_ALLOC) - h0, 1);
        T_ERR(ctx_err(p), ECANCELED);
        T_ERR(ctx_cause(p, &why), EHOSTDOWN);
        T_NULL(why);
        why = "x";
        T_ERR(ctx_cause(kid, &why), EHOSTDOWN);
        T_NULL(why);
        why = "x";
        T_ERR(ctx_cause(fdkid, &why), EHOSTDOWN);
        T_NULL(why);
        T_TRUE(readable(ctx_fd(fdkid)));
        T_EQ(ran, 1);
        T_FALSE(ctx_after_stop(a));
        ctx_release(fdkid);
        ctx_release(kid);
        ctx_release(p);
    }
    T_EQ(t_live_contexts(), 0);
}

/*
 * What cannot fail must not need memory: with every allocation failing,
 * cancelling a tree (with waiting, eventfd, timed, merged and value
 * nodes), running and stopping after-functions, and releasing all work.
 */
T_CASE(cancel_and_release_under_persistent_oom)
{
    ctx_t *p, *q, *kid, *timed, *val, *m, *ps[2];
    ctx_after_t *a, *b;
    int ran_a = 0, ran_b = 0, fd;
    T_OK(ctx_with_cancel(ctx_background(), &p));
    T_OK(ctx_with_cancel(ctx_background(), &q));
    T_OK(ctx_with_cancel(p, &kid));
    T_OK(ctx_with_timeout(kid, CTX_HOUR, &timed));
    T_OK(ctx_with_value(timed, &key, "v", NULL, &val));
    ps[0] = q;
    ps[1] = val;
    T_OK(ctx_merge(ps, 2, &m));
    fd = ctx_fd(m);
    T_GE(fd, 0);
    T_OK(ctx_after_func(m, count_run, &ran_a, &a));
    T_OK(ctx_after_func(kid, count_run, &ran_b, &b));
    ctx__fault_arm(CTX__FAULT_ALLOC, 1, 1);
    T_TRUE(ctx_after_stop(b));
    ctx_cancel(p);
    T_ERR(ctx_err(m), ECANCELED);
    T_ERR(ctx_err(timed), ECANCELED);
    T_TRUE(readable(fd));
    T_OK(ctx_wait(val, CTX_NO_DEADLINE));
    T_EQ(ran_a, 1);
    T_EQ(ran_b, 0);
    T_FALSE(ctx_after_stop(a));
    ctx_release(m);
    ctx_release(val);
    ctx_release(timed);
    ctx_release(kid);
    ctx_release(q);
    ctx_release(p);
    ctx__fault_disarm_all();
    T_EQ(t_live_contexts(), 0);
}

/* ------------------------------------------------------------ ctx_fd */

/* Check that c still works after a failed ctx_fd: fd, cancel, readable. */
static void fd_still_works(ctx_t *c)
{
    int fd = ctx_fd(c);
    T_GE(fd, 0);
    T_EQ(ctx_fd(c), fd);
    T_FALSE(readable(fd));
    ctx_cancel(c);
    T_TRUE(readable(fd));
    T_OK(ctx_wait(c, 0));
}

T_CASE(fd_alloc_sweep)
{
    long sites = -1;
    for (int persistent = 0; persistent < 2; persistent++) {
        for (long n = 1; n <= 8; n++) {
            ctx_t *c;
            ctx_stats_t s0, s1;
            int fds = t_fd_count(), fd;
            long h0 = ctx__fault_hits(CTX__FAULT_ALLOC);
            T_OK(ctx_with_cancel(ctx_background(), &c));
            T_OK(ctx_stats(&s0));
            ctx__fault_arm(CTX__FAULT_ALLOC, n, persistent);
            errno = 0;
            fd = ctx_fd(c);
            ctx__fault_disarm_all();
            T_OK(ctx_stats(&s1));
            if (fd >= 0) {
                T_EQ(ctx__fault_hits(CTX__FAULT_ALLOC) - h0, 0);
                T_EQ(t_fd_count(), fds + 1);
                ctx_release(c);
                T_EQ(t_fd_count(), fds);
                if (sites >= 0)
                    T_EQ(sites, n - 1);
                sites = n - 1;
                break;
            }
            T_EQ(fd, -1);
            T_ERR(errno, ENOMEM);
            T_EQ(t_fd_count(), fds);
            T_EQ(s1.contexts, s0.contexts);
            fd_still_works(c);
            ctx_release(c);
            T_EQ(t_fd_count(), fds);
        }
    }
    T_GE(sites, 1);
    printf("  %-44s %ld allocation site(s)\n", "ctx_fd", sites);
}

T_CASE(fd_eventfd_fails)
{
    for (int done = 0; done < 2; done++) {
        ctx_t *c;
        int fds = t_fd_count();
        long h0 = ctx__fault_hits(CTX__FAULT_EVENTFD);
        T_OK(ctx_with_cancel(ctx_background(), &c));
        if (done)
            ctx_cancel_cause(c, EIO, "before");
        ctx__fault_arm(CTX__FAULT_EVENTFD, 1, 0);
        errno = 0;
        T_EQ(ctx_fd(c), -1);
        T_ERR(errno, EMFILE);
        ctx__fault_disarm_all();
        T_EQ(ctx__fault_hits(CTX__FAULT_EVENTFD) - h0, 1);
        T_EQ(t_fd_count(), fds);
        if (done) {
            const char *why;
            int fd = ctx_fd(c);
            T_GE(fd, 0);
            T_TRUE(readable(fd));
            T_ERR(ctx_cause(c, &why), EIO); /* the cause survived */
            T_STREQ(why, "before");
        } else {
            fd_still_works(c);
        }
        ctx_release(c);
        T_EQ(t_fd_count(), fds);
    }
    T_EQ(t_live_contexts(), 0);
}
