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
/* Each module declares itself in a header of its own; vssd.h holds what they share, struct vssd,
 * and (until they move with cow-volume management and the cluster work) cowvol.c's and the
 * cluster's declarations. */
#include "vssd/admin.h"
#include "vssd/catalog.h"
#include "vssd/conn.h"
#include "vssd/freeze.h"
#include "vssd/loop.h"
#include "vssd/provider-host.h"
#include "vssd/pubver.h"
#include "vssd/registry.h"
#include "vssd/session.h"
#include "vssd/shadows.h"
#include "vssd/storage.h"

#define VSSD_VERSION "vssd " OPENVSS_VERSION

struct vssd;
struct conn;
struct session;
struct writer;

/* ---- cow volumes (cowvol.c) ---- */

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
        /* Supervision (cowvol-server.c): a Hello on ev_fd every second; no answer within
         * VOLSRV_DEADLINE_US and the server is killed and replaced. */
        struct timer ping;
        uint64_t ping_sent_us;          /* 0: none outstanding */
        json_int_t ping_id;
        bool restarted;                 /* restarted; what became of the mount not yet reported */
};

/* ---- the daemon ---- */

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
        struct cowvol_op *cowvol_ops;   /* cowvol.c: creations and deletions on the provider worker */
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
        /* Of those, the calls of a provider (snapshot, delete, expose, revert: a freeze may be among
         * them), not vssd's own work for cow volumes nor the diff area queries. */
        unsigned provider_calls_in_flight;
        struct vcluster *cluster;       /* NULL unless vssd.conf has [cluster] */
};

/* cowvol.c */
int cowvols_load(struct vssd *v);
void cowvols_done(struct vssd *v);
/* cowvol-server.c: true when ptr is a cow volume's event connection (then handled). */
bool cowvol_io(struct vssd *v, void *ptr, uint32_t events);
/* cowvol.c */
void method_cowvol(struct vssd *v, struct conn *c, json_int_t id, json_t *params, const char *method);
/* cowvol-move.c: puts the diff area of the cow volume mounted on for_vol (if any) on on_vol, or back
 * in the state directory when on_vol is NULL; a volume with shadows is VSS_E_VOLUME_IN_USE.  The move
 * runs on the provider worker; moved() runs on the loop when it is over (at once when there is
 * nothing to move or it is refused), err the reason of a failure. */
void cowvol_move_diff(struct vssd *v, const char *for_vol, const char *on_vol, int64_t max,
                      void (*moved)(struct vssd *v, vss_hresult hr, const char *err, void *userdata), void *userdata);
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
/* After a revert of the cow volume served from 'rundir': it is attached as 'loopdev' now. */
void cowvol_reverted(struct vssd *v, const char *rundir, const char *loopdev);

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
