"""Memory per idle connection of a server: opens N connections of one protocol, uses each once
(TCP: one echo; HTTP: one keep-alive request; WebSocket: the handshake and one echoed
message), leaves them idle, and reports how much the process that owns them grew per
connection (PSS and RSS), and apart what the kernel holds for them (slab caches and socket
buffers, both ends, since client and server share the loopback kernel).

usage: python3 scripts/idle_mem.py PGID PORT tcp|http|ws N
(PGID: the server's process group; the owner is the process in it whose open files grew most:
the master in Process mode, the worker in Base mode.)
"""
import base64
import os
import resource
import socket
import subprocess
import sys
import time

SLABS = ("TCP", "sock_inode_cache", "filp", "dentry", "eventpoll_epi", "eventpoll_pwq",
         "skbuff_head_cache", "kmalloc-1k", "kmalloc-512", "kmalloc-256")


def group(pgid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
            if int(s.rsplit(")", 1)[1].split()[2]) == pgid:
                out.append(int(d))
        except (OSError, ValueError, IndexError):
            pass
    return out


def mem(pid):
    """(PSS KiB, RSS KiB, open files) of pid."""
    pss = rss = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                pss = int(line.split()[1])
            elif line.startswith("Rss:"):
                rss = int(line.split()[1])
    return pss, rss, len(os.listdir(f"/proc/{pid}/fd"))


def kernel():
    """Bytes the kernel holds in the slabs above, and TCP socket buffer memory."""
    total = 0
    try:
        with open("/proc/slabinfo") as f:
            for line in f:
                p = line.split()
                if p and p[0] in SLABS:
                    total += int(p[1]) * int(p[3])
    except OSError:
        total = -1
    tcp_mem = 0
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                p = line.split()
                tcp_mem = int(p[p.index("mem") + 1]) * 4096
    return total, tcp_mem


def recv_until(s, pred):
    buf = b""
    while not pred(buf):
        c = s.recv(65536)
        if not c:
            raise SystemExit("server closed a connection")
        buf += c
    return buf


def http_done(buf):
    head, sep, body = buf.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            return len(body) >= int(v)
    return True


def ws_frame(payload):
    mask = b"\x01\x02\x03\x04"
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + mask + masked


def open_one(port, proto, i=0):
    # Past 20,000 connections the client spreads over source addresses 127.0.0.2, .3, ...:
    # one address has only ~28,000 ephemeral ports towards one server port.
    src = None if i < 20000 else (f"127.0.0.{1 + i // 20000}", 0)
    s = socket.create_connection(("127.0.0.1", port), source_address=src)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if proto == "tcp":
        s.sendall(b"hello")
        recv_until(s, lambda b: b.endswith(b"hello"))
    elif proto == "http":
        s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        recv_until(s, http_done)
    else:
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall((f"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                   f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
        b = recv_until(s, lambda b: b"\r\n\r\n" in b)
        if b" 101 " not in b.split(b"\r\n", 1)[0]:
            raise SystemExit(f"no upgrade: {b[:80]!r}")
        s.sendall(ws_frame(b"hello"))
        recv_until(s, lambda b: b.endswith(b"hello"))
    return s


def main():
    pgid, port, proto, n = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < n + 100:
        raise SystemExit(f"open-files limit {hard} < {n} connections: raise it (ulimit -n) first")
    # A few connections first, so that lazily built state (buffers, caches) is not counted.
    conns = [open_one(port, proto) for _ in range(4)]
    time.sleep(0.5)
    pids = group(pgid)
    hook = os.environ.get("IDLE_MEM_HOOK")
    if hook:
        # The owner is not known yet: the hook sees every process of the group (OWNERS).
        subprocess.run(["sh", "-c", hook], env={**os.environ, "PHASE": "before",
                       "OWNERS": " ".join(map(str, pids))}, check=False)
    before = {p: mem(p) for p in pids}
    k0 = kernel()
    conns += [open_one(port, proto, i) for i in range(n)]
    time.sleep(1.5 + n / 20000)
    after = {p: mem(p) for p in pids if os.path.exists(f"/proc/{p}")}
    k1 = kernel()
    owner = max(after, key=lambda p: after[p][2] - before[p][2])
    (p0, r0, _), (p1, r1, _) = before[owner], after[owner]
    with open(f"/proc/{owner}/comm") as f:
        comm = f.read().strip()
    slab = (k1[0] - k0[0]) / n if k0[0] >= 0 else float("nan")
    print(f"{proto} n={n} owner={owner}({comm}): PSS {p0}->{p1} KiB = {(p1 - p0) * 1024 / n:.0f} B/conn, "
          f"RSS {r0}->{r1} KiB = {(r1 - r0) * 1024 / n:.0f} B/conn; kernel (both ends): "
          f"slabs {slab:.0f} B/conn, tcp buffers {(k1[1] - k0[1]) / n:.0f} B/conn", flush=True)
    # IDLE_MEM_HOOK='sh command': run before the N connections (PHASE=before, OWNERS=the
    # group's pids) and while they are still held (PHASE=after, OWNER=pid), e.g.
    # scripts/heap_of.sh to see where the owner's memory is.
    if hook:
        subprocess.run(["sh", "-c", hook], env={**os.environ, "PHASE": "after",
                       "OWNER": str(owner)}, check=False)
    for c in conns:
        c.close()


main()
