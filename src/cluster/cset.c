/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The cluster set protocol's state machines (docs/cluster.md has the keys,
 * the transactions and the diagram; the invariants below are numbered as
 * there).  Pure: time comes in with every event, actions go out.
 *
 * INVARIANTS
 *  (I1) Exactly one decision per set: the decision key is created once
 *       (commit by the coordinator only, abort by anyone), and the final key
 *       likewise (complete by the coordinator only, failed by anyone).
 *  (I2) The coordinator writes commit only when every host's frozen ack is in
 *       etcd (the txn compares them), so every host froze before any host
 *       commits a snapshot.
 *  (I3) A host commits its snapshot only when it has read the commit decision
 *       while still frozen and before its commit cutoff.  A host that thawed
 *       never snapshots for that set.
 *  (I4) Every host thaws by its own hold deadline, measured on its own
 *       monotonic clock from the moment it saw Freeze, whatever etcd, the
 *       coordinator or the network do: the deadline is here, not in etcd.
 *  (I5) The coordinator never writes commit after t0 + hold - 2 x budget,
 *       t0 taken before it sent the freeze write: every host saw Freeze after
 *       t0, so its cutoff (seen + hold - budget) is later than that limit.
 *  (I6) Final complete needs every host's done ack "ok"; a host with no
 *       snapshot (thawed early, commit failed, commit seen late) proposes
 *       failed, and every host deletes its shadow copies of a failed set.
 *  (I7) Nothing is frozen before the freeze key exists, and the freeze key
 *       needs a quorum to be written: a cluster without quorum freezes nothing.
 *  (I8) A shadow copy is deleted only on a final failed (or when this host
 *       knows its own snapshot is bad), never because etcd went silent.
 *
 * Time: the module keeps the latest 'now' it was given and ignores an
 * earlier one, so a caller's clock that steps back cannot extend a deadline;
 * a step forward (a stopped process resuming) fires every deadline passed,
 * which is what a host that slept through its hold window must do.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "basic/macro.h"
#include "basic/string-util.h"
#include "cluster/cset.h"

#define RETRY_MAX_MS 5000

static const char *const pstate_names[_CSET_P_MAX] = {
        [CSET_P_IDLE] = "idle",           [CSET_P_PREPARING] = "preparing", [CSET_P_PREPARED] = "prepared",
        [CSET_P_FREEZING] = "freezing",   [CSET_P_FROZEN] = "frozen",       [CSET_P_COMMITTING] = "committing",
        [CSET_P_COMMITTED] = "committed", [CSET_P_COMPLETE] = "complete",   [CSET_P_UNDECIDED] = "undecided",
        [CSET_P_FAILING] = "failing",     [CSET_P_OVER] = "over",
};

static const char *const cstate_names[_CSET_C_MAX] = {
        [CSET_C_IDLE] = "idle",     [CSET_C_PREPARE] = "prepare",   [CSET_C_FREEZE] = "freeze",
        [CSET_C_COMMIT] = "commit", [CSET_C_ABORTING] = "aborting", [CSET_C_FAILING] = "failing",
        [CSET_C_OVER] = "over",
};

static const char *const event_names[_CSET_EV_MAX] = {
        [CSET_EV_SET_SEEN] = "set-seen",
        [CSET_EV_LOCAL_PREPARED] = "local-prepared",
        [CSET_EV_FREEZE_SEEN] = "freeze-seen",
        [CSET_EV_LOCAL_FROZEN] = "local-frozen",
        [CSET_EV_LOCAL_COMMITTED] = "local-committed",
        [CSET_EV_FINAL_SEEN] = "final-seen",
        [CSET_EV_END_SEEN] = "end-seen",
        [CSET_EV_DECISION_SEEN] = "decision-seen",
        [CSET_EV_COORDINATOR_GONE] = "coordinator-gone",
        [CSET_EV_ETCD_UNREACHABLE] = "etcd-unreachable",
        [CSET_EV_WRITTEN] = "written",
        [CSET_EV_ETCD_OK] = "etcd-ok",
        [CSET_EV_TICK] = "tick",
        [CSET_EV_HOST_PREPARED] = "host-prepared",
        [CSET_EV_HOST_FROZEN] = "host-frozen",
        [CSET_EV_HOST_DONE] = "host-done",
        [CSET_EV_HOST_GONE] = "host-gone",
};

static const char *const action_names[_CSET_ACT_MAX] = {
        [CSET_ACT_PREPARE_LOCAL] = "prepare-local",
        [CSET_ACT_FREEZE_LOCAL] = "freeze-local",
        [CSET_ACT_COMMIT_LOCAL] = "commit-local",
        [CSET_ACT_THAW_ABORT_LOCAL] = "thaw-abort-local",
        [CSET_ACT_ABORT_LOCAL] = "abort-local",
        [CSET_ACT_DELETE_SHADOWS] = "delete-shadows",
        [CSET_ACT_BACKUP_COMPLETE] = "backup-complete",
        [CSET_ACT_BACKUP_SHUTDOWN] = "backup-shutdown",
        [CSET_ACT_WRITE_PREPARED] = "write-prepared",
        [CSET_ACT_WRITE_FROZEN] = "write-frozen",
        [CSET_ACT_WRITE_DONE] = "write-done",
        [CSET_ACT_PROPOSE_ABORT] = "propose-abort",
        [CSET_ACT_PROPOSE_FAILED] = "propose-failed",
        [CSET_ACT_WRITE_FREEZE] = "write-freeze",
        [CSET_ACT_WRITE_COMMIT] = "write-commit",
        [CSET_ACT_WRITE_COMPLETE] = "write-complete",
        [CSET_ACT_REPORT] = "report",
        [CSET_ACT_RELEASE] = "release",
        [CSET_ACT_FORGET] = "forget",
};

const char *cset_pstate_name(enum cset_pstate s)
{
        return (unsigned)s < _CSET_P_MAX ? pstate_names[s] : "?";
}

const char *cset_cstate_name(enum cset_cstate s)
{
        return (unsigned)s < _CSET_C_MAX ? cstate_names[s] : "?";
}

const char *cset_event_name(enum cset_event_type t)
{
        return (unsigned)t < _CSET_EV_MAX ? event_names[t] : "?";
}

const char *cset_action_name(enum cset_action_type t)
{
        return (unsigned)t < _CSET_ACT_MAX ? action_names[t] : "?";
}

void cset_timing_set_hold(struct cset_timing *t, uint32_t hold_ms)
{
        t->hold_ms = hold_ms;
        t->commit_budget_ms = MIN(hold_ms / 4, 2000);
        t->unreachable_ms = MIN(hold_ms / 2, 3000);
}

void cset_timing_default(struct cset_timing *t)
{
        *t = (struct cset_timing){
                .prepare_ms = CSET_DEFAULT_PREPARE_MS,
                .retry_ms = CSET_DEFAULT_RETRY_MS,
        };
        cset_timing_set_hold(t, CSET_DEFAULT_HOLD_MS);
}

int cset_timing_check(const struct cset_timing *t)
{
        /* The coordinator's commit limit is hold - 2 x budget after its freeze write: it must
         * leave time to freeze, and the budget must leave time to commit. */
        if (t->hold_ms < 100 || t->hold_ms > 3600000 || t->commit_budget_ms == 0 ||
            (uint64_t)t->commit_budget_ms * 4 > t->hold_ms || t->prepare_ms == 0 || t->prepare_ms > 3600000 ||
            t->retry_ms == 0 || t->retry_ms > RETRY_MAX_MS || t->unreachable_ms == 0 ||
            t->unreachable_ms >= t->hold_ms - t->commit_budget_ms)
                return -EINVAL;
        return 0;
}

static uint64_t ms(uint32_t v)
{
        return (uint64_t)v * 1000;
}

static void fail_set(struct cset_failure *f, vss_hresult hr, const char *host, const char *writer, const char *fmt,
                     ...) _printf_(5, 6);

static void fail_set(struct cset_failure *f, vss_hresult hr, const char *host, const char *writer, const char *fmt,
                     ...)
{
        va_list ap;

        f->hr = hr;
        fmt_trunc(f->host, sizeof(f->host), "%s", host ?: "");
        fmt_trunc(f->writer, sizeof(f->writer), "%s", writer ?: "");
        va_start(ap, fmt);
        vsnprintf(f->detail, sizeof(f->detail), fmt, ap);
        va_end(ap);
}

static void emit(struct cset_actions *out, enum cset_action_type type, const struct cset_failure *f)
{
        struct cset_action *a;

        /* CSET_ACTIONS_MAX is above the most any one event produces (checked by the unit test). */
        if (out->n >= CSET_ACTIONS_MAX)
                return;
        a = &out->a[out->n++];
        *a = (struct cset_action){ .type = type };
        if (f)
                a->failure = *f;
}

static void deadline_min(uint64_t *d, uint64_t v)
{
        if (v && (!*d || v < *d))
                *d = v;
}

/* ---- participant ---- */

void cset_participant_init(struct cset_participant *p, const char *host)
{
        *p = (struct cset_participant){ .state = CSET_P_IDLE };
        fmt_trunc(p->host, sizeof(p->host), "%s", host);
        cset_timing_default(&p->timing);
}

static void p_state(struct cset_participant *p, enum cset_pstate s)
{
        p->state = s;
        if (s == CSET_P_OVER) {
                p->pending = 0;
                p->retry_at_us = 0;
        }
}

/* An etcd write the driver must send, and send again after ETCD_UNREACHABLE until it is confirmed. */
static void p_write(struct cset_participant *p, struct cset_actions *out, enum cset_action_type type,
                    const struct cset_failure *f)
{
        emit(out, type, f);
        p->pending |= 1u << type;
}

static void p_resend(struct cset_participant *p, struct cset_actions *out)
{
        static const enum cset_action_type order[] = { CSET_ACT_WRITE_PREPARED, CSET_ACT_WRITE_FROZEN,
                                                       CSET_ACT_WRITE_DONE, CSET_ACT_PROPOSE_ABORT,
                                                       CSET_ACT_PROPOSE_FAILED };

        for (size_t i = 0; i < ARRAY_SIZE(order); i++) {
                bool ok = order[i] == CSET_ACT_WRITE_FROZEN ||
                          (order[i] == CSET_ACT_WRITE_PREPARED && p->state != CSET_P_UNDECIDED) ||
                          (order[i] == CSET_ACT_WRITE_DONE && p->done_ok);

                if (p->pending & (1u << order[i]))
                        emit(out, order[i], ok ? NULL : &p->failure);
        }
}

/* Thaw now and propose abort: the host gives up on this set before any decision it knows of (I4). */
static void p_thaw_and_abort(struct cset_participant *p, struct cset_actions *out)
{
        emit(out, p->frozen_here ? CSET_ACT_THAW_ABORT_LOCAL : CSET_ACT_ABORT_LOCAL, &p->failure);
        p->frozen_here = false;
        p->pending &= ~((1u << CSET_ACT_WRITE_PREPARED) | (1u << CSET_ACT_WRITE_FROZEN));
        p_write(p, out, CSET_ACT_PROPOSE_ABORT, &p->failure);
        p_state(p, CSET_P_UNDECIDED);
}

/* After a commit decision this host has (or will have) no good snapshot: the set must fail (I6). */
static void p_fail_after_commit(struct cset_participant *p, struct cset_actions *out)
{
        if (p->frozen_here)
                emit(out, CSET_ACT_THAW_ABORT_LOCAL, &p->failure);
        p->frozen_here = false;
        p->pending &= ~((1u << CSET_ACT_WRITE_PREPARED) | (1u << CSET_ACT_WRITE_FROZEN) |
                        (1u << CSET_ACT_PROPOSE_ABORT));
        p_write(p, out, CSET_ACT_PROPOSE_FAILED, &p->failure);
        p_state(p, CSET_P_FAILING);
}

/* An etcd call failed: send the pending writes again after a pause that doubles up to 5 s.
 * A retry already scheduled stays where it is (failing polls must not push it away). */
static void retry_later(uint64_t now, unsigned pending, uint32_t base_ms, uint32_t *backoff_ms, uint64_t *retry_at)
{
        if (!pending || *retry_at)
                return;
        if (*backoff_ms == 0)
                *backoff_ms = base_ms;
        *retry_at = now + ms(*backoff_ms);
        *backoff_ms = MIN(*backoff_ms * 2, RETRY_MAX_MS);
}

static void p_deadlines(struct cset_participant *p, struct cset_actions *out)
{
        uint64_t now = p->now_us;

        switch (p->state) {
        case CSET_P_PREPARING:
        case CSET_P_PREPARED:
                if (now >= p->prepare_deadline_us) {
                        fail_set(&p->failure, VSS_E_CLUSTER_TIMEOUT, p->host, NULL,
                                 "host %s saw no Freeze within %u ms of the set's start", p->host,
                                 p->timing.prepare_ms);
                        p_thaw_and_abort(p, out);
                }
                break;
        case CSET_P_FREEZING:
        case CSET_P_FROZEN:
                if (p->unreachable_since_us && now >= p->unreachable_since_us + ms(p->timing.unreachable_ms) &&
                    now < p->commit_cutoff_us) {
                        /* Without etcd this host cannot learn the commit: holding on any longer only
                         * lengthens the freeze (I4). */
                        fail_set(&p->failure, VSS_E_CLUSTER_ERROR, p->host, NULL,
                                 "host %s lost etcd for %u ms while frozen; thawed by itself: %s", p->host,
                                 p->timing.unreachable_ms, p->unreachable_why);
                        p_thaw_and_abort(p, out);
                        break;
                }
                if (now >= p->commit_cutoff_us) {
                        fail_set(&p->failure, VSS_E_HOLD_WRITES_TIMEOUT, p->host, NULL,
                                 "host %s saw no commit decision within %u ms of Freeze (hold window %u ms); "
                                 "thawed by itself",
                                 p->host, p->timing.hold_ms - p->timing.commit_budget_ms, p->timing.hold_ms);
                        p_thaw_and_abort(p, out);
                }
                break;
        case CSET_P_COMMITTING:
                if (now >= p->hold_deadline_us) {
                        /* The commit is still running: thaw under it; its result is a failure. */
                        fail_set(&p->failure, VSS_E_HOLD_WRITES_TIMEOUT, p->host, NULL,
                                 "host %s: the snapshot commit did not finish within the %u ms hold window",
                                 p->host, p->timing.hold_ms);
                        p_fail_after_commit(p, out);
                        p_write(p, out, CSET_ACT_WRITE_DONE, &p->failure);
                }
                break;
        default:
                break;
        }
        if (p->pending && p->retry_at_us && now >= p->retry_at_us) {
                p->retry_at_us = 0;
                p_resend(p, out);
        }
}

static void p_next_deadline(struct cset_participant *p, struct cset_actions *out)
{
        uint64_t d = 0;

        switch (p->state) {
        case CSET_P_PREPARING:
        case CSET_P_PREPARED:
                deadline_min(&d, p->prepare_deadline_us);
                break;
        case CSET_P_FREEZING:
        case CSET_P_FROZEN:
                deadline_min(&d, p->commit_cutoff_us);
                if (p->unreachable_since_us)
                        deadline_min(&d, p->unreachable_since_us + ms(p->timing.unreachable_ms));
                break;
        case CSET_P_COMMITTING:
                deadline_min(&d, p->hold_deadline_us);
                break;
        default:
                break;
        }
        if (p->pending)
                deadline_min(&d, p->retry_at_us);
        out->next_deadline_us = d;
}

static void p_decision(struct cset_participant *p, const struct cset_event *ev, struct cset_actions *out)
{
        if (!ev->commit) {
                switch (p->state) {
                case CSET_P_PREPARING:
                case CSET_P_PREPARED:
                case CSET_P_FREEZING:
                case CSET_P_FROZEN:
                        p->failure = ev->failure;
                        emit(out, p->frozen_here ? CSET_ACT_THAW_ABORT_LOCAL : CSET_ACT_ABORT_LOCAL, &ev->failure);
                        p->frozen_here = false;
                        emit(out, CSET_ACT_FORGET, NULL);
                        p_state(p, CSET_P_OVER);
                        break;
                case CSET_P_UNDECIDED:
                        emit(out, CSET_ACT_FORGET, NULL);
                        p_state(p, CSET_P_OVER);
                        break;
                case CSET_P_COMMITTING:
                case CSET_P_COMMITTED:
                case CSET_P_COMPLETE:
                        /* Two decisions cannot exist (I1); should the store say so anyway, no snapshot of an
                         * aborted set survives here. */
                        if (p->frozen_here)
                                emit(out, CSET_ACT_THAW_ABORT_LOCAL, &ev->failure);
                        p->frozen_here = false;
                        emit(out, CSET_ACT_DELETE_SHADOWS, &ev->failure);
                        emit(out, CSET_ACT_FORGET, NULL);
                        p_state(p, CSET_P_OVER);
                        break;
                default:
                        break;
                }
                return;
        }
        p->pending &= ~(1u << CSET_ACT_PROPOSE_ABORT);
        switch (p->state) {
        case CSET_P_FROZEN:
                p->pending &= ~(1u << CSET_ACT_WRITE_FROZEN);
                if (p->now_us < p->commit_cutoff_us) {
                        emit(out, CSET_ACT_COMMIT_LOCAL, NULL);                 /* I3 */
                        p->snapshot_taken = true;
                        p_state(p, CSET_P_COMMITTING);
                        return;
                }
                fail_set(&p->failure, VSS_E_HOLD_WRITES_TIMEOUT, p->host, NULL,
                         "host %s saw the commit decision %llu ms after Freeze, past its cutoff of %u ms; thawed "
                         "without a snapshot",
                         p->host, (unsigned long long)((p->now_us - (p->hold_deadline_us - ms(p->timing.hold_ms))) / 1000),
                         p->timing.hold_ms - p->timing.commit_budget_ms);
                p_fail_after_commit(p, out);
                return;
        case CSET_P_PREPARING:
        case CSET_P_PREPARED:
        case CSET_P_FREEZING:
                /* Commit needs this host's frozen ack (I2), which it has not written. */
                fail_set(&p->failure, VSS_E_UNEXPECTED, p->host, NULL,
                         "host %s read a commit decision while %s: the set's keys are inconsistent", p->host,
                         cset_pstate_name(p->state));
                if (!p->frozen_here)
                        emit(out, CSET_ACT_ABORT_LOCAL, &p->failure);
                p_fail_after_commit(p, out);
                return;
        case CSET_P_UNDECIDED:
                /* This host thawed (its abort lost the race, or never reached etcd): no snapshot here. */
                p_fail_after_commit(p, out);
                return;
        default:
                return;         /* a repeat */
        }
}

static void p_final(struct cset_participant *p, const struct cset_event *ev, struct cset_actions *out)
{
        p->pending &= ~(1u << CSET_ACT_PROPOSE_FAILED);
        p->final_known = true;
        switch (p->state) {
        case CSET_P_COMMITTED:
                p->pending &= ~(1u << CSET_ACT_WRITE_DONE);
                if (ev->complete) {
                        p_state(p, CSET_P_COMPLETE);
                        return;
                }
                emit(out, CSET_ACT_DELETE_SHADOWS, &ev->failure);               /* I6, I8 */
                emit(out, CSET_ACT_FORGET, NULL);
                p_state(p, CSET_P_OVER);
                return;
        case CSET_P_FAILING:
                if (ev->complete && p->done_ok) {
                        /* Our proposal came from losing the coordinator after a good done ack: the
                         * coordinator had completed the set first, and it stands (I1).  The
                         * requester is gone, so no BackupComplete will come. */
                        p->pending = 0;
                        emit(out, CSET_ACT_BACKUP_SHUTDOWN, NULL);
                        emit(out, CSET_ACT_FORGET, NULL);
                        p_state(p, CSET_P_OVER);
                        return;
                }
                if (p->snapshot_taken)
                        emit(out, CSET_ACT_DELETE_SHADOWS, ev->complete ? &p->failure : &ev->failure);
                emit(out, CSET_ACT_FORGET, NULL);
                p_state(p, CSET_P_OVER);
                return;
        case CSET_P_UNDECIDED:
                emit(out, CSET_ACT_FORGET, NULL);
                p_state(p, CSET_P_OVER);
                return;
        case CSET_P_COMMITTING:
                /* Another host failed while this one commits: delete once the commit is done
                 * (the hold deadline still stands). */
                if (!ev->complete) {
                        p->failure = ev->failure;
                        p->final_failed = true;
                }
                return;
        default:
                return;
        }
}

int cset_participant_event(struct cset_participant *p, const struct cset_event *ev, struct cset_actions *out)
{
        *out = (struct cset_actions){ 0 };
        if ((unsigned)ev->type >= _CSET_EV_MAX || ev->type >= CSET_EV_HOST_PREPARED)
                return -EINVAL;
        if (ev->now_us > p->now_us)
                p->now_us = ev->now_us;
        /* Whatever came from etcd shows it answers again. */
        if (ev->type == CSET_EV_ETCD_OK || ev->type == CSET_EV_WRITTEN || ev->type == CSET_EV_SET_SEEN ||
            ev->type == CSET_EV_FREEZE_SEEN || ev->type == CSET_EV_DECISION_SEEN || ev->type == CSET_EV_FINAL_SEEN ||
            ev->type == CSET_EV_END_SEEN || ev->type == CSET_EV_COORDINATOR_GONE)
                p->unreachable_since_us = 0;

        switch (ev->type) {
        case CSET_EV_SET_SEEN:
                if (p->state != CSET_P_IDLE)
                        break;
                if (cset_timing_check(&ev->timing) < 0)
                        return -EINVAL;
                p->timing = ev->timing;
                p->prepare_deadline_us = p->now_us + ms(p->timing.prepare_ms);
                emit(out, CSET_ACT_PREPARE_LOCAL, NULL);
                p_state(p, CSET_P_PREPARING);
                break;

        case CSET_EV_LOCAL_PREPARED:
                if (p->state != CSET_P_PREPARING)
                        break;
                if (ev->failure.hr == VSS_S_OK) {
                        p_write(p, out, CSET_ACT_WRITE_PREPARED, NULL);
                        p_state(p, CSET_P_PREPARED);
                        break;
                }
                p->failure = ev->failure;
                fmt_trunc(p->failure.host, sizeof(p->failure.host), "%s", p->host);
                p_thaw_and_abort(p, out);
                p_write(p, out, CSET_ACT_WRITE_PREPARED, &p->failure);
                break;

        case CSET_EV_FREEZE_SEEN:
                if (p->state != CSET_P_PREPARED)
                        break;          /* never freeze after giving up, or before being prepared */
                p->pending &= ~(1u << CSET_ACT_WRITE_PREPARED);
                p->hold_deadline_us = p->now_us + ms(p->timing.hold_ms);                /* I4 */
                p->commit_cutoff_us = p->hold_deadline_us - ms(p->timing.commit_budget_ms);
                p->frozen_here = true;
                emit(out, CSET_ACT_FREEZE_LOCAL, NULL);
                out->a[out->n - 1].deadline_us = p->hold_deadline_us;
                p_state(p, CSET_P_FREEZING);
                break;

        case CSET_EV_LOCAL_FROZEN:
                if (p->state != CSET_P_FREEZING)
                        break;
                if (ev->failure.hr != VSS_S_OK) {
                        p->failure = ev->failure;
                        fmt_trunc(p->failure.host, sizeof(p->failure.host), "%s", p->host);
                        p_thaw_and_abort(p, out);
                        break;
                }
                if (p->now_us >= p->commit_cutoff_us)
                        break;  /* p_deadlines() thaws and aborts */
                p_write(p, out, CSET_ACT_WRITE_FROZEN, NULL);
                p_state(p, CSET_P_FROZEN);
                break;

        case CSET_EV_DECISION_SEEN:
                p_decision(p, ev, out);
                break;

        case CSET_EV_LOCAL_COMMITTED:
                if (p->state == CSET_P_FAILING && p->snapshot_taken) {
                        /* Thawed under the commit at the hold deadline, or another host failed. */
                        p->frozen_here = false;
                        emit(out, CSET_ACT_DELETE_SHADOWS, &p->failure);
                        if (p->final_known) {
                                emit(out, CSET_ACT_FORGET, NULL);
                                p_state(p, CSET_P_OVER);
                        }
                        break;
                }
                if (p->state != CSET_P_COMMITTING)
                        break;
                p->frozen_here = false;
                if (p->final_failed) {
                        emit(out, CSET_ACT_DELETE_SHADOWS, &p->failure);
                        emit(out, CSET_ACT_FORGET, NULL);
                        p_state(p, CSET_P_OVER);
                        break;
                }
                if (ev->failure.hr == VSS_S_OK) {
                        p->done_ok = true;
                        p_write(p, out, CSET_ACT_WRITE_DONE, NULL);
                        p_state(p, CSET_P_COMMITTED);
                        if (p->coordinator_gone) {
                                fail_set(&p->failure, VSS_E_REMOTE_SERVER_UNAVAILABLE, p->host, NULL,
                                         "the set's coordinator is gone (its lease expired) before the set "
                                         "completed");
                                p_write(p, out, CSET_ACT_PROPOSE_FAILED, &p->failure);
                                p_state(p, CSET_P_FAILING);
                        }
                        break;
                }
                p->failure = ev->failure;
                fmt_trunc(p->failure.host, sizeof(p->failure.host), "%s", p->host);
                emit(out, CSET_ACT_DELETE_SHADOWS, &p->failure);
                p_write(p, out, CSET_ACT_WRITE_DONE, &p->failure);
                p_fail_after_commit(p, out);
                break;

        case CSET_EV_FINAL_SEEN:
                p_final(p, ev, out);
                break;

        case CSET_EV_END_SEEN:
                if (p->state != CSET_P_COMPLETE)
                        break;
                emit(out, CSET_ACT_BACKUP_COMPLETE, NULL);
                out->a[out->n - 1].succeeded = ev->succeeded;
                emit(out, CSET_ACT_FORGET, NULL);
                p_state(p, CSET_P_OVER);
                break;

        case CSET_EV_COORDINATOR_GONE:
                p->coordinator_gone = true;
                switch (p->state) {
                case CSET_P_PREPARING:
                case CSET_P_PREPARED:
                case CSET_P_FREEZING:
                case CSET_P_FROZEN:
                        fail_set(&p->failure, VSS_E_REMOTE_SERVER_UNAVAILABLE, p->host, NULL,
                                 "the set's coordinator is gone (its lease expired); host %s aborts", p->host);
                        p_thaw_and_abort(p, out);
                        break;
                case CSET_P_COMMITTED:
                        /* The requester is gone; unless the coordinator completed the set first, it fails. */
                        fail_set(&p->failure, VSS_E_REMOTE_SERVER_UNAVAILABLE, p->host, NULL,
                                 "the set's coordinator is gone (its lease expired) before the set completed");
                        p_write(p, out, CSET_ACT_PROPOSE_FAILED, &p->failure);
                        p_state(p, CSET_P_FAILING);
                        break;
                case CSET_P_COMPLETE:
                        emit(out, CSET_ACT_BACKUP_SHUTDOWN, NULL);
                        emit(out, CSET_ACT_FORGET, NULL);
                        p_state(p, CSET_P_OVER);
                        break;
                default:
                        break;  /* committing: finish first; undecided/failing: proposals go on */
                }
                break;

        case CSET_EV_ETCD_UNREACHABLE:
                if (!p->unreachable_since_us) {
                        p->unreachable_since_us = p->now_us;
                        fmt_trunc(p->unreachable_why, sizeof(p->unreachable_why), "%s", ev->failure.detail);
                }
                retry_later(p->now_us, p->pending, p->timing.retry_ms, &p->backoff_ms, &p->retry_at_us);
                break;

        case CSET_EV_WRITTEN:
                if ((unsigned)ev->written >= _CSET_ACT_MAX)
                        break;
                p->pending &= ~(1u << ev->written);
                p->backoff_ms = 0;
                /* Our own proposal won: that is the decision (or the final) now, whether or not
                 * a watch or poll ever shows it to us. */
                if (ev->written == CSET_ACT_PROPOSE_ABORT && p->state == CSET_P_UNDECIDED) {
                        struct cset_event d = { .type = CSET_EV_DECISION_SEEN, .failure = p->failure };

                        p_decision(p, &d, out);
                } else if (ev->written == CSET_ACT_PROPOSE_FAILED && p->state == CSET_P_FAILING) {
                        struct cset_event f = { .type = CSET_EV_FINAL_SEEN, .failure = p->failure };

                        p_final(p, &f, out);
                }
                break;

        case CSET_EV_TICK:
        default:
                break;
        }
        p_deadlines(p, out);
        p_next_deadline(p, out);
        return 0;
}

/* ---- coordinator ---- */

int cset_coordinator_init(struct cset_coordinator *c, const struct cset_timing *t, const char *const *hosts,
                          size_t n_hosts)
{
        if (!t || cset_timing_check(t) < 0 || n_hosts == 0 || n_hosts > CSET_MAX_HOSTS)
                return -EINVAL;
        *c = (struct cset_coordinator){ .state = CSET_C_IDLE, .timing = *t, .n_hosts = n_hosts };
        for (size_t i = 0; i < n_hosts; i++) {
                if (!hosts[i] || !hosts[i][0] || strlen(hosts[i]) >= CSET_HOST_MAX)
                        return -EINVAL;
                for (size_t k = 0; k < i; k++)
                        if (streq(c->hosts[k].name, hosts[i]))
                                return -EINVAL;
                fmt_trunc(c->hosts[i].name, CSET_HOST_MAX, "%s", hosts[i]);
        }
        return 0;
}

static struct cset_host *c_host(struct cset_coordinator *c, const char *name)
{
        for (size_t i = 0; name && i < c->n_hosts; i++)
                if (streq(c->hosts[i].name, name))
                        return &c->hosts[i];
        return NULL;
}

/* "a, b" of the hosts without flag 'off'; the first one in *ret_first. */
static void c_missing(struct cset_coordinator *c, size_t off, char *buf, size_t len, const char **ret_first)
{
        size_t used = 0;

        buf[0] = '\0';
        *ret_first = NULL;
        for (size_t i = 0; i < c->n_hosts; i++) {
                const bool *flag = (const bool *)((const char *)&c->hosts[i] + off);

                if (*flag)
                        continue;
                if (!*ret_first)
                        *ret_first = c->hosts[i].name;
                fmt_trunc(buf + used, len - used, "%s%s", used ? ", " : "", c->hosts[i].name);
                used = strlen(buf);
        }
}

static bool c_all(struct cset_coordinator *c, size_t off)
{
        for (size_t i = 0; i < c->n_hosts; i++)
                if (!*(const bool *)((const char *)&c->hosts[i] + off))
                        return false;
        return true;
}

static void c_write(struct cset_coordinator *c, struct cset_actions *out, enum cset_action_type type,
                    const struct cset_failure *f)
{
        emit(out, type, f);
        c->pending |= 1u << type;
}

static void c_abort(struct cset_coordinator *c, struct cset_actions *out, const struct cset_failure *f)
{
        c->failure = *f;
        c->pending &= ~((1u << CSET_ACT_WRITE_FREEZE) | (1u << CSET_ACT_WRITE_COMMIT));
        c_write(c, out, CSET_ACT_PROPOSE_ABORT, f);
        c->state = CSET_C_ABORTING;
}

static void c_failed(struct cset_coordinator *c, struct cset_actions *out, const struct cset_failure *f)
{
        c->failure = *f;
        c->pending &= ~(1u << CSET_ACT_WRITE_COMPLETE);
        c_write(c, out, CSET_ACT_PROPOSE_FAILED, f);
        c->state = CSET_C_FAILING;
}

static void c_finish(struct cset_coordinator *c, struct cset_actions *out, const struct cset_failure *f)
{
        if (!c->reported)
                emit(out, CSET_ACT_REPORT, f);
        c->reported = true;
        emit(out, CSET_ACT_RELEASE, NULL);
        emit(out, CSET_ACT_FORGET, NULL);
        c->state = CSET_C_OVER;
        c->pending = 0;
        c->retry_at_us = 0;
}

int cset_coordinator_start(struct cset_coordinator *c, uint64_t now_us, struct cset_actions *out)
{
        *out = (struct cset_actions){ 0 };
        if (c->state != CSET_C_IDLE)
                return -EINVAL;
        c->now_us = now_us;
        c->prepare_deadline_us = now_us + ms(c->timing.prepare_ms);
        c->state = CSET_C_PREPARE;
        out->next_deadline_us = c->prepare_deadline_us;
        return 0;
}

static void c_try_freeze(struct cset_coordinator *c, struct cset_actions *out)
{
        if (c->state != CSET_C_PREPARE || !c_all(c, offsetof(struct cset_host, prepared)))
                return;
        /* t0 before the write goes out: every host sees Freeze after it (I5). */
        c->freeze_sent_us = c->now_us;
        c->commit_limit_us = c->now_us + ms(c->timing.hold_ms) - 2 * ms(c->timing.commit_budget_ms);
        c_write(c, out, CSET_ACT_WRITE_FREEZE, NULL);
        c->state = CSET_C_FREEZE;
}

static void c_try_commit(struct cset_coordinator *c, struct cset_actions *out)
{
        if (c->state != CSET_C_FREEZE || !c_all(c, offsetof(struct cset_host, frozen)))
                return;
        if (c->now_us >= c->commit_limit_us)
                return;         /* c_deadlines() aborts */
        c->commit_sent_us = c->now_us;
        c->done_deadline_us = c->now_us + ms(c->timing.hold_ms) + ms(c->timing.commit_budget_ms);
        c->pending &= ~(1u << CSET_ACT_WRITE_FREEZE);
        c_write(c, out, CSET_ACT_WRITE_COMMIT, NULL);   /* I2: the txn compares every frozen ack */
        c->state = CSET_C_COMMIT;
}

static void c_try_complete(struct cset_coordinator *c, struct cset_actions *out)
{
        if (c->state != CSET_C_COMMIT || !c_all(c, offsetof(struct cset_host, done)) ||
            (c->pending & (1u << CSET_ACT_WRITE_COMPLETE)))
                return;
        c->pending &= ~(1u << CSET_ACT_WRITE_COMMIT);
        c_write(c, out, CSET_ACT_WRITE_COMPLETE, NULL);
}

static void c_deadlines(struct cset_coordinator *c, struct cset_actions *out)
{
        struct cset_failure f;
        char missing[CSET_DETAIL_MAX / 2];
        const char *first;

        switch (c->state) {
        case CSET_C_PREPARE:
                if (c->now_us < c->prepare_deadline_us)
                        break;
                c_missing(c, offsetof(struct cset_host, prepared), missing, sizeof(missing), &first);
                fail_set(&f, VSS_E_CLUSTER_TIMEOUT, first, NULL, "not prepared within %u ms: %s",
                         c->timing.prepare_ms, missing);
                c_abort(c, out, &f);
                break;
        case CSET_C_FREEZE:
                if (c->now_us < c->commit_limit_us)
                        break;
                c_missing(c, offsetof(struct cset_host, frozen), missing, sizeof(missing), &first);
                fail_set(&f, VSS_E_CLUSTER_TIMEOUT, first, NULL,
                         "not frozen within %u ms of Freeze (hold window %u ms): %s",
                         c->timing.hold_ms - 2 * c->timing.commit_budget_ms, c->timing.hold_ms, missing);
                c_abort(c, out, &f);
                break;
        case CSET_C_COMMIT:
                if (c->now_us < c->done_deadline_us || (c->pending & (1u << CSET_ACT_WRITE_COMPLETE)))
                        break;
                c_missing(c, offsetof(struct cset_host, done), missing, sizeof(missing), &first);
                fail_set(&f, VSS_E_CLUSTER_TIMEOUT, first, NULL,
                         "no snapshot reported within %u ms of the commit decision: %s",
                         c->timing.hold_ms + c->timing.commit_budget_ms, missing);
                c_failed(c, out, &f);
                break;
        default:
                break;
        }
        if (c->pending && c->retry_at_us && c->now_us >= c->retry_at_us) {
                static const enum cset_action_type order[] = { CSET_ACT_WRITE_FREEZE, CSET_ACT_WRITE_COMMIT,
                                                               CSET_ACT_WRITE_COMPLETE, CSET_ACT_PROPOSE_ABORT,
                                                               CSET_ACT_PROPOSE_FAILED };

                c->retry_at_us = 0;
                for (size_t i = 0; i < ARRAY_SIZE(order); i++)
                        if (c->pending & (1u << order[i]))
                                emit(out, order[i],
                                     order[i] == CSET_ACT_PROPOSE_ABORT || order[i] == CSET_ACT_PROPOSE_FAILED
                                             ? &c->failure
                                             : NULL);
        }
}

int cset_coordinator_event(struct cset_coordinator *c, const struct cset_event *ev, struct cset_actions *out)
{
        struct cset_host *h = NULL;
        struct cset_failure f;
        uint64_t d = 0;

        *out = (struct cset_actions){ 0 };
        if ((unsigned)ev->type >= _CSET_EV_MAX || c->state == CSET_C_IDLE)
                return -EINVAL;
        if (ev->type >= CSET_EV_HOST_PREPARED) {
                h = c_host(c, ev->host);
                if (!h)
                        return -EINVAL;         /* not a host of this set */
        } else if (ev->type < CSET_EV_DECISION_SEEN && ev->type != CSET_EV_FINAL_SEEN) {
                return -EINVAL;                 /* a participant's event */
        }
        if (ev->now_us > c->now_us)
                c->now_us = ev->now_us;
        if (c->state == CSET_C_OVER)
                goto done;

        switch (ev->type) {
        case CSET_EV_HOST_PREPARED:
                if (c->state != CSET_C_PREPARE || h->prepared)
                        break;
                if (ev->failure.hr != VSS_S_OK) {
                        f = ev->failure;
                        fmt_trunc(f.host, sizeof(f.host), "%s", h->name);
                        c_abort(c, out, &f);
                        break;
                }
                h->prepared = true;
                c_try_freeze(c, out);
                break;
        case CSET_EV_HOST_FROZEN:
                /* An ack read at or after the commit limit is too late to count (I5). */
                if (c->state != CSET_C_FREEZE || c->now_us >= c->commit_limit_us)
                        break;
                h->frozen = true;
                c_try_commit(c, out);
                break;
        case CSET_EV_HOST_DONE:
                if (c->state != CSET_C_COMMIT || h->done)
                        break;
                if (ev->failure.hr != VSS_S_OK) {
                        f = ev->failure;
                        fmt_trunc(f.host, sizeof(f.host), "%s", h->name);
                        c_failed(c, out, &f);
                        break;
                }
                h->done = true;
                c_try_complete(c, out);
                break;
        case CSET_EV_HOST_GONE:
                h->gone = true;
                fail_set(&f, VSS_E_REMOTE_SERVER_UNAVAILABLE, h->name, NULL,
                         "host %s left the cluster (its host record's lease expired)", h->name);
                if (c->state == CSET_C_PREPARE || c->state == CSET_C_FREEZE)
                        c_abort(c, out, &f);
                else if (c->state == CSET_C_COMMIT && !h->done)
                        c_failed(c, out, &f);
                break;
        case CSET_EV_DECISION_SEEN:
                if (ev->commit) {
                        /* Ours (read back after an unknown outcome), or a repeat. */
                        c->pending &= ~(1u << CSET_ACT_WRITE_COMMIT);
                        if (c->state == CSET_C_ABORTING) {
                                /* Our commit did land before we gave up: fail it instead (I1). */
                                c_failed(c, out, &c->failure);
                        }
                        break;
                }
                c_finish(c, out, &ev->failure);
                break;
        case CSET_EV_FINAL_SEEN:
                c_finish(c, out, ev->complete ? &(struct cset_failure){ .hr = VSS_S_OK } : &ev->failure);
                break;
        case CSET_EV_WRITTEN:
                if ((unsigned)ev->written >= _CSET_ACT_MAX)
                        break;
                c->pending &= ~(1u << ev->written);
                c->backoff_ms = 0;
                if (ev->written == CSET_ACT_WRITE_COMPLETE && c->state == CSET_C_COMMIT)
                        c_finish(c, out, &(struct cset_failure){ .hr = VSS_S_OK });
                else if (ev->written == CSET_ACT_PROPOSE_ABORT && c->state == CSET_C_ABORTING)
                        c_finish(c, out, &c->failure);
                else if (ev->written == CSET_ACT_PROPOSE_FAILED && c->state == CSET_C_FAILING)
                        c_finish(c, out, &c->failure);
                break;
        case CSET_EV_COORDINATOR_GONE:
                /* Our own lease expired: no commit can be written any more (the txns compare the lock). */
                fail_set(&f, VSS_E_CLUSTER_ERROR, NULL, NULL,
                         "the coordinator lost its set lease (etcd unreachable for longer than its TTL)");
                if (c->state == CSET_C_PREPARE || c->state == CSET_C_FREEZE)
                        c_abort(c, out, &f);
                else if (c->state == CSET_C_COMMIT)
                        c_failed(c, out, &f);
                break;
        case CSET_EV_ETCD_UNREACHABLE:
                retry_later(c->now_us, c->pending, c->timing.retry_ms, &c->backoff_ms, &c->retry_at_us);
                /* A set given up on cannot complete any more (only we write commit and complete):
                 * the requester need not wait for etcd to come back to hear that. */
                if ((c->state == CSET_C_ABORTING || c->state == CSET_C_FAILING) && !c->reported) {
                        f = c->failure;
                        fmt_trunc(f.detail + strlen(f.detail), sizeof(f.detail) - strlen(f.detail),
                                  "; etcd unreachable: %s", ev->failure.detail);
                        emit(out, CSET_ACT_REPORT, &f);
                        c->reported = true;
                }
                break;
        case CSET_EV_TICK:
        default:
                break;
        }
        c_deadlines(c, out);
done:
        switch (c->state) {
        case CSET_C_PREPARE:
                deadline_min(&d, c->prepare_deadline_us);
                break;
        case CSET_C_FREEZE:
                deadline_min(&d, c->commit_limit_us);
                break;
        case CSET_C_COMMIT:
                deadline_min(&d, c->done_deadline_us);
                break;
        default:
                break;
        }
        if (c->pending)
                deadline_min(&d, c->retry_at_us);
        out->next_deadline_us = d;
        return 0;
}
