/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The btrfs provider: a shadow copy is a read-only btrfs snapshot.
 *
 * Layout.  The shadow copies of volume V live in V/.openvss/{shadow-guid}.
 * V/.openvss is itself a subvolume (created on first use, mode 0700): a
 * btrfs snapshot does not descend into nested subvolumes, so a later snapshot
 * of V shows .openvss as an empty directory instead of containing every older
 * shadow copy.  A plain directory there would make each shadow contain all
 * earlier ones, so we refuse to use one.
 *
 * Atomicity.  One snapshot is atomic for its subvolume, so vssd does not have
 * to FIFREEZE anything (needs_freeze = false).  FIFREEZE could not be used
 * anyway: creating a snapshot on a frozen btrfs blocks until the thaw.  The
 * volumes of one set are snapshotted back to back inside commit(), while the
 * writers are frozen; they are not taken at one kernel instant.
 *
 * Durability.  BTRFS_IOC_SNAP_CREATE_V2 returns only after the transaction
 * that creates the snapshot has committed, so a snapshot that commit()
 * reported survives a crash without a separate sync.
 *
 * Safety.  vssd runs as root and volumes are user-writable, so every path
 * below V is resolved with openat(O_NOFOLLOW) from a descriptor of V: a
 * symlink planted at V/.openvss cannot redirect a create or a delete.  The
 * provider_data of a shadow records the subvolume id of the snapshot, and
 * delete/exists/expose check that the subvolume at the path still has it, so
 * a shadow replaced behind our back is reported missing, never deleted.
 */

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <dirent.h>
#include <btrfsutil.h>

#include "basic/fs-util.h"
#include "basic/macro.h"
#include "basic/time-util.h"
#include "vss/provider.h"

#define SHADOW_DIR ".openvss"

struct btrfs_provider {
        struct vss_provider_ctx *ctx;
};

DEFINE_FREE_FUNC(DIR, closedir);

static void recover_revert(struct btrfs_provider *p);

static vss_hresult errno_to_hresult(int err)
{
        switch (err) {
        case ENOSPC:
        case EDQUOT:
                return VSS_E_INSUFFICIENT_STORAGE;
        case ENOENT:
        case ENOTDIR:
                return VSS_E_OBJECT_NOT_FOUND;
        case ENOMEM:
                return VSS_E_OUTOFMEMORY;
        default:
                return VSS_E_PROVIDER_VETO;
        }
}

_printf_(3, 4)
static vss_hresult fail(struct btrfs_provider *p, vss_hresult hr, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(p->ctx->error, sizeof(p->ctx->error), fmt, ap);
        va_end(ap);
        return hr;
}

/* Reports a failed libbtrfsutil call: errno carries the system error. */
static vss_hresult fail_btrfs(struct btrfs_provider *p, enum btrfs_util_error e, const char *what,
                              const char *path)
{
        int err = errno;

        if (e == BTRFS_UTIL_ERROR_NO_MEMORY)
                err = ENOMEM;
        return fail(p, errno_to_hresult(err), "btrfs provider: %s %s: %s (%s)", what, path,
                    btrfs_util_strerror(e), strerror(err));
}

static vss_hresult fail_errno(struct btrfs_provider *p, int err, const char *what, const char *path)
{
        return fail(p, errno_to_hresult(err), "btrfs provider: %s %s: %s", what, path, strerror(err));
}

/* "/" + ".openvss" must not become "//.openvss". */
static int join_path(char *buf, size_t size, const char *dir, const char *name)
{
        size_t l = strlen(dir);
        int n;

        n = snprintf(buf, size, "%s%s%s", dir, l > 0 && dir[l - 1] == '/' ? "" : "/", name);
        if (n < 0 || (size_t)n >= size)
                return -ENAMETOOLONG;
        return 0;
}

static void shadow_name(const vss_id *id, char buf[VSS_ID_STRING_MAX])
{
        vss_id_format(id, buf);
}

static int shadow_path(const struct vss_provider_snapshot *snap, char *buf, size_t size)
{
        char dir[VSS_PATH_MAX], name[VSS_ID_STRING_MAX];
        int r;

        r = join_path(dir, sizeof(dir), snap->volume, SHADOW_DIR);
        if (r < 0)
                return r;
        shadow_name(&snap->snapshot_id, name);
        return join_path(buf, size, dir, name);
}

/* Checks that 'volume' is the root of a btrfs subvolume and returns an open
 * descriptor of it. */
static vss_hresult open_volume(struct btrfs_provider *p, const char *volume, const char *fstype,
                               int *ret_fd)
{
        _cleanup_close_ int fd = -EBADF;
        enum btrfs_util_error e;

        if (!fstype || !streq(fstype, "btrfs"))
                return fail(p, VSS_E_VOLUME_NOT_SUPPORTED_BY_PROVIDER,
                            "btrfs provider: %s is not a btrfs volume (file system type %s)",
                            volume, fstype && *fstype ? fstype : "unknown");
        if (volume[0] != '/')
                return fail(p, VSS_E_VOLUME_NOT_SUPPORTED_BY_PROVIDER,
                            "btrfs provider: volume path '%s' is not absolute", volume);

        fd = open(volume, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) {
                if (errno == ENOENT || errno == ENOTDIR)
                        return fail_errno(p, errno, "cannot open volume", volume);
                return fail(p, VSS_E_VOLUME_NOT_SUPPORTED_BY_PROVIDER,
                            "btrfs provider: cannot open volume %s: %s", volume, strerror(errno));
        }
        e = btrfs_util_is_subvolume_fd(fd);
        if (e == BTRFS_UTIL_ERROR_NOT_BTRFS || e == BTRFS_UTIL_ERROR_NOT_SUBVOLUME)
                return fail(p, VSS_E_VOLUME_NOT_SUPPORTED_BY_PROVIDER,
                            "btrfs provider: %s is not the root of a btrfs subvolume (%s)",
                            volume, btrfs_util_strerror(e));
        if (e != BTRFS_UTIL_OK)
                return fail_btrfs(p, e, "cannot inspect volume", volume);

        *ret_fd = TAKE_FD(fd);
        return VSS_S_OK;
}

/* Opens (creating if asked) the .openvss subvolume below an open volume. */
static vss_hresult open_shadow_dir(struct btrfs_provider *p, int volfd, const char *volume, bool create,
                                   int *ret_fd)
{
        _cleanup_close_ int fd = -EBADF;
        char path[VSS_PATH_MAX];
        enum btrfs_util_error e;

        if (join_path(path, sizeof(path), volume, SHADOW_DIR) < 0)
                return fail_errno(p, ENAMETOOLONG, "path too long:", volume);

        fd = openat(volfd, SHADOW_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT && create) {
                e = btrfs_util_create_subvolume_fd(volfd, SHADOW_DIR, 0, NULL, NULL);
                if (e != BTRFS_UTIL_OK && errno != EEXIST)
                        return fail_btrfs(p, e, "cannot create shadow storage subvolume", path);
                fd = openat(volfd, SHADOW_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (fd >= 0 && fchmod(fd, 0700) < 0)
                        return fail_errno(p, errno, "cannot set mode 0700 on", path);
                if (fd >= 0 && p->ctx->log_event) {
                        char msg[VSS_PATH_MAX + 64];

                        snprintf(msg, sizeof(msg), "btrfs provider: created shadow storage subvolume %s", path);
                        p->ctx->log_event(p->ctx->log_userdata, "info", VSS_S_OK, msg);
                }
        }
        if (fd < 0) {
                if (errno == ELOOP || errno == ENOTDIR)
                        return fail(p, VSS_E_PROVIDER_VETO,
                                    "btrfs provider: %s exists and is not a directory; move it away", path);
                return fail_errno(p, errno, "cannot open shadow storage", path);
        }

        e = btrfs_util_is_subvolume_fd(fd);
        if (e == BTRFS_UTIL_ERROR_NOT_SUBVOLUME)
                return fail(p, VSS_E_PROVIDER_VETO,
                            "btrfs provider: %s is a plain directory, not a subvolume: snapshots of the volume "
                            "would contain every older shadow copy; move it away",
                            path);
        if (e != BTRFS_UTIL_OK)
                return fail_btrfs(p, e, "cannot inspect shadow storage", path);

        *ret_fd = TAKE_FD(fd);
        return VSS_S_OK;
}

/* provider_data is a small JSON object: {"path": "...", "subvol_id": N}. */
static vss_hresult parse_provider_data(struct btrfs_provider *p, const struct vss_provider_snapshot *snap,
                                       uint64_t *ret_subvol_id)
{
        char expected[VSS_PATH_MAX];
        json_t *root, *path, *id;
        json_error_t jerr;
        vss_hresult hr = VSS_S_OK;

        if (shadow_path(snap, expected, sizeof(expected)) < 0)
                return fail_errno(p, ENAMETOOLONG, "path too long:", snap->volume);

        root = json_loads(snap->provider_data, 0, &jerr);
        if (!root)
                return fail(p, VSS_E_INVALIDARG, "btrfs provider: provider data of shadow at %s is not valid: %s",
                            expected, jerr.text);
        path = json_object_get(root, "path");
        id = json_object_get(root, "subvol_id");
        /* The path is derived, never trusted: a catalog that points elsewhere
         * must not make us delete or mount another subvolume. */
        if (!json_is_string(path) || !streq(json_string_value(path), expected) || !json_is_integer(id) ||
            json_integer_value(id) <= 0)
                hr = fail(p, VSS_E_INVALIDARG,
                          "btrfs provider: provider data of shadow %s does not match its volume %s",
                          expected, snap->volume);
        else
                *ret_subvol_id = (uint64_t)json_integer_value(id);
        json_decref(root);
        return hr;
}

/*
 * Opens the shadow copy subvolume of 'snap' and checks it is the one commit()
 * made.  Returns VSS_E_OBJECT_NOT_FOUND (with ctx->error set) when it is gone.
 * ret_dirfd (optional) gets the .openvss descriptor.
 */
static vss_hresult open_shadow(struct btrfs_provider *p, const struct vss_provider_snapshot *snap,
                               int *ret_dirfd, int *ret_fd)
{
        _cleanup_close_ int volfd = -EBADF, dirfd = -EBADF, fd = -EBADF;
        char path[VSS_PATH_MAX], name[VSS_ID_STRING_MAX];
        enum btrfs_util_error e;
        uint64_t want = 0, have = 0;
        vss_hresult hr;

        hr = parse_provider_data(p, snap, &want);
        if (VSS_FAILED(hr))
                return hr;
        (void) shadow_path(snap, path, sizeof(path));

        volfd = open(snap->volume, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (volfd < 0)
                return fail_errno(p, errno, "cannot open volume", snap->volume);
        hr = open_shadow_dir(p, volfd, snap->volume, false, &dirfd);
        if (VSS_FAILED(hr))
                return hr;

        shadow_name(&snap->snapshot_id, name);
        fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return fail_errno(p, errno, "cannot open shadow copy", path);
        e = btrfs_util_is_subvolume_fd(fd);
        if (e == BTRFS_UTIL_ERROR_NOT_SUBVOLUME)
                return fail(p, VSS_E_OBJECT_NOT_FOUND, "btrfs provider: %s is not a subvolume any more", path);
        if (e != BTRFS_UTIL_OK)
                return fail_btrfs(p, e, "cannot inspect shadow copy", path);
        e = btrfs_util_subvolume_id_fd(fd, &have);
        if (e != BTRFS_UTIL_OK)
                return fail_btrfs(p, e, "cannot read the subvolume id of", path);
        if (have != want)
                return fail(p, VSS_E_OBJECT_NOT_FOUND,
                            "btrfs provider: %s is subvolume %llu, not the shadow copy (subvolume %llu)", path,
                            (unsigned long long)have, (unsigned long long)want);

        if (ret_dirfd)
                *ret_dirfd = TAKE_FD(dirfd);
        *ret_fd = TAKE_FD(fd);
        return VSS_S_OK;
}

static vss_hresult btrfs_init(struct vss_provider_ctx *ctx, void **ret_state)
{
        struct btrfs_provider *p;

        p = calloc(1, sizeof(*p));
        if (!p)
                return VSS_E_OUTOFMEMORY;
        p->ctx = ctx;
        *ret_state = p;
        recover_revert(p);
        return VSS_S_OK;
}

static void btrfs_done(void *state)
{
        free(state);
}

static vss_hresult btrfs_is_volume_supported(void *state, const char *volume, const char *fstype,
                                             bool *ret_supported)
{
        if (!volume || !fstype || !streq(fstype, "btrfs") || volume[0] != '/') {
                *ret_supported = false;
                return VSS_S_OK;
        }
        /* A stat and a statfs: cheap enough for the event loop. */
        *ret_supported = btrfs_util_is_subvolume(volume) == BTRFS_UTIL_OK;
        return VSS_S_OK;
}

static vss_hresult btrfs_begin_prepare(void *state, struct vss_provider_snapshot *snap)
{
        struct btrfs_provider *p = state;
        _cleanup_close_ int volfd = -EBADF, dirfd = -EBADF;
        char path[VSS_PATH_MAX], name[VSS_ID_STRING_MAX];
        vss_hresult hr;

        hr = open_volume(p, snap->volume, snap->fstype, &volfd);
        if (VSS_FAILED(hr))
                return hr;
        if (shadow_path(snap, path, sizeof(path)) < 0)
                return fail_errno(p, ENAMETOOLONG, "path too long:", snap->volume);
        hr = open_shadow_dir(p, volfd, snap->volume, true, &dirfd);
        if (VSS_FAILED(hr))
                return hr;

        shadow_name(&snap->snapshot_id, name);
        if (faccessat(dirfd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
                return fail(p, VSS_E_PROVIDER_VETO, "btrfs provider: %s already exists", path);
        return VSS_S_OK;
}

/* Trims the writeback that the snapshot ioctl would otherwise do while the
 * writers are frozen: snapshot creation flushes the subvolume's dirty data. */
static vss_hresult btrfs_end_prepare(void *state, struct vss_provider_snapshot *snaps, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                _cleanup_close_ int fd = open(snaps[i].volume, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

                if (fd >= 0)
                        (void) syncfs(fd);
        }
        return VSS_S_OK;
}

static vss_hresult btrfs_noop(void *state, struct vss_provider_snapshot *snaps, size_t n)
{
        return VSS_S_OK;
}

/* Deletes the shadow of 'snap' if it exists; used to roll back. */
static int delete_if_present(const struct vss_provider_snapshot *snap)
{
        _cleanup_close_ int volfd = -EBADF, dirfd = -EBADF, fd = -EBADF;
        char name[VSS_ID_STRING_MAX];

        volfd = open(snap->volume, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (volfd < 0)
                return -errno;
        dirfd = openat(volfd, SHADOW_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dirfd < 0)
                return errno == ENOENT ? 0 : -errno;
        shadow_name(&snap->snapshot_id, name);
        fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? 0 : -errno;
        if (btrfs_util_is_subvolume_fd(fd) != BTRFS_UTIL_OK)
                return -ENOTTY;
        if (btrfs_util_delete_subvolume_fd(dirfd, name, 0) != BTRFS_UTIL_OK)
                return -errno;
        return 1;
}

static vss_hresult btrfs_commit(void *state, struct vss_provider_snapshot *snaps, size_t n)
{
        struct btrfs_provider *p = state;
        _cleanup_free_ int *fds = NULL;
        vss_hresult hr = VSS_S_OK;
        size_t made = 0;

        if (n == 0)
                return VSS_S_OK;
        fds = malloc(sizeof(int) * 2 * n);
        if (!fds)
                return VSS_E_OUTOFMEMORY;
        for (size_t i = 0; i < 2 * n; i++)
                fds[i] = -EBADF;

        /* Open everything first so that the snapshots themselves follow each
         * other as closely as possible. */
        for (size_t i = 0; i < n; i++) {
                hr = open_volume(p, snaps[i].volume, snaps[i].fstype, &fds[2 * i]);
                if (VSS_FAILED(hr))
                        goto out;
                hr = open_shadow_dir(p, fds[2 * i], snaps[i].volume, true, &fds[2 * i + 1]);
                if (VSS_FAILED(hr))
                        goto out;
        }

        for (made = 0; made < n; made++) {
                char name[VSS_ID_STRING_MAX], path[VSS_PATH_MAX];
                enum btrfs_util_error e;

                shadow_name(&snaps[made].snapshot_id, name);
                e = btrfs_util_create_snapshot_fd2(fds[2 * made], fds[2 * made + 1], name,
                                                   BTRFS_UTIL_CREATE_SNAPSHOT_READ_ONLY, NULL, NULL);
                if (e != BTRFS_UTIL_OK) {
                        (void) shadow_path(&snaps[made], path, sizeof(path));
                        hr = fail_btrfs(p, e, "cannot create read-only snapshot", path);
                        goto out;
                }
        }

        for (size_t i = 0; i < n; i++) {
                char name[VSS_ID_STRING_MAX], path[VSS_PATH_MAX];
                _cleanup_close_ int fd = -EBADF;
                enum btrfs_util_error e;
                uint64_t id;
                json_t *data;
                size_t len;
                char *s;

                shadow_name(&snaps[i].snapshot_id, name);
                (void) shadow_path(&snaps[i], path, sizeof(path));
                fd = openat(fds[2 * i + 1], name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0) {
                        hr = fail_errno(p, errno, "cannot open new snapshot", path);
                        goto out;
                }
                e = btrfs_util_subvolume_id_fd(fd, &id);
                if (e != BTRFS_UTIL_OK) {
                        hr = fail_btrfs(p, e, "cannot read the subvolume id of", path);
                        goto out;
                }
                data = json_pack("{s:s, s:I}", "path", path, "subvol_id", (json_int_t)id);
                s = data ? json_dumps(data, JSON_COMPACT) : NULL;
                json_decref(data);
                if (!s) {
                        hr = VSS_E_OUTOFMEMORY;
                        goto out;
                }
                len = strlen(s);
                if (len >= sizeof(snaps[i].provider_data)) {
                        free(s);
                        hr = fail(p, VSS_E_PROVIDER_VETO, "btrfs provider: path %s too long to record", path);
                        goto out;
                }
                memcpy(snaps[i].provider_data, s, len + 1);
                free(s);
                snprintf(snaps[i].device, sizeof(snaps[i].device), "%s", path);
                snaps[i].attributes |= VSS_VOLSNAP_ATTR_DIFFERENTIAL;
        }

out:
        if (VSS_FAILED(hr))
                /* All or nothing: vssd only calls abort after a failed commit
                 * if it wants to, so undo our own partial work here. */
                for (size_t i = 0; i < made; i++)
                        (void) delete_if_present(&snaps[i]);
        for (size_t i = 0; i < 2 * n; i++)
                closep(&fds[i]);
        return hr;
}

static vss_hresult btrfs_abort(void *state, struct vss_provider_snapshot *snaps, size_t n)
{
        struct btrfs_provider *p = state;
        vss_hresult hr = VSS_S_OK;

        /* The path follows from the volume and the shadow id, so this works
         * whether or not commit got to fill in device/provider_data. */
        for (size_t i = 0; i < n; i++) {
                char path[VSS_PATH_MAX];
                int r;

                r = delete_if_present(&snaps[i]);
                if (r < 0 && VSS_SUCCEEDED(hr)) {
                        (void) shadow_path(&snaps[i], path, sizeof(path));
                        hr = fail_errno(p, -r, "cannot delete aborted snapshot", path);
                }
                if (r > 0) {
                        snaps[i].device[0] = '\0';
                        snaps[i].provider_data[0] = '\0';
                }
        }
        return hr;
}

static vss_hresult btrfs_delete_snapshot(void *state, const struct vss_provider_snapshot *snap)
{
        struct btrfs_provider *p = state;
        _cleanup_close_ int dirfd = -EBADF, fd = -EBADF;
        char path[VSS_PATH_MAX], name[VSS_ID_STRING_MAX];
        enum btrfs_util_error e;
        vss_hresult hr;

        hr = open_shadow(p, snap, &dirfd, &fd);
        if (VSS_FAILED(hr))
                return hr;
        closep(&fd);
        fd = -EBADF;

        shadow_name(&snap->snapshot_id, name);
        (void) shadow_path(snap, path, sizeof(path));
        e = btrfs_util_delete_subvolume_fd(dirfd, name, 0);
        if (e != BTRFS_UTIL_OK)
                return fail_btrfs(p, e, "cannot delete shadow copy subvolume", path);
        return VSS_S_OK;
}

static vss_hresult btrfs_exists(void *state, const struct vss_provider_snapshot *snap, bool *ret_exists)
{
        struct btrfs_provider *p = state;
        _cleanup_close_ int fd = -EBADF;
        vss_hresult hr;

        hr = open_shadow(p, snap, NULL, &fd);
        if (hr == VSS_E_OBJECT_NOT_FOUND) {
                *ret_exists = false;
                return VSS_S_OK;
        }
        if (VSS_FAILED(hr))
                return hr;
        *ret_exists = true;
        return VSS_S_OK;
}

static vss_hresult btrfs_expose(void *state, const struct vss_provider_snapshot *snap, const char *path)
{
        struct btrfs_provider *p = state;
        _cleanup_close_ int fd = -EBADF;
        char src[VSS_PATH_MAX];
        struct stat st;
        vss_hresult hr;

        if (!path || path[0] != '/')
                return fail(p, VSS_E_INVALIDARG, "btrfs provider: expose path '%s' is not absolute",
                            path ? path : "");
        if (stat(path, &st) < 0)
                return fail_errno(p, errno, "cannot expose at", path);
        if (!S_ISDIR(st.st_mode))
                return fail(p, VSS_E_INVALIDARG, "btrfs provider: cannot expose at %s: not a directory", path);

        hr = open_shadow(p, snap, NULL, &fd);
        if (VSS_FAILED(hr))
                return hr;
        /* Bind the descriptor we checked, not a path that could change. */
        snprintf(src, sizeof(src), "/proc/self/fd/%d", fd);
        if (mount(src, path, NULL, MS_BIND, NULL) < 0)
                return fail_errno(p, errno, "cannot bind-mount shadow copy at", path);
        if (mount(NULL, path, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) < 0) {
                int err = errno;

                (void) umount2(path, MNT_DETACH);
                return fail_errno(p, err, "cannot make the shadow copy mount read-only at", path);
        }
        return VSS_S_OK;
}

static vss_hresult btrfs_unexpose(void *state, const struct vss_provider_snapshot *snap, const char *path)
{
        struct btrfs_provider *p = state;
        _cleanup_close_ int fd = -EBADF;
        struct stat st, sst;
        vss_hresult hr;

        if (!path || path[0] != '/')
                return fail(p, VSS_E_INVALIDARG, "btrfs provider: unexpose path '%s' is not absolute",
                            path ? path : "");
        if (stat(path, &st) < 0)
                return fail_errno(p, errno, "cannot unexpose", path);

        /* Only unmount what is ours: a bind mount of the snapshot shows the
         * snapshot's own device number at its root. */
        hr = open_shadow(p, snap, NULL, &fd);
        if (VSS_SUCCEEDED(hr) && fstat(fd, &sst) == 0 && (st.st_dev != sst.st_dev || st.st_ino != sst.st_ino))
                return fail(p, VSS_E_OBJECT_NOT_FOUND, "btrfs provider: %s is not an exposure of shadow copy %s",
                            path, snap->device);

        if (umount2(path, UMOUNT_NOFOLLOW) < 0) {
                if (errno == EBUSY) {
                        if (umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW) == 0)
                                return VSS_S_OK;
                }
                if (errno == EINVAL)
                        return fail(p, VSS_E_OBJECT_NOT_FOUND, "btrfs provider: %s is not a mount point", path);
                return fail_errno(p, errno, "cannot unmount", path);
        }
        return VSS_S_OK;
}

/* ---- revert ---- */

/*
 * The volume is the subvolume mounted at snap->volume (mount -o subvol=PATH).
 * A revert replaces that subvolume by a writable snapshot of the shadow copy,
 * in an order that loses nothing whatever fails:
 *
 *   1. the writable snapshot N of the shadow, next to the subvolume S (in the
 *      top-level tree, mounted for the purpose in a private directory);
 *   2. umount of the volume: busy (open files, working directories, mounts
 *      below it) is VSS_E_VOLUME_IN_USE, and N is deleted again;
 *   3. the shadow storage subvolume S/.openvss moves into N (replacing the
 *      empty placeholder a snapshot has for a nested subvolume), so the shadow
 *      copies keep their paths and subvolume ids;
 *   4. N and S swap names (RENAME_EXCHANGE), so the path the volume is
 *      mounted by (and fstab's subvol=) names the reverted content;
 *   5. mount at the same mount point with the same per-mount flags;
 *   6. the old subvolume is deleted.
 *
 * A failure in 3-5 undoes the earlier steps and mounts S again.  Before step 2
 * a journal (STATE_DIR/btrfs-revert.json) names everything: if vssd dies
 * between 2 and 6, the provider's init finishes the job when vssd starts again
 * (recover_revert()): after the swap it completes the revert, before it rolls
 * it back, and either way the volume is mounted again.  The
 * top-level subvolume (id 5) cannot be renamed or replaced, so a volume that
 * is the whole filesystem is VSS_E_VOLUME_NOT_SUPPORTED, as is a subvolume
 * that is not itself a mount point (nothing could be unmounted to make sure
 * no one still works in the old content).
 */

#define BTRFS_TOP_LEVEL_ID 5
#define REVERT_JOURNAL "btrfs-revert.json"
#define REVERT_TOP_PREFIX "btrfs-revert."

struct revert_journal {
        char volume[VSS_PATH_MAX], device[VSS_PATH_MAX], parent[VSS_PATH_MAX];
        char name[NAME_MAX + 1], temp[NAME_MAX + 1];
        uint64_t old_id, new_id;
        unsigned long flags;
        json_t *newer;                  /* names in .openvss of the shadow copies newer than the target */
};

static int journal_path(struct btrfs_provider *p, char *buf, size_t size)
{
        return join_path(buf, size, p->ctx->state_dir, REVERT_JOURNAL);
}

static int journal_write(struct btrfs_provider *p, const struct revert_journal *jn)
{
        _cleanup_free_ char *text = NULL;
        char path[VSS_PATH_MAX];
        json_t *o;

        if (journal_path(p, path, sizeof(path)) < 0)
                return -ENAMETOOLONG;
        o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:O}", "volume", jn->volume, "device", jn->device,
                      "parent", jn->parent, "name", jn->name, "temp", jn->temp, "old_id", (json_int_t)jn->old_id,
                      "new_id", (json_int_t)jn->new_id, "flags", (json_int_t)jn->flags, "newer", jn->newer);
        text = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (!text)
                return -ENOMEM;
        return write_file_atomic(path, text, strlen(text));
}

static void journal_remove(struct btrfs_provider *p)
{
        char path[VSS_PATH_MAX];

        if (journal_path(p, path, sizeof(path)) == 0)
                (void) unlink(path);
}

static int journal_read(struct btrfs_provider *p, struct revert_journal *jn)
{
        const char *f[5] = { "volume", "device", "parent", "name", "temp" };
        char *dst[5] = { jn->volume, jn->device, jn->parent, jn->name, jn->temp };
        size_t len[5] = { sizeof(jn->volume), sizeof(jn->device), sizeof(jn->parent), sizeof(jn->name),
                          sizeof(jn->temp) };
        char path[VSS_PATH_MAX];
        json_error_t jerr;
        json_t *o;
        int r = 0;

        if (journal_path(p, path, sizeof(path)) < 0)
                return -ENAMETOOLONG;
        o = json_load_file(path, 0, &jerr);
        if (!o)
                return access(path, F_OK) == 0 ? -EBADMSG : -ENOENT;
        *jn = (struct revert_journal){ 0 };
        for (size_t i = 0; i < ARRAY_SIZE(f); i++) {
                json_t *x = json_object_get(o, f[i]);

                if (!json_is_string(x) || (size_t)snprintf(dst[i], len[i], "%s", json_string_value(x)) >= len[i])
                        r = -EBADMSG;
        }
        if (!json_is_integer(json_object_get(o, "old_id")) || !json_is_integer(json_object_get(o, "new_id")) ||
            !json_is_integer(json_object_get(o, "flags")))
                r = -EBADMSG;
        else {
                jn->old_id = (uint64_t)json_integer_value(json_object_get(o, "old_id"));
                jn->new_id = (uint64_t)json_integer_value(json_object_get(o, "new_id"));
                jn->flags = (unsigned long)json_integer_value(json_object_get(o, "flags"));
        }
        jn->newer = json_incref(json_object_get(o, "newer"));
        if (!json_is_array(jn->newer))
                r = -EBADMSG;
        json_decref(o);
        /* Names, never paths: the journal must not lead us out of the parent directory. */
        if (r == 0 && (strchr(jn->name, '/') || strchr(jn->temp, '/') || !jn->name[0] || !jn->temp[0] ||
                       jn->volume[0] != '/'))
                r = -EBADMSG;
        for (size_t i = 0; r == 0 && i < json_array_size(jn->newer); i++) {
                const char *s = json_string_value(json_array_get(jn->newer, i));

                if (!s || !s[0] || s[0] == '.' || strchr(s, '/'))
                        r = -EBADMSG;
        }
        if (r < 0) {
                json_decref(jn->newer);
                jn->newer = NULL;
        }
        return r;
}

static unsigned long mount_flags_of(const char *path)
{
        static const struct {
                unsigned long st, ms;
        } map[] = {
                { ST_RDONLY, MS_RDONLY },     { ST_NOSUID, MS_NOSUID },         { ST_NODEV, MS_NODEV },
                { ST_NOEXEC, MS_NOEXEC },     { ST_NOATIME, MS_NOATIME },       { ST_NODIRATIME, MS_NODIRATIME },
                { ST_RELATIME, MS_RELATIME },
        };
        struct statvfs sv;
        unsigned long f = 0;

        if (statvfs(path, &sv) < 0)
                return 0;
        for (size_t i = 0; i < ARRAY_SIZE(map); i++)
                if (sv.f_flag & map[i].st)
                        f |= map[i].ms;
        return f;
}

/* Moves the shadow storage subvolume from one subvolume root to another, over the placeholder there. */
static int move_shadow_dir(int fromfd, int tofd)
{
        if (unlinkat(tofd, SHADOW_DIR, AT_REMOVEDIR) < 0 && errno != ENOENT)
                return -errno;
        if (renameat(fromfd, SHADOW_DIR, tofd, SHADOW_DIR) < 0)
                return -errno;
        return 0;
}

static int swap_names(int dirfd, const char *a, const char *b)
{
        char tmp[NAME_MAX + 1];

        if (renameat2(dirfd, a, dirfd, b, RENAME_EXCHANGE) == 0)
                return 0;
        if (errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)
                return -errno;
        /* No RENAME_EXCHANGE: three renames through a third name. */
        if (snprintf(tmp, sizeof(tmp), "%s.x", b) >= (int)sizeof(tmp))
                return -ENAMETOOLONG;
        if (renameat(dirfd, a, dirfd, tmp) < 0)
                return -errno;
        if (renameat(dirfd, b, dirfd, a) < 0) {
                int r = -errno;

                (void) renameat(dirfd, tmp, dirfd, a);
                return r;
        }
        return renameat(dirfd, tmp, dirfd, b) < 0 ? -errno : 0;
}

static vss_hresult mount_top(struct btrfs_provider *p, const char *device, char *top, size_t size)
{
        if (!p->ctx->state_dir)
                return fail(p, VSS_E_VOLUME_NOT_SUPPORTED, "btrfs provider: a revert needs a state directory");
        if (join_path(top, size, p->ctx->state_dir, REVERT_TOP_PREFIX "XXXXXX") < 0)
                return fail_errno(p, ENAMETOOLONG, "path too long:", p->ctx->state_dir);
        if (!mkdtemp(top))
                return fail_errno(p, errno, "cannot make a directory in", p->ctx->state_dir);
        if (mount(device, top, "btrfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "subvolid=5") < 0) {
                int err = errno;

                (void) rmdir(top);
                return fail_errno(p, err, "cannot mount the top-level subvolume of", device);
        }
        return VSS_S_OK;
}

static uint64_t subvol_id_at(int dirfd, const char *name)
{
        _cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        uint64_t id = 0;

        if (fd < 0 || btrfs_util_subvolume_id_fd(fd, &id) != BTRFS_UTIL_OK)
                return 0;
        return id;
}

static bool is_subvolume_at(int dirfd, const char *name)
{
        _cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

        return fd >= 0 && btrfs_util_is_subvolume_fd(fd) == BTRFS_UTIL_OK;
}

/* The names of the shadow copies of the volume (subvolume root 'volfd') newer than 'snap': a
 * subvolume id is never reused, and grows with each snapshot. */
static json_t *newer_shadows(int volfd, const struct vss_provider_snapshot *snap)
{
        _cleanup_(closedirp) DIR *d = NULL;
        json_t *a = json_array();
        struct dirent *de;
        uint64_t target = 0;
        int fd;

        if (!a)
                return NULL;
        fd = openat(volfd, SHADOW_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return a;
        d = fdopendir(fd);
        if (!d) {
                close(fd);
                return a;
        }
        {
                char name[VSS_ID_STRING_MAX];

                shadow_name(&snap->snapshot_id, name);
                target = subvol_id_at(dirfd(d), name);
        }
        while (target && (de = readdir(d)))
                if (de->d_name[0] != '.' && subvol_id_at(dirfd(d), de->d_name) > target)
                        json_array_append_new(a, json_string(de->d_name));
        return a;
}

static void revert_log(struct btrfs_provider *p, const char *level, vss_hresult hr, const char *fmt, ...)
        _printf_(4, 5);
static void revert_log(struct btrfs_provider *p, const char *level, vss_hresult hr, const char *fmt, ...)
{
        char msg[VSS_PATH_MAX * 2];
        va_list ap;

        if (!p->ctx->log_event)
                return;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        p->ctx->log_event(p->ctx->log_userdata, level, hr, msg);
}

/*
 * At start-up: a journal left by a vssd that died in a revert.  The subvolume
 * under the volume's name decides: the new one (swapped) means the revert is
 * completed, the old one that it is rolled back.  The one kept gets the shadow
 * storage (wherever step 3 left it) and is mounted at the volume if it is not,
 * the other one is deleted.  Then the leftover top-level mounts go.
 */
static void recover_revert(struct btrfs_provider *p)
{
        _cleanup_close_ int topfd = -EBADF, pdfd = -EBADF, keepfd = -EBADF, otherfd = -EBADF, volfd = -EBADF;
        _cleanup_(closedirp) DIR *d = NULL;
        struct revert_journal jn;
        char top[VSS_PATH_MAX], opts[64];
        uint64_t at_name, keep_id, mounted_id = 0;
        bool swapped, mounted;
        struct statx stx;
        struct dirent *de;
        int r;

        if (!p->ctx->state_dir)
                return;
        r = journal_read(p, &jn);
        if (r == -EBADMSG) {
                revert_log(p, "error", VSS_E_UNEXPECTED, "btrfs provider: the revert journal in %s is damaged: an "
                           "interrupted revert cannot be finished (look for .NAME.openvss-revert subvolumes)",
                           p->ctx->state_dir);
                journal_remove(p);
        }
        if (r == 0 && VSS_FAILED(mount_top(p, jn.device, top, sizeof(top))))
                revert_log(p, "error", VSS_E_UNEXPECTED, "btrfs provider: cannot finish the interrupted revert of %s "
                           "(journal %s/" REVERT_JOURNAL "): %s", jn.volume, p->ctx->state_dir, p->ctx->error);
        else if (r == 0) {
                topfd = open(top, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                pdfd = topfd < 0 ? -EBADF
                                 : openat(topfd, jn.parent[0] ? jn.parent : ".", O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
                                          O_CLOEXEC);
                at_name = pdfd < 0 ? 0 : subvol_id_at(pdfd, jn.name);
                swapped = at_name == jn.new_id;
                keep_id = swapped ? jn.new_id : jn.old_id;
                if (at_name != jn.new_id && at_name != jn.old_id) {
                        revert_log(p, "error", VSS_E_UNEXPECTED, "btrfs provider: cannot finish the interrupted "
                                   "revert of %s: %s%s%s is subvolume %llu, neither the old (%llu) nor the new "
                                   "(%llu) one", jn.volume, jn.parent, jn.parent[0] ? "/" : "", jn.name,
                                   (unsigned long long)at_name, (unsigned long long)jn.old_id,
                                   (unsigned long long)jn.new_id);
                } else {
                        keepfd = openat(pdfd, jn.name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        otherfd = openat(pdfd, jn.temp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        /* The shadow storage belongs in the one kept. */
                        if (keepfd >= 0 && otherfd >= 0 && !is_subvolume_at(keepfd, SHADOW_DIR) &&
                            is_subvolume_at(otherfd, SHADOW_DIR))
                                (void) move_shadow_dir(otherfd, keepfd);
                        closep(&otherfd);
                        otherfd = -EBADF;
                        volfd = open(jn.volume, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                        mounted = volfd >= 0 && statx(volfd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &stx) == 0 &&
                                  (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT) &&
                                  btrfs_util_subvolume_id_fd(volfd, &mounted_id) == BTRFS_UTIL_OK &&
                                  mounted_id == keep_id;
                        closep(&volfd);
                        volfd = -EBADF;
                        snprintf(opts, sizeof(opts), "subvolid=%llu", (unsigned long long)keep_id);
                        if (!mounted && mount(jn.device, jn.volume, "btrfs", jn.flags, opts) < 0)
                                revert_log(p, "error", VSS_E_REVERT_VOLUME_LOST, "btrfs provider: after an "
                                           "interrupted revert, %s could not be mounted again (%s, %s): %s",
                                           jn.volume, jn.device, opts, strerror(errno));
                        else {
                                /* Completed: the newer shadow copies go, as vssd would have deleted them. */
                                for (size_t i = 0; swapped && keepfd >= 0 && i < json_array_size(jn.newer); i++) {
                                        _cleanup_close_ int sfd = openat(keepfd, SHADOW_DIR, O_RDONLY |
                                                                         O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                                        const char *n = json_string_value(json_array_get(jn.newer, i));

                                        if (sfd >= 0 && is_subvolume_at(sfd, n))
                                                (void) btrfs_util_delete_subvolume_fd(sfd, n, 0);
                                }
                                if (btrfs_util_delete_subvolume_fd(pdfd, jn.temp, 0) != BTRFS_UTIL_OK &&
                                    errno != ENOENT)
                                        revert_log(p, "warning", VSS_S_OK, "btrfs provider: cannot delete %s%s%s "
                                                   "after an interrupted revert: %s", jn.parent,
                                                   jn.parent[0] ? "/" : "", jn.temp, strerror(errno));
                                revert_log(p, "warning", VSS_S_OK, "btrfs provider: vssd stopped in a revert of "
                                           "%s; %s", jn.volume, swapped ? "it was completed: the volume holds "
                                           "the shadow copy's content" : "it was rolled back: the volume holds "
                                           "what it held before");
                        }
                        journal_remove(p);
                }
        }
        if (r == 0)
                json_decref(jn.newer);
        closep(&keepfd);
        closep(&pdfd);
        closep(&topfd);
        keepfd = pdfd = topfd = -EBADF;
        /* Top-level mounts of reverts that never ended (ours just now included). */
        d = opendir(p->ctx->state_dir);
        while (d && (de = readdir(d)))
                if (strncmp(de->d_name, REVERT_TOP_PREFIX, strlen(REVERT_TOP_PREFIX)) == 0 &&
                    !strstr(de->d_name, ".json")) {
                        char path[VSS_PATH_MAX];

                        if (join_path(path, sizeof(path), p->ctx->state_dir, de->d_name) < 0)
                                continue;
                        (void) umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW);
                        (void) rmdir(path);
                }
}

static vss_hresult btrfs_revert(void *state, struct vss_provider_snapshot *snap)
{
        struct btrfs_provider *p = state;
        _cleanup_close_ int volfd = -EBADF, shfd = -EBADF, topfd = -EBADF, pdfd = -EBADF, oldfd = -EBADF,
                            newfd = -EBADF;
        _cleanup_free_ char *rel = NULL;
        char top[VSS_PATH_MAX], opts[VSS_PATH_MAX + 16], newname[NAME_MAX + 1], msg[VSS_PATH_MAX * 2];
        const char *name, *volume = snap->volume;
        bool top_mounted = false, unmounted = false, moved = false, swapped = false, journaled = false;
        struct revert_journal jn;
        unsigned long flags;
        enum btrfs_util_error e;
        uint64_t vid = 0, oid = 0;
        struct statx stx;
        vss_hresult hr;
        int r;

        hr = open_shadow(p, snap, NULL, &shfd);
        if (VSS_FAILED(hr))
                return hr;
        hr = open_volume(p, volume, snap->fstype, &volfd);
        if (VSS_FAILED(hr))
                return hr;
        if (statx(volfd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &stx) < 0)
                return fail_errno(p, errno, "cannot stat", volume);
        if ((stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) && !(stx.stx_attributes & STATX_ATTR_MOUNT_ROOT))
                return fail(p, VSS_E_VOLUME_NOT_SUPPORTED,
                            "btrfs provider: %s is a subvolume but not a mount point: only a subvolume mounted on "
                            "its own (mount -o subvol=PATH) can be reverted", volume);
        e = btrfs_util_subvolume_id_fd(volfd, &vid);
        if (e != BTRFS_UTIL_OK)
                return fail_btrfs(p, e, "cannot read the subvolume id of", volume);
        if (vid == BTRFS_TOP_LEVEL_ID)
                return fail(p, VSS_E_VOLUME_NOT_SUPPORTED,
                            "btrfs provider: %s is the top-level subvolume of its filesystem, which cannot be "
                            "replaced: revert works on a subvolume mounted with -o subvol=PATH", volume);
        if (!snap->volume_device[0])
                return fail(p, VSS_E_VOLUME_NOT_SUPPORTED, "btrfs provider: the device of %s is not known", volume);
        e = btrfs_util_subvolume_path_fd(volfd, vid, &rel);
        if (e != BTRFS_UTIL_OK)
                return fail_btrfs(p, e, "cannot find the path of the subvolume mounted at", volume);
        flags = mount_flags_of(volume);

        /* The subvolume's parent directory lives in the top-level tree. */
        hr = mount_top(p, snap->volume_device, top, sizeof(top));
        if (VSS_FAILED(hr))
                return hr;
        top_mounted = true;
        topfd = open(top, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (topfd < 0) {
                hr = fail_errno(p, errno, "cannot open", top);
                goto out;
        }
        name = strrchr(rel, '/');
        if (name) {
                rel[name - rel] = 0;
                name++;
                pdfd = openat(topfd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        } else {
                name = rel;
                pdfd = fcntl(topfd, F_DUPFD_CLOEXEC, 3);
        }
        if (pdfd < 0) {
                hr = fail_errno(p, errno, "cannot open the parent directory of the subvolume of", volume);
                goto out;
        }
        oldfd = openat(pdfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (oldfd < 0 || btrfs_util_subvolume_id_fd(oldfd, &oid) != BTRFS_UTIL_OK || oid != vid) {
                hr = fail(p, VSS_E_PROVIDER_VETO, "btrfs provider: the subvolume path %s%s%s does not name the "
                          "subvolume %llu mounted at %s", rel, name == rel ? "" : "/", name, (unsigned long long)vid,
                          volume);
                goto out;
        }
        if (snprintf(newname, sizeof(newname), ".%s.openvss-revert", name) >= (int)sizeof(newname)) {
                hr = fail_errno(p, ENAMETOOLONG, "subvolume name too long:", name);
                goto out;
        }

        /* 1. */
        e = btrfs_util_create_snapshot_fd2(shfd, pdfd, newname, 0, NULL, NULL);
        if (e != BTRFS_UTIL_OK) {
                hr = fail_btrfs(p, e, "cannot create a writable snapshot of shadow copy", snap->device);
                goto out;
        }
        newfd = openat(pdfd, newname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (newfd < 0) {
                hr = fail_errno(p, errno, "cannot open the new snapshot", newname);
                goto undo;
        }

        jn = (struct revert_journal){ .old_id = vid, .flags = flags };
        if (btrfs_util_subvolume_id_fd(newfd, &jn.new_id) != BTRFS_UTIL_OK) {
                hr = fail_errno(p, errno, "cannot read the subvolume id of", newname);
                goto undo;
        }
        snprintf(jn.volume, sizeof(jn.volume), "%s", volume);
        snprintf(jn.device, sizeof(jn.device), "%s", snap->volume_device);
        snprintf(jn.parent, sizeof(jn.parent), "%s", name == rel ? "" : rel);
        snprintf(jn.name, sizeof(jn.name), "%s", name);
        snprintf(jn.temp, sizeof(jn.temp), "%s", newname);
        jn.newer = newer_shadows(oldfd, snap);
        r = jn.newer ? journal_write(p, &jn) : -ENOMEM;
        json_decref(jn.newer);
        jn.newer = NULL;
        if (r < 0) {
                hr = fail_errno(p, -r, "cannot write the revert journal in", p->ctx->state_dir);
                goto undo;
        }
        journaled = true;

        /* 2.  Nothing of ours may keep the volume busy. */
        closep(&shfd);
        closep(&volfd);
        shfd = volfd = -EBADF;
        if (umount2(volume, UMOUNT_NOFOLLOW) < 0) {
                hr = errno == EBUSY ? fail(p, VSS_E_VOLUME_IN_USE,
                                           "btrfs provider: %s is in use (open files, working directories or "
                                           "mounts below it): close them and retry; nothing was changed", volume)
                                    : fail_errno(p, errno, "cannot unmount", volume);
                goto undo;
        }
        unmounted = true;

        /* 3. */
        r = move_shadow_dir(oldfd, newfd);
        if (r < 0) {
                hr = fail_errno(p, -r, "cannot move the shadow storage into the reverted subvolume of", volume);
                goto undo;
        }
        moved = true;

        /* 4. */
        r = swap_names(pdfd, name, newname);
        if (r < 0) {
                hr = fail_errno(p, -r, "cannot put the reverted subvolume in place of", name);
                goto undo;
        }
        swapped = true;

        /* Test hook: the revert waits after the swap, with the volume unmounted, so that a test can
         * kill vssd there (recover_revert() must complete the revert when vssd starts again). */
        (void) debug_sleep_from_env("VSSD_DEBUG_REVERT_OFFLINE_MS");

        /* 5. */
        snprintf(opts, sizeof(opts), "subvolid=%llu", (unsigned long long)jn.new_id);
        if (mount(snap->volume_device, volume, "btrfs", flags, opts) < 0) {
                hr = fail_errno(p, errno, "cannot mount the reverted subvolume at", volume);
                goto undo;
        }

        /* 6.  The old content goes; if it cannot (nested subvolumes of the user's), it stays, hidden. */
        e = btrfs_util_delete_subvolume_fd(pdfd, newname, 0);
        if (e != BTRFS_UTIL_OK && p->ctx->log_event) {
                snprintf(msg, sizeof(msg), "btrfs provider: %s was reverted, but its old subvolume %s/%s could not "
                         "be deleted (%s): delete it by hand", volume, name == rel ? "" : rel, newname,
                         strerror(errno));
                p->ctx->log_event(p->ctx->log_userdata, "warning", VSS_S_OK, msg);
        }
        journal_remove(p);
        hr = VSS_S_OK;
        goto out;

undo:
        if (swapped)
                (void) swap_names(pdfd, name, newname);
        if (moved)
                (void) move_shadow_dir(newfd, oldfd);
        if (unmounted) {
                snprintf(opts, sizeof(opts), "subvolid=%llu", (unsigned long long)vid);
                if (mount(snap->volume_device, volume, "btrfs", flags, opts) < 0) {
                        /* The journal stays: the next start of vssd mounts it (recover_revert()). */
                        journaled = false;
                        if (p->ctx->log_event) {
                                snprintf(msg, sizeof(msg), "btrfs provider: the revert of %s failed and the volume "
                                         "could not be mounted again: %s", volume, strerror(errno));
                                p->ctx->log_event(p->ctx->log_userdata, "error", VSS_E_REVERT_VOLUME_LOST, msg);
                        }
                }
        }
        closep(&newfd);
        newfd = -EBADF;
        (void) btrfs_util_delete_subvolume_fd(pdfd, newname, 0);
        if (journaled)
                journal_remove(p);
out:
        closep(&oldfd);
        closep(&newfd);
        closep(&pdfd);
        closep(&topfd);
        oldfd = newfd = pdfd = topfd = -EBADF;
        if (top_mounted) {
                (void) umount2(top, MNT_DETACH);
                (void) rmdir(top);
        }
        return hr;
}

const struct vss_provider_ops vss_provider_btrfs = {
        .name = "openvss btrfs provider",
        .provider_id = "{2f766f55-e365-48e4-a471-956372f96e2d}",
        .type = VSS_PROV_SOFTWARE,
        .version = "1.0.0",
        .needs_freeze = false,
        .init = btrfs_init,
        .done = btrfs_done,
        .is_volume_supported = btrfs_is_volume_supported,
        .begin_prepare = btrfs_begin_prepare,
        .end_prepare = btrfs_end_prepare,
        .pre_commit = btrfs_noop,
        .commit = btrfs_commit,
        .post_commit = btrfs_noop,
        .abort = btrfs_abort,
        .delete_snapshot = btrfs_delete_snapshot,
        .expose = btrfs_expose,
        .unexpose = btrfs_unexpose,
        .exists = btrfs_exists,
        .revert = btrfs_revert,
};
