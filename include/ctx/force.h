/* SPDX-License-Identifier: MIT */
/*
 * Forced cancellation, for code that cannot take a context: interrupting
 * a thread blocked in a system call, and running a function in a process
 * of its own that can be killed.
 *
 * The third way needs no header: a loop that cannot take a context can
 * poll ctx_done(c), one atomic load, callable from any code.
 */
#ifndef CTX_FORCE_H
#define CTX_FORCE_H

#include <ctx/ctx.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------ interrupt */

typedef struct ctx_interrupt ctx_interrupt_t;

/*
 * ctx_interrupt_begin - open a region of the calling thread bound to `c`:
 * from the moment `c` is done until ctx_interrupt_end, the thread gets
 * the interrupt signal (SIGURG by default) again and again (every
 * millisecond at first, backing off to 10 ms), so that a blocking system
 * call in code we do not control, entered before or after the
 * cancellation, returns EINTR: the signal's handler does nothing and is
 * installed without SA_RESTART. (Go's LockOSThread + tgkill, made safe;
 * libctx never uses pthread_cancel.)
 *
 *     ctx_interrupt_t *r;
 *     if (ctx_interrupt_begin(c, &r) == 0) {
 *         n = legacy_blocking_call(...);   // EINTR once c is done
 *         ctx_interrupt_end(r);
 *     }
 *
 * The code in the region must cope with EINTR (most C code that retries
 * on EINTR must also look at ctx_done(c), or it retries forever: the
 * signal comes back each time). Regions do not nest on one thread.
 *
 * Returns: 0 and the region in *out.
 * Errors: EINVAL if c or out is NULL; ENOMEM; EAGAIN if the thread that
 * repeats the signal could not be started; EBUSY if the interrupt signal
 * has a handler that is not libctx's.
 */
CTX_API int ctx_interrupt_begin(ctx_t *c, ctx_interrupt_t **out);

/*
 * ctx_interrupt_end - close the region (on the thread that opened it).
 * After it returns no interrupt signal is pending for or sent to this
 * thread any more: one that was sent but not yet delivered is taken away.
 * NULL does nothing.
 */
CTX_API void ctx_interrupt_end(ctx_interrupt_t *r);

/*
 * ctx_interrupt_set_signal - the signal used (default SIGURG, which is
 * ignored by default and which Go's runtime uses the same way). Call it
 * before the first region.
 *
 * Returns: 0; EINVAL for SIGKILL, SIGSTOP or a number out of range; EBUSY
 * once a region was opened.
 */
CTX_API int ctx_interrupt_set_signal(int sig);

/* ------------------------------------------------------------ isolation */

/*
 * A function run in isolation: reads in[0..in_len), writes up to out_cap
 * bytes to out and their count to *out_len, returns a value of its
 * choosing.
 */
typedef int (*ctx_isolated_fn)(const void *in, size_t in_len, void *out,
                               size_t out_cap, size_t *out_len);

/* What became of an isolated call. */
typedef struct ctx_isolate_result {
    int value;      /* what fn returned, when it returned */
    int signal;     /* the signal that ended its process (a crash), or 0 */
    int exit_code;  /* its exit status, had it called exit(), else 0 */
    size_t out_len; /* bytes of output copied to out */
} ctx_isolate_result_t;

/*
 * ctx_isolate - run fn(in, ...) in a process of its own, so that it can be
 * killed when `c` is done and cannot take the caller down when it
 * crashes: the image-decoder case.
 *
 * The process is forked from a helper process libctx keeps (see
 * ctx_isolate_init), input and output travel through shared memory, and
 * fn's code and static data are the caller's as they were when the helper
 * was made (a function from a library loaded later is not there: calling
 * it crashes, and is reported as such). fn may use malloc and stdio.
 * Several calls may run at once, from any threads.
 *
 * Returns: 0 when fn returned: its value in res->value, its output copied
 * to out, its length in res->out_len (at most out_cap).
 * Errors: ECANCELED or ETIMEDOUT when c ended first (the process was
 * killed with SIGKILL and is gone when the call returns); ECHILD when the
 * process ended without fn returning (res->signal, e.g. SIGSEGV or
 * SIGABRT, or res->exit_code if it called exit); EINVAL if c, fn or res
 * is NULL or in/out are NULL with a non-zero size; ENOMEM, EMFILE,
 * EAGAIN when the process or its memory could not be made.
 * Blocks: until fn returns, its process dies, or c ends.
 */
CTX_API int ctx_isolate(ctx_t *c, ctx_isolated_fn fn, const void *in,
                        size_t in_len, void *out, size_t out_cap,
                        ctx_isolate_result_t *res);

/*
 * ctx_isolate_init - make the helper process now. Call it early in main,
 * while the process has one thread: then the helper is a copy of a
 * single-threaded process, and fn runs with no lock held by anyone. If it
 * is made later (on the first ctx_isolate), glibc's malloc and stdio
 * still work in it (glibc readies them for fork), but a lock some other
 * thread held at that moment (one of yours, or another library's) stays
 * held there for good. Calling it again does nothing.
 *
 * Returns: 0; EAGAIN, EMFILE if the helper could not be made.
 */
CTX_API int ctx_isolate_init(void);

#ifdef __cplusplus
}
#endif

#endif /* CTX_FORCE_H */
