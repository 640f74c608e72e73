/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "basic/fs-util.h"
#include "basic/macro.h"

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
