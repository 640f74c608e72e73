/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The replaceable I/O layer of the CoW engine.  Every byte the engine reads or
 * writes, on the origin and on the diff area, goes through one of these
 * objects, so tests can swap the real file implementation for an in-memory
 * one (fuzzing) or for a power-cut simulator (crash tests).
 *
 * All operations return 0 or a negative errno.  Reads past the end of the
 * device return zeros (a diff area file grows sparsely); writes past the end
 * extend it.  Implementations must be safe for concurrent calls.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cow_io;

struct cow_io_ops {
        int (*pread)(struct cow_io *io, void *buf, size_t len, uint64_t off);
        int (*pwrite)(struct cow_io *io, const void *buf, size_t len, uint64_t off);
        /* Make every completed write durable (fdatasync, or a cache flush). */
        int (*flush)(struct cow_io *io);
        int (*size)(struct cow_io *io, uint64_t *ret_size);
        /* Grow or shrink; may be a no-op for block devices (fails with -EOPNOTSUPP). */
        int (*resize)(struct cow_io *io, uint64_t size);
        void (*free)(struct cow_io *io);
        /* Optional hint: [off, off+len) will be read soon (start reading it now). */
        void (*prefetch)(struct cow_io *io, uint64_t off, size_t len);
};

struct cow_io {
        const struct cow_io_ops *ops;
};

static inline int cow_io_pread(struct cow_io *io, void *buf, size_t len, uint64_t off)
{
        return io->ops->pread(io, buf, len, off);
}

static inline int cow_io_pwrite(struct cow_io *io, const void *buf, size_t len, uint64_t off)
{
        return io->ops->pwrite(io, buf, len, off);
}

static inline int cow_io_flush(struct cow_io *io)
{
        return io->ops->flush(io);
}

static inline int cow_io_size(struct cow_io *io, uint64_t *ret_size)
{
        return io->ops->size(io, ret_size);
}

static inline int cow_io_resize(struct cow_io *io, uint64_t size)
{
        return io->ops->resize(io, size);
}

static inline void cow_io_prefetch(struct cow_io *io, uint64_t off, size_t len)
{
        if (io->ops->prefetch)
                io->ops->prefetch(io, off, len);
}

struct cow_io *cow_io_free(struct cow_io *io);

/* Real files and block devices: pread/pwrite/fdatasync.  With 'direct', requests
 * aligned to 4 KiB (buffer, offset, length) bypass the page cache (O_DIRECT) and
 * the others go through it (see cow-io.c). */
int cow_io_open_file(const char *path, bool create, bool direct, struct cow_io **ret_io);
/* Wraps an fd the caller keeps owning. */
int cow_io_from_fd(int fd, struct cow_io **ret_io);

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
