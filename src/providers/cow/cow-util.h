/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The cow provider's own helpers. */

#include <stdbool.h>
#include <stddef.h>

/* The volume server RUNDIR behind a volume mounted at 'path' (a loop device over
 * RUNDIR/fuse/volume with RUNDIR/control.sock present).  -ENOENT if not a cow volume. */
int cow_rundir_of_volume(const char *path, char *rundir, size_t len);
