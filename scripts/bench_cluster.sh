#!/usr/bin/env bash
# Cluster broadcast benchmark (issue 17), in ONE run on this machine: a redis-server, three chat
# nodes sharing it, and one chat node alone. 900 WebSocket clients, one sender:
#   - cluster: 300 clients on each of the 3 nodes (client 0, the sender, on node 1), so two
#     thirds of the deliveries cross nodes through Redis pub/sub;
#   - single: one node holding all 900 (no Redis on the path).
# Servers and redis pinned to CPU 0, the load generator to CPU 1 (as scripts/bench_ws.sh).
# Then, alternating single / cluster again, latency (`rswoole bench ws-latency`): the sender
# sends RATE messages/s stamped with their send time, every client records its delivery
# latency (p50/p99 over all deliveries); and the cross-node push round trip (`rswoole bench
# ws-push-rtt`): PAIRS clients on n1 each push to a partner on n3 through the cluster, which
# pushes back (plus idle clients up to CONNS over the three nodes). The CPU used meanwhile by
# redis-server and by the nodes is printed as a share of one core.
#
# usage: scripts/bench_cluster.sh      SECS=5 CONNS=900 WINDOW=8 SIZE=64 ROUNDS=3 RATE=200 PAIRS=20
#        ONLY=latency scripts/bench_cluster.sh   (skip the throughput rounds)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-5}; CONNS=${CONNS:-900}; WINDOW=${WINDOW:-8}; SIZE=${SIZE:-64}; ROUNDS=${ROUNDS:-3}
RATE=${RATE:-200}; PAIRS=${PAIRS:-20}; ONLY=${ONLY:-all}
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
cluster_up() { # starts n1..n3 on P1..P3
  P1=$(free_port); P2=$(free_port); P3=$(free_port)
  N1=$(start "$B/examples/chat" --port "$P1" "${NODE[@]}" --redis "$URL" --node n1)
  N2=$(start "$B/examples/chat" --port "$P2" "${NODE[@]}" --redis "$URL" --node n2)
  N3=$(start "$B/examples/chat" --port "$P3" "${NODE[@]}" --redis "$URL" --node n3)
  wait_port "$P1"; wait_port "$P2"; wait_port "$P3"; sleep 1; } # subscriptions made
cluster_down() { stop "$N1"; stop "$N2"; stop "$N3"; }
share() { awk -v t="$1" -v s="$2" -v k="$TICK" 'BEGIN {printf "%.0f%%", 100 * t / k / s}'; }
field() { awk -v f="$1" '/^result/ {for(i=1;i<=NF;i++) if (index($i, f"=") == 1) {sub(f"=","",$i); print $i}}'; }
if [ "$ONLY" != latency ]; then
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
fi
echo "# ws broadcast latency, $CONNS clients, 1 sender at $RATE msg/s, $SECS s, $ROUNDS rounds; load: $(cut -d' ' -f1-3 /proc/loadavg)"
lat() { taskset -c 1 "$B/rswoole" bench ws-latency --conns "$CONNS" --rate "$RATE" --secs "$SECS" "$@"; }
for _ in $(seq "$ROUNDS"); do
  P=$(free_port); S=$(start "$B/examples/chat" --port "$P" "${NODE[@]}"); wait_port "$P"
  out=$(lat --addr "127.0.0.1:$P"); stop "$S"
  echo "single node: p50 $(echo "$out" | field p50_us) us, p99 $(echo "$out" | field p99_us) us, missing $(echo "$out" | field missing)"
  cluster_up
  r0=$(pg_ticks "$R"); n0=$(( $(pg_ticks "$N1") + $(pg_ticks "$N2") + $(pg_ticks "$N3") )); t0=$(date +%s.%N)
  out=$(lat --addr "127.0.0.1:$P1" --also "127.0.0.1:$P2" --also "127.0.0.1:$P3")
  t1=$(date +%s.%N); r1=$(pg_ticks "$R"); n1=$(( $(pg_ticks "$N1") + $(pg_ticks "$N2") + $(pg_ticks "$N3") ))
  el=$(echo "$t1 - $t0" | bc)
  echo "3 nodes:     p50 $(echo "$out" | field p50_us) us, p99 $(echo "$out" | field p99_us) us, missing $(echo "$out" | field missing); redis-server CPU $(share $((r1 - r0)) "$el"), nodes CPU $(share $((n1 - n0)) "$el") of one core"
  echo "$out" | grep '^ws-latency: clients of' | sed 's/^/    /'
  IDLE=$(( CONNS - 2 * PAIRS ))
  r0=$(pg_ticks "$R"); t0=$(date +%s.%N)
  out=$(taskset -c 1 "$B/rswoole" bench ws-push-rtt --addr "127.0.0.1:$P1" --peer "127.0.0.1:$P3" \
    --also "127.0.0.1:$P2" --pairs "$PAIRS" --idle "$IDLE" --secs "$SECS")
  t1=$(date +%s.%N); r1=$(pg_ticks "$R"); el=$(echo "$t1 - $t0" | bc)
  echo "push n1->n3->n1 ($PAIRS pairs, $IDLE idle): $(echo "$out" | field rps) round trips/s, p50 $(echo "$out" | field p50_us) us, p99 $(echo "$out" | field p99_us) us; n1's answer p50 $(echo "$out" | field ack_p50_us) us, p99 $(echo "$out" | field ack_p99_us) us; redis-server CPU $(share $((r1 - r0)) "$el")"
  cluster_down
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
stop "$R"
