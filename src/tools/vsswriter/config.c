/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Writer definitions for vsswriter.
 *
 * The command line and the INI files fill the same struct writer_conf through
 * writer_conf_set(), so a flag and a config key can never mean different
 * things.  inih reports every [writer] section under the same name and does
 * not tell where one ends (Debian builds it without
 * INI_CALL_HANDLER_ON_NEW_SECTION), so the text is cut at section headers
 * first and each piece is parsed on its own, with line numbers shifted back
 * to the file's.
 */

#include <dirent.h>
#include <ini.h>
#include <stdio.h>

#include "basic/macro.h"
#include "config.h"

static const char *const hook_keys[_VSS_EVENT_MAX] = {
        [VSS_EVENT_IDENTIFY] = "on_identify",
        [VSS_EVENT_PREPARE_BACKUP] = "on_prepare_backup",
        [VSS_EVENT_PREPARE_SNAPSHOT] = "on_prepare_snapshot",
        [VSS_EVENT_FREEZE] = "on_freeze",
        [VSS_EVENT_THAW] = "on_thaw",
        [VSS_EVENT_POST_SNAPSHOT] = "on_post_snapshot",
        [VSS_EVENT_BACKUP_COMPLETE] = "on_backup_complete",
        [VSS_EVENT_ABORT] = "on_abort",
        [VSS_EVENT_BACKUP_SHUTDOWN] = "on_backup_shutdown",
        [VSS_EVENT_PRE_RESTORE] = "on_pre_restore",
        [VSS_EVENT_POST_RESTORE] = "on_post_restore",
};

int hook_key_to_event(const char *key)
{
        for (int i = 0; i < _VSS_EVENT_MAX; i++)
                if (streq(key, hook_keys[i]))
                        return i;
        return -1;
}

struct writer_conf *writer_conf_new(const char *origin)
{
        struct writer_conf *c = calloc(1, sizeof(*c));

        if (!c)
                return NULL;
        c->volumes = calloc(1, sizeof(char *));
        c->origin = strdup(origin ? origin : "");
        if (!c->volumes || !c->origin) {
                writer_conf_free(c);
                return NULL;
        }
        return c;
}

void writer_conf_free(struct writer_conf *c)
{
        if (!c)
                return;
        free(c->name);
        for (size_t i = 0; c->volumes && i < c->n_volumes; i++)
                free(c->volumes[i]);
        free(c->volumes);
        for (int i = 0; i < _VSS_EVENT_MAX; i++)
                free(c->hooks[i]);
        for (size_t i = 0; i < c->n_components; i++)
                free(c->components[i]);
        free(c->components);
        free(c->restore_service);
        free(c->restore_user_procedure);
        free(c->origin);
        free(c);
}

static int replace_str(char **p, const char *v)
{
        char *n = strdup(v);

        if (!n)
                return -ENOMEM;
        free(*p);
        *p = n;
        return 0;
}

int writer_conf_set(struct writer_conf *c, const char *key, const char *value, char *err, size_t errlen)
{
        int e;

        if (!value)
                value = "";
        if (streq(key, "name")) {
                if (!*value || strlen(value) > 255) {
                        snprintf(err, errlen, "name must be 1..255 bytes");
                        return -EINVAL;
                }
                return replace_str(&c->name, value);
        }
        if (streq(key, "id")) {
                if (VSS_FAILED(vss_id_parse(value, &c->id))) {
                        snprintf(err, errlen, "id '%s' is not a GUID (0x%08X VSS_E_INVALIDARG)", value,
                                 (uint32_t)VSS_E_INVALIDARG);
                        return -EINVAL;
                }
                c->has_id = true;
                return 0;
        }
        if (streq(key, "volume")) {
                char **v;

                if (!*value) {
                        snprintf(err, errlen, "volume must not be empty");
                        return -EINVAL;
                }
                if (c->n_volumes >= VSS_MAX_VOLUMES_PER_SET) {
                        snprintf(err, errlen, "more than %d volumes", VSS_MAX_VOLUMES_PER_SET);
                        return -EINVAL;
                }
                v = realloc(c->volumes, (c->n_volumes + 2) * sizeof(char *));
                if (!v)
                        return -ENOMEM;
                c->volumes = v;
                v[c->n_volumes] = strdup(value);
                if (!v[c->n_volumes])
                        return -ENOMEM;
                v[++c->n_volumes] = NULL;
                return 0;
        }
        if (streq(key, "freeze_timeout_ms")) {
                char *end;
                unsigned long ms;

                errno = 0;
                ms = strtoul(value, &end, 10);
                if (!*value || *end || errno || ms < 1 || ms > 3600000 || value[0] == '-') {
                        snprintf(err, errlen, "freeze timeout '%s' must be 1..3600000 ms", value);
                        return -EINVAL;
                }
                c->freeze_timeout_ms = (uint32_t)ms;
                return 0;
        }
        if (streq(key, "component")) {
                char **v;

                if (!*value || strlen(value) > 1024) {
                        snprintf(err, errlen, "component name must be 1..1024 bytes");
                        return -EINVAL;
                }
                for (size_t i = 0; i < c->n_components; i++)
                        if (streq(c->components[i], value)) {
                                snprintf(err, errlen, "component '%s' given twice", value);
                                return -EINVAL;
                        }
                if (c->n_components >= WRITER_CONF_MAX_COMPONENTS) {
                        snprintf(err, errlen, "more than %d components", WRITER_CONF_MAX_COMPONENTS);
                        return -EINVAL;
                }
                v = realloc(c->components, (c->n_components + 1) * sizeof(char *));
                if (!v)
                        return -ENOMEM;
                c->components = v;
                v[c->n_components] = strdup(value);
                if (!v[c->n_components])
                        return -ENOMEM;
                c->n_components++;
                return 0;
        }
        if (streq(key, "restore_method")) {
                e = vss_restore_method_from_name(value);
                if (e < 0) {
                        snprintf(err, errlen, "restore method '%s' must be one of restore_if_not_there, "
                                 "restore_if_can_replace, stop_restore_start, restore_to_alternate_location, "
                                 "restore_at_reboot, restore_at_reboot_if_cannot_replace, custom, restore_stop_start "
                                 "(0x%08X VSS_E_INVALIDARG)", value, (uint32_t)VSS_E_INVALIDARG);
                        return -EINVAL;
                }
                c->restore_method = (enum vss_restore_method_type)e;
                c->has_restore_method = true;
                return 0;
        }
        if (streq(key, "writer_restore")) {
                e = vss_writer_restore_from_name(value);
                if (e < 0) {
                        snprintf(err, errlen, "writer restore '%s' must be never, if_replace_fails or always "
                                 "(0x%08X VSS_E_INVALIDARG)", value, (uint32_t)VSS_E_INVALIDARG);
                        return -EINVAL;
                }
                c->writer_restore = (enum vss_writer_restore_type)e;
                c->has_restore_method = true;
                return 0;
        }
        if (streq(key, "restore_service") || streq(key, "restore_user_procedure")) {
                size_t max = streq(key, "restore_service") ? 255 : 4096;

                if (!*value || strlen(value) > max) {
                        snprintf(err, errlen, "%s must be 1..%zu bytes", key, max);
                        return -EINVAL;
                }
                c->has_restore_method = true;
                return replace_str(streq(key, "restore_service") ? &c->restore_service : &c->restore_user_procedure,
                                   value);
        }
        if (streq(key, "reboot_required") || streq(key, "no_reconnect")) {
                bool b;

                if (streq(value, "yes") || streq(value, "true") || streq(value, "1"))
                        b = true;
                else if (streq(value, "no") || streq(value, "false") || streq(value, "0"))
                        b = false;
                else {
                        snprintf(err, errlen, "%s '%s' must be yes|no|true|false|1|0", key, value);
                        return -EINVAL;
                }
                if (streq(key, "no_reconnect"))
                        c->no_reconnect = b;
                else {
                        c->reboot_required = b;
                        c->has_restore_method = true;
                }
                return 0;
        }
        e = hook_key_to_event(key);
        if (e >= 0) {
                if (!*value) {
                        snprintf(err, errlen, "%s must not be empty", key);
                        return -EINVAL;
                }
                return replace_str(&c->hooks[e], value);
        }
        snprintf(err, errlen, "unknown key '%s'", key);
        return -EINVAL;
}

int writer_conf_check(const struct writer_conf *c, char *err, size_t errlen)
{
        if (!c->name) {
                snprintf(err, errlen, "%s: a writer needs a name", c->origin);
                return -EINVAL;
        }
        return 0;
}

void writer_list_done(struct writer_list *l)
{
        for (size_t i = 0; i < l->n; i++)
                writer_conf_free(l->items[i]);
        free(l->items);
        *l = (struct writer_list){ 0 };
}

int writer_list_add(struct writer_list *l, struct writer_conf *c)
{
        struct writer_conf **p = realloc(l->items, (l->n + 1) * sizeof(*p));

        if (!p)
                return -ENOMEM;
        l->items = p;
        l->items[l->n++] = c;
        return 0;
}

struct parse_ctx {
        struct writer_conf *conf;
        char *err;
        size_t errlen;
        bool failed;
};

static int on_ini_key(void *user, const char *section, const char *name, const char *value)
{
        struct parse_ctx *p = user;

        if (p->failed)
                return 0;
        if (!streq(section, "writer")) {
                snprintf(p->err, p->errlen, "unknown section [%s] (only [writer] sections are allowed)", section);
                p->failed = true;
                return 0;
        }
        if (writer_conf_set(p->conf, name, value, p->err, p->errlen) < 0) {
                p->failed = true;
                return 0;
        }
        return 1;
}

static bool line_is_section(const char *line)
{
        while (*line == ' ' || *line == '\t')
                line++;
        return *line == '[';
}

static bool line_is_blank(const char *line, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                if (line[i] == ';' || line[i] == '#')
                        return true;
                if (!strchr(" \t\r", line[i]))
                        return false;
        }
        return true;
}

/* Parses one piece that starts at file line 'first_line'. */
static int parse_chunk(const char *text, size_t len, unsigned first_line, const char *origin, bool has_section,
                       struct writer_list *l, char *err, size_t errlen)
{
        _cleanup_free_ char *copy = strndup(text, len);
        char where[512], reason[512] = "";
        struct parse_ctx p = { .err = reason, .errlen = sizeof(reason) };
        int r;

        if (!copy)
                return -ENOMEM;
        if (!has_section) {
                /* Text before the first section: only blank lines and comments. */
                for (const char *s = copy; *s;) {
                        size_t n = strcspn(s, "\n");
                        if (!line_is_blank(s, n)) {
                                snprintf(err, errlen, "%s:%u: key outside a [writer] section", origin,
                                         first_line);
                                return -EINVAL;
                        }
                        first_line++;
                        s += n + (s[n] == '\n');
                }
                return 0;
        }
        snprintf(where, sizeof(where), "%s:%u", origin, first_line);
        p.conf = writer_conf_new(where);
        if (!p.conf)
                return -ENOMEM;
        r = ini_parse_string(copy, on_ini_key, &p);
        if (r != 0) {
                if (r > 0)
                        snprintf(err, errlen, "%s:%u: %s", origin, first_line + (unsigned)r - 1,
                                 reason[0] ? reason :
                                             "syntax error (or a line longer than 199 bytes: put long "
                                             "commands in a script)");
                else
                        snprintf(err, errlen, "%s: cannot parse (out of memory)", origin);
                writer_conf_free(p.conf);
                return -EINVAL;
        }
        r = writer_conf_check(p.conf, err, errlen);
        if (r < 0 || (r = writer_list_add(l, p.conf)) < 0) {
                writer_conf_free(p.conf);
                return r;
        }
        return 0;
}

int config_parse_string(const char *text, const char *origin, struct writer_list *l, char *err, size_t errlen)
{
        const char *chunk = text, *s = text;
        unsigned line = 1, chunk_line = 1;
        bool in_section = false;
        int r;

        for (;;) {
                bool at_end = !*s;

                if (at_end || (line_is_section(s) && s != chunk)) {
                        r = parse_chunk(chunk, (size_t)(s - chunk), chunk_line, origin, in_section, l, err,
                                        errlen);
                        if (r < 0)
                                return r;
                        chunk = s;
                        chunk_line = line;
                }
                if (at_end)
                        return 0;
                if (line_is_section(s))
                        in_section = true;
                s += strcspn(s, "\n");
                if (*s == '\n')
                        s++;
                line++;
        }
}

static int load_file(const char *path, struct writer_list *l, char *err, size_t errlen)
{
        _cleanup_free_ char *text = NULL;
        size_t cap = 0, len = 0;
        FILE *f;

        f = fopen(path, "re");
        if (!f) {
                int r = -errno;
                snprintf(err, errlen, "%s: %s", path, strerror(errno));
                return r;
        }
        for (;;) {
                if (len + 4096 + 1 > cap) {
                        char *n = realloc(text, cap = cap ? cap * 2 : 8192);
                        if (!n) {
                                fclose(f);
                                return -ENOMEM;
                        }
                        text = n;
                }
                size_t k = fread(text + len, 1, cap - len - 1, f);
                len += k;
                if (k == 0)
                        break;
                if (len > 1024 * 1024) {
                        fclose(f);
                        snprintf(err, errlen, "%s: larger than 1 MiB", path);
                        return -EFBIG;
                }
        }
        fclose(f);
        text[len] = 0;
        if (strlen(text) != len) {
                snprintf(err, errlen, "%s: contains NUL bytes", path);
                return -EINVAL;
        }
        return config_parse_string(text, path, l, err, errlen);
}

static int conf_filter(const struct dirent *d)
{
        size_t n = strlen(d->d_name);
        return d->d_name[0] != '.' && n > 5 && streq(d->d_name + n - 5, ".conf");
}

int config_load(const char *path, struct writer_list *l, char *err, size_t errlen)
{
        struct dirent **names = NULL;
        int n, r = 0;

        n = scandir(path, &names, conf_filter, alphasort);
        if (n < 0) {
                if (errno == ENOTDIR)
                        return load_file(path, l, err, errlen);
                r = -errno;
                snprintf(err, errlen, "%s: %s", path, strerror(errno));
                return r;
        }
        for (int i = 0; i < n; i++) {
                _cleanup_free_ char *p = NULL;

                if (r >= 0) {
                        if (asprintf(&p, "%s/%s", path, names[i]->d_name) < 0) {
                                p = NULL;
                                r = -ENOMEM;
                        } else
                                r = load_file(p, l, err, errlen);
                }
                free(names[i]);
        }
        free(names);
        return r;
}
