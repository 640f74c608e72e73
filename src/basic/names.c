/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Names of events and writer states, as printed by vssadmin and used on the wire. */

#include <stdlib.h>

#include "basic/macro.h"
#include "vss/vss.h"

static const char *const event_names[_VSS_EVENT_MAX] = {
        [VSS_EVENT_IDENTIFY] = "Identify",
        [VSS_EVENT_PREPARE_BACKUP] = "PrepareForBackup",
        [VSS_EVENT_PREPARE_SNAPSHOT] = "PrepareForSnapshot",
        [VSS_EVENT_FREEZE] = "Freeze",
        [VSS_EVENT_THAW] = "Thaw",
        [VSS_EVENT_POST_SNAPSHOT] = "PostSnapshot",
        [VSS_EVENT_BACKUP_COMPLETE] = "BackupComplete",
        [VSS_EVENT_ABORT] = "Abort",
        [VSS_EVENT_BACKUP_SHUTDOWN] = "BackupShutdown",
        [VSS_EVENT_PRE_RESTORE] = "PreRestore",
        [VSS_EVENT_POST_RESTORE] = "PostRestore",
};

const char *vss_event_name(enum vss_event e)
{
        if ((unsigned)e >= _VSS_EVENT_MAX)
                return "Unknown";
        return event_names[e];
}

int vss_event_from_name(const char *name)
{
        if (!name)
                return -1;
        for (int i = 0; i < _VSS_EVENT_MAX; i++)
                if (streq(event_names[i], name))
                        return i;
        return -1;
}

static const char *const state_names[VSS_WS_COUNT] = {
        [VSS_WS_UNKNOWN] = "VSS_WS_UNKNOWN",
        [VSS_WS_STABLE] = "VSS_WS_STABLE",
        [VSS_WS_WAITING_FOR_FREEZE] = "VSS_WS_WAITING_FOR_FREEZE",
        [VSS_WS_WAITING_FOR_THAW] = "VSS_WS_WAITING_FOR_THAW",
        [VSS_WS_WAITING_FOR_POST_SNAPSHOT] = "VSS_WS_WAITING_FOR_POST_SNAPSHOT",
        [VSS_WS_WAITING_FOR_BACKUP_COMPLETE] = "VSS_WS_WAITING_FOR_BACKUP_COMPLETE",
        [VSS_WS_FAILED_AT_IDENTIFY] = "VSS_WS_FAILED_AT_IDENTIFY",
        [VSS_WS_FAILED_AT_PREPARE_BACKUP] = "VSS_WS_FAILED_AT_PREPARE_BACKUP",
        [VSS_WS_FAILED_AT_PREPARE_SNAPSHOT] = "VSS_WS_FAILED_AT_PREPARE_SNAPSHOT",
        [VSS_WS_FAILED_AT_FREEZE] = "VSS_WS_FAILED_AT_FREEZE",
        [VSS_WS_FAILED_AT_THAW] = "VSS_WS_FAILED_AT_THAW",
        [VSS_WS_FAILED_AT_POST_SNAPSHOT] = "VSS_WS_FAILED_AT_POST_SNAPSHOT",
        [VSS_WS_FAILED_AT_BACKUP_COMPLETE] = "VSS_WS_FAILED_AT_BACKUP_COMPLETE",
        [VSS_WS_FAILED_AT_PRE_RESTORE] = "VSS_WS_FAILED_AT_PRE_RESTORE",
        [VSS_WS_FAILED_AT_POST_RESTORE] = "VSS_WS_FAILED_AT_POST_RESTORE",
        [VSS_WS_FAILED_AT_BACKUPSHUTDOWN] = "VSS_WS_FAILED_AT_BACKUPSHUTDOWN",
};

/* The architecture brief fixes these words; 2..4 follow the enum's meaning. */
static const char *const state_labels[VSS_WS_COUNT] = {
        [VSS_WS_UNKNOWN] = "[0] Unknown",
        [VSS_WS_STABLE] = "[1] Stable",
        [VSS_WS_WAITING_FOR_FREEZE] = "[2] Waiting for freeze",
        [VSS_WS_WAITING_FOR_THAW] = "[3] Waiting for thaw",
        [VSS_WS_WAITING_FOR_POST_SNAPSHOT] = "[4] Waiting for post snapshot",
        [VSS_WS_WAITING_FOR_BACKUP_COMPLETE] = "[5] Waiting for completion",
        [VSS_WS_FAILED_AT_IDENTIFY] = "[6] Failed",
        [VSS_WS_FAILED_AT_PREPARE_BACKUP] = "[7] Failed",
        [VSS_WS_FAILED_AT_PREPARE_SNAPSHOT] = "[8] Failed",
        [VSS_WS_FAILED_AT_FREEZE] = "[9] Failed",
        [VSS_WS_FAILED_AT_THAW] = "[10] Failed",
        [VSS_WS_FAILED_AT_POST_SNAPSHOT] = "[11] Failed",
        [VSS_WS_FAILED_AT_BACKUP_COMPLETE] = "[12] Failed",
        [VSS_WS_FAILED_AT_PRE_RESTORE] = "[13] Failed",
        [VSS_WS_FAILED_AT_POST_RESTORE] = "[14] Failed",
        [VSS_WS_FAILED_AT_BACKUPSHUTDOWN] = "[15] Failed",
};

const char *vss_writer_state_label(enum vss_writer_state s)
{
        if ((unsigned)s >= VSS_WS_COUNT)
                return "[0] Unknown";
        return state_labels[s];
}

const char *vss_writer_state_name(enum vss_writer_state s)
{
        if ((unsigned)s >= VSS_WS_COUNT)
                return "VSS_WS_UNKNOWN";
        return state_names[s];
}

const char *vss_default_socket_path(void)
{
        const char *e = getenv("VSS_SOCKET");
        return e && *e ? e : "/run/openvss/vssd.sock";
}
