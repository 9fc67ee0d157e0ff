#!/usr/bin/env bash
# Where a process's memory is (issue 20, idle connections): its mappings grouped as
# [heap] (main arena), other anonymous mappings (thread arenas, tokio, stacks) and files, with
# Rss/Pss per group, then glibc's malloc_stats() per arena (system = held from the kernel,
# in use = allocated; the difference is free chunks the allocator keeps) via gdb.
# usage: scripts/heap_of.sh PID...     BRIEF=1: one line per PID (malloc totals only)
# With scripts/idle_mem.py (before and while the connections are held):
#   IDLE_MEM_HOOK='BRIEF=1 scripts/heap_of.sh ${OWNER:-$OWNERS}' python3 scripts/idle_mem.py ...
set -euo pipefail
stats() { # malloc_stats() writes to the process's own stderr: point it at a file meanwhile.
  local out; out=$(mktemp); chmod 666 "$out"
  gdb -q -batch -p "$1" \
    -ex "call (int)dup(2)" \
    -ex "call (int)open(\"$out\", 1)" \
    -ex 'call (int)dup2($2, 2)' \
    -ex 'call (void)malloc_stats()' \
    -ex 'call (int)dup2($1, 2)' \
    -ex 'call (int)close($1)' -ex 'call (int)close($2)' >/dev/null 2>&1 || echo "(gdb could not attach to $1)"
  cat "$out"; rm -f "$out"
}
for PID in "$@"; do
  if [ -n "${BRIEF:-}" ]; then
    stats "$PID" | awk -v p="$PID" -v ph="${PHASE:-}" '/^Total/ {t=1} t && /system bytes/ {s=$4} t && /in use bytes/ {u=$5}
      END {printf "%s pid %s: malloc system %d B, in use %d B\n", ph, p, s, u}'
    continue
  fi
  echo "pid $PID ($(cat /proc/$PID/comm)), threads: $(ls /proc/$PID/task | wc -l)"
  awk '/^[0-9a-f]+-[0-9a-f]+ / {name = (NF >= 6 ? $6 : "[anon]"); if (name ~ /^\//) name = "[file]"; next}
       /^Rss:/ {rss[name] += $2} /^Pss:/ {pss[name] += $2}
       END {for (n in rss) printf "  %-12s Rss %8d KiB  Pss %8d KiB\n", n, rss[n], pss[n]}' "/proc/$PID/smaps" | sort
  stats "$PID" | sed 's/^/  /'
done
