#!/usr/bin/env bash
# What metrics cost the server, in instructions: counted by valgrind (cachegrind, no cache
# simulation) over every process of the server, so the figure does not move with the load of
# a shared machine the way requests/s and CPU time do (see BENCHMARKS.md, "Metrics on vs off").
#
# For each mode (base, process) and load (HTTP hello keep-alive through wrk, TCP echo through
# `rswoole bench`), with metrics off and on (--admin):
#   instructions per operation = (Ir of a run under load - Ir of an idle run of the same
#   length) / operations answered
# and, metrics on, the instructions of one scrape of /metrics (SCRAPES scrapes, idle server).
# Kernel time (syscalls) is not counted; metrics add no syscall to the request path.
#
# usage: scripts/bench_metrics_ir.sh      (SECS=6 CONNS=16 SCRAPES=20 ROUNDS=3 to change; medians)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-6}; CONNS=${CONNS:-16}; SCRAPES=${SCRAPES:-20}; ROUNDS=${ROUNDS:-3}
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
[ -n "${NO_BUILD:-}${NOBUILD:-}" ] || cargo build --release -q --features cli --bin rswoole --example http_hello --example tcp_echo
. scripts/bench_lib.sh
OUT=$(mktemp -d)

# run NAME LOAD MODE METRICS: starts the server under cachegrind, applies LOAD (http, tcp,
# idle or scrape) for SECS seconds, stops it; prints "<instructions> <operations>".
run() {
  local name=$1 load=$2 mode=$3 metrics=$4 ex=http_hello P A S N=0 extra=()
  [ "$load" = tcp ] && ex=tcp_echo
  P=$(free_port); A=127.0.0.1:$(free_port)
  [ "$metrics" = on ] && extra=(--admin "$A")
  mkdir -p "$OUT/$name"
  # The out-file goes through VALGRIND_OPTS: the server rewrites its argv area (process titles).
  S=$(VALGRIND_OPTS="--cachegrind-out-file=$OUT/$name/cg.%p --cache-sim=no" \
      start valgrind --tool=cachegrind -q "$B/examples/$ex" --port "$P" --mode "$mode" \
        --worker-num 1 --reactor-num 1 "${extra[@]}")
  for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/$P) 2>/dev/null && break; sleep 0.1; done
  [ "$metrics" = on ] && for _ in $(seq 200); do curl -sf -o /dev/null "http://$A/metrics" && break; sleep 0.1; done
  case $load in
    http) N=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" "http://127.0.0.1:$P/" | awk '/requests in/ {print $1}') ;;
    tcp) N=$(taskset -c 1 "$B/rswoole" bench tcp-echo --addr "127.0.0.1:$P" --prefix "Server: " --secs "$SECS" \
           --conns "$CONNS" --size 64 --warmup-ms 0 | awk '/^result/ {for(i=1;i<=NF;i++) if ($i ~ /^rps=/) {sub("rps=","",$i); print $i}}')
         N=$((N * SECS)) ;;
    scrape) for _ in $(seq "$SCRAPES"); do curl -sf -o /dev/null "http://$A/metrics"; done; N=$SCRAPES
            sleep "$SECS" ;;
    idle) sleep "$SECS"; [ "$metrics" = on ] && curl -sf -o /dev/null "http://$A/metrics" ;;
  esac
  kill -TERM -- "-$S" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 -- "-$S" 2>/dev/null || break; sleep 0.1; done
  echo "$(cat "$OUT/$name"/cg.* | awk '/^summary:/ {t += $2} END {printf "%d", t}') $N"
}

echo "# metrics off vs on, instructions counted by cachegrind over the whole server; wrk/rswoole bench -c$CONNS for ${SECS}s, 1 worker, 1 reactor"
for MODE in base process; do
  for LOAD in http tcp; do
    declare -A PER=()
    for M in off on; do
      ALL=""
      for R in $(seq "$ROUNDS"); do
        read -r IDLE _ < <(run "$MODE-$LOAD-$M-idle-$R" idle "$MODE" "$M")
        read -r IR N < <(run "$MODE-$LOAD-$M-$R" "$LOAD" "$MODE" "$M")
        X=$(echo "($IR - $IDLE) / $N" | bc -l); ALL+="$X "
        printf "%-8s %-5s metrics %-3s round %s %9d ops  %8.0f instructions/op\n" "$MODE" "$LOAD" "$M" "$R" "$N" "$X"
      done
      PER[$M]=$(median $ALL)
    done
    printf "%-8s %-5s median off %.0f, on %.0f instructions/op; metrics cost: %+.0f instructions/op = %+.2f%%\n" "$MODE" "$LOAD" "${PER[off]}" "${PER[on]}" \
      "$(echo "${PER[on]} - ${PER[off]}" | bc -l)" "$(echo "(${PER[on]} / ${PER[off]} - 1) * 100" | bc -l)"
    unset PER
  done
  read -r IDLE _ < <(run "$MODE-scrape-idle" idle "$MODE" on)
  read -r IR N < <(run "$MODE-scrape" scrape "$MODE" on)
  printf "%-8s one scrape of /metrics: %.0f instructions\n" "$MODE" "$(echo "($IR - $IDLE) / $N" | bc -l)"
done
rm -rf "$OUT"
