#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# vss-writer-mariadb under the ledger load (tests/apps/ledger.c, 4 clients), with real
# MariaDB servers: one on two btrfs loop volumes (datadir on the first; InnoDB redo log and
# binary log on the second, so every backup needs both snapshots at one instant), one on an
# ext4 cow volume.  11 backups through vshadow --exec (-bc when vshadow has it) while the
# load runs, each copied out of the shadow copies and restored into a fresh server that
# starts (InnoDB crash recovery), passes CHECK TABLE of every table, reports the
# backup's @@gtid_binlog_pos (the binary log and InnoDB agree with the metadata read under
# BLOCK_COMMIT), and holds every transaction acknowledged before vshadow started, each
# client's as a gapless prefix, the accounts' total unchanged (ledger verify).  Then a
# restore in place: PreRestore vetoes while the server runs; after a crash (kill -9, stale
# pid file and socket) the files are copied back by the restore's CMD as root, and the
# server started after PostRestore passes the same checks.
source "$(dirname "$0")/apps-lib.sh"
source "$(dirname "$0")/maria-lib.sh"
apps_init

FT=10000
ACCOUNTS=100
N_BTRFS=6
N_COW=5

apps_volume V1 lb1 768
apps_volume V2 lb2 384
D1=$V1/mysql/data
maria_dirs "$V2/mysql" "$V2/mysql/redo" "$V2/mysql/binlog"
maria_setup "$D1" "innodb_log_group_home_dir=$V2/mysql/redo
log-bin=$V2/mysql/binlog/binlog" $ACCOUNTS
bb_start_vssd
apps_cow_volume C lc1 768 ext4
D2=$C/mysql/data
maria_setup "$D2" "" $ACCOUNTS

apps_start_writer "$WRITER_MARIADB" "MariaDB btrfs" --defaults-file "$D1.client.cnf" --freeze-timeout $FT --verbose
apps_start_writer "$WRITER_MARIADB" "MariaDB cow" --defaults-file "$D2.client.cnf" --freeze-timeout $FT --verbose

# backup N WRITER CMD VOLUME...: vshadow [-bc=$T/bc-N.json] --exec=CMD, the start time in
# $T/backup-N.before, the component's backup metadata in $T/md-N.json.
backup()
{
        local n=$1 writer=$2 cmd=$3 bc=()
        shift 3
        maria_has_bc && bc=(-bc="$T/bc-$n.json")
        apps_now_us >"$T/backup-$n.before"
        bb_run "$VSHADOW" "${bc[@]}" --exec="$cmd" "$@"
        bb_assert_rc 0 "backup $n: vshadow --exec"
        if maria_has_bc; then
                apps_json "$T/bc-$n.json" "[c for w in d['writers'] if w['name'] == '$writer'
                                             for c in w['components']][0]['backup_metadata']" >"$T/md-$n.json"
        else
                sed -n 's/.* metadata \({.*}\)$/\1/p' "$T/writer-$writer.log" | tail -n 1 >"$T/md-$n.json"
        fi
        [[ -s "$T/md-$n.json" ]] || bb_fail "backup $n: no backup metadata of '$writer'"
}

# restored_start DIR: a fresh server on the copy in DIR (data/, and redo/ binlog/ when the
# copy has them), its own socket, pid file and error log.
restored_start()
{
        local r=$1 extra=""
        chown -R mysql: "$r"
        # The binary log decides, in crash recovery, what InnoDB's prepared transactions become:
        # the copy runs with it.  Its index names the logs by their absolute paths: point them
        # at the copy.
        local b=$r/data
        [[ -d "$r/binlog" ]] && b=$r/binlog
        [[ -f "$b/binlog.index" ]] || bb_fail "the copy $r has no binary log index"
        sed -i "s|^.*/\\(binlog\\.[0-9]*\\)\$|$b/\\1|" "$b/binlog.index"
        extra="log-bin=$b/binlog"
        [[ -d "$r/redo" ]] && extra+=$'\n'"innodb_log_group_home_dir=$r/redo"
        cat >"$r/my.cnf" <<EOF
[mariadbd]
datadir=$r/data
socket=$r/s
pid-file=$r/pid
skip-networking
log-error=$r/err
server-id=1
innodb_buffer_pool_size=64M
innodb_log_file_size=32M
$extra
EOF
        printf '[client]\nsocket=%s/s\nuser=root\n' "$r" >"$r/client.cnf"
        { cat "$r/client.cnf"; echo "database=ledger"; } >"$r/ledger.cnf"
        touch "$r/err"
        chown mysql: "$r/err"
        mariadbd --defaults-file="$r/my.cnf" --user=mysql >>"$r/out" 2>&1 &
        RESTORED_PID=$!
        BB_PIDS+=($RESTORED_PID)
        local i
        for ((i = 0; i < 600; i++)); do
                mariadb --defaults-file="$r/client.cnf" -e "SELECT 1" >/dev/null 2>&1 && return 0
                kill -0 "$RESTORED_PID" 2>/dev/null || bb_fail "the restored server on $r exited: $(tail -20 "$r/err")"
                sleep 0.1
        done
        bb_fail "the restored server on $r did not answer within 60 s: $(tail -20 "$r/err")"
}

# check_server CNF N LOGDIR: CHECK TABLE of every table, the gtid position of backup N's
# metadata, and ledger verify against the commits acknowledged before backup N started.
check_server()
{
        local cnf=$1 n=$2 logs=$3 out bad gtid
        out=$(mariadb-check --defaults-file="$cnf" --all-databases 2>&1) || bb_fail "backup $n: mariadb-check: $out"
        bad=$(grep -v -E '(OK|Table is already up to date)$' <<<"$out" |
                grep -v -E "^note *: The storage engine for the table doesn't support check" || true)
        # A table line without a status is followed by its note; anything else is an error.
        bad=$(grep -v -E '^[a-z_]+\.[A-Za-z0-9_$#]+$' <<<"$bad" || true)
        [[ -z "$bad" ]] || bb_fail "backup $n: CHECK TABLE found problems:"$'\n'"$out"
        grep -qE '^ledger\.ledger +OK$' <<<"$out" || bb_fail "backup $n: CHECK TABLE ledger.ledger:"$'\n'"$out"
        grep -qE '^ledger\.accounts +OK$' <<<"$out" || bb_fail "backup $n: CHECK TABLE ledger.accounts:"$'\n'"$out"
        gtid=$(mariadb --defaults-file="$cnf" -N -e "SELECT @@gtid_binlog_pos")
        bb_assert_eq "$(apps_json "$T/md-$n.json" 'd["gtid_binlog_pos"]')" "$gtid" \
                "backup $n: @@gtid_binlog_pos of the restored server (the metadata's, read under BLOCK_COMMIT)"
        out=$("$LEDGER" verify mariadb "${cnf%client.cnf}ledger.cnf" --log "$logs" \
                --before "$(cat "$T/backup-$n.before")" --accounts $ACCOUNTS 2>&1) || bb_fail "backup $n: ledger verify: $out"
        bb_log "backup $n: $out"
}

restored_stop()
{
        kill -TERM "$RESTORED_PID"
        bb_wait_pid_gone "$RESTORED_PID" 60 || bb_fail "the restored server did not stop within 60 s"
}

# ---- btrfs: datadir on V1, redo and binary log on V2 ----------------------------------------

apps_load_start mariadb "$D1.ledger.cnf" 4 $ACCOUNTS
for ((n = 1; n <= N_BTRFS; n++)); do
        bb_wait_until 30 "more commits before backup $n" apps_load_committed $((n * 150))
        r=$T/r$n
        mkdir -p "$r"
        backup $n "MariaDB btrfs" "cp -a \"\$VSHADOW_MOUNT_1/mysql/data\" $r/data &&
                cp -a \"\$VSHADOW_MOUNT_2/mysql/redo\" $r/redo && cp -a \"\$VSHADOW_MOUNT_2/mysql/binlog\" $r/binlog" \
                "$V1" "$V2"
        restored_start "$r"
        check_server "$r/client.cnf" $n "$T/load"
        restored_stop
        [[ $n == "$N_BTRFS" ]] || rm -rf "$r"
done
log=$(apps_writer_log "MariaDB btrfs")
bb_assert_eq $N_BTRFS "$(grep -c "BACKUP STAGE END at Thaw: commits were blocked for" <<<"$log")" "Thaws of the btrfs writer"
bb_log "btrfs: commits blocked (s): $(sed -n 's/.*commits were blocked for \([0-9.]*\) s.*/\1/p' <<<"$log" | tr '\n' ' ')"

# ---- restore in place from the last btrfs backup ------------------------------------------

n=$N_BTRFS
r=$T/r$n
bb_log "restore in place: PreRestore vetoes while the server runs"
wid=$(bb_writer_field "MariaDB btrfs" "Writer Id")
maria_restore $n "touch $T/restore-cmd-ran" "$wid"
bb_assert_failed "restore while the server runs"
server_pid=$(cat "$D1.pid")
bb_assert_contains "$OUT" "a MariaDB server (pid $server_pid mariadbd) runs on $D1; stop it before restoring" \
        "the PreRestore veto names the server"
bb_assert_writer "MariaDB btrfs" "[13] Failed" "Retryable error"
[[ ! -e "$T/restore-cmd-ran" ]] || bb_fail "the restore's CMD ran after a PreRestore veto"

bb_log "restore in place after a crash: the files copied back as root, stale pid file and socket removed"
apps_load_stop
kill -KILL "$server_pid"
bb_wait_pid_gone "$server_pid" 10 || bb_fail "mariadbd did not die"
[[ -e "$D1.pid" && -S "$D1.sock" ]] || bb_fail "the crash should leave the pid file and the socket"
cp -a "$T/load" "$T/load-btrfs"
maria_restore $n "rm -rf $D1/* $V2/mysql/redo/* $V2/mysql/binlog/* &&
        cp -r --preserve=mode,timestamps $r/data/. $D1/ && cp -r --preserve=mode,timestamps $r/redo/. $V2/mysql/redo/ &&
        cp -r --preserve=mode,timestamps $r/binlog/. $V2/mysql/binlog/" "$wid"
bb_assert_rc 0 "restore in place"
bb_assert_contains "$OUT" "PostRestore: done" "restore output"
log=$(apps_writer_log "MariaDB btrfs")
bb_assert_contains "$log" \
        "PostRestore: $D1 restored and checked; removed stale pid file $D1.pid, stale socket $D1.sock" \
        "the writer's PostRestore"
bb_assert_contains "$log" "given back to uid $(id -u mysql) gid $(id -g mysql)" "the restored files given back to mysql"
[[ ! -e "$D1.pid" && ! -e "$D1.sock" ]] || bb_fail "the stale pid file or socket is still there"
[[ $(find "$D1" "$V2/mysql" ! -user mysql | wc -l) == 0 ]] || bb_fail "restored files not owned by mysql"
apps_maria_start "$D1"
check_server "$D1.client.cnf" $n "$T/load-btrfs"
bb_wait_until 15 "the writer connected to the restored server" \
        grep -q "connected to the MariaDB server (defaults file $D1.client.cnf) again" "$T/writer-MariaDB btrfs.log"
bb_run "$VSHADOW" "$V1" "$V2"
bb_assert_rc 0 "backup of the restored server"
rm -rf "$r"

# ---- cow: everything on one ext4 cow volume -------------------------------------------------

rm -rf "$T/load"
apps_load_start mariadb "$D2.ledger.cnf" 4 $ACCOUNTS
for ((i = 1; i <= N_COW; i++)); do
        n=$((N_BTRFS + i))
        bb_wait_until 30 "more commits before backup $n" apps_load_committed $((i * 150))
        r=$T/r$n
        mkdir -p "$r"
        backup $n "MariaDB cow" "cp -a \"\$VSHADOW_MOUNT_1/mysql/data\" $r/data" "$C"
        restored_start "$r"
        check_server "$r/client.cnf" $n "$T/load"
        restored_stop
        rm -rf "$r"
done
apps_load_stop
log=$(apps_writer_log "MariaDB cow")
bb_assert_eq $N_COW "$(grep -c "BACKUP STAGE END at Thaw: commits were blocked for" <<<"$log")" "Thaws of the cow writer"
bb_log "cow: commits blocked (s): $(sed -n 's/.*commits were blocked for \([0-9.]*\) s.*/\1/p' <<<"$log" | tr '\n' ' ')"
echo "PASS"
