/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The cow volume module's own: between cowvol.c (the volumes' lifecycle), cowvol-move.c (moving
 * a diff area) and cowvol-server.c (their servers). */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vss/provider.h>
#include <vss/vss.h>

struct cowvol;
struct timer;
struct vssd;

#define DIFF_SUBDIR "/.openvss/diff"

/* A Volumes.Create, Volumes.Delete or diff area move on the provider worker.  The worker sees
 * only this: what it needs of the daemon's state is copied in on the loop, and the volume it made
 * or changed comes back in 'cv', which (re)joins v->cowvols on the loop.  The name stays taken
 * (and the origin served) meanwhile. */
struct cowvol_op {
        struct cowvol_op *next;         /* v->cowvol_ops */
        enum { COWVOL_CREATE, COWVOL_DELETE, COWVOL_MOVE } kind;
        uint64_t serial;
        json_int_t id;
        char *name;
        /* Create: */
        char *origin;                   /* the image or device given, NULL: a new image in 'dir' */
        bool is_device;
        char *fs, *mnt;                 /* NULL when not given */
        json_int_t size;
        char dir[VSS_PATH_MAX];
        char bin[VSS_PATH_MAX];
        char *a_on;                     /* the shadow storage association of 'mnt', if any */
        char *a_for;
        int64_t a_max;
        unsigned min_diff_area_mb;
        char **served;                  /* name, origin, name, origin...: origins served already */
        size_t n_served;
        /* Create's results; Delete: the volume to tear down */
        struct cowvol *cv;
        bool own_image, created, adopted, event;
        char fs_found[64];
        char msg[1400];
        /* Move: the diff area goes to a_on (NULL: back to 'dir'), with maximum a_max */
        size_t n_shadows;               /* the catalog's shadow copies of the volume */
        char *keep[5];                  /* its files, as they were, for the freeze-protect list */
        bool offline;                   /* it was taken offline: record it and reconnect */
        char *olddiff;
        const char *note_level;         /* an event to log when done, NULL: none */
        vss_hresult note_hr;
        char note[1400];
        void (*moved)(struct vssd *v, vss_hresult hr, const char *err, void *userdata);
        void *moved_userdata;
};

struct cowvol_op *cowvol_op_free(struct cowvol_op *op);
void cowvol_op_unlink(struct vssd *v, struct cowvol_op *op);
/* Takes cv out of v->cowvols for a job on the worker: no timer, no event connection any more. */
void cowvol_hand_over(struct vssd *v, struct cowvol *cv);
/* strdup(s), NULL for NULL; *oom set when out of memory. */
char *cowvol_strdup(const char *s, bool *oom);
/* ON_VOL/.openvss/diff, where diff areas on that volume live; NULL when out of memory. */
char *cowvol_diff_dir(const char *on_vol);
struct cowvol *cowvol_free(struct cowvol *cv);
/* Records cv in the catalog (insert or replace).  0 or -EIO. */
int cowvol_put(struct vssd *v, const struct cowvol *cv);
/* The rest touch no daemon state: the provider worker calls them. */
void cowvol_server_stop(struct cowvol *cv);
void cowvol_diff_remove(const char *diff);
vss_hresult cowvol_diff_create_on(const char *on_vol, const char *name, char **ret_path, char *err, size_t errlen);
vss_hresult cowvol_attach(struct cowvol *cv, const char *mnt, bool mkfs, char *err, size_t errlen);

/* The event connection to cv's server (and its supervision ping): open, close. */
int cowvol_ev_open(struct vssd *v, struct cowvol *cv);
void cowvol_ev_close(struct vssd *v, struct cowvol *cv);
/* Deadlines of the commands run for a cow volume (docs/architecture.md, "Deadlines"): none of them
 * may hang vssd, and a filesystem whose FUSE server stopped answering makes any of them wait. */
#define LOSETUP_TIMEOUT_MS 10000
#define UMOUNT_TIMEOUT_MS 10000          /* umount -l: returns at once */
/* A plain umount writes the filesystem's dirty data back first. */
#define UMOUNT_SYNC_TIMEOUT_MS 120000
#define MOUNT_TIMEOUT_MS 60000
/* mkfs writes every inode table at once (no lazy init), through the volume server. */
#define MKFS_TIMEOUT_MS 600000

/* The vss-volsrv to start: [cow] volsrv_path, $VSS_VOLSRV, next to vssd, or the installed one. */
void cowvol_volsrv_binary(struct vssd *v, char *buf, size_t len);
/* Starts cv's volume server 'bin' (formatting its diff area if 'format', max: its limit) and waits
 * (at most 10 s) until it answers.  Touches no daemon state: the provider worker calls it too. */
vss_hresult cowvol_server_start(const char *bin, struct cowvol *cv, bool format, int64_t max, char *err,
                                size_t errlen);
/* cv->retry's callback: reconnects to, or restarts, a server that is gone. */
void cowvol_retry_cb(struct vssd *v, struct timer *t);
