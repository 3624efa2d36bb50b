/* SPDX-License-Identifier: MIT */
/*
 * What the parser fuzz targets share: the libFuzzer entry point, the input
 * as a C string in a buffer of exactly its size (so ASan catches a read
 * past the NUL), a strict reference grammar (a POSIX regular expression)
 * to hold each parser's verdict against, and a check that aborts.
 *
 * Each target builds two ways: with libFuzzer (CTX_FUZZ=ON, clang) and
 * with replay.c, a main() that feeds it every file of a corpus, which
 * ctest runs in the normal and sanitizer builds with gcc or clang.
 */
#ifndef CTX_TEST_FUZZ_H
#define CTX_TEST_FUZZ_H

#include <ctx/parse.h>

#include <errno.h>
#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(x)                                                          \
    do {                                                                       \
        if (!(x)) {                                                            \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,   \
                    #x);                                                       \
            abort();                                                           \
        }                                                                      \
    } while (0)

/* Written where a parser must not write. */
#define FUZZ_UNTOUCHED ((ctx_time_t)0x5a5a5a5a5a5a5a5aLL)

/* The input up to its first NUL, in a malloc'd buffer of exactly that
 * length plus the NUL. Free it. */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t len = nul ? (size_t)(nul - data) : size;
    char *s = malloc(len + 1);
    FUZZ_CHECK(s != NULL);
    if (len > 0)
        memcpy(s, data, len);
    s[len] = '\0';
    return s;
}

/* The first eight bytes as an int64 (little-endian, zero-padded): a
 * duration or deadline of any magnitude and sign. */
static inline int64_t fuzz_i64(const uint8_t *data, size_t size)
{
    uint64_t u = 0;
    for (size_t i = 0; i < size && i < 8; i++)
        u |= (uint64_t)data[i] << (8 * i);
    return (int64_t)u;
}

/* A parser and the strict grammar it is held to. */
struct fuzz_parser {
    int (*parse)(const char *s, ctx_time_t *out);
    const char *grammar; /* POSIX ERE: EINVAL exactly when it fails */
    bool can_range;      /* whether ERANGE is possible */
    regex_t re;          /* compiled on first use, never freed */
    bool ready;
};

/*
 * The input, as a C string in *sp (free it), through p->parse: checks
 * that the result is 0, EINVAL or (if it can be) ERANGE, that EINVAL
 * comes exactly when the grammar does not match, and that *v is written
 * on success only. Returns the parser's result.
 */
static inline int fuzz_parse(struct fuzz_parser *p, const uint8_t *data,
                             size_t size, char **sp, ctx_time_t *v)
{
    int rc, match;
    *sp = fuzz_cstr(data, size);
    *v = FUZZ_UNTOUCHED;
    if (!p->ready) {
        FUZZ_CHECK(regcomp(&p->re, p->grammar, REG_EXTENDED | REG_NOSUB) == 0);
        p->ready = true;
    }
    rc = p->parse(*sp, v);
    match = regexec(&p->re, *sp, 0, NULL, 0) == 0;
    FUZZ_CHECK(rc == 0 || rc == EINVAL || (p->can_range && rc == ERANGE));
    FUZZ_CHECK((rc == EINVAL) == !match);
    FUZZ_CHECK(rc == 0 || *v == FUZZ_UNTOUCHED);
    return rc;
}

#endif /* CTX_TEST_FUZZ_H */
