#!/bin/bash
# (n) Every way a restore fails, each with its exact HRESULT and the writer named:
# a writer of the document that is not registered (0x80042308, unless -wx excludes
# it), a PreRestore veto ([13] Failed, CMD not run, no PostRestore for the vetoing
# writer, PostRestore "none" for the others), a PostRestore veto ([14] Failed), a
# failing CMD (its exit status, file restore status "failed"), corrupt and hostile
# documents (0x80042310 / 0x80042311, and not one event reaches a writer), a restore
# while a set is being created and a set while a restore runs (0x80042316 both ways).
source "$(dirname "$0")/lib.sh"
bb_init

bb_volume VOL data
bb_start_vssd
bb_start_writer Meta --volume "$VOL" --component db
bb_start_writer Other --volume "$VOL" --component files
for w in Meta Other; do
        bb_behave "$w" Freeze 'echo "metadata of $VSS_WRITER_NAME" >"$VSS_BACKUP_METADATA_DIR/1"'
done
bb_run "$VSHADOW" -p -bc="$T/doc.json" "$VOL"
bb_assert_rc 0 "the backup that writes the document"
# The session's end reaches the writers after vshadow has exited.
bb_wait_until 10 "Meta's BackupShutdown" bb_event_seen Meta BackupShutdown
bb_wait_until 10 "Other's BackupShutdown" bb_event_seen Other BackupShutdown
bb_behave_clear
record_status='printf "%s" "$VSS_FILE_RESTORE_STATUS" >"'"$T"'/status.$VSS_WRITER_NAME"'

bb_log "a writer of the document that is not registered"
kill -TERM "$(bb_writer_pid Other)"
bb_wait_until 10 "Other leaves vssadmin list writers" bash -c "! \"$VSSADMIN\" list writers | grep -qxF \"Writer name: 'Other'\""
bb_clear_events
bb_run "$VSHADOW" -r="$T/doc.json" --exec="touch $T/cmd-ran"
bb_assert_hresult 0x80042308 VSS_E_OBJECT_NOT_FOUND "restore with a writer of the document not registered"
bb_assert_contains "$OUT" "'Other'" "the error names the missing writer"
[[ ! -e "$T/cmd-ran" ]] || bb_fail "CMD ran although PreRestore failed"
bb_assert_not_contains "$(cat "$T/events.log")" "PreRestore" "no writer got PreRestore"
bb_run "$VSHADOW" -r="$T/doc.json" -wx=Other --exec="touch $T/cmd-ran"
bb_assert_rc 0 "the same restore with -wx=Other"
[[ -e "$T/cmd-ran" ]] || bb_fail "CMD did not run with -wx=Other"
bb_assert_contains "$(bb_events_of Meta)" "PostRestore" "Meta is restored with -wx=Other"
rm -f "$T/cmd-ran"
bb_start_writer Other --volume "$VOL" --component files

bb_log "PreRestore veto"
bb_behave Other PreRestore 'echo VSS_E_WRITERERROR_RETRYABLE; echo "the service will not stop" >&2; exit 1'
bb_behave Meta PostRestore "$record_status"
bb_clear_events
bb_run "$VSHADOW" -r="$T/doc.json" --exec="touch $T/cmd-ran"
bb_assert_hresult 0x800423F3 VSS_E_WRITERERROR_RETRYABLE "restore with a PreRestore veto"
bb_assert_contains "$OUT" "Writer 'Other' failed during PreRestore" "vshadow names the vetoing writer"
bb_assert_contains "$OUT" "[13] Failed" "vshadow names the writer's state"
[[ ! -e "$T/cmd-ran" ]] || bb_fail "CMD ran although a writer vetoed PreRestore"
bb_assert_writer Other "[13] Failed" "Retryable error"
bb_assert_eq "Identify PreRestore" "$(bb_events_of Other | cut -d' ' -f1 | xargs)" "the vetoing writer gets no PostRestore"
bb_assert_eq "Identify PreRestore PostRestore" "$(bb_events_of Meta | cut -d' ' -f1 | xargs)" "the other writer"
bb_assert_eq none "$(cat "$T/status.Meta")" "file restore status after a PreRestore veto"
msg=$("$VSSADMIN" list writers --json | python3 -c 'import json,sys; print([w for w in json.load(sys.stdin)["writers"] if w["name"] == "Other"][0]["message"])')
bb_assert_eq "the service will not stop" "$msg" "the vetoing writer's message"

bb_log "PostRestore veto"
bb_behave_clear
bb_behave Other PostRestore 'echo VSS_E_WRITERERROR_NONRETRYABLE; exit 1'
bb_run "$VSHADOW" -rs="$T/doc.json"
bb_assert_hresult 0x800423F4 VSS_E_WRITERERROR_NONRETRYABLE "restore with a PostRestore veto"
bb_assert_contains "$OUT" "Writer 'Other' failed during PostRestore" "vshadow names the vetoing writer"
bb_assert_writer Other "[14] Failed" "Non-retryable error"
bb_assert_writer Meta "[1] Stable" "No error"

bb_log "CMD fails"
bb_behave_clear
for w in Meta Other; do bb_behave "$w" PostRestore "$record_status"; done
bb_run "$VSHADOW" -r="$T/doc.json" --exec='exit 3'
bb_assert_rc 3 "vshadow -r exits with CMD's status"
bb_assert_contains "$OUT" "the command exited with status 3" "vshadow says CMD failed"
bb_assert_eq failed "$(cat "$T/status.Meta")" "Meta's file restore status when CMD failed"
bb_assert_eq failed "$(cat "$T/status.Other")" "Other's file restore status when CMD failed"
bb_assert_writer Other "[1] Stable" "No error"

bb_log "corrupt and hostile documents"
bb_behave_clear
good=$(cat "$T/doc.json")
mkdoc()
{
        # mkdoc NAME PYTHON-EXPR-ON-d: a copy of the good document, changed
        python3 - "$T/doc.json" "$T/bad-$1.json" "$2" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
exec(sys.argv[3])
open(sys.argv[2], "w").write(json.dumps(d))
PY
}
head -c $((${#good} / 2)) "$T/doc.json" >"$T/bad-truncated.json"
printf 'this is not json\n' >"$T/bad-garbage.json"
: >"$T/bad-empty.json"
printf '%s' "${good/\"version\": 1,/\"version\": 1, \"version\": 1,}" >"$T/bad-duplicate-key.json"
printf '%s\0' "$good" >"$T/bad-nul.json"
mkdoc version 'd["version"] = 2'
mkdoc format 'd["format"] = "something else"'
mkdoc set-id 'd["set_id"] = "{not-a-guid}"'
mkdoc writer-id 'd["writers"][0]["writer_id"] = "{12345678-1234-1234-1234-1234567890ab"'
mkdoc same-writer 'd["writers"].append(dict(d["writers"][0]))'
mkdoc method 'd["writers"][0]["restore_method"]["method"] = "restore_by_magic"'
mkdoc control-char 'd["writers"][0]["components"][0]["name"] = "db\nrm -rf /"'
mkdoc huge-metadata 'd["writers"][0]["components"][0]["backup_metadata"] = "x" * (300 * 1024)'
mkdoc wrong-type 'd["shadows"] = {"a": 1}'
mkdoc relative-volume 'd["shadows"][0]["original_volume"] = "relative/path"'
mkdoc state 'd["writers"][0]["status"]["state"] = 99'
mkdoc no-writers 'del d["writers"]'
mkdoc top-array 'd = [d]'
for f in truncated garbage empty duplicate-key nul; do
        bb_clear_events
        bb_run "$VSHADOW" -r="$T/bad-$f.json" --exec="touch $T/cmd-ran"
        bb_assert_hresult 0x80042310 VSS_E_CORRUPT_XML_DOCUMENT "restore from a $f document"
        bb_assert_contains "$OUT" "bad-$f.json" "the error names the document ($f)"
        bb_assert_eq "" "$(cat "$T/events.log")" "no writer hears of a restore from a $f document"
done
for f in version format set-id writer-id same-writer method control-char huge-metadata wrong-type relative-volume \
         state no-writers top-array; do
        bb_clear_events
        bb_run "$VSHADOW" -r="$T/bad-$f.json" --exec="touch $T/cmd-ran"
        bb_assert_hresult 0x80042311 VSS_E_INVALID_XML_DOCUMENT "restore from a document with a bad $f"
        bb_assert_eq "" "$(cat "$T/events.log")" "no writer hears of a restore from a document with a bad $f"
done
[[ ! -e "$T/cmd-ran" ]] || bb_fail "CMD ran for a bad document"
bb_run "$VSHADOW" -r="$T/bad-version.json"
bb_assert_contains "$OUT" "field 'version' is 2; this vshadow reads version 1" "the error says what is wrong"
bb_run "$VSHADOW" -r="$T/bad-control-char.json"
bb_assert_contains "$OUT" "writers[0].components[0].name" "the error names the field"
bb_run "$VSHADOW" -r="$T/does-not-exist.json"
bb_assert_hresult 0x80042308 VSS_E_OBJECT_NOT_FOUND "restore from a document that does not exist"

bb_log "a restore while a set is being created"
bb_behave Meta Freeze "touch $T/freezing; sleep 5"
"$VSHADOW" "$VOL" >"$T/backup.out" 2>&1 &
backup_pid=$!
BB_PIDS+=("$backup_pid")
bb_wait_until 10 "Meta is in its Freeze hook" test -e "$T/freezing"
bb_run "$VSHADOW" -rs="$T/doc.json"
bb_assert_hresult 0x80042316 VSS_E_SNAPSHOT_SET_IN_PROGRESS "restore while a set is being created"
bb_assert_contains "$OUT" "between StartSnapshotSet and the end of DoSnapshotSet" "the detail says what holds the turn"
bb_wait_exit "$backup_pid" 30 backup_rc
bb_assert_eq 0 "$backup_rc" "the backup that held the turn: $(cat "$T/backup.out")"

bb_log "a set while a restore runs"
bb_behave_clear
bb_behave Meta PreRestore "touch $T/restoring; sleep 5"
"$VSHADOW" -rs="$T/doc.json" >"$T/restore.out" 2>&1 &
restore_pid=$!
BB_PIDS+=("$restore_pid")
bb_wait_until 10 "Meta is in its PreRestore hook" test -e "$T/restoring"
bb_run "$VSHADOW" "$VOL"
bb_assert_hresult 0x80042316 VSS_E_SNAPSHOT_SET_IN_PROGRESS "a set while a restore runs"
bb_assert_contains "$OUT" "a restore of pid $restore_pid is between PreRestore and PostRestore" "the detail names the restore"
bb_run "$VSHADOW" -rs="$T/doc.json"
bb_assert_hresult 0x80042316 VSS_E_SNAPSHOT_SET_IN_PROGRESS "a second restore while one runs"
bb_wait_exit "$restore_pid" 30 restore_rc
bb_assert_eq 0 "$restore_rc" "the restore that held the turn: $(cat "$T/restore.out")"
# And the turn is free again.
bb_run "$VSHADOW" "$VOL"
bb_assert_rc 0 "a set after the restore ended"
echo "done"
