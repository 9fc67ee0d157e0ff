//! Heartbeat: the owner of the client sockets (the master's runtime in Process mode, each
//! worker in Base mode) sweeps its connection table every `heartbeat_check_interval` and
//! closes the connections that received nothing for `heartbeat_idle_time` (`Conn::close`, so
//! queued output is still written and `on_close` fires as for any close).

use std::time::{Duration, SystemTime};

use super::table::ConnTable;
use crate::base::Settings;
use crate::ipc::shared::Shared;

/// Closes the connections of `conns` idle for `idle` or longer; returns how many.
pub(crate) fn sweep<X>(conns: &ConnTable<X>, shared: &Shared, idle: Duration) -> usize {
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
pub(crate) fn heartbeat<X, T, F>(
    settings: &Settings,
    shared: Shared,
    owner: T,
    table: F,
) -> Option<impl std::future::Future<Output = ()>>
where
    F: Fn(&T) -> &ConnTable<X>,
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
