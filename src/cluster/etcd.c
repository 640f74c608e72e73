/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The transport of the etcd client: one libcurl easy handle per client
 * (connections to every member stay cached, so a call after a failover does
 * not pay a new handshake), one easy handle in a multi handle per watch.
 *
 * call() is the one place that decides what a failure means.  Each attempt
 * gets a share of the time left (the remaining budget divided by the
 * endpoints not yet tried in this round, never less than ATTEMPT_MIN_US or
 * what is left), as both its connect and its total timeout, so a silent
 * member cannot eat the whole deadline.  An attempt ends in one of:
 *   - a 200 reply: handed to the op's parser; the endpoint becomes current;
 *   - an etcd error a member gives when it cannot serve right now (gRPC
 *     Unavailable or DeadlineExceeded: no leader, leader changed, request
 *     timed out): next endpoint; "no leader" is remembered, and if the
 *     deadline passes with it the call reports lost quorum (-ENOLINK);
 *   - a transport failure (refused, reset, no answer in the share): next;
 *   - any other etcd error: final, mapped to an errno.
 * Every endpoint's last failure goes into the error text, so "no quorum"
 * reads as the list of what each member said.
 */

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "basic/string-util.h"
#include "basic/time-util.h"
#include "cluster/etcd.h"

#define REPLY_MAX (16 * 1024 * 1024)    /* largest reply body accepted */
#define WATCH_LINE_MAX (8 * 1024 * 1024)
#define ATTEMPT_MIN_US (100 * USEC_PER_MSEC)
#define ROUND_PAUSE_US (50 * USEC_PER_MSEC)
#define WATCH_CONNECT_MS 1000
#define WATCH_RETRY_US (200 * USEC_PER_MSEC)

struct buf {
        char *data;
        size_t len;
        size_t cap;
        size_t max;
        bool overflow;
};

struct etcd_client {
        CURL *curl;
        struct curl_slist *headers;
        struct curl_slist *headers_status;      /* without "hasleader": status must answer without a leader */
        char *endpoints[ETCD_MAX_ENDPOINTS];
        size_t n_endpoints;
        size_t current;
        struct buf reply;
        char last[ETCD_MAX_ENDPOINTS][192];     /* per endpoint: its last failure in this call */
        bool answered[ETCD_MAX_ENDPOINTS];      /* ... and whether the member itself said it */
        char error[1024];
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result = CURLE_FAILED_INIT;

static void curl_init_once(void)
{
        curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void buf_reset(struct buf *b)
{
        b->len = 0;
        b->overflow = false;
}

static void buf_free(struct buf *b)
{
        free(b->data);
        *b = (struct buf){ 0 };
}

static int buf_append(struct buf *b, const void *p, size_t n)
{
        if (b->len + n + 1 > b->max) {
                b->overflow = true;
                return -EMSGSIZE;
        }
        if (b->len + n + 1 > b->cap) {
                size_t cap = MAX(b->cap * 2, b->len + n + 1);
                char *d;

                cap = MAX(cap, (size_t)4096);
                d = realloc(b->data, cap);
                if (!d)
                        return -ENOMEM;
                b->data = d;
                b->cap = cap;
        }
        memcpy(b->data + b->len, p, n);
        b->len += n;
        b->data[b->len] = '\0';
        return 0;
}

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
        struct buf *b = userdata;
        size_t n = size * nmemb;

        if (buf_append(b, ptr, n) < 0)
                return 0;       /* makes curl fail the transfer with CURLE_WRITE_ERROR */
        return n;
}

int etcd_client_new(const char *endpoints, struct etcd_client **ret)
{
        _cleanup_(etcd_client_freep) struct etcd_client *c = NULL;
        int r;

        if (!endpoints || !ret)
                return -EINVAL;
        pthread_once(&curl_once, curl_init_once);
        if (curl_init_result != CURLE_OK)
                return -ENOMEM;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->reply.max = REPLY_MAX;
        r = etcd_endpoints_parse(endpoints, c->endpoints, &c->n_endpoints);
        if (r < 0)
                return r;
        c->curl = curl_easy_init();
        if (!c->curl)
                return -ENOMEM;
        /* "Expect:" off: curl would wait for a 100 Continue on bodies above 1 KiB. */
        c->headers = curl_slist_append(NULL, "Content-Type: application/json");
        if (c->headers)
                c->headers = curl_slist_append(c->headers, "Expect:");
        /* gRPC metadata "hasleader": a member that knows no leader answers "no leader" at once
         * instead of holding the request until its own timeout (etcd's WithRequireLeader). */
        if (c->headers)
                c->headers = curl_slist_append(c->headers, "Grpc-Metadata-hasleader: true");
        c->headers_status = curl_slist_append(NULL, "Content-Type: application/json");
        if (!c->headers || !c->headers_status)
                return -ENOMEM;
        *ret = TAKE_PTR(c);
        return 0;
}

struct etcd_client *etcd_client_free(struct etcd_client *c)
{
        if (!c)
                return NULL;
        if (c->curl)
                curl_easy_cleanup(c->curl);
        curl_slist_free_all(c->headers);
        curl_slist_free_all(c->headers_status);
        for (size_t i = 0; i < c->n_endpoints; i++)
                free(c->endpoints[i]);
        buf_free(&c->reply);
        free(c);
        return NULL;
}

const char *etcd_client_error(const struct etcd_client *c)
{
        return c->error;
}

size_t etcd_client_n_endpoints(const struct etcd_client *c)
{
        return c->n_endpoints;
}

const char *etcd_client_endpoint(const struct etcd_client *c, size_t i)
{
        return i < c->n_endpoints ? c->endpoints[i] : NULL;
}

size_t etcd_client_current(const struct etcd_client *c)
{
        return c->current;
}

/* Options every transfer of ours sets: no signals (vssd has threads), no
 * proxy from the environment (etcd is on the local network), POST JSON. */
static void setopt_common(CURL *h, struct curl_slist *headers, struct buf *b)
{
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
        curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
}

enum attempt_kind {
        ATTEMPT_OK,             /* 200; body in c->reply */
        ATTEMPT_RETRY,          /* try the next endpoint */
        ATTEMPT_NO_LEADER,      /* the member says it knows no leader: next endpoint */
        ATTEMPT_FINAL,          /* an answer that another member would give too */
};

/* Records what endpoint idx did in this call; the error text lists every endpoint's last failure.
 * What a member said ("no leader") outlives a later attempt that merely ran out of time. */
static void note(struct etcd_client *c, size_t idx, const char *what, bool from_server)
{
        if (!from_server && c->answered[idx])
                return;
        c->answered[idx] = from_server;
        fmt_trunc(c->last[idx], sizeof(c->last[idx]), "%s", what);
}

static void compose_error(struct etcd_client *c)
{
        size_t used = 0;

        c->error[0] = '\0';
        for (size_t i = 0; i < c->n_endpoints; i++) {
                if (!c->last[i][0])
                        continue;
                fmt_trunc(c->error + used, sizeof(c->error) - used, "%s%s: %s", used ? "; " : "", c->endpoints[i],
                          c->last[i]);
                used = strlen(c->error);
                if (used + 8 >= sizeof(c->error))
                        break;
        }
}

static int grpc_code_to_errno(int code, const char *msg)
{
        switch (code) {
        case 3:         /* InvalidArgument */
        case 11:        /* OutOfRange */
                return -EINVAL;
        case 5:         /* NotFound */
                return -ENOENT;
        case 7:         /* PermissionDenied */
        case 16:        /* Unauthenticated */
                return -EACCES;
        case 8:         /* ResourceExhausted */
                return strstr(msg, "space") ? -ENOSPC : -EIO;
        default:
                return -EIO;
        }
}

static enum attempt_kind attempt(struct etcd_client *c, size_t idx, const char *path, const char *body,
                                 struct curl_slist *headers, uint64_t budget_us, int *ret_err)
{
        char url[ETCD_ENDPOINT_MAX + 64], msg[512];
        long budget_ms = (long)MAX((budget_us + 999) / 1000, (uint64_t)1), status = 0;
        curl_off_t connect_us = 0;
        CURLcode cc;
        int code;

        snprintf(url, sizeof(url), "%s%s", c->endpoints[idx], path);
        buf_reset(&c->reply);
        curl_easy_reset(c->curl);
        setopt_common(c->curl, headers, &c->reply);
        curl_easy_setopt(c->curl, CURLOPT_URL, url);
        curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
        curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, budget_ms);
        curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT_MS, budget_ms);

        cc = curl_easy_perform(c->curl);
        if (cc != CURLE_OK) {
                curl_easy_getinfo(c->curl, CURLINFO_CONNECT_TIME_T, &connect_us);
                if (cc == CURLE_WRITE_ERROR && c->reply.overflow) {
                        note(c, idx, "reply larger than 16 MiB", true);
                        *ret_err = -EMSGSIZE;
                        return ATTEMPT_FINAL;
                }
                if (cc == CURLE_OPERATION_TIMEDOUT)
                        snprintf(msg, sizeof(msg), "%s after %ld ms", connect_us > 0 ? "no reply" : "no connection",
                                 budget_ms);
                else
                        snprintf(msg, sizeof(msg), "%s", curl_easy_strerror(cc));
                /* A last sliver of the deadline running out says less than what came before it. */
                if (!(cc == CURLE_OPERATION_TIMEDOUT && budget_us < ATTEMPT_MIN_US && c->last[idx][0]))
                        note(c, idx, msg, false);
                /* -EHOSTUNREACH: no connection within the share (the member was never reached). */
                if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST)
                        *ret_err = -ECONNREFUSED;
                else if (cc == CURLE_OPERATION_TIMEDOUT && connect_us == 0)
                        *ret_err = -EHOSTUNREACH;
                else
                        *ret_err = -ETIMEDOUT;
                return ATTEMPT_RETRY;
        }
        curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
        if (status == 200)
                return ATTEMPT_OK;

        if (etcd_parse_error(c->reply.data ?: "", c->reply.len, &code, msg, sizeof(msg)) < 0) {
                snprintf(msg, sizeof(msg), "HTTP %ld that is not an etcd gateway reply", status);
                note(c, idx, msg, true);
                *ret_err = -EPROTO;
                return ATTEMPT_FINAL;
        }
        note(c, idx, msg, true);
        if (strstr(msg, "no leader")) {
                *ret_err = -ENOLINK;
                return ATTEMPT_NO_LEADER;
        }
        /* 14 Unavailable, 4 DeadlineExceeded: this member cannot serve now, another may. */
        if (code == 14 || code == 4 || strstr(msg, "leader changed") || strstr(msg, "request timed out")) {
                *ret_err = -ETIMEDOUT;
                return ATTEMPT_RETRY;
        }
        *ret_err = grpc_code_to_errno(code, msg);
        return ATTEMPT_FINAL;
}

static void pause_until(uint64_t until_us)
{
        uint64_t now = clock_monotonic_us();
        struct timespec ts;

        if (now >= until_us)
                return;
        ts = (struct timespec){ .tv_sec = (time_t)((until_us - now) / USEC_PER_SEC),
                                .tv_nsec = (long)((until_us - now) % USEC_PER_SEC * NSEC_PER_USEC) };
        nanosleep(&ts, NULL);
}

/* Sends body to path with failover until the deadline, or (!failover) once to endpoint 'only'.
 * 0: c->reply holds a 200 body. */
static int call_on(struct etcd_client *c, const char *path, const char *body, uint64_t deadline_us, bool failover,
                   size_t only)
{
        bool no_leader = false, reached = false;
        int err = -ETIMEDOUT;
        size_t tried = 0, n = failover ? c->n_endpoints : 1;

        c->error[0] = '\0';
        memset(c->last, 0, sizeof(c->last));
        memset(c->answered, 0, sizeof(c->answered));
        if (!body) {
                snprintf(c->error, sizeof(c->error), "out of memory building the request");
                return -ENOMEM;
        }
        for (;;) {
                uint64_t now = clock_monotonic_us(), left, share;
                size_t idx = failover ? (c->current + tried) % c->n_endpoints : only;
                size_t untried = n - tried % n;
                enum attempt_kind k;

                if (now >= deadline_us)
                        break;
                left = deadline_us - now;
                share = left / untried;
                if (share < ATTEMPT_MIN_US)
                        share = MIN(left, ATTEMPT_MIN_US);
                k = attempt(c, idx, path, body, failover ? c->headers : c->headers_status, share, &err);
                if (k == ATTEMPT_OK) {
                        if (failover)
                                c->current = idx;
                        c->error[0] = '\0';
                        return 0;
                }
                if (k == ATTEMPT_FINAL) {
                        compose_error(c);
                        return err;
                }
                if (err != -ECONNREFUSED && err != -EHOSTUNREACH)
                        reached = true;
                if (k == ATTEMPT_NO_LEADER)
                        no_leader = true;
                tried++;
                if (!failover)
                        break;
                /* Every endpoint failed once: do not spin on members that refuse at once. */
                if (tried % n == 0 && clock_monotonic_us() + ROUND_PAUSE_US < deadline_us)
                        pause_until(clock_monotonic_us() + ROUND_PAUSE_US);
        }
        compose_error(c);
        {
                char what[sizeof(c->error)];

                snprintf(what, sizeof(what), "%s", c->error[0] ? c->error : "no attempt fit in the deadline");
                if (no_leader) {
                        fmt_trunc(c->error, sizeof(c->error), "etcd has no quorum (no member knows a leader): %s",
                                 what);
                        return -ENOLINK;
                }
                if (!reached && tried > 0) {
                        fmt_trunc(c->error, sizeof(c->error), "no etcd endpoint reachable: %s", what);
                        return -ECONNREFUSED;
                }
                fmt_trunc(c->error, sizeof(c->error), "etcd deadline passed: %s", what);
                return -ETIMEDOUT;
        }
}

static int call(struct etcd_client *c, const char *path, char *body, uint64_t deadline_us)
{
        int r = call_on(c, path, body, deadline_us, true, 0);

        free(body);
        return r;
}

static int parsed(struct etcd_client *c, int r)
{
        if (r < 0 && !c->error[0])
                snprintf(c->error, sizeof(c->error), "%s", r == -ENOMEM ? "out of memory" : "bad reply");
        return r;
}

int etcd_get(struct etcd_client *c, const char *key, bool prefix, uint64_t deadline_us,
             struct etcd_range_result *ret)
{
        int r;

        if (!c || !key || !ret)
                return -EINVAL;
        r = call(c, "/v3/kv/range", etcd_request_range(key, prefix, 0, 0), deadline_us);
        if (r < 0)
                return r;
        return parsed(c, etcd_parse_range(c->reply.data, c->reply.len, ret, c->error, sizeof(c->error)));
}

int etcd_put(struct etcd_client *c, const char *key, const void *value, size_t len, int64_t lease,
             uint64_t deadline_us, int64_t *ret_revision)
{
        struct etcd_header h;
        int r;

        if (!c || !key || (!value && len))
                return -EINVAL;
        r = call(c, "/v3/kv/put", etcd_request_put(key, value ?: "", len, lease), deadline_us);
        if (r < 0)
                return r;
        r = parsed(c, etcd_parse_header_reply(c->reply.data, c->reply.len, &h, c->error, sizeof(c->error)));
        if (r >= 0 && ret_revision)
                *ret_revision = h.revision;
        return r;
}

int etcd_delete(struct etcd_client *c, const char *key, bool prefix, uint64_t deadline_us, int64_t *ret_deleted)
{
        struct etcd_header h;
        int64_t deleted = 0;
        int r;

        if (!c || !key)
                return -EINVAL;
        r = call(c, "/v3/kv/deleterange", etcd_request_delete(key, prefix), deadline_us);
        if (r < 0)
                return r;
        r = parsed(c, etcd_parse_delete(c->reply.data, c->reply.len, &h, &deleted, c->error, sizeof(c->error)));
        if (r >= 0 && ret_deleted)
                *ret_deleted = deleted;
        return r;
}

int etcd_txn_commit(struct etcd_client *c, const struct etcd_txn *t, uint64_t deadline_us,
                    struct etcd_txn_result *ret)
{
        int r;

        if (!c || !t || !ret)
                return -EINVAL;
        r = call(c, "/v3/kv/txn", etcd_txn_dump(t), deadline_us);
        if (r < 0)
                return r;
        return parsed(c, etcd_parse_txn(c->reply.data, c->reply.len, ret, c->error, sizeof(c->error)));
}

int etcd_lease_grant(struct etcd_client *c, int64_t ttl_s, uint64_t deadline_us, int64_t *ret_id,
                     int64_t *ret_ttl)
{
        int64_t id, ttl;
        int r;

        if (!c || ttl_s <= 0 || !ret_id)
                return -EINVAL;
        r = call(c, "/v3/lease/grant", etcd_request_lease_grant(ttl_s), deadline_us);
        if (r < 0)
                return r;
        r = parsed(c, etcd_parse_lease_grant(c->reply.data, c->reply.len, &id, &ttl, c->error, sizeof(c->error)));
        if (r < 0)
                return r;
        *ret_id = id;
        if (ret_ttl)
                *ret_ttl = ttl;
        return 0;
}

int etcd_lease_keepalive(struct etcd_client *c, int64_t id, uint64_t deadline_us, int64_t *ret_ttl)
{
        int64_t rid = 0, ttl = 0;
        char *nl;
        int r;

        if (!c || id == 0)
                return -EINVAL;
        /* A stream call: the gateway answers each request line with one result line and
         * ends the stream when our body ends. */
        r = call(c, "/v3/lease/keepalive", etcd_request_lease_id(id), deadline_us);
        if (r < 0)
                return r;
        nl = memchr(c->reply.data, '\n', c->reply.len);
        r = etcd_parse_keepalive(c->reply.data, nl ? (size_t)(nl - c->reply.data) : c->reply.len, &rid, &ttl,
                                 c->error, sizeof(c->error));
        if (r == -EIO)
                return -EIO;
        r = parsed(c, r);
        if (r < 0)
                return r;
        if (ttl <= 0) {
                snprintf(c->error, sizeof(c->error), "lease %llx not found (expired or revoked)",
                         (unsigned long long)id);
                return -ENOENT;
        }
        if (ret_ttl)
                *ret_ttl = ttl;
        return 0;
}

int etcd_lease_revoke(struct etcd_client *c, int64_t id, uint64_t deadline_us)
{
        struct etcd_header h;
        int r;

        if (!c || id == 0)
                return -EINVAL;
        r = call(c, "/v3/lease/revoke", etcd_request_lease_id(id), deadline_us);
        if (r < 0)
                return r;
        return parsed(c, etcd_parse_header_reply(c->reply.data, c->reply.len, &h, c->error, sizeof(c->error)));
}

int etcd_member_status(struct etcd_client *c, size_t i, uint64_t deadline_us, struct etcd_status *ret)
{
        char *body;
        int r;

        if (!c || i >= c->n_endpoints || !ret)
                return -EINVAL;
        body = strdup("{}");
        r = call_on(c, "/v3/maintenance/status", body, deadline_us, false, i);
        free(body);
        if (r < 0)
                return r;
        return parsed(c, etcd_parse_status(c->reply.data, c->reply.len, ret, c->error, sizeof(c->error)));
}

/* ---- watch ---- */

struct etcd_watch {
        char *endpoints[ETCD_MAX_ENDPOINTS];
        size_t n_endpoints;
        size_t current;
        char *key;
        bool prefix;
        int64_t next_revision;          /* 0: from now on (until the first reply tells the revision) */
        CURLM *multi;
        CURL *easy;
        struct curl_slist *headers;
        char *body;
        struct buf in;
        size_t consumed;                /* bytes of 'in' already returned as lines */
        bool running;                   /* a transfer is attached to the multi handle */
        bool established;
        bool ended;                     /* the transfer finished; reopen once its lines are handled */
        char end_reason[128];
        uint64_t retry_at;              /* monotonic: when a broken stream may be reopened */
        char error[512];
};

int etcd_watch_new(const struct etcd_client *c, const char *key, bool prefix, int64_t start_revision,
                   struct etcd_watch **ret)
{
        _cleanup_(etcd_watch_freep) struct etcd_watch *w = NULL;

        if (!c || !key || !ret || start_revision < 0)
                return -EINVAL;
        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        for (size_t i = 0; i < c->n_endpoints; i++) {
                w->endpoints[i] = strdup(c->endpoints[i]);
                if (!w->endpoints[i])
                        return -ENOMEM;
                w->n_endpoints++;
        }
        w->current = c->current;
        w->key = strdup(key);
        w->prefix = prefix;
        w->next_revision = start_revision;
        w->in.max = WATCH_LINE_MAX;
        w->multi = curl_multi_init();
        w->headers = curl_slist_append(NULL, "Content-Type: application/json");
        if (w->headers)
                w->headers = curl_slist_append(w->headers, "Expect:");
        /* A watch on a member that loses its leader is canceled, and reopened elsewhere. */
        if (w->headers)
                w->headers = curl_slist_append(w->headers, "Grpc-Metadata-hasleader: true");
        if (!w->key || !w->multi || !w->headers)
                return -ENOMEM;
        *ret = TAKE_PTR(w);
        return 0;
}

static void watch_detach(struct etcd_watch *w)
{
        if (w->easy) {
                if (w->running)
                        curl_multi_remove_handle(w->multi, w->easy);
                curl_easy_cleanup(w->easy);
                w->easy = NULL;
        }
        w->running = false;
        w->established = false;
        w->ended = false;
        free(w->body);
        w->body = NULL;
        buf_reset(&w->in);
        w->consumed = 0;
}

struct etcd_watch *etcd_watch_free(struct etcd_watch *w)
{
        if (!w)
                return NULL;
        watch_detach(w);
        if (w->multi)
                curl_multi_cleanup(w->multi);
        curl_slist_free_all(w->headers);
        for (size_t i = 0; i < w->n_endpoints; i++)
                free(w->endpoints[i]);
        free(w->key);
        buf_free(&w->in);
        free(w);
        return NULL;
}

static int watch_open(struct etcd_watch *w)
{
        char url[ETCD_ENDPOINT_MAX + 16];

        watch_detach(w);
        w->body = etcd_request_watch(w->key, w->prefix, w->next_revision, false);
        w->easy = curl_easy_init();
        if (!w->body || !w->easy)
                return -ENOMEM;
        snprintf(url, sizeof(url), "%s/v3/watch", w->endpoints[w->current]);
        setopt_common(w->easy, w->headers, &w->in);
        curl_easy_setopt(w->easy, CURLOPT_URL, url);
        curl_easy_setopt(w->easy, CURLOPT_POSTFIELDS, w->body);
        curl_easy_setopt(w->easy, CURLOPT_POSTFIELDSIZE, (long)strlen(w->body));
        curl_easy_setopt(w->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)WATCH_CONNECT_MS);
        /* A stream has no total timeout; a dead peer is found by TCP keepalive. */
        curl_easy_setopt(w->easy, CURLOPT_TCP_KEEPALIVE, 1L);
        curl_easy_setopt(w->easy, CURLOPT_TCP_KEEPIDLE, 2L);
        curl_easy_setopt(w->easy, CURLOPT_TCP_KEEPINTVL, 1L);
        if (curl_multi_add_handle(w->multi, w->easy) != CURLM_OK)
                return -ENOMEM;
        w->running = true;
        return 0;
}

/* The stream ended or broke: reopen on the next endpoint after a short pause. */
static void watch_broken(struct etcd_watch *w, const char *why)
{
        snprintf(w->error, sizeof(w->error), "watch on %s broke: %s", w->endpoints[w->current], why);
        watch_detach(w);
        w->current = (w->current + 1) % w->n_endpoints;
        w->retry_at = clock_monotonic_us() + WATCH_RETRY_US;
}

/* Returns 1 with a line cut from the input buffer (NUL-terminated in place), 0 when none is complete. */
static int watch_line(struct etcd_watch *w, char **ret, size_t *ret_len)
{
        char *start, *nl;

        if (w->consumed >= w->in.len)
                return 0;
        start = w->in.data + w->consumed;
        nl = memchr(start, '\n', w->in.len - w->consumed);
        if (!nl)
                return 0;
        *nl = '\0';
        *ret = start;
        *ret_len = (size_t)(nl - start);
        w->consumed += *ret_len + 1;
        return 1;
}

static void watch_compact(struct etcd_watch *w)
{
        if (w->consumed == 0)
                return;
        memmove(w->in.data, w->in.data + w->consumed, w->in.len - w->consumed);
        w->in.len -= w->consumed;
        w->in.data[w->in.len] = '\0';
        w->consumed = 0;
}

/* Handles one line; 1 when *ret holds events for the caller. */
static int watch_handle_line(struct etcd_watch *w, const char *line, size_t len, struct etcd_watch_response *ret)
{
        struct etcd_watch_response resp;
        char err[256];
        int r;

        if (len == 0)
                return 0;
        r = etcd_parse_watch(line, len, &resp, err, sizeof(err));
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                watch_broken(w, err);
                return 0;
        }
        if (resp.is_error) {
                char why[300];

                snprintf(why, sizeof(why), "%s", resp.error_message);
                etcd_watch_response_release(&resp);
                watch_broken(w, why);
                return 0;
        }
        if (resp.canceled) {
                if (resp.compact_revision > 0) {
                        snprintf(w->error, sizeof(w->error), "revision %lld was compacted (oldest kept: %lld)",
                                 (long long)w->next_revision, (long long)resp.compact_revision);
                        etcd_watch_response_release(&resp);
                        watch_detach(w);
                        return -ECANCELED;
                }
                snprintf(w->error, sizeof(w->error), "etcd canceled the watch: %s",
                         resp.cancel_reason[0] ? resp.cancel_reason : "no reason given");
                etcd_watch_response_release(&resp);
                watch_detach(w);
                return -EIO;
        }
        if (resp.created) {
                w->established = true;
                if (w->next_revision == 0)
                        w->next_revision = resp.header.revision + 1;
        }
        for (size_t i = 0; i < resp.n_events; i++)
                if (resp.events[i].kv.mod_revision >= w->next_revision)
                        w->next_revision = resp.events[i].kv.mod_revision + 1;
        if (resp.n_events == 0) {
                etcd_watch_response_release(&resp);
                return 0;
        }
        *ret = resp;
        return 1;
}

int etcd_watch_next(struct etcd_watch *w, uint64_t deadline_us, struct etcd_watch_response *ret)
{
        if (!w || !ret)
                return -EINVAL;
        *ret = (struct etcd_watch_response){ 0 };
        for (;;) {
                uint64_t now;
                char *line;
                size_t len;
                CURLMsg *m;
                int still, left, r;

                /* Lines already received come first, even past the deadline. */
                while (watch_line(w, &line, &len) > 0) {
                        r = watch_handle_line(w, line, len, ret);
                        if (r != 0) {
                                if (w->running)
                                        watch_compact(w);
                                return r;
                        }
                        if (!w->running)
                                break;  /* broken: the rest of the buffer is gone */
                }
                if (w->running && w->ended) {
                        char why[sizeof(w->end_reason)];

                        snprintf(why, sizeof(why), "%s", w->end_reason);
                        watch_broken(w, why);
                }
                if (w->running)
                        watch_compact(w);

                now = clock_monotonic_us();
                if (now >= deadline_us)
                        return 0;
                if (!w->running) {
                        if (now < w->retry_at) {
                                pause_until(MIN(w->retry_at, deadline_us));
                                continue;
                        }
                        r = watch_open(w);
                        if (r < 0)
                                return r;
                }
                if (curl_multi_perform(w->multi, &still) != CURLM_OK) {
                        watch_broken(w, "curl_multi_perform failed");
                        continue;
                }
                while ((m = curl_multi_info_read(w->multi, &left)))
                        if (m->msg == CURLMSG_DONE) {
                                long status = 0;

                                /* The lines that arrived are handled first (one may give the reason);
                                 * the stream is reopened once they are. */
                                curl_easy_getinfo(w->easy, CURLINFO_RESPONSE_CODE, &status);
                                if (m->data.result != CURLE_OK)
                                        snprintf(w->end_reason, sizeof(w->end_reason), "%s",
                                                 curl_easy_strerror(m->data.result));
                                else
                                        snprintf(w->end_reason, sizeof(w->end_reason), "stream ended (HTTP %ld)",
                                                 status);
                                w->ended = true;
                        }
                if (!w->running || w->ended)
                        continue;
                if (w->consumed < w->in.len && memchr(w->in.data + w->consumed, '\n', w->in.len - w->consumed))
                        continue;
                left = ms_until(clock_monotonic_us(), deadline_us);
                curl_multi_poll(w->multi, NULL, 0, MIN(left, 100), NULL);
        }
}

bool etcd_watch_established(const struct etcd_watch *w)
{
        return w->established;
}

int64_t etcd_watch_next_revision(const struct etcd_watch *w)
{
        return w->next_revision;
}

const char *etcd_watch_error(const struct etcd_watch *w)
{
        return w->error;
}
