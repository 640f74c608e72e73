/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef VSS_VSS_H
#define VSS_VSS_H

/*
 * openvss: common types shared by the writer, requester and provider APIs.
 *
 * Every fallible call in libvss returns a vss_hresult: 0 (VSS_S_OK) or a
 * positive success code on success, a negative value (bit 31 set) on failure.
 * The values are those of Windows VSS (vsserror.h) so that an admin who knows
 * 0x80042316 recognises it here.  vss_hresult_name() and vss_hresult_message()
 * turn any value into words; the table behind them is the one catalogue used
 * by every openvss component.
 *
 * This header is C99 and has no dependencies beyond <stdint.h>/<stdbool.h>.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VSS_PROTOCOL_VERSION 1

typedef int32_t vss_hresult;

#define VSS_SUCCEEDED(hr) ((vss_hresult)(hr) >= 0)
#define VSS_FAILED(hr)    ((vss_hresult)(hr) < 0)
#define VSS_HR(x)         ((vss_hresult)(uint32_t)(x))

/* Generic COM results that VSS methods return beside their own codes. */
#define VSS_S_OK                  VSS_HR(0x00000000)
#define VSS_S_FALSE               VSS_HR(0x00000001)
#define VSS_E_FAIL                VSS_HR(0x80004005) /* E_FAIL */
#define VSS_E_OUTOFMEMORY         VSS_HR(0x8007000E) /* E_OUTOFMEMORY */
#define VSS_E_INVALIDARG          VSS_HR(0x80070057) /* E_INVALIDARG */
#define VSS_E_ACCESSDENIED        VSS_HR(0x80070005) /* E_ACCESSDENIED */
#define VSS_E_NOTIMPL             VSS_HR(0x80004001) /* E_NOTIMPL */
#define VSS_E_ABORT               VSS_HR(0x80004004) /* E_ABORT */

/* vss-facts section 2. */
#define VSS_E_BAD_STATE                              VSS_HR(0x80042301)
#define VSS_E_UNEXPECTED                             VSS_HR(0x80042302)
#define VSS_E_PROVIDER_ALREADY_REGISTERED            VSS_HR(0x80042303)
#define VSS_E_PROVIDER_NOT_REGISTERED                VSS_HR(0x80042304)
#define VSS_E_PROVIDER_VETO                          VSS_HR(0x80042306)
#define VSS_E_PROVIDER_IN_USE                        VSS_HR(0x80042307)
#define VSS_E_OBJECT_NOT_FOUND                       VSS_HR(0x80042308)
#define VSS_S_ASYNC_PENDING                          VSS_HR(0x00042309)
#define VSS_S_ASYNC_FINISHED                         VSS_HR(0x0004230A)
#define VSS_S_ASYNC_CANCELLED                        VSS_HR(0x0004230B)
#define VSS_E_VOLUME_NOT_SUPPORTED                   VSS_HR(0x8004230C)
#define VSS_E_OBJECT_ALREADY_EXISTS                  VSS_HR(0x8004230D)
#define VSS_E_VOLUME_NOT_SUPPORTED_BY_PROVIDER       VSS_HR(0x8004230E)
#define VSS_E_UNEXPECTED_PROVIDER_ERROR              VSS_HR(0x8004230F)
#define VSS_E_CORRUPT_XML_DOCUMENT                   VSS_HR(0x80042310)
#define VSS_E_INVALID_XML_DOCUMENT                   VSS_HR(0x80042311)
#define VSS_E_MAXIMUM_NUMBER_OF_VOLUMES_REACHED      VSS_HR(0x80042312)
#define VSS_E_FLUSH_WRITES_TIMEOUT                   VSS_HR(0x80042313)
#define VSS_E_HOLD_WRITES_TIMEOUT                    VSS_HR(0x80042314)
#define VSS_E_UNEXPECTED_WRITER_ERROR                VSS_HR(0x80042315)
#define VSS_E_SNAPSHOT_SET_IN_PROGRESS               VSS_HR(0x80042316)
#define VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED    VSS_HR(0x80042317)
#define VSS_E_WRITER_INFRASTRUCTURE                  VSS_HR(0x80042318)
#define VSS_E_WRITER_NOT_RESPONDING                  VSS_HR(0x80042319)
#define VSS_E_WRITER_ALREADY_SUBSCRIBED              VSS_HR(0x8004231A)
#define VSS_E_UNSUPPORTED_CONTEXT                    VSS_HR(0x8004231B)
#define VSS_E_VOLUME_IN_USE                          VSS_HR(0x8004231D)
#define VSS_E_MAXIMUM_DIFFAREA_ASSOCIATIONS_REACHED  VSS_HR(0x8004231E)
#define VSS_E_INSUFFICIENT_STORAGE                   VSS_HR(0x8004231F)
#define VSS_E_NO_SNAPSHOTS_IMPORTED                  VSS_HR(0x80042320)
#define VSS_S_SOME_SNAPSHOTS_NOT_IMPORTED            VSS_HR(0x00042321)
#define VSS_E_SOME_SNAPSHOTS_NOT_IMPORTED            VSS_HR(0x80042321)
#define VSS_E_MAXIMUM_NUMBER_OF_REMOTE_MACHINES_REACHED VSS_HR(0x80042322)
#define VSS_E_REMOTE_SERVER_UNAVAILABLE              VSS_HR(0x80042323)
#define VSS_E_REMOTE_SERVER_UNSUPPORTED              VSS_HR(0x80042324)
#define VSS_E_REVERT_IN_PROGRESS                     VSS_HR(0x80042325)
#define VSS_E_REVERT_VOLUME_LOST                     VSS_HR(0x80042326)
#define VSS_E_REBOOT_REQUIRED                        VSS_HR(0x80042327)
#define VSS_E_TRANSACTION_FREEZE_TIMEOUT             VSS_HR(0x80042328)
#define VSS_E_TRANSACTION_THAW_TIMEOUT               VSS_HR(0x80042329)
#define VSS_E_UNSELECTED_VOLUME                      VSS_HR(0x8004232A)
#define VSS_E_SNAPSHOT_NOT_IN_SET                    VSS_HR(0x8004232B)
#define VSS_E_NESTED_VOLUME_LIMIT                    VSS_HR(0x8004232C)
#define VSS_E_VOLUME_NOT_LOCAL                       VSS_HR(0x8004232D)
#define VSS_E_CLUSTER_TIMEOUT                        VSS_HR(0x8004232E)
#define VSS_E_NOT_SUPPORTED                          VSS_HR(0x8004232F)
#define VSS_E_WRITERERROR_PARTIAL_FAILURE            VSS_HR(0x80042336)
#define VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT       VSS_HR(0x800423F0)
#define VSS_E_WRITERERROR_OUTOFRESOURCES             VSS_HR(0x800423F1)
#define VSS_E_WRITERERROR_TIMEOUT                    VSS_HR(0x800423F2)
#define VSS_E_WRITERERROR_RETRYABLE                  VSS_HR(0x800423F3)
#define VSS_E_WRITERERROR_NONRETRYABLE               VSS_HR(0x800423F4)
#define VSS_E_WRITERERROR_RECOVERY_FAILED            VSS_HR(0x800423F5)
#define VSS_E_BREAK_REVERT_ID_FAILED                 VSS_HR(0x800423F6)
#define VSS_E_LEGACY_PROVIDER                        VSS_HR(0x800423F7)
#define VSS_E_MISSING_DISK                           VSS_HR(0x800423F8)
#define VSS_E_MISSING_HIDDEN_VOLUME                  VSS_HR(0x800423F9)
#define VSS_E_MISSING_VOLUME                         VSS_HR(0x800423FA)
#define VSS_E_AUTORECOVERY_FAILED                    VSS_HR(0x800423FB)
#define VSS_E_DYNAMIC_DISK_ERROR                     VSS_HR(0x800423FC)
#define VSS_E_NONTRANSPORTABLE_BCD                   VSS_HR(0x800423FD)
#define VSS_E_CANNOT_REVERT_DISKID                   VSS_HR(0x800423FE)
#define VSS_E_RESYNC_IN_PROGRESS                     VSS_HR(0x800423FF)
#define VSS_E_CLUSTER_ERROR                          VSS_HR(0x80042400)
#define VSS_E_ASRERROR_DISK_ASSIGNMENT_FAILED        VSS_HR(0x80042401)
#define VSS_E_ASRERROR_DISK_RECREATION_FAILED        VSS_HR(0x80042402)
#define VSS_E_ASRERROR_NO_ARCPATH                    VSS_HR(0x80042403)
#define VSS_E_ASRERROR_MISSING_DYNDISK               VSS_HR(0x80042404)
#define VSS_E_ASRERROR_SHARED_CRIDISK                VSS_HR(0x80042405)
#define VSS_E_ASRERROR_DATADISK_RDISK0               VSS_HR(0x80042406)
#define VSS_E_ASRERROR_RDISK0_TOOSMALL               VSS_HR(0x80042407)
#define VSS_E_ASRERROR_CRITICAL_DISKS_TOO_SMALL      VSS_HR(0x80042408)
#define VSS_E_WRITER_STATUS_NOT_AVAILABLE            VSS_HR(0x80042409)
#define VSS_E_ASRERROR_DYNAMIC_VHD_NOT_SUPPORTED     VSS_HR(0x8004240A)
#define VSS_E_CRITICAL_VOLUME_ON_INVALID_DISK        VSS_HR(0x80042411)
#define VSS_E_ASRERROR_RDISK_FOR_SYSTEM_DISK_NOT_FOUND VSS_HR(0x80042412)
#define VSS_E_ASRERROR_NO_PHYSICAL_DISK_AVAILABLE    VSS_HR(0x80042413)
#define VSS_E_ASRERROR_FIXED_PHYSICAL_DISK_AVAILABLE_AFTER_DISK_EXCLUSION VSS_HR(0x80042414)
#define VSS_E_ASRERROR_CRITICAL_DISK_CANNOT_BE_EXCLUDED VSS_HR(0x80042415)
#define VSS_E_ASRERROR_SYSTEM_PARTITION_HIDDEN       VSS_HR(0x80042416)
#define VSS_E_FSS_TIMEOUT                            VSS_HR(0x80042417)

/* One entry of the error catalogue. */
struct vss_hresult_info {
        vss_hresult value;
        const char *name;    /* "VSS_E_SNAPSHOT_SET_IN_PROGRESS" */
        const char *message; /* one line: what happened */
        const char *remedy;  /* what an admin should do (never NULL) */
};

/* Returns the catalogue entry for 'hr', or NULL if the value is not known. */
const struct vss_hresult_info *vss_hresult_lookup(vss_hresult hr);
/* Looks an entry up by its symbolic name ("VSS_E_BAD_STATE", case-insensitive) or by
 * its value written in hex, with or without 0x ("0x80042316", "80042316"). */
const struct vss_hresult_info *vss_hresult_parse(const char *text);
/* Never NULL: unknown values give "UNKNOWN_HRESULT" / "Unknown error". */
const char *vss_hresult_name(vss_hresult hr);
const char *vss_hresult_message(vss_hresult hr);
/* Iterate the whole catalogue: returns NULL past the end. */
const struct vss_hresult_info *vss_hresult_table(size_t index);

/* Identifiers are GUIDs, printed lower-case in braces: {3f5b2c1e-0a1b-4c2d-8e3f-123456789abc}. */
typedef struct vss_id {
        uint8_t bytes[16];
} vss_id;

#define VSS_ID_STRING_MAX 39 /* 38 characters + NUL */
extern const vss_id VSS_ID_NULL;

void vss_id_generate(vss_id *ret);
/* A stable id derived from a name (a name-based UUID in the openvss namespace). */
void vss_id_from_name(const char *name, vss_id *ret);
/* Accepts the braced form and the bare 36-character form, any case. Returns
 * VSS_S_OK or VSS_E_INVALIDARG. */
vss_hresult vss_id_parse(const char *text, vss_id *ret);
/* Writes "{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}" into buf (VSS_ID_STRING_MAX bytes). */
char *vss_id_format(const vss_id *id, char buf[VSS_ID_STRING_MAX]);
bool vss_id_equal(const vss_id *a, const vss_id *b);
bool vss_id_is_null(const vss_id *id);

/* VSS_WRITER_STATE (vss-facts 1.1). */
enum vss_writer_state {
        VSS_WS_UNKNOWN = 0,
        VSS_WS_STABLE = 1,
        VSS_WS_WAITING_FOR_FREEZE = 2,
        VSS_WS_WAITING_FOR_THAW = 3,
        VSS_WS_WAITING_FOR_POST_SNAPSHOT = 4,
        VSS_WS_WAITING_FOR_BACKUP_COMPLETE = 5,
        VSS_WS_FAILED_AT_IDENTIFY = 6,
        VSS_WS_FAILED_AT_PREPARE_BACKUP = 7,
        VSS_WS_FAILED_AT_PREPARE_SNAPSHOT = 8,
        VSS_WS_FAILED_AT_FREEZE = 9,
        VSS_WS_FAILED_AT_THAW = 10,
        VSS_WS_FAILED_AT_POST_SNAPSHOT = 11,
        VSS_WS_FAILED_AT_BACKUP_COMPLETE = 12,
        VSS_WS_FAILED_AT_PRE_RESTORE = 13,
        VSS_WS_FAILED_AT_POST_RESTORE = 14,
        VSS_WS_FAILED_AT_BACKUPSHUTDOWN = 15,
        VSS_WS_COUNT = 16,
};

/* The events the service sends to writers. */
enum vss_event {
        VSS_EVENT_IDENTIFY,
        VSS_EVENT_PREPARE_BACKUP,
        VSS_EVENT_PREPARE_SNAPSHOT,
        VSS_EVENT_FREEZE,
        VSS_EVENT_THAW,
        VSS_EVENT_POST_SNAPSHOT,
        VSS_EVENT_BACKUP_COMPLETE,
        VSS_EVENT_ABORT,
        VSS_EVENT_BACKUP_SHUTDOWN,
        VSS_EVENT_PRE_RESTORE,
        VSS_EVENT_POST_RESTORE,
        _VSS_EVENT_MAX,
};

/* "Identify", "PrepareForBackup", "PrepareForSnapshot", "Freeze", "Thaw",
 * "PostSnapshot", "BackupComplete", "Abort", "BackupShutdown", "PreRestore",
 * "PostRestore" -- the names used on the wire and in VSS_EVENT. */
const char *vss_event_name(enum vss_event e);
/* Returns -1 for an unknown name. */
int vss_event_from_name(const char *name);

/* "[1] Stable", "[9] Failed", ... exactly as `vssadmin list writers` prints them. */
const char *vss_writer_state_label(enum vss_writer_state s);
/* "VSS_WS_STABLE", ... */
const char *vss_writer_state_name(enum vss_writer_state s);
/* "No error", "Timed out", ... for a writer's last error (vss-facts 1.2). */
const char *vss_writer_error_label(vss_hresult hr);
/* True for the five codes SetWriterFailure accepts (0x800423F0..F4). */
bool vss_hresult_is_writer_failure(vss_hresult hr);

/* VSS_SNAPSHOT_CONTEXT (vss-facts 5.2). */
enum vss_snapshot_context {
        VSS_CTX_BACKUP = 0x00,
        VSS_CTX_FILE_SHARE_BACKUP = 0x10,
        VSS_CTX_NAS_ROLLBACK = 0x19,
        VSS_CTX_APP_ROLLBACK = 0x09,
        VSS_CTX_CLIENT_ACCESSIBLE = 0x1D,
        VSS_CTX_CLIENT_ACCESSIBLE_WRITERS = 0x0D,
        VSS_CTX_ALL = (int)0xFFFFFFFF,
};

/* VSS_VOLUME_SNAPSHOT_ATTRIBUTES (vss-facts 5.3). */
enum {
        VSS_VOLSNAP_ATTR_PERSISTENT = 0x1,
        VSS_VOLSNAP_ATTR_NO_AUTORECOVERY = 0x2,
        VSS_VOLSNAP_ATTR_CLIENT_ACCESSIBLE = 0x4,
        VSS_VOLSNAP_ATTR_NO_AUTO_RELEASE = 0x8,
        VSS_VOLSNAP_ATTR_NO_WRITERS = 0x10,
        VSS_VOLSNAP_ATTR_TRANSPORTABLE = 0x20,
        VSS_VOLSNAP_ATTR_NOT_SURFACED = 0x40,
        VSS_VOLSNAP_ATTR_NOT_TRANSACTED = 0x80,
        VSS_VOLSNAP_ATTR_HARDWARE_ASSISTED = 0x10000,
        VSS_VOLSNAP_ATTR_DIFFERENTIAL = 0x20000,
        VSS_VOLSNAP_ATTR_PLEX = 0x40000,
        VSS_VOLSNAP_ATTR_IMPORTED = 0x80000,
        VSS_VOLSNAP_ATTR_EXPOSED_LOCALLY = 0x100000,
        VSS_VOLSNAP_ATTR_EXPOSED_REMOTELY = 0x200000,
        VSS_VOLSNAP_ATTR_AUTORECOVER = 0x400000,
        VSS_VOLSNAP_ATTR_ROLLBACK_RECOVERY = 0x800000,
        VSS_VOLSNAP_ATTR_DELAYED_POSTSNAPSHOT = 0x1000000,
        VSS_VOLSNAP_ATTR_TXF_RECOVERY = 0x2000000,
        VSS_VOLSNAP_ATTR_FILE_SHARE = 0x4000000,
};

/* VSS_PROVIDER_TYPE. */
enum vss_provider_type {
        VSS_PROV_UNKNOWN = 0,
        VSS_PROV_SYSTEM = 1,
        VSS_PROV_SOFTWARE = 2,
        VSS_PROV_HARDWARE = 3,
        VSS_PROV_FILESHARE = 4,
};

/* VSS_COMPONENT_TYPE. */
enum vss_component_type {
        VSS_CT_UNDEFINED = 0,
        VSS_CT_DATABASE = 1,
        VSS_CT_FILEGROUP = 2,
};

/* VSS_USAGE_TYPE / VSS_SOURCE_TYPE. */
enum vss_usage_type {
        VSS_UT_UNDEFINED = 0,
        VSS_UT_BOOTABLESYSTEMSTATE = 1,
        VSS_UT_SYSTEMSERVICE = 2,
        VSS_UT_USERDATA = 3,
        VSS_UT_OTHER = 4,
};

enum vss_source_type {
        VSS_ST_UNDEFINED = 0,
        VSS_ST_TRANSACTEDDB = 1,
        VSS_ST_NONTRANSACTEDDB = 2,
        VSS_ST_OTHER = 3,
};

/* VSS_BACKUP_TYPE. */
enum vss_backup_type {
        VSS_BT_UNDEFINED = 0,
        VSS_BT_FULL = 1,
        VSS_BT_INCREMENTAL = 2,
        VSS_BT_DIFFERENTIAL = 3,
        VSS_BT_LOG = 4,
        VSS_BT_COPY = 5,
        VSS_BT_OTHER = 6,
};

/* VSS_RESTOREMETHOD_ENUM, VSS_WRITERRESTORE_ENUM, VSS_FILE_RESTORE_STATUS (vss-facts 5.4). */
enum vss_restore_method_type {
        VSS_RME_UNDEFINED = 0,
        VSS_RME_RESTORE_IF_NOT_THERE = 1,
        VSS_RME_RESTORE_IF_CAN_REPLACE = 2,
        VSS_RME_STOP_RESTORE_START = 3,
        VSS_RME_RESTORE_TO_ALTERNATE_LOCATION = 4,
        VSS_RME_RESTORE_AT_REBOOT = 5,
        VSS_RME_RESTORE_AT_REBOOT_IF_CANNOT_REPLACE = 6,
        VSS_RME_CUSTOM = 7,
        VSS_RME_RESTORE_STOP_START = 8,
};

enum vss_writer_restore_type {
        VSS_WRE_UNDEFINED = 0,
        VSS_WRE_NEVER = 1,
        VSS_WRE_IF_REPLACE_FAILS = 2,
        VSS_WRE_ALWAYS = 3,
};

enum vss_file_restore_status {
        VSS_RS_UNDEFINED = 0,
        VSS_RS_NONE = 1,
        VSS_RS_ALL = 2,
        VSS_RS_FAILED = 3,
};

/*
 * The wire names of these enums (lower case): "restore_if_not_there", "restore_if_can_replace",
 * "stop_restore_start", "restore_to_alternate_location", "restore_at_reboot",
 * "restore_at_reboot_if_cannot_replace", "custom", "restore_stop_start", "undefined";
 * writer restore "never", "if_replace_fails", "always", "undefined"; file restore status
 * "none", "all", "failed", "undefined".  *_name() returns NULL for a value out of range,
 * *_from_name() -1 for an unknown name (exact, lower case).
 */
const char *vss_restore_method_name(enum vss_restore_method_type m);
int vss_restore_method_from_name(const char *name);
const char *vss_writer_restore_name(enum vss_writer_restore_type t);
int vss_writer_restore_from_name(const char *name);
const char *vss_file_restore_status_name(enum vss_file_restore_status s);
int vss_file_restore_status_from_name(const char *name);

/* Limits of vss-facts 5.1. */
#define VSS_MAX_VOLUMES_PER_SET 64
#define VSS_MAX_SHADOWS_PER_VOLUME 512
#define VSS_DEFAULT_FREEZE_TIMEOUT_MS 60000
#define VSS_HOLD_WRITES_TIMEOUT_MS 10000

/* The socket path clients use: $VSS_SOCKET, else /run/openvss/vssd.sock. */
const char *vss_default_socket_path(void);

#ifdef __cplusplus
}
#endif

#endif
