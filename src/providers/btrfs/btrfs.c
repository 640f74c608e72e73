/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The btrfs provider: shadow copies are read-only btrfs snapshots kept in a
 * nested subvolume <volume>/.openvss.  (Skeleton: real operations follow.)
 */

#include "vss/provider.h"

static vss_hresult btrfs_init(struct vss_provider_ctx *ctx, void **ret_state)
{
        *ret_state = ctx;
        return VSS_S_OK;
}

static void btrfs_done(void *state)
{
}

static vss_hresult btrfs_is_volume_supported(void *state, const char *volume, const char *fstype,
                                             bool *ret_supported)
{
        *ret_supported = false;
        return VSS_S_OK;
}

static vss_hresult btrfs_not_yet(void *state, struct vss_provider_snapshot *snaps, size_t n)
{
        return VSS_E_PROVIDER_VETO;
}

static vss_hresult btrfs_noop(void *state, struct vss_provider_snapshot *snaps, size_t n)
{
        return VSS_S_OK;
}

static vss_hresult btrfs_begin_prepare(void *state, struct vss_provider_snapshot *snap)
{
        return VSS_E_VOLUME_NOT_SUPPORTED_BY_PROVIDER;
}

static vss_hresult btrfs_delete(void *state, const struct vss_provider_snapshot *snap)
{
        return VSS_E_OBJECT_NOT_FOUND;
}

static vss_hresult btrfs_expose(void *state, const struct vss_provider_snapshot *snap, const char *path)
{
        return VSS_E_OBJECT_NOT_FOUND;
}

const struct vss_provider_ops vss_provider_btrfs = {
        .name = "openvss btrfs provider",
        .provider_id = "{2f766f55-e365-48e4-a471-956372f96e2d}",
        .type = VSS_PROV_SOFTWARE,
        .version = "1.0.0",
        .needs_freeze = false,
        .init = btrfs_init,
        .done = btrfs_done,
        .is_volume_supported = btrfs_is_volume_supported,
        .begin_prepare = btrfs_begin_prepare,
        .end_prepare = btrfs_noop,
        .pre_commit = btrfs_noop,
        .commit = btrfs_not_yet,
        .post_commit = btrfs_noop,
        .abort = btrfs_noop,
        .delete_snapshot = btrfs_delete,
        .expose = btrfs_expose,
        .unexpose = btrfs_expose,
};
