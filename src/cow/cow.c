/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The CoW engine: one origin, one diff area, up to 512 snapshots sharing one
 * copy of every changed chunk.
 *
 * Model.  Snapshots are ordered by a sequence number (seq, never reused).  A
 * copy of origin chunk c is always taken for the NEWEST snapshot (its owner)
 * on the first write to c after that snapshot was created.  Reading snapshot S
 * at chunk c uses the copy with the smallest owner >= S.seq, else the origin:
 * if S has no copy of its own, c did not change between S and that owner, so
 * the owner's copy is S's data too.  Per chunk, copies form a short list
 * ordered by owner, newest first (index head[c]).  Deleting S hands each of
 * its copies down to the next older live snapshot P unless P has its own copy
 * of that chunk (then nobody needs it and the slot is freed).
 *
 * The write path is O(1) in the number of snapshots: the list of chunk c is
 * sorted newest owner first, so "already copied since the newest snapshot" is
 * one compare of the head's owner with the newest seq; creating a snapshot
 * just gives it a new seq, which invalidates that answer for every chunk at
 * once without touching any (a generation check instead of a bitmap clear).
 *
 * Durability (the diff area is a log, see cow-format.c for the layout).  A
 * journal of 32-byte records (COPY, SNAP_CREATE, SNAP_DELETE, SET_MAX) lives
 * in 4 KiB blocks chained through the diff area; each block has two copies
 * written alternately (ping-pong by commit number), so a torn write of the
 * current block can only lose the records of the commit being written.
 * Records are appended to an in-memory queue and written by group commit:
 * whoever needs a commit while none runs becomes the leader, takes the whole
 * queue, and does one flush pair for everybody.
 *
 * Invariants (asserted where they are relied on):
 *  (1) A COPY record is written only after the copied data has been written
 *      and the diff area flushed (data -> flush -> record).
 *  (2) An origin write that needs a copy starts only after the COPY record
 *      describing that copy is durable (record -> flush -> origin write).
 *  (3) An origin write starts only after every SNAP_DELETE queued before it
 *      is durable: otherwise a crash could resurrect a deleted snapshot whose
 *      chunk we overwrote without copying it.
 *  (4) A diff-area slot freed by a deletion is reused only after the
 *      SNAP_DELETE record that freed it is durable (pending_free -> free).
 *  (5) A SNAP_CREATE record is written only after the origin was flushed with
 *      new origin writes held, so every write acknowledged before the snapshot
 *      is durable before the snapshot exists on disk.
 *  (6) Journal blocks are written only by the committer (one at a time); the
 *      copy of a block that is written is never the last valid one.
 *  (7) A checkpoint writes the whole state as a new chain in fresh slots,
 *      flushes, then points both superblock copies at it; the old chain's
 *      slots are reused only after that.
 *  (8) At open, every record is validated against the state it applies to;
 *      a chain shorter than the superblock's durable_commit, an unknown or
 *      inconsistent record, or the ERROR flag makes every snapshot LOST: the
 *      engine never serves a snapshot from metadata it cannot prove complete.
 *
 * Write-back.  A first write after a snapshot does not wait for its copy: the
 * writer puts the new data in a memory buffer (a dirty chunk, which records
 * the 512-byte sectors written), queues the COPY record and returns.  Reads of
 * the volume merge the buffer with the origin, which still holds the old data:
 * that is what snapshots read until the copy is durable.  The committer (a
 * writer over the write-back limit, cow_flush(), snapshot creation, or the
 * write-back thread) copies the batch's old chunks from the origin into their
 * slots, makes copies and records durable with one flush pair, and only then
 * writes the dirty sectors to the origin (invariant 2).  So an acknowledged write is durable
 * after the next cow_flush(), as on any disk with a volatile cache; a power
 * cut before that may lose it, and never makes a snapshot read newer data.
 * Limit 0 (the default) makes every first write wait for its own commit.
 *
 * On a diff-area I/O error all snapshots are invalidated (reported through the
 * event callback), the ERROR flag is written to the superblock if possible,
 * and origin writes keep going through.  Creating snapshots then fails until
 * the volume is reopened (which resets the diff area).
 */

#include <assert.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <string.h>
#include <time.h>
#include <uuid/uuid.h>

#include "basic/macro.h"
#include "basic/time-util.h"
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

/* dirty chunk states (write-back, see the top of this file) */
#define D_FREE    0u
#define D_DIRTY   1u    /* valid sectors of buf are newer than the origin */
#define D_FILLING 2u    /* a writer reads a partly written sector: writers wait */
#define D_WRITING 3u    /* the committer is writing it to the origin: writers wait */
#define DBUCKETS  16384u
#define SECTOR    512u
#define PAGE      4096u         /* unit of dirty buffers (= COW_CHUNK_MIN) */
#define WB_RUN    (1024u * 1024u)
#define SLAB_PAGES 64u
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
        uint64_t *valid;        /* per 512-byte sector: written (after pg) */
        uint64_t batch;         /* batch of its COPY record */
        uint32_t hnext;         /* hash chain or free list, index + 1 */
        uint32_t state;
};

struct slab {
        uint8_t *p;
        size_t len;
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
         * relocate()): no slot at or above it is handed out. */
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
        uint8_t *replay_map;    /* while replaying: per-slot use, see replay() */

        /* write-back: dirty chunks by chunk number (hash), pool by index */
        uint32_t *dbucket;
        struct dchunk *dch;
        size_t adch;
        uint32_t ndch, dch_free;
        uint32_t nready;        /* dirty chunks (any state): reads must look (atomic) */
        uint32_t nfilling;
        uint64_t dirty_bytes;   /* their pages */
        void *pool;             /* free pages, linked through their first word */
        struct slab *slabs;     /* where the pages come from */
        size_t nslabs, aslabs;
        uint64_t npages;        /* in all slabs */
        uint8_t *wbbuf;         /* the committer's write-back gather buffer */
        uint64_t wb_limit;
        uint32_t wb_interval_ms;
        int wb_error;           /* an origin write-back failed: the next flush says so */
        bool wb_started, wb_stop;
        pthread_t wb_thread;
        pthread_cond_t wb_cond;

        cow_event_fn cb;
        void *userdata;
        uint64_t stat_copies, stat_commits, stat_evictions, stat_checkpoints, stat_writebacks;
        uint64_t stat_relocations, stat_throttled, stat_throttle_ns, stat_chunk_waits, stat_chunk_wait_ns;
};

/* Chunks in one gathered write of WB_RUN bytes (at least one). */
static size_t run_chunks(const struct cow_volume *v)
{
        return MAX((size_t) 1, (size_t) WB_RUN >> v->shift);
}

static uint64_t slot_off(struct cow_volume *v, uint64_t slot)
{
        return v->data_start + (slot << v->shift);
}

static int grow_array(void **p, size_t *alloc, size_t need, size_t elem)
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

/* ---- snapshots ---- */

static int find_snap_guid(struct cow_volume *v, const uint8_t guid[16])
{
        for (unsigned i = 0; i < v->nsnaps; i++)
                if (memcmp(v->snaps[i].guid, guid, 16) == 0)
                        return (int) i;
        return -1;
}

static int find_snap_seq(struct cow_volume *v, uint32_t seq)
{
        unsigned lo = 0, hi = v->nsnaps;

        while (lo < hi) {
                unsigned mid = (lo + hi) / 2;
                if (v->snaps[mid].seq == seq)
                        return (int) mid;
                if (v->snaps[mid].seq < seq)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return -1;
}

static void emit(struct cow_volume *v, enum cow_event_type type, const uint8_t guid[16], int error)
{
        struct cow_event ev = { .type = type, .error = error };

        if (guid)
                memcpy(ev.guid, guid, 16);
        if (v->cb)
                v->cb(&ev, v->userdata);
}

/* ---- entries and the per-chunk index ---- */

static int entry_new(struct cow_volume *v, uint64_t chunk, uint64_t slot, uint32_t owner, uint32_t flags,
                     uint32_t *ret_idx)
{
        uint32_t i;

        if (v->ent_free) {
                i = v->ent_free - 1;
                v->ent_free = v->ent[i].free_next;
        } else {
                if (v->nent == UINT32_MAX - 1)
                        return -ENOMEM;
                size_t a = v->aent;
                if (grow_array((void **) &v->ent, &a, (size_t) v->nent + 1, sizeof(struct entry)) < 0)
                        return -ENOMEM;
                v->aent = (uint32_t) MIN(a, (size_t) UINT32_MAX);
                i = v->nent++;
        }
        v->ent[i] = (struct entry) { .chunk = chunk, .slot = slot, .owner = owner, .flags = flags | E_USED };
        v->nused_ent++;
        *ret_idx = i;
        return 0;
}

static void entry_free(struct cow_volume *v, uint32_t i)
{
        assert(v->ent[i].flags & E_USED);
        assert(!(v->ent[i].flags & E_LINKED));
        v->ent[i].flags = 0;
        v->nused_ent--;
        v->ent[i].free_next = v->ent_free;
        v->ent_free = i + 1;
}

static void entry_link(struct cow_volume *v, uint32_t i)
{
        struct entry *e = &v->ent[i];

        /* New copies always belong to the newest snapshot: the list stays sorted. */
        assert(!v->head[e->chunk] || v->ent[v->head[e->chunk] - 1].owner < e->owner);
        e->next = v->head[e->chunk];
        v->head[e->chunk] = i + 1;
        e->flags |= E_LINKED;
}

static void entry_unlink(struct cow_volume *v, uint32_t i)
{
        struct entry *e = &v->ent[i];
        uint32_t *p = &v->head[e->chunk];

        while (*p != i + 1) {
                assert(*p);
                p = &v->ent[*p - 1].next;
        }
        *p = e->next;
        e->next = 0;
        e->flags &= ~E_LINKED;
}

/* The copy snapshot 'seq' reads chunk c from: smallest owner >= seq. */
static uint32_t lookup(struct cow_volume *v, uint64_t c, uint32_t seq)
{
        uint32_t cand = 0;

        for (uint32_t e = v->head[c]; e && v->ent[e - 1].owner >= seq; e = v->ent[e - 1].next)
                cand = e;
        return cand;
}

/* ---- dirty chunks (write-back) ---- */

static uint32_t dfind(struct cow_volume *v, uint64_t c)
{
        uint32_t i = v->dbucket[c % DBUCKETS];

        while (i && v->dch[i - 1].chunk != c)
                i = v->dch[i - 1].hnext;
        return i;
}

static size_t valid_words(struct cow_volume *v)
{
        return ((v->chunk / SECTOR) + 63) / 64;
}

static bool sect_bit(const uint64_t *map, uint32_t s)
{
        return map[s / 64] >> (s % 64) & 1;
}

/* The last sector of the run from s (at most 'last') whose bits equal s's. */
static uint32_t sect_run(const uint64_t *map, uint32_t s, uint32_t last)
{
        bool set = sect_bit(map, s);

        while (s < last && sect_bit(map, s + 1) == set)
                s++;
        return s;
}

/*
 * Pages come from slabs and go back to a pool, never to the system: a first
 * write after a snapshot costs no allocation and no page fault (expensive on
 * a paravirtualised VM) once the pool covers the load, which the write-back
 * limit bounds.  cow_set_writeback() reserves the limit's worth up front,
 * populated; a pool that runs dry grows by SLAB_PAGES.
 */
static int slab_add(struct cow_volume *v, size_t pages, bool populate)
{
        uint8_t *p;

        if (grow_array((void **) &v->slabs, &v->aslabs, v->nslabs + 1, sizeof(struct slab)) < 0)
                return -ENOMEM;
        p = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | (populate ? MAP_POPULATE : 0), -1, 0);
        if (p == MAP_FAILED)
                return -ENOMEM;
        v->slabs[v->nslabs++] = (struct slab) { p, pages * PAGE };
        v->npages += pages;
        for (size_t k = pages; k-- > 0;) {
                *(void **) (p + k * PAGE) = v->pool;
                v->pool = p + k * PAGE;
        }
        return 0;
}

static void page_put(struct cow_volume *v, uint8_t *p)
{
        v->dirty_bytes -= PAGE;
        *(void **) p = v->pool;
        v->pool = p;
}

static uint8_t *page_get(struct cow_volume *v)
{
        uint8_t *p;

        if (!v->pool && slab_add(v, SLAB_PAGES, false) < 0)
                return NULL;
        p = v->pool;
        v->pool = *(void **) p;
        v->dirty_bytes += PAGE;
        return p;
}

/* Page k of dirty chunk d, taken from the pool if it has none yet; NULL if out of memory. */
static uint8_t *dpage(struct cow_volume *v, struct dchunk *d, uint32_t k)
{
        uint8_t *p = d->pg[k];

        if (p)
                return p;
        /* Not cleared: only sectors marked written are ever read from it. */
        p = page_get(v);
        if (!p)
                return NULL;
        return d->pg[k] = p;
}

/* Copy len bytes at chunk offset 'in' out of d's pages (written sectors only). */
static void dcopy_out(const struct dchunk *d, uint8_t *dst, uint32_t in, size_t len)
{
        while (len > 0) {
                uint32_t k = in / PAGE, o = in % PAGE;
                size_t n = MIN(len, (size_t) (PAGE - o));

                assert(d->pg[k]);
                memcpy(dst, d->pg[k] + o, n);
                dst += n, in += (uint32_t) n, len -= n;
        }
}

/* The reverse: len bytes into d's pages at chunk offset 'in' (dreserve()d). */
static void dcopy_in(struct dchunk *d, uint32_t in, const uint8_t *src, size_t len)
{
        while (len > 0) {
                uint32_t k = in / PAGE, o = in % PAGE;
                size_t n = MIN(len, (size_t) (PAGE - o));

                assert(d->pg[k]);
                memcpy(d->pg[k] + o, src, n);
                src += n, in += (uint32_t) n, len -= n;
        }
}

/* Reserve the pages [in, in+len) of d needs; -ENOMEM leaves d as it was
 * apart from pages taken (harmless: their sectors are not marked written). */
static int dreserve(struct cow_volume *v, struct dchunk *d, uint32_t in, size_t len)
{
        for (uint32_t k = in / PAGE; k <= (in + (uint32_t) len - 1) / PAGE; k++)
                if (!dpage(v, d, k))
                        return -ENOMEM;
        return 0;
}

/* A DIRTY chunk for c (which has none) with nothing written yet, index + 1. */
static int dnew(struct cow_volume *v, uint64_t c, uint32_t *ret)
{
        struct dchunk *d;
        uint32_t i;

        if (v->dch_free) {
                i = v->dch_free - 1;
                v->dch_free = v->dch[i].hnext;
        } else {
                if (v->ndch == UINT32_MAX - 1 ||
                    grow_array((void **) &v->dch, &v->adch, (size_t) v->ndch + 1, sizeof(struct dchunk)) < 0)
                        return -ENOMEM;
                i = v->ndch++;
                v->dch[i].pg = NULL;
        }
        d = &v->dch[i];
        if (!d->pg) {
                d->pg = calloc(1, (v->chunk / PAGE) * sizeof(uint8_t *) + valid_words(v) * 8);
                if (!d->pg) {
                        d->hnext = v->dch_free;
                        v->dch_free = i + 1;
                        return -ENOMEM;
                }
        }
        d->valid = (uint64_t *) (d->pg + v->chunk / PAGE);
        memset(d->valid, 0, valid_words(v) * 8);
        d->chunk = c;
        d->state = D_DIRTY;
        d->batch = v->batch_next;
        d->hnext = v->dbucket[c % DBUCKETS];
        v->dbucket[c % DBUCKETS] = i + 1;
        __atomic_store_n(&v->nready, v->nready + 1, __ATOMIC_RELEASE);
        *ret = i + 1;
        return 0;
}

static void dfree(struct cow_volume *v, uint32_t idx)
{
        struct dchunk *d = &v->dch[idx - 1];
        uint32_t *p = &v->dbucket[d->chunk % DBUCKETS];

        while (*p != idx) {
                assert(*p);
                p = &v->dch[*p - 1].hnext;
        }
        *p = d->hnext;
        __atomic_store_n(&v->nready, v->nready - 1, __ATOMIC_RELEASE);
        d->state = D_FREE;
        d->hnext = v->dch_free;
        v->dch_free = idx;
        for (uint32_t k = 0; k < v->chunk / PAGE; k++)
                if (d->pg[k]) {
                        page_put(v, d->pg[k]);
                        d->pg[k] = NULL;
                }
}

/*
 * A write of [cs, ce) into dirty chunk d that covers a sector only partly
 * needs that sector's old bytes first: read them from the origin (which a
 * dirty chunk's sectors reach only at write-back).  Lock held; dropped for
 * the read, with d FILLING so other writers wait.
 */
static int dfill(struct cow_volume *v, uint32_t idx, uint64_t cs, uint64_t ce)
{
        uint64_t base = v->dch[idx - 1].chunk << v->shift;
        uint32_t want[2], nw = 0;
        uint8_t tmp[2][SECTOR];
        int r = 0;

        if (cs % SECTOR)
                want[nw++] = (uint32_t) ((cs - base) / SECTOR);
        if (ce % SECTOR && (nw == 0 || (ce - base) / SECTOR != want[0]))
                want[nw++] = (uint32_t) ((ce - base) / SECTOR);
        for (uint32_t k = 0; k < nw; k++)
                if (sect_bit(v->dch[idx - 1].valid, want[k]))
                        want[k--] = want[--nw];
        if (nw == 0)
                return 0;
        v->dch[idx - 1].state = D_FILLING;
        v->nfilling++;
        pthread_mutex_unlock(&v->lock);
        for (uint32_t k = 0; k < nw && r >= 0; k++) {
                uint64_t so = base + (uint64_t) want[k] * SECTOR;
                size_t n = (size_t) MIN((uint64_t) SECTOR, v->origin_size - so);
                memset(tmp[k], 0, SECTOR);
                r = cow_io_pread(v->origin, tmp[k], n, so);
        }
        pthread_mutex_lock(&v->lock);
        for (uint32_t k = 0; k < nw && r >= 0; k++) {
                struct dchunk *d = &v->dch[idx - 1];

                if (!dpage(v, d, want[k] * SECTOR / PAGE)) {
                        r = -ENOMEM;
                        break;
                }
                dcopy_in(d, want[k] * SECTOR, tmp[k], SECTOR);
                d->valid[want[k] / 64] |= 1ull << (want[k] % 64);
        }
        v->dch[idx - 1].state = D_DIRTY;
        v->nfilling--;
        pthread_cond_broadcast(&v->cond);
        return r;
}

/* Put [off, off+len), inside dirty chunk d, into it (partial sectors filled):
 * all of it, or nothing on -ENOMEM. */
static int dput(struct cow_volume *v, struct dchunk *d, const uint8_t *src, size_t len, uint64_t off)
{
        uint32_t in = (uint32_t) (off & (v->chunk - 1));

        if (dreserve(v, d, in, len) < 0)
                return -ENOMEM;
        dcopy_in(d, in, src, len);
        for (uint32_t s = in / SECTOR; s <= (in + (uint32_t) len - 1) / SECTOR; s++)
                d->valid[s / 64] |= 1ull << (s % 64);
        return 0;
}

/* Read [off, off+len), inside chunk c, as the volume holds it.  Lock held on
 * entry, released on return. */
static int dread(struct cow_volume *v, uint32_t idx, uint8_t *p, size_t len, uint64_t off)
{
        uint32_t in = (uint32_t) (off & (v->chunk - 1)), s0 = in / SECTOR, s1 = (in + (uint32_t) len - 1) / SECTOR;
        uint64_t mask[(COW_CHUNK_MAX / SECTOR) / 64];
        const struct dchunk *d = &v->dch[idx - 1];
        int r = 0;

        memcpy(mask, d->valid, valid_words(v) * 8);
        for (uint32_t s = s0, e; s <= s1; s = e + 1) {
                uint64_t a, b;

                e = sect_run(mask, s, s1);
                if (!sect_bit(mask, s))
                        continue;
                a = MAX((uint64_t) s * SECTOR, (uint64_t) in);
                b = MIN((uint64_t) (e + 1) * SECTOR, (uint64_t) in + len);
                dcopy_out(d, p + (a - in), (uint32_t) a, b - a);
        }
        pthread_mutex_unlock(&v->lock);
        /* Sectors nobody wrote since the copy: the origin still has them. */
        for (uint32_t s = s0, e; s <= s1 && r >= 0; s = e + 1) {
                uint64_t a, b;

                e = sect_run(mask, s, s1);
                if (sect_bit(mask, s))
                        continue;
                a = MAX((uint64_t) s * SECTOR, (uint64_t) in);
                b = MIN((uint64_t) (e + 1) * SECTOR, (uint64_t) in + len);
                r = cow_io_pread(v->origin, p + (a - in), b - a, off - in + a);
        }
        return r;
}

struct wb {
        uint32_t idx;
        struct dchunk d;
};

static int cmp_wb(const void *a, const void *b)
{
        const struct wb *x = a, *y = b;

        return x->d.chunk < y->d.chunk ? -1 : x->d.chunk > y->d.chunk;
}

struct wbrun {
        uint8_t *buf;           /* WB_RUN bytes */
        const uint8_t *single;  /* the run is this one piece of a page, not in buf */
        uint64_t off;
        size_t len;
        int error;              /* the first failed write */
};

static void wbrun_flush(struct cow_volume *v, struct wbrun *run)
{
        if (run->len > 0) {
                int q = cow_io_pwrite(v->origin, run->single ?: run->buf, run->len, run->off);

                if (q < 0 && run->error == 0)
                        run->error = q;
        }
        run->len = 0;
        run->single = NULL;
}

/* Append len bytes (within one page) for origin offset off. */
static void wbrun_add(struct cow_volume *v, struct wbrun *run, const uint8_t *src, size_t len, uint64_t off)
{
        if (run->len > 0 && (off != run->off + run->len || run->len + len > WB_RUN))
                wbrun_flush(v, run);
        if (run->len == 0) {
                /* A run of one piece (scattered small writes) is written
                 * from the page itself. */
                run->off = off;
                run->single = src;
                run->len = len;
                return;
        }
        if (run->single) {
                memcpy(run->buf, run->single, run->len);
                run->single = NULL;
        }
        memcpy(run->buf + run->len, src, len);
        run->len += len;
}

/* Written sectors of w[0..k), in chunk order, gathered into writes of up to
 * WB_RUN bytes: sequential first writes reach the origin as large writes. */
static int writeback_io(struct cow_volume *v, const struct wb *w, size_t k, uint8_t *buf)
{
        const uint32_t ns = v->chunk / SECTOR;
        struct wbrun run = { .buf = buf };

        for (size_t j = 0; j < k; j++) {
                const struct dchunk *d = &w[j].d;
                uint64_t base = d->chunk << v->shift;

                for (uint32_t s = 0, e; s < ns; s = e + 1) {
                        uint32_t in = s * SECTOR, end;

                        e = sect_run(d->valid, s, ns - 1);
                        if (!sect_bit(d->valid, s))
                                continue;
                        end = (uint32_t) MIN((uint64_t) (e + 1) * SECTOR, v->origin_size - base);
                        /* page by page: pages are not contiguous in memory */
                        while (in < end) {
                                uint32_t m = MIN(end - in, PAGE - in % PAGE);

                                wbrun_add(v, &run, d->pg[in / PAGE] + in % PAGE, m, base + in);
                                in += m;
                        }
                }
        }
        wbrun_flush(v, &run);
        return run.error;
}

/*
 * Write dirty chunks whose COPY record is durable (or that need no copy any
 * more: the diff area failed) to the origin, their written sectors only.
 * Called by the committer with the lock held; drops it for the I/O.
 * Chunks go out in chunk order, in groups of one gathered write's worth, and
 * each is WRITING only while its group is written: a writer that hits one
 * waits for a few writes, not for the whole batch.  Marking the batch at once
 * stalled a serial NBD connection for ~30 ms per 64 MiB batch whenever a random
 * write hit any of its chunks: 150-180 ms of a 1.3 s pass.
 */
static void writeback(struct cow_volume *v)
{
        const size_t group = run_chunks(v);
        _cleanup_free_ struct wb *w = NULL;
        size_t n = 0, k = 0;

        for (uint32_t i = 0; i < v->ndch; i++)
                if (v->dch[i].state == D_DIRTY && (v->dch[i].batch <= v->batch_done || v->failed))
                        n++;
        if (n == 0)
                return;
        w = malloc(n * sizeof(*w));
        if (!v->wbbuf && posix_memalign((void **) &v->wbbuf, 4096, WB_RUN) != 0)
                v->wbbuf = NULL;
        if (!w || !v->wbbuf)
                return;         /* retried at the next commit */
        for (uint32_t i = 0; i < v->ndch && k < n; i++) {
                const struct dchunk *d = &v->dch[i];

                if (d->state != D_DIRTY || (d->batch > v->batch_done && !v->failed))
                        continue;
                w[k].idx = i + 1;
                w[k++].d.chunk = d->chunk;
        }
        /* Only writeback frees dirty chunks, and only the committer runs it:
         * the indices stay valid while the lock is dropped. */
        pthread_mutex_unlock(&v->lock);
        qsort(w, k, sizeof(*w), cmp_wb);
        pthread_mutex_lock(&v->lock);
        for (size_t g = 0; g < k; g += group) {
                size_t end = MIN(g + group, k), m = 0;
                int r;

                for (size_t j = g; j < end; j++) {
                        struct dchunk *d = &v->dch[w[j].idx - 1];

                        /* A FILLING chunk is left for the next commit. */
                        if (d->state != D_DIRTY)
                                continue;
                        /* Nobody changes a WRITING chunk: its pages are read unlocked. */
                        d->state = D_WRITING;
                        w[g + m++] = (struct wb) { w[j].idx, *d };
                }
                pthread_mutex_unlock(&v->lock);
                /* wbbuf is the committer's own. */
                r = writeback_io(v, w + g, m, v->wbbuf);
                pthread_mutex_lock(&v->lock);
                if (r < 0 && v->wb_error == 0)
                        v->wb_error = r;
                for (size_t j = g; j < g + m; j++)
                        dfree(v, w[j].idx);
                v->stat_writebacks += m;
                pthread_cond_broadcast(&v->cond);
        }
}

struct cpair {
        uint64_t chunk, slot;
        size_t rec;             /* index in the commit's records */
};

static int cmp_cpair(const void *a, const void *b)
{
        const struct cpair *x = a, *y = b;

        return x->chunk < y->chunk ? -1 : x->chunk > y->chunk;
}

/*
 * The copies of one batch: old chunk -> its slot, for every COPY record the
 * commit is about to write (invariant 1).  The origin still holds those chunks'
 * old data: their writes wait in dirty chunks until this batch is durable.
 * Runs of consecutive slots are written with one write each, gathered from
 * reads of the origin that cover consecutive chunks in one read; all reads
 * are prefetched first so they overlap.  The caller sorted p by chunk and
 * gave the slots out in the same order (so random first writes still make
 * sequential diff-area writes).
 */
static int copy_batch(struct cow_volume *v, const struct cpair *p, size_t n)
{
        const size_t maxrun = run_chunks(v);
        _cleanup_free_ uint8_t *buf = NULL;
        int r = 0;

        if (n == 0)
                return 0;
        if (posix_memalign((void **) &buf, 4096, maxrun << v->shift) != 0)
                return -ENOMEM;
        /* One hint per span of nearby chunks, not per chunk: on a cached
         * origin each hint is a wasted system call, on a cold one reading a
         * gap of up to PREFETCH_GAP costs less than a separate request. */
        for (size_t i = 0, j; i < n; i = j) {
                uint64_t off = p[i].chunk << v->shift, end;

                for (j = i + 1; j < n && ((p[j].chunk - p[j - 1].chunk - 1) << v->shift) <= PREFETCH_GAP &&
                                ((p[j].chunk - p[i].chunk) << v->shift) < PREFETCH_SPAN; j++)
                        ;
                end = MIN((p[j - 1].chunk + 1) << v->shift, v->origin_size);
                cow_io_prefetch(v->origin, off, (size_t) (end - off));
        }
        for (size_t i = 0, j; i < n && r >= 0; i = j) {
                for (j = i + 1; j < n && j - i < maxrun && p[j].slot == p[j - 1].slot + 1; j++)
                        ;
                /* Slots [i, j) are consecutive: gather their chunks, in runs. */
                for (size_t a = i, b; a < j && r >= 0; a = b) {
                        uint64_t off = p[a].chunk << v->shift;
                        size_t len, got;

                        for (b = a + 1; b < j && p[b].chunk == p[b - 1].chunk + 1; b++)
                                ;
                        len = (b - a) << v->shift;
                        got = (size_t) MIN((uint64_t) len, v->origin_size - off);
                        r = cow_io_pread(v->origin, buf + ((a - i) << v->shift), got, off);
                        if (got < len)
                                memset(buf + ((a - i) << v->shift) + got, 0, len - got);
                }
                if (r >= 0)
                        r = cow_io_pwrite(v->diff, buf, (j - i) << v->shift, slot_off(v, p[i].slot));
        }
        return r;
}

/* ---- slots ---- */

static uint64_t used_slots(struct cow_volume *v)
{
        return v->hwm - v->nfree;
}

static uint64_t live_bytes(struct cow_volume *v)
{
        return v->data_start + ((used_slots(v) - v->npfree) << v->shift);
}

static int ensure_file(struct cow_volume *v, uint64_t slots)
{
        uint64_t want, step;
        int r;

        if (slots <= v->file_slots)
                return 0;
        /* Grow in steps of >= 4 MiB (and >= 64 chunks) so growth stays rare. */
        step = MAX((uint64_t) 64, (4ULL << 20) >> v->shift);
        want = MAX(slots, v->file_slots + step);
        if (v->max_bytes != COW_MAX_UNBOUNDED && v->data_start + (want << v->shift) > v->max_bytes)
                want = MAX(slots, (v->max_bytes - MIN(v->max_bytes, v->data_start)) >> v->shift);
        r = cow_io_resize(v->diff, v->data_start + (want << v->shift));
        if (r == -EOPNOTSUPP) {
                /* A block device: its size is its size. */
                uint64_t sz;
                r = cow_io_size(v->diff, &sz);
                if (r < 0)
                        return r;
                v->file_slots = sz > v->data_start ? (sz - v->data_start) >> v->shift : 0;
                return slots <= v->file_slots ? 0 : -ENOSPC;
        }
        if (r < 0)
                return r;
        v->file_slots = want;
        return 0;
}

static int cmp_u64(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;

        return x < y ? -1 : x > y;
}

static int cmp_u64_desc(const void *a, const void *b)
{
        return cmp_u64(b, a);
}

/*
 * Sorts free_slots[from, nfree) highest first.  Allocation pops from the end,
 * so the lowest go first, in ascending order: copies of consecutive chunks
 * land in consecutive slots, each run one diff-area write (copy_batch).  The
 * list is NULL until a slot is freed.
 */
static void free_sort(struct cow_volume *v, size_t from)
{
        if (v->nfree > from)
                qsort(v->free_slots + from, v->nfree - from, sizeof(uint64_t), cmp_u64_desc);
}

static int free_push(struct cow_volume *v, uint64_t slot)
{
        if (grow_array((void **) &v->free_slots, &v->afree, v->nfree + 1, sizeof(uint64_t)) < 0)
                return -ENOMEM;
        v->free_slots[v->nfree++] = slot;
        return 0;
}

static void slot_release(struct cow_volume *v, uint64_t slot, uint64_t batch)
{
        if (v->replaying) {
                /* Replay rebuilds the free list from the map at the end. */
                v->replay_map[slot] = 0;
                return;
        }
        if (v->failed || batch <= v->batch_done) {
                if (free_push(v, slot) < 0)
                        return;  /* leaked until reopen; never reused while referenced */
                return;
        }
        if (grow_array((void **) &v->pfree, &v->apfree, v->npfree + 1, sizeof(struct pfree)) < 0)
                return;
        v->pfree[v->npfree++] = (struct pfree) { .slot = slot, .batch = batch };
}

static void pfree_settle(struct cow_volume *v)
{
        size_t j = 0, n0 = v->nfree;

        for (size_t i = 0; i < v->npfree; i++) {
                /* Invariant (4): the deletion that freed it is durable. */
                if (v->failed || v->pfree[i].batch <= v->batch_done) {
                        if (free_push(v, v->pfree[i].slot) < 0)
                                v->pfree[j++] = v->pfree[i];
                } else
                        v->pfree[j++] = v->pfree[i];
        }
        v->npfree = j;
        /* In release order the freed slots were scattered and every copy
         * after a deletion became its own 16 KiB write. */
        free_sort(v, n0);
}

static void free_remove(struct cow_volume *v, size_t i, size_t n)
{
        memmove(v->free_slots + i, v->free_slots + i + n, (v->nfree - i - n) * sizeof(uint64_t));
        v->nfree -= n;
}

/*
 * Take 'n' (1 or 2) consecutive free slots below v->trim; false if none.  A
 * shrink sorts the free list highest first, so the lowest slots are at the
 * end and pairs are neighbours; removal keeps that order.
 */
static bool free_take_low(struct cow_volume *v, uint32_t n, uint64_t *ret_slot)
{
        for (size_t i = v->nfree; i-- > 0;) {
                uint64_t s = v->free_slots[i];

                if (s + n > v->trim)
                        continue;
                if (n == 2) {
                        if (i == 0 || v->free_slots[i - 1] != s + 1)
                                continue;
                        i--;
                }
                free_remove(v, i, n);
                *ret_slot = s;
                return true;
        }
        return false;
}

/* A data slot within the shadow storage bound, or -ENOSPC. */
static int alloc_slot(struct cow_volume *v, uint64_t *ret_slot)
{
        int r;

        if (v->max_bytes != COW_MAX_UNBOUNDED &&
            v->data_start + ((used_slots(v) + 1) << v->shift) > v->max_bytes)
                return -ENOSPC;
        if (v->trim > 0 && free_take_low(v, 1, ret_slot))
                return 0;
        if (v->trim == 0 && v->nfree > 0) {
                *ret_slot = v->free_slots[--v->nfree];
                return 0;
        }
        if (v->trim > 0 && v->hwm + 1 > v->trim)
                return -ENOSPC;
        if (v->max_bytes != COW_MAX_UNBOUNDED && v->data_start + ((v->hwm + 1) << v->shift) > v->max_bytes)
                return -ENOSPC;
        r = ensure_file(v, v->hwm + 1);
        if (r < 0)
                return -ENOSPC;         /* could not grow in time: evict (VolSnap event 25) */
        *ret_slot = v->hwm++;
        return 0;
}

/*
 * Journal blocks are metadata: they may exceed the bound by a few KiB.  They
 * reuse free slots like copies do (a checkpoint frees the old chain's pairs
 * together, so they are found at the top of the free list), else extend the
 * area; while shrinking, they go below the new end if they can.
 */
static int alloc_jslot(struct cow_volume *v, uint64_t *ret_slot)
{
        size_t nf = v->nfree;
        int r;

        if (v->trim > 0 && v->jslots <= 2 && free_take_low(v, v->jslots, ret_slot))
                return 0;
        if (v->trim == 0 && v->jslots == 1 && nf > 0) {
                *ret_slot = v->free_slots[--v->nfree];
                return 0;
        }
        if (v->trim == 0 && v->jslots == 2 && nf > 1) {
                uint64_t a = MIN(v->free_slots[nf - 1], v->free_slots[nf - 2]);
                uint64_t b = MAX(v->free_slots[nf - 1], v->free_slots[nf - 2]);

                if (b == a + 1) {
                        *ret_slot = a;
                        v->nfree -= 2;
                        return 0;
                }
        }
        r = ensure_file(v, v->hwm + v->jslots);
        if (r < 0)
                return r;
        *ret_slot = v->hwm;
        v->hwm += v->jslots;
        return 0;
}

/* ---- the record queue and group commit ---- */

static int queue_rec(struct cow_volume *v, const struct cow_rec *rec, uint32_t entry)
{
        if (v->replaying)
                return 0;
        if (grow_array((void **) &v->q, &v->aq, v->nq + 1, sizeof(struct qrec)) < 0)
                return -ENOMEM;
        v->q[v->nq++] = (struct qrec) { .rec = *rec, .entry = entry };
        v->last_queued = v->batch_next;
        if (rec->type == COW_REC_SNAP_DELETE)
                v->last_delete = v->batch_next;
        return 0;
}

static void enter_error(struct cow_volume *v, int error);

static void snap_remove(struct cow_volume *v, unsigned idx, uint64_t reason, int error)
{
        struct snap s = v->snaps[idx];
        struct snap *p = idx > 0 ? &v->snaps[idx - 1] : NULL;
        struct cow_rec rec = { .type = COW_REC_SNAP_DELETE, .seq = s.seq, .a = reason };
        uint64_t batch;

        if (!v->failed && queue_rec(v, &rec, 0) < 0) {
                enter_error(v, -ENOMEM);
                return;
        }
        batch = v->batch_next;

        for (uint32_t i = 0; i < v->nent; i++) {
                struct entry *e = &v->ent[i];
                uint32_t nx;

                if (!(e->flags & E_LINKED) || e->owner != s.seq)
                        continue;
                nx = e->next;
                if (p && !(nx && v->ent[nx - 1].owner == p->seq)) {
                        /* P reads this copy through S today: hand it down. */
                        e->owner = p->seq;
                        p->copies++;
                        continue;
                }
                entry_unlink(v, i);
                if (e->flags & E_PENDING)
                        continue;       /* orphan: its writer or the commit releases it */
                slot_release(v, e->slot, batch);
                entry_free(v, i);
        }
        memmove(&v->snaps[idx], &v->snaps[idx + 1], (v->nsnaps - idx - 1) * sizeof(struct snap));
        v->nsnaps--;

        if (!v->replaying && reason == 1)
                emit(v, COW_EVENT_SNAPSHOT_EVICTED, s.guid, 0);
        else if (!v->replaying && reason == 2)
                emit(v, COW_EVENT_SNAPSHOT_INVALIDATED, s.guid, error);
}

#define REASON_USER 0
#define REASON_EVICTED 1
#define REASON_INVALID 2

static int write_super(struct cow_volume *v)
{
        _cleanup_free_ uint8_t *buf = NULL;
        int r;

        if (posix_memalign((void **) &buf, 4096, 4096) != 0)
                return -ENOMEM;
        memset(buf, 0, 4096);
        v->sb.generation++;
        cow_super_encode(&v->sb, buf);
        r = cow_io_pwrite(v->diff, buf, 4096, (v->sb.generation % 2) * COW_SB_SLOT);
        if (r < 0)
                return r;
        return cow_io_flush(v->diff);
}

static void enter_error(struct cow_volume *v, int error)
{
        if (v->failed)
                return;
        v->failed = true;
        v->nq = 0;
        while (v->nsnaps > 0)
                snap_remove(v, 0, REASON_INVALID, error);
        pfree_settle(v);
        /* Best effort: if the diff area takes this write, reopening reports LOST
         * instead of trusting a journal that misses copies. */
        v->sb.incompat |= COW_INCOMPAT_ERROR;
        (void) write_super(v);
        (void) write_super(v);
        pthread_cond_broadcast(&v->cond);
}

static int write_jblock(struct cow_volume *v, uint64_t commit)
{
        v->jcur.commit = commit;
        cow_jblock_encode(&v->jcur, v->jbuf);
        /* Invariant (6): copy (commit % 2) never holds the last valid version,
         * which was written by an earlier commit of the other parity. */
        return cow_io_pwrite(v->diff, v->jbuf, COW_JB_SIZE, slot_off(v, v->jslot) + (commit % 2) * COW_JB_SIZE);
}

static int chain_push(struct cow_volume *v, uint64_t slot)
{
        if (grow_array((void **) &v->jchain, &v->ajchain, v->njchain + 1, sizeof(uint64_t)) < 0)
                return -ENOMEM;
        v->jchain[v->njchain++] = slot;
        return 0;
}

/* A journal pair is zeroed before any block can point to it, so stale bytes
 * there (an old block of a lost commit, say) can never be read as valid. */
static int zero_pair(struct cow_volume *v, uint64_t slot)
{
        _cleanup_free_ uint8_t *z = NULL;

        if (posix_memalign((void **) &z, 4096, 2 * COW_JB_SIZE) != 0)
                return -ENOMEM;
        memset(z, 0, 2 * COW_JB_SIZE);
        return cow_io_pwrite(v->diff, z, 2 * COW_JB_SIZE, slot_off(v, slot));
}

static bool checkpoint_due(struct cow_volume *v)
{
        uint64_t live = v->nused_ent + v->nsnaps + 2;

        if (v->ckpt_min == 0)
                return true;    /* tests: every commit is a checkpoint */
        return v->njchain > v->ckpt_min && v->njchain > 2 * (live / COW_JB_CAPACITY + 1);
}

static int cmp_owner(const void *a, const void *b, void *userdata)
{
        const struct entry *ent = userdata;
        uint32_t x = ent[*(const uint32_t *) a].owner, y = ent[*(const uint32_t *) b].owner;

        return x < y ? -1 : x > y;
}

/*
 * Compaction: write the whole state as a fresh chain (per snapshot, oldest
 * first: SNAP_CREATE then its COPY records, so every COPY is for the newest
 * snapshot at its point of replay), then move the superblock to it and free
 * the old chain.  Runs as the committer, instead of appending the queue: the
 * in-memory state already contains the queued records' effects.  Copies whose
 * data is not written yet (pending, not copied by this commit) are left out;
 * their records come later, in the new chain.  Lock held on entry and exit.
 */
static int checkpoint(struct cow_volume *v, uint64_t commit)
{
        _cleanup_free_ uint32_t *idx = NULL;
        _cleanup_free_ struct cow_rec *recs = NULL;
        _cleanup_free_ uint64_t *slots = NULL, *old = NULL;
        _cleanup_free_ struct cow_jblock *jb = NULL;
        size_t ni = 0, nr = 0, nb, nold, k = 0;
        uint64_t seq0 = v->jcur.block_seq + 2, oldnext = v->jcur.next_slot;
        int r = 0;

        idx = calloc(v->nent ? v->nent : 1, sizeof(uint32_t));
        recs = calloc(v->nused_ent + v->nsnaps + 2, sizeof(struct cow_rec));
        jb = calloc(1, sizeof(*jb));
        if (!idx || !recs || !jb)
                return -ENOMEM;
        for (uint32_t i = 0; i < v->nent; i++) {
                uint32_t f = v->ent[i].flags;
                if ((f & E_LINKED) && (!(f & E_PENDING) || (f & E_COPIED)))
                        idx[ni++] = i;
        }
        qsort_r(idx, ni, sizeof(uint32_t), cmp_owner, v->ent);
        recs[nr++] = (struct cow_rec) { .type = COW_REC_SET_MAX, .a = v->max_bytes };
        for (unsigned s = 0; s < v->nsnaps; s++) {
                struct cow_rec c = { .type = COW_REC_SNAP_CREATE, .seq = v->snaps[s].seq, .c = v->snaps[s].ctime };
                for (int b = 0; b < 8; b++) {
                        c.a |= (uint64_t) v->snaps[s].guid[b] << (8 * b);
                        c.b |= (uint64_t) v->snaps[s].guid[8 + b] << (8 * b);
                }
                recs[nr++] = c;
                for (; k < ni && v->ent[idx[k]].owner == v->snaps[s].seq; k++)
                        recs[nr++] = (struct cow_rec) { .type = COW_REC_COPY, .seq = v->snaps[s].seq,
                                                        .a = v->ent[idx[k]].chunk, .b = v->ent[idx[k]].slot };
        }
        assert(k == ni);
        recs[nr++] = (struct cow_rec) { .type = COW_REC_NEXT_SEQ, .a = v->next_seq };

        /* The last block is never full, so appending continues in it. */
        nb = nr / COW_JB_CAPACITY + 1;
        slots = calloc(nb + 1, sizeof(uint64_t));
        if (!slots)
                return -ENOMEM;
        for (size_t b = 0; b <= nb; b++) {
                r = alloc_jslot(v, &slots[b]);
                if (r < 0)
                        return r;
        }
        old = TAKE_PTR(v->jchain);
        nold = v->njchain;
        v->njchain = v->ajchain = 0;
        pthread_mutex_unlock(&v->lock);

        /* No flush needed first: the new chain (and the copies its records
         * describe) becomes reachable only through the superblock, which is
         * written after the flush below (invariant 1 holds at the switch). */
        for (size_t b = 0; r >= 0 && b < nb; b++) {
                size_t first = b * COW_JB_CAPACITY, n = MIN((size_t) COW_JB_CAPACITY, nr - first);
                memset(jb, 0, sizeof(*jb));
                memcpy(jb->uuid, v->sb.uuid, 16);
                jb->block_seq = seq0 + b;
                jb->commit = commit;
                jb->next_slot = slots[b + 1];
                jb->count = (uint32_t) n;
                memcpy(jb->rec, recs + first, n * sizeof(struct cow_rec));
                /* Zeros into the other half only: writes in one flush window may
                 * be reordered, so they must not overlap the block. */
                memset(v->jbuf, 0, COW_JB_SIZE);
                r = cow_io_pwrite(v->diff, v->jbuf, COW_JB_SIZE,
                                  slot_off(v, slots[b]) + ((commit + 1) % 2) * COW_JB_SIZE);
                if (r < 0)
                        break;
                cow_jblock_encode(jb, v->jbuf);
                r = cow_io_pwrite(v->diff, v->jbuf, COW_JB_SIZE,
                                  slot_off(v, slots[b]) + (commit % 2) * COW_JB_SIZE);
        }
        if (r >= 0)
                r = zero_pair(v, slots[nb]);
        if (r >= 0)
                r = cow_io_flush(v->diff);
        if (r >= 0) {
                v->sb.journal_head_slot = slots[0];
                v->sb.journal_head_seq = seq0;
                v->sb.durable_commit = commit;
                /* The switch, into both copies: the old chain's slots are reused
                 * next, so no superblock may point to it any more. */
                r = write_super(v);
                if (r >= 0)
                        r = write_super(v);
        }
        pthread_mutex_lock(&v->lock);
        if (r < 0) {
                free(v->jchain);
                v->jchain = TAKE_PTR(old);
                v->njchain = v->ajchain = nold;
                return r;
        }
        v->jcur = *jb;
        v->jslot = slots[nb - 1];
        for (size_t b = 0; b < nb && r >= 0; b++)
                r = chain_push(v, slots[b]);
        /* The old chain is unreachable now: its slots are free. */
        for (size_t b = 0; b < nold; b++)
                for (uint32_t j = 0; j < v->jslots; j++)
                        (void) free_push(v, old[b] + j);
        for (uint32_t j = 0; j < v->jslots; j++)
                (void) free_push(v, oldnext + j);
        return r;
}

/* Copies moved per commit, so that a large shrink does not hold the
 * committer (and writers waiting for a commit) for long. */
#define RELOC_MAX 4096u

struct reloc {
        uint32_t entry;
        uint64_t chunk, from, to;
};

static int cmp_reloc_from(const void *a, const void *b)
{
        const struct reloc *x = a, *y = b;

        return x->from < y->from ? -1 : x->from > y->from;
}

/*
 * Shrinking the diff area (cow_set_max below the file size): the copies in
 * slots at or above v->trim move to free slots below it, and the checkpoint
 * that follows in the same commit describes them at their new place.  Until
 * that checkpoint's superblock is durable the journal on disk still names the
 * old slots, which nobody writes (they are not free yet), so a crash at any
 * point leaves either the old or the new layout, both complete.  Run by the
 * committer; lock held, dropped for the I/O.  Returns the number moved (the
 * old slots are in *ret, to free after the checkpoint) or a negative errno.
 * The copies move in slot order to the lowest free slots, also in order, so
 * runs of neighbours move with one read and one write of up to WB_RUN.
 */
static int relocate(struct cow_volume *v, struct reloc **ret, size_t *ret_n)
{
        const size_t maxrun = run_chunks(v);
        _cleanup_free_ struct reloc *rl = NULL;
        _cleanup_free_ uint64_t *to = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        size_t n = 0, a = 0, k = 0;
        int r = 0;

        if (posix_memalign((void **) &buf, 4096, maxrun << v->shift) != 0)
                return 0;       /* not now: the file stays larger */
        for (uint32_t i = 0; i < v->nent && n < RELOC_MAX; i++) {
                const struct entry *e = &v->ent[i];
                uint64_t t;

                if (!(e->flags & E_LINKED) || e->slot < v->trim ||
                    ((e->flags & E_PENDING) && !(e->flags & E_COPIED)))
                        continue;
                if (!free_take_low(v, 1, &t))
                        break;          /* no room below: a partial shrink */
                if (grow_array((void **) &rl, &a, n + 1, sizeof(*rl)) < 0) {
                        (void) free_push(v, t);
                        break;
                }
                rl[n++] = (struct reloc) { i, e->chunk, e->slot, t };
        }
        if (n == 0)
                return 0;
        to = malloc(n * sizeof(uint64_t));
        if (to) {
                for (size_t j = 0; j < n; j++)
                        to[j] = rl[j].to;
                qsort(to, n, sizeof(uint64_t), cmp_u64);
                qsort(rl, n, sizeof(*rl), cmp_reloc_from);
                for (size_t j = 0; j < n; j++)
                        rl[j].to = to[j];
        }
        pthread_mutex_unlock(&v->lock);
        for (size_t j = 0, m; j < n && r >= 0; j += m) {
                for (m = 1; j + m < n && m < maxrun && rl[j + m].from == rl[j].from + m &&
                            rl[j + m].to == rl[j].to + m; m++)
                        ;
                r = cow_io_pread(v->diff, buf, m << v->shift, slot_off(v, rl[j].from));
                if (r >= 0)
                        r = cow_io_pwrite(v->diff, buf, m << v->shift, slot_off(v, rl[j].to));
        }
        pthread_mutex_lock(&v->lock);
        for (size_t j = 0; j < n; j++) {
                struct entry *e = &v->ent[rl[j].entry];

                /* Deleted (its slot released, the entry maybe reused) while we
                 * copied: the new copy is not needed.  A copy handed down to an
                 * older snapshot keeps its slot and moves. */
                if (r < 0 || !(e->flags & E_LINKED) || e->slot != rl[j].from || e->chunk != rl[j].chunk) {
                        (void) free_push(v, rl[j].to);
                        continue;
                }
                /* Readers that took the old slot see the change and read again
                 * (cow_snapshot_read), before the old slot can be reused. */
                e->slot = rl[j].to;
                rl[k++] = rl[j];
        }
        if (r < 0)
                return r;
        v->stat_relocations += k;
        *ret = TAKE_PTR(rl);
        *ret_n = k;
        return 0;
}

/* Give free slots at the end of the diff area back to the file system. */
static void trim_tail(struct cow_volume *v)
{
        uint64_t keep;
        int r;

        /* The top is at the front. */
        free_sort(v, 0);
        keep = 0;
        while (keep < v->nfree && v->free_slots[keep] == v->hwm - 1 - keep)
                keep++;
        memmove(v->free_slots, v->free_slots + keep, (v->nfree - keep) * sizeof(uint64_t));
        v->nfree -= keep;
        v->hwm -= keep;
        if (v->hwm >= v->file_slots)
                return;
        r = cow_io_resize(v->diff, v->data_start + (v->hwm << v->shift));
        if (r >= 0)
                v->file_slots = v->hwm;
}

/*
 * One group commit, taken apart in the phases below.  do_commit() runs them
 * in order with the lock held; the phases that do I/O drop it for the I/O.
 */
struct commit {
        struct qrec *recs;      /* the batch: the whole queue, in queue order */
        size_t n;
        uint64_t batch;         /* writers of the batch wait for batch_done to reach it */
        uint64_t number;        /* journal commit number: its parity picks the block copy */
        bool trimming;          /* a shrink runs: this commit moves copies and checkpoints */
        struct reloc *rl;       /* copies the shrink moved: old slots free after the switch */
        size_t nrl;
};

/* Phase 1: become the committer and take the whole queue as the batch. */
static void commit_take(struct cow_volume *v, struct commit *c)
{
        assert(!v->committing);
        v->committing = true;
        c->batch = v->batch_next++;
        c->recs = TAKE_PTR(v->q);
        c->n = v->nq;
        v->nq = v->aq = 0;
        c->number = v->jcommit + 1;
}

/*
 * Phase 2: the old data of every COPY record of the batch into its slot
 * (invariant 1 needs it written before the flush that precedes the records).
 * The batch's slots are given out again in chunk order, so random first
 * writes still make sequential diff-area writes; nobody reads a pending
 * copy's slot, so the swap is invisible.
 */
static int commit_copies(struct cow_volume *v, struct commit *c)
{
        _cleanup_free_ struct cpair *cp = NULL;
        _cleanup_free_ uint64_t *slots = NULL;
        size_t ncp = 0;
        int r;

        for (size_t i = 0; i < c->n; i++)
                ncp += c->recs[i].rec.type == COW_REC_COPY;
        if (ncp == 0)
                return 0;
        cp = malloc(ncp * sizeof(struct cpair));
        slots = malloc(ncp * sizeof(uint64_t));
        if (!cp || !slots)
                return -ENOMEM;
        for (size_t i = 0, j = 0; i < c->n; i++)
                if (c->recs[i].rec.type == COW_REC_COPY) {
                        slots[j] = c->recs[i].rec.b;
                        cp[j++] = (struct cpair) { c->recs[i].rec.a, c->recs[i].rec.b, i };
                }
        qsort(cp, ncp, sizeof(*cp), cmp_cpair);
        qsort(slots, ncp, sizeof(uint64_t), cmp_u64);
        for (size_t j = 0; j < ncp; j++) {
                struct qrec *q = &c->recs[cp[j].rec];

                cp[j].slot = q->rec.b = slots[j];
                if (q->entry)
                        v->ent[q->entry - 1].slot = slots[j];
        }
        pthread_mutex_unlock(&v->lock);
        r = copy_batch(v, cp, ncp);
        pthread_mutex_lock(&v->lock);
        if (r < 0)
                return r;
        for (size_t i = 0; i < c->n; i++)
                if (c->recs[i].entry)
                        v->ent[c->recs[i].entry - 1].flags |= E_COPIED;
        return 0;
}

/*
 * Phase 3a: the batch as a checkpoint instead of an append (invariant 7):
 * when the chain is long, or a shrink (cow_set_max) moves copies, which the
 * new chain then names at their new places.
 */
static int commit_checkpoint(struct cow_volume *v, struct commit *c)
{
        int r;

        if (c->trimming) {
                r = relocate(v, &c->rl, &c->nrl);
                if (r < 0)
                        return r;
        }
        r = checkpoint(v, c->number);
        if (r < 0)
                return r;
        v->jcommit = c->number;
        v->stat_commits++;
        v->stat_checkpoints++;
        /* The new chain names the new slots: the old ones are free. */
        for (size_t i = 0; i < c->nrl; i++)
                (void) free_push(v, c->rl[i].from);
        return 0;
}

/*
 * Phase 3b: append the batch's records to the journal, one flush before them
 * (invariant 1) and one after (invariant 2).  Every block the records fill
 * needs its successor's pair reserved and zeroed first (invariant 6).
 */
static int commit_append(struct cow_volume *v, struct commit *c)
{
        _cleanup_free_ uint64_t *nexts = NULL;
        size_t room = COW_JB_CAPACITY - v->jcur.count, need = 0, k = 0;
        int r = 0;

        if (c->n >= room)
                need = (c->n - room) / COW_JB_CAPACITY + 1;
        nexts = calloc(need ? need : 1, sizeof(uint64_t));
        if (!nexts)
                return -ENOMEM;
        for (size_t i = 0; i < need; i++) {
                r = alloc_jslot(v, &nexts[i]);
                if (r < 0)
                        return r;
        }
        pthread_mutex_unlock(&v->lock);

        for (size_t i = 0; r >= 0 && i < need; i++)
                r = zero_pair(v, nexts[i]);
        /* Invariant (1): copies written by the queued COPY records' writers
         * are made durable before any record describing them. */
        if (r >= 0)
                r = cow_io_flush(v->diff);
        for (size_t i = 0; r >= 0 && i < c->n; i++) {
                v->jcur.rec[v->jcur.count++] = c->recs[i].rec;
                if (v->jcur.count < COW_JB_CAPACITY)
                        continue;
                r = write_jblock(v, c->number);
                if (r < 0)
                        break;
                /* The next block was reserved when this one started. */
                assert(k < need);
                v->jslot = v->jcur.next_slot;
                v->jcur.block_seq++;
                v->jcur.next_slot = nexts[k++];
                v->jcur.count = 0;
                if (chain_push(v, v->jslot) < 0)
                        r = -ENOMEM;
        }
        if (r >= 0 && v->jcur.count > 0)
                r = write_jblock(v, c->number);
        if (r >= 0)
                r = cow_io_flush(v->diff);      /* invariant (2) */

        pthread_mutex_lock(&v->lock);
        if (r >= 0) {
                v->jcommit = c->number;
                v->stat_commits++;
        }
        return r;
}

/*
 * Phase 4: the batch is durable (or the diff area failed): its copies become
 * readable, orphans and settled deletions free their slots, a shrink cuts the
 * file, the batch's dirty chunks go to the origin, and waiters wake.
 */
static void commit_complete(struct cow_volume *v, struct commit *c, int r)
{
        if (r < 0)
                enter_error(v, r);
        for (size_t i = 0; i < c->n; i++) {
                struct entry *e;

                if (!c->recs[i].entry)
                        continue;
                e = &v->ent[c->recs[i].entry - 1];
                e->flags &= ~E_PENDING;
                if (!(e->flags & E_LINKED)) {
                        /* Orphaned while in flight: its SNAP_DELETE is queued after it. */
                        slot_release(v, e->slot, MAX(v->last_delete, c->batch));
                        entry_free(v, c->recs[i].entry - 1);
                }
        }
        v->batch_done = c->batch;
        pfree_settle(v);
        if (c->trimming && r >= 0)
                trim_tail(v);
        /* Invariant (2): the batch's COPY records are durable, or failed. */
        writeback(v);
        v->committing = false;
        pthread_cond_broadcast(&v->cond);
        c->recs = mfree(c->recs);
        c->rl = mfree(c->rl);
}

/* Called and returns with the lock held; the phases drop it for their I/O. */
static void do_commit(struct cow_volume *v)
{
        struct commit c = {};
        int r;

        commit_take(v, &c);
        r = commit_copies(v, &c);
        if (r >= 0) {
                c.trimming = v->trim > 0;
                if ((c.n > 0 && checkpoint_due(v)) || c.trimming)
                        r = commit_checkpoint(v, &c);
                else if (c.n > 0)
                        r = commit_append(v, &c);
        }
        commit_complete(v, &c, r);
}

/* Wait until batch b is durable, leading a commit when nobody else is. */
static void wait_batch(struct cow_volume *v, uint64_t b)
{
        while (v->batch_done < b) {
                if (!v->committing)
                        do_commit(v);
                else
                        pthread_cond_wait(&v->cond, &v->lock);
        }
}

static void commit_all(struct cow_volume *v)
{
        wait_batch(v, v->last_queued);
}

/* Every write acknowledged so far reaches the origin (not flushed). */
static void drain(struct cow_volume *v)
{
        while (v->nready > 0) {
                /* FILLING chunks may hold acknowledged sectors: wait for them. */
                if (!v->committing && v->nready > v->nfilling)
                        do_commit(v);
                else
                        pthread_cond_wait(&v->cond, &v->lock);
        }
}

/* Over the limit, with something a commit can write back (not FILLING). */
static bool over_limit(struct cow_volume *v)
{
        return v->dirty_bytes > v->wb_limit && v->nready > v->nfilling;
}

/* Writers wait here while the dirty buffers exceed the write-back limit. */
static void throttle(struct cow_volume *v)
{
        uint64_t t0;

        if (v->wb_started && v->dirty_bytes >= v->wb_limit / 2)
                pthread_cond_signal(&v->wb_cond);
        if (!over_limit(v))
                return;
        t0 = clock_monotonic_ns();
        do {
                if (!v->committing)
                        do_commit(v);
                else
                        pthread_cond_wait(&v->cond, &v->lock);
        } while (over_limit(v));
        v->stat_throttled++;
        v->stat_throttle_ns += clock_monotonic_ns() - t0;
}

/* ---- format ---- */

static int check_chunk(uint32_t chunk)
{
        if (chunk < COW_CHUNK_MIN || chunk > COW_CHUNK_MAX || (chunk & (chunk - 1)))
                return -EINVAL;
        return 0;
}

static uint64_t data_start_for(uint32_t chunk)
{
        return MAX((uint64_t) 2 * COW_SB_SLOT, (uint64_t) chunk);
}

static uint32_t jslots_for(uint32_t chunk)
{
        return MAX(1u, 2 * COW_JB_SIZE / chunk);
}

int cow_format(struct cow_io *origin, struct cow_io *diff, const struct cow_format_params *p)
{
        _cleanup_free_ uint8_t *buf = NULL;
        _cleanup_free_ struct cow_jblock *jb = NULL;
        struct cow_super sb = {};
        uint32_t chunk = p && p->chunk_size ? p->chunk_size : COW_CHUNK_DEFAULT;
        uint64_t osize, ds;
        uint32_t js;
        uuid_t u;
        int r;

        if (!origin || !diff)
                return -EINVAL;
        r = check_chunk(chunk);
        if (r < 0)
                return r;
        r = cow_io_size(origin, &osize);
        if (r < 0)
                return r;
        if (osize == 0)
                return -EINVAL;
        ds = data_start_for(chunk);
        js = jslots_for(chunk);
        if (posix_memalign((void **) &buf, 4096, 2 * COW_SB_SLOT) != 0)
                return -ENOMEM;
        jb = calloc(1, sizeof(*jb));
        if (!jb)
                return -ENOMEM;

        uuid_generate(u);
        sb = (struct cow_super) {
                .version = COW_FORMAT_VERSION,
                .chunk_size = chunk,
                .generation = 1,
                .origin_size = osize,
                .data_start = ds,
                .journal_head_slot = 0,
                .journal_head_seq = 1,
                .durable_commit = 1,
                .max_bytes = p && p->max_bytes ? p->max_bytes : COW_MAX_UNBOUNDED,
        };
        memcpy(sb.uuid, u, 16);

        /* Start from a clean, small file; a stale journal must not survive. */
        r = cow_io_resize(diff, 0);
        if (r < 0 && r != -EOPNOTSUPP)
                return r;
        r = cow_io_resize(diff, ds + 2ULL * js * chunk);
        if (r < 0 && r != -EOPNOTSUPP)
                return r;
        memset(buf, 0, 2 * COW_SB_SLOT);
        r = cow_io_pwrite(diff, buf, 2 * COW_SB_SLOT, 0);
        if (r < 0)
                return r;
        /* Empty head block (both copies: block devices are not zeroed) ... */
        memcpy(jb->uuid, u, 16);
        jb->block_seq = 1;
        jb->commit = 1;
        jb->next_slot = js;
        cow_jblock_encode(jb, buf);
        r = cow_io_pwrite(diff, buf, COW_JB_SIZE, ds + COW_JB_SIZE);
        if (r < 0)
                return r;
        memset(buf, 0, COW_JB_SIZE);
        r = cow_io_pwrite(diff, buf, COW_JB_SIZE, ds);
        if (r < 0)
                return r;
        r = cow_io_pwrite(diff, buf, COW_JB_SIZE, ds + (uint64_t) js * chunk);
        if (r < 0)
                return r;
        r = cow_io_pwrite(diff, buf, COW_JB_SIZE, ds + (uint64_t) js * chunk + COW_JB_SIZE);
        if (r < 0)
                return r;
        r = cow_io_flush(diff);
        if (r < 0)
                return r;
        /* ... durable before the superblock that points to it. */
        cow_super_encode(&sb, buf);
        r = cow_io_pwrite(diff, buf, COW_SB_SLOT, (sb.generation % 2) * COW_SB_SLOT);
        if (r < 0)
                return r;
        return cow_io_flush(diff);
}

/* ---- open / replay ---- */

enum { SLOT_FREE = 0, SLOT_DATA = 1, SLOT_JOURNAL = 2 };

struct replay {
        uint8_t *map;           /* per slot */
        uint64_t nslots;
};

static int mark_journal(struct cow_volume *v, struct replay *rp, uint64_t slot)
{
        if (slot > rp->nslots || rp->nslots - slot < v->jslots)
                return -EBADMSG;
        for (uint32_t i = 0; i < v->jslots; i++) {
                if (rp->map[slot + i] == SLOT_DATA)
                        return -EBADMSG;
                rp->map[slot + i] = SLOT_JOURNAL;
        }
        return 0;
}

static int apply_rec(struct cow_volume *v, struct replay *rp, const struct cow_rec *rec)
{
        int i;

        switch (rec->type) {
        case COW_REC_SNAP_CREATE: {
                uint8_t g[16];
                if (rec->seq < v->next_seq || rec->seq == UINT32_MAX || v->nsnaps >= COW_MAX_SNAPSHOTS)
                        return -EBADMSG;
                for (int b = 0; b < 8; b++) {
                        g[b] = (uint8_t) (rec->a >> (8 * b));
                        g[8 + b] = (uint8_t) (rec->b >> (8 * b));
                }
                if (find_snap_guid(v, g) >= 0)
                        return -EBADMSG;
                v->snaps[v->nsnaps++] = (struct snap) { .seq = rec->seq, .ctime = rec->c };
                memcpy(v->snaps[v->nsnaps - 1].guid, g, 16);
                v->next_seq = rec->seq + 1;
                return 0;
        }
        case COW_REC_SNAP_DELETE:
                i = find_snap_seq(v, rec->seq);
                if (i < 0)
                        return -EBADMSG;
                snap_remove(v, (unsigned) i, rec->a, 0);
                return 0;
        case COW_REC_COPY: {
                uint32_t e;
                i = find_snap_seq(v, rec->seq);
                /* Copies are only ever taken for (or handed down to) the newest. */
                if (i < 0 || (unsigned) i != v->nsnaps - 1 || rec->a >= v->nchunks || rec->b >= rp->nslots || rp->map[rec->b] != SLOT_FREE)
                        return -EBADMSG;
                if (v->head[rec->a] && v->ent[v->head[rec->a] - 1].owner >= rec->seq)
                        return -EBADMSG;
                if (entry_new(v, rec->a, rec->b, rec->seq, 0, &e) < 0)
                        return -ENOMEM;
                entry_link(v, e);
                v->snaps[i].copies++;
                rp->map[rec->b] = SLOT_DATA;
                return 0;
        }
        case COW_REC_SET_MAX:
                v->max_bytes = rec->a ? rec->a : COW_MAX_UNBOUNDED;
                return 0;
        case COW_REC_NEXT_SEQ:
                if (rec->a < v->next_seq || rec->a >= UINT32_MAX)
                        return -EBADMSG;
                v->next_seq = (uint32_t) rec->a;
                return 0;
        default:
                return -EBADMSG;
        }
}

/* Read the two copies of the block at 'slot' and pick the newest valid one. */
static int read_jblock(struct cow_volume *v, uint64_t slot, uint64_t seq, uint64_t min_commit,
                       struct cow_jblock *ret)
{
        _cleanup_free_ struct cow_jblock *alt = NULL;
        bool have = false;
        int r;

        alt = malloc(sizeof(*alt));
        if (!alt)
                return -ENOMEM;
        for (unsigned c = 0; c < 2; c++) {
                r = cow_io_pread(v->diff, v->jbuf, COW_JB_SIZE, slot_off(v, slot) + c * COW_JB_SIZE);
                if (r < 0)
                        return r;
                if (cow_jblock_decode(v->jbuf, alt) < 0)
                        continue;
                if (memcmp(alt->uuid, v->sb.uuid, 16) != 0 || alt->block_seq != seq ||
                    alt->commit < min_commit || alt->commit % 2 != c)
                        continue;
                if (!have || alt->commit > ret->commit) {
                        *ret = *alt;
                        have = true;
                }
        }
        return have ? 0 : -ENOENT;
}

static void state_clear(struct cow_volume *v)
{
        v->nsnaps = 0;
        memset(v->head, 0, v->nchunks * sizeof(uint32_t));
        v->nent = 0;
        v->ent_free = 0;
}

/* Start a fresh journal at slot 0 holding only the settings (no snapshots).
 * Two steps, so the old chain stays intact until the superblock has moved. */
static int reset_area(struct cow_volume *v, uint64_t last_seq)
{
        uint64_t seq = last_seq + 1;
        int r;

        assert(v->nsnaps == 0);
        for (int step = 0; step < 2; step++) {
                /* Step 0 goes past everything that exists, step 1 back to slot 0. */
                uint64_t head = step == 0 ? MAX(v->hwm, v->file_slots) : 0;
                uint64_t commit = v->jcommit + 1;

                v->hwm = head + 2ULL * v->jslots;
                r = ensure_file(v, v->hwm);
                if (r < 0)
                        return r;
                memset(&v->jcur, 0, sizeof(v->jcur));
                memcpy(v->jcur.uuid, v->sb.uuid, 16);
                v->jcur.block_seq = seq;
                v->jcur.next_slot = head + v->jslots;
                v->jcur.rec[v->jcur.count++] = (struct cow_rec) {
                        .type = COW_REC_SET_MAX, .a = v->max_bytes };
                v->jcur.rec[v->jcur.count++] = (struct cow_rec) {
                        .type = COW_REC_NEXT_SEQ, .a = v->next_seq };
                v->jslot = head;
                r = zero_pair(v, head + v->jslots);
                if (r < 0)
                        return r;
                r = write_jblock(v, commit);
                if (r < 0)
                        return r;
                r = cow_io_flush(v->diff);
                if (r < 0)
                        return r;
                v->jcommit = commit;
                v->sb.journal_head_slot = head;
                v->sb.journal_head_seq = seq;
                v->sb.durable_commit = commit;
                v->sb.incompat &= ~COW_INCOMPAT_ERROR;
                r = write_super(v);
                if (r < 0)
                        return r;
                seq++;
        }
        v->njchain = 0;
        r = chain_push(v, 0);
        if (r < 0)
                return r;
        v->nfree = 0;
        v->npfree = 0;
        r = cow_io_resize(v->diff, v->data_start + (v->hwm << v->shift));
        if (r >= 0)
                v->file_slots = v->hwm;
        else if (r != -EOPNOTSUPP)
                return r;
        return 0;
}

static int replay(struct cow_volume *v, bool *ret_lost)
{
        _cleanup_free_ uint8_t *map = NULL;
        _cleanup_free_ struct cow_jblock *jb = NULL;
        struct replay rp = { .nslots = v->file_slots };
        uint64_t slot = v->sb.journal_head_slot, seq = v->sb.journal_head_seq, commit = 0;
        bool lost = false, have = false;
        int r;

        map = calloc(rp.nslots ? rp.nslots : 1, 1);
        jb = calloc(1, sizeof(*jb));
        if (!map || !jb)
                return -ENOMEM;
        rp.map = map;
        v->replay_map = map;
        v->replaying = true;

        for (uint64_t iter = 0;; iter++) {
                if (iter > rp.nslots || mark_journal(v, &rp, slot) < 0) {
                        lost = true;
                        break;
                }
                r = read_jblock(v, slot, seq, commit, jb);
                if (r == -ENOENT) {
                        if (!have)
                                lost = true;    /* the superblock's head must exist */
                        break;
                }
                if (r < 0)
                        goto out;
                r = chain_push(v, slot);
                if (r < 0)
                        goto out;
                have = true;
                v->jcur = *jb;
                v->jslot = slot;
                commit = jb->commit;
                for (uint32_t i = 0; i < jb->count; i++) {
                        r = apply_rec(v, &rp, &jb->rec[i]);
                        if (r == -ENOMEM)
                                goto out;
                        if (r < 0) {
                                lost = true;
                                break;
                        }
                }
                if (lost)
                        break;
                if (mark_journal(v, &rp, jb->next_slot) < 0) {
                        lost = true;
                        break;
                }
                if (jb->count < COW_JB_CAPACITY)
                        break;
                slot = jb->next_slot;
                seq++;
        }
        v->jcommit = commit;
        if (commit < v->sb.durable_commit || (v->sb.incompat & COW_INCOMPAT_ERROR))
                lost = true;

        if (!lost) {
                /* Everything not referenced is free. */
                v->hwm = 0;
                for (uint64_t s = 0; s < rp.nslots; s++)
                        if (map[s] != SLOT_FREE)
                                v->hwm = s + 1;
                /* Highest first: allocation pops the lowest (free_sort). */
                for (uint64_t s = v->hwm; s-- > 0;)
                        if (map[s] == SLOT_FREE && free_push(v, s) < 0) {
                                r = -ENOMEM;
                                goto out;
                        }
                r = zero_pair(v, v->jcur.next_slot);
                if (r < 0)
                        goto out;
                if (v->jcur.count == COW_JB_CAPACITY) {
                        /* The tail is full: continue in the block it reserved. */
                        uint64_t next;
                        v->jslot = v->jcur.next_slot;
                        v->jcur.block_seq++;
                        v->jcur.count = 0;
                        r = alloc_jslot(v, &next);
                        if (r < 0)
                                goto out;
                        v->jcur.next_slot = next;
                        r = chain_push(v, v->jslot);
                        if (r < 0)
                                goto out;
                        r = zero_pair(v, next);
                        if (r < 0)
                                goto out;
                }
        }
        *ret_lost = lost;
        r = 0;
out:
        v->replaying = false;
        v->replay_map = NULL;
        return r;
}


static void volume_free(struct cow_volume *v)
{
        for (uint32_t i = 0; i < v->ndch; i++)
                free(v->dch[i].pg);
        free(v->dch);
        free(v->wbbuf);
        for (size_t i = 0; i < v->nslabs; i++)
                munmap(v->slabs[i].p, v->slabs[i].len);
        free(v->slabs);
        free(v->dbucket);
        pthread_cond_destroy(&v->wb_cond);
        pthread_rwlock_destroy(&v->hold);
        pthread_cond_destroy(&v->cond);
        pthread_mutex_destroy(&v->lock);
        free(v->head);
        free(v->ent);
        free(v->free_slots);
        free(v->pfree);
        free(v->q);
        free(v->jbuf);
        free(v->jchain);
        free(v);
}

int cow_open(struct cow_io *origin, struct cow_io *diff, cow_event_fn cb, void *userdata,
             struct cow_volume **ret_vol)
{
        struct cow_volume *v = NULL;
        struct cow_super sbs[2];
        bool valid[2] = {}, lost = false;
        pthread_rwlockattr_t attr;
        uint64_t osize, dsize, last_seq;
        int r, pick;

        if (!origin || !diff || !ret_vol)
                return -EINVAL;
        v = calloc(1, sizeof(*v));
        if (!v)
                return -ENOMEM;
        pthread_mutex_init(&v->lock, NULL);
        pthread_cond_init(&v->cond, NULL);
        pthread_cond_init(&v->wb_cond, NULL);
        pthread_rwlockattr_init(&attr);
        /* Writer preference: a snapshot is not starved by a stream of writes. */
        pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
        pthread_rwlock_init(&v->hold, &attr);
        pthread_rwlockattr_destroy(&attr);
        v->origin = origin;
        v->diff = diff;
        v->cb = cb;
        v->userdata = userdata;
        if (posix_memalign((void **) &v->jbuf, 4096, COW_SB_SLOT * 2) != 0) {
                r = -ENOMEM;
                goto fail;
        }

        r = -EBADMSG;
        for (unsigned i = 0; i < 2; i++) {
                int k = cow_io_pread(diff, v->jbuf, COW_SB_SIZE, (uint64_t) i * COW_SB_SLOT);
                if (k < 0) {
                        r = k;
                        goto fail;
                }
                k = cow_super_decode(v->jbuf, &sbs[i]);
                valid[i] = k >= 0 && sbs[i].generation % 2 == i;
                if (k == -EPROTONOSUPPORT)
                        r = k;
        }
        if (!valid[0] && !valid[1])
                goto fail;
        pick = valid[0] && valid[1] ? (sbs[1].generation > sbs[0].generation) : valid[1];
        v->sb = sbs[pick];

        r = -EBADMSG;
        if (check_chunk(v->sb.chunk_size) < 0 || v->sb.data_start != data_start_for(v->sb.chunk_size))
                goto fail;
        v->chunk = v->sb.chunk_size;
        v->shift = (unsigned) __builtin_ctz(v->chunk);
        v->data_start = v->sb.data_start;
        v->jslots = jslots_for(v->chunk);
        v->max_bytes = v->sb.max_bytes ? v->sb.max_bytes : COW_MAX_UNBOUNDED;
        v->next_seq = 1;
        /* Batch 0 is "already durable"; the first commit is batch 1. */
        v->batch_next = 1;
        v->ckpt_min = 64;
        r = cow_io_size(origin, &osize);
        if (r < 0)
                goto fail;
        r = -EINVAL;            /* the origin changed size: this diff area is not its */
        if (osize != v->sb.origin_size || osize == 0)
                goto fail;
        v->origin_size = osize;
        v->nchunks = (osize + v->chunk - 1) >> v->shift;
        r = cow_io_size(diff, &dsize);
        if (r < 0)
                goto fail;
        v->file_slots = dsize > v->data_start ? (dsize - v->data_start) >> v->shift : 0;
        r = -ENOMEM;
        v->head = calloc(v->nchunks, sizeof(uint32_t));
        v->dbucket = calloc(DBUCKETS, sizeof(uint32_t));
        if (!v->head || !v->dbucket)
                goto fail;

        r = replay(v, &lost);
        if (r < 0)
                goto fail;
        last_seq = MAX(v->jcur.block_seq, v->sb.journal_head_seq) + 1;
        if (lost) {
                /* Invariant (8): never serve what cannot be proven complete. */
                if (v->nsnaps == 0)
                        emit(v, COW_EVENT_SNAPSHOT_LOST, NULL, -EBADMSG);
                for (unsigned i = 0; i < v->nsnaps; i++)
                        emit(v, COW_EVENT_SNAPSHOT_LOST, v->snaps[i].guid, -EBADMSG);
                /* Snapshots recorded past the damage are unknown by GUID: a
                 * zero GUID means "every snapshot of this volume". */
                if (v->nsnaps > 0)
                        emit(v, COW_EVENT_SNAPSHOT_LOST, NULL, -EBADMSG);
                state_clear(v);
        }
        if (v->nsnaps == 0) {
                r = reset_area(v, last_seq);
                if (r < 0)
                        goto fail;
        } else {
                /* Record how far the journal is known to reach (invariant 8). */
                v->sb.durable_commit = v->jcommit;
                r = write_super(v);
                if (r < 0)
                        goto fail;
        }
        *ret_vol = v;
        return 0;
fail:
        volume_free(v);
        return r;
}

static void wb_thread_stop(struct cow_volume *v);

struct cow_volume *cow_close(struct cow_volume *v)
{
        if (!v)
                return NULL;
        wb_thread_stop(v);
        pthread_mutex_lock(&v->lock);
        while (v->committing)
                pthread_cond_wait(&v->cond, &v->lock);
        drain(v);
        if (!v->failed) {
                commit_all(v);
                if (!v->failed) {
                        v->sb.durable_commit = v->jcommit;
                        (void) write_super(v);
                }
        }
        pthread_mutex_unlock(&v->lock);
        volume_free(v);
        return NULL;
}

/* ---- the live volume ---- */

static int check_range(struct cow_volume *v, const void *buf, size_t len, uint64_t off)
{
        if (!v || (!buf && len > 0))
                return -EINVAL;
        if (off > v->origin_size || len > v->origin_size - off)
                return -EINVAL;
        return 0;
}

/* Does chunk c need a copy before its first write since the newest snapshot? */
static bool needs_copy(struct cow_volume *v, uint64_t c)
{
        return v->nsnaps > 0 && !(v->head[c] && v->ent[v->head[c] - 1].owner == v->snaps[v->nsnaps - 1].seq);
}

/* A slot and a pending entry for the copy of chunk c; evicts the oldest
 * snapshots when the bound is reached.  May drop the lock.  Returns 1 with
 * the entry, 0 if no copy is needed any more, or a negative errno. */
static int plan_copy(struct cow_volume *v, uint64_t c, uint32_t *ret_entry)
{
        uint64_t slot;
        uint32_t e;
        int r;

        while (needs_copy(v, c)) {
                r = alloc_slot(v, &slot);
                if (r == -ENOSPC) {
                        if (v->npfree > 0) {
                                /* Space is being freed: let its deletion commit. */
                                wait_batch(v, v->last_delete);
                                pfree_settle(v);
                                if (v->npfree == 0 || v->nfree > 0)
                                        continue;
                        }
                        /* Out of shadow storage: delete the oldest (VolSnap event 25). */
                        v->stat_evictions++;
                        snap_remove(v, 0, REASON_EVICTED, 0);
                        continue;
                }
                if (r >= 0)
                        r = entry_new(v, c, slot, v->snaps[v->nsnaps - 1].seq, E_PENDING, &e);
                if (r < 0) {
                        (void) free_push(v, slot);
                        return r;
                }
                entry_link(v, e);
                v->snaps[v->nsnaps - 1].copies++;
                *ret_entry = e;
                return 1;
        }
        return 0;
}

/* Undo plan_copy() for an entry that will never get a record. */
static void unplan_copy(struct cow_volume *v, uint32_t e)
{
        if (v->ent[e].flags & E_LINKED)
                entry_unlink(v, e);
        (void) free_push(v, v->ent[e].slot);
        entry_free(v, e);
}

/*
 * Per chunk of the range, in ascending order (so writers waiting on each
 * other's FILLING chunks cannot form a cycle): a dirty chunk takes the data in
 * its buffer; a chunk that needs a copy becomes a dirty chunk with its COPY
 * record queued (the committer copies the old data, which stays on the origin
 * until then); any other chunk is written to the origin directly.  So a first
 * write after a snapshot costs a memcpy, unless the write-back limit is reached.
 */
int cow_write(struct cow_volume *v, const void *buf, size_t len, uint64_t off)
{
        uint8_t direct_small[8];
        _cleanup_free_ uint8_t *direct_big = NULL;
        uint8_t *direct = direct_small;
        const uint8_t *src = buf;
        uint64_t first, last, nc;
        bool any_direct = false, queued = false;
        int r, rc = 0;

        r = check_range(v, buf, len, off);
        if (r < 0)
                return r;
        if (len == 0)
                return 0;
        first = off >> v->shift;
        last = (off + len - 1) >> v->shift;
        nc = last - first + 1;
        if (nc > ARRAY_SIZE(direct_small)) {
                direct = direct_big = calloc(nc, 1);
                if (!direct_big)
                        return -ENOMEM;
        } else
                memset(direct_small, 0, sizeof(direct_small));

        pthread_rwlock_rdlock(&v->hold);
        pthread_mutex_lock(&v->lock);
        for (uint64_t c = first; c <= last; c++) {
                uint64_t cs = MAX(off, c << v->shift), ce = MIN(off + len, (c + 1) << v->shift);
                uint32_t d = dfind(v, c), e = 0;

                if (d && v->dch[d - 1].state != D_DIRTY) {
                        uint64_t t0 = clock_monotonic_ns();

                        pthread_cond_wait(&v->cond, &v->lock);
                        v->stat_chunk_waits++;
                        v->stat_chunk_wait_ns += clock_monotonic_ns() - t0;
                        c--;            /* look at this chunk again */
                        continue;
                }
                if (!d) {
                        r = v->failed ? 0 : plan_copy(v, c, &e);
                        if (r > 0) {
                                r = dnew(v, c, &d);
                                if (r < 0)
                                        unplan_copy(v, e);
                        }
                        if (r >= 0 && d) {
                                struct cow_rec rec = { .type = COW_REC_COPY, .seq = v->ent[e].owner,
                                                       .a = c, .b = v->ent[e].slot };
                                r = queue_rec(v, &rec, e + 1);
                                if (r < 0) {
                                        /* The chunk is dirty (new writes stay in memory until
                                         * enter_error lets them through), its copy is not. */
                                        unplan_copy(v, e);
                                } else {
                                        v->stat_copies++;
                                        queued = true;
                                }
                        }
                        if (r < 0) {
                                /* Cannot copy: drop the snapshots, never the write. */
                                enter_error(v, r);
                        }
                }
                if (d) {
                        r = dfill(v, d, cs, ce);
                        if (r < 0) {
                                rc = r;
                                break;
                        }
                        r = dput(v, &v->dch[d - 1], src + (cs - off), ce - cs, cs);
                        if (r < 0) {
                                rc = r;
                                break;
                        }
                        continue;
                }
                direct[c - first] = 1;
                any_direct = true;
        }
        if (any_direct)
                wait_batch(v, v->last_delete);          /* invariant (3) */
        if (queued)
                throttle(v);
        pthread_mutex_unlock(&v->lock);

        /* Chunks that need no copy: straight to the origin, in runs. */
        for (uint64_t c = first; any_direct && c <= last && rc >= 0; c++) {
                uint64_t c2 = c, s0, e0;

                if (!direct[c - first])
                        continue;
                while (c2 < last && direct[c2 + 1 - first])
                        c2++;
                s0 = MAX(off, c << v->shift);
                e0 = MIN(off + len, (c2 + 1) << v->shift);
                rc = cow_io_pwrite(v->origin, src + (s0 - off), e0 - s0, s0);
                c = c2;
        }
        pthread_rwlock_unlock(&v->hold);
        return rc;
}

int cow_read(struct cow_volume *v, void *buf, size_t len, uint64_t off)
{
        uint8_t *p = buf;
        int r = check_range(v, buf, len, off);

        if (r < 0)
                return r;
        if (len == 0)
                return 0;
        /* No dirty chunk: the origin is the volume.  A chunk that turns dirty
         * after this load belongs to a write concurrent with this read. */
        if (__atomic_load_n(&v->nready, __ATOMIC_ACQUIRE) == 0)
                return cow_io_pread(v->origin, buf, len, off);

        while (len > 0) {
                uint64_t c = off >> v->shift, c2 = c, end = off + len;
                uint32_t d;
                size_t n;

                pthread_mutex_lock(&v->lock);
                d = dfind(v, c);
                if (d) {
                        n = (size_t) MIN((uint64_t) len, ((c + 1) << v->shift) - off);
                        r = dread(v, d, p, n, off);     /* unlocks */
                } else {
                        /* A run of chunks the origin holds as the volume sees them;
                         * one turning dirty now is a concurrent write. */
                        while (((c2 + 1) << v->shift) < end && !dfind(v, c2 + 1))
                                c2++;
                        pthread_mutex_unlock(&v->lock);
                        n = (size_t) (MIN(end, (c2 + 1) << v->shift) - off);
                        r = cow_io_pread(v->origin, p, n, off);
                }
                if (r < 0)
                        return r;
                p += n, off += n, len -= n;
        }
        return 0;
}

int cow_flush(struct cow_volume *v)
{
        int r;

        if (!v)
                return -EINVAL;
        pthread_mutex_lock(&v->lock);
        drain(v);
        r = v->wb_error;
        v->wb_error = 0;
        pthread_mutex_unlock(&v->lock);
        if (r < 0)
                return r;
        return cow_io_flush(v->origin);
}

static void *wb_main(void *arg)
{
        struct cow_volume *v = arg;

        (void) pthread_setname_np(pthread_self(), "cow-commit");
        pthread_mutex_lock(&v->lock);
        while (!v->wb_stop) {
                struct timespec ts;

                if (v->nready > 0 && !v->committing) {
                        do_commit(v);
                        if (v->dirty_bytes >= v->wb_limit / 2)
                                continue;
                }
                ts = timespec_from_us(clock_realtime_us() + (uint64_t) v->wb_interval_ms * USEC_PER_MSEC);
                (void) pthread_cond_timedwait(&v->wb_cond, &v->lock, &ts);
        }
        pthread_mutex_unlock(&v->lock);
        return NULL;
}

static void wb_thread_stop(struct cow_volume *v)
{
        if (!v->wb_started)
                return;
        pthread_mutex_lock(&v->lock);
        v->wb_stop = true;
        pthread_cond_signal(&v->wb_cond);
        pthread_mutex_unlock(&v->lock);
        pthread_join(v->wb_thread, NULL);
        v->wb_started = false;
        v->wb_stop = false;
}

int cow_set_writeback(struct cow_volume *v, uint64_t limit_bytes, uint32_t interval_ms)
{
        int r = 0;

        if (!v)
                return -EINVAL;
        wb_thread_stop(v);
        pthread_mutex_lock(&v->lock);
        v->wb_limit = limit_bytes;
        v->wb_interval_ms = interval_ms;
        drain(v);
        if (limit_bytes > 0) {
                /* The buffers, up to 1 GiB, reserved now (see slab_add()); if
                 * that fails they are allocated as writes need them. */
                uint64_t want = MIN(limit_bytes, (uint64_t) 1 << 30) / PAGE;

                if (v->npages < want)
                        (void) slab_add(v, (size_t) (want - v->npages), true);
        }
        pthread_mutex_unlock(&v->lock);
        if (limit_bytes > 0 && interval_ms > 0) {
                pthread_attr_t attr;

                pthread_attr_init(&attr);
                pthread_attr_setstacksize(&attr, 256 * 1024);
                r = -pthread_create(&v->wb_thread, &attr, wb_main, v);
                pthread_attr_destroy(&attr);
                v->wb_started = r == 0;
        }
        return r;
}

/* ---- snapshots ---- */

int cow_snapshot_create(struct cow_volume *v, const uint8_t guid[16])
{
        struct cow_rec rec;
        uint32_t seq;
        int r;

        if (!v || !guid)
                return -EINVAL;
        /* Hold new origin writes: the snapshot instant (flush-and-hold). */
        pthread_rwlock_wrlock(&v->hold);
        pthread_mutex_lock(&v->lock);
        if (v->failed)
                r = -EIO;
        else if (find_snap_guid(v, guid) >= 0)
                r = -EEXIST;
        else if (v->nsnaps >= COW_MAX_SNAPSHOTS)
                r = -EMLINK;
        else if (v->next_seq == UINT32_MAX)
                r = -EOVERFLOW;
        else
                r = 0;
        pthread_mutex_unlock(&v->lock);
        if (r < 0)
                goto out;

        /* Invariant (5): acknowledged origin writes are durable first. */
        r = cow_flush(v);
        if (r < 0)
                goto out;

        pthread_mutex_lock(&v->lock);
        if (v->failed) {
                r = -EIO;
                goto out_unlock;
        }
        seq = v->next_seq++;
        rec = (struct cow_rec) { .type = COW_REC_SNAP_CREATE, .seq = seq, .c = clock_realtime_ns() };
        for (int b = 0; b < 8; b++) {
                rec.a |= (uint64_t) guid[b] << (8 * b);
                rec.b |= (uint64_t) guid[8 + b] << (8 * b);
        }
        r = queue_rec(v, &rec, 0);
        if (r < 0)
                goto out_unlock;
        v->snaps[v->nsnaps++] = (struct snap) { .seq = seq, .ctime = rec.c };
        memcpy(v->snaps[v->nsnaps - 1].guid, guid, 16);
        /* O(1) in the volume size: the new seq alone makes every chunk "not yet
         * copied since the newest snapshot". */
        wait_batch(v, v->last_queued);
        if (v->failed || find_snap_seq(v, seq) < 0)
                r = -EIO;
out_unlock:
        pthread_mutex_unlock(&v->lock);
out:
        pthread_rwlock_unlock(&v->hold);
        return r;
}

int cow_snapshot_delete(struct cow_volume *v, const uint8_t guid[16])
{
        int i, r = 0;

        if (!v || !guid)
                return -EINVAL;
        pthread_mutex_lock(&v->lock);
        i = find_snap_guid(v, guid);
        if (i < 0) {
                r = -ENOENT;
                goto out;
        }
        snap_remove(v, (unsigned) i, REASON_USER, 0);
        wait_batch(v, v->last_queued);
        if (v->failed)
                r = -EIO;
out:
        pthread_mutex_unlock(&v->lock);
        return r;
}

int cow_snapshot_read(struct cow_volume *v, const uint8_t guid[16], void *buf, size_t len, uint64_t off)
{
        uint8_t *p = buf;
        uint32_t seq;
        int i, r;

        r = check_range(v, buf, len, off);
        if (r < 0)
                return r;
        if (!guid)
                return -EINVAL;
        pthread_mutex_lock(&v->lock);
        i = find_snap_guid(v, guid);
        seq = i >= 0 ? v->snaps[i].seq : 0;
        pthread_mutex_unlock(&v->lock);
        if (i < 0)
                return -ENOENT;

        while (len > 0) {
                uint64_t c = off >> v->shift, in = off & (v->chunk - 1);
                size_t n = (size_t) MIN((uint64_t) len, v->chunk - in);
                bool from_diff, retry;
                uint64_t slot = 0;
                uint32_t e;

                for (;;) {
                        pthread_mutex_lock(&v->lock);
                        if (find_snap_seq(v, seq) < 0) {
                                pthread_mutex_unlock(&v->lock);
                                return -ESTALE;
                        }
                        e = lookup(v, c, seq);
                        from_diff = e && !(v->ent[e - 1].flags & E_PENDING);
                        if (from_diff)
                                slot = v->ent[e - 1].slot;
                        pthread_mutex_unlock(&v->lock);

                        if (from_diff)
                                r = cow_io_pread(v->diff, p, n, slot_off(v, slot) + in);
                        else
                                r = cow_io_pread(v->origin, p, n, off);
                        if (r < 0)
                                return r;

                        pthread_mutex_lock(&v->lock);
                        if (find_snap_seq(v, seq) < 0) {
                                /* Deleted under us: its slots may already be reused. */
                                pthread_mutex_unlock(&v->lock);
                                return -ESTALE;
                        }
                        /* A copy committed while we read the origin means the origin
                         * may now hold a newer write: read the copy instead.  A copy
                         * moved while we read it (a shrink) may have had its old
                         * slot reused: read it at its new place. */
                        if (from_diff) {
                                uint32_t e2 = lookup(v, c, seq);
                                retry = e2 != e || v->ent[e2 - 1].slot != slot;
                        } else {
                                e = lookup(v, c, seq);
                                retry = e && !(v->ent[e - 1].flags & E_PENDING);
                        }
                        pthread_mutex_unlock(&v->lock);
                        if (!retry)
                                break;
                }
                p += n;
                off += n;
                len -= n;
        }
        return 0;
}

int cow_snapshot_list(struct cow_volume *v, struct cow_snapshot_info **ret_list, size_t *ret_n)
{
        struct cow_snapshot_info *l;

        if (!v || !ret_list || !ret_n)
                return -EINVAL;
        pthread_mutex_lock(&v->lock);
        l = calloc(v->nsnaps ? v->nsnaps : 1, sizeof(*l));
        if (!l) {
                pthread_mutex_unlock(&v->lock);
                return -ENOMEM;
        }
        for (unsigned i = 0; i < v->nsnaps; i++) {
                memcpy(l[i].guid, v->snaps[i].guid, 16);
                l[i].seq = v->snaps[i].seq;
                l[i].ctime_ns = v->snaps[i].ctime;
                l[i].copies = v->snaps[i].copies;
        }
        *ret_n = v->nsnaps;
        pthread_mutex_unlock(&v->lock);
        *ret_list = l;
        return 0;
}

int cow_set_max(struct cow_volume *v, uint64_t max_bytes)
{
        struct cow_rec rec = { .type = COW_REC_SET_MAX };
        int r = 0;

        if (!v || max_bytes == 0)
                return -EINVAL;
        pthread_mutex_lock(&v->lock);
        if (v->failed) {
                r = -EIO;
                goto out;
        }
        v->max_bytes = max_bytes;
        rec.a = max_bytes;
        r = queue_rec(v, &rec, 0);
        if (r < 0)
                goto out;
        while (v->nsnaps > 0 && max_bytes != COW_MAX_UNBOUNDED && live_bytes(v) > max_bytes) {
                v->stat_evictions++;
                snap_remove(v, 0, REASON_EVICTED, 0);
        }
        wait_batch(v, v->last_queued);
        if (!v->failed && max_bytes != COW_MAX_UNBOUNDED && v->trim == 0 &&
            v->data_start + (v->file_slots << v->shift) > max_bytes) {
                /* The file is larger than the new bound: move the copies
                 * below it and cut the rest (a commit per RELOC_MAX copies,
                 * see relocate()), while that makes progress. */
                uint64_t moved;

                free_sort(v, 0);
                v->trim = MAX((max_bytes - MIN(max_bytes, v->data_start)) >> v->shift, (uint64_t) 1);
                do {
                        moved = v->stat_relocations;
                        wait_batch(v, v->batch_next);
                } while (!v->failed && v->file_slots > v->trim && v->stat_relocations > moved);
                v->trim = 0;
        }
        if (v->failed)
                r = -EIO;
out:
        pthread_mutex_unlock(&v->lock);
        return r;
}

int cow_stats(struct cow_volume *v, struct cow_stats *ret)
{
        uint64_t dsize = 0;
        int r;

        if (!v || !ret)
                return -EINVAL;
        r = cow_io_size(v->diff, &dsize);
        if (r < 0)
                return r;
        pthread_mutex_lock(&v->lock);
        *ret = (struct cow_stats) {
                .used_bytes = v->data_start + (used_slots(v) << v->shift),
                .allocated_bytes = dsize,
                .max_bytes = v->max_bytes,
                .origin_bytes = v->origin_size,
                .chunk_size = v->chunk,
                .snapshots = v->nsnaps,
                .copies = v->stat_copies,
                .commits = v->stat_commits,
                .evictions = v->stat_evictions,
                .checkpoints = v->stat_checkpoints,
                .relocations = v->stat_relocations,
                .throttled = v->stat_throttled,
                .throttle_ns = v->stat_throttle_ns,
                .chunk_waits = v->stat_chunk_waits,
                .chunk_wait_ns = v->stat_chunk_wait_ns,
                .writebacks = v->stat_writebacks,
                .dirty_bytes = v->dirty_bytes,
        };
        pthread_mutex_unlock(&v->lock);
        return 0;
}

int cow_set_checkpoint_blocks(struct cow_volume *v, uint64_t min_blocks)
{
        if (!v)
                return -EINVAL;
        pthread_mutex_lock(&v->lock);
        v->ckpt_min = min_blocks;
        pthread_mutex_unlock(&v->lock);
        return 0;
}

vss_hresult cow_errno_to_hresult(int r)
{
        switch (r < 0 ? -r : r) {
        case 0:
                return VSS_S_OK;
        case EINVAL:
                return VSS_E_INVALIDARG;
        case ENOMEM:
                return VSS_E_OUTOFMEMORY;
        case ENOENT:
        case ESTALE:
                return VSS_E_OBJECT_NOT_FOUND;
        case EEXIST:
                return VSS_E_OBJECT_ALREADY_EXISTS;
        case EMLINK:
                return VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED;
        case ENOSPC:
                return VSS_E_INSUFFICIENT_STORAGE;
        case EBADMSG:
        case EPROTONOSUPPORT:
                return VSS_E_VOLUME_NOT_SUPPORTED;
        case EACCES:
        case EPERM:
                return VSS_E_ACCESSDENIED;
        default:
                return VSS_E_UNEXPECTED_PROVIDER_ERROR;
        }
}
