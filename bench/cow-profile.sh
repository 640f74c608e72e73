#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# bench/cow-profile.sh: where the time of one bench/cow.sh workload goes.
# Starts vss-volsrv on a prefilled 1 GiB origin with N snapshots, runs one fio
# pass over NBD while strace -c (syscall counts and time, all threads) or
# perf record -g (CPU) is attached, prints the summary and the engine's
# Storage.Stats (copies, journal commits) for that pass.  Run as root.
#
#   bench/cow-profile.sh strace|perf|none N RW BS OFFSET SIZE [BUILDDIR]
#   e.g. bench/cow-profile.sh strace 1 randwrite 4k 0 256M
#        bench/cow-profile.sh perf 1 write:12k 4k 768M 256M
#   env: PERF_REPORT="perf report options" (default --no-children --sort sym),
#        PERF_EVENTS="perf record options" (e.g. -e sched:sched_switch: where threads block),
#        LINES_OUT=30 (lines of the report printed),
#        WARM=1 (origin cached by 4 KiB writes) | 0 (not cached) | nbd (one unmeasured
#        pass of the same workload through the server first, as bench/cow.sh's
#        snapshot states find the origin),
#        PIN="cow-commit:1 nbd-accept:0" (CPU affinity per server thread name;
#        connection threads inherit nbd-accept's), COMMIT_SCHED="renice -n 10 -p"
#        or "chrt -i -p 0" (run on the committer thread's id)

set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/.." && pwd)
MODE=$1 N=$2 RW=$3 BS=$4 OFF=$5 SIZE=$6
VOLSRV=${7:-$SRC/build-benchcow}/src/volsrv/vss-volsrv
[[ -x $VOLSRV ]] || VOLSRV=$SRC/build/src/volsrv/vss-volsrv
W=/tmp/benchcow-profile
CTL="python3 $HERE/cow-ctl.py"

cleanup() {
        set +e
        [[ -n ${TRACER:-} ]] && kill -INT "$TRACER" 2>/dev/null && wait "$TRACER" 2>/dev/null
        [[ -S $W/run/control.sock ]] && $CTL "$W/run/control.sock" Server.Stop >/dev/null 2>&1
        sleep 0.5
        rm -rf "$W/run" "$W/origin.img" "$W/diff.img"
}
trap cleanup EXIT
mkdir -p "$W"
rm -rf "$W/run"
fio --name=prefill --filename="$W/origin.img" --size=1G --rw=write --bs=1M --ioengine=libaio --iodepth=16 \
    --direct=1 --output-format=terse >/dev/null
# bench/cow.sh's earlier passes leave the origin in the page cache, in the 4 KiB
# folios their writes made; so does this (WARM=0: not cached; WARM=nbd: see below).  A cache filled
# by sequential reads instead holds large folios, and on this kernel every 4 KiB
# write into one costs twice as much in ext4_block_write_begin.
[[ ${WARM:-1} == 1 ]] && fio --name=warm --filename="$W/origin.img" --size=1G --rw=randwrite --bs=4k \
        --ioengine=psync --output-format=terse >/dev/null && sync
"$VOLSRV" ${VOLSRV_ARGS:-} --origin "$W/origin.img" --diff "$W/diff.img" --dir "$W/run" --format --chunk-size 16K \
          --max unbounded 2>>"$W/volsrv.log"
PID=$(cat "$W/run/volsrv.pid")
# WARM=nbd: as bench/cow.sh's snapshot states find the origin, after the
# no-snapshot state wrote the same blocks through the server: one unmeasured
# pass of the same workload, flushed and synced.
if [[ ${WARM:-1} == nbd ]]; then
        fio --name=warm --ioengine=nbd --uri="nbd+unix:///?socket=$W/run/nbd.sock" --rw="$RW" --bs="$BS" \
            --iodepth=16 --offset="$OFF" --size="$SIZE" --output-format=terse >/dev/null 2>&1
        $CTL "$W/run/control.sock" Volume.Flush >/dev/null
        sync
fi
(( N > 0 )) && $CTL "$W/run/control.sock" create "$N" >/dev/null
tids_named() { grep -lx "$1" /proc/$PID/task/*/comm | sed 's|.*/task/||; s|/comm$||'; }
for pin in ${PIN:-}; do
        for t in $(tids_named "${pin%%:*}"); do taskset -p -c "${pin##*:}" "$t" >/dev/null; done
done
if [[ -n ${COMMIT_SCHED:-} ]]; then
        for t in $(tids_named cow-commit); do $COMMIT_SCHED "$t" >/dev/null; done
fi
before=$($CTL "$W/run/control.sock" Storage.Stats)
TRACER=
case $MODE in
strace) strace -c -f -p "$PID" -o "$W/strace.txt" & TRACER=$! ;;
perf)   perf record -q -g ${PERF_EVENTS:-} -o "$W/perf.data" -p "$PID" 2>/dev/null & TRACER=$! ;;
none)   ;;
*)      echo "mode: strace|perf|none" >&2; exit 2 ;;
esac
sleep 1
cpu() { awk '{print $14 + $15}' "/proc/$PID/stat"; }   # utime + stime, clock ticks
# The whole machine's time, from /proc/stat: user nice system idle iowait irq softirq steal.
sys_cpu() { awk '/^cpu /{print $2+$3, $4+$7+$8, $5, $6, $9}' /proc/stat; }
# Per thread, summed by name (the server names its threads nbd-worker,
# cow-commit, ...).  The connection's threads end with the pass, so they are
# sampled while it runs and each thread's last sample counts.
threads() { awk '{ sub(/.*\/task\//, "", FILENAME); sub(/\/stat$/, "", FILENAME); print FILENAME, $2, $14 + $15 }' \
                /proc/$PID/task/*/stat 2>/dev/null; }
thr0=$(threads)
( while kill -0 "$PID" 2>/dev/null; do threads; sleep 0.5; done ) >"$W/threads.txt" & SAMPLER=$!
cpu0=$(cpu) sys0=$(sys_cpu) t0=$(date +%s%N)
fio --name=p --ioengine=nbd --uri="nbd+unix:///?socket=$W/run/nbd.sock" --rw="$RW" --bs="$BS" --iodepth=16 \
    --offset="$OFF" --size="$SIZE" --output-format=json | sed -n '/^{/,$p' |
        python3 -c 'import json,sys; j=json.load(sys.stdin)["jobs"][0]
for d in ("read","write"):
    if j[d]["io_bytes"]: print("fio %s: %.0f IOPS, %.1f MiB/s, clat mean %.1f us" % (d, j[d]["iops"], j[d]["bw_bytes"]/1048576, j[d]["clat_ns"]["mean"]/1000))
rt = j["job_runtime"]
print("fio job: %d ms, CPU user %.0f ms, system %.0f ms, %d context switches" % (rt, j["usr_cpu"]*rt/100, j["sys_cpu"]*rt/100, j["ctx"]))'
cpu1=$(cpu) sys1=$(sys_cpu) t1=$(date +%s%N)
kill "$SAMPLER"; wait "$SAMPLER" 2>/dev/null || true
echo "vss-volsrv CPU: $(( (cpu1 - cpu0) * 1000 / $(getconf CLK_TCK) )) ms in $(( (t1 - t0) / 1000000 )) ms of wall time"
paste <(echo "$sys0" | tr ' ' '\n') <(echo "$sys1" | tr ' ' '\n') | awk -v hz="$(getconf CLK_TCK)" '
        { d[NR] = ($2 - $1) * 1000 / hz }
        END { printf "machine (all CPUs): user %d ms, system+irq %d ms, idle %d ms, iowait %d ms, steal %d ms\n",
                     d[1], d[2], d[3], d[4], d[5] }'
{ echo "$thr0" | sed 's/^/0 /'; sed 's/^/1 /' "$W/threads.txt"; } | awk -v hz="$(getconf CLK_TCK)" '
        $1 == 0 { base[$2] = $4; next }
        { name[$2] = $3; last[$2] = $4 }
        END { for (id in last) t[name[id]] += last[id] - base[id]
              printf "vss-volsrv threads:"; for (n in t) printf " %s %d ms", n, t[n] * 1000 / hz; print "" }'
after=$($CTL "$W/run/control.sock" Storage.Stats)
if [[ -n $TRACER ]]; then
        kill -INT "$TRACER"; wait "$TRACER" || true
        TRACER=
fi
python3 -c 'import json,sys; a=json.loads(sys.argv[1]); b=json.loads(sys.argv[2])
print("engine: copies %d, journal commits %d, writers throttled %d times for %d ms, waited for a chunk in write-back %d times for %d ms during the pass" % (
    b["copies"]-a["copies"], b["commits"]-a["commits"], b["throttled"]-a["throttled"], b["throttle_ms"]-a["throttle_ms"],
    b["chunk_waits"]-a["chunk_waits"], b["chunk_wait_ms"]-a["chunk_wait_ms"]))' "$before" "$after"
case $MODE in
strace) head -25 "$W/strace.txt" ;;
perf)   perf report -i "$W/perf.data" ${PERF_REPORT:---no-children --sort sym} --stdio 2>/dev/null | grep -v '^#' |
                grep '%' | head -"${LINES_OUT:-30}" ;;
esac
