/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Previous Versions: a published volume shows each of its shadow copies,
 * read-only, as DIR/@GMT-YYYY.MM.DD-HH.MM.SS (the UTC second of the shadow's
 * creation), the names Samba's vfs_shadow_copy2 serves to Windows clients as
 * "Previous Versions" (docs/previous-versions.md).
 *
 * This file is the one place that ties the lifecycle of shadow copies to the
 * published directories.  pubver_sync() compares what a volume should show
 * (each shadow copy of it that is not being deleted; of two created in the
 * same second, the older) with what is mounted (sh->published_path), and
 * queues the provider's expose and unexpose jobs to make them equal.  It runs
 * when a shadow copy is created, deleted, evicted or forgotten, when a
 * publication is added or deleted, and at startup.  A mount is the provider's
 * expose, the same as `vssadmin expose shadow`: a read-only bind mount of the
 * btrfs snapshot, a read-only mount of the cow snapshot device on a loop device.
 *
 * The provider worker runs jobs in the order they were queued and their
 * completions come back in that order, so sh->published_path is set or
 * cleared when a job is queued, not when it is done: an unmount queued after
 * a mount of the same path always finds it mounted.
 *
 * Crash safety: the row of the 'published' table is written before a mount is
 * queued and removed after its unmount succeeded, so a vssd that dies in
 * between finds at its next start every mount it may have left.  Mounts
 * survive a vssd restart; after a reboot they are made again.
 *
 * vssd runs as root and mounts under DIR, so DIR must be a real directory
 * owned by root and writable by nobody else, and an entry found there is used
 * only when it is an empty directory that is not a symlink or a mount point:
 * a user cannot make vssd mount over something else.
 */

#include <dirent.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>

#include "basic/exec-util.h"
#include "basic/fs-util.h"
#include "basic/string-util.h"
#include "vssd/volume.h"
#include "vssd/vssd.h"

#define PV_DEFAULT_SUBDIR ".snapshots"
#define PV_UMOUNT_TIMEOUT_MS 10000

/* A client waiting for the jobs of one request: replied to when the last is done. */
struct pv_wait {
        uint64_t serial;
        json_int_t id;
        int pending;                    /* jobs outstanding, +1 while they are being queued */
        vss_hresult first_error;
        char error[600];
        char *rmdir_dir;                /* delete: the DIR vssd made, removed after the last unmount */
        char *volume;                   /* add: the reply lists the publication of this volume */
        json_t *result;
};

/* ---- catalog ---- */

static int db_exec_bind(struct vssd *v, const char *sql, const char *a, const char *b, const char *c, int64_t d)
{
        sqlite3_stmt *st = NULL;
        int r = -EIO;

        if (sqlite3_prepare_v2(v->db, sql, -1, &st, NULL) == SQLITE_OK) {
                const char *f[] = { a, b, c };

                for (int i = 0; i < 3 && f[i]; i++)
                        sqlite3_bind_text(st, i + 1, f[i], -1, SQLITE_TRANSIENT);
                if (d >= 0)
                        sqlite3_bind_int64(st, 4, d);
                if (sqlite3_step(st) == SQLITE_DONE)
                        r = 0;
        }
        if (r < 0)
                log_err("catalog: %s: %s", sql, sqlite3_errmsg(v->db));
        sqlite3_finalize(st);
        return r;
}

static void row_put(struct vssd *v, const char *path, const vss_id *sid)
{
        char idbuf[VSS_ID_STRING_MAX];

        (void)db_exec_bind(v, "INSERT OR REPLACE INTO published(path, shadow_id) VALUES(?,?)", path,
                           vss_id_format(sid, idbuf), NULL, -1);
}

static void row_del(struct vssd *v, const char *path, const vss_id *sid)
{
        char idbuf[VSS_ID_STRING_MAX];

        (void)db_exec_bind(v, "DELETE FROM published WHERE path=? AND shadow_id=?", path, vss_id_format(sid, idbuf),
                           NULL, -1);
}

/* ---- helpers ---- */

static void pubver_free(struct pubver *p)
{
        if (!p)
                return;
        free(p->volume);
        free(p->dir);
        free(p);
}

static struct pubver *pubver_find(struct vssd *v, const char *volume)
{
        for (struct pubver *p = v->pubvers; p; p = p->next)
                if (streq(p->volume, volume))
                        return p;
        return NULL;
}

/* "@GMT-2026.12.03-09.15.42": the format Samba's shadow:format names. */
static void gmt_name(int64_t time_us, char *buf, size_t len)
{
        time_t t = (time_t)(time_us / 1000000);
        struct tm tm;

        if (!gmtime_r(&t, &tm) || strftime(buf, len, "@GMT-%Y.%m.%d-%H.%M.%S", &tm) == 0)
                fmt_trunc(buf, len, "@GMT-invalid");
}

static bool path_in_use(struct vssd *v, const char *path)
{
        for (struct shadow *sh = v->shadows; sh; sh = sh->next)
                if (sh->published_path && streq(sh->published_path, path))
                        return true;
        return false;
}

static bool is_mount_point(const char *path)
{
        char src[VSS_PATH_MAX];

        return mount_lookup(path, NULL, src, sizeof(src), NULL, 0) == 0;
}

/* DIR must be a directory (not a symlink) owned by us and writable by nobody else. */
static bool dir_is_safe(const char *dir, char *err, size_t errlen)
{
        struct stat st;

        if (lstat(dir, &st) < 0) {
                fmt_trunc(err, errlen, "%s: %s", dir, strerror(errno));
                return false;
        }
        if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 022)) {
                fmt_trunc(err, errlen, "%s must be a directory owned by uid %u and writable by nobody else (vssd mounts "
                          "shadow copies in it)", dir, (unsigned)geteuid());
                return false;
        }
        return true;
}

static json_t *pubver_json(struct vssd *v, const struct pubver *p);

static void wait_done(struct vssd *v, struct pv_wait *w, vss_hresult hr, const char *error)
{
        if (!w)
                return;
        if (VSS_FAILED(hr) && w->first_error == VSS_S_OK) {
                w->first_error = hr;
                fmt_trunc(w->error, sizeof(w->error), "%s", error && error[0] ? error : vss_hresult_message(hr));
        }
        if (--w->pending > 0)
                return;
        if (w->rmdir_dir && rmdir(w->rmdir_dir) < 0 && errno != ENOENT)
                log_warn("cannot remove %s: %m", w->rmdir_dir);
        if (w->volume && pubver_find(v, w->volume))
                w->result = pubver_json(v, pubver_find(v, w->volume));
        if (w->first_error != VSS_S_OK) {
                reply_err(v, w->serial, w->id, w->first_error, "%s", w->error);
                json_decref(w->result);
        } else
                reply_ok(v, w->serial, w->id, w->result ?: json_object());
        free(w->rmdir_dir);
        free(w->volume);
        free(w);
}

/* ---- mounting and unmounting one shadow copy ---- */

static void unpublish_done(struct vssd *v, struct prov_job *j)
{
        char idbuf[VSS_ID_STRING_MAX];
        vss_hresult hr = j->hr;

        vss_id_format(&j->snaps[0].snapshot_id, idbuf);
        /* Nothing mounted there any more (a mount that failed, a mount point gone) is what we wanted. */
        if (VSS_FAILED(hr) && !is_mount_point(j->path))
                hr = VSS_S_OK;
        if (VSS_FAILED(hr)) {
                /* The row stays: the next start tries again. */
                catalog_event(v, "error", "pubver", hr, "cannot unmount the previous version %s of shadow copy %s: %s",
                              j->path, idbuf, j->error[0] ? j->error : vss_hresult_message(hr));
        } else {
                row_del(v, j->path, &j->snaps[0].snapshot_id);
                /* The same name may have been taken by another shadow copy meanwhile. */
                if (!path_in_use(v, j->path))
                        (void)rmdir(j->path);
                log_info("previous version %s of shadow copy %s unpublished", j->path, idbuf);
        }
        wait_done(v, j->userdata, hr, j->error);
}

/* Queues the unmount of sh's published path; the path is forgotten at once. */
static void unpublish(struct vssd *v, struct shadow *sh, struct pv_wait *w)
{
        struct prov_job *j;

        if (!sh->published_path)
                return;
        j = sh->provider >= 0 && v->providers[sh->provider].ok ? prov_job_new(PROV_UNEXPOSE, sh->provider, &sh->snap, 1)
                                                                : NULL;
        if (!j) {
                catalog_event(v, "error", "pubver", VSS_E_PROVIDER_NOT_REGISTERED,
                              "cannot unmount the previous version %s: the provider of its shadow copy is not available",
                              sh->published_path);
        } else {
                fmt_trunc(j->path, sizeof(j->path), "%s", sh->published_path);
                j->done = unpublish_done;
                j->userdata = w;
                if (w)
                        w->pending++;
                prov_submit(v, j);
        }
        free(sh->published_path);
        sh->published_path = NULL;
}

static void publish_done(struct vssd *v, struct prov_job *j)
{
        struct shadow *sh = shadow_find(v, &j->snaps[0].snapshot_id);
        char idbuf[VSS_ID_STRING_MAX];

        vss_id_format(&j->snaps[0].snapshot_id, idbuf);
        if (VSS_FAILED(j->hr)) {
                catalog_event(v, "error", "pubver", j->hr, "cannot publish shadow copy %s of %s at %s: %s", idbuf,
                              j->snaps[0].volume, j->path, j->error[0] ? j->error : vss_hresult_message(j->hr));
                /* Still ours (no unmount was queued behind us): undo the record. */
                if (sh && sh->published_path && streq(sh->published_path, j->path)) {
                        free(sh->published_path);
                        sh->published_path = NULL;
                        row_del(v, j->path, &j->snaps[0].snapshot_id);
                        (void)rmdir(j->path);
                }
        } else
                catalog_event(v, "info", "pubver", VSS_S_OK, "shadow copy %s of %s published at %s", idbuf,
                              j->snaps[0].volume, j->path);
        wait_done(v, j->userdata, j->hr, j->error);
}

static void publish(struct vssd *v, struct shadow *sh, const char *path, struct pv_wait *w)
{
        char idbuf[VSS_ID_STRING_MAX];
        struct prov_job *j;
        struct stat st;
        DIR *d;

        vss_id_format(&sh->snap.snapshot_id, idbuf);
        if (lstat(path, &st) < 0) {
                if (errno != ENOENT || mkdir(path, 0755) < 0) {
                        catalog_event(v, "error", "pubver", VSS_E_UNEXPECTED, "cannot publish shadow copy %s at %s: %s",
                                      idbuf, path, strerror(errno));
                        return;
                }
        } else {
                bool empty = false;

                if (S_ISDIR(st.st_mode) && !is_mount_point(path) && (d = opendir(path))) {
                        struct dirent *de;

                        empty = true;
                        while ((de = readdir(d)))
                                if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
                                        empty = false;
                        closedir(d);
                }
                if (!empty) {
                        catalog_event(v, "error", "pubver", VSS_E_OBJECT_ALREADY_EXISTS,
                                      "cannot publish shadow copy %s at %s: something else is there (not an empty "
                                      "directory, or a mount point)", idbuf, path);
                        return;
                }
        }
        j = prov_job_new(PROV_EXPOSE, sh->provider, &sh->snap, 1);
        sh->published_path = j ? strdup(path) : NULL;
        if (!sh->published_path) {
                prov_job_free(j);
                (void)rmdir(path);
                catalog_event(v, "error", "pubver", VSS_E_OUTOFMEMORY, "cannot publish shadow copy %s: out of memory",
                              idbuf);
                return;
        }
        row_put(v, path, &sh->snap.snapshot_id);
        fmt_trunc(j->path, sizeof(j->path), "%s", path);
        j->done = publish_done;
        j->userdata = w;
        if (w)
                w->pending++;
        prov_submit(v, j);
}

/* ---- the one place ---- */

static bool eligible(struct vssd *v, const struct shadow *sh)
{
        return !sh->deleting && sh->provider >= 0 && v->providers[sh->provider].ok;
}

/* The name sh should be published under ("" for none). */
static void wanted_path(struct vssd *v, const struct pubver *p, const struct shadow *sh, char *buf, size_t len)
{
        char name[64], other[64];

        buf[0] = 0;
        /* Nothing is mounted from a volume while it is being reverted. */
        if (!p || !eligible(v, sh) ||
            (shadows_reverting_volume(v) && streq(shadows_reverting_volume(v), sh->snap.volume)))
                return;
        gmt_name(sh->creation_time_us, name, sizeof(name));
        /* One name per second: of two shadow copies created in the same second, the older has it. */
        for (struct shadow *o = v->shadows; o; o = o->next) {
                if (o == sh || !eligible(v, o) || !streq(o->snap.volume, sh->snap.volume))
                        continue;
                gmt_name(o->creation_time_us, other, sizeof(other));
                if (streq(name, other) &&
                    (o->creation_time_us < sh->creation_time_us ||
                     (o->creation_time_us == sh->creation_time_us &&
                      memcmp(&o->snap.snapshot_id, &sh->snap.snapshot_id, sizeof(vss_id)) < 0)))
                        return;
        }
        fmt_trunc(buf, len, "%s/%s", p->dir, name);
}

/* Empty @GMT- directories nobody is published at: left behind in a shadow copy's content
 * (the snapshot of a volume holding DIR has them) and brought back by a revert, Samba would
 * list each as a previous version.  rmdir leaves alone what is not empty or is mounted. */
static void sweep_dir(struct vssd *v, const struct pubver *p)
{
        char path[VSS_PATH_MAX];
        struct dirent *de;
        DIR *d = opendir(p->dir);

        if (!d)
                return;
        while ((de = readdir(d))) {
                if (strncmp(de->d_name, "@GMT-", 5) != 0 || de->d_type != DT_DIR)
                        continue;
                fmt_trunc(path, sizeof(path), "%s/%s", p->dir, de->d_name);
                if (!path_in_use(v, path) && !is_mount_point(path))
                        (void)rmdir(path);
        }
        closedir(d);
}

static void sync_volume(struct vssd *v, const char *volume, struct pv_wait *w)
{
        struct pubver *p = pubver_find(v, volume);
        char want[VSS_PATH_MAX];

        /* Unmounts first, so a name handed to another shadow copy is free when its mount runs. */
        for (struct shadow *sh = v->shadows; sh; sh = sh->next) {
                if (!sh->published_path || !streq(sh->snap.volume, volume))
                        continue;
                wanted_path(v, p, sh, want, sizeof(want));
                if (!streq(want, sh->published_path))
                        unpublish(v, sh, w);
        }
        if (!p)
                return;
        /* Checked again before each round of mounts: a parent of DIR that someone else may
         * write to could have been swapped for a symlink since the publication was added. */
        {
                _cleanup_free_ char *real = NULL;
                char err[600];
                struct stat st;

                /* A revert may bring back the volume's content from before vssd made DIR in it. */
                if (p->made_dir && lstat(p->dir, &st) < 0 && errno == ENOENT)
                        (void)mkdir_p(p->dir, 0755);
                real = realpath(p->dir, NULL);

                if (!real || !streq(real, p->dir) || !dir_is_safe(p->dir, err, sizeof(err))) {
                        if (!real || !streq(real, p->dir))
                                fmt_trunc(err, sizeof(err), "%s now resolves to %s", p->dir, real ?: strerror(errno));
                        catalog_event(v, "error", "pubver", VSS_E_OBJECT_NOT_FOUND,
                                      "shadow copies of %s are not published: %s", volume, err);
                        return;
                }
        }
        for (struct shadow *sh = v->shadows; sh; sh = sh->next) {
                if (sh->published_path || !streq(sh->snap.volume, volume))
                        continue;
                wanted_path(v, p, sh, want, sizeof(want));
                if (want[0])
                        publish(v, sh, want, w);
        }
        sweep_dir(v, p);
}

void pubver_sync(struct vssd *v, const char *volume)
{
        /* 'volume' may point into a shadow that an unpublish frees the path of, never the shadow itself. */
        char vol[VSS_PATH_MAX];

        fmt_trunc(vol, sizeof(vol), "%s", volume);
        sync_volume(v, vol, NULL);
}

void pubver_unpublish(struct vssd *v, struct shadow *sh)
{
        unpublish(v, sh, NULL);
}

void pubver_lost(struct vssd *v, struct shadow *sh, const char *why)
{
        char idbuf[VSS_ID_STRING_MAX];

        if (!sh->published_path)
                return;
        catalog_event(v, "warning", "pubver", VSS_E_PROVIDER_VETO, "shadow copy %s is no longer published at %s: %s",
                      vss_id_format(&sh->snap.snapshot_id, idbuf), sh->published_path, why);
        row_del(v, sh->published_path, &sh->snap.snapshot_id);
        free(sh->published_path);
        sh->published_path = NULL;
}

/* ---- startup and shutdown ---- */

/* A row whose shadow copy is not in the catalog any more (vssd died between the two writes):
 * whatever is mounted there is a shadow copy mount of ours. */
static void drop_stale(struct vssd *v, const char *path, const char *sid)
{
        char src[VSS_PATH_MAX] = "", out[512];
        vss_id id;

        if (mount_lookup(path, NULL, src, sizeof(src), NULL, 0) == 0) {
                if (run_command((char *const[]){ "umount", "-l", (char *)path, NULL }, PV_UMOUNT_TIMEOUT_MS, out,
                                sizeof(out)) != 0) {
                        catalog_event(v, "error", "pubver", VSS_E_UNEXPECTED,
                                      "cannot unmount %s, left by a shadow copy that no longer exists: %s", path, out);
                        return;
                }
                if (strncmp(src, "/dev/loop", 9) == 0)
                        (void)run_command((char *const[]){ "losetup", "-d", src, NULL }, PV_UMOUNT_TIMEOUT_MS, out,
                                          sizeof(out));
        }
        (void)rmdir(path);
        if (vss_id_parse(sid, &id) == VSS_S_OK)
                row_del(v, path, &id);
        catalog_event(v, "warning", "recovery", VSS_S_OK, "removed the previous version %s of shadow copy %s, which "
                      "no longer exists", path, sid);
}

int pubver_load(struct vssd *v)
{
        sqlite3_stmt *st = NULL;
        int n = 0;

        if (sqlite3_exec(v->db,
                         "CREATE TABLE IF NOT EXISTS previous_versions (volume TEXT PRIMARY KEY, dir TEXT NOT NULL,"
                         " made_dir INTEGER NOT NULL, created_us INTEGER NOT NULL);"
                         "CREATE TABLE IF NOT EXISTS published (path TEXT PRIMARY KEY, shadow_id TEXT NOT NULL);",
                         NULL, NULL, NULL) != SQLITE_OK)
                return -EIO;
        if (sqlite3_prepare_v2(v->db, "SELECT volume, dir, made_dir, created_us FROM previous_versions ORDER BY volume",
                               -1, &st, NULL) != SQLITE_OK)
                return -EIO;
        while (sqlite3_step(st) == SQLITE_ROW) {
                struct pubver *p = calloc(1, sizeof(*p));

                if (!p)
                        break;
                p->volume = strdup((const char *)sqlite3_column_text(st, 0) ?: "");
                p->dir = strdup((const char *)sqlite3_column_text(st, 1) ?: "");
                p->made_dir = sqlite3_column_int(st, 2) != 0;
                p->created_us = sqlite3_column_int64(st, 3);
                if (!p->volume || !p->dir) {
                        pubver_free(p);
                        break;
                }
                p->next = v->pubvers;
                v->pubvers = p;
                n++;
        }
        sqlite3_finalize(st);

        st = NULL;
        if (sqlite3_prepare_v2(v->db, "SELECT path, shadow_id FROM published", -1, &st, NULL) != SQLITE_OK)
                return -EIO;
        {
                /* Collected first: drop_stale writes to the table being read. */
                json_t *stale = json_array();

                while (sqlite3_step(st) == SQLITE_ROW) {
                        const char *path = (const char *)sqlite3_column_text(st, 0) ?: "";
                        const char *sid = (const char *)sqlite3_column_text(st, 1) ?: "";
                        struct shadow *sh = NULL;
                        vss_id id;

                        if (vss_id_parse(sid, &id) == VSS_S_OK)
                                sh = shadow_find(v, &id);
                        if (sh && !sh->published_path && (sh->published_path = strdup(path)))
                                continue;
                        json_array_append_new(stale, json_pack("[s,s]", path, sid));
                }
                sqlite3_finalize(st);
                {
                        size_t i;
                        json_t *x;

                        json_array_foreach(stale, i, x)
                                drop_stale(v, json_string_value(json_array_get(x, 0)),
                                           json_string_value(json_array_get(x, 1)));
                }
                json_decref(stale);
        }
        return n;
}

void pubver_start(struct vssd *v)
{
        /* A publication whose mount is gone (the machine rebooted) is made again. */
        for (struct shadow *sh = v->shadows; sh; sh = sh->next)
                if (sh->published_path && !is_mount_point(sh->published_path)) {
                        row_del(v, sh->published_path, &sh->snap.snapshot_id);
                        free(sh->published_path);
                        sh->published_path = NULL;
                }
        for (struct pubver *p = v->pubvers; p; p = p->next)
                pubver_sync(v, p->volume);
}

void pubvers_done(struct vssd *v)
{
        while (v->pubvers) {
                struct pubver *p = v->pubvers;

                v->pubvers = p->next;
                pubver_free(p);
        }
}

/* ---- removing a publication ---- */

static void pubver_remove(struct vssd *v, struct pubver *p, struct pv_wait *w)
{
        for (struct pubver **pp = &v->pubvers; *pp; pp = &(*pp)->next)
                if (*pp == p) {
                        *pp = p->next;
                        break;
                }
        (void)db_exec_bind(v, "DELETE FROM previous_versions WHERE volume=?", p->volume, NULL, NULL, -1);
        if (w && p->made_dir)
                w->rmdir_dir = strdup(p->dir);
        sync_volume(v, p->volume, w);
        if (!w && p->made_dir)
                (void)rmdir(p->dir);    /* empty unless an unmount is still queued: then it stays */
        catalog_event(v, "info", "pubver", VSS_S_OK, "previous versions of %s are no longer published at %s", p->volume,
                      p->dir);
        pubver_free(p);
}

void pubver_volume_gone(struct vssd *v, const char *volume)
{
        struct pubver *p = pubver_find(v, volume);

        if (p)
                pubver_remove(v, p, NULL);
}

/* ---- methods ---- */

static json_t *pubver_json(struct vssd *v, const struct pubver *p)
{
        json_t *a = json_array();

        for (struct shadow *sh = v->shadows; sh; sh = sh->next)
                if (sh->published_path && streq(sh->snap.volume, p->volume)) {
                        const char *slash = strrchr(sh->published_path, '/');

                        json_array_append_new(a, json_pack("{s:o, s:s, s:s, s:I}", "shadow_id",
                                                           json_id(&sh->snap.snapshot_id), "name",
                                                           slash ? slash + 1 : sh->published_path, "path",
                                                           sh->published_path, "creation_time_us",
                                                           (json_int_t)sh->creation_time_us));
                }
        return json_pack("{s:s, s:s, s:b, s:I, s:o}", "volume", p->volume, "dir", p->dir, "made_dir", p->made_dir,
                         "created_us", (json_int_t)p->created_us, "shadows", a);
}

static void pv_add(struct vssd *v, struct conn *c, json_int_t id, json_t *params)
{
        const char *vol = json_get_str(params, "volume"), *at = json_get_str(params, "dir");
        char dir[VSS_PATH_MAX], err[1024] = "";
        _cleanup_free_ char *real = NULL;
        struct volume_info vi;
        struct pv_wait *w;
        struct pubver *p;
        struct stat st;
        bool made = false;
        vss_hresult hr;

        if (!vol) {
                reply_err(v, c->serial, id, VSS_E_INVALIDARG, "field 'volume' is missing");
                return;
        }
        if (json_object_get(params, "dir") && !json_is_null(json_object_get(params, "dir")) && (!at || at[0] != '/')) {
                reply_err(v, c->serial, id, VSS_E_INVALIDARG, "field 'dir' must be an absolute path");
                return;
        }
        hr = volume_exact(vol, &vi, err, sizeof(err));
        if (VSS_FAILED(hr)) {
                reply_err(v, c->serial, id, hr, "volume: %s", err);
                return;
        }
        if (provider_find(v, NULL, vi.path, vi.fstype, &hr) < 0) {
                reply_err(v, c->serial, id, hr, "no provider supports volume %s (%s)", vi.path,
                          vi.fstype[0] ? vi.fstype : "unknown fstype");
                return;
        }
        if ((p = pubver_find(v, vi.path))) {
                reply_err(v, c->serial, id, VSS_E_OBJECT_ALREADY_EXISTS, "previous versions of %s are already published at %s",
                          vi.path, p->dir);
                return;
        }
        if (at)
                fmt_trunc(dir, sizeof(dir), "%s", at);
        else
                fmt_trunc(dir, sizeof(dir), "%s/" PV_DEFAULT_SUBDIR, streq(vi.path, "/") ? "" : vi.path);
        if (lstat(dir, &st) < 0) {
                int r = errno == ENOENT ? mkdir_p(dir, 0755) : -errno;

                if (r < 0) {
                        reply_err(v, c->serial, id, VSS_E_INVALIDARG, "cannot create %s: %s", dir, strerror(-r));
                        return;
                }
                made = true;
        }
        real = realpath(dir, NULL);
        if (!real || !dir_is_safe(real, err, sizeof(err))) {
                if (!real)
                        fmt_trunc(err, sizeof(err), "%s: %s", dir, strerror(errno));
                if (made)
                        (void)rmdir(dir);
                reply_err(v, c->serial, id, VSS_E_INVALIDARG, "%s", err);
                return;
        }
        for (p = v->pubvers; p; p = p->next)
                if (streq(p->dir, real)) {
                        if (made)
                                (void)rmdir(real);
                        reply_err(v, c->serial, id, VSS_E_OBJECT_ALREADY_EXISTS, "%s already holds the previous versions "
                                  "of %s", real, p->volume);
                        return;
                }
        p = calloc(1, sizeof(*p));
        w = calloc(1, sizeof(*w));
        if (!p || !w || !(p->volume = strdup(vi.path)) || !(p->dir = strdup(real))) {
                pubver_free(p);
                free(w);
                if (made)
                        (void)rmdir(real);
                reply_err(v, c->serial, id, VSS_E_OUTOFMEMORY, "out of memory");
                return;
        }
        p->made_dir = made;
        p->created_us = (int64_t)clock_realtime_us();
        if (db_exec_bind(v, "INSERT INTO previous_versions(volume, dir, made_dir, created_us) VALUES(?,?,?,?)",
                         p->volume, p->dir, made ? "1" : "0", p->created_us) < 0) {
                reply_err(v, c->serial, id, VSS_E_UNEXPECTED, "cannot record the publication in the catalog: %s",
                          sqlite3_errmsg(v->db));
                if (made)
                        (void)rmdir(real);
                pubver_free(p);
                free(w);
                return;
        }
        p->next = v->pubvers;
        v->pubvers = p;
        catalog_event(v, "info", "pubver", VSS_S_OK, "previous versions of %s published at %s", p->volume, p->dir);
        w->serial = c->serial;
        w->id = id;
        w->pending = 1;
        /* The reply waits for the mounts and lists what is published then. */
        w->volume = strdup(p->volume);
        sync_volume(v, p->volume, w);
        wait_done(v, w, VSS_S_OK, NULL);
}

static void pv_delete(struct vssd *v, struct conn *c, json_int_t id, json_t *params)
{
        const char *vol = json_get_str(params, "volume");
        struct volume_info vi;
        struct pubver *p;
        struct pv_wait *w;
        char err[1024];

        if (!vol) {
                reply_err(v, c->serial, id, VSS_E_INVALIDARG, "field 'volume' is missing");
                return;
        }
        /* By its recorded name first: a volume that is gone can still be unpublished. */
        p = pubver_find(v, vol);
        if (!p && VSS_SUCCEEDED(volume_exact(vol, &vi, err, sizeof(err))))
                p = pubver_find(v, vi.path);
        if (!p) {
                reply_err(v, c->serial, id, VSS_E_OBJECT_NOT_FOUND, "previous versions of %s are not published", vol);
                return;
        }
        w = calloc(1, sizeof(*w));
        if (!w) {
                reply_err(v, c->serial, id, VSS_E_OUTOFMEMORY, "out of memory");
                return;
        }
        w->serial = c->serial;
        w->id = id;
        w->pending = 1;
        w->result = json_pack("{s:s, s:s}", "volume", p->volume, "dir", p->dir);
        pubver_remove(v, p, w);
        wait_done(v, w, VSS_S_OK, NULL);
}

void method_pubver(struct vssd *v, struct conn *c, json_int_t id, json_t *params, const char *method)
{
        if (streq(method, "PreviousVersions.List")) {
                const char *vol = json_get_str(params, "volume");
                _cleanup_free_ char *real = vol ? realpath(vol, NULL) : NULL;
                json_t *a = json_array();

                for (struct pubver *p = v->pubvers; p; p = p->next)
                        if (!vol || streq(vol, p->volume) || (real && streq(real, p->volume)))
                                json_array_append_new(a, pubver_json(v, p));
                reply_ok(v, c->serial, id, json_pack("{s:o}", "publications", a));
        } else if (streq(method, "PreviousVersions.Add"))
                pv_add(v, c, id, params);
        else
                pv_delete(v, c, id, params);
}
