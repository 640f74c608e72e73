#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""
The man pages against the programs (suite docs).

For every man/PROGRAM.8.scd whose PROGRAM this build has (meson-info says which
executables exist, so a page whose program is not built yet is reported and
left out, and a new page, such as an application writer's, is checked without
a change here):

  * `PROGRAM --help` exits 0 and lists options, one per line starting with the
    option; the page's OPTIONS section defines exactly the same options (every
    option in the page exists, every option the program prints is in the page);
  * the option tables in the program's own sources (getopt's struct option and
    optstring, tools/common's struct tool_option) are all in --help, so --help
    cannot drift from what the parser accepts;
  * vssadmin: each command's options in --help are the page's (COMMANDS), and
    the bash completion offers the same commands and options.

Also: vssd.conf(5) names exactly the keys of data/config/vssd.conf, and vssd
accepts each of them (and refuses an unknown one, the control); libvss(3) names
exactly the symbols libvss.so exports; every generated page renders with
`man --warnings` silent; the packaged writers.d sample parses.

Usage: check-docs.py BUILD_ROOT SOURCE_ROOT
"""

import glob
import json
import os
import re
import subprocess
import sys
import tempfile

build_root, source_root = sys.argv[1], sys.argv[2]
failures = []


def fail(what):
    failures.append(what)
    print("FAIL: " + what)


def section(text, title):
    """The lines of '# TITLE' (up to the next '# ' heading) of an scdoc page."""
    out, inside = [], False
    for line in text.splitlines():
        if line.startswith("# "):
            inside = line[2:].strip() == title
            continue
        if inside:
            out.append(line)
    return out


OPT_RE = re.compile(r"(?<![A-Za-z0-9_])(--?[A-Za-z0-9?][A-Za-z0-9-]*)")


def help_options(lines):
    """Options of --help lines that start with an option: '  -s, --socket=PATH   text'."""
    opts = set()
    for line in lines:
        s = line.strip()
        if not s.startswith("-"):
            continue
        # The option part ends at the first run of two spaces (then comes the text).
        head = re.split(r"\s{2,}", s, maxsplit=1)[0]
        for tok in head.split(","):
            m = OPT_RE.match(tok.strip())
            if m:
                opts.add(m.group(1))
    return opts


def page_options(lines):
    """Options defined in an OPTIONS section: lines such as '*-s*, *--socket* _PATH_'."""
    opts = set()
    for line in lines:
        if line.startswith("*-"):
            opts.update(re.findall(r"\*(--?[A-Za-z0-9?][A-Za-z0-9-]*)", line))
    return opts


def norm(name):
    return name.lstrip("-/")


def source_options(sources):
    """Long and short option names from the option tables in the sources."""
    names = set()
    for path in sources:
        try:
            text = open(path, encoding="utf-8", errors="replace").read()
        except OSError:
            continue
        for m in re.finditer(r'\{\s*"([A-Za-z0-9-]+)"\s*,\s*(no|required|optional)_argument', text):
            names.add("--" + m.group(1))
        for m in re.finditer(r'getopt_long\s*\([^,]+,[^,]+,\s*"([^"]*)"', text):
            for c in m.group(1):
                if c.isalnum():
                    names.add("-" + c)
        for m in re.finditer(r'\{\s*"([A-Za-z0-9-]+)"\s*,\s*(NULL|"([A-Za-z0-9]+)")\s*,\s*TOOL_OPT_', text):
            names.add("--" + m.group(1))
            if m.group(3):
                names.add("-" + m.group(3))
    return names


def vssadmin_commands(help_lines):
    """{'list shadows': {'for', 'shadow', 'json'}, ...} from '  vssadmin list shadows [/for=VOL] ...'."""
    cmds = {}
    for line in help_lines:
        s = line.strip()
        if not s.startswith("vssadmin "):
            continue
        words = s.split()[1:]
        name = []
        for w in words:
            if re.fullmatch(r"[a-z]+", w):
                name.append(w)
            else:
                break
        rest = " ".join(words[len(name):])
        cmds[" ".join(name)] = {m.lower() for m in re.findall(r"(?:^|[\s\[|])(?:/|--)([A-Za-z]+)", rest)}
    return cmds


def page_commands(lines):
    cmds = {}
    for line in lines:
        m = re.match(r"\*([a-z]+(?: [a-z]+)?)\*(.*)", line)
        if m:
            cmds[m.group(1)] = {o.lower() for o in re.findall(r"\*(?:/|--)([A-Za-z]+)", m.group(2))}
    return cmds


def compare(what, have, want, have_name, want_name):
    for x in sorted(want - have):
        fail(f"{what}: {x} is in {want_name} but not in {have_name}")
    for x in sorted(have - want):
        fail(f"{what}: {x} is in {have_name} but not in {want_name}")


def run(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30, **kw)


targets = json.load(open(os.path.join(build_root, "meson-info", "intro-targets.json")))
executables = {t["name"]: t for t in targets if t["type"] == "executable"}

# ---- programs: --help against OPTIONS (and COMMANDS) ----
checked = 0
help_text = {}
for scd in sorted(glob.glob(os.path.join(source_root, "man", "*.8.scd"))):
    prog = os.path.basename(scd)[:-len(".8.scd")]
    t = executables.get(prog)
    if not t:
        print(f"note: {prog} is not built here; {os.path.basename(scd)} not checked")
        continue
    exe = t["filename"][0]
    page = open(scd, encoding="utf-8").read()
    r = run([exe, "--help"])
    if r.returncode != 0:
        fail(f"{prog} --help exited {r.returncode}: {r.stderr.strip()}")
        continue
    lines = r.stdout.splitlines()
    help_text[prog] = lines
    hopts = help_options(lines)
    if not hopts:
        fail(f"{prog} --help lists no option lines")
    popts = page_options(section(page, "OPTIONS"))
    if not popts:
        fail(f"{os.path.basename(scd)} has no OPTIONS")
    compare(prog, popts, hopts, "its man page", "--help")

    names_in_help = {norm(o) for o in hopts}
    if prog == "vssadmin":
        hc = vssadmin_commands(lines)
        pc = page_commands(section(page, "COMMANDS"))
        if not hc:
            fail("vssadmin --help lists no commands")
        compare("vssadmin commands", set(pc), set(hc), "the man page", "--help")
        for c in sorted(set(hc) & set(pc)):
            compare(f"vssadmin {c}", pc[c], hc[c], "the man page", "--help")
        for opts in hc.values():
            names_in_help |= opts
    sources = [s for ts in t["target_sources"] for s in ts.get("sources", [])]
    for o in sorted(source_options(sources)):
        if norm(o) not in names_in_help:
            fail(f"{prog}: option {o} of its sources is not in --help")
    checked += 1
    print(f"ok: {prog}: {len(hopts)} options agree with {os.path.basename(scd)}")

if checked == 0:
    fail("no man page's program is built")

# ---- bash completion of vssadmin and vshadow against --help ----
bc = "/usr/share/bash-completion/bash_completion"
if not os.path.exists(bc):
    fail(f"{bc} is missing (package bash-completion, scripts/install-deps.sh)")
else:
    harness = r'''
. /usr/share/bash-completion/bash_completion
. "$1"
comp() {
        local f=$1 line=$2 w
        COMP_LINE=$line; COMP_POINT=${#line}; COMP_WORDS=()
        for w in $line; do COMP_WORDS+=("$w"); done
        [[ $line == *" " ]] && COMP_WORDS+=("")
        COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMPREPLY=()
        $f
        printf '%s\n' "${COMPREPLY[@]}"
}
shift
comp "$@"
'''

    def complete(file, func, line):
        r = run(["bash", "-c", harness, "bash", os.path.join(source_root, "data", "bash-completion", file),
                 func, line])
        if r.returncode != 0:
            fail(f"completion {file} '{line}' exited {r.returncode}: {r.stderr.strip()}")
        return {w for w in r.stdout.split()}

    if "vssadmin" in help_text:
        hc = vssadmin_commands(help_text["vssadmin"])
        firsts = {c.split()[0] for c in hc}
        compare("vssadmin completion (first word)", complete("vssadmin", "_vssadmin", "vssadmin "), firsts,
                "the completion", "--help")
        for c, opts in sorted(hc.items()):
            if len(c.split()) == 2:
                got = complete("vssadmin", "_vssadmin", f"vssadmin {c.split()[0]} ")
                if c.split()[1] not in got:
                    fail(f"vssadmin completion does not offer '{c}'")
            got = {norm(w.rstrip("=")) for w in complete("vssadmin", "_vssadmin", f"vssadmin {c} --")}
            compare(f"vssadmin completion of '{c}'", got - {"socket", "help"}, opts, "the completion", "--help")
    if "vshadow" in help_text:
        got = {w.rstrip("=") for w in complete("vshadow", "_vshadow", "vshadow -")}
        compare("vshadow completion", got, help_options(help_text["vshadow"]), "the completion", "--help")

# ---- vssd.conf(5) against data/config/vssd.conf and vssd itself ----
page = open(os.path.join(source_root, "man", "vssd.conf.5.scd"), encoding="utf-8").read()
page_keys, sec = set(), None
for line in section(page, "KEYS"):
    m = re.match(r"## \[(\w+)\]", line)
    if m:
        sec = m.group(1)
    m = re.match(r"\*(\w+)\*=", line)
    if m and sec:
        page_keys.add((sec, m.group(1)))
example_keys, example_values, sec = set(), {}, None
for line in open(os.path.join(source_root, "data", "config", "vssd.conf"), encoding="utf-8"):
    # A section shipped commented out (#[cluster]) is documented all the same.
    m = re.match(r"#?\[(\w+)\]", line)
    if m:
        sec = m.group(1)
    m = re.match(r"#?(\w+)=(.*)", line.strip())
    if m and sec:
        example_keys.add((sec, m.group(1)))
        example_values[(sec, m.group(1))] = m.group(2).strip()
compare("vssd.conf keys", page_keys, example_keys, "vssd.conf(5)", "data/config/vssd.conf")
if "vssd" in executables:
    vssd = executables["vssd"]["filename"][0]
    with tempfile.TemporaryDirectory(prefix="openvss-docs-") as d:
        def accepted(sec, key, value):
            conf = os.path.join(d, "vssd.conf")
            with open(conf, "w") as f:
                f.write(f"[{sec}]\n{key}={value}\n")
                # [cluster] needs its endpoints to be valid at all.
                if sec == "cluster" and key != "endpoints":
                    f.write("endpoints=http://127.0.0.1:1\n")
            # A state directory that cannot exist stops vssd right after the configuration.
            r = run([vssd, "--config", conf, "--state-dir", "/dev/null/state", "--socket", os.path.join(d, "s")])
            if "bad configuration" in r.stderr:
                return False
            if "cannot create state directory" not in r.stderr:
                fail(f"vssd with [{sec}] {key}: unexpected result {r.returncode}: {r.stderr.strip()}")
            return True
        for sec, key in sorted(page_keys):
            value = example_values.get((sec, key), "1")
            # A group must exist (vssd resolves it at start); the package's groups need not exist
            # here, so probe the key with "root", which every system has.
            if key.endswith("_group"):
                value = "root"
            if not accepted(sec, key, value):
                fail(f"vssd.conf(5) documents [{sec}] {key}, which vssd refuses")
        if accepted("service", "no_such_key_documented", "1"):
            fail("vssd accepted an unknown key: the probe above proves nothing")
print(f"ok: vssd.conf: {len(page_keys)} keys")

# ---- libvss(3) against the exported symbols ----
lib = next((t["filename"][0] for t in targets if t["type"] == "shared library" and t["name"] == "vss"), None)
if not lib:
    fail("libvss is not built")
else:
    r = run(["nm", "-D", "--defined-only", lib])
    exported = {l.split()[-1].split("@")[0] for l in r.stdout.splitlines() if l.strip()}
    exported = {s for s in exported if s.lower().startswith("vss_")}
    page = open(os.path.join(source_root, "man", "libvss.3.scd"), encoding="utf-8").read()
    named = set(re.findall(r"\*(vss_[a-z0-9_]+)\*\(\)", "\n".join(section(page, "FUNCTIONS"))))
    named |= set(re.findall(r"\*(VSS_ID_NULL)\*", page))
    compare("libvss", named, exported, "libvss(3) FUNCTIONS", "libvss.so's exports")
    print(f"ok: libvss: {len(exported)} exported symbols")

# ---- every generated page renders without warnings ----
pages = sorted(glob.glob(os.path.join(build_root, "man", "*.[1-8]")))
if not pages:
    fail("no generated man pages in the build (is scdoc installed?)")
for p in pages:
    r = run(["man", "--warnings", "-l", p], env=dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8",
                                                    MAN_KEEP_FORMATTING="0"))
    if r.returncode != 0 or r.stderr.strip():
        fail(f"man -l {os.path.basename(p)}: status {r.returncode}: {r.stderr.strip()}")
print(f"ok: {len(pages)} pages render")

# ---- the packaged writers.d sample is a valid vsswriter configuration ----
if "vsswriter" in executables:
    sample = os.path.join(source_root, "data", "config", "writers.d", "example.conf.sample")
    with tempfile.TemporaryDirectory(prefix="openvss-docs-") as d:
        r = run([executables["vsswriter"]["filename"][0], "--config", sample, "--socket", os.path.join(d, "none")])
        # Parsed: it gets as far as vssd (not there: 1); a bad file is 2.
        if r.returncode != 1 or "VSS_E_WRITER_INFRASTRUCTURE" not in r.stdout + r.stderr:
            fail(f"vsswriter --config {sample}: status {r.returncode}: {r.stderr.strip()}")

if failures:
    print(f"{len(failures)} problem(s)")
    sys.exit(1)
print("docs: all checks passed")
