#!/usr/bin/env bash
# Per request (issue 20): syscalls, malloc calls and server CPU of a server's whole process
# group under load, counted with `perf stat` (a uprobe on libc's malloc; run as root).
# Server on CPU 0, load on CPU 1, 1 worker, 1 reactor thread.
#
# usage: scripts/perreq.sh http|tcp hyper|tokio|base|process   (SECS=4; NO_BUILD as bench.sh)
# BUILD=DIR takes the rswoole servers from another target/release (a baseline).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench_lib.sh
WHAT=$1; WHO=$2; SECS=${SECS:-4}; BUILD=${BUILD:-$B}
LIBC=$(ldd "$B/examples/tcp_echo" | awk '/libc.so/ {print $3}')
perf probe -q -x "$LIBC" malloc >/dev/null 2>&1 || true
P=$(free_port)
case $WHAT-$WHO in
  http-hyper) S=$(start $B/examples/peer_hyper_hello 127.0.0.1:$P 1) ;;
  tcp-tokio) S=$(start $B/examples/peer_tokio_echo 127.0.0.1:$P 1) ;;
  http-*) S=$(start $BUILD/examples/http_hello --port $P --mode $WHO --worker-num 1 --reactor-num 1) ;;
  tcp-*) S=$(start $BUILD/examples/tcp_echo --port $P --mode $WHO --worker-num 1 --reactor-num 1) ;;
esac
wait_port $P
sleep 0.3
PGIDS=$(pgrep -g "$S" | paste -sd,)
OUTF=$(mktemp)
perf stat -x, -e raw_syscalls:sys_enter,probe_libc:malloc,task-clock -p "$PGIDS" -o "$OUTF" &
PF=$!
sleep 0.2
if [ "$WHAT" = http ]; then
  OUT=$(taskset -c 1 wrk -t1 -c64 -d"${SECS}s" http://127.0.0.1:$P/)
  N=$(awk '/requests in/ {print $1}' <<< "$OUT")
else
  PREFIX=(); [ "$WHO" = tokio ] || PREFIX=(--prefix "Server: ")
  OUT=$(taskset -c 1 $B/rswoole bench tcp-echo --addr 127.0.0.1:$P "${PREFIX[@]}" --secs "$SECS" --conns 64 --size 64)
  RPS=$(awk '/^result/ {for(i=1;i<=NF;i++) if ($i ~ /^rps=/) {sub("rps=","",$i); print $i}}' <<< "$OUT")
  N=$(echo "$RPS * $SECS" | bc)
fi
sleep 0.2
kill -INT $PF; wait $PF || true
stop "$S"
awk -F, -v n="$N" -v who="$WHAT-$WHO" '
  $3 == "raw_syscalls:sys_enter" {sc = $1}
  $3 == "probe_libc:malloc" {ma = $1}
  $3 == "task-clock" {ms = $1}
  END {printf "%-14s %9d ops  %.2f syscalls/op  %.2f mallocs/op  %.2f us CPU/op\n", who, n, sc / n, ma / n, ms * 1000 / n}' "$OUTF"
rm -f "$OUTF"
