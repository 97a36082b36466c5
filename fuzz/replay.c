/* SPDX-License-Identifier: ISC */
/*
 * Standalone replay driver: runs one harness over files and directories of inputs with
 * no fuzzing engine, so that `make check` replays every committed corpus under ASan and
 * UBSan (and `make fuzz-coverage` under clang's coverage). Each file is one input, read
 * whole and given to LLVMFuzzerTestOneInput once; directories are read in name order so
 * that a failure names the same file on every run.
 *
 *   replay-<harness> [-q] PATH...
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"

static int quiet;
static unsigned long inputs;

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;

    if (f == NULL) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return 1;
    }
    for (;;) {
        size_t got;

        if (len == cap) {
            uint8_t *bigger;

            cap = cap ? 2 * cap : 4096;
            bigger = realloc(buf, cap);
            if (bigger == NULL) {
                fprintf(stderr, "replay: %s: out of memory\n", path);
                free(buf);
                fclose(f);
                return 1;
            }
            buf = bigger;
        }
        got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    fclose(f);
    if (!quiet)
        fprintf(stderr, "replay: %s (%zu bytes)\n", path, len);
    (void)LLVMFuzzerTestOneInput(buf, len);
    free(buf);
    inputs++;
    return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int run_path(const char *path)
{
    struct stat sb;
    struct dirent **names;
    int n, bad = 0;

    if (stat(path, &sb) != 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return 1;
    }
    if (!S_ISDIR(sb.st_mode))
        return run_file(path);
    n = scandir(path, &names, NULL, by_name);
    if (n < 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return 1;
    }
    for (int i = 0; i < n; i++) {
        char sub[4096];

        if (names[i]->d_name[0] != '.') {
            snprintf(sub, sizeof sub, "%s/%s", path, names[i]->d_name);
            bad |= run_path(sub);
        }
        free(names[i]);
    }
    free(names);
    return bad;
}

int main(int argc, char **argv)
{
    int bad = 0, first = 1;

    if (argc > 1 && strcmp(argv[1], "-q") == 0) {
        quiet = 1;
        first = 2;
    }
    if (argc <= first) {
        fprintf(stderr, "usage: %s [-q] PATH...\n", argv[0]);
        return 2;
    }
    (void)LLVMFuzzerInitialize(&argc, &argv);
    for (int i = first; i < argc; i++)
        bad |= run_path(argv[i]);
    fprintf(stderr, "replay: %s: %lu inputs, %s\n", argv[0], inputs, bad ? "errors" : "all passed");
    return bad;
}
