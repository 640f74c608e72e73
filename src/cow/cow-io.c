/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The I/O layer of real files and block devices: pread/pwrite/fdatasync, with
 * optional O_DIRECT for aligned requests.  The engine sees only the ops table
 * (cow-io.h), so tests put their own layers in its place: an in-memory
 * device, a power-cut simulator and a call counter (tests/cow/cow-test-io.c).
 */

#include <assert.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <linux/fs.h>

#include "basic/macro.h"
#include "cow/cow-io.h"

struct cow_io *cow_io_free(struct cow_io *io)
{
        if (io)
                io->ops->free(io);
        return NULL;
}

/* ---- real files ---- */

/*
 * With 'direct', two descriptors on the file: requests whose buffer, offset
 * and length are 4 KiB-aligned (the engine's copies, journal blocks and
 * superblocks) go through O_DIRECT and skip the page cache, the rest (reads
 * of shadow copies into callers' buffers) through the cached one.  The
 * kernel keeps the two coherent: a direct write writes back and drops the
 * cached pages of its range.
 */
struct file_io {
        struct cow_io io;
        int fd;
        int dfd;                /* O_DIRECT, or -EBADF */
        bool owns_fd;
        bool blockdev;
};

#define DIRECT_ALIGN 4096u

static int pick_fd(struct file_io *f, const void *buf, size_t len, uint64_t off)
{
        if (f->dfd >= 0 && (uintptr_t) buf % DIRECT_ALIGN == 0 && len % DIRECT_ALIGN == 0 &&
            off % DIRECT_ALIGN == 0)
                return f->dfd;
        return f->fd;
}

static int file_pread(struct cow_io *io, void *buf, size_t len, uint64_t off)
{
        struct file_io *f = (struct file_io *) io;
        int fd = pick_fd(f, buf, len, off);
        uint8_t *p = buf;

        while (len > 0) {
                ssize_t n = pread(fd, p, len, (off_t) off);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0) {
                        /* Past the end of a sparse diff area: reads as zeros. */
                        memset(p, 0, len);
                        return 0;
                }
                p += n;
                len -= (size_t) n;
                off += (uint64_t) n;
        }
        return 0;
}

static int file_pwrite(struct cow_io *io, const void *buf, size_t len, uint64_t off)
{
        struct file_io *f = (struct file_io *) io;
        int fd = pick_fd(f, buf, len, off);
        const uint8_t *p = buf;

        while (len > 0) {
                ssize_t n = pwrite(fd, p, len, (off_t) off);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return -EIO;
                p += n;
                len -= (size_t) n;
                off += (uint64_t) n;
        }
        return 0;
}

static int file_flush(struct cow_io *io)
{
        struct file_io *f = (struct file_io *) io;

        if (fdatasync(f->fd) < 0)
                return -errno;
        return 0;
}

static int file_size(struct cow_io *io, uint64_t *ret_size)
{
        struct file_io *f = (struct file_io *) io;
        struct stat st;

        if (fstat(f->fd, &st) < 0)
                return -errno;
        if (S_ISBLK(st.st_mode)) {
                uint64_t sz;
                if (ioctl(f->fd, BLKGETSIZE64, &sz) < 0)
                        return -errno;
                *ret_size = sz;
                return 0;
        }
        *ret_size = (uint64_t) st.st_size;
        return 0;
}

static int file_resize(struct cow_io *io, uint64_t size)
{
        struct file_io *f = (struct file_io *) io;
        uint64_t cur;
        int r;

        if (f->blockdev)
                return -EOPNOTSUPP;
        r = file_size(io, &cur);
        if (r < 0)
                return r;
        if (size > cur) {
                /* Reserve the blocks now, so a later copy cannot hit ENOSPC half-way. */
                r = posix_fallocate(f->fd, (off_t) cur, (off_t) (size - cur));
                if (r == 0)
                        return 0;
                if (r != EOPNOTSUPP && r != EINVAL)
                        return -r;
        }
        if (ftruncate(f->fd, (off_t) size) < 0)
                return -errno;
        return 0;
}

static void file_free(struct cow_io *io)
{
        struct file_io *f = (struct file_io *) io;

        if (f->owns_fd && f->fd >= 0)
                close(f->fd);
        if (f->dfd >= 0)
                close(f->dfd);
        free(f);
}

static void file_prefetch(struct cow_io *io, uint64_t off, size_t len)
{
        struct file_io *f = (struct file_io *) io;

        /* Readahead into the page cache, so a batch of copies reads in parallel. */
        (void) posix_fadvise(f->fd, (off_t) off, (off_t) len, POSIX_FADV_WILLNEED);
}

static const struct cow_io_ops file_ops = {
        .prefetch = file_prefetch,
        .pread = file_pread,
        .pwrite = file_pwrite,
        .flush = file_flush,
        .size = file_size,
        .resize = file_resize,
        .free = file_free,
};

static int file_io_new(int fd, bool owns, struct cow_io **ret_io)
{
        struct file_io *f;
        struct stat st;

        if (fstat(fd, &st) < 0)
                return -errno;
        f = calloc(1, sizeof(*f));
        if (!f)
                return -ENOMEM;
        f->io.ops = &file_ops;
        f->fd = fd;
        f->dfd = -EBADF;
        f->owns_fd = owns;
        f->blockdev = S_ISBLK(st.st_mode);
        *ret_io = &f->io;
        return 0;
}

int cow_io_open_file(const char *path, bool create, bool direct, struct cow_io **ret_io)
{
        _cleanup_close_ int fd = -EBADF;
        int flags = O_RDWR | O_CLOEXEC;
        int r;

        if (!path || !ret_io)
                return -EINVAL;
        if (create)
                flags |= O_CREAT;
        fd = open(path, flags, 0600);
        if (fd < 0)
                return -errno;
        r = file_io_new(fd, true, ret_io);
        if (r < 0)
                return r;
        TAKE_FD(fd);
        if (direct) {
                struct file_io *f = (struct file_io *) *ret_io;

                /* A file system without O_DIRECT (EINVAL) keeps the cached path only. */
                f->dfd = open(path, (flags & ~O_CREAT) | O_DIRECT);
                if (f->dfd < 0 && errno != EINVAL) {
                        r = -errno;
                        *ret_io = cow_io_free(*ret_io);
                        return r;
                }
        }
        return 0;
}

int cow_io_from_fd(int fd, struct cow_io **ret_io)
{
        if (fd < 0 || !ret_io)
                return -EINVAL;
        return file_io_new(fd, false, ret_io);
}
