#!/usr/bin/env python3
"""Load for the live-connection handover benchmark (scripts/upgrade_bench.sh HANDOVER=1):
IDLE connections that say one thing and then nothing, BUSY ones that ping-pong
length-framed messages (4-byte big-endian length + body) with examples/upgrade_kit's
--stream-port without pause. Once all are up it runs the upgrade command, waits until the
old master (OLD_PID) has exited, then asks every connection once more and counts:
replies from the new binary, from the old one, and dropped connections (any error, EOF,
or no reply within 20 s). Prints one JSON line.
  handover_load.py PORT IDLE BUSY OLD_PID NEW_TAG -- upgrade command...
"""
import asyncio
import json
import os
import struct
import subprocess
import sys
import time


async def ask(r, w, body):
    w.write(struct.pack(">I", len(body)) + body)
    await w.drain()
    n = struct.unpack(">I", await r.readexactly(4))[0]
    return (await r.readexactly(n)).decode(errors="replace")


async def main():
    port, idle, busy, old_pid, new_tag = sys.argv[1:6]
    port, idle, busy, old_pid = int(port), int(idle), int(busy), int(old_pid)
    cmd = sys.argv[sys.argv.index("--") + 1:]
    conns = []
    for start in range(0, idle + busy, 500):
        batch = [asyncio.open_connection("127.0.0.1", port)
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
