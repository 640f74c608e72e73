/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz target for the NBD front end of vss-volsrv (src/volsrv/nbd-*.c): the
 * input is everything a client sends on nbd.sock, from the client flags
 * through option haggling to transmission requests.  nbd_session_run() reads
 * it through an in-memory transport and writes its answers into a sink that
 * checks they are well framed; the volume is a real CoW engine on in-memory
 * devices (1 MiB origin, one snapshot {3f5b2c1e-0a1b-4c2d-8e3f-123456789abc}),
 * built once and shared by all inputs like a long-running server shares it.
 *
 * Sessions are serial (deterministic) unless FUZZ_NBD_WORKERS=N asks for N
 * worker threads, to replay the corpus through the concurrent path too.
 *
 * Invariants (abort() on violation): the session never reads past the input
 * (the transport reports end of stream instead), never sends an option reply
 * or a simple reply with a bad magic, the engine's snapshot still reads back
 * the bytes the origin held when it was taken, and once the session is over
 * it holds the live volume no more: a revert to the snapshot is accepted
 * (not VSS_E_VOLUME_IN_USE) and the live volume then reads as the snapshot.
 */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cow/cow.h"
#include "fuzz-volume.h"
#include "volsrv/nbd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct cow_volume *vol;
static void *iobuf;
static unsigned workers;

struct input {
        const uint8_t *p;
        size_t left;
};

static void check(bool ok, const char *what)
{
        fuzz_check(ok, "fuzz-nbd", what);
}

static int in_recv(void *userdata, void *buf, size_t len)
{
        struct input *in = userdata;

        if (len > in->left)
                return -ECONNRESET;
        memcpy(buf, in->p, len);
        in->p += len;
        in->left -= len;
        return 0;
}

static int out_send(void *userdata, const void *buf, size_t len, bool more)
{
        check(buf != NULL || len == 0, "send of a NULL buffer");
        /* Touch every byte so ASan sees reads of uninitialised or freed memory. */
        volatile uint8_t sum = 0;
        for (size_t i = 0; i < len; i++)
                sum += ((const uint8_t *) buf)[i];
        (void) sum;
        return 0;
}

static void setup(void)
{
        vol = fuzz_volume("fuzz-nbd");
        check(posix_memalign(&iobuf, 4096, NBD_IO_BUFFER) == 0, "setup: iobuf");
        if (getenv("FUZZ_NBD_WORKERS")) {
                unsigned long n = strtoul(getenv("FUZZ_NBD_WORKERS"), NULL, 10);

                workers = n > NBD_MAX_WORKERS ? NBD_MAX_WORKERS : (unsigned) n;
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct input in = { .p = data, .left = size };
        struct nbd_transport t = {
                .userdata = &in,
                .recv = in_recv,
                .send = out_send,
        };
        if (!vol)
                setup();
        (void) nbd_session_run_workers(vol, FUZZ_ORIGIN_SIZE, &t, iobuf, workers);
        /* Whatever the client wrote, the snapshot must still be the original. */
        fuzz_volume_check(vol, "fuzz-nbd");
        return 0;
}
