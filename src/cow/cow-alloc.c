/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Diff-area slots: where copies and journal block pairs live.
 *
 * Slots [0, hwm) are in use or on the free list; the file covers file_slots
 * of them and grows in steps of at least 4 MiB, up to the shadow-storage
 * bound (max_bytes) for copies.  There is no free-space map on disk: replay
 * rebuilds the free list from what the journal references (cow-replay.c).
 * The free list is kept highest first, so allocation pops the lowest slot and
 * the copies of consecutive chunks land in consecutive slots: each run is one
 * diff-area write.
 *
 * Invariant (4), enforced here: a slot freed by a deletion is reused only
 * after the SNAP_DELETE record that freed it is durable.  Until then it waits
 * on the pfree list with the batch of that record; cow__pfree_settle() moves
 * it to the free list once v->batch_done reaches that batch.  Otherwise a
 * crash could bring back the deleted snapshot with a slot that already holds
 * another chunk's copy.
 *
 * Shrinking (cow_set_max() below the file size) is here too: cow__relocate()
 * moves copies from slots at or above v->trim to free slots below it, and the
 * checkpoint of the same commit names them at their new place (invariant 7
 * makes the switch atomic); cow__trim_tail() then cuts the file.
 */

#include <string.h>

#include "cow/cow-internal.h"

/* ---- slots ---- */

uint64_t cow__used_slots(struct cow_volume *v)
{
        return v->hwm - v->nfree;
}

uint64_t cow__live_bytes(struct cow_volume *v)
{
        return v->data_start + ((cow__used_slots(v) - v->npfree) << v->shift);
}

int cow__ensure_file(struct cow_volume *v, uint64_t slots)
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

static int cmp_u64_desc(const void *a, const void *b)
{
        return cmp_u64(b, a);
}

/*
 * Sorts free_slots[from, nfree) highest first.  Allocation pops from the end,
 * so the lowest go first, in ascending order: copies of consecutive chunks
 * land in consecutive slots, each run one diff-area write (copy_batch() in cow-journal.c).  The
 * list is NULL until a slot is freed.
 */
void cow__free_sort(struct cow_volume *v, size_t from)
{
        if (v->nfree > from)
                qsort(v->free_slots + from, v->nfree - from, sizeof(uint64_t), cmp_u64_desc);
}

int cow__free_push(struct cow_volume *v, uint64_t slot)
{
        if (grow_array((void **) &v->free_slots, &v->afree, v->nfree + 1, sizeof(uint64_t)) < 0)
                return -ENOMEM;
        v->free_slots[v->nfree++] = slot;
        return 0;
}

/* Frees a slot whose last reference went away in 'batch' (invariant 4). */
void cow__slot_release(struct cow_volume *v, uint64_t slot, uint64_t batch)
{
        if (v->replaying) {
                /* Replay rebuilds the free list from the map at the end. */
                v->replay_map[slot] = 0;
                return;
        }
        if (v->failed || batch <= v->batch_done) {
                if (cow__free_push(v, slot) < 0)
                        return;  /* leaked until reopen; never reused while referenced */
                return;
        }
        if (grow_array((void **) &v->pfree, &v->apfree, v->npfree + 1, sizeof(struct pfree)) < 0)
                return;
        v->pfree[v->npfree++] = (struct pfree) { .slot = slot, .batch = batch };
}

void cow__pfree_settle(struct cow_volume *v)
{
        size_t j = 0, n0 = v->nfree;

        for (size_t i = 0; i < v->npfree; i++) {
                /* Invariant (4): the deletion that freed it is durable. */
                if (v->failed || v->pfree[i].batch <= v->batch_done) {
                        if (cow__free_push(v, v->pfree[i].slot) < 0)
                                v->pfree[j++] = v->pfree[i];
                } else
                        v->pfree[j++] = v->pfree[i];
        }
        v->npfree = j;
        /* In release order the freed slots were scattered and every copy
         * after a deletion became its own 16 KiB write. */
        cow__free_sort(v, n0);
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
int cow__alloc_slot(struct cow_volume *v, uint64_t *ret_slot)
{
        int r;

        if (v->max_bytes != COW_MAX_UNBOUNDED &&
            v->data_start + ((cow__used_slots(v) + 1) << v->shift) > v->max_bytes)
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
        r = cow__ensure_file(v, v->hwm + 1);
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
int cow__alloc_jslot(struct cow_volume *v, uint64_t *ret_slot)
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
        r = cow__ensure_file(v, v->hwm + v->jslots);
        if (r < 0)
                return r;
        *ret_slot = v->hwm;
        v->hwm += v->jslots;
        return 0;
}

/* ---- shrinking ---- */

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
int cow__relocate(struct cow_volume *v, struct reloc **ret, size_t *ret_n)
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
                        (void) cow__free_push(v, t);
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
                        (void) cow__free_push(v, rl[j].to);
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
void cow__trim_tail(struct cow_volume *v)
{
        uint64_t keep;
        int r;

        /* The top is at the front. */
        cow__free_sort(v, 0);
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

