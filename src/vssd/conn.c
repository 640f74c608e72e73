/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Connections: non-blocking reads into a wire_buf, one JSON line at a time,
 * and an output queue written as the socket accepts it.  We never block on a
 * peer: a peer that lets more than VSSD_MAX_OUTPUT pile up is disconnected.
 * Connections are freed only in conns_reap() at the end of a loop iteration,
 * so an epoll event already fetched never points to freed memory.
 */

#include <errno.h>
#include <grp.h>
#include <pwd.h>
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

/* Says why before closing, so that the client reports this error rather than a lost connection. */
static void refuse_connection(int fd, const char *detail)
{
        _cleanup_free_ char *text = NULL;
        json_t *msg = wire_error(-1, VSS_E_ACCESSDENIED, detail);
        size_t len;

        if (!msg)
                return;
        text = wire_dump(msg, &len);
        json_decref(msg);
        /* A fresh socket's buffer takes one short line; never block on the peer. */
        if (text)
                (void)send(fd, text, len, MSG_NOSIGNAL | MSG_DONTWAIT);
}

int conn_accept(struct vssd *v)
{
        struct ucred cred;
        socklen_t len = sizeof(cred);
        char detail[256];
        struct conn *c;
        int fd;

        fd = accept4(v->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0)
                return -errno;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        if (v->n_conns >= v->cfg.max_connections) {
                snprintf(detail, sizeof(detail), "connection refused: vssd has %u connections "
                         "(max_connections=%u in vssd.conf)", (unsigned)v->n_conns, v->cfg.max_connections);
                refuse_connection(fd, detail);
                log_warn("refusing a connection of pid %d uid %u: max_connections=%u reached", (int)cred.pid,
                         (unsigned)cred.uid, v->cfg.max_connections);
                close(fd);
                return -EMFILE;
        }
        if (cred.uid != 0) {
                unsigned n = 0;

                for (struct conn *o = v->conns; o; o = o->next)
                        if (!o->dead && o->uid == cred.uid)
                                n++;
                /* One user cannot take the connections every other user and writer needs. */
                if (n >= v->cfg.max_connections_per_uid) {
                        snprintf(detail, sizeof(detail), "connection refused: uid %u already has %u connections "
                                 "to vssd (max_connections_per_uid=%u in vssd.conf)", (unsigned)cred.uid, n,
                                 v->cfg.max_connections_per_uid);
                        refuse_connection(fd, detail);
                        log_warn("refusing a connection of pid %d: uid %u already has %u connections "
                                 "(max_connections_per_uid=%u)", (int)cred.pid, (unsigned)cred.uid, n,
                                 v->cfg.max_connections_per_uid);
                        close(fd);
                        return -EUSERS;
                }
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
        c->gid = cred.gid;
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

/* ---- who the peer is --------------------------------------------------------------- */

static int add_gid(gid_t **groups, size_t *n, gid_t g)
{
        gid_t *p;

        for (size_t i = 0; i < *n; i++)
                if ((*groups)[i] == g)
                        return 0;
        p = realloc(*groups, (*n + 1) * sizeof(gid_t));
        if (!p)
                return -ENOMEM;
        p[(*n)++] = g;
        *groups = p;
        return 0;
}

/*
 * The peer's groups, gathered once per connection at its first privileged call:
 * the supplementary groups of the connecting process (SO_PEERGROUPS: what
 * setpriv, sg or a unit's SupplementaryGroups= gave it) and those the user
 * database gives its uid (getgrouplist: a user just added to a group counts
 * without logging in again).
 */
static void conn_load_groups(struct conn *c)
{
        struct passwd pw, *pwres = NULL;
        char buf[16384];
        gid_t *list = NULL;
        socklen_t len = 0;
        int n;

        if (c->groups_loaded)
                return;
        c->groups_loaded = true;

        if (getsockopt(c->fd, SOL_SOCKET, SO_PEERGROUPS, NULL, &len) < 0 && errno == ERANGE && len > 0) {
                list = malloc(len);
                if (list && getsockopt(c->fd, SOL_SOCKET, SO_PEERGROUPS, list, &len) == 0)
                        for (size_t i = 0; i < len / sizeof(gid_t); i++)
                                (void)add_gid(&c->groups, &c->n_groups, list[i]);
                free(list);
                list = NULL;
        }

        if (getpwuid_r(c->uid, &pw, buf, sizeof(buf), &pwres) != 0 || !pwres)
                return;
        n = 32;
        for (int tries = 0; tries < 8; tries++) {
                int want = n;
                gid_t *p = realloc(list, (size_t)want * sizeof(gid_t));

                if (!p)
                        break;
                list = p;
                if (getgrouplist(pwres->pw_name, pwres->pw_gid, list, &want) >= 0) {
                        for (int i = 0; i < want; i++)
                                (void)add_gid(&c->groups, &c->n_groups, list[i]);
                        break;
                }
                if (want <= n || want > 65536)
                        break;
                n = want;
        }
        free(list);
}

/* ---- dispatch ------------------------------------------------------------------------ */

static void handle_writer_register(struct vssd *v, struct conn *c, json_int_t id, json_t *params, const char *m)
{
        method_writer_register(v, c, id, params);
}

static void handle_writers_list(struct vssd *v, struct conn *c, json_int_t id, json_t *params, const char *m)
{
        method_writers_list(v, c, id, params);
}

typedef void (*method_handler)(struct vssd *v, struct conn *c, json_int_t id, json_t *params, const char *method);

struct method {
        const char *name;
        enum vssd_privilege need;
        method_handler handler;
};

/* Every method vssd serves, with the privilege it needs (docs/protocol.md, "Privileges"). */
static const struct method methods[] = {
        { "Hello", PRIV_NONE, method_admin },
        { "Providers.List", PRIV_NONE, method_admin },
        { "Volumes.List", PRIV_NONE, method_admin },
        { "Events.List", PRIV_NONE, method_admin },
        { "Service.Status", PRIV_NONE, method_admin },
        { "Cluster.Hosts", PRIV_NONE, method_admin },
        { "Writer.Register", PRIV_WRITER, handle_writer_register },
        { "Writers.List", PRIV_NONE, handle_writers_list },
        { "Backup.GatherWriterMetadata", PRIV_ADMIN, method_backup },
        { "Backup.SetContext", PRIV_ADMIN, method_backup },
        { "Backup.SetBackupState", PRIV_ADMIN, method_backup },
        { "Backup.AddComponent", PRIV_ADMIN, method_backup },
        { "Backup.ExcludeWriters", PRIV_ADMIN, method_backup },
        { "Backup.StartSnapshotSet", PRIV_ADMIN, method_backup },
        { "Backup.AddToSnapshotSet", PRIV_ADMIN, method_backup },
        { "Backup.PrepareForBackup", PRIV_ADMIN, method_backup },
        { "Backup.DoSnapshotSet", PRIV_ADMIN, method_backup },
        { "Backup.GatherWriterStatus", PRIV_ADMIN, method_backup },
        { "Backup.BackupComplete", PRIV_ADMIN, method_backup },
        { "Backup.AbortBackup", PRIV_ADMIN, method_backup },
        { "Backup.End", PRIV_ADMIN, method_backup },
        { "Backup.PreRestore", PRIV_ADMIN, method_backup },
        { "Backup.PostRestore", PRIV_ADMIN, method_backup },
        { "Shadows.Query", PRIV_NONE, method_shadows },
        { "Shadows.Delete", PRIV_ADMIN, method_shadows },
        { "Shadows.Expose", PRIV_ADMIN, method_shadows },
        { "Shadows.Unexpose", PRIV_ADMIN, method_shadows },
        { "Shadows.Revert", PRIV_ADMIN, method_shadows },
        { "Storage.List", PRIV_NONE, method_storage },
        { "Storage.Add", PRIV_ADMIN, method_storage },
        { "Storage.Resize", PRIV_ADMIN, method_storage },
        { "Storage.Delete", PRIV_ADMIN, method_storage },
        { "Volumes.Create", PRIV_ADMIN, method_cowvol },
        { "Volumes.Delete", PRIV_ADMIN, method_cowvol },
        { "PreviousVersions.List", PRIV_NONE, method_pubver },
        { "PreviousVersions.Add", PRIV_ADMIN, method_pubver },
        { "PreviousVersions.Delete", PRIV_ADMIN, method_pubver },
};

bool conn_allowed(struct vssd *v, struct conn *c, enum vssd_privilege need, const char *method, char *why,
                  size_t whylen)
{
        struct peer_identity peer = { .uid = c->uid, .gid = c->gid };

        if (need == PRIV_NONE || c->uid == 0)
                return true;
        conn_load_groups(c);
        peer.groups = c->groups;
        peer.n_groups = c->n_groups;
        return privilege_allows(&v->cfg, need, &peer, method, why, whylen);
}

static void dispatch(struct vssd *v, struct conn *c, struct wire_msg *m)
{
        json_int_t id = m->has_id ? m->id : -1;
        const struct method *meth = NULL;
        char why[512];

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
        if (!conn_allowed(v, c, meth->need, meth->name, why, sizeof(why))) {
                log_info("refused %s (%s privilege) to pid %d uid %u: %s", meth->name, privilege_name(meth->need),
                         (int)c->pid, (unsigned)c->uid, why);
                reply_err(v, c->serial, id, VSS_E_ACCESSDENIED, "%s", why);
                return;
        }
        meth->handler(v, c, id, m->params, meth->name);
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
        free(c->groups);
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
