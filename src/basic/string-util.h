/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>

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

/* Decimal numbers from text another program wrote (a pid file, a server's reply):
 * the whole of s, optional surrounding blanks and a trailing newline allowed.
 * -EINVAL for empty text, a sign on parse_u64 or anything else left over, -ERANGE
 * when the value does not fit.  *ret is set only on success. */
int parse_u64(const char *s, uint64_t *ret);
int parse_int(const char *s, int *ret);
/* A setting's number, as parse_u64 reads it, within [min, max]: -ERANGE outside. */
int parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *ret);
