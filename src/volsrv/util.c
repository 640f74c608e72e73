/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Small helpers shared by the front ends: vlog_hr (an error line naming the
 * HRESULT, on stderr, which is RUNDIR/volsrv.log once the server has daemonized), the bare
 * GUID form used in file and export names, and snapshot lookup.  Kept apart
 * from main.c so the NBD fuzz target links them without the server.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "basic/log.h"
#include "basic/macro.h"
#include "volsrv/volsrv.h"

vss_hresult vlog_hr(vss_hresult hr, int r, const char *fmt, ...)
{
        char msg[1024];
        va_list ap;

        va_start(ap, fmt);
        (void)vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        log_err("%s%s%s (0x%08X %s: %s)", msg, r != 0 ? ": " : "", r != 0 ? strerror(r < 0 ? -r : r) : "",
                (unsigned) hr, vss_hresult_name(hr), vss_hresult_message(hr));
        return hr;
}

void volsrv_guid_bare(const uint8_t guid[16], char buf[37])
{
        char braced[VSS_ID_STRING_MAX];
        vss_id id;

        memcpy(id.bytes, guid, 16);
        vss_id_format(&id, braced);
        memcpy(buf, braced + 1, 36);
        buf[36] = 0;
}

int volsrv_snapshot_find(struct cow_volume *vol, const uint8_t guid[16], struct cow_snapshot_info *ret_info)
{
        _cleanup_free_ struct cow_snapshot_info *list = NULL;
        size_t n = 0;
        int r;

        r = cow_snapshot_list(vol, &list, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                if (memcmp(list[i].guid, guid, 16) == 0) {
                        if (ret_info)
                                *ret_info = list[i];
                        return 0;
                }
        return -ENOENT;
}
