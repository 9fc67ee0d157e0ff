# Shared by scripts/bench.sh and scripts/bench_ws.sh (sourced): servers are started in their
# own process group pinned to CPU 0, and only those groups are killed.
B=${CARGO_TARGET_DIR:-target}/release
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -9 -- "-$p" 2>/dev/null || true; done; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; return 1; }
start() { # start CMD... ; echoes the pid (= its process group)
  setsid taskset -c 0 "$@" >/dev/null 2>/tmp/bench-server.err & local p=$!; PIDS+=("$p"); echo "$p"; }
stop() { kill -TERM -- "-$1" 2>/dev/null || true; sleep 0.5; kill -9 -- "-$1" 2>/dev/null || true; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
TICK=$(getconf CLK_TCK)
pg_ticks() { # pg_ticks PGID: CPU ticks (user+system) used so far by the processes of that group
  for f in /proc/[0-9]*/stat; do s=$(cat "$f" 2>/dev/null) || continue; echo "${s##*) }"; done |
    awk -v g="$1" '$3 == g {t += $12 + $13} END {print t + 0}'; }
