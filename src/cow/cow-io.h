/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The replaceable I/O layer of the CoW engine.  Every byte the engine reads or
 * writes, on the origin and on the diff area, goes through one of these
 * objects, so tests can swap the real file implementation for an in-memory
 * one (fuzzing) or for a power-cut simulator (crash tests): those live in
 * tests/cow/cow-test-io.h.
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
