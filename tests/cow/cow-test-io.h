/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Test-only I/O layers for the CoW engine (cow-test-io.c). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cow/cow-io.h"

/* A growable in-memory device, optionally initialised with 'data'. */
int cow_io_new_memory(const void *data, size_t len, struct cow_io **ret_io);

/*
 * Power-cut simulator.  A world holds any number of devices; writes since a
 * device's last flush are kept pending.  The n-th flush in the world (1-based,
 * counted over all devices) is the crash point: it does not complete, each
 * pending write is then dropped, applied, or torn at 512-byte granularity
 * (some sectors new, some old, some garbage), in a random order drawn from a
 * seeded PRNG, and every later call of every device fails with -EIO.
 * crash_at == 0 never crashes (used to count the flush points of a workload).
 */
struct cow_crash_world;

struct cow_crash_world *cow_crash_world_new(uint64_t crash_at, uint64_t seed);
struct cow_crash_world *cow_crash_world_free(struct cow_crash_world *w);
uint64_t cow_crash_world_flushes(struct cow_crash_world *w);
bool cow_crash_world_crashed(struct cow_crash_world *w);
/* A new device in the world, starting from 'data' (durable). */
int cow_crash_io_new(struct cow_crash_world *w, const void *data, size_t len, struct cow_io **ret_io);
/* The durable image of a crash device (what a reboot would see). */
int cow_crash_io_durable(struct cow_io *io, void **ret_data, size_t *ret_len);

/* Counts calls (tests of O(1) behaviour); wraps 'inner', which it does not own. */
struct cow_io_counts {
        uint64_t preads, pwrites, flushes, bytes_read, bytes_written;
};
int cow_io_new_counting(struct cow_io *inner, struct cow_io **ret_io);
void cow_io_counting_get(struct cow_io *io, struct cow_io_counts *ret);
