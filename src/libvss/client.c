/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The protocol connection every libvss object is built on.
 *
 * One vss_client is one AF_UNIX stream socket to vssd speaking the JSON Lines
 * protocol of docs/protocol.md.  Calls are blocking: a call sends one request
 * and reads messages until the reply with its id arrives.  Both sides may send
 * requests, so whatever else arrives meanwhile is kept: stray requests from the
 * daemon (Writer.Event on a writer connection) are queued in order for
 * vss__client_next_request(), and on a connection that does not accept
 * requests they are answered at once with VSS_E_NOT_SUPPORTED.
 *
 * Any I/O failure, EOF or loss of framing marks the connection dead; from then
 * on every call fails with VSS_E_WRITER_INFRASTRUCTURE and the detail names the
 * socket and the errno text, so "vssd went away" is never confused with an
 * error the daemon reported.  Writes use MSG_NOSIGNAL: a library must not let
 * a dead peer kill its host with SIGPIPE.
 */

#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "basic/time-util.h"
#include "basic/wire.h"
#include "client-internal.h"

#define DETAIL_MAX 2048

struct vss_client {
        int fd;
        bool accept_requests;
        bool dead;
        char *socket_path;
        struct wire_buf buf;
        json_int_t next_id;
        json_t *queue;          /* array of pending requests from the daemon */
        char detail[DETAIL_MAX];
        /* An error about no request ("id": null), e.g. vssd refusing the connection
         * (max_connections_per_uid): if the connection then closes, that error is the
         * reason, not the lost connection. */
        vss_hresult unsolicited_hr;
        char unsolicited[DETAIL_MAX];
};

void vss__client_set_detail(vss_client *c, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(c->detail, sizeof(c->detail), fmt, ap);
        va_end(ap);
}

bool vss__client_is_connected(vss_client *c)
{
        return c && c->fd >= 0 && !c->dead;
}

static vss_hresult client_lost(vss_client *c, int err, const char *what)
{
        if (!c->dead && VSS_FAILED(c->unsolicited_hr)) {
                vss__client_set_detail(c, "%s", c->unsolicited);
                c->dead = true;
                return c->unsolicited_hr;
        }
        if (!c->dead) {
                if (err)
                        vss__client_set_detail(c, "connection to vssd at %s lost: %s: %s", c->socket_path,
                                               what, strerror(err));
                else
                        vss__client_set_detail(c, "connection to vssd at %s lost: %s", c->socket_path, what);
        }
        c->dead = true;
        return VSS_E_WRITER_INFRASTRUCTURE;
}

vss_hresult vss__client_connect(const char *socket_path, bool accept_requests, vss_client **ret)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -EBADF;
        vss_client *c;

        if (!ret)
                return VSS_E_INVALIDARG;
        if (!socket_path)
                socket_path = vss_default_socket_path();
        if (!socket_path || !*socket_path || strlen(socket_path) >= sizeof(sa.sun_path))
                return VSS_E_INVALIDARG;

        c = calloc(1, sizeof(*c));
        if (!c)
                return VSS_E_OUTOFMEMORY;
        c->fd = -EBADF;
        c->accept_requests = accept_requests;
        c->next_id = 1;
        c->socket_path = strdup(socket_path);
        c->queue = json_array();
        wire_buf_init(&c->buf, WIRE_MESSAGE_MAX);
        if (!c->socket_path || !c->queue) {
                vss_client_free(c);
                return VSS_E_OUTOFMEMORY;
        }
        *ret = c;

        memcpy(sa.sun_path, socket_path, strlen(socket_path) + 1);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return client_lost(c, errno, "socket()");
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                vss__client_set_detail(c, "cannot reach vssd at %s: %s (is vssd running?)", socket_path,
                                       strerror(errno));
                c->dead = true;
                return VSS_E_WRITER_INFRASTRUCTURE;
        }
        c->fd = TAKE_FD(fd);
        return VSS_S_OK;
}

vss_hresult vss_client_connect(const char *socket_path, vss_client **ret)
{
        vss_client *c = NULL;
        vss_hresult hr;

        if (!ret)
                return VSS_E_INVALIDARG;
        hr = vss__client_connect(socket_path, false, &c);
        if (VSS_FAILED(hr)) {
                /* The public API hands out nothing on failure; the detail is lost
                 * with the object, which is why tools use the error's name. */
                vss_client_free(c);
                return hr;
        }
        *ret = c;
        return hr;
}

vss_client *vss_client_free(vss_client *c)
{
        if (!c)
                return NULL;
        if (c->fd >= 0)
                close(c->fd);
        wire_buf_done(&c->buf);
        json_decref(c->queue);
        free(c->socket_path);
        free(c);
        return NULL;
}

/* Sends 'msg' (stolen) as one line. */
/* wire_parse() refuses a reply without an id; an error with "id": null is vssd's word about
 * no request of ours (a refused connection, a line it could not parse): keep it. */
static void client_note_unsolicited(vss_client *c, const char *line, size_t len)
{
        _cleanup_json_ json_t *root = json_loadb(line, len, 0, NULL);
        json_t *err = json_object_get(root, "error");
        vss_hresult hr;

        if (!json_is_object(root) || !json_is_null(json_object_get(root, "id")) || !json_is_object(err) ||
            !wire_parse_hresult(json_object_get(err, "hresult"), &hr) || !VSS_FAILED(hr))
                return;
        c->unsolicited_hr = hr;
        snprintf(c->unsolicited, sizeof(c->unsolicited), "%s",
                 json_is_string(json_object_get(err, "detail")) ? json_string_value(json_object_get(err, "detail"))
                                                                : vss_hresult_message(hr));
}

/* After a failed send: did vssd say why it closed (an error about no request, sent at accept)? */
static void client_take_refusal(vss_client *c)
{
        char buf[4096], errbuf[256];
        ssize_t n;
        int r;

        do
                n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
        while (n < 0 && errno == EINTR);
        if (n <= 0 || wire_buf_append(&c->buf, buf, (size_t)n) < 0)
                return;
        for (;;) {
                struct wire_msg m;
                char *line;
                size_t len;

                r = wire_buf_next_line(&c->buf, &line, &len);
                if (r <= 0)
                        return;
                if (VSS_FAILED(wire_parse(line, len, &m, errbuf, sizeof(errbuf)))) {
                        client_note_unsolicited(c, line, len);
                        continue;
                }
                wire_msg_done(&m);
        }
}

static vss_hresult client_send(vss_client *c, json_t *msg)
{
        _cleanup_free_ char *text = NULL;
        size_t len = 0, done = 0;

        if (!msg)
                return VSS_E_OUTOFMEMORY;
        text = wire_dump(msg, &len);
        json_decref(msg);
        if (!text) {
                vss__client_set_detail(c, "message does not fit the %d-byte protocol limit", WIRE_MESSAGE_MAX);
                return VSS_E_INVALIDARG;
        }
        while (done < len) {
                ssize_t k = send(c->fd, text + done, len - done, MSG_NOSIGNAL);
                if (k < 0) {
                        int e = errno;

                        if (e == EINTR)
                                continue;
                        if (e == EPIPE || e == ECONNRESET)
                                client_take_refusal(c);
                        return client_lost(c, e, "send()");
                }
                done += (size_t)k;
        }
        return VSS_S_OK;
}

/*
 * Reads one complete message, waiting until 'deadline' (monotonic ms, -1
 * forever) or until wake_fd is readable.  Returns VSS_S_OK with *ret_msg set,
 * VSS_S_FALSE on timeout/wake-up, or a failure for a dead connection.
 * Lines that are not valid messages are skipped: the daemon never sends them,
 * and one bad line must not take a writer down.
 */
static vss_hresult client_read_message(vss_client *c, int64_t deadline, int wake_fd, struct wire_msg *ret_msg)
{
        for (;;) {
                char *line, errbuf[256];
                size_t len;
                int r;

                r = wire_buf_next_line(&c->buf, &line, &len);
                if (r == -EMSGSIZE)
                        return client_lost(c, 0, "vssd sent a message longer than the protocol limit");
                if (r > 0) {
                        if (VSS_FAILED(wire_parse(line, len, ret_msg, errbuf, sizeof(errbuf)))) {
                                client_note_unsolicited(c, line, len);
                                continue;
                        }
                        return VSS_S_OK;
                }

                struct pollfd p[2] = {
                        { .fd = c->fd, .events = POLLIN },
                        { .fd = wake_fd, .events = POLLIN },
                };
                int timeout = -1;
                if (deadline >= 0) {
                        int64_t left = deadline - (int64_t)(clock_monotonic_us() / USEC_PER_MSEC);
                        timeout = left > 0 ? (int)MIN(left, (int64_t)INT32_MAX) : 0;
                }
                r = poll(p, wake_fd >= 0 ? 2 : 1, timeout);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        return client_lost(c, errno, "poll()");
                }
                if (p[0].revents) {
                        ssize_t n = wire_buf_fill(&c->buf, c->fd);
                        if (n == 0)
                                return client_lost(c, 0, "vssd closed the connection");
                        if (n < 0 && n != -EAGAIN)
                                return client_lost(c, (int)-n, "read()");
                        continue;
                }
                if (r == 0 || (wake_fd >= 0 && p[1].revents))
                        return VSS_S_FALSE;
        }
}

/* A request from the daemon: queue it, or refuse it on a plain client. */
static vss_hresult client_take_request(vss_client *c, struct wire_msg *m)
{
        if (c->accept_requests) {
                if (json_array_append(c->queue, m->root) < 0)
                        return VSS_E_OUTOFMEMORY;
                return VSS_S_OK;
        }
        if (!m->has_id)
                return VSS_S_OK;
        return vss__client_reply_error(c, m->id, VSS_E_NOT_SUPPORTED, "this connection accepts no requests");
}

vss_hresult vss__client_call_json(vss_client *c, const char *method, json_t *params, json_t **ret_result)
{
        return vss__client_call_json_wait(c, method, params, -1, -1, ret_result);
}

vss_hresult vss__client_call_json_wait(vss_client *c, const char *method, json_t *params, int timeout_ms,
                                       int wake_fd, json_t **ret_result)
{
        int64_t deadline = -1;
        json_int_t id;
        vss_hresult hr;

        if (!c || !method) {
                json_decref(params);
                return VSS_E_INVALIDARG;
        }
        if (!vss__client_is_connected(c)) {
                json_decref(params);
                if (!c->dead || !c->detail[0])
                        vss__client_set_detail(c, "not connected to vssd at %s", c->socket_path);
                return VSS_E_WRITER_INFRASTRUCTURE;
        }
        c->detail[0] = 0;
        id = c->next_id++;
        if (timeout_ms >= 0)
                deadline = (int64_t)(clock_monotonic_us() / USEC_PER_MSEC) + timeout_ms;
        hr = client_send(c, wire_request(id, method, params));
        if (VSS_FAILED(hr))
                return hr;

        for (;;) {
                struct wire_msg m;

                hr = client_read_message(c, deadline, wake_fd, &m);
                if (hr == VSS_S_FALSE) {
                        /* The reply may still come, to a caller that no longer waits: the
                         * connection is of no use any more. */
                        if (deadline >= 0 && (int64_t)(clock_monotonic_us() / USEC_PER_MSEC) >= deadline)
                                vss__client_set_detail(c, "no reply from vssd at %s to %s within %d ms",
                                                       c->socket_path, method, timeout_ms);
                        else
                                vss__client_set_detail(c, "interrupted while waiting for vssd's reply to %s",
                                                       method);
                        c->dead = true;
                        return VSS_E_WRITER_INFRASTRUCTURE;
                }
                if (hr != VSS_S_OK)
                        return VSS_FAILED(hr) ? hr : VSS_E_UNEXPECTED;
                if (m.kind == WIRE_REQUEST) {
                        hr = client_take_request(c, &m);
                        wire_msg_done(&m);
                        if (VSS_FAILED(hr))
                                return hr;
                        continue;
                }
                if (!m.has_id || m.id != id) {
                        /* A reply to nothing we are waiting for (an earlier call
                         * interrupted by an error, or an "id": null error about
                         * a line the daemon could not parse). */
                        if (m.kind == WIRE_ERROR && !m.has_id)
                                vss__client_set_detail(c, "vssd rejected a message: %s",
                                                       m.detail ? m.detail : vss_hresult_message(m.hr));
                        wire_msg_done(&m);
                        continue;
                }
                if (m.kind == WIRE_ERROR) {
                        hr = m.hr;
                        vss__client_set_detail(c, "%s", m.detail ? m.detail : vss_hresult_message(hr));
                        wire_msg_done(&m);
                        return hr;
                }
                if (ret_result)
                        *ret_result = json_incref(m.result);
                wire_msg_done(&m);
                return VSS_S_OK;
        }
}

vss_hresult vss_client_call(vss_client *c, const char *method, const char *params_json, char **ret_result_json)
{
        _cleanup_json_ json_t *result = NULL;
        json_t *params = NULL;
        json_error_t jerr;
        vss_hresult hr;

        if (!c || !method || !*method)
                return VSS_E_INVALIDARG;
        if (params_json) {
                params = json_loads(params_json, JSON_REJECT_DUPLICATES, &jerr);
                if (!params || !json_is_object(params)) {
                        vss__client_set_detail(c, "params of %s must be a JSON object: %s", method,
                                               params ? "not an object" : jerr.text);
                        json_decref(params);
                        return VSS_E_INVALIDARG;
                }
        }
        hr = vss__client_call_json(c, method, params, &result);
        if (VSS_FAILED(hr))
                return hr;
        if (ret_result_json) {
                *ret_result_json = json_dumps(result, JSON_COMPACT | JSON_ENCODE_ANY);
                if (!*ret_result_json)
                        return VSS_E_OUTOFMEMORY;
        }
        return hr;
}

const char *vss_client_get_error_detail(vss_client *c)
{
        return c ? c->detail : "";
}

int vss_client_fd(vss_client *c)
{
        return vss__client_is_connected(c) ? c->fd : -1;
}

vss_hresult vss__client_next_request(vss_client *c, int timeout_ms, int wake_fd, json_t **ret_msg)
{
        int64_t deadline = timeout_ms < 0 ? -1 : (int64_t)(clock_monotonic_us() / USEC_PER_MSEC) + timeout_ms;
        vss_hresult hr;

        for (;;) {
                struct wire_msg m;

                if (json_array_size(c->queue) > 0) {
                        *ret_msg = json_incref(json_array_get(c->queue, 0));
                        json_array_remove(c->queue, 0);
                        return VSS_S_OK;
                }
                if (!vss__client_is_connected(c))
                        return VSS_E_WRITER_INFRASTRUCTURE;
                hr = client_read_message(c, deadline, wake_fd, &m);
                if (hr != VSS_S_OK)
                        return hr;
                if (m.kind == WIRE_REQUEST)
                        hr = client_take_request(c, &m);
                /* Replies nobody waits for are dropped. */
                wire_msg_done(&m);
                if (VSS_FAILED(hr))
                        return hr;
        }
}

vss_hresult vss__client_reply(vss_client *c, json_int_t id, json_t *result)
{
        if (!vss__client_is_connected(c)) {
                json_decref(result);
                return VSS_E_WRITER_INFRASTRUCTURE;
        }
        return client_send(c, wire_result(id, result));
}

vss_hresult vss__client_reply_error(vss_client *c, json_int_t id, vss_hresult hr, const char *detail)
{
        if (!vss__client_is_connected(c))
                return VSS_E_WRITER_INFRASTRUCTURE;
        return client_send(c, wire_error(id, hr, detail));
}
