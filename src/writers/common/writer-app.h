/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What every application writer program (vss-writer-postgresql, -mariadb,
 * -sqlite) has in common: its command line and config file, its logging, and
 * the loop that keeps it registered with vssd.
 *
 * Options and config keys are one table: every option --foo-bar ARG is also
 * the key foo_bar (or foo-bar) of the [writer] section of --config FILE, and
 * the command line wins over the file key by key.  The common options are
 * --name --socket --freeze-timeout --config --no-reconnect --verbose --help;
 * a program adds its own (--conninfo, --defaults-file, --database) through
 * struct writer_app_option, and gets their values through its set() callback,
 * from the file first and then from the command line.
 *
 * writer_app_run() registers the writer (describe() gives its volumes and
 * components, which for a database come from the server), then dispatches
 * events and calls tick() about once a second between them, so the program
 * can keep its database session alive and notice a changed layout; when
 * tick() asks for it (and no snapshot set is under way) the writer registers
 * again with the new description.  vssd being away at startup is waited for
 * (unless --no-reconnect); once registered, libvss reconnects by itself.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "basic/macro.h"
#include "vss/writer.h"

struct writer_app_option {
        const char *name;       /* long option and config key, "conninfo" */
        const char *arg;        /* "STR"; NULL for a flag (value "true") */
        const char *help;       /* one line */
        bool multiple;          /* may be given several times (--database) */
};

/* What a program describes at each registration. */
struct writer_desc {
        char **volumes;         /* NULL-terminated, owned */
        size_t n_volumes;
        struct writer_desc_component {
                enum vss_component_type type;
                char *logical_path;
                char *name;
                char *caption;
                struct writer_desc_file {
                        char *path;
                        char *filespec;
                        bool recursive;
                } *files;
                size_t n_files;
        } *components;
        size_t n_components;
};

int writer_desc_add_volume(struct writer_desc *d, const char *path);
/* Adds a component; returns its index or -ENOMEM. */
int writer_desc_add_component(struct writer_desc *d, enum vss_component_type type, const char *logical_path,
                              const char *name, const char *caption);
int writer_desc_add_file(struct writer_desc *d, int component, const char *path, const char *filespec,
                         bool recursive);
void writer_desc_done(struct writer_desc *d);
bool writer_desc_equal(const struct writer_desc *a, const struct writer_desc *b);

struct writer_app_settings {
        char *name;
        char *socket;                   /* NULL: libvss's default */
        uint32_t freeze_timeout_ms;     /* 0: vssd's default */
        bool no_reconnect;
        bool verbose;
        char *config;
};

struct writer_app {
        /* Filled by the program. */
        const char *program;            /* "vss-writer-sqlite" */
        const char *default_name;       /* "SQLite Writer" */
        const char *summary;            /* one line for --help */
        const struct writer_app_option *options;        /* terminated by { NULL } */
        enum vss_source_type source;
        struct vss_restore_method restore_method;
        struct vss_writer_handlers handlers;
        void *userdata;
        /* Called for each program option, config values first, then command-line ones; for a
         * 'multiple' option the values of one origin replace those of the other.  Returns 0 or
         * -EINVAL with the reason in err. */
        int (*set)(void *userdata, const char *key, const char *value, char *err, size_t errlen);
        /* After parsing: checks the values; 0 or -EINVAL with err. */
        int (*check)(void *userdata, char *err, size_t errlen);
        /* Fills d (empty on entry).  0, or < 0 with err when the description cannot be had yet
         * (the server is not up): writer_app_run() then tries again later. */
        int (*describe)(void *userdata, struct writer_desc *d, char *err, size_t errlen);
        /* Between events, about every tick_ms; returns true when the writer must register again
         * (its description changed).  May be NULL. */
        bool (*tick)(void *userdata);
        /* Before exit: release whatever is still held.  May be NULL. */
        void (*shutdown)(void *userdata);
        unsigned tick_ms;               /* 0: 1000 */

        /* Filled by writer_app_parse(). */
        struct writer_app_settings s;

        /* Private to writer-app.c. */
        vss_writer *w;
        struct writer_desc desc;
        bool busy;                      /* a backup or restore sequence is under way */
};

/*
 * Parses argv and the config file.  Returns 0 to go on, or the exit status to
 * exit with: 0 after --help, 2 after a usage error (printed, with the usage).
 */
int writer_app_parse(struct writer_app *app, int argc, char **argv, int *ret_exit);

/* Registers, dispatches and ticks until SIGTERM/SIGINT (exit status 0), or
 * until the connection to vssd is lost with --no-reconnect (1). */
int writer_app_run(struct writer_app *app);

void writer_app_done(struct writer_app *app);

/*
 * Handler helpers.  writer_veto() logs "EVENT: message (0x800423F3
 * VSS_E_WRITERERROR_RETRYABLE)", sets the failure and its message on the
 * writer and returns false, so a handler can `return writer_veto(...)`.
 */
bool writer_veto(vss_writer *w, vss_hresult failure, const char *fmt, ...) _printf_(3, 4);
/* The event's time left minus a margin for the reply, never below 0 (INT64_MAX stays). */
int64_t writer_budget_ms(vss_writer *w, int64_t margin_ms);
/* The name of the event being handled ("Freeze"), for messages. */
const char *writer_event_name(vss_writer *w);

/* Parses a timeout in milliseconds (1..3600000). */
int writer_parse_ms(const char *text, uint32_t *ret);
/* "true/false/yes/no/1/0/on/off". */
int writer_parse_bool(const char *text, bool *ret);
