#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Hosts join a cluster (issue 15 item 1): one real vssd per host namespace with
# vssd.conf [cluster] on the real three-member etcd.
#  1. every host lists every host as present, its own marked; a vssd without
#     [cluster] answers Cluster.Hosts with 0x8004232F VSS_E_NOT_SUPPORTED;
#  2. a writer registered on host 2 shows in `vssadmin list writers /cluster` on
#     host 1 with its host and state, and disappears when it exits;
#  3. kill -9 of host 3's vssd: gone within the lease TTL (+ a read); back as
#     present when it starts again;
#  4. host 2 cut off from the network: gone on host 1 once its lease expires, its
#     own vssd says etcd does not answer; back once the link returns (new lease);
#  5. a vssd that stops cleanly revokes its lease: gone at once, not after the TTL;
#  6. one etcd member killed: the view is still read and kept up to date.
. "$(dirname "$0")/lib.sh"
for b in VSSD VSSADMIN VSSWRITER; do
        [[ -n "${!b:-}" && -x "${!b}" ]] || cl_fail "$b '${!b:-}' is not built"
done
cl_init
cl_net_up
cl_etcd_start_all

TTL=3
declare -a VSSD_PID

vssd_start()
{
        local i=$1
        mkdir -p "$T/h$i"
        cat >"$T/h$i/vssd.conf" <<CONF
[cluster]
endpoints=$(cl_endpoints)
host=host$i
host_lease_ttl_s=$TTL
call_timeout_ms=500
CONF
        # ip netns exec directly: $! must be vssd itself.
        ip netns exec "${CL_NS[$i]}" "$VSSD" --socket "$T/h$i/vssd.sock" --state-dir "$T/h$i/state" \
                --config "$T/h$i/vssd.conf" >>"$T/h$i/vssd.log" 2>&1 &
        VSSD_PID[$i]=$!
        CL_PIDS+=($!)
        cl_wait_until 10 "vssd on host $i answers" "$VSSADMIN" --socket "$T/h$i/vssd.sock" list providers
}

admin()
{
        local i=$1
        shift
        cl_run "$VSSADMIN" --socket "$T/h$i/vssd.sock" "$@"
}

# host_state I HOST: Present or Gone, as host I's vssd lists HOST.
host_state()
{
        "$VSSADMIN" --socket "$T/h$1/vssd.sock" list hosts 2>/dev/null |
                awk -v h="Host name: '$2'" 'index($0, h) == 1 { f = 1; next } f && /State:/ { print $2; exit }'
}

state_is()
{
        [[ "$(host_state "$1" "$2")" == "$3" ]]
}

cl_log "1. three hosts"
for i in 1 2 3; do vssd_start "$i"; done
for i in 1 2 3; do
        for h in 1 2 3; do
                cl_wait_until 10 "host $i lists host$h as present" state_is "$i" "host$h" Present
        done
done
admin 2 list hosts
cl_assert_rc 0 "vssadmin list hosts"
cl_assert_contains "$OUT" "Host name: 'host2' (this host)" "the own host is marked"
cl_assert_not_contains "$OUT" "Host name: 'host1' (this host)" "only the own host is marked"
cl_assert_contains "$OUT" "Providers: " "the record names the providers"
admin 1 list hosts --json
cl_assert_contains "$OUT" '"prefix": "/openvss"' "--json gives the daemon's result"

mkdir -p "$T/solo"
"$VSSD" --socket "$T/solo/vssd.sock" --state-dir "$T/solo/state" --config /dev/null >"$T/solo/vssd.log" 2>&1 &
CL_PIDS+=($!)
cl_wait_until 10 "the single-host vssd answers" "$VSSADMIN" --socket "$T/solo/vssd.sock" list providers
cl_run "$VSSADMIN" --socket "$T/solo/vssd.sock" list hosts
cl_assert_rc 1 "list hosts without [cluster]"
cl_assert_contains "$OUT$ERR" "0x8004232F" "not part of a cluster: VSS_E_NOT_SUPPORTED"
cl_assert_contains "$OUT$ERR" "no [cluster] section" "the error says why"

cl_log "2. a writer on host 2, seen from host 1"
ip netns exec "${CL_NS[2]}" "$VSSWRITER" --socket "$T/h2/vssd.sock" --name "Ledger Writer" --volume /tmp \
        >"$T/writer.log" 2>&1 &
wpid=$!
CL_PIDS+=($wpid)
writer_on_1()
{
        "$VSSADMIN" --socket "$T/h1/vssd.sock" list writers /cluster 2>/dev/null |
                grep -A1 "Writer name: 'Ledger Writer'" | grep -q "Host: host2"
}
cl_wait_until 10 "host 1 lists host 2's writer" writer_on_1
admin 1 list writers /cluster
cl_assert_contains "$OUT" "State: [1] Stable" "the writer's state travels with it"
admin 1 list writers
cl_assert_not_contains "$OUT" "Ledger Writer" "plain list writers stays local"
kill "$wpid"
wait "$wpid" 2>/dev/null || true
cl_wait_until 10 "the writer leaves host 1's view" eval '! writer_on_1'

cl_log "3. kill -9 of host 3's vssd"
kill -9 "${VSSD_PID[3]}"
wait "${VSSD_PID[3]}" 2>/dev/null || true
t0=$SECONDS
cl_wait_until $((TTL + 5)) "host3 gone on host 1" state_is 1 host3 Gone
cl_log "host3 gone after $((SECONDS - t0)) s (TTL ${TTL} s)"
admin 1 list writers /cluster
cl_assert_contains "$OUT" "Host host3: gone" "list writers /cluster names the gone host"
vssd_start 3
cl_wait_until 10 "host3 present again" state_is 1 host3 Present

cl_log "4. host 2 cut off"
cl_cut 2
cl_wait_until $((TTL + 8)) "host2 gone on host 1" state_is 1 host2 Gone
admin 2 list hosts
cl_assert_contains "$ERR" "Warning: etcd did not answer" "the cut-off host says its view is stale"
cl_restore 2
cl_wait_until 20 "host2 present again on host 1" state_is 1 host2 Present
grep -q "host lease of host2 expired; joining again" "$T/h2/vssd.log" ||
        cl_fail "host 2 did not say it joined again: $(tail -n 5 "$T/h2/vssd.log")"

cl_log "5. a clean stop"
kill -TERM "${VSSD_PID[3]}"
wait "${VSSD_PID[3]}" 2>/dev/null || true
t0=$(date +%s%N)
cl_wait_until 3 "host3 gone at once after its clean stop" state_is 1 host3 Gone
cl_log "host3 gone $((($(date +%s%N) - t0) / 1000000)) ms after its vssd exited"

cl_log "6. one etcd member killed"
cl_etcd_kill 1
ip netns exec "${CL_NS[2]}" "$VSSWRITER" --socket "$T/h2/vssd.sock" --name "Second Writer" --volume /tmp \
        >"$T/writer2.log" 2>&1 &
CL_PIDS+=($!)
second_on_1()
{
        "$VSSADMIN" --socket "$T/h1/vssd.sock" list writers /cluster 2>/dev/null | grep -q "Writer name: 'Second Writer'"
}
cl_wait_until 15 "host 1 (its own etcd member dead) sees host 2's new writer" second_on_1
state_is 1 host1 Present || cl_fail "host1 not present with one member down"
echo "PASS"
