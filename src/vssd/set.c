/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The snapshot set of a session: its phases (set.h draws them) and the
 * sequences of steps that move it, written as tables below.  A requester's
 * call that needs writers or providers starts a sequence; each step sends one
 * event to a chosen group of writers at once (each with its own deadline), or
 * calls every provider once for its volumes of the set, then returns to the
 * loop.  The last reply (set_writer_done, called back by the registry) or
 * provider completion (set_provider_done) checks what a failure of that step
 * means and walks on; the end of the sequence moves the phase and answers the
 * call.  Freeze timers are armed right before Freeze and cancelled right
 * before Thaw, on the loop thread, tagged with the set id, so that a timer can
 * never fail a writer after its Thaw (KB 915331).
 *
 * Everything outside the set (sending events, timers, provider jobs, the
 * catalog, the requester's reply) goes through s->ops (struct set_ops), which
 * session.c wires to vssd and tests/unit/test-set.c fakes.
 *
 * Invariants:
 *  1. s->phase changes only in set_state(), along the arrows of set.h.
 *  2. s->seq is set while a requester's call is in progress; s->outstanding
 *     counts the replies and s->prov_outstanding the provider calls it awaits,
 *     and the sequence walks on only when both are zero.
 *  3. A provider call holds a pointer to the session, so the session is freed
 *     only when s->prov_outstanding is zero (set_release defers until then).
 *  4. Providers see abort only between EndPrepareSnapshots and a successful
 *     commit (s->prov_prepared && !s->committed), once each however the
 *     set's volumes interleave providers.
 */

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>

#include "basic/writer-state.h"
#include "vssd/attrs.h"
#include "vssd/vssd.h"

/* ---- phases ---- */

static const char *const phase_names[_SET_PHASE_MAX] = {
        [SET_IDLE] = "idle",
        [SET_STARTED] = "started",
        [SET_PREPARING] = "preparing",
        [SET_PREPARED] = "prepared",
        [SET_CREATING] = "creating",
        [SET_CREATED] = "created",
        [SET_COMPLETING] = "completing",
        [SET_COMPLETED] = "completed",
        [SET_ABORTED] = "aborted",
        [SET_PRE_RESTORING] = "pre-restoring",
        [SET_RESTORE_PREPARED] = "restore-prepared",
        [SET_POST_RESTORING] = "post-restoring",
};

#define P(x) (1u << (x))

/* The arrows of set.h: legal[from] has bit 'to'. */
static const unsigned legal[_SET_PHASE_MAX] = {
        [SET_IDLE] = P(SET_STARTED) | P(SET_PRE_RESTORING) | P(SET_POST_RESTORING),
        [SET_STARTED] = P(SET_PREPARING) | P(SET_CREATING) | P(SET_ABORTED),
        [SET_PREPARING] = P(SET_PREPARED) | P(SET_ABORTED),
        [SET_PREPARED] = P(SET_CREATING) | P(SET_ABORTED),
        [SET_CREATING] = P(SET_CREATED) | P(SET_ABORTED),
        [SET_CREATED] = P(SET_COMPLETING) | P(SET_ABORTED),
        [SET_COMPLETING] = P(SET_COMPLETED) | P(SET_ABORTED),
        [SET_COMPLETED] = 0,
        [SET_ABORTED] = 0,
        [SET_PRE_RESTORING] = P(SET_RESTORE_PREPARED) | P(SET_IDLE),
        [SET_RESTORE_PREPARED] = P(SET_PRE_RESTORING) | P(SET_POST_RESTORING) | P(SET_IDLE),
        [SET_POST_RESTORING] = P(SET_IDLE),
};

const char *set_phase_name(enum set_phase p)
{
        return (unsigned)p < _SET_PHASE_MAX ? phase_names[p] : "invalid";
}

bool set_transition_legal(enum set_phase from, enum set_phase to)
{
        return (unsigned)from < _SET_PHASE_MAX && (unsigned)to < _SET_PHASE_MAX && (legal[from] & P(to));
}

bool set_phase_has_set(enum set_phase p)
{
        return p != SET_IDLE && !set_phase_is_restore(p);
}

bool set_phase_is_restore(enum set_phase p)
{
        return p == SET_PRE_RESTORING || p == SET_RESTORE_PREPARED || p == SET_POST_RESTORING;
}

bool set_phase_holds_turn(enum set_phase p)
{
        return (p >= SET_STARTED && p <= SET_CREATING) || set_phase_is_restore(p);
}

/* The one place a set changes phase; it takes and gives back the service's turn with it. */
static void set_state(struct vssd *v, struct session *s, enum set_phase to)
{
        enum set_phase from = s->phase;
        char idbuf[VSS_ID_STRING_MAX];

        if (!set_transition_legal(from, to)) {
                log_err("set %s: illegal transition %s -> %s (a bug)", vss_id_format(&s->set_id, idbuf),
                        set_phase_name(from), set_phase_name(to));
                assert(!"illegal snapshot set transition");
        }
        log_debug("set %s: %s -> %s", vss_id_format(&s->set_id, idbuf), set_phase_name(from), set_phase_name(to));
        s->phase = to;
        /* A cluster set's coordinator holds the cluster's lock, not this host's turn: its own
         * host's participant takes the turn for the local part. */
        if (set_phase_holds_turn(to) && !s->cluster_coordinator)
                v->set_owner = s;
        else if (v->set_owner == s)
                v->set_owner = NULL;
        if (s->ops->phase_changed)
                s->ops->phase_changed(v, s, from, to);
}

/* ---- the sequences as data ---- */

enum step_writers {
        TO_NO_WRITERS,          /* a provider step */
        TO_SELECTED,            /* every writer not excluded and not in another session's set */
        TO_INVOLVED,            /* the involved writers, failed ones too (a new sequence clears failures) */
        TO_INVOLVED_OK,         /* the involved writers not failed */
        TO_NAMED,               /* restore: the writers the components name, not in another session's set */
};

enum step_timeout {
        TIMEOUT_NONE,
        TIMEOUT_EVENT,          /* vssd.conf event_timeout_ms per writer: VSS_E_WRITER_NOT_RESPONDING */
        TIMEOUT_FREEZE,         /* each writer's freeze timer, armed before Freeze: VSS_E_WRITERERROR_TIMEOUT */
        TIMEOUT_HOLD,           /* the 10 s flush-and-hold window around commit: VSS_E_HOLD_WRITES_TIMEOUT */
};

/* What a failure at a step means (checked when the step is over, in this order). */
enum {
        FAIL_REPORTED = 0,              /* shown in the writer's status; the call goes on */
        FAIL_PROVIDER_ABORTS = 1 << 0,  /* a provider failure aborts the set */
        FAIL_WRITER_ABORTS = 1 << 1,    /* an involved writer in FAILED_AT_<fail_at> aborts the set */
        FAIL_IF_FREEZE_EXPIRED = 1 << 2,/* ... checked only when a freeze timer expired meanwhile */
        FAIL_UNCOMMITS = 1 << 3,        /* the abort must reach providers that committed */
        FAIL_REFUSES_VOLUME = 1 << 4,   /* a provider failure refuses the volume; the set stays */
};

enum {
        STEP_IMPLICIT = 1 << 0,         /* only when DoSnapshotSet came without PrepareForBackup */
        STEP_PARTIAL_FAILS = 1 << 1,    /* a writer with volumes outside the set fails, inconsistent */
        STEP_ARM_FREEZE = 1 << 2,       /* arm each writer's freeze timer right before its event */
        STEP_THAW = 1 << 3,             /* cancel the freeze timers first; providers are done */
        STEP_SHADOWS_EXIST = 1 << 4,    /* after sending: the shadow copies are recorded */
        STEP_AFTER_COMMIT = 1 << 5,     /* a requester gone does not stop it: the set is created */
        STEP_SKIP_IF_GONE = 1 << 6,     /* not sent when the requester is gone */
        STEP_LAST_VOLUME = 1 << 7,      /* the provider step covers only the volume added last */
        STEP_PREPARES = 1 << 8,         /* from here on a failure aborts the providers */
        STEP_CLUSTER = 1 << 9,          /* only in a cluster participant's set (its volumes come from the spec) */
};

struct set_step {
        const char *name;
        int event;                      /* enum vss_event, -1 for a provider step */
        int prov;                       /* enum prov_op, -1 for a writer step */
        enum step_writers to;
        enum step_timeout timeout;
        unsigned fail;
        enum vss_event fail_at;
        unsigned flags;
};

struct set_sequence {
        const char *name;
        const struct set_step *steps;
        size_t n_steps;
        int running, done;              /* phases while it runs and when it ends, -1: unchanged */
        bool aborts;                    /* a failure aborts the set (and fails the call) */
};

#define WRITERS(ev) .event = (ev), .prov = -1
#define PROVIDERS(op) .event = -1, .prov = (op), .to = TO_NO_WRITERS

/* DoSnapshotSet: vss-facts 8.3, steps 2 to 11.  A cluster participant walks the same steps in
 * three slices (seq_cluster_*), cut where the protocol waits for etcd (docs/cluster.md §11);
 * its volumes arrive with the set's spec, so BeginPrepareSnapshot comes first. */
static const struct set_step backup_steps[] = {
        { "BeginPrepareSnapshot", PROVIDERS(PROV_BEGIN_PREPARE), TIMEOUT_NONE, FAIL_PROVIDER_ABORTS, 0,
          STEP_CLUSTER },
        { "PrepareForBackup", WRITERS(VSS_EVENT_PREPARE_BACKUP), TO_INVOLVED_OK, TIMEOUT_EVENT, FAIL_REPORTED, 0,
          STEP_IMPLICIT },
        { "PrepareForSnapshot", WRITERS(VSS_EVENT_PREPARE_SNAPSHOT), TO_INVOLVED_OK, TIMEOUT_EVENT, FAIL_WRITER_ABORTS,
          VSS_EVENT_PREPARE_SNAPSHOT, STEP_PARTIAL_FAILS },
        { "EndPrepareSnapshots", PROVIDERS(PROV_END_PREPARE), TIMEOUT_NONE, FAIL_PROVIDER_ABORTS, 0, STEP_PREPARES },
        { "Freeze", WRITERS(VSS_EVENT_FREEZE), TO_INVOLVED_OK, TIMEOUT_FREEZE, FAIL_WRITER_ABORTS, VSS_EVENT_FREEZE,
          STEP_ARM_FREEZE },
        { "PreCommitSnapshots", PROVIDERS(PROV_PRE_COMMIT), TIMEOUT_NONE, FAIL_PROVIDER_ABORTS | FAIL_WRITER_ABORTS,
          VSS_EVENT_FREEZE, 0 },
        { "CommitSnapshots", PROVIDERS(PROV_COMMIT), TIMEOUT_HOLD,
          FAIL_PROVIDER_ABORTS | FAIL_WRITER_ABORTS | FAIL_IF_FREEZE_EXPIRED | FAIL_UNCOMMITS, VSS_EVENT_FREEZE, 0 },
        /* Once CommitSnapshots returned, the providers hold the snapshots: a requester that
         * left meanwhile must not leave them outside the catalog, so the set is finished
         * (and then released with its session, which deletes auto-release shadows). */
        { "PostCommitSnapshots", PROVIDERS(PROV_POST_COMMIT), TIMEOUT_NONE, FAIL_PROVIDER_ABORTS | FAIL_UNCOMMITS, 0,
          STEP_AFTER_COMMIT },
        { "Thaw", WRITERS(VSS_EVENT_THAW), TO_INVOLVED_OK, TIMEOUT_EVENT, FAIL_REPORTED, 0,
          STEP_THAW | STEP_SHADOWS_EXIST | STEP_AFTER_COMMIT },
        { "PostSnapshot", WRITERS(VSS_EVENT_POST_SNAPSHOT), TO_INVOLVED_OK, TIMEOUT_EVENT, FAIL_REPORTED, 0,
          STEP_AFTER_COMMIT | STEP_SKIP_IF_GONE },
};

static const struct set_step identify_steps[] = {
        { "Identify", WRITERS(VSS_EVENT_IDENTIFY), TO_SELECTED, TIMEOUT_EVENT, FAIL_REPORTED, 0, 0 },
};
static const struct set_step add_volume_steps[] = {
        { "BeginPrepareSnapshot", PROVIDERS(PROV_BEGIN_PREPARE), TIMEOUT_NONE, FAIL_REFUSES_VOLUME, 0,
          STEP_LAST_VOLUME },
};
static const struct set_step prepare_backup_steps[] = {
        { "PrepareForBackup", WRITERS(VSS_EVENT_PREPARE_BACKUP), TO_INVOLVED, TIMEOUT_EVENT, FAIL_REPORTED, 0, 0 },
};
static const struct set_step backup_complete_steps[] = {
        { "BackupComplete", WRITERS(VSS_EVENT_BACKUP_COMPLETE), TO_INVOLVED_OK, TIMEOUT_EVENT, FAIL_REPORTED, 0, 0 },
};
/* Restore (vss-facts 3.3): aborts are not supported, a failure shows in the writer's status. */
static const struct set_step pre_restore_steps[] = {
        { "PreRestore", WRITERS(VSS_EVENT_PRE_RESTORE), TO_NAMED, TIMEOUT_EVENT, FAIL_REPORTED, 0, 0 },
};
static const struct set_step post_restore_steps[] = {
        { "PostRestore", WRITERS(VSS_EVENT_POST_RESTORE), TO_NAMED, TIMEOUT_EVENT, FAIL_REPORTED, 0, 0 },
};

#define SEQ(nm, st, run, end, ab) { nm, st, ARRAY_SIZE(st), run, end, ab }

static const struct set_sequence seq_identify = SEQ("GatherWriterMetadata", identify_steps, -1, -1, false);
static const struct set_sequence seq_add_volume = SEQ("AddToSnapshotSet", add_volume_steps, -1, -1, false);
static const struct set_sequence seq_prepare_backup =
        SEQ("PrepareForBackup", prepare_backup_steps, SET_PREPARING, SET_PREPARED, false);
static const struct set_sequence seq_do_snapshot_set =
        SEQ("DoSnapshotSet", backup_steps, SET_CREATING, SET_CREATED, true);
static const struct set_sequence seq_backup_complete =
        SEQ("BackupComplete", backup_complete_steps, SET_COMPLETING, SET_COMPLETED, false);
static const struct set_sequence seq_pre_restore =
        SEQ("PreRestore", pre_restore_steps, SET_PRE_RESTORING, SET_RESTORE_PREPARED, false);
static const struct set_sequence seq_post_restore =
        SEQ("PostRestore", post_restore_steps, SET_POST_RESTORING, SET_IDLE, false);

/* A cluster participant: PREPARE_LOCAL, FREEZE_LOCAL, COMMIT_LOCAL (cset.h) as slices of backup_steps. */
#define CLUSTER_FREEZE_AT 4             /* "Freeze" */
#define CLUSTER_COMMIT_AT 6             /* "CommitSnapshots" */
static const struct set_sequence seq_cluster_prepare = { "ClusterPrepare", backup_steps, CLUSTER_FREEZE_AT,
                                                         SET_PREPARING, SET_PREPARED, true };
static const struct set_sequence seq_cluster_freeze = { "ClusterFreeze", backup_steps + CLUSTER_FREEZE_AT,
                                                        CLUSTER_COMMIT_AT - CLUSTER_FREEZE_AT, SET_CREATING, -1,
                                                        true };
static const struct set_sequence seq_cluster_commit = { "ClusterCommit", backup_steps + CLUSTER_COMMIT_AT,
                                                        ARRAY_SIZE(backup_steps) - CLUSTER_COMMIT_AT, -1,
                                                        SET_CREATED, true };
/* A cluster set's coordinator: DoSnapshotSet waits for the protocol's report (no steps here). */
static const struct set_sequence seq_cluster_coordinate = { "ClusterCoordinate", NULL, 0, SET_CREATING, -1, true };

/* ---- writers ---- */

bool set_writer_selected(struct session *s, struct writer *w)
{
        size_t i;
        json_t *x;

        json_array_foreach(s->excluded, i, x) {
                const char *t = json_string_value(x);
                vss_id id;

                if (streq(t, w->name) || (vss_id_parse(t, &id) == VSS_S_OK &&
                                          (vss_id_equal(&id, &w->writer_id) || vss_id_equal(&id, &w->instance_id))))
                        return false;
        }
        return true;
}

/* Which writers take part in the set: those with a volume in it (or all, without volumes). */
static void compute_involvement(struct vssd *v, struct session *s)
{
        char *svols[VSS_MAX_VOLUMES_PER_SET];

        for (size_t i = 0; i < s->n_vols; i++)
                svols[i] = s->vols[i].path;
        for (struct writer *w = v->writers; w; w = w->next) {
                enum involvement inv;

                if (w->gone)
                        continue;
                inv = involvement_compute(s->context, !set_writer_selected(s, w), w->volumes, w->n_volumes, svols,
                                          s->n_vols);
                w->involved = inv != INVOLVE_NO;
                w->partial = inv == INVOLVE_PARTIAL;
                if (w->involved)
                        w->session = s;
        }
}

/* A new backup sequence: the involved writers' backup metadata starts empty. */
static void involve_writers(struct vssd *v, struct session *s)
{
        compute_involvement(v, s);
        for (struct writer *w = v->writers; w; w = w->next)
                if (w->session == s && w->involved) {
                        json_decref(w->metadata);
                        w->metadata = json_object();
                }
}

static bool restore_names(struct session *s, struct writer *w)
{
        size_t i;
        json_t *x;

        json_array_foreach(s->restore_components, i, x) {
                vss_id wid;

                if (json_get_id(x, "writer_id", &wid) && vss_id_equal(&wid, &w->writer_id))
                        return true;
        }
        return false;
}

static bool step_reaches(struct session *s, const struct set_step *st, struct writer *w)
{
        if (w->gone)
                return false;
        switch (st->to) {
        case TO_NO_WRITERS:
                return false;
        case TO_SELECTED:
                return set_writer_selected(s, w) && (!w->session || w->session == s);
        case TO_INVOLVED:
                return w->involved && w->session == s;
        case TO_INVOLVED_OK:
                return w->involved && w->session == s && !writer_state_is_failed(w->state);
        case TO_NAMED:
                return (!w->session || w->session == s) && restore_names(s, w);
        }
        return false;
}

static void writer_detail(struct writer *w, char *buf, size_t len)
{
        char idbuf[VSS_ID_STRING_MAX];

        snprintf(buf, len, "writer '%s' %s is %s (%s), last error: %s (0x%08X %s)%s%s", w->name,
                 vss_id_format(&w->writer_id, idbuf), vss_writer_state_label(w->state),
                 vss_writer_state_name(w->state), vss_writer_error_label(w->failure), (uint32_t)w->failure,
                 vss_hresult_name(w->failure), w->message ? ": " : "", w->message ?: "");
}

/* ---- walking a sequence ---- */

bool set_busy(const struct session *s)
{
        return s->seq != NULL;
}

static void walk(struct vssd *v, struct session *s);

/* Sends the step's event to its writers; returns how many replies are awaited. */
static int send_step(struct vssd *v, struct session *s, const struct set_step *st)
{
        uint32_t deadline = st->timeout == TIMEOUT_EVENT ? v->cfg.event_timeout_ms : 0;

        for (struct writer *w = v->writers; w; w = w->next) {
                if (!step_reaches(s, st, w))
                        continue;
                if ((st->flags & STEP_PARTIAL_FAILS) && w->partial) {
                        char msg[200];

                        snprintf(msg, sizeof(msg), "the snapshot set covers only some of the writer's %zu volumes",
                                 w->n_volumes);
                        s->ops->writer_failed(v, w, st->event, VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT, msg);
                        continue;
                }
                if (st->to == TO_NAMED) {
                        w->involved = true;
                        w->session = s;
                }
                if (st->flags & STEP_ARM_FREEZE) {
                        w->freeze_set_id = s->set_id;
                        s->ops->arm_freeze(v, s, w);
                }
                if (s->ops->send_event(v, s, w, st->event, deadline)) {
                        w->session = s;
                        s->outstanding++;
                }
        }
        return s->outstanding;
}

static void note_provider_failure(struct session *s, vss_hresult hr, const char *fmt, ...) _printf_(3, 4);
static void note_provider_failure(struct session *s, vss_hresult hr, const char *fmt, ...)
{
        va_list ap;

        if (s->prov_hr != VSS_S_OK)
                return;
        s->prov_hr = hr;
        va_start(ap, fmt);
        vsnprintf(s->prov_error, sizeof(s->prov_error), fmt, ap);
        va_end(ap);
}

size_t set_provider_group(const struct set_volume *vols, size_t n_vols, size_t first,
                          struct vss_provider_snapshot *ret_snaps)
{
        int p = vols[first].provider;
        size_t n = 0;

        for (size_t k = 0; k < first; k++)
                if (vols[k].provider == p)
                        return 0;
        for (size_t k = first; k < n_vols; k++)
                if (vols[k].provider == p)
                        ret_snaps[n++] = vols[k].snap;
        return n;
}

/* One call per provider, covering that provider's volumes of the set. */
static void call_providers(struct vssd *v, struct session *s, enum prov_op op, bool last_volume_only, bool hold)
{
        s->prov_outstanding++; /* held while queueing: a call that ends at once must not walk on yet */
        for (size_t i = last_volume_only ? s->n_vols - 1 : 0; i < s->n_vols; i++) {
                struct vss_provider_snapshot snaps[VSS_MAX_VOLUMES_PER_SET];
                size_t n = last_volume_only ? 1 : set_provider_group(s->vols, s->n_vols, i, snaps);

                if (n == 0)
                        continue;
                if (last_volume_only)
                        snaps[0] = s->vols[i].snap;
                if (op == PROV_ABORT) {
                        (void)s->ops->provider_call(v, s, op, s->vols[i].provider, snaps, n, false);
                        continue;
                }
                s->prov_outstanding++;
                if (s->ops->provider_call(v, s, op, s->vols[i].provider, snaps, n, hold) < 0) {
                        s->prov_outstanding--;
                        note_provider_failure(s, VSS_E_OUTOFMEMORY, "out of memory");
                }
        }
        s->prov_outstanding--;
}

static int start_step(struct vssd *v, struct session *s, const struct set_step *st)
{
        int n;

        s->outstanding = 0;
        if (st->flags & STEP_THAW) {
                s->prov_prepared = false;
                for (struct writer *w = v->writers; w; w = w->next)
                        if (w->session == s)
                                s->ops->cancel_freeze(v, w);
        }
        if (st->prov >= 0) {
                call_providers(v, s, (enum prov_op)st->prov, st->flags & STEP_LAST_VOLUME,
                               st->timeout == TIMEOUT_HOLD);
                if (st->flags & STEP_PREPARES)
                        s->prov_prepared = true;
                return s->prov_outstanding;
        }
        /* Thaw first: the catalog's synced write need not lengthen the writers' freeze; their
         * replies are read only after this step returns to the loop. */
        n = send_step(v, s, st);
        if (st->flags & STEP_SHADOWS_EXIST)
                s->ops->shadows_created(v, s);
        return n;
}

static void abort_set(struct vssd *v, struct session *s, bool delete_shadows)
{
        if (set_phase_has_set(s->phase) && s->phase != SET_ABORTED && s->phase != SET_COMPLETED) {
                for (struct writer *w = v->writers; w; w = w->next) {
                        if (w->session != s)
                                continue;
                        s->ops->cancel_freeze(v, w);
                        if (w->pending_event >= 0)
                                s->ops->cancel_pending(v, w);
                        if (w->involved && !w->gone)
                                s->ops->notify(v, s, w, VSS_EVENT_ABORT);
                }
                s->outstanding = 0;
                if (s->prov_prepared && !s->committed) {
                        call_providers(v, s, PROV_ABORT, false, false);
                        s->prov_prepared = false;
                }
                set_state(v, s, SET_ABORTED);
        }
        if (delete_shadows)
                s->ops->release_shadows(v, s);
}

/* The sequence failed: abort the set and answer the call with the first failure. */
static void fail(struct vssd *v, struct session *s, vss_hresult hr, const char *detail)
{
        if (s->fail_hr == VSS_S_OK) {
                s->fail_hr = hr;
                snprintf(s->fail_detail, sizeof(s->fail_detail), "%s", detail);
        }
        abort_set(v, s, true);
        s->seq = NULL;
        if (s->closing) {
                set_release(v, s);
                return;
        }
        s->ops->call_done(v, s, s->fail_hr, s->fail_detail);
}

/* A failed involved writer in 'failed_state' aborts the set. */
static bool check_writers(struct vssd *v, struct session *s, enum vss_writer_state failed_state)
{
        char detail[1024];

        for (struct writer *w = v->writers; w; w = w->next)
                if (w->session == s && w->involved && w->state == failed_state) {
                        writer_detail(w, detail, sizeof(detail));
                        if (s->fail_hr == VSS_S_OK)
                                snprintf(s->fail_writer, sizeof(s->fail_writer), "%s", w->name);
                        fail(v, s, w->failure, detail);
                        return false;
                }
        return true;
}

/* What a failure of the step just over means; false when it ended the sequence. */
static bool check_step(struct vssd *v, struct session *s, const struct set_step *st)
{
        if ((st->fail & FAIL_REFUSES_VOLUME) && s->prov_hr != VSS_S_OK) {
                s->n_vols--;
                s->ops->log_event(v, "error", "provider", s->prov_hr, s->prov_error);
                s->seq = NULL;
                s->ops->call_done(v, s, s->prov_hr, s->prov_error);
                return false;
        }
        if ((st->fail & FAIL_PROVIDER_ABORTS) && s->prov_hr != VSS_S_OK) {
                if (st->fail & FAIL_UNCOMMITS)
                        s->committed = false;
                fail(v, s, s->prov_hr, s->prov_error);
                return false;
        }
        if (st->fail & FAIL_WRITER_ABORTS) {
                if (st->fail & FAIL_IF_FREEZE_EXPIRED) {
                        if (!s->freeze_expired)
                                return true;
                        s->committed = false;
                }
                return check_writers(v, s, writer_state_failed_at(st->fail_at));
        }
        return true;
}

static void finish(struct vssd *v, struct session *s)
{
        const struct set_sequence *q = s->seq;

        if (q == &seq_add_volume)
                s->vols[s->n_vols - 1].begun = true;
        /* Shadow copies the catalog could not record (its filesystem full) were deleted again:
         * the set fails rather than report shadow copies that the next vssd would not know.  A
         * cluster participant's commit slice is where its set records them: its failure fails
         * the cluster set (cset.c deletes every host's shadow copies). */
        if ((q == &seq_do_snapshot_set || q == &seq_cluster_commit) && s->record_hr != VSS_S_OK) {
                fail(v, s, s->record_hr, s->record_error);
                return;
        }
        s->seq = NULL;
        if (q == &seq_post_restore) {
                /* The writers' status is answered first: it still shows the ones that went away. */
                s->ops->call_done(v, s, VSS_S_OK, NULL);
                set_state(v, s, SET_IDLE);
                for (struct writer *w = v->writers; w; w = w->next)
                        if (w->session == s) {
                                w->session = NULL;
                                w->involved = false;
                        }
                s->ops->sweep_writers(v);
                return;
        }
        if (q->done >= 0)
                set_state(v, s, (enum set_phase)q->done);
        if (s->closing) {
                set_release(v, s);
                return;
        }
        s->ops->call_done(v, s, VSS_S_OK, NULL);
}

/* Whether the requester going away leaves the next step of the sequence to run. */
static bool runs_when_gone(const struct set_sequence *q, size_t step)
{
        if (step < q->n_steps)
                return q->steps[step].flags & STEP_AFTER_COMMIT;
        return q == &seq_do_snapshot_set;
}

static void walk(struct vssd *v, struct session *s)
{
        const struct set_sequence *q = s->seq;

        for (;;) {
                const struct set_step *st;
                char idbuf[VSS_ID_STRING_MAX];

                if (s->closing && s->prov_outstanding == 0 && !runs_when_gone(q, s->step)) {
                        char why[128];

                        if (!q->aborts) {
                                set_release(v, s);
                                return;
                        }
                        snprintf(why, sizeof(why), "the requester disconnected during %s", q->name);
                        fail(v, s, s->fail_hr ?: VSS_E_ABORT, s->fail_detail[0] ? s->fail_detail : why);
                        return;
                }
                if (s->step > 0 && !check_step(v, s, &q->steps[s->step - 1]))
                        return;
                if (s->step == q->n_steps) {
                        finish(v, s);
                        return;
                }
                st = &q->steps[s->step++];
                if ((st->flags & STEP_IMPLICIT) && !s->implicit_prepare)
                        continue;
                if ((st->flags & STEP_CLUSTER) && !s->cluster_participant)
                        continue;
                if ((st->flags & STEP_SKIP_IF_GONE) && s->closing)
                        continue;
                log_debug("set %s: %s step %s", vss_id_format(&s->set_id, idbuf), q->name, st->name);
                if (start_step(v, s, st) > 0)
                        return;
        }
}

static void run(struct vssd *v, struct session *s, const struct set_sequence *q)
{
        s->seq = q;
        s->step = 0;
        s->outstanding = 0;
        if (q->running >= 0)
                set_state(v, s, (enum set_phase)q->running);
        walk(v, s);
}

/* ---- what the requester asks ---- */

void set_start(struct vssd *v, struct session *s)
{
        vss_id_generate(&s->set_id);
        set_state(v, s, SET_STARTED);
}

void set_gather(struct vssd *v, struct session *s)
{
        run(v, s, &seq_identify);
}

void set_add_volume(struct vssd *v, struct session *s)
{
        s->prov_hr = VSS_S_OK;
        run(v, s, &seq_add_volume);
}

void set_prepare_backup(struct vssd *v, struct session *s)
{
        involve_writers(v, s);
        run(v, s, &seq_prepare_backup);
}

void set_do(struct vssd *v, struct session *s)
{
        s->implicit_prepare = s->phase == SET_STARTED;
        s->fail_hr = VSS_S_OK;
        s->fail_detail[0] = 0;
        s->record_hr = VSS_S_OK;
        s->prov_hr = VSS_S_OK;
        s->committed = false;
        s->freeze_expired = false;
        /* DoSnapshotSet without PrepareForBackup runs it implicitly. */
        if (s->implicit_prepare)
                involve_writers(v, s);
        run(v, s, &seq_do_snapshot_set);
}

/* ---- a cluster set (cluster-set.c drives these from cset.c's actions) ---- */

void set_cluster_prepare(struct vssd *v, struct session *s)
{
        s->cluster_participant = true;
        s->implicit_prepare = true;
        s->fail_hr = VSS_S_OK;
        s->fail_detail[0] = s->fail_writer[0] = 0;
        s->record_hr = VSS_S_OK;
        s->prov_hr = VSS_S_OK;
        s->committed = false;
        s->freeze_expired = false;
        set_state(v, s, SET_STARTED);
        involve_writers(v, s);
        run(v, s, &seq_cluster_prepare);
}

void set_cluster_freeze(struct vssd *v, struct session *s)
{
        run(v, s, &seq_cluster_freeze);
}

void set_cluster_commit(struct vssd *v, struct session *s)
{
        run(v, s, &seq_cluster_commit);
}

void set_cluster_abort(struct vssd *v, struct session *s, vss_hresult hr, const char *detail)
{
        if (s->fail_hr == VSS_S_OK) {
                s->fail_hr = hr;
                snprintf(s->fail_detail, sizeof(s->fail_detail), "%s", detail);
        }
        s->seq = NULL;
        abort_set(v, s, true);
}

void set_cluster_coordinate(struct vssd *v, struct session *s)
{
        s->fail_hr = VSS_S_OK;
        s->fail_detail[0] = 0;
        s->seq = &seq_cluster_coordinate;
        set_state(v, s, SET_CREATING);
}

void set_cluster_coordinated(struct vssd *v, struct session *s, vss_hresult hr, const char *detail)
{
        if (s->seq != &seq_cluster_coordinate)
                return;
        s->seq = NULL;
        if (VSS_FAILED(hr)) {
                s->fail_hr = hr;
                snprintf(s->fail_detail, sizeof(s->fail_detail), "%s", detail ?: "");
                set_state(v, s, SET_ABORTED);
                if (!s->closing)
                        s->ops->call_done(v, s, hr, s->fail_detail);
                return;
        }
        set_state(v, s, SET_CREATED);
        if (!s->closing)
                s->ops->call_done(v, s, VSS_S_OK, NULL);
}

void set_backup_complete(struct vssd *v, struct session *s)
{
        run(v, s, &seq_backup_complete);
}

void set_abort_backup(struct vssd *v, struct session *s)
{
        if (s->phase == SET_CREATED)
                s->committed = true;
        snprintf(s->fail_detail, sizeof(s->fail_detail), "AbortBackup by the requester");
        abort_set(v, s, true);
}

void set_restore(struct vssd *v, struct session *s, enum vss_event ev)
{
        run(v, s, ev == VSS_EVENT_PRE_RESTORE ? &seq_pre_restore : &seq_post_restore);
}

void set_release(struct vssd *v, struct session *s)
{
        s->closing = true;
        /* A provider call holds a pointer to us; its completion calls back here. */
        if (s->prov_outstanding > 0)
                return;
        s->seq = NULL;
        if (set_phase_has_set(s->phase) && s->phase != SET_COMPLETED && s->phase != SET_ABORTED) {
                if (!s->fail_detail[0])
                        snprintf(s->fail_detail, sizeof(s->fail_detail), "the requester (pid %d) ended its session",
                                 (int)s->pid);
                if (s->fail_hr == VSS_S_OK)
                        s->fail_hr = VSS_E_ABORT;
                /* Abort then BackupShutdown: the set was not completed. */
                if (s->phase == SET_CREATED || s->phase == SET_COMPLETING)
                        s->committed = true;
                abort_set(v, s, false);
        }
        for (struct writer *w = v->writers; w; w = w->next) {
                if (w->session != s)
                        continue;
                s->ops->cancel_freeze(v, w);
                s->ops->cancel_pending(v, w);
                if (w->involved && !w->gone && set_phase_has_set(s->phase))
                        s->ops->notify(v, s, w, VSS_EVENT_BACKUP_SHUTDOWN);
                w->session = NULL;
                w->involved = w->partial = false;
        }
        if (set_phase_is_restore(s->phase))
                set_state(v, s, SET_IDLE);
        s->ops->released(v, s);
}

/* ---- what writers and providers report ---- */

void set_writer_done(struct vssd *v, struct session *s, struct writer *w, enum vss_event ev)
{
        (void)w;
        (void)ev;
        if (s->outstanding > 0)
                s->outstanding--;
        if (s->seq && s->outstanding == 0 && s->prov_outstanding == 0)
                walk(v, s);
}

void set_freeze_expired(struct vssd *v, struct session *s, struct writer *w)
{
        char msg[128];

        /* A timer left from an earlier set of this session does not count. */
        if (w->session != s || !vss_id_equal(&w->freeze_set_id, &s->set_id))
                return;
        snprintf(msg, sizeof(msg), "freeze timer of %u ms expired before Thaw", w->freeze_timeout_ms);
        s->ops->writer_failed(v, w, VSS_EVENT_FREEZE, VSS_E_WRITERERROR_TIMEOUT, msg);
        s->ops->notify(v, s, w, VSS_EVENT_ABORT);
        if (s->committed)
                return;
        s->freeze_expired = true;
        if (w->pending_event >= 0) {
                s->ops->cancel_pending(v, w);
                set_writer_done(v, s, w, VSS_EVENT_FREEZE);
        }
}

void set_provider_done(struct vssd *v, struct session *s, enum prov_op op, const char *provider_name, vss_hresult hr,
                       const char *error, const struct vss_provider_snapshot *snaps, size_t n)
{
        s->prov_outstanding--;
        if (op == PROV_COMMIT && VSS_SUCCEEDED(hr))
                s->committed = true;
        if (VSS_FAILED(hr)) {
                const char *why = error && error[0] ? error : vss_hresult_message(hr);

                if (op == PROV_BEGIN_PREPARE)
                        note_provider_failure(s, hr, "provider '%s' refused %.300s: %.500s", provider_name,
                                              s->vols[s->n_vols - 1].path, why);
                else
                        note_provider_failure(s, hr, "provider '%s' failed: %.500s", provider_name, why);
        }
        /* Providers fill snapshot fields as they go; keep their latest view. */
        if (VSS_SUCCEEDED(hr))
                for (size_t i = 0; i < n; i++)
                        for (size_t k = 0; k < s->n_vols; k++)
                                if (vss_id_equal(&s->vols[k].snap.snapshot_id, &snaps[i].snapshot_id))
                                        s->vols[k].snap = snaps[i];
        if (s->prov_outstanding == 0 && s->outstanding == 0) {
                if (s->seq)
                        walk(v, s);
                else if (s->closing)
                        set_release(v, s);
        }
}
