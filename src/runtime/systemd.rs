//! Telling a service manager (systemd `Type=notify`) what the master is doing: `READY=1` once
//! the workers serve, `RELOADING=1` … `READY=1` around a reload, `STOPPING=1`, `WATCHDOG=1`
//! at half of `WATCHDOG_USEC`, and `MAINPID=` when an upgrade hands the service to a new
//! master. Without `NOTIFY_SOCKET` every call does nothing. Socket activation is in
//! [`super::inherit`].

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use crate::ipc::shared::{self, Shared};
use crate::sys;

/// Sends `state` (`KEY=value` lines) to the service manager, if there is one.
pub(crate) fn notify(state: &str) {
    match sys::sd_notify(state) {
        Ok(true) => tracing::debug!(state, "sd_notify"),
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, state, "sd_notify failed"),
    }
}

/// `RELOADING=1` (for `Type=notify`; `Type=notify-reload` would also want `MONOTONIC_USEC`).
pub(crate) fn reloading() {
    notify("RELOADING=1");
}

/// The watchdog task: `WATCHDOG=1` every half `WATCHDOG_USEC`, when the watchdog is on for
/// this process (`WATCHDOG_PID` unset or ours).
pub(crate) fn watchdog() -> Option<tokio::task::JoinHandle<()>> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
            return None;
        }
    }
    if usec == 0 {
        return None;
    }
    let every = Duration::from_micros(usec / 2);
    Some(tokio::spawn(async move {
        let mut t = tokio::time::interval(every);
        loop {
            t.tick().await;
            notify("WATCHDOG=1");
        }
    }))
}

/// Waits until every worker and task worker (`n` slots) is serving (idle or busy) or `limit`
/// passes; false on timeout. Polls shared memory: the workers write their state there.
pub(crate) async fn wait_serving(shared: &Shared, n: usize, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        let up = (0..n).all(|i| {
            let w = shared.worker(i);
            matches!(w.state.load(Relaxed), shared::W_IDLE | shared::W_BUSY)
                && w.pid.load(Relaxed) != 0
        });
        if up {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until each slot of `before` (slot, pid) runs another process (a reload replaced it)
/// that serves, or `limit` passes.
pub(crate) async fn wait_replaced(
    shared: &Shared,
    before: &[(usize, u32)],
    limit: Duration,
) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        let done = before.iter().all(|&(i, old)| {
            let w = shared.worker(i);
            // The replaced incarnation may write `W_EXITING` into the slot after its
            // successor wrote `W_IDLE`: a new pid past `W_STARTING` is a serving one.
            w.pid.load(Relaxed) != old
                && matches!(
                    w.state.load(Relaxed),
                    shared::W_IDLE | shared::W_BUSY | shared::W_EXITING
                )
        });
        if done {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
