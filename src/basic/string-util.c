/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/string-util.h"

/* Length of the valid UTF-8 sequence at p (1..4), or 0 when the bytes there are not one. */
static size_t utf8_seq_len(const unsigned char *p)
{
        uint32_t cp;
        size_t n;

        if (p[0] < 0x80)
                return 1;
        if (p[0] >= 0xC2 && p[0] <= 0xDF)
                n = 2, cp = p[0] & 0x1F;
        else if (p[0] >= 0xE0 && p[0] <= 0xEF)
                n = 3, cp = p[0] & 0x0F;
        else if (p[0] >= 0xF0 && p[0] <= 0xF4)
                n = 4, cp = p[0] & 0x07;
        else
                return 0;
        for (size_t i = 1; i < n; i++) {
                if ((p[i] & 0xC0) != 0x80)
                        return 0;       /* also stops at the terminating NUL */
                cp = (cp << 6) | (p[i] & 0x3F);
        }
        if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
                return 0;
        return n;
}

char *utf8_make_valid(char *s)
{
        unsigned char *p = (unsigned char *)s;

        while (*p) {
                size_t n = utf8_seq_len(p);

                if (n == 0)
                        *p++ = '?';
                else
                        p += n;
        }
        return s;
}

size_t utf8_cut(const char *s, size_t max)
{
        size_t n = strnlen(s, max);

        if (n < max || !s[n])
                return n;
        /* Back off over continuation bytes to the start of the character at 'max'. */
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
                n--;
        return n;
}

char *fmt_trunc(char *buf, size_t len, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        (void)vsnprintf(buf, len, fmt, ap);
        va_end(ap);
        return buf;
}

static int parse_tail(const char *end)
{
        while (isspace((unsigned char)*end))
                end++;
        return *end ? -EINVAL : 0;
}

int parse_u64(const char *s, uint64_t *ret)
{
        unsigned long long v;
        char *end;

        while (isspace((unsigned char)*s))
                s++;
        /* strtoull accepts "-1" as ULLONG_MAX. */
        if (!isdigit((unsigned char)*s))
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno == ERANGE)
                return -ERANGE;
        if (parse_tail(end) < 0)
                return -EINVAL;
        *ret = v;
        return 0;
}

int parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *ret)
{
        uint64_t v;
        int r;

        r = parse_u64(s, &v);
        if (r < 0)
                return r;
        if (v < min || v > max)
                return -ERANGE;
        *ret = (uint32_t)v;
        return 0;
}

int parse_int(const char *s, int *ret)
{
        long v;
        char *end;

        while (isspace((unsigned char)*s))
                s++;
        if (!isdigit((unsigned char)*s) && !((*s == '-' || *s == '+') && isdigit((unsigned char)s[1])))
                return -EINVAL;
        errno = 0;
        v = strtol(s, &end, 10);
        if (errno == ERANGE || v < INT_MIN || v > INT_MAX)
                return -ERANGE;
        if (parse_tail(end) < 0)
                return -EINVAL;
        *ret = (int)v;
        return 0;
}
