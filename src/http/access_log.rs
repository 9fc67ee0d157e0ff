//! The HTTP access log (`Settings::admin.access_log`): one line per answered request, in
//! nginx's "combined" format or as JSON lines.
//!
//! A request never waits for the disk: the worker formats the line and hands it to a
//! background thread of its own over a bounded channel (`try_send`; a full channel drops the
//! line and counts it in `rswoole_access_log_dropped_total`). The thread appends with a
//! buffered writer, flushed whenever the channel runs empty, and reopens the file when the
//! process's log generation changes (`rswoole reopen-logs`: SIGRTMIN to the master, SIGHUP
//! from the manager to each worker), so logrotate's "move, then reopen" works. Lines of
//! several workers interleave whole: each write is one `O_APPEND` write of complete lines.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::base::AccessLogFormat;
use crate::runtime::daemon::log_generation;

/// Lines queued for the writer thread before new ones are dropped.
const QUEUE: usize = 8192;
/// Most bytes the writer gathers before a write.
const BATCH_BYTES: usize = 64 * 1024;

/// One answered request, as the access log records it.
#[derive(Debug, Clone)]
pub(crate) struct Entry<'a> {
    pub(crate) remote: SocketAddr,
    pub(crate) method: &'a str,
    pub(crate) uri: &'a str,
    pub(crate) protocol: &'a str,
    pub(crate) status: u16,
    pub(crate) bytes: u64,
    pub(crate) referer: Option<&'a str>,
    pub(crate) user_agent: Option<&'a str>,
    pub(crate) duration: Duration,
    pub(crate) worker: usize,
}

/// Days since 1970-01-01 to (year, month, day) (Howard Hinnant's `civil_from_days`).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `t` as nginx's `$time_local` in UTC: `06/Nov/1994:08:49:37 +0000`.
pub(crate) fn time_local(t: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let s = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let (y, m, d) = civil(s.div_euclid(86_400));
    let sec = s.rem_euclid(86_400);
    format!(
        "{d:02}/{}/{y}:{:02}:{:02}:{:02} +0000",
        MONTHS[(m - 1) as usize],
        sec / 3600,
        sec / 60 % 60,
        sec % 60
    )
}

/// Escapes `"` and `\` and control bytes, as nginx does in a combined line.
fn quoted(out: &mut String, v: Option<&str>) {
    let Some(v) = v else {
        out.push('-');
        return;
    };
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\x22"),
            '\\' => out.push_str("\\x5C"),
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02X}", c as u32 & 0xff);
            }
            c => out.push(c),
        }
    }
}

/// The line for `e` (with its newline).
pub(crate) fn format(format: AccessLogFormat, e: &Entry<'_>, now: SystemTime) -> String {
    match format {
        AccessLogFormat::Json => {
            let mut v = serde_json::json!({
                "time": httpdate::fmt_http_date(now),
                "remote_addr": e.remote.ip().to_string(),
                "method": e.method,
                "uri": e.uri,
                "protocol": e.protocol,
                "status": e.status,
                "bytes": e.bytes,
                "referer": e.referer,
                "user_agent": e.user_agent,
                "duration_s": e.duration.as_secs_f64(),
                "worker": e.worker,
            })
            .to_string();
            v.push('\n');
            v
        }
        _ => {
            let mut out = String::with_capacity(160);
            let _ = write!(out, "{} - - [{}] \"", e.remote.ip(), time_local(now));
            quoted(&mut out, Some(e.method));
            out.push(' ');
            quoted(&mut out, Some(e.uri));
            out.push(' ');
            quoted(&mut out, Some(e.protocol));
            let _ = write!(out, "\" {} {} \"", e.status, e.bytes);
            quoted(&mut out, e.referer);
            out.push_str("\" \"");
            quoted(&mut out, e.user_agent);
            let _ = writeln!(out, "\" {:.6}", e.duration.as_secs_f64());
            out
        }
    }
}

/// This process's writer: the sending side of its thread's channel.
#[derive(Debug)]
pub(crate) struct AccessLog {
    tx: SyncSender<String>,
}

static LOG: OnceLock<Option<AccessLog>> = OnceLock::new();

fn open(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

fn writer(path: PathBuf, rx: Receiver<String>) {
    let mut gen = log_generation();
    let mut file = match open(&path) {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "cannot open the access log");
            None
        }
    };
    let mut buf = Vec::with_capacity(BATCH_BYTES);
    loop {
        match rx.recv_timeout(Duration::from_millis(250)) {
            Ok(line) => {
                buf.extend_from_slice(line.as_bytes());
                while buf.len() < BATCH_BYTES {
                    match rx.try_recv() {
                        Ok(l) => buf.extend_from_slice(l.as_bytes()),
                        Err(_) => break,
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let g = log_generation();
        if g != gen || file.is_none() {
            gen = g;
            match open(&path) {
                Ok(f) => file = Some(f),
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "cannot reopen the access log")
                }
            }
        }
        if buf.is_empty() {
            continue;
        }
        if let Some(f) = file.as_mut() {
            if let Err(e) = f.write_all(&buf) {
                tracing::error!(path = %path.display(), error = %e, "access log write failed");
            }
        }
        buf.clear();
    }
}

impl AccessLog {
    /// This process's access log (its writer thread is started on first use), or `None`
    /// without `access_log`.
    pub(crate) fn get(path: Option<&PathBuf>) -> Option<&'static AccessLog> {
        LOG.get_or_init(|| {
            let path = path?.clone();
            let (tx, rx) = sync_channel(QUEUE);
            let spawned = std::thread::Builder::new()
                .name("rswoole-access-log".into())
                .spawn(move || writer(path, rx));
            match spawned {
                Ok(_) => Some(AccessLog { tx }),
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the access log writer thread");
                    None
                }
            }
        })
        .as_ref()
    }

    /// Queues a line; never blocks (a full queue drops it, counted).
    pub(crate) fn log(&self, line: String) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.tx.try_send(line) {
            if let Some(s) = crate::ipc::metrics::slot() {
                s.access_dropped
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_log_combined_and_json_lines() {
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(time_local(t), "06/Nov/1994:08:49:37 +0000");
        assert_eq!(
            time_local(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "29/Feb/2000:00:00:00 +0000"
        );
        let e = Entry {
            remote: ([10, 0, 0, 1], 4000).into(),
            method: "GET",
            uri: "/a?b=\"c\"",
            protocol: "HTTP/1.1",
            status: 200,
            bytes: 123,
            referer: None,
            user_agent: Some("curl/8"),
            duration: Duration::from_micros(1500),
            worker: 1,
        };
        assert_eq!(
            format(AccessLogFormat::Combined, &e, t),
            "10.0.0.1 - - [06/Nov/1994:08:49:37 +0000] \"GET /a?b=\\x22c\\x22 HTTP/1.1\" 200 123 \"-\" \"curl/8\" 0.001500\n"
        );
        let j: serde_json::Value =
            serde_json::from_str(&format(AccessLogFormat::Json, &e, t)).unwrap();
        assert_eq!(j["status"], 200);
        assert_eq!(j["uri"], "/a?b=\"c\"");
        assert_eq!(j["referer"], serde_json::Value::Null);
    }
}
