/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Backup sessions: one per requester connection (one IVssBackupComponents).
 * Each Backup.* call either answers at once or starts a sequence of the
 * session's snapshot set (set.c), which answers it when it ends.  This file
 * checks the calls' arguments and phases, builds their answers, and wires the
 * set's operations (struct set_ops) to the writer registry, the provider
 * worker, the catalog and the requester's connection.
 */

#include <stdio.h>

#include "basic/string-util.h"
#include "basic/writer-state.h"
#include "vssd/attrs.h"
#include "vssd/volume.h"
#include "vssd/vssd.h"

static struct session *session_alloc(struct vssd *v, const struct set_ops *ops)
{
        struct session *s = calloc(1, sizeof(*s));

        if (!s)
                return NULL;
        s->vssd = v;
        vss_id_generate(&s->session_id);
        s->context = VSS_CTX_BACKUP;
        snprintf(s->backup_type, sizeof(s->backup_type), "full");
        s->components = json_array();
        s->excluded = json_array();
        s->call_id = -1;
        s->ops = ops;
        return s;
}

struct session *session_new_internal(struct vssd *v, const struct set_ops *ops)
{
        return session_alloc(v, ops);
}

struct session *session_get(struct vssd *v, struct conn *c, bool create)
{
        struct session *s;

        if (c->session || !create)
                return c->session;
        s = session_alloc(v, &session_set_ops);
        if (!s)
                return NULL;
        s->conn_serial = c->serial;
        s->pid = c->pid;
        c->session = s;
        return s;
}

json_t *session_status_json(struct vssd *v, struct session *s)
{
        json_t *a = json_array();

        for (struct writer *w = v->writers; w; w = w->next) {
                if (w->gone && w->session != s)
                        continue;
                json_array_insert_new(a, 0, writer_status_json(w));
        }
        return a;
}

json_t *session_event_params(struct vssd *v, struct session *s, struct writer *w, enum vss_event ev)
{
        json_t *p, *vols = json_array(), *comps = json_array(), *shadows = json_array();
        bool has_set = s && set_phase_has_set(s->phase) && ev != VSS_EVENT_IDENTIFY;
        uint32_t timeout = ev == VSS_EVENT_FREEZE ? w->freeze_timeout_ms : v->cfg.event_timeout_ms;
        size_t i;
        json_t *x;

        if (s) {
                for (i = 0; i < s->n_vols; i++)
                        json_array_append_new(vols, json_string(s->vols[i].path));
                json_array_foreach(ev == VSS_EVENT_PRE_RESTORE || ev == VSS_EVENT_POST_RESTORE ? s->restore_components
                                                                                                 : s->components,
                                   i, x) {
                        vss_id wid;

                        if (json_get_id(x, "writer_id", &wid) && !vss_id_equal(&wid, &w->writer_id))
                                continue;
                        json_t *o = json_pack("{s:s, s:s, s:o}", "logical_path", json_get_str(x, "logical_path") ?: "",
                                              "name", json_get_str(x, "name") ?: "", "backup_metadata",
                                              json_str_or_null(json_get_str(x, "backup_metadata")));
                        /* (interim) restore events carry new targets and the file restore status. */
                        if (o && json_is_array(json_object_get(x, "new_targets")))
                                json_object_set(o, "new_targets", json_object_get(x, "new_targets"));
                        if (o && json_get_str(x, "file_restore_status"))
                                json_object_set(o, "file_restore_status", json_object_get(x, "file_restore_status"));
                        json_array_append_new(comps, o);
                }
                if (ev >= VSS_EVENT_POST_SNAPSHOT && set_phase_has_set(s->phase) && s->phase >= SET_CREATING)
                        for (struct shadow *sh = v->shadows; sh; sh = sh->next)
                                if (vss_id_equal(&sh->snap.set_id, &s->set_id))
                                        json_array_append_new(
                                                shadows, json_pack("{s:s, s:o, s:s, s:o}", "volume", sh->snap.volume,
                                                                   "shadow_id", json_id(&sh->snap.snapshot_id), "device",
                                                                   sh->snap.device, "exposed_path",
                                                                   json_str_or_null(sh->exposed_path)));
        }
        p = json_pack("{s:s, s:o, s:i, s:s, s:o, s:I, s:o, s:o}", "event", vss_event_name(ev), "set_id",
                      has_set ? json_id(&s->set_id) : json_null(), "context", s ? s->context : 0, "backup_type",
                      s ? s->backup_type : "full", "volumes", vols, "timeout_ms", (json_int_t)timeout, "components",
                      comps, "shadows", shadows);
        if (ev == VSS_EVENT_BACKUP_COMPLETE)
                json_object_set_new(p, "backup_succeeded", json_boolean(s->backup_succeeded));
        if (ev == VSS_EVENT_FREEZE && s && s->cluster_hold_until_us) {
                /* A cluster set's hold window bounds the writer's own deadline too, so that a
                 * stopped or cut-off vssd cannot keep it frozen past D (docs/cluster.md §6). */
                uint64_t now = clock_monotonic_us();
                uint64_t left = s->cluster_hold_until_us > now ? (s->cluster_hold_until_us - now) / USEC_PER_MSEC : 0;

                /* A twentieth less: the writer's Abort work also ends before D. */
                left -= left / 20;
                json_object_set_new(p, "hold_ms", json_integer((json_int_t)MAX(left, (uint64_t)1)));
        }
        return p;
}


void session_finish_call(struct vssd *v, struct session *s, json_t *result)
{
        json_int_t id = s->call_id;

        s->call_id = -1;
        s->call_method = NULL;
        reply_ok(v, s->conn_serial, id, result);
}

void session_fail_call(struct vssd *v, struct session *s, vss_hresult hr, const char *detail)
{
        json_int_t id = s->call_id;

        s->call_id = -1;
        s->call_method = NULL;
        reply_err(v, s->conn_serial, id, hr, "%s", detail);
}


/* ---- the set's operations in vssd ---- */

static void event_done(struct vssd *v, void *ctx, struct writer *w, enum vss_event ev)
{
        set_writer_done(v, ctx, w, ev);
}

static bool ops_send_event(struct vssd *v, struct session *s, struct writer *w, enum vss_event ev, uint32_t deadline_ms)
{
        return writer_send_event(v, w, ev, session_event_params(v, s, w, ev), deadline_ms, event_done, s);
}

static void ops_notify(struct vssd *v, struct session *s, struct writer *w, enum vss_event ev)
{
        (void)writer_send_event(v, w, ev, session_event_params(v, s, w, ev), 0, NULL, NULL);
}

static void freeze_expired(struct vssd *v, void *ctx, struct writer *w)
{
        set_freeze_expired(v, ctx, w);
}

static void ops_arm_freeze(struct vssd *v, struct session *s, struct writer *w)
{
        writer_arm_freeze(v, w, freeze_expired, s);
}

static void provider_done(struct vssd *v, struct prov_job *j)
{
        set_provider_done(v, j->userdata, j->op, provider_table[j->provider]->name, j->hr, j->error, j->snaps, j->n);
}

static int ops_provider_call(struct vssd *v, struct session *s, enum prov_op op, int provider,
                             const struct vss_provider_snapshot *snaps, size_t n, bool hold)
{
        struct prov_job *j = prov_job_new(op, provider, snaps, n);

        if (!j)
                return -ENOMEM;
        j->freeze = hold && v->providers[provider].ops->needs_freeze;
        if (op != PROV_ABORT) {
                j->done = provider_done;
                j->userdata = s;
        }
        prov_submit(v, j);
        return 0;
}

static void metadata_put(struct vssd *v, struct session *s)
{
        for (struct writer *w = v->writers; w; w = w->next)
                if (w->session == s && w->involved)
                        (void)catalog_metadata_put(v, &s->set_id, w);
}

static void ops_phase_changed(struct vssd *v, struct session *s, enum set_phase from, enum set_phase to)
{
        char idbuf[VSS_ID_STRING_MAX];

        (void)from;
        switch (to) {
        case SET_STARTED:
                (void)catalog_set_put(v, s, "started");
                break;
        case SET_CREATED:
                metadata_put(v, s);
                (void)catalog_set_put(v, s, "created");
                break;
        case SET_COMPLETED:
                metadata_put(v, s);
                (void)catalog_set_put(v, s, s->backup_succeeded ? "completed" : "completed-failed");
                break;
        case SET_ABORTED:
                (void)catalog_set_put(v, s, "aborted");
                catalog_event(v, "warning", "set", s->fail_hr, "snapshot set %s of pid %d aborted%s%s",
                              vss_id_format(&s->set_id, idbuf), (int)s->pid, s->fail_detail[0] ? ": " : "",
                              s->fail_detail);
                break;
        default:
                break;
        }
}

static void ops_shadows_created(struct vssd *v, struct session *s)
{
        int64_t now = (int64_t)clock_realtime_us();
        char idbuf[VSS_ID_STRING_MAX];
        int r;

        for (size_t i = 0; i < s->n_vols; i++) {
                struct shadow *sh = calloc(1, sizeof(*sh)), **p;

                if (!sh)
                        continue;
                sh->snap = s->vols[i].snap;
                sh->provider = s->vols[i].provider;
                sh->attributes = context_attributes(s->context);
                sh->creation_time_us = now;
                sh->owner_session = s->session_id;
                sh->snapshots_count = (int)s->n_vols;
                for (p = &v->shadows; *p; p = &(*p)->next)
                        ;
                *p = sh;
                r = catalog_shadow_put(v, sh);
                if (r < 0 && s->record_hr == VSS_S_OK) {
                        s->record_hr = r == -ENOSPC ? VSS_E_INSUFFICIENT_STORAGE : VSS_E_UNEXPECTED;
                        fmt_trunc(s->record_error, sizeof(s->record_error),
                                 "cannot record shadow copy %s of %s in the catalog (%s/catalog.db): %s",
                                 vss_id_format(&sh->snap.snapshot_id, idbuf), sh->snap.volume, v->state_dir,
                                 r == -ENOSPC ? "its filesystem is full" : "write failed");
                        continue;
                }
                catalog_event(v, "info", "shadow", VSS_S_OK, "shadow copy %s of %s created (%s) at %s",
                              vss_id_format(&sh->snap.snapshot_id, idbuf), sh->snap.volume,
                              context_type_name(s->context) ?: "?", sh->snap.device);
        }
        /* A shadow copy outside the catalog would be leaked by the next vssd: none of the set's
         * stays (set.c fails the set with record_hr). */
        if (s->record_hr != VSS_S_OK) {
                catalog_event(v, "error", "catalog", s->record_hr, "%s; the set's shadow copies are deleted",
                              s->record_error);
                for (struct shadow *sh = v->shadows; sh; sh = sh->next)
                        if (vss_id_equal(&sh->snap.set_id, &s->set_id) && !sh->deleting)
                                shadow_delete(v, sh, NULL, NULL);
                return;
        }
        /* Published volumes show the new shadow copies as previous versions. */
        for (size_t i = 0; i < s->n_vols; i++)
                pubver_sync(v, s->vols[i].snap.volume);
}

static void ops_release_shadows(struct vssd *v, struct session *s)
{
        shadows_release_session(v, &s->session_id);
}

static void ops_log_event(struct vssd *v, const char *level, const char *source, vss_hresult hr, const char *msg)
{
        catalog_event(v, level, source, hr, "%s", msg);
}

/* The answer of the call whose sequence ended well. */
static json_t *call_result(struct vssd *v, struct session *s)
{
        const char *m = s->call_method ? s->call_method + strlen("Backup.") : "";
        char idbuf[VSS_ID_STRING_MAX], pidbuf[VSS_ID_STRING_MAX];

        if (streq(m, "GatherWriterMetadata")) {
                json_t *a = json_array();

                for (struct writer *w = v->writers; w; w = w->next)
                        if (!w->gone && set_writer_selected(s, w))
                                json_array_insert_new(a, 0, writer_wmd_json(w));
                return json_pack("{s:o}", "writers", a);
        }
        if (streq(m, "AddToSnapshotSet")) {
                struct set_volume *sv = &s->vols[s->n_vols - 1];
                vss_id pid;

                (void)vss_id_parse(provider_table[sv->provider]->provider_id, &pid);
                return json_pack("{s:s, s:s, s:s}", "shadow_id", vss_id_format(&sv->snap.snapshot_id, idbuf),
                                 "volume", sv->path, "provider_id", vss_id_format(&pid, pidbuf));
        }
        if (streq(m, "DoSnapshotSet")) {
                json_t *shadows = json_array();

                for (struct shadow *sh = v->shadows; sh; sh = sh->next)
                        if (vss_id_equal(&sh->snap.set_id, &s->set_id))
                                json_array_append_new(shadows, shadow_prop_json(v, sh));
                return json_pack("{s:o, s:o, s:o, s:O?}", "set_id", json_id(&s->set_id), "shadows", shadows,
                                 "writers", session_status_json(v, s), "cluster_volumes", s->cluster_volumes);
        }
        /* PrepareForBackup, BackupComplete, PreRestore, PostRestore */
        return json_pack("{s:o}", "writers", session_status_json(v, s));
}

static void ops_call_done(struct vssd *v, struct session *s, vss_hresult hr, const char *detail)
{
        if (detail)
                session_fail_call(v, s, hr, detail);
        else
                session_finish_call(v, s, call_result(v, s));
}

static void session_free(struct session *s)
{
        json_decref(s->components);
        json_decref(s->excluded);
        json_decref(s->restore_components);
        json_decref(s->cluster_volumes);
        free(s->vols);
        free(s);
}

static void ops_released(struct vssd *v, struct session *s)
{
        vcset_session_gone(v, s);
        shadows_release_session(v, &s->session_id);
        writers_sweep(v);
        session_free(s);
}

const struct set_ops session_set_ops = {
        .send_event = ops_send_event,
        .notify = ops_notify,
        .writer_failed = writer_set_failed,
        .cancel_pending = writer_cancel_pending,
        .arm_freeze = ops_arm_freeze,
        .cancel_freeze = writer_cancel_freeze,
        .sweep_writers = writers_sweep,
        .provider_call = ops_provider_call,
        .phase_changed = ops_phase_changed,
        .shadows_created = ops_shadows_created,
        .release_shadows = ops_release_shadows,
        .log_event = ops_log_event,
        .call_done = ops_call_done,
        .released = ops_released,
};

void session_release(struct vssd *v, struct session *s)
{
        s->conn_serial = 0;
        set_release(v, s);
}

void sessions_shutdown(struct vssd *v)
{
        for (struct conn *c = v->conns; c; c = c->next)
                if (c->session) {
                        struct session *s = c->session;
                        c->session = NULL;
                        snprintf(s->fail_detail, sizeof(s->fail_detail), "vssd is shutting down");
                        s->fail_hr = VSS_E_ABORT;
                        /* The requester hears why its call ends. */
                        if (s->call_id >= 0 || set_busy(s))
                                reply_err(v, s->conn_serial, s->call_id, VSS_E_ABORT, "vssd is shutting down");
                        session_release(v, s);
                }
}

/* ---- AddToSnapshotSet ---- */


/* ---- AddToSnapshotSet ---- */

vss_hresult session_add_volume(struct vssd *v, struct session *s, const char *vol, const char *pidstr,
                               const vss_id *shadow_id, char *err, size_t errlen)
{
        struct volume_info vi;
        struct set_volume *sv, *nv;
        vss_hresult hr;
        int p;

        hr = volume_exact(vol, &vi, err, errlen);
        if (hr != VSS_S_OK)
                return hr;
        for (size_t i = 0; i < s->n_vols; i++)
                if (streq(s->vols[i].path, vi.path)) {
                        snprintf(err, errlen, "volume %s is already in the set", vi.path);
                        return VSS_E_OBJECT_ALREADY_EXISTS;
                }
        if (s->n_vols >= VSS_MAX_VOLUMES_PER_SET) {
                snprintf(err, errlen, "a snapshot set holds at most %d volumes", VSS_MAX_VOLUMES_PER_SET);
                return VSS_E_MAXIMUM_NUMBER_OF_VOLUMES_REACHED;
        }
        if (shadows_on_volume(v, vi.path) >= VSS_MAX_SHADOWS_PER_VOLUME) {
                snprintf(err, errlen, "volume %s already has %d shadow copies", vi.path, VSS_MAX_SHADOWS_PER_VOLUME);
                return VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED;
        }
        p = provider_find(v, pidstr, vi.path, vi.fstype, &hr);
        if (p < 0) {
                snprintf(err, errlen, "no %s supports volume %s (%s)", pidstr ? "such provider" : "provider", vi.path,
                         vi.fstype[0] ? vi.fstype : "unknown fstype");
                return hr;
        }
        nv = realloc(s->vols, (s->n_vols + 1) * sizeof(*s->vols));
        if (!nv) {
                snprintf(err, errlen, "out of memory");
                return VSS_E_OUTOFMEMORY;
        }
        s->vols = nv;
        sv = &s->vols[s->n_vols];
        *sv = (struct set_volume){ .provider = p };
        snprintf(sv->path, sizeof(sv->path), "%s", vi.path);
        if (shadow_id)
                sv->snap.snapshot_id = *shadow_id;
        else
                vss_id_generate(&sv->snap.snapshot_id);
        sv->snap.set_id = s->set_id;
        sv->snap.context = s->context;
        snprintf(sv->snap.volume, sizeof(sv->snap.volume), "%s", vi.path);
        snprintf(sv->snap.volume_device, sizeof(sv->snap.volume_device), "%s", vi.device);
        snprintf(sv->snap.fstype, sizeof(sv->snap.fstype), "%s", vi.fstype);
        s->n_vols++;
        return VSS_S_OK;
}

static void add_to_set(struct vssd *v, struct session *s, json_int_t id, json_t *params)
{
        const char *vol = json_get_str(params, "volume");
        json_t *jp = json_object_get(params, "provider_id"), *jh = json_object_get(params, "host");
        const char *pidstr = NULL;
        char err[VSS_PATH_MAX + 256], idbuf[VSS_ID_STRING_MAX];
        vss_hresult hr;

        if (s->phase != SET_STARTED && s->phase != SET_PREPARED) {
                reply_err(v, s->conn_serial, id, VSS_E_BAD_STATE, "AddToSnapshotSet needs a set started by StartSnapshotSet "
                          "and not yet created");
                return;
        }
        if (!vol) {
                reply_err(v, s->conn_serial, id, VSS_E_INVALIDARG, "field 'volume' is missing or not a string");
                return;
        }
        if (jh && !json_is_null(jh)) {
                /* HOST:VOLUME ("" is this host): a cluster set (cluster-set.c). */
                vss_id sid;

                if (!json_is_string(jh)) {
                        reply_err(v, s->conn_serial, id, VSS_E_INVALIDARG, "field 'host' must be a string");
                        return;
                }
                if (s->phase != SET_STARTED) {
                        reply_err(v, s->conn_serial, id, VSS_E_BAD_STATE,
                                  "a cluster set takes its volumes before PrepareForBackup");
                        return;
                }
                hr = vcset_add_volume(v, s, json_string_value(jh), vol, &sid, err, sizeof(err));
                if (hr != VSS_S_OK)
                        reply_err(v, s->conn_serial, id, hr, "%s", err);
                else
                        reply_ok(v, s->conn_serial, id,
                                 json_pack("{s:s, s:s, s:s, s:n}", "shadow_id", vss_id_format(&sid, idbuf), "volume",
                                           vol, "host", json_string_value(jh)[0] ? json_string_value(jh)
                                                                                 : v->cfg.cluster.host,
                                           "provider_id"));
                return;
        }
        if (s->cluster_coordinator) {
                reply_err(v, s->conn_serial, id, VSS_E_BAD_STATE,
                          "this set is a cluster set: every volume is HOST:VOLUME ('host' \"\" for this host)");
                return;
        }
        if (jp && !json_is_null(jp)) {
                vss_id tmp;
                if (!json_get_id(params, "provider_id", &tmp)) {
                        reply_err(v, s->conn_serial, id, VSS_E_INVALIDARG, "field 'provider_id' is not a GUID");
                        return;
                }
                pidstr = json_string_value(jp);
        }
        hr = session_add_volume(v, s, vol, pidstr, NULL, err, sizeof(err));
        if (hr != VSS_S_OK) {
                reply_err(v, s->conn_serial, id, hr, "%s%s", hr == VSS_E_OBJECT_NOT_FOUND || hr == VSS_E_INVALIDARG ?
                          "volume: " : "", err);
                return;
        }
        s->call_id = id;
        set_add_volume(v, s);
}

/* ---- the methods ---- */

/* (interim, contracts.md section 2) Checks one component of Backup.PreRestore/PostRestore. */
static bool restore_component_valid(json_t *x, size_t i, char *err, size_t errlen)
{
        json_t *t, *e;
        vss_id wid;
        size_t k;

        if (!json_is_object(x)) {
                snprintf(err, errlen, "field 'components[%zu]' must be an object", i);
                return false;
        }
        if (!json_get_id(x, "writer_id", &wid)) {
                snprintf(err, errlen, "field 'components[%zu].writer_id' is missing or not a GUID", i);
                return false;
        }
        if (!json_get_str(x, "name")) {
                snprintf(err, errlen, "field 'components[%zu].name' is missing", i);
                return false;
        }
        if (((e = json_object_get(x, "logical_path")) && !json_is_string(e)) ||
            ((e = json_object_get(x, "writer_name")) && !json_is_string(e) && !json_is_null(e)) ||
            ((e = json_object_get(x, "backup_metadata")) && !json_is_string(e) && !json_is_null(e))) {
                snprintf(err, errlen, "fields 'components[%zu].logical_path', 'writer_name' and 'backup_metadata' "
                                      "must be strings", i);
                return false;
        }
        if ((e = json_object_get(x, "file_restore_status")) &&
            (!json_is_string(e) || vss_file_restore_status_from_name(json_string_value(e)) < 0)) {
                snprintf(err, errlen, "field 'components[%zu].file_restore_status' must be none|all|failed", i);
                return false;
        }
        if ((t = json_object_get(x, "new_targets")) && !json_is_null(t)) {
                if (!json_is_array(t)) {
                        snprintf(err, errlen, "field 'components[%zu].new_targets' must be an array", i);
                        return false;
                }
                json_array_foreach(t, k, e)
                        if (!json_get_str(e, "path") || !json_get_str(e, "target")) {
                                snprintf(err, errlen, "field 'components[%zu].new_targets[%zu]' needs strings 'path' "
                                                      "and 'target'", i, k);
                                return false;
                        }
        }
        return true;
}

static void restore(struct vssd *v, struct session *s, json_int_t id, json_t *params, enum vss_event ev)
{
        json_t *comps = json_object_get(params, "components"), *x;
        char err[512], idbuf[VSS_ID_STRING_MAX];
        size_t i;

        if (!json_is_array(comps)) {
                reply_err(v, s->conn_serial, id, VSS_E_INVALIDARG, "field 'components' is missing or not an array");
                return;
        }
        if (json_array_size(comps) > 4096) {
                reply_err(v, s->conn_serial, id, VSS_E_INVALIDARG, "field 'components' lists more than 4096 components");
                return;
        }
        json_array_foreach(comps, i, x)
                if (!restore_component_valid(x, i, err, sizeof(err))) {
                        reply_err(v, s->conn_serial, id, VSS_E_INVALIDARG, "%s", err);
                        return;
                }
        /* A restore takes the service's one turn, like a snapshot set. */
        if (shadows_revert_running(v)) {
                reply_err(v, s->conn_serial, id, VSS_E_SNAPSHOT_SET_IN_PROGRESS, "%s", shadows_revert_running(v));
                return;
        }
        if (v->set_owner && v->set_owner != s) {
                struct session *o = v->set_owner;

                if (set_phase_is_restore(o->phase))
                        reply_err(v, s->conn_serial, id, VSS_E_SNAPSHOT_SET_IN_PROGRESS,
                                  "a restore of pid %d is between PreRestore and PostRestore", (int)o->pid);
                else
                        reply_err(v, s->conn_serial, id, VSS_E_SNAPSHOT_SET_IN_PROGRESS,
                                  "set %s of pid %d is between StartSnapshotSet and the end of DoSnapshotSet",
                                  vss_id_format(&o->set_id, idbuf), (int)o->pid);
                return;
        }
        if (set_phase_has_set(s->phase)) {
                reply_err(v, s->conn_serial, id, VSS_E_BAD_STATE, "a session that created a snapshot set cannot restore");
                return;
        }
        /* Every writer named must be registered and free. */
        json_array_foreach(comps, i, x) {
                struct writer *w;
                vss_id wid;

                json_get_id(x, "writer_id", &wid);
                w = NULL;
                for (struct writer *k = v->writers; k && !w; k = k->next)
                        if (!k->gone && vss_id_equal(&k->writer_id, &wid))
                                w = k;
                if (!w) {
                        const char *name = json_get_str(x, "writer_name");
                        reply_err(v, s->conn_serial, id, VSS_E_OBJECT_NOT_FOUND,
                                  "writer %s%s%s%s is not registered (component '%s' of it was selected for restore)",
                                  name ? "'" : "", name ?: "", name ? "' " : "", vss_id_format(&wid, idbuf),
                                  json_get_str(x, "name"));
                        return;
                }
                if (w->session && w->session != s) {
                        reply_err(v, s->conn_serial, id, VSS_E_SNAPSHOT_SET_IN_PROGRESS,
                                  "writer '%s' %s is taking part in the backup session of pid %d", w->name,
                                  vss_id_format(&w->writer_id, idbuf), (int)w->session->pid);
                        return;
                }
        }
        json_decref(s->restore_components);
        s->restore_components = json_deep_copy(comps);
        s->call_id = id;
        set_restore(v, s, ev);
}

void method_backup(struct vssd *v, struct conn *c, json_int_t id, json_t *params, const char *method)
{
        const char *m = method + strlen("Backup.");
        struct session *s;
        char idbuf[VSS_ID_STRING_MAX];

        s = session_get(v, c, !streq(m, "End"));
        if (!s) {
                if (streq(m, "End"))
                        reply_ok(v, c->serial, id, json_object());
                else
                        reply_err(v, c->serial, id, VSS_E_OUTOFMEMORY, "out of memory");
                return;
        }
        if (set_busy(s)) {
                reply_err(v, c->serial, id, VSS_E_BAD_STATE, "%s of this session is still running", s->call_method ?: "a call");
                return;
        }
        s->call_method = method;

        if (streq(m, "GatherWriterMetadata")) {
                s->call_id = id;
                set_gather(v, s);
        } else if (streq(m, "SetContext")) {
                json_int_t ctx;

                if (!json_get_int(params, "context", &ctx)) {
                        reply_err(v, c->serial, id, VSS_E_INVALIDARG, "field 'context' is missing or not an integer");
                } else if (set_phase_has_set(s->phase)) {
                        reply_err(v, c->serial, id, VSS_E_BAD_STATE, "SetContext must come before StartSnapshotSet");
                } else if (ctx < INT32_MIN || ctx > (json_int_t)UINT32_MAX || !context_valid((int32_t)(uint32_t)ctx)) {
                        reply_err(v, c->serial, id, VSS_E_UNSUPPORTED_CONTEXT,
                                  "context 0x%llX cannot create shadow copies", (unsigned long long)(uint32_t)ctx);
                } else {
                        s->context = (int32_t)(uint32_t)ctx;
                        s->context_set = true;
                        reply_ok(v, c->serial, id, json_object());
                }
        } else if (streq(m, "SetBackupState")) {
                const char *bt = json_get_str(params, "backup_type");
                json_t *x;

                if ((x = json_object_get(params, "backup_type")) && (!bt || wire_backup_type_from_name(bt) <= VSS_BT_UNDEFINED)) {
                        reply_err(v, c->serial, id, VSS_E_INVALIDARG,
                                  "field 'backup_type' must be full|incremental|differential|log|copy|other");
                } else if (((x = json_object_get(params, "select_components")) && !json_is_boolean(x)) ||
                           ((x = json_object_get(params, "bootable_system_state")) && !json_is_boolean(x))) {
                        reply_err(v, c->serial, id, VSS_E_INVALIDARG,
                                  "fields 'select_components' and 'bootable_system_state' must be booleans");
                } else {
                        if (bt)
                                snprintf(s->backup_type, sizeof(s->backup_type), "%s", bt);
                        s->select_components = json_get_bool(params, "select_components", s->select_components);
                        s->bootable = json_get_bool(params, "bootable_system_state", s->bootable);
                        reply_ok(v, c->serial, id, json_object());
                }
        } else if (streq(m, "AddComponent")) {
                vss_id wid;
                json_t *x = json_object_get(params, "instance_id");

                if (!json_get_id(params, "writer_id", &wid))
                        reply_err(v, c->serial, id, VSS_E_INVALIDARG, "field 'writer_id' is missing or not a GUID");
                else if (x && !json_is_null(x) && !json_get_id(params, "instance_id", &wid))
                        reply_err(v, c->serial, id, VSS_E_INVALIDARG, "field 'instance_id' is not a GUID");
                else if (!json_get_str(params, "name"))
                        reply_err(v, c->serial, id, VSS_E_INVALIDARG, "field 'name' is missing or not a string");
                else if (json_array_size(s->components) >= 4096)
                        reply_err(v, c->serial, id, VSS_E_INVALIDARG, "too many components");
                else {
                        json_array_append(s->components, params);
                        reply_ok(v, c->serial, id, json_object());
                }
        } else if (streq(m, "ExcludeWriters")) {
                json_t *a = json_object_get(params, "writers"), *x;
                size_t i;
                bool ok = json_is_array(a);

                json_array_foreach(a, i, x)
                        ok = ok && json_is_string(x);
                if (!ok)
                        reply_err(v, c->serial, id, VSS_E_INVALIDARG, "field 'writers' must be an array of names or ids");
                else {
                        json_array_extend(s->excluded, a);
                        reply_ok(v, c->serial, id, json_object());
                }
        } else if (streq(m, "StartSnapshotSet")) {
                if (set_phase_has_set(s->phase))
                        reply_err(v, c->serial, id, VSS_E_BAD_STATE, "this session already has snapshot set %s",
                                  vss_id_format(&s->set_id, idbuf));
                else if (v->set_owner && v->set_owner != s && set_phase_is_restore(v->set_owner->phase))
                        reply_err(v, c->serial, id, VSS_E_SNAPSHOT_SET_IN_PROGRESS,
                                  "a restore of pid %d is between PreRestore and PostRestore", (int)v->set_owner->pid);
                else if (v->set_owner == s)
                        reply_err(v, c->serial, id, VSS_E_BAD_STATE, "this session is restoring (PreRestore "
                                  "until PostRestore) and cannot create a snapshot set");
                else if (shadows_revert_running(v))
                        reply_err(v, c->serial, id, VSS_E_SNAPSHOT_SET_IN_PROGRESS, "%s", shadows_revert_running(v));
                else if (v->set_owner && v->set_owner != s)
                        reply_err(v, c->serial, id, VSS_E_SNAPSHOT_SET_IN_PROGRESS,
                                  "set %s of pid %d is between StartSnapshotSet and the end of DoSnapshotSet",
                                  vss_id_format(&v->set_owner->set_id, idbuf), (int)v->set_owner->pid);
                else {
                        set_start(v, s);
                        reply_ok(v, c->serial, id, json_pack("{s:o}", "set_id", json_id(&s->set_id)));
                }
        } else if (streq(m, "AddToSnapshotSet")) {
                add_to_set(v, s, id, params);
        } else if (streq(m, "PrepareForBackup")) {
                if (s->phase != SET_STARTED)
                        reply_err(v, c->serial, id, VSS_E_BAD_STATE, "PrepareForBackup needs a started, unprepared set");
                else if (s->cluster_coordinator)
                        /* Every host's participant sends PrepareForBackup to its own writers. */
                        reply_ok(v, c->serial, id, json_pack("{s:o}", "writers", session_status_json(v, s)));
                else {
                        s->call_id = id;
                        set_prepare_backup(v, s);
                }
        } else if (streq(m, "DoSnapshotSet")) {
                if (s->phase != SET_STARTED && s->phase != SET_PREPARED)
                        reply_err(v, c->serial, id, VSS_E_BAD_STATE, "DoSnapshotSet needs a started set not yet created");
                else if (s->n_vols == 0 && !s->cluster_coordinator)
                        reply_err(v, c->serial, id, VSS_E_BAD_STATE, "the snapshot set has no volumes: call AddToSnapshotSet");
                else if (s->cluster_coordinator) {
                        char err[512];
                        vss_hresult hr;

                        s->call_id = id;
                        hr = vcset_do(v, s, err, sizeof(err));
                        if (hr != VSS_S_OK) {
                                s->call_id = -1;
                                reply_err(v, c->serial, id, hr, "%s", err);
                        }
                } else {
                        s->call_id = id;
                        set_do(v, s);
                }
        } else if (streq(m, "GatherWriterStatus")) {
                reply_ok(v, c->serial, id, json_pack("{s:o}", "writers", session_status_json(v, s)));
        } else if (streq(m, "BackupComplete")) {
                json_t *x = json_object_get(params, "succeeded");

                if (x && !json_is_boolean(x))
                        reply_err(v, c->serial, id, VSS_E_INVALIDARG, "field 'succeeded' must be a boolean");
                else if (s->phase != SET_CREATED)
                        reply_err(v, c->serial, id, VSS_E_BAD_STATE, "BackupComplete needs a created snapshot set");
                else {
                        s->backup_succeeded = json_get_bool(params, "succeeded", true);
                        if (s->cluster_coordinator)
                                vcset_end(v, s, true);
                        s->call_id = id;
                        set_backup_complete(v, s);
                }
        } else if (streq(m, "AbortBackup")) {
                if (!set_phase_has_set(s->phase) || s->phase == SET_COMPLETED)
                        reply_err(v, c->serial, id, VSS_E_BAD_STATE, "there is no snapshot set to abort");
                else {
                        set_abort_backup(v, s);
                        reply_ok(v, c->serial, id, json_pack("{s:o}", "writers", session_status_json(v, s)));
                }
        } else if (streq(m, "End")) {
                c->session = NULL;
                reply_ok(v, c->serial, id, json_object());
                session_release(v, s);
                return;
        } else if (streq(m, "PreRestore")) {
                restore(v, s, id, params, VSS_EVENT_PRE_RESTORE);
        } else if (streq(m, "PostRestore")) {
                restore(v, s, id, params, VSS_EVENT_POST_RESTORE);
        } else
                reply_err(v, c->serial, id, VSS_E_NOT_SUPPORTED, "unknown method '%s'", method);
        if (!set_busy(s))
                s->call_method = NULL;
}
