/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Sizes as vssadmin writes them.  /maxsize takes a size in the grammar of
 * basic/size-util.h (powers of 1024, as on Windows), the word UNBOUNDED, or a
 * whole percentage of the volume (1%..100%).
 */

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <strings.h>

#include "basic/size-util.h"
#include "tools/common/tools-common.h"

vss_hresult tool_parse_size(const char *text, struct tool_size *ret)
{
        uint64_t bytes;
        size_t n;

        if (!text)
                return VSS_E_INVALIDARG;
        if (strcasecmp(text, "UNBOUNDED") == 0) {
                *ret = (struct tool_size) { .kind = TOOL_SIZE_UNBOUNDED };
                return VSS_S_OK;
        }
        n = strlen(text);
        if (n >= 2 && text[n - 1] == '%') {
                unsigned pct = 0;

                /* 1..100, whole percent only. */
                for (size_t i = 0; i + 1 < n; i++) {
                        if (!isdigit((unsigned char)text[i]) || pct > 100)
                                return VSS_E_INVALIDARG;
                        pct = pct * 10 + (unsigned)(text[i] - '0');
                }
                if (pct < 1 || pct > 100)
                        return VSS_E_INVALIDARG;
                *ret = (struct tool_size) { .kind = TOOL_SIZE_PERCENT, .percent = pct };
                return VSS_S_OK;
        }
        if (size_parse(text, &bytes) < 0)
                return VSS_E_INVALIDARG;
        *ret = (struct tool_size) { .kind = TOOL_SIZE_BYTES, .bytes = bytes };
        return VSS_S_OK;
}

char *tool_format_size(uint64_t bytes, char *buf, size_t len)
{
        static const char *const names[] = { "KB", "MB", "GB", "TB", "PB", "EB" };
        double v = (double)bytes;
        size_t u = 0;

        if (bytes < 1024) {
                snprintf(buf, len, "%" PRIu64 " bytes", bytes);
                return buf;
        }

        v /= 1024;
        while (v >= 1000 && u + 1 < ARRAY_SIZE(names)) {
                v /= 1024;
                u++;
        }

        /* Three significant digits, like "2.06 GB" and "11.8 GB"; round first so
         * that 9.999 becomes "10.0" and not "10.00". */
        if (v < 9.995)
                snprintf(buf, len, "%.2f %s", v, names[u]);
        else if (v < 99.95)
                snprintf(buf, len, "%.1f %s", v, names[u]);
        else
                snprintf(buf, len, "%.0f %s", v, names[u]);
        return buf;
}
