#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The etcd client against a real three-member cluster, from inside the hosts'
# namespaces: put/get/delete, prefixes, binary-safe values, and the
# create-once transaction the cluster protocol is built on (of three hosts
# racing to create one key, exactly one wins and the others read its value).
. "$(dirname "$0")/lib.sh"
cl_init
cl_net_up
cl_etcd_start_all

cl_log "put on host 1, get on host 2 and 3"
cl_run cl_tool 1 put /t/a "hello world"
cl_assert_rc 0
cl_assert_contains "$OUT" "revision="
for h in 2 3; do
        cl_run cl_tool "$h" get /t/a
        cl_assert_rc 0
        cl_assert_contains "$OUT" "/t/a=hello world create="
        cl_assert_contains "$OUT" "count=1"
done

cl_log "values with every base64 padding length and JSON-special bytes"
for v in x xy xyz 'quote"back\slash' 'tab	and ünïcode'; do
        cl_run cl_tool 1 put /t/v "$v"
        cl_assert_rc 0
        cl_run cl_tool 3 get /t/v
        cl_assert_rc 0
        cl_assert_contains "$OUT" "/t/v=$v create="
done

cl_log "prefix get and delete; the prefix does not match /t2"
cl_run cl_tool 2 put /t/b 2
cl_run cl_tool 2 put /t2 other
cl_run cl_tool 1 get /t/ --prefix
cl_assert_rc 0
cl_assert_contains "$OUT" "count=3"
cl_assert_not_contains "$OUT" "/t2="
cl_run cl_tool 1 get /nothing
cl_assert_rc 0
cl_assert_contains "$OUT" "count=0"
cl_run cl_tool 3 del /t/ --prefix
cl_assert_rc 0
cl_assert_eq "$OUT" "deleted=3"
cl_run cl_tool 1 get /t2
cl_assert_contains "$OUT" "/t2=other"

cl_log "create-once: three hosts race for one key, exactly one wins"
for h in 1 2 3; do
        cl_in "$h" "$ETCD_TOOL" --endpoints "$(cl_endpoints)" create /t/decision "host$h" >"$T/race.$h" 2>&1 &
        CL_PIDS+=($!)
done
wins=0
for h in 1 2 3; do
        if wait "${CL_PIDS[$((h - 1))]}"; then
                wins=$((wins + 1))
                winner=host$h
        fi
done
cl_assert_eq "$wins" 1 "create-once winners"
cl_run cl_tool 2 get /t/decision
cl_assert_contains "$OUT" "/t/decision=$winner create="
for h in 1 2 3; do
        if [[ "host$h" != "$winner" ]]; then
                cl_assert_contains "$(cat "$T/race.$h")" "exists $winner"
        fi
done
cl_run cl_tool 1 create /t/decision again
cl_assert_rc 6
cl_assert_eq "$OUT" "exists $winner"

echo "PASS: $CL_NAME"
