#!/bin/bash
# (g) A requester killed with SIGKILL in the middle of a sequence (during a slow
# Freeze hook, then during a slow PostSnapshot hook): writers get Abort or
# BackupShutdown, no shadow copy is left (vssadmin list shadows, btrfs subvolume
# list), the daemon keeps serving, and a new set succeeds.
source "$(dirname "$0")/lib.sh"
bb_init

bb_volume VOL data
bb_start_vssd
bb_start_writer Victim --volume "$VOL"
bb_start_writer Bystander --volume "$VOL"

for e in Freeze PostSnapshot; do
        bb_log "requester killed during $e"
        bb_behave_clear
        rm -f "$T/in-hook"
        bb_behave Victim "$e" "touch '$T/in-hook'; sleep 4"
        bb_clear_events
        "$VSHADOW" "$VOL" >"$T/killed.out" 2>&1 &
        req=$!
        BB_PIDS+=("$req")
        bb_wait_until 20 "Victim enters its $e hook" test -f "$T/in-hook"
        kill -KILL "$req"
        wait "$req" 2>/dev/null || true

        bb_wait_until 15 "Victim gets Abort or BackupShutdown after the requester died during $e" \
                grep -Eq '^Victim (Abort|BackupShutdown) ' "$T/events.log"
        bb_wait_until 15 "Bystander gets Abort or BackupShutdown after the requester died during $e" \
                grep -Eq '^Bystander (Abort|BackupShutdown) ' "$T/events.log"
        bb_wait_until 15 "no shadow copy left after the requester died during $e" \
                sh -c "\"$VSSADMIN\" list shadows | grep -q 'No items found that satisfy the query.' && [ -z \"\$(btrfs subvolume list -s '$VOL')\" ]"
        bb_assert_no_shadows "$VOL" "after the requester died during $e"
        bb_vssd_alive || bb_fail "vssd died with the requester"
        bb_run "$VSSADMIN" list writers
        bb_assert_rc 0 "vssadmin list writers after the requester died during $e"
        bb_assert_contains "$OUT" "Writer name: 'Victim'" "vssadmin list writers after the requester died"
        bb_behave_clear
        bb_run "$VSHADOW" "$VOL"
        bb_assert_rc 0 "a new set after the requester died during $e"
        bb_assert_writer Victim "[1] Stable" "No error"
        bb_assert_writer Bystander "[1] Stable" "No error"
        bb_assert_no_shadows "$VOL" "after the new set"
done
echo "done"
