/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <ctype.h>
#include <errno.h>
#include <strings.h>

#include "basic/macro.h"
#include "basic/size-util.h"

static const struct {
        const char *unit;
        unsigned shift;
} units[] = {
        { "", 0 },    { "B", 0 },
        { "K", 10 },  { "KB", 10 }, { "KiB", 10 },
        { "M", 20 },  { "MB", 20 }, { "MiB", 20 },
        { "G", 30 },  { "GB", 30 }, { "GiB", 30 },
        { "T", 40 },  { "TB", 40 }, { "TiB", 40 },
        { "P", 50 },  { "PB", 50 }, { "PiB", 50 },
        { "E", 60 },  { "EB", 60 }, { "EiB", 60 },
};

int size_parse(const char *text, uint64_t *ret)
{
        uint64_t whole = 0, frac_num = 0, frac_den = 1, bytes, frac_bytes;
        const char *p = text;
        bool digits = false;
        int shift = -1;

        if (!text || !ret)
                return -EINVAL;
        for (; isdigit((unsigned char)*p); p++) {
                uint64_t d = (uint64_t)(*p - '0');

                if (whole > (UINT64_MAX - d) / 10)
                        return -ERANGE;
                whole = whole * 10 + d;
                digits = true;
        }
        if (!digits)
                return -EINVAL;
        if (*p == '.') {
                p++;
                if (!isdigit((unsigned char)*p))
                        return -EINVAL;
                for (; isdigit((unsigned char)*p); p++)
                        /* More than 18 fractional digits cannot change a byte count. */
                        if (frac_den < UINT64_C(1000000000000000000)) {
                                frac_num = frac_num * 10 + (uint64_t)(*p - '0');
                                frac_den *= 10;
                        }
        }
        for (size_t i = 0; i < ARRAY_SIZE(units); i++)
                if (strcasecmp(p, units[i].unit) == 0) {
                        shift = (int)units[i].shift;
                        break;
                }
        if (shift < 0)
                return -EINVAL;
        if (shift > 0 && whole > (UINT64_MAX >> shift))
                return -ERANGE;
        bytes = whole << shift;
        /* frac_num / frac_den < 1, so frac * 2^shift < 2^shift <= 2^60: split to avoid overflow. */
        frac_bytes = (uint64_t)(((unsigned __int128)frac_num << shift) / frac_den);
        if (bytes > UINT64_MAX - frac_bytes)
                return -ERANGE;
        *ret = bytes + frac_bytes;
        return 0;
}

