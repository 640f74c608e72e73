# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
#
# The checks every shell test shares; tests/blackbox/lib.sh builds on them and the
# cow provider, volume server and package tests source this file directly.  It sets
# no shell options: each script keeps its own (-u, or lib.sh's -euo pipefail).
#
#   ok TEXT                  a check passed
#   fail TEXT                a check failed; the test goes on to its later checks and
#                            must end with `check_exit`, which fails if any did
#   die TEXT                 a failure after which going on makes no sense
#   wait_until SECS CMD...   polls CMD every 0.1 s; false when SECS pass first.  Use it
#                            instead of a bare sleep wherever a test waits for something.
#   check_exit               prints PASS or how many checks failed, exits accordingly
#   python3 "$JSON_CTL" ...  tests/json-ctl.py: requests to vssd's or vss-volsrv's socket

fails=0
JSON_CTL=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/json-ctl.py

ok()
{
        echo "ok: $*"
}

fail()
{
        echo "FAIL: $*"
        fails=$((fails + 1))
}

die()
{
        echo "FAIL: $*"
        exit 1
}

wait_until()
{
        local i n=$(($1 * 10))
        shift
        for ((i = 0; i < n; i++)); do
                "$@" && return 0
                sleep 0.1
        done
        return 1
}

check_exit()
{
        if [[ $fails -eq 0 ]]; then
                echo PASS
                exit 0
        fi
        echo "FAILED: $fails check(s)"
        exit 1
}
