#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A cluster set whose slice on one host cannot record its shadow copy (docs/cluster.md §11;
# the fault matrix's "state-full" for a local set): three hosts with btrfs volumes and a
# writer each, each host's state directory on a 48 MB tmpfs of its own.  For host 2 (a
# participant) and host 1 (the coordinator's host):
#  1. that host's state directory filled up (the catalog's WAL emptied first), then
#     vshadow -p host1:/v1 host2:/v2 host3:/v3 on host 1: the set fails with 0x8004231F
#     VSS_E_INSUFFICIENT_STORAGE naming the host; no host keeps a shadow copy of it, in its
#     catalog or on disk; every writer thawed;
#  2. the full host's catalog is what it was, also after its vssd restarts;
#  3. with space again the next three-host set succeeds, one shadow copy on each host.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vlib.sh"
cv_init
for i in 1 2 3; do
        mkdir -p "$T/h$i/state"
        mount -t tmpfs -o size=48m "clstate$i" "$T/h$i/state"
done
cv_three_btrfs_hosts
read -r -a ALL <<<"$(cv_all)"

# catalog_ids I: host I's shadow copies (ids, sorted) as its catalog lists them.
catalog_ids()
{
        { "$VSSADMIN" --socket "$T/h$1/vssd.sock" list shadows "/for=${VOL[$1]}" 2>/dev/null || true; } |
                awk '/Shadow Copy ID/ { print $4 }' | sort
}
# disk_ids I: host I's shadow copies as the btrfs provider keeps them ({id} subvolumes).
disk_ids()
{
        { find "${VOL[$1]}/.openvss" -mindepth 1 -maxdepth 1 -name '{*}' -printf '%f\n' 2>/dev/null || true; } | sort
}
agrees() { [[ "$(catalog_ids "$1")" == "$(disk_ids "$1")" ]]; }
# as_before I: host I's catalog holds what it held before the case (BEFORE[I]).
as_before() { [[ "$(catalog_ids "$1")" == "${BEFORE[$1]}" ]]; }

# full_case H: host H's state directory full during a three-host set.
full_case()
{
        local h=$1 before i db=$T/h$1/state/catalog.db
        cl_log "host $h's state directory full"
        before=$(catalog_ids "$h")
        # SQLite reuses its WAL: emptied first, the set's catalog writes need new space.
        python3 -c 'import sqlite3, sys; sqlite3.connect(sys.argv[1]).execute("PRAGMA wal_checkpoint(TRUNCATE)")' \
                "$db" || cl_fail "cannot truncate host $h's catalog WAL"
        dd if=/dev/zero of="$T/h$h/state/filler" bs=1M status=none 2>/dev/null || true
        : >"$EV"
        cl_run "$VSHADOW" --socket "$T/h1/vssd.sock" -p "${ALL[@]}"
        echo "$ERR" >&2
        [[ $RC -ne 0 ]] || cl_fail "the set succeeded although host $h cannot record it: $OUT"
        cl_assert_contains "$ERR" "0x8004231F" "the failure is VSS_E_INSUFFICIENT_STORAGE"
        cl_assert_contains "$ERR" "host$h" "the failure names the host"
        for i in 1 2 3; do
                cl_wait_until 10 "host$i's writer thawed" grep -Eq "^host$i (thaw|abort) " "$EV"
                cl_wait_until 10 "host$i: catalog [$(catalog_ids "$i" | tr '\n' ' ')] = disk [$(disk_ids "$i" |
                        tr '\n' ' ')]" agrees "$i"
        done
        [[ "$(catalog_ids "$h")" == "$before" ]] || cl_fail "host $h's catalog changed: $(catalog_ids "$h")"
        for i in 1 2 3; do
                cl_wait_until 10 "host $i keeps no shadow copy of the failed set" as_before "$i"
        done
        rm -f "$T/h$h/state/filler"
        # What the catalog holds is what the next vssd knows.
        kill -TERM "${VSSD_PID[$h]}"
        wait "${VSSD_PID[$h]}" 2>/dev/null || true
        cv_vssd_start "$h"
        cv_wait_writer "$h"
        cl_wait_until 15 "every host lists every host" cv_present_everywhere
        cl_wait_until 10 "host $h after a restart: catalog = disk" agrees "$h"
        [[ "$(catalog_ids "$h")" == "$before" ]] || cl_fail "host $h's catalog after a restart: $(catalog_ids "$h")"
        cl_log "the next set"
        cl_run "$VSHADOW" --socket "$T/h1/vssd.sock" -p "${ALL[@]}"
        [[ $RC -eq 0 ]] || cl_fail "the next set failed: rc $RC: $ERR"
        for i in 1 2 3; do
                agrees "$i" || cl_fail "host $i after the next set: catalog != disk"
                [[ $(comm -13 <(echo "${BEFORE[$i]}") <(catalog_ids "$i") | wc -l) -eq 1 ]] ||
                        cl_fail "host $i has not one new shadow copy after the next set"
                BEFORE[$i]=$(catalog_ids "$i")
        done
}

declare -a BEFORE
for i in 1 2 3; do BEFORE[$i]=$(catalog_ids "$i"); done
full_case 2
full_case 1
echo "PASS"
