#!/bin/bash
# Runs every registered meson test suite (unit, fuzz, blackbox and the suites other
# components register) and prints a one-line summary as the very last line:
#   N passed, N failed, N skipped
# Exit status is 0 only when nothing failed.
#
# When FUZZ_BUILD names a -Dfuzzing=true build directory (the Makefile sets it),
# tests/run-fuzz.sh also runs every libFuzzer target there for FUZZ_SECONDS each,
# and its pass/fail counts are added to the summary.
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)

build_dir=${1:-build-test}
if [[ ! -d "$build_dir" ]]; then
        echo "run-tests.sh: build directory '$build_dir' does not exist" >&2
        echo "0 passed, 1 failed, 0 skipped"
        exit 1
fi

shift || true
log="$build_dir/meson-logs/testlog.json"
# A stale log from an earlier run must never be summarised (e.g. when the rebuild fails).
rm -f "$log"
meson test -C "$build_dir" --print-errorlogs "$@"
meson_rc=$?

if [[ ! -f "$log" ]]; then
        echo "run-tests.sh: $log is missing (meson test exited $meson_rc)" >&2
        echo "0 passed, 1 failed, 0 skipped"
        exit 1
fi

# testlog.json holds one JSON object per test (meson >= 0.57, same in 1.0).
# OK/EXPECTEDFAIL pass, SKIP skips, anything else (FAIL, TIMEOUT, ERROR,
# UNEXPECTEDPASS) fails.
summary=$(python3 - "$log" <<'PY'
import json, sys
passed = failed = skipped = 0
with open(sys.argv[1], encoding="utf-8", errors="replace") as f:
    for line in f:
        line = line.strip()
        if not line:
            continue
        try:
            result = json.loads(line).get("result", "ERROR")
        except ValueError:
            failed += 1
            continue
        if result in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif result == "SKIP":
            skipped += 1
        else:
            failed += 1
print(f"{passed} passed, {failed} failed, {skipped} skipped")
PY
)
py_rc=$?
if [[ $py_rc -ne 0 || -z "$summary" ]]; then
        echo "run-tests.sh: cannot read $log" >&2
        echo "0 passed, 1 failed, 0 skipped"
        exit 1
fi

read -r passed failed skipped < <(sed -E 's/^([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped$/\1 \2 \3/' <<<"$summary")

if [[ -n "${FUZZ_BUILD:-}" ]]; then
        if [[ -d "$FUZZ_BUILD" && -x "$top/tests/run-fuzz.sh" ]]; then
                counts=$(mktemp /tmp/openvss-fuzz-counts.XXXXXX)
                FUZZ_COUNTS="$counts" "$top/tests/run-fuzz.sh" "$FUZZ_BUILD"
                if read -r fp ff <"$counts" && [[ "$fp" =~ ^[0-9]+$ && "$ff" =~ ^[0-9]+$ ]]; then
                        passed=$((passed + fp))
                        failed=$((failed + ff))
                else
                        echo "run-tests.sh: run-fuzz.sh reported no counts" >&2
                        failed=$((failed + 1))
                fi
                rm -f "$counts"
        else
                echo "run-tests.sh: FUZZ_BUILD=$FUZZ_BUILD is not a build directory; fuzzers not run" >&2
                skipped=$((skipped + 1))
        fi
fi
# meson failing although no test in the log failed (e.g. it stopped early) is a failure too.
if [[ $meson_rc -ne 0 && "$failed" == 0 ]]; then
        echo "run-tests.sh: meson test exited $meson_rc" >&2
        failed=1
fi
echo "$passed passed, $failed failed, $skipped skipped"
[[ "$failed" == 0 ]]
