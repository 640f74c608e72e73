/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The writer's side of a snapshot set, as libvss tracks it to keep the promises of
 * docs/protocol.md ("Rules for writers"): a local freeze deadline, Abort when the
 * connection is lost while the writer may hold something, and Abort exactly once per
 * set whoever asks for it.  Pure logic: the clock is passed in, nothing here runs a
 * handler, so tests/unit/test-writer-seq.c drives every ordering by hand.
 *
 * The caller (writer.c) owns the order of things, on the one thread that runs
 * handlers:
 *
 *     event E for set S arrives
 *       writer_seq_must_abort_before(E, S)?  -> writer_seq_abort_local() + on_abort
 *       writer_seq_event(E, S, now)           -> run the handler, or answer without it
 *     nothing left to read and writer_seq_deadline_passed(now)
 *       writer_seq_abort_local(FREEZE_DEADLINE) + on_abort
 *     connection lost and writer_seq_holds()
 *       writer_seq_abort_local(CONNECTION_LOST) + on_abort
 *
 * The deadline is armed by writer_seq_event(Freeze) before on_freeze runs and
 * cancelled by writer_seq_event(Thaw|Abort) before their handlers run; it belongs to
 * one set id and only the set in progress can expire.  Since the deadline is only
 * ever looked at on the handler thread, after every message already received has
 * been handled, a Thaw that reached the writer is never overtaken by its deadline
 * (the race of KB 915331, vss-facts section 9).
 */

#include <stdbool.h>
#include <stdint.h>

#include "vss/writer.h"

enum seq_phase {
        SEQ_IDLE,               /* no set, or its sequence ended */
        SEQ_BACKUP,             /* PrepareForBackup seen: nothing held yet */
        SEQ_PREPARED,           /* PrepareForSnapshot seen: a lost connection aborts */
        SEQ_FROZEN,             /* Freeze seen: the deadline runs */
        SEQ_THAWED,             /* Thaw seen: nothing held any more */
};

#define SEQ_ABORTED_KEEP 8

struct writer_seq {
        enum seq_phase phase;
        vss_id set;                     /* the set in progress (phase != SEQ_IDLE) */
        bool deadline_armed;
        uint64_t deadline_us;           /* monotonic */
        struct {
                vss_id set;
                enum vss_abort_reason reason;
        } aborted[SEQ_ABORTED_KEEP];    /* sets whose on_abort already ran, a ring */
        unsigned n_aborted, next_aborted;
};

enum seq_verdict {
        SEQ_RUN,                /* run the event's handler */
        SEQ_ANSWER_OK,          /* answer ok:true without running it (a repeated Abort) */
        SEQ_ANSWER_FAILED,      /* answer ok:false without running it (the set was aborted here) */
};

void writer_seq_init(struct writer_seq *s);

/* True when the set in progress must be aborted before 'ev' for 'set' is handled: a new
 * set, or the end of the sequence (BackupShutdown), came while it was held and neither
 * Thaw nor Abort was seen. */
bool writer_seq_must_abort_before(const struct writer_seq *s, enum vss_event ev, const vss_id *set);

/*
 * Accounts for event 'ev' of 'set' (NULL or the null id: none) received at now_us.
 * Freeze arms the deadline now_us + freeze_window_us; Thaw and Abort cancel it.
 * For SEQ_ANSWER_FAILED, *ret_failure is the failure to answer with
 * (VSS_E_WRITERERROR_TIMEOUT when the set was aborted by its deadline).
 */
enum seq_verdict writer_seq_event(struct writer_seq *s, enum vss_event ev, const vss_id *set, uint64_t now_us,
                                  uint64_t freeze_window_us, vss_hresult *ret_failure);

/* The set in progress is held: between PrepareForSnapshot and Thaw, not aborted. */
bool writer_seq_holds(const struct writer_seq *s);
bool writer_seq_deadline_passed(const struct writer_seq *s, uint64_t now_us);
/* When the deadline passes (monotonic us), UINT64_MAX when none is armed. */
uint64_t writer_seq_deadline(const struct writer_seq *s);

/* Ends the held set as aborted for 'reason' and returns true with its id, so that the
 * caller runs on_abort; false when nothing is held (nothing to do). */
bool writer_seq_abort_local(struct writer_seq *s, enum vss_abort_reason reason, vss_id *ret_set);

/* Whether on_abort already ran for 'set', and why. */
bool writer_seq_was_aborted(const struct writer_seq *s, const vss_id *set, enum vss_abort_reason *ret_reason);
