/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* string-util's number parsers: what a pid file or a server's reply may hold. */

#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "basic/macro.h"
#include "basic/string-util.h"

static void test_u64(void **state)
{
        uint64_t v = 0;

        assert_int_equal(parse_u64("0", &v), 0);
        assert_int_equal(v, 0);
        assert_int_equal(parse_u64("4242\n", &v), 0);
        assert_int_equal(v, 4242);
        assert_int_equal(parse_u64("  17 ", &v), 0);
        assert_int_equal(v, 17);
        assert_int_equal(parse_u64("18446744073709551615", &v), 0);
        assert_true(v == UINT64_MAX);
        assert_int_equal(parse_u64("18446744073709551616", &v), -ERANGE);
}

static void test_u64_rejects(void **state)
{
        static const char *const bad[] = { "", " ", "-1", "+1", "12x", "1 2", "0x10", "x", "1.5" };
        uint64_t v = 77;

        for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
                int r = parse_u64(bad[i], &v);

                if (r != -EINVAL)
                        fail_msg("parse_u64(\"%s\") = %d, expected -EINVAL", bad[i], r);
        }
        assert_int_equal(v, 77);
}

static void test_int(void **state)
{
        int v = 0;

        assert_int_equal(parse_int("150004", &v), 0);
        assert_int_equal(v, 150004);
        assert_int_equal(parse_int("-12", &v), 0);
        assert_int_equal(v, -12);
        assert_int_equal(parse_int("2147483647", &v), 0);
        assert_int_equal(v, INT_MAX);
        assert_int_equal(parse_int("2147483648", &v), -ERANGE);
        assert_int_equal(parse_int("-2147483649", &v), -ERANGE);
        assert_int_equal(parse_int("-", &v), -EINVAL);
        assert_int_equal(parse_int("15.2", &v), -EINVAL);
        assert_int_equal(parse_int("", &v), -EINVAL);
        assert_int_equal(v, INT_MAX);
}

static void test_u32(void **state)
{
        uint32_t v = 0;

        assert_int_equal(parse_u32("5000", 1, 3600000, &v), 0);
        assert_int_equal(v, 5000);
        assert_int_equal(parse_u32("4294967295", 0, UINT32_MAX, &v), 0);
        assert_int_equal(v, UINT32_MAX);
        assert_int_equal(parse_u32("0", 1, 10, &v), -ERANGE);
        assert_int_equal(parse_u32("11", 1, 10, &v), -ERANGE);
        assert_int_equal(parse_u32("4294967296", 0, UINT32_MAX, &v), -ERANGE);
        assert_int_equal(parse_u32("-1", 0, 10, &v), -EINVAL);
        assert_int_equal(parse_u32("+1", 0, 10, &v), -EINVAL);
        assert_int_equal(parse_u32("", 0, 10, &v), -EINVAL);
        assert_int_equal(parse_u32("5s", 0, 10, &v), -EINVAL);
        assert_int_equal(v, UINT32_MAX);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_u64),
                cmocka_unit_test(test_u64_rejects),
                cmocka_unit_test(test_int),
                cmocka_unit_test(test_u32),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
