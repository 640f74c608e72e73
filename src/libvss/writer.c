/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The writer API of include/vss/writer.h.
 *
 * A vss_writer owns a copy of its options and components (kept as the JSON of
 * Writer.Register, so registering is a dump of what we hold) and, once
 * subscribed, one vss_client connection that accepts requests.  vssd drives
 * the writer with Writer.Event requests; each one is handled to completion on
 * the dispatching thread: the event's parameters become the "current event"
 * (set id, volumes, deadline, shadows, selected components), the handler runs,
 * and the reply carries either ok:true with the backup metadata the handler
 * attached, or ok:false with the failure code and message.  The current event
 * is torn down before the next request is read, so the handler-only calls are
 * simply refused outside a handler.
 *
 * vss_writer_stop() may be called from a signal handler or another thread: it
 * writes to an eventfd that vss_writer_run() polls beside the socket, which is
 * async-signal-safe and needs no locking.
 *
 * (interim, h-apps) The writer-side freeze deadline, the abort on a lost
 * connection and the reconnection of contracts.md section 1, in their smallest
 * form, so the application writers can be built and tested before h-libvss's
 * implementation is merged; that one replaces this.  From Freeze until Thaw or
 * Abort a deadline of freeze timeout + VSS_WRITER_FREEZE_GRACE_MS bounds every
 * wait of dispatch(); when it passes, or the connection is lost between
 * PrepareForSnapshot and Thaw, on_abort runs locally; an Abort or a late Thaw
 * vssd sends for that set afterwards is answered without calling a handler
 * again, so on_abort runs once per set.
 */

#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <time.h>

#include "basic/string-util.h"
#include "basic/time-util.h"
#include "basic/wire.h"
#include "client-internal.h"
#include "vss/writer.h"

#define BACKUP_METADATA_MAX (256 * 1024)
#define FAILURE_MESSAGE_MAX 4096

#define RECONNECT_MIN_MS 100
#define RECONNECT_MAX_MS 5000

struct writer_event {
        bool active;
        enum vss_event event;
        json_t *params;                 /* borrowed from the request being handled */
        vss_id set_id;
        enum vss_backup_type backup_type;
        int32_t context;
        int64_t deadline_ms;            /* monotonic; INT64_MAX when the daemon gave none */
        json_t *metadata;               /* array of {logical_path,name,backup_metadata} to reply */
        json_t *new_targets;            /* strings returned by vss_writer_get_new_target() */
        vss_hresult failure;
        char *failure_message;
};

struct vss_writer {
        char *name;
        vss_id writer_id;
        char *instance_name;
        json_t *volumes;                /* array of strings */
        uint32_t freeze_timeout_ms;
        enum vss_usage_type usage;
        enum vss_source_type source;
        char *socket_path;
        json_t *components;             /* Writer.Register "components" */
        json_t *restore_method;         /* Writer.Register "restore_method" */
        bool no_reconnect;

        struct vss_writer_handlers handlers;
        void *userdata;

        vss_client *client;
        bool subscribed;
        vss_id instance_id;
        int stop_fd;                    /* eventfd */
        atomic_bool stop;

        struct writer_event ev;

        /* The set between PrepareForSnapshot and Thaw/Abort, and the local freeze deadline. */
        bool in_set;
        vss_id set_id;
        uint64_t freeze_deadline_us;    /* 0: not frozen */
        bool aborted;                   /* on_abort already ran for set_id */
        bool reconnecting;              /* the connection was lost; subscribe again */
        uint64_t next_connect_us;       /* when lost: next reconnection attempt */
        uint32_t backoff_ms;
};

static const char *restore_method_name(enum vss_restore_method_type m)
{
        static const char *const names[] = {
                "undefined", "restore_if_not_there", "restore_if_can_replace", "stop_restore_start",
                "restore_to_alternate_location", "restore_at_reboot", "restore_at_reboot_if_cannot_replace",
                "custom", "restore_stop_start",
        };
        return (unsigned)m < ARRAY_SIZE(names) ? names[m] : NULL;
}

static const char *writer_restore_name(enum vss_writer_restore_type t)
{
        static const char *const names[] = { "undefined", "never", "if_replace_fails", "always" };
        return (unsigned)t < ARRAY_SIZE(names) ? names[t] : NULL;
}

static bool valid_text(const char *s, size_t max)
{
        return s && *s && strlen(s) <= max;
}

vss_hresult vss_writer_new(const struct vss_writer_options *options, const struct vss_writer_handlers *handlers,
                           void *userdata, vss_writer **ret_writer)
{
        vss_writer *w;

        if (!options || !ret_writer || !valid_text(options->name, 255))
                return VSS_E_INVALIDARG;
        if (options->freeze_timeout_ms > 3600000)
                return VSS_E_INVALIDARG;
        if (!wire_usage_name(options->usage) || !wire_source_name(options->source))
                return VSS_E_INVALIDARG;

        w = calloc(1, sizeof(*w));
        if (!w)
                return VSS_E_OUTOFMEMORY;
        w->stop_fd = -EBADF;
        w->name = strdup(options->name);
        w->instance_name = options->instance_name ? strdup(options->instance_name) : NULL;
        w->socket_path = options->socket_path ? strdup(options->socket_path) : NULL;
        w->volumes = json_array();
        w->components = json_array();
        w->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (!w->name || (options->instance_name && !w->instance_name) ||
            (options->socket_path && !w->socket_path) || !w->volumes || !w->components || w->stop_fd < 0)
                goto oom;
        for (const char *const *v = options->volumes; v && *v; v++) {
                if (!**v) {
                        vss_writer_free(w);
                        return VSS_E_INVALIDARG;
                }
                if (json_array_append_new(w->volumes, json_string(*v)) < 0)
                        goto oom;
        }
        if (options->writer_id && !vss_id_is_null(options->writer_id))
                w->writer_id = *options->writer_id;
        else
                vss_id_from_name(options->name, &w->writer_id);
        w->freeze_timeout_ms = options->freeze_timeout_ms;
        w->usage = options->usage;
        w->source = options->source;
        if (options->restore_method) {
                const struct vss_restore_method *rm = options->restore_method;
                enum vss_restore_method_type m = rm->method ?: VSS_RME_RESTORE_IF_CAN_REPLACE;
                enum vss_writer_restore_type wr = rm->writer_restore ?: VSS_WRE_NEVER;

                if (!restore_method_name(m) || !writer_restore_name(wr)) {
                        vss_writer_free(w);
                        return VSS_E_INVALIDARG;
                }
                w->restore_method = json_pack("{s:s, s:s, s:s, s:s, s:b}", "method", restore_method_name(m),
                                              "service", rm->service ?: "", "user_procedure",
                                              rm->user_procedure ?: "", "writer_restore", writer_restore_name(wr),
                                              "reboot_required", rm->reboot_required);
                if (!w->restore_method)
                        goto oom;
        }
        w->no_reconnect = options->no_reconnect;
        if (handlers)
                w->handlers = *handlers;
        w->userdata = userdata;
        *ret_writer = w;
        return VSS_S_OK;
oom:
        vss_writer_free(w);
        return VSS_E_OUTOFMEMORY;
}

vss_writer *vss_writer_free(vss_writer *w)
{
        if (!w)
                return NULL;
        vss_writer_unsubscribe(w);
        w->client = vss_client_free(w->client);
        if (w->stop_fd >= 0)
                close(w->stop_fd);
        json_decref(w->volumes);
        json_decref(w->components);
        json_decref(w->restore_method);
        free(w->name);
        free(w->instance_name);
        free(w->socket_path);
        free(w);
        return NULL;
}

static json_t *writer_find_component(vss_writer *w, const char *logical_path, const char *name)
{
        size_t i;
        json_t *c;

        json_array_foreach(w->components, i, c)
                if (streq(json_get_str(c, "logical_path"), logical_path) && streq(json_get_str(c, "name"), name))
                        return c;
        return NULL;
}

vss_hresult vss_writer_add_component(vss_writer *w, enum vss_component_type type, const char *logical_path,
                                     const char *name, const char *caption, bool selectable)
{
        json_t *c;

        if (!w || !valid_text(name, 1024) || (type != VSS_CT_DATABASE && type != VSS_CT_FILEGROUP))
                return VSS_E_INVALIDARG;
        /* Components are part of the registration; Identify may refresh them. */
        if (w->subscribed && !(w->ev.active && w->ev.event == VSS_EVENT_IDENTIFY))
                return VSS_E_BAD_STATE;
        if (!logical_path)
                logical_path = "";
        if (writer_find_component(w, logical_path, name))
                return VSS_E_OBJECT_ALREADY_EXISTS;
        c = json_pack("{s:s, s:s, s:s, s:s?, s:b, s:[]}", "type", type == VSS_CT_DATABASE ? "database" : "filegroup",
                      "logical_path", logical_path, "name", name, "caption", caption, "selectable", selectable,
                      "files");
        if (!c || json_array_append_new(w->components, c) < 0)
                return VSS_E_OUTOFMEMORY;
        return VSS_S_OK;
}

vss_hresult vss_writer_add_component_file(vss_writer *w, const char *logical_path, const char *name,
                                          const char *path, const char *filespec, bool recursive)
{
        json_t *c, *f;

        if (!w || !name || !valid_text(path, 4096))
                return VSS_E_INVALIDARG;
        if (w->subscribed && !(w->ev.active && w->ev.event == VSS_EVENT_IDENTIFY))
                return VSS_E_BAD_STATE;
        c = writer_find_component(w, logical_path ? logical_path : "", name);
        if (!c)
                return VSS_E_OBJECT_NOT_FOUND;
        f = json_pack("{s:s, s:s, s:b}", "path", path, "filespec", filespec && *filespec ? filespec : "*",
                      "recursive", recursive);
        if (!f || json_array_append_new(json_object_get(c, "files"), f) < 0)
                return VSS_E_OUTOFMEMORY;
        return VSS_S_OK;
}

vss_hresult vss_writer_subscribe(vss_writer *w)
{
        _cleanup_json_ json_t *result = NULL;
        json_t *params;
        vss_hresult hr;

        if (!w)
                return VSS_E_INVALIDARG;
        if (w->subscribed)
                return VSS_E_WRITER_ALREADY_SUBSCRIBED;

        w->client = vss_client_free(w->client);
        hr = vss__client_connect(w->socket_path, true, &w->client);
        if (VSS_FAILED(hr))
                return hr;

        params = json_pack("{s:s, s:o, s:O, s:s, s:s, s:O}", "name", w->name, "writer_id", json_id(&w->writer_id),
                           "volumes", w->volumes, "usage", wire_usage_name(w->usage), "source",
                           wire_source_name(w->source), "components", w->components);
        if (!params)
                return VSS_E_OUTOFMEMORY;
        if (w->instance_name)
                json_object_set_new(params, "instance_name", json_string(w->instance_name));
        if (w->freeze_timeout_ms)
                json_object_set_new(params, "freeze_timeout_ms", json_integer(w->freeze_timeout_ms));
        if (w->restore_method)
                json_object_set(params, "restore_method", w->restore_method);

        hr = vss__client_call_json(w->client, "Writer.Register", params, &result);
        if (VSS_FAILED(hr))
                return hr;
        /* The daemon may have normalised the id; trust what it says. */
        json_get_id(result, "writer_id", &w->writer_id);
        if (!json_get_id(result, "instance_id", &w->instance_id))
                vss_id_generate(&w->instance_id);
        w->subscribed = true;
        w->backoff_ms = 0;
        atomic_store(&w->stop, false);
        return VSS_S_OK;
}

vss_hresult vss_writer_unsubscribe(vss_writer *w)
{
        if (!w)
                return VSS_E_INVALIDARG;
        if (!w->subscribed)
                return VSS_S_FALSE;
        w->reconnecting = false;
        /* Closing the connection is the unregistration (docs/protocol.md). */
        w->client = vss_client_free(w->client);
        w->subscribed = false;
        return VSS_S_OK;
}

int vss_writer_fd(vss_writer *w)
{
        return w && w->subscribed ? vss_client_fd(w->client) : -1;
}

/* Fills the current event from the request; returns a failure for malformed params. */
static vss_hresult event_begin(vss_writer *w, json_t *params, char *err, size_t errlen)
{
        struct writer_event *ev = &w->ev;
        const char *s;
        json_int_t i;
        int e;

        *ev = (struct writer_event){ .params = params, .deadline_ms = INT64_MAX };
        s = json_get_str(params, "event");
        e = s ? vss_event_from_name(s) : -1;
        if (e < 0) {
                snprintf(err, errlen, "field 'event' is missing or names no event (%s)", s ? s : "null");
                return VSS_E_INVALIDARG;
        }
        ev->event = e;
        s = json_get_str(params, "set_id");
        if (s && VSS_FAILED(vss_id_parse(s, &ev->set_id))) {
                snprintf(err, errlen, "field 'set_id' is not a GUID");
                return VSS_E_INVALIDARG;
        }
        if (json_get_int(params, "context", &i))
                ev->context = (int32_t)i;
        s = json_get_str(params, "backup_type");
        e = wire_backup_type_from_name(s);
        ev->backup_type = e < 0 ? VSS_BT_UNDEFINED : (enum vss_backup_type)e;
        if (json_get_int(params, "timeout_ms", &i) && i >= 0)
                ev->deadline_ms = (int64_t)(clock_monotonic_us() / USEC_PER_MSEC) + i;
        ev->metadata = json_array();
        if (!ev->metadata)
                return VSS_E_OUTOFMEMORY;
        ev->failure = VSS_S_OK;
        ev->active = true;
        return VSS_S_OK;
}

static void event_end(vss_writer *w)
{
        json_decref(w->ev.metadata);
        json_decref(w->ev.new_targets);
        free(w->ev.failure_message);
        w->ev = (struct writer_event){ 0 };
}

static bool (*handler_for(vss_writer *w, enum vss_event e))(vss_writer *, void *)
{
        const struct vss_writer_handlers *h = &w->handlers;

        switch (e) {
        case VSS_EVENT_IDENTIFY: return h->on_identify;
        case VSS_EVENT_PREPARE_BACKUP: return h->on_prepare_backup;
        case VSS_EVENT_PREPARE_SNAPSHOT: return h->on_prepare_snapshot;
        case VSS_EVENT_FREEZE: return h->on_freeze;
        case VSS_EVENT_THAW: return h->on_thaw;
        case VSS_EVENT_POST_SNAPSHOT: return h->on_post_snapshot;
        case VSS_EVENT_BACKUP_COMPLETE: return h->on_backup_complete;
        case VSS_EVENT_ABORT: return h->on_abort;
        case VSS_EVENT_BACKUP_SHUTDOWN: return h->on_backup_shutdown;
        case VSS_EVENT_PRE_RESTORE: return h->on_pre_restore;
        case VSS_EVENT_POST_RESTORE: return h->on_post_restore;
        default: return NULL;
        }
}

static vss_hresult writer_handle_request(vss_writer *w, json_t *msg)
{
        const char *method = json_get_str(msg, "method");
        json_t *params = json_object_get(msg, "params");
        json_int_t id = -1;
        bool (*handler)(vss_writer *, void *);
        json_t *result;
        char err[256];
        vss_hresult hr;
        bool ok;

        json_get_int(msg, "id", &id);
        if (!method || !streq(method, "Writer.Event")) {
                if (id < 0)
                        return VSS_S_OK;
                snprintf(err, sizeof(err), "a writer connection does not implement %s", method ? method : "?");
                return vss__client_reply_error(w->client, id, VSS_E_NOT_SUPPORTED, err);
        }
        if (!json_is_object(params)) {
                params = json_object();
                json_object_set_new(msg, "params", params);
        }
        hr = event_begin(w, params, err, sizeof(err));
        if (VSS_FAILED(hr)) {
                event_end(w);
                return id < 0 ? VSS_S_OK : vss__client_reply_error(w->client, id, hr, err);
        }

        handler = handler_for(w, w->ev.event);
        switch (w->ev.event) {
        case VSS_EVENT_PREPARE_BACKUP:
        case VSS_EVENT_PREPARE_SNAPSHOT:
                if (!w->in_set || !vss_id_equal(&w->set_id, &w->ev.set_id)) {
                        w->set_id = w->ev.set_id;
                        w->aborted = false;
                        w->freeze_deadline_us = 0;
                }
                w->in_set = w->ev.event == VSS_EVENT_PREPARE_SNAPSHOT;
                break;
        case VSS_EVENT_FREEZE:
                /* Armed before on_freeze runs: a Freeze handler that hangs is covered too. */
                w->set_id = w->ev.set_id;
                w->in_set = true;
                w->freeze_deadline_us = clock_monotonic_us() +
                                        (uint64_t)((w->freeze_timeout_ms ?: VSS_DEFAULT_FREEZE_TIMEOUT_MS) +
                                                   VSS_WRITER_FREEZE_GRACE_MS) * USEC_PER_MSEC;
                break;
        case VSS_EVENT_THAW:
        case VSS_EVENT_ABORT:
                if (w->aborted && vss_id_equal(&w->set_id, &w->ev.set_id)) {
                        /* Aborted locally already: Abort is done, a late Thaw finds nothing frozen. */
                        if (w->ev.event == VSS_EVENT_THAW) {
                                vss_writer_set_failure(w, VSS_E_WRITERERROR_TIMEOUT);
                                vss_writer_set_failure_message(w, "the writer's freeze deadline passed before Thaw; "
                                                                  "it aborted");
                        }
                        handler = NULL;
                        ok = w->ev.event == VSS_EVENT_ABORT;
                        goto reply;
                }
                break;
        default:
                break;
        }
        ok = handler ? handler(w, w->userdata) : true;
        if (w->ev.event == VSS_EVENT_THAW || w->ev.event == VSS_EVENT_ABORT) {
                if (w->ev.event == VSS_EVENT_ABORT && vss_id_equal(&w->set_id, &w->ev.set_id))
                        w->aborted = true;
                w->in_set = false;
                w->freeze_deadline_us = 0;
        }
reply:

        if (ok) {
                if (w->ev.event == VSS_EVENT_IDENTIFY)
                        result = json_pack("{s:b, s:O}", "ok", true, "components", w->components);
                else
                        result = json_pack("{s:b, s:O}", "ok", true, "components", w->ev.metadata);
        } else {
                char hex[11];
                vss_hresult f = w->ev.failure != VSS_S_OK ? w->ev.failure : VSS_E_WRITERERROR_NONRETRYABLE;

                wire_format_hresult(f, hex);
                result = json_pack("{s:b, s:s, s:s}", "ok", false, "failure", hex, "message",
                                   w->ev.failure_message ? w->ev.failure_message : vss_writer_error_label(f));
        }
        event_end(w);
        if (!result)
                return VSS_E_OUTOFMEMORY;
        if (id < 0) {
                json_decref(result);
                return VSS_S_OK;
        }
        return vss__client_reply(w->client, id, result);
}

/* Runs on_abort for the current set without vssd (deadline passed, connection lost). */
static void writer_abort_locally(vss_writer *w)
{
        _cleanup_json_ json_t *params = NULL;

        if (!w->in_set || w->aborted)
                return;
        w->aborted = true;
        w->in_set = false;
        w->freeze_deadline_us = 0;
        params = json_object();
        w->ev = (struct writer_event){ .active = params != NULL, .event = VSS_EVENT_ABORT, .params = params,
                                       .set_id = w->set_id, .deadline_ms = INT64_MAX, .metadata = json_array() };
        if (w->handlers.on_abort)
                w->handlers.on_abort(w, w->userdata);
        event_end(w);
}

static vss_hresult writer_connection_lost(vss_writer *w)
{
        writer_abort_locally(w);
        if (w->no_reconnect)
                return VSS_E_WRITER_INFRASTRUCTURE;
        w->subscribed = false;
        w->reconnecting = true;
        w->backoff_ms = w->backoff_ms ? MIN(w->backoff_ms * 2, (uint32_t)RECONNECT_MAX_MS) : RECONNECT_MIN_MS;
        w->next_connect_us = clock_monotonic_us() + (uint64_t)w->backoff_ms * USEC_PER_MSEC;
        return VSS_S_OK;
}

vss_hresult vss_writer_dispatch(vss_writer *w, int timeout_ms)
{
        uint64_t end_us = timeout_ms < 0 ? UINT64_MAX : clock_monotonic_us() + (uint64_t)timeout_ms * USEC_PER_MSEC;
        vss_hresult hr;
        bool first = true;

        if (!w)
                return VSS_E_INVALIDARG;
        if (!w->subscribed && !w->reconnecting)
                return VSS_E_BAD_STATE;
        if (w->ev.active)
                return VSS_E_BAD_STATE; /* dispatch from inside a handler */

        for (;;) {
                _cleanup_json_ json_t *msg = NULL;
                uint64_t now = clock_monotonic_us(), until = first ? end_us : now;
                int wait_ms;

                if (atomic_load(&w->stop))
                        return VSS_S_OK;
                if (w->freeze_deadline_us && now >= w->freeze_deadline_us) {
                        writer_abort_locally(w);
                        continue;
                }
                if (!w->subscribed) {
                        /* Reconnecting: try when the backoff allows, else sleep on the stop fd. */
                        if (now >= w->next_connect_us) {
                                if (VSS_SUCCEEDED(vss_writer_subscribe(w))) {
                                        w->reconnecting = false;
                                        continue;
                                }
                                w->subscribed = false;
                                writer_connection_lost(w);
                                continue;
                        }
                        if (now >= until)
                                return VSS_S_OK;
                        struct pollfd p = { .fd = w->stop_fd, .events = POLLIN };
                        (void)poll(&p, 1, ms_until(now, MIN(until, w->next_connect_us)));
                        continue;
                }
                if (w->freeze_deadline_us)
                        until = MIN(until, w->freeze_deadline_us);
                wait_ms = until == UINT64_MAX ? -1 : ms_until(now, until);
                hr = vss__client_next_request(w->client, wait_ms, w->stop_fd, &msg);
                if (hr == VSS_S_FALSE) {
                        if (w->freeze_deadline_us && clock_monotonic_us() >= w->freeze_deadline_us)
                                continue;
                        if (clock_monotonic_us() >= end_us || atomic_load(&w->stop))
                                return VSS_S_OK;
                        first = true;
                        continue;
                }
                if (hr == VSS_E_WRITER_INFRASTRUCTURE) {
                        hr = writer_connection_lost(w);
                        if (VSS_FAILED(hr))
                                return hr;
                        continue;
                }
                if (VSS_FAILED(hr))
                        return hr;
                first = false;
                hr = writer_handle_request(w, msg);
                if (hr == VSS_E_WRITER_INFRASTRUCTURE) {
                        hr = writer_connection_lost(w);
                        if (VSS_FAILED(hr))
                                return hr;
                        continue;
                }
                if (atomic_load(&w->stop))
                        return VSS_S_OK;
        }
}

vss_hresult vss_writer_run(vss_writer *w)
{
        vss_hresult hr;

        if (!w)
                return VSS_E_INVALIDARG;
        while (!atomic_load(&w->stop)) {
                hr = vss_writer_dispatch(w, -1);
                if (VSS_FAILED(hr))
                        return hr;
        }
        /* Consume the wake-up so a later run() waits again. */
        uint64_t v;
        (void)!read(w->stop_fd, &v, sizeof(v));
        atomic_store(&w->stop, false);
        return VSS_S_OK;
}

void vss_writer_stop(vss_writer *w)
{
        uint64_t one = 1;

        if (!w)
                return;
        atomic_store(&w->stop, true);
        (void)!write(w->stop_fd, &one, sizeof(one));
}

void vss_writer_get_writer_id(vss_writer *w, vss_id *ret)
{
        if (w && ret)
                *ret = w->writer_id;
}

void vss_writer_get_instance_id(vss_writer *w, vss_id *ret)
{
        if (w && ret)
                *ret = w->instance_id;
}

const char *vss_writer_get_error_detail(vss_writer *w)
{
        return w && w->client ? vss_client_get_error_detail(w->client) : "";
}

const char *vss_writer_get_name(vss_writer *w)
{
        return w ? w->name : NULL;
}

vss_hresult vss_writer_set_failure(vss_writer *w, vss_hresult failure)
{
        if (!w)
                return VSS_E_INVALIDARG;
        if (!w->ev.active)
                return VSS_E_BAD_STATE;
        if (!vss_hresult_is_writer_failure(failure))
                return VSS_E_INVALIDARG;
        w->ev.failure = failure;
        return VSS_S_OK;
}

vss_hresult vss_writer_set_failure_message(vss_writer *w, const char *message)
{
        char *m;

        if (!w || !message)
                return VSS_E_INVALIDARG;
        if (!w->ev.active)
                return VSS_E_BAD_STATE;
        m = strdup(message);
        if (!m)
                return VSS_E_OUTOFMEMORY;
        /* The reply is JSON: a message that is not UTF-8 would make it unsendable and turn
         * the veto into a timeout. */
        utf8_make_valid(m);
        m[utf8_cut(m, FAILURE_MESSAGE_MAX)] = 0;
        free(w->ev.failure_message);
        w->ev.failure_message = m;
        return VSS_S_OK;
}

enum vss_event vss_writer_get_current_event(vss_writer *w)
{
        return w && w->ev.active ? w->ev.event : _VSS_EVENT_MAX;
}

void vss_writer_get_snapshot_set_id(vss_writer *w, vss_id *ret)
{
        if (ret)
                *ret = w && w->ev.active ? w->ev.set_id : VSS_ID_NULL;
}

enum vss_backup_type vss_writer_get_backup_type(vss_writer *w)
{
        return w && w->ev.active ? w->ev.backup_type : VSS_BT_UNDEFINED;
}

int32_t vss_writer_get_context(vss_writer *w)
{
        return w && w->ev.active ? w->ev.context : 0;
}

int64_t vss_writer_get_time_left_ms(vss_writer *w)
{
        int64_t left;

        if (!w || !w->ev.active)
                return 0;
        if (w->ev.deadline_ms == INT64_MAX)
                return INT64_MAX;
        left = w->ev.deadline_ms - (int64_t)(clock_monotonic_us() / USEC_PER_MSEC);
        return left > 0 ? left : 0;
}

static json_t *event_array(vss_writer *w, const char *key)
{
        json_t *a;

        if (!w || !w->ev.active)
                return NULL;
        a = json_object_get(w->ev.params, key);
        return json_is_array(a) ? a : NULL;
}

size_t vss_writer_get_volume_count(vss_writer *w)
{
        return json_array_size(event_array(w, "volumes"));
}

const char *vss_writer_get_volume(vss_writer *w, size_t i)
{
        return json_string_value(json_array_get(event_array(w, "volumes"), i));
}

const char *vss_writer_get_snapshot_device(vss_writer *w, const char *volume)
{
        json_t *s;
        size_t i;

        if (!volume)
                return NULL;
        json_array_foreach(event_array(w, "shadows"), i, s)
                if (streq_ptr(json_get_str(s, "volume"), volume))
                        return json_get_str(s, "device");
        return NULL;
}

static json_t *event_component(vss_writer *w, const char *logical_path, const char *name)
{
        json_t *c;
        size_t i;

        json_array_foreach(event_array(w, "components"), i, c) {
                const char *lp = json_get_str(c, "logical_path");
                if (streq(lp ? lp : "", logical_path ? logical_path : "") && streq_ptr(json_get_str(c, "name"), name))
                        return c;
        }
        return NULL;
}

bool vss_writer_is_component_selected(vss_writer *w, const char *logical_path, const char *name)
{
        if (!w || !w->ev.active || !name)
                return false;
        /* No component list: volume mode, where everything is backed up. */
        if (json_array_size(event_array(w, "components")) == 0)
                return true;
        return event_component(w, logical_path, name) != NULL;
}

vss_hresult vss_writer_set_backup_metadata(vss_writer *w, const char *logical_path, const char *name,
                                           const char *metadata)
{
        size_t total = 0, i;
        json_t *c, *entry;

        if (!w || !name || !metadata)
                return VSS_E_INVALIDARG;
        if (!w->ev.active)
                return VSS_E_BAD_STATE;
        switch (w->ev.event) {
        case VSS_EVENT_PREPARE_BACKUP:
        case VSS_EVENT_PREPARE_SNAPSHOT:
        case VSS_EVENT_FREEZE:
        case VSS_EVENT_THAW:
        case VSS_EVENT_POST_SNAPSHOT:
                break;
        default:
                return VSS_E_BAD_STATE;
        }
        if (!logical_path)
                logical_path = "";

        json_array_foreach(w->ev.metadata, i, c)
                if (!(streq(json_get_str(c, "logical_path"), logical_path) && streq(json_get_str(c, "name"), name)))
                        total += strlen(json_get_str(c, "backup_metadata"));
        if (total + strlen(metadata) > BACKUP_METADATA_MAX)
                return VSS_E_INVALIDARG;

        entry = json_pack("{s:s, s:s, s:s}", "logical_path", logical_path, "name", name, "backup_metadata",
                          metadata);
        if (!entry)
                return VSS_E_OUTOFMEMORY;
        json_array_foreach(w->ev.metadata, i, c)
                if (streq(json_get_str(c, "logical_path"), logical_path) && streq(json_get_str(c, "name"), name))
                        return json_array_set_new(w->ev.metadata, i, entry) < 0 ? VSS_E_OUTOFMEMORY : VSS_S_OK;
        return json_array_append_new(w->ev.metadata, entry) < 0 ? VSS_E_OUTOFMEMORY : VSS_S_OK;
}

const char *vss_writer_get_backup_metadata(vss_writer *w, const char *logical_path, const char *name)
{
        if (!w || !w->ev.active || !name)
                return NULL;
        if (w->ev.event != VSS_EVENT_PRE_RESTORE && w->ev.event != VSS_EVENT_POST_RESTORE)
                return NULL;
        return json_get_str(event_component(w, logical_path, name), "backup_metadata");
}

enum vss_file_restore_status vss_writer_get_file_restore_status(vss_writer *w, const char *logical_path,
                                                                const char *name)
{
        const char *s;

        if (!w || !w->ev.active || !name || w->ev.event != VSS_EVENT_POST_RESTORE)
                return VSS_RS_UNDEFINED;
        s = json_get_str(event_component(w, logical_path, name), "file_restore_status");
        if (!s)
                return VSS_RS_UNDEFINED;
        return streq(s, "none") ? VSS_RS_NONE : streq(s, "all") ? VSS_RS_ALL : streq(s, "failed") ? VSS_RS_FAILED
                                                                                                : VSS_RS_UNDEFINED;
}

const char *vss_writer_get_new_target(vss_writer *w, const char *path)
{
        const char *best_path = NULL, *best_target = NULL;
        size_t best_len = 0, i, j;
        json_t *c, *t;
        char *r;

        if (!w || !w->ev.active || !path)
                return NULL;
        if (w->ev.event != VSS_EVENT_PRE_RESTORE && w->ev.event != VSS_EVENT_POST_RESTORE)
                return NULL;
        json_array_foreach(event_array(w, "components"), i, c) {
                json_array_foreach(json_object_get(c, "new_targets"), j, t) {
                        const char *p = json_get_str(t, "path"), *tg = json_get_str(t, "target");
                        size_t n = p ? strlen(p) : 0;

                        while (n > 1 && p[n - 1] == '/')
                                n--;
                        if (!p || !tg || n == 0 || strncmp(path, p, n) != 0 || (path[n] && path[n] != '/' && n > 1))
                                continue;
                        if (n >= best_len) {
                                best_len = n;
                                best_path = p;
                                best_target = tg;
                        }
                }
        }
        if (!best_path)
                return NULL;
        if (asprintf(&r, "%s%s", best_target, path + (best_len == 1 ? 0 : best_len)) < 0)
                return NULL;
        if (!w->ev.new_targets)
                w->ev.new_targets = json_array();
        if (!w->ev.new_targets || json_array_append_new(w->ev.new_targets, json_string(r)) < 0) {
                free(r);
                return NULL;
        }
        free(r);
        return json_string_value(json_array_get(w->ev.new_targets, json_array_size(w->ev.new_targets) - 1));
}
