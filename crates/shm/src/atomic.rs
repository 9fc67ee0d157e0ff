//! [`Atomic`] and [`AtomicLong`]: counters in shared memory, with futex
//! wait/wakeup across processes.

use std::sync::atomic::Ordering::{AcqRel, Acquire, Release, SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::layout::{AtomicCell, Shared};
use crate::sys;
use crate::{Error, Result};

fn new_cell(bits: u64) -> Result<Arc<Shared<AtomicCell>>> {
    let cell = Shared::<AtomicCell>::new().map_err(Error::os("mmap"))?;
    cell.get().value.store(bits, Release);
    Ok(Arc::new(cell))
}

/// Swoole's wait: consume a pending wakeup (value 1 -> 0) or sleep on the
/// epoch futex until a wakeup or the deadline.
fn wait(cell: &AtomicCell, timeout: Duration) -> bool {
    let deadline = Instant::now().checked_add(timeout);
    loop {
        if cell.value.compare_exchange(1, 0, AcqRel, Acquire).is_ok() {
            return true;
        }
        let epoch = cell.epoch.load(Acquire);
        // Re-check after reading the epoch: a wakeup between the two loads
        // bumps the epoch, so the futex wait below returns at once.
        if cell.value.compare_exchange(1, 0, AcqRel, Acquire).is_ok() {
            return true;
        }
        let remaining = match deadline {
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(r) if !r.is_zero() => Some(r),
                _ => return false,
            },
            None => None,
        };
        sys::futex_wait(&cell.epoch, epoch, remaining);
    }
}

fn wakeup(cell: &AtomicCell, n: u32) -> bool {
    if cell.value.compare_exchange(0, 1, AcqRel, Acquire).is_ok() {
        cell.epoch.fetch_add(1, SeqCst);
        sys::futex_wake(&cell.epoch, n.max(1));
        true
    } else {
        false
    }
}

macro_rules! atomic_type {
    (
        $(#[$doc:meta])*
        $name:ident, $t:ty
    ) => {
        $(#[$doc])*
        #[derive(Clone, Debug)]
        pub struct $name {
            cell: Arc<Shared<AtomicCell>>,
        }

        impl $name {
            /// Maps a new counter holding `value`. Create it before forking
            /// the processes that share it.
            ///
            /// # Errors
            ///
            /// [`Error::Os`] if the page cannot be mapped.
            ///
            /// # Examples
            ///
            /// ```
            #[doc = concat!("let counter = rswoole_shm::", stringify!($name), "::new(7)?;")]
            /// assert_eq!(counter.get(), 7);
            /// counter.set(9);
            /// assert_eq!(counter.get(), 9);
            /// # Ok::<(), rswoole_shm::Error>(())
            /// ```
            pub fn new(value: $t) -> Result<$name> {
                Ok($name { cell: new_cell(value as u64)? })
            }

            /// The current value.
            pub fn get(&self) -> $t {
                self.cell.get().value.load(SeqCst) as $t
            }

            /// Replaces the value.
            pub fn set(&self, value: $t) {
                self.cell.get().value.store(value as u64, SeqCst)
            }

            /// Adds `n` (wrapping) and returns the new value.
            ///
            /// # Examples
            ///
            /// ```
            #[doc = concat!("let counter = rswoole_shm::", stringify!($name), "::new(1)?;")]
            /// assert_eq!(counter.add(2), 3);
            /// assert_eq!(counter.get(), 3);
            /// # Ok::<(), rswoole_shm::Error>(())
            /// ```
            pub fn add(&self, n: $t) -> $t {
                (self.cell.get().value.fetch_add(n as u64, SeqCst) as $t).wrapping_add(n)
            }

            /// Subtracts `n` (wrapping) and returns the new value.
            ///
            /// # Examples
            ///
            /// ```
            #[doc = concat!("let counter = rswoole_shm::", stringify!($name), "::new(10)?;")]
            /// assert_eq!(counter.sub(4), 6);
            /// # Ok::<(), rswoole_shm::Error>(())
            /// ```
            pub fn sub(&self, n: $t) -> $t {
                (self.cell.get().value.fetch_sub(n as u64, SeqCst) as $t).wrapping_sub(n)
            }

            /// Sets the value to `new` if it is `current`; returns whether it
            /// did.
            ///
            /// # Examples
            ///
            /// ```
            #[doc = concat!("let state = rswoole_shm::", stringify!($name), "::new(0)?;")]
            /// assert!(state.compare_and_set(0, 1)); // first claimer wins
            /// assert!(!state.compare_and_set(0, 1)); // already claimed
            /// assert_eq!(state.get(), 1);
            /// # Ok::<(), rswoole_shm::Error>(())
            /// ```
            pub fn compare_and_set(&self, current: $t, new: $t) -> bool {
                self.cell
                    .get()
                    .value
                    .compare_exchange(current as u64, new as u64, SeqCst, SeqCst)
                    .is_ok()
            }

            /// Waits for a [`wakeup`](Self::wakeup), as Swoole's
            /// `Atomic::wait`: if the value is 1 (a pending wakeup) it is
            /// reset to 0 and `true` returned at once; otherwise the caller
            /// sleeps (in the kernel, on a futex) until a wakeup or until
            /// `timeout`, returning `false` on timeout.
            ///
            /// Use the value only as this 0/1 flag while waiting on it.
            ///
            /// # Examples
            ///
            /// A thread (or a forked process) sleeps until another wakes it:
            ///
            /// ```
            /// use std::time::Duration;
            #[doc = concat!("let ready = rswoole_shm::", stringify!($name), "::new(0)?;")]
            /// let waiter = ready.clone();
            /// let t = std::thread::spawn(move || waiter.wait(Duration::from_secs(10)));
            /// ready.wakeup(1);
            /// assert!(t.join().unwrap()); // woken, not timed out
            /// # Ok::<(), rswoole_shm::Error>(())
            /// ```
            pub fn wait(&self, timeout: Duration) -> bool {
                wait(self.cell.get(), timeout)
            }

            /// Wakes up to `n` (at least 1) processes in
            /// [`wait`](Self::wait): if the value is 0 it becomes 1 and
            /// waiters are woken; returns whether it did (`false` if a
            /// wakeup was already pending or the value is not 0).
            ///
            /// # Examples
            ///
            /// ```
            #[doc = concat!("let ready = rswoole_shm::", stringify!($name), "::new(0)?;")]
            /// assert!(ready.wakeup(1)); // 0 -> 1: pending until someone waits
            /// assert!(!ready.wakeup(1)); // already pending
            /// # Ok::<(), rswoole_shm::Error>(())
            /// ```
            pub fn wakeup(&self, n: u32) -> bool {
                wakeup(self.cell.get(), n)
            }
        }
    };
}

atomic_type! {
    /// An unsigned 64-bit counter in shared memory (Swoole's `Atomic`).
    ///
    /// Create it before forking: every process that inherits it shares the
    /// same value. `Clone` is a cheap handle to the same counter.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_shm::Atomic;
    /// use std::time::Duration;
    /// let hits = Atomic::new(0)?;
    /// assert_eq!(hits.add(5), 5);
    /// assert_eq!(hits.sub(2), 3);
    /// assert!(hits.compare_and_set(3, 0));
    /// assert!(hits.wakeup(1)); // 0 -> 1: a pending wakeup
    /// assert!(hits.wait(Duration::from_millis(10))); // consumed at once
    /// assert!(!hits.wait(Duration::from_millis(10))); // times out
    /// # Ok::<(), rswoole_shm::Error>(())
    /// ```
    Atomic, u64
}

atomic_type! {
    /// A signed 64-bit counter in shared memory (Swoole's `Atomic\Long`).
    ///
    /// Same as [`Atomic`] with `i64` values.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_shm::AtomicLong;
    /// let balance = AtomicLong::new(0)?;
    /// assert_eq!(balance.sub(10), -10);
    /// assert_eq!(balance.get(), -10);
    /// # Ok::<(), rswoole_shm::Error>(())
    /// ```
    AtomicLong, i64
}
