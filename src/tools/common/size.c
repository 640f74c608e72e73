/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Sizes as vssadmin writes them.  /maxsize takes a number with an optional
 * unit (B, KB .. EB or B, K .. E, powers of 1024 as on Windows), the word
 * UNBOUNDED, or a percentage of the volume.  The number may have a fraction
 * ("1.5GB"); it is parsed by hand in integer arithmetic so that "16EB" is
 * reported as an overflow instead of silently rounding through a double.
 */

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <strings.h>

#include "tools/common/tools-common.h"

static const struct {
        const char *unit;
        unsigned shift;
} units[] = {
        { "",   0 },
        { "B",  0 },
        { "K",  10 }, { "KB", 10 },
        { "M",  20 }, { "MB", 20 },
        { "G",  30 }, { "GB", 30 },
        { "T",  40 }, { "TB", 40 },
        { "P",  50 }, { "PB", 50 },
        { "E",  60 }, { "EB", 60 },
};

vss_hresult tool_parse_size(const char *text, struct tool_size *ret)
{
        uint64_t whole = 0, frac_num = 0, frac_den = 1;
        const char *p = text;
        bool digits = false;

        if (!text)
                return VSS_E_INVALIDARG;

        if (strcasecmp(text, "UNBOUNDED") == 0) {
                *ret = (struct tool_size) { .kind = TOOL_SIZE_UNBOUNDED };
                return VSS_S_OK;
        }

        for (; isdigit((unsigned char)*p); p++) {
                uint64_t d = (uint64_t)(*p - '0');

                if (whole > (UINT64_MAX - d) / 10)
                        return VSS_E_INVALIDARG;
                whole = whole * 10 + d;
                digits = true;
        }
        if (*p == '.') {
                p++;
                if (!digits || !isdigit((unsigned char)*p))
                        return VSS_E_INVALIDARG;
                for (; isdigit((unsigned char)*p); p++) {
                        /* More than 18 fractional digits cannot change a byte count. */
                        if (frac_den < UINT64_C(1000000000000000000)) {
                                frac_num = frac_num * 10 + (uint64_t)(*p - '0');
                                frac_den *= 10;
                        }
                        digits = true;
                }
        }
        if (!digits)
                return VSS_E_INVALIDARG;

        if (streq(p, "%")) {
                if (frac_num != 0 || whole < 1 || whole > 100)
                        return VSS_E_INVALIDARG;
                *ret = (struct tool_size) { .kind = TOOL_SIZE_PERCENT, .percent = (unsigned)whole };
                return VSS_S_OK;
        }

        for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
                unsigned shift = units[i].shift;
                uint64_t bytes, frac_bytes;

                if (strcasecmp(p, units[i].unit) != 0)
                        continue;

                if (shift > 0 && whole > (UINT64_MAX >> shift))
                        return VSS_E_INVALIDARG;
                bytes = whole << shift;
                /* frac_num / frac_den of one unit, rounded down to whole bytes. */
                frac_bytes = (uint64_t)(((unsigned __int128)frac_num << shift) / frac_den);
                if (bytes > UINT64_MAX - frac_bytes)
                        return VSS_E_INVALIDARG;
                *ret = (struct tool_size) { .kind = TOOL_SIZE_BYTES, .bytes = bytes + frac_bytes };
                return VSS_S_OK;
        }

        return VSS_E_INVALIDARG;
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
