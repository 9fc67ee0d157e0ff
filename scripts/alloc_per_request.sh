#!/usr/bin/env bash
# Heap allocations per HTTP request of one server build, counted by valgrind (callgrind) over
# every process of the server: calls to malloc/calloc/realloc/memalign/posix_memalign during a
# wrk keep-alive run, minus those of an idle run of the same length, divided by the requests
# answered. Also prints instructions per request (callgrind's count; valgrind's
# ir_per_request.sh is the reference for that figure). Same arguments as ir_per_request.sh.
#
# usage: scripts/alloc_per_request.sh BINARY [SERVER ARGS...]   (SECS=4 CONNS=16; KEEP=dir keeps the profiles)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$1; shift
SECS=${SECS:-4}; CONNS=${CONNS:-16}; SCHEME=${SCHEME:-http}
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
. scripts/bench_lib.sh
OUT=${KEEP:-$(mktemp -d)}
count() { # count DIR: "<allocation calls> <frees> <instructions>" over every callgrind file in DIR
  python3 - "$1" <<'PY'
import sys, glob, re
allocs = frees = ir = 0
names = {}
for f in glob.glob(sys.argv[1] + "/cg.*"):
    cfn = None
    for line in open(f, errors="replace"):
        if line.startswith("summary:"):
            ir += int(line.split()[1])
        m = re.match(r"(c?)fn=\((\d+)\)(?: (.*))?", line)
        if m:
            if m.group(3):
                names[(f, m.group(2))] = m.group(3).strip()
            if m.group(1):
                cfn = names.get((f, m.group(2)), "")
            continue
        if line.startswith("calls=") and cfn is not None:
            n = int(line.split()[0][6:])
            base = cfn.split("'")[0]
            if base in ("malloc", "calloc", "realloc", "memalign", "posix_memalign", "aligned_alloc", "_mid_memalign"):
                allocs += n
            elif base == "free":
                frees += n
            cfn = None
print(allocs, frees, ir)
PY
}
run() { # run NAME idle|load SERVER-ARGS...: prints "<allocs> <frees> <ir> <requests>"
  local name=$1 what=$2 P S N=0; shift 2
  P=$(free_port); mkdir -p "$OUT/$name"
  local args=("${@//\{port\}/$P}")
  [[ "$*" == *"{port}"* ]] || args=(--port "$P" "$@")
  S=$(VALGRIND_OPTS="--callgrind-out-file=$OUT/$name/cg.%p" \
      start valgrind --tool=callgrind -q "$BIN" "${args[@]}")
  for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/$P) 2>/dev/null && break; sleep 0.1; done
  if [ "$what" = load ]; then
    N=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" "$SCHEME://127.0.0.1:$P/" | awk '/requests in/ {print $1}')
  else
    sleep "$SECS"
  fi
  kill -TERM -- "-$S" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 -- "-$S" 2>/dev/null || break; sleep 0.1; done
  echo "$(count "$OUT/$name") $N"
}
read -r IA IF II _ < <(run idle idle "$@")
read -r LA LF LI N < <(run load load "$@")
printf "%d requests: %.2f allocations/request, %.2f frees/request, %.0f instructions/request (callgrind)\n" \
  "$N" "$(echo "($LA - $IA) / $N" | bc -l)" "$(echo "($LF - $IF) / $N" | bc -l)" "$(echo "($LI - $II) / $N" | bc -l)"
[ -n "${KEEP:-}" ] || rm -rf "$OUT"
