# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
#
# The cluster test harness (tests/cluster/t-*.sh): three hosts as three network
# namespaces on one bridge, and a three-member etcd cluster, one member per
# host, listening on the hosts' addresses.  Everything lives in the test's own
# temp dir $T and is removed by the EXIT trap: etcd processes (killed by pid,
# also stopped ones), namespaces, the bridge and veths, nftables rules (they
# live inside the namespaces), the subnet lock.
#
#   cl_init                         prerequisites (root, ip, nft, etcd), $T, trap,
#                                   a free subnet 10.231.S.0/24 (S locked under /run)
#   cl_net_up                       namespaces ${CL_NS[1..3]}, host i = 10.231.S.i,
#                                   the root namespace = 10.231.S.254 on the bridge
#   cl_etcd_start_all               three members (client port 23790, peer 23791 on
#                                   each host's address), waits for a leader
#   cl_etcd_kill I / cl_etcd_start I   kill -9 a member / start it again on its data dir
#   cl_etcd_stop_quorum             kill two of three members (1 stays: no quorum)
#   cl_cut I / cl_restore I         drop every packet in and out of host I but loopback
#                                   (nftables inside its namespace: a silent partition,
#                                   connections hang rather than fail) / lift it
#   cl_in I CMD...                  run CMD inside host I's namespace
#   cl_tool I ARGS...               etcd-tool on host I with all three endpoints
#   cl_run CMD...                   $OUT (stdout), $ERR (stderr), $RC; never trips set -e
#   cl_elapsed_ms                   the elapsed_ms etcd-tool printed in $ERR
#   cl_assert_eq / _contains / _not_contains / _rc / _le, cl_wait_until SECS WHAT CMD...
#
# Environment (tests/cluster/meson.build): ETCD_TOOL, BUILD_DIR.

set -euo pipefail

# ok, fail, die, wait_until, check_exit
. "$(dirname "${BASH_SOURCE[0]}")/../check.sh"

CL_NAME=$(basename "$0" .sh)
CL_PORT_CLIENT=23790
CL_PORT_PEER=23791
CL_NS=()          # [1..3] namespace names
CL_ADDR=()        # [1..3] addresses
CL_ETCD_PID=()    # [1..3] etcd pids ("" when not running)
CL_PIDS=()        # other processes to kill
CL_SUBNET=
CL_LOCK=
CL_BR=
CL_ID=
T=
CL_ETCD_DIR=${CL_ETCD_DIR:-}   # the members' data dirs; default $T/etcd (bench/cluster.sh: tmpfs)
CL_NS_PREFIX=${CL_NS_PREFIX:-openvss-}   # the namespaces' names begin with it

cl_skip()
{
        echo "SKIP: $*" >&2
        exit 77
}

cl_log()
{
        echo "--- $*" >&2
}

cl_dump_logs()
{
        [[ -n "$T" && -d "$T" ]] || return 0
        local i
        for i in 1 2 3; do
                if [[ -f "$T/etcd/m$i.log" ]]; then
                        echo "=== last lines of etcd member m$i ($T/etcd/m$i.log):"
                        tail -n 15 "$T/etcd/m$i.log"
                fi
        done
        if [[ -f "$T/commands.log" ]]; then
                echo "=== last commands:"
                tail -n 30 "$T/commands.log"
        fi
}

cl_fail()
{
        echo "FAIL: $*" >&2
        cl_dump_logs >&2 || true
        exit 1
}

cl_cleanup()
{
        local rc=$? i pid
        set +e
        for pid in "${CL_PIDS[@]}" "${CL_ETCD_PID[@]}"; do
                [[ -n "$pid" ]] || continue
                kill -CONT "$pid" 2>/dev/null
                kill -9 "$pid" 2>/dev/null
        done
        for pid in "${CL_PIDS[@]}" "${CL_ETCD_PID[@]}"; do
                [[ -n "$pid" ]] && wait "$pid" 2>/dev/null
        done
        for i in 1 2 3; do
                [[ -n "${CL_NS[$i]:-}" ]] || continue
                ip link del "${CL_ID}h$i" 2>/dev/null
                ip netns del "${CL_NS[$i]}" 2>/dev/null
        done
        [[ -n "$CL_BR" ]] && ip link del "$CL_BR" 2>/dev/null
        [[ -n "$CL_LOCK" ]] && rmdir "$CL_LOCK" 2>/dev/null
        [[ -n "$CL_ETCD_DIR" && "$CL_ETCD_DIR" != "$T/etcd" ]] && rm -rf "$CL_ETCD_DIR"
        if [[ -n "$T" && -d "$T" ]]; then
                if [[ $rc -ne 0 && $rc -ne 77 && -n "${CL_KEEP_ON_FAIL:-}" ]]; then
                        echo "(kept $T for inspection)" >&2
                else
                        rm -rf "$T"
                fi
        fi
        exit "$rc"
}

cl_init()
{
        [[ $(id -u) -eq 0 ]] || cl_skip "cluster tests need root (network namespaces)"
        command -v ip >/dev/null || cl_fail "ip (iproute2) is missing; scripts/install-deps.sh installs it"
        command -v nft >/dev/null || cl_fail "nft (nftables) is missing; scripts/install-deps.sh installs it"
        command -v etcd >/dev/null || cl_fail "etcd (Debian etcd-server) is missing; scripts/install-deps.sh installs it"
        [[ -n "${ETCD_TOOL:-}" && -x "$ETCD_TOOL" ]] || cl_fail "ETCD_TOOL '${ETCD_TOOL:-}' is not built"
        ip netns add "${CL_NS_PREFIX}probe-$$" 2>/dev/null || cl_skip "cannot create network namespaces"
        ip netns del "${CL_NS_PREFIX}probe-$$"
        # `ip netns exec` gives each host's processes a mount namespace that copies every
        # mount of the moment.  With / private (a container; systemd makes it shared) those
        # copies never go away: another test's cow volume, unmounted there, stays open here
        # and its revert fails with VSS_E_VOLUME_IN_USE, its loop device stays busy.  A shared
        # / makes the copies slaves that follow every unmount, as on a systemd host.
        awk '$4 == "/" && $5 == "/"' /proc/self/mountinfo | grep -q ' shared:' || mount --make-rshared /

        T=$(mktemp -d "/tmp/tests-cluster-$CL_NAME.XXXXXX")
        trap cl_cleanup EXIT
        : >"$T/commands.log"
        CL_ETCD_DIR=${CL_ETCD_DIR:-$T/etcd}
        # A subnet no other running test holds: the lock directory is the claim.
        local s
        mkdir -p /run/openvss-tests
        for s in $(seq 1 250); do
                if mkdir "/run/openvss-tests/cluster-net-$s" 2>/dev/null; then
                        CL_SUBNET=$s
                        CL_LOCK=/run/openvss-tests/cluster-net-$s
                        break
                fi
        done
        [[ -n "$CL_SUBNET" ]] || cl_fail "no free test subnet (stale /run/openvss-tests/cluster-net-* locks?)"
        # Interface names are at most 15 bytes: "vc" + subnet + role.
        CL_ID="vc$CL_SUBNET"
        CL_BR="${CL_ID}br"
}

cl_net_up()
{
        local i
        ip link add "$CL_BR" type bridge
        ip addr add "10.231.$CL_SUBNET.254/24" dev "$CL_BR"
        ip link set "$CL_BR" up
        for i in 1 2 3; do
                CL_NS[$i]="$CL_NS_PREFIX$CL_ID-h$i"
                CL_ADDR[$i]="10.231.$CL_SUBNET.$i"
                CL_ETCD_PID[$i]=
                ip netns add "${CL_NS[$i]}"
                ip link add "${CL_ID}h$i" type veth peer name "${CL_ID}n$i"
                ip link set "${CL_ID}n$i" netns "${CL_NS[$i]}"
                ip link set "${CL_ID}h$i" master "$CL_BR"
                ip link set "${CL_ID}h$i" up
                ip -n "${CL_NS[$i]}" link set lo up
                ip -n "${CL_NS[$i]}" link set "${CL_ID}n$i" name eth0
                ip -n "${CL_NS[$i]}" addr add "${CL_ADDR[$i]}/24" dev eth0
                ip -n "${CL_NS[$i]}" link set eth0 up
        done
        for i in 1 2 3; do
                cl_wait_until 10 "host $i's link up" cl_link_up "$i"
        done
}

cl_link_up()
{
        [[ "$(ip -n "${CL_NS[$1]}" -o link show eth0)" == *"state UP"* ]]
}

cl_in()
{
        local i=$1
        shift
        ip netns exec "${CL_NS[$i]}" "$@"
}

cl_endpoint()
{
        echo "http://${CL_ADDR[$1]}:$CL_PORT_CLIENT"
}

cl_endpoints()
{
        echo "$(cl_endpoint 1),$(cl_endpoint 2),$(cl_endpoint 3)"
}

# --pre-vote (the default from etcd 3.5 on, not in Debian 12's 3.4): a member coming back
# from a cut link, with the higher term its lonely elections gave it, would otherwise depose
# the leader and leave the cluster without one for an election timeout or more.
cl_etcd_start()
{
        local i=$1 state=existing
        [[ -d "$CL_ETCD_DIR/m$i" ]] || state=new
        mkdir -p "$CL_ETCD_DIR" "$T/etcd"
        ip netns exec "${CL_NS[$i]}" etcd --name "m$i" --data-dir "$CL_ETCD_DIR/m$i" \
                --listen-client-urls "http://${CL_ADDR[$i]}:$CL_PORT_CLIENT" \
                --advertise-client-urls "http://${CL_ADDR[$i]}:$CL_PORT_CLIENT" \
                --listen-peer-urls "http://${CL_ADDR[$i]}:$CL_PORT_PEER" \
                --initial-advertise-peer-urls "http://${CL_ADDR[$i]}:$CL_PORT_PEER" \
                --initial-cluster "m1=http://${CL_ADDR[1]}:$CL_PORT_PEER,m2=http://${CL_ADDR[2]}:$CL_PORT_PEER,m3=http://${CL_ADDR[3]}:$CL_PORT_PEER" \
                --initial-cluster-state "$state" --initial-cluster-token "openvss-test-$CL_SUBNET-$$" \
                --heartbeat-interval 100 --election-timeout 1000 --pre-vote \
                >>"$T/etcd/m$i.log" 2>&1 &
        CL_ETCD_PID[$i]=$!
        echo "etcd m$i started (pid ${CL_ETCD_PID[$i]}, $state)" >>"$T/commands.log"
}

# Every running member knows the same leader and answers a linearizable read.
cl_etcd_healthy()
{
        local i out leaders=()
        for i in 1 2 3; do
                [[ -n "${CL_ETCD_PID[$i]}" ]] || continue
                out=$(cl_in "$i" "$ETCD_TOOL" --endpoints "$(cl_endpoint "$i")" --timeout-ms 500 status 2>/dev/null) || return 1
                [[ "$out" =~ leader=([0-9a-f]+) ]] || return 1
                [[ "${BASH_REMATCH[1]}" != 0 ]] || return 1
                leaders+=("${BASH_REMATCH[1]}")
                cl_in "$i" "$ETCD_TOOL" --endpoints "$(cl_endpoint "$i")" --timeout-ms 500 get /health >/dev/null 2>&1 || return 1
        done
        [[ ${#leaders[@]} -gt 0 ]] || return 1
        for i in "${leaders[@]}"; do
                [[ "$i" == "${leaders[0]}" ]] || return 1
        done
}

cl_etcd_start_all()
{
        cl_etcd_start 1
        cl_etcd_start 2
        cl_etcd_start 3
        cl_wait_until 30 "etcd cluster healthy" cl_etcd_healthy
}

cl_etcd_kill()
{
        local i=$1
        [[ -n "${CL_ETCD_PID[$i]}" ]] || return 0
        kill -9 "${CL_ETCD_PID[$i]}" 2>/dev/null || true
        wait "${CL_ETCD_PID[$i]}" 2>/dev/null || true
        echo "etcd m$i killed (pid ${CL_ETCD_PID[$i]})" >>"$T/commands.log"
        CL_ETCD_PID[$i]=
}

cl_etcd_stop_quorum()
{
        cl_etcd_kill 2
        cl_etcd_kill 3
}

# The member the leader is, as 1..3 (from its status), or nothing.
cl_etcd_leader()
{
        local i out me ld
        for i in 1 2 3; do
                [[ -n "${CL_ETCD_PID[$i]}" ]] || continue
                out=$(cl_in "$i" "$ETCD_TOOL" --endpoints "$(cl_endpoint "$i")" --timeout-ms 500 status 2>/dev/null) || continue
                [[ "$out" =~ leader=([0-9a-f]+)\ member=([0-9a-f]+) ]] || continue
                ld=${BASH_REMATCH[1]} me=${BASH_REMATCH[2]}
                if [[ "$ld" == "$me" ]]; then
                        echo "$i"
                        return 0
                fi
        done
        return 1
}

cl_cut()
{
        local i=$1
        cl_in "$i" nft -f - <<EOF
table inet openvss_cut {
        chain input { type filter hook input priority -10; policy drop; iif "lo" accept; }
        chain output { type filter hook output priority -10; policy drop; oif "lo" accept; }
}
EOF
        echo "host $i cut off" >>"$T/commands.log"
}

cl_restore()
{
        local i=$1
        cl_in "$i" nft delete table inet openvss_cut
        echo "host $i restored" >>"$T/commands.log"
}

cl_tool()
{
        local i=$1
        shift
        cl_in "$i" "$ETCD_TOOL" --endpoints "${CL_ENDPOINTS_OVERRIDE:-$(cl_endpoints)}" "$@"
}

# ---- running and asserting --------------------------------------------------------

cl_run()
{
        echo "\$ $*" >>"$T/commands.log"
        set +e
        OUT=$("$@" 2>"$T/.stderr")
        RC=$?
        set -e
        ERR=$(cat "$T/.stderr")
        { echo "$OUT"; echo "$ERR"; echo "rc=$RC"; } >>"$T/commands.log"
        return 0
}

cl_elapsed_ms()
{
        [[ "$ERR" =~ elapsed_ms=([0-9]+) ]] || cl_fail "no elapsed_ms in: $ERR"
        echo "${BASH_REMATCH[1]}"
}

cl_assert_eq()
{
        [[ "$1" == "$2" ]] || cl_fail "${3:-values differ}: expected '$2', got '$1'"
}

cl_assert_contains()
{
        [[ "$1" == *"$2"* ]] || cl_fail "${3:-missing text}: expected '$2' in: $1"
}

cl_assert_not_contains()
{
        [[ "$1" != *"$2"* ]] || cl_fail "${3:-unexpected text}: did not expect '$2' in: $1"
}

cl_assert_rc()
{
        [[ "$RC" -eq "$1" ]] || cl_fail "${2:-exit status}: expected $1, got $RC (stdout: $OUT; stderr: $ERR)"
}

cl_assert_le()
{
        [[ "$1" -le "$2" ]] || cl_fail "${3:-too large}: $1 > $2"
}

# cl_wait_until SECS WHAT CMD...: polls CMD every 100 ms until it succeeds.
cl_wait_until()
{
        local secs=$1 what=$2
        shift 2
        wait_until "$secs" cl_quiet "$@" || cl_fail "timed out after ${secs}s waiting for: $what"
}

cl_quiet()
{
        "$@" >/dev/null 2>&1
}
