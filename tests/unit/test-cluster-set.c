/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit test of the cluster set state machines (src/cluster/cset.c).
 *
 * Most cases run a discrete-event simulation: three hosts, each with its own
 * participant and its own monotonic clock (offset from the simulation's clock
 * by hours, so no two hosts agree on "now"), the coordinator on host 0, and a
 * store that applies the actions' writes with the guards docs/cluster.md gives
 * their etcd transactions (create-once decision and final, commit only with
 * every frozen ack, ...).  Local work (prepare, freeze, commit) takes
 * configurable time and may fail; hosts learn of changes through a "watch"
 * with a configurable delay (or never) and through polling; a host can be cut
 * off from the store, stopped (SIGSTOP: its events wait, its clock jumps
 * when it resumes), or killed with its coordinator, whose lease then expires.
 *
 * After every scenario the invariants are checked: no host frozen past its
 * hold window (a stopped host thaws the moment it resumes), one decision and
 * one final at most, a complete set only when every host snapshot while all
 * hosts were frozen (the causality rule of issue 15: every freeze began before
 * any snapshot), no shadow copy left of a failed set, exactly one report to
 * the requester, success iff complete, naming the expected HRESULT and host.
 * A few direct tests cover clocks stepping back and bad events.
 */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "basic/macro.h"
#include "cluster/cset.h"

#define NH 3
#define COORD NH                        /* target index of the coordinator */
#define MS 1000ULL
#define S (1000 * MS)
#define NEVER UINT64_MAX
#define QMAX 20000

struct sim_host {
        struct cset_participant p;
        int64_t clock_offset;           /* local = global + offset */
        /* behaviour */
        uint64_t prep_delay, freeze_delay, commit_delay;
        vss_hresult prep_hr, freeze_hr, commit_hr;
        uint64_t notify_delay;          /* watch latency; NEVER: no watch */
        uint64_t poll_every;            /* 0: no polling */
        uint64_t cut_from, cut_until;   /* no store access in [from, until) */
        uint64_t stop_from, stop_until; /* SIGSTOP: no processing in [from, until) */
        uint64_t die_at;                /* kill -9 of this host's vssd (0: never) */
        uint64_t cut_on_frozen_ack;     /* cut off for this long right after its frozen ack lands */
        uint64_t stop_on_frozen_ack;    /* stopped for this long right after its frozen ack lands */
        /* observations */
        bool frozen, ever_frozen, snapshot, deleted, dead, backup_complete, backup_shutdown;
        uint64_t frozen_since, thawed_at, snapshot_at, max_frozen;
        int forgets;
        unsigned local_seq;             /* invalidates local work still scheduled after an abort */
};

enum { ACK_NONE, ACK_OK, ACK_FAIL };

struct store {
        bool set_exists, freeze, session_alive, end;
        int prepared[NH], frozen[NH], done[NH];
        int decision;                   /* 0, 1 commit, 2 abort */
        struct cset_failure dfail;
        int final;                      /* 0, 1 complete, 2 failed */
        struct cset_failure ffail;
        int decision_writes, final_writes;
        bool quorum_lost;
        uint64_t quorum_lost_from;
};

enum qkind { Q_EVENT, Q_SYNC, Q_LOCAL_DONE, Q_EXPIRE_LEASE };

struct qitem {
        uint64_t t;
        int target;
        enum qkind kind;
        unsigned seq;
        struct cset_event ev;
};

struct sim {
        struct sim_host h[NH];
        struct store st;
        struct cset_coordinator c;
        struct cset_timing timing;
        uint64_t coord_notify_delay, coord_poll_every, call_timeout, lease_ttl;
        bool coord_dead;
        int reports;
        struct cset_failure report;
        struct qitem q[QMAX];
        size_t nq;
        uint64_t now;
        uint64_t end_time;
        char log[64 * 1024];
        size_t loglen;
};

static struct sim *sim_new(void)
{
        struct sim *s = calloc(1, sizeof(*s));

        assert_non_null(s);
        cset_timing_default(&s->timing);
        s->coord_notify_delay = 2 * MS;
        s->coord_poll_every = 500 * MS;
        s->call_timeout = 500 * MS;
        s->lease_ttl = 5 * S;
        s->end_time = 200 * S;
        for (int i = 0; i < NH; i++) {
                struct sim_host *h = &s->h[i];
                char name[8];

                snprintf(name, sizeof(name), "host%d", i);
                cset_participant_init(&h->p, name);
                /* Clocks far apart: hours, and one just past boot. */
                h->clock_offset = (int64_t[]){ 3600 * (int64_t)S, 17 * (int64_t)S, 86400 * 3 * (int64_t)S }[i];
                h->prep_delay = 30 * MS;
                h->freeze_delay = 40 * MS;
                h->commit_delay = 10 * MS;
                h->notify_delay = 3 * MS;
                h->poll_every = 500 * MS;
        }
        return s;
}

static void slog(struct sim *s, const char *fmt, ...) _printf_(2, 3);
static void slog(struct sim *s, const char *fmt, ...)
{
        va_list ap;

        if (s->loglen + 256 >= sizeof(s->log))
                return;
        s->loglen += (size_t)snprintf(s->log + s->loglen, sizeof(s->log) - s->loglen, "%8.3f ",
                                      (double)s->now / S);
        va_start(ap, fmt);
        s->loglen += (size_t)vsnprintf(s->log + s->loglen, sizeof(s->log) - s->loglen, fmt, ap);
        va_end(ap);
        s->log[s->loglen++] = '\n';
        s->log[s->loglen] = 0;
}

static void push(struct sim *s, uint64_t t, int target, enum qkind kind, const struct cset_event *ev, unsigned seq)
{
        assert_true(s->nq < QMAX);
        s->q[s->nq] = (struct qitem){ .t = t, .target = target, .kind = kind, .seq = seq };
        if (ev)
                s->q[s->nq].ev = *ev;
        s->nq++;
}

static bool pop(struct sim *s, struct qitem *ret)
{
        size_t best = SIZE_MAX;

        for (size_t i = 0; i < s->nq; i++)
                if (best == SIZE_MAX || s->q[i].t < s->q[best].t)
                        best = i;
        if (best == SIZE_MAX)
                return false;
        *ret = s->q[best];
        s->q[best] = s->q[--s->nq];
        return true;
}

static bool host_cut(struct sim *s, int i, uint64_t t)
{
        if (i == COORD)
                i = 0;
        return (t >= s->h[i].cut_from && t < s->h[i].cut_until && s->h[i].cut_until) ||
               (s->st.quorum_lost && t >= s->st.quorum_lost_from);
}

static uint64_t local_now(struct sim *s, int i)
{
        return (uint64_t)((int64_t)s->now + s->h[i == COORD ? 0 : i].clock_offset);
}

static uint64_t to_global(struct sim *s, int i, uint64_t local)
{
        return (uint64_t)((int64_t)local - s->h[i == COORD ? 0 : i].clock_offset);
}

static void notify_all(struct sim *s)
{
        for (int i = 0; i < NH; i++)
                if (s->h[i].notify_delay != NEVER)
                        push(s, s->now + s->h[i].notify_delay, i, Q_SYNC, NULL, 0);
        push(s, s->now + s->coord_notify_delay, COORD, Q_SYNC, NULL, 0);
}

static void deliver(struct sim *s, int target, struct cset_event ev);
static void dump(struct sim *s);

#define CHECK(s, cond, ...)                       \
        do {                                      \
                if (!(cond)) {                    \
                        dump(s);                  \
                        fail_msg(__VA_ARGS__);    \
                }                                 \
        } while (0)

static void feed(struct sim *s, int target, enum cset_event_type type)
{
        struct cset_event ev = { .type = type };

        deliver(s, target, ev);
}

static void feed_decision(struct sim *s, int target)
{
        struct cset_event ev = { .type = CSET_EV_DECISION_SEEN, .commit = s->st.decision == 1,
                                 .failure = s->st.dfail };

        deliver(s, target, ev);
}

static void feed_final(struct sim *s, int target)
{
        struct cset_event ev = { .type = CSET_EV_FINAL_SEEN, .complete = s->st.final == 1, .failure = s->st.ffail };

        deliver(s, target, ev);
}

static bool all(const int *v, int want)
{
        for (int i = 0; i < NH; i++)
                if (v[i] != want)
                        return false;
        return true;
}

/* A write action: applied with its txn's guard, or -ETIMEDOUT'd when the host is cut off. */
static void do_write(struct sim *s, int who, const struct cset_action *a)
{
        int me = who == COORD ? 0 : who;
        struct store *st = &s->st;
        int w = a->failure.hr == VSS_S_OK ? ACK_OK : ACK_FAIL;
        bool success = false;

        if (host_cut(s, who, s->now)) {
                struct cset_event ev = { .type = CSET_EV_ETCD_UNREACHABLE };

                snprintf(ev.failure.detail, sizeof(ev.failure.detail), "etcd deadline passed");
                push(s, s->now + s->call_timeout, who, Q_EVENT, &ev, 0);
                return;
        }
        switch (a->type) {
        case CSET_ACT_WRITE_PREPARED:
                if ((success = st->decision == 0))
                        st->prepared[me] = w;
                break;
        case CSET_ACT_WRITE_FROZEN:
                if ((success = st->decision == 0))
                        st->frozen[me] = ACK_OK;
                if (success && s->h[me].cut_on_frozen_ack) {
                        s->h[me].cut_from = s->now + 1;
                        s->h[me].cut_until = s->now + s->h[me].cut_on_frozen_ack;
                        push(s, s->h[me].cut_until, me, Q_SYNC, NULL, 0);
                }
                if (success && s->h[me].stop_on_frozen_ack) {
                        s->h[me].stop_from = s->now + 1;
                        s->h[me].stop_until = s->now + s->h[me].stop_on_frozen_ack;
                        push(s, s->h[me].stop_until, me, Q_SYNC, NULL, 0);
                }
                break;
        case CSET_ACT_WRITE_DONE:
                st->done[me] = w;
                success = true;
                break;
        case CSET_ACT_PROPOSE_ABORT:
                if ((success = st->decision == 0)) {
                        st->decision = 2;
                        st->dfail = a->failure;
                        st->decision_writes++;
                }
                break;
        case CSET_ACT_PROPOSE_FAILED:
                if ((success = st->decision == 1 && st->final == 0)) {
                        st->final = 2;
                        st->ffail = a->failure;
                        st->final_writes++;
                }
                break;
        case CSET_ACT_WRITE_FREEZE:
                if (!st->session_alive) {
                        feed(s, who, CSET_EV_COORDINATOR_GONE);
                        return;
                }
                if ((success = st->decision == 0 && all(st->prepared, ACK_OK)))
                        st->freeze = true;
                break;
        case CSET_ACT_WRITE_COMMIT:
                if (!st->session_alive) {
                        feed(s, who, CSET_EV_COORDINATOR_GONE);
                        return;
                }
                if ((success = st->decision == 0 && all(st->frozen, ACK_OK))) {
                        st->decision = 1;
                        st->decision_writes++;
                }
                break;
        case CSET_ACT_WRITE_COMPLETE:
                if ((success = st->decision == 1 && st->final == 0 && all(st->done, ACK_OK))) {
                        st->final = 1;
                        st->final_writes++;
                }
                break;
        default:
                fail_msg("not a write: %s", cset_action_name(a->type));
        }
        slog(s, "%s %s %s", who == COORD ? "coord" : s->h[who].p.host, cset_action_name(a->type),
             success ? "applied" : "guard failed");
        if (success) {
                struct cset_event ev = { .type = CSET_EV_WRITTEN, .written = a->type };

                deliver(s, who, ev);
        } else if (st->final) {
                feed_final(s, who);
        } else if (st->decision) {
                feed_decision(s, who);
        }
        notify_all(s);
}

static void run_actions(struct sim *s, int who, const struct cset_actions *out)
{
        /* A full array would mean an action was dropped. */
        assert_true(out->n < CSET_ACTIONS_MAX);
        for (size_t k = 0; k < out->n; k++) {
                const struct cset_action *a = &out->a[k];
                struct sim_host *h = who == COORD ? NULL : &s->h[who];
                struct cset_event done = { 0 };

                slog(s, "%s -> %s %s%s", who == COORD ? "coord" : h->p.host, cset_action_name(a->type),
                     a->failure.hr ? vss_hresult_name(a->failure.hr) ?: "?" : "", a->failure.detail);
                switch (a->type) {
                case CSET_ACT_PREPARE_LOCAL:
                        done.type = CSET_EV_LOCAL_PREPARED;
                        done.failure.hr = h->prep_hr;
                        if (h->prep_hr)
                                snprintf(done.failure.writer, sizeof(done.failure.writer), "Writer on %s", h->p.host);
                        push(s, s->now + h->prep_delay, who, Q_LOCAL_DONE, &done, h->local_seq);
                        break;
                case CSET_ACT_FREEZE_LOCAL:
                        assert_false(h->frozen);
                        /* The hold deadline is the host's own: Freeze seen + hold, on its clock. */
                        assert_true(a->deadline_us == local_now(s, who) + s->timing.hold_ms * MS);
                        h->frozen = h->ever_frozen = true;
                        h->frozen_since = s->now;
                        done.type = CSET_EV_LOCAL_FROZEN;
                        done.failure.hr = h->freeze_hr;
                        push(s, s->now + h->freeze_delay, who, Q_LOCAL_DONE, &done, h->local_seq);
                        break;
                case CSET_ACT_COMMIT_LOCAL:
                        assert_true(h->frozen);
                        assert_int_equal(s->st.decision, 1);    /* only on the commit decision (I3) */
                        h->snapshot = true;
                        h->snapshot_at = s->now;
                        done.type = CSET_EV_LOCAL_COMMITTED;
                        done.failure.hr = h->commit_hr;
                        push(s, s->now + h->commit_delay, who, Q_LOCAL_DONE, &done, h->local_seq);
                        break;
                case CSET_ACT_THAW_ABORT_LOCAL:
                case CSET_ACT_ABORT_LOCAL:
                        h->local_seq++;         /* local work in flight is cancelled */
                        if (h->frozen) {
                                h->frozen = false;
                                h->thawed_at = s->now;
                                if (s->now - h->frozen_since > h->max_frozen)
                                        h->max_frozen = s->now - h->frozen_since;
                        }
                        if (a->type == CSET_ACT_THAW_ABORT_LOCAL && h->snapshot && !h->deleted)
                                h->deleted = true;      /* an aborted commit leaves nothing */
                        break;
                case CSET_ACT_DELETE_SHADOWS:
                        h->deleted = true;
                        break;
                case CSET_ACT_BACKUP_COMPLETE:
                        h->backup_complete = true;
                        break;
                case CSET_ACT_BACKUP_SHUTDOWN:
                        h->backup_shutdown = true;
                        break;
                case CSET_ACT_FORGET:
                        if (h)
                                h->forgets++;
                        break;
                case CSET_ACT_REPORT:
                        s->reports++;
                        s->report = a->failure;
                        if (a->failure.hr == VSS_S_OK) {
                                /* The requester backs up, then BackupComplete and End. */
                                s->st.end = true;
                                notify_all(s);
                        }
                        break;
                case CSET_ACT_RELEASE:
                        break;
                default:
                        do_write(s, who, a);
                        break;
                }
        }
        if (out->next_deadline_us) {
                struct cset_event tick = { .type = CSET_EV_TICK };

                push(s, to_global(s, who, out->next_deadline_us), who, Q_EVENT, &tick, 0);
        }
}

static void deliver(struct sim *s, int target, struct cset_event ev)
{
        struct cset_actions out;
        int r;

        if (target == COORD) {
                if (s->coord_dead)
                        return;
                ev.now_us = local_now(s, target);
                r = cset_coordinator_event(&s->c, &ev, &out);
        } else {
                struct sim_host *h = &s->h[target];

                if (h->dead)
                        return;
                if (s->now >= h->stop_from && s->now < h->stop_until) {
                        /* Stopped: the event waits for SIGCONT. */
                        push(s, h->stop_until, target, Q_EVENT, &ev, 0);
                        return;
                }
                if (ev.type == CSET_EV_LOCAL_COMMITTED && h->frozen) {
                        /* COMMIT_LOCAL thaws once the snapshot is committed. */
                        h->frozen = false;
                        h->thawed_at = s->now;
                        if (s->now - h->frozen_since > h->max_frozen)
                                h->max_frozen = s->now - h->frozen_since;
                }
                ev.now_us = local_now(s, target);
                r = cset_participant_event(&h->p, &ev, &out);
        }
        assert_int_equal(r, 0);
        run_actions(s, target, &out);
        if (target != COORD && s->h[target].frozen && s->h[target].p.state == CSET_P_OVER) {
                dump(s);
                fail_msg("%s forgot the set while frozen", s->h[target].p.host);
        }
}

static void sync_host(struct sim *s, int i)
{
        struct store *st = &s->st;

        if (host_cut(s, i, s->now)) {
                struct cset_event ev = { .type = CSET_EV_ETCD_UNREACHABLE };

                snprintf(ev.failure.detail, sizeof(ev.failure.detail), "poll: etcd deadline passed");
                push(s, s->now + s->call_timeout, i, Q_EVENT, &ev, 0);
                return;
        }
        if (i == COORD) {
                for (int k = 0; k < NH; k++) {
                        struct cset_event ev = { .host = s->h[k].p.host };

                        if (st->prepared[k]) {
                                ev.type = CSET_EV_HOST_PREPARED;
                                ev.failure.hr = st->prepared[k] == ACK_OK ? VSS_S_OK : VSS_E_WRITERERROR_RETRYABLE;
                                deliver(s, COORD, ev);
                        }
                        if (st->frozen[k]) {
                                ev.type = CSET_EV_HOST_FROZEN;
                                ev.failure.hr = VSS_S_OK;
                                deliver(s, COORD, ev);
                        }
                        if (st->done[k]) {
                                ev.type = CSET_EV_HOST_DONE;
                                ev.failure.hr = st->done[k] == ACK_OK ? VSS_S_OK : VSS_E_HOLD_WRITES_TIMEOUT;
                                deliver(s, COORD, ev);
                        }
                        if (s->h[k].dead && s->now >= s->h[k].die_at + s->lease_ttl) {
                                ev.type = CSET_EV_HOST_GONE;
                                deliver(s, COORD, ev);
                        }
                }
                if (st->decision)
                        feed_decision(s, COORD);
                if (st->final)
                        feed_final(s, COORD);
                return;
        }
        feed(s, i, CSET_EV_ETCD_OK);
        if (st->set_exists) {
                struct cset_event ev = { .type = CSET_EV_SET_SEEN, .timing = s->timing };

                deliver(s, i, ev);
        }
        if (st->freeze)
                feed(s, i, CSET_EV_FREEZE_SEEN);
        if (st->decision)
                feed_decision(s, i);
        if (st->final)
                feed_final(s, i);
        if (st->end) {
                struct cset_event ev = { .type = CSET_EV_END_SEEN, .succeeded = true };

                deliver(s, i, ev);
        }
        if (st->set_exists && !st->session_alive && !st->end)
                feed(s, i, CSET_EV_COORDINATOR_GONE);
}

static void sim_run(struct sim *s)
{
        const char *hosts[NH] = { s->h[0].p.host, s->h[1].p.host, s->h[2].p.host };
        struct cset_actions out;
        struct qitem it;

        assert_int_equal(cset_coordinator_init(&s->c, &s->timing, hosts, NH), 0);
        /* The lock and the spec are written: the set exists. */
        s->st.set_exists = s->st.session_alive = true;
        assert_int_equal(cset_coordinator_start(&s->c, local_now(s, COORD), &out), 0);
        run_actions(s, COORD, &out);
        notify_all(s);
        for (int i = 0; i < NH; i++) {
                if (s->h[i].poll_every)
                        push(s, s->h[i].poll_every, i, Q_SYNC, NULL, 1);
                if (s->h[i].die_at)
                        push(s, s->h[i].die_at, i, Q_EXPIRE_LEASE, NULL, 0);
                if (s->h[i].stop_until)
                        push(s, s->h[i].stop_until, i, Q_SYNC, NULL, 0);
                if (s->h[i].cut_until)
                        push(s, s->h[i].cut_until, i, Q_SYNC, NULL, 0);
        }
        push(s, s->coord_poll_every, COORD, Q_SYNC, NULL, 1);

        for (unsigned steps = 0; pop(s, &it); steps++) {
                if (it.t > s->end_time)
                        break;
                /* A machine that keeps asking for a deadline it has passed would spin a driver. */
                CHECK(s, steps < 200000, "no progress: %u events by %.3f s", steps, (double)s->now / S);
                s->now = MAX(s->now, it.t);
                switch (it.kind) {
                case Q_EVENT:
                        deliver(s, it.target, it.ev);
                        break;
                case Q_LOCAL_DONE:
                        if (it.seq == s->h[it.target].local_seq)
                                deliver(s, it.target, it.ev);
                        break;
                case Q_SYNC:
                        if (it.target != COORD && s->h[it.target].dead)
                                break;
                        if (it.target != COORD && s->now >= s->h[it.target].stop_from &&
                            s->now < s->h[it.target].stop_until) {
                                push(s, s->h[it.target].stop_until, it.target, Q_SYNC, NULL, it.seq);
                                break;
                        }
                        sync_host(s, it.target);
                        /* Polling continues while the set is not over here. */
                        if (it.seq == 1) {
                                bool over = it.target == COORD ? s->c.state == CSET_C_OVER
                                                               : s->h[it.target].p.state == CSET_P_OVER;
                                uint64_t every = it.target == COORD ? s->coord_poll_every
                                                                    : s->h[it.target].poll_every;

                                if (!over)
                                        push(s, s->now + every, it.target, Q_SYNC, NULL, 1);
                        }
                        break;
                case Q_EXPIRE_LEASE:
                        if (it.seq == 0) {
                                /* kill -9: the host's vssd stops; if it coordinates, the set lease
                                 * expires after its TTL. */
                                struct sim_host *h = &s->h[it.target];

                                slog(s, "%s killed", h->p.host);
                                h->dead = true;
                                if (h->frozen) {
                                        /* Its own watchdog and libvss thaw it (not this module's job). */
                                        h->frozen = false;
                                        h->thawed_at = s->now;
                                }
                                if (it.target == 0) {
                                        s->coord_dead = true;
                                        push(s, s->now + s->lease_ttl, 0, Q_EXPIRE_LEASE, NULL, 1);
                                }
                                push(s, s->now + s->lease_ttl, COORD, Q_SYNC, NULL, 0);
                        } else {
                                slog(s, "set lease expired");
                                s->st.session_alive = false;
                                notify_all(s);
                        }
                        break;
                }
        }
}

static void dump(struct sim *s)
{
        fprintf(stderr, "--- simulation log\n%s--- store: decision=%d final=%d; coordinator %s\n", s->log,
                s->st.decision, s->st.final, cset_cstate_name(s->c.state));
        for (int i = 0; i < NH; i++)
                fprintf(stderr, "%s: %s frozen=%d snapshot=%d deleted=%d max_frozen=%llums\n", s->h[i].p.host,
                        cset_pstate_name(s->h[i].p.state), s->h[i].frozen, s->h[i].snapshot, s->h[i].deleted,
                        (unsigned long long)(s->h[i].max_frozen / MS));
}


/* The invariants every run must keep; expect_hr VSS_S_OK: the set must complete. */
static void check(struct sim *s, vss_hresult expect_hr, const char *expect_host)
{
        uint64_t hold = s->timing.hold_ms * MS;
        uint64_t last_freeze = 0, first_snapshot = NEVER;

        CHECK(s, s->st.decision_writes <= 1 && s->st.final_writes <= 1, "more than one decision or final");
        CHECK(s, s->reports == 1, "%d reports to the requester", s->reports);
        for (int i = 0; i < NH; i++) {
                struct sim_host *h = &s->h[i];
                uint64_t allowed = hold;

                CHECK(s, !h->frozen, "%s still frozen", h->p.host);
                if (h->stop_until > h->stop_from)
                        allowed = MAX(allowed, h->stop_until - h->frozen_since);
                CHECK(s, h->max_frozen <= allowed, "%s frozen %llu ms, hold window %llu ms", h->p.host,
                      (unsigned long long)(h->max_frozen / MS), (unsigned long long)(hold / MS));
                if (!h->dead)
                        CHECK(s, h->p.state == CSET_P_OVER, "%s ends in %s", h->p.host,
                              cset_pstate_name(h->p.state));
                if (h->ever_frozen && h->frozen_since > last_freeze)
                        last_freeze = h->frozen_since;
                if (h->snapshot && h->snapshot_at < first_snapshot)
                        first_snapshot = h->snapshot_at;
        }
        if (expect_hr == VSS_S_OK) {
                CHECK(s, s->st.final == 1, "the set did not complete");
                CHECK(s, s->report.hr == VSS_S_OK, "reported 0x%08X", (uint32_t)s->report.hr);
                for (int i = 0; i < NH; i++) {
                        struct sim_host *h = &s->h[i];

                        CHECK(s, h->snapshot && !h->deleted, "%s has no shadow copy", h->p.host);
                        CHECK(s, h->thawed_at >= h->snapshot_at, "%s thawed before its snapshot", h->p.host);
                        CHECK(s, h->backup_complete, "%s got no BackupComplete", h->p.host);
                }
                /* Causality: every host froze before any host snapshot. */
                CHECK(s, last_freeze < first_snapshot, "a snapshot at %llu before a freeze at %llu",
                      (unsigned long long)first_snapshot, (unsigned long long)last_freeze);
                return;
        }
        CHECK(s, s->st.final != 1, "a set expected to fail completed");
        CHECK(s, s->report.hr == expect_hr, "reported 0x%08X (%s: %s), expected 0x%08X", (uint32_t)s->report.hr,
              s->report.host, s->report.detail, (uint32_t)expect_hr);
        if (expect_host)
                CHECK(s, strcmp(s->report.host, expect_host) == 0, "report names '%s', expected '%s' (%s)",
                      s->report.host, expect_host, s->report.detail);
        for (int i = 0; i < NH; i++)
                CHECK(s, !s->h[i].snapshot || s->h[i].deleted || s->h[i].dead, "%s keeps a shadow of a failed set",
                      s->h[i].p.host);
}

/* ---- scenarios ---- */

static void test_three_hosts_complete(void **state)
{
        struct sim *s = sim_new();

        sim_run(s);
        check(s, VSS_S_OK, NULL);
        /* With millisecond notification the freeze windows stay far inside the hold window. */
        for (int i = 0; i < NH; i++)
                CHECK(s, s->h[i].max_frozen < 200 * MS, "%s frozen %llu ms", s->h[i].p.host,
                      (unsigned long long)(s->h[i].max_frozen / MS));
        free(s);
}

static void test_veto_at_prepare(void **state)
{
        struct sim *s = sim_new();

        s->h[2].prep_hr = VSS_E_WRITERERROR_RETRYABLE;
        sim_run(s);
        check(s, VSS_E_WRITERERROR_RETRYABLE, "host2");
        CHECK(s, strcmp(s->report.writer, "Writer on host2") == 0, "writer not named: '%s'", s->report.writer);
        for (int i = 0; i < NH; i++)
                CHECK(s, !s->h[i].ever_frozen, "%s froze in a vetoed set", s->h[i].p.host);
        free(s);
}

static void test_veto_at_freeze(void **state)
{
        struct sim *s = sim_new();

        s->h[1].freeze_hr = VSS_E_WRITERERROR_TIMEOUT;
        sim_run(s);
        check(s, VSS_E_WRITERERROR_TIMEOUT, "host1");
        free(s);
}

static void test_coordinator_killed_during_freeze(void **state)
{
        struct sim *s = sim_new();

        /* Host 0 (the coordinator) dies after the freeze write, while hosts freeze.  Its
         * report is lost with it: the requester's connection is gone too. */
        s->h[0].die_at = 50 * MS;
        s->h[1].freeze_delay = 200 * MS;
        s->h[2].freeze_delay = 200 * MS;
        sim_run(s);
        CHECK(s, s->st.decision == 2, "decision %d, expected abort", s->st.decision);
        CHECK(s, s->st.dfail.hr == VSS_E_REMOTE_SERVER_UNAVAILABLE || s->st.dfail.hr == VSS_E_HOLD_WRITES_TIMEOUT,
              "abort names 0x%08X", (uint32_t)s->st.dfail.hr);
        for (int i = 1; i < NH; i++) {
                CHECK(s, s->h[i].ever_frozen && !s->h[i].frozen, "%s not thawed", s->h[i].p.host);
                CHECK(s, s->h[i].max_frozen <= s->timing.hold_ms * MS, "%s frozen past the hold window",
                      s->h[i].p.host);
                CHECK(s, !s->h[i].snapshot, "%s snapshot without a coordinator", s->h[i].p.host);
                CHECK(s, s->h[i].p.state == CSET_P_OVER, "%s ends in %s", s->h[i].p.host,
                      cset_pstate_name(s->h[i].p.state));
        }
        free(s);
}

static void test_coordinator_lease_shorter_and_longer_than_hold(void **state)
{
        for (int k = 0; k < 2; k++) {
                struct sim *s = sim_new();

                s->lease_ttl = k == 0 ? 2 * S : 30 * S;
                s->h[0].die_at = 50 * MS;
                s->h[1].freeze_delay = 100 * MS;
                sim_run(s);
                CHECK(s, s->st.decision == 2, "lease %llu s: decision %d", (unsigned long long)(s->lease_ttl / S),
                      s->st.decision);
                for (int i = 1; i < NH; i++)
                        CHECK(s, !s->h[i].frozen && s->h[i].max_frozen <= s->timing.hold_ms * MS &&
                                         s->h[i].p.state == CSET_P_OVER,
                              "lease %llu s: %s", (unsigned long long)(s->lease_ttl / S), s->h[i].p.host);
                free(s);
        }
}

static void test_participant_stopped_before_frozen_ack(void **state)
{
        struct sim *s = sim_new();

        /* SIGSTOP of host 2's vssd between Freeze and its frozen ack, for 30 s. */
        s->h[2].freeze_delay = 100 * MS;
        s->h[2].stop_from = 60 * MS;
        s->h[2].stop_until = 30 * S;
        sim_run(s);
        check(s, VSS_E_CLUSTER_TIMEOUT, "host2");
        free(s);
}

static void test_participant_stopped_after_frozen_ack(void **state)
{
        struct sim *s = sim_new();

        /* Stopped after its frozen ack: the others commit; host 2 resumes past its hold
         * deadline (its clock jumps), thaws at once, takes no snapshot, and the set fails. */
        s->h[2].notify_delay = 50 * MS;
        s->h[2].poll_every = 0;
        s->h[2].stop_on_frozen_ack = 30 * S;
        sim_run(s);
        /* The coordinator's own deadline for the hosts' snapshots passes first. */
        check(s, VSS_E_CLUSTER_TIMEOUT, "host2");
        CHECK(s, s->h[2].thawed_at == s->h[2].stop_until, "host 2 did not thaw the moment it resumed");
        CHECK(s, !s->h[2].snapshot, "host 2 snapshot after its hold window");
        CHECK(s, s->h[0].deleted && s->h[1].deleted, "the other hosts kept their shadows");
        free(s);
}

static void test_host_cut_during_freeze_before_ack(void **state)
{
        struct sim *s = sim_new();

        s->h[1].freeze_delay = 100 * MS;
        s->h[1].cut_from = 60 * MS;
        s->h[1].cut_until = 20 * S;
        sim_run(s);
        check(s, VSS_E_CLUSTER_TIMEOUT, "host1");
        /* It thawed once etcd had failed it for the unreachable grace (3 s), not at its cutoff (8 s). */
        CHECK(s, s->h[1].max_frozen <= (s->timing.unreachable_ms + 1000) * MS &&
                         s->h[1].max_frozen >= s->timing.unreachable_ms * MS,
              "host 1 frozen %llu ms", (unsigned long long)(s->h[1].max_frozen / MS));
        free(s);
}

static void test_host_cut_after_frozen_ack(void **state)
{
        struct sim *s = sim_new();

        /* Cut after its ack, before it sees the commit: the others commit, host 1 thaws
         * without a snapshot and, once back, fails the set; every shadow copy goes. */
        s->h[1].notify_delay = 40 * MS;
        s->h[1].cut_on_frozen_ack = 5 * S;
        sim_run(s);
        check(s, VSS_E_CLUSTER_ERROR, "host1");
        CHECK(s, !s->h[1].snapshot, "host 1 snapshot while cut off");
        CHECK(s, s->h[1].max_frozen <= s->timing.hold_ms * MS, "host 1 frozen past the hold window");
        free(s);
}

static void test_quorum_lost_freezes_nothing(void **state)
{
        struct sim *s = sim_new();

        /* etcd loses quorum right after the set's start: no prepared ack lands, so no freeze
         * can be written (I7); the coordinator gives up at its prepare deadline. */
        s->timing.prepare_ms = 3000;
        s->st.quorum_lost = true;
        s->st.quorum_lost_from = 10 * MS;
        s->end_time = 30 * S;
        sim_run(s);
        for (int i = 0; i < NH; i++)
                CHECK(s, !s->h[i].ever_frozen, "%s froze without quorum", s->h[i].p.host);
        CHECK(s, s->reports == 1 && s->report.hr == VSS_E_CLUSTER_TIMEOUT, "report 0x%08X",
              (uint32_t)s->report.hr);
        CHECK(s, strstr(s->report.detail, "etcd unreachable") != NULL, "report does not say etcd: %s",
              s->report.detail);
        free(s);
}

static void test_watch_never_arrives_polling_completes(void **state)
{
        struct sim *s = sim_new();

        /* No watch on any host: the 500 ms polls carry the set through, well inside the window. */
        for (int i = 0; i < NH; i++) {
                s->h[i].notify_delay = NEVER;
                s->h[i].poll_every = 250 * MS;
        }
        sim_run(s);
        check(s, VSS_S_OK, NULL);
        free(s);
}

static void test_host_learns_nothing(void **state)
{
        struct sim *s = sim_new();

        /* Host 2 can write but never hears anything after Freeze (no watch, no poll) after the
         * first sync: it thaws at its cutoff; its abort loses to the commit; the set fails. */
        s->h[2].notify_delay = NEVER;
        s->h[2].poll_every = 0;
        /* One sync at start delivers the set and, 200 ms later, Freeze. */
        push(s, 1 * MS, 2, Q_SYNC, NULL, 0);
        push(s, 200 * MS, 2, Q_SYNC, NULL, 0);
        sim_run(s);
        check(s, VSS_E_HOLD_WRITES_TIMEOUT, "host2");
        CHECK(s, s->h[2].max_frozen <= s->timing.hold_ms * MS, "host 2 frozen past the window");
        free(s);
}

static void test_commit_too_slow(void **state)
{
        struct sim *s = sim_new();

        s->h[1].commit_delay = 12 * S;
        sim_run(s);
        check(s, VSS_E_HOLD_WRITES_TIMEOUT, "host1");
        CHECK(s, s->h[1].max_frozen <= s->timing.hold_ms * MS, "host 1 frozen through its commit");
        free(s);
}

/* A leader election (every etcd call failing for 1.5 s) while the hosts are frozen is
 * ridden out: the set completes. */
static void test_etcd_election_while_frozen(void **state)
{
        struct sim *s = sim_new();

        s->st.quorum_lost = false;
        for (int i = 0; i < NH; i++) {
                s->h[i].cut_from = 80 * MS;
                s->h[i].cut_until = 1580 * MS;
                s->h[i].poll_every = 200 * MS;
        }
        s->h[0].freeze_delay = 100 * MS;
        sim_run(s);
        check(s, VSS_S_OK, NULL);
        free(s);
}

static void test_commit_fails(void **state)
{
        struct sim *s = sim_new();

        s->h[2].commit_hr = VSS_E_INSUFFICIENT_STORAGE;
        sim_run(s);
        /* The done ack carries the failure; the sim's store reads it back as a hold timeout. */
        CHECK(s, s->st.final == 2, "final %d", s->st.final);
        CHECK(s, s->report.hr == VSS_E_INSUFFICIENT_STORAGE || s->report.hr == VSS_E_HOLD_WRITES_TIMEOUT,
              "report 0x%08X", (uint32_t)s->report.hr);
        check(s, s->report.hr, "host2");
        free(s);
}

static void test_commit_seen_late(void **state)
{
        struct sim *s = sim_new();

        /* Host 1's watch is slow and it does not poll: it hears of the commit 9 s later, past its
         * cutoff (hold 10 s - budget 2 s). */
        s->h[1].notify_delay = 9 * S;
        s->h[1].poll_every = 0;
        s->timing.prepare_ms = 30000;
        sim_run(s);
        check(s, VSS_E_HOLD_WRITES_TIMEOUT, "host1");
        free(s);
}

static void test_coordinator_killed_after_commit(void **state)
{
        struct sim *s = sim_new();

        /* The hosts commit, then the coordinator dies before writing complete: its lease
         * expires and the hosts fail the set and delete their shadows. */
        s->h[0].commit_delay = 5 * S;
        s->h[0].die_at = 1 * S;
        sim_run(s);
        CHECK(s, s->st.final == 2, "final %d", s->st.final);
        for (int i = 1; i < NH; i++)
                CHECK(s, s->h[i].snapshot && s->h[i].deleted && s->h[i].p.state == CSET_P_OVER,
                      "%s kept its shadow or did not finish", s->h[i].p.host);
        free(s);
}

static void test_host_gone_during_prepare(void **state)
{
        struct sim *s = sim_new();

        s->h[2].prep_delay = 20 * S;
        s->h[2].die_at = 10 * MS;
        s->timing.prepare_ms = 30000;
        sim_run(s);
        check(s, VSS_E_REMOTE_SERVER_UNAVAILABLE, "host2");
        free(s);
}

static void test_clock_offsets_do_not_matter(void **state)
{
        /* Wildly different (and near-zero, and near-wrap) clocks give the same outcome. */
        static const int64_t offsets[][NH] = {
                { 0, 1, 2 },
                { 1000000LL * 3600 * 24 * 365, 5, 123456789 },
                { (int64_t)(UINT64_MAX / 4), (int64_t)(UINT64_MAX / 8), 42 },
        };

        for (size_t k = 0; k < sizeof(offsets) / sizeof(offsets[0]); k++) {
                struct sim *s = sim_new();

                for (int i = 0; i < NH; i++)
                        s->h[i].clock_offset = offsets[k][i];
                sim_run(s);
                check(s, VSS_S_OK, NULL);
                free(s);
        }
}

static uint64_t rnd(uint32_t *seed, uint64_t n)
{
        *seed = *seed * 1103515245u + 12345u;
        return (uint64_t)((*seed >> 8) % n);
}

/* Randomised: every combination of delays, faults and stops keeps the invariants. */
static void test_random_faults(void **state)
{
        uint32_t seed = 12345;
        int complete = 0, failed = 0, aborted = 0;

        for (int run = 0; run < 400; run++) {
                struct sim *s = sim_new();
#define RND(n) rnd(&seed, n)
                for (int i = 0; i < NH; i++) {
                        struct sim_host *h = &s->h[i];

                        h->prep_delay = RND(300) * MS;
                        h->freeze_delay = RND(RND(4) ? 300 : 9000) * MS;
                        h->commit_delay = RND(RND(5) ? 100 : 12000) * MS;
                        h->notify_delay = RND(6) ? RND(100) * MS : NEVER;
                        h->poll_every = RND(4) ? (50 + RND(1000)) * MS : 0;
                        if (!RND(8))
                                h->prep_hr = VSS_E_WRITERERROR_RETRYABLE;
                        if (!RND(10))
                                h->freeze_hr = VSS_E_WRITERERROR_NONRETRYABLE;
                        if (!RND(12))
                                h->commit_hr = VSS_E_INSUFFICIENT_STORAGE;
                        if (!RND(5)) {
                                h->cut_from = RND(2000) * MS;
                                h->cut_until = h->cut_from + RND(20000) * MS + 1;
                        }
                        if (!RND(6)) {
                                h->stop_from = RND(2000) * MS;
                                h->stop_until = h->stop_from + RND(20000) * MS + 1;
                        }
                        h->clock_offset = (int64_t)RND(1000000) * (int64_t)S;
                }
                if (!RND(8))
                        s->h[0].die_at = RND(3000) * MS + 1;
                s->timing.prepare_ms = 5000;
                s->lease_ttl = (1 + RND(10)) * S;
                s->end_time = 300 * S;
                sim_run(s);

                /* The generic invariants (no expectations about which failure). */
                CHECK(s, s->st.decision_writes <= 1 && s->st.final_writes <= 1, "run %d: two outcomes", run);
                if (!s->coord_dead)
                        CHECK(s, s->reports == 1, "run %d: %d reports", run, s->reports);
                if (s->reports && s->report.hr == VSS_S_OK)
                        CHECK(s, s->st.final == 1, "run %d: success reported for an incomplete set", run);
                {
                        uint64_t last_freeze = 0, first_snapshot = NEVER;

                        for (int i = 0; i < NH; i++) {
                                struct sim_host *h = &s->h[i];
                                uint64_t allowed = s->timing.hold_ms * MS;

                                if (h->stop_until > h->stop_from)
                                        allowed = MAX(allowed, h->stop_until - h->frozen_since);
                                CHECK(s, !h->frozen, "run %d: %s still frozen", run, h->p.host);
                                CHECK(s, h->max_frozen <= allowed, "run %d: %s frozen %llu ms", run, h->p.host,
                                      (unsigned long long)(h->max_frozen / MS));
                                if (s->st.final == 1)
                                        CHECK(s, h->snapshot && !h->deleted && h->thawed_at >= h->snapshot_at,
                                              "run %d: complete set without %s's snapshot", run, h->p.host);
                                else if (!h->dead && h->p.state == CSET_P_OVER)
                                        CHECK(s, !h->snapshot || h->deleted,
                                              "run %d: %s keeps a shadow of a failed set", run, h->p.host);
                                if (h->ever_frozen && h->frozen_since > last_freeze)
                                        last_freeze = h->frozen_since;
                                if (h->snapshot && h->snapshot_at < first_snapshot)
                                        first_snapshot = h->snapshot_at;
                        }
                        if (s->st.final == 1)
                                CHECK(s, last_freeze < first_snapshot, "run %d: causality broken", run);
                }
                complete += s->st.final == 1;
                failed += s->st.final == 2;
                aborted += s->st.decision == 2;
                free(s);
#undef RND
        }
        fprintf(stderr, "random faults: %d complete, %d failed after commit, %d aborted\n", complete, failed,
                aborted);
        /* Each outcome must come up often enough for its invariants to have been tested. */
        assert_true(complete >= 25 && failed >= 20 && aborted >= 40);
}

/* ---- direct tests ---- */

static void test_clock_steps_back(void **state)
{
        struct cset_participant p;
        struct cset_actions out;
        struct cset_event ev = { .type = CSET_EV_SET_SEEN, .now_us = 1000 * S };
        uint64_t cutoff;

        cset_participant_init(&p, "h");
        cset_timing_default(&ev.timing);
        assert_int_equal(cset_participant_event(&p, &ev, &out), 0);
        ev = (struct cset_event){ .type = CSET_EV_LOCAL_PREPARED, .now_us = 1000 * S + 10 * MS };
        assert_int_equal(cset_participant_event(&p, &ev, &out), 0);
        ev = (struct cset_event){ .type = CSET_EV_FREEZE_SEEN, .now_us = 1000 * S + 20 * MS };
        assert_int_equal(cset_participant_event(&p, &ev, &out), 0);
        assert_int_equal(out.a[0].type, CSET_ACT_FREEZE_LOCAL);
        cutoff = p.commit_cutoff_us;
        assert_true(out.next_deadline_us == cutoff);
        ev = (struct cset_event){ .type = CSET_EV_LOCAL_FROZEN, .now_us = 1000 * S + 30 * MS };
        assert_int_equal(cset_participant_event(&p, &ev, &out), 0);
        assert_int_equal(p.state, CSET_P_FROZEN);

        /* A clock stepped back 15 minutes changes nothing: the deadline stays where it was. */
        ev = (struct cset_event){ .type = CSET_EV_TICK, .now_us = 1000 * S - 900 * S };
        assert_int_equal(cset_participant_event(&p, &ev, &out), 0);
        assert_int_equal(p.state, CSET_P_FROZEN);
        assert_int_equal(out.n, 0);
        assert_true(out.next_deadline_us == cutoff);
        /* ... and a commit read "back then" is judged at the latest time seen, not the stepped one. */
        ev = (struct cset_event){ .type = CSET_EV_TICK, .now_us = cutoff };
        assert_int_equal(cset_participant_event(&p, &ev, &out), 0);
        assert_int_equal(p.state, CSET_P_UNDECIDED);
        assert_int_equal(out.a[0].type, CSET_ACT_THAW_ABORT_LOCAL);
        assert_int_equal(out.a[1].type, CSET_ACT_PROPOSE_ABORT);
        assert_int_equal(out.a[1].failure.hr, VSS_E_HOLD_WRITES_TIMEOUT);
        ev = (struct cset_event){ .type = CSET_EV_DECISION_SEEN, .commit = true, .now_us = 1000 * S };
        assert_int_equal(cset_participant_event(&p, &ev, &out), 0);
        assert_int_equal(p.state, CSET_P_FAILING);
        for (size_t i = 0; i < out.n; i++)
                assert_int_not_equal(out.a[i].type, CSET_ACT_COMMIT_LOCAL);
}

static void test_clock_jumps_forward(void **state)
{
        struct cset_participant p;
        struct cset_actions out;
        struct cset_event ev = { .type = CSET_EV_SET_SEEN, .now_us = 5 * S };

        cset_participant_init(&p, "h");
        cset_timing_default(&ev.timing);
        cset_participant_event(&p, &ev, &out);
        ev = (struct cset_event){ .type = CSET_EV_LOCAL_PREPARED, .now_us = 5 * S };
        cset_participant_event(&p, &ev, &out);
        ev = (struct cset_event){ .type = CSET_EV_FREEZE_SEEN, .now_us = 5 * S };
        cset_participant_event(&p, &ev, &out);
        ev = (struct cset_event){ .type = CSET_EV_LOCAL_FROZEN, .now_us = 5 * S + MS };
        cset_participant_event(&p, &ev, &out);
        /* The process slept 40 s (SIGSTOP): the first event after it is the commit decision. */
        ev = (struct cset_event){ .type = CSET_EV_DECISION_SEEN, .commit = true, .now_us = 45 * S };
        assert_int_equal(cset_participant_event(&p, &ev, &out), 0);
        assert_int_equal(out.a[0].type, CSET_ACT_THAW_ABORT_LOCAL);
        assert_int_equal(out.a[1].type, CSET_ACT_PROPOSE_FAILED);
        assert_int_equal(out.a[1].failure.hr, VSS_E_HOLD_WRITES_TIMEOUT);
        assert_non_null(strstr(out.a[1].failure.detail, "past its cutoff"));
}

static void test_bad_events_and_timing(void **state)
{
        const char *hosts[] = { "a", "b", "a" };
        struct cset_coordinator c;
        struct cset_participant p;
        struct cset_actions out;
        struct cset_timing t;
        struct cset_event ev = { .type = CSET_EV_HOST_PREPARED, .host = "a" };

        cset_timing_default(&t);
        assert_int_equal(cset_timing_check(&t), 0);
        assert_int_equal(t.hold_ms, 10000);
        assert_int_equal(t.commit_budget_ms, 2000);
        assert_int_equal(t.unreachable_ms, 3000);
        cset_timing_set_hold(&t, 4000);
        assert_int_equal(t.commit_budget_ms, 1000);
        assert_int_equal(t.unreachable_ms, 2000);
        assert_int_equal(cset_timing_check(&t), 0);
        cset_timing_default(&t);
        t.commit_budget_ms = 3000;      /* 4 x budget above the hold window */
        assert_int_equal(cset_timing_check(&t), -EINVAL);
        cset_timing_default(&t);
        t.hold_ms = 50;
        assert_int_equal(cset_timing_check(&t), -EINVAL);
        cset_timing_default(&t);

        cset_participant_init(&p, "a");
        assert_int_equal(cset_participant_event(&p, &ev, &out), -EINVAL);
        ev.type = CSET_EV_SET_SEEN;
        ev.timing = t;
        ev.timing.commit_budget_ms = 0;
        assert_int_equal(cset_participant_event(&p, &ev, &out), -EINVAL);
        assert_int_equal(p.state, CSET_P_IDLE);
        /* Events that come before the set are taken and do nothing. */
        ev = (struct cset_event){ .type = CSET_EV_FREEZE_SEEN };
        assert_int_equal(cset_participant_event(&p, &ev, &out), 0);
        assert_int_equal(out.n, 0);
        assert_int_equal(p.state, CSET_P_IDLE);

        assert_int_equal(cset_coordinator_init(&c, &t, hosts, 3), -EINVAL);     /* "a" twice */
        assert_int_equal(cset_coordinator_init(&c, &t, hosts, 0), -EINVAL);
        assert_int_equal(cset_coordinator_init(&c, &t, hosts, 2), 0);
        ev = (struct cset_event){ .type = CSET_EV_HOST_PREPARED, .host = "a" };
        assert_int_equal(cset_coordinator_event(&c, &ev, &out), -EINVAL);      /* not started */
        assert_int_equal(cset_coordinator_start(&c, 1, &out), 0);
        assert_int_equal(cset_coordinator_start(&c, 1, &out), -EINVAL);
        ev.host = "zz";
        assert_int_equal(cset_coordinator_event(&c, &ev, &out), -EINVAL);      /* not a host of the set */
        ev = (struct cset_event){ .type = CSET_EV_LOCAL_FROZEN };
        assert_int_equal(cset_coordinator_event(&c, &ev, &out), -EINVAL);      /* a participant's event */
        /* Every state, event and action has a name. */
        for (int i = 0; i < _CSET_P_MAX; i++)
                assert_string_not_equal(cset_pstate_name(i), "?");
        for (int i = 0; i < _CSET_C_MAX; i++)
                assert_string_not_equal(cset_cstate_name(i), "?");
        for (int i = 0; i < _CSET_EV_MAX; i++)
                assert_string_not_equal(cset_event_name(i), "?");
        for (int i = 0; i < _CSET_ACT_MAX; i++)
                assert_string_not_equal(cset_action_name(i), "?");
}

/* The coordinator itself: no commit write after t0 + hold - 2 x budget (I5). */
static void test_coordinator_commit_limit(void **state)
{
        const char *hosts[] = { "a", "b" };
        struct cset_coordinator c;
        struct cset_actions out;
        struct cset_timing t;
        struct cset_event ev = { 0 };
        uint64_t t0 = 77 * S;

        cset_timing_default(&t);
        assert_int_equal(cset_coordinator_init(&c, &t, hosts, 2), 0);
        assert_int_equal(cset_coordinator_start(&c, t0 - S, &out), 0);
        for (int i = 0; i < 2; i++) {
                ev = (struct cset_event){ .type = CSET_EV_HOST_PREPARED, .host = hosts[i], .now_us = t0 };
                assert_int_equal(cset_coordinator_event(&c, &ev, &out), 0);
        }
        assert_int_equal(out.n, 1);
        assert_int_equal(out.a[0].type, CSET_ACT_WRITE_FREEZE);
        assert_true(out.next_deadline_us == t0 + 6 * S);        /* 10 s - 2 x 2 s */
        ev = (struct cset_event){ .type = CSET_EV_HOST_FROZEN, .host = "a", .now_us = t0 + 6 * S - 1 };
        assert_int_equal(cset_coordinator_event(&c, &ev, &out), 0);
        assert_int_equal(out.n, 0);
        ev = (struct cset_event){ .type = CSET_EV_HOST_FROZEN, .host = "b", .now_us = t0 + 6 * S };
        assert_int_equal(cset_coordinator_event(&c, &ev, &out), 0);
        assert_int_equal(out.n, 1);
        assert_int_equal(out.a[0].type, CSET_ACT_PROPOSE_ABORT);
        assert_int_equal(out.a[0].failure.hr, VSS_E_CLUSTER_TIMEOUT);
        assert_string_equal(out.a[0].failure.host, "b");
        /* Our abort lost against nothing: the write lands, the requester hears it once. */
        ev = (struct cset_event){ .type = CSET_EV_WRITTEN, .written = CSET_ACT_PROPOSE_ABORT, .now_us = t0 + 7 * S };
        assert_int_equal(cset_coordinator_event(&c, &ev, &out), 0);
        assert_int_equal(out.a[0].type, CSET_ACT_REPORT);
        assert_int_equal(out.a[0].failure.hr, VSS_E_CLUSTER_TIMEOUT);
        assert_int_equal(out.a[1].type, CSET_ACT_RELEASE);
        assert_int_equal(c.state, CSET_C_OVER);
        ev = (struct cset_event){ .type = CSET_EV_DECISION_SEEN, .now_us = t0 + 8 * S };
        assert_int_equal(cset_coordinator_event(&c, &ev, &out), 0);
        assert_int_equal(out.n, 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_three_hosts_complete),
                cmocka_unit_test(test_veto_at_prepare),
                cmocka_unit_test(test_veto_at_freeze),
                cmocka_unit_test(test_coordinator_killed_during_freeze),
                cmocka_unit_test(test_coordinator_lease_shorter_and_longer_than_hold),
                cmocka_unit_test(test_participant_stopped_before_frozen_ack),
                cmocka_unit_test(test_participant_stopped_after_frozen_ack),
                cmocka_unit_test(test_host_cut_during_freeze_before_ack),
                cmocka_unit_test(test_host_cut_after_frozen_ack),
                cmocka_unit_test(test_quorum_lost_freezes_nothing),
                cmocka_unit_test(test_watch_never_arrives_polling_completes),
                cmocka_unit_test(test_host_learns_nothing),
                cmocka_unit_test(test_commit_too_slow),
                cmocka_unit_test(test_etcd_election_while_frozen),
                cmocka_unit_test(test_commit_fails),
                cmocka_unit_test(test_commit_seen_late),
                cmocka_unit_test(test_coordinator_killed_after_commit),
                cmocka_unit_test(test_host_gone_during_prepare),
                cmocka_unit_test(test_clock_offsets_do_not_matter),
                cmocka_unit_test(test_random_faults),
                cmocka_unit_test(test_clock_steps_back),
                cmocka_unit_test(test_clock_jumps_forward),
                cmocka_unit_test(test_bad_events_and_timing),
                cmocka_unit_test(test_coordinator_commit_limit),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
