#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""
The report of bench/apps.sh: throughput and commit-latency ratios with and without
backups, from the ledger's client logs ("seq ack_realtime_us latency_us" per commit),
the blocks ("KIND start_us end_us", KIND A without backups, B with) and the sets'
windows ("start_us end_us" per vshadow run).

    bench/apps-report.py RESULTS_DIR

RESULTS_DIR holds one directory per database and file system (sqlite-btrfs, ...), each
with load/client-*.log, blocks and sets.  The blocks come in pairs (A B B A A B ...: the
first pair is blocks 0 and 1, the second 2 and 3, ...); a commit belongs to the block its
acknowledgement falls in.  Per pair the throughput ratio is B's commits/s over A's; the
table gives the median ratio over the pairs and their range.
"""

import bisect
import glob
import json
import os
import statistics
import subprocess
import sys


def load_commits(load_dir):
    commits = []        # (begin_us, end_us, latency_us), sorted by end
    for path in glob.glob(os.path.join(load_dir, "client-*.log")):
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) != 3:
                    continue        # the last line of a client killed mid-write
                _, ack, lat = (int(x) for x in parts)
                commits.append((ack - lat, ack, lat))
    commits.sort(key=lambda c: c[1])
    return commits


def read_rows(path, kinds=False, loads=False):
    try:
        with open(path) as f:
            rows = [line.split() for line in f if line.strip()]
    except OSError:
        return []
    if kinds:
        return [(r[0], int(r[1]), int(r[2])) for r in rows]
    if loads:
        return [float(r[3]) for r in rows if len(r) > 3]
    return [(int(r[0]), int(r[1])) for r in rows]


def in_window(commits, ends, start, end):
    """The commits acknowledged in [start, end)."""
    return commits[bisect.bisect_left(ends, start):bisect.bisect_left(ends, end)]


def overlaps_set(commit, sets):
    b, e, _ = commit
    return any(b < s_end and e > s_start for s_start, s_end in sets)


def pct(values, p):
    if not values:
        return 0
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * p))]


def spread(values):
    """median [interquartile range] (min..max)"""
    q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return f"{q[1]:.2f} [{q[0]:.2f}..{q[2]:.2f}] ({min(values):.2f}..{max(values):.2f})"


def cell(d):
    commits = load_commits(os.path.join(d, "load"))
    blocks = read_rows(os.path.join(d, "blocks"), kinds=True)
    sets = read_rows(os.path.join(d, "sets"))
    if not commits or len(blocks) < 2:
        return None
    ends = [c[1] for c in commits]
    per = []            # per block: (kind, commits/s, [latencies], [latencies in flight during a set])
    for kind, start, end in blocks:
        cs = in_window(commits, ends, start, end)
        bsets = [s for s in sets if start <= s[0] < end]
        during = [c[2] for c in cs if overlaps_set(c, bsets)] if kind == "B" else []
        per.append((kind, len(cs) / ((end - start) / 1e6), [c[2] for c in cs], during))
    ratios, stalls = [], []
    for i in range(0, len(per) - 1, 2):
        a, b = (per[i], per[i + 1]) if per[i][0] == "A" else (per[i + 1], per[i])
        if a[1] > 0:
            ratios.append(b[1] / a[1])
        if a[2] and b[3]:
            stalls.append(max(b[3]) / max(a[2]))
    # The noise floor of this run: within each A block (no sets at all), its second half's
    # commits over its first half's.  Their interquartile range is what two neighbouring
    # windows differ by with no backup anywhere near (the neighbours' load).
    null = []
    for kind, start, end in blocks:
        mid = (start + end) // 2
        first, second = len(in_window(commits, ends, start, mid)), len(in_window(commits, ends, mid, end))
        if kind == "A" and first:
            null.append(second / first)
    a_tput = [p[1] for p in per if p[0] == "A"]
    b_tput = [p[1] for p in per if p[0] == "B"]
    lat_a = [x for p in per if p[0] == "A" for x in p[2]]
    lat_in = [x for p in per if p[0] == "B" for x in p[3]]
    return {
        "a": statistics.median(a_tput), "a_min": min(a_tput), "a_max": max(a_tput),
        "b": statistics.median(b_tput), "pooled": sum(b_tput) / sum(a_tput) if sum(a_tput) else 0, "pairs": len(ratios), "ratios": ratios, "stalls": stalls,
        "sets": len(sets), "set_ms": (sum(e - s for s, e in sets) / len(sets) / 1000) if sets else 0,
        "max_a": max(lat_a) / 1000 if lat_a else 0, "max_in": max(lat_in) / 1000 if lat_in else 0,
        "p99_a": pct(lat_a, 0.99) / 1000, "p99_in": pct(lat_in, 0.99) / 1000,
        "noise": (lambda q: q[2] - q[0])(statistics.quantiles(null, n=4)) if len(null) > 1 else 0,
        "load": statistics.median(read_rows(os.path.join(d, "blocks"), loads=True) or [0]),
    }


def read_kv(path):
    out = {}
    with open(path) as f:
        for line in f:
            k, v = line.split()
            out[k] = out.get(k, 0) + int(v)
    return out


STATS = ("copies", "commits", "writebacks", "throttled", "throttle_ms", "chunk_waits", "chunk_wait_ms", "commit_us",
         "flushes", "flush_us", "creates", "create_us", "create_hold_us", "create_flush_us")


def profile(root):
    """PROFILE=1: per kind of block, what the engine did and who used the CPUs (summed over the blocks)."""
    hz = os.sysconf("SC_CLK_TCK")
    lines = []
    for d in sorted(glob.glob(os.path.join(root, "*"))):
        blocks = read_rows(os.path.join(d, "blocks"), kinds=True)
        if not blocks or not os.path.exists(os.path.join(d, "blk-0", "cpu1")):
            continue
        commits = load_commits(os.path.join(d, "load"))
        ends = [c[1] for c in commits]
        for kind in ("A", "B"):
            secs, n, cpu, ds, chunk, perf = 0.0, 0, {}, {k: 0 for k in STATS}, 0, None
            have_stats = False
            for i, (k, start, end) in enumerate(blocks):
                pd = os.path.join(d, f"blk-{i}")
                if k != kind or not os.path.exists(os.path.join(pd, "cpu1")):
                    continue
                c0, c1 = read_kv(os.path.join(pd, "cpu0")), read_kv(os.path.join(pd, "cpu1"))
                secs += (c1["t_ms"] - c0["t_ms"]) / 1000
                n += len(in_window(commits, ends, start, end))
                for key in c1:
                    if key not in ("t_ms", "machine_idle"):
                        cpu[key] = cpu.get(key, 0) + (c1[key] - c0.get(key, 0)) * 1000 / hz
                if os.path.exists(os.path.join(pd, "stats1")):
                    have_stats = True
                    s0 = json.load(open(os.path.join(pd, "stats0")))
                    s1 = json.load(open(os.path.join(pd, "stats1")))
                    chunk = s1.get("chunk_size", 0)
                    for key in STATS:
                        ds[key] += s1.get(key, 0) - s0.get(key, 0)
                if perf is None and os.path.exists(os.path.join(pd, "perf.txt")):
                    perf = os.path.join(pd, "perf.txt")
            if not secs:
                continue
            n = max(1, n)
            per = lambda k, m: ds[k] / 1000 / m if m else 0
            cpu_s = " ".join(f"{k} {v / secs:.0f}" for k, v in sorted(cpu.items()))
            cpu_c = " ".join(f"{k} {v * 1000 / n:.0f}" for k, v in sorted(cpu.items()))
            lines.append(f"{os.path.basename(d):<16} {kind}  {n / secs:>6.0f}/s over {secs:.0f} s")
            if have_stats:
                lines.append(f"{'':<20}copies {ds['copies'] / secs:.0f}/s ({ds['copies'] * chunk / secs / 1048576:.1f} "
                             f"MiB/s, {ds['copies'] / n:.2f}/commit)  journal commits {ds['commits'] / secs:.0f}/s "
                             f"({per('commit_us', ds['commits']):.1f} ms each)  write-backs {ds['writebacks'] / secs:.0f}/s"
                             f"  throttled {ds['throttled']} ({ds['throttle_ms']} ms)  chunk waits {ds['chunk_waits']} "
                             f"({ds['chunk_wait_ms']} ms)\n{'':<20}flushes {ds['flushes'] / secs:.1f}/s, "
                             f"{per('flush_us', ds['flushes']):.2f} ms each; snapshot creates {ds['creates']}, "
                             f"{per('create_us', ds['creates']):.1f} ms each (hold {per('create_hold_us', ds['creates']):.1f}"
                             f", origin flush {per('create_flush_us', ds['creates']):.1f})")
            lines.append(f"{'':<20}CPU ms/s: {cpu_s}\n{'':<20}CPU us/commit: {cpu_c}")
            if perf:
                lines.append("".join("    " + x for x in open(perf).readlines()[:12]).rstrip())
    if lines:
        print()
        print("PROFILE (per kind of block, summed over the blocks: commits/s, the engine's Storage.Stats on a cow")
        print("volume, CPU of each process and of the machine)")
        print("\n".join(lines))


def steps(root):
    """With vssd --verbose: where each set's time went (bench/vssd-steps.py)."""
    log = os.path.join(root, "vssd.log")
    if not os.path.exists(log):
        return
    args = []
    for d in sorted(glob.glob(os.path.join(root, "*", "sets"))):
        sets = read_rows(d)
        if sets:
            args.append(f"{os.path.basename(os.path.dirname(d))}={sets[0][0]}-{sets[-1][1]}")
    print()
    sys.stdout.flush()
    subprocess.run([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "vssd-steps.py"), log] + args)


def main():
    root = sys.argv[1]
    print(f"{'database/fs':<18} {'commits/s A':>11} {'B':>6}  {'ratio B/A: median [IQR] (range)':<32} {'pooled':>6} {'sets':>4} {'set ms':>6}  "
          f"{'max lat A':>9} {'in set':>8}  {'stall ratio: median [IQR] (range)':<34} {'p99 A':>6} {'in set':>6} {'load':>5} {'noise':>5}")
    for d in sorted(glob.glob(os.path.join(root, "*"))):
        name = os.path.basename(d)
        if os.path.isfile(d) and d.endswith(".skipped"):
            print(f"{name[:-8]:<18} {open(d).read().strip()}")
            continue
        if not os.path.isdir(d):
            continue
        r = cell(d)
        if r is None or not r["ratios"]:
            print(f"{name:<18} no commits or blocks logged")
            continue
        print(f"{name:<18} {r['a']:>11.0f} {r['b']:>6.0f}  {spread(r['ratios']):<32} "
              f"{r['pooled']:>6.2f} {r['sets']:>4} {r['set_ms']:>6.0f}  {r['max_a']:>7.1f}ms {r['max_in']:>6.1f}ms  "
              f"{(spread(r['stalls']) if r['stalls'] else '-'):<34} {r['p99_a']:>4.1f}ms {r['p99_in']:>4.1f}ms {r['load']:>5.1f} {r['noise']:>5.2f}")
    print()
    print("commits/s: the median over the blocks without backups (A) and with a backup every EVERY s (B).")
    print("ratio B/A: per pair of neighbouring A and B blocks, B's commits/s over A's; the median over the")
    print("           pairs [its interquartile range] (min..max) (target >= 0.90); pooled: the mean B commits/s")
    print("           over the mean A.")
    print("max lat A: the longest commit (BEGIN..COMMIT) in the A blocks; in set: the longest among commits in")
    print("           flight during a set (vshadow start..end; target on btrfs: under 200 ms).  stall ratio: per")
    print("           pair, B's longest in a set over A's longest.  p99: of the A blocks'")
    print("           commits / of the commits during sets.  load: the machine's 1-minute load average at the")
    print("           blocks' ends, median (the cost of a set grows with the CPU it has to share).  noise: the")
    print("           interquartile range of (second half / first half) of the A blocks, with no set anywhere:")
    print("           what neighbouring windows differ by from the machine's other load alone; the median of")
    print("           PAIRS ratios is uncertain by about 0.9 * noise / sqrt(PAIRS) (one standard error).")
    profile(root)
    steps(root)


if __name__ == "__main__":
    main()
