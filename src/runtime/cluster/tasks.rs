//! Tasks across nodes, on a Redis stream with one consumer group
//! ([`Handle::task_wait_cluster`](crate::Handle::task_wait_cluster), and fire-and-forget
//! with the result to `on_finish`: [`Handle::task_cluster`](crate::Handle::task_cluster)).
//!
//! - `task_cluster`: the caller's request map holds a [`Waiter::Finish`] instead of a
//!   oneshot (inserted before the `XADD`, removed if it fails); its reply goes to the worker's
//!   finisher task ([`Cluster::serve_finish`]), which runs `on_finish` as for a local task.
//!
//! - The caller (any worker of any node) `XADD`s the encoded task to `{prefix}:tasks` with
//!   its reply channel (`{prefix}:reply:{node}:{pid}`, one per worker process, subscribed
//!   before the first task is queued) and a request id, then awaits the result on that
//!   channel, keyed by the request id.
//! - Worker 0 of every node that has task workers reads the stream in the group
//!   `{prefix}:workers` as consumer `{node}` (`XREADGROUP ... BLOCK`), at most as many
//!   entries at a time as the node has task workers, and hands each to its local task
//!   workers. With the result it `PUBLISH`es the reply, then `XACK`s and `XDEL`s the entry: a
//!   task is acknowledged only once its result was handed to Redis.
//! - Every third of `task_claim_timeout` the node resets the idle time of the entries it is
//!   running (`XCLAIM ... JUSTID`), and takes over (`XAUTOCLAIM`) entries that another
//!   consumer has held longer than `task_claim_timeout` without a word — those of a node
//!   that died or lost Redis — and runs them again. So a task runs at least once; its caller
//!   takes the first result and drops the others.
//! - Redis down: the caller gets [`ClusterError::Unavailable`] (the `XADD` failed, or the
//!   reply subscription was lost while it waited), never a silent loss; the consumer
//!   reconnects with backoff and recreates the group if Redis came back empty.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::StreamExt;
use parking_lot::Mutex;
use redis::Value;
use tokio::sync::{mpsc, oneshot, watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::{config, next, Cluster, BACKOFF_MIN};
use crate::base::task::Outcome;
use crate::base::{ClusterError, TaskId, TaskResult};
use crate::runtime::app::{catch_panic, Ctx, FinishCb};
use crate::runtime::holds::{self, Hold};
use crate::runtime::task_client::{SubmitError, TaskClient};

/// Set in the id of every `task_cluster` (never in a local task's id, whose counter would
/// need 2^47 tasks of one worker to reach it).
pub(crate) const CLUSTER_TASK_BIT: u64 = 1 << 47;

/// How long the consumer's `XREADGROUP` blocks before it looks again.
const BLOCK_MS: u64 = 500;

/// What came back for a cluster task.
#[derive(Debug)]
pub(crate) enum Reply {
    /// The encoded result.
    Done(Bytes),
    /// `on_task` failed (panicked, or its result could not be encoded).
    Failed(String),
    /// The task worker that ran it died.
    Died,
}

/// Why a cluster task has no reply.
#[derive(Debug)]
pub(crate) enum WaitError {
    Cluster(ClusterError),
    Timeout,
}

/// Who waits for a reply.
#[derive(Debug)]
pub(super) enum Waiter {
    /// A caller awaiting it (`task_wait_cluster`, a connection operation).
    Wait(oneshot::Sender<Reply>),
    /// A `task_cluster`: the reply goes to `on_finish`.
    Finish(Finishing),
}

/// A `task_cluster` whose result `on_finish` gets.
#[derive(Debug)]
pub(super) struct Finishing {
    id: TaskId,
    payload: Bytes,
    /// The connection whose event queued it is owed the `on_finish`.
    hold: Option<Hold>,
}

/// A worker's side of the replies: its channel, and the callers waiting on it.
#[derive(Debug)]
pub(crate) struct Replies {
    pub(super) channel: String,
    pub(super) next: AtomicU64,
    started: AtomicBool,
    /// Whether the reply subscription holds.
    up: watch::Sender<bool>,
    pub(super) waiting: Mutex<HashMap<u64, Waiter>>,
    /// Results for `on_finish`, to the worker's finisher task ([`Cluster::serve_finish`]).
    finished: mpsc::UnboundedSender<(Finishing, Outcome)>,
    finished_rx: Mutex<Option<mpsc::UnboundedReceiver<(Finishing, Outcome)>>>,
    /// Whether the application registered `on_finish` (`task_cluster` needs it).
    has_on_finish: AtomicBool,
    /// `task_cluster`s handed to the finisher whose `on_finish` has not finished.
    finishing: AtomicUsize,
    /// A `task_cluster` ended or its `on_finish` finished.
    changed: Notify,
}

impl Replies {
    pub(crate) fn new(prefix: &str, node: &str) -> Replies {
        let (finished, rx) = mpsc::unbounded_channel();
        Replies {
            channel: format!("{prefix}:reply:{node}:{}", std::process::id()),
            next: AtomicU64::new(1),
            started: AtomicBool::new(false),
            up: watch::Sender::new(false),
            waiting: Mutex::new(HashMap::new()),
            finished,
            finished_rx: Mutex::new(Some(rx)),
            has_on_finish: AtomicBool::new(false),
            finishing: AtomicUsize::new(0),
            changed: Notify::new(),
        }
    }

    /// Hands a reply to whoever waits for request `id` (nobody: a duplicate, dropped).
    fn deliver(&self, id: u64, reply: Reply) {
        let w = self.waiting.lock().remove(&id);
        match w {
            Some(Waiter::Wait(tx)) => {
                let _ = tx.send(reply);
            }
            Some(Waiter::Finish(f)) => {
                let outcome = match reply {
                    Reply::Done(b) => Outcome::Done(b),
                    Reply::Failed(why) => Outcome::Failed(why),
                    Reply::Died => Outcome::Died,
                };
                self.finish(f, outcome);
            }
            None => {}
        }
    }

    fn finish(&self, f: Finishing, outcome: Outcome) {
        self.finishing.fetch_add(1, Relaxed);
        if self.finished.send((f, outcome)).is_err() {
            self.finishing.fetch_sub(1, Relaxed);
        }
        self.changed.notify_waiters();
    }

    /// Ends every waiter: callers see their channel closed, each `task_cluster` gets
    /// `on_finish` with `outcome`.
    fn end_all(&self, outcome: impl Fn() -> Outcome) {
        let all: Vec<Waiter> = self.waiting.lock().drain().map(|(_, w)| w).collect();
        for w in all {
            if let Waiter::Finish(f) = w {
                self.finish(f, outcome());
            }
        }
    }
}

/// Removes a caller's entry when it stops waiting (result, timeout, or dropped future).
pub(super) struct Forget<'a>(pub(super) &'a Replies, pub(super) u64);

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.0.waiting.lock().remove(&self.1);
    }
}

pub(super) fn encode_reply(id: u64, r: &Reply) -> Vec<u8> {
    let mut m = BytesMut::with_capacity(9);
    m.put_u64_le(id);
    match r {
        Reply::Done(b) => {
            m.put_u8(0);
            m.put_slice(b);
        }
        Reply::Failed(why) => {
            m.put_u8(1);
            m.put_slice(why.as_bytes());
        }
        Reply::Died => m.put_u8(2),
    }
    m.to_vec()
}

fn decode_reply(p: &[u8]) -> Option<(u64, Reply)> {
    let id = u64::from_le_bytes(p.get(..8)?.try_into().ok()?);
    let body = p.get(9..).unwrap_or_default();
    let r = match p.get(8)? {
        0 => Reply::Done(Bytes::copy_from_slice(body)),
        1 => Reply::Failed(String::from_utf8_lossy(body).into_owned()),
        2 => Reply::Died,
        _ => return None,
    };
    Some((id, r))
}

impl Cluster {
    fn tasks_key(&self) -> String {
        format!("{}:tasks", self.settings.prefix)
    }

    fn group(&self) -> String {
        format!("{}:workers", self.settings.prefix)
    }

    /// Queues `payload` (an encoded task) to the cluster and waits until `deadline` for its
    /// result from whichever node runs it.
    pub(crate) async fn task_wait(
        self: &Arc<Self>,
        payload: Bytes,
        deadline: Instant,
    ) -> Result<Reply, WaitError> {
        self.replies_up(deadline).await?;
        let r = &self.replies;
        let id = r.next.fetch_add(1, Relaxed);
        let (tx, rx) = oneshot::channel();
        r.waiting.lock().insert(id, Waiter::Wait(tx));
        let _forget = Forget(r, id);
        self.queue_task(id, &payload)
            .await
            .map_err(WaitError::Cluster)?;
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) => Err(WaitError::Cluster(ClusterError::Unavailable(
                "lost the subscription for task results (redis down or restarting)".into(),
            ))),
            Err(_) => Err(WaitError::Timeout),
        }
    }

    /// Adds a task to the cluster's stream: its payload, and where and under which request
    /// id its result goes back (this worker's reply channel).
    async fn queue_task(&self, req: u64, payload: &[u8]) -> Result<String, ClusterError> {
        let mut con = self.con().await?;
        let added: redis::RedisResult<String> = redis::cmd("XADD")
            .arg(self.tasks_key())
            .arg("*")
            .arg("r")
            .arg(&self.replies.channel)
            .arg("i")
            .arg(req)
            .arg("d")
            .arg(payload)
            .query_async(&mut con)
            .await;
        self.req(added).await
    }

    /// `task_cluster`: queues `payload` (an encoded task) to the cluster and returns its id
    /// once Redis has it; the result goes to `on_finish` of this worker when it comes back.
    /// `hold`: the connection owed that `on_finish`.
    pub(crate) async fn task_finish(
        self: &Arc<Self>,
        worker: usize,
        payload: Bytes,
        hold: Option<Hold>,
    ) -> Result<TaskId, ClusterError> {
        self.replies_up(Instant::now() + Duration::from_secs(2))
            .await
            .map_err(|e| match e {
                WaitError::Cluster(e) => e,
                WaitError::Timeout => ClusterError::Unavailable("redis did not answer".into()),
            })?;
        let r = &self.replies;
        let req = r.next.fetch_add(1, Relaxed);
        let id =
            TaskId(((worker as u64) << 48) | CLUSTER_TASK_BIT | (req & (CLUSTER_TASK_BIT - 1)));
        let f = Finishing {
            id,
            payload: payload.clone(),
            hold,
        };
        // Waiting before the XADD: the result may come back before it returns.
        r.waiting.lock().insert(req, Waiter::Finish(f));
        let added = self.queue_task(req, &payload).await;
        match added {
            Ok(_) => {
                r.changed.notify_waiters();
                Ok(id)
            }
            Err(e) => {
                // Not queued: the caller gets the error (and its payload), no on_finish.
                r.waiting.lock().remove(&req);
                Err(e)
            }
        }
    }

    /// Whether `on_finish` is registered (`task_cluster` needs it).
    pub(crate) fn has_on_finish(&self) -> bool {
        self.replies.has_on_finish.load(Relaxed)
    }

    /// Starts this worker's finisher: it runs `on_finish` for each `task_cluster` result.
    pub(crate) fn serve_finish(self: &Arc<Self>, ctx: &Ctx, on_finish: Option<FinishCb>) {
        let Some(cb) = on_finish else { return };
        let Some(mut rx) = self.replies.finished_rx.lock().take() else {
            return;
        };
        self.replies.has_on_finish.store(true, Relaxed);
        let (c, ctx) = (self.clone(), ctx.clone());
        tokio::task::spawn_local(async move {
            while let Some((f, outcome)) = rx.recv().await {
                let Finishing { id, payload, hold } = f;
                let r = TaskResult {
                    id,
                    task_worker: 0,
                    payload,
                    outcome,
                };
                let (cb, h, c) = (cb.clone(), ctx.clone(), c.clone());
                let conn = hold.as_ref().map(|h| h.fd());
                // As a local task's: part of the origin connection's work.
                tokio::task::spawn_local(holds::in_conn(conn, async move {
                    catch_panic("on_finish", cb(h, id, r)).await;
                    drop(hold);
                    c.replies.finishing.fetch_sub(1, Relaxed);
                    c.replies.changed.notify_waiters();
                }));
            }
        });
    }

    /// No `task_cluster` of this worker waits for its result or runs its `on_finish`.
    pub(crate) fn settled(&self) -> bool {
        let r = &self.replies;
        r.finishing.load(Relaxed) == 0
            && !r
                .waiting
                .lock()
                .values()
                .any(|w| matches!(w, Waiter::Finish(_)))
    }

    /// Returns at the next `task_cluster` end or `on_finish` end.
    pub(crate) async fn next_change(&self) {
        self.replies.changed.notified().await
    }

    /// The stopping worker's deadline passed: every `task_cluster` still unanswered gets
    /// `on_finish` with [`TaskError::Timeout`](crate::TaskError::Timeout) (the task may
    /// still run elsewhere; its result finds nobody).
    pub(crate) fn expire(&self) {
        let r = &self.replies;
        let ids: Vec<u64> = r
            .waiting
            .lock()
            .iter()
            .filter(|(_, w)| matches!(w, Waiter::Finish(_)))
            .map(|(&k, _)| k)
            .collect();
        if !ids.is_empty() {
            tracing::warn!(
                tasks = ids.len(),
                "worker stopping: cluster tasks still unanswered; reporting them as timed out"
            );
        }
        for k in ids {
            let w = r.waiting.lock().remove(&k);
            if let Some(Waiter::Finish(f)) = w {
                r.finish(f, Outcome::TimedOut);
            }
        }
    }

    /// Starts this worker's reply subscription (once) and waits for it to hold (at most 2 s,
    /// and not past `deadline`).
    pub(super) async fn replies_up(self: &Arc<Self>, deadline: Instant) -> Result<(), WaitError> {
        if !self.replies.started.swap(true, Relaxed) {
            tokio::task::spawn_local(reply_subscriber(self.clone()));
        }
        let mut up = self.replies.up.subscribe();
        let limit = deadline.min(Instant::now() + Duration::from_secs(2));
        let ok = matches!(
            tokio::time::timeout_at(limit, up.wait_for(|u| *u)).await,
            Ok(Ok(_))
        );
        match ok {
            true => Ok(()),
            false => Err(WaitError::Cluster(ClusterError::Unavailable(
                "cannot subscribe for task results: redis unreachable".into(),
            ))),
        }
    }

    /// Worker 0 of a node with task workers: starts taking the cluster's tasks.
    pub(crate) fn serve_tasks(self: &Arc<Self>, ctx: &Ctx) {
        let Some(tasks) = ctx.tasks.clone() else {
            return;
        };
        let c = Rc::new(Consumer {
            cluster: self.clone(),
            tasks,
            permits: Arc::new(Semaphore::new(ctx.settings.task_worker_num.max(1))),
            running: RefCell::new(HashSet::new()),
        });
        tokio::task::spawn_local(reader(c.clone()));
        tokio::task::spawn_local(keepalive(c));
    }
}

/// The worker's subscription to its reply channel; each reply goes to its waiting caller
/// (a duplicate, from a task that ran twice, finds nobody and is dropped).
async fn reply_subscriber(c: Arc<Cluster>) {
    let r = &c.replies;
    let mut backoff = BACKOFF_MIN;
    loop {
        let ps = async {
            let mut ps = c.client.get_async_pubsub().await?;
            ps.subscribe(&r.channel).await?;
            Ok::<_, redis::RedisError>(ps)
        }
        .await;
        let ps = match ps {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(error = %e, "cluster: reply subscription cannot reach redis");
                tokio::time::sleep(backoff).await;
                backoff = next(backoff);
                continue;
            }
        };
        backoff = BACKOFF_MIN;
        r.up.send_replace(true);
        let mut msgs = ps.into_on_message();
        while let Some(msg) = msgs.next().await {
            match decode_reply(msg.get_payload_bytes()) {
                Some((id, reply)) => r.deliver(id, reply),
                None => tracing::warn!("cluster: malformed task reply ignored"),
            }
        }
        r.up.send_replace(false);
        // Replies published while the subscription is down are lost: tell the callers now.
        r.end_all(|| {
            Outcome::Cluster(
                "lost the subscription for task results (redis down or restarting); the task may still run".into(),
            )
        });
        tracing::warn!("cluster: reply subscription lost; reconnecting");
        tokio::time::sleep(backoff).await;
    }
}

/// A node's consumer of the cluster's tasks (worker 0).
struct Consumer {
    cluster: Arc<Cluster>,
    tasks: Arc<TaskClient>,
    /// One per local task worker: how many entries the node takes at a time.
    permits: Arc<Semaphore>,
    /// Ids of the entries this node runs now (kept alive against `XAUTOCLAIM`).
    running: RefCell<HashSet<String>>,
}

/// A stream entry: its id and, unless it was deleted, (reply channel, request id, task).
struct Entry {
    id: String,
    task: Option<(Vec<u8>, u64, Bytes)>,
}

fn bulk(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b.as_slice()),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

/// The entries of an `[[id, [field, value, ...]], ...]` array.
fn entries(v: &Value) -> Vec<Entry> {
    let Value::Array(items) = v else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items {
        let Value::Array(pair) = item else { continue };
        let Some(id) = pair.first().and_then(bulk) else {
            continue;
        };
        let id = String::from_utf8_lossy(id).into_owned();
        let task = match pair.get(1) {
            Some(Value::Array(fields)) => {
                let (mut ch, mut req, mut data) = (None, None, None);
                for kv in fields.chunks(2) {
                    let (Some(k), Some(v)) = (kv.first().and_then(bulk), kv.get(1).and_then(bulk))
                    else {
                        continue;
                    };
                    match k {
                        b"r" => ch = Some(v.to_vec()),
                        b"i" => req = std::str::from_utf8(v).ok().and_then(|s| s.parse().ok()),
                        b"d" => data = Some(Bytes::copy_from_slice(v)),
                        _ => {}
                    }
                }
                match (ch, req, data) {
                    (Some(c), Some(r), Some(d)) => Some((c, r, d)),
                    _ => {
                        tracing::warn!(entry = %id, "cluster: malformed task entry dropped");
                        None
                    }
                }
            }
            _ => None,
        };
        out.push(Entry { id, task });
    }
    out
}

/// Creates the consumer group (from the stream's start) unless it exists.
async fn ensure_group(
    c: &Cluster,
    con: &mut redis::aio::MultiplexedConnection,
) -> redis::RedisResult<()> {
    let r: redis::RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(c.tasks_key())
        .arg(c.group())
        .arg("0")
        .arg("MKSTREAM")
        .query_async(con)
        .await;
    match r {
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        r => r,
    }
}

/// While the node has a free task worker: every third of `task_claim_timeout` takes over
/// entries idle longer than `task_claim_timeout` (a dead node's), else reads new entries;
/// runs what it got.
async fn reader(s: Rc<Consumer>) {
    let c = &s.cluster;
    let node = c.node().to_string();
    let mut con: Option<redis::aio::MultiplexedConnection> = None;
    let mut backoff = BACKOFF_MIN;
    let claim_every = claim_every(c);
    let mut last_claim = Instant::now();
    loop {
        let Ok(first) = s.permits.clone().acquire_owned().await else {
            return;
        };
        if con.is_none() {
            let made = async {
                let mut k = c
                    .client
                    .get_multiplexed_async_connection_with_config(&config())
                    .await?;
                ensure_group(c, &mut k).await?;
                Ok::<_, redis::RedisError>(k)
            }
            .await;
            match made {
                Ok(k) => {
                    tracing::info!(node = %node, "cluster: taking cluster tasks");
                    con = Some(k);
                    backoff = BACKOFF_MIN;
                }
                Err(e) => {
                    tracing::debug!(node = %node, error = %e, "cluster: task reader cannot reach redis");
                    drop(first);
                    tokio::time::sleep(backoff).await;
                    backoff = next(backoff);
                    continue;
                }
            }
        }
        let Some(k) = con.as_mut() else { continue };
        let count = 1 + s.permits.available_permits();
        if last_claim.elapsed() >= claim_every {
            last_claim = Instant::now();
            match autoclaim(c, k, count).await {
                Ok(got) if !got.is_empty() => {
                    let mut first = Some(first);
                    for e in got {
                        tracing::info!(node = %node, entry = %e.id, "cluster: took over a task held too long by another node");
                        let permit = first
                            .take()
                            .or_else(|| s.permits.clone().try_acquire_owned().ok());
                        tokio::task::spawn_local(run(s.clone(), e, permit));
                    }
                    continue;
                }
                Ok(_) => {}
                Err(e) if e.code() == Some("NOGROUP") => {} // the read below recreates it
                Err(e) => {
                    tracing::debug!(node = %node, error = %e, "cluster: task reader lost redis");
                    con = None;
                    continue;
                }
            }
        }
        let r: redis::RedisResult<Value> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(c.group())
            .arg(&node)
            .arg("COUNT")
            .arg(count)
            .arg("BLOCK")
            .arg(BLOCK_MS)
            .arg("STREAMS")
            .arg(c.tasks_key())
            .arg(">")
            .query_async(k)
            .await;
        match r {
            Ok(v) => {
                // [[stream, entries]] (nil when nothing came).
                let got: Vec<Entry> = match &v {
                    Value::Array(streams) => streams
                        .iter()
                        .filter_map(|st| match st {
                            Value::Array(p) => p.get(1).map(entries),
                            _ => None,
                        })
                        .flatten()
                        .collect(),
                    _ => Vec::new(),
                };
                let mut first = Some(first);
                for e in got {
                    let permit = first
                        .take()
                        .or_else(|| s.permits.clone().try_acquire_owned().ok());
                    tokio::task::spawn_local(run(s.clone(), e, permit));
                }
            }
            Err(e) if e.code() == Some("NOGROUP") => {
                // Redis came back empty: the stream and group are gone.
                if let Err(e) = ensure_group(c, k).await {
                    tracing::debug!(node = %node, error = %e, "cluster: cannot recreate the task group");
                    con = None;
                }
            }
            Err(e) => {
                tracing::debug!(node = %node, error = %e, "cluster: task reader lost redis");
                con = None;
                drop(first);
                tokio::time::sleep(backoff).await;
                backoff = next(backoff);
            }
        }
    }
}

/// Adds to `p` the acknowledgement and deletion of stream entry `id` (it is done with).
fn ack_and_delete<'p>(
    p: &'p mut redis::Pipeline,
    c: &Cluster,
    id: &str,
) -> &'p mut redis::Pipeline {
    p.cmd("XACK")
        .arg(c.tasks_key())
        .arg(c.group())
        .arg(id)
        .ignore()
        .cmd("XDEL")
        .arg(c.tasks_key())
        .arg(id)
        .ignore()
}

/// Runs one entry on a local task worker; publishes the reply, then acknowledges and deletes
/// the entry. If this node cannot run it (stopping) or cannot publish, the entry stays
/// pending and another node takes it over after `task_claim_timeout`.
async fn run(s: Rc<Consumer>, e: Entry, permit: Option<OwnedSemaphorePermit>) {
    let c = &s.cluster;
    let Some((channel, req, data)) = e.task else {
        // Deleted, or malformed: nothing to run; acknowledge it so it does not come back.
        if let Ok(mut con) = c.con().await {
            let r: redis::RedisResult<()> = ack_and_delete(&mut redis::pipe(), c, &e.id)
                .query_async(&mut con)
                .await;
            let _ = c.req(r).await;
        }
        return;
    };
    s.running.borrow_mut().insert(e.id.clone());
    let reply = match s.tasks.submit_wait(data) {
        Ok((rx, _)) => match rx.await {
            Ok(Outcome::Done(b)) => Some(Reply::Done(b)),
            Ok(Outcome::Failed(why)) => Some(Reply::Failed(why)),
            Ok(Outcome::Died) => Some(Reply::Died),
            Ok(Outcome::NotRun | Outcome::TimedOut | Outcome::Cluster(_)) | Err(_) => None,
        },
        Err(SubmitError::TooLarge) => Some(Reply::Failed(
            "the task is above task_max_payload of the node that took it".into(),
        )),
        Err(SubmitError::Full | SubmitError::NoSuchWorker | SubmitError::Stopped) => None,
    };
    s.running.borrow_mut().remove(&e.id);
    drop(permit);
    let Some(reply) = reply else {
        tracing::warn!(node = %c.node(), entry = %e.id, "cluster: task not run here (stopping or full); another node takes it over after task_claim_timeout");
        return;
    };
    let sent = async {
        let mut con = c.con().await?;
        let mut p = redis::pipe();
        p.publish(&channel[..], encode_reply(req, &reply)).ignore();
        let r: redis::RedisResult<()> =
            ack_and_delete(&mut p, c, &e.id).query_async(&mut con).await;
        c.req(r).await
    }
    .await;
    if let Err(err) = sent {
        tracing::warn!(node = %c.node(), entry = %e.id, error = %err, "cluster: task result not delivered; the task stays pending and runs again after task_claim_timeout");
    }
}

/// How often the consumer keeps its running entries alive and looks for abandoned ones.
fn claim_every(c: &Cluster) -> Duration {
    (c.settings.task_claim_timeout / 3).max(Duration::from_millis(30))
}

/// Takes over up to `count` entries idle longer than `task_claim_timeout`.
async fn autoclaim(
    c: &Cluster,
    con: &mut redis::aio::MultiplexedConnection,
    count: usize,
) -> redis::RedisResult<Vec<Entry>> {
    let v: Value = redis::cmd("XAUTOCLAIM")
        .arg(c.tasks_key())
        .arg(c.group())
        .arg(c.node())
        .arg(c.settings.task_claim_timeout.as_millis() as u64)
        .arg("0-0")
        .arg("COUNT")
        .arg(count)
        .query_async(con)
        .await?;
    // [next-start, entries, deleted-ids]
    Ok(match &v {
        Value::Array(parts) => parts.get(1).map(entries).unwrap_or_default(),
        _ => Vec::new(),
    })
}

/// Every third of `task_claim_timeout`: resets the idle time of the entries this node runs,
/// so that no other node takes them over while this one lives.
async fn keepalive(s: Rc<Consumer>) {
    let c = &s.cluster;
    let mut tick = tokio::time::interval(claim_every(c));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let running: Vec<String> = s.running.borrow().iter().cloned().collect();
        if running.is_empty() {
            continue;
        }
        let Ok(mut con) = c.con().await else { continue };
        let r: redis::RedisResult<Value> = redis::cmd("XCLAIM")
            .arg(c.tasks_key())
            .arg(c.group())
            .arg(c.node())
            .arg(0)
            .arg(&running)
            .arg("JUSTID")
            .query_async(&mut con)
            .await;
        if let Err(e) = c.req(r).await {
            tracing::debug!(node = %c.node(), error = %e, "cluster: cannot keep running tasks alive");
        }
    }
}
