/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The writer's per-set bookkeeping (src/libvss/writer-seq.c) driven by hand, with
 * the clock as a plain number: the deadline is armed by Freeze and cancelled by
 * Thaw/Abort, expires only for the set in progress and never after its Thaw, Abort
 * runs once per set whoever triggers it, late events for an aborted set are
 * answered without their handler, and a lost connection aborts exactly between
 * PrepareForSnapshot and Thaw.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "basic/macro.h"
#include "libvss/writer-seq.h"

#define MS 1000ULL
#define WINDOW (4000 * MS)      /* freeze timeout 3000 ms + 1000 ms grace */

static vss_id set_a, set_b;

static int setup(void **state)
{
        assert_int_equal(vss_id_parse("{aaaaaaaa-0000-4000-8000-000000000001}", &set_a), VSS_S_OK);
        assert_int_equal(vss_id_parse("{bbbbbbbb-0000-4000-8000-000000000002}", &set_b), VSS_S_OK);
        return 0;
}

static enum seq_verdict ev(struct writer_seq *s, enum vss_event e, const vss_id *set, uint64_t now)
{
        vss_hresult f;
        enum seq_verdict v = writer_seq_event(s, e, set, now, WINDOW, &f);

        if (v == SEQ_ANSWER_FAILED)
                assert_true(vss_hresult_is_writer_failure(f));
        else
                assert_int_equal(f, VSS_S_OK);
        return v;
}

/* PrepareForBackup, PrepareForSnapshot, Freeze at t=1000 ms. */
static void to_frozen(struct writer_seq *s, const vss_id *set)
{
        writer_seq_init(s);
        assert_int_equal(ev(s, VSS_EVENT_IDENTIFY, NULL, 0), SEQ_RUN);
        assert_int_equal(ev(s, VSS_EVENT_PREPARE_BACKUP, set, 0), SEQ_RUN);
        assert_false(writer_seq_holds(s));
        assert_int_equal(ev(s, VSS_EVENT_PREPARE_SNAPSHOT, set, 500 * MS), SEQ_RUN);
        assert_true(writer_seq_holds(s));
        assert_int_equal(writer_seq_deadline(s), UINT64_MAX);
        assert_int_equal(ev(s, VSS_EVENT_FREEZE, set, 1000 * MS), SEQ_RUN);
}

static void test_deadline_armed_by_freeze(void **state)
{
        struct writer_seq s;

        to_frozen(&s, &set_a);
        /* Armed before on_freeze runs: it is there as soon as the event is accounted. */
        assert_int_equal(writer_seq_deadline(&s), 1000 * MS + WINDOW);
        assert_false(writer_seq_deadline_passed(&s, 1000 * MS + WINDOW - 1));
        assert_true(writer_seq_deadline_passed(&s, 1000 * MS + WINDOW));
        assert_true(writer_seq_holds(&s));
}

static void test_thaw_cancels(void **state)
{
        struct writer_seq s;

        to_frozen(&s, &set_a);
        assert_int_equal(ev(&s, VSS_EVENT_THAW, &set_a, 2000 * MS), SEQ_RUN);
        assert_int_equal(writer_seq_deadline(&s), UINT64_MAX);
        /* Long after: the deadline of a thawed set can never fire (KB 915331). */
        assert_false(writer_seq_deadline_passed(&s, 1000000 * MS));
        assert_false(writer_seq_holds(&s));
        assert_false(writer_seq_abort_local(&s, VSS_ABORT_FREEZE_DEADLINE, NULL));
        /* A Thaw that is handled after the deadline passed but before it was acted on wins. */
        to_frozen(&s, &set_a);
        assert_int_equal(ev(&s, VSS_EVENT_THAW, &set_a, 1000 * MS + WINDOW + 5 * MS), SEQ_RUN);
        assert_false(writer_seq_deadline_passed(&s, 1000 * MS + WINDOW + 6 * MS));
        assert_int_equal(ev(&s, VSS_EVENT_POST_SNAPSHOT, &set_a, 0), SEQ_RUN);
        assert_int_equal(ev(&s, VSS_EVENT_BACKUP_COMPLETE, &set_a, 0), SEQ_RUN);
        assert_int_equal(ev(&s, VSS_EVENT_BACKUP_SHUTDOWN, &set_a, 0), SEQ_RUN);
        assert_int_equal(s.phase, SEQ_IDLE);
}

static void test_thaw_of_another_set_does_not_cancel(void **state)
{
        struct writer_seq s;

        to_frozen(&s, &set_a);
        assert_int_equal(ev(&s, VSS_EVENT_THAW, &set_b, 2000 * MS), SEQ_RUN);
        assert_true(writer_seq_deadline_passed(&s, 1000 * MS + WINDOW));
        assert_int_equal(ev(&s, VSS_EVENT_ABORT, &set_b, 2000 * MS), SEQ_RUN);
        assert_true(writer_seq_holds(&s));
        assert_int_equal(writer_seq_deadline(&s), 1000 * MS + WINDOW);
}

static void test_deadline_then_late_events(void **state)
{
        struct writer_seq s;
        enum vss_abort_reason why;
        vss_hresult f;
        vss_id got;

        to_frozen(&s, &set_a);
        assert_true(writer_seq_deadline_passed(&s, 5000 * MS));
        assert_true(writer_seq_abort_local(&s, VSS_ABORT_FREEZE_DEADLINE, &got));
        assert_true(vss_id_equal(&got, &set_a));
        assert_false(writer_seq_holds(&s));
        assert_false(writer_seq_deadline_passed(&s, 99999 * MS));
        assert_true(writer_seq_was_aborted(&s, &set_a, &why));
        assert_int_equal(why, VSS_ABORT_FREEZE_DEADLINE);
        /* Only once. */
        assert_false(writer_seq_abort_local(&s, VSS_ABORT_FREEZE_DEADLINE, NULL));

        /* A late Thaw: answered as timed out, handler not run. */
        assert_int_equal(writer_seq_event(&s, VSS_EVENT_THAW, &set_a, 6000 * MS, WINDOW, &f), SEQ_ANSWER_FAILED);
        assert_int_equal(f, VSS_E_WRITERERROR_TIMEOUT);
        assert_int_equal(writer_seq_event(&s, VSS_EVENT_POST_SNAPSHOT, &set_a, 6000 * MS, WINDOW, &f),
                         SEQ_ANSWER_FAILED);
        assert_int_equal(f, VSS_E_WRITERERROR_TIMEOUT);
        /* vssd's Aborts (its freeze timer, then the end of the set): answered, not run again. */
        assert_int_equal(ev(&s, VSS_EVENT_ABORT, &set_a, 8000 * MS), SEQ_ANSWER_OK);
        assert_int_equal(ev(&s, VSS_EVENT_ABORT, &set_a, 8001 * MS), SEQ_ANSWER_OK);
        /* Shutdown still runs: it ends the session, not the set. */
        assert_int_equal(ev(&s, VSS_EVENT_BACKUP_SHUTDOWN, &set_a, 9000 * MS), SEQ_RUN);

        /* The next set starts clean, and a stray Abort of the old one does not touch it. */
        assert_int_equal(ev(&s, VSS_EVENT_PREPARE_BACKUP, &set_b, 10000 * MS), SEQ_RUN);
        assert_int_equal(ev(&s, VSS_EVENT_PREPARE_SNAPSHOT, &set_b, 10000 * MS), SEQ_RUN);
        assert_int_equal(ev(&s, VSS_EVENT_FREEZE, &set_b, 10000 * MS), SEQ_RUN);
        assert_true(writer_seq_holds(&s));
        assert_int_equal(writer_seq_deadline(&s), 10000 * MS + WINDOW);
        assert_int_equal(ev(&s, VSS_EVENT_ABORT, &set_a, 10001 * MS), SEQ_ANSWER_OK);
        assert_true(writer_seq_holds(&s));
        assert_int_equal(ev(&s, VSS_EVENT_THAW, &set_b, 10002 * MS), SEQ_RUN);
}

static void test_abort_from_vssd_once(void **state)
{
        struct writer_seq s;

        to_frozen(&s, &set_a);
        assert_int_equal(ev(&s, VSS_EVENT_ABORT, &set_a, 2000 * MS), SEQ_RUN);
        assert_false(writer_seq_holds(&s));
        assert_int_equal(writer_seq_deadline(&s), UINT64_MAX);
        assert_false(writer_seq_deadline_passed(&s, 99999 * MS));
        assert_int_equal(ev(&s, VSS_EVENT_ABORT, &set_a, 2001 * MS), SEQ_ANSWER_OK);
        /* Neither the deadline nor a lost connection aborts it again. */
        assert_false(writer_seq_abort_local(&s, VSS_ABORT_CONNECTION_LOST, NULL));
        assert_false(writer_seq_abort_local(&s, VSS_ABORT_FREEZE_DEADLINE, NULL));
        /* An Abort without a set id is about what is held; with nothing held it runs. */
        to_frozen(&s, &set_b);
        assert_int_equal(ev(&s, VSS_EVENT_ABORT, NULL, 0), SEQ_RUN);
        assert_int_equal(ev(&s, VSS_EVENT_ABORT, &set_b, 0), SEQ_ANSWER_OK);
}

static void test_abort_after_thaw(void **state)
{
        struct writer_seq s;

        /* AbortBackup after DoSnapshotSet: the writer is thawed, Abort still runs once. */
        to_frozen(&s, &set_a);
        assert_int_equal(ev(&s, VSS_EVENT_THAW, &set_a, 2000 * MS), SEQ_RUN);
        assert_false(writer_seq_abort_local(&s, VSS_ABORT_CONNECTION_LOST, NULL));
        assert_int_equal(ev(&s, VSS_EVENT_ABORT, &set_a, 3000 * MS), SEQ_RUN);
        assert_int_equal(ev(&s, VSS_EVENT_ABORT, &set_a, 3000 * MS), SEQ_ANSWER_OK);
}

static void test_connection_lost(void **state)
{
        struct writer_seq s;

        /* Before PrepareForSnapshot nothing is held. */
        writer_seq_init(&s);
        assert_false(writer_seq_abort_local(&s, VSS_ABORT_CONNECTION_LOST, NULL));
        assert_int_equal(ev(&s, VSS_EVENT_PREPARE_BACKUP, &set_a, 0), SEQ_RUN);
        assert_false(writer_seq_abort_local(&s, VSS_ABORT_CONNECTION_LOST, NULL));
        /* From PrepareForSnapshot on, it is. */
        assert_int_equal(ev(&s, VSS_EVENT_PREPARE_SNAPSHOT, &set_a, 0), SEQ_RUN);
        assert_true(writer_seq_abort_local(&s, VSS_ABORT_CONNECTION_LOST, NULL));
        assert_false(writer_seq_abort_local(&s, VSS_ABORT_CONNECTION_LOST, NULL));
        /* Frozen. */
        to_frozen(&s, &set_b);
        assert_true(writer_seq_abort_local(&s, VSS_ABORT_CONNECTION_LOST, NULL));
        assert_false(writer_seq_deadline_passed(&s, 99999 * MS));
}

static void test_sequence_ended_without_thaw(void **state)
{
        struct writer_seq s;

        to_frozen(&s, &set_a);
        /* A new set while A is held: A must be aborted first. */
        assert_true(writer_seq_must_abort_before(&s, VSS_EVENT_PREPARE_BACKUP, &set_b));
        assert_true(writer_seq_must_abort_before(&s, VSS_EVENT_FREEZE, &set_b));
        assert_false(writer_seq_must_abort_before(&s, VSS_EVENT_FREEZE, &set_a));
        assert_false(writer_seq_must_abort_before(&s, VSS_EVENT_THAW, &set_b));
        assert_true(writer_seq_must_abort_before(&s, VSS_EVENT_BACKUP_SHUTDOWN, &set_a));
        assert_true(writer_seq_must_abort_before(&s, VSS_EVENT_BACKUP_SHUTDOWN, NULL));
        assert_true(writer_seq_abort_local(&s, VSS_ABORT_SEQUENCE_ENDED, NULL));
        assert_false(writer_seq_must_abort_before(&s, VSS_EVENT_BACKUP_SHUTDOWN, &set_a));
        /* Thawed: nothing to abort. */
        to_frozen(&s, &set_b);
        assert_int_equal(ev(&s, VSS_EVENT_THAW, &set_b, 0), SEQ_RUN);
        assert_false(writer_seq_must_abort_before(&s, VSS_EVENT_BACKUP_SHUTDOWN, &set_b));
        assert_false(writer_seq_must_abort_before(&s, VSS_EVENT_PREPARE_BACKUP, &set_a));
}

static void test_late_freeze_for_aborted_set(void **state)
{
        struct writer_seq s;
        vss_hresult f;

        /* vssd aborted the set at PrepareForSnapshot; a Freeze for it must not freeze again. */
        writer_seq_init(&s);
        assert_int_equal(ev(&s, VSS_EVENT_PREPARE_SNAPSHOT, &set_a, 0), SEQ_RUN);
        assert_true(writer_seq_abort_local(&s, VSS_ABORT_CONNECTION_LOST, NULL));
        assert_int_equal(writer_seq_event(&s, VSS_EVENT_FREEZE, &set_a, 0, WINDOW, &f), SEQ_ANSWER_FAILED);
        assert_int_equal(f, VSS_E_WRITERERROR_NONRETRYABLE);
        assert_int_equal(writer_seq_deadline(&s), UINT64_MAX);
}

static void test_ring_keeps_recent_sets(void **state)
{
        struct writer_seq s;
        vss_id ids[SEQ_ABORTED_KEEP + 2];

        writer_seq_init(&s);
        for (size_t i = 0; i < ARRAY_SIZE(ids); i++) {
                vss_id_generate(&ids[i]);
                assert_int_equal(ev(&s, VSS_EVENT_FREEZE, &ids[i], 0), SEQ_RUN);
                assert_int_equal(ev(&s, VSS_EVENT_ABORT, &ids[i], 0), SEQ_RUN);
        }
        for (size_t i = 2; i < ARRAY_SIZE(ids); i++)
                assert_true(writer_seq_was_aborted(&s, &ids[i], NULL));
        assert_false(writer_seq_was_aborted(&s, &ids[0], NULL));
        assert_false(writer_seq_was_aborted(&s, &VSS_ID_NULL, NULL));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_deadline_armed_by_freeze),
                cmocka_unit_test(test_thaw_cancels),
                cmocka_unit_test(test_thaw_of_another_set_does_not_cancel),
                cmocka_unit_test(test_deadline_then_late_events),
                cmocka_unit_test(test_abort_from_vssd_once),
                cmocka_unit_test(test_abort_after_thaw),
                cmocka_unit_test(test_connection_lost),
                cmocka_unit_test(test_sequence_ended_without_thaw),
                cmocka_unit_test(test_late_freeze_for_aborted_set),
                cmocka_unit_test(test_ring_keeps_recent_sets),
        };

        return cmocka_run_group_tests(tests, setup, NULL);
}
