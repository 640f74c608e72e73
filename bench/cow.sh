#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# bench/cow.sh: performance of the cow volume (src/cow engine behind
# vss-volsrv) on this machine, in one run, against the targets of
# docs/bench-cow.md.  A benchmark, not a test: it prints figures and PASS/MISS
# per target and always exits 0 unless the set-up itself fails.
#
# Every NBD pass starts after Volume.Flush + sync (no dirty host data).
# Method (shared/reference/perf-notes.md §2.0): every figure is a ratio to a
# baseline measured in the same repetition, seconds apart; repetitions are
# interleaved (all variants of rep 1, then all of rep 2, ...) and the report
# gives min/median/max of the per-repetition ratios plus median absolutes.
#
#   a. NBD (fio --ioengine=nbd) on a 1 GiB cow volume with 0/1/8/32 snapshots:
#      rand 4 KiB [0,256M), seq 1 MiB [256M,768M), worst case [768M,1G)
#      (--rw=write:12k --bs=4k = one write per 16 KiB chunk); each pass writes
#      every block once: first write after the newest snapshot, then rewrite,
#      then read.  Every state starts from a freshly formatted diff area.
#   c. the same passes on qemu-nbd serving a fresh qcow2 overlay of base.raw
#      (--cache=none: the target; --cache=writeback: like for like, info).
#   b. ext4 on loop(dio) on RUNDIR/fuse/volume vs ext4 on loop(dio) on a plain
#      image, fio libaio time-based on a prefilled 512 MiB file in each.
#   d. Snapshot.Create round trip on idle 1 GiB and 16 GiB volumes (sparse),
#      interleaved, and after 32 MiB of fresh writes (informational).
#   e. diff-area used_bytes growth vs unique bytes overwritten, 4 KiB chunks.
#
# Usage: bench/cow.sh [BUILDDIR]   (as root; env: REPS=3 RUNTIME=5 KEEP=1
#        WORK=/tmp/benchcow-run COMMITS=12 SECTIONS="a b d e" PERF=1 to record perf on vss-volsrv
#        during one cow1 state; STATES="cow0 cow1" picks section a's states, default
#        "cow0 cow1 qemu cow8 qemuwb cow32"; VOLSRV_ARGS="--writeback 256M" adds options;
#        VOLSRV_B=OTHER/vss-volsrv with STATES="cow0 cow0b cow1 cow1b" compares two
#        builds interleaved: a state named cowNb runs VOLSRV_B; section b then also
#        mounts an ext4 on a volume VOLSRV_B serves, "fuseb", interleaved with the others)

set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/.." && pwd)
REPS=${REPS:-3}
RUNTIME=${RUNTIME:-5}
COMMITS=${COMMITS:-12}
WORK=${WORK:-/tmp/benchcow-run}
PERF=${PERF:-0}
CTL="python3 $HERE/cow-ctl.py"

find_volsrv() {
        local b
        for b in ${1:-} "$SRC/build-benchcow" "$SRC/build"; do
                [[ -x $b/src/volsrv/vss-volsrv ]] && { echo "$b/src/volsrv/vss-volsrv"; return; }
        done
        return 1
}

die() { echo "bench/cow: $*" >&2; exit 1; }
log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }

[[ $(id -u) == 0 ]] || die "run as root (loop devices, mounts)"
VOLSRV=$(find_volsrv "${1:-}") || die "no vss-volsrv: build it (ninja -C build src/volsrv/vss-volsrv) or pass BUILDDIR"
for t in fio qemu-nbd qemu-img losetup mkfs.ext4 python3; do
        command -v $t >/dev/null || die "$t is missing"
done

# ---- clean-up: everything we start is recorded here and undone by the trap ----
MOUNTS=() LOOPS=() RUNDIRS=() QEMU_PIDS=()

stop_volsrv() {
        local r=$1 pid
        [[ -f $r/volsrv.pid ]] || return 0
        pid=$(cat "$r/volsrv.pid" 2>/dev/null) || return 0
        [[ -n $pid ]] || return 0
        $CTL "$r/control.sock" Server.Stop >/dev/null 2>&1 || kill "$pid" 2>/dev/null || true
        for _ in $(seq 100); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.05
        done
        if kill -0 "$pid" 2>/dev/null; then
                kill -9 "$pid" 2>/dev/null || true
                umount -l "$r/fuse" 2>/dev/null || true
        fi
        rm -f "$r/volsrv.pid"
}

stop_qemu() {
        local p=$1
        kill "$p" 2>/dev/null || return 0
        for _ in $(seq 100); do
                kill -0 "$p" 2>/dev/null || return 0
                sleep 0.05
        done
        kill -9 "$p" 2>/dev/null || true
}

cleanup() {
        local m l r p
        set +e
        for m in "${MOUNTS[@]}"; do umount "$m" 2>/dev/null || umount -l "$m"; done
        for l in "${LOOPS[@]}"; do losetup -d "$l" 2>/dev/null; done
        for r in "${RUNDIRS[@]}"; do stop_volsrv "$r"; done
        for p in "${QEMU_PIDS[@]}"; do stop_qemu "$p"; done
        if [[ ${KEEP:-0} == 1 ]]; then
                log "kept $WORK"
        else
                rm -rf "${WORK:?}/img" "${WORK:?}/run" "${WORK:?}/mnt"
        fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A stale tree from an interrupted run: nothing of it may still be mounted.
if [[ -d $WORK ]]; then
        grep -q " $WORK/" /proc/mounts && die "$WORK has mounts left from another run; unmount them first"
        rm -rf "${WORK:?}"
fi
mkdir -p "$WORK/img" "$WORK/run" "$WORK/mnt" "$WORK/fio"
RES=$WORK/results.tsv
: >"$RES"
REP=0

rec() { printf '%s\t%s\t%s\n' "$REP" "$1" "$2" >>"$RES"; }

# fio's nbd engine prints "fio: connected to NBD server" before its JSON.
fio_metric() {  # FILE read|write iops|mib
        sed -n '/^{/,$p' "$1" | python3 -c '
import json, sys
j = json.load(sys.stdin)["jobs"][0][sys.argv[1]]
print("%.1f" % (j["iops"] if sys.argv[2] == "iops" else j["bw_bytes"] / 1048576.0))' "$2" "$3"
}

# fio_nbd KEY SOCK RW BS OFFSET SIZE: each block once over [OFFSET, OFFSET+SIZE).
fio_nbd() {
        local key=$1 sock=$2 rw=$3 bs=$4 off=$5 size=$6 out dir unit st0=
        out=$WORK/fio/$key.$REP.json
        # On our server, also how long writers waited for the write-back buffers.
        [[ -n $SETTLE_CTL ]] && st0=$($CTL "$SETTLE_CTL" Storage.Stats)
        fio --name="$key" --ioengine=nbd --uri="nbd+unix:///?socket=$sock" --rw="$rw" --bs="$bs" \
            --iodepth=16 --offset="$off" --size="$size" --output-format=json >"$out" 2>"$out.err" ||
                die "fio $key failed: $(cat "$out.err")"
        case $rw in *read*) dir="read" ;; *) dir="write" ;; esac
        [[ $bs == 1M ]] && unit=mib || unit=iops
        rec "$key" "$(fio_metric "$out" $dir $unit)"
        if [[ -n $st0 ]]; then
                local st1
                st1=$($CTL "$SETTLE_CTL" Storage.Stats)
                rec "$key.throttle_ms" $(( $(stat_field "$st1" throttle_ms) - $(stat_field "$st0" throttle_ms) ))
                rec "$key.chunk_wait_ms" $(( $(stat_field "$st1" chunk_wait_ms) - $(stat_field "$st0" chunk_wait_ms) ))
        fi
}

# fio_file KEY FILE rand|seq: time-based O_DIRECT overwrites of a prefilled file.
fio_file() {
        local key=$1 file=$2 kind=$3 out rw bs unit
        out=$WORK/fio/$key.$REP.json
        if [[ $kind == rand ]]; then rw=randwrite bs=4k unit=iops; else rw=write bs=1M unit=mib; fi
        fio --name="$key" --filename="$file" --size=512M --rw=$rw --bs=$bs --ioengine=libaio --iodepth=16 \
            --direct=1 --runtime="$RUNTIME" --time_based --output-format=json >"$out" 2>"$out.err" ||
                die "fio $key failed: $(cat "$out.err")"
        rec "$key" "$(fio_metric "$out" write $unit)"
}

stats() { $CTL "$1/control.sock" Storage.Stats; }
# 0 for a counter an older build does not report (VOLSRV_B comparisons).
stat_field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get(sys.argv[2], 0))' "$1" "$2"; }

# start_volsrv RUNDIR ORIGIN CHUNK [BINARY]: a fresh diff area next to the origin.
start_volsrv() {
        local r=$1 origin=$2 chunk=$3 bin=${4:-$VOLSRV}
        mkdir -p "$r"
        rm -f "$r.diff"
        RUNDIRS+=("$r")
        "$bin" ${VOLSRV_ARGS:-} --origin "$origin" --diff "$r.diff" --dir "$r" --format --chunk-size "$chunk" \
                  --max unbounded 2>>"$WORK/volsrv.log" || die "vss-volsrv failed to start (see $WORK/volsrv.log)"
}

# Every pass starts with no dirty data on the host: vss-volsrv writes the
# origin through the page cache, and without this the kernel's 30 s writeback
# of earlier passes lands inside whichever state happens to run long (the
# snapshot states), which showed up as a bogus "read slower with a shadow".
SETTLE_CTL=
settle() {
        local m
        [[ -n $SETTLE_CTL ]] && $CTL "$SETTLE_CTL" Volume.Flush >/dev/null
        # Only our filesystems: a bare sync waits on every mount, also someone else's dead FUSE one.
        sync -f "$WORK"
        for m in ${MOUNTS[@]+"${MOUNTS[@]}"}; do sync -f "$m"; done
}

# The passes of (a)/(c) on one NBD server; PREFIX names the state.
nbd_passes() {
        local p=$1 sock=$2
        settle; fio_nbd "$p.rand_first" "$sock" randwrite 4k 0 256M
        settle; fio_nbd "$p.rand_re"    "$sock" randwrite 4k 0 256M
        settle; fio_nbd "$p.rand_read"  "$sock" randread  4k 0 256M
        settle; fio_nbd "$p.seq_first"  "$sock" write     1M 256M 512M
        settle; fio_nbd "$p.seq_re"     "$sock" write     1M 256M 512M
        settle; fio_nbd "$p.seq_read"   "$sock" read      1M 256M 512M
        settle; fio_nbd "$p.worst_first" "$sock" write:12k 4k 768M 256M
        settle; fio_nbd "$p.worst_re"    "$sock" write:12k 4k 768M 256M
}

cow_state() {   # N snapshots [b: run VOLSRV_B]
        local n=$1 tag=${2:-} r=$WORK/run/cow$1${2:-} st0 st1 perf_pid= bin=$VOLSRV
        [[ -n $tag ]] && bin=$VOLSRV_B
        start_volsrv "$r" "$WORK/img/origin.img" 16K "$bin"
        (( n > 0 )) && $CTL "$r/control.sock" create "$n" >/dev/null
        st0=$(stats "$r")
        if [[ $PERF == 1 && $n == 1 && $REP == 1 ]] && command -v perf >/dev/null; then
                perf record -g -o "$WORK/perf-cow1.data" -p "$(cat "$r/volsrv.pid")" 2>/dev/null &
                perf_pid=$!
        fi
        SETTLE_CTL=$r/control.sock
        nbd_passes "cow$n$tag" "$r/nbd.sock"
        SETTLE_CTL=
        if [[ -n $perf_pid ]]; then
                kill -INT $perf_pid; wait $perf_pid || true
        fi
        st1=$(stats "$r")
        rec "cow$n$tag.copies" $(( $(stat_field "$st1" copies) - $(stat_field "$st0" copies) ))
        rec "cow$n$tag.commits" $(( $(stat_field "$st1" commits) - $(stat_field "$st0" commits) ))
        stop_volsrv "$r"
        rm -f "$r.diff"
}

# qemu: the target's baseline (--cache=none --aio=native).  qemuwb: the same
# overlay with --cache=writeback, informational, because vss-volsrv opens the
# origin and diff area without O_DIRECT: this pair is the like-for-like one.
qemu_state() {
        local name=$1 d=$WORK/run/$1 cache
        [[ $name == qemu ]] && cache="--cache=none --aio=native" || cache="--cache=writeback --aio=threads"
        mkdir -p "$d"
        rm -f "$d/ov.qcow2" "$d/s.sock"
        qemu-img create -q -f qcow2 -b "$WORK/img/base.raw" -F raw "$d/ov.qcow2"
        qemu-nbd -f qcow2 $cache -t -e 8 -k "$d/s.sock" --pid-file="$d/q.pid" --fork "$d/ov.qcow2"
        QEMU_PIDS+=("$(cat "$d/q.pid")")
        nbd_passes "$name" "$d/s.sock"
        stop_qemu "$(cat "$d/q.pid")"
        rm -f "$d/ov.qcow2" "$d/s.sock"
}

# Other users of this machine grab loop devices too: losetup -f can lose the
# race for the device it picked (EBUSY), so try again.
loop_attach() {
        local dev
        for _ in $(seq 20); do
                dev=$(losetup -f --show --direct-io=on "$1" 2>/dev/null) && { echo "$dev"; return 0; }
                sleep 0.2
        done
        die "losetup --direct-io=on $1 failed"
}

prefill() {     # FILE SIZE: random data, allocated, O_DIRECT
        fio --name=prefill --filename="$1" --size="$2" --rw=write --bs=1M --ioengine=libaio --iodepth=16 \
            --direct=1 --output-format=terse >/dev/null 2>&1 || die "prefill $1 failed"
}

T0=$(date +%s)
log "vss-volsrv: $VOLSRV; work: $WORK; reps $REPS, runtime ${RUNTIME}s"
log "git: $(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo '?')"

# SECTIONS="a b d e" (default all) picks parts; c runs with a.
want() { [[ " ${SECTIONS:-a b d e} " == *" $1 "* ]]; }

# ---------------- a + c: NBD ----------------
if want a; then
log "prefilling origin.img and base.raw (1 GiB each)"
prefill "$WORK/img/origin.img" 1G
prefill "$WORK/img/base.raw" 1G
for REP in $(seq "$REPS"); do
        for state in ${STATES:-cow0 cow1 qemu cow8 qemuwb cow32}; do
                log "rep $REP: NBD state $state"
                case $state in
                qemu*) qemu_state $state ;;
                cow*b) [[ -x ${VOLSRV_B:-} ]] || die "$state needs VOLSRV_B=path/to/vss-volsrv"
                       state=${state#cow}; cow_state "${state%b}" b ;;
                cow*) cow_state "${state#cow}" ;;
                esac
        done
done
rm -f "$WORK/img/base.raw"
fi

# ---------------- b: ext4 on FUSE file + loop vs ext4 on plain loop ----------------
if want b; then
log "b: ext4 on loop(dio) on fuse/volume vs on a plain image"
truncate -s 1G "$WORK/img/fuse-origin.img" "$WORK/img/plain.img"
RF=$WORK/run/fusevol
start_volsrv "$RF" "$WORK/img/fuse-origin.img" 16K
LF=$(loop_attach "$RF/fuse/volume"); LOOPS+=("$LF")
LP=$(loop_attach "$WORK/img/plain.img"); LOOPS+=("$LP")
# With VOLSRV_B, a third ext4 on a volume served by that build ("fuseb"), interleaved.
KINDS_B="$LF:fuse $LP:plain" NAMES_B="plain fuse" RFB=
if [[ -n ${VOLSRV_B:-} ]]; then
        [[ -x $VOLSRV_B ]] || die "VOLSRV_B=$VOLSRV_B is not an executable"
        truncate -s 1G "$WORK/img/fuseb-origin.img"
        RFB=$WORK/run/fusevolb
        start_volsrv "$RFB" "$WORK/img/fuseb-origin.img" 16K "$VOLSRV_B"
        LFB=$(loop_attach "$RFB/fuse/volume"); LOOPS+=("$LFB")
        KINDS_B="$KINDS_B $LFB:fuseb" NAMES_B="plain fuse fuseb"
fi
# DIO must be 1 on all, or the comparison measures the host page cache.
losetup -l -O NAME,DIO,BACK-FILE | grep -E "^($LF|$LP|${LFB:-none}) " >&2 || true
for x in $KINDS_B; do
        dev=${x%%:*} name=${x##*:}
        mkfs.ext4 -q -F "$dev"
        mkdir -p "$WORK/mnt/$name"
        mount "$dev" "$WORK/mnt/$name"; MOUNTS=("$WORK/mnt/$name" "${MOUNTS[@]}")
        prefill "$WORK/mnt/$name/fio.dat" 512M
done
for REP in $(seq "$REPS"); do
        log "rep $REP: ext4 fuse+loop vs plain loop"
        order=$NAMES_B
        (( REP % 2 )) || order=$(tr ' ' '\n' <<<"$NAMES_B" | tac | tr '\n' ' ')
        for kind in rand seq; do
                for name in $order; do
                        [[ $name == fuse ]] && SETTLE_CTL=$RF/control.sock
                        [[ $name == fuseb ]] && SETTLE_CTL=$RFB/control.sock
                        settle; SETTLE_CTL=
                        fio_file "ext4_$name.$kind" "$WORK/mnt/$name/fio.dat" $kind
                done
        done
done
for m in "${MOUNTS[@]}"; do umount "$m"; done
MOUNTS=()
for l in "${LOOPS[@]}"; do losetup -d "$l"; done
LOOPS=()
stop_volsrv "$RF"
[[ -n $RFB ]] && stop_volsrv "$RFB"
rm -f "$WORK/img/fuse-origin.img" "$WORK/img/plain.img" "$WORK/img/fuseb-origin.img" "$RF.diff" "${RFB:-$RF}.diff"
fi

# ---------------- d: commit latency ----------------
if want d; then
log "d: Snapshot.Create latency, 1 GiB and 16 GiB sparse volumes"
truncate -s 1G "$WORK/img/c1g.img"
truncate -s 16G "$WORK/img/c16g.img"
start_volsrv "$WORK/run/c1g" "$WORK/img/c1g.img" 16K
start_volsrv "$WORK/run/c16g" "$WORK/img/c16g.img" 16K
REP=0
$CTL commit "$COMMITS" "$WORK/run/c1g/control.sock" "$WORK/run/c16g/control.sock" |
while read -r sock ms; do
        case $sock in */c1g/*) rec commit_1g "$ms" ;; *) rec commit_16g "$ms" ;; esac
done
# Informational: the commit also flushes the origin, so a snapshot taken right
# after writes (what vssd does after fsfreeze) pays for the origin's dirty data.
for REP in $(seq 5); do
        for v in c1g c16g; do
                fio --name=dirty --ioengine=nbd --uri="nbd+unix:///?socket=$WORK/run/$v/nbd.sock" --rw=randwrite \
                    --bs=4k --iodepth=16 --offset=$(( (REP - 1) * 32 ))M --size=32M >/dev/null 2>&1 || die "fio dirty failed"
                rec "commit_dirty_${v#c}" "$($CTL "$WORK/run/$v/control.sock" create 1)"
        done
done
stop_volsrv "$WORK/run/c1g"
stop_volsrv "$WORK/run/c16g"
rm -f "$WORK/img/c1g.img" "$WORK/img/c16g.img"
fi

# ---------------- e: diff-area space ----------------
if want e; then
log "e: diff-area bytes vs unique bytes overwritten (4 KiB chunks)"
prefill "$WORK/img/space.img" 512M
for REP in $(seq "$REPS"); do
        r=$WORK/run/space
        start_volsrv "$r" "$WORK/img/space.img" 4K
        $CTL "$r/control.sock" create 1 >/dev/null
        base=$(stat_field "$(stats "$r")" used_bytes)
        # 64 MiB of 4 KiB random blocks (each once), 64 MiB sequential, then the
        # random range again (already copied: must not grow the diff area).
        fio --name=sp --ioengine=nbd --uri="nbd+unix:///?socket=$r/nbd.sock" --rw=randwrite --bs=4k --iodepth=16 \
            --offset=0 --size=64M >/dev/null 2>&1 || die "fio space failed"
        fio --name=sp --ioengine=nbd --uri="nbd+unix:///?socket=$r/nbd.sock" --rw=write --bs=1M --iodepth=16 \
            --offset=128M --size=64M >/dev/null 2>&1 || die "fio space failed"
        fio --name=sp --ioengine=nbd --uri="nbd+unix:///?socket=$r/nbd.sock" --rw=randwrite --bs=4k --iodepth=16 \
            --offset=0 --size=64M >/dev/null 2>&1 || die "fio space failed"
        used=$(stat_field "$(stats "$r")" used_bytes)
        rec space_unique $(( 128 << 20 ))
        rec space_diff $(( used - base ))
        stop_volsrv "$r"
        rm -f "$r.diff"
done
rm -f "$WORK/img/space.img"
fi

T1=$(date +%s)
log "done in $(( T1 - T0 )) s; raw results: $RES, fio JSON: $WORK/fio"
python3 "$HERE/cow-report.py" "$RES" --elapsed $(( T1 - T0 ))
