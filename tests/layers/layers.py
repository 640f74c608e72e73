#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The layers of the tree (docs/architecture.md) and their enforcement.

    basic  <-  libvss, cow, cluster, providers  <-  vssd, volsrv, tools, writers

A file sees its own directory, its own layer and lower layers, never a layer above or beside it.
The table below is the one place that says so; two things are made from it:

  layers.py roots SRCROOT DIR  the build's include roots: DIR/<layer>/ holds symlinks to the
                             directories and headers that layer may include, nothing else, and
                             meson.build compiles each directory of src/ against its root only
                             (so `#include "vssd/vssd.h"` in a tool does not compile);
  layers.py check SRCROOT    checks every #include of src/, include/ and examples/ header by
                             header (what a directory-wide root cannot say: the tools never see
                             basic/wire.h, a *-internal.h stays in its directory) and fails on a
                             file in a directory no layer claims;
  layers.py binaries NM PROGRAM... --holding PROGRAM...
                             the programs on libvss hold none of the wire format's code (they
                             talk to vssd through libvss.so, whose version script hides it);
                             the ones after --holding must be reported (the check can fail);
  layers.py headers SRCROOT ROOTS CC PKG...
                             every header compiles alone through its layer's root (each module
                             declares itself in a header that needs nothing included before it);
                             PKG are the pkg-config names of the libraries the headers use;
  layers.py self-test SRCROOT ROOTS
                             proves both can fail: synthetic bad includes must be reported, the
                             compiler must refuse a crossing include through ROOTS (and
                             basic/wire.h under the programs on libvss's define, which the build's
                             compile_commands.json must show for each of their files).

tests/ and bench/ are no layer: tests reach into the modules they test.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

VSS = ['vss/vss.h']
VSS_PUBLIC = ['vss/vss.h', 'vss/client.h', 'vss/writer.h', 'vss/requester.h']
PROVIDER_API = ['vss/vss.h', 'vss/provider.h']

# The wire format (docs/protocol.md) is between vssd and libvss (and volsrv's control socket,
# which reuses its framing).  Programs on libvss never see it: what they need of it is in
# basic/json-util.h and basic/names.h.
NO_WIRE = {'basic/wire.h': 'programs on libvss talk to vssd through libvss and never see the wire format'}


class Layer:
        def __init__(self, name, members, sees, never=None, roots=(), allow=None, names=None, private=None):
                # What never names, the build refuses through a define its targets get (meson.build's
                # on_libvss: basic/wire.h is an #error under OPENVSS_ON_LIBVSS).
                self.defines = ['OPENVSS_ON_LIBVSS'] if never is NO_WIRE else []
                self.name = name
                self.members = members          # directories (from the top) whose files are in the layer
                self.sees = sees                # include names: 'dir/' or 'dir/file.h'
                self.never = never or {}        # include name -> why, though a 'dir/' of sees holds it
                self.roots = roots              # directories the layer's own targets put on the path
                self.allow = allow or {}        # include name -> why: exceptions with an end date
                self.names = names or {}        # include name -> directory, where it is not under src/
                self.private = private or {}    # a module's own header -> the files of the module


LAYERS = [
        Layer('public', ['include/vss'], ['vss/']),
        Layer('basic', ['src/basic'], ['basic/'] + VSS),
        Layer('libvss', ['src/libvss'], ['basic/', 'libvss/'] + VSS_PUBLIC),
        Layer('cow', ['src/cow'], ['basic/', 'cow/'] + VSS),
        Layer('cluster', ['src/cluster'], ['basic/', 'cluster/'] + VSS),
        Layer('provider-btrfs', ['src/providers/btrfs'], ['basic/', 'providers/btrfs/'] + PROVIDER_API),
        Layer('provider-cow', ['src/providers/cow'], ['basic/', 'providers/cow/'] + PROVIDER_API),
        Layer('vssd', ['src/vssd'], ['basic/', 'cluster/', 'vssd/'] + PROVIDER_API,
              # Until cow-volume management moves behind the provider interface (issue 10 item 3),
              # vssd's cowvol*.c and storage.c call the cow provider's volume server client.
              # Nothing else of any provider: vssd reaches providers through vss/provider.h.
              allow={'providers/cow/volsrv-client.h': 'issue 10 item 3'},
              # Each module declares itself in its own header (conn.h, set.h, ...); the cluster
              # module's internals (its thread's state) are its own.
              private={'src/vssd/vcluster.h': ['src/vssd/cluster.c', 'src/vssd/cluster-set.c',
                                                 'src/vssd/cluster-set-thread.c']}),
        Layer('volsrv', ['src/volsrv'], ['basic/', 'cow/', 'volsrv/'] + VSS),
        Layer('tools-common', ['src/tools/common'], ['basic/', 'tools/common/'] + VSS_PUBLIC, never=NO_WIRE),
        Layer('vshadow', ['src/tools/vshadow'], ['basic/', 'tools/common/', 'tools/vshadow/'] + VSS_PUBLIC,
              never=NO_WIRE),
        Layer('vssadmin', ['src/tools/vssadmin'], ['basic/', 'tools/common/', 'tools/vssadmin/'] + VSS_PUBLIC,
              never=NO_WIRE),
        Layer('vsswriter', ['src/tools/vsswriter'], ['basic/', 'tools/common/', 'tools/vsswriter/'] + VSS_PUBLIC,
              never=NO_WIRE),
        # The application writers' targets are defined in src/writers, which meson puts on their
        # path: they name their shared code "common/...".
        Layer('writers-common', ['src/writers/common'], ['basic/', 'common/'] + VSS_PUBLIC, never=NO_WIRE,
              roots=['src/writers'], names={'common/': 'src/writers/common'}),
        Layer('writer-mariadb', ['src/writers/mariadb'], ['basic/', 'common/', 'mariadb/'] + VSS_PUBLIC,
              never=NO_WIRE, roots=['src/writers'],
              names={'common/': 'src/writers/common', 'mariadb/': 'src/writers/mariadb'}),
        Layer('writer-postgresql', ['src/writers/postgresql'], ['basic/', 'common/'] + VSS_PUBLIC,
              never=NO_WIRE, roots=['src/writers'], names={'common/': 'src/writers/common'}),
        Layer('writer-sqlite', ['src/writers/sqlite'], ['basic/', 'common/'] + VSS_PUBLIC,
              never=NO_WIRE, roots=['src/writers'], names={'common/': 'src/writers/common'}),
        # The programs of docs/libvss.md: libvss's public headers and nothing else.  libvss_dep
        # hands this root to whoever links libvss.
        Layer('apps', ['examples'], VSS_PUBLIC),
]

CHECKED = ['src', 'include', 'examples']
INCLUDE_RE = re.compile(r'^\s*#\s*include\s*([<"])([^">]+)[">]')


def layer_of(path):
        """The layer whose member directory is the longest prefix of path (from the top)."""
        best = None
        for layer in LAYERS:
                for m in layer.members:
                        if path.startswith(m + '/') and (best is None or len(m) > len(best[1])):
                                best = (layer, m)
        return best[0] if best else None


def source_of(layer, name, exists):
        """Where include name 'dir/' or 'dir/x.h' lives (from the top), or None."""
        for prefix, target in layer.names.items():
                if name.startswith(prefix):
                        return target + '/' + name[len(prefix):] if name != prefix else target
        for top in ('include', 'src'):
                cand = top + '/' + name.rstrip('/')
                if exists(cand):
                        return cand
        return None


def resolve(layer, path, quote, name, exists):
        """The file (from the top) an #include names, as the compiler finds it, or None when
        it is not one of the tree's (a system header)."""
        if quote:
                own = os.path.normpath(os.path.join(os.path.dirname(path), name))
                if exists(own):
                        return own
        for root in (layer.roots if layer else ()):
                cand = os.path.normpath(os.path.join(root, name))
                if exists(cand):
                        return cand
        if layer:
                for prefix, target in layer.names.items():
                        if name.startswith(prefix) and exists(target + '/' + name[len(prefix):]):
                                return target + '/' + name[len(prefix):]
        for top in ('include', 'src'):
                cand = os.path.normpath(os.path.join(top, name))
                if exists(cand):
                        return cand
        return None


def visible(layer, header, exists, path=None):
        """(True, None) when layer may include header (a path from the top) in file path, else
        (False, why)."""
        for lay in LAYERS:
                if header in lay.private and path not in lay.private[header]:
                        return False, 'the internals of %s, only for %s' % (header, ', '.join(lay.private[header]))
        for name, why in layer.never.items():
                if source_of(layer, name, exists) == header:
                        return False, why
        if header.endswith('-internal.h') and not any(os.path.dirname(header) == m for m in layer.members):
                return False, 'a *-internal.h is private to its directory'
        for name in list(layer.sees) + list(layer.allow):
                src = source_of(layer, name, exists)
                if src is None:
                        continue
                if name.endswith('/') and header.startswith(src + '/'):
                        return True, None
                if not name.endswith('/') and header == src:
                        return True, None
        if any(os.path.dirname(header) == m for m in layer.members):
                return True, None
        return False, "layer '%s' sees only %s" % (layer.name, ', '.join(layer.sees))


def check_file(path, text, exists, used_allow):
        """Problems of one file (path from the top): a list of strings."""
        problems = []
        layer = layer_of(path)
        if layer is None:
                return ['%s: in no layer: give its directory a row in tests/layers/layers.py '
                        'and docs/architecture.md' % path]
        for lineno, line in enumerate(text.splitlines(), 1):
                m = INCLUDE_RE.match(line)
                if not m:
                        continue
                quote, name = m.group(1) == '"', m.group(2)
                where = '%s:%d: #include %s' % (path, lineno, name)
                if '..' in name.split('/'):
                        problems.append(where + ': names a path with "..": include by the name its layer sees')
                        continue
                header = resolve(layer, path, quote, name, exists)
                if header is None:
                        if quote:
                                problems.append(where + ': no such header in the tree')
                        continue
                ok, why = visible(layer, header, exists, path)
                if not ok:
                        owner = layer_of(header)
                        problems.append('%s (layer %s): %s' % (where, owner.name if owner else '?', why))
                        continue
                for name2 in layer.allow:
                        if source_of(layer, name2, exists) == header:
                                used_allow.add((layer.name, name2))
        return problems


def tree_files(top):
        for d in CHECKED:
                for dirpath, dirnames, filenames in os.walk(os.path.join(top, d)):
                        dirnames.sort()
                        for f in sorted(filenames):
                                if f.endswith(('.c', '.h')):
                                        yield os.path.relpath(os.path.join(dirpath, f), top)


def check_tree(top, extra=()):
        """All problems of the tree, plus those of the (path, text) pairs in extra."""
        exists = lambda p: os.path.exists(os.path.join(top, p))
        used_allow = set()
        problems = []
        for path in tree_files(top):
                with open(os.path.join(top, path), encoding='utf-8', errors='replace') as f:
                        problems += check_file(path, f.read(), exists, used_allow)
        for path, text in extra:
                problems += check_file(path, text, exists, used_allow)
        # A layer's directories must exist, and an exception nobody needs any more must go.
        for layer in LAYERS:
                for m in layer.members:
                        if not exists(m):
                                problems.append('%s: layer %s names a directory that does not exist' % (m, layer.name))
                for name in layer.allow:
                        if (layer.name, name) not in used_allow:
                                problems.append("allow-list: layer %s no longer includes %s: remove the entry"
                                                % (layer.name, name))
        return problems


def make_roots(top, out):
        """out/<layer>/: symlinks to what the layer sees (the never and private rules are the
        check's: a directory-wide root cannot leave one header out)."""
        exists = lambda p: os.path.exists(os.path.join(top, p))
        tmp = out + '.new'
        shutil.rmtree(tmp, ignore_errors=True)
        for layer in LAYERS:
                for name in list(layer.sees) + list(layer.allow):
                        src = source_of(layer, name, exists)
                        if src is None:
                                raise SystemExit('layers.py: layer %s sees %s, which is not in the tree' % (layer.name, name))
                        link = os.path.join(tmp, layer.name, name.rstrip('/'))
                        os.makedirs(os.path.dirname(link), exist_ok=True)
                        if not os.path.lexists(link):
                                os.symlink(os.path.join(top, src), link)
        shutil.rmtree(out, ignore_errors=True)
        os.rename(tmp, out)
        print(' '.join(layer.name for layer in LAYERS))


# Includes that must be reported: (file, text, what the report must mention).
BAD = [
        ('src/tools/vssadmin/bad.c', '#include "basic/wire.h"\n', 'never see the wire format'),
        ('src/tools/vshadow/bad.c', '#include "vssd/vssd.h"\n', "layer 'vshadow' sees only"),
        ('src/basic/bad.c', '#include "vssd/set.h"\n', "layer 'basic' sees only"),
        ('src/vssd/bad.c', '#include "volsrv/volsrv.h"\n', "layer 'vssd' sees only"),
        ('src/vssd/bad.c', '#include "cow/cow.h"\n', "layer 'vssd' sees only"),
        ('src/vssd/bad.c', '#include "vss/client.h"\n', "layer 'vssd' sees only"),
        ('src/volsrv/bad.c', '#include "cow/cow-internal.h"\n', 'private to its directory'),
        ('src/libvss/bad.c', '#  include <vss/provider.h>\n', "layer 'libvss' sees only"),
        ('src/tools/vshadow/bad.c', '#include "tools/vssadmin/vssadmin.h"\n', "layer 'vshadow' sees only"),
        ('src/writers/sqlite/bad.c', '#include "mariadb/maria.h"\n', "layer 'writer-sqlite' sees only"),
        ('src/cow/bad.c', '#include "../vssd/vssd.h"\n', 'names a path with ".."'),
        ('src/newdir/bad.c', '#include "basic/macro.h"\n', 'in no layer'),
        ('examples/bad.c', '#include "basic/macro.h"\n', "layer 'apps' sees only"),
        ('src/vssd/session.c', '#include "vssd/vcluster.h"\n', 'the internals of src/vssd/vcluster.h'),
]
GOOD = [
        ('src/vssd/good.c', '#include <stdio.h>\n#include "basic/macro.h"\n#include "cluster/cset.h"\n'
                            '#include "vss/provider.h"\n#include "vssd/vssd.h"\n'),
        ('src/tools/vssadmin/good.c', '#include "basic/json-util.h"\n#include "basic/names.h"\n'
                                      '#include "tools/common/tools-common.h"\n#include "vss/client.h"\n'),
        ('src/volsrv/good.c', '#include "cow/cow.h"\n#include "volsrv/volsrv.h"\n'),
        ('src/writers/mariadb/good.c', '#include "common/writer-app.h"\n#include "mariadb/maria.h"\n'),
        ('src/vssd/cluster-set.c', '#include "vssd/vcluster.h"\n#include "vssd/set.h"\n'),
]
# (layer, include) pairs the compiler must refuse through the layer's root, and accept.
REFUSED = [('vshadow', 'vssd/vssd.h'), ('vssd', 'volsrv/volsrv.h'), ('basic', 'cow/cow.h'),
           ('volsrv', 'providers/cow/cow-util.h'), ('vssd', 'providers/cow/cow-util.h'), ('apps', 'basic/macro.h'),
           ('vssd', 'providers/btrfs/btrfs.c'), ('vssadmin', 'basic/wire.h'), ('writer-sqlite', 'basic/wire.h')]
ACCEPTED = [('vssd', 'basic/macro.h'), ('vssd', 'providers/cow/volsrv-client.h'), ('volsrv', 'cow/cow.h'),
            ('apps', 'vss/requester.h'), ('vssd', 'basic/wire.h'), ('vssadmin', 'basic/names.h')]


def check_defines(top, build, entries=None):
        """Every file of a layer with defines is compiled with them in the build's src/ targets
        (entries: compile_commands.json's, read from build when None)."""
        path = os.path.join(build, 'compile_commands.json')
        if entries is None:
                try:
                        with open(path) as f:
                                entries = json.load(f)
                except (OSError, ValueError) as e:
                        return ['%s: %s' % (path, e)]
        problems, seen = [], 0
        for e in entries:
                # Only src/'s own targets: tests/fuzz compiles some of the tools' files as well.
                if not e.get('output', '').startswith('src/'):
                        continue
                rel = os.path.relpath(os.path.normpath(os.path.join(e['directory'], e['file'])), top)
                layer = layer_of(rel)
                if not layer or not layer.defines:
                        continue
                seen += 1
                args = e['arguments'] if 'arguments' in e else e['command'].split()
                for d in layer.defines:
                        if '-D' + d not in args:
                                problems.append('%s (%s): compiled without -D%s' % (rel, e['output'], d))
        if not seen:
                problems.append('%s: no compile command of a program on libvss' % path)
        return problems


def self_test(top, roots):
        failures = []
        exists = lambda p: os.path.exists(os.path.join(top, p))
        for path, text, expect in BAD:
                got = check_file(path, text, exists, set())
                if not any(expect in p for p in got):
                        failures.append('not reported: %s in %s (got %s)' % (text.strip(), path, got))
        for path, text in GOOD:
                got = check_file(path, text, exists, set())
                if got:
                        failures.append('reported though allowed: %s' % got)
        # The whole-tree check fails on one bad include, and on an exception nobody uses.
        if not any('never see the wire format' in p for p in check_tree(top, [BAD[0][:2]])):
                failures.append('check_tree passed with a tool including basic/wire.h')
        saved = LAYERS[[l.name for l in LAYERS].index('vssd')].allow
        try:
                saved['providers/cow/unused.h'] = 'self-test'
                if not any('remove the entry' in p for p in check_tree(top)):
                        failures.append('check_tree passed with an allow-list entry nobody uses')
        finally:
                del saved['providers/cow/unused.h']
        # The build's roots: the compiler refuses what the layer may not see.
        cc = os.environ.get('CC') or shutil.which('cc') or shutil.which('gcc')
        if not cc:
                failures.append('no C compiler to try the include roots with')
        with tempfile.TemporaryDirectory() as tmp:
                for (layer, name), want in [(p, False) for p in REFUSED] + [(p, True) for p in ACCEPTED]:
                        src = os.path.join(tmp, 't.c')
                        with open(src, 'w') as f:
                                f.write('#include "%s"\n' % name)
                        # -E: finding the headers is the point, not compiling them.
                        defines = ['-D' + d for l in LAYERS if l.name == layer for d in l.defines]
                        r = subprocess.run([cc, '-E', '-D_GNU_SOURCE', '-I' + os.path.join(roots, layer)] + defines + [src],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                        if (r.returncode == 0) != want:
                                failures.append('%s: #include "%s" %s through %s/%s: %s' % (
                                        cc, name, 'refused' if want else 'compiled', roots, layer, r.stderr.strip()[:300]))
        # The build compiles the programs on libvss with their define; a command without it is reported.
        build = os.path.dirname(os.path.abspath(roots))
        failures += check_defines(top, build)
        bad = [{'directory': build, 'file': os.path.join(top, 'src/tools/vssadmin/list.c'),
                'output': 'src/tools/vssadmin/vssadmin.p/list.c.o', 'command': 'cc -c list.c'}]
        if not any('compiled without -DOPENVSS_ON_LIBVSS' in p for p in check_defines(top, build, bad)):
                failures.append('a tool compiled without -DOPENVSS_ON_LIBVSS was not reported')
        return failures


# The code of the wire format (basic/wire.c): what a program on libvss must not contain.
WIRE_CODE = ['wire_parse', 'wire_msg_done', 'wire_buf_init', 'wire_buf_fill', 'wire_buf_next_line',
             'wire_request', 'wire_result', 'wire_error', 'wire_dump']


def check_binaries(nm, programs):
        problems = []
        for prog in programs:
                r = subprocess.run([nm, '--defined-only', prog], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                if r.returncode != 0:
                        problems.append('%s: %s failed: %s' % (prog, nm, r.stderr.strip()))
                        continue
                defined = {line.split()[-1] for line in r.stdout.splitlines() if line.split()}
                if not defined:
                        problems.append('%s: no symbols (stripped?): nothing to check' % prog)
                for sym in WIRE_CODE:
                        if sym in defined:
                                problems.append('%s: holds %s, the wire format\'s code' % (prog, sym))
        return problems


def compile_alone(cc, header, include_dirs, cflags, tmp):
        """The compiler's complaint when header does not compile on its own, else None."""
        src = os.path.join(tmp, 'alone.c')
        with open(src, 'w') as f:
                f.write('#include "%s"\n' % header)
        r = subprocess.run([cc, '-std=gnu11', '-Wall', '-Wextra', '-Werror', '-Wno-unused-parameter', '-Wshadow',
                            '-Wstrict-prototypes', '-D_GNU_SOURCE', '-DOPENVSS_VERSION="0"']
                           + ['-I' + d for d in include_dirs] + cflags + ['-fsyntax-only', src],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        return r.stderr.strip().splitlines()[:4] if r.returncode != 0 else None


def check_headers(top, roots, cc, pkgs):
        r = subprocess.run(['pkg-config', '--cflags'] + pkgs, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
                return ['pkg-config --cflags %s: %s' % (' '.join(pkgs), r.stderr.strip())], 0
        cflags = r.stdout.split() + ['-include', os.path.join(top, 'src/basic/banned.h')]
        problems, n = [], 0
        with tempfile.TemporaryDirectory() as tmp:
                # The check can fail: a header that uses a type it does not include.
                bad = os.path.join(tmp, 'bad.h')
                with open(bad, 'w') as f:
                        f.write('#pragma once\njson_t *bad(void);\n')
                if compile_alone(cc, bad, [], cflags, tmp) is None:
                        problems.append('%s: a header using json_t without <jansson.h> compiled alone' % cc)
                for path in tree_files(top):
                        if not path.endswith('.h') or path == 'src/basic/banned.h':
                                continue
                        layer = layer_of(path)
                        dirs = [os.path.join(roots, layer.name)] + [os.path.join(top, d) for d in layer.roots]
                        err = compile_alone(cc, os.path.join(top, path), dirs, cflags, tmp)
                        n += 1
                        if err:
                                problems.append('%s: does not compile alone through %s/%s: %s' % (
                                        path, roots, layer.name, ' | '.join(err)))
        return problems, n


def main(argv):
        if len(argv) == 4 and argv[1] == 'roots':
                make_roots(os.path.abspath(argv[2]), argv[3])
                return 0
        if len(argv) == 3 and argv[1] == 'check':
                problems = check_tree(argv[2])
                for p in problems:
                        print(p)
                n = sum(1 for _ in tree_files(argv[2]))
                print('layers: %d files checked, %d problem%s' % (n, len(problems), '' if len(problems) == 1 else 's'))
                return 1 if problems else 0
        if len(argv) >= 4 and argv[1] == 'binaries' and '--holding' in argv:
                cut = argv.index('--holding')
                programs, holding = argv[3:cut], argv[cut + 1:]
                problems = check_binaries(argv[2], programs)
                for prog in holding:
                        if not any(p.startswith(prog + ': holds ') for p in check_binaries(argv[2], [prog])):
                                problems.append('%s: holds the wire format\'s code, but the check did not say so' % prog)
                for p in problems:
                        print(p)
                print('layers: %d programs checked for the wire format\'s code (and %d that hold it), %d problem%s' % (
                        len(programs), len(holding), len(problems), '' if len(problems) == 1 else 's'))
                return 1 if problems else 0
        if len(argv) >= 5 and argv[1] == 'headers':
                problems, n = check_headers(os.path.abspath(argv[2]), argv[3], argv[4], argv[5:])
                for p in problems:
                        print(p)
                print('layers: %d headers compiled alone, %d problem%s' % (n, len(problems), '' if len(problems) == 1 else 's'))
                return 1 if problems else 0
        if len(argv) == 4 and argv[1] == 'self-test':
                failures = self_test(os.path.abspath(argv[2]), argv[3])
                for f in failures:
                        print('FAIL ' + f)
                print('layers self-test: %d bad includes, %d good files, %d compiler cases, the build\'s defines, %d failure%s' % (
                        len(BAD), len(GOOD), len(REFUSED) + len(ACCEPTED), len(failures), '' if len(failures) == 1 else 's'))
                return 1 if failures else 0
        print('usage: layers.py roots SRCROOT DIR | check SRCROOT | binaries NM PROGRAM... --holding PROGRAM... | headers SRCROOT ROOTS CC PKG... | self-test SRCROOT ROOTS', file=sys.stderr)
        return 2


if __name__ == '__main__':
        sys.exit(main(sys.argv))
