#!/bin/bash
# (i) vssadmin: explain (name, value, meaning, remedy), create/list/delete shadows
# with the Windows layouts and the delete prompt, list providers, persistence across
# a vssd restart, cleanup of a non-persistent set after `kill -9` of vssd, errors for
# a path that is not a volume (0x80042308) and an ext4 volume (0x8004230C), and
# --json output that parses.
source "$(dirname "$0")/lib.sh"
bb_init

bb_volume VOL data
bb_ext4 EXT plain
bb_start_vssd

# ---- explain ------------------------------------------------------------------------
explain()
{
        # explain CODE HEX NAME REMEDY-WORDS...
        local code=$1 hex=$2 name=$3 w meaning
        shift 3
        bb_run "$VSSADMIN" explain "$code"
        bb_assert_rc 0 "vssadmin explain $code"
        bb_assert_contains "$OUT" "$hex" "vssadmin explain $code prints the value"
        bb_assert_contains "$OUT" "$name" "vssadmin explain $code prints the name"
        for w in "$@"; do
                bb_assert_icontains "$OUT" "$w" "vssadmin explain $code prints the remedy"
        done
        meaning=$(bb_run_meaning "$hex")
        [[ -z "$meaning" ]] || bb_assert_contains "$OUT" "$meaning" "vssadmin explain $code prints the meaning"
}
# The catalogue's one-line meaning, from the daemon's own error replies is not
# available offline; the words below are the catalogue's messages (src/basic/hresult.c).
bb_run_meaning()
{
        case $1 in
        0x800423F4) echo "The writer failed with an error that is likely to recur." ;;
        0x800423F2) echo "The writer's timeout expired between the Freeze and Thaw events." ;;
        0x8004231F) echo "There is not enough storage for the shadow copy's diff area." ;;
        0x80042316) echo "Another shadow copy creation is already in progress." ;;
        0x800423F0) echo "The shadow copy set holds only some of the volumes the writer needs." ;;
        esac
}
explain 0x800423F4 0x800423F4 VSS_E_WRITERERROR_NONRETRYABLE "restart the writer's service"
explain 800423f2 0x800423F2 VSS_E_WRITERERROR_TIMEOUT "freeze timeout" "scanner"
explain VSS_E_INSUFFICIENT_STORAGE 0x8004231F VSS_E_INSUFFICIENT_STORAGE "shadowstorage" "add" "resize"
explain 0x80042316 0x80042316 VSS_E_SNAPSHOT_SET_IN_PROGRESS "retry" "/autoretry"
explain 0x800423F0 0x800423F0 VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT "add the writer's other volumes"
explain vss_e_writererror_timeout 0x800423F2 VSS_E_WRITERERROR_TIMEOUT "freeze timeout"
for bad in 0x12345678 0x80042305 bogus "" 0x800423F2X; do
        bb_run "$VSSADMIN" explain "$bad"
        bb_assert_failed "vssadmin explain '$bad' (not a known code)"
done

# ---- errors -------------------------------------------------------------------------
mkdir -p "$VOL/not-a-volume"
not_a_volume()
{
        bb_run "$VSSADMIN" create shadow "/for=$VOL/not-a-volume"
        bb_assert_hresult 0x80042308 VSS_E_OBJECT_NOT_FOUND "vssadmin create shadow of a directory that is not a volume"
}
bb_soft not_a_volume
# If that created a shadow of the enclosing volume anyway, remove it so the checks
# below start from an empty volume.
"$VSSADMIN" delete shadows "/for=$VOL" /all /quiet </dev/null >/dev/null 2>&1 || true
bb_run "$VSSADMIN" create shadow "/for=$T/does-not-exist"
bb_assert_hresult 0x80042308 VSS_E_OBJECT_NOT_FOUND "vssadmin create shadow of a missing path"
vshadow_not_a_volume()
{
        bb_run "$VSHADOW" "$VOL/not-a-volume"
        bb_assert_hresult 0x80042308 VSS_E_OBJECT_NOT_FOUND "vshadow of a directory that is not a volume"
}
bb_soft vshadow_not_a_volume
bb_run "$VSSADMIN" create shadow "/for=$EXT"
bb_assert_hresult 0x8004230C VSS_E_VOLUME_NOT_SUPPORTED "vssadmin create shadow of an ext4 volume"
bb_run "$VSHADOW" "$EXT"
bb_assert_hresult 0x8004230C VSS_E_VOLUME_NOT_SUPPORTED "vshadow of an ext4 volume"
bb_run "$VSSADMIN" list shadows "/shadow={zzzz}"
bb_assert_failed "vssadmin list shadows with a malformed id"
bb_run "$VSSADMIN" no-such-command
bb_assert_failed "vssadmin with an unknown command"

# ---- list providers -----------------------------------------------------------------
bb_run "$VSSADMIN" list providers
bb_assert_rc 0 "vssadmin list providers"
re="Provider name: '[^']*[Bb]trfs[^']*'"$'\n'"   Provider type: (System|Software|Hardware)"$'\n'"   Provider Id: $bb_guid_re"$'\n'"   Version: [0-9.]+"
[[ "$OUT" =~ $re ]] || bb_fail "vssadmin list providers shows no btrfs provider in the Windows layout:"$'\n'"$OUT"

# ---- create / list / delete shadows -------------------------------------------------
echo "persistent data" >"$VOL/file"
bb_run "$VSSADMIN" create shadow "/for=$VOL"
bb_assert_rc 0 "vssadmin create shadow /for=$VOL"
bb_assert_contains "$OUT" "Successfully created shadow copy for '$VOL'" "vssadmin create shadow output"
[[ "$OUT" =~ Shadow\ Copy\ ID:\ ($bb_guid_re) ]] || bb_fail "no 'Shadow Copy ID: {...}' in:"$'\n'"$OUT"
sid=${BASH_REMATCH[1]}
bb_assert_contains "$OUT" "Shadow Copy Volume Name: " "vssadmin create shadow output"

bb_run "$VSSADMIN" list shadows
bb_assert_rc 0 "vssadmin list shadows"
re="Contents of shadow copy set ID: ($bb_guid_re)"$'\n'
re+="   Contained 1 shadow copies at creation time: [^"$'\n'"]+"$'\n'
re+="      Shadow Copy ID: \\$sid"$'\n'
re+="         Original Volume: [^"$'\n'"]*$VOL[^"$'\n'"]*"$'\n'
re+="         Shadow Copy Volume: [^"$'\n'"]+"$'\n'
re+="         Originating Machine: [^"$'\n'"]+"$'\n'
re+="         Service Machine: [^"$'\n'"]+"$'\n'
re+="         Provider: '[^']+'"$'\n'
# `create shadow` is client-accessible and persistent; with writers (Windows Server's
# ClientAccessibleWriters, 0x0D) or without (ClientAccessible, 0x1D, "No writers").
re+="         Type: ClientAccessible(Writers)?"$'\n'
re+="         Attributes: Persistent, Client-accessible, No auto release(, No writers)?, Differential"
[[ "$OUT" =~ $re ]] || bb_fail "vssadmin list shadows layout (vss-facts 6.1) not matched:"$'\n'"$OUT"
bb_run "$VSSADMIN" list shadows "/for=$VOL"
bb_assert_contains "$OUT" "$sid" "vssadmin list shadows /for=$VOL"
bb_run "$VSSADMIN" list shadows "/shadow=$sid"
bb_assert_contains "$OUT" "$sid" "vssadmin list shadows /shadow=$sid"
bb_run "$VSSADMIN" list shadows "/for=$EXT"
bb_assert_not_contains "$OUT" "$sid" "vssadmin list shadows /for=(another volume)"

# The shadow holds the data.
dev=$("$VSSADMIN" list shadows --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["shadows"][0]["device"])')
[[ -n "$dev" ]] || bb_fail "no device in vssadmin list shadows --json"
[[ -n "$(btrfs subvolume list -s "$VOL")" ]] || bb_fail "no btrfs snapshot subvolume for the persistent shadow"

# Persistent shadows survive a vssd restart.
bb_stop_vssd
bb_start_vssd
bb_run "$VSSADMIN" list shadows
bb_assert_contains "$OUT" "$sid" "vssadmin list shadows after a vssd restart"

# delete, answering N: nothing deleted.
set +e
OUT=$(echo N | "$VSSADMIN" delete shadows "/for=$VOL" /all 2>&1)
RC=$?
set -e
bb_assert_contains "$OUT" "Do you really want to delete 1 shadow copies (Y/N): [N]?" "vssadmin delete shadows prompt"
bb_assert_not_contains "$OUT" "Successfully deleted" "vssadmin delete shadows answered N"
bb_run "$VSSADMIN" list shadows
bb_assert_contains "$OUT" "$sid" "the shadow after answering N"
# ...then Y.
set +e
OUT=$(echo Y | "$VSSADMIN" delete shadows "/for=$VOL" /all 2>&1)
RC=$?
set -e
bb_assert_rc 0 "vssadmin delete shadows answered Y"
bb_assert_contains "$OUT" "Successfully deleted 1 shadow copies." "vssadmin delete shadows answered Y"
bb_assert_no_shadows "$VOL" "after delete shadows /all"

# /quiet: no prompt, no message, deleted.
bb_run "$VSSADMIN" create shadow "/for=$VOL"
bb_assert_rc 0 "vssadmin create shadow (1 of 2)"
bb_run "$VSSADMIN" create shadow "--for=$VOL"
bb_assert_rc 0 "vssadmin create shadow --for= (2 of 2, Linux syntax)"
bb_run "$VSSADMIN" delete shadows "/for=$VOL" /all /quiet </dev/null
bb_assert_rc 0 "vssadmin delete shadows /all /quiet"
bb_assert_eq "" "$(grep -v '^vssadmin 1.1 - \|^(C) Copyright\|^(openvss [0-9.]*)$\|^$' <<<"$OUT" || true)" "output of delete shadows /quiet"
bb_assert_no_shadows "$VOL" "after delete shadows /all /quiet"

# ---- kill -9 of vssd with a non-persistent set alive --------------------------------
cat >"$T/hold.sh" <<EOF2
#!/bin/sh
echo "\$VSHADOW_ID_1" >"$T/held-id"
while [ ! -f "$T/release" ]; do sleep 0.1; done
EOF2
chmod +x "$T/hold.sh"
"$VSHADOW" --exec="$T/hold.sh" "$VOL" >"$T/held.out" 2>&1 &
held=$!
BB_PIDS+=("$held")
bb_wait_until 20 "vshadow runs its --exec command" test -s "$T/held-id"
hid=$(cat "$T/held-id")
bb_run "$VSSADMIN" list shadows
bb_assert_contains "$OUT" "$hid" "the non-persistent shadow while vshadow runs"
bb_kill9_vssd
touch "$T/release"
set +e
wait "$held"
set -e
bb_start_vssd
bb_wait_until 15 "the restarted vssd deletes the orphaned non-persistent shadow" \
        sh -c "! \"$VSSADMIN\" list shadows | grep -qF '$hid'"
bb_wait_until 15 "no snapshot subvolume left after the restarted vssd cleaned up" \
        sh -c "[ -z \"\$(btrfs subvolume list -s '$VOL')\" ]"
bb_assert_no_shadows "$VOL" "after vssd was killed with a non-persistent set"

# ---- --json -------------------------------------------------------------------------
bb_run "$VSSADMIN" create shadow "/for=$VOL"
for what in writers providers shadows volumes events; do
        bb_run "$VSSADMIN" list "$what" --json
        bb_assert_rc 0 "vssadmin list $what --json"
        python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); assert isinstance(d, dict)' <<<"$OUT" ||
                bb_fail "vssadmin list $what --json is not a JSON object:"$'\n'"$OUT"
done
bb_run "$VSSADMIN" list shadows --json
python3 -c '
import json, sys
d = json.loads(sys.stdin.read())
s = d["shadows"]
assert len(s) == 1, s
assert s[0]["original_volume"] == sys.argv[1], s[0]
assert s[0]["attributes"] & 0x1, s[0]          # persistent
' "$VOL" <<<"$OUT" || bb_fail "vssadmin list shadows --json content:"$'\n'"$OUT"
bb_run "$VSSADMIN" delete shadows "/for=$VOL" /all /quiet
bb_assert_rc 0 "vssadmin delete shadows /quiet (end)"
echo "done"
