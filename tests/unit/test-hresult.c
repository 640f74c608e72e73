/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The error catalogue against vss-facts section 2.  The expected values are
 * written here as literal hex numbers (not the VSS_E_* macros), so a wrong
 * value in include/vss/vss.h is caught as well as a wrong table entry.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <cmocka.h>

#include "vss/vss.h"

struct expected {
        uint32_t value;
        const char *name;
};

/* vss-facts section 2, every row. */
static const struct expected facts[] = {
        { 0x80042301, "VSS_E_BAD_STATE" },
        { 0x80042302, "VSS_E_UNEXPECTED" },
        { 0x80042303, "VSS_E_PROVIDER_ALREADY_REGISTERED" },
        { 0x80042304, "VSS_E_PROVIDER_NOT_REGISTERED" },
        { 0x80042306, "VSS_E_PROVIDER_VETO" },
        { 0x80042307, "VSS_E_PROVIDER_IN_USE" },
        { 0x80042308, "VSS_E_OBJECT_NOT_FOUND" },
        { 0x00042309, "VSS_S_ASYNC_PENDING" },
        { 0x0004230A, "VSS_S_ASYNC_FINISHED" },
        { 0x0004230B, "VSS_S_ASYNC_CANCELLED" },
        { 0x8004230C, "VSS_E_VOLUME_NOT_SUPPORTED" },
        { 0x8004230D, "VSS_E_OBJECT_ALREADY_EXISTS" },
        { 0x8004230E, "VSS_E_VOLUME_NOT_SUPPORTED_BY_PROVIDER" },
        { 0x8004230F, "VSS_E_UNEXPECTED_PROVIDER_ERROR" },
        { 0x80042310, "VSS_E_CORRUPT_XML_DOCUMENT" },
        { 0x80042311, "VSS_E_INVALID_XML_DOCUMENT" },
        { 0x80042312, "VSS_E_MAXIMUM_NUMBER_OF_VOLUMES_REACHED" },
        { 0x80042313, "VSS_E_FLUSH_WRITES_TIMEOUT" },
        { 0x80042314, "VSS_E_HOLD_WRITES_TIMEOUT" },
        { 0x80042315, "VSS_E_UNEXPECTED_WRITER_ERROR" },
        { 0x80042316, "VSS_E_SNAPSHOT_SET_IN_PROGRESS" },
        { 0x80042317, "VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED" },
        { 0x80042318, "VSS_E_WRITER_INFRASTRUCTURE" },
        { 0x80042319, "VSS_E_WRITER_NOT_RESPONDING" },
        { 0x8004231A, "VSS_E_WRITER_ALREADY_SUBSCRIBED" },
        { 0x8004231B, "VSS_E_UNSUPPORTED_CONTEXT" },
        { 0x8004231D, "VSS_E_VOLUME_IN_USE" },
        { 0x8004231E, "VSS_E_MAXIMUM_DIFFAREA_ASSOCIATIONS_REACHED" },
        { 0x8004231F, "VSS_E_INSUFFICIENT_STORAGE" },
        { 0x80042320, "VSS_E_NO_SNAPSHOTS_IMPORTED" },
        { 0x00042321, "VSS_S_SOME_SNAPSHOTS_NOT_IMPORTED" },
        { 0x80042321, "VSS_E_SOME_SNAPSHOTS_NOT_IMPORTED" },
        { 0x80042322, "VSS_E_MAXIMUM_NUMBER_OF_REMOTE_MACHINES_REACHED" },
        { 0x80042323, "VSS_E_REMOTE_SERVER_UNAVAILABLE" },
        { 0x80042324, "VSS_E_REMOTE_SERVER_UNSUPPORTED" },
        { 0x80042325, "VSS_E_REVERT_IN_PROGRESS" },
        { 0x80042326, "VSS_E_REVERT_VOLUME_LOST" },
        { 0x80042327, "VSS_E_REBOOT_REQUIRED" },
        { 0x80042328, "VSS_E_TRANSACTION_FREEZE_TIMEOUT" },
        { 0x80042329, "VSS_E_TRANSACTION_THAW_TIMEOUT" },
        { 0x8004232A, "VSS_E_UNSELECTED_VOLUME" },
        { 0x8004232B, "VSS_E_SNAPSHOT_NOT_IN_SET" },
        { 0x8004232C, "VSS_E_NESTED_VOLUME_LIMIT" },
        { 0x8004232D, "VSS_E_VOLUME_NOT_LOCAL" },
        { 0x8004232E, "VSS_E_CLUSTER_TIMEOUT" },
        { 0x8004232F, "VSS_E_NOT_SUPPORTED" },
        { 0x80042336, "VSS_E_WRITERERROR_PARTIAL_FAILURE" },
        { 0x800423F0, "VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT" },
        { 0x800423F1, "VSS_E_WRITERERROR_OUTOFRESOURCES" },
        { 0x800423F2, "VSS_E_WRITERERROR_TIMEOUT" },
        { 0x800423F3, "VSS_E_WRITERERROR_RETRYABLE" },
        { 0x800423F4, "VSS_E_WRITERERROR_NONRETRYABLE" },
        { 0x800423F5, "VSS_E_WRITERERROR_RECOVERY_FAILED" },
        { 0x800423F6, "VSS_E_BREAK_REVERT_ID_FAILED" },
        { 0x800423F7, "VSS_E_LEGACY_PROVIDER" },
        { 0x800423F8, "VSS_E_MISSING_DISK" },
        { 0x800423F9, "VSS_E_MISSING_HIDDEN_VOLUME" },
        { 0x800423FA, "VSS_E_MISSING_VOLUME" },
        { 0x800423FB, "VSS_E_AUTORECOVERY_FAILED" },
        { 0x800423FC, "VSS_E_DYNAMIC_DISK_ERROR" },
        { 0x800423FD, "VSS_E_NONTRANSPORTABLE_BCD" },
        { 0x800423FE, "VSS_E_CANNOT_REVERT_DISKID" },
        { 0x800423FF, "VSS_E_RESYNC_IN_PROGRESS" },
        { 0x80042400, "VSS_E_CLUSTER_ERROR" },
        { 0x80042401, "VSS_E_ASRERROR_DISK_ASSIGNMENT_FAILED" },
        { 0x80042402, "VSS_E_ASRERROR_DISK_RECREATION_FAILED" },
        { 0x80042403, "VSS_E_ASRERROR_NO_ARCPATH" },
        { 0x80042404, "VSS_E_ASRERROR_MISSING_DYNDISK" },
        { 0x80042405, "VSS_E_ASRERROR_SHARED_CRIDISK" },
        { 0x80042406, "VSS_E_ASRERROR_DATADISK_RDISK0" },
        { 0x80042407, "VSS_E_ASRERROR_RDISK0_TOOSMALL" },
        { 0x80042408, "VSS_E_ASRERROR_CRITICAL_DISKS_TOO_SMALL" },
        { 0x80042409, "VSS_E_WRITER_STATUS_NOT_AVAILABLE" },
        { 0x8004240A, "VSS_E_ASRERROR_DYNAMIC_VHD_NOT_SUPPORTED" },
        { 0x80042411, "VSS_E_CRITICAL_VOLUME_ON_INVALID_DISK" },
        { 0x80042412, "VSS_E_ASRERROR_RDISK_FOR_SYSTEM_DISK_NOT_FOUND" },
        { 0x80042413, "VSS_E_ASRERROR_NO_PHYSICAL_DISK_AVAILABLE" },
        { 0x80042414, "VSS_E_ASRERROR_FIXED_PHYSICAL_DISK_AVAILABLE_AFTER_DISK_EXCLUSION" },
        { 0x80042415, "VSS_E_ASRERROR_CRITICAL_DISK_CANNOT_BE_EXCLUDED" },
        { 0x80042416, "VSS_E_ASRERROR_SYSTEM_PARTITION_HIDDEN" },
        { 0x80042417, "VSS_E_FSS_TIMEOUT" },
};

#define N_FACTS (sizeof(facts) / sizeof(facts[0]))

static void test_every_fact_present(void **state)
{
        for (size_t i = 0; i < N_FACTS; i++) {
                const struct vss_hresult_info *info = vss_hresult_lookup(VSS_HR(facts[i].value));

                if (!info)
                        fail_msg("0x%08X %s is missing from the catalogue", facts[i].value, facts[i].name);
                if (strcmp(info->name, facts[i].name) != 0)
                        fail_msg("0x%08X: expected name %s, catalogue says %s", facts[i].value, facts[i].name,
                                 info->name);
                assert_int_equal((uint32_t)info->value, facts[i].value);
                assert_string_equal(vss_hresult_name(VSS_HR(facts[i].value)), facts[i].name);
                assert_non_null(info->message);
                assert_true(strlen(info->message) > 0);
                assert_non_null(info->remedy);
                assert_true(strlen(info->remedy) > 0);
        }
}

/* Section 2 leaves these unassigned: nothing may claim them. */
static void test_unassigned_absent(void **state)
{
        static const uint32_t holes[] = { 0x80042305, 0x8004231C, 0x80042330, 0x80042335 };

        for (size_t i = 0; i < sizeof(holes) / sizeof(holes[0]); i++) {
                if (vss_hresult_lookup(VSS_HR(holes[i])))
                        fail_msg("0x%08X is unassigned in vsserror.h but the catalogue has %s", holes[i],
                                 vss_hresult_name(VSS_HR(holes[i])));
                assert_string_equal(vss_hresult_name(VSS_HR(holes[i])), "UNKNOWN_HRESULT");
                assert_non_null(vss_hresult_message(VSS_HR(holes[i])));
        }
}

static void test_table_unique(void **state)
{
        const struct vss_hresult_info *a, *b;
        size_t n = 0;

        for (size_t i = 0; (a = vss_hresult_table(i)); i++, n++) {
                assert_non_null(a->name);
                assert_non_null(a->message);
                assert_non_null(a->remedy);
                for (size_t j = i + 1; (b = vss_hresult_table(j)); j++) {
                        if (a->value == b->value)
                                fail_msg("value 0x%08X appears twice (%s, %s)", (uint32_t)a->value, a->name,
                                         b->name);
                        if (strcasecmp(a->name, b->name) == 0)
                                fail_msg("name %s appears twice", a->name);
                }
        }
        assert_true(n >= N_FACTS);
        assert_null(vss_hresult_table(n));
}

static void test_table_names_match_values(void **state)
{
        const struct vss_hresult_info *a;

        /* Success codes carry S_ names, failures E_ names: a mixed-up row is a typo. */
        for (size_t i = 0; (a = vss_hresult_table(i)); i++) {
                if (VSS_SUCCEEDED(a->value))
                        assert_true(strstr(a->name, "S_") != NULL);
                else if (strstr(a->name, "_E_") == NULL && strncmp(a->name, "E_", 2) != 0)
                        fail_msg("failure 0x%08X has a non-error name %s", (uint32_t)a->value, a->name);
                assert_ptr_equal(vss_hresult_lookup(a->value), a);
        }
}

static void expect_parse(const char *text, uint32_t value)
{
        const struct vss_hresult_info *info = vss_hresult_parse(text);

        if (!info)
                fail_msg("vss_hresult_parse(\"%s\") returned NULL, expected 0x%08X", text, value);
        if ((uint32_t)info->value != value)
                fail_msg("vss_hresult_parse(\"%s\") = 0x%08X, expected 0x%08X", text, (uint32_t)info->value,
                         value);
}

static void test_parse(void **state)
{
        expect_parse("0x80042316", 0x80042316);
        expect_parse("80042316", 0x80042316);
        expect_parse("0X80042316", 0x80042316);
        expect_parse("0x800423f2", 0x800423F2);
        expect_parse("800423f2", 0x800423F2);
        expect_parse("800423F2", 0x800423F2);
        expect_parse("0x8004231F", 0x8004231F);
        expect_parse("VSS_E_INSUFFICIENT_STORAGE", 0x8004231F);
        expect_parse("vss_e_insufficient_storage", 0x8004231F);
        expect_parse("Vss_E_Snapshot_Set_In_Progress", 0x80042316);
        expect_parse("VSS_E_WRITERERROR_NONRETRYABLE", 0x800423F4);
        expect_parse("0x00042309", 0x00042309);
        expect_parse("42309", 0x00042309);

        /* Every catalogue entry round-trips through its name and its hex. */
        for (size_t i = 0; i < N_FACTS; i++) {
                char hex[16];

                expect_parse(facts[i].name, facts[i].value);
                snprintf(hex, sizeof(hex), "0x%08X", facts[i].value);
                expect_parse(hex, facts[i].value);
                snprintf(hex, sizeof(hex), "%08x", facts[i].value);
                expect_parse(hex, facts[i].value);
        }
}

static void test_parse_garbage(void **state)
{
        static const char *const bad[] = {
                "", "0x", "x80042316", "0x80042316 ", " 0x80042316", "0x800423160", "0x8004231G",
                "800423F2h", "-0x80042316", "+80042316", "VSS_E_NO_SUCH_THING", "VSS_E_BAD_STATE_",
                "0x80042305", "80042305", "hello", "0x0x80042316", "0x-1", "12345678901234567890",
        };

        assert_null(vss_hresult_parse(NULL));
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                if (vss_hresult_parse(bad[i]))
                        fail_msg("vss_hresult_parse(\"%s\") accepted garbage", bad[i]);
}

static void test_writer_error_labels(void **state)
{
        /* vss-facts 1.2 */
        assert_string_equal(vss_writer_error_label(VSS_HR(0)), "No error");
        assert_string_equal(vss_writer_error_label(VSS_HR(0x800423F0)), "Inconsistent shadow copy");
        assert_string_equal(vss_writer_error_label(VSS_HR(0x800423F1)), "Out of resources");
        assert_string_equal(vss_writer_error_label(VSS_HR(0x800423F2)), "Timed out");
        assert_string_equal(vss_writer_error_label(VSS_HR(0x800423F3)), "Retryable error");
        assert_string_equal(vss_writer_error_label(VSS_HR(0x800423F4)), "Non-retryable error");
        assert_string_equal(vss_writer_error_label(VSS_HR(0x80042319)), "Not responding");
        assert_string_equal(vss_writer_error_label(VSS_HR(0x80042301)), "Unexpected error");
        assert_string_equal(vss_writer_error_label(VSS_HR(0x80004005)), "Unexpected error");
        assert_string_equal(vss_writer_error_label(VSS_HR(0x800423F5)), "Unexpected error");
}

static void test_writer_failure_set(void **state)
{
        /* SetWriterFailure accepts exactly F0..F4. */
        for (uint32_t v = 0x800423E0; v <= 0x800423FF; v++)
                assert_int_equal(vss_hresult_is_writer_failure(VSS_HR(v)), v >= 0x800423F0 && v <= 0x800423F4);
        assert_false(vss_hresult_is_writer_failure(VSS_HR(0)));
        assert_false(vss_hresult_is_writer_failure(VSS_HR(0x80042336)));
        assert_false(vss_hresult_is_writer_failure(VSS_HR(0x80042319)));
}

static void test_macros(void **state)
{
        assert_true(VSS_FAILED(VSS_E_SNAPSHOT_SET_IN_PROGRESS));
        assert_true(VSS_SUCCEEDED(VSS_S_ASYNC_PENDING));
        assert_true(VSS_SUCCEEDED(VSS_S_OK));
        assert_int_equal((uint32_t)VSS_E_WRITERERROR_TIMEOUT, 0x800423F2);
        assert_int_equal((uint32_t)VSS_E_INSUFFICIENT_STORAGE, 0x8004231F);
        assert_int_equal((uint32_t)VSS_E_VOLUME_NOT_SUPPORTED, 0x8004230C);
        assert_int_equal((uint32_t)VSS_E_OBJECT_NOT_FOUND, 0x80042308);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_every_fact_present),
                cmocka_unit_test(test_unassigned_absent),
                cmocka_unit_test(test_table_unique),
                cmocka_unit_test(test_table_names_match_values),
                cmocka_unit_test(test_parse),
                cmocka_unit_test(test_parse_garbage),
                cmocka_unit_test(test_writer_error_labels),
                cmocka_unit_test(test_writer_failure_set),
                cmocka_unit_test(test_macros),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
