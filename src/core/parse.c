/* SPDX-License-Identifier: MIT */
/*
 * Deadlines as text: Go's duration syntax, timeout(1)'s duration operand,
 * gRPC's grpc-timeout value and the CTX_DEADLINE variable (SPEC §5).
 *
 * DESIGN
 *
 * Pure functions over NUL-terminated strings: no allocation, no recursion,
 * no state, each string read once from left to right (the timeout
 * operand's fraction is read a second time, right to left, between two
 * pointers found by the first pass), never past its NUL.
 *
 * Malformed before out of range. Each parser checks the whole syntax first
 * and only then reports a value that does not fit: an overflow sets a flag
 * and the scan goes on, so "99999999999999999999x" is EINVAL (bad unit)
 * and "99999999999999999999s" is ERANGE, whatever the order of the faults.
 * Every product and sum of the value goes through __builtin_*_overflow or
 * is bounded by a check just before it.
 *
 * Go durations follow time.ParseDuration of Go 1.19 to the nanosecond,
 * float arithmetic included: Go scales a component's fraction with
 * float64(f) * (float64(unit) / scale), so "0.12960430000000m" is
 * 7776257999 ns there (60e9 / 1e14 is a shade below 6e-4) where exact
 * decimals give 7776258000. Doubles here are IEEE binary64 evaluated without
 * excess precision (FLT_EVAL_METHOD 0 on the targets, no FMA in a lone
 * product), so the same operations give the same bits; tests/parse_go_table.h,
 * made by Go itself, checks it. One deliberate difference: Go 1.19 adds
 * components in a uint64 that can wrap ("9223372036854775808ns" twice parses as
 * 0); here that sum is ERANGE.
 *
 * ctx_format_duration is Go's Duration.String(), digit for digit; every
 * text it writes parses back to the same value, because its fractions have
 * at most as many digits as the unit has decimal places, where Go's float
 * scaling is exact (unit / 10^k is an integer).
 *
 * The timeout operand is exact decimal arithmetic, rounded up to the
 * nanosecond as coreutils rounds its double up (dtotimespec). Its grammar
 * is the plain decimal subset of what coreutils hands to strtod; the
 * exponent, hexadecimal, "inf", a sign and leading blanks are refused
 * (see the header).
 */
#include "internal.h"

#include <ctx/parse.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define U63 ((uint64_t)1 << 63) /* |INT64_MIN|, Go's bound "1<<63" */

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* snprintf's contract for a text already built: copy what fits, always
 * terminate when cap > 0, return the full length. */
static int put(char *buf, size_t cap, const char *text, size_t len)
{
    if (buf && cap > 0) {
        size_t n = len < cap - 1 ? len : cap - 1;
        memcpy(buf, text, n);
        buf[n] = '\0';
    }
    return (int)len;
}

/* Decimal digits of v ending just before end; returns the first. */
static char *fmt_uint(char *end, uint64_t v)
{
    do {
        *--end = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    return end;
}

/* ------------------------------------------------------------ Go */

struct unit {
    const char *name;
    uint64_t ns;
};

/* "µs" twice: U+00B5 (micro sign) and U+03BC (Greek mu), as Go. */
static const struct unit go_units[] = {
    {"ns", 1},           {"us", 1000},         {"\302\265s", 1000},
    {"\316\274s", 1000}, {"ms", 1000000},      {"s", 1000000000},
    {"m", 60000000000},  {"h", 3600000000000},
};

/* The unit spelled by the len bytes at p, or 0. */
static uint64_t go_unit(const char *p, size_t len)
{
    for (size_t i = 0; i < sizeof go_units / sizeof go_units[0]; i++)
        if (strlen(go_units[i].name) == len &&
            memcmp(go_units[i].name, p, len) == 0)
            return go_units[i].ns;
    return 0;
}

/* Go's leadingInt: [0-9]*, at most 1<<63 (*range set beyond). */
static const char *go_int(const char *p, uint64_t *v, bool *range)
{
    uint64_t x = 0;
    for (; is_digit(*p); p++) {
        if (x > U63 / 10) {
            *range = true;
            continue;
        }
        x = x * 10 + (uint64_t)(*p - '0');
        if (x > U63)
            *range = true;
    }
    *v = x;
    return p;
}

/* Go's leadingFraction: [0-9]*, precision kept while it fits. */
static const char *go_frac(const char *p, uint64_t *f, double *scale)
{
    uint64_t x = 0;
    double sc = 1;
    bool full = false;
    for (; is_digit(*p); p++) {
        uint64_t y;
        if (full)
            continue;
        if (x > (U63 - 1) / 10) {
            full = true;
            continue;
        }
        y = x * 10 + (uint64_t)(*p - '0');
        if (y > U63) {
            full = true;
            continue;
        }
        x = y;
        sc *= 10;
    }
    *f = x;
    *scale = sc;
    return p;
}

/* One component "12.5ms" at *pp, added to *d; *range set on overflow. */
static int go_component(const char **pp, uint64_t *d, bool *range)
{
    const char *p = *pp, *q, *u;
    uint64_t v, f = 0, unit;
    double scale = 1;

    if (!(*p == '.' || is_digit(*p)))
        return EINVAL;
    q = go_int(p, &v, range);
    if (*q == '.') {
        const char *r = go_frac(q + 1, &f, &scale);
        if (q == p && r == q + 1) /* "." without digits */
            return EINVAL;
        q = r;
    }
    for (u = q; *u && *u != '.' && !is_digit(*u); u++)
        ;
    unit = go_unit(q, (size_t)(u - q));
    if (unit == 0) /* a missing unit or an unknown one */
        return EINVAL;
    *pp = u;
    if (*range)
        return 0;
    if (v > U63 / unit) {
        *range = true;
        return 0;
    }
    v *= unit;
    if (f > 0) {
        /* f < scale, so the product is below unit (3.6e12 at most). */
        v += (uint64_t)((double)f * ((double)unit / scale));
        if (v > U63) {
            *range = true;
            return 0;
        }
    }
    if (__builtin_add_overflow(*d, v, d) || *d > U63)
        *range = true;
    return 0;
}

int ctx_parse_duration(const char *s, ctx_time_t *out)
{
    const char *p = s;
    uint64_t d = 0;
    bool neg = false, range = false;

    if (!s || !out)
        return EINVAL;
    if (*p == '-' || *p == '+')
        neg = *p++ == '-';
    if (strcmp(p, "0") == 0) {
        *out = 0;
        return 0;
    }
    if (*p == '\0')
        return EINVAL;
    while (*p) {
        int rc = go_component(&p, &d, &range);
        if (rc)
            return rc;
    }
    if (range || (!neg && d > INT64_MAX))
        return ERANGE;
    /* d <= 1<<63 here; only INT64_MIN has no positive counterpart. */
    if (!neg)
        *out = (ctx_time_t)d;
    else
        *out = d == U63 ? INT64_MIN : -(ctx_time_t)d;
    return 0;
}

/* Go's fmtFrac: prec digits of v below the point, trailing zeros and a
 * bare point left out; returns the new start, *v the integer part. */
static char *go_fmt_frac(char *end, uint64_t *v, int prec)
{
    bool print = false;
    for (int i = 0; i < prec; i++) {
        char digit = (char)(*v % 10);
        print = print || digit != 0;
        if (print)
            *--end = (char)('0' + digit);
        *v /= 10;
    }
    if (print)
        *--end = '.';
    return end;
}

int ctx_format_duration(ctx_time_t d, char *buf, size_t cap)
{
    /* The longest is "-2562047h47m16.854775808s", 25 bytes. */
    char text[CTX_DURATION_BUFSIZE], *end = text + sizeof text, *w = end;
    uint64_t u = d < 0 ? 0 - (uint64_t)d : (uint64_t)d;

    if (u == 0)
        return put(buf, cap, "0s", 2);
    *--w = 's';
    if (u < (uint64_t)CTX_SECOND) {
        int prec;
        if (u < (uint64_t)CTX_MICROSECOND) {
            prec = 0;
            *--w = 'n';
        } else if (u < (uint64_t)CTX_MILLISECOND) {
            prec = 3;
            w -= 2;
            memcpy(w, "\302\265", 2); /* U+00B5, as Go writes it */
        } else {
            prec = 6;
            *--w = 'm';
        }
        w = go_fmt_frac(w, &u, prec);
        w = fmt_uint(w, u);
    } else {
        w = go_fmt_frac(w, &u, 9);
        w = fmt_uint(w, u % 60);
        u /= 60;
        if (u > 0) {
            *--w = 'm';
            w = fmt_uint(w, u % 60);
            u /= 60;
            if (u > 0) {
                *--w = 'h';
                w = fmt_uint(w, u);
            }
        }
    }
    if (d < 0)
        *--w = '-';
    return put(buf, cap, w, (size_t)(end - w));
}

/* ------------------------------------------------------------ timeout(1) */

/*
 * The fraction digits in [f, e), times `mult` seconds, in nanoseconds
 * rounded up; *carry gets the whole seconds it adds. Multiplying the
 * decimal string by mult from its last digit up keeps it exact at any
 * length: only the first nine digits of the product are nanoseconds, any
 * other non-zero digit rounds up.
 */
static uint64_t frac_ns(const char *f, const char *e, uint64_t mult,
                        uint64_t *carry)
{
    static const uint64_t weight[9] = {
        100000000, 10000000, 1000000, 100000, 10000, 1000, 100, 10, 1};
    uint64_t ns = 0, c = 0;
    bool more = false;
    /* c < mult stays true, so t < 10 * mult. */
    for (ptrdiff_t i = e - f; i > 0; i--) {
        uint64_t t = (uint64_t)(f[i - 1] - '0') * mult + c;
        c = t / 10;
        if (i > 9)
            more = more || t % 10 != 0;
        else
            ns += (t % 10) * weight[i - 1];
    }
    *carry = c;
    return ns + (more ? 1 : 0);
}

int ctx_parse_timeout(const char *s, ctx_time_t *out)
{
    const char *p = s, *f = NULL, *fe = NULL;
    uint64_t whole = 0, mult = 1, carry, ns, total;
    bool range = false, digits = false;

    if (!s || !out)
        return EINVAL;
    for (; is_digit(*p); p++) {
        digits = true;
        if (__builtin_mul_overflow(whole, 10, &whole) ||
            __builtin_add_overflow(whole, (uint64_t)(*p - '0'), &whole))
            range = true;
    }
    if (*p == '.') {
        for (f = fe = ++p; is_digit(*fe); fe++)
            digits = true;
        p = fe;
    }
    if (!digits)
        return EINVAL;
    switch (*p) {
    case '\0':
    case 's':
        break;
    case 'm':
        mult = 60;
        break;
    case 'h':
        mult = 3600;
        break;
    case 'd':
        mult = 86400;
        break;
    default:
        return EINVAL;
    }
    if (*p && p[1])
        return EINVAL;
    ns = f ? frac_ns(f, fe, mult, &carry) : (carry = 0, 0);
    if (range || __builtin_mul_overflow(whole, mult, &whole) ||
        __builtin_add_overflow(whole, carry, &whole) ||
        __builtin_mul_overflow(whole, (uint64_t)CTX_SECOND, &total) ||
        __builtin_add_overflow(total, ns, &total) || total > INT64_MAX)
        return ERANGE;
    *out = (ctx_time_t)total;
    return 0;
}

/* ------------------------------------------------------------ gRPC */

static const struct {
    char letter;
    ctx_time_t ns;
} grpc_units[] = {
    {'n', 1},          {'u', CTX_MICROSECOND}, {'m', CTX_MILLISECOND},
    {'S', CTX_SECOND}, {'M', CTX_MINUTE},      {'H', CTX_HOUR},
};

#define GRPC_UNITS    (sizeof grpc_units / sizeof grpc_units[0])
#define GRPC_MAX      99999999 /* eight digits */
#define GRPC_MAX_DIGS 8

int ctx_grpc_timeout_encode(ctx_time_t d, char *buf, size_t cap)
{
    char text[CTX_GRPC_TIMEOUT_BUFSIZE], *end = text + sizeof text, *w;
    size_t i;
    ctx_time_t n = 0;

    if (!buf || cap < CTX_GRPC_TIMEOUT_BUFSIZE)
        return EINVAL;
    if (d <= 0)
        return ETIMEDOUT;
    /* Hours always fit: INT64_MAX ns is 2562048 h rounded up. */
    for (i = 0; i < GRPC_UNITS; i++) {
        ctx_time_t unit = grpc_units[i].ns;
        n = d / unit + (d % unit != 0);
        if (n <= GRPC_MAX)
            break;
    }
    if (CTX_NEVER(i == GRPC_UNITS))
        return EINVAL;
    w = end;
    *--w = '\0';
    *--w = grpc_units[i].letter;
    w = fmt_uint(w, (uint64_t)n);
    memcpy(buf, w, (size_t)(end - w));
    return 0;
}

int ctx_grpc_timeout_decode(const char *s, ctx_time_t *out)
{
    const char *p = s;
    ctx_time_t n = 0, v;
    size_t i;

    if (!s || !out)
        return EINVAL;
    for (; is_digit(*p) && p - s < GRPC_MAX_DIGS; p++)
        n = n * 10 + (*p - '0');
    if (p == s || *p == '\0' || p[1] != '\0')
        return EINVAL;
    for (i = 0; i < GRPC_UNITS && grpc_units[i].letter != *p; i++)
        ;
    if (i == GRPC_UNITS)
        return EINVAL;
    if (__builtin_mul_overflow(n, grpc_units[i].ns, &v))
        v = CTX_NO_DEADLINE; /* hours beyond 2562047: "no limit" */
    *out = v;
    return 0;
}

/* ------------------------------------------------------------ CTX_DEADLINE */

#define DEADLINE_MAX_DIGS 19 /* INT64_MAX */

int ctx_deadline_format(ctx_time_t deadline, char *buf, size_t cap)
{
    char text[DEADLINE_MAX_DIGS + 1], *end = text + sizeof text, *w;
    w = fmt_uint(end, deadline < 0 ? 0 : (uint64_t)deadline);
    return put(buf, cap, w, (size_t)(end - w));
}

int ctx_deadline_parse(const char *s, ctx_time_t *out)
{
    const char *p = s;
    ctx_time_t v = 0;
    bool range = false;

    if (!s || !out)
        return EINVAL;
    for (; is_digit(*p); p++)
        if (__builtin_mul_overflow(v, 10, &v) ||
            __builtin_add_overflow(v, *p - '0', &v))
            range = true;
    if (p == s || *p != '\0')
        return EINVAL;
    if (range)
        return ERANGE;
    *out = v;
    return 0;
}

int ctx_from_env(ctx_t *parent, ctx_t **out)
{
    const char *v;
    ctx_time_t dl;
    int rc;

    if (out)
        *out = NULL;
    if (!parent || !out)
        return EINVAL;
    v = getenv("CTX_DEADLINE");
    if (!v || *v == '\0')
        return ctx_with_cancel(parent, out);
    if ((rc = ctx_deadline_parse(v, &dl)) != 0)
        return rc;
    return ctx_with_deadline(parent, dl, out);
}
