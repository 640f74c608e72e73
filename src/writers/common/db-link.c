/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The reconnecting database session (see db-link.h).  Nothing here blocks
 * beyond what the program's connect() does, which each program bounds with
 * its client library's connect timeout.
 */

#include <stdio.h>

#include "basic/log.h"
#include "basic/macro.h"
#include "basic/time-util.h"
#include "db-link.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

static bool try_connect(struct db_link *l)
{
        char err[sizeof(l->error)] = "";

        if (l->connect(l->userdata, err, sizeof(err)) >= 0) {
                if (l->logged_down || l->was_up)
                        log_info("connected to %s again", l->what);
                else
                        log_info("connected to %s", l->what);
                l->up = true;
                l->was_up = true;
                l->logged_down = false;
                l->backoff_ms = 0;
                l->error[0] = 0;
                return true;
        }
        if (!l->logged_down || !streq(err, l->error))
                log_warn("cannot connect to %s: %s; trying again", l->what, err[0] ? err : "unknown error");
        l->logged_down = true;
        snprintf(l->error, sizeof(l->error), "%s", err[0] ? err : "unknown error");
        l->backoff_ms = l->backoff_ms ? MIN(l->backoff_ms * 2, (unsigned)BACKOFF_MAX_MS) : BACKOFF_MIN_MS;
        l->next_try_us = clock_monotonic_us() + (uint64_t)l->backoff_ms * USEC_PER_MSEC;
        return false;
}

bool db_link_ensure(struct db_link *l, bool now)
{
        if (l->up && l->alive(l->userdata))
                return true;
        if (l->up)
                db_link_lost(l, "the connection is broken");
        if (!now && clock_monotonic_us() < l->next_try_us)
                return false;
        return try_connect(l);
}

void db_link_lost(struct db_link *l, const char *why)
{
        if (l->up)
                log_warn("lost the connection to %s: %s; reconnecting", l->what, why ? why : "unknown error");
        l->disconnect(l->userdata);
        l->up = false;
        l->logged_down = true;
        snprintf(l->error, sizeof(l->error), "%s", why ? why : "connection lost");
        /* The first attempt comes at once: the server may only have restarted. */
        l->backoff_ms = 0;
        l->next_try_us = 0;
}

bool db_link_tick(struct db_link *l)
{
        if (l->up) {
                if (l->alive(l->userdata))
                        return false;
                db_link_lost(l, "the connection is broken");
        }
        if (clock_monotonic_us() < l->next_try_us)
                return false;
        return try_connect(l);
}

void db_link_close(struct db_link *l)
{
        if (l->up)
                l->disconnect(l->userdata);
        l->up = false;
}

const char *db_link_error(const struct db_link *l)
{
        return l->error;
}
