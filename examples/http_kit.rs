//! A configurable HTTP server used by the integration tests (and a tour of the HTTP API).
//!
//! Routes: `/hello`; `/tls` (whether TLS, the client certificate's SHA-256); `/echo` (body back); `/form` (post fields); `/upload` (files: field,
//! name, type, size, and whether the temp file exists; with `?detail=1` also its path and
//! permission bits); `/query` (get params); `/cookie`
//! (sets cookies, echoes the request's); `/headers` (echoes request headers); `/stream`
//! (three chunked writes); `/sleep?ms=N`; `/crash` (kills the worker mid-request);
//! `/noend` (returns without end); `/late-header` (header after end → reports the error);
//! `/redirect`; `/file?path=P` (sendfile); `/big?n=N` (N bytes of text, compressible);
//! `/remote` (client address as the server sees it); `/pid`; `/handle` (the handler's
//! `Handle`: a timer, the worker id, the stats); `/count?shop=S` (adds 1 to the user metric
//! `orders_total{shop=S}` and answers the worker id).
use std::time::Duration;

use clap::Parser;
use rswoole::http::{HttpServer, HttpSettings, SameSite, SetCookie};
use rswoole::{AccessLogFormat, AdminSettings, Mode, Settings};

#[derive(Parser, Debug)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:9501")]
    addr: String,
    #[arg(long, default_value = "process")]
    mode: String,
    #[arg(long, default_value_t = 2)]
    worker_num: usize,
    #[arg(long)]
    document_root: Option<std::path::PathBuf>,
    #[arg(long)]
    request_timeout_ms: Option<u64>,
    #[arg(long, default_value_t = 2 * 1024 * 1024)]
    package_max_length: usize,
    #[arg(long, default_value_t = 10_000)]
    header_timeout_ms: u64,
    #[arg(long, default_value_t = 8192)]
    max_uri_length: usize,
    #[arg(long)]
    trusted_proxy: Vec<std::net::IpAddr>,
    /// Also listen for raw TCP here (echo), to show several protocols on one server.
    #[arg(long)]
    tcp: Option<String>,
    /// Where uploads are written while a request is handled (`upload_tmp_dir`).
    #[arg(long)]
    upload_tmp_dir: Option<std::path::PathBuf>,
    /// TLS: `--cert --key [--client-ca]` (https).
    #[command(flatten)]
    tls: rswoole::cli::TlsArgs,
    /// Admin listener (`/metrics`, dashboard).
    #[arg(long)]
    admin: Option<std::net::SocketAddr>,
    /// Admin bearer token.
    #[arg(long)]
    admin_token: Option<String>,
    /// HTTP access log file.
    #[arg(long)]
    access_log: Option<std::path::PathBuf>,
    /// Access log as JSON lines.
    #[arg(long)]
    access_log_json: bool,
}

fn main() -> rswoole::Result<()> {
    let a = Args::parse();
    let mut server = HttpServer::bind(&a.addr)?;
    server.set(
        Settings::default()
            .worker_num(a.worker_num)
            .mode(if a.mode == "base" {
                Mode::Base
            } else {
                Mode::Process
            })
            .package_max_length(a.package_max_length)
            .tls(a.tls.settings())
            .http(
                HttpSettings::default()
                    .enable_static_handler(a.document_root.is_some())
                    .document_root(a.document_root.clone())
                    .request_timeout(a.request_timeout_ms.map(Duration::from_millis))
                    .header_timeout(Duration::from_millis(a.header_timeout_ms))
                    .trusted_proxies(a.trusted_proxy.clone())
                    .max_uri_length(a.max_uri_length)
                    .upload_tmp_dir(a.upload_tmp_dir.clone()),
            )
            .admin(
                AdminSettings::default()
                    .addr(a.admin)
                    .token(a.admin_token.clone())
                    .access_log(a.access_log.clone())
                    .access_log_format(if a.access_log_json {
                        AccessLogFormat::Json
                    } else {
                        AccessLogFormat::Combined
                    }),
            ),
    );
    if let Some(t) = &a.tcp {
        server
            .add_listener(t, rswoole::SockType::Tcp)?
            .on_receive(
                |srv, ev| async move { srv.send(ev.fd, [&b"tcp:"[..], &ev.data[..]].concat()) },
            );
    }
    server.on_request(|srv, req, mut resp| async move {
        let q = |k: &str| req.get.get(k).unwrap_or("").to_string();
        match req.path.as_str() {
            "/hello" => resp.end("Hello World"),
            "/tls" => resp.end(format!(
                "tls={} peer={}",
                req.server.tls,
                req.server.peer_cert_sha256.map_or("none".to_string(), |f| {
                    f.iter().map(|b| format!("{b:02x}")).collect()
                })
            )),
            "/handle" => {
                // The handler has the worker's Handle: a timer (whose callback gets it too),
                // the stats.
                let (tx, rx) = tokio::sync::oneshot::channel();
                srv.after(Duration::from_millis(10), move |srv| async move {
                    let _ = tx.send(srv.worker_id());
                });
                let from_timer = rx.await.unwrap_or(usize::MAX);
                resp.end(format!(
                    "worker={} timer_worker={from_timer} connections={}",
                    srv.worker_id(),
                    srv.stats().connections
                ))
            }
            "/echo" => {
                resp.header("x-method", &req.method)?;
                resp.end(&req.body)
            }
            "/form" => {
                let s: Vec<String> = req.post.iter().map(|(k, v)| format!("{k}={v}")).collect();
                resp.end(s.join("&"))
            }
            "/upload" => {
                let mut out = String::new();
                for (k, v) in req.post.iter() {
                    out.push_str(&format!("field {k}={v}\n"));
                }
                for f in &req.files {
                    out.push_str(&format!(
                        "file {} {} {} {} exists={}",
                        f.field,
                        f.name,
                        f.content_type,
                        f.size,
                        f.tmp_path.exists()
                    ));
                    if q("detail") == "1" {
                        use std::os::unix::fs::PermissionsExt;
                        let mode = std::fs::symlink_metadata(&f.tmp_path)
                            .map(|m| format!("{:o}", m.permissions().mode() & 0o7777))
                            .unwrap_or_else(|e| e.to_string());
                        out.push_str(&format!(" path={} mode={mode}", f.tmp_path.display()));
                    }
                    out.push('\n');
                }
                resp.end(out)
            }
            "/query" => {
                let s: Vec<String> = req.get.iter().map(|(k, v)| format!("{k}={v}")).collect();
                resp.end(s.join("&"))
            }
            "/cookie" => {
                resp.set_cookie(
                    &SetCookie::new("session", "a b;c")
                        .path("/")
                        .http_only(true)
                        .same_site(SameSite::Lax)
                        .max_age(60),
                )?;
                resp.cookie("plain", "1")?;
                let s: Vec<String> = req.cookie.iter().map(|(k, v)| format!("{k}={v}")).collect();
                resp.end(s.join("&"))
            }
            "/headers" => {
                let s: Vec<String> = req
                    .header
                    .iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect();
                resp.end(s.join("\n"))
            }
            "/stream" => {
                resp.header("content-type", "text/plain")?;
                for i in 0..3 {
                    resp.write(format!("part{i};"))?;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                resp.end("")
            }
            "/sleep" => {
                let ms: u64 = q("ms").parse().unwrap_or(100);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                resp.end(format!("slept {ms}"))
            }
            "/crash" => {
                tokio::time::sleep(Duration::from_millis(q("ms").parse().unwrap_or(0))).await;
                std::process::abort()
            }
            "/noend" => Ok(()),
            "/late-header" => {
                resp.end("done")?;
                match resp.header("x-late", "1") {
                    Err(e) => println!("late header error: {e}"),
                    Ok(_) => println!("late header accepted (bug)"),
                }
                Ok(())
            }
            "/redirect" => resp.redirect("/hello", 302),
            "/file" => resp.sendfile(q("path")),
            "/big" => {
                let n: usize = q("n").parse().unwrap_or(10_000);
                resp.header("content-type", "text/plain")?;
                resp.end("abcdefghij".repeat(n / 10))
            }
            "/remote" => resp.end(req.server.remote_addr.ip().to_string()),
            "/pid" => resp.end(std::process::id().to_string()),
            "/count" => {
                rswoole::metrics::counter!("orders_total", "shop" => q("shop")).increment(1);
                resp.end(srv.worker_id().to_string())
            }
            _ => {
                resp.status(404)?;
                resp.end("not found")
            }
        }
    });
    server.start()
}
