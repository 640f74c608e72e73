#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# vss-writer-sqlite against the real vssd, vshadow and SQLite on btrfs loop volumes:
# registration and volumes (a set with one of its two volumes is vetoed with
# INCONSISTENTSNAPSHOT), the WAL truncated by PrepareForSnapshot, BEGIN IMMEDIATE held from
# Freeze to Thaw (another connection cannot commit meanwhile, and can at once after), the
# same for a rollback-journal database, a RETRYABLE veto naming the process that holds the
# lock past the freeze budget, the lock released within the deadline whatever dies (kill -9
# of vssd: within 1 s; vssd stopped: within freeze timeout + 1 s grace, exactly once; kill -9
# of the writer), registration again after vssd restarts, --no-reconnect, reopening a
# replaced database file, and bad command lines.
source "$(dirname "$0")/apps-lib.sh"
apps_init

apps_volume V1 v1 256
apps_volume V2 v2 256
mkdir -p "$V1/db" "$V2/db"
A=$V1/db/a.db B=$V2/db/b.db J=$V1/db/journal.db
"$LEDGER" init sqlite "$A" --accounts 20
"$LEDGER" init sqlite "$B" --accounts 20
"$LEDGER" init sqlite "$J" --accounts 20
sqlite3 "$A" 'PRAGMA journal_mode=WAL' >/dev/null
sqlite3 "$B" 'PRAGMA journal_mode=WAL' >/dev/null
[[ $(sqlite3 "$J" 'PRAGMA journal_mode') == delete ]] || bb_fail "journal.db should be in rollback-journal mode"

# try_write DB TIMEOUT_MS: one committed insert from another process; exit 1 when locked.
cat >"$T/try-write.py" <<'EOF'
import sqlite3, sys, time
db, timeout = sys.argv[1], int(sys.argv[2]) / 1000
try:
    c = sqlite3.connect(db, timeout=timeout, isolation_level=None)
    c.execute("BEGIN IMMEDIATE")
    c.execute("UPDATE accounts SET balance = balance WHERE id = 1")
    c.execute("COMMIT")
except sqlite3.OperationalError as e:
    print(e)
    sys.exit(1)
EOF
try_write() { python3 "$T/try-write.py" "$1" "$2"; }

bb_start_vssd

bb_log "bad command lines"
bb_run "$WRITER_SQLITE"
bb_assert_rc 2 "no --database"
bb_assert_contains "$OUT" "no database: give --database PATH" "no --database"
bb_run "$WRITER_SQLITE" --database /nonexistent-dir/x.db
bb_assert_rc 2 "a database in a directory that does not exist"
bb_assert_contains "$OUT" "database /nonexistent-dir/x.db" "missing directory"
bb_run "$WRITER_SQLITE" --database "$A" --database "$V1/db/../db/a.db"
bb_assert_rc 2 "the same database twice"
bb_assert_contains "$OUT" "is given twice" "the same database twice"
bb_run "$WRITER_SQLITE" --database "$A" --freeze-timeout 0
bb_assert_rc 2 "--freeze-timeout 0"

bb_log "registration: one writer for two databases on two volumes"
apps_start_writer "$WRITER_SQLITE" "SQLite Writer" --database "$A" --database "$B" --freeze-timeout 3000
bb_assert_writer "SQLite Writer" "[1] Stable" "No error"
bb_run "$VSSADMIN" list writers --json
bb_assert_contains "$OUT" "SQLite Writer" "list writers --json"

bb_log "a set with only one of the writer's volumes is vetoed with INCONSISTENTSNAPSHOT"
bb_run "$VSHADOW" "$V1"
bb_assert_hresult 0x800423F0 VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT "set of $V1 alone"
bb_assert_contains "$OUT" "SQLite Writer" "the veto names the writer"
bb_assert_writer "SQLite Writer" "[8] Failed" "Inconsistent shadow copy"

bb_log "PrepareForSnapshot truncates the WAL; the shadow copy holds the data"
# Another connection writes with its automatic checkpoint off: the WAL keeps its frames
# (the writer's own open connection keeps the WAL from being deleted at close).
sqlite3 "$A" 'PRAGMA wal_autocheckpoint=0; UPDATE accounts SET balance = balance + 5 WHERE id = 1;
              UPDATE accounts SET balance = balance - 5 WHERE id = 2;' >/dev/null
[[ $(stat -c %s "$A-wal") -gt 0 ]] || bb_fail "the WAL of a.db should hold frames before the backup"
bb_run "$VSHADOW" --exec="stat -c %s \"\$VSHADOW_MOUNT_1/db/a.db-wal\" >$T/shadow-wal-size;
        sqlite3 \"file:\$VSHADOW_MOUNT_1/db/a.db?immutable=1\" 'SELECT balance FROM accounts WHERE id = 1' >$T/shadow-balance" \
        "$V1" "$V2"
bb_assert_rc 0 "backup of both volumes"
bb_assert_eq 0 "$(cat "$T/shadow-wal-size")" "size of a.db-wal in the shadow copy (checkpointed, truncated)"
bb_assert_eq 10005 "$(cat "$T/shadow-balance")" "account 1 in the shadow copy's main database file"
bb_assert_writer "SQLite Writer" "[1] Stable" "No error"
bb_assert_contains "$(apps_writer_log "SQLite Writer")" "a.db: WAL checkpointed and truncated" "writer log"

bb_log "BEGIN IMMEDIATE is held from Freeze to Thaw: another connection cannot commit meanwhile"
# A second writer on V1 keeps the set in Freeze for 2 s; its Freeze hook, once ours holds
# the locks, tries to commit with a 300 ms busy timeout.
bb_start_writer "Slow" --volume "$V1"
bb_behave Slow Freeze "
        for i in \$(seq 50); do grep -q 'database(s) locked' '$T/writer-SQLite Writer.log' && break; sleep 0.1; done
        python3 '$T/try-write.py' '$A' 300 >'$T/frozen-write-a' 2>&1; echo \$? >>'$T/frozen-write-a'
        python3 '$T/try-write.py' '$J' 300 >'$T/frozen-write-j' 2>&1; echo \$? >>'$T/frozen-write-j'
        sleep 1"
kill -TERM "$(bb_writer_pid "SQLite Writer")"
bb_wait_pid_gone "$(bb_writer_pid "SQLite Writer")" 10 || bb_fail "the writer did not stop on SIGTERM"
apps_start_writer "$WRITER_SQLITE" "SQLite Writer" --database "$A" --database "$J" --freeze-timeout 3000
bb_run "$VSHADOW" "$V1"
bb_assert_rc 0 "backup held in Freeze by the slow writer"
bb_assert_eq $'database is locked\n1' "$(cat "$T/frozen-write-a")" "a commit to the WAL database during Freeze"
bb_assert_eq $'database is locked\n1' "$(cat "$T/frozen-write-j")" "a commit to the rollback-journal database during Freeze"
try_write "$A" 0 || bb_fail "a commit to a.db right after the set failed"
try_write "$J" 0 || bb_fail "a commit to journal.db right after the set failed"
log=$(apps_writer_log "SQLite Writer")
bb_assert_contains "$log" "Freeze: 2 database(s) locked (BEGIN IMMEDIATE)" "writer log at Freeze"
bb_assert_contains "$log" "a.db: unlocked at Thaw after" "writer log at Thaw"
bb_behave_clear

bb_log "a lock held by another process past the freeze budget: RETRYABLE veto naming it"
python3 - "$A" "$T/holder.ready" <<'EOF' &
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("BEGIN IMMEDIATE")
open(sys.argv[2], "w").close()
time.sleep(30)
EOF
holder=$!
BB_PIDS+=($holder)
bb_wait_until 10 "the other process holding a.db's write lock" test -e "$T/holder.ready"
t0=$(date +%s%N)
bb_run "$VSHADOW" "$V1"
t1=$(date +%s%N)
bb_assert_hresult 0x800423F3 VSS_E_WRITERERROR_RETRYABLE "backup while another process holds the lock"
bb_assert_contains "$OUT" "stayed locked by another connection (held by pid $holder python3)" "the veto names the holder"
bb_assert_writer "SQLite Writer" "[9] Failed" "Retryable error"
# The freeze budget (3000 ms) bounds the wait: vshadow returns within it plus slack for a
# loaded machine, long before the holder's 30 s are over.
(( (t1 - t0) / 1000000 < 9000 )) || bb_fail "the veto took $(( (t1 - t0) / 1000000 )) ms with a 3000 ms freeze timeout"
try_write "$J" 0 || bb_fail "journal.db stayed locked after the veto (the writer must release what it took)"
kill "$holder"
wait "$holder" 2>/dev/null || true
bb_run "$VSHADOW" "$V1"
bb_assert_rc 0 "the retry after the other process let go"

bb_log "kill -9 of vssd while frozen: the lock is off within 1 s, the writer registers again"
bb_start_writer "Slow2" --volume "$V1"
bb_behave Slow2 Freeze "touch '$T/slow2.frozen'; sleep 20"
"$VSHADOW" "$V1" >"$T/vshadow-killed.log" 2>&1 &
vshadow_pid=$!
bb_wait_until 10 "the set in Freeze" test -e "$T/slow2.frozen"
bb_wait_until 5 "the SQLite writer holding its locks" bash -c "! python3 '$T/try-write.py' '$A' 0"
bb_kill9_vssd
t0=$(date +%s%N)
bb_wait_until 3 "a.db writable after vssd died" try_write "$A" 0
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
(( ms <= 1000 )) || bb_fail "the lock came off $ms ms after vssd died (limit 1000 ms)"
bb_log "lock off $ms ms after kill -9 of vssd"
wait "$vshadow_pid" 2>/dev/null || true
bb_behave_clear
rm -f "$T/slow2.frozen"
kill "$(bb_writer_pid Slow2)" 2>/dev/null || true
bb_start_vssd
bb_wait_until 10 "the SQLite writer registered again after the restart" bb_writer_listed "SQLite Writer"
bb_assert_writer "SQLite Writer" "[1] Stable" "No error"
bb_run "$VSHADOW" "$V1"
bb_assert_rc 0 "backup after vssd's restart"

bb_log "vssd stopped while frozen: the lock is off within freeze timeout + 1 s, Abort once"
aborts_before=$(grep -c "a.db: unlocked at Abort" "$T/writer-SQLite Writer.log" || true)
bb_start_writer "Slow3" --volume "$V1"
bb_behave Slow3 Freeze "touch '$T/slow3.frozen'; sleep 1"
"$VSHADOW" "$V1" >"$T/vshadow-stopped.log" 2>&1 &
vshadow_pid=$!
bb_wait_until 10 "the set in Freeze" test -e "$T/slow3.frozen"
bb_wait_until 5 "the SQLite writer holding its locks" bash -c "! python3 '$T/try-write.py' '$A' 0"
frozen_at=$(date +%s%N)
kill -STOP "$BB_VSSD_PID"
bb_wait_until 8 "a.db writable while vssd is stopped" try_write "$A" 0
ms=$(( ($(date +%s%N) - frozen_at) / 1000000 ))
kill -CONT "$BB_VSSD_PID"
(( ms <= 3000 + 1000 + 500 )) || bb_fail "the lock came off $ms ms after Freeze (freeze timeout 3000 + grace 1000)"
(( ms >= 2500 )) || bb_fail "the lock came off only $ms ms after Freeze, before the freeze timeout"
bb_log "lock off $ms ms after the writer froze with vssd stopped"
wait "$vshadow_pid" 2>/dev/null || true
bb_wait_until 10 "vssd serving again" bb_socket_answers
sleep 1.5 # let vssd deliver the Abort it owes for that set (the check is that it changes nothing)
n=$(grep -c "a.db: unlocked at Abort" "$T/writer-SQLite Writer.log" || true)
bb_assert_eq 1 "$((n - aborts_before))" "new 'unlocked at Abort' lines after the deadline abort (Abort runs once)"
bb_behave_clear
rm -f "$T/slow3.frozen"
kill "$(bb_writer_pid Slow3)" 2>/dev/null || true
bb_wait_until 10 "Slow3 gone" bash -c "! '$VSSADMIN' list writers | grep -q Slow3"
bb_run "$VSHADOW" "$V1"
bb_assert_rc 0 "backup after vssd came back"

bb_log "kill -9 of the writer while frozen: the lock goes with it"
bb_start_writer "Slow4" --volume "$V1"
bb_behave Slow4 Freeze "touch '$T/slow4.frozen'; sleep 20"
"$VSHADOW" "$V1" >"$T/vshadow-writer-killed.log" 2>&1 &
vshadow_pid=$!
bb_wait_until 10 "the set in Freeze" test -e "$T/slow4.frozen"
bb_wait_until 5 "the SQLite writer holding its locks" bash -c "! python3 '$T/try-write.py' '$A' 0"
kill -KILL "$(bb_writer_pid "SQLite Writer")"
t0=$(date +%s%N)
bb_wait_until 2 "a.db writable after the writer died" try_write "$A" 0
bb_log "lock off $(( ($(date +%s%N) - t0) / 1000000 )) ms after kill -9 of the writer"
bb_behave_clear
kill "$(bb_writer_pid Slow4)" 2>/dev/null || true
wait "$vshadow_pid" 2>/dev/null || true

bb_log "--no-reconnect: the writer exits 1 when vssd goes away"
apps_start_writer "$WRITER_SQLITE" "SQLite NR" --database "$A" --no-reconnect
nr=$(bb_writer_pid "SQLite NR")
apps_start_writer "$WRITER_SQLITE" "SQLite Writer" --database "$A" --database "$J" --freeze-timeout 3000
bb_stop_vssd
bb_wait_pid_gone "$nr" 5 || bb_fail "the --no-reconnect writer did not exit when vssd stopped"
set +e; wait "$nr"; rc=$?; set -e
bb_assert_eq 1 "$rc" "exit status of the --no-reconnect writer"
bb_assert_contains "$(apps_writer_log "SQLite NR")" "lost the connection to vssd" "--no-reconnect writer's log"
kill -0 "$(bb_writer_pid "SQLite Writer")" || bb_fail "the default writer must outlive vssd"
bb_start_vssd
bb_wait_until 10 "the writer registered again" bb_writer_listed "SQLite Writer"

bb_log "the shipped config file, with a database added"
sed "s|^#database = /srv/app/app.db|database = $J|" "$SOURCE_ROOT/data/config/vss-writer-sqlite.conf" >"$T/sqlite.conf"
grep -q "^database = $J" "$T/sqlite.conf" || bb_fail "data/config/vss-writer-sqlite.conf has no '#database = /srv/app/app.db' line"
apps_start_writer "$WRITER_SQLITE" "SQLite Conf" --config "$T/sqlite.conf"
bb_assert_contains "$(apps_writer_log "SQLite Conf")" "volumes $V1/db" "the config file's database"
kill -TERM "$(bb_writer_pid "SQLite Conf")"
bb_wait_pid_gone "$(bb_writer_pid "SQLite Conf")" 10 || bb_fail "the config writer did not stop"

bb_log "a replaced database file is reopened"
cp "$J" "$T/j-copy.db"
sqlite3 "$T/j-copy.db" "UPDATE accounts SET balance = 777 WHERE id = 3" >/dev/null
mv "$T/j-copy.db" "$J.new" 2>/dev/null || cp "$T/j-copy.db" "$J.new"
mv "$J.new" "$J"
bb_wait_until 5 "the writer reopening journal.db" grep -q "connected to database $J again" "$T/writer-SQLite Writer.log"
bb_run "$VSHADOW" --exec="sqlite3 \"file:\$VSHADOW_MOUNT_1/db/journal.db?immutable=1\" 'SELECT balance FROM accounts WHERE id = 3' >$T/replaced" "$V1"
bb_assert_rc 0 "backup after the file was replaced"
bb_assert_eq 777 "$(cat "$T/replaced")" "the shadow copy holds the replacing file"

bb_log "another user's database, with only the capabilities of the writer's unit"
# apps_start_writer runs the writer inside data/systemd/vss-writer-sqlite.service's
# CapabilityBoundingSet=; this is what each capability there is for.
O=$V2/other N=$V2/other/n.db
mkdir -p "$O"
"$LEDGER" init sqlite "$N" --accounts 5
sqlite3 "$N" 'PRAGMA journal_mode=WAL' >/dev/null
rm -f "$N-wal" "$N-shm"
chown -R nobody:nogroup "$O"
chmod 0700 "$O"
chmod 0600 "$N"
apps_start_writer "$WRITER_SQLITE" "SQLite Other" --database "$N" --freeze-timeout 3000
bb_assert_writer "SQLite Other" "[1] Stable" "No error"
apps_backup other "true" "$V2"
bb_assert_writer "SQLite Other" "[1] Stable" "No error"
# SQLite as root gives a -wal or -shm it creates to the database's owner (CAP_CHOWN);
# root's files there would lock the application out of its own database.
for f in "$N-wal" "$N-shm"; do
        [[ ! -e $f || $(stat -c %U "$f") == nobody ]] || bb_fail "$f is owned by $(stat -c %U "$f"), not nobody"
done
# It opens the database as root (nobody cannot reach $T), then becomes nobody: the
# application's own process, and not dumpable, so its /proc/PID/fd is for CAP_SYS_PTRACE.
python3 -c 'import os, sqlite3, sys, time
c = sqlite3.connect(sys.argv[1]); c.execute("SELECT 1 FROM accounts").fetchall()
os.setgroups([]); os.setgid(65534); os.setuid(65534); time.sleep(300)' "$N" &
holder=$!
BB_PIDS+=("$holder")
bb_wait_until 10 "nobody's process having the database open" bash -c "[[ \$(stat -c %u /proc/$holder) == 65534 ]] && ls -l /proc/$holder/fd | grep -q '$N\$'"
# Which process has it open is in /proc/PID/fd of nobody's process (CAP_SYS_PTRACE).
bb_run "$VSHADOW" -r="$T/bc-other.json" --exec="touch $T/other-restored"
bb_assert_failed "restore in place while nobody's process has the database open"
bb_assert_contains "$OUT" "$N is open in process $holder (python3)" "the veto names nobody's process"
[[ ! -e "$T/other-restored" ]] || bb_fail "CMD ran although PreRestore vetoed"
kill "$holder"
bb_wait_pid_gone "$holder" 10 || bb_fail "nobody's process did not exit"
kill -TERM "$(bb_writer_pid "SQLite Other")"
bb_wait_pid_gone "$(bb_writer_pid "SQLite Other")" 10 || bb_fail "the writer for nobody's database did not stop"

echo "PASS"
