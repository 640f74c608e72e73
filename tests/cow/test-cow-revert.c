/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests of the revert (src/cow/cow-revert.c) against the model of
 * cow-fixture.c: after a revert the live volume, the origin device and every
 * surviving snapshot have the model's checksums; reverts with one and many
 * snapshots, the refusals while the volume is in use or a revert runs, and a
 * revert that fails or is closed in the middle.  Every test runs in the three
 * write-back modes.
 */

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "basic/macro.h"
#include "cow/cow-hresult.h"
#include "cow/cow.h"
#include "cow-fixture.h"
#include "cow-test-io.h"
#include "cow-test-util.h"

static uint64_t checksum(const uint8_t *p, size_t len)
{
        uint64_t h = 0xcbf29ce484222325ull;     /* FNV-1a */

        for (size_t i = 0; i < len; i++)
                h = (h ^ p[i]) * 0x100000001b3ull;
        return h;
}

/*
 * After a revert: the live volume, the origin device itself (flushed) and
 * every surviving snapshot have the checksums of the model, and the snapshots
 * the model says are gone are gone (fx_check() compares the bytes too).
 */
static void fx_check_sums(struct fixture *f)
{
        uint8_t *b = malloc(f->size);

        assert_non_null(b);
        assert_int_equal(cow_read(f->v, b, f->size, 0), 0);
        assert_int_equal(checksum(b, f->size), checksum(f->model, f->size));
        assert_int_equal(cow_flush(f->v), 0);
        assert_int_equal(cow_io_pread(f->origin, b, f->size, 0), 0);
        assert_int_equal(checksum(b, f->size), checksum(f->model, f->size));
        for (unsigned i = 0; i < f->nsnaps; i++) {
                if (!f->snaps[i].alive)
                        continue;
                assert_int_equal(cow_snapshot_read(f->v, f->snaps[i].guid, b, f->size, 0), 0);
                assert_int_equal(checksum(b, f->size), checksum(f->snaps[i].data, f->size));
        }
        free(b);
        fx_check(f);
}

/* Reverts to snapshot i: the model becomes its data, the newer ones go. */
static void fx_revert(struct fixture *f, unsigned i)
{
        struct cow_revert_status st;
        unsigned newer = 0, reverts = f->reverts;

        for (unsigned k = i + 1; k < f->nsnaps; k++)
                newer += f->snaps[k].alive;
        assert_int_equal(cow_revert(f->v, f->snaps[i].guid), 0);
        assert_int_equal(f->reverts, reverts + 1);
        assert_int_equal(f->revert_error, 0);
        memcpy(f->model, f->snaps[i].data, f->size);
        for (unsigned k = i + 1; k < f->nsnaps; k++)
                assert_false(f->snaps[k].alive);        /* DISCARDED events */
        assert_true(f->snaps[i].alive);
        assert_int_equal(cow_revert_status(f->v, &st), 0);
        assert_int_equal(st.state, COW_REVERT_DONE);
        assert_memory_equal(st.guid, f->snaps[i].guid, 16);
        assert_int_equal(st.discarded, newer);
        assert_int_equal(st.chunks_done, st.chunks_total);
        assert_false(st.pending);
        assert_int_equal(st.error, 0);
}

static void test_revert_one(void **state)
{
        struct fixture *f = fx_new(1 << 20, 16384, 0);
        uint64_t rng = 3;
        unsigned s;

        fx_write(f, 0, 100000, 1);
        s = fx_snap(f);
        fx_random_writes(f, 30, &rng);
        fx_write(f, (1 << 20) - 5000, 5000, 2);         /* the last chunk */
        fx_revert(f, s);
        fx_check_sums(f);
        /* the volume goes on from there, the snapshot keeps its content */
        fx_random_writes(f, 30, &rng);
        fx_check_sums(f);
        fx_reopen(f);
        fx_check_sums(f);
        /* and a revert to it again, after a reopen */
        fx_revert(f, s);
        fx_check_sums(f);
        fx_reopen(f);
        fx_check_sums(f);
        assert_int_equal(f->lost, 0);
        fx_free(f);
}

/* Several snapshots, some chunks changed after each: reverting to a middle
 * one keeps it and the older ones exact and deletes the newer ones. */
static void test_revert_many(void **state)
{
        uint32_t chunks[] = { 4096, 65536 };

        for (unsigned ci = 0; ci < 2; ci++) {
                struct fixture *f = fx_new((1 << 20) + 12345, chunks[ci], 0);
                uint64_t rng = 11 + ci;
                unsigned s[6];

                for (unsigned k = 0; k < 6; k++) {
                        s[k] = fx_snap(f);
                        fx_random_writes(f, 10, &rng);
                }
                fx_delete(f, s[1]);     /* a hole among the older ones */
                fx_revert(f, s[3]);
                assert_int_equal(f->discarded, 2);
                fx_check_sums(f);
                fx_random_writes(f, 10, &rng);
                s[0] = fx_snap(f);      /* a new one after the revert */
                fx_random_writes(f, 10, &rng);
                fx_check_sums(f);
                fx_reopen(f);
                fx_check_sums(f);
                /* back to the oldest: everything newer goes */
                fx_revert(f, 0);
                fx_check_sums(f);
                fx_reopen(f);
                fx_check_sums(f);
                fx_random_writes(f, 10, &rng);
                fx_check_sums(f);
                fx_free(f);
        }
}

/* An origin wrapper whose writes can be held (a revert caught in the middle)
 * or made to fail once. */
struct gate_io {
        struct cow_io io;
        struct cow_io *inner;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool closed, fail_next;
        unsigned waiting;
};

static int gate_pwrite(struct cow_io *io, const void *buf, size_t len, uint64_t off)
{
        struct gate_io *g = (struct gate_io *) io;
        bool fail;

        pthread_mutex_lock(&g->lock);
        g->waiting++;
        pthread_cond_broadcast(&g->cond);
        while (g->closed)
                pthread_cond_wait(&g->cond, &g->lock);
        g->waiting--;
        fail = g->fail_next;
        g->fail_next = false;
        pthread_mutex_unlock(&g->lock);
        return fail ? -EIO : cow_io_pwrite(g->inner, buf, len, off);
}

static int gate_pread(struct cow_io *io, void *buf, size_t len, uint64_t off)
{
        return cow_io_pread(((struct gate_io *) io)->inner, buf, len, off);
}

static int gate_flush(struct cow_io *io)
{
        return cow_io_flush(((struct gate_io *) io)->inner);
}

static int gate_size(struct cow_io *io, uint64_t *ret)
{
        return cow_io_size(((struct gate_io *) io)->inner, ret);
}

static int gate_resize(struct cow_io *io, uint64_t size)
{
        return cow_io_resize(((struct gate_io *) io)->inner, size);
}

static void gate_free(struct cow_io *io)
{
        struct gate_io *g = (struct gate_io *) io;

        pthread_cond_destroy(&g->cond);
        pthread_mutex_destroy(&g->lock);
        free(g);
}

static const struct cow_io_ops gate_ops = {
        .pread = gate_pread,
        .pwrite = gate_pwrite,
        .flush = gate_flush,
        .size = gate_size,
        .resize = gate_resize,
        .free = gate_free,
};

static void gate_set(struct gate_io *g, bool closed, bool fail_next)
{
        pthread_mutex_lock(&g->lock);
        g->closed = closed;
        g->fail_next = fail_next;
        pthread_cond_broadcast(&g->cond);
        pthread_mutex_unlock(&g->lock);
}

/* Waits (10 s at most) until a write is held at the gate. */
static bool gate_wait_held(struct gate_io *g)
{
        struct timespec ts;
        bool held;

        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 10;
        pthread_mutex_lock(&g->lock);
        while (g->waiting == 0 && pthread_cond_timedwait(&g->cond, &g->lock, &ts) == 0)
                ;
        held = g->waiting > 0;
        pthread_mutex_unlock(&g->lock);
        return held;
}

/* A volume whose origin goes through a gate (the fixture's origin is the gate). */
static struct fixture *fx_new_gated(size_t size, uint32_t chunk, struct gate_io **ret_gate)
{
        struct fixture *f = fx_new(size, chunk, 0);
        struct gate_io *g = calloc(1, sizeof(*g));

        assert_non_null(g);
        f->v = cow_close(f->v);
        g->io.ops = &gate_ops;
        g->inner = f->origin;
        pthread_mutex_init(&g->lock, NULL);
        pthread_cond_init(&g->cond, NULL);
        f->diff_inner = f->origin;      /* freed by fx_free() */
        f->origin = &g->io;
        assert_int_equal(cow_open(f->origin, f->diff, fx_on_event, f, &f->v), 0);
        fx_writeback(f);
        *ret_gate = g;
        return f;
}

/* While a revert copies chunks back: the volume reads as the target, writes
 * and snapshot operations are refused with the errors of cow.h, and so is a
 * second revert; before it, a live writer makes the revert fail with EBUSY. */
static void test_revert_busy(void **state)
{
        struct gate_io *g;
        struct fixture *f = fx_new_gated(1 << 20, 4096, &g);
        struct cow_revert_status st;
        struct cow_stats stats;
        uint8_t *b = malloc(1 << 20), guid[16];
        uint64_t rng = 5;
        unsigned s1, s2;

        assert_non_null(b);
        s1 = fx_snap(f);
        fx_random_writes(f, 20, &rng);
        s2 = fx_snap(f);
        fx_random_writes(f, 20, &rng);

        assert_int_equal(cow_live_open(f->v), 0);
        assert_int_equal(cow_stats(f->v, &stats), 0);
        assert_int_equal(stats.live_writers, 1);
        assert_int_equal(cow_revert(f->v, f->snaps[s1].guid), -EBUSY);
        assert_int_equal((uint32_t) cow_errno_to_hresult(-EBUSY), 0x8004231Du);    /* VSS_E_VOLUME_IN_USE */
        cow_live_close(f->v);
        assert_int_equal(cow_stats(f->v, &stats), 0);
        assert_int_equal(stats.live_writers, 0);
        tu_guid(guid, 4242);
        assert_int_equal(cow_revert(f->v, guid), -ENOENT);
        assert_true(f->snaps[s2].alive);        /* nothing happened */

        assert_int_equal(cow_flush(f->v), 0);
        gate_set(g, true, false);
        assert_int_equal(cow_revert_start(f->v, f->snaps[s1].guid), 0);
        assert_true(gate_wait_held(g));
        assert_false(f->snaps[s2].alive);       /* discarded before any chunk is copied */
        assert_int_equal(cow_revert_status(f->v, &st), 0);
        assert_int_equal(st.state, COW_REVERT_RUNNING);
        assert_true(st.pending);
        assert_true(st.chunks_total > 0);
        assert_true(st.chunks_done < st.chunks_total);
        assert_int_equal(cow_read(f->v, b, 1 << 20, 0), 0);
        assert_memory_equal(b, f->snaps[s1].data, 1 << 20);
        assert_int_equal(cow_write(f->v, b, 512, 0), -EBUSY);
        assert_int_equal(cow_live_open(f->v), -EBUSY);
        assert_int_equal(cow_revert_start(f->v, f->snaps[s1].guid), -EINPROGRESS);
        assert_int_equal((uint32_t) cow_errno_to_hresult(-EINPROGRESS), 0x80042325u); /* VSS_E_REVERT_IN_PROGRESS */
        tu_guid(guid, 4243);
        assert_int_equal(cow_snapshot_create(f->v, guid), -EINPROGRESS);
        assert_int_equal(cow_snapshot_delete(f->v, f->snaps[s1].guid), -EINPROGRESS);
        assert_int_equal(cow_set_max(f->v, 1 << 30), -EINPROGRESS);
        gate_set(g, false, false);
        assert_int_equal(cow_revert_wait(f->v), 0);
        memcpy(f->model, f->snaps[s1].data, 1 << 20);
        fx_check_sums(f);
        assert_int_equal(cow_live_open(f->v), 0);
        cow_live_close(f->v);
        fx_write(f, 1000, 3000, 9);
        fx_check(f);
        free(b);
        fx_free(f);
}

/* A revert whose copying fails stays recorded: the volume still reads as the
 * target, it completes when started again, and after a close the next open
 * completes it. */
static void test_revert_interrupted(void **state)
{
        struct gate_io *g;
        struct fixture *f = fx_new_gated(1 << 20, 16384, &g);
        struct cow_revert_status st;
        uint8_t *b = malloc(1 << 20);
        uint64_t rng = 8;
        unsigned s1, s2;

        assert_non_null(b);
        s1 = fx_snap(f);
        fx_random_writes(f, 20, &rng);
        s2 = fx_snap(f);
        fx_random_writes(f, 20, &rng);
        assert_int_equal(cow_flush(f->v), 0);

        /* the first origin write of the copy fails */
        gate_set(g, false, true);
        assert_int_equal(cow_revert(f->v, f->snaps[s2].guid), -EIO);
        assert_int_equal(f->revert_error, -EIO);
        assert_int_equal(cow_revert_status(f->v, &st), 0);
        assert_int_equal(st.state, COW_REVERT_FAILED);
        assert_true(st.pending);
        assert_int_equal(cow_read(f->v, b, 1 << 20, 0), 0);
        assert_memory_equal(b, f->snaps[s2].data, 1 << 20);
        assert_int_equal(cow_write(f->v, b, 512, 0), -EBUSY);
        assert_int_equal(cow_revert_start(f->v, f->snaps[s1].guid), -EINPROGRESS);
        assert_int_equal(cow_revert(f->v, f->snaps[s2].guid), 0);
        memcpy(f->model, f->snaps[s2].data, 1 << 20);
        fx_check_sums(f);

        /* stopped in the middle of copying and closed: the next open completes it */
        fx_random_writes(f, 20, &rng);
        assert_int_equal(cow_flush(f->v), 0);
        gate_set(g, true, false);
        assert_int_equal(cow_revert_start(f->v, f->snaps[s1].guid), 0);
        assert_true(gate_wait_held(g));
        gate_set(g, false, true);
        assert_int_equal(cow_revert_wait(f->v), -EIO);
        f->v = cow_close(f->v);
        assert_int_equal(cow_open(f->origin, f->diff, fx_on_event, f, &f->v), 0);
        fx_writeback(f);
        assert_int_equal(f->lost, 0);
        assert_int_equal(cow_revert_status(f->v, &st), 0);
        assert_int_equal(st.state, COW_REVERT_DONE);
        assert_true(st.resumed);
        assert_false(st.pending);
        memcpy(f->model, f->snaps[s1].data, 1 << 20);
        fx_check_sums(f);
        free(b);
        fx_free(f);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_revert_one),
                cmocka_unit_test(test_revert_many),
                cmocka_unit_test(test_revert_busy),
                cmocka_unit_test(test_revert_interrupted),
        };

        return cow_fixture_run(tests, ARRAY_SIZE(tests));
}
