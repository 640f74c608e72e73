/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The restore enums of vss-facts 5.4 and their wire names (contracts.md section 1):
 * the values are written here as literals, so a wrong constant in vss.h is caught, and
 * every name must map back to its value.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "basic/macro.h"
#include "vss/vss.h"

static void test_restore_method(void **state)
{
        static const struct {
                int value;
                const char *name;
        } t[] = {
                { 0, "undefined" },          { 1, "restore_if_not_there" },
                { 2, "restore_if_can_replace" }, { 3, "stop_restore_start" },
                { 4, "restore_to_alternate_location" }, { 5, "restore_at_reboot" },
                { 6, "restore_at_reboot_if_cannot_replace" }, { 7, "custom" },
                { 8, "restore_stop_start" },
        };

        assert_int_equal(VSS_RME_STOP_RESTORE_START, 3);
        assert_int_equal(VSS_RME_RESTORE_STOP_START, 8);
        for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
                assert_string_equal(vss_restore_method_name(t[i].value), t[i].name);
                assert_int_equal(vss_restore_method_from_name(t[i].name), t[i].value);
        }
        assert_null(vss_restore_method_name(9));
        assert_null(vss_restore_method_name((enum vss_restore_method_type)-1));
        assert_int_equal(vss_restore_method_from_name("STOP_RESTORE_START"), -1);
        assert_int_equal(vss_restore_method_from_name(""), -1);
        assert_int_equal(vss_restore_method_from_name(NULL), -1);
}

static void test_writer_restore(void **state)
{
        assert_int_equal(VSS_WRE_ALWAYS, 3);
        assert_string_equal(vss_writer_restore_name(VSS_WRE_UNDEFINED), "undefined");
        assert_string_equal(vss_writer_restore_name(1), "never");
        assert_string_equal(vss_writer_restore_name(2), "if_replace_fails");
        assert_string_equal(vss_writer_restore_name(3), "always");
        assert_null(vss_writer_restore_name(4));
        assert_int_equal(vss_writer_restore_from_name("if_replace_fails"), 2);
        assert_int_equal(vss_writer_restore_from_name("sometimes"), -1);
}

static void test_file_restore_status(void **state)
{
        assert_int_equal(VSS_RS_FAILED, 3);
        assert_string_equal(vss_file_restore_status_name(0), "undefined");
        assert_string_equal(vss_file_restore_status_name(1), "none");
        assert_string_equal(vss_file_restore_status_name(2), "all");
        assert_string_equal(vss_file_restore_status_name(3), "failed");
        assert_null(vss_file_restore_status_name(4));
        assert_int_equal(vss_file_restore_status_from_name("all"), VSS_RS_ALL);
        assert_int_equal(vss_file_restore_status_from_name("All"), -1);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_restore_method),
                cmocka_unit_test(test_writer_restore),
                cmocka_unit_test(test_file_restore_status),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
