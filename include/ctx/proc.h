/* SPDX-License-Identifier: MIT */
/*
 * Subprocesses bound to a context: Go's exec.CommandContext with Cancel
 * and WaitDelay, for the whole process tree.
 *
 *     char *argv[] = {"make", "-j8", NULL};
 *     ctx_proc_opts_t o = CTX_PROC_OPTS_INIT;
 *     ctx_proc_t *p;
 *     int status;
 *     o.argv = argv;
 *     o.wait_delay = 2 * CTX_SECOND;        // TERM, then KILL after 2 s
 *     if ((rc = ctx_proc_spawn(c, &o, &p)) != 0)
 *         return rc;                        // ENOENT, EACCES, EAGAIN...
 *     rc = ctx_proc_wait(p, &status);       // c's error if c ended it
 *     ctx_proc_free(p);
 *
 * The child is started with posix_spawn (never fork+exec in a threaded
 * program), with an empty signal mask and default signal dispositions
 * (a parent that called ctx_signal_init has INT/TERM/HUP/QUIT blocked;
 * its children must not), with only descriptors 0, 1, 2 and those asked
 * for open (every other one is closed in the child), in a process group
 * of its own, and is watched through a pidfd: it is never signalled after
 * it was waited for, so a reused pid is never hit.
 *
 * When c is done: the cancel signal (SIGTERM by default, with SIGCONT) goes
 * to the child's process group and to its descendants that left the
 * group (setsid, double fork); after the wait delay, SIGKILL goes to all
 * of them. Descendants are found by a marker the child's environment
 * carries (CTX_PROC_TREE): a descendant that clears its environment
 * escapes this search.
 */
#ifndef CTX_PROC_H
#define CTX_PROC_H

#include <ctx/ctx.h>

#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ctx_proc ctx_proc_t;

/* What a standard stream of the child is (or a descriptor >= 0 to give). */
#define CTX_PROC_INHERIT (-1) /* the caller's own: the default */
#define CTX_PROC_PIPE    (-2) /* a pipe; our end: ctx_proc_stdin() etc. */
#define CTX_PROC_NULL    (-3) /* /dev/null */
#define CTX_PROC_CAPTURE (-4) /* stdout/stderr: collected by ctx_proc_wait */

/* The default wait delay: from the cancel signal to SIGKILL. */
#define CTX_PROC_WAIT_DELAY (5 * CTX_SECOND)

typedef struct ctx_proc_opts {
    const char *path;     /* the program; NULL: argv[0]. Without a '/' it is
                             searched in PATH. */
    char *const *argv;    /* required; NULL-terminated */
    char *const *envp;    /* NULL: the caller's environment */
    const char *dir;      /* working directory; NULL: the caller's */
    int stdin_fd;         /* CTX_PROC_INHERIT, _PIPE, _NULL, or a descriptor */
    int stdout_fd;        /* ... or CTX_PROC_CAPTURE */
    int stderr_fd;        /* ... or CTX_PROC_CAPTURE */
    const int *extra_fds; /* given to the child as 3, 4, ... (not
                             closed, not moved in the caller); none may
                             be numbered 3 .. 3 + n - 1 but at its own
                             place */
    size_t n_extra_fds;
    int cancel_signal;     /* sent when c is done; 0: SIGTERM */
    ctx_time_t wait_delay; /* from the cancel signal to SIGKILL, and from
                              the child's exit to closing captured pipes
                              a grandchild still holds; 0: the default
                              CTX_PROC_WAIT_DELAY; CTX_NO_DEADLINE: never
                              SIGKILL, wait for the pipes */
    bool export_deadline;  /* give c's deadline to the child in
                              CTX_DEADLINE (absolute CLOCK_MONOTONIC ns) */
    bool foreground;       /* stay in the caller's process group (for a
                              terminal, as timeout --foreground): only the
                              child itself is signalled */
} ctx_proc_opts_t;

#define CTX_PROC_OPTS_INIT                                                     \
    {                                                                          \
        NULL, NULL, NULL, NULL, CTX_PROC_INHERIT, CTX_PROC_INHERIT,            \
            CTX_PROC_INHERIT, NULL, 0, 0, 0, false, false                      \
    }

/*
 * ctx_proc_spawn - start a child process bound to `c`.
 *
 * Returns: 0 and the process in *out (freed with ctx_proc_free).
 * Errors: EINVAL (NULL c, o, out or argv, an empty argv, a bad stream
 * value, a negative wait delay, a bad signal number); ENOENT, EACCES,
 * ENOEXEC... when the program cannot be run (posix_spawn's error);
 * EAGAIN when no process could be made; EMFILE, ENFILE, ENOMEM; the
 * error of c if c is done already (nothing started). On error *out is
 * NULL and nothing is left behind: no process, no descriptor.
 */
CTX_API int ctx_proc_spawn(ctx_t *c, const ctx_proc_opts_t *o,
                           ctx_proc_t **out);

/* ctx_proc_pid - the child's process id (also its process group's). */
CTX_API pid_t ctx_proc_pid(const ctx_proc_t *p);

/*
 * ctx_proc_stdin, _stdout, _stderr - the caller's end of a stream made
 * with CTX_PROC_PIPE (O_CLOEXEC, blocking; use ctx_read/ctx_write with a
 * context), owned by p: closed by ctx_proc_free. -1 for other streams.
 */
CTX_API int ctx_proc_stdin(const ctx_proc_t *p);
CTX_API int ctx_proc_stdout(const ctx_proc_t *p);
CTX_API int ctx_proc_stderr(const ctx_proc_t *p);

/* ctx_proc_close_stdin - close the caller's end of a piped stdin (the
 * child reads end of file). Returns 0; EINVAL if there is none. */
CTX_API int ctx_proc_close_stdin(ctx_proc_t *p);

/*
 * ctx_proc_signal - send `sig` to the child's tree (its process group and
 * the descendants that left it; with foreground, the child only).
 *
 * Returns: 0; ESRCH once the child was waited for; EINVAL for a bad
 * signal number or NULL.
 */
CTX_API int ctx_proc_signal(ctx_proc_t *p, int sig);

/*
 * ctx_proc_wait - wait for the child to exit and reap it.
 *
 * Streams made with CTX_PROC_CAPTURE are read while waiting, until end of
 * file or, after the child exited, the wait delay (then they are closed:
 * a grandchild that keeps them open cannot hang the wait). When c ended
 * the child, the wait also sees the rest of its tree gone: it returns
 * after every process found carrying the tree's marker is dead (SIGKILL
 * at the end of the wait delay). The wait itself takes no context: cancel
 * c to make the child end. Waiting twice returns the same answer.
 *
 * Returns: 0 and, in *status (when not NULL), a status as waitpid(2)
 * gives it (WIFEXITED, WEXITSTATUS, WIFSIGNALED, WTERMSIG); c's error
 * (ECANCELED or ETIMEDOUT) if the child was stopped because c ended, with
 * *status filled all the same; EINVAL for NULL.
 * Blocks: until the child exits.
 */
CTX_API int ctx_proc_wait(ctx_proc_t *p, int *status);

/*
 * ctx_proc_output - what ctx_proc_wait collected from a CTX_PROC_CAPTURE
 * stream: `stream` 1 (stdout) or 2 (stderr). The bytes live as long as p;
 * they end with a NUL not counted in *len.
 *
 * Returns: the bytes ("" if none); NULL for a stream not captured.
 */
CTX_API const char *ctx_proc_output(const ctx_proc_t *p, int stream,
                                    size_t *len);

/*
 * ctx_proc_free - free p. A child not waited for is killed (SIGKILL to its
 * tree) and reaped first, so no zombie is left. NULL does nothing.
 */
CTX_API void ctx_proc_free(ctx_proc_t *p);

#ifdef __cplusplus
}
#endif

#endif /* CTX_PROC_H */
