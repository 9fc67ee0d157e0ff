#!/usr/bin/env bash
# Instructions per HTTP request of one server build, counted by valgrind (cachegrind, no cache
# simulation) over every process of the server: (instructions of a run under wrk keep-alive
# load - those of an idle run of the same length) / requests answered. Unlike requests/s and
# CPU time, the count does not move with the load of a shared machine, so two builds of the
# same server can be compared on a busy one (see BENCHMARKS.md). Kernel time is not counted.
#
# usage: scripts/ir_per_request.sh BINARY [SERVER ARGS...]
#   The server gets `--port P` then SERVER ARGS, or, when an argument holds `{port}`, just the
#   arguments with `{port}` replaced (a peer: `BIN 127.0.0.1:{port} 1`). SCHEME=https for TLS (give --cert/--key),
#   SECS=6 CONNS=16 ROUNDS=3 to change; prints the median.
#   HEADER='Connection: close' adds a request header to wrk's requests (one TLS handshake per
#   request with SCHEME=https). LOAD=h2load: the load is h2load (nghttp2-client), HTTP/2 with
#   prior knowledge (h2c, or ALPN h2 with SCHEME=https), CONNS connections x STREAMS=8 streams.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$1; shift
SECS=${SECS:-6}; CONNS=${CONNS:-16}; ROUNDS=${ROUNDS:-3}; SCHEME=${SCHEME:-http}
LOAD=${LOAD:-wrk}; STREAMS=${STREAMS:-8}; HEADER=${HEADER:-}
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
case $LOAD in
  wrk) command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; } ;;
  h2load) command -v h2load >/dev/null || { echo "h2load is not installed (apt-get install nghttp2-client)" >&2; exit 1; } ;;
  *) echo "LOAD is wrk or h2load, not '$LOAD'" >&2; exit 2 ;;
esac
WRK_ARGS=(); [ -n "$HEADER" ] && WRK_ARGS=(-H "$HEADER")
. scripts/bench_lib.sh
OUT=$(mktemp -d)
run() { # run NAME idle|load SERVER-ARGS...: prints "<instructions> <requests>"
  local name=$1 what=$2 P S N=0; shift 2
  P=$(free_port); mkdir -p "$OUT/$name"
  local args=("${@//\{port\}/$P}")
  [[ "$*" == *"{port}"* ]] || args=(--port "$P" "$@")
  # The out-file goes through VALGRIND_OPTS: the server rewrites its argv area (process titles).
  S=$(VALGRIND_OPTS="--cachegrind-out-file=$OUT/$name/cg.%p --cache-sim=no" \
      start valgrind --tool=cachegrind -q "$BIN" "${args[@]}")
  for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/$P) 2>/dev/null && break; sleep 0.1; done
  if [ "$what" = load ] && [ "$LOAD" = h2load ]; then
    # requests: N total, N started, N done, N succeeded, ...: the succeeded ones.
    N=$(taskset -c 1 h2load -c "$CONNS" -m "$STREAMS" -D "$SECS" "$SCHEME://127.0.0.1:$P/" | awk '/^requests:/ {print $8}')
  elif [ "$what" = load ]; then
    N=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" "${WRK_ARGS[@]}" "$SCHEME://127.0.0.1:$P/" | awk '/requests in/ {print $1}')
  else
    sleep "$SECS"
  fi
  echo "$(cg_stop_total "$S" "$OUT/$name") $N"
}
cg_rounds "request" "$@"
rm -rf "$OUT"
