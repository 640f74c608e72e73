#!/bin/bash
# (a) The full backup sequence with three writers on one btrfs volume, driven by
# `vshadow --exec`: event order and set id in every writer's hook log, VSS_VOLUMES,
# the shadow's content while the command runs, `vssadmin list writers` afterwards,
# and the non-persistent shadow gone when vshadow exits.
source "$(dirname "$0")/lib.sh"
bb_init

bb_volume VOL data
bb_start_vssd
for w in WriterA WriterB WriterC; do
        bb_start_writer "$w" --volume "$VOL"
done

# Files written before the snapshot, and their checksums.
mkdir -p "$VOL/data/sub"
for i in 1 2 3 4 5; do
        head -c $((i * 7919)) /dev/urandom >"$VOL/data/file$i"
done
echo "nested" >"$VOL/data/sub/nested.txt"
(cd "$VOL/data" && find . -type f | sort | xargs sha256sum) >"$T/before.sums"
bb_clear_events

# The --exec command: writes a file to the live volume (after the snapshot), then
# checksums the shadow, and records what the service shows meanwhile.
cat >"$T/exec.sh" <<EOF2
#!/bin/sh
set -e
echo "written after the snapshot" >"$VOL/data/after.txt"
env | grep '^VSHADOW_' | sort >"$T/exec.env"
cd "\$VSHADOW_MOUNT_1/data"
find . -type f | sort | xargs sha256sum >"$T/during.sums"
ls -la "\$VSHADOW_MOUNT_1/data" >"$T/during.ls"
"$VSSADMIN" list shadows >"$T/during.shadows" 2>&1
btrfs subvolume list -s "$VOL" >"$T/during.subvols"
EOF2
chmod +x "$T/exec.sh"

bb_run "$VSHADOW" --exec="$T/exec.sh" "$VOL"
bb_assert_rc 0 "vshadow --exec=... $VOL"
vshadow_out=$OUT

# --- the shadow while the command ran
[[ -f "$T/during.sums" ]] || bb_fail "the --exec command did not run (no $T/during.sums)"
bb_assert_eq "$(cat "$T/before.sums")" "$(cat "$T/during.sums")" "files and checksums in \$VSHADOW_MOUNT_1 vs before the snapshot"
bb_assert_not_contains "$(cat "$T/during.ls")" "after.txt" "file written after the snapshot must be absent from the shadow"
[[ -f "$VOL/data/after.txt" ]] || bb_fail "the live volume lost after.txt"
set_id=$(sed -n 's/^VSHADOW_SET_ID=//p' "$T/exec.env")
[[ "$set_id" =~ ^$bb_guid_re$ ]] || bb_fail "VSHADOW_SET_ID is not a braced lower-case GUID: '$set_id'"$'\n'"$(cat "$T/exec.env")"
shadow_id=$(sed -n 's/^VSHADOW_ID_1=//p' "$T/exec.env")
[[ "$shadow_id" =~ ^$bb_guid_re$ ]] || bb_fail "VSHADOW_ID_1 is not a braced lower-case GUID: '$shadow_id'"
[[ -n "$(sed -n 's/^VSHADOW_DEVICE_1=//p' "$T/exec.env")" ]] || bb_fail "VSHADOW_DEVICE_1 not set"$'\n'"$(cat "$T/exec.env")"
bb_assert_contains "$(cat "$T/during.shadows")" "$shadow_id" "vssadmin list shadows during --exec shows the shadow"
bb_assert_contains "$(cat "$T/during.shadows")" "$set_id" "vssadmin list shadows during --exec shows the set"
[[ -n "$(cat "$T/during.subvols")" ]] || bb_fail "no btrfs snapshot subvolume on $VOL during --exec"
bb_assert_contains "$vshadow_out" "$set_id" "vshadow prints the set id"
bb_assert_contains "$vshadow_out" "$shadow_id" "vshadow prints the shadow id"

# --- every writer saw the whole sequence, in order, with this set id
expected="PrepareForBackup $set_id
PrepareForSnapshot $set_id
Freeze $set_id
Thaw $set_id
PostSnapshot $set_id
BackupComplete $set_id
BackupShutdown $set_id"
for w in WriterA WriterB WriterC; do
        # BackupShutdown may be delivered just after vshadow's exit.
        bb_wait_until 10 "$w receives BackupShutdown" grep -q "^$w BackupShutdown " "$T/events.log"
        ev=$(bb_events_of "$w")
        first=$(head -n 1 <<<"$ev" | cut -d' ' -f1)
        bb_assert_eq "Identify" "$first" "first event of $w"
        bb_assert_eq "$expected" "$(grep -v '^Identify ' <<<"$ev")" "events of $w after Identify"
        # No Identify in the middle of the sequence.
        last_identify=$(grep -n '^Identify ' <<<"$ev" | tail -n 1 | cut -d: -f1)
        first_pfb=$(grep -n '^PrepareForBackup ' <<<"$ev" | head -n 1 | cut -d: -f1)
        [[ $last_identify -lt $first_pfb ]] || bb_fail "$w got Identify after PrepareForBackup:"$'\n'"$ev"
        for e in PrepareForBackup PrepareForSnapshot Freeze Thaw PostSnapshot BackupComplete; do
                bb_assert_eq "$VOL" "$(cat "$T/volumes.$w.$e")" "VSS_VOLUMES of $w at $e"
        done
done

# --- writer status, exact layout
for w in WriterA WriterB WriterC; do
        bb_assert_writer "$w" "[1] Stable" "No error"
done
ids=$(for w in WriterA WriterB WriterC; do bb_writer_field "$w" "Writer Instance Id"; done | sort -u | wc -l)
bb_assert_eq 3 "$ids" "distinct instance ids of 3 writers"

# --- the non-persistent shadow is gone
bb_assert_no_shadows "$VOL" "after vshadow exited"
bb_assert_eq "" "$(awk -v m="$(sed -n 's/^VSHADOW_MOUNT_1=//p' "$T/exec.env")" '$5 == m' /proc/self/mountinfo)" \
        "the shadow's mount point is unmounted after vshadow exited"
echo "done"
