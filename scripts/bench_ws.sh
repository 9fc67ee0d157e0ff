#!/usr/bin/env bash
# WebSocket benchmarks, rswoole against tokio-tungstenite in ONE run (2 cores, noisy):
# servers pinned to CPU 0, the load generator to CPU 1.
#
# usage: scripts/bench_ws.sh [echo|broadcast|idle|all]
#   SECS=5 CONNS=64 SIZE=64 (echo)   BCONNS=1000 ROUNDS=3 WINDOWS="8 64" SENDERS=1 (broadcast)
#   IDLE=10000 (idle memory)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-5}; CONNS=${CONNS:-64}; SIZE=${SIZE:-64}; BCONNS=${BCONNS:-1000}; IDLE=${IDLE:-10000}
WHAT=${1:-all}
cargo build --release -q --features cli --bin rswoole --example ws_echo --example chat \
  --example peer_tungstenite_echo --example peer_tungstenite_broadcast
. scripts/bench_lib.sh
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
  # The three servers take turns, ROUNDS times (the machine is shared and noisy); the medians
  # are compared. "server us" = CPU time of the server's process group per delivery.
  us() { awk '/^result/ {for(i=1;i<=NF;i++) if ($i ~ /^server_us_per_delivery=/) {sub("server_us_per_delivery=","",$i); print $i}}' <<< "$1"; }
  ROUNDS=${ROUNDS:-3}
  for WIN in ${WINDOWS:-8 64}; do
    echo "# ws broadcast: $BCONNS clients, ${SENDERS:-1} sender(s), window $WIN, $SIZE B, $SECS s, $ROUNDS rounds"
    declare -A RPS=() US=()
    for R in $(seq "$ROUNDS"); do
      for WHO in tungstenite process base; do
        P=$(free_port)
        case $WHO in
          tungstenite) S=$(start $B/examples/peer_tungstenite_broadcast 127.0.0.1:$P 1) ;;
          *) S=$(start $B/examples/chat --host 127.0.0.1 --port $P --mode $WHO --worker-num 1 --reactor-num 1) ;;
        esac
        wait_port $P
        OUT=$(taskset -c 1 $B/rswoole bench ws-broadcast --addr 127.0.0.1:$P --conns $BCONNS \
          --senders ${SENDERS:-1} --window $WIN --size $SIZE --secs $SECS --server-pgid $S); stop $S
        RPS[$WHO]+="$(rps <<< "$OUT") "; US[$WHO]+="$(us "$OUT") "
        printf "round %s %-12s %9s deliveries/s  %s us/delivery\n" "$R" "$WHO" "$(rps <<< "$OUT")" "$(us "$OUT")"
      done
    done
    T=$(median ${RPS[tungstenite]}); TU=$(median ${US[tungstenite]})
    echo "median tokio-tungstenite (1 thread): $T deliveries/s, server $TU us CPU per delivery"
    for WHO in process base; do
      R=$(median ${RPS[$WHO]}); RU=$(median ${US[$WHO]})
      printf "median rswoole chat %-8s (1 worker): %s deliveries/s = %.2fx; server %s us CPU per delivery = %.2fx less CPU\n" \
        "$WHO" "$R" "$(ratio "$R" "$T")" "$RU" "$(ratio "$TU" "$RU")"
    done
    unset RPS US
  done
fi

if [ "$WHAT" = idle ] || [ "$WHAT" = all ]; then
  echo "# memory per idle WebSocket connection: $IDLE connections (rswoole: examples/chat, Process mode)"
  idle_rss() { # idle_rss LABEL CMD... (the server listens on $P)
    local label=$1; shift
    S=$(start "$@"); wait_port $P
    sleep 0.5; BEFORE=$(rss_kib $S)
    taskset -c 1 $B/rswoole bench ws-idle --addr 127.0.0.1:$P --conns $IDLE --hold-secs 4 > /tmp/bench-ws-idle.out &
    C=$!
    for _ in $(seq 600); do grep -q '^result' /tmp/bench-ws-idle.out 2>/dev/null && break; sleep 0.1; done
    sleep 1; AFTER=$(rss_kib $S); wait $C; stop $S
    printf "%s RSS: %s KiB before, %s KiB with %s idle connections = %.2f KiB per connection\n" \
      "$label" "$BEFORE" "$AFTER" "$IDLE" "$(echo "($AFTER - $BEFORE) / $IDLE" | bc -l)"
  }
  P=$(free_port); idle_rss "master" $B/examples/chat --host 127.0.0.1 --port $P --worker-num 1 --reactor-num 1
  P=$(free_port); idle_rss "tokio-tungstenite" $B/examples/peer_tungstenite_broadcast 127.0.0.1:$P 1
fi
