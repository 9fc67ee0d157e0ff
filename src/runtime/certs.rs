//! Reloading the TLS certificates without the CLI: `SIGRTMIN+1` to the master ([`on_signal`])
//! and the optional file watch ([`watch`], `TlsSettings::watch`). Both run the same reload as
//! `rswoole reload-certs` (`master::reload_certs`: all files checked, all served or none).
//!
//! The watch polls the files' size, modification time and inode (no inotify: it also sees a
//! file replaced by a rename, on any file system). A change is acted on once the files have
//! stayed the same for one whole period, so a file still being written is not read; if the
//! reload is refused all the same (a half-written or mismatched pair), the old certificate
//! keeps serving and the next change of the files is tried again.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use tokio::task::JoinHandle;

use super::master::CertReload;

/// The signal that reloads the certificates: `SIGRTMIN+1` (SIGHUP already means "reopen the
/// log" to the manager and workers, and a terminal's hangup sends it to the whole group).
pub(crate) fn signal_number() -> i32 {
    crate::sys::sigrtmin() + 1
}

/// Watches `SIGRTMIN+1`: each one reloads the certificates (the result is logged).
///
/// # Errors
/// The signal cannot be watched.
pub(crate) fn on_signal(reload: CertReload) -> std::io::Result<JoinHandle<()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut sig = signal(SignalKind::from_raw(signal_number()))?;
    Ok(tokio::spawn(async move {
        while sig.recv().await.is_some() {
            let reload = reload.clone();
            match tokio::task::spawn_blocking(move || reload()).await {
                Ok(Ok(msg)) => tracing::info!(
                    "certificates reloaded (SIGRTMIN+1): {}",
                    msg.replace('\n', "; ")
                ),
                Ok(Err(e)) => tracing::error!(error = %e, "SIGRTMIN+1: certificate reload refused"),
                Err(e) => tracing::error!(error = %e, "SIGRTMIN+1: certificate reload failed"),
            }
        }
    }))
}

/// What is known of one file: (size, modification time, inode), or `None` if it cannot be
/// read.
type Stamp = Option<(u64, SystemTime, u64)>;

fn stamps(files: &[PathBuf]) -> Vec<Stamp> {
    files
        .iter()
        .map(|f| {
            let m = std::fs::metadata(f).ok()?;
            Some((m.len(), m.modified().ok()?, m.ino()))
        })
        .collect()
}

/// Polls `files` every `every`; once they changed and then stayed the same for one period,
/// reloads the certificates. A refused reload is logged and retried at the files' next
/// change.
pub(crate) fn watch(files: Vec<PathBuf>, every: Duration, reload: CertReload) -> JoinHandle<()> {
    tokio::spawn(async move {
        // What the served certificates were read from (or the last change tried).
        let mut tried = stamps(&files);
        let mut last = tried.clone();
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let now = stamps(&files);
            let settled = now == last;
            last = now.clone();
            if now == tried || !settled {
                continue;
            }
            tried = now;
            let reload = reload.clone();
            match tokio::task::spawn_blocking(move || reload()).await {
                Ok(Ok(msg)) => tracing::info!(
                    "certificate files changed; reloaded: {}",
                    msg.replace('\n', "; ")
                ),
                Ok(Err(e)) => tracing::warn!(
                    error = %e,
                    "certificate files changed but are refused (the old ones keep serving); \
                     retrying at their next change"
                ),
                Err(e) => tracing::error!(error = %e, "certificate reload failed"),
            }
        }
    })
}
