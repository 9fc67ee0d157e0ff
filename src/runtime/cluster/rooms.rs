//! Rooms across nodes (socket.io rooms, Workerman groups): a room is the Redis set
//! `{prefix}:room:{room}` of `node/fd` members; each connection also has the set
//! `{prefix}:rooms:{node}/{fd}` of its rooms, so that it leaves them all when it closes.
//!
//! - `join_room` / `leave_room`: one pipeline (`SADD`/`SREM` on both sets).
//! - `broadcast_to_room`: as `push_to_user` on the room's set: this node's members directly,
//!   other live nodes' through their push channel; members of dead nodes (their heartbeat key
//!   expired) and this node's closed connections are removed on the way (lazily).
//! - A connection that closes: the worker that runs its `on_close` reads its rooms and
//!   removes it from each (one round trip to Redis per closed connection of a cluster node).

use std::sync::Arc;

use bytes::Bytes;

use super::Cluster;
use crate::base::{ClusterError, ConnId};
use crate::runtime::app::Ctx;

impl Cluster {
    fn room_key(&self, room: &str) -> String {
        format!("{}:room:{room}", self.settings.prefix)
    }

    fn rooms_of(&self, fd: ConnId) -> String {
        format!(
            "{}:rooms:{}/{}",
            self.settings.prefix, self.settings.node, fd.0
        )
    }

    /// Connection `fd` of this node joins (or leaves) `room`.
    pub(crate) async fn join_room(
        &self,
        fd: ConnId,
        room: &str,
        join: bool,
    ) -> Result<(), ClusterError> {
        let member = format!("{}/{}", self.settings.node, fd.0);
        let op = if join { "SADD" } else { "SREM" };
        let mut con = self.con().await?;
        let r: redis::RedisResult<()> = redis::pipe()
            .cmd(op)
            .arg(self.room_key(room))
            .arg(&member)
            .ignore()
            .cmd(op)
            .arg(self.rooms_of(fd))
            .arg(room)
            .ignore()
            .query_async(&mut con)
            .await;
        self.req(r).await
    }

    /// Sends a WebSocket message to every member of `room` on a live node; how many it was
    /// handed to.
    pub(crate) async fn broadcast_to_room(
        &self,
        ctx: &Ctx,
        room: &str,
        data: Bytes,
        opcode: u8,
    ) -> Result<usize, ClusterError> {
        self.push_to_set(ctx, &self.room_key(room), data, opcode)
            .await
    }

    /// Connection `fd` of this node closed: it leaves its rooms (in the background).
    pub(crate) fn closed(self: &Arc<Self>, fd: ConnId) {
        let c = self.clone();
        tokio::task::spawn_local(async move {
            if let Err(e) = c.leave_all(fd).await {
                tracing::debug!(node = %c.node(), fd = fd.0, error = %e, "cluster: a closed connection's rooms not cleared (removed lazily)");
            }
        });
    }

    async fn leave_all(&self, fd: ConnId) -> Result<(), ClusterError> {
        let key = self.rooms_of(fd);
        let mut con = self.con().await?;
        let rooms: redis::RedisResult<Vec<String>> =
            redis::cmd("SMEMBERS").arg(&key).query_async(&mut con).await;
        let rooms = self.req(rooms).await?;
        if rooms.is_empty() {
            return Ok(());
        }
        let member = format!("{}/{}", self.settings.node, fd.0);
        let mut pipe = redis::pipe();
        for room in &rooms {
            pipe.srem(self.room_key(room), &member).ignore();
        }
        pipe.del(&key).ignore();
        let r: redis::RedisResult<()> = pipe.query_async(&mut con).await;
        self.req(r).await
    }
}
