/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The engine and the invariants the volume server's fuzz targets share (fuzz-volume.h). */

#include <stdio.h>
#include <stdlib.h>

#include "cow-test-io.h"
#include "fuzz-volume.h"

const uint8_t fuzz_snap_guid[16] = {
        0x3f, 0x5b, 0x2c, 0x1e, 0x0a, 0x1b, 0x4c, 0x2d,
        0x8e, 0x3f, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc,
};

void fuzz_check(bool ok, const char *target, const char *what)
{
        if (!ok) {
                fprintf(stderr, "%s: invariant violated: %s\n", target, what);
                abort();
        }
}

uint8_t fuzz_pattern(uint64_t off)
{
        return (uint8_t)(off * 7 + (off >> 12));
}

struct cow_volume *fuzz_volume(const char *target)
{
        static struct cow_volume *vol;
        struct cow_io *origin, *diff;
        struct cow_format_params p = { .chunk_size = 4096 };
        uint8_t *img;

        if (vol)
                return vol;
        img = malloc(FUZZ_ORIGIN_SIZE);
        fuzz_check(img != NULL, target, "setup: malloc");
        for (uint64_t i = 0; i < FUZZ_ORIGIN_SIZE; i++)
                img[i] = fuzz_pattern(i);
        fuzz_check(cow_io_new_memory(img, FUZZ_ORIGIN_SIZE, &origin) == 0, target, "setup: origin");
        free(img);
        fuzz_check(cow_io_new_memory(NULL, 0, &diff) == 0, target, "setup: diff");
        fuzz_check(cow_format(origin, diff, &p) == 0, target, "setup: cow_format");
        fuzz_check(cow_open(origin, diff, NULL, NULL, &vol) == 0, target, "setup: cow_open");
        fuzz_check(cow_snapshot_create(vol, fuzz_snap_guid) == 0, target, "setup: snapshot");
        return vol;
}

void fuzz_volume_check(struct cow_volume *vol, const char *target)
{
        uint8_t probe[64];

        for (uint64_t off = 0; off < FUZZ_ORIGIN_SIZE; off += 65536 + 4096) {
                fuzz_check(cow_snapshot_read(vol, fuzz_snap_guid, probe, sizeof(probe), off) == 0, target,
                           "snapshot read");
                for (size_t i = 0; i < sizeof(probe); i++)
                        fuzz_check(probe[i] == fuzz_pattern(off + i), target, "snapshot content changed");
        }
        fuzz_check(cow_revert(vol, fuzz_snap_guid) == 0, target,
                   "revert after the session (a live-volume hold leaked?)");
        for (uint64_t off = 0; off < FUZZ_ORIGIN_SIZE; off += 65536 + 4096) {
                fuzz_check(cow_read(vol, probe, sizeof(probe), off) == 0, target, "volume read");
                for (size_t i = 0; i < sizeof(probe); i++)
                        fuzz_check(probe[i] == fuzz_pattern(off + i), target,
                                   "volume differs from the snapshot after the revert");
        }
}
