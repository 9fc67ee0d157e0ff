#!/usr/bin/env bash
# A/B/C of tcp_echo builds in one run, alternating, as `scripts/bench.sh cpu` (WHAT=tcp) does:
# server pinned to CPU 0, load (`rswoole bench tcp-echo`) to CPU 1, server CPU per echo.
# usage: BUILDS="name=DIR name2=DIR2 ..." ROUNDS=5 SECS=4 MODES="base process" scripts/ab_tcp.sh
#   each DIR holds examples/tcp_echo (a target/release, or binaries copied aside); tokio and the
#   load generator come from this checkout's release build ($CARGO_TARGET_DIR/release: rswoole, peer_tokio_echo).
#   `scripts/bench.sh cpu` with BASELINE= compares one older build; this compares any number.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-4}; CONNS=${CONNS:-64}; SIZE=${SIZE:-64}; ROUNDS=${ROUNDS:-5}
. scripts/bench_lib.sh
LOADGEN=${RSWOOLE:-$B/rswoole}
echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A US=() TR=()
WHOS="tokio"
for m in ${MODES:-base process}; do for b in $BUILDS; do WHOS+=" $m:${b%%=*}"; done; done
for R in $(seq "$ROUNDS"); do
  for WHO in $WHOS; do
    P=$(free_port)
    if [ $WHO = tokio ]; then S=$(start $B/examples/peer_tokio_echo 127.0.0.1:$P 1); PF=""
    else
      m=${WHO%%:*}; n=${WHO#*:}; D=""
      for b in $BUILDS; do [ "${b%%=*}" = "$n" ] && D=${b#*=}; done
      S=$(start $D/examples/tcp_echo --port $P --mode $m --worker-num 1 --reactor-num 1); PF="Server: "
    fi
    wait_port $P
    read -r X U < <(measure $S load_of tcp $P "$PF")
    TR[$WHO]+="$X "; US[$WHO]+="$U "
    printf "round %s %-18s %8s op/s  %6.2f us CPU/op  load %s\n" "$R" "$WHO" "$X" "$U" "$(cut -d' ' -f1 /proc/loadavg)"
  done
done
PU=$(median ${US[tokio]})
for WHO in $WHOS; do
  U=$(median ${US[$WHO]}); X=$(median ${TR[$WHO]})
  printf "median %-18s %8s op/s  %6.2f us CPU/op = %.3fx tokio   (rounds: %s)\n" "$WHO" "$X" "$U" "$(echo "$U / $PU" | bc -l)" "${US[$WHO]}"
done
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
