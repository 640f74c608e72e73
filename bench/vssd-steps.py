#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Where a snapshot set's time goes, from a `vssd --verbose` log (bench/apps.sh with
VSSD_ARGS=--verbose KEEP=DIR copies it to DIR/vssd.log).  Each "set ID: ... step NAME" or
"set ID: A -> B" line starts an interval that lasts until the set's next line; the table
gives, per interval, the mean and max in ms over the sets, in groups of sets whose start
times fall in the windows given (e.g. the phases of one database and file system).

    bench/vssd-steps.py VSSD_LOG [LABEL=START_US-END_US ...]

Without windows all sets form one group.  The windows are realtime microseconds, as in
bench/apps.sh's RESULTS/DB-FS/b/sets files; bench/apps-report.py passes them.
"""

import datetime
import re
import sys

LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\.(\d{6}) \S+ debug: set (\{[0-9a-f-]+\}): (.*)$")


def parse(path):
    sets = {}
    with open(path) as f:
        for line in f:
            m = LINE.match(line)
            if not m or m.group(3) == "{00000000-0000-0000-0000-000000000000}":
                continue
            t = datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S").timestamp() * 1e6 + int(m.group(2))
            what = m.group(4)
            if " step " in what:
                what = what.split(" step ", 1)[1]
            sets.setdefault(m.group(3), []).append((t, what))
    return sets


def table(sets):
    acc = {}
    order = []
    for ev in sets:
        for (t, what), (t2, _) in zip(ev, ev[1:]):
            if what not in acc:
                acc[what] = []
                order.append(what)
            acc[what].append((t2 - t) / 1000)
    total = [(ev[-1][0] - ev[0][0]) / 1000 for ev in sets if len(ev) > 1]
    rows = [(w, sum(acc[w]) / len(acc[w]), max(acc[w])) for w in order]
    rows = [r for r in rows if r[2] >= 1.0]
    return rows, total


def main():
    sets = parse(sys.argv[1])
    groups = []
    for arg in sys.argv[2:]:
        label, rng = arg.split("=", 1)
        a, b = (float(x) for x in rng.split("-"))
        groups.append((label, [ev for ev in sets.values() if a <= ev[0][0] <= b]))
    if not groups:
        groups = [("all", list(sets.values()))]
    for label, evs in groups:
        if not evs:
            continue
        rows, total = table(evs)
        print(f"{label}: {len(evs)} sets, {sum(total) / len(total):.1f} ms mean (vssd's first to last line); "
              "intervals of >= 1 ms max, mean / max ms:")
        for what, mean, mx in rows:
            print(f"    {what:<28} {mean:>7.1f} {mx:>7.1f}")


if __name__ == "__main__":
    main()
