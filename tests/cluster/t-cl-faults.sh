#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The etcd client's failure behaviour against the real cluster:
#  1. failover: the member a client talks to dies (between calls, and under a
#     cached connection in the middle of a keepalive loop): calls go on through
#     the other members;
#  2. quorum lost (two of three members killed): a clear -ENOLINK "no quorum"
#     naming what each member said, within the call's deadline; restarting the
#     members brings writes back;
#  3. a host cut off (every packet dropped, so connections hang rather than
#     fail): its calls fail within their deadline, the rest of the cluster
#     works meanwhile, and the host works again once its link is restored.
# Every deadline is checked: a call returns within its budget plus 300 ms for
# process start and ASan.
. "$(dirname "$0")/lib.sh"
cl_init
cl_net_up
cl_etcd_start_all

slack=300

cl_log "1. failover: a follower the client talks to first is killed"
leader=$(cl_etcd_leader) || cl_fail "no leader"
follower=$(( leader % 3 + 1 ))
other=$(( follower % 3 + 1 ))
first_follower="$(cl_endpoint "$follower"),$(cl_endpoint "$other"),$(cl_endpoint "$leader")"
cl_run cl_tool 1 put /f/x before
cl_assert_rc 0
# A keepalive loop on one connection to the follower; the follower dies in the middle.
cl_run cl_tool 1 lease-grant 5
[[ "$OUT" =~ lease=([0-9]+) ]] || cl_fail "no lease: $OUT"
lease=${BASH_REMATCH[1]}
CL_ENDPOINTS_OVERRIDE=$first_follower cl_in 1 "$ETCD_TOOL" --endpoints "$first_follower" --timeout-ms 2000 \
        keepalive "$lease" --every-ms 300 --count 10 >"$T/ka.out" 2>"$T/ka.err" &
ka=$!
CL_PIDS+=("$ka")
cl_wait_until 10 "three keepalives" bash -c "[[ \$(grep -c ttl= '$T/ka.out') -ge 3 ]]"
cl_etcd_kill "$follower"
wait "$ka" || cl_fail "keepalive loop failed after its member died: $(cat "$T/ka.out" "$T/ka.err")"
cl_assert_eq "$(grep -c '^ttl=5$' "$T/ka.out")" 10 "all keepalives answered"
cl_run cl_in 1 "$ETCD_TOOL" --endpoints "$first_follower" --timeout-ms 2000 put /f/x after
cl_assert_rc 0
cl_assert_le "$(cl_elapsed_ms)" 1000 "failover past a refusing member"
cl_run cl_in 2 "$ETCD_TOOL" --endpoints "$first_follower" --timeout-ms 2000 get /f/x
cl_assert_rc 0
cl_assert_contains "$OUT" "/f/x=after"
cl_etcd_start "$follower"
cl_wait_until 30 "member $follower back" cl_etcd_healthy

cl_log "2. quorum lost: two members killed"
cl_etcd_kill 2
cl_etcd_kill 3
for op in "put /f/y 1" "get /f/x" "lease-grant 5"; do
        # shellcheck disable=SC2086
        cl_run cl_tool 1 --timeout-ms 4000 $op
        cl_assert_rc 3 "$op without quorum"
        cl_assert_contains "$ERR" "etcd has no quorum"
        cl_assert_contains "$ERR" "etcdserver: no leader"
        cl_assert_le "$(cl_elapsed_ms)" $((4000 + slack)) "$op deadline"
done
cl_run cl_tool 1 --timeout-ms 1000 status
cl_assert_contains "$OUT" "$(cl_endpoint 1) leader=0 "
cl_etcd_start 2
cl_etcd_start 3
cl_wait_until 30 "quorum back" cl_etcd_healthy
cl_run cl_tool 1 --timeout-ms 4000 put /f/y 2
cl_assert_rc 0

cl_log "3. host 1 cut off: its calls fail within the deadline, hosts 2 and 3 go on"
cl_cut 1
for budget in 500 2000; do
        cl_run cl_tool 1 --timeout-ms "$budget" get /f/x
        [[ $RC -eq 2 || $RC -eq 3 ]] || cl_fail "cut-off get: expected -ETIMEDOUT or -ENOLINK, got rc=$RC: $ERR"
        cl_assert_le "$(cl_elapsed_ms)" $((budget + slack)) "cut-off get with a $budget ms deadline"
done
cl_run cl_tool 1 --timeout-ms 2000 put /f/z cut
[[ $RC -eq 2 || $RC -eq 3 ]] || cl_fail "cut-off put: expected -ETIMEDOUT or -ENOLINK, got rc=$RC: $ERR"
cl_assert_le "$(cl_elapsed_ms)" $((2000 + slack)) "cut-off put deadline"
# Member 1 may have been the leader: hosts 2 and 3 get a new one within an election.
cl_run cl_tool 2 --timeout-ms 6000 put /f/z from-2
cl_assert_rc 0
cl_run cl_tool 3 --timeout-ms 2000 get /f/z
cl_assert_contains "$OUT" "/f/z=from-2"
cl_restore 1
cl_wait_until 20 "host 1 works again" cl_tool 1 --timeout-ms 1000 get /f/z
cl_run cl_tool 1 --timeout-ms 2000 get /f/z
cl_assert_contains "$OUT" "/f/z=from-2"

echo "PASS: $CL_NAME"
