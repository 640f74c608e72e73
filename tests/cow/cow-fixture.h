/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The model-checking fixture of the CoW engine's unit tests (cow-fixture.c):
 * a volume on memory devices, a byte-exact model of its origin, and a copy of
 * the model taken at every snapshot; fx_check() compares them all.  The
 * write-back mode comes from the group the tests run in (cow_fixture_run()).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdarg.h>
#include <cmocka.h>

#include "cow/cow.h"

struct msnap {
        uint8_t guid[16];
        uint8_t *data;
        bool alive;
};

struct fixture {
        struct cow_io *origin, *diff;
        struct cow_io *diff_inner;      /* when diff counts calls (fx_new_with) */
        struct cow_volume *v;
        size_t size;
        uint8_t *model;
        struct msnap snaps[600];
        unsigned nsnaps;
        unsigned evicted, invalidated, lost, discarded;
        unsigned reverts;               /* COW_EVENT_REVERT_DONE events */
        int revert_error;               /* the last one's error */
};

/* The write-back limit and interval of the running group. */
extern uint64_t g_wb_limit;
extern uint32_t g_wb_interval;

/* The engine's event callback: marks the snapshots an event names as gone
 * and counts the events by type. */
void fx_on_event(const struct cow_event *ev, void *userdata);
/* A formatted and opened volume of 'size' bytes of seeded random data; with
 * count_diff the diff area counts its calls (f->diff wraps f->diff_inner). */
struct fixture *fx_new_with(size_t size, uint32_t chunk, uint64_t max, bool count_diff);
struct fixture *fx_new(size_t size, uint32_t chunk, uint64_t max);
void fx_free(struct fixture *f);
/* The group's write-back mode on f->v (after every open). */
void fx_writeback(struct fixture *f);
/* Close and open again; nothing may be LOST. */
void fx_reopen(struct fixture *f);
/* A snapshot, and the model's copy of its content; returns its index. */
unsigned fx_snap(struct fixture *f);
void fx_write(struct fixture *f, uint64_t off, size_t len, uint64_t seed);
void fx_random_writes(struct fixture *f, unsigned n, uint64_t *rng);
/* The live volume and every snapshot against the model, byte for byte. */
void fx_check(struct fixture *f);
void fx_delete(struct fixture *f, unsigned i);
/* The index of the oldest (0), middle (1) or newest (2) live snapshot, or -1. */
int fx_alive_index(struct fixture *f, int which);

/* Runs the tests three times: write-through, with write-back buffers committed
 * by writers, and with the write-back thread.  Returns cmocka's result. */
int cow_fixture_run(const struct CMUnitTest *tests, size_t n);
