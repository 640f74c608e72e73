/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Revert: the origin takes the content of snapshot T again.
 *
 * Which chunks.  A chunk changed since T was created exactly when it has a
 * copy owned by T or a newer snapshot (the first write after any of them took
 * one), and T reads that chunk from the copy with the smallest such owner
 * (cow__lookup()).  So the revert writes, for every chunk c with
 * cow__lookup(c, T) != 0, that copy onto origin chunk c; every other chunk
 * already holds T's content.  Nothing else is read or written.
 *
 * The other snapshots.  An older snapshot P reads chunk c from the origin only
 * if c has no copy owned by P or newer, which means c did not change since P,
 * so since T either: the revert does not touch it.  Where P reads a copy, the
 * copy stays.  Older snapshots need nothing preserved and stay intact.  The
 * newer ones describe a future the volume no longer has: keeping them would
 * cost a copy of every chunk the revert rewrites and would let the revert be
 * undone, which Windows documents it cannot be.  They are deleted first, with
 * the hand-down rule of any deletion (cow-index.c): a copy T reads through
 * them is handed down to T, so T's reads do not change.  T itself stays: the
 * volume is T again, it costs nothing more, and it can be reverted to again.
 *
 * Invariant (9), enforced here: a revert is recorded in the superblock
 * (incompat REVERT, revert_seq = T) and that is durable before the newer
 * snapshots are deleted and before any origin chunk is overwritten; the record
 * is cleared only after every chunk was copied back and the origin flushed.
 * While it is recorded nothing changes the index (writes fail with -EBUSY,
 * snapshot operations with -EINPROGRESS), so copying back is idempotent: an
 * interrupted revert (power cut, kill -9, cow_close()) is redone from the
 * start at the next open, whatever part of it reached the disk, and the
 * deletions of the newer snapshots are redone too.  A mixture of reverted and
 * unreverted chunks is never served: reads during a revert return T's content
 * (cow__snap_read()), and open completes a recorded revert before it returns.
 * An engine that does not know the REVERT bit refuses the diff area (unknown
 * incompat feature) instead of serving the mixture.
 *
 * A diff-area failure while the newer snapshots are deleted (the only diff
 * writes of a revert besides the superblock) leaves the origin untouched: the
 * revert is dropped with the snapshots (ERROR state, cow-journal.c).  A copy
 * or origin write that fails leaves the revert recorded: it can be started
 * again with the same GUID, and reopening completes it.  If the journal cannot
 * be trusted at open while a revert is recorded (and no ERROR flag says the
 * origin was untouched), the target cannot be read any more: the event
 * COW_EVENT_REVERT_DONE reports -ENOTRECOVERABLE (VSS_E_REVERT_VOLUME_LOST).
 */

#include <string.h>

#include "cow/cow-internal.h"

struct rpair {
        uint64_t chunk, slot;
};

static void status_set(struct cow_volume *v, enum cow_revert_state state, int error)
{
        __atomic_store_n(&v->revert_st.state, state, __ATOMIC_RELEASE);
        v->revert_st.error = error;
}

/* Waits until no commit runs, so the superblock is ours to write (lock held). */
static void super_quiesce(struct cow_volume *v)
{
        while (v->committing)
                pthread_cond_wait(&v->cond, &v->lock);
}

/* Invariant (9): the revert to snapshot 'guid' is durable before anything
 * changes for it.  Lock held; -EBUSY if a live writer came meanwhile, -ENOENT
 * if the snapshot went. */
static int record(struct cow_volume *v, const uint8_t guid[16])
{
        int i, r;

        super_quiesce(v);
        /* From here to 'reverting' the lock is not dropped: no open and no
         * deletion slips in. */
        i = cow__find_snap_guid(v, guid);
        if (i < 0)
                return -ENOENT;
        if (v->live_writers > 0)
                return -EBUSY;
        v->sb.incompat |= COW_INCOMPAT_REVERT;
        v->sb.revert_seq = v->snaps[i].seq;
        r = cow__write_super(v);
        if (r < 0) {
                v->sb.incompat &= ~COW_INCOMPAT_REVERT;
                v->sb.revert_seq = 0;
                cow__enter_error(v, r);
                return r;
        }
        v->revert_seq = v->snaps[i].seq;
        __atomic_store_n(&v->reverting, true, __ATOMIC_RELEASE);
        return 0;
}

/* The revert is over (done, or dropped with the snapshots): no more record. */
static void unrecord(struct cow_volume *v)
{
        v->sb.incompat &= ~COW_INCOMPAT_REVERT;
        v->sb.revert_seq = 0;
        v->revert_seq = 0;
        __atomic_store_n(&v->reverting, false, __ATOMIC_RELEASE);
}

/* Deletes the snapshots newer than the target and commits that (lock held).
 * Done again when a revert is resumed: a crash may have cut the first time. */
static int discard_newer(struct cow_volume *v)
{
        int i = cow__find_snap_seq(v, v->revert_seq);

        assert(i >= 0);
        while (v->nsnaps > (unsigned) i + 1) {
                cow__snap_remove(v, v->nsnaps - 1, REASON_REVERTED, 0);
                v->revert_st.discarded++;
        }
        cow__wait_batch(v, v->last_queued);
        return v->failed ? -EIO : 0;
}

/*
 * Copies every chunk the target reads from the diff area onto the origin, in
 * chunk order, runs of consecutive chunks gathered into one origin write of up
 * to WB_RUN (the reads of consecutive slots merged too).  Lock held on entry
 * and exit, dropped for the I/O: nothing changes the index while a revert is
 * recorded, so the pairs stay valid.
 */
static int copy_back(struct cow_volume *v)
{
        const size_t maxrun = run_chunks(v);
        _cleanup_free_ struct rpair *p = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        size_t n = 0, a = 0;
        int r = 0;

        for (uint64_t c = 0; c < v->nchunks; c++) {
                uint32_t e = cow__lookup(v, c, v->revert_seq);

                if (!e)
                        continue;
                /* Every copy of a recorded revert is durable: it drained first. */
                assert(!(v->ent[e - 1].flags & E_PENDING));
                if (grow_array((void **) &p, &a, n + 1, sizeof(*p)) < 0)
                        return -ENOMEM;
                p[n++] = (struct rpair) { c, v->ent[e - 1].slot };
        }
        __atomic_store_n(&v->revert_st.chunks_total, n, __ATOMIC_RELAXED);
        __atomic_store_n(&v->revert_st.chunks_done, 0, __ATOMIC_RELAXED);
        if (n == 0)
                return 0;
        if (posix_memalign((void **) &buf, 4096, maxrun << v->shift) != 0)
                return -ENOMEM;

        pthread_mutex_unlock(&v->lock);
        for (size_t i = 0, j; i < n && r >= 0; i = j) {
                uint64_t off = p[i].chunk << v->shift;

                if (__atomic_load_n(&v->revert_stop, __ATOMIC_ACQUIRE)) {
                        r = -ECANCELED;
                        break;
                }
                for (j = i + 1; j < n && j - i < maxrun && p[j].chunk == p[j - 1].chunk + 1; j++)
                        ;
                /* Chunks [i, j) are consecutive: read their copies, in runs of
                 * consecutive slots, then write them in one piece. */
                for (size_t x = i, y; x < j && r >= 0; x = y) {
                        for (y = x + 1; y < j && p[y].slot == p[y - 1].slot + 1; y++)
                                ;
                        r = cow_io_pread(v->diff, buf + ((x - i) << v->shift), (y - x) << v->shift,
                                         slot_off(v, p[x].slot));
                }
                if (r >= 0)
                        r = cow_io_pwrite(v->origin, buf,
                                          (size_t) MIN((uint64_t) (j - i) << v->shift, v->origin_size - off), off);
                if (r >= 0)
                        __atomic_store_n(&v->revert_st.chunks_done, j, __ATOMIC_RELAXED);
        }
        pthread_mutex_lock(&v->lock);
        return r;
}

/*
 * The copy, the origin flush and the end of the record (lock held; dropped
 * for the I/O).  On failure the revert stays recorded; on success the origin
 * holds the target's content, durably, before the record goes.
 */
static int finish(struct cow_volume *v)
{
        uint8_t guid[16];
        int r;

        memcpy(guid, v->revert_st.guid, 16);
        r = copy_back(v);
        if (r >= 0) {
                pthread_mutex_unlock(&v->lock);
                r = cow_io_flush(v->origin);
                pthread_mutex_lock(&v->lock);
        }
        if (r < 0) {
                status_set(v, COW_REVERT_FAILED, r);
                v->revert_st.pending = true;
                if (r != -ECANCELED)
                        cow__emit(v, COW_EVENT_REVERT_DONE, guid, r);
                return r;
        }
        super_quiesce(v);
        unrecord(v);
        v->revert_st.pending = false;
        r = cow__write_super(v);
        if (r < 0)
                /* The origin is the target; the diff area failed afterwards. */
                cow__enter_error(v, r);
        status_set(v, COW_REVERT_DONE, r);
        cow__emit(v, COW_EVENT_REVERT_DONE, guid, r);
        return r;
}

static void *revert_main(void *arg)
{
        struct cow_volume *v = arg;

        (void) pthread_setname_np(pthread_self(), "cow-revert");
        pthread_mutex_lock(&v->lock);
        (void) finish(v);
        v->revert_running = false;
        pthread_cond_broadcast(&v->cond);
        pthread_mutex_unlock(&v->lock);
        return NULL;
}

/* Starts the copy thread (lock held). */
static int spawn(struct cow_volume *v)
{
        pthread_attr_t attr;
        int r;

        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 256 * 1024);
        r = -pthread_create(&v->revert_thread, &attr, revert_main, v);
        pthread_attr_destroy(&attr);
        if (r < 0) {
                status_set(v, COW_REVERT_FAILED, r);
                return r;
        }
        v->revert_running = v->revert_joinable = true;
        status_set(v, COW_REVERT_RUNNING, 0);
        return 0;
}

/* Joins a finished copy thread; lock held on entry and exit. */
static void join(struct cow_volume *v)
{
        while (v->revert_running)
                pthread_cond_wait(&v->cond, &v->lock);
        if (v->revert_joinable) {
                v->revert_joinable = false;
                pthread_mutex_unlock(&v->lock);
                pthread_join(v->revert_thread, NULL);
                pthread_mutex_lock(&v->lock);
        }
}

int cow_revert_start(struct cow_volume *v, const uint8_t guid[16])
{
        int i, r;

        if (!v || !guid)
                return -EINVAL;
        /* No origin write runs from here on (cow_write() waits for hold). */
        pthread_rwlock_wrlock(&v->hold);
        pthread_mutex_lock(&v->lock);
        if (v->revert_running) {
                r = -EINPROGRESS;
                goto out;
        }
        join(v);
        if (v->reverting) {
                /* Only the failed one may be started again, to complete it. */
                if (memcmp(v->revert_st.guid, guid, 16) != 0 || v->failed) {
                        r = -EINPROGRESS;
                        goto out;
                }
                r = spawn(v);
                goto out;
        }
        if (v->failed) {
                r = -EIO;
                goto out;
        }
        i = cow__find_snap_guid(v, guid);
        if (i < 0) {
                r = -ENOENT;
                goto out;
        }
        if (v->live_writers > 0) {
                r = -EBUSY;
                goto out;
        }
        pthread_mutex_unlock(&v->lock);

        /* Every acknowledged write reaches the origin and every copy its
         * record, so the copies the target reads are all durable. */
        r = cow_flush(v);
        pthread_mutex_lock(&v->lock);
        if (r < 0)
                goto out;
        if (v->failed) {
                r = -EIO;
                goto out;
        }
        cow__commit_all(v);
        if (v->failed) {
                r = -EIO;
                goto out;
        }
        assert(v->nready == 0);

        r = record(v, guid);
        if (r == -EBUSY || r == -ENOENT)
                goto out;
        v->revert_st = (struct cow_revert_status) { .state = COW_REVERT_RUNNING };
        memcpy(v->revert_st.guid, guid, 16);
        if (r < 0) {
                status_set(v, COW_REVERT_FAILED, r);
                goto out;
        }
        r = discard_newer(v);
        if (r < 0) {
                /* The diff area failed before the origin changed: every
                 * snapshot, the target too, went with it (invalidated). */
                unrecord(v);
                status_set(v, COW_REVERT_FAILED, r);
                goto out;
        }
        v->revert_st.pending = true;
        r = spawn(v);
out:
        pthread_mutex_unlock(&v->lock);
        pthread_rwlock_unlock(&v->hold);
        return r;
}

int cow_revert_wait(struct cow_volume *v)
{
        int r;

        if (!v)
                return -EINVAL;
        pthread_mutex_lock(&v->lock);
        join(v);
        r = v->revert_st.state == COW_REVERT_FAILED ? v->revert_st.error : 0;
        pthread_mutex_unlock(&v->lock);
        return r;
}

int cow_revert(struct cow_volume *v, const uint8_t guid[16])
{
        int r = cow_revert_start(v, guid);

        return r < 0 ? r : cow_revert_wait(v);
}

int cow_revert_status(struct cow_volume *v, struct cow_revert_status *ret)
{
        if (!v || !ret)
                return -EINVAL;
        pthread_mutex_lock(&v->lock);
        /* The copy thread updates the progress without the lock. */
        *ret = (struct cow_revert_status) {
                .state = __atomic_load_n(&v->revert_st.state, __ATOMIC_ACQUIRE),
                .chunks_total = __atomic_load_n(&v->revert_st.chunks_total, __ATOMIC_RELAXED),
                .chunks_done = __atomic_load_n(&v->revert_st.chunks_done, __ATOMIC_RELAXED),
                .discarded = v->revert_st.discarded,
                .error = v->revert_st.error,
                .pending = v->revert_st.pending,
                .resumed = v->revert_st.resumed,
        };
        memcpy(ret->guid, v->revert_st.guid, 16);
        pthread_mutex_unlock(&v->lock);
        return 0;
}

int cow_live_open(struct cow_volume *v)
{
        int r = 0;

        if (!v)
                return -EINVAL;
        pthread_mutex_lock(&v->lock);
        if (v->reverting)
                r = -EBUSY;
        else
                v->live_writers++;
        pthread_mutex_unlock(&v->lock);
        return r;
}

void cow_live_close(struct cow_volume *v)
{
        if (!v)
                return;
        pthread_mutex_lock(&v->lock);
        assert(v->live_writers > 0);
        v->live_writers--;
        pthread_mutex_unlock(&v->lock);
}

/*
 * At open, after replay, when the superblock records a revert (nobody else
 * has the volume yet).  'lost': the journal could not be trusted and every
 * snapshot is gone.  The origin was untouched then only if the ERROR flag says
 * the diff area failed (a revert fails that way only before its first origin
 * write); else the target cannot be read any more and the origin may be a
 * mixture, which is reported.  Otherwise the revert is completed here: the
 * newer snapshots go (again), the chunks are copied back.  If copying fails
 * the volume opens with the revert still recorded (reads give the target,
 * writes fail) for cow_revert_start() to complete.  Returns a negative errno
 * only when the diff area fails.
 */
int cow__revert_resume(struct cow_volume *v, bool lost)
{
        uint32_t seq = v->sb.revert_seq;
        int i, r;

        pthread_mutex_lock(&v->lock);
        i = lost ? -1 : cow__find_snap_seq(v, seq);
        v->revert_st = (struct cow_revert_status) { .state = COW_REVERT_RUNNING, .resumed = true };
        if (i < 0) {
                static const uint8_t none[16];

                if (lost && (v->sb.incompat & COW_INCOMPAT_ERROR))
                        v->revert_st.state = COW_REVERT_NONE;
                else {
                        status_set(v, COW_REVERT_FAILED, -ENOTRECOVERABLE);
                        cow__emit(v, COW_EVENT_REVERT_DONE, none, -ENOTRECOVERABLE);
                }
                /* The caller's superblock write (or reset) drops the record. */
                unrecord(v);
                pthread_mutex_unlock(&v->lock);
                return 0;
        }
        memcpy(v->revert_st.guid, v->snaps[i].guid, 16);
        v->revert_seq = seq;
        __atomic_store_n(&v->reverting, true, __ATOMIC_RELEASE);
        v->revert_st.pending = true;
        r = discard_newer(v);
        if (r < 0) {
                unrecord(v);
                status_set(v, COW_REVERT_FAILED, r);
        } else
                (void) finish(v);
        pthread_mutex_unlock(&v->lock);
        return r;
}

/* cow_close(): a running copy stops at its next run; the record stays. */
void cow__revert_stop(struct cow_volume *v)
{
        pthread_mutex_lock(&v->lock);
        __atomic_store_n(&v->revert_stop, true, __ATOMIC_RELEASE);
        join(v);
        pthread_mutex_unlock(&v->lock);
}
