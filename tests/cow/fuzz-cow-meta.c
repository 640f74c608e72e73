/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz target for the diff-area metadata loader.  Input: one flag byte, then
 * the diff-area image.  Flag bit 0 makes the loader ignore checksums, so that
 * mutations get past the crc32c and reach the record validation.  The image
 * is opened through the in-memory I/O layer over a fixed 1 MiB origin; when
 * it opens, every snapshot is read and the volume written, to prove that
 * whatever the loader accepted is consistent enough to use.  It must never
 * crash, hang or leak.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cow/cow-format.h"
#include "cow/cow.h"
#include "cow-test-io.h"
#include "fuzz-cow.h"

#define FUZZ_ORIGIN (1u << 20)

static uint8_t *origin_image(void)
{
        uint8_t *o = malloc(FUZZ_ORIGIN);

        if (o)
                for (size_t i = 0; i < FUZZ_ORIGIN; i++)
                        o[i] = (uint8_t) (i * 7 + (i >> 12));
        return o;
}

static void ignore_event(const struct cow_event *ev, void *userdata)
{
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct cow_io *o = NULL, *d = NULL;
        struct cow_volume *v = NULL;
        uint8_t *oimg, buf[8192];

        if (size < 1 || size > (8u << 20))
                return 0;
        oimg = origin_image();
        if (!oimg)
                return 0;
        cow_format_ignore_checksums = data[0] & 1;
        if (cow_io_new_memory(oimg, FUZZ_ORIGIN, &o) < 0 || cow_io_new_memory(data + 1, size - 1, &d) < 0)
                goto out;
        if (cow_open(o, d, ignore_event, NULL, &v) == 0) {
                struct cow_snapshot_info *l;
                size_t n;
                uint8_t g[16] = { 0xfe };

                if (cow_snapshot_list(v, &l, &n) == 0) {
                        for (size_t i = 0; i < n; i++)
                                for (uint64_t off = 0; off < FUZZ_ORIGIN; off += 65536)
                                        (void) cow_snapshot_read(v, l[i].guid, buf, sizeof(buf), off);
                        free(l);
                }
                memset(buf, 0x5a, sizeof(buf));
                for (uint64_t off = 0; off < FUZZ_ORIGIN; off += 131072)
                        (void) cow_write(v, buf, sizeof(buf), off);
                (void) cow_snapshot_create(v, g);
                (void) cow_write(v, buf, sizeof(buf), 0);
                v = cow_close(v);
        }
out:
        cow_format_ignore_checksums = false;
        cow_io_free(d);
        cow_io_free(o);
        free(oimg);
        return 0;
}

/* Seeds are trimmed: trailing zeros go (reads past the end are zeros), except
 * for room for the zeroed journal pair the tail reserves. */
static int save(const char *dir, const char *name, struct cow_io *d, uint8_t flag, uint32_t chunk)
{
        char path[4096];
        uint64_t sz;
        uint8_t *b;
        FILE *f;
        int r;

        r = cow_io_size(d, &sz);
        if (r < 0)
                return r;
        b = malloc(sz + 1);
        if (!b)
                return -ENOMEM;
        b[0] = flag;
        r = cow_io_pread(d, b + 1, sz, 0);
        if (r >= 0) {
                uint64_t end = sz, room = 2 * (chunk > 8192 ? chunk : 8192);
                while (end > 0 && b[end] == 0)
                        end--;
                end = (end + chunk - 1) / chunk * chunk + room;
                if (end < sz)
                        sz = end;
        }
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        f = r < 0 ? NULL : fopen(path, "we");
        if (f) {
                if (fwrite(b, 1, sz + 1, f) != sz + 1)
                        r = -EIO;
                fclose(f);
        } else if (r >= 0)
                r = -errno;
        free(b);
        return r;
}

int fuzz_cow_make_corpus(const char *dir)
{
        uint32_t chunks[] = { 4096, 16384, 65536 };
        uint8_t *oimg = origin_image();
        int r = 0;

        if (!oimg)
                return -ENOMEM;
        for (unsigned c = 0; r >= 0 && c < 3; c++) {
                struct cow_format_params p = { .chunk_size = chunks[c], .max_bytes = c == 2 ? 4u << 20 : 0 };
                struct cow_io *o, *d;
                struct cow_volume *v;
                uint8_t b[3000];
                char name[64];

                cow_io_new_memory(oimg, FUZZ_ORIGIN, &o);
                cow_io_new_memory(NULL, 0, &d);
                r = cow_format(o, d, &p);
                if (r >= 0)
                        r = cow_open(o, d, NULL, NULL, &v);
                for (unsigned s = 0; r >= 0 && s < 5; s++) {
                        uint8_t g[16] = { (uint8_t) s, 1, 2, 3 };
                        r = cow_snapshot_create(v, g);
                        memset(b, (int) s, sizeof(b));
                        /* snapshot 0 of the 4 KiB case spans several journal blocks */
                        for (unsigned w = 0; r >= 0 && w < (c == 2 ? 2u : 4u) + 80 * (c == 0 && s == 0); w++)
                                r = cow_write(v, b, sizeof(b), ((uint64_t) (w * 7 + s) * 13331) % (FUZZ_ORIGIN - sizeof(b)));
                        if (r >= 0 && s == 3)
                                r = cow_snapshot_delete(v, (uint8_t[16]) { 1, 1, 2, 3 });
                }
                if (r >= 0) {
                        cow_close(v);
                        snprintf(name, sizeof(name), "chunk%u", chunks[c]);
                        r = save(dir, name, d, 0, chunks[c]);
                }
                cow_io_free(d);
                cow_io_free(o);
        }
        free(oimg);
        return r;
}
