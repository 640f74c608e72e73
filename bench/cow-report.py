#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Report of bench/cow.sh: reads results.tsv (rep, key, value) and prints one
# row per comparison.  A ratio is formed inside each repetition (test and
# baseline of the same rep, measured seconds apart) and only then summarised,
# so drift of the shared machine between repetitions cancels out; the target
# is judged on the median ratio.  Absolute medians are printed beside it.
#
#   cow-report.py results.tsv [--elapsed SECONDS] [--markdown]

import collections
import statistics
import sys


def load(path):
    data = collections.defaultdict(dict)        # key -> rep -> value
    for line in open(path):
        rep, key, value = line.rstrip("\n").split("\t")
        data[key].setdefault(int(rep), [])
        data[key][int(rep)].append(float(value))
    return data


UNIT = {"rand": "IOPS", "worst": "IOPS", "seq": "MiB/s"}
WORKLOADS = [("rand_first", "rand 4K first write"), ("rand_re", "rand 4K rewrite"),
             ("rand_read", "rand 4K read"), ("seq_first", "seq 1M first write"),
             ("seq_re", "seq 1M rewrite"), ("seq_read", "seq 1M read"),
             ("worst_first", "worst case first write (1 x 4K per 16K chunk)"),
             ("worst_re", "worst case rewrite")]


def main(argv):
    path = argv[0]
    markdown = "--markdown" in argv
    elapsed = None
    if "--elapsed" in argv:
        elapsed = argv[argv.index("--elapsed") + 1]
    d = load(path)
    rows = []
    verdicts = []

    def ratio(label, test, base, goal=None, unit=""):
        reps = sorted(set(d.get(test, {})) & set(d.get(base, {})))
        if not reps:
            rows.append((label, "-", "-", "-", "no data", "-", "not run"))
            return
        rs = [d[test][r][0] / d[base][r][0] for r in reps if d[base][r][0] > 0]
        med = statistics.median(rs)
        abs_t = statistics.median(d[test][r][0] for r in reps)
        abs_b = statistics.median(d[base][r][0] for r in reps)
        v = "-"
        if goal is not None:
            v = "PASS" if med >= goal else "MISS"
            verdicts.append(v == "PASS")
        rows.append((label, "%.3f" % min(rs), "%.3f" % med, "%.3f" % max(rs),
                     "%.0f / %.0f %s" % (abs_t, abs_b, unit), ">= %.2f" % goal if goal else "info",
                     v + " (n=%d)" % len(rs)))

    def unit(w):
        return UNIT[w.split("_")[0]]

    # a. cost of snapshots, same transport (NBD), same server
    for w, name in WORKLOADS:
        goal = None
        if w == "rand_first":
            goal = 0.85
        elif w == "worst_first":
            goal = 0.75
        elif w.endswith("_re") or w.endswith("_read"):
            goal = 0.97
        ratio("a. %s: 1 shadow / none" % name, "cow1." + w, "cow0." + w, goal, unit(w))
    # a/b: a second build (VOLSRV_B, states cowNb) against the first, same run
    for w, name in WORKLOADS:
        for n in (0, 1, 8, 32):
            if "cow%db.%s" % (n, w) in d:
                ratio("ab. %s, %d shadows: build B / A" % (name, n), "cow%db.%s" % (n, w), "cow%d.%s" % (n, w),
                      None, unit(w))
        if "cow1b." + w in d and "cow0b." + w in d:
            ratio("ab. %s: build B, 1 shadow / none" % name, "cow1b." + w, "cow0b." + w, None, unit(w))
    for w, name in WORKLOADS:
        if w.endswith("_first"):
            ratio("a. %s: 8 shadows / 1" % name, "cow8." + w, "cow1." + w, None, unit(w))
            ratio("a. %s: 32 shadows / 1" % name, "cow32." + w, "cow1." + w, 0.97, unit(w))
    # c. against qemu-nbd serving a qcow2 overlay (the same "one snapshot" semantics)
    for w, name in WORKLOADS:
        ratio("c. %s: cow (1 shadow) / qemu-nbd qcow2 overlay" % name, "cow1." + w, "qemu." + w, 1.0, unit(w))
    for w, name in WORKLOADS:
        ratio("c. %s: cow (1 shadow) / qemu-nbd overlay --cache=writeback" % name, "cow1." + w, "qemuwb." + w,
              None, unit(w))
    # b. kernel path
    ratio("b. ext4 rand 4K: loop on fuse/volume / loop on plain file", "ext4_fuse.rand", "ext4_plain.rand",
          0.6, "IOPS")
    ratio("b. ext4 seq 1M: loop on fuse/volume / loop on plain file", "ext4_fuse.seq", "ext4_plain.seq",
          0.6, "MiB/s")
    if "ext4_fuseb.rand" in d:
        ratio("ab. ext4 rand 4K: loop on fuse/volume, build B / A", "ext4_fuseb.rand", "ext4_fuse.rand", None, "IOPS")
        ratio("ab. ext4 seq 1M: loop on fuse/volume, build B / A", "ext4_fuseb.seq", "ext4_fuse.seq", None, "MiB/s")
        ratio("b. ext4 rand 4K: build B, loop on fuse/volume / plain", "ext4_fuseb.rand", "ext4_plain.rand", None,
              "IOPS")
        ratio("b. ext4 seq 1M: build B, loop on fuse/volume / plain", "ext4_fuseb.seq", "ext4_plain.seq", None,
              "MiB/s")
    # e. space
    reps = sorted(set(d.get("space_diff", {})) & set(d.get("space_unique", {})))
    if reps:
        rs = [d["space_diff"][r][0] / d["space_unique"][r][0] for r in reps]
        med = statistics.median(rs)
        v = "PASS" if med <= 1.1 else "MISS"
        verdicts.append(v == "PASS")
        rows.append(("e. diff-area bytes / unique bytes overwritten (4K chunks)", "%.3f" % min(rs),
                     "%.3f" % med, "%.3f" % max(rs),
                     "%.1f / %.1f MiB" % (statistics.median(d["space_diff"][r][0] for r in reps) / 1048576,
                                          statistics.median(d["space_unique"][r][0] for r in reps) / 1048576),
                     "<= 1.10", v + " (n=%d)" % len(rs)))

    # d. commit latency: absolute, all samples
    lat_rows = []
    for key, name, goal in (("commit_1g", "1 GiB volume, idle", 10.0), ("commit_16g", "16 GiB volume, idle", 10.0),
                            ("commit_dirty_1g", "1 GiB, after 32 MiB of fresh writes", None),
                            ("commit_dirty_16g", "16 GiB, after 32 MiB of fresh writes", None)):
        vals = sorted(v for r in d.get(key, {}).values() for v in r)
        if not vals:
            continue
        med = statistics.median(vals)
        v = "info"
        if goal is not None:
            v = "PASS" if med < goal else "MISS"
            verdicts.append(v == "PASS")
        lat_rows.append(("d. Snapshot.Create ms, " + name, "%.2f" % vals[0], "%.2f" % med, "%.2f" % vals[-1],
                         "n=%d" % len(vals), "< %.0f ms" % goal if goal else "info", v))
    if "commit_1g" in d and "commit_16g" in d:
        a = statistics.median(v for r in d["commit_16g"].values() for v in r)
        b = statistics.median(v for r in d["commit_1g"].values() for v in r)
        lat_rows.append(("d. commit 16 GiB / 1 GiB (medians)", "-", "%.2f" % (a / b), "-", "-", "info", "-"))

    head = ("comparison", "min", "median", "max", "median abs (test / base)", "target", "verdict")
    allrows = rows + lat_rows
    if markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for r in allrows:
            print("| " + " | ".join(r) + " |")
    else:
        w0 = max(len(r[0]) for r in allrows + [head])
        w4 = max(len(r[4]) for r in allrows + [head])
        fmt = "%-" + str(w0) + "s  %7s  %7s  %7s  %-" + str(w4) + "s  %-8s  %s"
        print(fmt % head)
        for r in allrows:
            print(fmt % r)
    for key in ("cow0", "cow1", "cow8", "cow32", "cow0b", "cow1b"):
        c = d.get(key + ".copies")
        m = d.get(key + ".commits")
        if c and m:
            print("engine %s: copies %s, journal commits %s per state (all passes)" %
                  (key, "/".join("%d" % v[0] for v in c.values()), "/".join("%d" % v[0] for v in m.values())))
    for key in ("cow1", "cow32", "cow1b"):
        for stat, what in (("throttle_ms", "for write-back buffers"), ("chunk_wait_ms", "for a chunk in write-back")):
            waits = []
            for p in ("rand_first", "seq_first", "worst_first"):
                t = d.get("%s.%s.%s" % (key, p, stat))
                if t and any(v[0] for v in t.values()):
                    waits.append("%s %s" % (p, "/".join("%d" % v[0] for v in t.values())))
            if waits:
                print("engine %s: writers waited %s (ms per rep): %s" % (key, what, ", ".join(waits)))
    print("targets: %d PASS, %d MISS%s" % (sum(verdicts), len(verdicts) - sum(verdicts),
                                         ", run took %s s" % elapsed if elapsed else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
