#!/bin/bash
# (m) Backup -> restore round trip through the backup components document:
# vshadow -p -bc=DOC saves the set, its shadow copy, the writers involved with their
# components, the backup metadata their Freeze hook attached, their restore method
# and final status (atomically: no temporary file left, nothing written for a failed
# set); vshadow -r=DOC --exec=CMD restores a file from the shadow copy, and the
# writer's PreRestore/PostRestore hooks see exactly the metadata stored at backup,
# their components, the file restore status from CMD's exit status and CMD sees the
# document and the shadow copy; -rs runs the events without CMD (status none);
# --new-target reaches the hooks; -wi/-wx select writers.
source "$(dirname "$0")/lib.sh"
bb_init

bb_volume VOL data
echo "original content" >"$VOL/file"
bb_start_vssd
bb_start_writer Meta --volume "$VOL" --component db --component logs \
        --restore-method stop_restore_start --restore-service meta.service --writer-restore always
bb_start_writer Plain --volume "$VOL"

# At Freeze the hook attaches backup metadata to both components (by their number).
bb_behave Meta Freeze 'printf "label of %s" "$VSS_SNAPSHOT_SET_ID" >"$VSS_BACKUP_METADATA_DIR/1"
printf "wal line one\nwal line two\n" >"$VSS_BACKUP_METADATA_DIR/2"
printf "%s" "$VSS_COMPONENTS" >"'"$T"'/freeze.components"'
for e in PreRestore PostRestore; do
        bb_behave Meta "$e" "printf '%s' \"\$VSS_COMPONENTS\" >\"$T/$e.components\"
printf '%s' \"\$VSS_COMPONENT_COUNT\" >\"$T/$e.count\"
printf '%s' \"\$VSS_BACKUP_METADATA_1\" >\"$T/$e.md1\"
printf '%s' \"\$VSS_BACKUP_METADATA_2\" >\"$T/$e.md2\"
cat \"\$VSS_BACKUP_METADATA_DIR/1\" >\"$T/$e.file1\"
printf '%s' \"\${VSS_FILE_RESTORE_STATUS-unset}\" >\"$T/$e.status\"
printf '%s' \"\${VSS_FILE_RESTORE_STATUS_2-unset}\" >\"$T/$e.status2\"
printf '%s' \"\$VSS_NEW_TARGETS\" >\"$T/$e.targets\""
done

bb_log "a failed set writes no document"
bb_behave Plain Freeze 'echo VSS_E_WRITERERROR_RETRYABLE; exit 1'
bb_run "$VSHADOW" -bc="$T/failed.json" "$VOL"
bb_assert_hresult 0x800423F3 VSS_E_WRITERERROR_RETRYABLE "vshadow -bc with a vetoing writer"
[[ ! -e "$T/failed.json" ]] || bb_fail "a failed set wrote a backup components document"
compgen -G "$T/failed.json.tmp.*" >/dev/null && bb_fail "a failed set left a temporary file: $(ls "$T")"
# The session's end reaches the writers after vshadow has exited.
bb_wait_until 10 "Meta's BackupShutdown" bb_event_seen Meta BackupShutdown
bb_wait_until 10 "Plain's BackupShutdown" bb_event_seen Plain BackupShutdown
bb_clear_events
bb_run "$VSHADOW" -bc="$T/no/such/dir/doc.json" "$VOL"
bb_assert_hresult 0x80042308 VSS_E_OBJECT_NOT_FOUND "vshadow -bc into a directory that does not exist"
bb_assert_eq "" "$(bb_events_of Meta)" "a document that cannot be written fails before any event"
rm -f "$T/behave/Plain.Freeze"

bb_log "backup with -bc"
bb_clear_events
bb_run "$VSHADOW" -p -bc="$T/doc.json" "$VOL"
bb_assert_rc 0 "vshadow -p -bc"
bb_wait_until 10 "Meta's BackupShutdown" bb_event_seen Meta BackupShutdown
bb_wait_until 10 "Plain's BackupShutdown" bb_event_seen Plain BackupShutdown
bb_assert_contains "$OUT" "Backup components document: $T/doc.json" "vshadow names the document it wrote"
set_id=$(sed -n 's/^Snapshot set: //p' <<<"$OUT")
shadow_id=$(sed -n 's/^Shadow copy 1: //p' <<<"$OUT")
[[ "$set_id" =~ ^$bb_guid_re$ && "$shadow_id" =~ ^$bb_guid_re$ ]] || bb_fail "no set/shadow id in: $OUT"
compgen -G "$T/doc.json.tmp.*" >/dev/null && bb_fail "the document's temporary file was left behind"
bb_assert_eq "db
logs" "$(cat "$T/freeze.components")" "VSS_COMPONENTS at Freeze"
meta_id=$(bb_writer_field Meta "Writer Id")
meta_inst=$(bb_writer_field Meta "Writer Instance Id")
python3 - "$T/doc.json" "$set_id" "$shadow_id" "$VOL" "$meta_id" "$meta_inst" <<'PY' || bb_fail "the backup components document"
import json, os, sys
path, set_id, shadow_id, vol, meta_id, meta_inst = sys.argv[1:]
assert oct(os.stat(path).st_mode & 0o777) == "0o600", oct(os.stat(path).st_mode)
d = json.load(open(path))
assert d["format"] == "openvss-backup-components" and d["version"] == 1, d
assert d["set_id"] == set_id, (d["set_id"], set_id)
assert d["context"] == 9 and d["backup_type"] == "full", d
assert d["created_us"] > 1.6e15
assert len(d["shadows"]) == 1, d["shadows"]
s = d["shadows"][0]
assert s["shadow_id"] == shadow_id and s["original_volume"] == vol, s
assert os.path.isdir(s["device"]) and s["provider_name"], s
names = sorted(w["name"] for w in d["writers"])
assert names == ["Meta", "Plain"], names
m = [w for w in d["writers"] if w["name"] == "Meta"][0]
assert m["writer_id"] == meta_id and m["instance_id"] == meta_inst, m
assert m["restore_method"] == {"method": "stop_restore_start", "service": "meta.service", "user_procedure": "",
                               "writer_restore": "always", "reboot_required": False}, m["restore_method"]
c = {x["name"]: x for x in m["components"]}
assert sorted(c) == ["db", "logs"], c
assert c["db"]["backup_metadata"] == "label of " + set_id, c["db"]
assert c["logs"]["backup_metadata"] == "wal line one\nwal line two\n", c["logs"]
assert c["db"]["type"] == "filegroup" and c["db"]["files"] == [{"path": vol, "filespec": "*", "recursive": True}], c["db"]
assert m["status"]["state"] == 1 and m["status"]["failure"] == "0x00000000", m["status"]
p = [w for w in d["writers"] if w["name"] == "Plain"][0]
assert p["components"] == [] and p["restore_method"]["method"] == "restore_if_can_replace", p
PY

bb_log "restore with -r and a command that copies the file back from the shadow copy"
echo "changed after the backup" >"$VOL/file"
bb_clear_events
bb_run "$VSHADOW" -r="$T/doc.json" --exec='cp "$VSHADOW_DEVICE_1/file" "$VSHADOW_ORIGINAL_1/file" &&
        printf "%s %s %s" "$VSHADOW_RESTORE_DOC" "$VSHADOW_SET_ID" "$VSHADOW_ID_1" >"'"$T"'/cmd.env"'
bb_assert_rc 0 "vshadow -r --exec"
bb_assert_eq "original content" "$(cat "$VOL/file")" "the file after the restore"
bb_assert_eq "$T/doc.json $set_id $shadow_id" "$(cat "$T/cmd.env")" "what CMD saw"
bb_assert_contains "$OUT" "Restore method: stop_restore_start (service meta.service)" "vshadow prints the restore method"
bb_assert_eq "Identify PreRestore PostRestore" "$(bb_events_of Meta | cut -d' ' -f1 | xargs)" "Meta's events at restore"
bb_assert_eq "Identify" "$(bb_events_of Plain | cut -d' ' -f1 | xargs)" "a writer without components is not restored"
for e in PreRestore PostRestore; do
        bb_assert_eq "db
logs" "$(cat "$T/$e.components")" "VSS_COMPONENTS at $e"
        bb_assert_eq 2 "$(cat "$T/$e.count")" "VSS_COMPONENT_COUNT at $e"
        bb_assert_eq "label of $set_id" "$(cat "$T/$e.md1")" "VSS_BACKUP_METADATA_1 at $e"
        bb_assert_eq "label of $set_id" "$(cat "$T/$e.file1")" "\$VSS_BACKUP_METADATA_DIR/1 at $e"
        python3 -c 'import sys; assert open(sys.argv[1]).read() == "wal line one\nwal line two\n"' "$T/$e.md2" ||
                bb_fail "VSS_BACKUP_METADATA_2 at $e is not byte for byte what was stored: $(od -c "$T/$e.md2")"
done
bb_assert_eq unset "$(cat "$T/PreRestore.status")" "no file restore status at PreRestore"
bb_assert_eq all "$(cat "$T/PostRestore.status")" "VSS_FILE_RESTORE_STATUS at PostRestore after CMD exited 0"
bb_assert_eq all "$(cat "$T/PostRestore.status2")" "VSS_FILE_RESTORE_STATUS_2"
bb_assert_eq "" "$(cat "$T/PostRestore.targets")" "no new targets"
bb_assert_writer Meta "[1] Stable" "No error"

bb_log "-rs: the same events, no command, file restore status none, with a new target"
bb_clear_events
bb_run "$VSHADOW" -rs="$T/doc.json" --new-target="$VOL=/restore/elsewhere"
bb_assert_rc 0 "vshadow -rs --new-target"
bb_assert_eq "Identify PreRestore PostRestore" "$(bb_events_of Meta | cut -d' ' -f1 | xargs)" "Meta's events at -rs"
bb_assert_eq none "$(cat "$T/PostRestore.status")" "file restore status at -rs"
bb_assert_eq "$VOL	/restore/elsewhere" "$(cat "$T/PreRestore.targets")" "VSS_NEW_TARGETS at PreRestore"
bb_assert_eq "$VOL	/restore/elsewhere" "$(cat "$T/PostRestore.targets")" "VSS_NEW_TARGETS at PostRestore"
bb_run "$VSHADOW" -rs="$T/doc.json" --exec=true
bb_assert_rc 2 "-rs with --exec is a usage error"
bb_run "$VSHADOW" -r="$T/doc.json" "$VOL"
bb_assert_rc 2 "-r with a VOLUME is a usage error"
bb_run "$VSHADOW" -r="$T/doc.json" --new-target=relative=/x
bb_assert_rc 2 "--new-target with a relative path is a usage error"

bb_log "-wi / -wx select the writers"
bb_clear_events
bb_run "$VSHADOW" -rs="$T/doc.json" -wi=Plain
bb_assert_rc 0 "vshadow -rs -wi=Plain"
bb_assert_not_contains "$(bb_events_of Meta)" "PreRestore" "-wi=Plain leaves Meta out"
bb_clear_events
bb_run "$VSHADOW" -rs="$T/doc.json" -wx="$meta_id"
bb_assert_rc 0 "vshadow -rs -wx={Meta's id}"
bb_assert_not_contains "$(bb_events_of Meta)" "PreRestore" "-wx leaves Meta out"
bb_clear_events
bb_run "$VSHADOW" -rs="$T/doc.json" -wi=Meta
bb_assert_rc 0 "vshadow -rs -wi=Meta"
bb_assert_contains "$(bb_events_of Meta)" "PostRestore" "-wi=Meta restores Meta"
bb_run "$VSHADOW" -rs="$T/doc.json" -wi=Nobody
bb_assert_hresult 0x80042308 VSS_E_OBJECT_NOT_FOUND "-wi naming a writer the document does not have"
bb_assert_contains "$OUT" "Nobody" "the error names the -wi writer"
echo "done"
