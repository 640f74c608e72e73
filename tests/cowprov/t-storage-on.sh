#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# "vssadmin add shadowstorage /for=D: /on=E:" for cow volumes, through the real tools: an
# ext4 loop filesystem E as the on-volume, the association added before the cow volume
# exists (its mount path does not exist yet), the volume created: its diff area is a
# root-only file on E and not in the state directory; shadows read back the old data
# while the diff area grows on E; a too-small on-volume is 0x8004231F naming the bytes, a
# diff area on the volume itself 0x8004230C, deleting the association or moving the diff
# area while shadows exist 0x8004231D; an existing volume's diff area moves to E when
# its association is added, and back when it is deleted, its data intact; clean removal.
set -u
here=$(dirname "$0")
. "$here/../blackbox/lib.sh"
. "$here/cow-lib.sh"
cow_require "$VSSD" "$VSSADMIN" "$VSHADOW" "$VSS_VOLSRV"
set +e +o pipefail
T=$(mktemp -d /tmp/cowprov-storage-on.XXXXXX)
export VSS_SOCKET=$T/sock
PID= fails=0
cleanup() {
        if [ -n "$PID" ]; then
                "$VSSADMIN" delete shadows /all /quiet >/dev/null 2>&1
                for n in dv fv; do "$VSSADMIN" delete volume /name=$n >/dev/null 2>&1; done
                kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null
        fi
        cow_sweep "$T"
}
trap cleanup EXIT
A=$VSSADMIN
# expect CMD...: the command must fail with the HRESULT in $want (hex and name) in its output.
expect() { local out rc; out=$("$@" 2>&1); rc=$?
        [ $rc != 0 ] && grep -q "$want" <<<"$out" && ok "$what: $want" || fail "$what: rc=$rc $out"; }
newest() { $A list shadows /for="$1" | awk '/Shadow Copy ID/{print $4}' | tail -n 1; }
sz() { stat -c %s "$1" 2>/dev/null || echo 0; }

bb_loopfs E e ext4 1024          # the on-volume
bb_loopfs S s ext4 200           # too small for the 320 MB minimum
D=$T/d F=$T/f                    # cow volume mount points (not there yet)
"$VSSD" --socket "$T/sock" --state-dir "$T/state" 2>>"$T/vssd.log" & PID=$!
cow_wait_vssd

# ---- the association first, for a volume that does not exist yet ----
what="on-volume too small" want="0x8004231F VSS_E_INSUFFICIENT_STORAGE" expect $A add shadowstorage /for="$D" /on="$S" /maxsize=400MB
out=$($A add shadowstorage /for="$D" /on="$S" /maxsize=400MB 2>&1)
grep -Eq "has [0-9]+ bytes free, a diff area needs at least 335544320 bytes" <<<"$out" &&
        ok "the refusal names free and needed bytes" || fail "message: $out"
what="diff area on the volume itself" want="0x8004230C VSS_E_VOLUME_NOT_SUPPORTED" expect $A add shadowstorage /for="$E" /on="$E"
what="relative for-path" want="0x80070057" expect $A add shadowstorage /for=d /on="$E"
out=$($A add shadowstorage /for="$D" /on="$E" /maxsize=400MB 2>&1) && ok "association for a volume to come" || fail "add: $out"
what="second association" want="0x8004230D VSS_E_OBJECT_ALREADY_EXISTS" expect $A add shadowstorage /for="$D" /on="$E"
$A list shadowstorage /for="$D" | grep -q "For volume: ($D)" && ok "pending association listed" ||
        fail "list: $($A list shadowstorage 2>&1)"

out=$($A create volume /name=dv /size=256MB /fs=ext4 /mount="$D" 2>&1) && mountpoint -q "$D" &&
        ok "cow volume created on the associated mount path" || { fail "create volume: $out"; exit 1; }
DIFF=$E/.openvss/diff/dv.diff
[ -f "$DIFF" ] && [ ! -e "$T/state/volumes/dv/diff.area" ] && ok "diff area on E, not in the state dir" ||
        fail "diff area: $(find "$E" "$T/state" -name '*diff*' 2>&1)"
[ "$(stat -c %a "$E/.openvss") $(stat -c %a "$E/.openvss/diff") $(stat -c %a "$DIFF")" = "700 700 600" ] &&
        ok "root-only permissions" || fail "modes: $(stat -c '%n %a' "$E/.openvss" "$E/.openvss/diff" "$DIFF")"
pgrep -af "vss-volsrv.*--diff $DIFF" >/dev/null && ok "the volume server uses it" || fail "volsrv: $(pgrep -af vss-volsrv)"
list=$($A list shadowstorage /for="$D")
grep -q "Shadow Copy Storage volume: ($E)/dev/loop" <<<"$list" && grep -q "Maximum Shadow Copy Storage space: 400 MB" <<<"$list" &&
        ok "list shadowstorage: for, on, maximum" || fail "list: $list"
$A list shadowstorage --json | grep -q "\"diff_area\": \"$DIFF\"" && ok "Storage.List names the diff area" ||
        fail "json: $($A list shadowstorage --json)"

# ---- shadows: old data reads back, E fills ----
head -c 8M /dev/urandom >"$D/a"; sync -f "$D"
(cd "$D" && sha256sum a >"$T/sum1")
s0=$(sz "$DIFF")
out=$($A create shadow /for="$D" 2>&1) && ok "shadow 1" || fail "create shadow: $out"
id1=$(newest "$D")
head -c 8M /dev/urandom >"$D/a"; sync -f "$D"
(cd "$D" && sha256sum a >"$T/sum2")
out=$("$VSHADOW" -nw --exec="cd \"\$VSHADOW_MOUNT_1\" && sha256sum --quiet -c $T/sum2" "$D" 2>&1) &&
        ok "vshadow: a second shadow reads the data at its creation" || fail "vshadow: $out"
head -c 8M /dev/urandom >"$D/a"; sync -f "$D"
mkdir -p "$T/x"
out=$($A expose shadow /shadow="$id1" /at="$T/x" 2>&1) && (cd "$T/x" && sha256sum --quiet -c "$T/sum1") &&
        ok "shadow 1 still reads the old data" || fail "expose: $out"
$A unexpose shadow /shadow="$id1" >/dev/null 2>&1
s1=$(sz "$DIFF")
[ "$s1" -gt "$((s0 + 8000000))" ] && ok "diff area grew on E ($s0 -> $s1 bytes)" || fail "diff area size $s0 -> $s1"
used=$($A list shadowstorage /for="$D" | awk '/Used Shadow/{print $6, $7}')
[ -n "$used" ] && [ "$used" != "0 B" ] && ok "used space listed: $used" || fail "used: $($A list shadowstorage)"

# ---- in use ----
what="delete association with shadows" want="0x8004231D VSS_E_VOLUME_IN_USE" expect $A delete shadowstorage /for="$D" /quiet
what="delete volume with shadows" want="0x8004231D VSS_E_VOLUME_IN_USE" expect $A delete volume /name=dv
[ -f "$DIFF" ] && $A list shadows /for="$D" | grep -q "$id1" && ok "nothing changed by the refusals" || fail "after refusals"

# ---- an existing volume: its diff area moves to E and back ----
out=$($A create volume /name=fv /size=512MB /fs=xfs /mount="$F" 2>&1) && ok "second cow volume (XFS), no association" ||
        fail "create fv: $out"
[ -f "$T/state/volumes/fv/diff.area" ] && ok "its diff area starts in the state dir" || fail "fv diff area"
head -c 4M /dev/urandom >"$F/b"; (cd "$F" && sha256sum b >"$T/sumf")
out=$($A create shadow /for="$F" 2>&1) || fail "shadow of fv: $out"
what="move a diff area holding shadows" want="0x8004231D VSS_E_VOLUME_IN_USE" expect $A add shadowstorage /for="$F" /on="$E" /maxsize=500MB
$A list shadowstorage /for="$F" 2>/dev/null | grep -q "For volume" && fail "refused association recorded" || ok "refused association not recorded"
$A delete shadows /for="$F" /all /quiet >/dev/null 2>&1
out=$($A add shadowstorage /for="$F" /on="$E" /maxsize=500MB 2>&1) && ok "association added to an existing volume" || fail "add F: $out"
[ -f "$E/.openvss/diff/fv.diff" ] && [ ! -e "$T/state/volumes/fv/diff.area" ] && mountpoint -q "$F" &&
        (cd "$F" && sha256sum --quiet -c "$T/sumf") && ok "diff area moved to E, volume back online with its data" ||
        fail "move: $(ls -la "$E/.openvss/diff" "$T/state/volumes/fv")"
out=$($A create shadow /for="$F" 2>&1) && echo x >>"$F/b" && sync -f "$F" &&
        [ "$(sz "$E/.openvss/diff/fv.diff")" -gt 0 ] && ok "shadows of the moved volume use E" || fail "shadow after move: $out"
what="delete association of the moved volume with shadows" want="0x8004231D VSS_E_VOLUME_IN_USE" expect $A delete shadowstorage /for="$F" /quiet
$A delete shadows /for="$F" /all /quiet >/dev/null 2>&1
(cd "$F" && sha256sum b >"$T/sumf")
out=$($A delete shadowstorage /for="$F" /quiet 2>&1) && [ -f "$T/state/volumes/fv/diff.area" ] &&
        [ ! -e "$E/.openvss/diff/fv.diff" ] && (cd "$F" && sha256sum --quiet -c "$T/sumf") &&
        ok "association deleted: diff area back in the state dir, data intact" || fail "delete F: $out"
$A list events | grep -q "diff area of cow volume fv .* moved from" && ok "moves logged" || fail "no move event"

# ---- a restart keeps the placement ----
kill "$PID"; wait "$PID" 2>/dev/null
"$VSSD" --socket "$T/sock" --state-dir "$T/state" 2>>"$T/vssd.log" & PID=$!
cow_wait_vssd
$A list shadowstorage /for="$D" | grep -q "Shadow Copy Storage volume: ($E)" && $A list shadows /for="$D" | grep -q "$id1" &&
        ok "association and shadow survive a vssd restart" || fail "after restart: $($A list shadowstorage 2>&1)"

# ---- clean removal ----
$A delete shadows /all /quiet >/dev/null 2>&1
for n in dv fv; do out=$($A delete volume /name=$n 2>&1) || fail "delete $n: $out"; done
[ ! -e "$E/.openvss" ] && ok "diff area and its directories removed from E" || fail "left on E: $(find "$E/.openvss")"
out=$($A delete shadowstorage /for="$D" /quiet 2>&1) && ok "association of an unmounted path deleted" || fail "delete D: $out"
$A list shadowstorage | grep -q "For volume" && fail "associations left: $($A list shadowstorage)" || ok "no association left"
for _ in $(seq 50); do pgrep -f "vss-volsrv.*$T/" >/dev/null || break; sleep 0.1; done
pgrep -f "vss-volsrv.*$T/" >/dev/null && fail "a volume server outlived its volume" || ok "no volume server left"
umount "$E" && ok "E unmounts: nothing holds it" || fail "E busy: $(fuser -vm "$E" 2>&1)"
[ $fails = 0 ] || { echo "$fails check(s) failed"; tail -n 30 "$T/vssd.log"; exit 1; }
echo PASS
