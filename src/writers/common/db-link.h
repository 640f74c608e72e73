/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The reconnecting database session of the application writers.
 *
 * A writer keeps one session with its database open for its whole life: the
 * session is what holds a lock from Freeze to Thaw, and what it asks about
 * the data's layout.  Servers restart, so the session comes and goes: between
 * events the writer's tick calls db_link_tick(), which checks an open session
 * and reconnects a lost one with a backoff of 100 ms doubling to 5 s (the
 * same as libvss's towards vssd), logging the loss and the return once each.
 * An event that needs the session calls db_link_ensure(l, true), which tries
 * at once whatever the backoff says: a backup should not wait for a timer.
 *
 * The program supplies connect/disconnect/alive for its client library
 * (libpq, libmariadb, libsqlite3) and owns the connection object itself.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct db_link {
        const char *what;               /* "the PostgreSQL server", for log lines */
        /* Opens the session; 0, or < 0 with the reason in err. */
        int (*connect)(void *userdata, char *err, size_t errlen);
        void (*disconnect)(void *userdata);
        /* A cheap check of an open session (PQstatus, mysql_ping); false when it is gone. */
        bool (*alive)(void *userdata);
        void *userdata;

        /* Private. */
        bool up;
        bool was_up;                    /* for the "is back" log line */
        bool logged_down;
        unsigned backoff_ms;
        uint64_t next_try_us;
        char error[1024];
};

/* Returns true when the session is open, connecting first if it is not and the backoff
 * allows (or at once when 'now'). */
bool db_link_ensure(struct db_link *l, bool now);
/* The program saw the session fail (a query failed on a broken connection): it is closed
 * and reconnected later. */
void db_link_lost(struct db_link *l, const char *why);
/* Between events: checks an open session, reconnects a closed one when due.  Returns true
 * when the session came up in this call (the first time or again). */
bool db_link_tick(struct db_link *l);
void db_link_close(struct db_link *l);
/* Why the last connection attempt failed, "" if it did not. */
const char *db_link_error(const struct db_link *l);
