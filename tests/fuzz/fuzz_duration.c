/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: ctx_parse_duration and ctx_format_duration. The verdict
 * must match Go's grammar (EINVAL exactly when it does not match, ERANGE
 * only when it does); a parsed value formats and parses back to itself;
 * any int64 formats within CTX_DURATION_BUFSIZE, cut as snprintf cuts,
 * and parses back.
 */
#include "fuzz.h"

/* Go's ParseDuration grammar, with at least one digit per number. */
#define GO_GRAMMAR                                                             \
    "^[-+]?(0|(([0-9]+(\\.[0-9]*)?|\\.[0-9]+)"                                 \
    "(ns|us|\302\265s|\316\274s|ms|s|m|h))+)$"

static void round_trip(ctx_time_t d)
{
    char buf[CTX_DURATION_BUFSIZE], cut[CTX_DURATION_BUFSIZE];
    ctx_time_t back = FUZZ_UNTOUCHED;
    int len = ctx_format_duration(d, buf, sizeof buf);
    FUZZ_CHECK(len > 0 && len < CTX_DURATION_BUFSIZE);
    FUZZ_CHECK(strlen(buf) == (size_t)len);
    FUZZ_CHECK(ctx_parse_duration(buf, &back) == 0);
    FUZZ_CHECK(back == d);
    /* Cut: the same length back, the first cap - 1 bytes, a NUL. */
    for (size_t cap = 1; cap <= (size_t)len; cap++) {
        FUZZ_CHECK(ctx_format_duration(d, cut, cap) == len);
        FUZZ_CHECK(strlen(cut) == cap - 1);
        FUZZ_CHECK(memcmp(cut, buf, cap - 1) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct fuzz_parser go = {
        .parse = ctx_parse_duration, .grammar = GO_GRAMMAR, .can_range = true};
    char *s;
    ctx_time_t v;
    if (fuzz_parse(&go, data, size, &s, &v) == 0)
        round_trip(v);
    round_trip(fuzz_i64(data, size));
    free(s);
    return 0;
}
