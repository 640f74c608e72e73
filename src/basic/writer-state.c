/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "basic/writer-state.h"

enum vss_writer_state writer_state_failed_at(enum vss_event event)
{
        switch (event) {
        case VSS_EVENT_IDENTIFY:
                return VSS_WS_FAILED_AT_IDENTIFY;
        case VSS_EVENT_PREPARE_BACKUP:
                return VSS_WS_FAILED_AT_PREPARE_BACKUP;
        case VSS_EVENT_PREPARE_SNAPSHOT:
                return VSS_WS_FAILED_AT_PREPARE_SNAPSHOT;
        case VSS_EVENT_FREEZE:
                return VSS_WS_FAILED_AT_FREEZE;
        case VSS_EVENT_THAW:
                return VSS_WS_FAILED_AT_THAW;
        case VSS_EVENT_POST_SNAPSHOT:
                return VSS_WS_FAILED_AT_POST_SNAPSHOT;
        case VSS_EVENT_BACKUP_COMPLETE:
                return VSS_WS_FAILED_AT_BACKUP_COMPLETE;
        case VSS_EVENT_BACKUP_SHUTDOWN:
                return VSS_WS_FAILED_AT_BACKUPSHUTDOWN;
        case VSS_EVENT_PRE_RESTORE:
                return VSS_WS_FAILED_AT_PRE_RESTORE;
        case VSS_EVENT_POST_RESTORE:
                return VSS_WS_FAILED_AT_POST_RESTORE;
        default:
                return VSS_WS_UNKNOWN;
        }
}

bool writer_state_is_failed(enum vss_writer_state s)
{
        return s >= VSS_WS_FAILED_AT_IDENTIFY && s < VSS_WS_COUNT;
}

enum vss_writer_state writer_state_after(enum vss_writer_state cur, enum vss_event event, bool success)
{
        if (!success && event != VSS_EVENT_ABORT)
                return writer_state_failed_at(event);

        switch (event) {
        case VSS_EVENT_IDENTIFY:
                /* Identify outside a sequence shows a writer as it is, failed or not. */
                return cur == VSS_WS_UNKNOWN ? VSS_WS_STABLE : cur;
        case VSS_EVENT_PREPARE_BACKUP:
        case VSS_EVENT_PRE_RESTORE:
        case VSS_EVENT_POST_RESTORE:
                /* A new sequence starts here: a failure of the last one is forgotten. */
                return VSS_WS_STABLE;
        case VSS_EVENT_PREPARE_SNAPSHOT:
                return VSS_WS_WAITING_FOR_FREEZE;
        case VSS_EVENT_FREEZE:
                return VSS_WS_WAITING_FOR_THAW;
        case VSS_EVENT_THAW:
                return VSS_WS_WAITING_FOR_POST_SNAPSHOT;
        case VSS_EVENT_POST_SNAPSHOT:
                return VSS_WS_WAITING_FOR_BACKUP_COMPLETE;
        case VSS_EVENT_BACKUP_COMPLETE:
                return VSS_WS_STABLE;
        case VSS_EVENT_ABORT:
                return writer_state_is_failed(cur) ? cur : VSS_WS_STABLE;
        case VSS_EVENT_BACKUP_SHUTDOWN:
                return cur;
        default:
                return cur;
        }
}
