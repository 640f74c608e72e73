/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The snapshot index: which snapshots exist and which copy of a chunk each
 * one reads.
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
 * Invariant of the index, asserted in cow__entry_link(): each chunk's list is
 * sorted by owner, strictly decreasing from the head.  An entry that is USED
 * but not LINKED is an orphan: its snapshot went away while its copy was in
 * flight, and the commit that completes the copy frees it.
 */

#include <string.h>

#include "cow/cow-internal.h"

/* ---- snapshots ---- */

/* Index in v->snaps of the snapshot with this GUID, or -1. */
int cow__find_snap_guid(struct cow_volume *v, const uint8_t guid[16])
{
        for (unsigned i = 0; i < v->nsnaps; i++)
                if (memcmp(v->snaps[i].guid, guid, 16) == 0)
                        return (int) i;
        return -1;
}

int cow__find_snap_seq(struct cow_volume *v, uint32_t seq)
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

void cow__emit(struct cow_volume *v, enum cow_event_type type, const uint8_t guid[16], int error)
{
        struct cow_event ev = { .type = type, .error = error };

        if (guid)
                memcpy(ev.guid, guid, 16);
        if (v->cb)
                v->cb(&ev, v->userdata);
}

/* ---- entries and the per-chunk index ---- */

int cow__entry_new(struct cow_volume *v, uint64_t chunk, uint64_t slot, uint32_t owner, uint32_t flags,
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

void cow__entry_free(struct cow_volume *v, uint32_t i)
{
        assert(v->ent[i].flags & E_USED);
        assert(!(v->ent[i].flags & E_LINKED));
        v->ent[i].flags = 0;
        v->nused_ent--;
        v->ent[i].free_next = v->ent_free;
        v->ent_free = i + 1;
}

void cow__entry_link(struct cow_volume *v, uint32_t i)
{
        struct entry *e = &v->ent[i];

        /* New copies always belong to the newest snapshot: the list stays sorted. */
        assert(!v->head[e->chunk] || v->ent[v->head[e->chunk] - 1].owner < e->owner);
        e->next = v->head[e->chunk];
        v->head[e->chunk] = i + 1;
        e->flags |= E_LINKED;
}

void cow__entry_unlink(struct cow_volume *v, uint32_t i)
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
uint32_t cow__lookup(struct cow_volume *v, uint64_t c, uint32_t seq)
{
        uint32_t cand = 0;

        for (uint32_t e = v->head[c]; e && v->ent[e - 1].owner >= seq; e = v->ent[e - 1].next)
                cand = e;
        return cand;
}

/*
 * Deletes snapshot idx (lock held): queues its SNAP_DELETE (not once the diff
 * area failed: nothing is written any more), hands its copies down or frees
 * their slots, and reports evictions, invalidations and revert discards.  Replay applies a
 * SNAP_DELETE with this same function, so run time and replay agree.
 */
void cow__snap_remove(struct cow_volume *v, unsigned idx, uint64_t reason, int error)
{
        struct snap s = v->snaps[idx];
        struct snap *p = idx > 0 ? &v->snaps[idx - 1] : NULL;
        struct cow_rec rec = { .type = COW_REC_SNAP_DELETE, .seq = s.seq, .a = reason };
        uint64_t batch;

        if (!v->failed && cow__queue_rec(v, &rec, 0) < 0) {
                cow__enter_error(v, -ENOMEM);
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
                cow__entry_unlink(v, i);
                if (e->flags & E_PENDING)
                        continue;       /* orphan: its writer or the commit releases it */
                cow__slot_release(v, e->slot, batch);
                cow__entry_free(v, i);
        }
        memmove(&v->snaps[idx], &v->snaps[idx + 1], (v->nsnaps - idx - 1) * sizeof(struct snap));
        v->nsnaps--;

        if (!v->replaying && reason == REASON_EVICTED)
                cow__emit(v, COW_EVENT_SNAPSHOT_EVICTED, s.guid, 0);
        else if (!v->replaying && reason == REASON_INVALID)
                cow__emit(v, COW_EVENT_SNAPSHOT_INVALIDATED, s.guid, error);
        else if (!v->replaying && reason == REASON_REVERTED)
                cow__emit(v, COW_EVENT_SNAPSHOT_DISCARDED, s.guid, 0);
}

