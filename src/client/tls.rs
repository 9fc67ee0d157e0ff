//! [`ClientTls`]: TLS for [`SyncClient`](super::SyncClient) and [`Client`](super::Client).

use std::path::PathBuf;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use super::error::ClientError;

/// How a client speaks TLS: the server name to verify, the CA to trust (else the Mozilla
/// roots of `webpki-roots`) and, for mTLS, a client certificate. Same framing as plain.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use rswoole::client::{ClientConfig, ClientTls, SyncClient};
///
/// # fn main() -> Result<(), rswoole::client::ClientError> {
/// let tls = ClientTls::new("localhost").ca_file("ca.pem");
/// let mut c = SyncClient::connect_tls("127.0.0.1:9443", Duration::from_secs(1), ClientConfig::default(), &tls)?;
/// c.send(b"hello")?;
/// println!("{:?}", c.recv()?);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ClientTls {
    server_name: String,
    ca_file: Option<PathBuf>,
    client_cert: Option<(PathBuf, PathBuf)>,
}

impl ClientTls {
    /// TLS to a server whose certificate names `server_name` (a DNS name or an IP address).
    ///
    /// # Examples
    /// ```
    /// let tls = rswoole::client::ClientTls::new("example.com");
    /// assert!(format!("{tls:?}").contains("example.com"));
    /// ```
    pub fn new(server_name: impl Into<String>) -> ClientTls {
        ClientTls {
            server_name: server_name.into(),
            ca_file: None,
            client_cert: None,
        }
    }

    /// Trusts the CA certificates of this PEM file instead of the built-in roots.
    ///
    /// # Examples
    /// ```
    /// let tls = rswoole::client::ClientTls::new("localhost").ca_file("ca.pem");
    /// # drop(tls);
    /// ```
    #[must_use]
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Presents this client certificate chain and key (PEM files) to a server that asks.
    ///
    /// # Examples
    /// ```
    /// let tls = rswoole::client::ClientTls::new("localhost").client_cert("me.pem", "me-key.pem");
    /// # drop(tls);
    /// ```
    #[must_use]
    pub fn client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.client_cert = Some((cert.into(), key.into()));
        self
    }

    /// The rustls configuration and the server name.
    #[allow(deprecated)] // ring's provider: see `owner::tls`.
    pub(crate) fn build(
        &self,
    ) -> Result<(Arc<rustls::ClientConfig>, ServerName<'static>), ClientError> {
        let bad = |what: String| ClientError::Tls(what);
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca_file {
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            Some(p) => {
                let it = CertificateDer::pem_file_iter(p)
                    .map_err(|e| bad(format!("{}: {e}", p.display())))?;
                for c in it {
                    let c = c.map_err(|e| bad(format!("{}: {e}", p.display())))?;
                    roots
                        .add(c)
                        .map_err(|e| bad(format!("{}: {e}", p.display())))?;
                }
            }
        }
        let b = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots);
        let cfg = match &self.client_cert {
            None => b.with_no_client_auth(),
            Some((c, k)) => {
                let chain = CertificateDer::pem_file_iter(c)
                    .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| bad(format!("{}: {e}", c.display())))?;
                let key = PrivateKeyDer::from_pem_file(k)
                    .map_err(|e| bad(format!("{}: {e}", k.display())))?;
                b.with_client_auth_cert(chain, key)
                    .map_err(|e| bad(e.to_string()))?
            }
        };
        let name = ServerName::try_from(self.server_name.clone())
            .map_err(|e| bad(format!("server name {:?}: {e}", self.server_name)))?;
        Ok((Arc::new(cfg), name))
    }
}
