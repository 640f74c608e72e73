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
for b in VSSD VSSADMIN VSSWRITER VSHADOW; do
        [[ -n "${!b:-}" && -x "${!b}" ]] || cl_fail "$b '${!b:-}' is not built"
done
command -v mkfs.btrfs >/dev/null || cl_fail "mkfs.btrfs is missing (btrfs-progs); scripts/install-deps.sh installs it"
cl_init

VS_LOOPS=()
VS_MOUNTS=()
vs_cleanup()
{
        local rc=$? pid m d
        set +e
        # The daemons first: nothing may hold the volumes when they are unmounted.
        for pid in "${CL_PIDS[@]}"; do
                kill -CONT "$pid" 2>/dev/null
                kill -9 "$pid" 2>/dev/null
        done
        for pid in "${CL_PIDS[@]}"; do wait "$pid" 2>/dev/null; done
        for m in "${VS_MOUNTS[@]}"; do
                # Shadow copies mounted below the volume, then the volume.
                grep -o " $m/[^ ]*" /proc/mounts | sort -r | while read -r d; do umount -l "$d"; done
                umount -l "$m" 2>/dev/null
        done
        for d in "${VS_LOOPS[@]}"; do losetup -d "$d" 2>/dev/null; done
        (exit "$rc")
        cl_cleanup
}
trap vs_cleanup EXIT

cl_net_up
cl_etcd_start_all

declare -a VSSD_PID VOL WPID
EV="$T/events.log"
: >"$EV"

mkvol()
{
        local i=$1 dev
        truncate -s 256M "$T/v$i.img"
        dev=$(losetup -f --show "$T/v$i.img")
        VS_LOOPS+=("$dev")
        mkfs.btrfs -q -f "$dev" >/dev/null || cl_fail "mkfs.btrfs $dev"
        mkdir -p "$T/v$i"
        mount -t btrfs "$dev" "$T/v$i"
        VS_MOUNTS+=("$T/v$i")
        VOL[$i]="$T/v$i"
}

vssd_start()
{
        local i=$1
        mkdir -p "$T/h$i"
        cat >"$T/h$i/vssd.conf" <<CONF
[cluster]
endpoints=$(cl_endpoints)
host=host$i
host_lease_ttl_s=3
set_lease_ttl_s=3
hold_ms=6000
call_timeout_ms=500
CONF
        ip netns exec "${CL_NS[$i]}" "$VSSD" --socket "$T/h$i/vssd.sock" --state-dir "$T/h$i/state" \
                --config "$T/h$i/vssd.conf" --verbose >>"$T/h$i/vssd.log" 2>&1 &
        VSSD_PID[$i]=$!
        CL_PIDS+=($!)
        cl_wait_until 10 "vssd on host $i answers" "$VSSADMIN" --socket "$T/h$i/vssd.sock" list providers
}

writer_start()
{
        local i=$1 ev args=()
        for ev in prepare-backup prepare-snapshot freeze thaw post-snapshot abort backup-complete backup-shutdown; do
                args+=("--on-$ev" "echo host$i $ev \$(date +%s%N) >>$EV")
        done
        # A veto is a file: host I's PrepareForSnapshot fails while $T/veto.I exists.
        args[3]="echo host$i prepare-snapshot \$(date +%s%N) >>$EV; test ! -e $T/veto.$i"
        ip netns exec "${CL_NS[$i]}" "$VSSWRITER" --socket "$T/h$i/vssd.sock" --name "Ledger $i" \
                --volume "${VOL[$i]}" "${args[@]}" >>"$T/h$i/writer.log" 2>&1 &
        WPID[$i]=$!
        CL_PIDS+=($!)
        cl_wait_until 10 "writer on host $i registered" \
                eval "\"$VSSADMIN\" --socket \"$T/h$i/vssd.sock\" list writers | grep -q 'Ledger $i'"
}

present_everywhere()
{
        local i h
        for i in 1 2 3; do
                for h in 1 2 3; do
                        "$VSSADMIN" --socket "$T/h$i/vssd.sock" list hosts 2>/dev/null |
                                grep -A3 "Host name: 'host$h'" | grep -q "State: Present" || return 1
                done
        done
}

# shadows_of I SET: how many shadow copies of SET host I's own catalog holds.
shadows_of()
{
        "$VSSADMIN" --socket "$T/h$1/vssd.sock" list shadows --json |
                python3 -c 'import json,sys; print(sum(1 for s in json.load(sys.stdin)["shadows"] if s["set_id"] == sys.argv[1]))' "$2"
}

for i in 1 2 3; do mkvol "$i"; vssd_start "$i"; done
for i in 1 2 3; do writer_start "$i"; done
cl_wait_until 15 "every host lists every host" present_everywhere

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
        n=$(shadows_of "$i" "$SET")
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
touch "$T/veto.3"
cl_run "$VSHADOW" --socket "$T/h1/vssd.sock" -p "host1:${VOL[1]}" "host2:${VOL[2]}" "host3:${VOL[3]}"
rm -f "$T/veto.3"
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
kill "${WPID[2]}"
wait "${WPID[2]}" 2>/dev/null || true
ip netns exec "${CL_NS[2]}" "$VSSWRITER" --socket "$T/h2/vssd.sock" --name "Ledger 2" --volume "${VOL[2]}" \
        --on-prepare-snapshot "echo host2 prepare-snapshot >>$EV; while [ ! -e $T/go ]; do sleep 0.05; done" \
        >>"$T/h2/writer.log" 2>&1 &
CL_PIDS+=($!)
cl_wait_until 10 "the slow writer registered" \
        eval "\"$VSSADMIN\" --socket \"$T/h2/vssd.sock\" list writers | grep -q 'Ledger 2'"
"$VSHADOW" --socket "$T/h1/vssd.sock" "host1:${VOL[1]}" "host2:${VOL[2]}" >"$T/a.out" 2>&1 &
apid=$!
CL_PIDS+=($apid)
cl_wait_until 10 "set A reached host 2's PrepareForSnapshot" grep -q "host2 prepare-snapshot" "$EV"
cl_run "$VSHADOW" --socket "$T/h3/vssd.sock" "host3:${VOL[3]}" "host1:${VOL[1]}"
echo "$ERR" >&2
cl_assert_contains "$ERR" "0x80042316" "a second cluster set: VSS_E_SNAPSHOT_SET_IN_PROGRESS"
cl_assert_contains "$ERR" "coordinator" "the error names the running set and its coordinator"
touch "$T/go"
wait "$apid" || cl_fail "set A failed: $(cat "$T/a.out")"
echo "PASS"
