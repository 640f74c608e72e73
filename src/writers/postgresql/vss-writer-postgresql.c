/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vss-writer-postgresql: the VSS writer for a PostgreSQL cluster.
 *
 *     vss-writer-postgresql --conninfo 'host=/run/postgresql dbname=postgres' [--freeze-timeout MS]
 *
 * The PostgreSQL documentation ("File System Level Backup") allows a backup
 * from file-system snapshots when the snapshots of every file system the
 * cluster uses are taken at the same instant: starting the copy then is
 * exactly like starting after a crash, and WAL replay brings it to a
 * consistent state.  What the writer adds is what makes that true and cheap:
 *
 *   - It asks the server where the cluster lives (data_directory, the real
 *     directory behind pg_wal when it is a symlink, every tablespace) and
 *     declares those paths as its volumes.  vssd then vetoes a set that lacks
 *     one of them with VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT, and the
 *     shadow copies of a set are taken at one instant.  The layout is read
 *     again after every reconnection and every few seconds; when it changed
 *     (a new tablespace) the writer registers again with the new volumes, and
 *     a set already under way is vetoed RETRYABLE rather than taken short.
 *   - PrepareForSnapshot runs CHECKPOINT, bounded by the event's time, so
 *     the restored copy has little WAL to replay, and attaches the component's
 *     backup metadata: server version, system identifier, timeline,
 *     checkpoint and redo LSN, data directory, WAL location and tablespace
 *     map.  Freeze only adds the WAL insert position (nothing is held: there
 *     is no lock to leave behind, whatever dies).
 *   - PreRestore vetoes while a server runs on the target data directory.
 *     PostRestore makes the restored directory start with plain `pg_ctl
 *     start`: the stale postmaster.pid the snapshot caught is removed, and
 *     pg_wal and the tablespace links are pointed at the restored locations
 *     when the requester restored to new ones (vss_writer_get_new_target);
 *     pg_controldata confirms it is the backup's cluster.
 *
 * A server that is down when an event comes is tried once at once; a cluster
 * whose server is not running at all (no live postmaster on its data
 * directory) is at rest, and a snapshot of it needs no help.
 */

#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>

#include "basic/exec-util.h"
#include "basic/log.h"
#include "basic/macro.h"
#include "basic/string-util.h"
#include "basic/time-util.h"
#include "common/db-link.h"
#include "common/proc-util.h"
#include "common/writer-app.h"
#include "pg-session.h"

#define MARGIN_MS 200           /* kept back from each event's time for the reply */
#define QUERY_TIMEOUT_MS 5000   /* the small queries between events */
#define LAYOUT_EVERY_TICKS 5
#define COMPONENT "cluster"

static const char *const server_comms[] = { "postgres", "postmaster", NULL };

struct app {
        char *conninfo;
        char *service;
        PGconn *conn;
        struct db_link link;
        struct pg_layout layout;        /* as registered */
        bool have_layout;
        bool layout_changed;
        unsigned ticks;
        json_t *metadata;               /* of the set under way */
};

/* ---- the session -------------------------------------------------------------------------- */

static int pg_link_connect(void *userdata, char *err, size_t errlen)
{
        struct app *a = userdata;
        struct pg_error e;

        a->conn = pg_connect(a->conninfo, 5, &e);
        if (!a->conn) {
                fmt_trunc(err, errlen, "%s", e.message);
                return -ECONNREFUSED;
        }
        return 0;
}

static void pg_link_disconnect(void *userdata)
{
        struct app *a = userdata;

        PQfinish(a->conn);
        a->conn = NULL;
}

/* Reading what arrived notices a server that closed the connection (a restart). */
static bool pg_link_alive(void *userdata)
{
        struct app *a = userdata;

        return a->conn && PQconsumeInput(a->conn) && PQstatus(a->conn) == CONNECTION_OK;
}

/* After a failed query: a broken connection is handed back to the link. */
static void note_error(struct app *a, const struct pg_error *e)
{
        if (e->connection_lost)
                db_link_lost(&a->link, e->message);
}

/* ---- options ------------------------------------------------------------------------------ */

static const struct writer_app_option options[] = {
        { .name = "conninfo", .arg = "STR",
          .help = "libpq connection string of the server (default: libpq's defaults, PGHOST...)" },
        { .name = "service", .arg = "NAME",
          .help = "the service an admin stops and starts around a restore (default: postgresql)" },
        { .name = NULL },
};

static int app_set(void *userdata, const char *key, const char *value, char *err, size_t errlen)
{
        struct app *a = userdata;
        char **target = streq(key, "conninfo") ? &a->conninfo : &a->service;

        if (streq(key, "conninfo")) {
                char *perr = NULL;
                PQconninfoOption *o = PQconninfoParse(value, &perr);

                if (!o) {
                        fmt_trunc(err, errlen, "not a libpq connection string: %s", perr ? perr : "out of memory");
                        if (perr)
                                PQfreemem(perr);
                        return -EINVAL;
                }
                PQconninfoFree(o);
        }
        free(*target);
        *target = strdup(value);
        return *target ? 0 : -ENOMEM;
}

/* ---- registration ------------------------------------------------------------------------- */

static int read_layout(struct app *a, struct pg_layout *ret, char *err, size_t errlen)
{
        struct pg_error e;

        if (!db_link_ensure(&a->link, true)) {
                fmt_trunc(err, errlen, "cannot connect to the PostgreSQL server: %s", db_link_error(&a->link));
                return -1;
        }
        if (pg_layout_read(&a->conn, ret, QUERY_TIMEOUT_MS, &e) < 0) {
                note_error(a, &e);
                fmt_trunc(err, errlen, "cannot read the cluster's layout: %s%s%s", e.message,
                          streq(e.sqlstate, "42501") ? " (the writer's role needs pg_read_all_settings, or superuser)"
                                                      : "",
                          "");
                return -1;
        }
        return 0;
}

static int app_describe(void *userdata, struct writer_desc *d, char *err, size_t errlen)
{
        struct app *a = userdata;
        struct pg_layout l = { 0 };
        char caption[512];
        int c;

        if (read_layout(a, &l, err, errlen) < 0)
                return -1;
        pg_layout_done(&a->layout);
        a->layout = l;
        a->have_layout = true;
        a->layout_changed = false;

        fmt_trunc(caption, sizeof(caption), "PostgreSQL %s cluster at %s", l.server_version, l.data_directory);
        if (writer_desc_add_volume(d, l.data_directory) < 0 ||
            (!path_is_under(l.wal_directory, l.data_directory) && writer_desc_add_volume(d, l.wal_directory) < 0))
                return -ENOMEM;
        c = writer_desc_add_component(d, VSS_CT_DATABASE, "", COMPONENT, caption);
        if (c < 0 || writer_desc_add_file(d, c, l.data_directory, "*", true) < 0)
                return -ENOMEM;
        if (!path_is_under(l.wal_directory, l.data_directory) &&
            writer_desc_add_file(d, c, l.wal_directory, "*", true) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < l.n_tablespaces; i++)
                if (writer_desc_add_volume(d, l.tablespaces[i].location) < 0 ||
                    writer_desc_add_file(d, c, l.tablespaces[i].location, "*", true) < 0)
                        return -ENOMEM;
        log_info("cluster: PostgreSQL %s, data %s, WAL %s%s, %zu tablespace(s)", l.server_version,
                 l.data_directory, l.wal_directory, l.wal_is_link ? " (pg_wal is a symlink)" : "", l.n_tablespaces);
        return 0;
}

/* The layout again, after a reconnection and every few ticks: a new tablespace means new volumes. */
static bool app_tick(void *userdata)
{
        struct app *a = userdata;
        bool came_up = db_link_tick(&a->link);
        struct pg_layout l = { 0 };
        char err[1024];

        if (!a->have_layout || !a->link.up)
                return a->layout_changed;
        if (!came_up && ++a->ticks % LAYOUT_EVERY_TICKS != 0)
                return a->layout_changed;
        if (read_layout(a, &l, err, sizeof(err)) < 0) {
                log_debug("layout check: %s", err);
                return a->layout_changed;
        }
        if (!pg_layout_equal(&l, &a->layout)) {
                if (!a->layout_changed)
                        log_info("the cluster's layout changed (data %s, WAL %s, %zu tablespace(s))",
                                 l.data_directory, l.wal_directory, l.n_tablespaces);
                a->layout_changed = true;
        }
        pg_layout_done(&l);
        return a->layout_changed;
}

static void app_shutdown(void *userdata)
{
        db_link_close(&((struct app *)userdata)->link);
}

/* ---- the server, seen from the file system ------------------------------------------------ */

/* The pid of a PostgreSQL server running on 'dir', or 0: a postgres process working in it, or
 * the live postgres its postmaster.pid names, unless that one works elsewhere (a copy of a
 * running cluster carries the original's postmaster.pid). */
static pid_t server_on(const char *dir)
{
        _cleanup_free_ char *pidfile = path_join(dir, "postmaster.pid");
        char line[32] = "";
        pid_t pid = proc_find_by_cwd(dir, server_comms, NULL);
        uint64_t n = 0;
        FILE *f;

        if (pid > 0 || !pidfile)
                return pid;
        f = fopen(pidfile, "re");
        if (!f)
                return 0;
        if (!fgets(line, sizeof(line), f))
                line[0] = 0;
        fclose(f);
        /* The first line is the pid; a torn or foreign file names no server. */
        line[strcspn(line, "\n")] = 0;
        if (parse_u64(line, &n) < 0 || n == 0 || n > INT_MAX)
                return 0;
        pid = (pid_t)n;
        return proc_is_running(pid, server_comms) && proc_cwd_is(pid, dir) != 0 ? pid : 0;
}

/* ---- backup events ------------------------------------------------------------------------ */

static json_t *layout_json(const struct pg_layout *l)
{
        json_t *ts = json_array(), *md;

        for (size_t i = 0; ts && i < l->n_tablespaces; i++)
                json_array_append_new(ts, json_pack("{s:I, s:s, s:s}", "oid", (json_int_t)l->tablespaces[i].oid,
                                                    "name", l->tablespaces[i].name, "location",
                                                    l->tablespaces[i].location));
        md = json_pack("{s:s, s:s, s:i, s:s, s:s, s:b, s:o}", "writer", "postgresql", "server_version",
                       l->server_version, "server_version_num", l->server_version_num, "data_directory",
                       l->data_directory, "wal_directory", l->wal_directory, "wal_is_symlink", l->wal_is_link,
                       "tablespaces", ts ? ts : json_array());
        return md;
}

static bool attach_metadata(vss_writer *w, struct app *a)
{
        _cleanup_free_ char *text = json_dumps(a->metadata, JSON_COMPACT | JSON_SORT_KEYS);
        vss_hresult hr;

        if (!text)
                return writer_veto(w, VSS_E_WRITERERROR_OUTOFRESOURCES, "out of memory");
        hr = vss_writer_set_backup_metadata(w, "", COMPONENT, text);
        if (VSS_FAILED(hr))
                return writer_veto(w, VSS_E_WRITERERROR_NONRETRYABLE, "cannot attach the backup metadata: 0x%08X %s",
                                   (uint32_t)hr, vss_hresult_name(hr));
        log_debug("metadata: %s", text);
        return true;
}

/* The control data of the checkpoint just made: system identifier, timeline, LSNs. */
static bool add_control_data(struct app *a, json_t *md, int64_t budget, struct pg_error *e)
{
        PGresult *r = pg_query(&a->conn,
                               "SELECT s.system_identifier, c.timeline_id, c.checkpoint_lsn, c.redo_lsn, "
                               "c.checkpoint_time FROM pg_control_system() s, pg_control_checkpoint() c",
                               budget, e);

        if (!r)
                return false;
        uint64_t timeline;
        if (PQntuples(r) != 1) {
                fmt_trunc(e->message, sizeof(e->message), "pg_control_checkpoint() returned %d rows", PQntuples(r));
                PQclear(r);
                return false;
        }
        if (parse_u64(PQgetvalue(r, 0, 1), &timeline) < 0) {
                fmt_trunc(e->message, sizeof(e->message), "pg_control_checkpoint() returned timeline_id '%s'",
                          PQgetvalue(r, 0, 1));
                PQclear(r);
                return false;
        }
        json_object_set_new(md, "system_identifier", json_string(PQgetvalue(r, 0, 0)));
        json_object_set_new(md, "timeline_id", json_integer((json_int_t)timeline));
        json_object_set_new(md, "checkpoint_lsn", json_string(PQgetvalue(r, 0, 2)));
        json_object_set_new(md, "redo_lsn", json_string(PQgetvalue(r, 0, 3)));
        json_object_set_new(md, "checkpoint_time", json_string(PQgetvalue(r, 0, 4)));
        PQclear(r);
        return true;
}

static bool on_prepare_snapshot(vss_writer *w, void *userdata)
{
        struct app *a = userdata;
        struct pg_layout now = { 0 };
        struct pg_error e;
        char err[1024], sql[96];
        int64_t budget;
        uint64_t t0;
        pid_t pid;
        PGresult *r;

        json_decref(a->metadata);
        a->metadata = NULL;
        if (!a->have_layout)
                return writer_veto(w, VSS_E_WRITERERROR_RETRYABLE, "the writer does not know the cluster's layout yet");

        if (!db_link_ensure(&a->link, true)) {
                pid = server_on(a->layout.data_directory);
                if (pid > 0)
                        return writer_veto(w, VSS_E_WRITERERROR_RETRYABLE,
                                           "cannot connect to the PostgreSQL server (pid %d) running on %s: %s",
                                           (int)pid, a->layout.data_directory, db_link_error(&a->link));
                /* No server: the files are at rest, a snapshot of them is a cold backup. */
                log_info("PrepareForSnapshot: no server runs on %s; the cluster is at rest",
                         a->layout.data_directory);
                a->metadata = layout_json(&a->layout);
                json_object_set_new(a->metadata, "server_running", json_false());
                return attach_metadata(w, a);
        }

        if (read_layout(a, &now, err, sizeof(err)) < 0)
                return writer_veto(w, VSS_E_WRITERERROR_RETRYABLE, "%s", err);
        if (!pg_layout_equal(&now, &a->layout)) {
                a->layout_changed = true;
                pg_layout_done(&now);
                return writer_veto(w, VSS_E_WRITERERROR_RETRYABLE,
                                   "the cluster's layout changed since the writer registered (data directory, pg_wal "
                                   "or tablespaces); it registers again with the new volumes: retry the backup");
        }
        pg_layout_done(&now);

        /* CHECKPOINT within the event's time: the server cancels it a little before our own
         * deadline, so the connection survives a slow checkpoint. */
        budget = writer_budget_ms(w, MARGIN_MS);
        t0 = clock_monotonic_us();
        fmt_trunc(sql, sizeof(sql), "SET statement_timeout = %lld", (long long)MAX(budget - 300, (int64_t)1));
        r = pg_query(&a->conn, sql, budget, &e);
        PQclear(r);
        r = r ? pg_query(&a->conn, "CHECKPOINT", budget, &e) : NULL;
        PQclear(r);
        if (!r) {
                note_error(a, &e);
                if (streq(e.sqlstate, "57014") || e.timed_out)
                        log_warn("PrepareForSnapshot: CHECKPOINT did not finish within %lld ms; the restored copy "
                                 "replays more WAL", (long long)budget);
                else if (streq(e.sqlstate, "42501"))
                        return writer_veto(w, VSS_E_WRITERERROR_NONRETRYABLE,
                                           "CHECKPOINT: %s (the writer's role needs pg_checkpoint, or superuser)",
                                           e.message);
                else
                        return writer_veto(w, VSS_E_WRITERERROR_RETRYABLE, "CHECKPOINT: %s", e.message);
        } else
                log_info("PrepareForSnapshot: CHECKPOINT in %.3f s", (double)(clock_monotonic_us() - t0) / 1e6);
        if (a->conn)
                PQclear(pg_query(&a->conn, "RESET statement_timeout", writer_budget_ms(w, MARGIN_MS), &e));

        a->metadata = layout_json(&a->layout);
        if (!a->metadata)
                return writer_veto(w, VSS_E_WRITERERROR_OUTOFRESOURCES, "out of memory");
        json_object_set_new(a->metadata, "server_running", json_true());
        if (!a->conn || !add_control_data(a, a->metadata, writer_budget_ms(w, MARGIN_MS), &e)) {
                note_error(a, &e);
                return writer_veto(w, VSS_E_WRITERERROR_RETRYABLE, "cannot read the control data: %s%s", e.message,
                                   streq(e.sqlstate, "42501") ? " (pg_control_checkpoint() needs superuser or "
                                                                "an explicit GRANT EXECUTE)" : "");
        }
        return attach_metadata(w, a);
}

static bool on_freeze(vss_writer *w, void *userdata)
{
        struct app *a = userdata;
        _cleanup_free_ char *lsn = NULL;
        struct pg_error e;

        /* Nothing to hold: the snapshots of all the cluster's volumes are taken at one instant,
         * which is all a crash-consistent copy needs.  The WAL position is for the record. */
        if (!a->metadata || !a->conn)
                return true;
        lsn = pg_query_value(&a->conn, "SELECT pg_current_wal_insert_lsn()", writer_budget_ms(w, MARGIN_MS), &e);
        if (!lsn) {
                note_error(a, &e);
                log_warn("Freeze: cannot read the WAL insert position: %s", e.message);
                return true;
        }
        json_object_set_new(a->metadata, "wal_insert_lsn_at_freeze", json_string(lsn));
        log_info("Freeze: WAL insert position %s", lsn);
        return attach_metadata(w, a);
}

static bool on_abort(vss_writer *w, void *userdata)
{
        struct app *a = userdata;

        json_decref(a->metadata);
        a->metadata = NULL;
        return true;
}

static bool on_backup_shutdown(vss_writer *w, void *userdata)
{
        return on_abort(w, userdata);
}

/* ---- restore ------------------------------------------------------------------------------ */

/* vss_writer_get_new_target()'s answer lives only until the next call: what is kept is copied. */
struct restore_plan {
        json_t *md;
        const char *data;               /* original */
        char *target;                   /* where it is restored (== data in place) */
};

static void plan_done(struct restore_plan *p)
{
        json_decref(p->md);
        free(p->target);
        *p = (struct restore_plan){ 0 };
}

static bool load_plan(vss_writer *w, struct restore_plan *p)
{
        const char *text = vss_writer_get_backup_metadata(w, "", COMPONENT), *t;

        *p = (struct restore_plan){ 0 };
        if (!text)
                return writer_veto(w, VSS_E_WRITERERROR_NONRETRYABLE,
                                   "no backup metadata for component '%s': not a backup made by this writer", COMPONENT);
        p->md = json_loads(text, 0, NULL);
        p->data = json_string_value(json_object_get(p->md, "data_directory"));
        if (!p->md || !p->data || !streq_ptr(json_string_value(json_object_get(p->md, "writer")), "postgresql")) {
                json_decref(p->md);
                p->md = NULL;
                return writer_veto(w, VSS_E_WRITERERROR_NONRETRYABLE,
                                   "the backup metadata of component '%s' is not the PostgreSQL writer's", COMPONENT);
        }
        t = vss_writer_get_new_target(w, p->data);
        p->target = strdup(t ? t : p->data);
        if (!p->target) {
                plan_done(p);
                return writer_veto(w, VSS_E_WRITERERROR_OUTOFRESOURCES, "out of memory");
        }
        return true;
}

static bool on_pre_restore(vss_writer *w, void *userdata)
{
        struct app *a = userdata;
        struct restore_plan p;
        pid_t pid;
        bool ok = true;

        if (!vss_writer_is_component_selected(w, "", COMPONENT))
                return true;
        if (!load_plan(w, &p))
                return false;
        pid = server_on(p.target);
        if (pid > 0)
                ok = writer_veto(w, VSS_E_WRITERERROR_RETRYABLE,
                                 "a PostgreSQL server (pid %d) is running on %s; stop it (pg_ctl -D %s stop, or "
                                 "systemctl stop %s) before restoring", (int)pid, p.target, p.target, a->service);
        else {
                log_info("PreRestore: no server runs on %s; ready for the files", p.target);
                if (streq(p.target, p.data))
                        db_link_close(&a->link);
        }
        plan_done(&p);
        return ok;
}

/* Makes 'link' a symlink to 'dest' (when it is one to elsewhere, or missing).  A directory
 * there (the requester restored the WAL into the data directory itself) is left alone. */
static bool fix_link(vss_writer *w, const char *link, const char *dest, const char *what)
{
        char cur[PATH_MAX];
        struct stat st;
        ssize_t n;

        if (stat(dest, &st) < 0 || !S_ISDIR(st.st_mode))
                return writer_veto(w, VSS_E_WRITERERROR_NONRETRYABLE, "%s: %s was not restored (%s)", what, dest,
                                   strerror(errno ? errno : ENOTDIR));
        if (lstat(link, &st) == 0 && S_ISDIR(st.st_mode)) {
                log_info("PostRestore: %s is a directory; kept", link);
                return true;
        }
        n = readlink(link, cur, sizeof(cur) - 1);
        if (n >= 0) {
                cur[n] = 0;
                if (streq(cur, dest))
                        return true;
                if (unlink(link) < 0)
                        return writer_veto(w, VSS_E_WRITERERROR_NONRETRYABLE, "cannot replace %s: %s", link,
                                           strerror(errno));
        }
        if (symlink(dest, link) < 0)
                return writer_veto(w, VSS_E_WRITERERROR_NONRETRYABLE, "cannot link %s to %s: %s", link, dest,
                                   strerror(errno));
        log_info("PostRestore: %s (%s) now points to %s%s%s%s", link, what, dest, n >= 0 ? " (was " : "",
                 n >= 0 ? cur : "", n >= 0 ? ")" : "");
        return true;
}

/* Where a path of the backup was restored (a new string); vetoes when the data directory moved
 * but 'path' (outside it) would stay: the restored cluster would share it with the original. */
static char *moved(vss_writer *w, struct restore_plan *p, const char *path, const char *what, bool *ok)
{
        const char *t = vss_writer_get_new_target(w, path);

        if (t)
                return strdup(t);
        if (!streq(p->target, p->data) && !path_is_under(path, p->data)) {
                *ok = writer_veto(w, VSS_E_WRITERERROR_NONRETRYABLE,
                                  "the data directory is restored to %s but %s stays at %s, where the original "
                                  "cluster's lives: restore it to a new location too (a new target for %s)",
                                  p->target, what, path, path);
                return NULL;
        }
        return strdup(path);
}

/* pg_controldata's "Database system identifier" of dir, or NULL (tool missing, unreadable). */
static char *control_system_id(const char *dir, int version_num, char *state, size_t statelen)
{
        char tool[128], out[8192];
        const char *lines;
        char *argv[] = { tool, (char *)dir, NULL };
        int r;

        fmt_trunc(tool, sizeof(tool), "/usr/lib/postgresql/%d/bin/pg_controldata", version_num / 10000);
        if (access(tool, X_OK) < 0)
                fmt_trunc(tool, sizeof(tool), "pg_controldata");
        r = run_command(argv, 10000, out, sizeof(out));
        if (r != 0)
                return NULL;
        lines = strstr(out, "Database cluster state:");
        if (lines && state) {
                lines += strlen("Database cluster state:");
                while (*lines == ' ')
                        lines++;
                fmt_trunc(state, statelen, "%.*s", (int)strcspn(lines, "\n"), lines);
        }
        lines = strstr(out, "Database system identifier:");
        if (!lines)
                return NULL;
        lines += strlen("Database system identifier:");
        while (*lines == ' ')
                lines++;
        return strndup(lines, strcspn(lines, "\n"));
}

static bool on_post_restore(vss_writer *w, void *userdata)
{
        struct restore_plan p;
        enum vss_file_restore_status st;
        _cleanup_free_ char *pidfile = NULL, *version = NULL, *control = NULL, *wal_link = NULL,
                            *sysid = NULL;
        const char *want_id;
        char state[64] = "";
        struct stat sb;
        bool ok = true;
        json_t *ts;
        size_t i;

        if (!vss_writer_is_component_selected(w, "", COMPONENT))
                return true;
        if (!load_plan(w, &p))
                return false;
        st = vss_writer_get_file_restore_status(w, "", COMPONENT);
        if (st == VSS_RS_NONE) {
                log_info("PostRestore: nothing was restored to %s; left as it was", p.target);
                goto out;
        }
        if (st == VSS_RS_FAILED) {
                ok = writer_veto(w, VSS_E_WRITERERROR_NONRETRYABLE,
                                 "the requester failed to restore the files of %s; it cannot be started", p.target);
                goto out;
        }

        version = path_join(p.target, "PG_VERSION");
        control = path_join(p.target, "global/pg_control");
        pidfile = path_join(p.target, "postmaster.pid");
        wal_link = path_join(p.target, "pg_wal");
        if (!version || !control || !pidfile || !wal_link) {
                ok = writer_veto(w, VSS_E_WRITERERROR_OUTOFRESOURCES, "out of memory");
                goto out;
        }
        if (stat(version, &sb) < 0 || stat(control, &sb) < 0) {
                ok = writer_veto(w, VSS_E_WRITERERROR_NONRETRYABLE,
                                 "%s holds no restored cluster (PG_VERSION or global/pg_control missing)", p.target);
                goto out;
        }
        if (server_on(p.target) > 0) {
                ok = writer_veto(w, VSS_E_WRITERERROR_NONRETRYABLE, "a server started on %s during the restore",
                                 p.target);
                goto out;
        }
        /* The snapshot caught the running postmaster's lock file; its pid may live on (the original
         * server, or any process now), and pg_ctl start would refuse to start. */
        if (unlink(pidfile) == 0)
                log_info("PostRestore: removed the stale %s", pidfile);
        else if (errno != ENOENT) {
                ok = writer_veto(w, VSS_E_WRITERERROR_NONRETRYABLE, "cannot remove %s: %s", pidfile, strerror(errno));
                goto out;
        }

        if (json_is_true(json_object_get(p.md, "wal_is_symlink"))) {
                const char *orig = json_string_value(json_object_get(p.md, "wal_directory"));
                _cleanup_free_ char *wal = orig ? moved(w, &p, orig, "pg_wal", &ok) : NULL;

                if (!wal || !fix_link(w, wal_link, wal, "pg_wal")) {
                        ok = false;
                        goto out;
                }
        }
        json_array_foreach(json_object_get(p.md, "tablespaces"), i, ts) {
                const char *orig = json_string_value(json_object_get(ts, "location"));
                _cleanup_free_ char *loc = NULL;
                char what[300], link[PATH_MAX];

                fmt_trunc(what, sizeof(what), "tablespace %s", json_string_value(json_object_get(ts, "name")));
                fmt_trunc(link, sizeof(link), "%s/pg_tblspc/%lld", p.target,
                          (long long)json_integer_value(json_object_get(ts, "oid")));
                loc = orig ? moved(w, &p, orig, what, &ok) : NULL;
                if (!loc || !fix_link(w, link, loc, what)) {
                        ok = false;
                        goto out;
                }
        }
        /* PostgreSQL refuses a data directory that others may read. */
        if (stat(p.target, &sb) == 0 && (sb.st_mode & 0027)) {
                if (chmod(p.target, sb.st_mode & 0750) == 0)
                        log_info("PostRestore: %s made 0%o", p.target, sb.st_mode & 0750);
        }

        want_id = json_string_value(json_object_get(p.md, "system_identifier"));
        sysid = control_system_id(p.target, (int)json_integer_value(json_object_get(p.md, "server_version_num")),
                                  state, sizeof(state));
        if (sysid && want_id && !streq(sysid, want_id)) {
                ok = writer_veto(w, VSS_E_WRITERERROR_NONRETRYABLE,
                                 "%s holds cluster %s, the backup was of cluster %s", p.target, sysid, want_id);
                goto out;
        }
        log_info("PostRestore: %s is ready (cluster %s, state '%s'); pg_ctl start recovers it from checkpoint %s",
                 p.target, sysid ? sysid : "?", state[0] ? state : "?",
                 json_string_value(json_object_get(p.md, "checkpoint_lsn")) ?: "?");
out:
        plan_done(&p);
        return ok;
}

int main(int argc, char **argv)
{
        struct app a = { 0 };
        struct writer_app app = {
                .program = "vss-writer-postgresql",
                .default_name = "PostgreSQL Writer",
                .summary = "The VSS writer for a PostgreSQL cluster: declares the volumes of its data, WAL and "
                           "tablespaces,\nCHECKPOINTs before a shadow copy and makes restored copies start (see "
                           "vss-writer-postgresql(8)).",
                .options = options,
                .source = VSS_ST_TRANSACTEDDB,
                .handlers = {
                        .on_prepare_snapshot = on_prepare_snapshot,
                        .on_freeze = on_freeze,
                        .on_abort = on_abort,
                        .on_backup_shutdown = on_backup_shutdown,
                        .on_pre_restore = on_pre_restore,
                        .on_post_restore = on_post_restore,
                },
                .userdata = &a,
                .set = app_set,
                .describe = app_describe,
                .tick = app_tick,
                .shutdown = app_shutdown,
        };
        int exit_code = 0;

        a.link = (struct db_link){ .what = "the PostgreSQL server", .connect = pg_link_connect,
                                   .disconnect = pg_link_disconnect, .alive = pg_link_alive, .userdata = &a };
        if (writer_app_parse(&app, argc, argv, &exit_code) < 0)
                goto out;
        if ((!a.conninfo && !(a.conninfo = strdup(""))) || (!a.service && !(a.service = strdup("postgresql")))) {
                exit_code = 1;
                goto out;
        }
        app.restore_method = (struct vss_restore_method){ .method = VSS_RME_STOP_RESTORE_START,
                                                          .service = a.service,
                                                          .writer_restore = VSS_WRE_ALWAYS };
        exit_code = writer_app_run(&app);
out:
        writer_app_done(&app);
        db_link_close(&a.link);
        pg_layout_done(&a.layout);
        json_decref(a.metadata);
        free(a.conninfo);
        free(a.service);
        return exit_code;
}
