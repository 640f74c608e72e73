/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vss-writer-mariadb: the VSS writer for a MariaDB server.
 *
 *     vss-writer-mariadb --defaults-file /etc/openvss/mariadb-writer.cnf [--freeze-timeout MS]
 *
 * The writer keeps one session with the server (libmariadb, the [client]
 * section of the defaults file, as mariadb-dump reads it) and uses MariaDB's
 * own backup locks, BACKUP STAGE, in that session.  One component ("server"),
 * whose files are the data directory and whatever of the server's data lives
 * outside it; the writer's volumes are those directories, as the server names
 * them (@@datadir, @@innodb_log_group_home_dir, @@innodb_data_home_dir,
 * @@innodb_undo_directory, @@aria_log_dir_path, @@log_bin_basename, InnoDB
 * tablespaces with a DATA DIRECTORY), resolved to real paths, so a set that
 * holds only some of them is vetoed by vssd with INCONSISTENTSNAPSHOT.
 *
 *   PrepareForSnapshot  BACKUP STAGE START, BACKUP STAGE FLUSH: the Aria logs
 *                       are kept, DDL is logged, non-transactional tables not
 *                       in use are flushed and closed.  Nothing waits on these
 *                       but LOCK TABLES ... WRITE and another backup.
 *   Freeze              BACKUP STAGE BLOCK_DDL, BACKUP STAGE BLOCK_COMMIT: no
 *                       DDL, no commit, the binary log closed for writes; then
 *                       the backup metadata (SHOW MASTER STATUS, gtid position,
 *                       version, layout) is read under the lock.  "When the
 *                       BLOCK_COMMIT stage returns, this is the backup time"
 *                       (MariaDB's BACKUP STAGE documentation): the shadow
 *                       copy holds exactly the transactions committed before.
 *   Thaw, Abort         BACKUP STAGE END.
 *
 * Every stage waits for conflicting locks no longer than what is left of the
 * window (the Freeze event's time, i.e. the freeze timeout, minus a margin;
 * for PrepareForSnapshot the smaller of its event time and the freeze
 * timeout): each runs as SET STATEMENT max_statement_time=..,
 * lock_wait_timeout=.. FOR BACKUP STAGE ...  A stage that cannot have its
 * lock in time vetoes with VSS_E_WRITERERROR_RETRYABLE, after BACKUP STAGE
 * END, naming the sessions holding the conflicting backup locks
 * (information_schema.METADATA_LOCK_INFO when the plugin is loaded, else the
 * longest-running statements of the process list).
 *
 * The stage belongs to the session: if the writer dies, the server ends it
 * when the connection closes; if vssd dies or hangs, libvss calls Abort at
 * once or at its freeze deadline (freeze timeout + 1 s).  Between
 * PrepareForSnapshot and Freeze there is no freeze deadline yet, so the writer
 * ends a START/FLUSH stage itself when no Freeze came within the
 * PrepareForSnapshot event's time.  While a stage is held the session is not
 * pinged (a hung server must not stall the dispatch loop); a session found
 * lost at Thaw fails Thaw with RETRYABLE, as the shadow copy may then hold
 * commits the metadata does not account for.
 *
 *   PreRestore          vetoes (RETRYABLE) while a server runs on the target
 *                       data directory (a mariadbd/mysqld whose cwd it is, a
 *                       live pid file, or the writer's own session reaching a
 *                       server with that datadir); then closes the session.
 *   PostRestore         files restored: checks that the target is a data
 *                       directory and holds the backup's binary log up to its
 *                       position, removes the stale pid file and socket, the
 *                       "#sql" leftovers of ALTER TABLEs caught by the
 *                       snapshot (MariaDB's "Storage Snapshots and BACKUP
 *                       STAGE" documentation; InnoDB drops its own at start),
 *                       and gives the files back to the datadir's owner, so
 *                       mariadbd starts with ordinary InnoDB crash recovery.
 *
 * The server may be down: the writer registers with the last layout it saw
 * (it cannot describe a server it never reached), and an event finding no
 * server running on the data directory has nothing to quiesce.
 */

#include <dirent.h>
#include <errmsg.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <mysql.h>
#include <mysqld_error.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "basic/log.h"
#include "basic/macro.h"
#include "basic/string-util.h"
#include "basic/time-util.h"
#include "common/db-link.h"
#include "common/proc-util.h"
#include "common/writer-app.h"
#include "mariadb/maria.h"

/* Kept back from each event's time for the reply and the bookkeeping after the wait. */
#define MARGIN_MS 150
/* Statements that must not wait at all still get this much (max_statement_time=0 means "no limit"). */
#define MIN_STATEMENT_MS 1
/* The bound of BACKUP STAGE END and of the questions asked after a timeout. */
#define END_TIMEOUT_MS 5000
#define DIAG_TIMEOUT_MS 1000
#define CONNECT_TIMEOUT_S 5
/* How often the layout is asked again between events (a server restarts with new paths). */
#define LAYOUT_CHECK_US (30 * USEC_PER_SEC)

const char *const server_comms[] = { "mariadbd", "mysqld", NULL };

static char **strv_free(char **v)
{
        for (size_t i = 0; v && v[i]; i++)
                free(v[i]);
        free(v);
        return NULL;
}

static int strv_add(char ***v, const char *s)
{
        size_t n = 0;
        char **nv;

        while (*v && (*v)[n])
                n++;
        nv = realloc(*v, (n + 2) * sizeof(char *));
        if (!nv)
                return -ENOMEM;
        *v = nv;
        nv[n] = strdup(s);
        nv[n + 1] = NULL;
        return nv[n] ? 0 : -ENOMEM;
}

void layout_done(struct layout *l)
{
        free(l->version);
        free(l->datadir);
        free(l->log_dir);
        free(l->data_home_dir);
        strv_free(l->data_files);
        free(l->undo_dir);
        free(l->aria_log_dir);
        free(l->binlog_dir);
        free(l->binlog_base);
        free(l->binlog_index);
        strv_free(l->remote_files);
        free(l->pid_file);
        free(l->socket);
        *l = (struct layout){ 0 };
}

/* ---- the session ----------------------------------------------------------------------- */

static bool is_connection_error(unsigned e)
{
        return e == CR_SERVER_GONE_ERROR || e == CR_SERVER_LOST || e == CR_CONNECTION_ERROR ||
               e == CR_CONN_HOST_ERROR || e == ER_CONNECTION_KILLED || e == 4031 /* ER_CLIENT_INTERACTION_TIMEOUT */;
}

static int my_connect(void *userdata, char *err, size_t errlen)
{
        struct app *a = userdata;
        /* Longer than any statement the writer sends (their bound is the server's), so the
         * client never gives up on a statement the server still runs. */
        unsigned connect_timeout = CONNECT_TIMEOUT_S,
                 io_timeout = (a->freeze_timeout_ms ?: VSS_DEFAULT_FREEZE_TIMEOUT_MS) / 1000 + 10 +
                              END_TIMEOUT_MS / 1000;
        my_bool reconnect = 0;
        MYSQL *my;

        my = mysql_init(NULL);
        if (!my) {
                fmt_trunc(err, errlen, "out of memory");
                return -ENOMEM;
        }
        mysql_options(my, MYSQL_READ_DEFAULT_FILE, a->defaults_file);
        mysql_options(my, MYSQL_READ_DEFAULT_GROUP, "client");
        mysql_options(my, MYSQL_OPT_CONNECT_TIMEOUT, &connect_timeout);
        mysql_options(my, MYSQL_OPT_READ_TIMEOUT, &io_timeout);
        mysql_options(my, MYSQL_OPT_WRITE_TIMEOUT, &io_timeout);
        /* Never: a silently new session would have lost the stage it held. */
        mysql_options(my, MYSQL_OPT_RECONNECT, &reconnect);
        mysql_options(my, MYSQL_SET_CHARSET_NAME, "utf8mb4");
        if (!mysql_real_connect(my, NULL, NULL, NULL, NULL, 0, NULL, 0)) {
                fmt_trunc(err, errlen, "%u: %s", mysql_errno(my), mysql_error(my));
                mysql_close(my);
                return -ECONNREFUSED;
        }
        a->my = my;
        return 0;
}

static void my_disconnect(void *userdata)
{
        struct app *a = userdata;

        if (a->my)
                mysql_close(a->my);
        a->my = NULL;
        /* Whatever stage the session held, the server ends with it. */
        if (a->stage == STAGE_BLOCK_COMMIT)
                a->stage_lost = true;
        a->stage = STAGE_NONE;
}

bool my_alive(void *userdata)
{
        struct app *a = userdata;

        return a->my && mysql_ping(a->my) == 0;
}

/* Runs one statement.  0, or the error number (a connection error also closes the session)
 * with "NUMBER: message" in err.  The rows go to *ret if asked for. */
static unsigned q(struct app *a, const char *sql, MYSQL_RES **ret, char *err, size_t errlen)
{
        MYSQL_RES *res = NULL;
        unsigned e;

        if (ret)
                *ret = NULL;
        if (!a->my) {
                fmt_trunc(err, errlen, "%u: not connected", CR_SERVER_GONE_ERROR);
                return CR_SERVER_GONE_ERROR;
        }
        if (mysql_real_query(a->my, sql, strlen(sql)) == 0) {
                res = mysql_store_result(a->my);
                if (res || mysql_field_count(a->my) == 0) {
                        if (ret)
                                *ret = res;
                        else
                                mysql_free_result(res);
                        return 0;
                }
        }
        e = mysql_errno(a->my) ?: CR_UNKNOWN_ERROR;
        fmt_trunc(err, errlen, "%u: %s", e, mysql_error(a->my));
        if (is_connection_error(e))
                db_link_lost(&a->link, err);
        return e;
}

/* ---- the layout ------------------------------------------------------------------------ */

/* 'path' made absolute against the datadir and canonical; a directory when 'dir'. */
static char *resolve(const char *datadir, const char *path, bool dir, char *err, size_t errlen)
{
        _cleanup_free_ char *abs = NULL;
        char *r;

        if (!path || !*path)
                abs = strdup(datadir);
        else if (path[0] == '/')
                abs = strdup(path);
        else
                abs = path_join(datadir, path);
        if (!abs) {
                fmt_trunc(err, errlen, "out of memory");
                return NULL;
        }
        if (dir)
                r = realpath(abs, NULL);
        else {
                /* A file: its directory must exist, the file need not (yet). */
                _cleanup_free_ char *d = path_real_dirname(abs);

                r = d ? path_join(d, strrchr(abs, '/') + 1) : NULL;
        }
        if (!r)
                fmt_trunc(err, errlen, "the server's path %s: %s", abs, strerror(errno ?: ENOMEM));
        return r;
}

static char *row_str(MYSQL_ROW row, unsigned i)
{
        return row[i] ? strdup(row[i]) : NULL;
}

/* Asks the server where its data is.  0, or < 0 with err. */
static int layout_query(struct app *a, struct layout *l, char *err, size_t errlen)
{
        _cleanup_free_ char *datadir = NULL, *log_dir = NULL, *home = NULL, *undo = NULL, *aria = NULL,
                            *log_bin = NULL, *base = NULL, *index = NULL, *paths = NULL, *pid = NULL, *sock = NULL;
        MYSQL_RES *res;
        MYSQL_ROW row;
        struct stat st;
        char qerr[512];

        *l = (struct layout){ 0 };
        if (q(a, "SELECT @@version, @@datadir, @@innodb_log_group_home_dir, @@innodb_data_home_dir, "
                 "@@innodb_undo_directory, @@aria_log_dir_path, @@log_bin, @@log_bin_basename, @@log_bin_index, "
                 "@@innodb_data_file_path, @@pid_file, @@socket",
              &res, qerr, sizeof(qerr)) != 0) {
                fmt_trunc(err, errlen, "cannot ask the server for its layout: %s", qerr);
                return -EIO;
        }
        row = mysql_fetch_row(res);
        if (!row || mysql_num_fields(res) != 12 || !row[1]) {
                mysql_free_result(res);
                fmt_trunc(err, errlen, "the server did not say where its data directory is");
                return -EIO;
        }
        l->version = row_str(row, 0);
        datadir = row_str(row, 1);
        log_dir = row_str(row, 2);
        home = row_str(row, 3);
        undo = row_str(row, 4);
        aria = row_str(row, 5);
        log_bin = row_str(row, 6);
        base = row_str(row, 7);
        index = row_str(row, 8);
        paths = row_str(row, 9);
        pid = row_str(row, 10);
        sock = row_str(row, 11);
        mysql_free_result(res);

        if (!(l->datadir = resolve("/", datadir, true, err, errlen)))
                goto fail;
        if (stat(l->datadir, &st) < 0) {
                fmt_trunc(err, errlen, "data directory %s: %s", l->datadir, strerror(errno));
                goto fail;
        }
        l->uid = st.st_uid;
        l->gid = st.st_gid;
        if (!(l->log_dir = resolve(l->datadir, log_dir, true, err, errlen)) ||
            !(l->data_home_dir = resolve(l->datadir, home, true, err, errlen)) ||
            !(l->undo_dir = resolve(l->datadir, undo, true, err, errlen)) ||
            !(l->aria_log_dir = resolve(l->datadir, aria, true, err, errlen)))
                goto fail;
        /* "ibdata1:12M:autoextend;/abs/ibdata2:1G": names before the first ':'. */
        for (char *save = NULL, *t = paths ? strtok_r(paths, ";", &save) : NULL; t; t = strtok_r(NULL, ";", &save)) {
                _cleanup_free_ char *f = NULL;

                t[strcspn(t, ":")] = 0;
                if (!*t)
                        continue;
                f = resolve(l->data_home_dir, t, false, err, errlen);
                if (!f || strv_add(&l->data_files, f) < 0)
                        goto fail;
        }
        if (log_bin && streq(log_bin, "1") && base) {
                _cleanup_free_ char *b = resolve(l->datadir, base, false, err, errlen);
                char *slash;

                if (!b)
                        goto fail;
                slash = strrchr(b, '/');
                l->binlog_base = strdup(slash + 1);
                *(slash == b ? slash + 1 : slash) = 0;
                l->binlog_dir = strdup(b);
                l->binlog_index = index ? resolve(l->datadir, index, false, err, errlen) : NULL;
                if (!l->binlog_base || !l->binlog_dir || (index && !l->binlog_index))
                        goto fail;
        }
        if (pid && !(l->pid_file = resolve(l->datadir, pid, false, err, errlen)))
                goto fail;
        l->socket = sock && *sock ? strdup(sock) : NULL;

        /* Tablespaces created with DATA DIRECTORY live elsewhere: their directories are data too. */
        if (q(a, "SELECT FILENAME FROM information_schema.INNODB_SYS_TABLESPACES", &res, qerr, sizeof(qerr)) == 0) {
                while ((row = mysql_fetch_row(res))) {
                        _cleanup_free_ char *f = NULL;

                        if (!row[0] || !*row[0])
                                continue;
                        f = resolve(l->datadir, row[0], false, err, errlen);
                        if (!f) {
                                mysql_free_result(res);
                                goto fail;
                        }
                        if (!path_is_under(f, l->datadir) && strv_add(&l->remote_files, f) < 0) {
                                mysql_free_result(res);
                                fmt_trunc(err, errlen, "out of memory");
                                goto fail;
                        }
                }
                mysql_free_result(res);
        } else if (!a->my) {
                fmt_trunc(err, errlen, "cannot list the InnoDB tablespaces: %s", qerr);
                goto fail;
        } else
                log_debug("cannot list the InnoDB tablespaces (%s); declaring the standard directories only", qerr);
        return 0;
fail:
        layout_done(l);
        return -EIO;
}

static bool strv_equal(char **x, char **y)
{
        size_t i = 0;

        for (; x && y && x[i] && y[i]; i++)
                if (!streq(x[i], y[i]))
                        return false;
        return (!x || !x[i]) && (!y || !y[i]);
}

static bool layout_equal(const struct layout *x, const struct layout *y)
{
        return streq_ptr(x->datadir, y->datadir) && streq_ptr(x->log_dir, y->log_dir) &&
               streq_ptr(x->data_home_dir, y->data_home_dir) && strv_equal(x->data_files, y->data_files) &&
               streq_ptr(x->undo_dir, y->undo_dir) && streq_ptr(x->aria_log_dir, y->aria_log_dir) &&
               streq_ptr(x->binlog_dir, y->binlog_dir) && streq_ptr(x->binlog_base, y->binlog_base) &&
               streq_ptr(x->binlog_index, y->binlog_index) && strv_equal(x->remote_files, y->remote_files) &&
               streq_ptr(x->pid_file, y->pid_file) && streq_ptr(x->socket, y->socket);
}

static json_t *strv_json(char **v)
{
        json_t *a = json_array();

        for (size_t i = 0; a && v && v[i]; i++)
                json_array_append_new(a, json_string(v[i]));
        return a;
}

/* The layout as it goes into the backup metadata (with what Freeze read under the lock). */
static json_t *layout_json(const struct layout *l)
{
        return json_pack("{s:s?, s:s, s:s, s:s, s:o, s:s, s:s, s:s?, s:s?, s:s?, s:o, s:s?, s:s?, s:I, s:I}",
                         "version", l->version, "datadir", l->datadir, "innodb_log_group_home_dir", l->log_dir,
                         "innodb_data_home_dir", l->data_home_dir, "innodb_data_files", strv_json(l->data_files),
                         "innodb_undo_directory", l->undo_dir, "aria_log_dir_path", l->aria_log_dir,
                         "binlog_dir", l->binlog_dir, "binlog_basename", l->binlog_base, "log_bin_index",
                         l->binlog_index, "remote_tablespaces", strv_json(l->remote_files), "pid_file", l->pid_file,
                         "socket", l->socket, "owner_uid", (json_int_t)l->uid, "owner_gid", (json_int_t)l->gid);
}

static int json_strv(json_t *a, char ***ret)
{
        size_t i;
        json_t *x;

        json_array_foreach(a, i, x)
                if (json_is_string(x) && strv_add(ret, json_string_value(x)) < 0)
                        return -ENOMEM;
        return 0;
}

static char *json_dup(json_t *o, const char *key)
{
        const char *s = json_string_value(json_object_get(o, key));
        return s ? strdup(s) : NULL;
}

/* The layout a backup's metadata recorded; false when it is not ours or lacks the datadir. */
bool layout_from_json(json_t *md, struct layout *l)
{
        *l = (struct layout){ 0 };
        if (!json_is_object(md) || !streq_ptr(json_string_value(json_object_get(md, "writer")), "mariadb"))
                return false;
        l->version = json_dup(md, "version");
        l->datadir = json_dup(md, "datadir");
        l->log_dir = json_dup(md, "innodb_log_group_home_dir");
        l->data_home_dir = json_dup(md, "innodb_data_home_dir");
        l->undo_dir = json_dup(md, "innodb_undo_directory");
        l->aria_log_dir = json_dup(md, "aria_log_dir_path");
        l->binlog_dir = json_dup(md, "binlog_dir");
        l->binlog_base = json_dup(md, "binlog_basename");
        l->binlog_index = json_dup(md, "log_bin_index");
        l->pid_file = json_dup(md, "pid_file");
        l->socket = json_dup(md, "socket");
        l->uid = (uid_t)json_integer_value(json_object_get(md, "owner_uid"));
        l->gid = (gid_t)json_integer_value(json_object_get(md, "owner_gid"));
        if (!l->datadir || json_strv(json_object_get(md, "innodb_data_files"), &l->data_files) < 0 ||
            json_strv(json_object_get(md, "remote_tablespaces"), &l->remote_files) < 0) {
                layout_done(l);
                return false;
        }
        return true;
}

int layout_copy(const struct layout *from, struct layout *to)
{
        _cleanup_(json_decrefp) json_t *j = layout_json(from);

        if (!j)
                return -ENOMEM;
        json_object_set_new(j, "writer", json_string("mariadb"));
        if (!layout_from_json(j, to))
                return -ENOMEM;
        return 0;
}

/* ---- options --------------------------------------------------------------------------- */

static const struct writer_app_option options[] = {
        { "defaults-file", "FILE", "the client options file: its [client] section, as mariadb-dump reads it "
                                   "(socket, user, password...)", false },
        { NULL, NULL, NULL, false },
};

static int app_set(void *userdata, const char *key, const char *value, char *err, size_t errlen)
{
        struct app *a = userdata;

        if (!streq(key, "defaults-file"))
                return -EINVAL;
        if (access(value, R_OK) < 0) {
                fmt_trunc(err, errlen, "cannot read defaults file %s: %s", value, strerror(errno));
                return -EINVAL;
        }
        free(a->defaults_file);
        a->defaults_file = strdup(value);
        return a->defaults_file ? 0 : -ENOMEM;
}

static int app_check(void *userdata, char *err, size_t errlen)
{
        struct app *a = userdata;
        char *what;

        if (!a->defaults_file) {
                fmt_trunc(err, errlen, "no defaults file: give --defaults-file FILE (or defaults_file = FILE in "
                                       "--config), whose [client] section says how to reach the server");
                return -EINVAL;
        }
        if (asprintf(&what, "the MariaDB server (defaults file %s)", a->defaults_file) < 0)
                return -ENOMEM;
        a->link.what = what;
        return 0;
}

/* ---- registration ------------------------------------------------------------------------ */

/* Asks the server for its layout when the session is up; keeps the last one seen. */
static void refresh_layout(struct app *a)
{
        struct layout l;
        char err[1024];

        if (!db_link_ensure(&a->link, true))
                return;
        if (layout_query(a, &l, err, sizeof(err)) < 0) {
                log_warn("%s", err);
                return;
        }
        if (a->have_layout && !layout_equal(&a->lay, &l))
                log_info("the server's layout changed: data directory %s", l.datadir);
        layout_done(&a->lay);
        a->lay = l;
        a->have_layout = true;
        a->next_layout_check_us = clock_monotonic_us() + LAYOUT_CHECK_US;
}


static int place_file(const struct layout *l, const char *path, place_fn fn, void *userdata)
{
        _cleanup_free_ char *dir = strdup(path);
        char *slash = dir ? strrchr(dir, '/') : NULL;

        if (!slash)
                return -ENOMEM;
        *(slash == dir ? slash + 1 : slash) = 0;
        if (path_is_under(dir, l->datadir))
                return 0;
        return fn(userdata, dir, strrchr(path, '/') + 1, false);
}

int layout_foreach(const struct layout *l, place_fn fn, void *userdata)
{
        const struct {
                const char *dir, *spec;
        } dirs[] = {
                { l->log_dir, "ib_logfile*" },
                { l->undo_dir, "undo*" },
                { l->aria_log_dir, "aria_log*" },
        };
        char spec[NAME_MAX + 8];
        int r;

        if ((r = fn(userdata, l->datadir, "*", true)) < 0)
                return r;
        for (size_t i = 0; i < ARRAY_SIZE(dirs); i++)
                if (dirs[i].dir && !path_is_under(dirs[i].dir, l->datadir) &&
                    (r = fn(userdata, dirs[i].dir, dirs[i].spec, false)) < 0)
                        return r;
        for (size_t i = 0; l->data_files && l->data_files[i]; i++)
                if ((r = place_file(l, l->data_files[i], fn, userdata)) < 0)
                        return r;
        if (l->binlog_dir) {
                fmt_trunc(spec, sizeof(spec), "%s.*", l->binlog_base);
                if (!path_is_under(l->binlog_dir, l->datadir) && (r = fn(userdata, l->binlog_dir, spec, false)) < 0)
                        return r;
                if (l->binlog_index && (r = place_file(l, l->binlog_index, fn, userdata)) < 0)
                        return r;
        }
        for (size_t i = 0; l->remote_files && l->remote_files[i]; i++)
                if ((r = place_file(l, l->remote_files[i], fn, userdata)) < 0)
                        return r;
        return 0;
}

struct describe_ctx {
        struct writer_desc *d;
        int component;
};

static int describe_place(void *userdata, const char *dir, const char *spec, bool recursive)
{
        struct describe_ctx *x = userdata;

        if (writer_desc_add_volume(x->d, dir) < 0 || writer_desc_add_file(x->d, x->component, dir, spec, recursive) < 0)
                return -ENOMEM;
        return 0;
}

static int app_describe(void *userdata, struct writer_desc *d, char *err, size_t errlen)
{
        struct app *a = userdata;
        char caption[PATH_MAX + 64];
        struct describe_ctx x = { .d = d };

        refresh_layout(a);
        if (!a->have_layout) {
                fmt_trunc(err, errlen, "cannot reach %s to ask where its data is: %s", a->link.what,
                          db_link_error(&a->link));
                return -EAGAIN;
        }
        fmt_trunc(caption, sizeof(caption), "MariaDB server on %s", a->lay.datadir);
        x.component = writer_desc_add_component(d, VSS_CT_DATABASE, "", COMPONENT, caption);
        if (x.component < 0)
                return -ENOMEM;
        return layout_foreach(&a->lay, describe_place, &x);
}

/* ---- stages ------------------------------------------------------------------------------ */

/* Sessions holding backup locks that conflict with a stage (everything but the transactional
 * DML lock every InnoDB statement holds), for a veto message; "" when the server cannot tell. */
static void describe_blockers(struct app *a, int64_t waited_ms, char *buf, size_t len)
{
        char sql[2048], err[512];
        MYSQL_RES *res = NULL;
        MYSQL_ROW row;
        size_t n = 0;
        unsigned e;
        bool plugin;

        buf[0] = 0;
        fmt_trunc(sql, sizeof(sql),
                  "SET STATEMENT max_statement_time=%.3f FOR "
                  "SELECT p.ID, p.USER, p.COMMAND, ROUND(p.TIME_MS), LEFT(p.INFO, 200), "
                  "(SELECT GROUP_CONCAT(DISTINCT m.LOCK_MODE) FROM information_schema.METADATA_LOCK_INFO m "
                  " WHERE m.THREAD_ID = p.ID AND m.LOCK_TYPE = 'Backup lock'), "
                  "(SELECT GROUP_CONCAT(DISTINCT CONCAT(m.TABLE_SCHEMA, '.', m.TABLE_NAME)) "
                  " FROM information_schema.METADATA_LOCK_INFO m "
                  " WHERE m.THREAD_ID = p.ID AND m.LOCK_TYPE = 'Table metadata lock') "
                  "FROM information_schema.PROCESSLIST p WHERE p.ID <> CONNECTION_ID() AND p.ID IN "
                  "(SELECT THREAD_ID FROM information_schema.METADATA_LOCK_INFO WHERE LOCK_TYPE = 'Backup lock' "
                  " AND LOCK_MODE <> 'MDL_BACKUP_TRANS_DML') ORDER BY p.TIME_MS DESC LIMIT 3",
                  DIAG_TIMEOUT_MS / 1000.0);
        e = q(a, sql, &res, err, sizeof(err));
        plugin = e == 0;
        if (e == ER_UNKNOWN_TABLE) {
                /* No metadata_lock_info plugin: the statements running since before the wait began. */
                fmt_trunc(sql, sizeof(sql),
                          "SET STATEMENT max_statement_time=%.3f FOR "
                          "SELECT ID, USER, COMMAND, ROUND(TIME_MS), LEFT(INFO, 200) "
                          "FROM information_schema.PROCESSLIST "
                          "WHERE ID <> CONNECTION_ID() AND INFO IS NOT NULL AND COMMAND NOT IN ('Sleep', 'Daemon') "
                          "AND TIME_MS >= %lld ORDER BY TIME_MS DESC LIMIT 3",
                          DIAG_TIMEOUT_MS / 1000.0, (long long)waited_ms);
                e = q(a, sql, &res, err, sizeof(err));
        }
        if (e != 0) {
                log_debug("cannot tell who holds the lock: %s", err);
                return;
        }
        while ((row = mysql_fetch_row(res)) && n < len) {
                unsigned nf = mysql_num_fields(res);
                char what[320];

                if (row[4] && *row[4])
                        fmt_trunc(what, sizeof(what), "running for %s ms: %s", row[3] ? row[3] : "?", row[4]);
                else
                        fmt_trunc(what, sizeof(what), "%s for %s ms", row[2] ? row[2] : "?", row[3] ? row[3] : "?");
                n += (size_t)snprintf(buf + n, len - n, "%sconnection %s (user %s, %s)%s%s%s%s", n ? "; " : "",
                                      row[0] ? row[0] : "?", row[1] ? row[1] : "?", what,
                                      nf > 5 && row[5] ? " holding " : "", nf > 5 && row[5] ? row[5] : "",
                                      nf > 6 && row[6] ? " and table locks on " : "", nf > 6 && row[6] ? row[6] : "");
        }
        mysql_free_result(res);
        if (!buf[0] && !plugin)
                snprintf(buf, len, "the server does not tell who holds it (load the metadata_lock_info plugin "
                                   "to have the holder named)");
        if (n >= len && len > 4)
                memcpy(buf + len - 4, "...", 4);
}

enum stage_result {
        STAGE_OK,
        STAGE_TIMEOUT,          /* the lock could not be had within the budget */
        STAGE_FAILED,           /* any other error; the session may be gone */
};

/* BACKUP STAGE name, waiting no longer than budget_ms for its lock. */
static enum stage_result run_stage(struct app *a, const char *name, int64_t budget_ms, char *err, size_t errlen)
{
        int64_t ms = MAX(budget_ms, (int64_t)MIN_STATEMENT_MS);
        char sql[256];
        unsigned e;

        /* max_statement_time bounds the wait to the millisecond; lock_wait_timeout (whole
         * seconds) is the server's own bound on metadata lock waits, set just above it. */
        fmt_trunc(sql, sizeof(sql), "SET STATEMENT max_statement_time=%.3f, lock_wait_timeout=%lld FOR BACKUP STAGE %s",
                  (double)ms / 1000.0, budget_ms <= 0 ? 0LL : (long long)(ms + 999) / 1000, name);
        e = q(a, sql, NULL, err, errlen);
        if (e == 0)
                return STAGE_OK;
        if (e == ER_LOCK_WAIT_TIMEOUT || e == ER_STATEMENT_TIMEOUT)
                return STAGE_TIMEOUT;
        return STAGE_FAILED;
}

/* Ends whatever stage the session holds (closing the session if END fails: that ends it too). */
void end_stage(struct app *a, const char *why)
{
        char err[512], sql[128];
        enum stage held = a->stage;

        if (held == STAGE_NONE)
                return;
        fmt_trunc(sql, sizeof(sql), "SET STATEMENT max_statement_time=%d FOR BACKUP STAGE END",
                  END_TIMEOUT_MS / 1000);
        if (q(a, sql, NULL, err, sizeof(err)) != 0) {
                if (a->my) {
                        log_warn("BACKUP STAGE END at %s failed (%s); closing the session, which ends the stage",
                                 why, err);
                        db_link_lost(&a->link, "BACKUP STAGE END failed");
                } else
                        log_warn("BACKUP STAGE END at %s: the session holding %s was gone (%s); the server ended "
                                 "the stage with it", why, stage_names[held], err);
        }
        if (held == STAGE_BLOCK_COMMIT && a->stage != STAGE_NONE)
                log_info("BACKUP STAGE END at %s: commits were blocked for %.3f s", why,
                         (double)(clock_monotonic_us() - a->blocked_at_us) / 1e6);
        else if (a->stage != STAGE_NONE)
                log_info("BACKUP STAGE END at %s (the stage was %s)", why, stage_names[held]);
        a->stage = STAGE_NONE;
        a->prepared_until_us = 0;
}

bool selected(vss_writer *w)
{
        return vss_writer_is_component_selected(w, "", COMPONENT);
}

/* The session for an event.  False when there is none: *ret_ok then says whether that is fine
 * (no server runs on the data directory: its files are at rest) or a veto was set. */
static bool session_for_event(vss_writer *w, struct app *a, bool *ret_ok)
{
        char comm[16] = "";
        pid_t pid;

        *ret_ok = true;
        if (db_link_ensure(&a->link, true))
                return true;
        if (!a->have_layout) {
                *ret_ok = writer_veto(w, VSS_E_WRITERERROR_RETRYABLE, "cannot reach %s: %s", a->link.what,
                                      db_link_error(&a->link));
                return false;
        }
        pid = proc_find_by_cwd(a->lay.datadir, server_comms, comm);
        if (pid > 0) {
                *ret_ok = writer_veto(w, VSS_E_WRITERERROR_RETRYABLE,
                                      "the server on %s (pid %d %s) does not answer: %s", a->lay.datadir, (int)pid,
                                      comm, db_link_error(&a->link));
                return false;
        }
        log_info("%s: no server runs on %s (%s); its files are at rest, nothing to quiesce", writer_event_name(w),
                 a->lay.datadir, db_link_error(&a->link));
        return false;
}

/* START and FLUSH within budget_ms; true, or false with the veto set. */
static bool stage_flush(vss_writer *w, struct app *a, int64_t budget_ms)
{
        uint64_t t0 = clock_monotonic_us(), deadline = t0 + (uint64_t)MAX(budget_ms, 0) * USEC_PER_MSEC;
        static const char *const names[] = { "START", "FLUSH" };
        char err[512], who[2048];

        a->stage_at_us = t0;
        for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
                int64_t left = (int64_t)ms_until(clock_monotonic_us(), deadline);
                enum stage_result r = run_stage(a, names[i], left, err, sizeof(err));

                if (r == STAGE_OK) {
                        a->stage = STAGE_FLUSH;         /* START alone must be ended too */
                        a->stage_thread = a->my ? mysql_thread_id(a->my) : 0;
                        continue;
                }
                if (r == STAGE_TIMEOUT)
                        describe_blockers(a, budget_ms, who, sizeof(who));
                end_stage(a, "the veto");
                if (r == STAGE_TIMEOUT)
                        return writer_veto(w, VSS_E_WRITERERROR_RETRYABLE,
                                           "BACKUP STAGE %s could not have its lock within %lld ms, the freeze "
                                           "budget (%s)%s%s",
                                           names[i], (long long)budget_ms, err, who[0] ? "; blocked by " : "", who);
                return writer_veto(w, VSS_E_WRITERERROR_NONRETRYABLE, "BACKUP STAGE %s: %s", names[i], err);
        }
        return true;
}

/* ---- backup events ----------------------------------------------------------------------- */

static bool on_prepare_snapshot(vss_writer *w, void *userdata)
{
        struct app *a = userdata;
        int64_t left = vss_writer_get_time_left_ms(w), budget;
        uint64_t t0 = clock_monotonic_us();
        bool ok;

        if (!selected(w))
                return true;
        if (!session_for_event(w, a, &ok))
                return ok;
        if (a->stage != STAGE_NONE)
                end_stage(a, "a new PrepareForSnapshot");       /* a set we never saw end */
        a->stage_lost = false;
        budget = MIN(writer_budget_ms(w, MARGIN_MS), (int64_t)(a->freeze_timeout_ms ?: VSS_DEFAULT_FREEZE_TIMEOUT_MS));
        if (!stage_flush(w, a, budget))
                return false;
        /* vssd sends Freeze (or Abort) once every writer is prepared, within this event's time;
         * after that it is gone or hung, and the stage must not stay. */
        a->prepared_until_us = clock_monotonic_us() +
                               (uint64_t)((left == INT64_MAX ? VSS_DEFAULT_FREEZE_TIMEOUT_MS : left) +
                                          VSS_WRITER_FREEZE_GRACE_MS) * USEC_PER_MSEC;
        log_info("PrepareForSnapshot: BACKUP STAGE START, FLUSH in %.3f s", (double)(clock_monotonic_us() - t0) / 1e6);
        return true;
}

/* What every backup's metadata holds: the layout, and whether a server ran on it. */
static json_t *metadata_base(const struct layout *l, bool running)
{
        json_t *md = layout_json(l);

        if (!md)
                return NULL;
        json_object_set_new(md, "writer", json_string("mariadb"));
        json_object_set_new(md, "server_running", json_boolean(running));
        json_object_set_new(md, "frozen_at_us", json_integer((json_int_t)clock_realtime_us()));
        return md;
}

/* The metadata of a backup of a stopped server: where its files are. */
static char *layout_metadata(const struct layout *l, bool running)
{
        _cleanup_(json_decrefp) json_t *md = metadata_base(l, running);

        return md ? json_dumps(md, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
}

/* The backup metadata, read under BLOCK_COMMIT.  NULL with err on failure. */
static char *read_metadata(struct app *a, char *err, size_t errlen)
{
        _cleanup_(json_decrefp) json_t *md = NULL;
        MYSQL_RES *res;
        MYSQL_ROW row;
        char qerr[512];

        md = metadata_base(&a->lay, true);
        if (!md) {
                fmt_trunc(err, errlen, "out of memory");
                return NULL;
        }
        if (q(a, "SHOW MASTER STATUS", &res, qerr, sizeof(qerr)) != 0) {
                fmt_trunc(err, errlen, "SHOW MASTER STATUS: %s", qerr);
                return NULL;
        }
        row = mysql_fetch_row(res);
        json_object_set_new(md, "binlog_file", row && row[0] ? json_string(row[0]) : json_null());
        json_object_set_new(md, "binlog_position",
                            row && row[1] ? json_integer(strtoll(row[1], NULL, 10)) : json_null());
        mysql_free_result(res);
        if (q(a, "SELECT @@gtid_binlog_pos, @@version, @@server_id", &res, qerr, sizeof(qerr)) != 0) {
                fmt_trunc(err, errlen, "SELECT @@gtid_binlog_pos: %s", qerr);
                return NULL;
        }
        row = mysql_fetch_row(res);
        json_object_set_new(md, "gtid_binlog_pos", json_string(row && row[0] ? row[0] : ""));
        json_object_set_new(md, "version", json_string(row && row[1] ? row[1] : ""));
        json_object_set_new(md, "server_id", json_integer(row && row[2] ? strtoll(row[2], NULL, 10) : 0));
        mysql_free_result(res);
        return json_dumps(md, JSON_COMPACT | JSON_SORT_KEYS);
}

static bool on_freeze(vss_writer *w, void *userdata)
{
        struct app *a = userdata;
        uint64_t t0 = clock_monotonic_us(), deadline, t_ddl;
        int64_t budget = writer_budget_ms(w, MARGIN_MS);
        _cleanup_free_ char *md = NULL;
        char err[1024], who[2048];
        const char *name;
        enum stage_result r;
        vss_hresult hr;
        bool ok;

        if (!selected(w))
                return true;
        if (!session_for_event(w, a, &ok)) {
                /* A stopped server: the shadow copy is the files at rest; a restore still needs
                 * to know where they go. */
                if (ok && !(md = layout_metadata(&a->lay, false)))
                        return writer_veto(w, VSS_E_WRITERERROR_OUTOFRESOURCES, "out of memory");
                if (ok && VSS_FAILED(hr = vss_writer_set_backup_metadata(w, "", COMPONENT, md)))
                        return writer_veto(w, VSS_E_WRITERERROR_NONRETRYABLE,
                                           "cannot attach the backup metadata: 0x%08X %s", (uint32_t)hr,
                                           vss_hresult_name(hr));
                if (ok)
                        log_debug("metadata %s", md);
                return ok;
        }
        if (budget == INT64_MAX)
                budget = a->freeze_timeout_ms ?: VSS_DEFAULT_FREEZE_TIMEOUT_MS;
        deadline = t0 + (uint64_t)budget * USEC_PER_MSEC;
        a->stage_lost = false;
        a->prepared_until_us = 0;
        /* Our FLUSH stage went away (ended by the tick, the session lost): start over. */
        if (a->stage == STAGE_NONE && !stage_flush(w, a, budget))
                return false;

        name = "BLOCK_DDL";
        r = run_stage(a, name, ms_until(clock_monotonic_us(), deadline), err, sizeof(err));
        t_ddl = clock_monotonic_us();
        if (r == STAGE_OK) {
                name = "BLOCK_COMMIT";
                r = run_stage(a, name, ms_until(clock_monotonic_us(), deadline), err, sizeof(err));
        }
        if (r != STAGE_OK) {
                if (r == STAGE_TIMEOUT)
                        describe_blockers(a, budget, who, sizeof(who));
                end_stage(a, "the veto");
                if (r == STAGE_TIMEOUT)
                        return writer_veto(w, VSS_E_WRITERERROR_RETRYABLE,
                                           "BACKUP STAGE %s could not have its lock within %lld ms, the freeze "
                                           "budget (%s)%s%s",
                                           name, (long long)budget, err, who[0] ? "; blocked by " : "", who);
                return writer_veto(w, VSS_E_WRITERERROR_NONRETRYABLE, "BACKUP STAGE %s: %s", name, err);
        }
        a->stage = STAGE_BLOCK_COMMIT;
        a->blocked_at_us = clock_monotonic_us();
        md = read_metadata(a, err, sizeof(err));
        if (!md) {
                end_stage(a, "the veto");
                return writer_veto(w, VSS_E_WRITERERROR_NONRETRYABLE, "reading the backup metadata: %s", err);
        }
        hr = vss_writer_set_backup_metadata(w, "", COMPONENT, md);
        if (VSS_FAILED(hr)) {
                end_stage(a, "the veto");
                return writer_veto(w, VSS_E_WRITERERROR_NONRETRYABLE, "cannot attach the backup metadata: 0x%08X %s",
                                   (uint32_t)hr, vss_hresult_name(hr));
        }
        log_info("Freeze: BLOCK_COMMIT held (BLOCK_DDL %.3f s, BLOCK_COMMIT %.3f s)",
                 (double)(t_ddl - t0) / 1e6, (double)(a->blocked_at_us - t_ddl) / 1e6);
        log_debug("metadata %s", md);
        return true;
}

static bool on_thaw(vss_writer *w, void *userdata)
{
        struct app *a = userdata;
        bool held = a->stage == STAGE_BLOCK_COMMIT;

        if (held)
                end_stage(a, "Thaw");
        /* END failing on a dead session, or the session lost before: BLOCK_COMMIT may have ended
         * before the shadow copies were taken. */
        if (a->stage_lost) {
                a->stage_lost = false;
                return writer_veto(w, VSS_E_WRITERERROR_RETRYABLE,
                                   "the session holding BACKUP STAGE BLOCK_COMMIT was lost before Thaw (%s); the "
                                   "shadow copy may hold commits the backup metadata does not account for",
                                   db_link_error(&a->link));
        }
        return true;
}

static bool on_abort(vss_writer *w, void *userdata)
{
        struct app *a = userdata;

        (void)w;
        end_stage(a, "Abort");
        a->stage_lost = false;
        return true;
}

static bool app_tick(void *userdata)
{
        struct app *a = userdata;
        uint64_t now = clock_monotonic_us();

        if (a->restoring)
                return false;
        if (a->stage == STAGE_FLUSH && a->prepared_until_us && now >= a->prepared_until_us) {
                log_warn("no Freeze or Abort came after PrepareForSnapshot; ending the backup stage");
                end_stage(a, "the end of the PrepareForSnapshot window");
        }
        /* A held stage is left alone: a ping to a hung server would stall the dispatch loop, and
         * with it libvss's freeze deadline.  A lost session shows at BACKUP STAGE END. */
        if (a->stage != STAGE_NONE)
                return false;
        if (db_link_tick(&a->link))
                return true;    /* (again) connected: the server may have restarted with other paths */
        if (a->link.up && now >= a->next_layout_check_us) {
                a->next_layout_check_us = now + LAYOUT_CHECK_US;
                return true;
        }
        return false;
}

static void app_shutdown(void *userdata)
{
        struct app *a = userdata;

        end_stage(a, "shutdown");
        db_link_close(&a->link);
}
int main(int argc, char **argv)
{
        struct app a = { 0 };
        struct writer_app app = {
                .program = "vss-writer-mariadb",
                .default_name = "MariaDB Writer",
                .summary = "The VSS writer for a MariaDB server: holds BACKUP STAGE BLOCK_COMMIT in its own session "
                           "while\nshadow copies are taken (see vss-writer-mariadb(8)).",
                .options = options,
                .source = VSS_ST_TRANSACTEDDB,
                .restore_method = { .method = VSS_RME_STOP_RESTORE_START, .service = "mariadb",
                                    .writer_restore = VSS_WRE_ALWAYS },
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
        int exit_code = 0;

        a.link = (struct db_link){ .connect = my_connect, .disconnect = my_disconnect, .alive = my_alive,
                                   .userdata = &a };
        if (mysql_library_init(0, NULL, NULL) != 0) {
                fprintf(stderr, "vss-writer-mariadb: cannot initialize libmariadb\n");
                return 1;
        }
        if (writer_app_parse(&app, argc, argv, &exit_code) < 0)
                goto out;
        a.freeze_timeout_ms = app.s.freeze_timeout_ms;
        refresh_layout(&a);
        exit_code = writer_app_run(&app);
out:
        writer_app_done(&app);
        db_link_close(&a.link);
        free((char *)a.link.what);
        layout_done(&a.lay);
        free(a.defaults_file);
        mysql_library_end();
        return exit_code;
}
