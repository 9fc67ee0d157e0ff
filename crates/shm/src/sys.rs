//! The OS boundary: shared mappings, POSIX shm segments, futexes and robust
//! process-shared pthread mutexes.
//!
//! This is one of the two modules of the crate allowed to use `unsafe` (the
//! other is [`crate::layout`]). Its contract with the rest of the crate:
//!
//! - [`Mapping`] owns one `MAP_SHARED` read-write mapping and unmaps it on
//!   drop. Its memory is zero-filled when fresh, is shared with every process
//!   that inherits it across `fork` (anonymous) or maps the same `/dev/shm`
//!   file (named), and is only ever accessed through atomics or [`RawMutex`].
//! - [`RawMutex`] is a `pthread_mutex_t` living *inside* a mapping, set up
//!   with `PTHREAD_PROCESS_SHARED | PTHREAD_MUTEX_ROBUST |
//!   PTHREAD_MUTEX_ERRORCHECK`. When its owner dies (even by `SIGKILL`) the
//!   kernel marks it `OWNER_DIED` and the next locker gets
//!   [`Acquired::OwnerDied`]; [`RawGuard`] then calls
//!   `pthread_mutex_consistent` before unlocking so the mutex never becomes
//!   unrecoverable.
//! - Futex calls use shared (not `FUTEX_PRIVATE_FLAG`) futexes so that they
//!   work across processes.

use std::cell::UnsafeCell;
use std::ffi::c_void;
use std::io;
use std::marker::PhantomData;
use std::os::fd::OwnedFd;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustix::fs::{FlockOperation, Mode};
use rustix::mm::{MapFlags, ProtFlags};
use rustix::shm;
use rustix::thread::futex;

/// One `MAP_SHARED`, read-write mapping, unmapped on drop.
#[derive(Debug)]
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory; the crate only accesses it
// through atomics and process-shared mutexes, which are safe to use from any
// thread. The pointer itself is not tied to the creating thread.
unsafe impl Send for Mapping {}
// SAFETY: see `Send`: every access through `&Mapping` goes through atomics
// or `RawMutex`, which synchronise themselves.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `len` bytes of zeroed anonymous shared memory, inherited by
    /// children across `fork`.
    pub(crate) fn anonymous(len: usize) -> io::Result<Mapping> {
        // SAFETY: a null hint lets the kernel choose a fresh range, so no
        // existing memory is replaced.
        let ptr = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
            )?
        };
        Ok(Mapping::from_raw(ptr, len))
    }

    /// Maps the first `len` bytes of the shm file `fd` shared, read-write.
    pub(crate) fn from_fd(fd: &OwnedFd, len: usize) -> io::Result<Mapping> {
        // SAFETY: a null hint lets the kernel choose a fresh range, so no
        // existing memory is replaced; `fd` is a valid open descriptor.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                fd,
                0,
            )?
        };
        Ok(Mapping::from_raw(ptr, len))
    }

    fn from_raw(ptr: *mut c_void, len: usize) -> Mapping {
        let ptr = NonNull::new(ptr.cast::<u8>()).expect("mmap never returns null on success");
        Mapping { ptr, len }
    }

    /// Start of the mapping (page aligned).
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Length of the mapping in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe exactly the range mmap returned, and
        // every reference into it borrows `self`, so none outlives this.
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Opens (optionally creating, mode 0600) the POSIX shm object `/name`.
pub(crate) fn shm_open(name: &str, create: bool) -> io::Result<OwnedFd> {
    let mut flags = shm::OFlags::RDWR;
    if create {
        flags |= shm::OFlags::CREATE;
    }
    Ok(shm::open(
        format!("/{name}"),
        flags,
        Mode::RUSR | Mode::WUSR,
    )?)
}

/// Removes the POSIX shm object `/name`; existing mappings stay valid.
pub(crate) fn shm_unlink(name: &str) -> io::Result<()> {
    Ok(shm::unlink(format!("/{name}"))?)
}

/// Size in bytes of the file behind `fd`.
pub(crate) fn file_len(fd: &OwnedFd) -> io::Result<u64> {
    let st = rustix::fs::fstat(fd)?;
    Ok(u64::try_from(st.st_size).unwrap_or(0))
}

/// Sets the size of the file behind `fd` (new bytes read as zero).
pub(crate) fn set_file_len(fd: &OwnedFd, len: u64) -> io::Result<()> {
    Ok(rustix::fs::ftruncate(fd, len)?)
}

/// An exclusive `flock` on a file, released on drop.
///
/// The explicit unlock matters: a mapping of the file keeps its open file
/// description alive, so closing the descriptor would not release the lock.
/// If the process dies, its mappings go and the kernel releases the lock.
#[derive(Debug)]
pub(crate) struct FileLock<'a>(&'a OwnedFd);

impl Drop for FileLock<'_> {
    fn drop(&mut self) {
        let _ = rustix::fs::flock(self.0, FlockOperation::Unlock);
    }
}

/// Takes an exclusive `flock` on `fd`, retrying until `timeout`.
///
/// Returns `Ok(None)` on timeout.
pub(crate) fn flock_exclusive(fd: &OwnedFd, timeout: Duration) -> io::Result<Option<FileLock<'_>>> {
    let deadline = Instant::now() + timeout;
    loop {
        match rustix::fs::flock(fd, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(Some(FileLock(fd))),
            Err(e) if e == rustix::io::Errno::WOULDBLOCK || e == rustix::io::Errno::INTR => {
                if Instant::now() >= deadline {
                    return Ok(None);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Blocks while `*word == expected`, until woken or `timeout` elapses.
///
/// Spurious returns are possible; callers loop and re-check their condition.
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    let ts = timeout.map(|d| futex::Timespec {
        tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(d.subsec_nanos()),
    });
    // EAGAIN (value changed), EINTR and ETIMEDOUT all mean "re-check".
    let _ = futex::wait(word, futex::Flags::empty(), expected, ts.as_ref());
}

/// Wakes up to `n` processes waiting on `word`; returns how many woke.
pub(crate) fn futex_wake(word: &AtomicU32, n: u32) -> usize {
    futex::wake(word, futex::Flags::empty(), n).unwrap_or(0)
}

/// How a [`RawMutex`] was acquired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acquired {
    /// The previous owner unlocked it normally.
    Clean,
    /// The previous owner died while holding it (`EOWNERDEAD`): the data it
    /// protects may be half-updated and must be checked or repaired.
    OwnerDied,
}

/// Why locking a [`RawMutex`] failed.
#[derive(Debug)]
pub(crate) enum LockError {
    /// The calling thread already holds it (`EDEADLK`).
    WouldDeadlock,
    /// Any other error from pthreads.
    Os(io::Error),
}

/// A robust, process-shared, error-checking `pthread_mutex_t` that lives in
/// shared memory. Zeroed memory is *not* a usable value: call
/// [`RawMutex::init`] once when the segment is created.
#[repr(C)]
pub(crate) struct RawMutex {
    inner: UnsafeCell<libc::pthread_mutex_t>,
}

// SAFETY: pthread mutexes are designed to be used concurrently from many
// threads (and, being PTHREAD_PROCESS_SHARED, processes) through a pointer.
unsafe impl Sync for RawMutex {}
// SAFETY: see `Sync`; the mutex is plain memory with no thread affinity
// until locked, and guards (which have affinity) are `!Send`.
unsafe impl Send for RawMutex {}

impl std::fmt::Debug for RawMutex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RawMutex")
    }
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

impl RawMutex {
    /// Initialises the mutex as robust, process-shared and error-checking.
    ///
    /// # Safety
    ///
    /// No thread in any process may be using this mutex (locked, or blocked
    /// in a lock call) while it is initialised; in practice it is only called
    /// on freshly created segments before they are published.
    pub(crate) unsafe fn init(&self) -> io::Result<()> {
        let mut attr = std::mem::MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
        // SAFETY: `attr` is a valid place for an attribute object, and it is
        // initialised by pthread_mutexattr_init before any other use; the
        // caller guarantees nobody uses the mutex during pthread_mutex_init.
        unsafe {
            check(libc::pthread_mutexattr_init(attr.as_mut_ptr()))?;
            let attr_ptr = attr.as_mut_ptr();
            let result = (|| {
                check(libc::pthread_mutexattr_setpshared(
                    attr_ptr,
                    libc::PTHREAD_PROCESS_SHARED,
                ))?;
                check(libc::pthread_mutexattr_setrobust(
                    attr_ptr,
                    libc::PTHREAD_MUTEX_ROBUST,
                ))?;
                check(libc::pthread_mutexattr_settype(
                    attr_ptr,
                    libc::PTHREAD_MUTEX_ERRORCHECK,
                ))?;
                check(libc::pthread_mutex_init(self.inner.get(), attr_ptr))
            })();
            libc::pthread_mutexattr_destroy(attr_ptr);
            result
        }
    }

    fn map(rc: libc::c_int) -> Result<Acquired, LockError> {
        match rc {
            0 => Ok(Acquired::Clean),
            libc::EOWNERDEAD => Ok(Acquired::OwnerDied),
            libc::EDEADLK => Err(LockError::WouldDeadlock),
            e => Err(LockError::Os(io::Error::from_raw_os_error(e))),
        }
    }

    /// Blocks until the mutex is held by the calling thread.
    pub(crate) fn lock(&self) -> Result<RawGuard<'_>, LockError> {
        // SAFETY: `inner` points to a mutex initialised by `init` (the
        // segment is only published after initialisation).
        let rc = unsafe { libc::pthread_mutex_lock(self.inner.get()) };
        Self::map(rc).map(|how| RawGuard::new(self, how))
    }

    /// Takes the mutex if it is free; `Ok(None)` if another thread holds it.
    pub(crate) fn try_lock(&self) -> Result<Option<RawGuard<'_>>, LockError> {
        // SAFETY: as in `lock`.
        let rc = unsafe { libc::pthread_mutex_trylock(self.inner.get()) };
        if rc == libc::EBUSY {
            return Ok(None);
        }
        Self::map(rc).map(|how| Some(RawGuard::new(self, how)))
    }

    /// Blocks until the mutex is held or `timeout` elapsed (`Ok(None)`).
    ///
    /// pthreads measures the deadline on `CLOCK_REALTIME`; a wall-clock jump
    /// during the wait shortens or lengthens it.
    pub(crate) fn lock_timeout(
        &self,
        timeout: Duration,
    ) -> Result<Option<RawGuard<'_>>, LockError> {
        let deadline = SystemTime::now()
            .checked_add(timeout)
            .unwrap_or(SystemTime::now())
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let ts = libc::timespec {
            tv_sec: libc::time_t::try_from(deadline.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: libc::c_long::from(i32::try_from(deadline.subsec_nanos()).unwrap_or(0)),
        };
        // SAFETY: as in `lock`; `ts` is a valid timespec for the duration of
        // the call.
        let rc = unsafe { libc::pthread_mutex_timedlock(self.inner.get(), &ts) };
        if rc == libc::ETIMEDOUT {
            return Ok(None);
        }
        Self::map(rc).map(|how| Some(RawGuard::new(self, how)))
    }
}

/// Holds a [`RawMutex`]; unlocks on drop (marking it consistent first if its
/// previous owner had died). Not `Send`: a pthread mutex must be unlocked by
/// the thread that locked it.
#[derive(Debug)]
pub(crate) struct RawGuard<'a> {
    mutex: &'a RawMutex,
    owner_died: bool,
    _not_send: PhantomData<*const ()>,
}

impl<'a> RawGuard<'a> {
    fn new(mutex: &'a RawMutex, how: Acquired) -> RawGuard<'a> {
        RawGuard {
            mutex,
            owner_died: how == Acquired::OwnerDied,
            _not_send: PhantomData,
        }
    }

    /// Whether the previous owner died holding the mutex and
    /// [`RawGuard::mark_consistent`] has not been called yet.
    pub(crate) fn owner_died(&self) -> bool {
        self.owner_died
    }

    /// Declares the protected state repaired (`pthread_mutex_consistent`).
    pub(crate) fn mark_consistent(&mut self) {
        if self.owner_died {
            // SAFETY: we hold the mutex (this guard exists) and it is in the
            // EOWNERDEAD state, which is exactly when this call is allowed.
            unsafe { libc::pthread_mutex_consistent(self.mutex.inner.get()) };
            self.owner_died = false;
        }
    }
}

impl Drop for RawGuard<'_> {
    fn drop(&mut self) {
        // Unlocking an EOWNERDEAD mutex without marking it consistent would
        // make it ENOTRECOVERABLE forever; callers repair before dropping.
        self.mark_consistent();
        // SAFETY: this thread holds the mutex (the guard is !Send and is
        // created only after a successful lock).
        unsafe { libc::pthread_mutex_unlock(self.mutex.inner.get()) };
    }
}

/// Size of a `pthread_mutex_t` on this platform (part of the layout hash, so
/// a segment made by a different libc ABI is rejected).
pub(crate) const MUTEX_SIZE: usize = std::mem::size_of::<libc::pthread_mutex_t>();
