#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Causality of cluster snapshot sets under load (issue 15 item 4; docs/cluster.md §8):
# host 1 (A) and host 3 have btrfs volumes, host 2 (B) a cow volume (ext4 served by
# vss-volsrv), each with a writer. A client appends record n to A's log and, only once A
# acknowledged it, record n to B's log, continuously. Each host's writer fences its
# volume's writes at Freeze (under the lock the client takes for every write) and lifts
# the fence at Thaw or Abort, as an application writer does. For every set taken under
# that load, the last record in B's shadow copy must be in A's shadow copy too: a host
# that snapshotted before another froze would break it.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vlib.sh"
SETS=${CAUSAL_SETS:-5}
cv_init
cl_net_up
cl_etcd_start_all
cv_btrfs 1
cv_btrfs 3
for i in 1 2 3; do cv_vssd_start "$i"; done
cv_cow 2
for i in 1 2 3; do
        cv_hook "$i" freeze "flock $T/lock.$i touch $T/frozen.$i"
        cv_hook "$i" thaw "rm -f $T/frozen.$i"
        cv_hook "$i" abort "rm -f $T/frozen.$i"
        cv_writer_start "$i"
done
cl_wait_until 15 "every host lists every host" cv_present_everywhere
read -r -a ALL <<<"$(cv_all)"

# The client: record n on A (host 1), then on B (host 2); a write waits while the
# volume's writer holds it frozen.
client()
{
        local n=0
        put()
        {
                until flock "$T/lock.$1" sh -c "[ ! -e $T/frozen.$1 ] && echo $2 >>${VOL[$1]}/log"; do
                        sleep 0.002
                done
        }
        while [[ ! -e "$T/stop" ]]; do
                n=$((n + 1))
                put 1 "$n"
                put 2 "$n"
        done
}
client &
CL_PIDS+=($!)
CLIENT=$!
cl_wait_until 10 "the client writes on both hosts" test -s "${VOL[2]}/log"

# shadow_of I SET: host I's shadow copy id in SET.
shadow_of()
{
        "$VSSADMIN" --socket "$T/h$1/vssd.sock" list shadows --json |
                python3 -c 'import json,sys
for s in json.load(sys.stdin)["shadows"]:
    if s["set_id"] == sys.argv[1]: print(s["shadow_id"])' "$2"
}
# last_in I SET: the last record of host I's log in its shadow copy of SET ("0": none).
last_in()
{
        local id d=$T/x$1 last
        id=$(shadow_of "$1" "$2")
        [[ -n "$id" ]] || cl_fail "host$1 has no shadow copy of set $2"
        mkdir -p "$d"
        cl_run "$VSSADMIN" --socket "$T/h$1/vssd.sock" expose shadow "/shadow=$id" "/at=$d"
        cl_assert_rc 0 "expose host$1's shadow copy"
        last=$(tail -n 1 "$d/log" 2>/dev/null || true)
        cl_run "$VSSADMIN" --socket "$T/h$1/vssd.sock" unexpose shadow "/shadow=$id"
        cl_assert_rc 0 "unexpose host$1's shadow copy"
        echo "${last:-0}"
}

for s in $(seq 1 "$SETS"); do
        before=$(tail -n 1 "${VOL[2]}/log")
        cl_run "$VSHADOW" --socket "$T/h1/vssd.sock" -p "${ALL[@]}"
        [[ $RC -eq 0 ]] || cl_fail "set $s under load: rc $RC: $ERR"
        SET=$(sed -n 's/^Snapshot set: \({[^}]*}\).*/\1/p' <<<"$OUT")
        a=$(last_in 1 "$SET") b=$(last_in 2 "$SET")
        cl_log "set $s $SET: last record in A's shadow $a, in B's $b (B had $before before the set)"
        [[ "$a" =~ ^[0-9]+$ && "$b" =~ ^[0-9]+$ ]] || cl_fail "unreadable records: A '$a', B '$b'"
        (( b <= a )) || cl_fail "set $s: B's shadow holds record $b but A's only up to $a (causality broken)"
        (( b >= before )) || cl_fail "set $s: B's shadow lacks record $before written before the set"
        cl_assert_eq "$(cv_shadows_of 3 "$SET")" 1 "host3 has its shadow copy of set $s"
done
touch "$T/stop"
wait "$CLIENT" || true
n=$(tail -n 1 "${VOL[2]}/log")
cl_log "the client wrote $n records on each host"
(( n > SETS )) || cl_fail "the client made no progress across the sets ($n records)"
echo "PASS"
