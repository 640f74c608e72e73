/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The journal: the record queue, group commit, checkpoints, the superblock,
 * and the ERROR state.
 *
 * The diff area is a log (cow-format.c has the layout, docs/cow-format.md the
 * rules).  A journal of 32-byte records (COPY, SNAP_CREATE, SNAP_DELETE,
 * SET_MAX, NEXT_SEQ) lives in 4 KiB blocks chained through the diff area;
 * each block has two copies written alternately (ping-pong by commit number),
 * so a torn write of the current block can only lose the records of the
 * commit being written.  Records are appended to an in-memory queue and
 * written by group commit: whoever needs a commit while none runs becomes the
 * leader (the committer), takes the whole queue, and does one flush pair for
 * everybody (cow__do_commit(), in the phases below).
 *
 * Invariants enforced here:
 *  (1) A COPY record is written only after the copied data has been written
 *      and the diff area flushed (data -> flush -> record).
 *  (6) Journal blocks are written only by the committer (one at a time); the
 *      copy of a block that is written is never the last valid one, and a new
 *      block pair is zeroed before any block can point to it.
 *  (7) A checkpoint writes the whole state as a new chain in fresh slots,
 *      flushes, then points both superblock copies at it; the old chain's
 *      slots are reused only after that.
 *
 * Errors.  On a diff-area I/O error (or no memory for a copy) all snapshots
 * are invalidated (reported through the event callback), the ERROR flag is
 * written to the superblock if possible, and origin writes keep going
 * through.  Creating snapshots then fails until the volume is reopened (which
 * resets the diff area).
 */

#include <string.h>

#include "basic/time-util.h"
#include "cow/cow-internal.h"

/* ---- the record queue, the superblock, the ERROR state ---- */

/* Queues a record for the next commit (lock held); replay queues nothing. */
int cow__queue_rec(struct cow_volume *v, const struct cow_rec *rec, uint32_t entry)
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

/* Writes v->sb into copy generation % 2 and flushes (the double buffer). */
int cow__write_super(struct cow_volume *v)
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

void cow__enter_error(struct cow_volume *v, int error)
{
        if (v->failed)
                return;
        v->failed = true;
        v->nq = 0;
        while (v->nsnaps > 0)
                cow__snap_remove(v, 0, REASON_INVALID, error);
        cow__pfree_settle(v);
        /* Best effort: if the diff area takes this write, reopening reports LOST
         * instead of trusting a journal that misses copies. */
        v->sb.incompat |= COW_INCOMPAT_ERROR;
        (void) cow__write_super(v);
        (void) cow__write_super(v);
        pthread_cond_broadcast(&v->cond);
}

int cow__write_jblock(struct cow_volume *v, uint64_t commit)
{
        v->jcur.commit = commit;
        cow_jblock_encode(&v->jcur, v->jbuf);
        /* Invariant (6): copy (commit % 2) never holds the last valid version,
         * which was written by an earlier commit of the other parity. */
        return cow_io_pwrite(v->diff, v->jbuf, COW_JB_SIZE, slot_off(v, v->jslot) + (commit % 2) * COW_JB_SIZE);
}

int cow__chain_push(struct cow_volume *v, uint64_t slot)
{
        if (grow_array((void **) &v->jchain, &v->ajchain, v->njchain + 1, sizeof(uint64_t)) < 0)
                return -ENOMEM;
        v->jchain[v->njchain++] = slot;
        return 0;
}

/* A journal pair is zeroed before any block can point to it, so stale bytes
 * there (an old block of a lost commit, say) can never be read as valid. */
int cow__zero_pair(struct cow_volume *v, uint64_t slot)
{
        _cleanup_free_ uint8_t *z = NULL;

        if (posix_memalign((void **) &z, 4096, 2 * COW_JB_SIZE) != 0)
                return -ENOMEM;
        memset(z, 0, 2 * COW_JB_SIZE);
        return cow_io_pwrite(v->diff, z, 2 * COW_JB_SIZE, slot_off(v, slot));
}

/* ---- checkpoints ---- */

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

        assert(v->committing);          /* invariant (6) */
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
                r = cow__alloc_jslot(v, &slots[b]);
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
                r = cow__zero_pair(v, slots[nb]);
        if (r >= 0)
                r = cow_io_flush(v->diff);
        if (r >= 0) {
                v->sb.journal_head_slot = slots[0];
                v->sb.journal_head_seq = seq0;
                v->sb.durable_commit = commit;
                /* The switch, into both copies: the old chain's slots are reused
                 * next, so no superblock may point to it any more. */
                r = cow__write_super(v);
                if (r >= 0)
                        r = cow__write_super(v);
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
                r = cow__chain_push(v, slots[b]);
        /* The old chain is unreachable now: its slots are free. */
        for (size_t b = 0; b < nold; b++)
                for (uint32_t j = 0; j < v->jslots; j++)
                        (void) cow__free_push(v, old[b] + j);
        for (uint32_t j = 0; j < v->jslots; j++)
                (void) cow__free_push(v, oldnext + j);
        return r;
}

/* ---- group commit ---- */

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

/*
 * One group commit, taken apart in the phases below.  cow__do_commit() runs them
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
                r = cow__relocate(v, &c->rl, &c->nrl);
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
                (void) cow__free_push(v, c->rl[i].from);
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

        /* Invariant (6): only the committer writes journal blocks. */
        assert(v->committing);
        /* Invariant (1): the data of every copy the records name is written
         * (commit_copies()); the flush below makes it durable before them. */
        for (size_t i = 0; i < c->n; i++)
                assert(!c->recs[i].entry || (v->ent[c->recs[i].entry - 1].flags & E_COPIED));
        if (c->n >= room)
                need = (c->n - room) / COW_JB_CAPACITY + 1;
        nexts = calloc(need ? need : 1, sizeof(uint64_t));
        if (!nexts)
                return -ENOMEM;
        for (size_t i = 0; i < need; i++) {
                r = cow__alloc_jslot(v, &nexts[i]);
                if (r < 0)
                        return r;
        }
        pthread_mutex_unlock(&v->lock);

        for (size_t i = 0; r >= 0 && i < need; i++)
                r = cow__zero_pair(v, nexts[i]);
        /* Invariant (1): copies written by the queued COPY records' writers
         * are made durable before any record describing them. */
        if (r >= 0)
                r = cow_io_flush(v->diff);
        for (size_t i = 0; r >= 0 && i < c->n; i++) {
                v->jcur.rec[v->jcur.count++] = c->recs[i].rec;
                if (v->jcur.count < COW_JB_CAPACITY)
                        continue;
                r = cow__write_jblock(v, c->number);
                if (r < 0)
                        break;
                /* The next block was reserved when this one started. */
                assert(k < need);
                v->jslot = v->jcur.next_slot;
                v->jcur.block_seq++;
                v->jcur.next_slot = nexts[k++];
                v->jcur.count = 0;
                if (cow__chain_push(v, v->jslot) < 0)
                        r = -ENOMEM;
        }
        if (r >= 0 && v->jcur.count > 0)
                r = cow__write_jblock(v, c->number);
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
                cow__enter_error(v, r);
        for (size_t i = 0; i < c->n; i++) {
                struct entry *e;

                if (!c->recs[i].entry)
                        continue;
                e = &v->ent[c->recs[i].entry - 1];
                e->flags &= ~E_PENDING;
                if (!(e->flags & E_LINKED)) {
                        /* Orphaned while in flight: its SNAP_DELETE is queued after it. */
                        cow__slot_release(v, e->slot, MAX(v->last_delete, c->batch));
                        cow__entry_free(v, c->recs[i].entry - 1);
                }
        }
        v->batch_done = c->batch;
        cow__pfree_settle(v);
        if (c->trimming && r >= 0)
                cow__trim_tail(v);
        /* Invariant (2): the batch's COPY records are durable, or failed. */
        cow__writeback(v);
        v->committing = false;
        pthread_cond_broadcast(&v->cond);
        c->recs = mfree(c->recs);
        c->rl = mfree(c->rl);
}

/* Called and returns with the lock held; the phases drop it for their I/O. */
void cow__do_commit(struct cow_volume *v)
{
        uint64_t t0 = clock_monotonic_ns();
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
        v->stat_commit_ns += clock_monotonic_ns() - t0;
}

/* Wait until batch b is durable, leading a commit when nobody else is. */
void cow__wait_batch(struct cow_volume *v, uint64_t b)
{
        while (v->batch_done < b) {
                if (!v->committing)
                        cow__do_commit(v);
                else
                        pthread_cond_wait(&v->cond, &v->lock);
        }
}

void cow__commit_all(struct cow_volume *v)
{
        cow__wait_batch(v, v->last_queued);
}

