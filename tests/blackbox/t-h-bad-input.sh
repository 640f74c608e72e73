#!/bin/bash
# (h) Hostile peers on the real socket: garbage, a 2 MiB line, invalid JSON, JSON
# arrays, unknown methods, wrong field types, bad GUIDs, truncated messages followed
# by close, 16 bad lines in a row, and half-open connections.  Each gets an error
# reply naming an HRESULT (or a disconnect where the protocol says so), and the
# daemon keeps serving `vssadmin list writers` and its writers.
source "$(dirname "$0")/lib.sh"
bb_init

bb_volume VOL data
bb_start_vssd
bb_start_writer Survivor --volume "$VOL"

bb_run python3 - "$T/vssd.sock" "$VOL" <<'PY'
import json, socket, sys, time

sock_path, vol = sys.argv[1], sys.argv[2]
failures = []

def conn():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(sock_path)
    return s

class Peer:
    def __init__(self):
        self.s = conn()
        self.buf = b""
    def send(self, data):
        self.s.sendall(data)
    def reply(self):
        """Next reply line as a dict, or None when the daemon closed the connection."""
        while b"\n" not in self.buf:
            try:
                d = self.s.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                return None
            if not d:
                return None
            self.buf += d
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)
    def close(self):
        self.s.close()

def check(what, cond, detail=""):
    print(("ok   " if cond else "FAIL ") + what + ("" if cond else ": " + detail))
    if not cond:
        failures.append(what)

def expect_error(what, peer, hresult, name, id_=None, check_id=True):
    r = peer.reply()
    if r is None:
        check(what, False, "connection closed, expected an error reply")
        return None
    e = r.get("error")
    ok = isinstance(e, dict) and e.get("hresult") == hresult and e.get("name") == name
    if check_id:
        ok = ok and r.get("id") == id_
    check(what, ok, f"expected error {hresult} {name} id {id_!r}, got {json.dumps(r)}")
    if ok:
        check(what + " (message present)", isinstance(e.get("message"), str) and e["message"] != "", json.dumps(r))
    return r

INVAL = ("0x80070057", "E_INVALIDARG")

# 1. garbage, invalid JSON, arrays, scalars: error with id null, connection stays open.
p = Peer()
for what, line in [("garbage", b"\x00\x01garbage\xff\xfe"), ("invalid JSON", b'{"id":1,"method":'),
                   ("JSON array", b'[{"id":1,"method":"Hello"}]'), ("JSON number", b"42"),
                   ("JSON string", b'"Writers.List"'), ("empty object", b"{}")]:
    p.send(line + b"\n")
    expect_error(what, p, *INVAL, id_=None)
p.send(b'{"id":77,"method":"Writers.List"}\n')
r = p.reply()
check("connection still usable after bad lines", r is not None and r.get("id") == 77 and "result" in r, repr(r))
p.close()

# 2. unknown method -> VSS_E_NOT_SUPPORTED with the request's id.
p = Peer()
p.send(b'{"id":5,"method":"No.Such.Method","params":{}}\n')
expect_error("unknown method", p, "0x8004232F", "VSS_E_NOT_SUPPORTED", 5)
p.send(b'{"id":6,"method":"Writers.List","params":[]}\n')
expect_error("params as an array", p, *INVAL, check_id=False)
p.send(b'{"id":"seven","method":"Writers.List"}\n')
expect_error("id as a string", p, *INVAL, id_=None)
p.send(b'{"id":8,"method":"Hello","params":{"version":99,"client":"test"}}\n')
expect_error("Hello with a newer protocol version", p, "0x8004232F", "VSS_E_NOT_SUPPORTED", 8)
p.close()

# 3. wrong field types and bad GUIDs -> E_INVALIDARG naming the field.
cases = [
    ("Shadows.Query volume as a number", {"method": "Shadows.Query", "params": {"volume": 5}}, "volume"),
    ("Shadows.Query bad shadow_id", {"method": "Shadows.Query", "params": {"shadow_id": "{nope}"}}, "shadow_id"),
    ("Shadows.Query bad set_id", {"method": "Shadows.Query", "params": {"set_id": "3f5b2c1e-0a1b-4c2d-8e3f-12345678"}}, "set_id"),
    ("Shadows.Delete bad shadow_id", {"method": "Shadows.Delete", "params": {"shadow_id": "xyz"}}, "shadow_id"),
    ("Shadows.Delete all as a string", {"method": "Shadows.Delete", "params": {"all": "yes"}}, "all"),
    ("Events.List limit as a string", {"method": "Events.List", "params": {"limit": "ten"}}, "limit"),
    ("Writer.Register name as a number", {"method": "Writer.Register", "params": {"name": 7}}, "name"),
    ("Writer.Register volumes as a string", {"method": "Writer.Register", "params": {"name": "x", "volumes": "/"}}, "volumes"),
    ("Writer.Register bad writer_id", {"method": "Writer.Register", "params": {"name": "x", "writer_id": "{zzzz}"}}, "writer_id"),
    ("Writer.Register freeze timeout 0", {"method": "Writer.Register", "params": {"name": "x", "freeze_timeout_ms": 0}}, "freeze_timeout_ms"),
    ("Backup.SetBackupState select_components as a string", {"method": "Backup.SetBackupState", "params": {"select_components": "no"}}, "select_components"),
]
for i, (what, msg, field) in enumerate(cases):
    p = Peer()
    msg = dict(msg, id=100 + i)
    p.send(json.dumps(msg).encode() + b"\n")
    r = expect_error(what, p, *INVAL, id_=100 + i)
    if r is not None and "error" in r:
        check(what + " (detail names the field)", field in (r["error"].get("detail") or ""), json.dumps(r))
    p.close()

# 4. a path that does not exist -> VSS_E_OBJECT_NOT_FOUND
p = Peer()
p.send(json.dumps({"id": 1, "method": "Writer.Register",
                   "params": {"name": "Ghost", "volumes": [vol + "/does/not/exist"]}}).encode() + b"\n")
expect_error("Writer.Register with a missing path", p, "0x80042308", "VSS_E_OBJECT_NOT_FOUND", 1)
p.close()

# 5. a 2 MiB line: error reply (E_INVALIDARG) and/or disconnect; never a crash.
p = Peer()
try:
    p.send(b'{"id":1,"method":"Writers.List","params":{"pad":"' + b"x" * (2 * 1024 * 1024) + b'"}}\n')
except (BrokenPipeError, ConnectionResetError):
    pass
r = p.reply()
if r is not None:
    e = r.get("error") or {}
    check("2 MiB line gets E_INVALIDARG", (e.get("hresult"), e.get("name")) == INVAL, json.dumps(r)[:300])
    r2 = p.reply()
    check("2 MiB line: disconnected after the error reply", r2 is None, json.dumps(r2)[:300] if r2 else "")
else:
    check("2 MiB line: disconnected", True)
p.close()

# 6. 16 consecutive bad lines -> disconnect.
p = Peer()
try:
    for i in range(16):
        p.send(b"bad line %d\n" % i)
except (BrokenPipeError, ConnectionResetError):
    pass
n = 0
while True:
    r = p.reply()
    if r is None:
        break
    n += 1
    if n > 16:
        break
check("16 bad lines: each answered, then disconnected", n == 16, f"{n} replies before the close")
p.close()

# 7. truncated messages followed by close.
for frag in [b'{"id":1,"method":"Writers.Li', b'{"id":1,"method":"Backup.StartSnapshotSet","params":{', b"\xff"]:
    p = Peer()
    p.send(frag)
    p.s.shutdown(socket.SHUT_WR)
    r = p.reply()
    check("truncated message then close: no reply or an error", r is None or "error" in r, repr(r))
    p.close()
p = Peer(); p.send(b'{"id":1,"method":"Writers.List"'); p.close()  # abrupt close, no shutdown

# 8. half-open connections: one silent, one with half a line; both stay open meanwhile.
silent = Peer()
half = Peer()
half.send(b'{"id":1,"method":"Writers.Li')
time.sleep(0.3)
p = Peer()
p.send(b'{"id":2,"method":"Writers.List"}\n')
r = p.reply()
check("daemon serves others while half-open peers wait", r is not None and "result" in r and
      any(w.get("name") == "Survivor" for w in r["result"].get("writers", [])), repr(r)[:300])
p.close()
half.send(b'st"}\n')
r = half.reply()
check("a line completed later is answered", r is not None and r.get("id") == 1 and "result" in r, repr(r)[:200])
half.close()
# Keep the silent one open: the shell checks below run while it is still connected.
print("HALFOPEN-HOLD", flush=True)

sys.exit(1 if failures else 0)
PY
echo "$OUT"
bb_assert_rc 0 "hostile peers (see the FAIL lines above)"

bb_vssd_alive || bb_fail "vssd died"
bb_run "$VSSADMIN" list writers
bb_assert_rc 0 "vssadmin list writers after the hostile peers"
bb_assert_writer Survivor "[1] Stable" "No error"
bb_assert_eq "" "$("$VSSADMIN" list writers | grep -F "Writer name: 'Ghost'" || true)" "a writer that failed to register is not listed"

# A half-open connection that stays open while real work goes on.
python3 -c 'import socket,sys,time; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.send(b"{\"id\":1,"); open(sys.argv[2], "w").close(); time.sleep(30)' "$T/vssd.sock" "$T/halfopen-held" &
BB_PIDS+=($!)
bb_wait_until 5 "the half-open peer connected" test -e "$T/halfopen-held"
bb_run "$VSHADOW" "$VOL"
bb_assert_rc 0 "vshadow while a half-open connection is held"
bb_assert_writer Survivor "[1] Stable" "No error"
bb_vssd_alive || bb_fail "vssd died"
echo "done"
