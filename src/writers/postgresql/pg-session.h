/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The PostgreSQL writer's session with its server, and what it learns from it.
 *
 * Every query runs with a client-side deadline (libpq's asynchronous API and
 * poll()): a handler must answer within its event's time even when the server
 * hangs, so a query that outlives its deadline closes the connection (the
 * writer reconnects later) instead of blocking.  Statements that may
 * legitimately take long (CHECKPOINT) also get a statement_timeout a little
 * shorter than the deadline, so the server cancels them cleanly first.
 *
 * The layout is where the cluster's files live, as the server says and the
 * file system resolves: the data directory, the real directory of pg_wal (a
 * symlink when initdb --waldir put it elsewhere) and every tablespace's
 * location.  Paths are canonical (realpath), so two layouts compare equal
 * exactly when they name the same directories.
 */

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pg_tablespace {
        unsigned oid;
        char *name;
        char *location;         /* canonical */
};

struct pg_layout {
        char *data_directory;   /* canonical */
        char *wal_directory;    /* canonical target of pg_wal */
        bool wal_is_link;       /* pg_wal is a symlink (to wal_directory) */
        struct pg_tablespace *tablespaces;
        size_t n_tablespaces;
        char *server_version;   /* "15.18 (Debian 15.18-0+deb12u1)" */
        int server_version_num; /* 150018 */
};

void pg_layout_done(struct pg_layout *l);
bool pg_layout_equal(const struct pg_layout *a, const struct pg_layout *b);

/* One query's result: NULL on failure, with the reason (and SQLSTATE, if the server sent
 * one) in err/sqlstate.  'timed_out' is set when the client-side deadline passed, in which
 * case the connection has been closed. */
struct pg_error {
        char message[1024];
        char sqlstate[6];
        bool timed_out;
        bool connection_lost;
};

PGresult *pg_query(PGconn **conn, const char *sql, int64_t timeout_ms, struct pg_error *err);
/* The first column of the first row as a new string, or NULL. */
char *pg_query_value(PGconn **conn, const char *sql, int64_t timeout_ms, struct pg_error *err);

/* Reads the layout from the server (and resolves it on this machine). 0, or -1 with err. */
int pg_layout_read(PGconn **conn, struct pg_layout *ret, int64_t timeout_ms, struct pg_error *err);

/* Opens a connection with conninfo, a connect timeout of 'timeout_s' unless conninfo sets
 * one, and the application name vss-writer-postgresql.  NULL with err on failure. */
PGconn *pg_connect(const char *conninfo, int timeout_s, struct pg_error *err);
