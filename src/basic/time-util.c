/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Clock helpers: see time-util.h for which clock serves what. */

#include <stdint.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "basic/string-util.h"
#include "basic/log.h"
#include "basic/time-util.h"

static uint64_t clock_ns(clockid_t id)
{
        struct timespec ts;

        /* Cannot fail for the clocks used here (they exist on every Linux). */
        (void)clock_gettime(id, &ts);
        return (uint64_t)ts.tv_sec * USEC_PER_SEC * NSEC_PER_USEC + (uint64_t)ts.tv_nsec;
}

static uint64_t clock_us(clockid_t id)
{
        return clock_ns(id) / NSEC_PER_USEC;
}

uint64_t clock_monotonic_ns(void)
{
        return clock_ns(CLOCK_MONOTONIC);
}

/* Forward declaration: the clock hook below reads its value like the sleep hooks. */
static const char *debug_resolve(const char *v, char *buf, size_t len);

static const char *realtime_offset_env;
static pthread_once_t realtime_offset_once = PTHREAD_ONCE_INIT;

static void realtime_offset_init(void)
{
        realtime_offset_env = getenv("VSSD_DEBUG_CLOCK_OFFSET_MS");
}

/* Test hook: VSSD_DEBUG_CLOCK_OFFSET_MS=N (or =@PATH, the file read at each call) moves this
 * process's real-time clock by N ms (negative: back), as a step of the system clock would,
 * without touching the machine's clock (tests/faults/t-fault-matrix.sh "clock-step").  Every
 * log line reads this clock: the environment is looked at once, and unset costs nothing. */
static int64_t realtime_offset_ns(void)
{
        char buf[32];
        const char *v;
        int ms;

        (void)pthread_once(&realtime_offset_once, realtime_offset_init);
        if (!realtime_offset_env)
                return 0;
        v = debug_resolve(realtime_offset_env, buf, sizeof(buf));
        if (!v || !*v || parse_int(v, &ms) < 0)
                return 0;
        return (int64_t)ms * (int64_t)(USEC_PER_MSEC * NSEC_PER_USEC);
}

uint64_t clock_realtime_ns(void)
{
        return clock_ns(CLOCK_REALTIME) + (uint64_t)realtime_offset_ns();
}

uint64_t clock_monotonic_us(void)
{
        return clock_us(CLOCK_MONOTONIC);
}

uint64_t clock_realtime_us(void)
{
        return clock_realtime_ns() / NSEC_PER_USEC;
}

int ms_until(uint64_t now_us, uint64_t deadline_us)
{
        uint64_t d, ms;

        if (deadline_us <= now_us)
                return 0;
        d = deadline_us - now_us;
        ms = d / USEC_PER_MSEC + (d % USEC_PER_MSEC != 0);
        return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

/* A test hook's value V: V itself, or with "@PATH" the first line of PATH, read at each call,
 * so that a test can change it while the daemon runs.  NULL when V is NULL or PATH unreadable. */
static const char *debug_resolve(const char *v, char *buf, size_t len)
{
        ssize_t n;
        int fd;

        if (!v || v[0] != '@')
                return v;
        fd = open(v + 1, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return NULL;
        n = read(fd, buf, len - 1);
        close(fd);
        if (n <= 0)
                return NULL;
        buf[n] = 0;
        buf[strcspn(buf, "\n")] = 0;
        return buf;
}

static const char *debug_value(const char *name, char *buf, size_t len)
{
        return debug_resolve(getenv(name), buf, len);
}

uint64_t debug_ms_from_env(const char *name)
{
        char buf[32];
        const char *v = debug_value(name, buf, sizeof(buf));
        uint64_t ms;

        if (!v || !*v || parse_u64(v, &ms) < 0 || ms == 0 || ms > 600000)
                return 0;
        return ms;
}

uint64_t debug_sleep_from_env(const char *name)
{
        uint64_t ms = debug_ms_from_env(name);

        if (ms == 0)
                return 0;
        /* Logged before the sleep: tests act on this line (tests/faults/t-fault-matrix.sh). */
        log_warn("%s: test hook, sleeping %llu ms", name, (unsigned long long)ms);
        (void)usleep((useconds_t)(ms * USEC_PER_MSEC));
        return ms;
}
