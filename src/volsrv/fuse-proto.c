/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The FUSE protocol for vss-volsrv's tree, without libfuse:
 *
 *     /                 node 1
 *     /volume           node 3, the live volume (read-write, direct I/O)
 *     /shadows/         node 2
 *     /shadows/<guid>   node 16 + seq, each snapshot (read-only)
 *
 * Why not libfuse: libfuse 3.14 keeps the connection's state (negotiated
 * protocol, node table, open files) in the process, and a new process on the
 * same /dev/fuse descriptor never gets FUSE_INIT again, so it cannot take a
 * session over.  Here nothing the kernel may send back lives only in the
 * process: node ids are computed, file handles index the shared slot table of
 * struct vfuse_state (fuse-proto.h), and the negotiated minor is stored there.
 *
 * Requests are parsed with memcpy into the uapi structs (the buffer may be
 * anything in the fuzz target); every length is checked against what the
 * request really holds.  Opcodes served: INIT, LOOKUP, FORGET, BATCH_FORGET,
 * GETATTR, SETATTR (the size, unchanged, only), OPEN, READ, WRITE, FLUSH,
 * FSYNC, RELEASE, OPENDIR, READDIR, RELEASEDIR, STATFS, ACCESS, DESTROY,
 * INTERRUPT (ignored: nothing here waits for anything a signal could cut
 * short); everything else is ENOSYS, which the kernel remembers per opcode.
 */

#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "basic/macro.h"
#include "volsrv/fuse-proto.h"
#include "volsrv/volsrv.h"

/* Linux 6.9+; the Debian 12 uapi header (7.38) predates them. */
#ifndef FUSE_HAS_RESEND
#define FUSE_HAS_RESEND (1ull << 39)
#endif
#define VFUSE_NOTIFY_RESEND 7

/* Protocol 7.38 is what we implement (the uapi header's structs); a newer kernel
 * talks 7.38 to us, an older one (down to 7.31, Linux 5.4) its own minor. */
#define VFUSE_MINOR 38u
#define VFUSE_MINOR_MIN 31u

#define ENTRY_VALID_S 1u
#define ATTR_VALID_S 1u

static bool is_shadow_node(uint64_t nodeid)
{
        return nodeid >= VFUSE_NODE_SHADOW_BASE && nodeid - VFUSE_NODE_SHADOW_BASE <= UINT32_MAX;
}

void vfuse_state_init(struct vfuse_state *st)
{
        memset(st, 0, sizeof(*st));
        st->magic = VFUSE_STATE_MAGIC;
        st->version = VFUSE_STATE_VERSION;
}

int vfuse_state_check(const struct vfuse_state *st)
{
        if (st->magic != VFUSE_STATE_MAGIC || st->version != VFUSE_STATE_VERSION || !st->initialized ||
            st->proto_minor < VFUSE_MINOR_MIN || st->proto_minor > VFUSE_MINOR)
                return -EBADMSG;
        return 0;
}

unsigned vfuse_state_writers(const struct vfuse_state *st)
{
        const uint64_t want = VFUSE_SLOT_USED | VFUSE_SLOT_VOLUME | VFUSE_SLOT_WRITABLE;
        unsigned n = 0;

        for (unsigned i = 0; i < VFUSE_SLOTS; i++)
                if ((__atomic_load_n(&st->slots[i].word, __ATOMIC_ACQUIRE) & want) == want)
                        n++;
        return n;
}

/* ---- file handles: slot index + 1 in the low 32 bits, its generation above ---- */

static int slot_alloc(struct vfuse_state *st, uint32_t flags, uint64_t nodeid, const uint8_t guid[16], uint64_t *ret_fh)
{
        uint32_t start = __atomic_fetch_add(&st->slot_hint, 1, __ATOMIC_RELAXED);

        for (uint32_t k = 0; k < VFUSE_SLOTS; k++) {
                uint32_t i = (start + k) % VFUSE_SLOTS;
                struct vfuse_slot *s = &st->slots[i];
                uint64_t w = __atomic_load_n(&s->word, __ATOMIC_ACQUIRE), nw;

                if (w & VFUSE_SLOT_USED)
                        continue;
                nw = (((w >> 32) + 1) << 32) | flags | VFUSE_SLOT_USED;
                if (!__atomic_compare_exchange_n(&s->word, &w, nw, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
                        continue;
                s->nodeid = nodeid;
                if (guid)
                        memcpy(s->guid, guid, 16);
                *ret_fh = ((nw >> 32) << 32) | (i + 1);
                return 0;
        }
        return -EMFILE;
}

/* The slot an fh names, or NULL (stale, forged, or released already). */
static struct vfuse_slot *slot_get(struct vfuse_state *st, uint64_t fh, uint64_t *ret_word)
{
        uint64_t idx = fh & 0xffffffffu, w;

        if (idx == 0 || idx > VFUSE_SLOTS)
                return NULL;
        w = __atomic_load_n(&st->slots[idx - 1].word, __ATOMIC_ACQUIRE);
        if (!(w & VFUSE_SLOT_USED) || (w >> 32) != (fh >> 32))
                return NULL;
        if (ret_word)
                *ret_word = w;
        return &st->slots[idx - 1];
}

/* Frees the slot if it is still that fh's: a RELEASE resent after a handover
 * must not free a slot reused since.  Returns the slot's flags, or 0. */
static uint32_t slot_free(struct vfuse_state *st, uint64_t fh)
{
        uint64_t w;
        struct vfuse_slot *s = slot_get(st, fh, &w);

        if (!s)
                return 0;
        if (!__atomic_compare_exchange_n(&s->word, &w, w & ~(uint64_t)0xffffffffu, false, __ATOMIC_ACQ_REL,
                                         __ATOMIC_ACQUIRE))
                return 0;
        return (uint32_t)(w & 0xffffffffu);
}

/* ---- replies ---- */

static int reply(struct vfuse_ctx *c, uint64_t unique, int error, const void *a, size_t alen, const void *b,
                 size_t blen)
{
        struct fuse_out_header oh = {
                .len = (uint32_t)(sizeof(oh) + (error ? 0 : alen + blen)),
                .error = error,
                .unique = unique,
        };
        struct iovec iov[3] = { { &oh, sizeof(oh) } };
        int n = 1;

        if (!error && alen)
                iov[n++] = (struct iovec){ (void *)a, alen };
        if (!error && blen)
                iov[n++] = (struct iovec){ (void *)b, blen };
        return c->send(c->send_userdata, iov, n);
}

static int reply_err(struct vfuse_ctx *c, uint64_t unique, int r)
{
        /* The kernel accepts only -1..-511 as an error. */
        if (r >= 0 || r < -511)
                r = -EIO;
        return reply(c, unique, r, NULL, 0, NULL, 0);
}

/* ---- nodes ---- */

static int shadow_by_seq(struct cow_volume *vol, uint64_t nodeid, struct cow_snapshot_info *ret)
{
        _cleanup_free_ struct cow_snapshot_info *list = NULL;
        size_t n = 0;
        int r;

        if (!is_shadow_node(nodeid))
                return -ENOENT;
        r = cow_snapshot_list(vol, &list, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                if (list[i].seq == nodeid - VFUSE_NODE_SHADOW_BASE) {
                        *ret = list[i];
                        return 0;
                }
        return -ENOENT;
}

static int node_attr(struct vfuse_ctx *c, uint64_t nodeid, struct fuse_attr *a)
{
        struct cow_snapshot_info info;
        int r;

        memset(a, 0, sizeof(*a));
        a->ino = nodeid;
        a->uid = c->uid;
        a->gid = c->gid;
        if (nodeid == VFUSE_NODE_ROOT || nodeid == VFUSE_NODE_SHADOWS) {
                a->mode = S_IFDIR | 0755;
                a->nlink = 2;
                return 0;
        }
        a->blksize = 4096;
        a->size = c->size;
        a->blocks = c->size / 512;
        a->nlink = 1;
        if (nodeid == VFUSE_NODE_VOLUME) {
                a->mode = S_IFREG | 0600;
                return 0;
        }
        r = shadow_by_seq(c->vol, nodeid, &info);
        if (r < 0)
                return r;
        a->mode = S_IFREG | 0400;
        a->mtime = a->atime = a->ctime = info.ctime_ns / 1000000000u;
        a->mtimensec = a->atimensec = a->ctimensec = (uint32_t)(info.ctime_ns % 1000000000u);
        return 0;
}

/* "<guid>", 36 characters, any case -> the snapshot's node id. */
static int shadow_lookup(struct cow_volume *vol, const char *name, uint64_t *ret_node)
{
        struct cow_snapshot_info info;
        vss_id id;
        int r;

        if (strlen(name) != 36 || vss_id_parse(name, &id) != VSS_S_OK)
                return -ENOENT;
        r = volsrv_snapshot_find(vol, id.bytes, &info);
        if (r < 0)
                return r;
        *ret_node = VFUSE_NODE_SHADOW_BASE + info.seq;
        return 0;
}

/* ---- opcodes ---- */

static int do_init(struct vfuse_ctx *c, uint64_t unique, const void *body, size_t blen)
{
        struct fuse_init_in in = {};
        struct fuse_init_out out = {};
        uint64_t kflags, want;

        /* Protocol 7.6+ sends at least major, minor, max_readahead, flags. */
        if (blen < offsetof(struct fuse_init_in, flags2))
                return reply_err(c, unique, -EINVAL);
        memcpy(&in, body, MIN(blen, sizeof(in)));
        if (in.major > 7) {
                /* The kernel sends INIT again with major 7 after this answer. */
                out.major = 7;
                out.minor = VFUSE_MINOR;
                return reply(c, unique, 0, &out, FUSE_COMPAT_INIT_OUT_SIZE, NULL, 0);
        }
        if (in.major < 7 || in.minor < VFUSE_MINOR_MIN)
                return reply_err(c, unique, -EPROTO);
        kflags = in.flags;
        if ((kflags & FUSE_INIT_EXT) && blen >= offsetof(struct fuse_init_in, unused))
                kflags |= (uint64_t)in.flags2 << 32;
        /* As libfuse did for us: async reads and async direct I/O (the loop device's
         * writes are submitted without waiting), O_TRUNC in open (refused there),
         * large writes.  No writeback cache: the page cache must never hold data
         * newer than what we acknowledged (and loop over a writeback-cache FUSE
         * file can deadlock).  No splice (the data path copies once either way). */
        want = FUSE_ASYNC_READ | FUSE_ATOMIC_O_TRUNC | FUSE_BIG_WRITES | FUSE_ASYNC_DIO | FUSE_PARALLEL_DIROPS |
               FUSE_MAX_PAGES | FUSE_INIT_EXT;
        want &= kflags;
        out.major = 7;
        out.minor = MIN(in.minor, VFUSE_MINOR);
        out.max_readahead = in.max_readahead;
        out.flags = (uint32_t)want;
        out.flags2 = (uint32_t)(want >> 32);
        out.max_background = VFUSE_MAX_BACKGROUND;
        out.congestion_threshold = VFUSE_MAX_BACKGROUND * 3 / 4;
        out.max_write = VFUSE_MAX_WRITE;
        out.time_gran = 1;
        out.max_pages = VFUSE_MAX_WRITE / 4096;
        c->st->proto_minor = out.minor;
        c->st->max_write = out.max_write;
        __atomic_store_n(&c->st->initialized, 1, __ATOMIC_RELEASE);
        log_info("fuse: protocol 7.%u (kernel 7.%u)%s", out.minor, in.minor,
                 (kflags & FUSE_HAS_RESEND) ? ", resend supported" : ", no FUSE_NOTIFY_RESEND (kernel < 6.9)");
        return reply(c, unique, 0, &out, sizeof(out), NULL, 0);
}

static int do_lookup(struct vfuse_ctx *c, uint64_t unique, uint64_t parent, const char *body, size_t blen)
{
        struct fuse_entry_out e = {};
        uint64_t node = 0;
        int r;

        if (blen == 0 || !memchr(body, 0, blen))
                return reply_err(c, unique, -EINVAL);
        if (parent == VFUSE_NODE_ROOT) {
                if (streq(body, "volume"))
                        node = VFUSE_NODE_VOLUME;
                else if (streq(body, "shadows"))
                        node = VFUSE_NODE_SHADOWS;
                else
                        return reply_err(c, unique, -ENOENT);
        } else if (parent == VFUSE_NODE_SHADOWS) {
                r = shadow_lookup(c->vol, body, &node);
                if (r < 0)
                        return reply_err(c, unique, r == -ENOENT ? r : -EIO);
        } else
                return reply_err(c, unique, parent == VFUSE_NODE_VOLUME || is_shadow_node(parent) ? -ENOTDIR : -ENOENT);
        r = node_attr(c, node, &e.attr);
        if (r < 0)
                return reply_err(c, unique, r);
        e.nodeid = node;
        e.generation = 1;
        e.entry_valid = ENTRY_VALID_S;
        e.attr_valid = ATTR_VALID_S;
        return reply(c, unique, 0, &e, sizeof(e), NULL, 0);
}

static int do_getattr(struct vfuse_ctx *c, uint64_t unique, uint64_t nodeid)
{
        struct fuse_attr_out o = { .attr_valid = ATTR_VALID_S };
        int r = node_attr(c, nodeid, &o.attr);

        if (r < 0)
                return reply_err(c, unique, r);
        return reply(c, unique, 0, &o, sizeof(o), NULL, 0);
}

static int do_setattr(struct vfuse_ctx *c, uint64_t unique, uint64_t nodeid, const void *body, size_t blen)
{
        struct fuse_setattr_in in;
        uint32_t what;

        if (blen < sizeof(in))
                return reply_err(c, unique, -EINVAL);
        memcpy(&in, body, sizeof(in));
        what = in.valid & ~(uint32_t)(FATTR_FH | FATTR_LOCKOWNER);
        /* A volume has a fixed size: "truncating" it to that size is harmless (tools
         * without O_TRUNC do), everything else is refused, as with libfuse before. */
        if (nodeid == VFUSE_NODE_VOLUME) {
                if (what != FATTR_SIZE || in.size != c->size)
                        return reply_err(c, unique, -EPERM);
        } else if (is_shadow_node(nodeid))
                return reply_err(c, unique, -EROFS);
        else
                return reply_err(c, unique, -EPERM);
        return do_getattr(c, unique, nodeid);
}

static int do_open(struct vfuse_ctx *c, uint64_t unique, uint64_t nodeid, const void *body, size_t blen)
{
        struct fuse_open_in in;
        struct fuse_open_out o = {};
        struct cow_snapshot_info info;
        bool writable;
        int r;

        if (blen < sizeof(in))
                return reply_err(c, unique, -EINVAL);
        memcpy(&in, body, sizeof(in));
        writable = (in.flags & O_ACCMODE) != O_RDONLY;
        if (nodeid == VFUSE_NODE_ROOT || nodeid == VFUSE_NODE_SHADOWS)
                return reply_err(c, unique, -EISDIR);
        if (nodeid == VFUSE_NODE_VOLUME) {
                if (in.flags & O_TRUNC)
                        return reply_err(c, unique, -EPERM);
                /* Open for writing: a revert waits for the last such release (EBUSY
                 * while one runs). */
                if (writable) {
                        r = cow_live_open(c->vol);
                        if (r < 0)
                                return reply_err(c, unique, r);
                }
                r = slot_alloc(c->st, VFUSE_SLOT_VOLUME | (writable ? VFUSE_SLOT_WRITABLE : 0), nodeid, NULL, &o.fh);
                if (r < 0) {
                        if (writable)
                                cow_live_close(c->vol);
                        return reply_err(c, unique, r);
                }
                /* Every read and write reaches us, with or without O_DIRECT: a loop
                 * device with --direct-io=off keeps no second copy of the volume.
                 * Parallel direct writes: the engine serves concurrent writes (NBD
                 * multi-conn does), so the kernel need not take the inode lock
                 * exclusively per write. */
                o.open_flags = FOPEN_DIRECT_IO | FOPEN_PARALLEL_DIRECT_WRITES;
                return reply(c, unique, 0, &o, sizeof(o), NULL, 0);
        }
        r = shadow_by_seq(c->vol, nodeid, &info);
        if (r < 0)
                return reply_err(c, unique, r);
        if (writable)
                return reply_err(c, unique, -EROFS);
        r = slot_alloc(c->st, 0, nodeid, info.guid, &o.fh);
        if (r < 0)
                return reply_err(c, unique, r);
        /* Shadows keep the page cache between reads (immutable); open_flags 0 drops
         * it at every open, so a snapshot recreated under the same name is read anew. */
        return reply(c, unique, 0, &o, sizeof(o), NULL, 0);
}

static int do_read(struct vfuse_ctx *c, uint64_t unique, const void *body, size_t blen, void *out)
{
        struct fuse_read_in in;
        struct vfuse_slot *s;
        uint64_t w;
        size_t size;
        int r;

        if (blen < sizeof(in))
                return reply_err(c, unique, -EINVAL);
        memcpy(&in, body, sizeof(in));
        s = slot_get(c->st, in.fh, &w);
        if (!s)
                return reply_err(c, unique, -EBADF);
        if (in.size > VFUSE_OUT_BUFFER)
                return reply_err(c, unique, -EINVAL);
        if (in.offset >= c->size)
                return reply(c, unique, 0, NULL, 0, NULL, 0);
        size = (size_t)MIN((uint64_t)in.size, c->size - in.offset);
        if (w & VFUSE_SLOT_VOLUME)
                r = cow_read(c->vol, out, size, in.offset);
        else {
                uint8_t guid[16];

                memcpy(guid, s->guid, 16);
                r = cow_snapshot_read(c->vol, guid, out, size, in.offset);
                /* Deleted or evicted under the reader: the device is gone. */
                if (r == -ENOENT || r == -ESTALE)
                        r = -EIO;
        }
        if (r < 0)
                return reply_err(c, unique, r);
        return reply(c, unique, 0, out, size, NULL, 0);
}

static int do_write(struct vfuse_ctx *c, uint64_t unique, const uint8_t *body, size_t blen)
{
        struct fuse_write_in in;
        struct fuse_write_out o = {};
        uint64_t w;
        int r;

        if (blen < sizeof(in))
                return reply_err(c, unique, -EINVAL);
        memcpy(&in, body, sizeof(in));
        if (in.size > blen - sizeof(in))
                return reply_err(c, unique, -EINVAL);
        if (!slot_get(c->st, in.fh, &w))
                return reply_err(c, unique, -EBADF);
        if (!(w & VFUSE_SLOT_VOLUME) || !(w & VFUSE_SLOT_WRITABLE))
                return reply_err(c, unique, -EBADF);
        if (in.offset >= c->size || in.size > c->size - in.offset)
                return reply_err(c, unique, -ENOSPC);
        r = cow_write(c->vol, body + sizeof(in), in.size, in.offset);
        if (r < 0)
                return reply_err(c, unique, r);
        o.size = in.size;
        return reply(c, unique, 0, &o, sizeof(o), NULL, 0);
}

/* FLUSH (every close) and FSYNC: the volume's writes become durable. */
static int do_flush(struct vfuse_ctx *c, uint64_t unique, const void *body, size_t blen)
{
        uint64_t fh, w;
        int r = 0;

        /* fh is the first field of both fuse_flush_in and fuse_fsync_in. */
        if (blen < sizeof(fh))
                return reply_err(c, unique, -EINVAL);
        memcpy(&fh, body, sizeof(fh));
        if (!slot_get(c->st, fh, &w))
                return reply_err(c, unique, -EBADF);
        if (w & VFUSE_SLOT_VOLUME)
                r = cow_flush(c->vol);
        return r < 0 ? reply_err(c, unique, r) : reply(c, unique, 0, NULL, 0, NULL, 0);
}

static int do_release(struct vfuse_ctx *c, uint64_t unique, const void *body, size_t blen)
{
        struct fuse_release_in in;
        uint32_t flags;

        if (blen < sizeof(in))
                return reply_err(c, unique, -EINVAL);
        memcpy(&in, body, sizeof(in));
        flags = slot_free(c->st, in.fh);
        if ((flags & VFUSE_SLOT_VOLUME) && (flags & VFUSE_SLOT_WRITABLE))
                cow_live_close(c->vol);
        /* A RELEASE of a handle we do not know (resent after a handover that had
         * freed it already) is answered all the same: nothing is left to release. */
        return reply(c, unique, 0, NULL, 0, NULL, 0);
}

static int do_opendir(struct vfuse_ctx *c, uint64_t unique, uint64_t nodeid)
{
        struct fuse_open_out o = {};

        if (nodeid != VFUSE_NODE_ROOT && nodeid != VFUSE_NODE_SHADOWS)
                return reply_err(c, unique, nodeid == VFUSE_NODE_VOLUME || is_shadow_node(nodeid) ? -ENOTDIR : -ENOENT);
        return reply(c, unique, 0, &o, sizeof(o), NULL, 0);
}

/* Appends one dirent if it fits; false when the buffer is full. */
static bool add_dirent(uint8_t *buf, size_t cap, size_t *pos, uint64_t ino, uint64_t next_off, uint32_t type,
                       const char *name)
{
        size_t namelen = strlen(name), reclen = FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET + namelen);
        struct fuse_dirent d = { .ino = ino, .off = next_off, .namelen = (uint32_t)namelen, .type = type };

        if (*pos + reclen > cap)
                return false;
        memset(buf + *pos, 0, reclen);
        memcpy(buf + *pos, &d, FUSE_NAME_OFFSET);
        memcpy(buf + *pos + FUSE_NAME_OFFSET, name, namelen);
        *pos += reclen;
        return true;
}

static int do_readdir(struct vfuse_ctx *c, uint64_t unique, uint64_t nodeid, const void *body, size_t blen, void *out)
{
        _cleanup_free_ struct cow_snapshot_info *list = NULL;
        struct fuse_read_in in;
        size_t n = 0, pos = 0, cap;
        uint64_t idx, total;
        int r;

        if (blen < sizeof(in))
                return reply_err(c, unique, -EINVAL);
        memcpy(&in, body, sizeof(in));
        if (nodeid != VFUSE_NODE_ROOT && nodeid != VFUSE_NODE_SHADOWS)
                return reply_err(c, unique, -ENOTDIR);
        cap = MIN((size_t)in.size, (size_t)VFUSE_OUT_BUFFER);
        if (nodeid == VFUSE_NODE_SHADOWS) {
                r = cow_snapshot_list(c->vol, &list, &n);
                if (r < 0)
                        return reply_err(c, unique, r);
        }
        /* Entry k (0 ".", 1 "..", then the children) carries off k + 1. */
        total = 2 + (nodeid == VFUSE_NODE_ROOT ? 2 : n);
        for (idx = in.offset; idx < total; idx++) {
                char bare[37];
                const char *name;
                uint64_t ino;
                uint32_t type = S_IFDIR >> 12;

                if (idx == 0)
                        name = ".", ino = nodeid;
                else if (idx == 1)
                        name = "..", ino = VFUSE_NODE_ROOT;
                else if (nodeid == VFUSE_NODE_ROOT) {
                        bool vol = idx == 2;

                        name = vol ? "volume" : "shadows";
                        ino = vol ? VFUSE_NODE_VOLUME : VFUSE_NODE_SHADOWS;
                        type = vol ? S_IFREG >> 12 : S_IFDIR >> 12;
                } else {
                        volsrv_guid_bare(list[idx - 2].guid, bare);
                        name = bare;
                        ino = VFUSE_NODE_SHADOW_BASE + list[idx - 2].seq;
                        type = S_IFREG >> 12;
                }
                if (!add_dirent(out, cap, &pos, ino, idx + 1, type, name))
                        break;
        }
        return reply(c, unique, 0, out, pos, NULL, 0);
}

static int do_statfs(struct vfuse_ctx *c, uint64_t unique)
{
        struct fuse_statfs_out o = {};

        o.st.bsize = o.st.frsize = 4096;
        o.st.blocks = c->size / 4096;
        o.st.files = 3;
        o.st.namelen = 255;
        return reply(c, unique, 0, &o, sizeof(o), NULL, 0);
}

int vfuse_handle(struct vfuse_ctx *c, const void *req, size_t len, void *out)
{
        struct fuse_in_header h;
        const uint8_t *body;
        size_t blen;

        if (len < sizeof(h))
                return -EPROTO;
        memcpy(&h, req, sizeof(h));
        /* The kernel's header says how long the request is; trust the shorter.  Unique 0
         * marks notifications: a reply carrying it would be taken for one. */
        if (h.len < sizeof(h) || h.unique == 0)
                return -EPROTO;
        body = (const uint8_t *)req + sizeof(h);
        blen = MIN((size_t)h.len, len) - sizeof(h);

        /* Nothing but INIT before INIT (the kernel never does otherwise). */
        if (!__atomic_load_n(&c->st->initialized, __ATOMIC_ACQUIRE) && h.opcode != FUSE_INIT)
                return h.opcode == FUSE_FORGET || h.opcode == FUSE_BATCH_FORGET || h.opcode == FUSE_INTERRUPT ?
                               0 : reply_err(c, h.unique, -EIO);

        switch (h.opcode) {
        case FUSE_INIT:
                return do_init(c, h.unique, body, blen);
        case FUSE_LOOKUP:
                return do_lookup(c, h.unique, h.nodeid, (const char *)body, blen);
        case FUSE_FORGET:
        case FUSE_BATCH_FORGET:
        case FUSE_INTERRUPT:
                /* No reply to these.  Node ids are not counted (they are computed), and
                 * no request here waits for anything an interrupt could cut short. */
                return 0;
        case FUSE_GETATTR:
                return do_getattr(c, h.unique, h.nodeid);
        case FUSE_SETATTR:
                return do_setattr(c, h.unique, h.nodeid, body, blen);
        case FUSE_OPEN:
                return do_open(c, h.unique, h.nodeid, body, blen);
        case FUSE_READ:
                return do_read(c, h.unique, body, blen, out);
        case FUSE_WRITE:
                return do_write(c, h.unique, body, blen);
        case FUSE_FLUSH:
        case FUSE_FSYNC:
                return do_flush(c, h.unique, body, blen);
        case FUSE_RELEASE:
                return do_release(c, h.unique, body, blen);
        case FUSE_OPENDIR:
                return do_opendir(c, h.unique, h.nodeid);
        case FUSE_READDIR:
                return do_readdir(c, h.unique, h.nodeid, body, blen, out);
        case FUSE_RELEASEDIR:
        case FUSE_FSYNCDIR:
        case FUSE_ACCESS:
        case FUSE_DESTROY:
                return reply(c, h.unique, 0, NULL, 0, NULL, 0);
        case FUSE_STATFS:
                return do_statfs(c, h.unique);
        default:
                return reply_err(c, h.unique, -ENOSYS);
        }
}

int vfuse_notify_resend(struct vfuse_ctx *c)
{
        struct fuse_out_header oh = {
                .len = sizeof(oh),
                .error = VFUSE_NOTIFY_RESEND,
                .unique = 0,
        };
        struct iovec iov = { &oh, sizeof(oh) };

        return c->send(c->send_userdata, &iov, 1);
}
