# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
#
# Shared helpers of the application-writer tests (tests/apps/t-*.sh), on top of
# tests/blackbox/lib.sh (bb_init, bb_volume, bb_start_vssd, bb_run, the asserts,
# the cleanup of loop devices and mounts).
#
# What this adds:
#   apps_init                  bb_init + the database packages + our own cleanup (servers,
#                              cow volumes) before lib.sh's
#   apps_volume VAR NAME MB    a btrfs loop volume (bb_volume, robust against other tests)
#   apps_cow_volume VAR NAME MB FS
#                              a copy-on-write volume (vssadmin create volume), mounted
#   apps_start_writer PROG NAME ARGS...
#                              a vss-writer-* program, logged to $T/writer-NAME.log, waited for
#                              until `vssadmin list writers` shows it
#   apps_load_start BACKEND TARGET CLIENTS / apps_load_stop
#                              the ledger write load (ledger.c) in the background, logging
#                              each acknowledged commit to $T/load/client-K.log
#   apps_now_us                realtime microseconds (what the load logs)
#   apps_backup N CMD VOLUME...
#                              `vshadow -bc=$T/bc-N.json --exec=CMD VOLUME...`, after
#                              recording the time it starts in $T/backup-N.before
#   apps_json FILE EXPR        a value of a JSON file (python3 expression on `d`)
#
# PostgreSQL and MariaDB refuse to run as root: their directories belong to the
# 'postgres' and 'mysql' users, and $T is opened for them (0755).  Servers listen
# on Unix sockets in the test's own directories only (no TCP), so nothing can
# collide with other helpers' servers.

# shellcheck source=../blackbox/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../blackbox/lib.sh"

APPS_SERVERS=()         # "kind:dir" of servers to stop at exit
APPS_COW_VOLUMES=()     # names given to vssadmin create volume
APPS_LOAD_PID=

apps_require()
{
        local v
        for v in WRITER_SQLITE WRITER_POSTGRESQL WRITER_MARIADB LEDGER VSS_VOLSRV; do
                [[ -n "${!v:-}" ]] || bb_fail "\$$v is not set (run through meson test)"
        done
        [[ -x "$LEDGER" ]] || bb_fail "LEDGER=$LEDGER is not built"
        # A missing package is installed, not skipped (the machine has apt).
        "$SOURCE_ROOT/scripts/install-deps.sh" >/dev/null || bb_fail "scripts/install-deps.sh failed"
}

apps_init()
{
        bb_init
        apps_require
        chmod 755 "$T"
        trap apps_cleanup EXIT
}

apps_cleanup()
{
        local rc=$? s kind dir
        set +e
        [[ -n "$APPS_LOAD_PID" ]] && { kill "$APPS_LOAD_PID" 2>/dev/null; wait "$APPS_LOAD_PID" 2>/dev/null; }
        for s in "${APPS_SERVERS[@]}"; do
                kind=${s%%:*} dir=${s#*:}
                case $kind in
                pg) apps_pg_stop "$dir" immediate ;;
                maria) apps_maria_stop "$dir" ;;
                esac
        done
        # Writers first (they hold nothing once their servers are gone), then the cow volumes,
        # which need vssd, then lib.sh's cleanup.
        local pid
        for pid in "${BB_PIDS[@]}"; do
                kill -TERM "$pid" 2>/dev/null
        done
        if [[ ${#APPS_COW_VOLUMES[@]} -gt 0 ]] && bb_vssd_alive; then
                "$VSSADMIN" delete shadows /all /quiet >/dev/null 2>&1
                for s in "${APPS_COW_VOLUMES[@]}"; do
                        "$VSSADMIN" delete volume /name="$s" >/dev/null 2>&1 ||
                                echo "cleanup: cannot delete cow volume $s" >&2
                done
        fi
        (exit "$rc")
        bb_cleanup
}

apps_now_us()
{
        date +%s%6N
}

apps_json()
{
        python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

# apps_volume VAR NAME SIZE_MB: a btrfs loop volume (256 MB by default).
apps_volume()
{
        bb_loopfs "$1" "$2" btrfs "${3:-256}"
}

# apps_cow_volume VAR NAME SIZE_MB FS: a cow volume made and mounted by vssd (needs vssd).
apps_cow_volume()
{
        local var=$1 name=$2 size=$3 fs=$4 m="$T/vols/$2" out
        export VSS_VOLSRV
        mkdir -p "$m"
        out=$("$VSSADMIN" create volume /name="$name" /size="${size}MB" /fs="$fs" /mount="$m" 2>&1) ||
                bb_fail "vssadmin create volume $name: $out"
        APPS_COW_VOLUMES+=("$name")
        mountpoint -q "$m" || bb_fail "cow volume $name is not mounted at $m"
        printf -v "$var" '%s' "$m"
}

# apps_unit_sandbox VAR PROG: in array VAR, the setpriv command that gives PROG what its unit
# data/systemd/PROG.service gives it: CapabilityBoundingSet= and NoNewPrivileges=.  systemd is
# not PID 1 here, so this is how the suite proves a root writer's unit leaves it enough: every
# test of the writer (restore included) runs inside that set.  A unit with User= runs its
# writer as that user, which these tests do not; VAR stays empty for it.
apps_unit_sandbox()
{
        local -n _sb=$1
        local unit=$SOURCE_ROOT/data/systemd/${2##*/}.service bset=-all c
        _sb=()
        [[ -f $unit ]] || bb_fail "no unit $unit for $2"
        grep -q '^User=' "$unit" && return 0
        grep -q '^CapabilityBoundingSet=' "$unit" || bb_fail "$unit has no CapabilityBoundingSet="
        for c in $(sed -n 's/^CapabilityBoundingSet=//p' "$unit"); do
                c=${c#CAP_}
                bset+=",+${c,,}"
        done
        _sb=(setpriv --bounding-set="$bset")
        grep -qx 'NoNewPrivileges=yes' "$unit" && _sb+=(--no-new-privs)
        _sb+=(--)
}

# apps_start_writer PROG NAME ARGS...: starts PROG --name NAME ARGS..., waits until listed,
# sandboxed as its unit says (apps_unit_sandbox).
apps_start_writer()
{
        local prog=$1 name=$2
        shift 2
        local sandbox=()
        apps_unit_sandbox sandbox "$prog"
        echo "=== started $(date +%T.%N): ${sandbox[*]} $prog --name '$name' $*" >>"$T/writer-$name.log"
        "${sandbox[@]}" "$prog" --name "$name" "$@" >>"$T/writer-$name.log" 2>&1 &
        BB_PIDS+=($!)
        eval "BB_WRITER_PID_${name//[^A-Za-z0-9]/_}=$!"
        bb_wait_until 20 "writer '$name' listed by vssadmin list writers" bb_writer_listed "$name"
}

apps_writer_log()
{
        cat "$T/writer-$1.log"
}

# apps_load_start BACKEND TARGET CLIENTS [RATE]: the ledger load until apps_load_stop, each
# client pacing itself to RATE commits per second (default $APPS_LOAD_RATE, 100; 0: flat out).
APPS_LOAD_RATE=${APPS_LOAD_RATE:-100}
apps_load_start()
{
        mkdir -p "$T/load"
        rm -f "$T/load/stop" "$T/load/client-"*.log
        "$LEDGER" run "$1" "$2" --log "$T/load" --clients "$3" --rate "${4:-$APPS_LOAD_RATE}" \
                --stop-file "$T/load/stop" >"$T/load/summary" 2>"$T/load/errors" &
        APPS_LOAD_PID=$!
        bb_wait_until 30 "the first commit of the ledger load" apps_load_committed 1
}

# apps_load_committed N: at least N commits acknowledged in all.
apps_load_committed()
{
        local n
        n=$(cat "$T/load/client-"*.log 2>/dev/null | wc -l)
        [[ $n -ge $1 ]]
}

apps_load_count()
{
        cat "$T/load/client-"*.log 2>/dev/null | wc -l
}

apps_load_stop()
{
        [[ -n "$APPS_LOAD_PID" ]] || return 0
        touch "$T/load/stop"
        bb_wait_pid_gone "$APPS_LOAD_PID" 30 || bb_fail "the ledger load did not stop within 30 s"
        APPS_LOAD_PID=
        bb_log "load: $(cat "$T/load/summary")"
}

# apps_backup N CMD VOLUME...: a backup through vshadow -bc while whatever runs runs.
apps_backup()
{
        local n=$1 cmd=$2
        shift 2
        apps_now_us >"$T/backup-$n.before"
        bb_run "$VSHADOW" -bc="$T/bc-$n.json" --exec="$cmd" "$@"
        bb_assert_rc 0 "backup $n: vshadow -bc --exec"
        [[ -s "$T/bc-$n.json" ]] || bb_fail "backup $n: vshadow wrote no backup components document"
}

# ---- PostgreSQL ----------------------------------------------------------------------------

PG_BIN=/usr/lib/postgresql/15/bin

apps_as_postgres()
{
        runuser -u postgres -- "$@"
}

# apps_pg_init DIR [initdb args]: a new cluster in DIR (owned by postgres).
apps_pg_init()
{
        local dir=$1
        shift
        mkdir -p "$dir"
        chown postgres: "$dir"
        chmod 700 "$dir"
        apps_as_postgres "$PG_BIN/initdb" -D "$dir" -U postgres --auth=trust -E UTF8 --locale=C "$@" \
                >>"$T/pg-initdb.log" 2>&1 || bb_fail "initdb $dir failed: $(tail -5 "$T/pg-initdb.log")"
}

# apps_pg_start DIR SOCKDIR [postgres -c options]: starts the cluster, Unix socket only, on port
# $PG_PORT (55432; the port only names the socket file, there is no TCP).
PG_PORT=55432
apps_pg_start()
{
        local dir=$1 sock=$2 o opts
        opts="-c listen_addresses='' -c unix_socket_directories='$sock' -p $PG_PORT"
        shift 2
        for o in "$@"; do
                opts+=" -c $o"
        done
        mkdir -p "$sock"
        chown postgres: "$sock"
        touch "$dir.log"
        chown postgres: "$dir.log"
        apps_as_postgres "$PG_BIN/pg_ctl" -D "$dir" -l "$dir.log" -w -t 60 -o "$opts" start >>"$T/pg-ctl.log" 2>&1 ||
                bb_fail "pg_ctl start $dir failed: $(tail -20 "$dir.log")"
        APPS_SERVERS+=("pg:$dir")
}

apps_pg_stop()
{
        local dir=$1 mode=${2:-fast}
        [[ -f "$dir/postmaster.pid" ]] || return 0
        apps_as_postgres "$PG_BIN/pg_ctl" -D "$dir" -m "$mode" -w -t 60 stop >>"$T/pg-ctl.log" 2>&1
}

# apps_psql SOCKDIR SQL [DB]: one value (or rows) from psql.
apps_psql()
{
        "$PG_BIN/psql" -X -q -A -t -h "$1" -p "$PG_PORT" -U postgres -d "${3:-postgres}" -v ON_ERROR_STOP=1 -c "$2"
}

# apps_pg_conninfo SOCKDIR [DB]
apps_pg_conninfo()
{
        echo "host=$1 port=$PG_PORT user=postgres dbname=${2:-postgres}"
}

# apps_pg_check SOCKDIR DB LOGDIR BEFORE_US: pg_amcheck of every database, then the ledger's checks.
apps_pg_check()
{
        local sock=$1 db=$2 out
        out=$("$PG_BIN/pg_amcheck" -h "$sock" -p "$PG_PORT" -U postgres --all --install-missing --heapallindexed 2>&1) ||
                bb_fail "pg_amcheck of the restored cluster failed: $out"
        out=$("$LEDGER" verify pg "$(apps_pg_conninfo "$sock" "$db")" --log "$3" --before "$4" 2>&1) ||
                bb_fail "ledger verify of the restored cluster: $out"
        bb_log "restored cluster: pg_amcheck clean; $out"
}

# ---- MariaDB -------------------------------------------------------------------------------

# apps_maria_init DIR: a new data directory, and DIR.cnf / DIR.client.cnf to run and reach it.
apps_maria_init()
{
        local dir=$1 extra=${2:-}
        mkdir -p "$dir"
        chown mysql: "$dir"
        cat >"$dir.cnf" <<EOF2
[mariadbd]
datadir=$dir
socket=$dir.sock
pid-file=$dir.pid
skip-networking
log-error=$dir.err
log-bin=$dir/binlog
server-id=1
innodb_buffer_pool_size=64M
innodb_log_file_size=32M
$extra
EOF2
        cat >"$dir.client.cnf" <<EOF2
[client]
socket=$dir.sock
user=root
EOF2
        mariadb-install-db --defaults-file="$dir.cnf" --user=mysql --auth-root-authentication-method=normal \
                --skip-test-db >>"$T/maria-install.log" 2>&1 ||
                bb_fail "mariadb-install-db $dir failed: $(tail -20 "$T/maria-install.log")"
}

apps_maria_start()
{
        local dir=$1
        touch "$dir.err"
        chown mysql: "$dir.err"
        mariadbd --defaults-file="$dir.cnf" --user=mysql >>"$dir.out" 2>&1 &
        APPS_SERVERS+=("maria:$dir")
        bb_wait_until 60 "MariaDB on $dir answering" mariadb --defaults-file="$dir.client.cnf" -e "SELECT 1"
}

apps_maria_stop()
{
        local dir=$1 pid
        [[ -f "$dir.pid" ]] || return 0
        pid=$(cat "$dir.pid" 2>/dev/null) || return 0
        kill -TERM "$pid" 2>/dev/null || return 0
        bb_wait_pid_gone "$pid" 60 || kill -KILL "$pid" 2>/dev/null
        return 0
}

apps_maria()
{
        local dir=$1
        shift
        mariadb --defaults-file="$dir.client.cnf" -N -B "$@"
}
