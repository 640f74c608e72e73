#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The tests' client for the JSON-lines sockets of vssd (vssd.sock) and vss-volsrv
(control.sock): one request per line, {"id", "method", "params"}; a reply carries the
request's id and "result" or "error"; lines without an id (notifications) are skipped.

  json-ctl.py [--timeout S] [--get PATH] SOCKET METHOD [JSON-PARAMS]...

Every JSON-PARAMS is one request, all written at once on one connection (so that the server
reads them back to back); none means one request with {}.  For each reply, in order, prints
its error or its result as one line of JSON, or with --get PATH the values PATH selects from
the result: dotted keys, "[]" walks a list ("snapshots[].shadow_id"), one value a line,
strings as they are.  --timeout S bounds the connect and every read (default: none).

Exit status: 0 all replies are results, 1 one is an error, 2 no reply (cannot connect,
connection closed, timeout, not JSON).
"""

import argparse
import json
import socket
import sys


def select(value, path):
    """The values PATH picks from VALUE (see --get)."""
    values = [value]
    for part in filter(None, path.split(".")):
        walk = part.endswith("[]")
        key = part[:-2] if walk else part
        picked = []
        for v in values:
            if key:
                v = v[key]
            picked.extend(v if walk else [v])
        values = picked
    return values


def show(value):
    return value if isinstance(value, str) else json.dumps(value)


def main():
    ap = argparse.ArgumentParser(description="JSON-lines socket client of the tests")
    ap.add_argument("--timeout", type=float, default=None)
    ap.add_argument("--get", metavar="PATH")
    ap.add_argument("socket")
    ap.add_argument("method")
    ap.add_argument("params", nargs="*")
    a = ap.parse_args()

    params = [json.loads(p) for p in a.params] or [{}]
    replies = {}
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(a.timeout)
        s.connect(a.socket)
        f = s.makefile("rwb")
        f.write(b"".join((json.dumps({"id": i + 1, "method": a.method, "params": p}) + "\n").encode()
                         for i, p in enumerate(params)))
        f.flush()
        while len(replies) < len(params):
            line = f.readline()
            if not line:
                print("json-ctl: %s: connection closed" % a.socket, file=sys.stderr)
                return 2
            m = json.loads(line)
            if m.get("id") is not None:
                replies[m["id"]] = m
    except (OSError, ValueError) as e:
        print("json-ctl: %s: %s" % (a.socket, e), file=sys.stderr)
        return 2

    bad = False
    for i in range(1, len(params) + 1):
        m = replies[i]
        if "error" in m:
            bad = True
            print(json.dumps(m["error"]))
        elif a.get is not None:
            for v in select(m.get("result"), a.get):
                print(show(v))
        else:
            print(json.dumps(m.get("result")))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
