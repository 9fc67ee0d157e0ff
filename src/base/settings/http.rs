//! HTTP settings (`Settings::http`).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::base::error::Error;

/// Default for [`HttpSettings::header_timeout`]: a client must send a whole request head
/// within this long once it started one (slowloris defence).
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Default for [`HttpSettings::compression_min_length`].
pub const DEFAULT_COMPRESSION_MIN_LENGTH: usize = 1024;

/// HTTP settings (`Settings::http`).
///
/// # Examples
/// ```
/// use rswoole::{http::HttpSettings, Settings};
/// let s = Settings::default().http(HttpSettings::default().enable_static_handler(true).document_root(Some("public".into())));
/// assert!(s.http.enable_static_handler);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HttpSettings {
    /// Serve files under this directory (with `enable_static_handler`). Default none.
    pub document_root: Option<PathBuf>,
    /// Answer requests for existing files under `document_root` without calling the handler.
    /// Default `false`.
    pub enable_static_handler: bool,
    /// gzip responses when the client accepts it and the body is at least
    /// `compression_min_length` bytes. Default `true`.
    pub http_compression: bool,
    /// Smallest body worth compressing. Default [`DEFAULT_COMPRESSION_MIN_LENGTH`].
    pub compression_min_length: usize,
    /// A handler still running after this long is cancelled and the client gets 504. Default
    /// none.
    pub request_timeout: Option<Duration>,
    /// See [`DEFAULT_HEADER_TIMEOUT`].
    pub header_timeout: Duration,
    /// Largest request head (431 beyond). Default 8 KiB.
    pub max_header_size: usize,
    /// Longest request URI (414 beyond). Default 8 KiB.
    pub max_uri_length: usize,
    /// Where uploaded files are written while a request is handled (removed afterwards).
    /// Default: the system temp dir.
    pub upload_tmp_dir: Option<PathBuf>,
    /// Proxies whose `X-Forwarded-For` is believed: for a request from one of them,
    /// [`RequestInfo::remote_addr`](crate::http::RequestInfo::remote_addr) is the client it names. Default none.
    pub trusted_proxies: Vec<IpAddr>,
    /// HTTP/2 on HTTP listeners (h2c by prior knowledge, `h2` by ALPN).
    pub http2: Http2Settings,
}

/// HTTP/2 settings (`Settings::http.http2`): what the server announces and enforces on each
/// HTTP/2 connection.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use rswoole::{http::{Http2Settings, HttpSettings}, Settings};
/// let h2 = Http2Settings::default()
///     .max_concurrent_streams(64)
///     .keepalive_interval(Some(Duration::from_secs(30)));
/// let s = Settings::default().http(HttpSettings::default().http2(h2));
/// assert_eq!(s.http.http2.max_concurrent_streams, 64);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Http2Settings {
    /// Serve HTTP/2 at all (off: the preface is a bad HTTP/1.1 request, ALPN offers only
    /// `http/1.1`). Default `true`.
    pub enabled: bool,
    /// Streams a client may have open at once on one connection. Default 128.
    pub max_concurrent_streams: u32,
    /// Flow-control window of each stream the server receives on (request bodies). Default
    /// 65 535 bytes (the protocol's initial value).
    pub initial_window_size: u32,
    /// Flow-control window of the whole connection the server receives on. Default 1 MiB.
    pub initial_connection_window_size: u32,
    /// Largest frame payload the server accepts (16 KiB to 16 MiB − 1). Default 16 KiB.
    pub max_frame_size: u32,
    /// Largest decoded header list of a request; `None`: `http.max_header_size`.
    pub max_header_list_size: Option<u32>,
    /// Send a PING after this long without one answered; `None` (default): no keepalive.
    pub keepalive_interval: Option<Duration>,
    /// A PING unanswered for this long closes the connection. Default 20 s.
    pub keepalive_timeout: Duration,
}

impl Default for Http2Settings {
    fn default() -> Self {
        Http2Settings {
            enabled: true,
            max_concurrent_streams: 128,
            initial_window_size: 65_535,
            initial_connection_window_size: 1 << 20,
            max_frame_size: 16_384,
            max_header_list_size: None,
            keepalive_interval: None,
            keepalive_timeout: Duration::from_secs(20),
        }
    }
}

impl Http2Settings {
    /// Sets [`enabled`](Self::enabled).
    #[must_use]
    pub fn enabled(mut self, v: bool) -> Self {
        self.enabled = v;
        self
    }
    /// Sets [`max_concurrent_streams`](Self::max_concurrent_streams).
    #[must_use]
    pub fn max_concurrent_streams(mut self, v: u32) -> Self {
        self.max_concurrent_streams = v;
        self
    }
    /// Sets [`initial_window_size`](Self::initial_window_size).
    #[must_use]
    pub fn initial_window_size(mut self, v: u32) -> Self {
        self.initial_window_size = v;
        self
    }
    /// Sets [`initial_connection_window_size`](Self::initial_connection_window_size).
    #[must_use]
    pub fn initial_connection_window_size(mut self, v: u32) -> Self {
        self.initial_connection_window_size = v;
        self
    }
    /// Sets [`max_frame_size`](Self::max_frame_size).
    #[must_use]
    pub fn max_frame_size(mut self, v: u32) -> Self {
        self.max_frame_size = v;
        self
    }
    /// Sets [`max_header_list_size`](Self::max_header_list_size).
    #[must_use]
    pub fn max_header_list_size(mut self, v: Option<u32>) -> Self {
        self.max_header_list_size = v;
        self
    }
    /// Sets [`keepalive_interval`](Self::keepalive_interval).
    #[must_use]
    pub fn keepalive_interval(mut self, v: Option<Duration>) -> Self {
        self.keepalive_interval = v;
        self
    }
    /// Sets [`keepalive_timeout`](Self::keepalive_timeout).
    #[must_use]
    pub fn keepalive_timeout(mut self, v: Duration) -> Self {
        self.keepalive_timeout = v;
        self
    }

    /// Checks the values at start.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        let bad = |name, reason: &str| {
            Err(Error::InvalidSetting {
                name,
                reason: reason.into(),
            })
        };
        const MAX_WINDOW: u32 = (1 << 31) - 1;
        if self.max_concurrent_streams == 0 {
            return bad("http.http2.max_concurrent_streams", "must be at least 1");
        }
        if self.initial_window_size > MAX_WINDOW {
            return bad("http.http2.initial_window_size", "at most 2^31 - 1");
        }
        if !(65_535..=MAX_WINDOW).contains(&self.initial_connection_window_size) {
            return bad(
                "http.http2.initial_connection_window_size",
                "between 65 535 and 2^31 - 1",
            );
        }
        if !(16_384..(1 << 24)).contains(&self.max_frame_size) {
            return bad("http.http2.max_frame_size", "between 16 384 and 2^24 - 1");
        }
        if self.max_header_list_size.is_some_and(|n| n < 64) {
            return bad(
                "http.http2.max_header_list_size",
                "must be at least 64 bytes",
            );
        }
        if self.keepalive_interval.is_some_and(|d| d.is_zero()) {
            return bad(
                "http.http2.keepalive_interval",
                "zero: use None for no keepalive",
            );
        }
        if self.keepalive_timeout.is_zero() {
            return bad("http.http2.keepalive_timeout", "must be above zero");
        }
        Ok(())
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            document_root: None,
            enable_static_handler: false,
            http_compression: true,
            compression_min_length: DEFAULT_COMPRESSION_MIN_LENGTH,
            request_timeout: None,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            max_header_size: rswoole_codec::http1::DEFAULT_MAX_HEAD_BYTES,
            max_uri_length: rswoole_codec::http1::DEFAULT_MAX_URI_LEN,
            upload_tmp_dir: None,
            trusted_proxies: Vec::new(),
            http2: Http2Settings::default(),
        }
    }
}

impl HttpSettings {
    /// Sets [`document_root`](Self::document_root), for building the settings in one expression:
    /// `HttpSettings::default().http_compression(false)`.
    #[must_use]
    pub fn document_root(mut self, document_root: Option<PathBuf>) -> Self {
        self.document_root = document_root;
        self
    }

    /// Sets [`enable_static_handler`](Self::enable_static_handler), for building the settings in one expression:
    /// `HttpSettings::default().http_compression(false)`.
    #[must_use]
    pub fn enable_static_handler(mut self, enable_static_handler: bool) -> Self {
        self.enable_static_handler = enable_static_handler;
        self
    }

    /// Sets [`http_compression`](Self::http_compression), for building the settings in one expression:
    /// `HttpSettings::default().http_compression(false)`.
    #[must_use]
    pub fn http_compression(mut self, http_compression: bool) -> Self {
        self.http_compression = http_compression;
        self
    }

    /// Sets [`compression_min_length`](Self::compression_min_length), for building the settings in one expression:
    /// `HttpSettings::default().http_compression(false)`.
    #[must_use]
    pub fn compression_min_length(mut self, compression_min_length: usize) -> Self {
        self.compression_min_length = compression_min_length;
        self
    }

    /// Sets [`request_timeout`](Self::request_timeout), for building the settings in one expression:
    /// `HttpSettings::default().http_compression(false)`.
    #[must_use]
    pub fn request_timeout(mut self, request_timeout: Option<Duration>) -> Self {
        self.request_timeout = request_timeout;
        self
    }

    /// Sets [`header_timeout`](Self::header_timeout), for building the settings in one expression:
    /// `HttpSettings::default().http_compression(false)`.
    #[must_use]
    pub fn header_timeout(mut self, header_timeout: Duration) -> Self {
        self.header_timeout = header_timeout;
        self
    }

    /// Sets [`max_header_size`](Self::max_header_size), for building the settings in one expression:
    /// `HttpSettings::default().http_compression(false)`.
    #[must_use]
    pub fn max_header_size(mut self, max_header_size: usize) -> Self {
        self.max_header_size = max_header_size;
        self
    }

    /// Sets [`max_uri_length`](Self::max_uri_length), for building the settings in one expression:
    /// `HttpSettings::default().http_compression(false)`.
    #[must_use]
    pub fn max_uri_length(mut self, max_uri_length: usize) -> Self {
        self.max_uri_length = max_uri_length;
        self
    }

    /// Sets [`upload_tmp_dir`](Self::upload_tmp_dir), for building the settings in one expression:
    /// `HttpSettings::default().http_compression(false)`.
    #[must_use]
    pub fn upload_tmp_dir(mut self, upload_tmp_dir: Option<PathBuf>) -> Self {
        self.upload_tmp_dir = upload_tmp_dir;
        self
    }

    /// Sets [`trusted_proxies`](Self::trusted_proxies), for building the settings in one expression:
    /// `HttpSettings::default().http_compression(false)`.
    #[must_use]
    pub fn trusted_proxies(mut self, trusted_proxies: Vec<IpAddr>) -> Self {
        self.trusted_proxies = trusted_proxies;
        self
    }

    /// Sets [`http2`](Self::http2).
    #[must_use]
    pub fn http2(mut self, http2: Http2Settings) -> Self {
        self.http2 = http2;
        self
    }
}

impl HttpSettings {
    /// Checks the values at start (nothing is clamped silently).
    pub(crate) fn validate(&self) -> Result<(), Error> {
        let bad = |name, reason: &str| {
            Err(Error::InvalidSetting {
                name,
                reason: reason.into(),
            })
        };
        if self.enable_static_handler && self.document_root.is_none() {
            return bad(
                "http.enable_static_handler",
                "the static handler needs a document_root",
            );
        }
        if self.header_timeout.is_zero() {
            return bad("http.header_timeout", "must be above zero");
        }
        if self.request_timeout.is_some_and(|d| d.is_zero()) {
            return bad("http.request_timeout", "zero: use None for no limit");
        }
        if self.max_header_size < 64 {
            return bad("http.max_header_size", "must be at least 64 bytes");
        }
        if self.max_uri_length == 0 {
            return bad("http.max_uri_length", "must be at least 1 byte");
        }
        self.http2.validate()
    }
}
