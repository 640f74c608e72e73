/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef VSS_REQUESTER_H
#define VSS_REQUESTER_H

/*
 * The requester API, modelled on IVssBackupComponents.
 *
 * A vss_backup is one backup session (single use, like the COM object): it
 * holds a connection to vssd, and everything the session owns is released
 * when it is freed or when the process dies (vssd sees the closed socket,
 * aborts the set and deletes the auto-release shadow copies).
 *
 *     vss_backup *b;
 *     vss_id set, shadow;
 *     vss_backup_new(NULL, &b);
 *     vss_backup_gather_writer_metadata(b);
 *     vss_backup_start_snapshot_set(b, &set);
 *     vss_backup_add_to_snapshot_set(b, "/srv/data", NULL, &shadow);
 *     vss_backup_prepare_for_backup(b);
 *     hr = vss_backup_do_snapshot_set(b);     (fails on a writer veto, see below)
 *     ... read the shadow through vss_backup_get_snapshot_properties() ...
 *     vss_backup_backup_complete(b, true);
 *     vss_backup_free(b);
 *
 * Every call returns a vss_hresult.  On failure, vss_backup_get_error_detail()
 * says more (which writer vetoed, in which state, with which error).  Calls
 * made out of order give VSS_E_BAD_STATE.  After each stage the writer status
 * is refreshed (GatherWriterStatus is implied); read it with
 * vss_backup_get_writer_status_count()/vss_backup_get_writer_status().
 */

#include <vss/vss.h>
#include <vss/writer.h>     /* struct vss_restore_method */

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vss_backup vss_backup;

/* VSS_SNAPSHOT_PROP. Strings are owned by the struct: release with vss_snapshot_prop_clear(). */
struct vss_snapshot_prop {
        vss_id snapshot_id;
        vss_id snapshot_set_id;
        int32_t snapshots_count;
        char *snapshot_device;          /* where the shadow copy is read (path or device) */
        char *original_volume;          /* mount point or subvolume path */
        char *original_device;          /* block device of the original volume */
        char *originating_machine;
        char *service_machine;
        char *exposed_name;             /* NULL unless exposed */
        char *exposed_path;
        vss_id provider_id;
        char *provider_name;
        int32_t attributes;             /* VSS_VOLSNAP_ATTR_* */
        int32_t context;
        int64_t creation_time_us;       /* microseconds since the Unix epoch */
        int32_t state;                  /* VSS_SNAPSHOT_STATE; 12 = created */
};
void vss_snapshot_prop_clear(struct vss_snapshot_prop *p);

/* Pointers stay valid until the next call on the same vss_backup. */
struct vss_writer_status {
        const char *name;
        vss_id writer_id;
        vss_id instance_id;
        enum vss_writer_state state;
        vss_hresult failure;            /* S_OK, 0x800423F0..F4, VSS_E_WRITER_NOT_RESPONDING */
        const char *message;            /* the writer's failure message, or NULL */
        bool involved;                  /* takes part in this session's set */
};

struct vss_writer_metadata {
        const char *name;
        vss_id writer_id;
        vss_id instance_id;
        size_t volume_count;
        const char *const *volumes;
        size_t component_count;
        uint32_t freeze_timeout_ms;
        int32_t pid;
};

struct vss_component_info {
        enum vss_component_type type;
        const char *logical_path;
        const char *name;
        const char *caption;
        bool selectable;
};

struct vss_component_file {
        const char *path;
        const char *filespec;
        bool recursive;
};

/* socket_path NULL: vss_default_socket_path(). VSS_E_WRITER_INFRASTRUCTURE if vssd is not there. */
vss_hresult vss_backup_new(const char *socket_path, vss_backup **ret);
/* Ends the session (BackupShutdown) and disconnects. Accepts NULL; returns NULL. */
vss_backup *vss_backup_free(vss_backup *b);

/* Details of the last failure ("writer 'X' is [9] Failed: Timed out"), or "". */
const char *vss_backup_get_error_detail(vss_backup *b);

vss_hresult vss_backup_set_context(vss_backup *b, int32_t context);
vss_hresult vss_backup_set_backup_state(vss_backup *b, bool select_components,
                                        bool bootable_system_state, enum vss_backup_type type);

vss_hresult vss_backup_gather_writer_metadata(vss_backup *b);
size_t vss_backup_get_writer_metadata_count(vss_backup *b);
vss_hresult vss_backup_get_writer_metadata(vss_backup *b, size_t i, struct vss_writer_metadata *ret);
vss_hresult vss_backup_get_writer_component(vss_backup *b, size_t writer, size_t component,
                                            struct vss_component_info *ret);
size_t vss_backup_get_writer_component_file_count(vss_backup *b, size_t writer, size_t component);
vss_hresult vss_backup_get_writer_component_file(vss_backup *b, size_t writer, size_t component, size_t file,
                                                 struct vss_component_file *ret);
/* The restore method writer #i declared (RESTORE_IF_CAN_REPLACE / NEVER when it declared none). */
vss_hresult vss_backup_get_writer_restore_method(vss_backup *b, size_t i, struct vss_restore_method *ret);

/* Component mode: select a component for backup. */
vss_hresult vss_backup_add_component(vss_backup *b, const vss_id *instance_id,
                                     const vss_id *writer_id, enum vss_component_type type,
                                     const char *logical_path, const char *name);
/* Exclude a writer (by name or by "{writer id}") from this session: it gets no events. */
vss_hresult vss_backup_exclude_writer(vss_backup *b, const char *writer);

vss_hresult vss_backup_start_snapshot_set(vss_backup *b, vss_id *ret_set_id);
/* provider_id NULL: the first provider that supports the volume. */
vss_hresult vss_backup_add_to_snapshot_set(vss_backup *b, const char *volume,
                                           const vss_id *provider_id, vss_id *ret_snapshot_id);
/* A volume of a cluster snapshot set (docs/cluster.md): 'host' names the vssd that snapshots
 * it, "" this host.  A set whose first volume came this way takes every volume this way; its
 * DoSnapshotSet freezes all hosts, then commits on all of them, under one set id. */
vss_hresult vss_backup_add_to_cluster_set(vss_backup *b, const char *host, const char *volume,
                                          vss_id *ret_snapshot_id);
vss_hresult vss_backup_prepare_for_backup(vss_backup *b);
/* Creates the shadow copies. A veto or timeout of an involved writer before the
 * commit, or a provider failure, aborts the set and returns the failure code. */
vss_hresult vss_backup_do_snapshot_set(vss_backup *b);
vss_hresult vss_backup_gather_writer_status(vss_backup *b);
size_t vss_backup_get_writer_status_count(vss_backup *b);
vss_hresult vss_backup_get_writer_status(vss_backup *b, size_t i, struct vss_writer_status *ret);
/* Backup metadata a writer attached to a component, or NULL. Valid after DoSnapshotSet. */
const char *vss_backup_get_backup_metadata(vss_backup *b, const vss_id *writer_id,
                                           const char *logical_path, const char *name);

vss_hresult vss_backup_backup_complete(vss_backup *b, bool succeeded);
vss_hresult vss_backup_abort_backup(vss_backup *b);

/*
 * Restore (vss-facts 3.3), in a session that creates no snapshot set:
 *
 *     vss_backup_gather_writer_metadata(b);                  Identify
 *     vss_backup_add_restore_component(b, &wid, "PostgreSQL Writer", "", "cluster", stored_md);
 *     vss_backup_add_new_target(b, NULL, NULL, NULL, "/srv/pg", "/restore/pg");   (optional)
 *     vss_backup_pre_restore(b);                              PreRestore
 *     ... restore the files ...
 *     vss_backup_set_file_restore_status(b, NULL, NULL, NULL, VSS_RS_ALL);
 *     vss_backup_post_restore(b);                             PostRestore
 *
 * Each writer gets the event with its own components and their stored backup
 * metadata.  A writer that is not registered fails PreRestore with
 * VSS_E_OBJECT_NOT_FOUND naming it; a restore waits for no set: while another
 * session creates one (or restores) PreRestore fails with
 * VSS_E_SNAPSHOT_SET_IN_PROGRESS.  Vetoes are in the writer status, as for backup.
 */
/* Selects a component for restore; backup_metadata is what was stored with it (may be NULL). */
vss_hresult vss_backup_add_restore_component(vss_backup *b, const vss_id *writer_id, const char *writer_name,
                                             const char *logical_path, const char *name,
                                             const char *backup_metadata);
/* The files under 'path' are restored under 'target' (AddNewTarget).  writer_id NULL: for
 * every selected component; else for the one named (name NULL: every one of that writer). */
vss_hresult vss_backup_add_new_target(vss_backup *b, const vss_id *writer_id, const char *logical_path,
                                      const char *name, const char *path, const char *target);
/* SetFileRestoreStatus, before PostRestore; the same NULL conventions. */
vss_hresult vss_backup_set_file_restore_status(vss_backup *b, const vss_id *writer_id, const char *logical_path,
                                               const char *name, enum vss_file_restore_status status);
vss_hresult vss_backup_pre_restore(vss_backup *b);
vss_hresult vss_backup_post_restore(vss_backup *b);

/* Properties of one shadow copy (of this session or any other). */
vss_hresult vss_backup_get_snapshot_properties(vss_backup *b, const vss_id *snapshot_id,
                                               struct vss_snapshot_prop *ret);
/* All shadow copies, optionally of one volume (NULL: all). *ret is an array of *ret_count
 * props; free with vss_snapshot_prop_array_free(). */
vss_hresult vss_backup_query(vss_backup *b, const char *volume, struct vss_snapshot_prop **ret,
                             size_t *ret_count);
void vss_snapshot_prop_array_free(struct vss_snapshot_prop *props, size_t count);
/* Deletes one shadow copy (is_set false) or a whole set (is_set true). */
vss_hresult vss_backup_delete_snapshots(vss_backup *b, const vss_id *id, bool is_set,
                                        int32_t *ret_deleted);
/* Mounts the shadow copy read-only at 'path' (NULL: a directory vssd chooses). *ret_path is malloc'ed. */
vss_hresult vss_backup_expose_snapshot(vss_backup *b, const vss_id *snapshot_id, const char *path,
                                       char **ret_path);
vss_hresult vss_backup_unexpose_snapshot(vss_backup *b, const vss_id *snapshot_id);
/* RevertToSnapshot: the shadow copy's volume gets exactly its content, and the call returns
 * when it has (mounted again where it was).  The shadow copy and older ones stay, newer ones
 * are deleted.  VSS_E_VOLUME_IN_USE when the volume is busy (nothing changed),
 * VSS_E_REVERT_IN_PROGRESS while another revert runs, VSS_E_SNAPSHOT_SET_IN_PROGRESS while a set
 * is created or a restore runs, VSS_E_UNSUPPORTED_CONTEXT for a non-persistent shadow copy,
 * VSS_E_VOLUME_NOT_SUPPORTED where the provider cannot replace the volume. */
vss_hresult vss_backup_revert_to_snapshot(vss_backup *b, const vss_id *snapshot_id);

#ifdef __cplusplus
}
#endif

#endif
