/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vss-writer-mariadb's restore events (the design is in vss-writer-mariadb.c's head
 * comment): PreRestore vetoes while a server runs on the target data directory;
 * PostRestore checks what was restored and makes it a data directory mariadbd starts
 * from with ordinary crash recovery.
 */

#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "basic/log.h"
#include "basic/macro.h"
#include "basic/string-util.h"
#include "common/proc-util.h"
#include "common/writer-app.h"
#include "mariadb/maria.h"

/* ---- restore ----------------------------------------------------------------------------- */

/* Where a backed-up path is restored to. */
static const char *target_of(vss_writer *w, const char *path)
{
        const char *t = path ? vss_writer_get_new_target(w, path) : NULL;
        return t ? t : path;
}

/* The layout of the backup being restored: its metadata, else the last one seen. */
static bool restore_layout(vss_writer *w, struct app *a, struct layout *l)
{
        const char *text = vss_writer_get_backup_metadata(w, "", COMPONENT);
        _cleanup_(json_decrefp) json_t *md = text ? json_loads(text, 0, NULL) : NULL;

        if (md && layout_from_json(md, l))
                return true;
        if (text)
                log_warn("%s: the component's backup metadata is not this writer's; using the server's current "
                         "layout", writer_event_name(w));
        return a->have_layout && layout_copy(&a->lay, l) == 0;
}

/* A server running on the target data directory, as a veto message in buf; false when none. */
static bool server_running(vss_writer *w, struct app *a, const struct layout *l, char *buf, size_t len)
{
        const char *datadir = target_of(w, l->datadir), *pidfile = target_of(w, l->pid_file);
        char comm[16] = "";
        pid_t pid;

        pid = proc_find_by_cwd(datadir, server_comms, comm);
        if (pid > 0) {
                fmt_trunc(buf, len, "a MariaDB server (pid %d %s) runs on %s; stop it before restoring", (int)pid,
                          comm, datadir);
                return true;
        }
        if (pidfile) {
                FILE *f = fopen(pidfile, "re");
                long p = 0;

                if (f) {
                        if (fscanf(f, "%ld", &p) != 1)
                                p = 0;
                        fclose(f);
                }
                if (p > 0 && proc_is_running((pid_t)p, server_comms)) {
                        fmt_trunc(buf, len, "a MariaDB server (pid %ld, from %s) is running; stop it before restoring",
                                  p, pidfile);
                        return true;
                }
        }
        /* A server the writer reaches with this datadir (it may run where /proc does not show it). */
        if (a->link.up && a->have_layout && streq(a->lay.datadir, datadir) && my_alive(a)) {
                fmt_trunc(buf, len, "the MariaDB server the writer is connected to runs on %s; stop it before "
                          "restoring", datadir);
                return true;
        }
        return false;
}

bool on_pre_restore(vss_writer *w, void *userdata)
{
        struct app *a = userdata;
        struct layout l;
        char msg[1024];

        if (!selected(w))
                return true;
        if (!restore_layout(w, a, &l))
                return writer_veto(w, VSS_E_WRITERERROR_NONRETRYABLE,
                                   "the backup has no metadata of this writer and the server was never reached: "
                                   "where is the data directory?");
        if (server_running(w, a, &l, msg, sizeof(msg))) {
                layout_done(&l);
                return writer_veto(w, VSS_E_WRITERERROR_RETRYABLE, "%s", msg);
        }
        end_stage(a, "PreRestore");
        db_link_close(&a->link);
        a->restoring = true;
        log_info("PreRestore: no server runs on %s; ready for the files", target_of(w, l.datadir));
        layout_done(&l);
        return true;
}

/* Removes a stale pid file or socket (one no live server owns). */
static void remove_stale(const char *path, bool socket_file, char *done, size_t len)
{
        struct stat st;
        size_t n = strlen(done);

        if (!path || lstat(path, &st) < 0)
                return;
        if (socket_file) {
                struct sockaddr_un sa = { .sun_family = AF_UNIX };
                _cleanup_close_ int fd = -EBADF;

                if (!S_ISSOCK(st.st_mode) || strlen(path) >= sizeof(sa.sun_path))
                        return;
                memcpy(sa.sun_path, path, strlen(path) + 1);
                fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 || errno != ECONNREFUSED)
                        return; /* somebody listens, or we cannot tell */
        } else if (!S_ISREG(st.st_mode))
                return;
        if (unlink(path) == 0)
                snprintf(done + n, len - n, "%sstale %s %s", n ? ", " : "", socket_file ? "socket" : "pid file", path);
        else
                log_warn("PostRestore: cannot remove the stale %s: %s", path, strerror(errno));
}

/* "#sql" files ALTER TABLE was writing when the snapshot was taken (not InnoDB's .ibd: InnoDB
 * drops those itself at startup, with its dictionary).  Returns how many were removed. */
static unsigned remove_sql_leftovers(const char *datadir)
{
        unsigned n = 0;
        DIR *top = opendir(datadir);
        struct dirent *de;

        if (!top)
                return 0;
        while ((de = readdir(top))) {
                _cleanup_free_ char *sub = NULL;
                DIR *d;
                struct dirent *e;

                if (de->d_name[0] == '.')
                        continue;
                sub = path_join(datadir, de->d_name);
                if (!sub || !(d = opendir(sub)))
                        continue;
                while ((e = readdir(d))) {
                        size_t len = strlen(e->d_name);

                        if (strncmp(e->d_name, "#sql", 4) != 0 || (len > 4 && streq(e->d_name + len - 4, ".ibd")))
                                continue;
                        if (unlinkat(dirfd(d), e->d_name, 0) == 0) {
                                log_info("PostRestore: removed %s/%s (an ALTER TABLE in progress at the snapshot)",
                                         sub, e->d_name);
                                n++;
                        }
                }
                closedir(d);
        }
        closedir(top);
        return n;
}

/* Gives restored files back to the datadir's owner (a requester copying as root leaves them
 * root's, and mariadbd --user=mysql cannot open them). */
struct give_back_ctx {
        vss_writer *w;
        uid_t uid;
        gid_t gid;
        unsigned changed, failed;
};

static struct give_back_ctx *give_back_nftw;    /* nftw() passes no userdata */

static void give_back_one(struct give_back_ctx *x, int dirfd_, const char *name, const struct stat *st)
{
        if (st->st_uid == x->uid && st->st_gid == x->gid)
                return;
        if (fchownat(dirfd_, name, x->uid, x->gid, AT_SYMLINK_NOFOLLOW) == 0)
                x->changed++;
        else
                x->failed++;
}

static int give_back_walk(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        (void)flag;
        (void)ftw;
        give_back_one(give_back_nftw, AT_FDCWD, path, st);
        return 0;
}

static int give_back_place(void *userdata, const char *dir, const char *spec, bool recursive)
{
        struct give_back_ctx *x = userdata;
        const char *target = target_of(x->w, dir);
        struct dirent *de;
        DIR *d;

        if (recursive) {
                give_back_nftw = x;
                (void)nftw(target, give_back_walk, 16, FTW_PHYS | FTW_MOUNT);
                give_back_nftw = NULL;
                return 0;
        }
        d = opendir(target);
        if (!d)
                return 0;
        while ((de = readdir(d))) {
                struct stat st;

                if (fnmatch(spec, de->d_name, FNM_PERIOD) == 0 &&
                    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0)
                        give_back_one(x, dirfd(d), de->d_name, &st);
        }
        closedir(d);
        return 0;
}

/* Checks that the restored files are a data directory holding the backup's binary log. */
static bool check_restored(vss_writer *w, const struct layout *l, json_t *md, char *err, size_t errlen)
{
        const char *datadir = target_of(w, l->datadir), *binlog = json_string_value(json_object_get(md, "binlog_file"));
        _cleanup_free_ char *sys = path_join(datadir, "mysql");
        struct stat st;

        if (!sys || stat(sys, &st) < 0 || !S_ISDIR(st.st_mode)) {
                fmt_trunc(err, errlen, "%s has no mysql/ directory: it is not a MariaDB data directory", datadir);
                return false;
        }
        for (size_t i = 0; l->data_files && l->data_files[i]; i++) {
                const char *f = target_of(w, l->data_files[i]);

                if (stat(f, &st) < 0) {
                        fmt_trunc(err, errlen, "the InnoDB system tablespace %s: %s", f, strerror(errno));
                        return false;
                }
        }
        if (binlog && l->binlog_dir) {
                _cleanup_free_ char *p = path_join(target_of(w, l->binlog_dir), binlog);
                json_int_t pos = json_integer_value(json_object_get(md, "binlog_position"));

                if (!p || stat(p, &st) < 0) {
                        fmt_trunc(err, errlen, "the backup's binary log %s is not there (%s): these are not the "
                                  "backup's files", p ? p : binlog, strerror(errno));
                        return false;
                }
                if (st.st_size < pos) {
                        fmt_trunc(err, errlen, "the binary log %s has %lld bytes, the backup's ended at %lld: these "
                                  "are not the backup's files", p, (long long)st.st_size, (long long)pos);
                        return false;
                }
        }
        return true;
}

bool on_post_restore(vss_writer *w, void *userdata)
{
        struct app *a = userdata;
        enum vss_file_restore_status st;
        const char *text;
        _cleanup_(json_decrefp) json_t *md = NULL;
        char msg[1024], removed[2048] = "";
        struct give_back_ctx gb;
        const char *datadir;
        struct layout l;
        bool in_place;
        unsigned sql;

        if (!selected(w))
                return true;
        a->restoring = false;
        st = vss_writer_get_file_restore_status(w, "", COMPONENT);
        if (st == VSS_RS_NONE) {
                log_info("PostRestore: nothing was restored");
                return true;
        }
        if (st == VSS_RS_FAILED)
                return writer_veto(w, VSS_E_WRITERERROR_NONRETRYABLE,
                                   "the requester failed to restore the server's files; do not start mariadbd on "
                                   "them before they are restored again");
        if (!restore_layout(w, a, &l))
                return writer_veto(w, VSS_E_WRITERERROR_NONRETRYABLE,
                                   "the backup has no metadata of this writer and the server was never reached");
        text = vss_writer_get_backup_metadata(w, "", COMPONENT);
        md = text ? json_loads(text, 0, NULL) : json_object();
        datadir = target_of(w, l.datadir);
        in_place = streq(datadir, l.datadir);
        if (server_running(w, a, &l, msg, sizeof(msg))) {
                layout_done(&l);
                return writer_veto(w, VSS_E_WRITERERROR_RETRYABLE, "%s (it was started before PostRestore)", msg);
        }
        if (!check_restored(w, &l, md, msg, sizeof(msg))) {
                layout_done(&l);
                return writer_veto(w, VSS_E_WRITERERROR_NONRETRYABLE, "restored files: %s", msg);
        }
        /* The pid file and socket of the server that ran at backup time: stale now.  When
         * restoring elsewhere, only those inside what was restored. */
        if (in_place || vss_writer_get_new_target(w, l.pid_file ?: "/"))
                remove_stale(target_of(w, l.pid_file), false, removed, sizeof(removed));
        if (in_place || vss_writer_get_new_target(w, l.socket ?: "/"))
                remove_stale(target_of(w, l.socket), true, removed, sizeof(removed));
        sql = remove_sql_leftovers(datadir);
        gb = (struct give_back_ctx){ .w = w, .uid = l.uid, .gid = l.gid };
        (void)layout_foreach(&l, give_back_place, &gb);
        if (gb.failed)
                log_warn("PostRestore: %u file(s) could not be given back to uid %u", gb.failed, (unsigned)l.uid);
        log_info("PostRestore: %s restored and checked%s%s; %u #sql leftover(s) removed, %u file(s) given back to "
                 "uid %u gid %u; mariadbd starts on it with InnoDB crash recovery",
                 datadir, removed[0] ? "; removed " : "", removed, sql, gb.changed, (unsigned)l.uid, (unsigned)l.gid);
        layout_done(&l);
        return true;
}
