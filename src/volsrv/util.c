/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Small helpers shared by the front ends: logging (one line per message on
 * stderr, which is RUNDIR/volsrv.log once the server has daemonized), the bare
 * GUID form used in file and export names, and snapshot lookup.  Kept apart
 * from main.c so the NBD fuzz target links them without the server.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "basic/macro.h"
#include "volsrv/volsrv.h"

static void vlog_prefix(void)
{
        struct timespec ts;
        struct tm tm;
        char buf[32];

        clock_gettime(CLOCK_REALTIME, &ts);
        localtime_r(&ts.tv_sec, &tm);
        strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &tm);
        fprintf(stderr, "%s.%03ld vss-volsrv[%d]: ", buf, ts.tv_nsec / 1000000, (int) getpid());
}

void vlog(const char *fmt, ...)
{
        va_list ap;

        vlog_prefix();
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}

vss_hresult vlog_hr(vss_hresult hr, int r, const char *fmt, ...)
{
        va_list ap;

        vlog_prefix();
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        if (r != 0)
                fprintf(stderr, ": %s", strerror(r < 0 ? -r : r));
        fprintf(stderr, " (0x%08X %s: %s)\n", (unsigned) hr, vss_hresult_name(hr), vss_hresult_message(hr));
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
