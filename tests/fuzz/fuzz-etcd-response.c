/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz target for the etcd reply parsers (src/cluster/etcd-codec.c): every
 * byte an etcd gateway (or anything between vssd and it) sends goes through
 * them, and a wrong reading of a revision, a value or a txn's "succeeded"
 * would change a cluster set's decision.  The input is given to every parser
 * (and, cut at each newline, to the watch parser as a stream would be).
 * Invariants (abort() on violation): a parser either succeeds with a result
 * whose every field is in range (revisions >= 0, count >= kvs returned, keys
 * and values NUL-terminated at their length, canonical base64: re-encoding a
 * decoded key gives it back), or fails with a reason and nothing allocated
 * (ASan checks the latter); base64 decoding of the raw input round-trips.
 */

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/etcd-codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok, const char *what)
{
        if (!ok) {
                fprintf(stderr, "fuzz-etcd-response: invariant violated: %s\n", what);
                abort();
        }
}

static void check_kv(const struct etcd_kv *kv)
{
        char *enc;
        uint8_t *dec;
        size_t n;

        check(kv->key && kv->value, "kv key and value are set");
        check(kv->key[kv->key_len] == 0 && kv->value[kv->value_len] == 0, "kv bytes NUL-terminated");
        check(kv->create_revision >= 0 && kv->mod_revision >= 0 && kv->version >= 0, "kv revisions >= 0");
        enc = etcd_b64_encode(kv->key, kv->key_len);
        check(enc != NULL, "encode");
        check(etcd_b64_decode(enc, strlen(enc), &dec, &n) == 0 && n == kv->key_len &&
                      memcmp(dec, kv->key, n) == 0,
              "key round trip");
        free(dec);
        free(enc);
}

static void check_range(const struct etcd_range_result *r)
{
        check(r->header.revision >= 0, "header revision >= 0");
        check(r->count >= 0 && (uint64_t)r->count >= r->n_kvs, "count >= kvs");
        check((r->n_kvs == 0) == (r->kvs == NULL), "kvs array iff kvs");
        for (size_t i = 0; i < r->n_kvs; i++)
                check_kv(&r->kvs[i]);
}

static void fuzz_one(const char *p, size_t n)
{
        struct etcd_range_result range;
        struct etcd_txn_result txn;
        struct etcd_watch_response w;
        struct etcd_status st;
        struct etcd_header h;
        char err[256], msg[256];
        int64_t a, b;
        int code;

        err[0] = 0;
        if (etcd_parse_range(p, n, &range, err, sizeof(err)) == 0) {
                check_range(&range);
                etcd_range_result_release(&range);
        } else {
                check(err[0] != 0 && range.kvs == NULL, "failed range parse gives a reason and nothing else");
        }
        if (etcd_parse_txn(p, n, &txn, err, sizeof(err)) == 0) {
                for (size_t i = 0; i < txn.n_ops; i++) {
                        check(txn.ops[i].type <= ETCD_OP_DELETE, "op type");
                        check(txn.ops[i].deleted >= 0, "deleted >= 0");
                        if (txn.ops[i].type == ETCD_OP_RANGE)
                                check_range(&txn.ops[i].range);
                        else
                                check(txn.ops[i].range.n_kvs == 0, "only range ops hold kvs");
                }
                etcd_txn_result_release(&txn);
        } else {
                check(txn.ops == NULL && txn.n_ops == 0, "failed txn parse holds nothing");
        }
        if (etcd_parse_watch(p, n, &w, err, sizeof(err)) == 0) {
                check(w.compact_revision >= 0, "compact revision >= 0");
                check(!w.is_error || w.n_events == 0, "an error line holds no events");
                for (size_t i = 0; i < w.n_events; i++) {
                        check(w.events[i].type == ETCD_EVENT_PUT || w.events[i].type == ETCD_EVENT_DELETE,
                              "event type");
                        check_kv(&w.events[i].kv);
                        if (w.events[i].has_prev_kv)
                                check_kv(&w.events[i].prev_kv);
                }
                etcd_watch_response_release(&w);
        }
        if (etcd_parse_lease_grant(p, n, &a, &b, err, sizeof(err)) == 0)
                check(a != 0 && b > 0, "granted lease has an id and a TTL");
        if (etcd_parse_keepalive(p, n, &a, &b, err, sizeof(err)) == 0)
                check(b >= 0, "keepalive TTL >= 0");
        if (etcd_parse_delete(p, n, &h, &a, err, sizeof(err)) == 0)
                check(a >= 0 && h.revision >= 0, "deleted >= 0");
        if (etcd_parse_status(p, n, &st, err, sizeof(err)) == 0)
                check(memchr(st.version, 0, sizeof(st.version)) && memchr(st.errors, 0, sizeof(st.errors)),
                      "status strings terminated");
        if (etcd_parse_error(p, n, &code, msg, sizeof(msg)) == 0)
                check(code >= 0 && code <= 64, "gRPC code in range");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const char *p = (const char *)data;
        uint8_t *dec;
        size_t n, start = 0;

        if (size > 1024 * 1024)
                return 0;
        fuzz_one(p, size);
        /* As a stream: line by line, like the watch and keepalive replies. */
        for (size_t i = 0; i < size; i++)
                if (p[i] == '\n') {
                        fuzz_one(p + start, i - start);
                        start = i + 1;
                }
        /* Strict base64 is canonical: what decodes re-encodes to the same text. */
        if (etcd_b64_decode(p, size, &dec, &n) == 0) {
                char *enc = etcd_b64_encode(dec, n);

                check(enc && strlen(enc) == size && memcmp(enc, p, size) == 0, "base64 canonical round trip");
                free(enc);
                free(dec);
        }
        return 0;
}
