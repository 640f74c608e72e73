/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Cluster snapshot sets in vssd (docs/cluster.md §11): the driver of cset.c's two state
 * machines.  The loop thread owns the machines, the writers and the providers; the
 * cluster thread (cluster.c) makes every etcd call, because they block.
 *
 *   coordinator  the requester's session whose volumes are HOST:VOLUME (session.c hands
 *                them over: vcset_add_volume, vcset_do); its DoSnapshotSet sends T1 and
 *                answers at the machine's REPORT;
 *   participant  every vssd whose host the spec names (the coordinator's own too): a
 *                session of vssd's own, without a connection, walks set.c's backup steps
 *                in the three slices PREPARE_LOCAL, FREEZE_LOCAL and COMMIT_LOCAL, and its
 *                ends come back through its ops->call_done as LOCAL_* events.
 *
 * Loop -> thread: jobs (T1, every write action, T11, "forget this set").  Thread -> loop:
 * messages on an eventfd (T1's outcome, a spec naming us, every event read from etcd); the
 * thread's half is cluster-set-thread.c.  Each machine's next_deadline_us arms a loop timer
 * that feeds CSET_EV_TICK, so a host thaws by its own hold deadline whatever etcd does.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "basic/string-util.h"
#include "basic/time-util.h"
#include "vssd/vcluster.h"
#include "vssd/volume.h"

/* ======================= loop thread ======================= */

enum local_work {
        LOCAL_NONE,
        LOCAL_PREPARE,
        LOCAL_FREEZE,
        LOCAL_COMMIT,
        LOCAL_COMPLETE,         /* BackupComplete, then the session goes */
};

struct vcset {
        struct set_ops ops;                     /* the participant session's: session.c's, two replaced */

        /* This host's participant. */
        bool p_active;
        struct cset_participant p;
        struct session *ps;
        enum local_work local;
        struct timer p_timer;
        char p_set[CSET_SET_ID_MAX];
        vss_hresult p_refused;                  /* its volumes could not be taken: prepare fails */
        char p_refused_detail[CSET_DETAIL_MAX];

        /* The coordinator (the requester's session rs). */
        bool c_active;
        struct cset_coordinator c;
        struct session *rs;
        struct timer c_timer;
        char c_set[CSET_SET_ID_MAX];
        char c_hosts[CSET_MAX_HOSTS][CSET_HOST_MAX];
        const char *c_host_ptrs[CSET_MAX_HOSTS];
        size_t c_n_hosts;
        bool c_lease;                           /* T1 succeeded: T11 is owed */
        struct timer c_hold_timer;              /* VSSD_DEBUG_CLUSTER_COMMIT_DELAY_MS: T5 waits */
        struct cset_action c_held;
};

static void queue_job(struct vssd *v, struct vc_job *j)
{
        struct vcluster *k = v->cluster;

        pthread_mutex_lock(&k->lock);
        if (k->jobs_tail)
                k->jobs_tail->next = j;
        else
                k->jobs = j;
        k->jobs_tail = j;
        pthread_cond_signal(&k->cond);
        pthread_mutex_unlock(&k->lock);
}

static void queue_simple(struct vssd *v, enum vc_job_kind kind, bool coord, const char *set_id,
                         const struct cset_action *a)
{
        struct vc_job *j = calloc(1, sizeof(*j));

        if (!j) {
                log_err("[cluster] out of memory queueing %s", a ? cset_action_name(a->type) : "a job");
                return;
        }
        j->kind = kind;
        j->coord = coord;
        if (a)
                j->act = *a;
        snprintf(j->set_id, sizeof(j->set_id), "%s", set_id);
        queue_job(v, j);
}

static void feed_p(struct vssd *v, struct cset_event *ev);
static void feed_c(struct vssd *v, struct cset_event *ev);

static void release_ps(struct vssd *v)
{
        struct vcset *cs = v->cluster->set;

        if (cs->ps && !cs->ps->closing)
                set_release(v, cs->ps);
}

static void local_done(struct vssd *v, enum cset_event_type type, vss_hresult hr, const char *writer,
                       const char *detail)
{
        struct cset_event ev = { .type = type };

        ev.failure.hr = hr;
        if (VSS_FAILED(hr)) {
                snprintf(ev.failure.host, sizeof(ev.failure.host), "%s", v->cluster->cfg.host);
                snprintf(ev.failure.writer, sizeof(ev.failure.writer), "%s", writer ?: "");
                snprintf(ev.failure.detail, sizeof(ev.failure.detail), "%s", detail ?: "");
        }
        feed_p(v, &ev);
}

/* The participant session's local part ended (set.c's call_done). */
static void ps_call_done(struct vssd *v, struct session *s, vss_hresult hr, const char *detail)
{
        struct vcset *cs = v->cluster->set;
        enum local_work w = cs->local;
        static const enum cset_event_type ev_of[] = {
                [LOCAL_PREPARE] = CSET_EV_LOCAL_PREPARED,
                [LOCAL_FREEZE] = CSET_EV_LOCAL_FROZEN,
                [LOCAL_COMMIT] = CSET_EV_LOCAL_COMMITTED,
        };

        if (s != cs->ps)
                return;
        cs->local = LOCAL_NONE;
        if (w == LOCAL_COMPLETE) {
                release_ps(v);
                return;
        }
        if (w == LOCAL_NONE)
                return;         /* aborted meanwhile: the machine asked for nothing */
        local_done(v, ev_of[w], detail ? hr : VSS_S_OK, s->fail_writer, detail);
}

static void ps_released(struct vssd *v, struct session *s)
{
        struct vcset *cs = v->cluster ? v->cluster->set : NULL;

        if (cs && cs->ps == s)
                cs->ps = NULL;
        session_set_ops.released(v, s);
}

/* The spec's volumes for this host, through the same checks as AddToSnapshotSet. */
static void ps_create(struct vssd *v, json_t *spec, json_t *mine)
{
        struct vcset *cs = v->cluster->set;
        const char *set_id = json_string_value(json_object_get(spec, "set_id"));
        json_int_t ctx = VSS_CTX_BACKUP;
        struct session *s;
        json_t *x;
        size_t i;

        cs->p_refused = VSS_S_OK;
        s = session_new_internal(v, &cs->ops);
        if (!s) {
                cs->p_refused = VSS_E_OUTOFMEMORY;
                snprintf(cs->p_refused_detail, sizeof(cs->p_refused_detail), "out of memory");
                return;
        }
        cs->ps = s;
        if (!set_id || vss_id_parse(set_id, &s->set_id) != VSS_S_OK) {
                cs->p_refused = VSS_E_INVALIDARG;
                snprintf(cs->p_refused_detail, sizeof(cs->p_refused_detail), "the spec's set_id is not a GUID");
                return;
        }
        if (json_get_int(spec, "context", &ctx))
                s->context = (int32_t)ctx;
        json_array_foreach(mine, i, x) {
                const char *vol = json_string_value(json_object_get(x, "volume"));
                char err[VSS_PATH_MAX + 128] = "";
                vss_id sid;
                vss_hresult hr;

                if (!vol || !json_get_id(x, "shadow_id", &sid)) {
                        hr = VSS_E_INVALIDARG;
                        snprintf(err, sizeof(err), "the spec's volume %zu has no volume or shadow_id", i);
                } else
                        hr = session_add_volume(v, s, vol, NULL, &sid, err, sizeof(err));
                if (hr != VSS_S_OK) {
                        cs->p_refused = hr;
                        snprintf(cs->p_refused_detail, sizeof(cs->p_refused_detail), "%s", err);
                        return;
                }
        }
}

static void arm(struct vssd *v, struct timer *t, uint64_t when)
{
        if (when)
                timer_arm(v, t, when);
        else
                timer_cancel(v, t);
}

static void run_p(struct vssd *v, const struct cset_actions *out)
{
        struct vcset *cs = v->cluster->set;
        char idbuf[VSS_ID_STRING_MAX];

        arm(v, &cs->p_timer, out->next_deadline_us);
        for (size_t i = 0; i < out->n; i++) {
                const struct cset_action *a = &out->a[i];

                log_debug("[cluster] participant %s: %s %s", cs->p_set, cset_action_name(a->type), a->failure.detail);
                switch (a->type) {
                case CSET_ACT_PREPARE_LOCAL:
                        if (cs->p_refused != VSS_S_OK || !cs->ps) {
                                local_done(v, CSET_EV_LOCAL_PREPARED, cs->p_refused ?: VSS_E_OUTOFMEMORY, NULL,
                                           cs->p_refused_detail);
                        } else if (v->set_owner && v->set_owner != cs->ps) {
                                char why[CSET_DETAIL_MAX];

                                snprintf(why, sizeof(why), "set %s of pid %d is between StartSnapshotSet and the "
                                         "end of DoSnapshotSet on this host", vss_id_format(&v->set_owner->set_id, idbuf),
                                         (int)v->set_owner->pid);
                                local_done(v, CSET_EV_LOCAL_PREPARED, VSS_E_SNAPSHOT_SET_IN_PROGRESS, NULL, why);
                        } else if (shadows_revert_running(v)) {
                                local_done(v, CSET_EV_LOCAL_PREPARED, VSS_E_SNAPSHOT_SET_IN_PROGRESS, NULL,
                                           shadows_revert_running(v));
                        } else {
                                cs->local = LOCAL_PREPARE;
                                set_cluster_prepare(v, cs->ps);
                        }
                        break;
                case CSET_ACT_FREEZE_LOCAL:
                        if (cs->ps) {
                                cs->ps->cluster_hold_until_us = a->deadline_us;
                                cs->local = LOCAL_FREEZE;
                                set_cluster_freeze(v, cs->ps);
                        }
                        break;
                case CSET_ACT_COMMIT_LOCAL:
                        if (cs->ps) {
                                cs->local = LOCAL_COMMIT;
                                set_cluster_commit(v, cs->ps);
                        }
                        break;
                case CSET_ACT_THAW_ABORT_LOCAL:
                case CSET_ACT_ABORT_LOCAL:
                        cs->local = LOCAL_NONE;
                        if (cs->ps)
                                set_cluster_abort(v, cs->ps, a->failure.hr ?: VSS_E_ABORT,
                                                  a->failure.detail[0] ? a->failure.detail : "the cluster set aborted");
                        break;
                case CSET_ACT_DELETE_SHADOWS: {
                        vss_id set;

                        if (vss_id_parse(cs->p_set, &set) != VSS_S_OK)
                                break;
                        for (struct shadow *sh = v->shadows; sh; sh = sh->next)
                                if (!sh->deleting && vss_id_equal(&sh->snap.set_id, &set))
                                        shadow_delete(v, sh, NULL, NULL);
                        break;
                }
                case CSET_ACT_BACKUP_COMPLETE:
                        if (cs->ps && cs->ps->phase == SET_CREATED && !set_busy(cs->ps)) {
                                cs->ps->backup_succeeded = a->succeeded;
                                cs->local = LOCAL_COMPLETE;
                                set_backup_complete(v, cs->ps);
                        } else
                                release_ps(v);
                        break;
                case CSET_ACT_BACKUP_SHUTDOWN:
                        cs->local = LOCAL_NONE;
                        release_ps(v);
                        break;
                case CSET_ACT_FORGET:
                        log_info("[cluster] host %s is done with cluster set %s (%s)", v->cluster->cfg.host,
                                 cs->p_set, cs->p.failure.hr ? vss_hresult_name(cs->p.failure.hr) : "ok");
                        cs->p_active = false;
                        timer_cancel(v, &cs->p_timer);
                        queue_simple(v, VC_JOB_FORGET, false, cs->p_set, NULL);
                        if (cs->local != LOCAL_COMPLETE)
                                release_ps(v);
                        return;
                default:
                        queue_simple(v, VC_JOB_WRITE, false, cs->p_set, a);
                        break;
                }
        }
}

static void feed_p(struct vssd *v, struct cset_event *ev)
{
        struct vcset *cs = v->cluster->set;
        struct cset_actions out;

        if (!cs->p_active)
                return;
        ev->now_us = clock_monotonic_us();
        if (cset_participant_event(&cs->p, ev, &out) == 0)
                run_p(v, &out);
}

static void report(struct vssd *v, const struct cset_failure *f)
{
        struct vcset *cs = v->cluster->set;
        char detail[CSET_DETAIL_MAX + CSET_HOST_MAX + CSET_WRITER_MAX + 128];

        if (!cs->rs)
                return;
        if (f->hr == VSS_S_OK) {
                set_cluster_coordinated(v, cs->rs, VSS_S_OK, NULL);
                return;
        }
        snprintf(detail, sizeof(detail), "cluster set %s failed on host %s%s%s%s: %s", cs->c_set,
                 f->host[0] ? f->host : "?", f->writer[0] ? ", writer '" : "", f->writer,
                 f->writer[0] ? "'" : "", f->detail);
        set_cluster_coordinated(v, cs->rs, f->hr, detail);
}

static void run_c(struct vssd *v, const struct cset_actions *out)
{
        struct vcset *cs = v->cluster->set;

        arm(v, &cs->c_timer, out->next_deadline_us);
        for (size_t i = 0; i < out->n; i++) {
                const struct cset_action *a = &out->a[i];

                log_debug("[cluster] coordinator %s: %s %s", cs->c_set, cset_action_name(a->type), a->failure.detail);
                switch (a->type) {
                case CSET_ACT_REPORT:
                        report(v, &a->failure);
                        break;
                case CSET_ACT_WRITE_COMMIT: {
                        uint64_t ms = debug_ms_from_env("VSSD_DEBUG_CLUSTER_COMMIT_DELAY_MS");

                        if (ms == 0) {
                                queue_simple(v, VC_JOB_WRITE, true, cs->c_set, a);
                                break;
                        }
                        /* Every host is frozen and waits: tests kill or cut hosts now. Logged
                         * before the wait, as debug_sleep_from_env does. */
                        log_warn("VSSD_DEBUG_CLUSTER_COMMIT_DELAY_MS: test hook, holding the commit decision of "
                                 "set %s for %llu ms", cs->c_set, (unsigned long long)ms);
                        cs->c_held = *a;
                        timer_arm(v, &cs->c_hold_timer, clock_monotonic_us() + ms * USEC_PER_MSEC);
                        break;
                }
                case CSET_ACT_FORGET:
                        cs->c_active = false;
                        timer_cancel(v, &cs->c_timer);
                        timer_cancel(v, &cs->c_hold_timer);
                        queue_simple(v, VC_JOB_FORGET, true, cs->c_set, NULL);
                        return;
                default:
                        queue_simple(v, VC_JOB_WRITE, true, cs->c_set, a);
                        break;
                }
        }
}

static void feed_c(struct vssd *v, struct cset_event *ev)
{
        struct vcset *cs = v->cluster->set;
        struct cset_actions out;

        if (!cs->c_active)
                return;
        ev->now_us = clock_monotonic_us();
        if (cset_coordinator_event(&cs->c, ev, &out) == 0)
                run_c(v, &out);
}

static void p_tick(struct vssd *v, struct timer *t)
{
        struct cset_event ev = { .type = CSET_EV_TICK };

        (void)t;
        feed_p(v, &ev);
}

static void c_tick(struct vssd *v, struct timer *t)
{
        struct cset_event ev = { .type = CSET_EV_TICK };

        (void)t;
        feed_c(v, &ev);
}

static void c_hold_done(struct vssd *v, struct timer *t)
{
        struct vcset *cs = v->cluster->set;

        (void)t;
        if (cs->c_active)
                queue_simple(v, VC_JOB_WRITE, true, cs->c_set, &cs->c_held);
}

static void timing_from_spec(const struct vcluster *k, json_t *spec, struct cset_timing *t)
{
        json_t *j = json_object_get(spec, "timing");
        json_int_t x;

        *t = k->cfg.timing;
        if (json_get_int(j, "hold_ms", &x) && x > 0 && x < UINT32_MAX)
                cset_timing_set_hold(t, (uint32_t)x);
        if (json_get_int(j, "prepare_ms", &x) && x > 0 && x < UINT32_MAX)
                t->prepare_ms = (uint32_t)x;
        if (json_get_int(j, "commit_budget_ms", &x) && x > 0 && x < UINT32_MAX)
                t->commit_budget_ms = (uint32_t)x;
        if (json_get_int(j, "retry_ms", &x) && x > 0 && x < UINT32_MAX)
                t->retry_ms = (uint32_t)x;
        if (json_get_int(j, "unreachable_ms", &x) && x > 0 && x < UINT32_MAX)
                t->unreachable_ms = (uint32_t)x;
        if (cset_timing_check(t) < 0)
                *t = k->cfg.timing;
}

static void spec_seen(struct vssd *v, const char *text)
{
        struct vcluster *k = v->cluster;
        struct vcset *cs = k->set;
        json_t *spec = json_loads(text, 0, NULL);
        const char *set_id = json_string_value(json_object_get(spec, "set_id"));
        json_t *mine = json_object_get(json_object_get(spec, "participants"), k->cfg.host);
        struct cset_event ev = { .type = CSET_EV_SET_SEEN };

        if (!set_id || !json_is_array(mine)) {
                json_decref(spec);
                return;
        }
        if (cs->p_active) {
                log_warn("[cluster] set %s names this host while set %s is not over here; ignored", set_id, cs->p_set);
                json_decref(spec);
                return;
        }
        log_info("[cluster] host %s joins cluster set %s (coordinator %s, %zu volumes here)", k->cfg.host, set_id,
                 json_string_value(json_object_get(spec, "coordinator")) ?: "?", json_array_size(mine));
        snprintf(cs->p_set, sizeof(cs->p_set), "%s", set_id);
        cset_participant_init(&cs->p, k->cfg.host);
        cs->p_active = true;
        cs->local = LOCAL_NONE;
        if (cs->ps)
                release_ps(v);          /* a previous set's session still completing: let it go */
        cs->ps = NULL;
        ps_create(v, spec, mine);
        timing_from_spec(k, spec, &ev.timing);
        json_decref(spec);
        feed_p(v, &ev);
}

static void started(struct vssd *v, vss_hresult hr, const char *detail)
{
        struct vcset *cs = v->cluster->set;
        struct cset_actions out;

        if (!cs->rs)
                return;
        if (VSS_FAILED(hr)) {
                set_cluster_coordinated(v, cs->rs, hr, detail);
                return;
        }
        cs->c_lease = true;
        if (cset_coordinator_init(&cs->c, &v->cluster->cfg.timing, cs->c_host_ptrs, cs->c_n_hosts) < 0) {
                set_cluster_coordinated(v, cs->rs, VSS_E_UNEXPECTED, "the cluster set's timing is not coherent");
                return;
        }
        cs->c_active = true;
        if (cset_coordinator_start(&cs->c, clock_monotonic_us(), &out) == 0)
                run_c(v, &out);
}

void vcluster_dispatch(struct vssd *v)
{
        struct vcluster *k = v->cluster;
        struct vc_msg *m;
        uint64_t x;

        if (!k)
                return;
        (void)!read(k->evfd, &x, sizeof(x));
        pthread_mutex_lock(&k->lock);
        m = k->msgs;
        k->msgs = k->msgs_tail = NULL;
        pthread_mutex_unlock(&k->lock);
        while (m) {
                struct vc_msg *next = m->next;

                switch (m->kind) {
                case VC_MSG_EVENT:
                        if (m->host[0])
                                m->ev.host = m->host;
                        if (m->coord)
                                feed_c(v, &m->ev);
                        else
                                feed_p(v, &m->ev);
                        break;
                case VC_MSG_STARTED:
                        started(v, m->hr, m->detail);
                        break;
                case VC_MSG_SPEC:
                        spec_seen(v, m->spec);
                        break;
                }
                free(m->spec);
                free(m);
                m = next;
        }
}

/* ---- what session.c asks ---- */

vss_hresult vcset_add_volume(struct vssd *v, struct session *s, const char *host, const char *volume,
                             vss_id *ret_shadow_id, char *err, size_t errlen)
{
        struct vcluster *k = v->cluster;
        const char *h = host && host[0] ? host : NULL;
        json_t *list, *x;
        size_t i, total = 0;
        const char *name;

        if (!k) {
                snprintf(err, errlen, "this vssd is not part of a cluster (vssd.conf has no [cluster] section): "
                         "cannot take %s:%s", host, volume);
                return VSS_E_NOT_SUPPORTED;
        }
        if (!h)
                h = k->cfg.host;
        if (!cluster_host_name_valid(h)) {
                snprintf(err, errlen, "'%s' is not a host name", h);
                return VSS_E_INVALIDARG;
        }
        if (!volume || volume[0] != '/') {
                snprintf(err, errlen, "volume '%s' of host %s is not an absolute path", volume ?: "", h);
                return VSS_E_INVALIDARG;
        }
        if (s->n_vols > 0) {
                snprintf(err, errlen, "this set already has local volumes: a cluster set takes every volume as "
                         "HOST:VOLUME");
                return VSS_E_BAD_STATE;
        }
        if (!streq(h, k->cfg.host)) {
                const char *state = NULL;

                pthread_mutex_lock(&k->lock);
                json_array_foreach(k->view, i, x)
                        if (streq_ptr(json_string_value(json_object_get(x, "name")), h))
                                state = json_string_value(json_object_get(x, "state"));
                pthread_mutex_unlock(&k->lock);
                if (!state) {
                        snprintf(err, errlen, "host %s is not a member of cluster %s", h, k->cfg.prefix);
                        return VSS_E_OBJECT_NOT_FOUND;
                }
                if (!streq(state, "present")) {
                        snprintf(err, errlen, "host %s is %s (its host record is not in etcd)", h, state);
                        return VSS_E_REMOTE_SERVER_UNAVAILABLE;
                }
        }
        if (!s->cluster_volumes)
                s->cluster_volumes = json_object();
        json_object_foreach(s->cluster_volumes, name, list) {
                if (json_object_size(s->cluster_volumes) >= CSET_MAX_HOSTS && !json_object_get(s->cluster_volumes, h))
                        break;
                json_array_foreach(list, i, x) {
                        total++;
                        if (streq(name, h) && streq_ptr(json_string_value(json_object_get(x, "volume")), volume)) {
                                snprintf(err, errlen, "volume %s:%s is already in the set", h, volume);
                                return VSS_E_OBJECT_ALREADY_EXISTS;
                        }
                }
        }
        if (!json_object_get(s->cluster_volumes, h) && json_object_size(s->cluster_volumes) >= CSET_MAX_HOSTS) {
                snprintf(err, errlen, "a cluster set has at most %d hosts", CSET_MAX_HOSTS);
                return VSS_E_MAXIMUM_NUMBER_OF_VOLUMES_REACHED;
        }
        if (total >= VSS_MAX_VOLUMES_PER_SET) {
                snprintf(err, errlen, "a snapshot set holds at most %d volumes", VSS_MAX_VOLUMES_PER_SET);
                return VSS_E_MAXIMUM_NUMBER_OF_VOLUMES_REACHED;
        }
        list = json_object_get(s->cluster_volumes, h);
        if (!list) {
                list = json_array();
                json_object_set_new(s->cluster_volumes, h, list);
        }
        vss_id_generate(ret_shadow_id);
        json_array_append_new(list, json_pack("{s:s, s:o}", "volume", volume, "shadow_id", json_id(ret_shadow_id)));
        if (!s->cluster_coordinator) {
                /* From now on this host's turn is its participant's, not this session's. */
                s->cluster_coordinator = true;
                if (v->set_owner == s)
                        v->set_owner = NULL;
        }
        return VSS_S_OK;
}

vss_hresult vcset_do(struct vssd *v, struct session *s, char *err, size_t errlen)
{
        struct vcluster *k = v->cluster;
        struct vcset *cs = k->set;
        char idbuf[VSS_ID_STRING_MAX];
        const struct cset_timing *t = &k->cfg.timing;
        struct vc_job *j;
        const char *h;
        json_t *list, *spec;

        if (cs->c_active || (cs->rs && cs->rs != s && cs->c_lease)) {
                snprintf(err, errlen, "this host already coordinates cluster set %s", cs->c_set);
                return VSS_E_SNAPSHOT_SET_IN_PROGRESS;
        }
        j = calloc(1, sizeof(*j));
        if (!j) {
                snprintf(err, errlen, "out of memory");
                return VSS_E_OUTOFMEMORY;
        }
        vss_id_format(&s->set_id, idbuf);
        snprintf(cs->c_set, sizeof(cs->c_set), "%s", idbuf);
        snprintf(j->set_id, sizeof(j->set_id), "%s", idbuf);
        cs->c_n_hosts = 0;
        json_object_foreach(s->cluster_volumes, h, list) {
                snprintf(cs->c_hosts[cs->c_n_hosts], CSET_HOST_MAX, "%s", h);
                snprintf(j->hosts[cs->c_n_hosts], CSET_HOST_MAX, "%s", h);
                cs->c_host_ptrs[cs->c_n_hosts] = cs->c_hosts[cs->c_n_hosts];
                cs->c_n_hosts++;
        }
        j->n_hosts = cs->c_n_hosts;
        spec = json_pack("{s:s, s:s, s:O, s:{s:i, s:i, s:i, s:i, s:i}, s:I, s:i, s:s}", "set_id", idbuf, "coordinator",
                         k->cfg.host, "participants", s->cluster_volumes, "timing", "hold_ms", (int)t->hold_ms,
                         "prepare_ms", (int)t->prepare_ms, "commit_budget_ms", (int)t->commit_budget_ms, "retry_ms",
                         (int)t->retry_ms, "unreachable_ms", (int)t->unreachable_ms, "created_us",
                         (json_int_t)clock_realtime_us(), "context", (int)s->context, "backup_type", s->backup_type);
        j->spec = spec ? json_dumps(spec, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        json_decref(spec);
        if (!j->spec) {
                free(j);
                snprintf(err, errlen, "out of memory");
                return VSS_E_OUTOFMEMORY;
        }
        j->kind = VC_JOB_START;
        j->coord = true;
        cs->rs = s;
        cs->c_lease = false;
        log_info("[cluster] coordinating cluster set %s over %zu hosts", idbuf, cs->c_n_hosts);
        set_cluster_coordinate(v, s);
        queue_job(v, j);
        return VSS_S_OK;
}

void vcset_end(struct vssd *v, struct session *s, bool backup_complete)
{
        struct vcset *cs = v->cluster ? v->cluster->set : NULL;
        struct vc_job *j;

        if (!cs || cs->rs != s)
                return;
        if (cs->c_lease) {
                j = calloc(1, sizeof(*j));
                if (j) {
                        j->kind = VC_JOB_END;
                        j->end_put = backup_complete;
                        snprintf(j->set_id, sizeof(j->set_id), "%s", cs->c_set);
                        queue_job(v, j);
                }
                cs->c_lease = false;
        }
        if (!backup_complete)
                cs->rs = NULL;
}

json_t *vcset_remote_shadows(struct vssd *v, const vss_id *set_id)
{
        struct vcluster *k = v->cluster;
        char idbuf[VSS_ID_STRING_MAX];
        json_t *a = json_array(), *h, *sh;
        size_t i, j;

        if (!k)
                return a;
        vss_id_format(set_id, idbuf);
        pthread_mutex_lock(&k->lock);
        json_array_foreach(k->view, i, h) {
                const char *name = json_string_value(json_object_get(h, "name"));

                if (streq_ptr(name, k->cfg.host))
                        continue;
                json_array_foreach(json_object_get(json_object_get(h, "record"), "shadows"), j, sh)
                        if (streq_ptr(json_string_value(json_object_get(sh, "set_id")), idbuf)) {
                                json_t *c = json_deep_copy(sh);

                                json_object_set_new(c, "host", json_string(name));
                                json_object_set_new(c, "originating_machine", json_string(name));
                                json_object_set_new(c, "service_machine", json_string(name));
                                json_array_append_new(a, c);
                        }
        }
        pthread_mutex_unlock(&k->lock);
        return a;
}

void vcset_session_gone(struct vssd *v, struct session *s)
{
        if (s->cluster_coordinator)
                vcset_end(v, s, false);
}

int vcset_init(struct vssd *v)
{
        struct vcluster *k = v->cluster;
        struct vcset *cs = calloc(1, sizeof(*cs));
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &k->evfd };

        if (!cs)
                return -ENOMEM;
        cs->ops = session_set_ops;
        cs->ops.call_done = ps_call_done;
        cs->ops.released = ps_released;
        cs->p_timer.cb = p_tick;
        cs->c_timer.cb = c_tick;
        cs->c_hold_timer.cb = c_hold_done;
        k->set = cs;
        k->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (k->evfd < 0 || epoll_ctl(v->epfd, EPOLL_CTL_ADD, k->evfd, &ev) < 0)
                return -errno;
        return 0;
}

void vcset_free(struct vssd *v)
{
        struct vcluster *k = v->cluster;
        struct vcset *cs = k->set;

        while (k->msgs) {
                struct vc_msg *m = k->msgs;

                k->msgs = m->next;
                free(m->spec);
                free(m);
        }
        while (k->jobs) {
                struct vc_job *j = k->jobs;

                k->jobs = j->next;
                free(j->spec);
                free(j);
        }
        k->set = NULL;
        if (cs) {
                timer_cancel(v, &cs->p_timer);
                timer_cancel(v, &cs->c_timer);
                timer_cancel(v, &cs->c_hold_timer);
                if (cs->ps) {
                        /* vssd stops: the local part aborts like a requester's set would. */
                        struct session *s = cs->ps;

                        cs->ps = NULL;
                        s->ops = &session_set_ops;
                        set_release(v, s);
                }
        }
        free(cs);
        if (k->evfd >= 0)
                close(k->evfd);
        k->evfd = -1;
}
