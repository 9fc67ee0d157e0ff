//! [`Lock`]: a mutex shared by processes that survives its holder's death.

use std::sync::Arc;
use std::time::Duration;

use crate::layout::Shared;
use crate::sys::{RawGuard, RawMutex};
use crate::{Error, Result};

/// A cross-process mutex (Swoole's `Lock`), robust against `kill -9`.
///
/// Create it before forking; every process that inherits it contends for
/// the same lock. It is a robust, process-shared pthread mutex: if a holder
/// dies, even by `SIGKILL`, the kernel hands the lock to the next locker,
/// whose guard then reports [`LockGuard::previous_owner_died`] so it can
/// check whatever the dead process was changing.
///
/// A lock is held by a *thread*: the guard is not `Send`, and locking again
/// from the thread that holds it returns [`Error::WouldDeadlock`].
///
/// # Examples
///
/// ```
/// use rswoole_shm::Lock;
/// use std::time::Duration;
/// let lock = Lock::new()?;
/// {
///     let guard = lock.lock()?;
///     assert!(!guard.previous_owner_died());
///     assert!(lock.try_lock().is_err()); // this thread holds it already
/// }
/// assert!(lock.lock_timeout(Duration::from_millis(10))?.is_some());
/// # Ok::<(), rswoole_shm::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Lock {
    mutex: Arc<Shared<RawMutex>>,
}

/// Holds a [`Lock`]; unlocks on drop.
///
/// # Examples
///
/// A thread that dies holding the lock does not block the next locker, which
/// learns about it:
///
/// ```
/// use rswoole_shm::Lock;
/// let lock = Lock::new()?;
/// let dying = lock.clone();
/// std::thread::spawn(move || std::mem::forget(dying.lock())).join().unwrap();
/// let guard = lock.lock()?; // the kernel released it when the thread ended
/// assert!(guard.previous_owner_died());
/// drop(guard);
/// assert!(!lock.lock()?.previous_owner_died()); // reported once
/// # Ok::<(), rswoole_shm::Error>(())
/// ```
#[derive(Debug)]
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard<'a> {
    /// Unlocks when the guard is dropped.
    _raw: RawGuard<'a>,
    owner_died: bool,
}

impl LockGuard<'_> {
    /// Whether the previous holder died while holding the lock: what it
    /// protected may be half-updated.
    pub fn previous_owner_died(&self) -> bool {
        self.owner_died
    }
}

impl Lock {
    /// Maps a new, unlocked lock.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] if the page cannot be mapped or the mutex initialised.
    ///
    /// # Examples
    ///
    /// ```
    /// let lock = rswoole_shm::Lock::new()?;
    /// assert!(lock.try_lock()?.is_some()); // created unlocked
    /// # Ok::<(), rswoole_shm::Error>(())
    /// ```
    pub fn new() -> Result<Lock> {
        Ok(Lock {
            mutex: Arc::new(Shared::new().map_err(Error::os("mmap"))?),
        })
    }

    fn guard(raw: RawGuard<'_>) -> LockGuard<'_> {
        let mut raw = raw;
        let owner_died = raw.owner_died();
        // The lock itself is fine again; the guard reports the death.
        raw.mark_consistent();
        LockGuard {
            _raw: raw,
            owner_died,
        }
    }

    /// Blocks until the lock is held.
    ///
    /// # Errors
    ///
    /// [`Error::WouldDeadlock`] if this thread holds it; [`Error::Os`].
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_shm::{Error, Lock};
    /// let lock = Lock::new()?;
    /// let guard = lock.lock()?;
    /// assert!(matches!(lock.lock(), Err(Error::WouldDeadlock)));
    /// drop(guard); // unlocks
    /// assert!(lock.lock().is_ok());
    /// # Ok::<(), rswoole_shm::Error>(())
    /// ```
    pub fn lock(&self) -> Result<LockGuard<'_>> {
        Ok(Self::guard(self.mutex.get().lock()?))
    }

    /// Takes the lock if it is free; `Ok(None)` if another thread holds it.
    ///
    /// # Errors
    ///
    /// [`Error::WouldDeadlock`] if this thread holds it; [`Error::Os`].
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_shm::Lock;
    /// let lock = Lock::new()?;
    /// let guard = lock.lock()?;
    /// let other = lock.clone();
    /// let got = std::thread::spawn(move || other.try_lock().map(|g| g.is_some()))
    ///     .join()
    ///     .unwrap()?;
    /// assert!(!got); // held by the main thread
    /// drop(guard);
    /// # Ok::<(), rswoole_shm::Error>(())
    /// ```
    pub fn try_lock(&self) -> Result<Option<LockGuard<'_>>> {
        Ok(self.mutex.get().try_lock()?.map(Self::guard))
    }

    /// Blocks until the lock is held, or returns `Ok(None)` after `timeout`.
    ///
    /// # Errors
    ///
    /// [`Error::WouldDeadlock`] if this thread holds it; [`Error::Os`].
    ///
    /// # Portability
    ///
    /// The deadline is on the wall clock (`CLOCK_REALTIME`), so a clock
    /// jump during the wait changes its length.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_shm::Lock;
    /// use std::time::Duration;
    /// let lock = Lock::new()?;
    /// let guard = lock.lock()?;
    /// let other = lock.clone();
    /// let got = std::thread::spawn(move || {
    ///     other.lock_timeout(Duration::from_millis(20)).map(|g| g.is_some())
    /// })
    /// .join()
    /// .unwrap()?;
    /// assert!(!got); // gave up after 20 ms
    /// drop(guard);
    /// # Ok::<(), rswoole_shm::Error>(())
    /// ```
    pub fn lock_timeout(&self, timeout: Duration) -> Result<Option<LockGuard<'_>>> {
        Ok(self.mutex.get().lock_timeout(timeout)?.map(Self::guard))
    }
}
