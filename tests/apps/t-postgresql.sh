#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# vss-writer-postgresql against a real PostgreSQL 15 cluster spread over three btrfs loop
# volumes (data directory; pg_wal on a second volume through initdb --waldir; the ledger
# table in a tablespace on a third), with the real vssd and vshadow:
#   - the writer declares all three: a set with only the data volume, or without the
#     tablespace's, is vetoed with INCONSISTENTSNAPSHOT; a set with all of them is taken
#     under a write load, with CHECKPOINT at PrepareForSnapshot and the component's backup
#     metadata (system identifier, timeline, checkpoint LSN, data, WAL, tablespace map) in
#     the backup components document;
#   - restore to new locations through vshadow -r --new-target: PostRestore removes the
#     stale postmaster.pid and points pg_wal and the tablespace link at the new places; the
#     restored cluster starts through crash recovery, passes pg_amcheck and holds every
#     commit acknowledged before the backup; without a new target for the WAL it vetoes;
#   - restore in place: PreRestore vetoes while the server runs (and CMD is not run); with
#     the server stopped the files are copied back, and the cluster starts and checks out;
#   - the writer reconnects after a server restart, waits for a server that is not up yet,
#     and registers again with new volumes when a tablespace is added.
source "$(dirname "$0")/apps-lib.sh"
apps_init

apps_volume V1 data 400
apps_volume V2 wal 300
apps_volume V3 ts 300
SOCK=$T/pgsock
mkdir -p "$V2/wal" "$V3/ts"
chown postgres: "$V2/wal" "$V3/ts"
apps_pg_init "$V1/data" --waldir="$V2/wal/pg_wal"
apps_pg_start "$V1/data" "$SOCK"
apps_psql "$SOCK" "CREATE DATABASE ledger" >/dev/null
apps_psql "$SOCK" "CREATE TABLESPACE ts1 LOCATION '$V3/ts'" >/dev/null
CI=$(apps_pg_conninfo "$SOCK" ledger)
"$LEDGER" init pg "$CI"
apps_psql "$SOCK" "ALTER TABLE ledger SET TABLESPACE ts1" ledger >/dev/null
ts_oid=$(apps_psql "$SOCK" "SELECT oid FROM pg_tablespace WHERE spcname = 'ts1'")

bb_start_vssd
apps_start_writer "$WRITER_POSTGRESQL" "PostgreSQL Writer" --conninfo "$CI" --freeze-timeout 10000
bb_assert_writer "PostgreSQL Writer" "[1] Stable" "No error"
log=$(apps_writer_log "PostgreSQL Writer")
bb_assert_contains "$log" "volumes $V1/data, $V2/wal/pg_wal, $V3/ts" "the writer's volumes"

bb_log "a set lacking the WAL's or the tablespace's volume is vetoed with INCONSISTENTSNAPSHOT"
for vols in "$V1" "$V1 $V2" "$V1 $V3"; do
        # shellcheck disable=SC2086
        bb_run "$VSHADOW" $vols
        bb_assert_hresult 0x800423F0 VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT "set of $vols"
        bb_assert_writer "PostgreSQL Writer" "[8] Failed" "Inconsistent shadow copy"
done

bb_log "a backup of all three volumes under load: CHECKPOINT and the backup metadata"
apps_load_start pg "$CI" 3
bb_wait_until 30 "100 commits" apps_load_committed 100
ckpt_before=$(apps_psql "$SOCK" "SELECT checkpoints_req FROM pg_stat_bgwriter")
lsn_before=$(apps_psql "$SOCK" "SELECT checkpoint_lsn FROM pg_control_checkpoint()")
B1=$T/b1
mkdir -p "$B1"
copy_out="cp -a \"\$VSHADOW_MOUNT_1/data\" \"\$B/data\" && cp -a \"\$VSHADOW_MOUNT_2/wal\" \"\$B/wal\" &&
          cp -a \"\$VSHADOW_MOUNT_3/ts\" \"\$B/ts\""
apps_backup 1 "B=$B1; $copy_out" "$V1" "$V2" "$V3"
bb_wait_until 30 "100 more commits after the backup" apps_load_committed $(( $(apps_load_count) + 100 ))
ckpt_after=$(apps_psql "$SOCK" "SELECT checkpoints_req FROM pg_stat_bgwriter")
(( ckpt_after > ckpt_before )) || bb_fail "no CHECKPOINT was requested during the backup ($ckpt_before -> $ckpt_after)"
md=$(apps_json "$T/bc-1.json" '[c["backup_metadata"] for w in d["writers"] if w["name"] == "PostgreSQL Writer" for c in w["components"] if c["name"] == "cluster"][0]')
echo "$md" >"$T/md-1.json"
sysid=$(apps_psql "$SOCK" "SELECT system_identifier FROM pg_control_system()")
bb_assert_eq "$sysid" "$(apps_json "$T/md-1.json" 'd["system_identifier"]')" "metadata: system identifier"
bb_assert_eq 1 "$(apps_json "$T/md-1.json" 'd["timeline_id"]')" "metadata: timeline"
bb_assert_eq "$V1/data" "$(apps_json "$T/md-1.json" 'd["data_directory"]')" "metadata: data directory"
bb_assert_eq "$V2/wal/pg_wal" "$(apps_json "$T/md-1.json" 'd["wal_directory"]')" "metadata: WAL directory"
bb_assert_eq True "$(apps_json "$T/md-1.json" 'd["wal_is_symlink"]')" "metadata: pg_wal is a symlink"
bb_assert_eq "$ts_oid ts1 $V3/ts" "$(apps_json "$T/md-1.json" '" ".join(str(t[k]) for t in d["tablespaces"] for k in ("oid", "name", "location"))')" \
        "metadata: tablespace map"
bb_assert_eq 15 "$(apps_json "$T/md-1.json" 'd["server_version_num"] // 10000')" "metadata: server version"
lsn_md=$(apps_json "$T/md-1.json" 'd["checkpoint_lsn"]')
bb_assert_eq t "$(apps_psql "$SOCK" "SELECT '$lsn_md'::pg_lsn > '$lsn_before'::pg_lsn")" \
        "metadata: the checkpoint LSN $lsn_md is the backup's own checkpoint (after $lsn_before)"
bb_assert_contains "$(apps_json "$T/md-1.json" 'd["wal_insert_lsn_at_freeze"]')" "/" "metadata: WAL position at Freeze"
bb_assert_eq stop_restore_start "$(apps_json "$T/bc-1.json" '[w["restore_method"]["method"] for w in d["writers"] if w["name"] == "PostgreSQL Writer"][0]')" \
        "restore method"
[[ -f "$B1/data/postmaster.pid" ]] || bb_fail "the shadow copy should hold the running server's postmaster.pid"

bb_log "restore to new locations through vshadow -r --new-target, into a fresh server"
R1=$T/r1
mkdir -p "$R1"
bb_run "$VSHADOW" -r="$T/bc-1.json" --new-target="$V1/data=$R1/data" --new-target="$V2/wal=$R1/wal" \
        --new-target="$V3/ts=$R1/ts" --exec="cp -a $B1/data $R1/data && cp -a $B1/wal $R1/wal && cp -a $B1/ts $R1/ts"
bb_assert_rc 0 "vshadow -r to new locations"
[[ ! -e "$R1/data/postmaster.pid" ]] || bb_fail "PostRestore left the stale postmaster.pid"
bb_assert_eq "$R1/wal/pg_wal" "$(readlink "$R1/data/pg_wal")" "pg_wal of the restored cluster"
bb_assert_eq "$R1/ts" "$(readlink "$R1/data/pg_tblspc/$ts_oid")" "tablespace link of the restored cluster"
bb_assert_contains "$(apps_writer_log "PostgreSQL Writer")" "PostRestore: $R1/data is ready (cluster $sysid" "writer log"
PG_PORT=55433
apps_pg_start "$R1/data" "$T/r1sock"
apps_pg_check "$T/r1sock" ledger "$T/load" "$(cat "$T/backup-1.before")"
grep -q "redo starts at" "$R1/data.log" ||
        bb_fail "the restored cluster did not go through crash recovery: $(cat "$R1/data.log")"
apps_pg_stop "$R1/data"
PG_PORT=55432

bb_log "a restore to a new data directory that would keep the original WAL is vetoed at PostRestore"
R2=$T/r2
mkdir -p "$R2"
bb_run "$VSHADOW" -r="$T/bc-1.json" --new-target="$V1/data=$R2/data" --new-target="$V3/ts=$R2/ts" \
        --exec="cp -a $B1/data $R2/data && cp -a $B1/ts $R2/ts"
bb_assert_failed "restore without a new target for the WAL"
bb_assert_contains "$OUT" "PostgreSQL Writer" "the veto names the writer"
bb_assert_contains "$OUT" "stays at $V2/wal/pg_wal" "the veto says why"
bb_assert_writer "PostgreSQL Writer" "[14] Failed" "Non-retryable error"
[[ "$(readlink "$R2/data/pg_wal")" == "$V2/wal/pg_wal" ]] || bb_fail "the vetoed restore should not have relinked pg_wal"

bb_log "the writer reconnects after a server restart"
apps_load_stop
apps_as_postgres "$PG_BIN/pg_ctl" -D "$V1/data" -m fast -w restart >>"$T/pg-ctl.log" 2>&1 || bb_fail "pg_ctl restart"
bb_wait_until 15 "the writer connected again" grep -q "connected to the PostgreSQL server again" \
        "$T/writer-PostgreSQL Writer.log"
bb_run "$VSHADOW" "$V1" "$V2" "$V3"
bb_assert_rc 0 "backup after the server restarted"

bb_log "the writer registers again after vssd restarts"
bb_stop_vssd
bb_start_vssd
bb_wait_until 15 "the writer registered again" bb_writer_listed "PostgreSQL Writer"
bb_assert_writer "PostgreSQL Writer" "[1] Stable" "No error"

bb_log "restore in place: PreRestore vetoes while the server runs"
restore_in_place="find $V1/data -mindepth 1 -delete && cp -a $B1/data/. $V1/data/ &&
        rm -rf $V2/wal/pg_wal && cp -a $B1/wal/pg_wal $V2/wal/ &&
        find $V3/ts -mindepth 1 -delete && cp -a $B1/ts/. $V3/ts/ && touch $T/restored-in-place"
bb_run "$VSHADOW" -r="$T/bc-1.json" --exec="$restore_in_place"
bb_assert_failed "restore in place while the server runs"
bb_assert_contains "$OUT" "PostgreSQL Writer" "the PreRestore veto names the writer"
bb_assert_contains "$OUT" "is running on $V1/data" "the PreRestore veto says why"
bb_assert_writer "PostgreSQL Writer" "[13] Failed" "Retryable error"
[[ ! -e "$T/restored-in-place" ]] || bb_fail "CMD ran although PreRestore vetoed"
apps_psql "$SOCK" "SELECT 1" >/dev/null || bb_fail "the server should still be running"

bb_log "restore in place with the server stopped"
apps_pg_stop "$V1/data"
bb_run "$VSHADOW" -r="$T/bc-1.json" --exec="$restore_in_place"
bb_assert_rc 0 "restore in place"
[[ -e "$T/restored-in-place" ]] || bb_fail "CMD did not run"
[[ ! -e "$V1/data/postmaster.pid" ]] || bb_fail "PostRestore left the stale postmaster.pid"
bb_assert_eq "$V2/wal/pg_wal" "$(readlink "$V1/data/pg_wal")" "pg_wal after the restore in place"
apps_pg_start "$V1/data" "$SOCK"
apps_pg_check "$SOCK" ledger "$T/load" "$(cat "$T/backup-1.before")"
bb_wait_until 15 "the writer connected again" bash -c \
        "[ \$(grep -c 'connected to the PostgreSQL server again' '$T/writer-PostgreSQL Writer.log') -ge 2 ]"

bb_log "a new tablespace on a fourth volume: the writer registers again with it"
apps_volume V4 ts2 256
mkdir -p "$V4/ts"
chown postgres: "$V4/ts"
apps_psql "$SOCK" "CREATE TABLESPACE ts2 LOCATION '$V4/ts'" >/dev/null
bb_wait_until 20 "the writer registered with the new tablespace" grep -q "volumes $V1/data, $V2/wal/pg_wal, $V3/ts, $V4/ts" \
        "$T/writer-PostgreSQL Writer.log"
bb_run "$VSHADOW" "$V1" "$V2" "$V3"
bb_assert_hresult 0x800423F0 VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT "set without the new tablespace's volume"
bb_run "$VSHADOW" "$V1" "$V2" "$V3" "$V4"
bb_assert_rc 0 "set with all four volumes"

bb_log "a writer started while the server is down registers when it comes up (the example config)"
kill -TERM "$(bb_writer_pid "PostgreSQL Writer")"
bb_wait_pid_gone "$(bb_writer_pid "PostgreSQL Writer")" 10 || bb_fail "the writer did not stop on SIGTERM"
bb_wait_until 10 "the writer gone from vssd" bash -c "! '$VSSADMIN' list writers | grep -q 'PostgreSQL Writer'"
apps_pg_stop "$V1/data"
# The shipped config file, with the command line overriding its conninfo.
"$WRITER_POSTGRESQL" --config "$SOURCE_ROOT/data/config/vss-writer-postgresql.conf" --conninfo "$CI" \
        >>"$T/writer-late.log" 2>&1 &
BB_PIDS+=($!)
bb_wait_until 10 "the writer trying to connect" grep -q "cannot connect to the PostgreSQL server" "$T/writer-late.log"
bb_writer_listed "PostgreSQL Writer" && bb_fail "the writer registered without knowing the cluster's layout"
apps_pg_start "$V1/data" "$SOCK"
bb_wait_until 15 "the late writer registered" bb_writer_listed "PostgreSQL Writer"
bb_run "$VSHADOW" "$V1" "$V2" "$V3" "$V4"
bb_assert_rc 0 "backup with the late writer"

echo "PASS"
