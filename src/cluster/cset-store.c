/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Keys and transactions of the cluster set protocol (docs/cluster.md, 3 and 5).
 * Every guarded write reads back, in its failure branch, the keys whose state
 * made the guard fail, in a fixed order (final, decision, lock), so that the
 * result alone says what happened, also for a write sent again after an
 * unknown outcome: the machine needs no extra round trip to learn the decision
 * that beat it.
 */

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/macro.h"
#include "basic/string-util.h"
#include "cluster/cset-store.h"

int cset_store_key(const struct cset_store *s, const char *leaf, const char *host, char *buf, size_t len)
{
        int n;

        if (!leaf)
                n = snprintf(buf, len, "%s/lock", s->prefix);
        else if (host)
                n = snprintf(buf, len, "%s/sets/%s/%s/%s", s->prefix, s->set_id, leaf, host);
        else
                n = snprintf(buf, len, "%s/sets/%s/%s", s->prefix, s->set_id, leaf);
        return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

char *cset_failure_to_json(const char *outcome, const struct cset_failure *f)
{
        char hr[16];
        json_t *o;
        char *s;

        snprintf(hr, sizeof(hr), "0x%08X", (uint32_t)f->hr);
        o = json_pack("{ssssssssss}", "outcome", outcome, "hresult", hr, "name", vss_hresult_name(f->hr) ?: "",
                      "host", f->host, "writer", f->writer);
        if (!o)
                return NULL;
        /* The detail may quote a peer's bytes: keep it valid UTF-8 for JSON. */
        {
                char detail[CSET_DETAIL_MAX];

                snprintf(detail, sizeof(detail), "%s", f->detail);
                utf8_make_valid(detail);
                if (json_object_set_new(o, "detail", json_string(detail)) < 0) {
                        json_decref(o);
                        return NULL;
                }
        }
        s = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        return s;
}

int cset_failure_from_json(const char *text, size_t len, struct cset_failure *ret)
{
        const struct vss_hresult_info *info;
        const char *hr, *host = "", *writer = "", *detail = "";
        json_t *o;

        o = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
        if (!o || json_unpack(o, "{ss s?s s?s s?s}", "hresult", &hr, "host", &host, "writer", &writer, "detail",
                              &detail) < 0) {
                json_decref(o);
                return -EBADMSG;
        }
        info = vss_hresult_parse(hr);
        if (!info || VSS_SUCCEEDED(info->value)) {
                json_decref(o);
                return -EBADMSG;
        }
        *ret = (struct cset_failure){ .hr = info->value };
        fmt_trunc(ret->host, sizeof(ret->host), "%s", host);
        fmt_trunc(ret->writer, sizeof(ret->writer), "%s", writer);
        fmt_trunc(ret->detail, sizeof(ret->detail), "%s", detail);
        json_decref(o);
        return 0;
}

#define KEY(s, leaf, host, buf)                                                   \
        ({                                                                        \
                int _r = cset_store_key(s, leaf, host, buf, sizeof(buf));         \
                if (_r < 0)                                                       \
                        return _r;                                                \
                buf;                                                              \
        })

int cset_store_start_txn(const struct cset_store *s, int64_t lease, const char *spec_json, struct etcd_txn **ret)
{
        struct etcd_txn *t = etcd_txn_new();
        char lock[CSET_KEY_MAX], spec[CSET_KEY_MAX], coord[CSET_KEY_MAX], *lockval = NULL;
        int r;

        if (!t)
                return -ENOMEM;
        lockval = NULL;
        {
                json_t *o = json_pack("{sssssI}", "set_id", s->set_id, "coordinator", s->me, "lease",
                                      (json_int_t)lease);

                if (o)
                        lockval = json_dumps(o, JSON_COMPACT);
                json_decref(o);
        }
        r = lockval ? 0 : -ENOMEM;
        if (r >= 0)
                r = cset_store_key(s, NULL, NULL, lock, sizeof(lock));
        if (r >= 0)
                r = cset_store_key(s, "spec", NULL, spec, sizeof(spec));
        if (r >= 0)
                r = cset_store_key(s, "coordinator", NULL, coord, sizeof(coord));
        if (r >= 0)
                r = etcd_txn_cmp_int(t, lock, ETCD_CMP_CREATE, ETCD_CMP_EQUAL, 0);
        if (r >= 0)
                r = etcd_txn_put(t, true, lock, lockval, strlen(lockval), lease);
        if (r >= 0)
                r = etcd_txn_put(t, true, spec, spec_json, strlen(spec_json), 0);
        if (r >= 0)
                r = etcd_txn_put(t, true, coord, s->me, strlen(s->me), lease);
        /* The lock's create revision: read it in the same txn (success) or the holder (failure). */
        if (r >= 0)
                r = etcd_txn_get(t, true, lock, false);
        if (r >= 0)
                r = etcd_txn_get(t, false, lock, false);
        free(lockval);
        if (r < 0) {
                etcd_txn_free(t);
                return r;
        }
        *ret = t;
        return 0;
}

int cset_store_start_result(const struct cset_store *s, const struct etcd_txn_result *r, int64_t *ret_lock_revision,
                            char **ret_holder)
{
        const struct etcd_range_result *g = etcd_txn_result_range(r, 0);

        if (!g || g->n_kvs != 1)
                return -EBADMSG;
        if (r->succeeded) {
                *ret_lock_revision = g->kvs[0].create_revision;
                return 0;
        }
        {
                /* Our own lock: the etcd client applied a T1 that timed out and was sent again
                 * (etcd.h), so the second application found what the first one wrote. */
                json_t *lock = json_loadb((const char *)g->kvs[0].value, g->kvs[0].value_len, 0, NULL);
                bool ours = streq_ptr(json_string_value(json_object_get(lock, "set_id")), s->set_id) &&
                            streq_ptr(json_string_value(json_object_get(lock, "coordinator")), s->me);

                json_decref(lock);
                if (ours) {
                        *ret_lock_revision = g->kvs[0].create_revision;
                        return 0;
                }
        }
        if (ret_holder) {
                *ret_holder = strdup((const char *)g->kvs[0].value);
                if (!*ret_holder)
                        return -ENOMEM;
        }
        return -EBUSY;
}

/* Compares value(<leaf>/<h>) == "ok" for every participant. */
static int cmp_all_ok(const struct cset_store *s, struct etcd_txn *t, const char *leaf)
{
        char key[CSET_KEY_MAX];
        int r;

        for (size_t i = 0; i < s->n_hosts; i++) {
                r = cset_store_key(s, leaf, s->hosts[i], key, sizeof(key));
                if (r < 0)
                        return r;
                r = etcd_txn_cmp_value(t, key, ETCD_CMP_EQUAL, "ok", 2);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int put_ack(struct etcd_txn *t, const char *key, const struct cset_action *a, const char *outcome)
{
        _cleanup_free_ char *v = NULL;

        if (a->failure.hr == VSS_S_OK)
                return etcd_txn_put(t, true, key, "ok", 2, 0);
        v = cset_failure_to_json(outcome, &a->failure);
        if (!v)
                return -ENOMEM;
        return etcd_txn_put(t, true, key, v, strlen(v), 0);
}

int cset_store_txn(const struct cset_store *s, const struct cset_action *a, struct etcd_txn **ret)
{
        char lock[CSET_KEY_MAX], decision[CSET_KEY_MAX], final[CSET_KEY_MAX], mine[CSET_KEY_MAX];
        struct etcd_txn *t;
        _cleanup_free_ char *v = NULL;
        int r = 0;

        KEY(s, NULL, NULL, lock);
        KEY(s, "decision", NULL, decision);
        KEY(s, "final", NULL, final);
        t = etcd_txn_new();
        if (!t)
                return -ENOMEM;

        switch (a->type) {
        case CSET_ACT_WRITE_PREPARED:
        case CSET_ACT_WRITE_FROZEN:
                r = cset_store_key(s, a->type == CSET_ACT_WRITE_PREPARED ? "prepared" : "frozen", s->me, mine,
                                   sizeof(mine));
                if (r >= 0)
                        r = etcd_txn_cmp_int(t, decision, ETCD_CMP_CREATE, ETCD_CMP_EQUAL, 0);
                if (r >= 0)
                        r = put_ack(t, mine, a, "failed");
                if (r >= 0)
                        r = etcd_txn_get(t, false, decision, false);
                break;
        case CSET_ACT_WRITE_DONE:
                r = cset_store_key(s, "done", s->me, mine, sizeof(mine));
                if (r >= 0)
                        r = put_ack(t, mine, a, "failed");
                break;
        case CSET_ACT_PROPOSE_ABORT:
                v = cset_failure_to_json("abort", &a->failure);
                r = v ? etcd_txn_cmp_int(t, decision, ETCD_CMP_CREATE, ETCD_CMP_EQUAL, 0) : -ENOMEM;
                if (r >= 0)
                        r = etcd_txn_put(t, true, decision, v, strlen(v), 0);
                if (r >= 0)
                        r = etcd_txn_get(t, false, decision, false);
                break;
        case CSET_ACT_PROPOSE_FAILED:
                v = cset_failure_to_json("failed", &a->failure);
                r = v ? etcd_txn_cmp_value(t, decision, ETCD_CMP_EQUAL, "commit", 6) : -ENOMEM;
                if (r >= 0)
                        r = etcd_txn_cmp_int(t, final, ETCD_CMP_CREATE, ETCD_CMP_EQUAL, 0);
                if (r >= 0)
                        r = etcd_txn_put(t, true, final, v, strlen(v), 0);
                if (r >= 0)
                        r = etcd_txn_get(t, false, final, false);
                if (r >= 0)
                        r = etcd_txn_get(t, false, decision, false);
                break;
        case CSET_ACT_WRITE_FREEZE:
        case CSET_ACT_WRITE_COMMIT:
                r = etcd_txn_cmp_int(t, lock, ETCD_CMP_CREATE, ETCD_CMP_EQUAL, s->lock_revision);
                if (r >= 0)
                        r = etcd_txn_cmp_int(t, decision, ETCD_CMP_CREATE, ETCD_CMP_EQUAL, 0);
                if (r >= 0)
                        r = cmp_all_ok(s, t, a->type == CSET_ACT_WRITE_FREEZE ? "prepared" : "frozen");
                if (r >= 0 && a->type == CSET_ACT_WRITE_FREEZE) {
                        r = cset_store_key(s, "freeze", NULL, mine, sizeof(mine));
                        if (r >= 0)
                                r = etcd_txn_put(t, true, mine, "freeze", 6, 0);
                } else if (r >= 0) {
                        r = etcd_txn_put(t, true, decision, "commit", 6, 0);
                }
                if (r >= 0)
                        r = etcd_txn_get(t, false, decision, false);
                if (r >= 0)
                        r = etcd_txn_get(t, false, lock, false);
                break;
        case CSET_ACT_WRITE_COMPLETE:
                r = etcd_txn_cmp_value(t, decision, ETCD_CMP_EQUAL, "commit", 6);
                if (r >= 0)
                        r = etcd_txn_cmp_int(t, final, ETCD_CMP_CREATE, ETCD_CMP_EQUAL, 0);
                if (r >= 0)
                        r = cmp_all_ok(s, t, "done");
                if (r >= 0)
                        r = etcd_txn_put(t, true, final, "complete", 8, 0);
                if (r >= 0)
                        r = etcd_txn_get(t, false, final, false);
                break;
        case CSET_ACT_RELEASE:
                r = etcd_txn_cmp_int(t, lock, ETCD_CMP_CREATE, ETCD_CMP_EQUAL, s->lock_revision);
                if (r >= 0)
                        r = etcd_txn_delete(t, true, lock, false);
                break;
        default:
                r = -EINVAL;
        }
        if (r < 0) {
                etcd_txn_free(t);
                return r;
        }
        *ret = t;
        return 0;
}

/* The value of a range that read key 'key', or NULL when the key does not exist. */
static const struct etcd_kv *range_kv(const struct etcd_txn_result *r, const char *key)
{
        for (size_t i = 0; i < r->n_ops; i++) {
                const struct etcd_range_result *g = &r->ops[i].range;

                if (r->ops[i].type != ETCD_OP_RANGE)
                        continue;
                for (size_t k = 0; k < g->n_kvs; k++)
                        if (strcmp((const char *)g->kvs[k].key, key) == 0)
                                return &g->kvs[k];
        }
        return NULL;
}

static bool range_read(const struct etcd_txn_result *r, size_t nth)
{
        return etcd_txn_result_range(r, nth) != NULL;
}

int cset_store_result(const struct cset_store *s, const struct cset_action *a, const struct etcd_txn_result *r,
                      struct cset_event *ret)
{
        char lock[CSET_KEY_MAX], decision[CSET_KEY_MAX], final[CSET_KEY_MAX];
        const struct etcd_kv *kv;

        KEY(s, NULL, NULL, lock);
        KEY(s, "decision", NULL, decision);
        KEY(s, "final", NULL, final);
        *ret = (struct cset_event){ 0 };
        if (r->succeeded) {
                if (a->type == CSET_ACT_RELEASE)
                        return 0;
                ret->type = CSET_EV_WRITTEN;
                ret->written = a->type;
                return 1;
        }
        if ((kv = range_kv(r, final))) {
                ret->type = CSET_EV_FINAL_SEEN;
                if (kv->value_len == 8 && memcmp(kv->value, "complete", 8) == 0) {
                        ret->complete = true;
                        return 1;
                }
                return cset_failure_from_json((const char *)kv->value, kv->value_len, &ret->failure) < 0 ? -EBADMSG
                                                                                                           : 1;
        }
        if ((kv = range_kv(r, decision))) {
                ret->type = CSET_EV_DECISION_SEEN;
                if (kv->value_len == 6 && memcmp(kv->value, "commit", 6) == 0) {
                        ret->commit = true;
                        return 1;
                }
                return cset_failure_from_json((const char *)kv->value, kv->value_len, &ret->failure) < 0 ? -EBADMSG
                                                                                                           : 1;
        }
        /* The lock was read (freeze, commit) and is not ours any more: our lease is gone. */
        if ((a->type == CSET_ACT_WRITE_FREEZE || a->type == CSET_ACT_WRITE_COMMIT) && range_read(r, 1)) {
                kv = range_kv(r, lock);
                if (!kv || kv->create_revision != s->lock_revision) {
                        ret->type = CSET_EV_COORDINATOR_GONE;
                        return 1;
                }
        }
        return 0;
}

/* One set's keys, as gc_pick walks them. */
struct gc_group {
        char set_id[CSET_SET_ID_MAX];
        bool over;                      /* a final, or an abort decision */
        bool have_created;
        uint64_t created_us;
};

static bool gc_group_due(const struct gc_group *g, const char *current, uint64_t now_us, uint64_t keep_us)
{
        return g->set_id[0] && g->over && g->have_created && !streq_ptr(current, g->set_id) &&
               g->created_us <= now_us && now_us - g->created_us >= keep_us;
}

size_t cset_store_gc_pick(const char *prefix, const struct etcd_range_result *r, const char *current, uint64_t now_us,
                          uint64_t keep_us, void (*pick)(const char *set_id, void *userdata), void *userdata)
{
        char base[CSET_KEY_MAX];
        struct gc_group g = {};
        size_t n = 0, blen;
        int k = snprintf(base, sizeof(base), "%s/sets/", prefix);

        if (k < 0 || (size_t)k >= sizeof(base))
                return 0;
        blen = (size_t)k;
        /* A range comes sorted by key: the keys of one set are next to each other. */
        for (size_t i = 0; i <= r->n_kvs; i++) {
                const struct etcd_kv *kv = i < r->n_kvs ? &r->kvs[i] : NULL;
                const char *id = NULL, *slash = NULL, *leaf;
                size_t idlen = 0;

                if (kv && kv->key_len > blen && memcmp(kv->key, base, blen) == 0) {
                        id = (const char *)kv->key + blen;
                        slash = strchr(id, '/');
                        idlen = slash ? (size_t)(slash - id) : 0;
                }
                if (!kv || !slash || idlen >= sizeof(g.set_id) || strncmp(g.set_id, id, idlen) != 0 ||
                    g.set_id[idlen] != 0) {
                        if (gc_group_due(&g, current, now_us, keep_us)) {
                                pick(g.set_id, userdata);
                                n++;
                        }
                        g = (struct gc_group){};
                        if (!kv || !slash || idlen == 0 || idlen >= sizeof(g.set_id))
                                continue;
                        memcpy(g.set_id, id, idlen);
                        g.set_id[idlen] = 0;
                }
                leaf = slash + 1;
                if (streq(leaf, "final"))
                        g.over = true;
                else if (streq(leaf, "decision") &&
                         !(kv->value_len == strlen("commit") && memcmp(kv->value, "commit", kv->value_len) == 0))
                        g.over = true;
                else if (streq(leaf, "spec")) {
                        json_t *spec = json_loadb((const char *)kv->value, kv->value_len, 0, NULL);
                        json_t *c = json_object_get(spec, "created_us");

                        if (json_is_integer(c) && json_integer_value(c) >= 0) {
                                g.created_us = (uint64_t)json_integer_value(c);
                                g.have_created = true;
                        }
                        json_decref(spec);
                }
        }
        return n;
}

static const struct etcd_kv *find_kv(const struct etcd_range_result *r, const char *key)
{
        for (size_t i = 0; i < r->n_kvs; i++)
                if (r->kvs[i].key_len == strlen(key) && memcmp(r->kvs[i].key, key, r->kvs[i].key_len) == 0)
                        return &r->kvs[i];
        return NULL;
}

/* An ack or outcome key: the word (ok, commit, complete) or a failure. */
static void value_event(const struct etcd_kv *kv, const char *word, enum cset_event_type type, struct cset_event *ev)
{
        *ev = (struct cset_event){ .type = type };
        if (kv->value_len == strlen(word) && memcmp(kv->value, word, kv->value_len) == 0) {
                ev->commit = ev->complete = true;
                return;
        }
        if (cset_failure_from_json((const char *)kv->value, kv->value_len, &ev->failure) < 0) {
                ev->failure.hr = VSS_E_UNEXPECTED;
                snprintf(ev->failure.detail, sizeof(ev->failure.detail), "unreadable value");
        }
}

static void range_events(const struct cset_store *s, const struct etcd_range_result *r, bool whole,
                         void (*emit)(const struct cset_event *ev, bool to_coord, bool to_part, void *userdata),
                         void *userdata)
{
        static const struct {
                const char *leaf;
                enum cset_event_type type;
        } acks[] = { { "prepared", CSET_EV_HOST_PREPARED },
                     { "frozen", CSET_EV_HOST_FROZEN },
                     { "done", CSET_EV_HOST_DONE } };
        char key[CSET_KEY_MAX];
        const struct etcd_kv *kv;
        struct cset_event ev;

        for (size_t i = 0; i < s->n_hosts; i++)
                for (size_t a = 0; a < ARRAY_SIZE(acks); a++) {
                        if (cset_store_key(s, acks[a].leaf, s->hosts[i], key, sizeof(key)) < 0 ||
                            !(kv = find_kv(r, key)))
                                continue;
                        value_event(kv, "ok", acks[a].type, &ev);
                        if (ev.commit)
                                ev.failure.hr = VSS_S_OK;
                        ev.host = s->hosts[i];
                        emit(&ev, true, false, userdata);
                }
        if (cset_store_key(s, "freeze", NULL, key, sizeof(key)) >= 0 && find_kv(r, key)) {
                ev = (struct cset_event){ .type = CSET_EV_FREEZE_SEEN };
                emit(&ev, false, true, userdata);
        }
        if (cset_store_key(s, "decision", NULL, key, sizeof(key)) >= 0 && (kv = find_kv(r, key))) {
                value_event(kv, "commit", CSET_EV_DECISION_SEEN, &ev);
                emit(&ev, true, true, userdata);
        }
        if (cset_store_key(s, "final", NULL, key, sizeof(key)) >= 0 && (kv = find_kv(r, key))) {
                value_event(kv, "complete", CSET_EV_FINAL_SEEN, &ev);
                emit(&ev, true, true, userdata);
        }
        if (cset_store_key(s, "end", NULL, key, sizeof(key)) >= 0 && find_kv(r, key)) {
                ev = (struct cset_event){ .type = CSET_EV_END_SEEN, .succeeded = true };
                emit(&ev, false, true, userdata);
        } else if (whole && cset_store_key(s, "coordinator", NULL, key, sizeof(key)) >= 0 && !find_kv(r, key)) {
                /* Its lease expired (or the requester ended without BackupComplete). */
                ev = (struct cset_event){ .type = CSET_EV_COORDINATOR_GONE };
                emit(&ev, false, true, userdata);
        }
}

void cset_store_poll_events(const struct cset_store *s, const struct etcd_range_result *r,
                            void (*emit)(const struct cset_event *ev, bool to_coord, bool to_part, void *userdata),
                            void *userdata)
{
        range_events(s, r, true, emit, userdata);
}

void cset_store_put_events(const struct cset_store *s, const struct etcd_range_result *r,
                           void (*emit)(const struct cset_event *ev, bool to_coord, bool to_part, void *userdata),
                           void *userdata)
{
        range_events(s, r, false, emit, userdata);
}
