//! Timers on a process's event loop (`Handle::tick` / `after` / `clear`, and the same on
//! `TaskHandle`). They end with the process.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::app::{guarded, BoxFut};
use super::holds::{self, Holds};
use crate::base::TimerId;

/// Timers of one process (a worker or a task worker): tokio tasks on its `LocalSet`, so they
/// die with the process and never outlive a reload.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    next: AtomicU64,
    live: Arc<Mutex<HashMap<u64, tokio::task::AbortHandle>>>,
    /// A worker's: an `after` set while a connection's event is handled holds that
    /// connection until it fired or was cleared (`super::holds`).
    holds: Option<Arc<Holds>>,
}

impl Timers {
    /// A worker's timers, whose `after` counts as owed to the connection being handled.
    pub(crate) fn with_holds(holds: Arc<Holds>) -> Timers {
        Timers {
            holds: Some(holds),
            ..Timers::default()
        }
    }

    /// Runs `f` every `every` (at least 1 ms), each run in its own task.
    pub(crate) fn tick(&self, every: Duration, f: Rc<dyn Fn() -> BoxFut>) -> TimerId {
        let id = self.next.fetch_add(1, Relaxed) + 1;
        let every = every.max(Duration::from_millis(1));
        let h = tokio::task::spawn_local(async move {
            let mut iv = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                iv.tick().await;
                tokio::task::spawn_local(guarded("tick", f()));
            }
        });
        self.live.lock().insert(id, h.abort_handle());
        TimerId(id)
    }

    /// Runs `f` once after `delay`. Set while a connection's event is handled, it runs as
    /// part of that connection's work, which is owed until it has run.
    pub(crate) fn after(&self, delay: Duration, f: Box<dyn FnOnce() -> BoxFut>) -> TimerId {
        let id = self.next.fetch_add(1, Relaxed) + 1;
        let live = self.live.clone();
        // Dropped with the task: after `f` ran, or when the timer is cleared.
        let hold = self.holds.as_ref().and_then(|h| h.take_current());
        let h = tokio::task::spawn_local(async move {
            tokio::time::sleep(delay).await;
            // Once fired it can no longer be cleared.
            live.lock().remove(&id);
            let conn = hold.as_ref().map(|h| h.fd());
            holds::in_conn(conn, async { guarded("after", f()).await }).await;
            drop(hold);
        });
        self.live.lock().insert(id, h.abort_handle());
        TimerId(id)
    }

    /// Stops timer `id`; `false` if it is not active (fired, cleared, or unknown).
    pub(crate) fn clear(&self, id: TimerId) -> bool {
        match self.live.lock().remove(&id.0) {
            Some(h) => {
                h.abort();
                true
            }
            None => false,
        }
    }
}
