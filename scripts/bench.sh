#!/usr/bin/env bash
# Benchmarks rswoole against reference peers in ONE run on this machine (2 cores, noisy):
# server processes pinned to CPU 0, the load generator to CPU 1. Prints ratios.
#
# usage: scripts/bench.sh [tcp|http|tls|h2|framed|all]   (SECS=5 CONNS=64 SIZE=64 ROUNDS=3 to change)
# BASELINE=DIR (a target/release of an older build, e.g. built from a git worktree) adds that
# build's servers to the same rounds, to compare two versions in one run.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-5}; CONNS=${CONNS:-64}; SIZE=${SIZE:-64}
[ -n "${NO_BUILD:-}" ] || cargo build --release -q --features cli --bin rswoole --examples  # NO_BUILD=1: use what is built
. scripts/bench_lib.sh
bench() { taskset -c 1 $B/rswoole bench "$@" --secs "$SECS" --conns "$CONNS" --size "$SIZE" | awk '/^result/ {for(i=1;i<=NF;i++) if ($i ~ /^rps=/) {sub("rps=","",$i); print $i}}'; }

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
if [ "$WHAT" = h2 ]; then
  # HTTP/2 hello (h2c, prior knowledge) against hyper's HTTP/2 server: h2load, CONNS
  # connections x 8 concurrent streams, ROUNDS rounds, servers alternating; medians compared.
  command -v h2load >/dev/null || { echo "h2load is not installed (apt-get install nghttp2-client)" >&2; exit 1; }
  ROUNDS=${ROUNDS:-3}
  h2_rps() { taskset -c 1 h2load -c "$CONNS" -m 8 -D "$SECS" --warm-up-time=1 "$1" | awk '/^finished in/ {for(i=1;i<=NF;i++) if ($i=="req/s,") {print int($(i-1))}}'; }
  echo "# h2c hello: h2load -c$CONNS -m8 -D$SECS, server on CPU 0, h2load on CPU 1, $ROUNDS rounds"
  declare -A TR=()
  for R in $(seq "$ROUNDS"); do
    for WHO in hyper base process; do
      P=$(free_port)
      if [ $WHO = hyper ]; then
        S=$(start $B/examples/peer_hyper_h2_hello 127.0.0.1:$P 1)
      else
        S=$(start $B/examples/http_hello --port $P --mode $WHO --worker-num 1 --reactor-num 1)
      fi
      wait_port $P
      X=$(h2_rps http://127.0.0.1:$P/); stop $S
      TR[$WHO]+="$X "
      printf "round %s %-8s %s req/s\n" "$R" "$WHO" "$X"
    done
  done
  HY=$(median ${TR[hyper]})
  echo "median hyper 1.x http2 (1 thread):  $HY req/s"
  for MODE in base process; do
    X=$(median ${TR[$MODE]})
    printf "median rswoole %-8s (1 worker):  %s req/s = %.2fx hyper\n" "$MODE" "$X" "$(echo "$X / $HY" | bc -l)"
  done
  exit 0
fi
if [ "$WHAT" = tls ]; then
  # https hello against hyper + tokio-rustls: the same certificate (ECDSA P-256, made here),
  # the same rustls provider (ring) and defaults, so the same cipher (TLS 1.3,
  # TLS_AES_256_GCM_SHA384 with wrk's OpenSSL); keep-alive, then one request per connection
  # (a full handshake each). ROUNDS rounds, servers alternating; medians compared.
  command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
  CERTS=$(mktemp -d)
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -keyout "$CERTS/key.pem" -out "$CERTS/cert.pem" 2>/dev/null
  ROUNDS=${ROUNDS:-3}
  for CLOSE in "" "Connection: close"; do
    H=(); [ -n "$CLOSE" ] && H=(-H "$CLOSE")
    echo "# https hello: wrk -t1 -c64 -d${SECS}s ${CLOSE:+(-H '$CLOSE')}, server on CPU 0, wrk on CPU 1, $ROUNDS rounds"
    declare -A TR=()
    for R in $(seq "$ROUNDS"); do
      for WHO in hyper base process; do
        P=$(free_port)
        if [ $WHO = hyper ]; then
          S=$(start $B/examples/peer_hyper_tls_hello 127.0.0.1:$P 1 "$CERTS/cert.pem" "$CERTS/key.pem")
        else
          S=$(start $B/examples/http_hello --port $P --mode $WHO --worker-num 1 --reactor-num 1 --cert "$CERTS/cert.pem" --key "$CERTS/key.pem")
        fi
        wait_port $P
        X=$(wrk_rps "${H[@]}" https://127.0.0.1:$P/); stop $S
        TR[$WHO]+="$X "
        printf "round %s %-8s %s req/s\n" "$R" "$WHO" "$X"
      done
    done
    HY=$(median ${TR[hyper]})
    echo "median hyper + tokio-rustls (1 thread):  $HY req/s"
    for MODE in base process; do
      X=$(median ${TR[$MODE]})
      printf "median rswoole %-8s (1 worker):     %s req/s = %.2fx hyper\n" "$MODE" "$X" "$(echo "$X / $HY" | bc -l)"
    done
    unset TR
  done
  N=${IDLE:-2000}
  echo "# memory per idle TLS connection ($N connections, handshake done): resident memory growth"
  P=$(free_port); S=$(start $B/examples/peer_hyper_tls_hello 127.0.0.1:$P 1 "$CERTS/cert.pem" "$CERTS/key.pem"); wait_port $P
  echo "hyper + tokio-rustls: $(python3 scripts/tls_idle_mem.py $S $P $N "$CERTS/cert.pem")"; stop $S
  P=$(free_port); S=$(start $B/examples/http_hello --port $P --mode process --worker-num 1 --reactor-num 1 --cert "$CERTS/cert.pem" --key "$CERTS/key.pem"); wait_port $P
  echo "rswoole master (process mode): $(python3 scripts/tls_idle_mem.py $S $P $N "$CERTS/cert.pem")"; stop $S
  exit 0
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
