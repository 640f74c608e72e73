#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Failures during cluster snapshot sets through vssd (issue 15 items 3 and 4;
# docs/cluster.md §9): three hosts with btrfs volumes and a writer each (tests/cluster/vlib.sh:
# hold window 6 s, leases 3 s). "Thawed" is the writer's Thaw or Abort, measured from its
# Freeze: it must come within the hold window on every host.
#  1. one etcd member killed (quorum kept): a three-host set still completes; the previous
#     set's keys are collected (set_keep_s=0);
#  2. SIGSTOP of host 3's vssd after its writer froze: the set aborts at the commit limit
#     naming host3 (0x8004232E), hosts 1 and 2 thaw, host 3's writer thaws by its own
#     deadline (the Freeze event's hold_ms); after SIGCONT host 3 is over the set;
#  3. kill -9 of the coordinating vssd while every host is frozen (the commit decision held
#     by VSSD_DEBUG_CLUSTER_COMMIT_DELAY_MS): every host thaws within the hold window,
#     nobody keeps a shadow copy;
#  4. host 3's link cut while every host is frozen: host 3 thaws by itself, the set aborts
#     everywhere, vshadow names the failure;
#  5. quorum lost: vshadow fails at once with 0x80042400 and "no quorum", no writer froze.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vlib.sh"
cv_init
HOLD_MS=6000
cv_three_btrfs_hosts
read -r -a ALL <<<"$(cv_all)"

# thawed_within I: host I's writer thawed (Thaw or Abort) after its Freeze, within the hold
# window; prints the window in ms.
thaw_ms()
{
        local fz th ab
        fz=$(cv_ev_ns "$1" freeze) th=$(cv_ev_ns "$1" thaw) ab=$(cv_ev_ns "$1" abort)
        [[ -n "$fz" ]] || cl_fail "host$1's writer never froze: $(cat "$EV")"
        [[ -n "$ab" ]] || ab=$th
        [[ -n "$ab" ]] || cl_fail "host$1's writer never thawed: $(cat "$EV")"
        echo $(((ab - fz) / 1000000))
}
# all_thawed CASE: every host's writer thawed, each within the hold window (logged).
all_thawed()
{
        local i ms
        for i in 1 2 3; do cl_wait_until 10 "host$i thawed" host_thawed "$i"; done
        for i in 1 2 3; do
                ms=$(thaw_ms "$i")
                cl_log "$1: host$i frozen $ms ms"
                cl_assert_le "$ms" "$HOLD_MS" "host$i thawed within the hold window"
        done
}
host_thawed()
{
        [[ -n "$(cv_ev_ns "$1" abort)$(cv_ev_ns "$1" thaw)" ]]
}
no_shadows_of()
{
        local i
        for i in 1 2 3; do
                [[ -z "${VSSD_PID[$i]}" ]] && continue
                cl_assert_eq "$(cv_shadows_of "$i" "$1")" 0 "host$i holds no shadow copy of failed set $1"
        done
}
set_of()
{
        sed -n 's/.*\({[0-9a-fA-F-]\{36\}}\).*/\1/p' "$1" | head -n 1
}
# The set the coordinator on host 1 is running now, from its log.
running_set()
{
        sed -n 's/.*coordinating cluster set \({[^}]*}\).*/\1/p' "$T/h1/vssd.log" | tail -n 1
}

cl_log "0. a set to collect later"
cl_run "$VSHADOW" --socket "$T/h1/vssd.sock" "${ALL[@]}"
cl_assert_rc 0 "the first set"
SET0=$(running_set)

cl_log "1. one etcd member killed"
cl_etcd_kill 3
: >"$EV"
cl_run "$VSHADOW" --socket "$T/h1/vssd.sock" -p "${ALL[@]}"
[[ $RC -eq 0 ]] || cl_fail "a set with one etcd member dead: rc $RC: $ERR"
SET1=$(sed -n 's/^Snapshot set: \({[^}]*}\).*/\1/p' <<<"$OUT")
for i in 1 2 3; do cl_assert_eq "$(cv_shadows_of "$i" "$SET1")" 1 "host$i has its shadow copy"; done
# Collected at set 1's release (T10), which may come just after vshadow's answer.
set0_gone()
{
        local out
        out=$(cl_tool 1 get "/openvss/sets/$SET0/" --prefix 2>/dev/null) && [[ "$out" != *"$SET0"* ]]
}
cl_wait_until 5 "the keys of the set before collected" set0_gone
cl_run cl_tool 1 get "/openvss/sets/$SET1/final"
cl_assert_contains "$OUT" "complete" "the set's own keys stay"
for i in 1 2 3; do cl_log "set 1: host$i frozen $(thaw_ms "$i") ms"; done
cl_etcd_start 3
cl_wait_until 30 "etcd member 3 back" cl_etcd_healthy

cl_log "2. SIGSTOP of host 3's vssd after its writer froze"
: >"$EV"
cv_hook 3 freeze "while [ ! -e $T/go2 ]; do sleep 0.02; done"
cv_vshadow_bg 1 "$T/v2.out" "${ALL[@]}"
cl_wait_until 20 "host 3's writer got Freeze" grep -q "^host3 freeze " "$EV"
kill -STOP "${VSSD_PID[3]}"
touch "$T/go2"
wait "$CV_BG" && cl_fail "the set succeeded with host 3 stopped: $(cat "$T/v2.out")"
ERR=$(cat "$T/v2.out")
echo "$ERR" >&2
cl_assert_contains "$ERR" "host3" "the failure names the stopped host"
cl_assert_contains "$ERR" "0x8004232E" "VSS_E_CLUSTER_TIMEOUT (the commit limit passed)"
all_thawed SIGSTOP
kill -CONT "${VSSD_PID[3]}"
cv_unhook 3 freeze
SET2=$(running_set)
cl_wait_until 10 "host 3 is over set 2 after SIGCONT" grep -q "done with cluster set $SET2" "$T/h3/vssd.log"
no_shadows_of "$SET2"

cl_log "3. kill -9 of the coordinating vssd while every host is frozen"
cv_vssd_kill 1
: >"$T/h1/vssd.log"
cv_vssd_start 1 VSSD_DEBUG_CLUSTER_COMMIT_DELAY_MS=30000
cv_wait_writer 1
cl_wait_until 15 "every host lists every host" cv_present_everywhere
: >"$EV"
cv_vshadow_bg 1 "$T/v3.out" "${ALL[@]}"
cl_wait_until 20 "the commit decision held" grep -q "holding the commit decision" "$T/h1/vssd.log"
SET3=$(running_set)
cv_vssd_kill 1
t_kill=$(date +%s%N)
wait "$CV_BG" && cl_fail "vshadow succeeded although its vssd died"
all_thawed "kill -9"
for i in 1 2 3; do
        cl_log "kill -9: host$i thawed $((($(cv_ev_ns "$i" abort) - t_kill) / 1000000)) ms after the kill"
        [[ -z "$(cv_ev_ns "$i" thaw)" ]] || cl_fail "host$i got Thaw (a commit) although no decision was written"
done
for i in 2 3; do
        cl_wait_until 10 "host $i is over set 3" grep -q "done with cluster set $SET3" "$T/h$i/vssd.log"
done
cl_run cl_tool 2 get "/openvss/sets/$SET3/decision"
cl_assert_contains "$OUT" "abort" "the set's decision is abort"
cv_vssd_start 1 VSSD_DEBUG_CLUSTER_COMMIT_DELAY_MS=30000
no_shadows_of "$SET3"

cl_log "4. host 3's link cut while every host is frozen"
cv_wait_writer 1
cl_wait_until 15 "every host lists every host" cv_present_everywhere
: >"$EV"
n=$(grep -c "holding the commit decision" "$T/h1/vssd.log" || true)
cv_vshadow_bg 1 "$T/v4.out" "${ALL[@]}"
cl_wait_until 20 "the commit decision held" \
        eval "[[ \$(grep -c 'holding the commit decision' '$T/h1/vssd.log') -gt $n ]]"
SET4=$(running_set)
cl_cut 3
t_cut=$(date +%s%N)
cl_wait_until 10 "host 3 thawed by itself" host_thawed 3
wait "$CV_BG" && cl_fail "the set succeeded with host 3 cut off: $(cat "$T/v4.out")"
ERR=$(cat "$T/v4.out")
echo "$ERR" >&2
# Whoever's deadline passes first: a host's commit cutoff (0x80042314), the coordinator's
# limit (0x8004232E), or host 3's unreachable grace (0x80042400, if its proposal landed).
[[ "$ERR" =~ 0x80042314|0x8004232E|0x80042400 ]] || cl_fail "not a deadline's HRESULT: $ERR"
cl_assert_contains "$ERR" "on host host" "the failure names its host"
all_thawed "link cut"
cl_log "host 3 thawed $((($(cv_ev_ns 3 abort) - t_cut) / 1000000)) ms after its link was cut"
cl_restore 3
cl_wait_until 15 "host 3 is over set 4 once its link is back" grep -q "done with cluster set $SET4" "$T/h3/vssd.log"
no_shadows_of "$SET4"

cl_log "5. quorum lost"
cl_wait_until 15 "every host lists every host" cv_present_everywhere
cl_etcd_stop_quorum
# Quorum is lost once the last member knows it has no leader (its election timeout, 1 s).
no_leader()
{
        local out
        out=$(cl_in 1 "$ETCD_TOOL" --endpoints "$(cl_endpoint 1)" --timeout-ms 500 status 2>/dev/null) || return 0
        [[ "$out" == *"leader=0 "* ]]
}
cl_wait_until 10 "etcd member 1 lost its leader" no_leader
: >"$EV"
t0=$(date +%s%N)
cl_run "$VSHADOW" --socket "$T/h1/vssd.sock" "${ALL[@]}"
t1=$(date +%s%N)
echo "$ERR" >&2
[[ $RC -ne 0 ]] || cl_fail "a set succeeded without quorum"
cl_assert_contains "$ERR" "0x80042400" "VSS_E_CLUSTER_ERROR"
cl_assert_contains "$ERR" "quorum" "the error says etcd has no quorum"
cl_assert_le $(((t1 - t0) / 1000000)) 5000 "the error comes within the call deadlines"
grep -q " freeze " "$EV" && cl_fail "a writer froze without quorum: $(cat "$EV")"
echo "PASS"
