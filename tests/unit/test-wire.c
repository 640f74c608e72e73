/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The wire format of docs/protocol.md (src/basic/wire.c): line framing over
 * reads split anywhere, several lines per read, the 1 MiB limit, and the
 * classification of requests, results and errors, including the malformed
 * messages a hostile peer sends.  Framing is tested both through
 * wire_buf_append() and through a real socketpair with wire_buf_fill().
 */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "basic/fs-util.h"
#include "basic/wire.h"

static void test_split_reads(void **state)
{
        static const char text[] = "{\"id\":1,\"method\":\"Hello\"}\n{\"id\":2,\"result\":{}}\n";
        size_t total = strlen(text);

        /* Cut the stream at every possible position, one piece of each size. */
        for (size_t piece = 1; piece <= total; piece++) {
                struct wire_buf b;
                char *line;
                size_t len, off = 0;
                int got = 0;

                wire_buf_init(&b, 0);
                while (off < total || got < 2) {
                        size_t n = off < total ? (total - off < piece ? total - off : piece) : 0;
                        int r;

                        if (n > 0) {
                                assert_int_equal(wire_buf_append(&b, text + off, n), 0);
                                off += n;
                        }
                        while ((r = wire_buf_next_line(&b, &line, &len)) == 1) {
                                if (got == 0)
                                        assert_string_equal(line, "{\"id\":1,\"method\":\"Hello\"}");
                                else
                                        assert_string_equal(line, "{\"id\":2,\"result\":{}}");
                                assert_int_equal(len, strlen(line));
                                got++;
                        }
                        assert_int_equal(r, 0);
                        if (n == 0)
                                break;
                }
                assert_int_equal(got, 2);
                wire_buf_done(&b);
        }
}

static void test_many_lines_one_read(void **state)
{
        struct wire_buf b;
        char text[4096], *line;
        size_t len, n = 0;
        int i, r;

        for (i = 0; i < 100; i++)
                n += (size_t)snprintf(text + n, sizeof(text) - n, "{\"id\":%d}\n", i);
        wire_buf_init(&b, 0);
        assert_int_equal(wire_buf_append(&b, text, n), 0);
        for (i = 0; (r = wire_buf_next_line(&b, &line, &len)) == 1; i++) {
                char want[32];
                snprintf(want, sizeof(want), "{\"id\":%d}", i);
                assert_string_equal(line, want);
        }
        assert_int_equal(r, 0);
        assert_int_equal(i, 100);
        wire_buf_done(&b);
}

static void test_empty_lines_and_partial(void **state)
{
        struct wire_buf b;
        char *line;
        size_t len;

        wire_buf_init(&b, 0);
        assert_int_equal(wire_buf_append(&b, "\n\n{\"a\"", 6), 0);
        assert_int_equal(wire_buf_next_line(&b, &line, &len), 1);
        assert_int_equal(len, 0);
        assert_int_equal(wire_buf_next_line(&b, &line, &len), 1);
        assert_int_equal(len, 0);
        assert_int_equal(wire_buf_next_line(&b, &line, &len), 0);
        assert_int_equal(wire_buf_append(&b, ":1}\n", 4), 0);
        assert_int_equal(wire_buf_next_line(&b, &line, &len), 1);
        assert_string_equal(line, "{\"a\":1}");
        assert_int_equal(wire_buf_next_line(&b, &line, &len), 0);
        wire_buf_done(&b);
}

static void test_oversized(void **state)
{
        struct wire_buf b;
        char *big, *line;
        size_t len;

        /* A small limit: the pending line exceeds it without a newline. */
        wire_buf_init(&b, 16);
        assert_int_equal(wire_buf_append(&b, "0123456789", 10), 0);
        assert_int_equal(wire_buf_next_line(&b, &line, &len), 0);
        assert_int_equal(wire_buf_append(&b, "0123456789", 10), 0);
        assert_int_equal(wire_buf_next_line(&b, &line, &len), -EMSGSIZE);
        wire_buf_done(&b);

        /* Exactly max bytes including the newline is fine; one more is not. */
        wire_buf_init(&b, 16);
        assert_int_equal(wire_buf_append(&b, "012345678901234\n", 16), 0);
        assert_int_equal(wire_buf_next_line(&b, &line, &len), 1);
        assert_int_equal(len, 15);
        assert_int_equal(wire_buf_append(&b, "0123456789012345\n", 17), 0);
        assert_int_equal(wire_buf_next_line(&b, &line, &len), -EMSGSIZE);
        wire_buf_done(&b);

        /* The real limit: 1 MiB + a bit, delivered in one append. */
        big = malloc(WIRE_MESSAGE_MAX + 2);
        assert_non_null(big);
        memset(big, 'x', WIRE_MESSAGE_MAX + 1);
        big[WIRE_MESSAGE_MAX + 1] = '\n';
        wire_buf_init(&b, 0);
        assert_int_equal(b.max, WIRE_MESSAGE_MAX);
        assert_int_equal(wire_buf_append(&b, big, WIRE_MESSAGE_MAX + 2), 0);
        assert_int_equal(wire_buf_next_line(&b, &line, &len), -EMSGSIZE);
        wire_buf_done(&b);

        /* ...and in 64 KiB pieces, as from a socket, without a newline at all. */
        wire_buf_init(&b, 0);
        for (size_t off = 0;; off += 65536) {
                int r;
                assert_int_equal(wire_buf_append(&b, big, 65536), 0);
                r = wire_buf_next_line(&b, &line, &len);
                if (r == -EMSGSIZE) {
                        assert_true(off + 65536 >= WIRE_MESSAGE_MAX);
                        break;
                }
                assert_int_equal(r, 0);
                assert_true(off < 2 * WIRE_MESSAGE_MAX);
        }
        wire_buf_done(&b);
        free(big);
}

static void test_fill_socket(void **state)
{
        static const char text[] = "{\"id\":1,\"method\":\"Writers.List\"}\n{\"id\":2,\"method\":\"Ev";
        struct wire_buf b;
        char *line;
        size_t len;
        int sv[2];

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        wire_buf_init(&b, 0);

        assert_int_equal(write_all(sv[0], text, strlen(text)), 0);
        assert_true(wire_buf_fill(&b, sv[1]) > 0);
        assert_int_equal(wire_buf_next_line(&b, &line, &len), 1);
        assert_string_equal(line, "{\"id\":1,\"method\":\"Writers.List\"}");
        assert_int_equal(wire_buf_next_line(&b, &line, &len), 0);

        assert_int_equal(write_all(sv[0], "ents.List\"}\n", 12), 0);
        assert_true(wire_buf_fill(&b, sv[1]) > 0);
        assert_int_equal(wire_buf_next_line(&b, &line, &len), 1);
        assert_string_equal(line, "{\"id\":2,\"method\":\"Events.List\"}");

        close(sv[0]);
        assert_int_equal(wire_buf_fill(&b, sv[1]), 0); /* EOF */
        close(sv[1]);
        wire_buf_done(&b);
}

static vss_hresult parse(const char *s, struct wire_msg *m, char *err, size_t errlen)
{
        err[0] = 0;
        return wire_parse(s, strlen(s), m, err, errlen);
}

static void test_parse_request(void **state)
{
        struct wire_msg m;
        char err[256];

        assert_int_equal(parse("{\"id\":7,\"method\":\"Backup.StartSnapshotSet\",\"params\":{\"x\":1}}", &m, err,
                               sizeof(err)),
                         VSS_S_OK);
        assert_int_equal(m.kind, WIRE_REQUEST);
        assert_true(m.has_id);
        assert_int_equal(m.id, 7);
        assert_string_equal(m.method, "Backup.StartSnapshotSet");
        assert_true(json_is_object(m.params));
        assert_int_equal(json_integer_value(json_object_get(m.params, "x")), 1);
        wire_msg_done(&m);

        /* params may be omitted or null: an empty object. */
        assert_int_equal(parse("{\"id\":0,\"method\":\"Hello\"}", &m, err, sizeof(err)), VSS_S_OK);
        assert_int_equal(m.kind, WIRE_REQUEST);
        assert_true(json_is_object(m.params));
        assert_int_equal(json_object_size(m.params), 0);
        wire_msg_done(&m);
        assert_int_equal(parse("{\"id\":3,\"method\":\"Hello\",\"params\":null}", &m, err, sizeof(err)), VSS_S_OK);
        assert_true(json_is_object(m.params));
        wire_msg_done(&m);

        /* A notification without id is still a request; id null likewise. */
        assert_int_equal(parse("{\"method\":\"Hello\"}", &m, err, sizeof(err)), VSS_S_OK);
        assert_false(m.has_id);
        wire_msg_done(&m);
        assert_int_equal(parse("{\"id\":null,\"method\":\"Hello\"}", &m, err, sizeof(err)), VSS_S_OK);
        assert_false(m.has_id);
        wire_msg_done(&m);

        /* Unknown fields are ignored (forward compatibility). */
        assert_int_equal(parse("{\"id\":1,\"method\":\"Hello\",\"future\":[1,2,3]}", &m, err, sizeof(err)),
                         VSS_S_OK);
        assert_int_equal(m.kind, WIRE_REQUEST);
        wire_msg_done(&m);
}

static void test_parse_result_and_error(void **state)
{
        struct wire_msg m;
        char err[256];

        assert_int_equal(parse("{\"id\":9,\"result\":{\"set_id\":\"{3f5b2c1e-0a1b-4c2d-8e3f-123456789abc}\"}}", &m,
                               err, sizeof(err)),
                         VSS_S_OK);
        assert_int_equal(m.kind, WIRE_RESULT);
        assert_int_equal(m.id, 9);
        assert_non_null(m.result);
        {
                vss_id id;
                char buf[VSS_ID_STRING_MAX];
                assert_true(json_get_id(m.result, "set_id", &id));
                assert_string_equal(vss_id_format(&id, buf), "{3f5b2c1e-0a1b-4c2d-8e3f-123456789abc}");
        }
        wire_msg_done(&m);

        assert_int_equal(parse("{\"id\":4,\"error\":{\"hresult\":\"0x80042316\",\"name\":\"VSS_E_SNAPSHOT_SET_IN_"
                               "PROGRESS\",\"detail\":\"set of pid 42\"}}",
                               &m, err, sizeof(err)),
                         VSS_S_OK);
        assert_int_equal(m.kind, WIRE_ERROR);
        assert_int_equal(m.id, 4);
        assert_int_equal((uint32_t)m.hr, 0x80042316);
        assert_string_equal(m.detail, "set of pid 42");
        wire_msg_done(&m);

        /* hresult as a symbolic name, lower-case hex, bare hex, integer. */
        assert_int_equal(parse("{\"id\":4,\"error\":{\"hresult\":\"VSS_E_BAD_STATE\"}}", &m, err, sizeof(err)),
                         VSS_S_OK);
        assert_int_equal((uint32_t)m.hr, 0x80042301);
        assert_null(m.detail);
        wire_msg_done(&m);
        assert_int_equal(parse("{\"id\":4,\"error\":{\"hresult\":\"0x800423f2\"}}", &m, err, sizeof(err)), VSS_S_OK);
        assert_int_equal((uint32_t)m.hr, 0x800423F2);
        wire_msg_done(&m);
        assert_int_equal(parse("{\"id\":4,\"error\":{\"hresult\":\"800423F4\"}}", &m, err, sizeof(err)), VSS_S_OK);
        assert_int_equal((uint32_t)m.hr, 0x800423F4);
        wire_msg_done(&m);
        assert_int_equal(parse("{\"id\":4,\"error\":{\"hresult\":2147754774}}", &m, err, sizeof(err)), VSS_S_OK);
        assert_int_equal((uint32_t)m.hr, 0x80042316);
        wire_msg_done(&m);
}

static void expect_invalid(const char *line, const char *why_contains)
{
        struct wire_msg m;
        char err[256];
        vss_hresult hr = parse(line, &m, err, sizeof(err));

        if (hr != VSS_E_INVALIDARG)
                fail_msg("wire_parse(%s) returned 0x%08X, expected E_INVALIDARG", line, (uint32_t)hr);
        assert_null(m.root);
        if (strlen(err) == 0)
                fail_msg("wire_parse(%s) gave no reason", line);
        if (why_contains && !strstr(err, why_contains))
                fail_msg("wire_parse(%s): reason '%s' does not mention '%s'", line, err, why_contains);
}

static void test_parse_rejects(void **state)
{
        /* not JSON */
        expect_invalid("", NULL);
        expect_invalid("hello", NULL);
        expect_invalid("{", NULL);
        expect_invalid("{\"id\":1,\"method\":\"Hello\"", NULL);
        expect_invalid("{\"id\":1,\"method\":\"Hello\"}}", NULL);
        expect_invalid("\x01\x02\xff\xfe", NULL);
        /* not an object */
        expect_invalid("[]", "object");
        expect_invalid("[{\"id\":1,\"method\":\"Hello\"}]", "object");
        /* scalars are refused by the JSON parser itself, without a word on objects */
        expect_invalid("42", NULL);
        expect_invalid("\"str\"", NULL);
        expect_invalid("null", NULL);
        expect_invalid("true", NULL);
        /* bad ids */
        expect_invalid("{\"id\":-1,\"method\":\"Hello\"}", "id");
        expect_invalid("{\"id\":\"1\",\"method\":\"Hello\"}", "id");
        expect_invalid("{\"id\":1.5,\"method\":\"Hello\"}", "id");
        expect_invalid("{\"id\":[1],\"method\":\"Hello\"}", "id");
        expect_invalid("{\"id\":{},\"method\":\"Hello\"}", "id");
        expect_invalid("{\"id\":true,\"method\":\"Hello\"}", "id");
        /* bad method */
        expect_invalid("{\"id\":1,\"method\":\"\"}", "method");
        expect_invalid("{\"id\":1,\"method\":7}", "method");
        expect_invalid("{\"id\":1,\"method\":null}", "method");
        expect_invalid("{\"id\":1,\"method\":[\"Hello\"]}", "method");
        /* bad params */
        expect_invalid("{\"id\":1,\"method\":\"Hello\",\"params\":[]}", "params");
        expect_invalid("{\"id\":1,\"method\":\"Hello\",\"params\":\"x\"}", "params");
        expect_invalid("{\"id\":1,\"method\":\"Hello\",\"params\":3}", "params");
        /* replies */
        expect_invalid("{\"result\":{}}", "id");
        expect_invalid("{\"id\":null,\"result\":{}}", "id");
        expect_invalid("{\"id\":1}", NULL);
        expect_invalid("{\"id\":1,\"error\":{}}", "hresult");
        expect_invalid("{\"id\":1,\"error\":\"0x80042316\"}", "error");
        expect_invalid("{\"id\":1,\"error\":{\"hresult\":\"0x00000000\"}}", "hresult");
        expect_invalid("{\"id\":1,\"error\":{\"hresult\":\"bogus\"}}", "hresult");
        expect_invalid("{\"id\":1,\"error\":{\"hresult\":\"0x1234567890\"}}", "hresult");
        expect_invalid("{\"id\":1,\"error\":{\"hresult\":true}}", "hresult");
        /* duplicate keys are ambiguous */
        expect_invalid("{\"id\":1,\"id\":2,\"method\":\"Hello\"}", NULL);
        /* a NUL inside the line */
        {
                struct wire_msg m;
                char err[256];
                static const char nul[] = "{\"id\":1,\"method\":\"He\0llo\"}";
                assert_int_equal(wire_parse(nul, sizeof(nul) - 1, &m, err, sizeof(err)), VSS_E_INVALIDARG);
        }
        /* a method name longer than 128 bytes */
        {
                char line[400];
                snprintf(line, sizeof(line), "{\"id\":1,\"method\":\"%0200d\"}", 0);
                expect_invalid(line, "method");
        }
}

static void test_params_fields(void **state)
{
        struct wire_msg m;
        char err[256];
        json_int_t i;
        vss_id id;

        assert_int_equal(parse("{\"id\":1,\"method\":\"Backup.AddToSnapshotSet\",\"params\":{\"volume\":5,"
                               "\"provider_id\":\"{not-a-guid}\",\"n\":\"7\",\"b\":\"true\","
                               "\"ok\":\"3f5b2c1e-0a1b-4c2d-8e3f-123456789ABC\",\"k\":12}}",
                               &m, err, sizeof(err)),
                         VSS_S_OK);
        /* wrong types are treated as missing by the helpers; the daemon then names the field */
        assert_null(json_get_str(m.params, "volume"));
        assert_false(json_get_id(m.params, "provider_id", &id));
        assert_false(json_get_id(m.params, "volume", &id));
        assert_false(json_get_id(m.params, "missing", &id));
        assert_false(json_get_int(m.params, "n", &i));
        assert_true(json_get_int(m.params, "k", &i));
        assert_int_equal(i, 12);
        assert_true(json_get_bool(m.params, "b", true));
        assert_false(json_get_bool(m.params, "b", false));
        assert_true(json_get_id(m.params, "ok", &id));
        wire_msg_done(&m);
}

static void test_builders(void **state)
{
        char *s, err[256];
        size_t len;
        json_t *j;
        struct wire_msg m;

        j = wire_error(5, VSS_E_SNAPSHOT_SET_IN_PROGRESS, "another set");
        s = wire_dump(j, &len);
        json_decref(j);
        assert_non_null(s);
        assert_int_equal(len, strlen(s));
        assert_int_equal(s[len - 1], '\n');
        assert_null(memchr(s, '\n', len - 1));
        assert_non_null(strstr(s, "\"hresult\":\"0x80042316\""));
        assert_non_null(strstr(s, "\"name\":\"VSS_E_SNAPSHOT_SET_IN_PROGRESS\""));
        assert_non_null(strstr(s, "\"message\":\"Another shadow copy creation is already in progress.\""));
        assert_non_null(strstr(s, "\"detail\":\"another set\""));
        assert_int_equal(wire_parse(s, len - 1, &m, err, sizeof(err)), VSS_S_OK);
        assert_int_equal(m.kind, WIRE_ERROR);
        assert_int_equal(m.id, 5);
        assert_int_equal(m.hr, VSS_E_SNAPSHOT_SET_IN_PROGRESS);
        wire_msg_done(&m);
        free(s);

        /* id < 0 -> "id": null (reply to a line that had no usable id) */
        j = wire_error(-1, VSS_E_INVALIDARG, NULL);
        s = wire_dump(j, &len);
        json_decref(j);
        assert_non_null(strstr(s, "\"id\":null"));
        assert_null(strstr(s, "\"detail\":\""));
        assert_non_null(strstr(s, "\"hresult\":\"0x80070057\""));
        assert_non_null(strstr(s, "\"name\":\"E_INVALIDARG\""));
        free(s);

        /* A newline inside a string is escaped: a message is always one line. */
        j = wire_request(1, "Writer.Register", json_pack("{s:s}", "name", "two\nlines"));
        s = wire_dump(j, &len);
        json_decref(j);
        assert_null(memchr(s, '\n', len - 1));
        assert_int_equal(wire_parse(s, len - 1, &m, err, sizeof(err)), VSS_S_OK);
        assert_string_equal(json_get_str(m.params, "name"), "two\nlines");
        wire_msg_done(&m);
        free(s);

        j = wire_result(2, NULL);
        s = wire_dump(j, &len);
        json_decref(j);
        assert_string_equal(s, "{\"id\":2,\"result\":{}}\n");
        free(s);

        /* A message over 1 MiB cannot be dumped. */
        {
                char *big = malloc(WIRE_MESSAGE_MAX + 1);
                assert_non_null(big);
                memset(big, 'a', WIRE_MESSAGE_MAX);
                big[WIRE_MESSAGE_MAX] = 0;
                j = wire_result(3, json_pack("{s:s}", "x", big));
                assert_null(wire_dump(j, &len));
                json_decref(j);
                free(big);
        }
}

/* A detail quoting a peer's non-UTF-8 bytes must still give a reply (found by fuzz-wire). */
static void test_error_detail_not_utf8(void **state)
{
        struct wire_msg m;
        char err[256], *text;
        size_t len;
        json_t *e;

        e = wire_error(5, VSS_E_INVALIDARG, "bad \xd0\x93\x90 bytes");
        assert_non_null(e);
        text = wire_dump(e, &len);
        json_decref(e);
        assert_non_null(text);
        assert_int_equal(wire_parse(text, len - 1, &m, err, sizeof(err)), VSS_S_OK);
        assert_int_equal(m.kind, WIRE_ERROR);
        assert_int_equal(m.hr, VSS_E_INVALIDARG);
        assert_string_equal(m.detail, "bad ??? bytes");
        wire_msg_done(&m);
        free(text);

        e = wire_error(6, VSS_E_INVALIDARG, NULL);
        assert_non_null(e);
        assert_null(json_object_get(json_object_get(e, "error"), "detail"));
        json_decref(e);
}

static void test_hresult_format(void **state)
{
        char buf[11];
        vss_hresult hr;
        json_t *v;

        wire_format_hresult(VSS_E_WRITERERROR_TIMEOUT, buf);
        assert_string_equal(buf, "0x800423F2");
        wire_format_hresult(VSS_S_OK, buf);
        assert_string_equal(buf, "0x00000000");

        v = json_string("vss_e_writererror_retryable");
        assert_true(wire_parse_hresult(v, &hr));
        assert_int_equal((uint32_t)hr, 0x800423F3);
        json_decref(v);
        v = json_string("0x8004ABCD"); /* unknown but well-formed */
        assert_true(wire_parse_hresult(v, &hr));
        assert_int_equal((uint32_t)hr, 0x8004ABCD);
        json_decref(v);
        v = json_string("0xZZ");
        assert_false(wire_parse_hresult(v, &hr));
        json_decref(v);
        v = json_integer(-1);
        assert_true(wire_parse_hresult(v, &hr));
        json_decref(v);
        v = json_integer((json_int_t)1 << 40);
        assert_false(wire_parse_hresult(v, &hr));
        json_decref(v);
        v = json_real(1.0);
        assert_false(wire_parse_hresult(v, &hr));
        json_decref(v);
        assert_false(wire_parse_hresult(NULL, &hr));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_split_reads),
                cmocka_unit_test(test_many_lines_one_read),
                cmocka_unit_test(test_empty_lines_and_partial),
                cmocka_unit_test(test_oversized),
                cmocka_unit_test(test_fill_socket),
                cmocka_unit_test(test_parse_request),
                cmocka_unit_test(test_parse_result_and_error),
                cmocka_unit_test(test_parse_rejects),
                cmocka_unit_test(test_params_fields),
                cmocka_unit_test(test_builders),
                cmocka_unit_test(test_error_detail_not_utf8),
                cmocka_unit_test(test_hresult_format),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
