/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Test-only I/O layers for the CoW engine, behind its replaceable ops table
 * (src/cow/cow-io.h): a growable memory device (unit tests, fuzzing), a
 * power-cut simulator (crash tests, modelled on SQLite's test6.c idea: keep
 * every write since the last flush pending and decide its fate at the crash),
 * and a call counter.  They live here, not in the engine, so vss-volsrv does
 * not ship them.
 *
 * The simulator treats resize as immediately durable: the engine only grows
 * the diff area before writing into the new space and never relies on the
 * size for correctness (the journal says what is valid), so this does not
 * hide ordering bugs.
 */

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "basic/macro.h"
#include "cow-test-io.h"

/* ---- memory ---- */

struct mem_io {
        struct cow_io io;
        pthread_mutex_t lock;
        uint8_t *data;
        size_t len;
};

static int mem_grow(uint8_t **data, size_t *len, uint64_t want)
{
        uint8_t *n;

        if (want > (uint64_t) 1 << 34)
                return -EFBIG;
        if (want <= *len)
                return 0;
        n = realloc(*data, (size_t) want);
        if (!n)
                return -ENOMEM;
        memset(n + *len, 0, (size_t) want - *len);
        *data = n;
        *len = (size_t) want;
        return 0;
}

static void mem_read(const uint8_t *data, size_t dlen, void *buf, size_t len, uint64_t off)
{
        memset(buf, 0, len);
        if (off < dlen)
                memcpy(buf, data + off, MIN(len, dlen - (size_t) off));
}

static int mem_pread(struct cow_io *io, void *buf, size_t len, uint64_t off)
{
        struct mem_io *m = (struct mem_io *) io;

        pthread_mutex_lock(&m->lock);
        mem_read(m->data, m->len, buf, len, off);
        pthread_mutex_unlock(&m->lock);
        return 0;
}

static int mem_pwrite(struct cow_io *io, const void *buf, size_t len, uint64_t off)
{
        struct mem_io *m = (struct mem_io *) io;
        int r;

        pthread_mutex_lock(&m->lock);
        r = mem_grow(&m->data, &m->len, off + len);
        if (r >= 0)
                memcpy(m->data + off, buf, len);
        pthread_mutex_unlock(&m->lock);
        return r;
}

static int mem_flush(struct cow_io *io)
{
        return 0;
}

static int mem_size(struct cow_io *io, uint64_t *ret_size)
{
        struct mem_io *m = (struct mem_io *) io;

        pthread_mutex_lock(&m->lock);
        *ret_size = m->len;
        pthread_mutex_unlock(&m->lock);
        return 0;
}

static int mem_resize(struct cow_io *io, uint64_t size)
{
        struct mem_io *m = (struct mem_io *) io;
        int r = 0;

        pthread_mutex_lock(&m->lock);
        if (size > m->len)
                r = mem_grow(&m->data, &m->len, size);
        else
                m->len = (size_t) size;
        pthread_mutex_unlock(&m->lock);
        return r;
}

static void mem_free(struct cow_io *io)
{
        struct mem_io *m = (struct mem_io *) io;

        pthread_mutex_destroy(&m->lock);
        free(m->data);
        free(m);
}

static const struct cow_io_ops mem_ops = {
        .pread = mem_pread,
        .pwrite = mem_pwrite,
        .flush = mem_flush,
        .size = mem_size,
        .resize = mem_resize,
        .free = mem_free,
};

int cow_io_new_memory(const void *data, size_t len, struct cow_io **ret_io)
{
        struct mem_io *m;

        if (!ret_io || (len > 0 && !data))
                return -EINVAL;
        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        m->io.ops = &mem_ops;
        pthread_mutex_init(&m->lock, NULL);
        if (len > 0) {
                m->data = malloc(len);
                if (!m->data) {
                        free(m);
                        return -ENOMEM;
                }
                memcpy(m->data, data, len);
                m->len = len;
        }
        *ret_io = &m->io;
        return 0;
}

/* ---- power-cut simulator ---- */

#define CRASH_MAX_DEVICES 8
#define SECTOR 512

struct pending_write {
        uint64_t off;
        size_t len;
        uint8_t *data;
};

struct crash_io {
        struct cow_io io;
        struct cow_crash_world *world;
        uint8_t *durable;       /* what survives a power cut */
        size_t durable_len;
        uint8_t *vol;           /* what reads see: durable + pending */
        size_t vol_len;
        struct pending_write *pending;
        size_t npending, apending;
};

struct cow_crash_world {
        pthread_mutex_t lock;
        uint64_t crash_at, flushes, rng;
        bool crashed;
        struct crash_io *dev[CRASH_MAX_DEVICES];
        size_t ndev;
};

static uint64_t rng_next(uint64_t *s)
{
        /* splitmix64: small, seedable, good enough to pick fates. */
        uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
}

struct cow_crash_world *cow_crash_world_new(uint64_t crash_at, uint64_t seed)
{
        struct cow_crash_world *w = calloc(1, sizeof(*w));

        if (!w)
                return NULL;
        pthread_mutex_init(&w->lock, NULL);
        w->crash_at = crash_at;
        w->rng = seed;
        return w;
}

struct cow_crash_world *cow_crash_world_free(struct cow_crash_world *w)
{
        if (!w)
                return NULL;
        /* Devices must be freed first; they unregister themselves. */
        assert(w->ndev == 0);
        pthread_mutex_destroy(&w->lock);
        free(w);
        return NULL;
}

uint64_t cow_crash_world_flushes(struct cow_crash_world *w)
{
        uint64_t n;

        pthread_mutex_lock(&w->lock);
        n = w->flushes;
        pthread_mutex_unlock(&w->lock);
        return n;
}

bool cow_crash_world_crashed(struct cow_crash_world *w)
{
        bool b;

        pthread_mutex_lock(&w->lock);
        b = w->crashed;
        pthread_mutex_unlock(&w->lock);
        return b;
}

static void pending_clear(struct crash_io *c)
{
        for (size_t i = 0; i < c->npending; i++)
                free(c->pending[i].data);
        c->npending = 0;
}

static int crash_apply(uint8_t **data, size_t *len, const uint8_t *buf, size_t n, uint64_t off)
{
        int r = mem_grow(data, len, off + n);

        if (r < 0)
                return r;
        memcpy(*data + off, buf, n);
        return 0;
}

/* The power cut: decide the fate of every pending write of every device. */
static void world_crash(struct cow_crash_world *w)
{
        w->crashed = true;
        for (size_t d = 0; d < w->ndev; d++) {
                struct crash_io *c = w->dev[d];
                size_t n = c->npending;
                size_t *order = calloc(n ? n : 1, sizeof(size_t));

                if (!order)
                        abort();
                for (size_t i = 0; i < n; i++)
                        order[i] = i;
                /* Unflushed writes may reach the medium in any order. */
                for (size_t i = n; i > 1; i--) {
                        size_t j = rng_next(&w->rng) % i, t = order[i - 1];
                        order[i - 1] = order[j];
                        order[j] = t;
                }
                for (size_t i = 0; i < n; i++) {
                        struct pending_write *p = &c->pending[order[i]];
                        unsigned fate = rng_next(&w->rng) % 4;

                        if (fate == 0)          /* dropped */
                                continue;
                        if (fate == 1) {        /* written whole */
                                (void) crash_apply(&c->durable, &c->durable_len, p->data, p->len, p->off);
                                continue;
                        }
                        /* torn: each sector new, old, or (rarely) garbage */
                        for (size_t s = 0; s < p->len; s += SECTOR) {
                                size_t k = MIN((size_t) SECTOR, p->len - s);
                                uint64_t x = rng_next(&w->rng) % 8;
                                uint8_t junk[SECTOR];

                                if (x < 3)
                                        continue;
                                if (x == 7) {
                                        for (size_t b = 0; b < k; b++)
                                                junk[b] = (uint8_t) rng_next(&w->rng);
                                        (void) crash_apply(&c->durable, &c->durable_len, junk, k, p->off + s);
                                } else
                                        (void) crash_apply(&c->durable, &c->durable_len, p->data + s, k,
                                                           p->off + s);
                        }
                }
                free(order);
                pending_clear(c);
        }
}

static int crash_pread(struct cow_io *io, void *buf, size_t len, uint64_t off)
{
        struct crash_io *c = (struct crash_io *) io;
        struct cow_crash_world *w = c->world;
        int r = 0;

        pthread_mutex_lock(&w->lock);
        if (w->crashed)
                r = -EIO;
        else
                mem_read(c->vol, c->vol_len, buf, len, off);
        pthread_mutex_unlock(&w->lock);
        return r;
}

static int crash_pwrite(struct cow_io *io, const void *buf, size_t len, uint64_t off)
{
        struct crash_io *c = (struct crash_io *) io;
        struct cow_crash_world *w = c->world;
        struct pending_write *p;
        int r = 0;

        pthread_mutex_lock(&w->lock);
        if (w->crashed) {
                r = -EIO;
                goto out;
        }
        if (c->npending == c->apending) {
                size_t na = c->apending ? c->apending * 2 : 64;
                p = realloc(c->pending, na * sizeof(*p));
                if (!p) {
                        r = -ENOMEM;
                        goto out;
                }
                c->pending = p;
                c->apending = na;
        }
        p = &c->pending[c->npending];
        p->data = malloc(len ? len : 1);
        if (!p->data) {
                r = -ENOMEM;
                goto out;
        }
        memcpy(p->data, buf, len);
        p->off = off;
        p->len = len;
        r = crash_apply(&c->vol, &c->vol_len, buf, len, off);
        if (r < 0) {
                free(p->data);
                goto out;
        }
        c->npending++;
out:
        pthread_mutex_unlock(&w->lock);
        return r;
}

static int crash_flush(struct cow_io *io)
{
        struct crash_io *c = (struct crash_io *) io;
        struct cow_crash_world *w = c->world;
        int r = 0;

        pthread_mutex_lock(&w->lock);
        if (w->crashed) {
                r = -EIO;
                goto out;
        }
        w->flushes++;
        if (w->crash_at != 0 && w->flushes == w->crash_at) {
                world_crash(w);
                r = -EIO;
                goto out;
        }
        for (size_t i = 0; i < c->npending; i++) {
                struct pending_write *p = &c->pending[i];
                r = crash_apply(&c->durable, &c->durable_len, p->data, p->len, p->off);
                if (r < 0)
                        goto out;
        }
        pending_clear(c);
out:
        pthread_mutex_unlock(&w->lock);
        return r;
}

static int crash_size(struct cow_io *io, uint64_t *ret_size)
{
        struct crash_io *c = (struct crash_io *) io;
        int r = 0;

        pthread_mutex_lock(&c->world->lock);
        if (c->world->crashed)
                r = -EIO;
        else
                *ret_size = c->vol_len;
        pthread_mutex_unlock(&c->world->lock);
        return r;
}

static int crash_resize(struct cow_io *io, uint64_t size)
{
        struct crash_io *c = (struct crash_io *) io;
        int r = 0;

        pthread_mutex_lock(&c->world->lock);
        if (c->world->crashed)
                r = -EIO;
        else if (size > c->vol_len) {
                r = mem_grow(&c->vol, &c->vol_len, size);
                if (r >= 0)
                        r = mem_grow(&c->durable, &c->durable_len, size);
        } else {
                c->vol_len = (size_t) size;
                c->durable_len = MIN(c->durable_len, (size_t) size);
                /* Pending writes beyond the new end are cut off too. */
                for (size_t i = 0; i < c->npending; i++) {
                        struct pending_write *p = &c->pending[i];
                        if (p->off >= size)
                                p->len = 0;
                        else if (p->off + p->len > size)
                                p->len = (size_t) (size - p->off);
                }
        }
        pthread_mutex_unlock(&c->world->lock);
        return r;
}

static void crash_free(struct cow_io *io)
{
        struct crash_io *c = (struct crash_io *) io;
        struct cow_crash_world *w = c->world;

        pthread_mutex_lock(&w->lock);
        for (size_t i = 0; i < w->ndev; i++)
                if (w->dev[i] == c) {
                        w->dev[i] = w->dev[--w->ndev];
                        break;
                }
        pthread_mutex_unlock(&w->lock);
        pending_clear(c);
        free(c->pending);
        free(c->durable);
        free(c->vol);
        free(c);
}

static const struct cow_io_ops crash_ops = {
        .pread = crash_pread,
        .pwrite = crash_pwrite,
        .flush = crash_flush,
        .size = crash_size,
        .resize = crash_resize,
        .free = crash_free,
};

int cow_crash_io_new(struct cow_crash_world *w, const void *data, size_t len, struct cow_io **ret_io)
{
        struct crash_io *c;
        int r = 0;

        if (!w || !ret_io || (len > 0 && !data))
                return -EINVAL;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->io.ops = &crash_ops;
        c->world = w;
        if (len > 0) {
                if (crash_apply(&c->durable, &c->durable_len, data, len, 0) < 0 ||
                    crash_apply(&c->vol, &c->vol_len, data, len, 0) < 0) {
                        free(c->durable);
                        free(c->vol);
                        free(c);
                        return -ENOMEM;
                }
        }
        pthread_mutex_lock(&w->lock);
        if (w->ndev >= CRASH_MAX_DEVICES)
                r = -EMFILE;
        else
                w->dev[w->ndev++] = c;
        pthread_mutex_unlock(&w->lock);
        if (r < 0) {
                free(c->durable);
                free(c->vol);
                free(c);
                return r;
        }
        *ret_io = &c->io;
        return 0;
}

int cow_crash_io_durable(struct cow_io *io, void **ret_data, size_t *ret_len)
{
        struct crash_io *c = (struct crash_io *) io;
        void *d;

        if (!io || io->ops != &crash_ops)
                return -EINVAL;
        pthread_mutex_lock(&c->world->lock);
        d = malloc(c->durable_len ? c->durable_len : 1);
        if (d)
                memcpy(d, c->durable, c->durable_len);
        *ret_len = c->durable_len;
        pthread_mutex_unlock(&c->world->lock);
        if (!d)
                return -ENOMEM;
        *ret_data = d;
        return 0;
}

/* ---- counting wrapper ---- */

struct count_io {
        struct cow_io io;
        struct cow_io *inner;
        pthread_mutex_t lock;
        struct cow_io_counts c;
};

static int count_pread(struct cow_io *io, void *buf, size_t len, uint64_t off)
{
        struct count_io *k = (struct count_io *) io;

        pthread_mutex_lock(&k->lock);
        k->c.preads++;
        k->c.bytes_read += len;
        pthread_mutex_unlock(&k->lock);
        return cow_io_pread(k->inner, buf, len, off);
}

static int count_pwrite(struct cow_io *io, const void *buf, size_t len, uint64_t off)
{
        struct count_io *k = (struct count_io *) io;

        pthread_mutex_lock(&k->lock);
        k->c.pwrites++;
        k->c.bytes_written += len;
        pthread_mutex_unlock(&k->lock);
        return cow_io_pwrite(k->inner, buf, len, off);
}

static int count_flush(struct cow_io *io)
{
        struct count_io *k = (struct count_io *) io;

        pthread_mutex_lock(&k->lock);
        k->c.flushes++;
        pthread_mutex_unlock(&k->lock);
        return cow_io_flush(k->inner);
}

static int count_size(struct cow_io *io, uint64_t *ret_size)
{
        return cow_io_size(((struct count_io *) io)->inner, ret_size);
}

static int count_resize(struct cow_io *io, uint64_t size)
{
        return cow_io_resize(((struct count_io *) io)->inner, size);
}

static void count_free(struct cow_io *io)
{
        struct count_io *k = (struct count_io *) io;

        pthread_mutex_destroy(&k->lock);
        free(k);
}

static void count_prefetch(struct cow_io *io, uint64_t off, size_t len)
{
        struct count_io *k = (struct count_io *) io;

        cow_io_prefetch(k->inner, off, len);
}

static const struct cow_io_ops count_ops = {
        .prefetch = count_prefetch,
        .pread = count_pread,
        .pwrite = count_pwrite,
        .flush = count_flush,
        .size = count_size,
        .resize = count_resize,
        .free = count_free,
};

int cow_io_new_counting(struct cow_io *inner, struct cow_io **ret_io)
{
        struct count_io *k;

        if (!inner || !ret_io)
                return -EINVAL;
        k = calloc(1, sizeof(*k));
        if (!k)
                return -ENOMEM;
        k->io.ops = &count_ops;
        k->inner = inner;
        pthread_mutex_init(&k->lock, NULL);
        *ret_io = &k->io;
        return 0;
}

void cow_io_counting_get(struct cow_io *io, struct cow_io_counts *ret)
{
        struct count_io *k = (struct count_io *) io;

        assert(io->ops == &count_ops);
        pthread_mutex_lock(&k->lock);
        *ret = k->c;
        pthread_mutex_unlock(&k->lock);
}
