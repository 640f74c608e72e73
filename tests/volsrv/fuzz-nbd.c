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
#include "cow-test-io.h"
#include "volsrv/nbd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ORIGIN_SIZE (1024u * 1024u)

static const uint8_t snap_guid[16] = {
        0x3f, 0x5b, 0x2c, 0x1e, 0x0a, 0x1b, 0x4c, 0x2d,
        0x8e, 0x3f, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc,
};

static struct cow_volume *vol;
static void *iobuf;
static unsigned workers;

struct input {
        const uint8_t *p;
        size_t left;
};

static void check(bool ok, const char *what)
{
        if (!ok) {
                fprintf(stderr, "fuzz-nbd: invariant violated: %s\n", what);
                abort();
        }
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

static uint8_t pattern(uint64_t off)
{
        return (uint8_t) (off * 7 + (off >> 12));
}

static void setup(void)
{
        struct cow_io *origin, *diff;
        struct cow_format_params p = { .chunk_size = 4096 };
        uint8_t *img;

        img = malloc(ORIGIN_SIZE);
        check(img != NULL, "setup: malloc");
        for (uint64_t i = 0; i < ORIGIN_SIZE; i++)
                img[i] = pattern(i);
        check(cow_io_new_memory(img, ORIGIN_SIZE, &origin) == 0, "setup: origin");
        free(img);
        check(cow_io_new_memory(NULL, 0, &diff) == 0, "setup: diff");
        check(cow_format(origin, diff, &p) == 0, "setup: cow_format");
        check(cow_open(origin, diff, NULL, NULL, &vol) == 0, "setup: cow_open");
        check(cow_snapshot_create(vol, snap_guid) == 0, "setup: snapshot");
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
        uint8_t probe[64];

        if (!vol)
                setup();
        (void) nbd_session_run_workers(vol, ORIGIN_SIZE, &t, iobuf, workers);

        /* Whatever the client wrote, the snapshot must still be the original. */
        for (uint64_t off = 0; off < ORIGIN_SIZE; off += 65536 + 4096) {
                check(cow_snapshot_read(vol, snap_guid, probe, sizeof(probe), off) == 0, "snapshot read");
                for (size_t i = 0; i < sizeof(probe); i++)
                        check(probe[i] == pattern(off + i), "snapshot content changed");
        }
        check(cow_revert(vol, snap_guid) == 0, "revert after the session (a live-volume hold leaked?)");
        for (uint64_t off = 0; off < ORIGIN_SIZE; off += 65536 + 4096) {
                check(cow_read(vol, probe, sizeof(probe), off) == 0, "volume read");
                for (size_t i = 0; i < sizeof(probe); i++)
                        check(probe[i] == pattern(off + i), "volume differs from the snapshot after the revert");
        }
        return 0;
}
