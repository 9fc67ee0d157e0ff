//! The io_uring server loop shared by the io_uring peers (included by `#[path]`; issue 20's
//! "io_uring trial"): the upper bound of what an io_uring socket owner could reach on this
//! machine, measured outside rswoole against tokio's epoll (`scripts/bench_uring.sh`).
//!
//! One thread, one ring (`SINGLE_ISSUER | DEFER_TASKRUN` where the kernel has them), and no
//! syscall per request: a multishot accept on the listener, a multishot recv per connection
//! that takes its buffers from a provided-buffer ring (`IORING_REGISTER_PBUF_RING`, the
//! buffers recycled in user space with a store to the ring's tail), sends as SQEs, and every
//! SQE of a loop turn submitted by the one `io_uring_enter` that also waits for the next
//! completions (`submit_and_wait(1)`).
//!
//! Per connection: the bytes to send go to `queued`; one send is in flight at a time (from
//! `sending`, which the kernel owns until its completion; a short send sends the rest), so
//! the order of the answers is kept. A connection is closed (an `IORING_OP_CLOSE`) once its
//! receive has ended (end of stream or an error) and no send is in flight, so that no
//! completion can name a reused descriptor.
//!
//! The peers' command line is `ADDR [uring|uring-1shot|epoll]` (`run`): `uring-1shot` (or a
//! kernel older than 6.0) uses single-shot recv (still with provided buffers), one SQE per
//! read, to measure what multishot brings; `epoll` runs the same handler on the plain epoll
//! loop of `epoll_loop.rs`, the control.
#![allow(unsafe_code)] // io_uring's buffer ring and SQEs point at memory the kernel uses
#![allow(dead_code)] // each peer uses a part

use std::alloc::{alloc_zeroed, Layout};
use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::{cqueue, opcode, squeue, types, IoUring};

/// What a peer does with the bytes a connection received.
pub(crate) trait Handler {
    /// Per-connection protocol state.
    type State: Default;
    /// `data` arrived on a connection: append the answer (if any) to `out`.
    fn on_data(&mut self, state: &mut Self::State, data: &[u8], out: &mut Vec<u8>);
    /// Called once per loop turn, before the turn's completions are handled.
    fn tick(&mut self) {}
}

const ACCEPT: u64 = 1;
const RECV: u64 = 2;
const SEND: u64 = 3;
const CLOSE: u64 = 4;
/// The buffer group of the provided-buffer ring.
const BGID: u16 = 0;
/// Buffers in the ring (a power of two) and the size of each.
const NBUF: u16 = 1024;
const BUF_SIZE: usize = 16 * 1024;

fn tag(op: u64, fd: RawFd) -> u64 {
    (op << 32) | fd as u32 as u64
}

#[derive(Default)]
struct Conn<S> {
    open: bool,
    /// A recv (multishot or single-shot) is armed.
    recv_live: bool,
    /// No more reads: end of stream, a receive or send error.
    done: bool,
    /// A send of `sending[sent..]` is in flight.
    in_flight: bool,
    sending: Vec<u8>,
    sent: usize,
    queued: Vec<u8>,
    state: S,
}

/// The provided-buffer ring: `NBUF` entries the kernel takes buffers from, recycled by
/// writing the entry at the tail and publishing the tail once per loop turn. Its memory
/// lives as long as the process (the kernel may use it until the ring is gone).
struct BufRing {
    ring: *mut types::BufRingEntry,
    bufs: *mut u8,
    tail: u16,
}

impl BufRing {
    fn new(ring: &IoUring) -> io::Result<BufRing> {
        let rl = Layout::from_size_align(NBUF as usize * size_of::<types::BufRingEntry>(), 4096)
            .map_err(io::Error::other)?;
        let bl =
            Layout::from_size_align(NBUF as usize * BUF_SIZE, 4096).map_err(io::Error::other)?;
        // SAFETY: both layouts have a non-zero size; the memory is never freed (see above).
        let (r, b) = unsafe { (alloc_zeroed(rl), alloc_zeroed(bl)) };
        if r.is_null() || b.is_null() {
            return Err(io::Error::other("out of memory for the buffer ring"));
        }
        // SAFETY: `r` is page-aligned, zeroed, holds NBUF entries and is never freed.
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(r as u64, NBUF, BGID, 0)?;
        }
        let mut br = BufRing {
            ring: r.cast(),
            bufs: b,
            tail: 0,
        };
        for bid in 0..NBUF {
            br.recycle(bid);
        }
        br.publish();
        Ok(br)
    }

    /// Gives buffer `bid` back to the kernel (visible after the next `publish`).
    fn recycle(&mut self, bid: u16) {
        let idx = (self.tail & (NBUF - 1)) as usize;
        // SAFETY: idx < NBUF, inside the ring's allocation; the kernel only reads the
        // entries between its head and the published tail, and this one is past the tail.
        let e = unsafe { &mut *self.ring.add(idx) };
        // SAFETY: bid < NBUF, so the buffer is inside the buffers' allocation.
        e.set_addr(unsafe { self.bufs.add(bid as usize * BUF_SIZE) } as u64);
        e.set_len(BUF_SIZE as u32);
        e.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    fn publish(&self) {
        // SAFETY: `ring` is the ring's first entry, initialized (zeroed) and aligned; the
        // tail is a u16 the kernel reads concurrently, hence the atomic release store.
        let tail = unsafe { AtomicU16::from_ptr(types::BufRingEntry::tail(self.ring).cast_mut()) };
        tail.store(self.tail, Ordering::Release);
    }

    /// The `len` bytes the kernel wrote into buffer `bid`.
    fn data(&self, bid: u16, len: usize) -> &[u8] {
        debug_assert!(bid < NBUF && len <= BUF_SIZE);
        // SAFETY: the kernel handed buffer `bid` to us with `len` bytes written and will not
        // touch it until it is recycled (which needs `&mut self`).
        unsafe { std::slice::from_raw_parts(self.bufs.add(bid as usize * BUF_SIZE), len) }
    }
}

/// Kernel version (major, minor) from /proc, (0, 0) if unreadable.
pub(crate) fn kernel_version() -> (u32, u32) {
    let s = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut it = s
        .trim()
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

fn push(ring: &mut IoUring, e: &squeue::Entry) -> io::Result<()> {
    loop {
        // SAFETY: every SQE built here points at memory that outlives its completion:
        // a connection's `sending` (left untouched while `in_flight`), nothing otherwise.
        if unsafe { ring.submission().push(e) }.is_ok() {
            return Ok(());
        }
        ring.submit()?; // the SQ is full: hand it to the kernel and retry
    }
}

fn set_nodelay(fd: RawFd) {
    let one: libc::c_int = 1;
    // SAFETY: `fd` is a socket we own, `one` outlives the call, the length is its size.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&raw const one).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

struct Loop<S> {
    ring: IoUring,
    bufs: BufRing,
    conns: Vec<Conn<S>>,
    multishot: bool,
}

impl<S: Default> Loop<S> {
    fn arm_recv(&mut self, fd: RawFd) -> io::Result<()> {
        let e = if self.multishot {
            opcode::RecvMulti::new(types::Fd(fd), BGID).build()
        } else {
            opcode::Recv::new(types::Fd(fd), std::ptr::null_mut(), BUF_SIZE as u32)
                .buf_group(BGID)
                .build()
                .flags(squeue::Flags::BUFFER_SELECT)
        };
        self.conns[fd as usize].recv_live = true;
        push(&mut self.ring, &e.user_data(tag(RECV, fd)))
    }

    /// Starts a send of what is queued, if nothing is in flight.
    fn flush(&mut self, fd: RawFd) -> io::Result<()> {
        let c = &mut self.conns[fd as usize];
        if c.in_flight || c.queued.is_empty() || c.done {
            return Ok(());
        }
        c.sending.clear();
        std::mem::swap(&mut c.sending, &mut c.queued);
        c.sent = 0;
        self.send_rest(fd)
    }

    fn send_rest(&mut self, fd: RawFd) -> io::Result<()> {
        let c = &mut self.conns[fd as usize];
        let rest = &c.sending[c.sent..];
        let e = opcode::Send::new(types::Fd(fd), rest.as_ptr(), rest.len() as u32)
            .build()
            .user_data(tag(SEND, fd));
        c.in_flight = true;
        push(&mut self.ring, &e)
    }

    /// Closes `fd` once nothing of it is in the kernel any more.
    fn maybe_close(&mut self, fd: RawFd) -> io::Result<()> {
        let c = &mut self.conns[fd as usize];
        if !c.open || !c.done || c.in_flight || c.recv_live {
            return Ok(());
        }
        c.open = false;
        c.queued.clear();
        c.sending.clear();
        c.state = S::default();
        let e = opcode::Close::new(types::Fd(fd))
            .build()
            .user_data(tag(CLOSE, fd));
        push(&mut self.ring, &e)
    }
}

/// A peer's `main`: `ADDR [uring|uring-1shot|epoll]` from the command line.
pub(crate) fn run<H: Handler>(default_addr: &str, handler: H) -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| default_addr.into());
    match args.next().as_deref().unwrap_or("uring") {
        "uring" => serve(&addr, handler, true),
        "uring-1shot" => serve(&addr, handler, false),
        "epoll" => super::epoll_loop::serve(&addr, handler),
        other => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("unknown loop {other:?}: uring, uring-1shot or epoll"),
        )),
    }
}

/// Serves `addr` with `handler` on this thread, forever (or until an error of the ring);
/// `multishot` false = single-shot recv.
pub(crate) fn serve<H: Handler>(addr: &str, mut handler: H, multishot: bool) -> io::Result<()> {
    let disabled =
        std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled").unwrap_or_default();
    if !matches!(disabled.trim(), "" | "0") {
        return Err(io::Error::other(format!(
            "io_uring is disabled here (/proc/sys/kernel/io_uring_disabled = {})",
            disabled.trim()
        )));
    }
    let kv = kernel_version();
    if kv < (5, 19) {
        return Err(io::Error::other(format!(
            "kernel {}.{}: provided-buffer rings and multishot accept need 5.19",
            kv.0, kv.1
        )));
    }
    let multishot = multishot && kv >= (6, 0);
    let listener = TcpListener::bind(addr)?;
    let lfd = listener.as_raw_fd();
    let ring = IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_cqsize(8192)
        .build(1024)
        .or_else(|_| IoUring::builder().setup_cqsize(8192).build(1024))?;
    let bufs = BufRing::new(&ring)?;
    eprintln!(
        "io_uring peer on {addr}: kernel {}.{}, {} recv, {NBUF} provided buffers of {BUF_SIZE} B",
        kv.0,
        kv.1,
        if multishot {
            "multishot"
        } else {
            "single-shot"
        }
    );
    let mut lp = Loop::<H::State> {
        ring,
        bufs,
        conns: Vec::new(),
        multishot,
    };
    let accept = opcode::AcceptMulti::new(types::Fd(lfd))
        .build()
        .user_data(tag(ACCEPT, lfd));
    push(&mut lp.ring, &accept)?;
    let mut cqes: Vec<(u64, i32, u32)> = Vec::with_capacity(1024);
    loop {
        lp.bufs.publish();
        match lp.ring.submit_and_wait(1) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // EBUSY: the CQ is full; the completions below make room.
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
            Err(e) => return Err(e),
        }
        cqes.clear();
        cqes.extend(
            lp.ring
                .completion()
                .map(|c| (c.user_data(), c.result(), c.flags())),
        );
        handler.tick();
        for &(ud, res, flags) in &cqes {
            let fd = ud as u32 as RawFd;
            match ud >> 32 {
                ACCEPT => {
                    if res >= 0 {
                        let cfd = res;
                        set_nodelay(cfd);
                        if lp.conns.len() <= cfd as usize {
                            lp.conns.resize_with(cfd as usize + 1, Conn::default);
                        }
                        let c = &mut lp.conns[cfd as usize];
                        c.open = true;
                        c.done = false;
                        lp.arm_recv(cfd)?;
                    } else {
                        eprintln!("accept: {}", io::Error::from_raw_os_error(-res));
                    }
                    if !cqueue::more(flags) {
                        push(&mut lp.ring, &accept)?;
                    }
                }
                RECV => {
                    let more = cqueue::more(flags);
                    let c = &mut lp.conns[fd as usize];
                    c.recv_live = more;
                    if res > 0 {
                        let Some(bid) = cqueue::buffer_select(flags) else {
                            return Err(io::Error::other("recv completion without a buffer"));
                        };
                        let data = lp.bufs.data(bid, res as usize);
                        handler.on_data(&mut c.state, data, &mut c.queued);
                        lp.bufs.recycle(bid);
                        if !more && !c.done {
                            lp.arm_recv(fd)?;
                        }
                        lp.flush(fd)?;
                    } else if res == -libc::ENOBUFS {
                        // every buffer is taken: they come back at this turn's end
                        if !more && !c.done {
                            lp.arm_recv(fd)?;
                        }
                    } else {
                        c.done = true; // end of stream or an error
                        if more {
                            // SAFETY: plain syscall on our socket: ends the armed recv.
                            unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
                        }
                    }
                    lp.maybe_close(fd)?;
                }
                SEND => {
                    let c = &mut lp.conns[fd as usize];
                    c.in_flight = false;
                    if res < 0 {
                        c.done = true;
                        if c.recv_live {
                            // SAFETY: plain syscall on our socket: ends the armed recv.
                            unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
                        }
                    } else {
                        c.sent += res as usize;
                        if c.sent < c.sending.len() {
                            lp.send_rest(fd)?;
                        } else {
                            lp.flush(fd)?;
                        }
                    }
                    lp.maybe_close(fd)?;
                }
                CLOSE => {}
                op => return Err(io::Error::other(format!("unknown completion tag {op}"))),
            }
        }
    }
}
