/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The writer API of include/vss/writer.h.
 *
 * A vss_writer owns a copy of its options and components (kept as the JSON of
 * Writer.Register, so registering is a dump of what we hold) and, once
 * subscribed, one vss_client connection that accepts requests.  vssd drives
 * the writer with Writer.Event requests; each one is handled to completion on
 * the dispatching thread: the event's parameters become the "current event"
 * (set id, volumes, deadline, shadows, components), the handler runs, and the
 * reply carries either ok:true with the backup metadata the handler attached,
 * or ok:false with the failure code and message.  The current event is torn
 * down before the next request is read, so the handler-only calls are simply
 * refused outside a handler, and two handlers never run at once.
 *
 * Beside vssd's events, three things make libvss run on_abort by itself
 * (writer-seq.h keeps the per-set bookkeeping): the local freeze deadline, a
 * connection lost while the writer may hold something, and a new set or the
 * end of the session arriving while the old set is still held.  All of them
 * are noticed on the dispatching thread, never on a timer thread of our own:
 * on_abort must not race on_freeze or on_thaw over the writer's state, and the
 * deadline must not overtake a Thaw that has already arrived (KB 915331).  So
 * dispatch handles every message already received first, and only then looks
 * at the deadline.  A handler that blocks past the deadline delays the local
 * Abort until it returns; vssd's own freeze timer (shorter by the grace) has
 * then already failed the writer and aborted the set, so the shadow copy is
 * never used.
 *
 * The fd handed to event loops (vss_writer_fd) is an epoll fd holding the
 * connection and a timerfd armed for the next thing due (deadline,
 * reconnection), so a loop that polls it wakes up for those too, and the fd
 * stays the same across reconnections.  vss_writer_stop() may be called from a
 * signal handler or another thread: it writes to an eventfd that dispatch
 * polls beside it, which is async-signal-safe and needs no locking.
 */

#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>

#include "basic/string-util.h"
#include "basic/time-util.h"
#include "basic/wire.h"
#include "client-internal.h"
#include "vss/writer.h"
#include "writer-seq.h"

#define BACKUP_METADATA_MAX (256 * 1024)
#define FAILURE_MESSAGE_MAX 4096
#define RECONNECT_FIRST_MS 100
#define RECONNECT_MAX_MS 5000
/* A vssd that accepts the connection but does not answer Writer.Register within this
 * long is treated as not there yet. */
#define REGISTER_TIMEOUT_MS 5000

struct writer_event {
        bool active;
        enum vss_event event;
        json_t *params;                 /* a reference to the request's params */
        vss_id set_id;
        enum vss_backup_type backup_type;
        int32_t context;
        int64_t deadline_ms;            /* monotonic; INT64_MAX when the daemon gave none */
        json_t *metadata;               /* array of {logical_path,name,backup_metadata} to reply */
        vss_hresult failure;
        char *failure_message;
        enum vss_abort_reason abort_reason;
        char *new_target;               /* vss_writer_get_new_target()'s last result */
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
        json_t *restore_method;         /* Writer.Register "restore_method", or NULL */
        bool no_reconnect;

        struct vss_writer_handlers handlers;
        void *userdata;

        vss_client *client;             /* NULL while waiting to reconnect */
        bool subscribed;                /* between subscribe() and unsubscribe() (or a final loss) */
        bool connected;                 /* registered on a live connection */
        vss_id instance_id;
        int epfd, timerfd, stop_fd;
        atomic_bool stop;
        uint64_t reconnect_at_us;       /* monotonic, while subscribed && !connected */
        uint32_t backoff_ms;

        struct writer_seq seq;
        json_t *set_params;             /* params of the held set's last event, for a local Abort */
        char detail[2048];

        struct writer_event ev;
};

static bool valid_text(const char *s, size_t max)
{
        return s && *s && strlen(s) <= max;
}

static json_t *restore_method_json(const struct vss_restore_method *rm)
{
        enum vss_restore_method_type m = rm->method == VSS_RME_UNDEFINED ? VSS_RME_RESTORE_IF_CAN_REPLACE : rm->method;
        enum vss_writer_restore_type wr = rm->writer_restore == VSS_WRE_UNDEFINED ? VSS_WRE_NEVER : rm->writer_restore;

        return json_pack("{s:s, s:s, s:s, s:s, s:b}", "method", vss_restore_method_name(m), "service",
                         rm->service ? rm->service : "", "user_procedure", rm->user_procedure ? rm->user_procedure : "",
                         "writer_restore", vss_writer_restore_name(wr), "reboot_required", rm->reboot_required);
}

static bool restore_method_valid(const struct vss_restore_method *rm)
{
        return vss_restore_method_name(rm->method) && vss_writer_restore_name(rm->writer_restore) &&
               (!rm->service || strlen(rm->service) <= 255) &&
               (!rm->user_procedure || strlen(rm->user_procedure) <= 4096);
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
        if (options->restore_method && !restore_method_valid(options->restore_method))
                return VSS_E_INVALIDARG;

        w = calloc(1, sizeof(*w));
        if (!w)
                return VSS_E_OUTOFMEMORY;
        w->stop_fd = w->epfd = w->timerfd = -EBADF;
        writer_seq_init(&w->seq);
        w->name = strdup(options->name);
        w->instance_name = options->instance_name ? strdup(options->instance_name) : NULL;
        w->socket_path = options->socket_path ? strdup(options->socket_path) : NULL;
        w->volumes = json_array();
        w->components = json_array();
        w->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        w->epfd = epoll_create1(EPOLL_CLOEXEC);
        w->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
        if (options->restore_method)
                w->restore_method = restore_method_json(options->restore_method);
        if (!w->name || (options->instance_name && !w->instance_name) ||
            (options->socket_path && !w->socket_path) || !w->volumes || !w->components || w->stop_fd < 0 ||
            w->epfd < 0 || w->timerfd < 0 || (options->restore_method && !w->restore_method))
                goto oom;
        if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->timerfd, &(struct epoll_event){ .events = EPOLLIN }) < 0)
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
        if (w->timerfd >= 0)
                close(w->timerfd);
        if (w->epfd >= 0)
                close(w->epfd);
        json_decref(w->volumes);
        json_decref(w->components);
        json_decref(w->restore_method);
        json_decref(w->set_params);
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

static void keep_detail(vss_writer *w)
{
        if (w->client && *vss_client_get_error_detail(w->client))
                snprintf(w->detail, sizeof(w->detail), "%s", vss_client_get_error_detail(w->client));
}

static void drop_connection(vss_writer *w)
{
        if (w->client) {
                int fd = vss_client_fd(w->client);

                if (fd >= 0)
                        (void)epoll_ctl(w->epfd, EPOLL_CTL_DEL, fd, NULL);
        }
        w->client = vss_client_free(w->client);
        w->connected = false;
}

/* Connects and registers; on success the connection's fd is in the epoll set. */
static vss_hresult writer_register(vss_writer *w, int timeout_ms)
{
        _cleanup_json_ json_t *result = NULL;
        json_t *params;
        vss_hresult hr;

        drop_connection(w);
        hr = vss__client_connect(w->socket_path, true, &w->client);
        if (VSS_FAILED(hr)) {
                keep_detail(w);
                return hr;
        }
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

        hr = vss__client_call_json_wait(w->client, "Writer.Register", params, timeout_ms,
                                        timeout_ms < 0 ? -1 : w->stop_fd, &result);
        if (VSS_FAILED(hr)) {
                keep_detail(w);
                return hr;
        }
        /* The daemon may have normalised the id; trust what it says. */
        json_get_id(result, "writer_id", &w->writer_id);
        if (!json_get_id(result, "instance_id", &w->instance_id))
                vss_id_generate(&w->instance_id);
        if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, vss_client_fd(w->client), &(struct epoll_event){ .events = EPOLLIN }) < 0) {
                snprintf(w->detail, sizeof(w->detail), "epoll_ctl: %s", strerror(errno));
                return VSS_E_OUTOFMEMORY;
        }
        w->connected = true;
        w->detail[0] = 0;
        return VSS_S_OK;
}

vss_hresult vss_writer_subscribe(vss_writer *w)
{
        vss_hresult hr;

        if (!w)
                return VSS_E_INVALIDARG;
        if (w->subscribed)
                return VSS_E_WRITER_ALREADY_SUBSCRIBED;
        w->detail[0] = 0;
        hr = writer_register(w, -1);
        if (VSS_FAILED(hr))
                return hr;
        w->subscribed = true;
        w->backoff_ms = RECONNECT_FIRST_MS;
        atomic_store(&w->stop, false);
        return VSS_S_OK;
}

bool vss_writer_is_connected(vss_writer *w)
{
        return w && w->subscribed && w->connected;
}

int vss_writer_fd(vss_writer *w)
{
        return w && w->subscribed ? w->epfd : -1;
}

/* Parses an event's params into *ev (not yet current); returns a failure for malformed params. */
static vss_hresult event_parse(json_t *params, struct writer_event *ev, char *err, size_t errlen)
{
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
        ev->failure = VSS_S_OK;
        return VSS_S_OK;
}

static vss_hresult event_activate(vss_writer *w, struct writer_event *ev)
{
        ev->metadata = json_array();
        if (!ev->metadata)
                return VSS_E_OUTOFMEMORY;
        json_incref(ev->params);
        ev->active = true;
        w->ev = *ev;
        return VSS_S_OK;
}

static void event_end(vss_writer *w)
{
        json_decref(w->ev.metadata);
        json_decref(w->ev.params);
        free(w->ev.failure_message);
        free(w->ev.new_target);
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

/* The local freeze deadline's length: the freeze timeout plus the grace, but never past a
 * cluster set's hold window (the Freeze event's hold_ms, docs/protocol.md). */
static uint64_t freeze_window_us(vss_writer *w, json_t *params);

static uint32_t freeze_timeout_of(vss_writer *w, json_t *params)
{
        json_int_t t;

        /* The writer's own timeout, else the one vssd applies (it sends it as the Freeze
         * event's timeout_ms), else the service default. */
        if (w->freeze_timeout_ms)
                return w->freeze_timeout_ms;
        if (params && json_get_int(params, "timeout_ms", &t) && t > 0 && t <= 3600000)
                return (uint32_t)t;
        return VSS_DEFAULT_FREEZE_TIMEOUT_MS;
}

static uint64_t freeze_window_us(vss_writer *w, json_t *params)
{
        uint64_t ms = (uint64_t)freeze_timeout_of(w, params) + VSS_WRITER_FREEZE_GRACE_MS;
        json_int_t hold;

        if (params && json_get_int(params, "hold_ms", &hold) && hold > 0 && (uint64_t)hold < ms)
                ms = (uint64_t)hold;
        return ms * USEC_PER_MSEC;
}

static const char *abort_reason_text(enum vss_abort_reason r)
{
        switch (r) {
        case VSS_ABORT_FREEZE_DEADLINE: return "its freeze deadline passed before Thaw";
        case VSS_ABORT_CONNECTION_LOST: return "the connection to vssd was lost";
        case VSS_ABORT_SEQUENCE_ENDED: return "the sequence ended without Thaw or Abort";
        default: return "vssd aborted it";
        }
}

/*
 * Runs on_abort for the held set on libvss's own account.  The handler sees an Abort
 * event with the set's id, volumes and components (the params of the set's last
 * event) and the freeze timeout as its time; its result goes nowhere: nobody asked.
 */
static void run_local_abort(vss_writer *w, enum vss_abort_reason reason)
{
        _cleanup_json_ json_t *params = NULL;
        struct writer_event ev;
        char err[128], idbuf[VSS_ID_STRING_MAX];
        bool (*handler)(vss_writer *, void *);
        uint32_t timeout;
        vss_id set;

        if (w->ev.active || !writer_seq_abort_local(&w->seq, reason, &set))
                return;
        timeout = freeze_timeout_of(w, w->set_params);
        params = w->set_params ? json_copy(w->set_params) : json_object();
        json_decref(w->set_params);
        w->set_params = NULL;
        if (!params)
                return;
        json_object_set_new(params, "event", json_string("Abort"));
        json_object_set_new(params, "set_id", json_string(vss_id_format(&set, idbuf)));
        json_object_set_new(params, "timeout_ms", json_integer(timeout));
        if (VSS_FAILED(event_parse(params, &ev, err, sizeof(err))) || VSS_FAILED(event_activate(w, &ev)))
                return;
        w->ev.abort_reason = reason;
        handler = handler_for(w, VSS_EVENT_ABORT);
        if (handler)
                (void)handler(w, w->userdata);
        event_end(w);
}

static json_t *failure_result(vss_hresult f, const char *message)
{
        char hex[11];

        wire_format_hresult(f, hex);
        return json_pack("{s:b, s:s, s:s}", "ok", false, "failure", hex, "message",
                         message ? message : vss_writer_error_label(f));
}

static vss_hresult writer_handle_request(vss_writer *w, json_t *msg)
{
        const char *method = json_get_str(msg, "method");
        json_t *params = json_object_get(msg, "params");
        json_int_t id = -1;
        bool (*handler)(vss_writer *, void *);
        struct writer_event ev;
        enum seq_verdict verdict;
        json_t *result;
        char err[512], idbuf[VSS_ID_STRING_MAX];
        vss_hresult hr, late = VSS_S_OK;
        bool ok, overran = false;

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
        hr = event_parse(params, &ev, err, sizeof(err));
        if (VSS_FAILED(hr))
                return id < 0 ? VSS_S_OK : vss__client_reply_error(w->client, id, hr, err);

        if (writer_seq_must_abort_before(&w->seq, ev.event, &ev.set_id))
                run_local_abort(w, VSS_ABORT_SEQUENCE_ENDED);
        verdict = writer_seq_event(&w->seq, ev.event, &ev.set_id, clock_monotonic_us(),
                                   freeze_window_us(w, params),
                                   &late);
        if (verdict == SEQ_RUN && writer_seq_holds(&w->seq)) {
                /* What a local Abort of this set will show its handler. */
                json_decref(w->set_params);
                w->set_params = json_incref(params);
        }

        hr = event_activate(w, &ev);
        if (VSS_FAILED(hr))
                return hr;
        w->ev.abort_reason = VSS_ABORT_REQUESTED;

        switch (verdict) {
        case SEQ_RUN:
                handler = handler_for(w, w->ev.event);
                ok = handler ? handler(w, w->userdata) : true;
                break;
        case SEQ_ANSWER_OK:
                ok = true;      /* a repeated Abort: on_abort already ran for this set */
                break;
        default:
                ok = false;
                w->ev.failure = late;
                snprintf(err, sizeof(err), "%s arrived after the writer had aborted set %s (%s)",
                         vss_event_name(w->ev.event), vss_id_format(&w->ev.set_id, idbuf),
                         late == VSS_E_WRITERERROR_TIMEOUT ? abort_reason_text(VSS_ABORT_FREEZE_DEADLINE)
                                                           : "it was aborted");
                free(w->ev.failure_message);
                w->ev.failure_message = strdup(err);
                break;
        }

        /* on_freeze itself ran past the deadline: it counts as timed out. */
        if (w->ev.event == VSS_EVENT_FREEZE && writer_seq_deadline_passed(&w->seq, clock_monotonic_us())) {
                overran = true;
                ok = false;
                w->ev.failure = VSS_E_WRITERERROR_TIMEOUT;
                snprintf(err, sizeof(err), "on_freeze returned after the freeze deadline (%u ms + %u ms grace)",
                         freeze_timeout_of(w, params), VSS_WRITER_FREEZE_GRACE_MS);
                free(w->ev.failure_message);
                w->ev.failure_message = strdup(err);
        }

        if (ok) {
                if (w->ev.event == VSS_EVENT_IDENTIFY)
                        result = json_pack("{s:b, s:O}", "ok", true, "components", w->components);
                else
                        result = json_pack("{s:b, s:O}", "ok", true, "components", w->ev.metadata);
        } else {
                vss_hresult f = w->ev.failure != VSS_S_OK ? w->ev.failure : VSS_E_WRITERERROR_NONRETRYABLE;
                result = failure_result(f, w->ev.failure_message);
        }
        event_end(w);
        /* Release what on_freeze took before telling vssd, which gave up on us already. */
        if (overran)
                run_local_abort(w, VSS_ABORT_FREEZE_DEADLINE);
        if (!writer_seq_holds(&w->seq)) {
                json_decref(w->set_params);
                w->set_params = NULL;
        }
        if (!result)
                return VSS_E_OUTOFMEMORY;
        if (id < 0) {
                json_decref(result);
                return VSS_S_OK;
        }
        return vss__client_reply(w->client, id, result);
}

/* The connection is gone: abort what is held, then reconnect later or give up. */
static vss_hresult writer_lost(vss_writer *w)
{
        keep_detail(w);
        if (w->client) {
                int fd = vss_client_fd(w->client);
                /* A dead client no longer hands out its fd; the kernel drops a closed fd
                 * from the epoll set by itself, so only a live one needs removing. */
                if (fd >= 0)
                        (void)epoll_ctl(w->epfd, EPOLL_CTL_DEL, fd, NULL);
        }
        w->connected = false;
        run_local_abort(w, VSS_ABORT_CONNECTION_LOST);
        if (w->no_reconnect) {
                /* The old behaviour: the caller hears about it and may subscribe again.
                 * The dead client stays for vss_writer_get_error_detail(). */
                w->subscribed = false;
                return VSS_E_WRITER_INFRASTRUCTURE;
        }
        w->client = vss_client_free(w->client);
        w->backoff_ms = RECONNECT_FIRST_MS;
        w->reconnect_at_us = clock_monotonic_us() + (uint64_t)w->backoff_ms * USEC_PER_MSEC;
        return VSS_S_OK;
}

static void writer_reconnect(vss_writer *w)
{
        vss_hresult hr = writer_register(w, REGISTER_TIMEOUT_MS);

        if (VSS_SUCCEEDED(hr)) {
                w->backoff_ms = RECONNECT_FIRST_MS;
                return;
        }
        /* Whatever the reason (vssd not back yet, a volume not mounted yet, a refusal),
         * the writer tries again: it is the application's lifetime that counts. */
        w->client = vss_client_free(w->client);
        w->connected = false;
        w->backoff_ms = MIN(w->backoff_ms * 2, (uint32_t)RECONNECT_MAX_MS);
        w->reconnect_at_us = clock_monotonic_us() + (uint64_t)w->backoff_ms * USEC_PER_MSEC;
}

static uint64_t next_wakeup(vss_writer *w)
{
        uint64_t t = writer_seq_deadline(&w->seq);

        if (w->subscribed && !w->connected)
                t = MIN(t, w->reconnect_at_us);
        return t;
}

static void arm_timer(vss_writer *w)
{
        uint64_t t = next_wakeup(w);
        struct itimerspec its = { 0 };

        if (t != UINT64_MAX)
                its.it_value = timespec_from_us(t ? t : 1);     /* all zero would disarm */
        (void)timerfd_settime(w->timerfd, TFD_TIMER_ABSTIME, &its, NULL);
}

/* Does everything that is due now, without waiting; *did tells whether anything was. */
static vss_hresult writer_work(vss_writer *w, bool *did)
{
        uint64_t ticks;

        (void)!read(w->timerfd, &ticks, sizeof(ticks));
        while (w->client) {
                _cleanup_json_ json_t *msg = NULL;
                vss_hresult hr;

                if (atomic_load(&w->stop))
                        return VSS_S_OK;
                hr = vss__client_next_request(w->client, 0, -1, &msg);
                if (hr == VSS_S_FALSE)
                        break;
                *did = true;
                if (hr == VSS_S_OK) {
                        /* A failed reply means a dead connection: the next round says so. */
                        hr = writer_handle_request(w, msg);
                        if (hr == VSS_E_OUTOFMEMORY)
                                return hr;
                        continue;
                }
                return writer_lost(w);
        }
        /* Only now, with every message that has arrived handled, may the deadline act. */
        if (writer_seq_deadline_passed(&w->seq, clock_monotonic_us())) {
                run_local_abort(w, VSS_ABORT_FREEZE_DEADLINE);
                *did = true;
        }
        if (w->subscribed && !w->connected && !atomic_load(&w->stop) && clock_monotonic_us() >= w->reconnect_at_us) {
                writer_reconnect(w);
                *did = true;
        }
        return VSS_S_OK;
}

vss_hresult vss_writer_dispatch(vss_writer *w, int timeout_ms)
{
        uint64_t end;
        vss_hresult hr = VSS_S_OK;

        if (!w)
                return VSS_E_INVALIDARG;
        if (!w->subscribed)
                return VSS_E_BAD_STATE;
        if (w->ev.active)
                return VSS_E_BAD_STATE; /* dispatch from inside a handler */

        end = timeout_ms < 0 ? UINT64_MAX : clock_monotonic_us() + (uint64_t)timeout_ms * USEC_PER_MSEC;
        for (;;) {
                bool did = false;
                uint64_t now;

                hr = writer_work(w, &did);
                if (VSS_FAILED(hr) || did || atomic_load(&w->stop))
                        break;
                now = clock_monotonic_us();
                if (now >= end)
                        break;
                struct pollfd p[2] = {
                        { .fd = w->epfd, .events = POLLIN },
                        { .fd = w->stop_fd, .events = POLLIN },
                };
                uint64_t wake = MIN(end, next_wakeup(w));
                if (poll(p, 2, wake == UINT64_MAX ? -1 : ms_until(now, wake)) < 0 && errno != EINTR) {
                        snprintf(w->detail, sizeof(w->detail), "poll: %s", strerror(errno));
                        hr = VSS_E_UNEXPECTED;
                        break;
                }
        }
        arm_timer(w);
        return hr;
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

vss_hresult vss_writer_unsubscribe(vss_writer *w)
{
        if (!w)
                return VSS_E_INVALIDARG;
        if (w->ev.active)
                return VSS_E_BAD_STATE;
        if (!w->subscribed)
                return VSS_S_FALSE;
        /* Leaving while the set is held is losing the connection on purpose. */
        run_local_abort(w, VSS_ABORT_CONNECTION_LOST);
        /* Closing the connection is the unregistration (docs/protocol.md). */
        drop_connection(w);
        w->subscribed = false;
        arm_timer(w);
        return VSS_S_OK;
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
        return w ? w->detail : "";
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

enum vss_abort_reason vss_writer_get_abort_reason(vss_writer *w)
{
        return w && w->ev.active ? w->ev.abort_reason : VSS_ABORT_REQUESTED;
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

size_t vss_writer_get_event_component_count(vss_writer *w)
{
        return json_array_size(event_array(w, "components"));
}

vss_hresult vss_writer_get_event_component(vss_writer *w, size_t i, const char **ret_logical_path,
                                           const char **ret_name)
{
        json_t *c;

        if (!w)
                return VSS_E_INVALIDARG;
        if (!w->ev.active)
                return VSS_E_BAD_STATE;
        c = json_array_get(event_array(w, "components"), i);
        if (!c || !json_get_str(c, "name"))
                return VSS_E_OBJECT_NOT_FOUND;
        if (ret_logical_path)
                *ret_logical_path = json_get_str(c, "logical_path") ?: "";
        if (ret_name)
                *ret_name = json_get_str(c, "name");
        return VSS_S_OK;
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

static bool restore_event(vss_writer *w)
{
        return w && w->ev.active && (w->ev.event == VSS_EVENT_PRE_RESTORE || w->ev.event == VSS_EVENT_POST_RESTORE);
}

const char *vss_writer_get_backup_metadata(vss_writer *w, const char *logical_path, const char *name)
{
        if (!name || !restore_event(w))
                return NULL;
        return json_get_str(event_component(w, logical_path, name), "backup_metadata");
}

enum vss_file_restore_status vss_writer_get_file_restore_status(vss_writer *w, const char *logical_path,
                                                                const char *name)
{
        int s;

        if (!name || !restore_event(w) || w->ev.event != VSS_EVENT_POST_RESTORE)
                return VSS_RS_UNDEFINED;
        s = vss_file_restore_status_from_name(json_get_str(event_component(w, logical_path, name),
                                                           "file_restore_status"));
        return s < 0 ? VSS_RS_UNDEFINED : (enum vss_file_restore_status)s;
}

/* Length of 'prefix' without trailing slashes ("/" stays "/"). */
static size_t path_len(const char *prefix)
{
        size_t n = strlen(prefix);

        while (n > 1 && prefix[n - 1] == '/')
                n--;
        return n;
}

const char *vss_writer_get_new_target(vss_writer *w, const char *path)
{
        const char *best_target = NULL;
        size_t best = 0, i, j;
        json_t *c, *t;

        if (!path || !restore_event(w))
                return NULL;
        json_array_foreach(event_array(w, "components"), i, c)
                json_array_foreach(json_object_get(c, "new_targets"), j, t) {
                        const char *p = json_get_str(t, "path"), *target = json_get_str(t, "target");
                        size_t n;

                        if (!p || !target || !*p)
                                continue;
                        n = path_len(p);
                        /* Whole path components only: /srv/pg covers /srv/pg/x, not /srv/pgx. */
                        if (strncmp(path, p, n) != 0 || (path[n] && path[n] != '/' && !(n == 1 && p[0] == '/')))
                                continue;
                        if (n > best || !best_target) {
                                best = n;
                                best_target = target;
                        }
                }
        if (!best_target)
                return NULL;
        /* Rejoin target and rest with exactly one slash between them. */
        const char *rest = path + best;
        size_t tlen = path_len(best_target);
        if (*rest == '/')
                rest++;
        if (tlen == 1 && best_target[0] == '/')
                tlen = 0;
        free(w->ev.new_target);
        if (asprintf(&w->ev.new_target, "%.*s%s%s", (int)tlen, best_target, *rest || tlen == 0 ? "/" : "", rest) < 0)
                w->ev.new_target = NULL;
        return w->ev.new_target;
}
