# SPDX-License-Identifier: LGPL-2.1-or-later
# Shared by the cow-volume tests (sourced), on top of the checks all shell tests share.

# ok, fail, die, wait_until, check_exit
. "$(dirname "${BASH_SOURCE[0]}")/../check.sh"

# cow_require BIN...: skip (77) without root, loop devices or FUSE; fail if a binary is
# missing; export VSS_VOLSRV for vssd.
cow_require()
{
        local b
        [ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
        [ -e /dev/loop-control ] || { echo "SKIP: no loop devices"; exit 77; }
        [ -e /dev/fuse ] || { echo "SKIP: no /dev/fuse"; exit 77; }
        for b in "$@"; do [ -x "$b" ] || { echo "FAIL: $b not built"; exit 1; }; done
        export VSS_VOLSRV
}

# cow_wait_vssd: until the daemon on $VSS_SOCKET answers (at most 5 s).
cow_wait_vssd()
{
        wait_until 5 eval '"$VSSADMIN" list writers >/dev/null 2>&1'
}

# cow_sweep DIR: remove whatever a failed test left under DIR, in the order that cannot
# hang: mounts on loop devices, the loop devices, the volume servers, then the FUSE mounts
# a killed volume server leaves behind, and finally DIR itself.
cow_sweep()
{
        local dir=$1
        grep -F " $dir/" /proc/self/mounts | awk '{print $2}' | sort -r | while read -r m; do umount -l "$m"; done
        losetup -a | grep -F "$dir/" | cut -d: -f1 | while read -r l; do losetup -d "$l"; done
        # A loop on a file of a FUSE mount that is gone shows the file's path inside it.
        losetup -l -n -O NAME,BACK-FILE | awk '$2 ~ "^/shadows/" {print $1}' | while read -r l; do losetup -d "$l"; done
        if pkill -f "vss-volsrv.*$dir/" 2>/dev/null; then
                for _ in $(seq 50); do pgrep -f "vss-volsrv.*$dir/" >/dev/null || break; sleep 0.1; done
        fi
        grep -F " $dir/" /proc/self/mounts | awk '{print $2}' | while read -r m; do umount -l "$m"; done
        rm -rf "$dir"
}
