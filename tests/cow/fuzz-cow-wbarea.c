/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz target for the write-back area parser (cow_wb_scan(), src/cow/cow-wbarea.c):
 * the shared memory a volume server finds after its predecessor died, whatever
 * state the predecessor left it in.  Input: the area's bytes, over an origin of
 * 1 MiB.  Every run the parser hands out must lie inside the origin and inside
 * the input, an area it rejects must never reach the callback, and it must
 * never crash, hang or leak.
 */

#include <stdlib.h>
#include <string.h>

#include "cow/cow.h"

#define FUZZ_ORIGIN (1u << 20)

struct acc {
        uint64_t bytes;
        uint32_t sum;
};

static int run(const void *buf, size_t len, uint64_t off, void *userdata)
{
        struct acc *a = userdata;
        const uint8_t *p = buf;

        if (len == 0 || off >= FUZZ_ORIGIN || len > FUZZ_ORIGIN - off)
                abort();
        for (size_t i = 0; i < len; i++)
                a->sum += p[i];
        a->bytes += len;
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct cow_wb_info info, info2;
        struct acc a = {};
        /* A copy: the parser must not read past what it was given (ASan sees the end). */
        uint8_t *buf = malloc(size ? size : 1);
        int r, r2;

        if (!buf)
                return 0;
        memcpy(buf, data, size);
        r = cow_wb_scan(buf, size, FUZZ_ORIGIN, NULL, NULL, &info);
        r2 = cow_wb_scan(buf, size, FUZZ_ORIGIN, run, &a, &info2);
        /* Checking alone and giving out the runs agree. */
        if (r != r2 || (r == 0 && (a.bytes != info.bytes || info.chunks != info2.chunks)) || (r < 0 && a.bytes))
                abort();
        free(buf);
        return 0;
}
