#!/bin/bash
# (j) vssd killed with SIGKILL while a writer is frozen (its Freeze hook has returned,
# another writer is still in its Freeze hook): the frozen writer's Abort hook runs
# within 1 s, told the connection was lost; the writer still freezing gets its Abort
# once its hook is over; each Abort hook runs exactly once; both writers stay up,
# and when vssd is back they are registered again and work.
source "$(dirname "$0")/lib.sh"
bb_init

bb_volume VOL data
bb_start_vssd
bb_start_writer Frozen --volume "$VOL" --freeze-timeout 30000
bb_start_writer Slow --volume "$VOL" --freeze-timeout 30000
bb_behave Slow Freeze "touch $T/slow-freezing; sleep 6"
for w in Frozen Slow; do
        bb_behave "$w" Abort 'printf "%s %s\n" "$VSS_ABORT_REASON" "$VSS_SNAPSHOT_SET_ID" >>"'"$T"'/abort.$VSS_WRITER_NAME"'
done
bb_clear_events

"$VSHADOW" "$VOL" >"$T/vshadow.out" 2>&1 &
vshadow_pid=$!
BB_PIDS+=("$vshadow_pid")
bb_wait_until 10 "Slow is in its Freeze hook" test -e "$T/slow-freezing"
bb_wait_until 10 "Frozen has answered Freeze ([3] Waiting for thaw)" bb_writer_state_is Frozen "[3] Waiting for thaw"
set_id=$(bb_events_of Frozen | awk '$1 == "Freeze" { print $2 }')

bb_kill9_vssd
bb_wait_ms ms 1000 "Frozen's Abort hook within 1 s of vssd's death" bb_event_seen Frozen Abort
bb_log "Frozen's Abort hook started ${ms} ms after SIGKILL"
bb_assert_eq "connection-lost $set_id" "$(cat "$T/abort.Frozen")" "why and for which set Frozen was aborted"
bb_assert_contains "$(cat "$T/writer-Frozen.log")" "the connection to vssd was lost while frozen" \
        "vsswriter says why it runs the Abort hook"

# Slow notices when its Freeze hook returns.
bb_wait_until 15 "Slow's Abort hook after its Freeze hook ended" bb_event_seen Slow Abort
bb_assert_eq "connection-lost $set_id" "$(cat "$T/abort.Slow")" "why and for which set Slow was aborted"
bb_wait_exit "$vshadow_pid" 10 vshadow_rc
[[ "$vshadow_rc" != 0 ]] || bb_fail "vshadow succeeded although vssd died: $(cat "$T/vshadow.out")"
bb_assert_icontains "$(cat "$T/vshadow.out")" "0x80042318" "vshadow reports the lost service"

for w in Frozen Slow; do
        kill -0 "$(bb_writer_pid "$w")" 2>/dev/null || bb_fail "vsswriter of $w exited when vssd died"
done

bb_log "vssd comes back"
bb_start_vssd
bb_wait_ms ms 7000 "both writers registered again" \
        bash -c "\"$VSSADMIN\" list writers | grep -qxF \"Writer name: 'Frozen'\" &&
                 \"$VSSADMIN\" list writers | grep -qxF \"Writer name: 'Slow'\""
bb_log "both writers were listed again ${ms} ms after vssd restarted"
bb_behave_clear
bb_run "$VSHADOW" "$VOL"
bb_assert_rc 0 "a set with the writers that outlived vssd"
bb_assert_eq 1 "$(bb_event_count Frozen Abort)" "Frozen's Abort hook ran exactly once"
bb_assert_eq 1 "$(bb_event_count Slow Abort)" "Slow's Abort hook ran exactly once"
bb_assert_writer Frozen "[1] Stable" "No error"
echo "done"
