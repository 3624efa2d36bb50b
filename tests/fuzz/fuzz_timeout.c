/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: ctx_parse_timeout. The verdict must match the operand's
 * grammar (EINVAL exactly when it does not match); a parsed value written
 * back as seconds with nine decimals parses to itself; and where the same
 * text is also a Go duration (suffix s, m, h or none, read as seconds),
 * the two independent parsers agree: this one rounds the exact value up,
 * Go truncates a float approximation, so they differ by 0 to 2 ns.
 */
#include "fuzz.h"

#define TIMEOUT_GRAMMAR "^([0-9]+(\\.[0-9]*)?|\\.[0-9]+)[smhd]?$"

static void round_trip(ctx_time_t v)
{
    char buf[64];
    ctx_time_t back = FUZZ_UNTOUCHED;
    snprintf(buf, sizeof buf, "%lld.%09lld", (long long)(v / CTX_SECOND),
             (long long)(v % CTX_SECOND));
    FUZZ_CHECK(ctx_parse_timeout(buf, &back) == 0);
    FUZZ_CHECK(back == v);
}

static void against_go(const char *s, ctx_time_t v)
{
    size_t len = strlen(s);
    char last = s[len - 1], *g;
    ctx_time_t d = FUZZ_UNTOUCHED;
    if (last == 'd')
        return;
    /* Exactly sized, so a read past the NUL is caught here too. */
    g = malloc(len + 2);
    FUZZ_CHECK(g != NULL);
    memcpy(g, s, len + 1);
    if (last != 's' && last != 'm' && last != 'h') {
        g[len] = 's';
        g[len + 1] = '\0';
    }
    if (ctx_parse_duration(g, &d) == 0)
        FUZZ_CHECK(v - d >= 0 && v - d <= 2);
    free(g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct fuzz_parser op = {.parse = ctx_parse_timeout,
                                    .grammar = TIMEOUT_GRAMMAR,
                                    .can_range = true};
    char *s;
    ctx_time_t v;
    if (fuzz_parse(&op, data, size, &s, &v) == 0) {
        FUZZ_CHECK(v >= 0);
        round_trip(v);
        against_go(s, v);
    }
    free(s);
    return 0;
}
