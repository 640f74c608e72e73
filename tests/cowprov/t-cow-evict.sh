#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A full diff area deletes the OLDEST shadow copies, through the whole stack: a cow volume
# with a 12 MB shadow storage bound, shadows taken between 5 MB writes of fresh data; the
# oldest goes, the newest stays readable, `vssadmin list events` tells why (like VolSnap 25),
# and `list shadowstorage` shows the bound.  The oldest is exposed (and busy) when it is
# evicted: its mount and loop device go with it.
set -u
. "$(dirname "$0")/cow-lib.sh"
cow_require "$VSSD" "$VSSADMIN" "$VSS_VOLSRV"
T=$(mktemp -d /tmp/cowprov-evict.XXXXXX)
export VSS_SOCKET=$T/sock
PID= fails=0
cleanup() {
        if [ -n "$PID" ]; then
                "$VSSADMIN" delete shadows /all /quiet >/dev/null 2>&1
                "$VSSADMIN" delete shadowstorage /for="$T/mnt" /quiet >/dev/null 2>&1
                "$VSSADMIN" delete volume /name=ev >/dev/null 2>&1
                kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null
        fi
        cow_sweep "$T"
}
trap cleanup EXIT
A=$VSSADMIN

printf '[storage]\nmin_diff_area_mb=1\n' >"$T/vssd.conf"
"$VSSD" --socket "$T/sock" --state-dir "$T/state" --config "$T/vssd.conf" 2>>"$T/vssd.log" & PID=$!
for _ in $(seq 50); do [ -S "$T/sock" ] && break; sleep 0.1; done
out=$($A create volume /name=ev /size=256MB /fs=ext4 /mount="$T/mnt" 2>&1) || { echo "FAIL: create volume: $out"; exit 1; }
out=$($A add shadowstorage /for="$T/mnt" /on=/ /maxsize=12MB 2>&1) && ok "12 MB bound" || fail "add: $out"
ids=()
for i in 1 2 3; do
        $A create shadow /for="$T/mnt" >/dev/null 2>&1 || fail "create shadow $i"
        ids+=("$($A list shadows /for="$T/mnt" | awk '/Shadow Copy ID/{print $4}' | tail -n 1)")
        if [ "$i" = 1 ]; then
                # Exposed, and a reader sits in it, when the write load evicts it.
                mkdir -p "$T/x0"
                out=$($A expose shadow /shadow="${ids[0]}" /at="$T/x0" 2>&1) && mountpoint -q "$T/x0" &&
                        ok "oldest shadow exposed at $T/x0" || fail "expose oldest: $out"
                (cd "$T/x0" && sleep 3) &
                holder=$!
        fi
        dd if=/dev/urandom of="$T/mnt/f$i" bs=1M count=5 conv=fsync status=none
done
list=$($A list shadows /for="$T/mnt")
grep -q "${ids[0]}" <<<"$list" && fail "the oldest shadow survived a full diff area" || ok "oldest shadow evicted"
grep -q "${ids[2]}" <<<"$list" && ok "newest shadow kept" || fail "newest shadow lost: $list"
$A list events | grep -q "deleted because the shadow copy storage could not grow in time.*${ids[0]}" &&
        ok "eviction logged" || fail "no eviction event: $($A list events | tail -n 5)"
# The eviction took the exposure with it: no mount, no loop device on the dead shadow file.
guid0=$(tr -d '{}' <<<"${ids[0]}" | tr 'A-F' 'a-f')
for _ in $(seq 50); do
        mountpoint -q "$T/x0" || break
        sleep 0.1
done
mountpoint -q "$T/x0" && fail "the evicted shadow is still mounted at $T/x0" || ok "evicted shadow unmounted"
wait "$holder"
for _ in $(seq 50); do
        losetup -l -n -O BACK-FILE | grep -qi "$guid0" || break
        sleep 0.1
done
losetup -l -n -O NAME,BACK-FILE | grep -i "$guid0" && fail "a loop device still holds the evicted shadow" ||
        ok "no loop device left on the evicted shadow"
$A list events | grep -q "removed the exposure at $T/x0 of shadow copy ${ids[0]}, which was deleted to make room" &&
        ok "removal of the exposure logged" || fail "no event for the exposure: $($A list events | tail -n 5)"
$A list shadowstorage | grep -q "Maximum Shadow Copy Storage space: 12.0 MB" && ok "list shadowstorage" ||
        fail "list shadowstorage: $($A list shadowstorage)"
mkdir -p "$T/x"
out=$($A expose shadow /shadow="${ids[2]}" /at="$T/x" 2>&1) && [ -f "$T/x/f2" ] && [ ! -e "$T/x/f3" ] &&
        ok "newest shadow reads back as taken" || fail "newest shadow: $out"
$A unexpose shadow /shadow="${ids[2]}" >/dev/null 2>&1
[ $fails = 0 ] || { echo "$fails check(s) failed"; tail -n 20 "$T/vssd.log"; exit 1; }
