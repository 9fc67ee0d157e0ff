#!/usr/bin/env bash
# Syscalls per operation of each process of a server (issue 20), by syscall, counted with
# `perf stat --per-thread` on the syscall tracepoints (run as root; unlike `strace`, perf does
# not stop the traced threads, so batching under load is what it is without it).
# Server on CPU 0, load on CPU 1; the server's threads are grouped by process title.
#
# usage: scripts/syscalls_per_op.sh http|tcp BINARY [SERVER ARGS...]
#   The server gets `--port P` then SERVER ARGS, or, when an argument holds `{port}`, just the
#   arguments with `{port}` replaced (a peer: `BIN 127.0.0.1:{port} 1`).
#   SECS=4 CONNS=64 SIZE=64; PREFIX='Server: ' for the TCP echo of rswoole's tcp_echo.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench_lib.sh
WHAT=$1; BIN=$2; shift 2
SECS=${SECS:-4}; CONNS=${CONNS:-64}; SIZE=${SIZE:-64}; PREFIX=${PREFIX:-}
P=$(free_port)
args=("${@//\{port\}/$P}")
[[ "$*" == *"{port}"* ]] || args=(--port "$P" "$@")
S=$(start "$BIN" "${args[@]}")
wait_port "$P"
sleep 0.5
PIDS=$(pgrep -g "$S" | paste -sd,)
EVS=$(for s in recvfrom sendto sendmsg recvmsg recvmmsg writev readv read write epoll_wait epoll_pwait epoll_pwait2 futex ioctl sched_yield madvise mmap munmap brk; do
  printf 'syscalls:sys_enter_%s,' "$s"; done; echo raw_syscalls:sys_enter)
OUTF=$(mktemp)
perf stat --per-thread -x, -e "$EVS" -p "$PIDS" -o "$OUTF" &
PF=$!
sleep 0.3
if [ "$WHAT" = http ]; then
  N=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" "http://127.0.0.1:$P/" | awk '/requests in/ {print $1}')
else
  RPS=$(taskset -c 1 "$B/rswoole" bench tcp-echo --addr "127.0.0.1:$P" ${PREFIX:+--prefix "$PREFIX"} --secs "$SECS" --conns "$CONNS" --size "$SIZE" |
    awk '/^result/ {for(i=1;i<=NF;i++) if ($i ~ /^rps=/) {sub("rps=","",$i); print $i}}')
  N=$(echo "$RPS * $SECS / 1" | bc)
fi
sleep 0.3
kill -INT $PF; wait $PF || true
# thread "comm-tid": map each tid to its process's title (argv rewritten by the server).
declare -A TITLE
for pid in ${PIDS//,/ }; do
  t=$(tr '\0' ' ' < /proc/$pid/cmdline 2>/dev/null | cut -c1-24 | sed 's/ *$//')
  for tid in $(ls /proc/$pid/task 2>/dev/null); do TITLE[$tid]="${t:-?}"; done
done
stop "$S"
echo "$WHAT $(basename "$BIN") $*: $N operations (server on CPU 0, load on CPU 1, $CONNS connections)"
while IFS=, read -r thr val _ ev _; do
  [ -n "$ev" ] || continue
  tid=${thr##*-}
  echo "${TITLE[$tid]:-?},${ev#*sys_enter_},$val"
done < <(grep -v '^#' "$OUTF" | grep -v '^$') |
  awk -F, -v n="$N" '$3 ~ /^[0-9]+$/ && $3 > 0 {c[$1 "|" $2] += $3}
    END {for (k in c) {split(k, a, "|"); printf "%-26s %-14s %8.3f\n", a[1], a[2], c[k] / n}}' | sort
rm -f "$OUTF"
