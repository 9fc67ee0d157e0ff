//! An axum application served by rswoole (issue 15, "bring your framework"): a small JSON
//! API next to the WebSocket chat, on one port, with rswoole's workers, task workers and
//! shared memory underneath. The `Router` is built once per worker (after the fork), so its
//! state is per-worker; the worker's `Handle` reaches every handler as `Extension<Handle>`.
//!
//! - `GET /hello/{name}` → `{"hello":"<name>"}` (`?upper=true` shouts it: a query extractor)
//! - `GET /task/{ms}` → `{"done":<ms>}` once a task worker slept `<ms>` ms (`task_wait`)
//! - `GET /online` → `{"online":N}`: open WebSocket connections, from a shared `Table`
//! - `GET /worker` → `{"worker":ID,"pid":PID,"served":N}`: this worker's own state (made
//!   by the factory in each worker process: a recycled or reloaded worker starts at 1)
//! - `GET /stream/{n}` → `chunk 1\n` … `chunk n\n`, 20 ms apart, streamed (chunked), and the
//!   trailer `x-chunks: n`
//! - `POST /upload` → `{"bytes":N,"fnv1a":"<hex>"}`: the body's length and FNV-1a 64 hash,
//!   read as it streams in (a large upload is never held whole; raise
//!   `--package-max-length` above its size)
//! - `GET /sleep/{ms}` → `{"slept":<ms>}` after `<ms>` ms on the worker's event loop (with
//!   `--request-timeout-ms` below it: 504)
//! - `GET /limited/{ms}` → as `/sleep/{ms}`, behind tower-http's `TimeoutLayer`: past
//!   500 ms it answers 504 (the route's own limit, whatever `--request-timeout-ms` says)
//! - `GET /panic` → a handler that panics: answered 500, the worker goes on
//! - `GET /ws` (an upgrade) → the chat: every message goes to everyone as `from{fd}:{data}\n`
//!
//! Every response carries `x-served-by: rswoole`; one of more than 32 bytes is gzipped for a
//! client that accepts it; any origin may call the routes (CORS, preflights answered): three
//! tower-http layers. Flags: see `rswoole::cli::ExampleArgs` (`--task-worker-num` defaults
//! to 2 here).
//!
//! ```text
//! cargo run --release --example axum_app -- --worker-num 2
//! curl 127.0.0.1:9501/hello/world        # {"hello":"world"}
//! curl 127.0.0.1:9501/task/200           # {"done":200} after 0.2 s
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use rswoole::cli::ExampleArgs;
use rswoole::websocket::{OpCode, WebSocketServer};
use rswoole::{Bytes, Column, Handle, Table};
use serde::Deserialize;
use serde_json::{json, Value};
use tower_http::compression::CompressionLayer;
use tower_http::cors::{Any, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

/// A worker's application state: made by the factory in each worker. (Public, with
/// [`router`], for the benchmark peer `benches/peers/axum_hello.rs`, which serves this same
/// router with `axum::serve`.)
#[derive(Clone)]
pub(crate) struct App {
    /// This worker's id.
    pub(crate) worker: usize,
    /// Requests this worker served (per-worker state, kept across requests).
    pub(crate) served: Arc<AtomicU64>,
    /// Shared by every worker: the row `online` counts the open WebSocket connections.
    pub(crate) online: Table,
}

#[derive(Deserialize)]
struct HelloQuery {
    upper: Option<bool>,
}

async fn hello(
    State(app): State<App>,
    Path(name): Path<String>,
    Query(q): Query<HelloQuery>,
) -> Json<Value> {
    app.served.fetch_add(1, Relaxed);
    let name = if q.upper == Some(true) {
        name.to_uppercase()
    } else {
        name
    };
    Json(json!({ "hello": name }))
}

async fn task(
    Extension(srv): Extension<Handle>,
    Path(ms): Path<u64>,
) -> Result<Json<Value>, (StatusCode, Json<Value>)> {
    // The task worker sleeps; this worker's event loop serves other requests meanwhile.
    match srv
        .task_wait::<u64, Result<u64, String>>(
            ms,
            Duration::from_millis(ms) + Duration::from_secs(10),
        )
        .await
    {
        Ok(Ok(done)) => Ok(Json(json!({ "done": done }))),
        Ok(Err(e)) => Err((
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({ "error": e })),
        )),
        Err(e) => Err((
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error": e.to_string() })),
        )),
    }
}

async fn online(State(app): State<App>) -> Json<Value> {
    let n = app
        .online
        .get_field("online", "n")
        .ok()
        .flatten()
        .and_then(|v| v.as_int())
        .unwrap_or(0);
    Json(json!({ "online": n }))
}

async fn worker(State(app): State<App>) -> Json<Value> {
    let served = app.served.fetch_add(1, Relaxed) + 1;
    Json(json!({ "worker": app.worker, "pid": std::process::id(), "served": served }))
}

/// A body that waits between its frames: sent chunked as it comes, then its trailers.
struct Chunks {
    n: u64,
    sent: u64,
    wait: Option<Pin<Box<tokio::time::Sleep>>>,
    done: bool,
}

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        if self.done {
            return Poll::Ready(None);
        }
        if self.sent == self.n {
            self.done = true;
            let mut t = axum::http::HeaderMap::new();
            t.insert("x-chunks", HeaderValue::from(self.n));
            return Poll::Ready(Some(Ok(http_body::Frame::trailers(t))));
        }
        let wait = self
            .wait
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(Duration::from_millis(20))));
        if wait.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.wait = None;
        self.sent += 1;
        let chunk = format!("chunk {}\n", self.sent);
        Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from(chunk)))))
    }
}

async fn stream(Path(n): Path<u64>) -> Body {
    Body::new(Chunks {
        n: n.min(1000),
        sent: 0,
        wait: None,
        done: false,
    })
}

/// Reads the body frame by frame as the worker receives it: its size and FNV-1a 64 hash.
async fn upload(body: Body) -> Result<Json<Value>, (StatusCode, String)> {
    use http_body_util::BodyExt;
    let mut body = body;
    let (mut n, mut h) = (0u64, 0xcbf2_9ce4_8422_2325_u64);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
        if let Ok(d) = frame.into_data() {
            n += d.len() as u64;
            for &b in d.iter() {
                h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
            }
        }
    }
    Ok(Json(json!({ "bytes": n, "fnv1a": format!("{h:016x}") })))
}

async fn sleep(Path(ms): Path<u64>) -> Json<Value> {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Json(json!({ "slept": ms }))
}

async fn panic() -> &'static str {
    panic!("the /panic route panics on purpose");
}

/// The longest `/limited/{ms}` may take before tower-http's `TimeoutLayer` answers 504.
const ROUTE_TIMEOUT: Duration = Duration::from_millis(500);

/// The application, as each worker builds it.
pub(crate) fn router(app: App) -> Router {
    Router::new()
        .route("/hello/{name}", get(hello))
        .route("/task/{ms}", get(task))
        .route("/online", get(online))
        .route("/worker", get(worker))
        .route("/stream/{n}", get(stream))
        .route("/upload", post(upload))
        .route("/sleep/{ms}", get(sleep))
        .route(
            "/limited/{ms}",
            get(sleep).layer(TimeoutLayer::with_status_code(
                StatusCode::GATEWAY_TIMEOUT,
                ROUTE_TIMEOUT,
            )),
        )
        .route("/panic", get(panic))
        .with_state(app)
        .layer(SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static("x-served-by"),
            HeaderValue::from_static("rswoole"),
        ))
        // Compresses what a client accepts (`Accept-Encoding: gzip`) past 32 bytes.
        .layer(CompressionLayer::new())
        // Any origin may call the API from a browser: preflights are answered here.
        .layer(
            CorsLayer::new()
                .allow_origin(Any)
                .allow_methods([Method::GET, Method::POST])
                .allow_headers(Any),
        )
        .layer(TraceLayer::new_for_http())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = ExampleArgs::parse_or_exit("127.0.0.1", 9501);
    let mut settings = args.settings();
    if settings.task_worker_num == 0 {
        settings.task_worker_num = 2;
    }
    // Made before start(): the mapping is inherited by every worker. A row per open
    // WebSocket connection (its fd) and the row `online`.
    let online = Table::builder(4096).column("n", Column::Int).build()?;
    online.set("online", &[("n", 0.into())])?;

    let mut server = WebSocketServer::bind(&args.addr())?;
    server.set(settings);
    server.on_task(|_srv, task| async move {
        let ms: u64 = task.data().map_err(|e| e.to_string())?;
        // Blocking is fine in a task worker: it holds only this process.
        std::thread::sleep(Duration::from_millis(ms));
        Ok::<u64, String>(ms)
    });
    let t = online.clone();
    server.on_open(move |_srv, req| {
        let t = t.clone();
        async move {
            t.set(req.fd.to_string(), &[("n", 1.into())])?;
            t.incr("online", "n", 1).map(|_| ())
        }
    });
    server.on_message(|srv, frame| async move {
        let text = String::from_utf8_lossy(&frame.data);
        srv.broadcast(format!("from{}:{}\n", frame.fd, text), OpCode::Text)
    });
    // Runs for every connection; only a WebSocket one has its row.
    let t = online.clone();
    server.on_close(move |_srv, fd| {
        let t = t.clone();
        async move {
            if t.del(fd.to_string())? {
                t.decr("online", "n", 1)?;
            }
            Ok::<(), Box<dyn std::error::Error>>(())
        }
    });
    // Everything that is not a WebSocket upgrade goes to the router, built in each worker.
    server.serve(move |srv| {
        router(App {
            worker: srv.worker_id(),
            served: Arc::new(AtomicU64::new(0)),
            online: online.clone(),
        })
    });
    server.start()?;
    Ok(())
}
