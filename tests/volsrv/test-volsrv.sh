#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# End-to-end test of vss-volsrv on real FUSE, loop devices, ext4, XFS and NBD
# clients.  Usage: test-volsrv.sh PATH/TO/vss-volsrv
#
#  1. ext4 on loop (--direct-io=on) over fuse/volume; checksums; fsfreeze +
#     Snapshot.Create + thaw; more writes; the shadow (losetup -r, ro,noload)
#     matches the checksums taken at freeze time.
#  2. The shadow read over NBD (qemu-img convert, nbdcopy) equals the FUSE
#     shadow file; fio's nbd engine runs against the live volume of a scratch server.
#  3. Garbage on nbd.sock and control.sock: errors or a disconnect, and the
#     server keeps serving.
#  4. kill -9, restart with the same arguments: every snapshot is listed and
#     byte-identical.
#  5. XFS (ro,norecovery,nouuid).
#  6. A small diff area filling up: the oldest snapshot is evicted (events.log
#     and a Volume.Event notification say so), the newest is intact.
#  7. SIGTERM and Server.Stop end the server cleanly (FUSE unmounted, exit 0).
#  8. (in 6) NBD requests in flight on one connection: fio iodepth 32 with
#     crc32c verify, writes + flushes pipelined and read back, clients that
#     disconnect with requests in flight.
#
# Everything lives under one /tmp/volsrv-test.* directory and is torn down by
# the EXIT trap (mounts, loop devices, servers, FUSE mounts).
set -u -o pipefail

VOLSRV=${1:?usage: test-volsrv.sh PATH/TO/vss-volsrv}
VOLSRV=$(readlink -f "$VOLSRV")

skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "needs root"
[ -c /dev/fuse ] || skip "no /dev/fuse"
command -v losetup >/dev/null && losetup -f >/dev/null 2>&1 || skip "no loop devices"
command -v python3 >/dev/null || { echo "FAIL: python3 is missing"; exit 1; }
command -v mkfs.ext4 >/dev/null || { echo "FAIL: mkfs.ext4 is missing"; exit 1; }
# The NBD clients and XFS are part of what this test proves: missing, it fails.
for t in qemu-img nbdcopy nbdinfo mkfs.xfs; do
        command -v $t >/dev/null ||
                { echo "FAIL: $t is missing (scripts/install-deps.sh installs qemu-utils, libnbd-bin, xfsprogs)"; exit 1; }
done

T=$(mktemp -d /tmp/volsrv-test.XXXXXX)
LOOPS=()
MOUNTS=()
RUNDIRS=()
BGPIDS=()

cleanup() {
        local i
        for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
                mountpoint -q "${MOUNTS[i]}" 2>/dev/null && { umount "${MOUNTS[i]}" 2>/dev/null || umount -l "${MOUNTS[i]}"; }
        done
        for l in "${LOOPS[@]}"; do
                losetup -d "$l" 2>/dev/null
        done
        for p in "${BGPIDS[@]}"; do
                kill "$p" 2>/dev/null
        done
        for r in "${RUNDIRS[@]}"; do
                if [ -s "$r/volsrv.pid" ] && kill -0 "$(cat "$r/volsrv.pid")" 2>/dev/null; then
                        ctl "$r" Server.Stop >/dev/null 2>&1 || kill "$(cat "$r/volsrv.pid")" 2>/dev/null
                        for _ in $(seq 50); do kill -0 "$(cat "$r/volsrv.pid" 2>/dev/null)" 2>/dev/null || break; sleep 0.1; done
                        [ -s "$r/volsrv.pid" ] && kill -9 "$(cat "$r/volsrv.pid")" 2>/dev/null
                fi
                fusermount3 -u -z "$r/fuse" 2>/dev/null || umount -l "$r/fuse" 2>/dev/null
        done
        rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

. "$(dirname "$0")/../check.sh"

cat >"$T/listen.py" <<'EOF'
# listen.py SOCKET OUT: stays connected and appends every notification to OUT.
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rb")
with open(sys.argv[2], "ab", buffering=0) as out:
    for line in f:
        out.write(line)
EOF

cat >"$T/garbage.py" <<'EOF'
# garbage.py nbd|control SOCKET: hostile peers; prints what came back.
import json, os, socket, struct, sys
kind, path = sys.argv[1], sys.argv[2]
def conn():
    s = socket.socket(socket.AF_UNIX); s.connect(path); s.settimeout(5); return s
def drain(s):
    data = b""
    try:
        while True:
            d = s.recv(65536)
            if not d: break
            data += d
    except socket.timeout:
        print("timeout"); sys.exit(1)
    return data
if kind == "nbd":
    OPT = 0x49484156454f5054
    s = conn(); s.recv(18); s.sendall(os.urandom(8192)); drain(s)
    # a 4 GiB option length
    s = conn(); s.recv(18); s.sendall(struct.pack(">IQII", 3, OPT, 7, 0xffffffff)); drain(s)
    # GO then a request with a bad magic, then one past the end
    s = conn(); s.recv(18)
    s.sendall(struct.pack(">IQII", 3, OPT, 7, 6) + b"\0\0\0\0\0\0")
    s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 0, 1, 2**63, 4096))
    s.sendall(struct.pack(">IHHQQI", 0xdeadbeef, 0, 0, 1, 0, 4096))
    d = drain(s)
    # the error reply for the out-of-range read must be there (EINVAL = 22)
    assert struct.pack(">II", 0x67446698, 22) in d, d
    # a write to a shadow export: EPERM (1), and the connection goes on
    s = conn(); s.recv(18)
    name = sys.argv[3].encode()
    s.sendall(struct.pack(">IQII", 3, OPT, 7, 6 + len(name)) + struct.pack(">I", len(name)) + name + b"\0\0")
    s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 1, 7, 0, 512) + b"x" * 512)
    s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 2, 8, 0, 0))
    d = drain(s)
    assert struct.pack(">IIQ", 0x67446698, 1, 7) in d, d
    print("nbd ok")
elif kind == "read":
    # GO on the export and read 64 KiB to stdout: proves the server still serves.
    OPT = 0x49484156454f5054
    s = conn(); s.recv(18)
    name = sys.argv[3].encode()
    s.sendall(struct.pack(">IQII", 3, OPT, 7, 6 + len(name)) + struct.pack(">I", len(name)) + name + b"\0\0")
    s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 0, 9, 0, 65536))
    s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 2, 10, 0, 0))
    d = drain(s)
    i = d.index(struct.pack(">IIQ", 0x67446698, 0, 9))
    sys.stdout.buffer.write(d[i + 16:i + 16 + 65536])
else:
    s = conn()
    s.sendall(b"garbage\n\x00\xff\n[1]\n{\"id\":3,\"method\":\"No.Such\"}\n"
              b"{\"id\":4,\"method\":\"Snapshot.Create\",\"params\":{\"shadow_id\":42}}\n"
              b"{\"id\":5,\"method\":\"Snapshot.Delete\",\"params\":{\"shadow_id\":\"{00000000-0000-0000-0000-0000000000aa}\"}}\n")
    f = s.makefile("rb")
    replies = [json.loads(f.readline()) for _ in range(6)]
    names = [r["error"]["name"] for r in replies]
    assert names == ["E_INVALIDARG"] * 3 + ["VSS_E_NOT_SUPPORTED", "E_INVALIDARG", "VSS_E_OBJECT_NOT_FOUND"], names
    assert replies[5]["error"]["hresult"] == "0x80042308"
    # a line over 1 MiB: an error, then a disconnect
    s = conn(); s.sendall(b"{" + b" " * (1024 * 1024 + 10))
    d = drain(s)
    assert b"E_INVALIDARG" in d, d
    print("control ok")
EOF

cat >"$T/conc.py" <<'EOF'
# conc.py SOCKET: requests in flight on one NBD connection (live export).
#  1. 256 writes of 4 KiB with a FLUSH every 32, sent without waiting for
#     replies: every cookie answered exactly once, no error; then 256 reads
#     in flight return what was written.
#  2. one request at a time (each reply awaited before the next is sent),
#     FUA writes among them: a server that holds replies back to send them
#     together must never hold the one the client waits for.
#  3. 4 KiB writes followed, in the same burst, by a 1 MiB read and small
#     reads: the large reply goes out in one piece after the small ones.
#  4. clients that vanish with writes and reads in flight (the server must
#     neither crash nor leak: sanitizer builds check volsrv.log).
import os, socket, struct, sys, threading
OPT = 0x49484156454f5054
REQ, REP = 0x25609513, 0x67446698
path = sys.argv[1]
def go():
    s = socket.socket(socket.AF_UNIX); s.connect(path); s.settimeout(30)
    s.recv(18)
    s.sendall(struct.pack(">I", 3) + struct.pack(">QII", OPT, 7, 6) + b"\0" * 6)
    buf = b""
    while True:   # option replies until NBD_REP_ACK (1)
        while len(buf) < 20: buf += s.recv(4096)
        _, _, typ, ln = struct.unpack(">QIII", buf[:20])
        while len(buf) < 20 + ln: buf += s.recv(4096)
        buf = buf[20 + ln:]
        if typ == 1: return s, buf
def recvn(s, buf, n):
    while len(buf) < n:
        d = s.recv(1 << 20)
        if not d: raise SystemExit("connection closed early")
        buf += d
    return buf[:n], buf[n:]
N, BS, BASE = 256, 4096, 32 << 20
blocks = {i: os.urandom(BS) for i in range(N)}
s, buf = go()
reqs, cookie, kinds = [], 1000, {}
for i in range(N):
    reqs.append(struct.pack(">IHHQQI", REQ, 0, 1, cookie, BASE + i * BS, BS) + blocks[i]); kinds[cookie] = "w"; cookie += 1
    if i % 32 == 31:
        reqs.append(struct.pack(">IHHQQI", REQ, 0, 3, cookie, 0, 0)); kinds[cookie] = "f"; cookie += 1
t = threading.Thread(target=lambda: s.sendall(b"".join(reqs))); t.start()
seen = {}
for _ in range(len(kinds)):
    h, buf = recvn(s, buf, 16)
    magic, err, c = struct.unpack(">IIQ", h)
    assert magic == REP and err == 0 and c in kinds and c not in seen, (hex(magic), err, c)
    seen[c] = True
t.join()
reqs = [struct.pack(">IHHQQI", REQ, 0, 0, 5000 + i, BASE + i * BS, BS) for i in range(N)]
t = threading.Thread(target=lambda: s.sendall(b"".join(reqs))); t.start()
for _ in range(N):
    h, buf = recvn(s, buf, 16)
    magic, err, c = struct.unpack(">IIQ", h)
    assert magic == REP and err == 0 and 5000 <= c < 5000 + N, (hex(magic), err, c)
    d, buf = recvn(s, buf, BS)
    assert d == blocks[c - 5000], "read back %d differs" % (c - 5000)
t.join()
for i in range(64):
    flags = 1 if i % 8 == 7 else 0      # NBD_CMD_FLAG_FUA
    blocks[i] = os.urandom(BS)
    s.sendall(struct.pack(">IHHQQI", REQ, flags, 1, 7000 + i, BASE + i * BS, BS) + blocks[i])
    h, buf = recvn(s, buf, 16)
    assert struct.unpack(">IIQ", h) == (REP, 0, 7000 + i), h
    s.sendall(struct.pack(">IHHQQI", REQ, 0, 0, 8000 + i, BASE + i * BS, BS))
    h, buf = recvn(s, buf, 16)
    assert struct.unpack(">IIQ", h) == (REP, 0, 8000 + i), h
    d, buf = recvn(s, buf, BS)
    assert d == blocks[i], "QD1 read back %d differs" % i
burst = b"".join(struct.pack(">IHHQQI", REQ, 0, 1, 9000 + i, BASE + i * BS, BS) + blocks[i] for i in range(16))
burst += struct.pack(">IHHQQI", REQ, 0, 0, 9100, BASE, N * BS)
burst += b"".join(struct.pack(">IHHQQI", REQ, 0, 0, 9200 + i, BASE + i * BS, BS) for i in range(16))
s.sendall(burst)
want = {9000 + i for i in range(16)} | {9100} | {9200 + i for i in range(16)}
while want:
    h, buf = recvn(s, buf, 16)
    magic, err, c = struct.unpack(">IIQ", h)
    assert magic == REP and err == 0 and c in want, (hex(magic), err, c)
    want.discard(c)
    if c == 9100:
        d, buf = recvn(s, buf, N * BS)
        assert d == b"".join(blocks[i] for i in range(N)), "1 MiB read differs"
    elif c >= 9200:
        d, buf = recvn(s, buf, BS)
        assert d == blocks[c - 9200], "small read %d differs" % (c - 9200)
s.sendall(struct.pack(">IHHQQI", REQ, 0, 2, 1, 0, 0)); s.close()
for k in range(8):
    s, _ = go()
    data = b"".join(struct.pack(">IHHQQI", REQ, 0, 1, i, BASE + i * 65536, 65536) + b"z" * 65536 +
                    struct.pack(">IHHQQI", REQ, 0, 0, i, BASE + i * 65536, 65536) for i in range(64))
    try:
        s.settimeout(0.2); s.sendall(data[:(k + 1) * len(data) // 9])
    except OSError:
        pass
    s.close()
print("conc ok")
EOF

ctl() { python3 "$JSON_CTL" "$1/control.sock" "${@:2}"; }
# For calls expected to fail: prints the error, never fails the pipeline.
ctl_err() { ctl "$@" || true; }
jget() { python3 -c 'import json,sys; print(eval("json.load(sys.stdin)" + sys.argv[1]))' "$1"; }

start() { # start NAME SIZE [extra args...]: origin + diff under $T/NAME, rundir $T/NAME/run
        local n=$1 size=$2
        shift 2
        mkdir -p "$T/$n"
        [ -e "$T/$n/origin.img" ] || truncate -s "$size" "$T/$n/origin.img"
        RUNDIRS+=("$T/$n/run")
        "$VOLSRV" --origin "$T/$n/origin.img" --diff "$T/$n/diff.img" --dir "$T/$n/run" "$@" ||
                die "vss-volsrv $n did not start"
        ctl "$T/$n/run" Volume.Status >/dev/null || die "$n: Volume.Status does not answer"
}

attach() { # attach FILE [losetup args]: prints the loop device
        local l
        l=$(losetup -f --show "${@:2}" "$1") || return 1
        LOOPS+=("$l")
        echo "$l"
}

detach() {
        losetup -d "$1"
        local keep=()
        for l in "${LOOPS[@]}"; do [ "$l" = "$1" ] || keep+=("$l"); done
        LOOPS=("${keep[@]}")
}

mnt() { # mnt DEV DIR [options]
        mkdir -p "$2"
        mount ${3:+-o "$3"} "$1" "$2" || return 1
        MOUNTS+=("$2")
}

write_files() { # write_files DIR PREFIX COUNT
        local i
        for i in $(seq "$3"); do
                head -c $((RANDOM * 37 + i * 4096)) /dev/urandom >"$1/$2-$i.bin" || return 1
        done
}

g1=3f5b2c1e-0a1b-4c2d-8e3f-123456789a01
g2=3f5b2c1e-0a1b-4c2d-8e3f-123456789a02
g3=3f5b2c1e-0a1b-4c2d-8e3f-123456789a03
g4=3f5b2c1e-0a1b-4c2d-8e3f-123456789a04

# ---- 1. ext4 ---------------------------------------------------------------
start ext4 256M --format
R=$T/ext4/run
LV=$(attach "$R/fuse/volume" --direct-io=on) || die "losetup of the FUSE volume failed"
dio=$(losetup -n -O DIO "$LV" | tr -d ' ')
[ "$dio" = 1 ] && ok "loop over fuse/volume runs with DIO=1" || fail "loop DIO=$dio, expected 1"
mkfs.ext4 -q -F "$LV" || die "mkfs.ext4 on the FUSE volume failed"
mnt "$LV" "$T/ext4/mnt" || die "mount ext4"
write_files "$T/ext4/mnt" a 40 || die "writing files"
sync -f "$T/ext4/mnt"
(cd "$T/ext4/mnt" && sha256sum *.bin) >"$T/ext4/sums1"

fsfreeze -f "$T/ext4/mnt"
ctl "$R" Snapshot.Create "{\"shadow_id\":\"{$g1}\"}" >/dev/null
rc=$?
fsfreeze -u "$T/ext4/mnt"
[ $rc = 0 ] && ok "Snapshot.Create while frozen" || die "Snapshot.Create failed"

# Overwrite everything, add more: the snapshot must not see it.
write_files "$T/ext4/mnt" a 40
write_files "$T/ext4/mnt" b 10
sync -f "$T/ext4/mnt"
(cd "$T/ext4/mnt" && sha256sum *.bin) >"$T/ext4/sums2"
cmp -s "$T/ext4/sums1" "$T/ext4/sums2" && fail "the files did not change after the snapshot"

fsfreeze -f "$T/ext4/mnt"
ctl "$R" Snapshot.Create "{\"shadow_id\":\"$g2\"}" >/dev/null || fail "second Snapshot.Create"
fsfreeze -u "$T/ext4/mnt"
write_files "$T/ext4/mnt" c 5
sync -f "$T/ext4/mnt"

ctl "$R" Snapshot.Create "{\"shadow_id\":\"$g1\"}" >/dev/null && fail "duplicate shadow id accepted"
n=$(ctl "$R" Snapshot.List | jget '["snapshots"].__len__()')
[ "$n" = 2 ] && ok "Snapshot.List shows 2 snapshots" || fail "Snapshot.List shows $n snapshots"

check_shadow() { # check_shadow RUNDIR GUID SUMS FSTYPE-OPTS NAME
        local sl
        sl=$(attach "$1/fuse/shadows/$2" -r) || { fail "losetup -r of shadow $2"; return; }
        if mnt "$sl" "$T/shadow-$5" "$4"; then
                if (cd "$T/shadow-$5" && sha256sum --quiet -c "$3"); then
                        ok "$5: shadow $2 matches the checksums taken at freeze time"
                else
                        fail "$5: shadow $2 content differs"
                fi
                umount "$T/shadow-$5"
        else
                fail "$5: mounting shadow $2 failed"
        fi
        detach "$sl"
}
check_shadow "$R" "$g1" "$T/ext4/sums1" ro,noload ext4-g1
check_shadow "$R" "$g2" "$T/ext4/sums2" ro,noload ext4-g2

# ---- 2. NBD ----------------------------------------------------------------
qemu-img convert -O raw "nbd+unix:///$g1?socket=$R/nbd.sock" "$T/g1-nbd.raw" &&
        cmp "$T/g1-nbd.raw" "$R/fuse/shadows/$g1" &&
        ok "qemu-img convert of the shadow over NBD equals the FUSE shadow" ||
        fail "qemu-img convert over NBD"
rm -f "$T/g1-nbd.raw"
size=$(qemu-img info --output=json "nbd+unix:///$g2?socket=$R/nbd.sock" | jget '["virtual-size"]')
[ "$size" = $((256 * 1024 * 1024)) ] && ok "qemu-img info over NBD" || fail "qemu-img info size $size"
nbdcopy "nbd+unix:///$g2?socket=$R/nbd.sock" "$T/g2-nbd.raw" &&
        cmp "$T/g2-nbd.raw" "$R/fuse/shadows/$g2" &&
        ok "nbdcopy of the shadow equals the FUSE shadow" || fail "nbdcopy over NBD"
rm -f "$T/g2-nbd.raw"
nbdinfo --json "nbd+unix:///$g1?socket=$R/nbd.sock" | grep -q '"is_read_only": true' &&
        ok "nbdinfo: the shadow export is read-only" || fail "nbdinfo on the shadow export"
nbdinfo --list --json "nbd+unix:///?socket=$R/nbd.sock" | grep -q "\"$g2\"" &&
        ok "nbdinfo --list shows the snapshots" || fail "nbdinfo --list"
# ---- 3. hostile peers ----------------------------------------------------------
python3 "$T/garbage.py" nbd "$R/nbd.sock" "$g1" >/dev/null && ok "garbage on nbd.sock: errors/disconnects" ||
        fail "garbage on nbd.sock"
python3 "$T/garbage.py" control "$R/control.sock" >/dev/null && ok "garbage on control.sock: error replies" ||
        fail "garbage on control.sock"
ctl "$R" Volume.Status >/dev/null && python3 "$T/garbage.py" read "$R/nbd.sock" "$g1" >"$T/read.out" &&
        head -c 65536 "$R/fuse/shadows/$g1" | cmp - "$T/read.out" &&
        ok "server still serving after garbage" || fail "server not serving after garbage"

# ---- 4. kill -9 and restart ----------------------------------------------------
umount "$T/ext4/mnt"
detach "$LV"
cp "$R/fuse/shadows/$g1" "$T/g1.before"
cp "$R/fuse/shadows/$g2" "$T/g2.before"
pid=$(cat "$R/volsrv.pid")
kill -9 "$pid"
for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
"$VOLSRV" --origin "$T/ext4/origin.img" --diff "$T/ext4/diff.img" --dir "$R" || die "restart after kill -9 failed"
list=$(ctl "$R" Snapshot.List)
if echo "$list" | grep -q "$g1" && echo "$list" | grep -q "$g2"; then
        ok "both snapshots listed after kill -9 + restart"
else
        fail "snapshots after restart: $list"
fi
cmp "$T/g1.before" "$R/fuse/shadows/$g1" && cmp "$T/g2.before" "$R/fuse/shadows/$g2" &&
        ok "snapshots byte-identical after kill -9 + restart" || fail "snapshot content changed across restart"
rm -f "$T/g1.before" "$T/g2.before"
"$VOLSRV" --origin "$T/ext4/origin.img" --diff "$T/ext4/diff.img" --dir "$R" 2>"$T/second.err" &&
        fail "a second server on the same run dir started"
grep -q 0x8004231D "$T/second.err" && ok "a second server is refused with VSS_E_VOLUME_IN_USE" ||
        fail "second server error: $(cat "$T/second.err")"
ctl "$R" Snapshot.Delete "{\"shadow_id\":\"$g1\"}" >/dev/null && ok "Snapshot.Delete" || fail "Snapshot.Delete"
[ -e "$R/fuse/shadows/$g1" ] && fail "deleted shadow still in fuse/shadows"
ctl_err "$R" Snapshot.Delete "{\"shadow_id\":\"$g1\"}" | grep -q 0x80042308 &&
        ok "deleting it again: VSS_E_OBJECT_NOT_FOUND" || fail "deleting twice"

# SIGTERM: clean exit, FUSE unmounted.
pid=$(cat "$R/volsrv.pid")
kill -TERM "$pid"
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$pid" 2>/dev/null; then
        fail "SIGTERM did not stop the server"
else
        mountpoint -q "$R/fuse" && fail "FUSE still mounted after SIGTERM" || ok "SIGTERM: clean stop, FUSE unmounted"
        grep -q "stopped cleanly" "$R/volsrv.log" || fail "no clean-stop line in volsrv.log"
fi

# ---- 5. XFS ------------------------------------------------------------------------
start xfs 512M --format --chunk-size 64K
R=$T/xfs/run
LV=$(attach "$R/fuse/volume" --direct-io=on) || die "losetup (xfs)"
mkfs.xfs -q -f "$LV" || die "mkfs.xfs"
mnt "$LV" "$T/xfs/mnt" || die "mount xfs"
write_files "$T/xfs/mnt" a 30
sync -f "$T/xfs/mnt"
(cd "$T/xfs/mnt" && sha256sum *.bin) >"$T/xfs/sums1"
xfs_freeze -f "$T/xfs/mnt" 2>/dev/null || fsfreeze -f "$T/xfs/mnt"
ctl "$R" Snapshot.Create "{\"shadow_id\":\"$g3\"}" >/dev/null || fail "Snapshot.Create (xfs)"
fsfreeze -u "$T/xfs/mnt"
write_files "$T/xfs/mnt" a 30
sync -f "$T/xfs/mnt"
check_shadow "$R" "$g3" "$T/xfs/sums1" ro,norecovery,nouuid xfs-g3
umount "$T/xfs/mnt"
detach "$LV"
ctl "$R" Server.Stop >/dev/null || fail "Server.Stop"
for _ in $(seq 100); do mountpoint -q "$R/fuse" || break; sleep 0.1; done
mountpoint -q "$R/fuse" && fail "FUSE still mounted after Server.Stop" || ok "Server.Stop: clean stop"

# ---- 6. diff area filling up -----------------------------------------------------------
# This server runs the concurrent NBD path (the default is serial, see nbd.h).
VSS_VOLSRV_NBD_WORKERS=4 start full 64M --format --chunk-size 4K --max 10M
R=$T/full/run
python3 "$T/listen.py" "$R/control.sock" "$T/full/notes" &
BGPIDS+=($!)
# listen.py opens its output only once it is connected.
wait_until 5 test -e "$T/full/notes" || fail "the control-socket listener did not connect"
dd if=/dev/urandom of="$R/fuse/volume" bs=1M count=8 oflag=direct conv=notrunc,fsync status=none
ctl "$R" Snapshot.Create "{\"shadow_id\":\"$g3\"}" >/dev/null || fail "Snapshot.Create g3"
dd if=/dev/urandom of="$R/fuse/volume" bs=1M count=4 oflag=direct conv=notrunc,fsync status=none
ctl "$R" Snapshot.Create "{\"shadow_id\":\"$g4\"}" >/dev/null || fail "Snapshot.Create g4"
cp "$R/fuse/volume" "$T/full/at-g4.raw"
# 4 MiB copied for g3 + 8 MiB for g4 > 10 MiB: g3 has to go.
dd if=/dev/urandom of="$R/fuse/volume" bs=1M seek=0 count=8 oflag=direct conv=notrunc,fsync status=none
evicted() { grep -q "\"evicted\"" "$T/full/run/events.log" 2>/dev/null && grep -q "$g3" "$T/full/run/events.log"; }
if wait_until 10 evicted; then
        ok "events.log records the eviction of the oldest snapshot"
else
        fail "no eviction in events.log: $(cat "$T/full/run/events.log" 2>/dev/null)"
fi
grep -q '"method":"Volume.Event"' "$T/full/notes" && grep -q "$g3" "$T/full/notes" &&
        ok "Volume.Event notification pushed to the control client" || fail "no Volume.Event notification"
list=$(ctl "$R" Snapshot.List)
echo "$list" | grep -q "$g3" && fail "evicted snapshot still listed"
echo "$list" | grep -q "$g4" && cmp "$T/full/at-g4.raw" "$R/fuse/shadows/$g4" &&
        ok "newest snapshot intact after the eviction" || fail "newest snapshot damaged: $list"
ctl "$R" Storage.Stats | grep -q '"max_bytes": 10485760' && ok "Storage.Stats reports the bound" ||
        fail "Storage.Stats: $(ctl "$R" Storage.Stats)"
ctl "$R" Storage.SetMax '{"max_bytes":null}' >/dev/null && ctl "$R" Storage.Stats | grep -q '"max_bytes": null' &&
        ok "Storage.SetMax null = unbounded" || fail "Storage.SetMax null"
ctl_err "$R" Storage.SetMax '{"max_bytes":"big"}' | grep -q 0x80070057 && ok "Storage.SetMax rejects a string" ||
        fail "Storage.SetMax with a string"
ctl "$R" Volume.Flush >/dev/null || fail "Volume.Flush"

# fio's nbd engine against the live volume of this scratch server.
if command -v fio >/dev/null && fio --enghelp 2>/dev/null | grep -qw nbd; then
        fio --name=volsrv --ioengine=nbd --uri="nbd+unix:///?socket=$R/nbd.sock" --rw=randrw --bs=4k \
            --size=16M --iodepth=4 --numjobs=2 --runtime=2 --time_based --verify=0 >"$T/fio.log" 2>&1 &&
                grep -q "err= 0" "$T/fio.log" && ok "fio nbd engine (2 connections)" || fail "fio: $(tail -5 "$T/fio.log")"
        # One connection, 32 requests in flight (served concurrently, replied
        # out of order), every block checked after the writes.
        fio --name=volsrvq --ioengine=nbd --uri="nbd+unix:///?socket=$R/nbd.sock" --rw=randwrite --bs=4k \
            --offset=16M --size=16M --iodepth=32 --numjobs=1 --verify=crc32c --do_verify=1 \
            --verify_fatal=1 >"$T/fioq.log" 2>&1 &&
                grep -q "err= 0" "$T/fioq.log" && ok "fio nbd engine, iodepth 32 on one connection, verify=crc32c" ||
                fail "fio iodepth 32: $(tail -5 "$T/fioq.log")"
fi
python3 "$T/conc.py" "$R/nbd.sock" >"$T/conc.out" 2>&1 &&
        ok "NBD: 256 writes + flushes in flight, read back; clients vanishing mid-flight" ||
        fail "NBD requests in flight: $(tail -5 "$T/conc.out")"
ctl "$R" Volume.Status >/dev/null && python3 "$T/garbage.py" read "$R/nbd.sock" "" >/dev/null &&
        ok "server still serving NBD after clients vanished mid-flight" || fail "server not serving after mid-flight disconnects"
pid=$(cat "$R/volsrv.pid")
ctl "$R" Server.Stop >/dev/null || fail "Server.Stop (full)"
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done

# The same on the default, serial NBD path, which batches reads and replies
# (nbd-server.c, fd_chan), with a snapshot so that first writes go through the
# engine's write-back buffers.
start serial 64M --format --chunk-size 16K
R=$T/serial/run
ctl "$R" Snapshot.Create "{\"shadow_id\":\"$g3\"}" >/dev/null || fail "Snapshot.Create (serial)"
python3 "$T/conc.py" "$R/nbd.sock" >"$T/conc-serial.out" 2>&1 &&
        ok "NBD serial path: requests in flight, one at a time, 1 MiB read after batched replies" ||
        fail "NBD serial path: $(tail -5 "$T/conc-serial.out")"
ctl "$R" Volume.Status >/dev/null && python3 "$T/garbage.py" read "$R/nbd.sock" "" >/dev/null &&
        ok "serial server still serving NBD after clients vanished mid-flight" ||
        fail "serial server not serving after mid-flight disconnects"
pid=$(cat "$R/volsrv.pid")
ctl "$R" Server.Stop >/dev/null || fail "Server.Stop (serial)"
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done

# Bad arguments.
"$VOLSRV" --origin "$T/nope.img" --diff "$T/x" --dir "$T/y" --foreground 2>"$T/err" && fail "missing origin accepted"
grep -q 0x80042308 "$T/err" && ok "missing origin: VSS_E_OBJECT_NOT_FOUND" || fail "missing origin: $(cat "$T/err")"
truncate -s 1M "$T/junk.img"
"$VOLSRV" --origin "$T/ext4/origin.img" --diff "$T/junk.img" --dir "$T/junkrun" 2>"$T/err" && fail "junk diff area accepted"
RUNDIRS+=("$T/junkrun")
grep -q 0x8004230C "$T/err" && ok "junk diff area: VSS_E_VOLUME_NOT_SUPPORTED" || fail "junk diff area: $(cat "$T/err")"
"$VOLSRV" --origin a --diff b --dir c --chunk-size 3K 2>"$T/err" && fail "bad chunk size accepted"
grep -q 0x80070057 "$T/err" && ok "bad --chunk-size: E_INVALIDARG" || fail "bad chunk size: $(cat "$T/err")"

# Sanitizer builds: the daemons' reports land in their volsrv.log.
for log in "$T"/*/run/volsrv.log; do
        if grep -qE "AddressSanitizer|LeakSanitizer|runtime error:" "$log"; then
                fail "sanitizer report in $log:"
                cat "$log"
        fi
done

check_exit
