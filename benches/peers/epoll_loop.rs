//! The control of the io_uring trial (included by `#[path]` beside `uring_loop.rs`): the same
//! one-thread server with the same `Handler`, on plain epoll and nonblocking syscalls, as an
//! epoll server without a runtime would be written — level-triggered readiness, one `recv`
//! into a thread buffer per readable event (again only if it filled the buffer), the answer
//! sent at once with one `send` (the rest kept, with `EPOLLOUT`, only if the socket refused
//! it). It tells apart what io_uring brings from what leaving tokio's tasks brings.
#![allow(unsafe_code)] // libc's epoll and socket calls
#![allow(dead_code)] // each peer uses a part

use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, RawFd};

use super::uring_loop::Handler;

#[derive(Default)]
struct Conn<S> {
    open: bool,
    /// Answer bytes the socket refused (sent on `EPOLLOUT`).
    pending: Vec<u8>,
    state: S,
}

fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn ctl(ep: RawFd, op: i32, fd: RawFd, events: u32) -> io::Result<()> {
    let mut ev = libc::epoll_event {
        events,
        u64: fd as u64,
    };
    // SAFETY: `ev` outlives the call; `ep` and `fd` are descriptors we own.
    if unsafe { libc::epoll_ctl(ep, op, fd, &mut ev) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sends `buf` until done or refused; returns how much was sent, `Err` if the peer is gone.
fn send_some(fd: RawFd, buf: &[u8]) -> Result<usize, ()> {
    let mut off = 0;
    while off < buf.len() {
        // SAFETY: the pointer and length describe `buf[off..]`, alive for the call.
        let n = unsafe {
            libc::send(
                fd,
                buf[off..].as_ptr().cast(),
                buf.len() - off,
                libc::MSG_NOSIGNAL,
            )
        };
        if n > 0 {
            off += n as usize;
        } else if n < 0 && errno() == libc::EAGAIN {
            break;
        } else if n < 0 && errno() == libc::EINTR {
            continue;
        } else {
            return Err(());
        }
    }
    Ok(off)
}

fn close(ep: RawFd, fd: RawFd) {
    // SAFETY: plain syscalls on descriptors we own; `fd` is closed once (its `open` flag).
    unsafe {
        libc::epoll_ctl(ep, libc::EPOLL_CTL_DEL, fd, std::ptr::null_mut());
        libc::close(fd);
    }
}

/// Serves `addr` with `handler` on this thread with epoll, forever (or until an epoll error).
pub(crate) fn serve<H: Handler>(addr: &str, mut handler: H) -> io::Result<()> {
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let lfd = listener.as_raw_fd();
    // SAFETY: plain syscall.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if ep < 0 {
        return Err(io::Error::last_os_error());
    }
    ctl(ep, libc::EPOLL_CTL_ADD, lfd, libc::EPOLLIN as u32)?;
    eprintln!("epoll peer on {addr}");
    let mut conns: Vec<Conn<H::State>> = Vec::new();
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = Vec::new();
    loop {
        // SAFETY: `events` has room for the `len` entries the kernel may write.
        let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, -1) };
        if n < 0 {
            if errno() == libc::EINTR {
                continue;
            }
            return Err(io::Error::last_os_error());
        }
        handler.tick();
        for ev in &events[..n as usize] {
            let fd = ev.u64 as RawFd;
            let bits = ev.events;
            if fd == lfd {
                loop {
                    // SAFETY: plain syscall; no peer address wanted.
                    let c = unsafe {
                        libc::accept4(
                            lfd,
                            std::ptr::null_mut(),
                            std::ptr::null_mut(),
                            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                        )
                    };
                    if c < 0 {
                        break; // EAGAIN (or an error of that one connection)
                    }
                    let one: libc::c_int = 1;
                    // SAFETY: `one` outlives the call, the length is its size.
                    unsafe {
                        libc::setsockopt(
                            c,
                            libc::IPPROTO_TCP,
                            libc::TCP_NODELAY,
                            (&raw const one).cast(),
                            size_of::<libc::c_int>() as libc::socklen_t,
                        );
                    }
                    if conns.len() <= c as usize {
                        conns.resize_with(c as usize + 1, Conn::default);
                    }
                    conns[c as usize].open = true;
                    if ctl(ep, libc::EPOLL_CTL_ADD, c, libc::EPOLLIN as u32).is_err() {
                        conns[c as usize].open = false;
                        close(ep, c);
                    }
                }
                continue;
            }
            let c = &mut conns[fd as usize];
            if !c.open {
                continue;
            }
            let mut gone = false;
            if bits & libc::EPOLLOUT as u32 != 0 && !c.pending.is_empty() {
                match send_some(fd, &c.pending) {
                    Ok(k) => {
                        c.pending.drain(..k);
                        if c.pending.is_empty() {
                            gone = ctl(ep, libc::EPOLL_CTL_MOD, fd, libc::EPOLLIN as u32).is_err();
                        }
                    }
                    Err(()) => gone = true,
                }
            }
            if !gone && bits & (libc::EPOLLIN | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0 {
                loop {
                    // SAFETY: `buf` is alive and `buf.len()` bytes long.
                    let r = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
                    if r > 0 {
                        out.clear();
                        handler.on_data(&mut c.state, &buf[..r as usize], &mut out);
                        if !c.pending.is_empty() {
                            c.pending.extend_from_slice(&out);
                        } else if !out.is_empty() {
                            match send_some(fd, &out) {
                                Ok(k) if k < out.len() => {
                                    c.pending.extend_from_slice(&out[k..]);
                                    let both = (libc::EPOLLIN | libc::EPOLLOUT) as u32;
                                    gone = ctl(ep, libc::EPOLL_CTL_MOD, fd, both).is_err();
                                }
                                Ok(_) => {}
                                Err(()) => gone = true,
                            }
                        }
                        if (r as usize) < buf.len() || gone {
                            break;
                        }
                    } else if r < 0 && errno() == libc::EAGAIN {
                        break;
                    } else if r < 0 && errno() == libc::EINTR {
                        continue;
                    } else {
                        gone = true; // end of stream or an error
                        break;
                    }
                }
            }
            if gone {
                c.open = false;
                c.pending = Vec::new();
                c.state = Default::default();
                close(ep, fd);
            }
        }
    }
}
