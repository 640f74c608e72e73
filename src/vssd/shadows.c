/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Shadow copies: the in-memory list mirrors the catalog's shadows table
 * (written through on every change).  Deletion, exposure and unexposure go
 * to the provider worker; replies are sent when the jobs come back, to the
 * connection's serial, which may be gone by then.
 */

#include <stdio.h>
#include <sys/stat.h>

#include "basic/string-util.h"
#include "vssd/attrs.h"
#include "vssd/vssd.h"

void shadow_free(struct shadow *sh)
{
        if (!sh)
                return;
        free(sh->exposed_path);
        free(sh->published_path);
        free(sh);
}

struct shadow *shadow_find(struct vssd *v, const vss_id *id)
{
        for (struct shadow *sh = v->shadows; sh; sh = sh->next)
                if (vss_id_equal(&sh->snap.snapshot_id, id))
                        return sh;
        return NULL;
}

size_t shadows_on_volume(struct vssd *v, const char *volume)
{
        size_t n = 0;

        for (struct shadow *sh = v->shadows; sh; sh = sh->next)
                n += streq(sh->snap.volume, volume);
        return n;
}

json_t *shadow_prop_json(struct vssd *v, struct shadow *sh)
{
        char host[256] = "localhost", text[512];
        int32_t attrs = sh->attributes | sh->snap.attributes;
        vss_id pid = VSS_ID_NULL;
        json_t *o;

        (void)gethostname(host, sizeof(host) - 1);
        if (sh->exposed_path)
                attrs |= VSS_VOLSNAP_ATTR_EXPOSED_LOCALLY;
        attributes_text(attrs, text, sizeof(text));
        if (sh->provider >= 0)
                (void)vss_id_parse(provider_table[sh->provider]->provider_id, &pid);
        o = json_pack("{s:o, s:o, s:i, s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:i, s:s, s:s, s:i, s:I, s:i}",
                         "shadow_id", json_id(&sh->snap.snapshot_id), "set_id", json_id(&sh->snap.set_id),
                         "snapshots_count", sh->snapshots_count, "device", sh->snap.device, "original_volume",
                         sh->snap.volume, "original_device", sh->snap.volume_device, "originating_machine", host,
                         "service_machine", host, "exposed_name", json_str_or_null(sh->exposed_path), "exposed_path",
                         json_str_or_null(sh->exposed_path), "provider_id",
                         sh->provider >= 0 ? json_id(&pid) : json_null(), "provider_name",
                         sh->provider >= 0 ? json_string(provider_table[sh->provider]->name) : json_null(),
                         "attributes", attrs, "attributes_text", text, "type",
                         context_type_name(sh->snap.context) ?: "Unknown", "context", sh->snap.context,
                         "creation_time_us", (json_int_t)sh->creation_time_us, "state", 12);
        if (o)
                json_object_set_new(o, "published_path", json_str_or_null(sh->published_path));
        return o;
}

/* ---- deletion ---- */

/* Out of the list and the catalog, and freed; another shadow copy of the
 * volume may take its previous-version name. */
static void shadow_drop(struct vssd *v, struct shadow *sh)
{
        char volume[VSS_PATH_MAX];

        fmt_trunc(volume, sizeof(volume), "%s", sh->snap.volume);
        pubver_unpublish(v, sh);
        for (struct shadow **pp = &v->shadows; *pp; pp = &(*pp)->next)
                if (*pp == sh) {
                        *pp = sh->next;
                        break;
                }
        (void)catalog_shadow_del(v, &sh->snap.snapshot_id);
        shadow_free(sh);
        pubver_sync(v, volume);
}

/* Only directories we created under the state dir are ours to remove; a
 * directory the admin named with /at= stays, even when vssd made it. */
static void rmdir_if_ours(struct vssd *v, const char *path)
{
        size_t n = strlen(v->state_dir);

        while (n > 1 && v->state_dir[n - 1] == '/')
                n--;
        if (strncmp(path, v->state_dir, n) == 0 && path[n] == '/')
                (void)rmdir(path);
}

struct del_ctx {
        vss_id id;
        void (*done)(struct vssd *, void *, vss_hresult);
        void *ud;
};

static void delete_done(struct vssd *v, struct prov_job *j)
{
        struct del_ctx *d = j->userdata;
        struct shadow *sh = shadow_find(v, &d->id);
        char idbuf[VSS_ID_STRING_MAX];

        vss_id_format(&d->id, idbuf);
        if (VSS_FAILED(j->hr)) {
                catalog_event(v, "error", "provider", j->hr, "cannot delete shadow copy %s: %s", idbuf,
                              j->error[0] ? j->error : vss_hresult_message(j->hr));
                if (sh) {
                        sh->deleting = false;
                        pubver_sync(v, sh->snap.volume);       /* published again */
                }
        } else if (sh) {
                catalog_event(v, "info", "shadow", VSS_S_OK, "shadow copy %s of %s deleted", idbuf, sh->snap.volume);
                shadow_drop(v, sh);
        }
        if (d->done)
                d->done(v, d->ud, j->hr);
        free(d);
}

static void unexpose_then_delete_done(struct vssd *v, struct prov_job *j)
{
        struct del_ctx *d = j->userdata;
        struct shadow *sh = shadow_find(v, &d->id);

        if (sh && VSS_SUCCEEDED(j->hr)) {
                rmdir_if_ours(v, j->path);
                free(sh->exposed_path);
                sh->exposed_path = NULL;
        }
        /* The delete job was queued right behind us; nothing else to do. */
}

void shadow_delete(struct vssd *v, struct shadow *sh, void (*done)(struct vssd *, void *, vss_hresult), void *ud)
{
        struct del_ctx *d;
        struct prov_job *j;

        if (sh->deleting || sh->provider < 0 || !v->providers[sh->provider].ok) {
                if (!sh->deleting)
                        catalog_event(v, "error", "shadow", VSS_E_PROVIDER_NOT_REGISTERED,
                                      "cannot delete a shadow copy of %s: its provider is not available", sh->snap.volume);
                if (done)
                        done(v, ud, sh->deleting ? VSS_S_OK : VSS_E_PROVIDER_NOT_REGISTERED);
                return;
        }
        d = calloc(1, sizeof(*d));
        if (!d) {
                if (done)
                        done(v, ud, VSS_E_OUTOFMEMORY);
                return;
        }
        d->id = sh->snap.snapshot_id;
        d->done = done;
        d->ud = ud;
        /* The delete job owns 'd' and frees it in delete_done.  It must exist
         * before the unexpose job (which borrows 'd') is queued: failing to
         * allocate it afterwards would free 'd' under the queued job. */
        j = prov_job_new(PROV_DELETE, sh->provider, &sh->snap, 1);
        if (!j) {
                free(d);
                if (done)
                        done(v, ud, VSS_E_OUTOFMEMORY);
                return;
        }
        j->done = delete_done;
        j->userdata = d;
        sh->deleting = true;
        /* Unmounted before the provider deletes it: queued ahead of the delete job. */
        pubver_unpublish(v, sh);
        if (sh->exposed_path) {
                struct prov_job *u = prov_job_new(PROV_UNEXPOSE, sh->provider, &sh->snap, 1);

                if (u) {
                        snprintf(u->path, sizeof(u->path), "%s", sh->exposed_path);
                        u->done = unexpose_then_delete_done;
                        u->userdata = d;
                        prov_submit(v, u);
                }
        }
        prov_submit(v, j);
}

static void forget_unexpose_done(struct vssd *v, struct prov_job *j)
{
        char idbuf[VSS_ID_STRING_MAX];

        vss_id_format(&j->snaps[0].snapshot_id, idbuf);
        if (VSS_FAILED(j->hr)) {
                catalog_event(v, "error", "shadow", j->hr,
                              "cannot remove the exposure at %s of shadow copy %s, which no longer exists: %s", j->path,
                              idbuf, j->error[0] ? j->error : vss_hresult_message(j->hr));
                return;
        }
        rmdir_if_ours(v, j->path);
        catalog_event(v, "warning", "shadow", VSS_S_OK, "removed the exposure at %s of shadow copy %s, %s", j->path,
                      idbuf, (const char *)j->userdata);
}

void shadow_forget(struct vssd *v, struct shadow *sh, const char *why)
{
        if (sh->exposed_path && sh->provider >= 0 && v->providers[sh->provider].ok) {
                /* The job holds its own copy of the snapshot: 'sh' goes now. */
                struct prov_job *u = prov_job_new(PROV_UNEXPOSE, sh->provider, &sh->snap, 1);

                if (u) {
                        snprintf(u->path, sizeof(u->path), "%s", sh->exposed_path);
                        u->done = forget_unexpose_done;
                        u->userdata = (void *)why;
                        prov_submit(v, u);
                }
        }
        shadow_drop(v, sh);
}

void shadows_release_session(struct vssd *v, const vss_id *session_id)
{
        for (struct shadow *sh = v->shadows; sh; sh = sh->next)
                if (vss_id_equal(&sh->owner_session, session_id) &&
                    !(sh->snap.context & VSS_VOLSNAP_ATTR_NO_AUTO_RELEASE))
                        shadow_delete(v, sh, NULL, NULL);
}

/* ---- startup recovery ---- */

void shadows_recover(struct vssd *v)
{
        int n = catalog_shadows_load(v);
        struct shadow *next;

        if (n < 0) {
                catalog_event(v, "error", "catalog", VSS_E_UNEXPECTED, "cannot load shadow copies from the catalog");
                return;
        }
        /* Before anything is dropped: a shadow copy forgotten below is unpublished too. */
        if (pubver_load(v) < 0)
                catalog_event(v, "error", "catalog", VSS_E_UNEXPECTED, "cannot load the previous versions publications");
        for (struct shadow *sh = v->shadows; sh; sh = next) {
                char idbuf[VSS_ID_STRING_MAX];
                struct provider *p = sh->provider >= 0 ? &v->providers[sh->provider] : NULL;

                next = sh->next;
                vss_id_format(&sh->snap.snapshot_id, idbuf);
                if (!(sh->snap.context & VSS_VOLSNAP_ATTR_PERSISTENT)) {
                        catalog_event(v, "warning", "recovery", VSS_S_OK,
                                      "deleting non-persistent shadow copy %s of %s left by a previous vssd", idbuf,
                                      sh->snap.volume);
                        shadow_delete(v, sh, NULL, NULL);
                        continue;
                }
                if (p && p->ok && p->ops->exists) {
                        bool exists = true;

                        /* Called on the loop thread: we are not serving anyone yet. */
                        if (VSS_SUCCEEDED(p->ops->exists(p->state, &sh->snap, &exists)) && !exists) {
                                catalog_event(v, "warning", "recovery", VSS_E_OBJECT_NOT_FOUND,
                                              "persistent shadow copy %s of %s no longer exists: dropped from the catalog",
                                              idbuf, sh->snap.volume);
                                shadow_forget(v, sh, "which disappeared while vssd was not running");
                        }
                }
        }
        pubver_start(v);
        log_info("catalog: %d shadow copies on record", n);
}

/* ---- admin methods ---- */

static bool filter_match(struct shadow *sh, const char *volume, const vss_id *sid, const vss_id *setid)
{
        if (volume && !streq(sh->snap.volume, volume))
                return false;
        if (sid && !vss_id_equal(&sh->snap.snapshot_id, sid))
                return false;
        if (setid && !vss_id_equal(&sh->snap.set_id, setid))
                return false;
        return true;
}

/* Parses the optional shadow_id/set_id/volume filters; false after replying. */
static bool parse_filters(struct vssd *v, struct conn *c, json_int_t id, json_t *params, const char **ret_volume,
                          vss_id *sid, vss_id *setid, bool *has_sid, bool *has_setid)
{
        json_t *x;

        *has_sid = *has_setid = false;
        *ret_volume = NULL;
        if ((x = json_object_get(params, "shadow_id")) && !json_is_null(x)) {
                if (!json_get_id(params, "shadow_id", sid)) {
                        reply_err(v, c->serial, id, VSS_E_INVALIDARG, "field 'shadow_id' is not a GUID");
                        return false;
                }
                *has_sid = true;
        }
        if ((x = json_object_get(params, "set_id")) && !json_is_null(x)) {
                if (!json_get_id(params, "set_id", setid)) {
                        reply_err(v, c->serial, id, VSS_E_INVALIDARG, "field 'set_id' is not a GUID");
                        return false;
                }
                *has_setid = true;
        }
        if ((x = json_object_get(params, "volume")) && !json_is_null(x)) {
                if (!json_is_string(x)) {
                        reply_err(v, c->serial, id, VSS_E_INVALIDARG, "field 'volume' must be a string");
                        return false;
                }
                *ret_volume = json_string_value(x);
        }
        return true;
}

struct del_batch {
        uint64_t serial;
        json_int_t id;
        int pending;
        int deleted;
        json_t *ids;
        vss_hresult first_error;
};

static void batch_one_done(struct vssd *v, void *ud, vss_hresult hr)
{
        struct del_batch *b = ud;

        if (VSS_FAILED(hr) && b->first_error == VSS_S_OK)
                b->first_error = hr;
        if (--b->pending > 0)
                return;
        if (b->deleted == 0 && b->first_error != VSS_S_OK)
                reply_err(v, b->serial, b->id, b->first_error, "the provider could not delete the shadow copy");
        else
                reply_ok(v, b->serial, b->id, json_pack("{s:i, s:O}", "deleted", b->deleted, "ids", b->ids));
        json_decref(b->ids);
        free(b);
}

static void shadows_delete(struct vssd *v, struct conn *c, json_int_t id, json_t *params)
{
        const char *volume;
        vss_id sid, setid;
        bool has_sid, has_setid, all = json_get_bool(params, "all", false), oldest = json_get_bool(params, "oldest", false);
        struct del_batch *b;
        struct shadow *old = NULL;

        if (!parse_filters(v, c, id, params, &volume, &sid, &setid, &has_sid, &has_setid))
                return;
        if (!all && !oldest && !has_sid && !has_setid && !volume) {
                reply_err(v, c->serial, id, VSS_E_INVALIDARG,
                          "say what to delete: 'shadow_id', 'set_id', 'volume', 'oldest' or 'all'");
                return;
        }
        b = calloc(1, sizeof(*b));
        if (!b) {
                reply_err(v, c->serial, id, VSS_E_OUTOFMEMORY, "out of memory");
                return;
        }
        b->serial = c->serial;
        b->id = id;
        b->ids = json_array();
        b->pending = 1; /* held until every job is queued */
        for (struct shadow *sh = v->shadows; sh; sh = sh->next) {
                if (sh->deleting || !filter_match(sh, volume, has_sid ? &sid : NULL, has_setid ? &setid : NULL))
                        continue;
                if (oldest) {
                        if (!old || sh->creation_time_us < old->creation_time_us)
                                old = sh;
                        continue;
                }
                b->pending++;
                b->deleted++;
                json_array_append_new(b->ids, json_id(&sh->snap.snapshot_id));
        }
        if (oldest && old) {
                b->pending++;
                b->deleted++;
                json_array_append_new(b->ids, json_id(&old->snap.snapshot_id));
        }
        if (b->deleted == 0 && (has_sid || has_setid)) {
                json_decref(b->ids);
                free(b);
                reply_err(v, c->serial, id, VSS_E_OBJECT_NOT_FOUND, "no shadow copy matches");
                return;
        }
        {
                size_t i;
                json_t *x;

                json_array_foreach(b->ids, i, x) {
                        vss_id t;
                        struct shadow *sh;

                        (void)vss_id_parse(json_string_value(x), &t);
                        sh = shadow_find(v, &t);
                        if (sh)
                                shadow_delete(v, sh, batch_one_done, b);
                        else
                                batch_one_done(v, b, VSS_S_OK);
                }
        }
        batch_one_done(v, b, VSS_S_OK);
}

struct expose_ctx {
        uint64_t serial;
        json_int_t id;
        vss_id sid;
        bool made_dir;
};

static void expose_done(struct vssd *v, struct prov_job *j)
{
        struct expose_ctx *e = j->userdata;
        struct shadow *sh = shadow_find(v, &e->sid);
        char idbuf[VSS_ID_STRING_MAX];

        vss_id_format(&e->sid, idbuf);
        if (VSS_FAILED(j->hr)) {
                if (e->made_dir)
                        (void)rmdir(j->path);
                reply_err(v, e->serial, e->id, j->hr, "cannot expose %s at %s: %s", idbuf, j->path,
                          j->error[0] ? j->error : vss_hresult_message(j->hr));
        } else if (!sh) {
                reply_err(v, e->serial, e->id, VSS_E_OBJECT_NOT_FOUND, "shadow copy %s was deleted meanwhile", idbuf);
        } else {
                free(sh->exposed_path);
                sh->exposed_path = strdup(j->path);
                (void)catalog_shadow_put(v, sh);
                catalog_event(v, "info", "shadow", VSS_S_OK, "shadow copy %s exposed at %s", idbuf, j->path);
                reply_ok(v, e->serial, e->id, json_pack("{s:s}", "exposed_path", j->path));
        }
        free(e);
}

static void unexpose_done(struct vssd *v, struct prov_job *j)
{
        struct expose_ctx *e = j->userdata;
        struct shadow *sh = shadow_find(v, &e->sid);
        char idbuf[VSS_ID_STRING_MAX];

        vss_id_format(&e->sid, idbuf);
        if (VSS_FAILED(j->hr))
                reply_err(v, e->serial, e->id, j->hr, "cannot unexpose %s: %s", idbuf,
                          j->error[0] ? j->error : vss_hresult_message(j->hr));
        else {
                rmdir_if_ours(v, j->path);
                if (sh) {
                        free(sh->exposed_path);
                        sh->exposed_path = NULL;
                        (void)catalog_shadow_put(v, sh);
                }
                catalog_event(v, "info", "shadow", VSS_S_OK, "shadow copy %s unexposed", idbuf);
                reply_ok(v, e->serial, e->id, json_object());
        }
        free(e);
}

static void shadows_expose(struct vssd *v, struct conn *c, json_int_t id, json_t *params, bool expose)
{
        struct expose_ctx *e;
        struct shadow *sh;
        struct prov_job *j;
        const char *path = json_get_str(params, "path");
        char buf[VSS_PATH_MAX], idbuf[VSS_ID_STRING_MAX];
        vss_id sid;

        if (!json_get_id(params, "shadow_id", &sid)) {
                reply_err(v, c->serial, id, VSS_E_INVALIDARG, "field 'shadow_id' is missing or not a GUID");
                return;
        }
        if (json_object_get(params, "path") && !json_is_null(json_object_get(params, "path")) &&
            (!path || path[0] != '/')) {
                reply_err(v, c->serial, id, VSS_E_INVALIDARG, "field 'path' must be an absolute path");
                return;
        }
        sh = shadow_find(v, &sid);
        if (!sh || sh->deleting) {
                reply_err(v, c->serial, id, VSS_E_OBJECT_NOT_FOUND, "no shadow copy %s", vss_id_format(&sid, idbuf));
                return;
        }
        if (sh->provider < 0 || !v->providers[sh->provider].ok) {
                reply_err(v, c->serial, id, VSS_E_PROVIDER_NOT_REGISTERED, "the provider of this shadow copy is not available");
                return;
        }
        if (expose && sh->exposed_path) {
                reply_err(v, c->serial, id, VSS_E_OBJECT_ALREADY_EXISTS, "shadow copy is already exposed at %s",
                          sh->exposed_path);
                return;
        }
        if (!expose && !sh->exposed_path) {
                reply_err(v, c->serial, id, VSS_E_BAD_STATE, "shadow copy is not exposed");
                return;
        }
        e = calloc(1, sizeof(*e));
        j = prov_job_new(expose ? PROV_EXPOSE : PROV_UNEXPOSE, sh->provider, &sh->snap, 1);
        if (!e || !j) {
                free(e);
                prov_job_free(j);
                reply_err(v, c->serial, id, VSS_E_OUTOFMEMORY, "out of memory");
                return;
        }
        e->serial = c->serial;
        e->id = id;
        e->sid = sid;
        if (expose) {
                if (!path) {
                        snprintf(buf, sizeof(buf), "%s/exposed", v->state_dir);
                        (void)mkdir(buf, 0755);
                        snprintf(buf, sizeof(buf), "%s/exposed/%s", v->state_dir, vss_id_format(&sid, idbuf));
                        path = buf;
                }
                if (mkdir(path, 0755) == 0)
                        e->made_dir = true;
                else if (errno != EEXIST) {
                        reply_err(v, c->serial, id, VSS_E_INVALIDARG, "cannot create %s: %s", path, strerror(errno));
                        free(e);
                        prov_job_free(j);
                        return;
                }
                snprintf(j->path, sizeof(j->path), "%s", path);
                j->done = expose_done;
        } else {
                snprintf(j->path, sizeof(j->path), "%s", sh->exposed_path);
                j->done = unexpose_done;
        }
        j->userdata = e;
        prov_submit(v, j);
}

/* ---- revert (RevertToSnapshot) ---- */

/*
 * One revert at a time, in the service: it takes a volume offline and holds
 * the provider worker (FIFO) until the volume is back, and snapshot sets and
 * restores wait for it (0x80042316) as it waits for them.  What becomes of
 * the shadow copies (docs/vssadmin.md, "Revert"): the target and the older
 * ones stay; the newer ones are deleted, through the provider like any
 * deletion (the cow engine has already discarded its own, and says so with
 * "discarded" events), so catalog and provider agree.
 */
struct revert {
        uint64_t serial;
        json_int_t id;
        vss_id sid;
        char volume[VSS_PATH_MAX];
        json_t *newer;                  /* ids of the volume's newer shadow copies, taken at the start */
        char text[VSS_PATH_MAX + 128];
};

void shadows_revert_free(struct revert *r)
{
        if (!r)
                return;
        json_decref(r->newer);
        free(r);
}

const char *shadows_reverting_volume(struct vssd *v)
{
        return v->reverting ? v->reverting->volume : NULL;
}

const char *shadows_revert_running(struct vssd *v)
{
        return v->reverting ? v->reverting->text : NULL;
}

static void revert_done(struct vssd *v, struct prov_job *j)
{
        struct revert *r = j->userdata;
        struct vss_provider_snapshot *snap = &j->snaps[0];
        char idbuf[VSS_ID_STRING_MAX];
        json_t *x;
        size_t i;

        v->reverting = NULL;
        vss_id_format(&r->sid, idbuf);
        /* The cow provider attached the volume again (or could not): vssd's record follows. */
        cowvol_reverted(v, snap->provider_data, snap->volume_device);
        if (VSS_FAILED(j->hr)) {
                pubver_sync(v, r->volume);      /* published again, as before */
                catalog_event(v, "error", "shadow", j->hr, "cannot revert %s to shadow copy %s: %s", r->volume, idbuf,
                              j->error[0] ? j->error : vss_hresult_message(j->hr));
                reply_err(v, r->serial, r->id, j->hr, "cannot revert %s to shadow copy %s: %s", r->volume, idbuf,
                          j->error[0] ? j->error : vss_hresult_message(j->hr));
                shadows_revert_free(r);
                return;
        }
        for (struct shadow *sh = v->shadows; sh; sh = sh->next)
                if (streq(sh->snap.volume, r->volume) && snap->volume_device[0] &&
                    !streq(sh->snap.volume_device, snap->volume_device)) {
                        snprintf(sh->snap.volume_device, sizeof(sh->snap.volume_device), "%s", snap->volume_device);
                        (void)catalog_shadow_put(v, sh);
                }
        /* The cow engine's "discarded" events may have dropped some of them already. */
        json_array_foreach(r->newer, i, x) {
                vss_id nid;
                struct shadow *sh;

                if (vss_id_parse(json_string_value(x), &nid) == VSS_S_OK && (sh = shadow_find(v, &nid)) &&
                    !sh->deleting)
                        shadow_delete(v, sh, NULL, NULL);
        }
        /* The shadow copies kept are published again on the reverted volume. */
        pubver_sync(v, r->volume);
        catalog_event(v, "info", "shadow", VSS_S_OK,
                      "volume %s reverted to shadow copy %s; %zu newer shadow copies of it deleted", r->volume, idbuf,
                      json_array_size(r->newer));
        reply_ok(v, r->serial, r->id,
                 json_pack("{s:o, s:s, s:O}", "shadow_id", json_id(&r->sid), "volume", r->volume, "deleted", r->newer));
        shadows_revert_free(r);
}

static void shadows_revert(struct vssd *v, struct conn *c, json_int_t id, json_t *params)
{
        char idbuf[VSS_ID_STRING_MAX];
        struct shadow *sh;
        struct prov_job *j;
        struct revert *r;
        vss_id sid;

        if (!json_get_id(params, "shadow_id", &sid)) {
                reply_err(v, c->serial, id, VSS_E_INVALIDARG, "field 'shadow_id' is missing or not a GUID");
                return;
        }
        vss_id_format(&sid, idbuf);
        sh = shadow_find(v, &sid);
        if (!sh || sh->deleting) {
                reply_err(v, c->serial, id, VSS_E_OBJECT_NOT_FOUND, "no shadow copy %s", idbuf);
                return;
        }
        if (v->reverting) {
                reply_err(v, c->serial, id, VSS_E_REVERT_IN_PROGRESS, "%s; one revert runs at a time",
                          v->reverting->text);
                return;
        }
        if (v->set_owner) {
                reply_err(v, c->serial, id, VSS_E_SNAPSHOT_SET_IN_PROGRESS,
                          set_phase_is_restore(v->set_owner->phase)
                                  ? "a restore of pid %d is between PreRestore and PostRestore"
                                  : "a snapshot set of pid %d is being created",
                          (int)v->set_owner->pid);
                return;
        }
        if (sh->provider < 0 || !v->providers[sh->provider].ok) {
                reply_err(v, c->serial, id, VSS_E_PROVIDER_NOT_REGISTERED,
                          "the provider of shadow copy %s is not available", idbuf);
                return;
        }
        if (!v->providers[sh->provider].ops->revert) {
                reply_err(v, c->serial, id, VSS_E_NOTIMPL, "%s cannot revert a volume",
                          v->providers[sh->provider].ops->name);
                return;
        }
        /* RevertToSnapshot: "Revert is only supported for persistent shadow copies." */
        if (!(sh->snap.context & VSS_VOLSNAP_ATTR_PERSISTENT)) {
                reply_err(v, c->serial, id, VSS_E_UNSUPPORTED_CONTEXT,
                          "shadow copy %s is not persistent: only persistent shadow copies can be reverted to", idbuf);
                return;
        }
        r = calloc(1, sizeof(*r));
        j = prov_job_new(PROV_REVERT, sh->provider, &sh->snap, 1);
        if (r)
                r->newer = json_array();
        if (!r || !j || !r->newer) {
                shadows_revert_free(r);
                prov_job_free(j);
                reply_err(v, c->serial, id, VSS_E_OUTOFMEMORY, "out of memory");
                return;
        }
        r->serial = c->serial;
        r->id = id;
        r->sid = sid;
        for (struct shadow *o = v->shadows; o; o = o->next)
                if (streq(o->snap.volume, sh->snap.volume) && !o->deleting && o != sh &&
                    o->creation_time_us > sh->creation_time_us)
                        json_array_append_new(r->newer, json_id(&o->snap.snapshot_id));
        snprintf(r->volume, sizeof(r->volume), "%s", sh->snap.volume);
        snprintf(r->text, sizeof(r->text), "a revert of %s to shadow copy %s is running", sh->snap.volume, idbuf);
        j->done = revert_done;
        j->userdata = r;
        v->reverting = r;
        catalog_event(v, "info", "shadow", VSS_S_OK, "reverting %s to shadow copy %s", sh->snap.volume, idbuf);
        /* Its published shadow copies are mounts in or on the volume, which would keep it
         * busy: they are unmounted first (queued ahead of the revert) and come back after it. */
        pubver_sync(v, r->volume);
        prov_submit(v, j);
}

void method_shadows(struct vssd *v, struct conn *c, json_int_t id, json_t *params, const char *method)
{
        if (streq(method, "Shadows.Query")) {
                const char *volume;
                vss_id sid, setid;
                bool has_sid, has_setid;
                json_t *a;

                if (!parse_filters(v, c, id, params, &volume, &sid, &setid, &has_sid, &has_setid))
                        return;
                a = json_array();
                for (struct shadow *sh = v->shadows; sh; sh = sh->next)
                        if (!sh->deleting &&
                            filter_match(sh, volume, has_sid ? &sid : NULL, has_setid ? &setid : NULL))
                                json_array_append_new(a, shadow_prop_json(v, sh));
                /* A cluster set: the other hosts' shadow copies, from their host records. */
                if (has_setid && v->cluster) {
                        json_t *remote = vcset_remote_shadows(v, &setid);

                        json_array_extend(a, remote);
                        json_decref(remote);
                }
                reply_ok(v, c->serial, id, json_pack("{s:o}", "shadows", a));
        } else if (streq(method, "Shadows.Delete"))
                shadows_delete(v, c, id, params);
        else if (streq(method, "Shadows.Revert"))
                shadows_revert(v, c, id, params);
        else if (streq(method, "Shadows.Expose"))
                shadows_expose(v, c, id, params, true);
        else
                shadows_expose(v, c, id, params, false);
}
