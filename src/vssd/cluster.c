/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * This vssd's membership of a cluster (vssd.conf [cluster]; docs/cluster.md §3 and §4):
 * P/members/<host> written once, the host record P/hosts/<host> attached to the host
 * lease H and kept alive every TTL/3, and every host's record read back once a second
 * for Cluster.Hosts (`vssadmin list hosts`, `vssadmin list writers /cluster`).
 *
 * An etcd call may block for up to call_timeout_ms, so every call runs on a thread of
 * its own with its own client (etcd.h: one client per thread).  The loop thread owns
 * writers, volumes and providers: it builds the record on a one-second timer and hands
 * it over only when it changed, and it answers Cluster.Hosts from the view the thread
 * last read, never waiting for etcd.  The two threads share only what 'lock' guards.
 *
 * A host whose record is gone (its lease expired: vssd killed, host cut off, or vssd
 * stopped, which revokes the lease) but whose member key remains is shown as gone.
 */

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/string-util.h"
#include "basic/time-util.h"
#include "cluster/etcd.h"
#include "vssd/vcluster.h"

#define TICK_US (1 * USEC_PER_SEC)              /* record rebuilt, view read: at most this stale */
#define RETRY_US (1 * USEC_PER_SEC)             /* after a failed grant or keepalive */

static void set_error(struct vcluster *k, const char *what, struct etcd_client *c)
{
        pthread_mutex_lock(&k->lock);
        fmt_trunc(k->error, sizeof(k->error), "%s: %s", what, etcd_client_error(c));
        pthread_mutex_unlock(&k->lock);
}

static void clear_error(struct vcluster *k)
{
        pthread_mutex_lock(&k->lock);
        k->error[0] = '\0';
        pthread_mutex_unlock(&k->lock);
}

static uint64_t deadline(const struct vcluster *k)
{
        return clock_monotonic_us() + (uint64_t)k->cfg.call_timeout_ms * USEC_PER_MSEC;
}

static int key_of(const struct vcluster *k, const char *dir, const char *host, char *buf, size_t len)
{
        int n = snprintf(buf, len, "%s/%s/%s", k->cfg.prefix, dir, host);

        return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* P/members/<me>, created once: first_seen_us keeps the first start of this host. */
static int write_member(struct vcluster *k, struct etcd_client *c)
{
        struct etcd_txn *t = etcd_txn_new();
        struct etcd_txn_result res = {};
        _cleanup_free_ char *val = NULL;
        char key[CLUSTER_PREFIX_MAX + CSET_HOST_MAX + 16];
        json_t *o = json_pack("{s:s, s:I}", "name", k->cfg.host, "first_seen_us", (json_int_t)clock_realtime_us());
        int r = -ENOMEM;

        val = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        json_decref(o);
        if (t && val && key_of(k, "members", k->cfg.host, key, sizeof(key)) >= 0 &&
            etcd_txn_cmp_int(t, key, ETCD_CMP_CREATE, ETCD_CMP_EQUAL, 0) >= 0 &&
            etcd_txn_put(t, true, key, val, strlen(val), 0) >= 0) {
                r = etcd_txn_commit(c, t, deadline(k), &res);
                etcd_txn_result_release(&res);
        }
        etcd_txn_free(t);
        return r;
}

static int publish(struct vcluster *k, struct etcd_client *c, const char *record, int64_t lease)
{
        _cleanup_free_ char *val = NULL;
        char key[CLUSTER_PREFIX_MAX + CSET_HOST_MAX + 16];
        json_t *o = json_loads(record, 0, NULL);

        if (!o || key_of(k, "hosts", k->cfg.host, key, sizeof(key)) < 0) {
                json_decref(o);
                return -ENOMEM;
        }
        json_object_set_new(o, "updated_us", json_integer((json_int_t)clock_realtime_us()));
        val = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(o);
        if (!val)
                return -ENOMEM;
        return etcd_put(c, key, val, strlen(val), lease, deadline(k), NULL);
}

static int cmp_names(const void *a, const void *b)
{
        return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static const char *leaf(const struct etcd_kv *kv)
{
        const char *s = strrchr((const char *)kv->key, '/');

        return s ? s + 1 : (const char *)kv->key;
}

/* Every member, present (its record is there) or gone, and hosts with a record only. */
static int read_view(struct vcluster *k, struct etcd_client *c, json_t **ret)
{
        struct etcd_range_result members = {}, hosts = {};
        char key[CLUSTER_PREFIX_MAX + 16];
        json_t *view, *byname;
        int r;

        snprintf(key, sizeof(key), "%s/members/", k->cfg.prefix);
        r = etcd_get(c, key, true, deadline(k), &members);
        if (r < 0)
                return r;
        snprintf(key, sizeof(key), "%s/hosts/", k->cfg.prefix);
        r = etcd_get(c, key, true, deadline(k), &hosts);
        if (r < 0) {
                etcd_range_result_release(&members);
                return r;
        }
        byname = json_object();
        for (size_t i = 0; i < members.n_kvs; i++) {
                json_t *m = json_loadb((const char *)members.kvs[i].value, members.kvs[i].value_len, 0, NULL);

                json_object_set_new(byname, leaf(&members.kvs[i]),
                                    json_pack("{s:s, s:s, s:O?, s:n}", "name", leaf(&members.kvs[i]), "state", "gone",
                                              "first_seen_us", json_object_get(m, "first_seen_us"), "record"));
                json_decref(m);
        }
        for (size_t i = 0; i < hosts.n_kvs; i++) {
                json_t *rec = json_loadb((const char *)hosts.kvs[i].value, hosts.kvs[i].value_len, 0, NULL);
                json_t *h = json_object_get(byname, leaf(&hosts.kvs[i]));

                if (!h) {
                        h = json_pack("{s:s, s:n}", "name", leaf(&hosts.kvs[i]), "first_seen_us");
                        json_object_set_new(byname, leaf(&hosts.kvs[i]), h);
                }
                json_object_set_new(h, "state", json_string(rec ? "present" : "unreadable"));
                json_object_set_new(h, "record", rec ? rec : json_null());
        }
        etcd_range_result_release(&members);
        etcd_range_result_release(&hosts);

        /* Sorted by name, as every vssadmin list is ordered for humans. */
        view = json_array();
        {
                const char *name;
                json_t *h;
                size_t n = json_object_size(byname), i = 0;
                const char **names = calloc(n ? n : 1, sizeof(*names));

                if (!names) {
                        json_decref(byname);
                        json_decref(view);
                        return -ENOMEM;
                }
                json_object_foreach(byname, name, h)
                        names[i++] = name;
                qsort(names, n, sizeof(*names), cmp_names);
                for (i = 0; i < n; i++)
                        json_array_append(view, json_object_get(byname, names[i]));
                free(names);
        }
        json_decref(byname);
        *ret = view;
        return 0;
}

static void *cluster_thread(void *arg)
{
        struct vcluster *k = arg;
        _cleanup_(etcd_client_freep) struct etcd_client *c = NULL;
        uint64_t published_gen = 0, next_grant = 0, next_keepalive = 0, next_read = 0;
        uint64_t keepalive_every = (uint64_t)k->cfg.host_lease_ttl_s * USEC_PER_SEC / 3;
        int64_t lease = 0, ttl = 0;
        bool member_written = false, need_publish = false;
        int r;

        if (etcd_client_new(k->cfg.endpoints, &c) < 0) {
                log_err("[cluster] cannot use endpoints '%s'", k->cfg.endpoints);
                return NULL;
        }
        for (;;) {
                _cleanup_free_ char *record = NULL;
                uint64_t now = clock_monotonic_us(), wake, gen;

                pthread_mutex_lock(&k->lock);
                if (k->stop) {
                        pthread_mutex_unlock(&k->lock);
                        break;
                }
                gen = k->record_gen;
                if (k->record && (need_publish || gen != published_gen))
                        record = strdup(k->record);
                pthread_mutex_unlock(&k->lock);

                if (lease == 0 && now >= next_grant) {
                        r = etcd_lease_grant(c, k->cfg.host_lease_ttl_s, deadline(k), &lease, &ttl);
                        if (r < 0) {
                                lease = 0;
                                set_error(k, "cannot get the host lease", c);
                                next_grant = clock_monotonic_us() + RETRY_US;
                        } else {
                                log_info("[cluster] host %s joined cluster %s (lease %llx, TTL %llds)",
                                         k->cfg.host, k->cfg.prefix, (unsigned long long)lease, (long long)ttl);
                                next_keepalive = clock_monotonic_us() + keepalive_every;
                                need_publish = true;
                        }
                }
                if (lease && !member_written) {
                        r = write_member(k, c);
                        if (r < 0)
                                set_error(k, "cannot write the member key", c);
                        member_written = r >= 0;
                }
                if (lease && record) {
                        r = publish(k, c, record, lease);
                        if (r < 0)
                                set_error(k, "cannot write the host record", c);
                        else {
                                published_gen = gen;
                                need_publish = false;
                        }
                }
                if (lease && clock_monotonic_us() >= next_keepalive) {
                        r = etcd_lease_keepalive(c, lease, deadline(k), &ttl);
                        if (r == -ENOENT) {
                                /* Expired while we could not reach etcd: the record went with it. */
                                log_warn("[cluster] the host lease of %s expired; joining again", k->cfg.host);
                                lease = 0;
                                next_grant = 0;
                        } else if (r < 0) {
                                set_error(k, "cannot keep the host lease alive", c);
                                next_keepalive = clock_monotonic_us() + RETRY_US;
                        } else
                                next_keepalive = clock_monotonic_us() + keepalive_every;
                }
                if (clock_monotonic_us() >= next_read) {
                        json_t *view = NULL;

                        r = read_view(k, c, &view);
                        if (r < 0)
                                set_error(k, "cannot read the hosts", c);
                        else {
                                pthread_mutex_lock(&k->lock);
                                json_decref(k->view);
                                k->view = view;
                                k->view_us = clock_realtime_us();
                                pthread_mutex_unlock(&k->lock);
                                if (lease && !need_publish)
                                        clear_error(k);
                        }
                        next_read = clock_monotonic_us() + TICK_US;
                }

                wake = MIN(next_read, vcset_thread_run(k, c));
                if (lease == 0 && next_grant < wake)
                        wake = next_grant;
                /* A record that could not be written is tried again at the next read, at most
                 * TICK_US away: next_read bounds every wait. */
                if (lease && next_keepalive < wake)
                        wake = next_keepalive;
                pthread_mutex_lock(&k->lock);
                while (!k->stop && !k->kick && !k->puts.n_kvs && k->record_gen == gen && !k->jobs && clock_monotonic_us() < wake) {
                        struct timespec ts = timespec_from_us(wake);

                        if (pthread_cond_timedwait(&k->cond, &k->lock, &ts) == ETIMEDOUT)
                                break;
                }
                pthread_mutex_unlock(&k->lock);
        }
        vcset_thread_stop(k, c);
        /* A vssd that stops leaves the cluster at once rather than after the TTL. */
        if (lease && etcd_lease_revoke(c, lease, deadline(k)) < 0)
                log_warn("[cluster] could not revoke the host lease: %s", etcd_client_error(c));
        return NULL;
}

static void tick(struct vssd *v, struct timer *t)
{
        struct vcluster *k = v->cluster;
        _cleanup_free_ char *s = NULL;
        json_t *vols = NULL, *rec;

        if (volumes_list_json(v, &vols) < 0)
                vols = json_array();
        rec = json_pack("{s:s, s:s, s:o, s:o, s:o, s:o}", "name", k->cfg.host, "version", OPENVSS_VERSION, "volumes",
                        vols, "providers", providers_list_json(v), "writers", writers_list_json(v), "shadows",
                        shadows_record_json(v));
        s = rec ? json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        json_decref(rec);
        if (s && !streq_ptr(s, k->built)) {
                pthread_mutex_lock(&k->lock);
                free(k->record);
                k->record = strdup(s);
                k->record_gen++;
                pthread_cond_signal(&k->cond);
                pthread_mutex_unlock(&k->lock);
                free(k->built);
                k->built = TAKE_PTR(s);
        }
        timer_arm(v, t, clock_monotonic_us() + TICK_US);
}

int vcluster_start(struct vssd *v)
{
        struct vcluster *k;
        pthread_condattr_t ca;
        int r;

        if (!v->cfg.cluster.enabled)
                return 0;
        k = calloc(1, sizeof(*k));
        if (!k)
                return -ENOMEM;
        k->cfg = v->cfg.cluster;
        pthread_mutex_init(&k->lock, NULL);
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&k->cond, &ca);
        pthread_cond_init(&k->wcond, &ca);
        pthread_condattr_destroy(&ca);
        k->evfd = -1;
        v->cluster = k;
        r = vcset_init(v);
        if (r < 0) {
                log_err("[cluster] cannot set up cluster sets: %s", strerror(-r));
                vcluster_stop(v);
                return r;
        }
        k->tick.cb = tick;
        tick(v, &k->tick);
        r = -pthread_create(&k->thread, NULL, cluster_thread, k);
        if (r < 0) {
                log_err("[cluster] cannot start the cluster thread: %s", strerror(-r));
                vcluster_stop(v);
                return r;
        }
        k->started = true;
        r = vcset_watch_start(k);
        if (r < 0)
                log_warn("[cluster] no watch thread (%s): sets go at the polls' pace", strerror(-r));
        log_info("[cluster] host %s, etcd %s, prefix %s", k->cfg.host, k->cfg.endpoints, k->cfg.prefix);
        return 0;
}

void vcluster_stop(struct vssd *v)
{
        struct vcluster *k = v->cluster;

        if (!k)
                return;
        timer_cancel(v, &k->tick);
        if (k->started) {
                pthread_mutex_lock(&k->lock);
                k->stop = true;
                pthread_cond_signal(&k->cond);
                pthread_cond_signal(&k->wcond);
                pthread_mutex_unlock(&k->lock);
                pthread_join(k->thread, NULL);
                vcset_watch_join(k);
        }
        vcset_free(v);
        pthread_cond_destroy(&k->cond);
        pthread_cond_destroy(&k->wcond);
        pthread_mutex_destroy(&k->lock);
        json_decref(k->view);
        etcd_range_result_release(&k->puts);
        free(k->record);
        free(k->built);
        free(k);
        v->cluster = NULL;
}

void vcluster_hosts_reply(struct vssd *v, struct conn *c, json_int_t id)
{
        struct vcluster *k = v->cluster;
        json_t *res;

        if (!k) {
                reply_err(v, c->serial, id, VSS_E_NOT_SUPPORTED,
                          "this vssd is not part of a cluster (vssd.conf has no [cluster] section)");
                return;
        }
        pthread_mutex_lock(&k->lock);
        if (!k->view) {
                char why[sizeof(k->error)];

                snprintf(why, sizeof(why), "%s", k->error[0] ? k->error : "etcd has not answered yet");
                pthread_mutex_unlock(&k->lock);
                reply_err(v, c->serial, id, VSS_E_CLUSTER_ERROR, "no view of the cluster yet: %s", why);
                return;
        }
        res = json_pack("{s:s, s:s, s:o, s:I, s:o}", "host", k->cfg.host, "prefix", k->cfg.prefix, "hosts",
                        json_deep_copy(k->view),
                        "read_us", (json_int_t)k->view_us, "error",
                        k->error[0] ? json_string(k->error) : json_null());
        pthread_mutex_unlock(&k->lock);
        reply_ok(v, c->serial, id, res);
}

void *vcluster_evfd_ptr(struct vssd *v)
{
        return &v->cluster->evfd;
}

/* This host's shadow copies in its record: `vssadmin list shadows /set=ID` on another host
 * lists them from there (docs/cluster.md §3). */
json_t *shadows_record_json(struct vssd *v)
{
        json_t *a = json_array();

        for (struct shadow *sh = v->shadows; sh; sh = sh->next)
                if (!sh->deleting)
                        json_array_append_new(a, shadow_prop_json(v, sh));
        return a;
}
