#!/bin/bash
# (f) Two requesters racing: while the first one's set is held in a slow
# PrepareForSnapshot hook, a second requester gets 0x80042316
# VSS_E_SNAPSHOT_SET_IN_PROGRESS (hex and name printed); the first one succeeds.
source "$(dirname "$0")/lib.sh"
bb_init

bb_volume VOL data
bb_start_vssd
bb_start_writer Holder --volume "$VOL"
bb_behave Holder PrepareForSnapshot "touch '$T/in-pfs'; i=0; while [ ! -f '$T/release' ] && [ \$i -lt 200 ]; do sleep 0.05; i=\$((i+1)); done"

"$VSHADOW" "$VOL" >"$T/first.out" 2>&1 &
first=$!
BB_PIDS+=("$first")
bb_wait_until 20 "the first requester's writer enters PrepareForSnapshot" test -f "$T/in-pfs"

# Second requester: vshadow without writers (its StartSnapshotSet is what must fail).
bb_run "$VSHADOW" -nw "$VOL"
bb_assert_hresult 0x80042316 VSS_E_SNAPSHOT_SET_IN_PROGRESS "second vshadow while a set is in progress"
second_out=$OUT

# Second requester again, with writers, and a raw protocol client.
bb_run "$VSHADOW" "$VOL"
bb_assert_hresult 0x80042316 VSS_E_SNAPSHOT_SET_IN_PROGRESS "second vshadow (with writers) while a set is in progress"
bb_run python3 - "$T/vssd.sock" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(20)
s.connect(sys.argv[1])
f = s.makefile("rwb")
f.write(b'{"id":1,"method":"Backup.StartSnapshotSet","params":{}}\n'); f.flush()
r = json.loads(f.readline())
print(json.dumps(r))
e = r.get("error") or {}
sys.exit(0 if (e.get("hresult"), e.get("name")) == ("0x80042316", "VSS_E_SNAPSHOT_SET_IN_PROGRESS") else 1)
PY
bb_assert_rc 0 "raw Backup.StartSnapshotSet while a set is in progress"

touch "$T/release"
set +e
wait "$first"
first_rc=$?
set -e
OUT=$(cat "$T/first.out") RC=$first_rc
bb_assert_rc 0 "the first vshadow, after the second was refused"
bb_assert_not_contains "$OUT" "0x80042316" "the first vshadow's output"
bb_assert_writer Holder "[1] Stable" "No error"

# Once the first set is done, a new one can start.
bb_behave_clear
bb_run "$VSHADOW" "$VOL"
bb_assert_rc 0 "vshadow after the race"
[[ -n "$second_out" ]]
echo "done"
