#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# PostgreSQL backups under a write load, restored: a cluster on a btrfs loop volume, then
# one on a copy-on-write volume (ext4, vssadmin create volume), each with its writer and
# the ledger load of 4 clients.  While the load runs, APPS_BACKUPS (10) backups of each are
# taken through `vshadow -bc=FILE --exec=CMD` (CMD copies the cluster out of the shadow
# copy), and each one is restored through `vshadow -r=FILE --new-target --exec` (CMD moves
# the copy into place) into a new directory, started as a fresh server (crash recovery), checked with pg_amcheck, and
# checked by the ledger: every commit acknowledged before vshadow started is there, each
# client's commits are a gapless prefix, the accounts' total is unchanged.
source "$(dirname "$0")/apps-lib.sh"
apps_init
N=${APPS_BACKUPS:-10}

bb_start_vssd

# run_cluster LABEL VOLUME: the whole cycle on one volume.
run_cluster()
{
        local label=$1 V=$2 sock=$T/sock-$1 ci i b r before t0
        mkdir -p "$V/pg"
        chown postgres: "$V/pg"
        # 1 MB WAL segments: what a backup copies is mostly the data, not empty segments.
        apps_pg_init "$V/pg/data" --wal-segsize=1
        apps_pg_start "$V/pg/data" "$sock" "checkpoint_timeout=30s" "max_wal_size=32MB" "min_wal_size=4MB"
        apps_psql "$sock" "CREATE DATABASE ledger" >/dev/null
        ci=$(apps_pg_conninfo "$sock" ledger)
        "$LEDGER" init pg "$ci"
        apps_start_writer "$WRITER_POSTGRESQL" "PG $label" --conninfo "$ci" --freeze-timeout 10000
        apps_load_start pg "$ci" 4
        for ((i = 1; i <= N; i++)); do
                b=$T/b-$label-$i r=$T/r-$label-$i
                mkdir -p "$b" "$r"
                # Progress between backups, so each one catches a different state.
                bb_wait_until 60 "the load committing" apps_load_committed $(( $(apps_load_count) + 50 ))
                t0=$(date +%s%N)
                apps_backup "$label-$i" "cp -a \"\$VSHADOW_MOUNT_1/pg/data\" $b/data" "$V"
                bb_run "$VSHADOW" -r="$T/bc-$label-$i.json" --new-target="$V/pg/data=$r/data" \
                        --exec="mv $b/data $r/data"
                bb_assert_rc 0 "$label backup $i: vshadow -r into $r"
                [[ ! -e "$r/data/postmaster.pid" ]] || bb_fail "$label backup $i: the stale postmaster.pid is still there"
                PG_PORT=55433
                apps_pg_start "$r/data" "$T/rsock"
                apps_pg_check "$T/rsock" ledger "$T/load" "$(cat "$T/backup-$label-$i.before")"
                apps_pg_stop "$r/data"
                PG_PORT=55432
                APPS_SERVERS=("${APPS_SERVERS[@]/"pg:$r/data"/}")
                rm -rf "$b" "$r"
                bb_log "$label backup $i: backed up, restored and checked in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
        done
        apps_load_stop
        # The live cluster too: the backups never disturbed it.
        apps_pg_check "$sock" ledger "$T/load" "$(apps_now_us)"
        grep -c "PrepareForSnapshot: CHECKPOINT in" "$T/writer-PG $label.log" | {
                read -r n
                (( n >= N )) || bb_fail "$label: $n CHECKPOINTs for $N backups"
        }
        apps_pg_stop "$V/pg/data"
        kill -TERM "$(bb_writer_pid "PG $label")"
}

apps_volume VB pgbtrfs 600
run_cluster btrfs "$VB"
apps_cow_volume VC pgcow 600 ext4
run_cluster cow "$VC"
echo "PASS"
