#!/usr/bin/env bash
# Starts examples/http_hello (worker_num 2) with the admin listener on free ports in its own
# process group, runs the headless-Chromium dashboard test against it, and stops it by pid.
# usage: tests/browser/run_dashboard_test.sh HTTP_HELLO_BINARY SCREENSHOT.png   (python with selenium on PATH)
set -euo pipefail
BIN=$1; SHOT=$2
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port); ADMIN=$(free_port)
setsid "$BIN" --host 127.0.0.1 --port "$PORT" --worker-num 2 --admin "127.0.0.1:$ADMIN" --admin-token dash \
  >/tmp/rswoole-dashboard-test.log 2>&1 &
PID=$!
trap 'kill -9 -- -$PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$ADMIN) 2>/dev/null && break; sleep 0.1; done
timeout 180 python3 "$(dirname "$0")/dashboard_test.py" "http://127.0.0.1:$PORT/" \
  "http://127.0.0.1:$ADMIN/?token=dash" "$SHOT"
