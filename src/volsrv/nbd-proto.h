/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The NBD wire format, as far as vss-volsrv speaks it (fixed newstyle
 * negotiation, simple replies), from the public NBD protocol document: the
 * constants, big-endian field access, and the fixed headers (nbd-proto.c).
 * No I/O and no state: nbd-negotiate.c and nbd-transmit.c build on it.
 */

#include <stdbool.h>
#include <stdint.h>

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
#define NBD_REP_ERR_POLICY       (0x80000000u + 2)
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

/* Fixed header sizes. */
#define NBD_GREETING_SIZE       18u     /* NBDMAGIC, IHAVEOPT, handshake flags */
#define NBD_OPTION_HEADER_SIZE  16u     /* IHAVEOPT, option, length */
#define NBD_OPTION_REPLY_SIZE   20u     /* magic, option, reply type, length */
#define NBD_REQUEST_SIZE        28u
#define NBD_SIMPLE_REPLY_SIZE   16u

static inline void put16(uint8_t *p, uint16_t v)
{
        p[0] = v >> 8;
        p[1] = v;
}

static inline void put32(uint8_t *p, uint32_t v)
{
        put16(p, v >> 16);
        put16(p + 2, v);
}

static inline void put64(uint8_t *p, uint64_t v)
{
        put32(p, v >> 32);
        put32(p + 4, v);
}

static inline uint16_t get16(const uint8_t *p)
{
        return (uint16_t) (p[0] << 8 | p[1]);
}

static inline uint32_t get32(const uint8_t *p)
{
        return (uint32_t) get16(p) << 16 | get16(p + 2);
}

static inline uint64_t get64(const uint8_t *p)
{
        return (uint64_t) get32(p) << 32 | get32(p + 4);
}

/* A transmission request (its header; a write's payload follows it). */
struct nbd_request {
        uint16_t flags, type;
        uint64_t cookie, off;
        uint32_t len;
};

/* The NBD error code for a negative errno of the engine. */
int nbd_errno(int r);

void nbd_encode_greeting(uint8_t h[NBD_GREETING_SIZE]);
/* false: not an option header (bad magic). */
bool nbd_decode_option(const uint8_t h[NBD_OPTION_HEADER_SIZE], uint32_t *ret_opt, uint32_t *ret_len);
void nbd_encode_option_reply(uint8_t h[NBD_OPTION_REPLY_SIZE], uint32_t opt, uint32_t type, uint32_t len);
/* false: not a request (bad magic); *ret is filled either way. */
bool nbd_decode_request(const uint8_t h[NBD_REQUEST_SIZE], struct nbd_request *ret);
void nbd_encode_simple_reply(uint8_t h[NBD_SIMPLE_REPLY_SIZE], uint64_t cookie, uint32_t nbd_err);
