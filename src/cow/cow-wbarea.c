/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The memory of the write-back cache (cow-cache.c): one mapping with a header,
 * a descriptor per dirty chunk (its chunk number, its written sectors, its
 * pages) and the pages.  Anonymous by default; with cow_set_writeback_fd() it
 * is shared memory the caller keeps (a memfd another process also holds), so
 * that a write acknowledged from this memory outlives the process: whoever
 * maps the same memory after this process died finds every acknowledged write
 * the origin does not have yet and writes it back (cow_set_writeback_fd()
 * again, in the next process) before it serves anything.
 *
 * What a kill at any instruction leaves there is enough.  Every change is
 * made with the volume's lock held, in this order, so that the memory, read
 * after the process is gone, never claims data it does not hold:
 *   - a descriptor is filled (chunk, no sector, no page) before its state
 *     turns DIRTY, and turns FREE before its pages go back to the pool;
 *   - a page number is stored before the page's data, the data before the
 *     sectors' bits.
 * A write that was not acknowledged may be found half applied: the client
 * sends it again (FUSE_NOTIFY_RESEND, an NBD client's retry), as for any disk.
 * Writing a dirty chunk back twice is harmless: its COPY record is durable
 * before the origin is written (invariant 2), so the second time is a plain
 * rewrite of the same sectors, and no newer write of the chunk can have
 * reached the origin in between (writers wait for a WRITING chunk).
 */

#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cow/cow-internal.h"

#define ALIGN_TO(x, a) (((x) + (a) - 1) / (a) * (a))
/* Pages when the limit is 0 (write-through): writers in flight at once, each
 * with up to a 1 MiB request; more only makes writers wait for a commit. */
#define MIN_PAGES 1024u
/* Above the limit: what the writers in flight put before they throttle. */
#define SLACK_PAGES 2048u

static size_t desc_size_for(uint32_t chunk)
{
        return ALIGN_TO(sizeof(struct cow_wbdesc) + valid_words(chunk) * 8 + (chunk / PAGE) * 4, 8);
}

static uint64_t pages_for(uint64_t limit)
{
        return MIN((uint64_t) UINT32_MAX / 2, MAX((uint64_t) MIN_PAGES, limit / PAGE + SLACK_PAGES));
}

uint64_t *cow__desc_valid(const struct cow_volume *v, struct cow_wbdesc *d)
{
        (void) v;
        return d->words;
}

uint32_t *cow__desc_pages(const struct cow_volume *v, struct cow_wbdesc *d)
{
        return (uint32_t *) (d->words + valid_words(v->chunk));
}

static struct cow_wbdesc *desc_at(const uint8_t *base, const struct cow_wbheader *h, uint32_t i)
{
        return (struct cow_wbdesc *) (base + h->desc_off + (size_t) i * h->desc_size);
}

/* ---- the parser: what a predecessor left (fuzzed: tests/cow/fuzz-cow-wbarea.c) ---- */

/* The header of an area of len bytes, checked against itself and the origin. */
static int check_header(const uint8_t *p, size_t len, uint64_t origin_size, struct cow_wbheader *h)
{
        uint64_t end;

        if (len < COW_WB_HEADER)
                return -EBADMSG;
        memcpy(h, p, sizeof(*h));
        if (memcmp(h->magic, COW_WB_MAGIC, 8) != 0 || h->version != COW_WB_VERSION)
                return -EBADMSG;
        if (h->page_size != PAGE || h->chunk_size < COW_CHUNK_MIN || h->chunk_size > COW_CHUNK_MAX ||
            (h->chunk_size & (h->chunk_size - 1)) || h->desc_size != desc_size_for(h->chunk_size) ||
            h->origin_size != origin_size)
                return -EBADMSG;
        if (h->desc_off < COW_WB_HEADER || h->desc_off % 8 || h->pages_off % PAGE || h->pages_off > len ||
            h->desc_off > h->pages_off || (h->pages_off - h->desc_off) / h->desc_size < h->ndesc)
                return -EBADMSG;
        end = h->pages_off + (uint64_t) h->npages * PAGE;
        if (end < h->pages_off || end > len)
                return -EBADMSG;
        return 0;
}

int cow_wb_scan(const void *area, size_t len, uint64_t origin_size, cow_wb_run_fn fn, void *userdata,
                struct cow_wb_info *ret)
{
        const uint8_t *p = area;
        _cleanup_free_ uint64_t *chunks = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        struct cow_wbheader h;
        struct cow_wb_info info = {};
        size_t n = 0;
        int r;

        if (!area || !ret)
                return -EINVAL;
        *ret = info;
        /* A fresh memfd (zeros) holds nothing. */
        if (len < COW_WB_HEADER || memcmp(p, (const char[8]) {}, 8) == 0)
                return 0;
        r = check_header(p, len, origin_size, &h);
        if (r < 0)
                return r;
        info.formatted = true;
        info.generation = h.generation;
        info.lost = h.flags & COW_WB_LOST;
        if (h.state != COW_WB_LIVE) {
                /* Being formatted when its server died: it held nothing yet. */
                *ret = info;
                return 0;
        }
        chunks = malloc(((size_t) h.ndesc + 1) * sizeof(uint64_t));
        buf = malloc(h.chunk_size);
        if (!chunks || !buf)
                return -ENOMEM;
        /* Check everything before giving out anything: all of it, or -EBADMSG. */
        for (int pass = 0; pass < 2; pass++) {
                if (pass == 1) {
                        /* Two descriptors of one chunk: which holds the newer data is unknown. */
                        qsort(chunks, n, sizeof(uint64_t), cmp_u64);
                        for (size_t i = 1; i < n; i++)
                                if (chunks[i] == chunks[i - 1])
                                        return -EBADMSG;
                        if (!fn)
                                break;
                }
                for (uint32_t i = 0; i < h.ndesc; i++) {
                        const struct cow_wbdesc *d = desc_at(p, &h, i);
                        const uint64_t *valid = d->words;
                        const uint32_t *pg = (const uint32_t *) (d->words + valid_words(h.chunk_size));
                        uint64_t base;
                        uint32_t ns = h.chunk_size / SECTOR;

                        if (d->state == WBD_FREE)
                                continue;
                        if (d->state != WBD_DIRTY || d->chunk >= (origin_size + h.chunk_size - 1) / h.chunk_size)
                                return -EBADMSG;
                        base = d->chunk * h.chunk_size;
                        if (pass == 0)
                                chunks[n++] = d->chunk;
                        for (uint32_t s = 0, e; s < ns; s = e + 1) {
                                uint64_t off = base + (uint64_t) s * SECTOR, l;

                                e = s;
                                if (!sect_bit(valid, s))
                                        continue;
                                while (e + 1 < ns && sect_bit(valid, e + 1))
                                        e++;
                                for (uint32_t k = s * SECTOR / PAGE; k <= e * SECTOR / PAGE; k++)
                                        if (pg[k] == 0 || pg[k] > h.npages)
                                                return -EBADMSG;
                                if (off >= origin_size)
                                        continue;
                                l = MIN((uint64_t) (e + 1 - s) * SECTOR, origin_size - off);
                                if (pass == 0) {
                                        info.bytes += l;
                                        continue;
                                }
                                for (uint64_t o = 0; o < l;) {
                                        uint32_t in = (uint32_t) (off - base + o), k = in / PAGE;
                                        size_t m = (size_t) MIN(l - o, (uint64_t) (PAGE - in % PAGE));

                                        memcpy(buf + o, p + h.pages_off + (uint64_t) (pg[k] - 1) * PAGE + in % PAGE, m);
                                        o += m;
                                }
                                r = fn(buf, (size_t) l, off, userdata);
                                if (r < 0)
                                        return r;
                        }
                        info.chunks += pass == 0;
                }
        }
        *ret = info;
        return 0;
}

/* ---- mapping and formatting ---- */

void cow__area_unmap(struct cow_volume *v)
{
        assert(v->nready == 0);
        for (uint32_t i = 0; i < v->ndch; i++)
                free(v->dch[i].pg);
        v->dch = mfree(v->dch);
        v->adch = v->ndch = v->dch_free = 0;
        if (v->wa.base)
                munmap(v->wa.base, v->wa.len);
        v->wa = (struct wbarea) {};
        v->pool = NULL;
        v->npages = 0;
}

/* Lays an empty area out on base (len bytes, zeros or a predecessor's) for
 * npages pages; the header says LIVE last. */
static void area_format(struct cow_volume *v, uint8_t *base, size_t len, uint64_t npages, uint64_t generation,
                        uint32_t flags)
{
        struct cow_wbheader *h = (struct cow_wbheader *) base;
        size_t dsz = desc_size_for(v->chunk);

        __atomic_store_n(&h->state, 0, __ATOMIC_RELEASE);
        *h = (struct cow_wbheader) {
                .version = COW_WB_VERSION,
                .generation = generation,
                .origin_size = v->origin_size,
                .chunk_size = v->chunk,
                .page_size = PAGE,
                .ndesc = (uint32_t) npages,
                .desc_size = (uint32_t) dsz,
                .desc_off = COW_WB_HEADER,
                .pages_off = ALIGN_TO(COW_WB_HEADER + npages * dsz, PAGE),
                .npages = (uint32_t) npages,
                .flags = flags,
        };
        memcpy(h->magic, COW_WB_MAGIC, 8);
        for (uint32_t i = 0; i < h->ndesc; i++)
                desc_at(base, h, i)->state = WBD_FREE;
        assert(h->pages_off + npages * PAGE <= len);
        __atomic_store_n(&h->state, COW_WB_LIVE, __ATOMIC_RELEASE);
}

static size_t area_len(const struct cow_volume *v, uint64_t npages)
{
        return ALIGN_TO(COW_WB_HEADER + npages * desc_size_for(v->chunk), PAGE) + npages * PAGE;
}

/* Takes the mapping base (len bytes, formatted) as the volume's area; lock
 * held, no dirty chunk. */
static int area_take(struct cow_volume *v, uint8_t *base, size_t len, bool shared)
{
        struct cow_wbheader *h = (struct cow_wbheader *) base;

        v->dch = calloc(h->ndesc, sizeof(struct dchunk));
        if (!v->dch)
                return -ENOMEM;
        v->adch = h->ndesc;
        v->wa = (struct wbarea) { .base = base, .len = len, .shared = shared, .hdr = h,
                                  .desc_size = h->desc_size, .pages = base + h->pages_off };
        v->npages = h->npages;
        v->pool = NULL;
        for (size_t k = h->npages; k-- > 0;) {
                uint8_t *pg = v->wa.pages + k * PAGE;

                *(void **) pg = v->pool;
                v->pool = pg;
        }
        v->flush_error = h->flags & COW_WB_LOST ? -EIO : 0;
        return 0;
}

/* Anonymous memory for v->wb_limit, unless there is an area already. */
int cow__area_ensure(struct cow_volume *v)
{
        uint64_t npages = pages_for(v->wb_limit);
        size_t len = area_len(v, npages);
        uint8_t *p;
        int r;

        if (v->wa.base)
                return 0;
        /* Populated up to 1 GiB: a first write costs no page fault (expensive
         * on a paravirtualised VM); beyond, pages come as they are touched. */
        p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | (len <= (1ull << 30) ? MAP_POPULATE : 0), -1, 0);
        if (p == MAP_FAILED)
                return -ENOMEM;
        area_format(v, p, len, npages, 1, v->flush_error ? COW_WB_LOST : 0);
        r = area_take(v, p, len, false);
        if (r < 0)
                munmap(p, len);
        return r;
}

static int replay_run(const void *buf, size_t len, uint64_t off, void *userdata)
{
        return cow_write(userdata, buf, len, off);
}

int cow_set_writeback_fd(struct cow_volume *v, uint64_t limit_bytes, uint32_t interval_ms, int fd,
                         struct cow_wb_info *ret)
{
        struct cow_wb_info info = {};
        struct stat st;
        uint64_t npages;
        size_t len;
        uint8_t *p;
        int r, lost = 0;

        if (!v || fd < 0)
                return -EINVAL;
        /* Write-through with anonymous buffers while the predecessor's are
         * written back: they cannot go into the memory they are read from. */
        r = cow_set_writeback(v, limit_bytes, 0);
        if (r < 0)
                return r;
        if (fstat(fd, &st) < 0)
                return -errno;
        npages = pages_for(limit_bytes);
        len = area_len(v, npages);
        if ((uint64_t) st.st_size > SIZE_MAX)
                return -EFBIG;
        if (st.st_size > 0) {
                p = mmap(NULL, (size_t) st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
                if (p == MAP_FAILED)
                        return -errno;
                r = cow_wb_scan(p, (size_t) st.st_size, v->origin_size, NULL, NULL, &info);
                if (r >= 0 && info.chunks > 0) {
                        /* All of it in one commit where the buffers allow. */
                        pthread_mutex_lock(&v->lock);
                        v->wb_limit = v->npages * PAGE;
                        pthread_mutex_unlock(&v->lock);
                        r = cow_wb_scan(p, (size_t) st.st_size, v->origin_size, replay_run, v, &info);
                        if (r >= 0)
                                r = cow_flush(v);
                        pthread_mutex_lock(&v->lock);
                        v->wb_limit = limit_bytes;
                        pthread_mutex_unlock(&v->lock);
                }
                if (r < 0) {
                        info.error = r;
                        lost = COW_WB_LOST;
                }
                if (info.lost)
                        lost = COW_WB_LOST;
                munmap(p, (size_t) st.st_size);
        }
        /* From here on the predecessor's writes are on the origin, flushed (or
         * marked lost): the memory can be laid out anew. */
        if ((uint64_t) st.st_size != len && ftruncate(fd, (off_t) len) < 0)
                return -errno;
        p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
        if (p == MAP_FAILED)
                return -errno;
        pthread_mutex_lock(&v->lock);
        cow__drain(v);
        cow__area_unmap(v);
        area_format(v, p, len, npages, info.generation + 1, lost);
        r = area_take(v, p, len, true);
        pthread_mutex_unlock(&v->lock);
        if (r < 0) {
                munmap(p, len);
                return r;
        }
        if (ret)
                *ret = info;
        return cow_set_writeback(v, limit_bytes, interval_ms);
}

int cow_set_flush_error(struct cow_volume *v, int error)
{
        if (!v || error > 0)
                return -EINVAL;
        pthread_mutex_lock(&v->lock);
        v->flush_error = error;
        if (v->wa.hdr) {
                if (error < 0)
                        v->wa.hdr->flags |= COW_WB_LOST;
                else
                        v->wa.hdr->flags &= ~COW_WB_LOST;
        }
        pthread_mutex_unlock(&v->lock);
        return 0;
}
