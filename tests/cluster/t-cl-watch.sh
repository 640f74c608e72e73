#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Watches against the real cluster: changes made on another host arrive in
# order with their revisions; when the member a watch streams from is killed,
# the watch reopens on another member from the revision after the last one it
# delivered, so the changes made while it was down arrive too, once each.
# A watch from a compacted revision is -ECANCELED.
. "$(dirname "$0")/lib.sh"
cl_init
cl_net_up
cl_etcd_start_all

cl_log "watch on host 1 (streaming from member 1), changes from host 2"
cl_in 1 "$ETCD_TOOL" --endpoints "$(cl_endpoints)" --timeout-ms 20000 watch /w/ --prefix --count 6 >"$T/watch.out" 2>"$T/watch.err" &
watcher=$!
CL_PIDS+=("$watcher")
cl_wait_until 10 "the watch is confirmed" grep -q ready "$T/watch.out"
cl_run cl_tool 2 put /w/a 1
cl_run cl_tool 2 put /w/b 2
cl_run cl_tool 2 del /w/a
cl_wait_until 10 "three events" bash -c "[[ \$(grep -c -E '^(PUT|DELETE)' '$T/watch.out') -ge 3 ]]"

cl_log "kill member 1 under the watch; change keys while the watch reconnects"
cl_etcd_kill 1
# Member 1 may have been the leader: the deadline covers an election (1-2 s here).
cl_run cl_tool 2 --timeout-ms 6000 put /w/c 3
cl_assert_rc 0
cl_run cl_tool 3 put /w/d 4
cl_run cl_tool 3 put /w/b 5
if ! wait "$watcher"; then
        cl_fail "watch did not deliver 6 events: $(cat "$T/watch.out" "$T/watch.err")"
fi
mapfile -t ev < <(grep -E '^(PUT|DELETE)' "$T/watch.out" | sed 's/ mod=.*//')
cl_assert_eq "${ev[*]}" "PUT /w/a=1 PUT /w/b=2 DELETE /w/a PUT /w/c=3 PUT /w/d=4 PUT /w/b=5" "events in order, none lost or repeated"
revs=$(grep -oE 'mod=[0-9]+' "$T/watch.out" | cut -d= -f2 | tr '\n' ' ')
sorted=$(tr ' ' '\n' <<<"$revs" | grep . | sort -n | uniq | tr '\n' ' ')
cl_assert_eq "$revs" "$sorted" "revisions strictly increasing"
cl_assert_contains "$(cat "$T/watch.err")" "recovered from: watch on $(cl_endpoint 1) broke"

cl_log "a watch from a compacted revision: -ECANCELED"
cl_etcd_start 1
cl_wait_until 30 "etcd cluster healthy again" cl_etcd_healthy
cl_run cl_tool 2 put /w/e 6
rev=$(grep -oE 'revision=[0-9]+' <<<"$OUT" | cut -d= -f2)
cl_in 2 env ETCDCTL_API=3 etcdctl --endpoints "$(cl_endpoint 2)" compact "$rev" >/dev/null
cl_run cl_tool 1 --timeout-ms 3000 watch /w/ --prefix --rev 2
cl_assert_rc 1
cl_assert_contains "$ERR" "Operation canceled"
cl_assert_contains "$ERR" "compacted"

echo "PASS: $CL_NAME"
