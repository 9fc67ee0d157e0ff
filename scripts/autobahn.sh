#!/usr/bin/env bash
# Runs the Autobahn WebSocket testsuite (../shared/conformance/autobahn.sh) against
# examples/ws_echo.rs (release build), started on a free port in its own process group and
# stopped by pid. Prints the suite's summary line; exits non-zero if any case failed.
#
# usage: scripts/autobahn.sh [REPORT_DIR]
#   AUTOBAHN_SH=PATH    the suite runner (default ../shared/conformance/autobahn.sh, beside the
#                       checkout); missing, the script exits 2 and says where it looked
#   AUTOBAHN_DEFLATE=1  also sections 12-13 (permessage-deflate; about 10 more minutes)
#   AUTOBAHN_QUICK=1    sections 1-7 and 10 only
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-target/autobahn}
SUITE=${AUTOBAHN_SH:-../shared/conformance/autobahn.sh}
if [ ! -f "$SUITE" ]; then
  echo "scripts/autobahn.sh: the Autobahn suite runner $SUITE is missing" >&2
  echo "  (looked for $(realpath -m -- "$SUITE"); it comes with the shared/ folder beside" >&2
  echo "  the checkout, ../shared/conformance/autobahn.sh, or set AUTOBAHN_SH=/path/to/autobahn.sh)" >&2
  exit 2
fi
cargo build --release -q --example ws_echo
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
setsid "${CARGO_TARGET_DIR:-target}/release/examples/ws_echo" --port "$PORT" --worker-num 2 >/tmp/rswoole-autobahn-server.log 2>&1 &
PID=$!
trap 'kill -TERM -- -$PID 2>/dev/null || true; sleep 0.5; kill -9 -- -$PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
mkdir -p "$OUT"
# Allow N non-strict only where the RFC allows; the script's exit status is the verdict.
timeout "${AUTOBAHN_WALL:-3300}" bash "$SUITE" "ws://127.0.0.1:$PORT" "$OUT"
