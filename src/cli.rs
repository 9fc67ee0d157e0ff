//! The flags every example takes, through one small helper, so users and tests vary settings
//! without editing code.
//!
//! ```no_run
//! use rswoole::cli::ExampleArgs;
//! let args = ExampleArgs::parse_or_exit("127.0.0.1", 9501);
//! let settings = args.settings();
//! # let _ = (args.addr(), settings);
//! ```

use std::path::PathBuf;

use clap::Parser;

use crate::base::{AccessLogFormat, AdminSettings, DispatchMode, Mode, Settings};
use rswoole_codec::stream::{Framing, LengthSpec, LengthType};

/// Flags shared by the examples: `--host`, `--port`, `--mode base|process`, `--worker-num`,
/// `--task-worker-num`, `--reactor-num`, `--dispatch-mode`, `--daemonize`, `--pid-file`,
/// `--log-file`, `--framing`, `--package-max-length`, `--max-wait-time-ms`,
/// `--half-close-timeout-ms`, `--request-timeout-ms`, `--max-request`, `--admin`,
/// `--admin-token`, `--access-log`, `--access-log-format`, `--redis`, `--node`,
/// `--redis-ca` and `--cluster-task-claim-ms` (a cluster node), and the TLS flags ([`TlsArgs`]: `--cert`, `--key`, `--client-ca`).
///
/// # Examples
///
/// ```
/// use rswoole::cli::ExampleArgs;
/// use rswoole::Mode;
/// // `my_example --port 9600 --mode base --worker-num 2` would give port 9600, Base, 2 workers;
/// // with no flags the defaults given here apply.
/// let args = ExampleArgs::parse_or_exit("127.0.0.1", 9501);
/// assert_eq!(args.addr(), "127.0.0.1:9501");
/// assert_eq!(args.settings().mode, Mode::Process);
/// ```
#[derive(Debug, Clone, Parser)]
#[command(about = None, long_about = None)]
pub struct ExampleArgs {
    /// Address to listen on.
    #[arg(long)]
    pub host: Option<String>,
    /// Port to listen on.
    #[arg(long)]
    pub port: Option<u16>,
    /// `process` (the master owns connections) or `base` (each worker accepts).
    #[arg(long, default_value = "process")]
    pub mode: String,
    /// Worker processes (0 = one per CPU).
    #[arg(long, default_value_t = 0)]
    pub worker_num: usize,
    /// Task worker processes.
    #[arg(long, default_value_t = 0)]
    pub task_worker_num: usize,
    /// Reactor threads in the master (0 = one per CPU).
    #[arg(long, default_value_t = 0)]
    pub reactor_num: usize,
    /// Swoole's dispatch_mode: 1 round robin, 2 fixed (default), 3 preemptive, 4 by IP, 5 by uid.
    #[arg(long, default_value_t = 2)]
    pub dispatch_mode: u8,
    /// Detach and run in the background.
    #[arg(long)]
    pub daemonize: bool,
    /// Where to write the master's pid.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Where to write logs.
    #[arg(long)]
    pub log_file: Option<PathBuf>,
    /// Stream framing (see [`parse_framing`]): `raw`, `eof`, `eof:TEXT`, `length`,
    /// `length:CODE:LENGTH_OFFSET:BODY_OFFSET`. Default: the example's own (raw for most).
    #[arg(long)]
    pub framing: Option<String>,
    /// Longest framed message in bytes (`package_max_length`).
    #[arg(long)]
    pub package_max_length: Option<usize>,
    /// How long a stopping worker may finish its work, in milliseconds (`max_wait_time`).
    #[arg(long)]
    pub max_wait_time_ms: Option<u64>,
    /// How long a half-closed connection waits for the replies still owed to it, in
    /// milliseconds (`half_close_timeout`; 0 closes at the client's FIN).
    #[arg(long)]
    pub half_close_timeout_ms: Option<u64>,
    /// How long a connection stays idle before it waits without a task, in milliseconds
    /// (`park_idle_after`; 0 parks at once; `--no-park` never).
    #[arg(long)]
    pub park_idle_after_ms: Option<u64>,
    /// Idle connections keep their task (`park_idle_after` = `None`).
    #[arg(long)]
    pub no_park: bool,
    /// HTTP: how long a request handler may run before the request is answered 504, in
    /// milliseconds (`http.request_timeout`; none by default).
    #[arg(long)]
    pub request_timeout_ms: Option<u64>,
    /// Recycle a worker after this many events (`max_request`; 0, the default, never).
    #[arg(long, default_value_t = 0)]
    pub max_request: u64,
    /// HTTP/2: streams a client may have open at once on one connection
    /// (`http.http2.max_concurrent_streams`).
    #[arg(long)]
    pub http2_max_streams: Option<u32>,
    /// HTTP/2: send a keepalive PING after this many milliseconds; an unanswered one closes
    /// the connection after `--http2-keepalive-timeout-ms` (`http.http2.keepalive_*`).
    #[arg(long)]
    pub http2_keepalive_ms: Option<u64>,
    /// HTTP/2: how long a keepalive PING may go unanswered, in milliseconds.
    #[arg(long)]
    pub http2_keepalive_timeout_ms: Option<u64>,
    /// WebSocket permessage-deflate with context takeover when the client offers it
    /// (`websocket.compression_context_takeover = true`; off by default).
    #[arg(long)]
    pub ws_context_takeover: bool,
    /// Serve HTTP/1.1 only (no h2c, no ALPN `h2`).
    #[arg(long)]
    pub no_http2: bool,
    /// TLS on the listener: `--cert`, `--key`, `--client-ca`.
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Serve `/metrics` (Prometheus) and the live dashboard at `/` on this address, e.g.
    /// `127.0.0.1:9600` (`admin.addr`; off by default).
    #[arg(long)]
    pub admin: Option<std::net::SocketAddr>,
    /// Bearer token the admin listener requires (`admin.token`).
    #[arg(long)]
    pub admin_token: Option<String>,
    /// Append an HTTP access log here (`admin.access_log`).
    #[arg(long)]
    pub access_log: Option<PathBuf>,
    /// Access log format: `combined` (default) or `json`.
    #[arg(long, default_value = "combined")]
    pub access_log_format: String,
    /// Join a cluster through this Redis (`redis://host:port[/db]`); needs `--node`.
    #[arg(long, requires = "node")]
    pub redis: Option<String>,
    /// This node's name in the cluster (with `--redis`).
    #[arg(long, requires = "redis")]
    pub node: Option<String>,
    /// With a `rediss://` `--redis` URL: trust the CA certificates (PEM) of this file instead
    /// of the system's roots (`cluster.tls_ca`).
    #[arg(long, requires = "redis")]
    pub redis_ca: Option<PathBuf>,
    /// An extra plain TCP listener on this port (same host) with length framing (a 4-byte
    /// big-endian length, then the body), for examples that serve both HTTP and a stream
    /// protocol (`upgrade_kit`).
    #[arg(long)]
    pub stream_port: Option<u16>,
    /// How long a cluster task may stay with a silent node before another takes it over, in
    /// ms (`cluster.task_claim_timeout`; with `--redis`).
    #[arg(long, requires = "redis")]
    pub cluster_task_claim_ms: Option<u64>,
    #[arg(skip)]
    default_host: String,
    #[arg(skip)]
    default_port: u16,
}

impl ExampleArgs {
    /// Parses the process's arguments with these defaults; prints usage and exits on a bad flag.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::cli::ExampleArgs;
    /// use rswoole::Server;
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let args = ExampleArgs::parse_or_exit("127.0.0.1", 9501); // `--port 9600` etc.
    ///     let mut server = Server::bind(&args.addr())?;
    ///     server.set(args.settings());
    ///     server.on_receive(|srv, ev| async move { srv.send(ev.fd, ev.data) });
    ///     server.start()
    /// }
    /// ```
    pub fn parse_or_exit(default_host: &str, default_port: u16) -> ExampleArgs {
        let mut a = ExampleArgs::parse();
        a.default_host = default_host.to_string();
        a.default_port = default_port;
        a
    }

    /// `host:port` to bind (IPv6 hosts are bracketed).
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole::cli::ExampleArgs;
    /// let mut args = ExampleArgs::parse_or_exit("127.0.0.1", 9501);
    /// args.host = Some("::1".into()); // as `--host ::1`
    /// assert_eq!(args.addr(), "[::1]:9501");
    /// ```
    pub fn addr(&self) -> String {
        let host = self
            .host
            .clone()
            .unwrap_or_else(|| self.default_host.clone());
        let port = self.port.unwrap_or(self.default_port);
        if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        }
    }

    /// The settings these flags describe (other fields at their defaults).
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole::cli::ExampleArgs;
    /// use rswoole::{Framing, Mode};
    /// let mut args = ExampleArgs::parse_or_exit("127.0.0.1", 9501);
    /// args.mode = "base".into(); // as `--mode base --worker-num 3 --framing eof`
    /// args.worker_num = 3;
    /// args.framing = Some("eof".into());
    /// let s = args.settings();
    /// assert_eq!((s.mode, s.worker_num), (Mode::Base, 3));
    /// assert!(matches!(s.framing, Framing::Eof { split: true, .. }));
    /// ```
    pub fn settings(&self) -> Settings {
        let mode = match self.mode.as_str() {
            "base" | "BASE" => Mode::Base,
            "process" | "PROCESS" => Mode::Process,
            other => {
                eprintln!("error: --mode must be `base` or `process`, not `{other}`");
                std::process::exit(2);
            }
        };
        let dispatch_mode = match DispatchMode::from_swoole(self.dispatch_mode) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(2);
            }
        };
        let mut s = Settings::default()
            .worker_num(self.worker_num)
            .task_worker_num(self.task_worker_num)
            .reactor_num(self.reactor_num)
            .mode(mode)
            .dispatch_mode(dispatch_mode)
            .daemonize(self.daemonize)
            .pid_file(self.pid_file.clone())
            .log_file(self.log_file.clone())
            .framing(match self.framing.as_deref().map(parse_framing) {
                None => Framing::Raw,
                Some(Ok(f)) => f,
                Some(Err(e)) => {
                    eprintln!("error: --framing: {e}");
                    std::process::exit(2);
                }
            })
            .package_max_length(
                self.package_max_length
                    .unwrap_or(crate::base::settings::DEFAULT_PACKAGE_MAX_LENGTH),
            )
            .max_wait_time(self.max_wait_time_ms.map_or(
                crate::base::settings::DEFAULT_MAX_WAIT_TIME,
                std::time::Duration::from_millis,
            ))
            .max_request(self.max_request)
            .half_close_timeout(self.half_close_timeout_ms.map_or(
                crate::base::settings::DEFAULT_HALF_CLOSE_TIMEOUT,
                std::time::Duration::from_millis,
            ))
            .park_idle_after((!self.no_park).then(|| {
                self.park_idle_after_ms.map_or(
                    crate::base::settings::DEFAULT_PARK_IDLE_AFTER,
                    std::time::Duration::from_millis,
                )
            }));
        if let (Some(url), Some(node)) = (&self.redis, &self.node) {
            let mut c = crate::base::ClusterSettings::new(url, node);
            if let Some(ms) = self.cluster_task_claim_ms {
                c = c.task_claim_timeout(std::time::Duration::from_millis(ms));
            }
            if let Some(ca) = &self.redis_ca {
                c = c.tls_ca(ca);
            }
            s = s.cluster(Some(c));
        }
        s.websocket.compression_context_takeover = self.ws_context_takeover;
        s.http.request_timeout = self
            .request_timeout_ms
            .map(std::time::Duration::from_millis);
        let h2 = &mut s.http.http2;
        if let Some(n) = self.http2_max_streams {
            h2.max_concurrent_streams = n;
        }
        h2.keepalive_interval = self
            .http2_keepalive_ms
            .map(std::time::Duration::from_millis);
        if let Some(ms) = self.http2_keepalive_timeout_ms {
            h2.keepalive_timeout = std::time::Duration::from_millis(ms);
        }
        h2.enabled = !self.no_http2;
        s.tls = self.tls.settings();
        let format = match self.access_log_format.as_str() {
            "combined" => AccessLogFormat::Combined,
            "json" => AccessLogFormat::Json,
            other => {
                eprintln!("error: --access-log-format must be `combined` or `json`, not `{other}`");
                std::process::exit(2);
            }
        };
        s.admin = AdminSettings::default()
            .addr(self.admin)
            .token(self.admin_token.clone())
            .access_log(self.access_log.clone())
            .access_log_format(format);
        s
    }
}

/// The TLS flags: `--cert FILE --key FILE` (PEM) serve TLS on the listener, `--client-ca FILE`
/// requires client certificates signed by that CA. A kit with flags of its own flattens it
/// (`#[command(flatten)]`).
///
/// # Examples
///
/// ```
/// use rswoole::cli::TlsArgs;
/// let mut t = TlsArgs::default();
/// assert!(t.settings().is_none()); // plain
/// t.cert = Some("cert.pem".into());
/// t.key = Some("key.pem".into());
/// assert_eq!(t.settings().unwrap().cert_file, std::path::Path::new("cert.pem"));
/// ```
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsArgs {
    /// PEM certificate chain: serve TLS (https, wss, TCP+TLS) on the listener (with `--key`).
    #[arg(long, requires = "key")]
    pub cert: Option<PathBuf>,
    /// PEM private key of `--cert`.
    #[arg(long, requires = "cert")]
    pub key: Option<PathBuf>,
    /// PEM CA certificates: require client certificates signed by them (mTLS).
    #[arg(long, requires = "cert")]
    pub client_ca: Option<PathBuf>,
    /// With `--client-ca`: a client may also connect without a certificate.
    #[arg(long, requires = "client_ca")]
    pub client_cert_optional: bool,
    /// Most milliseconds a client may take to finish its TLS handshake.
    #[arg(long)]
    pub handshake_timeout_ms: Option<u64>,
    /// Check the certificate, key and client CA files every SECS seconds (fractions allowed)
    /// and reload them when they change.
    #[arg(long, value_name = "SECS", requires = "cert")]
    pub watch_certs: Option<f64>,
}

impl TlsArgs {
    /// The TLS settings these flags describe; `None` without `--cert`.
    pub fn settings(&self) -> Option<crate::base::settings::tls::TlsSettings> {
        use crate::base::settings::tls::{ClientAuth, TlsSettings};
        let (cert, key) = (self.cert.clone()?, self.key.clone()?);
        let mut t = TlsSettings::new(cert, key).client_ca(
            self.client_ca.clone(),
            if self.client_cert_optional {
                ClientAuth::Optional
            } else {
                ClientAuth::Required
            },
        );
        if let Some(ms) = self.handshake_timeout_ms {
            t = t.handshake_timeout(std::time::Duration::from_millis(ms));
        }
        if let Some(secs) = self.watch_certs {
            // A negative or absurd value is clamped to zero and refused by validation.
            let every = std::time::Duration::try_from_secs_f64(secs).unwrap_or_default();
            t = t.watch(every);
        }
        Some(t)
    }
}

/// Parses a `--framing` value:
///
/// - `raw`: no framing (each read is a message);
/// - `eof`: split on `\r\n` (`open_eof_split`); `eof:TEXT`: split on TEXT, where `\r`, `\n`,
///   `\0` and `\\` are escapes;
/// - `length`: a 4-byte big-endian length (`N`) at offset 0, body at offset 4;
///   `length:CODE:LENGTH_OFFSET:BODY_OFFSET` with a `pack()` code (`c C s S n N v V l L q Q J P`).
///
/// # Errors
/// A text saying what is wrong.
///
/// # Examples
/// ```
/// use rswoole::cli::parse_framing;
/// use rswoole::{Framing, LengthSpec, LengthType};
///
/// assert!(matches!(parse_framing("length:n:2:4"),
///     Ok(Framing::Length(s)) if s == LengthSpec::new(LengthType::U16Be, 2, 4)));
/// assert!(matches!(parse_framing("eof:\\n"), Ok(Framing::Eof { eof, split: true }) if eof == b"\n"));
/// assert!(parse_framing("bogus").is_err());
/// ```
pub fn parse_framing(s: &str) -> Result<Framing, String> {
    let mut parts = s.split(':');
    match parts.next().unwrap_or("") {
        "raw" => Ok(Framing::Raw),
        "eof" => {
            let text = s.strip_prefix("eof:").unwrap_or("\\r\\n");
            let mut eof = Vec::new();
            let mut chars = text.chars();
            while let Some(c) = chars.next() {
                if c != '\\' {
                    let mut b = [0u8; 4];
                    eof.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
                    continue;
                }
                eof.push(match chars.next() {
                    Some('r') => b'\r',
                    Some('n') => b'\n',
                    Some('0') => 0,
                    Some('\\') => b'\\',
                    other => return Err(format!("unknown escape \\{other:?} in {s:?}")),
                });
            }
            Ok(Framing::Eof { eof, split: true })
        }
        "length" => {
            let rest: Vec<&str> = parts.collect();
            if rest.is_empty() {
                return Ok(Framing::Length(LengthSpec::new(LengthType::U32Be, 0, 4)));
            }
            let [code, off, body] = rest[..] else {
                return Err(format!("{s:?}: want length:CODE:LENGTH_OFFSET:BODY_OFFSET"));
            };
            let mut cs = code.chars();
            let t = match (cs.next(), cs.next()) {
                (Some(c), None) => LengthType::from_pack_code(c),
                _ => None,
            }
            .ok_or_else(|| format!("{code:?} is not a pack() length code"))?;
            let num = |v: &str| v.parse::<usize>().map_err(|e| format!("{v:?}: {e}"));
            Ok(Framing::Length(LengthSpec::new(t, num(off)?, num(body)?)))
        }
        other => Err(format!(
            "{other:?} is not raw, eof[:TEXT] or length[:CODE:LENGTH_OFFSET:BODY_OFFSET]"
        )),
    }
}
