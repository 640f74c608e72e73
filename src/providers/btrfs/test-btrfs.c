/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Tests of the btrfs provider against a real btrfs: main() makes a small
 * file system on a loop device under /tmp/btrfs-test-*, every test drives the
 * provider ops on it, and the fixture is torn down at the end whatever the
 * outcome.  Needs root, losetup and mkfs.btrfs; exits 77 (skip) without them.
 */

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <cmocka.h>
#include <btrfsutil.h>

#include "basic/macro.h"
#include "vss/provider.h"

#define PATHBUF (2 * VSS_PATH_MAX)

static char tmpdir[64];
static char image[128];
static char mnt[128];
static char loopdev[64];
static bool mounted;

static struct vss_provider_ctx ctx;
static void *state;
static const struct vss_provider_ops *ops = &vss_provider_btrfs;

_printf_(1, 2)
static int run(const char *fmt, ...)
{
        char cmd[1024];
        va_list ap;
        int r;

        va_start(ap, fmt);
        vsnprintf(cmd, sizeof(cmd), fmt, ap);
        va_end(ap);
        r = system(cmd);
        return r == 0 ? 0 : -1;
}

static void teardown_fs(void)
{
        if (mounted) {
                (void) run("umount -R -l %s 2>/dev/null", mnt);
                mounted = false;
        }
        if (loopdev[0]) {
                (void) run("losetup -d %s 2>/dev/null", loopdev);
                loopdev[0] = '\0';
        }
        if (tmpdir[0]) {
                char exposed[128];

                snprintf(exposed, sizeof(exposed), "%s/exposed", tmpdir);
                (void) rmdir(exposed);
                (void) unlink(image);
                (void) rmdir(mnt);
                (void) rmdir(tmpdir);
        }
}

/* Returns 0, or 77 with a message when the environment cannot run the test. */
static int setup_fs(void)
{
        FILE *f;

        if (geteuid() != 0) {
                fprintf(stderr, "SKIP: test-btrfs needs root (loop devices, mkfs.btrfs, mount)\n");
                return 77;
        }
        if (run("command -v losetup >/dev/null && command -v mkfs.btrfs >/dev/null") < 0) {
                fprintf(stderr, "SKIP: losetup or mkfs.btrfs not installed\n");
                return 77;
        }
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/btrfs-test-XXXXXX");
        if (!mkdtemp(tmpdir)) {
                fprintf(stderr, "SKIP: mkdtemp: %s\n", strerror(errno));
                tmpdir[0] = '\0';
                return 77;
        }
        snprintf(image, sizeof(image), "%s/img", tmpdir);
        snprintf(mnt, sizeof(mnt), "%s/mnt", tmpdir);
        if (mkdir(mnt, 0755) < 0 || run("truncate -s 320M %s", image) < 0) {
                fprintf(stderr, "SKIP: cannot create %s\n", image);
                return 77;
        }
        {
                char cmd[256];
                snprintf(cmd, sizeof(cmd), "losetup -f --show %s 2>/dev/null", image);
                f = popen(cmd, "r");
                if (!f || !fgets(loopdev, sizeof(loopdev), f)) {
                        if (f)
                                pclose(f);
                        loopdev[0] = '\0';
                        fprintf(stderr, "SKIP: no loop device available\n");
                        return 77;
                }
                pclose(f);
                loopdev[strcspn(loopdev, "\n")] = '\0';
        }
        if (run("mkfs.btrfs -q -f %s >/dev/null 2>&1", loopdev) < 0) {
                fprintf(stderr, "SKIP: mkfs.btrfs %s failed\n", loopdev);
                return 77;
        }
        if (run("mount -t btrfs %s %s 2>/dev/null", loopdev, mnt) < 0) {
                fprintf(stderr, "SKIP: cannot mount btrfs (no btrfs in this kernel?)\n");
                return 77;
        }
        mounted = true;
        return 0;
}

static void write_file(const char *dir, const char *name, const char *text)
{
        char path[PATHBUF];
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        f = fopen(path, "we");
        assert_non_null(f);
        fputs(text, f);
        assert_int_equal(fclose(f), 0);
}

/* Returns the file's content, or "" when it is missing. */
static const char *read_file(const char *dir, const char *name)
{
        static char buf[256];
        char path[PATHBUF];
        size_t n;
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        f = fopen(path, "re");
        if (!f)
                return "";
        n = fread(buf, 1, sizeof(buf) - 1, f);
        buf[n] = '\0';
        fclose(f);
        return buf;
}

static bool path_exists(const char *path)
{
        return access(path, F_OK) == 0;
}

static void snap_init(struct vss_provider_snapshot *s, const char *volume, const char *fstype)
{
        memset(s, 0, sizeof(*s));
        vss_id_generate(&s->snapshot_id);
        vss_id_generate(&s->set_id);
        memcpy(s->volume, volume, strnlen(volume, sizeof(s->volume) - 1));
        memcpy(s->fstype, fstype, strnlen(fstype, sizeof(s->fstype) - 1));
}

static size_t count_entries(const char *dir)
{
        char cmd[VSS_PATH_MAX + 64];
        size_t n = 0;
        FILE *f;
        char line[512];

        snprintf(cmd, sizeof(cmd), "ls -A '%s'", dir);
        f = popen(cmd, "r");
        assert_non_null(f);
        while (fgets(line, sizeof(line), f))
                n++;
        pclose(f);
        return n;
}

/* begin_prepare + end_prepare + pre_commit + commit + post_commit of one set. */
static vss_hresult create_set(struct vss_provider_snapshot *snaps, size_t n)
{
        vss_hresult hr;

        for (size_t i = 0; i < n; i++) {
                hr = ops->begin_prepare(state, &snaps[i]);
                if (VSS_FAILED(hr))
                        return hr;
        }
        hr = ops->end_prepare(state, snaps, n);
        if (VSS_FAILED(hr))
                return hr;
        hr = ops->pre_commit(state, snaps, n);
        if (VSS_FAILED(hr))
                return hr;
        hr = ops->commit(state, snaps, n);
        if (VSS_FAILED(hr))
                return hr;
        return ops->post_commit(state, snaps, n);
}

static void test_identity(void **unused)
{
        vss_id id;

        assert_string_equal(ops->name, "openvss btrfs provider");
        assert_string_equal(ops->version, "1.0.0");
        assert_int_equal(ops->type, VSS_PROV_SOFTWARE);
        assert_false(ops->needs_freeze);
        assert_int_equal(vss_id_parse(ops->provider_id, &id), VSS_S_OK);
        assert_non_null(ops->exists);
}

static void test_is_volume_supported(void **unused)
{
        char path[PATHBUF];
        bool ok;

        assert_int_equal(ops->is_volume_supported(state, mnt, "btrfs", &ok), VSS_S_OK);
        assert_true(ok);
        assert_int_equal(ops->is_volume_supported(state, mnt, "ext4", &ok), VSS_S_OK);
        assert_false(ok);
        snprintf(path, sizeof(path), "%s/plain", mnt);
        assert_true(mkdir(path, 0755) == 0 || errno == EEXIST);
        assert_int_equal(ops->is_volume_supported(state, path, "btrfs", &ok), VSS_S_OK);
        assert_false(ok);
        assert_int_equal(ops->is_volume_supported(state, "/nonexistent/x", "btrfs", &ok), VSS_S_OK);
        assert_false(ok);
        assert_int_equal(ops->is_volume_supported(state, "/tmp", "btrfs", &ok), VSS_S_OK);
        assert_false(ok);
}

static void test_begin_prepare_rejects(void **unused)
{
        struct vss_provider_snapshot s;
        char path[PATHBUF];

        snprintf(path, sizeof(path), "%s/plain", mnt);
        assert_true(mkdir(path, 0755) == 0 || errno == EEXIST);
        snap_init(&s, path, "btrfs");
        assert_int_equal(ops->begin_prepare(state, &s), VSS_E_VOLUME_NOT_SUPPORTED_BY_PROVIDER);
        assert_non_null(strstr(ctx.error, path));

        snap_init(&s, mnt, "ext4");
        assert_int_equal(ops->begin_prepare(state, &s), VSS_E_VOLUME_NOT_SUPPORTED_BY_PROVIDER);
        snap_init(&s, "/tmp", "btrfs");
        assert_int_equal(ops->begin_prepare(state, &s), VSS_E_VOLUME_NOT_SUPPORTED_BY_PROVIDER);
        snap_init(&s, "relative", "btrfs");
        assert_int_equal(ops->begin_prepare(state, &s), VSS_E_VOLUME_NOT_SUPPORTED_BY_PROVIDER);
        snap_init(&s, "/nonexistent/volume", "btrfs");
        assert_int_equal(ops->begin_prepare(state, &s), VSS_E_OBJECT_NOT_FOUND);
}

static void test_lifecycle(void **unused)
{
        struct vss_provider_snapshot s1, s2;
        char shadows[PATHBUF], inner[PATHBUF], expose_dir[VSS_PATH_MAX];
        struct stat st;
        bool ro, ex;
        json_t *data;
        int fd;

        write_file(mnt, "data", "one");
        snap_init(&s1, mnt, "btrfs");
        assert_int_equal(create_set(&s1, 1), VSS_S_OK);

        /* .openvss is a 0700 subvolume. */
        snprintf(shadows, sizeof(shadows), "%s/.openvss", mnt);
        assert_int_equal(btrfs_util_is_subvolume(shadows), BTRFS_UTIL_OK);
        assert_int_equal(stat(shadows, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0700);

        /* The shadow: read-only subvolume with the data as of commit. */
        assert_non_null(strstr(s1.device, "/.openvss/{"));
        assert_true(s1.attributes & VSS_VOLSNAP_ATTR_DIFFERENTIAL);
        assert_int_equal(btrfs_util_is_subvolume(s1.device), BTRFS_UTIL_OK);
        assert_int_equal(btrfs_util_get_subvolume_read_only(s1.device, &ro), BTRFS_UTIL_OK);
        assert_true(ro);
        data = json_loads(s1.provider_data, 0, NULL);
        assert_non_null(data);
        assert_string_equal(json_string_value(json_object_get(data, "path")), s1.device);
        json_decref(data);
        assert_string_equal(read_file(s1.device, "data"), "one");

        /* Later changes do not reach it. */
        write_file(mnt, "data", "two");
        write_file(mnt, "new", "x");
        assert_string_equal(read_file(s1.device, "data"), "one");
        snprintf(inner, sizeof(inner), "%s/new", s1.device);
        assert_false(path_exists(inner));

        /* A second shadow of the same volume sees the new data and not the
         * first shadow: its .openvss is an empty directory. */
        snap_init(&s2, mnt, "btrfs");
        assert_int_equal(create_set(&s2, 1), VSS_S_OK);
        assert_string_equal(read_file(s2.device, "data"), "two");
        snprintf(inner, sizeof(inner), "%s/.openvss", s2.device);
        assert_true(path_exists(inner));
        assert_int_equal(count_entries(inner), 0);
        assert_int_equal(count_entries(shadows), 2);

        /* exists */
        assert_int_equal(ops->exists(state, &s1, &ex), VSS_S_OK);
        assert_true(ex);

        /* expose: read-only bind mount. */
        snprintf(expose_dir, sizeof(expose_dir), "%s/exposed", tmpdir);
        assert_true(mkdir(expose_dir, 0755) == 0 || errno == EEXIST);
        assert_int_equal(ops->expose(state, &s1, expose_dir), VSS_S_OK);
        assert_string_equal(read_file(expose_dir, "data"), "one");
        snprintf(inner, sizeof(inner), "%s/data", expose_dir);
        fd = open(inner, O_WRONLY | O_CLOEXEC);
        assert_true(fd < 0 && errno == EROFS);
        {
                struct statvfs sv;
                assert_int_equal(statvfs(expose_dir, &sv), 0);
                assert_true(sv.f_flag & ST_RDONLY);
        }
        /* Unexposing with the wrong shadow must not unmount it. */
        assert_int_equal(ops->unexpose(state, &s2, expose_dir), VSS_E_OBJECT_NOT_FOUND);
        assert_string_equal(read_file(expose_dir, "data"), "one");
        assert_int_equal(ops->unexpose(state, &s1, expose_dir), VSS_S_OK);
        assert_string_equal(read_file(expose_dir, "data"), "");
        assert_int_equal(ops->unexpose(state, &s1, expose_dir), VSS_E_OBJECT_NOT_FOUND);

        /* Busy exposure: unexpose detaches lazily. */
        assert_int_equal(ops->expose(state, &s2, expose_dir), VSS_S_OK);
        fd = open(inner, O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(ops->unexpose(state, &s2, expose_dir), VSS_S_OK);
        close(fd);
        assert_string_equal(read_file(expose_dir, "data"), "");

        /* Expose errors. */
        assert_int_equal(ops->expose(state, &s1, "/nonexistent/dir"), VSS_E_OBJECT_NOT_FOUND);
        assert_int_equal(ops->expose(state, &s1, "relative"), VSS_E_INVALIDARG);

        /* delete */
        assert_int_equal(ops->delete_snapshot(state, &s1), VSS_S_OK);
        assert_false(path_exists(s1.device));
        assert_int_equal(ops->exists(state, &s1, &ex), VSS_S_OK);
        assert_false(ex);
        assert_int_equal(ops->delete_snapshot(state, &s1), VSS_E_OBJECT_NOT_FOUND);
        assert_non_null(strstr(ctx.error, s1.device));
        assert_int_equal(ops->delete_snapshot(state, &s2), VSS_S_OK);
        assert_int_equal(count_entries(shadows), 0);
}

static void test_multi_volume_set_and_abort(void **unused)
{
        struct vss_provider_snapshot s[2];
        char sub[VSS_PATH_MAX], blocker[PATHBUF], name[VSS_ID_STRING_MAX];

        snprintf(sub, sizeof(sub), "%s/sub", mnt);
        if (!path_exists(sub))
                assert_int_equal(btrfs_util_create_subvolume(sub, 0, NULL, NULL), BTRFS_UTIL_OK);
        write_file(sub, "f", "sub");
        write_file(mnt, "data", "root");

        snap_init(&s[0], mnt, "btrfs");
        snap_init(&s[1], sub, "btrfs");
        s[1].set_id = s[0].set_id;
        assert_int_equal(create_set(s, 2), VSS_S_OK);
        assert_string_equal(read_file(s[0].device, "data"), "root");
        assert_string_equal(read_file(s[1].device, "f"), "sub");
        /* The nested subvolume 'sub' is an empty directory in the root's shadow. */
        snprintf(blocker, sizeof(blocker), "%s/sub", s[0].device);
        assert_int_equal(count_entries(blocker), 0);

        /* abort after commit removes both. */
        assert_int_equal(ops->abort(state, s, 2), VSS_S_OK);
        assert_false(path_exists(s[0].device));
        assert_false(path_exists(s[1].device));

        /* abort before commit is harmless. */
        snap_init(&s[0], mnt, "btrfs");
        assert_int_equal(ops->begin_prepare(state, &s[0]), VSS_S_OK);
        assert_int_equal(ops->end_prepare(state, s, 1), VSS_S_OK);
        assert_int_equal(ops->abort(state, s, 1), VSS_S_OK);

        /* A commit that fails on the second volume leaves nothing behind. */
        snap_init(&s[0], mnt, "btrfs");
        snap_init(&s[1], sub, "btrfs");
        assert_int_equal(ops->begin_prepare(state, &s[0]), VSS_S_OK);
        assert_int_equal(ops->begin_prepare(state, &s[1]), VSS_S_OK);
        vss_id_format(&s[1].snapshot_id, name);
        snprintf(blocker, sizeof(blocker), "%s/.openvss/%s", sub, name);
        assert_int_equal(mkdir(blocker, 0700), 0);
        assert_true(VSS_FAILED(ops->commit(state, s, 2)));
        assert_non_null(strstr(ctx.error, blocker));
        snprintf(blocker, sizeof(blocker), "%s/.openvss", mnt);
        assert_int_equal(count_entries(blocker), 0);
        snprintf(blocker, sizeof(blocker), "%s/.openvss/%s", sub, name);
        assert_int_equal(rmdir(blocker), 0);
        /* begin_prepare refuses a shadow id whose path is taken. */
        assert_int_equal(mkdir(blocker, 0700), 0);
        assert_int_equal(ops->begin_prepare(state, &s[1]), VSS_E_PROVIDER_VETO);
        assert_int_equal(rmdir(blocker), 0);
}

static void test_bad_shadow_storage(void **unused)
{
        struct vss_provider_snapshot s;
        char sub[VSS_PATH_MAX], dir[PATHBUF];

        /* A plain directory at .openvss would put old shadows into new ones. */
        snprintf(sub, sizeof(sub), "%s/sub2", mnt);
        assert_int_equal(btrfs_util_create_subvolume(sub, 0, NULL, NULL), BTRFS_UTIL_OK);
        snprintf(dir, sizeof(dir), "%s/.openvss", sub);
        assert_int_equal(mkdir(dir, 0700), 0);
        snap_init(&s, sub, "btrfs");
        assert_int_equal(ops->begin_prepare(state, &s), VSS_E_PROVIDER_VETO);
        assert_non_null(strstr(ctx.error, "not a subvolume"));
        assert_int_equal(rmdir(dir), 0);

        /* A symlink there is refused, not followed. */
        assert_int_equal(symlink("/tmp", dir), 0);
        assert_int_equal(ops->begin_prepare(state, &s), VSS_E_PROVIDER_VETO);
        assert_int_equal(unlink(dir), 0);
        assert_int_equal(btrfs_util_delete_subvolume(sub, 0), BTRFS_UTIL_OK);
}

static void test_bad_provider_data(void **unused)
{
        struct vss_provider_snapshot s;
        bool ex;

        snap_init(&s, mnt, "btrfs");
        assert_int_equal(create_set(&s, 1), VSS_S_OK);

        struct vss_provider_snapshot t = s;
        snprintf(t.provider_data, sizeof(t.provider_data), "not json");
        assert_int_equal(ops->delete_snapshot(state, &t), VSS_E_INVALIDARG);
        assert_int_equal(ops->exists(state, &t, &ex), VSS_E_INVALIDARG);

        /* A path that does not follow from volume + id is refused. */
        snprintf(t.provider_data, sizeof(t.provider_data), "{\"path\":\"%s\",\"subvol_id\":5}", mnt);
        assert_int_equal(ops->delete_snapshot(state, &t), VSS_E_INVALIDARG);

        /* The right path but another subvolume id: not ours any more. */
        snprintf(t.provider_data, sizeof(t.provider_data), "{\"path\":\"%.900s\",\"subvol_id\":5}", s.device);
        assert_int_equal(ops->delete_snapshot(state, &t), VSS_E_OBJECT_NOT_FOUND);
        assert_true(path_exists(s.device));

        assert_int_equal(ops->delete_snapshot(state, &s), VSS_S_OK);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_identity),
                cmocka_unit_test(test_is_volume_supported),
                cmocka_unit_test(test_begin_prepare_rejects),
                cmocka_unit_test(test_lifecycle),
                cmocka_unit_test(test_multi_volume_set_and_abort),
                cmocka_unit_test(test_bad_shadow_storage),
                cmocka_unit_test(test_bad_provider_data),
        };
        int r;

        r = setup_fs();
        if (r != 0) {
                teardown_fs();
                return r;
        }
        if (VSS_FAILED(ops->init(&ctx, &state))) {
                teardown_fs();
                return 1;
        }
        r = cmocka_run_group_tests_name("btrfs-provider", tests, NULL, NULL);
        ops->done(state);
        teardown_fs();
        return r == 0 ? 0 : 1;
}
