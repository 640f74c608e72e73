/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit test of the cluster set protocol's keys and transactions
 * (src/cluster/cset-store.c): every write action's txn has the compares of
 * docs/cluster.md section 5 (checked field by field in the request body), and
 * the results of both branches, as etcd's gateway returns them, turn into the
 * event the state machine needs.  tests/cluster/t-cl-set.sh runs them against
 * a real etcd.
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
#include "cluster/cset-store.h"

static const char *const hosts[] = { "h1", "h2", "h3" };

static struct cset_store store(void)
{
        struct cset_store s = { .hosts = hosts, .n_hosts = 3, .lock_revision = 42 };

        snprintf(s.prefix, sizeof(s.prefix), "/openvss");
        snprintf(s.set_id, sizeof(s.set_id), "{s}");
        snprintf(s.me, sizeof(s.me), "h2");
        return s;
}

/* The txn's body as JSON, with every base64 key and value decoded in place. */
static json_t *body_of(const struct cset_store *s, enum cset_action_type type, vss_hresult hr)
{
        struct cset_action a = { .type = type, .failure = { .hr = hr } };
        struct etcd_txn *t = NULL;
        char *text;
        json_t *j;

        snprintf(a.failure.host, sizeof(a.failure.host), "h2");
        assert_int_equal(cset_store_txn(s, &a, &t), 0);
        text = etcd_txn_dump(t);
        j = json_loads(text, 0, NULL);
        assert_non_null(j);
        free(text);
        etcd_txn_free(t);
        return j;
}

static char *dec(json_t *o, const char *field)
{
        const char *v = json_string_value(json_object_get(o, field));
        uint8_t *d;
        size_t n;

        assert_non_null(v);
        assert_int_equal(etcd_b64_decode(v, strlen(v), &d, &n), 0);
        return (char *)d;
}

/* "KEY TARGET RESULT VALUE" of compare i. */
static void expect_cmp(json_t *j, size_t i, const char *key, const char *target, const char *field, const char *want)
{
        json_t *c = json_array_get(json_object_get(j, "compare"), i);
        char *k, *v;

        assert_non_null(c);
        k = dec(c, "key");
        assert_string_equal(k, key);
        assert_string_equal(json_string_value(json_object_get(c, "target")), target);
        assert_string_equal(json_string_value(json_object_get(c, "result")), "EQUAL");
        if (strcmp(field, "value") == 0) {
                v = dec(c, "value");
                assert_string_equal(v, want);
                free(v);
        } else {
                assert_string_equal(json_string_value(json_object_get(c, field)), want);
        }
        free(k);
}

static void test_keys_and_failures(void **state)
{
        struct cset_store s = store();
        struct cset_failure f = { .hr = VSS_E_WRITERERROR_RETRYABLE }, back;
        char key[CSET_KEY_MAX], *j;

        assert_int_equal(cset_store_key(&s, NULL, NULL, key, sizeof(key)), 0);
        assert_string_equal(key, "/openvss/lock");
        assert_int_equal(cset_store_key(&s, "frozen", "h3", key, sizeof(key)), 0);
        assert_string_equal(key, "/openvss/sets/{s}/frozen/h3");
        assert_int_equal(cset_store_key(&s, "decision", NULL, key, 10), -ENAMETOOLONG);

        snprintf(f.host, sizeof(f.host), "h3");
        snprintf(f.writer, sizeof(f.writer), "PostgreSQL Writer");
        snprintf(f.detail, sizeof(f.detail), "bad \xff byte \"quoted\"");
        j = cset_failure_to_json("abort", &f);
        assert_non_null(j);
        assert_non_null(strstr(j, "\"hresult\":\"0x800423F3\""));
        assert_non_null(strstr(j, "\"name\":\"VSS_E_WRITERERROR_RETRYABLE\""));
        assert_int_equal(cset_failure_from_json(j, strlen(j), &back), 0);
        assert_int_equal(back.hr, VSS_E_WRITERERROR_RETRYABLE);
        assert_string_equal(back.host, "h3");
        assert_string_equal(back.writer, "PostgreSQL Writer");
        assert_string_equal(back.detail, "bad ? byte \"quoted\"");
        free(j);
        assert_int_equal(cset_failure_from_json("commit", 6, &back), -EBADMSG);
        assert_int_equal(cset_failure_from_json("{\"hresult\":\"0x00000000\"}", 24, &back), -EBADMSG);
        assert_int_equal(cset_failure_from_json("{\"hresult\":\"nonsense\"}", 22, &back), -EBADMSG);
}

static void test_txns(void **state)
{
        struct cset_store s = store();
        json_t *j;
        char *v;

        /* T4: frozen ack only while there is no decision; failure branch reads the decision. */
        j = body_of(&s, CSET_ACT_WRITE_FROZEN, VSS_S_OK);
        assert_int_equal(json_array_size(json_object_get(j, "compare")), 1);
        expect_cmp(j, 0, "/openvss/sets/{s}/decision", "CREATE", "create_revision", "0");
        v = dec(json_object_get(json_array_get(json_object_get(j, "success"), 0), "request_put"), "key");
        assert_string_equal(v, "/openvss/sets/{s}/frozen/h2");
        free(v);
        v = dec(json_object_get(json_array_get(json_object_get(j, "failure"), 0), "request_range"), "key");
        assert_string_equal(v, "/openvss/sets/{s}/decision");
        free(v);
        json_decref(j);

        /* T5: commit needs our lock, no decision and every host's frozen ack. */
        j = body_of(&s, CSET_ACT_WRITE_COMMIT, VSS_S_OK);
        assert_int_equal(json_array_size(json_object_get(j, "compare")), 5);
        expect_cmp(j, 0, "/openvss/lock", "CREATE", "create_revision", "42");
        expect_cmp(j, 1, "/openvss/sets/{s}/decision", "CREATE", "create_revision", "0");
        expect_cmp(j, 2, "/openvss/sets/{s}/frozen/h1", "VALUE", "value", "ok");
        expect_cmp(j, 3, "/openvss/sets/{s}/frozen/h2", "VALUE", "value", "ok");
        expect_cmp(j, 4, "/openvss/sets/{s}/frozen/h3", "VALUE", "value", "ok");
        v = dec(json_object_get(json_array_get(json_object_get(j, "success"), 0), "request_put"), "value");
        assert_string_equal(v, "commit");
        free(v);
        assert_int_equal(json_array_size(json_object_get(j, "failure")), 2);
        json_decref(j);

        /* T3: freeze with every prepared ack. */
        j = body_of(&s, CSET_ACT_WRITE_FREEZE, VSS_S_OK);
        expect_cmp(j, 2, "/openvss/sets/{s}/prepared/h1", "VALUE", "value", "ok");
        json_decref(j);

        /* T6: abort only when there is no decision. */
        j = body_of(&s, CSET_ACT_PROPOSE_ABORT, VSS_E_HOLD_WRITES_TIMEOUT);
        expect_cmp(j, 0, "/openvss/sets/{s}/decision", "CREATE", "create_revision", "0");
        v = dec(json_object_get(json_array_get(json_object_get(j, "success"), 0), "request_put"), "value");
        assert_non_null(strstr(v, "\"outcome\":\"abort\""));
        assert_non_null(strstr(v, "0x80042314"));
        free(v);
        json_decref(j);

        /* T8, T9: after commit only, final created once. */
        j = body_of(&s, CSET_ACT_WRITE_COMPLETE, VSS_S_OK);
        assert_int_equal(json_array_size(json_object_get(j, "compare")), 5);
        expect_cmp(j, 0, "/openvss/sets/{s}/decision", "VALUE", "value", "commit");
        expect_cmp(j, 1, "/openvss/sets/{s}/final", "CREATE", "create_revision", "0");
        expect_cmp(j, 4, "/openvss/sets/{s}/done/h3", "VALUE", "value", "ok");
        json_decref(j);
        j = body_of(&s, CSET_ACT_PROPOSE_FAILED, VSS_E_CLUSTER_TIMEOUT);
        assert_int_equal(json_array_size(json_object_get(j, "compare")), 2);
        expect_cmp(j, 0, "/openvss/sets/{s}/decision", "VALUE", "value", "commit");
        json_decref(j);

        /* T7: done has no guard; a failed done carries the failure. */
        j = body_of(&s, CSET_ACT_WRITE_DONE, VSS_E_INSUFFICIENT_STORAGE);
        assert_int_equal(json_array_size(json_object_get(j, "compare")), 0);
        v = dec(json_object_get(json_array_get(json_object_get(j, "success"), 0), "request_put"), "value");
        assert_non_null(strstr(v, "0x8004231F"));
        free(v);
        json_decref(j);

        {
                struct cset_action a = { .type = CSET_ACT_COMMIT_LOCAL };
                struct etcd_txn *t = NULL;

                assert_int_equal(cset_store_txn(&s, &a, &t), -EINVAL);
        }
}

static int result_of(const struct cset_store *s, enum cset_action_type type, const char *reply, struct cset_event *ev)
{
        struct cset_action a = { .type = type };
        struct etcd_txn_result r;
        char err[256];
        int rc;

        assert_int_equal(etcd_parse_txn(reply, strlen(reply), &r, err, sizeof(err)), 0);
        rc = cset_store_result(s, &a, &r, ev);
        etcd_txn_result_release(&r);
        return rc;
}

static void test_results(void **state)
{
        struct cset_store s = store();
        struct cset_event ev;
        char reply[2048], *abort_json, *b64key, *b64val;
        struct cset_failure f = { .hr = VSS_E_WRITERERROR_TIMEOUT };

        assert_int_equal(result_of(&s, CSET_ACT_WRITE_FROZEN, "{\"succeeded\":true,\"responses\":[{\"response_put\":{}}]}",
                                   &ev),
                         1);
        assert_int_equal(ev.type, CSET_EV_WRITTEN);
        assert_int_equal(ev.written, CSET_ACT_WRITE_FROZEN);

        /* Beaten by an abort: the failure branch read it. */
        snprintf(f.host, sizeof(f.host), "h3");
        abort_json = cset_failure_to_json("abort", &f);
        b64key = etcd_b64_encode("/openvss/sets/{s}/decision", 26);
        b64val = etcd_b64_encode(abort_json, strlen(abort_json));
        snprintf(reply, sizeof(reply),
                 "{\"responses\":[{\"response_range\":{\"kvs\":[{\"key\":\"%s\",\"value\":\"%s\",\"create_revision\":"
                 "\"9\"}],\"count\":\"1\"}}]}",
                 b64key, b64val);
        assert_int_equal(result_of(&s, CSET_ACT_WRITE_COMMIT, reply, &ev), 1);
        assert_int_equal(ev.type, CSET_EV_DECISION_SEEN);
        assert_false(ev.commit);
        assert_int_equal(ev.failure.hr, VSS_E_WRITERERROR_TIMEOUT);
        assert_string_equal(ev.failure.host, "h3");
        free(b64val);

        /* An abort proposal that finds the commit. */
        b64val = etcd_b64_encode("commit", 6);
        snprintf(reply, sizeof(reply),
                 "{\"responses\":[{\"response_range\":{\"kvs\":[{\"key\":\"%s\",\"value\":\"%s\"}],\"count\":\"1\"}}]}",
                 b64key, b64val);
        assert_int_equal(result_of(&s, CSET_ACT_PROPOSE_ABORT, reply, &ev), 1);
        assert_int_equal(ev.type, CSET_EV_DECISION_SEEN);
        assert_true(ev.commit);
        free(b64val);
        free(b64key);

        /* Commit refused because the lock is gone (our lease expired): coordinator gone. */
        assert_int_equal(result_of(&s, CSET_ACT_WRITE_COMMIT,
                                   "{\"responses\":[{\"response_range\":{}},{\"response_range\":{}}]}", &ev),
                         1);
        assert_int_equal(ev.type, CSET_EV_COORDINATOR_GONE);

        /* Commit refused with the lock ours and no decision: a frozen ack is missing; nothing to feed. */
        b64key = etcd_b64_encode("/openvss/lock", 13);
        snprintf(reply, sizeof(reply),
                 "{\"responses\":[{\"response_range\":{}},{\"response_range\":{\"kvs\":[{\"key\":\"%s\","
                 "\"value\":\"e30=\",\"create_revision\":\"42\"}],\"count\":\"1\"}}]}",
                 b64key);
        assert_int_equal(result_of(&s, CSET_ACT_WRITE_COMMIT, reply, &ev), 0);
        free(b64key);

        /* A final of garbage is not the protocol's. */
        b64key = etcd_b64_encode("/openvss/sets/{s}/final", 23);
        snprintf(reply, sizeof(reply),
                 "{\"responses\":[{\"response_range\":{\"kvs\":[{\"key\":\"%s\",\"value\":\"eA==\"}],"
                 "\"count\":\"1\"}}]}",
                 b64key);
        assert_int_equal(result_of(&s, CSET_ACT_PROPOSE_FAILED, reply, &ev), -EBADMSG);
        free(b64key);
        free(abort_json);
}

static void test_start(void **state)
{
        struct cset_store s = store();
        struct etcd_txn *t = NULL;
        struct etcd_txn_result r;
        int64_t rev = 0;
        char *holder = NULL, err[128];
        static const char won[] = "{\"succeeded\":true,\"responses\":[{\"response_put\":{}},{\"response_put\":{}},"
                                  "{\"response_put\":{}},{\"response_range\":{\"kvs\":[{\"key\":\"eA==\",\"value\":"
                                  "\"eA==\",\"create_revision\":\"77\"}],\"count\":\"1\"}}]}";
        static const char lost[] = "{\"responses\":[{\"response_range\":{\"kvs\":[{\"key\":\"eA==\",\"value\":"
                                   "\"eyJzZXRfaWQiOiJ7b3RoZXJ9In0=\",\"create_revision\":\"5\"}],\"count\":\"1\"}}]}";
        static const char again[] = "{\"responses\":[{\"response_range\":{\"kvs\":[{\"key\":\"eA==\",\"value\":"
                                    "\"eyJzZXRfaWQiOiJ7c30iLCJjb29yZGluYXRvciI6ImgyIiwibGVhc2UiOjk5fQ==\",\"create_revision\":\"6\"}],\"count\":\"1\"}}]}";

        assert_int_equal(cset_store_start_txn(&s, 99, "{\"set_id\":\"{s}\"}", &t), 0);
        assert_int_equal(etcd_txn_n_compares(t), 1);
        assert_int_equal(etcd_txn_n_ops(t, true), 4);
        assert_int_equal(etcd_txn_n_ops(t, false), 1);
        etcd_txn_free(t);
        assert_int_equal(etcd_parse_txn(won, strlen(won), &r, err, sizeof(err)), 0);
        assert_int_equal(cset_store_start_result(&s, &r, &rev, &holder), 0);
        assert_int_equal(rev, 77);
        etcd_txn_result_release(&r);
        assert_int_equal(etcd_parse_txn(lost, strlen(lost), &r, err, sizeof(err)), 0);
        assert_int_equal(cset_store_start_result(&s, &r, &rev, &holder), -EBUSY);
        assert_string_equal(holder, "{\"set_id\":\"{other}\"}");
        free(holder);
        etcd_txn_result_release(&r);
        /* A T1 applied twice (sent again after a timeout): the lock the first one took is ours. */
        holder = NULL;
        assert_int_equal(etcd_parse_txn(again, strlen(again), &r, err, sizeof(err)), 0);
        assert_int_equal(cset_store_start_result(&s, &r, &rev, &holder), 0);
        assert_int_equal(rev, 6);
        assert_null(holder);
        etcd_txn_result_release(&r);
}

/* GC: which sets cset_store_gc_pick() collects from a range of P/sets/, sorted by key. */
static void gc_collect(const char *set_id, void *userdata)
{
        char *out = userdata;
        size_t n = strlen(out);

        snprintf(out + n, 512 - n, "%s%s", n ? "," : "", set_id);
}

struct kv_text {
        const char *key, *value;
};

/* kvs[i] points into kv[i]: a range result as the etcd client would return it. */
static void fill_kvs(struct etcd_kv *kvs, const struct kv_text *kv, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                kvs[i].key = (uint8_t *)kv[i].key;
                kvs[i].key_len = strlen(kv[i].key);
                kvs[i].value = (uint8_t *)kv[i].value;
                kvs[i].value_len = strlen(kv[i].value);
        }
}

static void test_gc(void **state)
{
        static const struct kv_text kv[] = {
                { "/openvss/sets/{a}/decision", "{\"outcome\":\"abort\",\"hresult\":\"0x800423F3\"}" },
                { "/openvss/sets/{a}/spec", "{\"set_id\":\"{a}\",\"created_us\":1000}" },
                { "/openvss/sets/{b}/decision", "commit" },     /* commit without a final: kept */
                { "/openvss/sets/{b}/spec", "{\"created_us\":1000}" },
                { "/openvss/sets/{c}/decision", "commit" },
                { "/openvss/sets/{c}/final", "complete" },
                { "/openvss/sets/{c}/spec", "{\"created_us\":1000}" },
                { "/openvss/sets/{d}/final", "complete" },     /* too young */
                { "/openvss/sets/{d}/spec", "{\"created_us\":9500}" },
                { "/openvss/sets/{e}/prepared/h1", "ok" },     /* running */
                { "/openvss/sets/{e}/spec", "{\"created_us\":10}" },
                { "/openvss/sets/{f}/final", "complete" },     /* no spec */
                { "/openvss/sets/{g}/final", "complete" },     /* the current set */
                { "/openvss/sets/{g}/spec", "{\"created_us\":10}" },
                { "/openvss/sets/{h}/spec", "not json" },
                { "/openvss/sets/{h}/final", "complete" },
                { "/openvss/setsx", "?" },
        };
        struct etcd_kv kvs[ARRAY_SIZE(kv)] = {};
        struct etcd_range_result r = { .kvs = kvs, .n_kvs = ARRAY_SIZE(kv) };
        char out[512] = "";

        (void)state;
        fill_kvs(kvs, kv, ARRAY_SIZE(kv));
        assert_int_equal(cset_store_gc_pick("/openvss", &r, "{g}", 10000, 1000, gc_collect, out), 2);
        assert_string_equal(out, "{a},{c}");
        out[0] = 0;
        assert_int_equal(cset_store_gc_pick("/openvss", &r, NULL, 10000, 0, gc_collect, out), 4);
        assert_string_equal(out, "{a},{c},{d},{g}");
        out[0] = 0;
        /* The clock is before most sets' creation (stepped back): those are not old. */
        assert_int_equal(cset_store_gc_pick("/openvss", &r, NULL, 500, 0, gc_collect, out), 1);
        assert_string_equal(out, "{g}");
        r.n_kvs = 0;
        assert_int_equal(cset_store_gc_pick("/openvss", &r, NULL, 10000, 0, gc_collect, out), 0);
}

static void events_collect(const struct cset_event *ev, bool to_coord, bool to_part, void *userdata)
{
        char *out = userdata;
        size_t n = strlen(out);

        snprintf(out + n, 512 - n, "%s%s%s%s%s,", cset_event_name(ev->type), ev->host ? ":" : "", ev->host ?: "",
                 to_coord ? "/c" : "", to_part ? "/p" : "");
}

/* A poll reads every key of the set; the watch's puts are some keys only: neither the other
 * sets' keys nor a missing coordinator key say anything in them. */
static void test_events(void **state)
{
        static const struct kv_text kv[] = {
                { "/openvss/sets/{s}/prepared/h1", "ok" },
                { "/openvss/sets/{t}/prepared/h3", "ok" },      /* another set */
                { "/openvss/sets/{s}/freeze", "{}" },
                { "/openvss/sets/{s}/decision", "commit" },
        };
        struct cset_store s = store();
        struct etcd_kv kvs[ARRAY_SIZE(kv)] = {};
        struct etcd_range_result r = { .kvs = kvs, .n_kvs = ARRAY_SIZE(kv) };
        char out[512] = "";

        (void)state;
        fill_kvs(kvs, kv, ARRAY_SIZE(kv));
        cset_store_put_events(&s, &r, events_collect, out);
        assert_string_equal(out, "host-prepared:h1/c,freeze-seen/p,decision-seen/c/p,");
        out[0] = 0;
        cset_store_poll_events(&s, &r, events_collect, out);
        assert_string_equal(out, "host-prepared:h1/c,freeze-seen/p,decision-seen/c/p,coordinator-gone/p,");
        out[0] = 0;
        r.n_kvs = 0;
        cset_store_put_events(&s, &r, events_collect, out);
        assert_string_equal(out, "");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_keys_and_failures),
                cmocka_unit_test(test_txns),
                cmocka_unit_test(test_results),
                cmocka_unit_test(test_start),
                cmocka_unit_test(test_gc),
                cmocka_unit_test(test_events),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
