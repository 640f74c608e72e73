/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A main() for fuzz targets in builds without libFuzzer: runs
 * LLVMFuzzerTestOneInput() once over every regular file named on the command
 * line or found (non-recursively) in a directory named there.  With ASan/UBSan
 * this turns the seed corpus (and any crash input saved by libFuzzer) into a
 * regression test.  Exits 0 when every input ran, 1 on an unreadable input or
 * an empty corpus; a bug in the code under test aborts.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "basic/macro.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ uint8_t *buf = NULL;
        struct stat st;
        size_t done = 0;

        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st) < 0) {
                fprintf(stderr, "%s: %s\n", path, strerror(errno));
                return -errno;
        }
        buf = malloc(st.st_size > 0 ? (size_t)st.st_size : 1);
        if (!buf)
                return -ENOMEM;
        while (done < (size_t)st.st_size) {
                ssize_t n = read(fd, buf + done, (size_t)st.st_size - done);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        fprintf(stderr, "%s: short read\n", path);
                        return -EIO;
                }
                done += (size_t)n;
        }
        LLVMFuzzerTestOneInput(buf, done);
        return 0;
}


static int run_dir(const char *dir, unsigned *ret_count)
{
        struct dirent **ents = NULL;
        int n, r = 0;

        n = scandir(dir, &ents, NULL, alphasort);
        if (n < 0) {
                fprintf(stderr, "%s: %s\n", dir, strerror(errno));
                return -errno;
        }
        for (int i = 0; i < n; i++) {
                char path[4096];
                struct stat st;

                if (r == 0 && ents[i]->d_name[0] != '.') {
                        snprintf(path, sizeof(path), "%s/%s", dir, ents[i]->d_name);
                        if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
                                r = run_file(path);
                                if (r == 0)
                                        (*ret_count)++;
                        }
                }
                free(ents[i]);
        }
        free(ents);
        return r;
}

int main(int argc, char *argv[])
{
        unsigned count = 0;

        if (argc < 2) {
                fprintf(stderr, "usage: %s CORPUS_DIR|FILE...\n", argv[0]);
                return 2;
        }
        for (int i = 1; i < argc; i++) {
                struct stat st;
                int r;

                if (stat(argv[i], &st) < 0) {
                        fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
                        return 1;
                }
                if (S_ISDIR(st.st_mode))
                        r = run_dir(argv[i], &count);
                else {
                        r = run_file(argv[i]);
                        if (r == 0)
                                count++;
                }
                if (r < 0)
                        return 1;
        }
        printf("%s: %u inputs ran clean\n", argv[0], count);
        return count > 0 ? 0 : 1;
}
