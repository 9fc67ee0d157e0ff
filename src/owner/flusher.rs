//! The per-process flusher: writes what [`Conn::write_deferred`] queued, for every
//! connection, once per scheduler turn.

use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::conn::Conn;

/// Writes the output that [`Conn::write_deferred`] queued, for every connection of the
/// process, once per scheduler turn: one task (not one wake-up per connection), after every
/// task that is ready has had its turn — so that all the broadcasts made in one turn reach each
/// client in one `write`, as with a per-client writer task but without waking a thousand tasks
/// per message.
#[derive(Debug)]
pub(crate) struct Flusher<X = ()> {
    dirty: Mutex<Vec<Arc<Conn<X>>>>,
    notify: Notify,
    started: std::sync::atomic::AtomicBool,
}

/// Connections written between two yields of the [`Flusher`].
const FLUSH_CHUNK: usize = 64;

impl<X> Default for Flusher<X> {
    fn default() -> Self {
        Flusher {
            dirty: Mutex::new(Vec::new()),
            notify: Notify::new(),
            started: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

impl<X: Send + Sync + 'static> Flusher<X> {
    pub(crate) fn add(self: &Arc<Self>, conn: Arc<Conn<X>>) {
        let first = {
            let mut d = self.dirty.lock();
            d.push(conn);
            d.len() == 1
        };
        if !self.started.swap(true, std::sync::atomic::Ordering::AcqRel) {
            // Spawned on first use, from inside the process's runtime (never before a fork).
            let me = self.clone();
            tokio::spawn(async move { me.run().await });
        }
        if first {
            self.notify.notify_one();
        }
    }

    async fn run(self: Arc<Self>) {
        let mut batch = Vec::new();
        loop {
            self.notify.notified().await;
            // Let the tasks that are ready now queue their frames too.
            tokio::task::yield_now().await;
            std::mem::swap(&mut batch, &mut *self.dirty.lock());
            let mut rest = batch.drain(..);
            loop {
                let mut n = 0;
                for c in rest.by_ref().take(FLUSH_CHUNK) {
                    c.flush_queued();
                    n += 1;
                }
                if n < FLUSH_CHUNK {
                    break;
                }
                // Let the reactor read between chunks: messages that arrive meanwhile join
                // the output of the connections not written yet (bigger writes, and a long
                // fan-out does not hold up everything else).
                tokio::task::yield_now().await;
            }
        }
    }
}
