/* SPDX-License-Identifier: MIT */
/*
 * Conventions shared by every libctx header: the export macro, time and its
 * units, and error names. Included by every other public header.
 */
#ifndef CTX_BASE_H
#define CTX_BASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__) || defined(__clang__)
#define CTX_API __attribute__((visibility("default")))
#else
#define CTX_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Time. A ctx_time_t is a count of nanoseconds. Absolute times (deadlines,
 * ctx_now()) are on CLOCK_MONOTONIC, which every process of one machine
 * shares; relative times (timeouts) are plain durations.
 */
typedef int64_t ctx_time_t;

#define CTX_NANOSECOND  ((ctx_time_t)1)
#define CTX_MICROSECOND ((ctx_time_t)1000)
#define CTX_MILLISECOND ((ctx_time_t)1000000)
#define CTX_SECOND      ((ctx_time_t)1000000000)
#define CTX_MINUTE      ((ctx_time_t)60 * CTX_SECOND)
#define CTX_HOUR        ((ctx_time_t)60 * CTX_MINUTE)

/* The deadline of a context that has none; also "wait without a limit". */
#define CTX_NO_DEADLINE INT64_MAX

/*
 * ctx_now - the current time on CLOCK_MONOTONIC, in nanoseconds.
 *
 * While the test clock is enabled (see <ctx/obs.h>) it returns the virtual
 * time instead, so code that computes deadlines from ctx_now() follows it.
 *
 * Returns: nanoseconds since an unspecified start (boot, on Linux).
 * Thread safety: safe from any thread. Async-signal-safe: yes.
 * Go: time.Now() (monotonic reading).
 */
CTX_API ctx_time_t ctx_now(void);

/*
 * ctx_errname - the symbolic name of an error code, for logs and tests.
 *
 * Returns: a static string such as "ECANCELED" or "ETIMEDOUT"; "OK" for 0;
 * "EUNKNOWN" for a code that is not a Linux errno value (a negative task
 * result, say). Never NULL.
 * Thread safety: safe from any thread. Async-signal-safe: yes.
 */
CTX_API const char *ctx_errname(int code);

/*
 * ctx_version - the library version as "MAJOR.MINOR.PATCH".
 *
 * Returns: a static string.
 */
CTX_API const char *ctx_version(void);

#ifdef __cplusplus
}
#endif

#endif /* CTX_BASE_H */
