/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests of the CoW engine against an in-memory model: every snapshot is
 * compared byte for byte with a copy of the origin taken when it was created,
 * after random writes, deletions (oldest, newest, middle), evictions, reopen
 * and concurrent writers.  Every test runs three times: write-through, with
 * write-back buffers committed by writers, and with the write-back thread
 * (cow-fixture.c).  The revert tests are in test-cow-revert.c.
 */

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "basic/macro.h"
#include "cow/cow-hresult.h"
#include "cow/cow.h"
#include "cow-fixture.h"
#include "cow-test-io.h"
#include "cow-test-util.h"

static void test_basic(void **state)
{
        struct fixture *f = fx_new(1 << 20, 0, 0);
        uint8_t b[100];

        fx_snap(f);
        fx_write(f, 1000, 100, 7);
        fx_check(f);
        assert_int_equal(cow_read(f->v, b, 100, 1000), 0);
        assert_memory_equal(b, f->model + 1000, 100);
        fx_reopen(f);
        fx_check(f);
        fx_free(f);
}

static void test_many_snapshots_model(void **state)
{
        uint32_t chunks[] = { 4096, 16384, 65536 };

        for (unsigned ci = 0; ci < 3; ci++) {
                struct fixture *f = fx_new((1 << 20) + 12345, chunks[ci], 0);
                uint64_t rng = ci + 1;

                /* the 64 KiB case compacts its journal whenever it can */
                if (chunks[ci] == 65536)
                        cow_set_checkpoint_blocks(f->v, 0);

                for (unsigned round = 0; round < 24; round++) {
                        fx_snap(f);
                        fx_random_writes(f, 12, &rng);
                        if (round % 5 == 4) {
                                int i = fx_alive_index(f, (int) (round / 5) % 3);
                                if (i >= 0)
                                        fx_delete(f, (unsigned) i);
                        }
                        if (round % 6 == 5) {
                                fx_reopen(f);
                                assert_int_equal(f->lost, 0);
                        }
                        if (getenv("COW_TEST_DEBUG"))
                                fprintf(stderr, "chunk %u round %u\n", chunks[ci], round);
                        fx_check(f);
                }
                /* delete oldest, newest, middle until none are left */
                for (int which = 0; fx_alive_index(f, 0) >= 0; which = (which + 1) % 3) {
                        fx_delete(f, (unsigned) fx_alive_index(f, which));
                        fx_random_writes(f, 3, &rng);
                        fx_check(f);
                }
                fx_reopen(f);
                fx_check(f);
                fx_free(f);
        }
}

/* The counters bench/apps.sh's PROFILE reads: flushes, snapshot creations and
 * their time split, journal commit time. */
static void test_timing_stats(void **state)
{
        struct fixture *f = fx_new(1 << 20, 4096, 0);
        struct cow_stats st0, st;

        assert_int_equal(cow_stats(f->v, &st0), 0);
        fx_write(f, 0, 4096, 1);
        assert_int_equal(cow_flush(f->v), 0);
        assert_int_equal(cow_flush(f->v), 0);
        fx_snap(f);
        fx_snap(f);
        fx_write(f, 8192, 4096, 2);             /* a first write: a copy, a commit */
        assert_int_equal(cow_flush(f->v), 0);
        assert_int_equal(cow_stats(f->v, &st), 0);
        assert_int_equal(st.flushes - st0.flushes, 3);  /* snapshot creation's flush is not one */
        assert_true(st.flush_ns > st0.flush_ns);
        assert_int_equal(st.creates - st0.creates, 2);
        assert_true(st.create_ns > st0.create_ns);
        assert_true(st.create_hold_ns + st.create_flush_ns <= st.create_ns);
        assert_true(st.commits > st0.commits);
        assert_true(st.commit_ns > st0.commit_ns);
        fx_check(f);
        fx_free(f);
}

static void test_sharing(void **state)
{
        struct fixture *f = fx_new(1 << 20, 4096, 0);
        struct cow_snapshot_info *l;
        struct cow_stats st;
        size_t n;

        for (int i = 0; i < 32; i++)
                fx_snap(f);
        fx_write(f, 4096 * 3, 4096, 1);
        fx_write(f, 4096 * 3, 4096, 2);   /* rewrite: no second copy */
        assert_int_equal(cow_stats(f->v, &st), 0);
        assert_int_equal(st.copies, 1);
        assert_int_equal(cow_snapshot_list(f->v, &l, &n), 0);
        assert_int_equal(n, 32);
        assert_int_equal(l[31].copies, 1);
        assert_int_equal(l[0].copies, 0);
        free(l);
        fx_check(f);
        /* deleting the newest hands the copy down to the next one */
        fx_delete(f, 31);
        assert_int_equal(cow_snapshot_list(f->v, &l, &n), 0);
        assert_int_equal(l[30].copies, 1);
        free(l);
        fx_check(f);
        fx_reopen(f);
        fx_check(f);
        fx_free(f);
}

static void test_evict_oldest(void **state)
{
        /* room for header + journal + ~40 chunks of 4 KiB */
        struct fixture *f = fx_new(1 << 20, 4096, 8192 + 2 * 8192 + 40 * 4096);
        uint64_t rng = 9;
        unsigned a, b, c;

        a = fx_snap(f);
        for (int i = 0; i < 20; i++)
                fx_write(f, (uint64_t) i * 4096, 4096, tu_rand(&rng));
        b = fx_snap(f);
        for (int i = 0; i < 15; i++)
                fx_write(f, (uint64_t) (i + 100) * 4096, 4096, tu_rand(&rng));
        fx_check(f);
        assert_int_equal(f->evicted, 0);
        c = fx_snap(f);
        for (int i = 0; i < 20; i++)
                fx_write(f, (uint64_t) (i + 200) * 4096, 4096, tu_rand(&rng));
        /* the oldest went, the newest two are exact */
        assert_true(f->evicted >= 1);
        assert_false(f->snaps[a].alive);
        assert_true(f->snaps[c].alive);
        (void) b;
        fx_check(f);
        fx_reopen(f);
        fx_check(f);
        fx_free(f);
}

static void test_drop_all(void **state)
{
        struct fixture *f = fx_new(1 << 20, 4096, 8192 + 2 * 8192 + 8 * 4096);
        struct cow_stats st;

        fx_snap(f);
        fx_snap(f);
        /* 30 fresh chunks do not fit even for the newest: all dropped, writes go on */
        for (int i = 0; i < 30; i++)
                fx_write(f, (uint64_t) i * 4096, 4096, (uint64_t) i);
        assert_int_equal(f->evicted, 2);
        assert_int_equal(cow_stats(f->v, &st), 0);
        assert_int_equal(st.snapshots, 0);
        assert_true(st.used_bytes <= st.max_bytes);
        fx_check(f);
        fx_snap(f);
        fx_write(f, 0, 4096, 99);
        fx_check(f);
        fx_reopen(f);
        fx_check(f);
        fx_free(f);
}

static void test_resize_smaller(void **state)
{
        struct fixture *f = fx_new(1 << 20, 4096, 0);
        struct cow_stats st;

        for (int s = 0; s < 4; s++) {
                fx_snap(f);
                for (int i = 0; i < 10; i++)
                        fx_write(f, (uint64_t) (s * 10 + i) * 4096, 4096, (uint64_t) (s * 100 + i));
        }
        fx_check(f);
        assert_int_equal(cow_stats(f->v, &st), 0);
        assert_int_equal(st.max_bytes, COW_MAX_UNBOUNDED);
        /* keep room for about two snapshots' copies */
        assert_int_equal(cow_set_max(f->v, st.used_bytes - 15 * 4096), 0);
        assert_int_equal(f->evicted, 2);
        assert_false(f->snaps[0].alive);
        assert_false(f->snaps[1].alive);
        assert_true(f->snaps[3].alive);
        fx_check(f);
        assert_int_equal(cow_stats(f->v, &st), 0);
        assert_true(st.allocated_bytes <= st.max_bytes);
        fx_reopen(f);
        assert_int_equal(cow_stats(f->v, &st), 0);
        assert_true(st.max_bytes != COW_MAX_UNBOUNDED);
        assert_true(st.allocated_bytes <= st.max_bytes);
        fx_check(f);
        assert_int_equal(cow_set_max(f->v, COW_MAX_UNBOUNDED), 0);
        fx_free(f);
}

/* Lowering the bound below the file size moves the copies down and cuts the
 * file, without evicting a snapshot that fits. */
static void test_shrink_file(void **state)
{
        struct fixture *f = fx_new_with(4 << 20, 16384, 0, true);
        struct cow_io_counts c0, c1;
        struct cow_stats st0, st;
        uint64_t max;

        fx_snap(f);
        fx_write(f, 0, 2 << 20, 1);             /* 128 copies for the oldest, low slots */
        fx_snap(f);
        fx_write(f, 2 << 20, 2 << 20, 2);       /* 128 for the middle one, above them */
        fx_snap(f);
        fx_write(f, 0, 512 << 10, 3);           /* 32 for the newest */
        fx_check(f);
        fx_delete(f, 0);
        assert_int_equal(cow_flush(f->v), 0);
        assert_int_equal(cow_stats(f->v, &st0), 0);
        assert_true(st0.allocated_bytes > st0.used_bytes + (1 << 20));
        max = st0.used_bytes + 4 * 16384;
        cow_io_counting_get(f->diff, &c0);
        assert_int_equal(cow_set_max(f->v, max), 0);
        cow_io_counting_get(f->diff, &c1);
        assert_int_equal(cow_stats(f->v, &st), 0);
        assert_int_equal(f->evicted, 0);
        assert_true(st.relocations >= 100);
        /* Neighbours move together: a few large writes, not one per copy. */
        assert_true(c1.pwrites - c0.pwrites < st.relocations / 4);
        assert_true(st.allocated_bytes <= max);
        assert_true(st.used_bytes <= st0.used_bytes);   /* the journal may get shorter */
        fx_check(f);
        fx_reopen(f);
        assert_int_equal(cow_stats(f->v, &st), 0);
        assert_true(st.allocated_bytes <= max);
        fx_check(f);
        /* the volume goes on: a new snapshot, copies within the bound */
        fx_snap(f);
        fx_write(f, 100 * 16384, 3 * 16384, 4);
        fx_check(f);
        assert_int_equal(cow_stats(f->v, &st), 0);
        /* copies stay within the bound; a journal block may need one slot past
         * it when the copies have taken every free one */
        assert_true(st.allocated_bytes <= max + 16384);
        fx_free(f);
}

/* Visits every chunk of 0..n-1 once, in an order set by rng. */
static void shuffle(unsigned *a, unsigned n, uint64_t *rng)
{
        for (unsigned i = 0; i < n; i++)
                a[i] = i;
        for (unsigned i = n; i > 1; i--) {
                unsigned j = (unsigned) (tu_rand(rng) % i), t = a[i - 1];

                a[i - 1] = a[j];
                a[j] = t;
        }
}

/* After a deletion the freed slots are reused lowest first, so the copies of
 * a batch still go to the diff area as a few long writes (the rotation of
 * snapshots is the common case: create one, delete the oldest). */
static void test_reuse_runs(void **state)
{
        struct fixture *f = fx_new_with(4 << 20, 16384, 0, true);
        struct cow_io_counts c0, c1;
        uint64_t rng = 7;
        unsigned order[256];

        fx_snap(f);
        shuffle(order, 256, &rng);
        for (unsigned i = 0; i < 256; i++)
                fx_write(f, (uint64_t) order[i] * 16384, 4096, i);
        assert_int_equal(cow_flush(f->v), 0);
        fx_delete(f, 0);
        fx_snap(f);
        assert_int_equal(cow_flush(f->v), 0);
        cow_io_counting_get(f->diff, &c0);
        shuffle(order, 256, &rng);
        for (unsigned i = 0; i < 256; i++)
                fx_write(f, (uint64_t) order[i] * 16384 + 8192, 4096, 1000 + i);
        assert_int_equal(cow_flush(f->v), 0);
        cow_io_counting_get(f->diff, &c1);
        fx_check(f);
        /* Write-through commits each copy alone, one write each by design;
         * the thread's batches depend on timing.  Buffered: 16 writes here,
         * 37 when freed slots were handed out in release order. */
        if (g_wb_limit > 0 && g_wb_interval == 0)
                assert_true(c1.pwrites - c0.pwrites < 256 / 8);
        fx_free(f);
}

static void test_bad_input(void **state)
{
        struct fixture *f = fx_new(1 << 20, 4096, 0);
        struct cow_format_params bad = { .chunk_size = 3000 };
        struct cow_io *junk;
        struct cow_volume *v2;
        uint8_t b[16] = {}, g[16];
        int r;

        assert_int_equal(cow_format(f->origin, f->diff, &bad), -EINVAL);
        bad.chunk_size = 2 * 1024 * 1024;
        assert_int_equal(cow_format(f->origin, f->diff, &bad), -EINVAL);
        assert_int_equal(cow_write(f->v, b, 16, (1 << 20) - 8), -EINVAL);
        assert_int_equal(cow_read(f->v, b, 16, UINT64_MAX - 4), -EINVAL);
        tu_guid(g, 777);
        assert_int_equal(cow_snapshot_read(f->v, g, b, 16, 0), -ENOENT);
        assert_int_equal(cow_snapshot_delete(f->v, g), -ENOENT);
        assert_int_equal(cow_snapshot_create(f->v, g), 0);
        assert_int_equal(cow_snapshot_create(f->v, g), -EEXIST);
        assert_int_equal(cow_set_max(f->v, 0), -EINVAL);
        for (uint32_t i = 1; i < COW_MAX_SNAPSHOTS; i++) {
                tu_guid(g, 1000 + i);
                assert_int_equal(cow_snapshot_create(f->v, g), 0);
        }
        tu_guid(g, 5000);
        r = cow_snapshot_create(f->v, g);
        assert_int_equal(r, -EMLINK);
        assert_int_equal((uint32_t) cow_errno_to_hresult(r), 0x80042317u);
        fx_reopen(f);
        {
                struct cow_snapshot_info *l;
                size_t n;
                assert_int_equal(cow_snapshot_list(f->v, &l, &n), 0);
                assert_int_equal(n, COW_MAX_SNAPSHOTS);
                free(l);
        }
        /* garbage is not a diff area */
        assert_int_equal(cow_io_new_memory(b, sizeof(b), &junk), 0);
        assert_int_equal(cow_open(f->origin, junk, NULL, NULL, &v2), -EBADMSG);
        cow_io_free(junk);
        fx_free(f);
}

static void test_o1_create(void **state)
{
        uint64_t sizes[] = { 1ULL << 30, 16ULL << 30 };
        struct cow_io_counts counts[2][2];

        for (int k = 0; k < 2; k++) {
                char path[] = "/tmp/cow-test-originXXXXXX";
                int fd = mkstemp(path);
                struct cow_io *o, *d, *co, *cd;
                struct cow_volume *v;
                uint8_t g[16], b[4096] = { 1 };

                assert_true(fd >= 0);
                unlink(path);
                assert_int_equal(ftruncate(fd, (off_t) sizes[k]), 0);
                assert_int_equal(cow_io_from_fd(fd, &o), 0);
                assert_int_equal(cow_io_new_memory(NULL, 0, &d), 0);
                assert_int_equal(cow_format(o, d, NULL), 0);
                assert_int_equal(cow_io_new_counting(o, &co), 0);
                assert_int_equal(cow_io_new_counting(d, &cd), 0);
                assert_int_equal(cow_open(co, cd, NULL, NULL, &v), 0);
                /* a snapshot with copies made, then the one we measure */
                tu_guid(g, 1);
                assert_int_equal(cow_snapshot_create(v, g), 0);
                assert_int_equal(cow_write(v, b, sizeof(b), sizes[k] - 4096), 0);
                cow_io_counting_get(co, &counts[k][0]);
                cow_io_counting_get(cd, &counts[k][1]);
                tu_guid(g, 2);
                assert_int_equal(cow_snapshot_create(v, g), 0);
                {
                        struct cow_io_counts a, c;
                        cow_io_counting_get(co, &a);
                        cow_io_counting_get(cd, &c);
                        counts[k][0] = (struct cow_io_counts) {
                                a.preads - counts[k][0].preads, a.pwrites - counts[k][0].pwrites,
                                a.flushes - counts[k][0].flushes, a.bytes_read - counts[k][0].bytes_read,
                                a.bytes_written - counts[k][0].bytes_written };
                        counts[k][1] = (struct cow_io_counts) {
                                c.preads - counts[k][1].preads, c.pwrites - counts[k][1].pwrites,
                                c.flushes - counts[k][1].flushes, c.bytes_read - counts[k][1].bytes_read,
                                c.bytes_written - counts[k][1].bytes_written };
                }
                cow_close(v);
                cow_io_free(co);
                cow_io_free(cd);
                cow_io_free(o);
                cow_io_free(d);
                close(fd);
        }
        /* Creation did the same I/O for 1 GiB and 16 GiB: one origin flush, one
         * journal block write, one flush pair on the diff area; no data copied. */
        assert_memory_equal(&counts[0][0], &counts[1][0], sizeof(struct cow_io_counts));
        assert_memory_equal(&counts[0][1], &counts[1][1], sizeof(struct cow_io_counts));
        assert_int_equal(counts[0][0].flushes, 1);
        assert_int_equal(counts[0][0].pwrites, 0);
        assert_int_equal(counts[0][0].preads, 0);
        assert_int_equal(counts[0][1].pwrites, 1);
        assert_int_equal(counts[0][1].bytes_written, 4096);
        assert_int_equal(counts[0][1].flushes, 2);
}

/* ---- concurrency ---- */

struct conc {
        struct fixture *f;
        uint8_t *snapdata;
        uint8_t guid[16];
        int id;
        int *stop;
        unsigned errors;
        pthread_mutex_t *model_lock;
};

#define CONC_CHUNK 4096

static void *writer_thread(void *p)
{
        struct conc *c = p;
        uint64_t rng = (uint64_t) c->id * 77 + 1;
        uint8_t b[CONC_CHUNK * 2];

        for (int i = 0; i < 400; i++) {
                /* writers own disjoint stripes so the origin model stays exact */
                uint64_t blk = (tu_rand(&rng) % (c->f->size / (4 * CONC_CHUNK))) * 4 + (uint64_t) c->id;
                size_t len = 1 + tu_rand(&rng) % CONC_CHUNK;
                tu_fill(b, len, tu_rand(&rng));
                if (cow_write(c->f->v, b, len, blk * CONC_CHUNK) < 0)
                        c->errors++;
                /* read-your-writes, whether the data is buffered or not */
                if (cow_read(c->f->v, b + CONC_CHUNK, len, blk * CONC_CHUNK) < 0 ||
                    memcmp(b, b + CONC_CHUNK, len) != 0)
                        c->errors++;
                pthread_mutex_lock(c->model_lock);
                memcpy(c->f->model + blk * CONC_CHUNK, b, len);
                pthread_mutex_unlock(c->model_lock);
        }
        return NULL;
}

static void *reader_thread(void *p)
{
        struct conc *c = p;
        uint64_t rng = (uint64_t) c->id * 31 + 5;
        uint8_t *b = malloc(3 * CONC_CHUNK);

        while (!__atomic_load_n(c->stop, __ATOMIC_ACQUIRE)) {
                uint64_t off = tu_rand(&rng) % (c->f->size - 3 * CONC_CHUNK);
                if (cow_snapshot_read(c->f->v, c->guid, b, 3 * CONC_CHUNK, off) < 0 ||
                    memcmp(b, c->snapdata + off, 3 * CONC_CHUNK) != 0)
                        c->errors++;
        }
        free(b);
        return NULL;
}

static void test_concurrency(void **state)
{
        struct fixture *f = fx_new(4 << 20, CONC_CHUNK, 0);
        pthread_mutex_t ml = PTHREAD_MUTEX_INITIALIZER;
        pthread_t w[4], r[4];
        struct conc cw[4], cr[4];
        int stop = 0;
        struct cow_stats st;
        unsigned s1, s2;

        s1 = fx_snap(f);
        fx_write(f, 0, 100000, 3);
        s2 = fx_snap(f);
        for (int i = 0; i < 4; i++) {
                unsigned s = i % 2 ? s1 : s2;
                cr[i] = (struct conc) { .f = f, .snapdata = f->snaps[s].data, .id = i, .stop = &stop };
                memcpy(cr[i].guid, f->snaps[s].guid, 16);
                assert_int_equal(pthread_create(&r[i], NULL, reader_thread, &cr[i]), 0);
        }
        for (int i = 0; i < 4; i++) {
                cw[i] = (struct conc) { .f = f, .id = i, .model_lock = &ml };
                assert_int_equal(pthread_create(&w[i], NULL, writer_thread, &cw[i]), 0);
        }
        for (int i = 0; i < 4; i++)
                pthread_join(w[i], NULL);
        __atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
        for (int i = 0; i < 4; i++)
                pthread_join(r[i], NULL);
        for (int i = 0; i < 4; i++) {
                assert_int_equal(cw[i].errors, 0);
                assert_int_equal(cr[i].errors, 0);
        }
        fx_check(f);
        /* group commit: fewer flush pairs than copies */
        assert_int_equal(cow_stats(f->v, &st), 0);
        assert_true(st.commits <= st.copies + 2);
        fx_reopen(f);
        fx_check(f);
        fx_free(f);
}

/* A diff area that fails: snapshots are invalidated, origin writes go through. */
static void test_diff_failure(void **state)
{
        struct cow_crash_world *w = cow_crash_world_new(9, 1);
        struct fixture *f = calloc(1, sizeof(*f));
        uint8_t g[16];

        f->size = 1 << 20;
        f->model = malloc(f->size);
        tu_fill(f->model, f->size, 5);
        assert_int_equal(cow_io_new_memory(f->model, f->size, &f->origin), 0);
        assert_int_equal(cow_crash_io_new(w, NULL, 0, &f->diff), 0);
        assert_int_equal(cow_format(f->origin, f->diff, NULL), 0);   /* flush 1 and 2 */
        assert_int_equal(cow_open(f->origin, f->diff, fx_on_event, f, &f->v), 0);
        fx_snap(f);
        /* open flushed; more diff flushes fail from now on */
        for (int i = 0; i < 10; i++)
                fx_write(f, (uint64_t) i * 20000, 100, (uint64_t) i);
        assert_true(cow_crash_world_crashed(w));
        assert_true(f->invalidated >= 1 || f->nsnaps == 0);
        assert_false(f->snaps[0].alive);
        fx_check(f);
        tu_guid(g, 99);
        assert_int_equal(cow_snapshot_create(f->v, g), -EIO);
        fx_free(f);
        cow_crash_world_free(w);
}

/* Real files, the diff area opened with O_DIRECT for aligned requests and the
 * page cache for the others: both paths see each other's writes, and the
 * engine's content checks hold across a reopen. */
/* An origin and a diff area file in a fresh directory under /var/tmp (not
 * tmpfs: O_DIRECT), and their removal. */
static void tmp_pair(char dir[], char *opath, char *dpath, size_t len)
{
        assert_non_null(mkdtemp(dir));
        snprintf(opath, len, "%s/origin", dir);
        snprintf(dpath, len, "%s/diff", dir);
}

static void tmp_pair_remove(const char *dir, const char *opath, const char *dpath)
{
        assert_int_equal(unlink(opath), 0);
        assert_int_equal(unlink(dpath), 0);
        assert_int_equal(rmdir(dir), 0);
}

/* The writes of one run of test_wb_shared (child and parent compute the same):
 * 4 KiB blocks and odd pieces (partial sectors), after one snapshot. */
static void wb_writes(uint8_t *model, size_t size, void (*put)(void *, const uint8_t *, size_t, uint64_t), void *u)
{
        uint64_t rng = 99;
        uint8_t buf[4096];

        for (int i = 0; i < 300; i++) {
                size_t len = i % 5 == 4 ? 1 + tu_rand(&rng) % 3000 : 4096;
                uint64_t off = i % 5 == 4 ? tu_rand(&rng) % (size - len) : (tu_rand(&rng) % (size / 4096)) * 4096;

                tu_fill(buf, len, tu_rand(&rng));
                memcpy(model + off, buf, len);
                if (put)
                        put(u, buf, len, off);
        }
}

static void wb_put(void *u, const uint8_t *buf, size_t len, uint64_t off)
{
        if (cow_write(u, buf, len, off) != 0)
                _exit(3);
}

/*
 * Write-back memory that outlives the process (cow_set_writeback_fd()): a
 * child acknowledges first writes from a memfd and exits without a flush or a
 * close (as a kill -9 would leave it); the next open with the same memfd
 * writes them back: the volume reads as written, the snapshot as before.
 * Then the memory corrupted: the writes are reported lost and every flush
 * fails until cow_set_flush_error(v, 0).
 */
static void test_wb_shared(void **state)
{
        char dir[] = "/var/tmp/test-cow.XXXXXX", opath[64], dpath[64];
        const size_t size = 1 << 20;
        struct cow_format_params p = { .chunk_size = 16384 };
        struct cow_io *o, *d;
        struct cow_volume *v;
        struct cow_wb_info info;
        uint8_t *before = malloc(size), *model = malloc(size), *got = malloc(size), guid[16] = { 7 };
        int fd = memfd_create("test-cow-wb", MFD_CLOEXEC), status;
        pid_t pid;

        (void) state;
        assert_true(fd >= 0 && before && model && got);
        tmp_pair(dir, opath, dpath, sizeof(opath));
        tu_fill(before, size, 5);
        memcpy(model, before, size);
        assert_int_equal(cow_io_open_file(opath, true, false, &o), 0);
        assert_int_equal(cow_io_pwrite(o, before, size, 0), 0);
        assert_int_equal(cow_io_open_file(dpath, true, true, &d), 0);
        assert_int_equal(cow_format(o, d, &p), 0);
        assert_int_equal(cow_open(o, d, NULL, NULL, &v), 0);
        assert_int_equal(cow_snapshot_create(v, guid), 0);
        v = cow_close(v);

        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                struct cow_stats st;

                if (cow_open(o, d, NULL, NULL, &v) != 0 || cow_set_writeback_fd(v, 64 << 20, 0, fd, &info) != 0 ||
                    info.chunks != 0)
                        _exit(2);
                wb_writes(model, size, wb_put, v);
                if (cow_stats(v, &st) != 0 || st.dirty_bytes == 0)
                        _exit(4);
                _exit(0);       /* no cow_flush(), no cow_close() */
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        wb_writes(model, size, NULL, NULL);

        assert_int_equal(cow_open(o, d, NULL, NULL, &v), 0);
        assert_int_equal(cow_set_writeback_fd(v, 64 << 20, 0, fd, &info), 0);
        assert_int_equal(info.error, 0);
        assert_true(info.chunks > 0 && info.generation == 1);
        assert_int_equal(cow_read(v, got, size, 0), 0);
        assert_memory_equal(got, model, size);
        assert_int_equal(cow_snapshot_read(v, guid, got, size, 0), 0);
        assert_memory_equal(got, before, size);
        assert_int_equal(cow_flush(v), 0);

        /* Dirty again, then garbage over the descriptors: lost, and flushes say so. */
        assert_int_equal(cow_write(v, before, 4096, 8192), 0);
        memset(got, 0xa5, 8192);
        assert_int_equal(pwrite(fd, got, 8192, 4096), 8192);
        v = cow_close(v);
        assert_int_equal(cow_open(o, d, NULL, NULL, &v), 0);
        assert_int_equal(cow_set_writeback_fd(v, 64 << 20, 0, fd, &info), 0);
        assert_int_equal(info.error, -EBADMSG);
        assert_int_equal(cow_flush(v), -EIO);
        v = cow_close(v);
        /* ... also for the next process on the same memory ... */
        assert_int_equal(cow_open(o, d, NULL, NULL, &v), 0);
        assert_int_equal(cow_set_writeback_fd(v, 64 << 20, 0, fd, &info), 0);
        assert_true(info.lost);
        assert_int_equal(cow_flush(v), -EIO);
        /* ... until the caller says the loss was dealt with. */
        assert_int_equal(cow_set_flush_error(v, 0), 0);
        assert_int_equal(cow_flush(v), 0);
        v = cow_close(v);

        cow_io_free(o);
        cow_io_free(d);
        close(fd);
        free(before);
        free(model);
        free(got);
        tmp_pair_remove(dir, opath, dpath);
}

static void test_file_direct(void **state)
{
        char dir[] = "/var/tmp/test-cow.XXXXXX", opath[64], dpath[64];
        struct fixture *f = calloc(1, sizeof(*f));
        struct cow_format_params p = { .chunk_size = 16384 };
        struct cow_io *io;
        uint8_t *a = NULL, b[5000];
        uint64_t rng = 7;

        tmp_pair(dir, opath, dpath, sizeof(opath));
        assert_int_equal(posix_memalign((void **) &a, 4096, 8192), 0);

        /* the I/O layer alone: aligned (direct) and unaligned (cached) requests */
        assert_int_equal(cow_io_open_file(dpath, true, true, &io), 0);
        assert_int_equal(cow_io_resize(io, 1 << 20), 0);
        memset(a, 0x11, 8192);
        assert_int_equal(cow_io_pwrite(io, a, 8192, 65536), 0);          /* direct */
        assert_int_equal(cow_io_pread(io, b, 100, 65536 + 3), 0);       /* cached */
        for (int i = 0; i < 100; i++)
                assert_int_equal(b[i], 0x11);
        memset(b, 0x22, 100);
        assert_int_equal(cow_io_pwrite(io, b, 100, 65536 + 4000), 0);   /* cached */
        assert_int_equal(cow_io_pread(io, a, 8192, 65536), 0);           /* direct */
        assert_int_equal(a[3999], 0x11);
        assert_int_equal(a[4000], 0x22);
        assert_int_equal(a[4099], 0x22);
        assert_int_equal(a[4100], 0x11);
        assert_int_equal(cow_io_flush(io), 0);
        cow_io_free(io);

        /* the engine over them */
        f->size = 1 << 20;
        f->model = malloc(f->size);
        tu_fill(f->model, f->size, 43);
        assert_int_equal(cow_io_open_file(opath, true, false, &f->origin), 0);
        assert_int_equal(cow_io_pwrite(f->origin, f->model, f->size, 0), 0);
        assert_int_equal(cow_io_open_file(dpath, true, true, &f->diff), 0);
        assert_int_equal(cow_format(f->origin, f->diff, &p), 0);
        assert_int_equal(cow_open(f->origin, f->diff, fx_on_event, f, &f->v), 0);
        fx_writeback(f);
        for (int s = 0; s < 3; s++) {
                fx_snap(f);
                fx_random_writes(f, 40, &rng);
        }
        fx_check(f);
        fx_delete(f, 1);
        fx_reopen(f);
        fx_check(f);
        fx_free(f);
        free(a);
        tmp_pair_remove(dir, opath, dpath);
}

/* Write-back: first writes are buffered until a commit, the origin keeps the
 * old data meanwhile, and reads see the new data. */
static void test_writeback(void **state)
{
        struct fixture *f = fx_new(1 << 20, 16384, 0);
        struct cow_stats st;
        uint8_t *b = malloc(1 << 20);

        if (g_wb_limit == 0) {
                /* write-through: nothing stays buffered */
                fx_snap(f);
                fx_write(f, 5000, 40000, 1);
                assert_int_equal(cow_stats(f->v, &st), 0);
                assert_int_equal(st.dirty_bytes, 0);
                fx_check(f);
                goto out;
        }
        fx_write(f, 0, 20000, 1);               /* no snapshot: direct */
        fx_snap(f);
        /* copy + dirty, a direct piece would need another snapshot: several pieces */
        fx_write(f, 10000, 50000, 2);
        fx_write(f, 16384 * 3 + 100, 10, 3);    /* into a dirty chunk */
        fx_write(f, 16384 * 10, 16384 * 2, 4);  /* whole chunks */
        assert_int_equal(cow_stats(f->v, &st), 0);
        if (g_wb_interval == 0) {
                assert_true(st.dirty_bytes >= 4 * 16384);
                /* the origin still holds the snapshot's data where chunks are dirty */
                assert_int_equal(cow_io_pread(f->origin, b, 16384, 16384), 0);
                assert_memory_equal(b, f->snaps[0].data + 16384, 16384);
        }
        fx_check(f);
        assert_int_equal(cow_read(f->v, b, 1 << 20, 0), 0);
        assert_memory_equal(b, f->model, 1 << 20);
        assert_int_equal(cow_flush(f->v), 0);
        assert_int_equal(cow_stats(f->v, &st), 0);
        assert_int_equal(st.dirty_bytes, 0);
        assert_true(st.writebacks >= 4);
        assert_int_equal(cow_io_pread(f->origin, b, 1 << 20, 0), 0);
        assert_memory_equal(b, f->model, 1 << 20);
        /* a snapshot taken with dirty chunks sees them */
        fx_write(f, 16384 * 20 + 7, 3000, 5);
        fx_snap(f);
        fx_write(f, 16384 * 20, 16384, 6);
        fx_check(f);
        if (g_wb_interval == 0) {
                /* Only written 4 KiB pages are buffered: 4 KiB into each of 8
                 * fresh 16 KiB chunks holds 32 KiB, not 128 KiB. */
                uint64_t before;

                assert_int_equal(cow_flush(f->v), 0);
                fx_snap(f);
                assert_int_equal(cow_stats(f->v, &st), 0);
                before = st.dirty_bytes;
                for (unsigned i = 0; i < 8; i++)
                        fx_write(f, 16384 * (40 + i), 4096, 7 + i);
                assert_int_equal(cow_stats(f->v, &st), 0);
                assert_int_equal(st.dirty_bytes - before, 8 * 4096);
                /* a partial sector in a page not buffered yet: the rest of the
                 * sector comes from the origin, the other pages stay unbuffered */
                fx_write(f, 16384 * 40 + 8192 + 50, 100, 20);
                assert_int_equal(cow_stats(f->v, &st), 0);
                assert_int_equal(st.dirty_bytes - before, 9 * 4096);
                /* a write across a page boundary inside one chunk */
                fx_write(f, 16384 * 41 + 4096 - 700, 1400, 21);
                fx_check(f);
                assert_int_equal(cow_read(f->v, b, 16384 * 4, 16384 * 40), 0);
                assert_memory_equal(b, f->model + 16384 * 40, 16384 * 4);
        }
        fx_reopen(f);
        fx_check(f);
out:
        free(b);
        fx_free(f);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_writeback),
                cmocka_unit_test(test_basic),
                cmocka_unit_test(test_many_snapshots_model),
                cmocka_unit_test(test_sharing),
                cmocka_unit_test(test_timing_stats),
                cmocka_unit_test(test_evict_oldest),
                cmocka_unit_test(test_drop_all),
                cmocka_unit_test(test_resize_smaller),
                cmocka_unit_test(test_shrink_file),
                cmocka_unit_test(test_reuse_runs),
                cmocka_unit_test(test_bad_input),
                cmocka_unit_test(test_o1_create),
                cmocka_unit_test(test_concurrency),
                cmocka_unit_test(test_diff_failure),
                cmocka_unit_test(test_file_direct),
                cmocka_unit_test(test_wb_shared),
        };

        return cow_fixture_run(tests, ARRAY_SIZE(tests));
}
