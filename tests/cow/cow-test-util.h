/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Small helpers shared by the CoW engine tests: a seeded PRNG and GUIDs. */

#include <stdint.h>
#include <string.h>

static inline uint64_t tu_rand(uint64_t *s)
{
        uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
}

static inline void tu_guid(uint8_t g[16], uint32_t n)
{
        memset(g, 0xA5, 16);
        memcpy(g, &n, sizeof(n));
}

static inline void tu_fill(uint8_t *p, size_t len, uint64_t seed)
{
        for (size_t i = 0; i < len; i++) {
                if (i % 8 == 0)
                        seed = tu_rand(&seed) ^ i;
                p[i] = (uint8_t) (seed >> (8 * (i % 8)));
        }
}
