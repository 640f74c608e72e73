/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Connections: non-blocking reads into a wire_buf, one JSON line at a time,
 * and an output queue written as the socket accepts it.  We never block on a
 * peer: a peer that lets more than VSSD_MAX_OUTPUT pile up is disconnected.
 * Connections are freed only in conns_reap() at the end of a loop iteration,
 * so an epoll event already fetched never points to freed memory.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "vssd/vssd.h"

static void conn_update_events(struct vssd *v, struct conn *c)
{
        struct epoll_event ev = { .data.ptr = c };

        if (c->dead)
                return;
        if (!c->closing)
                ev.events |= EPOLLIN | EPOLLRDHUP;
        if (c->out_len > c->out_off)
                ev.events |= EPOLLOUT;
        (void)epoll_ctl(v->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void conn_kill(struct vssd *v, struct conn *c)
{
        if (c->dead)
                return;
        c->dead = true;
        (void)epoll_ctl(v->epfd, EPOLL_CTL_DEL, c->fd, NULL);
}

int conn_accept(struct vssd *v)
{
        struct ucred cred;
        socklen_t len = sizeof(cred);
        struct conn *c;
        int fd;

        fd = accept4(v->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0)
                return -errno;
        if (v->n_conns >= v->cfg.max_connections) {
                log_warn("refusing a connection: max_connections=%u reached", v->cfg.max_connections);
                close(fd);
                return -EMFILE;
        }
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
                close(fd);
                return -errno;
        }
        c = calloc(1, sizeof(*c));
        if (!c) {
                close(fd);
                return -ENOMEM;
        }
        c->vssd = v;
        c->fd = fd;
        c->pid = cred.pid;
        c->uid = cred.uid;
        c->serial = v->next_serial++;
        c->next_req_id = 1;
        wire_buf_init(&c->in, WIRE_MESSAGE_MAX);
        {
                struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = c };
                if (epoll_ctl(v->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
                        wire_buf_done(&c->in);
                        free(c);
                        close(fd);
                        return -errno;
                }
        }
        c->next = v->conns;
        v->conns = c;
        v->n_conns++;
        log_debug("connection %llu from pid %d uid %u", (unsigned long long)c->serial, (int)c->pid,
                  (unsigned)c->uid);
        return 0;
}

struct conn *conn_by_serial(struct vssd *v, uint64_t serial)
{
        if (serial == 0)
                return NULL;
        for (struct conn *c = v->conns; c; c = c->next)
                if (c->serial == serial && !c->dead)
                        return c;
        return NULL;
}

static void conn_flush(struct vssd *v, struct conn *c)
{
        while (c->out_off < c->out_len) {
                ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                break;
                        conn_kill(v, c);
                        return;
                }
                c->out_off += (size_t)n;
        }
        if (c->out_off == c->out_len) {
                c->out_off = c->out_len = 0;
                if (c->closing) {
                        conn_kill(v, c);
                        return;
                }
        }
        conn_update_events(v, c);
}

void conn_send(struct vssd *v, struct conn *c, json_t *msg)
{
        _cleanup_free_ char *text = NULL;
        size_t n;

        if (!msg)
                return;
        text = wire_dump(msg, &n);
        json_decref(msg);
        if (!c || c->dead)
                return;
        if (!text) {
                log_err("reply to connection %llu too large or out of memory", (unsigned long long)c->serial);
                return;
        }
        if (c->out_len - c->out_off + n > VSSD_MAX_OUTPUT) {
                log_warn("pid %d does not read its replies (%zu bytes queued): disconnecting", (int)c->pid,
                         c->out_len - c->out_off);
                conn_kill(v, c);
                return;
        }
        if (c->out_off > 0 && c->out_off == c->out_len)
                c->out_off = c->out_len = 0;
        {
                char *p = realloc(c->out, c->out_len + n);
                if (!p) {
                        conn_kill(v, c);
                        return;
                }
                c->out = p;
        }
        memcpy(c->out + c->out_len, text, n);
        c->out_len += n;
        conn_flush(v, c);
}

void reply_ok(struct vssd *v, uint64_t serial, json_int_t id, json_t *result)
{
        struct conn *c = conn_by_serial(v, serial);

        if (!c) {
                json_decref(result);
                return;
        }
        conn_send(v, c, wire_result(id, result));
}

void reply_err(struct vssd *v, uint64_t serial, json_int_t id, vss_hresult hr, const char *fmt, ...)
{
        struct conn *c = conn_by_serial(v, serial);
        char detail[2048];
        va_list ap;

        if (!c)
                return;
        va_start(ap, fmt);
        vsnprintf(detail, sizeof(detail), fmt, ap);
        va_end(ap);
        log_debug("-> pid %d: error 0x%08X %s: %s", (int)c->pid, (uint32_t)hr, vss_hresult_name(hr), detail);
        conn_send(v, c, wire_error(id, hr, detail));
}

bool conn_privileged(struct vssd *v, struct conn *c)
{
        return c->uid == 0 || c->uid == v->cfg.allowed_uid;
}

struct method {
        const char *name;
        bool privileged;
        int kind;       /* 0 admin, 1 writer register, 2 writers list, 3 backup, 4 shadows, 5 storage, 6 volumes, 7 previous versions */
};

static const struct method methods[] = {
        { "Hello", false, 0 },
        { "Providers.List", false, 0 },
        { "Volumes.List", false, 0 },
        { "Events.List", false, 0 },
        { "Service.Status", false, 0 },
        { "Writer.Register", true, 1 },
        { "Writers.List", false, 2 },
        { "Backup.GatherWriterMetadata", true, 3 },
        { "Backup.SetContext", true, 3 },
        { "Backup.SetBackupState", true, 3 },
        { "Backup.AddComponent", true, 3 },
        { "Backup.ExcludeWriters", true, 3 },
        { "Backup.StartSnapshotSet", true, 3 },
        { "Backup.AddToSnapshotSet", true, 3 },
        { "Backup.PrepareForBackup", true, 3 },
        { "Backup.DoSnapshotSet", true, 3 },
        { "Backup.GatherWriterStatus", true, 3 },
        { "Backup.BackupComplete", true, 3 },
        { "Backup.AbortBackup", true, 3 },
        { "Backup.End", true, 3 },
        { "Backup.PreRestore", true, 3 },
        { "Backup.PostRestore", true, 3 },
        { "Shadows.Query", false, 4 },
        { "Shadows.Delete", true, 4 },
        { "Shadows.Expose", true, 4 },
        { "Shadows.Unexpose", true, 4 },
        { "Storage.List", false, 5 },
        { "Storage.Add", true, 5 },
        { "Storage.Resize", true, 5 },
        { "Storage.Delete", true, 5 },
        { "Volumes.Create", true, 6 },
        { "Volumes.Delete", true, 6 },
        { "PreviousVersions.List", false, 7 },
        { "PreviousVersions.Add", true, 7 },
        { "PreviousVersions.Delete", true, 7 },
};

static void dispatch(struct vssd *v, struct conn *c, struct wire_msg *m)
{
        json_int_t id = m->has_id ? m->id : -1;
        const struct method *meth = NULL;

        for (size_t i = 0; i < ARRAY_SIZE(methods); i++)
                if (streq(methods[i].name, m->method)) {
                        meth = &methods[i];
                        break;
                }
        log_debug("<- pid %d: %s", (int)c->pid, m->method);
        if (!meth) {
                reply_err(v, c->serial, id, VSS_E_NOT_SUPPORTED, "unknown method '%s'", m->method);
                return;
        }
        if (meth->privileged && !conn_privileged(v, c)) {
                reply_err(v, c->serial, id, VSS_E_ACCESSDENIED, "%s needs uid 0 or allowed_uid %u; caller has uid %u",
                          meth->name, (unsigned)v->cfg.allowed_uid, (unsigned)c->uid);
                return;
        }
        switch (meth->kind) {
        case 0:
                method_admin(v, c, id, m->params, meth->name);
                break;
        case 1:
                method_writer_register(v, c, id, m->params);
                break;
        case 2:
                method_writers_list(v, c, id, m->params);
                break;
        case 3:
                method_backup(v, c, id, m->params, meth->name);
                break;
        case 4:
                method_shadows(v, c, id, m->params, meth->name);
                break;
        case 5:
                method_storage(v, c, id, m->params, meth->name);
                break;
        case 6:
                method_cowvol(v, c, id, m->params, meth->name);
                break;
        case 7:
                method_pubver(v, c, id, m->params, meth->name);
                break;
        }
}

static void handle_line(struct vssd *v, struct conn *c, const char *line, size_t len)
{
        struct wire_msg m;
        char err[256];

        if (wire_parse(line, len, &m, err, sizeof(err)) != VSS_S_OK) {
                c->bad_lines++;
                if (c->bad_lines >= VSSD_MAX_BAD_LINES) {
                        reply_err(v, c->serial, -1, VSS_E_INVALIDARG, "%s; %u bad lines in a row: disconnecting", err,
                                  c->bad_lines);
                        c->closing = true;
                } else
                        reply_err(v, c->serial, -1, VSS_E_INVALIDARG, "%s", err);
                return;
        }
        c->bad_lines = 0;
        if (m.kind == WIRE_REQUEST)
                dispatch(v, c, &m);
        else if (c->writer)
                writer_handle_reply(v, c->writer, &m);
        else
                log_debug("ignoring a reply from pid %d that is not a writer", (int)c->pid);
        wire_msg_done(&m);
}

void conn_io(struct vssd *v, struct conn *c, uint32_t events)
{
        bool eof = false;

        if (c->dead)
                return;
        if (events & EPOLLOUT)
                conn_flush(v, c);
        if (c->dead)
                return;
        if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP)) && !c->closing) {
                /* Bounded work per wakeup so one busy peer cannot starve the others. */
                for (int rounds = 0; rounds < 16 && !c->closing && !c->dead; rounds++) {
                        ssize_t n = wire_buf_fill(&c->in, c->fd);
                        char *line;
                        size_t len;
                        int r;

                        if (n == -EAGAIN)
                                break;
                        if (n <= 0) {
                                eof = true;
                                break;
                        }
                        while (!c->closing && !c->dead && (r = wire_buf_next_line(&c->in, &line, &len)) != 0) {
                                if (r == -EMSGSIZE) {
                                        reply_err(v, c->serial, -1, VSS_E_INVALIDARG,
                                                  "message longer than %d bytes: disconnecting", WIRE_MESSAGE_MAX);
                                        c->closing = true;
                                        break;
                                }
                                handle_line(v, c, line, len);
                        }
                }
        }
        if (c->dead)
                return;
        if (eof) {
                /* Release what the peer owned now; queued replies are flushed if it still reads. */
                c->closing = true;
                conn_kill(v, c);
                return;
        }
        if (c->closing)
                conn_flush(v, c);
        else
                conn_update_events(v, c);
}

void conn_free(struct vssd *v, struct conn *c)
{
        if (c->writer) {
                struct writer *w = c->writer;
                c->writer = NULL;
                writer_closed(v, w);
        }
        if (c->session) {
                struct session *s = c->session;
                c->session = NULL;
                session_release(v, s);
        }
        wire_buf_done(&c->in);
        free(c->out);
        if (c->fd >= 0)
                close(c->fd);
        free(c);
}

void conns_reap(struct vssd *v)
{
        struct conn **p = &v->conns;

        while (*p) {
                struct conn *c = *p;
                if (c->dead) {
                        *p = c->next;
                        v->n_conns--;
                        log_debug("connection %llu of pid %d closed", (unsigned long long)c->serial, (int)c->pid);
                        conn_free(v, c);
                        /* Releasing may kill other connections; restart the scan. */
                        p = &v->conns;
                } else
                        p = &c->next;
        }
}
