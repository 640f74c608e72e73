#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The cluster set protocol end to end over the real three-member etcd: one
# cset-host per host namespace (the real state machines, transactions and
# client; local work that only takes time), the coordinator on host 1.
#  1. three hosts: every host freezes, all freezes before any snapshot, every
#     host snapshots, the set completes, freeze windows far inside the hold window;
#  2. a second set while one runs: 0x80042316 VSS_E_SNAPSHOT_SET_IN_PROGRESS;
#  3. a veto at prepare on host 3: the set aborts naming host and writer, nothing froze;
#  4. kill -9 of the coordinator while the others are frozen: they thaw within
#     the hold window and abort by themselves, no snapshot;
#  5. host 3 cut off while frozen: it thaws by itself within the hold window,
#     the set aborts on every host, host 3 finishes once its link is back;
#  6. quorum lost: the set does not start (0x80042400, "no quorum"), nothing froze.
. "$(dirname "$0")/lib.sh"
[[ -n "${CSET_HOST:-}" && -x "$CSET_HOST" ]] || cl_fail "CSET_HOST '${CSET_HOST:-}' is not built"
cl_init
cl_net_up
cl_etcd_start_all

HOLD=6000
hosts=host1,host2,host3
nset=0

# host_start VAR I NAME-OF-OUTPUT ARGS...: a cset-host in host I's namespace, in the
# background (a child of this shell, so that wait works); its pid in VAR.
host_start()
{
        local var=$1 i=$2 out=$3
        shift 3
        # ip netns exec directly, not through a shell function: $! must be cset-host itself.
        ip netns exec "${CL_NS[$i]}" "$CSET_HOST" --endpoints "$(cl_endpoints)" --host "host$i" --hosts "$hosts" \
                --hold-ms "$HOLD" --prepare-ms 8000 --call-timeout-ms 500 "$@" \
                >"$T/$out.out" 2>"$T/$out.err" &
        CL_PIDS+=($!)
        printf -v "$var" %s $!
}

new_set()
{
        nset=$((nset + 1))
        set_id="{00000000-0000-4000-8000-00000000000$nset}"
}

wait_ok()
{
        local pid=$1 what=$2
        wait "$pid" || cl_fail "$what exited $?: $(cat "$T/$what.out" "$T/$what.err" | tail -n 30)"
}

frozen_ms_of()
{
        grep -oE 'frozen_ms=[0-9]+' "$T/$1.out" | cut -d= -f2
}

cl_log "1. a three-host set"
new_set
host_start p2 2 s1-h2 --set "$set_id"
host_start p3 3 s1-h3 --set "$set_id"
host_start p1 1 s1-h1 --set "$set_id" --coordinator
wait_ok "$p1" s1-h1
wait_ok "$p2" s1-h2
wait_ok "$p3" s1-h3
cl_assert_contains "$(cat "$T/s1-h1.out")" "result 0x00000000 S_OK"
last_freeze=0 first_snap=999999999999
for h in 1 2 3; do
        out=$(cat "$T/s1-h$h.out")
        cl_assert_contains "$out" "snapshot "
        cl_assert_contains "$out" "backup-complete"
        cl_assert_contains "$out" "over"
        cl_assert_not_contains "$out" "deleted"
        f=$(grep -oE '^frozen [0-9]+' <<<"$out" | cut -d' ' -f2)
        s=$(grep -oE '^snapshot [0-9]+' <<<"$out" | cut -d' ' -f2)
        [[ $f -gt $last_freeze ]] && last_freeze=$f
        [[ $s -lt $first_snap ]] && first_snap=$s
        ms=$(frozen_ms_of "s1-h$h")
        cl_log "host $h frozen $ms ms"
        cl_assert_le "$ms" 1000 "host $h freeze window"
done
# The namespaces share one monotonic clock, so the hosts' times compare: every freeze before every snapshot.
[[ $last_freeze -lt $first_snap ]] || cl_fail "a snapshot at $first_snap before a freeze at $last_freeze"
cl_run cl_tool 2 get "/openvss/sets/$set_id/final"
cl_assert_contains "$OUT" "/final=complete"

cl_log "2. a second set while one runs: 0x80042316"
new_set
host_start p2 2 s2-h2 --set "$set_id" --prepare-delay-ms 3000
host_start p3 3 s2-h3 --set "$set_id"
host_start p1 1 s2-h1 --set "$set_id" --coordinator
cl_wait_until 10 "the first set holds the lock" bash -c "'$ETCD_TOOL' --endpoints '$(cl_endpoints)' get /openvss/lock | grep -q set_id"
cl_run cl_in 3 "$CSET_HOST" --endpoints "$(cl_endpoints)" --host host3 --hosts "$hosts" --set "{second}" --coordinator
cl_assert_rc 16
cl_assert_contains "$OUT" "error 0x80042316 VSS_E_SNAPSHOT_SET_IN_PROGRESS"
cl_assert_contains "$OUT" "$set_id"
wait_ok "$p1" s2-h1
wait_ok "$p2" s2-h2
wait_ok "$p3" s2-h3
cl_assert_contains "$(cat "$T/s2-h1.out")" "result 0x00000000"

cl_log "3. a veto at prepare on host 3"
new_set
host_start p2 2 s3-h2 --set "$set_id"
host_start p3 3 s3-h3 --set "$set_id" --veto-prepare VSS_E_WRITERERROR_RETRYABLE
host_start p1 1 s3-h1 --set "$set_id" --coordinator
wait_ok "$p1" s3-h1
wait_ok "$p2" s3-h2
wait_ok "$p3" s3-h3
cl_assert_contains "$(cat "$T/s3-h1.out")" "result 0x800423F3 VSS_E_WRITERERROR_RETRYABLE host=host3 writer=Test Writer"
for h in 1 2 3; do
        cl_assert_not_contains "$(cat "$T/s3-h$h.out")" "frozen" "host $h froze in a vetoed set"
        cl_assert_contains "$(cat "$T/s3-h$h.out")" "over"
done

cl_log "4. kill -9 of the coordinator while hosts 2 and 3 are frozen"
new_set
host_start p2 2 s4-h2 --set "$set_id" --freeze-delay-ms 2500
host_start p3 3 s4-h3 --set "$set_id" --freeze-delay-ms 2500
host_start p1 1 s4-h1 --set "$set_id" --coordinator
cl_wait_until 10 "host 2 frozen" grep -q '^frozen' "$T/s4-h2.out"
cl_wait_until 10 "host 3 frozen" grep -q '^frozen' "$T/s4-h3.out"
kill -9 "$p1"
wait "$p1" 2>/dev/null || true
wait_ok "$p2" s4-h2
wait_ok "$p3" s4-h3
for h in 2 3; do
        out=$(cat "$T/s4-h$h.out")
        cl_assert_contains "$out" "thawed"
        cl_assert_not_contains "$out" "snapshot" "host $h snapshot without its coordinator"
        cl_assert_contains "$out" "over"
        ms=$(frozen_ms_of "s4-h$h")
        cl_log "host $h frozen $ms ms after the coordinator died"
        cl_assert_le "$ms" "$HOLD" "host $h thawed within the hold window"
done
cl_run cl_tool 2 get "/openvss/sets/$set_id/decision"
cl_assert_contains "$OUT" '"outcome":"abort"'
cl_wait_until 10 "the dead coordinator's lock expires" bash -c "'$ETCD_TOOL' --endpoints '$(cl_endpoints)' get /openvss/lock | grep -q count=0"

cl_log "5. host 3 cut off from etcd while frozen"
new_set
host_start p2 2 s5-h2 --set "$set_id"
host_start p3 3 s5-h3 --set "$set_id" --freeze-delay-ms 1500
host_start p1 1 s5-h1 --set "$set_id" --coordinator
cl_wait_until 10 "host 3 frozen" grep -q '^frozen' "$T/s5-h3.out"
cl_cut 3
cl_wait_until 10 "host 3 thawed by itself" grep -q '^thawed' "$T/s5-h3.out"
ms=$(frozen_ms_of s5-h3)
cl_log "host 3 frozen $ms ms while cut off"
cl_assert_le "$ms" "$HOLD" "cut-off host thawed within the hold window"
wait_ok "$p1" s5-h1
wait_ok "$p2" s5-h2
cl_assert_contains "$(cat "$T/s5-h1.out")" "host=host3"
cl_assert_not_contains "$(cat "$T/s5-h1.out")" "result 0x00000000"
for h in 1 2 3; do
        cl_assert_not_contains "$(cat "$T/s5-h$h.out")" "snapshot" "host $h snapshot in an aborted set"
done
cl_restore 3
wait_ok "$p3" s5-h3
cl_assert_contains "$(cat "$T/s5-h3.out")" "over"

cl_log "6. quorum lost: the set does not start, nothing freezes"
cl_etcd_stop_quorum
new_set
host_start p2 2 s6-h2 --set "$set_id" --limit-ms 4000
cl_run cl_in 1 "$CSET_HOST" --endpoints "$(cl_endpoints)" --host host1 --hosts "$hosts" --set "$set_id" \
        --coordinator --call-timeout-ms 2000
cl_assert_rc 2
cl_assert_contains "$OUT" "error 0x80042400 VSS_E_CLUSTER_ERROR"
cl_assert_contains "$OUT" "etcd has no quorum"
wait "$p2" || true
cl_assert_not_contains "$(cat "$T/s6-h2.out")" "frozen" "a host froze without quorum"

echo "PASS: $CL_NAME"
