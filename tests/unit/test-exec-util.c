/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* run_command (basic/exec-util.h): output, exit codes, deadlines, process groups. */

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "basic/exec-util.h"
#include "basic/macro.h"
#include "basic/time-util.h"

/* Running or sleeping, not dead and not a zombie. */
static bool process_alive(int pid)
{
        char path[64], buf[512], *p;
        FILE *f;
        size_t n;

        snprintf(path, sizeof(path), "/proc/%d/stat", pid);
        f = fopen(path, "re");
        if (!f)
                return false;
        n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = 0;
        p = strrchr(buf, ')');
        return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

static void test_output_and_status(void **state)
{
        char out[64];

        assert_int_equal(run_command((char *const[]){ "sh", "-c", "echo hello; echo err >&2", NULL }, 5000, out,
                                     sizeof(out)),
                         0);
        assert_string_equal(out, "hello\nerr");
        assert_int_equal(run_command((char *const[]){ "sh", "-c", "exit 3", NULL }, -1, out, sizeof(out)), 3);
        assert_string_equal(out, "");
        assert_int_equal(run_command((char *const[]){ "sh", "-c", "kill -TERM $$", NULL }, 5000, NULL, 0),
                         128 + SIGTERM);
        assert_int_equal(run_command((char *const[]){ "/nonexistent/program", NULL }, 5000, out, sizeof(out)), 127);
        assert_int_equal(run_command((char *const[]){ NULL }, 5000, out, sizeof(out)), -EINVAL);
}

static void test_truncation(void **state)
{
        char out[8];

        assert_int_equal(run_command((char *const[]){ "sh", "-c", "seq 1 10000", NULL }, 5000, out, sizeof(out)), 0);
        assert_string_equal(out, "1\n2\n3\n4");
}

static void test_signal_mask_reset(void **state)
{
        sigset_t block, old;
        char out[16];

        /* A caller that blocks SIGTERM for its signalfd must not pass that on. */
        sigemptyset(&block);
        sigaddset(&block, SIGTERM);
        sigprocmask(SIG_BLOCK, &block, &old);
        assert_int_equal(run_command((char *const[]){ "sh", "-c", "kill -TERM $$; echo survived", NULL }, 5000, out,
                                     sizeof(out)),
                         128 + SIGTERM);
        sigprocmask(SIG_SETMASK, &old, NULL);
}

static void test_deadline_kills_group(void **state)
{
        char out[128], pidfile[] = "/tmp/test-exec-util.XXXXXX";
        uint64_t t0 = clock_monotonic_us(), took;
        int fd = mkstemp(pidfile), r;
        char script[256];
        FILE *f;
        int grandchild = 0;

        assert_true(fd >= 0);
        close(fd);
        /* The grandchild keeps the output pipe open and outlives its parent's death:
         * only killing the process group ends it. */
        snprintf(script, sizeof(script), "sleep 30 & echo $! > %s; wait", pidfile);
        r = run_command((char *const[]){ "sh", "-c", script, NULL }, 300, out, sizeof(out));
        took = clock_monotonic_us() - t0;
        assert_int_equal(r, -ETIMEDOUT);
        assert_non_null(strstr(out, "did not finish within"));
        assert_true(took >= 300 * USEC_PER_MSEC);
        assert_true(took < 3 * USEC_PER_SEC);
        f = fopen(pidfile, "re");
        assert_non_null(f);
        assert_int_equal(fscanf(f, "%d", &grandchild), 1);
        fclose(f);
        unlink(pidfile);
        /* Killed; it may linger as a zombie until whoever inherited it reaps it. */
        for (int i = 0; i < 100 && process_alive(grandchild); i++)
                usleep(10000);
        assert_false(process_alive(grandchild));
}

static void test_deadline_after_eof(void **state)
{
        uint64_t t0 = clock_monotonic_us();

        /* Closes its output at once, then hangs: the deadline still holds. */
        assert_int_equal(run_command((char *const[]){ "sh", "-c", "exec >/dev/null 2>&1; sleep 30", NULL }, 300, NULL,
                                     0),
                         -ETIMEDOUT);
        assert_true(clock_monotonic_us() - t0 < 3 * USEC_PER_SEC);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_output_and_status),
                cmocka_unit_test(test_truncation),
                cmocka_unit_test(test_signal_mask_reset),
                cmocka_unit_test(test_deadline_kills_group),
                cmocka_unit_test(test_deadline_after_eof),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
