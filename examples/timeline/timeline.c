/* SPDX-License-Identifier: MIT */
/*
 * A request tree with a deadline and a cause flowing down it, printed as a
 * timeline. Two requests run the same three steps (a database query, a
 * cache lookup with its own tighter budget, and a render that is slow);
 * the first is cut by its deadline, the second by the client going away.
 * An audit write after each request uses ctx_without_cancel plus its own
 * timeout, so it still runs when the request is already cancelled.
 *
 * Uses only the public API. Threads stand in for the work; each polls its
 * context or blocks in ctx_wait, and says why it stopped.
 */
#include <ctx/ctx.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static ctx_time_t t0;
static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;
static const char request_id_key = 0; /* its address is the key */

static void say(ctx_t *c, const char *who, const char *what)
{
    const char *id = c ? ctx_value(c, &request_id_key) : NULL;
    pthread_mutex_lock(&out_mu);
    printf("%7.1f ms  %-8s %-7s %s\n", (double)(ctx_now() - t0) / 1e6,
           id ? id : "", who, what);
    pthread_mutex_unlock(&out_mu);
}

/* Why a context is done, in words. */
static void why_done(ctx_t *c, char *buf, size_t n)
{
    const char *why;
    int code = ctx_cause(c, &why);
    snprintf(buf, n, "stopped: err=%s cause=%s%s%s", ctx_errname(ctx_err(c)),
             ctx_errname(code), why ? " \"" : "", why ? why : "");
    if (why)
        strncat(buf, "\"", n - strlen(buf) - 1);
}

struct step {
    const char *name;
    ctx_t *parent;
    ctx_time_t budget; /* its own timeout, or 0 for the parent's */
    ctx_time_t takes;  /* how long the work would take */
};

static void *run_step(void *p)
{
    struct step *s = p;
    ctx_t *c;
    char buf[160];
    int rc = s->budget ? ctx_with_timeout(s->parent, s->budget, &c)
                       : ctx_with_cancel(s->parent, &c);
    if (rc != 0) {
        say(s->parent, s->name, ctx_errname(rc));
        return NULL;
    }
    snprintf(buf, sizeof buf, "start (needs %lld ms%s)",
             (long long)(s->takes / CTX_MILLISECOND),
             s->budget ? ", own budget" : "");
    say(c, s->name, buf);
    /* The work: here, just waiting for it to finish or the context. */
    if (ctx_wait(c, s->takes) == ETIMEDOUT) {
        say(c, s->name, "finished");
    } else {
        why_done(c, buf, sizeof buf);
        say(c, s->name, buf);
    }
    ctx_cancel(c); /* Go's defer cancel(): stops its timer */
    ctx_release(c);
    return NULL;
}

static void on_request_done(void *arg)
{
    char buf[160];
    why_done(arg, buf, sizeof buf);
    say(arg, "request", buf);
}

/* Cleanup that must run even though the request is cancelled. */
static void audit(ctx_t *req)
{
    ctx_t *detached, *bounded;
    if (ctx_without_cancel(req, &detached) != 0)
        return;
    if (ctx_with_timeout(detached, 50 * CTX_MILLISECOND, &bounded) == 0) {
        say(bounded, "audit",
            ctx_done(bounded) ? "cannot run"
                              : "writes the log line (request values "
                                "kept, cancellation not)");
        ctx_release(bounded);
    }
    ctx_release(detached);
}

static void request(const char *id, ctx_time_t deadline_in,
                    ctx_time_t client_leaves_at)
{
    ctx_t *root, *req;
    ctx_after_t *done;
    pthread_t th[3];
    struct step steps[3];
    char buf[120];

    t0 = ctx_now();
    if (ctx_with_value(ctx_background(), &request_id_key, (void *)id, NULL,
                       &root) != 0 ||
        ctx_with_deadline_cause(root, t0 + deadline_in, ETIMEDOUT,
                                "request budget exceeded", &req) != 0) {
        fprintf(stderr, "out of memory\n");
        return;
    }
    ctx_release(root); /* req keeps it */
    snprintf(buf, sizeof buf, "start (deadline in %lld ms)",
             (long long)(deadline_in / CTX_MILLISECOND));
    say(req, "request", buf);
    ctx_after_func(req, on_request_done, req, &done);

    steps[0] = (struct step){"db", req, 0, 60 * CTX_MILLISECOND};
    steps[1] =
        (struct step){"cache", req, 30 * CTX_MILLISECOND, 80 * CTX_MILLISECOND};
    steps[2] = (struct step){"render", req, 0, 10 * CTX_SECOND};
    for (int i = 0; i < 3; i++)
        pthread_create(&th[i], NULL, run_step, &steps[i]);

    if (client_leaves_at) {
        ctx_wait(req, client_leaves_at);
        if (!ctx_done(req)) {
            say(req, "client", "disconnects");
            ctx_cancel_cause(req, ECONNRESET, "client went away");
        }
    }
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    audit(req);
    ctx_after_stop(done);
    ctx_cancel(req);
    ctx_release(req);
}

int main(void)
{
    printf("libctx %s: a request tree, its deadline and its cause\n\n",
           ctx_version());
    printf("    time  request  step    event\n");
    request("req-1", 150 * CTX_MILLISECOND, 0);
    printf("\n");
    request("req-2", 150 * CTX_MILLISECOND, 100 * CTX_MILLISECOND);
    printf("\n");
    return ctx_leak_check(CTX_SECOND) == 0 ? 0 : 1;
}
