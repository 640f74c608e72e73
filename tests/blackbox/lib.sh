# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
#
# Shared helpers of the black-box tests (tests/blackbox/t-*.sh).  Each test
# sources this file, calls bb_init, builds real btrfs volumes on loop devices
# (bb_btrfs_volume), starts the real vssd on its own socket and state dir
# (bb_start_vssd) and real vsswriter writers whose hooks log every event
# (bb_start_writer), then drives everything through vshadow/vssadmin or raw
# sockets and asserts on what they print.
#
# Writers' hooks all run $T/hook.sh, which appends "<writer> <event> <set id>"
# to $T/events.log, saves VSS_VOLUMES, then sources $T/behave/<writer>.<event>
# if it exists: tests change a writer's behaviour (veto, sleep) at any time by
# writing that file, without restarting the writer.
#
# The EXIT trap always cleans up, also after a failed assertion: writers and
# vssd are killed, every mount of our loop devices (exposed shadows, bind
# mounts, the volumes) and everything mounted under $T is unmounted, loop
# devices are detached and $T is removed.
#
# Environment (set by tests/blackbox/meson.build): VSSD, VSSADMIN, VSHADOW,
# VSSWRITER, BUILD_DIR.

set -euo pipefail

# ok, fail, die, wait_until, check_exit
. "$(dirname "${BASH_SOURCE[0]}")/../check.sh"

BB_NAME=$(basename "$0" .sh)
BB_PIDS=()        # writers and other helpers to kill
BB_LOOPS=()       # loop devices to detach
BB_VSSD_PID=
BB_CLEANUP=()     # commands (eval'd) run at exit after our processes are gone: userdel, groupdel...
T=

bb_skip()
{
        echo "SKIP: $*" >&2
        exit 77
}

bb_fail()
{
        echo "FAIL: $*" >&2
        bb_dump_logs >&2 || true
        exit 1
}

# bb_soft ASSERTION...: runs an assertion in a subshell; a failure is reported and
# recorded, the test goes on (to reach the checks after it), and the test fails at
# exit.  Used where one known defect must not hide the results of later checks.
bb_soft()
{
        if ! ("$@"); then
                echo "(continuing after the failure above; the test will fail)" >&2
                echo "$*" >>"$T/soft-failures"
        fi
}

bb_log()
{
        echo "--- $*" >&2
}

bb_dump_logs()
{
        [[ -n "$T" && -d "$T" ]] || return 0
        if [[ -f "$T/events.log" ]]; then
                echo "=== last writer events ($T/events.log):"
                tail -n 40 "$T/events.log"
        fi
        if [[ -f "$T/vssd.log" ]]; then
                echo "=== last vssd log lines:"
                tail -n 40 "$T/vssd.log"
        fi
}

# ---- prerequisites ------------------------------------------------------------------

bb_require()
{
        [[ $(id -u) -eq 0 ]] || bb_skip "black-box tests need root (loop devices, mount, btrfs)"
        [[ -e /dev/loop-control ]] || bb_skip "no loop device support (/dev/loop-control missing)"
        command -v losetup >/dev/null || bb_fail "losetup is missing; scripts/install-deps.sh installs it"
        command -v mkfs.btrfs >/dev/null || bb_fail "mkfs.btrfs is missing (btrfs-progs); scripts/install-deps.sh installs it"
        command -v btrfs >/dev/null || bb_fail "the btrfs tool is missing (btrfs-progs); scripts/install-deps.sh installs it"
        command -v python3 >/dev/null || bb_fail "python3 is missing; scripts/install-deps.sh installs it"
        grep -qw btrfs /proc/filesystems || modprobe btrfs 2>/dev/null || true
        grep -qw btrfs /proc/filesystems || bb_skip "the kernel has no btrfs"
        local v
        for v in VSSD VSSADMIN VSHADOW VSSWRITER; do
                # A missing binary is a failure, not a skip: the component is part of the product.
                [[ -n "${!v:-}" ]] || bb_fail "\$$v is not set (run through meson test)"
                [[ -x "${!v}" ]] || bb_fail "$v=${!v} is not built"
        done
}

# ---- setup and cleanup --------------------------------------------------------------

bb_init()
{
        bb_require
        T=$(mktemp -d "${TMPDIR:-/tmp}/tests-bb-$BB_NAME.XXXXXX")
        mkdir -p "$T/behave" "$T/state" "$T/vols"
        : >"$T/events.log"
        trap bb_cleanup EXIT
        trap 'exit 130' INT TERM
        bb_write_hook
        export VSS_SOCKET="$T/vssd.sock"
}

bb_cleanup()
{
        local rc=$? pid dev tgt i
        set +e
        trap - EXIT
        if [[ $rc -eq 0 && -n "$T" && -s "$T/soft-failures" ]]; then
                echo "FAIL: $(wc -l <"$T/soft-failures") check(s) failed earlier:" >&2
                sed 's/^/  /' "$T/soft-failures" >&2
                rc=1
        fi
        for pid in "${BB_PIDS[@]}"; do
                kill -TERM "$pid" 2>/dev/null
        done
        if [[ -n "$BB_VSSD_PID" ]]; then
                kill -TERM "$BB_VSSD_PID" 2>/dev/null
        fi
        for pid in "${BB_PIDS[@]}" $BB_VSSD_PID; do
                bb_wait_pid_gone "$pid" 5 || { kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; }
        done
        for ((i = ${#BB_CLEANUP[@]} - 1; i >= 0; i--)); do
                eval "${BB_CLEANUP[i]}" 2>/dev/null
        done
        # Everything mounted from our loop devices (volumes, shadows exposed anywhere,
        # bind mounts) and everything under $T, deepest first.
        for _ in 1 2 3; do
                mapfile -t targets < <(
                        # btrfs reports an anonymous st_dev in mountinfo, so match the
                        # source device ("/dev/loopN" or "/dev/loopN[/subvol]") instead.
                        for dev in "${BB_LOOPS[@]}"; do
                                findmnt -rn -o TARGET,SOURCE | awk -v d="$dev" \
                                        '$2 == d || index($2, d "[") == 1 { print $1 }'
                        done
                        [[ -n "$T" ]] && awk -v t="$T/" 'index($5, t) == 1 { print $5 }' /proc/self/mountinfo
                )
                [[ ${#targets[@]} -eq 0 ]] && break
                printf '%s\n' "${targets[@]}" | awk '{ print length($0) " " $0 }' | sort -rn | cut -d' ' -f2- |
                        sort -u -r | while read -r tgt; do
                                umount "$tgt" 2>/dev/null || umount -l "$tgt" 2>/dev/null
                        done
        done
        for dev in "${BB_LOOPS[@]}"; do
                losetup -d "$dev" 2>/dev/null
        done
        if [[ -n "$T" && -d "$T" ]]; then
                if [[ $rc -ne 0 && $rc -ne 77 && -n "${BB_KEEP:-}" ]]; then
                        echo "keeping $T (BB_KEEP set)" >&2
                else
                        rm -rf --one-file-system "$T"
                fi
        fi
        exit "$rc"
}

bb_wait_pid_gone()
{
        local pid=$1 secs=$2 i
        for ((i = 0; i < secs * 10; i++)); do
                kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
                sleep 0.1
        done
        return 1
}

# bb_wait_until SECONDS DESCRIPTION CMD...: polls CMD every 0.1 s.
bb_wait_until()
{
        local secs=$1 what=$2
        shift 2
        wait_until "$secs" bb_quiet "$@" || bb_fail "timed out after ${secs}s waiting for: $what"
}

bb_quiet()
{
        "$@" >/dev/null 2>&1
}

# bb_loopfs VAR NAME FSTYPE SIZE_MB: a new filesystem on a loop device, mounted; its mount
# point is stored in VAR.  (No $(...): the loop device must be recorded in this shell.)
# mkfs.btrfs is retried for up to 60 s while it cannot check the mount status of some
# other loop device: another test on this machine may hold one whose backing file sits on
# a FUSE mount that just died, and mkfs.btrfs then refuses every device with "Transport
# endpoint is not connected".
bb_loopfs()
{
        local var=$1 name=$2 fstype=$3 size=$4 img dev out i force=-F
        [ "$fstype" = btrfs ] && force=-f       # mkfs.btrfs spells "force" -f, mke2fs -F
        img="$T/$name.img"
        truncate -s "${size}M" "$img"
        dev=$(losetup -f --show "$img")
        BB_LOOPS+=("$dev")
        for ((i = 0; ; i++)); do
                out=$("mkfs.$fstype" -q "$force" "$dev" 2>&1) && break
                [[ "$out" == *"cannot check mount status"* && $i -lt 60 ]] || bb_fail "mkfs.$fstype $dev: $out"
                sleep 1
        done
        mkdir -p "$T/vols/$name"
        mount -t "$fstype" "$dev" "$T/vols/$name"
        printf -v "$var" '%s' "$T/vols/$name"
}

# bb_volume VAR NAME [SIZE_MB]: a btrfs loop volume (256 MB by default).
bb_volume()
{
        bb_loopfs "$1" "$2" btrfs "${3:-256}"
}

# bb_ext4 VAR NAME: an ext4 loop mount (a volume no provider supports).
bb_ext4()
{
        bb_loopfs "$1" "$2" ext4 64
}

# ---- the daemon ---------------------------------------------------------------------

bb_start_vssd()
{
        rm -f "$T/vssd.sock"
        echo "=== vssd started $(date +%T.%N)" >>"$T/vssd.log"
        "$VSSD" --socket "$T/vssd.sock" --state-dir "$T/state" "$@" >>"$T/vssd.log" 2>&1 &
        BB_VSSD_PID=$!
        local i
        for ((i = 0; i < 100; i++)); do
                [[ -S "$T/vssd.sock" ]] && bb_socket_answers && return 0
                kill -0 "$BB_VSSD_PID" 2>/dev/null || bb_fail "vssd exited during startup"
                sleep 0.1
        done
        bb_fail "vssd did not open its socket $T/vssd.sock within 10 s"
}

bb_socket_answers()
{
        # Any reply will do, a result or an error: the socket answers.
        local rc=0
        python3 "$JSON_CTL" --timeout 2 "$T/vssd.sock" Service.Status >/dev/null 2>&1 || rc=$?
        ((rc != 2))
}

bb_stop_vssd()
{
        [[ -n "$BB_VSSD_PID" ]] || return 0
        kill -TERM "$BB_VSSD_PID" 2>/dev/null || true
        bb_wait_pid_gone "$BB_VSSD_PID" 10 || bb_fail "vssd did not exit within 10 s of SIGTERM"
        BB_VSSD_PID=
}

bb_kill9_vssd()
{
        kill -KILL "$BB_VSSD_PID"
        bb_wait_pid_gone "$BB_VSSD_PID" 5 || true
        BB_VSSD_PID=
}

bb_vssd_alive()
{
        [[ -n "$BB_VSSD_PID" ]] && kill -0 "$BB_VSSD_PID" 2>/dev/null
}

# ---- writers ------------------------------------------------------------------------

bb_write_hook()
{
        cat >"$T/hook.sh" <<EOF2
#!/bin/sh
echo "\$VSS_WRITER_NAME \$VSS_EVENT \${VSS_SNAPSHOT_SET_ID:-none}" >>"$T/events.log"
printf '%s\n' "\$VSS_VOLUMES" >"$T/volumes.\$VSS_WRITER_NAME.\$VSS_EVENT"
b="$T/behave/\$VSS_WRITER_NAME.\$VSS_EVENT"
if [ -f "\$b" ]; then
        . "\$b"
fi
exit 0
EOF2
        chmod +x "$T/hook.sh"
}

BB_EVENTS=(identify prepare-backup prepare-snapshot freeze thaw post-snapshot backup-complete abort
           backup-shutdown pre-restore post-restore)

# bb_start_writer NAME [vsswriter args, e.g. --volume V --freeze-timeout MS]...
# Every hook runs $T/hook.sh.  Waits until `vssadmin list writers` shows the writer.
bb_start_writer()
{
        local name=$1 e args=()
        shift
        for e in "${BB_EVENTS[@]}"; do
                args+=("--on-$e" "$T/hook.sh")
        done
        "$VSSWRITER" --name "$name" "$@" "${args[@]}" >>"$T/writer-$name.log" 2>&1 &
        BB_PIDS+=($!)
        eval "BB_WRITER_PID_${name//[^A-Za-z0-9]/_}=$!"
        bb_wait_until 10 "writer '$name' listed by vssadmin list writers" bb_writer_listed "$name"
}

bb_writer_pid()
{
        local v="BB_WRITER_PID_${1//[^A-Za-z0-9]/_}"
        echo "${!v}"
}

bb_writer_listed()
{
        "$VSSADMIN" list writers 2>/dev/null | grep -qxF "Writer name: '$1'"
}

# bb_behave WRITER EVENT SHELL-TEXT: what the writer's hook does at EVENT (sourced by sh).
bb_behave()
{
        printf '%s\n' "$3" >"$T/behave/$1.$2"
}

bb_behave_clear()
{
        rm -f "$T/behave/"*
}

# The events of one writer, one per line: "<event> <set id>".
bb_events_of()
{
        awk -v w="$1" '$1 == w { print $2, $3 }' "$T/events.log"
}

bb_clear_events()
{
        : >"$T/events.log"
}

# ---- vssadmin output ----------------------------------------------------------------

# bb_writer_block NAME: the `list writers` block of a writer (5 lines), from $1's output in $2.
bb_writer_block()
{
        awk -v n="Writer name: '$1'" '
                $0 == n { on = 1 }
                on && $0 == "" { exit }
                on { print }' <<<"$2"
}

# bb_assert_writer NAME "[N] Label" "Last error words": checks the exact 5-line layout.
bb_assert_writer()
{
        local name=$1 state=$2 err=$3 out block
        out=$("$VSSADMIN" list writers) || bb_fail "vssadmin list writers failed: $out"
        block=$(bb_writer_block "$name" "$out")
        [[ -n "$block" ]] || bb_fail "writer '$name' not in vssadmin list writers:"$'\n'"$out"
        local re
        re="^Writer name: '[^']+'"$'\n'"   Writer Id: \{[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\}"
        re+=$'\n'"   Writer Instance Id: \{[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\}"
        re+=$'\n'"   State: (.*)"$'\n'"   Last error: (.*)$"
        [[ "$block" =~ $re ]] || bb_fail "layout of writer '$name' in vssadmin list writers is wrong:"$'\n'"$block"
        bb_assert_eq "$state" "${BASH_REMATCH[1]}" "State of writer '$name'"
        bb_assert_eq "$err" "${BASH_REMATCH[2]}" "Last error of writer '$name'"
}

bb_writer_field()
{
        # bb_writer_field NAME "Writer Id"|"Writer Instance Id"|State|"Last error"
        local out
        out=$("$VSSADMIN" list writers)
        bb_writer_block "$1" "$out" | sed -n "s/^   $2: //p"
}

# ---- running commands and asserting -------------------------------------------------

# bb_run CMD...: runs CMD, stdout+stderr in $OUT, exit status in $RC; never trips set -e.
bb_run()
{
        set +e
        OUT=$("$@" 2>&1)
        RC=$?
        set -e
        {
                echo "\$ $*"
                echo "$OUT"
                echo "[exit $RC]"
        } >>"$T/commands.log"
}

bb_assert_eq()
{
        # bb_assert_eq EXPECTED ACTUAL WHAT
        if [[ "$1" != "$2" ]]; then
                bb_fail "$3"$'\n'"  expected: $1"$'\n'"  actual:   $2"
        fi
}

bb_assert_contains()
{
        # bb_assert_contains HAYSTACK NEEDLE WHAT
        if [[ "$1" != *"$2"* ]]; then
                bb_fail "$3"$'\n'"  expected to contain: $2"$'\n'"  actual output:"$'\n'"$1"
        fi
}

bb_assert_icontains()
{
        if [[ "${1,,}" != *"${2,,}"* ]]; then
                bb_fail "$3"$'\n'"  expected to contain (any case): $2"$'\n'"  actual output:"$'\n'"$1"
        fi
}

bb_assert_not_contains()
{
        if [[ "$1" == *"$2"* ]]; then
                bb_fail "$3"$'\n'"  expected NOT to contain: $2"$'\n'"  actual output:"$'\n'"$1"
        fi
}

bb_assert_rc()
{
        # bb_assert_rc EXPECTED WHAT  (uses $RC/$OUT of the last bb_run)
        if [[ "$RC" != "$1" ]]; then
                bb_fail "$2"$'\n'"  expected exit status: $1"$'\n'"  actual: $RC, output:"$'\n'"$OUT"
        fi
}

bb_assert_failed()
{
        if [[ "$RC" == 0 ]]; then
                bb_fail "$1"$'\n'"  expected a non-zero exit status, got 0; output:"$'\n'"$OUT"
        fi
}

# bb_assert_hresult HEX NAME WHAT: $OUT names the HRESULT both ways, and $RC != 0.
bb_assert_hresult()
{
        bb_assert_failed "$3"
        bb_assert_icontains "$OUT" "$1" "$3 (hex code)"
        bb_assert_contains "$OUT" "$2" "$3 (symbolic name)"
}

# No shadow copy in `vssadmin list shadows` and no snapshot subvolume on VOL.
bb_assert_no_shadows()
{
        local vol=$1 what=$2 out snaps
        out=$("$VSSADMIN" list shadows 2>&1) || true
        bb_assert_contains "$out" "No items found that satisfy the query." "$what: vssadmin list shadows"
        snaps=$(btrfs subvolume list -s "$vol")
        bb_assert_eq "" "$snaps" "$what: btrfs snapshot subvolumes left on $vol"
}

bb_guid_re='\{[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\}'

# ---- timing and restore helpers (issue 11) ------------------------------------------

# bb_now_ms: milliseconds on the wall clock, for measuring latencies between events.
bb_now_ms()
{
        echo $(($(date +%s%N) / 1000000))
}

# bb_event_count WRITER EVENT: how many times WRITER's hook ran for EVENT.
bb_event_count()
{
        awk -v w="$1" -v e="$2" '$1 == w && $2 == e { n++ } END { print n + 0 }' "$T/events.log"
}

bb_event_seen()
{
        [[ $(bb_event_count "$1" "$2") -ge ${3:-1} ]]
}

# bb_wait_ms VAR MAX_MS DESCRIPTION CMD...: polls CMD every 20 ms for at most MAX_MS and
# stores in VAR how many ms it took; fails the test when CMD never succeeds.
bb_wait_ms()
{
        local var=$1 max=$2 what=$3 start now
        shift 3
        start=$(bb_now_ms)
        while :; do
                if "$@" >/dev/null 2>&1; then
                        now=$(bb_now_ms)
                        printf -v "$var" '%s' $((now - start))
                        return 0
                fi
                now=$(bb_now_ms)
                ((now - start < max)) || bb_fail "timed out after ${max} ms waiting for: $what"
                sleep 0.02
        done
}

# bb_writer_state_is NAME "[N] Label": vssadmin list writers shows NAME in that state.
bb_writer_state_is()
{
        [[ "$(bb_writer_field "$1" State)" == "$2" ]]
}

# bb_wait_exit PID SECS VAR: waits for a background child to end, its status in VAR.
bb_wait_exit()
{
        local pid=$1 secs=$2 var=$3 i rc
        for ((i = 0; i < secs * 10; i++)); do
                if ! kill -0 "$pid" 2>/dev/null; then
                        rc=0
                        wait "$pid" || rc=$?
                        printf -v "$var" '%s' "$rc"
                        return 0
                fi
                sleep 0.1
        done
        bb_fail "process $pid did not exit within ${secs}s"
}
