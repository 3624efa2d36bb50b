/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: ctx_grpc_timeout_decode and _encode. Decoding must match
 * the header's grammar (EINVAL exactly when it does not match, never
 * another error) and give the digits times the unit, clamped at
 * CTX_NO_DEADLINE; encoding any duration > 0 gives at most 8 digits in
 * the finest unit that holds them, which decodes to the duration rounded
 * up by less than one unit; a duration <= 0 is ETIMEDOUT, buffer
 * untouched.
 */
#include "fuzz.h"

#define GRPC_GRAMMAR "^[0-9]{1,8}[HMSmun]$"

static const char letters[] = "numSMH";
static const ctx_time_t units[] = {1,          CTX_MICROSECOND, CTX_MILLISECOND,
                                   CTX_SECOND, CTX_MINUTE,      CTX_HOUR};

static size_t unit_of(char letter)
{
    const char *u = strchr(letters, letter);
    FUZZ_CHECK(letter != '\0' && u != NULL);
    return (size_t)(u - letters);
}

static void encode(ctx_time_t d)
{
    char buf[CTX_GRPC_TIMEOUT_BUFSIZE] = "x";
    ctx_time_t back = FUZZ_UNTOUCHED;
    size_t len, k;
    if (d <= 0) {
        FUZZ_CHECK(ctx_grpc_timeout_encode(d, buf, sizeof buf) == ETIMEDOUT);
        FUZZ_CHECK(strcmp(buf, "x") == 0);
        return;
    }
    FUZZ_CHECK(ctx_grpc_timeout_encode(d, buf, sizeof buf) == 0);
    len = strlen(buf);
    FUZZ_CHECK(len >= 2 && len <= 9);
    k = unit_of(buf[len - 1]);
    FUZZ_CHECK(ctx_grpc_timeout_decode(buf, &back) == 0);
    FUZZ_CHECK(back >= d && back - d < units[k]);
    if (k > 0) /* finest: one unit finer needs a ninth digit */
        FUZZ_CHECK(d / units[k - 1] + (d % units[k - 1] != 0) > 99999999);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct fuzz_parser grpc = {.parse = ctx_grpc_timeout_decode,
                                      .grammar = GRPC_GRAMMAR};
    char *s;
    ctx_time_t v;
    if (fuzz_parse(&grpc, data, size, &s, &v) == 0) {
        /* The digits times the unit, clamped. */
        size_t len = strlen(s);
        ctx_time_t n = strtoll(s, NULL, 10), want;
        if (__builtin_mul_overflow(n, units[unit_of(s[len - 1])], &want))
            want = CTX_NO_DEADLINE;
        FUZZ_CHECK(v == want);
        if (v > 0)
            encode(v);
    }
    encode(fuzz_i64(data, size));
    free(s);
    return 0;
}
