/* SPDX-License-Identifier: MIT */
/*
 * Signal names as coreutils reads them (gnulib's str2sig and operand2sig):
 * "TERM", "SIGTERM", "term", "15", "143" (the exit status of a process
 * killed by SIGTERM), "RTMIN+2", "RTMAX-1", "EXIT" (0).
 */
#define _DEFAULT_SOURCE
#include "ctxrun.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    int sig;
} names[] = {
    {"HUP", SIGHUP},       {"INT", SIGINT},       {"QUIT", SIGQUIT},
    {"ILL", SIGILL},       {"TRAP", SIGTRAP},     {"ABRT", SIGABRT},
    {"IOT", SIGABRT},      {"BUS", SIGBUS},       {"FPE", SIGFPE},
    {"KILL", SIGKILL},     {"USR1", SIGUSR1},     {"SEGV", SIGSEGV},
    {"USR2", SIGUSR2},     {"PIPE", SIGPIPE},     {"ALRM", SIGALRM},
    {"TERM", SIGTERM},
#ifdef SIGSTKFLT
    {"STKFLT", SIGSTKFLT},
#endif
    {"CHLD", SIGCHLD},     {"CLD", SIGCHLD},      {"CONT", SIGCONT},
    {"STOP", SIGSTOP},     {"TSTP", SIGTSTP},     {"TTIN", SIGTTIN},
    {"TTOU", SIGTTOU},     {"URG", SIGURG},       {"XCPU", SIGXCPU},
    {"XFSZ", SIGXFSZ},     {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF},
    {"WINCH", SIGWINCH},   {"IO", SIGIO},         {"POLL", SIGIO},
#ifdef SIGPWR
    {"PWR", SIGPWR},
#endif
    {"SYS", SIGSYS},       {"EXIT", 0},
};

#define NNAMES (sizeof names / sizeof names[0])

/* "+N" / "-N" after RTMIN / RTMAX (nothing: 0); -1 if malformed. */
static long rt_offset(const char *s, char sign)
{
    char *end;
    long n;
    if (*s == 0)
        return 0;
    if (*s != sign || !isdigit((unsigned char)s[1]))
        return -1;
    errno = 0;
    n = strtol(s + 1, &end, 10);
    return *end || errno ? -1 : n;
}

static int by_name(const char *s)
{
    long n;
    for (size_t i = 0; i < NNAMES; i++)
        if (strcmp(s, names[i].name) == 0)
            return names[i].sig;
    if (strncmp(s, "RTMIN", 5) == 0) {
        n = rt_offset(s + 5, '+');
        if (n >= 0 && n <= SIGRTMAX - SIGRTMIN)
            return SIGRTMIN + (int)n;
    } else if (strncmp(s, "RTMAX", 5) == 0) {
        n = rt_offset(s + 5, '-');
        if (n >= 0 && n <= SIGRTMAX - SIGRTMIN)
            return SIGRTMAX - (int)n;
    }
    return -1;
}

/* A number that names a signal: 0, a classic one, or a real-time one. */
static bool named(int sig)
{
    if (sig >= SIGRTMIN && sig <= SIGRTMAX)
        return true;
    for (size_t i = 0; i < NNAMES; i++)
        if (names[i].sig == sig)
            return true;
    return false;
}

int sig_parse(const char *s)
{
    char up[32];
    size_t len = strlen(s);
    int sig;

    if (isdigit((unsigned char)s[0])) {
        char *end;
        long l;
        errno = 0;
        l = strtol(s, &end, 10);
        if (*end || errno || l > INT_MAX)
            return -1;
        /* A shell's exit status for a death by signal: 128 + N (ksh:
         * 256 + N). */
        sig = (int)l;
        sig &= sig >= 0xFF ? 0x1FF : 0x7F;
        return named(sig) ? sig : -1;
    }
    if (len == 0 || len >= sizeof up)
        return -1;
    for (size_t i = 0; i <= len; i++)
        up[i] = (char)toupper((unsigned char)s[i]);
    sig = by_name(up);
    if (sig < 0 && strncmp(up, "SIG", 3) == 0)
        sig = by_name(up + 3);
    return sig;
}

const char *sig_name(int sig, char *buf, size_t cap)
{
    if (sig == 0) {
        snprintf(buf, cap, "signal 0");
        return buf;
    }
    for (size_t i = 0; i < NNAMES; i++)
        if (names[i].sig == sig) {
            snprintf(buf, cap, "SIG%s", names[i].name);
            return buf;
        }
    if (sig == SIGRTMIN)
        snprintf(buf, cap, "SIGRTMIN");
    else if (sig > SIGRTMIN && sig <= SIGRTMAX)
        snprintf(buf, cap, "SIGRTMIN+%d", sig - SIGRTMIN);
    else
        snprintf(buf, cap, "signal %d", sig);
    return buf;
}
