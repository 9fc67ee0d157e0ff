#!/usr/bin/env python3
"""Load for the live-connection handover benchmark (scripts/upgrade_bench.sh HANDOVER=1):
IDLE connections that say one thing and then nothing, BUSY ones that ping-pong
length-framed messages (4-byte big-endian length + body) with examples/upgrade_kit's
--stream-port without pause. Once all are up it runs the upgrade command, waits until the
old master (OLD_PID) has exited, then asks every connection once more and counts:
replies from the new binary, from the old one, and dropped connections (any error, EOF,
or no reply within 20 s). Prints one JSON line.
  handover_load.py PORT IDLE BUSY OLD_PID NEW_TAG -- upgrade command...
With WS=1 in the environment, PORT is the kit's HTTP port and the connections are
WebSocket clients instead (upgraded first, then text messages, answered the same way).
"""
import asyncio
import base64
import json
import os
import struct
import subprocess
import sys
import time


WS = os.environ.get("WS") == "1"


async def ask(r, w, body):
    if WS:
        return await ws_ask(r, w, body)
    w.write(struct.pack(">I", len(body)) + body)
    await w.drain()
    n = struct.unpack(">I", await r.readexactly(4))[0]
    return (await r.readexactly(n)).decode(errors="replace")


async def connect(port):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    if WS:
        key = base64.b64encode(os.urandom(16)).decode()
        w.write((f"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                 f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                 f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
        await w.drain()
        head = await r.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(f"upgrade refused: {head[:40]!r}")
    return r, w


async def ws_ask(r, w, body):
    """One masked text frame out; the next text or binary message back (Close: an error)."""
    mask = os.urandom(4)
    n = len(body)
    head = bytes([0x81, 0x80 | n]) if n < 126 else bytes([0x81, 0xFE]) + struct.pack(">H", n)
    w.write(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(body)))
    await w.drain()
    while True:
        b0, b1 = await r.readexactly(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack(">H", await r.readexactly(2))[0]
        elif n == 127:
            n = struct.unpack(">Q", await r.readexactly(8))[0]
        data = await r.readexactly(n)
        op = b0 & 0x0F
        if op in (1, 2):
            return data.decode(errors="replace")
        if op == 8:
            raise ConnectionError(f"WebSocket Close {data[:2].hex()} {data[2:]!r}")


async def main():
    port, idle, busy, old_pid, new_tag = sys.argv[1:6]
    port, idle, busy, old_pid = int(port), int(idle), int(busy), int(old_pid)
    cmd = sys.argv[sys.argv.index("--") + 1:]
    conns = []
    for start in range(0, idle + busy, 500):
        batch = [connect(port)
                 for _ in range(min(500, idle + busy - start))]
        conns.extend(await asyncio.gather(*batch))
    # Every connection is known to the server before the upgrade.
    await asyncio.gather(*(ask(r, w, b"hello") for r, w in conns))
    stop = asyncio.Event()
    errors = []
    counts = {"before": 0, "after": 0}
    upgraded = asyncio.Event()

    async def pump(i, r, w):
        n = 0
        while not stop.is_set():
            n += 1
            try:
                rep = await asyncio.wait_for(ask(r, w, f"b{i}-{n}".encode()), 20)
            except Exception as e:  # noqa: BLE001 - any failure is a dropped connection
                errors.append(f"busy {i}: {e!r}")
                return
            counts["after" if upgraded.is_set() else "before"] += 1
            if not rep.endswith(f" b{i}-{n}"):
                errors.append(f"busy {i}: reply {rep!r}")
                return

    pumps = [asyncio.create_task(pump(i, r, w)) for i, (r, w) in enumerate(conns[idle:])]
    await asyncio.sleep(2)
    t0 = time.monotonic()
    out = await asyncio.to_thread(subprocess.run, cmd, capture_output=True, text=True)
    t_cmd = time.monotonic() - t0
    upgraded.set()
    while os.path.exists(f"/proc/{old_pid}"):
        if time.monotonic() - t0 > 120:
            errors.append("the old master did not exit in 120 s")
            break
        await asyncio.sleep(0.05)
    t_old_gone = time.monotonic() - t0
    await asyncio.sleep(2)
    stop.set()
    await asyncio.gather(*pumps)
    new = old = dropped = 0

    async def last(i, r, w):
        nonlocal new, old, dropped
        try:
            rep = await asyncio.wait_for(ask(r, w, f"last{i}".encode()), 20)
        except Exception as e:  # noqa: BLE001
            dropped += 1
            if len(errors) < 20:
                errors.append(f"conn {i}: {e!r}")
            return
        if rep.startswith(new_tag + " "):
            new += 1
        else:
            old += 1

    await asyncio.gather(*(last(i, r, w) for i, (r, w) in enumerate(conns)))
    print(json.dumps({
        "idle": idle, "busy": busy, "upgrade_ok": out.returncode == 0,
        "upgrade_cmd_s": round(t_cmd, 3), "old_master_gone_s": round(t_old_gone, 3),
        "busy_msgs_before": counts["before"], "busy_msgs_after": counts["after"],
        "replies_new": new, "replies_old": old, "dropped": dropped,
        "errors": errors[:20],
    }))


asyncio.run(main())
