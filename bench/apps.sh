#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# bench/apps.sh: what the application writers cost a database under load (issue 12 item 3).
#
#   bench/apps.sh [BUILD_DIR]            (root; BUILD_DIR defaults to ./build)
#
# For each file system (a btrfs loop volume, then a copy-on-write ext4 volume made with
# vssadmin create volume) and each database (SQLite, PostgreSQL, and MariaDB when
# vss-writer-mariadb is built), with its writer registered, the ledger load of
# tests/apps/ledger.c runs flat out (CLIENTS clients, no pacing; SQLite's clients pause
# SQLITE_THINK_US, 2000, after each commit, because SQLite's lock is not fair and a client
# that begins again the instant it committed starves the others for seconds) in three phases:
#
#   A1  DURATION/2 s without backups
#   B   DURATION s with a backup (`vshadow -bc=FILE --exec=true VOLUME`) every EVERY s
#   A2  DURATION/2 s without backups
#
# (the baseline is A1 + A2, around B, so that a database growing or a neighbour's load
# does not favour either side).  bench/apps-report.py then prints, per database and file
# system:
#
#   throughput   commits/s with backups / commits/s without            (target >= 0.90)
#   stall        the longest commit latency among commits in flight during a set
#                (vshadow's start to its end) / the longest commit latency without
#                backups; and that longest stall in ms       (target on btrfs < 200 ms)
#
# A commit is "during a set" when its BEGIN..COMMIT interval overlaps one.  Environment:
# DURATION (30), EVERY (3), CLIENTS (4), DBS ("sqlite postgresql mariadb"), FSES ("btrfs
# cow"), KEEP (a directory to copy the raw logs to).  Everything is built on loop devices
# under a temporary directory and removed at exit (tests/apps/apps-lib.sh's cleanup).
set -euo pipefail

[[ $(id -u) -eq 0 ]] || { echo "bench/apps.sh: must run as root (loop devices, mounts, servers)" >&2; exit 77; }
top=$(cd "$(dirname "$0")/.." && pwd)
B=$(cd "${1:-build}" && pwd)
export VSSD=$B/src/vssd/vssd VSSADMIN=$B/src/tools/vssadmin/vssadmin VSHADOW=$B/src/tools/vshadow/vshadow \
        VSSWRITER=$B/src/tools/vsswriter/vsswriter VSS_VOLSRV=$B/src/volsrv/vss-volsrv \
        WRITER_SQLITE=$B/src/writers/vss-writer-sqlite WRITER_POSTGRESQL=$B/src/writers/vss-writer-postgresql \
        WRITER_MARIADB=$B/src/writers/vss-writer-mariadb LEDGER=$B/tests/apps/ledger SOURCE_ROOT=$top BUILD_DIR=$B
DURATION=${DURATION:-30}
EVERY=${EVERY:-3}
CLIENTS=${CLIENTS:-4}
DBS=${DBS:-sqlite postgresql mariadb}
FSES=${FSES:-btrfs cow}

# shellcheck source=../tests/apps/apps-lib.sh
source "$top/tests/apps/apps-lib.sh"
# The bench's temporary directory is named like the tests' (apps-lib.sh wants one).
BB_NAME=bench-apps
apps_init
RESULTS=$T/results
mkdir -p "$RESULTS"
bb_start_vssd

# phase NAME DIR BACKEND TARGET SECONDS [VOLUME...]: one phase of the load; with volumes,
# a backup every EVERY s, each set's start and end (realtime us) logged to DIR/sets.
phase()
{
        local name=$1 dir=$2 backend=$3 target=$4 secs=$5 load t_end n=0 t0 t1 think=0
        shift 5
        mkdir -p "$dir"
        [[ $backend == sqlite ]] && think=${SQLITE_THINK_US:-2000}
        "$LEDGER" run "$backend" "$target" --log "$dir" --clients "$CLIENTS" --duration "$secs" --think-us "$think" \
                >"$dir/summary" 2>"$dir/errors" &
        load=$!
        : >"$dir/sets"
        if [[ $# -gt 0 ]]; then
                t_end=$(( $(date +%s) + secs ))
                sleep 1
                while (( $(date +%s) + 1 < t_end )); do
                        t0=$(apps_now_us)
                        "$VSHADOW" -bc="$dir/bc.json" --exec=true "$@" >>"$dir/vshadow.log" 2>&1 ||
                                echo "vshadow failed at $(date +%T), see $dir/vshadow.log" >&2
                        t1=$(apps_now_us)
                        echo "$t0 $t1" >>"$dir/sets"
                        n=$((n + 1))
                        sleep "$(python3 -c "print(max(0, $EVERY - ($t1 - $t0) / 1e6))")"
                done
        fi
        wait "$load"
        echo "$name $(cat "$dir/summary") sets=$n" >&2
}

# bench_db LABEL BACKEND TARGET VOLUME: the three phases for one database.
bench_db()
{
        local label=$1 backend=$2 target=$3 vol=$4 d=$RESULTS/$1
        phase A1 "$d/a1" "$backend" "$target" $((DURATION / 2))
        phase B "$d/b" "$backend" "$target" "$DURATION" "$vol"
        phase A2 "$d/a2" "$backend" "$target" $((DURATION / 2))
}

setup_volume()
{
        local fs=$1 name=$2
        if [[ $fs == btrfs ]]; then
                apps_volume VOL "$name" 1024
        else
                apps_cow_volume VOL "$name" 1024 ext4
        fi
}

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

[[ -n "${KEEP:-}" ]] && { mkdir -p "$KEEP"; cp -a "$RESULTS/." "$KEEP/"; }
echo
echo "bench/apps: DURATION=$DURATION EVERY=$EVERY CLIENTS=$CLIENTS on $(nproc) CPUs, $(uname -r)"
python3 "$top/bench/apps-report.py" "$RESULTS"
