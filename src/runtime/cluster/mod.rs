//! Several nodes, one Redis ([`ClusterSettings`]): the cluster-wide WebSocket broadcast and
//! the node registry.
//!
//! - Every worker has a [`Cluster`]: `broadcast` queues the message to its publisher task,
//!   which `PUBLISH`es everything queued, in order, in one pipeline, on one connection to
//!   Redis, to the cluster's broadcast channel `{prefix}:bcast`.
//! - Worker 0 of each node holds the node's one subscription to that channel and fans each
//!   message out to the node's WebSocket clients with the ordinary local broadcast (through
//!   the master in Process mode, to every worker's own clients in Base mode). Redis delivers
//!   the messages of one publishing connection in order, so every client of every node gets
//!   each message once, in the sender's order (the sender's own node included: it gets its
//!   messages back through Redis, not by a shortcut that could overtake them).
//! - Worker 0 also refreshes the node's key `{prefix}:node:{name}` (its value: the node's open
//!   connections) every `heartbeat`, with a TTL of `node_ttl`, and keeps the name in the set
//!   `{prefix}:nodes`. A node that dies stops refreshing: its key expires and
//!   [`nodes`](Cluster::nodes) no longer lists it (and drops it from the set).
//! - Redis down: each task reconnects with a doubling backoff (50 ms to 2 s). A worker whose
//!   publisher lost Redis refuses `broadcast` with [`ClusterError::Unavailable`] until it is
//!   back; the messages of a pipeline that failed are logged as lost (Redis pub/sub is
//!   at-most-once).
//! - Tasks across nodes: [`tasks`] (a Redis stream with a consumer group); operations on
//!   another node's connections: [`remote`] (requests on its channel, answers on ours);
//!   rooms: [`rooms`].

mod remote;
mod rooms;
mod tasks;

use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::StreamExt;
use redis::AsyncConnectionConfig;
use tokio::sync::mpsc;

use super::app::Ctx;
use crate::base::{ClusterError, ClusterNode, ClusterSettings, ConnId, SendError};
pub(crate) use remote::{Answer, Op};
pub(crate) use tasks::{Reply, WaitError};

/// Most broadcasts one worker may have waiting for Redis; beyond it `broadcast` returns
/// [`ClusterError::Backlog`].
const QUEUE: usize = 64 * 1024;
/// Most messages in one `PUBLISH` pipeline.
const BATCH: usize = 256;
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// A worker's way to the cluster.
#[derive(Debug)]
pub(crate) struct Cluster {
    settings: ClusterSettings,
    client: redis::Client,
    tx: mpsc::Sender<Bytes>,
    /// Whether the publisher holds a working connection (starts `true`: messages queued while
    /// the first connection is made are sent over it).
    up: Arc<AtomicBool>,
    /// The worker's connection for requests (membership, directory, pushes), made on first use
    /// and dropped when it fails.
    con: tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>,
    /// This worker's reply channel for the cluster tasks it queues.
    replies: tasks::Replies,
}

fn config() -> AsyncConnectionConfig {
    AsyncConnectionConfig::new()
        .set_connection_timeout(Duration::from_secs(1))
        .set_response_timeout(Duration::from_secs(2))
}

fn unavailable(e: &redis::RedisError) -> ClusterError {
    ClusterError::Unavailable(e.to_string())
}

impl Cluster {
    /// The cluster of worker `worker`, with its publisher task started (on the current
    /// `LocalSet`). `None` without [`Settings::cluster`](crate::Settings::cluster).
    pub(crate) fn start(
        settings: Option<&ClusterSettings>,
        worker: usize,
    ) -> Result<Option<Arc<Cluster>>, ClusterError> {
        let Some(settings) = settings else {
            return Ok(None);
        };
        let ca = settings
            .tls_ca_pem()
            .map_err(|e| ClusterError::Unavailable(e.to_string()))?;
        let client = match ca {
            Some(root_cert) => redis::Client::build_with_tls(
                settings.redis_url.as_str(),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root_cert),
                },
            ),
            None => redis::Client::open(settings.redis_url.as_str()),
        }
        .map_err(|e| unavailable(&e))?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let up = Arc::new(AtomicBool::new(true));
        tokio::task::spawn_local(publisher(
            client.clone(),
            format!("{}:bcast", settings.prefix),
            rx,
            up.clone(),
            worker,
        ));
        Ok(Some(Arc::new(Cluster {
            settings: settings.clone(),
            client,
            tx,
            up,
            con: tokio::sync::Mutex::new(None),
            replies: tasks::Replies::new(&settings.prefix, &settings.node),
        })))
    }

    /// Worker 0: starts the node's subscription and heartbeat, which apply the cluster's
    /// broadcasts to this node's clients through `ctx`, and (with task workers) the node's
    /// consumer of the cluster's tasks.
    pub(crate) fn serve_node(self: &Arc<Self>, ctx: Ctx) {
        self.serve_tasks(&ctx);
        tokio::task::spawn_local(subscriber(self.clone(), ctx.clone()));
        tokio::task::spawn_local(heartbeat(self.clone(), ctx));
    }

    /// Queues a WebSocket broadcast to every client of every node.
    pub(crate) fn broadcast(&self, data: Bytes, opcode: u8) -> Result<(), SendError> {
        if !self.up.load(Relaxed) {
            return Err(SendError::Cluster(
                ClusterError::Unavailable("this node lost its connection to redis".into()),
                data,
            ));
        }
        let mut m = BytesMut::with_capacity(1 + data.len());
        m.put_u8(opcode);
        m.put_slice(&data);
        match self.tx.try_send(m.freeze()) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                Err(SendError::Cluster(ClusterError::Backlog, data))
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(SendError::ShuttingDown(data)),
        }
    }

    /// The live nodes (their key has not expired), sorted by name; dead ones are dropped from
    /// the member set.
    pub(crate) async fn nodes(&self) -> Result<Vec<ClusterNode>, ClusterError> {
        let p = &self.settings.prefix;
        let mut con = self.con().await?;
        let names: redis::RedisResult<Vec<String>> = redis::cmd("SMEMBERS")
            .arg(format!("{p}:nodes"))
            .query_async(&mut con)
            .await;
        let names = self.req(names).await?;
        let mut pipe = redis::pipe();
        for n in &names {
            pipe.get(format!("{p}:node:{n}"));
        }
        let counts: Vec<Option<u64>> = pipe
            .query_async(&mut con)
            .await
            .map_err(|e| unavailable(&e))?;
        let mut live = Vec::new();
        for (name, count) in names.into_iter().zip(counts) {
            match count {
                Some(connections) => live.push(ClusterNode { name, connections }),
                None => {
                    // Its heartbeat expired: gone. (A node that comes back re-adds itself.)
                    let _: Result<(), _> = redis::cmd("SREM")
                        .arg(format!("{p}:nodes"))
                        .arg(&name)
                        .query_async(&mut con)
                        .await;
                }
            }
        }
        live.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(live)
    }
}

impl Cluster {
    /// The worker's request connection (made now if there is none).
    async fn con(&self) -> Result<redis::aio::MultiplexedConnection, ClusterError> {
        let mut slot = self.con.lock().await;
        if let Some(c) = &*slot {
            return Ok(c.clone());
        }
        let c = self
            .client
            .get_multiplexed_async_connection_with_config(&config())
            .await
            .map_err(|e| unavailable(&e))?;
        *slot = Some(c.clone());
        Ok(c)
    }

    /// A request's result; a failed one drops the cached connection (the next request
    /// reconnects).
    async fn req<T>(&self, r: redis::RedisResult<T>) -> Result<T, ClusterError> {
        match r {
            Ok(v) => Ok(v),
            Err(e) => {
                *self.con.lock().await = None;
                Err(unavailable(&e))
            }
        }
    }

    /// This node's name.
    pub(crate) fn node(&self) -> &str {
        &self.settings.node
    }

    /// Records that connection `fd` of this node belongs to user `uid`.
    pub(crate) async fn bind(&self, fd: ConnId, uid: &str, bind: bool) -> Result<(), ClusterError> {
        let key = format!("{}:uid:{uid}", self.settings.prefix);
        let member = format!("{}/{}", self.settings.node, fd.0);
        let mut con = self.con().await?;
        let mut c = redis::cmd(if bind { "SADD" } else { "SREM" });
        c.arg(key).arg(member);
        let r: redis::RedisResult<()> = c.query_async(&mut con).await;
        self.req(r).await
    }

    /// Sends a WebSocket message to connection `fd` of node `node` (this one: directly).
    /// Returns whether it was handed on: for another node, whether its subscriber got it
    /// from Redis (that node lives).
    pub(crate) async fn push_to(
        &self,
        ctx: &Ctx,
        node: &str,
        fd: ConnId,
        data: Bytes,
        opcode: u8,
    ) -> Result<bool, ClusterError> {
        if node == self.settings.node {
            return Ok(ctx.ws_push(fd, data, opcode).is_ok());
        }
        let mut m = BytesMut::with_capacity(9 + data.len());
        m.put_u64_le(fd.0);
        m.put_u8(opcode);
        m.put_slice(&data);
        let mut con = self.con().await?;
        let r: redis::RedisResult<u64> = redis::cmd("PUBLISH")
            .arg(format!("{}:to:{node}", self.settings.prefix))
            .arg(&m[..])
            .query_async(&mut con)
            .await;
        Ok(self.req(r).await? > 0)
    }

    /// Sends a WebSocket message to every connection bound to `uid` on a live node; returns
    /// how many were handed on. Entries of dead nodes (their key expired) and of this node's
    /// closed connections are removed from the directory.
    pub(crate) async fn push_to_user(
        &self,
        ctx: &Ctx,
        uid: &str,
        data: Bytes,
        opcode: u8,
    ) -> Result<usize, ClusterError> {
        let key = format!("{}:uid:{uid}", self.settings.prefix);
        self.push_to_set(ctx, &key, data, opcode).await
    }

    /// Sends a WebSocket message to every `node/fd` member of the set `key` on a live node
    /// (a user's connections, a room); returns how many were handed on. Members of dead
    /// nodes and of this node's closed connections are removed from the set.
    async fn push_to_set(
        &self,
        ctx: &Ctx,
        key: &str,
        data: Bytes,
        opcode: u8,
    ) -> Result<usize, ClusterError> {
        let p = &self.settings.prefix;
        let mut con = self.con().await?;
        let members: redis::RedisResult<Vec<String>> =
            redis::cmd("SMEMBERS").arg(key).query_async(&mut con).await;
        let members = self.req(members).await?;
        let mut targets = Vec::new();
        for m in &members {
            match m
                .rsplit_once('/')
                .and_then(|(n, f)| Some((n, f.parse::<u64>().ok()?)))
            {
                Some((n, f)) => targets.push((m, n, ConnId(f))),
                None => tracing::warn!(member = %m, "cluster: bad directory entry ignored"),
            }
        }
        let mut pipe = redis::pipe();
        for (_, n, _) in &targets {
            pipe.exists(format!("{p}:node:{n}"));
        }
        let live: Vec<bool> = self.req(pipe.query_async(&mut con).await).await?;
        let mut sent = 0;
        let mut stale = Vec::new();
        for ((m, n, fd), live) in targets.into_iter().zip(live) {
            if live && self.push_to(ctx, n, fd, data.clone(), opcode).await? {
                sent += 1;
            } else if !live || n == self.settings.node {
                stale.push(m);
            }
        }
        if !stale.is_empty() {
            let r: redis::RedisResult<()> = redis::cmd("SREM")
                .arg(key)
                .arg(stale)
                .query_async(&mut con)
                .await;
            self.req(r).await?;
        }
        Ok(sent)
    }
}

/// The next backoff after `d`.
fn next(d: Duration) -> Duration {
    (d * 2).min(BACKOFF_MAX)
}

/// Publishes what `rx` gives, in order, in pipelines of up to [`BATCH`].
async fn publisher(
    client: redis::Client,
    channel: String,
    mut rx: mpsc::Receiver<Bytes>,
    up: Arc<AtomicBool>,
    worker: usize,
) {
    let mut backoff = BACKOFF_MIN;
    let mut batch = Vec::with_capacity(BATCH);
    'connect: loop {
        let mut con = match client
            .get_multiplexed_async_connection_with_config(&config())
            .await
        {
            Ok(c) => c,
            Err(e) => {
                if up.swap(false, Relaxed) {
                    tracing::warn!(worker, error = %e, "cluster: cannot reach redis; broadcasts refused until it is back");
                }
                // What was queued before Redis was found down cannot be delivered.
                let mut lost = 0;
                while rx.try_recv().is_ok() {
                    lost += 1;
                }
                if lost > 0 {
                    tracing::warn!(worker, lost, "cluster: broadcasts lost with redis");
                }
                tokio::time::sleep(backoff).await;
                backoff = next(backoff);
                continue;
            }
        };
        if !up.swap(true, Relaxed) {
            tracing::info!(worker, "cluster: redis is back; broadcasts resume");
        }
        backoff = BACKOFF_MIN;
        loop {
            if rx.recv_many(&mut batch, BATCH).await == 0 {
                return; // the worker stops
            }
            let mut pipe = redis::pipe();
            for m in &batch {
                pipe.publish(&channel, &m[..]).ignore();
            }
            let res: redis::RedisResult<()> = pipe.query_async(&mut con).await;
            if let Err(e) = res {
                up.store(false, Relaxed);
                tracing::warn!(worker, error = %e, lost = batch.len(), "cluster: publish failed; broadcasts refused until redis is back");
                batch.clear();
                tokio::time::sleep(backoff).await;
                continue 'connect;
            }
            batch.clear();
        }
    }
}

/// Worker 0: the node's subscription to the broadcast channel; each message goes to this
/// node's clients.
async fn subscriber(cluster: Arc<Cluster>, ctx: Ctx) {
    let channel = format!("{}:bcast", cluster.settings.prefix);
    let node = &cluster.settings.node;
    let own = format!("{}:to:{node}", cluster.settings.prefix);
    let rpc = format!("{}:rpc:{node}", cluster.settings.prefix);
    let mut backoff = BACKOFF_MIN;
    loop {
        let mut ps = match cluster.client.get_async_pubsub().await {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(node = %node, error = %e, "cluster: subscriber cannot reach redis");
                tokio::time::sleep(backoff).await;
                backoff = next(backoff);
                continue;
            }
        };
        if let Err(e) = ps.subscribe(&[&channel, &own, &rpc]).await {
            tracing::debug!(node = %node, error = %e, "cluster: subscribe failed");
            tokio::time::sleep(backoff).await;
            backoff = next(backoff);
            continue;
        }
        backoff = BACKOFF_MIN;
        tracing::info!(node = %node, "cluster: node subscribed");
        let mut msgs = ps.into_on_message();
        while let Some(msg) = msgs.next().await {
            let p = msg.get_payload_bytes();
            if msg.get_channel_name() == rpc {
                // A connection operation from another node: answered in its own task.
                let (c, ctx, p) = (cluster.clone(), ctx.clone(), p.to_vec());
                tokio::task::spawn_local(async move { c.serve_remote(&ctx, &p, false).await });
                continue;
            }
            if msg.get_channel_name() == own {
                // A push from another node to one of ours: fd (LE u64), opcode, data.
                let (Some(fd), Some(&opcode)) = (p.get(..8), p.get(8)) else {
                    tracing::warn!(node = %node, "cluster: short push record ignored");
                    continue;
                };
                let fd = ConnId(u64::from_le_bytes(fd.try_into().unwrap_or_default()));
                if let Err(e) = ctx.ws_push(fd, Bytes::copy_from_slice(&p[9..]), opcode) {
                    tracing::debug!(node = %node, error = %e, "cluster: push from another node not delivered");
                }
                continue;
            }
            let Some((&opcode, data)) = p.split_first() else {
                tracing::warn!(node = %node, "cluster: empty broadcast record ignored");
                continue;
            };
            if let Err(e) = ctx.ws_broadcast(None, Bytes::copy_from_slice(data), opcode) {
                tracing::warn!(node = %node, error = %e, "cluster: broadcast to this node's clients incomplete");
            }
        }
        tracing::warn!(node = %node, "cluster: subscription lost; reconnecting");
        tokio::time::sleep(backoff).await;
    }
}

/// Worker 0: refreshes the node's key and membership every `heartbeat`.
async fn heartbeat(cluster: Arc<Cluster>, ctx: Ctx) {
    let s = &cluster.settings;
    let (key, set) = (
        format!("{}:node:{}", s.prefix, s.node),
        format!("{}:nodes", s.prefix),
    );
    let ttl = s.node_ttl.as_millis() as u64;
    let mut con = None;
    let mut tick = tokio::time::interval(s.heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut logged = false;
    loop {
        tick.tick().await;
        if con.is_none() {
            con = cluster
                .client
                .get_multiplexed_async_connection_with_config(&config())
                .await
                .ok();
        }
        let Some(c) = con.as_mut() else { continue };
        let conns = ctx.shared.stats(0).connections;
        let res: redis::RedisResult<()> = redis::pipe()
            .cmd("SET")
            .arg(&key)
            .arg(conns)
            .arg("PX")
            .arg(ttl)
            .ignore()
            .sadd(&set, &s.node)
            .ignore()
            .query_async(c)
            .await;
        match res {
            Ok(()) if !logged => {
                tracing::info!(node = %s.node, "cluster: node registered");
                logged = true;
            }
            Ok(()) => {}
            Err(e) => {
                tracing::debug!(node = %s.node, error = %e, "cluster: heartbeat failed");
                con = None;
                logged = false;
            }
        }
    }
}
