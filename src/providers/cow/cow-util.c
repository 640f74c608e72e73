/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Small system helpers for cow volumes: running losetup/mount/mkfs without a
 * shell, and recognising a cow volume from its mount alone (mountinfo ->
 * loop device -> sysfs backing file -> RUNDIR/fuse/volume), so the provider
 * needs no access to vssd's catalog.
 */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "basic/macro.h"
#include "providers/cow/cow-util.h"

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

int cow_mount_source(const char *path, char *dev, size_t devlen, char *fstype, size_t fslen)
{
        FILE *f = fopen("/proc/self/mountinfo", "re");
        char line[8192];
        int r = -ENOENT;

        if (!f)
                return -errno;
        /* The last matching line wins: it is the mount on top. */
        while (fgets(line, sizeof(line), f)) {
                char *tok[16], *save = NULL, *sep;
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
                {
                        char *fs, *src, *save2 = NULL;

                        fs = strtok_r(sep + 3, " \n", &save2);
                        src = fs ? strtok_r(NULL, " \n", &save2) : NULL;
                        if (!fs || !src)
                                continue;
                        unescape(src);
                        snprintf(dev, devlen, "%s", src);
                        if (fstype)
                                snprintf(fstype, fslen, "%s", fs);
                        r = 0;
                }
        }
        fclose(f);
        return r;
}

int cow_loop_backing_file(const char *dev, char *buf, size_t len)
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

int cow_rundir_of_volume(const char *path, char *rundir, size_t len)
{
        char dev[4096], back[4096], sock[4200];
        static const char suffix[] = "/fuse/volume";
        struct stat st;
        size_t n;
        int r;

        r = cow_mount_source(path, dev, sizeof(dev), NULL, 0);
        if (r < 0)
                return r;
        r = cow_loop_backing_file(dev, back, sizeof(back));
        if (r < 0)
                return r;
        n = strlen(back);
        if (n <= strlen(suffix) || !streq(back + n - strlen(suffix), suffix))
                return -ENOENT;
        back[n - strlen(suffix)] = 0;
        snprintf(sock, sizeof(sock), "%s/control.sock", back);
        if (stat(sock, &st) < 0 || !S_ISSOCK(st.st_mode))
                return -ENOENT;
        if ((size_t)snprintf(rundir, len, "%s", back) >= len)
                return -ENAMETOOLONG;
        return 0;
}

