"""Memory per idle connection of a server: opens N connections of one protocol, uses each once
(TCP: one echo; HTTP: one keep-alive request; WebSocket: the handshake and one echoed
message), leaves them idle, and reports how much the process that owns them grew per
connection (PSS and RSS), and apart what the kernel holds for them (slab caches and socket
buffers, both ends, since client and server share the loopback kernel).

usage: python3 scripts/idle_mem.py PGID PORT tcp|http|ws N
(PGID: the server's process group; the owners are the processes in it whose open files grew
with the connections: the master in Process mode, the workers in Base mode; their PSS and RSS
growth is summed.)

Past what one process may open (the open-files hard limit, 20,000 here), the connections are
opened by several client processes (CLIENTS=K, default: as many as needed with up to
PER_CLIENT=18000 each), each from its own source address (127.0.0.1, .2, .3, ...: one
address has ~28,000 ephemeral ports towards one server port). The server must then spread
them over several owners too: Base mode with several workers (`SO_REUSEPORT`).
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


def open_one(port, proto, src=None):
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


def raise_nofile(n):
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < n + 100:
        raise SystemExit(f"open-files limit {hard} < {n} connections: raise it (ulimit -n) "
                         f"or use more client processes (PER_CLIENT)")


def clients(port, proto, n, k):
    """Opens n connections from k client processes (forked), the k-th from source address
    127.0.0.(k+1); returns once all are open, with a function that closes them all."""
    share = [n // k + (1 if j < n % k else 0) for j in range(k)]
    kids = []
    for j in range(k):
        ready_r, ready_w = os.pipe()
        hold_r, hold_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(ready_r)
            os.close(hold_w)
            code = 0
            try:
                raise_nofile(share[j])
                src = (f"127.0.0.{j + 1}", 0) if k > 1 else None
                conns = [open_one(port, proto, src) for _ in range(share[j])]
                os.write(ready_w, b"ok")
                os.read(hold_r, 1)  # until the parent closes its end
                for c in conns:
                    c.close()
            except BaseException as e:  # noqa: BLE001 - reported through the pipe
                os.write(ready_w, f"client {j}: {e}".encode()[:500])
                code = 1
            os._exit(code)
        os.close(ready_w)
        os.close(hold_r)
        kids.append((pid, ready_r, hold_w))
    for pid, ready_r, _ in kids:
        msg = os.read(ready_r, 1000)
        if msg != b"ok":
            raise SystemExit(msg.decode(errors="replace") or f"client {pid} died")

    def close_all():
        for pid, ready_r, hold_w in kids:
            os.close(hold_w)
            os.close(ready_r)
        for pid, _, _ in kids:
            os.waitpid(pid, 0)

    return close_all


def main():
    pgid, port, proto, n = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    per = int(os.environ.get("PER_CLIENT", "18000"))
    k = int(os.environ.get("CLIENTS", "0")) or -(-n // per)
    raise_nofile(0)
    pids = group(pgid)
    # A few connections first (to every worker, hashed by SO_REUSEPORT), so that lazily
    # built state (buffers, caches) is not counted.
    conns = [open_one(port, proto) for _ in range(4 * len(pids))]
    time.sleep(0.5)
    pids = group(pgid)
    hook = os.environ.get("IDLE_MEM_HOOK")
    if hook:
        # The owner is not known yet: the hook sees every process of the group (OWNERS).
        subprocess.run(["sh", "-c", hook], env={**os.environ, "PHASE": "before",
                       "OWNERS": " ".join(map(str, pids))}, check=False)
    before = {p: mem(p) for p in pids}
    k0 = kernel()
    close_all = clients(port, proto, n, k)
    time.sleep(1.5 + n / 20000)
    after = {p: mem(p) for p in pids if os.path.exists(f"/proc/{p}")}
    k1 = kernel()
    grew = {p: after[p][2] - before[p][2] for p in after}
    # The owners: every process that holds at least a tenth of its even share.
    owners = [p for p in after if grew[p] >= n / len(after) / 10] or [max(after, key=grew.get)]
    p0 = sum(before[p][0] for p in owners)
    p1 = sum(after[p][0] for p in owners)
    r0 = sum(before[p][1] for p in owners)
    r1 = sum(after[p][1] for p in owners)

    def comm(p):
        with open(f"/proc/{p}/comm") as f:
            return f.read().strip()

    who = ", ".join(f"{p}({comm(p)}) {grew[p]}" for p in owners)
    slab = (k1[0] - k0[0]) / n if k0[0] >= 0 else float("nan")
    print(f"{proto} n={n} clients={k} owner={who}: PSS {p0}->{p1} KiB = {(p1 - p0) * 1024 / n:.0f} B/conn, "
          f"RSS {r0}->{r1} KiB = {(r1 - r0) * 1024 / n:.0f} B/conn; kernel (both ends): "
          f"slabs {slab:.0f} B/conn, tcp buffers {(k1[1] - k0[1]) / n:.0f} B/conn", flush=True)
    # IDLE_MEM_HOOK='sh command': run before the N connections (PHASE=before, OWNERS=the
    # group's pids) and while they are still held (PHASE=after, OWNER=the owners' pids), e.g.
    # scripts/heap_of.sh to see where the owner's memory is.
    if hook:
        subprocess.run(["sh", "-c", hook], env={**os.environ, "PHASE": "after",
                       "OWNER": " ".join(map(str, owners))}, check=False)
    close_all()
    for c in conns:
        c.close()


main()
