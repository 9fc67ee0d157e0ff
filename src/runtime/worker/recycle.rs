//! Recycling a worker after `max_request` events: a worker counts the events it finished;
//! at its limit (`max_request` plus a per-incarnation jitter up to `max_request_grace`) it asks
//! the manager, once, to replace it. The manager replaces that one slot through its reload
//! path: the new incarnation is forked and its pipe installed in the master before the old one
//! gets `Stop`, so no event is lost.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use crate::base::Settings;

/// Events this worker incarnation may finish before it asks to be replaced (0 = never).
static LIMIT: AtomicU64 = AtomicU64::new(0);
static HANDLED: AtomicU64 = AtomicU64::new(0);
static ASKED: AtomicBool = AtomicBool::new(false);

/// Sets this worker incarnation's recycling limit: `max_request` plus a jitter in
/// `0..=max_request_grace` (from the pid and the clock: workers must differ, not be random).
pub(crate) fn init_worker(settings: &Settings) {
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
}

/// A worker finished one event (receive or packet): ask the manager for a replacement once the
/// limit is reached. The worker goes on serving until the master sends it `Stop`.
pub(crate) fn handled_one(worker: usize) {
    let limit = LIMIT.load(Relaxed);
    if limit == 0 {
        return;
    }
    let n = HANDLED.fetch_add(1, Relaxed) + 1;
    if n >= limit && !ASKED.swap(true, Relaxed) {
        tracing::info!(
            worker,
            handled = n,
            "max_request reached: asking the manager to recycle this worker"
        );
        let manager = nix::unistd::getppid();
        let _ = nix::sys::signal::kill(manager, nix::sys::signal::Signal::SIGUSR1);
    }
}
