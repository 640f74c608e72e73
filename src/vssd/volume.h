/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Volumes on Linux: a mounted filesystem named by its mount point, or a btrfs
 * subvolume (a directory with inode 256 on btrfs).
 */

#include <stdbool.h>
#include <stddef.h>

#include "vss/provider.h"

struct volume_info {
        char path[VSS_PATH_MAX];        /* the volume: mount point or subvolume root */
        char device[VSS_PATH_MAX];      /* mount source, "" if unknown */
        char fstype[32];
        bool subvolume;                 /* a btrfs subvolume that is not itself a mount point */
};

/* Maps any existing path to its volume.  VSS_E_OBJECT_NOT_FOUND if the path does not exist. */
vss_hresult volume_of_path(const char *path, struct volume_info *ret, char *errbuf, size_t errlen);
/* Like volume_of_path(), but 'path' must itself be the volume (mount point or subvolume
 * root): a directory inside a volume gives VSS_E_OBJECT_NOT_FOUND naming the volume it lies on. */
vss_hresult volume_exact(const char *path, struct volume_info *ret, char *errbuf, size_t errlen);
/* Every mounted filesystem (mount point, device, fstype), from /proc/self/mountinfo. */
int volume_list_mounts(struct volume_info **ret, size_t *ret_n);
/* st_dev of 'path' equals that of 'other'. */
bool volume_same_fs(const char *path, const char *other);
