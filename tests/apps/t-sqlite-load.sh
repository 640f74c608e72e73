#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# SQLite backups under a write load, restored: a WAL database on a btrfs loop volume, then
# one on a copy-on-write volume (ext4, vssadmin create volume), each with vss-writer-sqlite
# and the ledger load of 4 clients (4 processes' worth of connections to one file).  While
# the load runs, APPS_BACKUPS (10) backups of each are taken through `vshadow -bc=FILE
# --exec=CMD` (CMD copies the database and its -wal out of the shadow copy); each one is
# restored through `vshadow -r=FILE --new-target --exec` into a new directory (PostRestore
# checks it against the backup metadata), then PRAGMA integrity_check and the ledger's
# checks run on it: every commit acknowledged before vshadow started, gapless per client,
# the total unchanged.  The metadata in the -bc document is the database's (journal mode,
# page size, page count).  Last, a restore in place: PreRestore vetoes while the load has
# the database open; with the load stopped the files are copied back, the live -wal is
# moved aside and dropped, and the database checks out.
source "$(dirname "$0")/apps-lib.sh"
apps_init
N=${APPS_BACKUPS:-10}

bb_start_vssd

# check_db DB BEFORE_US: the database's own check, then the ledger's.
check_db()
{
        local out
        out=$(sqlite3 "$1" 'PRAGMA integrity_check') || bb_fail "integrity_check of $1: $out"
        bb_assert_eq ok "$out" "PRAGMA integrity_check of $1"
        out=$("$LEDGER" verify sqlite "$1" --log "$T/load" --before "$2" 2>&1) || bb_fail "ledger verify of $1: $out"
        bb_log "restored database: integrity_check ok; $out"
}

# run_db LABEL VOLUME: the whole cycle on one volume.
run_db()
{
        local label=$1 V=$2 db i b r md t0
        mkdir -p "$V/app"
        db=$V/app/ledger.db
        "$LEDGER" init sqlite "$db"
        sqlite3 "$db" 'PRAGMA journal_mode=WAL' >/dev/null
        apps_start_writer "$WRITER_SQLITE" "SQLite $label" --database "$db" --freeze-timeout 10000
        apps_load_start sqlite "$db" 4
        for ((i = 1; i <= N; i++)); do
                b=$T/b-$label-$i r=$T/r-$label-$i
                mkdir -p "$b" "$r"
                bb_wait_until 60 "the load committing" apps_load_committed $(( $(apps_load_count) + 50 ))
                t0=$(date +%s%N)
                apps_backup "$label-$i" "cp \"\$VSHADOW_MOUNT_1/app/ledger.db\" \"\$VSHADOW_MOUNT_1/app/ledger.db-wal\" $b/" "$V"
                md=$(apps_json "$T/bc-$label-$i.json" "[c['backup_metadata'] for w in d['writers'] if w['name'] == 'SQLite $label' for c in w['components']][0]")
                echo "$md" >"$T/md.json"
                bb_assert_eq "wal 4096 $db" "$(apps_json "$T/md.json" '"%s %d %s" % (d["journal_mode"], d["page_size"], d["database"])')" \
                        "$label backup $i: metadata"
                bb_run "$VSHADOW" -r="$T/bc-$label-$i.json" --new-target="$V/app=$r" --exec="mv $b/ledger.db $b/ledger.db-wal $r/"
                bb_assert_rc 0 "$label backup $i: vshadow -r into $r"
                bb_assert_contains "$(apps_writer_log "SQLite $label")" "PostRestore: $r/ledger.db restored and checked" \
                        "$label backup $i: PostRestore's check"
                check_db "$r/ledger.db" "$(cat "$T/backup-$label-$i.before")"
                bb_assert_eq "$(apps_json "$T/md.json" 'd["page_count"]')" "$(sqlite3 "$r/ledger.db" 'PRAGMA page_count')" \
                        "$label backup $i: page count of the restored database"
                rm -rf "$b" "$r"
                bb_log "$label backup $i: backed up, restored and checked in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
        done
}

apps_volume VB litebtrfs 300
run_db btrfs "$VB"

bb_log "restore in place: PreRestore vetoes while the load has the database open"
db=$VB/app/ledger.db
bb_run "$VSHADOW" -r="$T/bc-btrfs-$N.json" --exec="touch $T/restored"
bb_assert_failed "restore in place while the database is open"
bb_assert_contains "$OUT" "SQLite btrfs" "the veto names the writer"
bb_assert_contains "$OUT" "$db is open in process $APPS_LOAD_PID (ledger)" "the veto names the process"
bb_assert_writer "SQLite btrfs" "[13] Failed" "Retryable error"
[[ ! -e "$T/restored" ]] || bb_fail "CMD ran although PreRestore vetoed"
apps_load_stop
check_db "$db" "$(apps_now_us)"
# The backup that was taken last, again, into place: keep a copy, then restore it.
mkdir -p "$T/last"
apps_backup last "cp \"\$VSHADOW_MOUNT_1/app/ledger.db\" \"\$VSHADOW_MOUNT_1/app/ledger.db-wal\" $T/last/" "$VB"
sqlite3 "$db" "PRAGMA wal_autocheckpoint=0; UPDATE accounts SET balance = balance + 1 WHERE id = 1;
               UPDATE accounts SET balance = balance - 1 WHERE id = 2; INSERT INTO ledger VALUES (999, 1, 2, 1, 1, 0, 'after');" \
        >/dev/null
[[ $(stat -c %s "$db-wal") -gt 0 ]] || bb_fail "the live WAL should hold the commit made after the backup"
bb_run "$VSHADOW" -r="$T/bc-last.json" --exec="cp $T/last/ledger.db $T/last/ledger.db-wal $VB/app/"
bb_assert_rc 0 "restore in place"
[[ ! -e "$db-wal.vss-pre-restore" ]] || bb_fail "the moved-aside WAL is still there"
check_db "$db" "$(cat "$T/backup-last.before")"
bb_assert_eq 0 "$(sqlite3 "$db" 'SELECT COUNT(*) FROM ledger WHERE client = 999')" \
        "the commit made after the backup (in the live WAL, moved aside) is not in the restored database"

apps_cow_volume VC litecow 300 ext4
run_db cow "$VC"
apps_load_stop
echo "PASS"
