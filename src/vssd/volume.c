/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Path -> volume mapping.  We canonicalise with realpath(), then walk up the
 * directory chain: the first ancestor that is a mount point (listed in
 * /proc/self/mountinfo, or whose st_dev differs from its parent's) or a btrfs
 * subvolume root (inode 256 on btrfs) is the volume.  Device and fstype come
 * from the mountinfo entry with the longest mount point that is a prefix.
 */

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include "basic/macro.h"
#include "vssd/volume.h"

#define BTRFS_MAGIC 0x9123683E
#define BTRFS_FIRST_FREE_INO 256

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape(char *s)
{
        char *o = s;

        for (char *p = s; *p;) {
                if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' && p[3] >= '0' &&
                    p[3] <= '7') {
                        *o++ = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
                        p += 4;
                } else
                        *o++ = *p++;
        }
        *o = 0;
}

int volume_list_mounts(struct volume_info **ret, size_t *ret_n)
{
        _cleanup_free_ char *line = NULL;
        struct volume_info *list = NULL;
        size_t n = 0, cap = 0, len = 0;
        FILE *f;

        f = fopen("/proc/self/mountinfo", "re");
        if (!f)
                return -errno;
        while (getline(&line, &len, f) > 0) {
                char *save = NULL, *tok, *mnt = NULL, *fstype = NULL, *src = NULL;
                int field = 0;
                bool after_sep = false;
                int k = 0;

                for (tok = strtok_r(line, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save), field++) {
                        if (field == 4)
                                mnt = tok;
                        if (!after_sep && field >= 6 && streq(tok, "-")) {
                                after_sep = true;
                                continue;
                        }
                        if (after_sep) {
                                if (k == 0)
                                        fstype = tok;
                                else if (k == 1)
                                        src = tok;
                                k++;
                        }
                }
                if (!mnt || !fstype)
                        continue;
                if (n == cap) {
                        struct volume_info *nl = realloc(list, (cap = cap ? cap * 2 : 32) * sizeof(*list));
                        if (!nl) {
                                free(list);
                                fclose(f);
                                return -ENOMEM;
                        }
                        list = nl;
                }
                list[n] = (struct volume_info){ 0 };
                unescape(mnt);
                snprintf(list[n].path, sizeof(list[n].path), "%s", mnt);
                snprintf(list[n].fstype, sizeof(list[n].fstype), "%s", fstype);
                if (src) {
                        unescape(src);
                        snprintf(list[n].device, sizeof(list[n].device), "%s", src);
                }
                n++;
        }
        fclose(f);
        *ret = list;
        *ret_n = n;
        return 0;
}

static bool path_has_prefix(const char *path, const char *prefix)
{
        size_t n = strlen(prefix);

        if (streq(prefix, "/"))
                return true;
        return strncmp(path, prefix, n) == 0 && (path[n] == 0 || path[n] == '/');
}

vss_hresult volume_of_path(const char *path, struct volume_info *ret, char *errbuf, size_t errlen)
{
        _cleanup_free_ struct volume_info *mounts = NULL;
        _cleanup_free_ char *real = NULL;
        char cur[PATH_MAX];
        struct stat st;
        size_t n_mounts = 0;
        ssize_t best = -1;
        int r;

        if (!path || path[0] != '/') {
                snprintf(errbuf, errlen, "'%s' is not an absolute path", path ? path : "");
                return VSS_E_INVALIDARG;
        }
        real = realpath(path, NULL);
        if (!real) {
                snprintf(errbuf, errlen, "%s: %s", path, strerror(errno));
                return errno == ENOMEM ? VSS_E_OUTOFMEMORY : VSS_E_OBJECT_NOT_FOUND;
        }
        r = volume_list_mounts(&mounts, &n_mounts);
        if (r < 0) {
                snprintf(errbuf, errlen, "cannot read /proc/self/mountinfo: %s", strerror(-r));
                return VSS_E_UNEXPECTED;
        }
        /* The last mount listed on a prefix is the visible one. */
        for (size_t i = 0; i < n_mounts; i++)
                if (path_has_prefix(real, mounts[i].path) &&
                    (best < 0 || strlen(mounts[i].path) >= strlen(mounts[best].path)))
                        best = (ssize_t)i;

        snprintf(cur, sizeof(cur), "%s", real);
        if (stat(cur, &st) < 0) {
                snprintf(errbuf, errlen, "%s: %s", path, strerror(errno));
                return VSS_E_OBJECT_NOT_FOUND;
        }
        if (!S_ISDIR(st.st_mode)) {
                char *slash = strrchr(cur, '/');
                if (slash == cur)
                        cur[1] = 0;
                else
                        *slash = 0;
        }

        *ret = (struct volume_info){ 0 };
        for (;;) {
                struct statfs sfs;
                struct stat pst;
                char parent[PATH_MAX];
                char *slash;

                if (stat(cur, &st) < 0) {
                        snprintf(errbuf, errlen, "%s: %s", cur, strerror(errno));
                        return VSS_E_OBJECT_NOT_FOUND;
                }
                if (best >= 0 && streq(cur, mounts[best].path))
                        break;
                if (streq(cur, "/"))
                        break;
                if (st.st_ino == BTRFS_FIRST_FREE_INO && statfs(cur, &sfs) == 0 &&
                    (unsigned long)sfs.f_type == BTRFS_MAGIC) {
                        ret->subvolume = true;
                        break;
                }
                snprintf(parent, sizeof(parent), "%s", cur);
                slash = strrchr(parent, '/');
                if (slash == parent)
                        parent[1] = 0;
                else
                        *slash = 0;
                if (stat(parent, &pst) == 0 && pst.st_dev != st.st_dev)
                        break;
                snprintf(cur, sizeof(cur), "%s", parent);
        }
        snprintf(ret->path, sizeof(ret->path), "%s", cur);
        if (best >= 0) {
                snprintf(ret->device, sizeof(ret->device), "%s", mounts[best].device);
                snprintf(ret->fstype, sizeof(ret->fstype), "%s", mounts[best].fstype);
        }
        return VSS_S_OK;
}

bool volume_same_fs(const char *path, const char *other)
{
        struct stat a, b;

        return stat(path, &a) == 0 && stat(other, &b) == 0 && a.st_dev == b.st_dev;
}

vss_hresult volume_exact(const char *path, struct volume_info *ret, char *errbuf, size_t errlen)
{
        _cleanup_free_ char *real = NULL;
        vss_hresult hr;

        hr = volume_of_path(path, ret, errbuf, errlen);
        if (VSS_FAILED(hr))
                return hr;
        real = realpath(path, NULL);
        if (!real)
                return VSS_E_OUTOFMEMORY;
        if (!streq(real, ret->path)) {
                snprintf(errbuf, errlen, "%s is not a volume (a mount point or btrfs subvolume): it lies on the volume %s",
                         path, ret->path);
                return VSS_E_OBJECT_NOT_FOUND;
        }
        return VSS_S_OK;
}
