//! What the application still owes a connection, so that a client's FIN (half-close) does not
//! cut off replies that are on their way.
//!
//! A FIN closes only the client's direction. The worker keeps such a connection writable,
//! and holds back its `on_close`, while the application still has work for it that will
//! answer later: tasks started with `task` (the reply comes from `on_finish`) and one-shot
//! timers (`after`) set while one of its events was being handled. Each takes a [`Hold`] on
//! the connection, dropped once the reply's callback has run (or the timer was cleared). The
//! wait is bounded by `Settings::half_close_timeout`, and ends when the application calls
//! `close`. Events of the connection still in flight need no hold: its `Close` event queues
//! behind them.
//!
//! Which connection is being handled is known while a callback's future is polled: the
//! dispatcher polls it inside [`in_conn`], which sets this thread's current connection (a
//! worker runs on one thread). Work the application spawns by hand, `tick` timers and replies
//! from other workers are not tracked.

use std::cell::Cell;
use std::collections::HashMap;
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::base::ConnId;

thread_local! {
    static CURRENT: Cell<Option<ConnId>> = const { Cell::new(None) };
}

/// The connection whose event this thread is handling, if any.
pub(crate) fn current() -> Option<ConnId> {
    CURRENT.with(Cell::get)
}

/// Runs `f` with `fd` as the current connection (restored afterwards, even on a panic).
pub(crate) fn enter<R>(fd: Option<ConnId>, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<ConnId>);
    impl Drop for Restore {
        fn drop(&mut self) {
            CURRENT.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(CURRENT.with(|c| c.replace(fd)));
    f()
}

/// `fut`, each poll of which runs with `fd` as the current connection.
pub(crate) async fn in_conn<F: Future>(fd: Option<ConnId>, fut: F) -> F::Output {
    let mut fut = pin!(fut);
    poll_fn(|cx| enter(fd, || fut.as_mut().poll(cx))).await
}

/// The holds of one worker, by connection.
#[derive(Debug, Default)]
pub(crate) struct Holds {
    counts: Mutex<HashMap<u64, usize>>,
    changed: Notify,
}

/// One piece of work that will answer connection `fd`; released when dropped.
#[derive(Debug)]
pub(crate) struct Hold {
    holds: Arc<Holds>,
    fd: ConnId,
}

impl Hold {
    /// The connection held.
    pub(crate) fn fd(&self) -> ConnId {
        self.fd
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        let mut c = self.holds.counts.lock();
        if let Some(n) = c.get_mut(&self.fd.0) {
            *n -= 1;
            if *n == 0 {
                c.remove(&self.fd.0);
                drop(c);
                self.holds.changed.notify_waiters();
            }
        }
    }
}

/// How a half-closed connection's wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WaitEnd {
    /// Nothing is owed any more.
    Released,
    /// The application asked to close it.
    Closed,
    /// `half_close_timeout` passed.
    TimedOut,
}

impl Holds {
    /// A hold on `fd`.
    pub(crate) fn take(self: &Arc<Self>, fd: ConnId) -> Hold {
        *self.counts.lock().entry(fd.0).or_insert(0) += 1;
        Hold {
            holds: self.clone(),
            fd,
        }
    }

    /// A hold on the current connection, if a connection's event is being handled.
    pub(crate) fn take_current(self: &Arc<Self>) -> Option<Hold> {
        current().filter(|fd| fd.0 != 0).map(|fd| self.take(fd))
    }

    /// Whether something is owed to `fd`.
    pub(crate) fn held(&self, fd: ConnId) -> bool {
        self.counts.lock().contains_key(&fd.0)
    }

    /// Something a waiter checks changed (a close was asked for).
    pub(crate) fn poke(&self) {
        self.changed.notify_waiters();
    }

    /// Waits (at most `limit`) until nothing is owed to `fd` or `closed()` says the
    /// application closed it. `closed` is also checked now and then, for closes asked by
    /// other processes.
    pub(crate) async fn wait(
        &self,
        fd: ConnId,
        limit: Duration,
        closed: impl Fn() -> bool,
    ) -> WaitEnd {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let mut changed = pin!(self.changed.notified());
            changed.as_mut().enable();
            if closed() {
                return WaitEnd::Closed;
            }
            if !self.held(fd) {
                return WaitEnd::Released;
            }
            let recheck = (tokio::time::Instant::now() + Duration::from_millis(100)).min(deadline);
            tokio::select! {
                _ = changed => {}
                _ = tokio::time::sleep_until(recheck) => {
                    if recheck >= deadline {
                        return WaitEnd::TimedOut;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_count_per_connection_and_current_is_scoped() {
        let h = Arc::new(Holds::default());
        assert!(h.take_current().is_none());
        let a = enter(Some(ConnId(7)), || h.take_current()).expect("a hold");
        assert_eq!(current(), None);
        let b = h.take(ConnId(7));
        assert!(h.held(ConnId(7)) && !h.held(ConnId(8)));
        drop(a);
        assert!(h.held(ConnId(7)));
        drop(b);
        assert!(!h.held(ConnId(7)));
    }

    #[test]
    fn holds_wait_ends_on_release_close_or_timeout() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let h = Arc::new(Holds::default());
            let fd = ConnId(1);
            assert_eq!(
                h.wait(fd, Duration::from_secs(5), || false).await,
                WaitEnd::Released
            );
            let hold = h.take(fd);
            let t0 = tokio::time::Instant::now();
            let end = h.wait(fd, Duration::from_millis(50), || false).await;
            assert_eq!(end, WaitEnd::TimedOut);
            assert!(t0.elapsed() >= Duration::from_millis(50));
            assert_eq!(
                h.wait(fd, Duration::from_secs(5), || true).await,
                WaitEnd::Closed
            );
            let release = async {
                tokio::task::yield_now().await;
                drop(hold);
            };
            let (end, ()) = tokio::join!(h.wait(fd, Duration::from_secs(5), || false), release);
            assert_eq!(end, WaitEnd::Released);
        });
    }
}
