/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The error catalogue: every HRESULT openvss can report, with its value,
 * symbolic name, meaning and what an admin should do about it.  Values and
 * names are those of vss-facts section 2 (vsserror.h); never renumber one.
 * This table is the only place where these words live: the daemon, libvss,
 * vssadmin explain and every tool print from it.
 */

#include <ctype.h>
#include <stdio.h>
#include <strings.h>

#include "basic/macro.h"
#include "vss/vss.h"

#define RETRY_10MIN "This can be transient: wait ten minutes and repeat the operation, up to three times. " \
                    "If it persists, read `vssadmin list events` for the provider's own reason."
#define ASR "Automated System Recovery is not part of openvss; the code is listed for completeness."

static const struct vss_hresult_info table[] = {
        { VSS_S_OK, "S_OK", "The operation succeeded.", "Nothing to do." },
        { VSS_S_FALSE, "S_FALSE", "The operation succeeded with nothing to do.", "Nothing to do." },
        { VSS_E_FAIL, "E_FAIL", "Unspecified failure.",
          "Read `vssadmin list events` and the daemon's journal for the cause." },
        { VSS_E_OUTOFMEMORY, "E_OUTOFMEMORY", "Out of memory or other system resources.",
          "Free memory or reduce load, then retry." },
        { VSS_E_INVALIDARG, "E_INVALIDARG", "One of the parameters is not valid.",
          "Check the command line or the request: the detail names the bad parameter." },
        { VSS_E_ACCESSDENIED, "E_ACCESSDENIED", "The caller is not allowed to do this.",
          "Run the command as root or as a member of the group vssd.conf names for it "
          "(admin_group, writer_group; vssd.conf(5))." },
        { VSS_E_NOTIMPL, "E_NOTIMPL", "The operation is not implemented.",
          "Use another provider or operation." },
        { VSS_E_ABORT, "E_ABORT", "The operation was aborted.", "Retry the operation." },

        { VSS_E_BAD_STATE, "VSS_E_BAD_STATE",
          "A call was made in the wrong state or out of the backup sequence.",
          "The requester called the steps out of order (or reused a finished session). Start a new "
          "session: GatherWriterMetadata, StartSnapshotSet, AddToSnapshotSet, PrepareForBackup, DoSnapshotSet." },
        { VSS_E_UNEXPECTED, "VSS_E_UNEXPECTED", "An unexpected error occurred in the shadow copy service.",
          "Read `vssadmin list events`; restart vssd if the service is wedged." },
        { VSS_E_PROVIDER_ALREADY_REGISTERED, "VSS_E_PROVIDER_ALREADY_REGISTERED",
          "The provider is already registered.", "Nothing to do." },
        { VSS_E_PROVIDER_NOT_REGISTERED, "VSS_E_PROVIDER_NOT_REGISTERED",
          "The provider is not registered.", "Check `vssadmin list providers` for the provider's id." },
        { VSS_E_PROVIDER_VETO, "VSS_E_PROVIDER_VETO",
          "The provider failed to create or handle the shadow copy and logged why.", RETRY_10MIN },
        { VSS_E_PROVIDER_IN_USE, "VSS_E_PROVIDER_IN_USE", "The provider is in use.",
          "Wait until the shadow copies it manages are deleted." },
        { VSS_E_OBJECT_NOT_FOUND, "VSS_E_OBJECT_NOT_FOUND",
          "The object (volume, shadow copy, writer or storage association) was not found.",
          "Check the name: a volume is a mounted filesystem or btrfs subvolume (`vssadmin list volumes`), "
          "a shadow copy an id from `vssadmin list shadows`." },
        { VSS_S_ASYNC_PENDING, "VSS_S_ASYNC_PENDING", "The asynchronous operation is still running.",
          "This is a success code: wait for the operation to finish." },
        { VSS_S_ASYNC_FINISHED, "VSS_S_ASYNC_FINISHED", "The asynchronous operation completed.", "Nothing to do." },
        { VSS_S_ASYNC_CANCELLED, "VSS_S_ASYNC_CANCELLED", "The asynchronous operation was cancelled.",
          "Nothing to do." },
        { VSS_E_VOLUME_NOT_SUPPORTED, "VSS_E_VOLUME_NOT_SUPPORTED",
          "Shadow copying this volume is not supported: no provider supports it.",
          "Use a btrfs volume, or create an openvss copy-on-write volume (`vssadmin create volume`); "
          "`vssadmin list volumes` shows which volumes can be shadowed." },
        { VSS_E_OBJECT_ALREADY_EXISTS, "VSS_E_OBJECT_ALREADY_EXISTS",
          "The object already exists (for example a storage association or a volume already in the set).",
          "Use the existing object, or delete it first." },
        { VSS_E_VOLUME_NOT_SUPPORTED_BY_PROVIDER, "VSS_E_VOLUME_NOT_SUPPORTED_BY_PROVIDER",
          "The given provider does not support this volume.",
          "Let openvss choose the provider, or name one that supports the volume." },
        { VSS_E_UNEXPECTED_PROVIDER_ERROR, "VSS_E_UNEXPECTED_PROVIDER_ERROR",
          "The provider returned an unexpected error.", RETRY_10MIN },
        { VSS_E_CORRUPT_XML_DOCUMENT, "VSS_E_CORRUPT_XML_DOCUMENT", "The metadata document is corrupt.",
          "Re-create the backup metadata." },
        { VSS_E_INVALID_XML_DOCUMENT, "VSS_E_INVALID_XML_DOCUMENT", "The metadata document is not valid.",
          "Re-create the backup metadata." },
        { VSS_E_MAXIMUM_NUMBER_OF_VOLUMES_REACHED, "VSS_E_MAXIMUM_NUMBER_OF_VOLUMES_REACHED",
          "The shadow copy set already holds the maximum of 64 volumes.",
          "Split the volumes over several snapshot sets." },
        { VSS_E_FLUSH_WRITES_TIMEOUT, "VSS_E_FLUSH_WRITES_TIMEOUT",
          "The system could not flush the writes of a volume in time.",
          "A volume had too much dirty data or slow storage. " RETRY_10MIN },
        { VSS_E_HOLD_WRITES_TIMEOUT, "VSS_E_HOLD_WRITES_TIMEOUT",
          "The system could not hold writes for the shadow copy within 10 seconds.",
          "The provider's commit was too slow; reduce I/O load. " RETRY_10MIN },
        { VSS_E_UNEXPECTED_WRITER_ERROR, "VSS_E_UNEXPECTED_WRITER_ERROR",
          "An unexpected error occurred while sending events to writers.",
          "Read `vssadmin list events`; check the writers with `vssadmin list writers`." },
        { VSS_E_SNAPSHOT_SET_IN_PROGRESS, "VSS_E_SNAPSHOT_SET_IN_PROGRESS",
          "Another shadow copy creation is already in progress.",
          "Only one snapshot set is created at a time. Retry when the other finishes, "
          "serialize your backup jobs, or use `vssadmin create shadow /autoretry=MINUTES`." },
        { VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED, "VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED",
          "The volume already has the maximum of 512 shadow copies.",
          "Delete old shadow copies: `vssadmin delete shadows /for=VOLUME /oldest`." },
        { VSS_E_WRITER_INFRASTRUCTURE, "VSS_E_WRITER_INFRASTRUCTURE",
          "The writer infrastructure is not operating properly: vssd cannot be reached or failed.",
          "Check that vssd runs (`systemctl status openvss-vssd`) and that VSS_SOCKET names its socket." },
        { VSS_E_WRITER_NOT_RESPONDING, "VSS_E_WRITER_NOT_RESPONDING",
          "A writer is not responding.",
          "The writer's process died or hung. Restart the application that hosts it; "
          "it returns with a new instance id and state [1] Stable." },
        { VSS_E_WRITER_ALREADY_SUBSCRIBED, "VSS_E_WRITER_ALREADY_SUBSCRIBED",
          "The writer is already subscribed.", "Subscribe once per writer object." },
        { VSS_E_UNSUPPORTED_CONTEXT, "VSS_E_UNSUPPORTED_CONTEXT",
          "The shadow copy context is not supported.", "Use a context from vss-facts (e.g. 0 for backup)." },
        { VSS_E_VOLUME_IN_USE, "VSS_E_VOLUME_IN_USE",
          "The storage association or volume is in use and cannot be removed.",
          "Delete the volume's shadow copies first (`vssadmin delete shadows /for=VOLUME /all`)." },
        { VSS_E_MAXIMUM_DIFFAREA_ASSOCIATIONS_REACHED, "VSS_E_MAXIMUM_DIFFAREA_ASSOCIATIONS_REACHED",
          "The volume already has the maximum number of shadow storage associations.",
          "Resize or delete the existing association." },
        { VSS_E_INSUFFICIENT_STORAGE, "VSS_E_INSUFFICIENT_STORAGE",
          "There is not enough storage for the shadow copy's diff area.",
          "Add or resize shadow storage on another volume with free space: "
          "`vssadmin add shadowstorage /for=VOL /on=OTHERVOL /maxsize=SIZE` or "
          "`vssadmin resize shadowstorage ...`; keep at least 320 MB (and about 10 %) free there; "
          "delete old shadow copies." },
        { VSS_E_NO_SNAPSHOTS_IMPORTED, "VSS_E_NO_SNAPSHOTS_IMPORTED", "No shadow copies were imported.",
          "Check the backup components document and the storage." },
        { VSS_S_SOME_SNAPSHOTS_NOT_IMPORTED, "VSS_S_SOME_SNAPSHOTS_NOT_IMPORTED",
          "Some shadow copies were not imported.", "Check the storage of the missing ones." },
        { VSS_E_SOME_SNAPSHOTS_NOT_IMPORTED, "VSS_E_SOME_SNAPSHOTS_NOT_IMPORTED",
          "Some shadow copies were not imported.", "Check the storage of the missing ones." },
        { VSS_E_MAXIMUM_NUMBER_OF_REMOTE_MACHINES_REACHED, "VSS_E_MAXIMUM_NUMBER_OF_REMOTE_MACHINES_REACHED",
          "Too many remote machines.", "Reduce the number of remote machines in the set." },
        { VSS_E_REMOTE_SERVER_UNAVAILABLE, "VSS_E_REMOTE_SERVER_UNAVAILABLE",
          "The remote server is unavailable.", "Check the network and the remote service." },
        { VSS_E_REMOTE_SERVER_UNSUPPORTED, "VSS_E_REMOTE_SERVER_UNSUPPORTED",
          "The remote server does not support this.", "Use a local volume." },
        { VSS_E_REVERT_IN_PROGRESS, "VSS_E_REVERT_IN_PROGRESS", "A revert is in progress for the volume.",
          "Wait for the revert to finish." },
        { VSS_E_REVERT_VOLUME_LOST, "VSS_E_REVERT_VOLUME_LOST", "The volume was lost during a revert.",
          "Restore the volume from backup." },
        { VSS_E_REBOOT_REQUIRED, "VSS_E_REBOOT_REQUIRED", "The provider needs a restart of the machine.",
          "Reboot, then retry." },
        { VSS_E_TRANSACTION_FREEZE_TIMEOUT, "VSS_E_TRANSACTION_FREEZE_TIMEOUT",
          "Timed out freezing a transaction manager.", RETRY_10MIN },
        { VSS_E_TRANSACTION_THAW_TIMEOUT, "VSS_E_TRANSACTION_THAW_TIMEOUT",
          "Too much time passed between freezing and thawing a transaction manager.", RETRY_10MIN },
        { VSS_E_UNSELECTED_VOLUME, "VSS_E_UNSELECTED_VOLUME",
          "The operation would overwrite a volume that was not selected.", "Select the volume explicitly." },
        { VSS_E_SNAPSHOT_NOT_IN_SET, "VSS_E_SNAPSHOT_NOT_IN_SET",
          "The shadow copy id is not in the snapshot set.", "Use an id of this set." },
        { VSS_E_NESTED_VOLUME_LIMIT, "VSS_E_NESTED_VOLUME_LIMIT",
          "The volume is nested too deeply (an image on an image on ...).",
          "Shadow the outer volume instead." },
        { VSS_E_VOLUME_NOT_LOCAL, "VSS_E_VOLUME_NOT_LOCAL", "The volume is not mounted on this machine.",
          "Shadow local volumes only." },
        { VSS_E_CLUSTER_TIMEOUT, "VSS_E_CLUSTER_TIMEOUT", "Timed out preparing a cluster volume.", RETRY_10MIN },
        { VSS_E_NOT_SUPPORTED, "VSS_E_NOT_SUPPORTED", "The operation is not supported.",
          "Check the command against `vssadmin` help and docs/protocol.md." },
        { VSS_E_WRITERERROR_PARTIAL_FAILURE, "VSS_E_WRITERERROR_PARTIAL_FAILURE",
          "The writer failed for some components; see the component errors.",
          "Read the writer's failure message and retry the failed components." },
        { VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT, "VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT",
          "The shadow copy set holds only some of the volumes the writer needs.",
          "Add the writer's other volumes to the set (`vssadmin list writers --json` shows them), "
          "or exclude the writer (vshadow -wx=WRITER)." },
        { VSS_E_WRITERERROR_OUTOFRESOURCES, "VSS_E_WRITERERROR_OUTOFRESOURCES",
          "The writer ran out of resources (memory, handles, disk).",
          "Reduce system load, then retry; wait ten minutes and retry up to three times." },
        { VSS_E_WRITERERROR_TIMEOUT, "VSS_E_WRITERERROR_TIMEOUT",
          "The writer's timeout expired between the Freeze and Thaw events.",
          "Raise the writer's freeze timeout (vsswriter --freeze-timeout, or freeze_timeout in vssd.conf), "
          "reduce load during backups, and look for on-access virus scanners slowing the freeze; "
          "then retry." },
        { VSS_E_WRITERERROR_RETRYABLE, "VSS_E_WRITERERROR_RETRYABLE",
          "The writer failed with a transient error; a retry may succeed.",
          "Retry the backup. If the writer keeps failing, restart the service that hosts it." },
        { VSS_E_WRITERERROR_NONRETRYABLE, "VSS_E_WRITERERROR_NONRETRYABLE",
          "The writer failed with an error that is likely to recur.",
          "Restart the writer's service (its application): the writer registers again with a new "
          "instance id and returns to [1] Stable. Read the writer's message and the application's log." },
        { VSS_E_WRITERERROR_RECOVERY_FAILED, "VSS_E_WRITERERROR_RECOVERY_FAILED",
          "The writer failed to recover the shadow copy volume.", "Read the writer's log; retry." },
        { VSS_E_BREAK_REVERT_ID_FAILED, "VSS_E_BREAK_REVERT_ID_FAILED",
          "Breaking the set failed: disk identities could not be reverted.", "Retry the break." },
        { VSS_E_LEGACY_PROVIDER, "VSS_E_LEGACY_PROVIDER", "The provider is too old for this operation.",
          "Update the provider." },
        { VSS_E_MISSING_DISK, "VSS_E_MISSING_DISK", "An expected disk did not arrive.", "Check the storage." },
        { VSS_E_MISSING_HIDDEN_VOLUME, "VSS_E_MISSING_HIDDEN_VOLUME", "An expected hidden volume did not arrive.",
          "Check the storage." },
        { VSS_E_MISSING_VOLUME, "VSS_E_MISSING_VOLUME", "An expected volume did not arrive.", "Check the storage." },
        { VSS_E_AUTORECOVERY_FAILED, "VSS_E_AUTORECOVERY_FAILED", "Auto-recovery of the shadow copy failed.",
          "Retry; read the writer's log." },
        { VSS_E_DYNAMIC_DISK_ERROR, "VSS_E_DYNAMIC_DISK_ERROR", "A dynamic disk error occurred.",
          "Check the storage." },
        { VSS_E_NONTRANSPORTABLE_BCD, "VSS_E_NONTRANSPORTABLE_BCD",
          "The backup components document is for a non-transportable set.", "Use a transportable set." },
        { VSS_E_CANNOT_REVERT_DISKID, "VSS_E_CANNOT_REVERT_DISKID", "The disk identity could not be set.",
          "Check the storage." },
        { VSS_E_RESYNC_IN_PROGRESS, "VSS_E_RESYNC_IN_PROGRESS", "A resync is already in progress.",
          "Wait for it to finish." },
        { VSS_E_CLUSTER_ERROR, "VSS_E_CLUSTER_ERROR", "Enumerating or maintaining clustered disks failed.",
          "Check the cluster." },
        { VSS_E_ASRERROR_DISK_ASSIGNMENT_FAILED, "VSS_E_ASRERROR_DISK_ASSIGNMENT_FAILED", "ASR: disk assignment failed.", ASR },
        { VSS_E_ASRERROR_DISK_RECREATION_FAILED, "VSS_E_ASRERROR_DISK_RECREATION_FAILED", "ASR: disk recreation failed.", ASR },
        { VSS_E_ASRERROR_NO_ARCPATH, "VSS_E_ASRERROR_NO_ARCPATH", "ASR: no ARC path.", ASR },
        { VSS_E_ASRERROR_MISSING_DYNDISK, "VSS_E_ASRERROR_MISSING_DYNDISK", "ASR: a dynamic disk is missing.", ASR },
        { VSS_E_ASRERROR_SHARED_CRIDISK, "VSS_E_ASRERROR_SHARED_CRIDISK", "ASR: a critical disk is shared.", ASR },
        { VSS_E_ASRERROR_DATADISK_RDISK0, "VSS_E_ASRERROR_DATADISK_RDISK0", "ASR: a data disk is rdisk0.", ASR },
        { VSS_E_ASRERROR_RDISK0_TOOSMALL, "VSS_E_ASRERROR_RDISK0_TOOSMALL", "ASR: rdisk0 is too small.", ASR },
        { VSS_E_ASRERROR_CRITICAL_DISKS_TOO_SMALL, "VSS_E_ASRERROR_CRITICAL_DISKS_TOO_SMALL",
          "ASR: critical disks are too small.", ASR },
        { VSS_E_WRITER_STATUS_NOT_AVAILABLE, "VSS_E_WRITER_STATUS_NOT_AVAILABLE",
          "The writer's status is not available (it reached its maximum of sessions).",
          "Retry later, when the system is less busy." },
        { VSS_E_ASRERROR_DYNAMIC_VHD_NOT_SUPPORTED, "VSS_E_ASRERROR_DYNAMIC_VHD_NOT_SUPPORTED",
          "ASR: dynamic VHDs are not supported.", ASR },
        { VSS_E_CRITICAL_VOLUME_ON_INVALID_DISK, "VSS_E_CRITICAL_VOLUME_ON_INVALID_DISK",
          "A critical volume is on an invalid disk.", ASR },
        { VSS_E_ASRERROR_RDISK_FOR_SYSTEM_DISK_NOT_FOUND, "VSS_E_ASRERROR_RDISK_FOR_SYSTEM_DISK_NOT_FOUND",
          "ASR: no rdisk for the system disk.", ASR },
        { VSS_E_ASRERROR_NO_PHYSICAL_DISK_AVAILABLE, "VSS_E_ASRERROR_NO_PHYSICAL_DISK_AVAILABLE",
          "ASR: no physical disk available.", ASR },
        { VSS_E_ASRERROR_FIXED_PHYSICAL_DISK_AVAILABLE_AFTER_DISK_EXCLUSION,
          "VSS_E_ASRERROR_FIXED_PHYSICAL_DISK_AVAILABLE_AFTER_DISK_EXCLUSION",
          "ASR: a fixed disk is available after disk exclusion.", ASR },
        { VSS_E_ASRERROR_CRITICAL_DISK_CANNOT_BE_EXCLUDED, "VSS_E_ASRERROR_CRITICAL_DISK_CANNOT_BE_EXCLUDED",
          "ASR: a critical disk cannot be excluded.", ASR },
        { VSS_E_ASRERROR_SYSTEM_PARTITION_HIDDEN, "VSS_E_ASRERROR_SYSTEM_PARTITION_HIDDEN",
          "ASR: the system partition is hidden.", ASR },
        { VSS_E_FSS_TIMEOUT, "VSS_E_FSS_TIMEOUT", "A file share shadow copy operation timed out.", RETRY_10MIN },
};

const struct vss_hresult_info *vss_hresult_table(size_t index)
{
        return index < ARRAY_SIZE(table) ? &table[index] : NULL;
}

const struct vss_hresult_info *vss_hresult_lookup(vss_hresult hr)
{
        for (size_t i = 0; i < ARRAY_SIZE(table); i++)
                if (table[i].value == hr)
                        return &table[i];
        return NULL;
}

const struct vss_hresult_info *vss_hresult_parse(const char *text)
{
        const char *p;
        char *end;
        unsigned long v;

        if (!text || !*text)
                return NULL;
        for (size_t i = 0; i < ARRAY_SIZE(table); i++)
                if (strcasecmp(table[i].name, text) == 0)
                        return &table[i];

        p = text;
        if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
                p += 2;
        if (!*p || strlen(p) > 8)
                return NULL;
        for (const char *q = p; *q; q++)
                if (!isxdigit((unsigned char)*q))
                        return NULL;
        errno = 0;
        v = strtoul(p, &end, 16);
        if (errno || *end)
                return NULL;
        return vss_hresult_lookup(VSS_HR(v));
}

const char *vss_hresult_name(vss_hresult hr)
{
        const struct vss_hresult_info *i = vss_hresult_lookup(hr);
        return i ? i->name : "UNKNOWN_HRESULT";
}

const char *vss_hresult_message(vss_hresult hr)
{
        const struct vss_hresult_info *i = vss_hresult_lookup(hr);
        return i ? i->message : "Unknown error.";
}

bool vss_hresult_is_writer_failure(vss_hresult hr)
{
        return hr >= VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT && hr <= VSS_E_WRITERERROR_NONRETRYABLE;
}

const char *vss_writer_error_label(vss_hresult hr)
{
        if (hr == VSS_S_OK)
                return "No error";
        if (hr == VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT)
                return "Inconsistent shadow copy";
        if (hr == VSS_E_WRITERERROR_OUTOFRESOURCES)
                return "Out of resources";
        if (hr == VSS_E_WRITERERROR_TIMEOUT)
                return "Timed out";
        if (hr == VSS_E_WRITERERROR_RETRYABLE)
                return "Retryable error";
        if (hr == VSS_E_WRITERERROR_NONRETRYABLE)
                return "Non-retryable error";
        if (hr == VSS_E_WRITER_NOT_RESPONDING)
                return "Not responding";
        return "Unexpected error";
}
