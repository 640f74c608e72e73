/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * vss-volsrv: the volume server of one cow volume (docs/volsrv.md).  One
 * process serves one origin + diff area to the kernel through FUSE
 * (RUNDIR/fuse/volume, RUNDIR/fuse/shadows/<guid>), to user-space block
 * clients through NBD (RUNDIR/nbd.sock) and takes orders from vssd on
 * RUNDIR/control.sock.  The modules share this state; only the control loop
 * (main thread) changes it after start-up, the front ends only read it.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "basic/log.h"
#include "cow/cow-hresult.h"
#include "cow/cow.h"
#include "vss/vss.h"

#define VOLSRV_EVENT_RING 1024u
/* How long the FUSE holder keeps a connection without a live server (--hold-deadline): well
 * beyond vssd's replacement of a silent server (5 s) plus a restart, short enough that a
 * volume nobody serves any more fails its I/O instead of hanging everyone who touches it
 * (docs/volsrv.md "Handover"). */
#define VOLSRV_HOLD_DEADLINE_DEFAULT_S 30u

struct volsrv_event {
        uint64_t time_us;
        struct cow_event ev;
};

struct volsrv_fuse;
struct nbd_server;

struct volsrv {
        char *origin_path;
        char *diff_path;
        char *rundir;
        char *control_path;
        char *nbd_path;
        char *fuse_dir;
        char *fuse_volume;
        char *fuse_shadows;
        char *events_path;
        char *pid_path;

        struct cow_io *origin_io;
        struct cow_io *diff_io;
        struct cow_volume *vol;
        uint64_t size;
        uint32_t chunk_size;

        /* Engine events: the engine calls back with its lock held, possibly on
         * the I/O path, so the callback only copies into this preallocated
         * ring and pokes event_fd; the control loop does the rest. */
        pthread_mutex_t event_lock;
        struct volsrv_event events[VOLSRV_EVENT_RING];
        unsigned event_head, event_count;
        uint64_t events_dropped;
        int event_fd;

        int signal_fd;
        bool stop;

        struct volsrv_fuse *fuse;
        struct nbd_server *nbd;
        unsigned hold_deadline_s;       /* passed to the FUSE holder; 0 = never aborts */

        /* What the FUSE holder kept for us (volsrv_fuse_claim()), -1 if nothing:
         * the predecessor's device and state, taken over by volsrv_fuse_start(). */
        int claimed_fuse_fd, claimed_state_fd;
        /* The write-back buffers (a memfd the holder keeps too, so that writes
         * acknowledged from them survive this process; cow_set_writeback_fd()). */
        int wb_fd;
        bool wb_held;                   /* the holder keeps wb_fd too */
        struct cow_wb_info wb_found;    /* what a predecessor left in it */
};

/* Logs "msg: strerror (0xHR NAME: message)" and returns hr. */
vss_hresult vlog_hr(vss_hresult hr, int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The bare 36-character lower-case form used in file and export names. */
void volsrv_guid_bare(const uint8_t guid[16], char buf[37]);
/* Looks a snapshot up by GUID; 0, -ENOENT or another negative errno. */
int volsrv_snapshot_find(struct cow_volume *vol, const uint8_t guid[16], struct cow_snapshot_info *ret_info);

/* fuse.c */
/* Asks a predecessor's FUSE holder for what it keeps (before the volume opens: the
 * write-back memory must be written back first); sets s->claimed_* and s->wb_fd,
 * or leaves them -1 when no holder answers. */
void volsrv_fuse_claim(struct volsrv *s);
int volsrv_fuse_start(struct volsrv *s);
void volsrv_fuse_stop(struct volsrv *s);
/* Lazily unmounts whatever is mounted on dir (a predecessor killed with -9). */
void volsrv_fuse_unmount_stale(const char *dir);
/* Whether this server took its FUSE connection over from a predecessor (and how many
 * servers did, on this connection), for Volume.Status. */
bool volsrv_fuse_taken_over(const struct volsrv *s, uint64_t *ret_handovers);
/* The FUSE holder's main loop (vss-volsrv --hold-fuse RUNDIR DEADLINE_S, started by the server). */
int volsrv_fuse_hold(const char *rundir, unsigned deadline_s);

/* control.c: runs until Server.Stop or SIGTERM/SIGINT. */
int volsrv_control_listen(struct volsrv *s, int *ret_fd);
int volsrv_control_run(struct volsrv *s, int listen_fd);
void volsrv_event_cb(const struct cow_event *ev, void *userdata);
