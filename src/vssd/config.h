/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* vssd.conf: [service], [storage], [cow] and [cluster], parsed with inih.  Pure: no logging. */

#include <stdint.h>
#include <sys/types.h>

#include "cluster/cluster-config.h"

struct vssd_config {
        uint32_t freeze_timeout_ms;
        uint32_t event_timeout_ms;
        uid_t allowed_uid;
        uint32_t max_connections;
        uint32_t min_diff_area_mb;      /* [storage]: smallest diff area maximum accepted */
        char volsrv_path[512];          /* [cow]: vss-volsrv binary, "" = next to vssd */
        struct cluster_config cluster;  /* [cluster]: .enabled false without the section */
};

void config_defaults(struct vssd_config *c);
/* Missing file: defaults, returns 0.  Bad file: -EINVAL (or -errno) with the
 * reason in errbuf. */
int config_load(const char *path, struct vssd_config *c, char *errbuf, size_t errlen);
/* Parses a config text held in memory (for tests). */
int config_parse_string(const char *text, struct vssd_config *c, char *errbuf, size_t errlen);
/* Parses a millisecond value in 1..3600000; returns -EINVAL otherwise. */
int config_parse_ms(const char *s, uint32_t *ret);
