/* SPDX-License-Identifier: MIT */
/*
 * Deadlines as text: Go's duration syntax, the duration operand of
 * timeout(1), gRPC's grpc-timeout header value, and the CTX_DEADLINE
 * variable a parent process gives its child (SPEC §5).
 *
 *     ctx_time_t d;
 *     char buf[CTX_DURATION_BUFSIZE];
 *     if (ctx_parse_duration("1h2m3.5s", &d) == 0)       // 3723.5 s
 *         ctx_format_duration(d, buf, sizeof buf);        // "1h2m3.5s"
 *
 *     ctx_t *c;                                           // in a child
 *     if (ctx_from_env(ctx_background(), &c) == 0) ...    // its deadline
 *
 * Every parser takes a NUL-terminated string, accepts nothing but the
 * whole string (no leading or trailing blanks), reads nothing past its
 * NUL, writes *out only on success, and returns EINVAL for malformed input
 * and ERANGE for a well-formed value that does not fit in ctx_time_t
 * nanoseconds (malformed wins when both apply). None of them allocates,
 * keeps state or can crash on any input.
 */
#ifndef CTX_PARSE_H
#define CTX_PARSE_H

#include <ctx/ctx.h>

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Room for any duration ctx_format_duration writes, NUL included (the
 * longest, "-2562047h47m16.854775808s", takes 26); also enough for any
 * CTX_DEADLINE value (19 digits). */
#define CTX_DURATION_BUFSIZE 32

/* Room for any grpc-timeout value, NUL included (8 digits and a unit). */
#define CTX_GRPC_TIMEOUT_BUFSIZE 10

/*
 * ctx_parse_duration - Go's time.ParseDuration: an optional sign, then one
 * or more decimal numbers, each with an optional fraction and a unit:
 * "ns", "us" (or "µs" U+00B5, "μs" U+03BC), "ms", "s", "m", "h". "0"
 * alone (signed or not) is zero. Examples: "300ms", "-1.5h", "2h45m",
 * "1.5us", ".5s", "1.s". A negative result is valid here; a caller for
 * which it makes no sense (a timeout operand) rejects it itself.
 *
 * The value is Go's to the nanosecond, the float64 scaling of fractions
 * included ("0.12960430000000m" is 7776257999 ns, as in Go, where exact
 * decimals give 7776258000); fractions beyond a
 * nanosecond are truncated toward zero, as Go does. Every text that
 * ctx_format_duration writes parses back to the same value.
 *
 * Returns: 0 and the duration in *out.
 * Errors: EINVAL if s or out is NULL, or s is malformed: empty, no digits
 * in a number (".s"), a missing or unknown unit ("1", "1d", "1 s"), any
 * other byte (blanks included). ERANGE if s is well-formed but its value
 * is beyond [-2^63, 2^63-1] ns, or any one number overflows (where Go
 * says "invalid duration"); a malformed string is EINVAL whatever its
 * magnitude. Unlike Go 1.19, a sum of components that wraps a uint64
 * ("9223372036854775808ns9223372036854775808ns", 0 in Go) is ERANGE.
 * Thread safety: safe from any thread. Async-signal-safe: yes.
 * Go: time.ParseDuration.
 */
CTX_API int ctx_parse_duration(const char *s, ctx_time_t *out);

/*
 * ctx_format_duration - Go's time.Duration.String(): "1h2m3.5s", "250ms",
 * "1.5µs" (U+00B5 in UTF-8), "-2s", "0s"; INT64_MIN is
 * "-2562047h47m16.854775808s". ctx_parse_duration reads back exactly the
 * same value.
 *
 * Returns: the length of the text (not counting the NUL), as snprintf;
 * when it is >= cap the text was cut (always NUL-terminated if cap > 0).
 * buf may be NULL when cap is 0, to measure. Never fails.
 * Thread safety: safe from any thread. Async-signal-safe: yes.
 * Go: time.Duration.String.
 */
CTX_API int ctx_format_duration(ctx_time_t d, char *buf, size_t cap);

/*
 * ctx_parse_timeout - the duration operand of coreutils timeout(1): a
 * non-negative decimal number, digits with an optional fraction ("1",
 * "1.5", ".5", "5."), then an optional suffix: s (seconds, the default),
 * m (minutes), h (hours) or d (days). "0" means no timeout to timeout(1);
 * here it is 0 and the caller decides.
 *
 * The arithmetic is exact decimal, rounded up to the nanosecond (timeout
 * rounds its double up too, so the two differ by a nanosecond at most:
 * "1.3" is 1.3 s here, 1.300000001 s there). What coreutils 9 accepts
 * through strtod but this refuses, on purpose (a duration should read the
 * same to everyone): an exponent ("1e3"), hexadecimal ("0x10"), "inf",
 * "infinity", a '+' sign, leading blanks. Like timeout it refuses a '-'
 * sign (even "-0"), "nan", trailing bytes, an upper-case suffix.
 *
 * Returns: 0 and the duration in *out.
 * Errors: EINVAL if s or out is NULL or s is malformed (as above).
 * ERANGE if the value is above INT64_MAX ns (about 292 years), where
 * timeout(1) waits "forever": a caller that wants that reads ERANGE as
 * no deadline.
 * Thread safety: safe from any thread. Async-signal-safe: yes.
 */
CTX_API int ctx_parse_timeout(const char *s, ctx_time_t *out);

/*
 * ctx_grpc_timeout_encode - the grpc-timeout header value for a duration:
 * at most 8 digits and a unit (H, M, S, m, u, n), the finest unit in
 * which the value fits in 8 digits, rounded up: the receiver gets at least
 * the time that is left, and at most one unit more ("1n", "99999999n",
 * "100000u", "2562048H" for INT64_MAX).
 *
 * Returns: 0 and the value, NUL-terminated, in buf.
 * Errors: EINVAL if buf is NULL or cap < CTX_GRPC_TIMEOUT_BUFSIZE;
 * ETIMEDOUT if d <= 0: no time is left, and the protocol has no value
 * for that (its digits are a positive integer), so nothing is to be sent
 * and the caller fails the call with DEADLINE_EXCEEDED. buf is not
 * written on error.
 * Thread safety: safe from any thread. Async-signal-safe: yes.
 * Go: grpc-go's encodeTimeout (which sends "0n" for d <= 0).
 */
CTX_API int ctx_grpc_timeout_encode(ctx_time_t d, char *buf, size_t cap);

/*
 * ctx_grpc_timeout_decode - a grpc-timeout header value: 1 to 8 ASCII
 * digits (leading zeros allowed) and one unit letter, nothing else. "0n"
 * is accepted and gives 0 (a deadline already past), as grpc-go does.
 * Values beyond INT64_MAX ns (hours above 2562047) are clamped to
 * CTX_NO_DEADLINE, as grpc-go clamps them: more than 292 years is no
 * limit.
 *
 * Returns: 0 and the duration in *out.
 * Errors: EINVAL if s or out is NULL or s is malformed (no digits, a ninth
 * digit, no unit or an unknown one, anything after the unit).
 * Thread safety: safe from any thread. Async-signal-safe: yes.
 * Go: grpc-go's decodeTimeout.
 */
CTX_API int ctx_grpc_timeout_decode(const char *s, ctx_time_t *out);

/*
 * ctx_deadline_format - the CTX_DEADLINE value for an absolute deadline:
 * decimal nanoseconds of CLOCK_MONOTONIC (ctx_now's clock, shared by all
 * processes of the machine), digits only. A negative deadline (long
 * past) is written as "0", which is just as past.
 *
 * Returns: the length, as snprintf (at most 19; CTX_DURATION_BUFSIZE
 * bytes always suffice). buf may be NULL when cap is 0. Never fails.
 * Thread safety: safe from any thread. Async-signal-safe: yes.
 */
CTX_API int ctx_deadline_format(ctx_time_t deadline, char *buf, size_t cap);

/*
 * ctx_deadline_parse - read a CTX_DEADLINE value back: decimal digits
 * only (no sign, no blanks), at most INT64_MAX.
 *
 * Returns: 0 and the deadline in *out.
 * Errors: EINVAL if s or out is NULL or s is not all digits (empty, a
 * sign, anything else); ERANGE if the digits exceed INT64_MAX.
 * Thread safety: safe from any thread. Async-signal-safe: yes.
 */
CTX_API int ctx_deadline_parse(const char *s, ctx_time_t *out);

/*
 * ctx_from_env - a context for this process from the deadline its parent
 * exported: a child of `parent` with the deadline in CTX_DEADLINE (the
 * earlier of it and parent's), or a plain cancellable child of `parent`
 * when the variable is not set or empty ("CTX_DEADLINE= cmd" is how a
 * shell drops it). A deadline already past gives a context that is done
 * (ETIMEDOUT) at once.
 *
 * Returns: 0 and the context in *out (release it with ctx_release).
 * Errors: EINVAL if parent or out is NULL, or CTX_DEADLINE is malformed
 * (the parent meant a deadline, and it is not silently dropped); ERANGE
 * if its digits exceed INT64_MAX; ENOMEM; EAGAIN (the timer thread could
 * not start). On error *out is NULL (when out is not NULL).
 * Thread safety: reads the environment with getenv, so not safe against a
 * concurrent setenv/putenv in another thread (nothing is).
 */
CTX_API int ctx_from_env(ctx_t *parent, ctx_t **out);

#ifdef __cplusplus
}
#endif

#endif /* CTX_PARSE_H */
