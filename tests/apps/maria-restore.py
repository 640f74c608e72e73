#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The restore events for one writer's "server" component, over vssd's real socket.

    maria-restore.py SOCKET WRITER_ID METADATA_FILE|- CMD

Used by the MariaDB tests while vshadow has no -r (h-libvss's vshadow brings it):
Backup.PreRestore, CMD with /bin/sh -c (skipped when PreRestore failed), Backup.PostRestore
with file restore status "all" or "failed" from CMD's exit status, Backup.End.  Prints each
writer that failed as vshadow does ("writer 'NAME' is [13] Failed: LAST ERROR" and its
message) and exits 1 then; else CMD's status.
"""
import json
import socket
import subprocess
import sys


def main():
    sock_path, writer_id, md_file, cmd = sys.argv[1:5]
    metadata = None if md_file == "-" else open(md_file).read()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock_path)
    f = s.makefile("rwb")
    next_id = [0]

    def call(method, params):
        next_id[0] += 1
        f.write((json.dumps({"id": next_id[0], "method": method, "params": params}) + "\n").encode())
        f.flush()
        while True:
            line = f.readline()
            if not line:
                sys.exit("vssd closed the connection during " + method)
            msg = json.loads(line)
            if msg.get("id") == next_id[0] and "method" not in msg:
                return msg

    def failed(reply, event):
        if "error" in reply:
            e = reply["error"]
            print("Error: %s %s: %s" % (e.get("hresult"), e.get("name"), e.get("detail") or e.get("message")))
            return True
        bad = False
        for w in reply["result"].get("writers", []):
            if w.get("involved") and w.get("failure") not in ("0x00000000", None):
                print("writer '%s' is [%d] %s: %s" % (w["name"], w["state"], w["state_label"], w["last_error"]))
                print("   Message: %s" % w.get("message"))
                bad = True
        if not bad:
            print("%s: done" % event)
        return bad

    comp = {"writer_id": writer_id, "logical_path": "", "name": "server", "backup_metadata": metadata}
    if failed(call("Backup.PreRestore", {"components": [comp]}), "PreRestore"):
        call("Backup.End", {})
        return 1
    rc = subprocess.call(["/bin/sh", "-c", cmd])
    comp["file_restore_status"] = "all" if rc == 0 else "failed"
    print("Command exited with status %d: file restore status %s" % (rc, comp["file_restore_status"]))
    bad = failed(call("Backup.PostRestore", {"components": [comp]}), "PostRestore")
    call("Backup.End", {})
    return rc if rc else (1 if bad else 0)


if __name__ == "__main__":
    sys.exit(main())
