/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Between cowvol.c (the volumes' lifecycle) and cowvol-server.c (their servers). */

#include <stdbool.h>
#include <stdint.h>

#include <vss/vss.h>

struct cowvol;
struct timer;
struct vssd;

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
