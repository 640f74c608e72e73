/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What the volume server's fuzz targets (fuzz-nbd, fuzz-fuse) share: a real CoW
 * engine on in-memory devices (1 MiB origin filled with fuzz_pattern(), one
 * snapshot FUZZ_SNAP_GUID) and the checks run after every input.
 */

#include <stdbool.h>
#include <stdint.h>

#include "cow/cow.h"

#define FUZZ_ORIGIN_SIZE (1024u * 1024u)

extern const uint8_t fuzz_snap_guid[16];

/* abort()s with 'what' on stderr when !ok; 'target' names the fuzz target. */
void fuzz_check(bool ok, const char *target, const char *what);
uint8_t fuzz_pattern(uint64_t off);
/* The engine with its snapshot, built once per process. */
struct cow_volume *fuzz_volume(const char *target);
/* After an input: the snapshot still reads as the original, and (nothing holding the
 * live volume any more) a revert to it succeeds and the volume reads as the snapshot. */
void fuzz_volume_check(struct cow_volume *vol, const char *target);
