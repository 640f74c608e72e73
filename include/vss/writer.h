/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef VSS_WRITER_H
#define VSS_WRITER_H

/*
 * The writer API, modelled on CVssWriter.
 *
 * An application that wants its data consistent in shadow copies creates one
 * vss_writer, describes its data (volumes, components), subscribes, and then
 * lets libvss call its handlers as vssd sends events.  The writer lives in the
 * application's own process and keeps its own state between events: a database
 * writer opens a session in on_freeze (e.g. MariaDB's FLUSH TABLES WITH READ
 * LOCK, PostgreSQL's pg_backup_start) and closes the same session in on_thaw.
 *
 *     static bool on_freeze(vss_writer *w, void *userdata)
 *     {
 *             struct app *a = userdata;
 *             if (app_quiesce(a) < 0) {
 *                     vss_writer_set_failure(w, VSS_E_WRITERERROR_RETRYABLE);
 *                     vss_writer_set_failure_message(w, "could not flush the journal");
 *                     return false;
 *             }
 *             return true;
 *     }
 *
 *     struct vss_writer_options o = { .name = "App Writer", .volumes = vols };
 *     struct vss_writer_handlers h = { .on_freeze = on_freeze, .on_thaw = on_thaw };
 *     vss_writer *w;
 *     vss_writer_new(&o, &h, app, &w);
 *     vss_writer_subscribe(w);
 *     vss_writer_run(w);           (or poll vss_writer_fd() and call vss_writer_dispatch())
 *
 * Threading: a vss_writer is used from one thread at a time.  Handlers run on
 * the thread that calls vss_writer_dispatch()/vss_writer_run(), one at a time:
 * libvss never runs two handlers of one writer at once.  The calls marked
 * "handler only" are valid only inside a handler.
 *
 * What libvss does for the writer (docs/libvss.md, "What the library guarantees"):
 *   - from Freeze until Thaw or Abort it holds a deadline of the freeze timeout
 *     plus VSS_WRITER_FREEZE_GRACE_MS; when it passes, it runs on_abort itself;
 *   - when the connection to vssd is lost between PrepareForSnapshot and Thaw, it
 *     runs on_abort at once;
 *   - on_abort runs exactly once per snapshot set, whoever asks for it;
 *   - unless no_reconnect is set, it reconnects (100 ms doubling to 5 s) and
 *     registers again with the same writer id (and a new instance id).
 * A writer needs to do nothing for this but release what it holds in on_abort
 * and on_thaw.
 */

#include <vss/vss.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vss_writer vss_writer;

/* The grace libvss adds to the freeze timeout before it aborts a writer still frozen:
 * vssd's own freeze timer (the freeze timeout, armed just before Freeze is sent)
 * always fires first while vssd runs, so the local deadline only acts when vssd
 * cannot (stopped, hung, unreachable). */
#define VSS_WRITER_FREEZE_GRACE_MS 1000

/* How the writer's data is restored (VSS_RESTOREMETHOD, SetRestoreMethod; vss-facts 5.4, 7.3). */
struct vss_restore_method {
        enum vss_restore_method_type method;    /* VSS_RME_UNDEFINED: RESTORE_IF_CAN_REPLACE */
        const char *service;                    /* STOP_RESTORE_START / RESTORE_STOP_START: the service */
        const char *user_procedure;             /* CUSTOM: what an admin must do, in words */
        enum vss_writer_restore_type writer_restore;    /* UNDEFINED: NEVER */
        bool reboot_required;
};

struct vss_writer_options {
        const char *name;               /* required, shown by `vssadmin list writers` */
        const vss_id *writer_id;        /* NULL: a stable id derived from name */
        const char *instance_name;      /* optional */
        const char *const *volumes;     /* NULL-terminated paths of the writer's data; NULL: none
                                           (a writer with no volumes takes part in every set) */
        uint32_t freeze_timeout_ms;     /* 0: the daemon's default (60000) */
        enum vss_usage_type usage;
        enum vss_source_type source;
        const char *socket_path;        /* NULL: vss_default_socket_path() */
        const struct vss_restore_method *restore_method;   /* NULL: RESTORE_IF_CAN_REPLACE, NEVER */
        bool no_reconnect;      /* true: vss_writer_run()/dispatch() return VSS_E_WRITER_INFRASTRUCTURE
                                   when the connection is lost (the old behaviour). Default (false):
                                   libvss reconnects with backoff 100 ms doubling to 5 s and registers
                                   again with the same writer id and a new instance id. */
};

/*
 * One handler per event.  Return true when the event succeeded.  To veto, call
 * vss_writer_set_failure() (and optionally vss_writer_set_failure_message())
 * and return false; returning false without a failure code vetoes with
 * VSS_E_WRITERERROR_NONRETRYABLE.  A NULL handler succeeds.
 */
struct vss_writer_handlers {
        bool (*on_identify)(vss_writer *w, void *userdata);
        bool (*on_prepare_backup)(vss_writer *w, void *userdata);
        bool (*on_prepare_snapshot)(vss_writer *w, void *userdata);
        bool (*on_freeze)(vss_writer *w, void *userdata);
        bool (*on_thaw)(vss_writer *w, void *userdata);
        bool (*on_post_snapshot)(vss_writer *w, void *userdata);
        bool (*on_backup_complete)(vss_writer *w, void *userdata);
        bool (*on_abort)(vss_writer *w, void *userdata);
        bool (*on_backup_shutdown)(vss_writer *w, void *userdata);
        bool (*on_pre_restore)(vss_writer *w, void *userdata);
        bool (*on_post_restore)(vss_writer *w, void *userdata);
};

/* Copies everything it needs from options and handlers. */
vss_hresult vss_writer_new(const struct vss_writer_options *options,
                           const struct vss_writer_handlers *handlers, void *userdata,
                           vss_writer **ret_writer);
/* Unsubscribes if needed. Accepts NULL; returns NULL. */
vss_writer *vss_writer_free(vss_writer *w);

/* Components (before subscribe). 'logical_path' may be NULL or "". */
vss_hresult vss_writer_add_component(vss_writer *w, enum vss_component_type type,
                                     const char *logical_path, const char *name,
                                     const char *caption, bool selectable);
vss_hresult vss_writer_add_component_file(vss_writer *w, const char *logical_path,
                                          const char *name, const char *path,
                                          const char *filespec, bool recursive);

/* Connects to vssd and registers. VSS_E_WRITER_ALREADY_SUBSCRIBED if called twice;
 * VSS_E_WRITER_INFRASTRUCTURE if vssd cannot be reached (the first registration is not
 * retried: a writer that cannot start says so; only a lost connection is). */
vss_hresult vss_writer_subscribe(vss_writer *w);
/* Closes the connection (which unregisters).  Between PrepareForSnapshot and Thaw it
 * runs on_abort first, as for a lost connection.  VSS_E_BAD_STATE from a handler. */
vss_hresult vss_writer_unsubscribe(vss_writer *w);
/* True while the writer is registered on a live connection (false while libvss
 * reconnects, or after the connection was lost with no_reconnect). */
bool vss_writer_is_connected(vss_writer *w);
/* The detail text of the last failure of vss_writer_subscribe()/vss_writer_dispatch()
 * (e.g. the daemon's "path /x does not exist"); never NULL, "" when there was none. */
const char *vss_writer_get_error_detail(vss_writer *w);

/* An fd to poll for POLLIN, then call vss_writer_dispatch(w, 0); -1 when not
 * subscribed.  It stays the same across reconnections, and it also becomes readable
 * when the freeze deadline passes or a reconnection is due, so an event loop that
 * polls it needs no timer of its own. */
int vss_writer_fd(vss_writer *w);
/* Handles every event that has arrived, the freeze deadline and reconnection, waiting
 * up to timeout_ms (-1: forever, 0: do not wait) for the first of them.  Returns
 * VSS_S_OK, or (only with no_reconnect) VSS_E_WRITER_INFRASTRUCTURE when the
 * connection to vssd is lost; vss_writer_subscribe() may then be called again. */
vss_hresult vss_writer_dispatch(vss_writer *w, int timeout_ms);
/* Dispatches until vss_writer_stop() is called (from a handler, a signal handler or
 * another thread) or, with no_reconnect, the connection is lost. */
vss_hresult vss_writer_run(vss_writer *w);
void vss_writer_stop(vss_writer *w);

void vss_writer_get_writer_id(vss_writer *w, vss_id *ret);
void vss_writer_get_instance_id(vss_writer *w, vss_id *ret);
const char *vss_writer_get_name(vss_writer *w);

/* Handler only. Accepts only the five writer failures 0x800423F0..F4, else VSS_E_INVALIDARG. */
vss_hresult vss_writer_set_failure(vss_writer *w, vss_hresult failure);
vss_hresult vss_writer_set_failure_message(vss_writer *w, const char *message);

/* Handler only: the event being handled and the set it belongs to. */
enum vss_event vss_writer_get_current_event(vss_writer *w);
void vss_writer_get_snapshot_set_id(vss_writer *w, vss_id *ret);
enum vss_backup_type vss_writer_get_backup_type(vss_writer *w);
int32_t vss_writer_get_context(vss_writer *w);
/* Milliseconds left before the daemon stops waiting for this event. */
int64_t vss_writer_get_time_left_ms(vss_writer *w);
/* The volumes of the snapshot set. */
size_t vss_writer_get_volume_count(vss_writer *w);
const char *vss_writer_get_volume(vss_writer *w, size_t i);
/* PostSnapshot and later: where the shadow copy of 'volume' can be read, or NULL. */
const char *vss_writer_get_snapshot_device(vss_writer *w, const char *volume);
/* Whether the requester selected the component (true in volume mode). */
bool vss_writer_is_component_selected(vss_writer *w, const char *logical_path, const char *name);

/* Handler only, PrepareForBackup..PostSnapshot: attach backup metadata (any text, e.g.
 * PostgreSQL's backup_label) to a component.  It goes back to vssd with the reply,
 * is stored with the snapshot set, and the requester reads it with
 * vss_backup_get_backup_metadata().  Later calls for the same component replace it. */
vss_hresult vss_writer_set_backup_metadata(vss_writer *w, const char *logical_path,
                                           const char *name, const char *metadata);
/* Handler only, PreRestore/PostRestore: the metadata stored at backup time, or NULL. */
const char *vss_writer_get_backup_metadata(vss_writer *w, const char *logical_path,
                                           const char *name);

/* Handler only: the components the event names (those the requester selected, or
 * those it restores), in its order.  0 in volume mode.  The strings live until the
 * handler returns. */
size_t vss_writer_get_event_component_count(vss_writer *w);
vss_hresult vss_writer_get_event_component(vss_writer *w, size_t i, const char **ret_logical_path,
                                           const char **ret_name);

/* Handler only, PostRestore: what the requester reported for the component's files. */
enum vss_file_restore_status vss_writer_get_file_restore_status(vss_writer *w, const char *logical_path,
                                                                const char *name);
/* Handler only, PreRestore/PostRestore: where the requester restores 'path' (a path the writer
 * declared, or one under it) when it restores to a new location, or NULL when it restores in
 * place.  Longest matching prefix wins; the result is the path rewritten under the new target
 * (valid until the next call or the end of the handler). */
const char *vss_writer_get_new_target(vss_writer *w, const char *path);

/* Handler only, Abort: who aborted. */
enum vss_abort_reason {
        VSS_ABORT_REQUESTED = 0,        /* vssd sent Abort (a veto, its freeze timer, AbortBackup, ...) */
        VSS_ABORT_FREEZE_DEADLINE = 1,  /* libvss: no Thaw within freeze timeout + grace */
        VSS_ABORT_CONNECTION_LOST = 2,  /* libvss: the connection closed between PrepareForSnapshot and Thaw */
        VSS_ABORT_SEQUENCE_ENDED = 3,   /* libvss: a new set or BackupShutdown came without Thaw or Abort */
};
enum vss_abort_reason vss_writer_get_abort_reason(vss_writer *w);

#ifdef __cplusplus
}
#endif

#endif
