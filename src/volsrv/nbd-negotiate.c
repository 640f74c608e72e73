/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * NBD negotiation: the fixed newstyle handshake, from the server's greeting
 * to the option that starts transmission (NBD_OPT_GO or NBD_OPT_EXPORT_NAME).
 *
 * Exports: "" and "volume" are the live volume (read-write); a snapshot GUID
 * (bare or braced, any case) is that shadow copy, read-only.  A session that
 * starts transmission on the live volume holds it open for writing
 * (cow_live_open()) until it ends; while a revert runs it is refused
 * (NBD_REP_ERR_POLICY, or a close after EXPORT_NAME).  Options:
 * EXPORT_NAME, GO, INFO (NBD_INFO_EXPORT, NBD_INFO_BLOCK_SIZE, NBD_INFO_NAME
 * when asked), LIST and ABORT; every other option gets NBD_REP_ERR_UNSUP.
 *
 * Hostile clients: option payloads are capped (NBD_MAX_OPTION) and read into
 * the session's fixed buffer; an oversized one cannot be skipped (up to 4 GiB)
 * and ends the negotiation, as do unknown client flags, a bad option magic
 * and more than NBD_MAX_OPTIONS options.  Malformed GO/INFO/LIST payloads get
 * NBD_REP_ERR_INVALID, unknown exports NBD_REP_ERR_UNKNOWN (EXPORT_NAME
 * cannot report errors: the protocol says close).
 */

#include <errno.h>
#include <string.h>

#include "basic/macro.h"
#include "volsrv/nbd-internal.h"
#include "volsrv/volsrv.h"

/* Negotiation is bounded too: a client cycling through options forever is cut off. */
#define NBD_MAX_OPTIONS 1024u

static int send_rep(struct session *s, uint32_t opt, uint32_t type, const void *data, uint32_t len)
{
        uint8_t h[NBD_OPTION_REPLY_SIZE];
        int r;

        nbd_encode_option_reply(h, opt, type, len);
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

/* A session on the live volume holds it open for writing, so that a revert
 * waits for its end (and the session is refused while one runs). */
static int live_open(struct session *s)
{
        int r;

        if (s->live_open)
                return 0;
        r = cow_live_open(s->vol);
        if (r >= 0)
                s->live_open = true;
        return r;
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
        if (opt == NBD_OPT_GO && !s->snapshot) {
                r = live_open(s);
                if (r < 0) {
                        static const char msg[] = "the volume is being reverted to a shadow copy";

                        return send_rep(s, opt, NBD_REP_ERR_POLICY, msg, sizeof(msg) - 1);
                }
        }

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

int nbd__negotiate(struct session *s)
{
        uint8_t h[NBD_GREETING_SIZE];
        uint32_t cflags;
        int r;

        nbd_encode_greeting(h);
        r = s->t->send(s->t->userdata, h, NBD_GREETING_SIZE, false);
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
                uint8_t oh[NBD_OPTION_HEADER_SIZE];
                uint32_t opt, len;

                r = s->t->recv(s->t->userdata, oh, sizeof(oh));
                if (r < 0)
                        return r;
                if (!nbd_decode_option(oh, &opt, &len))
                        return -EPROTO;
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
                        if (!s->snapshot) {
                                r = live_open(s);
                                if (r < 0)
                                        return r;
                        }
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
