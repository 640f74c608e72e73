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
# The victim writer is the other one: it has usually answered the stage's event when it is
# hit (both hooks run at once, so some cells list two outcomes).
# One line per case: "case VOL[/OP] PROC SIGNAL STAGE pass|FAIL DETAILS" (OP: restore, revert;
# a set without); tests/faults/matrix-table.py turns them into the tables of docs/testing.md
# and checks them against it.  FM_ONLY=REGEX runs the cases whose "VOL[/OP] PROC SIGNAL STAGE"
# matches; FM_SECTIONS picks sections (btrfs cow restore revert cow-restore cow-revert difffull
# special), FM_SIGNALS the signals.
source "$(dirname "$0")/../blackbox/lib.sh"
bb_init

[[ -x "${VSS_VOLSRV:-}" ]] || bb_fail "VSS_VOLSRV=${VSS_VOLSRV:-} is not built"
export VSS_VOLSRV
FM_SECTIONS=${FM_SECTIONS:-btrfs cow restore revert}
FM_ONLY=${FM_ONLY:-.}
FM_SIGNALS=${FM_SIGNALS:-SIGKILL SIGSTOP}

FT=1000             # writers' freeze timeout (ms), also vssd's default (a cow volume's first
                    # freeze after its server or vssd restarted takes up to ~700 ms)
ET=1500             # vssd's event timeout (ms)
GRACE=1000          # libvss's grace after the freeze timeout (docs/libvss.md)
SLACK=800           # scheduling slack for the hooks we time (fork/exec of sh, ASan build)
HOLD=2500           # how long a SIGSTOP is held: beyond ET and FT + GRACE
COMMIT_DELAY=300    # the provider commit of a Commit case hangs this long (ms)
HOLD_FREEZING=11000 # ... and beyond the 10 s hold window when filesystems may be frozen
# How long a stopped vss-volsrv is held (beyond the 10 s hold window at Commit): a supervisor
# that replaces a server which stops answering (issue 13 item 1) sets its deadline below this.
FM_VOLSRV_HOLD=${FM_VOLSRV_HOLD:-$HOLD}
VSSD_ARGS=(--freeze-timeout "$FT" --event-timeout "$ET" --config "$T/vssd.conf")
# A diff area may be small here ("diff-area-full" fills its filesystem).
printf '[storage]\nmin_diff_area_mb=1\n' >"$T/vssd.conf"
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
                "$VSSADMIN" delete volume /name=fmdf >/dev/null 2>&1
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

# fm_start_writer NAME VOL [ARGS...]: the victim or the holder of a section (NAME, on VOL); a
# writer killed by a case is started again with the same ARGS (its components).
declare -A FM_WARGS
fm_start_writer()
{
        local name=$1 vol=$2
        shift 2
        FM_WARGS[$name]="$*"
        bb_start_writer "$name" --volume "$vol" --freeze-timeout "$FT" "$@"
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
        local vol=$1 name=
        [[ $vol == "$COW" ]] && name=fmcow
        [[ $vol == "$DFV" ]] && name=fmdf
        if [[ -n $name ]]; then
                python3 "$JSON_CTL" --timeout 5 --get 'snapshots[].shadow_id' \
                        "$T/state/volumes/$name/run/control.sock" Snapshot.List | sort
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

# fm_write VOL: VOL is mounted and a write and syncfs complete within 10 s (no frozen or
# offline filesystem; a revert takes its volume offline).  10 s: a cow volume mounted again
# after its server died replays its journal first, slowly on a loaded 2-CPU machine.
fm_write()
{
        mountpoint -q "$1" && timeout 10 sh -c 'echo probe >"$1/.fm-probe" && sync -f "$1/.fm-probe"' _ "$1" 2>/dev/null
}

# fm_thaw_ok WRITER: if WRITER answered Freeze in this case, its Thaw or Abort hook ran within
# FT + GRACE (+ slack) of that answer, or of SIGCONT when WRITER itself was stopped.
fm_thaw_check()
{
        local w=$1 base end t
        [[ -s $T/ts/$w.freeze ]] || return 0
        base=$(head -n 1 "$T/ts/$w.freeze")
        wait_until $(((FT + GRACE + SLACK) / 1000 + 3)) eval "[[ -s $T/ts/$w.thaw || -s $T/ts/$w.abort ]]" ||
                { echo "$w frozen: no Thaw/Abort hook"; return 1; }
        end=$(cat "$T/ts/$w.thaw" "$T/ts/$w.abort" 2>/dev/null | sort -n | head -n 1)
        # A writer stopped while frozen cannot keep its own deadline: count from SIGCONT.  One
        # that thawed before it was stopped is measured from its Freeze answer.
        [[ -n ${FM_CONT_NS[$w]:-} ]] && ((FM_CONT_NS[$w] > base && end > FM_CONT_NS[$w])) && base=${FM_CONT_NS[$w]}
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
        rm -f "$T/ts/"* "$T/release" "$T/at" "$T/block-exec" "$T/commit-delay" "$T/revert-delay" "$T/offline-delay"
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
        FM_HIT_PID=$pid
        if [[ $sig == SIGKILL ]]; then
                kill -KILL "$pid" 2>/dev/null || { FM_NOTE+="$proc (pid $pid) was gone before the fault; "; touch "$T/release"; return 1; }
                touch "$T/release"
                [[ $proc == vssd ]] && { bb_wait_pid_gone "$pid" 5 || true; BB_VSSD_PID=; }
                return 0
        fi
        kill -STOP "$pid" 2>/dev/null || { FM_NOTE+="$proc (pid $pid) was gone before the fault; "; touch "$T/release"; return 1; }
        touch "$T/release"
        # This sleep holds the stop beyond every deadline; it waits for nothing.
        sleep "$(printf '%d.%03d' $((hold / 1000)) $((hold % 1000)))"
        [[ $proc == writer ]] && FM_CONT_NS[$FM_W]=$(date +%s%N)
        kill -CONT "$pid" 2>/dev/null || true
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
                # shellcheck disable=SC2086 # the words of the writer's arguments
                fm_start_writer "$FM_W" "$FM_VOL" ${FM_WARGS[$FM_W]:-}
                ;;
        vss-volsrv)
                fm_volsrv_recovered || FM_NOTE+="volume server not back: $(tail -n 3 "$T/vssd.log" | tr '\n' ' '); "
                ;;
        esac
}

# A vss-volsrv killed: only the outcome is held here, not how vssd gets there (today it
# restarts the server 5 s later and mounts the volume again, docs/vssd.md "Volume server crash
# recovery"; issue 13 item 1 hands the FUSE connection over instead): within 25 s another server
# runs, the volume is mounted at its place and takes a write.  The case's checks do the rest.
fm_volsrv_back()
{
        local pid
        pid=$(cat "$T/state/volumes/fmcow/run/volsrv.pid" 2>/dev/null) && [[ -n $pid && $pid != "$FM_HIT_PID" ]] &&
                fm_alive "$pid" && mountpoint -q "$COW" && fm_write "$COW"
}
fm_volsrv_recovered() { wait_until 25 fm_volsrv_back; }

# fm_checks VOL: the four checks; details in FM_NOTE, status returned.
fm_checks()
{
        local vol=$1 rc=0 w out c d
        for v in "${FM_VOLS[@]}"; do
                fm_write "$v" || { FM_NOTE+="write on $v did not complete in 10 s (frozen?); "; rc=1; }
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
        if [[ $FM_OP == restore ]]; then
                bb_run timeout 60 "$VSHADOW" -rs="$FM_RESTORE_DOC"
                [[ $RC == 0 ]] || { FM_NOTE+="next restore failed ($RC): $(fm_hr <<<"$OUT"); "; rc=1; }
        fi
        if [[ $FM_OP == revert ]]; then
                fm_revert_next || rc=1
        fi
        wait_until 10 fm_catalog_agrees "$vol" || { FM_NOTE+="catalog != provider after the next set; "; rc=1; }
        return $rc
}

# The restore's command (vshadow -r --exec): blocks like a hook when the case asks for it.
cat >"$T/restore-exec.sh" <<EOF
#!/bin/sh
[ -e "$T/block-exec" ] || exit 0
touch "$T/at"
i=0
while [ ! -e "$T/release" ] && [ \$i -lt 300 ]; do sleep 0.05; i=\$((i+1)); done
EOF
chmod +x "$T/restore-exec.sh"

# fm_shadow VOL: a new persistent shadow copy of VOL (vssadmin create shadow); its id on stdout.
fm_shadow()
{
        local out
        out=$("$VSSADMIN" create shadow /for="$1" 2>&1) || { echo "create shadow: $(fm_hr <<<"$out")" >&2; return 1; }
        awk '/Shadow Copy ID/ { print $4; exit }' <<<"$out"
}

# After a revert case: a new shadow copy, a change, and a revert to it succeed and bring back
# the content the shadow copy had.
fm_revert_next()
{
        local id
        echo before >"$FM_VOL/revert-probe"
        id=$(fm_shadow "$FM_VOL") || { FM_NOTE+="next revert: no shadow copy; "; return 1; }
        echo after >"$FM_VOL/revert-probe"
        bb_run timeout 60 "$VSSADMIN" revert shadow /shadow="$id" /quiet
        [[ $RC == 0 ]] || { FM_NOTE+="next revert failed ($RC): $(fm_hr <<<"$OUT"); "; return 1; }
        [[ $(cat "$FM_VOL/revert-probe" 2>/dev/null) == before ]] ||
                { FM_NOTE+="next revert did not bring the content back; "; return 1; }
        FM_REVERT_ID=$id
}

# fm_revert_ended FROM: vssd logged the end of a revert after line FROM.
fm_revert_ended()
{
        tail -n +"$(($1 + 1))" "$T/vssd.log" | grep -Eq "reverted to shadow copy|cannot revert|stopped in a revert"
}

# fm_case VOL PROC SIG STAGE: one case of FM_OP (set, restore or revert).
FM_OP=set
fm_case()
{
        local kind=$1 proc=$2 sig=$3 stage=$4 from hold=$HOLD req_rc status detail marker= label=$1 hit_failed= t0
        [[ $FM_OP == set ]] || label=$kind/$FM_OP
        [[ "$label $proc $sig $stage" =~ $FM_ONLY ]] || return 0
        FM_NOTE= FM_SIG_PROC=$proc:$sig
        t0=$(bb_now_ms)
        fm_reset_hooks "${FM_WRITERS[@]}"
        from=$(fm_log_lines)
        case $FM_OP:$stage in
        set:Commit) marker=VSSD_DEBUG_COMMIT_DELAY_MS; echo "$COMMIT_DELAY" >"$T/commit-delay" ;;
        revert:Start) marker=VSSD_DEBUG_REVERT_DELAY_MS; echo 800 >"$T/revert-delay" ;;
        revert:Offline) marker=VSSD_DEBUG_REVERT_OFFLINE_MS; echo 800 >"$T/offline-delay" ;;
        restore:Exec) touch "$T/block-exec" ;;
        *) fm_block "$FM_H" "$stage" ;;
        esac
        [[ $proc == vss-volsrv ]] && hold=$FM_VOLSRV_HOLD
        # A cow commit runs inside FIFREEZE: a stopped vssd (or server) is held past the 10 s
        # hold window, so the forked watchdog has to thaw.
        [[ $kind == cow && $stage == Commit && $proc =~ ^(vssd|vss-volsrv)$ ]] &&
                ((hold < HOLD_FREEZING)) && hold=$HOLD_FREEZING
        case $FM_OP in
        set) "$VSHADOW" "$FM_VOL" >"$T/req.out" 2>&1 & ;;
        restore) "$VSHADOW" -r="$FM_RESTORE_DOC" --exec="$T/restore-exec.sh" >"$T/req.out" 2>&1 & ;;
        revert)
                echo changed >"$FM_VOL/revert-probe"
                "$VSSADMIN" revert shadow /shadow="$FM_REVERT_ID" /quiet >"$T/req.out" 2>&1 &
                ;;
        esac
        FM_REQ_PID=$!
        if [[ -n $marker ]]; then
                wait_until 20 fm_marker_log "$from" "$marker: test hook" || FM_NOTE+="$stage never reached; "
        else
                wait_until 20 test -e "$T/at" || FM_NOTE+="$stage never reached; "
        fi
        if [[ -n $FM_NOTE ]]; then
                touch "$T/release"
                wait "$FM_REQ_PID" 2>/dev/null
                fm_result "$label" "$proc" "$sig" "$stage" FAIL "${FM_NOTE}$(tail -n 2 "$T/req.out" | tr '\n' ' ')"
                return 0
        fi
        fm_hit "$proc" "$sig" "$hold" || hit_failed=1
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
        # A revert goes on without its requester (and after SIGCONT): the checks start when it
        # has ended.  One whose vssd was killed is completed or undone when vssd starts again.
        if [[ $FM_OP == revert && $proc:$sig != vssd:SIGKILL ]]; then
                wait_until 30 fm_revert_ended "$from" || FM_NOTE+="the revert did not end within 30 s; "
        fi
        # A cow volume whose revert outlived vssd is mounted again by the next vssd, once its
        # volume server has completed the copy.
        if [[ $FM_OP == revert ]]; then
                wait_until 30 mountpoint -q "$FM_VOL" || FM_NOTE+="$FM_VOL not mounted again within 30 s; "
        fi
        detail="req=$req_rc"
        [[ $req_rc != 0 ]] && detail+=" $(fm_hr <"$T/req.out")"
        if fm_checks "$FM_VOL" && [[ -z $hit_failed ]]; then status=pass; else status=FAIL; fi
        t0=$(($(bb_now_ms) - t0))
        FM_NOTE+="$((t0 / 1000)).$((t0 % 1000 / 100))s; "
        fm_result "$label" "$proc" "$sig" "$stage" "$status" "$detail; ${FM_NOTE%; }"
}

# ---- volumes and writers ---------------------------------------------------------------

# The btrfs volume is a subvolume mounted with subvol= (a revert needs one).
bb_volume BTOP btop 512
btrfs subvolume create "$BTOP/data" >/dev/null
BVOL=$T/vols/bvol
mkdir -p "$BVOL"
mount -t btrfs -o subvol=/data "$(findmnt -rn -o SOURCE --mountpoint "$BTOP" | tail -n 1)" "$BVOL"
COW=$T/vols/cow
DFV=$T/vols/dfv     # the cow volume of "diff-area-full"
FM_VOLS=("$BVOL")
echo data >"$BVOL/file"

# Only the Commit cases write $T/commit-delay: every other set commits at once.  The clock
# offset is written by the "clock-step" case only.
VSSD_ENV=("VSSD_DEBUG_COMMIT_DELAY_MS=@$T/commit-delay" "VSSD_DEBUG_CLOCK_OFFSET_MS=@$T/clock-offset")
# "state-full" fills the state directory's filesystem: a small tmpfs of its own.
if [[ " $FM_SECTIONS " == *" special "* ]]; then
        mkdir -p "$T/state"
        mount -t tmpfs -o size=48m fmstate "$T/state"
fi
fm_start_vssd
fm_section() { [[ " $FM_SECTIONS " == *" $1 "* ]]; }
if fm_section cow || fm_section cow-restore || fm_section cow-revert; then
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

if [[ " $FM_SECTIONS " == *" cow "* ]]; then
        fm_start_writer cw "$COW"
        fm_start_writer ch "$COW"
        wait_until 15 fm_writers_listed cw ch || bb_fail "cow writers did not register"
        FM_VOL=$COW FM_W=cw FM_H=ch FM_WRITERS=(cw ch)
        FM_PROCS=(vssd vshadow writer vss-volsrv) FM_STAGES=("${STAGES[@]}")
        fm_section_set cow
fi

# fm_section_restore KIND VOL VICTIM HOLDER PROC...: a restore (vshadow -r with a command) from a
# document of VOL, by two writers with a component each (a writer without components takes no
# part in a restore), with PROC... hit at each stage.
fm_section_restore()
{
        local kind=$1 vol=$2 out
        fm_start_writer "$3" "$vol" --component data
        fm_start_writer "$4" "$vol" --component data
        FM_VOL=$vol FM_W=$3 FM_H=$4 FM_WRITERS=("$3" "$4")
        out=$("$VSHADOW" -p -bc="$T/bc-$kind.json" "$vol" 2>&1) || bb_fail "vshadow -p -bc of $vol: $out"
        FM_RESTORE_DOC=$T/bc-$kind.json FM_OP=restore
        FM_PROCS=("${@:5}") FM_STAGES=(Identify PreRestore Exec PostRestore)
        fm_section_set "$kind"
        FM_OP=set
}

# fm_section_revert KIND VOL VICTIM HOLDER PROC...: a revert of VOL to a persistent shadow copy,
# held before the provider starts (Start) and while the volume is offline (Offline).
fm_section_revert()
{
        local kind=$1 vol=$2
        FM_VOL=$vol FM_W=$3 FM_H=$4 FM_WRITERS=("$3" "$4")
        wait_until 15 fm_writers_listed "${FM_WRITERS[@]}" || bb_fail "writers did not register again"
        FM_REVERT_ID=$(fm_shadow "$vol") || bb_fail "no shadow copy of $vol to revert to"
        FM_OP=revert FM_PROCS=("${@:5}") FM_STAGES=(Start Offline)
        fm_section_set "$kind"
        FM_OP=set
}

fm_section restore && fm_section_restore btrfs "$BVOL" rw rh vssd vshadow

# The revert hooks come with a vssd of their own (restarted once for all revert sections).
if fm_section revert || fm_section cow-revert; then
        bb_stop_vssd
        VSSD_ENV+=("VSSD_DEBUG_REVERT_DELAY_MS=@$T/revert-delay" "VSSD_DEBUG_REVERT_OFFLINE_MS=@$T/offline-delay")
        fm_start_vssd
fi
fm_section revert && fm_section_revert btrfs "$BVOL" bw bh vssd vssadmin

# The cow volume's restore and revert, with its two further processes: a writer (the victim;
# a revert sends writers nothing, they must simply not be harmed) and the volume server.
if fm_section cow-restore || fm_section cow-revert; then
        fm_section cow || { fm_start_writer cw "$COW"; fm_start_writer ch "$COW"; }
        fm_section cow-restore && fm_section_restore cow "$COW" crw crh vssd vshadow writer vss-volsrv
        fm_section cow-revert && fm_section_revert cow "$COW" cw ch vssd vssadmin writer vss-volsrv
fi

# ---- special cases ------------------------------------------------------------------

# fm_special NAME STATUS DETAILS: one line "special NAME pass|FAIL DETAILS".
fm_special()
{
        echo "special $1 $2 $3" | tee -a "$FM_RESULTS"
        [[ $2 == FAIL ]] && FM_FAILS=$((FM_FAILS + 1))
        return 0
}

# fm_special_checks VOL: the four checks of a case, for a special case.
fm_special_checks()
{
        FM_W= FM_SIG_PROC= FM_OP=set
        fm_checks "$1"
}

# fm_catalog_case NAME HOW: vssd stopped, its catalog damaged (HOW: truncate, pages), vssd
# started on it: it must refuse to start within 10 s naming the catalog and an HRESULT, and
# leave the file as it was; with the good catalog back it starts and the checks pass.
fm_catalog_case()
{
        local name=$1 how=$2 db=$T/state/catalog.db bad= sum before pid rc
        FM_NOTE=
        before=$(fm_catalog_ids "$BVOL")
        bb_stop_vssd
        mkdir -p "$T/catalog-good"
        cp "$db" "$T/catalog-good/catalog.db"
        rm -f "$db-wal" "$db-shm"
        case $how in
        truncate) truncate -s $(($(stat -c %s "$db") / 2)) "$db" ;;
        # Pages 2 and 3 overwritten: the header still reads, the damage is in the tables.
        pages) dd if=/dev/urandom of="$db" bs=4096 seek=1 count=2 conv=notrunc status=none ;;
        esac
        sum=$(sha256sum <"$db")
        "$VSSD" --socket "$T/vssd.sock" --state-dir "$T/state" "${VSSD_ARGS[@]}" >"$T/cat.out" 2>&1 &
        pid=$!
        if wait_until 10 eval '! kill -0 $pid 2>/dev/null'; then
                wait "$pid" && rc=0 || rc=$?
                [[ $rc != 0 ]] || { FM_NOTE+="vssd exited 0 on a damaged catalog; "; bad=1; }
        else
                FM_NOTE+="vssd runs on a damaged catalog; "
                bad=1
                kill -TERM "$pid"
                wait "$pid" || true
        fi
        grep -q "catalog $db" "$T/cat.out" && grep -Eq '0x8[0-9A-F]{7} [A-Z_]+' "$T/cat.out" ||
                { FM_NOTE+="the error names no catalog and HRESULT: $(tail -n 1 "$T/cat.out"); "; bad=1; }
        [[ $(sha256sum <"$db") == "$sum" ]] || { FM_NOTE+="vssd changed the damaged catalog; "; bad=1; }
        cp "$T/catalog-good/catalog.db" "$db"
        fm_start_vssd
        wait_until 15 fm_writers_listed "${FM_WRITERS[@]}" || { FM_NOTE+="writers not registered again; "; bad=1; }
        [[ $(fm_catalog_ids "$BVOL") == "$before" ]] ||
                { FM_NOTE+="shadow copies differ with the good catalog back; "; bad=1; }
        fm_reset_hooks "${FM_WRITERS[@]}"
        fm_special_checks "$BVOL" || bad=1
        if [[ -n $bad ]]; then
                fm_special "$name" FAIL "${FM_NOTE%; }"
        else
                fm_special "$name" pass "vssd refuses to start: $(grep -o 'catalog .*' "$T/cat.out" | head -n 1 | sed "s|$T|\$T|g")"
        fi
}

# state-full: the state directory's filesystem full during a set of a persistent shadow copy:
# the set fails with an HRESULT (or succeeds and is catalogued), the catalog keeps what it had
# and agrees with the disk, and with space again the next set succeeds.
fm_state_full()
{
        local before rc out after bad=
        FM_NOTE=
        before=$(fm_catalog_ids "$BVOL")
        # SQLite reuses its WAL file: emptied first, the set's catalog writes need new space.
        python3 -c 'import sqlite3, sys; sqlite3.connect(sys.argv[1]).execute("PRAGMA wal_checkpoint(TRUNCATE)")' \
                "$T/state/catalog.db" || FM_NOTE+="cannot truncate the catalog's WAL; "
        dd if=/dev/zero of="$T/state/filler" bs=1M status=none 2>/dev/null || true
        bb_run timeout 60 "$VSHADOW" -p "$BVOL"
        rc=$RC out=$OUT
        bb_vssd_alive || { FM_NOTE+="vssd died; "; bad=1; }
        after=$(fm_catalog_ids "$BVOL")
        if [[ $rc == 0 ]]; then
                [[ $(comm -13 <(echo "$before") <(echo "$after") | wc -l) == 1 ]] ||
                        { FM_NOTE+="the set succeeded but its shadow copy is not catalogued; "; bad=1; }
        else
                [[ -n $(fm_hr <<<"$out") ]] || { FM_NOTE+="the failure names no HRESULT: ${out##*$'
'}; "; bad=1; }
                [[ $after == "$before" ]] || { FM_NOTE+="catalog changed by the failed set; "; bad=1; }
        fi
        wait_until 10 fm_catalog_agrees "$BVOL" ||
                { FM_NOTE+="catalog [$after] != disk [$(fm_disk_ids "$BVOL" | tr '
' ' ')] while full; "; bad=1; }
        rm -f "$T/state/filler"
        # What the catalog holds is what the next vssd knows: it must still agree with the disk.
        bb_stop_vssd
        fm_start_vssd
        wait_until 15 fm_writers_listed "${FM_WRITERS[@]}" || { FM_NOTE+="writers not registered again; "; bad=1; }
        wait_until 10 fm_catalog_agrees "$BVOL" || { FM_NOTE+="after a restart, catalog [$(fm_catalog_ids "$BVOL" |
                tr '\n' ' ')] != disk [$(fm_disk_ids "$BVOL" | tr '\n' ' ')]; "; bad=1; }
        fm_reset_hooks "${FM_WRITERS[@]}"
        fm_special_checks "$BVOL" || bad=1
        if [[ -n $bad ]]; then
                fm_special state-full FAIL "${FM_NOTE%; }"
        elif [[ $rc == 0 ]]; then
                fm_special state-full pass "the set succeeded and is catalogued"
        else
                fm_special state-full pass "the set fails: $(fm_hr <<<"$out"); catalog unchanged"
        fi
}

# clock-step: vssd's real-time clock stepped 1 h back at Freeze and 2 h forward (1 h ahead)
# at PostSnapshot, in a set of a persistent shadow copy: the set succeeds, no writer is held
# past its deadline (deadlines are monotonic), the shadow copy is catalogued, and with the
# clock back the next set succeeds.
fm_clock_step()
{
        local before after out w bad=
        FM_NOTE=
        fm_reset_hooks "${FM_WRITERS[@]}"
        bb_behave "$FM_H" Freeze "echo -3600000 >$T/clock-offset; date +%s%N >>$T/ts/$FM_H.freeze"
        bb_behave "$FM_H" PostSnapshot "echo 3600000 >$T/clock-offset"
        before=$(fm_catalog_ids "$BVOL")
        bb_run timeout 60 "$VSHADOW" -p "$BVOL"
        [[ $RC == 0 ]] || { FM_NOTE+="set failed ($RC): $(fm_hr <<<"$OUT"); "; bad=1; }
        for w in "${FM_WRITERS[@]}"; do
                out=$(fm_thaw_check "$w") || bad=1
                FM_NOTE+="$out; "
        done
        after=$(fm_catalog_ids "$BVOL")
        [[ $(comm -13 <(echo "$before") <(echo "$after") | wc -l) == 1 ]] ||
                { FM_NOTE+="the new shadow copy is not catalogued; "; bad=1; }
        rm -f "$T/clock-offset"
        fm_reset_hooks "${FM_WRITERS[@]}"
        fm_special_checks "$BVOL" || bad=1
        if [[ -n $bad ]]; then
                fm_special clock-step FAIL "${FM_NOTE%; }"
        else
                fm_special clock-step pass "the set succeeds, writers thawed in time, its shadow copy catalogued"
        fi
}

# diff-area-full: a cow volume of its own whose diff area is on a filesystem of its own (a
# 64 MB tmpfs; the association made before the volume, docs/vssd.md), its maximum (60 MB) above
# what that filesystem holds once it is filled to 4 MB free: shadow copies S1 and S2 with 8 MB
# of fresh data between, the filesystem filled, 6 MB of fresh data written with fsync: the
# write completes, S1 (the oldest) is evicted and the eviction logged, catalog and volume
# server agree; S2 staying is reported, not required.
fm_diff_full()
{
        local on=$T/diffon s1= s2= out avail bad= kept
        FM_NOTE=
        mkdir -p "$on"
        mount -t tmpfs -o size=64m fmdiff "$on"
        out=$("$VSSADMIN" add shadowstorage /for="$DFV" /on="$on" /maxsize=60MB 2>&1) ||
                { FM_NOTE+="add shadowstorage: $(fm_hr <<<"$out"); "; bad=1; }
        out=$("$VSSADMIN" create volume /name=fmdf /size=64MB /fs=ext4 /mount="$DFV" 2>&1) ||
                { FM_NOTE+="create volume: $(fm_hr <<<"$out"); "; bad=1; }
        if [[ -z $bad ]]; then
                s1=$(fm_shadow "$DFV") || { FM_NOTE+="no shadow copy S1; "; bad=1; }
                dd if=/dev/urandom of="$DFV/df1" bs=1M count=8 conv=fsync status=none
                s2=$(fm_shadow "$DFV") || { FM_NOTE+="no shadow copy S2; "; bad=1; }
                avail=$(df --output=avail -B1M "$on" | tail -n 1)
                ((avail > 4)) && dd if=/dev/zero of="$on/filler" bs=1M count=$((avail - 4)) status=none 2>/dev/null
                timeout 60 dd if=/dev/urandom of="$DFV/df2" bs=1M count=6 conv=fsync status=none ||
                        { FM_NOTE+="the write failed or hung with the diff area's filesystem full; "; bad=1; }
                if [[ -n $s1 ]] && ! wait_until 10 eval '! fm_catalog_ids "$DFV" | grep -qxF "$s1"'; then
                        FM_NOTE+="the oldest shadow copy was not evicted; "
                        bad=1
                fi
                "$VSSADMIN" list events 2>/dev/null |
                        grep -q "deleted because the shadow copy storage could not grow in time.*$s1" ||
                        { FM_NOTE+="no eviction event; "; bad=1; }
                wait_until 10 fm_catalog_agrees "$DFV" || { FM_NOTE+="catalog != volume server; "; bad=1; }
                fm_write "$DFV" || { FM_NOTE+="no write completes on the volume afterwards; "; bad=1; }
        fi
        kept=evicted
        [[ -n $s2 ]] && fm_catalog_ids "$DFV" | grep -qxF "$s2" && kept=kept
        "$VSSADMIN" delete shadows /for="$DFV" /all /quiet >/dev/null 2>&1
        out=$("$VSSADMIN" delete volume /name=fmdf 2>&1) || { FM_NOTE+="delete volume: $(fm_hr <<<"$out"); "; bad=1; }
        "$VSSADMIN" delete shadowstorage /for="$DFV" /quiet >/dev/null 2>&1
        umount "$on" 2>/dev/null || { FM_NOTE+="the diff area's filesystem is still busy; "; bad=1; umount -l "$on"; }
        fm_reset_hooks "${FM_WRITERS[@]}"
        fm_special_checks "$COW" || bad=1
        if [[ -n $bad ]]; then
                fm_special diff-area-full FAIL "${FM_NOTE%; }"
        else
                fm_special diff-area-full pass "writes go on, the oldest shadow copy evicted and logged, the newer one $kept"
        fi
}

if [[ " $FM_SECTIONS " == *" difffull "* && " $FM_SECTIONS " == *" cow "* ]]; then
        FM_VOL=$COW FM_W=cw FM_H=ch FM_WRITERS=(cw ch)
        [[ "special diff-area-full" =~ $FM_ONLY ]] && fm_diff_full
fi

if [[ " $FM_SECTIONS " == *" special "* ]]; then
        FM_VOL=$BVOL FM_W=bw FM_H=bh FM_WRITERS=(bw bh)
        [[ "special catalog-truncated" =~ $FM_ONLY ]] && fm_catalog_case catalog-truncated truncate
        [[ "special catalog-corrupt" =~ $FM_ONLY ]] && fm_catalog_case catalog-corrupt pages
        [[ "special state-full" =~ $FM_ONLY ]] && fm_state_full
        [[ "special clock-step" =~ $FM_ONLY ]] && fm_clock_step
fi

echo "faults: $FM_FAILS failing case(s) of $(wc -l <"$FM_RESULTS")"
# The outcomes against the tables of docs/testing.md: a difference fails the test, with the
# tables of this run printed to put there after a deliberate change.
if [[ -n ${FM_DOC:-} ]] && ! python3 "$(dirname "$0")/matrix-table.py" --check "$FM_DOC" "$FM_RESULTS"; then
        python3 "$(dirname "$0")/matrix-table.py" "$FM_RESULTS"
        FM_FAILS=$((FM_FAILS + 1))
        bb_fail "the fault matrix differs from $FM_DOC (tables of this run above)"
fi
[[ $FM_FAILS -eq 0 ]] || bb_fail "$FM_FAILS case(s) of the fault matrix failed (lines marked FAIL above)"
echo PASS
