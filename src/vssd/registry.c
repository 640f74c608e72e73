/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The writer registry: one writer per connection.  Writers live in a list on
 * struct vssd; a writer whose connection closed while a session still
 * reports on it stays as a "gone" entry (failed, not responding) until that
 * session releases it.  Event delivery and reply matching live here too:
 * each awaited event carries its own deadline timer and the callback its
 * sender registered with it, which hears of the event's end (reply, deadline,
 * closed connection); the freeze timer likewise calls back whoever armed it.
 * The registry never calls up into the sessions or the snapshot set.
 */

#include <stdio.h>

#include "basic/writer-state.h"
#include "vssd/attrs.h"
#include "vssd/volume.h"
#include "vssd/vssd.h"

void writer_free(struct writer *w)
{
        if (!w)
                return;
        free(w->name);
        free(w->instance_name);
        for (size_t i = 0; i < w->n_volumes; i++)
                free(w->volumes[i]);
        free(w->volumes);
        free(w->usage);
        free(w->source);
        free(w->message);
        json_decref(w->components);
        json_decref(w->restore_method);
        json_decref(w->metadata);
        free(w);
}

size_t writers_count(struct vssd *v)
{
        size_t n = 0;

        for (struct writer *w = v->writers; w; w = w->next)
                n += !w->gone;
        return n;
}

struct writer *writer_find_id(struct vssd *v, const vss_id *id)
{
        for (struct writer *w = v->writers; w; w = w->next)
                if (!w->gone && (vss_id_equal(&w->writer_id, id) || vss_id_equal(&w->instance_id, id)))
                        return w;
        return NULL;
}

/* Checks components in the Writer.Register format; names the bad field. */
static bool components_valid(json_t *comps, char *err, size_t errlen)
{
        size_t i;
        json_t *c;

        if (!json_is_array(comps)) {
                snprintf(err, errlen, "field 'components' must be an array");
                return false;
        }
        json_array_foreach(comps, i, c) {
                const char *type = json_get_str(c, "type");
                json_t *files = json_object_get(c, "files");

                if (!json_is_object(c)) {
                        snprintf(err, errlen, "field 'components[%zu]' must be an object", i);
                        return false;
                }
                if (!json_get_str(c, "name")) {
                        snprintf(err, errlen, "field 'components[%zu].name' is missing or not a string", i);
                        return false;
                }
                if (type && !streq(type, "database") && !streq(type, "filegroup")) {
                        snprintf(err, errlen, "field 'components[%zu].type' must be database or filegroup", i);
                        return false;
                }
                if (json_object_get(c, "logical_path") && !json_get_str(c, "logical_path")) {
                        snprintf(err, errlen, "field 'components[%zu].logical_path' must be a string", i);
                        return false;
                }
                if (files && !json_is_array(files)) {
                        snprintf(err, errlen, "field 'components[%zu].files' must be an array", i);
                        return false;
                }
        }
        return true;
}

/* (interim, contracts.md section 2) The restore method with every field present; NULL and a
 * message naming the field when it is malformed.  Absent: restore_if_can_replace / never. */
static json_t *restore_method_parse(json_t *rm, char *err, size_t errlen)
{
        const char *method = "restore_if_can_replace", *wr = "never", *service = "", *proc = "";
        json_t *x;

        if (rm && !json_is_null(rm)) {
                if (!json_is_object(rm)) {
                        snprintf(err, errlen, "field 'restore_method' must be an object");
                        return NULL;
                }
                if ((x = json_object_get(rm, "method"))) {
                        method = json_string_value(x);
                        if (!method || vss_restore_method_from_name(method) < 0) {
                                snprintf(err, errlen, "field 'restore_method.method' names no restore method");
                                return NULL;
                        }
                        if (streq(method, "undefined"))
                                method = "restore_if_can_replace";
                }
                if ((x = json_object_get(rm, "writer_restore"))) {
                        wr = json_string_value(x);
                        if (!wr || vss_writer_restore_from_name(wr) < 0) {
                                snprintf(err, errlen, "field 'restore_method.writer_restore' must be "
                                                      "never|if_replace_fails|always|undefined");
                                return NULL;
                        }
                        if (streq(wr, "undefined"))
                                wr = "never";
                }
                if ((x = json_object_get(rm, "service")) && !json_is_null(x) &&
                    (!(service = json_string_value(x)) || strlen(service) > 255)) {
                        snprintf(err, errlen, "field 'restore_method.service' must be a string of at most 255 bytes");
                        return NULL;
                }
                if ((x = json_object_get(rm, "user_procedure")) && !json_is_null(x) &&
                    (!(proc = json_string_value(x)) || strlen(proc) > 4096)) {
                        snprintf(err, errlen, "field 'restore_method.user_procedure' must be a string of at most "
                                              "4096 bytes");
                        return NULL;
                }
                if ((x = json_object_get(rm, "reboot_required")) && !json_is_boolean(x)) {
                        snprintf(err, errlen, "field 'restore_method.reboot_required' must be a boolean");
                        return NULL;
                }
        }
        return json_pack("{s:s, s:s, s:s, s:s, s:b}", "method", method, "service", service ?: "", "user_procedure",
                         proc ?: "", "writer_restore", wr, "reboot_required",
                         json_get_bool(rm, "reboot_required", false));
}

void writer_claims_free(struct vssd *v)
{
        while (v->writer_claims) {
                struct writer_claim *cl = v->writer_claims;
                v->writer_claims = cl->next;
                free(cl->name);
                free(cl);
        }
}

/*
 * A writer id, and a writer name, belong to the uid that registered them first
 * in this run of vssd: a writer_group member cannot pose as another service's
 * writer (to receive its events, or to veto its backups) by reusing its id or
 * name.  Root may register any; the claim stays with the first uid.  Returns
 * false after replying E_ACCESSDENIED.
 */
static bool writer_claim(struct vssd *v, struct conn *c, json_int_t id, const vss_id *wid, const char *name)
{
        char idbuf[VSS_ID_STRING_MAX];
        struct writer_claim *cl;
        bool have_id = false, have_name = false;

        for (cl = v->writer_claims; cl; cl = cl->next) {
                bool same_id = vss_id_equal(&cl->writer_id, wid), same_name = streq(cl->name, name);

                if (!same_id && !same_name)
                        continue;
                if (!writer_claim_allowed(cl->uid, c->uid)) {
                        if (same_id)
                                reply_err(v, c->serial, id, VSS_E_ACCESSDENIED,
                                          "Writer.Register: writer id %s belongs to uid %u, which registered it "
                                          "first in this run of vssd (uid %u may not register it)",
                                          vss_id_format(wid, idbuf), (unsigned)cl->uid, (unsigned)c->uid);
                        else
                                reply_err(v, c->serial, id, VSS_E_ACCESSDENIED,
                                          "Writer.Register: writer name '%s' belongs to uid %u, which registered "
                                          "it first in this run of vssd (uid %u may not register it)", name,
                                          (unsigned)cl->uid, (unsigned)c->uid);
                        return false;
                }
                have_id = have_id || same_id;
                have_name = have_name || same_name;
        }
        if (have_id && have_name)
                return true;
        cl = calloc(1, sizeof(*cl));
        if (!cl || !(cl->name = strdup(name))) {
                free(cl);
                reply_err(v, c->serial, id, VSS_E_OUTOFMEMORY, "out of memory registering writer");
                return false;
        }
        cl->writer_id = *wid;
        cl->uid = c->uid;
        cl->next = v->writer_claims;
        v->writer_claims = cl;
        return true;
}

void method_writer_register(struct vssd *v, struct conn *c, json_int_t id, json_t *params)
{
        json_t *restore_method = NULL;
        const char *name = json_get_str(params, "name");
        const char *usage = json_get_str(params, "usage"), *source = json_get_str(params, "source");
        json_t *vols = json_object_get(params, "volumes"), *comps = json_object_get(params, "components");
        json_t *jv, *result;
        struct writer *w;
        json_int_t ms = v->cfg.freeze_timeout_ms;
        char err[VSS_PATH_MAX + 128], idbuf[VSS_ID_STRING_MAX];
        size_t i;

        if (c->writer) {
                reply_err(v, c->serial, id, VSS_E_WRITER_ALREADY_SUBSCRIBED,
                          "this connection already hosts writer '%s'; open one connection per writer", c->writer->name);
                return;
        }
        if (!name || !*name || strlen(name) > 255) {
                reply_err(v, c->serial, id, VSS_E_INVALIDARG, "field 'name' must be a string of 1..255 bytes");
                return;
        }
        if (json_object_get(params, "writer_id") && !json_is_null(json_object_get(params, "writer_id"))) {
                vss_id tmp;
                if (!json_get_id(params, "writer_id", &tmp)) {
                        reply_err(v, c->serial, id, VSS_E_INVALIDARG, "field 'writer_id' is not a GUID");
                        return;
                }
        }
        if (json_object_get(params, "instance_name") && !json_get_str(params, "instance_name") &&
            !json_is_null(json_object_get(params, "instance_name"))) {
                reply_err(v, c->serial, id, VSS_E_INVALIDARG, "field 'instance_name' must be a string");
                return;
        }
        if (json_object_get(params, "freeze_timeout_ms") &&
            (!json_get_int(params, "freeze_timeout_ms", &ms) || ms < 1 || ms > 3600000)) {
                reply_err(v, c->serial, id, VSS_E_INVALIDARG, "field 'freeze_timeout_ms' must be an integer in 1..3600000");
                return;
        }
        if ((json_object_get(params, "usage") && (!usage || wire_usage_from_name(usage) < 0))) {
                reply_err(v, c->serial, id, VSS_E_INVALIDARG,
                          "field 'usage' must be undefined|bootable_system_state|system_service|user_data|other");
                return;
        }
        if ((json_object_get(params, "source") && (!source || wire_source_from_name(source) < 0))) {
                reply_err(v, c->serial, id, VSS_E_INVALIDARG,
                          "field 'source' must be undefined|transacted_db|nontransacted_db|other");
                return;
        }
        if (vols && !json_is_array(vols) && !json_is_null(vols)) {
                reply_err(v, c->serial, id, VSS_E_INVALIDARG, "field 'volumes' must be an array of paths");
                return;
        }
        if (comps && !json_is_null(comps) && !components_valid(comps, err, sizeof(err))) {
                reply_err(v, c->serial, id, VSS_E_INVALIDARG, "%s", err);
                return;
        }
        restore_method = restore_method_parse(json_object_get(params, "restore_method"), err, sizeof(err));
        if (!restore_method) {
                reply_err(v, c->serial, id, VSS_E_INVALIDARG, "%s", err);
                return;
        }

        w = calloc(1, sizeof(*w));
        if (!w) {
                json_decref(restore_method);
                goto oom;
        }
        w->restore_method = restore_method;
        w->pending_event = -1;
        w->name = strdup(name);
        w->instance_name = json_get_str(params, "instance_name") ? strdup(json_get_str(params, "instance_name")) : NULL;
        w->usage = strdup(usage ? usage : "undefined");
        w->source = strdup(source ? source : "undefined");
        w->components = json_is_array(comps) ? json_deep_copy(comps) : json_array();
        w->metadata = json_object();
        if (!w->name || !w->usage || !w->source || !w->components || !w->metadata)
                goto oom_free;
        if (!json_get_id(params, "writer_id", &w->writer_id))
                vss_id_from_name(name, &w->writer_id);
        vss_id_generate(&w->instance_id);
        w->freeze_timeout_ms = (uint32_t)ms;
        w->pid = c->pid;
        w->uid = c->uid;
        w->state = VSS_WS_STABLE;
        w->failure = VSS_S_OK;
        w->conn_serial = c->serial;

        if (json_is_array(vols)) {
                size_t n = json_array_size(vols);

                if (n > 1024) {
                        writer_free(w);
                        reply_err(v, c->serial, id, VSS_E_INVALIDARG, "field 'volumes' lists more than 1024 paths");
                        return;
                }
                w->volumes = calloc(n ? n : 1, sizeof(char *));
                if (!w->volumes)
                        goto oom_free;
                json_array_foreach(vols, i, jv) {
                        struct volume_info vi;
                        bool dup = false;
                        vss_hresult hr;

                        if (!json_is_string(jv)) {
                                writer_free(w);
                                reply_err(v, c->serial, id, VSS_E_INVALIDARG, "field 'volumes[%zu]' must be a string", i);
                                return;
                        }
                        hr = volume_of_path(json_string_value(jv), &vi, err, sizeof(err));
                        if (hr != VSS_S_OK) {
                                writer_free(w);
                                reply_err(v, c->serial, id, hr, "volumes[%zu]: %s", i, err);
                                return;
                        }
                        for (size_t k = 0; k < w->n_volumes; k++)
                                dup = dup || streq(w->volumes[k], vi.path);
                        if (dup)
                                continue;
                        w->volumes[w->n_volumes] = strdup(vi.path);
                        if (!w->volumes[w->n_volumes])
                                goto oom_free;
                        w->n_volumes++;
                }
        }

        if (!writer_claim(v, c, id, &w->writer_id, w->name)) {
                writer_free(w);
                return;
        }
        result = json_pack("{s:o, s:o, s:[]}", "writer_id", json_id(&w->writer_id), "instance_id",
                           json_id(&w->instance_id), "volumes");
        for (i = 0; i < w->n_volumes; i++)
                json_array_append_new(json_object_get(result, "volumes"), json_string(w->volumes[i]));
        w->next = v->writers;
        v->writers = w;
        c->writer = w;
        catalog_event(v, "info", "writer", VSS_S_OK, "writer '%s' %s registered (pid %d, instance %s, %zu volumes)",
                      w->name, vss_id_format(&w->writer_id, idbuf), (int)w->pid,
                      vss_id_format(&w->instance_id, err), w->n_volumes);
        reply_ok(v, c->serial, id, result);
        return;

oom_free:
        writer_free(w);
oom:
        reply_err(v, c->serial, id, VSS_E_OUTOFMEMORY, "out of memory registering writer");
}

json_t *writer_status_json(struct writer *w)
{
        char hex[11];
        json_t *comps = json_array(), *o;
        const char *key;

        wire_format_hresult(w->failure, hex);
        json_object_foreach(w->metadata, key, o)
                json_array_append(comps, o);
        return json_pack("{s:s, s:o, s:o, s:i, s:s, s:s, s:s, s:s, s:s, s:o, s:b, s:o}", "name", w->name,
                         "writer_id", json_id(&w->writer_id), "instance_id", json_id(&w->instance_id), "state",
                         (int)w->state, "state_name", vss_writer_state_name(w->state), "state_label",
                         vss_writer_state_label(w->state), "failure", hex, "failure_name",
                         vss_hresult_name(w->failure), "last_error", vss_writer_error_label(w->failure), "message",
                         json_str_or_null(w->message), "involved", w->involved, "components", comps);
}

static json_t *volumes_json(struct writer *w)
{
        json_t *a = json_array();

        for (size_t i = 0; i < w->n_volumes; i++)
                json_array_append_new(a, json_string(w->volumes[i]));
        return a;
}

json_t *writer_wmd_json(struct writer *w)
{
        return json_pack("{s:s, s:o, s:o, s:o, s:o, s:s, s:s, s:I, s:i, s:O, s:O}", "name", w->name, "writer_id",
                         json_id(&w->writer_id), "instance_id", json_id(&w->instance_id), "instance_name",
                         json_str_or_null(w->instance_name), "volumes", volumes_json(w), "usage", w->usage,
                         "source", w->source, "freeze_timeout_ms", (json_int_t)w->freeze_timeout_ms, "pid",
                         (int)w->pid, "components", w->components, "restore_method", w->restore_method);
}

json_t *writers_list_json(struct vssd *v)
{
        json_t *a = json_array();

        /* Registration order reads better than the list's newest-first order. */
        for (struct writer *w = v->writers; w; w = w->next) {
                json_t *o;

                if (w->gone)
                        continue;
                o = writer_status_json(w);
                json_object_set_new(o, "volumes", volumes_json(w));
                json_object_set_new(o, "pid", json_integer(w->pid));
                json_object_set_new(o, "freeze_timeout_ms", json_integer(w->freeze_timeout_ms));
                json_object_set_new(o, "instance_name", json_str_or_null(w->instance_name));
                json_array_insert_new(a, 0, o);
        }
        return a;
}

void method_writers_list(struct vssd *v, struct conn *c, json_int_t id, json_t *params)
{
        reply_ok(v, c->serial, id, json_pack("{s:o}", "writers", writers_list_json(v)));
}

void writer_set_failed(struct vssd *v, struct writer *w, enum vss_event ev, vss_hresult hr, const char *msg)
{
        enum vss_writer_state st = writer_state_failed_at(ev);
        char idbuf[VSS_ID_STRING_MAX];

        if (st == VSS_WS_UNKNOWN)
                return;
        w->state = st;
        w->failure = hr;
        free(w->message);
        w->message = msg ? strdup(msg) : NULL;
        catalog_event(v, "error", "writer", hr, "writer '%s' %s failed at %s: %s (%s)%s%s", w->name,
                      vss_id_format(&w->writer_id, idbuf), vss_event_name(ev), vss_writer_error_label(hr),
                      vss_hresult_name(hr), msg ? ": " : "", msg ? msg : "");
}

static void pending_clear(struct vssd *v, struct writer *w)
{
        timer_cancel(v, &w->deadline);
        w->pending_event = -1;
        w->pending_id = -1;
}

void writer_cancel_pending(struct vssd *v, struct writer *w)
{
        pending_clear(v, w);
        w->event_done = NULL;
        w->event_ctx = NULL;
}

/* The awaited event is over (answered, timed out, connection lost): its sender hears of it. */
static void pending_done(struct vssd *v, struct writer *w, int ev)
{
        writer_event_done_fn done = w->event_done;
        void *ctx = w->event_ctx;

        w->event_done = NULL;
        w->event_ctx = NULL;
        if (done)
                done(v, ctx, w, (enum vss_event)ev);
}

static void deadline_cb(struct vssd *v, struct timer *t)
{
        struct writer *w = t->userdata;
        char msg[128];
        int ev = w->pending_event;

        if (ev < 0)
                return;
        snprintf(msg, sizeof(msg), "no reply to %s within %u ms", vss_event_name(ev), w->deadline_ms);
        pending_clear(v, w);
        writer_set_failed(v, w, ev, VSS_E_WRITER_NOT_RESPONDING, msg);
        pending_done(v, w, ev);
}

static void freeze_timer_cb(struct vssd *v, struct timer *t)
{
        struct writer *w = t->userdata;

        if (w->freeze_expired)
                w->freeze_expired(v, w->freeze_ctx, w);
}

void writer_arm_freeze(struct vssd *v, struct writer *w, writer_freeze_fn expired, void *ctx)
{
        w->freeze_expired = expired;
        w->freeze_ctx = ctx;
        w->freeze_timer.cb = freeze_timer_cb;
        w->freeze_timer.userdata = w;
        timer_arm(v, &w->freeze_timer, clock_monotonic_us() + (uint64_t)w->freeze_timeout_ms * 1000);
}

void writer_cancel_freeze(struct vssd *v, struct writer *w)
{
        timer_cancel(v, &w->freeze_timer);
}

bool writer_send_event(struct vssd *v, struct writer *w, enum vss_event ev, json_t *params, uint32_t deadline_ms,
                       writer_event_done_fn done, void *ctx)
{
        struct conn *c = conn_by_serial(v, w->conn_serial);
        json_int_t rid;

        if (!c) {
                json_decref(params);
                if (done)
                        writer_set_failed(v, w, ev, VSS_E_WRITER_NOT_RESPONDING, "the writer's connection is closed");
                return false;
        }
        rid = c->next_req_id++;
        /* A new sequence begins: the last one's failure is history (vss-facts 3.2). */
        if (ev == VSS_EVENT_PREPARE_BACKUP || ev == VSS_EVENT_PRE_RESTORE) {
                w->failure = VSS_S_OK;
                w->message = mfree(w->message);
        }
        log_debug("-> writer '%s': %s", w->name, vss_event_name(ev));
        conn_send(v, c, wire_request(rid, "Writer.Event", params));
        if (!done) {
                w->state = writer_state_after(w->state, ev, true);
                return true;
        }
        w->pending_event = ev;
        w->pending_id = rid;
        w->event_done = done;
        w->event_ctx = ctx;
        w->deadline_ms = deadline_ms;
        w->deadline.cb = deadline_cb;
        w->deadline.userdata = w;
        /* At Freeze the freeze timer decides, not a deadline. */
        if (deadline_ms)
                timer_arm(v, &w->deadline, clock_monotonic_us() + (uint64_t)deadline_ms * 1000);
        return true;
}

static void take_metadata(struct writer *w, json_t *comps)
{
        size_t i, total = 0;
        json_t *c;
        const char *key;

        json_object_foreach(w->metadata, key, c)
                total += strlen(json_string_value(json_object_get(c, "backup_metadata")) ?: "");
        json_array_foreach(comps, i, c) {
                const char *lp = json_get_str(c, "logical_path") ?: "", *name = json_get_str(c, "name");
                const char *md = json_get_str(c, "backup_metadata");
                char *k;

                if (!name || !md)
                        continue;
                total += strlen(md);
                if (total > VSSD_METADATA_MAX) {
                        log_warn("writer '%s': backup metadata beyond 256 KiB ignored", w->name);
                        return;
                }
                if (asprintf(&k, "%s/%s", lp, name) < 0)
                        return;
                json_object_set_new(w->metadata, k,
                                    json_pack("{s:s, s:s, s:s}", "logical_path", lp, "name", name, "backup_metadata", md));
                free(k);
        }
}

void writer_handle_reply(struct vssd *v, struct writer *w, struct wire_msg *m)
{
        int ev = w->pending_event;
        vss_hresult hr = VSS_S_OK;
        char msg[512] = "";
        bool ok;

        if (ev < 0 || m->id != w->pending_id) {
                log_debug("writer '%s': ignoring a late or unexpected reply (id %lld)", w->name, (long long)m->id);
                return;
        }
        pending_clear(v, w);
        if (m->kind == WIRE_ERROR) {
                ok = false;
                hr = VSS_E_WRITERERROR_NONRETRYABLE;
                snprintf(msg, sizeof(msg), "error reply %s%s%s", vss_hresult_name(m->hr), m->detail ? ": " : "",
                         m->detail ?: "");
        } else if (!json_is_object(m->result) || !json_is_boolean(json_object_get(m->result, "ok"))) {
                ok = false;
                hr = VSS_E_WRITERERROR_NONRETRYABLE;
                snprintf(msg, sizeof(msg), "malformed reply: field 'ok' missing");
        } else {
                json_t *comps = json_object_get(m->result, "components");

                ok = json_is_true(json_object_get(m->result, "ok"));
                if (!ok) {
                        const char *t = json_get_str(m->result, "message");

                        if (!wire_parse_hresult(json_object_get(m->result, "failure"), &hr) ||
                            !vss_hresult_is_writer_failure(hr))
                                hr = VSS_E_WRITERERROR_NONRETRYABLE;
                        snprintf(msg, sizeof(msg), "%s", t ?: "vetoed");
                }
                if (json_is_array(comps)) {
                        char err[256];

                        if (ev == VSS_EVENT_IDENTIFY) {
                                if (components_valid(comps, err, sizeof(err))) {
                                        json_decref(w->components);
                                        w->components = json_deep_copy(comps);
                                } else
                                        log_warn("writer '%s': Identify reply ignored: %s", w->name, err);
                        } else if (ev >= VSS_EVENT_PREPARE_BACKUP && ev <= VSS_EVENT_POST_SNAPSHOT)
                                take_metadata(w, comps);
                }
        }
        if (ok)
                w->state = writer_state_after(w->state, ev, true);
        else {
                if (ev == VSS_EVENT_FREEZE)
                        timer_cancel(v, &w->freeze_timer);
                writer_set_failed(v, w, ev, hr, msg);
        }
        pending_done(v, w, ev);
}

static enum vss_event current_event(struct writer *w)
{
        switch (w->state) {
        case VSS_WS_STABLE:
                return VSS_EVENT_PREPARE_SNAPSHOT;
        case VSS_WS_WAITING_FOR_FREEZE:
                return VSS_EVENT_FREEZE;
        case VSS_WS_WAITING_FOR_THAW:
                return VSS_EVENT_THAW;
        case VSS_WS_WAITING_FOR_POST_SNAPSHOT:
                return VSS_EVENT_POST_SNAPSHOT;
        default:
                return VSS_EVENT_BACKUP_COMPLETE;
        }
}

void writer_closed(struct vssd *v, struct writer *w)
{
        struct session *s = w->session;
        char idbuf[VSS_ID_STRING_MAX];

        w->conn_serial = 0;
        w->gone = true;
        timer_cancel(v, &w->freeze_timer);
        catalog_event(v, s && w->involved ? "error" : "info", "writer", s && w->involved ? VSS_E_WRITER_NOT_RESPONDING : 0,
                      "writer '%s' %s (pid %d) disconnected", w->name, vss_id_format(&w->writer_id, idbuf),
                      (int)w->pid);
        if (s && (w->involved || w->pending_event >= 0)) {
                int ev = w->pending_event;

                pending_clear(v, w);
                if (!writer_state_is_failed(w->state))
                        writer_set_failed(v, w, ev >= 0 ? (enum vss_event)ev : current_event(w),
                                          VSS_E_WRITER_NOT_RESPONDING, "the writer's connection closed");
                if (ev >= 0)
                        pending_done(v, w, ev);
                return; /* kept until the session lets go of it */
        }
        w->session = NULL;
        writers_sweep(v);
}

void writers_sweep(struct vssd *v)
{
        struct writer **p = &v->writers;

        while (*p) {
                struct writer *w = *p;
                if (w->gone && !w->session) {
                        *p = w->next;
                        timer_cancel(v, &w->deadline);
                        timer_cancel(v, &w->freeze_timer);
                        writer_free(w);
                } else
                        p = &w->next;
        }
}
