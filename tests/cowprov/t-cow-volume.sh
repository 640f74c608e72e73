#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Copy-on-write volumes end to end through the real tools: vssadmin create volume (ext4,
# then XFS) served by vss-volsrv over FUSE + loop, a writer that pauses a live workload
# and checksums every file at Freeze, vshadow --exec verifying the shadow against those
# checksums, persistent shadows surviving kill -9 of vssd, expose/unexpose, a volume in
# use refused, and clean deletion.
set -u
. "$(dirname "$0")/cow-lib.sh"
cow_require "$VSSD" "$VSSADMIN" "$VSHADOW" "$VSSWRITER" "$VSS_VOLSRV"

T=$(mktemp -d /tmp/cowprov-vol.XXXXXX)
export VSS_SOCKET=$T/sock
PID= WPID= LOAD= fails=0
cleanup() {
        [ -n "$LOAD" ] && kill "$LOAD" 2>/dev/null
        [ -n "$WPID" ] && kill "$WPID" 2>/dev/null
        if [ -n "$PID" ]; then
                "$VSSADMIN" delete shadows /all /quiet >/dev/null 2>&1
                for n in vole volx; do "$VSSADMIN" delete volume /name=$n >/dev/null 2>&1; done
                kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null
        fi
        cow_sweep "$T"
}
trap cleanup EXIT
start() { rm -f "$T/sock"; "$VSSD" --socket "$T/sock" --state-dir "$T/state" 2>>"$T/vssd.log" & PID=$!
        cow_wait_vssd; }

start
for fs in ext4 xfs; do
        name=vol${fs:0:1}; M=$T/mnt-$fs
        out=$("$VSSADMIN" create volume /name=$name /size=512MB /fs=$fs /mount="$M" 2>&1) &&
                mountpoint -q "$M" && ok "$fs: cow volume created and mounted" || { fail "$fs create: $out"; continue; }
        grep -q "^/dev/loop.* $M $fs " /proc/self/mounts && ok "$fs: on a loop device" || fail "$fs: not a loop mount"

        mkdir -p "$M/db"
        for i in $(seq 20); do head -c $((RANDOM * 8)) /dev/urandom >"$M/db/t$i"; done
        # A live workload that stops writing while the writer holds it frozen.
        ( while :; do
                if [ ! -e "$T/frozen" ]; then
                        f=$M/db/t$((RANDOM % 20 + 1)); head -c 4096 /dev/urandom >>"$f"
                        echo "$(date +%s%N)" >>"$M/db/journal"
                fi
                sleep 0.01
          done ) &
        LOAD=$!
        "$VSSWRITER" --name "Cow $fs Writer" --volume "$M/db" --freeze-timeout 20000 \
                --on-freeze "touch $T/frozen; sleep 0.1; cd $M/db && sha256sum * >$T/freeze-sums" \
                --on-thaw "rm -f $T/frozen" 2>>"$T/writer.log" &
        WPID=$!
        for _ in $(seq 50); do "$VSSADMIN" list writers 2>/dev/null | grep -q "Cow $fs Writer" && break; sleep 0.1; done

        out=$("$VSHADOW" --exec="cd \"\$VSHADOW_MOUNT_1/db\" && sha256sum --quiet -c $T/freeze-sums && grep \" \$VSHADOW_MOUNT_1 \" /proc/self/mounts | grep -q ' ro'" "$M" 2>&1) &&
                ok "$fs: every file of the shadow equals its checksum at freeze time" || fail "$fs vshadow: $out"
        [ "$(wc -l <"$T/freeze-sums")" -ge 21 ] || fail "$fs: freeze hook saw too few files"
        n=$("$VSSADMIN" list shadows /for="$M" | grep -c "Shadow Copy ID")
        [ "$n" = 0 ] && ok "$fs: non-persistent shadow gone after vshadow" || fail "$fs: $n shadows left"

        kill "$LOAD"; wait "$LOAD" 2>/dev/null; LOAD=
        kill "$WPID"; wait "$WPID" 2>/dev/null; WPID=
        (cd "$M/db" && sha256sum * >"$T/sums-$fs")
        out=$("$VSSADMIN" create shadow /for="$M" 2>&1) && ok "$fs: persistent shadow" || fail "$fs create shadow: $out"
        id=$("$VSSADMIN" list shadows /for="$M" | awk '/Shadow Copy ID/{print $4}')
        echo changed >"$M/db/t1"
        kill -9 "$PID"; wait "$PID" 2>/dev/null; PID=
        start
        [ "$("$VSSADMIN" list shadows /for="$M" | grep -c "Shadow Copy ID")" = 1 ] &&
                ok "$fs: persistent shadow survives kill -9 of vssd" || fail "$fs: shadow lost after restart"
        mkdir -p "$T/x-$fs"
        out=$("$VSSADMIN" expose shadow /shadow="$id" /at="$T/x-$fs" 2>&1) &&
                (cd "$T/x-$fs/db" && sha256sum --quiet -c "$T/sums-$fs") &&
                ok "$fs: exposed shadow holds the content at its creation" || fail "$fs expose: $out"
        "$VSSADMIN" unexpose shadow /shadow="$id" >/dev/null 2>&1 && ! mountpoint -q "$T/x-$fs" &&
                ok "$fs: unexposed" || fail "$fs: unexpose"
        out=$("$VSSADMIN" delete volume /name=$name 2>&1); rc=$?
        [ $rc != 0 ] && grep -q "0x8004231D VSS_E_VOLUME_IN_USE" <<<"$out" && ok "$fs: volume with shadows refused" ||
                fail "$fs delete in use: $out"
done

# One set of two cow volumes: both shadows belong to it.
out=$("$VSHADOW" -nw --exec='[ -n "$VSHADOW_MOUNT_2" ] && [ -f "$VSHADOW_MOUNT_1/db/t2" ] && [ -f "$VSHADOW_MOUNT_2/db/t2" ]' \
        "$T/mnt-ext4" "$T/mnt-xfs" 2>&1) && ok "two cow volumes in one set" || fail "two-volume set: $out"

for fs in ext4 xfs; do
        # Deleting an exposed shadow unexposes it first; the directory was the
        # test's, not vssd's, so it stays.
        id=$("$VSSADMIN" list shadows /for="$T/mnt-$fs" | awk '/Shadow Copy ID/{print $4; exit}')
        out=$("$VSSADMIN" expose shadow /shadow="$id" /at="$T/x-$fs" 2>&1) || fail "$fs re-expose: $out"
        "$VSSADMIN" delete shadows /for="$T/mnt-$fs" /all /quiet >/dev/null 2>&1
        ! mountpoint -q "$T/x-$fs" && [ -d "$T/x-$fs" ] &&
                ok "$fs: deleting an exposed shadow unmounts it and keeps a directory vssd did not make" ||
                fail "$fs: delete of an exposed shadow: mounted or directory removed"
        out=$("$VSSADMIN" delete volume /name=vol${fs:0:1} 2>&1) && ! mountpoint -q "$T/mnt-$fs" &&
                ok "$fs: volume deleted" || fail "$fs delete: $out"
done
for _ in $(seq 50); do pgrep -f "vss-volsrv.*$T/" >/dev/null || break; sleep 0.1; done
pgrep -f "vss-volsrv.*$T/" >/dev/null && fail "a volume server outlived its volume" || ok "no volume server left"
[ $fails = 0 ] || { echo "$fails check(s) failed"; tail -n 30 "$T/vssd.log"; exit 1; }
