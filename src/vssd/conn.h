/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* conn.c: client connections, requests and replies. */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "basic/macro.h"
#include "basic/wire.h"
#include "vss/vss.h"
#include "vssd/privilege.h"

struct session;
struct vssd;
struct writer;

#define VSSD_MAX_BAD_LINES 16
#define VSSD_MAX_OUTPUT (8u * 1024 * 1024)

struct conn {
        struct conn *next;
        struct vssd *vssd;
        uint64_t serial;
        int fd;
        pid_t pid;
        uid_t uid;
        gid_t gid;
        gid_t *groups;                  /* supplementary groups, loaded at the first privileged call */
        size_t n_groups;
        bool groups_loaded;
        struct wire_buf in;
        char *out;
        size_t out_len, out_off;
        unsigned bad_lines;
        bool closing;                   /* flush then close */
        bool dead;
        json_int_t next_req_id;
        struct writer *writer;
        struct session *session;
};

int conn_accept(struct vssd *v);
void conn_io(struct vssd *v, struct conn *c, uint32_t events);
void conn_free(struct vssd *v, struct conn *c);
struct conn *conn_by_serial(struct vssd *v, uint64_t serial);
void conn_send(struct vssd *v, struct conn *c, json_t *msg);
void reply_ok(struct vssd *v, uint64_t serial, json_int_t id, json_t *result);
void reply_err(struct vssd *v, uint64_t serial, json_int_t id, vss_hresult hr, const char *fmt, ...) _printf_(5, 6);
void conns_reap(struct vssd *v);
/* May c call 'method', which needs 'need' (privilege.h)?  If not, 'why' says who may. */
bool conn_allowed(struct vssd *v, struct conn *c, enum vssd_privilege need, const char *method, char *why,
                  size_t whylen);
