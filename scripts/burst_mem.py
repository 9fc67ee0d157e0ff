"""Whether a server gives memory back after a burst (issue 20). Prints, for every process of
the server's group, its RSS when idle, its peak (VmHWM) during the burst, and its RSS
SETTLE seconds after (and the parts of RSS idle and after: anonymous memory — the heap —,
file pages — the binary's code and data —, and shared memory).

usage: python3 scripts/burst_mem.py PGID PORT conns N      (N connections opened, used, closed)
       python3 scripts/burst_mem.py PGID PORT ws MIB       (one MIB MiB WebSocket message echoed)
"""
import base64
import os
import resource
import socket
import struct
import sys
import time

SETTLE = float(os.environ.get("SETTLE", "3"))


def group(pgid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[2]) == pgid:
                        out.append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    return sorted(out)


def status(pid):
    v = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, rest = line.partition(":")
            if k in ("VmRSS", "VmHWM", "Name", "RssAnon", "RssFile", "RssShmem"):
                v[k] = rest.split()[0]
    return v


def recv_exact(s, n):
    b = bytearray()
    while len(b) < n:
        c = s.recv(min(n - len(b), 1 << 20))
        if not c:
            raise SystemExit("server closed the connection")
        b += c
    return bytes(b)


def conns_burst(port, n):
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        socks.append(s)
    for s in socks:
        d = b""
        while b"\r\n\r\n" not in d:
            c = s.recv(4096)
            if not c:
                break
            d += c
    for s in socks:
        s.close()


def ws_burst(port, mib):
    s = socket.create_connection(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    h = b""
    while b"\r\n\r\n" not in h:
        h += s.recv(4096)
    n = mib << 20
    # Masked with a zero key (valid, and the payload goes as is).
    s.sendall(bytes([0x82, 0x80 | 127]) + struct.pack(">Q", n) + b"\0\0\0\0")
    chunk = b"x" * (1 << 20)
    for _ in range(mib):
        s.sendall(chunk)
    b0, b1 = recv_exact(s, 2)
    ln = b1 & 0x7F
    if ln == 127:
        ln = struct.unpack(">Q", recv_exact(s, 8))[0]
    elif ln == 126:
        ln = struct.unpack(">H", recv_exact(s, 2))[0]
    got = 0
    while got < ln:
        c = s.recv(1 << 20)
        if not c:
            raise SystemExit("closed mid-echo")
        got += len(c)
    if ln != n:
        raise SystemExit(f"echo of {ln} bytes, sent {n}")
    s.close()


def main():
    pgid, port, what, n = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    # Warm up (one of each), then idle.
    if what == "conns":
        conns_burst(port, 4)
    else:
        ws_burst(port, 1)
    time.sleep(1.0)
    pids = group(pgid)
    idle = {p: status(p) for p in pids}
    t = time.time()
    (conns_burst if what == "conns" else ws_burst)(port, n)
    took = time.time() - t
    time.sleep(SETTLE)
    for p in pids:
        try:
            a = status(p)
        except OSError:
            continue
        i = int(idle[p]["VmRSS"])
        print(f"{what} {n}: {a['Name']:<16} pid {p}: idle {i / 1024:.1f} MB, peak {int(a['VmHWM']) / 1024:.1f} MB, "
              f"{SETTLE:.0f} s after {int(a['VmRSS']) / 1024:.1f} MB ({(int(a['VmRSS']) - i) * 100 / max(i, 1):+.0f}% of idle); burst {took:.1f} s")
        # Where the rest is: heap (anon), code and data of the binary (file), shared memory.
        parts = ", ".join(f"{k[3:].lower()} {int(idle[p][k]) / 1024:.1f} -> {int(a[k]) / 1024:.1f}"
                          for k in ("RssAnon", "RssFile", "RssShmem"))
        print(f"    idle -> after, MB: {parts}")


main()
