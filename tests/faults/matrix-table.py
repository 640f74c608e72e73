#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The fault matrix's tables (docs/testing.md "Fault matrix") from t-fault-matrix.sh's output.

    matrix-table.py RESULTS...           print the tables (markdown) for RESULTS (several runs: a
                                         cell lists every outcome seen, "a/b")
    matrix-table.py --check DOC RESULTS  every case of RESULTS has its cell in DOC's tables and
                                         passed; exit 1 otherwise.  An outcome the cell does not
                                         list (a cell may list several, "a/b": which one a case
                                         gets can depend on timing) is printed, and fails only
                                         with FM_STRICT=1 in the environment

RESULTS holds the lines the test prints:
    case VOL[/OP] PROC SIGNAL STAGE pass|FAIL|known DETAILS    (OP: set when absent, restore, revert)
    special NAME pass|FAIL|known DETAILS
A cell is the requester's outcome (legend below the tables); a case whose checks failed is
marked FAIL in front of it.  The tables sit between the markers BEGIN and END in DOC.
"""
import os
import re
import sys

BEGIN = "<!-- fault-matrix: begin (tests/faults/matrix-table.py) -->"
END = "<!-- fault-matrix: end -->"

# Short codes for the outcomes, so that eight stages fit on a line.
CODES = {
    "ok": ("ok", "the requester succeeded"),
    "killed": ("killed", "the requester was the process killed"),
    "hung": ("hung", "the requester did not end within 40 s"),
}
HR_CODES = {
    "VSS_E_WRITER_INFRASTRUCTURE": "INFRA",
    "VSS_E_WRITER_NOT_RESPONDING": "NORESP",
    "VSS_E_WRITERERROR_TIMEOUT": "WTIMEOUT",
    "VSS_E_WRITERERROR_NONRETRYABLE": "WNONRETRY",
    "VSS_E_PROVIDER_VETO": "VETO",
    "VSS_E_HOLD_WRITES_TIMEOUT": "HOLD",
    "VSS_E_FLUSH_WRITES_TIMEOUT": "FLUSH",
    "VSS_E_UNEXPECTED_PROVIDER_ERROR": "PROVERR",
    "VSS_E_BAD_STATE": "BADSTATE",
    "VSS_E_OBJECT_NOT_FOUND": "NOTFOUND",
    "VSS_E_UNEXPECTED": "UNEXPECTED",
    "E_UNEXPECTED": "E_UNEXP",
}


def outcome(details):
    """(code, legend text) of a case's DETAILS ("req=RC [0xHR NAME]; notes")."""
    m = re.match(r"req=([^;\s]+)\s*;?(?:\s*(0x[0-9A-Fa-f]{8}) ([A-Z_]+))?", details)
    if not m:
        return "?", "no requester result"
    rc, hx, name = m.groups()
    if rc == "0":
        return CODES["ok"]
    if rc in ("137", "killed"):
        return CODES["killed"]
    if rc == "hung":
        return CODES["hung"]
    if name:
        return HR_CODES.get(name, name), "%s %s" % (hx, name)
    return "rc%s" % rc, "the requester exited with %s, no HRESULT" % rc


def parse_results(text):
    """Lines "case VOL PROC SIG STAGE STATUS DETAILS" and "special NAME STATUS DETAILS"."""
    cases, specials = [], []
    for line in text.splitlines():
        if line.startswith("case "):
            f = line.split(" ", 6)
            if len(f) < 6:
                continue
            cases.append((f[1], f[2], f[3], f[4], f[5], f[6] if len(f) > 6 else ""))
        elif line.startswith("special "):
            f = line.split(" ", 3)
            if len(f) >= 3:
                specials.append((f[1], f[2], f[3] if len(f) > 3 else ""))
    return cases, specials


def op_of(vol):
    return vol.split("/", 1)[1] if "/" in vol else "set"


def cell(status, details):
    code, _ = outcome(details)
    return code if status == "pass" else "%s %s" % (status.upper(), code)


def tables(cases, specials):
    out = []
    legend = {}
    ops = []
    for c in cases:
        if op_of(c[0]) not in ops:
            ops.append(op_of(c[0]))
    for op in ops:
        rows, stages, cells = [], [], {}
        for vol, proc, sig, stage, status, details in cases:
            if op_of(vol) != op:
                continue
            key = (vol.split("/")[0], proc, sig)
            if key not in rows:
                rows.append(key)
            if stage not in stages:
                stages.append(stage)
            c = cell(status, details)
            seen = cells.setdefault(key + (stage,), [])
            if c not in seen:
                seen.append(c)
            code, text = outcome(details)
            legend[code] = text
        out.append("%s:\n" % {"set": "A snapshot set", "restore": "A restore (`vshadow -r --exec`)",
                               "revert": "A revert (`vssadmin revert shadow`)"}.get(op, op))
        out.append("| volume | process | signal | " + " | ".join(stages) + " |")
        out.append("|---|---|---|" + "---|" * len(stages))
        for key in rows:
            out.append("| %s | %s | %s | " % key + " | ".join("/".join(cells.get(key + (s,), [])) for s in stages) + " |")
        out.append("")
    last = {}
    for name, status, details in specials:
        last[name] = (name, status, details)    # the latest run of a case wins
    specials = list(last.values())
    if specials:
        out.append("Special cases:\n")
        out.append("| case | result | details |")
        out.append("|---|---|---|")
        for name, status, details in specials:
            out.append("| %s | %s | %s |" % (name, status, details.replace("|", "/")))
        out.append("")
    out.append("Outcomes (what the requester got; every cell also passed the four checks unless marked FAIL):\n")
    for code in sorted(legend):
        out.append("- `%s`: %s" % (code, legend[code]))
    return "\n".join(out) + "\n"


def doc_cells(doc):
    """{(op, vol, proc, sig, stage): cell text} and {special name: result} of DOC's tables."""
    try:
        body = doc.split(BEGIN, 1)[1].split(END, 1)[0]
    except IndexError:
        return None, None
    cells, specials = {}, {}
    op, header = None, None
    names = {"A snapshot set:": "set", "A restore (`vshadow -r --exec`):": "restore",
             "A revert (`vssadmin revert shadow`):": "revert", "Special cases:": "special"}
    for line in body.splitlines():
        line = line.strip()
        if line in names:
            op, header = names[line], None
            continue
        if not line.startswith("|") or line.startswith("|---"):
            continue
        f = [x.strip() for x in line.strip("|").split("|")]
        if op == "special":
            if f[0] != "case":
                specials[f[0]] = f[1]
            continue
        if header is None:
            header = f
            continue
        for i, stage in enumerate(header[3:], 3):
            if i < len(f):
                cells[(op, f[0], f[1], f[2], stage)] = f[i]
    return cells, specials


def check(doc_path, results_path):
    with open(doc_path) as fh:
        cells, doc_specials = doc_cells(fh.read())
    if cells is None:
        print("%s: no fault matrix between %r and %r" % (doc_path, BEGIN, END))
        return 1
    with open(results_path) as fh:
        cases, specials = parse_results(fh.read())
    bad = odd = 0
    strict = os.environ.get("FM_STRICT") == "1"
    for vol, proc, sig, stage, status, details in cases:
        key = (op_of(vol), vol.split("/")[0], proc, sig, stage)
        got = cell(status, details)
        want = cells.get(key)
        if want is None:
            print("%s: no cell for %s %s %s %s %s (this run: %s)" % ((doc_path,) + key + (got,)))
            bad += 1
        elif status != "pass":
            print("%s: %s %s %s %s %s failed in this run (%r)" % ((doc_path,) + key + (got,)))
            bad += 1
        elif got not in [w.strip() for w in want.split("/")]:
            print("%s: %s %s %s %s %s says %r, this run %r%s" % ((doc_path,) + key + (want, got, "" if strict else
                                                                     " (an outcome to add to the cell)")))
            odd += 1
    for name, status, details in specials:
        if doc_specials.get(name) != status:
            print("%s: special case %s says %r, this run %r" % (doc_path, name, doc_specials.get(name), status))
            bad += 1
    print("fault matrix: %d case(s) checked against %s, %d missing or failed, %d other outcome(s)" %
          (len(cases) + len(specials), doc_path, bad, odd))
    return 1 if bad or (strict and odd) else 0


def main(argv):
    if len(argv) == 4 and argv[1] == "--check":
        return check(argv[2], argv[3])
    if len(argv) >= 2 and not argv[1].startswith("-"):
        cases, specials = [], []
        for path in argv[1:]:
            with open(path) as fh:
                c, sp = parse_results(fh.read())
            cases += c
            specials += sp
        sys.stdout.write(BEGIN + "\n\n" + tables(cases, specials) + "\n" + END + "\n")
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
