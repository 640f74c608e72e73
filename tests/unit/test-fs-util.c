/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* mkdir_p, and the clock helpers (basic/fs-util.h, basic/time-util.h). */

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "basic/fs-util.h"
#include "basic/time-util.h"

static void test_mkdir_p(void **state)
{
        char base[] = "/tmp/test-fs-util.XXXXXX", path[256], file[256];
        struct stat st;
        int fd;

        assert_non_null(mkdtemp(base));
        snprintf(path, sizeof(path), "%s/a/b/c", base);
        assert_int_equal(mkdir_p(path, 0750), 0);
        assert_int_equal(stat(path, &st), 0);
        assert_true(S_ISDIR(st.st_mode));
        /* Existing: fine; trailing slash: fine. */
        assert_int_equal(mkdir_p(path, 0750), 0);
        snprintf(path, sizeof(path), "%s/a/b/c/", base);
        assert_int_equal(mkdir_p(path, 0750), 0);
        /* A file in the way. */
        snprintf(file, sizeof(file), "%s/a/f", base);
        fd = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        close(fd);
        assert_int_equal(mkdir_p(file, 0750), -ENOTDIR);
        snprintf(path, sizeof(path), "%s/a/f/g", base);
        assert_int_equal(mkdir_p(path, 0750), -ENOTDIR);
        assert_int_equal(mkdir_p("", 0750), -EINVAL);
        snprintf(path, sizeof(path), "rm -rf '%s'", base);
        assert_int_equal(system(path), 0);
}

static void test_syncfs_path(void **state)
{
        assert_int_equal(syncfs_path("/tmp"), 0);
        assert_int_equal(syncfs_path("/nonexistent/openvss-test"), -ENOENT);
}

static void test_loop_backing_file(void **state)
{
        char buf[256];

        /* Only /dev/loopN names a loop device; nothing else reaches sysfs. */
        assert_int_equal(loop_backing_file("/dev/sda", buf, sizeof(buf)), -ENOENT);
        assert_int_equal(loop_backing_file("/dev/loop0/../sda", buf, sizeof(buf)), -ENOENT);
        assert_int_equal(loop_backing_file("/dev/loop999999", buf, sizeof(buf)), -ENOENT);
}

/* First in the list: the process's first real-time reading takes VSSD_DEBUG_CLOCK_OFFSET_MS
 * from the environment, later changes of the variable are not looked at.  The offset stays for
 * the tests after this one, which compare real-time readings only with each other. */
static void test_clock_offset_read_once(void **state)
{
        struct timespec ts;
        int64_t d;

        assert_int_equal(setenv("VSSD_DEBUG_CLOCK_OFFSET_MS", "3600000", 1), 0);
        for (int i = 0; i < 2; i++) {
                d = (int64_t)clock_realtime_us();
                (void)clock_gettime(CLOCK_REALTIME, &ts);
                d -= (int64_t)timespec_to_us(&ts);
                assert_true(d > 3599 * (int64_t)USEC_PER_SEC && d <= 3600 * (int64_t)USEC_PER_SEC);
                assert_int_equal(unsetenv("VSSD_DEBUG_CLOCK_OFFSET_MS"), 0);
        }
}

static void test_clocks(void **state)
{
        uint64_t m0 = clock_monotonic_us(), r0 = clock_realtime_us();
        struct timespec ts = timespec_from_us(UINT64_C(1234567890123456));

        /* The real-time clock is an epoch time (after 2020), the monotonic one is not. */
        assert_true(r0 > UINT64_C(1577836800) * USEC_PER_SEC);
        assert_true(m0 < r0);
        usleep(2000);
        assert_true(clock_monotonic_us() - m0 >= 2000);
        assert_true(clock_monotonic_ns() / 1000 >= m0);
        assert_int_equal(ts.tv_sec, 1234567890);
        assert_int_equal(ts.tv_nsec, 123456000);
        assert_int_equal(timespec_to_us(&ts), UINT64_C(1234567890123456));
        assert_int_equal(ms_until(1000, 500), 0);
        assert_int_equal(ms_until(1000, 1000), 0);
        assert_int_equal(ms_until(1000, 1001), 1);
        assert_int_equal(ms_until(0, 2500), 3);
        assert_int_equal(ms_until(0, UINT64_MAX), INT32_MAX);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_clock_offset_read_once),
                cmocka_unit_test(test_mkdir_p),
                cmocka_unit_test(test_syncfs_path),
                cmocka_unit_test(test_loop_backing_file),
                cmocka_unit_test(test_clocks),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
