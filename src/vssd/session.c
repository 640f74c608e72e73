/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Backup sessions: one per requester connection (one IVssBackupComponents).
 * Each Backup.* call either answers at once or starts an asynchronous stage
 * (events to writers, provider jobs); the session holds that one call and
 * answers it when the stage completes.  Writers of a stage are sent their
 * events all at once and tracked by s->outstanding.
 */

#include <stdio.h>

#include "basic/writer-state.h"
#include "vssd/attrs.h"
#include "vssd/volume.h"
#include "vssd/vssd.h"

enum {
        CALL_NONE,
        CALL_GATHER_METADATA,
        CALL_PREPARE_BACKUP,
        CALL_BACKUP_COMPLETE,
        CALL_RESTORE,
        CALL_ADD_VOLUME,
        CALL_SNAPSET,           /* snapset.c drives the steps */
};

struct session *session_get(struct vssd *v, struct conn *c, bool create)
{
        struct session *s;

        if (c->session || !create)
                return c->session;
        s = calloc(1, sizeof(*s));
        if (!s)
                return NULL;
        s->vssd = v;
        s->conn_serial = c->serial;
        s->pid = c->pid;
        vss_id_generate(&s->session_id);
        s->context = VSS_CTX_BACKUP;
        snprintf(s->backup_type, sizeof(s->backup_type), "full");
        s->components = json_array();
        s->excluded = json_array();
        s->call_id = -1;
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

bool session_writer_selected(struct session *s, struct writer *w)
{
        size_t i;
        json_t *x;
        char idbuf[VSS_ID_STRING_MAX];

        vss_id_format(&w->writer_id, idbuf);
        json_array_foreach(s->excluded, i, x) {
                const char *t = json_string_value(x);
                vss_id id;

                if (streq(t, w->name) || (vss_id_parse(t, &id) == VSS_S_OK &&
                                          (vss_id_equal(&id, &w->writer_id) || vss_id_equal(&id, &w->instance_id))))
                        return false;
        }
        return true;
}

json_t *session_event_params(struct vssd *v, struct session *s, struct writer *w, enum vss_event ev)
{
        json_t *p, *vols = json_array(), *comps = json_array(), *shadows = json_array();
        bool has_set = s && s->phase != SET_NONE && ev != VSS_EVENT_IDENTIFY;
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
                if (ev >= VSS_EVENT_POST_SNAPSHOT && s->phase >= SET_CREATING)
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
        return p;
}

void session_finish_call(struct vssd *v, struct session *s, json_t *result)
{
        json_int_t id = s->call_id;

        s->call_id = -1;
        s->call_method = NULL;
        s->step = CALL_NONE;
        reply_ok(v, s->conn_serial, id, result);
}

void session_fail_call(struct vssd *v, struct session *s, vss_hresult hr, const char *detail)
{
        json_int_t id = s->call_id;

        s->call_id = -1;
        s->call_method = NULL;
        s->step = CALL_NONE;
        reply_err(v, s->conn_serial, id, hr, "%s", detail);
}

void session_compute_involvement(struct vssd *v, struct session *s)
{
        char *svols[VSS_MAX_VOLUMES_PER_SET];

        for (size_t i = 0; i < s->n_vols; i++)
                svols[i] = s->vols[i].path;
        for (struct writer *w = v->writers; w; w = w->next) {
                enum involvement inv;

                if (w->gone)
                        continue;
                inv = involvement_compute(s->context, !session_writer_selected(s, w), w->volumes, w->n_volumes, svols,
                                          s->n_vols);
                w->involved = inv != INVOLVE_NO;
                w->partial = inv == INVOLVE_PARTIAL;
                if (w->involved)
                        w->session = s;
        }
}

/* Sends 'ev' to every involved writer; returns how many replies are awaited. */
static int send_to_involved(struct vssd *v, struct session *s, enum vss_event ev, bool skip_failed)
{
        for (struct writer *w = v->writers; w; w = w->next) {
                if (w->gone || !w->involved || w->session != s)
                        continue;
                if (skip_failed && writer_state_is_failed(w->state))
                        continue;
                writer_send_event(v, s, w, ev, true);
        }
        return s->outstanding;
}

static void stage_done(struct vssd *v, struct session *s)
{
        if (s->step >= SNAPSET_STEP_FIRST) {
                snapset_continue(v, s);
                return;
        }
        switch (s->step) {
        case CALL_GATHER_METADATA: {
                json_t *a = json_array();

                for (struct writer *w = v->writers; w; w = w->next)
                        if (!w->gone && session_writer_selected(s, w))
                                json_array_insert_new(a, 0, writer_wmd_json(w));
                session_finish_call(v, s, json_pack("{s:o}", "writers", a));
                break;
        }
        case CALL_PREPARE_BACKUP:
                s->phase = SET_PREPARED;
                session_finish_call(v, s, json_pack("{s:o}", "writers", session_status_json(v, s)));
                break;
        case CALL_BACKUP_COMPLETE:
                s->phase = SET_COMPLETED;
                for (struct writer *w = v->writers; w; w = w->next)
                        if (w->session == s && w->involved)
                                (void)catalog_metadata_put(v, &s->set_id, w);
                (void)catalog_set_put(v, s, s->backup_succeeded ? "completed" : "completed-failed");
                session_finish_call(v, s, json_pack("{s:o}", "writers", session_status_json(v, s)));
                break;
        case CALL_RESTORE: {
                json_t *st = session_status_json(v, s);

                /* (interim) After PostRestore the restore is over: the service's turn and the
                 * writers are free again. */
                if (streq_ptr(s->call_method, "Backup.PostRestore")) {
                        if (v->set_owner == s)
                                v->set_owner = NULL;
                        for (struct writer *w = v->writers; w; w = w->next)
                                if (w->session == s) {
                                        w->session = NULL;
                                        w->involved = false;
                                }
                        writers_sweep(v);
                }
                session_finish_call(v, s, json_pack("{s:o}", "writers", st));
                break;
        }
        }
}

void session_writer_done(struct vssd *v, struct session *s)
{
        if (s->outstanding > 0)
                s->outstanding--;
        if (s->outstanding == 0 && s->prov_outstanding == 0)
                stage_done(v, s);
}

/* Abort to involved writers, provider abort if needed; optionally delete this session's auto-release shadows. */
void session_abort_set(struct vssd *v, struct session *s, bool delete_shadows)
{
        char idbuf[VSS_ID_STRING_MAX];

        if (s->phase == SET_NONE || s->phase == SET_ABORTED || s->phase == SET_COMPLETED)
                goto shadows;
        for (struct writer *w = v->writers; w; w = w->next) {
                if (w->session != s)
                        continue;
                timer_cancel(v, &w->freeze_timer);
                if (w->pending_event >= 0) {
                        timer_cancel(v, &w->deadline);
                        w->pending_event = -1;
                }
                if (w->involved && !w->gone)
                        writer_send_event(v, s, w, VSS_EVENT_ABORT, false);
        }
        s->outstanding = 0;
        if (s->prov_prepared && !s->committed) {
                for (size_t i = 0; i < s->n_vols;) {
                        int p = s->vols[i].provider;
                        struct vss_provider_snapshot snaps[VSS_MAX_VOLUMES_PER_SET];
                        size_t n = 0;
                        struct prov_job *j;

                        for (size_t k = i; k < s->n_vols; k++)
                                if (s->vols[k].provider == p)
                                        snaps[n++] = s->vols[k].snap;
                        while (i < s->n_vols && s->vols[i].provider == p)
                                i++;
                        j = prov_job_new(PROV_ABORT, p, snaps, n);
                        if (j)
                                prov_submit(v, j);
                }
                s->prov_prepared = false;
        }
        if (v->set_owner == s)
                v->set_owner = NULL;
        s->phase = SET_ABORTED;
        (void)catalog_set_put(v, s, "aborted");
        catalog_event(v, "warning", "set", s->fail_hr, "snapshot set %s of pid %d aborted%s%s",
                      vss_id_format(&s->set_id, idbuf), (int)s->pid, s->fail_detail[0] ? ": " : "", s->fail_detail);
shadows:
        if (delete_shadows)
                shadows_release_session(v, &s->session_id);
}

static void session_free(struct session *s)
{
        json_decref(s->components);
        json_decref(s->excluded);
        json_decref(s->restore_components);
        free(s->vols);
        free(s);
}

void session_release(struct vssd *v, struct session *s)
{
        s->conn_serial = 0;
        s->closing = true;
        /* A provider job holds a pointer to us; its completion calls back here. */
        if (s->prov_outstanding > 0)
                return;
        if (s->phase != SET_NONE && s->phase != SET_COMPLETED && s->phase != SET_ABORTED) {
                if (!s->fail_detail[0])
                        snprintf(s->fail_detail, sizeof(s->fail_detail), "the requester (pid %d) ended its session",
                                 (int)s->pid);
                if (s->fail_hr == VSS_S_OK)
                        s->fail_hr = VSS_E_ABORT;
                /* Abort then BackupShutdown: the set was not completed. */
                if (s->phase == SET_CREATED)
                        s->committed = true;
                session_abort_set(v, s, false);
        }
        for (struct writer *w = v->writers; w; w = w->next) {
                if (w->session != s)
                        continue;
                timer_cancel(v, &w->freeze_timer);
                timer_cancel(v, &w->deadline);
                w->pending_event = -1;
                if (w->involved && !w->gone && s->phase != SET_NONE)
                        writer_send_event(v, s, w, VSS_EVENT_BACKUP_SHUTDOWN, false);
                w->session = NULL;
                w->involved = w->partial = false;
        }
        if (v->set_owner == s)
                v->set_owner = NULL;
        shadows_release_session(v, &s->session_id);
        writers_sweep(v);
        session_free(s);
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
                        if (s->call_id >= 0 || s->step != CALL_NONE)
                                reply_err(v, s->conn_serial, s->call_id, VSS_E_ABORT, "vssd is shutting down");
                        session_release(v, s);
                }
}

/* ---- AddToSnapshotSet ---- */

static void add_volume_done(struct vssd *v, struct prov_job *j)
{
        struct session *s = j->userdata;
        struct set_volume *sv = &s->vols[s->n_vols - 1];
        char idbuf[VSS_ID_STRING_MAX], pidbuf[VSS_ID_STRING_MAX];
        vss_id pid;

        s->prov_outstanding--;
        if (s->closing) {
                session_release(v, s);
                return;
        }
        if (VSS_FAILED(j->hr)) {
                char detail[900];

                snprintf(detail, sizeof(detail), "provider '%s' refused %.300s: %.500s", provider_table[sv->provider]->name,
                         sv->path, j->error[0] ? j->error : vss_hresult_message(j->hr));
                catalog_event(v, "error", "provider", j->hr, "%s", detail);
                s->n_vols--;
                session_fail_call(v, s, j->hr, detail);
                return;
        }
        sv->snap = j->snaps[0];
        sv->begun = true;
        (void)vss_id_parse(provider_table[sv->provider]->provider_id, &pid);
        session_finish_call(v, s, json_pack("{s:s, s:s, s:s}", "shadow_id", vss_id_format(&sv->snap.snapshot_id, idbuf),
                                            "volume", sv->path, "provider_id", vss_id_format(&pid, pidbuf)));
}

static void add_to_set(struct vssd *v, struct session *s, json_int_t id, json_t *params)
{
        const char *vol = json_get_str(params, "volume");
        json_t *jp = json_object_get(params, "provider_id");
        const char *pidstr = NULL;
        struct volume_info vi;
        struct set_volume *sv, *nv;
        struct prov_job *j;
        char err[VSS_PATH_MAX + 128];
        vss_hresult hr;
        int p;

        if (s->phase != SET_STARTED && s->phase != SET_PREPARED) {
                reply_err(v, s->conn_serial, id, VSS_E_BAD_STATE, "AddToSnapshotSet needs a set started by StartSnapshotSet "
                          "and not yet created");
                return;
        }
        if (!vol) {
                reply_err(v, s->conn_serial, id, VSS_E_INVALIDARG, "field 'volume' is missing or not a string");
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
        hr = volume_exact(vol, &vi, err, sizeof(err));
        if (hr != VSS_S_OK) {
                reply_err(v, s->conn_serial, id, hr, "volume: %s", err);
                return;
        }
        for (size_t i = 0; i < s->n_vols; i++)
                if (streq(s->vols[i].path, vi.path)) {
                        reply_err(v, s->conn_serial, id, VSS_E_OBJECT_ALREADY_EXISTS, "volume %s is already in the set",
                                  vi.path);
                        return;
                }
        if (s->n_vols >= VSS_MAX_VOLUMES_PER_SET) {
                reply_err(v, s->conn_serial, id, VSS_E_MAXIMUM_NUMBER_OF_VOLUMES_REACHED,
                          "a snapshot set holds at most %d volumes", VSS_MAX_VOLUMES_PER_SET);
                return;
        }
        if (shadows_on_volume(v, vi.path) >= VSS_MAX_SHADOWS_PER_VOLUME) {
                reply_err(v, s->conn_serial, id, VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED,
                          "volume %s already has %d shadow copies", vi.path, VSS_MAX_SHADOWS_PER_VOLUME);
                return;
        }
        p = provider_find(v, pidstr, vi.path, vi.fstype, &hr);
        if (p < 0) {
                reply_err(v, s->conn_serial, id, hr, "no %s supports volume %s (%s)",
                          pidstr ? "such provider" : "provider", vi.path, vi.fstype[0] ? vi.fstype : "unknown fstype");
                return;
        }
        nv = realloc(s->vols, (s->n_vols + 1) * sizeof(*s->vols));
        if (!nv) {
                reply_err(v, s->conn_serial, id, VSS_E_OUTOFMEMORY, "out of memory");
                return;
        }
        s->vols = nv;
        sv = &s->vols[s->n_vols];
        *sv = (struct set_volume){ .provider = p };
        snprintf(sv->path, sizeof(sv->path), "%s", vi.path);
        vss_id_generate(&sv->snap.snapshot_id);
        sv->snap.set_id = s->set_id;
        sv->snap.context = s->context;
        snprintf(sv->snap.volume, sizeof(sv->snap.volume), "%s", vi.path);
        snprintf(sv->snap.volume_device, sizeof(sv->snap.volume_device), "%s", vi.device);
        snprintf(sv->snap.fstype, sizeof(sv->snap.fstype), "%s", vi.fstype);
        j = prov_job_new(PROV_BEGIN_PREPARE, p, &sv->snap, 1);
        if (!j) {
                reply_err(v, s->conn_serial, id, VSS_E_OUTOFMEMORY, "out of memory");
                return;
        }
        s->n_vols++;
        s->call_id = id;
        s->step = CALL_ADD_VOLUME;
        s->prov_outstanding++;
        j->done = add_volume_done;
        j->userdata = s;
        prov_submit(v, j);
}

/* ---- the methods ---- */

static void start_stage(struct vssd *v, struct session *s, json_int_t id, int step, enum vss_event ev)
{
        s->call_id = id;
        s->step = step;
        s->outstanding = 0;
        if (ev == VSS_EVENT_IDENTIFY) {
                for (struct writer *w = v->writers; w; w = w->next)
                        if (!w->gone && session_writer_selected(s, w) && (!w->session || w->session == s))
                                writer_send_event(v, s, w, ev, true);
        } else
                (void)send_to_involved(v, s, ev, ev != VSS_EVENT_PREPARE_BACKUP);
        if (s->outstanding == 0)
                stage_done(v, s);
}

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

                if (o->phase == SET_NONE)
                        reply_err(v, s->conn_serial, id, VSS_E_SNAPSHOT_SET_IN_PROGRESS,
                                  "a restore of pid %d is between PreRestore and PostRestore", (int)o->pid);
                else
                        reply_err(v, s->conn_serial, id, VSS_E_SNAPSHOT_SET_IN_PROGRESS,
                                  "set %s of pid %d is between StartSnapshotSet and the end of DoSnapshotSet",
                                  vss_id_format(&o->set_id, idbuf), (int)o->pid);
                return;
        }
        if (s->phase != SET_NONE) {
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
        v->set_owner = s;
        s->call_id = id;
        s->step = CALL_RESTORE;
        s->outstanding = 0;
        for (struct writer *w = v->writers; w; w = w->next) {
                bool named = false;

                if (w->gone || (w->session && w->session != s))
                        continue;
                json_array_foreach(comps, i, x) {
                        vss_id wid;
                        if (json_get_id(x, "writer_id", &wid) && vss_id_equal(&wid, &w->writer_id))
                                named = true;
                }
                if (!named)
                        continue;
                w->involved = true;
                w->session = s;
                writer_send_event(v, s, w, ev, true);
        }
        if (s->outstanding == 0)
                stage_done(v, s);
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
        if (s->step != CALL_NONE) {
                reply_err(v, c->serial, id, VSS_E_BAD_STATE, "%s of this session is still running", s->call_method ?: "a call");
                return;
        }
        s->call_method = method;

        if (streq(m, "GatherWriterMetadata")) {
                start_stage(v, s, id, CALL_GATHER_METADATA, VSS_EVENT_IDENTIFY);
        } else if (streq(m, "SetContext")) {
                json_int_t ctx;

                if (!json_get_int(params, "context", &ctx)) {
                        reply_err(v, c->serial, id, VSS_E_INVALIDARG, "field 'context' is missing or not an integer");
                } else if (s->phase != SET_NONE) {
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
                if (s->phase != SET_NONE)
                        reply_err(v, c->serial, id, VSS_E_BAD_STATE, "this session already has snapshot set %s",
                                  vss_id_format(&s->set_id, idbuf));
                else if (v->set_owner && v->set_owner != s && v->set_owner->phase == SET_NONE)
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
                        vss_id_generate(&s->set_id);
                        s->phase = SET_STARTED;
                        v->set_owner = s;
                        (void)catalog_set_put(v, s, "started");
                        reply_ok(v, c->serial, id, json_pack("{s:o}", "set_id", json_id(&s->set_id)));
                }
        } else if (streq(m, "AddToSnapshotSet")) {
                add_to_set(v, s, id, params);
        } else if (streq(m, "PrepareForBackup")) {
                if (s->phase != SET_STARTED)
                        reply_err(v, c->serial, id, VSS_E_BAD_STATE, "PrepareForBackup needs a started, unprepared set");
                else {
                        session_compute_involvement(v, s);
                        for (struct writer *w = v->writers; w; w = w->next)
                                if (w->session == s && w->involved) {
                                        json_decref(w->metadata);
                                        w->metadata = json_object();
                                }
                        start_stage(v, s, id, CALL_PREPARE_BACKUP, VSS_EVENT_PREPARE_BACKUP);
                }
        } else if (streq(m, "DoSnapshotSet")) {
                if (s->phase != SET_STARTED && s->phase != SET_PREPARED)
                        reply_err(v, c->serial, id, VSS_E_BAD_STATE, "DoSnapshotSet needs a started set not yet created");
                else if (s->n_vols == 0)
                        reply_err(v, c->serial, id, VSS_E_BAD_STATE, "the snapshot set has no volumes: call AddToSnapshotSet");
                else {
                        s->call_id = id;
                        s->step = CALL_SNAPSET;
                        snapset_do(v, s);
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
                        start_stage(v, s, id, CALL_BACKUP_COMPLETE, VSS_EVENT_BACKUP_COMPLETE);
                }
        } else if (streq(m, "AbortBackup")) {
                if (s->phase == SET_NONE || s->phase == SET_COMPLETED)
                        reply_err(v, c->serial, id, VSS_E_BAD_STATE, "there is no snapshot set to abort");
                else {
                        if (s->phase == SET_CREATED)
                                s->committed = true;
                        snprintf(s->fail_detail, sizeof(s->fail_detail), "AbortBackup by the requester");
                        session_abort_set(v, s, true);
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
        if (s->step == CALL_NONE)
                s->call_method = NULL;
}
