/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* loop.c: timers on CLOCK_MONOTONIC (basic/time-util.h), run by the event loop. */

#include <stdbool.h>
#include <stdint.h>

struct vssd;

struct timer {
        uint64_t when_us;
        void (*cb)(struct vssd *v, struct timer *t);
        void *userdata;
        bool armed;
        struct timer *next;
};

void timer_arm(struct vssd *v, struct timer *t, uint64_t when_us);
void timer_cancel(struct vssd *v, struct timer *t);
/* Runs due timers; returns the epoll timeout (ms, -1 = none). */
int timers_run(struct vssd *v);
