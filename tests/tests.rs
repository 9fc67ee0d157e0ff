#![allow(unreachable_pub)]
//! Integration tests: every test starts real server processes (the examples) on 127.0.0.1
//! with free ports, talks to them over real sockets, bounds every wait with a timeout, and
//! kills only the processes it started (their process group, by id).
//!
//! Servers bind port 0 where they can; `ServerProc::start` reads the bound ports back from
//! the master's `phase=Running` log line and waits for readiness signals (that line, the
//! listening sockets in /proc) rather than sleeping or probing with a connection. Tests wait
//! for observable conditions (log lines, process titles, the status socket, replies), never
//! for a fixed time, and assert wall-clock bounds only where timing is the behaviour tested.
//!
//! The examples must be built: a plain `cargo test` builds them first; after
//! `cargo test --test integration` alone, run `cargo build --examples` once.

mod util;

/// Core server: seed §10/§11/§16 examples, modes, dispatch, close, errors, crash recovery.
mod core;

/// The shared-memory Table inside a running server.
mod table;

/// The HTTP server.
mod http;

/// Stream framing, uid dispatch, connections(), send_message, clients.
mod framing;

/// Running in production: daemon, pid/log files, the control CLI, reload and max_request under
/// load, heartbeat, max_connection, restart storms.
mod ops;

/// Task workers: typed tasks, exactly-once results, timeouts, crashes, full queues, big
/// payloads, timers.
mod tasks;

/// Replies owed to a connection after the client's FIN and during a graceful stop.
mod lifecycle;

/// deploy/nginx.conf with a real nginx in front.
mod nginx;

/// The WebSocket server: echo, chat broadcast, bad input, worker crashes.
mod websocket;

/// Several chat nodes sharing broadcasts and membership through a real redis-server.
mod cluster;

/// A tower service (axum) on rswoole: examples/axum_app.
mod tower;

/// The admin listener: Prometheus metrics, the token, user metrics, the access log, `rswoole top`.
mod metrics;
/// TLS on the listeners: TCP+TLS, https, wss, mTLS, bad input, reload-certs.
mod tls;
/// examples/axum_app driven by httpx, websockets and curl: every route, uploads, timeouts,
/// worker death, reload, max_request, daemon mode.
mod tower_clients;
/// Upgrading to a new binary with no connection lost; systemd socket activation and
/// readiness.
mod upgrade;

/// Idle connections parked without a task, woken by input, output and close.
mod idle;

/// HTTP/2: h2c with prior knowledge, ALPN over TLS, many streams, the tower adapter, floods.
mod http2;

/// The io_uring trial's bench peers (io_uring and epoll loops): correct answers.
mod peers;

/// Large WebSocket messages (tens of MiB, one frame or fragmented) echoed intact, both modes.
mod burst;
