#!/bin/bash
# (k) vssd stopped with SIGSTOP for 8 s while a writer with --freeze-timeout 3000 is
# frozen (another writer still freezing keeps the set from reaching its commit):
# the frozen writer's own deadline runs its Abort hook no earlier than the freeze
# timeout and no later than freeze timeout + grace (1000 ms), while vssd is still
# stopped; after SIGCONT vssd's freeze timer and the end of the set send Abort
# again, and the hook does not run a second time.  The writer ends [9] Failed /
# Timed out and vshadow fails with 0x800423F2.
source "$(dirname "$0")/lib.sh"
bb_init

FREEZE_MS=3000
GRACE_MS=1000
# Scheduling slack for starting the hook processes we time (two fork/execs of sh).
SLACK_MS=500

bb_volume VOL data
bb_start_vssd
bb_start_writer Held --volume "$VOL" --freeze-timeout "$FREEZE_MS"
bb_start_writer Slow --volume "$VOL" --freeze-timeout 30000
bb_behave Held Freeze "date +%s%N >$T/held-freeze-ns"
bb_behave Held Abort "date +%s%N >>$T/held-abort-ns; printf '%s\n' \"\$VSS_ABORT_REASON\" >>$T/held-abort-reason"
bb_behave Slow Freeze "touch $T/slow-freezing; sleep 12"
bb_clear_events

"$VSHADOW" "$VOL" >"$T/vshadow.out" 2>&1 &
vshadow_pid=$!
BB_PIDS+=("$vshadow_pid")
bb_wait_until 10 "Slow is in its Freeze hook" test -e "$T/slow-freezing"
bb_wait_until 10 "Held has answered Freeze" bb_writer_state_is Held "[3] Waiting for thaw"

kill -STOP "$BB_VSSD_PID"
stopped_ms=$(bb_now_ms)
bb_wait_ms ms $((FREEZE_MS + GRACE_MS + SLACK_MS)) "Held's Abort hook while vssd is stopped" \
        test -s "$T/held-abort-ns"
state=$(awk '{ print $3 }' "/proc/$BB_VSSD_PID/stat")
bb_assert_eq T "$state" "vssd is still stopped when Held's Abort hook runs (so libvss ran it)"
elapsed=$((($(cat "$T/held-abort-ns") - $(cat "$T/held-freeze-ns")) / 1000000))
bb_log "Held's Abort hook started ${elapsed} ms after its Freeze hook"
((elapsed >= FREEZE_MS)) || bb_fail "Abort after ${elapsed} ms: before the freeze timeout of ${FREEZE_MS} ms"
((elapsed <= FREEZE_MS + GRACE_MS + SLACK_MS)) ||
        bb_fail "Abort after ${elapsed} ms: later than freeze timeout + grace (${FREEZE_MS} + ${GRACE_MS} ms)"
bb_assert_eq freeze-deadline "$(cat "$T/held-abort-reason")" "why Held was aborted"

# Keep vssd stopped for 8 s in all: this sleep holds the stop, it waits for nothing.
left=$((stopped_ms + 8000 - $(bb_now_ms)))
((left > 0)) && sleep "$(printf '%d.%03d' $((left / 1000)) $((left % 1000)))"
kill -CONT "$BB_VSSD_PID"

bb_wait_exit "$vshadow_pid" 30 vshadow_rc
OUT=$(cat "$T/vshadow.out")
RC=$vshadow_rc
bb_assert_hresult 0x800423F2 VSS_E_WRITERERROR_TIMEOUT "vshadow after the writer's freeze timed out"
bb_assert_contains "$OUT" "Held" "vshadow names the timed-out writer"
# BackupShutdown comes after vssd's Aborts on the same connection: once its hook ran,
# every Abort vssd sent was answered.
bb_wait_until 10 "Held's BackupShutdown" bb_event_seen Held BackupShutdown
bb_wait_until 10 "Slow's Abort" bb_event_seen Slow Abort
bb_assert_eq 1 "$(bb_event_count Held Abort)" "Held's Abort hook ran exactly once"
bb_assert_eq 1 "$(wc -l <"$T/held-abort-ns")" "Held's Abort hook ran exactly once (its own record)"
bb_assert_eq 1 "$(bb_event_count Slow Abort)" "Slow's Abort hook ran exactly once"
bb_assert_not_contains "$(bb_events_of Held)" "Thaw" "Held got no Thaw"
bb_assert_writer Held "[9] Failed" "Timed out"
bb_assert_no_shadows "$VOL" "after the timed-out set"
echo "done"
