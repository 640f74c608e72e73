/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A small etcd v3 client over the JSON gateway (HTTP/1.1 POSTs to /v3/...),
 * for vssd's cluster mode.  libcurl moves the bytes, etcd-codec.c encodes
 * and parses them.
 *
 * Deadlines.  Every call takes an absolute deadline on the monotonic clock
 * (clock_monotonic_us() + budget) and returns by then, whatever the network
 * does: the budget is split among the endpoints not yet tried, so a member
 * that accepts a connection and never answers (a host cut off, a member that
 * lost its quorum) costs one share and the next member gets the rest.
 *
 * Failover.  The client talks to the member that answered last and moves on
 * when it fails: connection refused or reset, no answer in its share of the
 * time, or an etcd error that says the member cannot serve now ("no leader",
 * "leader changed", "request timed out": gRPC Unavailable).  A full round of
 * failures is followed by a short pause and another round, until the
 * deadline.  Because a request that timed out may still have been applied,
 * a write can be applied twice: callers make writes idempotent (the cluster
 * protocol only ever writes through guarded transactions whose failure
 * branch reads the key back, see docs/cluster.md).
 *
 * Errors are negative errno values; etcd_client_error() says what happened,
 * naming every endpoint tried:
 *   -ETIMEDOUT     the deadline passed (the outcome of a write is unknown)
 *   -ENOLINK       the members that answered have no leader: etcd lost its quorum
 *   -ECONNREFUSED  no endpoint could be reached at all
 *   -ENOENT        the lease does not exist (expired or revoked)
 *   -EINVAL        etcd refused the request as malformed (or bad arguments)
 *   -EACCES        authentication or permission refused
 *   -ENOSPC        etcd's database is full (NOSPACE alarm)
 *   -EBADMSG       a reply that is not what the gateway sends
 *   -EPROTO        an HTTP reply that does not come from an etcd gateway
 *   -EIO           any other etcd error
 *   -ENOMEM
 *
 * A client is not thread-safe: one per thread.  A watch copies what it needs
 * from its client and may be driven from another thread.  The library never
 * logs.
 */

#include <stdbool.h>
#include <stdint.h>

#include "basic/macro.h"
#include "cluster/etcd-codec.h"

struct etcd_client;

/*
 * 'endpoints': comma-separated client URLs, "http://10.0.0.1:2379,http://...".
 * Only http and https are accepted; a trailing slash is dropped.  Nothing is
 * contacted here.  -EINVAL for a malformed list.
 */
int etcd_client_new(const char *endpoints, struct etcd_client **ret);
struct etcd_client *etcd_client_free(struct etcd_client *c);
DEFINE_FREE_FUNC(struct etcd_client, etcd_client_free);

/* What the last failed call found, one line ("" after a success). */
const char *etcd_client_error(const struct etcd_client *c);
size_t etcd_client_n_endpoints(const struct etcd_client *c);
const char *etcd_client_endpoint(const struct etcd_client *c, size_t i);
/* The endpoint the next call tries first (the one that answered last). */
size_t etcd_client_current(const struct etcd_client *c);

/* Reads 'key' (or every key under it with prefix) at the current revision. */
int etcd_get(struct etcd_client *c, const char *key, bool prefix, uint64_t deadline_us,
             struct etcd_range_result *ret);
/* lease 0: none.  ret_revision (may be NULL): the revision of the write. */
int etcd_put(struct etcd_client *c, const char *key, const void *value, size_t len, int64_t lease,
             uint64_t deadline_us, int64_t *ret_revision);
int etcd_delete(struct etcd_client *c, const char *key, bool prefix, uint64_t deadline_us, int64_t *ret_deleted);
int etcd_txn_commit(struct etcd_client *c, const struct etcd_txn *t, uint64_t deadline_us,
                    struct etcd_txn_result *ret);

/* A lease of ttl_s seconds (etcd may raise it to its minimum). */
int etcd_lease_grant(struct etcd_client *c, int64_t ttl_s, uint64_t deadline_us, int64_t *ret_id,
                     int64_t *ret_ttl);
/* One keepalive: ret_ttl is the renewed TTL.  -ENOENT when the lease is gone. */
int etcd_lease_keepalive(struct etcd_client *c, int64_t id, uint64_t deadline_us, int64_t *ret_ttl);
int etcd_lease_revoke(struct etcd_client *c, int64_t id, uint64_t deadline_us);

/* The status of the member at endpoint i, asked of that member only (no
 * failover): whether it knows a leader tells quorum loss from a dead member. */
int etcd_member_status(struct etcd_client *c, size_t i, uint64_t deadline_us, struct etcd_status *ret);

/*
 * Watches.  A watch streams the changes of a key (or prefix) from a revision
 * on.  When the stream breaks it is reopened on the next endpoint from the
 * revision after the last one delivered, so no change is lost or repeated,
 * unless etcd compacted that revision away (-ECANCELED: the caller reads the
 * state again and starts a new watch).  Dead connections are noticed by TCP
 * keepalive within seconds; nothing may depend on a watch for safety, it only
 * makes changes arrive sooner than polling would.
 */
struct etcd_watch;

/* start_revision 0: from now on. */
int etcd_watch_new(const struct etcd_client *c, const char *key, bool prefix, int64_t start_revision,
                   struct etcd_watch **ret);
struct etcd_watch *etcd_watch_free(struct etcd_watch *w);
DEFINE_FREE_FUNC(struct etcd_watch, etcd_watch_free);
/*
 * Waits until events arrive or the deadline passes.  1: *ret holds events
 * (release with etcd_watch_response_release()); 0: nothing before the
 * deadline; -ECANCELED: compacted (see above); -EIO: etcd canceled the watch
 * for another reason (etcd_watch_error()); -ENOMEM.
 */
int etcd_watch_next(struct etcd_watch *w, uint64_t deadline_us, struct etcd_watch_response *ret);
/* The stream is open and etcd confirmed the watch. */
bool etcd_watch_established(const struct etcd_watch *w);
/* The revision the watch resumes from after a break (last delivered + 1). */
int64_t etcd_watch_next_revision(const struct etcd_watch *w);
const char *etcd_watch_error(const struct etcd_watch *w);
