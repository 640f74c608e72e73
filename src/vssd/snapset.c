/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * DoSnapshotSet as a resumable state machine.  Each step sends events to
 * every involved writer at once, or queues provider jobs (one per provider,
 * covering that provider's volumes), then returns to the loop; the last reply
 * or job completion calls snapset_continue() which checks for failures and
 * runs the next step.  Freeze timers are armed right before Freeze and
 * cancelled right before Thaw, all on the loop thread.
 */

#include <stdio.h>

#include "basic/writer-state.h"
#include "vssd/attrs.h"
#include "vssd/vssd.h"

enum {
        STEP_PREPARE_BACKUP = SNAPSET_STEP_FIRST,
        STEP_PREPARE_SNAPSHOT,
        STEP_END_PREPARE,
        STEP_FREEZE,
        STEP_PRE_COMMIT,
        STEP_COMMIT,
        STEP_POST_COMMIT,
        STEP_THAW,
        STEP_POST_SNAPSHOT,
};


static void writer_detail(struct writer *w, char *buf, size_t len)
{
        char idbuf[VSS_ID_STRING_MAX];

        snprintf(buf, len, "writer '%s' %s is %s (%s), last error: %s (0x%08X %s)%s%s", w->name,
                 vss_id_format(&w->writer_id, idbuf), vss_writer_state_label(w->state),
                 vss_writer_state_name(w->state), vss_writer_error_label(w->failure), (uint32_t)w->failure,
                 vss_hresult_name(w->failure), w->message ? ": " : "", w->message ?: "");
}

static void snapset_fail(struct vssd *v, struct session *s, vss_hresult hr, const char *detail)
{
        json_int_t id = s->call_id;
        uint64_t serial = s->conn_serial;

        if (s->fail_hr == VSS_S_OK) {
                s->fail_hr = hr;
                snprintf(s->fail_detail, sizeof(s->fail_detail), "%s", detail);
        }
        session_abort_set(v, s, true);
        s->call_id = -1;
        s->step = 0;
        s->call_method = NULL;
        if (s->closing) {
                session_release(v, s);
                return;
        }
        reply_err(v, serial, id, s->fail_hr, "%s", s->fail_detail);
}

/* A failed involved writer at PrepareForSnapshot or Freeze aborts the set. */
static bool check_writers(struct vssd *v, struct session *s, enum vss_writer_state failed_state)
{
        char detail[1024];

        for (struct writer *w = v->writers; w; w = w->next)
                if (w->session == s && w->involved && w->state == failed_state) {
                        writer_detail(w, detail, sizeof(detail));
                        snapset_fail(v, s, w->failure, detail);
                        return false;
                }
        return true;
}

static void prov_step_done(struct vssd *v, struct prov_job *j)
{
        struct session *s = j->userdata;

        s->prov_outstanding--;
        if (j->op == PROV_COMMIT && VSS_SUCCEEDED(j->hr))
                s->committed = true;
        if (VSS_FAILED(j->hr) && s->prov_hr == VSS_S_OK) {
                s->prov_hr = j->hr;
                snprintf(s->prov_error, sizeof(s->prov_error), "provider '%s' failed: %.500s",
                         provider_table[j->provider]->name, j->error[0] ? j->error : vss_hresult_message(j->hr));
        }
        /* Providers fill snapshot fields as they go; keep their latest view. */
        if (VSS_SUCCEEDED(j->hr))
                for (size_t i = 0; i < j->n; i++)
                        for (size_t k = 0; k < s->n_vols; k++)
                                if (vss_id_equal(&s->vols[k].snap.snapshot_id, &j->snaps[i].snapshot_id))
                                        s->vols[k].snap = j->snaps[i];
        if (s->prov_outstanding == 0 && s->outstanding == 0)
                snapset_continue(v, s);
}

static void submit_provider_step(struct vssd *v, struct session *s, enum prov_op op)
{
        bool done[VSS_MAX_VOLUMES_PER_SET] = {};

        s->prov_outstanding++; /* held while queueing */
        for (size_t i = 0; i < s->n_vols; i++) {
                struct vss_provider_snapshot snaps[VSS_MAX_VOLUMES_PER_SET];
                int p = s->vols[i].provider;
                struct prov_job *j;
                size_t n = 0;

                if (done[i])
                        continue;
                for (size_t k = i; k < s->n_vols; k++)
                        if (s->vols[k].provider == p) {
                                snaps[n++] = s->vols[k].snap;
                                done[k] = true;
                        }
                j = prov_job_new(op, p, snaps, n);
                if (!j) {
                        if (s->prov_hr == VSS_S_OK) {
                                s->prov_hr = VSS_E_OUTOFMEMORY;
                                snprintf(s->prov_error, sizeof(s->prov_error), "out of memory");
                        }
                        continue;
                }
                j->freeze = op == PROV_COMMIT && v->providers[p].ops->needs_freeze;
                j->done = prov_step_done;
                j->userdata = s;
                s->prov_outstanding++;
                prov_submit(v, j);
        }
        s->prov_outstanding--;
}

static int send_events(struct vssd *v, struct session *s, enum vss_event ev)
{
        s->outstanding = 0;
        for (struct writer *w = v->writers; w; w = w->next)
                if (w->session == s && w->involved && !w->gone && !writer_state_is_failed(w->state))
                        writer_send_event(v, s, w, ev, true);
        return s->outstanding;
}

static void record_shadows(struct vssd *v, struct session *s)
{
        int64_t now = (int64_t)clock_realtime_us();
        char idbuf[VSS_ID_STRING_MAX];

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
                (void)catalog_shadow_put(v, sh);
                catalog_event(v, "info", "shadow", VSS_S_OK, "shadow copy %s of %s created (%s) at %s",
                              vss_id_format(&sh->snap.snapshot_id, idbuf), sh->snap.volume,
                              context_type_name(s->context) ?: "?", sh->snap.device);
        }
        /* Published volumes show the new shadow copies as previous versions. */
        for (size_t i = 0; i < s->n_vols; i++)
                pubver_sync(v, s->vols[i].snap.volume);
}

static void finish(struct vssd *v, struct session *s)
{
        json_t *shadows = json_array();

        for (struct shadow *sh = v->shadows; sh; sh = sh->next)
                if (vss_id_equal(&sh->snap.set_id, &s->set_id))
                        json_array_append_new(shadows, shadow_prop_json(v, sh));
        s->phase = SET_CREATED;
        if (v->set_owner == s)
                v->set_owner = NULL;
        for (struct writer *w = v->writers; w; w = w->next)
                if (w->session == s && w->involved)
                        (void)catalog_metadata_put(v, &s->set_id, w);
        (void)catalog_set_put(v, s, "created");
        if (s->closing) {
                json_decref(shadows);
                session_release(v, s);
                return;
        }
        session_finish_call(v, s, json_pack("{s:o, s:o, s:o}", "set_id", json_id(&s->set_id), "shadows", shadows,
                                            "writers", session_status_json(v, s)));
}

void snapset_do(struct vssd *v, struct session *s)
{
        s->phase_before_do = s->phase;
        s->phase = SET_CREATING;
        s->fail_hr = VSS_S_OK;
        s->fail_detail[0] = 0;
        s->prov_hr = VSS_S_OK;
        s->committed = false;
        s->freeze_expired_tag = 0;
        /* DoSnapshotSet without PrepareForBackup runs it implicitly. */
        if (s->phase_before_do == SET_STARTED) {
                session_compute_involvement(v, s);
                for (struct writer *w = v->writers; w; w = w->next)
                        if (w->session == s && w->involved) {
                                json_decref(w->metadata);
                                w->metadata = json_object();
                        }
        }
        s->step = STEP_PREPARE_BACKUP;
        s->outstanding = 0;
        snapset_continue(v, s);
}

static bool need_implicit_prepare(struct session *s);

void snapset_continue(struct vssd *v, struct session *s)
{
        char detail[1200];
        int n;

        if (s->closing && s->prov_outstanding == 0 && s->step < STEP_THAW) {
                snapset_fail(v, s, s->fail_hr ?: VSS_E_ABORT,
                             s->fail_detail[0] ? s->fail_detail : "the requester disconnected during DoSnapshotSet");
                return;
        }
        for (;;) {
                switch (s->step) {
                case STEP_PREPARE_BACKUP:
                        s->step = STEP_PREPARE_SNAPSHOT;
                        if (need_implicit_prepare(s)) {
                                if (send_events(v, s, VSS_EVENT_PREPARE_BACKUP) > 0)
                                        return;
                        }
                        break;
                case STEP_PREPARE_SNAPSHOT:
                        s->step = STEP_END_PREPARE;
                        s->outstanding = 0;
                        for (struct writer *w = v->writers; w; w = w->next) {
                                if (w->session != s || !w->involved || w->gone || writer_state_is_failed(w->state))
                                        continue;
                                if (w->partial) {
                                        char msg[200];
                                        snprintf(msg, sizeof(msg),
                                                 "the snapshot set covers only some of the writer's %zu volumes",
                                                 w->n_volumes);
                                        writer_set_failed(v, w, VSS_EVENT_PREPARE_SNAPSHOT,
                                                          VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT, msg);
                                        continue;
                                }
                                writer_send_event(v, s, w, VSS_EVENT_PREPARE_SNAPSHOT, true);
                        }
                        if (s->outstanding > 0)
                                return;
                        break;
                case STEP_END_PREPARE:
                        if (!check_writers(v, s, VSS_WS_FAILED_AT_PREPARE_SNAPSHOT))
                                return;
                        s->step = STEP_FREEZE;
                        submit_provider_step(v, s, PROV_END_PREPARE);
                        s->prov_prepared = true;
                        if (s->prov_outstanding > 0)
                                return;
                        break;
                case STEP_FREEZE:
                        if (s->prov_hr != VSS_S_OK) {
                                snapset_fail(v, s, s->prov_hr, s->prov_error);
                                return;
                        }
                        s->step = STEP_PRE_COMMIT;
                        s->outstanding = 0;
                        for (struct writer *w = v->writers; w; w = w->next) {
                                if (w->session != s || !w->involved || w->gone || writer_state_is_failed(w->state))
                                        continue;
                                w->freeze_set_id = s->set_id;
                                w->freeze_timer.userdata = w;
                                timer_arm(v, &w->freeze_timer, clock_monotonic_us() + (uint64_t)w->freeze_timeout_ms * 1000);
                                writer_send_event(v, s, w, VSS_EVENT_FREEZE, true);
                        }
                        if (s->outstanding > 0)
                                return;
                        break;
                case STEP_PRE_COMMIT:
                        if (!check_writers(v, s, VSS_WS_FAILED_AT_FREEZE))
                                return;
                        s->step = STEP_COMMIT;
                        submit_provider_step(v, s, PROV_PRE_COMMIT);
                        if (s->prov_outstanding > 0)
                                return;
                        break;
                case STEP_COMMIT:
                        if (s->prov_hr != VSS_S_OK) {
                                snapset_fail(v, s, s->prov_hr, s->prov_error);
                                return;
                        }
                        if (!check_writers(v, s, VSS_WS_FAILED_AT_FREEZE))
                                return;
                        s->step = STEP_POST_COMMIT;
                        submit_provider_step(v, s, PROV_COMMIT);
                        if (s->prov_outstanding > 0)
                                return;
                        break;
                case STEP_POST_COMMIT:
                        if (s->prov_hr != VSS_S_OK) {
                                /* Committed shadows of other providers are undone by their abort. */
                                s->committed = false;
                                snapset_fail(v, s, s->prov_hr, s->prov_error);
                                return;
                        }
                        /* A freeze timer that expired while the provider committed still aborts. */
                        if (s->freeze_expired_tag) {
                                s->committed = false;
                                if (!check_writers(v, s, VSS_WS_FAILED_AT_FREEZE))
                                        return;
                        }
                        s->step = STEP_THAW;
                        submit_provider_step(v, s, PROV_POST_COMMIT);
                        if (s->prov_outstanding > 0)
                                return;
                        break;
                case STEP_THAW:
                        if (s->prov_hr != VSS_S_OK) {
                                s->committed = false;
                                snapset_fail(v, s, s->prov_hr, s->prov_error);
                                return;
                        }
                        s->prov_prepared = false;
                        s->step = STEP_POST_SNAPSHOT;
                        for (struct writer *w = v->writers; w; w = w->next)
                                if (w->session == s)
                                        timer_cancel(v, &w->freeze_timer);
                        /* Thaw first: the catalog's synced write need not lengthen the writers' freeze;
                         * their replies are read only after this step returns to the loop. */
                        n = send_events(v, s, VSS_EVENT_THAW);
                        record_shadows(v, s);
                        if (n > 0)
                                return;
                        break;
                case STEP_POST_SNAPSHOT:
                        s->step = STEP_POST_SNAPSHOT + 1;
                        if (s->closing) {
                                finish(v, s);
                                return;
                        }
                        if (send_events(v, s, VSS_EVENT_POST_SNAPSHOT) > 0)
                                return;
                        break;
                default:
                        (void)detail;
                        finish(v, s);
                        return;
                }
        }
}

static bool need_implicit_prepare(struct session *s)
{
        return s->phase_before_do == SET_STARTED;
}

void snapset_freeze_expired(struct vssd *v, struct writer *w)
{
        struct session *s = w->session;
        char msg[128];

        snprintf(msg, sizeof(msg), "freeze timer of %u ms expired before Thaw", w->freeze_timeout_ms);
        writer_set_failed(v, w, VSS_EVENT_FREEZE, VSS_E_WRITERERROR_TIMEOUT, msg);
        writer_send_event(v, s, w, VSS_EVENT_ABORT, false);
        if (s->committed)
                return;
        s->freeze_expired_tag = 1;
        if (w->pending_event >= 0) {
                timer_cancel(v, &w->deadline);
                w->pending_event = -1;
                session_writer_done(v, s);
        }
}
