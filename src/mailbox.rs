//! `send_message` between workers in [`Mode::Base`](crate::Mode::Base), where there is no
//! master pipe: each worker binds a unix datagram socket in the abstract namespace, named after
//! the master's pid and the worker id, and the others send straight to it.
//!
//! Messages use the IPC record format ([`ipc::encode`]): a record of kind `PipeMessage` whose
//! `listener` field is the sender's worker id; payloads above [`ipc::MAX_CHUNK`] are chunked and
//! reassembled per sender. A sender writes all chunks of one message before returning, so the
//! chunks of one sender never interleave.

use std::collections::HashMap;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use crate::ipc::{self, Header, Kind, Reassembler};

/// How long a send may block when the target's queue is full.
const SEND_TIMEOUT: Duration = Duration::from_secs(1);

fn addr(master_pid: u32, worker: usize) -> io::Result<SocketAddr> {
    SocketAddr::from_abstract_name(format!("rswoole.{master_pid}.w{worker}").as_bytes())
}

/// Sends `data` from worker `from` to worker `to` of the server whose master is `master_pid`.
pub(crate) fn send(master_pid: u32, from: usize, to: usize, data: &[u8]) -> io::Result<()> {
    let target = addr(master_pid, to)?;
    let sock = UnixDatagram::unbound()?;
    sock.set_write_timeout(Some(SEND_TIMEOUT))?;
    let mut buf = BytesMut::new();
    ipc::encode(
        &mut buf,
        Header {
            kind: Kind::PipeMessage,
            flags: 0,
            listener: from as u16,
            session: 0,
            seq: 0,
        },
        data,
    );
    while !buf.is_empty() {
        let len = u32::from_le_bytes(buf[..4].try_into().expect("4 bytes")) as usize;
        let rec = buf.split_to(ipc::HDR + len);
        sock.send_to_addr(&rec, &target)?;
    }
    Ok(())
}

/// Binds worker `id`'s mailbox (retrying while a previous incarnation still holds the name)
/// and calls `deliver(from, message)` for every message, until the task is aborted.
pub(crate) async fn serve(master_pid: u32, id: usize, deliver: impl Fn(usize, Bytes)) {
    let sock = loop {
        match addr(master_pid, id)
            .and_then(|a| UnixDatagram::bind_addr(&a))
            .and_then(|s| {
                s.set_nonblocking(true)?;
                tokio::net::UnixDatagram::from_std(s)
            }) {
            Ok(s) => break s,
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => {
                tracing::error!(worker = id, error = %e, "cannot open the send_message mailbox");
                return;
            }
        }
    };
    let mut buf = vec![0u8; ipc::MAX_DGRAM];
    let mut partial: HashMap<u16, Reassembler> = HashMap::new();
    loop {
        let n = match sock.recv(&mut buf).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(worker = id, error = %e, "send_message mailbox read failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        for rec in ipc::decode(&buf[..n]) {
            match rec {
                Ok((h, payload)) if h.kind == Kind::PipeMessage => {
                    let re = partial.entry(h.listener).or_default();
                    if let Some(msg) = re.feed(&h, payload) {
                        deliver(h.listener as usize, msg);
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(worker = id, error = %e, "malformed send_message datagram");
                    break;
                }
            }
        }
    }
}
