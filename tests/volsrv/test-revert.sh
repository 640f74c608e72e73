#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Revert of a cow volume through vss-volsrv's control socket, on a real ext4
# image over FUSE and a loop device.  Usage: test-revert.sh PATH/TO/vss-volsrv
#
#  1. ext4 on loop over fuse/volume; files; freeze + Snapshot.Create {g1} +
#     thaw; more files and changes; Snapshot.Create {g2}; more again.  The
#     sha256 of the g1 shadow image and of its files are the reference.
#  2. While the file system is mounted (a loop device holds fuse/volume open
#     for writing), and while an NBD client has a session on the live export,
#     Snapshot.Revert fails with 0x8004231D VSS_E_VOLUME_IN_USE; Volume.Status
#     counts them (open_for_writing), and the test waits for 0 after a
#     losetup -d or a disconnect (both released asynchronously).
#  3. Unmounted and detached: Snapshot.Revert {g1}; a second one right behind
#     it gets 0x80042325 VSS_E_REVERT_IN_PROGRESS; Snapshot.RevertStatus is
#     polled until "done" (VSS_S_ASYNC_FINISHED); the events say g2 was
#     discarded and the revert ended.  The volume image equals the g1 shadow's
#     checksum, the mounted file system has g1's files (sha256), g1 is still
#     listed and intact, g2 is gone.
#  4. kill -9 of the server right after Snapshot.Revert returned: restarted
#     with the same arguments it completes the revert at open
#     (RevertStatus "resumed"), and the volume again equals g1's image.
#
# Everything lives under one /tmp/volsrv-revert.* directory, torn down by the
# EXIT trap (mounts, loop devices, the server, its FUSE mount).
set -u -o pipefail

VOLSRV=${1:?usage: test-revert.sh PATH/TO/vss-volsrv}
VOLSRV=$(readlink -f "$VOLSRV")

skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "needs root"
[ -c /dev/fuse ] || skip "no /dev/fuse"
[ -e /dev/loop-control ] || skip "no loop devices"
[ -x "$VOLSRV" ] || { echo "FAIL: $VOLSRV not built"; exit 1; }
for t in python3 mkfs.ext4 fsfreeze sha256sum; do
        command -v $t >/dev/null || { echo "FAIL: $t is missing (scripts/install-deps.sh)"; exit 1; }
done

T=$(mktemp -d /tmp/volsrv-revert.XXXXXX)
R=$T/run
LOOP=
MNT=$T/mnt

server_pid() { cat "$R/volsrv.pid" 2>/dev/null; }

cleanup() {
        local pid
        mountpoint -q "$MNT" 2>/dev/null && { umount "$MNT" 2>/dev/null || umount -l "$MNT"; }
        [ -n "$LOOP" ] && losetup -d "$LOOP" 2>/dev/null
        pid=$(server_pid)
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
                ctl Server.Stop >/dev/null 2>&1 || kill "$pid" 2>/dev/null
                for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
                kill -9 "$pid" 2>/dev/null
        fi
        fusermount3 -u -z "$R/fuse" 2>/dev/null || umount -l "$R/fuse" 2>/dev/null
        rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

. "$(dirname "$0")/../check.sh"

cat >"$T/nbd_hold.py" <<'EOF'
# nbd_hold.py SOCKET READY: a session on the live export ("volume") that
# stays open until stdin closes; writes READY once transmission started.
import socket, struct, sys
OPT = 0x49484156454f5054
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(30)
s.recv(18)
name = b"volume"
s.sendall(struct.pack(">I", 3) + struct.pack(">QII", OPT, 7, 6 + len(name)) + struct.pack(">I", len(name)) + name + b"\0\0")
buf = b""
while True:
    while len(buf) < 20: buf += s.recv(4096)
    _, _, typ, ln = struct.unpack(">QIII", buf[:20])
    while len(buf) < 20 + ln: buf += s.recv(4096)
    buf = buf[20 + ln:]
    if typ == 1: break
    if typ >= 0x80000000: sys.exit("GO refused: %#x" % typ)
open(sys.argv[2], "w").write("ready\n")
sys.stdin.read()
s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 2, 1, 0, 0))
EOF

cat >"$T/revert_kill.py" <<'EOF'
# revert_kill.py SOCKET GUID PID: Snapshot.Revert, then kill -9 the server as
# soon as the reply is in (the revert is recorded by then, the copy running).
import json, os, signal, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
f = s.makefile("rwb")
f.write((json.dumps({"id": 1, "method": "Snapshot.Revert", "params": {"shadow_id": sys.argv[2]}}) + "\n").encode())
f.flush()
while True:
    m = json.loads(f.readline())
    if m.get("id") == 1:
        break
os.kill(int(sys.argv[3]), signal.SIGKILL)
if "error" in m:
    sys.exit("Snapshot.Revert failed: %s" % m["error"])
EOF

ctl() { python3 "$JSON_CTL" "$R/control.sock" "$@"; }
jget() { python3 -c 'import json,sys; print(eval("json.load(sys.stdin)" + sys.argv[1]))' "$1"; }

start() {
        "$VOLSRV" --origin "$T/origin.img" --diff "$T/diff.img" --dir "$R" "$@" || die "vss-volsrv did not start"
        ctl Volume.Status >/dev/null || die "Volume.Status does not answer"
}

attach_mount() {
        LOOP=$(losetup -f --show --direct-io=on "$R/fuse/volume") || return 1
        mkdir -p "$MNT"
        mount "$LOOP" "$MNT"
}

umount_detach() {
        umount "$MNT" && losetup -d "$LOOP" && LOOP=
}

snapshot() { # snapshot GUID: freeze, Snapshot.Create, thaw
        fsfreeze -f "$MNT" || return 1
        ctl Snapshot.Create "{\"shadow_id\":\"{$1}\"}" >/dev/null
        local r=$?
        fsfreeze -u "$MNT"
        return $r
}

write_files() { # write_files PREFIX COUNT
        local i
        for i in $(seq "$2"); do
                head -c $((RANDOM * 37 + i * 4096)) /dev/urandom >"$MNT/$1-$i.bin" || return 1
        done
}

# wait_writers N: until Volume.Status says the live volume is open for
# writing N times (10 s at most).  The kernel sends FUSE's release after the
# last close of fuse/volume asynchronously, and an NBD session ends in its own
# thread after the client's disconnect, so a revert right after a losetup -d
# or a disconnect may still find the volume in use.
wait_writers() {
        local n
        for _ in $(seq 100); do
                n=$(ctl Volume.Status | jget '["open_for_writing"]') || return 1
                [ "$n" = "$1" ] && return 0
                sleep 0.1
        done
        echo "open_for_writing is $n, not $1"
        return 1
}

# wait_log REGEX: until events.log has a line matching REGEX (10 s at most):
# the control loop appends an event shortly after the engine reported it.
wait_log() {
        for _ in $(seq 100); do
                grep -qE "$1" "$R/events.log" 2>/dev/null && return 0
                sleep 0.1
        done
        return 1
}

# revert_done: polls Snapshot.RevertStatus (30 s at most) until the
# revert to GUID is no longer running; prints the final status.
revert_done() {
        local st state
        for _ in $(seq 300); do
                st=$(ctl Snapshot.RevertStatus) || return 1
                state=$(jget '["state"]' <<<"$st")
                [ "$state" != running ] && { echo "$st"; return 0; }
                sleep 0.1
        done
        echo "$st"
        return 1
}

g1=5e0c3a11-7d2b-4e6f-9a10-00000000a001
g2=5e0c3a11-7d2b-4e6f-9a10-00000000a002

# ---- 1. ext4 with two snapshots ---------------------------------------------
truncate -s 512M "$T/origin.img"
start --format --chunk-size 16K
LOOP=$(losetup -f --show --direct-io=on "$R/fuse/volume") || die "losetup of the FUSE volume"
mkfs.ext4 -q -F "$LOOP" || die "mkfs.ext4 on the FUSE volume"
mkdir -p "$MNT" && mount "$LOOP" "$MNT" || die "mount ext4"
write_files a 30 || die "writing files"
sync -f "$MNT"
snapshot $g1 || die "Snapshot.Create g1"
(cd "$MNT" && sha256sum -- *.bin) >"$T/sums-g1"
sha256sum <"$R/fuse/shadows/$g1" >"$T/img-g1"
write_files b 20 && rm -f "$MNT/a-3.bin" && head -c 1M /dev/urandom >"$MNT/a-5.bin" || die "changing files"
sync -f "$MNT"
snapshot $g2 || die "Snapshot.Create g2"
sha256sum <"$R/fuse/shadows/$g2" >"$T/img-g2"
write_files c 20 || die "more files"
# Enough changed chunks that copying them back takes a while.
head -c 192M /dev/urandom >"$MNT/big.bin" && sync -f "$MNT" || die "big file"
cmp -s "$T/img-g1" <(sha256sum <"$R/fuse/volume") && die "the volume should differ from g1 by now"

# ---- 2. in use: mounted (loop device) and an NBD session ---------------------
wait_writers 1 && ok "the loop device holds fuse/volume open for writing" || fail "loop device not counted"
out=$(ctl Snapshot.Revert "{\"shadow_id\":\"{$g1}\"}")
[ $? -ne 0 ] && [ "$(jget '["hresult"]' <<<"$out")" = 0x8004231D ] &&
        ok "revert while mounted: VSS_E_VOLUME_IN_USE" || fail "revert while mounted: $out"
umount_detach || die "umount/detach"
wait_writers 0 || die "fuse/volume still open for writing after umount and losetup -d"
coproc HOLD { python3 "$T/nbd_hold.py" "$R/nbd.sock" "$T/nbd-ready"; }
for _ in $(seq 100); do [ -s "$T/nbd-ready" ] && break; sleep 0.1; done
[ -s "$T/nbd-ready" ] || die "the NBD session on the live export did not start"
wait_writers 1 && ok "the NBD session holds the live volume open for writing" || fail "NBD session not counted"
out=$(ctl Snapshot.Revert "{\"shadow_id\":\"{$g1}\"}")
[ $? -ne 0 ] && [ "$(jget '["hresult"]' <<<"$out")" = 0x8004231D ] &&
        ok "revert with an NBD session on the live export: VSS_E_VOLUME_IN_USE" || fail "revert with NBD: $out"
exec {HOLD[1]}>&-
wait "$HOLD_PID" || fail "the NBD session did not end cleanly"
wait_writers 0 || fail "the NBD session still holds the live volume after it ended"
st=$(ctl Snapshot.RevertStatus)
[ "$(jget '["state"]' <<<"$st")" = none ] && ok "nothing was started" || fail "status after refusals: $st"

# ---- 3. revert, a second one behind it, status, content ----------------------
out=$(ctl Snapshot.Revert "{\"shadow_id\":\"{$g1}\"}" "{\"shadow_id\":\"{$g1}\"}")
first=$(sed -n 1p <<<"$out") second=$(sed -n 2p <<<"$out")
[ "$first" = "{}" ] && ok "Snapshot.Revert {g1} accepted" || fail "Snapshot.Revert: $first"
[ "$(jget '["hresult"]' <<<"$second")" = 0x80042325 ] && ok "a second revert: VSS_E_REVERT_IN_PROGRESS" ||
        fail "second revert: $second"
st=$(revert_done) || fail "revert still running after 30 s: $st"
[ "$(jget '["state"]' <<<"$st")" = done ] && [ "$(jget '["hresult"]' <<<"$st")" = 0x0004230A ] &&
        [ "$(jget '["shadow_id"]' <<<"$st")" = "{$g1}" ] && [ "$(jget '["discarded"]' <<<"$st")" = 1 ] &&
        [ "$(jget '["chunks_done"]' <<<"$st")" = "$(jget '["chunks_total"]' <<<"$st")" ] &&
        ok "RevertStatus: done, VSS_S_ASYNC_FINISHED, 1 newer discarded" || fail "RevertStatus: $st"
wait_log "\"type\": *\"discarded\", *\"shadow_id\": *\"\\{$g2\\}\"" &&
        ok "events.log: g2 discarded" || fail "no discarded event for g2: $(cat "$R/events.log")"
wait_log "\"type\": *\"reverted\".*\"error\": *null" &&
        ok "events.log: the revert ended without error" || fail "no reverted event: $(cat "$R/events.log")"
list=$(ctl Snapshot.List)
[ "$(jget '["snapshots"].__len__()' <<<"$list")" = 1 ] && [ "$(jget '["snapshots"][0]["shadow_id"]' <<<"$list")" = "{$g1}" ] &&
        ok "g1 listed, g2 gone" || fail "Snapshot.List: $list"
[ ! -e "$R/fuse/shadows/$g2" ] || fail "the g2 shadow file is still there"
cmp -s "$T/img-g1" <(sha256sum <"$R/fuse/volume") && ok "volume image = g1's (sha256)" || fail "volume image differs from g1"
cmp -s "$T/img-g1" <(sha256sum <"$R/fuse/shadows/$g1") && ok "g1 shadow unchanged" || fail "g1 shadow changed"
attach_mount || die "mount after the revert"
(cd "$MNT" && sha256sum -- *.bin) | cmp -s - "$T/sums-g1" && ok "the files are g1's (sha256)" ||
        fail "files differ from g1's"
# The volume goes on: writes after the revert.
write_files d 10 && sync -f "$MNT" && ok "writable after the revert" || fail "writing after the revert"
umount_detach || die "umount/detach"

# ---- 4. kill -9 during a revert: completed at the next start -----------------
resumed=
for attempt in 1 2 3; do
        attach_mount || die "mount for attempt $attempt"
        head -c 192M /dev/urandom >"$MNT/big2.bin" && sync -f "$MNT" || die "big file"
        umount_detach || die "umount/detach"
        wait_writers 0 || die "fuse/volume still open for writing after umount and losetup -d"
        pid=$(server_pid)
        python3 "$T/revert_kill.py" "$R/control.sock" "{$g1}" "$pid" || die "revert + kill"
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && die "the server survived kill -9"
        start
        st=$(ctl Snapshot.RevertStatus)
        cmp -s "$T/img-g1" <(sha256sum <"$R/fuse/volume") && ok "after kill -9 and restart: volume image = g1's" ||
                fail "after kill -9 and restart the volume differs from g1 ($st)"
        if [ "$(jget '["resumed"]' <<<"$st")" = True ]; then
                [ "$(jget '["state"]' <<<"$st")" = done ] && ok "the interrupted revert completed at open" ||
                        fail "resumed revert: $st"
                resumed=1
                break
        fi
        echo "attempt $attempt: the copy ended before the kill ($st), again"
done
[ -n "$resumed" ] || fail "no kill -9 landed inside a revert in 3 attempts"

grep -E "ERROR: (Address|Leak|Undefined)Sanitizer|runtime error" "$R/volsrv.log" && fail "sanitizer report in volsrv.log"
check_exit
