#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Runs bench/snapset against a throw-away btrfs: a sparse image on a loop
# device, a private vssd (own socket and state directory), then tears it all
# down, whatever happens.  Must run as root.
#
#   bench/run-snapset.sh [BUILD_DIR] [snapset options...]
#
# BUILD_DIR defaults to ./build.  Environment: IMAGE_SIZE (default 2G),
# VSSD_ARGS (extra vssd options), KEEP_LOG (where to copy vssd's log; default
# /tmp/btrfs-snapset-vssd.log), PERF=1 (record vssd with perf into /tmp/btrfs-snapset-vssd.perf).
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
        echo "run-snapset.sh: must run as root (loop devices, mkfs.btrfs, mount)" >&2
        exit 77
fi

BUILD=${1:-build}
[ $# -gt 0 ] && shift
VSSD=$BUILD/src/vssd/vssd
SNAPSET=$BUILD/bench/snapset
for b in "$VSSD" "$SNAPSET"; do
        if [ ! -x "$b" ]; then
                echo "run-snapset.sh: $b not built (ninja -C $BUILD src/vssd/vssd bench/snapset)" >&2
                exit 2
        fi
done
for t in losetup mkfs.btrfs mount umount; do
        command -v "$t" >/dev/null || { echo "run-snapset.sh: $t not installed" >&2; exit 77; }
done

TMP=$(mktemp -d /tmp/btrfs-bench-XXXXXX)
LOOP=
VSSD_PID=
PERF_PID=
KEEP_LOG=${KEEP_LOG:-/tmp/btrfs-snapset-vssd.log}

cleanup() {
        set +e
        if [ -n "$PERF_PID" ]; then
                kill -INT "$PERF_PID" 2>/dev/null
                wait "$PERF_PID" 2>/dev/null
        fi
        if [ -n "$VSSD_PID" ] && kill -0 "$VSSD_PID" 2>/dev/null; then
                kill -TERM "$VSSD_PID"
                for _ in $(seq 50); do kill -0 "$VSSD_PID" 2>/dev/null || break; sleep 0.1; done
                kill -KILL "$VSSD_PID" 2>/dev/null
                wait "$VSSD_PID" 2>/dev/null
        fi
        [ -f "$TMP/vssd.log" ] && cp "$TMP/vssd.log" "$KEEP_LOG"
        if mountpoint -q "$TMP/mnt"; then
                umount -R "$TMP/mnt" 2>/dev/null || umount -R -l "$TMP/mnt"
        fi
        [ -n "$LOOP" ] && losetup -d "$LOOP"
        rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

truncate -s "${IMAGE_SIZE:-2G}" "$TMP/img"
LOOP=$(losetup -f --show "$TMP/img")
mkfs.btrfs -q -f "$LOOP" >/dev/null
mkdir -p "$TMP/mnt" "$TMP/state"
mount -t btrfs "$LOOP" "$TMP/mnt"
# Some content, so the snapshot is not of an empty tree.
for i in $(seq 200); do head -c 65536 /dev/urandom > "$TMP/mnt/file$i"; done
sync

export VSS_SOCKET=$TMP/vssd.sock
# shellcheck disable=SC2086
"$VSSD" --socket "$VSS_SOCKET" --state-dir "$TMP/state" ${VSSD_ARGS:-} >"$TMP/vssd.log" 2>&1 &
VSSD_PID=$!
for _ in $(seq 100); do
        [ -S "$VSS_SOCKET" ] && break
        kill -0 "$VSSD_PID" 2>/dev/null || { echo "run-snapset.sh: vssd exited:" >&2; cat "$TMP/vssd.log" >&2; exit 1; }
        sleep 0.1
done
[ -S "$VSS_SOCKET" ] || { echo "run-snapset.sh: vssd did not create $VSS_SOCKET" >&2; exit 1; }
if [ "${PERF:-0}" = 1 ]; then
        # Attach rather than wrap, so vssd itself gets the SIGTERM at the end.
        perf record -g -p "$VSSD_PID" -o /tmp/btrfs-snapset-vssd.perf >/dev/null 2>&1 &
        PERF_PID=$!
        sleep 0.5
fi

rc=0
"$SNAPSET" --volume "$TMP/mnt" --socket "$VSS_SOCKET" "$@" || rc=$?
echo "vssd log kept in $KEEP_LOG"
exit $rc
