/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The snapshot set state machine (src/vssd/set.c) without sockets or root:
 * fake writers and fake providers behind struct set_ops, driven by hand.
 * Every test records one trace of what the set did, in order, and compares
 * it whole:
 *
 *   =creating        the set entered phase "creating" (set_state)
 *   A>Freeze         writer A was sent Freeze and its reply is awaited
 *   A~Abort          writer A was sent Abort, nobody waits for it
 *   A!Freeze         writer A failed at Freeze (veto, timeout, gone, partial)
 *   p1:commit/2+hold provider 1 was called for 2 volumes, inside the hold window
 *   shadows          the shadow copies were recorded (right after Thaw was sent)
 *   drop-shadows     the session's auto-release shadow copies were dropped
 *   ok, fail:HR      the requester's call was answered
 *   released         the set let go of the session
 *
 * The fakes mirror registry.c: an awaited event ends with a reply, a
 * deadline or a closed connection, each reported through set_writer_done();
 * a freeze timer expiry goes to set_freeze_expired().  A freeze timer still
 * armed when Thaw is sent fails the test (KB 915331).
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "basic/writer-state.h"
#include "vssd/vssd.h"

#define MAX_WRITERS 4
#define MAX_CALLS 16

static const char *const prov_names[] = {
        [PROV_BEGIN_PREPARE] = "begin_prepare", [PROV_END_PREPARE] = "end_prepare",
        [PROV_PRE_COMMIT] = "pre_commit",       [PROV_COMMIT] = "commit",
        [PROV_POST_COMMIT] = "post_commit",     [PROV_ABORT] = "abort",
};

struct call {
        enum prov_op op;
        int provider;
        struct vss_provider_snapshot *snaps;
        size_t n;
};

/* What the script does at an event: reply ok unless told otherwise. */
enum act { ACT_OK, ACT_VETO, ACT_DEADLINE, ACT_FREEZE_TIMER, ACT_GONE, ACT_REQUESTER_GONE, ACT_HOLD };

static struct {
        struct vssd v;
        struct session *s;
        struct writer w[MAX_WRITERS];
        size_t n_writers;
        bool freeze_armed[MAX_WRITERS];
        struct call calls[MAX_CALLS];
        size_t n_calls;
        char trace[8192];
        bool released;
        /* the script */
        int act_writer;
        enum vss_event act_at;
        enum act act;
        int fail_provider;
        enum prov_op fail_op;
        /* a freeze timer that expires while this provider call is pending */
        int timer_writer;
        enum prov_op timer_during;
        /* the catalog cannot record the shadow copies (its filesystem full) */
        bool record_fails;
} f;

static void trace(const char *fmt, ...) _printf_(1, 2);
static void trace(const char *fmt, ...)
{
        size_t len = strlen(f.trace);
        va_list ap;

        if (len)
                f.trace[len++] = ' ';
        va_start(ap, fmt);
        vsnprintf(f.trace + len, sizeof(f.trace) - len, fmt, ap);
        va_end(ap);
}

static size_t widx(struct writer *w)
{
        return (size_t)(w - f.w);
}

/* ---- the fake writer registry ---- */

static void fake_writer_failed(struct vssd *v, struct writer *w, enum vss_event ev, vss_hresult hr, const char *msg)
{
        (void)v;
        (void)msg;
        w->state = writer_state_failed_at(ev);
        w->failure = hr;
        trace("%s!%s", w->name, vss_event_name(ev));
}

static bool fake_send_event(struct vssd *v, struct session *s, struct writer *w, enum vss_event ev,
                            uint32_t deadline_ms)
{
        (void)s;
        if (w->conn_serial == 0) {
                fake_writer_failed(v, w, ev, VSS_E_WRITER_NOT_RESPONDING, "closed");
                return false;
        }
        /* The freeze timer decides at Freeze; every other event has the event deadline. */
        if (ev == VSS_EVENT_FREEZE)
                assert_int_equal(deadline_ms, 0);
        else
                assert_int_equal(deadline_ms, v->cfg.event_timeout_ms);
        if (ev == VSS_EVENT_THAW)
                assert_false(f.freeze_armed[widx(w)]);
        if (ev == VSS_EVENT_FREEZE)
                assert_true(f.freeze_armed[widx(w)]);
        if (ev == VSS_EVENT_PREPARE_BACKUP || ev == VSS_EVENT_PRE_RESTORE)
                w->failure = VSS_S_OK;
        w->pending_event = ev;
        trace("%s>%s", w->name, vss_event_name(ev));
        return true;
}

static void fake_notify(struct vssd *v, struct session *s, struct writer *w, enum vss_event ev)
{
        (void)v;
        (void)s;
        if (w->conn_serial == 0)
                return;
        w->state = writer_state_after(w->state, ev, true);
        trace("%s~%s", w->name, vss_event_name(ev));
}

static void fake_cancel_pending(struct vssd *v, struct writer *w)
{
        (void)v;
        w->pending_event = -1;
}

static void fake_arm_freeze(struct vssd *v, struct session *s, struct writer *w)
{
        (void)v;
        (void)s;
        f.freeze_armed[widx(w)] = true;
}

static void fake_cancel_freeze(struct vssd *v, struct writer *w)
{
        (void)v;
        f.freeze_armed[widx(w)] = false;
}

static void fake_sweep(struct vssd *v)
{
        (void)v;
}

/* ---- the fake providers ---- */

static int fake_provider_call(struct vssd *v, struct session *s, enum prov_op op, int provider,
                              const struct vss_provider_snapshot *snaps, size_t n, bool hold)
{
        struct call *c;

        (void)v;
        (void)s;
        trace("p%d:%s/%zu%s", provider, prov_names[op], n, hold ? "+hold" : "");
        if (op == PROV_ABORT)
                return 0;
        assert_true(f.n_calls < MAX_CALLS);
        c = &f.calls[f.n_calls++];
        *c = (struct call){ .op = op, .provider = provider, .n = n };
        c->snaps = malloc(n * sizeof(*snaps));
        assert_non_null(c->snaps);
        memcpy(c->snaps, snaps, n * sizeof(*snaps));
        return 0;
}

/* ---- the rest of vssd ---- */

static void fake_phase_changed(struct vssd *v, struct session *s, enum set_phase from, enum set_phase to)
{
        (void)v;
        (void)s;
        (void)from;
        trace("=%s", set_phase_name(to));
}

static void fake_shadows_created(struct vssd *v, struct session *s)
{
        (void)v;
        trace("shadows");
        if (f.record_fails) {
                s->record_hr = VSS_E_INSUFFICIENT_STORAGE;
                snprintf(s->record_error, sizeof(s->record_error), "catalog full");
        }
}

static void fake_release_shadows(struct vssd *v, struct session *s)
{
        (void)v;
        (void)s;
        trace("drop-shadows");
}

static void fake_log_event(struct vssd *v, const char *level, const char *source, vss_hresult hr, const char *msg)
{
        (void)v;
        (void)level;
        (void)source;
        (void)hr;
        (void)msg;
}

static void fake_call_done(struct vssd *v, struct session *s, vss_hresult hr, const char *detail)
{
        (void)v;
        (void)s;
        if (detail)
                trace("fail:%08X", (unsigned)hr);
        else
                trace("ok");
}

static void fake_released(struct vssd *v, struct session *s)
{
        (void)v;
        (void)s;
        f.released = true;
        trace("released");
}

static const struct set_ops fake_ops = {
        .send_event = fake_send_event,
        .notify = fake_notify,
        .writer_failed = fake_writer_failed,
        .cancel_pending = fake_cancel_pending,
        .arm_freeze = fake_arm_freeze,
        .cancel_freeze = fake_cancel_freeze,
        .sweep_writers = fake_sweep,
        .provider_call = fake_provider_call,
        .phase_changed = fake_phase_changed,
        .shadows_created = fake_shadows_created,
        .release_shadows = fake_release_shadows,
        .log_event = fake_log_event,
        .call_done = fake_call_done,
        .released = fake_released,
};

/* ---- driving it ---- */

/* Writers: A declares no volumes (takes part in every set), B has /v2, C has /v9 (never in a set). */
static void add_writer(const char *name, const char *vol)
{
        struct writer *w = &f.w[f.n_writers++];

        w->name = (char *)name;
        vss_id_from_name(name, &w->writer_id);
        vss_id_generate(&w->instance_id);
        if (vol) {
                w->volumes = calloc(1, sizeof(char *));
                assert_non_null(w->volumes);
                w->volumes[0] = (char *)vol;
                w->n_volumes = 1;
        }
        w->state = VSS_WS_STABLE;
        w->pending_event = -1;
        w->freeze_timeout_ms = 60000;
        w->conn_serial = f.n_writers;
        w->metadata = json_object();
}

static int setup(void **state)
{
        (void)state;
        memset(&f, 0, sizeof(f));
        f.v.cfg.event_timeout_ms = 1000;
        f.act_writer = -1;
        f.fail_provider = -1;
        f.timer_writer = -1;
        add_writer("A", NULL);
        add_writer("B", "/v2");
        add_writer("C", "/v9");
        /* The registry's list is newest first; link A -> B -> C. */
        for (size_t i = 0; i + 1 < f.n_writers; i++)
                f.w[i].next = &f.w[i + 1];
        f.v.writers = &f.w[0];
        f.s = calloc(1, sizeof(*f.s));
        assert_non_null(f.s);
        f.s->ops = &fake_ops;
        f.s->vssd = &f.v;
        f.s->context = VSS_CTX_BACKUP;
        f.s->excluded = json_array();
        f.s->components = json_array();
        f.s->call_id = -1;
        return 0;
}

static int teardown(void **state)
{
        (void)state;
        for (size_t i = 0; i < f.n_writers; i++) {
                free(f.w[i].volumes);
                json_decref(f.w[i].metadata);
        }
        for (size_t i = 0; i < f.n_calls; i++)
                free(f.calls[i].snaps);
        json_decref(f.s->excluded);
        json_decref(f.s->components);
        json_decref(f.s->restore_components);
        free(f.s->vols);
        free(f.s);
        return 0;
}

static void clear_trace(void)
{
        f.trace[0] = 0;
}

static void expect(const char *want)
{
        if (strcmp(f.trace, want) != 0)
                print_error("trace:\n  got  %s\n  want %s\n", f.trace, want);
        assert_string_equal(f.trace, want);
        clear_trace();
}

static void reply(struct writer *w, bool ok, vss_hresult hr)
{
        enum vss_event ev = (enum vss_event)w->pending_event;

        w->pending_event = -1;
        if (ok)
                w->state = writer_state_after(w->state, ev, true);
        else
                fake_writer_failed(&f.v, w, ev, hr, "vetoed");
        set_writer_done(&f.v, f.s, w, ev);
}

/* What registry.c's writer_closed does. */
static void writer_gone(struct writer *w)
{
        int ev = w->pending_event;

        w->conn_serial = 0;
        w->gone = true;
        f.freeze_armed[widx(w)] = false;
        if (w->session && (w->involved || ev >= 0)) {
                w->pending_event = -1;
                if (!writer_state_is_failed(w->state))
                        fake_writer_failed(&f.v, w, ev >= 0 ? (enum vss_event)ev : VSS_EVENT_BACKUP_COMPLETE,
                                           VSS_E_WRITER_NOT_RESPONDING, "closed");
                if (ev >= 0)
                        set_writer_done(&f.v, f.s, w, (enum vss_event)ev);
        }
}

static void freeze_timer_fires(struct writer *w)
{
        assert_true(f.freeze_armed[widx(w)]);
        f.freeze_armed[widx(w)] = false;
        set_freeze_expired(&f.v, f.s, w);
}

static void complete_call(size_t i, vss_hresult hr)
{
        struct call c = f.calls[i];
        char name[8];

        memmove(&f.calls[i], &f.calls[i + 1], (f.n_calls - i - 1) * sizeof(f.calls[0]));
        f.n_calls--;
        /* A provider fills in where the shadow copy is read. */
        for (size_t k = 0; k < c.n; k++)
                snprintf(c.snaps[k].device, sizeof(c.snaps[k].device), "/dev/shadow-%s", c.snaps[k].volume);
        snprintf(name, sizeof(name), "p%d", c.provider);
        set_provider_done(&f.v, f.s, c.op, name, hr, hr == VSS_S_OK ? "" : "refused", c.snaps, c.n);
        free(c.snaps);
}

/* Runs the script until nothing is awaited: provider calls end first (in order), then writers reply. */
static void pump(void)
{
        for (;;) {
                struct writer *w = NULL;

                if (f.n_calls > 0 && !f.released) {
                        struct call *c = &f.calls[0];
                        bool fails = c->provider == f.fail_provider && c->op == f.fail_op;

                        if (f.timer_writer >= 0 && c->op == f.timer_during) {
                                freeze_timer_fires(&f.w[f.timer_writer]);
                                f.timer_writer = -1;
                        }
                        if (f.act == ACT_REQUESTER_GONE && f.act_writer < 0 && (int)c->op == (int)f.act_at) {
                                f.act = ACT_OK;
                                set_release(&f.v, f.s);
                        }
                        complete_call(0, fails ? VSS_E_PROVIDER_VETO : VSS_S_OK);
                        continue;
                }
                for (size_t i = 0; i < f.n_writers && !w; i++)
                        if (f.w[i].pending_event >= 0)
                                w = &f.w[i];
                if (!w || f.released)
                        return;
                if ((int)widx(w) == f.act_writer && (enum vss_event)w->pending_event == f.act_at) {
                        enum act a = f.act;

                        f.act = ACT_OK;
                        f.act_writer = -1;
                        switch (a) {
                        case ACT_VETO:
                                reply(w, false, VSS_E_WRITERERROR_RETRYABLE);
                                continue;
                        case ACT_DEADLINE:
                                w->pending_event = -1;
                                fake_writer_failed(&f.v, w, f.act_at, VSS_E_WRITER_NOT_RESPONDING, "no reply");
                                set_writer_done(&f.v, f.s, w, f.act_at);
                                continue;
                        case ACT_FREEZE_TIMER:
                                freeze_timer_fires(w);
                                continue;
                        case ACT_GONE:
                                writer_gone(w);
                                continue;
                        case ACT_REQUESTER_GONE:
                                set_release(&f.v, f.s);
                                return;
                        default:
                                break;
                        }
                }
                reply(w, true, VSS_S_OK);
        }
}

static void add_volume(const char *path, int provider)
{
        struct set_volume *sv;

        f.s->vols = realloc(f.s->vols, (f.s->n_vols + 1) * sizeof(*f.s->vols));
        assert_non_null(f.s->vols);
        sv = &f.s->vols[f.s->n_vols];
        memset(sv, 0, sizeof(*sv));
        snprintf(sv->path, sizeof(sv->path), "%s", path);
        sv->provider = provider;
        vss_id_generate(&sv->snap.snapshot_id);
        sv->snap.set_id = f.s->set_id;
        snprintf(sv->snap.volume, sizeof(sv->snap.volume), "%s", path);
        f.s->n_vols++;
        set_add_volume(&f.v, f.s);
        pump();
}

/* StartSnapshotSet, then /v1 on provider 0, /v2 on provider 1, /v3 on provider 0: [A, B, A]. */
static void start_set(void)
{
        set_start(&f.v, f.s);
        assert_ptr_equal(f.v.set_owner, f.s);
        add_volume("/v1", 0);
        add_volume("/v2", 1);
        add_volume("/v3", 0);
        expect("=started p0:begin_prepare/1 ok p1:begin_prepare/1 ok p0:begin_prepare/1 ok");
        for (size_t i = 0; i < f.s->n_vols; i++)
                assert_true(f.s->vols[i].begun);
}

static void do_set(void)
{
        set_do(&f.v, f.s);
        pump();
}

#define CREATE_TO_FREEZE                                                                                  \
        "=creating A>PrepareForBackup B>PrepareForBackup A>PrepareForSnapshot B>PrepareForSnapshot "      \
        "p0:end_prepare/2 p1:end_prepare/1 A>Freeze B>Freeze"
#define COMMIT "p0:pre_commit/2 p1:pre_commit/1 p0:commit/2+hold p1:commit/1+hold p0:post_commit/2 p1:post_commit/1"
#define THAW_TO_CREATED "A>Thaw B>Thaw shadows A>PostSnapshot B>PostSnapshot =created ok"
#define ABORT_PROVIDERS "p0:abort/2 p1:abort/1"

/* ---- the tests ---- */

static void test_phase_table(void **state)
{
        (void)state;
        for (int p = 0; p < _SET_PHASE_MAX; p++) {
                assert_non_null(set_phase_name((enum set_phase)p));
                assert_string_not_equal(set_phase_name((enum set_phase)p), "invalid");
                assert_false(set_transition_legal((enum set_phase)p, (enum set_phase)p));
        }
        assert_true(set_transition_legal(SET_IDLE, SET_STARTED));
        assert_true(set_transition_legal(SET_CREATING, SET_ABORTED));
        assert_true(set_transition_legal(SET_RESTORE_PREPARED, SET_POST_RESTORING));
        assert_false(set_transition_legal(SET_IDLE, SET_CREATING));
        assert_false(set_transition_legal(SET_COMPLETED, SET_ABORTED));
        assert_false(set_transition_legal(SET_ABORTED, SET_CREATING));
        assert_false(set_transition_legal(SET_CREATED, SET_CREATING));
        assert_true(set_phase_holds_turn(SET_CREATING));
        assert_false(set_phase_holds_turn(SET_CREATED));
        assert_true(set_phase_holds_turn(SET_RESTORE_PREPARED));
        assert_false(set_phase_has_set(SET_POST_RESTORING));
}

static void test_provider_group(void **state)
{
        struct set_volume vols[4] = {};
        struct vss_provider_snapshot *snaps = calloc(VSS_MAX_VOLUMES_PER_SET, sizeof(*snaps));
        int prov[4] = { 0, 1, 0, 1 };

        (void)state;
        assert_non_null(snaps);
        for (size_t i = 0; i < 4; i++) {
                vols[i].provider = prov[i];
                snprintf(vols[i].snap.volume, sizeof(vols[i].snap.volume), "/v%zu", i);
        }
        assert_int_equal(set_provider_group(vols, 4, 0, snaps), 2);
        assert_string_equal(snaps[0].volume, "/v0");
        assert_string_equal(snaps[1].volume, "/v2");
        assert_int_equal(set_provider_group(vols, 4, 1, snaps), 2);
        assert_string_equal(snaps[1].volume, "/v3");
        assert_int_equal(set_provider_group(vols, 4, 2, snaps), 0);
        assert_int_equal(set_provider_group(vols, 4, 3, snaps), 0);
        free(snaps);
}

static size_t count(const char *hay, const char *needle)
{
        size_t n = 0;

        for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
                n++;
        return n;
}

/* Volumes [/v1 on p0, /v2 on p1, /v3 on p0]: each provider is called once per step, abort included. */
static void test_interleaved_providers(void **state)
{
        (void)state;
        start_set();
        f.act = ACT_VETO;
        f.act_writer = 1;
        f.act_at = VSS_EVENT_FREEZE;
        do_set();
        assert_int_equal(count(f.trace, "p0:end_prepare/2"), 1);
        assert_int_equal(count(f.trace, "p1:end_prepare/1"), 1);
        assert_int_equal(count(f.trace, "p0:abort"), 1);
        assert_int_equal(count(f.trace, "p1:abort"), 1);
        assert_int_equal(count(f.trace, "p0:abort/2"), 1);
        teardown(state);
        setup(state);
        start_set();
        do_set();
        assert_int_equal(count(f.trace, "p0:commit"), 1);
        assert_int_equal(count(f.trace, "p1:commit"), 1);
        assert_int_equal(count(f.trace, "p0:commit/2+hold"), 1);
        assert_int_equal(count(f.trace, "abort"), 0);
}

/* The whole backup: DoSnapshotSet (with its implicit PrepareForBackup), BackupComplete, End. */
static void test_backup(void **state)
{
        (void)state;
        start_set();
        do_set();
        expect(CREATE_TO_FREEZE " " COMMIT " " THAW_TO_CREATED);
        assert_null(f.v.set_owner);
        assert_int_equal(f.w[0].state, VSS_WS_WAITING_FOR_BACKUP_COMPLETE);
        assert_int_equal(f.w[2].state, VSS_WS_STABLE);
        assert_false(f.w[2].involved);
        assert_string_equal(f.s->vols[2].snap.device, "/dev/shadow-/v3");
        f.s->backup_succeeded = true;
        set_backup_complete(&f.v, f.s);
        pump();
        expect("=completing A>BackupComplete B>BackupComplete =completed ok");
        set_release(&f.v, f.s);
        expect("A~BackupShutdown B~BackupShutdown released");
}

/* An explicit PrepareForBackup, then DoSnapshotSet without the implicit one. */
static void test_explicit_prepare(void **state)
{
        (void)state;
        start_set();
        set_prepare_backup(&f.v, f.s);
        pump();
        expect("=preparing A>PrepareForBackup B>PrepareForBackup =prepared ok");
        assert_ptr_equal(f.v.set_owner, f.s);
        do_set();
        expect("=creating A>PrepareForSnapshot B>PrepareForSnapshot p0:end_prepare/2 p1:end_prepare/1 A>Freeze "
               "B>Freeze " COMMIT " " THAW_TO_CREATED);
}

static void test_identify(void **state)
{
        (void)state;
        set_gather(&f.v, f.s);
        assert_true(set_busy(f.s));
        pump();
        expect("A>Identify B>Identify C>Identify ok");
        assert_false(set_busy(f.s));
        assert_int_equal(f.s->phase, SET_IDLE);
}

/* A writer whose volumes the set covers only in part fails at PrepareForSnapshot, and that aborts. */
static void test_partial_writer(void **state)
{
        (void)state;
        f.w[2].volumes[0] = "/v3";
        f.w[2].volumes = realloc(f.w[2].volumes, 2 * sizeof(char *));
        f.w[2].volumes[1] = "/v9";
        f.w[2].n_volumes = 2;
        start_set();
        do_set();
        expect("=creating A>PrepareForBackup B>PrepareForBackup C>PrepareForBackup A>PrepareForSnapshot "
               "B>PrepareForSnapshot C!PrepareForSnapshot A~Abort B~Abort C~Abort =aborted drop-shadows fail:800423F0");
        assert_null(f.v.set_owner);
}

/* A veto at each event of DoSnapshotSet and BackupComplete: what it means for the set. */
static void test_veto_each_event(void **state)
{
        static const struct {
                enum vss_event ev;
                const char *want;
        } cases[] = {
                { VSS_EVENT_PREPARE_BACKUP,
                  "=creating A>PrepareForBackup B>PrepareForBackup B!PrepareForBackup A>PrepareForSnapshot "
                  "p0:end_prepare/2 p1:end_prepare/1 A>Freeze " COMMIT " A>Thaw shadows A>PostSnapshot =created ok" },
                { VSS_EVENT_PREPARE_SNAPSHOT,
                  "=creating A>PrepareForBackup B>PrepareForBackup A>PrepareForSnapshot B>PrepareForSnapshot "
                  "B!PrepareForSnapshot A~Abort B~Abort =aborted drop-shadows fail:800423F3" },
                { VSS_EVENT_FREEZE, CREATE_TO_FREEZE " B!Freeze A~Abort B~Abort " ABORT_PROVIDERS
                                    " =aborted drop-shadows fail:800423F3" },
                { VSS_EVENT_THAW, CREATE_TO_FREEZE " " COMMIT
                                  " A>Thaw B>Thaw shadows B!Thaw A>PostSnapshot =created ok" },
                { VSS_EVENT_POST_SNAPSHOT, CREATE_TO_FREEZE " " COMMIT
                                           " A>Thaw B>Thaw shadows A>PostSnapshot B>PostSnapshot B!PostSnapshot "
                                           "=created ok" },
                { VSS_EVENT_BACKUP_COMPLETE, CREATE_TO_FREEZE " " COMMIT " " THAW_TO_CREATED
                                             " =completing A>BackupComplete B>BackupComplete B!BackupComplete "
                                             "=completed ok" },
        };

        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                if (i > 0) {
                        teardown(state);
                        setup(state);
                }
                start_set();
                f.act = ACT_VETO;
                f.act_writer = 1;
                f.act_at = cases[i].ev;
                do_set();
                if (cases[i].ev == VSS_EVENT_BACKUP_COMPLETE) {
                        set_backup_complete(&f.v, f.s);
                        pump();
                }
                print_message("veto at %s\n", vss_event_name(cases[i].ev));
                expect(cases[i].want);
                if (strstr(cases[i].want, "=aborted"))
                        assert_int_equal(f.w[1].state, writer_state_failed_at(cases[i].ev));
        }
}

/* No reply before the event deadline: the writer is not responding, with the same meaning as a veto. */
static void test_deadline(void **state)
{
        (void)state;
        start_set();
        f.act = ACT_DEADLINE;
        f.act_writer = 0;
        f.act_at = VSS_EVENT_PREPARE_SNAPSHOT;
        do_set();
        expect("=creating A>PrepareForBackup B>PrepareForBackup A>PrepareForSnapshot B>PrepareForSnapshot "
               "A!PrepareForSnapshot A~Abort B~Abort =aborted drop-shadows fail:80042319");
        assert_int_equal(f.w[0].failure, VSS_E_WRITER_NOT_RESPONDING);
}

/* A writer that never answers Freeze: its freeze timer fails it (and sends Abort at once); the set aborts. */
static void test_freeze_timer(void **state)
{
        (void)state;
        start_set();
        f.act = ACT_FREEZE_TIMER;
        f.act_writer = 0;
        f.act_at = VSS_EVENT_FREEZE;
        do_set();
        expect(CREATE_TO_FREEZE " A!Freeze A~Abort A~Abort B~Abort " ABORT_PROVIDERS
                                " =aborted drop-shadows fail:800423F2");
        assert_int_equal(f.w[0].state, VSS_WS_FAILED_AT_FREEZE);
        assert_int_equal(f.w[0].failure, VSS_E_WRITERERROR_TIMEOUT);
}

/* A freeze timer that expires while the providers pre-commit aborts the set after the pre-commit. */
static void test_freeze_timer_during_precommit(void **state)
{
        (void)state;
        start_set();
        f.timer_writer = 1;
        f.timer_during = PROV_PRE_COMMIT;
        do_set();
        expect(CREATE_TO_FREEZE " p0:pre_commit/2 p1:pre_commit/1 B!Freeze B~Abort A~Abort B~Abort " ABORT_PROVIDERS
                                " =aborted drop-shadows fail:800423F2");
}

/* ... and while they commit: the commit is undone by the providers' abort. */
static void test_freeze_timer_during_commit(void **state)
{
        (void)state;
        start_set();
        f.timer_writer = 1;
        f.timer_during = PROV_COMMIT;
        do_set();
        expect(CREATE_TO_FREEZE " p0:pre_commit/2 p1:pre_commit/1 p0:commit/2+hold p1:commit/1+hold B!Freeze "
                                "B~Abort A~Abort B~Abort " ABORT_PROVIDERS " =aborted drop-shadows fail:800423F2");
}

/* ... but once committed, a late timer fails only its writer: the set is created. */
static void test_freeze_timer_after_commit(void **state)
{
        (void)state;
        start_set();
        f.timer_writer = 1;
        f.timer_during = PROV_POST_COMMIT;
        do_set();
        expect(CREATE_TO_FREEZE " " COMMIT " B!Freeze B~Abort A>Thaw shadows A>PostSnapshot =created ok");
}

/* A provider failing at each call. */
static void test_provider_failure_each_call(void **state)
{
        static const struct {
                enum prov_op op;
                const char *want;
        } cases[] = {
                { PROV_END_PREPARE,
                  "=creating A>PrepareForBackup B>PrepareForBackup A>PrepareForSnapshot B>PrepareForSnapshot "
                  "p0:end_prepare/2 p1:end_prepare/1 A~Abort B~Abort " ABORT_PROVIDERS
                  " =aborted drop-shadows fail:80042306" },
                { PROV_PRE_COMMIT, CREATE_TO_FREEZE " p0:pre_commit/2 p1:pre_commit/1 A~Abort B~Abort " ABORT_PROVIDERS
                                   " =aborted drop-shadows fail:80042306" },
                { PROV_COMMIT, CREATE_TO_FREEZE " p0:pre_commit/2 p1:pre_commit/1 p0:commit/2+hold p1:commit/1+hold "
                               "A~Abort B~Abort " ABORT_PROVIDERS " =aborted drop-shadows fail:80042306" },
                { PROV_POST_COMMIT, CREATE_TO_FREEZE " " COMMIT " A~Abort B~Abort " ABORT_PROVIDERS
                                    " =aborted drop-shadows fail:80042306" },
        };

        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                if (i > 0) {
                        teardown(state);
                        setup(state);
                }
                start_set();
                f.fail_provider = 1;
                f.fail_op = cases[i].op;
                do_set();
                print_message("provider failure at %s\n", prov_names[cases[i].op]);
                expect(cases[i].want);
                assert_null(f.v.set_owner);
                assert_int_equal(f.s->phase, SET_ABORTED);
        }
}

/* A provider refusing a volume at BeginPrepareSnapshot: the call fails, the set keeps its other volumes. */
static void test_provider_refuses_volume(void **state)
{
        (void)state;
        set_start(&f.v, f.s);
        add_volume("/v1", 0);
        f.fail_provider = 1;
        f.fail_op = PROV_BEGIN_PREPARE;
        add_volume("/v2", 1);
        expect("=started p0:begin_prepare/1 ok p1:begin_prepare/1 fail:80042306");
        assert_int_equal(f.s->n_vols, 1);
        assert_int_equal(f.s->phase, SET_STARTED);
        assert_ptr_equal(f.v.set_owner, f.s);
}

/* A writer's connection closing while it owes a reply. */
static void test_writer_disconnect(void **state)
{
        (void)state;
        start_set();
        f.act = ACT_GONE;
        f.act_writer = 1;
        f.act_at = VSS_EVENT_FREEZE;
        do_set();
        expect(CREATE_TO_FREEZE " B!Freeze A~Abort " ABORT_PROVIDERS " =aborted drop-shadows fail:80042319");
        /* After Thaw the set is created without it. */
        teardown(state);
        setup(state);
        start_set();
        f.act = ACT_GONE;
        f.act_writer = 1;
        f.act_at = VSS_EVENT_THAW;
        do_set();
        expect(CREATE_TO_FREEZE " " COMMIT " A>Thaw B>Thaw shadows B!Thaw A>PostSnapshot =created ok");
        set_release(&f.v, f.s);
        expect("A~Abort =aborted A~BackupShutdown released");
}

/* The requester going away: before the commit the set aborts; after it, Thaw still goes out. */
static void test_requester_disconnect(void **state)
{
        (void)state;
        /* While writers owe PrepareForSnapshot. */
        start_set();
        f.act = ACT_REQUESTER_GONE;
        f.act_writer = 0;
        f.act_at = VSS_EVENT_PREPARE_SNAPSHOT;
        do_set();
        expect("=creating A>PrepareForBackup B>PrepareForBackup A>PrepareForSnapshot B>PrepareForSnapshot A~Abort "
               "B~Abort =aborted A~BackupShutdown B~BackupShutdown released");
        assert_null(f.v.set_owner);
        f.released = false;
        teardown(state);

        /* While the providers pre-commit: release waits for them, then aborts them. */
        setup(state);
        start_set();
        f.act = ACT_REQUESTER_GONE;
        f.act_at = (enum vss_event)PROV_PRE_COMMIT;
        do_set();
        expect(CREATE_TO_FREEZE " p0:pre_commit/2 p1:pre_commit/1 A~Abort B~Abort " ABORT_PROVIDERS
                                " =aborted drop-shadows A~BackupShutdown B~BackupShutdown released");
        teardown(state);

        /* While writers owe Thaw: the shadows exist; the set is aborted and they are released with it. */
        setup(state);
        start_set();
        f.act = ACT_REQUESTER_GONE;
        f.act_writer = 1;
        f.act_at = VSS_EVENT_THAW;
        do_set();
        expect(CREATE_TO_FREEZE " " COMMIT " A>Thaw B>Thaw shadows A~Abort B~Abort =aborted A~BackupShutdown "
                                "B~BackupShutdown released");
        teardown(state);

        /* While the providers commit: once they have, the snapshots exist; the set is
         * finished (no PostSnapshot, nobody to report to), recorded, then released. */
        setup(state);
        start_set();
        f.act = ACT_REQUESTER_GONE;
        f.act_at = (enum vss_event)PROV_COMMIT;
        do_set();
        expect(CREATE_TO_FREEZE " " COMMIT " A>Thaw B>Thaw shadows =created A~Abort B~Abort =aborted "
                                "A~BackupShutdown B~BackupShutdown released");
}

/* AbortBackup of a created set: writers hear Abort, committed providers are left alone. */
static void test_abort_backup(void **state)
{
        (void)state;
        start_set();
        do_set();
        clear_trace();
        set_abort_backup(&f.v, f.s);
        expect("A~Abort B~Abort =aborted drop-shadows");
        /* AbortBackup of a prepared set, before any provider prepared. */
        teardown(state);
        setup(state);
        start_set();
        set_prepare_backup(&f.v, f.s);
        pump();
        clear_trace();
        set_abort_backup(&f.v, f.s);
        expect("A~Abort B~Abort =aborted drop-shadows");
        assert_null(f.v.set_owner);
}

static void restore_components(const char *writer)
{
        char idbuf[VSS_ID_STRING_MAX];
        vss_id id;

        vss_id_from_name(writer, &id);
        json_decref(f.s->restore_components);
        f.s->restore_components =
                json_pack("[{s:s, s:s}]", "writer_id", vss_id_format(&id, idbuf), "name", "db");
        assert_non_null(f.s->restore_components);
}

static void test_restore(void **state)
{
        (void)state;
        restore_components("B");
        set_restore(&f.v, f.s, VSS_EVENT_PRE_RESTORE);
        assert_ptr_equal(f.v.set_owner, f.s);
        pump();
        expect("=pre-restoring B>PreRestore =restore-prepared ok");
        assert_ptr_equal(f.v.set_owner, f.s);
        set_restore(&f.v, f.s, VSS_EVENT_POST_RESTORE);
        pump();
        expect("=post-restoring B>PostRestore ok =idle");
        assert_null(f.v.set_owner);
        assert_null(f.w[1].session);
        assert_false(f.w[1].involved);

        /* A veto at each restore event shows in the writer's status; the restore goes on. */
        for (int k = 0; k < 2; k++) {
                enum vss_event ev = k ? VSS_EVENT_POST_RESTORE : VSS_EVENT_PRE_RESTORE;

                f.act = ACT_VETO;
                f.act_writer = 1;
                f.act_at = ev;
                set_restore(&f.v, f.s, VSS_EVENT_PRE_RESTORE);
                pump();
                set_restore(&f.v, f.s, VSS_EVENT_POST_RESTORE);
                pump();
                if (k == 0)
                        expect("=pre-restoring B>PreRestore B!PreRestore =restore-prepared ok =post-restoring "
                               "B>PostRestore ok =idle");
                else
                        expect("=pre-restoring B>PreRestore =restore-prepared ok =post-restoring B>PostRestore "
                               "B!PostRestore ok =idle");
        }
}

static void test_restore_disconnects(void **state)
{
        (void)state;
        /* The writer goes away during PreRestore. */
        restore_components("B");
        f.act = ACT_GONE;
        f.act_writer = 1;
        f.act_at = VSS_EVENT_PRE_RESTORE;
        set_restore(&f.v, f.s, VSS_EVENT_PRE_RESTORE);
        pump();
        expect("=pre-restoring B>PreRestore B!PreRestore =restore-prepared ok");
        teardown(state);

        /* The requester goes away during PreRestore, and between PreRestore and PostRestore. */
        for (int k = 0; k < 2; k++) {
                setup(state);
                restore_components("B");
                if (k == 0) {
                        f.act = ACT_REQUESTER_GONE;
                        f.act_writer = 1;
                        f.act_at = VSS_EVENT_PRE_RESTORE;
                }
                set_restore(&f.v, f.s, VSS_EVENT_PRE_RESTORE);
                pump();
                if (k == 1)
                        set_release(&f.v, f.s);
                expect(k == 0 ? "=pre-restoring B>PreRestore =idle released"
                              : "=pre-restoring B>PreRestore =restore-prepared ok =idle released");
                assert_null(f.v.set_owner);
                assert_null(f.w[1].session);
                teardown(state);
        }
        setup(state);
}

/* The catalog cannot record the shadow copies: a local set and a cluster participant's
 * commit slice fail with the catalog's HRESULT instead of reporting them. */
static void test_record_fails(void **state)
{
        (void)state;
        f.record_fails = true;
        start_set();
        do_set();
        expect(CREATE_TO_FREEZE " " COMMIT " A>Thaw B>Thaw shadows A>PostSnapshot B>PostSnapshot A~Abort B~Abort "
               "=aborted drop-shadows fail:8004231F");
        teardown(state);

        setup(state);
        f.record_fails = true;
        add_volume("/v1", 0);
        clear_trace();
        set_cluster_prepare(&f.v, f.s);
        pump();
        expect("=started =preparing p0:begin_prepare/1 A>PrepareForBackup A>PrepareForSnapshot p0:end_prepare/1 "
               "=prepared ok");
        set_cluster_freeze(&f.v, f.s);
        pump();
        expect("=creating A>Freeze p0:pre_commit/1 ok");
        set_cluster_commit(&f.v, f.s);
        pump();
        expect("p0:commit/1+hold p0:post_commit/1 A>Thaw shadows A>PostSnapshot A~Abort =aborted drop-shadows "
               "fail:8004231F");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_phase_table),
                cmocka_unit_test(test_provider_group),
                cmocka_unit_test_setup_teardown(test_interleaved_providers, setup, teardown),
                cmocka_unit_test_setup_teardown(test_backup, setup, teardown),
                cmocka_unit_test_setup_teardown(test_explicit_prepare, setup, teardown),
                cmocka_unit_test_setup_teardown(test_identify, setup, teardown),
                cmocka_unit_test_setup_teardown(test_partial_writer, setup, teardown),
                cmocka_unit_test_setup_teardown(test_veto_each_event, setup, teardown),
                cmocka_unit_test_setup_teardown(test_deadline, setup, teardown),
                cmocka_unit_test_setup_teardown(test_freeze_timer, setup, teardown),
                cmocka_unit_test_setup_teardown(test_freeze_timer_during_precommit, setup, teardown),
                cmocka_unit_test_setup_teardown(test_freeze_timer_during_commit, setup, teardown),
                cmocka_unit_test_setup_teardown(test_freeze_timer_after_commit, setup, teardown),
                cmocka_unit_test_setup_teardown(test_provider_failure_each_call, setup, teardown),
                cmocka_unit_test_setup_teardown(test_provider_refuses_volume, setup, teardown),
                cmocka_unit_test_setup_teardown(test_writer_disconnect, setup, teardown),
                cmocka_unit_test_setup_teardown(test_requester_disconnect, setup, teardown),
                cmocka_unit_test_setup_teardown(test_abort_backup, setup, teardown),
                cmocka_unit_test_setup_teardown(test_restore, setup, teardown),
                cmocka_unit_test_setup_teardown(test_restore_disconnects, setup, teardown),
                cmocka_unit_test_setup_teardown(test_record_fails, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
