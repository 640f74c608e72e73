#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The fault matrix (issue 13 item 4, docs/testing.md "Fault matrix"): SIGKILL and SIGSTOP
# (held beyond every deadline) of each process at each stage of a snapshot set, of a restore
# and of a revert, on a btrfs volume and on a cow volume, and after each case the same checks:
#   frozen   a write + syncfs with a deadline completes on every volume
#   thaw     every writer that answered Freeze ran its Thaw or Abort hook within its freeze
#            timeout + grace (measured from SIGCONT for a writer that was itself stopped)
#   catalog  `vssadmin list shadows` equals the provider's view (btrfs: VOL/.openvss/{id}
#            subvolumes; cow: the volume server's Snapshot.List): no leaked or phantom shadow
#   next     the next set (and after a restore case, the next restore) succeeds
# A stage is reached by a second writer (the holder) whose hook for that event blocks until
# the driver has acted; the provider commit by VSSD_DEBUG_COMMIT_DELAY_MS, revert stages by
# VSSD_DEBUG_REVERT_DELAY_MS / VSSD_DEBUG_REVERT_OFFLINE_MS (each logs before it sleeps).
# The victim writer is the other one: it has answered the stage's event when it is hit.
# One line per case: "case VOL PROC SIGNAL STAGE pass|FAIL|known DETAILS"; tests/faults/
# matrix-table.py turns them into the table of docs/testing.md.  FM_ONLY=REGEX runs the cases
# whose "VOL PROC SIGNAL STAGE" matches; FM_SECTIONS picks sections (only "btrfs" exists so
# far; "cow" also creates the cow volume), FM_SIGNALS="SIGKILL SIGSTOP" the signals.
source "$(dirname "$0")/../blackbox/lib.sh"
bb_init

[[ -x "${VSS_VOLSRV:-}" ]] || bb_fail "VSS_VOLSRV=${VSS_VOLSRV:-} is not built"
export VSS_VOLSRV
FM_SECTIONS=${FM_SECTIONS:-btrfs}
FM_ONLY=${FM_ONLY:-.}
# Signals run; SIGSTOP rows are written but not yet verified on this machine (see docs/testing.md).
FM_SIGNALS=${FM_SIGNALS:-SIGKILL}

FT=1000             # writers' freeze timeout (ms), also vssd's default
ET=1500             # vssd's event timeout (ms)
GRACE=1000          # libvss's grace after the freeze timeout (docs/libvss.md)
SLACK=800           # scheduling slack for the hooks we time (fork/exec of sh, ASan build)
HOLD=3500           # how long a SIGSTOP is held: beyond ET and FT + GRACE
HOLD_FREEZING=11000 # ... and beyond the 10 s hold window when filesystems may be frozen
VSSD_ARGS=(--freeze-timeout "$FT" --event-timeout "$ET")
VSSD_ENV=()
STAGES=(Identify PrepareForBackup PrepareForSnapshot Freeze Commit Thaw PostSnapshot BackupComplete)
FM_RESULTS=$T/results
: >"$FM_RESULTS"
mkdir -p "$T/ts"

fm_cleanup()
{
        local rc=$?
        set +e
        # Nothing of ours may stay stopped: a stopped vssd would hang the cleanup.
        for pid in "${BB_PIDS[@]}" $BB_VSSD_PID; do kill -CONT "$pid" 2>/dev/null; done
        touch "$T/release" 2>/dev/null
        if bb_vssd_alive; then
                "$VSSADMIN" delete shadows /all /quiet >/dev/null 2>&1
                "$VSSADMIN" delete volume /name=fmcow >/dev/null 2>&1
        fi
        [[ -n "$BB_VSSD_PID" ]] && kill -TERM "$BB_VSSD_PID" 2>/dev/null &&
                { bb_wait_pid_gone "$BB_VSSD_PID" 10 || kill -KILL "$BB_VSSD_PID" 2>/dev/null; }
        BB_VSSD_PID=
        if grep -Eq "AddressSanitizer|LeakSanitizer|runtime error:" "$T/vssd.log" 2>/dev/null; then
                echo "FAIL: sanitizer report in vssd's log:" >&2
                grep -E -A20 "AddressSanitizer|LeakSanitizer|runtime error:" "$T/vssd.log" | head -n 60 >&2
                [[ $rc -eq 0 ]] && rc=1
        fi
        for m in $(awk -v t="$T/" 'index($5, t) == 1 { print $5 }' /proc/self/mountinfo | sort -r); do
                umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
        done
        . "$(dirname "$0")/../cowprov/cow-lib.sh"
        (exit "$rc")
        bb_cleanup
}
trap fm_cleanup EXIT

# ---- processes ----------------------------------------------------------------------

# fm_start_vssd: vssd with the short deadlines and the test hooks of VSSD_ENV (NAME=VALUE...).
fm_start_vssd()
{
        local a
        for a in "${VSSD_ENV[@]}"; do export "${a?}"; done
        bb_start_vssd "${VSSD_ARGS[@]}"
        for a in "${VSSD_ENV[@]}"; do unset "${a%%=*}"; done
}

# The two writers of a volume kind: the victim ${K}w and the holder ${K}h.
fm_start_writer()
{
        local name=$1 vol=$2
        bb_start_writer "$name" --volume "$vol" --freeze-timeout "$FT"
}

fm_writers_listed()
{
        local out w
        out=$("$VSSADMIN" list writers 2>/dev/null) || return 1
        for w in "$@"; do grep -qxF "Writer name: '$w'" <<<"$out" || return 1; done
}

fm_alive() { kill -0 "$1" 2>/dev/null && [[ $(ps -o stat= -p "$1" 2>/dev/null) != Z* ]]; }

# ---- the provider's view --------------------------------------------------------------

fm_catalog_ids()
{
        "$VSSADMIN" list shadows /for="$1" 2>/dev/null | awk '/Shadow Copy ID/ { print $4 }' | sort
}

fm_disk_ids()
{
        local vol=$1
        if [[ $vol == "$COW" ]]; then
                python3 - "$T/state/volumes/fmcow/run/control.sock" <<'PY' | sort
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
s.connect(sys.argv[1])
s.sendall(b'{"id":1,"method":"Snapshot.List"}\n')
buf = b""
while b"\n" not in buf:
    d = s.recv(65536)
    if not d:
        sys.exit(1)
    buf += d
for snap in json.loads(buf.split(b"\n")[0])["result"]["snapshots"]:
    print(snap["shadow_id"])
PY
        else
                # No .openvss yet means no shadow copy on disk.
                { find "$vol/.openvss" -mindepth 1 -maxdepth 1 -name '{*}' -printf '%f\n' 2>/dev/null || true; } | sort
        fi
}

fm_catalog_agrees()
{
        local c d
        c=$(fm_catalog_ids "$1") && d=$(fm_disk_ids "$1") && [[ "$c" == "$d" ]]
}

# ---- the checks after a case --------------------------------------------------------

# fm_write VOL: a write and syncfs complete within 5 s (no frozen filesystem).
fm_write()
{
        timeout 5 sh -c 'echo probe >"$1/.fm-probe" && sync -f "$1/.fm-probe"' _ "$1" 2>/dev/null
}

# fm_thaw_ok WRITER: if WRITER answered Freeze in this case, its Thaw or Abort hook ran within
# FT + GRACE (+ slack) of that answer, or of SIGCONT when WRITER itself was stopped.
fm_thaw_check()
{
        local w=$1 base end t
        [[ -s $T/ts/$w.freeze ]] || return 0
        base=$(head -n 1 "$T/ts/$w.freeze")
        [[ -n ${FM_CONT_NS[$w]:-} ]] && ((FM_CONT_NS[$w] > base)) && base=${FM_CONT_NS[$w]}
        wait_until $(((FT + GRACE + SLACK) / 1000 + 3)) eval "[[ -s $T/ts/$w.thaw || -s $T/ts/$w.abort ]]" ||
                { echo "$w frozen: no Thaw/Abort hook"; return 1; }
        end=$(cat "$T/ts/$w.thaw" "$T/ts/$w.abort" 2>/dev/null | sort -n | head -n 1)
        t=$(((end - base) / 1000000))
        if ((t > FT + GRACE + SLACK)); then
                echo "$w frozen ${t} ms (deadline $((FT + GRACE)) ms)"
                return 1
        fi
        echo "$w $( [[ -s $T/ts/$w.thaw ]] && echo Thaw || echo Abort) +${t}ms"
}

# ---- one case -----------------------------------------------------------------------

declare -A FM_CONT_NS
FM_FAILS=0
FM_NOTE=

fm_result()
{
        # fm_result VOL PROC SIG STAGE STATUS DETAILS
        local line="case $1 $2 $3 $4 $5 $6"
        echo "$line" | tee -a "$FM_RESULTS"
        [[ $5 == FAIL ]] && FM_FAILS=$((FM_FAILS + 1))
        return 0
}

fm_reset_hooks()
{
        local w
        bb_behave_clear
        rm -f "$T/ts/"* "$T/release" "$T/at"
        FM_CONT_NS=()
        for w in "$@"; do
                bb_behave "$w" Freeze "date +%s%N >>$T/ts/$w.freeze"
                bb_behave "$w" Thaw "date +%s%N >>$T/ts/$w.thaw"
                bb_behave "$w" Abort "date +%s%N >>$T/ts/$w.abort"
        done
}

# fm_block WRITER EVENT: WRITER's hook for EVENT touches $T/at and waits for $T/release (at
# most 15 s), keeping the timestamps of Freeze.
fm_block()
{
        local w=$1 ev=$2 extra= pre=
        [[ $ev == Freeze ]] && extra="; date +%s%N >>$T/ts/$w.freeze"
        [[ $ev == Thaw ]] && pre="date +%s%N >>$T/ts/$w.thaw; "
        bb_behave "$w" "$ev" "${pre}touch $T/at; i=0; while [ ! -e $T/release ] && [ \$i -lt 300 ]; do sleep 0.05; i=\$((i+1)); done$extra"
}

# fm_hr <TEXT: the first HRESULT named in TEXT, or nothing.
fm_hr() { grep -Eo '0x8[0-9A-Fa-f]{7} [A-Z_]+' | head -n 1 || true; }

fm_log_lines() { wc -l <"$T/vssd.log"; }

# fm_marker_log FROM TEXT: vssd's log got TEXT after line FROM.
fm_marker_log() { tail -n +"$(($1 + 1))" "$T/vssd.log" | grep -qF -- "$2"; }

# fm_pid_of PROC: the pid the case hits.
fm_pid_of()
{
        case $1 in
        vssd) echo "$BB_VSSD_PID" ;;
        vshadow | vssadmin) echo "$FM_REQ_PID" ;;
        writer) bb_writer_pid "$FM_W" ;;
        vss-volsrv) cat "$T/state/volumes/fmcow/run/volsrv.pid" ;;
        esac
}

# fm_hit PROC SIG: SIGKILL, or SIGSTOP held for $2's hold and SIGCONT.
fm_hit()
{
        local proc=$1 sig=$2 hold=$3 pid
        pid=$(fm_pid_of "$proc")
        [[ -n $pid ]] || { FM_NOTE+="no pid for $proc; "; return 1; }
        if [[ $sig == SIGKILL ]]; then
                kill -KILL "$pid"
                touch "$T/release"
                [[ $proc == vssd ]] && { bb_wait_pid_gone "$pid" 5 || true; BB_VSSD_PID=; }
                return 0
        fi
        kill -STOP "$pid"
        touch "$T/release"
        # This sleep holds the stop beyond every deadline; it waits for nothing.
        sleep "$(printf '%d.%03d' $((hold / 1000)) $((hold % 1000)))"
        [[ $proc == writer ]] && FM_CONT_NS[$FM_W]=$(date +%s%N)
        kill -CONT "$pid"
}

# fm_recover PROC SIG: bring back what the case killed (documented recovery paths only).
fm_recover()
{
        local proc=$1 sig=$2
        [[ $sig == SIGKILL ]] || return 0
        case $proc in
        vssd)
                fm_start_vssd
                wait_until 15 fm_writers_listed "${FM_WRITERS[@]}" || FM_NOTE+="writers not registered again; "
                ;;
        writer)
                wait_until 5 eval '! fm_alive "$(bb_writer_pid "$FM_W")"' || true
                fm_start_writer "$FM_W" "$FM_VOL"
                ;;
        vss-volsrv)
                fm_volsrv_recovered || FM_NOTE+="volume server not back: $(tail -n 3 "$T/vssd.log" | tr '\n' ' '); "
                ;;
        esac
}

# What is documented today for a vss-volsrv killed or stopped (docs/vssd.md "Volume server
# crash recovery", tests/cowprov/t-volsrv-kill.sh): vssd restarts a dead server (5 s later),
# mounts the volume again at the same place and logs it; a stopped one just holds its I/O.
# One function so that h-fuse's FUSE handover (issue 13 item 1) changes one place.
FM_REMOUNTS=0
fm_volsrv_recovered()
{
        FM_REMOUNTS=$((FM_REMOUNTS + 1))
        wait_until 25 eval '[[ $("$VSSADMIN" list events 2>/dev/null | grep -Fc "volume server of fmcow restarted; volume remounted at $COW") -ge $FM_REMOUNTS ]] && mountpoint -q "$COW"'
}

# fm_checks VOL: the four checks; details in FM_NOTE, status returned.
fm_checks()
{
        local vol=$1 rc=0 w out c d
        for v in "${FM_VOLS[@]}"; do
                fm_write "$v" || { FM_NOTE+="write on $v did not complete in 5 s (frozen?); "; rc=1; }
        done
        for w in "${FM_WRITERS[@]}"; do
                [[ $w == "$FM_W" && $FM_SIG_PROC == writer:SIGKILL ]] && continue
                out=$(fm_thaw_check "$w") || rc=1
                [[ -n $out ]] && FM_NOTE+="$out; "
        done
        if ! wait_until 10 fm_catalog_agrees "$vol"; then
                c=$(fm_catalog_ids "$vol" | tr '\n' ' ') d=$(fm_disk_ids "$vol" | tr '\n' ' ')
                FM_NOTE+="catalog [${c% }] != provider [${d% }]; "
                rc=1
        fi
        fm_reset_hooks "${FM_WRITERS[@]}"
        bb_run timeout 60 "$VSHADOW" "$vol"
        if [[ $RC != 0 ]]; then
                FM_NOTE+="next set failed ($RC): $(fm_hr <<<"$OUT"); "
                rc=1
        fi
        if [[ -n ${FM_RESTORE_DOC:-} ]]; then
                bb_run timeout 60 "$VSHADOW" -rs="$FM_RESTORE_DOC"
                [[ $RC == 0 ]] || { FM_NOTE+="next restore failed ($RC): ${OUT##*$'\n'}; "; rc=1; }
        fi
        wait_until 10 fm_catalog_agrees "$vol" || { FM_NOTE+="catalog != provider after the next set; "; rc=1; }
        return $rc
}

# fm_case VOL PROC SIG STAGE: one case of a set (or, with FM_RESTORE_DOC, of a restore).
fm_case()
{
        local kind=$1 proc=$2 sig=$3 stage=$4 from hold=$HOLD req_rc status detail
        [[ "$kind $proc $sig $stage" =~ $FM_ONLY ]] || return 0
        FM_NOTE= FM_SIG_PROC=$proc:$sig
        fm_reset_hooks "${FM_WRITERS[@]}"
        from=$(fm_log_lines)
        if [[ $stage == Commit ]]; then
                [[ $kind == cow ]] && hold=$HOLD_FREEZING
        else
                fm_block "$FM_H" "$stage"
        fi
        [[ $kind == cow && $stage == Freeze ]] && hold=$HOLD_FREEZING
        if [[ -n ${FM_RESTORE_DOC:-} ]]; then
                "$VSHADOW" -rs="$FM_RESTORE_DOC" >"$T/req.out" 2>&1 &
        else
                "$VSHADOW" "$FM_VOL" >"$T/req.out" 2>&1 &
        fi
        FM_REQ_PID=$!
        if [[ $stage == Commit ]]; then
                wait_until 20 fm_marker_log "$from" "VSSD_DEBUG_COMMIT_DELAY_MS: test hook" ||
                        FM_NOTE+="commit never reached; "
        else
                wait_until 20 test -e "$T/at" || FM_NOTE+="$stage never reached; "
        fi
        if [[ -n $FM_NOTE ]]; then
                touch "$T/release"
                wait "$FM_REQ_PID" 2>/dev/null
                fm_result "$kind" "$proc" "$sig" "$stage" FAIL "${FM_NOTE}$(tail -n 2 "$T/req.out" | tr '\n' ' ')"
                return 0
        fi
        fm_hit "$proc" "$sig" "$hold"
        req_rc=
        if wait_until 40 eval '! kill -0 $FM_REQ_PID 2>/dev/null'; then
                wait "$FM_REQ_PID" 2>/dev/null && req_rc=0 || req_rc=$?
        else
                FM_NOTE+="requester still running 40 s after the fault; "
                kill -KILL "$FM_REQ_PID" 2>/dev/null
                wait "$FM_REQ_PID" 2>/dev/null
                req_rc=hung
        fi
        fm_recover "$proc" "$sig"
        detail="req=$req_rc"
        [[ $req_rc != 0 ]] && detail+=" $(fm_hr <"$T/req.out")"
        if fm_checks "$FM_VOL"; then status=pass; else status=FAIL; fi
        fm_result "$kind" "$proc" "$sig" "$stage" "$status" "$detail; ${FM_NOTE%; }"
}

# ---- volumes and writers ---------------------------------------------------------------

# The btrfs volume is a subvolume mounted with subvol= (a revert needs one).
bb_volume BTOP btop 512
btrfs subvolume create "$BTOP/data" >/dev/null
BVOL=$T/vols/bvol
mkdir -p "$BVOL"
mount -t btrfs -o subvol=/data "$(findmnt -rn -o SOURCE --mountpoint "$BTOP" | tail -n 1)" "$BVOL"
COW=$T/vols/cow
FM_VOLS=("$BVOL")
echo data >"$BVOL/file"

VSSD_ENV=(VSSD_DEBUG_COMMIT_DELAY_MS=600)
fm_start_vssd
if [[ " $FM_SECTIONS " == *" cow "* ]]; then
        out=$("$VSSADMIN" create volume /name=fmcow /size=256MB /fs=ext4 /mount="$COW" 2>&1) ||
                bb_fail "create volume: $out"
        FM_VOLS+=("$COW")
        echo data >"$COW/file"
fi
fm_start_writer bw "$BVOL"
fm_start_writer bh "$BVOL"

fm_section_set()
{
        local kind=$1 sig proc stage
        for sig in $FM_SIGNALS; do
                for proc in "${FM_PROCS[@]}"; do
                        for stage in "${FM_STAGES[@]}"; do
                                fm_case "$kind" "$proc" "$sig" "$stage"
                        done
                done
        done
}

if [[ " $FM_SECTIONS " == *" btrfs "* ]]; then
        FM_VOL=$BVOL FM_W=bw FM_H=bh FM_WRITERS=(bw bh)
        FM_PROCS=(vssd vshadow writer) FM_STAGES=("${STAGES[@]}")
        fm_section_set btrfs
fi

echo "faults: $FM_FAILS failing case(s) of $(wc -l <"$FM_RESULTS")"
[[ $FM_FAILS -eq 0 ]] || bb_fail "$FM_FAILS case(s) of the fault matrix failed (lines marked FAIL above)"
echo PASS
