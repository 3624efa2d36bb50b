/* SPDX-License-Identifier: MIT */
/*
 * Replays a corpus through a fuzz target without libFuzzer: every regular
 * file of each directory (or each file) named on the command line goes to
 * LLVMFuzzerTestOneInput in a buffer of exactly its size. Fails when a
 * check aborts, or when it found nothing to replay.
 */
#include "fuzz.h"

#include <dirent.h>
#include <sys/stat.h>

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *data;
    long size;
    if (!f)
        return -1;
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return -1;
    }
    /* malloc(0) may return NULL: one byte more, never read. */
    data = malloc((size_t)size + (size == 0));
    FUZZ_CHECK(data != NULL);
    if (fread(data, 1, (size_t)size, f) != (size_t)size) {
        free(data);
        fclose(f);
        return -1;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(data, (size_t)size);
    free(data);
    return 0;
}

int main(int argc, char **argv)
{
    long n = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        DIR *d;
        struct dirent *e;
        if (stat(argv[i], &st) != 0) {
            perror(argv[i]);
            return 1;
        }
        if (!S_ISDIR(st.st_mode)) {
            if (replay_file(argv[i]) != 0) {
                perror(argv[i]);
                return 1;
            }
            n++;
            continue;
        }
        if (!(d = opendir(argv[i]))) {
            perror(argv[i]);
            return 1;
        }
        while ((e = readdir(d)) != NULL) {
            char path[4096];
            if (e->d_name[0] == '.')
                continue;
            snprintf(path, sizeof path, "%s/%s", argv[i], e->d_name);
            if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
                continue;
            if (replay_file(path) != 0) {
                perror(path);
                closedir(d);
                return 1;
            }
            n++;
        }
        closedir(d);
    }
    printf("replay: %ld inputs, all checks passed\n", n);
    return n > 0 ? 0 : 1;
}
