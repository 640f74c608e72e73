#!/bin/bash
# (d) Freeze timeout: a writer with --freeze-timeout 1000 whose Freeze hook sleeps
# 5 s ends [9] Failed / Timed out, vshadow fails with 0x800423F2, the writer gets
# Abort and no shadow copy is left.
source "$(dirname "$0")/lib.sh"
bb_init

bb_volume VOL data
bb_start_vssd
bb_start_writer Sleepy --volume "$VOL" --freeze-timeout 1000
bb_start_writer Quick --volume "$VOL"
bb_behave Sleepy Freeze 'sleep 5'
bb_clear_events

start=$(date +%s%N)
bb_run "$VSHADOW" "$VOL"
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
bb_assert_hresult 0x800423F2 VSS_E_WRITERERROR_TIMEOUT "vshadow when a writer overruns its freeze timeout"
bb_assert_contains "$OUT" "Sleepy" "vshadow names the timed-out writer"
# The freeze timer (1 s), not the 5 s hook, must end the set.
[[ $elapsed_ms -lt 4500 ]] || bb_fail "vshadow took ${elapsed_ms} ms: the 1000 ms freeze timeout did not end the set"
bb_assert_writer Sleepy "[9] Failed" "Timed out"
bb_wait_until 10 "Sleepy receives Abort" grep -q '^Sleepy Abort ' "$T/events.log"
bb_wait_until 10 "Quick receives Abort" grep -q '^Quick Abort ' "$T/events.log"
ev=$(bb_events_of Sleepy | grep -v '^Identify ' | cut -d' ' -f1 | xargs)
[[ "$ev" == "PrepareForBackup PrepareForSnapshot Freeze Abort"* ]] ||
        bb_fail "events of the timed-out writer"$'\n'"  expected: PrepareForBackup PrepareForSnapshot Freeze Abort ..."$'\n'"  actual:   $ev"
[[ "$ev" != *Thaw* && "$ev" != *PostSnapshot* ]] || bb_fail "the timed-out writer got Thaw/PostSnapshot: $ev"
bb_assert_no_shadows "$VOL" "after the freeze timeout"
events=$("$VSSADMIN" list events)
bb_assert_icontains "$events" "0x800423F2" "vssadmin list events records the timeout"
echo "done"
