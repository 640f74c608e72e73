/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests of hook.c: the failure line, the message trimming, and real hook runs. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <time.h>
#include <cmocka.h>

#include "basic/macro.h"
#include "hook.h"

static vss_hresult parse(const char *s)
{
        return hook_parse_failure(s, strlen(s));
}

static void test_parse_failure(void **state)
{
        assert_int_equal(parse(""), VSS_E_WRITERERROR_NONRETRYABLE);
        assert_int_equal(parse("0x800423F3\n"), VSS_E_WRITERERROR_RETRYABLE);
        assert_int_equal(parse("0x800423f3"), VSS_E_WRITERERROR_RETRYABLE);
        assert_int_equal(parse("800423F1\n"), VSS_E_WRITERERROR_OUTOFRESOURCES);
        assert_int_equal(parse("working...\nVSS_E_WRITERERROR_TIMEOUT\n\n"), VSS_E_WRITERERROR_TIMEOUT);
        assert_int_equal(parse("  vss_e_writererror_inconsistentsnapshot  \n"),
                         VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT);
        /* Only the last line counts. */
        assert_int_equal(parse("0x800423F3\nsomething else\n"), VSS_E_WRITERERROR_NONRETRYABLE);
        /* Known HRESULTs that are not writer failures are not accepted. */
        assert_int_equal(parse("VSS_E_BAD_STATE\n"), VSS_E_WRITERERROR_NONRETRYABLE);
        assert_int_equal(parse("0x80042316\n"), VSS_E_WRITERERROR_NONRETRYABLE);
        assert_int_equal(parse("0x800423F5\n"), VSS_E_WRITERERROR_NONRETRYABLE);
        assert_int_equal(parse("garbage 0x800423F3\n"), VSS_E_WRITERERROR_NONRETRYABLE);
}

static void test_trim(void **state)
{
        char a[] = "  \n hello world \n\n";
        char *big = malloc(HOOK_MESSAGE_MAX * 2 + 1);

        assert_string_equal(hook_trim_message(a), "hello world");
        assert_non_null(big);
        memset(big, 'x', HOOK_MESSAGE_MAX * 2);
        big[HOOK_MESSAGE_MAX * 2] = 0;
        assert_int_equal(strlen(hook_trim_message(big)), HOOK_MESSAGE_MAX);
        free(big);
}

static void test_run_success(void **state)
{
        char *env[] = { (char *)"VSS_EVENT=Freeze", NULL };
        struct hook_result r;

        assert_int_equal(hook_run("test \"$VSS_EVENT\" = Freeze", env, 5000, &r), 0);
        assert_int_equal(r.failure, VSS_S_OK);
}

static void test_run_veto(void **state)
{
        struct hook_result r;

        assert_int_equal(hook_run("echo progress; echo VSS_E_WRITERERROR_RETRYABLE; echo '  db busy  ' >&2; exit 3",
                                  NULL, 5000, &r),
                         0);
        assert_int_equal(r.failure, VSS_E_WRITERERROR_RETRYABLE);
        assert_string_equal(r.message, "db busy");

        assert_int_equal(hook_run("exit 1", NULL, 5000, &r), 0);
        assert_int_equal(r.failure, VSS_E_WRITERERROR_NONRETRYABLE);
        assert_string_equal(r.message, "hook exited with status 1");
}

static void test_run_timeout(void **state)
{
        struct timespec a, b;
        struct hook_result r;

        clock_gettime(CLOCK_MONOTONIC, &a);
        /* The background sleep holds the pipes: killing the group must still end the wait. */
        assert_int_equal(hook_run("sleep 30 & sleep 30", NULL, 300, &r), 0);
        clock_gettime(CLOCK_MONOTONIC, &b);
        assert_int_equal(r.failure, VSS_E_WRITERERROR_TIMEOUT);
        assert_true(strncmp(r.message, "hook killed after ", 18) == 0);
        assert_true((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000 < 5000);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_failure),
                cmocka_unit_test(test_trim),
                cmocka_unit_test(test_run_success),
                cmocka_unit_test(test_run_veto),
                cmocka_unit_test(test_run_timeout),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
