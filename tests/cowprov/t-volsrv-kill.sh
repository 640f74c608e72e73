#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# kill -9 of a cow volume's server: vssd restarts it and remounts the volume on its own.
# For ext4, then XFS: files written and synced, a persistent shadow (exposed), more
# writes synced, a shadow copy set refused cleanly while the server is dead, then within
# 20 s the mount point serves every file with its checksum at the last sync from a new
# loop device, takes new writes, the exposed shadow is exposed again with its content,
# the old loop device is gone and `vssadmin list events` tells what happened.  Last,
# vssd and the volume server both killed with -9 and vssd started again: volume back.
. "$(dirname "$0")/../blackbox/lib.sh"
. "$(dirname "$0")/cow-lib.sh"

bb_init
for b in "$VSS_VOLSRV" "$VSSADMIN"; do
        [[ -x "$b" ]] || bb_fail "$b is not built"
done
command -v mkfs.xfs >/dev/null || bb_fail "mkfs.xfs is missing (xfsprogs; scripts/install-deps.sh installs it)"
[[ -e /dev/fuse ]] || bb_skip "no /dev/fuse"
export VSS_VOLSRV

vk_cleanup()
{
        local rc=$?
        set +e
        if [[ $rc -ne 0 && $rc -ne 77 ]]; then
                echo "=== vssd log:" >&2
                tail -n 40 "$T/vssd.log" >&2
        fi
        if bb_vssd_alive; then
                "$VSSADMIN" delete shadows /all /quiet >/dev/null 2>&1
                for n in vke vkx; do "$VSSADMIN" delete volume /name=$n >/dev/null 2>&1; done
        fi
        if [[ -n "$BB_VSSD_PID" ]]; then
                kill -TERM "$BB_VSSD_PID" 2>/dev/null
                bb_wait_pid_gone "$BB_VSSD_PID" 10 || kill -KILL "$BB_VSSD_PID" 2>/dev/null
                BB_VSSD_PID=
        fi
        # An ASan/UBSan build reports into vssd's log (the remount runs inside vssd).
        if grep -Eq "AddressSanitizer|LeakSanitizer|runtime error:" "$T/vssd.log" 2>/dev/null; then
                echo "FAIL: sanitizer report in vssd's log:" >&2
                grep -E -A20 "AddressSanitizer|LeakSanitizer|runtime error:" "$T/vssd.log" | head -n 60 >&2
                [[ $rc -eq 0 ]] && rc=1
        fi
        cow_sweep "$T"
        (exit "$rc")
        bb_cleanup
}
trap vk_cleanup EXIT

mount_src() { findmnt -rn -o SOURCE --mountpoint "$1" | tail -n 1; }
volsrv_pid() { cat "$T/state/volumes/$1/run/volsrv.pid"; }
# events TEXT: how many events of vssd's log hold TEXT.
events() { local ev; ev=$("$VSSADMIN" list events) && grep -Fc -- "$1" <<<"$ev" || true; }
# remounted MNT EVENT N SUMS: vssd logged EVENT N times, and MNT serves SUMS.  (Neither
# the loop device nor the mount id tells a new mount: the kernel reuses both.)
remounted() { [[ $(events "$2") -ge $3 ]] && mountpoint -q "$1" && (cd "$1/d" && sha256sum --quiet -c "$4"); }

bb_start_vssd
for fs in ext4 xfs; do
        name=vk${fs:0:1} M=$T/mnt-$fs X=$T/x-$fs
        out=$("$VSSADMIN" create volume /name="$name" /size=512MB /fs="$fs" /mount="$M" 2>&1) ||
                bb_fail "$fs: create volume: $out"
        mkdir -p "$M/d" "$X"
        for i in $(seq 12); do head -c $((RANDOM * 8 + 1)) /dev/urandom >"$M/d/f$i"; done
        sync -f "$M"
        (cd "$M/d" && sha256sum -- *) >"$T/shadow-$fs.sums"
        out=$("$VSSADMIN" create shadow /for="$M" 2>&1) || bb_fail "$fs: create shadow: $out"
        id=$("$VSSADMIN" list shadows /for="$M" | awk '/Shadow Copy ID/{print $4}')
        out=$("$VSSADMIN" expose shadow /shadow="$id" /at="$X" 2>&1) || bb_fail "$fs: expose: $out"
        for i in $(seq 6 18); do head -c $((RANDOM * 8 + 1)) /dev/urandom >"$M/d/f$i"; done
        echo "after the shadow" >>"$M/d/f1"
        sync -f "$M"
        (cd "$M/d" && sha256sum -- *) >"$T/live-$fs.sums"
        old=$(mount_src "$M") oldx=$(mount_src "$X")
        ev_vol="volume server of $name restarted; volume remounted at $M" ev_x="shadow copy $id exposed again at $X"

        kill -9 "$(volsrv_pid "$name")"
        # With the server dead, a shadow copy set of the volume fails with an HRESULT.
        out=$("$VSSADMIN" create shadow /for="$M" 2>&1) && bb_fail "$fs: a set on a dead volume server succeeded"
        grep -Eq "0x8004[0-9A-F]{4} VSS_E_" <<<"$out" || bb_fail "$fs: no HRESULT for the dead volume server: $out"
        bb_vssd_alive || bb_fail "$fs: vssd died"
        hr=$(grep -Eo '0x8004[0-9A-F]{4} VSS_E_[A-Z_]+' <<<"$out") || true
        ok "$fs: set refused while the volume server is dead (${hr%%$'\n'*})"

        bb_wait_until 20 "$fs: $M remounted with the checksums of the last sync" remounted "$M" "$ev_vol" 1 "$T/live-$fs.sums"
        ok "$fs: remounted from $(mount_src "$M") (was $old), every file as at the last sync"
        [[ $(findmnt -rn -o FSTYPE --mountpoint "$M" | tail -n 1) == "$fs" ]] || bb_fail "$fs: wrong fstype at $M"
        echo "written after the remount" >"$M/d/new" && sync -f "$M" && grep -q "after the remount" "$M/d/new" ||
                bb_fail "$fs: cannot write after the remount"
        ok "$fs: a new file written and synced"
        bb_wait_until 10 "$fs: shadow exposed again at $X" remounted "$X" "$ev_x" 1 "$T/shadow-$fs.sums"
        ok "$fs: the exposed shadow is exposed again ($(mount_src "$X")) with its content at creation"
        # The dead loop devices are detached (or reused for something of ours).
        for dev in "$old" "$oldx"; do
                back=$(losetup -n -O BACK-FILE "$dev" 2>/dev/null | sed 's/ *$//') || true
                [[ -z "$back" || "$back" == "$T/"* ]] || bb_fail "$fs: $dev still attached to $back"
        done
        ok "$fs: old loop devices detached"
        [[ $(events "$ev_vol (/dev/loop") == 1 && $(events "processes that had files open on it must reopen them") -ge 1 ]] ||
                bb_fail "$fs: remount event: $("$VSSADMIN" list events | tail -n 5)"
        ok "$fs: vssadmin list events shows the remount"
        out=$("$VSSADMIN" unexpose shadow /shadow="$id" 2>&1) && ! mountpoint -q "$X" || bb_fail "$fs: unexpose: $out"
        out=$("$VSSADMIN" create shadow /for="$M" 2>&1) || bb_fail "$fs: shadow after the remount: $out"
        ok "$fs: unexposed; a new shadow copy of the remounted volume"
done

# Both vssd and the volume server killed: the restarted vssd brings the volume back.
M=$T/mnt-ext4
echo "before both died" >"$M/d/both" && sync -f "$M"
(cd "$M/d" && sha256sum -- *) >"$T/both.sums"
bb_kill9_vssd
vpid=$(volsrv_pid vke)
kill -9 "$vpid"
# Its parent is dead too, so it may stay a zombie for a while: gone or Z is dead.
dead() { [[ ! -e /proc/$1 || $(ps -o stat= -p "$1") == Z* ]]; }
bb_wait_until 5 "the volume server of vke dead" dead "$vpid"
bb_start_vssd
bb_wait_until 20 "$M remounted after vssd and its volume server were killed" remounted "$M" \
        "volume server of vke restarted; volume remounted at $M" 2 "$T/both.sums"
echo again >"$M/d/again" && sync -f "$M" || bb_fail "cannot write after vssd's restart"
ok "kill -9 of vssd and the volume server: volume back at $M from $(mount_src "$M")"

"$VSSADMIN" delete shadows /all /quiet >/dev/null 2>&1
for fs in ext4 xfs; do
        out=$("$VSSADMIN" delete volume /name=vk${fs:0:1} 2>&1) && ! mountpoint -q "$T/mnt-$fs" ||
                bb_fail "$fs: delete volume: $out"
done
ok "volumes deleted"
