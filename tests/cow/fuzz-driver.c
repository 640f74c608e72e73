/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Standalone driver for the CoW fuzz target (no libFuzzer needed): runs
 * LLVMFuzzerTestOneInput over every file of the directories or files given,
 * so the sanitizer builds check the committed corpus on every test run.
 * `--make-corpus DIR` writes the seed inputs.
 */

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz-cow.h"

static int run_file(const char *path)
{
        FILE *f = fopen(path, "re");
        uint8_t *b = NULL;
        size_t n = 0, a = 0;

        if (!f) {
                fprintf(stderr, "%s: %s\n", path, strerror(errno));
                return -1;
        }
        for (;;) {
                if (n == a) {
                        a = a ? a * 2 : 65536;
                        b = realloc(b, a);
                        if (!b)
                                abort();
                }
                size_t k = fread(b + n, 1, a - n, f);
                if (k == 0)
                        break;
                n += k;
        }
        fclose(f);
        LLVMFuzzerTestOneInput(b, n);
        /* and a few deterministic mutations of it */
        for (size_t i = 0; n > 0 && i < 64; i++) {
                size_t pos = (i * 2654435761u) % n;
                uint8_t old = b[pos];
                b[pos] ^= (uint8_t) (1u << (i % 8));
                LLVMFuzzerTestOneInput(b, n);
                b[pos] = old;
        }
        LLVMFuzzerTestOneInput(b, n / 2);
        if (n > 0) {
                b[0] ^= 1;      /* the other checksum mode */
                LLVMFuzzerTestOneInput(b, n);
                for (size_t i = 0; i < 64; i++) {
                        size_t pos = 1 + (i * 40503u + 977) % (n - 1 ? n - 1 : 1);
                        uint8_t old = b[pos];
                        b[pos] = (uint8_t) (old + 1 + i);
                        LLVMFuzzerTestOneInput(b, n);
                        b[pos] = old;
                }
        }
        free(b);
        printf("ok %s\n", path);
        return 0;
}

int main(int argc, char **argv)
{
        int fails = 0;

        if (argc == 3 && strcmp(argv[1], "--make-corpus") == 0) {
                int r = fuzz_cow_make_corpus(argv[2]);
                if (r < 0)
                        fprintf(stderr, "make-corpus: %s\n", strerror(-r));
                return r < 0;
        }
        for (int i = 1; i < argc; i++) {
                struct stat st;
                DIR *d;
                struct dirent *de;

                if (stat(argv[i], &st) < 0 || !S_ISDIR(st.st_mode)) {
                        fails += run_file(argv[i]) < 0;
                        continue;
                }
                d = opendir(argv[i]);
                if (!d)
                        return 1;
                while ((de = readdir(d))) {
                        char p[4096];
                        if (de->d_name[0] == '.')
                                continue;
                        snprintf(p, sizeof(p), "%s/%s", argv[i], de->d_name);
                        fails += run_file(p) < 0;
                }
                closedir(d);
        }
        return fails ? 1 : 0;
}
