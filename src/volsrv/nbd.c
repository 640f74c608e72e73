/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * NBD front end: fixed newstyle negotiation and simple-reply transmission.
 *
 * Exports: "" and "volume" are the live volume (read-write); a snapshot GUID
 * (bare or braced, any case) is that shadow copy, read-only.  One thread per
 * connection runs nbd_session_run(), which reads requests one at a time and
 * answers each before reading the next: the engine is the only shared state
 * and it is safe for concurrent callers.  NBD_FLAG_CAN_MULTI_CONN is correct
 * because a write is complete in the engine before its reply is sent and
 * cow_flush() makes every completed write of every connection durable.
 *
 * Hostile clients: every length is checked before it is used.  Option
 * payloads are capped (NBD_MAX_OPTION), requests are capped
 * (NBD_MAX_REQUEST), offsets are checked without overflow; a bad magic or
 * an oversized payload that cannot be skipped ends the connection, anything
 * else gets an error reply.  Data moves through the caller's fixed buffer in
 * NBD_IO_BUFFER pieces, so a request never allocates.
 */

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "basic/macro.h"
#include "volsrv/nbd.h"
#include "volsrv/volsrv.h"

#define NBD_MAGIC               UINT64_C(0x4e42444d41474943) /* "NBDMAGIC" */
#define NBD_OPTS_MAGIC          UINT64_C(0x49484156454f5054) /* "IHAVEOPT" */
#define NBD_REP_MAGIC           UINT64_C(0x0003e889045565a9)
#define NBD_REQUEST_MAGIC       UINT32_C(0x25609513)
#define NBD_SIMPLE_REPLY_MAGIC  UINT32_C(0x67446698)

#define NBD_FLAG_FIXED_NEWSTYLE 0x0001
#define NBD_FLAG_NO_ZEROES      0x0002
#define NBD_FLAG_C_FIXED_NEWSTYLE 0x00000001u
#define NBD_FLAG_C_NO_ZEROES    0x00000002u

#define NBD_OPT_EXPORT_NAME      1
#define NBD_OPT_ABORT            2
#define NBD_OPT_LIST             3
#define NBD_OPT_INFO             6
#define NBD_OPT_GO               7

#define NBD_REP_ACK              1u
#define NBD_REP_SERVER           2u
#define NBD_REP_INFO             3u
#define NBD_REP_ERR_UNSUP        (0x80000000u + 1)
#define NBD_REP_ERR_INVALID      (0x80000000u + 3)
#define NBD_REP_ERR_UNKNOWN      (0x80000000u + 6)
#define NBD_REP_ERR_TOO_BIG      (0x80000000u + 9)

#define NBD_INFO_EXPORT          0
#define NBD_INFO_NAME            1
#define NBD_INFO_DESCRIPTION     2
#define NBD_INFO_BLOCK_SIZE      3

#define NBD_FLAG_HAS_FLAGS       (1u << 0)
#define NBD_FLAG_READ_ONLY       (1u << 1)
#define NBD_FLAG_SEND_FLUSH      (1u << 2)
#define NBD_FLAG_SEND_FUA        (1u << 3)
#define NBD_FLAG_SEND_WRITE_ZEROES (1u << 6)
#define NBD_FLAG_CAN_MULTI_CONN  (1u << 8)

#define NBD_CMD_READ             0
#define NBD_CMD_WRITE            1
#define NBD_CMD_DISC             2
#define NBD_CMD_FLUSH            3
#define NBD_CMD_WRITE_ZEROES     6

#define NBD_CMD_FLAG_FUA         (1u << 0)
#define NBD_CMD_FLAG_NO_HOLE     (1u << 1)

#define NBD_EPERM     1
#define NBD_EIO       5
#define NBD_ENOMEM    12
#define NBD_EINVAL    22
#define NBD_ENOSPC    28
#define NBD_EOVERFLOW 75
#define NBD_ENOTSUP   95

/* Negotiation is bounded too: a client cycling through options forever is cut off. */
#define NBD_MAX_OPTIONS 1024u

struct session {
        struct cow_volume *vol;
        uint64_t vol_size;
        const struct nbd_transport *t;
        uint8_t *buf;
        bool no_zeroes;

        /* the export chosen by NBD_OPT_GO or NBD_OPT_EXPORT_NAME */
        bool snapshot;
        uint8_t guid[16];

        uint8_t opt[NBD_MAX_OPTION + 1];
};

static void put16(uint8_t *p, uint16_t v)
{
        p[0] = v >> 8;
        p[1] = v;
}

static void put32(uint8_t *p, uint32_t v)
{
        put16(p, v >> 16);
        put16(p + 2, v);
}

static void put64(uint8_t *p, uint64_t v)
{
        put32(p, v >> 32);
        put32(p + 4, v);
}

static uint16_t get16(const uint8_t *p)
{
        return (uint16_t) (p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
        return (uint32_t) get16(p) << 16 | get16(p + 2);
}

static uint64_t get64(const uint8_t *p)
{
        return (uint64_t) get32(p) << 32 | get32(p + 4);
}

static int nbd_errno(int r)
{
        switch (r < 0 ? -r : r) {
        case EPERM:
        case EROFS:
        case EACCES:
                return NBD_EPERM;
        case ENOMEM:
                return NBD_ENOMEM;
        case EINVAL:
                return NBD_EINVAL;
        case ENOSPC:
                return NBD_ENOSPC;
        case EOVERFLOW:
                return NBD_EOVERFLOW;
        case EOPNOTSUPP:
                return NBD_ENOTSUP;
        default:
                return NBD_EIO;
        }
}

static int send_rep(struct session *s, uint32_t opt, uint32_t type, const void *data, uint32_t len)
{
        uint8_t h[20];
        int r;

        put64(h, NBD_REP_MAGIC);
        put32(h + 8, opt);
        put32(h + 12, type);
        put32(h + 16, len);
        r = s->t->send(s->t->userdata, h, sizeof(h), len > 0);
        if (r < 0 || len == 0)
                return r;
        return s->t->send(s->t->userdata, data, len, false);
}

/* Resolves an export name; 0 or -ENOENT. */
static int lookup_export(struct session *s, const char *name, size_t len)
{
        struct cow_snapshot_info info;
        char text[64];
        vss_id id;

        if (memchr(name, 0, len))
                return -ENOENT;
        if (len == 0 || (len == 6 && memcmp(name, "volume", 6) == 0)) {
                s->snapshot = false;
                return 0;
        }
        if (len >= sizeof(text))
                return -ENOENT;
        memcpy(text, name, len);
        text[len] = 0;
        if (vss_id_parse(text, &id) != VSS_S_OK)
                return -ENOENT;
        if (volsrv_snapshot_find(s->vol, id.bytes, &info) < 0)
                return -ENOENT;
        s->snapshot = true;
        memcpy(s->guid, id.bytes, 16);
        return 0;
}

static uint16_t export_flags(const struct session *s)
{
        uint16_t f = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_CAN_MULTI_CONN;

        if (s->snapshot)
                f |= NBD_FLAG_READ_ONLY;
        else
                f |= NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_WRITE_ZEROES;
        return f;
}

static int opt_list(struct session *s, uint32_t len)
{
        _cleanup_free_ struct cow_snapshot_info *list = NULL;
        size_t n = 0;
        uint8_t rep[4 + 6 + 64];
        int r;

        if (len != 0)
                return send_rep(s, NBD_OPT_LIST, NBD_REP_ERR_INVALID, NULL, 0);

        put32(rep, 6);
        memcpy(rep + 4, "volume", 6);
        r = send_rep(s, NBD_OPT_LIST, NBD_REP_SERVER, rep, 10);
        if (r < 0)
                return r;
        if (cow_snapshot_list(s->vol, &list, &n) < 0)
                n = 0;
        for (size_t i = 0; i < n; i++) {
                char bare[37];

                volsrv_guid_bare(list[i].guid, bare);
                put32(rep, 36);
                memcpy(rep + 4, bare, 36);
                r = send_rep(s, NBD_OPT_LIST, NBD_REP_SERVER, rep, 40);
                if (r < 0)
                        return r;
        }
        return send_rep(s, NBD_OPT_LIST, NBD_REP_ACK, NULL, 0);
}

/* NBD_OPT_INFO and NBD_OPT_GO.  Returns 1 when transmission starts. */
static int opt_info_go(struct session *s, uint32_t opt, uint32_t len)
{
        const uint8_t *d = s->opt;
        uint32_t name_len;
        uint16_t n_req;
        bool want_name = false;
        uint8_t rep[32];
        int r;

        if (len < 6)
                return send_rep(s, opt, NBD_REP_ERR_INVALID, NULL, 0);
        name_len = get32(d);
        if (name_len > len - 6)
                return send_rep(s, opt, NBD_REP_ERR_INVALID, NULL, 0);
        n_req = get16(d + 4 + name_len);
        if ((uint64_t) 6 + name_len + 2u * n_req != len)
                return send_rep(s, opt, NBD_REP_ERR_INVALID, NULL, 0);
        for (unsigned i = 0; i < n_req; i++)
                if (get16(d + 6 + name_len + 2 * i) == NBD_INFO_NAME)
                        want_name = true;

        if (lookup_export(s, (const char *) d + 4, name_len) < 0)
                return send_rep(s, opt, NBD_REP_ERR_UNKNOWN, NULL, 0);

        put16(rep, NBD_INFO_EXPORT);
        put64(rep + 2, s->vol_size);
        put16(rep + 10, export_flags(s));
        r = send_rep(s, opt, NBD_REP_INFO, rep, 12);
        if (r < 0)
                return r;

        /* Any alignment works (the engine takes byte ranges); 4 KiB is what
         * the chunk-granular copy-on-write prefers. */
        put16(rep, NBD_INFO_BLOCK_SIZE);
        put32(rep + 2, 1);
        put32(rep + 6, 4096);
        put32(rep + 10, NBD_MAX_REQUEST);
        r = send_rep(s, opt, NBD_REP_INFO, rep, 14);
        if (r < 0)
                return r;

        if (want_name) {
                /* d + 2 .. d + 4 is the name length we already consumed: reuse
                 * the option buffer to build the reply in place. */
                uint8_t *p = s->opt + 2;

                put16(p, NBD_INFO_NAME);
                r = send_rep(s, opt, NBD_REP_INFO, p, 2 + name_len);
                if (r < 0)
                        return r;
        }

        r = send_rep(s, opt, NBD_REP_ACK, NULL, 0);
        if (r < 0)
                return r;
        return opt == NBD_OPT_GO ? 1 : 0;
}

static int negotiate(struct session *s)
{
        uint8_t h[18];
        uint32_t cflags;
        int r;

        put64(h, NBD_MAGIC);
        put64(h + 8, NBD_OPTS_MAGIC);
        put16(h + 16, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
        r = s->t->send(s->t->userdata, h, 18, false);
        if (r < 0)
                return r;
        r = s->t->recv(s->t->userdata, h, 4);
        if (r < 0)
                return r;
        cflags = get32(h);
        if (cflags & ~(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES))
                return -EPROTO;
        s->no_zeroes = cflags & NBD_FLAG_C_NO_ZEROES;

        for (unsigned n = 0; n < NBD_MAX_OPTIONS; n++) {
                uint8_t oh[16];
                uint32_t opt, len;

                r = s->t->recv(s->t->userdata, oh, sizeof(oh));
                if (r < 0)
                        return r;
                if (get64(oh) != NBD_OPTS_MAGIC)
                        return -EPROTO;
                opt = get32(oh + 8);
                len = get32(oh + 12);
                if (len > NBD_MAX_OPTION) {
                        /* Skipping it would mean reading up to 4 GiB for nothing. */
                        (void) send_rep(s, opt, NBD_REP_ERR_TOO_BIG, NULL, 0);
                        return -EMSGSIZE;
                }
                if (len > 0) {
                        r = s->t->recv(s->t->userdata, s->opt, len);
                        if (r < 0)
                                return r;
                }
                s->opt[len] = 0;

                switch (opt) {
                case NBD_OPT_EXPORT_NAME: {
                        uint8_t rep[10 + 124] = {};

                        /* No way to report an error here: the protocol says close. */
                        if (lookup_export(s, (const char *) s->opt, len) < 0)
                                return -ENOENT;
                        put64(rep, s->vol_size);
                        put16(rep + 8, export_flags(s));
                        r = s->t->send(s->t->userdata, rep, s->no_zeroes ? 10 : sizeof(rep), false);
                        return r < 0 ? r : 1;
                }
                case NBD_OPT_ABORT:
                        (void) send_rep(s, opt, NBD_REP_ACK, NULL, 0);
                        return 0;
                case NBD_OPT_LIST:
                        r = opt_list(s, len);
                        break;
                case NBD_OPT_INFO:
                case NBD_OPT_GO:
                        r = opt_info_go(s, opt, len);
                        if (r == 1)
                                return 1;
                        break;
                default:
                        /* STARTTLS, STRUCTURED_REPLY, meta contexts, extended headers... */
                        r = send_rep(s, opt, NBD_REP_ERR_UNSUP, NULL, 0);
                        break;
                }
                if (r < 0)
                        return r;
        }
        return -EPROTO;
}

static int send_reply(struct session *s, uint64_t cookie, int nbd_err, bool more)
{
        uint8_t h[16];

        put32(h, NBD_SIMPLE_REPLY_MAGIC);
        put32(h + 4, (uint32_t) nbd_err);
        put64(h + 8, cookie);
        return s->t->send(s->t->userdata, h, sizeof(h), more);
}

/* Reads and drops len payload bytes of a write we refuse. */
static int skip_payload(struct session *s, uint32_t len)
{
        while (len > 0) {
                size_t n = MIN((size_t) len, (size_t) NBD_IO_BUFFER);
                int r = s->t->recv(s->t->userdata, s->buf, n);

                if (r < 0)
                        return r;
                len -= n;
        }
        return 0;
}

static bool in_range(const struct session *s, uint64_t off, uint32_t len)
{
        return len > 0 && off <= s->vol_size && len <= s->vol_size - off;
}

static int do_read(struct session *s, uint64_t cookie, uint64_t off, uint32_t len)
{
        bool header_sent = false;
        int r;

        if (!in_range(s, off, len) || len > NBD_MAX_REQUEST)
                return send_reply(s, cookie, NBD_EINVAL, false);

        while (len > 0) {
                size_t n = MIN((size_t) len, (size_t) NBD_IO_BUFFER);

                if (s->snapshot)
                        r = cow_snapshot_read(s->vol, s->guid, s->buf, n, off);
                else
                        r = cow_read(s->vol, s->buf, n, off);
                if (r < 0) {
                        /* With simple replies an error after the first data byte
                         * cannot be told to the client: drop the connection. */
                        if (header_sent)
                                return r;
                        return send_reply(s, cookie, nbd_errno(r), false);
                }
                if (!header_sent) {
                        r = send_reply(s, cookie, 0, true);
                        if (r < 0)
                                return r;
                        header_sent = true;
                }
                r = s->t->send(s->t->userdata, s->buf, n, len > n);
                if (r < 0)
                        return r;
                off += n;
                len -= n;
        }
        return 0;
}

static int do_write(struct session *s, uint64_t cookie, uint16_t flags, uint64_t off, uint32_t len)
{
        int err = 0, r;

        if (len > NBD_MAX_REQUEST)
                return -EMSGSIZE;
        if (s->snapshot)
                err = NBD_EPERM;
        else if (!in_range(s, off, len))
                err = off > s->vol_size || len == 0 ? NBD_EINVAL : NBD_ENOSPC;
        if (err != 0) {
                r = skip_payload(s, len);
                return r < 0 ? r : send_reply(s, cookie, err, false);
        }

        while (len > 0) {
                size_t n = MIN((size_t) len, (size_t) NBD_IO_BUFFER);

                r = s->t->recv(s->t->userdata, s->buf, n);
                if (r < 0)
                        return r;
                /* Keep consuming the payload after an error so framing holds. */
                if (err == 0) {
                        r = cow_write(s->vol, s->buf, n, off);
                        if (r < 0)
                                err = nbd_errno(r);
                }
                off += n;
                len -= n;
        }
        if (err == 0 && (flags & NBD_CMD_FLAG_FUA)) {
                r = cow_flush(s->vol);
                if (r < 0)
                        err = nbd_errno(r);
        }
        return send_reply(s, cookie, err, false);
}

static int do_write_zeroes(struct session *s, uint64_t cookie, uint16_t flags, uint64_t off, uint32_t len)
{
        bool zeroed = false;
        int r;

        if (s->snapshot)
                return send_reply(s, cookie, NBD_EPERM, false);
        if (!in_range(s, off, len))
                return send_reply(s, cookie, off > s->vol_size || len == 0 ? NBD_EINVAL : NBD_ENOSPC, false);

        /* No length cap needed: nothing is transferred, we loop over the buffer. */
        while (len > 0) {
                size_t n = MIN((size_t) len, (size_t) NBD_IO_BUFFER);

                if (!zeroed) {
                        memset(s->buf, 0, n);
                        zeroed = true;
                }
                r = cow_write(s->vol, s->buf, n, off);
                if (r < 0)
                        return send_reply(s, cookie, nbd_errno(r), false);
                off += n;
                len -= n;
        }
        if (flags & NBD_CMD_FLAG_FUA) {
                r = cow_flush(s->vol);
                if (r < 0)
                        return send_reply(s, cookie, nbd_errno(r), false);
        }
        return send_reply(s, cookie, 0, false);
}

static int transmission(struct session *s)
{
        for (;;) {
                uint8_t h[28];
                uint16_t flags, type;
                uint64_t cookie, off;
                uint32_t len;
                int r;

                r = s->t->recv(s->t->userdata, h, sizeof(h));
                if (r < 0)
                        return r;
                if (get32(h) != NBD_REQUEST_MAGIC)
                        return -EPROTO;
                flags = get16(h + 4);
                type = get16(h + 6);
                cookie = get64(h + 8);
                off = get64(h + 16);
                len = get32(h + 24);

                if (type == NBD_CMD_WRITE) {
                        if (flags & ~NBD_CMD_FLAG_FUA) {
                                r = skip_payload(s, len > NBD_MAX_REQUEST ? 0 : len);
                                if (r < 0 || len > NBD_MAX_REQUEST)
                                        return r < 0 ? r : -EMSGSIZE;
                                r = send_reply(s, cookie, NBD_EINVAL, false);
                        } else
                                r = do_write(s, cookie, flags, off, len);
                } else if (type == NBD_CMD_READ) {
                        r = flags ? send_reply(s, cookie, NBD_EINVAL, false) : do_read(s, cookie, off, len);
                } else if (type == NBD_CMD_DISC) {
                        return 0;
                } else if (type == NBD_CMD_FLUSH) {
                        int err = 0;

                        if (off != 0 || len != 0)
                                err = NBD_EINVAL;
                        else if (!s->snapshot) {
                                r = cow_flush(s->vol);
                                if (r < 0)
                                        err = nbd_errno(r);
                        }
                        r = send_reply(s, cookie, err, false);
                } else if (type == NBD_CMD_WRITE_ZEROES) {
                        if (flags & ~(NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE))
                                r = send_reply(s, cookie, NBD_EINVAL, false);
                        else
                                r = do_write_zeroes(s, cookie, flags, off, len);
                } else
                        /* TRIM, CACHE, BLOCK_STATUS, RESIZE: not advertised. */
                        r = send_reply(s, cookie, NBD_EINVAL, false);
                if (r < 0)
                        return r;
        }
}

int nbd_session_run(struct cow_volume *vol, uint64_t size, const struct nbd_transport *t, void *iobuf)
{
        _cleanup_free_ struct session *s = NULL;
        int r;

        if (!vol || !t || !iobuf)
                return -EINVAL;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->vol = vol;
        s->vol_size = size;
        s->t = t;
        s->buf = iobuf;

        r = negotiate(s);
        if (r <= 0)
                return r;
        return transmission(s);
}

/* ---- socket server ---- */

struct nbd_conn {
        struct nbd_server *srv;
        int fd;
        pthread_t thread;
        bool done;
};

struct nbd_server {
        struct cow_volume *vol;
        uint64_t size;
        int listen_fd;
        int stop_fd;
        pthread_t accept_thread;
        bool accept_started;

        pthread_mutex_t lock;
        struct nbd_conn *conns[NBD_MAX_CONNECTIONS];
};

static int fd_recv(void *userdata, void *buf, size_t len)
{
        int fd = *(int *) userdata;
        uint8_t *p = buf;

        while (len > 0) {
                ssize_t n = recv(fd, p, len, MSG_WAITALL);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return -ECONNRESET;
                p += n;
                len -= (size_t) n;
        }
        return 0;
}

static int fd_send(void *userdata, const void *buf, size_t len, bool more)
{
        int fd = *(int *) userdata;
        const uint8_t *p = buf;

        while (len > 0) {
                ssize_t n = send(fd, p, len, MSG_NOSIGNAL | (more ? MSG_MORE : 0));

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                p += n;
                len -= (size_t) n;
        }
        return 0;
}

static void *conn_thread(void *arg)
{
        struct nbd_conn *c = arg;
        struct nbd_transport t = {
                .userdata = &c->fd,
                .recv = fd_recv,
                .send = fd_send,
        };
        void *buf = NULL;
        int r;

        /* The buffer is taken once per connection, page-aligned so the engine
         * could pass it down to O_DIRECT I/O unchanged. */
        if (posix_memalign(&buf, 4096, NBD_IO_BUFFER) != 0)
                r = -ENOMEM;
        else
                r = nbd_session_run(c->srv->vol, c->srv->size, &t, buf);
        if (r < 0 && r != -ECONNRESET && r != -EPIPE)
                vlog("nbd: client disconnected: %s", strerror(-r));
        free(buf);
        shutdown(c->fd, SHUT_RDWR);
        pthread_mutex_lock(&c->srv->lock);
        c->done = true;
        pthread_mutex_unlock(&c->srv->lock);
        return NULL;
}

/* Joins the threads of finished connections; with 'all', disconnects the rest first. */
static void reap(struct nbd_server *srv, bool all)
{
        for (unsigned i = 0; i < NBD_MAX_CONNECTIONS; i++) {
                struct nbd_conn *c;
                bool done;

                pthread_mutex_lock(&srv->lock);
                c = srv->conns[i];
                done = c && c->done;
                if (c && all && !done)
                        shutdown(c->fd, SHUT_RDWR);
                pthread_mutex_unlock(&srv->lock);
                if (!c || (!done && !all))
                        continue;
                pthread_join(c->thread, NULL);
                close(c->fd);
                pthread_mutex_lock(&srv->lock);
                srv->conns[i] = NULL;
                pthread_mutex_unlock(&srv->lock);
                free(c);
        }
}

static void *accept_thread(void *arg)
{
        struct nbd_server *srv = arg;
        pthread_attr_t attr;

        /* mlockall(MCL_FUTURE) pins whole stacks: keep them small. */
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 256 * 1024);

        for (;;) {
                struct pollfd p[2] = {
                        { .fd = srv->listen_fd, .events = POLLIN },
                        { .fd = srv->stop_fd, .events = POLLIN },
                };
                struct nbd_conn *c;
                unsigned slot;
                int fd;

                if (poll(p, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                if (p[1].revents)
                        break;
                fd = accept4(srv->listen_fd, NULL, NULL, SOCK_CLOEXEC);
                if (fd < 0)
                        continue;
                reap(srv, false);

                pthread_mutex_lock(&srv->lock);
                for (slot = 0; slot < NBD_MAX_CONNECTIONS; slot++)
                        if (!srv->conns[slot])
                                break;
                pthread_mutex_unlock(&srv->lock);
                if (slot == NBD_MAX_CONNECTIONS) {
                        vlog("nbd: refusing client: %u connections already", NBD_MAX_CONNECTIONS);
                        close(fd);
                        continue;
                }
                c = calloc(1, sizeof(*c));
                if (!c) {
                        close(fd);
                        continue;
                }
                c->srv = srv;
                c->fd = fd;
                pthread_mutex_lock(&srv->lock);
                srv->conns[slot] = c;
                if (pthread_create(&c->thread, &attr, conn_thread, c) != 0) {
                        srv->conns[slot] = NULL;
                        pthread_mutex_unlock(&srv->lock);
                        close(fd);
                        free(c);
                        continue;
                }
                pthread_mutex_unlock(&srv->lock);
        }
        pthread_attr_destroy(&attr);
        return NULL;
}

int nbd_server_start(struct cow_volume *vol, uint64_t size, const char *path, struct nbd_server **ret)
{
        _cleanup_free_ struct nbd_server *srv = NULL;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -EBADF, efd = -EBADF;
        pthread_attr_t attr;
        int r;

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);

        srv = calloc(1, sizeof(*srv));
        if (!srv)
                return -ENOMEM;
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        (void) unlink(path);
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return -errno;
        (void) chmod(path, 0600);
        if (listen(fd, 64) < 0)
                return -errno;
        efd = eventfd(0, EFD_CLOEXEC);
        if (efd < 0)
                return -errno;

        srv->vol = vol;
        srv->size = size;
        srv->listen_fd = fd;
        srv->stop_fd = efd;
        pthread_mutex_init(&srv->lock, NULL);
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 256 * 1024);
        r = pthread_create(&srv->accept_thread, &attr, accept_thread, srv);
        pthread_attr_destroy(&attr);
        if (r != 0)
                return -r;
        srv->accept_started = true;
        TAKE_FD(fd);
        TAKE_FD(efd);
        *ret = TAKE_PTR(srv);
        return 0;
}

struct nbd_server *nbd_server_stop(struct nbd_server *srv)
{
        if (!srv)
                return NULL;
        if (srv->accept_started) {
                (void) eventfd_write(srv->stop_fd, 1);
                pthread_join(srv->accept_thread, NULL);
        }
        reap(srv, true);
        close(srv->listen_fd);
        close(srv->stop_fd);
        pthread_mutex_destroy(&srv->lock);
        free(srv);
        return NULL;
}
