/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The one size grammar of openvss, for every command line and config file:
 *
 *     size   = number [unit]
 *     number = digits ["." digits]
 *     unit   = B | K | KB | KiB | M | MB | MiB | G | GB | GiB | T | TB | TiB
 *            | P | PB | PiB | E | EB | EiB            (any case)
 *
 * Every unit is a power of 1024, as vssadmin's /maxsize is on Windows (there
 * "1GB" is 2^30 bytes), so that "20G", "20GB" and "20GiB" mean the same thing
 * everywhere.  The fraction is computed in integer arithmetic and rounded down
 * to a byte; a value that does not fit 64 bits is -ERANGE rather than silently
 * rounded through a double.  Words such as UNBOUNDED or percentages are the
 * business of the caller that accepts them.
 */

#include <stddef.h>
#include <stdint.h>

/* 0 and the size in *ret; -EINVAL for text outside the grammar; -ERANGE on overflow. */
int size_parse(const char *text, uint64_t *ret);

