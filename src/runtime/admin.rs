//! The admin listener (`Settings::admin.addr`), served by the master so it lives through
//! worker restarts: `/metrics` (Prometheus text), the dashboard at `/`, its live feed at `/ws`
//! (a WebSocket that gets one JSON snapshot per second) and `/stats.json`.
//!
//! A deliberately small HTTP/1.1 server on the master's tokio runtime, built from the codec
//! crate's request parser and WebSocket frame encoder (what the socket owner already uses):
//! one request per connection (`connection: close`), GET/HEAD only, no body read. hyper would
//! be a new runtime dependency for four fixed routes. With `admin.token` every route wants
//! `Authorization: Bearer <token>` or `?token=<token>` (browsers cannot set headers on a
//! WebSocket), else 401.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rswoole_codec::http1::{Event, Limits, RequestDecoder, RequestHead};
use rswoole_codec::ws::{encode_frame, FrameDecoder, OpCode, Role, UpgradeRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::reactor::Reactor;
use crate::base::Settings;
use crate::ipc::metrics::expose::Snapshot;
use crate::ipc::metrics::Metrics;
use crate::ipc::shared::Shared;

/// The dashboard page: HTML, CSS and script in one file, embedded (no CDN).
const DASHBOARD: &str = include_str!("admin_dashboard.html");
/// How long a client may take to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the live feed sends a snapshot.
const FEED_INTERVAL: Duration = Duration::from_secs(1);

/// What every admin connection needs.
#[derive(Debug, Clone)]
pub(crate) struct Admin {
    pub(crate) settings: Arc<Settings>,
    pub(crate) shared: Shared,
    pub(crate) metrics: &'static Metrics,
    pub(crate) reactor: Arc<Reactor>,
    /// Watched tables (`Server::watch_table`).
    pub(crate) tables: Arc<Vec<(String, rswoole_shm::Table)>>,
}

impl Admin {
    /// The counters now.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let r = self.reactor.clone();
        Snapshot::take(
            &self.shared,
            self.metrics,
            self.settings.worker_num,
            self.settings.task_worker_num,
            &move |i| r.ipc_queue_bytes(i),
        )
        .with_tables(
            self.tables
                .iter()
                .map(|(n, t)| (n.clone(), t.count() as u64, t.capacity() as u64))
                .collect(),
        )
    }
}

/// Serves the admin listener until the task is aborted.
pub(crate) async fn serve(listener: TcpListener, admin: Admin) {
    loop {
        match listener.accept().await {
            Ok((s, _)) => {
                let a = admin.clone();
                tokio::spawn(async move {
                    if let Err(e) = connection(s, &a).await {
                        tracing::debug!(error = %e, "admin connection");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "admin listener accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Whether `a` and `b` are equal, in time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether the request carries the token (always true without one).
fn authorized(head: &RequestHead, token: Option<&str>) -> bool {
    let Some(token) = token else { return true };
    let bearer = head
        .header_str("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| same(t.trim().as_bytes(), token.as_bytes()));
    let query = head.query().is_some_and(|q| {
        q.split('&')
            .filter_map(|kv| kv.strip_prefix("token="))
            .any(|t| same(t.as_bytes(), token.as_bytes()))
    });
    bearer || query
}

fn response(
    status: u16,
    reason: &str,
    ctype: &str,
    extra: &str,
    body: &[u8],
    head: bool,
) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\ncache-control: no-store\r\nconnection: close\r\n{extra}\r\n",
        body.len()
    )
    .into_bytes();
    if !head {
        out.extend_from_slice(body);
    }
    out
}

async fn connection(mut s: TcpStream, admin: &Admin) -> std::io::Result<()> {
    let mut dec = RequestDecoder::new(Limits {
        max_body: 0,
        ..Limits::default()
    });
    let mut buf = BytesMut::with_capacity(4096);
    let head = tokio::time::timeout(HEAD_TIMEOUT, async {
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(Event::Head(h))) => return Ok::<_, std::io::Error>(Some(h)),
                Ok(Some(_)) => continue,
                Ok(None) => {}
                Err(e) => {
                    let body = format!("{} {}\n", e.status(), e.reason());
                    let r = response(
                        e.status(),
                        e.reason(),
                        "text/plain",
                        "",
                        body.as_bytes(),
                        false,
                    );
                    s.write_all(&r).await?;
                    return Ok(None);
                }
            }
            if s.read_buf(&mut buf).await? == 0 {
                return Ok(None);
            }
        }
    })
    .await
    .unwrap_or(Ok(None))?;
    let Some(head) = head else { return Ok(()) };
    let is_head = head.is_head();
    if head.method() != "GET" && !is_head {
        let r = response(
            405,
            "Method Not Allowed",
            "text/plain",
            "allow: GET, HEAD\r\n",
            b"405 Method Not Allowed\n",
            false,
        );
        return s.write_all(&r).await;
    }
    if !authorized(&head, admin.settings.admin.token.as_deref()) {
        let r = response(
            401,
            "Unauthorized",
            "text/plain",
            "www-authenticate: Bearer realm=\"rswoole admin\"\r\n",
            b"401 Unauthorized: send Authorization: Bearer <admin token>\n",
            is_head,
        );
        return s.write_all(&r).await;
    }
    let r = match head.path() {
        "/metrics" => {
            let body = admin.snapshot().prometheus();
            response(
                200,
                "OK",
                "text/plain; version=0.0.4; charset=utf-8",
                "",
                body.as_bytes(),
                is_head,
            )
        }
        "/stats.json" => {
            let body = admin.snapshot().json().to_string();
            response(200, "OK", "application/json", "", body.as_bytes(), is_head)
        }
        "/" | "/index.html" => response(
            200,
            "OK",
            "text/html; charset=utf-8",
            "",
            DASHBOARD.as_bytes(),
            is_head,
        ),
        "/ws" if head.is_upgrade_websocket() => return feed(s, &head, buf, admin).await,
        _ => response(
            404,
            "Not Found",
            "text/plain",
            "",
            b"404 Not Found: try /metrics or /\n",
            is_head,
        ),
    };
    s.write_all(&r).await
}

/// The dashboard's live feed: a snapshot every [`FEED_INTERVAL`] until the client leaves.
async fn feed(
    mut s: TcpStream,
    head: &RequestHead,
    mut buf: BytesMut,
    admin: &Admin,
) -> std::io::Result<()> {
    let up = match UpgradeRequest::parse("GET", 1, head.headers()) {
        Ok(u) => u,
        Err(e) => {
            let r = response(
                e.status(),
                "Bad Request",
                "text/plain",
                "",
                b"bad WebSocket upgrade\n",
                false,
            );
            return s.write_all(&r).await;
        }
    };
    let accept = up.accept(&[], &Default::default());
    let mut out = BytesMut::new();
    accept.write_response(&mut out);
    s.write_all(&out).await?;
    let (mut rd, mut wr) = s.into_split();
    let reader = async move {
        // Client frames: answered only by ending on Close or EOF (pings are not expected).
        let mut dec = FrameDecoder::new(Role::Server, 64 * 1024);
        loop {
            while let Ok(Some(f)) = dec.decode(&mut buf) {
                if f.header.opcode == OpCode::Close {
                    return;
                }
            }
            match rd.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    let writer = async move {
        let mut tick = tokio::time::interval(FEED_INTERVAL);
        loop {
            tick.tick().await;
            let body = admin.snapshot().json().to_string();
            let mut f = BytesMut::new();
            encode_frame(&mut f, true, false, OpCode::Text, body.as_bytes(), None);
            if wr.write_all(&f).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        _ = reader => {}
        _ = writer => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str) -> RequestHead {
        // HTTP/1.1 wants a Host header.
        let raw = raw.replacen("\r\n", "\r\nhost: a\r\n", 1);
        let mut d = RequestDecoder::new(Limits::default());
        match d.decode(&mut BytesMut::from(raw.as_bytes())) {
            Ok(Some(Event::Head(h))) => h,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn admin_token_from_header_or_query() {
        let t = Some("s3cret");
        assert!(authorized(&head("GET /metrics HTTP/1.1\r\n\r\n"), None));
        assert!(!authorized(&head("GET /metrics HTTP/1.1\r\n\r\n"), t));
        assert!(authorized(
            &head("GET /metrics HTTP/1.1\r\nauthorization: Bearer s3cret\r\n\r\n"),
            t
        ));
        assert!(!authorized(
            &head("GET /metrics HTTP/1.1\r\nauthorization: Bearer s3cre\r\n\r\n"),
            t
        ));
        assert!(authorized(
            &head("GET /ws?x=1&token=s3cret HTTP/1.1\r\n\r\n"),
            t
        ));
        assert!(!authorized(&head("GET /ws?token=nope HTTP/1.1\r\n\r\n"), t));
    }
}
