//! TLS settings of a listener ([`TlsSettings`]): [`Settings::tls`](crate::Settings::tls) for the
//! server's first listener, [`Port::set_tls`](crate::Port::set_tls) for the others.

use std::path::PathBuf;
use std::time::Duration;

use crate::base::error::Error;

/// Default for [`TlsSettings::handshake_timeout`]: a client that has not finished its TLS
/// handshake this long after connecting is cut.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether a listener with a client CA requires a client certificate.
///
/// # Examples
/// ```
/// use rswoole::tls::ClientAuth;
/// assert_eq!(ClientAuth::default(), ClientAuth::Required);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ClientAuth {
    /// A client without a certificate signed by the CA fails the handshake (mTLS).
    #[default]
    Required,
    /// A client may present no certificate; one it presents must verify.
    Optional,
}

/// The oldest TLS version a listener accepts.
///
/// # Examples
/// ```
/// use rswoole::tls::TlsVersion;
/// assert_eq!(TlsVersion::default(), TlsVersion::Tls12);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, PartialOrd, Ord)]
#[non_exhaustive]
pub enum TlsVersion {
    /// TLS 1.2 and 1.3.
    #[default]
    Tls12,
    /// TLS 1.3 only.
    Tls13,
}

/// TLS on one listener: the certificate chain and key (PEM files), optional client
/// certificate verification, ALPN, the oldest version, the handshake timeout.
///
/// The files are read and checked at start (a bad file is a start-up error) and again by
/// `rswoole reload-certs` (see [`control`](crate::control)), by `SIGRTMIN+1` to the master,
/// and, with [`watch`](Self::watch), when they change.
///
/// # Examples
/// ```
/// use rswoole::tls::{ClientAuth, TlsSettings, TlsVersion};
/// use rswoole::Settings;
/// let tls = TlsSettings::new("/etc/app/cert.pem", "/etc/app/key.pem")
///     .client_ca(Some("/etc/app/ca.pem".into()), ClientAuth::Required)
///     .min_version(TlsVersion::Tls13);
/// let s = Settings::default().tls(Some(tls));
/// assert!(s.tls.is_some());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsSettings {
    /// PEM file with the certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// PEM file with the CA certificates client certificates must chain to; `None` (default):
    /// no client certificates are asked for.
    pub client_ca_file: Option<PathBuf>,
    /// With a client CA: whether a certificate is required. Default [`ClientAuth::Required`].
    pub client_auth: ClientAuth,
    /// ALPN protocols offered, in order of preference. Empty (default): `http/1.1` on HTTP
    /// and WebSocket listeners, none on stream listeners.
    pub alpn: Vec<Vec<u8>>,
    /// The oldest version accepted. Default [`TlsVersion::Tls12`].
    pub min_version: TlsVersion,
    /// How long a client may take to finish the handshake. Default
    /// [`DEFAULT_HANDSHAKE_TIMEOUT`].
    pub handshake_timeout: Duration,
    /// Poll the certificate, key and client CA files this often and reload them when they
    /// changed (and then stayed the same for one period). `None` (default): only
    /// `rswoole reload-certs` or `SIGRTMIN+1` reload them.
    pub watch: Option<Duration>,
}

impl TlsSettings {
    /// TLS with the certificate chain in `cert_file` and the key in `key_file` (PEM).
    ///
    /// # Examples
    /// ```
    /// let tls = rswoole::tls::TlsSettings::new("cert.pem", "key.pem");
    /// assert!(tls.client_ca_file.is_none());
    /// ```
    pub fn new(cert_file: impl Into<PathBuf>, key_file: impl Into<PathBuf>) -> TlsSettings {
        TlsSettings {
            cert_file: cert_file.into(),
            key_file: key_file.into(),
            client_ca_file: None,
            client_auth: ClientAuth::Required,
            alpn: Vec::new(),
            min_version: TlsVersion::Tls12,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            watch: None,
        }
    }

    /// Sets [`client_ca_file`](Self::client_ca_file) and [`client_auth`](Self::client_auth).
    ///
    /// # Examples
    /// ```
    /// use rswoole::tls::{ClientAuth, TlsSettings};
    /// let t = TlsSettings::new("c.pem", "k.pem").client_ca(Some("ca.pem".into()), ClientAuth::Optional);
    /// assert_eq!(t.client_auth, ClientAuth::Optional);
    /// ```
    #[must_use]
    pub fn client_ca(mut self, ca_file: Option<PathBuf>, auth: ClientAuth) -> Self {
        self.client_ca_file = ca_file;
        self.client_auth = auth;
        self
    }

    /// Sets [`alpn`](Self::alpn).
    ///
    /// # Examples
    /// ```
    /// let t = rswoole::tls::TlsSettings::new("c.pem", "k.pem").alpn(vec![b"http/1.1".to_vec()]);
    /// assert_eq!(t.alpn.len(), 1);
    /// ```
    #[must_use]
    pub fn alpn(mut self, alpn: Vec<Vec<u8>>) -> Self {
        self.alpn = alpn;
        self
    }

    /// Sets [`min_version`](Self::min_version).
    ///
    /// # Examples
    /// ```
    /// use rswoole::tls::{TlsSettings, TlsVersion};
    /// let t = TlsSettings::new("c.pem", "k.pem").min_version(TlsVersion::Tls13);
    /// assert_eq!(t.min_version, TlsVersion::Tls13);
    /// ```
    #[must_use]
    pub fn min_version(mut self, min_version: TlsVersion) -> Self {
        self.min_version = min_version;
        self
    }

    /// Sets [`handshake_timeout`](Self::handshake_timeout).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// let t = rswoole::tls::TlsSettings::new("c.pem", "k.pem").handshake_timeout(Duration::from_secs(3));
    /// assert_eq!(t.handshake_timeout, Duration::from_secs(3));
    /// ```
    #[must_use]
    pub fn handshake_timeout(mut self, handshake_timeout: Duration) -> Self {
        self.handshake_timeout = handshake_timeout;
        self
    }

    /// Sets [`watch`](Self::watch): check the files every `every` and reload them when they
    /// change. A file caught half-written is refused (the old certificate keeps serving) and
    /// tried again at its next change.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// let t = rswoole::tls::TlsSettings::new("c.pem", "k.pem").watch(Duration::from_secs(30));
    /// assert_eq!(t.watch, Some(Duration::from_secs(30)));
    /// ```
    #[must_use]
    pub fn watch(mut self, every: Duration) -> Self {
        self.watch = Some(every);
        self
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        let bad = |reason: &str| Error::InvalidSetting {
            name: "tls",
            reason: reason.to_string(),
        };
        if self.cert_file.as_os_str().is_empty() || self.key_file.as_os_str().is_empty() {
            return Err(bad("cert_file and key_file must be given"));
        }
        if self.handshake_timeout.is_zero() {
            return Err(bad("handshake_timeout must be above zero"));
        }
        if self.watch.is_some_and(|w| w < Duration::from_millis(10)) {
            return Err(bad("watch: poll the files at most every 10 ms"));
        }
        if self.alpn.iter().any(|p| p.is_empty() || p.len() > 255) {
            return Err(bad("an ALPN protocol name is 1 to 255 bytes"));
        }
        Ok(())
    }
}
