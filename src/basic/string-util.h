/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>

#include "basic/macro.h"

/* snprintf for messages and paths where truncation is acceptable (an over-long
 * path then fails to open, with an error naming it).  Returns buf. */
char *fmt_trunc(char *buf, size_t len, const char *fmt, ...) _printf_(3, 4);
