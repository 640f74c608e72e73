/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef VSS_PROVIDER_H
#define VSS_PROVIDER_H

/*
 * The provider interface, modelled on IVssSoftwareSnapshotProvider +
 * IVssProviderCreateSnapshotSet.  Providers are compiled into vssd and called
 * in-process from its provider worker thread (never from the event loop), one
 * call at a time, so a provider needs no locking of its own.
 *
 * Call order for one snapshot set (vss-facts 8.3):
 *
 *   begin_prepare (once per volume, at AddToSnapshotSet)
 *   end_prepare      -- after writers' PrepareForSnapshot
 *   pre_commit       -- writers are frozen
 *   [vssd: syncfs + FIFREEZE on every volume if ops->needs_freeze; hold watchdog armed]
 *   commit           -- must be fast; the shadow copy instant
 *   [vssd: FITHAW]
 *   post_commit
 *   abort            -- only after end_prepare was called, on any failure
 *
 * A provider reports failures with VSS_E_PROVIDER_VETO, VSS_E_OBJECT_NOT_FOUND,
 * VSS_E_INSUFFICIENT_STORAGE, VSS_E_OUTOFMEMORY or VSS_E_INVALIDARG; vssd turns
 * any other failure into VSS_E_UNEXPECTED_PROVIDER_ERROR and logs the original.
 * Each call may leave a human-readable reason in ctx->error (logged and shown
 * to the requester).
 */

#include <limits.h>
#include <vss/vss.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VSS_PROVIDER_DATA_MAX 1024
#define VSS_PATH_MAX 4096

/* One shadow copy as the provider sees it.  vssd owns the struct and persists
 * every field in its catalog; a provider keeps its own bookkeeping for the
 * shadow in 'provider_data' (e.g. a subvolume path) and gets it back at delete,
 * expose and unexpose, also after a restart of vssd. */
struct vss_provider_snapshot {
        vss_id snapshot_id;
        vss_id set_id;
        int32_t context;                        /* VSS_SNAPSHOT_CONTEXT of the set */
        char volume[VSS_PATH_MAX];              /* original volume (canonical path) */
        char volume_device[VSS_PATH_MAX];       /* its block device, "" if unknown */
        char fstype[32];                        /* "btrfs", "ext4", ... */
        /* Filled by the provider (at the latest in commit/post_commit): */
        char device[VSS_PATH_MAX];              /* where the shadow copy is read */
        int32_t attributes;                     /* VSS_VOLSNAP_ATTR_* the provider adds */
        char provider_data[VSS_PROVIDER_DATA_MAX];
};

/* A volume's diff area ("shadow copy storage") as its provider keeps it. */
struct vss_provider_diff_area {
        char path[VSS_PATH_MAX];                /* the diff area file */
        uint64_t used_bytes;                    /* what the shadow copies hold */
        uint64_t allocated_bytes;               /* what the diff area takes on its volume */
};

/* The settings of vssd.conf(5) a provider uses, parsed and checked by vssd: a provider
 * never reads vssd.conf itself, so it cannot read it differently. */
struct vss_provider_settings {
        uint64_t min_diff_area_bytes;           /* [storage] min_diff_area_mb */
        uint32_t cow_server_deadline_ms;        /* [cow] server_deadline_ms */
};

/* What vssd gives a provider. */
struct vss_provider_ctx {
        const char *state_dir;                  /* vssd's state directory */
        struct vss_provider_settings settings;
        char error[512];                        /* set by a failing call */
        /* vssd's event log: level is "info", "warning" or "error". */
        void (*log_event)(void *log_userdata, const char *level, vss_hresult hr, const char *message);
        void *log_userdata;
};

struct vss_provider_ops {
        const char *name;                       /* "openvss btrfs provider" */
        const char *provider_id;                /* GUID string, stable forever */
        enum vss_provider_type type;
        const char *version;                    /* "1.0.0" */
        bool needs_freeze;                      /* vssd freezes the volumes around commit */

        vss_hresult (*init)(struct vss_provider_ctx *ctx, void **ret_state);
        void (*done)(void *state);

        /* Called on the event loop thread too: must not block for long. */
        vss_hresult (*is_volume_supported)(void *state, const char *volume, const char *fstype,
                                           bool *ret_supported);

        vss_hresult (*begin_prepare)(void *state, struct vss_provider_snapshot *snap);
        vss_hresult (*end_prepare)(void *state, struct vss_provider_snapshot *snaps, size_t n);
        vss_hresult (*pre_commit)(void *state, struct vss_provider_snapshot *snaps, size_t n);
        vss_hresult (*commit)(void *state, struct vss_provider_snapshot *snaps, size_t n);
        vss_hresult (*post_commit)(void *state, struct vss_provider_snapshot *snaps, size_t n);
        vss_hresult (*abort)(void *state, struct vss_provider_snapshot *snaps, size_t n);

        /* Removes a committed shadow copy (unexposed first by vssd). */
        vss_hresult (*delete_snapshot)(void *state, const struct vss_provider_snapshot *snap);
        /* Makes the shadow copy readable at 'path' (an existing empty directory), read-only. */
        vss_hresult (*expose)(void *state, const struct vss_provider_snapshot *snap, const char *path);
        vss_hresult (*unexpose)(void *state, const struct vss_provider_snapshot *snap, const char *path);
        /* Optional: does the shadow still exist (used at startup to prune the catalog)? */
        vss_hresult (*exists)(void *state, const struct vss_provider_snapshot *snap, bool *ret_exists);
        /* Optional (RevertToSnapshot; NULL: the provider cannot revert, E_NOTIMPL): makes the content of
         * snap->volume exactly that of the shadow copy and returns when it does, with the volume mounted
         * again at the same path.  VSS_E_VOLUME_IN_USE when the volume cannot be taken offline (open
         * files): then nothing changed.  The provider may update snap->volume_device (the volume's block
         * device after the revert).  What becomes of the other shadow copies is vssd's business: it
         * deletes the newer ones afterwards (docs/vssadmin.md, "Revert"). */
        vss_hresult (*revert)(void *state, struct vss_provider_snapshot *snap);

        /* Optional, for a provider whose volumes keep their shadow copies in a diff area of bounded
         * size (NULL: none).  Both answer VSS_E_OBJECT_NOT_FOUND for a volume the provider does not
         * serve; vssd asks every provider that has them until one does. */
        vss_hresult (*diff_area_query)(void *state, const char *volume, struct vss_provider_diff_area *ret);
        /* The maximum size of the diff area, -1 for unbounded: the provider deletes the oldest
         * shadow copies that no longer fit (and reports each). */
        vss_hresult (*diff_area_set_max)(void *state, const char *volume, int64_t max_bytes);
};

/* The providers compiled into vssd (src/providers/), in the order of its provider table. */
extern const struct vss_provider_ops vss_provider_btrfs;
extern const struct vss_provider_ops vss_provider_cow; /* docs/cow-provider.md */

#ifdef __cplusplus
}
#endif

#endif
