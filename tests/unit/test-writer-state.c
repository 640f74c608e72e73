/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The writer state machine (src/basic/writer-state.c) against every row of the
 * vss-facts 3.2 table, and the state/event names of src/basic/names.c that
 * `vssadmin list writers` prints.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "basic/writer-state.h"
#include "vss/vss.h"

struct row {
        enum vss_event event;
        enum vss_writer_state entry;
        enum vss_writer_state on_success;
        enum vss_writer_state on_failure;
};

/* vss-facts 3.2, one row per event with its documented entry state. */
static const struct row table[] = {
        { VSS_EVENT_PREPARE_BACKUP, VSS_WS_STABLE, VSS_WS_STABLE, VSS_WS_FAILED_AT_PREPARE_BACKUP },
        { VSS_EVENT_PREPARE_SNAPSHOT, VSS_WS_STABLE, VSS_WS_WAITING_FOR_FREEZE, VSS_WS_FAILED_AT_PREPARE_SNAPSHOT },
        { VSS_EVENT_FREEZE, VSS_WS_WAITING_FOR_FREEZE, VSS_WS_WAITING_FOR_THAW, VSS_WS_FAILED_AT_FREEZE },
        { VSS_EVENT_THAW, VSS_WS_WAITING_FOR_THAW, VSS_WS_WAITING_FOR_POST_SNAPSHOT, VSS_WS_FAILED_AT_THAW },
        { VSS_EVENT_POST_SNAPSHOT, VSS_WS_WAITING_FOR_POST_SNAPSHOT, VSS_WS_WAITING_FOR_BACKUP_COMPLETE,
          VSS_WS_FAILED_AT_POST_SNAPSHOT },
        { VSS_EVENT_BACKUP_COMPLETE, VSS_WS_WAITING_FOR_BACKUP_COMPLETE, VSS_WS_STABLE,
          VSS_WS_FAILED_AT_BACKUP_COMPLETE },
};

static void expect_after(enum vss_writer_state cur, enum vss_event ev, bool ok, enum vss_writer_state want)
{
        enum vss_writer_state got = writer_state_after(cur, ev, ok);

        if (got != want)
                fail_msg("%s + %s(%s): expected %s, got %s", vss_writer_state_name(cur), vss_event_name(ev),
                         ok ? "ok" : "fail", vss_writer_state_name(want), vss_writer_state_name(got));
}

static void test_table_rows(void **state)
{
        for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
                expect_after(table[i].entry, table[i].event, true, table[i].on_success);
                expect_after(table[i].entry, table[i].event, false, table[i].on_failure);
                assert_int_equal(writer_state_failed_at(table[i].event), table[i].on_failure);
        }
}

static void test_full_sequence(void **state)
{
        static const enum vss_event seq[] = {
                VSS_EVENT_IDENTIFY,     VSS_EVENT_PREPARE_BACKUP, VSS_EVENT_PREPARE_SNAPSHOT,
                VSS_EVENT_FREEZE,       VSS_EVENT_THAW,           VSS_EVENT_POST_SNAPSHOT,
                VSS_EVENT_BACKUP_COMPLETE, VSS_EVENT_BACKUP_SHUTDOWN,
        };
        static const enum vss_writer_state want[] = {
                VSS_WS_STABLE, VSS_WS_STABLE, VSS_WS_WAITING_FOR_FREEZE, VSS_WS_WAITING_FOR_THAW,
                VSS_WS_WAITING_FOR_POST_SNAPSHOT, VSS_WS_WAITING_FOR_BACKUP_COMPLETE, VSS_WS_STABLE, VSS_WS_STABLE,
        };
        enum vss_writer_state s = VSS_WS_STABLE;

        for (size_t i = 0; i < sizeof(seq) / sizeof(seq[0]); i++) {
                expect_after(s, seq[i], true, want[i]);
                s = writer_state_after(s, seq[i], true);
        }
}

static void test_identify(void **state)
{
        /* Identify: any state -> unchanged on success, FAILED_AT_IDENTIFY on failure. */
        for (int s = VSS_WS_STABLE; s < VSS_WS_COUNT; s++) {
                expect_after(s, VSS_EVENT_IDENTIFY, true, s);
                expect_after(s, VSS_EVENT_IDENTIFY, false, VSS_WS_FAILED_AT_IDENTIFY);
        }
        /* A writer never seen before is Stable once it has answered Identify. */
        expect_after(VSS_WS_UNKNOWN, VSS_EVENT_IDENTIFY, true, VSS_WS_STABLE);
        assert_int_equal(writer_state_failed_at(VSS_EVENT_IDENTIFY), VSS_WS_FAILED_AT_IDENTIFY);
}

static void test_backup_shutdown(void **state)
{
        /* BackupShutdown: any -> unchanged; failure -> FAILED_AT_BACKUPSHUTDOWN (15). */
        for (int s = VSS_WS_STABLE; s < VSS_WS_COUNT; s++) {
                expect_after(s, VSS_EVENT_BACKUP_SHUTDOWN, true, s);
                expect_after(s, VSS_EVENT_BACKUP_SHUTDOWN, false, VSS_WS_FAILED_AT_BACKUPSHUTDOWN);
        }
        assert_int_equal(writer_state_failed_at(VSS_EVENT_BACKUP_SHUTDOWN), VSS_WS_FAILED_AT_BACKUPSHUTDOWN);
}

static void test_abort(void **state)
{
        /* Abort returns a writer in the middle of a sequence to normal operation... */
        static const enum vss_writer_state in_seq[] = {
                VSS_WS_STABLE, VSS_WS_WAITING_FOR_FREEZE, VSS_WS_WAITING_FOR_THAW,
                VSS_WS_WAITING_FOR_POST_SNAPSHOT, VSS_WS_WAITING_FOR_BACKUP_COMPLETE,
        };
        for (size_t i = 0; i < sizeof(in_seq) / sizeof(in_seq[0]); i++) {
                expect_after(in_seq[i], VSS_EVENT_ABORT, true, VSS_WS_STABLE);
                /* ...and cannot itself fail. */
                expect_after(in_seq[i], VSS_EVENT_ABORT, false, VSS_WS_STABLE);
        }
        /* A failed writer keeps its failure through Abort, so the admin sees why the backup failed. */
        for (int s = VSS_WS_FAILED_AT_IDENTIFY; s < VSS_WS_COUNT; s++) {
                expect_after(s, VSS_EVENT_ABORT, true, s);
                expect_after(s, VSS_EVENT_ABORT, false, s);
        }
        assert_int_equal(writer_state_failed_at(VSS_EVENT_ABORT), VSS_WS_UNKNOWN);
}

static void test_freeze_timer_expiry(void **state)
{
        /* Freeze timer expiry in WAITING_FOR_THAW: FAILED_AT_FREEZE (KB 915331 row). */
        expect_after(VSS_WS_WAITING_FOR_THAW, VSS_EVENT_FREEZE, false, VSS_WS_FAILED_AT_FREEZE);
        /* ...followed by the automatic Abort, which keeps the failure. */
        expect_after(VSS_WS_FAILED_AT_FREEZE, VSS_EVENT_ABORT, true, VSS_WS_FAILED_AT_FREEZE);
}

static void test_failure_persists_until_next_sequence(void **state)
{
        for (int s = VSS_WS_FAILED_AT_IDENTIFY; s < VSS_WS_COUNT; s++) {
                /* Identify and BackupShutdown leave the failure visible... */
                expect_after(s, VSS_EVENT_IDENTIFY, true, s);
                expect_after(s, VSS_EVENT_BACKUP_SHUTDOWN, true, s);
                /* ...and the next sequence's PrepareForBackup starts clean. */
                expect_after(s, VSS_EVENT_PREPARE_BACKUP, true, VSS_WS_STABLE);
        }
}

static void test_restore(void **state)
{
        expect_after(VSS_WS_STABLE, VSS_EVENT_PRE_RESTORE, true, VSS_WS_STABLE);
        expect_after(VSS_WS_STABLE, VSS_EVENT_PRE_RESTORE, false, VSS_WS_FAILED_AT_PRE_RESTORE);
        expect_after(VSS_WS_STABLE, VSS_EVENT_POST_RESTORE, true, VSS_WS_STABLE);
        expect_after(VSS_WS_STABLE, VSS_EVENT_POST_RESTORE, false, VSS_WS_FAILED_AT_POST_RESTORE);
        assert_int_equal(writer_state_failed_at(VSS_EVENT_PRE_RESTORE), VSS_WS_FAILED_AT_PRE_RESTORE);
        assert_int_equal(writer_state_failed_at(VSS_EVENT_POST_RESTORE), VSS_WS_FAILED_AT_POST_RESTORE);
}

static void test_is_failed(void **state)
{
        for (int s = 0; s < VSS_WS_COUNT; s++)
                assert_int_equal(writer_state_is_failed(s), s >= 6 && s <= 15);
        assert_false(writer_state_is_failed(VSS_WS_COUNT));
}

static void test_enum_values(void **state)
{
        /* vss-facts 1.1: the bracketed number printed is the raw enum value. */
        assert_int_equal(VSS_WS_UNKNOWN, 0);
        assert_int_equal(VSS_WS_STABLE, 1);
        assert_int_equal(VSS_WS_WAITING_FOR_FREEZE, 2);
        assert_int_equal(VSS_WS_WAITING_FOR_THAW, 3);
        assert_int_equal(VSS_WS_WAITING_FOR_POST_SNAPSHOT, 4);
        assert_int_equal(VSS_WS_WAITING_FOR_BACKUP_COMPLETE, 5);
        assert_int_equal(VSS_WS_FAILED_AT_IDENTIFY, 6);
        assert_int_equal(VSS_WS_FAILED_AT_PREPARE_BACKUP, 7);
        assert_int_equal(VSS_WS_FAILED_AT_PREPARE_SNAPSHOT, 8);
        assert_int_equal(VSS_WS_FAILED_AT_FREEZE, 9);
        assert_int_equal(VSS_WS_FAILED_AT_THAW, 10);
        assert_int_equal(VSS_WS_FAILED_AT_POST_SNAPSHOT, 11);
        assert_int_equal(VSS_WS_FAILED_AT_BACKUP_COMPLETE, 12);
        assert_int_equal(VSS_WS_FAILED_AT_PRE_RESTORE, 13);
        assert_int_equal(VSS_WS_FAILED_AT_POST_RESTORE, 14);
        assert_int_equal(VSS_WS_FAILED_AT_BACKUPSHUTDOWN, 15);
        assert_int_equal(VSS_WS_COUNT, 16);
}

static void test_state_labels(void **state)
{
        /* ARCHITECTURE.md "State words", exactly as `vssadmin list writers` prints them. */
        static const char *const labels[VSS_WS_COUNT] = {
                "[0] Unknown",   "[1] Stable",    "[2] Waiting for freeze", "[3] Waiting for thaw",
                "[4] Waiting for post snapshot", "[5] Waiting for completion",
                "[6] Failed",    "[7] Failed",    "[8] Failed",  "[9] Failed",  "[10] Failed",
                "[11] Failed",   "[12] Failed",   "[13] Failed", "[14] Failed", "[15] Failed",
        };
        static const char *const names[VSS_WS_COUNT] = {
                "VSS_WS_UNKNOWN",
                "VSS_WS_STABLE",
                "VSS_WS_WAITING_FOR_FREEZE",
                "VSS_WS_WAITING_FOR_THAW",
                "VSS_WS_WAITING_FOR_POST_SNAPSHOT",
                "VSS_WS_WAITING_FOR_BACKUP_COMPLETE",
                "VSS_WS_FAILED_AT_IDENTIFY",
                "VSS_WS_FAILED_AT_PREPARE_BACKUP",
                "VSS_WS_FAILED_AT_PREPARE_SNAPSHOT",
                "VSS_WS_FAILED_AT_FREEZE",
                "VSS_WS_FAILED_AT_THAW",
                "VSS_WS_FAILED_AT_POST_SNAPSHOT",
                "VSS_WS_FAILED_AT_BACKUP_COMPLETE",
                "VSS_WS_FAILED_AT_PRE_RESTORE",
                "VSS_WS_FAILED_AT_POST_RESTORE",
                "VSS_WS_FAILED_AT_BACKUPSHUTDOWN",
        };

        for (int s = 0; s < VSS_WS_COUNT; s++) {
                assert_string_equal(vss_writer_state_label(s), labels[s]);
                assert_string_equal(vss_writer_state_name(s), names[s]);
        }
        /* Out of range never crashes and never invents a state. */
        assert_string_equal(vss_writer_state_label(VSS_WS_COUNT), "[0] Unknown");
        assert_string_equal(vss_writer_state_label((enum vss_writer_state)-1), "[0] Unknown");
        assert_string_equal(vss_writer_state_name(VSS_WS_COUNT), "VSS_WS_UNKNOWN");
        assert_string_equal(vss_writer_state_name((enum vss_writer_state)1000), "VSS_WS_UNKNOWN");
}

static void test_event_names(void **state)
{
        static const char *const names[_VSS_EVENT_MAX] = {
                [VSS_EVENT_IDENTIFY] = "Identify",
                [VSS_EVENT_PREPARE_BACKUP] = "PrepareForBackup",
                [VSS_EVENT_PREPARE_SNAPSHOT] = "PrepareForSnapshot",
                [VSS_EVENT_FREEZE] = "Freeze",
                [VSS_EVENT_THAW] = "Thaw",
                [VSS_EVENT_POST_SNAPSHOT] = "PostSnapshot",
                [VSS_EVENT_BACKUP_COMPLETE] = "BackupComplete",
                [VSS_EVENT_ABORT] = "Abort",
                [VSS_EVENT_BACKUP_SHUTDOWN] = "BackupShutdown",
                [VSS_EVENT_PRE_RESTORE] = "PreRestore",
                [VSS_EVENT_POST_RESTORE] = "PostRestore",
        };

        for (int e = 0; e < _VSS_EVENT_MAX; e++) {
                assert_string_equal(vss_event_name(e), names[e]);
                assert_int_equal(vss_event_from_name(names[e]), e);
        }
        assert_int_equal(vss_event_from_name(NULL), -1);
        assert_int_equal(vss_event_from_name(""), -1);
        assert_int_equal(vss_event_from_name("freeze"), -1);
        assert_int_equal(vss_event_from_name("Freeze "), -1);
        assert_int_equal(vss_event_from_name("Unknown"), -1);
        assert_string_equal(vss_event_name(_VSS_EVENT_MAX), "Unknown");
        assert_string_equal(vss_event_name((enum vss_event)-1), "Unknown");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_table_rows),
                cmocka_unit_test(test_full_sequence),
                cmocka_unit_test(test_identify),
                cmocka_unit_test(test_backup_shutdown),
                cmocka_unit_test(test_abort),
                cmocka_unit_test(test_freeze_timer_expiry),
                cmocka_unit_test(test_failure_persists_until_next_sequence),
                cmocka_unit_test(test_restore),
                cmocka_unit_test(test_is_failed),
                cmocka_unit_test(test_enum_values),
                cmocka_unit_test(test_state_labels),
                cmocka_unit_test(test_event_names),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
