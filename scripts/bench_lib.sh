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
load_of() { # load_of http|tcp|ws PORT PREFIX: operations/s of one $SECS s run against 127.0.0.1:PORT (load on CPU 1)
  local gen=${LOADGEN:-$B/rswoole}
  case $1 in
    http) taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" http://127.0.0.1:$2/ | awk '/Requests\/sec/ {print int($2)}' ;;
    tcp) taskset -c 1 $gen bench tcp-echo --addr 127.0.0.1:$2 --secs "$SECS" --conns "$CONNS" --size "$SIZE" ${3:+--prefix "$3"} |
           awk '/^result/ {for(i=1;i<=NF;i++) if ($i ~ /^rps=/) {sub("rps=","",$i); print int($i)}}' ;;
    ws) taskset -c 1 $gen bench ws-echo --addr 127.0.0.1:$2 --secs "$SECS" --conns "$CONNS" --size "$SIZE" |
           awk '/^result/ {for(i=1;i<=NF;i++) if ($i ~ /^rps=/) {sub("rps=","",$i); print int($i)}}' ;;
  esac; }
measure() { # measure PGID LOAD-COMMAND...: runs the load (it prints operations/s over $SECS s), stops the server
  # of process group PGID, prints "<operations/s> <µs of the group's CPU per operation>"
  local S=$1 C0 C1 X; shift
  C0=$(pg_ticks $S); X=$("$@"); C1=$(pg_ticks $S); stop $S
  printf '%s %.2f\n' "$X" "$(echo "($C1 - $C0) * 1000000 / $TICK / ($X * $SECS)" | bc -l)"; }
# The cachegrind scripts (ir_per_request.sh, ir_echo.sh) define `run NAME idle|load ARGS...`
# printing "<instructions> <operations>"; these two are their shared parts.
cg_stop_total() { # cg_stop_total PGID DIR: stops the server's group, prints the instructions its cachegrind files counted
  kill -TERM -- "-$1" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 -- "-$1" 2>/dev/null || break; sleep 0.1; done
  cat "$2"/cg.* | awk '/^summary:/ {t += $2} END {printf "%d", t}'; }
cg_rounds() { # cg_rounds UNIT ARGS...: ROUNDS rounds of an idle and a load `run`; each round's and the median instructions per UNIT
  local unit=$1 R IDLE IR N X ALL=""; shift
  for R in $(seq "$ROUNDS"); do
    read -r IDLE _ < <(run "idle-$R" idle "$@")
    read -r IR N < <(run "load-$R" load "$@")
    [ "${N:-0}" -gt 0 ] || { echo "round $R: no ${unit}s counted (see /tmp/bench-server.err)" >&2; exit 1; }
    X=$(echo "($IR - $IDLE) / $N" | bc -l); ALL+="$X "
    printf "round %s: %d %ss, %.0f instructions/%s\n" "$R" "$N" "$unit" "$X" "$unit"
  done
  printf "median: %.0f instructions/%s\n" "$(median $ALL)" "$unit"; }
