//! [`ClusterSettings`]: several nodes share WebSocket broadcasts and a membership list
//! through Redis (off by default).

use std::path::PathBuf;
use std::time::Duration;

use super::super::error::Error;

/// Default for [`ClusterSettings::heartbeat`]: a node refreshes its key in Redis every second.
pub const DEFAULT_CLUSTER_HEARTBEAT: Duration = Duration::from_secs(1);
/// Default for [`ClusterSettings::node_ttl`]: a node whose key was not refreshed for 3 s is
/// gone (it died or lost Redis).
pub const DEFAULT_CLUSTER_NODE_TTL: Duration = Duration::from_secs(3);
/// Default for [`ClusterSettings::prefix`]: the prefix of every Redis key and channel.
pub const DEFAULT_CLUSTER_PREFIX: &str = "rswoole";
/// Default for [`ClusterSettings::task_claim_timeout`]: a cluster task taken by a node that
/// has not finished (nor kept it alive) for 30 s is taken over by another node.
pub const DEFAULT_CLUSTER_TASK_CLAIM_TIMEOUT: Duration = Duration::from_secs(30);

/// Cluster settings: the Redis server the nodes share and this node's name.
///
/// With [`Settings::cluster`](crate::Settings::cluster) set, `broadcast` reaches the
/// WebSocket clients of every node of the cluster (once each, in the sender's order), and the
/// node announces itself in Redis with a heartbeat that expires.
///
/// # Examples
/// ```
/// use rswoole::{ClusterSettings, Settings};
/// let s = Settings::default()
///     .cluster(Some(ClusterSettings::new("redis://127.0.0.1:6379/", "node-a")));
/// assert_eq!(s.cluster.unwrap().node, "node-a");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterSettings {
    /// The Redis URL: `redis://[user:password@]host:port[/db]`, `rediss://...` (the same over
    /// TLS: the server's certificate is checked against the system's roots, or against
    /// [`tls_ca`](Self::tls_ca)) or `redis+unix:///path`.
    pub redis_url: String,
    /// This node's name: unique in the cluster; letters, digits, `-`, `_`, `.` (1..=64).
    pub node: String,
    /// Prefix of every key and channel, so that clusters can share one Redis. Default
    /// [`DEFAULT_CLUSTER_PREFIX`].
    pub prefix: String,
    /// How often the node refreshes its key. Default [`DEFAULT_CLUSTER_HEARTBEAT`].
    pub heartbeat: Duration,
    /// How long the node's key lives without a refresh. Default [`DEFAULT_CLUSTER_NODE_TTL`];
    /// more than `heartbeat`.
    pub node_ttl: Duration,
    /// How long a cluster task ([`Handle::task_wait_cluster`](crate::Handle::task_wait_cluster))
    /// may stay taken by a node that does not report on it before another node takes it over
    /// and runs it again: a node keeps its running tasks alive every third of this, so only
    /// the tasks of a dead (or cut off) node are taken over. Default
    /// [`DEFAULT_CLUSTER_TASK_CLAIM_TIMEOUT`]; at least 100 ms.
    pub task_claim_timeout: Duration,
    /// With a `rediss://` URL: trust the CA certificates (PEM) of this file instead of the
    /// system's roots (a private CA, a self-signed Redis). Default `None`.
    pub tls_ca: Option<PathBuf>,
}

impl ClusterSettings {
    /// Settings for node `node` on the Redis server at `redis_url`, other fields at their
    /// defaults.
    ///
    /// # Examples
    /// ```
    /// use rswoole::ClusterSettings;
    /// let c = ClusterSettings::new("redis://127.0.0.1:6379/", "n1");
    /// assert_eq!(c.prefix, "rswoole");
    /// ```
    pub fn new(redis_url: impl Into<String>, node: impl Into<String>) -> ClusterSettings {
        ClusterSettings {
            redis_url: redis_url.into(),
            node: node.into(),
            prefix: DEFAULT_CLUSTER_PREFIX.into(),
            heartbeat: DEFAULT_CLUSTER_HEARTBEAT,
            node_ttl: DEFAULT_CLUSTER_NODE_TTL,
            task_claim_timeout: DEFAULT_CLUSTER_TASK_CLAIM_TIMEOUT,
            tls_ca: None,
        }
    }

    /// Sets [`tls_ca`](Self::tls_ca): the CA certificates (PEM file) a `rediss://` Redis's
    /// certificate must chain to, instead of the system's roots.
    ///
    /// # Examples
    /// ```
    /// use rswoole::ClusterSettings;
    /// let c = ClusterSettings::new("rediss://redis.internal:6380/", "n1")
    ///     .tls_ca("/etc/rswoole/redis-ca.pem");
    /// assert!(c.tls_ca.is_some());
    /// ```
    #[must_use]
    pub fn tls_ca(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls_ca = Some(path.into());
        self
    }

    /// Sets [`task_claim_timeout`](Self::task_claim_timeout).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use rswoole::ClusterSettings;
    /// let c = ClusterSettings::new("redis://127.0.0.1:6379/", "n1")
    ///     .task_claim_timeout(Duration::from_secs(5));
    /// assert_eq!(c.task_claim_timeout, Duration::from_secs(5));
    /// ```
    #[must_use]
    pub fn task_claim_timeout(mut self, timeout: Duration) -> Self {
        self.task_claim_timeout = timeout;
        self
    }

    /// Sets [`prefix`](Self::prefix).
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets [`heartbeat`](Self::heartbeat) and [`node_ttl`](Self::node_ttl).
    #[must_use]
    pub fn heartbeat(mut self, heartbeat: Duration, node_ttl: Duration) -> Self {
        self.heartbeat = heartbeat;
        self.node_ttl = node_ttl;
        self
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        let bad = |name: &'static str, reason: String| Err(Error::InvalidSetting { name, reason });
        let name_ok = |s: &str| {
            (1..=64).contains(&s.len())
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        };
        if !name_ok(&self.node) {
            return bad(
                "cluster.node",
                format!("{:?}: 1 to 64 letters, digits, `-`, `_` or `.`", self.node),
            );
        }
        if !name_ok(&self.prefix) {
            return bad(
                "cluster.prefix",
                format!(
                    "{:?}: 1 to 64 letters, digits, `-`, `_` or `.`",
                    self.prefix
                ),
            );
        }
        let scheme = self.redis_url.split("://").next().unwrap_or("");
        if !self.redis_url.contains("://")
            || !["redis", "rediss", "redis+unix", "unix"].contains(&scheme)
        {
            return bad(
                "cluster.redis_url",
                format!(
                    "{:?}: want redis://host:port[/db] (or redis+unix:///path)",
                    self.redis_url
                ),
            );
        }
        if scheme == "rediss" && self.redis_url.contains('#') {
            return bad(
                "cluster.redis_url",
                "rediss://...#fragment (such as #insecure, no certificate check) is not \
                 accepted; give the CA of a self-signed Redis with tls_ca (--redis-ca)"
                    .into(),
            );
        }
        if let Some(ca) = &self.tls_ca {
            if scheme != "rediss" {
                return bad(
                    "cluster.tls_ca",
                    format!(
                        "{}: a CA for the Redis connection needs a rediss:// URL",
                        ca.display()
                    ),
                );
            }
            self.tls_ca_pem()?;
        }
        if self.heartbeat.is_zero() || self.node_ttl <= self.heartbeat {
            return bad(
                "cluster.node_ttl",
                format!(
                    "{:?} must be longer than the heartbeat {:?} (which must not be zero)",
                    self.node_ttl, self.heartbeat
                ),
            );
        }
        if self.task_claim_timeout < Duration::from_millis(100) {
            return bad(
                "cluster.task_claim_timeout",
                format!("{:?}: at least 100 ms", self.task_claim_timeout),
            );
        }
        Ok(())
    }

    /// The PEM bytes of [`tls_ca`](Self::tls_ca) (`None` without it), checked to hold at
    /// least one certificate.
    pub(crate) fn tls_ca_pem(&self) -> Result<Option<Vec<u8>>, Error> {
        use rustls_pki_types::pem::PemObject;
        let Some(path) = &self.tls_ca else {
            return Ok(None);
        };
        let bad = |reason: String| Error::InvalidSetting {
            name: "cluster.tls_ca",
            reason: format!("{}: {reason}", path.display()),
        };
        let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        let certs = rustls_pki_types::CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(format!("not PEM certificates: {e}")))?;
        if certs.is_empty() {
            return Err(bad("no PEM certificate in it".into()));
        }
        Ok(Some(pem))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_settings_validate() {
        let ok = ClusterSettings::new("redis://127.0.0.1:6379/", "n-1.a_b");
        assert!(ok.validate().is_ok());
        let dir = tempfile::tempdir().unwrap();
        let (ca, not_pem) = (dir.path().join("ca.pem"), dir.path().join("x.pem"));
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["ca".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        std::fs::write(&ca, cert.pem()).unwrap();
        std::fs::write(&not_pem, "hello").unwrap();
        assert!(ClusterSettings::new("rediss://127.0.0.1:6379/", "n")
            .validate()
            .is_ok());
        let tls = ClusterSettings::new("rediss://127.0.0.1:6379/", "n").tls_ca(&ca);
        assert!(tls.validate().is_ok());
        assert!(tls.tls_ca_pem().unwrap().is_some());
        for bad in [
            ClusterSettings::new("redis://127.0.0.1:6379/", ""),
            ClusterSettings::new("redis://127.0.0.1:6379/", "a b"),
            ClusterSettings::new("redis://127.0.0.1:6379/", "a:b"),
            ClusterSettings::new("127.0.0.1:6379", "n"),
            ClusterSettings::new("http://127.0.0.1:6379", "n"),
            ClusterSettings::new("rediss://127.0.0.1:6379#insecure", "n"),
            ClusterSettings::new("redis://127.0.0.1:6379/", "n").tls_ca(&ca),
            ClusterSettings::new("rediss://127.0.0.1:6379/", "n").tls_ca("/nonexistent/ca.pem"),
            ClusterSettings::new("rediss://127.0.0.1:6379/", "n").tls_ca(&not_pem),
            ClusterSettings::new("redis://127.0.0.1:6379/", "n")
                .heartbeat(Duration::from_secs(2), Duration::from_secs(1)),
            ClusterSettings::new("redis://127.0.0.1:6379/", "n").prefix("a/b"),
            ClusterSettings::new("redis://127.0.0.1:6379/", "n")
                .task_claim_timeout(Duration::from_millis(10)),
        ] {
            assert!(
                matches!(bad.validate(), Err(Error::InvalidSetting { .. })),
                "{bad:?}"
            );
        }
    }
}
