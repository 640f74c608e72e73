/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Recognising a cow volume from its mount alone (mountinfo -> loop device ->
 * sysfs backing file -> RUNDIR/fuse/volume), so the provider needs no access
 * to vssd's catalog.
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

#include "basic/fs-util.h"
#include "basic/macro.h"
#include "providers/cow/cow-util.h"

int cow_rundir_of_volume(const char *path, char *rundir, size_t len)
{
        char dev[4096], back[4096], sock[4200];
        static const char suffix[] = "/fuse/volume";
        struct stat st;
        size_t n;
        int r;

        r = mount_lookup(path, NULL, dev, sizeof(dev), NULL, 0);
        if (r < 0)
                return r;
        r = loop_backing_file(dev, back, sizeof(back));
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

