/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * vsswriter's writer definitions, from the command line or from INI files
 * (one [writer] section per writer; see docs/vsswriter.md).
 */

#include <stdbool.h>
#include <stdint.h>

#include "vss/vss.h"

struct writer_conf {
        char *name;
        bool has_id;
        vss_id id;
        char **volumes;                 /* NULL-terminated */
        size_t n_volumes;
        uint32_t freeze_timeout_ms;     /* 0: the daemon's default */
        char *hooks[_VSS_EVENT_MAX];    /* NULL: the event succeeds */
        char **components;              /* names of filegroup components over every volume */
        size_t n_components;
        bool has_restore_method;        /* any restore_* key given */
        enum vss_restore_method_type restore_method;
        char *restore_service;
        char *restore_user_procedure;
        enum vss_writer_restore_type writer_restore;
        bool reboot_required;
        bool no_reconnect;
        char *origin;                   /* "file:line" or "command line", for messages */
};

#define WRITER_CONF_MAX_COMPONENTS 64

struct writer_conf *writer_conf_new(const char *origin);
void writer_conf_free(struct writer_conf *c);
/* Sets one key (INI name, e.g. "on_freeze", "volume", "freeze_timeout_ms", "component",
 * "restore_method", "no_reconnect").
 * Returns 0, or -EINVAL with a reason in err. */
int writer_conf_set(struct writer_conf *c, const char *key, const char *value, char *err, size_t errlen);
/* Checks the writer is complete (name given). */
int writer_conf_check(const struct writer_conf *c, char *err, size_t errlen);

/* "on_freeze" -> VSS_EVENT_FREEZE; -1 for other keys. */
int hook_key_to_event(const char *key);

struct writer_list {
        struct writer_conf **items;
        size_t n;
};

void writer_list_done(struct writer_list *l);
int writer_list_add(struct writer_list *l, struct writer_conf *c);

/* Parses INI text (the contents of 'origin') into writers. Returns 0 or -EINVAL with err set. */
int config_parse_string(const char *text, const char *origin, struct writer_list *l, char *err, size_t errlen);
/* A file, or every *.conf in a directory (sorted). Returns 0 or -errno/-EINVAL with err set. */
int config_load(const char *path, struct writer_list *l, char *err, size_t errlen);
