/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The NBD socket server: RUNDIR/nbd.sock, one thread accepting clients (at
 * most NBD_MAX_CONNECTIONS) and one thread per connection that runs its
 * session (nbd_session_run_workers()) over the socket.  The socket transport
 * below batches on serial sessions; stopping shuts every socket down and
 * joins every thread.
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

#include "basic/log.h"
#include "basic/macro.h"
#include "volsrv/nbd.h"

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
        memcpy(sa.sun_path, path, strlen(path) + 1);

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
