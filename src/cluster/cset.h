/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The cluster snapshot set protocol of docs/cluster.md as two pure state
 * machines: no sockets, no clocks, no etcd.  The driver (vssd) feeds events,
 * each stamped with the monotonic time it happened at, and executes the
 * actions returned, in order; it calls again with CSET_EV_TICK when
 * next_deadline_us passes.  Everything that must hold whatever fails (no
 * host frozen past its hold window, exactly one outcome, no host snapshotting
 * before every host froze) is decided here, so that the unit test can drive
 * every failure path with a made-up clock.
 *
 *   struct cset_participant   one per host per set: the host's own writers
 *                             and providers, its own deadlines;
 *   struct cset_coordinator   on the requester's host: the decisions.
 *
 * The coordinator's host is also a participant of its own set.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vss/vss.h"

#define CSET_HOST_MAX 64                /* bytes of a host name, NUL included */
#define CSET_WRITER_MAX 256
#define CSET_DETAIL_MAX 512
#define CSET_SET_ID_MAX 40
#define CSET_MAX_HOSTS 32
#define CSET_ACTIONS_MAX 8

/* Defaults of the timing a set's spec carries (every host uses the spec's values). */
#define CSET_DEFAULT_HOLD_MS 10000      /* vss-facts 4.1: the flush-and-hold window */
#define CSET_DEFAULT_PREPARE_MS 60000
#define CSET_DEFAULT_RETRY_MS 200

/* What the coordinator writes into the set's spec and every participant obeys. */
struct cset_timing {
        uint32_t hold_ms;               /* Freeze seen .. thawed, on every host */
        uint32_t prepare_ms;            /* set seen .. Freeze seen */
        uint32_t commit_budget_ms;      /* reserved at the end of the hold window for commit + thaw */
        uint32_t retry_ms;              /* pause before an etcd write that failed is sent again */
        uint32_t unreachable_ms;        /* a frozen host thaws when etcd fails it this long (an
                                           election after a leader's loss takes 1-2 s: no thaw for that) */
};

void cset_timing_default(struct cset_timing *t);
/* Sets the hold window and what follows from it: the commit budget min(hold/4, 2 s) and
 * the unreachable grace min(hold/2, 3 s). */
void cset_timing_set_hold(struct cset_timing *t, uint32_t hold_ms);
/* 0, or -EINVAL when the values cannot work (budget not below half the hold window...). */
int cset_timing_check(const struct cset_timing *t);

/* What a failure names, carried by decisions, proposals and reports. */
struct cset_failure {
        vss_hresult hr;
        char host[CSET_HOST_MAX];
        char writer[CSET_WRITER_MAX];   /* "" when not a writer's failure */
        char detail[CSET_DETAIL_MAX];
};

enum cset_event_type {
        /* Participant */
        CSET_EV_SET_SEEN,               /* the set's spec names this host (timing in .timing) */
        CSET_EV_LOCAL_PREPARED,         /* PrepareForBackup .. EndPrepareSnapshots done; .failure.hr */
        CSET_EV_FREEZE_SEEN,            /* the set's freeze key exists */
        CSET_EV_LOCAL_FROZEN,           /* writers frozen, volumes held; .failure.hr */
        CSET_EV_LOCAL_COMMITTED,        /* CommitSnapshots, thaw, PostCommit, Thaw done; .failure.hr */
        CSET_EV_FINAL_SEEN,             /* .complete, or .failure */
        CSET_EV_END_SEEN,               /* the requester's BackupComplete; .succeeded */
        /* Both */
        CSET_EV_DECISION_SEEN,          /* .commit, or the abort's .failure */
        CSET_EV_COORDINATOR_GONE,       /* the set lock is gone or not the set's own any more */
        CSET_EV_ETCD_UNREACHABLE,       /* an etcd call failed (no quorum, no member, deadline) */
        CSET_EV_WRITTEN,                /* the write of action .written reached etcd */
        CSET_EV_ETCD_OK,                /* an etcd call succeeded (a poll with nothing new, too) */
        CSET_EV_TICK,
        /* Coordinator */
        CSET_EV_HOST_PREPARED,          /* prepared/<.host> read: "ok" or .failure */
        CSET_EV_HOST_FROZEN,            /* frozen/<.host> read */
        CSET_EV_HOST_DONE,              /* done/<.host> read: "ok" or .failure */
        CSET_EV_HOST_GONE,              /* hosts/<.host> (its lease) is gone */
        _CSET_EV_MAX,
};

enum cset_action_type {
        /* Participant: local work */
        CSET_ACT_PREPARE_LOCAL,         /* Identify, PrepareForBackup, PrepareForSnapshot, EndPrepareSnapshots */
        CSET_ACT_FREEZE_LOCAL,          /* Freeze, PreCommitSnapshots, FIFREEZE; arm a watchdog at .deadline_us */
        CSET_ACT_COMMIT_LOCAL,          /* CommitSnapshots, FITHAW, PostCommitSnapshots, Thaw, PostSnapshot */
        CSET_ACT_THAW_ABORT_LOCAL,      /* now: FITHAW whatever is held, AbortSnapshots, Abort to writers */
        CSET_ACT_ABORT_LOCAL,           /* nothing frozen: AbortSnapshots (if prepared), Abort to writers */
        CSET_ACT_DELETE_SHADOWS,        /* delete this host's shadow copies of the set */
        CSET_ACT_BACKUP_COMPLETE,       /* BackupComplete (.succeeded) then BackupShutdown to writers */
        CSET_ACT_BACKUP_SHUTDOWN,       /* BackupShutdown; auto-release shadows are deleted */
        /* Participant: etcd writes */
        CSET_ACT_WRITE_PREPARED,        /* prepared/<me>: "ok", or .failure with an abort decision */
        CSET_ACT_WRITE_FROZEN,          /* frozen/<me> = "ok", guarded: no decision yet */
        CSET_ACT_WRITE_DONE,            /* done/<me>: "ok" or .failure */
        /* Both: etcd writes */
        CSET_ACT_PROPOSE_ABORT,         /* decision = abort(.failure) if there is no decision */
        CSET_ACT_PROPOSE_FAILED,        /* final = failed(.failure) if there is no final */
        /* Coordinator */
        CSET_ACT_WRITE_FREEZE,          /* freeze, guarded: lock ours, no decision, all prepared ok */
        CSET_ACT_WRITE_COMMIT,          /* decision = commit, guarded: lock ours, no decision, all frozen */
        CSET_ACT_WRITE_COMPLETE,        /* final = complete, guarded: commit, no final, all done ok */
        CSET_ACT_REPORT,                /* DoSnapshotSet returns: .failure.hr (VSS_S_OK: success) */
        CSET_ACT_RELEASE,               /* delete the lock if it is ours */
        /* Both */
        CSET_ACT_FORGET,                /* the set is over here: free the machine */
        _CSET_ACT_MAX,
};

struct cset_event {
        enum cset_event_type type;
        uint64_t now_us;                        /* CLOCK_MONOTONIC; never the real-time clock */
        struct cset_timing timing;              /* CSET_EV_SET_SEEN */
        bool commit;                            /* CSET_EV_DECISION_SEEN */
        bool complete;                          /* CSET_EV_FINAL_SEEN */
        bool succeeded;                         /* CSET_EV_END_SEEN */
        enum cset_action_type written;          /* CSET_EV_WRITTEN */
        const char *host;                       /* CSET_EV_HOST_* */
        struct cset_failure failure;            /* hr VSS_S_OK: success */
};

struct cset_action {
        enum cset_action_type type;
        uint64_t deadline_us;                   /* CSET_ACT_FREEZE_LOCAL: the hold deadline */
        bool succeeded;                         /* CSET_ACT_BACKUP_COMPLETE */
        struct cset_failure failure;            /* hr VSS_S_OK: "ok" */
};

struct cset_actions {
        size_t n;
        struct cset_action a[CSET_ACTIONS_MAX];
        uint64_t next_deadline_us;              /* 0: no deadline; otherwise send CSET_EV_TICK then */
};

enum cset_pstate {
        CSET_P_IDLE,
        CSET_P_PREPARING,               /* local prepare running */
        CSET_P_PREPARED,                /* prepared ack written or being written; waiting for Freeze */
        CSET_P_FREEZING,                /* local freeze running: the hold deadline is armed */
        CSET_P_FROZEN,                  /* frozen ack written; waiting for the decision */
        CSET_P_COMMITTING,              /* local commit running */
        CSET_P_COMMITTED,               /* done ack written; waiting for the final outcome */
        CSET_P_COMPLETE,                /* final complete; waiting for the requester's end */
        CSET_P_UNDECIDED,               /* aborted here before a decision was known; learning it */
        CSET_P_FAILING,                 /* no snapshot (or a failed one) after commit; waiting for final */
        CSET_P_OVER,
        _CSET_P_MAX,
};

struct cset_participant {
        char host[CSET_HOST_MAX];
        enum cset_pstate state;
        struct cset_timing timing;
        uint64_t now_us;                        /* latest time seen (clamped: never goes back) */
        uint64_t prepare_deadline_us;
        uint64_t hold_deadline_us;              /* 0 until Freeze is seen */
        uint64_t commit_cutoff_us;              /* hold deadline - commit budget */
        bool frozen_here;                       /* something may be frozen: a thaw is owed */
        bool snapshot_taken;                    /* CommitSnapshots was asked for */
        bool done_ok;                           /* done/<me> = "ok" was written: the set may complete */
        bool final_known;                       /* the final outcome was read */
        bool final_failed;                      /* ... and it is failed (read while committing) */
        bool coordinator_gone;
        unsigned pending;                       /* bit per action type: an etcd write not yet confirmed */
        uint64_t retry_at_us;                   /* 0: no write waiting to be sent again */
        uint32_t backoff_ms;                    /* the next retry's pause, doubling to 5 s */
        uint64_t unreachable_since_us;          /* 0: the last etcd call succeeded */
        char unreachable_why[CSET_DETAIL_MAX / 2];
        struct cset_failure failure;            /* why this host aborted or failed */
};

enum cset_cstate {
        CSET_C_IDLE,
        CSET_C_PREPARE,                 /* waiting for every host's prepared ack */
        CSET_C_FREEZE,                  /* freeze written; waiting for every host's frozen ack */
        CSET_C_COMMIT,                  /* commit written; waiting for every host's done ack */
        CSET_C_ABORTING,                /* abort proposed; waiting to see the decision */
        CSET_C_FAILING,                 /* failed proposed; waiting to see the final */
        CSET_C_OVER,
        _CSET_C_MAX,
};

struct cset_host {
        char name[CSET_HOST_MAX];
        bool prepared, frozen, done, gone;
};

struct cset_coordinator {
        enum cset_cstate state;
        struct cset_timing timing;
        uint64_t now_us;
        struct cset_host hosts[CSET_MAX_HOSTS];
        size_t n_hosts;
        uint64_t prepare_deadline_us;
        uint64_t freeze_sent_us;                /* t0: taken before the freeze write is sent */
        uint64_t commit_limit_us;               /* t0 + hold - 2 x budget: no commit write after this */
        uint64_t commit_sent_us;
        uint64_t done_deadline_us;
        unsigned pending;
        uint64_t retry_at_us;
        uint32_t backoff_ms;
        bool reported;
        struct cset_failure failure;
};

const char *cset_pstate_name(enum cset_pstate s);
const char *cset_cstate_name(enum cset_cstate s);
const char *cset_event_name(enum cset_event_type t);
const char *cset_action_name(enum cset_action_type t);

void cset_participant_init(struct cset_participant *p, const char *host);
/* Handles one event.  0, or -EINVAL for an event no participant takes
 * (the driver logs it; nothing changed).  Events that come late or twice
 * (a watch and a poll both deliver a decision) are taken and do nothing. */
int cset_participant_event(struct cset_participant *p, const struct cset_event *ev, struct cset_actions *out);

/* hosts: the participants (the coordinator's own host among them if it has volumes). */
int cset_coordinator_init(struct cset_coordinator *c, const struct cset_timing *t, const char *const *hosts,
                          size_t n_hosts);
/* The first call after init: the lock and spec are written (now_us: when). */
int cset_coordinator_start(struct cset_coordinator *c, uint64_t now_us, struct cset_actions *out);
int cset_coordinator_event(struct cset_coordinator *c, const struct cset_event *ev, struct cset_actions *out);
