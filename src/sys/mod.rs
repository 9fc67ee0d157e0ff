//! The only module of the `rswoole` crate that may use `unsafe`.
//!
//! Contract: every function here is safe to call from the rest of the crate. The invariants
//! each `unsafe` block relies on are written next to it. What lives here:
//!
//! - [`fork`]: `fork(2)`, only ever called from a single-threaded process (the master before it
//!   starts its runtime, the manager, which never starts threads).
//! - [`ShmRegion`]: an anonymous `MAP_SHARED` mapping made before forking, so every child
//!   process sees the same bytes.
//! - [`set_process_title`]: `prctl(PR_SET_NAME)` plus an in-place rewrite of the `argv` area,
//!   which is what `ps` shows.
//! - [`detach`]: daemon mode (`fork`, `setsid`, `fork`, stdin from `/dev/null`), with
//!   [`redirect_std`] (`dup2` of the log file) and [`kill_raw`] (real-time signals).
//!
//! - [`adopt_inherited`]: takes ownership of descriptors inherited across `exec` (systemd's
//!   `LISTEN_FDS`, the upgrade socket), after checking each is open.
//!
//! - [`recv_spare`]: `recv(2)` straight into a `BytesMut`'s spare capacity (no zeroing, no
//!   copy from a scratch buffer).
//!
//! Everything else OS-specific (socketpairs, fd passing, signals, rlimits, `sd_notify`) goes through the safe
//! wrappers of `nix`/`rustix`, also kept here so that the rest of the crate reads as plain Rust.

use std::ffi::CString;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;

use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};

/// Receives what the socket `fd` has (at most `buf`'s spare capacity) onto the end of `buf`;
/// the bytes received (0: end of stream, or no spare capacity). A socket owner's read straight
/// into a lent buffer that messages are then split from: no copy, no allocation per read.
pub(crate) fn recv_spare(
    fd: impl std::os::fd::AsFd,
    buf: &mut bytes::BytesMut,
) -> io::Result<usize> {
    let ((got, _), _) = rustix::net::recv(
        fd,
        buf.spare_capacity_mut(),
        rustix::net::RecvFlags::empty(),
    )?;
    let n = got.len();
    // SAFETY: `recv` initialised the first `n` bytes of the spare capacity (`got` is that
    // prefix), so the first `len + n` bytes of `buf` are initialised.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

/// Result of [`fork`].
#[derive(Debug)]
pub(crate) enum Forked {
    /// We are the child.
    Child,
    /// We are the parent; the child's pid.
    Parent(i32),
}

/// Forks the calling process.
///
/// Callers must be single-threaded (checked in debug builds through `/proc/self/task`): the
/// child of a multi-threaded process may only call async-signal-safe functions, and rswoole's
/// children go on to run arbitrary code.
pub(crate) fn fork() -> io::Result<Forked> {
    debug_assert_eq!(thread_count(), 1, "fork() from a multi-threaded process");
    // Flush what Rust buffers for stdout so that a line printed before start() appears once.
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: the caller is single-threaded (asserted above in debug builds, and by
    // construction: the master forks before it builds its runtime, the manager never starts a
    // thread), so the child's copy of the address space holds no lock owned by another thread.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Child => Ok(Forked::Child),
        nix::unistd::ForkResult::Parent { child } => Ok(Forked::Parent(child.as_raw())),
    }
}

/// Number of threads of this process (from `/proc/self/task`).
pub(crate) fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(1)
}

/// An anonymous shared mapping, created before fork and inherited by every child.
///
/// The memory is zero-filled by the kernel. It is never unmapped: it lives as long as the
/// process (every rswoole process keeps the server's region until it exits).
#[derive(Debug)]
pub(crate) struct ShmRegion {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the region is plain shared memory; all access from the crate goes through atomics
// (see `shared.rs`), so sharing the pointer between threads is sound.
unsafe impl Send for ShmRegion {}
// SAFETY: as above: no non-atomic access is handed out.
unsafe impl Sync for ShmRegion {}

impl ShmRegion {
    /// Maps `len` zeroed bytes shared with future children.
    pub(crate) fn new(len: usize) -> io::Result<ShmRegion> {
        let len = len.max(1);
        // SAFETY: a fresh anonymous mapping at an address the kernel chooses: it aliases no
        // existing Rust object. MAP_SHARED makes the pages shared with children after fork.
        let ptr = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                len,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::SHARED | rustix::mm::MapFlags::NORESERVE,
            )
        }
        .map_err(io::Error::from)?;
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap null"))?;
        Ok(ShmRegion { ptr, len })
    }

    /// Returns a reference to a `T` at `offset`.
    ///
    /// `T` must be a type made only of atomics (or other types valid for any bit pattern
    /// including all zeroes, with interior mutability only through atomics), and `offset`
    /// must be aligned for `T` and in bounds; both are checked.
    pub(crate) fn get<T: ShmSafe>(&self, offset: usize) -> &T {
        assert!(
            offset + std::mem::size_of::<T>() <= self.len,
            "shm out of bounds"
        );
        assert_eq!(offset % std::mem::align_of::<T>(), 0, "shm misaligned");
        // SAFETY: in bounds and aligned (asserted); `T: ShmSafe` promises that all-zero bytes
        // are a valid `T` and that it is only mutated through atomics, so handing out shared
        // references, also to other processes, is sound. The mapping lives as long as `self`.
        unsafe { &*self.ptr.as_ptr().add(offset).cast::<T>() }
    }

    /// Which pages of `[offset, offset + len)` are resident (one flag per page; `offset`
    /// and `len` page-aligned and in bounds, else an error): `mincore`, which only looks —
    /// reading the bytes themselves would bring every page in.
    pub(crate) fn resident_pages(&self, offset: usize, len: usize) -> io::Result<Vec<bool>> {
        let page = page_size();
        self.check_pages(offset, len, page)?;
        let mut v = vec![0u8; len / page];
        // SAFETY: the range is page-aligned and inside our mapping (checked above); `v` has
        // one byte per page of it, which is what mincore writes.
        let r = unsafe {
            libc::mincore(
                self.ptr.as_ptr().add(offset).cast::<libc::c_void>(),
                len,
                v.as_mut_ptr().cast(),
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(v.into_iter().map(|b| b & 1 != 0).collect())
    }

    /// Gives the pages of `[offset, offset + len)` back to the kernel (page-aligned and in
    /// bounds, else an error): `MADV_REMOVE` frees the shared memory behind them for every
    /// process that maps the region, and they read as zeros afterwards (a page comes back,
    /// zeroed, at its next touch). The contents are lost: the caller owns everything in the
    /// range (in the connection table: every slot in it claimed, `ipc::shared`). All-zero is
    /// a valid value of every [`ShmSafe`] type, so a reference into the range stays valid.
    pub(crate) fn discard(&self, offset: usize, len: usize) -> io::Result<()> {
        let page = page_size();
        self.check_pages(offset, len, page)?;
        // SAFETY: the range is page-aligned and inside our own mapping (checked); MADV_REMOVE
        // only replaces its contents with zeros, a valid value of every `ShmSafe` type that
        // lives there, so no reference into it becomes invalid.
        unsafe {
            rustix::mm::madvise(
                self.ptr.as_ptr().add(offset).cast(),
                len,
                rustix::mm::Advice::LinuxRemove,
            )
        }
        .map_err(io::Error::from)
    }

    fn check_pages(&self, offset: usize, len: usize, page: usize) -> io::Result<()> {
        if offset % page != 0
            || len % page != 0
            || offset.checked_add(len).is_none_or(|e| e > self.len)
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "shm page range {offset}+{len} not page-aligned or out of bounds (region {} B)",
                    self.len
                ),
            ));
        }
        Ok(())
    }
}

/// The size of a memory page.
pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf reads a constant of the system; no memory is passed.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n).ok().filter(|&n| n > 0).unwrap_or(4096)
}

/// Marker for types that may live in a [`ShmRegion`].
///
/// # Safety
/// All-zero bytes must be a valid value, and every field must be an atomic (or a `ShmSafe`
/// aggregate of them), so concurrent access from several processes is race-free.
pub(crate) unsafe trait ShmSafe: Sync {}

/// Sets the process name shown by `ps` (the argv area) and `top` (`comm`, 15 bytes).
///
/// The new title is cut to the length of the original command line, which is all the room
/// there is without moving the environment.
pub(crate) fn set_process_title(title: &str) {
    if let Ok(name) = CString::new(
        title
            .as_bytes()
            .iter()
            .copied()
            .take(15)
            .collect::<Vec<_>>(),
    ) {
        let _ = nix::sys::prctl::set_name(&name);
    }
    let Some((start, end)) = argv_area() else {
        return;
    };
    if end <= start + 1 {
        return;
    }
    let room = end - start - 1;
    let bytes = title.as_bytes();
    let n = bytes.len().min(room);
    // SAFETY: [start, end) is this process's original argv string area, read from
    // /proc/self/stat (fields arg_start/arg_end): a writable part of the initial stack that no
    // Rust object owns. We write inside it only, and end with a NUL. Called right after fork in a
    // single-threaded child, so nobody reads argv concurrently.
    unsafe {
        let p = start as *mut u8;
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, n);
        std::ptr::write_bytes(p.add(n), 0, end - start - n);
    }
}

fn argv_area() -> Option<(usize, usize)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the comm (which may contain spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // rest starts at field 3 (state); arg_start is field 48, arg_end field 49.
    let start = fields.get(48 - 3)?.parse().ok()?;
    let end = fields.get(49 - 3)?.parse().ok()?;
    Some((start, end))
}

/// A pair of connected `SOCK_SEQPACKET` unix sockets (message boundaries kept), close-on-exec
/// and non-blocking.
pub(crate) fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
    )?;
    for fd in [&a, &b] {
        let s = socket2::SockRef::from(fd);
        let _ = s.set_send_buffer_size(4 << 20);
        let _ = s.set_recv_buffer_size(4 << 20);
    }
    Ok((a, b))
}

/// Sends `data` and one file descriptor over a unix socket (SCM_RIGHTS).
pub(crate) fn send_with_fd(sock: RawFd, data: &[u8], fd: RawFd) -> io::Result<()> {
    let fds = [fd];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [io::IoSlice::new(data)];
    loop {
        match sendmsg::<()>(sock, &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None) {
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(nix::errno::Errno::EAGAIN) => {
                wait_fd(sock, true)?;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Receives a message and at most one file descriptor (SCM_RIGHTS). `Ok(None)` on EOF.
pub(crate) fn recv_with_fd(
    sock: RawFd,
    buf: &mut [u8],
) -> io::Result<Option<(usize, Option<OwnedFd>)>> {
    let mut cmsg = nix::cmsg_space!([RawFd; 2]);
    let mut iov = [io::IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC)?;
    let n = msg.bytes;
    let mut got = None;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for fd in fds {
                // SAFETY: the kernel just installed `fd` in our table for us (SCM_RIGHTS); no
                // one else owns it, so taking ownership is sound.
                let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                if got.is_none() {
                    got = Some(owned);
                }
            }
        }
    }
    if n == 0 && got.is_none() {
        return Ok(None);
    }
    Ok(Some((n, got)))
}

/// Blocks until `fd` is writable (or readable), EINTR-safe.
pub(crate) fn wait_fd(fd: RawFd, write: bool) -> io::Result<()> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    // SAFETY: `fd` is open for the duration of this call (the caller holds it).
    let bfd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let flags = if write {
        PollFlags::POLLOUT
    } else {
        PollFlags::POLLIN
    };
    let mut fds = [PollFd::new(bfd, flags)];
    loop {
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Restores the default disposition of the signals rswoole handles and unblocks all signals:
/// a forked child must not inherit the parent's handlers or mask.
pub(crate) fn reset_signals() {
    use nix::sys::signal::{SigHandler, SigSet, Signal};
    for sig in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGCHLD,
        Signal::SIGHUP,
        Signal::SIGPIPE,
    ] {
        // SIGHUP is rswoole's internal "reopen the log file" (manager → workers): ignored
        // until the worker watches it, so an early one cannot kill a starting worker.
        let h = if matches!(sig, Signal::SIGPIPE | Signal::SIGHUP) {
            SigHandler::SigIgn
        } else {
            SigHandler::SigDfl
        };
        // SAFETY: installing SIG_DFL/SIG_IGN is always sound (no Rust handler runs).
        let _ = unsafe { nix::sys::signal::signal(sig, h) };
    }
    let _ = SigSet::all().thread_unblock();
}

/// Ignores SIGPIPE for this process (writes to a closed socket return EPIPE instead).
pub(crate) fn ignore_sigpipe() {
    use nix::sys::signal::{SigHandler, Signal};
    // SAFETY: SIG_IGN installs no Rust code as a handler.
    let _ = unsafe { nix::sys::signal::signal(Signal::SIGPIPE, SigHandler::SigIgn) };
}

/// Registers an owned descriptor with the current tokio runtime.
pub(crate) fn async_fd(fd: OwnedFd) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    // SAFETY: `OwnedFd` owns an open descriptor, keeps it open until it is dropped (which
    // happens only when the AsyncFd is dropped), and `as_raw_fd` always returns that same one.
    unsafe { tokio::io::unix::AsyncFd::register(fd) }.map_err(|e| e.into_parts().1)
}

/// Registers an owned descriptor with the current tokio runtime for `interest` only: a pipe
/// registered for reading alone is not woken by the write-space edge (`EPOLLOUT`) the kernel
/// raises each time its peer reads a datagram (see `crate::ipc::PipeTx`).
pub(crate) fn async_fd_with(
    fd: OwnedFd,
    interest: tokio::io::Interest,
) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    // SAFETY: as in `async_fd`: the `OwnedFd` keeps its descriptor open until the AsyncFd,
    // which owns it, is dropped, and `as_raw_fd` always returns that same descriptor.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, interest) }
        .map_err(|e| e.into_parts().1)
}

/// Receives up to two datagrams from the non-blocking socket `fd` in one call (`recvmmsg`):
/// the first into `a`, a second one, if queued, into `b`; their lengths (`None`: no second
/// one was queued, or reading it failed: the error is reported by the next call). A datagram
/// longer than its buffer is cut, as `recv` does. `WouldBlock` if nothing is queued.
pub(crate) fn recv_two(
    fd: impl std::os::fd::AsFd,
    a: &mut [u8],
    b: &mut [u8],
) -> io::Result<(usize, Option<usize>)> {
    use std::os::fd::AsRawFd;
    let mut iov = [
        libc::iovec {
            iov_base: a.as_mut_ptr().cast(),
            iov_len: a.len(),
        },
        libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: b.len(),
        },
    ];
    // SAFETY: `mmsghdr` is plain data: all zeroes is a valid value (no name, no control
    // data, no iovec yet).
    let mut msgs: [libc::mmsghdr; 2] = unsafe { std::mem::zeroed() };
    for (m, v) in msgs.iter_mut().zip(iov.iter_mut()) {
        m.msg_hdr.msg_iov = v;
        m.msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: `msgs` holds two valid headers, each pointing at one iovec that describes a
    // live, exclusively borrowed buffer (`a`, `b`) for the whole call; the kernel writes at
    // most `iov_len` bytes into each and the received lengths into `msg_len`. No timeout.
    let n = unsafe {
        libc::recvmmsg(
            fd.as_fd().as_raw_fd(),
            msgs.as_mut_ptr(),
            2,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    match n {
        n if n < 0 => Err(io::Error::last_os_error()),
        0 => Err(io::ErrorKind::WouldBlock.into()),
        1 => Ok((msgs[0].msg_len as usize, None)),
        _ => Ok((msgs[0].msg_len as usize, Some(msgs[1].msg_len as usize))),
    }
}

/// Which side of [`detach`] we are on.
#[derive(Debug)]
pub(crate) enum Detached {
    /// The process that called [`detach`]: it holds the read end of the report pipe and
    /// should wait for the daemon's word, then exit.
    Starter(OwnedFd),
    /// The daemon (a grandchild in a new session, without a controlling terminal): it holds
    /// the write end of the report pipe.
    Daemon(OwnedFd),
}

/// Detaches into the background: `fork`, `setsid` in the child, a second `fork` so the daemon
/// is not a session leader (it can never reacquire a terminal), stdin from `/dev/null`.
///
/// The starter gets the read end of a close-on-exec pipe whose write end the daemon holds, so
/// the daemon can report "listening" or its start error. Like [`fork`], only callable from a
/// single-threaded process.
pub(crate) fn detach() -> io::Result<Detached> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    match fork()? {
        Forked::Parent(child) => {
            drop(w);
            // The intermediate child exits at once; reap it so no zombie is left behind.
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(child), None);
            return Ok(Detached::Starter(r));
        }
        Forked::Child => {}
    }
    drop(r);
    let _ = nix::unistd::setsid();
    match fork() {
        Ok(Forked::Child) => {}
        Ok(Forked::Parent(_)) => exit_now(0),
        Err(e) => {
            use std::io::Write;
            let mut f = std::fs::File::from(w);
            let _ = write!(f, "E cannot fork the daemon: {e}");
            exit_now(1)
        }
    }
    if let Ok(null) = std::fs::File::open("/dev/null") {
        let _ = nix::unistd::dup2_stdin(&null);
    }
    Ok(Detached::Daemon(w))
}

/// Ends this process at once, without running `atexit` handlers or destructors (the
/// intermediate child of [`detach`] shares them with its parent).
fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` is async-signal-safe and always sound; it does not return.
    unsafe { libc::_exit(code) }
}

/// Makes `file` this process's stderr and, if `stdout` is true, its stdout (dup2).
pub(crate) fn redirect_std(file: &std::fs::File, stdout: bool) -> io::Result<()> {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    if stdout {
        nix::unistd::dup2_stdout(file)?;
    }
    nix::unistd::dup2_stderr(file)?;
    Ok(())
}

/// The signal number of a signal name of the verbs table (`SIGUSR1`, `SIGRTMIN+1`...).
pub(crate) fn signal_by_name(name: &str) -> Option<i32> {
    Some(match name {
        "SIGTERM" => libc::SIGTERM,
        "SIGINT" => libc::SIGINT,
        "SIGUSR1" => libc::SIGUSR1,
        "SIGUSR2" => libc::SIGUSR2,
        "SIGWINCH" => libc::SIGWINCH,
        "SIGRTMIN" => sigrtmin(),
        "SIGRTMIN+1" => sigrtmin() + 1,
        _ => return None,
    })
}

/// The first real-time signal (`SIGRTMIN`), which rswoole uses for "reopen the log file".
pub(crate) fn sigrtmin() -> i32 {
    libc::SIGRTMIN()
}

/// `kill(pid, sig)` for any signal number, real-time ones included (nix's `Signal` has none).
pub(crate) fn kill_raw(pid: i32, sig: i32) -> io::Result<()> {
    if pid <= 0 {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    // SAFETY: kill(2) takes plain integers and touches no memory of ours; pid > 0 (checked),
    // so it targets one process, never a process group or every process.
    let r = unsafe { libc::kill(pid, sig) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Takes ownership of descriptors `first..first + n` that this process inherited across
/// `exec` (systemd socket activation: `LISTEN_FDS` sockets start at 3) and marks each
/// close-on-exec, so that no later `exec` leaks them.
///
/// # Errors
/// A descriptor of the range is not open (the environment lied), or `n` is absurd.
pub(crate) fn adopt_inherited(first: RawFd, n: usize) -> io::Result<Vec<OwnedFd>> {
    if first < 0 || n > 4096 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{n} inherited descriptors from {first}"),
        ));
    }
    let mut out = Vec::with_capacity(n);
    for fd in first..first + n as RawFd {
        // SAFETY: fcntl(F_GETFD) only asks whether `fd` is open; it touches no memory.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("inherited descriptor {fd} is not open"),
            ));
        }
        // SAFETY: `fd` is open (checked above) and was passed to this process by the one
        // that exec'd it for us to use; nothing else in this process knows or owns it (each
        // descriptor of the range is taken once: the caller clears the variables that name
        // them), so this OwnedFd is its only owner.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        rustix::io::fcntl_setfd(&owned, rustix::io::FdFlags::CLOEXEC)?;
        out.push(owned);
    }
    Ok(out)
}

/// Lets descriptor `fd` survive `exec` (clears close-on-exec), for a child that is told its
/// number (the upgrade socket).
pub(crate) fn keep_on_exec(fd: &OwnedFd) -> io::Result<()> {
    rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty())?;
    Ok(())
}

/// The most descriptors [`send_fds`] passes in one message.
pub(crate) const MAX_FDS: usize = 250;

/// Sends `data` with the descriptors `fds` (at most [`MAX_FDS`]) over a unix socket
/// (SCM_RIGHTS), waiting while it is full.
pub(crate) fn send_fds(sock: RawFd, data: &[u8], fds: &[RawFd]) -> io::Result<()> {
    if fds.len() > MAX_FDS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} descriptors in one message (at most {MAX_FDS})",
                fds.len()
            ),
        ));
    }
    let cmsg = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage<'_>] = if fds.is_empty() { &[] } else { &cmsg };
    let iov = [io::IoSlice::new(data)];
    loop {
        match sendmsg::<()>(sock, &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(nix::errno::Errno::EAGAIN) => wait_fd(sock, true)?,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Receives one message and the descriptors that came with it (SCM_RIGHTS, close-on-exec).
/// `Ok(None)` on end-of-file.
pub(crate) fn recv_fds(sock: RawFd, buf: &mut [u8]) -> io::Result<Option<(usize, Vec<OwnedFd>)>> {
    let mut cmsg = nix::cmsg_space!([RawFd; MAX_FDS]);
    let mut iov = [io::IoSliceMut::new(buf)];
    let msg = loop {
        match recvmsg::<()>(sock, &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => break r?,
        }
    };
    let n = msg.bytes;
    let truncated = msg.flags.contains(MsgFlags::MSG_CTRUNC);
    let mut got = Vec::new();
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for fd in fds {
                // SAFETY: the kernel just installed `fd` in our table for us (SCM_RIGHTS); no
                // one else owns it, so taking ownership is sound.
                got.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    if truncated {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "descriptors were cut off (more than fit one message)",
        ));
    }
    if n == 0 && got.is_empty() {
        return Ok(None);
    }
    Ok(Some((n, got)))
}

/// Sends `state` to the service manager (`sd_notify(3)`: a datagram to the unix socket named
/// by `$NOTIFY_SOCKET`, `@` = abstract). `Ok(false)`: not run by a service manager.
pub(crate) fn sd_notify(state: &str) -> io::Result<bool> {
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => <SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(name)?,
        None => SocketAddr::from_pathname(std::path::Path::new(&path))?,
    };
    let sock = UnixDatagram::unbound()?;
    sock.send_to_addr(state.as_bytes(), &addr)?;
    Ok(true)
}
/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`), the unit of the CPU times in
/// `/proc/<pid>/stat`; 100 if it cannot be read.
pub(crate) fn clock_ticks() -> u64 {
    // SAFETY: sysconf takes a plain integer and touches no memory of ours.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// Bytes the allocator holds free (in its arenas, not yet given back to the kernel): glibc's
/// `mallinfo2().fordblks`. `None` on other C libraries, and with the `mimalloc` feature (Rust's
/// heap is then mimalloc's, which keeps no such count in a release build).
pub(crate) fn allocator_free_bytes() -> Option<usize> {
    #[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc")))]
    {
        // SAFETY: `mallinfo2` takes no arguments and returns a plain struct of counters; it
        // only reads the allocator's own state under the allocator's locks.
        let m = unsafe { libc::mallinfo2() };
        Some(m.fordblks)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc"))))]
    {
        None
    }
}

/// Asks the allocator to give its free memory back to the kernel: glibc's `malloc_trim(0)`,
/// which releases the free pages of every arena (not only the top of the main heap); with the
/// `mimalloc` feature also [`release_thread_memory`] for the calling thread. A no-op on other C
/// libraries without mimalloc.
pub(crate) fn release_free_memory() {
    release_thread_memory();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` takes a padding size and no pointer; it works on the allocator's
    // own free lists under the allocator's locks, so it may run while other threads allocate.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// With the `mimalloc` feature: `mi_collect(true)`, which frees the calling thread's empty and
/// retired pages (mimalloc keeps pages per thread, and a thread only looks at them when it
/// allocates) and purges (`MADV_DONTNEED`) every free range of the process's arenas at once,
/// instead of after mimalloc's purge delay. A no-op without the feature.
pub(crate) fn release_thread_memory() {
    #[cfg(feature = "mimalloc")]
    // SAFETY: `mi_collect` takes a flag and no pointer; it works on the calling thread's own
    // heap and on the arenas under mimalloc's atomics, so it may run while other threads
    // allocate and free.
    unsafe {
        libmimalloc_sys::mi_collect(true);
    }
}

/// mimalloc 3's option numbers (`mi_option_t` in the bundled `mimalloc.h`; `libmimalloc-sys`
/// names only the older ones).
#[cfg(feature = "mimalloc")]
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
#[cfg(feature = "mimalloc")]
const MI_OPTION_ALLOW_THP: libmimalloc_sys::mi_option_t = 43;

/// Blocks from this size up are mapped on their own by glibc ([`configure_allocator`]):
/// 256 KiB, above the pipe's 128 KiB datagram buffers (allocated on the hot path, kept on
/// the heap).
#[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc")))]
pub(crate) const MMAP_THRESHOLD: usize = 256 * 1024;

/// With the `mimalloc` feature, sets the allocator up for a server (the master calls it
/// first; the processes it forks inherit it); a no-op without the feature. Measured in
/// BENCHMARKS.md ("Memory: one allocator for both targets"):
/// - no transparent huge pages for this process (`PR_SET_THP_DISABLE`, and mimalloc no longer
///   advises them): mimalloc's arenas ask for 2 MiB pages, and one live block keeps a whole
///   one resident — an idle server was twice as large and a burst's memory stayed;
/// - free memory purged at once (`purge_delay` 0 instead of 1 s, 10 s for arenas): a large
///   message's buffer, outgrown and freed while the message arrives, is given back before
///   the next one is allocated (the peak of a 60 MiB echo: 162 → 134 MB in the master).
///
/// With glibc (no `mimalloc` feature): a fixed mmap threshold of [`MMAP_THRESHOLD`]. glibc
/// otherwise raises its threshold to the size of every large block freed (up to 32 MiB, and
/// the heap's trim threshold to twice that): after a 60 MiB WebSocket message, the master's
/// next buffers of a few MiB came from its reactor thread's arena, and that arena's free top
/// is not returned by `malloc_trim` (which trims the top of the main heap only) — 1.9 MB
/// stayed. With the threshold fixed, blocks from 256 KiB up are mapped on their own and
/// unmapped when freed.
pub(crate) fn configure_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc")))]
    {
        // SAFETY: `mallopt` takes two integers; it sets a malloc parameter under the
        // allocator's lock.
        let ok = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int) };
        if ok != 1 {
            tracing::debug!("mallopt(M_MMAP_THRESHOLD) failed");
        }
    }
    #[cfg(feature = "mimalloc")]
    {
        // SAFETY: `prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0)` takes integers only and changes
        // only this process's (and its future children's) huge-page flag.
        let r = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
        if r != 0 {
            tracing::debug!(error = %io::Error::last_os_error(), "PR_SET_THP_DISABLE failed");
        }
        // SAFETY: `mi_option_set` takes an option number and a value, no pointer; mimalloc's
        // options are atomics, read when it next maps or purges memory.
        unsafe {
            libmimalloc_sys::mi_option_set(MI_OPTION_ALLOW_THP, 0);
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
        }
    }
}

/// The CPU time (user + system) this process has used so far, in microseconds; 0 if
/// `getrusage` fails.
pub(crate) fn cpu_micros() -> u64 {
    use nix::sys::resource::{getrusage, UsageWho};
    use nix::sys::time::TimeValLike;
    getrusage(UsageWho::RUSAGE_SELF)
        .map(|u| (u.user_time().num_microseconds() + u.system_time().num_microseconds()) as u64)
        .unwrap_or(0)
}

/// This process's resident memory in bytes (`VmRSS` of `/proc/self/status`), `None` if
/// unreadable.
pub(crate) fn resident_bytes() -> Option<usize> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: usize = s
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

#[cfg(all(
    test,
    target_os = "linux",
    target_env = "gnu",
    not(feature = "mimalloc")
))]
mod tests {
    /// Whether glibc mapped the block at `p` on its own (bit 1, `IS_MMAPPED`, of the size
    /// word glibc keeps just before every block).
    fn is_mmapped(p: *const u8) -> bool {
        // SAFETY: `p` is the start of a live block from glibc's malloc (a `Vec<u8>`'s buffer,
        // alignment 1); glibc keeps the block's size word in the 8 bytes before it.
        let size = unsafe { (p as *const usize).sub(1).read() };
        size & 2 != 0
    }

    #[test]
    fn large_blocks_stay_mapped_after_a_larger_one_was_freed() {
        super::configure_allocator();
        // Freeing a 16 MiB block would raise glibc's dynamic threshold to 16 MiB.
        drop(std::hint::black_box(vec![1u8; 16 << 20]));
        let big = std::hint::black_box(vec![1u8; 1 << 20]);
        assert!(
            is_mmapped(big.as_ptr()),
            "a 1 MiB block is mapped on its own (given back when freed)"
        );
        let small = std::hint::black_box(vec![1u8; super::MMAP_THRESHOLD / 2]);
        assert!(
            !is_mmapped(small.as_ptr()),
            "a 128 KiB block stays on the heap"
        );
    }
}
