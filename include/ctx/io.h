/* SPDX-License-Identifier: MIT */
/*
 * Cancellable I/O: each call mirrors its POSIX namesake with a context
 * first, keeps its convention (-1 and errno) and fails with errno
 * ECANCELED or ETIMEDOUT when the context ends first.
 *
 * They work on blocking and non-blocking descriptors alike: on a
 * non-blocking one they wait for readiness instead of failing with EAGAIN.
 * Nothing polls in a loop: a call that must wait sleeps in poll(2) on the
 * descriptor and on a wake-up descriptor of the calling thread that the
 * context's cancellation (or its deadline) writes. A call whose data or
 * room is there costs one system call. A signal handled while a call
 * waits does not end it (no EINTR surfaces): the context is what ends a
 * wait. If the context is done when the call starts, nothing is read or
 * written.
 *
 * Each thread that waits in one of these calls keeps one wake-up
 * descriptor (an eventfd, O_CLOEXEC) until it exits; ctx_stats counts
 * them in `fds`.
 */
#ifndef CTX_IO_H
#define CTX_IO_H

#include <ctx/ctx.h>

#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * ctx_read - read(2) that waits for data or the end of `c`.
 *
 * Returns: the bytes read (0 at end of file), at most n.
 * Errors (-1, errno): ECANCELED or ETIMEDOUT when c is done before any
 * data came; EINVAL if c is NULL; otherwise read(2)'s, EAGAIN and EINTR
 * excepted.
 * Blocks: until some data, end of file, or c done.
 */
CTX_API ssize_t ctx_read(ctx_t *c, int fd, void *buf, size_t n);

/*
 * ctx_write - write(2) that waits for room or the end of `c`.
 *
 * On a blocking descriptor it writes all n bytes, waiting as needed, as
 * write(2) does; on a non-blocking one it returns once some bytes went.
 * If c ends after some bytes were written, it returns their count (as
 * write(2) interrupted by a signal does).
 *
 * Returns: the bytes written.
 * Errors (-1, errno): ECANCELED or ETIMEDOUT when c is done before any
 * byte went; EINVAL if c is NULL; otherwise write(2)'s, EAGAIN and EINTR
 * excepted (EPIPE needs SIGPIPE ignored or blocked, as for write(2)).
 * Blocks: until written, or c done.
 */
CTX_API ssize_t ctx_write(ctx_t *c, int fd, const void *buf, size_t n);

/*
 * ctx_accept - accept4(fd, addr, len, SOCK_CLOEXEC) that waits for a
 * connection or the end of `c`. The new descriptor is close-on-exec.
 *
 * On a blocking listening socket shared by several accepting threads, a
 * connection taken by another thread between readiness and accept makes
 * this call wait in accept(2) for the next one: use non-blocking
 * listening sockets for that.
 *
 * Returns: the new descriptor.
 * Errors (-1, errno): ECANCELED or ETIMEDOUT; EINVAL if c is NULL;
 * otherwise accept4(2)'s, EAGAIN and EINTR excepted.
 * Blocks: until a connection, or c done.
 */
CTX_API int ctx_accept(ctx_t *c, int fd, struct sockaddr *addr, socklen_t *len);

/*
 * ctx_connect - connect(2) that waits for the connection or the end of
 * `c`. A blocking socket is made non-blocking for the duration of the
 * call and restored after (its file status flags are shared with its
 * duplicates). If c ends first the socket is left unconnected (and should
 * be closed).
 *
 * Returns: 0 once connected.
 * Errors (-1, errno): ECANCELED or ETIMEDOUT; EINVAL if c is NULL;
 * otherwise connect(2)'s (as reported through SO_ERROR), EINPROGRESS,
 * EALREADY and EINTR excepted.
 * Blocks: until connected, refused, or c done.
 */
CTX_API int ctx_connect(ctx_t *c, int fd, const struct sockaddr *addr,
                        socklen_t len);

/*
 * ctx_poll - poll(2) on `fds` that also ends when `c` does.
 *
 * `timeout` is in nanoseconds, as poll(2)'s is in milliseconds: negative
 * waits without a limit, 0 checks once; it runs on the real clock (the
 * context's deadline, test clock or not, ends the call through c).
 *
 * Returns: the number of entries with events (0 if the timeout passed).
 * Errors (-1, errno): ECANCELED or ETIMEDOUT when c is done first;
 * EINVAL if c is NULL or n is too large; otherwise poll(2)'s, EINTR
 * excepted.
 * Blocks: up to timeout.
 */
CTX_API int ctx_poll(ctx_t *c, struct pollfd *fds, nfds_t n,
                     ctx_time_t timeout);

/*
 * ctx_sleep - sleep for `d` nanoseconds, or until `c` is done.
 *
 * Measured on ctx_now()'s clock, so the test clock drives it. A d <= 0
 * returns at once.
 *
 * Returns: 0 after sleeping d; ECANCELED or ETIMEDOUT (c's error) if c
 * ended first; EINVAL if c is NULL. (An int-returning call: the error is
 * the return value, errno is not set.)
 * Blocks: up to d. Go: select { case <-time.After(d): case <-ctx.Done(): }.
 */
CTX_API int ctx_sleep(ctx_t *c, ctx_time_t d);

#ifdef __cplusplus
}
#endif

#endif /* CTX_IO_H */
