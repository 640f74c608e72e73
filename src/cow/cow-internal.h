/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Private declarations shared by the files of the CoW engine (never included
 * outside src/cow; the public interface is cow.h).  The engine is one volume
 * object, struct cow_volume, guarded by one mutex (v->lock), and these files:
 *
 *   cow-index.c    snapshots and the per-chunk index of copies (the model)
 *   cow-cache.c    the write-back cache of first writes (dirty chunks)
 *   cow-wbarea.c   the memory of that cache, shareable so it outlives a process
 *   cow-alloc.c    diff-area slots: allocation, freeing, shrinking
 *   cow-journal.c  the record queue, group commit, checkpoints, superblock
 *   cow-replay.c   format, open (journal replay) and reset of the diff area
 *   cow.c          the public API: live volume, snapshots, bound, statistics
 *   cow-revert.c   reverting the origin to a snapshot
 *   cow-format.c   on-disk encoding (cow-format.h), cow-io.c the file I/O ops
 *   cow-hresult.c  the errno -> HRESULT adapter, the engine's only use of vss.h
 *
 * The storage invariants are numbered once for the whole engine; each is
 * written out at the top of the file that enforces it and asserted there:
 *   (1) data -> flush -> COPY record               cow-journal.c
 *   (2) COPY record -> flush -> origin write       cow-cache.c
 *   (3) origin write after queued deletions        cow.c
 *   (4) freed slot reused after its deletion       cow-alloc.c
 *   (5) origin flushed before SNAP_CREATE          cow.c
 *   (6) journal blocks: committer only, ping-pong  cow-journal.c
 *   (7) checkpoint: new chain, flush, switch       cow-journal.c
 *   (8) replay validates every record              cow-replay.c
 *   (9) a revert is recorded before the origin     cow-revert.c
 *       changes, and completes at open
 *
 * Naming: functions shared between these files are cow__name(); everything
 * else is static in its file.  "Lock held" in a comment means v->lock.
 */

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "basic/macro.h"
#include "cow/cow-format.h"
#include "cow/cow.h"

/* entry flags */
#define E_USED    1u   /* allocated */
#define E_LINKED  2u   /* in head[]'s list; USED but not LINKED = orphan */
#define E_PENDING 4u   /* copy not yet durable: readers use the origin */
#define E_COPIED 16u   /* the committer wrote the copy's data (not yet durable) */

struct entry {
        uint64_t chunk;
        uint64_t slot;
        uint32_t owner;
        uint32_t next;          /* index + 1 of the next (older) entry of this chunk */
        uint32_t flags;
        uint32_t free_next;     /* free list of entries, index + 1 */
};

struct snap {
        uint32_t seq;
        uint8_t guid[16];
        uint64_t ctime;
        uint64_t copies;
};

struct qrec {
        struct cow_rec rec;
        uint32_t entry;         /* COPY: entry index + 1 */
};

struct pfree {
        uint64_t slot;
        uint64_t batch;         /* reusable once this batch is durable */
};

/* dirty chunk states (write-back, see cow-cache.c) */
#define D_FREE    0u
#define D_DIRTY   1u    /* valid sectors of buf are newer than the origin */
#define D_FILLING 2u    /* a writer reads a partly written sector: writers wait */
#define D_WRITING 3u    /* the committer is writing it to the origin: writers wait */
#define DBUCKETS  16384u
#define SECTOR    512u
#define PAGE      4096u         /* unit of dirty buffers (= COW_CHUNK_MIN) */
#define WB_RUN    (1024u * 1024u)
#define PREFETCH_GAP  (256u * 1024u)
#define PREFETCH_SPAN (8u * 1024u * 1024u)

/*
 * A dirty chunk holds only the 4 KiB pages that were written: a 4 KiB write
 * into a fresh 16 KiB chunk costs one page of the write-back limit, not four
 * (the worst case of bench/cow.sh, where every write hits a fresh chunk).
 */
struct dchunk {
        uint64_t chunk;
        uint8_t **pg;           /* chunk / PAGE pages, NULL until written; the
                                 * array is kept across reuse, the pages are not */
        uint64_t *valid;        /* per 512-byte sector: written (in its area descriptor) */
        struct cow_wbdesc *desc; /* its descriptor in the area (cow-wbarea.c) */
        uint64_t batch;         /* batch of its COPY record */
        uint32_t hnext;         /* hash chain or free list, index + 1 */
        uint32_t state;
};

/*
 * The write-back area (cow-wbarea.c): one mapping holding a header, a
 * descriptor per dirty chunk and the pages, so that a process that maps the
 * same shared memory after this one died can find every acknowledged write
 * that is not on the origin yet.  Native byte order: it never leaves the host.
 */
#define COW_WB_MAGIC "VSSCOWWB"
#define COW_WB_VERSION 1u
#define COW_WB_HEADER 4096u
#define COW_WB_LIVE 1u          /* header.state: formatted and in use */
#define COW_WB_LOST 1u          /* header.flags: a predecessor's writes were lost */
#define WBD_FREE  0u
#define WBD_DIRTY 1u

struct cow_wbheader {
        char magic[8];
        uint32_t version;
        uint32_t state;
        uint64_t generation;    /* +1 at each format: which server wrote it */
        uint64_t origin_size;
        uint32_t chunk_size;
        uint32_t page_size;
        uint32_t ndesc;
        uint32_t desc_size;
        uint64_t desc_off;
        uint64_t pages_off;
        uint32_t npages;
        uint32_t flags;
};

/* chunk, state, then valid words and page numbers (+1, 0 = none); desc_size apart */
struct cow_wbdesc {
        uint64_t chunk;
        uint32_t state;
        uint32_t reserved;
        uint64_t words[];
};

struct wbarea {
        uint8_t *base;          /* NULL: none yet */
        size_t len;
        bool shared;            /* a caller's fd (MAP_SHARED), else anonymous */
        struct cow_wbheader *hdr;
        size_t desc_size;
        uint8_t *pages;
};

struct cow_volume {
        struct cow_io *origin, *diff;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        /* Held shared by origin writes, exclusively by snapshot creation. */
        pthread_rwlock_t hold;

        struct cow_super sb;
        uint32_t chunk;
        unsigned shift;
        uint64_t origin_size, nchunks, data_start;
        uint32_t jslots;        /* slots per journal block pair */

        struct snap snaps[COW_MAX_SNAPSHOTS];   /* oldest first */
        unsigned nsnaps;
        uint32_t next_seq;

        uint32_t *head;         /* per chunk: entry index + 1 */
        struct entry *ent;
        uint32_t nent, aent, ent_free;

        uint64_t hwm;           /* slots [0, hwm) are in use or free-listed */
        uint64_t file_slots;    /* slots covered by the file */
        uint64_t *free_slots;
        size_t nfree, afree;
        struct pfree *pfree;
        size_t npfree, apfree;
        uint64_t max_bytes;
        /* While > 0, the diff area is being shrunk to this many slots (see
         * cow__relocate()): no slot at or above it is handed out. */
        uint64_t trim;

        /* journal: only the committer touches these while committing */
        struct cow_jblock jcur;
        uint64_t jslot;         /* slot of jcur */
        uint64_t jcommit;       /* last durable commit number */
        uint64_t *jchain;       /* slots of the chain's blocks, head first */
        size_t njchain, ajchain;
        uint64_t ckpt_min;      /* checkpoint when the chain is longer than this */
        uint64_t nused_ent;
        uint8_t *jbuf;          /* 4096-aligned encode buffer */

        struct qrec *q;
        size_t nq, aq;
        uint64_t batch_next, batch_done, last_queued, last_delete;
        bool committing;
        bool failed;            /* diff area failed: no snapshots until reopen */
        bool replaying;
        uint8_t *replay_map;    /* while replaying: per-slot use, see cow-replay.c */

        /* write-back: dirty chunks by chunk number (hash), pool by index */
        uint32_t *dbucket;
        struct dchunk *dch;
        size_t adch;
        uint32_t ndch, dch_free;
        uint32_t nready;        /* dirty chunks (any state): reads must look (atomic) */
        uint32_t nfilling;
        uint64_t dirty_bytes;   /* their pages */
        void *pool;             /* free pages, linked through their first word */
        struct wbarea wa;       /* where pages and descriptors live */
        uint64_t npages;        /* in the area */
        int flush_error;        /* sticky: every cow_flush() fails with it */
        uint8_t *wbbuf;         /* the committer's write-back gather buffer */
        uint64_t wb_limit;
        uint32_t wb_interval_ms;
        int wb_error;           /* an origin write-back failed: the next flush says so */
        bool wb_started, wb_stop;
        pthread_t wb_thread;
        pthread_cond_t wb_cond;

        /* revert (cow-revert.c) */
        uint32_t revert_seq;    /* the target while a revert is recorded (= sb.revert_seq), else 0 */
        bool reverting;         /* the same, for cow_read() (atomic): reads return the target */
        unsigned live_writers;  /* cow_live_open()s not closed */
        bool revert_running;    /* the revert thread copies chunks back */
        bool revert_joinable;   /* it was started and nobody joined it yet */
        bool revert_stop;       /* cow_close(): stop copying, the next open completes */
        pthread_t revert_thread;
        struct cow_revert_status revert_st;

        cow_event_fn cb;
        void *userdata;
        uint64_t stat_copies, stat_commits, stat_evictions, stat_checkpoints, stat_writebacks;
        uint64_t stat_relocations, stat_throttled, stat_throttle_ns, stat_chunk_waits, stat_chunk_wait_ns;
        uint64_t stat_flushes, stat_flush_ns, stat_commit_ns, stat_creates, stat_create_ns, stat_create_hold_ns, stat_create_flush_ns;
};

#define REASON_USER 0
#define REASON_EVICTED 1
#define REASON_INVALID 2
#define REASON_REVERTED 3       /* newer than the target of a revert */
/* Copies moved per commit, so that a large shrink does not hold the
 * committer (and writers waiting for a commit) for long. */
#define RELOC_MAX 4096u

struct reloc {
        uint32_t entry;
        uint64_t chunk, from, to;
};

/* Chunks in one gathered write of WB_RUN bytes (at least one). */
static inline size_t run_chunks(const struct cow_volume *v)
{
        return MAX((size_t) 1, (size_t) WB_RUN >> v->shift);
}

static inline uint64_t slot_off(struct cow_volume *v, uint64_t slot)
{
        return v->data_start + (slot << v->shift);
}

static inline int grow_array(void **p, size_t *alloc, size_t need, size_t elem)
{
        size_t n;
        void *x;

        if (need <= *alloc)
                return 0;
        n = *alloc ? *alloc : 64;
        while (n < need)
                n *= 2;
        x = realloc(*p, n * elem);
        if (!x)
                return -ENOMEM;
        *p = x;
        *alloc = n;
        return 0;
}

static inline int cmp_u64(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;

        return x < y ? -1 : x > y;
}

/* The 64-bit words of a chunk's per-sector bitmap (a write-back descriptor's valid map). */
static inline size_t valid_words(uint32_t chunk)
{
        return ((chunk / SECTOR) + 63) / 64;
}

static inline bool sect_bit(const uint64_t *map, uint32_t s)
{
        return map[s / 64] >> (s % 64) & 1;
}

/* cow-index.c: snapshots and the per-chunk index of copies */
int cow__find_snap_guid(struct cow_volume *v, const uint8_t guid[16]);
int cow__find_snap_seq(struct cow_volume *v, uint32_t seq);
void cow__emit(struct cow_volume *v, enum cow_event_type type, const uint8_t guid[16], int error);
int cow__entry_new(struct cow_volume *v, uint64_t chunk, uint64_t slot, uint32_t owner, uint32_t flags,
                   uint32_t *ret_idx);
void cow__entry_free(struct cow_volume *v, uint32_t i);
void cow__entry_link(struct cow_volume *v, uint32_t i);
void cow__entry_unlink(struct cow_volume *v, uint32_t i);
uint32_t cow__lookup(struct cow_volume *v, uint64_t c, uint32_t seq);
void cow__snap_remove(struct cow_volume *v, unsigned idx, uint64_t reason, int error);

/* cow-cache.c: dirty chunks of the write-back cache */
uint32_t cow__dfind(struct cow_volume *v, uint64_t c);
int cow__dnew(struct cow_volume *v, uint64_t c, uint32_t *ret);
int cow__dfill(struct cow_volume *v, uint32_t idx, uint64_t cs, uint64_t ce);
int cow__dput(struct cow_volume *v, struct dchunk *d, const uint8_t *src, size_t len, uint64_t off);
int cow__dread(struct cow_volume *v, uint32_t idx, uint8_t *p, size_t len, uint64_t off);
void cow__writeback(struct cow_volume *v);
void cow__drain(struct cow_volume *v);
void cow__throttle(struct cow_volume *v);
void cow__wb_thread_stop(struct cow_volume *v);
void cow__cache_free(struct cow_volume *v);
void cow__wait_memory(struct cow_volume *v);

/* cow-wbarea.c: the area behind the dirty chunks */
int cow__area_ensure(struct cow_volume *v);
void cow__area_unmap(struct cow_volume *v);
uint64_t *cow__desc_valid(const struct cow_volume *v, struct cow_wbdesc *d);
uint32_t *cow__desc_pages(const struct cow_volume *v, struct cow_wbdesc *d);

/* cow-alloc.c: diff-area slots, and moving copies for a shrink */
uint64_t cow__used_slots(struct cow_volume *v);
uint64_t cow__live_bytes(struct cow_volume *v);
int cow__ensure_file(struct cow_volume *v, uint64_t slots);
void cow__free_sort(struct cow_volume *v, size_t from);
int cow__free_push(struct cow_volume *v, uint64_t slot);
void cow__slot_release(struct cow_volume *v, uint64_t slot, uint64_t batch);
void cow__pfree_settle(struct cow_volume *v);
int cow__alloc_slot(struct cow_volume *v, uint64_t *ret_slot);
int cow__alloc_jslot(struct cow_volume *v, uint64_t *ret_slot);
int cow__relocate(struct cow_volume *v, struct reloc **ret, size_t *ret_n);
void cow__trim_tail(struct cow_volume *v);

/* cow-journal.c: the record queue, group commit, superblock, errors */
int cow__queue_rec(struct cow_volume *v, const struct cow_rec *rec, uint32_t entry);
int cow__write_super(struct cow_volume *v);
void cow__enter_error(struct cow_volume *v, int error);
int cow__write_jblock(struct cow_volume *v, uint64_t commit);
int cow__chain_push(struct cow_volume *v, uint64_t slot);
int cow__zero_pair(struct cow_volume *v, uint64_t slot);
void cow__do_commit(struct cow_volume *v);
void cow__wait_batch(struct cow_volume *v, uint64_t b);
void cow__commit_all(struct cow_volume *v);

/* cow-replay.c: format and open */
void cow__volume_free(struct cow_volume *v);

/* cow.c */
int cow__snap_read(struct cow_volume *v, uint32_t seq, uint8_t *p, size_t len, uint64_t off);

/* cow-revert.c */
int cow__revert_resume(struct cow_volume *v, bool lost);
void cow__revert_stop(struct cow_volume *v);
