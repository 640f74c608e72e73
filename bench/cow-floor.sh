#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# bench/cow-floor.sh: how fast can a random 4 KiB first write with one shadow
# be on this machine, whatever the engine does?  Any copy-on-write design has
# to read each old chunk and write it to the diff area at least once.  This
# script runs the same pass three ways on one vss-volsrv, interleaved:
#
#   none    fio over NBD, random 4 KiB writes of [0, 256M), no snapshot;
#   floor   the same pass while a second fio does only that unavoidable work
#           for the pass's 16,384 chunks of 16 KiB: 16 KiB reads of the
#           (cached) origin in random order and 1 MiB O_DIRECT writes of
#           256 MiB to a scratch diff file, with nothing else (no journal, no
#           held writes, no write-back);
#   shadow  the same pass right after a new snapshot (every write is a first
#           write): the engine's real cost.
#
# floor / none is the best any design can reach here; shadow / none is ours.
# Prints the per-repetition ratios and their medians.  Run as root.
#
#   bench/cow-floor.sh [BUILDDIR]     env: REPS=5, FRESH=1 (the floor writes into
#   newly fallocated space, as a growing diff area does, instead of overwriting),
#   COMMIT_SCHED="chrt -i -p 0" (runs the committer thread under that policy)

set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/.." && pwd)
REPS=${REPS:-5}
VOLSRV=${1:-$SRC/build-benchcow}/src/volsrv/vss-volsrv
[[ -x $VOLSRV ]] || VOLSRV=$SRC/build/src/volsrv/vss-volsrv
W=/tmp/benchcow-floor
CTL="python3 $HERE/cow-ctl.py"
SOCK=$W/run/control.sock

cleanup() {
        set +e
        [[ -n ${LOAD:-} ]] && kill "$LOAD" 2>/dev/null && wait "$LOAD" 2>/dev/null
        [[ -S $SOCK ]] && $CTL "$SOCK" Server.Stop >/dev/null 2>&1
        sleep 0.5
        rm -rf "$W"
}
trap cleanup EXIT
rm -rf "$W"
mkdir -p "$W"
fio --name=prefill --filename="$W/origin.img" --size=1G --rw=write --bs=1M --ioengine=libaio --iodepth=16 \
    --direct=1 --output-format=terse >/dev/null
# Cached in 4 KiB folios, as bench/cow.sh's earlier passes leave it.
fio --name=warm --filename="$W/origin.img" --size=256M --rw=randwrite --bs=4k --ioengine=psync \
    --output-format=terse >/dev/null
sync
"$VOLSRV" --origin "$W/origin.img" --diff "$W/diff.img" --dir "$W/run" --format --chunk-size 16K \
          --max unbounded 2>>"$W/volsrv.log"
if [[ -n ${COMMIT_SCHED:-} ]]; then     # experiment: e.g. COMMIT_SCHED="chrt -i -p 0"
        for t in /proc/$(cat "$W/run/volsrv.pid")/task/*; do
                [[ $(cat "$t/comm") == cow-commit ]] && $COMMIT_SCHED "${t##*/}"
        done
fi

pass() {        # prints IOPS
        $CTL "$SOCK" Volume.Flush >/dev/null
        sync
        fio --name=p --ioengine=nbd --uri="nbd+unix:///?socket=$W/run/nbd.sock" --rw=randwrite --bs=4k \
            --iodepth=16 --offset=0 --size=256M --output-format=json | sed -n '/^{/,$p' |
                python3 -c 'import json,sys; print("%.0f" % json.load(sys.stdin)["jobs"][0]["write"]["iops"])'
}

copy_work() {   # the unavoidable part of 16,384 chunk copies, in one process
        if [[ ${FRESH:-0} == 1 ]]; then
                # A diff area that grows: blocks reserved with fallocate, as the
                # engine does, are unwritten extents until the copy lands.
                rm -f "$W/scratch.diff"
                fallocate -l 256M "$W/scratch.diff"
        fi
        fio --name=rd --filename="$W/origin.img" --offset=0 --size=256M --rw=randread --bs=16k \
            --ioengine=psync --invalidate=0 \
            --name=wr --filename="$W/scratch.diff" --size=256M --rw=write --bs=1M --ioengine=psync \
            --direct=1 --output-format=terse >/dev/null
}

fio --name=alloc --filename="$W/scratch.diff" --size=256M --rw=write --bs=1M --direct=1 \
    --output-format=terse >/dev/null
: >"$W/results"
for rep in $(seq "$REPS"); do
        # Rotate the order so no variant always runs first.
        case $(( rep % 3 )) in
        1) order="none floor shadow" ;;
        2) order="floor shadow none" ;;
        0) order="shadow none floor" ;;
        esac
        for kind in $order; do
                case $kind in
                none)   iops=$(pass) ;;
                floor)  copy_work & LOAD=$!
                        iops=$(pass)
                        wait "$LOAD"; LOAD= ;;
                shadow) $CTL "$SOCK" create 1 >/dev/null
                        iops=$(pass)
                        $CTL "$SOCK" delete-all >/dev/null ;;
                esac
                echo "$rep $kind $iops" >>"$W/results"
        done
        echo "rep $rep: $(awk -v r="$rep" '$1 == r { printf "%s %s IOPS  ", $2, $3 }' "$W/results")" >&2
done
python3 - "$W/results" <<'EOF'
import collections, statistics, sys
d = collections.defaultdict(dict)
for line in open(sys.argv[1]):
    rep, kind, iops = line.split()
    d[kind][int(rep)] = float(iops)
for kind in ("floor", "shadow"):
    rs = [d[kind][r] / d["none"][r] for r in sorted(d["none"])]
    print("%-6s / none: median %.3f (min %.3f, max %.3f; per rep %s)" % (
        kind, statistics.median(rs), min(rs), max(rs), " ".join("%.3f" % x for x in rs)))
print("median IOPS: none %.0f, floor %.0f, shadow %.0f" % tuple(
    statistics.median(d[k].values()) for k in ("none", "floor", "shadow")))
EOF
