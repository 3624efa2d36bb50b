/* SPDX-License-Identifier: MIT */
/*
 * Small things every layer uses: the clocks, error names, the version, the
 * spin-lock back-off, internal thread start, thread identity.
 */
#define _DEFAULT_SOURCE
#include "internal.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <time.h>

#ifndef CTX_VERSION_STRING
#define CTX_VERSION_STRING "0.0.0"
#endif

const char *ctx_version(void)
{
    return CTX_VERSION_STRING;
}

ctx_time_t ctx__real_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (ctx_time_t)ts.tv_sec * CTX_SECOND + ts.tv_nsec;
}

ctx_time_t ctx__coarse_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (ctx_time_t)ts.tv_sec * CTX_SECOND + ts.tv_nsec;
}

_Thread_local struct ctx__wait_note *ctx__note;

/* ------------------------------------------------------------ errnames */

#define NAME(e) [e] = #e
static const char *const names[] = {
    NAME(EPERM),
    NAME(ENOENT),
    NAME(ESRCH),
    NAME(EINTR),
    NAME(EIO),
    NAME(ENXIO),
    NAME(E2BIG),
    NAME(ENOEXEC),
    NAME(EBADF),
    NAME(ECHILD),
    NAME(EAGAIN),
    NAME(ENOMEM),
    NAME(EACCES),
    NAME(EFAULT),
    NAME(ENOTBLK),
    NAME(EBUSY),
    NAME(EEXIST),
    NAME(EXDEV),
    NAME(ENODEV),
    NAME(ENOTDIR),
    NAME(EISDIR),
    NAME(EINVAL),
    NAME(ENFILE),
    NAME(EMFILE),
    NAME(ENOTTY),
    NAME(ETXTBSY),
    NAME(EFBIG),
    NAME(ENOSPC),
    NAME(ESPIPE),
    NAME(EROFS),
    NAME(EMLINK),
    NAME(EPIPE),
    NAME(EDOM),
    NAME(ERANGE),
    NAME(EDEADLOCK),
    NAME(ENAMETOOLONG),
    NAME(ENOLCK),
    NAME(ENOSYS),
    NAME(ENOTEMPTY),
    NAME(ELOOP),
    NAME(ENOMSG),
    NAME(EIDRM),
    NAME(ECHRNG),
    NAME(EL2NSYNC),
    NAME(EL3HLT),
    NAME(EL3RST),
    NAME(ELNRNG),
    NAME(EUNATCH),
    NAME(ENOCSI),
    NAME(EL2HLT),
    NAME(EBADE),
    NAME(EBADR),
    NAME(EXFULL),
    NAME(ENOANO),
    NAME(EBADRQC),
    NAME(EBADSLT),
    NAME(EBFONT),
    NAME(ENOSTR),
    NAME(ENODATA),
    NAME(ETIME),
    NAME(ENOSR),
    NAME(ENONET),
    NAME(ENOPKG),
    NAME(EREMOTE),
    NAME(ENOLINK),
    NAME(EADV),
    NAME(ESRMNT),
    NAME(ECOMM),
    NAME(EPROTO),
    NAME(EMULTIHOP),
    NAME(EDOTDOT),
    NAME(EBADMSG),
    NAME(EOVERFLOW),
    NAME(ENOTUNIQ),
    NAME(EBADFD),
    NAME(EREMCHG),
    NAME(ELIBACC),
    NAME(ELIBBAD),
    NAME(ELIBSCN),
    NAME(ELIBMAX),
    NAME(ELIBEXEC),
    NAME(EILSEQ),
    NAME(ERESTART),
    NAME(ESTRPIPE),
    NAME(EUSERS),
    NAME(ENOTSOCK),
    NAME(EDESTADDRREQ),
    NAME(EMSGSIZE),
    NAME(EPROTOTYPE),
    NAME(ENOPROTOOPT),
    NAME(EPROTONOSUPPORT),
    NAME(ESOCKTNOSUPPORT),
    NAME(ENOTSUP),
    NAME(EPFNOSUPPORT),
    NAME(EAFNOSUPPORT),
    NAME(EADDRINUSE),
    NAME(EADDRNOTAVAIL),
    NAME(ENETDOWN),
    NAME(ENETUNREACH),
    NAME(ENETRESET),
    NAME(ECONNABORTED),
    NAME(ECONNRESET),
    NAME(ENOBUFS),
    NAME(EISCONN),
    NAME(ENOTCONN),
    NAME(ESHUTDOWN),
    NAME(ETOOMANYREFS),
    NAME(ETIMEDOUT),
    NAME(ECONNREFUSED),
    NAME(EHOSTDOWN),
    NAME(EHOSTUNREACH),
    NAME(EALREADY),
    NAME(EINPROGRESS),
    NAME(ESTALE),
    NAME(EUCLEAN),
    NAME(ENOTNAM),
    NAME(ENAVAIL),
    NAME(EISNAM),
    NAME(EREMOTEIO),
    NAME(EDQUOT),
    NAME(ENOMEDIUM),
    NAME(EMEDIUMTYPE),
    NAME(ECANCELED),
    NAME(ENOKEY),
    NAME(EKEYEXPIRED),
    NAME(EKEYREVOKED),
    NAME(EKEYREJECTED),
    NAME(EOWNERDEAD),
    NAME(ENOTRECOVERABLE),
    NAME(ERFKILL),
};
#undef NAME

const char *ctx_errname(int code)
{
    if (code == 0)
        return "OK";
    if (code > 0 && (size_t)code < sizeof names / sizeof names[0] &&
        names[code])
        return names[code];
    return "EUNKNOWN";
}

/* ------------------------------------------------------------ threads */

/*
 * The address of a thread-local byte is a cheap, unique identity of the
 * running thread (the value of pthread_self() costs a call).
 */
static _Thread_local char self_tag;

uintptr_t ctx__self(void)
{
    return (uintptr_t)&self_tag;
}

atomic_llong ctx__internal_threads;

int ctx__thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
    sigset_t all, old;
    pthread_attr_t attr;
    int rc;

    if (ctx__fault(CTX__FAULT_THREAD_CREATE))
        return EAGAIN;
    if (pthread_attr_init(&attr) != 0)
        return EAGAIN;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    /* Block everything before creating, so the thread is born masked. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    atomic_fetch_add(&ctx__internal_threads, 1);
    rc = pthread_create(t, &attr, fn, arg);
    if (rc != 0)
        atomic_fetch_sub(&ctx__internal_threads, 1);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    return rc == 0 ? 0 : EAGAIN;
}

void ctx__thread_name(const char *name)
{
    prctl(PR_SET_NAME, (unsigned long)name, 0, 0, 0);
}

void ctx__thread_exiting(void)
{
    atomic_fetch_sub(&ctx__internal_threads, 1);
}

/* ------------------------------------------------------------ spinning */

/*
 * Wait until `busy_bit` is clear in *v: a short spin (the holder is most
 * likely running on the other core), then yield between looks, then sleep
 * 50 us between looks so a long hold (a cancellation walking a million
 * children) does not cost its waiters a core each.
 */
void ctx__spin_wait(atomic_uint *v, unsigned busy_bit)
{
    for (unsigned i = 0;; i++) {
        if (!(atomic_load_explicit(v, memory_order_relaxed) & busy_bit))
            return;
        if (i < 64) {
            ctx__cpu_relax();
        } else if (i < 256) {
            sched_yield();
        } else {
            struct timespec ts = {0, 50000};
            nanosleep(&ts, NULL);
        }
    }
}
