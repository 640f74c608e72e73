/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Clocks, named for what they measure.  Deadlines, timeouts and durations use
 * the monotonic clock, which no admin or NTP step can move; timestamps that a
 * person reads or that are stored (creation times, event log, shadow names)
 * use the real-time clock.  Mixing the two was a bug source: every caller
 * says which one it means.
 */

#include <stdint.h>
#include <time.h>

#define USEC_PER_SEC  UINT64_C(1000000)
#define USEC_PER_MSEC UINT64_C(1000)
#define NSEC_PER_USEC UINT64_C(1000)

/* Microseconds on CLOCK_MONOTONIC: for deadlines and durations. */
uint64_t clock_monotonic_us(void);
/* Microseconds since the Unix epoch (CLOCK_REALTIME): for timestamps. */
uint64_t clock_realtime_us(void);

/* Test hook: sleeps as many milliseconds (1..600000) as the environment variable 'name'
 * says, or with "@PATH" as the file PATH says at the time of the call; returns them (0: unset,
 * unreadable or not a number in range, no sleep). */
uint64_t debug_sleep_from_env(const char *name);
/* The same without the sleep, for hooks that wait on a timer: the milliseconds, or 0. */
uint64_t debug_ms_from_env(const char *name);

/* The same in nanoseconds, for accounting short intervals. */
uint64_t clock_monotonic_ns(void);
uint64_t clock_realtime_ns(void);

/* For APIs that take an absolute time: timespec_from_us(clock_realtime_us() + d) for
 * pthread_cond_timedwait on a default condition variable, clock_monotonic_us() for
 * one created with pthread_condattr_setclock(CLOCK_MONOTONIC). */
static inline struct timespec timespec_from_us(uint64_t us)
{
        return (struct timespec){ .tv_sec = (time_t)(us / USEC_PER_SEC),
                                  .tv_nsec = (long)((us % USEC_PER_SEC) * NSEC_PER_USEC) };
}

static inline uint64_t timespec_to_us(const struct timespec *ts)
{
        return (uint64_t)ts->tv_sec * USEC_PER_SEC + (uint64_t)ts->tv_nsec / NSEC_PER_USEC;
}

/* Milliseconds from 'now_us' until 'deadline_us' (both monotonic), rounded up,
 * 0 when it has passed, capped at INT32_MAX: what poll() and epoll_wait() take. */
int ms_until(uint64_t now_us, uint64_t deadline_us);
