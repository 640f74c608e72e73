/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The one size grammar (basic/size-util.h). */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "basic/macro.h"
#include "basic/size-util.h"

static uint64_t size_of(const char *s)
{
        uint64_t v = 0;

        if (size_parse(s, &v) != 0)
                fail_msg("size_parse(\"%s\") failed", s);
        return v;
}

static void test_units(void **state)
{
        assert_int_equal(size_of("0"), 0);
        assert_int_equal(size_of("4096"), 4096);
        assert_int_equal(size_of("12B"), 12);
        assert_int_equal(size_of("16K"), 16384);
        assert_int_equal(size_of("16k"), 16384);
        assert_int_equal(size_of("16KB"), 16384);
        assert_int_equal(size_of("16KiB"), 16384);
        assert_int_equal(size_of("16kib"), 16384);
        assert_int_equal(size_of("512MiB"), UINT64_C(512) << 20);
        assert_int_equal(size_of("20G"), UINT64_C(20) << 30);
        assert_int_equal(size_of("20GB"), UINT64_C(20) << 30);
        assert_int_equal(size_of("20GiB"), UINT64_C(20) << 30);
        assert_int_equal(size_of("1.5G"), UINT64_C(3) << 29);
        assert_int_equal(size_of("0.5K"), 512);
        assert_int_equal(size_of("3TB"), UINT64_C(3) << 40);
        assert_int_equal(size_of("1P"), UINT64_C(1) << 50);
        assert_int_equal(size_of("15EiB"), UINT64_C(15) << 60);
        assert_int_equal(size_of("18446744073709551615"), UINT64_MAX);
        /* The fraction is rounded down to a byte. */
        assert_int_equal(size_of("1.0001K"), 1024);
}

static void test_rejects(void **state)
{
        static const char *const bad[] = {
                "", "K", "-1", "+1", "1 K", " 1K", "1K ", "1XB", "1KK", "1.", ".5", "1..5", "1e3", "0x10", "abc",
                "1%", "1iB", "1Ki", "unbounded",
        };
        uint64_t v = 77;

        for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
                int r = size_parse(bad[i], &v);

                if (r != -EINVAL)
                        fail_msg("size_parse(\"%s\") = %d, expected -EINVAL", bad[i], r);
        }
        assert_int_equal(size_parse(NULL, &v), -EINVAL);
        assert_int_equal(v, 77);
}

static void test_overflow(void **state)
{
        uint64_t v = 0;

        assert_int_equal(size_parse("16E", &v), -ERANGE);
        assert_int_equal(size_parse("18446744073709551616", &v), -ERANGE);
        assert_int_equal(size_parse("17179869184G", &v), -ERANGE);
        assert_int_equal(size_parse("15.99999999999999999999E", &v), 0);
        assert_true(v < UINT64_MAX);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_units),
                cmocka_unit_test(test_rejects),
                cmocka_unit_test(test_overflow),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
