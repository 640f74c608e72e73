/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Format and open: writing an empty diff area, and rebuilding the whole
 * in-memory state from the journal when a volume is opened.
 *
 * Replaying the records in order rebuilds every snapshot, every copy and,
 * from what the chain and the copies reference, the free list (there is no
 * free-space map on disk).  A deletion is replayed with the rule the engine
 * applied at run time (cow__snap_remove()).  When no snapshot survives, the
 * diff area is reset: a fresh one-block journal, written past everything that
 * exists first and then at slot 0, so the old chain stays intact until the
 * superblock has moved away from it.
 *
 * Invariant (8), enforced here: at open, every record is validated against
 * the state it applies to (the owner exists and is the newest snapshot, the
 * chunk lies inside the origin, the slot inside the file and not used twice,
 * seqs only increase, GUIDs are unique).  A chain shorter than the
 * superblock's durable_commit, an unknown or inconsistent record, or the
 * ERROR flag makes every snapshot LOST: the engine never serves a snapshot
 * from metadata it cannot prove complete.
 */

#include <string.h>
#include <uuid/uuid.h>

#include "cow/cow-internal.h"

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
                if (cow__find_snap_guid(v, g) >= 0)
                        return -EBADMSG;
                v->snaps[v->nsnaps++] = (struct snap) { .seq = rec->seq, .ctime = rec->c };
                memcpy(v->snaps[v->nsnaps - 1].guid, g, 16);
                v->next_seq = rec->seq + 1;
                return 0;
        }
        case COW_REC_SNAP_DELETE:
                i = cow__find_snap_seq(v, rec->seq);
                if (i < 0)
                        return -EBADMSG;
                cow__snap_remove(v, (unsigned) i, rec->a, 0);
                return 0;
        case COW_REC_COPY: {
                uint32_t e;
                i = cow__find_snap_seq(v, rec->seq);
                /* Copies are only ever taken for (or handed down to) the newest. */
                if (i < 0 || (unsigned) i != v->nsnaps - 1 || rec->a >= v->nchunks || rec->b >= rp->nslots || rp->map[rec->b] != SLOT_FREE)
                        return -EBADMSG;
                if (v->head[rec->a] && v->ent[v->head[rec->a] - 1].owner >= rec->seq)
                        return -EBADMSG;
                if (cow__entry_new(v, rec->a, rec->b, rec->seq, 0, &e) < 0)
                        return -ENOMEM;
                cow__entry_link(v, e);
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
                r = cow__ensure_file(v, v->hwm);
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
                r = cow__zero_pair(v, head + v->jslots);
                if (r < 0)
                        return r;
                r = cow__write_jblock(v, commit);
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
                r = cow__write_super(v);
                if (r < 0)
                        return r;
                seq++;
        }
        v->njchain = 0;
        r = cow__chain_push(v, 0);
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
                r = cow__chain_push(v, slot);
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
                        if (map[s] == SLOT_FREE && cow__free_push(v, s) < 0) {
                                r = -ENOMEM;
                                goto out;
                        }
                r = cow__zero_pair(v, v->jcur.next_slot);
                if (r < 0)
                        goto out;
                if (v->jcur.count == COW_JB_CAPACITY) {
                        /* The tail is full: continue in the block it reserved. */
                        uint64_t next;
                        v->jslot = v->jcur.next_slot;
                        v->jcur.block_seq++;
                        v->jcur.count = 0;
                        r = cow__alloc_jslot(v, &next);
                        if (r < 0)
                                goto out;
                        v->jcur.next_slot = next;
                        r = cow__chain_push(v, v->jslot);
                        if (r < 0)
                                goto out;
                        r = cow__zero_pair(v, next);
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

/* Frees a volume that nothing uses any more (cow_close(), a failed open). */
void cow__volume_free(struct cow_volume *v)
{
        cow__cache_free(v);
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
        pthread_condattr_t ca;
        uint64_t osize, dsize, last_seq;
        int r, pick;

        if (!origin || !diff || !ret_vol)
                return -EINVAL;
        v = calloc(1, sizeof(*v));
        if (!v)
                return -ENOMEM;
        pthread_mutex_init(&v->lock, NULL);
        pthread_cond_init(&v->cond, NULL);
        /* The write-back thread's timed wait: on the monotonic clock, so that a step of the
         * system clock back does not stop metadata commits for as long as the step. */
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&v->wb_cond, &ca);
        pthread_condattr_destroy(&ca);
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
                        cow__emit(v, COW_EVENT_SNAPSHOT_LOST, NULL, -EBADMSG);
                for (unsigned i = 0; i < v->nsnaps; i++)
                        cow__emit(v, COW_EVENT_SNAPSHOT_LOST, v->snaps[i].guid, -EBADMSG);
                /* Snapshots recorded past the damage are unknown by GUID: a
                 * zero GUID means "every snapshot of this volume". */
                if (v->nsnaps > 0)
                        cow__emit(v, COW_EVENT_SNAPSHOT_LOST, NULL, -EBADMSG);
                state_clear(v);
        }
        /* Invariant (9): a recorded revert completes before anything is served. */
        if (v->sb.incompat & COW_INCOMPAT_REVERT) {
                r = cow__revert_resume(v, lost);
                if (r < 0)
                        goto fail;
        }
        if (v->nsnaps == 0) {
                r = reset_area(v, last_seq);
                if (r < 0)
                        goto fail;
        } else {
                /* Record how far the journal is known to reach (invariant 8). */
                v->sb.durable_commit = v->jcommit;
                r = cow__write_super(v);
                if (r < 0)
                        goto fail;
        }
        *ret_vol = v;
        return 0;
fail:
        cow__volume_free(v);
        return r;
}

/* Commits what is queued, writes back what is dirty, records the clean state. */
struct cow_volume *cow_close(struct cow_volume *v)
{
        if (!v)
                return NULL;
        cow__revert_stop(v);
        cow__wb_thread_stop(v);
        pthread_mutex_lock(&v->lock);
        while (v->committing)
                pthread_cond_wait(&v->cond, &v->lock);
        cow__drain(v);
        if (!v->failed) {
                cow__commit_all(v);
                if (!v->failed) {
                        v->sb.durable_commit = v->jcommit;
                        (void) cow__write_super(v);
                }
        }
        pthread_mutex_unlock(&v->lock);
        cow__volume_free(v);
        return NULL;
}
