#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Write-back across a handover (docs/volsrv.md "Write-back memory"), on a real FUSE
# mount, without vssd.  Usage: test-writeback.sh PATH/TO/vss-volsrv
#
# The servers run with write-back on and --writeback-interval 0, so first writes after
# a snapshot stay in the write-back memory until a flush: what a kill finds there is
# every such write, not the few of the last 100 ms.
#  1. A snapshot, then 2048 random 4 KiB writes (O_DIRECT, no fsync, the file held
#     open) that the server acknowledged from its write-back memory; kill -9 of the
#     server; a replacement writes them back before it serves: the volume reads back
#     as written, the snapshot as before, and after a clean stop so does the image.
#  2. A load of random 4 KiB writes, each followed by fdatasync, logging each one
#     fdatasync acknowledged; SIGSTOP of the server, then kill -9 (what vssd does past
#     its deadline) and a replacement; kill -9 of that one during the load and another
#     replacement: the load completes without an error and every acknowledged write
#     reads back identical; the snapshot is unchanged.
#  3. The write-back memory corrupted while the server is stopped, then kill -9: the
#     replacement cannot write it back, says so, and every fsync of the volume fails
#     with EIO from then on (never a silent loss), also after one more handover.
#  4. A holder that keeps no write-back memory (an older version's) is replaced by the next
#     server with one that does, the connection kept; that memory survives a kill -9.
#
# Everything lives under one /tmp/volsrv-wb.* directory, torn down by the EXIT trap.
set -u -o pipefail

VOLSRV=${1:?usage: test-writeback.sh PATH/TO/vss-volsrv}
VOLSRV=$(readlink -f "$VOLSRV")
CTL="python3 $(cd "$(dirname "$0")/../.." && pwd)/bench/cow-ctl.py"

skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "needs root"
[ -c /dev/fuse ] || skip "no /dev/fuse"
[ -x "$VOLSRV" ] || { echo "FAIL: $VOLSRV not built"; exit 1; }
command -v python3 >/dev/null || { echo "FAIL: python3 is missing"; exit 1; }

T=$(mktemp -d /tmp/volsrv-wb.XXXXXX)
R=$T/run
PIDS=()

. "$(dirname "$0")/holder-lib.sh"


. "$(dirname "$0")/../check.sh"

fail() { tail -n 20 "$T/start.log" "$R/volsrv.log" >&2 2>/dev/null; die "$*"; }
wait_for() { local s=$1 what=$2; shift 2; wait_until "$s" "$@" || fail "timed out: $what"; }
start_server() {
        wait_for 10 "the previous server's instance lock released" unlocked
        "$VOLSRV" --origin "$T/origin.img" --diff "$T/diff.img" --dir "$R" --writeback 64M \
                --writeback-interval 0 "$@" 2>>"$T/start.log" || fail "vss-volsrv did not start"
        PIDS+=("$(server_pid)")
        wait_for 5 "a holder for $R" holder_pid >/dev/null
}
kill_server() {
        local p
        p=$(server_pid)
        kill -9 "$p"
        wait_for 5 "the killed server gone" gone "$p"
}
dirty() { $CTL "$R/control.sock" Storage.Stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["dirty_bytes"])'; }
# A server logs to the starter's stderr until it is ready, then to volsrv.log.
log_count() { cat "$T/start.log" "$R/volsrv.log" 2>/dev/null | grep -c -- "$1"; }

# The writer: python3 writer.py VOLUME EXPECT SEED N SYNC DONEFILE [ACKLOG]: N random 4 KiB
# writes at 4 KiB offsets, the same into EXPECT (a plain file); with SYNC each is
# followed by fdatasync and logged to ACKLOG once acknowledged.  Then it touches
# DONEFILE and keeps the volume open until killed (a close would flush).
cat >"$T/writer.py" <<'EOF'
import mmap, os, random, sys, time
vol, expect, seed, n, sync, done = sys.argv[1:7]
ack = open(sys.argv[7], "a") if len(sys.argv) > 7 else None
fd = os.open(vol, os.O_WRONLY | os.O_DIRECT)
e = os.open(expect, os.O_WRONLY)
rnd = random.Random(int(seed))
buf = mmap.mmap(-1, 4096)
blocks = os.fstat(e).st_size // 4096
for i in range(int(n)):
    off = rnd.randrange(blocks) * 4096
    buf[:] = rnd.randbytes(4096)
    os.pwrite(fd, buf, off)
    if sync == "1":
        os.fdatasync(fd)
    os.pwrite(e, buf, off)
    if ack:
        ack.write("%d %d\n" % (i, off)); ack.flush()
open(done, "w").close()
time.sleep(600)
EOF
# The checker: python3 check.py VOLUME EXPECT [ACKLOG]: without ACKLOG the whole volume
# must equal EXPECT; with it, every acknowledged block (its last write) must.
cat >"$T/check.py" <<'EOF'
import os, sys
vol, expect = sys.argv[1:3]
fd = os.open(vol, os.O_RDONLY | os.O_DIRECT)
import mmap
buf = mmap.mmap(-1, 1 << 20)
e = open(expect, "rb")
if len(sys.argv) > 3:
    offs = {int(l.split()[1]) for l in open(sys.argv[3])}
    bad = 0
    for off in sorted(offs):
        os.preadv(fd, [memoryview(buf)[:4096]], off)
        e.seek(off)
        bad += buf[:4096] != e.read(4096)
    print("%d of %d acknowledged blocks differ" % (bad, len(offs)))
    sys.exit(bad != 0 or not offs)
size = os.fstat(fd).st_size
for off in range(0, size, 1 << 20):
    n = os.preadv(fd, [buf], off)
    e.seek(off)
    if buf[:n] != e.read(n):
        print("differs in the MiB at %d" % off)
        sys.exit(1)
EOF

head -c 64M /dev/urandom >"$T/origin.img"
cp "$T/origin.img" "$T/before.img"
cp "$T/origin.img" "$T/expect.img"
start_server --format
g=$(python3 -c 'import uuid; print(uuid.uuid4())')
$CTL "$R/control.sock" Snapshot.Create "{\"shadow_id\":\"{$g}\"}" >/dev/null || fail "Snapshot.Create"
ok "served with a snapshot"

# 1. kill -9 with acknowledged writes only in the write-back memory.
python3 "$T/writer.py" "$R/fuse/volume" "$T/expect.img" 1 2048 0 "$T/done1" &
PIDS+=($!) W=$!
wait_for 60 "2048 writes acknowledged" test -e "$T/done1"
d=$(dirty)
((d > 4 * 1024 * 1024)) || fail "only $d bytes in the write-back memory: nothing to prove"
kill_server
start_server
kill "$W"
[[ $(log_count "wrote back") == 1 ]] || fail "the replacement did not write the predecessor's memory back"
python3 "$T/check.py" "$R/fuse/volume" "$T/expect.img" || fail "the volume does not read back as written"
cmp -s "$R/fuse/shadows/$g" "$T/before.img" || fail "the snapshot changed"
ok "kill -9 with $d bytes acknowledged from the write-back memory: all written back, the snapshot intact"

# 2. fdatasync load across SIGSTOP + kill -9 and a plain kill -9.
python3 "$T/writer.py" "$R/fuse/volume" "$T/expect.img" 2 3000 1 "$T/done2" "$T/acked" &
PIDS+=($!) W=$!
acked() { [[ $(wc -l <"$T/acked" 2>/dev/null || echo 0) -ge $1 ]]; }
wait_for 30 "the load has 200 acknowledged writes" acked 200
p=$(server_pid)
kill -STOP "$p"
# Holds the server stopped with writes in flight; it waits for nothing.
sleep 1
kill -9 "$p"
wait_for 5 "the stopped server gone" gone "$p"
start_server
n=$(wc -l <"$T/acked")
wait_for 30 "the load goes on after the stopped server was replaced" acked $((n + 200))
kill_server
start_server
wait_for 120 "the load completes" test -e "$T/done2"
kill "$W"
gone "$W" || wait "$W" 2>/dev/null
python3 "$T/check.py" "$R/fuse/volume" "$T/expect.img" "$T/acked" || fail "an acknowledged write was lost"
python3 "$T/check.py" "$R/fuse/volume" "$T/expect.img" || fail "the volume does not read back as written"
cmp -s "$R/fuse/shadows/$g" "$T/before.img" || fail "the snapshot changed"
ok "fdatasync load across SIGSTOP + kill -9 and kill -9: completed, every acknowledged write reads back"

# 3. The memory corrupted under a stopped server: never a silent loss.
python3 "$T/writer.py" "$R/fuse/volume" "$T/expect.img" 3 256 0 "$T/done3" &
PIDS+=($!) W=$!
wait_for 30 "256 writes acknowledged" test -e "$T/done3"
p=$(server_pid) h=$(holder_pid)
kill -STOP "$p"
# The holder keeps the memory as its fd 6; garbage over the first descriptors.
head -c 8192 /dev/urandom | dd of="/proc/$h/fd/6" bs=4096 seek=1 conv=notrunc status=none ||
        fail "cannot reach the holder's write-back memory"
kill -9 "$p"
wait_for 5 "the stopped server gone" gone "$p"
start_server
kill "$W"
[[ $(log_count "cannot be written back") -ge 1 ]] || fail "the replacement did not say the writes were lost"
python3 -c 'import os,sys; fd=os.open(sys.argv[1], os.O_WRONLY); os.fsync(fd)' "$R/fuse/volume" 2>/dev/null &&
        fail "fsync succeeded after acknowledged writes were lost"
kill_server
start_server
python3 -c 'import os,sys; fd=os.open(sys.argv[1], os.O_WRONLY); os.fsync(fd)' "$R/fuse/volume" 2>/dev/null &&
        fail "fsync succeeded after one more handover"
ok "corrupted write-back memory: the loss is reported and every fsync fails with EIO, across handovers"

# 4. A holder that keeps no write-back memory (one of an older version; here the same binary
#    started without its fd 6, from the device and state the real one hands out).
cat >"$T/old-holder.py" <<'PY'
import array, os, socket, subprocess, sys
vss, rundir, real = sys.argv[1], sys.argv[2], int(sys.argv[3])
path = rundir + "/fuse-holder.sock"
c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
c.connect(path)
c.sendall(b"G")
msg, anc, _, _ = c.recvmsg(16, socket.CMSG_SPACE(3 * 4))
fds = array.array("i")
for level, kind, data in anc:
    fds.frombytes(data[:len(data) - len(data) % 4])
c.close()
for fd in fds[2:]:
    os.close(fd)
os.kill(real, 9)
os.unlink(path)
l = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
l.bind(path)
l.listen(8)
def place():
    # Out of the way first: any of them may itself be 3, 4 or 5.
    high = [os.dup2(fd, 20 + i) for i, fd in enumerate((fds[0], fds[1], l.fileno()))]
    for i, fd in enumerate(high):
        os.dup2(fd, 3 + i)
    os.setsid()
subprocess.Popen([vss, "--hold-fuse", rundir, "30"], preexec_fn=place, close_fds=False,
                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
PY
p=$(server_pid) h=$(holder_pid)
kill -STOP "$p"
python3 "$T/old-holder.py" "$VOLSRV" "$R" "$h" || fail "cannot start a holder without write-back memory"
wait_for 5 "the real holder gone" gone "$h"
wait_for 5 "the stand-in holder" holder_pid >/dev/null
h=$(holder_pid)
[[ ! -e /proc/$h/fd/6 ]] || fail "the stand-in holder has a write-back memory"
kill -9 "$p"
wait_for 5 "the stopped server gone" gone "$p"
start_server
wait_for 5 "the holder without write-back memory replaced" eval '[[ "$(holder_pid)" != "$h" ]]'
[[ -e /proc/$(holder_pid)/fd/6 ]] || fail "the new holder keeps no write-back memory"
[[ $(log_count "keeps no write-back memory: replacing it") == 1 ]] || fail "no replacement in the log"
n=$(log_count "wrote back")
python3 "$T/writer.py" "$R/fuse/volume" "$T/expect.img" 4 256 0 "$T/done4" &
PIDS+=($!) W=$!
wait_for 30 "256 writes acknowledged" test -e "$T/done4"
kill_server
start_server
kill "$W"
[[ $(log_count "wrote back") == $((n + 1)) ]] || fail "the memory the new holder keeps was not written back"
ok "a holder without write-back memory is replaced by one that keeps it; that memory survives a kill -9"

p=$(server_pid) h=$(holder_pid)
kill -TERM "$p"
wait_for 10 "the server stops" gone "$p"
wait_for 5 "the holder goes with a clean stop" gone "$h"
check_exit
