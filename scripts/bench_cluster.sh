#!/usr/bin/env bash
# Cluster broadcast benchmark (issue 17), in ONE run on this machine: a redis-server, three chat
# nodes sharing it, and one chat node alone. 900 WebSocket clients, one sender:
#   - cluster: 300 clients on each of the 3 nodes (client 0, the sender, on node 1), so two
#     thirds of the deliveries cross nodes through Redis pub/sub;
#   - single: one node holding all 900 (no Redis on the path).
# Servers and redis pinned to CPU 0, the load generator to CPU 1 (as scripts/bench_ws.sh).
#
# usage: scripts/bench_cluster.sh      SECS=5 CONNS=900 WINDOW=8 SIZE=64 ROUNDS=3
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-5}; CONNS=${CONNS:-900}; WINDOW=${WINDOW:-8}; SIZE=${SIZE:-64}; ROUNDS=${ROUNDS:-3}
cargo build --release -q --features cli --bin rswoole --example chat
. scripts/bench_lib.sh
rps() { awk '/^result/ {for(i=1;i<=NF;i++) if ($i ~ /^rps=/) {sub("rps=","",$i); print $i}}'; }
RP=$(free_port)
R=$(start redis-server --port "$RP" --bind 127.0.0.1 --save '' --appendonly no)
wait_port "$RP"
URL="redis://127.0.0.1:$RP/"
NODE=(--worker-num 1 --reactor-num 1)
bench() { taskset -c 1 "$B/rswoole" bench ws-broadcast --conns "$CONNS" --window "$WINDOW" \
  --size "$SIZE" --secs "$SECS" "$@" | rps; }
echo "# ws broadcast, $CONNS clients, 1 sender, window $WINDOW, $SIZE B, $SECS s, $ROUNDS rounds"
SINGLE=(); CLUSTER=()
for _ in $(seq "$ROUNDS"); do
  P=$(free_port); S=$(start "$B/examples/chat" --port "$P" "${NODE[@]}"); wait_port "$P"
  SINGLE+=("$(bench --addr "127.0.0.1:$P")"); stop "$S"
  P1=$(free_port); P2=$(free_port); P3=$(free_port)
  N1=$(start "$B/examples/chat" --port "$P1" "${NODE[@]}" --redis "$URL" --node n1)
  N2=$(start "$B/examples/chat" --port "$P2" "${NODE[@]}" --redis "$URL" --node n2)
  N3=$(start "$B/examples/chat" --port "$P3" "${NODE[@]}" --redis "$URL" --node n3)
  wait_port "$P1"; wait_port "$P2"; wait_port "$P3"; sleep 1 # subscriptions made
  CLUSTER+=("$(bench --addr "127.0.0.1:$P1" --also "127.0.0.1:$P2" --also "127.0.0.1:$P3")")
  stop "$N1"; stop "$N2"; stop "$N3"
done
echo "single node (all $CONNS):   ${SINGLE[*]} deliveries/s, median $(median "${SINGLE[@]}")"
echo "3 nodes via redis:          ${CLUSTER[*]} deliveries/s, median $(median "${CLUSTER[@]}")"
stop "$R"
