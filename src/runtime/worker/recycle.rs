//! Recycling a worker after `max_request` events: a worker counts the events it finished;
//! at its limit (`max_request` plus a per-incarnation jitter up to `max_request_grace`) it asks
//! the manager, once, to replace it. The manager replaces that one slot through its reload
//! path: the new incarnation is forked and its pipe installed in the master before the old one
//! gets `Stop`, so no event is lost.
//!
//! The request is one message ([`Command::Recycle`]: slot and pid) on the manager's recycle
//! channel, a `SOCK_SEQPACKET` socket whose sending end every worker inherits. It is not a
//! signal: pending signals merge, so of two workers that reached their limit at the same
//! moment one would never be recycled; messages queue one by one. The pid lets the manager
//! ignore a request that arrives after that incarnation was replaced. If the channel is full
//! (it never is in practice: one message per incarnation), the worker asks again after its next
//! event.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;

use crate::base::Settings;
use crate::ipc::command::{self, Command};

/// Events this worker incarnation may finish before it asks to be replaced (0 = never).
static LIMIT: AtomicU64 = AtomicU64::new(0);
static HANDLED: AtomicU64 = AtomicU64::new(0);
static ASKED: AtomicBool = AtomicBool::new(false);
/// This process's sending end of the manager's recycle channel.
static CHANNEL: OnceLock<OwnedFd> = OnceLock::new();

/// Sets this worker incarnation's recycling limit: `max_request` plus a jitter in
/// `0..=max_request_grace` (from the pid and the clock: workers must differ, not be random),
/// and the channel its request goes to.
pub(crate) fn init_worker(settings: &Settings, channel: Option<OwnedFd>) {
    let limit = if settings.max_request == 0 {
        0
    } else {
        let seed = std::process::id() as u64
            ^ crate::ipc::shared::now_ms().wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let jitter = match settings.max_request_grace {
            0 => 0,
            g => seed.wrapping_mul(0xBF58_476D_1CE4_E5B9) % (g + 1),
        };
        settings.max_request.saturating_add(jitter)
    };
    LIMIT.store(limit, Relaxed);
    HANDLED.store(0, Relaxed);
    ASKED.store(false, Relaxed);
    if let Some(fd) = channel {
        let _ = CHANNEL.set(fd);
    }
}

/// A worker finished one event (receive or packet): ask the manager for a replacement once the
/// limit is reached. The worker goes on serving until the master sends it `Stop`.
pub(crate) fn handled_one(worker: usize) {
    let limit = LIMIT.load(Relaxed);
    if limit == 0 {
        return;
    }
    let n = HANDLED.fetch_add(1, Relaxed) + 1;
    if n < limit || ASKED.swap(true, Relaxed) {
        return;
    }
    tracing::info!(
        worker,
        handled = n,
        "max_request reached: asking the manager to recycle this worker"
    );
    let Some(channel) = CHANNEL.get() else {
        tracing::error!(
            worker,
            "no recycle channel to the manager: this worker stays"
        );
        return;
    };
    let request = Command::Recycle {
        slot: worker as u32,
        pid: std::process::id(),
    };
    match command::send(channel.as_fd(), request) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            tracing::warn!(
                worker,
                "the manager's recycle channel is full; asking again after the next event"
            );
            ASKED.store(false, Relaxed);
        }
        Err(e) => {
            tracing::error!(worker, error = %e, "cannot ask the manager to recycle this worker")
        }
    }
}
