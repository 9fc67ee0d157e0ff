//! Connection operations across nodes: `send`, `push`, `close`, `exists`, `connection_info`
//! on a [`ClusterConnId`] (node name + the node's `ConnId`), as requests over Redis.
//!
//! - The caller `PUBLISH`es the request to the owning node's channel `{prefix}:rpc:{node}`
//!   (its worker 0 holds the subscription); no subscriber means no live node of that name:
//!   [`ClusterError::NoNode`] at once.
//! - Worker 0 of the owner applies it locally and publishes the answer to the caller's reply
//!   channel (the same as for cluster tasks), keyed by the request id; no answer within
//!   [`RPC_TIMEOUT`] is [`ClusterError::Timeout`].
//! - Base mode: every worker owns the connections it accepted. Worker 0 answers `exists` and
//!   `connection_info` from shared memory for all of them and forwards a `push` with the
//!   ordinary `WsPushFwd`, but hands a `send` or `close` of another worker's connection, as the same record, to that worker's mailbox
//!   (`ClusterOpFwd`); the owner applies it and publishes the answer itself. A caller on the
//!   same node whose target belongs to another worker does the same (no Redis round trip
//!   for the request, the answer still comes on its reply channel).
//! - Request record: op (u8), request id (u64 LE), reply channel length (u16 LE), reply
//!   channel, fd (u64 LE), WebSocket opcode (u8), data. Answer: the task reply record
//!   (done with a body, or failed with the reason).

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::tasks::{encode_reply, Forget, Reply, WaitError, Waiter};
use super::Cluster;
use crate::base::{ClusterConnId, ClusterError, ConnId, ConnectionInfo};
use crate::runtime::app::Ctx;

/// How long a caller waits for the owning node's answer.
pub(crate) const RPC_TIMEOUT: Duration = Duration::from_secs(2);

/// What to do with a remote connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Send = 1,
    Push = 2,
    Close = 3,
    Exists = 4,
    Info = 5,
}

impl Op {
    fn from_u8(b: u8) -> Option<Op> {
        Some(match b {
            1 => Op::Send,
            2 => Op::Push,
            3 => Op::Close,
            4 => Op::Exists,
            5 => Op::Info,
            _ => return None,
        })
    }
}

/// [`ConnectionInfo`] on the wire.
#[derive(Serialize, Deserialize)]
struct InfoWire {
    remote_addr: SocketAddr,
    server_port: u16,
    listener: usize,
    reactor_id: u32,
    connect_time: SystemTime,
    last_receive_time: SystemTime,
    output_buffered: u64,
    uid: u32,
    tls: bool,
    peer_cert_sha256: Option<[u8; 32]>,
}

impl From<ConnectionInfo> for InfoWire {
    fn from(i: ConnectionInfo) -> InfoWire {
        InfoWire {
            remote_addr: i.remote_addr,
            server_port: i.server_port,
            listener: i.listener,
            reactor_id: i.reactor_id,
            connect_time: i.connect_time,
            last_receive_time: i.last_receive_time,
            output_buffered: i.output_buffered,
            uid: i.uid,
            tls: i.tls,
            peer_cert_sha256: i.peer_cert_sha256,
        }
    }
}

impl From<InfoWire> for ConnectionInfo {
    fn from(i: InfoWire) -> ConnectionInfo {
        ConnectionInfo {
            remote_addr: i.remote_addr,
            server_port: i.server_port,
            listener: i.listener,
            reactor_id: i.reactor_id,
            connect_time: i.connect_time,
            last_receive_time: i.last_receive_time,
            output_buffered: i.output_buffered,
            uid: i.uid,
            tls: i.tls,
            peer_cert_sha256: i.peer_cert_sha256,
        }
    }
}

/// Applies `op` to this node's connection `fd`: the answer body, or why not.
fn apply(ctx: &Ctx, op: Op, fd: ConnId, opcode: u8, data: Bytes) -> Result<Bytes, String> {
    match op {
        Op::Send => ctx
            .send(fd, data)
            .map(|()| Bytes::new())
            .map_err(|e| e.to_string()),
        Op::Push => ctx
            .ws_push(fd, data, opcode)
            .map(|()| Bytes::new())
            .map_err(|e| e.to_string()),
        Op::Close => ctx
            .close(fd)
            .map(|()| Bytes::new())
            .map_err(|e| e.to_string()),
        Op::Exists => Ok(Bytes::from_static(if ctx.shared.live_slot(fd).is_some() {
            b"\x01"
        } else {
            b"\x00"
        })),
        Op::Info => match ctx.shared.info(fd) {
            None => Ok(Bytes::new()),
            Some(i) => postcard::to_allocvec(&InfoWire::from(i))
                .map(Bytes::from)
                .map_err(|e| e.to_string()),
        },
    }
}

/// The answer to `op` as the caller gets it.
fn answer(op: Op, body: Bytes) -> Result<Answer, ClusterError> {
    Ok(match op {
        Op::Send | Op::Push | Op::Close => Answer::Done,
        Op::Exists => Answer::Exists(body.first() == Some(&1)),
        Op::Info if body.is_empty() => Answer::Info(None),
        Op::Info => Answer::Info(Some(
            postcard::from_bytes::<InfoWire>(&body)
                .map_err(|e| ClusterError::Refused(format!("bad connection info: {e}")))?
                .into(),
        )),
    })
}

/// What a remote operation returned.
#[derive(Debug)]
pub(crate) enum Answer {
    Done,
    Exists(bool),
    Info(Option<ConnectionInfo>),
}

impl Op {
    /// Whether only the worker that owns the connection can apply it (Base mode: the others
    /// answer `exists`/`connection_info` from shared memory and forward a `push` themselves).
    fn needs_owner(self) -> bool {
        matches!(self, Op::Send | Op::Close)
    }
}

impl Cluster {
    /// Applies `op` to connection `id` of any node (this one directly; in Base mode a
    /// connection of another worker of this node through that worker's mailbox).
    pub(crate) async fn remote(
        self: &Arc<Self>,
        ctx: &Ctx,
        id: &ClusterConnId,
        op: Op,
        opcode: u8,
        data: Bytes,
    ) -> Result<Answer, ClusterError> {
        let local = id.node == self.settings.node;
        let owner = match local && op.needs_owner() {
            true => ctx.owning_worker(id.fd),
            false => None,
        };
        if local && owner.is_none() {
            let body = apply(ctx, op, id.fd, opcode, data).map_err(ClusterError::Refused)?;
            return answer(op, body);
        }
        let deadline = Instant::now() + RPC_TIMEOUT;
        self.replies_up(deadline).await.map_err(|e| match e {
            WaitError::Cluster(e) => e,
            WaitError::Timeout => ClusterError::Timeout(id.node.clone()),
        })?;
        let r = &self.replies;
        let req = r.next.fetch_add(1, Relaxed);
        let (tx, rx) = oneshot::channel();
        r.waiting.lock().insert(req, Waiter::Wait(tx));
        let _forget = Forget(r, req);
        let ch = r.channel.as_bytes();
        let mut m = BytesMut::with_capacity(20 + ch.len() + data.len());
        m.put_u8(op as u8);
        m.put_u64_le(req);
        m.put_u16_le(ch.len() as u16);
        m.put_slice(ch);
        m.put_u64_le(id.fd.0);
        m.put_u8(opcode);
        m.put_slice(&data);
        if let Some(w) = owner {
            // Another worker of this node holds it: straight to its mailbox; it answers on
            // our reply channel like a remote node.
            ctx.forward_cluster_op(w, id.fd, &m).map_err(|_| {
                ClusterError::Refused(format!("worker {w} holding the connection is unreachable"))
            })?;
        } else {
            let mut con = self.con().await?;
            let got: redis::RedisResult<u64> = redis::cmd("PUBLISH")
                .arg(format!("{}:rpc:{}", self.settings.prefix, id.node))
                .arg(&m[..])
                .query_async(&mut con)
                .await;
            if self.req(got).await? == 0 {
                return Err(ClusterError::NoNode(id.node.clone()));
            }
        }
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(Reply::Done(body))) => answer(op, body),
            Ok(Ok(Reply::Failed(why))) => Err(ClusterError::Refused(why)),
            Ok(Ok(Reply::Died)) => Err(ClusterError::Refused("bad answer".into())),
            Ok(Err(_)) => Err(ClusterError::Unavailable(
                "lost the subscription for answers (redis down or restarting)".into(),
            )),
            Err(_) => Err(ClusterError::Timeout(id.node.clone())),
        }
    }

    /// A request on one of this node's connections: from another node (worker 0's
    /// subscription to this node's rpc channel), or `forwarded` by a worker of this node to
    /// the worker that owns the connection (Base mode). Applies it — in Base mode a `send`
    /// or `close` of another worker's connection is forwarded to that worker, which
    /// answers — and publishes the answer.
    pub(crate) async fn serve_remote(&self, ctx: &Ctx, p: &[u8], forwarded: bool) {
        let Some((op, req, channel, fd, opcode, data)) = parse(p) else {
            tracing::warn!(node = %self.node(), "cluster: malformed connection request ignored");
            return;
        };
        let owner = match !forwarded && op.needs_owner() {
            true => ctx.owning_worker(fd),
            false => None,
        };
        let reply = match owner {
            Some(w) => match ctx.forward_cluster_op(w, fd, p) {
                Ok(()) => return, // worker `w` answers
                Err(_) => {
                    Reply::Failed(format!("worker {w} holding the connection is unreachable"))
                }
            },
            None => match apply(ctx, op, fd, opcode, Bytes::copy_from_slice(data)) {
                Ok(body) => Reply::Done(body),
                Err(why) => Reply::Failed(why),
            },
        };
        let sent = async {
            let mut con = self.con().await?;
            let r: redis::RedisResult<()> = redis::cmd("PUBLISH")
                .arg(channel)
                .arg(encode_reply(req, &reply))
                .query_async(&mut con)
                .await;
            self.req(r).await
        }
        .await;
        if let Err(e) = sent {
            tracing::debug!(node = %self.node(), error = %e, "cluster: answer to another node not sent");
        }
    }
}

type Request<'a> = (Op, u64, &'a [u8], ConnId, u8, &'a [u8]);

fn parse(p: &[u8]) -> Option<Request<'_>> {
    let op = Op::from_u8(*p.first()?)?;
    let req = u64::from_le_bytes(p.get(1..9)?.try_into().ok()?);
    let n = u16::from_le_bytes(p.get(9..11)?.try_into().ok()?) as usize;
    let channel = p.get(11..11 + n)?;
    let rest = p.get(11 + n..)?;
    let fd = ConnId(u64::from_le_bytes(rest.get(..8)?.try_into().ok()?));
    let opcode = *rest.get(8)?;
    Some((op, req, channel, fd, opcode, rest.get(9..)?))
}
