#!/usr/bin/env bash
# Starts examples/chat (worker_num 2) on a free port in its own process group, runs the
# headless-Chromium chat test against it, and stops it by pid.
# usage: tests/browser/run_chat_test.sh CHAT_BINARY SCREENSHOT.png   (python with selenium on PATH)
set -euo pipefail
BIN=$1; SHOT=$2
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
setsid "$BIN" --host 127.0.0.1 --port "$PORT" --worker-num 2 >/tmp/rswoole-chat-test.log 2>&1 &
PID=$!
trap 'kill -9 -- -$PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
timeout 180 python3 "$(dirname "$0")/chat_test.py" "http://127.0.0.1:$PORT/" "$SHOT"
