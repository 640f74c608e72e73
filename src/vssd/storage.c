/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Shadow copy storage associations (vssadmin add/resize/delete/list
 * shadowstorage): which volume holds the diff area of which volume, and its
 * maximum size.  Persisted in the catalog's storage_assoc table, one row per
 * for-volume (Windows allows one association per volume).  The live figures
 * (used, allocated, the diff area file) come from the provider of the
 * for-volume (diff_area_query; for a cow volume, its volume server), and the
 * maximum is pushed to it (diff_area_set_max), both on the provider worker:
 * the request is answered when the provider is done.  The volume server
 * evicts the oldest shadows that no longer fit (each eviction comes back as a
 * Volume.Event and is logged by cowvol-server.c).
 *
 * The for-volume of an association may be a path that does not exist yet:
 * the mount point of a cow volume still to be created (vssadmin create volume
 * makes it), so that the volume's diff area starts on the on-volume.  Such a
 * pending association is keyed by the normalized path, and storage_find()
 * normalizes its argument the same way.  Adding, or deleting, the association
 * of an existing cow volume moves its diff area (cowvol_move_diff()).
 */

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "vssd/volume.h"
#include "vssd/vssd.h"

static void assoc_free(struct storage_assoc *a)
{
        if (!a)
                return;
        free(a->for_vol);
        free(a->on_vol);
        free(a);
}

/* An absolute path with the symlinks of its longest existing prefix resolved,
 * "//" and trailing slashes collapsed; "." and ".." after that prefix are
 * refused, since nothing can resolve them.  false when not normalizable. */
static bool path_normalize(const char *path, char *buf, size_t len)
{
        char head[VSS_PATH_MAX], *cut;
        _cleanup_free_ char *real = NULL;
        const char *rest;
        size_t n;

        if (!path || path[0] != '/' || strlen(path) >= sizeof(head))
                return false;
        snprintf(head, sizeof(head), "%s", path);
        /* Walk up until a prefix exists. */
        while (!(real = realpath(head, NULL))) {
                if (errno != ENOENT && errno != ENOTDIR)
                        return false;
                cut = strrchr(head, '/');
                if (!cut)
                        return false;
                if (cut == head) {
                        head[1] = 0;
                        continue;
                }
                *cut = 0;
        }
        n = strlen(head);
        rest = path + n;
        if ((size_t)snprintf(buf, len, "%s", streq(real, "/") ? "" : real) >= len)
                return false;
        while (*rest) {
                size_t k;

                while (*rest == '/')
                        rest++;
                k = strcspn(rest, "/");
                if (k == 0)
                        break;
                if ((k == 1 && rest[0] == '.') || (k == 2 && rest[0] == '.' && rest[1] == '.'))
                        return false;
                n = strlen(buf);
                if (n + 1 + k >= len)
                        return false;
                buf[n] = '/';
                memcpy(buf + n + 1, rest, k);
                buf[n + 1 + k] = 0;
                rest += k;
        }
        if (!buf[0])
                snprintf(buf, len, "/");
        return true;
}

struct storage_assoc *storage_find(struct vssd *v, const char *for_vol)
{
        char norm[VSS_PATH_MAX];

        for (struct storage_assoc *a = v->assocs; a; a = a->next)
                if (streq(a->for_vol, for_vol))
                        return a;
        if (!path_normalize(for_vol, norm, sizeof(norm)))
                return NULL;
        for (struct storage_assoc *a = v->assocs; a; a = a->next)
                if (streq(a->for_vol, norm))
                        return a;
        return NULL;
}

static int assoc_put(struct vssd *v, const struct storage_assoc *a)
{
        sqlite3_stmt *st = NULL;
        int r = -EIO;

        if (sqlite3_prepare_v2(v->db, "INSERT OR REPLACE INTO storage_assoc VALUES(?,?,?)", -1, &st, NULL) == SQLITE_OK) {
                sqlite3_bind_text(st, 1, a->for_vol, -1, SQLITE_TRANSIENT);
                sqlite3_bind_text(st, 2, a->on_vol, -1, SQLITE_TRANSIENT);
                sqlite3_bind_int64(st, 3, a->max_bytes);
                if (sqlite3_step(st) == SQLITE_DONE)
                        r = 0;
        }
        sqlite3_finalize(st);
        return r;
}

static int assoc_del(struct vssd *v, const char *for_vol)
{
        sqlite3_stmt *st = NULL;
        int r = -EIO;

        if (sqlite3_prepare_v2(v->db, "DELETE FROM storage_assoc WHERE for_vol=?", -1, &st, NULL) == SQLITE_OK) {
                sqlite3_bind_text(st, 1, for_vol, -1, SQLITE_TRANSIENT);
                if (sqlite3_step(st) == SQLITE_DONE)
                        r = 0;
        }
        sqlite3_finalize(st);
        return r;
}

int storage_load(struct vssd *v)
{
        sqlite3_stmt *st = NULL;
        int n = 0;

        if (sqlite3_exec(v->db,
                         "CREATE TABLE IF NOT EXISTS storage_assoc (for_vol TEXT PRIMARY KEY, on_vol TEXT NOT NULL,"
                         " max_bytes INTEGER NOT NULL);", NULL, NULL, NULL) != SQLITE_OK)
                return -EIO;
        if (sqlite3_prepare_v2(v->db, "SELECT for_vol, on_vol, max_bytes FROM storage_assoc ORDER BY for_vol", -1, &st,
                               NULL) != SQLITE_OK)
                return -EIO;
        while (sqlite3_step(st) == SQLITE_ROW) {
                struct storage_assoc *a = calloc(1, sizeof(*a)), **p;

                if (!a)
                        break;
                a->for_vol = strdup((const char *)sqlite3_column_text(st, 0));
                a->on_vol = strdup((const char *)sqlite3_column_text(st, 1));
                a->max_bytes = sqlite3_column_int64(st, 2);
                if (!a->for_vol || !a->on_vol) {
                        assoc_free(a);
                        break;
                }
                for (p = &v->assocs; *p; p = &(*p)->next)
                        ;
                *p = a;
                n++;
        }
        sqlite3_finalize(st);
        return n;
}

void storage_done(struct vssd *v)
{
        while (v->assocs) {
                struct storage_assoc *a = v->assocs;

                v->assocs = a->next;
                assoc_free(a);
        }
}

/* Resolves a volume argument to its mount point ("" when optional and absent); false after replying. */
static bool get_volume(struct vssd *v, struct conn *c, json_int_t id, json_t *params, const char *key, bool required,
                       struct volume_info *vi)
{
        json_t *x = json_object_get(params, key);
        char err[512] = "";
        const char *s;
        vss_hresult hr;

        vi->path[0] = vi->device[0] = 0;
        if (!x || json_is_null(x)) {
                if (!required)
                        return true;
                reply_err(v, c->serial, id, VSS_E_INVALIDARG, "field '%s' (a volume, i.e. a mount point) is missing", key);
                return false;
        }
        s = json_string_value(x);
        if (!s || s[0] != '/') {
                reply_err(v, c->serial, id, VSS_E_INVALIDARG, "field '%s' must be an absolute path to a mount point", key);
                return false;
        }
        hr = volume_exact(s, vi, err, sizeof(err));
        if (VSS_FAILED(hr)) {
                reply_err(v, c->serial, id, hr, "%s", err[0] ? err : vss_hresult_message(hr));
                return false;
        }
        return true;
}

/* The for-volume: a volume, the key of an existing association (a pending
 * one, or a volume that is not mounted now), or with 'pending_ok' a path
 * that does not exist yet (the mount point of a cow volume to be created).
 * false after replying. */
static bool get_for(struct vssd *v, struct conn *c, json_int_t id, json_t *params, bool required, bool pending_ok,
                    struct volume_info *vi)
{
        json_t *x = json_object_get(params, "for");
        struct storage_assoc *a;
        char err[512] = "";
        const char *s;
        vss_hresult hr;
        struct stat st;

        if (!x || json_is_null(x) || !json_is_string(x) || json_string_value(x)[0] != '/')
                return get_volume(v, c, id, params, "for", required, vi);
        s = json_string_value(x);
        hr = volume_exact(s, vi, err, sizeof(err));
        if (VSS_SUCCEEDED(hr))
                return true;
        vi->path[0] = vi->device[0] = 0;
        a = storage_find(v, s);
        if (a) {
                snprintf(vi->path, sizeof(vi->path), "%s", a->for_vol);
                return true;
        }
        if (!pending_ok || lstat(s, &st) == 0 || errno != ENOENT) {
                reply_err(v, c->serial, id, hr, "%s", err[0] ? err : vss_hresult_message(hr));
                return false;
        }
        if (!path_normalize(s, vi->path, sizeof(vi->path))) {
                reply_err(v, c->serial, id, VSS_E_INVALIDARG,
                          "field 'for': %s is neither a volume nor a usable mount path for a cow volume to be created "
                          "(no '.' or '..' components)", s);
                return false;
        }
        return true;
}

/* Free space of the on-volume for a new diff area, against the configured minimum. */
vss_hresult storage_check_on(unsigned min_diff_area_mb, const char *on_vol, char *err, size_t errlen)
{
        uint64_t need = (uint64_t)min_diff_area_mb << 20, avail;
        struct statvfs sv;

        if (statvfs(on_vol, &sv) < 0) {
                snprintf(err, errlen, "cannot query the free space of the shadow copy storage volume %s: %s", on_vol,
                         strerror(errno));
                return VSS_E_OBJECT_NOT_FOUND;
        }
        avail = (uint64_t)sv.f_bavail * sv.f_frsize;
        if (avail < need) {
                snprintf(err, errlen,
                         "the shadow copy storage volume %s has %llu bytes free, a diff area needs at least %llu bytes "
                         "(%u MB, [storage] min_diff_area_mb in vssd.conf)", on_vol, (unsigned long long)avail,
                         (unsigned long long)need, min_diff_area_mb);
                return VSS_E_INSUFFICIENT_STORAGE;
        }
        return VSS_S_OK;
}

static uint64_t fs_size(const char *path)
{
        struct statvfs sv;

        if (statvfs(path, &sv) < 0)
                return 0;
        return (uint64_t)sv.f_blocks * sv.f_frsize;
}

/* max_bytes (integer or null) or max_percent of the on-volume; false after replying.  Below the
 * minimum: Add is E_INVALIDARG (an argument out of range), Resize VSS_E_INSUFFICIENT_STORAGE as
 * ChangeDiffAreaMaximumSize answers a nonzero size too small for a diff area (MS-SCMP). */
static bool get_max(struct vssd *v, struct conn *c, json_int_t id, json_t *params, const char *on, bool add,
                    int64_t *ret)
{
        json_t *mb = json_object_get(params, "max_bytes"), *mp = json_object_get(params, "max_percent");
        uint64_t min = (uint64_t)v->cfg.min_diff_area_mb << 20;

        if (mb && mp) {
                reply_err(v, c->serial, id, VSS_E_INVALIDARG, "give either 'max_bytes' or 'max_percent', not both");
                return false;
        }
        if (mp) {
                if (!json_is_integer(mp) || json_integer_value(mp) < 1 || json_integer_value(mp) > 100) {
                        reply_err(v, c->serial, id, VSS_E_INVALIDARG, "field 'max_percent' must be an integer in 1..100");
                        return false;
                }
                *ret = (int64_t)(fs_size(on) / 100 * (uint64_t)json_integer_value(mp));
        } else if (!mb || json_is_null(mb))
                *ret = -1;
        else if (!json_is_integer(mb) || json_integer_value(mb) < 0) {
                reply_err(v, c->serial, id, VSS_E_INVALIDARG, "field 'max_bytes' must be a byte count or null (unbounded)");
                return false;
        } else
                *ret = json_integer_value(mb);
        if (*ret >= 0 && (uint64_t)*ret < min) {
                reply_err(v, c->serial, id, add ? VSS_E_INVALIDARG : VSS_E_INSUFFICIENT_STORAGE,
                          "the maximum shadow copy storage size %lld bytes is below the minimum of %u MB "
                          "([storage] min_diff_area_mb in vssd.conf)", (long long)*ret, v->cfg.min_diff_area_mb);
                return false;
        }
        return true;
}

/* An Add, Resize or Delete waiting for the new maximum to reach the for-volume's provider. */
struct storage_change {
        uint64_t serial;
        json_int_t id;
        enum { CHANGE_ADD, CHANGE_RESIZE, CHANGE_DELETE } what;
        char for_vol[VSS_PATH_MAX], on_vol[VSS_PATH_MAX];
        bool for_mounted;
        int64_t max;
};

static void change_finish(struct vssd *v, struct storage_change *ch, vss_hresult hr, const char *err)
{
        bool add = ch->what == CHANGE_ADD;
        struct storage_assoc *a = storage_find(v, ch->for_vol), **p;

        if (VSS_FAILED(hr) && hr != VSS_E_OBJECT_NOT_FOUND) {
                if (ch->what == CHANGE_DELETE)
                        reply_err(v, ch->serial, ch->id, hr, "%s", err);
                else
                        reply_err(v, ch->serial, ch->id, hr, "the volume server of %s refused the new maximum: %s",
                                  ch->for_vol, err);
                return;
        }
        /* Another request may have changed the association while the provider worked. */
        if (add && a) {
                reply_err(v, ch->serial, ch->id, VSS_E_OBJECT_ALREADY_EXISTS,
                          "a shadow copy storage association for %s already exists (on %s)", ch->for_vol, a->on_vol);
                return;
        }
        if (!add && (!a || !streq(a->on_vol, ch->on_vol))) {
                reply_err(v, ch->serial, ch->id, VSS_E_OBJECT_NOT_FOUND, "no shadow copy storage association for %s on %s",
                          ch->for_vol, ch->on_vol);
                return;
        }
        if (ch->what == CHANGE_DELETE) {
                for (p = &v->assocs; *p; p = &(*p)->next)
                        if (*p == a) {
                                *p = a->next;
                                break;
                        }
                (void)assoc_del(v, a->for_vol);
                catalog_event(v, "info", "storage", VSS_S_OK, "shadow copy storage for %s on %s deleted", a->for_vol,
                              a->on_vol);
                assoc_free(a);
                reply_ok(v, ch->serial, ch->id, json_object());
                return;
        }
        if (add) {
                a = calloc(1, sizeof(*a));
                if (!a || !(a->for_vol = strdup(ch->for_vol)) || !(a->on_vol = strdup(ch->on_vol))) {
                        assoc_free(a);
                        reply_err(v, ch->serial, ch->id, VSS_E_OUTOFMEMORY, "out of memory");
                        return;
                }
                a->next = v->assocs;
                v->assocs = a;
        }
        a->max_bytes = ch->max;
        if (assoc_put(v, a) < 0) {
                reply_err(v, ch->serial, ch->id, VSS_E_UNEXPECTED, "cannot store the association in the catalog: %s",
                          sqlite3_errmsg(v->db));
                return;
        }
        if (ch->max < 0)
                catalog_event(v, "info", "storage", VSS_S_OK, "shadow copy storage for %s%s on %s %s, maximum unbounded",
                              a->for_vol, ch->for_mounted ? "" : " (not mounted yet)", a->on_vol,
                              add ? "added" : "resized");
        else
                catalog_event(v, "info", "storage", VSS_S_OK, "shadow copy storage for %s%s on %s %s, maximum %lld bytes",
                              a->for_vol, ch->for_mounted ? "" : " (not mounted yet)", a->on_vol,
                              add ? "added" : "resized", (long long)ch->max);
        reply_ok(v, ch->serial, ch->id, json_object());
}

static void set_max_done(struct vssd *v, struct prov_job *j)
{
        struct storage_change *ch = j->userdata;

        change_finish(v, ch, j->hr, j->error[0] ? j->error : vss_hresult_message(j->hr));
        free(ch);
}

/* Pushes the maximum to the for-volume's provider (the cow volume's server, for one) on the
 * provider worker, then records the change and replies. */
static void change_set_max(struct vssd *v, struct storage_change *ch)
{
        int r = prov_submit_diff_area(v, PROV_DIFF_SET_MAX, ch->for_vol, ch->max, set_max_done, ch, 0);

        if (r == -ENOENT)
                change_finish(v, ch, VSS_E_OBJECT_NOT_FOUND, "");
        else if (r < 0)
                reply_err(v, ch->serial, ch->id, VSS_E_OUTOFMEMORY, "out of memory");
        if (r < 0)
                free(ch);
}

/* The diff area of a cow volume on the for-volume is where the change wants it now (or the move failed). */
static void change_moved(struct vssd *v, vss_hresult hr, const char *err, void *userdata)
{
        struct storage_change *ch = userdata;

        if (VSS_FAILED(hr)) {
                reply_err(v, ch->serial, ch->id, hr, "%s", err);
                free(ch);
                return;
        }
        change_set_max(v, ch);
}

static struct storage_change *change_new(struct conn *c, json_int_t id, int what, const char *for_vol,
                                         const char *on_vol, bool for_mounted, int64_t max)
{
        struct storage_change *ch = calloc(1, sizeof(*ch));

        if (!ch)
                return NULL;
        *ch = (struct storage_change){ .serial = c->serial, .id = id, .what = what, .for_mounted = for_mounted,
                                       .max = max };
        snprintf(ch->for_vol, sizeof(ch->for_vol), "%s", for_vol);
        snprintf(ch->on_vol, sizeof(ch->on_vol), "%s", on_vol);
        return ch;
}

static void storage_add_resize(struct vssd *v, struct conn *c, json_int_t id, json_t *params, bool add)
{
        struct volume_info fv, ov;
        struct storage_change *ch;
        struct storage_assoc *a;
        char err[1024] = "";
        int64_t max;
        vss_hresult hr;

        if (!get_for(v, c, id, params, true, add, &fv) || !get_volume(v, c, id, params, "on", true, &ov))
                return;
        a = storage_find(v, fv.path);
        if (add && a) {
                reply_err(v, c->serial, id, VSS_E_OBJECT_ALREADY_EXISTS,
                          "a shadow copy storage association for %s already exists (on %s)", fv.path, a->on_vol);
                return;
        }
        if (!add && (!a || !streq(a->on_vol, ov.path))) {
                reply_err(v, c->serial, id, VSS_E_OBJECT_NOT_FOUND, "no shadow copy storage association for %s on %s",
                          fv.path, ov.path);
                return;
        }
        /* A diff area on the volume it protects: every copy-on-write would
         * write into the volume being copied, and freezing it would freeze
         * its own diff area. */
        if (add && (streq(fv.path, ov.path) || (fv.device[0] && volume_same_fs(fv.path, ov.path)))) {
                reply_err(v, c->serial, id, VSS_E_VOLUME_NOT_SUPPORTED,
                          "the shadow copy storage of %s cannot be on %s: a diff area must be on another filesystem "
                          "than the volume it protects", fv.path, ov.path);
                return;
        }
        if (!get_max(v, c, id, params, ov.path, add, &max))
                return;
        if (add) {
                hr = storage_check_on(v->cfg.min_diff_area_mb, ov.path, err, sizeof(err));
                if (VSS_FAILED(hr)) {
                        reply_err(v, c->serial, id, hr, "%s", err);
                        return;
                }
        }
        ch = change_new(c, id, add ? CHANGE_ADD : CHANGE_RESIZE, fv.path, ov.path, fv.device[0] != 0, max);
        if (!ch) {
                reply_err(v, c->serial, id, VSS_E_OUTOFMEMORY, "out of memory");
                return;
        }
        if (add)
                cowvol_move_diff(v, fv.path, ov.path, max, change_moved, ch);
        else
                change_set_max(v, ch);
}

static void storage_delete(struct vssd *v, struct conn *c, json_int_t id, json_t *params)
{
        struct volume_info fv, ov;
        struct storage_change *ch;
        struct storage_assoc *a;
        size_t n;

        if (!get_for(v, c, id, params, true, false, &fv) || !get_volume(v, c, id, params, "on", false, &ov))
                return;
        a = storage_find(v, fv.path);
        if (!a || (ov.path[0] && !streq(a->on_vol, ov.path))) {
                reply_err(v, c->serial, id, VSS_E_OBJECT_NOT_FOUND, "no shadow copy storage association for %s%s%s",
                          fv.path, ov.path[0] ? " on " : "", ov.path);
                return;
        }
        n = shadows_on_volume(v, fv.path);
        if (n > 0) {
                reply_err(v, c->serial, id, VSS_E_VOLUME_IN_USE,
                          "%s has %zu shadow copies using this storage on %s: delete them first", fv.path, n, a->on_vol);
                return;
        }
        ch = change_new(c, id, CHANGE_DELETE, fv.path, a->on_vol, fv.device[0] != 0, -1);
        if (!ch) {
                reply_err(v, c->serial, id, VSS_E_OUTOFMEMORY, "out of memory");
                return;
        }
        /* Without its association a cow volume's diff area goes back to the
         * state directory, unbounded, as for a volume created without one. */
        cowvol_move_diff(v, fv.path, NULL, -1, change_moved, ch);
}

static json_t *pct(uint64_t x, uint64_t of)
{
        return of ? json_integer((json_int_t)(x * 100 / of)) : json_null();
}

/* A listing waiting for the figures of its rows' diff areas. */
struct storage_listing {
        uint64_t serial;
        json_int_t id;
        json_t *arr;
        size_t pending;
};

static void listing_done(struct vssd *v, struct storage_listing *l)
{
        reply_ok(v, l->serial, l->id, json_pack("{s:o}", "associations", l->arr));
        free(l);
}

static void row_figures_done(struct vssd *v, struct prov_job *j)
{
        struct storage_listing *l = j->userdata;
        json_t *row = json_array_get(l->arr, (size_t)j->tag);
        const struct vss_provider_diff_area *d = &j->diff_area;

        if (VSS_SUCCEEDED(j->hr) && row) {
                json_int_t on_size = json_integer_value(json_object_get(row, "on_size_bytes"));

                json_object_set_new(row, "diff_area", json_str_or_null(d->path[0] ? d->path : NULL));
                json_object_set_new(row, "used_bytes", json_integer((json_int_t)d->used_bytes));
                json_object_set_new(row, "allocated_bytes", json_integer((json_int_t)d->allocated_bytes));
                json_object_set_new(row, "used_percent", pct(d->used_bytes, (uint64_t)on_size));
                json_object_set_new(row, "allocated_percent", pct(d->allocated_bytes, (uint64_t)on_size));
        } else if (j->hr != VSS_E_OBJECT_NOT_FOUND)
                log_warn("storage: no figures from the volume server of %s: %s", j->path, j->error);
        if (--l->pending == 0)
                listing_done(v, l);
}

static void storage_list(struct vssd *v, struct conn *c, json_int_t id, json_t *params)
{
        struct volume_info fv = { .path = "" }, ov = { .path = "" };
        struct storage_listing *l;

        l = calloc(1, sizeof(*l));
        if (!l || !(l->arr = json_array())) {
                free(l);
                reply_err(v, c->serial, id, VSS_E_OUTOFMEMORY, "out of memory");
                return;
        }
        l->serial = c->serial;
        l->id = id;
        if (!get_for(v, c, id, params, false, false, &fv) || !get_volume(v, c, id, params, "on", false, &ov)) {
                json_decref(l->arr);
                free(l);
                return;
        }
        /* One extra count until every row is queued, so that no early answer replies. */
        l->pending = 1;
        for (struct storage_assoc *a = v->assocs; a; a = a->next) {
                struct volume_info fi, oi;
                uint64_t on_size = fs_size(a->on_vol);
                char err[512];

                if ((fv.path[0] && !streq(fv.path, a->for_vol)) || (ov.path[0] && !streq(ov.path, a->on_vol)))
                        continue;
                /* Exact: a pending for-volume's path, or a directory where it
                 * is not mounted now, must not show the device it lies on. */
                if (VSS_FAILED(volume_exact(a->for_vol, &fi, err, sizeof(err))))
                        fi.device[0] = 0;
                if (VSS_FAILED(volume_of_path(a->on_vol, &oi, err, sizeof(err))))
                        oi.device[0] = 0;
                /* The figures come from the for-volume's provider, if it keeps a diff area. */
                json_array_append_new(l->arr, json_pack("{s:s, s:s, s:s, s:s, s:n, s:I, s:I, s:o, s:I, s:o, s:o, s:o}",
                        "for", a->for_vol, "for_device", fi.device, "on", a->on_vol, "on_device", oi.device,
                        "diff_area", "used_bytes", (json_int_t)0, "allocated_bytes", (json_int_t)0,
                        "max_bytes", a->max_bytes < 0 ? json_null() : json_integer(a->max_bytes),
                        "on_size_bytes", (json_int_t)on_size, "used_percent", pct(0, on_size),
                        "allocated_percent", pct(0, on_size),
                        "max_percent", a->max_bytes < 0 ? json_integer(100) : pct((uint64_t)a->max_bytes, on_size)));
                if (fi.device[0] && prov_submit_diff_area(v, PROV_DIFF_QUERY, a->for_vol, 0, row_figures_done, l,
                                                          json_array_size(l->arr) - 1) == 0)
                        l->pending++;
        }
        if (--l->pending == 0)
                listing_done(v, l);
}

void method_storage(struct vssd *v, struct conn *c, json_int_t id, json_t *params, const char *method)
{
        if (streq(method, "Storage.List"))
                storage_list(v, c, id, params);
        else if (streq(method, "Storage.Add"))
                storage_add_resize(v, c, id, params, true);
        else if (streq(method, "Storage.Resize"))
                storage_add_resize(v, c, id, params, false);
        else
                storage_delete(v, c, id, params);
}
