#!/bin/bash
# (l) Writers outlive vssd: after vssd stops (SIGTERM) and after it is killed
# (SIGKILL), writers of vsswriter processes (one from the command line, two from
# one config file) register again by themselves within a few seconds of vssd's
# return, with the same writer id and a new instance id, and take part in sets
# again; a writer with --no-reconnect (or no_reconnect = yes) exits 1 as before,
# naming the writer and the lost connection.
source "$(dirname "$0")/lib.sh"
bb_init

bb_volume VOL data
cat >"$T/writers.conf" <<EOF
[writer]
name = ConfA
volume = $VOL
on_freeze = $T/hook.sh
[writer]
name = ConfB
volume = $VOL
on_thaw = $T/hook.sh
[writer]
name = ConfOnce
volume = $VOL
no_reconnect = yes
EOF

listed_all()
{
        local out
        out=$("$VSSADMIN" list writers) || return 1
        for w in Cli ConfA ConfB; do
                grep -qxF "Writer name: '$w'" <<<"$out" || return 1
        done
}

bb_start_vssd
bb_start_writer Cli --volume "$VOL"
bb_start_writer Once --volume "$VOL" --no-reconnect
"$VSSWRITER" --config "$T/writers.conf" >>"$T/writer-conf.log" 2>&1 &
conf_pid=$!
BB_PIDS+=("$conf_pid")
bb_wait_until 10 "the config file's writers are listed" listed_all
declare -A wid iid
for w in Cli ConfA ConfB; do
        wid[$w]=$(bb_writer_field "$w" "Writer Id")
        iid[$w]=$(bb_writer_field "$w" "Writer Instance Id")
done

check_back()
{
        local how=$1 w
        for w in Cli ConfA ConfB; do
                bb_assert_eq "${wid[$w]}" "$(bb_writer_field "$w" "Writer Id")" "writer id of $w after $how"
                local now
                now=$(bb_writer_field "$w" "Writer Instance Id")
                [[ "$now" =~ ^$bb_guid_re$ && "$now" != "${iid[$w]}" ]] ||
                        bb_fail "instance id of $w after $how: was ${iid[$w]}, now $now (must be new)"
                iid[$w]=$now
                bb_assert_writer "$w" "[1] Stable" "No error"
        done
        bb_clear_events
        bb_run "$VSHADOW" "$VOL"
        bb_assert_rc 0 "a set after $how"
        bb_assert_contains "$(bb_events_of Cli)" "PostSnapshot" "Cli takes part in the set after $how"
        bb_assert_contains "$(bb_events_of ConfA)" "Freeze" "ConfA takes part in the set after $how"
        bb_assert_contains "$(bb_events_of ConfB)" "Thaw" "ConfB takes part in the set after $how"
}

bb_log "vssd stopped with SIGTERM, down for 3 s"
bb_stop_vssd
once_rc=
bb_wait_exit "$(bb_writer_pid Once)" 10 once_rc
bb_assert_eq 1 "$once_rc" "exit status of the --no-reconnect writer"
bb_assert_contains "$(cat "$T/writer-Once.log")" "writer 'Once' lost its connection to vssd, exiting: 0x80042318" \
        "the --no-reconnect writer says why it exits"
# The config file's process exits too: one of its writers has no_reconnect = yes.
conf_rc=
bb_wait_exit "$conf_pid" 10 conf_rc
bb_assert_eq 1 "$conf_rc" "exit status of the config process whose ConfOnce has no_reconnect = yes"
bb_assert_contains "$(cat "$T/writer-conf.log")" "writer 'ConfOnce' lost its connection to vssd, exiting" \
        "the config process names the writer"
# Start it again without ConfOnce.
sed -i '/^\[writer\]$/{N;/ConfOnce/{N;N;d}}' "$T/writers.conf"
grep -q ConfOnce "$T/writers.conf" && bb_fail "could not drop ConfOnce from the config file"
kill -0 "$(bb_writer_pid Cli)" || bb_fail "the reconnecting writer exited when vssd stopped"
bb_assert_contains "$(cat "$T/writer-Cli.log")" "writer 'Cli' lost its connection to vssd, reconnecting" \
        "vsswriter says it reconnects"
# vssd stays down for 3 s while the writers' backoff grows: this sleep holds the
# outage, it waits for nothing.
sleep 3
bb_start_vssd
# The config writers need their process again (it exited above by design).
"$VSSWRITER" --config "$T/writers.conf" >>"$T/writer-conf.log" 2>&1 &
BB_PIDS+=($!)
bb_wait_ms ms 6000 "the writers registered again after vssd's return" listed_all
bb_log "writers listed again ${ms} ms after vssd came back"
# ConfA/ConfB came from a new process: only Cli's instance proves the reconnection;
# all three must be back with their ids.
check_back "a SIGTERM of vssd"
bb_assert_contains "$(cat "$T/writer-Cli.log")" "writer 'Cli' registered again" "vsswriter says it registered again"

bb_log "vssd killed with SIGKILL and restarted at once"
bb_kill9_vssd
bb_start_vssd
bb_wait_ms ms 6000 "the writers registered again after vssd's restart" listed_all
bb_log "writers listed again ${ms} ms after vssd restarted"
check_back "a SIGKILL of vssd"
for w in Cli ConfA ConfB; do
        count=$("$VSSADMIN" list writers | grep -cxF "Writer name: '$w'")
        bb_assert_eq 1 "$count" "$w is listed once"
done
echo "done"
