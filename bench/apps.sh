#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# bench/apps.sh: what the application writers cost a database under load.
#
#   bench/apps.sh [BUILD_DIR]            (root; BUILD_DIR defaults to ./build)
#
# For each file system (a btrfs loop volume, then a copy-on-write ext4 volume made with
# vssadmin create volume) and each database (SQLite, PostgreSQL, and MariaDB when
# vss-writer-mariadb is built), with its writer registered, the ledger load of
# tests/apps/ledger.c runs flat out (CLIENTS clients, no pacing; SQLite's clients pause
# SQLITE_THINK_US, 2000, after each commit, because SQLite's lock is not fair and a client
# that begins again the instant it committed starves the others for seconds).
#
# One load runs through the whole cell (same process, connections, caches and database
# growth for both sides).  After WARMUP s it is cut into blocks of BLOCK s, alternately
# without backups (A) and with a backup (`vshadow -bc=FILE --exec=true VOLUME`) at the
# start of every EVERY s (B), in the order A B B A A B B A ... (PAIRS pairs; each pair is
# one A and the B next to it).  The machine is shared, so its load drifts; a drift slower
# than a block hits both halves of a pair alike, and the ABBA order cancels a linear trend
# within two pairs.  bench/apps-report.py then prints, per database and file system:
#
#   throughput   per pair, commits/s of its B block / of its A block; the median over the
#                pairs and their min..max                           (target >= 0.90)
#   stall        the longest commit latency among commits in flight during a set
#                (vshadow's start to its end) / the longest commit latency in the A
#                blocks; and that longest stall in ms          (target on btrfs < 200 ms)
#
# Environment: BLOCK (6), EVERY (3), PAIRS (10), WARMUP (10; the first seconds of a fresh
# database run slower), CLIENTS (4), DBS ("sqlite postgresql mariadb"), FSES ("btrfs cow");
# one cell takes WARMUP + 2 * PAIRS * BLOCK s (130 s) plus its setup, a full run about 15 min.
# KEEP (a directory to copy the raw logs to), PROFILE=1 (per block: the CPU time of the
# database server's main process (for SQLite the ledger, in which the database runs), vssd
# and the whole machine per commit,
# and on a cow volume the engine's Storage.Stats and vss-volsrv; summed per kind of block
# and printed after the report), PERF=1 (with PROFILE: perf record -g of PERF_ON, volsrv
# (default), db (the database server, or the ledger for SQLite) or vssd, in each block; the
# top symbols of the first A and B block printed), STRACE=1 (instead: strace -f -tt -T of
# PERF_ON's I/O calls, to BLOCK/strace.txt), VOLSRV_B=OTHER/vss-volsrv (a second engine
# build: every cow database runs twice, on a volume served by each, to compare two builds
# in one run; labels DB-cow and DB-cowb), VSSD_ARGS (options for vssd, e.g. --verbose:
# its log, copied to KEEP, times each step of each set; bench/vssd-steps.py), SET_CMD (a
# shell command the B blocks run instead of vshadow, with BENCH_VOLUME and BENCH_TARGET, the
# ledger's target, set: what one part of a set costs alone, e.g. SET_CMD='sqlite3
# "$BENCH_TARGET" "PRAGMA wal_checkpoint(TRUNCATE)"' for the SQLite writer's checkpoint).  Everything
# is built on loop devices under a temporary directory ($TMPDIR) and removed at exit
# (tests/apps/apps-lib.sh's cleanup).
set -euo pipefail

[[ $(id -u) -eq 0 ]] || { echo "bench/apps.sh: must run as root (loop devices, mounts, servers)" >&2; exit 77; }
top=$(cd "$(dirname "$0")/.." && pwd)
B=$(cd "${1:-build}" && pwd)
export VSSD=$B/src/vssd/vssd VSSADMIN=$B/src/tools/vssadmin/vssadmin VSHADOW=$B/src/tools/vshadow/vshadow \
        VSSWRITER=$B/src/tools/vsswriter/vsswriter VSS_VOLSRV=$B/src/volsrv/vss-volsrv \
        WRITER_SQLITE=$B/src/writers/vss-writer-sqlite WRITER_POSTGRESQL=$B/src/writers/vss-writer-postgresql \
        WRITER_MARIADB=$B/src/writers/vss-writer-mariadb LEDGER=$B/tests/apps/ledger SOURCE_ROOT=$top BUILD_DIR=$B
BLOCK=${BLOCK:-6}
EVERY=${EVERY:-3}
PAIRS=${PAIRS:-10}
WARMUP=${WARMUP:-10}
CLIENTS=${CLIENTS:-4}
DBS=${DBS:-sqlite postgresql mariadb}
FSES=${FSES:-btrfs cow}

# shellcheck source=../tests/apps/apps-lib.sh
source "$top/tests/apps/apps-lib.sh"
# The bench's temporary directory is named like the tests' (apps-lib.sh wants one).
BB_NAME=bench-apps
# The database servers run as their own users and put their temporary files in $TMPDIR.
if [[ -n ${TMPDIR:-} && ! -k $TMPDIR ]]; then
        echo "bench/apps.sh: TMPDIR=$TMPDIR must be writable by every user, as /tmp is (chmod 1777)" >&2
        exit 1
fi
apps_init
RESULTS=$T/results
mkdir -p "$RESULTS"
# KEEP gets what was measured also when a later cell fails.
bench_keep() { [[ -z ${KEEP:-} ]] || { mkdir -p "$KEEP"; cp -a "$RESULTS/." "$T/vssd.log" "$T"/writer-*.log "$KEEP/" 2>/dev/null || true; }; }
trap 'rc=$?; set +e; bench_keep; (exit $rc); apps_cleanup' EXIT     # set -e would stop at (exit 1)

# PROFILE=1: what each block costs, sampled around it (PROF_SOCK, PROF_PIDS set per cell;
# the first of PROF_PIDS is the volume server when there is one, PERF_ON picks by name).
PROF_SOCK='' PROF_PIDS='' PROF_PERF=''
prof_cpu() { local p; for p in $PROF_PIDS; do awk -v n="${p%%:*}" '{print n, $14 + $15}' "/proc/${p#*:}/stat" 2>/dev/null; done; }
prof_sample()
{
        prof_cpu
        awk '/^cpu /{print "machine_busy", $2+$3+$4+$7+$8; print "machine_idle", $5+$6}' /proc/stat
        echo "t_ms $(( $(date +%s%N) / 1000000 ))"
}
prof_target()
{
        local p want=${PERF_ON:-volsrv}
        [[ $want == db ]] && want="postgres mariadbd ledger"
        for p in $PROF_PIDS; do
                [[ " $want " == *" ${p%%:*} "* ]] && { echo "${p#*:}"; return 0; }
        done
        return 1
}
prof_start()
{
        local pid
        [[ ${PROFILE:-0} == 1 ]] || return 0
        mkdir -p "$1"
        [[ -z $PROF_SOCK ]] || python3 "$top/bench/cow-ctl.py" "$PROF_SOCK" Storage.Stats >"$1/stats0"
        prof_sample >"$1/cpu0"
        PROF_PERF=''
        pid=$(prof_target) || return 0
        if [[ ${STRACE:-0} == 1 ]]; then
                strace -f -tt -T -e trace=pwrite64,pwritev,pread64,preadv,fdatasync,fsync,writev,read,ftruncate,fcntl \
                        -o "$1/strace.txt" -p "$pid" & PROF_PERF=$!
        elif [[ ${PERF:-0} == 1 ]]; then
                perf record -q -g -o "$1/perf.data" -p "$pid" >/dev/null 2>&1 & PROF_PERF=$!
        fi
}
prof_end()
{
        [[ ${PROFILE:-0} == 1 ]] || return 0
        prof_sample >"$1/cpu1"
        [[ -z $PROF_SOCK ]] || python3 "$top/bench/cow-ctl.py" "$PROF_SOCK" Storage.Stats >"$1/stats1"
        [[ -n $PROF_PERF ]] || return 0
        kill -INT "$PROF_PERF"; wait "$PROF_PERF" || true
        if [[ ${PERF:-0} == 1 && ${STRACE:-0} != 1 ]]; then
                perf report -i "$1/perf.data" --no-children --sort sym --stdio 2>/dev/null | grep -v '^#' |
                        grep '%' >"$1/perf.txt" || true
        fi
}

# sleep_until US: sleeps until realtime microsecond US (no-op when it has passed).
sleep_until()
{
        local d=$(( $1 - $(apps_now_us) ))
        (( d > 0 )) && sleep "$((d / 1000000)).$(printf '%06d' $((d % 1000000)))"
        return 0
}

# block KIND N DIR [VOLUME...]: block N of the cell, BLOCK s; with volumes (KIND B) a backup
# at the start of every EVERY s, each set's start and end (realtime us) appended to DIR/sets.
# A set that overruns its period delays the next; the block ends when its last set has.
# The block's own start and end go to DIR/blocks ("KIND START_US END_US LOADAVG", the
# machine's 1-minute load average at its end).
block()
{
        local kind=$1 n=$2 dir=$3 t_start t0 t1 k=0
        shift 3
        prof_start "$dir/blk-$n"
        t_start=$(apps_now_us)
        if [[ $# -gt 0 ]]; then
                while (( k * EVERY < BLOCK )); do
                        sleep_until $(( t_start + k * EVERY * 1000000 ))
                        t0=$(apps_now_us)
                        if [[ -n ${SET_CMD:-} ]]; then
                                BENCH_VOLUME=$1 bash -c "$SET_CMD" >>"$dir/vshadow.log" 2>&1 ||
                                        echo "SET_CMD failed at $(date +%T), see $dir/vshadow.log" >&2
                        else
                                "$VSHADOW" -bc="$dir/bc.json" --exec=true "$@" >>"$dir/vshadow.log" 2>&1 ||
                                        echo "vshadow failed at $(date +%T), see $dir/vshadow.log" >&2
                        fi
                        t1=$(apps_now_us)
                        echo "$t0 $t1" >>"$dir/sets"
                        k=$((k + 1))
                done
        fi
        sleep_until $(( t_start + BLOCK * 1000000 ))
        echo "$kind $t_start $(apps_now_us) $(cut -d' ' -f1 /proc/loadavg)" >>"$dir/blocks"
        prof_end "$dir/blk-$n"
}

load_committed() { cat "$1"/client-*.log 2>/dev/null | grep -q .; }

# bench_db LABEL BACKEND TARGET VOLUME: one load through WARMUP and the PAIRS pairs of blocks.
bench_db()
{
        local label=$1 backend=$2 target=$3 vol=$4 d=$RESULTS/$1 think=0 load i n=0
        mkdir -p "$d/load"
        : >"$d/sets"; : >"$d/blocks"
        [[ $backend == sqlite ]] && think=${SQLITE_THINK_US:-2000}
        export BENCH_TARGET=$target
        "$LEDGER" run "$backend" "$target" --log "$d/load" --clients "$CLIENTS" --stop-file "$d/load/stop" \
                --think-us "$think" >"$d/summary" 2>"$d/errors" &
        load=$!
        [[ $backend == sqlite ]] && PROF_PIDS="$PROF_PIDS ledger:$load vssd:$BB_VSSD_PID"
        bb_wait_until 30 "the first commit of the $label load" load_committed "$d/load"
        sleep "$WARMUP"
        for ((i = 0; i < PAIRS; i++)); do
                if (( i % 2 == 0 )); then
                        block A $n "$d"; block B $((n + 1)) "$d" "$vol"
                else
                        block B $n "$d" "$vol"; block A $((n + 1)) "$d"
                fi
                n=$((n + 2))
        done
        touch "$d/load/stop"
        wait "$load" || echo "$label: the ledger load failed: $(tail -3 "$d/errors")" >&2
        echo "$label: $(cat "$d/summary") sets=$(wc -l <"$d/sets")" >&2
}

# vssd starts the volume server named by $VSS_VOLSRV, read once at its start: it is this
# wrapper, which runs the build the next cow volume is to get (VOLSRV_B: fs "cowb").
# shellcheck disable=SC2016  # $(cat ...) and $@ are for the wrapper to expand
printf '#!/bin/sh\nexec "$(cat %q)" "$@"\n' "$T/volsrv-which" >"$T/volsrv-ab"
chmod +x "$T/volsrv-ab"
echo "$VSS_VOLSRV" >"$T/volsrv-which"
VOLSRV_A=$VSS_VOLSRV
export VSS_VOLSRV=$T/volsrv-ab
if [[ -n ${VOLSRV_B:-} ]]; then
        [[ -x $VOLSRV_B ]] || { echo "bench/apps.sh: VOLSRV_B=$VOLSRV_B is not executable" >&2; exit 1; }
        [[ " $FSES " == *" cow "* && " $FSES " != *" cowb "* ]] && FSES="$FSES cowb"
fi
# shellcheck disable=SC2086
bb_start_vssd ${VSSD_ARGS:-}

setup_volume()
{
        local fs=$1 name=$2
        PROF_SOCK='' PROF_PIDS=''
        case $fs in
        btrfs)  apps_volume VOL "$name" 1024 ;;
        cow|cowb)
                if [[ $fs == cowb ]]; then echo "$VOLSRV_B" >"$T/volsrv-which"; else echo "$VOLSRV_A" >"$T/volsrv-which"; fi
                apps_cow_volume VOL "$name" 1024 ext4
                PROF_SOCK=$T/state/volumes/$name/run/control.sock
                PROF_PIDS="volsrv:$(cat "$T/state/volumes/$name/run/volsrv.pid")"
                ;;
        *)      echo "bench/apps.sh: unknown file system '$fs' in FSES (btrfs cow cowb)" >&2; exit 1 ;;
        esac
}

# prof_pids NAME PIDFILE: adds a server to what PROFILE samples.
prof_pids() { PROF_PIDS="$PROF_PIDS $1:$(head -1 "$2") vssd:$BB_VSSD_PID"; }

for fs in $FSES; do
        for db in $DBS; do
                label=$db-$fs
                case $db in
                sqlite)
                        setup_volume "$fs" "lite$fs"
                        mkdir -p "$VOL/app"
                        "$LEDGER" init sqlite "$VOL/app/ledger.db"
                        sqlite3 "$VOL/app/ledger.db" 'PRAGMA journal_mode=WAL' >/dev/null
                        apps_start_writer "$WRITER_SQLITE" "SQLite $fs" --database "$VOL/app/ledger.db"
                        bench_db "$label" sqlite "$VOL/app/ledger.db" "$VOL"
                        kill -TERM "$(bb_writer_pid "SQLite $fs")"
                        ;;
                postgresql)
                        setup_volume "$fs" "pg$fs"
                        mkdir -p "$VOL/pg"
                        chown postgres: "$VOL/pg"
                        apps_pg_init "$VOL/pg/data"
                        apps_pg_start "$VOL/pg/data" "$T/pgsock-$fs"
                        prof_pids postgres "$VOL/pg/data/postmaster.pid"
                        apps_psql "$T/pgsock-$fs" "CREATE DATABASE ledger" >/dev/null
                        ci=$(apps_pg_conninfo "$T/pgsock-$fs" ledger)
                        "$LEDGER" init pg "$ci"
                        apps_start_writer "$WRITER_POSTGRESQL" "PostgreSQL $fs" --conninfo "$ci"
                        bench_db "$label" pg "$ci" "$VOL"
                        kill -TERM "$(bb_writer_pid "PostgreSQL $fs")"
                        apps_pg_stop "$VOL/pg/data"
                        ;;
                mariadb)
                        if [[ ! -x "$WRITER_MARIADB" ]]; then
                                echo "mariadb: $WRITER_MARIADB is not built; skipped" >&2
                                echo "skipped: vss-writer-mariadb not built" >"$RESULTS/$label.skipped"
                                continue
                        fi
                        setup_volume "$fs" "maria$fs"
                        mkdir -p "$VOL/maria"
                        chown mysql: "$VOL/maria"     # its socket, pid and error log live here
                        apps_maria_init "$VOL/maria/data"
                        apps_maria_start "$VOL/maria/data"
                        prof_pids mariadbd "$VOL/maria/data.pid"
                        apps_maria "$VOL/maria/data" -e "CREATE DATABASE ledger"
                        printf '[client]\nsocket=%s\nuser=root\ndatabase=ledger\n' "$VOL/maria/data.sock" \
                                >"$T/maria-$fs.cnf"
                        "$LEDGER" init mariadb "$T/maria-$fs.cnf"
                        apps_start_writer "$WRITER_MARIADB" "MariaDB $fs" --defaults-file "$T/maria-$fs.cnf"
                        bench_db "$label" mariadb "$T/maria-$fs.cnf" "$VOL"
                        kill -TERM "$(bb_writer_pid "MariaDB $fs")"
                        apps_maria_stop "$VOL/maria/data"
                        ;;
                esac
        done
done

cp "$T/vssd.log" "$T"/writer-*.log "$RESULTS/" 2>/dev/null || true
echo
echo "bench/apps: BLOCK=$BLOCK EVERY=$EVERY PAIRS=$PAIRS WARMUP=$WARMUP CLIENTS=$CLIENTS on $(nproc) CPUs, $(uname -r)," \
        "load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
python3 "$top/bench/apps-report.py" "$RESULTS"
