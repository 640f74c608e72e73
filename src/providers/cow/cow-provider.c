/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The cow provider: shadow copies of ext4/XFS filesystems living on cow
 * volumes (an image served by vss-volsrv through a FUSE file and a loop
 * device).  All state is in the volume servers; a volume is recognised from
 * its mount (loop backing file RUNDIR/fuse/volume), and a shadow's
 * provider_data is its RUNDIR, so nothing here needs vssd's catalog.
 *
 * needs_freeze is set: vssd syncs and FIFREEZEs every volume of the set,
 * then calls commit once for all of them, so Snapshot.Create on each volume
 * server happens inside one freeze window and the set has one instant.
 */

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "basic/exec-util.h"
#include "basic/fs-util.h"
#include "basic/macro.h"
#include "basic/time-util.h"
#include "basic/wire.h"
#include "providers/cow/cow-util.h"
#include "providers/cow/volsrv-client.h"
#include "vss/provider.h"

#define VSS_COW_PROVIDER_ID "{6f70656e-7673-4373-af77-70726f760001}"

/* Snapshot.Create runs inside the 10 s hold window: leave room for the thaw. */
#define COMMIT_CALL_TIMEOUT_MS 4000

struct cow_state {
        struct vss_provider_ctx *ctx;
};

static vss_hresult fail(struct cow_state *s, vss_hresult hr, const char *fmt, ...) _printf_(3, 4);
static vss_hresult fail(struct cow_state *s, vss_hresult hr, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(s->ctx->error, sizeof(s->ctx->error), fmt, ap);
        va_end(ap);
        return hr;
}

static vss_hresult cow_init(struct vss_provider_ctx *ctx, void **ret_state)
{
        struct cow_state *s = calloc(1, sizeof(*s));

        if (!s)
                return VSS_E_OUTOFMEMORY;
        s->ctx = ctx;
        *ret_state = s;
        return VSS_S_OK;
}

static void cow_done(void *state)
{
        free(state);
}

static vss_hresult cow_is_volume_supported(void *state, const char *volume, const char *fstype, bool *ret)
{
        char rundir[VSS_PROVIDER_DATA_MAX - 64];

        *ret = (streq(fstype, "ext4") || streq(fstype, "xfs")) &&
               cow_rundir_of_volume(volume, rundir, sizeof(rundir)) >= 0;
        return VSS_S_OK;
}

static vss_hresult cow_begin_prepare(void *state, struct vss_provider_snapshot *snap)
{
        struct cow_state *s = state;
        unsigned long long min = s->ctx->settings.min_diff_area_bytes;
        char rundir[VSS_PROVIDER_DATA_MAX - 64], guid[37], err[512];
        _cleanup_free_ char *dir = NULL;
        json_t *status = NULL, *stats = NULL, *jmax;
        struct statvfs sv;
        const char *diff;
        vss_hresult hr;

        if (cow_rundir_of_volume(snap->volume, rundir, sizeof(rundir)) < 0)
                return fail(s, VSS_E_VOLUME_NOT_SUPPORTED, "%s is not a mounted cow volume", snap->volume);
        hr = volsrv_call(rundir, "Volume.Status", NULL, VOLSRV_CALL_TIMEOUT_MS, &status, err, sizeof(err));
        if (VSS_SUCCEEDED(hr))
                hr = volsrv_call(rundir, "Storage.Stats", NULL, VOLSRV_CALL_TIMEOUT_MS, &stats, err, sizeof(err));
        if (VSS_FAILED(hr)) {
                json_decref(status);
                return fail(s, VSS_E_PROVIDER_VETO, "volume server of %s: %s", snap->volume, err);
        }
        diff = json_get_str(status, "diff");
        dir = diff ? strdup(diff) : NULL;
        jmax = json_object_get(stats, "max_bytes");
        if (jmax && json_is_integer(jmax) && (unsigned long long)json_integer_value(jmax) < min) {
                hr = fail(s, VSS_E_INSUFFICIENT_STORAGE,
                          "the shadow copy storage of %s is limited to %lld bytes, below the minimum of %llu MB",
                          snap->volume, (long long)json_integer_value(jmax), min >> 20);
        } else if (dir && statvfs(dirname(dir), &sv) == 0 && (unsigned long long)sv.f_bavail * sv.f_frsize < min) {
                hr = fail(s, VSS_E_INSUFFICIENT_STORAGE,
                          "the filesystem holding the diff area %s has %llu MB free, below the minimum of %llu MB",
                          diff, ((unsigned long long)sv.f_bavail * sv.f_frsize) >> 20, min >> 20);
        } else {
                volsrv_guid(&snap->snapshot_id, guid);
                snprintf(snap->device, sizeof(snap->device), "%s/fuse/shadows/%s", rundir, guid);
                snprintf(snap->provider_data, sizeof(snap->provider_data), "%s", rundir);
                snap->attributes |= VSS_VOLSNAP_ATTR_DIFFERENTIAL;
                hr = VSS_S_OK;
        }
        json_decref(status);
        json_decref(stats);
        return hr;
}

static vss_hresult cow_ok(void *state, struct vss_provider_snapshot *snaps, size_t n)
{
        return VSS_S_OK;
}

/* Writes the volume's dirty data back before the writers freeze, as the btrfs
 * provider does: otherwise the syncfs and FIFREEZE of the commit push it all
 * through loop, FUSE and the volume server while the writers hold their
 * applications' commits (bench/apps.sh, docs/writer-mariadb.md). */
static vss_hresult cow_end_prepare(void *state, struct vss_provider_snapshot *snaps, size_t n)
{
        for (size_t i = 0; i < n; i++)
                (void) syncfs_path(snaps[i].volume);
        return VSS_S_OK;
}

static vss_hresult snap_call(struct cow_state *s, const struct vss_provider_snapshot *snap, const char *method,
                             int timeout_ms)
{
        char id[VSS_ID_STRING_MAX], err[512];
        vss_hresult hr;

        hr = volsrv_call(snap->provider_data, method, json_pack("{s:s}", "shadow_id", vss_id_format(&snap->snapshot_id, id)),
                         timeout_ms, NULL, err, sizeof(err));
        if (VSS_FAILED(hr))
                fail(s, hr, "%s of %s on the volume server of %s: %s", method, id, snap->volume, err);
        return hr;
}

static vss_hresult cow_abort(void *state, struct vss_provider_snapshot *snaps, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (snaps[i].provider_data[0])
                        (void)snap_call(state, &snaps[i], "Snapshot.Delete", VOLSRV_CALL_TIMEOUT_MS);
        return VSS_S_OK;
}

static vss_hresult cow_commit(void *state, struct vss_provider_snapshot *snaps, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                vss_hresult hr = snap_call(state, &snaps[i], "Snapshot.Create", COMMIT_CALL_TIMEOUT_MS);

                if (VSS_FAILED(hr)) {
                        /* Undo the ones taken: the set is all or nothing. */
                        (void)cow_abort(state, snaps, i);
                        return hr == VSS_E_OBJECT_NOT_FOUND ? VSS_E_PROVIDER_VETO : hr;
                }
        }
        return VSS_S_OK;
}

static vss_hresult cow_post_commit(void *state, struct vss_provider_snapshot *snaps, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (access(snaps[i].device, R_OK) < 0)
                        return fail(state, VSS_E_PROVIDER_VETO, "shadow copy file %s is missing: %s", snaps[i].device,
                                    strerror(errno));
        return VSS_S_OK;
}

static vss_hresult cow_delete(void *state, const struct vss_provider_snapshot *snap)
{
        vss_hresult hr = snap_call(state, snap, "Snapshot.Delete", VOLSRV_CALL_TIMEOUT_MS);

        /* Already gone (evicted by the volume server) is what we wanted. */
        return hr == VSS_E_OBJECT_NOT_FOUND ? VSS_S_OK : hr;
}

static vss_hresult cow_expose(void *state, const struct vss_provider_snapshot *snap, const char *path)
{
        struct cow_state *s = state;
        char loop[256] = "", out[1024];
        const char *opts = streq(snap->fstype, "xfs") ? "ro,norecovery,nouuid" : "ro,noload";
        int r;

        r = run_command((char *const[]){ "losetup", "-r", "-f", "--show", (char *)snap->device, NULL }, -1, loop, sizeof(loop));
        if (r != 0 || strncmp(loop, "/dev/loop", 9) != 0)
                return fail(s, VSS_E_PROVIDER_VETO, "losetup -r %s failed: %s", snap->device, loop);
        r = run_command((char *const[]){ "mount", "-t", (char *)snap->fstype, "-o", (char *)opts, loop, (char *)path, NULL }, -1,
                    out, sizeof(out));
        if (r != 0) {
                (void)run_command((char *const[]){ "losetup", "-d", loop, NULL }, -1, NULL, 0);
                return fail(s, VSS_E_PROVIDER_VETO, "mount -o %s %s %s failed: %s", opts, loop, path, out);
        }
        return VSS_S_OK;
}

static vss_hresult cow_exists(void *state, const struct vss_provider_snapshot *snap, bool *ret);

static vss_hresult cow_unexpose(void *state, const struct vss_provider_snapshot *snap, const char *path)
{
        struct cow_state *s = state;
        char dev[4096] = "", out[1024];
        bool exists = true;
        int r;

        if (mount_lookup(path, NULL, dev, sizeof(dev), NULL, 0) < 0)
                return VSS_S_OK;        /* not mounted any more: nothing to undo */
        r = run_command((char *const[]){ "umount", (char *)path, NULL }, -1, out, sizeof(out));
        if (r != 0 && VSS_SUCCEEDED(cow_exists(state, snap, &exists)) && !exists) {
                /* The shadow copy is gone (evicted) and someone still uses the
                 * mount: detach it lazily rather than keep a dead mount. */
                r = run_command((char *const[]){ "umount", "-l", (char *)path, NULL }, -1, out, sizeof(out));
        }
        if (r != 0)
                return fail(s, VSS_E_PROVIDER_VETO, "umount %s failed: %s", path, out);
        /* A loop still in use after a lazy unmount goes when its last user does. */
        if (strncmp(dev, "/dev/loop", 9) == 0)
                (void)run_command((char *const[]){ "losetup", "-d", dev, NULL }, -1, NULL, 0);
        return VSS_S_OK;
}

static vss_hresult cow_exists(void *state, const struct vss_provider_snapshot *snap, bool *ret)
{
        char err[512], want[37];
        json_t *res = NULL, *a, *x;
        size_t i;

        *ret = true;    /* unknown (server not reachable) counts as existing */
        if (VSS_FAILED(volsrv_call(snap->provider_data, "Snapshot.List", NULL, VOLSRV_CALL_TIMEOUT_MS, &res, err,
                                   sizeof(err))))
                return VSS_S_OK;
        volsrv_guid(&snap->snapshot_id, want);
        *ret = false;
        a = json_object_get(res, "snapshots");
        json_array_foreach(a, i, x) {
                vss_id id;
                char got[37];

                if (json_get_id(x, "shadow_id", &id)) {
                        volsrv_guid(&id, got);
                        if (streq(got, want))
                                *ret = true;
                }
        }
        json_decref(res);
        return VSS_S_OK;
}

/* ---- revert ---- */

/*
 * The volume server copies the chunks back (Snapshot.Revert, docs/volsrv.md),
 * but only while nothing holds the live volume open for writing: so the
 * filesystem is unmounted (a busy one is VSS_E_VOLUME_IN_USE, and stays
 * mounted), its loop device detached, and the server's count of writers
 * awaited (FUSE releases arrive asynchronously); then the revert is started
 * and Snapshot.RevertStatus polled until the copy ends; then a new loop device
 * and the mount at the same place.  Every command has a deadline; the copy
 * itself has none (it progresses, or the server fails it), only each status
 * call does.  Before the revert has started, any failure attaches and mounts
 * the volume again as it was.  A copy that fails leaves the revert recorded
 * in the diff area (the server completes it when it starts again, or when the
 * revert is asked for again), and the volume detached: serving a mixture of
 * old and new chunks is what the engine exists to prevent.
 */

#define REVERT_UMOUNT_TIMEOUT_MS 60000
#define REVERT_LOSETUP_TIMEOUT_MS 10000
#define REVERT_MOUNT_TIMEOUT_MS 60000
#define REVERT_WRITERS_TIMEOUT_MS 10000
#define REVERT_POLL_US 100000
/* Status calls failing in a row for this long: the server is gone. */
#define REVERT_SERVER_LOST_US (30 * 1000000ULL)

/* A loop device on the live file, mounted at the volume; snap->volume_device follows. */
static vss_hresult attach_mount(struct cow_state *s, struct vss_provider_snapshot *snap, const char *live)
{
        char loop[256] = "", out[1024];
        int r;

        snap->volume_device[0] = 0;
        r = run_command((char *const[]){ "losetup", "-f", "--show", "--direct-io=on", (char *)live, NULL },
                        REVERT_LOSETUP_TIMEOUT_MS, loop, sizeof(loop));
        if (r != 0 || strncmp(loop, "/dev/loop", 9) != 0 || strchr(loop, '\n'))
                return fail(s, VSS_E_PROVIDER_VETO, "losetup of %s failed: %s", live, loop);
        r = run_command((char *const[]){ "mount", "-t", snap->fstype, loop, snap->volume, NULL },
                        REVERT_MOUNT_TIMEOUT_MS, out, sizeof(out));
        /* XFS refuses a second filesystem with the same UUID, as an exposed shadow copy may be. */
        if (r != 0 && streq(snap->fstype, "xfs"))
                r = run_command((char *const[]){ "mount", "-t", "xfs", "-o", "nouuid", loop, snap->volume, NULL },
                                REVERT_MOUNT_TIMEOUT_MS, out, sizeof(out));
        if (r != 0) {
                (void)run_command((char *const[]){ "losetup", "-d", loop, NULL }, REVERT_LOSETUP_TIMEOUT_MS, NULL, 0);
                return fail(s, VSS_E_PROVIDER_VETO, "mount -t %s %s %s failed: %s", snap->fstype, loop, snap->volume,
                            out);
        }
        snprintf(snap->volume_device, sizeof(snap->volume_device), "%s", loop);
        return VSS_S_OK;
}

/* Puts the volume back as it was after a failure before the revert started; keeps the first error. */
static vss_hresult revert_undo(struct cow_state *s, struct vss_provider_snapshot *snap, const char *live,
                               bool detached, vss_hresult hr)
{
        char first[sizeof(s->ctx->error)], again[sizeof(s->ctx->error)];

        /* Not mounted by us when we came (a retry after a failed revert): nothing to put back. */
        if (!detached)
                return hr;

        snprintf(first, sizeof(first), "%s", s->ctx->error);
        if (VSS_SUCCEEDED(attach_mount(s, snap, live))) {
                snprintf(s->ctx->error, sizeof(s->ctx->error), "%s", first);
                return hr;
        }
        snprintf(again, sizeof(again), "%s", s->ctx->error);
        return fail(s, hr, "%s; and the volume could not be mounted again: %s", first, again);
}

static vss_hresult wait_no_writers(struct cow_state *s, const char *rundir)
{
        uint64_t end = clock_monotonic_us() + REVERT_WRITERS_TIMEOUT_MS * 1000ULL;
        json_int_t n = -1;
        char err[512] = "";

        for (;;) {
                json_t *st = NULL;

                n = -1;
                if (VSS_SUCCEEDED(volsrv_call(rundir, "Volume.Status", NULL, VOLSRV_CALL_TIMEOUT_MS, &st, err,
                                              sizeof(err))))
                        (void)json_get_int(st, "open_for_writing", &n);
                json_decref(st);
                if (n == 0)
                        return VSS_S_OK;
                if (clock_monotonic_us() >= end)
                        break;
                usleep(50000);
        }
        if (n < 0)
                return fail(s, VSS_E_PROVIDER_VETO, "the volume server does not answer Volume.Status: %s", err);
        return fail(s, VSS_E_VOLUME_IN_USE,
                    "the volume is still open for writing %lld time(s) after it was unmounted and detached (another "
                    "loop device, an NBD client, or a mount of it in another mount namespace?)", (long long)n);
}

static vss_hresult cow_revert(void *state, struct vss_provider_snapshot *snap)
{
        struct cow_state *s = state;
        const char *rundir = snap->provider_data;
        char live[VSS_PATH_MAX], dev[256] = "", back[VSS_PATH_MAX] = "", out[1024], err[512] = "",
             id[VSS_ID_STRING_MAX];
        uint64_t last_ok = clock_monotonic_us();
        json_int_t done = 0, total = 0;
        bool detached = false;
        vss_hresult hr;
        int r;

        if (!rundir[0])
                return fail(s, VSS_E_OBJECT_NOT_FOUND, "shadow copy of %s has no volume server", snap->volume);
        snprintf(live, sizeof(live), "%s/fuse/volume", rundir);
        vss_id_format(&snap->snapshot_id, id);

        /* 1. The filesystem, if it is ours (else the admin's: a revert under it would corrupt it). */
        if (mount_lookup(snap->volume, NULL, dev, sizeof(dev), NULL, 0) == 0) {
                if (loop_backing_file(dev, back, sizeof(back)) < 0 || !streq(back, live))
                        return fail(s, VSS_E_VOLUME_IN_USE, "%s is mounted from %s, not from its cow volume %s",
                                    snap->volume, dev, live);
                r = run_command((char *const[]){ "umount", snap->volume, NULL }, REVERT_UMOUNT_TIMEOUT_MS, out,
                                sizeof(out));
                /* Whatever umount said (or if it was killed at its deadline), the mount table decides. */
                if (r != 0) {
                        if (mount_lookup(snap->volume, NULL, NULL, 0, NULL, 0) == 0)
                                return fail(s, VSS_E_VOLUME_IN_USE,
                                            "cannot unmount %s: %s (close the files open on it, leave it, unmount "
                                            "what is mounted below it and retry; nothing was changed)",
                                            snap->volume, r == -ETIMEDOUT ? "timed out" : out);
                }
                /* 2. */
                r = run_command((char *const[]){ "losetup", "-d", dev, NULL }, REVERT_LOSETUP_TIMEOUT_MS, out,
                                sizeof(out));
                if (r != 0) {
                        /* Unmounted, but still attached: mount it again from the same loop device. */
                        fail(s, VSS_E_VOLUME_IN_USE, "cannot detach %s after unmounting %s: %s", dev, snap->volume,
                             out);
                        if (run_command((char *const[]){ "mount", "-t", snap->fstype, dev, snap->volume, NULL },
                                        REVERT_MOUNT_TIMEOUT_MS, out, sizeof(out)) != 0)
                                snap->volume_device[0] = 0;
                        return VSS_E_VOLUME_IN_USE;
                }
                detached = true;
        }
        /* 3. */
        hr = wait_no_writers(s, rundir);
        if (VSS_FAILED(hr))
                return revert_undo(s, snap, live, detached, hr);
        /* 4. */
        hr = volsrv_call(rundir, "Snapshot.Revert", json_pack("{s:s}", "shadow_id", id), VOLSRV_CALL_TIMEOUT_MS, NULL,
                         err, sizeof(err));
        if (VSS_FAILED(hr)) {
                fail(s, hr, "Snapshot.Revert of %s on the volume server of %s: %s", id, snap->volume, err);
                return revert_undo(s, snap, live, detached, hr);
        }
        /* 5. */
        snap->volume_device[0] = 0;
        /* Test hook: vssd waits with the volume offline and the revert started, so that a test can
         * kill it there (the volume must come back when vssd starts again). */
        (void)debug_sleep_from_env("VSSD_DEBUG_REVERT_OFFLINE_MS");
        for (;;) {
                json_t *st = NULL;
                const char *state_s;

                usleep(REVERT_POLL_US);
                hr = volsrv_call(rundir, "Snapshot.RevertStatus", NULL, VOLSRV_CALL_TIMEOUT_MS, &st, err, sizeof(err));
                if (VSS_FAILED(hr)) {
                        json_decref(st);
                        if (clock_monotonic_us() - last_ok < REVERT_SERVER_LOST_US)
                                continue;
                        return fail(s, VSS_E_REVERT_VOLUME_LOST,
                                    "the volume server of %s stopped answering during the revert (%s); it completes "
                                    "the revert when it starts again, then vssd mounts the volume", snap->volume, err);
                }
                last_ok = clock_monotonic_us();
                state_s = json_get_str(st, "state") ?: "";
                (void)json_get_int(st, "chunks_done", &done);
                (void)json_get_int(st, "chunks_total", &total);
                if (streq(state_s, "done")) {
                        json_decref(st);
                        break;
                }
                if (!streq(state_s, "running")) {
                        vss_hresult fhr = VSS_E_UNEXPECTED_PROVIDER_ERROR;

                        (void)wire_parse_hresult(json_object_get(st, "hresult"), &fhr);
                        if (VSS_SUCCEEDED(fhr))
                                fhr = VSS_E_UNEXPECTED_PROVIDER_ERROR;
                        /* state_s lives in st: the message is made before st goes. */
                        hr = fail(s, fhr == VSS_E_REVERT_VOLUME_LOST ? fhr : VSS_E_PROVIDER_VETO,
                                  "the revert of %s to %s ended in state '%s' after %lld of %lld chunks (0x%08X %s); "
                                  "the volume stays offline, the revert stays recorded: revert again to complete "
                                  "it", snap->volume, id, state_s, (long long)done, (long long)total, (uint32_t)fhr,
                                  vss_hresult_name(fhr));
                        json_decref(st);
                        return hr;
                }
                json_decref(st);
        }
        /* 6. */
        hr = attach_mount(s, snap, live);
        if (VSS_FAILED(hr)) {
                char why[sizeof(s->ctx->error)];

                snprintf(why, sizeof(why), "%s", s->ctx->error);
                return fail(s, hr, "%s was reverted to %s, but: %s", snap->volume, id, why);
        }
        return VSS_S_OK;
}

/* ---- the diff area (shadow copy storage) ---- */

/* Volume.Status and Storage.Stats answer from memory: a server that does not within this is
 * left out of a listing rather than holding it up. */
#define STATS_CALL_TIMEOUT_MS 3000

static vss_hresult cow_diff_area_query(void *state, const char *volume, struct vss_provider_diff_area *ret)
{
        struct cow_state *s = state;
        char rundir[VSS_PROVIDER_DATA_MAX - 64], err[512];
        struct vss_provider_diff_area d = {};
        json_t *st = NULL;
        json_int_t x;
        vss_hresult hr;

        if (cow_rundir_of_volume(volume, rundir, sizeof(rundir)) < 0)
                return VSS_E_OBJECT_NOT_FOUND;
        hr = volsrv_call(rundir, "Volume.Status", NULL, STATS_CALL_TIMEOUT_MS, &st, err, sizeof(err));
        if (VSS_SUCCEEDED(hr)) {
                snprintf(d.path, sizeof(d.path), "%s", json_get_str(st, "diff") ?: "");
                json_decref(st);
                st = NULL;
                hr = volsrv_call(rundir, "Storage.Stats", NULL, STATS_CALL_TIMEOUT_MS, &st, err, sizeof(err));
        }
        if (VSS_FAILED(hr))
                return fail(s, hr, "%s", err);
        if (json_get_int(st, "used_bytes", &x) && x > 0)
                d.used_bytes = (uint64_t)x;
        if (json_get_int(st, "allocated_bytes", &x) && x > 0)
                d.allocated_bytes = (uint64_t)x;
        json_decref(st);
        *ret = d;
        return VSS_S_OK;
}

static vss_hresult cow_diff_area_set_max(void *state, const char *volume, int64_t max_bytes)
{
        struct cow_state *s = state;
        char rundir[VSS_PROVIDER_DATA_MAX - 64], err[512];
        vss_hresult hr;

        if (cow_rundir_of_volume(volume, rundir, sizeof(rundir)) < 0)
                return VSS_E_OBJECT_NOT_FOUND;
        hr = volsrv_call(rundir, "Storage.SetMax",
                         json_pack("{s:o}", "max_bytes", max_bytes < 0 ? json_null() : json_integer(max_bytes)),
                         VOLSRV_CALL_TIMEOUT_MS, NULL, err, sizeof(err));
        return VSS_FAILED(hr) ? fail(s, hr, "%s", err) : VSS_S_OK;
}

const struct vss_provider_ops vss_provider_cow = {
        .name = "openvss cow provider",
        .provider_id = VSS_COW_PROVIDER_ID,
        .type = VSS_PROV_SYSTEM,
        .version = "1.0.0",
        .needs_freeze = true,
        .init = cow_init,
        .done = cow_done,
        .is_volume_supported = cow_is_volume_supported,
        .begin_prepare = cow_begin_prepare,
        .end_prepare = cow_end_prepare,
        .pre_commit = cow_ok,
        .commit = cow_commit,
        .post_commit = cow_post_commit,
        .abort = cow_abort,
        .delete_snapshot = cow_delete,
        .expose = cow_expose,
        .unexpose = cow_unexpose,
        .exists = cow_exists,
        .revert = cow_revert,
        .diff_area_query = cow_diff_area_query,
        .diff_area_set_max = cow_diff_area_set_max,
};
