/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Helpers shared by the cow provider and vssd's cow volume code. */

#include <stdbool.h>
#include <stddef.h>

/* Source device and fstype of the filesystem mounted exactly at 'path'.  -ENOENT if none. */
int cow_mount_source(const char *path, char *dev, size_t devlen, char *fstype, size_t fslen);
/* Backing file of a loop device (/dev/loopN), from sysfs.  -errno on failure. */
int cow_loop_backing_file(const char *dev, char *buf, size_t len);
/* The volume server RUNDIR behind a volume mounted at 'path' (a loop device over
 * RUNDIR/fuse/volume with RUNDIR/control.sock present).  -ENOENT if not a cow volume. */
int cow_rundir_of_volume(const char *path, char *rundir, size_t len);
