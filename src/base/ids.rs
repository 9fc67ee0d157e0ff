//! Ids and kinds every layer shares: connections, sockets, tasks, timers.

use std::fmt;
/// A task's id: unique among the tasks of one worker process (the worker id is in the top
/// 16 bits, a counter below).
///
/// # Examples
///
/// ```no_run
/// use rswoole::{Server, Settings, TaskId};
///
/// fn main() -> rswoole::Result<()> {
///     let mut server = Server::bind("127.0.0.1:9501")?;
///     server.set(Settings::default().task_worker_num(1));
///     server.on_task(|_srv, task| async move { task.data::<u64>().unwrap_or(0) * 2 });
///     server.on_finish(|_srv, id: TaskId, result| async move {
///         println!("task {id} -> {:?}", result.get::<u64>());
///     });
///     server.on_receive(|srv, ev| async move {
///         let id: TaskId = srv.task(ev.data.len() as u64).map_err(|e| e.to_string())?;
///         srv.send(ev.fd, format!("queued as task {id}\n")).map_err(|e| e.to_string())
///     });
///     server.start()
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(pub u64);

impl TaskId {
    /// Whether this is the id of a cluster task
    /// ([`Handle::task_cluster`](crate::Handle::task_cluster)), as
    /// [`on_finish`](crate::Server::on_finish) gets it (bit 47 set; a local task's never has
    /// it).
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole::TaskId;
    /// assert!(TaskId((1 << 48) | (1 << 47) | 5).is_cluster());
    /// assert!(!TaskId((1 << 48) | 5).is_cluster());
    /// ```
    pub fn is_cluster(&self) -> bool {
        self.0 & (1 << 47) != 0
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A timer's id, from [`Handle::tick`](crate::Handle::tick) / [`Handle::after`](crate::Handle::after); give it to [`Handle::clear`](crate::Handle::clear).
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use rswoole::{Server, TimerId};
///
/// fn main() -> rswoole::Result<()> {
///     let mut server = Server::bind("127.0.0.1:9501")?;
///     server.on_connect(|srv, fd| async move {
///         // Close connections that say nothing within 10 s.
///         let timer: TimerId =
///             srv.after(Duration::from_secs(10), move |srv| async move { srv.close(fd) });
///         println!("{fd}: idle timer {timer:?}");
///     });
///     server.on_receive(|srv, ev| async move { srv.send(ev.fd, ev.data) });
///     server.start()
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerId(pub u64);
/// A connection's id (Swoole's `$fd`): unique for the server's lifetime, never reused, so a
/// `send` to a closed connection fails instead of reaching another client.
///
/// # Examples
///
/// ```
/// use rswoole::ConnId;
/// let fd = ConnId(42);
/// assert_eq!(fd.to_string(), "42"); // as Swoole prints `$fd`
/// assert!(ConnId(1) < fd);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A connection id valid on every node of a cluster
/// ([`Settings::cluster`](crate::Settings::cluster)): the node's name and the connection's
/// [`ConnId`] on that node (ids are never reused on a node, so a stale one fails instead of
/// reaching another client). Written `NODE/FD`; [`FromStr`](std::str::FromStr) reads that
/// form back.
///
/// # Examples
///
/// ```
/// use rswoole::{ClusterConnId, ConnId};
/// let id = ClusterConnId::new("n1", ConnId(42));
/// assert_eq!(id.to_string(), "n1/42");
/// assert_eq!("n1/42".parse::<ClusterConnId>().unwrap(), id);
/// assert!("n1".parse::<ClusterConnId>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClusterConnId {
    /// The node that owns the connection.
    pub node: String,
    /// The connection's id on that node.
    pub fd: ConnId,
}

impl ClusterConnId {
    /// Connection `fd` of node `node`.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole::{ClusterConnId, ConnId};
    /// assert_eq!(ClusterConnId::new("a", ConnId(1)).node, "a");
    /// ```
    pub fn new(node: impl Into<String>, fd: ConnId) -> ClusterConnId {
        ClusterConnId {
            node: node.into(),
            fd,
        }
    }
}

impl fmt::Display for ClusterConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.node, self.fd)
    }
}

impl std::str::FromStr for ClusterConnId {
    type Err = super::error::ClusterError;

    fn from_str(s: &str) -> Result<ClusterConnId, Self::Err> {
        s.rsplit_once('/')
            .and_then(|(n, f)| Some((n, f.parse::<u64>().ok()?)))
            .filter(|(n, _)| !n.is_empty())
            .map(|(n, f)| ClusterConnId::new(n, ConnId(f)))
            .ok_or_else(|| super::error::ClusterError::InvalidId(s.to_string()))
    }
}

/// Socket type of a listener.
///
/// # Examples
///
/// ```
/// use rswoole::{Server, SockType};
/// let mut server = Server::new("127.0.0.1:9501", SockType::Tcp)?;
/// server.add_listener("[::1]:9502", SockType::Udp)?; // UDP over IPv6 on the same server
/// # Ok::<(), rswoole::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SockType {
    /// TCP stream (IPv4 or IPv6, from the address).
    Tcp,
    /// UDP datagrams (IPv4 or IPv6, from the address).
    Udp,
}

impl fmt::Display for TimerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A hasher for maps keyed by connection ids and other `u64` counters: one folded 128-bit
/// multiplication (every output bit depends on every input bit, so ids that share their low
/// bits, as one shard's do, still spread) instead of SipHash, whose flood resistance these keys (chosen by the
/// server, not by clients) do not need. It is on the hot path: every event and every write
/// looks a connection up.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        let m = u128::from(self.0 ^ n) * 0x9E37_79B9_7F4A_7C15;
        self.0 = (m as u64) ^ ((m >> 64) as u64);
    }
}

/// A `HashMap` keyed by `u64` ids, hashed with [`IdHasher`].
pub(crate) type IdMap<V> =
    std::collections::HashMap<u64, V, std::hash::BuildHasherDefault<IdHasher>>;
