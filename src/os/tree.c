/* SPDX-License-Identifier: MIT */
/*
 * Finding a subprocess's whole tree, escapees included, and signalling it
 * without a pid-reuse race.
 *
 * DESIGN
 *
 * Every child ctx_proc starts carries a marker variable of its own in its
 * environment (CTX_PROC_TREE_<pid>_<n>=1), which its descendants inherit
 * whatever they do with sessions and process groups (unless they clear
 * their environment). A search walks /proc; for each process it opens a
 * pidfd first, then reads /proc/<pid>/environ: if the pid was reused
 * before the pidfd was opened, the environment read is the new process's
 * and has no marker; if the process dies after, pidfd_send_signal says
 * ESRCH. So a signal never reaches a process that is not of the tree.
 * Zombies have an empty environment and are skipped. Other users'
 * processes cannot be read and are skipped. Members of the child's own
 * process group are not signalled again: kill(-pgid) reached them.
 */
#define _GNU_SOURCE
#include "tree.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Does the NUL-separated environment in fd contain the entry `marker`? */
static bool env_has(int fd, const char *marker)
{
    char buf[8192];
    size_t mlen = strlen(marker), keep = 0;
    bool at_start = true;

    /* Entries may straddle reads: keep the unfinished tail. */
    for (;;) {
        ssize_t r = read(fd, buf + keep, sizeof buf - keep);
        size_t n, i = 0;
        if (r <= 0)
            return false;
        n = keep + (size_t)r;
        while (i < n) {
            char *end = memchr(buf + i, 0, n - i);
            if (!end)
                break;
            if (at_start && (size_t)(end - (buf + i)) == mlen &&
                memcmp(buf + i, marker, mlen) == 0)
                return true;
            at_start = true;
            i = (size_t)(end - buf) + 1;
        }
        keep = n - i;
        if (keep == sizeof buf) { /* an entry longer than buf: skip it */
            keep = 0;
            at_start = false;
        } else {
            memmove(buf, buf + i, keep);
        }
    }
}

int ctx__tree_signal(const char *marker, int sig, pid_t skip_pgid, int *pidfds,
                     int cap, int *kept)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    pid_t self = getpid();
    int n = 0;

    if (kept)
        *kept = 0;
    if (!d)
        return 0;
    while ((e = readdir(d)) != NULL) {
        char path[64];
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        int pfd, efd;
        bool ours;
        if (*end || pid <= 0 || pid == self)
            continue;
        pfd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
        if (pfd < 0)
            continue;
        snprintf(path, sizeof path, "/proc/%ld/environ", pid);
        efd = open(path, O_RDONLY | O_CLOEXEC);
        ours = efd >= 0 && env_has(efd, marker);
        if (efd >= 0)
            close(efd);
        /* A member of skip_pgid got sig from kill(-skip_pgid) already
         * (the kernel hands a group signal to a child forked meanwhile
         * too): a second one would count as a second Ctrl-C. */
        if (ours &&
            (sig == 0 || (skip_pgid > 0 && getpgid((pid_t)pid) == skip_pgid) ||
             syscall(SYS_pidfd_send_signal, pfd, sig, NULL, 0) == 0)) {
            n++;
            if (pidfds && kept && *kept < cap) {
                pidfds[(*kept)++] = pfd;
                continue;
            }
        }
        close(pfd);
    }
    closedir(d);
    return n;
}
