/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The one place where diff-area bytes are converted to and from host order.
 *
 * Layout of a diff area (all integers little-endian; "slot" = one chunk):
 *
 *   0      superblock copy 0 (256 bytes used of 4096)
 *   4096   superblock copy 1
 *   8192.. padding up to data_start = align_up(8192, chunk_size)
 *   data_start + n * chunk_size: slot n, either
 *          - a copied origin chunk (referenced by a COPY record), or
 *          - part of a journal block pair (max(1, 8192 / chunk_size) slots:
 *            two 4096-byte copies of the same logical block), or
 *          - free.
 *
 * Superblock (256 bytes), written double-buffered like LMDB's meta pages
 * (copy = generation % 2; the valid copy with the highest generation wins):
 *     0 magic "OVSSCOWS"      8 le32 version (1)     12 le32 header size (256)
 *    16 le64 compat          24 le64 incompat       32 le64 ro_compat
 *    40 le32 chunk_size      44 le32 journal block size (4096)
 *    48 uuid[16]             64 le64 generation     72 le64 origin_size
 *    80 le64 data_start      88 le64 journal_head_slot
 *    96 le64 journal_head_seq 104 le64 durable_commit 112 le64 max_bytes
 *   120 le32 revert_seq (incompat REVERT: the snapshot being reverted to, else 0)
 *   124 reserved (zero)     252 le32 crc32c of bytes 0..251
 *
 * Journal block copy (4096 bytes): a 64-byte header then 126 records of 32:
 *     0 magic "OVSSCOWJ"      8 uuid[16] (must equal the superblock's)
 *    24 le64 block_seq       32 le64 commit         40 le64 next_slot
 *    48 le32 count           52 le32 flags (0)      56 le32 reserved
 *    60 le32 crc32c of the 4096 bytes with this field zeroed
 * Record: 0 u8 type, 1 u8[3] zero, 4 le32 seq, 8 le64 a, 16 le64 b, 24 le64 c.
 *
 * The journal is a chain of blocks starting at the superblock's head; a block
 * with count == 126 continues at next_slot with block_seq + 1.  See
 * cow-journal.c for the commit protocol, and cow-internal.h for where each
 * invariant is enforced.
 */

#include <assert.h>
#include <endian.h>
#include <pthread.h>
#include <stddef.h>
#include <string.h>

#include "basic/macro.h"
#include "cow/cow-format.h"

bool cow_format_ignore_checksums = false;

struct disk_super {
        uint8_t magic[8];
        uint32_t version;
        uint32_t header_size;
        uint64_t compat;
        uint64_t incompat;
        uint64_t ro_compat;
        uint32_t chunk_size;
        uint32_t jblock_size;
        uint8_t uuid[16];
        uint64_t generation;
        uint64_t origin_size;
        uint64_t data_start;
        uint64_t journal_head_slot;
        uint64_t journal_head_seq;
        uint64_t durable_commit;
        uint64_t max_bytes;
        uint32_t revert_seq;
        uint8_t reserved[128];
        uint32_t crc;
} __attribute__((packed));

struct disk_rec {
        uint8_t type;
        uint8_t zero[3];
        uint32_t seq;
        uint64_t a, b, c;
} __attribute__((packed));

struct disk_jblock {
        uint8_t magic[8];
        uint8_t uuid[16];
        uint64_t block_seq;
        uint64_t commit;
        uint64_t next_slot;
        uint32_t count;
        uint32_t flags;
        uint32_t reserved;
        uint32_t crc;
        struct disk_rec rec[COW_JB_CAPACITY];
} __attribute__((packed));

static_assert(sizeof(struct disk_super) == COW_SB_SIZE, "superblock size");
static_assert(offsetof(struct disk_super, crc) == 252, "superblock crc offset");
static_assert(offsetof(struct disk_super, revert_seq) == 120, "superblock revert_seq offset");
static_assert(sizeof(struct disk_rec) == COW_REC_SIZE, "record size");
static_assert(offsetof(struct disk_jblock, rec) == COW_JB_HEADER, "journal header size");
static_assert(sizeof(struct disk_jblock) == COW_JB_SIZE, "journal block size");

/* Castagnoli polynomial, reflected; table built on first use. */
static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
        for (uint32_t i = 0; i < 256; i++) {
                uint32_t c = i;
                for (int k = 0; k < 8; k++)
                        c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
                crc_table[i] = c;
        }
}

uint32_t cow_crc32c(uint32_t crc, const void *buf, size_t len)
{
        const uint8_t *p = buf;

        pthread_once(&crc_once, crc_init);
        crc = ~crc;
        while (len--)
                crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
        return ~crc;
}

static inline uint32_t le32(uint32_t x)
{
        return htole32(x);
}

static inline uint64_t le64(uint64_t x)
{
        return htole64(x);
}

void cow_super_encode(const struct cow_super *sb, uint8_t out[COW_SB_SIZE])
{
        struct disk_super d = {};

        memcpy(d.magic, COW_SB_MAGIC, 8);
        d.version = le32(sb->version);
        d.header_size = le32(COW_SB_SIZE);
        d.compat = le64(sb->compat);
        d.incompat = le64(sb->incompat);
        d.ro_compat = le64(sb->ro_compat);
        d.chunk_size = le32(sb->chunk_size);
        d.jblock_size = le32(COW_JB_SIZE);
        memcpy(d.uuid, sb->uuid, 16);
        d.generation = le64(sb->generation);
        d.origin_size = le64(sb->origin_size);
        d.data_start = le64(sb->data_start);
        d.journal_head_slot = le64(sb->journal_head_slot);
        d.journal_head_seq = le64(sb->journal_head_seq);
        d.durable_commit = le64(sb->durable_commit);
        d.max_bytes = le64(sb->max_bytes);
        d.revert_seq = le32(sb->revert_seq);
        d.crc = le32(cow_crc32c(0, &d, offsetof(struct disk_super, crc)));
        memcpy(out, &d, sizeof(d));
}

int cow_super_decode(const uint8_t in[COW_SB_SIZE], struct cow_super *ret)
{
        struct disk_super d;

        memcpy(&d, in, sizeof(d));
        if (memcmp(d.magic, COW_SB_MAGIC, 8) != 0)
                return -EBADMSG;
        if (!cow_format_ignore_checksums &&
            le32toh(d.crc) != cow_crc32c(0, &d, offsetof(struct disk_super, crc)))
                return -EBADMSG;
        if (le32toh(d.version) != COW_FORMAT_VERSION || le32toh(d.header_size) != COW_SB_SIZE ||
            le32toh(d.jblock_size) != COW_JB_SIZE)
                return -EPROTONOSUPPORT;
        *ret = (struct cow_super) {
                .version = le32toh(d.version),
                .compat = le64toh(d.compat),
                .incompat = le64toh(d.incompat),
                .ro_compat = le64toh(d.ro_compat),
                .chunk_size = le32toh(d.chunk_size),
                .generation = le64toh(d.generation),
                .origin_size = le64toh(d.origin_size),
                .data_start = le64toh(d.data_start),
                .journal_head_slot = le64toh(d.journal_head_slot),
                .journal_head_seq = le64toh(d.journal_head_seq),
                .durable_commit = le64toh(d.durable_commit),
                .max_bytes = le64toh(d.max_bytes),
                .revert_seq = le32toh(d.revert_seq),
        };
        memcpy(ret->uuid, d.uuid, 16);
        if ((ret->incompat & ~COW_INCOMPAT_KNOWN) || (ret->ro_compat & ~COW_RO_COMPAT_KNOWN))
                return -EPROTONOSUPPORT;
        /* A revert names its target, and only a revert does. */
        if (!(ret->incompat & COW_INCOMPAT_REVERT) != (ret->revert_seq == 0))
                return -EBADMSG;
        return 0;
}

void cow_jblock_encode(const struct cow_jblock *jb, uint8_t out[COW_JB_SIZE])
{
        struct disk_jblock *d = (struct disk_jblock *) out;

        assert(jb->count <= COW_JB_CAPACITY);
        memset(out, 0, COW_JB_SIZE);
        memcpy(d->magic, COW_JB_MAGIC, 8);
        memcpy(d->uuid, jb->uuid, 16);
        d->block_seq = le64(jb->block_seq);
        d->commit = le64(jb->commit);
        d->next_slot = le64(jb->next_slot);
        d->count = le32(jb->count);
        for (uint32_t i = 0; i < jb->count; i++) {
                d->rec[i].type = jb->rec[i].type;
                d->rec[i].seq = le32(jb->rec[i].seq);
                d->rec[i].a = le64(jb->rec[i].a);
                d->rec[i].b = le64(jb->rec[i].b);
                d->rec[i].c = le64(jb->rec[i].c);
        }
        d->crc = le32(cow_crc32c(0, out, COW_JB_SIZE));
}

int cow_jblock_decode(const uint8_t in[COW_JB_SIZE], struct cow_jblock *ret)
{
        const struct disk_jblock *d = (const struct disk_jblock *) in;
        uint8_t tmp[COW_JB_SIZE];
        uint32_t crc;

        if (memcmp(d->magic, COW_JB_MAGIC, 8) != 0)
                return -EBADMSG;
        memcpy(tmp, in, COW_JB_SIZE);
        ((struct disk_jblock *) tmp)->crc = 0;
        crc = cow_crc32c(0, tmp, COW_JB_SIZE);
        if (!cow_format_ignore_checksums && le32toh(d->crc) != crc)
                return -EBADMSG;
        if (le32toh(d->count) > COW_JB_CAPACITY || le32toh(d->flags) != 0)
                return -EBADMSG;
        memcpy(ret->uuid, d->uuid, 16);
        ret->block_seq = le64toh(d->block_seq);
        ret->commit = le64toh(d->commit);
        ret->next_slot = le64toh(d->next_slot);
        ret->count = le32toh(d->count);
        for (uint32_t i = 0; i < ret->count; i++) {
                ret->rec[i] = (struct cow_rec) {
                        .type = d->rec[i].type,
                        .seq = le32toh(d->rec[i].seq),
                        .a = le64toh(d->rec[i].a),
                        .b = le64toh(d->rec[i].b),
                        .c = le64toh(d->rec[i].c),
                };
        }
        return 0;
}
