/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The etcd side of the cluster set protocol: the keys and transactions of
 * docs/cluster.md sections 3 and 5 for every write action of cset.h, and the
 * translation of a transaction's result into the event the state machine
 * takes next.  Pure (builds etcd_txn objects, reads etcd_txn_result ones): the
 * driver sends the txn with etcd_txn_commit() on its cluster thread.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/cset.h"
#include "cluster/etcd-codec.h"

#define CSET_KEY_MAX 512

struct cset_store {
        char prefix[128];                       /* "/openvss" */
        char set_id[CSET_SET_ID_MAX];           /* "{...}" */
        char me[CSET_HOST_MAX];                 /* this host */
        const char *const *hosts;               /* the set's participants (borrowed) */
        size_t n_hosts;
        int64_t lock_revision;                  /* create revision of P/lock (coordinator: ours) */
};

/* P/sets/<set>/<leaf>[/<host>] into buf (truncation is an error: -ENAMETOOLONG). */
int cset_store_key(const struct cset_store *s, const char *leaf, const char *host, char *buf, size_t len);

/* The value a failure is stored as: {"outcome","hresult","name","host","writer","detail"}, malloc'd. */
char *cset_failure_to_json(const char *outcome, const struct cset_failure *f);
/* The reverse; -EBADMSG when it is not one. */
int cset_failure_from_json(const char *text, size_t len, struct cset_failure *ret);

/* T1: the lock (on lease), the spec, the coordinator key, or the lock read back. */
int cset_store_start_txn(const struct cset_store *s, int64_t lease, const char *spec_json, struct etcd_txn **ret);
/* After T1: 0 and the lock's create revision when we hold it now; -EBUSY with the running
 * set's lock value (malloc'd, in *ret_holder) when another set holds it. */
int cset_store_start_result(const struct cset_store *s, const struct etcd_txn_result *r, int64_t *ret_lock_revision,
                            char **ret_holder);

/* The txn for one write action (WRITE_*, PROPOSE_*, RELEASE); -EINVAL for other actions. */
int cset_store_txn(const struct cset_store *s, const struct cset_action *a, struct etcd_txn **ret);
/*
 * What the txn's result means for the machine that asked: 1 and *ret the event to feed
 * (WRITTEN, DECISION_SEEN, FINAL_SEEN or COORDINATOR_GONE); 0 when there is nothing to
 * feed (a guard failed on a key the watch will show, or a RELEASE); -EBADMSG when a
 * stored value is not the protocol's.  ret->host is NULL; strings are copied.
 */
int cset_store_result(const struct cset_store *s, const struct cset_action *a, const struct etcd_txn_result *r,
                      struct cset_event *ret);

/*
 * Garbage collection (docs/cluster.md §9): r is the range of every key under P/sets/.
 * pick(set_id) for each set that is over (it has a final, or an abort decision) and whose
 * spec's created_us (realtime) is keep_us or more before now_us, except 'current' (NULL:
 * none).  A set still running, decided commit without a final, or without a readable spec
 * is kept.  Returns how many sets were picked.
 */
size_t cset_store_gc_pick(const char *prefix, const struct etcd_range_result *r, const char *current, uint64_t now_us,
                          uint64_t keep_us, void (*pick)(const char *set_id, void *userdata), void *userdata);

/*
 * What one read of every key of the set (r: the range P/sets/<set>/) says, as events (the
 * driver's poll, docs/cluster.md §11.5): each host's prepared/frozen/done ack (for the
 * coordinator), freeze, end or the coordinator key gone (for the participant), decision and
 * final (for both).  emit() gets each with the machines it is for; ev->host points into
 * s->hosts.  Duplicates of earlier polls are harmless: the machines ignore them.
 */
void cset_store_poll_events(const struct cset_store *s, const struct etcd_range_result *r,
                            void (*emit)(const struct cset_event *ev, bool to_coord, bool to_part, void *userdata),
                            void *userdata);
/*
 * The same for some keys only (r: the puts a watch delivered, of this set or others): what
 * they say, but nothing from a key's absence (the coordinator key gone is for a whole read
 * or a delete to say).
 */
void cset_store_put_events(const struct cset_store *s, const struct etcd_range_result *r,
                           void (*emit)(const struct cset_event *ev, bool to_coord, bool to_part, void *userdata),
                           void *userdata);
