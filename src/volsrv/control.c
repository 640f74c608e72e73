/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The control socket (RUNDIR/control.sock) and the main loop.  One thread,
 * one poll() over: the listening socket, every client, the signalfd
 * (SIGTERM/SIGINT) and the eventfd the engine's event callback pokes.
 *
 * Framing and message shapes are docs/protocol.md's (src/basic/wire.h);
 * methods are listed in docs/volsrv.md.  Requests run to completion in the
 * loop: each is one engine call, and Snapshot.Create in particular blocks only
 * on the engine's own commit (vssd calls it while the file system is frozen).
 * Replies go through a per-client output buffer written without blocking, so
 * a client that stops reading cannot stall the loop; one that lets more than
 * CLIENT_OUT_MAX pile up is disconnected.
 *
 * Engine events are appended to RUNDIR/events.log and pushed to every client
 * as {"id":null,"method":"Volume.Event","params":{...}}.
 */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "basic/fs-util.h"
#include "basic/macro.h"
#include "basic/time-util.h"
#include "basic/wire.h"
#include "volsrv/volsrv.h"

#define MAX_CLIENTS 64
#define CLIENT_OUT_MAX (8u * 1024u * 1024u)
#define MAX_BAD_LINES 16

struct client {
        int fd;
        struct wire_buf in;
        char *out;
        size_t out_len, out_cap;
        unsigned bad_lines;
        bool closing;   /* flush what is queued, then close */
};

void volsrv_event_cb(const struct cow_event *ev, void *userdata)
{
        struct volsrv *s = userdata;

        pthread_mutex_lock(&s->event_lock);
        if (s->event_count == VOLSRV_EVENT_RING)
                s->events_dropped++;
        else {
                struct volsrv_event *e = &s->events[(s->event_head + s->event_count) % VOLSRV_EVENT_RING];

                e->time_us = clock_realtime_us();
                e->ev = *ev;
                s->event_count++;
        }
        pthread_mutex_unlock(&s->event_lock);
        if (s->event_fd >= 0)
                (void) eventfd_write(s->event_fd, 1);
}

static struct client *client_free(struct client *c)
{
        if (!c)
                return NULL;
        if (c->fd >= 0)
                close(c->fd);
        wire_buf_done(&c->in);
        free(c->out);
        free(c);
        return NULL;
}

static int client_flush(struct client *c)
{
        while (c->out_len > 0) {
                ssize_t n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return 0;
                if (n < 0)
                        return -errno;
                memmove(c->out, c->out + n, c->out_len - (size_t) n);
                c->out_len -= (size_t) n;
        }
        return 0;
}

/* Queues a message (stolen) for the client and tries to send it now. */
static int client_send(struct client *c, json_t *msg)
{
        _cleanup_free_ char *text = NULL;
        size_t len = 0;

        if (!msg)
                return -ENOMEM;
        text = wire_dump(msg, &len);
        json_decref(msg);
        if (!text)
                return -ENOMEM;
        if (c->out_len + len > CLIENT_OUT_MAX)
                return -ENOBUFS;
        if (c->out_len + len > c->out_cap) {
                size_t cap = MAX(c->out_cap * 2, c->out_len + len);
                char *p = realloc(c->out, cap);

                if (!p)
                        return -ENOMEM;
                c->out = p;
                c->out_cap = cap;
        }
        memcpy(c->out + c->out_len, text, len);
        c->out_len += len;
        return client_flush(c);
}

static json_t *engine_error(json_int_t id, int r, const char *what)
{
        char detail[256];

        snprintf(detail, sizeof(detail), "%s: %s", what, strerror(-r));
        return wire_error(id, cow_errno_to_hresult(r), detail);
}

static json_t *m_status(struct volsrv *s, json_int_t id, json_t *params)
{
        struct cow_stats st;
        uint64_t handovers;
        bool taken_over;
        int r;

        r = cow_stats(s->vol, &st);
        if (r < 0)
                return engine_error(id, r, "cow_stats");
        /* Before the call: the order in which its arguments are evaluated is unspecified. */
        taken_over = volsrv_fuse_taken_over(s, &handovers);
        return wire_result(id, json_pack("{s:s, s:s, s:I, s:I, s:s, s:s, s:s, s:I, s:I, s:s, s:I, s:b, s:I}",
                                         "origin", s->origin_path,
                                         "diff", s->diff_path,
                                         "size", (json_int_t) s->size,
                                         "chunk_size", (json_int_t) st.chunk_size,
                                         "fuse_volume", s->fuse_volume,
                                         "fuse_shadows", s->fuse_shadows,
                                         "nbd_socket", s->nbd_path,
                                         "pid", (json_int_t) getpid(),
                                         "snapshots", (json_int_t) st.snapshots,
                                         "events_log", s->events_path,
                                         "open_for_writing", (json_int_t) st.live_writers,
                                         "fuse_taken_over", taken_over,
                                         "fuse_handovers", (json_int_t) handovers));
}

static bool get_shadow_id(json_t *params, vss_id *ret)
{
        return json_get_id(params, "shadow_id", ret);
}

static json_t *m_snapshot_create(struct volsrv *s, json_int_t id, json_t *params)
{
        vss_id sid;
        int r;

        if (!get_shadow_id(params, &sid))
                return wire_error(id, VSS_E_INVALIDARG, "shadow_id: required, a GUID string");
        if (vss_id_is_null(&sid))
                return wire_error(id, VSS_E_INVALIDARG, "shadow_id: the null GUID is not a shadow id");
        r = cow_snapshot_create(s->vol, sid.bytes);
        if (r < 0)
                return engine_error(id, r, "cow_snapshot_create");
        return wire_result(id, NULL);
}

static json_t *m_snapshot_delete(struct volsrv *s, json_int_t id, json_t *params)
{
        vss_id sid;
        int r;

        if (!get_shadow_id(params, &sid))
                return wire_error(id, VSS_E_INVALIDARG, "shadow_id: required, a GUID string");
        r = cow_snapshot_delete(s->vol, sid.bytes);
        if (r < 0)
                return engine_error(id, r, "cow_snapshot_delete");
        return wire_result(id, NULL);
}

static json_t *m_snapshot_list(struct volsrv *s, json_int_t id, json_t *params)
{
        _cleanup_free_ struct cow_snapshot_info *list = NULL;
        json_t *arr;
        size_t n = 0;
        int r;

        r = cow_snapshot_list(s->vol, &list, &n);
        if (r < 0)
                return engine_error(id, r, "cow_snapshot_list");
        arr = json_array();
        for (size_t i = 0; i < n; i++) {
                char bare[37], path[4096];
                vss_id sid;

                memcpy(sid.bytes, list[i].guid, 16);
                volsrv_guid_bare(list[i].guid, bare);
                snprintf(path, sizeof(path), "%s/%s", s->fuse_shadows, bare);
                json_array_append_new(arr, json_pack("{s:o, s:I, s:I, s:I, s:s, s:s}",
                                                     "shadow_id", json_id(&sid),
                                                     "seq", (json_int_t) list[i].seq,
                                                     "ctime_us", (json_int_t) (list[i].ctime_ns / 1000u),
                                                     "copies", (json_int_t) list[i].copies,
                                                     "fuse_path", path,
                                                     "nbd_export", bare));
        }
        return wire_result(id, json_pack("{s:o}", "snapshots", arr));
}

static json_t *m_storage_setmax(struct volsrv *s, json_int_t id, json_t *params)
{
        json_t *v = json_object_get(params, "max_bytes");
        uint64_t max;
        int r;

        if (json_is_null(v))
                max = COW_MAX_UNBOUNDED;
        else if (json_is_integer(v) && json_integer_value(v) > 0)
                max = (uint64_t) json_integer_value(v);
        else
                return wire_error(id, VSS_E_INVALIDARG, "max_bytes: required, a positive integer or null (unbounded)");
        r = cow_set_max(s->vol, max);
        if (r < 0)
                return engine_error(id, r, "cow_set_max");
        return wire_result(id, NULL);
}

static json_t *m_storage_stats(struct volsrv *s, json_int_t id, json_t *params)
{
        struct cow_stats st;
        int r;

        r = cow_stats(s->vol, &st);
        if (r < 0)
                return engine_error(id, r, "cow_stats");
        return wire_result(id, json_pack("{s:I, s:I, s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
                                         "used_bytes", (json_int_t) st.used_bytes,
                                         "allocated_bytes", (json_int_t) st.allocated_bytes,
                                         "max_bytes", st.max_bytes == COW_MAX_UNBOUNDED ?
                                                json_null() : json_integer((json_int_t) st.max_bytes),
                                         "chunk_size", (json_int_t) st.chunk_size,
                                         "snapshots", (json_int_t) st.snapshots,
                                         "origin_bytes", (json_int_t) st.origin_bytes,
                                         "copies", (json_int_t) st.copies,
                                         "commits", (json_int_t) st.commits,
                                         "evictions", (json_int_t) st.evictions,
                                         "checkpoints", (json_int_t) st.checkpoints,
                                         "relocations", (json_int_t) st.relocations,
                                         "writebacks", (json_int_t) st.writebacks,
                                         "dirty_bytes", (json_int_t) st.dirty_bytes,
                                         "throttled", (json_int_t) st.throttled,
                                         "throttle_ms", (json_int_t) (st.throttle_ns / 1000000),
                                         "chunk_waits", (json_int_t) st.chunk_waits,
                                         "chunk_wait_ms", (json_int_t) (st.chunk_wait_ns / 1000000),
                                         "commit_us", (json_int_t) (st.commit_ns / 1000),
                                         "flushes", (json_int_t) st.flushes,
                                         "flush_us", (json_int_t) (st.flush_ns / 1000),
                                         "creates", (json_int_t) st.creates,
                                         "create_us", (json_int_t) (st.create_ns / 1000),
                                         "create_hold_us", (json_int_t) (st.create_hold_ns / 1000),
                                         "create_flush_us", (json_int_t) (st.create_flush_ns / 1000)));
}

/* Starts a revert (cow_revert_start()); the engine's thread copies the chunks
 * back, Snapshot.RevertStatus and the "reverted" event tell when it is done. */
static json_t *m_snapshot_revert(struct volsrv *s, json_int_t id, json_t *params)
{
        vss_id sid;
        int r;

        if (!get_shadow_id(params, &sid))
                return wire_error(id, VSS_E_INVALIDARG, "shadow_id: required, a GUID string");
        r = cow_revert_start(s->vol, sid.bytes);
        if (r == -EBUSY)
                return wire_error(id, VSS_E_VOLUME_IN_USE,
                                  "cow_revert_start: the live volume is open for writing (unmount it and detach "
                                  "its loop device first)");
        if (r < 0)
                return engine_error(id, r, "cow_revert_start");
        log_info("revert to a shadow copy started");
        return wire_result(id, NULL);
}

static json_t *error_json(int err)
{
        vss_hresult hr = cow_errno_to_hresult(err);
        char hex[11];

        wire_format_hresult(hr, hex);
        return json_pack("{s:s, s:s, s:i, s:s}", "hresult", hex, "name", vss_hresult_name(hr),
                         "errno", err < 0 ? -err : err, "strerror", strerror(err < 0 ? -err : err));
}

static json_t *m_snapshot_revert_status(struct volsrv *s, json_int_t id, json_t *params)
{
        static const char *const states[] = {
                [COW_REVERT_NONE] = "none",
                [COW_REVERT_RUNNING] = "running",
                [COW_REVERT_DONE] = "done",
                [COW_REVERT_FAILED] = "failed",
        };
        struct cow_revert_status st;
        char hex[11];
        vss_hresult hr;
        vss_id sid;
        int r;

        r = cow_revert_status(s->vol, &st);
        if (r < 0)
                return engine_error(id, r, "cow_revert_status");
        memcpy(sid.bytes, st.guid, 16);
        /* As IVssAsync::QueryStatus would say it. */
        if (st.state == COW_REVERT_RUNNING)
                hr = VSS_S_ASYNC_PENDING;
        else if (st.error != 0)
                hr = cow_errno_to_hresult(st.error);
        else if (st.state == COW_REVERT_DONE)
                hr = VSS_S_ASYNC_FINISHED;
        else
                hr = VSS_S_OK;
        wire_format_hresult(hr, hex);
        return wire_result(id, json_pack("{s:s, s:o, s:I, s:I, s:I, s:b, s:b, s:s, s:o}",
                                         "state", states[st.state],
                                         "shadow_id", st.state == COW_REVERT_NONE ? json_null() : json_id(&sid),
                                         "chunks_total", (json_int_t) st.chunks_total,
                                         "chunks_done", (json_int_t) st.chunks_done,
                                         "discarded", (json_int_t) st.discarded,
                                         "pending", st.pending,
                                         "resumed", st.resumed,
                                         "hresult", hex,
                                         "error", st.error != 0 ? error_json(st.error) : json_null()));
}

static json_t *m_flush(struct volsrv *s, json_int_t id, json_t *params)
{
        int r = cow_flush(s->vol);

        if (r < 0)
                return engine_error(id, r, "cow_flush");
        return wire_result(id, NULL);
}

static json_t *m_stop(struct volsrv *s, json_int_t id, json_t *params)
{
        log_info("Server.Stop requested");
        s->stop = true;
        return wire_result(id, NULL);
}

static json_t *m_hello(struct volsrv *s, json_int_t id, json_t *params)
{
        json_int_t v = 1;

        if (json_get_int(params, "version", &v) && v > 1)
                return wire_error(id, VSS_E_NOT_SUPPORTED, "version: this server speaks version 1");
        return wire_result(id, json_pack("{s:i, s:s}", "version", 1, "daemon", "vss-volsrv " OPENVSS_VERSION));
}

static const struct {
        const char *name;
        json_t *(*fn)(struct volsrv *s, json_int_t id, json_t *params);
} methods[] = {
        { "Hello",           m_hello },
        { "Volume.Status",   m_status },
        { "Volume.Flush",    m_flush },
        { "Snapshot.Create", m_snapshot_create },
        { "Snapshot.Delete", m_snapshot_delete },
        { "Snapshot.List",   m_snapshot_list },
        { "Snapshot.Revert", m_snapshot_revert },
        { "Snapshot.RevertStatus", m_snapshot_revert_status },
        { "Storage.SetMax",  m_storage_setmax },
        { "Storage.Stats",   m_storage_stats },
        { "Server.Stop",     m_stop },
};

static json_t *dispatch(struct volsrv *s, const struct wire_msg *m)
{
        json_int_t id = m->has_id ? m->id : -1;

        for (size_t i = 0; i < ARRAY_SIZE(methods); i++)
                if (streq(methods[i].name, m->method))
                        return methods[i].fn(s, id, m->params);
        return wire_error(id, VSS_E_NOT_SUPPORTED, "unknown method");
}

/* Returns < 0 when the client must be dropped. */
static int client_input(struct volsrv *s, struct client *c)
{
        ssize_t n;

        n = wire_buf_fill(&c->in, c->fd);
        if (n == -EAGAIN)
                return 0;
        if (n <= 0)
                return n == 0 ? -ECONNRESET : (int) n;

        for (;;) {
                struct wire_msg m = {};
                char err[256];
                char *line;
                size_t len;
                json_t *reply = NULL;
                int r;

                r = wire_buf_next_line(&c->in, &line, &len);
                if (r == 0)
                        return 0;
                if (r < 0) {
                        (void) client_send(c, wire_error(-1, VSS_E_INVALIDARG, "message longer than 1 MiB"));
                        c->closing = true;
                        return 0;
                }
                if (wire_parse(line, len, &m, err, sizeof(err)) != VSS_S_OK) {
                        reply = wire_error(-1, VSS_E_INVALIDARG, err);
                        if (++c->bad_lines >= MAX_BAD_LINES)
                                c->closing = true;
                } else {
                        c->bad_lines = 0;
                        if (m.kind == WIRE_REQUEST)
                                reply = dispatch(s, &m);
                        /* Replies to requests we never send are ignored. */
                }
                wire_msg_done(&m);
                if (reply) {
                        r = client_send(c, reply);
                        if (r < 0)
                                return r;
                }
                if (c->closing || s->stop)
                        return 0;
        }
}

static json_t *event_json(const struct volsrv_event *e)
{
        static const char *const types[] = {
                [COW_EVENT_SNAPSHOT_EVICTED] = "evicted",
                [COW_EVENT_SNAPSHOT_INVALIDATED] = "invalidated",
                [COW_EVENT_SNAPSHOT_LOST] = "lost",
                [COW_EVENT_SNAPSHOT_DISCARDED] = "discarded",
                [COW_EVENT_REVERT_DONE] = "reverted",
        };
        static const char *const messages[] = {
                [COW_EVENT_SNAPSHOT_EVICTED] =
                        "The shadow copy was deleted because the shadow copy storage could not grow "
                        "(VolSnap event 25).",
                [COW_EVENT_SNAPSHOT_INVALIDATED] =
                        "The shadow copy was invalidated because the diff area failed; the volume stays online.",
                [COW_EVENT_SNAPSHOT_LOST] =
                        "The shadow copy was found at start-up but its metadata cannot be proven complete: "
                        "it is not served.",
                [COW_EVENT_SNAPSHOT_DISCARDED] =
                        "The shadow copy was deleted because the volume was reverted to an older shadow copy.",
                [COW_EVENT_REVERT_DONE] =
                        "The revert of the volume to this shadow copy ended (error null: the volume holds "
                        "its content).",
        };
        unsigned t = (unsigned) e->ev.type;
        vss_id sid;
        json_t *o;

        memcpy(sid.bytes, e->ev.guid, 16);
        o = json_pack("{s:I, s:s, s:o, s:s}",
                      "time_us", (json_int_t) e->time_us,
                      "type", t < ARRAY_SIZE(types) ? types[t] : "unknown",
                      "shadow_id", json_id(&sid),
                      "message", t < ARRAY_SIZE(messages) ? messages[t] : "");
        if (!o)
                return NULL;
        if (e->ev.error != 0)
                json_object_set_new(o, "error", error_json(e->ev.error));
        else
                json_object_set_new(o, "error", json_null());
        return o;
}

static void deliver_events(struct volsrv *s, struct client **clients, size_t n_clients)
{
        for (;;) {
                struct volsrv_event e;
                uint64_t dropped;
                json_t *params;

                pthread_mutex_lock(&s->event_lock);
                dropped = s->events_dropped;
                s->events_dropped = 0;
                if (s->event_count == 0) {
                        pthread_mutex_unlock(&s->event_lock);
                        if (dropped > 0)
                                log_info("events: %llu engine events dropped (ring full)", (unsigned long long) dropped);
                        return;
                }
                e = s->events[s->event_head];
                s->event_head = (s->event_head + 1) % VOLSRV_EVENT_RING;
                s->event_count--;
                pthread_mutex_unlock(&s->event_lock);

                params = event_json(&e);
                if (!params)
                        continue;
                {
                        _cleanup_free_ char *line = wire_dump(params, NULL);
                        _cleanup_close_ int fd = -EBADF;
                        char *m = json_dumps(params, JSON_COMPACT);

                        log_info("event: %s", m ? m : "?");
                        free(m);
                        fd = open(s->events_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
                        if (fd < 0 || !line || write_all(fd, line, strlen(line)) < 0)
                                log_warn("events: cannot append to %s: %m", s->events_path);
                }
                for (size_t i = 0; i < n_clients; i++)
                        if (clients[i] && !clients[i]->closing)
                                if (client_send(clients[i], wire_request(-1, "Volume.Event",
                                                                         json_incref(params))) < 0)
                                        clients[i]->closing = true;
                json_decref(params);
        }
}

int volsrv_control_listen(struct volsrv *s, int *ret_fd)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -EBADF;

        if (strlen(s->control_path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, s->control_path, strlen(s->control_path) + 1);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        (void) unlink(s->control_path);
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return -errno;
        (void) chmod(s->control_path, 0600);
        if (listen(fd, 16) < 0)
                return -errno;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

static void accept_client(struct volsrv *s, int listen_fd, struct client **clients)
{
        struct ucred cred;
        socklen_t cl = sizeof(cred);
        struct client *c;
        size_t i;
        int fd;

        fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0)
                return;
        /* Whoever can change snapshots can destroy data: root or our own uid only. */
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0 ||
            (cred.uid != 0 && cred.uid != geteuid())) {
                _cleanup_free_ char *t = wire_dump(wire_error(-1, VSS_E_ACCESSDENIED, "control socket is for root"), NULL);

                if (t)
                        (void) send(fd, t, strlen(t), MSG_NOSIGNAL | MSG_DONTWAIT);
                close(fd);
                return;
        }
        for (i = 0; i < MAX_CLIENTS; i++)
                if (!clients[i])
                        break;
        c = i < MAX_CLIENTS ? calloc(1, sizeof(*c)) : NULL;
        if (!c) {
                log_warn("control: refusing client: too many clients");
                close(fd);
                return;
        }
        c->fd = fd;
        wire_buf_init(&c->in, WIRE_MESSAGE_MAX);
        clients[i] = c;
}

int volsrv_control_run(struct volsrv *s, int listen_fd)
{
        struct client *clients[MAX_CLIENTS] = {};
        int r = 0;

        while (!s->stop) {
                struct pollfd p[3 + MAX_CLIENTS];
                size_t map[MAX_CLIENTS];
                size_t n = 0;

                p[n++] = (struct pollfd) { .fd = listen_fd, .events = POLLIN };
                p[n++] = (struct pollfd) { .fd = s->signal_fd, .events = POLLIN };
                p[n++] = (struct pollfd) { .fd = s->event_fd, .events = POLLIN };
                for (size_t i = 0; i < MAX_CLIENTS; i++) {
                        if (!clients[i])
                                continue;
                        map[n - 3] = i;
                        p[n++] = (struct pollfd) {
                                .fd = clients[i]->fd,
                                .events = (clients[i]->closing ? 0 : POLLIN) |
                                          (clients[i]->out_len > 0 ? POLLOUT : 0),
                        };
                }

                if (poll(p, n, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        break;
                }
                if (p[1].revents) {
                        struct signalfd_siginfo si;

                        if (read(s->signal_fd, &si, sizeof(si)) == sizeof(si)) {
                                log_info("signal %u received: stopping", si.ssi_signo);
                                s->stop = true;
                        }
                }
                if (p[2].revents) {
                        eventfd_t v;

                        (void) eventfd_read(s->event_fd, &v);
                }
                for (size_t k = 3; k < n; k++) {
                        struct client *c = clients[map[k - 3]];
                        bool drop = false;

                        if (p[k].revents & POLLIN)
                                drop = client_input(s, c) < 0;
                        else if (p[k].revents & (POLLHUP | POLLERR))
                                drop = true;
                        if (!drop && client_flush(c) < 0)
                                drop = true;
                        if (!drop && c->closing && c->out_len == 0)
                                drop = true;
                        if (drop)
                                clients[map[k - 3]] = client_free(c);
                }
                /* Events can come from any request above (SetMax evicts), not only the fd. */
                deliver_events(s, clients, MAX_CLIENTS);
                if (p[0].revents)
                        accept_client(s, listen_fd, clients);
        }

        /* Let Server.Stop's reply and pending notifications out before closing. */
        for (size_t i = 0; i < MAX_CLIENTS; i++)
                if (clients[i]) {
                        (void) client_flush(clients[i]);
                        clients[i] = client_free(clients[i]);
                }
        return r;
}
