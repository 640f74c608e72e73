/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Cluster snapshot sets in vssd (docs/cluster.md §11): the driver of cset.c's two state
 * machines.  The loop thread owns the machines, the writers and the providers; the
 * cluster thread (cluster.c) makes every etcd call, because they block.
 *
 *   coordinator  the requester's session whose volumes are HOST:VOLUME (session.c hands
 *                them over: vcset_add_volume, vcset_do); its DoSnapshotSet sends T1 and
 *                answers at the machine's REPORT;
 *   participant  every vssd whose host the spec names (the coordinator's own too): a
 *                session of vssd's own, without a connection, walks set.c's backup steps
 *                in the three slices PREPARE_LOCAL, FREEZE_LOCAL and COMMIT_LOCAL, and its
 *                ends come back through its ops->call_done as LOCAL_* events.
 *
 * Loop -> thread: jobs (T1, every write action, T11, "forget this set").  Thread -> loop:
 * messages on an eventfd (T1's outcome, a spec naming us, every event read from etcd).
 * The thread polls P/lock every 250 ms for a new set and, while a machine of this host is
 * in a set, the set's keys every 50 ms (no watch: the protocol does not need one).  Each
 * machine's next_deadline_us arms a loop timer that feeds CSET_EV_TICK, so a host thaws
 * by its own hold deadline whatever etcd does.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "basic/string-util.h"
#include "basic/time-util.h"
#include "vssd/vcluster.h"
#include "vssd/volume.h"

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
        pthread_mutex_unlock(&k->lock);
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

static void *watch_thread(void *p)
{
        struct vcluster *k = p;
        _cleanup_(etcd_client_freep) struct etcd_client *c = NULL;
        struct etcd_watch *w = NULL;
        char key[CLUSTER_PREFIX_MAX + 2];

        snprintf(key, sizeof(key), "%s/", k->cfg.prefix);
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
                        etcd_watch_response_release(&resp);
                        pthread_mutex_lock(&k->lock);
                        k->kick = true;
                        pthread_cond_signal(&k->cond);
                        pthread_mutex_unlock(&k->lock);
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

/* ======================= loop thread ======================= */

enum local_work {
        LOCAL_NONE,
        LOCAL_PREPARE,
        LOCAL_FREEZE,
        LOCAL_COMMIT,
        LOCAL_COMPLETE,         /* BackupComplete, then the session goes */
};

struct vcset {
        struct set_ops ops;                     /* the participant session's: session.c's, two replaced */

        /* This host's participant. */
        bool p_active;
        struct cset_participant p;
        struct session *ps;
        enum local_work local;
        struct timer p_timer;
        char p_set[CSET_SET_ID_MAX];
        vss_hresult p_refused;                  /* its volumes could not be taken: prepare fails */
        char p_refused_detail[CSET_DETAIL_MAX];

        /* The coordinator (the requester's session rs). */
        bool c_active;
        struct cset_coordinator c;
        struct session *rs;
        struct timer c_timer;
        char c_set[CSET_SET_ID_MAX];
        char c_hosts[CSET_MAX_HOSTS][CSET_HOST_MAX];
        const char *c_host_ptrs[CSET_MAX_HOSTS];
        size_t c_n_hosts;
        bool c_lease;                           /* T1 succeeded: T11 is owed */
        struct timer c_hold_timer;              /* VSSD_DEBUG_CLUSTER_COMMIT_DELAY_MS: T5 waits */
        struct cset_action c_held;
};

static void queue_job(struct vssd *v, struct vc_job *j)
{
        struct vcluster *k = v->cluster;

        pthread_mutex_lock(&k->lock);
        if (k->jobs_tail)
                k->jobs_tail->next = j;
        else
                k->jobs = j;
        k->jobs_tail = j;
        pthread_cond_signal(&k->cond);
        pthread_mutex_unlock(&k->lock);
}

static void queue_simple(struct vssd *v, enum vc_job_kind kind, bool coord, const char *set_id,
                         const struct cset_action *a)
{
        struct vc_job *j = calloc(1, sizeof(*j));

        if (!j) {
                log_err("[cluster] out of memory queueing %s", a ? cset_action_name(a->type) : "a job");
                return;
        }
        j->kind = kind;
        j->coord = coord;
        if (a)
                j->act = *a;
        snprintf(j->set_id, sizeof(j->set_id), "%s", set_id);
        queue_job(v, j);
}

static void feed_p(struct vssd *v, struct cset_event *ev);
static void feed_c(struct vssd *v, struct cset_event *ev);

static void release_ps(struct vssd *v)
{
        struct vcset *cs = v->cluster->set;

        if (cs->ps && !cs->ps->closing)
                set_release(v, cs->ps);
}

static void local_done(struct vssd *v, enum cset_event_type type, vss_hresult hr, const char *writer,
                       const char *detail)
{
        struct cset_event ev = { .type = type };

        ev.failure.hr = hr;
        if (VSS_FAILED(hr)) {
                snprintf(ev.failure.host, sizeof(ev.failure.host), "%s", v->cluster->cfg.host);
                snprintf(ev.failure.writer, sizeof(ev.failure.writer), "%s", writer ?: "");
                snprintf(ev.failure.detail, sizeof(ev.failure.detail), "%s", detail ?: "");
        }
        feed_p(v, &ev);
}

/* The participant session's local part ended (set.c's call_done). */
static void ps_call_done(struct vssd *v, struct session *s, vss_hresult hr, const char *detail)
{
        struct vcset *cs = v->cluster->set;
        enum local_work w = cs->local;
        static const enum cset_event_type ev_of[] = {
                [LOCAL_PREPARE] = CSET_EV_LOCAL_PREPARED,
                [LOCAL_FREEZE] = CSET_EV_LOCAL_FROZEN,
                [LOCAL_COMMIT] = CSET_EV_LOCAL_COMMITTED,
        };

        if (s != cs->ps)
                return;
        cs->local = LOCAL_NONE;
        if (w == LOCAL_COMPLETE) {
                release_ps(v);
                return;
        }
        if (w == LOCAL_NONE)
                return;         /* aborted meanwhile: the machine asked for nothing */
        local_done(v, ev_of[w], detail ? hr : VSS_S_OK, s->fail_writer, detail);
}

static void ps_released(struct vssd *v, struct session *s)
{
        struct vcset *cs = v->cluster ? v->cluster->set : NULL;

        if (cs && cs->ps == s)
                cs->ps = NULL;
        session_set_ops.released(v, s);
}

/* The spec's volumes for this host, through the same checks as AddToSnapshotSet. */
static void ps_create(struct vssd *v, json_t *spec, json_t *mine)
{
        struct vcset *cs = v->cluster->set;
        const char *set_id = json_string_value(json_object_get(spec, "set_id"));
        json_int_t ctx = VSS_CTX_BACKUP;
        struct session *s;
        json_t *x;
        size_t i;

        cs->p_refused = VSS_S_OK;
        s = session_new_internal(v, &cs->ops);
        if (!s) {
                cs->p_refused = VSS_E_OUTOFMEMORY;
                snprintf(cs->p_refused_detail, sizeof(cs->p_refused_detail), "out of memory");
                return;
        }
        cs->ps = s;
        if (!set_id || vss_id_parse(set_id, &s->set_id) != VSS_S_OK) {
                cs->p_refused = VSS_E_INVALIDARG;
                snprintf(cs->p_refused_detail, sizeof(cs->p_refused_detail), "the spec's set_id is not a GUID");
                return;
        }
        if (json_get_int(spec, "context", &ctx))
                s->context = (int32_t)ctx;
        json_array_foreach(mine, i, x) {
                const char *vol = json_string_value(json_object_get(x, "volume"));
                char err[VSS_PATH_MAX + 128] = "";
                vss_id sid;
                vss_hresult hr;

                if (!vol || !json_get_id(x, "shadow_id", &sid)) {
                        hr = VSS_E_INVALIDARG;
                        snprintf(err, sizeof(err), "the spec's volume %zu has no volume or shadow_id", i);
                } else
                        hr = session_add_volume(v, s, vol, NULL, &sid, err, sizeof(err));
                if (hr != VSS_S_OK) {
                        cs->p_refused = hr;
                        snprintf(cs->p_refused_detail, sizeof(cs->p_refused_detail), "%s", err);
                        return;
                }
        }
}

static void arm(struct vssd *v, struct timer *t, uint64_t when)
{
        if (when)
                timer_arm(v, t, when);
        else
                timer_cancel(v, t);
}

static void run_p(struct vssd *v, const struct cset_actions *out)
{
        struct vcset *cs = v->cluster->set;
        char idbuf[VSS_ID_STRING_MAX];

        arm(v, &cs->p_timer, out->next_deadline_us);
        for (size_t i = 0; i < out->n; i++) {
                const struct cset_action *a = &out->a[i];

                log_debug("[cluster] participant %s: %s %s", cs->p_set, cset_action_name(a->type), a->failure.detail);
                switch (a->type) {
                case CSET_ACT_PREPARE_LOCAL:
                        if (cs->p_refused != VSS_S_OK || !cs->ps) {
                                local_done(v, CSET_EV_LOCAL_PREPARED, cs->p_refused ?: VSS_E_OUTOFMEMORY, NULL,
                                           cs->p_refused_detail);
                        } else if (v->set_owner && v->set_owner != cs->ps) {
                                char why[CSET_DETAIL_MAX];

                                snprintf(why, sizeof(why), "set %s of pid %d is between StartSnapshotSet and the "
                                         "end of DoSnapshotSet on this host", vss_id_format(&v->set_owner->set_id, idbuf),
                                         (int)v->set_owner->pid);
                                local_done(v, CSET_EV_LOCAL_PREPARED, VSS_E_SNAPSHOT_SET_IN_PROGRESS, NULL, why);
                        } else if (shadows_revert_running(v)) {
                                local_done(v, CSET_EV_LOCAL_PREPARED, VSS_E_SNAPSHOT_SET_IN_PROGRESS, NULL,
                                           shadows_revert_running(v));
                        } else {
                                cs->local = LOCAL_PREPARE;
                                set_cluster_prepare(v, cs->ps);
                        }
                        break;
                case CSET_ACT_FREEZE_LOCAL:
                        if (cs->ps) {
                                cs->ps->cluster_hold_until_us = a->deadline_us;
                                cs->local = LOCAL_FREEZE;
                                set_cluster_freeze(v, cs->ps);
                        }
                        break;
                case CSET_ACT_COMMIT_LOCAL:
                        if (cs->ps) {
                                cs->local = LOCAL_COMMIT;
                                set_cluster_commit(v, cs->ps);
                        }
                        break;
                case CSET_ACT_THAW_ABORT_LOCAL:
                case CSET_ACT_ABORT_LOCAL:
                        cs->local = LOCAL_NONE;
                        if (cs->ps)
                                set_cluster_abort(v, cs->ps, a->failure.hr ?: VSS_E_ABORT,
                                                  a->failure.detail[0] ? a->failure.detail : "the cluster set aborted");
                        break;
                case CSET_ACT_DELETE_SHADOWS: {
                        vss_id set;

                        if (vss_id_parse(cs->p_set, &set) != VSS_S_OK)
                                break;
                        for (struct shadow *sh = v->shadows; sh; sh = sh->next)
                                if (!sh->deleting && vss_id_equal(&sh->snap.set_id, &set))
                                        shadow_delete(v, sh, NULL, NULL);
                        break;
                }
                case CSET_ACT_BACKUP_COMPLETE:
                        if (cs->ps && cs->ps->phase == SET_CREATED && !set_busy(cs->ps)) {
                                cs->ps->backup_succeeded = a->succeeded;
                                cs->local = LOCAL_COMPLETE;
                                set_backup_complete(v, cs->ps);
                        } else
                                release_ps(v);
                        break;
                case CSET_ACT_BACKUP_SHUTDOWN:
                        cs->local = LOCAL_NONE;
                        release_ps(v);
                        break;
                case CSET_ACT_FORGET:
                        log_info("[cluster] host %s is done with cluster set %s (%s)", v->cluster->cfg.host,
                                 cs->p_set, cs->p.failure.hr ? vss_hresult_name(cs->p.failure.hr) : "ok");
                        cs->p_active = false;
                        timer_cancel(v, &cs->p_timer);
                        queue_simple(v, VC_JOB_FORGET, false, cs->p_set, NULL);
                        if (cs->local != LOCAL_COMPLETE)
                                release_ps(v);
                        return;
                default:
                        queue_simple(v, VC_JOB_WRITE, false, cs->p_set, a);
                        break;
                }
        }
}

static void feed_p(struct vssd *v, struct cset_event *ev)
{
        struct vcset *cs = v->cluster->set;
        struct cset_actions out;

        if (!cs->p_active)
                return;
        ev->now_us = clock_monotonic_us();
        if (cset_participant_event(&cs->p, ev, &out) == 0)
                run_p(v, &out);
}

static void report(struct vssd *v, const struct cset_failure *f)
{
        struct vcset *cs = v->cluster->set;
        char detail[CSET_DETAIL_MAX + CSET_HOST_MAX + CSET_WRITER_MAX + 128];

        if (!cs->rs)
                return;
        if (f->hr == VSS_S_OK) {
                set_cluster_coordinated(v, cs->rs, VSS_S_OK, NULL);
                return;
        }
        snprintf(detail, sizeof(detail), "cluster set %s failed on host %s%s%s%s: %s", cs->c_set,
                 f->host[0] ? f->host : "?", f->writer[0] ? ", writer '" : "", f->writer,
                 f->writer[0] ? "'" : "", f->detail);
        set_cluster_coordinated(v, cs->rs, f->hr, detail);
}

static void run_c(struct vssd *v, const struct cset_actions *out)
{
        struct vcset *cs = v->cluster->set;

        arm(v, &cs->c_timer, out->next_deadline_us);
        for (size_t i = 0; i < out->n; i++) {
                const struct cset_action *a = &out->a[i];

                log_debug("[cluster] coordinator %s: %s %s", cs->c_set, cset_action_name(a->type), a->failure.detail);
                switch (a->type) {
                case CSET_ACT_REPORT:
                        report(v, &a->failure);
                        break;
                case CSET_ACT_WRITE_COMMIT: {
                        uint64_t ms = debug_ms_from_env("VSSD_DEBUG_CLUSTER_COMMIT_DELAY_MS");

                        if (ms == 0) {
                                queue_simple(v, VC_JOB_WRITE, true, cs->c_set, a);
                                break;
                        }
                        /* Every host is frozen and waits: tests kill or cut hosts now. Logged
                         * before the wait, as debug_sleep_from_env does. */
                        log_warn("VSSD_DEBUG_CLUSTER_COMMIT_DELAY_MS: test hook, holding the commit decision of "
                                 "set %s for %llu ms", cs->c_set, (unsigned long long)ms);
                        cs->c_held = *a;
                        timer_arm(v, &cs->c_hold_timer, clock_monotonic_us() + ms * USEC_PER_MSEC);
                        break;
                }
                case CSET_ACT_FORGET:
                        cs->c_active = false;
                        timer_cancel(v, &cs->c_timer);
                        timer_cancel(v, &cs->c_hold_timer);
                        queue_simple(v, VC_JOB_FORGET, true, cs->c_set, NULL);
                        return;
                default:
                        queue_simple(v, VC_JOB_WRITE, true, cs->c_set, a);
                        break;
                }
        }
}

static void feed_c(struct vssd *v, struct cset_event *ev)
{
        struct vcset *cs = v->cluster->set;
        struct cset_actions out;

        if (!cs->c_active)
                return;
        ev->now_us = clock_monotonic_us();
        if (cset_coordinator_event(&cs->c, ev, &out) == 0)
                run_c(v, &out);
}

static void p_tick(struct vssd *v, struct timer *t)
{
        struct cset_event ev = { .type = CSET_EV_TICK };

        (void)t;
        feed_p(v, &ev);
}

static void c_tick(struct vssd *v, struct timer *t)
{
        struct cset_event ev = { .type = CSET_EV_TICK };

        (void)t;
        feed_c(v, &ev);
}

static void c_hold_done(struct vssd *v, struct timer *t)
{
        struct vcset *cs = v->cluster->set;

        (void)t;
        if (cs->c_active)
                queue_simple(v, VC_JOB_WRITE, true, cs->c_set, &cs->c_held);
}

static void timing_from_spec(const struct vcluster *k, json_t *spec, struct cset_timing *t)
{
        json_t *j = json_object_get(spec, "timing");
        json_int_t x;

        *t = k->cfg.timing;
        if (json_get_int(j, "hold_ms", &x) && x > 0 && x < UINT32_MAX)
                cset_timing_set_hold(t, (uint32_t)x);
        if (json_get_int(j, "prepare_ms", &x) && x > 0 && x < UINT32_MAX)
                t->prepare_ms = (uint32_t)x;
        if (json_get_int(j, "commit_budget_ms", &x) && x > 0 && x < UINT32_MAX)
                t->commit_budget_ms = (uint32_t)x;
        if (json_get_int(j, "retry_ms", &x) && x > 0 && x < UINT32_MAX)
                t->retry_ms = (uint32_t)x;
        if (json_get_int(j, "unreachable_ms", &x) && x > 0 && x < UINT32_MAX)
                t->unreachable_ms = (uint32_t)x;
        if (cset_timing_check(t) < 0)
                *t = k->cfg.timing;
}

static void spec_seen(struct vssd *v, const char *text)
{
        struct vcluster *k = v->cluster;
        struct vcset *cs = k->set;
        json_t *spec = json_loads(text, 0, NULL);
        const char *set_id = json_string_value(json_object_get(spec, "set_id"));
        json_t *mine = json_object_get(json_object_get(spec, "participants"), k->cfg.host);
        struct cset_event ev = { .type = CSET_EV_SET_SEEN };

        if (!set_id || !json_is_array(mine)) {
                json_decref(spec);
                return;
        }
        if (cs->p_active) {
                log_warn("[cluster] set %s names this host while set %s is not over here; ignored", set_id, cs->p_set);
                json_decref(spec);
                return;
        }
        log_info("[cluster] host %s joins cluster set %s (coordinator %s, %zu volumes here)", k->cfg.host, set_id,
                 json_string_value(json_object_get(spec, "coordinator")) ?: "?", json_array_size(mine));
        snprintf(cs->p_set, sizeof(cs->p_set), "%s", set_id);
        cset_participant_init(&cs->p, k->cfg.host);
        cs->p_active = true;
        cs->local = LOCAL_NONE;
        if (cs->ps)
                release_ps(v);          /* a previous set's session still completing: let it go */
        cs->ps = NULL;
        ps_create(v, spec, mine);
        timing_from_spec(k, spec, &ev.timing);
        json_decref(spec);
        feed_p(v, &ev);
}

static void started(struct vssd *v, vss_hresult hr, const char *detail)
{
        struct vcset *cs = v->cluster->set;
        struct cset_actions out;

        if (!cs->rs)
                return;
        if (VSS_FAILED(hr)) {
                set_cluster_coordinated(v, cs->rs, hr, detail);
                return;
        }
        cs->c_lease = true;
        if (cset_coordinator_init(&cs->c, &v->cluster->cfg.timing, cs->c_host_ptrs, cs->c_n_hosts) < 0) {
                set_cluster_coordinated(v, cs->rs, VSS_E_UNEXPECTED, "the cluster set's timing is not coherent");
                return;
        }
        cs->c_active = true;
        if (cset_coordinator_start(&cs->c, clock_monotonic_us(), &out) == 0)
                run_c(v, &out);
}

void vcluster_dispatch(struct vssd *v)
{
        struct vcluster *k = v->cluster;
        struct vc_msg *m;
        uint64_t x;

        if (!k)
                return;
        (void)!read(k->evfd, &x, sizeof(x));
        pthread_mutex_lock(&k->lock);
        m = k->msgs;
        k->msgs = k->msgs_tail = NULL;
        pthread_mutex_unlock(&k->lock);
        while (m) {
                struct vc_msg *next = m->next;

                switch (m->kind) {
                case VC_MSG_EVENT:
                        if (m->host[0])
                                m->ev.host = m->host;
                        if (m->coord)
                                feed_c(v, &m->ev);
                        else
                                feed_p(v, &m->ev);
                        break;
                case VC_MSG_STARTED:
                        started(v, m->hr, m->detail);
                        break;
                case VC_MSG_SPEC:
                        spec_seen(v, m->spec);
                        break;
                }
                free(m->spec);
                free(m);
                m = next;
        }
}

/* ---- what session.c asks ---- */

vss_hresult vcset_add_volume(struct vssd *v, struct session *s, const char *host, const char *volume,
                             vss_id *ret_shadow_id, char *err, size_t errlen)
{
        struct vcluster *k = v->cluster;
        const char *h = host && host[0] ? host : NULL;
        json_t *list, *x;
        size_t i, total = 0;
        const char *name;

        if (!k) {
                snprintf(err, errlen, "this vssd is not part of a cluster (vssd.conf has no [cluster] section): "
                         "cannot take %s:%s", host, volume);
                return VSS_E_NOT_SUPPORTED;
        }
        if (!h)
                h = k->cfg.host;
        if (!cluster_host_name_valid(h)) {
                snprintf(err, errlen, "'%s' is not a host name", h);
                return VSS_E_INVALIDARG;
        }
        if (!volume || volume[0] != '/') {
                snprintf(err, errlen, "volume '%s' of host %s is not an absolute path", volume ?: "", h);
                return VSS_E_INVALIDARG;
        }
        if (s->n_vols > 0) {
                snprintf(err, errlen, "this set already has local volumes: a cluster set takes every volume as "
                         "HOST:VOLUME");
                return VSS_E_BAD_STATE;
        }
        if (!streq(h, k->cfg.host)) {
                const char *state = NULL;

                pthread_mutex_lock(&k->lock);
                json_array_foreach(k->view, i, x)
                        if (streq_ptr(json_string_value(json_object_get(x, "name")), h))
                                state = json_string_value(json_object_get(x, "state"));
                pthread_mutex_unlock(&k->lock);
                if (!state) {
                        snprintf(err, errlen, "host %s is not a member of cluster %s", h, k->cfg.prefix);
                        return VSS_E_OBJECT_NOT_FOUND;
                }
                if (!streq(state, "present")) {
                        snprintf(err, errlen, "host %s is %s (its host record is not in etcd)", h, state);
                        return VSS_E_REMOTE_SERVER_UNAVAILABLE;
                }
        }
        if (!s->cluster_volumes)
                s->cluster_volumes = json_object();
        json_object_foreach(s->cluster_volumes, name, list) {
                if (json_object_size(s->cluster_volumes) >= CSET_MAX_HOSTS && !json_object_get(s->cluster_volumes, h))
                        break;
                json_array_foreach(list, i, x) {
                        total++;
                        if (streq(name, h) && streq_ptr(json_string_value(json_object_get(x, "volume")), volume)) {
                                snprintf(err, errlen, "volume %s:%s is already in the set", h, volume);
                                return VSS_E_OBJECT_ALREADY_EXISTS;
                        }
                }
        }
        if (!json_object_get(s->cluster_volumes, h) && json_object_size(s->cluster_volumes) >= CSET_MAX_HOSTS) {
                snprintf(err, errlen, "a cluster set has at most %d hosts", CSET_MAX_HOSTS);
                return VSS_E_MAXIMUM_NUMBER_OF_VOLUMES_REACHED;
        }
        if (total >= VSS_MAX_VOLUMES_PER_SET) {
                snprintf(err, errlen, "a snapshot set holds at most %d volumes", VSS_MAX_VOLUMES_PER_SET);
                return VSS_E_MAXIMUM_NUMBER_OF_VOLUMES_REACHED;
        }
        list = json_object_get(s->cluster_volumes, h);
        if (!list) {
                list = json_array();
                json_object_set_new(s->cluster_volumes, h, list);
        }
        vss_id_generate(ret_shadow_id);
        json_array_append_new(list, json_pack("{s:s, s:o}", "volume", volume, "shadow_id", json_id(ret_shadow_id)));
        if (!s->cluster_coordinator) {
                /* From now on this host's turn is its participant's, not this session's. */
                s->cluster_coordinator = true;
                if (v->set_owner == s)
                        v->set_owner = NULL;
        }
        return VSS_S_OK;
}

vss_hresult vcset_do(struct vssd *v, struct session *s, char *err, size_t errlen)
{
        struct vcluster *k = v->cluster;
        struct vcset *cs = k->set;
        char idbuf[VSS_ID_STRING_MAX];
        const struct cset_timing *t = &k->cfg.timing;
        struct vc_job *j;
        const char *h;
        json_t *list, *spec;

        if (cs->c_active || (cs->rs && cs->rs != s && cs->c_lease)) {
                snprintf(err, errlen, "this host already coordinates cluster set %s", cs->c_set);
                return VSS_E_SNAPSHOT_SET_IN_PROGRESS;
        }
        j = calloc(1, sizeof(*j));
        if (!j) {
                snprintf(err, errlen, "out of memory");
                return VSS_E_OUTOFMEMORY;
        }
        vss_id_format(&s->set_id, idbuf);
        snprintf(cs->c_set, sizeof(cs->c_set), "%s", idbuf);
        snprintf(j->set_id, sizeof(j->set_id), "%s", idbuf);
        cs->c_n_hosts = 0;
        json_object_foreach(s->cluster_volumes, h, list) {
                snprintf(cs->c_hosts[cs->c_n_hosts], CSET_HOST_MAX, "%s", h);
                snprintf(j->hosts[cs->c_n_hosts], CSET_HOST_MAX, "%s", h);
                cs->c_host_ptrs[cs->c_n_hosts] = cs->c_hosts[cs->c_n_hosts];
                cs->c_n_hosts++;
        }
        j->n_hosts = cs->c_n_hosts;
        spec = json_pack("{s:s, s:s, s:O, s:{s:i, s:i, s:i, s:i, s:i}, s:I, s:i, s:s}", "set_id", idbuf, "coordinator",
                         k->cfg.host, "participants", s->cluster_volumes, "timing", "hold_ms", (int)t->hold_ms,
                         "prepare_ms", (int)t->prepare_ms, "commit_budget_ms", (int)t->commit_budget_ms, "retry_ms",
                         (int)t->retry_ms, "unreachable_ms", (int)t->unreachable_ms, "created_us",
                         (json_int_t)clock_realtime_us(), "context", (int)s->context, "backup_type", s->backup_type);
        j->spec = spec ? json_dumps(spec, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        json_decref(spec);
        if (!j->spec) {
                free(j);
                snprintf(err, errlen, "out of memory");
                return VSS_E_OUTOFMEMORY;
        }
        j->kind = VC_JOB_START;
        j->coord = true;
        cs->rs = s;
        cs->c_lease = false;
        log_info("[cluster] coordinating cluster set %s over %zu hosts", idbuf, cs->c_n_hosts);
        set_cluster_coordinate(v, s);
        queue_job(v, j);
        return VSS_S_OK;
}

void vcset_end(struct vssd *v, struct session *s, bool backup_complete)
{
        struct vcset *cs = v->cluster ? v->cluster->set : NULL;
        struct vc_job *j;

        if (!cs || cs->rs != s)
                return;
        if (cs->c_lease) {
                j = calloc(1, sizeof(*j));
                if (j) {
                        j->kind = VC_JOB_END;
                        j->end_put = backup_complete;
                        snprintf(j->set_id, sizeof(j->set_id), "%s", cs->c_set);
                        queue_job(v, j);
                }
                cs->c_lease = false;
        }
        if (!backup_complete)
                cs->rs = NULL;
}

json_t *vcset_remote_shadows(struct vssd *v, const vss_id *set_id)
{
        struct vcluster *k = v->cluster;
        char idbuf[VSS_ID_STRING_MAX];
        json_t *a = json_array(), *h, *sh;
        size_t i, j;

        if (!k)
                return a;
        vss_id_format(set_id, idbuf);
        pthread_mutex_lock(&k->lock);
        json_array_foreach(k->view, i, h) {
                const char *name = json_string_value(json_object_get(h, "name"));

                if (streq_ptr(name, k->cfg.host))
                        continue;
                json_array_foreach(json_object_get(json_object_get(h, "record"), "shadows"), j, sh)
                        if (streq_ptr(json_string_value(json_object_get(sh, "set_id")), idbuf)) {
                                json_t *c = json_deep_copy(sh);

                                json_object_set_new(c, "host", json_string(name));
                                json_object_set_new(c, "originating_machine", json_string(name));
                                json_object_set_new(c, "service_machine", json_string(name));
                                json_array_append_new(a, c);
                        }
        }
        pthread_mutex_unlock(&k->lock);
        return a;
}

void vcset_session_gone(struct vssd *v, struct session *s)
{
        if (s->cluster_coordinator)
                vcset_end(v, s, false);
}

int vcset_init(struct vssd *v)
{
        struct vcluster *k = v->cluster;
        struct vcset *cs = calloc(1, sizeof(*cs));
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &k->evfd };

        if (!cs)
                return -ENOMEM;
        cs->ops = session_set_ops;
        cs->ops.call_done = ps_call_done;
        cs->ops.released = ps_released;
        cs->p_timer.cb = p_tick;
        cs->c_timer.cb = c_tick;
        cs->c_hold_timer.cb = c_hold_done;
        k->set = cs;
        k->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (k->evfd < 0 || epoll_ctl(v->epfd, EPOLL_CTL_ADD, k->evfd, &ev) < 0)
                return -errno;
        return 0;
}

void vcset_free(struct vssd *v)
{
        struct vcluster *k = v->cluster;
        struct vcset *cs = k->set;

        while (k->msgs) {
                struct vc_msg *m = k->msgs;

                k->msgs = m->next;
                free(m->spec);
                free(m);
        }
        while (k->jobs) {
                struct vc_job *j = k->jobs;

                k->jobs = j->next;
                free(j->spec);
                free(j);
        }
        k->set = NULL;
        if (cs) {
                timer_cancel(v, &cs->p_timer);
                timer_cancel(v, &cs->c_timer);
                timer_cancel(v, &cs->c_hold_timer);
                if (cs->ps) {
                        /* vssd stops: the local part aborts like a requester's set would. */
                        struct session *s = cs->ps;

                        cs->ps = NULL;
                        s->ops = &session_set_ops;
                        set_release(v, s);
                }
        }
        free(cs);
        if (k->evfd >= 0)
                close(k->evfd);
        k->evfd = -1;
}
