# SPDX-License-Identifier: LGPL-2.1-or-later
# Shared by the cow-volume tests (sourced).

# cow_sweep DIR: remove whatever a failed test left under DIR, in the order that cannot
# hang: mounts on loop devices, the loop devices, the volume servers, then the FUSE mounts
# a killed volume server leaves behind, and finally DIR itself.
cow_sweep()
{
        local dir=$1
        grep -F " $dir/" /proc/self/mounts | awk '{print $2}' | sort -r | while read -r m; do umount -l "$m"; done
        losetup -a | grep -F "$dir/" | cut -d: -f1 | while read -r l; do losetup -d "$l"; done
        pkill -f "vss-volsrv.*$dir/" 2>/dev/null && sleep 0.2
        grep -F " $dir/" /proc/self/mounts | awk '{print $2}' | while read -r m; do umount -l "$m"; done
        rm -rf "$dir"
}
