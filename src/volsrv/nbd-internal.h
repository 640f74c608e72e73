/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Private to the NBD front end: one session (a client, from the greeting to
 * its disconnect), shared by negotiation (nbd-negotiate.c), which chooses the
 * export, and transmission (nbd-transmit.c), which serves it.  The socket
 * server (nbd-server.c) sees only nbd.h.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "volsrv/nbd-proto.h"
#include "volsrv/nbd.h"

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
        bool live_open;         /* the live export: cow_live_open() until the session ends */

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
/* Negotiation (nbd-negotiate.c): 1 when transmission is to start with the
 * export chosen, 0 after NBD_OPT_ABORT, or a negative errno. */
int nbd__negotiate(struct session *s);
