#!/usr/bin/env bash
# Binary upgrade under HTTP keep-alive load (BENCHMARKS.md, issue 19): wrk runs against
# examples/upgrade_kit (copied to app-v1 and app-v2); in the middle, `rswoole upgrade` moves
# the server to the other copy, twice. Prints how long each upgrade took (request → the new
# master's workers serve and the old one stops accepting) and wrk's errors.
#   cargo build --release --example upgrade_kit --bin rswoole && scripts/upgrade_bench.sh
# Env: MODE=process|base  CONNS=64  SECS=10  WORKERS=2  T=target dir (default target/release)
#
# HANDOVER=1 (Process mode): live TCP connections move to the new binary instead. IDLE=10000
# idle and BUSY=1000 ping-ponging length-framed connections (scripts/handover_load.py) on the
# kit's --stream-port; one upgrade; prints the old master's handover line (connections
# moved, bytes of state, time from the first quiesce request to the end message), the new
# master's, and the client's count of replies from the new binary and dropped connections.
# WS=1 (with HANDOVER=1): the same with WebSocket clients on the kit's HTTP port.
set -euo pipefail
cd "$(dirname "$0")/.."
T=${T:-${CARGO_TARGET_DIR:-target}/release}
MODE=${MODE:-process}; CONNS=${CONNS:-64}; SECS=${SECS:-10}; WORKERS=${WORKERS:-2}
dir=$(mktemp -d); trap 'kill $(cat $dir/app.pid 2>/dev/null) 2>/dev/null || true; rm -rf $dir' EXIT
cp "$T/examples/upgrade_kit" "$dir/app-v1"; cp "$T/examples/upgrade_kit" "$dir/app-v2"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
if [ "${HANDOVER:-0}" = 1 ]; then
  ulimit -n "$(ulimit -Hn)"
  IDLE=${IDLE:-10000}; BUSY=${BUSY:-1000}
  sport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  RSWOOLE_LOG=info "$dir/app-v1" --port "$port" --stream-port "$sport" --worker-num "$WORKERS" \
    --pid-file "$dir/app.pid" --max-wait-time-ms 30000 2>"$dir/server.log" &
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/" >/dev/null && break; sleep 0.05; done
  old=$(cat "$dir/app.pid")
  lport=$sport; [ "${WS:-0}" = 1 ] && lport=$port
  python3 scripts/handover_load.py "$lport" "$IDLE" "$BUSY" "$old" app-v2 -- \
    "$T/rswoole" upgrade --pid-file "$dir/app.pid" --binary "$dir/app-v2" --timeout 60
  grep -E "handover: " "$dir/server.log" | sed -e 's/\x1b\[[0-9;]*m//g'
  exit 0
fi
RSWOOLE_LOG=warn "$dir/app-v1" --port "$port" --mode "$MODE" --worker-num "$WORKERS" \
  --pid-file "$dir/app.pid" --max-wait-time-ms 3000 2>"$dir/server.log" &
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/" >/dev/null && break; sleep 0.05; done
wrk -t1 -c"$CONNS" -d"${SECS}s" "http://127.0.0.1:$port/" >"$dir/wrk.txt" 2>&1 &
wrk_pid=$!
sleep $((SECS / 3))
for to in app-v2 app-v1; do
  t0=$(date +%s%N)
  "$T/rswoole" upgrade --pid-file "$dir/app.pid" --binary "$dir/$to" >/dev/null
  t1=$(date +%s%N)
  echo "upgrade to $to: $(( (t1 - t0) / 1000000 )) ms"
  sleep $((SECS / 3))
done
wait $wrk_pid
grep -E "Requests/sec|requests in|Socket errors|Non-2xx" "$dir/wrk.txt" || true
grep -c "Socket errors" "$dir/wrk.txt" >/dev/null || echo "wrk: no socket errors, no non-2xx responses"
echo "last reply: $(curl -s "http://127.0.0.1:$port/")"
