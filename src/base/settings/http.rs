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
        Ok(())
    }
}
