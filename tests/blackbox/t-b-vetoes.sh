#!/bin/bash
# (b) Writer vetoes: at each event a hook exits 1 with a writer failure as its last
# stdout line -> `vssadmin list writers` shows [7]..[12] Failed and the failure's words,
# vshadow fails naming the writer, state and error; the default failure is
# Non-retryable error; a writer with only some of its volumes in the set is failed
# with INCONSISTENTSNAPSHOT; a writer whose volumes are not in the set gets no
# events; -wx excludes a vetoing writer and the set succeeds.
source "$(dirname "$0")/lib.sh"
bb_init

bb_volume VOL one
bb_volume VOL2 two
bb_start_vssd
bb_start_writer Vetoer --volume "$VOL"
bb_start_writer Good --volume "$VOL"

events=(PrepareForBackup PrepareForSnapshot Freeze Thaw PostSnapshot BackupComplete)
states=("[7] Failed" "[8] Failed" "[9] Failed" "[10] Failed" "[11] Failed" "[12] Failed")
names=(VSS_WS_FAILED_AT_PREPARE_BACKUP VSS_WS_FAILED_AT_PREPARE_SNAPSHOT VSS_WS_FAILED_AT_FREEZE
       VSS_WS_FAILED_AT_THAW VSS_WS_FAILED_AT_POST_SNAPSHOT VSS_WS_FAILED_AT_BACKUP_COMPLETE)

for i in "${!events[@]}"; do
        e=${events[$i]}
        bb_log "veto at $e"
        bb_behave_clear
        bb_behave Vetoer "$e" 'echo "some output first"; echo VSS_E_WRITERERROR_RETRYABLE; echo "vetoed at '"$e"' by test" >&2; exit 1'
        bb_clear_events
        bb_run "$VSHADOW" "$VOL"
        bb_assert_failed "vshadow with a writer vetoing at $e"
        bb_assert_contains "$OUT" "Vetoer" "vshadow output names the vetoing writer ($e)"
        bb_assert_contains "$OUT" "${states[$i]}" "vshadow output names the writer state ($e)"
        bb_assert_contains "$OUT" "Retryable error" "vshadow output names the writer error ($e)"
        case $e in
        PrepareForSnapshot | Freeze)
                # These abort the set: DoSnapshotSet fails with the writer's failure code.
                bb_assert_hresult 0x800423F3 VSS_E_WRITERERROR_RETRYABLE "vshadow when the veto at $e aborts the set"
                bb_wait_until 10 "Vetoer gets Abort after its veto at $e" grep -q '^Vetoer Abort ' "$T/events.log"
                bb_wait_until 10 "Good gets Abort after the veto at $e" grep -q '^Good Abort ' "$T/events.log"
                ;;
        esac
        bb_assert_writer Vetoer "${states[$i]}" "Retryable error"
        bb_assert_writer Good "[1] Stable" "No error"
        json=$("$VSSADMIN" list writers --json)
        python3 - "$json" "${names[$i]}" <<'PY' || bb_fail "vssadmin list writers --json for the veto at $e"
import json, sys
doc = json.loads(sys.argv[1])
w = [x for x in doc["writers"] if x["name"] == "Vetoer"]
assert len(w) == 1, w
w = w[0]
exp = (sys.argv[2], "0x800423F3", "VSS_E_WRITERERROR_RETRYABLE")
got = (w.get("state_name"), w.get("failure"), w.get("failure_name"))
if got != exp:
    sys.exit(f"expected {exp}, got {got}")
if "vetoed at" not in (w.get("message") or ""):
    sys.exit(f"hook stderr not the failure message: {w.get('message')!r}")
PY
        # Non-persistent shadows never outlive vshadow, veto or not.
        bb_wait_until 10 "no shadow left after the veto at $e" \
                sh -c "\"$VSSADMIN\" list shadows | grep -q 'No items found that satisfy the query.'"
        bb_assert_no_shadows "$VOL" "after the veto at $e"
done

bb_log "default failure (no failure line on stdout)"
bb_behave_clear
bb_behave Vetoer Freeze 'echo "plain output"; echo "cannot flush" >&2; exit 1'
bb_run "$VSHADOW" "$VOL"
bb_assert_hresult 0x800423F4 VSS_E_WRITERERROR_NONRETRYABLE "vshadow when a hook fails without a failure line"
bb_assert_writer Vetoer "[9] Failed" "Non-retryable error"

bb_log "a successful set clears the failure"
bb_behave_clear
bb_run "$VSHADOW" "$VOL"
bb_assert_rc 0 "vshadow with no veto"
bb_soft bb_assert_writer Vetoer "[1] Stable" "No error"
bb_assert_writer Good "[1] Stable" "No error"

bb_log "INCONSISTENTSNAPSHOT: a writer with two volumes, only one in the set"
bb_start_writer TwoVols --volume "$VOL" --volume "$VOL2"
bb_clear_events
bb_run "$VSHADOW" "$VOL"
bb_assert_hresult 0x800423F0 VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT "vshadow with a writer missing a volume"
bb_assert_contains "$OUT" "TwoVols" "vshadow names the inconsistent writer"
bb_assert_writer TwoVols "[8] Failed" "Inconsistent shadow copy"
bb_assert_no_shadows "$VOL" "after INCONSISTENTSNAPSHOT"
# With both volumes the same writer is fine.
bb_run "$VSHADOW" "$VOL" "$VOL2"
bb_assert_rc 0 "vshadow with both of TwoVols' volumes"
bb_soft bb_assert_writer TwoVols "[1] Stable" "No error"
kill -TERM "$(bb_writer_pid TwoVols)"
bb_wait_until 10 "TwoVols unregistered" bash -c "! \"$VSSADMIN\" list writers | grep -qxF \"Writer name: 'TwoVols'\""

bb_log "a writer whose volumes are not in the set gets no events"
bb_start_writer Elsewhere --volume "$VOL2"
bb_clear_events
bb_run "$VSHADOW" "$VOL"
bb_assert_rc 0 "vshadow of $VOL with a writer on $VOL2 only"
bb_wait_until 10 "Good receives BackupShutdown" grep -q '^Good BackupShutdown ' "$T/events.log"
bb_assert_eq "" "$(bb_events_of Elsewhere | grep -v '^Identify ' || true)" "events of a writer not involved in the set"
bb_assert_writer Elsewhere "[1] Stable" "No error"

bb_log "-wx excludes a vetoing writer"
bb_behave Vetoer Freeze 'echo VSS_E_WRITERERROR_RETRYABLE; echo "would veto" >&2; exit 1'
bb_behave Vetoer PrepareForBackup 'echo VSS_E_WRITERERROR_RETRYABLE; echo "would veto" >&2; exit 1'
bb_clear_events
bb_run "$VSHADOW" -wx=Vetoer "$VOL"
bb_assert_rc 0 "vshadow -wx=Vetoer"
bb_wait_until 10 "Good receives BackupShutdown" grep -q '^Good BackupShutdown ' "$T/events.log"
bb_assert_eq "" "$(bb_events_of Vetoer | grep -v '^Identify ' || true)" "events of an excluded writer"
bb_assert_eq "PrepareForBackup PrepareForSnapshot Freeze Thaw PostSnapshot BackupComplete BackupShutdown" \
        "$(bb_events_of Good | grep -v '^Identify ' | cut -d' ' -f1 | xargs)" "events of the other writer with -wx"
# The excluded writer is excluded by id too.
wid=$(bb_writer_field Vetoer "Writer Id")
bb_run "$VSHADOW" "--exclude-writer=$wid" "$VOL"
bb_assert_rc 0 "vshadow --exclude-writer={writer id}"
bb_assert_no_shadows "$VOL" "after the -wx runs"
echo "done"
