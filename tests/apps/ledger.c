/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ledger: the write load and the checker of the application-writer tests and
 * of bench/apps, for PostgreSQL (libpq), MariaDB (libmariadb) and SQLite.
 *
 *     ledger init   BACKEND TARGET [--accounts N] [--initial AMOUNT]
 *     ledger run    BACKEND TARGET --log DIR [--clients N] [--duration S] [--stop-file F] [--rate R]
 *                   [--think-us US]
 *     ledger verify BACKEND TARGET --log DIR [--before US] [--accounts N] [--initial AMOUNT]
 *
 * BACKEND is pg (TARGET a libpq conninfo), mariadb (TARGET a defaults file,
 * [client] section) or sqlite (TARGET a database file).
 *
 * The schema is a bank: accounts(id, balance) and ledger(client, seq, src,
 * dst, amount, at_us).  Each client of `run` is a thread with its own
 * connection, committing transactions that insert its next (client, seq)
 * into the ledger and move the amount between two accounts (updated in id
 * order, so two clients never deadlock).  After the server acknowledged a
 * COMMIT the client appends "seq ack_realtime_us latency_us" to
 * DIR/client-K.log with one write(), so the log holds exactly the
 * acknowledged commits at any instant.  A failed transaction is rolled back
 * and retried; a lost connection is reopened and the client resumes after
 * the last seq the database holds for it (a commit whose acknowledgement was
 * lost is in the database but not in the log: the checker allows that one).
 * --rate R paces each client to at most R commits per second (0: as fast as
 * the server goes, what bench/apps measures; the tests pace the load so that
 * restores and checks are not starved on a small machine).  --think-us US
 * makes each client pause that long after each commit: SQLite's lock is not
 * fair, and a client that begins its next transaction the instant it
 * committed keeps the lock from the others for seconds.
 *
 * `verify` checks a restored copy: every commit acknowledged before --before
 * (realtime microseconds, taken before vshadow started) is there, each
 * client's seqs form a gapless prefix 1..M with M at most one beyond its last
 * logged acknowledgement, the accounts' total is accounts x initial, and each
 * balance equals initial plus what the ledger moved in minus out.  It prints
 * one line "ok: ..." or "FAIL: ..." (exit 1).
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <mysql.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum backend { B_PG, B_MARIADB, B_SQLITE };

struct conn {
        enum backend b;
        PGconn *pg;
        MYSQL *my;
        sqlite3 *lite;
        char err[1024];
};

static uint64_t now_us(clockid_t c)
{
        struct timespec ts;

        clock_gettime(c, &ts);
        return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void die(const char *fmt, ...)
{
        va_list ap;

        fputs("ledger: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        exit(2);
}

/* ---- a minimal client over the three libraries ------------------------------------------ */

static int busy_retry(void *userdata, int count)
{
        (void)userdata;
        if (count >= 120000)
                return 0;       /* two minutes: something is wrong */
        usleep(1000);
        return 1;
}

static int conn_open(struct conn *c, enum backend b, const char *target)
{
        memset(c, 0, sizeof(*c));
        c->b = b;
        switch (b) {
        case B_PG:
                c->pg = PQconnectdb(target);
                if (PQstatus(c->pg) != CONNECTION_OK) {
                        snprintf(c->err, sizeof(c->err), "%s", PQerrorMessage(c->pg));
                        PQfinish(c->pg);
                        c->pg = NULL;
                        return -1;
                }
                return 0;
        case B_MARIADB: {
                unsigned timeout = 10;

                mysql_thread_init();
                c->my = mysql_init(NULL);
                mysql_options(c->my, MYSQL_READ_DEFAULT_FILE, target);
                mysql_options(c->my, MYSQL_READ_DEFAULT_GROUP, "client");
                mysql_options(c->my, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
                if (!mysql_real_connect(c->my, NULL, NULL, NULL, NULL, 0, NULL, 0)) {
                        snprintf(c->err, sizeof(c->err), "%s", mysql_error(c->my));
                        mysql_close(c->my);
                        c->my = NULL;
                        return -1;
                }
                mysql_autocommit(c->my, 0);
                return 0;
        }
        case B_SQLITE:
                if (sqlite3_open_v2(target, &c->lite, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
                        snprintf(c->err, sizeof(c->err), "%s", sqlite3_errmsg(c->lite));
                        sqlite3_close(c->lite);
                        c->lite = NULL;
                        return -1;
                }
                /* Retry every millisecond, as vss-writer-sqlite does: SQLite's own busy_timeout
                 * sleeps up to 100 ms between tries and starves unlucky clients for seconds,
                 * which would swamp the latencies bench/apps measures. */
                sqlite3_busy_handler(c->lite, busy_retry, NULL);
                return 0;
        }
        return -1;
}

static void conn_close(struct conn *c)
{
        if (c->pg)
                PQfinish(c->pg);
        if (c->my)
                mysql_close(c->my);
        if (c->lite)
                sqlite3_close(c->lite);
        c->pg = NULL;
        c->my = NULL;
        c->lite = NULL;
}

static bool conn_broken(struct conn *c)
{
        switch (c->b) {
        case B_PG:
                return !c->pg || PQstatus(c->pg) != CONNECTION_OK;
        case B_MARIADB: {
                unsigned e = c->my ? mysql_errno(c->my) : 2006;
                return !c->my || e == 2006 || e == 2013 || e == 2002 || e == 2003 || e == 4031 || e == 1927;
        }
        case B_SQLITE:
                return !c->lite;
        }
        return true;
}

/* Runs one statement; 0, or -1 with the message in c->err. */
static int conn_exec(struct conn *c, const char *sql)
{
        switch (c->b) {
        case B_PG: {
                PGresult *r = PQexec(c->pg, sql);
                ExecStatusType st = PQresultStatus(r);
                int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;

                if (!ok)
                        snprintf(c->err, sizeof(c->err), "%s", PQresultErrorMessage(r));
                /* COMMIT of a transaction that failed reports "ROLLBACK": not acknowledged. */
                if (ok && strncmp(sql, "COMMIT", 6) == 0 && strcmp(PQcmdStatus(r), "COMMIT") != 0) {
                        snprintf(c->err, sizeof(c->err), "COMMIT answered %s", PQcmdStatus(r));
                        ok = 0;
                }
                PQclear(r);
                return ok ? 0 : -1;
        }
        case B_MARIADB:
                if (strcmp(sql, "COMMIT") == 0 ? mysql_commit(c->my) : mysql_query(c->my, sql)) {
                        snprintf(c->err, sizeof(c->err), "%u: %s", mysql_errno(c->my), mysql_error(c->my));
                        return -1;
                }
                if (mysql_field_count(c->my) > 0)
                        mysql_free_result(mysql_store_result(c->my));
                return 0;
        case B_SQLITE: {
                char *e = NULL;
                if (sqlite3_exec(c->lite, sql, NULL, NULL, &e) != SQLITE_OK) {
                        snprintf(c->err, sizeof(c->err), "%s", e ? e : sqlite3_errmsg(c->lite));
                        sqlite3_free(e);
                        return -1;
                }
                return 0;
        }
        }
        return -1;
}

/* Runs a query whose rows are integers, calling fn for each row. */
static int conn_query(struct conn *c, const char *sql, void (*fn)(void *, int, const long long *), void *ud)
{
        long long v[8];

        switch (c->b) {
        case B_PG: {
                PGresult *r = PQexec(c->pg, sql);
                if (PQresultStatus(r) != PGRES_TUPLES_OK) {
                        snprintf(c->err, sizeof(c->err), "%s", PQresultErrorMessage(r));
                        PQclear(r);
                        return -1;
                }
                for (int i = 0; i < PQntuples(r); i++) {
                        int n = PQnfields(r) > 8 ? 8 : PQnfields(r);
                        for (int j = 0; j < n; j++)
                                v[j] = PQgetisnull(r, i, j) ? 0 : strtoll(PQgetvalue(r, i, j), NULL, 10);
                        fn(ud, n, v);
                }
                PQclear(r);
                return 0;
        }
        case B_MARIADB: {
                MYSQL_RES *res;
                MYSQL_ROW row;

                if (mysql_query(c->my, sql) || !(res = mysql_store_result(c->my))) {
                        snprintf(c->err, sizeof(c->err), "%u: %s", mysql_errno(c->my), mysql_error(c->my));
                        return -1;
                }
                while ((row = mysql_fetch_row(res))) {
                        int n = mysql_num_fields(res) > 8 ? 8 : (int)mysql_num_fields(res);
                        for (int j = 0; j < n; j++)
                                v[j] = row[j] ? strtoll(row[j], NULL, 10) : 0;
                        fn(ud, n, v);
                }
                mysql_free_result(res);
                return 0;
        }
        case B_SQLITE: {
                sqlite3_stmt *st;
                int rc;

                if (sqlite3_prepare_v2(c->lite, sql, -1, &st, NULL) != SQLITE_OK) {
                        snprintf(c->err, sizeof(c->err), "%s", sqlite3_errmsg(c->lite));
                        return -1;
                }
                while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                        int n = sqlite3_column_count(st) > 8 ? 8 : sqlite3_column_count(st);
                        for (int j = 0; j < n; j++)
                                v[j] = sqlite3_column_int64(st, j);
                        fn(ud, n, v);
                }
                if (rc != SQLITE_DONE)
                        snprintf(c->err, sizeof(c->err), "%s", sqlite3_errmsg(c->lite));
                sqlite3_finalize(st);
                return rc == SQLITE_DONE ? 0 : -1;
        }
        }
        return -1;
}

static void take_one(void *ud, int n, const long long *v)
{
        if (n > 0)
                *(long long *)ud = v[0];
}

static int query_one(struct conn *c, const char *sql, long long *ret)
{
        *ret = 0;
        return conn_query(c, sql, take_one, ret);
}

static void rollback(struct conn *c)
{
        if (c->b == B_MARIADB && c->my)
                mysql_rollback(c->my);
        else if (!conn_broken(c))
                conn_exec(c, "ROLLBACK");
}

/* ---- init -------------------------------------------------------------------------------- */

static void cmd_init(enum backend b, const char *target, int accounts, long long initial)
{
        struct conn c;
        char sql[256];
        const char *engine = b == B_MARIADB ? " ENGINE=InnoDB" : "";

        if (conn_open(&c, b, target) < 0)
                die("cannot connect to %s: %s", target, c.err);
        snprintf(sql, sizeof(sql), "CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance BIGINT NOT NULL)%s",
                 engine);
        if (conn_exec(&c, sql) < 0)
                die("%s: %s", sql, c.err);
        snprintf(sql, sizeof(sql),
                 "CREATE TABLE ledger (client INTEGER NOT NULL, seq INTEGER NOT NULL, src INTEGER NOT NULL, "
                 "dst INTEGER NOT NULL, amount BIGINT NOT NULL, at_us BIGINT NOT NULL, note VARCHAR(200), "
                 "PRIMARY KEY (client, seq))%s", engine);
        if (conn_exec(&c, sql) < 0)
                die("%s: %s", sql, c.err);
        if (conn_exec(&c, "BEGIN") < 0)
                die("BEGIN: %s", c.err);
        for (int i = 1; i <= accounts; i++) {
                snprintf(sql, sizeof(sql), "INSERT INTO accounts VALUES (%d, %lld)", i, initial);
                if (conn_exec(&c, sql) < 0)
                        die("%s: %s", sql, c.err);
        }
        if (conn_exec(&c, "COMMIT") < 0)
                die("COMMIT: %s", c.err);
        conn_close(&c);
}

/* ---- run --------------------------------------------------------------------------------- */

struct client {
        pthread_t thread;
        int id;
        enum backend b;
        const char *target;
        const char *log_dir;
        int accounts;
        uint64_t end_us;
        double rate;
        unsigned think_us;
        const char *stop_file;
        uint64_t start_us;
        long long commits, retries, reconnects;
};

#define MIN(a, b) ((a) < (b) ? (a) : (b))

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
        (void)sig;
        stopping = 1;
}

static bool should_stop(struct client *cl)
{
        struct stat st;

        if (stopping || now_us(CLOCK_MONOTONIC) >= cl->end_us)
                return true;
        return cl->stop_file && stat(cl->stop_file, &st) == 0;
}

static void *client_main(void *userdata)
{
        struct client *cl = userdata;
        char path[4096], sql[512], line[96];
        unsigned seed = (unsigned)(cl->id * 7919 + now_us(CLOCK_REALTIME));
        struct conn c = { .b = cl->b };
        long long seq = 0;
        bool connected = false;
        int fd;

        snprintf(path, sizeof(path), "%s/client-%d.log", cl->log_dir, cl->id);
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0)
                die("%s: %s", path, strerror(errno));

        while (!should_stop(cl)) {
                uint64_t t0;
                int src, dst, lo, hi;
                long long amount;

                if (cl->rate > 0) {
                        /* Pace to the rate: the next commit no earlier than its slot. */
                        uint64_t slot = cl->start_us + (uint64_t)((double)cl->commits * 1e6 / cl->rate), now;
                        while (!should_stop(cl) && (now = now_us(CLOCK_MONOTONIC)) < slot)
                                usleep((useconds_t)MIN(slot - now, (uint64_t)100000));
                }
                if (!connected) {
                        if (conn_open(&c, cl->b, cl->target) < 0) {
                                usleep(100000);
                                continue;
                        }
                        snprintf(sql, sizeof(sql), "SELECT COALESCE(MAX(seq), 0) FROM ledger WHERE client = %d",
                                 cl->id);
                        if (query_one(&c, sql, &seq) < 0) {
                                conn_close(&c);
                                usleep(100000);
                                continue;
                        }
                        if (cl->b == B_MARIADB)
                                mysql_commit(c.my);     /* end the read's snapshot */
                        connected = true;
                        cl->reconnects++;
                }
                src = 1 + (int)(rand_r(&seed) % (unsigned)cl->accounts);
                do
                        dst = 1 + (int)(rand_r(&seed) % (unsigned)cl->accounts);
                while (dst == src && cl->accounts > 1);
                amount = 1 + rand_r(&seed) % 100;
                lo = src < dst ? src : dst;
                hi = src < dst ? dst : src;

                t0 = now_us(CLOCK_MONOTONIC);
                bool ok = conn_exec(&c, cl->b == B_SQLITE ? "BEGIN IMMEDIATE" : "BEGIN") == 0;
                if (ok) {
                        snprintf(sql, sizeof(sql),
                                 "INSERT INTO ledger VALUES (%d, %lld, %d, %d, %lld, %" PRIu64 ", "
                                 "'transfer of %lld from account %d to account %d by client %d')",
                                 cl->id, seq + 1, src, dst, amount, now_us(CLOCK_REALTIME), amount, src, dst, cl->id);
                        ok = conn_exec(&c, sql) == 0;
                }
                /* Both rows in id order: no two clients wait for each other. */
                for (int k = 0; ok && k < 2; k++) {
                        int id = k == 0 ? lo : hi;
                        snprintf(sql, sizeof(sql), "UPDATE accounts SET balance = balance %c %lld WHERE id = %d",
                                 id == src ? '-' : '+', amount, id);
                        ok = conn_exec(&c, sql) == 0;
                }
                if (ok)
                        ok = conn_exec(&c, "COMMIT") == 0;
                if (!ok) {
                        cl->retries++;
                        if (conn_broken(&c)) {
                                conn_close(&c);
                                connected = false;
                        } else
                                rollback(&c);
                        continue;
                }
                uint64_t ack = now_us(CLOCK_REALTIME), lat = now_us(CLOCK_MONOTONIC) - t0;
                seq++;
                cl->commits++;
                int n = snprintf(line, sizeof(line), "%lld %" PRIu64 " %" PRIu64 "\n", seq, ack, lat);
                if (write(fd, line, (size_t)n) != n)
                        die("%s: %s", path, strerror(errno));
                if (cl->think_us)
                        usleep(cl->think_us);
        }
        conn_close(&c);
        close(fd);
        if (cl->b == B_MARIADB)
                mysql_thread_end();
        return NULL;
}

static void cmd_run(enum backend b, const char *target, const char *log_dir, int clients, double duration,
                    const char *stop_file, int accounts, double rate, unsigned think_us)
{
        struct client *cls = calloc((size_t)clients, sizeof(*cls));
        struct sigaction sa = { .sa_handler = on_signal };
        long long commits = 0, retries = 0;

        if (!cls)
                die("out of memory");
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        if (b == B_MARIADB)
                mysql_library_init(0, NULL, NULL);
        for (int i = 0; i < clients; i++) {
                cls[i] = (struct client){ .id = i + 1, .b = b, .target = target, .log_dir = log_dir,
                                          .accounts = accounts, .stop_file = stop_file, .rate = rate, .think_us = think_us,
                                          .start_us = now_us(CLOCK_MONOTONIC),
                                          .end_us = now_us(CLOCK_MONOTONIC) + (uint64_t)(duration * 1e6) };
                if (pthread_create(&cls[i].thread, NULL, client_main, &cls[i]) != 0)
                        die("cannot start a client thread");
        }
        for (int i = 0; i < clients; i++) {
                pthread_join(cls[i].thread, NULL);
                commits += cls[i].commits;
                retries += cls[i].retries;
        }
        printf("clients=%d commits=%lld retries=%lld\n", clients, commits, retries);
        free(cls);
}

/* ---- verify ------------------------------------------------------------------------------ */

struct client_log {
        long long max_before;   /* last seq acknowledged before --before */
        long long max_logged;
        long long n_logged;
};

static int read_logs(const char *dir, uint64_t before, struct client_log *logs, int max)
{
        int n = 0;

        for (int id = 1; id <= max; id++) {
                char path[4096], line[128];
                struct client_log *l = &logs[id];
                FILE *f;

                snprintf(path, sizeof(path), "%s/client-%d.log", dir, id);
                f = fopen(path, "re");
                if (!f)
                        break;
                *l = (struct client_log){ 0 };
                while (fgets(line, sizeof(line), f)) {
                        long long seq;
                        unsigned long long ack, lat;

                        if (sscanf(line, "%lld %llu %llu", &seq, &ack, &lat) != 3)
                                die("%s: bad line '%s'", path, line);
                        if (seq != l->max_logged + 1)
                                die("%s: seq %lld follows %lld", path, seq, l->max_logged);
                        l->max_logged = seq;
                        l->n_logged++;
                        if (ack < before)
                                l->max_before = seq;
                }
                fclose(f);
                n = id;
        }
        return n;
}

struct client_rows {
        long long count, min, max;
};

static void take_client_rows(void *ud, int n, const long long *v)
{
        struct client_rows *rows = ud;

        if (n == 4 && v[0] > 0 && v[0] < 1024)
                rows[v[0]] = (struct client_rows){ .count = v[1], .min = v[2], .max = v[3] };
}

struct balance_check {
        long long initial;
        long long bad_id, bad_balance, bad_expected;
        long long n;
};

static void take_balance(void *ud, int n, const long long *v)
{
        struct balance_check *bc = ud;

        /* id, balance, moved in, moved out */
        if (n == 4) {
                bc->n++;
                if (v[1] != bc->initial + v[2] - v[3] && !bc->bad_id) {
                        bc->bad_id = v[0];
                        bc->bad_balance = v[1];
                        bc->bad_expected = bc->initial + v[2] - v[3];
                }
        }
}

static int cmd_verify(enum backend b, const char *target, const char *log_dir, uint64_t before, int accounts,
                      long long initial)
{
        static struct client_log logs[1024];
        static struct client_rows rows[1024];
        struct balance_check bc = { .initial = initial };
        long long total, n_rows, acked_before = 0;
        struct conn c;
        int n_clients;

        n_clients = read_logs(log_dir, before, logs, 1023);
        if (n_clients == 0)
                die("no client logs in %s", log_dir);
        if (conn_open(&c, b, target) < 0) {
                printf("FAIL: cannot connect to the restored database: %s\n", c.err);
                return 1;
        }
        if (conn_query(&c, "SELECT client, COUNT(*), MIN(seq), MAX(seq) FROM ledger GROUP BY client",
                       take_client_rows, rows) < 0 ||
            query_one(&c, "SELECT COUNT(*) FROM ledger", &n_rows) < 0 ||
            query_one(&c, "SELECT SUM(balance) FROM accounts", &total) < 0 ||
            conn_query(&c,
                       "SELECT a.id, a.balance, "
                       "COALESCE((SELECT SUM(amount) FROM ledger WHERE dst = a.id), 0), "
                       "COALESCE((SELECT SUM(amount) FROM ledger WHERE src = a.id), 0) FROM accounts a",
                       take_balance, &bc) < 0) {
                printf("FAIL: query on the restored database: %s\n", c.err);
                return 1;
        }
        conn_close(&c);

        for (int id = 1; id <= n_clients; id++) {
                struct client_rows *r = &rows[id];
                struct client_log *l = &logs[id];

                acked_before += l->max_before;
                if (r->count > 0 && (r->min != 1 || r->max != r->count)) {
                        printf("FAIL: client %d: seqs %lld..%lld with %lld rows: not a gapless prefix\n", id,
                               r->min, r->max, r->count);
                        return 1;
                }
                if (r->max < l->max_before) {
                        printf("FAIL: client %d: commit %lld was acknowledged before the backup started, the "
                               "restored database ends at %lld\n", id, l->max_before, r->max);
                        return 1;
                }
                if (r->max > l->max_logged + 1) {
                        printf("FAIL: client %d: the restored database has seq %lld, the client logged only "
                               "%lld acknowledgements\n", id, r->max, l->max_logged);
                        return 1;
                }
        }
        if (total != (long long)accounts * initial) {
                printf("FAIL: the accounts hold %lld in all, not %lld\n", total, (long long)accounts * initial);
                return 1;
        }
        if (bc.n != accounts) {
                printf("FAIL: %lld accounts, not %d\n", bc.n, accounts);
                return 1;
        }
        if (bc.bad_id) {
                printf("FAIL: account %lld holds %lld, its ledger says %lld\n", bc.bad_id, bc.bad_balance,
                       bc.bad_expected);
                return 1;
        }
        printf("ok: %d clients, %lld ledger rows, %lld commits acknowledged before the backup all present, "
               "total %lld\n", n_clients, n_rows, acked_before, total);
        return 0;
}

/* ---- main -------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
        const char *cmd, *target, *log_dir = NULL, *stop_file = NULL;
        int clients = 4, accounts = 100;
        long long initial = 10000;
        double duration = 3600, rate = 0;
        unsigned think_us = 0;
        uint64_t before = UINT64_MAX;
        enum backend b;

        if (argc < 4)
                die("usage: ledger init|run|verify pg|mariadb|sqlite TARGET [options] (see ledger.c)");
        cmd = argv[1];
        if (strcmp(argv[2], "pg") == 0)
                b = B_PG;
        else if (strcmp(argv[2], "mariadb") == 0)
                b = B_MARIADB;
        else if (strcmp(argv[2], "sqlite") == 0)
                b = B_SQLITE;
        else
                die("unknown backend '%s'", argv[2]);
        target = argv[3];
        for (int i = 4; i < argc; i++) {
                const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

                if (!v)
                        die("option %s needs a value", o);
                i++;
                if (strcmp(o, "--log") == 0)
                        log_dir = v;
                else if (strcmp(o, "--clients") == 0)
                        clients = (int)strtol(v, NULL, 10);
                else if (strcmp(o, "--duration") == 0)
                        duration = atof(v);
                else if (strcmp(o, "--think-us") == 0)
                        think_us = (unsigned)strtol(v, NULL, 10);
                else if (strcmp(o, "--rate") == 0)
                        rate = atof(v);
                else if (strcmp(o, "--stop-file") == 0)
                        stop_file = v;
                else if (strcmp(o, "--accounts") == 0)
                        accounts = (int)strtol(v, NULL, 10);
                else if (strcmp(o, "--initial") == 0)
                        initial = strtoll(v, NULL, 10);
                else if (strcmp(o, "--before") == 0)
                        before = strtoull(v, NULL, 10);
                else
                        die("unknown option %s", o);
        }
        if (clients < 1 || clients > 1000 || accounts < 2)
                die("bad --clients or --accounts");
        if (strcmp(cmd, "init") == 0) {
                cmd_init(b, target, accounts, initial);
                return 0;
        }
        if (!log_dir)
                die("%s needs --log DIR", cmd);
        if (strcmp(cmd, "run") == 0) {
                cmd_run(b, target, log_dir, clients, duration, stop_file, accounts, rate, think_us);
                return 0;
        }
        if (strcmp(cmd, "verify") == 0)
                return cmd_verify(b, target, log_dir, before, accounts, initial);
        die("unknown command '%s'", cmd);
        return 2;
}
