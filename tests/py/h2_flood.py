"""HTTP/2 attack shapes against a server on 127.0.0.1:PORT (h2c), for tests/http2.rs.

usage: h2_flood.py PORT ATTACK [FRESH_PATH]
Prints one line: what the server did to the attacking connection ("closed", "goaway",
"reset", "answered:<status>"), then checks that a fresh connection is still served
("served"). Exits non-zero if the fresh connection is not served.
"""
import os, socket, sys, time

import h2_common

import h2.config, h2.connection, h2.events, h2.settings
from hyperframe.frame import HeadersFrame, ContinuationFrame, DataFrame, PingFrame, SettingsFrame, RstStreamFrame

PORT = int(sys.argv[1])
ATTACK = sys.argv[2]
FRESH = sys.argv[3] if len(sys.argv) > 3 else "/fresh"
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


def raw_outcome(s, limit):
    """Reads raw frames until GOAWAY ("goaway:<error code>") or the end ("closed")."""
    buf = b""
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
        buf += data
        while len(buf) >= 9:
            n = int.from_bytes(buf[0:3], "big")
            if len(buf) < 9 + n:
                break
            if buf[3] == 0x7:  # GOAWAY: last stream id, error code
                return "goaway:%d" % int.from_bytes(buf[9 + 4 : 9 + 8], "big")
            buf = buf[9 + n :]
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
    c.send_headers(1, req_headers(FRESH), end_stream=True)
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
elif ATTACK == "made_you_reset":
    # CVE-2025-8671 ("MadeYouReset"): the client makes the server reset its streams (here a
    # malformed request: END_STREAM with a non-zero content-length, a stream error), which no
    # limit on the client's own resets sees. The h2 crate counts the resets it sends for the
    # client's errors (max_local_error_reset_streams, 1024) and ends the connection past that.
    s.sendall(c.data_to_send())
    sid = 1
    ok = True
    batch = []
    for i in range(int(os.environ.get("MYR_STREAMS", "1200"))):
        f = HeadersFrame(sid)
        f.data = c.encoder.encode(req_headers("/m", [("content-length", "5")]))
        f.flags.add("END_STREAM")
        f.flags.add("END_HEADERS")
        batch.append(f.serialize())
        sid += 2
        if len(batch) == 50:
            ok = send_raw(s, [b"".join(batch)])
            batch = []
            if not ok:
                break
    if ok and batch:
        ok = send_raw(s, [b"".join(batch)])
    # The client library does not know the streams sent above: read the frames here.
    print(raw_outcome(s, 5) if ok else "closed")
elif ATTACK == "paced_reset":
    # Rapid reset paced so that the server takes each stream before its reset arrives (the h2
    # crate's limit on streams reset while waiting to be taken never trips): every stream asks
    # for slow work (/sleep/3000) and is cancelled at once, 400 times. The server must stop
    # taking new work once the connection's cancelled-but-running streams reach its stream
    # limit, and end the connection (GOAWAY) rather than hand all 400 to the workers.
    import select
    sid = 1
    verdict = None
    for i in range(400):
        try:
            c.send_headers(sid, req_headers("/sleep/3000"), end_stream=True)
            c.reset_stream(sid)
            s.sendall(c.data_to_send())
        except (ConnectionResetError, BrokenPipeError):
            verdict = "closed"
            break
        except Exception:  # the client library refuses new streams after a GOAWAY
            verdict = "goaway"
            break
        sid += 2
        time.sleep(0.005)
        while verdict is None and select.select([s], [], [], 0)[0]:
            try:
                data = s.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                data = b""
            if not data:
                verdict = "closed"
                break
            try:
                events = c.receive_data(data)
            except Exception:
                verdict = "closed"
                break
            if any(isinstance(e, h2.events.ConnectionTerminated) for e in events):
                verdict = "goaway"
        if verdict:
            break
    print(verdict or "ignored after %d streams" % ((sid - 1) // 2))
else:
    sys.exit("unknown attack " + ATTACK)
s.close()
ok = served()
print("served" if ok else "NOT served")
sys.exit(0 if ok else 1)
