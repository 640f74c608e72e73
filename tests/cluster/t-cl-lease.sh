#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Leases against the real cluster: a key attached to a lease lives while the
# lease is kept alive (well past its TTL), disappears within TTL plus etcd's
# expiry slack once nobody keeps it alive, and at once on revoke; keepalive of
# a gone lease is a clear -ENOENT (exit 5), which is how vssd learns that its
# host record expired and must be written again.
. "$(dirname "$0")/lib.sh"
cl_init
cl_net_up
cl_etcd_start_all

lease_of()
{
        [[ "$OUT" =~ lease=([0-9]+)\ ttl=([0-9]+) ]] || cl_fail "no lease in: $OUT"
        echo "${BASH_REMATCH[1]}"
}

cl_log "a key on a 2 s lease kept alive for 5 s (every 500 ms, from another host)"
cl_run cl_tool 1 lease-grant 2
cl_assert_rc 0
cl_assert_contains "$OUT" "ttl=2"
lease=$(lease_of)
cl_run cl_tool 1 put /hosts/h1 alive --lease "$lease"
cl_assert_rc 0
cl_run cl_tool 2 get /hosts/h1
cl_assert_contains "$OUT" "/hosts/h1=alive"
cl_assert_contains "$OUT" "lease=$(printf %x "$lease")"
cl_run cl_tool 2 keepalive "$lease" --every-ms 500 --count 10
cl_assert_rc 0
[[ $(grep -c '^ttl=2$' <<<"$OUT") -eq 10 ]] || cl_fail "10 keepalives renewing to ttl=2 expected: $OUT"
cl_run cl_tool 3 get /hosts/h1
cl_assert_contains "$OUT" "/hosts/h1=alive" "key kept alive past its TTL"

cl_log "nobody keeps it alive: the key is gone within TTL + slack"
start=$SECONDS
cl_wait_until 6 "the leased key expires" bash -c "! '$ETCD_TOOL' --endpoints '$(cl_endpoints)' get /hosts/h1 | grep -q /hosts/h1="
cl_log "expired after $((SECONDS - start)) s"
cl_run cl_tool 1 get /hosts/h1
cl_assert_rc 0
cl_assert_contains "$OUT" "count=0"

cl_log "keepalive of the expired lease: -ENOENT"
cl_run cl_tool 1 keepalive "$lease"
cl_assert_rc 5
cl_assert_contains "$ERR" "not found"

cl_log "revoke removes the lease's keys at once"
cl_run cl_tool 3 lease-grant 30
lease=$(lease_of)
cl_run cl_tool 3 put /lock set-1 --lease "$lease"
cl_run cl_tool 3 create /lock set-2
cl_assert_rc 6
cl_run cl_tool 1 revoke "$lease"
cl_assert_rc 0
cl_run cl_tool 2 create /lock set-2
cl_assert_rc 0
cl_run cl_tool 1 revoke "$lease"
cl_assert_rc 5
cl_assert_contains "$ERR" "lease not found"

echo "PASS: $CL_NAME"
