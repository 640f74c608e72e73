#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# "vssadmin resize shadowstorage" to a smaller bound, through the whole stack: a cow volume
# whose diff area is on an ext4 loop filesystem E (64 MB bound), four shadows with 8 MB of
# fresh data written after each; shrinking to 14 MB deletes the oldest shadows that no
# longer fit (each logged like VolSnap 25 in `vssadmin list events`), the newest reads back
# exactly as taken, `list shadowstorage` shows the new maximum and used and allocated
# figures within it (the diff area file is cut);
# a maximum below the minimum is 0x8004231F and changes nothing; growing again keeps the
# newest shadow.
set -u
here=$(dirname "$0")
. "$here/../blackbox/lib.sh"
. "$here/cow-lib.sh"
cow_require "$VSSD" "$VSSADMIN" "$VSS_VOLSRV"
set +e +o pipefail
T=$(mktemp -d /tmp/cowprov-resize.XXXXXX)
export VSS_SOCKET=$T/sock
PID= fails=0
cleanup() {
        if [ -n "$PID" ]; then
                "$VSSADMIN" delete shadows /all /quiet >/dev/null 2>&1
                "$VSSADMIN" delete volume /name=rs >/dev/null 2>&1
                kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null
        fi
        cow_sweep "$T"
}
trap cleanup EXIT
A=$VSSADMIN
M=$T/mnt

bb_loopfs E e ext4 1024
printf '[storage]\nmin_diff_area_mb=4\n' >"$T/vssd.conf"
"$VSSD" --socket "$T/sock" --state-dir "$T/state" --config "$T/vssd.conf" 2>>"$T/vssd.log" & PID=$!
cow_wait_vssd
out=$($A add shadowstorage /for="$M" /on="$E" /maxsize=64MB 2>&1) && ok "64 MB on E" || fail "add: $out"
out=$($A create volume /name=rs /size=256MB /fs=ext4 /mount="$M" 2>&1) || { echo "FAIL: create volume: $out"; exit 1; }
[ -f "$E/.openvss/diff/rs.diff" ] && ok "diff area on E" || fail "no diff area on E"

ids=()
for i in 1 2 3 4; do
        out=$($A create shadow /for="$M" 2>&1) || fail "create shadow $i: $out"
        ids+=("$($A list shadows /for="$M" | awk '/Shadow Copy ID/{print $4}' | tail -n 1)")
        (cd "$M" && find . -type f ! -path './lost+found/*' | sort | xargs -r sha256sum >"$T/sums$i")
        dd if=/dev/urandom of="$M/f$i" bs=1M count=8 conv=fsync status=none
done
[ "$($A list shadows /for="$M" | grep -c "Shadow Copy ID")" = 4 ] && ok "four shadows in 64 MB" ||
        fail "shadows before the resize: $($A list shadows /for="$M")"
used0=$($A list shadowstorage --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["associations"][0]["used_bytes"])')
[ "$used0" -gt $((20 << 20)) ] && ok "used before: $used0 bytes" || fail "used before: $used0"

# ---- below the minimum: refused, nothing changes ----
out=$($A resize shadowstorage /for="$M" /on="$E" /maxsize=2MB 2>&1); rc=$?
[ $rc != 0 ] && grep -q "0x8004231F VSS_E_INSUFFICIENT_STORAGE" <<<"$out" && grep -q "minimum of 4 MB" <<<"$out" &&
        ok "below the minimum: 0x8004231F naming the minimum" || fail "below minimum: rc=$rc $out"
[ "$($A list shadows /for="$M" | grep -c "Shadow Copy ID")" = 4 ] &&
        $A list shadowstorage | grep -q "Maximum Shadow Copy Storage space: 64.0 MB" &&
        ok "refused resize changed nothing" || fail "after refused resize: $($A list shadowstorage)"
out=$($A resize shadowstorage /for="$M" /on=/ /maxsize=10MB 2>&1); rc=$?
[ $rc != 0 ] && grep -q "0x80042308 VSS_E_OBJECT_NOT_FOUND" <<<"$out" && ok "wrong on-volume: 0x80042308" ||
        fail "wrong on: rc=$rc $out"

# ---- shrink: the oldest go ----
# 8 MB per shadow plus ext4 metadata: the newest alone fits in 14 MB with room for
# the journal commits a slow run adds; with the one before it, it does not.
out=$($A resize shadowstorage /for="$M" /on="$E" /maxsize=14MB 2>&1) && ok "resized to 14 MB" || fail "resize: $out"
for _ in $(seq 50); do
        [ "$($A list shadows /for="$M" | grep -c "Shadow Copy ID")" -le 1 ] && break
        sleep 0.1
done
list=$($A list shadows /for="$M")
for i in 0 1 2; do
        grep -q "${ids[$i]}" <<<"$list" && fail "shadow $((i + 1)) survived a 14 MB bound" || ok "shadow $((i + 1)) deleted"
        $A list events | grep -q "deleted because the shadow copy storage could not grow in time.*${ids[$i]}" &&
                ok "deletion of shadow $((i + 1)) logged" || fail "no event for shadow $((i + 1))"
done
grep -q "${ids[3]}" <<<"$list" && ok "newest shadow kept" || fail "newest shadow lost: $list"
st=$($A list shadowstorage)
echo "$st"
grep -q "Maximum Shadow Copy Storage space: 14.0 MB" <<<"$st" && ok "list shadowstorage shows the new maximum" ||
        fail "list: $st"
used1=$($A list shadowstorage --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["associations"][0]["used_bytes"])')
[ "$used1" -le $((14 << 20)) ] && [ "$used1" -lt "$used0" ] && ok "used within the bound: $used1 bytes" ||
        fail "used after: $used1 (before $used0)"
# The diff area file itself shrinks: copies above the new end move down and the
# file is cut (one 16 KiB journal slot of slack, docs/cow-format.md).
alloc1=$($A list shadowstorage --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["associations"][0]["allocated_bytes"])')
fsize=$(stat -c %s "$E/.openvss/diff/rs.diff")
[ "$alloc1" -le $(((14 << 20) + 16384)) ] && [ "$fsize" -le $(((14 << 20) + 16384)) ] &&
        ok "diff area shrunk: allocated $alloc1, file $fsize bytes" ||
        fail "diff area not shrunk: allocated $alloc1, file $fsize bytes"
mkdir -p "$T/x"
out=$($A expose shadow /shadow="${ids[3]}" /at="$T/x" 2>&1) && (cd "$T/x" && sha256sum --quiet -c "$T/sums4") &&
        [ ! -e "$T/x/f4" ] && ok "newest shadow reads back exactly as taken" || fail "newest shadow: $out"
$A unexpose shadow /shadow="${ids[3]}" >/dev/null 2>&1

# ---- grow again: nothing more is lost, and the bound persists ----
out=$($A resize shadowstorage /for="$M" /on="$E" /maxsize=UNBOUNDED 2>&1) && ok "resized to UNBOUNDED" || fail "grow: $out"
dd if=/dev/urandom of="$M/g" bs=1M count=12 conv=fsync status=none
$A list shadows /for="$M" | grep -q "${ids[3]}" && ok "newest shadow kept after growing past the old bound" ||
        fail "newest lost after growing"
kill "$PID"; wait "$PID" 2>/dev/null
"$VSSD" --socket "$T/sock" --state-dir "$T/state" --config "$T/vssd.conf" 2>>"$T/vssd.log" & PID=$!
cow_wait_vssd
$A list shadowstorage | grep -q "Maximum Shadow Copy Storage space: UNBOUNDED" && ok "maximum persists across a restart" ||
        fail "after restart: $($A list shadowstorage)"
[ $fails = 0 ] || { echo "$fails check(s) failed"; tail -n 20 "$T/vssd.log"; exit 1; }
echo PASS
