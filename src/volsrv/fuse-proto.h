/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The FUSE protocol of vss-volsrv's small tree, spoken on /dev/fuse without
 * libfuse (fuse-proto.c): one request in, at most one reply out.  Kept apart
 * from the device and the threads (fuse.c) so the fuzz target drives it with
 * arbitrary bytes.
 *
 * Everything a replacement server needs to go on answering the kernel on the
 * same connection lives in struct vfuse_state, a shared memory file that the
 * FUSE holder process keeps open (fuse.c, docs/volsrv.md "Handover"): the
 * negotiated protocol minor and the open file handles.  Node ids and file
 * handles are therefore never pointers: node ids are fixed (root, shadows/,
 * volume) or derived from the snapshot's sequence number (never reused), and
 * a file handle names a slot of the shared table plus its generation.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "cow/cow.h"

#define VFUSE_STATE_MAGIC 0x3145535546535356ull /* "VSSFUSE1" */
#define VFUSE_STATE_VERSION 1u
#define VFUSE_SLOTS 4096u

/* Node ids: fixed for the directories and the volume, 16 + seq for snapshots. */
#define VFUSE_NODE_ROOT 1u
#define VFUSE_NODE_SHADOWS 2u
#define VFUSE_NODE_VOLUME 3u
#define VFUSE_NODE_SHADOW_BASE 16u

/* See fuse.c for how these were chosen (measured with libfuse, kept). */
#define VFUSE_MAX_WRITE (64u * 1024u)
#define VFUSE_MAX_BACKGROUND 64u
/* Room for the largest request: header + write_in + VFUSE_MAX_WRITE, at least the
 * kernel's minimum read size; the headers sit in front of a page boundary so a
 * write's data is page aligned. */
#define VFUSE_HEAD_ROOM 4096u
#define VFUSE_IN_BUFFER (VFUSE_HEAD_ROOM + VFUSE_MAX_WRITE + 8192u)
#define VFUSE_OUT_BUFFER VFUSE_MAX_WRITE

/* Slot word: generation << 32 | flags; free when VFUSE_SLOT_USED is clear. */
#define VFUSE_SLOT_USED 1u
#define VFUSE_SLOT_VOLUME 2u
#define VFUSE_SLOT_WRITABLE 4u

struct vfuse_slot {
        uint64_t word;                  /* atomic */
        uint8_t guid[16];               /* snapshot slots */
        uint64_t nodeid;
};

struct vfuse_state {
        uint64_t magic;
        uint32_t version;
        uint32_t initialized;           /* INIT answered */
        uint32_t proto_minor;           /* negotiated */
        uint32_t max_write;
        uint64_t dev;                   /* st_dev of the mount */
        uint64_t handovers;             /* servers that took this connection over */
        uint32_t slot_hint;             /* atomic; where the next allocation starts looking */
        uint32_t pad;
        struct vfuse_slot slots[VFUSE_SLOTS];
};

struct vfuse_ctx {
        struct cow_volume *vol;
        uint64_t size;
        uint32_t uid, gid;
        struct vfuse_state *st;
        /* Writes a reply (or notification) whole; returns 0 or -errno. */
        int (*send)(void *userdata, const struct iovec *iov, int iovcnt);
        void *send_userdata;
};

/* Initializes a fresh state (a new mount). */
void vfuse_state_init(struct vfuse_state *st);
/* Checks a state handed over by the holder; 0 or -EBADMSG. */
int vfuse_state_check(const struct vfuse_state *st);
/* Live opens of the volume for writing recorded in the state: the replacement
 * takes them on (cow_live_open()) so a revert stays refused while they last. */
unsigned vfuse_state_writers(const struct vfuse_state *st);

/*
 * Handles one request of 'len' bytes (as read from /dev/fuse; 'req' 8-byte
 * aligned).  'out' is a per-thread buffer of VFUSE_OUT_BUFFER bytes for read
 * data and directory listings.  Returns 0 when handled (replied, or no reply
 * due), -EPROTO for a request too short to carry a header (nothing sent).
 */
int vfuse_handle(struct vfuse_ctx *c, const void *req, size_t len, void *out);

/* The FUSE_NOTIFY_RESEND notification (Linux 6.9+): the kernel queues again every
 * request that was read from the connection but not answered. */
int vfuse_notify_resend(struct vfuse_ctx *c);
