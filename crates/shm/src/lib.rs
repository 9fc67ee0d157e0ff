//! Shared-memory [`Table`], [`Atomic`]/[`AtomicLong`] and [`Lock`] for
//! rswoole: data every worker and task worker process can reach, safe
//! across processes and `kill -9`.
//!
//! Create them in the master *before* the server forks; the children
//! inherit the `MAP_SHARED` mappings, so every process reads and writes the
//! same memory. A [`Table`] can also be [persistent](TableBuilder::persistent)
//! (a named segment in `/dev/shm` that outlives the server).
//!
//! - [`Table`]: fixed-capacity hash table of typed rows ([`Column`],
//!   [`Value`], [`Row`]) with lock-free reads, per-row locking, atomic
//!   `incr`, and honest capacity: built for N rows, it holds N rows.
//! - [`Atomic`] / [`AtomicLong`]: shared `u64` / `i64` counters with
//!   futex-based [`wait`](Atomic::wait) / [`wakeup`](Atomic::wakeup).
//! - [`Lock`]: a cross-process mutex whose holder may die.
//! - [`persistent`]: list, open and remove persistent tables by name.
//!
//! # Crash safety
//!
//! Every lock is a robust process-shared pthread mutex
//! (`PTHREAD_MUTEX_ROBUST | PTHREAD_PROCESS_SHARED`). We chose it over
//! owner-pid spin locks with liveness checks because the kernel itself
//! releases a robust mutex when its owner thread dies, by any means, and
//! tells the next owner (`EOWNERDEAD`): there is no PID-reuse window, no
//! polling of `kill(pid, 0)`, no need for the manager to clean up after a
//! dead worker, and waiters sleep in the kernel instead of spinning on our
//! two cores. Table rows are double-buffered behind a seqlock, so a writer
//! killed mid-write never exposes a torn row; structural state (index,
//! free list, count) is rebuilt from the rows by the next process that
//! takes the table lock after its holder died.
//!
//! # Portability
//!
//! Linux only (futexes, robust mutexes, `/dev/shm`).
//!
//! # Examples
//!
//! ```
//! use rswoole_shm::{Column, Table};
//! let users = Table::builder(1024)
//!     .column("name", Column::Str(64))
//!     .column("score", Column::Int)
//!     .column("ratio", Column::Float)
//!     .build()?;
//! // ... fork workers here; in any of them:
//! users.set("42", &[("name", "ann".into()), ("score", 7.into())])?;
//! assert_eq!(users.incr("42", "score", 1)?, 8);
//! # Ok::<(), rswoole_shm::Error>(())
//! ```
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

mod atomic;
mod error;
#[allow(unsafe_code)]
mod layout;
mod lock;
pub mod persistent;
#[allow(unsafe_code)]
mod sys;
mod table;
mod value;

pub use atomic::{Atomic, AtomicLong};
pub use error::{Error, Result};
pub use lock::{Lock, LockGuard};
pub use table::{Iter, Table, TableBuilder, MAX_KEY_LEN, MAX_ROWS};
pub use value::{Column, Row, Value, MAX_COLUMN_NAME, MAX_STR_LEN};

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync + Clone>() {}

    #[test]
    fn handles_are_send_sync_clone() {
        assert_send_sync::<Table>();
        assert_send_sync::<Atomic>();
        assert_send_sync::<AtomicLong>();
        assert_send_sync::<Lock>();
    }

    #[test]
    fn error_stays_small() {
        assert!(
            std::mem::size_of::<Error>() <= 88,
            "{}",
            std::mem::size_of::<Error>()
        );
    }
}
