/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* vssd.conf: [service], [storage], [cow] and [cluster], parsed with inih.  Pure: no logging.
 * Group names are resolved to gids by config_resolve_groups() (config_load calls it):
 * parsing alone never consults the user database. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cluster/cluster-config.h"

#define VSSD_GROUP_NAME_MAX 64

/* One of [service] admin_group= / writer_group=: empty name = not configured. */
struct vssd_group {
        char name[VSSD_GROUP_NAME_MAX];
        gid_t gid;                      /* valid once config_resolve_groups() succeeded */
        bool resolved;
};

struct vssd_config {
        uint32_t freeze_timeout_ms;
        uint32_t event_timeout_ms;
        uid_t allowed_uid;              /* legacy: one uid with every privilege, 0 = none */
        struct vssd_group admin_group;  /* may create/delete/expose/revert shadows, back up, manage storage */
        struct vssd_group writer_group; /* may register writers */
        uint32_t max_connections;
        uint32_t max_connections_per_uid; /* for every uid but root */
        uint32_t min_diff_area_mb;      /* [storage]: smallest diff area maximum accepted */
        char volsrv_path[512];          /* [cow]: vss-volsrv binary, "" = next to vssd */
        uint32_t server_deadline_ms;    /* [cow]: a volume server silent this long is replaced */
        struct cluster_config cluster;  /* [cluster]: .enabled false without the section */
};

void config_defaults(struct vssd_config *c);
/* Missing file: defaults, returns 0.  Bad file: -EINVAL (or -errno) with the
 * reason in errbuf. */
int config_load(const char *path, struct vssd_config *c, char *errbuf, size_t errlen);
/* Parses a config text held in memory (for tests). */
int config_parse_string(const char *text, struct vssd_config *c, char *errbuf, size_t errlen);
/* Looks the configured group names up (getgrnam_r): -ENOENT with "unknown group ..." in
 * errbuf for a group that does not exist, -errno for a failed lookup. */
int config_resolve_groups(struct vssd_config *c, char *errbuf, size_t errlen);
/* Parses a millisecond value in 1..3600000; returns -EINVAL otherwise. */
int config_parse_ms(const char *s, uint32_t *ret);
