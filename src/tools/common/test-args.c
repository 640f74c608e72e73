/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests of the tools' command-line parser and size parser: both option
 * dialects, case-insensitivity, values in the same or the next argument, the
 * error cases, and every size unit including the overflow edges.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "tools/common/tools-common.h"

enum { OPT_FOR, OPT_ON, OPT_QUIET, OPT_WI, OPT_P, _OPT_MAX };

static const struct tool_option opts[_OPT_MAX] = {
        [OPT_FOR]   = { "for", NULL, TOOL_OPT_VALUE, NULL, NULL },
        [OPT_ON]    = { "on", NULL, TOOL_OPT_VALUE, NULL, NULL },
        [OPT_QUIET] = { "quiet", NULL, TOOL_OPT_FLAG, NULL, NULL },
        [OPT_WI]    = { "include-writer", "wi", TOOL_OPT_LIST, NULL, NULL },
        [OPT_P]     = { "persistent", "p", TOOL_OPT_FLAG, NULL, NULL },
};

static vss_hresult parse(unsigned flags, struct tool_args *a, char **err, int argc, ...)
{
        char *argv[32];
        va_list ap;

        argv[0] = (char *)"prog";
        va_start(ap, argc);
        for (int i = 1; i < argc; i++)
                argv[i] = va_arg(ap, char *);
        va_end(ap);
        argv[argc] = NULL;
        return tool_args_parse(opts, _OPT_MAX, flags, argc, argv, a, err);
}

static void test_windows_syntax(void **state)
{
        struct tool_args a;
        char *err;

        assert_int_equal(parse(TOOL_ARGS_SLASH, &a, &err, 5, "delete", "shadows", "/For=/mnt/data",
                               "/QUIET"), VSS_S_OK);
        assert_int_equal(a.n_positional, 2);
        assert_string_equal(a.positional[0], "delete");
        assert_string_equal(a.positional[1], "shadows");
        assert_string_equal(tool_args_value(&a, OPT_FOR), "/mnt/data");
        assert_true(tool_args_flag(&a, OPT_QUIET));
        assert_false(tool_args_flag(&a, OPT_ON));
        assert_null(tool_args_value(&a, OPT_ON));
        tool_args_done(&a);
}

static void test_linux_syntax(void **state)
{
        struct tool_args a;
        char *err;

        assert_int_equal(parse(TOOL_ARGS_SLASH, &a, &err, 6, "--for=/a", "--on", "/b", "list",
                               "--quiet"), VSS_S_OK);
        assert_string_equal(tool_args_value(&a, OPT_FOR), "/a");
        assert_string_equal(tool_args_value(&a, OPT_ON), "/b");
        assert_true(tool_args_flag(&a, OPT_QUIET));
        assert_int_equal(a.n_positional, 1);
        assert_string_equal(a.positional[0], "list");
        tool_args_done(&a);

        /* Last value wins. */
        assert_int_equal(parse(TOOL_ARGS_SLASH, &a, &err, 3, "--for=/a", "/for=/c"), VSS_S_OK);
        assert_string_equal(tool_args_value(&a, OPT_FOR), "/c");
        tool_args_done(&a);
}

static void test_short_and_lists(void **state)
{
        struct tool_args a;
        char *err;

        /* Without TOOL_ARGS_SLASH a path is positional. */
        assert_int_equal(parse(0, &a, &err, 8, "-p", "-wi=A", "--include-writer", "B", "-WI", "C",
                               "/mnt/data"), VSS_S_OK);
        assert_true(tool_args_flag(&a, OPT_P));
        assert_int_equal(a.values[OPT_WI].n_list, 3);
        assert_string_equal(a.values[OPT_WI].list[0], "A");
        assert_string_equal(a.values[OPT_WI].list[1], "B");
        assert_string_equal(a.values[OPT_WI].list[2], "C");
        assert_int_equal(a.n_positional, 1);
        assert_string_equal(a.positional[0], "/mnt/data");
        tool_args_done(&a);

        /* "--" ends the options. */
        assert_int_equal(parse(0, &a, &err, 4, "--", "-p", "--quiet"), VSS_S_OK);
        assert_false(tool_args_flag(&a, OPT_P));
        assert_int_equal(a.n_positional, 2);
        tool_args_done(&a);

        /* Short names need a single dash. */
        assert_int_equal(parse(0, &a, &err, 2, "--p"), VSS_E_INVALIDARG);
        free(err);
}

static void test_errors(void **state)
{
        struct tool_args a;
        char *err;

        assert_int_equal(parse(TOOL_ARGS_SLASH, &a, &err, 2, "/fro=x"), VSS_E_INVALIDARG);
        assert_non_null(strstr(err, "/fro"));
        free(err);

        assert_int_equal(parse(TOOL_ARGS_SLASH, &a, &err, 2, "--for"), VSS_E_INVALIDARG);
        assert_non_null(strstr(err, "needs a value"));
        free(err);

        assert_int_equal(parse(TOOL_ARGS_SLASH, &a, &err, 2, "/for="), VSS_E_INVALIDARG);
        assert_non_null(strstr(err, "empty"));
        free(err);

        assert_int_equal(parse(TOOL_ARGS_SLASH, &a, &err, 2, "/quiet=yes"), VSS_E_INVALIDARG);
        assert_non_null(strstr(err, "no value"));
        free(err);

        /* A lone "/" or "-" is positional. */
        assert_int_equal(parse(TOOL_ARGS_SLASH, &a, &err, 3, "/", "-"), VSS_S_OK);
        assert_int_equal(a.n_positional, 2);
        tool_args_done(&a);
}

static uint64_t size_of(const char *s)
{
        struct tool_size sz;

        assert_int_equal(tool_parse_size(s, &sz), VSS_S_OK);
        assert_int_equal(sz.kind, TOOL_SIZE_BYTES);
        return sz.bytes;
}

static void test_sizes(void **state)
{
        struct tool_size sz;

        assert_int_equal(size_of("0"), 0);
        assert_int_equal(size_of("300000000"), 300000000);
        assert_int_equal(size_of("12B"), 12);
        assert_int_equal(size_of("1K"), 1024);
        assert_int_equal(size_of("1kb"), 1024);
        assert_int_equal(size_of("900MB"), UINT64_C(900) << 20);
        assert_int_equal(size_of("900m"), UINT64_C(900) << 20);
        assert_int_equal(size_of("2G"), UINT64_C(2) << 30);
        assert_int_equal(size_of("1.5GB"), UINT64_C(3) << 29);
        assert_int_equal(size_of("3TB"), UINT64_C(3) << 40);
        assert_int_equal(size_of("1P"), UINT64_C(1) << 50);
        assert_int_equal(size_of("15EB"), UINT64_C(15) << 60);
        assert_int_equal(size_of("18446744073709551615"), UINT64_MAX);

        assert_int_equal(tool_parse_size("UNBOUNDED", &sz), VSS_S_OK);
        assert_int_equal(sz.kind, TOOL_SIZE_UNBOUNDED);
        assert_int_equal(tool_parse_size("unbounded", &sz), VSS_S_OK);
        assert_int_equal(sz.kind, TOOL_SIZE_UNBOUNDED);
        assert_int_equal(tool_parse_size("20%", &sz), VSS_S_OK);
        assert_int_equal(sz.kind, TOOL_SIZE_PERCENT);
        assert_int_equal(sz.percent, 20);
        assert_int_equal(tool_parse_size("100%", &sz), VSS_S_OK);

        static const char *const bad[] = {
                "", "MB", "-1", "-1MB", "1XB", "1 MB", "0%", "101%", "1.5%", "16EB",
                "18446744073709551616", "1.", ".", "abc", "1MBB", "%", NULL,
        };
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
                assert_int_equal(tool_parse_size(bad[i], &sz), VSS_E_INVALIDARG);
}

static void test_format(void **state)
{
        char buf[32];

        assert_string_equal(tool_format_size(0, buf, sizeof(buf)), "0 bytes");
        assert_string_equal(tool_format_size(1023, buf, sizeof(buf)), "1023 bytes");
        assert_string_equal(tool_format_size(1024, buf, sizeof(buf)), "1.00 KB");
        assert_string_equal(tool_format_size(UINT64_C(320) << 20, buf, sizeof(buf)), "320 MB");
        assert_string_equal(tool_format_size((UINT64_C(206) << 30) / 100, buf, sizeof(buf)), "2.06 GB");
        assert_string_equal(tool_format_size((UINT64_C(118) << 30) / 10, buf, sizeof(buf)), "11.8 GB");
        assert_string_equal(tool_format_size(UINT64_C(1000) << 20, buf, sizeof(buf)), "0.98 GB");
        assert_string_equal(tool_format_size(UINT64_MAX, buf, sizeof(buf)), "16.0 EB");
}

static void test_hresult_format(void **state)
{
        char buf[11];

        assert_string_equal(tool_format_hresult(VSS_E_SNAPSHOT_SET_IN_PROGRESS, buf), "0x80042316");
        assert_string_equal(tool_format_hresult(VSS_S_OK, buf), "0x00000000");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_windows_syntax),
                cmocka_unit_test(test_linux_syntax),
                cmocka_unit_test(test_short_and_lists),
                cmocka_unit_test(test_errors),
                cmocka_unit_test(test_sizes),
                cmocka_unit_test(test_format),
                cmocka_unit_test(test_hresult_format),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
