/* SPDX-License-Identifier: MIT */
/*
 * The process-tree search of src/os (tree.c), for proc.c.
 */
#ifndef CTX_OS_TREE_H
#define CTX_OS_TREE_H

#include "internal.h"

/*
 * Send `sig` (0: none, just count) to every live process other than this
 * one whose environment holds the entry `marker`, except those in process
 * group `skip_pgid` (> 0), which the caller signalled with kill(-pgid):
 * they are counted as if sent to. Returns how many got it.
 * When pidfds is not NULL, the pidfds of up to `cap` of them are kept
 * there (count in *kept) for the caller to wait on and close.
 */
int ctx__tree_signal(const char *marker, int sig, pid_t skip_pgid, int *pidfds,
                     int cap, int *kept);

#endif /* CTX_OS_TREE_H */
