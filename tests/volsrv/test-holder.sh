#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The FUSE holder and its deadline (docs/volsrv.md "Handover"), on a real FUSE
# mount, without vssd.  Usage: test-holder.sh PATH/TO/vss-volsrv
#
#  1. A server with --hold-deadline 3 stays served while idle for longer than
#     the deadline (its lease thread renews the lease every second).
#  2. kill -9 of the server, a replacement within the deadline: it takes the
#     connection over (same FUSE connection, a reader blocked across the kill
#     gets its data).
#  3. kill -9 of the holder: the server starts a new one (the mount is still
#     protected: a kill -9 of the server after that is taken over again).
#  4. kill -9 of the server and no replacement: a reader blocked on the volume
#     fails (does not hang) within the deadline + 2 s, the holder is gone, so is
#     the connection; a new server mounts anew and serves.
#  5. SIGSTOP of the server: after the deadline the holder aborts the
#     connection, a blocked reader fails instead of hanging; the stopped server
#     is killed, a new one mounts anew.
#
# Everything lives under one /tmp/volsrv-holder.* directory, torn down by the
# EXIT trap (the servers and holders it started, by pid, and the FUSE mount).
set -u -o pipefail

VOLSRV=${1:?usage: test-holder.sh PATH/TO/vss-volsrv}
VOLSRV=$(readlink -f "$VOLSRV")
DEADLINE=3

skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "needs root"
[ -c /dev/fuse ] || skip "no /dev/fuse"
[ -x "$VOLSRV" ] || { echo "FAIL: $VOLSRV not built"; exit 1; }

T=$(mktemp -d /tmp/volsrv-holder.XXXXXX)
R=$T/run
PIDS=()

. "$(dirname "$0")/holder-lib.sh"


. "$(dirname "$0")/../check.sh"

# Every failure ends the test: each step needs the state the one before left.
fail() { logs | tail -n 20 >&2; die "$*"; }
# logs: what the servers and holders said (before a server detaches, on the starter's stderr).
logs() { cat "$T/start.log" "$R/volsrv.log" 2>/dev/null; }
# wait_for SECONDS WHAT CMD...: check.sh's wait_until, failing with WHAT.
wait_for() { local s=$1 what=$2; shift 2; wait_until "$s" "$@" || fail "timed out: $what"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
start_server() {
        wait_for 10 "the previous server's instance lock released" unlocked
        "$VOLSRV" --origin "$T/origin.img" --diff "$T/diff.img" --dir "$R" --hold-deadline "$DEADLINE" "$@" \
                2>>"$T/start.log" ||
                fail "vss-volsrv did not start"
        PIDS+=("$(server_pid)")
        wait_for 5 "a holder for $R" holder_pid >/dev/null
        PIDS+=("$(holder_pid)")
}
# conn: the FUSE connection's number (the minor of the mount's st_dev; major 0).
conn() { local d; d=$(timeout 5 stat -c %d "$R/fuse") && echo $((d & 0xff | (d >> 12 & ~0xff))); }
# aborted: the mount answers at once, with "Transport endpoint is not connected".
aborted() { local e; e=$(timeout 5 stat "$R/fuse" 2>&1); [[ $? != 124 && $e == *"not connected"* ]]; }
reads() { timeout 10 dd if="$R/fuse/volume" of=/dev/null bs=4k count=1 iflag=direct status=none; }

truncate -s 64M "$T/origin.img"
start_server --format
CONN=$(conn)
reads || fail "a fresh server does not serve $R/fuse/volume"
ok "served on FUSE connection $CONN, holder $(holder_pid)"

# 1. idle for twice the deadline: the lease keeps it.  (A bare sleep on purpose: nothing
#    must happen meanwhile, and idleness is what is tested.)
sleep $((2 * DEADLINE))
reads || fail "the holder aborted a live, idle server's connection"
ok "idle for $((2 * DEADLINE)) s with --hold-deadline $DEADLINE: still served"

# 2. kill -9, a replacement within the deadline takes over; a reader blocked across the kill gets its data.
kill -9 "$(server_pid)"
wait_for 5 "the killed server gone" gone "${PIDS[0]}"
( reads && echo ok >"$T/blocked" || echo fail >"$T/blocked" ) &
PIDS+=($!)
start_server
wait_for 10 "the reader blocked across the kill returns" test -s "$T/blocked"
[[ $(cat "$T/blocked") == ok ]] || fail "a read blocked across the kill failed"
[[ $(conn) == "$CONN" ]] || fail "not the same connection: $(conn), was $CONN"
# The server's log line may land after the data it served: wait for it.
takeovers() { [[ $(logs | grep -c "took over the connection") -ge $1 ]]; }
wait_until 5 takeovers 1 || fail "no takeover in the log"
ok "kill -9 and a replacement within $DEADLINE s: taken over, the blocked reader got its data"

# 3. kill -9 of the holder: the server starts a new one.
h=$(holder_pid)
kill -9 "$h"
wait_for 10 "a new holder" eval '[[ -n "$(holder_pid)" && "$(holder_pid)" != "$h" ]]'
PIDS+=("$(holder_pid)")
p=$(server_pid)
kill -9 "$p"
wait_for 5 "the killed server gone" gone "$p"
start_server
reads || fail "not served after the holder was replaced and the server killed"
[[ $(conn) == "$CONN" ]] || fail "the connection did not survive"
wait_until 5 takeovers 2 || fail "no second takeover"
ok "kill -9 of the holder: a new holder, and the connection still outlives a kill -9 of the server"

# 4. kill -9 and no replacement: a blocked reader fails within the deadline + 2 s.
# aborted_after WHY HOLDER: a read blocks until the holder aborts the connection, within the
# deadline + 2 s; the holder exits, saying WHY; a new server mounts anew and serves.  Sets dt.
aborted_after() {
        local t0
        t0=$(now_ms)
        reads && fail "a read succeeded while nobody serves"
        dt=$(($(now_ms) - t0))
        ((dt < (DEADLINE + 2) * 1000)) || fail "the blocked reader waited $dt ms (deadline $DEADLINE s)"
        wait_for 5 "the holder exits" gone "$2"
        aborted || fail "connection $CONN not aborted"
        logs | grep -q "$1" || fail "the holder did not say why it aborted ($1)"
        start_server
        CONN=$(conn)
        reads || fail "a new server after the abort does not serve"
}
kill -9 "$(server_pid)"
aborted_after "no volume server took over" "$(holder_pid)"
ok "kill -9 and no server: the reader failed after $dt ms, holder and connection gone; a new server serves"

# 5. SIGSTOP: the lease lapses, the holder kills the server and aborts after the deadline.
p=$(server_pid)
kill -STOP "$p"
aborted_after "did not renew its lease" "$(holder_pid)"
gone "$p" || fail "the holder did not kill the stopped server"
ok "SIGSTOP: the reader failed after $dt ms instead of hanging; a new server serves"

p=$(server_pid) h=$(holder_pid)
kill -TERM "$p"
wait_for 10 "the server stops" gone "$p"
wait_for 5 "the holder goes with a clean stop" gone "$h"
! mountpoint -q "$R/fuse" || fail "$R/fuse still mounted after a clean stop"
ok "a clean stop ends server, holder and mount"
check_exit
