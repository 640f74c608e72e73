#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""
The report of bench/apps.sh: throughput and commit-latency ratios with and without
backups, from the ledger's client logs ("seq ack_realtime_us latency_us" per commit)
and the sets' windows ("start_us end_us" per vshadow run).

    bench/apps-report.py RESULTS_DIR

RESULTS_DIR holds one directory per database and file system (sqlite-btrfs, ...),
each with a1/, b/ and a2/ (the phases) holding client-*.log and sets.
"""

import glob
import os
import sys


def load(phase_dir):
    commits = []        # (begin_us, end_us, latency_us)
    for path in glob.glob(os.path.join(phase_dir, "client-*.log")):
        with open(path) as f:
            for line in f:
                seq, ack, lat = (int(x) for x in line.split())
                commits.append((ack - lat, ack, lat))
    sets = []
    try:
        with open(os.path.join(phase_dir, "sets")) as f:
            sets = [tuple(int(x) for x in line.split()) for line in f if line.strip()]
    except OSError:
        pass
    return commits, sets


def span_s(commits):
    """The phase's length: first commit's start to last commit's end."""
    if not commits:
        return 0.0
    return (max(c[1] for c in commits) - min(c[0] for c in commits)) / 1e6


def during(commit, sets):
    b, e, _ = commit
    return any(b < s_end and e > s_start for s_start, s_end in sets)


def pct(values, p):
    if not values:
        return 0
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * p))]


def read_kv(path):
    out = {}
    with open(path) as f:
        for line in f:
            k, v = line.split()
            out[k] = out.get(k, 0) + int(v)
    return out


def profile(root):
    """PROFILE=1: per phase on a cow volume, what the engine did and who used the CPUs."""
    hz = os.sysconf("SC_CLK_TCK")
    lines = []
    for d in sorted(glob.glob(os.path.join(root, "*"))):
        for ph in ("a1", "b", "a2"):
            pd = os.path.join(d, ph)
            if not os.path.exists(os.path.join(pd, "stats1")):
                continue
            import json
            s0 = json.load(open(os.path.join(pd, "stats0")))
            s1 = json.load(open(os.path.join(pd, "stats1")))
            c0 = read_kv(os.path.join(pd, "cpu0"))
            c1 = read_kv(os.path.join(pd, "cpu1"))
            secs = (c1["t_ms"] - c0["t_ms"]) / 1000
            commits, _ = load(pd)
            n = max(1, len(commits))
            ds = {k: s1.get(k, 0) - s0.get(k, 0) for k in ("copies", "commits", "writebacks", "throttled", "throttle_ms",
                                             "chunk_waits", "chunk_wait_ms", "commit_us", "flushes", "flush_us",
                                             "creates", "create_us", "create_hold_us", "create_flush_us")}
            per = lambda k, n: ds[k] / 1000 / n if n else 0
            cpu = {k: (c1[k] - c0.get(k, 0)) * 1000 / hz for k in c1 if k not in ("t_ms", "machine_idle")}
            cpu_s = " ".join(f"{k} {v / secs:.0f}" for k, v in sorted(cpu.items()))
            cpu_c = " ".join(f"{k} {v * 1000 / n:.0f}" for k, v in sorted(cpu.items()))
            lines.append(f"{os.path.basename(d):<16} {ph:<2} {len(commits) / secs:>6.0f}/s  copies {ds['copies'] / secs:>5.0f}/s "
                         f"({ds['copies'] * s1['chunk_size'] / secs / 1048576:.1f} MiB/s, {ds['copies'] / n:.2f}/commit)  "
                         f"journal commits {ds['commits'] / secs:.0f}/s  write-backs {ds['writebacks'] / secs:.0f}/s  "
                         f"throttled {ds['throttled']} ({ds['throttle_ms']} ms)  chunk waits {ds['chunk_waits']} "
                         f"({ds['chunk_wait_ms']} ms)\n{'':<20}journal commit {per('commit_us', ds['commits']):.1f} ms each; "
                         f"flushes {ds['flushes'] / secs:.1f}/s, {per('flush_us', ds['flushes']):.2f} ms each; "
                         f"snapshot creates {ds['creates']}, {per('create_us', ds['creates']):.1f} ms each "
                         f"(hold {per('create_hold_us', ds['creates']):.1f}, origin flush "
                         f"{per('create_flush_us', ds['creates']):.1f})"
                         f"\n{'':<20}CPU ms/s: {cpu_s}\n{'':<20}CPU us/commit: {cpu_c}")
            perf = os.path.join(pd, "perf.txt")
            if os.path.exists(perf):
                lines.append("".join("    " + x for x in open(perf).readlines()[:12]).rstrip())
    if lines:
        print()
        print("PROFILE (per phase: commits/s, the engine's Storage.Stats deltas, CPU of each process and the machine)")
        print("\n".join(lines))


def steps(root):
    """With vssd --verbose: where each set's time went (bench/vssd-steps.py)."""
    log = os.path.join(root, "vssd.log")
    if not os.path.exists(log):
        return
    args = []
    for d in sorted(glob.glob(os.path.join(root, "*", "b", "sets"))):
        sets = [line.split() for line in open(d) if line.strip()]
        if sets:
            args.append(f"{os.path.basename(os.path.dirname(os.path.dirname(d)))}={sets[0][0]}-{sets[-1][1]}")
    print()
    sys.stdout.flush()
    import subprocess
    subprocess.run([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "vssd-steps.py"), log] + args)


def main():
    root = sys.argv[1]
    rows = []
    for d in sorted(glob.glob(os.path.join(root, "*"))):
        if os.path.isfile(d) and d.endswith(".skipped"):
            rows.append((os.path.basename(d)[:-8], None, open(d).read().strip()))
            continue
        if not os.path.isdir(d):
            continue
        a1, _ = load(os.path.join(d, "a1"))
        a2, _ = load(os.path.join(d, "a2"))
        b, sets = load(os.path.join(d, "b"))
        base = a1 + a2
        base_s = span_s(a1) + span_s(a2)
        if not base or not b or base_s == 0:
            rows.append((os.path.basename(d), None, "no commits logged"))
            continue
        tput_base = len(base) / base_s
        tput_b = len(b) / span_s(b)
        in_set = [c[2] for c in b if during(c, sets)]
        out_set = [c[2] for c in b if not during(c, sets)]
        lat_base = [c[2] for c in base]
        rows.append((os.path.basename(d), {
            "tput_base": tput_base, "tput_b": tput_b, "sets": len(sets),
            "set_ms": (sum(e - s for s, e in sets) / len(sets) / 1000) if sets else 0,
            "max_in": max(in_set) / 1000 if in_set else 0,
            "max_base": max(lat_base) / 1000,
            "p99_base": pct(lat_base, 0.99) / 1000,
            "p99_in": pct(in_set, 0.99) / 1000 if in_set else 0,
            "max_out": max(out_set) / 1000 if out_set else 0,
        }, ""))

    print(f"{'database/fs':<18} {'commits/s':>10} {'+backups':>9} {'ratio':>6}   {'sets':>4} {'set ms':>7}   "
          f"{'max lat':>8} {'in set':>8} {'ratio':>6}   {'p99':>6} {'p99 set':>7}")
    for name, r, note in rows:
        if r is None:
            print(f"{name:<18} {note}")
            continue
        tr = r["tput_b"] / r["tput_base"]
        lr = r["max_in"] / r["max_base"] if r["max_base"] else 0
        print(f"{name:<18} {r['tput_base']:>10.0f} {r['tput_b']:>9.0f} {tr:>6.2f}   {r['sets']:>4} {r['set_ms']:>7.0f}   "
              f"{r['max_base']:>6.1f}ms {r['max_in']:>6.1f}ms {lr:>6.2f}   {r['p99_base']:>4.1f}ms {r['p99_in']:>5.1f}ms")
    print()
    print("commits/s: without backups (phases A1+A2) and with a backup every few seconds (B); ratio = B / A")
    print("           (target >= 0.90).  max lat: the longest commit (BEGIN..COMMIT) without backups; in set:")
    print("           the longest among commits in flight during a set (vshadow start..end); ratio = in set /")
    print("           without (the stall a set adds; target on btrfs: the longest stall under 200 ms).")
    print("           p99: 99th percentile of commit latency without backups / of commits during sets.")
    profile(root)
    steps(root)


if __name__ == "__main__":
    main()
