/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * NBD transmission: the requests of a session (after nbd-negotiate.c chose
 * its export) served by a small pool of threads, simple replies.
 *
 * Commands: READ, WRITE (FUA), FLUSH, WRITE_ZEROES (FUA, NO_HOLE) and DISC;
 * anything else gets EINVAL.  A snapshot export refuses writes with EPERM.
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
 * Hostile clients: every length is checked before it is used.  Requests are
 * capped (NBD_MAX_REQUEST), offsets are checked without overflow; a bad
 * magic or an oversized write payload (it cannot be skipped) ends the
 * connection, anything else gets an error reply.  Data moves through the
 * reader's and the workers' fixed buffers in NBD_IO_BUFFER pieces, so a
 * request never allocates.
 */

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "basic/macro.h"
#include "basic/time-util.h"
#include "volsrv/nbd-internal.h"

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
        uint8_t h[NBD_SIMPLE_REPLY_SIZE];

        nbd_encode_simple_reply(h, cookie, (uint32_t) nbd_err);
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
static int execute(struct session *s, struct member *self, uint8_t *buf, const struct nbd_request *q)
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
static int read_request(struct session *s, uint8_t *buf, struct nbd_request *q)
{
        uint8_t h[NBD_REQUEST_SIZE];
        int err, r;

        r = s->t->recv(s->t->userdata, h, sizeof(h));
        if (r < 0)
                return r;
        /* A reply failed: the client is gone or broken, stop reading. */
        r = __atomic_load_n(&s->error, __ATOMIC_SEQ_CST);
        if (r < 0)
                return r;
        if (!nbd_decode_request(h, q))
                return -EPROTO;

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
                struct nbd_request q;
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

        r = nbd__negotiate(s);
        if (r > 0)
                r = transmission(s);
        if (s->live_open)
                cow_live_close(vol);

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
