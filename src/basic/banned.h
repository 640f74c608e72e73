/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * C library functions this project does not call. The build force-includes this file
 * (meson.build: -include), so a call to any of them is a compile error that names
 * the function. The headers that declare them are included first: their
 * declarations must be seen before the names become macros, and their include guards
 * keep later #includes from seeing the macros.
 *
 *   strcpy, strcat, sprintf, vsprintf, gets   no bound on the destination: snprintf,
 *                                              memcpy after a length check
 *   strncpy, strncat                           silently truncate or do not terminate
 *   atoi, atol, atoll                          no error for "12x" or overflow:
 *                                              parse_u64/parse_int (string-util.h)
 *   strtok                                     hidden state, not thread-safe
 *   gmtime, localtime, ctime, asctime          shared static buffer (vssd and the
 *                                              volume server run threads): the _r forms
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BANNED(func) sorry_##func##_is_banned_see_src_basic_banned_h

#undef strcpy
#define strcpy(x, y) BANNED(strcpy)
#undef strcat
#define strcat(x, y) BANNED(strcat)
#undef strncpy
#define strncpy(x, y, n) BANNED(strncpy)
#undef strncat
#define strncat(x, y, n) BANNED(strncat)
#undef sprintf
#define sprintf(...) BANNED(sprintf)
#undef vsprintf
#define vsprintf(...) BANNED(vsprintf)
#undef gets
#define gets(x) BANNED(gets)
#undef atoi
#define atoi(x) BANNED(atoi)
#undef atol
#define atol(x) BANNED(atol)
#undef atoll
#define atoll(x) BANNED(atoll)
#undef strtok
#define strtok(x, y) BANNED(strtok)
#undef gmtime
#define gmtime(t) BANNED(gmtime)
#undef localtime
#define localtime(t) BANNED(localtime)
#undef ctime
#define ctime(t) BANNED(ctime)
#undef asctime
#define asctime(t) BANNED(asctime)
