/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The wire format of docs/protocol.md: JSON objects, one per line, at most
 * WIRE_MESSAGE_MAX bytes.  wire_buf accumulates bytes from a socket and cuts
 * lines; wire_parse() checks a line is a well-formed request or reply.  Both
 * the daemon and libvss use these, and tests/fuzz/fuzz-wire.c feeds them
 * arbitrary bytes.  The JSON field helpers and the text forms of enums and HRESULTs,
 * which every user of the wire format needs too, are basic/json-util.h and basic/names.h:
 * the tools include those and never this file (tests/layers).
 */

#ifdef OPENVSS_ON_LIBVSS
#error "a program on libvss never sees the wire format: basic/json-util.h and basic/names.h have what it needs (docs/architecture.md)"
#endif

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "basic/json-util.h"
#include "basic/names.h"
#include "vss/vss.h"

#define WIRE_MESSAGE_MAX (1024 * 1024)

struct wire_buf {
        char *data;
        size_t len;     /* bytes held */
        size_t cap;
        size_t max;     /* longest line accepted, newline included */
        size_t scan;    /* bytes already searched for a newline */
        size_t consumed; /* bytes of the last returned line, dropped on the next call */
};

void wire_buf_init(struct wire_buf *b, size_t max);
void wire_buf_done(struct wire_buf *b);
/* Appends raw bytes (for tests and fuzzing). Returns 0 or -ENOMEM. */
int wire_buf_append(struct wire_buf *b, const void *p, size_t n);
/* Reads once from fd. Returns bytes read (>0), 0 at EOF, -EAGAIN, or -errno. */
ssize_t wire_buf_fill(struct wire_buf *b, int fd);
/*
 * Returns 1 and the next complete line (NUL-terminated, newline stripped,
 * valid until the next call) in ret_line and ret_len; 0 when no complete line is
 * buffered; -EMSGSIZE when the pending line is already longer than max (the
 * peer must be disconnected: framing is lost).
 */
int wire_buf_next_line(struct wire_buf *b, char **ret_line, size_t *ret_len);

enum wire_kind {
        WIRE_REQUEST,
        WIRE_RESULT,
        WIRE_ERROR,
};

struct wire_msg {
        json_t *root;           /* owned; release with wire_msg_done() */
        enum wire_kind kind;
        bool has_id;
        json_int_t id;
        const char *method;     /* WIRE_REQUEST */
        json_t *params;         /* WIRE_REQUEST: an object (empty if absent), borrowed */
        json_t *result;         /* WIRE_RESULT: borrowed */
        vss_hresult hr;         /* WIRE_ERROR */
        const char *detail;     /* WIRE_ERROR: may be NULL */
};

/* Parses one line. Returns VSS_S_OK or VSS_E_INVALIDARG with a reason in errbuf. */
vss_hresult wire_parse(const char *line, size_t len, struct wire_msg *ret, char *errbuf, size_t errlen);
void wire_msg_done(struct wire_msg *m);

/* Builders; each steals the json_t passed in (NULL means {}). id < 0 writes "id": null. */
json_t *wire_request(json_int_t id, const char *method, json_t *params);
json_t *wire_result(json_int_t id, json_t *result);
json_t *wire_error(json_int_t id, vss_hresult hr, const char *detail);
/* Compact text with the trailing newline; malloc'ed. NULL on OOM or if it exceeds WIRE_MESSAGE_MAX. */
char *wire_dump(const json_t *msg, size_t *ret_len);
