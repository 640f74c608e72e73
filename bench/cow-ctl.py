#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Control-socket client for bench/cow.sh: one JSON line per request over
# vss-volsrv's RUNDIR/control.sock (docs/protocol.md framing).  Timing is taken
# here, on one persistent connection, so a commit latency excludes interpreter
# start-up and connect(): it is the round trip of Snapshot.Create alone.
#
#   cow-ctl.py SOCK METHOD [JSON-PARAMS]      print the result object as JSON
#   cow-ctl.py SOCK create N                  create N snapshots, print ms each
#   cow-ctl.py SOCK delete-all                delete every snapshot
#   cow-ctl.py commit N SOCK...               N rounds, one create per socket per
#                                             round (interleaved), "SOCK ms" lines
#
# An error reply exits 1 with "hresult name: message" on stderr.

import json
import socket
import sys
import time
import uuid


class Ctl:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.f = self.sock.makefile("rwb")
        self.next_id = 1

    def call(self, method, params=None):
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        self.next_id += 1
        self.f.write((json.dumps(msg) + "\n").encode())
        self.f.flush()
        while True:
            line = self.f.readline()
            if not line:
                sys.exit("cow-ctl: %s: connection closed by vss-volsrv" % method)
            reply = json.loads(line)
            if reply.get("id") is None:
                continue        # Volume.Event notification
            break
        if "error" in reply:
            e = reply["error"]
            sys.exit("cow-ctl: %s failed: %s %s: %s" % (method, e.get("hresult"), e.get("name"),
                                                       e.get("message", e.get("detail", ""))))
        return reply.get("result", {})

    def create(self):
        guid = "{%s}" % uuid.uuid4()
        t = time.perf_counter()
        self.call("Snapshot.Create", {"shadow_id": guid})
        return (time.perf_counter() - t) * 1000.0


def main(argv):
    if len(argv) >= 3 and argv[0] == "commit":
        n = int(argv[1])
        ctls = [(p, Ctl(p)) for p in argv[2:]]
        for _ in range(n):
            for p, c in ctls:
                print("%s %.4f" % (p, c.create()), flush=True)
        return 0
    if len(argv) < 2:
        sys.exit(__doc__ if __doc__ else "usage: cow-ctl.py SOCK METHOD [JSON]")
    c = Ctl(argv[0])
    if argv[1] == "create":
        for _ in range(int(argv[2])):
            print("%.4f" % c.create())
        return 0
    if argv[1] == "delete-all":
        for s in c.call("Snapshot.List").get("snapshots", []):
            c.call("Snapshot.Delete", {"shadow_id": s["shadow_id"]})
        return 0
    params = json.loads(argv[2]) if len(argv) > 2 else {}
    print(json.dumps(c.call(argv[1], params)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
