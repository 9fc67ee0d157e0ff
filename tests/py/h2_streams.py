"""Several streams on one HTTP/2 connection (h2c) to 127.0.0.1:PORT, for tests/http2.rs.

usage: h2_streams.py PORT order SLOW_PATH FAST_PATH
    Stream 1 asks SLOW_PATH, then stream 3 FAST_PATH, on one connection. Prints the streams
    in the order their responses ended, each as "<path> <status> <ms since sent>".
usage: h2_streams.py PORT crash
    Stream 1 asks /sleep?ms=5000, stream 3 /crash?ms=300 (the worker dies), then, once both
    are answered, stream 5 asks /hello on the same connection. Prints each stream's
    "<path> <status> <body>" in stream order.
usage: h2_streams.py PORT trailers PATH
    Stream 1 asks PATH; prints "<status> <body> <trailers>", the trailers as name=value
    joined by ",", or "-" when none came.
usage: h2_streams.py PORT reset PATH
    Stream 1 POSTs 1 MiB to PATH without ending the body, then resets the stream; stream 3
    asks /hello/x (axum_app) on the same connection. Prints "<status> <body>" of stream 3.
"""
import socket, sys, time

import h2_common

import h2.config, h2.connection, h2.errors, h2.events

PORT = int(sys.argv[1])
T = 30


def connect():
    return h2_common.connect(PORT, T)


def headers(path, method="GET"):
    return [(":method", method), (":path", path), (":scheme", "http"), (":authority", "x")]


def run(s, c, want, on_event=None, t0=None):
    """Reads until every stream in `want` ended; returns {stream: [status, body, ms]}, the
    ms counted from `t0` (taken before the requests were sent), or from now."""
    got = {sid: [None, b"", None] for sid in want}
    t0 = time.monotonic() if t0 is None else t0
    deadline = t0 + T
    while any(v[2] is None for v in got.values()):
        if time.monotonic() > deadline:
            raise SystemExit("timeout: %r" % got)
        data = s.recv(65536)
        if not data:
            raise SystemExit("connection closed: %r" % got)
        for e in c.receive_data(data):
            if on_event:
                on_event(e)
            sid = getattr(e, "stream_id", None)
            if sid not in got:
                continue
            if isinstance(e, h2.events.ResponseReceived):
                got[sid][0] = dict(e.headers)[":status"]
            elif isinstance(e, h2.events.DataReceived):
                got[sid][1] += e.data
                c.acknowledge_received_data(e.flow_controlled_length, sid)
            elif isinstance(e, h2.events.TrailersReceived):
                trailers.extend(e.headers)
            elif isinstance(e, h2.events.StreamEnded):
                got[sid][2] = round((time.monotonic() - t0) * 1000)
                order.append(sid)
            elif isinstance(e, h2.events.StreamReset):
                got[sid][0] = "reset"
                got[sid][2] = round((time.monotonic() - t0) * 1000)
                order.append(sid)
        s.sendall(c.data_to_send())
    return got


order = []
trailers = []
what = sys.argv[2]
s, c = connect()
if what == "order":
    slow, fast = sys.argv[3], sys.argv[4]
    c.send_headers(1, headers(slow), end_stream=True)
    c.send_headers(3, headers(fast), end_stream=True)
    t0 = time.monotonic()  # before the send: the slow handler's sleep starts after it
    s.sendall(c.data_to_send())
    got = run(s, c, [1, 3], t0=t0)
    paths = {1: slow, 3: fast}
    for sid in order:
        print(paths[sid], got[sid][0], got[sid][2])
elif what == "crash":
    c.send_headers(1, headers("/sleep?ms=5000"), end_stream=True)
    c.send_headers(3, headers("/crash?ms=300"), end_stream=True)
    s.sendall(c.data_to_send())
    got = run(s, c, [1, 3])
    c.send_headers(5, headers("/hello"), end_stream=True)
    s.sendall(c.data_to_send())
    got.update(run(s, c, [5]))
    for sid, path in [(1, "/sleep?ms=5000"), (3, "/crash?ms=300"), (5, "/hello")]:
        print(path, got[sid][0], got[sid][1].decode().strip())
elif what == "reset":
    c.send_headers(1, headers(sys.argv[3], "POST"))
    block = bytes(range(256)) * 64
    sent = 0
    s.settimeout(5)
    while sent < 1 << 20:
        n = min(c.local_flow_control_window(1), c.max_outbound_frame_size, len(block))
        if n == 0:
            # Wait for the server to open the window (it does as the handler reads).
            for e in c.receive_data(s.recv(65536)):
                pass
            s.sendall(c.data_to_send())
            continue
        c.send_data(1, block[:n])
        sent += n
        s.sendall(c.data_to_send())
    c.reset_stream(1, h2.errors.ErrorCodes.CANCEL)
    c.send_headers(3, headers("/hello/x"), end_stream=True)
    s.sendall(c.data_to_send())
    s.settimeout(T)
    got = run(s, c, [3])
    print(got[3][0], got[3][1].decode())
elif what == "trailers":
    c.send_headers(1, headers(sys.argv[3]), end_stream=True)
    s.sendall(c.data_to_send())
    got = run(s, c, [1])
    t = ",".join("%s=%s" % (k, v) for k, v in trailers) or "-"
    print(got[1][0], got[1][1].decode().replace("\n", "|"), t)
else:
    raise SystemExit("unknown: " + what)
