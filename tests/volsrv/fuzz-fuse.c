/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz target for vss-volsrv's FUSE protocol (src/volsrv/fuse-proto.c): the
 * input is a stream of requests as the kernel would write them to /dev/fuse,
 * each prefixed by a 2-byte little-endian length (the request as read, which
 * may disagree with the length in its own header).  A real CoW engine on
 * in-memory devices serves them (1 MiB origin, one snapshot), with a fresh
 * shared state (INIT first or not, as the input says) per input.
 *
 * Invariants (abort() on violation): every reply is well framed (out header
 * length = bytes sent, unique = the request's, error 0 or -1..-511, no reply
 * to FORGET/BATCH_FORGET/INTERRUPT), the snapshot still reads back the
 * origin's original bytes, and once every handle the input opened is released
 * (the target releases what the input left open, as the kernel does at
 * umount) the live volume is held no more: a revert to the snapshot succeeds.
 */

#include <errno.h>
#include <linux/fuse.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cow/cow.h"
#include "fuzz-volume.h"
#include "volsrv/fuse-proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct cow_volume *vol;
static struct vfuse_state *state;
static uint8_t *reqbuf, *outbuf;

struct sink {
        uint64_t unique;
        uint32_t opcode;
        unsigned replies;
};

static void check(bool ok, const char *what)
{
        fuzz_check(ok, "fuzz-fuse", what);
}

static int sink_send(void *userdata, const struct iovec *iov, int iovcnt)
{
        struct sink *k = userdata;
        struct fuse_out_header oh;
        size_t total = 0;
        volatile uint8_t sum = 0;

        check(iovcnt >= 1 && iov[0].iov_len == sizeof(oh), "reply without a header");
        memcpy(&oh, iov[0].iov_base, sizeof(oh));
        for (int i = 0; i < iovcnt; i++) {
                total += iov[i].iov_len;
                /* Touch every byte so ASan sees reads of uninitialised or freed memory. */
                for (size_t j = 0; j < iov[i].iov_len; j++)
                        sum += ((const uint8_t *)iov[i].iov_base)[j];
        }
        (void)sum;
        check(oh.len == total, "out header length differs from what was sent");
        if (oh.unique == 0) {
                check(oh.error > 0, "a notification with a bad code");
                return 0;
        }
        check(oh.unique == k->unique, "reply to another request");
        check(oh.error <= 0 && oh.error >= -511, "error out of range");
        check(oh.error == 0 || total == sizeof(oh), "an error reply with a payload");
        check(k->opcode != FUSE_FORGET && k->opcode != FUSE_BATCH_FORGET && k->opcode != FUSE_INTERRUPT,
              "a reply to a request that takes none");
        k->replies++;
        return 0;
}

static void setup(void)
{
        vol = fuzz_volume("fuzz-fuse");
        state = malloc(sizeof(*state));
        reqbuf = aligned_alloc(4096, VFUSE_IN_BUFFER);
        outbuf = aligned_alloc(4096, VFUSE_OUT_BUFFER);
        check(state && reqbuf && outbuf, "setup: buffers");
}

/* What the kernel does at umount: every handle still open is released. */
static void release_all(struct vfuse_ctx *c, struct sink *k)
{
        for (unsigned i = 0; i < VFUSE_SLOTS; i++) {
                uint64_t w = state->slots[i].word;
                struct {
                        struct fuse_in_header h;
                        struct fuse_release_in r;
                } req = {};

                if (!(w & VFUSE_SLOT_USED))
                        continue;
                req.h.len = sizeof(req);
                req.h.opcode = FUSE_RELEASE;
                req.h.unique = 1;
                req.r.fh = ((w >> 32) << 32) | (i + 1);
                k->unique = 1;
                k->opcode = FUSE_RELEASE;
                check(vfuse_handle(c, &req, sizeof(req), outbuf) == 0, "release");
                check(!(state->slots[i].word & VFUSE_SLOT_USED), "a release left its slot in use");
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct sink k = {};
        struct vfuse_ctx c = {
                .size = FUZZ_ORIGIN_SIZE,
                .uid = 0,
                .gid = 0,
                .send = sink_send,
                .send_userdata = &k,
        };
        if (!vol)
                setup();
        c.vol = vol;
        c.st = state;
        vfuse_state_init(state);
        /* The first byte's low bit: a connection whose INIT was answered already
         * (what a replacement server starts from). */
        if (size > 0 && (data[0] & 1)) {
                state->initialized = 1;
                state->proto_minor = 38;
        }
        if (size > 0) {
                data++;
                size--;
        }
        while (size >= 2) {
                size_t len = (size_t)data[0] | (size_t)data[1] << 8;
                struct fuse_in_header h = {};

                data += 2;
                size -= 2;
                if (len > size)
                        len = size;
                if (len > VFUSE_IN_BUFFER)
                        len = VFUSE_IN_BUFFER;
                /* A copy of exactly len bytes, so ASan catches reads past it. */
                memcpy(reqbuf + VFUSE_IN_BUFFER - len, data, len);
                if (len >= sizeof(h))
                        memcpy(&h, data, sizeof(h));
                k.unique = h.unique;
                k.opcode = h.opcode;
                k.replies = 0;
                if (vfuse_handle(&c, reqbuf + VFUSE_IN_BUFFER - len, len, outbuf) == 0)
                        check(k.replies <= 1, "more than one reply to a request");
                else
                        check(k.replies == 0, "a reply to a request that was refused");
                data += len;
                size -= len;
        }
        (void)vfuse_notify_resend(&c);
        release_all(&c, &k);
        fuzz_volume_check(vol, "fuzz-fuse");
        return 0;
}
