/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The phases of a session's snapshot set (set.c is the one place that changes
 * them, through set_state()).  A session holds at most one set at a time; a
 * restore takes the service's turn like a set does, so it has phases too.
 *
 *   backup:
 *
 *   IDLE --StartSnapshotSet--> STARTED --PrepareForBackup--> PREPARING --> PREPARED
 *                                 |                                           |
 *                                 +-------------DoSnapshotSet-----------------+
 *                                                     |
 *                                                     v
 *                           CREATING --(a failure, see the step table in set.c)--> ABORTED
 *                              |                                                      ^
 *                              v                                                      |
 *                           CREATED --BackupComplete--> COMPLETING --> COMPLETED      |
 *                                                                                     |
 *   STARTED, PREPARING, PREPARED, CREATING, CREATED, COMPLETING                       |
 *         --(AbortBackup, or the requester gone)--------------------------------------+
 *
 *   restore:
 *
 *   IDLE, RESTORE_PREPARED --PreRestore--> PRE_RESTORING --> RESTORE_PREPARED
 *   IDLE, RESTORE_PREPARED --PostRestore--> POST_RESTORING --> IDLE
 *   PRE_RESTORING, RESTORE_PREPARED --(the requester gone)--> IDLE
 *
 * The phases from STARTED to CREATING and the three restore phases hold the
 * service's one turn (vssd.set_owner): another requester gets
 * VSS_E_SNAPSHOT_SET_IN_PROGRESS.  CREATED, COMPLETING, COMPLETED and ABORTED
 * are ends of a set; the session keeps it (and its shadows) until it goes.
 */

#include <stdbool.h>
#include <stddef.h>

#include "vss/provider.h"
#include "vss/vss.h"
#include "vssd/provider-host.h"

struct session;
struct vssd;
struct writer;

enum set_phase {
        SET_IDLE,
        SET_STARTED,
        SET_PREPARING,          /* PrepareForBackup's events are out */
        SET_PREPARED,
        SET_CREATING,           /* DoSnapshotSet walks the backup steps */
        SET_CREATED,
        SET_COMPLETING,         /* BackupComplete's events are out */
        SET_COMPLETED,
        SET_ABORTED,
        SET_PRE_RESTORING,
        SET_RESTORE_PREPARED,   /* between PreRestore and PostRestore */
        SET_POST_RESTORING,
        _SET_PHASE_MAX,
};

/* "idle", "started", ... */
const char *set_phase_name(enum set_phase p);
/* Whether the diagram above has the arrow from -> to. */
bool set_transition_legal(enum set_phase from, enum set_phase to);
/* A snapshot set was started (and not by a restore): StartSnapshotSet and later. */
bool set_phase_has_set(enum set_phase p);
bool set_phase_is_restore(enum set_phase p);
/* The phase holds the service's one turn. */
bool set_phase_holds_turn(enum set_phase p);

struct set_volume {
        char path[VSS_PATH_MAX];
        int provider;
        struct vss_provider_snapshot snap;
        bool begun;
};

/* set.c: the snapshot set state machine.  Everything it needs from the rest of vssd goes through
 * these operations (session.c wires them to the registry, the provider worker, the catalog and the
 * requester's connection; tests/unit/test-set.c fakes them). */
struct set_sequence;
struct set_ops {
        /* Sends an awaited event; set_writer_done() must hear of its end.  deadline_ms 0: none (the
         * freeze timer decides).  false when not sent (the writer's connection is closed: failed). */
        bool (*send_event)(struct vssd *v, struct session *s, struct writer *w, enum vss_event ev,
                           uint32_t deadline_ms);
        /* Sends an event nobody waits for (Abort, BackupShutdown); the writer's state moves on. */
        void (*notify)(struct vssd *v, struct session *s, struct writer *w, enum vss_event ev);
        void (*writer_failed)(struct vssd *v, struct writer *w, enum vss_event ev, vss_hresult hr, const char *msg);
        /* Forgets the writer's awaited event: no set_writer_done() for it. */
        void (*cancel_pending)(struct vssd *v, struct writer *w);
        /* Arms w's freeze timer (w->freeze_timeout_ms); set_freeze_expired() must hear of its expiry. */
        void (*arm_freeze)(struct vssd *v, struct session *s, struct writer *w);
        void (*cancel_freeze)(struct vssd *v, struct writer *w);
        /* Frees writers that went away and that no set holds any more. */
        void (*sweep_writers)(struct vssd *v);
        /* One call of a provider for snaps (its volumes of the set), 'hold' inside the flush-and-hold
         * window; set_provider_done() must hear of the end of every call but PROV_ABORT.  <0 when it
         * could not be made (out of memory). */
        int (*provider_call)(struct vssd *v, struct session *s, enum prov_op op, int provider,
                             const struct vss_provider_snapshot *snaps, size_t n, bool hold);
        /* The set entered phase 'to' (the catalog records it). */
        void (*phase_changed)(struct vssd *v, struct session *s, enum set_phase from, enum set_phase to);
        /* Thaw was sent: the set's shadow copies exist. */
        void (*shadows_created)(struct vssd *v, struct session *s);
        /* The session's auto-release shadow copies go. */
        void (*release_shadows)(struct vssd *v, struct session *s);
        void (*log_event)(struct vssd *v, const char *level, const char *source, vss_hresult hr, const char *msg);
        /* The requester's call ends: detail NULL on success, else the failure hr and its message. */
        void (*call_done)(struct vssd *v, struct session *s, vss_hresult hr, const char *detail);
        /* The set let go of the session: free it. */
        void (*released)(struct vssd *v, struct session *s);
};

/* The requester's calls (session.c checked the phase and the arguments). */
void set_start(struct vssd *v, struct session *s);
void set_gather(struct vssd *v, struct session *s);
void set_add_volume(struct vssd *v, struct session *s);         /* the volume s->vols[n_vols - 1] */
void set_prepare_backup(struct vssd *v, struct session *s);
void set_do(struct vssd *v, struct session *s);
void set_backup_complete(struct vssd *v, struct session *s);
/* A cluster participant's local part (docs/cluster.md §11): each ends with ops->call_done. */
void set_cluster_prepare(struct vssd *v, struct session *s);    /* from IDLE: BeginPrepare .. EndPrepare */
void set_cluster_freeze(struct vssd *v, struct session *s);     /* Freeze, PreCommitSnapshots */
void set_cluster_commit(struct vssd *v, struct session *s);     /* CommitSnapshots .. PostSnapshot */
/* Now: whatever runs is cancelled, the writers get Abort, the providers AbortSnapshots. */
void set_cluster_abort(struct vssd *v, struct session *s, vss_hresult hr, const char *detail);
/* The coordinator's DoSnapshotSet: CREATING until the protocol reports (then call_done). */
void set_cluster_coordinate(struct vssd *v, struct session *s);
void set_cluster_coordinated(struct vssd *v, struct session *s, vss_hresult hr, const char *detail);
void set_abort_backup(struct vssd *v, struct session *s);
void set_restore(struct vssd *v, struct session *s, enum vss_event ev);   /* s->restore_components */
/* The requester is gone: abort what is not done, BackupShutdown, then ops->released (perhaps later,
 * when the provider calls in flight end). */
void set_release(struct vssd *v, struct session *s);
/* A call of the session is in progress. */
bool set_busy(const struct session *s);
bool set_writer_selected(struct session *s, struct writer *w);
/* What writers and providers report. */
void set_writer_done(struct vssd *v, struct session *s, struct writer *w, enum vss_event ev);
void set_freeze_expired(struct vssd *v, struct session *s, struct writer *w);
void set_provider_done(struct vssd *v, struct session *s, enum prov_op op, const char *provider_name, vss_hresult hr,
                       const char *error, const struct vss_provider_snapshot *snaps, size_t n);
/* The set's volumes of the provider of vols[first], in set order, into ret_snaps (room for
 * VSS_MAX_VOLUMES_PER_SET); 0 when an earlier volume has that provider.  Walking first over
 * 0..n_vols-1 yields each provider once, however the list interleaves them ([A, B, A]). */
size_t set_provider_group(const struct set_volume *vols, size_t n_vols, size_t first,
                          struct vss_provider_snapshot *ret_snaps);
