/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Cluster snapshot sets in vssd (docs/cluster.md §11), the cluster thread's half: every etcd
 * call a set makes, because they block.  cluster-set.c, on the loop thread, owns cset.c's two
 * state machines and hands this file jobs (T1, every write action, T11, "forget this set");
 * this file hands back messages on an eventfd (T1's outcome, a spec naming us, every event
 * read from etcd).
 *
 * The thread polls P/lock every 250 ms for a new set and, while a machine of this host is
 * in a set, the set's keys every 50 ms.  The watch thread (below) hands it the keys put
 * under P/sets/, which it turns into events at once without reading them again, and rings
 * for a poll at once on any other change: the polls carry the state, a late or lost watch
 * costs time, never an outcome.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "basic/string-util.h"
#include "basic/time-util.h"
#include "vssd/vcluster.h"

#define LOCK_POLL_US (250 * USEC_PER_MSEC)
#define SET_POLL_US (50 * USEC_PER_MSEC)

/* ======================= cluster thread ======================= */

static uint64_t call_deadline(const struct vcluster *k)
{
        return clock_monotonic_us() + (uint64_t)k->cfg.call_timeout_ms * USEC_PER_MSEC;
}

static void post(struct vcluster *k, struct vc_msg *m)
{
        uint64_t one = 1;

        pthread_mutex_lock(&k->lock);
        if (k->msgs_tail)
                k->msgs_tail->next = m;
        else
                k->msgs = m;
        k->msgs_tail = m;
        pthread_mutex_unlock(&k->lock);
        (void)!write(k->evfd, &one, sizeof(one));
}

static void post_event(struct vcluster *k, bool coord, const struct cset_event *ev)
{
        struct vc_msg *m = calloc(1, sizeof(*m));

        if (!m)
                return;
        m->kind = VC_MSG_EVENT;
        m->coord = coord;
        m->ev = *ev;
        if (ev->host)
                snprintf(m->host, sizeof(m->host), "%s", ev->host);
        m->ev.host = NULL;
        post(k, m);
}

/* To every machine of this host that is in the set. */
static void post_both(struct vcluster *k, const struct cset_event *ev)
{
        if (k->ts.part)
                post_event(k, false, ev);
        if (k->ts.coord)
                post_event(k, true, ev);
}

static void post_started(struct vcluster *k, vss_hresult hr, const char *fmt, ...) _printf_(3, 4);
static void post_started(struct vcluster *k, vss_hresult hr, const char *fmt, ...)
{
        struct vc_msg *m = calloc(1, sizeof(*m));
        va_list ap;

        if (!m)
                return;
        m->kind = VC_MSG_STARTED;
        m->hr = hr;
        va_start(ap, fmt);
        vsnprintf(m->detail, sizeof(m->detail), fmt, ap);
        va_end(ap);
        post(k, m);
}

/* Waits on cond (with k->lock) until 'until' (monotonic) or vssd stops; returns whether to go on. */
static bool wait_or_stop(struct vcluster *k, pthread_cond_t *cond, uint64_t until)
{
        bool stop;

        pthread_mutex_lock(&k->lock);
        while (!k->stop && clock_monotonic_us() < until) {
                struct timespec ts = timespec_from_us(until);

                if (pthread_cond_timedwait(cond, &k->lock, &ts) == ETIMEDOUT)
                        break;
        }
        stop = k->stop;
        pthread_mutex_unlock(&k->lock);
        return !stop;
}

static void unreachable_event(struct cset_event *ev, struct etcd_client *c)
{
        *ev = (struct cset_event){ .type = CSET_EV_ETCD_UNREACHABLE };
        snprintf(ev->failure.detail, sizeof(ev->failure.detail), "%s", etcd_client_error(c));
}

static void tset_begin(struct vcluster *k, const char *set_id, const char (*hosts)[CSET_HOST_MAX], size_t n)
{
        struct vc_tset *t = &k->ts;

        if (streq(t->st.set_id, set_id))
                return;
        *t = (struct vc_tset){};
        snprintf(t->st.prefix, sizeof(t->st.prefix), "%s", k->cfg.prefix);
        snprintf(t->st.set_id, sizeof(t->st.set_id), "%s", set_id);
        snprintf(t->st.me, sizeof(t->st.me), "%s", k->cfg.host);
        for (size_t i = 0; i < n && i < CSET_MAX_HOSTS; i++) {
                snprintf(t->hosts[i], sizeof(t->hosts[i]), "%s", hosts[i]);
                t->host_ptrs[i] = t->hosts[i];
                t->st.n_hosts++;
        }
        t->st.hosts = t->host_ptrs;
}

static void tset_maybe_clear(struct vcluster *k)
{
        if (!k->ts.coord && !k->ts.part && k->ts.lease == 0)
                k->ts = (struct vc_tset){};
}

struct gc_ctx {
        struct vcluster *k;
        struct etcd_client *c;
};

static void gc_delete(const char *set_id, void *userdata)
{
        struct gc_ctx *g = userdata;
        char key[CSET_KEY_MAX];

        snprintf(key, sizeof(key), "%s/sets/%s/", g->k->cfg.prefix, set_id);
        if (etcd_delete(g->c, key, true, call_deadline(g->k), NULL) < 0)
                log_warn("[cluster] cannot delete the keys of finished set %s: %s", set_id, etcd_client_error(g->c));
        else
                log_info("[cluster] deleted the keys of finished set %s", set_id);
}

/* docs/cluster.md §9: with the lock held (before T10 releases it, so off the set's critical
 * path), the sets that ended set_keep_s ago or more go. Their
 * shadow copies stay in the hosts' catalogs; only the protocol's keys are removed. */
static void gc_sets(struct vcluster *k, struct etcd_client *c)
{
        struct etcd_range_result r = {};
        struct gc_ctx g = { k, c };
        char key[CSET_KEY_MAX];

        snprintf(key, sizeof(key), "%s/sets/", k->cfg.prefix);
        if (etcd_get(c, key, true, call_deadline(k), &r) < 0) {
                log_warn("[cluster] cannot read the sets to collect: %s", etcd_client_error(c));
                return;
        }
        (void)cset_store_gc_pick(k->cfg.prefix, &r, k->ts.st.set_id, clock_realtime_us(),
                                 (uint64_t)k->cfg.set_keep_s * USEC_PER_SEC, gc_delete, &g);
        etcd_range_result_release(&r);
}

/* How long a new set waits for this host's part in the previous one to end: a requester that
 * starts its next set at once would otherwise race the BackupComplete of the last one. */
#define START_HOLD_US (3 * USEC_PER_SEC)
#define START_RETRY_MS UINT64_C(2000)

/* A start's etcd calls are tried again until 'until': etcd electing a new leader after losing
 * one (1-2 s) must not fail a set that has frozen nothing yet. Waits 100 ms; false when the
 * time is up or vssd stops. */
static bool start_retry(struct vcluster *k, uint64_t until)
{
        uint64_t when = clock_monotonic_us() + 100 * USEC_PER_MSEC;

        return when < until && wait_or_stop(k, &k->cond, when);
}

/* Takes j; returns whether it is done with it (false: held, k->held_start). */
static bool job_start(struct vcluster *k, struct etcd_client *c, struct vc_job *j)
{
        struct vc_tset *t = &k->ts;
        struct etcd_txn *txn = NULL;
        struct etcd_txn_result res = {};
        _cleanup_free_ char *holder = NULL;
        int64_t ttl = 0, lease = 0;
        uint64_t until;
        int r;

        if (t->st.set_id[0] && !streq(t->st.set_id, j->set_id)) {
                if (!k->held_start) {
                        k->held_start = j;
                        k->held_until = clock_monotonic_us() + START_HOLD_US;
                        return false;
                }
                if (k->held_start == j && clock_monotonic_us() < k->held_until)
                        return false;
                k->held_start = NULL;
                post_started(k, VSS_E_SNAPSHOT_SET_IN_PROGRESS, "host %s is still in cluster set %s", k->cfg.host,
                             t->st.set_id);
                return true;
        }
        if (k->held_start == j)
                k->held_start = NULL;
        tset_begin(k, j->set_id, (const char (*)[CSET_HOST_MAX])j->hosts, j->n_hosts);
        /* Bounded well below a host lease's keepalive slack: this thread keeps that lease too. */
        until = clock_monotonic_us() + MIN((uint64_t)k->cfg.timing.unreachable_ms, START_RETRY_MS) * USEC_PER_MSEC;
        while ((r = etcd_lease_grant(c, k->cfg.set_lease_ttl_s, call_deadline(k), &lease, &ttl)) < 0 &&
               start_retry(k, until))
                log_debug("[cluster] set lease: %s; again", etcd_client_error(c));
        if (r < 0) {
                post_started(k, VSS_E_CLUSTER_ERROR, "cannot get a set lease: %s", etcd_client_error(c));
                tset_maybe_clear(k);
                return true;
        }
        r = cset_store_start_txn(&t->st, lease, j->spec, &txn);
        /* Sent again, T1 finds its own lock if the first one was applied (cset_store_start_result). */
        while (r >= 0 && (r = etcd_txn_commit(c, txn, call_deadline(k), &res)) < 0 && start_retry(k, until))
                log_debug("[cluster] T1: %s; again", etcd_client_error(c));
        etcd_txn_free(txn);
        if (r < 0) {
                post_started(k, VSS_E_CLUSTER_ERROR, "cannot take the cluster set lock: %s", etcd_client_error(c));
                (void)etcd_lease_revoke(c, lease, call_deadline(k));
                tset_maybe_clear(k);
                return true;
        }
        r = cset_store_start_result(&t->st, &res, &t->st.lock_revision, &holder);
        etcd_txn_result_release(&res);
        if (r < 0) {
                (void)etcd_lease_revoke(c, lease, call_deadline(k));
                if (r == -EBUSY)
                        post_started(k, VSS_E_SNAPSHOT_SET_IN_PROGRESS, "another cluster set holds the lock: %s",
                                     holder ?: "?");
                else
                        post_started(k, VSS_E_CLUSTER_ERROR, "unexpected answer to the set's start: %s",
                                     strerror(-r));
                tset_maybe_clear(k);
                return true;
        }
        t->lease = lease;
        t->coord = true;
        t->next_keepalive = clock_monotonic_us() + (uint64_t)k->cfg.set_lease_ttl_s * USEC_PER_SEC / 3;
        t->next_poll = 0;
        post_started(k, VSS_S_OK, "lock revision %lld", (long long)t->st.lock_revision);
        return true;
}

/* A write of one machine of this host that the other one here waits for: it gets the event a
 * poll would read next at once, saving a watch-and-poll round trip (on the coordinator's host,
 * twice inside every freeze window). Failures are left to the polls. */
static void relay_written(struct vcluster *k, const struct vc_job *j)
{
        struct cset_event ev = {};
        bool to_coord = !j->coord;

        if (to_coord ? !k->ts.coord : !k->ts.part)
                return;
        switch (j->act.type) {
        case CSET_ACT_WRITE_FREEZE:
                ev.type = CSET_EV_FREEZE_SEEN;
                break;
        case CSET_ACT_WRITE_COMMIT:
                ev.type = CSET_EV_DECISION_SEEN;
                ev.commit = true;
                break;
        case CSET_ACT_WRITE_COMPLETE:
                ev.type = CSET_EV_FINAL_SEEN;
                ev.complete = true;
                break;
        case CSET_ACT_WRITE_PREPARED:
        case CSET_ACT_WRITE_FROZEN:
        case CSET_ACT_WRITE_DONE:
                if (j->act.failure.hr != VSS_S_OK)
                        return;
                ev.type = j->act.type == CSET_ACT_WRITE_PREPARED ? CSET_EV_HOST_PREPARED
                          : j->act.type == CSET_ACT_WRITE_FROZEN ? CSET_EV_HOST_FROZEN
                                                                  : CSET_EV_HOST_DONE;
                ev.commit = ev.complete = true;
                ev.host = k->cfg.host;
                break;
        default:
                return;
        }
        post_event(k, to_coord, &ev);
}

static void job_write(struct vcluster *k, struct etcd_client *c, struct vc_job *j)
{
        struct etcd_txn *txn = NULL;
        struct etcd_txn_result res = {};
        struct cset_event ev;
        int r;

        if (!k->ts.st.set_id[0])
                return;
        if (j->coord && j->act.type == CSET_ACT_RELEASE)
                gc_sets(k, c);          /* still under the lock, and after the set's freeze */
        r = cset_store_txn(&k->ts.st, &j->act, &txn);
        if (r < 0) {
                log_err("[cluster] no transaction for %s: %s", cset_action_name(j->act.type), strerror(-r));
                return;
        }
        r = etcd_txn_commit(c, txn, call_deadline(k), &res);
        etcd_txn_free(txn);
        if (r < 0) {
                log_warn("[cluster] %s: %s", cset_action_name(j->act.type), etcd_client_error(c));
                unreachable_event(&ev, c);
                k->ts.unreachable = true;
                post_event(k, j->coord, &ev);
                return;
        }
        r = cset_store_result(&k->ts.st, &j->act, &res, &ev);
        etcd_txn_result_release(&res);
        if (r > 0)
                post_event(k, j->coord, &ev);
        if (r > 0 && ev.type == CSET_EV_WRITTEN)
                relay_written(k, j);
}

static void job_end(struct vcluster *k, struct etcd_client *c, struct vc_job *j)
{
        char key[CSET_KEY_MAX];
        static const char end[] = "{\"backup_succeeded\":true}";

        if (!k->ts.lease || !streq(k->ts.st.set_id, j->set_id))
                return;
        if (j->end_put && cset_store_key(&k->ts.st, "end", NULL, key, sizeof(key)) >= 0 &&
            etcd_put(c, key, end, strlen(end), 0, call_deadline(k), NULL) < 0)
                log_warn("[cluster] cannot write the end of set %s: %s", j->set_id, etcd_client_error(c));
        if (cset_store_key(&k->ts.st, "coordinator", NULL, key, sizeof(key)) >= 0)
                (void)etcd_delete(c, key, false, call_deadline(k), NULL);
        if (etcd_lease_revoke(c, k->ts.lease, call_deadline(k)) < 0)
                log_warn("[cluster] cannot revoke the set lease: %s", etcd_client_error(c));
        k->ts.lease = 0;
        tset_maybe_clear(k);
}

static void poll_emit(const struct cset_event *ev, bool to_coord, bool to_part, void *userdata)
{
        struct vcluster *k = userdata;

        if (to_coord && k->ts.coord)
                post_event(k, true, ev);
        if (to_part && k->ts.part)
                post_event(k, false, ev);
}

/* Every key of the set, as events (duplicates are harmless: the machines take them and do nothing). */
static void poll_set(struct vcluster *k, struct etcd_client *c)
{
        struct vc_tset *t = &k->ts;
        char prefix[CSET_KEY_MAX];
        struct etcd_range_result r = {};
        struct cset_event ev;

        if (cset_store_key(&t->st, "", NULL, prefix, sizeof(prefix)) < 0)
                return;
        if (etcd_get(c, prefix, true, call_deadline(k), &r) < 0) {
                unreachable_event(&ev, c);
                t->unreachable = true;
                post_both(k, &ev);
                return;
        }
        if (t->unreachable) {
                t->unreachable = false;
                ev = (struct cset_event){ .type = CSET_EV_ETCD_OK };
                post_both(k, &ev);
        }
        cset_store_poll_events(&t->st, &r, poll_emit, k);
        etcd_range_result_release(&r);
}

/* A new set in P/lock: its spec, handed to the loop when it names this host. */
static void poll_lock(struct vcluster *k, struct etcd_client *c)
{
        char key[CLUSTER_PREFIX_MAX + 64];
        struct etcd_range_result r = {};
        json_t *lock = NULL, *spec = NULL, *parts;
        const char *set_id;
        struct vc_msg *m;

        snprintf(key, sizeof(key), "%s/lock", k->cfg.prefix);
        if (etcd_get(c, key, false, call_deadline(k), &r) < 0 || r.n_kvs == 0)
                goto out;
        lock = json_loadb((const char *)r.kvs[0].value, r.kvs[0].value_len, 0, NULL);
        set_id = json_string_value(json_object_get(lock, "set_id"));
        if (!set_id || strlen(set_id) >= CSET_SET_ID_MAX || streq(set_id, k->last_lock_set))
                goto out;
        snprintf(k->last_lock_set, sizeof(k->last_lock_set), "%s", set_id);
        etcd_range_result_release(&r);
        snprintf(key, sizeof(key), "%s/sets/%s/spec", k->cfg.prefix, set_id);
        if (etcd_get(c, key, false, call_deadline(k), &r) < 0 || r.n_kvs == 0) {
                k->last_lock_set[0] = 0;        /* try again at the next poll */
                goto out;
        }
        spec = json_loadb((const char *)r.kvs[0].value, r.kvs[0].value_len, 0, NULL);
        parts = json_object_get(spec, "participants");
        if (!json_object_get(parts, k->cfg.host))
                goto out;
        {
                char hosts[CSET_MAX_HOSTS][CSET_HOST_MAX];
                const char *h;
                json_t *x;
                size_t n = 0;

                json_object_foreach(parts, h, x)
                        if (n < CSET_MAX_HOSTS)
                                snprintf(hosts[n++], CSET_HOST_MAX, "%s", h);
                if (k->ts.st.set_id[0] && !streq(k->ts.st.set_id, set_id)) {
                        /* This host's coordinator is still ending its set: look again at the next poll. */
                        log_debug("[cluster] set %s names this host while set %s is not over here yet", set_id,
                                  k->ts.st.set_id);
                        k->last_lock_set[0] = 0;
                        goto out;
                }
                tset_begin(k, set_id, (const char (*)[CSET_HOST_MAX])hosts, n);
        }
        k->ts.part = true;
        k->ts.next_poll = 0;
        m = calloc(1, sizeof(*m));
        if (m) {
                m->kind = VC_MSG_SPEC;
                m->spec = json_dumps(spec, JSON_COMPACT);
                post(k, m);
        }
out:
        etcd_range_result_release(&r);
        json_decref(lock);
        json_decref(spec);
}

uint64_t vcset_thread_run(struct vcluster *k, struct etcd_client *c)
{
        struct etcd_range_result puts;
        struct vc_job *jobs;
        uint64_t now, wake;

        pthread_mutex_lock(&k->lock);
        jobs = k->jobs;
        k->jobs = k->jobs_tail = NULL;
        if (k->kick) {
                k->kick = false;
                k->ts.next_poll = 0;
                k->next_lock_poll = 0;
        }
        puts = k->puts;
        k->puts = (struct etcd_range_result){};
        pthread_mutex_unlock(&k->lock);
        /* The watch's puts say what a poll would, one etcd read sooner (docs/cluster.md §11.5). */
        if (puts.n_kvs && (k->ts.coord || k->ts.part))
                cset_store_put_events(&k->ts.st, &puts, poll_emit, k);
        etcd_range_result_release(&puts);
        while (jobs) {
                struct vc_job *j = jobs;

                jobs = j->next;
                switch (j->kind) {
                case VC_JOB_START:
                        if (k->held_start) {
                                /* One start at a time (the loop sends one per coordinator). */
                                post_started(k, VSS_E_SNAPSHOT_SET_IN_PROGRESS, "host %s is starting another "
                                             "cluster set", k->cfg.host);
                                break;
                        }
                        if (!job_start(k, c, j))
                                continue;
                        break;
                case VC_JOB_WRITE:
                        job_write(k, c, j);
                        break;
                case VC_JOB_END:
                        job_end(k, c, j);
                        break;
                case VC_JOB_FORGET:
                        if (streq(k->ts.st.set_id, j->set_id)) {
                                if (j->coord)
                                        k->ts.coord = false;
                                else
                                        k->ts.part = false;
                                tset_maybe_clear(k);
                        }
                        break;
                }
                free(j->spec);
                free(j);
        }

        if (k->held_start) {
                struct vc_job *h = k->held_start;

                if (job_start(k, c, h)) {
                        free(h->spec);
                        free(h);
                }
        }
        now = clock_monotonic_us();
        if (k->ts.lease && now >= k->ts.next_keepalive) {
                int64_t ttl;
                int r = etcd_lease_keepalive(c, k->ts.lease, call_deadline(k), &ttl);

                if (r == -ENOENT) {
                        struct cset_event ev = { .type = CSET_EV_COORDINATOR_GONE };

                        log_warn("[cluster] the set lease of %s expired", k->ts.st.set_id);
                        k->ts.lease = 0;
                        if (k->ts.coord)
                                post_event(k, true, &ev);
                } else
                        k->ts.next_keepalive = clock_monotonic_us() +
                                               (r < 0 ? 200 * USEC_PER_MSEC
                                                      : (uint64_t)k->cfg.set_lease_ttl_s * USEC_PER_SEC / 3);
        }
        if ((k->ts.coord || k->ts.part) && clock_monotonic_us() >= k->ts.next_poll) {
                poll_set(k, c);
                k->ts.next_poll = clock_monotonic_us() + SET_POLL_US;
        }
        if (!k->ts.part && clock_monotonic_us() >= k->next_lock_poll) {
                poll_lock(k, c);
                k->next_lock_poll = clock_monotonic_us() + LOCK_POLL_US;
        }
        wake = k->next_lock_poll;
        if (k->ts.coord || k->ts.part)
                wake = MIN(wake, k->ts.next_poll);
        if (k->ts.lease)
                wake = MIN(wake, k->ts.next_keepalive);
        if (k->held_start)
                wake = MIN(wake, clock_monotonic_us() + SET_POLL_US);
        return wake;
}

void vcset_thread_stop(struct vcluster *k, struct etcd_client *c)
{
        if (k->held_start) {
                free(k->held_start->spec);
                free(k->held_start);
                k->held_start = NULL;
        }
        if (k->ts.lease)
                (void)etcd_lease_revoke(c, k->ts.lease, call_deadline(k));
        k->ts.lease = 0;
}

/* ======================= watch thread ======================= */

#define WATCH_WAIT_US (250 * USEC_PER_MSEC)     /* bounds how long vcluster_stop waits for it */

static bool watch_wait(struct vcluster *k, uint64_t until)
{
        return wait_or_stop(k, &k->wcond, until);
}

/* A put under P/sets/ goes to the cluster thread as it is (moved out of resp); anything else
 * (a delete, the lock, a host record) rings for a poll, and so does a put that cannot be kept. */
static void watch_hand_over(struct vcluster *k, const char *sets, struct etcd_watch_response *resp)
{
        size_t n_sets = strlen(sets);
        bool kick = false;

        pthread_mutex_lock(&k->lock);
        for (size_t i = 0; i < resp->n_events; i++) {
                struct etcd_event *e = &resp->events[i];
                struct etcd_kv *kvs;

                if (e->type != ETCD_EVENT_PUT || e->kv.key_len < n_sets || memcmp(e->kv.key, sets, n_sets) != 0) {
                        kick = true;
                        continue;
                }
                kvs = reallocarray(k->puts.kvs, k->puts.n_kvs + 1, sizeof(*kvs));
                if (!kvs) {
                        kick = true;
                        continue;
                }
                k->puts.kvs = kvs;
                kvs[k->puts.n_kvs++] = e->kv;
                e->kv = (struct etcd_kv){};
        }
        if (kick)
                k->kick = true;
        pthread_cond_signal(&k->cond);
        pthread_mutex_unlock(&k->lock);
}

static void *watch_thread(void *p)
{
        struct vcluster *k = p;
        _cleanup_(etcd_client_freep) struct etcd_client *c = NULL;
        struct etcd_watch *w = NULL;
        char key[CLUSTER_PREFIX_MAX + 2], sets[CLUSTER_PREFIX_MAX + 8];

        snprintf(key, sizeof(key), "%s/", k->cfg.prefix);
        snprintf(sets, sizeof(sets), "%s/sets/", k->cfg.prefix);
        if (etcd_client_new(k->cfg.endpoints, &c) < 0)
                return NULL;
        while (watch_wait(k, 0)) {
                struct etcd_watch_response resp = {};
                int r;

                if (!w && etcd_watch_new(c, key, true, 0, &w) < 0) {
                        w = NULL;
                        if (!watch_wait(k, clock_monotonic_us() + WATCH_WAIT_US))
                                break;
                        continue;
                }
                r = etcd_watch_next(w, clock_monotonic_us() + WATCH_WAIT_US, &resp);
                if (r > 0) {
                        watch_hand_over(k, sets, &resp);
                        etcd_watch_response_release(&resp);
                } else if (r < 0) {
                        /* Compacted or canceled: a new watch from now on (the polls carry the state). */
                        w = etcd_watch_free(w);
                        if (!watch_wait(k, clock_monotonic_us() + WATCH_WAIT_US))
                                break;
                }
        }
        etcd_watch_free(w);
        return NULL;
}

int vcset_watch_start(struct vcluster *k)
{
        int r = -pthread_create(&k->wthread, NULL, watch_thread, k);

        if (r == 0)
                k->wstarted = true;
        return r;
}

void vcset_watch_join(struct vcluster *k)
{
        if (k->wstarted)
                pthread_join(k->wthread, NULL);
        k->wstarted = false;
}
