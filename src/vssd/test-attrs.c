/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests of attribute words, context names and writer involvement. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "vss/vss.h"
#include "vssd/attrs.h"

static void test_attributes_text(void **state)
{
        char buf[256];

        attributes_text(VSS_CTX_CLIENT_ACCESSIBLE | VSS_VOLSNAP_ATTR_DIFFERENTIAL, buf, sizeof(buf));
        assert_string_equal(buf, "Persistent, Client-accessible, No auto release, No writers, Differential");
        attributes_text(VSS_CTX_NAS_ROLLBACK | VSS_VOLSNAP_ATTR_DIFFERENTIAL, buf, sizeof(buf));
        assert_string_equal(buf, "Persistent, No auto release, No writers, Differential");
        attributes_text(VSS_VOLSNAP_ATTR_NO_AUTO_RELEASE | VSS_VOLSNAP_ATTR_DIFFERENTIAL, buf, sizeof(buf));
        assert_string_equal(buf, "No auto release, Differential");
        attributes_text(VSS_VOLSNAP_ATTR_EXPOSED_LOCALLY, buf, sizeof(buf));
        assert_string_equal(buf, "Exposed locally");
        attributes_text(0, buf, sizeof(buf));
        assert_string_equal(buf, "");
        attributes_text(0x1F, buf, 12);
        assert_true(strlen(buf) < 12);
}

static void test_context_names(void **state)
{
        assert_string_equal(context_type_name(0x00), "Backup");
        assert_string_equal(context_type_name(0x10), "FileShareBackup");
        assert_string_equal(context_type_name(0x19), "DataVolumeRollback");
        assert_string_equal(context_type_name(0x09), "ApplicationRollback");
        assert_string_equal(context_type_name(0x1D), "ClientAccessible");
        assert_string_equal(context_type_name(0x0D), "ClientAccessibleWriters");
        assert_null(context_type_name(0x01));
        assert_false(context_valid(VSS_CTX_ALL));
        assert_false(context_valid(0x02));
        assert_true(context_valid(0x1D));
        assert_true(context_valid(VSS_VOLSNAP_ATTR_DIFFERENTIAL));
        assert_false(context_valid(VSS_VOLSNAP_ATTR_DIFFERENTIAL | VSS_VOLSNAP_ATTR_PLEX));
}

static void test_involvement(void **state)
{
        char *set[] = { "/a", "/b" };
        char *w_ab[] = { "/a", "/b" }, *w_ac[] = { "/a", "/c" }, *w_c[] = { "/c" };

        assert_int_equal(involvement_compute(0, false, NULL, 0, set, 2), INVOLVE_YES);
        assert_int_equal(involvement_compute(0, false, w_ab, 2, set, 2), INVOLVE_YES);
        assert_int_equal(involvement_compute(0, false, w_ac, 2, set, 2), INVOLVE_PARTIAL);
        assert_int_equal(involvement_compute(0, false, w_c, 1, set, 2), INVOLVE_NO);
        assert_int_equal(involvement_compute(0, true, w_ab, 2, set, 2), INVOLVE_NO);
        assert_int_equal(involvement_compute(0x10, false, NULL, 0, set, 2), INVOLVE_NO);
        assert_int_equal(involvement_compute(0x1D, false, w_ab, 2, set, 2), INVOLVE_NO);
        assert_int_equal(involvement_compute(0x0D, false, w_ab, 2, set, 2), INVOLVE_YES);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_attributes_text),
                cmocka_unit_test(test_context_names),
                cmocka_unit_test(test_involvement),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
