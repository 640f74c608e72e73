# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
#
# MariaDB helpers of the application-writer tests (t-mariadb*.sh), on top of apps-lib.sh
# (apps_maria_init/start/stop/apps_maria) and tests/blackbox/lib.sh.
#
#   maria_dirs DIR...          directories owned by mysql (a server writes its socket, pid
#                              file and error log beside its datadir, in a directory of its own)
#   maria_ledger_cnf DIR       DIR.ledger.cnf: DIR.client.cnf + database=ledger (the load's target)
#   maria_sql DIR SQL          one statement as root over the server's socket, no headers
#   maria_probe DIR NAME       a commit from another session in the background: INSERT INTO
#                              ledger.probe; $T/probe-NAME.done gets "realtime_ns exit_status"
#                              when the server answered
#   maria_probe_waiting DIR    a probe insert waits for the backup lock (processlist)
#   maria_no_backup_stage DIR  nobody holds a backup stage: no MDL_BACKUP_START/FLUSH/WAIT_*
#                              lock in METADATA_LOCK_INFO, and BACKUP STAGE START of another
#                              session gets its lock at once (lock_wait_timeout=0)
#   maria_log_count NAME PATTERN
#                              lines of writer NAME's log matching PATTERN (fixed string)
#   maria_has_bc               vshadow knows -bc/-r (h-libvss's vshadow); else the restore
#                              events go through maria_restore (tests/apps/maria-restore.py)
#   maria_restore N CMD WID    vshadow -r=$T/bc-N.json --exec=CMD, or the raw-protocol requester
#
# Servers load the metadata_lock_info plugin, so the writer can name who holds a backup lock.

maria_dirs()
{
        local d
        for d in "$@"; do
                mkdir -p "$d"
                chown mysql: "$d"
        done
}

maria_ledger_cnf()
{
        { cat "$1.client.cnf"; echo "database=ledger"; } >"$1.ledger.cnf"
}

maria_sql()
{
        apps_maria "$1" -e "$2"
}

# maria_setup DIR EXTRA: a server on DIR with the ledger database (20 accounts) and a probe table.
maria_setup()
{
        local dir=$1 extra=$2 accounts=${3:-20}
        maria_dirs "$(dirname "$dir")"
        apps_maria_init "$dir" "plugin-load-add=metadata_lock_info
$extra"
        apps_maria_start "$dir"
        maria_sql "$dir" "CREATE DATABASE ledger"
        maria_ledger_cnf "$dir"
        "$LEDGER" init mariadb "$dir.ledger.cnf" --accounts "$accounts"
        maria_sql "$dir" "CREATE TABLE ledger.probe (id INT AUTO_INCREMENT PRIMARY KEY, what VARCHAR(64)) ENGINE=InnoDB"
}

maria_probe()
{
        local dir=$1 name=$2
        rm -f "$T/probe-$name.done"
        (
                set +e
                mariadb --defaults-file="$dir.client.cnf" -e "INSERT INTO ledger.probe (what) VALUES ('$name')" \
                        >"$T/probe-$name.out" 2>&1
                rc=$?
                echo "$(date +%s%N) $rc" >"$T/probe-$name.tmp"
                mv "$T/probe-$name.tmp" "$T/probe-$name.done"
        ) &
        BB_PIDS+=($!)
}

maria_probe_waiting()
{
        local n
        n=$(maria_sql "$1" "SELECT COUNT(*) FROM information_schema.PROCESSLIST
                            WHERE STATE = 'Waiting for backup lock' AND INFO LIKE 'INSERT INTO ledger.probe%'")
        [[ $n -ge 1 ]]
}

# maria_probe_ms NAME T0_NS: milliseconds from T0_NS to the probe's answer.
maria_probe_ms()
{
        local done
        read -r done _ <"$T/probe-$1.done"
        echo $(( (done - $2) / 1000000 ))
}

maria_probe_ok()
{
        local _t rc
        read -r _t rc <"$T/probe-$1.done"
        [[ $rc == 0 ]] || bb_fail "probe $1 failed: $(cat "$T/probe-$1.out")"
}

maria_no_backup_stage()
{
        local dir=$1 held out
        held=$(maria_sql "$dir" "SELECT COUNT(*) FROM information_schema.METADATA_LOCK_INFO
                WHERE LOCK_TYPE = 'Backup lock' AND LOCK_MODE IN ('MDL_BACKUP_START', 'MDL_BACKUP_FLUSH',
                'MDL_BACKUP_WAIT_FLUSH', 'MDL_BACKUP_WAIT_DDL', 'MDL_BACKUP_WAIT_COMMIT')")
        [[ $held == 0 ]] || { echo "$held backup stage lock(s) still held" >&2; return 1; }
        out=$(maria_sql "$dir" "SET STATEMENT lock_wait_timeout=0 FOR BACKUP STAGE START; BACKUP STAGE END" 2>&1) ||
                { echo "BACKUP STAGE START of another session: $out" >&2; return 1; }
}

maria_log_count()
{
        grep -cF -- "$2" "$T/writer-$1.log" || true
}

maria_has_bc()
{
        "$VSHADOW" --help 2>&1 | grep -q -- '-bc='
}

# maria_restore N CMD WRITER_ID: the restore events for backup N with CMD between them:
# vshadow -r=$T/bc-N.json --exec=CMD, or (no -r yet) maria-restore.py with the component's
# metadata $T/md-N.json; output in $OUT, status in $RC (bb_run).
maria_restore()
{
        local n=$1 cmd=$2 wid=$3
        if maria_has_bc; then
                bb_run "$VSHADOW" -r="$T/bc-$n.json" --exec="$cmd"
        else
                bb_run python3 "$SOURCE_ROOT/tests/apps/maria-restore.py" "$VSS_SOCKET" "$wid" "$T/md-$n.json" "$cmd"
        fi
}
