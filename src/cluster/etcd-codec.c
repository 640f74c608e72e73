/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * etcd v3 JSON gateway encoding: base64 bytes, int64 strings, request bodies,
 * txn building and the reply parsers (see etcd-codec.h for the mapping).
 *
 * Parsing is strict where a wrong reading could change a decision (a
 * revision, a value, whether a txn succeeded) and lenient where proto3 JSON
 * allows it (absent fields are zero; unknown fields are ignored, so a newer
 * etcd that adds fields still parses).  A parser that fails leaves nothing
 * allocated behind and its result zeroed.
 */

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/macro.h"
#include "cluster/etcd-codec.h"

#define BADMSG(errbuf, errlen, ...)                                   \
        ({                                                            \
                if (errbuf && errlen)                                 \
                        snprintf(errbuf, errlen, __VA_ARGS__);        \
                -EBADMSG;                                             \
        })

static const char b64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *etcd_b64_encode(const void *data, size_t n)
{
        const uint8_t *p = data;
        char *out, *o;

        if (n > (SIZE_MAX - 1) / 4 * 3 - 3)
                return NULL;
        out = malloc((n + 2) / 3 * 4 + 1);
        if (!out)
                return NULL;
        o = out;
        for (size_t i = 0; i < n; i += 3) {
                uint32_t v = (uint32_t)p[i] << 16;
                size_t left = n - i;

                if (left > 1)
                        v |= (uint32_t)p[i + 1] << 8;
                if (left > 2)
                        v |= p[i + 2];
                *o++ = b64_alphabet[(v >> 18) & 63];
                *o++ = b64_alphabet[(v >> 12) & 63];
                *o++ = left > 1 ? b64_alphabet[(v >> 6) & 63] : '=';
                *o++ = left > 2 ? b64_alphabet[v & 63] : '=';
        }
        *o = '\0';
        return out;
}

static int b64_value(char c)
{
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == '+')
                return 62;
        if (c == '/')
                return 63;
        return -1;
}

int etcd_b64_decode(const char *text, size_t len, uint8_t **ret, size_t *ret_len)
{
        _cleanup_free_ uint8_t *out = NULL;
        size_t n = 0;

        if (len % 4 != 0)
                return -EINVAL;
        out = malloc(len / 4 * 3 + 1);
        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i < len; i += 4) {
                int v[4], pad = 0;
                bool last = i + 4 == len;

                for (int k = 0; k < 4; k++) {
                        char c = text[i + k];

                        if (c == '=' && last && k >= 2) {
                                v[k] = 0;
                                pad++;
                                continue;
                        }
                        if (pad > 0)            /* a data character after '=' */
                                return -EINVAL;
                        v[k] = b64_value(c);
                        if (v[k] < 0)
                                return -EINVAL;
                }
                /* Unused bits must be zero, so that every byte string has one spelling. */
                if (pad == 2 && (v[1] & 15))
                        return -EINVAL;
                if (pad == 1 && (v[2] & 3))
                        return -EINVAL;
                out[n++] = (uint8_t)(v[0] << 2 | v[1] >> 4);
                if (pad < 2)
                        out[n++] = (uint8_t)((v[1] & 15) << 4 | v[2] >> 2);
                if (pad < 1)
                        out[n++] = (uint8_t)((v[2] & 3) << 6 | v[3]);
        }
        out[n] = 0;
        *ret = TAKE_PTR(out);
        *ret_len = n;
        return 0;
}

int etcd_prefix_end(const void *prefix, size_t len, uint8_t **ret, size_t *ret_len)
{
        const uint8_t *p = prefix;
        uint8_t *out;

        for (size_t i = len; i > 0; i--) {
                if (p[i - 1] == 0xff)
                        continue;
                out = malloc(i + 1);
                if (!out)
                        return -ENOMEM;
                memcpy(out, p, i);
                out[i - 1]++;
                out[i] = 0;
                *ret = out;
                *ret_len = i;
                return 0;
        }
        out = calloc(1, 2);
        if (!out)
                return -ENOMEM;
        *ret = out;             /* "\0": from the key to the end of the key space */
        *ret_len = 1;
        return 0;
}

int etcd_json_int64(const json_t *v, int64_t *ret)
{
        const char *s;
        char *end;
        long long x;

        if (!v) {
                *ret = 0;
                return 0;
        }
        if (json_is_integer(v)) {
                *ret = json_integer_value(v);
                return 0;
        }
        if (!json_is_string(v))
                return -EINVAL;
        s = json_string_value(v);
        /* Only what Go's strconv writes: optional '-', digits, nothing else. */
        if (!*s || (s[0] == '-' && !s[1]) || json_string_length(v) != strlen(s))
                return -EINVAL;
        for (const char *c = s[0] == '-' ? s + 1 : s; *c; c++)
                if (*c < '0' || *c > '9')
                        return -EINVAL;
        errno = 0;
        x = strtoll(s, &end, 10);
        if (errno || *end)
                return -EINVAL;
        *ret = x;
        return 0;
}

/* uint64 fields (ids): the gateway writes them as decimal strings too. */
static int json_uint64(const json_t *v, uint64_t *ret)
{
        const char *s;
        char *end;
        unsigned long long x;

        if (!v) {
                *ret = 0;
                return 0;
        }
        if (json_is_integer(v)) {
                if (json_integer_value(v) < 0)
                        return -EINVAL;
                *ret = (uint64_t)json_integer_value(v);
                return 0;
        }
        if (!json_is_string(v))
                return -EINVAL;
        s = json_string_value(v);
        if (!*s || json_string_length(v) != strlen(s))
                return -EINVAL;
        for (const char *c = s; *c; c++)
                if (*c < '0' || *c > '9')
                        return -EINVAL;
        errno = 0;
        x = strtoull(s, &end, 10);
        if (errno || *end)
                return -EINVAL;
        *ret = x;
        return 0;
}

static int json_bool_field(const json_t *obj, const char *name, bool *ret)
{
        const json_t *v = json_object_get(obj, name);

        if (!v) {
                *ret = false;
                return 0;
        }
        if (!json_is_boolean(v))
                return -EINVAL;
        *ret = json_is_true(v);
        return 0;
}

/* Bytes field: absent is empty (proto3), present must be a base64 string. */
static int json_bytes_field(const json_t *obj, const char *name, uint8_t **ret, size_t *ret_len)
{
        const json_t *v = json_object_get(obj, name);

        if (!v) {
                *ret = calloc(1, 1);
                *ret_len = 0;
                return *ret ? 0 : -ENOMEM;
        }
        if (!json_is_string(v) || json_string_length(v) > ETCD_BYTES_MAX / 3 * 4 + 4)
                return -EINVAL;
        return etcd_b64_decode(json_string_value(v), json_string_length(v), ret, ret_len);
}

static int load(const char *body, size_t len, json_t **ret, char *errbuf, size_t errlen)
{
        json_error_t e;
        json_t *j;

        j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &e);
        if (!j)
                return BADMSG(errbuf, errlen, "reply is not JSON: %s", e.text);
        if (!json_is_object(j)) {
                json_decref(j);
                return BADMSG(errbuf, errlen, "reply is not a JSON object");
        }
        *ret = j;
        return 0;
}

static int parse_header(const json_t *obj, struct etcd_header *h, char *errbuf, size_t errlen)
{
        const json_t *hj = json_object_get(obj, "header");

        *h = (struct etcd_header){ 0 };
        if (!hj)
                return 0;       /* a txn's inner responses may carry none */
        if (!json_is_object(hj))
                return BADMSG(errbuf, errlen, "'header' is not an object");
        if (json_uint64(json_object_get(hj, "cluster_id"), &h->cluster_id) < 0 ||
            json_uint64(json_object_get(hj, "member_id"), &h->member_id) < 0 ||
            etcd_json_int64(json_object_get(hj, "revision"), &h->revision) < 0 ||
            json_uint64(json_object_get(hj, "raft_term"), &h->raft_term) < 0)
                return BADMSG(errbuf, errlen, "malformed number in 'header'");
        if (h->revision < 0)
                return BADMSG(errbuf, errlen, "negative revision in 'header'");
        return 0;
}

void etcd_kv_release(struct etcd_kv *kv)
{
        if (!kv)
                return;
        free(kv->key);
        free(kv->value);
        *kv = (struct etcd_kv){ 0 };
}

static int parse_kv(const json_t *o, struct etcd_kv *kv, char *errbuf, size_t errlen)
{
        int r;

        *kv = (struct etcd_kv){ 0 };
        if (!json_is_object(o))
                return BADMSG(errbuf, errlen, "a kv is not an object");
        r = json_bytes_field(o, "key", &kv->key, &kv->key_len);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return BADMSG(errbuf, errlen, "kv 'key' is not base64");
        r = json_bytes_field(o, "value", &kv->value, &kv->value_len);
        if (r < 0) {
                etcd_kv_release(kv);
                return r == -ENOMEM ? r : BADMSG(errbuf, errlen, "kv 'value' is not base64");
        }
        if (etcd_json_int64(json_object_get(o, "create_revision"), &kv->create_revision) < 0 ||
            etcd_json_int64(json_object_get(o, "mod_revision"), &kv->mod_revision) < 0 ||
            etcd_json_int64(json_object_get(o, "version"), &kv->version) < 0 ||
            etcd_json_int64(json_object_get(o, "lease"), &kv->lease) < 0 || kv->create_revision < 0 ||
            kv->mod_revision < 0 || kv->version < 0) {
                etcd_kv_release(kv);
                return BADMSG(errbuf, errlen, "malformed number in a kv");
        }
        return 0;
}

void etcd_range_result_release(struct etcd_range_result *r)
{
        if (!r)
                return;
        for (size_t i = 0; i < r->n_kvs; i++)
                etcd_kv_release(&r->kvs[i]);
        free(r->kvs);
        *r = (struct etcd_range_result){ 0 };
}

static int range_from_json(const json_t *o, struct etcd_range_result *ret, char *errbuf, size_t errlen)
{
        struct etcd_range_result r = { 0 };
        const json_t *kvs = json_object_get(o, "kvs");
        int k;

        k = parse_header(o, &r.header, errbuf, errlen);
        if (k < 0)
                return k;
        if (etcd_json_int64(json_object_get(o, "count"), &r.count) < 0 || r.count < 0)
                return BADMSG(errbuf, errlen, "malformed 'count'");
        if (json_bool_field(o, "more", &r.more) < 0)
                return BADMSG(errbuf, errlen, "'more' is not a boolean");
        if (kvs && !json_is_array(kvs))
                return BADMSG(errbuf, errlen, "'kvs' is not an array");
        if (kvs && json_array_size(kvs) > 0) {
                r.kvs = calloc(json_array_size(kvs), sizeof(*r.kvs));
                if (!r.kvs)
                        return -ENOMEM;
                for (size_t i = 0; i < json_array_size(kvs); i++) {
                        k = parse_kv(json_array_get(kvs, i), &r.kvs[i], errbuf, errlen);
                        if (k < 0) {
                                etcd_range_result_release(&r);
                                return k;
                        }
                        r.n_kvs++;
                }
        }
        /* count is the number of keys in the range; it cannot be fewer than those returned. */
        if ((uint64_t)r.count < r.n_kvs) {
                etcd_range_result_release(&r);
                return BADMSG(errbuf, errlen, "'count' %" PRId64 " below the %zu kvs returned", r.count, r.n_kvs);
        }
        *ret = r;
        return 0;
}

int etcd_parse_error(const char *body, size_t len, int *ret_code, char *msg, size_t msglen)
{
        json_t *j = NULL;
        const json_t *m;
        int64_t code;
        int r;

        r = load(body, len, &j, msg, msglen);
        if (r < 0)
                return r;
        m = json_object_get(j, "message");
        if (!json_is_string(m))
                m = json_object_get(j, "error");
        if (!json_is_string(m) || etcd_json_int64(json_object_get(j, "code"), &code) < 0 || code < 0 ||
            code > 64) {
                json_decref(j);
                return BADMSG(msg, msglen, "error reply without 'message' and 'code'");
        }
        if (msg && msglen)
                snprintf(msg, msglen, "%s", json_string_value(m));
        *ret_code = (int)code;
        json_decref(j);
        return 0;
}

int etcd_parse_header_reply(const char *body, size_t len, struct etcd_header *ret, char *errbuf, size_t errlen)
{
        json_t *j = NULL;
        int r;

        r = load(body, len, &j, errbuf, errlen);
        if (r < 0)
                return r;
        r = parse_header(j, ret, errbuf, errlen);
        json_decref(j);
        return r;
}

int etcd_parse_range(const char *body, size_t len, struct etcd_range_result *ret, char *errbuf, size_t errlen)
{
        json_t *j = NULL;
        int r;

        *ret = (struct etcd_range_result){ 0 };
        r = load(body, len, &j, errbuf, errlen);
        if (r < 0)
                return r;
        r = range_from_json(j, ret, errbuf, errlen);
        json_decref(j);
        return r;
}

int etcd_parse_delete(const char *body, size_t len, struct etcd_header *ret_header, int64_t *ret_deleted,
                      char *errbuf, size_t errlen)
{
        json_t *j = NULL;
        int64_t deleted;
        int r;

        r = load(body, len, &j, errbuf, errlen);
        if (r < 0)
                return r;
        r = parse_header(j, ret_header, errbuf, errlen);
        if (r >= 0 && (etcd_json_int64(json_object_get(j, "deleted"), &deleted) < 0 || deleted < 0))
                r = BADMSG(errbuf, errlen, "malformed 'deleted'");
        if (r >= 0)
                *ret_deleted = deleted;
        json_decref(j);
        return r;
}

void etcd_txn_result_release(struct etcd_txn_result *r)
{
        if (!r)
                return;
        for (size_t i = 0; i < r->n_ops; i++)
                etcd_range_result_release(&r->ops[i].range);
        free(r->ops);
        *r = (struct etcd_txn_result){ 0 };
}

const struct etcd_range_result *etcd_txn_result_range(const struct etcd_txn_result *r, size_t nth)
{
        for (size_t i = 0; i < r->n_ops; i++)
                if (r->ops[i].type == ETCD_OP_RANGE && nth-- == 0)
                        return &r->ops[i].range;
        return NULL;
}

static int parse_op_result(const json_t *o, struct etcd_op_result *op, char *errbuf, size_t errlen)
{
        static const struct {
                const char *name;
                enum etcd_op_type type;
        } kinds[] = {
                { "response_range", ETCD_OP_RANGE },
                { "response_put", ETCD_OP_PUT },
                { "response_delete_range", ETCD_OP_DELETE },
        };
        const json_t *inner = NULL;
        struct etcd_header h;
        int r;

        *op = (struct etcd_op_result){ 0 };
        if (!json_is_object(o))
                return BADMSG(errbuf, errlen, "a txn response is not an object");
        for (size_t i = 0; i < ARRAY_SIZE(kinds); i++) {
                const json_t *v = json_object_get(o, kinds[i].name);

                if (!v)
                        continue;
                if (inner || !json_is_object(v))
                        return BADMSG(errbuf, errlen, "a txn response must hold exactly one result object");
                inner = v;
                op->type = kinds[i].type;
        }
        if (!inner)
                return BADMSG(errbuf, errlen, "a txn response holds no known result");
        switch (op->type) {
        case ETCD_OP_RANGE:
                r = range_from_json(inner, &op->range, errbuf, errlen);
                if (r < 0)
                        return r;
                op->revision = op->range.header.revision;
                return 0;
        case ETCD_OP_DELETE:
                if (etcd_json_int64(json_object_get(inner, "deleted"), &op->deleted) < 0 || op->deleted < 0)
                        return BADMSG(errbuf, errlen, "malformed 'deleted' in a txn response");
                __attribute__((fallthrough));
        case ETCD_OP_PUT:
                r = parse_header(inner, &h, errbuf, errlen);
                if (r < 0)
                        return r;
                op->revision = h.revision;
                return 0;
        }
        return BADMSG(errbuf, errlen, "unknown txn response");
}

int etcd_parse_txn(const char *body, size_t len, struct etcd_txn_result *ret, char *errbuf, size_t errlen)
{
        struct etcd_txn_result t = { 0 };
        json_t *j = NULL;
        const json_t *resp;
        int r;

        *ret = t;
        r = load(body, len, &j, errbuf, errlen);
        if (r < 0)
                return r;
        r = parse_header(j, &t.header, errbuf, errlen);
        if (r < 0)
                goto out;
        if (json_bool_field(j, "succeeded", &t.succeeded) < 0) {
                r = BADMSG(errbuf, errlen, "'succeeded' is not a boolean");
                goto out;
        }
        resp = json_object_get(j, "responses");
        if (resp && !json_is_array(resp)) {
                r = BADMSG(errbuf, errlen, "'responses' is not an array");
                goto out;
        }
        if (resp && json_array_size(resp) > 0) {
                t.ops = calloc(json_array_size(resp), sizeof(*t.ops));
                if (!t.ops) {
                        r = -ENOMEM;
                        goto out;
                }
                for (size_t i = 0; i < json_array_size(resp); i++) {
                        r = parse_op_result(json_array_get(resp, i), &t.ops[i], errbuf, errlen);
                        if (r < 0) {
                                etcd_txn_result_release(&t);
                                goto out;
                        }
                        t.n_ops++;
                }
        }
        *ret = t;
        r = 0;
out:
        json_decref(j);
        return r;
}

int etcd_parse_lease_grant(const char *body, size_t len, int64_t *ret_id, int64_t *ret_ttl, char *errbuf,
                           size_t errlen)
{
        struct etcd_header h;
        json_t *j = NULL;
        const json_t *err;
        int64_t id, ttl;
        int r;

        r = load(body, len, &j, errbuf, errlen);
        if (r < 0)
                return r;
        r = parse_header(j, &h, errbuf, errlen);
        if (r < 0)
                goto out;
        err = json_object_get(j, "error");
        if (err && json_is_string(err) && json_string_length(err) > 0) {
                r = BADMSG(errbuf, errlen, "lease grant failed: %s", json_string_value(err));
                goto out;
        }
        if (etcd_json_int64(json_object_get(j, "ID"), &id) < 0 || etcd_json_int64(json_object_get(j, "TTL"), &ttl) < 0) {
                r = BADMSG(errbuf, errlen, "malformed 'ID' or 'TTL'");
                goto out;
        }
        if (id == 0 || ttl <= 0) {
                r = BADMSG(errbuf, errlen, "lease grant returned ID %" PRId64 " TTL %" PRId64, id, ttl);
                goto out;
        }
        *ret_id = id;
        *ret_ttl = ttl;
out:
        json_decref(j);
        return r;
}

/* A streamed line's {"error": {"code": N, "message": "..."}} (grpc-gateway's stream error form). */
static bool stream_error(const json_t *j, int *ret_code, char *msg, size_t msglen)
{
        const json_t *e = json_object_get(j, "error"), *m;
        int64_t code = 0;

        if (!json_is_object(e))
                return false;
        m = json_object_get(e, "message");
        if (etcd_json_int64(json_object_get(e, "code"), &code) < 0 || code < 0 || code > 64)
                code = 2;       /* gRPC Unknown */
        *ret_code = (int)code;
        if (msg && msglen)
                snprintf(msg, msglen, "%s", json_is_string(m) ? json_string_value(m) : "stream error");
        return true;
}

int etcd_parse_keepalive(const char *body, size_t len, int64_t *ret_id, int64_t *ret_ttl, char *errbuf,
                         size_t errlen)
{
        struct etcd_header h;
        json_t *j = NULL;
        const json_t *res;
        int64_t id, ttl;
        int code, r;

        r = load(body, len, &j, errbuf, errlen);
        if (r < 0)
                return r;
        if (stream_error(j, &code, errbuf, errlen)) {
                json_decref(j);
                return -EIO;
        }
        res = json_object_get(j, "result");
        if (!json_is_object(res)) {
                json_decref(j);
                return BADMSG(errbuf, errlen, "keepalive reply without 'result'");
        }
        r = parse_header(res, &h, errbuf, errlen);
        if (r >= 0 && (etcd_json_int64(json_object_get(res, "ID"), &id) < 0 ||
                       etcd_json_int64(json_object_get(res, "TTL"), &ttl) < 0 || ttl < 0))
                r = BADMSG(errbuf, errlen, "malformed 'ID' or 'TTL'");
        if (r >= 0) {
                *ret_id = id;
                *ret_ttl = ttl;
        }
        json_decref(j);
        return r;
}

void etcd_watch_response_release(struct etcd_watch_response *w)
{
        if (!w)
                return;
        for (size_t i = 0; i < w->n_events; i++) {
                etcd_kv_release(&w->events[i].kv);
                etcd_kv_release(&w->events[i].prev_kv);
        }
        free(w->events);
        *w = (struct etcd_watch_response){ 0 };
}

static int parse_event(const json_t *o, struct etcd_event *ev, char *errbuf, size_t errlen)
{
        const json_t *type, *prev;
        int r;

        *ev = (struct etcd_event){ 0 };
        if (!json_is_object(o))
                return BADMSG(errbuf, errlen, "an event is not an object");
        type = json_object_get(o, "type");
        if (!type || (json_is_string(type) && streq(json_string_value(type), "PUT")) ||
            (json_is_integer(type) && json_integer_value(type) == 0))
                ev->type = ETCD_EVENT_PUT;
        else if ((json_is_string(type) && streq(json_string_value(type), "DELETE")) ||
                 (json_is_integer(type) && json_integer_value(type) == 1))
                ev->type = ETCD_EVENT_DELETE;
        else
                return BADMSG(errbuf, errlen, "unknown event type");
        if (!json_object_get(o, "kv"))
                return BADMSG(errbuf, errlen, "an event without 'kv'");
        r = parse_kv(json_object_get(o, "kv"), &ev->kv, errbuf, errlen);
        if (r < 0)
                return r;
        prev = json_object_get(o, "prev_kv");
        if (prev) {
                r = parse_kv(prev, &ev->prev_kv, errbuf, errlen);
                if (r < 0) {
                        etcd_kv_release(&ev->kv);
                        return r;
                }
                ev->has_prev_kv = true;
        }
        return 0;
}

int etcd_parse_watch(const char *line, size_t len, struct etcd_watch_response *ret, char *errbuf, size_t errlen)
{
        struct etcd_watch_response w = { 0 };
        json_t *j = NULL;
        const json_t *res, *evs, *reason;
        int r;

        *ret = w;
        r = load(line, len, &j, errbuf, errlen);
        if (r < 0)
                return r;
        if (stream_error(j, &w.error_code, w.error_message, sizeof(w.error_message))) {
                w.is_error = true;
                *ret = w;
                json_decref(j);
                return 0;
        }
        res = json_object_get(j, "result");
        if (!json_is_object(res)) {
                r = BADMSG(errbuf, errlen, "watch line without 'result'");
                goto out;
        }
        r = parse_header(res, &w.header, errbuf, errlen);
        if (r < 0)
                goto out;
        if (etcd_json_int64(json_object_get(res, "watch_id"), &w.watch_id) < 0 ||
            etcd_json_int64(json_object_get(res, "compact_revision"), &w.compact_revision) < 0 ||
            w.compact_revision < 0 || json_bool_field(res, "created", &w.created) < 0 ||
            json_bool_field(res, "canceled", &w.canceled) < 0) {
                r = BADMSG(errbuf, errlen, "malformed field in a watch response");
                goto out;
        }
        reason = json_object_get(res, "cancel_reason");
        if (json_is_string(reason))
                snprintf(w.cancel_reason, sizeof(w.cancel_reason), "%s", json_string_value(reason));
        evs = json_object_get(res, "events");
        if (evs && !json_is_array(evs)) {
                r = BADMSG(errbuf, errlen, "'events' is not an array");
                goto out;
        }
        if (evs && json_array_size(evs) > 0) {
                w.events = calloc(json_array_size(evs), sizeof(*w.events));
                if (!w.events) {
                        r = -ENOMEM;
                        goto out;
                }
                for (size_t i = 0; i < json_array_size(evs); i++) {
                        r = parse_event(json_array_get(evs, i), &w.events[i], errbuf, errlen);
                        if (r < 0) {
                                etcd_watch_response_release(&w);
                                goto out;
                        }
                        w.n_events++;
                }
        }
        *ret = w;
        r = 0;
out:
        json_decref(j);
        return r;
}

int etcd_parse_status(const char *body, size_t len, struct etcd_status *ret, char *errbuf, size_t errlen)
{
        struct etcd_status s = { 0 };
        json_t *j = NULL;
        const json_t *v, *errs;
        int r;

        *ret = s;
        r = load(body, len, &j, errbuf, errlen);
        if (r < 0)
                return r;
        r = parse_header(j, &s.header, errbuf, errlen);
        if (r < 0)
                goto out;
        if (json_uint64(json_object_get(j, "leader"), &s.leader) < 0 ||
            etcd_json_int64(json_object_get(j, "raftIndex"), &s.raft_index) < 0 ||
            etcd_json_int64(json_object_get(j, "dbSize"), &s.db_size) < 0) {
                r = BADMSG(errbuf, errlen, "malformed number in a status reply");
                goto out;
        }
        v = json_object_get(j, "version");
        if (json_is_string(v))
                snprintf(s.version, sizeof(s.version), "%s", json_string_value(v));
        errs = json_object_get(j, "errors");
        if (json_is_array(errs))
                for (size_t i = 0; i < json_array_size(errs); i++) {
                        const json_t *e = json_array_get(errs, i);
                        size_t used = strlen(s.errors);

                        if (json_is_string(e) && used + 3 < sizeof(s.errors))
                                snprintf(s.errors + used, sizeof(s.errors) - used, "%s%s", used ? "; " : "",
                                         json_string_value(e));
                }
        *ret = s;
out:
        json_decref(j);
        return r;
}

/* ---- requests ---- */

static int set_bytes(json_t *o, const char *name, const void *data, size_t len)
{
        char *b = etcd_b64_encode(data, len);

        if (!b)
                return -ENOMEM;
        if (json_object_set_new(o, name, json_string(b)) < 0) {
                free(b);
                return -ENOMEM;
        }
        free(b);
        return 0;
}

static int set_int64(json_t *o, const char *name, int64_t v)
{
        char buf[24];

        snprintf(buf, sizeof(buf), "%" PRId64, v);
        return json_object_set_new(o, name, json_string(buf)) < 0 ? -ENOMEM : 0;
}

static int set_key_range(json_t *o, const char *key, bool prefix)
{
        _cleanup_free_ uint8_t *end = NULL;
        size_t end_len;
        int r;

        r = set_bytes(o, "key", key, strlen(key));
        if (r < 0 || !prefix)
                return r;
        r = etcd_prefix_end(key, strlen(key), &end, &end_len);
        if (r < 0)
                return r;
        return set_bytes(o, "range_end", end, end_len);
}

static char *dump_decref(json_t *o, int r)
{
        char *s = NULL;

        if (o && r >= 0)
                s = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        return s;
}

static json_t *range_object(const char *key, bool prefix, int64_t revision, int64_t limit)
{
        json_t *o = json_object();
        int r;

        if (!o)
                return NULL;
        r = set_key_range(o, key, prefix);
        if (r >= 0 && revision > 0)
                r = set_int64(o, "revision", revision);
        if (r >= 0 && limit > 0)
                r = set_int64(o, "limit", limit);
        if (r < 0) {
                json_decref(o);
                return NULL;
        }
        return o;
}

static json_t *put_object(const char *key, const void *value, size_t len, int64_t lease)
{
        json_t *o = json_object();
        int r;

        if (!o)
                return NULL;
        r = set_bytes(o, "key", key, strlen(key));
        if (r >= 0)
                r = set_bytes(o, "value", value, len);
        if (r >= 0 && lease != 0)
                r = set_int64(o, "lease", lease);
        if (r < 0) {
                json_decref(o);
                return NULL;
        }
        return o;
}

static json_t *delete_object(const char *key, bool prefix)
{
        json_t *o = json_object();

        if (o && set_key_range(o, key, prefix) < 0) {
                json_decref(o);
                return NULL;
        }
        return o;
}

char *etcd_request_range(const char *key, bool prefix, int64_t revision, int64_t limit)
{
        json_t *o = range_object(key, prefix, revision, limit);

        return dump_decref(o, o ? 0 : -ENOMEM);
}

char *etcd_request_put(const char *key, const void *value, size_t len, int64_t lease)
{
        json_t *o = put_object(key, value, len, lease);

        return dump_decref(o, o ? 0 : -ENOMEM);
}

char *etcd_request_delete(const char *key, bool prefix)
{
        json_t *o = delete_object(key, prefix);

        return dump_decref(o, o ? 0 : -ENOMEM);
}

char *etcd_request_lease_grant(int64_t ttl_s)
{
        json_t *o = json_object();

        return dump_decref(o, o ? set_int64(o, "TTL", ttl_s) : -ENOMEM);
}

char *etcd_request_lease_id(int64_t id)
{
        json_t *o = json_object();

        return dump_decref(o, o ? set_int64(o, "ID", id) : -ENOMEM);
}

char *etcd_request_watch(const char *key, bool prefix, int64_t start_revision, bool prev_kv)
{
        json_t *o = json_object(), *c = json_object();
        int r = (o && c) ? 0 : -ENOMEM;

        if (r >= 0)
                r = set_key_range(c, key, prefix);
        if (r >= 0 && start_revision > 0)
                r = set_int64(c, "start_revision", start_revision);
        if (r >= 0 && prev_kv)
                r = json_object_set_new(c, "prev_kv", json_true()) < 0 ? -ENOMEM : 0;
        if (r >= 0 && json_object_set(o, "create_request", c) < 0)
                r = -ENOMEM;
        json_decref(c);
        return dump_decref(o, r);
}

/* ---- transactions ---- */

struct etcd_txn {
        json_t *compare;
        json_t *success;
        json_t *failure;
};

struct etcd_txn *etcd_txn_new(void)
{
        struct etcd_txn *t = calloc(1, sizeof(*t));

        if (!t)
                return NULL;
        t->compare = json_array();
        t->success = json_array();
        t->failure = json_array();
        if (!t->compare || !t->success || !t->failure)
                return etcd_txn_free(t);
        return t;
}

struct etcd_txn *etcd_txn_free(struct etcd_txn *t)
{
        if (!t)
                return NULL;
        json_decref(t->compare);
        json_decref(t->success);
        json_decref(t->failure);
        free(t);
        return NULL;
}

static const char *const cmp_target_names[] = {
        [ETCD_CMP_VERSION] = "VERSION", [ETCD_CMP_CREATE] = "CREATE", [ETCD_CMP_MOD] = "MOD",
        [ETCD_CMP_VALUE] = "VALUE",     [ETCD_CMP_LEASE] = "LEASE",
};
/* The JSON field holding the compared value, per target (proto's oneof target_union). */
static const char *const cmp_field_names[] = {
        [ETCD_CMP_VERSION] = "version", [ETCD_CMP_CREATE] = "create_revision", [ETCD_CMP_MOD] = "mod_revision",
        [ETCD_CMP_VALUE] = "value",     [ETCD_CMP_LEASE] = "lease",
};
static const char *const cmp_result_names[] = {
        [ETCD_CMP_EQUAL] = "EQUAL",
        [ETCD_CMP_GREATER] = "GREATER",
        [ETCD_CMP_LESS] = "LESS",
        [ETCD_CMP_NOT_EQUAL] = "NOT_EQUAL",
};

static json_t *cmp_object(const char *key, enum etcd_cmp_target target, enum etcd_cmp_result res)
{
        json_t *o;

        if ((unsigned)target >= ARRAY_SIZE(cmp_target_names) || (unsigned)res >= ARRAY_SIZE(cmp_result_names))
                return NULL;
        o = json_object();
        if (!o)
                return NULL;
        if (set_bytes(o, "key", key, strlen(key)) < 0 ||
            json_object_set_new(o, "target", json_string(cmp_target_names[target])) < 0 ||
            json_object_set_new(o, "result", json_string(cmp_result_names[res])) < 0) {
                json_decref(o);
                return NULL;
        }
        return o;
}

int etcd_txn_cmp_int(struct etcd_txn *t, const char *key, enum etcd_cmp_target target, enum etcd_cmp_result res,
                     int64_t v)
{
        json_t *o;

        if (!t || !key || target == ETCD_CMP_VALUE || (unsigned)target >= ARRAY_SIZE(cmp_target_names) ||
            (unsigned)res >= ARRAY_SIZE(cmp_result_names))
                return -EINVAL;
        o = cmp_object(key, target, res);
        if (!o)
                return -ENOMEM;
        if (set_int64(o, cmp_field_names[target], v) < 0 || json_array_append_new(t->compare, o) < 0)
                return -ENOMEM;
        return 0;
}

int etcd_txn_cmp_value(struct etcd_txn *t, const char *key, enum etcd_cmp_result res, const void *value, size_t len)
{
        json_t *o;

        if (!t || !key || (!value && len) || (unsigned)res >= ARRAY_SIZE(cmp_result_names))
                return -EINVAL;
        o = cmp_object(key, ETCD_CMP_VALUE, res);
        if (!o)
                return -ENOMEM;
        if (set_bytes(o, "value", value ?: "", len) < 0 || json_array_append_new(t->compare, o) < 0)
                return -ENOMEM;
        return 0;
}

static int add_op(struct etcd_txn *t, bool on_success, const char *kind, json_t *req)
{
        json_t *op;

        if (!req)
                return -ENOMEM;
        op = json_object();
        if (!op || json_object_set_new(op, kind, req) < 0) {
                json_decref(op);
                return -ENOMEM;
        }
        return json_array_append_new(on_success ? t->success : t->failure, op) < 0 ? -ENOMEM : 0;
}

int etcd_txn_put(struct etcd_txn *t, bool on_success, const char *key, const void *value, size_t len, int64_t lease)
{
        if (!t || !key || (!value && len))
                return -EINVAL;
        return add_op(t, on_success, "request_put", put_object(key, value ?: "", len, lease));
}

int etcd_txn_get(struct etcd_txn *t, bool on_success, const char *key, bool prefix)
{
        if (!t || !key)
                return -EINVAL;
        return add_op(t, on_success, "request_range", range_object(key, prefix, 0, 0));
}

int etcd_txn_delete(struct etcd_txn *t, bool on_success, const char *key, bool prefix)
{
        if (!t || !key)
                return -EINVAL;
        return add_op(t, on_success, "request_delete_range", delete_object(key, prefix));
}

char *etcd_txn_dump(const struct etcd_txn *t)
{
        json_t *o;

        if (!t)
                return NULL;
        o = json_pack("{sOsOsO}", "compare", t->compare, "success", t->success, "failure", t->failure);
        return dump_decref(o, o ? 0 : -ENOMEM);
}

size_t etcd_txn_n_compares(const struct etcd_txn *t)
{
        return json_array_size(t->compare);
}

size_t etcd_txn_n_ops(const struct etcd_txn *t, bool on_success)
{
        return json_array_size(on_success ? t->success : t->failure);
}

/* ---- endpoint lists ---- */

static int endpoint_add(char **list, size_t *n, const char *s, size_t len)
{
        char *e;

        while (len > 0 && (s[0] == ' ' || s[0] == '\t')) {
                s++;
                len--;
        }
        while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
                len--;
        while (len > 0 && s[len - 1] == '/')
                len--;
        if (len == 0 || len >= ETCD_ENDPOINT_MAX || *n >= ETCD_MAX_ENDPOINTS)
                return -EINVAL;
        if (!((len > 7 && strncmp(s, "http://", 7) == 0) || (len > 8 && strncmp(s, "https://", 8) == 0)))
                return -EINVAL;
        for (size_t i = 0; i < len; i++)
                if ((unsigned char)s[i] <= ' ' || s[i] == '?' || s[i] == '#' || (unsigned char)s[i] >= 0x7f)
                        return -EINVAL;
        e = strndup(s, len);
        if (!e)
                return -ENOMEM;
        list[(*n)++] = e;
        return 0;
}

void etcd_endpoints_free(char **list, size_t n)
{
        for (size_t i = 0; i < n; i++)
                list[i] = mfree(list[i]);
}

int etcd_endpoints_parse(const char *text, char *ret[ETCD_MAX_ENDPOINTS], size_t *ret_n)
{
        char *list[ETCD_MAX_ENDPOINTS] = { 0 };
        size_t n = 0;
        int r;

        if (!text)
                return -EINVAL;
        for (const char *p = text;;) {
                const char *comma = strchr(p, ',');
                size_t len = comma ? (size_t)(comma - p) : strlen(p);

                r = endpoint_add(list, &n, p, len);
                if (r < 0) {
                        etcd_endpoints_free(list, n);
                        return r;
                }
                if (!comma)
                        break;
                p = comma + 1;
        }
        memcpy(ret, list, n * sizeof(list[0]));
        *ret_n = n;
        return 0;
}
