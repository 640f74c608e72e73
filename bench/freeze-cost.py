#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""
What FIFREEZE costs on a mounted file system, apart from the data it has to write:
N rounds of (sleep GAP s, append 40 KiB + fsync, syncfs, FIFREEZE, FITHAW), each step
timed.  The file system is frozen for a moment each round: use a scratch mount.

    bench/freeze-cost.py MOUNTPOINT [GAP_S=3] [N=5] [STACKS=0]   (root)

With STACKS=1 a second thread samples the kernel stack of the freezing thread every
10 ms during FIFREEZE (/proc/self/task/TID/stack) and prints the frames counted, which
shows where a clean freeze waits (on 6.18: rcu_sync_enter in freeze_super, one RCU grace
period per freeze level).
"""

import collections
import ctypes
import fcntl
import os
import sys
import threading
import time

FIFREEZE, FITHAW = 0xC0045877, 0xC0045878


def main():
    mnt = sys.argv[1]
    gap = float(sys.argv[2]) if len(sys.argv) > 2 else 3.0
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    stacks = len(sys.argv) > 4 and sys.argv[4] == "1"
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(mnt, os.O_RDONLY | os.O_DIRECTORY)
    path = os.path.join(mnt, ".freeze-cost")
    seen = collections.Counter()
    freezing = threading.Event()
    done = threading.Event()
    tid = threading.get_native_id()

    def sampler():
        while not done.is_set():
            if freezing.is_set():
                try:
                    with open(f"/proc/self/task/{tid}/stack") as f:
                        frames = [line.split()[1].split("+")[0] for line in f if len(line.split()) > 1]
                    seen[" < ".join(frames[:3])] += 1
                except OSError:
                    pass
            time.sleep(0.01)

    if stacks:
        threading.Thread(target=sampler, daemon=True).start()
    try:
        for _ in range(n):
            time.sleep(gap)
            with open(path, "ab") as f:
                f.write(os.urandom(40960))
                f.flush()
                os.fsync(f.fileno())
            t0 = time.monotonic()
            libc.syncfs(fd)
            t1 = time.monotonic()
            freezing.set()
            fcntl.ioctl(fd, FIFREEZE, 0)
            freezing.clear()
            t2 = time.monotonic()
            fcntl.ioctl(fd, FITHAW, 0)
            t3 = time.monotonic()
            print(f"gap {gap:g} s: syncfs {1e3 * (t1 - t0):.1f} ms, FIFREEZE {1e3 * (t2 - t1):.1f} ms, "
                  f"FITHAW {1e3 * (t3 - t2):.1f} ms", flush=True)
    finally:
        done.set()
        os.unlink(path)
    for frames, count in seen.most_common(5):
        print(f"{count:>4} samples in FIFREEZE: {frames}")


if __name__ == "__main__":
    main()
