/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Bringing a cow volume back after its volume server died, when the FUSE
 * connection died with it.  Normally it does not: the replacement takes the
 * connection over from the FUSE holder (src/volsrv/fuse.c), the loop devices
 * stay live and nothing here has anything to do.  When the holder is gone too
 * (killed, or the connection aborted), the restarted
 * server serves a new FUSE file; the old loop device (and the filesystem
 * mounted from it, and every exposed shadow's loop device) still refer to the
 * dead one, so every read and write there fails.  Here the dead filesystem is
 * lazily unmounted, its loop device detached (autoclear when still busy), a
 * new loop device attached to the live file and the filesystem mounted again
 * where it was (ext4 journal recovery / XFS log replay happen in that mount).
 * Exposed and published shadows of the volume are mounted again the same way, or dropped.
 *
 * Whether something needs doing is decided from the kernel, not from memory:
 * a loop device is live when LOOP_GET_STATUS64 names the inode of the file the
 * server serves now.  A live loop device with nothing mounted where the volume
 * belongs (vssd died in a revert, between the unmount and the copy) is mounted
 * again.  A mount point is only touched while /proc/self/mountinfo
 * shows our loop device on top of it: something mounted over it since is the
 * admin's, and is left alone.
 *
 * This runs on vssd's event loop, so every mount, umount and losetup runs in
 * a child with a deadline (a dead FUSE connection fails fast, but a hung one
 * must not hang vssd), and nothing runs while a shadow copy set is being
 * created or a provider call is in flight (the freeze and the commit run on the
 * provider thread): the caller retries a moment later.
 */

#include <fcntl.h>
#include <linux/loop.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "basic/exec-util.h"
#include "basic/fs-util.h"
#include "basic/string-util.h"
#include "vssd/cowvol-server.h"
#include "vssd/vssd.h"

#define STAT_TIMEOUT_MS 2000

/* stat() of a file the volume server serves, in a child with a deadline: the
 * server answered a moment ago, but one stopped since would leave a stat() here
 * waiting for it, and with it vssd's event loop (the supervision kills such a
 * server; this gives up and the caller retries).  Fills st_dev and st_ino. */
static int stat_served(const char *path, struct stat *ret)
{
        char out[128], *sp;
        uint64_t dev, ino;
        int r;

        r = run_command((char *const[]){ "stat", "-L", "-c", "%d %i", (char *)path, NULL }, STAT_TIMEOUT_MS, out,
                        sizeof(out));
        if (r == -ETIMEDOUT)
                return -ETIMEDOUT;
        if (r != 0)
                return -ENOENT;         /* not asked again: an access() would wait the same way */
        sp = strchr(out, ' ');
        if (!sp)
                return -EIO;
        *sp++ = 0;
        if (parse_u64(out, &dev) < 0 || parse_u64(sp, &ino) < 0)
                return -EIO;
        *ret = (struct stat){ .st_dev = (dev_t)dev, .st_ino = (ino_t)ino };
        return 0;
}

/* What loop device 'dev' is to us: "ours" when it was attached with file 'path' (by
 * the name the kernel keeps, truncated to LO_NAME_SIZE), "live" when on the very
 * inode the server serves now.  Tells "ours, dead" from "ours, live" from "someone
 * else's or none". */
enum loop_state {
        LOOP_NONE,              /* no such device, not attached, or someone else's */
        LOOP_OURS_DEAD,         /* attached to our path, but not to the live file */
        LOOP_OURS_LIVE,
};

/* LOOP_GET_STATUS64 stats the backing file, which fails (ENOTCONN) once its FUSE server
 * is dead: then only sysfs names it, and after the volume server lazily unmounted the
 * dead FUSE mount, by its path inside that mount ("/volume", "/shadows/GUID"). */
static enum loop_state dead_loop_state(const char *dev, const char *path)
{
        const char *inside = strstr(path, "/fuse/");
        char back[VSS_PATH_MAX];

        if (loop_backing_file(dev, back, sizeof(back)) < 0)
                return LOOP_NONE;
        /* d_path() appends " (deleted)" once the dead connection's dentry was dropped
         * ("/volume (deleted)"), which happens in about half the kills. */
        {
                static const char deleted[] = " (deleted)";
                size_t n = strlen(back), k = sizeof(deleted) - 1;

                if (n > k && streq(back + n - k, deleted))
                        back[n - k] = 0;
        }
        if (streq(back, path))
                return LOOP_OURS_DEAD;
        /* The last "/fuse/" of the path is RUNDIR's. */
        for (const char *p = inside; p; p = strstr(p + 1, "/fuse/"))
                inside = p;
        return inside && streq(back, inside + 5) ? LOOP_OURS_DEAD : LOOP_NONE;
}

static enum loop_state loop_state(const char *dev, const char *path, const struct stat *live)
{
        struct loop_info64 li = {};
        int fd, r;

        if (!dev[0] || strncmp(dev, "/dev/loop", 9) != 0)
                return LOOP_NONE;
        fd = open(dev, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0)
                return LOOP_NONE;
        r = ioctl(fd, LOOP_GET_STATUS64, &li) < 0 ? -errno : 0;
        close(fd);
        if (r == -ENXIO)
                return LOOP_NONE;       /* not attached */
        if (r < 0)
                return dead_loop_state(dev, path);
        if (strncmp((const char *)li.lo_file_name, path, LO_NAME_SIZE - 1) != 0)
                return LOOP_NONE;
        if (li.lo_inode == (uint64_t)live->st_ino && li.lo_device == (uint64_t)live->st_dev)
                return LOOP_OURS_LIVE;
        return LOOP_OURS_DEAD;
}

/* Lazily unmounts 'path' if the mount on top of it is from 'dev' (NULL: no device of
 * ours is left, so whatever is mounted there is someone else's).  Returns 0, -ENOENT
 * when nothing is mounted there, -EEXIST when something else is (left alone), or
 * another -errno with the reason in err. */
static int drop_dead_mount(const char *path, const char *dev, char *err, size_t errlen)
{
        char src[VSS_PATH_MAX] = "", out[512];
        int r;

        r = mount_lookup(path, NULL, src, sizeof(src), NULL, 0);
        if (r == -ENOENT)
                return r;
        if (r < 0) {
                fmt_trunc(err, errlen, "cannot read /proc/self/mountinfo: %s", strerror(-r));
                return r;
        }
        if (!dev || !streq(src, dev)) {
                fmt_trunc(err, errlen, "%s is now mounted from %s, not from the volume's loop device %s", path, src,
                    dev ?: "(detached)");
                return -EEXIST;
        }
        r = run_command((char *const[]){ "umount", "-l", (char *)path, NULL }, UMOUNT_TIMEOUT_MS, out, sizeof(out));
        if (r != 0) {
                fmt_trunc(err, errlen, "umount -l %s: %s", path, out[0] ? out : "failed");
                return r < 0 ? r : -EIO;
        }
        return 0;
}

/* Detaches a loop device of ours; a busy one (open files on a lazily unmounted
 * filesystem still pin it) only gets autoclear, and goes when they are closed. */
static void detach_loop(const char *dev)
{
        char out[512];

        if (run_command((char *const[]){ "losetup", "-d", (char *)dev, NULL }, LOSETUP_TIMEOUT_MS, out, sizeof(out)) != 0)
                log_warn("losetup -d %s: %s", dev, out);
}

static int attach_loop(const char *file, bool ro, char *ret_dev, size_t devlen, char *err, size_t errlen)
{
        char out[512];
        int r;

        if (ro)
                r = run_command((char *const[]){ "losetup", "-r", "-f", "--show", (char *)file, NULL }, LOSETUP_TIMEOUT_MS,
                                out, sizeof(out));
        else
                r = run_command((char *const[]){ "losetup", "-f", "--show", "--direct-io=on", (char *)file, NULL },
                                LOSETUP_TIMEOUT_MS, out, sizeof(out));
        if (r != 0 || strncmp(out, "/dev/loop", 9) != 0 || strchr(out, '\n')) {
                fmt_trunc(err, errlen, "losetup of %s failed: %s", file, out);
                return r < 0 ? r : -EIO;
        }
        fmt_trunc(ret_dev, devlen, "%s", out);
        return 0;
}

static int mount_fs(const char *fs, const char *opts, const char *dev, const char *path, char *err, size_t errlen)
{
        char out[1024];
        int r;

        if (opts)
                r = run_command((char *const[]){ "mount", "-t", (char *)fs, "-o", (char *)opts, (char *)dev, (char *)path,
                                                 NULL }, MOUNT_TIMEOUT_MS, out, sizeof(out));
        else
                r = run_command((char *const[]){ "mount", "-t", (char *)fs, (char *)dev, (char *)path, NULL },
                                MOUNT_TIMEOUT_MS, out, sizeof(out));
        if (r != 0) {
                fmt_trunc(err, errlen, "mount -t %s%s%s %s %s failed: %s", fs, opts ? " -o " : "", opts ?: "", dev, path,
                         out);
                return r < 0 ? r : -EIO;
        }
        return 0;
}

static int catalog_set_loopdev(struct vssd *v, const char *name, const char *dev)
{
        sqlite3_stmt *st = NULL;
        int r = -EIO;

        if (sqlite3_prepare_v2(v->db, "UPDATE cow_volumes SET loopdev=? WHERE name=?", -1, &st, NULL) == SQLITE_OK) {
                sqlite3_bind_text(st, 1, dev, -1, SQLITE_TRANSIENT);
                sqlite3_bind_text(st, 2, name, -1, SQLITE_TRANSIENT);
                if (sqlite3_step(st) == SQLITE_DONE)
                        r = 0;
        }
        sqlite3_finalize(st);
        return r;
}

static void drop_exposure(struct vssd *v, struct shadow *sh, const char *idbuf, const char *why)
{
        catalog_event(v, "warning", "cow", VSS_E_PROVIDER_VETO,
                      "shadow copy %s is no longer exposed at %s (its volume server was restarted): %s", idbuf,
                      sh->exposed_path, why);
        free(sh->exposed_path);
        sh->exposed_path = NULL;
        (void)catalog_shadow_put(v, sh);
}

/* Mounts the shadow again at 'path' (its exposure or its previous version) on the live FUSE
 * file, as the cow provider's expose does; 'what' ("exposed", "published") names it in the event.  false,
 * with the reason in err, when it cannot be. */
static bool remount_shadow_at(struct vssd *v, struct shadow *sh, const char *path, const char *what, char *err,
                              size_t errlen)
{
        const char *opts = streq(sh->snap.fstype, "xfs") ? "ro,norecovery,nouuid" : "ro,noload";
        char idbuf[VSS_ID_STRING_MAX], src[VSS_PATH_MAX] = "", loop[256];
        struct stat live;
        enum loop_state ls;
        int r;

        vss_id_format(&sh->snap.snapshot_id, idbuf);
        r = stat_served(sh->snap.device, &live);
        if (r == -ETIMEDOUT) {
                /* Its server stopped answering: supervision replaces it, and the next
                 * remount pass (after the takeover or the remount) looks again. */
                log_warn("shadow copy %s at %s: its volume server did not answer within %d ms; not checked", idbuf,
                         path, STAT_TIMEOUT_MS);
                return true;
        }
        if (r < 0) {
                fmt_trunc(err, errlen, "the volume server no longer serves %s: %s", sh->snap.device, strerror(-r));
                return false;
        }
        r = mount_lookup(path, NULL, src, sizeof(src), NULL, 0);
        ls = r >= 0 ? loop_state(src, sh->snap.device, &live) : LOOP_NONE;
        if (ls == LOOP_OURS_LIVE)
                return true;
        if (r >= 0 && ls == LOOP_NONE) {
                fmt_trunc(err, errlen, "%s is now mounted from %s: left alone", path, src);
                return false;
        }
        if (r >= 0) {
                r = drop_dead_mount(path, src, err, errlen);
                if (r < 0 && r != -ENOENT)
                        return false;
                detach_loop(src);
        }
        if (attach_loop(sh->snap.device, true, loop, sizeof(loop), err, errlen) < 0)
                return false;
        if (mount_fs(sh->snap.fstype, opts, loop, path, err, errlen) < 0) {
                detach_loop(loop);
                return false;
        }
        catalog_event(v, "info", "cow", VSS_S_OK, "shadow copy %s %s again at %s (%s) after its volume server restarted",
                      idbuf, what, path, loop);
        return true;
}

static void reexpose(struct vssd *v, struct shadow *sh)
{
        char idbuf[VSS_ID_STRING_MAX], err[700] = "";

        vss_id_format(&sh->snap.snapshot_id, idbuf);
        if (sh->exposed_path && !remount_shadow_at(v, sh, sh->exposed_path, "exposed", err, sizeof(err)))
                drop_exposure(v, sh, idbuf, err);
        if (sh->published_path && !remount_shadow_at(v, sh, sh->published_path, "published", err, sizeof(err)))
                pubver_lost(v, sh, err);
}

static bool set_in_progress(struct vssd *v)
{
        /* A create, delete or move of another volume on the worker freezes nothing: it does not count. */
        return v->provider_calls_in_flight > 0 || (v->set_owner && v->set_owner->phase == SET_CREATING);
}

int cowvol_remount(struct vssd *v, struct cowvol *cv)
{
        char live_path[VSS_PATH_MAX], loop[256], err[900] = "", *dup;
        bool mounted = cv->mountpoint[0] != 0, moved = false;
        enum loop_state ls;
        struct stat live;
        int r;

        if (set_in_progress(v))
                return -EBUSY;
        fmt_trunc(live_path, sizeof(live_path), "%s/fuse/volume", cv->rundir);
        r = stat_served(live_path, &live);
        if (r == -ETIMEDOUT)
                return -EBUSY;          /* stopped since it answered: supervision deals with it */
        if (r < 0) {
                catalog_event(v, "error", "cow", VSS_E_UNEXPECTED,
                              "cannot remount cow volume %s: its volume server serves no %s (%s); retrying in 30 s",
                              cv->name, live_path, strerror(-r));
                return r;
        }

        ls = loop_state(cv->loopdev, live_path, &live);
        if (ls != LOOP_OURS_LIVE) {
                if (mounted) {
                        r = drop_dead_mount(cv->mountpoint, ls == LOOP_OURS_DEAD ? cv->loopdev : NULL, err,
                                            sizeof(err));
                        if (r == -EEXIST) {
                                /* Not ours any more (the admin remounted by hand, or mounted
                                 * something else there): retrying cannot change that. */
                                catalog_event(v, "error", "cow", VSS_E_VOLUME_IN_USE,
                                              "cow volume %s is not remounted: %s; it is left alone (remount by hand)",
                                              cv->name, err);
                                return 2;
                        }
                        if (r < 0 && r != -ENOENT)
                                goto fail;
                }
                if (ls == LOOP_OURS_DEAD)
                        detach_loop(cv->loopdev);
                r = attach_loop(live_path, false, loop, sizeof(loop), err, sizeof(err));
                if (r < 0)
                        goto fail;
                if (mounted && cv->fs[0]) {
                        r = mount_fs(cv->fs, NULL, loop, cv->mountpoint, err, sizeof(err));
                        /* XFS refuses a second filesystem with the same UUID, and the dead one
                         * lives on while files stay open on it. */
                        if (r < 0 && streq(cv->fs, "xfs"))
                                r = mount_fs(cv->fs, "nouuid", loop, cv->mountpoint, err, sizeof(err));
                        if (r < 0) {
                                detach_loop(loop);
                                goto fail;
                        }
                }
                dup = strdup(loop);
                if (!dup) {
                        r = -ENOMEM;
                        fmt_trunc(err, sizeof(err), "out of memory");
                        goto fail;
                }
                free(cv->loopdev);
                cv->loopdev = dup;
                if (catalog_set_loopdev(v, cv->name, loop) < 0)
                        catalog_event(v, "warning", "cow", VSS_E_UNEXPECTED,
                                      "cow volume %s: cannot record its new loop device %s in the catalog: %s", cv->name,
                                      loop, sqlite3_errmsg(v->db));
                if (mounted)
                        catalog_event(v, "warning", "cow", VSS_S_OK,
                                      "volume server of %s restarted; volume remounted at %s (%s); processes that had "
                                      "files open on it must reopen them", cv->name, cv->mountpoint, loop);
                else
                        catalog_event(v, "warning", "cow", VSS_S_OK,
                                      "volume server of %s restarted; volume attached again as %s; processes that had "
                                      "it open must reopen it", cv->name, loop);
                moved = true;
        } else if (mounted && cv->fs[0] && mount_lookup(cv->mountpoint, NULL, NULL, 0, NULL, 0) == -ENOENT) {
                /* Live loop device, nothing mounted where the volume belongs: vssd died in a revert
                 * between the unmount and the volume server's start of the copy. */
                r = mount_fs(cv->fs, NULL, cv->loopdev, cv->mountpoint, err, sizeof(err));
                if (r < 0 && streq(cv->fs, "xfs"))
                        r = mount_fs(cv->fs, "nouuid", cv->loopdev, cv->mountpoint, err, sizeof(err));
                if (r < 0)
                        goto fail;
                catalog_event(v, "warning", "cow", VSS_S_OK,
                              "cow volume %s was not mounted (vssd stopped while it was offline): mounted again at %s "
                              "(%s)", cv->name, cv->mountpoint, cv->loopdev);
        }

        for (struct shadow *sh = v->shadows; sh; sh = sh->next)
                if ((sh->exposed_path || sh->published_path) && !sh->deleting &&
                    streq(sh->snap.provider_data, cv->rundir))
                        reexpose(v, sh);
        return moved ? 1 : 0;
fail:
        catalog_event(v, "error", "cow", VSS_E_UNEXPECTED, "cannot remount cow volume %s%s%s: %s; retrying in 30 s",
                      cv->name, mounted ? " at " : "", mounted ? cv->mountpoint : "", err);
        return r;
}
