/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * NBD front end: fixed newstyle negotiation and simple-reply transmission.
 *
 * Exports: "" and "volume" are the live volume (read-write); a snapshot GUID
 * (bare or braced, any case) is that shadow copy, read-only.
 *
 * Concurrency (leader/followers): a connection is served by its own thread
 * plus up to NBD_WORKERS more, each owning an NBD_IO_BUFFER buffer.  Whoever
 * holds the connection's reader token reads one request (a write's payload
 * into its own buffer), lets the token go, executes the request and, if the
 * token is still free, takes it back for the next one: a request that never
 * blocks costs no hand-off between threads, so a fast client sees the old
 * serial path.  One idle member stands by and polls every NBD_RESCUE_US; when
 * it finds the token free on two polls in a row (the last reader is blocked
 * in the engine: a write waiting for a diff-area commit, a flush, a cold
 * read) it reads the next request itself, so blocked requests overlap and the
 * engine's group commit sees concurrent writers.  Members are started when a stand-by is needed and
 * none is idle.  Replies go out in completion order under a send lock (simple
 * replies carry the client's cookie).  When every member is executing nobody
 * reads: a client cannot queue more than the pool.  A FLUSH waits for the
 * writes received before it, a DISC or a lost connection for everything in
 * flight.  Writes larger than a buffer are streamed by the token holder,
 * complete before the next request is read.
 * The engine is the only state shared between connections and it is safe for
 * concurrent callers.  NBD_FLAG_CAN_MULTI_CONN is correct because a write is
 * complete in the engine before its reply is sent and cow_flush() makes every
 * completed write of every connection durable.
 *
 * Hostile clients: every length is checked before it is used.  Option
 * payloads are capped (NBD_MAX_OPTION), requests are capped
 * (NBD_MAX_REQUEST), offsets are checked without overflow; a bad magic or
 * an oversized payload that cannot be skipped ends the connection, anything
 * else gets an error reply.  Data moves through the reader's and the workers'
 * fixed buffers in NBD_IO_BUFFER pieces, so a request never allocates.
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
#include <time.h>
#include <unistd.h>

#include "basic/macro.h"
#include "basic/time-util.h"
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

struct request {
        uint16_t flags, type;
        uint64_t cookie, off;
        uint32_t len;
};

struct session;

/* A thread serving the connection: it reads requests when it holds the
 * reader token and executes what it read with its own buffer. */
struct member {
        struct session *s;
        pthread_t thread;
        uint8_t *buf;           /* NBD_IO_BUFFER bytes */

        /* under s->lock */
        bool executing;
        bool is_write;          /* WRITE or WRITE_ZEROES: a later FLUSH waits for it */
        uint64_t seq;           /* arrival order, for FLUSH */
};

struct session {
        struct cow_volume *vol;
        uint64_t vol_size;
        const struct nbd_transport *t;
        uint8_t *buf;           /* the reader's: inline requests, skipped and streamed payloads */
        bool no_zeroes;

        /* the export chosen by NBD_OPT_GO or NBD_OPT_EXPORT_NAME */
        bool snapshot;
        uint8_t guid[16];

        pthread_mutex_t send_lock;
        int error;              /* first failed send (atomic) */

        pthread_mutex_t lock;
        bool token_held;        /* a member is reading from the connection */
        uint64_t token_gen;     /* times the token was taken */
        bool has_standby, standby_deep;
        pthread_cond_t standby_cond;
        unsigned sleepers;      /* members with nothing to do but stand by */
        pthread_cond_t pool_cond;
        unsigned done_waiters;  /* FLUSHes waiting for earlier writes */
        pthread_cond_t done_cond;
        uint64_t next_seq;
        bool stop;
        int read_error;
        unsigned max_members, n_members;
        /* [0] is the connection's own thread, with the caller's buffer */
        struct member members[1 + NBD_MAX_WORKERS];

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

/* ---- transmission ---- */

/* How long (once to twice this) a request may block before the stand-by
 * starts reading the next. */
#define NBD_RESCUE_US 100
/* Stand-by polls that saw the reader waiting for the client before it sleeps. */
#define NBD_STANDBY_IDLE_POLLS 64u

static void *member_thread(void *arg);

/* Serialises replies: the header and payload of one reply must not interleave
 * with another's.  A failed send is remembered and ends the session. */
static void send_lock(struct session *s)
{
        pthread_mutex_lock(&s->send_lock);
}

static void send_unlock(struct session *s)
{
        pthread_mutex_unlock(&s->send_lock);
}

static void session_fail(struct session *s, int r)
{
        int expected = 0;

        /* The first failure wins; it also unblocks a reader waiting in recv(). */
        if (__atomic_compare_exchange_n(&s->error, &expected, r, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST) &&
            s->t->abort)
                s->t->abort(s->t->userdata);
}

static int send_data(struct session *s, const void *buf, size_t len, bool more)
{
        int r = s->t->send(s->t->userdata, buf, len, more);

        if (r < 0)
                session_fail(s, r);
        return r;
}

/* Sends a reply header; the caller holds the send lock. */
static int send_header(struct session *s, uint64_t cookie, int nbd_err, bool more)
{
        uint8_t h[16];

        put32(h, NBD_SIMPLE_REPLY_MAGIC);
        put32(h + 4, (uint32_t) nbd_err);
        put64(h + 8, cookie);
        return send_data(s, h, sizeof(h), more);
}

static int send_reply(struct session *s, uint64_t cookie, int nbd_err)
{
        int r;

        send_lock(s);
        r = send_header(s, cookie, nbd_err, false);
        send_unlock(s);
        return r;
}

/* Reads and drops len payload bytes of a write we refuse (token held). */
static int skip_payload(struct session *s, uint8_t *buf, uint32_t len)
{
        while (len > 0) {
                size_t n = MIN((size_t) len, (size_t) NBD_IO_BUFFER);
                int r = s->t->recv(s->t->userdata, buf, n);

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

static int do_read(struct session *s, uint8_t *buf, uint64_t cookie, uint64_t off, uint32_t len)
{
        bool locked = false;
        int r = 0;

        if (!in_range(s, off, len) || len > NBD_MAX_REQUEST)
                return send_reply(s, cookie, NBD_EINVAL);

        while (len > 0) {
                size_t n = MIN((size_t) len, (size_t) NBD_IO_BUFFER);

                if (s->snapshot)
                        r = cow_snapshot_read(s->vol, s->guid, buf, n, off);
                else
                        r = cow_read(s->vol, buf, n, off);
                if (r < 0) {
                        /* With simple replies an error after the first data byte
                         * cannot be told to the client: drop the connection. */
                        if (locked) {
                                session_fail(s, r);
                                break;
                        }
                        return send_reply(s, cookie, nbd_errno(r));
                }
                /* A reply larger than the buffer keeps the send lock from its
                 * header to its last byte; the engine reads in between. */
                if (!locked) {
                        send_lock(s);
                        locked = true;
                        r = send_header(s, cookie, 0, true);
                        if (r < 0)
                                break;
                }
                r = send_data(s, buf, n, len > n);
                if (r < 0)
                        break;
                off += n;
                len -= n;
        }
        send_unlock(s);
        return r;
}

/* Checks a write before its payload is read: 0 or the NBD error to reply. */
static int write_check(const struct session *s, uint64_t off, uint32_t len)
{
        if (s->snapshot)
                return NBD_EPERM;
        if (!in_range(s, off, len))
                return off > s->vol_size || len == 0 ? NBD_EINVAL : NBD_ENOSPC;
        return 0;
}

static int write_finish(struct session *s, uint64_t cookie, uint16_t flags, int err)
{
        if (err == 0 && (flags & NBD_CMD_FLAG_FUA)) {
                int r = cow_flush(s->vol);

                if (r < 0)
                        err = nbd_errno(r);
        }
        return send_reply(s, cookie, err);
}

/* A checked write whose payload (len <= NBD_IO_BUFFER) is in buf. */
static int do_write_buffered(struct session *s, const uint8_t *buf, uint64_t cookie, uint16_t flags, uint64_t off,
                             uint32_t len)
{
        int r = cow_write(s->vol, buf, len, off);

        return write_finish(s, cookie, flags, r < 0 ? nbd_errno(r) : 0);
}

/* A checked write streamed from the connection through buf (token held). */
static int do_write_streamed(struct session *s, uint8_t *buf, uint64_t cookie, uint16_t flags, uint64_t off,
                             uint32_t len)
{
        int err = 0, r;

        while (len > 0) {
                size_t n = MIN((size_t) len, (size_t) NBD_IO_BUFFER);

                r = s->t->recv(s->t->userdata, buf, n);
                if (r < 0)
                        return r;
                /* Keep consuming the payload after an error so framing holds. */
                if (err == 0) {
                        r = cow_write(s->vol, buf, n, off);
                        if (r < 0)
                                err = nbd_errno(r);
                }
                off += n;
                len -= n;
        }
        return write_finish(s, cookie, flags, err);
}

static int do_write_zeroes(struct session *s, uint8_t *buf, uint64_t cookie, uint16_t flags, uint64_t off,
                           uint32_t len)
{
        bool zeroed = false;
        int r;

        if (s->snapshot)
                return send_reply(s, cookie, NBD_EPERM);
        if (!in_range(s, off, len))
                return send_reply(s, cookie, off > s->vol_size || len == 0 ? NBD_EINVAL : NBD_ENOSPC);

        /* No length cap needed: nothing is transferred, we loop over the buffer. */
        while (len > 0) {
                size_t n = MIN((size_t) len, (size_t) NBD_IO_BUFFER);

                if (!zeroed) {
                        memset(buf, 0, n);
                        zeroed = true;
                }
                r = cow_write(s->vol, buf, n, off);
                if (r < 0)
                        return send_reply(s, cookie, nbd_errno(r));
                off += n;
                len -= n;
        }
        return write_finish(s, cookie, flags, 0);
}

/*
 * NBD_CMD_FLUSH.  cow_flush() makes every write the engine completed durable;
 * a write received before this flush but still running in another member
 * has not completed yet, so wait for those first (stricter than the spec,
 * which only covers writes already replied to).  Writes received after the
 * flush are not waited for: a steady write stream cannot starve it.
 */
static int do_flush(struct session *s, struct member *self, uint64_t cookie, uint64_t off, uint32_t len)
{
        int r;

        if (off != 0 || len != 0)
                return send_reply(s, cookie, NBD_EINVAL);
        if (s->snapshot)
                return send_reply(s, cookie, 0);

        pthread_mutex_lock(&s->lock);
        for (;;) {
                bool pending = false;

                for (unsigned i = 0; i < s->n_members; i++) {
                        struct member *m = &s->members[i];

                        if (m != self && m->executing && m->is_write && m->seq < self->seq)
                                pending = true;
                }
                if (!pending)
                        break;
                s->done_waiters++;
                pthread_cond_wait(&s->done_cond, &s->lock);
                s->done_waiters--;
        }
        pthread_mutex_unlock(&s->lock);

        r = cow_flush(s->vol);
        return send_reply(s, cookie, r < 0 ? nbd_errno(r) : 0);
}

/* Runs one request read_request() validated and, for a write, whose payload is
 * in buf.  Negative errno only when the connection is lost. */
static int execute(struct session *s, struct member *self, uint8_t *buf, const struct request *q)
{
        /* Replies the transport holds back go out before a request that may
         * take long (cow_flush()), not after it. */
        if (s->t->flush && (q->type == NBD_CMD_FLUSH || (q->flags & NBD_CMD_FLAG_FUA))) {
                int r;

                send_lock(s);
                r = s->t->flush(s->t->userdata);
                send_unlock(s);
                if (r < 0) {
                        session_fail(s, r);
                        return r;
                }
        }
        switch (q->type) {
        case NBD_CMD_READ:
                return do_read(s, buf, q->cookie, q->off, q->len);
        case NBD_CMD_WRITE:
                return do_write_buffered(s, buf, q->cookie, q->flags, q->off, q->len);
        case NBD_CMD_WRITE_ZEROES:
                return do_write_zeroes(s, buf, q->cookie, q->flags, q->off, q->len);
        case NBD_CMD_FLUSH:
                return do_flush(s, self, q->cookie, q->off, q->len);
        default:
                return send_reply(s, q->cookie, NBD_EINVAL);
        }
}

/* Starts one more member (s->lock held).  0 or negative errno. */
static int member_start(struct session *s)
{
        struct member *m = &s->members[s->n_members];
        pthread_attr_t attr;
        void *buf;
        int r;

        /* Page-aligned so the engine could hand it to O_DIRECT I/O unchanged. */
        if (posix_memalign(&buf, 4096, NBD_IO_BUFFER) != 0)
                return -ENOMEM;
        *m = (struct member) { .s = s, .buf = buf };
        /* mlockall(MCL_FUTURE) pins whole stacks: keep them small. */
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 256 * 1024);
        r = pthread_create(&m->thread, &attr, member_thread, m);
        pthread_attr_destroy(&attr);
        if (r != 0) {
                free(buf);
                return -r;
        }
        s->n_members++;
        return 0;
}

/*
 * The stand-by (s->lock held): polls every NBD_RESCUE_US for a reader token
 * that stayed free from one poll to the next, i.e. for a member that took a
 * request and has been executing it for at least that long.  Seeing the token
 * free once is not enough: a fast request is being executed about half the
 * time, and taking over then would only add threads fighting for 2 CPUs.
 * Returns true with the token taken, false on stop.  After
 * NBD_STANDBY_IDLE_POLLS polls that found the same reader still waiting for
 * the client, it sleeps until a reader that lets the token go wakes it: an
 * idle connection costs no wake-ups, a busy one about 1/NBD_RESCUE_US.
 */
static bool standby_wait(struct session *s)
{
        uint64_t gen = s->token_gen, free_gen = 0;
        bool free_seen = false;
        unsigned idle = 0;

        s->has_standby = true;
        for (;;) {
                if (s->stop)
                        break;
                if (!s->token_held) {
                        if (free_seen && free_gen == s->token_gen)
                                break;
                        free_seen = true;
                        free_gen = s->token_gen;
                } else
                        free_seen = false;

                if (s->standby_deep)
                        pthread_cond_wait(&s->standby_cond, &s->lock);
                else {
                        struct timespec ts;

                        ts = timespec_from_us(clock_monotonic_us() + NBD_RESCUE_US);
                        (void) pthread_cond_timedwait(&s->standby_cond, &s->lock, &ts);
                }
                if (s->token_gen != gen || !s->token_held) {
                        gen = s->token_gen;
                        idle = 0;
                        s->standby_deep = false;
                } else if (++idle >= NBD_STANDBY_IDLE_POLLS)
                        s->standby_deep = true;
        }
        s->has_standby = false;
        s->standby_deep = false;
        if (s->stop)
                return false;
        s->token_held = true;
        s->token_gen++;
        /* We leave to read: someone else must stand by.  Starting a thread
         * here, not per request, keeps a connection whose requests never
         * block at one reader and one stand-by. */
        if (s->sleepers > 0)
                pthread_cond_signal(&s->pool_cond);
        else if (s->n_members < s->max_members)
                (void) member_start(s);
        return true;
}

/* Takes the reader token (s->lock held): false on stop. */
static bool token_acquire(struct session *s)
{
        for (;;) {
                if (s->stop)
                        return false;
                if (!s->token_held) {
                        s->token_held = true;
                        s->token_gen++;
                        return true;
                }
                if (!s->has_standby)
                        return standby_wait(s);
                s->sleepers++;
                pthread_cond_wait(&s->pool_cond, &s->lock);
                s->sleepers--;
        }
}

/* Ends the session (s->lock held): every member leaves once its request is done. */
static void session_stop(struct session *s)
{
        s->stop = true;
        pthread_cond_broadcast(&s->standby_cond);
        pthread_cond_broadcast(&s->pool_cond);
}

/*
 * Reads one request with the reader token held.  Requests that need no
 * engine work, and writes larger than the buffer (their payload has to be
 * streamed), are answered right here.  Returns 1 when q (and for a write its
 * payload in buf) is to be executed, 0 when it was answered, 2 on
 * NBD_CMD_DISC, a negative errno when the connection is lost or unusable.
 */
static int read_request(struct session *s, uint8_t *buf, struct request *q)
{
        uint8_t h[28];
        int err, r;

        r = s->t->recv(s->t->userdata, h, sizeof(h));
        if (r < 0)
                return r;
        /* A reply failed: the client is gone or broken, stop reading. */
        r = __atomic_load_n(&s->error, __ATOMIC_SEQ_CST);
        if (r < 0)
                return r;
        if (get32(h) != NBD_REQUEST_MAGIC)
                return -EPROTO;
        *q = (struct request) {
                .flags = get16(h + 4),
                .type = get16(h + 6),
                .cookie = get64(h + 8),
                .off = get64(h + 16),
                .len = get32(h + 24),
        };

        switch (q->type) {
        case NBD_CMD_WRITE:
                if (q->len > NBD_MAX_REQUEST)
                        return -EMSGSIZE;
                err = q->flags & ~NBD_CMD_FLAG_FUA ? NBD_EINVAL : write_check(s, q->off, q->len);
                if (err != 0) {
                        r = skip_payload(s, buf, q->len);
                        return r < 0 ? r : send_reply(s, q->cookie, err);
                }
                if (q->len > NBD_IO_BUFFER)
                        /* Too big to park in the buffer: done before the next
                         * request is read. */
                        return do_write_streamed(s, buf, q->cookie, q->flags, q->off, q->len);
                r = s->t->recv(s->t->userdata, buf, q->len);
                return r < 0 ? r : 1;
        case NBD_CMD_READ:
                return q->flags ? send_reply(s, q->cookie, NBD_EINVAL) : 1;
        case NBD_CMD_DISC:
                return 2;
        case NBD_CMD_FLUSH:
                return 1;
        case NBD_CMD_WRITE_ZEROES:
                if (q->flags & ~(NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE))
                        return send_reply(s, q->cookie, NBD_EINVAL);
                return 1;
        default:
                /* TRIM, CACHE, BLOCK_STATUS, RESIZE: not advertised. */
                return send_reply(s, q->cookie, NBD_EINVAL);
        }
}

/*
 * A member's life (leader/followers): take the reader token, read a request,
 * let the token go, execute the request, take the token again if it is still
 * free.  A request that completes quickly thus costs no hand-off at all; one
 * that blocks is rescued by the stand-by within NBD_RESCUE_US.
 */
static void member_run(struct member *m)
{
        struct session *s = m->s;
        bool have_token = false;

        pthread_mutex_lock(&s->lock);
        for (;;) {
                struct request q;
                int r;

                if (!have_token && !token_acquire(s))
                        break;
                have_token = true;
                pthread_mutex_unlock(&s->lock);

                r = read_request(s, m->buf, &q);

                pthread_mutex_lock(&s->lock);
                if (r < 0 || r == 2) {
                        if (r < 0)
                                s->read_error = r;
                        session_stop(s);
                        s->token_held = false;
                        break;
                }
                if (r == 0)
                        continue;

                m->executing = true;
                m->is_write = q.type == NBD_CMD_WRITE || q.type == NBD_CMD_WRITE_ZEROES;
                m->seq = s->next_seq++;
                s->token_held = false;
                have_token = false;
                if (s->standby_deep)
                        pthread_cond_signal(&s->standby_cond);
                pthread_mutex_unlock(&s->lock);

                /* Once the connection is lost, requests still in flight finish
                 * in the engine but their replies are not attempted. */
                if (__atomic_load_n(&s->error, __ATOMIC_SEQ_CST) == 0)
                        (void) execute(s, m, m->buf, &q);

                pthread_mutex_lock(&s->lock);
                m->executing = false;
                if (s->done_waiters > 0)
                        pthread_cond_broadcast(&s->done_cond);
        }
        pthread_mutex_unlock(&s->lock);
}

static void *member_thread(void *arg)
{
        (void) pthread_setname_np(pthread_self(), "nbd-worker");
        member_run(arg);
        return NULL;
}

static int transmission(struct session *s)
{
        struct member *self = &s->members[0];
        int e;

        *self = (struct member) { .s = s, .buf = s->buf };
        s->n_members = 1;
        s->token_held = false;
        /* The first stand-by; further members start only when one is needed. */
        pthread_mutex_lock(&s->lock);
        if (s->max_members > 1)
                (void) member_start(s);
        pthread_mutex_unlock(&s->lock);

        member_run(self);

        /* NBD_CMD_DISC, or a client gone with requests in flight: either way
         * they finish (their buffers and threads are ours) before we return. */
        for (unsigned i = 1; i < s->n_members; i++) {
                pthread_join(s->members[i].thread, NULL);
                free(s->members[i].buf);
        }
        s->n_members = 0;
        if (s->read_error < 0)
                return s->read_error;
        e = __atomic_load_n(&s->error, __ATOMIC_SEQ_CST);
        return e < 0 ? e : 0;
}

int nbd_session_run_workers(struct cow_volume *vol, uint64_t size, const struct nbd_transport *t, void *iobuf,
                            unsigned workers)
{
        _cleanup_free_ struct session *s = NULL;
        pthread_condattr_t ca;
        int r;

        if (!vol || !t || !iobuf || workers > NBD_MAX_WORKERS)
                return -EINVAL;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->vol = vol;
        s->vol_size = size;
        s->t = t;
        s->buf = iobuf;
        s->max_members = 1 + workers;
        pthread_mutex_init(&s->lock, NULL);
        pthread_mutex_init(&s->send_lock, NULL);
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&s->standby_cond, &ca);
        pthread_condattr_destroy(&ca);
        pthread_cond_init(&s->pool_cond, NULL);
        pthread_cond_init(&s->done_cond, NULL);

        r = negotiate(s);
        if (r > 0)
                r = transmission(s);

        pthread_cond_destroy(&s->done_cond);
        pthread_cond_destroy(&s->pool_cond);
        pthread_cond_destroy(&s->standby_cond);
        pthread_mutex_destroy(&s->send_lock);
        pthread_mutex_destroy(&s->lock);
        return r;
}

int nbd_session_run(struct cow_volume *vol, uint64_t size, const struct nbd_transport *t, void *iobuf)
{
        return nbd_session_run_workers(vol, size, t, iobuf, 0);
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
        unsigned workers;
        int listen_fd;
        int stop_fd;
        pthread_t accept_thread;
        bool accept_started;

        pthread_mutex_t lock;
        struct nbd_conn *conns[NBD_MAX_CONNECTIONS];
};

/*
 * The socket side of a connection.  A serial session (no workers) reads and
 * writes the socket from one thread, so it batches: requests are read in as
 * large pieces as the socket holds (one recv() for a client's whole queue of
 * small writes), and replies collect in 'out' until that thread would block
 * in recv(), 'out' is full, or the session asks for a flush (before a FLUSH
 * or FUA request, and at the end).  Requests that arrived together are
 * answered together, and the client wakes once for them, not once per reply.
 * Replies are never held while we wait for the client, so a client that
 * waits for a reply before it sends more cannot deadlock.  With workers,
 * several threads send, and every reply goes out at once.
 */
#define CHAN_IN  (256u * 1024u)
#define CHAN_OUT (64u * 1024u)

struct fd_chan {
        int fd;
        bool batch;
        uint8_t *in, *out;
        size_t in_pos, in_len, out_len;
};

static int send_all(int fd, const uint8_t *p, size_t len, bool more)
{
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

static int fd_flush(void *userdata)
{
        struct fd_chan *c = userdata;
        int r;

        if (c->out_len == 0)
                return 0;
        r = send_all(c->fd, c->out, c->out_len, false);
        c->out_len = 0;
        return r;
}

/* Refills the input buffer: what the socket has, waiting for at least one
 * byte.  Replies held back are sent before we could block waiting for a
 * client that waits for them. */
static ssize_t fd_fill(struct fd_chan *c)
{
        ssize_t n;
        int r;

        if (c->out_len > 0) {
                n = recv(c->fd, c->in, CHAN_IN, MSG_DONTWAIT);
                if (n >= 0 || errno != EAGAIN)
                        return n;
                r = fd_flush(c);
                if (r < 0) {
                        errno = -r;
                        return -1;
                }
        }
        return recv(c->fd, c->in, CHAN_IN, 0);
}

static int fd_recv(void *userdata, void *buf, size_t len)
{
        struct fd_chan *c = userdata;
        uint8_t *p = buf;

        while (len > 0) {
                ssize_t n;

                if (c->in_pos < c->in_len) {
                        size_t m = MIN(len, c->in_len - c->in_pos);

                        memcpy(p, c->in + c->in_pos, m);
                        c->in_pos += m;
                        p += m;
                        len -= m;
                        continue;
                }
                if (c->batch && len < CHAN_IN / 2) {
                        n = fd_fill(c);
                        if (n > 0) {
                                c->in_pos = 0;
                                c->in_len = (size_t) n;
                                continue;
                        }
                } else {
                        /* A large payload goes straight to the caller's buffer. */
                        int r = fd_flush(c);

                        if (r < 0)
                                return r;
                        n = recv(c->fd, p, len, MSG_WAITALL);
                        if (n > 0) {
                                p += n;
                                len -= (size_t) n;
                                continue;
                        }
                }
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                return -ECONNRESET;
        }
        return 0;
}

static int fd_send(void *userdata, const void *buf, size_t len, bool more)
{
        struct fd_chan *c = userdata;
        int r;

        if (!c->batch)
                return send_all(c->fd, buf, len, more);
        /* What is held goes out first when this does not fit, or when this is
         * large enough to be sent from the caller's buffer. */
        if (c->out_len + len > CHAN_OUT || len > CHAN_OUT / 2) {
                r = fd_flush(c);
                if (r < 0)
                        return r;
                if (len > CHAN_OUT / 2)
                        return send_all(c->fd, buf, len, more);
        }
        memcpy(c->out + c->out_len, buf, len);
        c->out_len += len;
        return 0;
}

static void fd_abort(void *userdata)
{
        (void) shutdown(((struct fd_chan *) userdata)->fd, SHUT_RDWR);
}

static void *conn_thread(void *arg)
{
        struct nbd_conn *c = arg;
        struct fd_chan ch = { .fd = c->fd, .batch = c->srv->workers == 0 };
        struct nbd_transport t = {
                .userdata = &ch,
                .recv = fd_recv,
                .send = fd_send,
                .flush = fd_flush,
                .abort = fd_abort,
        };
        void *buf = NULL;
        int r;

        (void) pthread_setname_np(pthread_self(), "nbd-conn");
        if (ch.batch) {
                ch.in = malloc(CHAN_IN);
                ch.out = malloc(CHAN_OUT);
                ch.batch = ch.in && ch.out;
        }
        /* The buffer is taken once per connection, page-aligned so the engine
         * could pass it down to O_DIRECT I/O unchanged. */
        if (posix_memalign(&buf, 4096, NBD_IO_BUFFER) != 0)
                r = -ENOMEM;
        else
                r = nbd_session_run_workers(c->srv->vol, c->srv->size, &t, buf, c->srv->workers);
        (void) fd_flush(&ch);
        free(ch.in);
        free(ch.out);
        if (r < 0 && r != -ECONNRESET && r != -EPIPE)
                log_info("nbd: client disconnected: %s", strerror(-r));
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

        (void) pthread_setname_np(pthread_self(), "nbd-accept");
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
                        log_warn("nbd: refusing client: %u connections already", NBD_MAX_CONNECTIONS);
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
        const char *e;
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
        srv->workers = NBD_WORKERS;
        e = getenv("VSS_VOLSRV_NBD_WORKERS");
        if (e) {
                char *end;
                unsigned long n;

                errno = 0;
                n = strtoul(e, &end, 10);
                if (errno != 0 || end == e || *end != 0 || n > NBD_MAX_WORKERS)
                        log_warn("nbd: ignoring VSS_VOLSRV_NBD_WORKERS=%s (0..%u), using %u", e, NBD_MAX_WORKERS,
                             NBD_WORKERS);
                else
                        srv->workers = (unsigned) n;
        }
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
