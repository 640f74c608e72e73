#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# vssadmin revert shadow on copy-on-write volumes (ext4, then XFS) through the real vssd and
# vss-volsrv: files written, a shadow copy, files changed, deleted and added, a newer shadow
# copy, more changes; a file held open makes the revert 0x8004231D VSS_E_VOLUME_IN_USE with the
# volume still mounted and unchanged; then the revert: the tree's checksums equal the shadow
# copy's, the volume is mounted read-write at the same place on a new loop device over the
# volume server's file, the newer shadow copy is gone from the catalog and from the volume
# server, the reverted one stays (readable, exposable), the next set succeeds, the catalog
# agrees after a vssd restart, and the volume is deleted cleanly.
set -u
. "$(dirname "$0")/cow-lib.sh"
cow_require "$VSSD" "$VSSADMIN" "$VSS_VOLSRV"

T=$(mktemp -d "${TMPDIR:-/tmp}/cowprov-revert.XXXXXX")
export VSS_SOCKET=$T/sock
PID= HOLD=
cleanup() {
        [ -n "$HOLD" ] && kill "$HOLD" 2>/dev/null
        if [ -n "$PID" ]; then
                "$VSSADMIN" delete shadows /all /quiet >/dev/null 2>&1
                for n in reve revx; do "$VSSADMIN" delete volume /name=$n >/dev/null 2>&1; done
                kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null
        fi
        # What a failure left: mounts under $T, loop devices on its files, then the volume
        # servers by their pid files (never by name), then their FUSE mounts.
        grep -F " $T/" /proc/self/mounts | awk '{print $2}' | sort -r | while read -r m; do umount -l "$m"; done
        losetup -l -n -O NAME,BACK-FILE | awk -v t="$T/" 'index($2, t) == 1 {print $1}' |
                while read -r l; do losetup -d "$l"; done
        for p in "$T"/state/volumes/*/run/volsrv.pid; do
                [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null
        done
        wait_until 5 eval '! ls "$T"/state/volumes/*/run/volsrv.pid >/dev/null 2>&1'
        grep -F " $T/" /proc/self/mounts | awk '{print $2}' | sort -r | while read -r m; do umount -l "$m"; done
        rm -rf "$T"
}
trap cleanup EXIT
start() { rm -f "$T/sock"; "$VSSD" --socket "$T/sock" --state-dir "$T/state" 2>>"$T/vssd.log" & PID=$!
        cow_wait_vssd || { echo "FAIL: vssd does not answer"; exit 1; }; }
ids() { "$VSSADMIN" list shadows /for="$1" | awk '/Shadow Copy ID/ {print $4}'; }
# tree_sum DIR: names, types, modes and contents (lost+found aside).
tree_sum() {
        ( cd "$1" || exit 1
          find . -path ./lost+found -prune -o -printf '%y %m %p -> %l\n' | LC_ALL=C sort
          find . -path ./lost+found -prune -o -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum
        ) | sha256sum | cut -d' ' -f1
}
# The volume server's own list of snapshots (GUIDs without braces, lower case).
server_snaps() {
        python3 "$JSON_CTL" --get 'snapshots[].shadow_id' "$1/control.sock" Snapshot.List |
                tr -d '{}' | tr '[:upper:]' '[:lower:]'
}
listed() { "$VSSADMIN" list shadows | grep -qF "$1"; }
mounted() { mountpoint -q "$1"; }
holds_open() { ls -l "/proc/$1/fd" 2>/dev/null | grep -qF "$2"; }

start
for fs in ext4 xfs; do
        name=rev${fs:0:1}; M=$T/mnt-$fs; R=$T/state/volumes/$name/run
        out=$("$VSSADMIN" create volume /name=$name /size=512MB /fs=$fs /mount="$M" 2>&1) && mountpoint -q "$M" &&
                ok "$fs: cow volume created" || { fail "$fs create: $out"; continue; }

        mkdir -p "$M/docs/deep" "$M/empty"
        for i in $(seq 40); do head -c $((RANDOM * 4 + 1)) /dev/urandom >"$M/docs/f$i"; done
        head -c 20000000 /dev/urandom >"$M/docs/deep/big"
        ln -s docs/f1 "$M/link"
        chmod 600 "$M/docs/f2"
        sync -f "$M"
        sum1=$(tree_sum "$M")
        out=$("$VSSADMIN" create shadow /for="$M" 2>&1) || fail "$fs shadow 1: $out"
        id1=$(ids "$M")
        eval "first_$fs=\$id1 sum1_$fs=\$sum1"

        echo changed >"$M/docs/f3"
        rm -f "$M/docs/f4" "$M/link"
        rmdir "$M/empty"
        head -c 5000000 /dev/urandom >"$M/docs/new"
        dd if=/dev/urandom of="$M/docs/deep/big" bs=1M count=4 seek=3 conv=notrunc status=none
        chmod 644 "$M/docs/f2"
        out=$("$VSSADMIN" create shadow /for="$M" 2>&1) || fail "$fs shadow 2: $out"
        id2=$(ids "$M" | grep -vxF "$id1")
        head -c 3000000 /dev/urandom >>"$M/docs/deep/big"
        mkdir "$M/later"
        sync -f "$M"
        sum_now=$(tree_sum "$M")
        [ -n "$id1" ] && [ -n "$id2" ] && [ "$sum_now" != "$sum1" ] &&
                ok "$fs: two shadow copies, the volume changed since the first" || fail "$fs: setup ($id1 / $id2)"

        # Held open: refused, nothing changed, still mounted.
        ( exec 9<"$M/docs/f1"; exec sleep 60 ) &
        HOLD=$!
        wait_until 5 holds_open "$HOLD" "$M/docs/f1" || fail "$fs: the holder did not open the file"
        out=$("$VSSADMIN" revert shadow /shadow="$id1" /quiet 2>&1); rc=$?
        [ $rc != 0 ] && grep -q "0x8004231D VSS_E_VOLUME_IN_USE" <<<"$out" && ok "$fs: a volume in use is refused" ||
                fail "$fs in use: rc $rc: $out"
        mountpoint -q "$M" && [ "$(tree_sum "$M")" = "$sum_now" ] && [ "$(ids "$M" | wc -l)" = 2 ] &&
                ok "$fs: after the refusal the volume is mounted, unchanged, with both shadow copies" ||
                fail "$fs: the refused revert changed something"
        echo still-writable >"$M/w" && rm "$M/w" || fail "$fs: not writable after the refusal"
        kill "$HOLD"; wait "$HOLD" 2>/dev/null; HOLD=
        # A mount below the mount point: busy as well.
        mount -t tmpfs -o size=1m revert-test "$M/docs/deep"
        out=$("$VSSADMIN" revert shadow /shadow="$id1" /quiet 2>&1); rc=$?
        umount "$M/docs/deep"
        [ $rc != 0 ] && grep -q "0x8004231D VSS_E_VOLUME_IN_USE" <<<"$out" && mountpoint -q "$M" &&
                [ "$(tree_sum "$M")" = "$sum_now" ] && ok "$fs: a mount below the volume is refused, nothing changed" ||
                fail "$fs mount below: rc $rc: $out"

        # The newer shadow copy exposed: its exposure goes with it.
        mkdir -p "$T/x2-$fs"
        out=$("$VSSADMIN" expose shadow /shadow="$id2" /at="$T/x2-$fs" 2>&1) || fail "$fs expose $id2: $out"
        loop_before=$(findmnt -n -o SOURCE "$M")
        out=$(echo y | "$VSSADMIN" revert shadow /shadow="$id1" 2>&1) &&
                grep -qF "Its current content and 1 newer shadow copies are lost (Y/N): [N]?" <<<"$out" &&
                grep -qF "Successfully reverted the volume $M to shadow copy $id1 (1 newer shadow copies deleted)." <<<"$out" &&
                ok "$fs: revert" || fail "$fs revert: $out"
        mountpoint -q "$M" && ok "$fs: mounted again at $M" || fail "$fs: not mounted after the revert"
        [ "$(tree_sum "$M")" = "$sum1" ] && ok "$fs: the tree equals the shadow copy's" ||
                fail "$fs: the tree differs from the shadow copy's after the revert"
        src=$(findmnt -n -o SOURCE "$M"); back=$(losetup -n -O BACK-FILE "$src" 2>/dev/null)
        [ "$back" = "$R/fuse/volume" ] && [ "$(findmnt -n -o FSTYPE "$M")" = "$fs" ] &&
                ok "$fs: on loop device $src (was $loop_before) over the volume server's file" ||
                fail "$fs: mounted from $src ($back)"
        echo writable >"$M/docs/after" && sync -f "$M" && rm "$M/docs/after" && ok "$fs: writable" || fail "$fs: not writable"
        wait_until 10 eval '! listed "$id2"' && [ "$(ids "$M")" = "$id1" ] && ok "$fs: the catalog lists the reverted shadow copy only" ||
                fail "$fs: shadows listed after the revert: $(ids "$M" | tr '\n' ' ')"
        want=$(tr -d '{}' <<<"$id1")
        [ "$(server_snaps "$R")" = "$want" ] && ok "$fs: the volume server agrees" ||
                fail "$fs: the volume server has: $(server_snaps "$R" | tr '\n' ' ')"
        wait_until 10 eval '! mounted "$T/x2-$fs"' && ok "$fs: the newer shadow copy's exposure is removed" ||
                fail "$fs: the deleted shadow copy is still exposed at $T/x2-$fs"
        "$VSSADMIN" list events | grep -q "shadow copy $id2 of volume $M was deleted: the volume was reverted" &&
                ok "$fs: the newer shadow copy's deletion is logged" || fail "$fs: no discarded event logged"

        # The reverted shadow copy still reads as it did; the next set succeeds.
        mkdir -p "$T/x-$fs"
        out=$("$VSSADMIN" expose shadow /shadow="$id1" /at="$T/x-$fs" 2>&1) && [ "$(tree_sum "$T/x-$fs")" = "$sum1" ] &&
                ok "$fs: the reverted shadow copy is intact" || fail "$fs expose after revert: $out"
        "$VSSADMIN" unexpose shadow /shadow="$id1" >/dev/null 2>&1 || fail "$fs unexpose"
        echo next >"$M/docs/f5"
        out=$("$VSSADMIN" create shadow /for="$M" 2>&1) && [ "$(ids "$M" | wc -l)" = 2 ] &&
                ok "$fs: the next shadow copy after the revert" || fail "$fs next set: $out"
done

# vssd killed while the volume is offline for a revert: when it starts again, the volume
# server has completed the revert and vssd mounts the volume where it was.
kill "$PID"; wait "$PID" 2>/dev/null; PID=
M=$T/mnt-ext4; R=$T/state/volumes/reve/run
export VSSD_DEBUG_REVERT_OFFLINE_MS=20000
start
unset VSSD_DEBUG_REVERT_OFFLINE_MS
ended() { "$VSSADMIN" list events | grep -cF "ended the revert to shadow copy $first_ext4"; }
ended_before=$(ended)
echo "after the second shadow copy" >"$M/docs/f6"
sync -f "$M"
"$VSSADMIN" revert shadow /shadow="$first_ext4" /quiet >"$T/killed.out" 2>&1 &
RPID=$!
# The volume server ends the copy while vssd waits in the hook: kill it then.
if ! wait_until 20 eval '[ "$(ended)" -gt "$ended_before" ]'; then
        fail "ext4: the volume server did not end the revert"
else
        mounted "$M" && fail "ext4: the volume is mounted during the revert"
        kill -9 "$PID"; wait "$PID" 2>/dev/null; PID=
        wait "$RPID"; rc=$?
        [ $rc != 0 ] && ok "ext4: vssadmin fails when vssd dies in the revert (status $rc)" ||
                fail "ext4: vssadmin succeeded although vssd died: $(cat "$T/killed.out")"
        start
        wait_until 40 mounted "$M" && ok "ext4: the volume is mounted again after vssd restarted" ||
                fail "ext4: the volume stays offline after vssd restarted"
        [ "$(tree_sum "$M")" = "$sum1_ext4" ] && ok "ext4: and holds the shadow copy's content" ||
                fail "ext4: the content after the interrupted revert differs from the shadow copy's"
        [ "$(ids "$M")" = "$first_ext4" ] && [ "$(server_snaps "$R")" = "$(tr -d '{}' <<<"$first_ext4")" ] &&
                ok "ext4: catalog and volume server list the reverted shadow copy only" ||
                fail "ext4: after the restart the catalog has [$(ids "$M" | tr '\n' ' ')], the server [$(server_snaps "$R" | tr '\n' ' ')]"
        echo writable >"$M/w" && rm "$M/w" || fail "ext4: not writable after the restart"
fi

kill "$PID"; wait "$PID" 2>/dev/null; PID=
start
for fs in ext4 xfs; do
        M=$T/mnt-$fs; R=$T/state/volumes/rev${fs:0:1}/run
        a=$(ids "$M" | tr -d '{}' | sort); b=$(server_snaps "$R" | sort)
        [ -n "$a" ] && [ "$a" = "$b" ] && ok "$fs: after a vssd restart catalog and volume server agree" ||
                fail "$fs: catalog [$a] vs server [$b]"
        "$VSSADMIN" delete shadows /for="$M" /all /quiet >/dev/null 2>&1
        out=$("$VSSADMIN" delete volume /name=rev${fs:0:1} 2>&1) && ! mountpoint -q "$M" &&
                ! losetup -l -n -O BACK-FILE | grep -qF "$R/" && ok "$fs: volume deleted, no loop device left" ||
                fail "$fs delete: $out"
done
kill "$PID"; wait "$PID" 2>/dev/null; PID=
! grep -E "AddressSanitizer|LeakSanitizer|runtime error" "$T/vssd.log" && ok "no sanitizer report from vssd" ||
        fail "vssd's sanitizers reported errors"
[ "$fails" = 0 ] || tail -n 40 "$T/vssd.log"
check_exit
