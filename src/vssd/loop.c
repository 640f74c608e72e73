/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Timers and logging for the single event loop.  Timers are embedded in the
 * objects they belong to and kept in one list sorted by deadline; the loop
 * sleeps in epoll_wait until the first one is due.  With a few hundred
 * writers at most a sorted list is simpler than a heap and just as fast.
 */

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "vssd/vssd.h"

void timer_cancel(struct vssd *v, struct timer *t)
{
        if (!t->armed)
                return;
        for (struct timer **p = &v->timers; *p; p = &(*p)->next)
                if (*p == t) {
                        *p = t->next;
                        break;
                }
        t->next = NULL;
        t->armed = false;
}

void timer_arm(struct vssd *v, struct timer *t, uint64_t when_us)
{
        struct timer **p;

        timer_cancel(v, t);
        t->when_us = when_us;
        for (p = &v->timers; *p && (*p)->when_us <= when_us; p = &(*p)->next)
                ;
        t->next = *p;
        *p = t;
        t->armed = true;
}

int timers_run(struct vssd *v)
{
        for (;;) {
                struct timer *t = v->timers;
                uint64_t now = clock_monotonic_us();

                if (!t)
                        return -1;
                if (t->when_us > now) {
                        uint64_t ms = (t->when_us - now + 999) / 1000;
                        return ms > 60000 ? 60000 : (int)ms;
                }
                v->timers = t->next;
                t->next = NULL;
                t->armed = false;
                /* The callback may free the object owning 't' or arm other timers. */
                t->cb(v, t);
        }
}
