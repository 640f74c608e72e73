/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The catalog: <state-dir>/catalog.db, SQLite in WAL mode with
 * synchronous=FULL so a shadow copy we reported as created is on disk before
 * the requester hears of it.  Tables: shadows (every field of
 * vss_provider_snapshot plus set, context, attributes, times, exposure and
 * owner), sets, backup_metadata and events.  Providers may log from the worker
 * thread, so every access holds one mutex.
 */

#include <stdarg.h>
#include <stdio.h>

#include "vssd/vssd.h"

static pthread_mutex_t db_lock = PTHREAD_MUTEX_INITIALIZER;

static const char schema[] =
        "PRAGMA journal_mode=WAL;"
        "PRAGMA synchronous=FULL;"
        "CREATE TABLE IF NOT EXISTS shadows ("
        " shadow_id TEXT PRIMARY KEY, set_id TEXT NOT NULL, context INTEGER NOT NULL,"
        " attributes INTEGER NOT NULL, provider_attributes INTEGER NOT NULL, creation_time_us INTEGER NOT NULL,"
        " snapshots_count INTEGER NOT NULL, volume TEXT NOT NULL, volume_device TEXT NOT NULL,"
        " fstype TEXT NOT NULL, device TEXT NOT NULL, provider_id TEXT, provider_data BLOB,"
        " exposed_path TEXT, owner_session TEXT);"
        "CREATE TABLE IF NOT EXISTS sets ("
        " set_id TEXT PRIMARY KEY, context INTEGER NOT NULL, created_us INTEGER NOT NULL,"
        " owner_session TEXT, owner_pid INTEGER, backup_type TEXT, status TEXT NOT NULL);"
        "CREATE TABLE IF NOT EXISTS backup_metadata ("
        " set_id TEXT NOT NULL, writer_id TEXT NOT NULL, writer_name TEXT, logical_path TEXT NOT NULL,"
        " name TEXT NOT NULL, metadata TEXT NOT NULL, PRIMARY KEY (set_id, writer_id, logical_path, name));"
        "CREATE TABLE IF NOT EXISTS events ("
        " id INTEGER PRIMARY KEY AUTOINCREMENT, time_us INTEGER NOT NULL, level TEXT NOT NULL,"
        " source TEXT NOT NULL, hresult INTEGER, message TEXT NOT NULL);";

/* What to do about a catalog vssd cannot use: it never starts on one, and never replaces it
 * (the file may be all that still names the shadow copies of the providers). */
#define CATALOG_REMEDY "restore it from a copy, or move it aside to start with an empty catalog"

#define QUICK_CHECK_MAX 256     /* the first problem quick_check names, as much as is kept */

static int quick_check_row(void *userdata, int ncol, char **val, char **names)
{
        char *first = userdata;

        (void)names;
        if (ncol > 0 && val[0] && !first[0])
                snprintf(first, QUICK_CHECK_MAX, "%s", val[0]);
        return 0;
}

int catalog_open(struct vssd *v)
{
        _cleanup_free_ char *path = NULL;
        char *err = NULL, problem[QUICK_CHECK_MAX] = "";

        if (asprintf(&path, "%s/catalog.db", v->state_dir) < 0)
                return -ENOMEM;
        if (sqlite3_open_v2(path, &v->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                            NULL) != SQLITE_OK) {
                log_err("cannot open catalog %s: %s (0x%08X %s)", path,
                        v->db ? sqlite3_errmsg(v->db) : "out of memory", (uint32_t)VSS_E_UNEXPECTED,
                        vss_hresult_name(VSS_E_UNEXPECTED));
                sqlite3_close(v->db);
                v->db = NULL;
                return -EIO;
        }
        sqlite3_busy_timeout(v->db, 5000);
        if (sqlite3_exec(v->db, schema, NULL, NULL, &err) != SQLITE_OK) {
                log_err("cannot initialise catalog %s: %s (0x%08X %s): " CATALOG_REMEDY, path, err,
                        (uint32_t)VSS_E_UNEXPECTED, vss_hresult_name(VSS_E_UNEXPECTED));
                sqlite3_free(err);
                sqlite3_close(v->db);
                v->db = NULL;
                return -EIO;
        }
        /* A damaged page that the schema statements did not touch only shows when a query
         * reads it, after shadow copies have gone missing from listings: look at every page
         * now (quick_check: a few ms for thousands of rows). */
        if (sqlite3_exec(v->db, "PRAGMA quick_check", quick_check_row, problem, &err) != SQLITE_OK ||
            !streq(problem, "ok")) {
                log_err("catalog %s is damaged: %s (0x%08X %s): " CATALOG_REMEDY, path,
                        err ? err : problem[0] ? problem : "quick_check returned nothing",
                        (uint32_t)VSS_E_UNEXPECTED, vss_hresult_name(VSS_E_UNEXPECTED));
                sqlite3_free(err);
                sqlite3_close(v->db);
                v->db = NULL;
                return -EIO;
        }
        return 0;
}

void catalog_close(struct vssd *v)
{
        sqlite3_close(v->db);
        v->db = NULL;
}

void catalog_event(struct vssd *v, const char *level, const char *source, vss_hresult hr, const char *fmt, ...)
{
        char msg[2048];
        sqlite3_stmt *st = NULL;
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (hr != VSS_S_OK)
                log_msg(log_level_from_name(level), "[%s] %s (0x%08X %s)", source, msg, (uint32_t)hr,
                        vss_hresult_name(hr));
        else
                log_msg(log_level_from_name(level), "[%s] %s", source, msg);
        if (!v->db)
                return;
        pthread_mutex_lock(&db_lock);
        /* An event row needs no fdatasync of its own: with WAL it becomes durable at the next
         * FULL commit (a shadow copy's) or checkpoint.  A sync per row cost ~0.5 ms on the event
         * loop, 50 ms when 100 writers registered at once (bench/snapset). */
        sqlite3_exec(v->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
        if (sqlite3_prepare_v2(v->db,
                               "INSERT INTO events(time_us,level,source,hresult,message) VALUES(?,?,?,?,?)", -1,
                               &st, NULL) == SQLITE_OK) {
                sqlite3_bind_int64(st, 1, (int64_t)clock_realtime_us());
                sqlite3_bind_text(st, 2, level, -1, SQLITE_TRANSIENT);
                sqlite3_bind_text(st, 3, source, -1, SQLITE_TRANSIENT);
                if (hr != VSS_S_OK)
                        sqlite3_bind_int64(st, 4, (uint32_t)hr);
                else
                        sqlite3_bind_null(st, 4);
                sqlite3_bind_text(st, 5, msg, -1, SQLITE_TRANSIENT);
                if (sqlite3_step(st) != SQLITE_DONE)
                        log_err("catalog: cannot store event: %s", sqlite3_errmsg(v->db));
        }
        sqlite3_finalize(st);
        sqlite3_exec(v->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
        pthread_mutex_unlock(&db_lock);
}

json_t *catalog_events(struct vssd *v, int64_t limit, int64_t since_us)
{
        json_t *a = json_array();
        sqlite3_stmt *st = NULL;

        pthread_mutex_lock(&db_lock);
        /* Newest last: take the newest N, then reverse by inserting at the front. */
        if (sqlite3_prepare_v2(v->db,
                               "SELECT time_us, level, source, hresult, message FROM events WHERE time_us >= ? "
                               "ORDER BY id DESC LIMIT ?", -1, &st, NULL) == SQLITE_OK) {
                sqlite3_bind_int64(st, 1, since_us);
                sqlite3_bind_int64(st, 2, limit);
                while (sqlite3_step(st) == SQLITE_ROW) {
                        json_t *o = json_pack("{s:I, s:s, s:s, s:s}", "time_us",
                                              (json_int_t)sqlite3_column_int64(st, 0), "level",
                                              (const char *)sqlite3_column_text(st, 1), "source",
                                              (const char *)sqlite3_column_text(st, 2), "message",
                                              (const char *)sqlite3_column_text(st, 4));
                        if (!o)
                                continue;
                        if (sqlite3_column_type(st, 3) != SQLITE_NULL) {
                                vss_hresult hr = VSS_HR((uint32_t)sqlite3_column_int64(st, 3));
                                char hex[11];

                                wire_format_hresult(hr, hex);
                                json_object_set_new(o, "hresult", json_string(hex));
                                json_object_set_new(o, "hresult_name", json_string(vss_hresult_name(hr)));
                        }
                        json_array_insert_new(a, 0, o);
                }
        }
        sqlite3_finalize(st);
        pthread_mutex_unlock(&db_lock);
        return a;
}

static void bind_id(sqlite3_stmt *st, int i, const vss_id *id)
{
        char buf[VSS_ID_STRING_MAX];

        sqlite3_bind_text(st, i, vss_id_format(id, buf), -1, SQLITE_TRANSIENT);
}

int catalog_shadow_put(struct vssd *v, const struct shadow *sh)
{
        sqlite3_stmt *st = NULL;
        int r = -EIO;

        pthread_mutex_lock(&db_lock);
        if (sqlite3_prepare_v2(v->db,
                               "INSERT OR REPLACE INTO shadows VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", -1, &st,
                               NULL) == SQLITE_OK) {
                bind_id(st, 1, &sh->snap.snapshot_id);
                bind_id(st, 2, &sh->snap.set_id);
                sqlite3_bind_int(st, 3, sh->snap.context);
                sqlite3_bind_int(st, 4, sh->attributes);
                sqlite3_bind_int(st, 5, sh->snap.attributes);
                sqlite3_bind_int64(st, 6, sh->creation_time_us);
                sqlite3_bind_int(st, 7, sh->snapshots_count);
                sqlite3_bind_text(st, 8, sh->snap.volume, -1, SQLITE_TRANSIENT);
                sqlite3_bind_text(st, 9, sh->snap.volume_device, -1, SQLITE_TRANSIENT);
                sqlite3_bind_text(st, 10, sh->snap.fstype, -1, SQLITE_TRANSIENT);
                sqlite3_bind_text(st, 11, sh->snap.device, -1, SQLITE_TRANSIENT);
                if (sh->provider >= 0)
                        sqlite3_bind_text(st, 12, provider_table[sh->provider]->provider_id, -1, SQLITE_STATIC);
                sqlite3_bind_blob(st, 13, sh->snap.provider_data, sizeof(sh->snap.provider_data), SQLITE_TRANSIENT);
                if (sh->exposed_path)
                        sqlite3_bind_text(st, 14, sh->exposed_path, -1, SQLITE_TRANSIENT);
                bind_id(st, 15, &sh->owner_session);
                if (sqlite3_step(st) == SQLITE_DONE)
                        r = 0;
                else if (sqlite3_errcode(v->db) == SQLITE_FULL)
                        r = -ENOSPC;    /* the state directory's filesystem is full */
        }
        if (r < 0)
                log_err("catalog: cannot store shadow: %s", sqlite3_errmsg(v->db));
        sqlite3_finalize(st);
        pthread_mutex_unlock(&db_lock);
        return r;
}

int catalog_shadow_del(struct vssd *v, const vss_id *id)
{
        sqlite3_stmt *st = NULL;
        int r = -EIO;

        pthread_mutex_lock(&db_lock);
        if (sqlite3_prepare_v2(v->db, "DELETE FROM shadows WHERE shadow_id=?", -1, &st, NULL) == SQLITE_OK) {
                bind_id(st, 1, id);
                if (sqlite3_step(st) == SQLITE_DONE)
                        r = 0;
        }
        sqlite3_finalize(st);
        pthread_mutex_unlock(&db_lock);
        return r;
}

static void copy_col(sqlite3_stmt *st, int i, char *dst, size_t len)
{
        const char *s = (const char *)sqlite3_column_text(st, i);

        snprintf(dst, len, "%s", s ? s : "");
}

int catalog_shadows_load(struct vssd *v)
{
        sqlite3_stmt *st = NULL;
        int n = 0;

        pthread_mutex_lock(&db_lock);
        if (sqlite3_prepare_v2(v->db,
                               "SELECT shadow_id,set_id,context,attributes,provider_attributes,creation_time_us,"
                               "snapshots_count,volume,volume_device,fstype,device,provider_id,provider_data,"
                               "exposed_path,owner_session FROM shadows ORDER BY creation_time_us", -1, &st,
                               NULL) != SQLITE_OK) {
                pthread_mutex_unlock(&db_lock);
                return -EIO;
        }
        while (sqlite3_step(st) == SQLITE_ROW) {
                struct shadow *sh = calloc(1, sizeof(*sh)), **p;
                const void *blob;

                if (!sh)
                        break;
                if (vss_id_parse((const char *)sqlite3_column_text(st, 0), &sh->snap.snapshot_id) != VSS_S_OK ||
                    vss_id_parse((const char *)sqlite3_column_text(st, 1), &sh->snap.set_id) != VSS_S_OK) {
                        free(sh);
                        continue;
                }
                sh->snap.context = sqlite3_column_int(st, 2);
                sh->attributes = sqlite3_column_int(st, 3);
                sh->snap.attributes = sqlite3_column_int(st, 4);
                sh->creation_time_us = sqlite3_column_int64(st, 5);
                sh->snapshots_count = sqlite3_column_int(st, 6);
                copy_col(st, 7, sh->snap.volume, sizeof(sh->snap.volume));
                copy_col(st, 8, sh->snap.volume_device, sizeof(sh->snap.volume_device));
                copy_col(st, 9, sh->snap.fstype, sizeof(sh->snap.fstype));
                copy_col(st, 10, sh->snap.device, sizeof(sh->snap.device));
                sh->provider = sqlite3_column_text(st, 11) ? provider_by_id((const char *)sqlite3_column_text(st, 11))
                                                           : -1;
                blob = sqlite3_column_blob(st, 12);
                if (blob)
                        memcpy(sh->snap.provider_data, blob,
                               MIN((size_t)sqlite3_column_bytes(st, 12), sizeof(sh->snap.provider_data)));
                sh->snap.provider_data[sizeof(sh->snap.provider_data) - 1] = 0;
                if (sqlite3_column_text(st, 13))
                        sh->exposed_path = strdup((const char *)sqlite3_column_text(st, 13));
                if (sqlite3_column_text(st, 14))
                        (void)vss_id_parse((const char *)sqlite3_column_text(st, 14), &sh->owner_session);
                for (p = &v->shadows; *p; p = &(*p)->next)
                        ;
                *p = sh;
                n++;
        }
        sqlite3_finalize(st);
        pthread_mutex_unlock(&db_lock);
        return n;
}

int catalog_set_put(struct vssd *v, struct session *s, const char *status)
{
        sqlite3_stmt *st = NULL;
        int r = -EIO;

        pthread_mutex_lock(&db_lock);
        if (sqlite3_prepare_v2(v->db, "INSERT OR REPLACE INTO sets VALUES(?,?,?,?,?,?,?)", -1, &st, NULL) ==
            SQLITE_OK) {
                bind_id(st, 1, &s->set_id);
                sqlite3_bind_int(st, 2, s->context);
                sqlite3_bind_int64(st, 3, (int64_t)clock_realtime_us());
                bind_id(st, 4, &s->session_id);
                sqlite3_bind_int(st, 5, (int)s->pid);
                sqlite3_bind_text(st, 6, s->backup_type, -1, SQLITE_TRANSIENT);
                sqlite3_bind_text(st, 7, status, -1, SQLITE_TRANSIENT);
                if (sqlite3_step(st) == SQLITE_DONE)
                        r = 0;
        }
        sqlite3_finalize(st);
        pthread_mutex_unlock(&db_lock);
        return r;
}

int catalog_metadata_put(struct vssd *v, const vss_id *set_id, struct writer *w)
{
        const char *key;
        json_t *o;
        int r = 0;

        pthread_mutex_lock(&db_lock);
        json_object_foreach(w->metadata, key, o) {
                sqlite3_stmt *st = NULL;

                if (sqlite3_prepare_v2(v->db, "INSERT OR REPLACE INTO backup_metadata VALUES(?,?,?,?,?,?)", -1, &st,
                                       NULL) != SQLITE_OK) {
                        r = -EIO;
                        break;
                }
                bind_id(st, 1, set_id);
                bind_id(st, 2, &w->writer_id);
                sqlite3_bind_text(st, 3, w->name, -1, SQLITE_TRANSIENT);
                sqlite3_bind_text(st, 4, json_get_str(o, "logical_path"), -1, SQLITE_TRANSIENT);
                sqlite3_bind_text(st, 5, json_get_str(o, "name"), -1, SQLITE_TRANSIENT);
                sqlite3_bind_text(st, 6, json_get_str(o, "backup_metadata"), -1, SQLITE_TRANSIENT);
                if (sqlite3_step(st) != SQLITE_DONE)
                        r = -EIO;
                sqlite3_finalize(st);
        }
        pthread_mutex_unlock(&db_lock);
        return r;
}
