#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A volume server dies under a write load and the filesystem does not notice beyond a pause
# (docs/volsrv.md "Handover", docs/cow-provider.md "Supervision").  Real vssd, an ext4 cow
# volume with an exposed shadow copy, and a load that writes 64 KiB files with dd
# conv=fsync in a loop, logging each one dd acknowledged (after its fsync) with a time stamp.
#  1. kill -9 of vss-volsrv: the load goes on (longest gap between two acknowledged writes
#     < 2 s), the same mount from the same loop device, the exposed shadow still exposed.
#  2. SIGSTOP of the new vss-volsrv: vssd's Hello goes unanswered, after the deadline
#     (vssd.conf [cow] server_deadline_ms=3000 here, 5 s by default) it kills the server and a
#     new one takes over: the load resumes (gap < 3 s deadline + 1 s ping interval + 2 s).
#  vssd runs with its default write-back on: first writes after the shadow copy are
#  acknowledged from the write-back memory, which the replacements write back.
#  Then: the load completed without an error; every acknowledged file reads back identical;
#  the shadow copy's device and its exposed files are byte-identical to before; an NBD client
#  connects to the same nbd.sock path; vssadmin list events tells both replacements.
. "$(dirname "$0")/../blackbox/lib.sh"
. "$(dirname "$0")/cow-lib.sh"

bb_init
for b in "$VSS_VOLSRV" "$VSSADMIN"; do
        [[ -x "$b" ]] || bb_fail "$b is not built"
done
command -v qemu-img >/dev/null || bb_fail "qemu-img is missing (qemu-utils; scripts/install-deps.sh installs it)"
[[ -e /dev/fuse ]] || bb_skip "no /dev/fuse"
export VSS_VOLSRV

LOAD_PID= STOPPED_PID=
ho_cleanup()
{
        local rc=$?
        set +e
        [[ -n "$LOAD_PID" ]] && kill "$LOAD_PID" 2>/dev/null && wait "$LOAD_PID" 2>/dev/null
        # A server left stopped by a failed run would ignore the sweep's SIGTERM.
        [[ -n "$STOPPED_PID" ]] && kill -CONT "$STOPPED_PID" 2>/dev/null
        if [[ $rc -ne 0 && $rc -ne 77 ]]; then
                echo "=== vssd log:" >&2
                tail -n 40 "$T/vssd.log" >&2
                echo "=== volsrv log:" >&2
                tail -n 20 "$T/state/volumes/vho/volsrv.log" >&2
        fi
        if bb_vssd_alive; then
                "$VSSADMIN" delete shadows /all /quiet >/dev/null 2>&1
                "$VSSADMIN" delete volume /name=vho >/dev/null 2>&1
        fi
        if [[ -n "$BB_VSSD_PID" ]]; then
                kill -TERM "$BB_VSSD_PID" 2>/dev/null
                bb_wait_pid_gone "$BB_VSSD_PID" 10 || kill -KILL "$BB_VSSD_PID" 2>/dev/null
                BB_VSSD_PID=
        fi
        if grep -Eq "AddressSanitizer|LeakSanitizer|runtime error:" "$T/vssd.log" "$T/state/volumes/vho/volsrv.log" 2>/dev/null; then
                echo "FAIL: sanitizer report in a daemon's log" >&2
                [[ $rc -eq 0 ]] && rc=1
        fi
        cow_sweep "$T"
        (exit "$rc")
        bb_cleanup
}
trap ho_cleanup EXIT

M=$T/mnt X=$T/x R=$T/state/volumes/vho/run
mount_src() { findmnt -rn -o SOURCE --mountpoint "$1" | tail -n 1; }
mount_id() { awk -v m="$1" '$5 == m {id=$1 " " $3} END {print id}' /proc/self/mountinfo; }
volsrv_pid() { cat "$R/volsrv.pid"; }
events() { local ev; ev=$("$VSSADMIN" list events) && grep -Fc -- "$1" <<<"$ev" || true; }
acked() { local n; n=$(grep -c '^ok ' "$T/acked" 2>/dev/null) || true; echo "${n:-0}"; }
# Write i goes to file f(i mod 1024) (64 MiB in all) with source block src(i).
src() { echo $(((($1 / 1024) + $1) % 8)); }
acked_beyond() { [[ $(acked) -ge $1 ]]; }
# max_gap FROM_NS TO_NS: the longest time (ms) between two acknowledged writes in [FROM, TO].
max_gap() {
        # From the last acknowledgement before FROM (or FROM itself): a load stalled from FROM
        # on has its whole stall counted.
        awk -v a="$1" -v b="$2" '$1 == "ok" && $3 < a {p = $3}
                $1 == "ok" && $3 >= a && $3 <= b {if (!p) p = a; g = ($3 - p) / 1e6; if (g > m) m = g; p = $3}
                END {printf "%d\n", m}' "$T/acked"
}
nbd_answers() { qemu-img info "nbd+unix:///?socket=$R/nbd.sock" >/dev/null 2>&1; }

printf '[cow]\nserver_deadline_ms=3000\n' >"$T/vssd.conf"
bb_start_vssd --config "$T/vssd.conf"
out=$("$VSSADMIN" create volume /name=vho /size=256MB /fs=ext4 /mount="$M" 2>&1) || bb_fail "create volume: $out"
mkdir -p "$M/d" "$M/load" "$X" "$T/src"
for i in $(seq 8); do head -c $((RANDOM * 8 + 1)) /dev/urandom >"$M/d/f$i"; done
for i in $(seq 0 7); do head -c 65536 /dev/urandom >"$T/src/b$i"; done
sync -f "$M"
(cd "$M/d" && sha256sum -- *) >"$T/shadow.sums"
out=$("$VSSADMIN" create shadow /for="$M" 2>&1) || bb_fail "create shadow: $out"
id=$("$VSSADMIN" list shadows /for="$M" | awk '/Shadow Copy ID/{print $4}')
out=$("$VSSADMIN" expose shadow /shadow="$id" /at="$X" 2>&1) || bb_fail "expose: $out"
guid=$(tr -d '{}' <<<"$id" | tr 'A-F' 'a-f')
shadow_sum=$(sha256sum <"$R/fuse/shadows/$guid")
nbd_answers || bb_fail "no NBD client gets an answer on $R/nbd.sock"
old=$(mount_src "$M") oldid=$(mount_id "$M") oldx=$(mount_src "$X") oldxid=$(mount_id "$X")
ok "ext4 cow volume on $old with shadow $id exposed at $X ($oldx)"

# The load: every file written with fsync; "ok I NS" once dd returned, i.e. acknowledged.
(
        i=0
        while [[ ! -e "$T/stop" ]] && ((i < 100000)); do
                i=$((i + 1))
                if dd if="$T/src/b$(src $i)" of="$M/load/f$((i % 1024))" bs=64K conv=fsync status=none \
                        2>>"$T/load.err"; then
                        echo "ok $i $(date +%s%N)" >>"$T/acked"
                else
                        echo "FAIL $i $(date +%s%N)" >>"$T/acked"
                        exit 1
                fi
        done
) &
LOAD_PID=$!
bb_wait_until 20 "the load has 20 acknowledged writes" acked_beyond 20

# ---- 1. kill -9 ----
n=$(acked) t0=$(date +%s%N)
kill -9 "$(volsrv_pid)"
bb_wait_until 20 "the load goes on after kill -9" acked_beyond $((n + 30))
t1=$(date +%s%N)
gap=$(max_gap "$t0" "$t1")
((gap < 2000)) || bb_fail "kill -9: the load paused for $gap ms (limit 2000)"
ok "kill -9: the load paused at most $gap ms"
bb_wait_until 10 "the takeover is in vssadmin list events" eval '[[ $(events "took over its FUSE connection") -ge 1 ]]'

# ---- 2. SIGSTOP beyond the deadline ----
pid=$(volsrv_pid)
n=$(acked) t0=$(date +%s%N)
STOPPED_PID=$pid
kill -STOP "$pid"
bb_wait_until 20 "vssd replaced the stopped server" eval '[[ $(events "did not answer its control socket for 3000 ms") -ge 1 ]]'
bb_wait_until 20 "the load goes on after the stopped server was replaced" acked_beyond $((n + 30))
t1=$(date +%s%N)
gap=$(max_gap "$t0" "$t1")
((gap < 6000)) || bb_fail "SIGSTOP: the load paused for $gap ms (limit: 3 s deadline + 1 s ping + 2 s)"
[[ ! -e /proc/$pid || $(ps -o stat= -p "$pid") == Z* ]] || bb_fail "the stopped server $pid is still there"
[[ $(volsrv_pid) != "$pid" ]] || bb_fail "no new server after the stopped one"
ok "SIGSTOP: replaced after the deadline, the load paused $gap ms"
bb_wait_until 10 "the second takeover is in vssadmin list events" eval '[[ $(events "took over its FUSE connection") -ge 2 ]]'

touch "$T/stop"
wait "$LOAD_PID" || bb_fail "the load failed: $(grep FAIL "$T/acked") $(tail -n 3 "$T/load.err")"
LOAD_PID=
n=$(acked)
ok "the load completed: $n writes acknowledged, none failed"

[[ $(mount_src "$M") == "$old" && $(mount_id "$M") == "$oldid" ]] ||
        bb_fail "$M is not the same mount: $(mount_src "$M") $(mount_id "$M"), was $old $oldid"
[[ $(mount_src "$X") == "$oldx" && $(mount_id "$X") == "$oldxid" ]] || bb_fail "$X is not the same mount"
ok "the volume and the exposed shadow are the same mounts from the same loop devices"
# Read back with O_DIRECT (from the device, not the page cache): the last write to each file.
bad=0 files=0
while read -r f i; do
        files=$((files + 1))
        dd if="$M/load/f$f" iflag=direct bs=64K status=none | cmp -s - "$T/src/b$(src "$i")" ||
                { bad=$((bad + 1)); echo "differs: f$f (write $i)" >&2; }
done < <(awk '$1 == "ok" {last[$2 % 1024] = $2} END {for (f in last) print f, last[f]}' "$T/acked")
((bad == 0 && files > 0)) || bb_fail "$bad of $files files do not read back as their last acknowledged write"
ok "all $files files read back as their last acknowledged write (of $n)"
(cd "$X/d" && sha256sum --quiet -c "$T/shadow.sums") || bb_fail "the exposed shadow's files changed"
[[ $(sha256sum <"$R/fuse/shadows/$guid") == "$shadow_sum" ]] || bb_fail "the shadow copy's device changed"
"$VSSADMIN" list shadows /for="$M" | grep -qF "$id" || bb_fail "shadow $id is no longer listed"
ok "the shadow copy is intact (device and exposed files) and still exposed"
nbd_answers || bb_fail "no NBD client gets an answer on $R/nbd.sock after the replacements"
ok "an NBD client connects to the same socket path $R/nbd.sock"
[[ $(events "must reopen them") == 0 && $(events "exposed again at") == 0 ]] || bb_fail "something was remounted"
ok "nothing was remounted"

out=$("$VSSADMIN" unexpose shadow /shadow="$id" 2>&1) || bb_fail "unexpose: $out"
"$VSSADMIN" delete shadows /all /quiet >/dev/null 2>&1
out=$("$VSSADMIN" delete volume /name=vho 2>&1) && ! mountpoint -q "$M" || bb_fail "delete volume: $out"
! mountpoint -q "$R/fuse" || bb_fail "the FUSE mount outlived the volume"
ok "volume deleted, nothing left mounted"
