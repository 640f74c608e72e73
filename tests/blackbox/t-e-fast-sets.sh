#!/bin/bash
# (e) 30 quick snapshot sets in a row with --freeze-timeout 500: no freeze timer may
# fire after its Thaw (KB 915331).  After waiting past the timeout every writer is
# still [1] Stable / No error and the event log holds no timeout.
source "$(dirname "$0")/lib.sh"
bb_init

bb_volume VOL data
bb_start_vssd
bb_start_writer Fast1 --volume "$VOL" --freeze-timeout 500
bb_start_writer Fast2 --volume "$VOL" --freeze-timeout 500

for i in $(seq 1 30); do
        echo "round $i" >"$VOL/round"
        bb_run "$VSHADOW" "$VOL"
        bb_assert_rc 0 "vshadow run $i of 30"
done
sleep 1.5 # longer than the freeze timeout: a stray timer would have fired by now
for w in Fast1 Fast2; do
        bb_assert_writer "$w" "[1] Stable" "No error"
        n=$(bb_events_of "$w" | grep -c '^Thaw ')
        bb_assert_eq 30 "$n" "Thaw events received by $w"
        n=$(bb_events_of "$w" | grep -c '^Abort ' || true)
        bb_assert_eq 0 "$n" "Abort events received by $w"
done
events=$("$VSSADMIN" list events)
bb_assert_not_contains "${events,,}" "0x800423f2" "vssadmin list events after 30 fast sets"
bb_assert_not_contains "$events" "VSS_E_WRITERERROR_TIMEOUT" "vssadmin list events after 30 fast sets"
bb_assert_not_contains "$events" "Timed out" "vssadmin list events after 30 fast sets"
bb_assert_no_shadows "$VOL" "after 30 non-persistent sets"
echo "done"
