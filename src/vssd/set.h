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
