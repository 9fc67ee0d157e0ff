#!/usr/bin/env bash
# WebSocket benchmarks, rswoole against tokio-tungstenite in ONE run (2 cores, noisy):
# servers pinned to CPU 0, the load generator to CPU 1.
#
# usage: scripts/bench_ws.sh [echo|broadcast|idle|all]
#   SECS=5 CONNS=64 SIZE=64 (echo)   BCONNS=1000 (broadcast)   IDLE=10000 (idle memory)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-5}; CONNS=${CONNS:-64}; SIZE=${SIZE:-64}; BCONNS=${BCONNS:-1000}; IDLE=${IDLE:-10000}
WHAT=${1:-all}
cargo build --release -q --bin rswoole --example ws_echo --example chat \
  --example peer_tungstenite_echo --example peer_tungstenite_broadcast
B=${CARGO_TARGET_DIR:-target}/release
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -9 -- "-$p" 2>/dev/null || true; done; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; return 1; }
start() { setsid taskset -c 0 "$@" >/dev/null 2>/tmp/bench-ws-server.err & local p=$!; PIDS+=("$p"); echo "$p"; }
stop() { kill -TERM -- "-$1" 2>/dev/null || true; sleep 0.5; kill -9 -- "-$1" 2>/dev/null || true; }
rps() { awk '/^result/ {for(i=1;i<=NF;i++) if ($i ~ /^rps=/) {sub("rps=","",$i); print $i}}'; }
ratio() { echo "$1 / $2" | bc -l; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

if [ "$WHAT" = echo ] || [ "$WHAT" = all ]; then
  echo "# ws echo: $CONNS conns, $SIZE B text, $SECS s"
  P=$(free_port); S=$(start $B/examples/peer_tungstenite_echo 127.0.0.1:$P 1); wait_port $P
  T=$(taskset -c 1 $B/rswoole bench ws-echo --addr 127.0.0.1:$P --conns $CONNS --size $SIZE --secs $SECS | rps); stop $S
  echo "tokio-tungstenite echo (1 thread):       $T rt/s"
  for MODE in base process; do for W in 1 2; do
    P=$(free_port); S=$(start $B/examples/ws_echo --port $P --mode $MODE --worker-num $W --reactor-num 1); wait_port $P
    R=$(taskset -c 1 $B/rswoole bench ws-echo --addr 127.0.0.1:$P --conns $CONNS --size $SIZE --secs $SECS | rps); stop $S
    printf "rswoole ws_echo %-8s worker_num=%s: %s rt/s = %.2fx tokio-tungstenite\n" "$MODE" "$W" "$R" "$(ratio "$R" "$T")"
  done; done
fi

if [ "$WHAT" = broadcast ] || [ "$WHAT" = all ]; then
  # deliveries/s is bounded by the one-core client; server CPU per delivery is the server's cost.
  us() { awk '/^result/ {for(i=1;i<=NF;i++) if ($i ~ /^server_us_per_delivery=/) {sub("server_us_per_delivery=","",$i); print $i}}' <<< "$1"; }
  for WIN in ${WINDOWS:-8 64}; do
    echo "# ws broadcast: $BCONNS clients, 1 sender, window $WIN, $SIZE B, $SECS s"
    P=$(free_port); S=$(start $B/examples/peer_tungstenite_broadcast 127.0.0.1:$P 1); wait_port $P
    OUT=$(taskset -c 1 $B/rswoole bench ws-broadcast --addr 127.0.0.1:$P --conns $BCONNS --window $WIN --size $SIZE --secs $SECS --server-pgid $S); stop $S
    T=$(rps <<< "$OUT"); TU=$(us "$OUT")
    echo "tokio-tungstenite broadcast (1 thread):  $T deliveries/s, server $TU us CPU per delivery"
    for MODE in process base; do
      P=$(free_port); S=$(start $B/examples/chat --host 127.0.0.1 --port $P --mode $MODE --worker-num 1 --reactor-num 1); wait_port $P
      OUT=$(taskset -c 1 $B/rswoole bench ws-broadcast --addr 127.0.0.1:$P --conns $BCONNS --window $WIN --size $SIZE --secs $SECS --server-pgid $S); stop $S
      R=$(rps <<< "$OUT"); RU=$(us "$OUT")
      printf "rswoole chat %-8s worker_num=1:    %s deliveries/s = %.2fx; server %s us CPU per delivery = %.2fx less CPU\n" \
        "$MODE" "$R" "$(ratio "$R" "$T")" "$RU" "$(ratio "$TU" "$RU")"
    done
  done
fi

if [ "$WHAT" = idle ] || [ "$WHAT" = all ]; then
  echo "# memory per idle WebSocket connection: $IDLE connections to examples/chat (Process mode)"
  P=$(free_port); S=$(start $B/examples/chat --host 127.0.0.1 --port $P --worker-num 1 --reactor-num 1); wait_port $P
  sleep 0.5; BEFORE=$(rss_kib $S)
  taskset -c 1 $B/rswoole bench ws-idle --addr 127.0.0.1:$P --conns $IDLE --hold-secs 4 > /tmp/bench-ws-idle.out &
  C=$!
  for _ in $(seq 600); do grep -q '^result' /tmp/bench-ws-idle.out 2>/dev/null && break; sleep 0.1; done
  sleep 1; AFTER=$(rss_kib $S); wait $C; stop $S
  printf "master RSS: %s KiB before, %s KiB with %s idle connections = %.2f KiB per connection\n" \
    "$BEFORE" "$AFTER" "$IDLE" "$(echo "($AFTER - $BEFORE) / $IDLE" | bc -l)"
  P=$(free_port); S=$(start $B/examples/peer_tungstenite_broadcast 127.0.0.1:$P 1); wait_port $P
  sleep 0.5; BEFORE=$(rss_kib $S)
  taskset -c 1 $B/rswoole bench ws-idle --addr 127.0.0.1:$P --conns $IDLE --hold-secs 4 > /tmp/bench-ws-idle.out &
  C=$!
  for _ in $(seq 600); do grep -q '^result' /tmp/bench-ws-idle.out 2>/dev/null && break; sleep 0.1; done
  sleep 1; AFTER=$(rss_kib $S); wait $C; stop $S
  printf "tokio-tungstenite RSS: %s KiB before, %s KiB with %s idle connections = %.2f KiB per connection\n" \
    "$BEFORE" "$AFTER" "$IDLE" "$(echo "($AFTER - $BEFORE) / $IDLE" | bc -l)"
fi
