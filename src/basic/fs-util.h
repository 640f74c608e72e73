/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <sys/types.h>

/* Creates 'path' and every missing parent with 'mode' (like mkdir -p).  An
 * existing directory is fine; an existing non-directory is -ENOTDIR.  Returns 0
 * or -errno. */
int mkdir_p(const char *path, mode_t mode);
