#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Previous Versions without a client: `vssadmin add previousversions` on a btrfs volume
# (default DIR, VOLUME/.snapshots) and on a cow ext4 volume (/at=DIR) shows every shadow
# copy, older and newer, read-only as DIR/@GMT-YYYY.MM.DD-HH.MM.SS with the content it had;
# a deleted shadow copy and one the cow store evicts disappear from DIR; the publication
# and its mounts survive a vssd restart and shadows created after it appear too; a killed
# volume server's published shadows are mounted again on its successor; a revert unmounts
# them and publishes the shadows it keeps again;
# `delete previousversions` and `delete volume` leave nothing mounted and remove the DIRs
# vssd made.
set -u
. "$(dirname "$0")/pv-lib.sh"
pv_require
T=$(mktemp -d /tmp/pv-core.XXXXXX)
chmod 755 "$T"
trap pv_cleanup EXIT
pv_setup
B=$T/b C=$T/c CD=$T/cpv

# Two shadow copies per volume, the live file changed between and after.
declare -A id
for v in b c; do
        echo "$v one" >"$T/$v/doc.txt"; sync -f "$T/$v"
        id[$v.1]=$(pv_shadow "$T/$v") || fail "create shadow 1 of $v"
done
# vssd mounts as root in DIR: one that others may write to, or a symlink, is refused.
mkdir -m 1777 "$T/ww"
for d in "$T/ww" "$B/link-to-ww"; do
        [ "$d" = "$B/link-to-ww" ] && ln -s "$T/ww" "$d"
        out=$($A add previousversions /for="$B" /at="$d" 2>&1) && fail "published at unsafe $d" ||
                { grep -q 0x80070057 <<<"$out" && ok "unsafe DIR $d refused (E_INVALIDARG)" || fail "unsafe $d: $out"; }
done
rm -f "$B/link-to-ww"
out=$($A add previousversions /for="$B" 2>&1) && grep -q "at '$B/.snapshots' (1 shadow copies)" <<<"$out" &&
        ok "btrfs published at the default DIR" || fail "add btrfs: $out"
out=$($A add previousversions /for="$C" /at="$CD" 2>&1) && ok "cow published at $CD" || fail "add cow: $out"
out=$($A add previousversions /for="$B" 2>&1) && fail "published twice: $out" ||
        { grep -q 0x8004230D <<<"$out" && ok "a second publication is VSS_E_OBJECT_ALREADY_EXISTS" || fail "twice: $out"; }
out=$($A add previousversions /for="$B/.snapshots" 2>&1) && fail "a directory published as a volume" ||
        { grep -q 0x80042308 <<<"$out" && ok "a directory is not a volume: VSS_E_OBJECT_NOT_FOUND" || fail "dir: $out"; }
for v in b c; do
        echo "$v two" >"$T/$v/doc.txt"; sync -f "$T/$v"
        id[$v.2]=$(pv_shadow "$T/$v") || fail "create shadow 2 of $v"
        echo "$v three" >"$T/$v/doc.txt"; sync -f "$T/$v"
done

check_dir() {   # VOLUME DIR EXPECTED-CONTENTS...
        local vol=$1 dir=$2 names n=0 want
        shift 2
        mapfile -t names < <(pv_names "$dir")
        [ ${#names[@]} = $# ] && ok "$dir holds ${#names[@]} previous versions" ||
                { fail "$dir holds ${names[*]:-nothing}, wanted $# versions"; return; }
        for want in "$@"; do
                local p=$dir/${names[$n]}
                n=$((n + 1))
                [ "$(cat "$p/doc.txt" 2>&1)" = "$want" ] && ok "${p#$T/}/doc.txt is '$want'" ||
                        fail "$p/doc.txt: $(cat "$p/doc.txt" 2>&1), wanted '$want'"
                mountpoint -q "$p" || fail "$p is not a mount point"
                touch "$p/new" 2>/dev/null && fail "$p is writable"
        done
        [ "$(cat "$vol/doc.txt")" = "${vol##*/} three" ] || fail "live file of $vol changed"
}
check_dir "$B" "$B/.snapshots" "b one" "b two"
check_dir "$C" "$CD" "c one" "c two"

# The names are the UTC creation times, as list previousversions and list shadows say.
name=$(pv_gmt_of "${id[b.2]}")
[ -n "$name" ] && [ -d "$B/.snapshots/$name" ] && ok "list previousversions names ${id[b.2]} $name" ||
        fail "list previousversions: $($A list previousversions)"
created=$($A list shadows /shadow="${id[b.2]}" --json | python3 -c '
import json, sys, time
s = json.load(sys.stdin)["shadows"][0]
print(time.strftime("@GMT-%Y.%m.%d-%H.%M.%S", time.gmtime(s["creation_time_us"] // 1000000)))')
[ "$created" = "$name" ] && ok "the name is the UTC creation time" || fail "name $name, created $created"
$A list previousversions | grep -q "Previous Versions of volume: $C" && ok "list shows the cow volume" ||
        fail "list: $($A list previousversions)"

# A deleted shadow copy disappears from DIR; the other stays.
n1=$(pv_gmt_of "${id[b.1]}")
out=$($A delete shadows /shadow="${id[b.1]}" /quiet 2>&1) || fail "delete shadow: $out"
[ ! -e "$B/.snapshots/$n1" ] && ok "deleted shadow $n1 gone from DIR" || fail "$n1 still in DIR"
[ "$(pv_names "$B/.snapshots" | wc -l)" = 1 ] || fail "DIR after delete: $(pv_names "$B/.snapshots")"

# A vssd restart keeps the publications and their mounts; new shadows appear.  A mount that
# is gone meanwhile (as after a reboot) is made again.
n2=$(pv_gmt_of "${id[b.2]}") c2=$(pv_gmt_of "${id[c.2]}")
pv_stop_vssd
src=$(findmnt -rn -o SOURCE --mountpoint "$CD/$c2" | tail -n 1)
umount "$CD/$c2" && losetup -d "$src"
pv_start_vssd
$A list previousversions | grep -q "Shadow copies published: 1" && ok "publication survives a vssd restart" ||
        fail "after restart: $($A list previousversions)"
mountpoint -q "$B/.snapshots/$n2" && ok "its mount too" || fail "mount lost at restart"
for _ in $(seq 50); do mountpoint -q "$CD/$c2" && break; sleep 0.1; done
mountpoint -q "$CD/$c2" && [ "$(cat "$CD/$c2/doc.txt")" = "c two" ] && ok "a mount gone at restart is made again" ||
        fail "$CD/$c2 not mounted again at restart"
echo "b four" >"$B/doc.txt"
id[b.3]=$(pv_shadow "$B")
n3=$(pv_gmt_of "${id[b.3]}")
[ -n "$n3" ] && [ "$(cat "$B/.snapshots/$n3/doc.txt" 2>&1)" = "b four" ] &&
        ok "a shadow created after the restart is published" || fail "after restart: $n3 $(pv_names "$B/.snapshots")"

# A killed volume server: its replacement takes over the FUSE connection (docs/volsrv.md,
# "Handover"), so the cow volume and its published shadows stay mounted and readable; vssd
# mounts them again only when a handover fails ("published again").
old=$(cat "$T/state/volumes/$PV_COW/run/volsrv.pid")
declare -A mnt_before
for n in 1 2; do
        p=$CD/$(pv_gmt_of "${id[c.$n]}")
        mnt_before[$n]=$(findmnt -rn -o ID,SOURCE --mountpoint "$p" | tail -n 1)
done
kill -9 "$old"
replaced() {
        local p
        p=$(cat "$T/state/volumes/$PV_COW/run/volsrv.pid" 2>/dev/null) && [ -n "$p" ] && [ "$p" != "$old" ] &&
                kill -0 "$p" 2>/dev/null
}
for _ in $(seq 300); do replaced && break; sleep 0.1; done
replaced && ok "vssd started a new volume server" || fail "no new volume server after kill -9 of $old"
for n in 1 2; do
        p=$CD/$(pv_gmt_of "${id[c.$n]}") want="c $( [ $n = 1 ] && echo one || echo two)"
        for _ in $(seq 300); do [ "$(cat "$p/doc.txt" 2>/dev/null)" = "$want" ] && break; sleep 0.1; done
        if [ "$(cat "$p/doc.txt" 2>/dev/null)" != "$want" ]; then
                fail "${p#$T/} after volsrv kill: '$(cat "$p/doc.txt" 2>&1)'"
        elif [ "$(findmnt -rn -o ID,SOURCE --mountpoint "$p" | tail -n 1)" = "${mnt_before[$n]}" ]; then
                ok "${p#$T/} stayed mounted and readable while its volume server was replaced"
        elif $A list events | grep -qF "published again at $p "; then
                ok "${p#$T/} published again after its volume server was killed"
        else
                fail "${p#$T/} is mounted anew, but vssd logged no 'published again'"
        fi
done
echo "c three" >"$C/doc.txt" && sync -f "$C" && [ "$(cat "$C/doc.txt")" = "c three" ] &&
        ok "the cow volume takes writes after the kill" || fail "the cow volume after the kill: $(cat "$C/doc.txt" 2>&1)"

# A revert of the cow volume: its published shadows are unmounted first (they would keep it
# busy), the newer one is deleted with its entry, the kept one is published again.
n1=$CD/$(pv_gmt_of "${id[c.1]}") n2=$CD/$(pv_gmt_of "${id[c.2]}")
out=$($A revert shadow /shadow="${id[c.1]}" /quiet 2>&1) && ok "cow volume reverted to shadow copy 1" ||
        fail "revert: $out"
for _ in $(seq 50); do [ "$(cat "$n1/doc.txt" 2>/dev/null)" = "c one" ] && [ ! -e "$n2" ] && break; sleep 0.1; done
[ "$(cat "$C/doc.txt")" = "c one" ] && [ "$(cat "$n1/doc.txt" 2>&1)" = "c one" ] && mountpoint -q "$n1" &&
        ok "after the revert ${n1#$T/} is published again" || fail "after revert: $(pv_names "$CD") $(cat "$n1/doc.txt" 2>&1)"
[ ! -e "$n2" ] && ok "the newer shadow copy deleted by the revert is gone from DIR" || fail "$n2 still there"

# Eviction: fresh writes fill the cow store's 12 MB; the oldest shadow goes, and its DIR entry with it.
c1=$CD/$(pv_gmt_of "${id[c.1]}")
for i in 1 2 3; do
        dd if=/dev/urandom of="$C/fill$i" bs=1M count=5 conv=fsync status=none 2>/dev/null
        $A list shadows /for="$C" | grep -q "${id[c.1]}" || break
done
$A list shadows /for="$C" | grep -q "${id[c.1]}" && fail "the oldest cow shadow was not evicted" || {
        pv_wait_gone "$c1" && ok "evicted shadow gone from $CD" || fail "$c1 still there after eviction"
}
mountpoint -q "$c1" 2>/dev/null && fail "$c1 still mounted"

# delete previousversions: nothing mounted or left in DIR, which vssd made and removes.
out=$($A delete previousversions /for="$B" 2>&1) && ok "delete previousversions" || fail "delete: $out"
grep -qF " $B/.snapshots" /proc/self/mounts && fail "mounts left: $(grep -F " $B/.snapshots" /proc/self/mounts)"
[ ! -e "$B/.snapshots" ] && ok "$B/.snapshots removed" || fail "$B/.snapshots left: $(ls -a "$B/.snapshots")"
$A list previousversions | grep -q "$B" && fail "still listed"
out=$($A delete previousversions /for="$B" 2>&1) && fail "deleted twice" ||
        { grep -q 0x80042308 <<<"$out" && ok "deleting again is VSS_E_OBJECT_NOT_FOUND" || fail "again: $out"; }
# The shadows themselves are untouched.
[ "$($A list shadows /for="$B" | grep -c 'Shadow Copy ID')" = 2 ] || fail "btrfs shadows changed"

# Deleting the cow volume (after its shadows) takes its publication and DIR.
$A delete shadows /for="$C" /all /quiet >/dev/null 2>&1
grep -qF " $CD/" /proc/self/mounts && fail "cow mounts left after deleting the shadows"
$A delete shadowstorage /for="$C" /quiet >/dev/null 2>&1
out=$($A delete volume /name="$PV_COW" 2>&1) || fail "delete volume: $out"
$A list previousversions | grep -q "$C" && fail "publication of a deleted volume listed" ||
        ok "deleting the volume deleted its publication"
[ ! -e "$CD" ] && ok "$CD removed" || fail "$CD left"
[ $fails = 0 ] || { echo "$fails check(s) failed"; tail -n 30 "$T/vssd.log"; exit 1; }
