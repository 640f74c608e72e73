/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <sys/types.h>

/* Writes all n bytes to a blocking fd, retrying on EINTR and short writes.  Returns 0 or -errno. */
int write_all(int fd, const void *p, size_t n);

/* Creates 'path' and every missing parent with 'mode' (like mkdir -p).  An
 * existing directory is fine; an existing non-directory is -ENOTDIR.  Returns 0
 * or -errno. */
int mkdir_p(const char *path, mode_t mode);

/* The mount on top of 'path' in /proc/self/mountinfo (which asks no file system
 * anything, so it is safe on a FUSE mount nobody serves): its device number
 * (st_dev of its root), source and type, each optional (NULL).  Returns 0,
 * -ENOENT when nothing is mounted there, or -errno. */
int mount_lookup(const char *path, dev_t *ret_devnum, char *src, size_t srclen, char *fstype, size_t fslen);
/* The backing file of loop device 'dev' (/dev/loopN) as sysfs names it (which asks no file
 * system anything either).  0, -ENOENT when 'dev' is not a loop device or has no backing
 * file, or -errno. */
int loop_backing_file(const char *dev, char *buf, size_t len);

/* Replaces 'path' by a file holding 'data' (mode 0600) so that a crash leaves the old file or
 * the new one, whole: written to path.tmp, fsync'ed, renamed, directory fsync'ed.  0 or -errno. */
int write_file_atomic(const char *path, const void *data, size_t len);
/* Writes back the dirty data of the file system holding 'path' (syncfs(2) on it).  0 or -errno. */
int syncfs_path(const char *path);
