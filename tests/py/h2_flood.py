"""HTTP/2 attack shapes against a server on 127.0.0.1:PORT (h2c), for tests/http2.rs.

usage: h2_flood.py PORT ATTACK
Prints one line: what the server did to the attacking connection ("closed", "goaway",
"reset", "answered:<status>"), then checks that a fresh connection is still served
("served"). Exits non-zero if the fresh connection is not served.
"""
import socket, sys, time

import h2_common

import h2.config, h2.connection, h2.events, h2.settings
from hyperframe.frame import HeadersFrame, ContinuationFrame, PingFrame, SettingsFrame, RstStreamFrame

PORT = int(sys.argv[1])
ATTACK = sys.argv[2]
T = 20


def connect():
    return h2_common.connect(PORT, T)


def req_headers(path="/", extra=()):
    return [(":method", "GET"), (":path", path), (":scheme", "http"), (":authority", "x")] + list(extra)


def outcome(s, c, stream=None, limit=T):
    """Reads until the server closes, sends GOAWAY, resets or answers `stream`."""
    deadline = time.time() + limit
    s.settimeout(1)
    while time.time() < deadline:
        try:
            data = s.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return "closed"
        if not data:
            return "closed"
        try:
            events = c.receive_data(data)
        except Exception:
            return "closed"
        for e in events:
            if isinstance(e, h2.events.ConnectionTerminated):
                return "goaway"
            if isinstance(e, h2.events.StreamReset) and e.stream_id == stream:
                return "reset"
            if isinstance(e, h2.events.ResponseReceived) and e.stream_id == stream:
                return "answered:" + dict(e.headers)[":status"]
        try:
            s.sendall(c.data_to_send())
        except (ConnectionResetError, BrokenPipeError):
            return "closed"
    return "nothing"


def send_raw(s, frames):
    try:
        for f in frames:
            s.sendall(f)
        return True
    except (ConnectionResetError, BrokenPipeError, socket.timeout):
        return False


def served():
    s, c = connect()
    c.send_headers(1, req_headers("/fresh"), end_stream=True)
    s.sendall(c.data_to_send())
    r = outcome(s, c, 1)
    s.close()
    return r == "answered:200"


s, c = connect()
if ATTACK == "rapid_reset":
    # CVE-2023-44487: open streams and cancel them at once, thousands of times.
    sid = 1
    ok = True
    for i in range(5000):
        c.send_headers(sid, req_headers("/r"), end_stream=True)
        c.reset_stream(sid)
        sid += 2
        if i % 100 == 99:
            if not send_raw(s, [c.data_to_send()]):
                ok = False
                break
    print(outcome(s, c, None, 5) if ok else "closed")
elif ATTACK == "continuation":
    # CVE-2024-27316: a header block that never ends (CONTINUATION without END_HEADERS).
    s.sendall(c.data_to_send())
    first = HeadersFrame(1)
    first.data = c.encoder.encode(req_headers("/c"))
    first.flags.add("END_STREAM")
    frames = [first.serialize()]
    for i in range(4000):
        f = ContinuationFrame(1)
        f.data = c.encoder.encode([("x-flood-%d" % i, "v" * 4000)])
        frames.append(f.serialize())
    print("closed" if not send_raw(s, frames) else outcome(s, c, 1, 10))
elif ATTACK == "big_headers":
    # An oversized header list (HPACK bomb shape): one header far over max_header_list_size.
    c.send_headers(1, req_headers("/big", [("x-big", "a" * 200000)]), end_stream=True)
    sent = send_raw(s, [c.data_to_send()])
    print(outcome(s, c, 1, 10) if sent else "closed")
elif ATTACK == "ping_settings":
    # SETTINGS and PING floods, never reading the acks.
    frames = []
    for i in range(100000):
        frames.append(PingFrame(0, opaque_data=i.to_bytes(8, "big")).serialize())
        if i % 2 == 0:
            sf = SettingsFrame(0)
            sf.settings = {h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 100}
            frames.append(sf.serialize())
    s.settimeout(5)
    print("closed" if not send_raw(s, frames) else "survived")
elif ATTACK == "zero_window":
    # A reader that never opens its window: headers come, the body waits, nothing breaks.
    c.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
    c.send_headers(1, req_headers("/stall"), end_stream=True)
    s.sendall(c.data_to_send())
    r = outcome(s, c, 1, 10)
    got = 0
    s.settimeout(1)
    try:
        for e in c.receive_data(s.recv(65536)):
            if isinstance(e, h2.events.DataReceived):
                got += len(e.data)
    except socket.timeout:
        pass
    print(r if got == 0 else "data despite a zero window")
elif ATTACK == "stream_ids":
    # Stream id exhaustion: a stream id near 2^31 - 1, then one past what can exist.
    c.send_headers(2**31 - 1, req_headers("/last"), end_stream=True)
    s.sendall(c.data_to_send())
    print(outcome(s, c, 2**31 - 1, 10))
else:
    sys.exit("unknown attack " + ATTACK)
s.close()
ok = served()
print("served" if ok else "NOT served")
sys.exit(0 if ok else 1)
