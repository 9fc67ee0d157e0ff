"""Memory per idle TLS connection of a server process: opens N TLS connections (handshake
done, then idle) and reports how much the process's resident memory grew per connection.

usage: python3 scripts/tls_idle_mem.py PID PORT N CA.pem
(PID: the process holding the connections: rswoole's master in Process mode.)
"""
import resource
import socket
import ssl
import sys
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit(f"no VmRSS for {pid}")


def main():
    pid, port, n, ca = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    ctx = ssl.create_default_context(cafile=ca)
    # One connection first, so that lazily built state (buffers, caches) is not counted.
    warm = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
    time.sleep(0.5)
    before = rss_kib(pid)
    conns = [warm]
    for _ in range(n):
        conns.append(ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost"))
    time.sleep(1.0)
    after = rss_kib(pid)
    print(f"{(after - before) * 1024 / n:.0f} bytes per idle TLS connection ({n} connections, RSS {before} -> {after} KiB)")
    for c in conns:
        c.close()


main()
