/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Power-cut tests.  A scripted workload (writes, origin flushes, snapshot
 * creates, deletes of oldest/newest/middle, shadow-storage bound changes that
 * force evictions) runs on the crash-simulating I/O layer; the power is cut at
 * EVERY flush point in turn, with unflushed writes dropped, reordered or torn
 * (seeded), then the durable images are reopened and checked:
 *   - every origin sector not written since the last acknowledged flush holds
 *     its flushed content; others hold one of the writes made since, or junk;
 *   - every snapshot that comes back reads exactly as it was taken;
 *   - every snapshot whose creation was acknowledged and that was neither
 *     deleted nor evicted comes back; nothing is reported LOST;
 *   - the recovered volume keeps working (a write to every chunk, evicting as
 *     needed, and all snapshots are checked again).
 * Each seed also picks a write-back limit (none, a few chunks, unlimited), so
 * the power is cut with first writes still buffered, mid-commit and
 * mid-write-back.
 * Workload 2 also reverts to snapshots (oldest, newest, middle).  A power cut
 * during a revert must leave, once the volume is opened again, either no
 * trace of it (every newer snapshot back, the origin as the rules above say)
 * or the whole revert (every newer snapshot gone, the origin exactly the
 * target's content, checked sector by sector): never a mixture.
 * One cmocka test per workload and seed walks all its crash points; a last
 * one checks that the shrinks of the workloads really moved copies.  When a
 * check fails, the run's last line names the seed and the crash point.
 * Usage: test-cow-crash [SEEDS] (default 3).
 */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "basic/macro.h"
#include "cow/cow.h"
#include "cow-test-io.h"
#include "cow-test-util.h"

#define SECT 512u
#define ORIGIN (256u * 1024u)
#define NSECT (ORIGIN / SECT)
#define CHUNK 4096u
#define MAXSNAP 64
#define NOPS 110
/* 0 and 1 as ever (1 compacts the journal at every commit), 2 and 3 the same
 * with reverts */
#define NWORKLOADS 4u

static uint64_t g_seed, g_crash_at;
static uint64_t g_relocations;  /* copies moved by shrinks in the uncut runs */

enum { S_NONE, S_CREATING, S_ACKED, S_DELETING, S_GONE };

struct msnap {
        uint8_t guid[16];
        int state;
        bool evicted;
        uint32_t *ids;          /* expected write id per sector */
};

struct model {
        uint32_t flushed[NSECT], cur[NSECT];
        uint32_t *since[NSECT];         /* ids written since the last flush */
        unsigned nsince[NSECT];
        struct msnap snaps[MAXSNAP];
        unsigned nsnaps;
        unsigned lost;
        /* the revert in flight: its target (-1: none) and the newer live snapshots */
        int rev_target;
        unsigned rev_newer[MAXSNAP], rev_nnewer;
        unsigned revert_errors;         /* COW_EVENT_REVERT_DONE with an error */
};

static void sector_fill(uint8_t *p, uint32_t id, uint32_t sect)
{
        for (unsigned i = 0; i < SECT; i += 4) {
                uint32_t x = i == 0 ? id : i == 4 ? sect : id * 2654435761u + sect * 40503u + i;
                memcpy(p + i, &x, 4);
        }
}

/* The write id a sector holds, or UINT32_MAX if it is not a written pattern. */
static uint32_t sector_id(const uint8_t *p, uint32_t sect)
{
        uint8_t ref[SECT];
        uint32_t id;

        memcpy(&id, p, 4);
        sector_fill(ref, id, sect);
        return memcmp(ref, p, SECT) == 0 ? id : UINT32_MAX;
}

static void on_event(const struct cow_event *ev, void *userdata)
{
        struct model *m = userdata;

        if (ev->type == COW_EVENT_SNAPSHOT_LOST) {
                m->lost++;
                return;
        }
        if (ev->type == COW_EVENT_REVERT_DONE) {
                m->revert_errors += ev->error != 0;
                return;
        }
        for (unsigned i = 0; i < m->nsnaps; i++)
                if (memcmp(m->snaps[i].guid, ev->guid, 16) == 0 && ev->type == COW_EVENT_SNAPSHOT_EVICTED)
                        m->snaps[i].evicted = true;
}

static void model_flushed(struct model *m)
{
        for (unsigned s = 0; s < NSECT; s++) {
                m->flushed[s] = m->cur[s];
                m->nsince[s] = 0;
        }
}

static void model_reset(struct model *m)
{
        for (unsigned i = 0; i < m->nsnaps; i++)
                free(m->snaps[i].ids);
        for (unsigned s = 0; s < NSECT; s++)
                free(m->since[s]);
        memset(m, 0, sizeof(*m));
}

/* The revert to the model's rev_target completed: the origin is its content,
 * flushed, and the newer snapshots are gone. */
static void revert_apply(struct model *m)
{
        struct msnap *t = &m->snaps[m->rev_target];

        for (unsigned s = 0; s < NSECT; s++)
                m->cur[s] = t->ids[s];
        model_flushed(m);
        for (unsigned j = 0; j < m->rev_nnewer; j++)
                m->snaps[m->rev_newer[j]].state = S_GONE;
        m->rev_target = -1;
}

static int find_alive(struct model *m, int which)
{
        int idx[MAXSNAP], n = 0;

        for (unsigned i = 0; i < m->nsnaps; i++)
                if (m->snaps[i].state == S_ACKED && !m->snaps[i].evicted)
                        idx[n++] = (int) i;
        if (n == 0)
                return -1;
        return which == 0 ? idx[0] : which == 1 ? idx[n - 1] : idx[n / 2];
}

/* Runs the workload until it ends or the first failure (the power cut). */
static uint64_t g_reverts;      /* reverts completed in the uncut runs */
/* power cuts during a revert, found undone and completed after the reboot */
static uint64_t g_cut_undone, g_cut_completed;

static void workload(struct cow_volume *v, struct model *m, uint64_t wseed, bool reverts)
{
        uint64_t rng = wseed;
        uint32_t next_id = 1;
        uint8_t buf[3 * CHUNK];

        for (int op = 0; op < NOPS; op++) {
                unsigned k = (unsigned) (tu_rand(&rng) % 100);

                if (k < 60) {
                        unsigned nblk = 1 + (unsigned) (tu_rand(&rng) % 3);
                        uint64_t off = (tu_rand(&rng) % (ORIGIN / CHUNK - nblk)) * CHUNK;
                        uint32_t id = next_id++;
                        for (unsigned s = 0; s < nblk * CHUNK / SECT; s++)
                                sector_fill(buf + s * SECT, id, (uint32_t) (off / SECT + s));
                        /* Until acknowledged, the write may or may not land. */
                        for (unsigned s = 0; s < nblk * CHUNK / SECT; s++) {
                                unsigned sec = (unsigned) (off / SECT) + s;
                                m->since[sec] = realloc(m->since[sec], (m->nsince[sec] + 1) * sizeof(uint32_t));
                                m->since[sec][m->nsince[sec]++] = id;
                        }
                        if (cow_write(v, buf, nblk * CHUNK, off) < 0)
                                return;
                        for (unsigned s = 0; s < nblk * CHUNK / SECT; s++)
                                m->cur[off / SECT + s] = id;
                } else if (k < 68) {
                        if (cow_flush(v) < 0)
                                return;
                        model_flushed(m);
                } else if (k < 82) {
                        struct msnap *s;
                        if (m->nsnaps == MAXSNAP)
                                continue;
                        s = &m->snaps[m->nsnaps++];
                        tu_guid(s->guid, m->nsnaps);
                        s->ids = malloc(sizeof(m->cur));
                        memcpy(s->ids, m->cur, sizeof(m->cur));
                        s->state = S_CREATING;
                        if (cow_snapshot_create(v, s->guid) < 0)
                                return;
                        s->state = S_ACKED;
                        model_flushed(m);
                } else if (k < (reverts ? 88u : 94u)) {
                        int i = find_alive(m, (int) (tu_rand(&rng) % 3));
                        if (i < 0)
                                continue;
                        m->snaps[i].state = S_DELETING;
                        if (cow_snapshot_delete(v, m->snaps[i].guid) < 0)
                                return;
                        m->snaps[i].state = S_GONE;
                        if (tu_rand(&rng) % 2 == 0) {
                                /* the deletion left holes: shrink to just above what is
                                 * used, so copies above the new end move down (relocate()) */
                                struct cow_stats st;

                                if (cow_stats(v, &st) < 0 || cow_set_max(v, st.used_bytes + CHUNK) < 0)
                                        return;
                        }
                } else if (k < 94) {
                        int i = find_alive(m, (int) (tu_rand(&rng) % 3));

                        if (i < 0)
                                continue;
                        m->rev_nnewer = 0;
                        for (unsigned j = (unsigned) i + 1; j < m->nsnaps; j++)
                                if (m->snaps[j].state == S_ACKED && !m->snaps[j].evicted)
                                        m->rev_newer[m->rev_nnewer++] = j;
                        m->rev_target = i;
                        if (cow_revert(v, m->snaps[i].guid) < 0)
                                return;
                        revert_apply(m);
                        g_reverts += g_crash_at == 0;
                } else {
                        /* header + journal + 12..40 chunks: forces evictions */
                        uint64_t max = 8192 + 4 * 8192 + (12 + tu_rand(&rng) % 28) * CHUNK;
                        struct cow_stats st;
                        unsigned how = (unsigned) (tu_rand(&rng) % 12);

                        if (how < 4)
                                /* so small that a write drops every snapshot */
                                max = 8192 + 4 * 8192 + (tu_rand(&rng) % 4) * CHUNK;
                        else if (how < 7 && cow_stats(v, &st) == 0)
                                /* just above what is used: no eviction, but the copies
                                 * above the new end move down (relocate()) */
                                max = st.used_bytes + (1 + tu_rand(&rng) % 2) * CHUNK;
                        else if (how < 9)
                                max = COW_MAX_UNBOUNDED;
                        if (cow_set_max(v, max) < 0)
                                return;
                }
        }
}

static void verify_origin(struct model *m, const uint8_t *img, size_t len)
{
        for (unsigned s = 0; s < NSECT; s++) {
                uint8_t sec[SECT] = {};
                uint32_t id;
                bool ok = false;

                if ((size_t) s * SECT < len)
                        memcpy(sec, img + (size_t) s * SECT, MIN((size_t) SECT, len - (size_t) s * SECT));
                id = sector_id(sec, s);
                if (m->nsince[s] == 0) {
                        assert_int_equal(id, m->flushed[s]);
                        continue;
                }
                if (id == UINT32_MAX)
                        continue;       /* torn by the power cut: unacknowledged */
                ok = id == m->flushed[s];
                for (unsigned i = 0; i < m->nsince[s]; i++)
                        ok = ok || id == m->since[s][i];
                assert_true(ok);
        }
}

static void verify_snapshots(struct cow_volume *v, struct model *m, bool after_crash)
{
        struct cow_snapshot_info *l;
        size_t n;
        uint8_t *b = malloc(ORIGIN);

        assert_non_null(b);
        assert_int_equal(cow_snapshot_list(v, &l, &n), 0);
        for (size_t i = 0; i < n; i++) {
                struct msnap *s = NULL;
                for (unsigned j = 0; j < m->nsnaps; j++)
                        if (memcmp(m->snaps[j].guid, l[i].guid, 16) == 0)
                                s = &m->snaps[j];
                assert_non_null(s);     /* no snapshot out of nowhere */
                assert_int_not_equal(s->state, S_NONE);
                assert_int_equal(cow_snapshot_read(v, s->guid, b, ORIGIN, 0), 0);
                for (unsigned sec = 0; sec < NSECT; sec++)
                        assert_int_equal(sector_id(b + (size_t) sec * SECT, sec), s->ids[sec]);
        }
        for (unsigned j = 0; j < m->nsnaps; j++) {
                struct msnap *s = &m->snaps[j];
                bool found = false;
                if (s->state != S_ACKED || s->evicted)
                        continue;
                for (size_t i = 0; i < n; i++)
                        found = found || memcmp(l[i].guid, s->guid, 16) == 0;
                assert_true(found || !after_crash);
        }
        free(l);
        free(b);
}

/*
 * The power was cut during a revert, and the volume is open again: it is
 * either untouched by the revert or completely reverted.
 */
static void resolve_revert(struct cow_volume *v, struct model *m, struct cow_io *origin)
{
        struct msnap *t = &m->snaps[m->rev_target];
        struct cow_revert_status st;
        struct cow_snapshot_info *l;
        uint8_t *img = malloc(ORIGIN);
        unsigned present = 0;
        bool exact = true, done;
        size_t n;

        assert_non_null(img);
        assert_int_equal(cow_snapshot_list(v, &l, &n), 0);
        for (unsigned j = 0; j < m->rev_nnewer; j++)
                for (size_t i = 0; i < n; i++)
                        present += memcmp(l[i].guid, m->snaps[m->rev_newer[j]].guid, 16) == 0;
        free(l);
        /* The origin device itself, as the open left it. */
        assert_int_equal(cow_io_pread(origin, img, ORIGIN, 0), 0);
        for (unsigned s = 0; s < NSECT; s++)
                exact = exact && sector_id(img + (size_t) s * SECT, s) == t->ids[s];
        if (m->rev_nnewer > 0) {
                /* all newer ones or none: the deletions are one revert */
                assert_true(present == 0 || present == m->rev_nnewer);
                done = present == 0;
        } else
                done = exact;
        if (done) {
                assert_true(exact);
                revert_apply(m);
                g_cut_completed++;
        } else {
                verify_origin(m, img, ORIGIN);
                m->rev_target = -1;
                g_cut_undone++;
        }
        assert_int_equal(cow_revert_status(v, &st), 0);
        assert_int_not_equal(st.state, COW_REVERT_FAILED);
        assert_false(st.pending);
        free(img);
}

/* After recovery the volume must keep working: write every chunk once. */
static void exercise(struct cow_volume *v, struct model *m)
{
        uint8_t buf[CHUNK];

        for (unsigned c = 0; c < ORIGIN / CHUNK; c++) {
                uint32_t id = 1000000 + c;
                for (unsigned s = 0; s < CHUNK / SECT; s++)
                        sector_fill(buf + s * SECT, id, c * (CHUNK / SECT) + s);
                assert_int_equal(cow_write(v, buf, CHUNK, (uint64_t) c * CHUNK), 0);
        }
        verify_snapshots(v, m, false);
}

static void run_one(const void *o0, size_t ol, const void *d0, size_t dl, uint64_t crash_at, uint64_t seed,
                    uint64_t wseed, uint64_t wb, bool reverts, uint64_t *ret_flushes)
{
        struct cow_crash_world *w = cow_crash_world_new(crash_at, seed);
        struct cow_io *o, *d, *mo, *md;
        struct cow_volume *v;
        struct model *m = calloc(1, sizeof(*m));
        void *oi, *di;
        size_t oil, dil;

        g_crash_at = crash_at;
        assert_non_null(w);
        assert_non_null(m);
        assert_int_equal(cow_crash_io_new(w, o0, ol, &o), 0);
        assert_int_equal(cow_crash_io_new(w, d0, dl, &d), 0);
        for (unsigned s = 0; s < NSECT; s++)
                m->flushed[s] = m->cur[s] = 0;
        m->rev_target = -1;
        if (cow_open(o, d, on_event, m, &v) == 0) {
                /* workload 1 compacts at every commit: power cuts hit checkpoints */
                cow_set_checkpoint_blocks(v, wseed % 2 ? 0 : 64);
                assert_int_equal(cow_set_writeback(v, wb, 0), 0);
                workload(v, m, wseed, reverts);
                if (crash_at == 0) {
                        struct cow_stats st;

                        assert_int_equal(cow_stats(v, &st), 0);
                        g_relocations += st.relocations;
                }
                cow_close(v);
        }
        *ret_flushes = cow_crash_world_flushes(w);
        assert_true(crash_at == 0 || cow_crash_world_crashed(w) || crash_at > *ret_flushes);
        assert_int_equal(cow_crash_io_durable(o, &oi, &oil), 0);
        assert_int_equal(cow_crash_io_durable(d, &di, &dil), 0);
        cow_io_free(o);
        cow_io_free(d);
        cow_crash_world_free(w);

        /* Reboot.  A revert in flight completes at open: its origin is checked
         * after that. */
        if (m->rev_target < 0)
                verify_origin(m, oi, oil);
        assert_int_equal(cow_io_new_memory(oi, oil, &mo), 0);
        assert_int_equal(cow_io_new_memory(di, dil, &md), 0);
        m->revert_errors = 0;
        assert_int_equal(cow_open(mo, md, on_event, m, &v), 0);
        assert_int_equal(m->lost, 0);
        assert_int_equal(m->revert_errors, 0);
        if (m->rev_target >= 0)
                resolve_revert(v, m, mo);
        cow_set_checkpoint_blocks(v, wseed % 2 ? 0 : 64);
        assert_int_equal(cow_set_writeback(v, wb, 0), 0);
        verify_snapshots(v, m, true);
        exercise(v, m);
        cow_close(v);
        /* and once more after a clean close */
        assert_int_equal(cow_open(mo, md, on_event, m, &v), 0);
        assert_int_equal(m->lost, 0);
        verify_snapshots(v, m, false);
        cow_close(v);
        cow_io_free(mo);
        cow_io_free(md);
        free(oi);
        free(di);
        model_reset(m);
        free(m);
}

/* One workload and seed: count its flush points, then cut the power at each. */
struct seed_run {
        unsigned workload;
        uint64_t seed;
        char name[96];
};

static uint8_t *g_origin0;      /* the initial origin: every sector holds write id 0 */
static uint64_t g_total;

static void test_crash_points(void **state)
{
        const struct seed_run *sr = *state;
        struct cow_format_params p = { .chunk_size = CHUNK };
        uint64_t wseed = 1000 + sr->workload, seed = sr->seed;
        /* Write-back: every first write commits, a few dirty chunks, or more
         * than the volume has (only flushes and snapshots commit). */
        uint64_t wb = seed % 3 == 1 ? 0 : seed % 3 == 2 ? 3 * CHUNK : 2 * ORIGIN;
        struct cow_crash_world *w = cow_crash_world_new(0, 0);
        struct cow_io *o, *d;
        uint64_t nflush = 0, f;
        void *oimg, *dimg;
        size_t ol, dl;

        assert_non_null(w);
        assert_int_equal(cow_crash_io_new(w, g_origin0, ORIGIN, &o), 0);
        assert_int_equal(cow_crash_io_new(w, NULL, 0, &d), 0);
        assert_int_equal(cow_format(o, d, &p), 0);
        assert_int_equal(cow_crash_io_durable(o, &oimg, &ol), 0);
        assert_int_equal(cow_crash_io_durable(d, &dimg, &dl), 0);
        cow_io_free(o);
        cow_io_free(d);
        cow_crash_world_free(w);

        g_seed = seed;
        run_one(oimg, ol, dimg, dl, 0, seed, wseed, wb, sr->workload >= 2, &nflush);
        for (uint64_t k = 1; k <= nflush; k++)
                run_one(oimg, ol, dimg, dl, k, seed * 7919 + k, wseed, wb, sr->workload >= 2, &f);
        g_total += nflush;
        printf("workload %u seed %llu (write-back limit %llu): %llu crash points ok\n", sr->workload,
               (unsigned long long) seed, (unsigned long long) wb, (unsigned long long) nflush);
        free(oimg);
        free(dimg);
}

/* The shrinks of the workloads must move copies, or their crash points test
 * nothing of relocate(). */
static void test_relocations(void **state)
{
        printf("%llu crash points verified\n", (unsigned long long) g_total);
        printf("%llu copies relocated by shrinks (uncut runs)\n", (unsigned long long) g_relocations);
        assert_true(g_relocations > 0);
}

/* Workloads 2 and 3 must revert, and power cuts must hit reverts both before
 * and after they were recorded, or their crash points test nothing of it. */
static void test_reverts(void **state)
{
        printf("%llu reverts completed (uncut runs); power cut during a revert: %llu found undone, "
               "%llu completed at open\n", (unsigned long long) g_reverts, (unsigned long long) g_cut_undone,
               (unsigned long long) g_cut_completed);
        assert_true(g_reverts > 0);
        assert_true(g_cut_undone > 0);
        assert_true(g_cut_completed > 0);
}

int main(int argc, char **argv)
{
        unsigned nseeds = argc > 1 ? (unsigned)strtol(argv[1], NULL, 10) : 3;
        struct seed_run *runs = calloc(NWORKLOADS * (size_t) nseeds, sizeof(*runs));
        struct CMUnitTest *tests = calloc(NWORKLOADS * (size_t) nseeds + 2, sizeof(*tests));
        size_t n = 0;
        int r;

        g_origin0 = malloc(ORIGIN);
        if (!runs || !tests || !g_origin0)
                return EXIT_FAILURE;
        for (unsigned s = 0; s < NSECT; s++)
                sector_fill(g_origin0 + s * SECT, 0, s);
        for (unsigned wi = 0; wi < NWORKLOADS; wi++)
                for (uint64_t seed = 1; seed <= nseeds; seed++) {
                        struct seed_run *sr = &runs[n];

                        *sr = (struct seed_run) { .workload = wi, .seed = seed };
                        snprintf(sr->name, sizeof(sr->name), "workload %u seed %llu", wi,
                                 (unsigned long long) seed);
                        tests[n++] = (struct CMUnitTest) { .name = sr->name, .test_func = test_crash_points,
                                                           .initial_state = sr };
                }
        tests[n++] = (struct CMUnitTest) { .name = "relocations", .test_func = test_relocations };
        tests[n++] = (struct CMUnitTest) { .name = "reverts", .test_func = test_reverts };
        r = _cmocka_run_group_tests("power cut", tests, n, NULL, NULL);
        if (r != 0)
                fprintf(stderr, "test-cow-crash: a check failed at seed %llu, crash at flush %llu\n",
                        (unsigned long long) g_seed, (unsigned long long) g_crash_at);
        free(tests);
        free(runs);
        free(g_origin0);
        return r;
}
