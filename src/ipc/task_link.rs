//! The transport between workers and task workers (see docs/ARCHITECTURE.md, "Task workers").
//!
//! Each task worker `j` accepts on a `SOCK_SEQPACKET` unix socket bound by the master before it
//! forks (abstract name `rswoole.<master pid>.t<j>`, see [`listen`]). The listening socket
//! outlives every task worker incarnation (the manager and the master keep it open), so a
//! worker that connects while task worker `j` restarts simply waits in the backlog.
//!
//! Every worker holds one connection (a *link*) per task worker; tasks go one way, results and
//! `send_message`s come back the same way. A datagram carries one or more frames:
//!
//! ```text
//! len u32 LE | kind u8 | flags u8 | reserved u16 | id u64 LE | payload (len bytes)
//! ```
//!
//! A payload above [`INLINE_MAX`] is not copied through the socket: the sender writes it into a
//! `memfd` and passes the descriptor (SCM_RIGHTS) in a datagram of its own, with `F_FD` set and
//! no inline bytes. So a 32 MiB task costs two memcpys and one small datagram; it never holds
//! the socket while other tasks wait behind it, and no chunk reassembly can be left half done.
//! No `unsafe` here: rustix wraps every call.

use std::collections::VecDeque;
use std::io::{self, IoSlice, IoSliceMut, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use parking_lot::Mutex;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketAddrUnix, SocketFlags, SocketType,
};
use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;

/// Frame header size.
pub(crate) const FHDR: usize = 16;
/// Largest datagram written (also the receive buffer size).
pub(crate) const MAX_DGRAM: usize = 64 * 1024;
/// Payloads above this travel in a memfd.
pub(crate) const INLINE_MAX: usize = 32 * 1024;
/// Flag: the payload is in the next descriptor of the datagram.
const F_FD: u8 = 1;

/// Frame kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum FKind {
    /// worker → task worker, first frame of a link: id = worker id, payload = pid (u32 LE).
    Hello = 1,
    /// worker → task worker: id = task id, payload = the encoded task.
    Task = 2,
    /// task worker → worker: id = task id, payload = the encoded result.
    Result = 3,
    /// task worker → worker: the task ran and failed (panic, unencodable result); payload =
    /// UTF-8 reason.
    Failed = 4,
    /// task worker → worker: "I stop; every task I have not answered on this link I never
    /// started" (graceful stop or reload). The link closes after it.
    Goodbye = 5,
    /// task worker → worker: `TaskHandle::send_message`.
    Message = 6,
}

impl FKind {
    fn from_u8(b: u8) -> Option<FKind> {
        Some(match b {
            1 => FKind::Hello,
            2 => FKind::Task,
            3 => FKind::Result,
            4 => FKind::Failed,
            5 => FKind::Goodbye,
            6 => FKind::Message,
            _ => return None,
        })
    }
}

/// One frame.
#[derive(Debug, Clone)]
pub(crate) struct Frame {
    pub(crate) kind: FKind,
    pub(crate) id: u64,
    pub(crate) payload: Bytes,
}

/// The abstract socket name of task worker `j`.
fn name(master_pid: u32, j: usize) -> Vec<u8> {
    format!("rswoole.{master_pid}.t{j}").into_bytes()
}

fn set_buffers(fd: &OwnedFd) {
    let s = socket2::SockRef::from(fd);
    let _ = s.set_send_buffer_size(4 << 20);
    let _ = s.set_recv_buffer_size(4 << 20);
}

/// Binds and listens on task worker `j`'s socket (non-blocking). Called by the master before
/// it forks.
pub(crate) fn listen(master_pid: u32, j: usize) -> io::Result<OwnedFd> {
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )?;
    let addr = SocketAddrUnix::new_abstract_name(&name(master_pid, j))?;
    rustix::net::bind(&fd, &addr)?;
    rustix::net::listen(&fd, 1024)?;
    Ok(fd)
}

/// Connects to task worker `j` (non-blocking socket; the connection may wait in the backlog
/// until the task worker accepts it, but data can be sent at once).
pub(crate) fn connect(master_pid: u32, j: usize) -> io::Result<OwnedFd> {
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )?;
    set_buffers(&fd);
    let addr = SocketAddrUnix::new_abstract_name(&name(master_pid, j))?;
    rustix::net::connect(&fd, &addr)?;
    Ok(fd)
}

/// Accepts one connection (non-blocking, close-on-exec).
pub(crate) async fn accept(listener: &AsyncFd<OwnedFd>) -> io::Result<OwnedFd> {
    loop {
        let mut guard = listener.readable().await?;
        match guard.try_io(|fd| {
            rustix::net::accept_with(fd.get_ref(), SocketFlags::NONBLOCK | SocketFlags::CLOEXEC)
                .map_err(io::Error::from)
        }) {
            Ok(Ok(fd)) => {
                set_buffers(&fd);
                return Ok(fd);
            }
            Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => continue,
        }
    }
}

/// Frames waiting to be written on a link. The worker keeps one per task worker for its whole
/// life (frames queued while the link is down go out on the next one); the task worker keeps
/// one per accepted connection.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    q: Mutex<VecDeque<Frame>>,
    notify: Notify,
    closed: AtomicBool,
}

impl Outbox {
    /// Queues a frame; `false` if the outbox is closed.
    pub(crate) fn push(&self, f: Frame) -> bool {
        if self.closed.load(Ordering::Acquire) {
            return false;
        }
        self.q.lock().push_back(f);
        self.notify.notify_one();
        true
    }

    /// Queues frames in front of everything else (re-sent tasks keep their order).
    pub(crate) fn push_front_all(&self, frames: Vec<Frame>) {
        let mut q = self.q.lock();
        for f in frames.into_iter().rev() {
            q.push_front(f);
        }
        drop(q);
        self.notify.notify_one();
    }

    /// No more pushes; the writer ends once the queue is drained.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    /// Closes the outbox and drops what it still holds (its receiver is gone for good).
    pub(crate) fn discard(&self) {
        self.close();
        self.q.lock().clear();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Takes the frames for the next datagram: small frames batched up to [`MAX_DGRAM`], or one
    /// large frame alone.
    fn take_batch(&self) -> Vec<Frame> {
        let mut q = self.q.lock();
        let mut out = Vec::new();
        let mut size = 0;
        while let Some(f) = q.front() {
            let big = f.payload.len() > INLINE_MAX;
            if big {
                if out.is_empty() {
                    out.push(q.pop_front().expect("front"));
                }
                break;
            }
            if !out.is_empty() && size + FHDR + f.payload.len() > MAX_DGRAM {
                break;
            }
            size += FHDR + f.payload.len();
            out.push(q.pop_front().expect("front"));
        }
        out
    }
}

fn put_header(dst: &mut BytesMut, kind: FKind, flags: u8, id: u64, len: usize) {
    dst.put_u32_le(len as u32);
    dst.put_u8(kind as u8);
    dst.put_u8(flags);
    dst.put_u16_le(0);
    dst.put_u64_le(id);
}

/// Writes `out`'s frames to `fd` until the outbox is closed and drained (`Ok`) or the socket
/// fails. `on_take` sees every frame just before it is written.
pub(crate) async fn write_loop(
    fd: &AsyncFd<OwnedFd>,
    out: &Outbox,
    mut on_take: impl FnMut(&Frame),
) -> io::Result<()> {
    let mut buf = BytesMut::with_capacity(MAX_DGRAM);
    loop {
        let batch = out.take_batch();
        if batch.is_empty() {
            if out.is_closed() {
                return Ok(());
            }
            out.notify.notified().await;
            continue;
        }
        for f in &batch {
            on_take(f);
        }
        buf.clear();
        if batch.len() == 1 && batch[0].payload.len() > INLINE_MAX {
            let f = &batch[0];
            let memfd = spill(&f.payload)?;
            put_header(&mut buf, f.kind, F_FD, f.id, f.payload.len());
            send_dgram(fd, &buf, Some(&memfd)).await?;
        } else {
            for f in &batch {
                put_header(&mut buf, f.kind, 0, f.id, f.payload.len());
                buf.put_slice(&f.payload);
            }
            send_dgram(fd, &buf, None).await?;
        }
    }
}

/// Copies a payload into a fresh memfd.
fn spill(data: &[u8]) -> io::Result<OwnedFd> {
    let fd = rustix::fs::memfd_create("rswoole-task", rustix::fs::MemfdFlags::CLOEXEC)?;
    let mut f = std::fs::File::from(fd);
    f.write_all(data)?;
    Ok(f.into())
}

async fn send_dgram(fd: &AsyncFd<OwnedFd>, d: &[u8], attach: Option<&OwnedFd>) -> io::Result<()> {
    loop {
        let mut guard = fd.writable().await?;
        let res = guard.try_io(|s| {
            let flags = SendFlags::NOSIGNAL | SendFlags::DONTWAIT;
            match attach {
                None => rustix::net::send(s.get_ref(), d, flags),
                Some(a) => {
                    let fds = [a.as_fd()];
                    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
                    let mut cmsg = SendAncillaryBuffer::new(&mut space);
                    cmsg.push(SendAncillaryMessage::ScmRights(&fds));
                    rustix::net::sendmsg(s.get_ref(), &[IoSlice::new(d)], &mut cmsg, flags)
                }
            }
            .map_err(io::Error::from)
        });
        match res {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => continue,
        }
    }
}

/// Why a datagram was rejected.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LinkError {
    #[error("truncated frame")]
    Truncated,
    #[error("unknown frame kind {0}")]
    Kind(u8),
    #[error("a frame refers to a descriptor that did not come")]
    MissingFd,
    #[error("payload of {0} bytes is above task_max_payload")]
    TooLarge(usize),
    #[error("reading a spilled payload: {0}")]
    Io(#[from] io::Error),
}

/// Receives one datagram and decodes its frames. `Ok(None)` on EOF, after every frame the
/// peer sent (a reset peer's included).
pub(crate) async fn recv_frames(
    fd: &AsyncFd<OwnedFd>,
    buf: &mut [u8],
    max_payload: usize,
) -> Result<Option<Vec<Frame>>, LinkError> {
    // ECONNRESET comes once, before what the peer sent: read that too (see
    // `super::DgramReader::next`).
    let mut reset = false;
    let (n, fds) = loop {
        let mut guard = fd.readable().await?;
        let res = guard.try_io(|s| {
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
            let mut cmsg = RecvAncillaryBuffer::new(&mut space);
            let msg = rustix::net::recvmsg(
                s.get_ref(),
                &mut [IoSliceMut::new(&mut *buf)],
                &mut cmsg,
                RecvFlags::DONTWAIT | RecvFlags::CMSG_CLOEXEC,
            )
            .map_err(io::Error::from)?;
            let mut fds = VecDeque::new();
            for m in cmsg.drain() {
                if let RecvAncillaryMessage::ScmRights(it) = m {
                    fds.extend(it);
                }
            }
            Ok((msg.bytes, fds))
        });
        match res {
            Ok(Ok(x)) => break x,
            Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
            // The peer closed while frames of ours were still unread in its queue. Linux
            // reports that once (the error is cleared by this recv) and *before* the frames
            // the peer sent us first: read on. They may end in a `Goodbye`, which tells a
            // graceful stop from a crash; EOF comes after them. A second reset ends the link.
            Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionReset => {
                if std::mem::replace(&mut reset, true) {
                    return Ok(None);
                }
            }
            Ok(Err(e)) => return Err(e.into()),
            Err(_would_block) => continue,
        }
    };
    if n == 0 && fds.is_empty() {
        return Ok(None);
    }
    decode(&buf[..n], fds, max_payload).map(Some)
}

fn decode(
    mut d: &[u8],
    mut fds: VecDeque<OwnedFd>,
    max_payload: usize,
) -> Result<Vec<Frame>, LinkError> {
    let mut out = Vec::new();
    while !d.is_empty() {
        if d.len() < FHDR {
            return Err(LinkError::Truncated);
        }
        let mut h = &d[..FHDR];
        let len = h.get_u32_le() as usize;
        let kind_b = h.get_u8();
        let flags = h.get_u8();
        let _ = h.get_u16_le();
        let id = h.get_u64_le();
        let kind = FKind::from_u8(kind_b).ok_or(LinkError::Kind(kind_b))?;
        d = &d[FHDR..];
        let payload = if flags & F_FD != 0 {
            if len > max_payload {
                return Err(LinkError::TooLarge(len));
            }
            let f = std::fs::File::from(fds.pop_front().ok_or(LinkError::MissingFd)?);
            let mut v = vec![0u8; len];
            f.read_exact_at(&mut v, 0)?;
            Bytes::from(v)
        } else {
            if d.len() < len {
                return Err(LinkError::Truncated);
            }
            let p = Bytes::copy_from_slice(&d[..len]);
            d = &d[len..];
            p
        };
        out.push(Frame { kind, id, payload });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_keeps_big_frames_alone() {
        let o = Outbox::default();
        let small = |id| Frame {
            kind: FKind::Task,
            id,
            payload: Bytes::from_static(b"abc"),
        };
        o.push(small(1));
        o.push(small(2));
        o.push(Frame {
            kind: FKind::Task,
            id: 3,
            payload: Bytes::from(vec![0u8; INLINE_MAX + 1]),
        });
        o.push(small(4));
        let ids = |v: Vec<Frame>| v.iter().map(|f| f.id).collect::<Vec<_>>();
        assert_eq!(ids(o.take_batch()), vec![1, 2]);
        assert_eq!(ids(o.take_batch()), vec![3]);
        assert_eq!(ids(o.take_batch()), vec![4]);
        assert!(o.take_batch().is_empty());
    }

    /// A peer that exits with our frames unread: ECONNRESET comes first, yet the frames it
    /// sent before exiting (a result, Goodbye) are still read, then EOF.
    #[test]
    fn recv_reads_what_a_reset_peer_sent() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let (ours, theirs) = crate::sys::seqpacket_pair().expect("pair");
            rustix::net::send(&ours, b"unread", SendFlags::empty()).expect("send");
            let mut b = BytesMut::new();
            put_header(&mut b, FKind::Result, 0, 7, 2);
            b.put_slice(b"ok");
            rustix::net::send(&theirs, &b, SendFlags::empty()).expect("send");
            let mut b = BytesMut::new();
            put_header(&mut b, FKind::Goodbye, 0, 0, 0);
            rustix::net::send(&theirs, &b, SendFlags::empty()).expect("send");
            drop(theirs);
            let fd = crate::sys::async_fd(ours).expect("register");
            let mut buf = vec![0u8; MAX_DGRAM];
            let kinds =
                |f: Option<Vec<Frame>>| f.map(|v| v.iter().map(|f| f.kind).collect::<Vec<_>>());
            let got = recv_frames(&fd, &mut buf, 100).await.expect("recv");
            assert_eq!(kinds(got), Some(vec![FKind::Result]));
            let got = recv_frames(&fd, &mut buf, 100).await.expect("recv");
            assert_eq!(kinds(got), Some(vec![FKind::Goodbye]));
            assert!(recv_frames(&fd, &mut buf, 100)
                .await
                .expect("eof")
                .is_none());
        });
    }

    #[test]
    fn decode_rejects_garbage() {
        let mut b = BytesMut::new();
        put_header(&mut b, FKind::Result, 0, 7, 3);
        b.put_slice(b"xyz");
        let f = decode(&b, VecDeque::new(), 100).unwrap();
        assert_eq!((f[0].id, &f[0].payload[..]), (7, &b"xyz"[..]));
        assert!(matches!(
            decode(&b[..FHDR + 1], VecDeque::new(), 100),
            Err(LinkError::Truncated)
        ));
        let mut b = BytesMut::new();
        put_header(&mut b, FKind::Result, F_FD, 7, 3);
        assert!(matches!(
            decode(&b, VecDeque::new(), 100),
            Err(LinkError::MissingFd)
        ));
        b[4] = 99;
        assert!(matches!(
            decode(&b, VecDeque::new(), 100),
            Err(LinkError::Kind(99))
        ));
    }
}
