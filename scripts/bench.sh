#!/usr/bin/env bash
# Benchmarks rswoole against reference peers in ONE run on this machine (2 cores, noisy):
# server processes pinned to CPU 0, the load generator to CPU 1. Prints ratios.
#
# usage: scripts/bench.sh [tcp|http|tls|h2|cpu|framed|metrics|axum|idle|burst|all]   (SECS=5 CONNS=64 SIZE=64 ROUNDS=3 to change)
# BASELINE=DIR (a target/release of an older build, e.g. built from a git worktree) adds that
# build's servers to the same rounds, to compare two versions in one run.
# `axum` (not part of `all`): examples/axum_app's router on rswoole against the same router
# under axum::serve (benches/peers/axum_hello.rs) and the native API (examples/http_hello).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-5}; CONNS=${CONNS:-64}; SIZE=${SIZE:-64}
if [ -n "${NO_BUILD:-}${NOBUILD:-}" ]; then :  # NO_BUILD=1: use what is built
elif [ "${1:-}" = axum ]; then
  cargo build --release -q --features cli --bin rswoole --example axum_app --example http_hello --example peer_axum_hello
else
  cargo build --release -q --features cli --bin rswoole --examples
fi
. scripts/bench_lib.sh

if [ "${1:-}" = axum ]; then
  command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
  # The five servers take turns, ROUNDS times (the machine is shared and noisy); medians and
  # the spread (min-max) are reported. CPU = utime+stime of the server's whole process group
  # (master, manager, workers, task workers) during the wrk run, per request answered.
  ROUNDS=${ROUNDS:-3}
  URL_PATH=/hello/world
  echo "# axum hello: GET $URL_PATH, wrk -t1 -c64 -d${SECS}s on CPU 1, server on CPU 0, $ROUNDS rounds"
  declare -A RPS=() US=()
  WHOS="axum-serve axum-base axum-process native-base native-process"
  for R in $(seq "$ROUNDS"); do
    for WHO in $WHOS; do
      P=$(free_port)
      case $WHO in
        axum-serve) S=$(start $B/examples/peer_axum_hello 127.0.0.1:$P) ;;
        axum-*) S=$(start $B/examples/axum_app --port $P --mode ${WHO#axum-} --worker-num 1 --reactor-num 1) ;;
        native-*) S=$(start $B/examples/http_hello --port $P --mode ${WHO#native-} --worker-num 1 --reactor-num 1) ;;
      esac
      wait_port $P
      C0=$(pg_ticks $S)
      OUT=$(taskset -c 1 wrk -t1 -c64 -d"${SECS}s" http://127.0.0.1:$P$URL_PATH)
      C1=$(pg_ticks $S); stop $S
      N=$(awk '/requests in/ {print $1}' <<< "$OUT"); X=$(awk '/Requests\/sec/ {print int($2)}' <<< "$OUT")
      BAD=$(awk '/Non-2xx|Socket errors/' <<< "$OUT")
      [ -n "$BAD" ] && echo "round $R $WHO: $BAD" >&2
      U=$(echo "($C1 - $C0) * 1000000 / $TICK / $N" | bc -l)
      RPS[$WHO]+="$X "; US[$WHO]+="$(printf %.2f "$U") "
      printf "round %s %-14s %8s req/s  %6.2f us CPU/request\n" "$R" "$WHO" "$X" "$U"
    done
  done
  spread() { printf '%s\n' "$@" | sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END {printf "%s-%s", lo, hi}'; }
  A=$(median ${RPS[axum-serve]}); AU=$(median ${US[axum-serve]})
  for WHO in $WHOS; do
    X=$(median ${RPS[$WHO]}); U=$(median ${US[$WHO]})
    printf "median %-14s %8s req/s (%s) = %.2fx axum::serve; %s us CPU/request (%s) = %.2fx axum::serve's\n" \
      "$WHO" "$X" "$(spread ${RPS[$WHO]})" "$(echo "$X / $A" | bc -l)" "$U" "$(spread ${US[$WHO]})" "$(echo "$U / $AU" | bc -l)"
  done
  exit 0
fi
# Memory per idle connection (issue 20): IDLE connections (default 10,000) of each protocol,
# each used once (an echo, a keep-alive request, a WebSocket handshake and an echoed message),
# then idle; the growth of the process that owns them (PSS and RSS), and apart what the kernel
# holds for both ends (scripts/idle_mem.py). Both modes, 1 worker; tokio and hyper for scale.
# usage: IDLE=10000 scripts/bench.sh idle   (BASELINE=DIR adds an older build's servers)
# More connections than one process may open (the open-files hard limit, e.g. IDLE=50000
# against 20,000): the clients are several processes on source addresses 127.0.0.1, .2, ...
# (scripts/idle_mem.py), and the server Base mode with WORKERS workers (default: enough for
# 18,000 connections each, plus one for SO_REUSEPORT's uneven hash), the growth summed over
# them; Process mode (one master owns every connection) and the peers (one process) are
# skipped past the limit.
if [ "${1:-}" = idle ]; then
  N=${IDLE:-10000}
  # Each end needs N descriptors; raising the hard limit needs root (else: the hard limit).
  ulimit -n $((N + 1000)) 2>/dev/null || ulimit -n "$(ulimit -Hn)"
  ONE=1; W=1
  if [ $((N + 1000)) -gt "$(ulimit -Hn)" ]; then
    ONE=0; W=${WORKERS:-$(( (N + 17999) / 18000 + 1 ))}
    echo "# $N connections > the open-files limit $(ulimit -Hn): Base mode with $W workers only"
  fi
  echo "# memory per idle connection: $N connections; owner process growth, kernel apart"
  # The peers when built (PEERS=0 skips them).
  if [ "${PEERS:-1}" = 1 ] && [ $ONE = 1 ] && [ -x $B/examples/peer_tokio_echo ]; then
    P=$(free_port); S=$(start $B/examples/peer_tokio_echo 127.0.0.1:$P 1); wait_port $P
    echo "tokio echo       $(python3 scripts/idle_mem.py $S $P tcp $N)"; stop $S
  fi
  if [ "${PEERS:-1}" = 1 ] && [ $ONE = 1 ] && [ -x $B/examples/peer_hyper_hello ]; then
    P=$(free_port); S=$(start $B/examples/peer_hyper_hello 127.0.0.1:$P 1); wait_port $P
    echo "hyper 1.x        $(python3 scripts/idle_mem.py $S $P http $N)"; stop $S
  fi
  # This build parked (the default: idle connections wait without a task after 1 s) and with
  # --no-park (a task per connection, as before issue 20's parking); BASELINE's as it is.
  # NOPARK=0 skips the --no-park runs; PROTOS="tcp http ws" / MODES="base process" to pick.
  NP="$B --no-park"; [ "${NOPARK:-1}" = 0 ] && NP=""
  for RUN in "$B park" ${NP:+"$NP"} ${BASELINE:+"$BASELINE baseline"}; do
    set -- $RUN; BUILD=$1; TAG=$2; EXTRA=""; [ "$TAG" = --no-park ] && EXTRA=--no-park
    for PROTO in ${PROTOS:-tcp http ws}; do for MODE in ${MODES:-base process}; do
      [ $ONE = 0 ] && [ "$MODE" = process ] && { echo "rswoole process $TAG: skipped ($N > one process's open-files limit)"; continue; }
      case $PROTO in tcp) EX=tcp_echo ;; http) EX=http_hello ;; *) EX=ws_echo ;; esac
      P=$(free_port); S=$(start $BUILD/examples/$EX --port $P --mode $MODE --worker-num $W --reactor-num 1 $EXTRA); wait_port $P; [ "$W" = 1 ] || sleep 1
      printf "rswoole %-7s %-9s %s\n" "$MODE" "$TAG" "$(python3 scripts/idle_mem.py $S $P $PROTO $N)"; stop $S
    done; done
  done
  exit 0
fi
# Memory after bursts (issue 20): 15,000 connections opened, used once and closed (tcp_echo),
# and one 60 MiB WebSocket message echoed (ws_echo), both modes, 1 worker, 1 reactor thread;
# RSS of every process of the server idle / peak / SETTLE s after (scripts/burst_mem.py).
# usage: SETTLE=3 BURST_CONNS=15000 BURST_MIB=60 scripts/bench.sh burst
if [ "${1:-}" = burst ]; then
  ulimit -n "$(ulimit -Hn)"
  for MODE in ${MODES:-base process}; do
    for W in "tcp_echo conns ${BURST_CONNS:-15000}" "ws_echo ws ${BURST_MIB:-60}"; do
      set -- $W
      P=$(free_port); S=$(start $B/examples/$1 --port $P --mode $MODE --worker-num 1 --reactor-num 1); wait_port $P
      echo "# $1 $MODE: $2 $3"; python3 scripts/burst_mem.py $S $P $2 $3; stop $S
    done
  done
  exit 0
fi
# Server CPU per operation (issue 20's table): HTTP hello keep-alive (wrk), TCP echo and
# WebSocket echo (`rswoole bench`, CONNS connections, SIZE bytes), each against its raw peer
# (hyper, tokio, tokio-tungstenite; 1 thread) and rswoole Base / Process (1 worker, 1 reactor
# thread). Servers alternate, ROUNDS rounds; CPU = utime+stime of the server's whole process
# group during the run, per operation; medians and their ratio to the peer's.
# usage: scripts/bench.sh cpu   (WHAT="http tcp ws" to pick; BASELINE=DIR adds an older build;
#   SWOOLE=/path/to/swoole.so adds Swoole's Base and Process servers, benches/peers/swoole/*.php,
#   run by `php` with that extension: Swoole has no Debian package, build it from swoole-src
#   with `phpize && ./configure --enable-swoole && make` after `apt-get install php-cli php-dev`)
if [ "${1:-}" = cpu ]; then
  SW=""; [ -n "${SWOOLE:-}" ] && SW="swoole-base swoole-process"
  command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
  ROUNDS=${ROUNDS:-3}
  echo "# server CPU per operation: $CONNS conns, ${SECS}s runs, server on CPU 0, load on CPU 1, $ROUNDS rounds"
  echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  for PROTO in ${WHAT:-http tcp ws}; do
    case $PROTO in
      http) PEER="peer_hyper_hello"; PEERNAME=hyper; EX=http_hello; PREFIX="" ;;
      tcp) PEER="peer_tokio_echo"; PEERNAME=tokio; EX=tcp_echo; PREFIX="Server: " ;;
      ws) PEER="peer_tungstenite_echo"; PEERNAME=tokio-tungstenite; EX=ws_echo; PREFIX="" ;;
    esac
    declare -A TR=() US=()
    for R in $(seq "$ROUNDS"); do
      for WHO in peer base process $SW ${BASELINE:+base-baseline process-baseline}; do
        P=$(free_port); BUILD=$B; [[ $WHO == *-baseline ]] && BUILD=$BASELINE
        if [ $WHO = peer ]; then
          S=$(start $B/examples/$PEER 127.0.0.1:$P 1); PF=""
        elif [[ $WHO == swoole-* ]]; then
          S=$(start php -d extension="$SWOOLE" benches/peers/swoole/$EX.php $P ${WHO#swoole-}); PF=$PREFIX
        else
          S=$(start $BUILD/examples/$EX --port $P --mode ${WHO%-baseline} --worker-num 1 --reactor-num 1); PF=$PREFIX
        fi
        wait_port $P
        read -r X U < <(measure $S load_of $PROTO $P "$PF")
        TR[$WHO]+="$X "; US[$WHO]+="$U "
        printf "round %s %-4s %-16s %8s op/s  %6.2f us CPU/op\n" "$R" "$PROTO" "$WHO" "$X" "$U"
      done
    done
    PX=$(median ${TR[peer]}); PU=$(median ${US[peer]})
    printf "median %-4s %-17s %8s op/s, %s us CPU/op\n" "$PROTO" "$PEERNAME" "$PX" "$PU"
    for WHO in base process $SW ${BASELINE:+base-baseline process-baseline}; do
      X=$(median ${TR[$WHO]}); U=$(median ${US[$WHO]}); N=$WHO; [[ $WHO == swoole-* ]] || N=rswoole-$WHO
      printf "median %-4s %-17s %8s op/s = %.2fx %s; %s us CPU/op = %.2fx %s's\n" \
        "$PROTO" "$N" "$X" "$(echo "$X / $PX" | bc -l)" "$PEERNAME" "$U" "$(echo "$U / $PU" | bc -l)" "$PEERNAME"
    done
    unset TR US
  done
  echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
  exit 0
fi
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
  declare -A M=() MU=()
  for R in $(seq "$ROUNDS"); do
    for ON in off on; do
      for WHAT in http tcp; do
        P=$(free_port); EXTRA=(); SC=""
        if [ $ON = on ]; then A=127.0.0.1:$(free_port); EXTRA=(--admin "$A"); fi
        if [ $WHAT = http ]; then
          S=$(start $B/examples/http_hello --port $P --worker-num 2 --reactor-num 1 "${EXTRA[@]}"); wait_port $P
          [ $ON = on ] && { scraper "$A" & SC=$!; }
          C0=$(pg_ticks $S)
          X=$(wrk_rps http://127.0.0.1:$P/)
        else
          S=$(start $B/examples/tcp_echo --port $P --worker-num 2 --reactor-num 1 "${EXTRA[@]}"); wait_port $P
          [ $ON = on ] && { scraper "$A" & SC=$!; }
          C0=$(pg_ticks $S)
          X=$(bench tcp-echo --addr 127.0.0.1:$P --prefix "Server: ")
        fi
        C1=$(pg_ticks $S)
        [ -n "$SC" ] && kill "$SC" 2>/dev/null; stop $S
        U=$(echo "($C1 - $C0) * 1000000 / $TICK / ($X * $SECS)" | bc -l)
        M[$WHAT-$ON]+="$X "; MU[$WHAT-$ON]+="$(printf %.3f "$U") "
        printf "round %s %-4s metrics %-3s %s/s  %.2f us server CPU/op\n" "$R" "$WHAT" "$ON" "$X" "$U"
      done
    done
  done
  for WHAT in http tcp; do
    OFF=$(median ${M[$WHAT-off]}); ON=$(median ${M[$WHAT-on]})
    printf "median %-4s metrics off %s/s, on %s/s = %.3fx\n" "$WHAT" "$OFF" "$ON" "$(echo "$ON / $OFF" | bc -l)"
    UOFF=$(median ${MU[$WHAT-off]}); UON=$(median ${MU[$WHAT-on]})
    printf "median %-4s server CPU/op off %s us, on %s us = %.3fx (cost of metrics: %+.1f%%)\n" "$WHAT" "$UOFF" "$UON" \
      "$(echo "$UON / $UOFF" | bc -l)" "$(echo "($UON / $UOFF - 1) * 100" | bc -l)"
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
if [ "$WHAT" = h2 ]; then
  # HTTP/2 hello (h2c, prior knowledge) against hyper's HTTP/2 server: h2load, CONNS
  # connections x 8 concurrent streams, ROUNDS rounds, servers alternating; medians compared.
  # CPU = utime+stime of the server's whole process group during the h2load run, per
  # request answered; the load average is printed before and after (the machine is shared).
  # BASELINE=DIR adds that build's http_hello (base-baseline, process-baseline) to the rounds.
  command -v h2load >/dev/null || { echo "h2load is not installed (apt-get install nghttp2-client)" >&2; exit 1; }
  ROUNDS=${ROUNDS:-3}
  echo "# h2c hello: h2load -c$CONNS -m8 -D$SECS, server on CPU 0, h2load on CPU 1, $ROUNDS rounds"
  echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  declare -A TR=() US=()
  for R in $(seq "$ROUNDS"); do
    for WHO in hyper base process ${BASELINE:+base-baseline process-baseline}; do
      P=$(free_port)
      BUILD=$B; [[ $WHO == *-baseline ]] && BUILD=$BASELINE
      if [ $WHO = hyper ]; then
        S=$(start $B/examples/peer_hyper_h2_hello 127.0.0.1:$P 1)
      else
        S=$(start $BUILD/examples/http_hello --port $P --mode ${WHO%-baseline} --worker-num 1 --reactor-num 1)
      fi
      wait_port $P
      C0=$(pg_ticks $S)
      OUT=$(taskset -c 1 h2load -c "$CONNS" -m 8 -D "$SECS" --warm-up-time=1 http://127.0.0.1:$P/)
      C1=$(pg_ticks $S); stop $S
      X=$(awk '/^finished in/ {for(i=1;i<=NF;i++) if ($i=="req/s,") {print int($(i-1))}}' <<< "$OUT")
      N=$(awk '/^requests:/ {print $8}' <<< "$OUT")
      FAILED=$(awk '/^requests:/ {print $10}' <<< "$OUT")
      [ "${FAILED:-0}" != 0 ] && echo "round $R $WHO: $FAILED requests failed" >&2
      U=$(echo "($C1 - $C0) * 1000000 / $TICK / $N" | bc -l)
      TR[$WHO]+="$X "; US[$WHO]+="$(printf %.2f "$U") "
      printf "round %s %-8s %8s req/s  %6.2f us CPU/request\n" "$R" "$WHO" "$X" "$U"
    done
  done
  HY=$(median ${TR[hyper]}); HU=$(median ${US[hyper]})
  echo "median hyper 1.x http2 (1 thread):  $HY req/s, $HU us CPU/request"
  for MODE in base process ${BASELINE:+base-baseline process-baseline}; do
    X=$(median ${TR[$MODE]}); U=$(median ${US[$MODE]})
    printf "median rswoole %-8s (1 worker):  %s req/s = %.2fx hyper; %s us CPU/request = %.2fx hyper's\n" \
      "$MODE" "$X" "$(echo "$X / $HY" | bc -l)" "$U" "$(echo "$U / $HU" | bc -l)"
  done
  echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
  exit 0
fi
if [ "$WHAT" = tls ]; then
  # https hello against hyper + tokio-rustls: the same certificate (ECDSA P-256, made here),
  # the same rustls provider (ring) and defaults, so the same cipher (TLS 1.3,
  # TLS_AES_256_GCM_SHA384 with wrk's OpenSSL); keep-alive, then one request per connection
  # (a full handshake each). ROUNDS rounds, servers alternating; medians compared.
  # CPU = utime+stime of the server's whole process group during the wrk run, per request.
  command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
  CERTS=$(mktemp -d)
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -keyout "$CERTS/key.pem" -out "$CERTS/cert.pem" 2>/dev/null
  ROUNDS=${ROUNDS:-3}
  for CLOSE in "" "Connection: close"; do
    H=(); [ -n "$CLOSE" ] && H=(-H "$CLOSE")
    echo "# https hello: wrk -t1 -c64 -d${SECS}s ${CLOSE:+(-H '$CLOSE')}, server on CPU 0, wrk on CPU 1, $ROUNDS rounds"
    echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
    declare -A TR=() US=()
    for R in $(seq "$ROUNDS"); do
      for WHO in hyper base process; do
        P=$(free_port)
        if [ $WHO = hyper ]; then
          S=$(start $B/examples/peer_hyper_tls_hello 127.0.0.1:$P 1 "$CERTS/cert.pem" "$CERTS/key.pem")
        else
          S=$(start $B/examples/http_hello --port $P --mode $WHO --worker-num 1 --reactor-num 1 --cert "$CERTS/cert.pem" --key "$CERTS/key.pem")
        fi
        wait_port $P
        C0=$(pg_ticks $S)
        X=$(wrk_rps "${H[@]}" https://127.0.0.1:$P/)
        C1=$(pg_ticks $S); stop $S
        U=$(echo "($C1 - $C0) * 1000000 / $TICK / ($X * $SECS)" | bc -l)
        TR[$WHO]+="$X "; US[$WHO]+="$(printf %.2f "$U") "
        printf "round %s %-8s %s req/s  %6.2f us CPU/request\n" "$R" "$WHO" "$X" "$U"
      done
    done
    HY=$(median ${TR[hyper]}); HU=$(median ${US[hyper]})
    echo "median hyper + tokio-rustls (1 thread):  $HY req/s, $HU us CPU/request"
    for MODE in base process; do
      X=$(median ${TR[$MODE]}); U=$(median ${US[$MODE]})
      printf "median rswoole %-8s (1 worker):     %s req/s = %.2fx hyper; %s us CPU/request = %.2fx hyper's\n" \
        "$MODE" "$X" "$(echo "$X / $HY" | bc -l)" "$U" "$(echo "$U / $HU" | bc -l)"
    done
    echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
    unset TR US
  done
  N=${IDLE:-2000}
  echo "# memory per idle TLS connection ($N connections, handshake done): resident memory growth"
  P=$(free_port); S=$(start $B/examples/peer_hyper_tls_hello 127.0.0.1:$P 1 "$CERTS/cert.pem" "$CERTS/key.pem"); wait_port $P
  echo "hyper + tokio-rustls: $(python3 scripts/tls_idle_mem.py $S $P $N "$CERTS/cert.pem")"; stop $S
  P=$(free_port); S=$(start $B/examples/http_hello --port $P --mode process --worker-num 1 --reactor-num 1 --cert "$CERTS/cert.pem" --key "$CERTS/key.pem"); wait_port $P
  echo "rswoole master (process mode): $(python3 scripts/tls_idle_mem.py $S $P $N "$CERTS/cert.pem")"; stop $S
  # Base mode: the one worker accepts and holds the connections (found by its process title).
  P=$(free_port); S=$(start $B/examples/http_hello --port $P --mode base --worker-num 1 --reactor-num 1 --cert "$CERTS/cert.pem" --key "$CERTS/key.pem"); wait_port $P
  W=$(pgrep -g "$S" -f '^rswoole: worker 0' | head -1)
  echo "rswoole worker (base mode): $(python3 scripts/tls_idle_mem.py $W $P $N "$CERTS/cert.pem")"; stop $S
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
