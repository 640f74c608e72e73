/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The CoW engine's public API (cow.h): one origin, one diff area, up to 512
 * snapshots sharing one copy of every changed chunk.  This file holds the
 * live volume's write and read paths and the snapshot operations; the model
 * is in cow-index.c, the durability rules in cow-journal.c, and
 * cow-internal.h lists where each invariant lives.
 *
 * The write path, per chunk of a request: a chunk with a dirty buffer takes
 * the data there (cow-cache.c); a chunk that needs a copy for the newest
 * snapshot becomes a dirty chunk with its COPY record queued; any other chunk
 * is written to the origin directly.
 *
 * Invariants enforced here:
 *  (3) An origin write starts only after every SNAP_DELETE queued before it
 *      is durable: otherwise a crash could resurrect a deleted snapshot whose
 *      chunk we overwrote without copying it.
 *  (5) A SNAP_CREATE record is written only after the origin was flushed with
 *      new origin writes held (v->hold taken exclusively), so every write
 *      acknowledged before the snapshot is durable before the snapshot
 *      exists on disk.
 */

#include <string.h>

#include "basic/time-util.h"
#include "cow/cow-internal.h"

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
                r = cow__alloc_slot(v, &slot);
                if (r == -ENOSPC) {
                        if (v->npfree > 0) {
                                /* Space is being freed: let its deletion commit. */
                                cow__wait_batch(v, v->last_delete);
                                cow__pfree_settle(v);
                                if (v->npfree == 0 || v->nfree > 0)
                                        continue;
                        }
                        /* Out of shadow storage: delete the oldest (VolSnap event 25). */
                        v->stat_evictions++;
                        cow__snap_remove(v, 0, REASON_EVICTED, 0);
                        continue;
                }
                if (r >= 0)
                        r = cow__entry_new(v, c, slot, v->snaps[v->nsnaps - 1].seq, E_PENDING, &e);
                if (r < 0) {
                        (void) cow__free_push(v, slot);
                        return r;
                }
                cow__entry_link(v, e);
                v->snaps[v->nsnaps - 1].copies++;
                *ret_entry = e;
                return 1;
        }
        return 0;
}

/* Undo plan_copy() for an entry that will never get a record. */
static void unplan_copy(struct cow_volume *v, uint32_t e)
{
        int i = cow__find_snap_seq(v, v->ent[e].owner);

        if (i >= 0)
                v->snaps[i].copies--;
        if (v->ent[e].flags & E_LINKED)
                cow__entry_unlink(v, e);
        (void) cow__free_push(v, v->ent[e].slot);
        cow__entry_free(v, e);
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
        /* The revert set this under hold, taken exclusively: no write that
         * started before it is still running, none starts after it. */
        if (v->reverting) {
                pthread_mutex_unlock(&v->lock);
                pthread_rwlock_unlock(&v->hold);
                return -EBUSY;
        }
        for (uint64_t c = first; c <= last; c++) {
                uint64_t cs = MAX(off, c << v->shift), ce = MIN(off + len, (c + 1) << v->shift);
                uint32_t d = cow__dfind(v, c), e = 0;

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
                                r = cow__dnew(v, c, &d);
                                if (r < 0)
                                        unplan_copy(v, e);
                        }
                        if (r == -EAGAIN) {
                                /* Every descriptor is taken: after a commit, again. */
                                cow__wait_memory(v);
                                c--;
                                continue;
                        }
                        if (r >= 0 && d) {
                                struct cow_rec rec = { .type = COW_REC_COPY, .seq = v->ent[e].owner,
                                                       .a = c, .b = v->ent[e].slot };
                                r = cow__queue_rec(v, &rec, e + 1);
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
                                cow__enter_error(v, r);
                        }
                }
                if (d) {
                        r = cow__dfill(v, d, cs, ce);
                        if (r >= 0)
                                r = cow__dput(v, &v->dch[d - 1], src + (cs - off), ce - cs, cs);
                        if (r == -EAGAIN) {
                                /* No free page: after a commit (which may write
                                 * this chunk back), this chunk again. */
                                cow__wait_memory(v);
                                c--;
                                continue;
                        }
                        if (r < 0) {
                                rc = r;
                                break;
                        }
                        continue;
                }
                direct[c - first] = 1;
                any_direct = true;
        }
        if (any_direct) {
                uint64_t del = v->last_delete;

                cow__wait_batch(v, del);
                assert(v->batch_done >= del);           /* invariant (3) */
        }
        if (queued)
                cow__throttle(v);
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
        /* While a revert copies chunks back the volume is its target already. */
        if (__atomic_load_n(&v->reverting, __ATOMIC_ACQUIRE)) {
                uint32_t seq;

                pthread_mutex_lock(&v->lock);
                seq = v->revert_seq;
                pthread_mutex_unlock(&v->lock);
                if (seq != 0)
                        return cow__snap_read(v, seq, buf, len, off);
        }
        /* No dirty chunk: the origin is the volume.  A chunk that turns dirty
         * after this load belongs to a write concurrent with this read. */
        if (__atomic_load_n(&v->nready, __ATOMIC_ACQUIRE) == 0)
                return cow_io_pread(v->origin, buf, len, off);

        while (len > 0) {
                uint64_t c = off >> v->shift, c2 = c, end = off + len;
                uint32_t d;
                size_t n;

                pthread_mutex_lock(&v->lock);
                d = cow__dfind(v, c);
                if (d) {
                        n = (size_t) MIN((uint64_t) len, ((c + 1) << v->shift) - off);
                        r = cow__dread(v, d, p, n, off);     /* unlocks */
                } else {
                        /* A run of chunks the origin holds as the volume sees them;
                         * one turning dirty now is a concurrent write. */
                        while (((c2 + 1) << v->shift) < end && !cow__dfind(v, c2 + 1))
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

static int flush_origin(struct cow_volume *v)
{
        int r;

        pthread_mutex_lock(&v->lock);
        cow__drain(v);
        r = v->wb_error;
        v->wb_error = 0;
        if (r == 0)
                r = v->flush_error;
        pthread_mutex_unlock(&v->lock);
        if (r < 0)
                return r;
        return cow_io_flush(v->origin);
}

int cow_flush(struct cow_volume *v)
{
        uint64_t t0 = clock_monotonic_ns();
        int r;

        if (!v)
                return -EINVAL;
        r = flush_origin(v);
        pthread_mutex_lock(&v->lock);
        v->stat_flushes++;
        v->stat_flush_ns += clock_monotonic_ns() - t0;
        pthread_mutex_unlock(&v->lock);
        return r;
}

/* ---- snapshots ---- */

int cow_snapshot_create(struct cow_volume *v, const uint8_t guid[16])
{
        uint64_t t0 = clock_monotonic_ns(), t1, t2 = 0;
        struct cow_rec rec;
        uint32_t seq;
        int r;

        if (!v || !guid)
                return -EINVAL;
        /* Hold new origin writes: the snapshot instant (flush-and-hold). */
        pthread_rwlock_wrlock(&v->hold);
        t1 = clock_monotonic_ns();
        pthread_mutex_lock(&v->lock);
        if (v->failed)
                r = -EIO;
        else if (v->reverting)
                r = -EINPROGRESS;
        else if (cow__find_snap_guid(v, guid) >= 0)
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
        r = flush_origin(v);
        t2 = clock_monotonic_ns();
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
        /* Invariant (5): every acknowledged write is on the origin, flushed,
         * and none can start (hold is ours). */
        assert(v->nready == 0);
        r = cow__queue_rec(v, &rec, 0);
        if (r < 0)
                goto out_unlock;
        v->snaps[v->nsnaps++] = (struct snap) { .seq = seq, .ctime = rec.c };
        memcpy(v->snaps[v->nsnaps - 1].guid, guid, 16);
        /* O(1) in the volume size: the new seq alone makes every chunk "not yet
         * copied since the newest snapshot". */
        cow__wait_batch(v, v->last_queued);
        if (v->failed || cow__find_snap_seq(v, seq) < 0)
                r = -EIO;
        if (r == 0) {
                v->stat_creates++;
                v->stat_create_ns += clock_monotonic_ns() - t0;
                v->stat_create_hold_ns += t1 - t0;
                v->stat_create_flush_ns += t2 - t1;
        }
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
        i = cow__find_snap_guid(v, guid);
        if (i < 0) {
                r = -ENOENT;
                goto out;
        }
        if (v->reverting) {
                r = -EINPROGRESS;
                goto out;
        }
        cow__snap_remove(v, (unsigned) i, REASON_USER, 0);
        cow__wait_batch(v, v->last_queued);
        if (v->failed)
                r = -EIO;
out:
        pthread_mutex_unlock(&v->lock);
        return r;
}

/* Reads [off, off+len) of snapshot 'seq' (checked by the caller): for each
 * chunk its copy, else the origin; -ESTALE when the snapshot goes away. */
int cow__snap_read(struct cow_volume *v, uint32_t seq, uint8_t *p, size_t len, uint64_t off)
{
        int r;

        while (len > 0) {
                uint64_t c = off >> v->shift, in = off & (v->chunk - 1);
                size_t n = (size_t) MIN((uint64_t) len, v->chunk - in);
                bool from_diff, retry;
                uint64_t slot = 0;
                uint32_t e;

                for (;;) {
                        pthread_mutex_lock(&v->lock);
                        if (cow__find_snap_seq(v, seq) < 0) {
                                pthread_mutex_unlock(&v->lock);
                                return -ESTALE;
                        }
                        e = cow__lookup(v, c, seq);
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
                        if (cow__find_snap_seq(v, seq) < 0) {
                                /* Deleted under us: its slots may already be reused. */
                                pthread_mutex_unlock(&v->lock);
                                return -ESTALE;
                        }
                        /* A copy committed while we read the origin means the origin
                         * may now hold a newer write: read the copy instead.  A copy
                         * moved while we read it (a shrink) may have had its old
                         * slot reused: read it at its new place. */
                        if (from_diff) {
                                uint32_t e2 = cow__lookup(v, c, seq);
                                retry = e2 != e || v->ent[e2 - 1].slot != slot;
                        } else {
                                e = cow__lookup(v, c, seq);
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

int cow_snapshot_read(struct cow_volume *v, const uint8_t guid[16], void *buf, size_t len, uint64_t off)
{
        uint32_t seq;
        int i, r;

        r = check_range(v, buf, len, off);
        if (r < 0)
                return r;
        if (!guid)
                return -EINVAL;
        pthread_mutex_lock(&v->lock);
        i = cow__find_snap_guid(v, guid);
        seq = i >= 0 ? v->snaps[i].seq : 0;
        pthread_mutex_unlock(&v->lock);
        if (i < 0)
                return -ENOENT;
        return cow__snap_read(v, seq, buf, len, off);
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
        if (v->reverting) {
                r = -EINPROGRESS;
                goto out;
        }
        v->max_bytes = max_bytes;
        rec.a = max_bytes;
        r = cow__queue_rec(v, &rec, 0);
        if (r < 0)
                goto out;
        while (v->nsnaps > 0 && max_bytes != COW_MAX_UNBOUNDED && cow__live_bytes(v) > max_bytes) {
                v->stat_evictions++;
                cow__snap_remove(v, 0, REASON_EVICTED, 0);
        }
        cow__wait_batch(v, v->last_queued);
        if (!v->failed && max_bytes != COW_MAX_UNBOUNDED && v->trim == 0 &&
            v->data_start + (v->file_slots << v->shift) > max_bytes) {
                /* The file is larger than the new bound: move the copies
                 * below it and cut the rest (a commit per RELOC_MAX copies,
                 * see cow__relocate()), while that makes progress. */
                uint64_t moved;

                cow__free_sort(v, 0);
                v->trim = MAX((max_bytes - MIN(max_bytes, v->data_start)) >> v->shift, (uint64_t) 1);
                do {
                        moved = v->stat_relocations;
                        cow__wait_batch(v, v->batch_next);
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
                .used_bytes = v->data_start + (cow__used_slots(v) << v->shift),
                .allocated_bytes = dsize,
                .max_bytes = v->max_bytes,
                .origin_bytes = v->origin_size,
                .chunk_size = v->chunk,
                .snapshots = v->nsnaps,
                .copies = v->stat_copies,
                .commits = v->stat_commits,
                .commit_ns = v->stat_commit_ns,
                .evictions = v->stat_evictions,
                .checkpoints = v->stat_checkpoints,
                .relocations = v->stat_relocations,
                .throttled = v->stat_throttled,
                .throttle_ns = v->stat_throttle_ns,
                .chunk_waits = v->stat_chunk_waits,
                .chunk_wait_ns = v->stat_chunk_wait_ns,
                .writebacks = v->stat_writebacks,
                .dirty_bytes = v->dirty_bytes,
                .live_writers = v->live_writers,
                .flushes = v->stat_flushes,
                .flush_ns = v->stat_flush_ns,
                .creates = v->stat_creates,
                .create_ns = v->stat_create_ns,
                .create_hold_ns = v->stat_create_hold_ns,
                .create_flush_ns = v->stat_create_flush_ns,
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

