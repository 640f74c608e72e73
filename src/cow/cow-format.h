/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * On-disk format of a diff area (see cow-format.c and docs/cow-format.md for
 * the layout).  These packed little-endian structs are only ever touched by
 * the encode/decode helpers in cow-format.c; the engine works on the decoded
 * host-order structs below.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define COW_SB_MAGIC "OVSSCOWS"
#define COW_JB_MAGIC "OVSSCOWJ"
#define COW_FORMAT_VERSION 1u

#define COW_SB_SIZE 256u              /* encoded superblock */
#define COW_SB_SLOT 4096u             /* superblock copies at 0 and 4096 */
#define COW_JB_SIZE 4096u             /* one journal block copy */
#define COW_JB_HEADER 64u
#define COW_REC_SIZE 32u
#define COW_JB_CAPACITY ((COW_JB_SIZE - COW_JB_HEADER) / COW_REC_SIZE)   /* 126 */

/* Feature flags.  Unknown incompat bits refuse to open; unknown ro_compat bits
 * open read-only (not supported yet: refuse too); compat bits are ignored. */
#define COW_INCOMPAT_ERROR   (UINT64_C(1) << 0)   /* diff-area I/O error: every snapshot is lost */
/* A revert to snapshot revert_seq is under way: the origin may hold a mixture
 * of old and reverted chunks, so an engine that cannot finish the revert must
 * not open the volume (cow-revert.c). */
#define COW_INCOMPAT_REVERT  (UINT64_C(1) << 1)
#define COW_INCOMPAT_KNOWN   (COW_INCOMPAT_ERROR | COW_INCOMPAT_REVERT)
#define COW_RO_COMPAT_KNOWN  UINT64_C(0)

enum cow_rec_type {
        COW_REC_SNAP_CREATE = 1,  /* seq; a,b = GUID bytes 0..7, 8..15; c = creation time (ns) */
        COW_REC_SNAP_DELETE = 2,  /* seq; a = reason (0 user, 1 evicted, 2 invalidated, 3 reverted) */
        COW_REC_COPY        = 3,  /* seq = owner; a = origin chunk; b = diff slot */
        COW_REC_SET_MAX     = 4,  /* a = maximum bytes (UINT64_MAX = unbounded) */
        COW_REC_NEXT_SEQ    = 5,  /* a = next snapshot sequence number (checkpoints) */
};

struct cow_super {
        uint32_t version;
        uint64_t compat, incompat, ro_compat;
        uint32_t chunk_size;
        uint8_t uuid[16];
        uint64_t generation;
        uint64_t origin_size;
        uint64_t data_start;          /* byte offset of slot 0 */
        uint64_t journal_head_slot;
        uint64_t journal_head_seq;
        uint64_t durable_commit;      /* the journal reached at least this commit */
        uint64_t max_bytes;
        uint32_t revert_seq;          /* with COW_INCOMPAT_REVERT: the target snapshot */
};

struct cow_rec {
        uint8_t type;
        uint32_t seq;
        uint64_t a, b, c;
};

struct cow_jblock {
        uint8_t uuid[16];
        uint64_t block_seq;           /* position in the chain, +1 per block */
        uint64_t commit;              /* commit number of this copy's content */
        uint64_t next_slot;           /* where block_seq + 1 lives */
        uint32_t count;
        struct cow_rec rec[COW_JB_CAPACITY];
};

/* Fuzzing only: accept bad checksums so mutations reach the deeper checks. */
extern bool cow_format_ignore_checksums;

uint32_t cow_crc32c(uint32_t crc, const void *buf, size_t len);

void cow_super_encode(const struct cow_super *sb, uint8_t out[COW_SB_SIZE]);
/* -EBADMSG: not a (valid) superblock; -EPROTONOSUPPORT: version/features unknown. */
int cow_super_decode(const uint8_t in[COW_SB_SIZE], struct cow_super *ret);

void cow_jblock_encode(const struct cow_jblock *jb, uint8_t out[COW_JB_SIZE]);
/* -EBADMSG unless magic, checksum and count are valid; does not check uuid/seq. */
int cow_jblock_decode(const uint8_t in[COW_JB_SIZE], struct cow_jblock *ret);
