/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The write-back cache of first writes after a snapshot.
 *
 * A first write after a snapshot does not wait for its copy: the writer puts
 * the new data in a memory buffer (a dirty chunk, which records the 512-byte
 * sectors written and holds only the 4 KiB pages that were written), queues
 * the COPY record and returns.  Reads of the volume merge the buffer with the
 * origin, which still holds the old data: that is what snapshots read until
 * the copy is durable.  The committer (a writer over the write-back limit,
 * cow_flush(), snapshot creation, or the write-back thread below) copies the
 * batch's old chunks from the origin into their slots, makes copies and
 * records durable with one flush pair, and only then writes the dirty sectors
 * to the origin.  So an acknowledged write is durable after the next
 * cow_flush(), as on any disk with a volatile cache; a power cut before that
 * may lose it, and never makes a snapshot read newer data.  Limit 0 (the
 * default) makes every first write wait for its own commit.
 *
 * Invariant (2), enforced here: an origin write that needs a copy starts only
 * after the COPY record describing that copy is durable (record -> flush ->
 * origin write).  The write path never writes such a chunk to the origin
 * itself: the chunk becomes dirty (cow.c), and cow__writeback() writes a
 * dirty chunk only once the batch of its record is durable, or once the diff
 * area failed and no snapshot needs the old data any more.
 *
 * Dirty chunk states: DIRTY (writers add to it), FILLING (a writer reads the
 * old bytes of a partly written sector from the origin, lock dropped),
 * WRITING (the committer writes it to the origin, lock dropped); writers wait
 * on v->cond while a chunk is FILLING or WRITING.
 */

#include <string.h>
#include <time.h>

#include "basic/time-util.h"
#include "cow/cow-internal.h"

/* ---- dirty chunks (write-back) ---- */

uint32_t cow__dfind(struct cow_volume *v, uint64_t c)
{
        uint32_t i = v->dbucket[c % DBUCKETS];

        while (i && v->dch[i - 1].chunk != c)
                i = v->dch[i - 1].hnext;
        return i;
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
 * Pages come from the area (cow-wbarea.c), reserved up front and populated:
 * a first write after a snapshot costs no allocation and no page fault
 * (expensive on a paravirtualised VM).  When they are all taken a writer
 * waits for a commit to write some back (cow__wait_memory()).
 */
static void page_put(struct cow_volume *v, uint8_t *p)
{
        v->dirty_bytes -= PAGE;
        *(void **) p = v->pool;
        v->pool = p;
}

static uint8_t *page_get(struct cow_volume *v)
{
        uint8_t *p;

        if (!v->pool)
                return NULL;
        p = v->pool;
        v->pool = *(void **) p;
        v->dirty_bytes += PAGE;
        return p;
}

/* Page k of dirty chunk d, taken from the pool if it has none yet; NULL when
 * the pool is empty.  Its number is in the descriptor before any data. */
static uint8_t *dpage(struct cow_volume *v, struct dchunk *d, uint32_t k)
{
        uint8_t *p = d->pg[k];

        if (p)
                return p;
        /* Not cleared: only sectors marked written are ever read from it. */
        p = page_get(v);
        if (!p)
                return NULL;
        __atomic_store_n(&cow__desc_pages(v, d->desc)[k], (uint32_t) ((p - v->wa.pages) / PAGE) + 1,
                         __ATOMIC_RELEASE);
        return d->pg[k] = p;
}

/* Marks sectors [s0, s1] of d written: after their data (another process may
 * read the area once we are gone, see cow-wbarea.c). */
static void dmark(struct dchunk *d, uint32_t s0, uint32_t s1)
{
        __atomic_thread_fence(__ATOMIC_RELEASE);
        for (uint32_t s = s0; s <= s1; s++)
                __atomic_fetch_or(&d->valid[s / 64], 1ull << (s % 64), __ATOMIC_RELAXED);
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

/* Reserve the pages [in, in+len) of d needs; -EAGAIN (the pool is empty)
 * leaves d as it was apart from pages taken (harmless: their sectors are not
 * marked written). */
static int dreserve(struct cow_volume *v, struct dchunk *d, uint32_t in, size_t len)
{
        for (uint32_t k = in / PAGE; k <= (in + (uint32_t) len - 1) / PAGE; k++)
                if (!dpage(v, d, k))
                        return -EAGAIN;
        return 0;
}

/* A DIRTY chunk for c (which has none) with nothing written yet, index + 1;
 * -EAGAIN when every descriptor of the area is taken. */
int cow__dnew(struct cow_volume *v, uint64_t c, uint32_t *ret)
{
        struct dchunk *d;
        uint32_t i;
        int r;

        r = cow__area_ensure(v);
        if (r < 0)
                return r;
        if (v->dch_free) {
                i = v->dch_free - 1;
                v->dch_free = v->dch[i].hnext;
        } else {
                if (v->ndch >= v->adch)
                        return -EAGAIN;
                i = v->ndch++;
                v->dch[i].pg = NULL;
                v->dch[i].desc = (struct cow_wbdesc *) (v->wa.base + v->wa.hdr->desc_off + (size_t) i * v->wa.desc_size);
        }
        d = &v->dch[i];
        if (!d->pg) {
                d->pg = calloc(v->chunk / PAGE, sizeof(uint8_t *));
                if (!d->pg) {
                        d->hnext = v->dch_free;
                        v->dch_free = i + 1;
                        return -ENOMEM;
                }
        }
        /* The descriptor says DIRTY only once it names nothing stale. */
        d->valid = cow__desc_valid(v, d->desc);
        memset(d->valid, 0, valid_words(v->chunk) * 8);
        memset(cow__desc_pages(v, d->desc), 0, (v->chunk / PAGE) * sizeof(uint32_t));
        d->desc->chunk = c;
        __atomic_store_n(&d->desc->state, WBD_DIRTY, __ATOMIC_RELEASE);
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
        /* FREE in the area before its pages can hold another chunk's data. */
        __atomic_store_n(&d->desc->state, WBD_FREE, __ATOMIC_RELEASE);
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
int cow__dfill(struct cow_volume *v, uint32_t idx, uint64_t cs, uint64_t ce)
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
                        r = -EAGAIN;
                        break;
                }
                dcopy_in(d, want[k] * SECTOR, tmp[k], SECTOR);
                dmark(d, want[k], want[k]);
        }
        v->dch[idx - 1].state = D_DIRTY;
        v->nfilling--;
        pthread_cond_broadcast(&v->cond);
        return r;
}

/* Put [off, off+len), inside dirty chunk d, into it (partial sectors filled):
 * all of it, or nothing on -EAGAIN (no free page: cow__wait_memory()). */
int cow__dput(struct cow_volume *v, struct dchunk *d, const uint8_t *src, size_t len, uint64_t off)
{
        uint32_t in = (uint32_t) (off & (v->chunk - 1));

        if (dreserve(v, d, in, len) < 0)
                return -EAGAIN;
        dcopy_in(d, in, src, len);
        dmark(d, in / SECTOR, (in + (uint32_t) len - 1) / SECTOR);
        return 0;
}

/* Read [off, off+len), inside chunk c, as the volume holds it.  Lock held on
 * entry, released on return. */
int cow__dread(struct cow_volume *v, uint32_t idx, uint8_t *p, size_t len, uint64_t off)
{
        uint32_t in = (uint32_t) (off & (v->chunk - 1)), s0 = in / SECTOR, s1 = (in + (uint32_t) len - 1) / SECTOR;
        uint64_t mask[(COW_CHUNK_MAX / SECTOR) / 64];
        const struct dchunk *d = &v->dch[idx - 1];
        int r = 0;

        memcpy(mask, d->valid, valid_words(v->chunk) * 8);
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

/* ---- write-back to the origin ---- */

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
void cow__writeback(struct cow_volume *v)
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
                        /* Invariant (2): its record is durable, or nobody needs the copy. */
                        assert(d->batch <= v->batch_done || v->failed);
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

/* ---- draining, throttling, the write-back thread ---- */

/* Every write acknowledged so far reaches the origin (not flushed). */
void cow__drain(struct cow_volume *v)
{
        while (v->nready > 0) {
                /* FILLING chunks may hold acknowledged sectors: wait for them. */
                if (!v->committing && v->nready > v->nfilling)
                        cow__do_commit(v);
                else
                        pthread_cond_wait(&v->cond, &v->lock);
        }
}

/* The area's pages or descriptors are all taken: write some back, or wait for
 * a commit (or a FILLING chunk) that does.  Lock held; dropped meanwhile, so
 * the caller looks at its chunk again. */
void cow__wait_memory(struct cow_volume *v)
{
        uint64_t t0 = clock_monotonic_ns();

        if (!v->committing && v->nready > v->nfilling)
                cow__do_commit(v);
        else
                pthread_cond_wait(&v->cond, &v->lock);
        v->stat_throttled++;
        v->stat_throttle_ns += clock_monotonic_ns() - t0;
}

/* Over the limit, with something a commit can write back (not FILLING). */
static bool over_limit(struct cow_volume *v)
{
        return v->dirty_bytes > v->wb_limit && v->nready > v->nfilling;
}

/* Writers wait here while the dirty buffers exceed the write-back limit. */
void cow__throttle(struct cow_volume *v)
{
        uint64_t t0;

        if (v->wb_started && v->dirty_bytes >= v->wb_limit / 2)
                pthread_cond_signal(&v->wb_cond);
        if (!over_limit(v))
                return;
        t0 = clock_monotonic_ns();
        do {
                if (!v->committing)
                        cow__do_commit(v);
                else
                        pthread_cond_wait(&v->cond, &v->lock);
        } while (over_limit(v));
        v->stat_throttled++;
        v->stat_throttle_ns += clock_monotonic_ns() - t0;
}

static void *wb_main(void *arg)
{
        struct cow_volume *v = arg;

        (void) pthread_setname_np(pthread_self(), "cow-commit");
        pthread_mutex_lock(&v->lock);
        while (!v->wb_stop) {
                struct timespec ts;

                if (v->nready > 0 && !v->committing) {
                        cow__do_commit(v);
                        if (v->dirty_bytes >= v->wb_limit / 2)
                                continue;
                }
                ts = timespec_from_us(clock_monotonic_us() + (uint64_t) v->wb_interval_ms * USEC_PER_MSEC);
                (void) pthread_cond_timedwait(&v->wb_cond, &v->lock, &ts);
        }
        pthread_mutex_unlock(&v->lock);
        return NULL;
}

void cow__wb_thread_stop(struct cow_volume *v)
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
        cow__wb_thread_stop(v);
        pthread_mutex_lock(&v->lock);
        v->wb_limit = limit_bytes;
        v->wb_interval_ms = interval_ms;
        cow__drain(v);
        /* Anonymous buffers are sized for the limit now (a shared area keeps
         * the size its owner gave it); if that fails they come at the first
         * write that needs them. */
        if (!v->wa.shared) {
                cow__area_unmap(v);
                (void) cow__area_ensure(v);
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

/* The cache's memory, at cow_close() or a failed open (nothing runs any more). */
void cow__cache_free(struct cow_volume *v)
{
        cow__area_unmap(v);
        free(v->wbbuf);
        free(v->dbucket);
}
