/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Cow volumes: an image file served by its own vss-volsrv process (FUSE file
 * + loop device), recorded in the catalog so vssd can find the volume server
 * again after a restart.  Volume servers are daemons of their own, never
 * vssd's children, so vssd can crash or restart without taking a filesystem
 * offline.
 *
 * The diff area is a file on another filesystem than the volume: on the
 * on-volume of the volume's shadow storage association
 * (<on>/.openvss/diff/NAME.diff, directories 0700, file 0600, created
 * O_EXCL so that two volumes, or two vssd instances, never share one), else
 * in the state directory.  Moving it (an association added or deleted for a
 * volume that has no shadows) takes the volume offline for a moment:
 * unmount, detach the loop device, stop the server, start it on a freshly
 * formatted diff area at the new place, attach and mount again.  Nothing is
 * lost, since without shadows the diff area holds nothing the origin lacks.
 */

#include <ctype.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdarg.h>
#include <linux/fs.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>

#include "basic/exec-util.h"
#include "basic/fs-util.h"
#include "basic/string-util.h"
#include "providers/cow/volsrv-client.h"
#include "vssd/volume.h"
#include "vssd/cowvol-server.h"
#include "vssd/vssd.h"

static void protect_ops(struct vssd *v, char **a, size_t *k);

int freeze_protect_list(struct vssd *v, char ***ret, size_t *ret_n)
{
        size_t n = 1, k = 0;
        char **a;

        for (struct cowvol *cv = v->cowvols; cv; cv = cv->next)
                n += 4;
        for (struct cowvol_op *op = v->cowvol_ops; op; op = op->next)
                n += ARRAY_SIZE(op->keep);
        a = calloc(n, sizeof(char *));
        if (!a)
                return -ENOMEM;
        a[k++] = strdup(v->state_dir);
        protect_ops(v, a, &k);
        for (struct cowvol *cv = v->cowvols; cv; cv = cv->next) {
                char *slash;

                a[k++] = strdup(cv->diff);
                /* Its directory too: it still names the on-volume while the
                 * diff file itself is being replaced. */
                a[k] = strdup(cv->diff);
                if (a[k] && (slash = strrchr(a[k], '/')) && slash != a[k])
                        *slash = 0;
                k++;
                a[k++] = strdup(cv->rundir);
                a[k++] = strdup(cv->image);
        }
        for (size_t i = 0; i < k; i++)
                if (!a[i]) {
                        for (size_t m = 0; m < k; m++)
                                free(a[m]);
                        free(a);
                        return -ENOMEM;
                }
        *ret = a;
        *ret_n = k;
        return 0;
}

/* ---- catalog ---- */

struct cowvol *cowvol_free(struct cowvol *cv)
{
        if (!cv)
                return NULL;
        free(cv->name);
        free(cv->image);
        free(cv->diff);
        free(cv->rundir);
        free(cv->loopdev);
        free(cv->mountpoint);
        free(cv->fs);
        wire_buf_done(&cv->ev_in);
        free(cv);
        return NULL;
}

int cowvol_put(struct vssd *v, const struct cowvol *cv)
{
        sqlite3_stmt *st = NULL;
        int r = -EIO;

        if (sqlite3_prepare_v2(v->db, "INSERT OR REPLACE INTO cow_volumes VALUES(?,?,?,?,?,?,?,?)", -1, &st, NULL) ==
            SQLITE_OK) {
                const char *f[] = { cv->name, cv->image, cv->diff, cv->rundir, cv->loopdev, cv->mountpoint, cv->fs };

                for (int i = 0; i < 7; i++)
                        sqlite3_bind_text(st, i + 1, f[i], -1, SQLITE_TRANSIENT);
                sqlite3_bind_int64(st, 8, (sqlite3_int64)cv->size_bytes);
                if (sqlite3_step(st) == SQLITE_DONE)
                        r = 0;
        }
        sqlite3_finalize(st);
        return r;
}

static void cowvol_del(struct vssd *v, const char *name)
{
        sqlite3_stmt *st = NULL;

        if (sqlite3_prepare_v2(v->db, "DELETE FROM cow_volumes WHERE name=?", -1, &st, NULL) == SQLITE_OK) {
                sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
                (void)sqlite3_step(st);
        }
        sqlite3_finalize(st);
}

int cowvols_load(struct vssd *v)
{
        sqlite3_stmt *st = NULL;
        int n = 0;

        if (sqlite3_exec(v->db,
                         "CREATE TABLE IF NOT EXISTS cow_volumes (name TEXT PRIMARY KEY, image TEXT NOT NULL,"
                         " diff TEXT NOT NULL, rundir TEXT NOT NULL, loopdev TEXT NOT NULL, mountpoint TEXT NOT NULL,"
                         " fs TEXT NOT NULL, size_bytes INTEGER NOT NULL);", NULL, NULL, NULL) != SQLITE_OK)
                return -EIO;
        if (sqlite3_prepare_v2(v->db, "SELECT * FROM cow_volumes ORDER BY name", -1, &st, NULL) != SQLITE_OK)
                return -EIO;
        while (sqlite3_step(st) == SQLITE_ROW) {
                struct cowvol *cv = calloc(1, sizeof(*cv));
                char *f[7] = {};

                if (!cv)
                        break;
                for (int i = 0; i < 7; i++)
                        f[i] = strdup((const char *)sqlite3_column_text(st, i) ?: "");
                cv->name = f[0], cv->image = f[1], cv->diff = f[2], cv->rundir = f[3];
                cv->loopdev = f[4], cv->mountpoint = f[5], cv->fs = f[6];
                cv->size_bytes = (uint64_t)sqlite3_column_int64(st, 7);
                cv->ev_fd = -1;
                if (!f[0] || !f[1] || !f[2] || !f[3] || !f[4] || !f[5] || !f[6]) {
                        cowvol_free(cv);
                        break;
                }
                cv->next = v->cowvols;
                v->cowvols = cv;
                n++;
        }
        sqlite3_finalize(st);
        /* Reconnect to each volume server, or start it again (never --format). */
        for (struct cowvol *cv = v->cowvols; cv; cv = cv->next) {
                cv->retry.cb = cowvol_retry_cb;
                cv->retry.userdata = cv;
                if (cowvol_ev_open(v, cv) >= 0) {
                        log_info("cow volume %s: reconnected to its volume server", cv->name);
                        /* A server restarted while vssd was down leaves a dead mount:
                         * check at once (cowvol_remount() leaves a live one alone). */
                        timer_arm(v, &cv->retry, clock_monotonic_us());
                } else
                        cowvol_retry_cb(v, &cv->retry);
        }
        return n;
}

void cowvols_done(struct vssd *v)
{
        while (v->cowvols) {
                struct cowvol *cv = v->cowvols;

                v->cowvols = cv->next;
                timer_cancel(v, &cv->retry);
                cowvol_ev_close(v, cv);
                cowvol_free(cv);
        }
}

/* ---- Volumes.Create / Volumes.Delete ---- */

static bool good_name(const char *s)
{
        size_t n = s ? strlen(s) : 0;

        if (n == 0 || n > 64 || s[0] == '.')
                return false;
        for (; *s; s++)
                if (!isalnum((unsigned char)*s) && !strchr("._-", *s))
                        return false;
        return true;
}

static struct cowvol *cowvol_find(struct vssd *v, const char *name)
{
        for (struct cowvol *cv = v->cowvols; cv; cv = cv->next)
                if (streq(cv->name, name))
                        return cv;
        return NULL;
}

/* Stops the volume server and waits (up to 10 s) for it to finish: its pid
 * file goes last, after the diff area is closed and FUSE unmounted, so a
 * successor started next finds neither the instance lock nor the mount. */
void cowvol_server_stop(struct cowvol *cv)
{
        char out[512], sock[VSS_PATH_MAX], pid[VSS_PATH_MAX];

        fmt_trunc(sock, sizeof(sock), "%s/control.sock", cv->rundir);
        fmt_trunc(pid, sizeof(pid), "%s/volsrv.pid", cv->rundir);
        (void)volsrv_call(cv->rundir, "Server.Stop", NULL, 5000, NULL, out, sizeof(out));
        for (int i = 0; i < 100 && (access(sock, F_OK) == 0 || access(pid, F_OK) == 0); i++)
                usleep(100000);
}

/* Removes a diff area file and, on an on-volume, the .openvss directories
 * it leaves empty (rmdir fails on a directory another volume still uses). */
void cowvol_diff_remove(const char *diff)
{
        char d[VSS_PATH_MAX], *p;
        size_t n, k = strlen(DIFF_SUBDIR);

        if (!diff || !diff[0])
                return;
        (void)unlink(diff);
        fmt_trunc(d, sizeof(d), "%s", diff);
        p = strrchr(d, '/');
        if (!p)
                return;
        *p = 0;
        n = strlen(d);
        if (n < k || !streq(d + n - k, DIFF_SUBDIR) || rmdir(d) < 0)
                return;
        d[n - strlen("/diff")] = 0;
        (void)rmdir(d);
}

/* Creates the empty diff area file of volume 'name' on on_vol, in root-only
 * directories.  O_EXCL: a file already there belongs to another volume of the
 * same name (another vssd) or is stale, and is never taken over silently. */
vss_hresult cowvol_diff_create_on(const char *on_vol, const char *name, char **ret_path, char *err, size_t errlen)
{
        const char *base = streq(on_vol, "/") ? "" : on_vol;
        char top[VSS_PATH_MAX], dir[VSS_PATH_MAX];
        _cleanup_free_ char *path = NULL;
        struct stat st;
        int fd, r;

        fmt_trunc(top, sizeof(top), "%s/.openvss", base);
        fmt_trunc(dir, sizeof(dir), "%s" DIFF_SUBDIR, base);
        r = mkdir_p(dir, 0700);
        if (r < 0) {
                fmt_trunc(err, errlen, "cannot create %s on the shadow copy storage volume: %s", dir, strerror(-r));
                return r == -ENOSPC || r == -EDQUOT ? VSS_E_INSUFFICIENT_STORAGE : VSS_E_UNEXPECTED;
        }
        /* Whatever umask or an earlier owner left, only root may look in. */
        for (int i = 0; i < 2; i++) {
                const char *d = i ? dir : top;

                if (lstat(d, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != 0 || chmod(d, 0700) < 0) {
                        fmt_trunc(err, errlen, "%s must be a directory owned by root (mode 0700) to hold diff areas", d);
                        return VSS_E_UNEXPECTED;
                }
        }
        if (asprintf(&path, "%s/%s.diff", dir, name) < 0) {
                path = NULL;
                fmt_trunc(err, errlen, "out of memory");
                return VSS_E_OUTOFMEMORY;
        }
        fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0) {
                if (errno == EEXIST) {
                        fmt_trunc(err, errlen, "the diff area file %s already exists: another cow volume named %s keeps its "
                            "diff area on this volume, or it is left over (remove it if no vss-volsrv has it open)",
                            path, name);
                        return VSS_E_OBJECT_ALREADY_EXISTS;
                }
                fmt_trunc(err, errlen, "cannot create the diff area file %s: %s", path, strerror(errno));
                return errno == ENOSPC || errno == EDQUOT ? VSS_E_INSUFFICIENT_STORAGE : VSS_E_UNEXPECTED;
        }
        close(fd);
        *ret_path = TAKE_PTR(path);
        return VSS_S_OK;
}

/* Puts the volume server's FUSE file on a loop device, formats it when asked
 * and mounts it on mnt (if any); cv->loopdev and cv->mountpoint follow. */
vss_hresult cowvol_attach(struct cowvol *cv, const char *mnt, bool mkfs, char *err, size_t errlen)
{
        char buf[VSS_PATH_MAX], out[1024];
        const char *fs = cv->fs;
        int r;

        fmt_trunc(buf, sizeof(buf), "%s/fuse/volume", cv->rundir);
        r = run_command((char *const[]){ "losetup", "-f", "--show", "--direct-io=on", buf, NULL }, LOSETUP_TIMEOUT_MS, out, sizeof(out));
        if (r != 0 || strncmp(out, "/dev/loop", 9) != 0) {
                fmt_trunc(err, errlen, "losetup of %s failed: %s", buf, out);
                return VSS_E_UNEXPECTED;
        }
        free(cv->loopdev);
        cv->loopdev = strdup(out);
        if (!cv->loopdev) {
                fmt_trunc(err, errlen, "out of memory");
                return VSS_E_OUTOFMEMORY;
        }
        if (mkfs && fs[0]) {
                /* No lazy init: ext4lazyinit would zero the inode tables in the background
                 * after the first shadows exist, and every chunk it touches would be copied
                 * into the diff area (enough to evict the shadows of a small one). */
                r = streq(fs, "ext4") ? run_command((char *const[]){ "mkfs.ext4", "-q", "-F", "-E",
                                                                 "lazy_itable_init=0,lazy_journal_init=0",
                                                                 cv->loopdev, NULL }, MKFS_TIMEOUT_MS, out, sizeof(out))
                                      : run_command((char *const[]){ "mkfs.xfs", "-q", "-f", cv->loopdev, NULL },
                                                    MKFS_TIMEOUT_MS, out, sizeof(out));
                if (r != 0) {
                        fmt_trunc(err, errlen, "mkfs.%s %s failed: %s", fs, cv->loopdev, out);
                        return VSS_E_UNEXPECTED;
                }
        }
        if (mnt) {
                (void)mkdir_p(mnt, 0755);
                r = run_command((char *const[]){ "mount", "-t", (char *)fs, cv->loopdev, (char *)mnt, NULL },
                                MOUNT_TIMEOUT_MS, out, sizeof(out));
                if (r != 0) {
                        fmt_trunc(err, errlen, "mount %s %s failed: %s", cv->loopdev, mnt, out);
                        return VSS_E_UNEXPECTED;
                }
                free(cv->mountpoint);
                /* The real path: associations and shadows name volumes so. */
                cv->mountpoint = realpath(mnt, NULL) ?: strdup(mnt);
                if (!cv->mountpoint) {
                        fmt_trunc(err, errlen, "out of memory");
                        return VSS_E_OUTOFMEMORY;
                }
        }
        return VSS_S_OK;
}

/* Undoes whatever of a volume exists: mount, loop, server, files we made. */
static void teardown(struct cowvol *cv, bool own_image)
{
        char out[512], src[VSS_PATH_MAX] = "";

        /* Only our own filesystem: never whatever an admin mounted over it since. */
        if (cv->mountpoint && cv->mountpoint[0] && cv->loopdev && cv->loopdev[0] &&
            mount_lookup(cv->mountpoint, NULL, src, sizeof(src), NULL, 0) >= 0 && streq(src, cv->loopdev))
                (void)run_command((char *const[]){ "umount", cv->mountpoint, NULL }, UMOUNT_SYNC_TIMEOUT_MS, out,
                                  sizeof(out));
        if (cv->loopdev && cv->loopdev[0])
                (void)run_command((char *const[]){ "losetup", "-d", cv->loopdev, NULL }, LOSETUP_TIMEOUT_MS, out,
                                  sizeof(out));
        cowvol_server_stop(cv);
        cowvol_diff_remove(cv->diff);
        if (own_image)
                (void)unlink(cv->image);
}

/* The filesystem type blkid finds on path ("" for none), or -errno. */
static int probe_fs(const char *path, char *type, size_t len)
{
        char out[256];
        int r;

        /* -p: the device itself, not blkid's cache (which may describe an older content). */
        r = run_command((char *const[]){ "blkid", "-p", "-o", "value", "-s", "TYPE", (char *)path, NULL }, 30000, out,
                        sizeof(out));
        if (r == 2) {           /* nothing found */
                type[0] = 0;
                return 0;
        }
        if (r != 0)
                return -EIO;
        out[strcspn(out, "\n")] = 0;
        fmt_trunc(type, len, "%s", out);
        return 0;
}

/* Is the block device 'dev' mounted?  Its (first) mount point in 'where'. */
static bool dev_mounted(dev_t dev, char *where, size_t len)
{
        FILE *f = fopen("/proc/self/mountinfo", "re");
        char line[4096];
        bool found = false;

        where[0] = 0;
        while (f && !found && fgets(line, sizeof(line), f)) {
                unsigned maj, min;
                char mp[2048];

                if (sscanf(line, "%*s %*s %u:%u %*s %2047s", &maj, &min, mp) == 3 && maj == major(dev) &&
                    min == minor(dev)) {
                        fmt_trunc(where, len, "%s", mp);
                        found = true;
                }
        }
        if (f)
                fclose(f);
        return found;
}

static bool devpath_mounted(const char *devpath, char *where, size_t len)
{
        struct stat st;

        where[0] = 0;
        return stat(devpath, &st) == 0 && S_ISBLK(st.st_mode) && dev_mounted(st.st_rdev, where, len);
}

/*
 * What Volumes.Create is given to serve: nothing (a new image in the state
 * directory), an image path that does not exist yet (created with the size), or
 * an existing image file or block device, which is adopted as it is when no fs
 * is given (its filesystem is kept: detected, never formatted).  Refuses a size
 * that does not match, something in use (mounted, on a loop device, opened
 * exclusively), something another cow volume serves, and an fs for something
 * that already holds a filesystem.  *ret_size is the volume's size, *ret_created
 * tells the caller it made the file (to remove on failure), ret_fs the filesystem
 * found on an existing one.
 */
static vss_hresult origin_check(char *const *served, size_t n_served, const char *path, bool is_device,
                                json_int_t size, const char *fs, json_int_t *ret_size, bool *ret_created, char *ret_fs,
                                size_t fslen, char *err, size_t errlen)
{
        char found[64] = "", where[2048] = "", out[1024];
        const char *what = is_device ? "device" : "image";
        struct stat st;
        int fd, r;

        *ret_created = false;
        ret_fs[0] = 0;
        if (stat(path, &st) < 0) {
                if (errno != ENOENT || is_device) {
                        fmt_trunc(err, errlen, "%s %s: %s", what, path, strerror(errno));
                        return errno == ENOENT ? VSS_E_OBJECT_NOT_FOUND : VSS_E_INVALIDARG;
                }
                if (size <= 0) {
                        fmt_trunc(err, errlen, "image %s does not exist: give /size to create it", path);
                        return VSS_E_INVALIDARG;
                }
                fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
                if (fd < 0 || ftruncate(fd, size) < 0) {
                        int e = errno;

                        fmt_trunc(err, errlen, "cannot create image %s: %s", path, strerror(e));
                        if (fd >= 0) {
                                close(fd);
                                (void)unlink(path);
                        }
                        return e == ENOSPC || e == EDQUOT ? VSS_E_INSUFFICIENT_STORAGE : VSS_E_INVALIDARG;
                }
                close(fd);
                *ret_created = true;
                *ret_size = size;
                return VSS_S_OK;
        }
        if (is_device ? !S_ISBLK(st.st_mode) : !S_ISREG(st.st_mode)) {
                fmt_trunc(err, errlen, "%s is not a %s", path,
                    is_device ? "block device (give an image file with /image=)"
                              : "regular file (give a block device with /device=)");
                return VSS_E_INVALIDARG;
        }
        for (size_t i = 0; i + 1 < n_served; i += 2) {
                struct stat ost;

                if (served[i + 1][0] && stat(served[i + 1], &ost) == 0 &&
                    (is_device ? S_ISBLK(ost.st_mode) && ost.st_rdev == st.st_rdev
                               : ost.st_dev == st.st_dev && ost.st_ino == st.st_ino)) {
                        fmt_trunc(err, errlen, "%s %s is already served by openvss as cow volume %s", what, path,
                                  served[i]);
                        return VSS_E_OBJECT_ALREADY_EXISTS;
                }
        }
        if (is_device) {
                uint64_t bytes = 0;

                if (dev_mounted(st.st_rdev, where, sizeof(where))) {
                        fmt_trunc(err, errlen, "device %s is mounted on %s: unmount it first (openvss mounts it again "
                            "with /mount=)", path, where);
                        return VSS_E_VOLUME_IN_USE;
                }
                /* O_EXCL on a block device: EBUSY while mounted (also a partition of it), part of
                 * a RAID or device-mapper table, or claimed by any other exclusive user. */
                fd = open(path, O_RDONLY | O_EXCL | O_CLOEXEC);
                if (fd < 0) {
                        int e = errno;

                        fmt_trunc(err, errlen, "device %s is in use (%s): a mounted filesystem on it or on one of its "
                            "partitions, a device-mapper or RAID member, or another program has it open exclusively",
                            path, strerror(e));
                        return e == EBUSY ? VSS_E_VOLUME_IN_USE : VSS_E_INVALIDARG;
                }
                r = ioctl(fd, BLKGETSIZE64, &bytes);
                close(fd);
                if (r < 0) {
                        fmt_trunc(err, errlen, "cannot read the size of device %s: %s", path, strerror(errno));
                        return VSS_E_INVALIDARG;
                }
                st.st_size = (off_t)bytes;
        } else {
                /* An image on a loop device is someone's volume already (maybe mounted). */
                r = run_command((char *const[]){ "losetup", "-n", "-O", "NAME", "-j", (char *)path, NULL }, 10000, out,
                                sizeof(out));
                if (r == 0 && out[0]) {
                        out[strcspn(out, "\n")] = 0;
                        fmt_trunc(err, errlen, "image %s is attached to %s%s%s: unmount and detach it first (losetup -d)",
                            path, out, devpath_mounted(out, where, sizeof(where)) ? ", mounted on " : "", where);
                        return VSS_E_VOLUME_IN_USE;
                }
        }
        if (st.st_size == 0 && !is_device) {
                /* An empty file (touch, or an earlier failed attempt): a new image. */
                if (size <= 0) {
                        fmt_trunc(err, errlen, "image %s is empty (0 bytes): give /size to make it a volume", path);
                        return VSS_E_INVALIDARG;
                }
                if (truncate(path, size) < 0) {
                        fmt_trunc(err, errlen, "cannot extend image %s to %lld bytes: %s", path, (long long)size,
                            strerror(errno));
                        return VSS_E_INVALIDARG;
                }
                *ret_size = size;
                return VSS_S_OK;
        }
        if (size > 0 && (uint64_t)size != (uint64_t)st.st_size) {
                fmt_trunc(err, errlen, "size mismatch: /size is %lld bytes but %s %s holds %lld bytes (leave /size out "
                    "to take it as it is)", (long long)size, what, path, (long long)st.st_size);
                return VSS_E_INVALIDARG;
        }
        if (st.st_size < (1 << 20) || st.st_size % 4096) {
                fmt_trunc(err, errlen, "%s %s holds %lld bytes: a cow volume is a multiple of 4096 bytes, at least 1 MiB",
                    what, path, (long long)st.st_size);
                return VSS_E_INVALIDARG;
        }
        if (probe_fs(path, found, sizeof(found)) < 0) {
                fmt_trunc(err, errlen, "blkid cannot probe %s %s", what, path);
                return VSS_E_UNEXPECTED;
        }
        if (fs && found[0]) {
                fmt_trunc(err, errlen, "%s %s already holds a filesystem (%s): leave /fs out to adopt it with its data, "
                    "or erase it first (wipefs -a %s) to format it", what, path, found, path);
                return VSS_E_OBJECT_ALREADY_EXISTS;
        }
        if (!fs && found[0] && !streq(found, "ext4") && !streq(found, "xfs")) {
                fmt_trunc(err, errlen, "%s %s holds a %s filesystem: cow volumes hold ext4 or XFS", what, path, found);
                return VSS_E_VOLUME_NOT_SUPPORTED;
        }
        fmt_trunc(ret_fs, fslen, "%s", found);
        *ret_size = (json_int_t)st.st_size;
        return VSS_S_OK;
}


/* The files of volumes being created, deleted or moved on the worker: a commit queued behind
 * that job must not freeze them either. */
static void protect_ops(struct vssd *v, char **a, size_t *k)
{
        for (struct cowvol_op *op = v->cowvol_ops; op; op = op->next)
                for (size_t i = 0; i < ARRAY_SIZE(op->keep) && op->keep[i]; i++)
                        a[(*k)++] = strdup(op->keep[i]);
}

char *cowvol_diff_dir(const char *on_vol)
{
        char *d;

        return asprintf(&d, "%s" DIFF_SUBDIR, streq(on_vol, "/") ? "" : on_vol) < 0 ? NULL : d;
}

struct cowvol_op *cowvol_op_free(struct cowvol_op *op)
{
        if (!op)
                return NULL;
        for (size_t i = 0; i < op->n_served; i++)
                free(op->served[i]);
        free(op->served);
        free(op->name);
        free(op->origin);
        free(op->fs);
        free(op->mnt);
        free(op->a_on);
        free(op->a_for);
        for (size_t i = 0; i < ARRAY_SIZE(op->keep); i++)
                free(op->keep[i]);
        free(op->olddiff);
        cowvol_free(op->cv);
        free(op);
        return NULL;
}

void cowvol_hand_over(struct vssd *v, struct cowvol *cv)
{
        timer_cancel(v, &cv->retry);
        cowvol_ev_close(v, cv);
        for (struct cowvol **pp = &v->cowvols; *pp; pp = &(*pp)->next)
                if (*pp == cv) {
                        *pp = cv->next;
                        break;
                }
        cv->next = NULL;
}

void cowvol_op_unlink(struct vssd *v, struct cowvol_op *op)
{
        for (struct cowvol_op **pp = &v->cowvol_ops; *pp; pp = &(*pp)->next)
                if (*pp == op) {
                        *pp = op->next;
                        return;
                }
}

static bool name_taken(struct vssd *v, const char *name)
{
        if (cowvol_find(v, name))
                return true;
        for (struct cowvol_op *op = v->cowvol_ops; op; op = op->next)
                if (streq(op->name, name))
                        return true;
        return false;
}

char *cowvol_strdup(const char *s, bool *oom)
{
        char *d = s ? strdup(s) : NULL;

        if (s && !d)
                *oom = true;
        return d;
}

/* The origins served, or being set up, now: an origin is served by one volume only. */
static int served_list(struct vssd *v, struct cowvol_op *op)
{
        size_t n = 0, k = 0;

        for (struct cowvol *o = v->cowvols; o; o = o->next)
                n += 2;
        for (struct cowvol_op *o = v->cowvol_ops; o; o = o->next)
                n += 2;
        op->served = calloc(n ?: 1, sizeof(char *));
        if (!op->served)
                return -ENOMEM;
        for (struct cowvol *o = v->cowvols; o; o = o->next) {
                op->served[k++] = strdup(o->name);
                op->served[k++] = strdup(o->image);
        }
        for (struct cowvol_op *o = v->cowvol_ops; o; o = o->next) {
                op->served[k++] = strdup(o->name);
                op->served[k++] = strdup(o->kind == COWVOL_CREATE ? o->origin ?: "" : o->cv->image);
        }
        op->n_served = k;
        for (size_t i = 0; i < k; i++)
                if (!op->served[i])
                        return -ENOMEM;
        return 0;
}

/* On the provider worker: everything of Volumes.Create that waits (blkid, the server's start,
 * losetup, mkfs, mount), each with its deadline. */
static vss_hresult create_work(struct prov_job *j)
{
        struct cowvol_op *op = j->userdata;
        const char *name = op->name, *image = op->origin, *fs = op->fs;
        char buf[VSS_PATH_MAX], err[1024] = "";
        struct cowvol *cv = NULL;
        json_int_t size = op->size;
        vss_hresult hr;
        int r;

        if (image) {
                hr = origin_check(op->served, op->n_served, image, op->is_device, size, fs, &size, &op->created,
                                  op->fs_found, sizeof(op->fs_found), err, sizeof(err));
                if (VSS_FAILED(hr)) {
                        fmt_trunc(op->msg, sizeof(op->msg), "cannot create cow volume %s: %s", name, err);
                        return hr;
                }
                /* Existing content without /fs: adopted as it is, whatever filesystem it holds kept. */
                op->adopted = !op->created && !fs && op->fs_found[0];
                if (op->adopted)
                        fs = op->fs_found;
        }
        if (op->mnt && !fs) {
                if (op->created)
                        (void)unlink(image);
                fmt_trunc(op->msg, sizeof(op->msg), "cannot create cow volume %s: 'mount' needs a filesystem: give /fs "
                          "to format the volume (%s holds none), or leave /mount out", name, image ?: "a new image");
                return VSS_E_INVALIDARG;
        }
        r = mkdir_p(op->dir, 0700);
        if (r < 0) {
                if (op->created)
                        (void)unlink(image);
                fmt_trunc(op->msg, sizeof(op->msg), "cannot create %s: %s", op->dir, strerror(-r));
                return VSS_E_UNEXPECTED;
        }
        op->event = true;
        cv = calloc(1, sizeof(*cv));
        if (!cv)
                goto oom;
        cv->ev_fd = -1;
        cv->size_bytes = (uint64_t)size;
        cv->name = strdup(name);
        if (!image) {
                fmt_trunc(buf, sizeof(buf), "%s/volume.img", op->dir);
                image = buf;
                op->own_image = true;
        }
        cv->image = strdup(image);
        if (asprintf(&cv->rundir, "%s/run", op->dir) < 0)
                cv->rundir = NULL;
        if (!op->a_on && asprintf(&cv->diff, "%s/diff.area", op->dir) < 0)
                cv->diff = NULL;
        cv->loopdev = strdup("");
        cv->mountpoint = strdup("");
        cv->fs = strdup(fs ?: "");
        if (!cv->name || !cv->image || !cv->rundir || (!op->a_on && !cv->diff) || !cv->loopdev || !cv->mountpoint ||
            !cv->fs)
                goto oom;
        if (op->a_on) {
                struct volume_info oi;
                size_t n = strlen(op->a_for);
                char why[512] = "";

                hr = volume_exact(op->a_on, &oi, why, sizeof(why));
                if (VSS_FAILED(hr)) {
                        fmt_trunc(err, sizeof(err), "the shadow copy storage volume %s of %s is not available: %s",
                            op->a_on, op->a_for, why);
                        goto fail;
                }
                if (strncmp(oi.path, op->a_for, n) == 0 && (oi.path[n] == 0 || oi.path[n] == '/')) {
                        fmt_trunc(err, sizeof(err), "the shadow copy storage volume %s lies under the mount point %s of the "
                            "volume itself: a diff area must be on another filesystem", op->a_on, op->a_for);
                        hr = VSS_E_VOLUME_NOT_SUPPORTED;
                        goto fail;
                }
                hr = storage_check_on(op->min_diff_area_mb, op->a_on, err, sizeof(err));
                if (VSS_FAILED(hr))
                        goto fail;
                hr = cowvol_diff_create_on(op->a_on, name, &cv->diff, err, sizeof(err));
                if (VSS_FAILED(hr))
                        goto fail;
        }
        (void)mkdir(cv->rundir, 0700);
        if (op->own_image) {
                int fd = open(cv->image, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

                if (fd < 0 || ftruncate(fd, size) < 0) {
                        fmt_trunc(err, sizeof(err), "cannot create image %s: %s", cv->image, strerror(errno));
                        if (fd >= 0)
                                close(fd);
                        hr = VSS_E_INVALIDARG;
                        goto fail;
                }
                close(fd);
        }
        hr = cowvol_server_start(op->bin, cv, true, op->a_on ? op->a_max : -1, err, sizeof(err));
        if (VSS_FAILED(hr))
                goto fail;
        /* An adopted image or device keeps its filesystem: never mkfs. */
        hr = cowvol_attach(cv, op->mnt, fs != NULL && !op->adopted, err, sizeof(err));
        if (VSS_FAILED(hr))
                goto fail;
        op->cv = cv;
        return VSS_S_OK;
oom:
        hr = VSS_E_OUTOFMEMORY;
        fmt_trunc(err, sizeof(err), "out of memory");
fail:
        if (cv && cv->rundir)
                teardown(cv, op->own_image);
        /* An image we made at the caller's path goes too; an existing one is left as it was. */
        if (op->created)
                (void)unlink(image);
        cowvol_free(cv);
        fmt_trunc(op->msg, sizeof(op->msg), "cannot create cow volume %s: %s", name, err);
        return hr;
}

static void create_done(struct vssd *v, struct prov_job *j)
{
        struct cowvol_op *op = j->userdata;
        struct cowvol *cv = TAKE_PTR(op->cv);
        const char *fs = op->adopted ? op->fs_found : op->fs;
        vss_hresult hr = j->hr;

        cowvol_op_unlink(v, op);
        if (VSS_SUCCEEDED(hr) && cowvol_put(v, cv) < 0) {
                fmt_trunc(op->msg, sizeof(op->msg), "cannot create cow volume %s: cannot record the volume in the "
                          "catalog: %s", op->name, sqlite3_errmsg(v->db));
                hr = VSS_E_UNEXPECTED;
                /* Rare enough to be undone here, with the commands' deadlines. */
                teardown(cv, op->own_image);
                if (op->created)
                        (void)unlink(cv->image);
                cv = cowvol_free(cv);
        }
        if (VSS_FAILED(hr)) {
                if (op->event)
                        catalog_event(v, "error", "cow", hr, "%s", op->msg);
                reply_err(v, op->serial, op->id, hr, "%s", op->msg);
                cowvol_op_free(op);
                return;
        }
        cv->retry.cb = cowvol_retry_cb;
        cv->retry.userdata = cv;
        if (cowvol_ev_open(v, cv) < 0)
                log_warn("cow volume %s: no event connection to its volume server", op->name);
        cv->next = v->cowvols;
        v->cowvols = cv;
        catalog_event(v, "info", "cow", VSS_S_OK, "cow volume %s %s: %s on %s, diff area %s%s%s", op->name,
                      op->adopted ? "adopted with its filesystem" : "created", cv->image, cv->loopdev, cv->diff,
                      op->mnt ? ", mounted on " : "", op->mnt ? cv->mountpoint : "");
        reply_ok(v, op->serial, op->id, json_pack("{s:o, s:s, s:b, s:o, s:I}", "path",
                                                  json_str_or_null(op->mnt ? cv->mountpoint : NULL), "device",
                                                  cv->loopdev, "adopted", op->adopted, "fs", json_str_or_null(fs),
                                                  "size_bytes", (json_int_t)cv->size_bytes));
        cowvol_op_free(op);
}

static void volumes_create(struct vssd *v, struct conn *c, json_int_t id, json_t *params)
{
        const char *name = json_get_str(params, "name"), *image = json_get_str(params, "image"),
                   *device = json_get_str(params, "device"), *fs = json_get_str(params, "fs"),
                   *mnt = json_get_str(params, "mount");
        struct storage_assoc *a = NULL;
        struct cowvol_op *op;
        json_int_t size = 0;
        bool oom = false;
        size_t k;

        if (!good_name(name)) {
                reply_err(v, c->serial, id, VSS_E_INVALIDARG, "field 'name' must be 1..64 characters of [A-Za-z0-9._-]");
                return;
        }
        if (json_object_get(params, "size_bytes") &&
            (!json_get_int(params, "size_bytes", &size) || size < (1 << 20) || size % 4096)) {
                reply_err(v, c->serial, id, VSS_E_INVALIDARG,
                          "field 'size_bytes' must be a multiple of 4096 bytes, at least 1 MiB");
                return;
        }
        if (!image && !device && size == 0) {
                reply_err(v, c->serial, id, VSS_E_INVALIDARG,
                          "field 'size_bytes' is needed for a new volume (only an existing image or device may omit it)");
                return;
        }
        if (image && device) {
                reply_err(v, c->serial, id, VSS_E_INVALIDARG, "give 'image' or 'device', not both");
                return;
        }
        if (fs && !streq(fs, "ext4") && !streq(fs, "xfs")) {
                reply_err(v, c->serial, id, VSS_E_INVALIDARG, "field 'fs' must be \"ext4\" or \"xfs\"");
                return;
        }
        if ((image && image[0] != '/') || (device && strncmp(device, "/dev/", 5) != 0) || (mnt && mnt[0] != '/')) {
                reply_err(v, c->serial, id, VSS_E_INVALIDARG,
                          "fields 'image' and 'mount' must be absolute paths, 'device' a path under /dev");
                return;
        }
        if (name_taken(v, name)) {
                reply_err(v, c->serial, id, VSS_E_OBJECT_ALREADY_EXISTS, "a cow volume named '%s' already exists", name);
                return;
        }
        op = calloc(1, sizeof(*op));
        if (!op) {
                reply_err(v, c->serial, id, VSS_E_OUTOFMEMORY, "out of memory");
                return;
        }
        op->kind = COWVOL_CREATE;
        op->serial = c->serial;
        op->id = id;
        op->size = size;
        op->is_device = device != NULL;
        op->name = cowvol_strdup(name, &oom);
        op->origin = cowvol_strdup(image ?: device, &oom);
        op->fs = cowvol_strdup(fs, &oom);
        op->mnt = cowvol_strdup(mnt, &oom);
        if (mnt)
                a = storage_find(v, mnt);
        if (a) {
                op->a_on = cowvol_strdup(a->on_vol, &oom);
                op->a_for = cowvol_strdup(a->for_vol, &oom);
                op->a_max = a->max_bytes;
        }
        op->min_diff_area_mb = v->cfg.min_diff_area_mb;
        fmt_trunc(op->dir, sizeof(op->dir), "%s/volumes/%s", v->state_dir, name);
        /* What the new volume will use, packed from keep[0] (the list ends at the first NULL). */
        k = 0;
        op->keep[k++] = cowvol_strdup(op->dir, &oom);
        if (op->origin)
                op->keep[k++] = cowvol_strdup(op->origin, &oom);
        if (op->a_on && !(op->keep[k++] = cowvol_diff_dir(op->a_on)))
                oom = true;
        cowvol_volsrv_binary(v, op->bin, sizeof(op->bin));
        if (oom || served_list(v, op) < 0 || prov_submit_work(v, create_work, create_done, op) < 0) {
                cowvol_op_free(op);
                reply_err(v, c->serial, id, VSS_E_OUTOFMEMORY, "out of memory");
                return;
        }
        op->next = v->cowvol_ops;
        v->cowvol_ops = op;
}

/* On the provider worker: unmount, detach, stop the server, remove the files. */
static vss_hresult delete_work(struct prov_job *j)
{
        struct cowvol_op *op = j->userdata;

        teardown(op->cv, op->own_image);
        return VSS_S_OK;
}

static void delete_done(struct vssd *v, struct prov_job *j)
{
        struct cowvol_op *op = j->userdata;

        cowvol_op_unlink(v, op);
        cowvol_del(v, op->name);
        catalog_event(v, "info", "cow", VSS_S_OK, "cow volume %s deleted", op->name);
        reply_ok(v, op->serial, op->id, json_object());
        cowvol_op_free(op);
}

static void volumes_delete(struct vssd *v, struct conn *c, json_int_t id, json_t *params)
{
        const char *name = json_get_str(params, "name");
        struct cowvol *cv = name ? cowvol_find(v, name) : NULL;
        struct cowvol_op *op;
        char own[VSS_PATH_MAX];
        size_t n;

        if (!name) {
                reply_err(v, c->serial, id, VSS_E_INVALIDARG, "field 'name' is missing");
                return;
        }
        if (!cv) {
                reply_err(v, c->serial, id, VSS_E_OBJECT_NOT_FOUND, "no cow volume named '%s'", name);
                return;
        }
        n = cv->mountpoint[0] ? shadows_on_volume(v, cv->mountpoint) : 0;
        if (n > 0) {
                reply_err(v, c->serial, id, VSS_E_VOLUME_IN_USE, "cow volume %s (%s) has %zu shadow copies: delete them first",
                          name, cv->mountpoint, n);
                return;
        }
        op = calloc(1, sizeof(*op));
        if (!op || !(op->name = strdup(name))) {
                free(op);
                reply_err(v, c->serial, id, VSS_E_OUTOFMEMORY, "out of memory");
                return;
        }
        op->kind = COWVOL_DELETE;
        op->serial = c->serial;
        op->id = id;
        if (!(op->keep[0] = strdup(cv->diff)) || !(op->keep[1] = strdup(cv->rundir)) ||
            !(op->keep[2] = strdup(cv->image))) {
                cowvol_op_free(op);
                reply_err(v, c->serial, id, VSS_E_OUTOFMEMORY, "out of memory");
                return;
        }
        fmt_trunc(own, sizeof(own), "%s/volumes/%s/volume.img", v->state_dir, name);
        op->own_image = streq(own, cv->image);
        /* Its publication (with no shadow copies, nothing is mounted there) goes before the filesystem. */
        if (cv->mountpoint[0])
                pubver_volume_gone(v, cv->mountpoint);
        cowvol_hand_over(v, cv);
        op->cv = cv;
        if (prov_submit_work(v, delete_work, delete_done, op) < 0) {
                /* No memory for the job: torn down here, as the worker would. */
                teardown(cv, op->own_image);
                cowvol_del(v, name);
                catalog_event(v, "info", "cow", VSS_S_OK, "cow volume %s deleted", name);
                cowvol_op_free(op);
                reply_ok(v, c->serial, id, json_object());
                return;
        }
        op->next = v->cowvol_ops;
        v->cowvol_ops = op;
}

void cowvol_reverted(struct vssd *v, const char *rundir, const char *loopdev)
{
        struct cowvol *cv;
        char *dup;

        for (cv = v->cowvols; cv && !streq(cv->rundir, rundir); cv = cv->next)
                ;
        if (!cv || streq(cv->loopdev, loopdev))
                return;
        dup = strdup(loopdev);
        if (!dup)
                return;
        free(cv->loopdev);
        cv->loopdev = dup;
        if (cowvol_put(v, cv) < 0)
                log_warn("cow volume %s: cannot record its loop device %s: %s", cv->name, loopdev, sqlite3_errmsg(v->db));
        /* Left detached by a failed revert: the remount machinery brings it back (and says why not). */
        if (!loopdev[0] && cv->mountpoint[0]) {
                cv->retry.cb = cowvol_retry_cb;
                cv->retry.userdata = cv;
                timer_arm(v, &cv->retry, clock_monotonic_us() + 1000000);
        }
}

void method_cowvol(struct vssd *v, struct conn *c, json_int_t id, json_t *params, const char *method)
{
        if (streq(method, "Volumes.Create"))
                volumes_create(v, c, id, params);
        else
                volumes_delete(v, c, id, params);
}
