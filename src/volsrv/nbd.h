/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The NBD front end of vss-volsrv: the fixed newstyle handshake and the
 * transmission phase with simple replies, implemented from the public NBD
 * protocol document.  A session runs over a pair of byte callbacks so the
 * fuzz target (tests/volsrv/fuzz-nbd.c) drives exactly the code a socket
 * client reaches.  In transmission up to 'workers' threads of the session's
 * own join the caller's to serve requests concurrently; replies go out of order.
 */

#include <stddef.h>
#include <stdint.h>

#include "cow/cow.h"

/* Largest request we serve; advertised as the maximum block size. */
#define NBD_MAX_REQUEST (32u * 1024u * 1024u)
/* Longest option payload accepted (an export name is at most 4096 bytes). */
#define NBD_MAX_OPTION 8192u
/* I/O is streamed through a per-connection buffer of this size. */
#define NBD_IO_BUFFER (1024u * 1024u)
#define NBD_MAX_CONNECTIONS 64u
/* Threads per connection besides its own (each with an NBD_IO_BUFFER buffer,
 * started on demand) unless VSS_VOLSRV_NBD_WORKERS says otherwise; 0 = serial.
 * Serial by default: since first writes after a snapshot no longer wait for a
 * commit (engine write-back), few requests block, and on 2 vCPUs the stand-by
 * thread cost more than it saved (docs/volsrv.md, NBD front end). */
#define NBD_WORKERS 0u
#define NBD_MAX_WORKERS 16u

struct nbd_transport {
        void *userdata;
        /* Exactly len bytes, or a negative errno (-ECONNRESET at end of stream). */
        int (*recv)(void *userdata, void *buf, size_t len);
        /* All of buf, or a negative errno; 'more' hints that more data follows. */
        int (*send)(void *userdata, const void *buf, size_t len, bool more);
        /* Optional: sends what send() may have buffered.  A transport that
         * buffers also flushes before it blocks in recv(). */
        int (*flush)(void *userdata);
        /* Optional: called once when a reply cannot be sent, to make a recv()
         * blocked in another thread return (a socket's shutdown()). */
        void (*abort)(void *userdata);
};

/*
 * Runs one client from the server's greeting to its disconnect.  iobuf holds
 * NBD_IO_BUFFER bytes owned by the caller (no allocation per request).
 * Returns 0 on an orderly end (NBD_CMD_DISC, NBD_OPT_ABORT), a negative errno
 * when the client misbehaved or the connection broke.
 */
int nbd_session_run(struct cow_volume *vol, uint64_t size, const struct nbd_transport *t, void *iobuf);
/*
 * The same with up to 1 + 'workers' (at most NBD_MAX_WORKERS) requests in
 * flight: recv and send are called from any of the session's threads, recv
 * by one thread at a time, send by one at a time.  workers = 0 is nbd_session_run(): one request at a
 * time, in order, no thread started (deterministic, for the fuzz target).
 */
int nbd_session_run_workers(struct cow_volume *vol, uint64_t size, const struct nbd_transport *t, void *iobuf,
                            unsigned workers);

struct nbd_server;

/* Listens on path (unlinked first) and serves each client in its own thread,
 * with NBD_WORKERS workers (or $VSS_VOLSRV_NBD_WORKERS, 0..NBD_MAX_WORKERS). */
int nbd_server_start(struct cow_volume *vol, uint64_t size, const char *path, struct nbd_server **ret);
/* Stops accepting, disconnects every client, joins every thread; NULL-safe. */
struct nbd_server *nbd_server_stop(struct nbd_server *srv);
