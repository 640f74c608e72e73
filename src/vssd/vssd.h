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
#include "vssd/privilege.h"
#include "vssd/set.h"

#define VSSD_VERSION "vssd " OPENVSS_VERSION
#define VSSD_MAX_BAD_LINES 16
#define VSSD_MAX_OUTPUT (8u * 1024 * 1024)
#define VSSD_METADATA_MAX (256 * 1024)

struct vssd;
struct conn;
struct session;
struct writer;

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

/* Called when an awaited event ends: answered (w->state says how), past its deadline or its writer's
 * connection closed (FAILED_AT_<ev>, not responding).  'ctx' is what the sender registered. */
typedef void (*writer_event_done_fn)(struct vssd *v, void *ctx, struct writer *w, enum vss_event ev);
/* Called when a writer's freeze timer expires before it was cancelled. */
typedef void (*writer_freeze_fn)(struct vssd *v, void *ctx, struct writer *w);

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
        writer_event_done_fn event_done;
        void *event_ctx;
        struct timer deadline;
        uint32_t deadline_ms;
        struct timer freeze_timer;
        writer_freeze_fn freeze_expired;
        void *freeze_ctx;
        vss_id freeze_set_id;
};

/* A writer id and name belong to the uid that first registered them in this run. */
struct writer_claim {
        struct writer_claim *next;
        vss_id writer_id;
        char *name;
        uid_t uid;
};

/* ---- shadows (shadows.c) ---- */

struct shadow {
        struct shadow *next;
        struct vss_provider_snapshot snap;
        int provider;                   /* index into the provider table, -1 unknown */
        int32_t attributes;             /* context bits | provider bits (without EXPOSED) */
        int64_t creation_time_us;
        char *exposed_path;
        char *published_path;           /* DIR/@GMT-... while published (pubver.c), mount queued or done */
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
};

/* ---- Previous Versions publications (pubver.c) ---- */

struct pubver {
        struct pubver *next;
        char *volume;                   /* the published volume (canonical path) */
        char *dir;                      /* where its shadow copies appear as @GMT-... (canonical) */
        bool made_dir;                  /* vssd created dir: removed with the publication */
        int64_t created_us;
};

/* ---- sessions (session.c) and their snapshot sets (set.c, phases in set.h) ---- */

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
        vss_id set_id;
        struct set_volume *vols;
        size_t n_vols;
        json_t *restore_components;     /* PreRestore/PostRestore */
        bool backup_succeeded;

        /* The requester's call in progress, answered when its sequence ends. */
        json_int_t call_id;
        const char *call_method;

        /* The set: written by set.c only. */
        const struct set_ops *ops;
        enum set_phase phase;
        const struct set_sequence *seq; /* the sequence being walked, NULL when no call is in progress */
        size_t step;                    /* its next step */
        bool implicit_prepare;          /* DoSnapshotSet runs PrepareForBackup itself */
        int outstanding;                /* writer replies awaited */
        int prov_outstanding;           /* provider calls awaited */
        vss_hresult prov_hr;
        char prov_error[900];
        bool prov_prepared;             /* end_prepare reached: abort needed on failure */
        bool committed;
        vss_hresult fail_hr;
        char fail_detail[1024];
        vss_hresult record_hr;          /* the catalog could not record the set's shadow copies */
        char record_error[1024];
        bool closing;                   /* the requester is gone */
        bool freeze_expired;
        char fail_writer[256];          /* the writer whose failure is fail_hr, "" if none */
        /* Cluster sets (cluster-set.c): the requester's session coordinates, a session of
         * vssd's own (no connection) runs each participant's local part. */
        bool cluster_coordinator;
        bool cluster_participant;
        json_t *cluster_volumes;        /* coordinator: {"host": [{"volume","shadow_id"}]} */
};

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
        PROV_REVERT,
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
        gid_t gid;
        gid_t *groups;                  /* supplementary groups, loaded at the first privileged call */
        size_t n_groups;
        bool groups_loaded;
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
        struct writer_claim *writer_claims;     /* registry.c: who registered which writer first */
        struct shadow *shadows;
        struct storage_assoc *assocs;
        struct cowvol *cowvols;
        struct pubver *pubvers;
        struct session *set_owner;     /* between StartSnapshotSet and the end of DoSnapshotSet */
        struct revert *reverting;       /* Shadows.Revert running (shadows.c), NULL if none */
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
        struct vcluster *cluster;       /* NULL unless vssd.conf has [cluster] */
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


/* registry.c */
void method_writer_register(struct vssd *v, struct conn *c, json_int_t id, json_t *params);
void method_writers_list(struct vssd *v, struct conn *c, json_int_t id, json_t *params);
void writer_closed(struct vssd *v, struct writer *w);
void writer_free(struct writer *w);
void writer_claims_free(struct vssd *v);
void writers_sweep(struct vssd *v);
size_t writers_count(struct vssd *v);
json_t *writer_status_json(struct writer *w);
/* What Writers.List returns: every registered writer, in registration order. */
json_t *writers_list_json(struct vssd *v);
json_t *writer_wmd_json(struct writer *w);
void writer_handle_reply(struct vssd *v, struct writer *w, struct wire_msg *m);
/* Sends event 'ev' with 'params' (taken).  With 'done' the reply is awaited (within deadline_ms unless 0)
 * and done(ctx) hears of its end; without, the writer's state moves on at once.  false when the writer's connection is closed (an awaited event then failed it). */
bool writer_send_event(struct vssd *v, struct writer *w, enum vss_event ev, json_t *params, uint32_t deadline_ms,
                       writer_event_done_fn done, void *ctx);
/* Forgets the awaited event (its reply will be ignored, no callback). */
void writer_cancel_pending(struct vssd *v, struct writer *w);
/* Arms the writer's freeze timer (its freeze_timeout_ms from now); expired(ctx) is called unless cancelled. */
void writer_arm_freeze(struct vssd *v, struct writer *w, writer_freeze_fn expired, void *ctx);
void writer_cancel_freeze(struct vssd *v, struct writer *w);
void writer_set_failed(struct vssd *v, struct writer *w, enum vss_event ev, vss_hresult hr, const char *msg);
struct writer *writer_find_id(struct vssd *v, const vss_id *id);

/* session.c */
struct session *session_get(struct vssd *v, struct conn *c, bool create);
void session_release(struct vssd *v, struct session *s);
/* A session of vssd's own, without a requester (a cluster set's participant). */
struct session *session_new_internal(struct vssd *v, const struct set_ops *ops);
/* AddToSnapshotSet's checks and the new volume (shadow_id NULL: a new id); err says why not. */
vss_hresult session_add_volume(struct vssd *v, struct session *s, const char *vol, const char *pidstr,
                               const vss_id *shadow_id, char *err, size_t errlen);
json_t *session_status_json(struct vssd *v, struct session *s);
void session_finish_call(struct vssd *v, struct session *s, json_t *result);
void session_fail_call(struct vssd *v, struct session *s, vss_hresult hr, const char *detail);
void method_backup(struct vssd *v, struct conn *c, json_int_t id, json_t *params, const char *method);
void sessions_shutdown(struct vssd *v);
json_t *session_event_params(struct vssd *v, struct session *s, struct writer *w, enum vss_event ev);

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

extern const struct set_ops session_set_ops;

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
/* The running revert's text for errors ("a revert of VOL to shadow copy ID is running"), or NULL. */
const char *shadows_revert_running(struct vssd *v);
/* The volume a running revert takes offline, NULL if none. */
const char *shadows_reverting_volume(struct vssd *v);
void shadows_revert_free(struct revert *r);

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
 * filesystem and exposed shadows onto the live FUSE files.  0 when done (or nothing to do, or
 * given up with an event), -EBUSY while a set is being created (retry soon), else -errno after
 * an error event (retry later). */
int cowvol_remount(struct vssd *v, struct cowvol *cv);
/* After a revert of the cow volume served from 'rundir': it is attached as 'loopdev' now. */
void cowvol_reverted(struct vssd *v, const char *rundir, const char *loopdev);

/* pubver.c: the one place that keeps published directories in step with the shadow copies. */
/* Mounts what volume's publication should show and unmounts what it should not (any volume). */
void pubver_sync(struct vssd *v, const char *volume);
/* Queues the unmount of a shadow copy's published path (it is being deleted or was lost). */
void pubver_unpublish(struct vssd *v, struct shadow *sh);
/* The mount of sh's published path is gone and cannot be made again (cowvol-remount.c). */
void pubver_lost(struct vssd *v, struct shadow *sh, const char *why);
/* A volume is deleted: its publication goes (it has no shadow copies by then). */
void pubver_volume_gone(struct vssd *v, const char *volume);
/* Startup: pubver_load() after the shadows are loaded, pubver_start() after they are recovered. */
int pubver_load(struct vssd *v);
void pubver_start(struct vssd *v);
void pubvers_done(struct vssd *v);
void method_pubver(struct vssd *v, struct conn *c, json_int_t id, json_t *params, const char *method);

/* admin.c */
void method_admin(struct vssd *v, struct conn *c, json_int_t id, json_t *params, const char *method);
json_t *providers_list_json(struct vssd *v);
/* 0 and the volumes of Volumes.List in *ret, or -errno (mountinfo unreadable). */
int volumes_list_json(struct vssd *v, json_t **ret);

/* cluster.c: vssd.conf [cluster]; nothing happens without it. */
int vcluster_start(struct vssd *v);
void vcluster_stop(struct vssd *v);
void vcluster_hosts_reply(struct vssd *v, struct conn *c, json_int_t id);
/* The cluster thread's messages are waiting (its eventfd is readable). */
void vcluster_dispatch(struct vssd *v);
/* What the eventfd's epoll data points to. */
void *vcluster_evfd_ptr(struct vssd *v);

/* cluster-set.c: cluster snapshot sets (docs/cluster.md §11). */
/* AddToSnapshotSet of HOST:VOLUME (host "" is this host): the session becomes a cluster set's coordinator. */
vss_hresult vcset_add_volume(struct vssd *v, struct session *s, const char *host, const char *volume,
                             vss_id *ret_shadow_id, char *err, size_t errlen);
/* DoSnapshotSet of a cluster set: T1 and the coordinator; answered at its report. */
vss_hresult vcset_do(struct vssd *v, struct session *s, char *err, size_t errlen);
/* T11: BackupComplete (backup_complete) or the session's end: the participants are told. */
void vcset_end(struct vssd *v, struct session *s, bool backup_complete);
void vcset_session_gone(struct vssd *v, struct session *s);
/* Other hosts' shadow copies of set_id, from their host records (each with "host"). */
json_t *vcset_remote_shadows(struct vssd *v, const vss_id *set_id);

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

/* May c call 'method', which needs 'need' (privilege.h)?  If not, 'why' says who may. */
bool conn_allowed(struct vssd *v, struct conn *c, enum vssd_privilege need, const char *method, char *why,
                  size_t whylen);
