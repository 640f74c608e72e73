/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* freeze.c: syncfs + FIFREEZE around a provider call, with a watchdog. */

#include <stddef.h>

#include "vss/vss.h"

/* Freezes every path (syncfs + FIFREEZE) with a watchdog child, runs cb, thaws.
 * Refuses (VSS_E_VOLUME_NOT_SUPPORTED) when a path shares its filesystem with
 * one of 'protect' (vssd's state dir, diff areas, volume servers' run dirs).
 * VSS_E_HOLD_WRITES_TIMEOUT when cb ran past hold_ms (the watchdog thawed). */
vss_hresult freeze_around(char **paths, size_t n, char **protect, size_t n_protect, unsigned hold_ms,
                          vss_hresult (*cb)(void *userdata), void *userdata, char *errbuf, size_t errlen);
