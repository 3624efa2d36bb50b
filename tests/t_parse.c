/* SPDX-License-Identifier: MIT */
/*
 * Deadlines as text (SPEC §5): Go durations against Go's own answers
 * (parse_go_table.h), timeout(1) operands against exact values and against
 * the timeout installed here, grpc-timeout, CTX_DEADLINE and ctx_from_env;
 * round trips over 10^6 pseudo-random durations.
 */
#include "t.h"

#include "parse_go_table.h"

#include <ctx/parse.h>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

#define N_OF(a)   (sizeof(a) / sizeof((a)[0]))
#define UNTOUCHED ((ctx_time_t)0x5a5a5a5a5a5a5a5aLL)

extern char **environ;

/* ------------------------------------------------------------ Go */

T_CASE(duration_go_table)
{
    for (size_t i = 0; i < N_OF(go_parse_cases); i++) {
        const struct go_parse_case *k = &go_parse_cases[i];
        ctx_time_t v = UNTOUCHED;
        int rc = ctx_parse_duration(k->in, &v);
        if (rc != k->rc || v != (k->rc ? UNTOUCHED : k->ns)) {
            fprintf(stderr, "  input \"%s\"%s\n", k->in,
                    k->go_wraps ? " (wraps in Go)" : "");
            T_ERR(rc, k->rc);
            T_EQ(v, k->rc ? UNTOUCHED : k->ns);
        }
    }
    printf("  %zu inputs as Go parses them\n", N_OF(go_parse_cases));
}

T_CASE(duration_go_format)
{
    char buf[CTX_DURATION_BUFSIZE];
    for (size_t i = 0; i < N_OF(go_format_cases); i++) {
        const struct go_format_case *k = &go_format_cases[i];
        ctx_time_t back = UNTOUCHED;
        T_EQ(ctx_format_duration(k->ns, buf, sizeof buf), strlen(k->text));
        T_STREQ(buf, k->text);
        T_OK(ctx_parse_duration(buf, &back));
        T_EQ(back, k->ns);
    }
}

T_CASE(duration_errors)
{
    ctx_time_t v = UNTOUCHED;
    T_ERR(ctx_parse_duration(NULL, &v), EINVAL);
    T_ERR(ctx_parse_duration("1s", NULL), EINVAL);
    /* Malformed wins over too large, in either order. */
    T_ERR(ctx_parse_duration("99999999999999999999x", &v), EINVAL);
    T_ERR(ctx_parse_duration("99999999999999999999s1", &v), EINVAL);
    T_ERR(ctx_parse_duration("99999999999999999999s", &v), ERANGE);
    T_ERR(ctx_parse_duration("3000000h1d", &v), EINVAL);
    T_ERR(ctx_parse_duration("3000000h", &v), ERANGE);
    T_ERR(ctx_parse_duration("-9223372036854775809ns", &v), ERANGE);
    T_ERR(ctx_parse_duration("9223372036854775808ns", &v), ERANGE);
    T_EQ(v, UNTOUCHED);
    T_OK(ctx_parse_duration("-9223372036854775808ns", &v));
    T_EQ(v, INT64_MIN);
    T_OK(ctx_parse_duration("9223372036854775807ns", &v));
    T_EQ(v, INT64_MAX);
}

T_CASE(duration_format_cut)
{
    char buf[8];
    /* "1h2m3.5s" is 8 bytes: measured, then cut as snprintf cuts. */
    T_EQ(ctx_format_duration(3723500 * CTX_MILLISECOND, NULL, 0), 8);
    memset(buf, 'x', sizeof buf);
    T_EQ(ctx_format_duration(3723500 * CTX_MILLISECOND, buf, 1), 8);
    T_EQ(buf[0], '\0');
    T_EQ(buf[1], 'x');
    T_EQ(ctx_format_duration(3723500 * CTX_MILLISECOND, buf, 5), 8);
    T_STREQ(buf, "1h2m");
    T_EQ(ctx_format_duration(3723500 * CTX_MILLISECOND, buf, sizeof buf), 8);
    T_STREQ(buf, "1h2m3.5");
    T_EQ(ctx_format_duration(0, buf, 0), 2);
    T_EQ(buf[0], '1'); /* cap 0: not written */
    T_EQ(ctx_format_duration(INT64_MIN, NULL, 0), 25);
    T_LT(25, CTX_DURATION_BUFSIZE);
}

/* Durations of every magnitude and sign, the edges among them. */
static ctx_time_t some_duration(uint64_t *seed, long i)
{
    static const ctx_time_t edges[] = {0,
                                       1,
                                       -1,
                                       999,
                                       1000,
                                       999999,
                                       1000000,
                                       999999999,
                                       1000000000,
                                       59999999999,
                                       60000000000,
                                       CTX_HOUR,
                                       INT64_MAX,
                                       INT64_MIN,
                                       INT64_MIN + 1,
                                       INT64_MAX - 1};
    uint64_t r;
    if ((size_t)i < N_OF(edges))
        return edges[i];
    r = t_rand(seed);
    return (ctx_time_t)(r >> (t_rand(seed) % 64));
}

T_CASE(duration_round_trip)
{
    uint64_t seed = 1;
    long n = t_scale(1000000);
    char buf[CTX_DURATION_BUFSIZE];
    for (long i = 0; i < n; i++) {
        ctx_time_t d = some_duration(&seed, i), back = UNTOUCHED;
        int len = ctx_format_duration(d, buf, sizeof buf);
        T_LT(len, CTX_DURATION_BUFSIZE);
        T_EQ((size_t)len, strlen(buf));
        T_OK(ctx_parse_duration(buf, &back));
        if (back != d)
            fprintf(stderr, "  \"%s\"\n", buf);
        T_EQ(back, d);
    }
    printf("  %ld durations formatted and parsed back\n", n);
}

/* ------------------------------------------------------------ timeout(1) */

static const struct timeout_case {
    const char *in;
    int rc;
    ctx_time_t ns;
} timeout_cases[] = {
    {"0", 0, 0},
    {"1", 0, CTX_SECOND},
    {"1s", 0, CTX_SECOND},
    {"1.5s", 0, 1500 * CTX_MILLISECOND},
    {"0.5m", 0, 30 * CTX_SECOND},
    {"1m", 0, CTX_MINUTE},
    {"2h", 0, 2 * CTX_HOUR},
    {"1d", 0, 24 * CTX_HOUR},
    {"1.5d", 0, 36 * CTX_HOUR},
    {".5", 0, 500 * CTX_MILLISECOND},
    {"5.", 0, 5 * CTX_SECOND},
    {"007", 0, 7 * CTX_SECOND},
    {"1.3", 0, 1300 * CTX_MILLISECOND},
    {"0.000000001", 0, 1},
    {"0.0000000001", 0, 1}, /* rounded up, as timeout does */
    {"0.0000000000", 0, 0},
    {"1.0000000001", 0, CTX_SECOND + 1},
    {"1.123456789123m", 0, 67407407348},
    {"0.1h", 0, 6 * CTX_MINUTE},
    {"0.00001d", 0, 864000000},
    {"0.000000000001d", 0, 87}, /* 86.4 ns */
    {"9223372036.854775807", 0, INT64_MAX},
    {"9223372036.8547758070000", 0, INT64_MAX},
    {"9223372036.8547758071", ERANGE, 0},
    {"9223372037", ERANGE, 0},
    {"106751.99116730063d", 0, 9223372036854774432},
    {"106752d", ERANGE, 0},
    {"153722867.28091258m", 0, 9223372036854754800},
    {"2562047.788015215h", 0, 9223372036854774000},
    {"99999999999999999999", ERANGE, 0},
    /* Past 2^64 at each step: digits, suffix, carry, seconds, fraction. */
    {"18446744073709551616", ERANGE, 0},
    {"1844674407370955161d", ERANGE, 0},
    {"307445734561825860.99m", ERANGE, 0},
    {"18446744073", ERANGE, 0},
    {"18446744073.709551616", ERANGE, 0},
    {"99999999999999999999999999999999999999d", ERANGE, 0},
    {"99999999999999999999999999999999999999x", EINVAL, 0},
    {"", EINVAL, 0},
    {".", EINVAL, 0},
    {"s", EINVAL, 0},
    {".s", EINVAL, 0},
    {"-1", EINVAL, 0},
    {"-0", EINVAL, 0},
    {"+1", EINVAL, 0},
    {" 1", EINVAL, 0},
    {"1 ", EINVAL, 0},
    {"1e3", EINVAL, 0},
    {"0x10", EINVAL, 0},
    {"inf", EINVAL, 0},
    {"nan", EINVAL, 0},
    {"1S", EINVAL, 0},
    {"1D", EINVAL, 0},
    {"1ss", EINVAL, 0},
    {"1ms", EINVAL, 0},
    {"1x", EINVAL, 0},
    {"1.5.5", EINVAL, 0},
    {"1,5", EINVAL, 0},
    {"1.5 s", EINVAL, 0},
    {"s1", EINVAL, 0},
};

T_CASE(timeout_operands)
{
    for (size_t i = 0; i < N_OF(timeout_cases); i++) {
        const struct timeout_case *k = &timeout_cases[i];
        ctx_time_t v = UNTOUCHED;
        int rc = ctx_parse_timeout(k->in, &v);
        if (rc != k->rc || v != (k->rc ? UNTOUCHED : k->ns))
            fprintf(stderr, "  input \"%s\"\n", k->in);
        T_ERR(rc, k->rc);
        T_EQ(v, k->rc ? UNTOUCHED : k->ns);
    }
    T_ERR(ctx_parse_timeout(NULL, &(ctx_time_t){0}), EINVAL);
    T_ERR(ctx_parse_timeout("1", NULL), EINVAL);
}

/* A fraction of any length is exact: 0.(9 x 1000) days is a day, rounded
 * up from a hair below; 1.(0 x 1000)1 seconds is a nanosecond over. */
T_CASE(timeout_long_fraction)
{
    static char s[1100];
    ctx_time_t v;
    memset(s, '9', sizeof s - 1);
    s[0] = '0';
    s[1] = '.';
    s[sizeof s - 2] = 'd';
    T_OK(ctx_parse_timeout(s, &v));
    T_EQ(v, 24 * CTX_HOUR);
    s[sizeof s - 2] = 'x';
    T_ERR(ctx_parse_timeout(s, &v), EINVAL);
    memset(s, '0', sizeof s - 1);
    s[1] = '.';
    s[0] = s[sizeof s - 3] = '1';
    s[sizeof s - 2] = 's';
    T_OK(ctx_parse_timeout(s, &v));
    T_EQ(v, CTX_SECOND + 1);
}

/* The exit status of `timeout ARG true`: 125 is timeout refusing ARG. */
static int run_timeout(const char *arg)
{
    char *argv[] = {"timeout", (char *)arg, "true", NULL};
    posix_spawn_file_actions_t fa;
    pid_t pid;
    int st, rc;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    rc = posix_spawnp(&pid, "timeout", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        return -1;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* What timeout(1) accepts and this refuses, on purpose (parse.h). */
static const char *const timeout_refused_here[] = {
    "1e3", "1E3", "0x10", "0x1p3", "inf", "infinity", "1e400", "+1", " 1",
};

static bool refused_here(const char *in)
{
    for (size_t i = 0; i < N_OF(timeout_refused_here); i++)
        if (strcmp(in, timeout_refused_here[i]) == 0)
            return true;
    return false;
}

T_CASE(timeout_as_gnu_timeout)
{
    int compared = 0;
    if (run_timeout("1d") != 0) {
        printf("  skipped: no working timeout(1) here\n");
        return;
    }
    for (size_t i = 0; i < N_OF(timeout_cases); i++) {
        const char *in = timeout_cases[i].in;
        int gnu, rc;
        ctx_time_t v;
        if (refused_here(in))
            continue;
        gnu = run_timeout(in);
        T_TRUE(gnu >= 0);
        rc = ctx_parse_timeout(in, &v);
        /* ERANGE: timeout(1) waits forever, a valid operand to it. */
        if ((gnu != 125) != (rc == 0 || rc == ERANGE))
            fprintf(stderr, "  \"%s\": timeout exits %d, here %s\n", in, gnu,
                    ctx_errname(rc));
        T_EQ(gnu != 125, rc == 0 || rc == ERANGE);
        compared++;
    }
    for (size_t i = 0; i < N_OF(timeout_refused_here); i++) {
        const char *in = timeout_refused_here[i];
        ctx_time_t v;
        T_NE(run_timeout(in), 125);
        T_ERR(ctx_parse_timeout(in, &v), EINVAL);
    }
    printf("  %d operands judged as timeout(1) judges them, %zu refused "
           "here on purpose\n",
           compared, N_OF(timeout_refused_here));
}

/* ------------------------------------------------------------ gRPC */

T_CASE(grpc_encode)
{
    static const struct {
        ctx_time_t d;
        const char *text;
    } cases[] = {
        {1, "1n"},
        {99999999, "99999999n"},
        {100000000, "100000u"},
        {100000001, "100001u"},
        {99999999000, "99999999u"},
        {99999999001, "100000m"},
        {CTX_SECOND, "1000000u"},
        {CTX_HOUR, "3600000m"},
        {99999999 * CTX_MILLISECOND, "99999999m"},
        {99999999 * CTX_MILLISECOND + 1, "100000S"},
        {99999999 * CTX_SECOND + 1, "1666667M"},
        {99999999 * CTX_MINUTE + 1, "1666667H"},
        {INT64_MAX, "2562048H"},
    };
    char buf[CTX_GRPC_TIMEOUT_BUFSIZE];
    for (size_t i = 0; i < N_OF(cases); i++) {
        T_OK(ctx_grpc_timeout_encode(cases[i].d, buf, sizeof buf));
        T_STREQ(buf, cases[i].text);
    }
    /* Nothing left, or nowhere to write: buf untouched. */
    strcpy(buf, "x");
    T_ERR(ctx_grpc_timeout_encode(0, buf, sizeof buf), ETIMEDOUT);
    T_ERR(ctx_grpc_timeout_encode(-1, buf, sizeof buf), ETIMEDOUT);
    T_ERR(ctx_grpc_timeout_encode(INT64_MIN, buf, sizeof buf), ETIMEDOUT);
    T_ERR(ctx_grpc_timeout_encode(1, buf, sizeof buf - 1), EINVAL);
    T_ERR(ctx_grpc_timeout_encode(1, NULL, sizeof buf), EINVAL);
    T_STREQ(buf, "x");
}

T_CASE(grpc_decode)
{
    static const struct {
        const char *in;
        int rc;
        ctx_time_t ns;
    } cases[] = {
        {"1n", 0, 1},
        {"0n", 0, 0},
        {"1u", 0, CTX_MICROSECOND},
        {"1m", 0, CTX_MILLISECOND},
        {"1S", 0, CTX_SECOND},
        {"1M", 0, CTX_MINUTE},
        {"1H", 0, CTX_HOUR},
        {"00000001S", 0, CTX_SECOND},
        {"99999999n", 0, 99999999},
        {"2562047H", 0, 2562047 * CTX_HOUR},
        {"2562048H", 0, CTX_NO_DEADLINE}, /* clamped */
        {"99999999H", 0, CTX_NO_DEADLINE},
        {"99999999M", 0, 99999999 * CTX_MINUTE},
        {"", EINVAL, 0},
        {"n", EINVAL, 0},
        {"1", EINVAL, 0},
        {"12345678", EINVAL, 0},
        {"123456789n", EINVAL, 0},
        {"000000001n", EINVAL, 0},
        {"1x", EINVAL, 0},
        {"1s", EINVAL, 0},
        {"1h", EINVAL, 0},
        {"1nn", EINVAL, 0},
        {" 1n", EINVAL, 0},
        {"1n ", EINVAL, 0},
        {"1 n", EINVAL, 0},
        {"-1n", EINVAL, 0},
        {"+1n", EINVAL, 0},
        {"1.5S", EINVAL, 0},
    };
    for (size_t i = 0; i < N_OF(cases); i++) {
        ctx_time_t v = UNTOUCHED;
        int rc = ctx_grpc_timeout_decode(cases[i].in, &v);
        if (rc != cases[i].rc)
            fprintf(stderr, "  input \"%s\"\n", cases[i].in);
        T_ERR(rc, cases[i].rc);
        T_EQ(v, cases[i].rc ? UNTOUCHED : cases[i].ns);
    }
    T_ERR(ctx_grpc_timeout_decode(NULL, &(ctx_time_t){0}), EINVAL);
    T_ERR(ctx_grpc_timeout_decode("1n", NULL), EINVAL);
}

/* decode(encode(d)) is d rounded up to the unit chosen, which is the
 * finest in which the count fits in 8 digits. */
T_CASE(grpc_round_trip)
{
    static const ctx_time_t units[] = {
        1, CTX_MICROSECOND, CTX_MILLISECOND, CTX_SECOND, CTX_MINUTE, CTX_HOUR};
    static const char letters[] = "numSMH";
    uint64_t seed = 2;
    long n = t_scale(1000000);
    char buf[CTX_GRPC_TIMEOUT_BUFSIZE];
    for (long i = 0; i < n; i++) {
        ctx_time_t d = some_duration(&seed, i), back;
        const char *u;
        size_t k;
        if (d <= 0)
            d = d == INT64_MIN ? INT64_MAX : (d == 0 ? 1 : -d);
        T_OK(ctx_grpc_timeout_encode(d, buf, sizeof buf));
        T_LE(strlen(buf), 9);
        T_NOTNULL(u = strchr(letters, buf[strlen(buf) - 1]));
        k = (size_t)(u - letters);
        T_OK(ctx_grpc_timeout_decode(buf, &back));
        T_GE(back, d);
        T_TRUE(back - d < units[k]);
        /* Finest: one unit finer needs a ninth digit. */
        if (k > 0)
            T_GT(d / units[k - 1] + (d % units[k - 1] != 0), 99999999);
    }
    printf("  %ld durations encoded and decoded\n", n);
}

/* ------------------------------------------------------------ CTX_DEADLINE */

T_CASE(deadline_text)
{
    char buf[CTX_DURATION_BUFSIZE];
    ctx_time_t v = UNTOUCHED;
    T_EQ(ctx_deadline_format(0, buf, sizeof buf), 1);
    T_STREQ(buf, "0");
    T_EQ(ctx_deadline_format(-5, buf, sizeof buf), 1);
    T_STREQ(buf, "0");
    T_EQ(ctx_deadline_format(INT64_MIN, buf, sizeof buf), 1);
    T_STREQ(buf, "0");
    T_EQ(ctx_deadline_format(INT64_MAX, buf, sizeof buf), 19);
    T_STREQ(buf, "9223372036854775807");
    T_EQ(ctx_deadline_format(1234567, buf, 4), 7);
    T_STREQ(buf, "123");
    T_EQ(ctx_deadline_format(1234567, NULL, 0), 7);

    T_OK(ctx_deadline_parse("9223372036854775807", &v));
    T_EQ(v, INT64_MAX);
    T_OK(ctx_deadline_parse("0", &v));
    T_EQ(v, 0);
    T_OK(ctx_deadline_parse("000123", &v));
    T_EQ(v, 123);
    v = UNTOUCHED;
    T_ERR(ctx_deadline_parse("9223372036854775808", &v), ERANGE);
    T_ERR(ctx_deadline_parse("99999999999999999999999", &v), ERANGE);
    T_ERR(ctx_deadline_parse("99999999999999999999999x", &v), EINVAL);
    T_ERR(ctx_deadline_parse("", &v), EINVAL);
    T_ERR(ctx_deadline_parse("-1", &v), EINVAL);
    T_ERR(ctx_deadline_parse("+1", &v), EINVAL);
    T_ERR(ctx_deadline_parse(" 1", &v), EINVAL);
    T_ERR(ctx_deadline_parse("1 ", &v), EINVAL);
    T_ERR(ctx_deadline_parse("1s", &v), EINVAL);
    T_ERR(ctx_deadline_parse("0x10", &v), EINVAL);
    T_ERR(ctx_deadline_parse("1.5", &v), EINVAL);
    T_ERR(ctx_deadline_parse(NULL, &v), EINVAL);
    T_ERR(ctx_deadline_parse("1", NULL), EINVAL);
    T_EQ(v, UNTOUCHED);
}

T_CASE(deadline_round_trip)
{
    uint64_t seed = 3;
    long n = t_scale(1000000);
    char buf[CTX_DURATION_BUFSIZE];
    for (long i = 0; i < n; i++) {
        ctx_time_t d = some_duration(&seed, i), back;
        T_LT(ctx_deadline_format(d, buf, sizeof buf), CTX_DURATION_BUFSIZE);
        T_OK(ctx_deadline_parse(buf, &back));
        T_EQ(back, d < 0 ? 0 : d);
    }
}

/* ------------------------------------------------------------ from_env */

static int with_env(const char *value, ctx_t *parent, ctx_t **out)
{
    int rc;
    if (value)
        setenv("CTX_DEADLINE", value, 1);
    else
        unsetenv("CTX_DEADLINE");
    rc = ctx_from_env(parent, out);
    unsetenv("CTX_DEADLINE");
    return rc;
}

static const char *deadline_text(ctx_time_t dl)
{
    static char buf[CTX_DURATION_BUFSIZE];
    ctx_deadline_format(dl, buf, sizeof buf);
    return buf;
}

T_CASE(from_env_unset_and_set)
{
    ctx_t *c = (ctx_t *)1;
    ctx_time_t dl, want = ctx_now() + CTX_HOUR;

    /* Unset or empty: a plain cancellable child. */
    T_OK(with_env(NULL, ctx_background(), &c));
    T_FALSE(ctx_deadline(c, &dl));
    T_OK(ctx_err(c));
    ctx_cancel(c);
    T_ERR(ctx_err(c), ECANCELED);
    T_OK(ctx_err(ctx_background()));
    ctx_release(c);
    T_OK(with_env("", ctx_background(), &c));
    T_FALSE(ctx_deadline(c, &dl));
    ctx_release(c);

    T_OK(with_env(deadline_text(want), ctx_background(), &c));
    T_TRUE(ctx_deadline(c, &dl));
    T_EQ(dl, want);
    T_OK(ctx_err(c));
    ctx_release(c);
}

T_CASE(from_env_past)
{
    ctx_t *c;
    T_OK(with_env("1", ctx_background(), &c));
    T_ERR(ctx_err(c), ETIMEDOUT);
    ctx_release(c);
    T_OK(with_env(deadline_text(ctx_now() - CTX_MILLISECOND), ctx_background(),
                  &c));
    T_ERR(ctx_err(c), ETIMEDOUT);
    ctx_release(c);
}

T_CASE(from_env_nested)
{
    ctx_t *parent, *c;
    ctx_time_t now = ctx_now(), dl;
    T_OK(ctx_with_deadline(ctx_background(), now + 10 * CTX_SECOND, &parent));
    /* The parent's is earlier: it wins. */
    T_OK(with_env(deadline_text(now + CTX_HOUR), parent, &c));
    T_TRUE(ctx_deadline(c, &dl));
    T_EQ(dl, now + 10 * CTX_SECOND);
    ctx_release(c);
    /* The variable's is earlier: it wins. */
    T_OK(with_env(deadline_text(now + 5 * CTX_SECOND), parent, &c));
    T_TRUE(ctx_deadline(c, &dl));
    T_EQ(dl, now + 5 * CTX_SECOND);
    /* And the child still follows its parent. */
    ctx_cancel(parent);
    T_ERR(ctx_err(c), ECANCELED);
    ctx_release(c);
    ctx_release(parent);
}

T_CASE(from_env_errors)
{
    static const struct {
        const char *value;
        int rc;
    } bad[] = {
        {"soon", EINVAL},       {"-1", EINVAL},
        {" 123", EINVAL},       {"123 ", EINVAL},
        {"1.5", EINVAL},        {"10s", EINVAL},
        {"0x7fffffff", EINVAL}, {"99999999999999999999", ERANGE},
    };
    int64_t live = t_live_contexts();
    for (size_t i = 0; i < N_OF(bad); i++) {
        ctx_t *c = (ctx_t *)1;
        T_ERR(with_env(bad[i].value, ctx_background(), &c), bad[i].rc);
        T_NULL(c);
    }
    {
        ctx_t *c = (ctx_t *)1;
        T_ERR(ctx_from_env(NULL, &c), EINVAL);
        T_NULL(c);
        T_ERR(ctx_from_env(ctx_background(), NULL), EINVAL);
    }
    T_EQ(t_live_contexts(), live);
}
