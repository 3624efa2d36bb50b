/* SPDX-License-Identifier: MIT */
/*
 * Prints the descriptors open in this process, space-separated, then its
 * blocked and ignored signal masks and CTX_DEADLINE, one per line:
 *   fds: 0 1 2
 *   SigBlk: 0000000000000000
 *   SigIgn: 0000000000000000
 *   CTX_DEADLINE: <value or ->
 * Used by t_proc to check what a child inherits. With an argument N it
 * writes "extra" to descriptor N first.
 */
#define _DEFAULT_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    DIR *d;
    struct dirent *e;
    FILE *f;
    char line[256];
    const char *dl = getenv("CTX_DEADLINE");

    if (argc > 1 && write(atoi(argv[1]), "extra", 5) != 5)
        return 3;
    d = opendir("/proc/self/fd");
    if (!d)
        return 2;
    printf("fds:");
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || atoi(e->d_name) == dirfd(d))
            continue;
        printf(" %s", e->d_name);
    }
    printf("\n");
    closedir(d);
    f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "SigBlk:", 7) == 0 ||
            strncmp(line, "SigIgn:", 7) == 0)
            fputs(line, stdout);
    if (f)
        fclose(f);
    printf("CTX_DEADLINE: %s\n", dl ? dl : "-");
    return 0;
}
