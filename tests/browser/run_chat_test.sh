#!/usr/bin/env bash
# Starts examples/chat (worker_num 2) on a free port in its own process group, runs the
# headless-Chromium chat test against it, and stops it by pid.
# usage: tests/browser/run_chat_test.sh CHAT_BINARY SCREENSHOT.png [tls]   (python with selenium on PATH)
# With `tls` the chat serves https/wss with a self-signed certificate made here by openssl
# (Chromium is told to ignore certificate errors), and the page must come over HTTP/2 (ALPN
# h2); plain, over HTTP/1.1.
set -euo pipefail
BIN=$1; SHOT=$2; MODE=${3:-plain}
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ARGS=(--host 127.0.0.1 --port "$PORT" --worker-num 2)
SCHEME=http
PROTO=http/1.1
if [ "$MODE" = tls ]; then
  CERTS=$(mktemp -d)
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -keyout "$CERTS/key.pem" -out "$CERTS/cert.pem" 2>/dev/null
  ARGS+=(--cert "$CERTS/cert.pem" --key "$CERTS/key.pem")
  SCHEME=https
  PROTO=h2
fi
setsid "$BIN" "${ARGS[@]}" >/tmp/rswoole-chat-test.log 2>&1 &
PID=$!
trap 'kill -9 -- -$PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
timeout 180 python3 "$(dirname "$0")/chat_test.py" "$SCHEME://127.0.0.1:$PORT/" "$SHOT" "$PROTO"
