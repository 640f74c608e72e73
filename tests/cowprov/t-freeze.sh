#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# vssd's freeze module (src/vssd/freeze.c) on a real ext4 loop mount, driven by
# freeze-tool (the module linked into a small program standing in for vssd):
#  a) thawed at the end; a write issued while frozen waits until then
#  b) a commit that hangs: the watchdog process thaws at the 10 s hold
#     deadline, the result is 0x80042314 VSS_E_HOLD_WRITES_TIMEOUT
#  c) kill -9 of the freezing process: the watchdog thaws at once
#  d) a filesystem holding a protected path (state dir, diff area) is refused
set -u
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
[ -e /dev/loop-control ] || { echo "SKIP: no loop devices"; exit 77; }
FREEZE_TOOL=${FREEZE_TOOL:-${BUILD_DIR:-build}/tests/cowprov/freeze-tool}
[ -x "$FREEZE_TOOL" ] || { echo "FAIL: $FREEZE_TOOL not built"; exit 1; }

T=$(mktemp -d /tmp/cowprov-freeze.XXXXXX)
MNT=$T/mnt LOOP= TOOLPID= fails=0
cleanup() {
        [ -n "$TOOLPID" ] && kill -9 "$TOOLPID" 2>/dev/null
        fsfreeze -u "$MNT" 2>/dev/null
        mountpoint -q "$MNT" && umount "$MNT"
        [ -n "$LOOP" ] && losetup -d "$LOOP"
        rm -rf "$T"
}
trap cleanup EXIT
. "$(dirname "$0")/../check.sh"
ms() { echo $(( $(date +%s%N) / 1000000 )); }

truncate -s 256M "$T/img"
LOOP=$(losetup -f --show "$T/img") || exit 1
mkfs.ext4 -q "$LOOP" || exit 1
mkdir "$MNT" && mount "$LOOP" "$MNT" || exit 1
echo hello > "$MNT/file"

# Waits (up to 5 s) for "frozen" in the tool's output file.
wait_frozen() {
        for _ in $(seq 100); do grep -q '^frozen' "$1" && return 0; sleep 0.05; done
        return 1
}

# a) normal freeze: writes wait for the thaw, which happens at the end.
"$FREEZE_TOOL" -s 1500 "$MNT" > "$T/a.out" & TOOLPID=$!
wait_frozen "$T/a.out" || fail "a: never frozen"
t0=$(ms)
( echo a > "$MNT/a"; sync -f "$MNT/a"; ms > "$T/a.done" ) &
wpid=$!
wait "$TOOLPID"; rc=$?; TOOLPID=
wait "$wpid"
t1=$(cat "$T/a.done")
grep -q "result 0x00000000 S_OK" "$T/a.out" && [ "$rc" = 0 ] && ok "a: S_OK" || fail "a: $(cat "$T/a.out")"
[ $((t1 - t0)) -ge 1000 ] && ok "a: write waited $((t1 - t0)) ms for the thaw" || fail "a: write not held ($((t1 - t0)) ms)"
if fsfreeze -u "$MNT" 2>/dev/null; then fail "a: was still frozen after the tool returned"; else ok "a: thawed (FITHAW done)"; fi

# b) hanging commit: the watchdog thaws at 10 s.
"$FREEZE_TOOL" -s 13000 "$MNT" > "$T/b.out" & TOOLPID=$!
wait_frozen "$T/b.out" || fail "b: never frozen"
t0=$(ms)
( echo b > "$MNT/b"; sync -f "$MNT/b"; ms > "$T/b.done" ) &
wpid=$!
wait "$wpid"
t1=$(cat "$T/b.done")
kill -0 "$TOOLPID" 2>/dev/null && ok "b: commit still hanging when the write completed" || fail "b: tool ended first"
d=$((t1 - t0))
[ "$d" -ge 9000 ] && [ "$d" -le 11500 ] && ok "b: watchdog thawed after $d ms" || fail "b: write completed after $d ms, expected ~10000"
wait "$TOOLPID"; rc=$?; TOOLPID=
grep -q "result 0x80042314 VSS_E_HOLD_WRITES_TIMEOUT" "$T/b.out" && [ "$rc" = 1 ] && ok "b: $(grep result "$T/b.out")" \
        || fail "b: $(cat "$T/b.out")"
if fsfreeze -u "$MNT" 2>/dev/null; then fail "b: still frozen"; else ok "b: not frozen afterwards"; fi

# c) the freezing process is killed: thawed at once.
"$FREEZE_TOOL" -s 60000 "$MNT" > "$T/c.out" & TOOLPID=$!
wait_frozen "$T/c.out" || fail "c: never frozen"
( echo c > "$MNT/c"; sync -f "$MNT/c"; ms > "$T/c.done" ) &
wpid=$!
sleep 0.5
[ -e "$T/c.done" ] && fail "c: write was not held while frozen"
t0=$(ms)
kill -9 "$TOOLPID"; wait "$TOOLPID" 2>/dev/null; TOOLPID=
wait "$wpid"
d=$(( $(cat "$T/c.done") - t0 ))
[ "$d" -le 1500 ] && ok "c: thawed $d ms after kill -9" || fail "c: thawed only $d ms after kill -9"
[ "$(cat "$MNT/c")" = c ] && ok "c: write landed" || fail "c: write lost"

# d) protected filesystems are refused, nothing is frozen.
mkdir -p "$MNT/state"
"$FREEZE_TOOL" -s 2000 -p "$MNT/state" "$MNT" > "$T/d.out"; rc=$?
grep -q "result 0x8004230C VSS_E_VOLUME_NOT_SUPPORTED: refusing to freeze" "$T/d.out" && [ "$rc" = 1 ] \
        && ok "d: $(cat "$T/d.out")" || fail "d: $(cat "$T/d.out")"
grep -q '^frozen' "$T/d.out" && fail "d: froze anyway"
t0=$(ms); echo d > "$MNT/d"; sync -f "$MNT/d"; d=$(( $(ms) - t0 ))
[ "$d" -le 1000 ] && ok "d: filesystem stayed writable" || fail "d: write took $d ms"

check_exit
