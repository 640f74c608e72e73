#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# bench/revert.sh [BUILD_DIR] [REPS] [MB]: how long `vssadmin revert shadow` takes, end to
# end (the command's wall time: unmount, revert, mount again), on a 1 GiB ext4 cow volume and
# on a btrfs subvolume of a 3 GiB loop filesystem, after MB MiB of a file were rewritten
# since the shadow copy.  Each repetition rewrites the same MB MiB again and reverts to the
# same shadow copy.  A benchmark, not a test: it prints figures (min / median / max ms).
set -u
B=${1:-build-test} REPS=${2:-3} MB=${3:-200}
B=$(cd "$B" && pwd) || exit 1
VSSD=$B/src/vssd/vssd VSSADMIN=$B/src/tools/vssadmin/vssadmin
export VSS_VOLSRV=$B/src/volsrv/vss-volsrv
[ "$(id -u)" = 0 ] || { echo "needs root"; exit 1; }
T=$(mktemp -d "${TMPDIR:-/tmp}/bench-revert.XXXXXX")
export VSS_SOCKET=$T/sock
PID= LOOP=
cleanup() {
        "$VSSADMIN" delete shadows /all /quiet >/dev/null 2>&1
        "$VSSADMIN" delete volume /name=benchrev >/dev/null 2>&1
        [ -n "$PID" ] && kill "$PID" && wait "$PID" 2>/dev/null
        umount "$T/b" 2>/dev/null
        umount "$T/btop" 2>/dev/null
        [ -n "$LOOP" ] && losetup -d "$LOOP"
        rm -rf "$T"
}
trap cleanup EXIT
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }
stats() { sort -n | awk '{ a[NR] = $1 } END { printf "min %d / median %d / max %d ms (%d reps)\n", a[1], a[int((NR + 1) / 2)], a[NR], NR }'; }

# revert_reps VOL FILE: the shadow copy of VOL, then REPS times rewrite MB MiB of FILE and revert.
revert_reps() {
        local vol=$1 f=$2 id t
        "$VSSADMIN" create shadow /for="$vol" >/dev/null || { echo "create shadow of $vol failed" >&2; return 1; }
        id=$("$VSSADMIN" list shadows /for="$vol" | awk '/Shadow Copy ID/ { print $4 }')
        for _ in $(seq "$REPS"); do
                dd if=/dev/urandom of="$f" bs=1M count="$MB" conv=notrunc status=none
                sync
                t=$(date +%s%N)
                "$VSSADMIN" revert shadow /shadow="$id" /quiet >/dev/null || { echo "revert failed" >&2; return 1; }
                ms_since "$t"
        done
}

"$VSSD" --socket "$T/sock" --state-dir "$T/state" 2>>"$T/vssd.log" &
PID=$!
for _ in $(seq 50); do "$VSSADMIN" list writers >/dev/null 2>&1 && break; sleep 0.1; done

"$VSSADMIN" create volume /name=benchrev /size=1GB /fs=ext4 /mount="$T/c" >/dev/null || exit 1
head -c "$((MB + 50))M" /dev/urandom >"$T/c/f"
sync
echo "cow ext4, 1 GiB volume, $MB MiB rewritten: $(revert_reps "$T/c" "$T/c/f" | stats)"

truncate -s 3G "$T/b.img"
LOOP=$(losetup -f --show "$T/b.img")
mkfs.btrfs -q -f "$LOOP" >/dev/null || exit 1
mkdir -p "$T/btop" "$T/b"
mount "$LOOP" "$T/btop" && btrfs -q subvolume create "$T/btop/d" && umount "$T/btop" || exit 1
mount -o subvol=/d "$LOOP" "$T/b" || exit 1
head -c "$((MB + 50))M" /dev/urandom >"$T/b/f"
sync
echo "btrfs subvolume, 3 GiB filesystem, $MB MiB rewritten: $(revert_reps "$T/b" "$T/b/f" | stats)"
