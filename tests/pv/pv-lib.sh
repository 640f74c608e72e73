# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# Shared by the Previous Versions tests (sourced): a vssd with its own state dir, a btrfs
# loop volume and a cow (ext4) volume, and the checks both tests make on a published DIR.
# The caller sets T (a mktemp -d) and calls pv_cleanup from its EXIT trap.

. "$(dirname "${BASH_SOURCE[0]}")/../cowprov/cow-lib.sh"

PV_LOOP='' PV_VSSD='' PV_COW='' fails=0
A=${VSSADMIN:-}
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }

pv_require()
{
        cow_require "$VSSD" "$VSSADMIN" "$VSS_VOLSRV"
        command -v mkfs.btrfs >/dev/null || { echo "FAIL: mkfs.btrfs missing (scripts/install-deps.sh)"; exit 1; }
        A=$VSSADMIN
}

pv_start_vssd()
{
        "$VSSD" --socket "$T/sock" --state-dir "$T/state" --config "$T/vssd.conf" 2>>"$T/vssd.log" &
        PV_VSSD=$!
        cow_wait_vssd || { echo "FAIL: vssd does not answer"; tail -n 20 "$T/vssd.log"; exit 1; }
}

pv_stop_vssd()
{
        [ -n "$PV_VSSD" ] || return 0
        kill -TERM "$PV_VSSD" 2>/dev/null
        local rc=0
        wait "$PV_VSSD" 2>/dev/null || rc=$?
        PV_VSSD=
        # Not 0 after SIGTERM: a crash, or the sanitizers found something (see vssd.log).
        [ $rc = 0 ] || { fail "vssd exited with status $rc"; grep -A5 -m3 'ERROR\|runtime error' "$T/vssd.log"; }
}

# pv_setup: vssd on $T/sock, btrfs volume $T/b, cow volume "pv$$" (ext4) on $T/c whose
# shadow storage (on /) is bounded to 12 MB, so that fresh writes evict its oldest shadow.
pv_setup()
{
        export VSS_SOCKET=$T/sock
        printf '[storage]\nmin_diff_area_mb=1\n' >"$T/vssd.conf"
        pv_start_vssd
        truncate -s 256M "$T/b.img"
        PV_LOOP=$(losetup -f --show "$T/b.img")
        # mkfs.btrfs checks every mount on the machine: it fails while another test's dead FUSE
        # mount is there (a volume server just killed) and hangs on a stopped one; both pass
        # once their owner cleans up.
        for _ in $(seq 30); do
                timeout 10 mkfs.btrfs -q -f "$PV_LOOP" >/dev/null 2>"$T/mkfs.err" && break
                sleep 0.5
        done
        mkdir -p "$T/b"
        mount "$PV_LOOP" "$T/b" || { echo "FAIL: no btrfs volume: $(cat "$T/mkfs.err")"; exit 1; }
        PV_COW=pv$$
        local out
        out=$($A create volume /name="$PV_COW" /size=128MB /fs=ext4 /mount="$T/c" 2>&1) ||
                { echo "FAIL: create volume: $out"; exit 1; }
        out=$($A add shadowstorage /for="$T/c" /on=/ /maxsize=12MB 2>&1) || { echo "FAIL: add shadowstorage: $out"; exit 1; }
}

pv_cleanup()
{
        local rc=$? before=$fails
        if [ -n "$PV_VSSD" ]; then
                $A delete previousversions /for="$T/b" >/dev/null 2>&1
                $A delete previousversions /for="$T/c" >/dev/null 2>&1
                $A delete shadows /all /quiet >/dev/null 2>&1
                $A delete shadowstorage /for="$T/c" /quiet >/dev/null 2>&1
                $A delete volume /name="$PV_COW" >/dev/null 2>&1
                pv_stop_vssd
        fi
        # Deepest first: the published shadow copies, then the volumes.
        grep -F " $T/" /proc/self/mounts | awk '{print $2}' | sort -r | while read -r m; do umount "$m" || umount -l "$m"; done
        [ -n "$PV_LOOP" ] && losetup -d "$PV_LOOP"
        cow_sweep "$T"
        # A vssd that did not stop cleanly fails the test too.
        [ "$fails" = "$before" ] || rc=1
        exit $rc
}

# pv_next_second: until the clock shows a new second (a shadow copy's @GMT name has seconds).
pv_next_second()
{
        local s
        s=$(date +%s)
        while [ "$(date +%s)" = "$s" ]; do sleep 0.05; done
}

# pv_shadow VOL: creates a shadow copy of VOL in a second of its own; prints its id.
pv_shadow()
{
        pv_next_second
        $A create shadow /for="$1" >/dev/null || return 1
        pv_next_second
        $A list shadows /for="$1" | awk '/Shadow Copy ID/{print $4}' | tail -n 1
}

# pv_names DIR: the @GMT- entries in DIR, oldest first.
pv_names()
{
        find "$1" -mindepth 1 -maxdepth 1 -name '@GMT-*' -printf '%f\n' 2>/dev/null | sort
}

# pv_wait_gone DIR/NAME: until the published entry is gone (5 s).
pv_wait_gone()
{
        for _ in $(seq 50); do [ -e "$1" ] || return 0; sleep 0.1; done
        return 1
}

# pv_gmt_of ID: the @GMT- name `vssadmin list previousversions` gives shadow copy ID.
pv_gmt_of()
{
        $A list previousversions | awk -v id="$1" '$0 ~ id { sub(":", "", $1); print $1 }'
}
