//! Commands to the manager, one message each.
//!
//! Signals are the server's *outside* interface: `kill -USR1 <master>` reloads the workers,
//! `-USR2` the task workers, `SIGRTMIN` reopens the log files, `SIGTERM` stops. Inside the
//! server, commands travel as messages, because standard signals merge while pending: two
//! workers that reach `max_request` at the same moment would each send the manager a SIGUSR1,
//! the manager would read one, and the other request would be lost.
//!
//! - master → manager: [`Command::Reload`], [`Command::ReloadTasks`] and
//!   [`Command::ReopenLogs`] over the control socket (the `SOCK_SEQPACKET` pair that carries
//!   worker pipes the other way, made by the master before it forks the manager);
//! - worker → manager: [`Command::Recycle`] over the recycle channel, a `SOCK_SEQPACKET` pair
//!   the manager makes before it forks any worker; every worker inherits the sending end and
//!   the manager alone reads the other.
//!
//! A message is [`LEN`] bytes: a tag byte, then a slot and a pid (u32 little-endian each; zero
//! for commands that have none). `SOCK_SEQPACKET` keeps message boundaries and queues every
//! message until it is read: no two merge, and none is lost while the manager is busy
//! (forking, reaping). Both sockets are non-blocking: the manager reads them in its poll loop
//! and never waits on them.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use tokio::io::unix::AsyncFd;

/// Size of one command message.
pub(crate) const LEN: usize = 9;

/// Something the manager is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Command {
    /// Replace every worker and task worker, one at a time (`rswoole reload`, SIGUSR1).
    Reload,
    /// Replace the task workers only, one at a time (`rswoole reload --task`, SIGUSR2).
    ReloadTasks,
    /// Reopen the log file here and in every worker (`rswoole reopen-logs`, SIGRTMIN).
    ReopenLogs,
    /// The incarnation `pid` of worker `slot` reached `max_request`: replace it.
    Recycle {
        /// The worker's slot (its id).
        slot: u32,
        /// The asking incarnation, so that a late request of a replaced one is ignored.
        pid: u32,
    },
}

/// A message that is not a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CommandError {
    /// Not [`LEN`] bytes long.
    #[error("a command message of {0} bytes (expected {LEN})")]
    Length(usize),
    /// An unknown tag.
    #[error("unknown command tag {0}")]
    Tag(u8),
}

const T_RELOAD: u8 = 1;
const T_RELOAD_TASKS: u8 = 2;
const T_REOPEN_LOGS: u8 = 3;
const T_RECYCLE: u8 = 4;

impl Command {
    /// The message for this command.
    pub(crate) fn encode(self) -> [u8; LEN] {
        let (tag, slot, pid) = match self {
            Command::Reload => (T_RELOAD, 0, 0),
            Command::ReloadTasks => (T_RELOAD_TASKS, 0, 0),
            Command::ReopenLogs => (T_REOPEN_LOGS, 0, 0),
            Command::Recycle { slot, pid } => (T_RECYCLE, slot, pid),
        };
        let mut b = [0u8; LEN];
        b[0] = tag;
        b[1..5].copy_from_slice(&slot.to_le_bytes());
        b[5..9].copy_from_slice(&pid.to_le_bytes());
        b
    }

    /// The command in message `b`.
    pub(crate) fn decode(b: &[u8]) -> Result<Command, CommandError> {
        let b: &[u8; LEN] = b.try_into().map_err(|_| CommandError::Length(b.len()))?;
        let word = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Ok(match b[0] {
            T_RELOAD => Command::Reload,
            T_RELOAD_TASKS => Command::ReloadTasks,
            T_REOPEN_LOGS => Command::ReopenLogs,
            T_RECYCLE => Command::Recycle {
                slot: word(1),
                pid: word(5),
            },
            t => return Err(CommandError::Tag(t)),
        })
    }
}

/// Sends `cmd` on the non-blocking socket `sock` without waiting: `WouldBlock` if the
/// receiver's queue is full.
pub(crate) fn send(sock: BorrowedFd<'_>, cmd: Command) -> io::Result<()> {
    let flags = rustix::net::SendFlags::NOSIGNAL | rustix::net::SendFlags::DONTWAIT;
    loop {
        match rustix::net::send(sock, &cmd.encode(), flags) {
            Ok(_) => return Ok(()),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Sends `cmd` from a tokio runtime, waiting while the receiver's queue is full.
pub(crate) async fn send_async(sock: &AsyncFd<OwnedFd>, cmd: Command) -> io::Result<()> {
    loop {
        let mut guard = sock.writable().await?;
        match guard.try_io(|s| send(s.get_ref().as_fd(), cmd)) {
            Ok(r) => return r,
            Err(_would_block) => continue,
        }
    }
}

/// What [`recv`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Received {
    /// One message (a command, or why it is not one).
    Message(Result<Command, CommandError>),
    /// Nothing waiting now.
    Empty,
    /// Every sending end is closed.
    Closed,
}

/// Reads one message from the non-blocking socket `sock`, without waiting.
pub(crate) fn recv(sock: BorrowedFd<'_>) -> io::Result<Received> {
    // One byte more than a command: a longer message shows as such, not as a truncated one.
    let mut buf = [0u8; LEN + 1];
    loop {
        match rustix::net::recv(sock, &mut buf[..], rustix::net::RecvFlags::DONTWAIT) {
            Ok((0, _)) => return Ok(Received::Closed),
            Ok((n, _)) => return Ok(Received::Message(Command::decode(&buf[..n]))),
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::AGAIN) => return Ok(Received::Empty),
            Err(rustix::io::Errno::CONNRESET) => return Ok(Received::Closed),
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_round_trip() {
        for c in [
            Command::Reload,
            Command::ReloadTasks,
            Command::ReopenLogs,
            Command::Recycle {
                slot: 3,
                pid: 0xdead_beef,
            },
        ] {
            assert_eq!(Command::decode(&c.encode()), Ok(c));
        }
        assert_eq!(Command::decode(&[1, 0]), Err(CommandError::Length(2)));
        assert_eq!(Command::decode(&[9; LEN]), Err(CommandError::Tag(9)));
    }

    /// Messages sent back to back from several senders stay apart: each is read once.
    #[test]
    fn command_messages_do_not_merge() {
        let (rx, tx) = crate::sys::seqpacket_pair().expect("pair");
        let tx2 = tx.try_clone().expect("dup");
        for slot in 0..4 {
            let s = if slot % 2 == 0 { &tx } else { &tx2 };
            send(
                s.as_fd(),
                Command::Recycle {
                    slot,
                    pid: 100 + slot,
                },
            )
            .expect("send");
        }
        let mut got = Vec::new();
        loop {
            match recv(rx.as_fd()).expect("recv") {
                Received::Message(m) => got.push(m.expect("a command")),
                Received::Empty => break,
                Received::Closed => panic!("closed"),
            }
        }
        let want: Vec<_> = (0..4)
            .map(|slot| Command::Recycle {
                slot,
                pid: 100 + slot,
            })
            .collect();
        assert_eq!(got, want);
        drop((tx, tx2));
        assert_eq!(recv(rx.as_fd()).expect("recv"), Received::Closed);
    }
}
