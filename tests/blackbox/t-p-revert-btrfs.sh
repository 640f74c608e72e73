#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# vssadmin revert shadow on a btrfs volume (a subvolume mounted with -o subvol=), through the
# real vssd: the tree's checksums equal the shadow copy's afterwards, the mount point works
# (read-write, same place), the newer shadow copy is gone from the catalog and the disk, the
# reverted one and the older ones stay, the old subvolume is deleted, the next set succeeds.
# Failures: a bad and an unknown id, the Y/N prompt answered no, a volume held open
# (0x8004231D, nothing changed), the top-level subvolume (0x8004230C), a second revert while
# one runs (0x80042325), a set while a revert runs and a revert while a set is being created
# (0x80042316).
. "$(dirname "$0")/lib.sh"
bb_init

# tree_sum DIR: names, types, modes and contents of everything but the shadow storage.
tree_sum()
{
        (
                cd "$1" || exit 1
                find . -path ./.openvss -prune -o -printf '%y %m %p -> %l\n' | LC_ALL=C sort
                find . -path ./.openvss -prune -o -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum
        ) | sha256sum | cut -d' ' -f1
}

# answer Y|N ARGS...: vssadmin ARGS with that answer on stdin; output in $out, status in $rc.
answer()
{
        local a=$1
        shift
        set +e
        out=$(echo "$a" | "$VSSADMIN" "$@" 2>&1)
        rc=$?
        set -e
}

shadow_ids()
{
        "$VSSADMIN" list shadows /for="$1" | awk '/Shadow Copy ID/ { print $4 }'
}

# The filesystem: top-level mounted at $TOP (for inspection), subvolume "data" at $V.
bb_volume TOP top 512
btrfs -q subvolume create "$TOP/data"
dev=${BB_LOOPS[0]}
V=$T/vols/data
mkdir -p "$V"
mount -t btrfs -o subvol=/data,noatime "$dev" "$V"

bb_start_vssd

mkdir -p "$V/docs/deep" "$V/empty"
for i in $(seq 1 30); do head -c $((RANDOM * 4 + 1)) /dev/urandom >"$V/docs/f$i"; done
head -c 3000000 /dev/urandom >"$V/docs/deep/big"
ln -s docs/f1 "$V/link"
chmod 600 "$V/docs/f2"
sum1=$(tree_sum "$V")

bb_run "$VSSADMIN" create shadow /for="$V"
bb_assert_rc 0 "create shadow 1"
id1=$(shadow_ids "$V")
[[ "$id1" =~ ^$bb_guid_re$ ]] || bb_fail "no shadow id: $id1"

# Change, delete and add, then a newer shadow copy, then change again.
echo changed >"$V/docs/f3"
rm -f "$V/docs/f4" "$V/link"
rmdir "$V/empty"
head -c 100000 /dev/urandom >"$V/docs/new"
chmod 644 "$V/docs/f2"
bb_run "$VSSADMIN" create shadow /for="$V"
bb_assert_rc 0 "create shadow 2"
id2=$(shadow_ids "$V" | grep -vxF "$id1")
head -c 200000 /dev/urandom >>"$V/docs/deep/big"
mkdir "$V/later"
sum_now=$(tree_sum "$V")
[[ "$sum_now" != "$sum1" ]] || bb_fail "the changes did not change the tree"

bb_log "bad ids"
bb_run "$VSSADMIN" revert shadow /shadow=not-a-guid /quiet
bb_assert_hresult 0x80070057 E_INVALIDARG "revert with a malformed id"
bb_run "$VSSADMIN" revert shadow /shadow="{00000000-1111-2222-3333-444444444444}" /quiet
bb_assert_hresult 0x80042308 VSS_E_OBJECT_NOT_FOUND "revert to an unknown shadow copy"
bb_run "$VSSADMIN" revert shadow /quiet
bb_assert_failed "revert without /shadow"

bb_log "the prompt"
answer n revert shadow /shadow="$id1"
bb_assert_eq 0 "$rc" "answering no exits 0"
bb_assert_contains "$out" "Do you really want to revert the volume $V to shadow copy $id1?" "the question"
bb_assert_contains "$out" "1 newer shadow copies are lost (Y/N): [N]?" "the question names the newer copies"
bb_assert_eq "$sum_now" "$(tree_sum "$V")" "answering no changes nothing"

bb_log "a volume in use"
( exec 9<"$V/docs/f1"; exec sleep 60 ) &
holder=$!
BB_PIDS+=("$holder")
bb_wait_until 5 "the holder has the file open" bash -c "ls -l /proc/$holder/fd | grep -q '$V/docs/f1'"
bb_run "$VSSADMIN" revert shadow /shadow="$id1" /quiet
bb_assert_hresult 0x8004231D VSS_E_VOLUME_IN_USE "revert of a volume with an open file"
mountpoint -q "$V" || bb_fail "the volume is not mounted after the refused revert"
bb_assert_eq "$sum_now" "$(tree_sum "$V")" "the refused revert changed the volume"
bb_assert_eq 2 "$(shadow_ids "$V" | wc -l)" "shadow copies after the refused revert"
subvols=$(btrfs subvolume list "$TOP" | awk '{ print $NF }' | grep -c openvss-revert || true)
bb_assert_eq 0 "$subvols" "a revert subvolume left behind by the refused revert"
kill "$holder"
wait "$holder" 2>/dev/null || true

bb_log "revert to the older shadow copy"
mkdir -p "$T/x1" "$T/x2"
bb_run "$VSSADMIN" expose shadow /shadow="$id1" /at="$T/x1"
bb_assert_rc 0 "expose shadow 1"
bb_run "$VSSADMIN" expose shadow /shadow="$id2" /at="$T/x2"
bb_assert_rc 0 "expose shadow 2"
answer y revert shadow /shadow="$id1"
bb_assert_eq 0 "$rc" "revert answered yes: $out"
bb_assert_contains "$out" "Successfully reverted the volume $V to shadow copy $id1 (1 newer shadow copies deleted)." "revert output"
mountpoint -q "$V" || bb_fail "the volume is not mounted at $V after the revert"
bb_assert_eq "$sum1" "$(tree_sum "$V")" "the tree after the revert equals the shadow copy's"
findmnt -n -o OPTIONS "$V" | grep -q noatime || bb_fail "the mount lost its noatime: $(findmnt -n -o OPTIONS "$V")"
echo writable >"$V/docs/after" || bb_fail "the reverted volume is not writable"
rm "$V/docs/after"
bb_wait_until 10 "the newer shadow copy leaves the catalog" bash -c "! \"$VSSADMIN\" list shadows | grep -qF '$id2'"
bb_assert_eq "$id1" "$(shadow_ids "$V")" "the shadow copies listed after the revert"
[[ -d "$V/.openvss/$id1" ]] || bb_fail "the reverted shadow copy's subvolume is gone"
bb_wait_until 10 "the newer shadow copy's exposure goes" bash -c "! mountpoint -q '$T/x2'"
bb_assert_eq "$sum1" "$(tree_sum "$T/x1")" "the exposed reverted shadow copy after the revert"
bb_run "$VSSADMIN" unexpose shadow /shadow="$id1"
bb_assert_rc 0 "unexpose the reverted shadow copy"
[[ ! -e "$V/.openvss/$id2" ]] || bb_fail "the newer shadow copy's subvolume is still there"
left=$(btrfs subvolume list "$TOP" | awk '{ print $NF }' | grep -c openvss-revert || true)
bb_assert_eq 0 "$left" "the old subvolume (or the new one's temporary name) left behind"
bb_assert_eq "data" "$(btrfs subvolume list "$TOP" | awk '{ print $NF }' | grep -vF .openvss | sort | tr '\n' ' ' | sed 's/ $//')" \
        "subvolumes of the filesystem (besides shadow storage)"

bb_log "the next set, and a second revert with /quiet"
bb_run "$VSSADMIN" create shadow /for="$V"
bb_assert_rc 0 "create shadow after the revert"
bb_assert_eq 2 "$(shadow_ids "$V" | wc -l)" "shadow copies after the next set"
id3=$(shadow_ids "$V" | grep -vxF "$id1")
echo again >"$V/docs/f5"
bb_run "$VSSADMIN" revert shadow /shadow="$id1" /quiet
bb_assert_rc 0 "revert /quiet"
bb_assert_not_contains "$OUT" "Successfully" "/quiet output"
bb_assert_eq "$sum1" "$(tree_sum "$V")" "the tree after the second revert"
bb_wait_until 10 "shadow copy 3 leaves the catalog" bash -c "! \"$VSSADMIN\" list shadows | grep -qF '$id3'"

bb_log "the top-level subvolume"
bb_run "$VSSADMIN" create shadow /for="$TOP"
bb_assert_rc 0 "create shadow of the top-level subvolume"
idt=$(shadow_ids "$TOP")
bb_run "$VSSADMIN" revert shadow /shadow="$idt" /quiet
bb_assert_hresult 0x8004230C VSS_E_VOLUME_NOT_SUPPORTED "revert of the top-level subvolume"
bb_assert_contains "$OUT" "subvol" "the detail says what works instead"

bb_log "a subvolume that is not a mount point"
btrfs -q subvolume create "$TOP/nested"
echo x >"$TOP/nested/x"
bb_run "$VSSADMIN" create shadow /for="$TOP/nested"
bb_assert_rc 0 "create shadow of a nested subvolume"
idn=$(shadow_ids "$TOP/nested")
bb_run "$VSSADMIN" revert shadow /shadow="$idn" /quiet
bb_assert_hresult 0x8004230C VSS_E_VOLUME_NOT_SUPPORTED "revert of a subvolume that is not a mount point"
bb_assert_contains "$OUT" "not a mount point" "the detail says why"

bb_log "a non-persistent shadow copy"
bb_run "$VSHADOW" -nw --exec="\"$VSSADMIN\" revert shadow /shadow=\$VSHADOW_ID_1 /quiet" "$V"
bb_assert_hresult 0x8004231B VSS_E_UNSUPPORTED_CONTEXT "revert to a non-persistent shadow copy"
bb_assert_eq "$sum1" "$(tree_sum "$V")" "the refused revert changed nothing"

bb_log "a revert that takes its time"
bb_stop_vssd
VSSD_DEBUG_REVERT_DELAY_MS=3000 bb_start_vssd
"$VSSADMIN" revert shadow /shadow="$id1" /quiet >"$T/slow.out" 2>&1 &
slow=$!
bb_wait_until 10 "vssd logs the revert" bash -c "\"$VSSADMIN\" list events | grep -q 'reverting $V to shadow copy'"
bb_run "$VSSADMIN" revert shadow /shadow="$id1" /quiet
bb_assert_hresult 0x80042325 VSS_E_REVERT_IN_PROGRESS "a second revert while one runs"
bb_run "$VSSADMIN" create shadow /for="$TOP"
bb_assert_hresult 0x80042316 VSS_E_SNAPSHOT_SET_IN_PROGRESS "a snapshot set while a revert runs"
bb_wait_exit "$slow" 30 slow_rc
bb_assert_eq 0 "$slow_rc" "the slow revert: $(cat "$T/slow.out")"
bb_assert_eq "$sum1" "$(tree_sum "$V")" "the tree after the slow revert"
bb_stop_vssd
bb_start_vssd

bb_log "a revert while a set is being created"
bb_start_writer Slow --volume "$TOP"
bb_behave Slow Freeze "sleep 4"
"$VSSADMIN" create shadow /for="$TOP" >"$T/set.out" 2>&1 &
setpid=$!
bb_wait_until 10 "the writer is frozen" bb_event_seen Slow Freeze
bb_run "$VSSADMIN" revert shadow /shadow="$id1" /quiet
bb_assert_hresult 0x80042316 VSS_E_SNAPSHOT_SET_IN_PROGRESS "a revert while a set is being created"
bb_wait_exit "$setpid" 30 set_rc
bb_assert_eq 0 "$set_rc" "the set the revert waited for: $(cat "$T/set.out")"
bb_assert_eq "$sum1" "$(tree_sum "$V")" "the refused revert changed nothing"

bb_log "vssd killed in the middle of a revert"
bb_stop_vssd
VSSD_DEBUG_REVERT_OFFLINE_MS=20000 bb_start_vssd
bb_run "$VSSADMIN" create shadow /for="$V"
bb_assert_rc 0 "create a newer shadow copy"
idk=$(shadow_ids "$V" | grep -vxF "$id1")
echo "changed once more" >"$V/docs/f7"
"$VSSADMIN" revert shadow /shadow="$id1" /quiet >"$T/killed.out" 2>&1 &
killed=$!
bb_wait_until 20 "the revert takes the volume offline" bash -c "! mountpoint -q '$V'"
bb_kill9_vssd
bb_wait_exit "$killed" 10 killed_rc
[[ "$killed_rc" != 0 ]] || bb_fail "vssadmin succeeded although vssd died: $(cat "$T/killed.out")"
[[ -f "$T/state/btrfs-revert.json" ]] || bb_fail "no revert journal in the state directory"
bb_start_vssd
mountpoint -q "$V" || bb_fail "the volume is not mounted after vssd restarted"
bb_assert_eq "$sum1" "$(tree_sum "$V")" "the tree after the interrupted revert was completed"
bb_assert_eq "$id1" "$(shadow_ids "$V")" "shadow copies after the interrupted revert was completed"
[[ ! -e "$V/.openvss/$idk" ]] || bb_fail "the newer shadow copy's subvolume is still there"
[[ ! -e "$T/state/btrfs-revert.json" ]] || bb_fail "the revert journal is still there"
left=$(btrfs subvolume list "$TOP" | awk '{ print $NF }' | grep -c openvss-revert || true)
bb_assert_eq 0 "$left" "subvolumes left behind by the interrupted revert"
if awk -v s="$T/state/btrfs-revert." 'index($5, s) == 1' /proc/self/mountinfo | grep -q .; then
        bb_fail "a top-level mount of the interrupted revert is left in the state directory"
fi
bb_run "$VSSADMIN" list events
bb_assert_contains "$OUT" "vssd stopped in a revert of $V; it was completed" "the recovery is logged"

bb_log "catalog and disk agree"
bb_stop_vssd
bb_start_vssd
bb_assert_eq "$id1" "$(shadow_ids "$V")" "shadow copies of $V after a vssd restart"
for s in $(shadow_ids "$V"); do
        [[ -d "$V/.openvss/$s" ]] || bb_fail "shadow copy $s listed but not on disk"
done
bb_assert_eq 1 "$(find "$V/.openvss" -mindepth 1 -maxdepth 1 | wc -l)" "shadow subvolumes on disk"
bb_stop_vssd
if grep -E "AddressSanitizer|LeakSanitizer|runtime error" "$T/vssd.log"; then
        bb_fail "vssd's sanitizers reported errors"
fi
echo "PASS"
