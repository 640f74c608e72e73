/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vss-writer-sqlite: the VSS writer for SQLite databases.
 *
 *     vss-writer-sqlite --database /srv/app/app.db [--database ...] [--freeze-timeout MS]
 *
 * SQLite has no server to ask: the writer opens each database itself and
 * uses SQLite's own locks.  One component per database (named by its path),
 * whose files are the database and its -wal and -journal; the writer's
 * volumes are the directories holding them.
 *
 *   PrepareForSnapshot  PRAGMA wal_checkpoint(TRUNCATE) for WAL databases, so
 *                       the shadow copy holds (almost) everything in the main
 *                       file; a PASSIVE checkpoint first, which does not stop
 *                       commits, leaves the TRUNCATE (which does) little to copy.  It waits for other connections no longer than
 *                       the freeze timeout (and the event's time); one they
 *                       keep from finishing is not an error, the WAL is in the
 *                       same shadow copy.
 *   Freeze              BEGIN IMMEDIATE on each database, in the order given,
 *                       with busy_timeout = what is left of the freeze window:
 *                       no other connection can commit while it is held, and
 *                       no commit is half-written (a rollback journal is hot
 *                       only while its writer holds the lock we now hold).  A
 *                       database that stays locked by someone else vetoes with
 *                       VSS_E_WRITERERROR_RETRYABLE, naming the process that
 *                       holds the lock when /proc/locks tells.  Metadata per
 *                       database: journal mode, page size, page count, read
 *                       under the lock.
 *   Thaw, Abort         ROLLBACK (nothing was written).  libvss calls Abort
 *                       itself when the freeze deadline passes or vssd goes
 *                       away, so the lock never outlives the freeze window
 *                       plus libvss's grace; if the writer dies, its locks die
 *                       with its file descriptors.
 *   PreRestore          vetoes (RETRYABLE) while another process has the
 *                       target database or its -wal/-journal open; closes the
 *                       writer's own connection and moves the live -wal, -shm
 *                       and -journal aside, so no journal of the old database
 *                       is ever applied to the restored file.
 *   PostRestore         files restored: PRAGMA quick_check and the page count
 *                       against the metadata, the moved-aside files deleted;
 *                       nothing restored: the moved-aside files put back.
 *
 * "Reconnecting" is reopening: between events every database is checked
 * (db-link.c); a file that was replaced (another inode: a restore, an
 * application's VACUUM INTO + rename) or that appears is reopened.
 */

#include <fcntl.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "basic/log.h"
#include "basic/macro.h"
#include "basic/string-util.h"
#include "basic/time-util.h"
#include "common/db-link.h"
#include "common/proc-util.h"
#include "common/writer-app.h"

/* Kept back from each event's time for the reply and the bookkeeping after the wait. */
#define MARGIN_MS 150
/* The byte SQLite's rollback-journal RESERVED lock covers, and the WAL writer lock's byte
 * in the -shm file (SQLite's file format documentation, "Locking"). */
#define RESERVED_BYTE 0x40000001LL
#define WAL_WRITE_LOCK_BYTE 120LL
#define SAVED_SUFFIX ".vss-pre-restore"

static const char *const journal_suffixes[] = { "-wal", "-shm", "-journal" };

static char *suffixed(const char *path, const char *suffix, const char *more)
{
        char *r;

        if (asprintf(&r, "%s%s%s", path, suffix, more ? more : "") < 0)
                return NULL;
        return r;
}

struct sdb {
        char *path;             /* canonical directory + file name */
        char *dir;
        char *base;
        sqlite3 *db;
        dev_t dev;
        ino_t ino;
        struct db_link link;
        bool locked;
        uint64_t locked_at_us;
        uint64_t busy_deadline_us;      /* for busy_until() */
        bool restoring;         /* between PreRestore and PostRestore */
        bool saved[ARRAY_SIZE(journal_suffixes)];
        char *restore_path;     /* where PreRestore found the target */
};

struct app {
        struct sdb **dbs;       /* each on its own: its db_link points at it */
        size_t n_dbs;
        uint32_t checkpoint_wait_ms;    /* the longest the checkpoint waits for other connections */
};

/* ---- one database ---------------------------------------------------------------------- */

static int sdb_connect(void *userdata, char *err, size_t errlen)
{
        struct sdb *d = userdata;
        struct stat st;
        sqlite3 *db = NULL;
        int rc;

        if (stat(d->path, &st) < 0) {
                fmt_trunc(err, errlen, "%s", strerror(errno));
                return -errno;
        }
        rc = sqlite3_open_v2(d->path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
        if (rc != SQLITE_OK) {
                fmt_trunc(err, errlen, "%s", db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
                sqlite3_close(db);
                return -EIO;
        }
        sqlite3_extended_result_codes(db, 1);
        /* One read proves the file is a database, and attaches us to its WAL index, so the
         * WAL stays while we are there as with any long-lived connection. */
        sqlite3_busy_timeout(db, 1000);
        rc = sqlite3_exec(db, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
                fmt_trunc(err, errlen, "%s", sqlite3_errmsg(db));
                sqlite3_close(db);
                return -EIO;
        }
        d->db = db;
        d->dev = st.st_dev;
        d->ino = st.st_ino;
        return 0;
}

static void sdb_disconnect(void *userdata)
{
        struct sdb *d = userdata;

        if (d->db) {
                if (d->locked)
                        sqlite3_exec(d->db, "ROLLBACK", NULL, NULL, NULL);
                sqlite3_close_v2(d->db);
        }
        d->db = NULL;
        d->locked = false;
}

/* The connection is as good as the file it has open: replaced or gone means reopen. */
static bool sdb_alive(void *userdata)
{
        struct sdb *d = userdata;
        struct stat st;

        if (!d->db)
                return false;
        if (d->locked)
                return true;    /* never drop a held lock behind the handlers' back */
        return stat(d->path, &st) == 0 && st.st_dev == d->dev && st.st_ino == d->ino;
}

static int sdb_init(struct sdb *d, const char *path, char *err, size_t errlen)
{
        const char *slash = strrchr(path, '/');

        *d = (struct sdb){ 0 };
        d->dir = path_real_dirname(path);
        if (!d->dir) {
                fmt_trunc(err, errlen, "database %s: directory %s: %s", path,
                          slash ? (slash == path ? "/" : "its parent") : ".", strerror(errno));
                return -ENOENT;
        }
        d->base = strdup(slash ? slash + 1 : path);
        if (!d->base || !*d->base) {
                fmt_trunc(err, errlen, "database '%s' names no file", path);
                return -EINVAL;
        }
        d->path = path_join(d->dir, d->base);
        if (!d->path)
                return -ENOMEM;
        d->link = (struct db_link){ .connect = sdb_connect, .disconnect = sdb_disconnect, .alive = sdb_alive,
                                    .userdata = d };
        return 0;
}

static void sdb_done(struct sdb *d)
{
        db_link_close(&d->link);
        free((char *)d->link.what);
        free(d->path);
        free(d->dir);
        free(d->base);
        free(d->restore_path);
}

/*
 * The busy handler of the writer's lock waits.  SQLite's own (sqlite3_busy_timeout) sleeps
 * longer and longer, up to 100 ms a try, and is not fair: under a steady stream of short
 * transactions from other connections the writer would hardly ever be the one that finds
 * the lock free, and Freeze would veto although every transaction is short.  This one
 * tries again every millisecond until the deadline, so the writer takes the lock at the
 * first gap between two commits.
 */
static int busy_until(void *userdata, int count)
{
        const uint64_t *deadline = userdata;

        (void)count;
        if (clock_monotonic_us() >= *deadline)
                return 0;
        usleep(1000);
        return 1;
}

static void set_busy_deadline(struct sdb *d, int64_t budget_ms)
{
        d->busy_deadline_us = clock_monotonic_us() + (uint64_t)MAX(budget_ms, (int64_t)0) * USEC_PER_MSEC;
        sqlite3_busy_handler(d->db, busy_until, &d->busy_deadline_us);
}

/* One value of a single-row PRAGMA as text (NULL on error, with the message in err). */
static char *pragma_text(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
        sqlite3_stmt *st = NULL;
        char *r = NULL;
        int rc;

        rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
        if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
                const unsigned char *t = sqlite3_column_text(st, 0);
                r = strdup(t ? (const char *)t : "");
        } else
                fmt_trunc(err, errlen, "%s: %s", sql, sqlite3_errmsg(db));
        sqlite3_finalize(st);
        return r;
}

static bool pragma_int(sqlite3 *db, const char *sql, long long *ret, char *err, size_t errlen)
{
        _cleanup_free_ char *t = pragma_text(db, sql, err, errlen);
        char *end;

        if (!t)
                return false;
        *ret = strtoll(t, &end, 10);
        if (*end) {
                fmt_trunc(err, errlen, "%s returned '%s'", sql, t);
                return false;
        }
        return true;
}

/* Who holds the write lock of the database, from /proc/locks (a hint for the veto message:
 * inode numbers only, as btrfs reports another device there than stat() does). */
static pid_t lock_holder(struct sdb *d, bool wal)
{
        _cleanup_free_ char *shm = NULL;
        struct stat st;
        char line[256];
        pid_t found = 0;
        FILE *f;

        if (wal && !(shm = suffixed(d->path, "-shm", NULL)))
                return 0;
        if (stat(wal ? shm : d->path, &st) < 0)
                return 0;
        f = fopen("/proc/locks", "re");
        if (!f)
                return 0;
        while (!found && fgets(line, sizeof(line), f)) {
                char kind[16], mode[16], end_s[32];
                unsigned maj, min;
                unsigned long long ino;
                long long start, end;
                int pid;

                /* "1: POSIX  ADVISORY  WRITE 1234 00:2d:5678 1073741825 1073741825" */
                if (sscanf(line, "%*d: %15s %*s %15s %d %x:%x:%llu %lld %31s", kind, mode, &pid, &maj, &min, &ino,
                           &start, end_s) != 8)
                        continue;
                end = streq(end_s, "EOF") ? INT64_MAX : strtoll(end_s, NULL, 10);
                if (!streq(mode, "WRITE") || ino != (unsigned long long)st.st_ino || pid <= 0 || pid == getpid())
                        continue;
                long long byte = wal ? WAL_WRITE_LOCK_BYTE : RESERVED_BYTE;
                if (start <= byte && byte <= end)
                        found = pid;
        }
        fclose(f);
        return found;
}

static void unlock(struct sdb *d, const char *why)
{
        if (!d->locked)
                return;
        if (sqlite3_exec(d->db, "ROLLBACK", NULL, NULL, NULL) != SQLITE_OK) {
                /* The lock goes with the connection: never leave it held. */
                log_warn("%s: ROLLBACK failed (%s); closing the connection", d->path, sqlite3_errmsg(d->db));
                d->locked = false;
                db_link_lost(&d->link, "ROLLBACK failed");
        }
        if (d->locked)
                log_info("%s: unlocked at %s after %.3f s", d->path, why,
                         (double)(clock_monotonic_us() - d->locked_at_us) / 1e6);
        d->locked = false;
}

/* ---- options --------------------------------------------------------------------------- */

static const struct writer_app_option options[] = {
        { .name = "database", .arg = "PATH", .help = "an SQLite database file (give it once per database)",
          .multiple = true },
        { .name = NULL },
};

static int app_set(void *userdata, const char *key, const char *value, char *err, size_t errlen)
{
        struct app *a = userdata;
        struct sdb **n, *d;
        int r;

        if (!streq(key, "database"))
                return -EINVAL;
        n = realloc(a->dbs, (a->n_dbs + 1) * sizeof(*n));
        if (!n)
                return -ENOMEM;
        a->dbs = n;
        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        r = sdb_init(d, value, err, errlen);
        for (size_t i = 0; r >= 0 && i < a->n_dbs; i++)
                if (streq(a->dbs[i]->path, d->path)) {
                        fmt_trunc(err, errlen, "database %s is given twice", d->path);
                        r = -EINVAL;
                }
        if (r < 0) {
                sdb_done(d);
                free(d);
                return r;
        }
        n[a->n_dbs++] = d;
        return 0;
}

static int app_check(void *userdata, char *err, size_t errlen)
{
        struct app *a = userdata;

        if (a->n_dbs == 0) {
                fmt_trunc(err, errlen, "no database: give --database PATH (or database = PATH in --config)");
                return -EINVAL;
        }
        for (size_t i = 0; i < a->n_dbs; i++) {
                char *what;

                if (asprintf(&what, "database %s", a->dbs[i]->path) < 0)
                        return -ENOMEM;
                a->dbs[i]->link.what = what;
        }
        return 0;
}

/* ---- registration ------------------------------------------------------------------------ */

static int app_describe(void *userdata, struct writer_desc *d, char *err, size_t errlen)
{
        struct app *a = userdata;

        for (size_t i = 0; i < a->n_dbs; i++) {
                struct sdb *s = a->dbs[i];
                char caption[512];
                int c;

                fmt_trunc(caption, sizeof(caption), "SQLite database %s", s->base);
                if (writer_desc_add_volume(d, s->dir) < 0)
                        return -ENOMEM;
                c = writer_desc_add_component(d, VSS_CT_DATABASE, "", s->path, caption);
                if (c < 0)
                        return c;
                if (writer_desc_add_file(d, c, s->dir, s->base, false) < 0)
                        return -ENOMEM;
                for (size_t j = 0; j < ARRAY_SIZE(journal_suffixes); j++) {
                        char spec[512];

                        if (streq(journal_suffixes[j], "-shm"))
                                continue;       /* rebuilt from the WAL; never needed */
                        fmt_trunc(spec, sizeof(spec), "%s%s", s->base, journal_suffixes[j]);
                        if (writer_desc_add_file(d, c, s->dir, spec, false) < 0)
                                return -ENOMEM;
                }
        }
        (void)err;
        (void)errlen;
        return 0;
}

static bool app_tick(void *userdata)
{
        struct app *a = userdata;

        for (size_t i = 0; i < a->n_dbs; i++) {
                struct sdb *d = a->dbs[i];
                struct stat st;

                if (d->restoring)
                        continue;
                /* A missing file is not worth a reconnect loop in the log: open it when it appears. */
                if (!d->link.up && stat(d->path, &st) < 0)
                        continue;
                db_link_tick(&d->link);
        }
        return false;   /* the layout is the command line's: it never changes */
}

static void app_shutdown(void *userdata)
{
        struct app *a = userdata;

        for (size_t i = 0; i < a->n_dbs; i++) {
                unlock(a->dbs[i], "shutdown");
                db_link_close(&a->dbs[i]->link);
        }
}

/* ---- backup events --------------------------------------------------------------------- */

static bool selected(vss_writer *w, struct sdb *d)
{
        return vss_writer_is_component_selected(w, "", d->path);
}

/* Opens the database for an event; false when the file does not exist (nothing to quiesce). */
static bool open_for_event(vss_writer *w, struct sdb *d, bool *ret_ok)
{
        struct stat st;

        *ret_ok = true;
        if (db_link_ensure(&d->link, true))
                return true;
        if (stat(d->path, &st) < 0 && errno == ENOENT) {
                log_info("%s: %s does not exist; nothing to quiesce", writer_event_name(w), d->path);
                return false;
        }
        *ret_ok = writer_veto(w, VSS_E_WRITERERROR_NONRETRYABLE, "cannot open database %s: %s", d->path,
                              db_link_error(&d->link));
        return false;
}

static bool on_prepare_snapshot(vss_writer *w, void *userdata)
{
        struct app *a = userdata;

        for (size_t i = 0; i < a->n_dbs; i++) {
                struct sdb *d = a->dbs[i];
                _cleanup_free_ char *mode = NULL;
                char err[512];
                uint64_t t0, t_passive;
                int64_t budget;
                bool ok;

                if (!selected(w, d))
                        continue;
                if (!open_for_event(w, d, &ok)) {
                        if (!ok)
                                return false;
                        continue;
                }
                mode = pragma_text(d->db, "PRAGMA journal_mode", err, sizeof(err));
                if (!mode)
                        return writer_veto(w, VSS_E_WRITERERROR_NONRETRYABLE, "database %s: %s", d->path, err);
                if (strcasecmp(mode, "wal") != 0)
                        continue;

                /* A TRUNCATE checkpoint holds the database's write lock while it copies the WAL
                 * back and syncs the main file: every commit waits for it.  A PASSIVE one first
                 * copies what it can without the lock (commits go on meanwhile), so the
                 * TRUNCATE is left only the frames committed during the PASSIVE one. */
                t0 = clock_monotonic_us();
                int passive = -1;
                if (sqlite3_wal_checkpoint_v2(d->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, &passive) != SQLITE_OK)
                        passive = -1; /* another connection's checkpoint runs: TRUNCATE waits for it */
                t_passive = clock_monotonic_us();

                /* The checkpoint only shortens what the WAL holds: it waits for other connections
                 * no longer than a freeze may last, not the whole PrepareForSnapshot time. */
                budget = MIN(writer_budget_ms(w, MARGIN_MS), (int64_t)a->checkpoint_wait_ms);
                set_busy_deadline(d, budget);
                sqlite3_stmt *st = NULL;
                int rc = sqlite3_prepare_v2(d->db, "PRAGMA wal_checkpoint(TRUNCATE)", -1, &st, NULL);
                if (rc == SQLITE_OK)
                        rc = sqlite3_step(st);
                if (rc == SQLITE_ROW) {
                        int busy = sqlite3_column_int(st, 0), frames = sqlite3_column_int(st, 1),
                            done = sqlite3_column_int(st, 2);

                        if (busy)
                                log_warn("%s: wal_checkpoint(TRUNCATE) could not finish within %lld ms "
                                         "(%d of %d frames checkpointed); the shadow copy holds the WAL",
                                         d->path, (long long)budget, done, frames);
                        else
                                log_info("%s: WAL checkpointed and truncated in %.3f s (PASSIVE, %d frames: "
                                         "%.3f s; TRUNCATE, holding the write lock: %.3f s)",
                                         d->path, (double)(clock_monotonic_us() - t0) / 1e6, MAX(passive, 0),
                                         (double)(t_passive - t0) / 1e6,
                                         (double)(clock_monotonic_us() - t_passive) / 1e6);
                } else if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED) {
                        log_warn("%s: wal_checkpoint(TRUNCATE): %s after %lld ms; the shadow copy holds the WAL",
                                 d->path, sqlite3_errmsg(d->db), (long long)budget);
                } else {
                        char msg[512];

                        fmt_trunc(msg, sizeof(msg), "%s", sqlite3_errmsg(d->db));
                        sqlite3_finalize(st);
                        return writer_veto(w, VSS_E_WRITERERROR_NONRETRYABLE,
                                           "database %s: wal_checkpoint(TRUNCATE) failed: %s", d->path, msg);
                }
                sqlite3_finalize(st);
        }
        return true;
}

static void unlock_all(struct app *a, const char *why)
{
        for (size_t i = 0; i < a->n_dbs; i++)
                unlock(a->dbs[i], why);
}

static bool set_metadata(vss_writer *w, struct sdb *d, char *err, size_t errlen)
{
        _cleanup_free_ char *mode = NULL, *text = NULL;
        long long page_size, page_count;
        json_t *md;
        vss_hresult hr;

        mode = pragma_text(d->db, "PRAGMA journal_mode", err, errlen);
        if (!mode || !pragma_int(d->db, "PRAGMA page_size", &page_size, err, errlen) ||
            !pragma_int(d->db, "PRAGMA page_count", &page_count, err, errlen))
                return false;
        md = json_pack("{s:s, s:s, s:s, s:I, s:I, s:s}", "writer", "sqlite", "database", d->path, "journal_mode",
                       mode, "page_size", (json_int_t)page_size, "page_count", (json_int_t)page_count,
                       "sqlite_version", sqlite3_libversion());
        text = md ? json_dumps(md, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        json_decref(md);
        if (!text) {
                fmt_trunc(err, errlen, "out of memory");
                return false;
        }
        hr = vss_writer_set_backup_metadata(w, "", d->path, text);
        if (VSS_FAILED(hr)) {
                fmt_trunc(err, errlen, "cannot attach the metadata: 0x%08X %s", (uint32_t)hr, vss_hresult_name(hr));
                return false;
        }
        log_debug("%s: metadata %s", d->path, text);
        return true;
}

static bool on_freeze(vss_writer *w, void *userdata)
{
        struct app *a = userdata;
        uint64_t t0 = clock_monotonic_us();
        size_t n_locked = 0;

        for (size_t i = 0; i < a->n_dbs; i++) {
                struct sdb *d = a->dbs[i];
                char err[512];
                int64_t budget;
                bool ok;
                int rc;

                if (!selected(w, d))
                        continue;
                if (d->locked)
                        unlock(d, "a new Freeze"); /* a set we never saw end */
                if (!open_for_event(w, d, &ok)) {
                        if (!ok) {
                                unlock_all(a, "Freeze veto");
                                return false;
                        }
                        continue;
                }
                budget = MIN(writer_budget_ms(w, MARGIN_MS), (int64_t)INT32_MAX);
                set_busy_deadline(d, budget);
                rc = sqlite3_exec(d->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
                if (rc != SQLITE_OK) {
                        char msg[512], who[64] = "", comm[16] = "";
                        bool busy = (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED;
                        _cleanup_free_ char *mode = NULL;
                        pid_t holder;

                        /* The message first: the next statement replaces it. */
                        fmt_trunc(msg, sizeof(msg), "%s", sqlite3_errmsg(d->db));
                        mode = pragma_text(d->db, "PRAGMA journal_mode", err, sizeof(err));
                        holder = lock_holder(d, mode && strcasecmp(mode, "wal") == 0);
                        if (holder > 0)
                                fmt_trunc(who, sizeof(who), " (held by pid %d%s%s)", (int)holder,
                                          proc_comm(holder, comm) ? " " : "", comm);
                        unlock_all(a, "Freeze veto");
                        if (busy)
                                return writer_veto(w, VSS_E_WRITERERROR_RETRYABLE,
                                                   "database %s stayed locked by another connection%s for %lld ms, "
                                                   "the freeze budget: %s",
                                                   d->path, who, (long long)budget, msg);
                        return writer_veto(w, VSS_E_WRITERERROR_NONRETRYABLE, "database %s: BEGIN IMMEDIATE: %s",
                                           d->path, msg);
                }
                d->locked = true;
                d->locked_at_us = clock_monotonic_us();
                n_locked++;
                if (!set_metadata(w, d, err, sizeof(err))) {
                        unlock_all(a, "Freeze veto");
                        return writer_veto(w, VSS_E_WRITERERROR_NONRETRYABLE, "database %s: %s", d->path, err);
                }
        }
        log_info("Freeze: %zu database(s) locked (BEGIN IMMEDIATE) in %.3f s", n_locked,
                 (double)(clock_monotonic_us() - t0) / 1e6);
        return true;
}

static bool on_thaw(vss_writer *w, void *userdata)
{
        unlock_all(userdata, "Thaw");
        return true;
}

static bool on_abort(vss_writer *w, void *userdata)
{
        unlock_all(userdata, "Abort");
        return true;
}

/* ---- restore ----------------------------------------------------------------------------- */

/* A new string (vss_writer_get_new_target()'s answer lives only until its next call). */
static char *restore_target(vss_writer *w, struct sdb *d)
{
        const char *t = vss_writer_get_new_target(w, d->path);
        return strdup(t ? t : d->path);
}

static bool on_pre_restore(vss_writer *w, void *userdata)
{
        struct app *a = userdata;

        /* First check everything, then change anything: a veto leaves the files as they were. */
        for (size_t i = 0; i < a->n_dbs; i++) {
                struct sdb *d = a->dbs[i];
                _cleanup_free_ char *target = NULL;

                if (!selected(w, d))
                        continue;
                target = restore_target(w, d);
                if (!target)
                        return writer_veto(w, VSS_E_WRITERERROR_OUTOFRESOURCES, "out of memory");
                for (size_t j = 0; j <= ARRAY_SIZE(journal_suffixes); j++) {
                        _cleanup_free_ char *f = j == 0 ? strdup(target)
                                                        : suffixed(target, journal_suffixes[j - 1], NULL);
                        char comm[16] = "";
                        pid_t pid;

                        if (!f)
                                return writer_veto(w, VSS_E_WRITERERROR_OUTOFRESOURCES, "out of memory");
                        /* Our own connection does not count: it is closed below. */
                        pid = proc_find_open_file(f, comm);
                        if (pid > 0)
                                return writer_veto(w, VSS_E_WRITERERROR_RETRYABLE,
                                                   "%s is open in process %d (%s); stop it before restoring", f,
                                                   (int)pid, comm);
                }
        }
        for (size_t i = 0; i < a->n_dbs; i++) {
                struct sdb *d = a->dbs[i];
                const char *target;

                if (!selected(w, d))
                        continue;
                unlock(d, "PreRestore");
                db_link_close(&d->link);
                d->restoring = true;
                free(d->restore_path);
                d->restore_path = restore_target(w, d);
                if (!d->restore_path)
                        return writer_veto(w, VSS_E_WRITERERROR_OUTOFRESOURCES, "out of memory");
                target = d->restore_path;
                for (size_t j = 0; j < ARRAY_SIZE(journal_suffixes); j++) {
                        _cleanup_free_ char *f = suffixed(target, journal_suffixes[j], NULL),
                                            *saved = suffixed(target, journal_suffixes[j], SAVED_SUFFIX);

                        if (!f || !saved)
                                return writer_veto(w, VSS_E_WRITERERROR_OUTOFRESOURCES, "out of memory");
                        d->saved[j] = false;
                        if (rename(f, saved) == 0) {
                                d->saved[j] = true;
                                log_info("PreRestore: moved %s aside to %s", f, saved);
                        } else if (errno != ENOENT)
                                return writer_veto(w, VSS_E_WRITERERROR_NONRETRYABLE, "cannot move %s aside: %s", f,
                                                   strerror(errno));
                }
        }
        return true;
}

/* Checks a restored database against its backup metadata; false with the reason in err. */
static bool check_restored(const char *path, const char *metadata, char *err, size_t errlen)
{
        _cleanup_free_ char *qc = NULL;
        long long page_count, page_size;
        sqlite3 *db = NULL;
        json_t *md = NULL;
        bool ok = false;
        int rc;

        rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
        if (rc != SQLITE_OK) {
                fmt_trunc(err, errlen, "cannot open %s: %s", path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
                goto out;
        }
        sqlite3_busy_timeout(db, 5000);
        qc = pragma_text(db, "PRAGMA quick_check", err, errlen);
        if (!qc)
                goto out;
        if (!streq(qc, "ok")) {
                fmt_trunc(err, errlen, "PRAGMA quick_check of %s: %s", path, qc);
                goto out;
        }
        if (!pragma_int(db, "PRAGMA page_count", &page_count, err, errlen) ||
            !pragma_int(db, "PRAGMA page_size", &page_size, err, errlen))
                goto out;
        md = metadata ? json_loads(metadata, 0, NULL) : NULL;
        if (md) {
                json_int_t want_count = json_integer_value(json_object_get(md, "page_count")),
                           want_size = json_integer_value(json_object_get(md, "page_size"));

                if (want_size && want_size != page_size) {
                        fmt_trunc(err, errlen, "%s has pages of %lld bytes, the backup's had %lld", path, page_size,
                                  (long long)want_size);
                        goto out;
                }
                if (want_count && want_count != page_count) {
                        fmt_trunc(err, errlen, "%s has %lld pages, the backup's had %lld: these are not the "
                                  "backup's files", path, page_count, (long long)want_count);
                        goto out;
                }
        }
        ok = true;
out:
        json_decref(md);
        sqlite3_close(db);
        return ok;
}

static bool on_post_restore(vss_writer *w, void *userdata)
{
        struct app *a = userdata;
        bool ok = true;

        for (size_t i = 0; i < a->n_dbs; i++) {
                struct sdb *d = a->dbs[i];
                enum vss_file_restore_status st;
                _cleanup_free_ char *target = NULL;
                char err[1024];
                bool keep_saved;

                if (!selected(w, d))
                        continue;
                /* PreRestore's answer (a PostRestore without PreRestore asks again). */
                target = d->restore_path ? TAKE_PTR(d->restore_path) : restore_target(w, d);
                if (!target)
                        return writer_veto(w, VSS_E_WRITERERROR_OUTOFRESOURCES, "out of memory");
                st = vss_writer_get_file_restore_status(w, "", d->path);
                keep_saved = false;
                if (st == VSS_RS_NONE) {
                        /* Nothing was restored: the live database gets its journals back. */
                        for (size_t j = 0; j < ARRAY_SIZE(journal_suffixes); j++) {
                                _cleanup_free_ char *f = suffixed(target, journal_suffixes[j], NULL),
                                                    *saved = suffixed(target, journal_suffixes[j], SAVED_SUFFIX);
                                if (d->saved[j] && f && saved && rename(saved, f) < 0) {
                                        ok = writer_veto(w, VSS_E_WRITERERROR_NONRETRYABLE,
                                                         "cannot move %s back to %s: %s", saved, f, strerror(errno));
                                        keep_saved = true;
                                }
                        }
                        log_info("PostRestore: %s was not restored; its journals are back in place", target);
                } else if (st == VSS_RS_FAILED) {
                        ok = writer_veto(w, VSS_E_WRITERERROR_NONRETRYABLE,
                                         "the requester failed to restore %s; the live database's journals are "
                                         "kept as %s-wal%s etc.", target, target, SAVED_SUFFIX);
                        keep_saved = true;
                } else if (!check_restored(target, vss_writer_get_backup_metadata(w, "", d->path), err,
                                           sizeof(err))) {
                        ok = writer_veto(w, VSS_E_WRITERERROR_NONRETRYABLE, "restored database: %s", err);
                        keep_saved = true;
                } else
                        log_info("PostRestore: %s restored and checked (quick_check ok, page count as backed up)",
                                 target);
                for (size_t j = 0; !keep_saved && j < ARRAY_SIZE(journal_suffixes); j++) {
                        _cleanup_free_ char *saved = suffixed(target, journal_suffixes[j], SAVED_SUFFIX);
                        if (saved && st != VSS_RS_NONE)
                                (void)unlink(saved);
                        d->saved[j] = false;
                }
                d->restoring = false;
        }
        return ok;
}

int main(int argc, char **argv)
{
        struct app a = { 0 };
        struct writer_app app = {
                .program = "vss-writer-sqlite",
                .default_name = "SQLite Writer",
                .summary = "The VSS writer for SQLite databases: checkpoints their WAL before a shadow copy and "
                           "holds\nBEGIN IMMEDIATE on each while it is taken (see vss-writer-sqlite(8)).",
                .options = options,
                .source = VSS_ST_TRANSACTEDDB,
                .restore_method = { .method = VSS_RME_RESTORE_IF_CAN_REPLACE, .writer_restore = VSS_WRE_ALWAYS },
                .handlers = {
                        .on_prepare_snapshot = on_prepare_snapshot,
                        .on_freeze = on_freeze,
                        .on_thaw = on_thaw,
                        .on_abort = on_abort,
                        .on_pre_restore = on_pre_restore,
                        .on_post_restore = on_post_restore,
                },
                .userdata = &a,
                .set = app_set,
                .check = app_check,
                .describe = app_describe,
                .tick = app_tick,
                .shutdown = app_shutdown,
        };
        int r, exit_code = 0;

        if (writer_app_parse(&app, argc, argv, &exit_code) < 0)
                goto out;
        a.checkpoint_wait_ms = app.s.freeze_timeout_ms ?: VSS_DEFAULT_FREEZE_TIMEOUT_MS;
        for (size_t i = 0; i < a.n_dbs; i++)
                db_link_ensure(&a.dbs[i]->link, true);
        r = writer_app_run(&app);
        exit_code = r;
out:
        writer_app_done(&app);
        for (size_t i = 0; i < a.n_dbs; i++) {
                sdb_done(a.dbs[i]);
                free(a.dbs[i]);
        }
        free(a.dbs);
        return exit_code;
}
