/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The NBD protocol codec: the fixed headers of the handshake and of the
 * transmission phase, encoded and decoded in one place (big-endian, as the
 * NBD protocol document defines them), and the engine's errnos as NBD error
 * codes.  Callers check lengths and values; this file only moves bytes.
 */

#include <errno.h>

#include "volsrv/nbd-proto.h"

int nbd_errno(int r)
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

void nbd_encode_greeting(uint8_t h[NBD_GREETING_SIZE])
{
        put64(h, NBD_MAGIC);
        put64(h + 8, NBD_OPTS_MAGIC);
        put16(h + 16, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
}

bool nbd_decode_option(const uint8_t h[NBD_OPTION_HEADER_SIZE], uint32_t *ret_opt, uint32_t *ret_len)
{
        if (get64(h) != NBD_OPTS_MAGIC)
                return false;
        *ret_opt = get32(h + 8);
        *ret_len = get32(h + 12);
        return true;
}

void nbd_encode_option_reply(uint8_t h[NBD_OPTION_REPLY_SIZE], uint32_t opt, uint32_t type, uint32_t len)
{
        put64(h, NBD_REP_MAGIC);
        put32(h + 8, opt);
        put32(h + 12, type);
        put32(h + 16, len);
}

bool nbd_decode_request(const uint8_t h[NBD_REQUEST_SIZE], struct nbd_request *ret)
{
        *ret = (struct nbd_request) {
                .flags = get16(h + 4),
                .type = get16(h + 6),
                .cookie = get64(h + 8),
                .off = get64(h + 16),
                .len = get32(h + 24),
        };
        return get32(h) == NBD_REQUEST_MAGIC;
}

void nbd_encode_simple_reply(uint8_t h[NBD_SIMPLE_REPLY_SIZE], uint64_t cookie, uint32_t nbd_err)
{
        put32(h, NBD_SIMPLE_REPLY_MAGIC);
        put32(h + 4, nbd_err);
        put64(h + 8, cookie);
}
