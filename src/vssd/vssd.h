/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * vssd's shared object model.  Everything here lives on the single event-loop
 * thread, except struct prov_job which travels to the provider worker thread
 * and back (provider-host.c).  Objects refer to connections by serial number,
 * never by pointer, when a reply may be sent after the connection is gone.
 */

#include <jansson.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <sys/types.h>

#include "basic/log.h"
#include "basic/macro.h"
#include "basic/time-util.h"
#include "basic/wire.h"
#include "vss/provider.h"
#include "vss/vss.h"
#include "vssd/config.h"

#define VSSD_VERSION "vssd " OPENVSS_VERSION
#define VSSD_MAX_BAD_LINES 16
#define VSSD_MAX_OUTPUT (8u * 1024 * 1024)
#define VSSD_METADATA_MAX (256 * 1024)

struct vssd;
struct conn;
struct session;

/* ---- loop.c: timers (CLOCK_MONOTONIC, basic/time-util.h) ---- */

struct timer {
        uint64_t when_us;
        void (*cb)(struct vssd *v, struct timer *t);
        void *userdata;
        bool armed;
        struct timer *next;
};

void timer_arm(struct vssd *v, struct timer *t, uint64_t when_us);
void timer_cancel(struct vssd *v, struct timer *t);
/* Runs due timers; returns the epoll timeout (ms, -1 = none). */
int timers_run(struct vssd *v);

/* ---- writers (registry.c) ---- */

struct writer {
        struct writer *next;
        uint64_t conn_serial;           /* 0 once the writer's connection closed */
        bool gone;
        char *name;
        char *instance_name;
        vss_id writer_id, instance_id;
        char **volumes;
        size_t n_volumes;
        uint32_t freeze_timeout_ms;
        char *usage, *source;
        json_t *components;             /* array, Register format */
        json_t *restore_method;         /* {method,service,user_procedure,writer_restore,reboot_required} */
        pid_t pid;
        uid_t uid;

        enum vss_writer_state state;
        vss_hresult failure;
        char *message;
        json_t *metadata;               /* object "logical_path/name" -> {logical_path,name,backup_metadata} */

        /* Set participation (owned by the session driving it). */
        struct session *session;
        bool involved, partial;
        int pending_event;              /* -1: none */
        json_int_t pending_id;
        struct timer deadline;
        struct timer freeze_timer;
        vss_id freeze_set_id;
};

/* ---- shadows (shadows.c) ---- */

struct shadow {
        struct shadow *next;
        struct vss_provider_snapshot snap;
        int provider;                   /* index into the provider table, -1 unknown */
        int32_t attributes;             /* context bits | provider bits (without EXPOSED) */
        int64_t creation_time_us;
        char *exposed_path;
        vss_id owner_session;
        int snapshots_count;
        bool deleting;
};

/* ---- shadow storage associations (storage.c) and cow volumes (cowvol.c) ---- */

struct storage_assoc {
        struct storage_assoc *next;
        char *for_vol;                  /* the shadowed volume (mount point) */
        char *on_vol;                   /* the volume holding its diff area */
        int64_t max_bytes;              /* -1: unbounded */
};

struct cowvol {
        struct cowvol *next;
        char *name;
        char *image;                    /* the origin image file */
        char *diff;                     /* the diff area file */
        char *rundir;                   /* the volume server's RUNDIR */
        char *loopdev;                  /* /dev/loopN over RUNDIR/fuse/volume, "" if none */
        char *mountpoint;               /* "" if not mounted by us */
        char *fs;                       /* "ext4", "xfs" or "" */
        uint64_t size_bytes;
        int ev_fd;                      /* control connection for Volume.Event, -1 if down */
        struct wire_buf ev_in;
        struct timer retry;
        /* Supervision (cowvol.c): a Hello on ev_fd every second; no answer within
         * VOLSRV_DEADLINE_US and the server is killed and replaced. */
        struct timer ping;
        uint64_t ping_sent_us;          /* 0: none outstanding */
        json_int_t ping_id;
        bool restarted;                 /* restarted; what became of the mount not yet reported */
};

/* ---- sessions (session.c, snapset.c) ---- */

enum set_phase {
        SET_NONE,
        SET_STARTED,
        SET_PREPARED,           /* PrepareForBackup done */
        SET_CREATING,           /* inside DoSnapshotSet */
        SET_CREATED,
        SET_COMPLETED,
        SET_ABORTED,
};

struct set_volume {
        char path[VSS_PATH_MAX];
        int provider;
        struct vss_provider_snapshot snap;
        bool begun;
};

struct session {
        struct vssd *vssd;
        uint64_t conn_serial;
        pid_t pid;
        vss_id session_id;
        int32_t context;
        bool context_set;
        char backup_type[16];
        bool select_components, bootable;
        json_t *components;             /* AddComponent */
        json_t *excluded;               /* names or ids */
        enum set_phase phase;
        vss_id set_id;
        struct set_volume *vols;
        size_t n_vols;

        /* The asynchronous call in progress, if any. */
        json_int_t call_id;
        const char *call_method;
        int step;
        int outstanding;                /* writer replies awaited */
        int prov_outstanding;           /* provider jobs awaited */
        vss_hresult prov_hr;
        char prov_error[600];
        bool prov_prepared;             /* end_prepare reached: abort needed on failure */
        bool committed;
        vss_hresult fail_hr;
        char fail_detail[1024];
        bool closing;
        json_t *restore_components;     /* PreRestore/PostRestore */
        bool backup_succeeded;
        uint64_t freeze_expired_tag;
        enum set_phase phase_before_do;
};

/* session->step values from here on belong to snapset.c. */
#define SNAPSET_STEP_FIRST 100

/* ---- providers (provider-host.c) ---- */

struct provider {
        const struct vss_provider_ops *ops;
        void *state;
        struct vss_provider_ctx ctx;
        bool ok;
};

enum prov_op {
        PROV_BEGIN_PREPARE,
        PROV_END_PREPARE,
        PROV_PRE_COMMIT,
        PROV_COMMIT,
        PROV_POST_COMMIT,
        PROV_ABORT,
        PROV_DELETE,
        PROV_EXPOSE,
        PROV_UNEXPOSE,
};

struct prov_job {
        struct prov_job *next;
        enum prov_op op;
        int provider;
        struct vss_provider_snapshot *snaps;
        size_t n;
        char path[VSS_PATH_MAX];
        bool freeze;                    /* PROV_COMMIT: syncfs+FIFREEZE around it */
        char state_dir[VSS_PATH_MAX];
        char **protect;                 /* PROV_COMMIT: filesystems that must not be frozen */
        size_t n_protect;
        vss_hresult hr;                 /* mapped */
        vss_hresult raw_hr;
        char error[600];
        void (*done)(struct vssd *v, struct prov_job *j);
        void *userdata;
        uint64_t tag;
};

extern const struct vss_provider_ops *const provider_table[];
int providers_init(struct vssd *v);
void providers_done(struct vssd *v);
size_t providers_count(void);
int provider_find(struct vssd *v, const char *id_or_null, const char *volume, const char *fstype,
                  vss_hresult *ret_hr);
int provider_by_id(const char *id);
struct prov_job *prov_job_new(enum prov_op op, int provider, const struct vss_provider_snapshot *snaps, size_t n);
void prov_job_free(struct prov_job *j);
void prov_submit(struct vssd *v, struct prov_job *j);
void prov_dispatch_done(struct vssd *v);
vss_hresult provider_map_hr(vss_hresult hr);

/* ---- freeze.c ---- */

/* Freezes every path (syncfs + FIFREEZE) with a watchdog child, runs cb, thaws.
 * Refuses (VSS_E_VOLUME_NOT_SUPPORTED) when a path shares its filesystem with
 * one of 'protect' (vssd's state dir, diff areas, volume servers' run dirs).
 * VSS_E_HOLD_WRITES_TIMEOUT when cb ran past hold_ms (the watchdog thawed). */
vss_hresult freeze_around(char **paths, size_t n, char **protect, size_t n_protect, unsigned hold_ms,
                          vss_hresult (*cb)(void *userdata), void *userdata, char *errbuf, size_t errlen);

/* ---- the daemon ---- */

struct conn {
        struct conn *next;
        struct vssd *vssd;
        uint64_t serial;
        int fd;
        pid_t pid;
        uid_t uid;
        struct wire_buf in;
        char *out;
        size_t out_len, out_off;
        unsigned bad_lines;
        bool closing;                   /* flush then close */
        bool dead;
        json_int_t next_req_id;
        struct writer *writer;
        struct session *session;
};

struct vssd {
        int epfd, sigfd, listen_fd, prov_evfd;
        struct vssd_config cfg;
        char *socket_path, *state_dir, *config_path;
        struct conn *conns;
        size_t n_conns;
        uint64_t next_serial;
        struct timer *timers;
        struct writer *writers;
        struct shadow *shadows;
        struct storage_assoc *assocs;
        struct cowvol *cowvols;
        struct session *set_owner;     /* between StartSnapshotSet and the end of DoSnapshotSet */
        sqlite3 *db;
        struct provider *providers;
        size_t n_providers;
        bool quit;
        int64_t start_us;
        /* provider worker */
        pthread_t worker;
        bool worker_started;
        pthread_mutex_t qlock;
        pthread_cond_t qcond;
        struct prov_job *q_head, *q_tail, *done_head, *done_tail;
        bool worker_stop;
        unsigned jobs_in_flight;
};

/* conn.c */
int conn_accept(struct vssd *v);
void conn_io(struct vssd *v, struct conn *c, uint32_t events);
void conn_free(struct vssd *v, struct conn *c);
struct conn *conn_by_serial(struct vssd *v, uint64_t serial);
void conn_send(struct vssd *v, struct conn *c, json_t *msg);
void reply_ok(struct vssd *v, uint64_t serial, json_int_t id, json_t *result);
void reply_err(struct vssd *v, uint64_t serial, json_int_t id, vss_hresult hr, const char *fmt, ...) _printf_(5, 6);
void conns_reap(struct vssd *v);

/* Method handlers: return true when the reply was (or will be) sent. */
typedef void (*method_fn)(struct vssd *v, struct conn *c, json_int_t id, json_t *params);

/* registry.c */
void method_writer_register(struct vssd *v, struct conn *c, json_int_t id, json_t *params);
void method_writers_list(struct vssd *v, struct conn *c, json_int_t id, json_t *params);
void writer_closed(struct vssd *v, struct writer *w);
void writer_free(struct writer *w);
void writers_sweep(struct vssd *v);
size_t writers_count(struct vssd *v);
json_t *writer_status_json(struct writer *w);
json_t *writer_wmd_json(struct writer *w);
void writer_handle_reply(struct vssd *v, struct writer *w, struct wire_msg *m);
void writer_send_event(struct vssd *v, struct session *s, struct writer *w, enum vss_event ev, bool await);
void writer_set_failed(struct vssd *v, struct writer *w, enum vss_event ev, vss_hresult hr, const char *msg);
struct writer *writer_find_id(struct vssd *v, const vss_id *id);

/* session.c */
struct session *session_get(struct vssd *v, struct conn *c, bool create);
void session_release(struct vssd *v, struct session *s);
void session_compute_involvement(struct vssd *v, struct session *s);
void session_writer_done(struct vssd *v, struct session *s);
json_t *session_status_json(struct vssd *v, struct session *s);
void session_finish_call(struct vssd *v, struct session *s, json_t *result);
void session_fail_call(struct vssd *v, struct session *s, vss_hresult hr, const char *detail);
bool session_writer_selected(struct session *s, struct writer *w);
void session_abort_set(struct vssd *v, struct session *s, bool delete_shadows);
void method_backup(struct vssd *v, struct conn *c, json_int_t id, json_t *params, const char *method);
void sessions_shutdown(struct vssd *v);
json_t *session_event_params(struct vssd *v, struct session *s, struct writer *w, enum vss_event ev);

/* snapset.c */
void snapset_do(struct vssd *v, struct session *s);
void snapset_continue(struct vssd *v, struct session *s);
void snapset_freeze_expired(struct vssd *v, struct writer *w);

/* shadows.c */
void shadow_free(struct shadow *sh);
json_t *shadow_prop_json(struct vssd *v, struct shadow *sh);
size_t shadows_on_volume(struct vssd *v, const char *volume);
struct shadow *shadow_find(struct vssd *v, const vss_id *id);
void shadow_delete(struct vssd *v, struct shadow *sh, void (*done)(struct vssd *, void *, vss_hresult), void *ud);
/* The provider lost the shadow copy (evicted, invalidated, gone): undo its
 * exposure, if any, and drop it from the list and the catalog.  'why' ends
 * the event logged for the exposure ("which was deleted to make room ...");
 * it must outlive the unexpose job (a string literal). */
void shadow_forget(struct vssd *v, struct shadow *sh, const char *why);
void shadows_release_session(struct vssd *v, const vss_id *session_id);
void method_shadows(struct vssd *v, struct conn *c, json_int_t id, json_t *params, const char *method);
void shadows_recover(struct vssd *v);

/* storage.c */
int storage_load(struct vssd *v);
void storage_done(struct vssd *v);
struct storage_assoc *storage_find(struct vssd *v, const char *for_vol);
/* VSS_E_INSUFFICIENT_STORAGE (message in err) when on_vol has less free space than the minimum diff area. */
vss_hresult storage_check_on(struct vssd *v, const char *on_vol, char *err, size_t errlen);
void method_storage(struct vssd *v, struct conn *c, json_int_t id, json_t *params, const char *method);

/* cowvol.c */
int cowvols_load(struct vssd *v);
void cowvols_done(struct vssd *v);
/* true when ptr is a cow volume's event connection (then handled). */
bool cowvol_io(struct vssd *v, void *ptr, uint32_t events);
void method_cowvol(struct vssd *v, struct conn *c, json_int_t id, json_t *params, const char *method);
/* Puts the diff area of the cow volume mounted on for_vol (if any) on on_vol, or back in the state
 * directory when on_vol is NULL; a volume with shadows is VSS_E_VOLUME_IN_USE. */
vss_hresult cowvol_move_diff(struct vssd *v, const char *for_vol, const char *on_vol, int64_t max, char *err,
                             size_t errlen);
/* Paths whose filesystems must never be frozen: the state dir, every diff area and run dir. */
int freeze_protect_list(struct vssd *v, char ***ret, size_t *ret_n);
/* cowvol-remount.c: after its volume server restarted, moves the volume's loop device, mounted
 * filesystem and exposed shadows onto the live FUSE files.  Normally there is nothing to do: the
 * replacement took the FUSE connection over from the holder, so the loop devices are live; this is
 * the fallback for a connection that was lost (the holder gone too).  0 when there was nothing to
 * do for the volume itself, 1 when it had to be attached or mounted again, 2 when that was given
 * up with an event (someone else's mount is on the mount point),
 * -EBUSY while a set is being created (retry soon), else -errno after an error event (retry later). */
int cowvol_remount(struct vssd *v, struct cowvol *cv);

/* admin.c */
void method_admin(struct vssd *v, struct conn *c, json_int_t id, json_t *params, const char *method);

/* catalog.c */
int catalog_open(struct vssd *v);
void catalog_close(struct vssd *v);
void catalog_event(struct vssd *v, const char *level, const char *source, vss_hresult hr, const char *fmt, ...)
        _printf_(5, 6);
json_t *catalog_events(struct vssd *v, int64_t limit, int64_t since_us);
int catalog_shadow_put(struct vssd *v, const struct shadow *sh);
int catalog_shadow_del(struct vssd *v, const vss_id *id);
int catalog_shadows_load(struct vssd *v);
int catalog_set_put(struct vssd *v, struct session *s, const char *status);
int catalog_metadata_put(struct vssd *v, const vss_id *set_id, struct writer *w);

/* Methods that create, delete, expose or change things need uid 0 or allowed_uid. */
bool conn_privileged(struct vssd *v, struct conn *c);
