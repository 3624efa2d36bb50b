/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: ctx_deadline_parse and ctx_deadline_format. Digits only,
 * EINVAL exactly otherwise; ERANGE exactly when the digits (leading zeros
 * aside) exceed INT64_MAX, by string comparison; a parsed value formats
 * back to the input without its leading zeros; any int64 formats to
 * digits that parse back (a negative one as 0).
 */
#include "fuzz.h"

#define DEADLINE_GRAMMAR "^[0-9]+$"

static void round_trip(ctx_time_t d)
{
    char buf[CTX_DURATION_BUFSIZE];
    ctx_time_t back = FUZZ_UNTOUCHED;
    int len = ctx_deadline_format(d, buf, sizeof buf);
    FUZZ_CHECK(len > 0 && len <= 19 && strlen(buf) == (size_t)len);
    FUZZ_CHECK(ctx_deadline_parse(buf, &back) == 0);
    FUZZ_CHECK(back == (d < 0 ? 0 : d));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct fuzz_parser dl = {.parse = ctx_deadline_parse,
                                    .grammar = DEADLINE_GRAMMAR,
                                    .can_range = true};
    char *s;
    ctx_time_t v;
    int rc = fuzz_parse(&dl, data, size, &s, &v);
    const char *digits = s;
    size_t n;

    /* ERANGE exactly beyond INT64_MAX, leading zeros aside. */
    while (digits[0] == '0' && digits[1] != '\0')
        digits++;
    n = strlen(digits);
    if (rc != EINVAL)
        FUZZ_CHECK(
            (rc == ERANGE) ==
            (n > 19 || (n == 19 && strcmp(digits, "9223372036854775807") > 0)));
    if (rc == 0) {
        char buf[CTX_DURATION_BUFSIZE];
        FUZZ_CHECK(ctx_deadline_format(v, buf, sizeof buf) == (int)n);
        FUZZ_CHECK(strcmp(buf, digits) == 0);
    }
    round_trip(fuzz_i64(data, size));
    free(s);
    return 0;
}
