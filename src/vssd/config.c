/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vssd.conf parsing.  inih calls back per key; we validate each value as it
 * comes so the error names the line and key, and we refuse unknown sections
 * and keys: a typo in a timeout must not silently fall back to a default.
 */

#include <errno.h>
#include <grp.h>
#include <ini.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/macro.h"
#include "basic/string-util.h"
#include "vssd/config.h"

struct parse_state {
        struct vssd_config *cfg;
        char *errbuf;
        size_t errlen;
        int lineno;
        bool failed;
        bool cluster_seen;
};

void config_defaults(struct vssd_config *c)
{
        *c = (struct vssd_config){
                .freeze_timeout_ms = 60000,
                .event_timeout_ms = 120000,
                .allowed_uid = 0,
                .max_connections = 1024,
                .max_connections_per_uid = 64,
                .min_diff_area_mb = 320,
                .server_deadline_ms = 5000,
        };
        cluster_config_defaults(&c->cluster);
}

int config_parse_ms(const char *s, uint32_t *ret)
{
        return parse_u32(s, 1, 3600000, ret);
}

/* A group name as groupadd accepts it (and nothing a log line or message could be
 * confused by): [A-Za-z0-9_.-], not starting with '-', optionally ending in '$'. */
static bool group_name_valid(const char *s)
{
        size_t n = strlen(s);

        if (n == 0 || n >= VSSD_GROUP_NAME_MAX || s[0] == '-')
                return false;
        for (size_t i = 0; i < n; i++) {
                char ch = s[i];
                if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                      ch == '_' || ch == '.' || ch == '-' || (ch == '$' && i == n - 1)))
                        return false;
        }
        return true;
}

static int handler(void *user, const char *section, const char *name, const char *value
#if INI_HANDLER_LINENO
                   , int lineno
#endif
)
{
        struct parse_state *p = user;
        uint32_t x;
        int r;

        if (streq(section, "cluster")) {
                char why[256];

                p->cluster_seen = true;
                if (cluster_config_set(&p->cfg->cluster, name, value, why, sizeof(why)) < 0) {
                        snprintf(p->errbuf, p->errlen, "[cluster] %s", why);
                        p->failed = true;
                        return 0;
                }
                return 1;
        }
        if (streq(section, "storage") && streq(name, "min_diff_area_mb")) {
                if (parse_u32(value, 1, 1024 * 1024, &p->cfg->min_diff_area_mb) < 0) {
                        snprintf(p->errbuf, p->errlen, "bad value '%s' for min_diff_area_mb (MB, 1..1048576)", value);
                        p->failed = true;
                        return 0;
                }
                return 1;
        }
        if (streq(section, "cow") && streq(name, "volsrv_path")) {
                if (value[0] != '/' || strlen(value) >= sizeof(p->cfg->volsrv_path)) {
                        snprintf(p->errbuf, p->errlen, "volsrv_path must be an absolute path");
                        p->failed = true;
                        return 0;
                }
                snprintf(p->cfg->volsrv_path, sizeof(p->cfg->volsrv_path), "%s", value);
                return 1;
        }
        if (streq(section, "cow") && streq(name, "server_deadline_ms")) {
                /* Below the holder's 30 s: past that it aborts the connection first. */
                if (parse_u32(value, 1000, 20000, &p->cfg->server_deadline_ms) < 0) {
                        snprintf(p->errbuf, p->errlen, "bad value '%s' for server_deadline_ms (ms, 1000..20000)",
                                 value);
                        p->failed = true;
                        return 0;
                }
                return 1;
        }
        if ((streq(section, "storage") || streq(section, "cow"))) {
                snprintf(p->errbuf, p->errlen, "unknown key '%s' in [%s]", name, section);
                p->failed = true;
                return 0;
        }
        if (!streq(section, "service")) {
                snprintf(p->errbuf, p->errlen, "unknown section [%s]", section);
                p->failed = true;
                return 0;
        }
        if (streq(name, "freeze_timeout_ms"))
                r = config_parse_ms(value, &p->cfg->freeze_timeout_ms);
        else if (streq(name, "event_timeout_ms"))
                r = config_parse_ms(value, &p->cfg->event_timeout_ms);
        else if (streq(name, "allowed_uid")) {
                r = parse_u32(value, 0, UINT32_MAX - 1, &x);
                if (r >= 0)
                        p->cfg->allowed_uid = (uid_t)x;
        } else if (streq(name, "admin_group") || streq(name, "writer_group")) {
                struct vssd_group *g = streq(name, "admin_group") ? &p->cfg->admin_group : &p->cfg->writer_group;

                if (!group_name_valid(value)) {
                        snprintf(p->errbuf, p->errlen, "bad value '%s' for %s (a group name: letters, digits, "
                                 "'_', '.', '-', at most %d bytes)", value, name, VSSD_GROUP_NAME_MAX - 1);
                        p->failed = true;
                        return 0;
                }
                *g = (struct vssd_group){ 0 };
                memcpy(g->name, value, strlen(value) + 1);
                r = 0;
        } else if (streq(name, "max_connections"))
                r = parse_u32(value, 1, 65536, &p->cfg->max_connections);
        else if (streq(name, "max_connections_per_uid"))
                r = parse_u32(value, 1, 65536, &p->cfg->max_connections_per_uid);
        else {
                snprintf(p->errbuf, p->errlen, "unknown key '%s' in [service]", name);
                p->failed = true;
                return 0;
        }
        if (r < 0) {
                snprintf(p->errbuf, p->errlen, "bad value '%s' for %s%s", value, name,
                         strstr(name, "_ms") ? " (milliseconds, 1..3600000)" : "");
                p->failed = true;
                return 0;
        }
        return 1;
}

static int finish(int r, struct parse_state *p, const char *where)
{
        char tmp[256];

        if (r == 0 && !p->failed) {
                if (cluster_config_finish(&p->cfg->cluster, p->cluster_seen, tmp, sizeof(tmp)) < 0) {
                        snprintf(p->errbuf, p->errlen, "%s: [cluster] %s", where, tmp);
                        return -EINVAL;
                }
                return 0;
        }
        if (r > 0) {
                snprintf(tmp, sizeof(tmp), "%s", p->failed ? p->errbuf : "syntax error");
                snprintf(p->errbuf, p->errlen, "%s line %d: %s", where, r, tmp);
        } else if (r == -1)
                snprintf(p->errbuf, p->errlen, "%s: cannot open", where);
        else if (r == -2)
                snprintf(p->errbuf, p->errlen, "%s: out of memory", where);
        return -EINVAL;
}

int config_parse_string(const char *text, struct vssd_config *c, char *errbuf, size_t errlen)
{
        struct vssd_config tmp = *c;
        struct parse_state p = { .cfg = &tmp, .errbuf = errbuf, .errlen = errlen };
        int r;

        r = finish(ini_parse_string(text, handler, &p), &p, "config");
        if (r < 0)
                return r;
        *c = tmp;
        return 0;
}

static int resolve_group(struct vssd_group *g, const char *key, char *errbuf, size_t errlen)
{
        struct group grp, *res = NULL;
        char buf[16384];
        int r;

        g->resolved = false;
        if (!g->name[0])
                return 0;
        r = getgrnam_r(g->name, &grp, buf, sizeof(buf), &res);
        if (r != 0) {
                snprintf(errbuf, errlen, "%s=%s: cannot look the group up: %s", key, g->name, strerror(r));
                return -r;
        }
        if (!res) {
                snprintf(errbuf, errlen, "%s=%s: unknown group (create it with 'addgroup --system %s' or "
                         "'groupadd --system %s', or remove the key)", key, g->name, g->name, g->name);
                return -ENOENT;
        }
        g->gid = res->gr_gid;
        g->resolved = true;
        return 0;
}

int config_resolve_groups(struct vssd_config *c, char *errbuf, size_t errlen)
{
        int r;

        r = resolve_group(&c->admin_group, "admin_group", errbuf, errlen);
        if (r < 0)
                return r;
        return resolve_group(&c->writer_group, "writer_group", errbuf, errlen);
}

int config_load(const char *path, struct vssd_config *c, char *errbuf, size_t errlen)
{
        struct vssd_config tmp = *c;
        struct parse_state p = { .cfg = &tmp, .errbuf = errbuf, .errlen = errlen };
        FILE *f;
        int r;

        f = fopen(path, "re");
        if (!f) {
                if (errno == ENOENT)
                        return 0;
                r = -errno;
                snprintf(errbuf, errlen, "%s: %s", path, strerror(errno));
                return r;
        }
        r = finish(ini_parse_file(f, handler, &p), &p, path);
        fclose(f);
        if (r < 0)
                return r;
        /* An unknown group is a configuration error, found now rather than at the
         * first refused caller. */
        r = config_resolve_groups(&tmp, p.errbuf, p.errlen);
        if (r < 0) {
                char tmpmsg[512];
                snprintf(tmpmsg, sizeof(tmpmsg), "%s", errbuf);
                snprintf(errbuf, errlen, "%s: %s", path, tmpmsg);
                return r;
        }
        *c = tmp;
        return 0;
}
