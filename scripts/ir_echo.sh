#!/usr/bin/env bash
# Instructions per echo round trip (TCP or WebSocket) of one server build, counted by valgrind
# (cachegrind, no cache simulation) over every process of the server: (instructions of a run
# under `rswoole bench tcp-echo|ws-echo` load - those of an idle run of the same length) /
# round trips answered. The echo counterpart of scripts/ir_per_request.sh (same method, same
# caveats: user space only, the kernel is not counted; the count does not move with the
# machine's load, the number of round trips in the window does).
#
# usage: scripts/ir_echo.sh tcp|ws BINARY [SERVER ARGS...]
#   The server gets `--port P` then SERVER ARGS, or, when an argument holds `{port}`, just the
#   arguments with `{port}` replaced (a peer: `BIN 127.0.0.1:{port} 1`).
#   SECS=6 CONNS=16 SIZE=64 ROUNDS=3 to change; PREFIX='Server: ' when the server puts that
#   before each echo (examples/tcp_echo.rs does; the peers do not). The load generator is
#   RSWOOLE=$CARGO_TARGET_DIR/release/rswoole (build it with
#   `cargo build --release --features cli --bin rswoole`), pinned to CPU 1, with no warm-up
#   (every round trip the server answers in the window is counted). Prints the median.
set -euo pipefail
cd "$(dirname "$0")/.."
PROTO=$1; BIN=$2; shift 2
case $PROTO in tcp) LOAD=tcp-echo ;; ws) LOAD=ws-echo ;; *) echo "first argument: tcp or ws, not '$PROTO'" >&2; exit 2 ;; esac
SECS=${SECS:-6}; CONNS=${CONNS:-16}; SIZE=${SIZE:-64}; ROUNDS=${ROUNDS:-3}; PREFIX=${PREFIX:-}
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
. scripts/bench_lib.sh
RSWOOLE=${RSWOOLE:-$B/rswoole}
[ -x "$RSWOOLE" ] || { echo "no load generator at $RSWOOLE (cargo build --release --features cli --bin rswoole)" >&2; exit 1; }
OUT=$(mktemp -d)
run() { # run NAME idle|load SERVER-ARGS...: prints "<instructions> <round trips>"
  local name=$1 what=$2 P S N=0; shift 2
  P=$(free_port); mkdir -p "$OUT/$name"
  local args=("${@//\{port\}/$P}")
  [[ "$*" == *"{port}"* ]] || args=(--port "$P" "$@")
  # The out-file goes through VALGRIND_OPTS: the server rewrites its argv area (process titles).
  S=$(VALGRIND_OPTS="--cachegrind-out-file=$OUT/$name/cg.%p --cache-sim=no" \
      start valgrind --tool=cachegrind -q "$BIN" "${args[@]}")
  for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/$P) 2>/dev/null && break; sleep 0.1; done
  if [ "$what" = load ]; then
    # `result kind=... rps=R ...`: R round trips/s over SECS seconds.
    N=$(taskset -c 1 "$RSWOOLE" bench "$LOAD" --addr "127.0.0.1:$P" --conns "$CONNS" --size "$SIZE" \
          --secs "$SECS" --warmup-ms 0 --prefix "$PREFIX" |
        awk -v s="$SECS" '/^result / {for (i = 1; i <= NF; i++) if ($i ~ /^rps=/) {split($i, a, "="); printf "%d", a[2] * s}}')
  else
    sleep "$SECS"
  fi
  echo "$(cg_stop_total "$S" "$OUT/$name") $N"
}
cg_rounds "round trip" "$@"
rm -rf "$OUT"
