/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Queries with a deadline, and the cluster's layout (see pg-session.h).
 *
 * pg_query() sends with PQsendQuery and waits with poll() on PQsocket until
 * the deadline; every result is drained (PQexec semantics: the last one is
 * returned).  When the deadline passes the connection is closed: a backend
 * busy with our statement is of no further use to us, and closing is the one
 * thing that cannot itself block (PQcancel would need the server to answer).
 */

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "basic/macro.h"
#include "basic/string-util.h"
#include "basic/time-util.h"
#include "common/proc-util.h"
#include "pg-session.h"

void pg_layout_done(struct pg_layout *l)
{
        free(l->data_directory);
        free(l->wal_directory);
        for (size_t i = 0; i < l->n_tablespaces; i++) {
                free(l->tablespaces[i].name);
                free(l->tablespaces[i].location);
        }
        free(l->tablespaces);
        free(l->server_version);
        *l = (struct pg_layout){ 0 };
}

bool pg_layout_equal(const struct pg_layout *a, const struct pg_layout *b)
{
        if (!streq_ptr(a->data_directory, b->data_directory) || !streq_ptr(a->wal_directory, b->wal_directory) ||
            a->wal_is_link != b->wal_is_link || a->n_tablespaces != b->n_tablespaces ||
            a->server_version_num != b->server_version_num)
                return false;
        for (size_t i = 0; i < a->n_tablespaces; i++)
                if (a->tablespaces[i].oid != b->tablespaces[i].oid ||
                    !streq_ptr(a->tablespaces[i].location, b->tablespaces[i].location))
                        return false;
        return true;
}

static void set_err(struct pg_error *err, const char *msg, const char *sqlstate)
{
        size_t n;

        fmt_trunc(err->message, sizeof(err->message), "%s", msg && *msg ? msg : "unknown error");
        /* libpq's messages end with a newline (or several lines: keep the first). */
        err->message[strcspn(err->message, "\n")] = 0;
        n = strlen(err->message);
        while (n > 0 && (err->message[n - 1] == ' ' || err->message[n - 1] == '\r'))
                err->message[--n] = 0;
        fmt_trunc(err->sqlstate, sizeof(err->sqlstate), "%s", sqlstate ? sqlstate : "");
}

PGconn *pg_connect(const char *conninfo, int timeout_s, struct pg_error *err)
{
        char timeout[16];
        const char *keys[] = { "connect_timeout", "fallback_application_name", "dbname", NULL };
        const char *vals[] = { timeout, "vss-writer-postgresql", conninfo, NULL };
        PGconn *c;

        *err = (struct pg_error){ 0 };
        fmt_trunc(timeout, sizeof(timeout), "%d", timeout_s);
        /* expand_dbname: conninfo's own settings (a connect_timeout among them) come later
         * and win over ours. */
        c = PQconnectdbParams(keys, vals, 1);
        if (!c) {
                set_err(err, "out of memory", NULL);
                return NULL;
        }
        if (PQstatus(c) != CONNECTION_OK) {
                set_err(err, PQerrorMessage(c), NULL);
                err->connection_lost = true;
                PQfinish(c);
                return NULL;
        }
        return c;
}

PGresult *pg_query(PGconn **conn, const char *sql, int64_t timeout_ms, struct pg_error *err)
{
        uint64_t deadline = timeout_ms == INT64_MAX ? UINT64_MAX
                                                    : clock_monotonic_us() + (uint64_t)MAX(timeout_ms, 0) * USEC_PER_MSEC;
        PGresult *last = NULL, *r;

        *err = (struct pg_error){ 0 };
        if (!*conn || PQstatus(*conn) != CONNECTION_OK) {
                set_err(err, "not connected", NULL);
                err->connection_lost = true;
                return NULL;
        }
        if (!PQsendQuery(*conn, sql))
                goto lost;
        for (;;) {
                while (PQisBusy(*conn)) {
                        struct pollfd p = { .fd = PQsocket(*conn), .events = POLLIN };
                        uint64_t now = clock_monotonic_us();
                        int n;

                        if (now >= deadline) {
                                set_err(err, "no answer from the server in time", NULL);
                                err->timed_out = true;
                                err->connection_lost = true;
                                PQclear(last);
                                PQfinish(*conn);
                                *conn = NULL;
                                return NULL;
                        }
                        n = poll(&p, 1, deadline == UINT64_MAX ? -1 : ms_until(now, deadline));
                        if (n < 0 && errno != EINTR)
                                goto lost;
                        if (n > 0 && !PQconsumeInput(*conn))
                                goto lost;
                }
                r = PQgetResult(*conn);
                if (!r)
                        break;
                PQclear(last);
                last = r;
        }
        if (!last)
                goto lost;
        switch (PQresultStatus(last)) {
        case PGRES_COMMAND_OK:
        case PGRES_TUPLES_OK:
                return last;
        default:
                set_err(err, PQresultErrorMessage(last), PQresultErrorField(last, PG_DIAG_SQLSTATE));
                err->connection_lost = PQstatus(*conn) != CONNECTION_OK;
                PQclear(last);
                return NULL;
        }
lost:
        set_err(err, PQerrorMessage(*conn), NULL);
        err->connection_lost = true;
        PQclear(last);
        return NULL;
}

char *pg_query_value(PGconn **conn, const char *sql, int64_t timeout_ms, struct pg_error *err)
{
        PGresult *r = pg_query(conn, sql, timeout_ms, err);
        char *v = NULL;

        if (!r)
                return NULL;
        if (PQntuples(r) < 1 || PQnfields(r) < 1 || PQgetisnull(r, 0, 0))
                set_err(err, "the query returned no value", NULL);
        else if (!(v = strdup(PQgetvalue(r, 0, 0))))
                set_err(err, "out of memory", NULL);
        PQclear(r);
        return v;
}

static char *real_dir(const char *path, const char *what, struct pg_error *err)
{
        char *r = realpath(path, NULL);
        struct stat st;

        if (!r || stat(r, &st) < 0 || !S_ISDIR(st.st_mode)) {
                char msg[1024];
                fmt_trunc(msg, sizeof(msg), "%s %s is not a directory on this machine (%s); the writer must run "
                          "on the database server's machine", what, path, r ? "not a directory" : strerror(errno));
                set_err(err, msg, NULL);
                free(r);
                return NULL;
        }
        return r;
}

int pg_layout_read(PGconn **conn, struct pg_layout *ret, int64_t timeout_ms, struct pg_error *err)
{
        struct pg_layout l = { 0 };
        _cleanup_free_ char *data = NULL, *num = NULL, *wal = NULL;
        PGresult *r;
        struct stat st;

        data = pg_query_value(conn, "SELECT current_setting('data_directory')", timeout_ms, err);
        if (!data)
                return -1;
        l.server_version = pg_query_value(conn, "SELECT current_setting('server_version')", timeout_ms, err);
        num = l.server_version ? pg_query_value(conn, "SELECT current_setting('server_version_num')", timeout_ms, err)
                               : NULL;
        if (!num)
                goto fail;
        if (parse_int(num, &l.server_version_num) < 0) {
                set_err(err, "the server's server_version_num is not a number", NULL);
                goto fail;
        }
        l.data_directory = real_dir(data, "the data directory", err);
        if (!l.data_directory)
                goto fail;
        wal = path_join(l.data_directory, "pg_wal");
        if (!wal || lstat(wal, &st) < 0) {
                set_err(err, "cannot find pg_wal in the data directory", NULL);
                goto fail;
        }
        l.wal_is_link = S_ISLNK(st.st_mode);
        l.wal_directory = real_dir(wal, "pg_wal", err);
        if (!l.wal_directory)
                goto fail;

        r = pg_query(conn,
                     "SELECT oid, spcname, pg_tablespace_location(oid) FROM pg_tablespace "
                     "WHERE pg_tablespace_location(oid) <> '' ORDER BY oid",
                     timeout_ms, err);
        if (!r)
                goto fail;
        l.tablespaces = calloc((size_t)PQntuples(r) + 1, sizeof(*l.tablespaces));
        if (!l.tablespaces) {
                PQclear(r);
                set_err(err, "out of memory", NULL);
                goto fail;
        }
        for (int i = 0; i < PQntuples(r); i++) {
                struct pg_tablespace *t = &l.tablespaces[l.n_tablespaces];
                char what[300];

                t->oid = (unsigned)strtoul(PQgetvalue(r, i, 0), NULL, 10);
                t->name = strdup(PQgetvalue(r, i, 1));
                fmt_trunc(what, sizeof(what), "tablespace %s", PQgetvalue(r, i, 1));
                t->location = real_dir(PQgetvalue(r, i, 2), what, err);
                l.n_tablespaces++;
                if (!t->name || !t->location) {
                        PQclear(r);
                        goto fail;
                }
        }
        PQclear(r);
        *ret = l;
        return 0;
fail:
        pg_layout_done(&l);
        return -1;
}
