#!/usr/bin/env bash
# Benchmarks rswoole against reference peers in ONE run on this machine (2 cores, noisy):
# server processes pinned to CPU 0, the load generator to CPU 1. Prints ratios.
#
# usage: scripts/bench.sh [tcp|http|framed|metrics|all]   (SECS=5 CONNS=64 SIZE=64 ROUNDS=3 to change)
# BASELINE=DIR (a target/release of an older build, e.g. built from a git worktree) adds that
# build's servers to the same rounds, to compare two versions in one run.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-5}; CONNS=${CONNS:-64}; SIZE=${SIZE:-64}
[ -n "${NOBUILD:-}" ] || cargo build --release -q --features cli --bin rswoole --examples  # NOBUILD=1: use the binaries as built
. scripts/bench_lib.sh
bench() { taskset -c 1 $B/rswoole bench "$@" --secs "$SECS" --conns "$CONNS" --size "$SIZE" | awk '/^result/ {for(i=1;i<=NF;i++) if ($i ~ /^rps=/) {sub("rps=","",$i); print $i}}'; }

# Metrics on (--admin, scraped every second as Prometheus would) vs off, same build, same
# run, alternated ROUNDS times: HTTP hello (wrk) and TCP echo, Process mode, 2 workers.
# usage: scripts/bench.sh metrics   (runs only this part)
if [[ "${1:-}" == metrics ]]; then
  ROUNDS=${ROUNDS:-3}
  command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
  wrk_rps() { taskset -c 1 wrk -t1 -c64 -d"${SECS}s" "$@" | awk '/Requests\/sec/ {print int($2)}'; }
  scraper() { while sleep 1; do curl -s -o /dev/null "http://$1/metrics" || true; done; }
  echo "# metrics off vs on: http_hello (wrk -t1 -c64 -d${SECS}s) and tcp_echo ($CONNS conns, $SIZE B), process mode, 2 workers, reactor_num 1, $ROUNDS rounds"
  declare -A M=()
  for R in $(seq "$ROUNDS"); do
    for ON in off on; do
      for WHAT in http tcp; do
        P=$(free_port); EXTRA=(); SC=""
        if [ $ON = on ]; then A=127.0.0.1:$(free_port); EXTRA=(--admin "$A"); fi
        if [ $WHAT = http ]; then
          S=$(start $B/examples/http_hello --port $P --worker-num 2 --reactor-num 1 "${EXTRA[@]}"); wait_port $P
          [ $ON = on ] && { scraper "$A" & SC=$!; }
          X=$(wrk_rps http://127.0.0.1:$P/)
        else
          S=$(start $B/examples/tcp_echo --port $P --worker-num 2 --reactor-num 1 "${EXTRA[@]}"); wait_port $P
          [ $ON = on ] && { scraper "$A" & SC=$!; }
          X=$(bench tcp-echo --addr 127.0.0.1:$P --prefix "Server: ")
        fi
        [ -n "$SC" ] && kill "$SC" 2>/dev/null; stop $S
        M[$WHAT-$ON]+="$X "
        printf "round %s %-4s metrics %-3s %s/s\n" "$R" "$WHAT" "$ON" "$X"
      done
    done
  done
  for WHAT in http tcp; do
    OFF=$(median ${M[$WHAT-off]}); ON=$(median ${M[$WHAT-on]})
    printf "median %-4s metrics off %s/s, on %s/s = %.3fx\n" "$WHAT" "$OFF" "$ON" "$(echo "$ON / $OFF" | bc -l)"
  done
  exit 0
fi

if [[ "${1:-}" != framed ]]; then
WHAT=${1:-all}
wrk_rps() { taskset -c 1 wrk -t1 -c64 -d"${SECS}s" "$@" | awk '/Requests\/sec/ {print int($2)}'; }
if [ "$WHAT" = http ] || [ "$WHAT" = all ]; then
  command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
  for CLOSE in "" "Connection: close"; do
    H=(); [ -n "$CLOSE" ] && H=(-H "$CLOSE")
    echo "# http hello: wrk -t1 -c64 -d${SECS}s ${CLOSE:+(-H '$CLOSE')}, server on CPU 0, wrk on CPU 1"
    P=$(free_port); S=$(start $B/examples/peer_hyper_hello 127.0.0.1:$P 1); wait_port $P
    HY=$(wrk_rps "${H[@]}" http://127.0.0.1:$P/); stop $S
    echo "hyper 1.x (1 thread):               $HY req/s"
    for BUILD in $B ${BASELINE:-}; do
    TAG=""; [ "$BUILD" != "$B" ] && TAG=" (baseline)"
    for MODE in base process; do for W in 1 2; do
      P=$(free_port); S=$(start $BUILD/examples/http_hello --port $P --mode $MODE --worker-num $W --reactor-num 1); wait_port $P
      R=$(wrk_rps "${H[@]}" http://127.0.0.1:$P/); stop $S
      printf "rswoole %-8s worker_num=%s%s:     %s req/s = %.2fx hyper\n" "$MODE" "$W" "$TAG" "$R" "$(echo "$R / $HY" | bc -l)"
    done; done; done
  done
fi
[ "$WHAT" = tcp ] || [ "$WHAT" = all ] || exit 0
# The three servers take turns, ROUNDS times (the machine is shared and noisy); medians compared.
ROUNDS=${ROUNDS:-3}
echo "# tcp echo: $CONNS conns, $SIZE B, $SECS s, server on CPU 0, client on CPU 1, $ROUNDS rounds"
declare -A RT=()
for R in $(seq "$ROUNDS"); do
  for WHO in tokio base process ${BASELINE:+base-baseline process-baseline}; do
    P=$(free_port)
    if [ $WHO = tokio ]; then
      S=$(start $B/examples/peer_tokio_echo 127.0.0.1:$P 1); wait_port $P
      X=$(bench tcp-echo --addr 127.0.0.1:$P)
    else
      BUILD=$B; [[ $WHO == *-baseline ]] && BUILD=$BASELINE
      S=$(start $BUILD/examples/tcp_echo --port $P --mode ${WHO%-baseline} --worker-num 2 --reactor-num 1); wait_port $P
      X=$(bench tcp-echo --addr 127.0.0.1:$P --prefix "Server: ")
    fi
    stop $S; RT[$WHO]+="$X "
    printf "round %s %-8s %s rt/s\n" "$R" "$WHO" "$X"
  done
done
TOKIO=$(median ${RT[tokio]})
echo "median tokio echo (1 thread):            $TOKIO rt/s"
for MODE in base process ${BASELINE:+base-baseline process-baseline}; do
  X=$(median ${RT[$MODE]})
  printf "median rswoole %-8s (2 workers):     %s rt/s  = %.2fx tokio\n" "$MODE" "$X" "$(echo "$X / $TOKIO" | bc -l)"
done
fi

# Length-framed echo (framed_echo --framing length: 4-byte big-endian length + body, reply framed
# the same way) against unframed echo (tcp_echo), both Base mode, 2 workers, alternated A/B/A/B.
# usage: scripts/bench.sh framed   (runs only this part)
if [[ "${1:-}" == framed || -z "${1:-}" ]]; then
  echo "# framed vs unframed echo, Base mode: $CONNS conns, $SIZE B body, $SECS s"
  RAW=(); LEN=()
  for _ in 1 2; do
    P=$(free_port); S=$(start $B/examples/tcp_echo --port $P --mode base --worker-num 2); wait_port $P
    RAW+=("$(bench tcp-echo --addr 127.0.0.1:$P --prefix "Server: ")"); stop $S
    P=$(free_port); S=$(start $B/examples/framed_echo --port $P --mode base --worker-num 2 --framing length); wait_port $P
    LEN+=("$(bench tcp-echo --addr 127.0.0.1:$P --prefix "Server: " --framing length)"); stop $S
  done
  R=$(( (RAW[0] + RAW[1]) / 2 )); L=$(( (LEN[0] + LEN[1]) / 2 ))
  echo "unframed echo (base):  ${RAW[*]} rt/s, mean $R"
  printf "length-framed (base):  %s rt/s, mean %s = %.2fx unframed\n" "${LEN[*]}" "$L" "$(echo "$L / $R" | bc -l)"
fi
