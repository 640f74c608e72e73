/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vssd.conf [cluster] keys (see cluster-config.h).  Values are checked as
 * they are read so that the error names the key; the endpoint list is parsed
 * by the etcd codec the client uses (one grammar), and the timing by cset (one
 * set of rules), so a config that loads here is one the cluster code accepts.  It
 * needs no libcurl: vssd's config parser (and its fuzz target) link it as it is.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "basic/macro.h"
#include "basic/string-util.h"
#include "cluster/cluster-config.h"
#include "cluster/etcd-codec.h"

void cluster_config_defaults(struct cluster_config *c)
{
        *c = (struct cluster_config){
                .host_lease_ttl_s = 10,
                .set_lease_ttl_s = 5,
                .call_timeout_ms = 1000,
                .set_keep_s = 86400,
        };
        snprintf(c->prefix, sizeof(c->prefix), "/openvss");
        cset_timing_default(&c->timing);
}

bool cluster_host_name_valid(const char *name)
{
        size_t n = name ? strlen(name) : 0;

        if (n == 0 || n >= CSET_HOST_MAX || name[0] == '.' || name[0] == '-' || name[n - 1] == '.')
                return false;
        for (size_t i = 0; i < n; i++) {
                char ch = name[i];

                if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                      ch == '-' || ch == '_' || ch == '.'))
                        return false;
                if (ch == '.' && name[i + 1] == '.')
                        return false;
        }
        return true;
}

static int bad(char *errbuf, size_t errlen, const char *key, const char *value, const char *what)
{
        fmt_trunc(errbuf, errlen, "bad value '%s' for %s in [cluster] (%s)", value, key, what);
        return -EINVAL;
}

int cluster_config_set(struct cluster_config *c, const char *key, const char *value, char *errbuf, size_t errlen)
{
        if (streq(key, "endpoints")) {
                char *list[ETCD_MAX_ENDPOINTS];
                size_t n;

                if (strlen(value) >= sizeof(c->endpoints) || etcd_endpoints_parse(value, list, &n) < 0)
                        return bad(errbuf, errlen, key, value,
                                   "comma-separated http:// or https:// etcd client URLs, at most 16");
                etcd_endpoints_free(list, n);
                snprintf(c->endpoints, sizeof(c->endpoints), "%s", value);
                c->enabled = true;
                return 0;
        }
        if (streq(key, "host")) {
                if (!cluster_host_name_valid(value))
                        return bad(errbuf, errlen, key, value, "1..63 characters of A-Z a-z 0-9 - _ and inner dots");
                snprintf(c->host, sizeof(c->host), "%s", value);
                return 0;
        }
        if (streq(key, "prefix")) {
                size_t n = strlen(value);

                if (n < 2 || n >= sizeof(c->prefix) || value[0] != '/' || value[n - 1] == '/' ||
                    strchr(value, ' '))
                        return bad(errbuf, errlen, key, value, "an absolute key prefix like /openvss, no trailing /");
                snprintf(c->prefix, sizeof(c->prefix), "%s", value);
                return 0;
        }
        if (streq(key, "host_lease_ttl_s"))
                return parse_u32(value, 2, 3600, &c->host_lease_ttl_s) < 0
                               ? bad(errbuf, errlen, key, value, "seconds, 2..3600")
                               : 0;
        if (streq(key, "set_lease_ttl_s"))
                return parse_u32(value, 2, 3600, &c->set_lease_ttl_s) < 0
                               ? bad(errbuf, errlen, key, value, "seconds, 2..3600")
                               : 0;
        if (streq(key, "call_timeout_ms"))
                return parse_u32(value, 50, 60000, &c->call_timeout_ms) < 0
                               ? bad(errbuf, errlen, key, value, "milliseconds, 50..60000")
                               : 0;
        if (streq(key, "set_keep_s"))
                return parse_u32(value, 0, 31536000, &c->set_keep_s) < 0
                               ? bad(errbuf, errlen, key, value, "seconds, 0..31536000")
                               : 0;
        if (streq(key, "hold_ms")) {
                uint32_t hold;

                if (parse_u32(value, 100, 3600000, &hold) < 0)
                        return bad(errbuf, errlen, key, value, "milliseconds, 100..3600000");
                cset_timing_set_hold(&c->timing, hold);
                return 0;
        }
        if (streq(key, "prepare_ms"))
                return parse_u32(value, 1, 3600000, &c->timing.prepare_ms) < 0
                               ? bad(errbuf, errlen, key, value, "milliseconds, 1..3600000")
                               : 0;
        fmt_trunc(errbuf, errlen, "unknown key '%s' in [cluster]", key);
        return -EINVAL;
}

int cluster_config_finish(struct cluster_config *c, bool section_seen, char *errbuf, size_t errlen)
{
        if (!section_seen)
                return 0;
        if (!c->enabled) {
                fmt_trunc(errbuf, errlen, "[cluster] needs endpoints= (the etcd client URLs)");
                return -EINVAL;
        }
        if (!c->host[0]) {
                char name[256] = "";

                if (gethostname(name, sizeof(name) - 1) < 0 || !name[0]) {
                        fmt_trunc(errbuf, errlen, "[cluster] host= not given and the hostname is unknown");
                        return -EINVAL;
                }
                name[strcspn(name, ".")] = '\0';        /* the short name, as in HOST:VOLUME */
                if (!cluster_host_name_valid(name)) {
                        fmt_trunc(errbuf, errlen, "[cluster] host= not given and the hostname '%s' is not a valid "
                                  "host name; set host=", name);
                        return -EINVAL;
                }
                snprintf(c->host, sizeof(c->host), "%s", name);
        }
        if (cset_timing_check(&c->timing) < 0) {
                fmt_trunc(errbuf, errlen, "[cluster] hold_ms=%u prepare_ms=%u cannot work together",
                          c->timing.hold_ms, c->timing.prepare_ms);
                return -EINVAL;
        }
        /* A set lease longer than the hold window is allowed (hosts thaw on their own deadline
         * first), but a host record lease shorter than three keepalives is not kept reliably. */
        if ((uint64_t)c->call_timeout_ms * 3 > (uint64_t)c->host_lease_ttl_s * 1000) {
                fmt_trunc(errbuf, errlen, "[cluster] call_timeout_ms=%u must fit three times into host_lease_ttl_s=%u",
                          c->call_timeout_ms, c->host_lease_ttl_s);
                return -EINVAL;
        }
        return 0;
}
