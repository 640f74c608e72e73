#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Cluster snapshot sets through vssd (issue 15 item 2; docs/cluster.md §11): one real
# vssd per host namespace with [cluster], a btrfs loop volume per host, and a vsswriter
# writer on each host whose hooks log "<host> <event> <ns>" to $T/events.log.
#  1. vshadow -p host1:/v1 host2:/v2 host3:/v3 on host 1: every writer on every host
#     saw Freeze before any host's Thaw (all frozen before any commit), each host has one
#     shadow copy under the one set id, and `vssadmin list shadows /set=ID` on host 2
#     lists all three (the others from their host records);
#  2. a veto at PrepareForSnapshot on host 3: the whole set aborts, vshadow names the
#     HRESULT, host3 and the writer, every writer got Abort, no host has a shadow of it;
#  3. a second set while one holds the lock: 0x80042316 naming the running set.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vlib.sh"
cv_init
cv_three_btrfs_hosts

cl_log "1. a three-host set"
: >"$EV"
cl_run "$VSHADOW" --socket "$T/h1/vssd.sock" -p "host1:${VOL[1]}" "host2:${VOL[2]}" "host3:${VOL[3]}"
[[ $RC -eq 0 ]] || { tail -n 40 "$T"/h*/vssd.log >&2; cl_fail "vshadow: rc $RC: $OUT $ERR"; }
SET=$(sed -n 's/^Snapshot set: \({[^}]*}\).*/\1/p' <<<"$OUT")
[[ -n "$SET" ]] || cl_fail "vshadow printed no set id: $OUT"
cl_log "set $SET"
echo "$OUT" >&2
for i in 1 2 3; do
        for ev in prepare-snapshot freeze thaw post-snapshot; do
                grep -q "^host$i $ev " "$EV" || cl_fail "host$i's writer did not see $ev: $(cat "$EV")"
        done
done
# All frozen before any commit: every Freeze line comes before the first Thaw line.
last_freeze=$(grep -n ' freeze ' "$EV" | tail -n 1 | cut -d: -f1)
first_thaw=$(grep -n ' thaw ' "$EV" | head -n 1 | cut -d: -f1)
(( last_freeze < first_thaw )) || cl_fail "a host thawed before every host froze: $(cat "$EV")"
# And by the clock: the latest Freeze before the earliest Thaw.
fz=$(awk '$2 == "freeze" { if ($3 > m) m = $3 } END { print m }' "$EV")
th=$(awk '$2 == "thaw" { if (m == "" || $3 < m) m = $3 } END { print m }' "$EV")
(( fz < th )) || cl_fail "freeze at $fz ns is after a thaw at $th ns"
for i in 1 2 3; do
        n=$(cv_shadows_of "$i" "$SET")
        cl_assert_eq "$n" 1 "host$i holds one shadow copy of the set"
done
cl_wait_until 5 "host 2 lists every host's shadow copy of the set" \
        eval "[[ \$(\"$VSSADMIN\" --socket \"$T/h2/vssd.sock\" list shadows /set=$SET | grep -c 'Shadow Copy ID:') -eq 3 ]]"
cl_run "$VSSADMIN" --socket "$T/h2/vssd.sock" list shadows "/set=$SET"
for i in 1 2 3; do
        cl_assert_contains "$OUT" "Original Volume: (${VOL[$i]})" "list /set on host 2 shows host$i's volume"
done
cl_assert_contains "$OUT" "Originating Machine: host3" "a remote shadow names its host"

cl_log "2. a veto on host 3"
: >"$EV"
cv_hook 3 prepare-snapshot "exit 1"
cl_run "$VSHADOW" --socket "$T/h1/vssd.sock" -p "host1:${VOL[1]}" "host2:${VOL[2]}" "host3:${VOL[3]}"
cv_unhook 3 prepare-snapshot
echo "$ERR" >&2
[[ $RC -ne 0 ]] || cl_fail "the set succeeded despite the veto: $OUT"
cl_assert_contains "$ERR" "host3" "the error names the host"
cl_assert_contains "$ERR" "Ledger 3" "the error names the writer"
cl_assert_contains "$ERR" "0x800423F" "the error is the writer's failure (VSS_E_WRITERERROR_*)"
for i in 1 2; do
        cl_wait_until 10 "host$i's writer got Abort" grep -q "^host$i abort " "$EV"
done
grep -q ' freeze ' "$EV" && cl_fail "a host froze although host3 vetoed at prepare: $(cat "$EV")"
for i in 1 2 3; do
        n=$("$VSSADMIN" --socket "$T/h$i/vssd.sock" list shadows --json |
                python3 -c 'import json,sys; print(len(json.load(sys.stdin)["shadows"]))')
        cl_assert_eq "$n" 1 "host$i has only the first set's shadow copy"
done

cl_log "3. a second set while one runs"
# Host 2's writer holds PrepareForSnapshot until $T/go exists: set A keeps the lock.
: >"$EV"
cv_hook 2 prepare-snapshot "while [ ! -e $T/go ]; do sleep 0.05; done"
"$VSHADOW" --socket "$T/h1/vssd.sock" "host1:${VOL[1]}" "host2:${VOL[2]}" >"$T/a.out" 2>&1 &
apid=$!
CL_PIDS+=($apid)
cl_wait_until 10 "set A reached host 2's PrepareForSnapshot" grep -q "^host2 prepare-snapshot" "$EV"
cl_run "$VSHADOW" --socket "$T/h3/vssd.sock" "host3:${VOL[3]}" "host1:${VOL[1]}"
echo "$ERR" >&2
cl_assert_contains "$ERR" "0x80042316" "a second cluster set: VSS_E_SNAPSHOT_SET_IN_PROGRESS"
cl_assert_contains "$ERR" "coordinator" "the error names the running set and its coordinator"
touch "$T/go"
wait "$apid" || cl_fail "set A failed: $(cat "$T/a.out")"
echo "PASS"
