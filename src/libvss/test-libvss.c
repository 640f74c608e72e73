/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests of libvss against a scripted peer: a thread plays vssd on a Unix
 * socket in /tmp, so the writer's event handling (veto codes, messages,
 * backup metadata, refusal of unknown methods, garbage lines) and the
 * requester's local order checks are tested through the real socket code.
 */

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <cmocka.h>

#include "basic/fs-util.h"
#include "basic/macro.h"
#include "basic/wire.h"
#include "vss/client.h"
#include "vss/requester.h"
#include "vss/writer.h"

static char sock_path[108];

static int listen_on(const char *path)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        assert_true(fd >= 0);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        unlink(path);
        assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        assert_int_equal(listen(fd, 4), 0);
        return fd;
}

struct peer {
        int listen_fd;
        json_t *replies[4];     /* the writer's replies, in order */
        json_t *register_params;
};

static json_t *read_msg(int fd, struct wire_buf *b)
{
        char *line, err[128];
        size_t len;
        struct wire_msg m;
        json_t *r;

        while (wire_buf_next_line(b, &line, &len) <= 0)
                if (wire_buf_fill(b, fd) <= 0)
                        return NULL;
        if (VSS_FAILED(wire_parse(line, len, &m, err, sizeof(err))))
                return NULL;
        r = json_incref(m.root);
        wire_msg_done(&m);
        return r;
}

static void send_line(int fd, const char *s)
{
        write_all(fd, s, strlen(s));
}

static void *peer_main(void *userdata)
{
        struct peer *p = userdata;
        struct wire_buf b;
        json_t *m;
        char buf[1024];
        int fd;

        wire_buf_init(&b, 0);
        fd = accept4(p->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        m = read_msg(fd, &b);
        p->register_params = json_incref(json_object_get(m, "params"));
        snprintf(buf, sizeof(buf),
                 "{\"id\":%lld,\"result\":{\"writer_id\":\"{11111111-2222-3333-4444-555555555555}\","
                 "\"instance_id\":\"{66666666-2222-3333-4444-555555555555}\",\"volumes\":[\"/a\"]}}\n",
                 (long long)json_integer_value(json_object_get(m, "id")));
        json_decref(m);
        send_line(fd, buf);

        /* Garbage first: the writer must skip it. */
        send_line(fd, "this is not json\n");
        send_line(fd, "{\"id\":1,\"method\":\"Writer.Event\",\"params\":{\"event\":\"Freeze\","
                      "\"set_id\":\"{aaaaaaaa-2222-3333-4444-555555555555}\",\"timeout_ms\":5000,"
                      "\"volumes\":[\"/a\",\"/b\"]}}\n");
        p->replies[0] = read_msg(fd, &b);
        send_line(fd, "{\"id\":2,\"method\":\"Writer.Event\",\"params\":{\"event\":\"Thaw\","
                      "\"set_id\":\"{aaaaaaaa-2222-3333-4444-555555555555}\",\"timeout_ms\":5000,"
                      "\"volumes\":[\"/a\"],\"shadows\":[{\"volume\":\"/a\",\"device\":\"/a/.openvss/x\"}]}}\n");
        p->replies[1] = read_msg(fd, &b);
        send_line(fd, "{\"id\":3,\"method\":\"Bogus.Method\"}\n");
        p->replies[2] = read_msg(fd, &b);
        send_line(fd, "{\"id\":4,\"method\":\"Writer.Event\",\"params\":{\"event\":\"Abort\"}}\n");
        p->replies[3] = read_msg(fd, &b);
        close(fd);
        wire_buf_done(&b);
        return NULL;
}

struct app {
        int events;
        bool in_session;
};

static bool on_freeze(vss_writer *w, void *userdata)
{
        struct app *a = userdata;
        vss_id set;
        char id[VSS_ID_STRING_MAX];

        a->events++;
        assert_int_equal(vss_writer_get_current_event(w), VSS_EVENT_FREEZE);
        vss_writer_get_snapshot_set_id(w, &set);
        assert_string_equal(vss_id_format(&set, id), "{aaaaaaaa-2222-3333-4444-555555555555}");
        assert_int_equal(vss_writer_get_volume_count(w), 2);
        assert_string_equal(vss_writer_get_volume(w, 1), "/b");
        assert_true(vss_writer_get_time_left_ms(w) > 4000);
        assert_true(vss_writer_get_time_left_ms(w) <= 5000);
        /* Metadata is allowed at Freeze, but a failure must be a writer failure. */
        assert_int_equal(vss_writer_set_failure(w, VSS_E_BAD_STATE), VSS_E_INVALIDARG);
        assert_int_equal(vss_writer_set_failure(w, VSS_E_WRITERERROR_RETRYABLE), VSS_S_OK);
        assert_int_equal(vss_writer_set_failure_message(w, "busy"), VSS_S_OK);
        a->in_session = true;
        return false;
}

static bool on_thaw(vss_writer *w, void *userdata)
{
        struct app *a = userdata;

        a->events++;
        assert_true(a->in_session);
        assert_string_equal(vss_writer_get_snapshot_device(w, "/a"), "/a/.openvss/x");
        assert_null(vss_writer_get_snapshot_device(w, "/b"));
        assert_true(vss_writer_is_component_selected(w, "", "db"));
        assert_int_equal(vss_writer_set_backup_metadata(w, "", "db", "first"), VSS_S_OK);
        assert_int_equal(vss_writer_set_backup_metadata(w, "", "db", "label"), VSS_S_OK);
        return true;
}

static bool on_abort(vss_writer *w, void *userdata)
{
        struct app *a = userdata;

        a->events++;
        /* Not allowed at Abort. */
        assert_int_equal(vss_writer_set_backup_metadata(w, "", "db", "x"), VSS_E_BAD_STATE);
        return false; /* without a code: NONRETRYABLE */
}

static void test_writer_events(void **state)
{
        struct peer p = { .listen_fd = listen_on(sock_path) };
        struct app a = { 0 };
        const char *vols[] = { "/a", NULL };
        struct vss_writer_options o = { .name = "Test Writer", .volumes = vols, .socket_path = sock_path,
                                        .no_reconnect = true };
        struct vss_writer_handlers h = { .on_freeze = on_freeze, .on_thaw = on_thaw, .on_abort = on_abort };
        vss_writer *w;
        vss_id id;
        char buf[VSS_ID_STRING_MAX];
        pthread_t t;
        vss_hresult hr;

        assert_int_equal(pthread_create(&t, NULL, peer_main, &p), 0);
        assert_int_equal(vss_writer_new(&o, &h, &a, &w), VSS_S_OK);
        assert_int_equal(vss_writer_add_component(w, VSS_CT_DATABASE, NULL, "db", "Database", true), VSS_S_OK);
        assert_int_equal(vss_writer_add_component(w, VSS_CT_DATABASE, "", "db", NULL, true),
                         VSS_E_OBJECT_ALREADY_EXISTS);
        assert_int_equal(vss_writer_add_component_file(w, "", "db", "/a/db", NULL, true), VSS_S_OK);
        /* Handler-only calls are refused outside a handler. */
        assert_int_equal(vss_writer_set_failure(w, VSS_E_WRITERERROR_RETRYABLE), VSS_E_BAD_STATE);
        assert_int_equal(vss_writer_subscribe(w), VSS_S_OK);
        assert_int_equal(vss_writer_subscribe(w), VSS_E_WRITER_ALREADY_SUBSCRIBED);
        vss_writer_get_instance_id(w, &id);
        assert_string_equal(vss_id_format(&id, buf), "{66666666-2222-3333-4444-555555555555}");

        do
                hr = vss_writer_dispatch(w, 5000);
        while (hr == VSS_S_OK);
        assert_int_equal(hr, VSS_E_WRITER_INFRASTRUCTURE);
        pthread_join(t, NULL);
        assert_int_equal(a.events, 3);

        /* Registration: a name-based id and the component with its file. */
        vss_id_from_name("Test Writer", &id);
        assert_string_equal(json_string_value(json_object_get(p.register_params, "writer_id")),
                            vss_id_format(&id, buf));
        assert_string_equal(json_string_value(json_object_get(
                                    json_array_get(json_object_get(json_array_get(json_object_get(
                                                                           p.register_params, "components"),
                                                                   0),
                                                   "files"),
                                    0),
                                    "path")),
                            "/a/db");

        json_t *r0 = json_object_get(p.replies[0], "result");
        assert_false(json_is_true(json_object_get(r0, "ok")));
        assert_string_equal(json_string_value(json_object_get(r0, "failure")), "0x800423F3");
        assert_string_equal(json_string_value(json_object_get(r0, "message")), "busy");

        json_t *r1 = json_object_get(p.replies[1], "result");
        assert_true(json_is_true(json_object_get(r1, "ok")));
        assert_int_equal(json_array_size(json_object_get(r1, "components")), 1);
        assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(r1, "components"), 0),
                                                              "backup_metadata")),
                            "label");

        json_t *e2 = json_object_get(p.replies[2], "error");
        assert_non_null(e2);
        assert_string_equal(json_string_value(json_object_get(e2, "hresult")), "0x8004232F");

        json_t *r3 = json_object_get(p.replies[3], "result");
        assert_string_equal(json_string_value(json_object_get(r3, "failure")), "0x800423F4");

        for (size_t i = 0; i < ARRAY_SIZE(p.replies); i++)
                json_decref(p.replies[i]);
        json_decref(p.register_params);
        vss_writer_free(w);
        close(p.listen_fd);
        unlink(sock_path);
}

static void test_requester_order(void **state)
{
        int lfd = listen_on(sock_path);
        vss_backup *b;
        struct vss_writer_status st;

        /* The listener never accepts: these checks must not need a round trip. */
        assert_int_equal(vss_backup_new(sock_path, &b), VSS_S_OK);
        assert_int_equal(vss_backup_do_snapshot_set(b), VSS_E_BAD_STATE);
        assert_non_null(strstr(vss_backup_get_error_detail(b), "DoSnapshotSet is not possible before"));
        assert_int_equal(vss_backup_backup_complete(b, true), VSS_E_BAD_STATE);
        assert_int_equal(vss_backup_prepare_for_backup(b), VSS_E_BAD_STATE);
        assert_int_equal(vss_backup_add_to_snapshot_set(b, "/x", NULL, NULL), VSS_E_BAD_STATE);
        assert_int_equal(vss_backup_abort_backup(b), VSS_E_BAD_STATE);
        assert_int_equal(vss_backup_get_writer_status_count(b), 0);
        assert_int_equal(vss_backup_get_writer_status(b, 0, &st), VSS_E_OBJECT_NOT_FOUND);
        assert_int_equal(vss_backup_set_backup_state(b, false, false, 99), VSS_E_INVALIDARG);

        /* Restore order, also without a round trip. */
        vss_id wid;
        vss_id_generate(&wid);
        assert_int_equal(vss_backup_pre_restore(b), VSS_E_BAD_STATE);
        assert_non_null(strstr(vss_backup_get_error_detail(b), "no component is selected"));
        assert_int_equal(vss_backup_post_restore(b), VSS_E_BAD_STATE);
        assert_non_null(strstr(vss_backup_get_error_detail(b), "PostRestore is not possible"));
        assert_int_equal(vss_backup_add_new_target(b, NULL, NULL, NULL, "/srv", "/new"), VSS_E_OBJECT_NOT_FOUND);
        assert_int_equal(vss_backup_add_restore_component(b, &wid, "W", "", "db", "label"), VSS_S_OK);
        assert_int_equal(vss_backup_add_restore_component(b, &wid, "W", NULL, "db", NULL), VSS_E_OBJECT_ALREADY_EXISTS);
        assert_int_equal(vss_backup_add_restore_component(b, &wid, "W", "", "", NULL), VSS_E_INVALIDARG);
        assert_int_equal(vss_backup_add_new_target(b, NULL, NULL, NULL, "/srv", "/new"), VSS_S_OK);
        assert_int_equal(vss_backup_add_new_target(b, &wid, "", "other", "/srv", "/new"), VSS_E_OBJECT_NOT_FOUND);
        assert_int_equal(vss_backup_set_file_restore_status(b, NULL, NULL, NULL, VSS_RS_ALL), VSS_E_BAD_STATE);
        assert_int_equal(vss_backup_set_file_restore_status(b, NULL, NULL, NULL, 7), VSS_E_INVALIDARG);
        vss_backup_free(b);
        close(lfd);
        unlink(sock_path);
}

static void test_no_daemon(void **state)
{
        vss_client *c = NULL;
        vss_backup *b = NULL;

        unlink(sock_path);
        assert_int_equal(vss_client_connect(sock_path, &c), VSS_E_WRITER_INFRASTRUCTURE);
        assert_null(c);
        assert_int_equal(vss_backup_new(sock_path, &b), VSS_E_WRITER_INFRASTRUCTURE);
        assert_null(b);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_writer_events),
                cmocka_unit_test(test_requester_order),
                cmocka_unit_test(test_no_daemon),
        };

        snprintf(sock_path, sizeof(sock_path), "/tmp/libvss-test-%d.sock", (int)getpid());
        return cmocka_run_group_tests(tests, NULL, NULL);
}
