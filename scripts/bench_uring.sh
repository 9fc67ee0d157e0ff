#!/usr/bin/env bash
# The io_uring trial (issue 20): one-thread io_uring loops (benches/peers/uring_loop.rs:
# multishot accept + multishot recv with a provided-buffer ring, batched submissions) against
# tokio's epoll (peer_tokio_echo), hyper (peer_hyper_hello), a plain epoll loop and rswoole's Base mode, in ONE
# run on this machine: every server pinned to CPU 0, the load generator to CPU 1, the servers
# taking turns ROUNDS times. For each: requests/s and the server's CPU (user+system of its
# whole process group, from /proc) per request, i.e. requests per CPU-second; medians.
# STRACE=1 adds one round per server under `strace -c -f` (syscalls per request; strace slows
# the server, so only the counts mean something there).
#
# usage: scripts/bench_uring.sh [echo|http|all]   (SECS=4 CONNS=64 SIZE=64 ROUNDS=5 STRACE=1 (ROUNDS=0: only that);
#        ONLY="tokio uring-echo ..." keeps those rows; NO_BUILD=1 uses what is built)
# Rows: uring = multishot recv, uring-1shot = single-shot recv, epoll = the same one-thread
# loop and handler on plain epoll (benches/peers/epoll_loop.rs, the control: what leaving
# tokio's tasks brings without io_uring).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-4}; CONNS=${CONNS:-64}; SIZE=${SIZE:-64}; ROUNDS=${ROUNDS:-5}
WHAT=${1:-all}
if [ -z "${NO_BUILD:-}" ]; then
  cargo build --release -q --features cli --bin rswoole --example peer_uring_echo --example peer_uring_hello \
    --example peer_tokio_echo --example peer_hyper_hello --example tcp_echo --example http_hello
fi
. scripts/bench_lib.sh
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }

start_who() { # start_who WHO PORT: echoes the process group
  case $1 in
    tokio) start $B/examples/peer_tokio_echo 127.0.0.1:$2 1 ;;
    hyper) start $B/examples/peer_hyper_hello 127.0.0.1:$2 1 ;;
    rswoole-echo) start $B/examples/tcp_echo --port $2 --mode base --worker-num 1 ;;
    rswoole-hello) start $B/examples/http_hello --port $2 --mode base --worker-num 1 ;;
    *-echo) start $B/examples/peer_uring_echo 127.0.0.1:$2 ${1%-echo} ;;    # uring, uring-1shot, epoll
    *-hello) start $B/examples/peer_uring_hello 127.0.0.1:$2 ${1%-hello} ;;
  esac; }
# load KIND PORT: runs the load on CPU 1, echoes "OPS RATE"
load() {
  if [ "$1" = echo ]; then
    local pre=""; [ "$3" = rswoole-echo ] && pre="Server: "
    taskset -c 1 $B/rswoole bench tcp-echo --addr 127.0.0.1:$2 --secs "$SECS" --conns "$CONNS" --size "$SIZE" \
      --warmup-ms 0 --prefix "$pre" | awk -v s="$SECS" '/^result/ {for(i=1;i<=NF;i++) if ($i ~ /^rps=/) {sub("rps=","",$i); print $i * s, $i}}'
  else
    local out; out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" http://127.0.0.1:$2/)
    awk '/Non-2xx|Socket errors/ {print "wrk: " $0 > "/dev/stderr"}' <<< "$out"
    awk '/requests in/ {n=$1} /Requests\/sec/ {r=int($2)} END {print n, r}' <<< "$out"
  fi; }
group_pids() { for f in /proc/[0-9]*/stat; do s=$(cat "$f" 2>/dev/null) || continue; p=${f#/proc/}; p=${p%/stat}; echo "$p ${s##*) }"; done |
  awk -v g="$1" '$4 == g {print $1}'; }

echo "# io_uring trial: kernel $(uname -r), io_uring_disabled=$(cat /proc/sys/kernel/io_uring_disabled 2>/dev/null || echo n/a)"
echo "# $CONNS conns, $SIZE B echo messages, ${SECS}s per run, $ROUNDS rounds, servers alternating; server on CPU 0, load on CPU 1"
echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
KINDS=(); [ "$WHAT" = echo ] || [ "$WHAT" = all ] && KINDS+=(echo); [ "$WHAT" = http ] || [ "$WHAT" = all ] && KINDS+=(http)
for KIND in "${KINDS[@]}"; do
  if [ $KIND = echo ]; then WHOS="tokio epoll-echo uring-echo uring-1shot-echo rswoole-echo"; BASE=tokio
  else WHOS="hyper epoll-hello uring-hello uring-1shot-hello rswoole-hello"; BASE=hyper; fi
  [ -n "${ONLY:-}" ] && WHOS=$(for W in $WHOS; do [[ " $ONLY " == *" $W "* ]] && echo "$W"; done || true)
  declare -A RATE=() US=() PERSEC=()
  for R in $(seq "$ROUNDS"); do
    for WHO in $WHOS; do
      P=$(free_port); S=$(start_who $WHO $P); wait_port $P
      C0=$(pg_ticks $S); read -r N X < <(load $KIND $P $WHO); C1=$(pg_ticks $S); stop $S
      U=$(echo "($C1 - $C0) * 1000000 / $TICK / $N" | bc -l)
      RATE[$WHO]+="$X "; US[$WHO]+="$(printf %.3f "$U") "; PERSEC[$WHO]+="$(printf %.0f "$(echo "1000000 / $U" | bc -l)") "
      printf "round %s %-18s %8s req/s  %6.2f us server CPU/req  %7.0f req/CPU-s\n" "$R" "$WHO" "$X" "$U" "$(echo "1000000 / $U" | bc -l)"
    done
  done
  if [ "$ROUNDS" -gt 0 ]; then
  BU=$(median ${US[$BASE]})
  for WHO in $WHOS; do
    X=$(median ${RATE[$WHO]}); U=$(median ${US[$WHO]}); PS=$(median ${PERSEC[$WHO]})
    # the same ratio taken round by round (neighbouring runs share the machine's state), then the median
    PAIRED=$(median $(paste -d' ' <(tr ' ' '\n' <<< "${US[$BASE]}") <(tr ' ' '\n' <<< "${US[$WHO]}") | awk 'NF == 2 {printf "%.4f\n", $1 / $2}'))
    printf "median %-5s %-18s %8s req/s; %s us server CPU/req (%s req/CPU-s) = %.2fx %s's requests per CPU-second (paired by round: %.2fx)\n" \
      "$KIND" "$WHO" "$X" "$U" "$PS" "$(echo "$BU / $U" | bc -l)" "$BASE" "$PAIRED"
  done
  fi
  if [ -n "${STRACE:-}" ]; then
    command -v strace >/dev/null || { echo "strace is not installed (apt-get install strace)" >&2; exit 1; }
    for WHO in $WHOS; do
      P=$(free_port); S=$(start_who $WHO $P); wait_port $P
      OUT=$(mktemp); SARGS=(); for p in $(group_pids $S); do SARGS+=(-p "$p"); done
      strace -c -S calls -f -o "$OUT" "${SARGS[@]}" 2>/dev/null & ST=$!; sleep 0.5
      read -r N X < <(load $KIND $P $WHO); kill -INT $ST; wait $ST 2>/dev/null || true; stop $S
      CALLS=$(awk '$NF == "total" {print $4}' "$OUT")
      TOP=$(awk 'NR > 2 && $1 !~ /^-/ && $NF != "total" {print $NF "=" $4}' "$OUT" | head -4 | tr '\n' ' ')
      printf "strace %-5s %-18s %s requests, %s syscalls = %.3f per request (top: %s)\n" "$KIND" "$WHO" "$N" "$CALLS" \
        "$(echo "$CALLS / $N" | bc -l)" "$TOP"
      rm -f "$OUT"
    done
  fi
  unset RATE US PERSEC
done
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
