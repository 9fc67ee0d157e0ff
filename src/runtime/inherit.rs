//! Listening sockets the master did not bind itself: passed by systemd (socket activation:
//! `LISTEN_PID`, `LISTEN_FDS`, `LISTEN_FDNAMES`) or by the master it replaces
//! ([`super::upgrade`]).
//!
//! Each inherited socket is matched to one of the server's listeners, first by name, then by
//! address: the name `listener<i>` (systemd's `FileDescriptorName=listener0`) is listener `i`
//! in the order the server added them; otherwise a socket whose local address and type equal
//! a listener's address is that listener's. An upgrade names its sockets the same way, but
//! its name counts only where the new configuration still has that address (or port 0). A listener with no
//! inherited socket is bound as usual; an inherited socket that matches no listener is an
//! error (`start` fails, naming it), because nothing would ever accept its connections.
//!
//! What each mode does with one:
//! - Process mode: the master accepts on it (calling `listen` first if it is not listening).
//! - Base mode: a *listening* inherited socket (systemd's) is shared by every worker: each
//!   accepts on its copy of the one socket (one accept queue) instead of making its own
//!   `SO_REUSEPORT` listener. A *non-listening* one (a Base-mode master's port reservation,
//!   passed on upgrade) keeps its role: it holds the port, and the workers add their own
//!   `SO_REUSEPORT` listeners to it.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;

use socket2::{Socket, Type};

use crate::base::{Error, Result, SockType};
use crate::sys;

/// One inherited socket.
#[derive(Debug)]
pub(crate) struct Inherited {
    pub(crate) sock: Socket,
    pub(crate) name: Option<String>,
    pub(crate) addr: SocketAddr,
    pub(crate) kind: SockType,
    /// A TCP socket already listening (`SO_ACCEPTCONN`).
    pub(crate) listening: bool,
    /// Who passed it (for errors and logs): `systemd` or `upgrade`.
    pub(crate) origin: &'static str,
}

fn bad(reason: String) -> Error {
    Error::InvalidSetting {
        name: "LISTEN_FDS",
        reason,
    }
}

impl Inherited {
    /// Looks at `fd`: its address, type and whether it listens.
    pub(crate) fn new(fd: OwnedFd, name: Option<String>, origin: &'static str) -> Result<Self> {
        let sock = Socket::from(fd);
        let addr = sock
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .ok_or_else(|| {
                bad(format!(
                    "a socket passed by {origin} ({}) is not an IP socket",
                    name.as_deref().unwrap_or("unnamed")
                ))
            })?;
        let kind = match sock.r#type() {
            Ok(t) if t == Type::STREAM => SockType::Tcp,
            Ok(t) if t == Type::DGRAM => SockType::Udp,
            _ => {
                return Err(bad(format!(
                    "the socket {addr} passed by {origin} is neither TCP nor UDP"
                )))
            }
        };
        let listening = kind == SockType::Tcp && sock.is_listener().unwrap_or(false);
        sock.set_nonblocking(true)
            .map_err(Error::io("making an inherited socket non-blocking"))?;
        Ok(Inherited {
            sock,
            name,
            addr,
            kind,
            listening,
            origin,
        })
    }
}

/// The sockets systemd passed to this process (none if `LISTEN_PID` is not this process).
/// Clears the three variables, so that nothing this process starts takes them again.
pub(crate) fn from_systemd() -> Result<Vec<Inherited>> {
    let pid = std::env::var("LISTEN_PID").ok();
    let fds = std::env::var("LISTEN_FDS").ok();
    let names = std::env::var("LISTEN_FDNAMES").ok();
    for v in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(v);
    }
    let (Some(pid), Some(fds)) = (pid, fds) else {
        return Ok(Vec::new());
    };
    if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
        return Ok(Vec::new());
    }
    let n: usize = fds
        .trim()
        .parse()
        .map_err(|_| bad(format!("LISTEN_FDS={fds:?} is not a number")))?;
    let names: Vec<Option<String>> = match &names {
        Some(s) => s.split(':').map(|x| Some(x.to_string())).collect(),
        None => vec![None; n],
    };
    let owned = sys::adopt_inherited(3, n).map_err(|e| bad(format!("LISTEN_FDS={n}: {e}")))?;
    owned
        .into_iter()
        .enumerate()
        .map(|(i, fd)| Inherited::new(fd, names.get(i).cloned().flatten(), "systemd"))
        .collect()
}

/// Removes and returns the inherited socket for listener `index` (`addr`, `kind`): the one
/// named `listener<index>`, else the first with that address and type.
pub(crate) fn take(
    pool: &mut Vec<Inherited>,
    index: usize,
    addr: SocketAddr,
    kind: SockType,
) -> Option<Inherited> {
    let name = format!("listener{index}");
    // systemd's names are the operator's word; an upgrade's only say "the same listener" where
    // the address still is the configured one (or the configured port is 0, "any").
    let named = |s: &Inherited| {
        s.name.as_deref() == Some(&name)
            && s.kind == kind
            && (s.origin == "systemd" || s.addr == addr || addr.port() == 0)
    };
    let pos = pool
        .iter()
        .position(named)
        .or_else(|| pool.iter().position(|s| s.addr == addr && s.kind == kind))?;
    Some(pool.remove(pos))
}

/// The error for inherited sockets no listener took.
pub(crate) fn unmatched(pool: &[Inherited]) -> Error {
    let list: Vec<String> = pool
        .iter()
        .map(|s| {
            format!(
                "{} {:?} {} (from {})",
                s.name.as_deref().unwrap_or("unnamed"),
                s.kind,
                s.addr,
                s.origin
            )
        })
        .collect();
    bad(format!(
        "inherited socket(s) {} match no listener of the server (match by address, or name them listener<i>)",
        list.join(", ")
    ))
}
