#!/usr/bin/env bash
# Runs every libFuzzer binary of a -Dfuzzing=true build for FUZZ_SECONDS each, starting
# from its committed seed corpus.  Prints one "fuzz: NAME ok|FAILED" line per target and
# writes "passed failed" counts to $FUZZ_COUNTS when set (run-tests.sh adds them to its total).
set -uo pipefail

BUILD=${1:?usage: run-fuzz.sh FUZZ_BUILD_DIR}
SECONDS_EACH=${FUZZ_SECONDS:-20}
top=$(cd "$(dirname "$0")/.." && pwd)
pass=0 fail=0

mapfile -t targets < <(find "$BUILD" -type f -name 'fuzz-*' -perm -u+x ! -name '*.p' | sort)
for t in "${targets[@]}"; do
        name=$(basename "$t")
        corpus=$(find "$top/tests" -type d -path "*corpus/${name#fuzz-}" | head -n 1)
        work=$(mktemp -d "/tmp/openvss-$name.XXXXXX")
        [ -n "$corpus" ] && cp -r "$corpus/." "$work/"
        if "$t" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
                -artifact_prefix="$work/" "$work" >"$work.log" 2>&1; then
                echo "fuzz: $name ok ($(grep -o 'stat::number_of_executed_units: [0-9]*' "$work.log" | awk '{print $2}') runs)"
                pass=$((pass + 1))
                rm -rf "$work" "$work.log"
        else
                echo "fuzz: $name FAILED (log and crash input kept in $work.log, $work)"
                tail -n 30 "$work.log"
                fail=$((fail + 1))
        fi
done
[ -n "${FUZZ_COUNTS:-}" ] && echo "$pass $fail" >"$FUZZ_COUNTS"
[ "$fail" -eq 0 ]
