# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
#
# Real vssds on the three hosts of lib.sh (sourced after it, before cl_init): the tests
# of cluster snapshot sets through vssd (t-cl-vset, t-cl-vfaults, t-cl-causal).
#
#   cv_init                         binaries, mkfs.btrfs, cl_init, the cleanup trap
#   cv_three_btrfs_hosts [FN]       the network, etcd, and on each host a btrfs volume, its
#                                   vssd and its writer (FN I, default cv_writer_start), until
#                                   every host lists every host
#   cv_btrfs I                      a btrfs loop volume at $T/vI, ${VOL[I]}
#   cv_cow I                        a cow volume (ext4, vssadmin create volume) at $T/vI
#   cv_vssd_start I [VAR=VALUE...]  host I's vssd (config below, environment added),
#                                   ${VSSD_PID[I]}; waits until it answers
#   cv_vssd_kill I                  kill -9, waits for it
#   cv_writer_start I [ARGS...]     writer "Ledger I" on ${VOL[I]}: each event logs
#                                   "hostI EVENT NS" to $EV and then runs $T/hook.I.EVENT
#                                   if it exists (its status is the event's result)
#   cv_hook I EVENT SCRIPT          writes that hook; cv_unhook I EVENT removes it
#   cv_present_everywhere           every host lists every host as present
#   cv_shadows_of I SET             how many shadow copies of SET host I's catalog holds
#   cv_ev_ns I EVENT                the time (ns) of host I's last EVENT line in $EV, or ""
#   cv_vshadow_bg I OUTFILE ARGS... vshadow on host I in the background; $CV_BG its pid
#
# The vssd config: [cluster] with lease TTLs of 3 s, hold 6 s, 500 ms calls, set_keep_s=0
# (every finished set's keys go at the next set), plus CV_CONF_EXTRA.

CV_LOOPS=()
CV_MOUNTS=()
declare -a VSSD_PID VOL WPID
EV=
CV_BG=
CV_CONF_EXTRA=${CV_CONF_EXTRA:-}
CV_IMG_DIR=${CV_IMG_DIR:-}      # where the btrfs images live; default $T (bench/cluster.sh: tmpfs)

cv_cleanup()
{
        local rc=$? pid m d i
        set +e
        # Cow volumes go through their vssd while it runs (their servers hold the loops).
        for i in 1 2 3; do
                [[ -f "$T/v$i.cow" && -n "${VSSD_PID[$i]:-}" ]] || continue
                "$VSSADMIN" --socket "$T/h$i/vssd.sock" delete shadows /all /quiet >/dev/null 2>&1
                "$VSSADMIN" --socket "$T/h$i/vssd.sock" delete volume /name=cv$i >/dev/null 2>&1
        done
        # The daemons first: nothing may hold the volumes when they are unmounted.
        for pid in "${CL_PIDS[@]}"; do
                kill -CONT "$pid" 2>/dev/null
                kill -9 "$pid" 2>/dev/null
        done
        for pid in "${CL_PIDS[@]}"; do wait "$pid" 2>/dev/null; done
        for m in "${CV_MOUNTS[@]}"; do
                # Shadow copies mounted below the volume, then the volume.
                grep -o " $m/[^ ]*" /proc/mounts | sort -r | while read -r d; do umount -l "$d"; done
                umount -l "$m" 2>/dev/null
        done
        # Whatever else is mounted below $T (exposed shadow copies).
        grep -o " $T/[^ ]*" /proc/mounts | sort -r | while read -r d; do umount -l "$d"; done
        for d in "${CV_LOOPS[@]}"; do losetup -d "$d" 2>/dev/null; done
        [[ -n "$CV_IMG_DIR" ]] && rm -rf "$CV_IMG_DIR"
        # What a cow volume server left: loops on its images or on its FUSE files.
        losetup -l -n -O NAME,BACK-FILE | awk -v t="$T/" 'index($2, t) == 1 || $2 ~ "^/shadows/" {print $1}' |
                while read -r d; do losetup -d "$d" 2>/dev/null; done
        (exit "$rc")
        cl_cleanup
}

cv_init()
{
        local b
        for b in VSSD VSSADMIN VSSWRITER VSHADOW; do
                [[ -n "${!b:-}" && -x "${!b}" ]] || cl_fail "$b '${!b:-}' is not built"
        done
        command -v mkfs.btrfs >/dev/null || cl_fail "mkfs.btrfs is missing (btrfs-progs); scripts/install-deps.sh installs it"
        cl_init
        trap cv_cleanup EXIT
        EV="$T/events.log"
        : >"$EV"
}

# mkfs.btrfs looks at every mount and gives up on one it cannot stat (a FUSE mount whose
# server died, left by some other test on this machine): then it runs again in a private
# mount namespace without such mounts, which leaves everyone else's mounts as they are.
cv_mkfs_btrfs()
{
        mkfs.btrfs -q -f "$1" >/dev/null 2>"$T/mkfs.err" && return 0
        grep -q "Transport endpoint is not connected" "$T/mkfs.err" || { cat "$T/mkfs.err" >&2; return 1; }
        echo "mkfs.btrfs: a dead mount elsewhere; again in a private mount namespace" >>"$T/commands.log"
        unshare -m --propagation private sh -c '
                awk "{print \$2}" /proc/self/mounts | sort -r | while read -r m; do
                        stat "$m" >/dev/null 2>&1 || umount -l "$m" 2>/dev/null
                done
                mkfs.btrfs -q -f "$1" >/dev/null' sh "$1"
}

cv_btrfs()
{
        local i=$1 dev img
        img=${CV_IMG_DIR:-$T}/v$1.img
        truncate -s 256M "$img"
        dev=$(losetup -f --show "$img")
        CV_LOOPS+=("$dev")
        cv_mkfs_btrfs "$dev" || cl_fail "mkfs.btrfs $dev"
        mkdir -p "$T/v$i"
        mount -t btrfs "$dev" "$T/v$i"
        CV_MOUNTS+=("$T/v$i")
        VOL[$i]="$T/v$i"
}

# After cv_vssd_start I: vssd serves it (and mounts it in the root mount namespace, since
# vssd runs under nsenter --net only).
cv_cow()
{
        local i=$1
        [[ -n "${VSS_VOLSRV:-}" && -x "$VSS_VOLSRV" ]] || cl_fail "VSS_VOLSRV '${VSS_VOLSRV:-}' is not built"
        cl_run "$VSSADMIN" --socket "$T/h$i/vssd.sock" create volume "/name=cv$i" /size=384MB /fs=ext4 "/mount=$T/v$i"
        cl_assert_rc 0 "vssadmin create volume on host $i"
        mountpoint -q "$T/v$i" || cl_fail "the cow volume of host $i is not mounted at $T/v$i"
        touch "$T/v$i.cow"
        CV_MOUNTS+=("$T/v$i")
        VOL[$i]="$T/v$i"
}

cv_vssd_start()
{
        local i=$1
        shift
        mkdir -p "$T/h$i"
        cat >"$T/h$i/vssd.conf" <<CONF
[cluster]
endpoints=$(cl_endpoints)
host=host$i
host_lease_ttl_s=3
set_lease_ttl_s=3
hold_ms=6000
call_timeout_ms=500
set_keep_s=0
$CV_CONF_EXTRA
CONF
        rm -f "$T/h$i/vssd.sock"
        # The network namespace only (ip netns exec would give vssd a mount namespace of its
        # own, hiding the mounts it makes from the test and from the other hosts).
        env "$@" nsenter --net="/run/netns/${CL_NS[$i]}" "$VSSD" --socket "$T/h$i/vssd.sock" \
                --state-dir "$T/h$i/state" --config "$T/h$i/vssd.conf" --verbose >>"$T/h$i/vssd.log" 2>&1 &
        VSSD_PID[$i]=$!
        CL_PIDS+=($!)
        cl_wait_until 10 "vssd on host $i answers" "$VSSADMIN" --socket "$T/h$i/vssd.sock" list providers
}

cv_vssd_kill()
{
        local i=$1
        kill -9 "${VSSD_PID[$i]}" 2>/dev/null || true
        wait "${VSSD_PID[$i]}" 2>/dev/null || true
        echo "vssd of host $i killed (pid ${VSSD_PID[$i]})" >>"$T/commands.log"
        VSSD_PID[$i]=
}

cv_writer_start()
{
        local i=$1 ev args=()
        shift
        for ev in prepare-backup prepare-snapshot freeze thaw post-snapshot abort backup-complete backup-shutdown; do
                args+=("--on-$ev" "echo host$i $ev \$(date +%s%N) >>$EV; if [ -x $T/hook.$i.$ev ]; then $T/hook.$i.$ev; fi")
        done
        nsenter --net="/run/netns/${CL_NS[$i]}" "$VSSWRITER" --socket "$T/h$i/vssd.sock" --name "Ledger $i" \
                --volume "${VOL[$i]}" "${args[@]}" "$@" >>"$T/h$i/writer.log" 2>&1 &
        WPID[$i]=$!
        CL_PIDS+=($!)
        cv_wait_writer "$i"
}

cv_wait_writer()
{
        cl_wait_until 15 "writer on host $1 registered" \
                eval "\"$VSSADMIN\" --socket \"$T/h$1/vssd.sock\" list writers | grep -q 'Ledger $1'"
}

cv_hook()
{
        printf '#!/bin/sh\n%s\n' "$3" >"$T/hook.$1.$2.new"
        chmod +x "$T/hook.$1.$2.new"
        mv "$T/hook.$1.$2.new" "$T/hook.$1.$2"
}

cv_unhook()
{
        rm -f "$T/hook.$1.$2"
}

cv_present_everywhere()
{
        local i h
        for i in 1 2 3; do
                for h in 1 2 3; do
                        "$VSSADMIN" --socket "$T/h$i/vssd.sock" list hosts 2>/dev/null |
                                grep -A3 "Host name: 'host$h'" | grep -q "State: Present" || return 1
                done
        done
}

cv_shadows_of()
{
        "$VSSADMIN" --socket "$T/h$1/vssd.sock" list shadows --json |
                python3 -c 'import json,sys; print(sum(1 for s in json.load(sys.stdin)["shadows"] if s["set_id"] == sys.argv[1]))' "$2"
}

cv_ev_ns()
{
        awk -v h="host$1" -v e="$2" '$1 == h && $2 == e { t = $3 } END { print t }' "$EV"
}

cv_vshadow_bg()
{
        local i=$1 out=$2
        shift 2
        echo "\$ (background, host $i) vshadow $*" >>"$T/commands.log"
        nsenter --net="/run/netns/${CL_NS[$i]}" "$VSHADOW" --socket "$T/h$i/vssd.sock" "$@" >"$out" 2>&1 &
        CV_BG=$!
        CL_PIDS+=($!)
}

# The three volumes as vshadow's arguments.
cv_all()
{
        echo "host1:${VOL[1]} host2:${VOL[2]} host3:${VOL[3]}"
}

cv_three_btrfs_hosts()
{
        local i start=${1:-cv_writer_start}
        cl_net_up
        cl_etcd_start_all
        for i in 1 2 3; do cv_btrfs "$i"; cv_vssd_start "$i"; done
        for i in 1 2 3; do "$start" "$i"; done
        cl_wait_until 15 "every host lists every host" cv_present_everywhere
}
