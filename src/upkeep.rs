//! Long-run upkeep: closing idle connections (heartbeat) and recycling workers after
//! `max_request` events.
//!
//! - Heartbeat: the owner of the client sockets (the master's runtime in Process mode, each
//!   worker in Base mode) sweeps its connection table every `heartbeat_check_interval` and
//!   closes the connections that received nothing for `heartbeat_idle_time` (`Conn::close`,
//!   so queued output is still written and `on_close` fires as for any close).
//! - `max_request`: a worker counts the events it finished; at its limit (`max_request` plus a
//!   per-incarnation jitter up to `max_request_grace`) it sends `SIGUSR1` to its parent, the
//!   manager, once. The manager recognises a worker as the sender (signalfd gives the sender's
//!   pid) and replaces that one slot through its reload path: the new incarnation is forked
//!   and its pipe installed in the master before the old one gets `Stop`, so no event is lost.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime};

use crate::reactor::ConnTable;
use crate::settings::Settings;
use crate::shared::Shared;

/// Closes the connections of `conns` idle for `idle` or longer; returns how many.
pub(crate) fn sweep(conns: &ConnTable, shared: &Shared, idle: Duration) -> usize {
    let now = SystemTime::now();
    let mut n = 0;
    for c in conns.all() {
        let Some(info) = shared.info(c.id) else {
            continue;
        };
        let quiet = now
            .duration_since(info.last_receive_time)
            .unwrap_or_default();
        if quiet >= idle && c.close() {
            tracing::debug!(
                fd = c.id.0,
                idle_ms = quiet.as_millis() as u64,
                "heartbeat: closing an idle connection"
            );
            n += 1;
        }
    }
    if n > 0 {
        tracing::info!(closed = n, "heartbeat: closed idle connections");
    }
    n
}

/// The heartbeat loop over `table` (a closure so that both the master's `Reactor` and a Base
/// worker's table fit); `None` when the heartbeat is off.
pub(crate) fn heartbeat<T, F>(
    settings: &Settings,
    shared: Shared,
    owner: T,
    table: F,
) -> Option<impl std::future::Future<Output = ()>>
where
    F: Fn(&T) -> &ConnTable,
{
    let every = settings.heartbeat_check_interval;
    if every.is_zero() {
        return None;
    }
    let idle = settings.heartbeat_idle_time.max(Duration::from_millis(1));
    Some(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            sweep(table(&owner), &shared, idle);
        }
    })
}

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
        let seed =
            std::process::id() as u64 ^ crate::shared::now_ms().wrapping_mul(0x9E37_79B9_7F4A_7C15);
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
