/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The pure half of the etcd v3 client: what goes on the wire and what comes
 * back, with no sockets.  etcd's JSON gateway (grpc-gateway in front of the
 * gRPC API, /v3/... on every client URL) maps the protobuf messages to JSON:
 * bytes (keys, values) are base64 (RFC 4648 standard alphabet, padded),
 * 64-bit integers are JSON strings ("revision": "42"), enums are their names
 * ("EQUAL", "CREATE", "DELETE"), and fields holding their zero value are left
 * out (no "succeeded" when a txn took its failure branch, no "type" for a PUT
 * event, no "value" for an empty value).  Errors come back with a non-2xx
 * HTTP status and {"error": "...", "message": "...", "code": N} (gRPC status
 * codes); streamed calls (watch, keepalive) send one {"result": {...}} or
 * {"error": {...}} object per line.
 *
 * Every parser here takes the bytes a server (or an attacker between us and
 * it) sent and either fills its result completely or returns -EBADMSG with
 * the reason in errbuf; tests/fuzz/fuzz-etcd-response.c feeds them garbage.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest key or value the codec accepts from a peer (etcd's default request
 * limit is 1.5 MiB; a value larger than that cannot have been stored). */
#define ETCD_BYTES_MAX (2 * 1024 * 1024)

#define ETCD_MAX_ENDPOINTS 16
#define ETCD_ENDPOINT_MAX 256           /* bytes of one endpoint URL */

/* A comma-separated list of etcd client URLs ("http://10.0.0.1:2379, https://h2:2379/"):
 * http or https, blanks around each and a trailing slash dropped, at most 16.  The URLs
 * are malloc'd into ret[0..*ret_n); -EINVAL for a malformed list. */
int etcd_endpoints_parse(const char *text, char *ret[ETCD_MAX_ENDPOINTS], size_t *ret_n);
void etcd_endpoints_free(char **list, size_t n);

/* base64 of n bytes, NUL-terminated, malloc'd; NULL only on OOM. */
char *etcd_b64_encode(const void *data, size_t n);
/* Strict decoding: standard alphabet, '=' padding required, no whitespace,
 * unused bits zero.  The result is NUL-terminated (not counted in ret_len) so
 * that text values can be used as strings.  -EINVAL on bad input, -ENOMEM. */
int etcd_b64_decode(const char *text, size_t len, uint8_t **ret, size_t *ret_len);

/* The range_end that selects every key starting with 'prefix': the prefix with
 * its last byte below 0xff incremented and what follows dropped; "\0" (every
 * key) when the prefix is empty or all 0xff.  Malloc'd, in ret/ret_len. */
int etcd_prefix_end(const void *prefix, size_t len, uint8_t **ret, size_t *ret_len);

/* A JSON int64 as the gateway writes it (a string of decimal digits) or as a
 * JSON integer; absent (NULL) is 0, as proto3 leaves zero out. */
int etcd_json_int64(const json_t *v, int64_t *ret);

struct etcd_header {
        uint64_t cluster_id;
        uint64_t member_id;
        int64_t revision;
        uint64_t raft_term;
};

struct etcd_kv {
        uint8_t *key;           /* NUL-terminated for convenience; key_len counts the bytes */
        size_t key_len;
        uint8_t *value;         /* never NULL after a successful parse ("" when empty) */
        size_t value_len;
        int64_t create_revision;
        int64_t mod_revision;
        int64_t version;
        int64_t lease;
};

void etcd_kv_release(struct etcd_kv *kv);

struct etcd_range_result {
        struct etcd_header header;
        struct etcd_kv *kvs;
        size_t n_kvs;
        int64_t count;          /* keys in the range (may exceed n_kvs with a limit) */
        bool more;
};

void etcd_range_result_release(struct etcd_range_result *r);

enum etcd_op_type {
        ETCD_OP_RANGE,
        ETCD_OP_PUT,
        ETCD_OP_DELETE,
};

struct etcd_op_result {
        enum etcd_op_type type;
        struct etcd_range_result range;         /* ETCD_OP_RANGE */
        int64_t deleted;                        /* ETCD_OP_DELETE */
        int64_t revision;                       /* the op's own header revision */
};

struct etcd_txn_result {
        struct etcd_header header;
        bool succeeded;                         /* the compares held: the success ops ran */
        struct etcd_op_result *ops;
        size_t n_ops;
};

void etcd_txn_result_release(struct etcd_txn_result *r);

/* The first range result among a txn's responses, or NULL. */
const struct etcd_range_result *etcd_txn_result_range(const struct etcd_txn_result *r, size_t nth);

struct etcd_status {
        struct etcd_header header;
        char version[32];
        uint64_t leader;                        /* 0: this member knows no leader */
        int64_t raft_index;
        int64_t db_size;
        char errors[256];                       /* the member's own error list, "; "-joined */
};

enum etcd_event_type {
        ETCD_EVENT_PUT,
        ETCD_EVENT_DELETE,
};

struct etcd_event {
        enum etcd_event_type type;
        struct etcd_kv kv;
        struct etcd_kv prev_kv;
        bool has_prev_kv;
};

struct etcd_watch_response {
        struct etcd_header header;
        int64_t watch_id;
        bool created;
        bool canceled;
        int64_t compact_revision;               /* > 0: the start revision was compacted away */
        char cancel_reason[128];
        struct etcd_event *events;
        size_t n_events;
        /* A streamed {"error": ...} line instead of a result: */
        bool is_error;
        int error_code;
        char error_message[256];
};

void etcd_watch_response_release(struct etcd_watch_response *w);

/* Replies.  Each returns 0 or -EBADMSG (-ENOMEM) with errbuf saying why. */
int etcd_parse_error(const char *body, size_t len, int *ret_code, char *msg, size_t msglen);
int etcd_parse_header_reply(const char *body, size_t len, struct etcd_header *ret, char *errbuf, size_t errlen);
int etcd_parse_range(const char *body, size_t len, struct etcd_range_result *ret, char *errbuf, size_t errlen);
int etcd_parse_delete(const char *body, size_t len, struct etcd_header *ret_header, int64_t *ret_deleted,
                      char *errbuf, size_t errlen);
int etcd_parse_txn(const char *body, size_t len, struct etcd_txn_result *ret, char *errbuf, size_t errlen);
int etcd_parse_lease_grant(const char *body, size_t len, int64_t *ret_id, int64_t *ret_ttl, char *errbuf,
                           size_t errlen);
/* One line of the keepalive stream.  TTL 0 means the lease does not exist
 * (expired or revoked): etcd answers a keepalive of an unknown lease so.
 * A streamed error line gives -EIO with its message in errbuf. */
int etcd_parse_keepalive(const char *body, size_t len, int64_t *ret_id, int64_t *ret_ttl, char *errbuf,
                         size_t errlen);
/* One line of the watch stream. */
int etcd_parse_watch(const char *line, size_t len, struct etcd_watch_response *ret, char *errbuf, size_t errlen);
int etcd_parse_status(const char *body, size_t len, struct etcd_status *ret, char *errbuf, size_t errlen);

/*
 * Transactions.  A txn is compares (all must hold), then the success ops or
 * the failure ops, applied atomically at one revision.  The builder keeps the
 * JSON; etcd_txn_dump() gives the request body.
 */
enum etcd_cmp_target {
        ETCD_CMP_VERSION,
        ETCD_CMP_CREATE,        /* create_revision: 0 when the key does not exist */
        ETCD_CMP_MOD,
        ETCD_CMP_VALUE,
        ETCD_CMP_LEASE,
};

enum etcd_cmp_result {
        ETCD_CMP_EQUAL,
        ETCD_CMP_GREATER,
        ETCD_CMP_LESS,
        ETCD_CMP_NOT_EQUAL,
};

struct etcd_txn;

struct etcd_txn *etcd_txn_new(void);
struct etcd_txn *etcd_txn_free(struct etcd_txn *t);
/* Compares an integer target (not ETCD_CMP_VALUE) of 'key' with 'v'. */
int etcd_txn_cmp_int(struct etcd_txn *t, const char *key, enum etcd_cmp_target target, enum etcd_cmp_result res,
                     int64_t v);
int etcd_txn_cmp_value(struct etcd_txn *t, const char *key, enum etcd_cmp_result res, const void *value, size_t len);
/* Ops, on the success branch (on_success) or the failure branch.  lease 0: none. */
int etcd_txn_put(struct etcd_txn *t, bool on_success, const char *key, const void *value, size_t len, int64_t lease);
/* prefix: every key starting with 'key'. */
int etcd_txn_get(struct etcd_txn *t, bool on_success, const char *key, bool prefix);
int etcd_txn_delete(struct etcd_txn *t, bool on_success, const char *key, bool prefix);
/* Request body (malloc'd) or NULL on OOM. */
char *etcd_txn_dump(const struct etcd_txn *t);
/* Counts, for callers that check what they built. */
size_t etcd_txn_n_compares(const struct etcd_txn *t);
size_t etcd_txn_n_ops(const struct etcd_txn *t, bool on_success);

/* Request bodies of the other calls (malloc'd, NULL on OOM). */
char *etcd_request_range(const char *key, bool prefix, int64_t revision, int64_t limit);
char *etcd_request_put(const char *key, const void *value, size_t len, int64_t lease);
char *etcd_request_delete(const char *key, bool prefix);
char *etcd_request_lease_grant(int64_t ttl_s);
char *etcd_request_lease_id(int64_t id);        /* keepalive, revoke */
char *etcd_request_watch(const char *key, bool prefix, int64_t start_revision, bool prev_kv);
