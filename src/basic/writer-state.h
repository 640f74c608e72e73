/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The writer state machine of vss-facts 3.2, as a pure function so that the
 * daemon and the unit tests share one definition.
 *
 *   STABLE --PrepareForBackup--> STABLE --PrepareForSnapshot--> WAITING_FOR_FREEZE
 *     --Freeze--> WAITING_FOR_THAW --Thaw--> WAITING_FOR_POST_SNAPSHOT
 *     --PostSnapshot--> WAITING_FOR_BACKUP_COMPLETE --BackupComplete--> STABLE
 *
 * A failure at event E moves to FAILED_AT_E.  Identify, BackupShutdown and
 * Abort leave a failed state as it is (the admin must see why a backup
 * failed); Abort returns a writer in the middle of a sequence to STABLE.
 */

#include <stdbool.h>

#include "vss/vss.h"

/* The state after 'event' was delivered to a writer in state 'cur' with result 'success'. */
enum vss_writer_state writer_state_after(enum vss_writer_state cur, enum vss_event event, bool success);
/* The FAILED_AT_* state of an event (VSS_WS_UNKNOWN for Abort, which cannot fail). */
enum vss_writer_state writer_state_failed_at(enum vss_event event);
bool writer_state_is_failed(enum vss_writer_state s);
