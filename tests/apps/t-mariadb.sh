#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# vss-writer-mariadb against the real vssd, vshadow and MariaDB (Debian's mariadb-server) on
# btrfs loop volumes, the datadir on one and the InnoDB redo log and binary log on the other:
# bad command lines, the volumes asked from the server (a set with one of the two is vetoed
# with INCONSISTENTSNAPSHOT), the backup metadata, BLOCK_COMMIT held from Freeze to Thaw (a
# commit waits and completes after Thaw), RETRYABLE vetoes naming the blocker for a lock held
# past the budget at Freeze (a long MyISAM write blocks BLOCK_DDL) and at PrepareForSnapshot
# (LOCK TABLES ... WRITE blocks START), each leaving the server with no backup stage, commits
# going through again within freeze timeout + grace after kill -9 of vssd, with vssd stopped
# (libvss's deadline, Abort once) and after kill -9 of the writer, and the writer reconnecting
# to vssd and to the server after each restarts.
source "$(dirname "$0")/apps-lib.sh"
source "$(dirname "$0")/maria-lib.sh"
apps_init

FT=3000         # the writer's freeze timeout
GRACE=1000      # VSS_WRITER_FREEZE_GRACE_MS
W="MariaDB Writer"

apps_volume V1 m1 512
apps_volume V2 m2 256
D=$V1/mysql/data
maria_dirs "$V2/mysql" "$V2/mysql/redo" "$V2/mysql/binlog"
maria_setup "$D" "innodb_log_group_home_dir=$V2/mysql/redo
log-bin=$V2/mysql/binlog/binlog"
maria_sql "$D" "CREATE TABLE ledger.notes (id INT PRIMARY KEY, note TEXT) ENGINE=MyISAM;
                INSERT INTO ledger.notes VALUES (1, 'one')"
bb_start_vssd

bb_log "bad command lines"
bb_run "$WRITER_MARIADB"
bb_assert_rc 2 "no --defaults-file"
bb_assert_contains "$OUT" "no defaults file: give --defaults-file FILE" "no --defaults-file"
bb_run "$WRITER_MARIADB" --defaults-file /nonexistent/my.cnf
bb_assert_rc 2 "a defaults file that does not exist"
bb_assert_contains "$OUT" "cannot read defaults file /nonexistent/my.cnf" "missing defaults file"
bb_run "$WRITER_MARIADB" --defaults-file "$D.client.cnf" --freeze-timeout 0
bb_assert_rc 2 "--freeze-timeout 0"
printf '[writer]\ndefaults_file = /nonexistent/my.cnf\n' >"$T/bad.conf"
bb_run "$WRITER_MARIADB" --config "$T/bad.conf"
bb_assert_rc 2 "a config file naming a defaults file that does not exist"
bb_assert_contains "$OUT" "$T/bad.conf: defaults-file: cannot read defaults file /nonexistent/my.cnf" "bad config"
bb_run "$WRITER_MARIADB" --help
bb_assert_rc 0 "--help"
bb_assert_contains "$OUT" "  --defaults-file FILE" "--help lists --defaults-file"

bb_log "registration: the volumes come from the server"
apps_start_writer "$WRITER_MARIADB" "$W" --defaults-file "$D.client.cnf" --freeze-timeout $FT --verbose
bb_assert_writer "$W" "[1] Stable" "No error"
bb_assert_contains "$(apps_writer_log "$W")" "volumes $D, $V2/mysql/redo, $V2/mysql/binlog" "the writer's volumes"

bb_log "a set with only the datadir's volume is vetoed with INCONSISTENTSNAPSHOT"
bb_run "$VSHADOW" "$V1"
bb_assert_hresult 0x800423F0 VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT "set of $V1 alone"
bb_assert_contains "$OUT" "$W" "the veto names the writer"
bb_assert_writer "$W" "[8] Failed" "Inconsistent shadow copy"

bb_log "a backup of both volumes: the stages in order, the metadata read under BLOCK_COMMIT"
pos=$(maria_sql "$D" "SHOW MASTER STATUS" | cut -f1,2)
bc=()
maria_has_bc && bc=(-bc="$T/bc-1.json")
bb_run "$VSHADOW" "${bc[@]}" --exec="ls \"\$VSHADOW_MOUNT_1/mysql/data/ledger\" >$T/shadow-ls;
        ls \"\$VSHADOW_MOUNT_2/mysql/binlog\" \"\$VSHADOW_MOUNT_2/mysql/redo\" >>$T/shadow-ls" "$V1" "$V2"
bb_assert_rc 0 "backup of both volumes"
bb_assert_writer "$W" "[1] Stable" "No error"
ls=$(cat "$T/shadow-ls")
for f in accounts.ibd ledger.ibd notes.MYD "${pos%%$'\t'*}" binlog.index ib_logfile0; do
        bb_assert_contains "$ls" "$f" "the shadow copies hold $f"
done
log=$(apps_writer_log "$W")
bb_assert_contains "$log" "PrepareForSnapshot: BACKUP STAGE START, FLUSH in" "writer log at PrepareForSnapshot"
bb_assert_contains "$log" "Freeze: BLOCK_COMMIT held (BLOCK_DDL" "writer log at Freeze"
bb_assert_contains "$log" "BACKUP STAGE END at Thaw: commits were blocked for" "writer log at Thaw"
# The metadata: what the backup components document holds, else what the writer logged.
if maria_has_bc; then
        apps_json "$T/bc-1.json" 'json.dumps([c for w in d["writers"] if w["name"] == "'"$W"'"
                                              for c in w["components"]][0]["backup_metadata"])' |
                python3 -c 'import json,sys; print(json.loads(sys.stdin.read()))' >"$T/md-1.json"
else
        sed -n 's/.* metadata \({.*}\)$/\1/p' "$T/writer-$W.log" | tail -n 1 >"$T/md-1.json"
fi
md=$(cat "$T/md-1.json")
[[ -n "$md" ]] || bb_fail "no backup metadata for the writer's component"
bb_assert_eq "${pos%%$'\t'*}" "$(apps_json "$T/md-1.json" 'd["binlog_file"]')" "metadata: binlog file"
bb_assert_eq "${pos##*$'\t'}" "$(apps_json "$T/md-1.json" 'd["binlog_position"]')" "metadata: binlog position"
bb_assert_eq "$(maria_sql "$D" 'SELECT @@gtid_binlog_pos')" "$(apps_json "$T/md-1.json" 'd["gtid_binlog_pos"]')" \
        "metadata: gtid_binlog_pos"
bb_assert_eq "$(maria_sql "$D" 'SELECT @@version')" "$(apps_json "$T/md-1.json" 'd["version"]')" "metadata: version"
bb_assert_eq "$D" "$(apps_json "$T/md-1.json" 'd["datadir"]')" "metadata: datadir"
bb_assert_eq "$V2/mysql/redo" "$(apps_json "$T/md-1.json" 'd["innodb_log_group_home_dir"]')" "metadata: redo dir"
bb_assert_eq "$V2/mysql/binlog" "$(apps_json "$T/md-1.json" 'd["binlog_dir"]')" "metadata: binlog dir"

bb_log "BLOCK_COMMIT is held from Freeze to Thaw: a commit waits, and completes after Thaw"
# A second writer on V1 holds the set in Freeze while, once ours holds BLOCK_COMMIT, a
# commit from another session waits for the backup lock.
held_before=$(maria_log_count "$W" "BLOCK_COMMIT held")
bb_start_writer "Slow" --volume "$V1"
bb_behave Slow Freeze "
        for i in \$(seq 50); do
                [ \$(grep -c 'BLOCK_COMMIT held' '$T/writer-$W.log') -gt $held_before ] && break; sleep 0.05
        done
        ( mariadb --defaults-file='$D.client.cnf' -e \"INSERT INTO ledger.probe (what) VALUES ('frozen')\";
          date +%s%N >'$T/frozen-commit.done' ) &
        for i in \$(seq 40); do
                mariadb --defaults-file='$D.client.cnf' -N -e \"SELECT STATE FROM information_schema.PROCESSLIST
                        WHERE INFO LIKE 'INSERT INTO ledger.probe%'\" | grep -q 'Waiting for backup lock' &&
                        { echo waiting >'$T/frozen-commit.state'; break; }
                sleep 0.05
        done
        sleep 0.5
        [ -e '$T/frozen-commit.done' ] && echo 'committed during Freeze' >>'$T/frozen-commit.state'
        date +%s%N >'$T/frozen-hook.returned'"
bb_run "$VSHADOW" "$V1" "$V2"
bb_assert_rc 0 "backup held in Freeze by the slow writer"
bb_assert_eq "waiting" "$(cat "$T/frozen-commit.state" 2>/dev/null)" "a commit during Freeze waits for the backup lock"
bb_wait_until 5 "the commit after Thaw" test -e "$T/frozen-commit.done"
(( $(cat "$T/frozen-commit.done") > $(cat "$T/frozen-hook.returned") )) ||
        bb_fail "the commit completed before the slow writer's Freeze returned"
bb_assert_eq 1 "$(maria_sql "$D" "SELECT COUNT(*) FROM ledger.probe WHERE what = 'frozen'")" "the commit after Thaw"
bb_behave_clear
kill "$(bb_writer_pid Slow)"
bb_wait_until 10 "Slow gone" bash -c "! '$VSSADMIN' list writers | grep -q \"'Slow'\""

bb_log "a long MyISAM write past the freeze budget blocks BLOCK_DDL: RETRYABLE veto naming it"
maria_sql "$D" "UPDATE ledger.notes SET note = SLEEP(30)" >/dev/null 2>&1 &
blocker=$!
BB_PIDS+=($blocker)
bb_wait_until 10 "the MyISAM update running" bash -c \
        "[ \$(mariadb --defaults-file='$D.client.cnf' -N -e \"SELECT COUNT(*) FROM information_schema.PROCESSLIST
          WHERE INFO LIKE 'UPDATE ledger.notes%' AND STATE = 'User sleep'\") = 1 ]"
blocker_id=$(maria_sql "$D" "SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE 'UPDATE ledger.notes%'")
t0=$(date +%s%N)
bb_run "$VSHADOW" "$V1" "$V2"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
bb_assert_hresult 0x800423F3 VSS_E_WRITERERROR_RETRYABLE "backup while a MyISAM write holds its lock"
bb_assert_contains "$OUT" "BACKUP STAGE BLOCK_DDL could not have its lock within" "the veto names the stage"
bb_assert_contains "$OUT" "blocked by connection $blocker_id (user root, running for" "the veto names the blocker"
bb_assert_contains "$OUT" "UPDATE ledger.notes SET note = SLEEP(30)" "the veto names the blocking query"
bb_assert_contains "$OUT" "MDL_BACKUP_DML" "the veto names the conflicting lock"
bb_assert_writer "$W" "[9] Failed" "Retryable error"
(( ms < FT + 3000 )) || bb_fail "the veto took $ms ms with a $FT ms freeze timeout"
bb_log "veto after $ms ms"
maria_no_backup_stage "$D" || bb_fail "the veto left a backup stage on the server"
maria_sql "$D" "KILL QUERY $blocker_id"
bb_wait_pid_gone "$blocker" 10 || bb_fail "the MyISAM update did not end after KILL QUERY"
bb_run "$VSHADOW" "$V1" "$V2"
bb_assert_rc 0 "the retry after the write ended"

bb_log "LOCK TABLES ... WRITE past the budget blocks BACKUP STAGE START: RETRYABLE veto at PrepareForSnapshot"
mkfifo "$T/lock.in"
mariadb --defaults-file="$D.client.cnf" -N --unbuffered <"$T/lock.in" >"$T/lock.out" 2>&1 &
BB_PIDS+=($!)
exec 7>"$T/lock.in"
echo "LOCK TABLES ledger.accounts WRITE; SELECT CONCAT('locked ', CONNECTION_ID());" >&7
bb_wait_until 10 "the table lock taken" grep -q '^locked ' "$T/lock.out"
locker_id=$(sed -n 's/^locked //p' "$T/lock.out")
t0=$(date +%s%N)
bb_run "$VSHADOW" "$V1" "$V2"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
bb_assert_hresult 0x800423F3 VSS_E_WRITERERROR_RETRYABLE "backup while LOCK TABLES WRITE is held"
bb_assert_contains "$OUT" "BACKUP STAGE START could not have its lock within $FT ms" "the veto names the stage"
bb_assert_contains "$OUT" "blocked by connection $locker_id (user root, Sleep for" "the veto names the idle holder"
bb_assert_contains "$OUT" "table locks on ledger.accounts" "the veto names the locked table"
bb_assert_writer "$W" "[8] Failed" "Retryable error"
(( ms < FT + 3000 )) || bb_fail "the veto took $ms ms with a $FT ms freeze timeout"
stuck=$(maria_sql "$D" "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE STATE = 'Waiting for backup lock'")
bb_assert_eq 0 "$stuck" "statements still waiting for a backup lock after the veto"
echo "UNLOCK TABLES;" >&7
exec 7>&-
maria_no_backup_stage "$D" || bb_fail "the veto left a backup stage on the server"
bb_run "$VSHADOW" "$V1" "$V2"
bb_assert_rc 0 "the retry after UNLOCK TABLES"

# hold_block_commit NAME HOOK: a writer NAME on V1 whose Freeze hook runs HOOK keeps the set
# in Freeze; returns once ours holds BLOCK_COMMIT and a probe commit waits for it.
hold_block_commit()
{
        local name=$1 hook=$2 before
        before=$(maria_log_count "$W" "BLOCK_COMMIT held")
        bb_start_writer "$name" --volume "$V1"
        bb_behave "$name" Freeze "$hook"
        "$VSHADOW" "$V1" "$V2" >"$T/vshadow-$name.log" 2>&1 &
        HOLD_VSHADOW=$!
        bb_wait_until 10 "the MariaDB writer holding BLOCK_COMMIT" \
                bash -c "[ \$(grep -c 'BLOCK_COMMIT held' '$T/writer-$W.log') -gt $before ]"
        HELD_AT=$(date +%s%N)
        maria_probe "$D" "$name"
        bb_wait_until 5 "a commit waiting for the backup lock" maria_probe_waiting "$D"
}

bb_log "kill -9 of vssd while BLOCK_COMMIT is held: commits go through within freeze timeout + grace"
hold_block_commit Slow2 "touch '$T/slow2.frozen'; sleep 20"
t0=$(date +%s%N)
bb_kill9_vssd
bb_wait_until $(( (FT + GRACE) / 1000 + 2 )) "the commit after vssd died" test -e "$T/probe-Slow2.done"
maria_probe_ok Slow2
ms=$(maria_probe_ms Slow2 "$t0")
(( ms <= FT + GRACE )) || bb_fail "commits waited $ms ms after vssd died (limit $FT + $GRACE ms)"
bb_log "commits through $ms ms after kill -9 of vssd"
echo "vssd-kill9 $ms" >>"$T/measured"
wait "$HOLD_VSHADOW" 2>/dev/null || true
maria_no_backup_stage "$D" || bb_fail "a backup stage is left after vssd died"
bb_behave_clear
kill "$(bb_writer_pid Slow2)" 2>/dev/null || true
bb_start_vssd
bb_wait_until 10 "the MariaDB writer registered again after vssd's restart" bb_writer_listed "$W"
bb_assert_writer "$W" "[1] Stable" "No error"
bb_run "$VSHADOW" "$V1" "$V2"
bb_assert_rc 0 "backup after vssd's restart"

bb_log "vssd stopped while BLOCK_COMMIT is held: libvss's deadline ends it (freeze timeout + grace), Abort once"
aborts_before=$(maria_log_count "$W" "BACKUP STAGE END at Abort")
hold_block_commit Slow3 "touch '$T/slow3.frozen'; sleep 1"
kill -STOP "$BB_VSSD_PID"
bb_wait_until $(( (FT + GRACE) / 1000 + 3 )) "the commit with vssd stopped" test -e "$T/probe-Slow3.done"
ms=$(maria_probe_ms Slow3 "$HELD_AT")
kill -CONT "$BB_VSSD_PID"
maria_probe_ok Slow3
(( ms <= FT + GRACE + 500 )) || bb_fail "commits waited $ms ms after the freeze (limit $FT + $GRACE ms)"
(( ms >= FT - 500 )) || bb_fail "commits went through $ms ms after the freeze, before the freeze timeout"
bb_log "commits through $ms ms after BLOCK_COMMIT with vssd stopped"
echo "vssd-stopped $ms" >>"$T/measured"
bb_wait_pid_gone "$HOLD_VSHADOW" 30 || bb_fail "vshadow did not end after vssd came back"
bb_wait_until 10 "vssd serving again" bb_socket_answers
bb_assert_eq 1 "$(( $(maria_log_count "$W" "BACKUP STAGE END at Abort") - aborts_before ))" \
        "BACKUP STAGE END at Abort lines for the set (Abort runs once)"
bb_behave_clear
kill "$(bb_writer_pid Slow3)" 2>/dev/null || true
bb_wait_until 10 "Slow3 gone" bash -c "! '$VSSADMIN' list writers | grep -q \"'Slow3'\""
bb_run "$VSHADOW" "$V1" "$V2"
bb_assert_rc 0 "backup after vssd came back"
bb_assert_eq 1 "$(( $(maria_log_count "$W" "BACKUP STAGE END at Abort") - aborts_before ))" \
        "BACKUP STAGE END at Abort lines after the next set (Abort ran once)"

bb_log "the writer's session killed while it holds BLOCK_COMMIT: Thaw fails with RETRYABLE"
hold_block_commit Slow5 "touch '$T/slow5.frozen'
        for i in \$(seq 25); do [ -e '$T/slow5.go' ] && break; sleep 0.1; done"
sid=$(maria_sql "$D" "SELECT THREAD_ID FROM information_schema.METADATA_LOCK_INFO
                      WHERE LOCK_MODE = 'MDL_BACKUP_WAIT_COMMIT'")
[[ -n "$sid" ]] || bb_fail "no session holds MDL_BACKUP_WAIT_COMMIT while the writer is frozen"
maria_sql "$D" "KILL $sid"
bb_wait_until 2 "the commit after the writer's session was killed" test -e "$T/probe-Slow5.done"
touch "$T/slow5.go"
set +e; wait "$HOLD_VSHADOW"; rc=$?; set -e
OUT=$(cat "$T/vshadow-Slow5.log")
(( rc != 0 )) || bb_fail "vshadow succeeded although the writer lost BLOCK_COMMIT before Thaw: $OUT"
bb_assert_contains "$OUT" "the session holding BACKUP STAGE BLOCK_COMMIT was lost before Thaw" "vshadow names the failure"
bb_assert_writer "$W" "[10] Failed" "Retryable error"
bb_behave_clear
kill "$(bb_writer_pid Slow5)" 2>/dev/null || true
bb_wait_until 10 "Slow5 gone" bash -c "! '$VSSADMIN' list writers | grep -q \"'Slow5'\""
bb_run "$VSHADOW" "$V1" "$V2"
bb_assert_rc 0 "backup after the writer's session came back"

bb_log "kill -9 of the writer while BLOCK_COMMIT is held: the server ends the stage with the session"
hold_block_commit Slow4 "touch '$T/slow4.frozen'; sleep 20"
t0=$(date +%s%N)
kill -KILL "$(bb_writer_pid "$W")"
bb_wait_until $(( (FT + GRACE) / 1000 + 2 )) "the commit after the writer died" test -e "$T/probe-Slow4.done"
maria_probe_ok Slow4
ms=$(maria_probe_ms Slow4 "$t0")
(( ms <= FT + GRACE )) || bb_fail "commits waited $ms ms after the writer died (limit $FT + $GRACE ms)"
bb_log "commits through $ms ms after kill -9 of the writer"
echo "writer-kill9 $ms" >>"$T/measured"
maria_no_backup_stage "$D" || bb_fail "a backup stage is left after the writer died"
bb_behave_clear
kill "$(bb_writer_pid Slow4)" 2>/dev/null || true
wait "$HOLD_VSHADOW" 2>/dev/null || true
# Started again from a config file (the keys are the options' names).
printf '[writer]\ndefaults_file = %s\nfreeze_timeout = %s\nverbose = yes\n' "$D.client.cnf" $FT >"$T/writer.conf"
apps_start_writer "$WRITER_MARIADB" "$W" --config "$T/writer.conf"
bb_assert_writer "$W" "[1] Stable" "No error"

bb_log "the writer reconnects to a restarted server"
apps_maria_stop "$D"
bb_wait_until 10 "the writer noticing the server is gone" \
        grep -q "lost the connection to the MariaDB server" "$T/writer-$W.log"
bb_log "a backup while the server is stopped: its files are at rest, no lock to take"
bb_run "$VSHADOW" "$V1" "$V2"
bb_assert_rc 0 "backup of the stopped server"
bb_assert_contains "$(apps_writer_log "$W")" "Freeze: no server runs on $D" "the writer's Freeze with the server stopped"
md=$(sed -n 's/.* metadata \({.*}\)$/\1/p' "$T/writer-$W.log" | tail -n 1)
bb_assert_contains "$md" '"server_running":false' "metadata of a stopped server's backup"
apps_maria_start "$D"
bb_wait_until 15 "the writer connected to the server again" \
        grep -q "connected to the MariaDB server (defaults file $D.client.cnf) again" "$T/writer-$W.log"
bb_run "$VSHADOW" "$V1" "$V2"
bb_assert_rc 0 "backup after the server's restart"

bb_log "measured: $(tr '\n' ' ' <"$T/measured")"
echo "PASS"
