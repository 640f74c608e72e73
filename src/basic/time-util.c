/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Clock helpers: see time-util.h for which clock serves what. */

#include <stdint.h>

#include <stdlib.h>
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

uint64_t clock_realtime_ns(void)
{
        return clock_ns(CLOCK_REALTIME);
}

uint64_t clock_monotonic_us(void)
{
        return clock_us(CLOCK_MONOTONIC);
}

uint64_t clock_realtime_us(void)
{
        return clock_us(CLOCK_REALTIME);
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

uint64_t debug_ms_from_env(const char *name)
{
        const char *v = getenv(name);
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
