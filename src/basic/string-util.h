/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>

#include "basic/macro.h"

/* snprintf for messages and paths where truncation is acceptable (an over-long
 * path then fails to open, with an error naming it).  Returns buf. */
char *fmt_trunc(char *buf, size_t len, const char *fmt, ...) _printf_(3, 4);

/* JSON strings must be UTF-8 and peers' text (a hook's stderr, a parser's error
 * quoting input) need not be: replaces every byte that is not part of a valid
 * UTF-8 sequence (overlong forms, surrogates and code points above U+10FFFF
 * included) with '?', in place.  Returns s. */
char *utf8_make_valid(char *s);
/* The largest length <= max at which s (valid UTF-8) can be cut without
 * splitting a character. */
size_t utf8_cut(const char *s, size_t max);
