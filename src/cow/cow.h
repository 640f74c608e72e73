/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * openvss CoW engine: block-level copy-on-write snapshots of one origin
 * (image file or block device) into a diff area (a file elsewhere), for the
 * system provider.  No knowledge of FUSE, sockets or vssd: a volume server
 * calls cow_write()/cow_read()/cow_flush() for the live volume and
 * cow_snapshot_read() for shadow copies; the provider creates and deletes
 * snapshots by GUID and sets the shadow storage bound.
 *
 * Thread safety: every function may be called concurrently on one volume,
 * except cow_close().  Concurrent first writes share one diff-area flush pair
 * (group commit).  Snapshot creation holds new origin writes for the length
 * of one origin flush and one journal commit (the flush-and-hold instant).
 *
 * Errors: functions return 0 or a negative errno:
 *   -EINVAL   bad argument (range outside the origin, bad chunk size, ...)
 *   -ENOENT   no snapshot with that GUID (or it was deleted / evicted)
 *   -EEXIST   a snapshot with that GUID exists
 *   -EMLINK   COW_MAX_SNAPSHOTS reached
 *   -ESTALE   the snapshot was removed while the read was in progress
 *   -EBADMSG  the diff area is not a valid diff area (format it)
 *   -EPROTONOSUPPORT  unknown format version or incompatible features
 *   -EBUSY    the live volume is open for writing (cow_revert_start()), or
 *             is being reverted (cow_write(), cow_live_open())
 *   -EINPROGRESS  a revert runs: snapshots cannot be created, deleted or
 *             bounded, and no second revert can start
 *   -EIO/-ENOSPC/...  from the I/O layer
 * cow_errno_to_hresult() (cow-hresult.h) maps them to the VSS HRESULT a
 * caller should report.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cow/cow-io.h"

#define COW_MAX_SNAPSHOTS 512u
#define COW_CHUNK_MIN 4096u
#define COW_CHUNK_MAX (1024u * 1024u)
#define COW_CHUNK_DEFAULT (16u * 1024u)
#define COW_MAX_UNBOUNDED UINT64_MAX

struct cow_volume;

enum cow_event_type {
        /* Deleted to make room for a copy (VolSnap event 25). */
        COW_EVENT_SNAPSHOT_EVICTED,
        /* Dropped because the diff area failed (I/O error): origin writes go on. */
        COW_EVENT_SNAPSHOT_INVALIDATED,
        /* Found at open but its metadata cannot be proven complete: not served. */
        COW_EVENT_SNAPSHOT_LOST,
        /* Newer than the snapshot the volume was reverted to: deleted by the revert. */
        COW_EVENT_SNAPSHOT_DISCARDED,
        /* A revert ended: guid is its target, error 0 when the origin holds the
         * target's content, else why not (-ENOTRECOVERABLE: the revert cannot
         * be completed and the origin may hold a mixture). */
        COW_EVENT_REVERT_DONE,
};

struct cow_event {
        enum cow_event_type type;
        uint8_t guid[16];
        int error;                    /* negative errno behind it, 0 if none */
};

/* Called with the volume's lock held: it must not call back into the engine. */
typedef void (*cow_event_fn)(const struct cow_event *ev, void *userdata);

struct cow_format_params {
        uint32_t chunk_size;          /* 0 = COW_CHUNK_DEFAULT; power of two 4 KiB..1 MiB */
        uint64_t max_bytes;           /* 0 or COW_MAX_UNBOUNDED = unbounded */
};

struct cow_snapshot_info {
        uint8_t guid[16];
        uint32_t seq;                 /* creation order, 1-based, never reused */
        uint64_t ctime_ns;            /* CLOCK_REALTIME at creation */
        uint64_t copies;              /* chunks this snapshot owns in the diff area */
};

struct cow_stats {
        uint64_t used_bytes;          /* header + journal + live copies */
        uint64_t allocated_bytes;     /* diff area file size */
        uint64_t max_bytes;           /* COW_MAX_UNBOUNDED if unbounded */
        uint64_t origin_bytes;
        uint32_t chunk_size;
        uint32_t snapshots;
        uint64_t copies;              /* chunks copied since open */
        uint64_t commits;             /* journal commits (flush pairs) since open */
        uint64_t commit_ns;           /* time spent committing (lock dropped during I/O), in all */
        uint64_t evictions;
        uint64_t checkpoints;         /* journal compactions since open */
        uint64_t relocations;         /* copies moved by a shrink since open */
        uint64_t writebacks;          /* dirty chunks written to the origin since open */
        uint64_t dirty_bytes;         /* write-back buffers held now */
        uint64_t throttled;           /* writes that waited for a commit (over the limit) */
        uint64_t throttle_ns;         /* and how long, in all */
        uint64_t chunk_waits;         /* waits of writes for their chunk's write-back */
        uint64_t chunk_wait_ns;       /* and how long, in all */
        uint32_t live_writers;        /* cow_live_open()s not closed: a revert waits for 0 */
        uint64_t flushes;             /* cow_flush() calls (FUSE fsync, NBD FLUSH/FUA), not snapshot creation's */
        uint64_t flush_ns;            /* and how long they took, in all */
        uint64_t creates;             /* cow_snapshot_create() calls that succeeded */
        uint64_t create_ns;           /* their time in all, of which: */
        uint64_t create_hold_ns;      /*   waiting for writes in flight to finish (the hold) */
        uint64_t create_flush_ns;     /*   draining write-back and flushing the origin (invariant 5) */
};

/* Write an empty diff area for 'origin' onto 'diff' (its old content is ignored). */
int cow_format(struct cow_io *origin, struct cow_io *diff, const struct cow_format_params *p);

/* Open; takes neither I/O object's ownership (free them after cow_close()).
 * Snapshots that cannot be proven intact are reported via 'cb' as LOST. */
int cow_open(struct cow_io *origin, struct cow_io *diff, cow_event_fn cb, void *userdata,
             struct cow_volume **ret_vol);
/* Commits what is queued and records a clean shutdown; NULL-safe. */
struct cow_volume *cow_close(struct cow_volume *v);

/* The live volume. */
int cow_write(struct cow_volume *v, const void *buf, size_t len, uint64_t off);
int cow_read(struct cow_volume *v, void *buf, size_t len, uint64_t off);
int cow_flush(struct cow_volume *v);

/* Shadow copies. */
int cow_snapshot_create(struct cow_volume *v, const uint8_t guid[16]);
int cow_snapshot_delete(struct cow_volume *v, const uint8_t guid[16]);
int cow_snapshot_read(struct cow_volume *v, const uint8_t guid[16], void *buf, size_t len, uint64_t off);
/* Oldest first; *ret_list is malloc()ed (free() it). */
int cow_snapshot_list(struct cow_volume *v, struct cow_snapshot_info **ret_list, size_t *ret_n);

/* Shadow storage bound; COW_MAX_UNBOUNDED = unbounded.  Lowering it deletes the
 * oldest snapshots (reported as EVICTED) until the used space fits, then moves
 * the remaining copies below the bound and shrinks the diff area file to it
 * (as far as the metadata allows: allocated may stay a few KiB above). */
int cow_set_max(struct cow_volume *v, uint64_t max_bytes);
int cow_stats(struct cow_volume *v, struct cow_stats *ret);

/*
 * Revert: make the live volume's content exactly that of snapshot 'guid'
 * (cow-revert.c has the design).  The snapshot itself and the older ones stay;
 * the newer ones are deleted (each reported as DISCARDED).  Refused with
 * -EBUSY while the live volume is open for writing (cow_live_open()), with
 * -EINPROGRESS while another revert runs, -ENOENT for an unknown GUID.
 *
 * cow_revert_start() returns once the revert is recorded in the diff area:
 * from then on it completes, here or, after a crash or cow_close(), at the
 * next cow_open(), and never leaves a mixture.  The chunks are copied back by
 * a thread of the engine; meanwhile cow_read() returns the target's content,
 * cow_write() fails with -EBUSY.  cow_revert_wait() waits for that thread and
 * returns its result (0 when the origin holds the target's content, durably);
 * a revert that failed can be started again with the same GUID.
 * cow_revert() is both.
 */
int cow_revert_start(struct cow_volume *v, const uint8_t guid[16]);
int cow_revert_wait(struct cow_volume *v);
int cow_revert(struct cow_volume *v, const uint8_t guid[16]);

enum cow_revert_state {
        COW_REVERT_NONE,              /* no revert since open */
        COW_REVERT_RUNNING,
        COW_REVERT_DONE,              /* the last one completed */
        COW_REVERT_FAILED,            /* the last one stopped: error says why */
};

struct cow_revert_status {
        enum cow_revert_state state;
        uint8_t guid[16];             /* its target (not NONE) */
        uint64_t chunks_total;        /* chunks to copy back (known once copying) */
        uint64_t chunks_done;
        uint32_t discarded;           /* newer snapshots it deleted */
        int error;                    /* negative errno (FAILED, or DONE with a diff-area error after it) */
        bool pending;                 /* recorded in the diff area, not complete: reopening completes it */
        bool resumed;                 /* completed by cow_open() after an interruption */
};

int cow_revert_status(struct cow_volume *v, struct cow_revert_status *ret);

/* Front ends hold the live volume open for writing between these (a FUSE open
 * for writing, an NBD session on the live export): a revert is refused while
 * any is held, and cow_live_open() fails with -EBUSY while a revert runs. */
int cow_live_open(struct cow_volume *v);
void cow_live_close(struct cow_volume *v);

/* Tuning and tests: compact the journal into a fresh chain once it is longer
 * than 'min_blocks' blocks and twice what the live state needs (default 64);
 * 0 compacts at every commit (tests). */
int cow_set_checkpoint_blocks(struct cow_volume *v, uint64_t min_blocks);

/* Write-back of first writes after a snapshot (see cow-cache.c).  limit_bytes: dirty
 * chunk buffers held before writers wait for a commit; 0 (the default) makes
 * every such write wait for its own commit.  interval_ms > 0 (with a limit)
 * starts a thread that commits every interval_ms and whenever half the limit
 * is dirty, so writers rarely wait.  Acknowledged writes are durable after
 * cow_flush() either way. */
int cow_set_writeback(struct cow_volume *v, uint64_t limit_bytes, uint32_t interval_ms);

/*
 * Write-back buffers in memory that outlives the process (cow-wbarea.c): fd is
 * shared memory (a memfd) someone else keeps open too.  Whatever a predecessor
 * left in it (acknowledged writes not yet on the origin) is written back and
 * flushed first, then the memory is laid out anew and the write-back cache
 * uses it, as cow_set_writeback() with the same arguments.  *ret (optional)
 * says what was found; ret->error < 0 when the predecessor's writes could not
 * be written back (a corrupt area, an origin error): they are lost, and from
 * then on every cow_flush() fails with -EIO (recorded in the area, so it stays
 * so for the next process) until cow_set_flush_error(v, 0).
 */
struct cow_wb_info {
        bool formatted;               /* the memory held an area */
        bool lost;                    /* it says writes were lost before */
        uint64_t generation;          /* its generation (+1 at each attach) */
        uint64_t chunks;              /* dirty chunks it held */
        uint64_t bytes;               /* acknowledged bytes they held */
        int error;                    /* < 0: they could not be written back */
};
int cow_set_writeback_fd(struct cow_volume *v, uint64_t limit_bytes, uint32_t interval_ms, int fd,
                         struct cow_wb_info *ret);
/* A sticky error for cow_flush() (0 clears it): writes acknowledged before were lost. */
int cow_set_flush_error(struct cow_volume *v, int error);

/* Checks an area of len bytes for an origin of origin_size bytes and calls fn
 * for every run of acknowledged bytes it holds (fn may be NULL); -EBADMSG when
 * it is not a consistent area (fn is then never called), 0 for an empty one. */
typedef int (*cow_wb_run_fn)(const void *buf, size_t len, uint64_t off, void *userdata);
int cow_wb_scan(const void *area, size_t len, uint64_t origin_size, cow_wb_run_fn fn, void *userdata,
                struct cow_wb_info *ret);
