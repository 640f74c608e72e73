/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Proposed addition to include/vss/writer.h (owned by someone else, so it
 * lives here until it moves there): the detail text of the last failure of
 * vss_writer_subscribe()/vss_writer_dispatch(), e.g. the daemon's "path /x
 * does not exist" or "cannot reach vssd at /run/openvss/vssd.sock: No such
 * file or directory".  Exported from libvss.so like every vss_* symbol.
 */

#include "vss/writer.h"

/* Never NULL; "" when there was no failure. */
const char *vss_writer_get_error_detail(vss_writer *w);
