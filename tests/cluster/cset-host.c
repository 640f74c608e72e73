/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cset-host: one host's side of a cluster snapshot set over real etcd, with
 * the real state machines (src/cluster/cset.c), the real transactions
 * (cset-store.c) and the real client (etcd.c), and local work that only takes
 * time (or vetoes): what vssd will do, minus writers and providers.  The
 * cluster tests run one per network namespace and kill, stop and cut them.
 *
 *   cset-host --endpoints URLS --host NAME --set ID --hosts A,B,C [--coordinator]
 *             [--hold-ms N] [--prepare-ms N] [--call-timeout-ms N] [--set-lease-ttl N]
 *             [--prepare-delay-ms N] [--freeze-delay-ms N] [--commit-delay-ms N]
 *             [--veto-prepare HRESULT] [--veto-freeze HRESULT] [--limit-ms N]
 *
 * It polls the set's keys every 50 ms (no watch: the protocol must not need one).
 * stdout, one line each, "T" being milliseconds on this host's monotonic clock:
 *   frozen T | thawed T frozen_ms=N | snapshot T | deleted | decision commit|abort ...
 *   result 0xHRESULT NAME host=H writer=W: detail        (the coordinator's report)
 *   over                                                  (the participant is done)
 *   error 0xHRESULT NAME: detail                          (the set could not start)
 * Exit status: 0 when the participant (and the coordinator) ran to the end; 16 when
 * another set holds the lock (0x80042316); 2 when etcd failed the start; 3 when
 * --limit-ms passed first.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "basic/time-util.h"
#include "cluster/cset-store.h"
#include "cluster/cset.h"
#include "cluster/etcd.h"

#define POLL_US (50 * USEC_PER_MSEC)

struct local_work {
        bool pending;
        uint64_t at;
        struct cset_event ev;
};

static struct {
        struct etcd_client *etcd;
        struct cset_store st;
        struct cset_participant p;
        struct cset_coordinator c;
        bool coordinator, set_seen, frozen;
        uint64_t frozen_at, p_deadline, c_deadline;
        int64_t lease;
        uint64_t call_timeout_us, next_keepalive, lease_ttl_s;
        struct cset_timing timing;
        uint64_t prepare_delay, freeze_delay, commit_delay;
        vss_hresult veto_prepare, veto_freeze;
        struct local_work work;
        bool reported, report_ok;
        const char *hosts[CSET_MAX_HOSTS];
        size_t n_hosts;
} g;

static uint64_t now_ms(void)
{
        return clock_monotonic_us() / 1000;
}

static void say(const char *fmt, ...) _printf_(1, 2);
static void say(const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        putchar('\n');
        fflush(stdout);
}

static void feed_p(const struct cset_event *ev);
static void feed_c(const struct cset_event *ev);

static void thaw(void)
{
        if (!g.frozen)
                return;
        g.frozen = false;
        say("thawed %" PRIu64 " frozen_ms=%" PRIu64, now_ms(), now_ms() - g.frozen_at);
}

static void do_write(bool coord, const struct cset_action *a)
{
        struct etcd_txn *t = NULL;
        struct etcd_txn_result res;
        struct cset_event ev;
        int r;

        r = cset_store_txn(&g.st, a, &t);
        if (r < 0) {
                fprintf(stderr, "cset-host: txn for %s: %s\n", cset_action_name(a->type), strerror(-r));
                exit(1);
        }
        r = etcd_txn_commit(g.etcd, t, clock_monotonic_us() + g.call_timeout_us, &res);
        etcd_txn_free(t);
        if (r < 0) {
                ev = (struct cset_event){ .type = CSET_EV_ETCD_UNREACHABLE };
                snprintf(ev.failure.detail, sizeof(ev.failure.detail), "%s", etcd_client_error(g.etcd));
                fprintf(stderr, "cset-host: %s: %s\n", cset_action_name(a->type), etcd_client_error(g.etcd));
        } else {
                r = cset_store_result(&g.st, a, &res, &ev);
                etcd_txn_result_release(&res);
                if (r <= 0)
                        return;
        }
        if (coord)
                feed_c(&ev);
        else
                feed_p(&ev);
}

static void run(bool coord, const struct cset_actions *out)
{
        for (size_t i = 0; i < out->n; i++) {
                const struct cset_action *a = &out->a[i];

                fprintf(stderr, "cset-host: %s -> %s %s\n", coord ? "coordinator" : "participant",
                        cset_action_name(a->type), a->failure.detail);
                switch (a->type) {
                case CSET_ACT_PREPARE_LOCAL:
                        g.work = (struct local_work){ .pending = true, .at = clock_monotonic_us() + g.prepare_delay,
                                                      .ev = { .type = CSET_EV_LOCAL_PREPARED } };
                        g.work.ev.failure.hr = g.veto_prepare;
                        if (g.veto_prepare)
                                snprintf(g.work.ev.failure.writer, CSET_WRITER_MAX, "Test Writer");
                        break;
                case CSET_ACT_FREEZE_LOCAL:
                        g.frozen = true;
                        g.frozen_at = now_ms();
                        say("frozen %" PRIu64, g.frozen_at);
                        g.work = (struct local_work){ .pending = true, .at = clock_monotonic_us() + g.freeze_delay,
                                                      .ev = { .type = CSET_EV_LOCAL_FROZEN } };
                        g.work.ev.failure.hr = g.veto_freeze;
                        if (g.veto_freeze)
                                snprintf(g.work.ev.failure.writer, CSET_WRITER_MAX, "Test Writer");
                        break;
                case CSET_ACT_COMMIT_LOCAL:
                        say("snapshot %" PRIu64, now_ms());
                        g.work = (struct local_work){ .pending = true, .at = clock_monotonic_us() + g.commit_delay,
                                                      .ev = { .type = CSET_EV_LOCAL_COMMITTED } };
                        break;
                case CSET_ACT_THAW_ABORT_LOCAL:
                case CSET_ACT_ABORT_LOCAL:
                        g.work.pending = false;
                        thaw();
                        break;
                case CSET_ACT_DELETE_SHADOWS:
                        say("deleted");
                        break;
                case CSET_ACT_BACKUP_COMPLETE:
                case CSET_ACT_BACKUP_SHUTDOWN:
                        say("%s", cset_action_name(a->type));
                        break;
                case CSET_ACT_FORGET:
                        if (!coord)
                                say("over");
                        break;
                case CSET_ACT_REPORT:
                        say("result 0x%08X %s host=%s writer=%s: %s", (uint32_t)a->failure.hr,
                            vss_hresult_name(a->failure.hr) ?: "S_OK", a->failure.host, a->failure.writer,
                            a->failure.detail);
                        g.reported = true;
                        g.report_ok = a->failure.hr == VSS_S_OK;
                        break;
                default:
                        do_write(coord, a);
                        break;
                }
        }
        if (coord)
                g.c_deadline = out->next_deadline_us;
        else
                g.p_deadline = out->next_deadline_us;
}

static void feed_p(const struct cset_event *ev0)
{
        struct cset_event ev = *ev0;
        struct cset_actions out;

        ev.now_us = clock_monotonic_us();
        if (ev.type == CSET_EV_LOCAL_COMMITTED)
                thaw();         /* COMMIT_LOCAL thaws once the snapshot is made */
        if (cset_participant_event(&g.p, &ev, &out) == 0)
                run(false, &out);
}

static void feed_c(const struct cset_event *ev0)
{
        struct cset_event ev = *ev0;
        struct cset_actions out;

        if (!g.coordinator || g.c.state == CSET_C_OVER)
                return;
        ev.now_us = clock_monotonic_us();
        if (cset_coordinator_event(&g.c, &ev, &out) == 0)
                run(true, &out);
}

static void poll_emit(const struct cset_event *ev, bool to_coord, bool to_part, void *userdata)
{
        (void)userdata;
        if (to_coord)
                feed_c(ev);
        /* Before the spec is seen, a missing coordinator key means nothing yet. */
        if (to_part && (g.set_seen || ev->type != CSET_EV_COORDINATOR_GONE))
                feed_p(ev);
}

/* One poll of the set's keys: every state the machines may not have seen yet. */
static void poll_set(void)
{
        char prefix[CSET_KEY_MAX], key[CSET_KEY_MAX];
        struct etcd_range_result r;
        struct cset_event ev;
        int rc;

        cset_store_key(&g.st, "", NULL, prefix, sizeof(prefix));
        rc = etcd_get(g.etcd, prefix, true, clock_monotonic_us() + g.call_timeout_us, &r);
        if (rc < 0) {
                ev = (struct cset_event){ .type = CSET_EV_ETCD_UNREACHABLE };
                snprintf(ev.failure.detail, sizeof(ev.failure.detail), "%s", etcd_client_error(g.etcd));
                feed_p(&ev);
                feed_c(&ev);
                return;
        }
        ev = (struct cset_event){ .type = CSET_EV_ETCD_OK };
        feed_p(&ev);
        cset_store_key(&g.st, "spec", NULL, key, sizeof(key));
        for (size_t i = 0; i < r.n_kvs && !g.set_seen; i++)
                if (strcmp((const char *)r.kvs[i].key, key) == 0) {
                        g.set_seen = true;
                        ev = (struct cset_event){ .type = CSET_EV_SET_SEEN, .timing = g.timing };
                        feed_p(&ev);
                }
        cset_store_poll_events(&g.st, &r, poll_emit, NULL);
        etcd_range_result_release(&r);
}

static const char *arg(int argc, char **argv, const char *name, const char *dflt)
{
        for (int i = 1; i + 1 < argc; i++)
                if (strcmp(argv[i], name) == 0)
                        return argv[i + 1];
        return dflt;
}

static bool has(int argc, char **argv, const char *name)
{
        for (int i = 1; i < argc; i++)
                if (strcmp(argv[i], name) == 0)
                        return true;
        return false;
}

static vss_hresult hr_arg(const char *s)
{
        const struct vss_hresult_info *i = s ? vss_hresult_parse(s) : NULL;

        return i ? i->value : VSS_S_OK;
}

static void sleep_until(uint64_t t)
{
        uint64_t now = clock_monotonic_us();
        struct timespec ts;

        if (t <= now)
                return;
        ts = (struct timespec){ .tv_sec = (time_t)((t - now) / USEC_PER_SEC),
                                .tv_nsec = (long)((t - now) % USEC_PER_SEC * 1000) };
        nanosleep(&ts, NULL);
}

static int start_set(void)
{
        struct etcd_txn *t = NULL;
        struct etcd_txn_result res;
        char *holder = NULL, *spec;
        json_t *o, *parts;
        int64_t ttl = 0;
        int r;

        r = etcd_lease_grant(g.etcd, (int64_t)g.lease_ttl_s, clock_monotonic_us() + g.call_timeout_us, &g.lease, &ttl);
        if (r < 0) {
                say("error 0x%08X VSS_E_CLUSTER_ERROR: %s", (uint32_t)VSS_E_CLUSTER_ERROR, etcd_client_error(g.etcd));
                return 2;
        }
        parts = json_object();
        for (size_t i = 0; i < g.n_hosts; i++)
                json_object_set_new(parts, g.hosts[i], json_array());
        o = json_pack("{sssssos{sisisi}}", "set_id", g.st.set_id, "coordinator", g.st.me, "participants", parts,
                      "timing", "hold_ms", (int)g.timing.hold_ms, "prepare_ms", (int)g.timing.prepare_ms,
                      "unreachable_ms", (int)g.timing.unreachable_ms);
        spec = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        r = cset_store_start_txn(&g.st, g.lease, spec, &t);
        free(spec);
        if (r < 0)
                return 1;
        r = etcd_txn_commit(g.etcd, t, clock_monotonic_us() + g.call_timeout_us, &res);
        etcd_txn_free(t);
        if (r < 0) {
                say("error 0x%08X VSS_E_CLUSTER_ERROR: %s", (uint32_t)VSS_E_CLUSTER_ERROR, etcd_client_error(g.etcd));
                return 2;
        }
        r = cset_store_start_result(&g.st, &res, &g.st.lock_revision, &holder);
        etcd_txn_result_release(&res);
        if (r == -EBUSY) {
                say("error 0x80042316 VSS_E_SNAPSHOT_SET_IN_PROGRESS: another cluster set holds the lock: %s", holder);
                free(holder);
                etcd_lease_revoke(g.etcd, g.lease, clock_monotonic_us() + g.call_timeout_us);
                return 16;
        }
        if (r < 0)
                return 1;
        g.next_keepalive = clock_monotonic_us() + g.lease_ttl_s * USEC_PER_SEC / 3;
        return 0;
}

/* The requester's end: BackupComplete (T11), then the session key goes with the lease. */
static void end_session(void)
{
        char key[CSET_KEY_MAX];
        uint64_t d = clock_monotonic_us() + g.call_timeout_us;

        cset_store_key(&g.st, "end", NULL, key, sizeof(key));
        etcd_put(g.etcd, key, "{\"backup_succeeded\":true}", 25, 0, d, NULL);
        etcd_lease_revoke(g.etcd, g.lease, clock_monotonic_us() + g.call_timeout_us);
        g.lease = 0;
}

int main(int argc, char **argv)
{
        const char *endpoints = arg(argc, argv, "--endpoints", getenv("ETCD_ENDPOINTS"));
        const char *host = arg(argc, argv, "--host", NULL), *set = arg(argc, argv, "--set", NULL);
        char *hostlist = strdup(arg(argc, argv, "--hosts", "") ?: "");
        uint64_t limit;
        int r;

        if (!endpoints || !host || !set || !hostlist[0]) {
                fprintf(stderr, "usage: cset-host --endpoints URLS --host NAME --set ID --hosts A,B,C ...\n");
                return 1;
        }
        for (char *save = NULL, *tok = strtok_r(hostlist, ",", &save); tok && g.n_hosts < CSET_MAX_HOSTS;
             tok = strtok_r(NULL, ",", &save))
                g.hosts[g.n_hosts++] = tok;
        if (etcd_client_new(endpoints, &g.etcd) < 0) {
                fprintf(stderr, "cset-host: bad endpoints\n");
                return 1;
        }
        cset_timing_default(&g.timing);
        cset_timing_set_hold(&g.timing, (uint32_t)strtol(arg(argc, argv, "--hold-ms", "10000"), NULL, 10));
        g.timing.prepare_ms = (uint32_t)strtol(arg(argc, argv, "--prepare-ms", "20000"), NULL, 10);
        g.call_timeout_us = (uint64_t)strtol(arg(argc, argv, "--call-timeout-ms", "1000"), NULL, 10) * USEC_PER_MSEC;
        g.lease_ttl_s = (uint64_t)strtol(arg(argc, argv, "--set-lease-ttl", "3"), NULL, 10);
        g.prepare_delay = (uint64_t)strtol(arg(argc, argv, "--prepare-delay-ms", "20"), NULL, 10) * USEC_PER_MSEC;
        g.freeze_delay = (uint64_t)strtol(arg(argc, argv, "--freeze-delay-ms", "20"), NULL, 10) * USEC_PER_MSEC;
        g.commit_delay = (uint64_t)strtol(arg(argc, argv, "--commit-delay-ms", "5"), NULL, 10) * USEC_PER_MSEC;
        g.veto_prepare = hr_arg(arg(argc, argv, "--veto-prepare", NULL));
        g.veto_freeze = hr_arg(arg(argc, argv, "--veto-freeze", NULL));
        limit = clock_monotonic_us() + (uint64_t)strtol(arg(argc, argv, "--limit-ms", "60000"), NULL, 10) * USEC_PER_MSEC;
        g.coordinator = has(argc, argv, "--coordinator");
        if (cset_timing_check(&g.timing) < 0) {
                fprintf(stderr, "cset-host: bad timing\n");
                return 1;
        }
        g.st = (struct cset_store){ .hosts = g.hosts, .n_hosts = g.n_hosts };
        snprintf(g.st.prefix, sizeof(g.st.prefix), "%s", arg(argc, argv, "--prefix", "/openvss"));
        snprintf(g.st.set_id, sizeof(g.st.set_id), "%s", set);
        snprintf(g.st.me, sizeof(g.st.me), "%s", host);
        cset_participant_init(&g.p, host);

        if (g.coordinator) {
                struct cset_actions out;

                r = start_set();
                if (r)
                        return r;
                if (cset_coordinator_init(&g.c, &g.timing, g.hosts, g.n_hosts) < 0)
                        return 1;
                cset_coordinator_start(&g.c, clock_monotonic_us(), &out);
                run(true, &out);
        }
        for (;;) {
                uint64_t now = clock_monotonic_us(), wake = now + POLL_US;
                bool p_over = g.p.state == CSET_P_OVER;
                bool c_over = !g.coordinator || g.c.state == CSET_C_OVER;

                if (g.coordinator && g.reported && g.lease && (c_over || !g.report_ok)) {
                        /* DoSnapshotSet returned: the requester backs up, then ends. */
                        if (g.report_ok)
                                end_session();
                }
                if (p_over && c_over)
                        break;
                if (now >= limit) {
                        fprintf(stderr, "cset-host: limit reached in %s / %s\n", cset_pstate_name(g.p.state),
                                g.coordinator ? cset_cstate_name(g.c.state) : "-");
                        thaw();
                        return 3;
                }
                if (g.lease && now >= g.next_keepalive) {
                        int64_t ttl;

                        r = etcd_lease_keepalive(g.etcd, g.lease, now + g.call_timeout_us, &ttl);
                        if (r == -ENOENT) {
                                struct cset_event ev = { .type = CSET_EV_COORDINATOR_GONE };

                                feed_c(&ev);
                        }
                        g.next_keepalive = now + g.lease_ttl_s * USEC_PER_SEC / 3;
                }
                if (g.work.pending && now >= g.work.at) {
                        struct cset_event ev = g.work.ev;

                        g.work.pending = false;
                        feed_p(&ev);
                }
                if (g.p_deadline && now >= g.p_deadline) {
                        struct cset_event ev = { .type = CSET_EV_TICK };

                        g.p_deadline = 0;
                        feed_p(&ev);
                }
                if (g.c_deadline && now >= g.c_deadline) {
                        struct cset_event ev = { .type = CSET_EV_TICK };

                        g.c_deadline = 0;
                        feed_c(&ev);
                }
                poll_set();
                if (g.work.pending)
                        wake = MIN(wake, g.work.at);
                if (g.p_deadline)
                        wake = MIN(wake, g.p_deadline);
                if (g.c_deadline)
                        wake = MIN(wake, g.c_deadline);
                sleep_until(wake);
        }
        if (g.lease && g.report_ok)
                end_session();
        else if (g.lease)
                etcd_lease_revoke(g.etcd, g.lease, clock_monotonic_us() + g.call_timeout_us);
        etcd_client_free(g.etcd);
        free(hostlist);
        return 0;
}
