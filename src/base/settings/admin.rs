//! Observability settings (`Settings::admin`): the admin listener (Prometheus metrics and the
//! live dashboard) and the HTTP access log.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::base::error::Error;

/// How access log lines look.
///
/// # Examples
/// ```
/// use rswoole::AccessLogFormat;
/// assert_eq!(AccessLogFormat::default(), AccessLogFormat::Combined);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AccessLogFormat {
    /// nginx's "combined": `addr - - [time] "GET /path HTTP/1.1" status bytes "referer"
    /// "user-agent" duration_s`.
    #[default]
    Combined,
    /// One JSON object per line: `time`, `remote_addr`, `method`, `uri`, `protocol`,
    /// `status`, `bytes`, `referer`, `user_agent`, `duration_s`, `worker`.
    Json,
}

/// The admin listener and the access log (`Settings::admin`). Both off by default.
///
/// # Examples
/// ```
/// use rswoole::{AdminSettings, Settings};
/// let s = Settings::default().admin(
///     AdminSettings::default()
///         .addr(Some("127.0.0.1:9600".parse().unwrap()))
///         .token(Some("s3cret".into()))
///         .access_log(Some("/var/log/app/access.log".into())),
/// );
/// assert!(s.admin.addr.is_some());
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct AdminSettings {
    /// Serve `/metrics` (Prometheus text), the dashboard at `/` and its live feed at `/ws` on
    /// this address, from the master. Turning it on also turns on counting (shared-memory
    /// counters every process adds to, and the `metrics` crate recorder for user metrics).
    /// Bind it to a loopback or private address: it tells a lot about the server. Default
    /// none (off, nothing counted).
    pub addr: Option<SocketAddr>,
    /// Require `Authorization: Bearer <token>` on every admin request (401 otherwise; the
    /// dashboard's page and feed also accept `?token=<token>`). Default none.
    pub token: Option<String>,
    /// Append one line per HTTP request here (written by a background thread per worker,
    /// never blocking a request; reopened by `rswoole reopen-logs`). Default none.
    pub access_log: Option<PathBuf>,
    /// The access log's line format. Default [`AccessLogFormat::Combined`].
    pub access_log_format: AccessLogFormat,
}

impl AdminSettings {
    /// Sets [`addr`](Self::addr).
    #[must_use]
    pub fn addr(mut self, addr: Option<SocketAddr>) -> Self {
        self.addr = addr;
        self
    }

    /// Sets [`token`](Self::token).
    #[must_use]
    pub fn token(mut self, token: Option<String>) -> Self {
        self.token = token;
        self
    }

    /// Sets [`access_log`](Self::access_log).
    #[must_use]
    pub fn access_log(mut self, access_log: Option<PathBuf>) -> Self {
        self.access_log = access_log;
        self
    }

    /// Sets [`access_log_format`](Self::access_log_format).
    #[must_use]
    pub fn access_log_format(mut self, access_log_format: AccessLogFormat) -> Self {
        self.access_log_format = access_log_format;
        self
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        if let Some(t) = &self.token {
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(Error::InvalidSetting {
                    name: "admin.token",
                    reason: "must be non-empty printable ASCII without spaces".into(),
                });
            }
            if self.addr.is_none() {
                return Err(Error::InvalidSetting {
                    name: "admin.token",
                    reason: "a token without admin.addr protects nothing; set admin.addr".into(),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_admin_token_is_checked() {
        let on = || AdminSettings::default().addr(Some(([127, 0, 0, 1], 9600).into()));
        assert!(on().token(Some("abc".into())).validate().is_ok());
        assert!(on().token(Some("a b".into())).validate().is_err());
        assert!(on().token(Some(String::new())).validate().is_err());
        assert!(AdminSettings::default()
            .token(Some("abc".into()))
            .validate()
            .is_err());
    }
}
