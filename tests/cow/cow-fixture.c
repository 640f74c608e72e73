/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The model-checking fixture shared by the CoW unit tests (cow-fixture.h).
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cow-fixture.h"
#include "cow-test-io.h"
#include "cow-test-util.h"

uint64_t g_wb_limit;
uint32_t g_wb_interval;

void fx_writeback(struct fixture *f)
{
        assert_int_equal(cow_set_writeback(f->v, g_wb_limit, g_wb_interval), 0);
}

void fx_on_event(const struct cow_event *ev, void *userdata)
{
        struct fixture *f = userdata;
        static const uint8_t zero[16];
        bool all = memcmp(ev->guid, zero, 16) == 0;

        if (ev->type == COW_EVENT_REVERT_DONE) {
                /* Names the target, which stays. */
                f->reverts++;
                f->revert_error = ev->error;
                return;
        }
        for (unsigned i = 0; i < f->nsnaps; i++)
                if (f->snaps[i].alive && (all || memcmp(f->snaps[i].guid, ev->guid, 16) == 0))
                        f->snaps[i].alive = false;
        if (ev->type == COW_EVENT_SNAPSHOT_EVICTED)
                f->evicted++;
        else if (ev->type == COW_EVENT_SNAPSHOT_INVALIDATED)
                f->invalidated++;
        else if (ev->type == COW_EVENT_SNAPSHOT_DISCARDED)
                f->discarded++;
        else
                f->lost++;
}

struct fixture *fx_new_with(size_t size, uint32_t chunk, uint64_t max, bool count_diff)
{
        struct fixture *f = calloc(1, sizeof(*f));
        struct cow_format_params p = { .chunk_size = chunk, .max_bytes = max };

        assert_non_null(f);
        f->size = size;
        f->model = malloc(size);
        tu_fill(f->model, size, 42);
        assert_int_equal(cow_io_new_memory(f->model, size, &f->origin), 0);
        assert_int_equal(cow_io_new_memory(NULL, 0, &f->diff), 0);
        if (count_diff) {
                f->diff_inner = f->diff;
                assert_int_equal(cow_io_new_counting(f->diff_inner, &f->diff), 0);
        }
        assert_int_equal(cow_format(f->origin, f->diff, &p), 0);
        assert_int_equal(cow_open(f->origin, f->diff, fx_on_event, f, &f->v), 0);
        fx_writeback(f);
        return f;
}

struct fixture *fx_new(size_t size, uint32_t chunk, uint64_t max)
{
        return fx_new_with(size, chunk, max, false);
}

void fx_free(struct fixture *f)
{
        cow_close(f->v);
        cow_io_free(f->origin);
        cow_io_free(f->diff);
        cow_io_free(f->diff_inner);
        for (unsigned i = 0; i < f->nsnaps; i++)
                free(f->snaps[i].data);
        free(f->model);
        free(f);
}

void fx_reopen(struct fixture *f)
{
        f->v = cow_close(f->v);
        assert_int_equal(cow_open(f->origin, f->diff, fx_on_event, f, &f->v), 0);
        if (getenv("COW_TEST_CHECKPOINT"))
                cow_set_checkpoint_blocks(f->v, 0);
        fx_writeback(f);
        /* nothing in these tests may make the engine distrust its metadata */
        assert_int_equal(f->lost, 0);
}

unsigned fx_snap(struct fixture *f)
{
        struct msnap *s = &f->snaps[f->nsnaps];

        tu_guid(s->guid, f->nsnaps + 1);
        assert_int_equal(cow_snapshot_create(f->v, s->guid), 0);
        s->data = malloc(f->size);
        memcpy(s->data, f->model, f->size);
        s->alive = true;
        return f->nsnaps++;
}

void fx_write(struct fixture *f, uint64_t off, size_t len, uint64_t seed)
{
        uint8_t *b = malloc(len);

        tu_fill(b, len, seed);
        assert_int_equal(cow_write(f->v, b, len, off), 0);
        memcpy(f->model + off, b, len);
        free(b);
}

void fx_random_writes(struct fixture *f, unsigned n, uint64_t *rng)
{
        for (unsigned i = 0; i < n; i++) {
                size_t len = 1 + tu_rand(rng) % 20000;
                uint64_t off = tu_rand(rng) % (f->size - len);
                fx_write(f, off, len, tu_rand(rng));
        }
}

void fx_check(struct fixture *f)
{
        uint8_t *b = malloc(f->size);
        struct cow_snapshot_info *l;
        size_t n, alive = 0;

        assert_int_equal(cow_read(f->v, b, f->size, 0), 0);
        assert_memory_equal(b, f->model, f->size);
        for (unsigned i = 0; i < f->nsnaps; i++) {
                if (!f->snaps[i].alive) {
                        assert_int_equal(cow_snapshot_read(f->v, f->snaps[i].guid, b, 1, 0), -ENOENT);
                        continue;
                }
                alive++;
                memset(b, 0, f->size);
                assert_int_equal(cow_snapshot_read(f->v, f->snaps[i].guid, b, f->size, 0), 0);
                assert_memory_equal(b, f->snaps[i].data, f->size);
                /* unaligned pieces too */
                for (int k = 0; k < 4; k++) {
                        uint64_t off = (uint64_t) (k * 7919 + 13) % (f->size - 5000);
                        assert_int_equal(cow_snapshot_read(f->v, f->snaps[i].guid, b, 5000, off), 0);
                        assert_memory_equal(b, f->snaps[i].data + off, 5000);
                }
        }
        assert_int_equal(cow_snapshot_list(f->v, &l, &n), 0);
        assert_int_equal(n, alive);
        free(l);
        free(b);
}

void fx_delete(struct fixture *f, unsigned i)
{
        assert_true(f->snaps[i].alive);
        assert_int_equal(cow_snapshot_delete(f->v, f->snaps[i].guid), 0);
        f->snaps[i].alive = false;
}

int fx_alive_index(struct fixture *f, int which)
{
        int first = -1, last = -1, cnt = 0, mid = -1;

        for (unsigned i = 0; i < f->nsnaps; i++)
                if (f->snaps[i].alive) {
                        if (first < 0)
                                first = (int) i;
                        last = (int) i;
                        cnt++;
                }
        if (which == 0)
                return first;
        if (which == 2)
                return last;
        for (unsigned i = 0, k = 0; i < f->nsnaps; i++)
                if (f->snaps[i].alive && (int) k++ == cnt / 2)
                        mid = (int) i;
        return mid;
}

static int wb_off(void **state)
{
        g_wb_limit = 0, g_wb_interval = 0;
        return 0;
}

static int wb_buffered(void **state)
{
        g_wb_limit = 256 * 1024, g_wb_interval = 0;
        return 0;
}

static int wb_thread(void **state)
{
        g_wb_limit = 256 * 1024, g_wb_interval = 1;
        return 0;
}

int cow_fixture_run(const struct CMUnitTest *tests, size_t n)
{
        int r = 0;

        r |= _cmocka_run_group_tests("write-through", tests, n, wb_off, NULL);
        r |= _cmocka_run_group_tests("write-back", tests, n, wb_buffered, NULL);
        r |= _cmocka_run_group_tests("write-back thread", tests, n, wb_thread, NULL);
        return r;
}
