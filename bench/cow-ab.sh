#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# bench/cow-ab.sh: a quick interleaved A/B of two vss-volsrv binaries on the
# paths a refactoring must not slow down: NBD passes over a prefilled 1 GiB
# origin, with no snapshot (or SNAPSHOTS=N taken before the passes, so that
# writes are first writes through the write-back cache), each repetition running A then B or B then A
# (alternating), each server on a fresh diff area.  Prints every figure, and
# per pass the median of the per-repetition ratios A/B with their min and max.
# Run it with the same binary as A and B to see the noise floor.
#
# Usage: sudo bench/cow-ab.sh A/vss-volsrv B/vss-volsrv
#        env: REPS=8 SIZE=256M (per pass) PASSES="read randread randwrite" SNAPSHOTS=0
#             WORK=/tmp/cow-ab
# Needs fio (scripts/install-deps.sh --bench).  Everything it starts is stopped
# and its files removed by the EXIT trap.
set -euo pipefail

A=$(readlink -f "${1:?usage: cow-ab.sh A/vss-volsrv B/vss-volsrv}")
B=$(readlink -f "${2:?usage: cow-ab.sh A/vss-volsrv B/vss-volsrv}")
REPS=${REPS:-8}
SIZE=${SIZE:-256M}
SNAPSHOTS=${SNAPSHOTS:-0}
HERE=$(cd "$(dirname "$0")" && pwd)
PASSES=${PASSES:-read randread randwrite}
WORK=${WORK:-/tmp/cow-ab}

die() { echo "bench/cow-ab: $*" >&2; exit 1; }
[[ $(id -u) == 0 ]] || die "run as root (FUSE mount of the server)"
command -v fio >/dev/null || die "fio is missing (scripts/install-deps.sh --bench)"
[[ -x $A && -x $B ]] || die "$A or $B is not an executable"
[[ -e $WORK ]] && die "$WORK exists: remove it or set WORK"

R=$WORK/run
stop() {
        local pid
        [[ -s $R/volsrv.pid ]] || return 0
        pid=$(cat "$R/volsrv.pid")
        kill "$pid" 2>/dev/null || return 0
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.05; done
        kill -9 "$pid" 2>/dev/null
        umount -l "$R/fuse" 2>/dev/null || true
}
cleanup() { set +e; stop; rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$WORK"
fio --name=prefill --filename="$WORK/origin.img" --size=1G --rw=write --bs=1M --ioengine=libaio --iodepth=16 \
    --direct=1 --output-format=terse >/dev/null || die "prefill failed"

run() { # BINARY TAG: one server, every pass
        local rw bs v
        rm -rf "$R" "$WORK/diff.img"
        "$1" --origin "$WORK/origin.img" --diff "$WORK/diff.img" --dir "$R" --format --chunk-size 16K \
             --max unbounded || die "$1 did not start"
        if (( SNAPSHOTS > 0 )); then
                python3 "$HERE/cow-ctl.py" "$R/control.sock" create "$SNAPSHOTS" >/dev/null || die "Snapshot.Create failed"
        fi
        sync -f "$WORK"    # not a bare sync: it would wait on every mount, also a dead FUSE one
        for rw in $PASSES; do
                [[ $rw == read || $rw == write ]] && bs=1M || bs=4k
                v=$(fio --name=ab --ioengine=nbd --uri="nbd+unix:///?socket=$R/nbd.sock" --rw="$rw" --bs=$bs \
                        --iodepth=16 --offset=0 --size="$SIZE" --output-format=json 2>/dev/null | sed -n '/^{/,$p' |
                    python3 -c 'import json, sys
j = json.load(sys.stdin)["jobs"][0]
d = j["read"] if j["read"]["io_bytes"] else j["write"]
print("%.0f" % d["iops"])') || die "fio $rw failed"
                echo "$REP $2 $rw $v"
        done
        stop
}

for REP in $(seq "$REPS"); do
        if (( REP % 2 )); then run "$A" A; run "$B" B; else run "$B" B; run "$A" A; fi
done | tee "$WORK/results.txt" | python3 -c '
import collections, statistics, sys
d = collections.defaultdict(dict)
for line in sys.stdin:
    rep, tag, rw, v = line.split()
    print(line, end="")
    d[rw].setdefault(rep, {})[tag] = float(v)
print("pass        A/B median   min    max   (per-repetition ratios, IOPS)")
for rw, reps in d.items():
    r = [x["A"] / x["B"] for x in reps.values() if "A" in x and "B" in x and x["B"] > 0]
    print("%-10s  %10.3f  %5.2f  %5.2f   n=%d" % (rw, statistics.median(r), min(r), max(r), len(r)))
'
