#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Shadow storage associations through vssadmin and a private vssd: add below the
# minimum -> E_INVALIDARG, add twice -> 0x8004230D, list layout, resize, delete,
# persistence across a vssd restart.
set -u
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
[ -e /dev/loop-control ] || { echo "SKIP: no loop devices"; exit 77; }
VSSD=${VSSD:-${BUILD_DIR:-build}/src/vssd/vssd}
VSSADMIN=${VSSADMIN:-${BUILD_DIR:-build}/src/tools/vssadmin/vssadmin}
[ -x "$VSSD" ] && [ -x "$VSSADMIN" ] || { echo "FAIL: vssd/vssadmin not built"; exit 1; }

T=$(mktemp -d /tmp/cowprov-storage.XXXXXX)
LOOPS=() PID= fails=0
export VSS_SOCKET=$T/sock
cleanup() {
        [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
        for m in a b; do mountpoint -q "$T/$m" && umount "$T/$m"; done
        for l in "${LOOPS[@]}"; do losetup -d "$l"; done
        rm -rf "$T"
}
trap cleanup EXIT
. "$(dirname "$0")/../check.sh"
start() { "$VSSD" --socket "$T/sock" --state-dir "$T/state" --config "$T/vssd.conf" 2>>"$T/vssd.log" & PID=$!
        for _ in $(seq 50); do [ -S "$T/sock" ] && break; sleep 0.1; done; }
stop() { kill "$PID"; wait "$PID"; PID=; }

for m in a b; do
        truncate -s 1G "$T/$m.img"
        l=$(losetup -f --show "$T/$m.img") || exit 1
        LOOPS+=("$l")
        mkfs.ext4 -q "$l" && mkdir "$T/$m" && mount "$l" "$T/$m" || exit 1
done
printf '[storage]\nmin_diff_area_mb=320\n' > "$T/vssd.conf"
start

out=$("$VSSADMIN" add shadowstorage /for="$T/a" /on="$T/b" /maxsize=100MB 2>&1); rc=$?
[ $rc != 0 ] && grep -q "0x80070057" <<<"$out" && grep -q "320 MB" <<<"$out" && ok "below minimum refused" || fail "below minimum: $out"
out=$("$VSSADMIN" add shadowstorage /for="$T/a" /on="$T/b" /maxsize=400MB 2>&1) && ok "added" || fail "add: $out"
out=$("$VSSADMIN" add shadowstorage /for="$T/a" /on="$T/b" /maxsize=500MB 2>&1); rc=$?
[ $rc != 0 ] && grep -q "0x8004230D" <<<"$out" && ok "add twice refused" || fail "add twice: $out"
out=$("$VSSADMIN" add shadowstorage /for="$T/a/lost+found" /on="$T/b" 2>&1); rc=$?
[ $rc != 0 ] && grep -q "not a volume" <<<"$out" && ok "non-volume refused" || fail "non-volume: $out"
out=$("$VSSADMIN" list shadowstorage 2>&1)
echo "$out"
grep -q "For volume: ($T/a)" <<<"$out" && grep -q "Maximum Shadow Copy Storage space: 400 MB" <<<"$out" \
        && ok "list layout" || fail "list: $out"
out=$("$VSSADMIN" resize shadowstorage /for="$T/a" /on="$T/b" /maxsize=UNBOUNDED 2>&1) && ok "resized" || fail "resize: $out"
stop; start
out=$("$VSSADMIN" list shadowstorage /for="$T/a" 2>&1)
grep -q "UNBOUNDED" <<<"$out" && ok "persisted across restart" || fail "after restart: $out"
out=$("$VSSADMIN" delete shadowstorage /for="$T/a" /quiet 2>&1) && ok "deleted" || fail "delete: $out"
out=$("$VSSADMIN" list shadowstorage 2>&1)
grep -q "For volume" <<<"$out" && fail "still listed: $out" || ok "gone"
check_exit
