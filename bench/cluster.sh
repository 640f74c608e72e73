#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Cluster snapshot sets against a local set (issue 15 item 5): three hosts as network
# namespaces with a three-member etcd and one vssd, btrfs volume and writer each (the
# harness of tests/cluster/lib.sh and vlib.sh), then ROUNDS sets of each kind:
#   local    vshadow -p /v1 on host 1 (no cluster protocol)
#   1 host   vshadow -p host1:/v1
#   2 hosts  vshadow -p host1:/v1 host2:/v2
#   3 hosts  vshadow -p host1:/v1 host2:/v2 host3:/v3
# and prints, per kind, the median set creation time (vshadow's run, wall clock) and each
# host's median and worst freeze window (vssd sending its writer Freeze to sending it Thaw,
# from vssd's debug log, so that measuring forks nothing), with ratios to the local set.
# The writers only acknowledge (no hooks). Targets (docs/cluster.md): 3 hosts add < 50 ms, no host frozen > 100 ms.
#
#   bench/cluster.sh [BUILD_DIR]      (root; ROUNDS, default 10)
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "bench/cluster.sh: must run as root (network namespaces, loop devices)" >&2; exit 77; }
BUILD=$(realpath "${1:-build}")
export ETCD_TOOL=$BUILD/tests/cluster/etcd-tool VSSD=$BUILD/src/vssd/vssd
export VSSADMIN=$BUILD/src/tools/vssadmin/vssadmin VSSWRITER=$BUILD/src/tools/vsswriter/vsswriter
export VSHADOW=$BUILD/src/tools/vshadow/vshadow BUILD_DIR=$BUILD
ROUNDS=${ROUNDS:-10}
# etcd's data and the volumes' images on tmpfs unless ON_DISK=1: each etcd write waits for
# an fsync, and three btrfs snapshots at once on loop files of one disk queue behind each
# other's flushes; on this machine's disk those, not openvss, would dominate the numbers.
if [[ -z "${ON_DISK:-}" ]]; then
        CL_ETCD_DIR=$(mktemp -d /dev/shm/openvss-bench-etcd.XXXXXX)
        CV_IMG_DIR=$(mktemp -d /dev/shm/openvss-bench-img.XXXXXX)
fi
HERE=$(dirname "$(realpath "$0")")
. "$HERE/../tests/cluster/lib.sh"
. "$HERE/../tests/cluster/vlib.sh"
cv_init
# A writer that only acknowledges.
bench_writer_start()
{
        nsenter --net="/run/netns/${CL_NS[$1]}" "$VSSWRITER" --socket "$T/h$1/vssd.sock" --name "Ledger $1" \
                --volume "${VOL[$1]}" >>"$T/h$1/writer.log" 2>&1 &
        CL_PIDS+=($!)
        cv_wait_writer "$1"
}
cv_three_btrfs_hosts bench_writer_start

RES=$T/bench.txt
: >"$RES"
# freeze_us LOG WRITER: microseconds from vssd's Freeze to its Thaw of WRITER, or nothing.
freeze_us()
{
        python3 - "$1" "$2" <<'EOF'
import datetime, sys
t = {}
for line in open(sys.argv[1], errors="replace"):
    for ev in ("Freeze", "Thaw"):
        if line.rstrip().endswith(f"-> writer '{sys.argv[2]}': {ev}"):
            t[ev] = datetime.datetime.strptime(line[:26], "%Y-%m-%d %H:%M:%S.%f")
if "Freeze" in t and "Thaw" in t:
    print(int((t["Thaw"] - t["Freeze"]).total_seconds() * 1e6))
EOF
}
# run KIND VSHADOW-ARGS...: ROUNDS sets; "KIND set MS" and "KIND hostI freeze MS" lines.
run()
{
        local kind=$1 r t0 t1 i us
        shift
        for r in $(seq 0 "$ROUNDS"); do
                for i in 1 2 3; do : >"$T/h$i/vssd.log"; done
                t0=$(date +%s%N)
                cl_run "$VSHADOW" --socket "$T/h1/vssd.sock" -p "$@"
                t1=$(date +%s%N)
                [[ $RC -eq 0 ]] || cl_fail "$kind set failed: $ERR"
                for i in 1 2 3; do
                        "$VSSADMIN" --socket "$T/h$i/vssd.sock" delete shadows /all /quiet >/dev/null 2>&1 || true
                done
                [[ $r -gt 0 ]] || continue      # round 0 warms up
                echo "$kind set $(((t1 - t0) / 1000))" >>"$RES"
                for i in 1 2 3; do
                        us=$(freeze_us "$T/h$i/vssd.log" "Ledger $i")
                        if [[ -n "$us" ]]; then echo "$kind host$i $us" >>"$RES"; fi
                done
        done
}
run local "${VOL[1]}"
run 1host "host1:${VOL[1]}"
run 2hosts "host1:${VOL[1]}" "host2:${VOL[2]}"
run 3hosts "host1:${VOL[1]}" "host2:${VOL[2]}" "host3:${VOL[3]}"

python3 - "$RES" "$ROUNDS" "$(df --output=fstype "$CL_ETCD_DIR" | tail -n 1)" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    kind, what, us = line.split()
    rows.setdefault((kind, what), []).append(int(us) / 1000)
med = lambda k, w: statistics.median(rows[(k, w)])
base_set, base_fz = med("local", "set"), med("local", "host1")
print(f"cluster sets on loopback, {sys.argv[2]} rounds each, etcd data and volumes on {sys.argv[3]} (median; worst freeze in brackets)")
print(f"{'kind':8} {'set ms':>8} {'x local':>8} {'+ms':>7}   freeze ms per host (x local)")
worst = 0
for kind in ("local", "1host", "2hosts", "3hosts"):
    s = med(kind, "set")
    hosts = []
    for h in ("host1", "host2", "host3"):
        if (kind, h) in rows:
            f, w = med(kind, h), max(rows[(kind, h)])
            if kind != "local":
                worst = max(worst, w)
            hosts.append(f"{h} {f:.0f} [{w:.0f}] ({f / base_fz:.2f})")
    print(f"{kind:8} {s:8.1f} {s / base_set:8.2f} {s - base_set:+7.1f}   " + ", ".join(hosts))
added = med("3hosts", "set") - base_set
print(f"3 hosts add {added:.1f} ms to a local set (target < 50 ms): {'met' if added < 50 else 'NOT met'}")
print(f"longest freeze of any host in a cluster set {worst:.0f} ms (target < 100 ms): {'met' if worst < 100 else 'NOT met'}")
EOF
