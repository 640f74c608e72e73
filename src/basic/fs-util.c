/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <libgen.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "basic/fs-util.h"
#include "basic/macro.h"

int write_all(int fd, const void *p, size_t n)
{
        const char *c = p;

        while (n > 0) {
                ssize_t k = write(fd, c, n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                c += k;
                n -= (size_t)k;
        }
        return 0;
}

static int mkdir_one(const char *path, mode_t mode)
{
        struct stat st;

        if (mkdir(path, mode) == 0)
                return 0;
        if (errno != EEXIST)
                return -errno;
        if (stat(path, &st) < 0)
                return -errno;
        return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

int mkdir_p(const char *path, mode_t mode)
{
        _cleanup_free_ char *tmp = NULL;
        int r;

        if (!path || !*path)
                return -EINVAL;
        tmp = strdup(path);
        if (!tmp)
                return -ENOMEM;
        for (char *p = tmp + 1; *p; p++) {
                if (*p != '/')
                        continue;
                *p = 0;
                r = mkdir_one(tmp, mode);
                *p = '/';
                if (r < 0)
                        return r;
        }
        return mkdir_one(tmp, mode);
}

/* mountinfo escapes blanks and backslashes as \ooo. */
static void unescape(char *s)
{
        char *d = s;

        for (; *s; s++) {
                if (s[0] == '\\' && s[1] >= '0' && s[1] <= '7' && s[2] >= '0' && s[2] <= '7' && s[3] >= '0' &&
                    s[3] <= '7') {
                        *d++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
                        s += 3;
                } else
                        *d++ = *s;
        }
        *d = 0;
}

int loop_backing_file(const char *dev, char *buf, size_t len)
{
        char p[256];
        FILE *f;
        size_t n;

        if (strncmp(dev, "/dev/loop", 9) != 0 || strchr(dev + 9, '/'))
                return -ENOENT;
        snprintf(p, sizeof(p), "/sys/block/%s/loop/backing_file", dev + 5);
        f = fopen(p, "re");
        if (!f)
                return -errno;
        if (!fgets(buf, (int)len, f)) {
                fclose(f);
                return -ENOENT;
        }
        fclose(f);
        n = strlen(buf);
        while (n > 0 && buf[n - 1] == '\n')
                buf[--n] = 0;
        return 0;
}

int mount_lookup(const char *path, dev_t *ret_devnum, char *src, size_t srclen, char *fstype, size_t fslen)
{
        FILE *f = fopen("/proc/self/mountinfo", "re");
        char line[8192];
        int r = -ENOENT;

        if (!f)
                return -errno;
        /* The last matching line wins: it is the mount on top. */
        while (fgets(line, sizeof(line), f)) {
                char *tok[16], *save = NULL, *sep, *fs, *dev, *save2 = NULL;
                unsigned maj, mnr;
                size_t n = 0;

                sep = strstr(line, " - ");
                if (!sep)
                        continue;
                *sep = 0;
                for (char *t = strtok_r(line, " ", &save); t && n < ARRAY_SIZE(tok); t = strtok_r(NULL, " ", &save))
                        tok[n++] = t;
                if (n < 5)
                        continue;
                unescape(tok[4]);
                if (!streq(tok[4], path))
                        continue;
                fs = strtok_r(sep + 3, " \n", &save2);
                dev = fs ? strtok_r(NULL, " \n", &save2) : NULL;
                if (!fs || !dev || sscanf(tok[2], "%u:%u", &maj, &mnr) != 2)
                        continue;
                unescape(dev);
                if (src)
                        snprintf(src, srclen, "%s", dev);
                if (fstype)
                        snprintf(fstype, fslen, "%s", fs);
                if (ret_devnum)
                        *ret_devnum = makedev(maj, mnr);
                r = 0;
        }
        fclose(f);
        return r;
}

int write_file_atomic(const char *path, const void *data, size_t len)
{
        _cleanup_free_ char *tmp = NULL, *dir = NULL;
        int fd, dfd, r;

        if (asprintf(&tmp, "%s.tmp", path) < 0) {
                tmp = NULL;
                return -ENOMEM;
        }
        dir = strdup(path);
        if (!dir)
                return -ENOMEM;
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return -errno;
        r = write_all(fd, data, len);
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        if (close(fd) < 0 && r == 0)
                r = -errno;
        if (r == 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0) {
                (void)unlink(tmp);
                return r;
        }
        dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
                (void)fsync(dfd);
                close(dfd);
        }
        return 0;
}

int syncfs_path(const char *path)
{
        int fd = open(path, O_RDONLY | O_CLOEXEC), r = 0;

        if (fd < 0)
                return -errno;
        if (syncfs(fd) < 0)
                r = -errno;
        close(fd);
        return r;
}
