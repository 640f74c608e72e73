/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libvss's writer guarantees through the real socket code (src/libvss/writer.c):
 * the test plays vssd on a Unix socket.  A registrar thread accepts connections
 * and answers Writer.Register (recording each registration and when it came);
 * everything else is driven from the main thread, which writes the daemon's
 * events itself and calls vss_writer_dispatch(), so every ordering is exact:
 *
 *   - the local freeze deadline fires at freeze timeout + grace, not before, runs
 *     on_abort once, and makes a late Thaw fail with VSS_E_WRITERERROR_TIMEOUT;
 *   - a Thaw already received when the deadline is looked at wins over it;
 *   - vssd's repeated Aborts run on_abort once;
 *   - vss_writer_fd() wakes a poll() at the deadline;
 *   - an on_freeze that overruns the deadline is answered as timed out, after
 *     on_abort ran;
 *   - a lost connection between PrepareForSnapshot and Thaw runs on_abort at once;
 *   - without no_reconnect the writer registers again with the same writer id,
 *     retrying at 100, 200, 400, 800 ms, and gets the new instance id.
 */

#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <cmocka.h>

#include "basic/fs-util.h"
#include "basic/macro.h"
#include "basic/time-util.h"
#include "basic/wire.h"
#include "vss/writer.h"

#define FREEZE_MS 200
#define SET_A "{aaaaaaaa-0000-4000-8000-000000000001}"
#define SET_B "{bbbbbbbb-0000-4000-8000-000000000002}"
#define MAX_CONNS 8

static char sock_path[108];

static uint64_t now_ms(void)
{
        return clock_monotonic_us() / USEC_PER_MSEC;
}

/* ---- the fake vssd ---- */

struct conn {
        int fd;
        struct wire_buf buf;
        json_t *register_params;
        uint64_t registered_ms;
};

struct registrar {
        int listen_fd;
        unsigned n_answer;              /* how many connections get a Register reply */
        unsigned n_refuse;              /* before those, connections closed at once */
        pthread_mutex_t lock;
        pthread_cond_t cond;
        struct conn conns[MAX_CONNS];
        unsigned n_conns;
        uint64_t refused_ms[MAX_CONNS];
        unsigned n_refused;
};

static json_t *read_msg(struct conn *c, int timeout_ms)
{
        uint64_t end = now_ms() + (uint64_t)timeout_ms;
        struct wire_msg m;
        char *line, err[128];
        size_t len;
        json_t *r;

        for (;;) {
                if (wire_buf_next_line(&c->buf, &line, &len) > 0) {
                        if (VSS_FAILED(wire_parse(line, len, &m, err, sizeof(err))))
                                return NULL;
                        r = json_incref(m.root);
                        wire_msg_done(&m);
                        return r;
                }
                struct pollfd p = { .fd = c->fd, .events = POLLIN };
                uint64_t t = now_ms();
                if (t >= end || poll(&p, 1, (int)(end - t)) <= 0)
                        return NULL;
                if (wire_buf_fill(&c->buf, c->fd) <= 0)
                        return NULL;
        }
}

/* Runs on its own thread: no cmocka assertions here (they cannot leave a thread);
 * what it recorded is checked by the main thread. */
static void *registrar_main(void *userdata)
{
        struct registrar *r = userdata;

        for (unsigned done = 0; done < r->n_refuse + r->n_answer; done++) {
                struct conn c = { .fd = accept4(r->listen_fd, NULL, NULL, SOCK_CLOEXEC) };
                _cleanup_free_ char *text = NULL;
                char inst[VSS_ID_STRING_MAX];
                json_t *m, *res;
                size_t len;

                if (c.fd < 0)
                        break;
                if (done < r->n_refuse) {
                        pthread_mutex_lock(&r->lock);
                        r->refused_ms[r->n_refused++] = now_ms();
                        pthread_cond_broadcast(&r->cond);
                        pthread_mutex_unlock(&r->lock);
                        close(c.fd);
                        continue;
                }
                wire_buf_init(&c.buf, 0);
                m = read_msg(&c, 5000);
                if (!m || !streq_ptr(json_string_value(json_object_get(m, "method")), "Writer.Register")) {
                        json_decref(m);
                        close(c.fd);
                        wire_buf_done(&c.buf);
                        break;
                }
                c.register_params = json_incref(json_object_get(m, "params"));
                c.registered_ms = now_ms();
                snprintf(inst, sizeof(inst), "{00000000-0000-4000-8000-00000000000%u}", r->n_conns + 1);
                res = wire_result(json_integer_value(json_object_get(m, "id")),
                                  json_pack("{s:O, s:s, s:[]}", "writer_id",
                                            json_object_get(c.register_params, "writer_id"), "instance_id", inst,
                                            "volumes"));
                json_decref(m);
                text = wire_dump(res, &len);
                json_decref(res);
                if (text)
                        (void)write_all(c.fd, text, len);
                pthread_mutex_lock(&r->lock);
                r->conns[r->n_conns++] = c;
                pthread_cond_broadcast(&r->cond);
                pthread_mutex_unlock(&r->lock);
        }
        return NULL;
}

static void registrar_start(struct registrar *r, pthread_t *t, unsigned n_refuse, unsigned n_answer)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        *r = (struct registrar){ .n_refuse = n_refuse, .n_answer = n_answer };
        pthread_mutex_init(&r->lock, NULL);
        pthread_cond_init(&r->cond, NULL);
        r->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(r->listen_fd >= 0);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
        unlink(sock_path);
        assert_int_equal(bind(r->listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        assert_int_equal(listen(r->listen_fd, 8), 0);
        assert_int_equal(pthread_create(t, NULL, registrar_main, r), 0);
}

static void registrar_stop(struct registrar *r, pthread_t t)
{
        /* Unblock a pending accept(). */
        shutdown(r->listen_fd, SHUT_RDWR);
        pthread_join(t, NULL);
        close(r->listen_fd);
        unlink(sock_path);
        for (unsigned i = 0; i < r->n_conns; i++) {
                if (r->conns[i].fd >= 0)
                        close(r->conns[i].fd);
                wire_buf_done(&r->conns[i].buf);
                json_decref(r->conns[i].register_params);
        }
}

static struct conn *wait_conn(struct registrar *r, unsigned i)
{
        struct timespec ts = timespec_from_us(clock_realtime_us() + 5 * USEC_PER_SEC);
        struct conn *c = NULL;

        pthread_mutex_lock(&r->lock);
        while (r->n_conns <= i)
                if (pthread_cond_timedwait(&r->cond, &r->lock, &ts) != 0)
                        break;
        if (r->n_conns > i)
                c = &r->conns[i];
        pthread_mutex_unlock(&r->lock);
        assert_non_null(c);
        return c;
}

static void send_event(struct conn *c, int id, const char *event, const char *set, int timeout_ms)
{
        char buf[512];

        snprintf(buf, sizeof(buf),
                 "{\"id\":%d,\"method\":\"Writer.Event\",\"params\":{\"event\":\"%s\",\"set_id\":\"%s\","
                 "\"timeout_ms\":%d,\"volumes\":[\"/srv\"],\"components\":[]}}\n",
                 id, event, set, timeout_ms);
        assert_int_equal(write_all(c->fd, buf, strlen(buf)), 0);
}

/* The writer's reply to request 'id': its result object (a new reference). */
static json_t *reply_to(struct conn *c, int id)
{
        json_t *m = read_msg(c, 5000), *r;

        assert_non_null(m);
        assert_int_equal(json_integer_value(json_object_get(m, "id")), id);
        r = json_incref(json_object_get(m, "result"));
        json_decref(m);
        assert_non_null(r);
        return r;
}

static void expect_ok(struct conn *c, int id)
{
        json_t *r = reply_to(c, id);

        assert_true(json_is_true(json_object_get(r, "ok")));
        json_decref(r);
}

/* ---- the writer ---- */

struct app {
        atomic_int n[_VSS_EVENT_MAX];
        enum vss_abort_reason reason;
        char abort_set[VSS_ID_STRING_MAX];
        uint64_t abort_ms, freeze_ms;
        int freeze_sleep_ms;
        int64_t abort_time_left;
};

static bool on_any(vss_writer *w, void *userdata)
{
        struct app *a = userdata;
        enum vss_event e = vss_writer_get_current_event(w);
        vss_id set;

        assert_true(e < _VSS_EVENT_MAX);
        a->n[e]++;
        if (e == VSS_EVENT_FREEZE) {
                a->freeze_ms = now_ms();
                if (a->freeze_sleep_ms)
                        usleep((useconds_t)a->freeze_sleep_ms * 1000);
        }
        if (e == VSS_EVENT_ABORT) {
                a->abort_ms = now_ms();
                a->reason = vss_writer_get_abort_reason(w);
                a->abort_time_left = vss_writer_get_time_left_ms(w);
                vss_writer_get_snapshot_set_id(w, &set);
                vss_id_format(&set, a->abort_set);
                /* The set's volumes are there for a local Abort too. */
                assert_int_equal(vss_writer_get_volume_count(w), 1);
                assert_string_equal(vss_writer_get_volume(w, 0), "/srv");
        }
        return true;
}

static vss_writer *writer_new(struct app *a, bool no_reconnect)
{
        static const struct vss_writer_handlers h = {
                on_any, on_any, on_any, on_any, on_any, on_any, on_any, on_any, on_any, on_any, on_any,
        };
        struct vss_writer_options o = {
                .name = "Deadline Writer",
                .freeze_timeout_ms = FREEZE_MS,
                .socket_path = sock_path,
                .no_reconnect = no_reconnect,
        };
        vss_writer *w;

        assert_int_equal(vss_writer_new(&o, &h, a, &w), VSS_S_OK);
        return w;
}

/* Dispatches until the writer has seen 'count' events 'e', or 'ms' pass. */
static void dispatch_until(vss_writer *w, struct app *a, enum vss_event e, int count, int ms)
{
        uint64_t end = now_ms() + (uint64_t)ms;

        while (a->n[e] < count && now_ms() < end)
                assert_int_equal(vss_writer_dispatch(w, 20), VSS_S_OK);
}

/* Subscribed, then PrepareForSnapshot and Freeze of SET_A handled. */
static struct conn *frozen_writer(struct registrar *r, pthread_t *t, vss_writer **ret_w, struct app *a,
                                  bool no_reconnect, unsigned n_answer)
{
        struct conn *c;

        registrar_start(r, t, 0, n_answer);
        *ret_w = writer_new(a, no_reconnect);
        assert_int_equal(vss_writer_subscribe(*ret_w), VSS_S_OK);
        c = wait_conn(r, 0);
        send_event(c, 1, "PrepareForSnapshot", SET_A, 5000);
        dispatch_until(*ret_w, a, VSS_EVENT_PREPARE_SNAPSHOT, 1, 2000);
        expect_ok(c, 1);
        send_event(c, 2, "Freeze", SET_A, FREEZE_MS);
        dispatch_until(*ret_w, a, VSS_EVENT_FREEZE, 1, 2000);
        expect_ok(c, 2);
        return c;
}

static void test_deadline(void **state)
{
        struct registrar r;
        struct app a = { 0 };
        vss_writer *w;
        pthread_t t;
        struct conn *c = frozen_writer(&r, &t, &w, &a, true, 1);
        uint64_t waited;
        json_t *res;

        /* Nothing comes (vssd is stopped): dispatch wakes up for the deadline by itself. */
        dispatch_until(w, &a, VSS_EVENT_ABORT, 1, 5000);
        assert_int_equal(a.n[VSS_EVENT_ABORT], 1);
        waited = a.abort_ms - a.freeze_ms;
        if (waited < FREEZE_MS + VSS_WRITER_FREEZE_GRACE_MS || waited > FREEZE_MS + VSS_WRITER_FREEZE_GRACE_MS + 300)
                fail_msg("on_abort ran %llu ms after Freeze, expected %d..%d", (unsigned long long)waited,
                         FREEZE_MS + VSS_WRITER_FREEZE_GRACE_MS, FREEZE_MS + VSS_WRITER_FREEZE_GRACE_MS + 300);
        assert_int_equal(a.reason, VSS_ABORT_FREEZE_DEADLINE);
        assert_string_equal(a.abort_set, SET_A);
        assert_true(a.abort_time_left > 0 && a.abort_time_left <= FREEZE_MS);

        /* vssd wakes up: its late Thaw fails as timed out and on_thaw does not run. */
        send_event(c, 3, "Thaw", SET_A, 5000);
        assert_int_equal(vss_writer_dispatch(w, 1000), VSS_S_OK);
        res = reply_to(c, 3);
        assert_false(json_is_true(json_object_get(res, "ok")));
        assert_string_equal(json_string_value(json_object_get(res, "failure")), "0x800423F2");
        assert_non_null(strstr(json_string_value(json_object_get(res, "message")), "freeze deadline"));
        json_decref(res);
        assert_int_equal(a.n[VSS_EVENT_THAW], 0);

        /* Its Aborts (freeze timer, end of set) are answered without running on_abort again. */
        send_event(c, 4, "Abort", SET_A, 5000);
        send_event(c, 5, "Abort", SET_A, 5000);
        assert_int_equal(vss_writer_dispatch(w, 1000), VSS_S_OK);
        expect_ok(c, 4);
        expect_ok(c, 5);
        assert_int_equal(a.n[VSS_EVENT_ABORT], 1);
        send_event(c, 6, "BackupShutdown", SET_A, 5000);
        dispatch_until(w, &a, VSS_EVENT_BACKUP_SHUTDOWN, 1, 2000);
        expect_ok(c, 6);

        /* And the next set works normally. */
        send_event(c, 7, "PrepareForSnapshot", SET_B, 5000);
        send_event(c, 8, "Freeze", SET_B, FREEZE_MS);
        send_event(c, 9, "Thaw", SET_B, 5000);
        dispatch_until(w, &a, VSS_EVENT_THAW, 1, 2000);
        expect_ok(c, 7);
        expect_ok(c, 8);
        expect_ok(c, 9);
        /* Well past B's deadline: no abort after its Thaw. */
        assert_int_equal(vss_writer_dispatch(w, FREEZE_MS + VSS_WRITER_FREEZE_GRACE_MS + 300), VSS_S_OK);
        assert_int_equal(a.n[VSS_EVENT_ABORT], 1);

        vss_writer_free(w);
        registrar_stop(&r, t);
}

static void test_received_thaw_wins(void **state)
{
        struct registrar r;
        struct app a = { 0 };
        vss_writer *w;
        pthread_t t;
        struct conn *c = frozen_writer(&r, &t, &w, &a, true, 1);

        /* The writer's thread is busy past the deadline; the Thaw arrived meanwhile. */
        usleep(300 * 1000);
        send_event(c, 3, "Thaw", SET_A, 5000);
        usleep((FREEZE_MS + VSS_WRITER_FREEZE_GRACE_MS) * 1000);
        assert_int_equal(vss_writer_dispatch(w, 0), VSS_S_OK);
        expect_ok(c, 3);
        assert_int_equal(a.n[VSS_EVENT_THAW], 1);
        assert_int_equal(vss_writer_dispatch(w, 300), VSS_S_OK);
        assert_int_equal(a.n[VSS_EVENT_ABORT], 0);
        vss_writer_free(w);
        assert_int_equal(a.n[VSS_EVENT_ABORT], 0);
        registrar_stop(&r, t);
}

static void test_fd_wakes_at_deadline(void **state)
{
        struct registrar r;
        struct app a = { 0 };
        vss_writer *w;
        pthread_t t;
        uint64_t woke;

        frozen_writer(&r, &t, &w, &a, true, 1);
        struct pollfd p = { .fd = vss_writer_fd(w), .events = POLLIN };
        assert_true(p.fd >= 0);
        /* An event loop that only polls the writer's fd, with no timeout of its own. */
        assert_int_equal(poll(&p, 1, 5000), 1);
        woke = now_ms() - a.freeze_ms;
        assert_true(woke >= FREEZE_MS + VSS_WRITER_FREEZE_GRACE_MS);
        assert_true(woke <= FREEZE_MS + VSS_WRITER_FREEZE_GRACE_MS + 300);
        assert_int_equal(vss_writer_dispatch(w, 0), VSS_S_OK);
        assert_int_equal(a.n[VSS_EVENT_ABORT], 1);
        assert_int_equal(a.reason, VSS_ABORT_FREEZE_DEADLINE);
        /* Nothing is due any more: the fd is quiet. */
        assert_int_equal(poll(&p, 1, 200), 0);
        vss_writer_free(w);
        registrar_stop(&r, t);
}

static void test_on_freeze_overruns(void **state)
{
        struct registrar r;
        struct app a = { .freeze_sleep_ms = FREEZE_MS + VSS_WRITER_FREEZE_GRACE_MS + 200 };
        vss_writer *w;
        pthread_t t;
        struct conn *c;
        json_t *res;

        registrar_start(&r, &t, 0, 1);
        w = writer_new(&a, true);
        assert_int_equal(vss_writer_subscribe(w), VSS_S_OK);
        c = wait_conn(&r, 0);
        send_event(c, 1, "Freeze", SET_A, FREEZE_MS);
        dispatch_until(w, &a, VSS_EVENT_FREEZE, 1, 5000);
        res = reply_to(c, 1);
        /* on_abort ran before the reply went out. */
        assert_int_equal(a.n[VSS_EVENT_ABORT], 1);
        assert_int_equal(a.reason, VSS_ABORT_FREEZE_DEADLINE);
        assert_false(json_is_true(json_object_get(res, "ok")));
        assert_string_equal(json_string_value(json_object_get(res, "failure")), "0x800423F2");
        assert_non_null(strstr(json_string_value(json_object_get(res, "message")), "on_freeze returned after"));
        json_decref(res);
        send_event(c, 2, "Abort", SET_A, 5000);
        assert_int_equal(vss_writer_dispatch(w, 1000), VSS_S_OK);
        expect_ok(c, 2);
        assert_int_equal(a.n[VSS_EVENT_ABORT], 1);
        vss_writer_free(w);
        registrar_stop(&r, t);
}

static void test_lost_connection_no_reconnect(void **state)
{
        struct registrar r;
        struct app a = { 0 };
        vss_writer *w;
        pthread_t t;
        struct conn *c = frozen_writer(&r, &t, &w, &a, true, 1);
        uint64_t start;
        vss_hresult hr;

        start = now_ms();
        close(c->fd);
        c->fd = -EBADF;
        do
                hr = vss_writer_dispatch(w, 2000);
        while (hr == VSS_S_OK && now_ms() - start < 2000);
        assert_int_equal(hr, VSS_E_WRITER_INFRASTRUCTURE);
        assert_int_equal(a.n[VSS_EVENT_ABORT], 1);
        assert_int_equal(a.reason, VSS_ABORT_CONNECTION_LOST);
        assert_true(a.abort_ms - start < 200);
        assert_false(vss_writer_is_connected(w));
        assert_non_null(strstr(vss_writer_get_error_detail(w), "vssd closed the connection"));
        assert_int_equal(vss_writer_fd(w), -1);
        /* The old contract: it may subscribe again (nobody listens any more). */
        vss_writer_free(w);
        assert_int_equal(a.n[VSS_EVENT_ABORT], 1);
        registrar_stop(&r, t);
}

static void test_reconnect(void **state)
{
        struct registrar r;
        struct app a = { 0 };
        vss_writer *w;
        vss_id inst;
        char buf[VSS_ID_STRING_MAX];
        pthread_t t;
        uint64_t lost;
        struct conn *c;

        /* One registration, then four attempts closed at once, then one answered. */
        registrar_start(&r, &t, 0, 1);
        w = writer_new(&a, false);
        assert_int_equal(vss_writer_subscribe(w), VSS_S_OK);
        c = wait_conn(&r, 0);
        send_event(c, 1, "PrepareForSnapshot", SET_A, 5000);
        send_event(c, 2, "Freeze", SET_A, FREEZE_MS);
        dispatch_until(w, &a, VSS_EVENT_FREEZE, 1, 2000);
        expect_ok(c, 1);
        expect_ok(c, 2);
        /* The registrar thread is done with its one connection; the next round refuses four
         * attempts, then answers one (in conns[0] again). */
        pthread_join(t, NULL);
        struct conn first = r.conns[0];
        r.conns[0] = (struct conn){ .fd = -EBADF };
        r.n_conns = 0;
        r.n_refused = 0;
        r.n_refuse = 4;
        r.n_answer = 1;
        assert_int_equal(pthread_create(&t, NULL, registrar_main, &r), 0);

        lost = now_ms();
        close(first.fd);
        wire_buf_done(&first.buf);
        dispatch_until(w, &a, VSS_EVENT_ABORT, 1, 1000);
        assert_int_equal(a.n[VSS_EVENT_ABORT], 1);
        assert_int_equal(a.reason, VSS_ABORT_CONNECTION_LOST);
        assert_true(a.abort_ms - lost < 200);

        /* Dispatch until registered again. */
        uint64_t end = now_ms() + 5000;
        while (!vss_writer_is_connected(w) && now_ms() < end)
                assert_int_equal(vss_writer_dispatch(w, 50), VSS_S_OK);
        assert_true(vss_writer_is_connected(w));
        c = wait_conn(&r, 0);

        /* Attempts 100, 200, 400, 800 ms apart (each at least that, not much more). */
        static const unsigned gaps[] = { 100, 200, 400, 800 };
        uint64_t prev = lost;
        uint64_t attempts[5] = { r.refused_ms[0], r.refused_ms[1], r.refused_ms[2], r.refused_ms[3],
                                 c->registered_ms };
        for (size_t i = 0; i < ARRAY_SIZE(attempts); i++) {
                uint64_t gap = attempts[i] - prev, want = i < 4 ? gaps[i] : 1600;
                if (gap + 5 < want || gap > want + 150)
                        fail_msg("reconnection attempt %zu came %llu ms after the previous one, expected %llu",
                                 i + 1, (unsigned long long)gap, (unsigned long long)want);
                prev = attempts[i];
        }

        /* Same writer id, new instance id. */
        assert_string_equal(json_string_value(json_object_get(c->register_params, "writer_id")),
                            json_string_value(json_object_get(first.register_params, "writer_id")));
        vss_writer_get_instance_id(w, &inst);
        assert_string_equal(vss_id_format(&inst, buf), "{00000000-0000-4000-8000-000000000001}");
        json_decref(first.register_params);

        /* Events flow on the new connection; the old set is forgotten. */
        send_event(c, 1, "Identify", SET_A, 5000);
        dispatch_until(w, &a, VSS_EVENT_IDENTIFY, 1, 2000);
        expect_ok(c, 1);
        assert_int_equal(a.n[VSS_EVENT_ABORT], 1);
        vss_writer_free(w);
        registrar_stop(&r, t);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_deadline),
                cmocka_unit_test(test_received_thaw_wins),
                cmocka_unit_test(test_fd_wakes_at_deadline),
                cmocka_unit_test(test_on_freeze_overruns),
                cmocka_unit_test(test_lost_connection_no_reconnect),
                cmocka_unit_test(test_reconnect),
        };

        snprintf(sock_path, sizeof(sock_path), "/tmp/libvss-deadline-%d.sock", (int)getpid());
        return cmocka_run_group_tests(tests, NULL, NULL);
}
