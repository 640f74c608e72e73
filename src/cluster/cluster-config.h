/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * vssd.conf [cluster]: the keys vssd's config parser hands over, one by one,
 * as inih reads them (config.c calls cluster_config_set() for every key of the
 * [cluster] section, then cluster_config_finish() once the file is read).
 * Pure: no logging; errors name the key and the accepted form.
 *
 *   [cluster]
 *   endpoints=http://10.0.0.1:2379,http://10.0.0.2:2379   etcd client URLs (required)
 *   host=db1                 this host's name (default: the hostname, up to the first dot)
 *   prefix=/openvss          key prefix of this cluster in etcd
 *   host_lease_ttl_s=10      TTL of the host record's lease (kept alive every TTL/3)
 *   set_lease_ttl_s=5        TTL of a coordinator's set lease
 *   hold_ms=10000            the hold window: Freeze seen .. thawed, on every host
 *   prepare_ms=60000         set seen .. Freeze seen
 *   call_timeout_ms=1000     deadline of one etcd call (split among the endpoints)
 *   set_keep_s=86400         how long the keys of a finished set stay in etcd
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/cset.h"

#define CLUSTER_ENDPOINTS_MAX 4096
#define CLUSTER_PREFIX_MAX 128

struct cluster_config {
        bool enabled;                           /* a [cluster] section with endpoints was read */
        char endpoints[CLUSTER_ENDPOINTS_MAX];
        char host[CSET_HOST_MAX];
        char prefix[CLUSTER_PREFIX_MAX];
        uint32_t host_lease_ttl_s;
        uint32_t set_lease_ttl_s;
        uint32_t call_timeout_ms;
        uint32_t set_keep_s;
        struct cset_timing timing;
};

void cluster_config_defaults(struct cluster_config *c);
/* One key of [cluster].  0, or -EINVAL with the reason in errbuf. */
int cluster_config_set(struct cluster_config *c, const char *key, const char *value, char *errbuf, size_t errlen);
/* After the file: the host name defaults to the hostname; the timing must be coherent; a
 * [cluster] section without endpoints is an error.  'section_seen': the file had [cluster]. */
int cluster_config_finish(struct cluster_config *c, bool section_seen, char *errbuf, size_t errlen);
/* A valid host name: 1..63 bytes of [A-Za-z0-9_-] and inner dots, since it is part of etcd
 * keys and of vshadow's HOST:VOLUME syntax. */
bool cluster_host_name_valid(const char *name);
