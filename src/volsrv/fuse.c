/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * FUSE front end: RUNDIR/fuse/volume is the live volume (read-write) and
 * RUNDIR/fuse/shadows/<guid> each snapshot (read-only), so the kernel can put
 * a loop device (and a file system) on them.
 *
 * The settings below were measured with ext4 on `losetup --direct-io=on
 * fuse/volume`, fio randwrite 4 KiB libaio iodepth 16, against ext4 on a loop
 * on a plain image (bench/cow.sh section b; figures in docs/volsrv.md):
 *
 * - max_write 64 KiB.  Where the time went: perf on vss-volsrv showed 32 % of
 *   its samples in the *host* ext4_block_write_begin under cow_write()'s
 *   buffered pwrite to the origin, holding the origin's i_rwsem exclusively
 *   while the other workers queued on it; dropping the origin's host page
 *   cache (FADV_DONTNEED) took the same run from 16k to 43k IOPS and the
 *   symbol disappeared.  The host folios of the origin are as large as our
 *   writes (libfuse 3.14 defaults max_write to 1 MiB, so the prefill and
 *   every sequential pass leave 1 MiB folios), and each 4 KiB write then
 *   walks every buffer head of its folio (our best explanation; what is
 *   measured is the cure).  Capping the writes caps the folio: rand 4 KiB
 *   went from 0.41x (1 MiB) to 1.27x of the plain loop; 32 KiB is no better
 *   for rand and loses sequential, so 64 KiB.  The cost: max_pages follows
 *   max_write, so sequential reads are 64 KiB requests (2.4x instead of 5x
 *   the plain loop, both from the host page cache).
 * - max_background 64: async direct I/O requests count as background ones;
 *   the kernel's default of 12 throttles a 1 MiB write split in 64 KiB pieces
 *   at iodepth 16.
 * - FOPEN_DIRECT_IO on the live volume.  Loop over a direct_io FUSE file hung
 *   on kernel 4.4 (libfuse issue 56); on 6.18 loop with --direct-io=on and
 *   =off both work (mkfs, mount, fio, fsync, umount, 30 s at iodepth 32 with a
 *   snapshot taken in the middle).  With --direct-io=off it keeps the volume
 *   out of a second page cache (seq 0.44x vs 0.24x); with =on it changes
 *   nothing measurable.  libfuse 3.14 cannot ask for
 *   FOPEN_PARALLEL_DIRECT_WRITES (no such fuse_file_info bit), so the kernel
 *   takes the inode lock exclusively per write, but only to submit it: the
 *   loop's writes are async kiocbs and FUSE_CAP_ASYNC_DIO (on by default) sends
 *   them without waiting.  Shadows keep the page cache (read-only, immutable).
 * - No writeback cache: the page cache must never hold data newer than what
 *   we acknowledged (and loop over a writeback-cache FUSE file can deadlock).
 * - 8 workers, all kept alive (no thread churn), one /dev/fuse fd: 4 or 16
 *   workers and clone_fd measured within the noise of 8.  No splice: the
 *   high-level API would copy every spliced write into a malloc'd buffer,
 *   and the I/O paths must not allocate.  Buffers come from libfuse (one per
 *   worker thread, allocated at start).
 *
 * Threads: fuse_loop_mt() runs in its own thread; stopping is unmount + join,
 * and when the volume is still busy (a loop device holds it) the connection is
 * aborted through fusectl so the workers return.
 */

#define FUSE_USE_VERSION 312

#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "basic/macro.h"
#include "basic/time-util.h"
#include "volsrv/volsrv.h"

#define FH_VOLUME 1u

/* See the top of the file for how these were chosen. */
#define VF_MAX_WRITE (64u * 1024u)
#define VF_MAX_BACKGROUND 64u
#define VF_WORKERS 8u

struct volsrv_fuse {
        struct fuse *fuse;
        struct fuse_loop_config *cfg;
        pthread_t thread;
        bool thread_started;
        bool mounted;
        dev_t dev;
};

/* A shadow's open file handle: its GUID. */
struct shadow_fh {
        uint8_t guid[16];
};

static struct volsrv *ctx(void)
{
        return fuse_get_context()->private_data;
}

/* "/shadows/<guid>" -> 0 and the GUID; -ENOENT for every other path. */
static int shadow_path(const char *path, uint8_t guid[16])
{
        vss_id id;

        if (strncmp(path, "/shadows/", 9) != 0)
                return -ENOENT;
        path += 9;
        if (strlen(path) != 36 || vss_id_parse(path, &id) != VSS_S_OK)
                return -ENOENT;
        memcpy(guid, id.bytes, 16);
        return 0;
}

static void *vf_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
        cfg->kernel_cache = 0;
        cfg->auto_cache = 0;
        cfg->direct_io = 0;
        cfg->entry_timeout = 1.0;
        cfg->attr_timeout = 1.0;
        cfg->negative_timeout = 0;
        cfg->use_ino = 0;
        /* The page cache must never hold data newer than what we acknowledged. */
        conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
        conn->max_write = MIN(conn->max_write, VF_MAX_WRITE);
        conn->max_background = VF_MAX_BACKGROUND;
        conn->congestion_threshold = VF_MAX_BACKGROUND * 3 / 4;
        return fuse_get_context()->private_data;
}

static int vf_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
        struct volsrv *s = ctx();
        struct cow_snapshot_info info;
        uint8_t guid[16];
        int r;

        memset(st, 0, sizeof(*st));
        st->st_uid = getuid();
        st->st_gid = getgid();
        if (streq(path, "/") || streq(path, "/shadows")) {
                st->st_mode = S_IFDIR | 0755;
                st->st_nlink = 2;
                return 0;
        }
        st->st_blksize = 4096;
        st->st_size = (off_t) s->size;
        st->st_blocks = (blkcnt_t) (s->size / 512);
        st->st_nlink = 1;
        if (streq(path, "/volume")) {
                st->st_mode = S_IFREG | 0600;
                return 0;
        }
        r = shadow_path(path, guid);
        if (r < 0)
                return r;
        r = volsrv_snapshot_find(s->vol, guid, &info);
        if (r < 0)
                return -ENOENT;
        st->st_mode = S_IFREG | 0400;
        st->st_mtim.tv_sec = (time_t) (info.ctime_ns / 1000000000u);
        st->st_mtim.tv_nsec = (long) (info.ctime_ns % 1000000000u);
        st->st_ctim = st->st_atim = st->st_mtim;
        return 0;
}

static int vf_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t offset,
                      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
        struct volsrv *s = ctx();

        fill(buf, ".", NULL, 0, 0);
        fill(buf, "..", NULL, 0, 0);
        if (streq(path, "/")) {
                fill(buf, "volume", NULL, 0, 0);
                fill(buf, "shadows", NULL, 0, 0);
                return 0;
        }
        if (streq(path, "/shadows")) {
                _cleanup_free_ struct cow_snapshot_info *list = NULL;
                size_t n = 0;
                int r;

                r = cow_snapshot_list(s->vol, &list, &n);
                if (r < 0)
                        return r;
                for (size_t i = 0; i < n; i++) {
                        char bare[37];

                        volsrv_guid_bare(list[i].guid, bare);
                        fill(buf, bare, NULL, 0, 0);
                }
                return 0;
        }
        return -ENOTDIR;
}

static int vf_open(const char *path, struct fuse_file_info *fi)
{
        struct volsrv *s = ctx();
        struct shadow_fh *fh;
        uint8_t guid[16];
        int r;

        fi->direct_io = 0;
        fi->keep_cache = 0;
        if (streq(path, "/volume")) {
                if (fi->flags & O_TRUNC)
                        return -EPERM;
                /* Open for writing: a revert waits for the last such close
                 * (EBUSY while one runs). */
                if ((fi->flags & O_ACCMODE) != O_RDONLY) {
                        r = cow_live_open(s->vol);
                        if (r < 0)
                                return r;
                }
                fi->direct_io = 1;
                fi->fh = FH_VOLUME;
                return 0;
        }
        r = shadow_path(path, guid);
        if (r < 0)
                return r;
        if (volsrv_snapshot_find(s->vol, guid, NULL) < 0)
                return -ENOENT;
        if ((fi->flags & O_ACCMODE) != O_RDONLY)
                return -EROFS;
        fh = malloc(sizeof(*fh));
        if (!fh)
                return -ENOMEM;
        memcpy(fh->guid, guid, 16);
        fi->fh = (uint64_t) (uintptr_t) fh;
        return 0;
}

static int vf_release(const char *path, struct fuse_file_info *fi)
{
        if (fi->fh == FH_VOLUME && (fi->flags & O_ACCMODE) != O_RDONLY)
                cow_live_close(ctx()->vol);
        if (fi->fh != FH_VOLUME)
                free((void *) (uintptr_t) fi->fh);
        return 0;
}

static int vf_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
        struct volsrv *s = ctx();
        int r;

        if (off < 0)
                return -EINVAL;
        if ((uint64_t) off >= s->size)
                return 0;
        size = (size_t) MIN((uint64_t) size, s->size - (uint64_t) off);
        if (fi->fh == FH_VOLUME)
                r = cow_read(s->vol, buf, size, (uint64_t) off);
        else {
                const struct shadow_fh *fh = (const void *) (uintptr_t) fi->fh;

                r = cow_snapshot_read(s->vol, fh->guid, buf, size, (uint64_t) off);
                /* Deleted or evicted under the reader: the device is gone. */
                if (r == -ENOENT || r == -ESTALE)
                        r = -EIO;
        }
        return r < 0 ? r : (int) size;
}

static int vf_write(const char *path, const char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
        struct volsrv *s = ctx();
        int r;

        if (fi->fh != FH_VOLUME)
                return -EBADF;
        if (off < 0)
                return -EINVAL;
        if ((uint64_t) off >= s->size || size > s->size - (uint64_t) off)
                return -ENOSPC;
        r = cow_write(s->vol, buf, size, (uint64_t) off);
        return r < 0 ? r : (int) size;
}

static int vf_flush(const char *path, struct fuse_file_info *fi)
{
        if (fi->fh != FH_VOLUME)
                return 0;
        return cow_flush(ctx()->vol);
}

static int vf_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
        return vf_flush(path, fi);
}

static int vf_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
        /* A volume has a fixed size; "truncating" to it is harmless (O_TRUNC-less
         * tools call it), anything else is refused. */
        if (streq(path, "/volume") && (uint64_t) size == ctx()->size)
                return 0;
        return streq(path, "/volume") ? -EPERM : -EROFS;
}

static const struct fuse_operations ops = {
        .init = vf_init,
        .getattr = vf_getattr,
        .readdir = vf_readdir,
        .open = vf_open,
        .release = vf_release,
        .read = vf_read,
        .write = vf_write,
        .flush = vf_flush,
        .fsync = vf_fsync,
        .truncate = vf_truncate,
};

static void *loop_thread(void *arg)
{
        struct volsrv_fuse *vf = arg;
        int r;

        (void) pthread_setname_np(pthread_self(), "fuse");
        r = fuse_loop_mt(vf->fuse, vf->cfg);
        if (r != 0)
                log_warn("fuse: loop ended: %d", r);
        return NULL;
}

void volsrv_fuse_unmount_stale(const char *dir)
{
        if (umount2(dir, MNT_DETACH) == 0)
                log_info("fuse: lazily unmounted a stale mount on %s", dir);
}

int volsrv_fuse_start(struct volsrv *s)
{
        _cleanup_free_ struct volsrv_fuse *vf = NULL;
        char *argv[] = { "vss-volsrv", "-o", "fsname=vss-volsrv,subtype=openvss", NULL };
        struct fuse_args args = FUSE_ARGS_INIT(3, argv);
        struct stat st;
        pthread_attr_t attr;
        int r;

        vf = calloc(1, sizeof(*vf));
        if (!vf)
                return -ENOMEM;
        /* libfuse sizes its worker stacks from this; mlockall pins them whole. */
        setenv("FUSE_THREAD_STACK", "262144", 0);

        vf->fuse = fuse_new(&args, &ops, sizeof(ops), s);
        /* fuse_new() may have copied the arguments to the heap. */
        fuse_opt_free_args(&args);
        if (!vf->fuse)
                return -EIO;
        if (fuse_mount(vf->fuse, s->fuse_dir) != 0) {
                fuse_destroy(vf->fuse);
                return -EIO;
        }
        vf->mounted = true;

        vf->cfg = fuse_loop_cfg_create();
        if (!vf->cfg) {
                r = -ENOMEM;
                goto out_unmount;
        }
        /* Keep every worker alive: with fewer idle threads than the maximum, libfuse created
         * and destroyed ~350 threads a second under random 4 KiB I/O (docs/bench-cow.md). */
        fuse_loop_cfg_set_max_threads(vf->cfg, VF_WORKERS);
        fuse_loop_cfg_set_idle_threads(vf->cfg, VF_WORKERS);
        fuse_loop_cfg_set_clone_fd(vf->cfg, 0);

        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 256 * 1024);
        r = pthread_create(&vf->thread, &attr, loop_thread, vf);
        pthread_attr_destroy(&attr);
        if (r != 0) {
                r = -r;
                goto out_cfg;
        }
        vf->thread_started = true;
        /* Only now: stat() on the mount waits for a server thread to answer. */
        if (stat(s->fuse_dir, &st) == 0)
                vf->dev = st.st_dev;
        s->fuse = TAKE_PTR(vf);
        return 0;

out_cfg:
        fuse_loop_cfg_destroy(vf->cfg);
out_unmount:
        fuse_unmount(vf->fuse);
        fuse_destroy(vf->fuse);
        return r;
}

/* The workers block in read(/dev/fuse); only the end of the connection wakes them. */
static void abort_connection(dev_t dev)
{
        char path[64];
        int fd;

        snprintf(path, sizeof(path), "/sys/fs/fuse/connections/%u/abort", minor(dev));
        fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0) {
                log_warn("fuse: cannot abort connection (%s): %m", path);
                return;
        }
        if (write(fd, "1", 1) < 0)
                log_warn("fuse: cannot abort connection (%s): %m", path);
        close(fd);
}

void volsrv_fuse_stop(struct volsrv *s)
{
        struct volsrv_fuse *vf = s->fuse;
        struct timespec deadline;

        if (!vf)
                return;
        fuse_exit(vf->fuse);
        if (umount2(s->fuse_dir, 0) < 0) {
                if (errno == EBUSY)
                        log_warn("fuse: %s is still in use (loop device?): detaching it, its users get I/O errors",
                             s->fuse_dir);
                (void) umount2(s->fuse_dir, MNT_DETACH);
        }
        if (vf->thread_started) {
                deadline = timespec_from_us(clock_monotonic_us() + 2 * USEC_PER_SEC);
                if (pthread_clockjoin_np(vf->thread, NULL, CLOCK_MONOTONIC, &deadline) != 0) {
                        abort_connection(vf->dev);
                        pthread_join(vf->thread, NULL);
                }
        }
        /* Already unmounted above: this closes the session fd. */
        fuse_unmount(vf->fuse);
        fuse_loop_cfg_destroy(vf->cfg);
        fuse_destroy(vf->fuse);
        free(vf);
        s->fuse = NULL;
}
