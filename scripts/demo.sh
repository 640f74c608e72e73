#!/usr/bin/env bash
# The openvss demo: a private vssd, a btrfs volume on a loop device, two hook writers,
# an application-consistent shadow copy read through `vshadow --exec`, and the admin
# views of it; then a real PostgreSQL server with vss-writer-postgresql under a write
# load, a backup of it through vshadow -bc, and that backup restored through vshadow -r
# into a second server that starts and holds every commit acknowledged before the backup.
# Everything it creates is removed on exit, whatever happens.
set -euo pipefail

BUILD=${1:-build}
BUILD=$(cd "$BUILD" && pwd)
VSSD=$BUILD/src/vssd/vssd
VSSADMIN=$BUILD/src/tools/vssadmin/vssadmin
VSHADOW=$BUILD/src/tools/vshadow/vshadow
VSSWRITER=$BUILD/src/tools/vsswriter/vsswriter
PGWRITER=$BUILD/src/writers/vss-writer-postgresql
LEDGER=$BUILD/tests/apps/ledger
PG_BIN=/usr/lib/postgresql/15/bin

[ "$(id -u)" -eq 0 ] || { echo "demo: run as root (it makes a loop device and mounts btrfs)" >&2; exit 1; }
for b in "$VSSD" "$VSSADMIN" "$VSHADOW" "$VSSWRITER" "$PGWRITER" "$LEDGER" "$PG_BIN/postgres"; do
        [ -x "$b" ] || { echo "demo: $b is missing; run 'make build' first" >&2; exit 1; }
done

D=$(mktemp -d /tmp/openvss-demo.XXXXXX)
export VSS_SOCKET=$D/vssd.sock
LOOP=""
pids=()

pg() { runuser -u postgres -- "$@"; }

cleanup() {
        set +e
        for dir in "$D/vol/pg/data" "$D/restore/data"; do
                [ -f "$dir/postmaster.pid" ] && pg "$PG_BIN/pg_ctl" -D "$dir" -m immediate -w stop >/dev/null 2>&1
        done
        for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
        for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
        grep -F " $D/" /proc/self/mounts | awk '{print $2}' | sort -r | while read -r m; do
                umount -l "$m" 2>/dev/null
        done
        mountpoint -q "$D/vol" && umount "$D/vol"
        [ -n "$LOOP" ] && losetup -d "$LOOP"
        rm -rf "$D"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "A btrfs volume on a loop device"
truncate -s 512M "$D/volume.img"
LOOP=$(losetup -f --show "$D/volume.img")
mkfs.btrfs -q -f "$LOOP"
mkdir -p "$D/vol"
mount "$LOOP" "$D/vol"
mkdir -p "$D/vol/db"
for i in 1 2 3; do head -c 200000 /dev/urandom >"$D/vol/db/table$i.dat"; done
echo "balance=100" >"$D/vol/db/ledger.txt"
echo "$LOOP mounted at $D/vol"

step "vssd with its own socket and state directory"
"$VSSD" --socket "$VSS_SOCKET" --state-dir "$D/state" 2>"$D/vssd.log" &
pids+=($!)
for _ in $(seq 100); do [ -S "$VSS_SOCKET" ] && break; sleep 0.05; done
[ -S "$VSS_SOCKET" ] || { cat "$D/vssd.log"; exit 1; }
echo "vssd pid ${pids[0]}, socket $VSS_SOCKET"

step "Two writers: a database that stops writing while frozen, and a log shipper"
# The database writer keeps a write loop running and pauses it between Freeze and Thaw,
# the way a real database writer holds a lock across the snapshot.
( while :; do
        [ -e "$D/frozen" ] || echo "$(date +%s%N) tx" >>"$D/vol/db/journal.log"
        sleep 0.02
  done ) &
pids+=($!)
"$VSSWRITER" --name "Demo Database Writer" --volume "$D/vol/db" --freeze-timeout 10000 \
        --on-freeze "touch $D/frozen; sync -f $D/vol/db/journal.log" \
        --on-thaw "rm -f $D/frozen" \
        --on-post-snapshot 'echo "shadow of $VSS_VOLUMES ready" >&2' 2>>"$D/writers.log" &
pids+=($!)
"$VSSWRITER" --name "Demo Log Writer" --volume "$D/vol" \
        --on-prepare-snapshot "echo rotate >>$D/logwriter.events" \
        --on-freeze "echo freeze >>$D/logwriter.events" \
        --on-thaw "echo thaw >>$D/logwriter.events" 2>>"$D/writers.log" &
pids+=($!)
for _ in $(seq 100); do
        [ "$("$VSSADMIN" list writers 2>/dev/null | grep -c "Writer name:")" -ge 2 ] && break
        sleep 0.05
done
"$VSSADMIN" list writers

step "vshadow --exec: a shadow copy, read while the database keeps writing"
"$VSHADOW" --exec='echo "files in the shadow copy at $VSHADOW_MOUNT_1:"; ls -la "$VSHADOW_MOUNT_1/db";
        echo; echo "checksums:"; cd "$VSHADOW_MOUNT_1/db" && sha256sum table*.dat ledger.txt;
        echo; echo "journal lines in the shadow: $(wc -l < journal.log)"' "$D/vol"
echo
echo "journal lines on the live volume now: $(wc -l <"$D/vol/db/journal.log")"

step "Writer states after the backup"
"$VSSADMIN" list writers

step "A persistent shadow copy made by vssadmin"
"$VSSADMIN" create shadow /for="$D/vol"
"$VSSADMIN" list shadows
"$VSSADMIN" list providers

step "What went on (vssadmin list events)"
"$VSSADMIN" list events | tail -n 12

step "Deleting the shadow copies"
"$VSSADMIN" delete shadows /for="$D/vol" /all /quiet
"$VSSADMIN" list shadows

step "A real database: PostgreSQL 15 with vss-writer-postgresql, under a write load"
chmod 755 "$D"
mkdir -p "$D/vol/pg" "$D/pgsock" "$D/restore" "$D/backup" "$D/load"
chown postgres: "$D/vol/pg" "$D/pgsock" "$D/restore"
pg "$PG_BIN/initdb" -D "$D/vol/pg/data" -U postgres --auth=trust --wal-segsize=1 >/dev/null
# Unix socket in the demo's directory only (port 55434 names the socket; no TCP).
pg "$PG_BIN/pg_ctl" -D "$D/vol/pg/data" -l "$D/pgsock/server.log" -w \
        -o "-c listen_addresses='' -c unix_socket_directories='$D/pgsock' -p 55434" start >/dev/null
CI="host=$D/pgsock port=55434 user=postgres dbname=postgres"
"$LEDGER" init pg "$CI"
"$PGWRITER" --conninfo "$CI" --freeze-timeout 10000 2>>"$D/pgwriter.log" &
pids+=($!)
"$LEDGER" run pg "$CI" --log "$D/load" --clients 3 --rate 50 --duration 120 --stop-file "$D/load/stop" >/dev/null &
pids+=($!)
for _ in $(seq 100); do "$VSSADMIN" list writers 2>/dev/null | grep -q "PostgreSQL Writer" && break; sleep 0.1; done
sleep 2
"$VSSADMIN" list writers | sed -n "/PostgreSQL Writer/,/Last error/p"
echo "commits acknowledged so far: $(cat "$D/load/"client-*.log | wc -l)"

step "vshadow -bc: a backup of the database while it keeps committing"
BEFORE=$(date +%s%6N)
"$VSHADOW" -bc="$D/pg-backup.json" --exec="cp -a \"\$VSHADOW_MOUNT_1/pg/data\" $D/backup/data" "$D/vol"
python3 - "$D/pg-backup.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for w in d["writers"]:
    for c in w["components"]:
        if w["name"] == "PostgreSQL Writer":
            md = json.loads(c["backup_metadata"])
            print("the writer's backup metadata: " + ", ".join(
                f"{k} {md[k]}" for k in ("server_version", "system_identifier", "timeline_id", "checkpoint_lsn",
                                         "wal_insert_lsn_at_freeze", "data_directory")))
PY
grep -E "CHECKPOINT|Freeze" "$D/pgwriter.log" | tail -n 2
sleep 1
touch "$D/load/stop"
sleep 1
echo "commits acknowledged in all: $(cat "$D/load/"client-*.log | wc -l)"

step "vshadow -r: the backup restored into a new directory, started as a second server"
"$VSHADOW" -r="$D/pg-backup.json" --new-target="$D/vol/pg/data=$D/restore/data" \
        --exec="cp -a $D/backup/data $D/restore/data"
grep PostRestore "$D/pgwriter.log" | tail -n 3
pg "$PG_BIN/pg_ctl" -D "$D/restore/data" -l "$D/pgsock/restored.log" -w \
        -o "-c listen_addresses='' -c unix_socket_directories='$D/pgsock' -p 55435" start >/dev/null
grep -E "redo (starts|done)|ready to accept" "$D/pgsock/restored.log" | sed 's/^/restored server: /'
"$LEDGER" verify pg "host=$D/pgsock port=55435 user=postgres dbname=postgres" --log "$D/load" --before "$BEFORE"
pg "$PG_BIN/pg_ctl" -D "$D/restore/data" -m fast -w stop >/dev/null
pg "$PG_BIN/pg_ctl" -D "$D/vol/pg/data" -m fast -w stop >/dev/null

step "Cleaning up"
