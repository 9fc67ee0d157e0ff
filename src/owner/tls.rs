//! TLS where the socket lives: one [`TlsListener`] per TLS listener (its rustls
//! `ServerConfig`, built once at start, and the live certificate behind it), and the checks
//! a certificate passes before it is served.
//!
//! rustls's `ServerConnection` is I/O-free; [`super::conn::Conn`] keeps one per TLS
//! connection beside its output buffer, under the same lock, and moves bytes between it and
//! the socket. The crypto provider is `ring`: it builds with a C compiler alone, where
//! `aws-lc-rs` also needs cmake.
//!
//! Live reload: the listener holds its whole rustls config (certificate, key and client CA
//! verifier) in an `ArcSwap`; [`TlsListener::check`] reads every file again and builds a new
//! config ([`load_cert`]: readable, PEM, key matches the certificate, valid now; the client
//! CA: readable PEM CA certificates), [`TlsListener::install`] swaps it in. A bad file keeps
//! the old config and says why. New handshakes use the new config; open connections keep
//! their session. A new config starts with an empty session cache, so no session resumed
//! after a reload skips the new client CA's verification.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig, ServerConnection};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::base::settings::tls::{ClientAuth, TlsSettings, TlsVersion};

/// Why a certificate, key or CA file is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum TlsError {
    /// The file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The file holds no usable PEM section of the kind wanted.
    #[error("{}: {what}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong ("no CERTIFICATE section", a base64 error...).
        what: String,
    },
    /// The private key is not the certificate's.
    #[error("the key in {} does not match the certificate in {}: {reason}", key.display(), cert.display())]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        reason: String,
    },
    /// The leaf certificate is not valid now (expired or not yet valid).
    #[error("the certificate in {} is not valid now: {reason}", path.display())]
    NotValidNow {
        /// The certificate file.
        path: PathBuf,
        /// "expired at ..." or "valid only from ...".
        reason: String,
    },
    /// rustls refused the configuration (a bad client CA, an unsupported key type...).
    #[error("{context}: {reason}")]
    Config {
        /// What was being built.
        context: &'static str,
        /// What rustls said.
        reason: String,
    },
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.to_path_buf(),
            what: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_path_buf(),
            what: "no CERTIFICATE section".into(),
        });
    }
    Ok(certs)
}

/// The `ring` provider. rustls marks `ring::default_provider` deprecated because it has no
/// post-quantum key exchange; `aws-lc-rs` has, but needs cmake to build.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads and checks a certificate chain and its key: both files readable PEM, the key the
/// leaf certificate's, the leaf valid now.
pub(crate) fn load_cert(cert_file: &Path, key_file: &Path) -> Result<CertifiedKey, TlsError> {
    let chain = certs(cert_file)?;
    let key_pem = read(key_file)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Pem {
        path: key_file.to_path_buf(),
        what: match e {
            rustls_pki_types::pem::Error::NoItemsFound => "no PRIVATE KEY section".into(),
            e => e.to_string(),
        },
    })?;
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::Pem {
            path: key_file.to_path_buf(),
            what: format!("unusable private key: {e}"),
        })?;
    let ck = CertifiedKey::new(chain, signing);
    ck.keys_match().map_err(|e| TlsError::KeyMismatch {
        cert: cert_file.to_path_buf(),
        key: key_file.to_path_buf(),
        reason: format!("{e:?}"),
    })?;
    let (from, until) = validity(&ck.cert[0]).ok_or_else(|| TlsError::Pem {
        path: cert_file.to_path_buf(),
        what: "the leaf certificate's validity cannot be read".into(),
    })?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    if now > until {
        return Err(TlsError::NotValidNow {
            path: cert_file.to_path_buf(),
            reason: format!("expired at {} (unix time)", until),
        });
    }
    if now < from {
        return Err(TlsError::NotValidNow {
            path: cert_file.to_path_buf(),
            reason: format!("valid only from {} (unix time)", from),
        });
    }
    Ok(ck)
}

/// The certificate served for every handshake of one config.
#[derive(Debug)]
struct Resolver(Arc<CertifiedKey>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// A listener's files, read, checked and built into a rustls config ([`TlsListener::check`]),
/// ready to be served ([`TlsListener::install`]).
#[derive(Debug)]
pub(crate) struct Loaded {
    config: Arc<ServerConfig>,
    leaf: CertificateDer<'static>,
}

/// One TLS listener: its settings and the config served now.
#[derive(Debug)]
pub(crate) struct TlsListener {
    settings: TlsSettings,
    /// The listener speaks HTTP, with HTTP/2 (the default ALPN list).
    http: bool,
    h2: bool,
    live: ArcSwap<Loaded>,
    /// The certificate generation ([`crate::ipc::shared`] header `certs_gen`) loaded last.
    gen: AtomicU64,
    pub(crate) handshake_timeout: Duration,
}

/// Most TLS bytes rustls keeps queued for one connection before the plaintext waits in the
/// connection's own (capped) output buffer.
const TLS_BUFFER_LIMIT: usize = 64 * 1024;

impl TlsListener {
    /// Reads the files and builds the config; `http`: the listener speaks HTTP (default ALPN
    /// `http/1.1`, and `h2` first with `h2`).
    pub(crate) fn new(s: &TlsSettings, http: bool, h2: bool) -> Result<TlsListener, TlsError> {
        let loaded = build(s, http, h2)?;
        Ok(TlsListener {
            settings: s.clone(),
            http,
            h2,
            live: ArcSwap::from_pointee(loaded),
            gen: AtomicU64::new(0),
            handshake_timeout: s.handshake_timeout,
        })
    }

    /// A new server-side TLS session for an accepted connection.
    pub(crate) fn session(&self) -> Result<ServerConnection, rustls::Error> {
        let mut c = ServerConnection::new(self.live.load().config.clone())?;
        c.set_buffer_limit(Some(TLS_BUFFER_LIMIT));
        Ok(c)
    }

    /// Reads and checks the files again (certificate, key, client CA) and builds a config
    /// from them, without serving it.
    pub(crate) fn check(&self) -> Result<Loaded, TlsError> {
        build(&self.settings, self.http, self.h2)
    }

    /// Serves `loaded` for new handshakes, as generation `gen`.
    pub(crate) fn install(&self, loaded: Loaded, gen: u64) {
        self.live.store(Arc::new(loaded));
        self.gen.store(gen, Relaxed);
    }

    /// Reads, checks and serves the files again, as generation `gen`; on error the old
    /// config stays.
    pub(crate) fn reload(&self, gen: u64) -> Result<(), TlsError> {
        let loaded = self.check()?;
        self.install(loaded, gen);
        Ok(())
    }

    /// Before a handshake: if a reload was announced (`gen` differs from the one loaded), load
    /// the files now. A failure keeps the old certificate and is logged once per generation.
    pub(crate) fn refresh(&self, gen: u64) {
        if self.gen.load(Relaxed) == gen {
            return;
        }
        match self.reload(gen) {
            Ok(()) => tracing::info!(
                cert = %self.settings.cert_file.display(),
                gen,
                "TLS certificate reloaded"
            ),
            Err(e) => {
                self.gen.store(gen, Relaxed);
                tracing::error!(error = %e, gen, "TLS certificate reload failed; the old certificate stays")
            }
        }
    }

    /// The listener's settings (the files, for messages and the file watch).
    pub(crate) fn settings(&self) -> &TlsSettings {
        &self.settings
    }

    /// The leaf certificate served now (DER).
    pub(crate) fn current_leaf(&self) -> Vec<u8> {
        self.live.load().leaf.to_vec()
    }
}

/// Reads the files of `s` and builds its rustls config (see [`TlsListener::new`]).
fn build(s: &TlsSettings, http: bool, h2: bool) -> Result<Loaded, TlsError> {
    let ck = load_cert(&s.cert_file, &s.key_file)?;
    let leaf = ck.cert[0].clone();
    let cfg_err = |context| {
        move |e: rustls::Error| TlsError::Config {
            context,
            reason: e.to_string(),
        }
    };
    let versions: &[&rustls::SupportedProtocolVersion] = match s.min_version {
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
        _ => &[&rustls::version::TLS13, &rustls::version::TLS12],
    };
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .map_err(cfg_err("the TLS versions"))?;
    let builder = match &s.client_ca_file {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in certs(ca)? {
                roots.add(c).map_err(|e| TlsError::Pem {
                    path: ca.clone(),
                    what: format!("not a usable CA certificate: {e}"),
                })?;
            }
            let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
            let v = match s.client_auth {
                ClientAuth::Optional => v.allow_unauthenticated(),
                _ => v,
            };
            let v = v.build().map_err(|e| TlsError::Config {
                context: "the client certificate verifier",
                reason: e.to_string(),
            })?;
            builder.with_client_cert_verifier(v)
        }
    };
    let mut config = builder.with_cert_resolver(Arc::new(Resolver(Arc::new(ck))));
    config.alpn_protocols = if s.alpn.is_empty() && http && h2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else if s.alpn.is_empty() && http {
        vec![b"http/1.1".to_vec()]
    } else {
        s.alpn.clone()
    };
    Ok(Loaded {
        config: Arc::new(config),
        leaf,
    })
}

/// SHA-256 of a DER certificate (the peer identity shown in `connection_info`).
pub(crate) fn fingerprint(der: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, der);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// One DER TLV at the start of `b`: (tag, contents, rest).
fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, b) = b.split_first()?;
    let (&l0, mut b) = b.split_first()?;
    let len = if l0 < 0x80 {
        l0 as usize
    } else {
        let n = (l0 & 0x7f) as usize;
        if n == 0 || n > 4 || b.len() < n {
            return None;
        }
        let mut len = 0usize;
        for &x in &b[..n] {
            len = len << 8 | x as usize;
        }
        b = &b[n..];
        len
    };
    (b.len() >= len).then(|| (tag, &b[..len], &b[len..]))
}

/// `notBefore` and `notAfter` of a DER X.509 certificate, in unix seconds.
pub(crate) fn validity(cert: &[u8]) -> Option<(i64, i64)> {
    let (0x30, c, _) = tlv(cert)? else {
        return None;
    };
    let (0x30, mut tbs, _) = tlv(c)? else {
        return None;
    };
    // [0] version (optional), serial, signature algorithm, issuer, then validity.
    if tbs.first() == Some(&0xa0) {
        tbs = tlv(tbs)?.2;
    }
    for _ in 0..3 {
        tbs = tlv(tbs)?.2;
    }
    let (0x30, v, _) = tlv(tbs)? else { return None };
    let (t1, nb, rest) = tlv(v)?;
    let (t2, na, _) = tlv(rest)?;
    Some((asn1_time(t1, nb)?, asn1_time(t2, na)?))
}

/// UTCTime (0x17, `YYMMDDHHMMSSZ`) or GeneralizedTime (0x18, `YYYYMMDDHHMMSSZ`) in unix
/// seconds.
fn asn1_time(tag: u8, s: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(s).ok()?.strip_suffix('Z')?;
    let (year, rest) = match tag {
        0x17 if s.len() == 12 => {
            let yy: i64 = s[..2].parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &s[2..])
        }
        0x18 if s.len() == 14 => (s[..4].parse().ok()?, &s[4..]),
        _ => return None,
    };
    let n = |i: usize| rest.get(i..i + 2)?.parse::<i64>().ok();
    let (mo, d, h, mi, se) = (n(0)?, n(2)?, n(4)?, n(6)?, n(8)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    Some(days_from_civil(year, mo, d) * 86400 + h * 3600 + mi * 60 + se)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asn1_times() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(asn1_time(0x17, b"700101000000Z"), Some(0));
        assert_eq!(asn1_time(0x18, b"20000301000000Z"), Some(951868800));
        assert_eq!(asn1_time(0x17, b"491231235959Z"), Some(2524607999));
        assert_eq!(asn1_time(0x17, b"7001010000Z"), None);
        assert_eq!(asn1_time(0x18, b"20001301000000Z"), None);
    }

    #[test]
    fn validity_of_a_generated_certificate() {
        let mut p = rcgen::CertificateParams::new(vec!["localhost".into()]).expect("params");
        p.not_before = rcgen::date_time_ymd(2020, 1, 2);
        p.not_after = rcgen::date_time_ymd(2060, 3, 4);
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = p.self_signed(&key).expect("cert");
        let (from, until) = validity(cert.der()).expect("validity");
        assert_eq!(from, days_from_civil(2020, 1, 2) * 86400);
        assert_eq!(until, days_from_civil(2060, 3, 4) * 86400);
        assert_eq!(validity(&cert.der()[..40]), None);
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().expect("tmp");
        let key = rcgen::KeyPair::generate().expect("key");
        let other = rcgen::KeyPair::generate().expect("key");
        let p = rcgen::CertificateParams::new(vec!["localhost".into()]).expect("params");
        let cert = p.self_signed(&key).expect("cert");
        let w = |name: &str, s: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, s).expect("write");
            path
        };
        let (c, k, o) = (
            w("c.pem", &cert.pem()),
            w("k.pem", &key.serialize_pem()),
            w("o.pem", &other.serialize_pem()),
        );
        assert!(load_cert(&c, &k).is_ok());
        let e = load_cert(&c, &o).expect_err("mismatch");
        assert!(matches!(e, TlsError::KeyMismatch { .. }), "{e}");
        let e = load_cert(&dir.path().join("none.pem"), &k).expect_err("missing");
        assert!(e.to_string().contains("cannot read"), "{e}");
        let e = load_cert(&k, &k).expect_err("no cert");
        assert!(e.to_string().contains("no CERTIFICATE"), "{e}");
        let e = load_cert(&c, &c).expect_err("no key");
        assert!(e.to_string().contains("no PRIVATE KEY"), "{e}");
        let mut p = rcgen::CertificateParams::new(vec!["localhost".into()]).expect("params");
        p.not_before = rcgen::date_time_ymd(2001, 1, 1);
        p.not_after = rcgen::date_time_ymd(2002, 1, 1);
        let old = w("old.pem", &p.self_signed(&key).expect("cert").pem());
        let e = load_cert(&old, &k).expect_err("expired");
        assert!(e.to_string().contains("expired"), "{e}");
    }
}
