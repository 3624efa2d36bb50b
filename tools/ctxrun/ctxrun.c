/* SPDX-License-Identifier: MIT */
/*
 * ctxrun: run a command with a time limit, as coreutils timeout(1) does,
 * and end its whole process tree: escalation in steps, signals passed on,
 * a group of commands where the first failure cancels the rest, and the
 * deadline handed down to nested programs in CTX_DEADLINE (SPEC §5, §6).
 *
 * DESIGN
 *
 * Contexts and deadline: `root` comes from ctx_from_env (the deadline a
 * parent exported, if any); ctxrun's deadline is the earlier of root's and
 * now + --timeout, so a nested ctxrun never outlives its parent's
 * deadline, and the commands get it in CTX_DEADLINE. `pctx` is the context
 * of the processes: libctx's ctx_proc starts each command in a process
 * group of its own and marks its tree so that escaped descendants (setsid,
 * double fork) are found; once pctx is cancelled, its wait returns only
 * when the whole tree is gone. pctx has no deadline: the escalation
 * cancels it before its first signal, so a command that dies of that
 * signal at once is never reported before the rest of its tree is gone.
 *
 * The escalation (escalate.c) is ctxrun's own: libctx's cancellation has
 * one signal and a SIGKILL, a --term-seq has any number of steps, and a
 * received signal replaces the first. It starts at the deadline, on a
 * received INT, TERM, HUP or QUIT, or at a failure in group mode; its
 * steps are deadline contexts on libctx's timer thread. Without -k a
 * timeout sends one signal and waits, as timeout(1) does; a received
 * signal escalates to SIGKILL after SIGNAL_GRACE anyway, since whoever
 * sends it usually SIGKILLs ctxrun itself next, and that would orphan the
 * tree.
 *
 * Threads: the four signals are blocked from the start, and ctxrun
 * installs no handler (nothing runs in signal context). A single command
 * is watched by the main thread alone until something happens: its exit
 * (a pidfd), a signal (a signalfd), the deadline (the poll's timeout). So
 * `ctxrun 10 true` starts no thread, and is quicker than `timeout 10
 * true` (posix_spawn is a vfork), also on a loaded machine, where every
 * thread of an exiting process must get a CPU to die
 * (bench/bench_ctxrun.sh). Once the escalation starts, libctx's signal
 * thread takes the signals (ctx_signal_init that late is safe: every
 * thread has them blocked) and the main thread waits for the tree in
 * ctx_proc_wait. Group mode runs on libctx's pool and watches with its
 * threads from the start.
 *
 * Exit statuses are timeout(1)'s (coreutils 9.1, timeout.c): the
 * command's status; 124 if the time ran out, unless --preserve-status;
 * 128+N for a death by signal N after a timeout, which ctxrun gives as
 * an exit status (timeout's -k and -s KILL SIGKILL timeout's own process
 * group, so the shell sees 137 there too); a death by signal N without a
 * timeout is passed on: ctxrun raises N on itself with core dumps off.
 * 125, 126, 127: ctxrun failed, the command cannot run, is not found.
 *
 * ctxrun links libctx statically: the installed tool does not depend on
 * where the shared library is.
 */
#define _DEFAULT_SOURCE
#include "ctxrun.h"

#include <ctx/parse.h>
#include <ctx/proc.h>
#include <ctx/sig.h>

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const char usage_text[] =
    "Usage: ctxrun [OPTION]... DURATION COMMAND [ARG]...\n"
    "  or:  ctxrun [OPTION]... -- COMMAND [ARG]...\n"
    "  or:  ctxrun --group [OPTION]... -- 'COMMAND LINE'...\n"
    "Run COMMAND, and end its whole process tree if it is still running\n"
    "after DURATION, or when ctxrun gets SIGINT, SIGTERM, SIGHUP or SIGQUIT.\n"
    "\n"
    "      --timeout=DURATION   the time limit (or the DURATION operand);\n"
    "                           0: none\n"
    "  -s, --signal=SIGNAL      the signal sent at the time limit\n"
    "                           (default: TERM)\n"
    "  -k, --kill-after=DURATION\n"
    "                           also send KILL this long after the signal\n"
    "      --term-seq=SEQUENCE  the whole escalation instead of -s and -k,\n"
    "                           signals and the waits between them:\n"
    "                           TERM,2s,INT,1s,KILL\n"
    "      --preserve-status    exit with the command's status even when\n"
    "                           the time ran out\n"
    "      --foreground         leave the command in ctxrun's process group\n"
    "                           (it can use the terminal); only the command\n"
    "                           itself is signalled, not its children\n"
    "  -v, --verbose            one line on stderr for each signal sent,\n"
    "                           with the time since start\n"
    "      --group              each operand is a command line for /bin/sh\n"
    "                           -c; they run at once, and the first to fail\n"
    "                           ends the others with the same escalation\n"
    "  -j, --jobs=N             with --group: at most N at once (0: no\n"
    "                           limit)\n"
    "      --halt=WHEN          with --group, after a failure: now (end the\n"
    "                           running ones, the default) or soon (let them\n"
    "                           finish); no new one starts either way\n"
    "      --help               display this help and exit\n"
    "      --version            output version information and exit\n"
    "\n"
    "DURATION is a number of seconds with an optional suffix s, m, h or d\n"
    "(2.5, 90s, 1.5m, 1d), or a Go duration (1h2m3.5s, 250ms).\n"
    "SIGNAL is a name (TERM, SIGTERM, term) or a number.\n"
    "\n"
    "CTX_DEADLINE in the environment (CLOCK_MONOTONIC nanoseconds) limits\n"
    "the time further; the command gets the deadline it has in it.\n"
    "\n"
    "Exit status: the command's; 124 if the time ran out (without\n"
    "--preserve-status); 125 if ctxrun failed; 126 if COMMAND cannot run;\n"
    "127 if it is not found; 128+N if it was killed by signal N.\n"
    "With --group: the status of the first command that failed.\n";

/* Bad input: one line naming it, exit 125, nothing started. */
__attribute__((format(printf, 1, 2), noreturn)) static void
usage_error(const char *fmt, ...)
{
    char line[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "ctxrun: %s (see ctxrun --help)\n", line);
    exit(EXIT_CANCELED);
}

/* ------------------------------------------------------------ options */

/* A duration in timeout(1)'s form or Go's; one too large for ctx_time_t
 * is "forever" (timeout(1) saturates too). Negative ones are errors. */
static int parse_dur(const char *s, ctx_time_t *out)
{
    int rc = ctx_parse_timeout(s, out);
    if (rc == EINVAL)
        rc = ctx_parse_duration(s, out);
    if (rc == ERANGE && s[0] != '-') {
        *out = CTX_NO_DEADLINE;
        rc = 0;
    }
    if (rc == 0 && *out < 0)
        rc = EINVAL;
    return rc;
}

static ctx_time_t dur_arg(const char *opt, const char *s)
{
    ctx_time_t d;
    if (parse_dur(s, &d) != 0)
        usage_error("invalid duration '%s' for %s", s, opt);
    return d;
}

/* SIG,DUR,SIG,...,SIG into o->seq. */
static void parse_seq(struct opts *o, const char *arg)
{
    char buf[512], *save = NULL, *tok;
    size_t i = 0;
    bool want_sig = true;

    if (strlen(arg) >= sizeof buf)
        usage_error("invalid --term-seq '%s': too long", arg);
    strcpy(buf, arg);
    for (tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        if (want_sig) {
            int sig = sig_parse(tok);
            if (sig < 0)
                usage_error("invalid --term-seq '%s': '%s' is not a signal",
                            arg, tok);
            if (i == MAX_STEPS)
                usage_error("invalid --term-seq '%s': too many steps", arg);
            o->seq[i++] = (struct step){sig, 0};
        } else {
            ctx_time_t d;
            if (parse_dur(tok, &d) != 0)
                usage_error("invalid --term-seq '%s': '%s' is not a duration",
                            arg, tok);
            o->seq[i - 1].wait = d;
        }
        want_sig = !want_sig;
    }
    /* Empty fields (",,") are skipped by strtok: refuse them here. */
    if (i == 0 || want_sig || strstr(arg, ",,") || arg[0] == ',' ||
        arg[strlen(arg) - 1] == ',')
        usage_error("invalid --term-seq '%s': want SIGNAL[,DURATION,SIGNAL]...",
                    arg);
    o->nseq = i;
}

enum {
    OPT_TIMEOUT = 256,
    OPT_TERM_SEQ,
    OPT_PRESERVE,
    OPT_FOREGROUND,
    OPT_GROUP,
    OPT_HALT,
    OPT_HELP,
    OPT_VERSION
};

static const struct option long_opts[] = {
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"signal", required_argument, NULL, 's'},
    {"kill-after", required_argument, NULL, 'k'},
    {"term-seq", required_argument, NULL, OPT_TERM_SEQ},
    {"preserve-status", no_argument, NULL, OPT_PRESERVE},
    {"foreground", no_argument, NULL, OPT_FOREGROUND},
    {"verbose", no_argument, NULL, 'v'},
    {"group", no_argument, NULL, OPT_GROUP},
    {"jobs", required_argument, NULL, 'j'},
    {"halt", required_argument, NULL, OPT_HALT},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

static int jobs_arg(const char *s)
{
    char *end;
    long n;
    errno = 0;
    n = strtol(s, &end, 10);
    if (end == s || *end || errno || n > INT_MAX)
        usage_error("invalid number of jobs '%s' for --jobs", s);
    if (n < 0)
        usage_error("invalid number of jobs '%s' for --jobs: negative", s);
    return (int)n;
}

static void parse_opts(int argc, char **argv, struct opts *o)
{
    const char *sig_text = NULL, *kill_text = NULL, *seq_text = NULL;
    bool has_timeout = false, jobs_set = false, halt_set = false, dashes;
    int sig = SIGTERM, c;
    ctx_time_t kill_after = 0;

    opterr = 0; /* our own messages, one line each */
    while ((c = getopt_long(argc, argv, "+:s:k:vj:", long_opts, NULL)) != -1) {
        switch (c) {
        case OPT_TIMEOUT:
            o->timeout = dur_arg("--timeout", optarg);
            o->timeout_text = optarg;
            has_timeout = true;
            break;
        case 's':
            if ((sig = sig_parse(optarg)) < 0)
                usage_error("'%s': invalid signal", optarg);
            sig_text = optarg;
            break;
        case 'k':
            kill_after = dur_arg("--kill-after", optarg);
            kill_text = optarg;
            break;
        case OPT_TERM_SEQ:
            parse_seq(o, optarg);
            seq_text = optarg;
            break;
        case OPT_PRESERVE:
            o->preserve_status = true;
            break;
        case OPT_FOREGROUND:
            o->foreground = true;
            break;
        case 'v':
            o->verbose = true;
            break;
        case OPT_GROUP:
            o->group = true;
            break;
        case 'j':
            o->jobs = jobs_arg(optarg);
            jobs_set = true;
            break;
        case OPT_HALT:
            if (strcmp(optarg, "now") != 0 && strcmp(optarg, "soon") != 0)
                usage_error("invalid --halt '%s': want now or soon", optarg);
            o->halt_soon = strcmp(optarg, "soon") == 0;
            halt_set = true;
            break;
        case OPT_HELP:
            fputs(usage_text, stdout);
            exit(0);
        case OPT_VERSION:
            printf("ctxrun (libctx) %s\n", ctx_version());
            exit(0);
        case ':':
            usage_error("option '%s' needs an argument", argv[optind - 1]);
        default:
            if (strncmp(argv[optind - 1], "--", 2) == 0)
                usage_error("invalid option '%s'", argv[optind - 1]);
            usage_error("invalid option '-%c'", optopt);
        }
    }
    if (seq_text && (sig_text || kill_text))
        usage_error("--term-seq '%s' cannot go with --signal or --kill-after",
                    seq_text);
    if (!o->group && (jobs_set || halt_set))
        usage_error("%s needs --group", jobs_set ? "--jobs" : "--halt");
    if (!seq_text) {
        o->seq[0] = (struct step){sig, kill_after};
        o->nseq = 1;
        if (kill_after) /* -k 0 is no -k, as in timeout(1) */
            o->seq[o->nseq++] = (struct step){SIGKILL, 0};
    }

    /* The operands. Without --timeout the first one is the duration, as
     * timeout(1) has it; after "--" only if it reads as one. */
    dashes = optind > 1 && strcmp(argv[optind - 1], "--") == 0;
    if (!has_timeout && !o->group && optind < argc) {
        ctx_time_t d;
        if (parse_dur(argv[optind], &d) == 0) {
            o->timeout = d;
            o->timeout_text = argv[optind++];
        } else if (!dashes) {
            usage_error("invalid time interval '%s'", argv[optind]);
        }
    }
    if (o->timeout == CTX_NO_DEADLINE)
        o->timeout = 0;
    if (optind >= argc)
        usage_error("%s",
                    o->group ? "missing command lines" : "missing command");
    o->cmd = argv + optind;
    o->ncmd = (size_t)(argc - optind);
}

/* ------------------------------------------------------------ the end */

/* Die of `sig` as the command did, without a core file of our own;
 * returns if the signal does not end a process. */
static void die_of(int sig)
{
    struct rlimit rl = {0, 0};
    sigset_t one;
    if (setrlimit(RLIMIT_CORE, &rl) != 0)
        return; /* timeout(1) does not risk a core file either */
    signal(sig, SIG_DFL);
    sigemptyset(&one);
    sigaddset(&one, sig);
    pthread_sigmask(SIG_UNBLOCK, &one, NULL);
    raise(sig);
}

/* The exit status of a single command; 0x100 | N: die of signal N. */
static int single_status(const struct opts *o, int status)
{
    int tsig, code;
    enum trigger t = esc_trigger(&tsig);
    bool preserve = o->preserve_status;

    if (WIFEXITED(status)) {
        code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        if (t != TRIG_TIMEOUT)
            return 0x100 | sig;
        if (sig == SIGKILL)
            preserve = true;
        code = 128 + sig;
    } else {
        code = 1;
    }
    return t == TRIG_TIMEOUT && !preserve ? EXIT_TIMEDOUT : code;
}

/* Until something happens, the main thread alone watches the command's
 * exit (a pidfd), the signals (a signalfd: they are blocked) and the
 * deadline (the poll's timeout): a run that ends by itself starts no
 * thread. Once the escalation starts, its steps and the signals go to
 * libctx's threads, and this thread waits for the tree in ctx_proc_wait. */
static void watch(ctx_proc_t *p, ctx_time_t deadline, int sfd)
{
    int pfd = (int)syscall(SYS_pidfd_open, ctx_proc_pid(p), 0);

    while (pfd >= 0 && esc_trigger(NULL) == TRIG_NONE) {
        struct pollfd pf[2] = {{pfd, POLLIN, 0}, {sfd, POLLIN, 0}};
        struct signalfd_siginfo si;
        int ms = -1;
        ctx_time_t now = ctx_now();
        if (deadline != CTX_NO_DEADLINE) { /* rounded up: never early */
            ctx_time_t left = deadline > now ? deadline - now : 0;
            left = (left + CTX_MILLISECOND - 1) / CTX_MILLISECOND;
            ms = left > INT_MAX ? INT_MAX : (int)left;
        }
        if (poll(pf, 2, ms) < 0 && errno != EINTR)
            break;
        /* The deadline first: a parent with the same deadline signals
         * us at that very time, and the deadline is the cause. */
        if (ctx_now() >= deadline)
            esc_timed_out();
        else if ((pf[1].revents & POLLIN) &&
                 read(sfd, &si, sizeof si) == (ssize_t)sizeof si)
            esc_signalled((int)si.ssi_signo);
        else if (pf[0].revents)
            break; /* it exited: ctx_proc_wait reaps it */
    }
    if (pfd >= 0)
        close(pfd);
    else /* no pidfd (an old kernel): libctx's threads watch */
        esc_watch_signals();
}

static int run_single(const struct opts *o, ctx_time_t deadline, int sfd)
{
    ctx_proc_t *p;
    char text[64];
    int status, rc, tsig;

    rc = esc_spawn(0, o->cmd, &p);
    if (rc != 0) {
        switch (esc_trigger(&tsig)) {
        case TRIG_TIMEOUT:
            say("not started: no time left");
            return EXIT_TIMEDOUT;
        case TRIG_SIGNAL:
            return 128 + tsig;
        default:
            return spawn_failed(o->cmd[0], rc);
        }
    }
    say("started %s (pid %ld)", o->cmd[0], (long)ctx_proc_pid(p));
    watch(p, deadline, sfd);
    ctx_proc_wait(p, &status);
    esc_remove(0);
    ctx_proc_free(p);
    say("%s ended: %s", o->cmd[0], status_text(status, text, sizeof text));
    return single_status(o, status);
}

/* ------------------------------------------------------------ main */

extern char **environ;

/* The commands' environment: ours, with CTX_DEADLINE saying `deadline`
 * (none if there is none). */
static char **child_env(ctx_time_t deadline)
{
    static char var[16 + CTX_DURATION_BUFSIZE] = "CTX_DEADLINE=";
    size_t n = 0, k = 0;
    char **env;

    while (environ[n])
        n++;
    if (!(env = calloc(n + 2, sizeof *env)))
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "CTX_DEADLINE=", 13) != 0)
            env[k++] = environ[i];
    if (deadline != CTX_NO_DEADLINE) {
        ctx_deadline_format(deadline, var + 13, sizeof var - 13);
        env[k++] = var;
    }
    env[k] = NULL;
    return env;
}

/* Group mode: libctx's threads watch the signals and the deadline from
 * the start (the main thread waits for the group). */
static int group(const struct opts *o, ctx_time_t deadline, ctx_t *pctx)
{
    ctx_t *run = NULL;
    int rc = deadline == CTX_NO_DEADLINE
                 ? ctx_with_cancel(ctx_background(), &run)
                 : ctx_with_deadline(ctx_background(), deadline, &run);
    if (rc == 0 && (rc = esc_watch_signals()) == 0 &&
        (rc = esc_watch_deadline(run)) == 0) {
        rc = run_group(o, pctx);
    } else {
        fprintf(stderr, "ctxrun: %s\n", strerror(rc));
        rc = EXIT_CANCELED;
    }
    esc_stop(); /* before run is gone: its watch ends first */
    ctx_release(run);
    return rc;
}

int main(int argc, char **argv)
{
    static const int taken[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
    static struct opts o;
    ctx_t *root = NULL, *pctx = NULL;
    ctx_time_t deadline = CTX_NO_DEADLINE, rd;
    char **env = NULL;
    sigset_t sigs;
    int rc, status, sfd = -1;
    bool inherited = false;

    parse_opts(argc, argv, &o);
    log_init(o.verbose);

    /* Signals the parent left ignored are ours to receive again (as
     * timeout(1) installs its handlers); SIGCHLD ignored would reap the
     * children behind libctx's back. A background ctxrun must not stop
     * when it writes to the terminal. The four are blocked here, before
     * any thread exists (ctx_signal_init's rule), and read from a
     * signalfd until libctx's signal thread takes over. */
    sigemptyset(&sigs);
    for (size_t i = 0; i < sizeof taken / sizeof taken[0]; i++) {
        signal(taken[i], SIG_DFL);
        sigaddset(&sigs, taken[i]);
    }
    signal(SIGCHLD, SIG_DFL);
    signal(SIGTTIN, SIG_IGN);
    signal(SIGTTOU, SIG_IGN);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    if (!o.group &&
        (sfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
        fprintf(stderr, "ctxrun: cannot watch signals: %s\n", strerror(errno));
        return EXIT_CANCELED;
    }
    if ((rc = ctx_from_env(ctx_background(), &root)) != 0) {
        const char *v = getenv("CTX_DEADLINE");
        fprintf(stderr, "ctxrun: invalid CTX_DEADLINE '%s': %s\n", v ? v : "",
                strerror(rc));
        return EXIT_CANCELED;
    }
    /* The earlier of ours and the inherited one: a nested ctxrun never
     * outlives its parent's deadline. */
    if (o.timeout) {
        ctx_time_t now = ctx_now();
        deadline = o.timeout < CTX_NO_DEADLINE - now ? now + o.timeout
                                                     : CTX_NO_DEADLINE;
    }
    if (ctx_deadline(root, &rd) && rd <= deadline) {
        deadline = rd;
        inherited = true;
    }
    /* pctx has no deadline of its own: only the escalation cancels it,
     * and before it sends anything (see esc_start). */
    rc = ctx_with_cancel(ctx_background(), &pctx);
    if (rc == 0 && !(env = child_env(deadline)))
        rc = ENOMEM;
    if (rc == 0)
        rc = esc_init(&o, pctx, env, o.group ? o.ncmd : 1, inherited);
    if (rc != 0) {
        fprintf(stderr, "ctxrun: %s\n", strerror(rc));
        status = EXIT_CANCELED;
    } else if (o.group) {
        status = group(&o, deadline, pctx);
    } else {
        if (ctx_now() >= deadline) /* an inherited one, already past */
            esc_timed_out();
        status = run_single(&o, deadline, sfd);
    }
    esc_stop();
    free(env);
    ctx_cancel(pctx);
    ctx_release(pctx);
    ctx_release(root);
    if (sfd >= 0)
        close(sfd);
    if (status & 0x100) {
        die_of(status & 0xff);
        status = 128 + (status & 0xff);
    }
    return status;
}
