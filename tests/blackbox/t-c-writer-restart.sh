#!/bin/bash
# (c) A writer killed and started again returns with a new instance id, the same
# (name-derived) writer id and [1] Stable, even though it had failed before.
source "$(dirname "$0")/lib.sh"
bb_init

bb_volume VOL data
bb_start_vssd
bb_start_writer Restarter --volume "$VOL"

# Fail it first, so that the restart visibly resets the state.
bb_behave Restarter Freeze 'echo VSS_E_WRITERERROR_NONRETRYABLE; echo "broken" >&2; exit 1'
bb_run "$VSHADOW" "$VOL"
bb_assert_failed "vshadow with a vetoing writer"
bb_assert_writer Restarter "[9] Failed" "Non-retryable error"
wid1=$(bb_writer_field Restarter "Writer Id")
iid1=$(bb_writer_field Restarter "Writer Instance Id")

kill -KILL "$(bb_writer_pid Restarter)"
bb_wait_until 10 "the killed writer leaves vssadmin list writers" \
        bash -c "! \"$VSSADMIN\" list writers | grep -qxF \"Writer name: 'Restarter'\""

bb_behave_clear
bb_start_writer Restarter --volume "$VOL"
wid2=$(bb_writer_field Restarter "Writer Id")
iid2=$(bb_writer_field Restarter "Writer Instance Id")
bb_assert_eq "$wid1" "$wid2" "writer id across a restart"
[[ "$iid1" != "$iid2" ]] || bb_fail "instance id did not change across a restart: $iid1"
[[ "$iid2" =~ ^$bb_guid_re$ ]] || bb_fail "instance id is not a GUID: $iid2"
bb_assert_writer Restarter "[1] Stable" "No error"
count=$("$VSSADMIN" list writers | grep -cxF "Writer name: 'Restarter'")
bb_assert_eq 1 "$count" "the restarted writer is listed once"

# And it works.
bb_run "$VSHADOW" "$VOL"
bb_assert_rc 0 "vshadow with the restarted writer"
bb_assert_writer Restarter "[1] Stable" "No error"
echo "done"
