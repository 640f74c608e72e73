/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What vss-writer-mariadb.c (the session and the backup stages) and maria-restore.c
 * (PreRestore and PostRestore) share: the server's layout and the writer's state. */

#include <jansson.h>
#include <mysql.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <vss/writer.h>

#include "common/db-link.h"

#define COMPONENT "server"

/* The process names a server runs under. */
extern const char *const server_comms[];

/* Where a server keeps its data: what the writer declares, and what a restore works on. */
struct layout {
        char *version;
        char *datadir;          /* canonical, as every directory here */
        char *log_dir;          /* innodb_log_group_home_dir */
        char *data_home_dir;    /* innodb_data_home_dir (the datadir when unset) */
        char **data_files;      /* innodb_data_file_path's files, absolute (NULL-terminated) */
        char *undo_dir;         /* innodb_undo_directory */
        char *aria_log_dir;     /* aria_log_dir_path */
        char *binlog_dir;       /* NULL: no binary log */
        char *binlog_base;      /* "binlog" of /srv/db/binlog.000001 */
        char *binlog_index;     /* absolute */
        char **remote_files;    /* InnoDB tablespaces outside the datadir (DATA DIRECTORY), absolute */
        char *pid_file;
        char *socket;
        uid_t uid;              /* the datadir's owner, to give restored files back to */
        gid_t gid;
};

enum stage {
        STAGE_NONE,
        STAGE_FLUSH,            /* START and FLUSH done (PrepareForSnapshot) */
        STAGE_BLOCK_COMMIT,     /* BLOCK_DDL and BLOCK_COMMIT done (Freeze) */
};

static const char *const stage_names[] = {
        [STAGE_NONE] = "no stage",
        [STAGE_FLUSH] = "FLUSH",
        [STAGE_BLOCK_COMMIT] = "BLOCK_COMMIT",
};

struct app {
        char *defaults_file;
        uint32_t freeze_timeout_ms;
        MYSQL *my;
        struct db_link link;
        struct layout lay;              /* the last layout the server gave */
        bool have_layout;
        uint64_t next_layout_check_us;

        enum stage stage;
        unsigned long stage_thread;     /* the session that holds it */
        uint64_t stage_at_us;           /* START began */
        uint64_t blocked_at_us;         /* BLOCK_COMMIT returned */
        uint64_t prepared_until_us;     /* a FLUSH stage without Freeze ends then */
        bool stage_lost;                /* the session holding BLOCK_COMMIT went away before Thaw */

        bool restoring;                 /* between PreRestore and PostRestore */
};

void layout_done(struct layout *l);
int layout_copy(const struct layout *from, struct layout *to);
bool layout_from_json(json_t *md, struct layout *l);

/* Where a layout's files are: the datadir with everything under it, then each directory
 * outside it with the files of ours it holds (fnmatch patterns, or one file's name).  fn
 * returns < 0 to stop. */
typedef int (*place_fn)(void *userdata, const char *dir, const char *spec, bool recursive);
int layout_foreach(const struct layout *l, place_fn fn, void *userdata);

/* The session (vss-writer-mariadb.c). */
bool my_alive(void *userdata);
/* Whether this writer's component is in the event's selection. */
bool selected(vss_writer *w);
/* Ends a held backup stage (BACKUP STAGE END), saying why in the log. */
void end_stage(struct app *a, const char *why);

bool on_pre_restore(vss_writer *w, void *userdata);
bool on_post_restore(vss_writer *w, void *userdata);
