/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests of the etcd client's parts that need no etcd: base64, prefix
 * ends, int64 fields, the request and txn bodies (checked field by field as
 * the gateway expects them), the reply parsers on replies captured from etcd
 * 3.4.23 and on malformed ones, endpoint list parsing, and the transport's
 * error classification and deadlines against local sockets: a port nobody
 * listens on, a listener that never answers, and a one-shot HTTP peer giving
 * canned gateway errors.  tests/cluster/ runs the client against real etcd.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
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

#include "basic/time-util.h"
#include "cluster/etcd.h"

#define HDR "\"header\":{\"cluster_id\":\"9205333007027454903\",\"member_id\":\"4687312115414415638\"," \
            "\"revision\":\"7\",\"raft_term\":\"2\"}"

static void test_b64_vectors(void **state)
{
        static const struct {
                const char *plain, *enc;
        } v[] = { { "", "" },         { "f", "Zg==" },        { "fo", "Zm8=" },       { "foo", "Zm9v" },
                  { "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" }, { "bar", "YmFy" } };

        for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
                char *e = etcd_b64_encode(v[i].plain, strlen(v[i].plain));
                uint8_t *d;
                size_t n;

                assert_non_null(e);
                assert_string_equal(e, v[i].enc);
                assert_int_equal(etcd_b64_decode(e, strlen(e), &d, &n), 0);
                assert_int_equal(n, strlen(v[i].plain));
                assert_memory_equal(d, v[i].plain, n);
                assert_int_equal(d[n], 0);
                free(d);
                free(e);
        }
}

static void test_b64_roundtrip_all_bytes(void **state)
{
        uint8_t data[300];

        for (size_t i = 0; i < sizeof(data); i++)
                data[i] = (uint8_t)(i * 37 + 11);
        for (size_t len = 0; len <= sizeof(data); len++) {
                char *e = etcd_b64_encode(data, len);
                uint8_t *d;
                size_t n;

                assert_int_equal(strlen(e) % 4, 0);
                assert_int_equal(etcd_b64_decode(e, strlen(e), &d, &n), 0);
                assert_int_equal(n, len);
                if (len)
                        assert_memory_equal(d, data, len);
                free(d);
                free(e);
        }
}

static void test_b64_rejects(void **state)
{
        static const char *const bad[] = {
                "Zg",           /* no padding */
                "Zg=",          /* short */
                "Zg=a",         /* data after '=' */
                "Zh==",         /* unused bits set: not the canonical spelling */
                "Zm9=",         /* unused bits set */
                "Z===",         /* too much padding */
                "====",
                "Zg==Zg==",     /* padding in the middle */
                "Zm9v\n",
                "Zm 9",
                "Zm-v",         /* URL alphabet */
                "Zm_v",
        };
        uint8_t *d = NULL;
        size_t n;

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                if (etcd_b64_decode(bad[i], strlen(bad[i]), &d, &n) != -EINVAL)
                        fail_msg("'%s' was accepted", bad[i]);
        }
}

static void expect_prefix_end(const void *p, size_t len, const void *want, size_t want_len)
{
        uint8_t *e;
        size_t n;

        assert_int_equal(etcd_prefix_end(p, len, &e, &n), 0);
        assert_int_equal(n, want_len);
        assert_memory_equal(e, want, n);
        free(e);
}

static void test_prefix_end(void **state)
{
        expect_prefix_end("abc", 3, "abd", 3);
        expect_prefix_end("/openvss/hosts/", 15, "/openvss/hosts0", 15);
        expect_prefix_end("a\xff", 2, "b", 1);
        expect_prefix_end("a\xfe", 2, "a\xff", 2);
        expect_prefix_end("\xff\xff", 2, "\0", 1);
        expect_prefix_end("", 0, "\0", 1);
}

static void test_int64(void **state)
{
        static const char *const bad[] = { "", "-", "1e3", " 1", "1 ", "+1", "0x10", "9223372036854775808",
                                           "-9223372036854775809", "1.5" };
        json_t *v;
        int64_t x;

        assert_int_equal(etcd_json_int64(NULL, &x), 0);
        assert_int_equal(x, 0);
        v = json_string("42");
        assert_int_equal(etcd_json_int64(v, &x), 0);
        assert_int_equal(x, 42);
        json_decref(v);
        v = json_string("-9223372036854775808");
        assert_int_equal(etcd_json_int64(v, &x), 0);
        assert_true(x == INT64_MIN);
        json_decref(v);
        v = json_integer(7);
        assert_int_equal(etcd_json_int64(v, &x), 0);
        assert_int_equal(x, 7);
        json_decref(v);
        v = json_true();
        assert_int_equal(etcd_json_int64(v, &x), -EINVAL);
        json_decref(v);
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                v = json_string(bad[i]);
                if (etcd_json_int64(v, &x) != -EINVAL)
                        fail_msg("'%s' was accepted as an int64", bad[i]);
                json_decref(v);
        }
}

/* Parses a request body and returns the object (the caller decrefs). */
static json_t *parse_body(char *body)
{
        json_t *j;

        assert_non_null(body);
        j = json_loads(body, 0, NULL);
        assert_non_null(j);
        free(body);
        return j;
}

static const char *sget(json_t *o, const char *path)
{
        json_t *v = o;
        char buf[256], *save = NULL, *tok;

        snprintf(buf, sizeof(buf), "%s", path);
        for (tok = strtok_r(buf, ".", &save); tok; tok = strtok_r(NULL, ".", &save)) {
                if (json_is_array(v))
                        v = json_array_get(v, (size_t)strtol(tok, NULL, 10));
                else
                        v = json_object_get(v, tok);
                if (!v)
                        fail_msg("no %s in the body", path);
        }
        if (!json_is_string(v))
                fail_msg("%s is not a string", path);
        return json_string_value(v);
}

static void test_requests(void **state)
{
        json_t *j;

        j = parse_body(etcd_request_range("/openvss/hosts/", true, 0, 0));
        assert_string_equal(sget(j, "key"), "L29wZW52c3MvaG9zdHMv");           /* /openvss/hosts/ */
        assert_string_equal(sget(j, "range_end"), "L29wZW52c3MvaG9zdHMw");     /* /openvss/hosts0 */
        assert_null(json_object_get(j, "revision"));
        json_decref(j);

        j = parse_body(etcd_request_range("foo", false, 12, 3));
        assert_string_equal(sget(j, "key"), "Zm9v");
        assert_null(json_object_get(j, "range_end"));
        assert_string_equal(sget(j, "revision"), "12");
        assert_string_equal(sget(j, "limit"), "3");
        json_decref(j);

        j = parse_body(etcd_request_put("foo", "bar", 3, 4113653667892333832LL));
        assert_string_equal(sget(j, "value"), "YmFy");
        assert_string_equal(sget(j, "lease"), "4113653667892333832");
        json_decref(j);

        j = parse_body(etcd_request_put("foo", "", 0, 0));
        assert_string_equal(sget(j, "value"), "");
        assert_null(json_object_get(j, "lease"));
        json_decref(j);

        j = parse_body(etcd_request_lease_grant(10));
        assert_string_equal(sget(j, "TTL"), "10");
        json_decref(j);
        j = parse_body(etcd_request_lease_id(-5));
        assert_string_equal(sget(j, "ID"), "-5");
        json_decref(j);

        j = parse_body(etcd_request_watch("w", true, 9, true));
        assert_string_equal(sget(j, "create_request.key"), "dw==");
        assert_string_equal(sget(j, "create_request.range_end"), "eA==");
        assert_string_equal(sget(j, "create_request.start_revision"), "9");
        assert_true(json_is_true(json_object_get(json_object_get(j, "create_request"), "prev_kv")));
        json_decref(j);

        j = parse_body(etcd_request_delete("k", true));
        assert_string_equal(sget(j, "key"), "aw==");
        assert_string_equal(sget(j, "range_end"), "bA==");
        json_decref(j);
}

static void test_txn_builder(void **state)
{
        struct etcd_txn *t = etcd_txn_new();
        json_t *j;

        assert_non_null(t);
        assert_int_equal(etcd_txn_cmp_int(t, "/d", ETCD_CMP_CREATE, ETCD_CMP_EQUAL, 0), 0);
        assert_int_equal(etcd_txn_cmp_int(t, "/f", ETCD_CMP_VERSION, ETCD_CMP_GREATER, 0), 0);
        assert_int_equal(etcd_txn_cmp_int(t, "/l", ETCD_CMP_MOD, ETCD_CMP_LESS, 77), 0);
        assert_int_equal(etcd_txn_cmp_int(t, "/l", ETCD_CMP_LEASE, ETCD_CMP_NOT_EQUAL, 5), 0);
        assert_int_equal(etcd_txn_cmp_value(t, "/v", ETCD_CMP_EQUAL, "ok", 2), 0);
        assert_int_equal(etcd_txn_cmp_int(t, "/v", ETCD_CMP_VALUE, ETCD_CMP_EQUAL, 0), -EINVAL);
        assert_int_equal(etcd_txn_put(t, true, "/d", "commit", 6, 0), 0);
        assert_int_equal(etcd_txn_put(t, true, "/x", "y", 1, 99), 0);
        assert_int_equal(etcd_txn_get(t, false, "/d", false), 0);
        assert_int_equal(etcd_txn_delete(t, false, "/p/", true), 0);
        assert_int_equal(etcd_txn_n_compares(t), 5);
        assert_int_equal(etcd_txn_n_ops(t, true), 2);
        assert_int_equal(etcd_txn_n_ops(t, false), 2);

        j = parse_body(etcd_txn_dump(t));
        assert_string_equal(sget(j, "compare.0.key"), "L2Q=");
        assert_string_equal(sget(j, "compare.0.target"), "CREATE");
        assert_string_equal(sget(j, "compare.0.result"), "EQUAL");
        assert_string_equal(sget(j, "compare.0.create_revision"), "0");
        assert_string_equal(sget(j, "compare.1.target"), "VERSION");
        assert_string_equal(sget(j, "compare.1.result"), "GREATER");
        assert_string_equal(sget(j, "compare.1.version"), "0");
        assert_string_equal(sget(j, "compare.2.target"), "MOD");
        assert_string_equal(sget(j, "compare.2.result"), "LESS");
        assert_string_equal(sget(j, "compare.2.mod_revision"), "77");
        assert_string_equal(sget(j, "compare.3.target"), "LEASE");
        assert_string_equal(sget(j, "compare.3.result"), "NOT_EQUAL");
        assert_string_equal(sget(j, "compare.3.lease"), "5");
        assert_string_equal(sget(j, "compare.4.target"), "VALUE");
        assert_string_equal(sget(j, "compare.4.value"), "b2s=");
        assert_string_equal(sget(j, "success.0.request_put.key"), "L2Q=");
        assert_string_equal(sget(j, "success.0.request_put.value"), "Y29tbWl0");
        assert_null(json_object_get(json_object_get(json_array_get(json_object_get(j, "success"), 0), "request_put"),
                                    "lease"));
        assert_string_equal(sget(j, "success.1.request_put.lease"), "99");
        assert_string_equal(sget(j, "failure.0.request_range.key"), "L2Q=");
        assert_string_equal(sget(j, "failure.1.request_delete_range.key"), "L3Av");
        assert_string_equal(sget(j, "failure.1.request_delete_range.range_end"), "L3Aw");
        json_decref(j);
        etcd_txn_free(t);

        /* An empty txn is valid: etcd treats no compares as true. */
        t = etcd_txn_new();
        j = parse_body(etcd_txn_dump(t));
        assert_int_equal(json_array_size(json_object_get(j, "compare")), 0);
        json_decref(j);
        etcd_txn_free(t);
}

static void test_parse_range(void **state)
{
        static const char ok[] = "{" HDR ",\"kvs\":[{\"key\":\"Zm9v\",\"create_revision\":\"2\",\"mod_revision\":\"5\","
                                 "\"version\":\"3\",\"value\":\"YmFy\",\"lease\":\"42\"},{\"key\":\"Zm9w\",\"create_"
                                 "revision\":\"6\",\"mod_revision\":\"6\",\"version\":\"1\"}],\"count\":\"2\"}";
        static const char *const bad[] = {
                "{" HDR ",\"kvs\":[{\"key\":\"Zm9v\"}],\"count\":\"0\"}",               /* count below kvs */
                "{" HDR ",\"kvs\":[{\"key\":\"Zm9\"}],\"count\":\"1\"}",                /* bad base64 */
                "{" HDR ",\"kvs\":{},\"count\":\"1\"}",                                 /* kvs not an array */
                "{" HDR ",\"kvs\":[{\"key\":\"Zm9v\",\"mod_revision\":\"-1\"}],\"count\":\"1\"}",
                "{\"header\":{\"revision\":\"x\"}}",
                "{\"header\":{\"revision\":\"-3\"}}",
                "{\"header\":[]}",
                "{\"count\":\"1\",\"count\":\"1\"}",                                     /* duplicate key */
                "[]",
                "",
                "{\"more\":\"yes\"}",
        };
        struct etcd_range_result r;
        char err[256];

        assert_int_equal(etcd_parse_range(ok, strlen(ok), &r, err, sizeof(err)), 0);
        assert_int_equal(r.header.revision, 7);
        assert_true(r.header.cluster_id == 9205333007027454903ULL);
        assert_int_equal(r.n_kvs, 2);
        assert_int_equal(r.count, 2);
        assert_string_equal((char *)r.kvs[0].key, "foo");
        assert_string_equal((char *)r.kvs[0].value, "bar");
        assert_int_equal(r.kvs[0].create_revision, 2);
        assert_int_equal(r.kvs[0].mod_revision, 5);
        assert_int_equal(r.kvs[0].version, 3);
        assert_int_equal(r.kvs[0].lease, 42);
        /* proto3 leaves an empty value out: it reads as "". */
        assert_string_equal((char *)r.kvs[1].value, "");
        assert_int_equal(r.kvs[1].value_len, 0);
        etcd_range_result_release(&r);

        /* No key found: no kvs, no count. */
        assert_int_equal(etcd_parse_range("{" HDR "}", strlen("{" HDR "}"), &r, err, sizeof(err)), 0);
        assert_int_equal(r.n_kvs, 0);
        assert_int_equal(r.count, 0);
        etcd_range_result_release(&r);

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                if (etcd_parse_range(bad[i], strlen(bad[i]), &r, err, sizeof(err)) != -EBADMSG)
                        fail_msg("accepted: %s", bad[i]);
                assert_true(err[0] != '\0');
                assert_int_equal(r.n_kvs, 0);
                assert_null(r.kvs);
        }
}

static void test_parse_txn(void **state)
{
        static const char ok[] = "{" HDR ",\"succeeded\":true,\"responses\":[{\"response_put\":{\"header\":{"
                                 "\"revision\":\"3\"}}},{\"response_delete_range\":{\"header\":{\"revision\":\"3\"},"
                                 "\"deleted\":\"2\"}}]}";
        /* Failure branch: "succeeded" is left out (false), the range reads the key back. */
        static const char failed[] = "{" HDR ",\"responses\":[{\"response_range\":{\"header\":{\"revision\":\"2\"},"
                                     "\"kvs\":[{\"key\":\"Zm9v\",\"create_revision\":\"2\",\"mod_revision\":\"2\","
                                     "\"version\":\"1\",\"value\":\"YmFy\"}],\"count\":\"1\"}}]}";
        static const char *const bad[] = {
                "{\"succeeded\":1}",
                "{\"responses\":{}}",
                "{\"responses\":[{}]}",
                "{\"responses\":[{\"response_lease\":{}}]}",
                "{\"responses\":[{\"response_put\":{},\"response_range\":{}}]}",
                "{\"responses\":[{\"response_range\":[]}]}",
                "{\"responses\":[{\"response_delete_range\":{\"deleted\":\"-1\"}}]}",
        };
        struct etcd_txn_result t;
        const struct etcd_range_result *g;
        char err[256];

        assert_int_equal(etcd_parse_txn(ok, strlen(ok), &t, err, sizeof(err)), 0);
        assert_true(t.succeeded);
        assert_int_equal(t.n_ops, 2);
        assert_int_equal(t.ops[0].type, ETCD_OP_PUT);
        assert_int_equal(t.ops[0].revision, 3);
        assert_int_equal(t.ops[1].type, ETCD_OP_DELETE);
        assert_int_equal(t.ops[1].deleted, 2);
        assert_null(etcd_txn_result_range(&t, 0));
        etcd_txn_result_release(&t);

        assert_int_equal(etcd_parse_txn(failed, strlen(failed), &t, err, sizeof(err)), 0);
        assert_false(t.succeeded);
        g = etcd_txn_result_range(&t, 0);
        assert_non_null(g);
        assert_int_equal(g->n_kvs, 1);
        assert_string_equal((char *)g->kvs[0].value, "bar");
        assert_null(etcd_txn_result_range(&t, 1));
        etcd_txn_result_release(&t);

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                if (etcd_parse_txn(bad[i], strlen(bad[i]), &t, err, sizeof(err)) != -EBADMSG)
                        fail_msg("accepted: %s", bad[i]);
                assert_int_equal(t.n_ops, 0);
        }
}

static void test_parse_error_and_leases(void **state)
{
        static const char notfound[] = "{\"error\":\"etcdserver: requested lease not found\",\"message\":"
                                       "\"etcdserver: requested lease not found\",\"code\":5}";
        static const char grant[] = "{" HDR ",\"ID\":\"4113653667892333832\",\"TTL\":\"5\"}";
        static const char ka[] = "{\"result\":{" HDR ",\"ID\":\"4113653667892333836\",\"TTL\":\"5\"}}";
        static const char ka_gone[] = "{\"result\":{" HDR ",\"ID\":\"12345\"}}";
        static const char ka_err[] = "{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":\"etcdserver: no "
                                     "leader\",\"http_status\":\"Service Unavailable\"}}";
        char msg[256];
        int64_t id, ttl;
        int code;

        assert_int_equal(etcd_parse_error(notfound, strlen(notfound), &code, msg, sizeof(msg)), 0);
        assert_int_equal(code, 5);
        assert_string_equal(msg, "etcdserver: requested lease not found");
        assert_int_equal(etcd_parse_error("{\"code\":5}", 10, &code, msg, sizeof(msg)), -EBADMSG);
        assert_int_equal(etcd_parse_error("<html>", 6, &code, msg, sizeof(msg)), -EBADMSG);

        assert_int_equal(etcd_parse_lease_grant(grant, strlen(grant), &id, &ttl, msg, sizeof(msg)), 0);
        assert_true(id == 4113653667892333832LL);
        assert_int_equal(ttl, 5);
        assert_int_equal(etcd_parse_lease_grant("{" HDR ",\"TTL\":\"5\"}", strlen("{" HDR ",\"TTL\":\"5\"}"), &id,
                                                &ttl, msg, sizeof(msg)),
                         -EBADMSG);

        assert_int_equal(etcd_parse_keepalive(ka, strlen(ka), &id, &ttl, msg, sizeof(msg)), 0);
        assert_int_equal(ttl, 5);
        /* etcd answers a keepalive of an unknown lease with TTL 0 (left out). */
        assert_int_equal(etcd_parse_keepalive(ka_gone, strlen(ka_gone), &id, &ttl, msg, sizeof(msg)), 0);
        assert_int_equal(id, 12345);
        assert_int_equal(ttl, 0);
        assert_int_equal(etcd_parse_keepalive(ka_err, strlen(ka_err), &id, &ttl, msg, sizeof(msg)), -EIO);
        assert_string_equal(msg, "etcdserver: no leader");
        assert_int_equal(etcd_parse_keepalive("{\"ID\":\"1\"}", 10, &id, &ttl, msg, sizeof(msg)), -EBADMSG);
}

static void test_parse_watch(void **state)
{
        static const char created[] = "{\"result\":{" HDR ",\"created\":true}}";
        static const char events[] =
                "{\"result\":{" HDR ",\"events\":[{\"kv\":{\"key\":\"dzE=\",\"create_revision\":\"8\","
                "\"mod_revision\":\"8\",\"version\":\"1\",\"value\":\"MQ==\"}},{\"type\":\"DELETE\",\"kv\":{\"key\":"
                "\"dzE=\",\"mod_revision\":\"9\"},\"prev_kv\":{\"key\":\"dzE=\",\"create_revision\":\"8\",\"mod_"
                "revision\":\"8\",\"version\":\"1\",\"value\":\"MQ==\"}}]}}";
        static const char compacted[] = "{\"result\":{\"header\":{\"raft_term\":\"2\"},\"canceled\":true,"
                                        "\"compact_revision\":\"6\"}}";
        static const char *const bad[] = {
                "{\"result\":{\"events\":[{\"type\":\"EXPIRE\",\"kv\":{}}]}}",
                "{\"result\":{\"events\":[{\"type\":\"PUT\"}]}}",
                "{\"result\":{\"events\":[{\"kv\":{\"key\":\"!!!!\"}}]}}",
                "{\"result\":{\"created\":\"true\"}}",
                "{\"result\":[]}",
                "{}",
        };
        struct etcd_watch_response w;
        char err[256];

        assert_int_equal(etcd_parse_watch(created, strlen(created), &w, err, sizeof(err)), 0);
        assert_true(w.created);
        assert_false(w.canceled);
        assert_int_equal(w.watch_id, 0);
        assert_int_equal(w.header.revision, 7);
        etcd_watch_response_release(&w);

        assert_int_equal(etcd_parse_watch(events, strlen(events), &w, err, sizeof(err)), 0);
        assert_int_equal(w.n_events, 2);
        assert_int_equal(w.events[0].type, ETCD_EVENT_PUT);
        assert_string_equal((char *)w.events[0].kv.key, "w1");
        assert_string_equal((char *)w.events[0].kv.value, "1");
        assert_false(w.events[0].has_prev_kv);
        assert_int_equal(w.events[1].type, ETCD_EVENT_DELETE);
        assert_int_equal(w.events[1].kv.mod_revision, 9);
        assert_true(w.events[1].has_prev_kv);
        assert_string_equal((char *)w.events[1].prev_kv.value, "1");
        etcd_watch_response_release(&w);

        assert_int_equal(etcd_parse_watch(compacted, strlen(compacted), &w, err, sizeof(err)), 0);
        assert_true(w.canceled);
        assert_int_equal(w.compact_revision, 6);
        etcd_watch_response_release(&w);

        {
                static const char line[] = "{\"error\":{\"code\":14,\"message\":\"no leader\"}}";

                assert_int_equal(etcd_parse_watch(line, strlen(line), &w, err, sizeof(err)), 0);
        }
        assert_true(w.is_error);
        assert_int_equal(w.error_code, 14);
        assert_string_equal(w.error_message, "no leader");
        etcd_watch_response_release(&w);

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                if (etcd_parse_watch(bad[i], strlen(bad[i]), &w, err, sizeof(err)) != -EBADMSG)
                        fail_msg("accepted: %s", bad[i]);
                assert_int_equal(w.n_events, 0);
        }
}

static void test_parse_status(void **state)
{
        static const char ok[] = "{" HDR ",\"version\":\"3.4.23\",\"dbSize\":\"20480\",\"leader\":"
                                 "\"4687312115414415638\",\"raftIndex\":\"7\",\"raftTerm\":\"2\",\"errors\":"
                                 "[\"memberID:1 alarm:NOSPACE \"]}";
        struct etcd_status s;
        char err[256];

        assert_int_equal(etcd_parse_status(ok, strlen(ok), &s, err, sizeof(err)), 0);
        assert_string_equal(s.version, "3.4.23");
        assert_true(s.leader == 4687312115414415638ULL);
        assert_true(s.header.member_id == s.leader);
        assert_int_equal(s.raft_index, 7);
        assert_string_equal(s.errors, "memberID:1 alarm:NOSPACE ");
        /* A member without a leader leaves "leader" out. */
        assert_int_equal(etcd_parse_status("{" HDR "}", strlen("{" HDR "}"), &s, err, sizeof(err)), 0);
        assert_true(s.leader == 0);
}

static void test_endpoints(void **state)
{
        static const char *const bad[] = {
                "",
                ",",
                "http://a,",
                "ftp://10.0.0.1:2379",
                "http://",
                "10.0.0.1:2379",
                "http://a b:1",
                "http://a:1?x",
                /* One list of 17 endpoints, one more than allowed (parenthesized: one string). */
                ("http://1,http://2,http://3,http://4,http://5,http://6,http://7,http://8,http://9,http://10,"
                 "http://11,http://12,http://13,http://14,http://15,http://16,http://17"),
        };
        struct etcd_client *c = NULL;

        assert_int_equal(etcd_client_new(" http://10.0.0.1:2379/ ,https://h2:2379,http://[::1]:23790", &c), 0);
        assert_int_equal(etcd_client_n_endpoints(c), 3);
        assert_string_equal(etcd_client_endpoint(c, 0), "http://10.0.0.1:2379");
        assert_string_equal(etcd_client_endpoint(c, 1), "https://h2:2379");
        assert_string_equal(etcd_client_endpoint(c, 2), "http://[::1]:23790");
        assert_null(etcd_client_endpoint(c, 3));
        assert_int_equal(etcd_client_current(c), 0);
        c = etcd_client_free(c);
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                if (etcd_client_new(bad[i], &c) != -EINVAL)
                        fail_msg("endpoint list accepted: '%s'", bad[i]);
                assert_null(c);
        }
}

/* ---- the transport against local sockets ---- */

static int listen_local(uint16_t *ret_port)
{
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof(a);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        assert_true(fd >= 0);
        assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
        assert_int_equal(listen(fd, 16), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
        *ret_port = ntohs(a.sin_port);
        return fd;
}

/* A port that refuses: bound, closed. */
static uint16_t refused_port(void)
{
        uint16_t port;

        close(listen_local(&port));
        return port;
}

static void test_refused_is_econnrefused(void **state)
{
        struct etcd_client *c = NULL;
        struct etcd_range_result r;
        char eps[128];
        uint64_t t0;
        int rc;

        snprintf(eps, sizeof(eps), "http://127.0.0.1:%u,http://127.0.0.1:%u", refused_port(), refused_port());
        assert_int_equal(etcd_client_new(eps, &c), 0);
        t0 = clock_monotonic_us();
        rc = etcd_get(c, "k", false, t0 + 500 * USEC_PER_MSEC, &r);
        assert_int_equal(rc, -ECONNREFUSED);
        assert_true(clock_monotonic_us() - t0 <= 600 * USEC_PER_MSEC);
        assert_non_null(strstr(etcd_client_error(c), "no etcd endpoint reachable"));
        assert_non_null(strstr(etcd_client_error(c), "http://127.0.0.1:"));
        etcd_client_free(c);
}

/* A member that accepts and never answers costs one share of the deadline, and the
 * call still returns by its deadline (a cut-off host's own member looks like this). */
static void test_silent_member_deadline(void **state)
{
        struct etcd_client *c = NULL;
        struct etcd_range_result r;
        uint16_t port;
        char eps[128];
        uint64_t t0, took;
        int fd = listen_local(&port), rc;

        snprintf(eps, sizeof(eps), "http://127.0.0.1:%u", port);
        assert_int_equal(etcd_client_new(eps, &c), 0);
        t0 = clock_monotonic_us();
        rc = etcd_get(c, "k", false, t0 + 400 * USEC_PER_MSEC, &r);
        took = clock_monotonic_us() - t0;
        assert_int_equal(rc, -ETIMEDOUT);
        if (took < 390 * USEC_PER_MSEC || took > 500 * USEC_PER_MSEC)
                fail_msg("a 400 ms deadline took %llu us", (unsigned long long)took);
        assert_non_null(strstr(etcd_client_error(c), "no reply after"));
        etcd_client_free(c);
        close(fd);
}

struct canned {
        int fd;
        const char *reply;      /* full HTTP response */
        int served;
};

static void *serve(void *p)
{
        struct canned *cn = p;

        for (;;) {
                char buf[8192];
                int s = accept4(cn->fd, NULL, NULL, SOCK_CLOEXEC);
                ssize_t n;

                if (s < 0)
                        return NULL;
                /* The request is small: one read gets the headers and the body. */
                n = read(s, buf, sizeof(buf));
                if (n > 0 && write(s, cn->reply, strlen(cn->reply)) < 0)
                        n = -1;
                cn->served++;
                close(s);
        }
}

static uint64_t canned_took_us;         /* how long the last op took, from its start */

static int call_canned(const char *reply, int (*op)(struct etcd_client *c, uint64_t deadline), char *errbuf,
                       size_t errlen)
{
        uint64_t t0;
        struct canned cn = { .reply = reply };
        struct etcd_client *c = NULL;
        pthread_t th;
        uint16_t port;
        char eps[64];
        int rc;

        cn.fd = listen_local(&port);
        snprintf(eps, sizeof(eps), "http://127.0.0.1:%u", port);
        assert_int_equal(pthread_create(&th, NULL, serve, &cn), 0);
        assert_int_equal(etcd_client_new(eps, &c), 0);
        t0 = clock_monotonic_us();
        rc = op(c, t0 + 600 * USEC_PER_MSEC);
        canned_took_us = clock_monotonic_us() - t0;
        snprintf(errbuf, errlen, "%s", etcd_client_error(c));
        etcd_client_free(c);
        shutdown(cn.fd, SHUT_RDWR);
        close(cn.fd);
        pthread_join(th, NULL);
        return rc;
}

static int op_get(struct etcd_client *c, uint64_t deadline)
{
        struct etcd_range_result r;
        int rc = etcd_get(c, "k", false, deadline, &r);

        if (rc >= 0)
                etcd_range_result_release(&r);
        return rc;
}

static int op_keepalive(struct etcd_client *c, uint64_t deadline)
{
        int64_t ttl;

        return etcd_lease_keepalive(c, 12345, deadline, &ttl);
}

static void test_error_classes(void **state)
{
        static const char no_leader[] = "{\"error\":\"etcdserver: no leader\",\"message\":\"etcdserver: no leader\","
                                        "\"code\":14}";
        static const char invalid[] = "{\"error\":\"etcdserver: key is not provided\",\"message\":\"etcdserver: "
                                      "key is not provided\",\"code\":3}";
        static const char ok_range[] = "{" HDR ",\"kvs\":[{\"key\":\"aw==\",\"value\":\"dg==\",\"mod_revision\":"
                                       "\"3\"}],\"count\":\"1\"}";
        static const char ka_gone[] = "{\"result\":{" HDR ",\"ID\":\"12345\"}}\n";
        char err[1024];
        int rc;

        /* No leader: retried until the deadline, then a clear "no quorum". */
        {
                char buf[1024];

                snprintf(buf, sizeof(buf),
                         "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: "
                         "close\r\nContent-Length: %zu\r\n\r\n%s",
                         strlen(no_leader), no_leader);
                rc = call_canned(buf, op_get, err, sizeof(err));
                assert_int_equal(rc, -ENOLINK);
                if (canned_took_us > 700 * USEC_PER_MSEC)
                        fail_msg("a 600 ms deadline took %llu us", (unsigned long long)canned_took_us);
                assert_non_null(strstr(err, "etcd has no quorum"));
                assert_non_null(strstr(err, "etcdserver: no leader"));

                snprintf(buf, sizeof(buf),
                         "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nConnection: "
                         "close\r\nContent-Length: %zu\r\n\r\n%s",
                         strlen(invalid), invalid);
                assert_int_equal(call_canned(buf, op_get, err, sizeof(err)), -EINVAL);
                assert_non_null(strstr(err, "key is not provided"));

                snprintf(buf, sizeof(buf),
                         "HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nConnection: close\r\n"
                         "Content-Length: 9\r\n\r\n<h1>x</h1");
                assert_int_equal(call_canned(buf, op_get, err, sizeof(err)), -EPROTO);
                assert_non_null(strstr(err, "HTTP 404"));

                snprintf(buf, sizeof(buf),
                         "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                         "Content-Length: %zu\r\n\r\n%s",
                         strlen(ok_range), ok_range);
                assert_int_equal(call_canned(buf, op_get, err, sizeof(err)), 0);
                assert_string_equal(err, "");

                snprintf(buf, sizeof(buf),
                         "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                         "Content-Length: 6\r\n\r\n{\"kvs\"");
                assert_int_equal(call_canned(buf, op_get, err, sizeof(err)), -EBADMSG);

                snprintf(buf, sizeof(buf),
                         "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                         "Content-Length: %zu\r\n\r\n%s",
                         strlen(ka_gone), ka_gone);
                assert_int_equal(call_canned(buf, op_keepalive, err, sizeof(err)), -ENOENT);
                assert_non_null(strstr(err, "not found"));
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_b64_vectors),
                cmocka_unit_test(test_b64_roundtrip_all_bytes),
                cmocka_unit_test(test_b64_rejects),
                cmocka_unit_test(test_prefix_end),
                cmocka_unit_test(test_int64),
                cmocka_unit_test(test_requests),
                cmocka_unit_test(test_txn_builder),
                cmocka_unit_test(test_parse_range),
                cmocka_unit_test(test_parse_txn),
                cmocka_unit_test(test_parse_error_and_leases),
                cmocka_unit_test(test_parse_watch),
                cmocka_unit_test(test_parse_status),
                cmocka_unit_test(test_endpoints),
                cmocka_unit_test(test_refused_is_econnrefused),
                cmocka_unit_test(test_silent_member_deadline),
                cmocka_unit_test(test_error_classes),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
