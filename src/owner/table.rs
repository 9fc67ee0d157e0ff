//! The connections a process owns, by id (sharded, so reactor threads rarely contend).

use std::cell::Cell;
use std::sync::Arc;

use parking_lot::Mutex;

use super::conn::Conn;
use super::flusher::Flusher;
use crate::base::ids::IdMap;
use crate::base::ConnId;

/// Live connections of this process, by id.
#[derive(Debug)]
pub(crate) struct ConnTable<X = ()> {
    shards: Vec<Mutex<IdMap<Arc<Conn<X>>>>>,
    /// Writes the connections' deferred output (broadcasts), see [`Flusher`].
    pub(crate) flusher: Arc<Flusher<X>>,
}

impl<X> ConnTable<X> {
    pub(crate) fn new() -> ConnTable<X> {
        ConnTable {
            shards: (0..32).map(|_| Mutex::new(IdMap::default())).collect(),
            flusher: Arc::new(Flusher::default()),
        }
    }
    fn shard(&self, id: ConnId) -> &Mutex<IdMap<Arc<Conn<X>>>> {
        &self.shards[(id.0 % 32) as usize]
    }
    pub(crate) fn get(&self, id: ConnId) -> Option<Arc<Conn<X>>> {
        self.shard(id).lock().get(&id.0).cloned()
    }
    pub(crate) fn insert(&self, c: Arc<Conn<X>>) {
        self.shard(c.id).lock().insert(c.id.0, c);
    }
    pub(crate) fn remove(&self, id: ConnId) {
        self.shard(id).lock().remove(&id.0);
    }
    /// Gives back the slots a burst left (see [`super::trim::shrink_map`]): each shard that
    /// is at most a quarter full. On the release check's clock, not on the hot path. Returns
    /// the slots given back.
    pub(crate) fn shrink(&self) -> usize {
        self.shards
            .iter()
            .map(|s| super::trim::shrink_map(&mut s.lock()))
            .sum()
    }
    pub(crate) fn all(&self) -> Vec<Arc<Conn<X>>> {
        self.shards
            .iter()
            .flat_map(|s| s.lock().values().cloned().collect::<Vec<_>>())
            .collect()
    }

    /// Waits (at most `limit`) until no connection has output queued (the process is about
    /// to exit: what is still queued then is lost).
    pub(crate) async fn flushed(&self, limit: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.all().iter().any(|c| c.has_output()) {
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!("exiting with client output not yet written (slow readers)");
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}

thread_local! {
    /// Base mode: the connection whose input this thread is handing to the application right
    /// now ([`ConnTable::serving`]).
    static SERVING: Cell<Option<Arc<Conn>>> = const { Cell::new(None) };
}

/// The connection being served on this thread ([`ConnTable::serving`]), until this is dropped.
#[must_use = "the connection is served only until the guard is dropped"]
pub(crate) struct Serving(Option<Arc<Conn>>);

impl Drop for Serving {
    fn drop(&mut self) {
        // (`with`: `LocalKey::set` goes through a lazy-init path.)
        let prev = self.0.take();
        SERVING.with(|s| s.set(prev));
    }
}

impl ConnTable {
    /// Makes `conn` this thread's connection being served until the guard is dropped (then
    /// the one before is again): around the synchronous hand-over of `conn`'s input to the
    /// application (Base mode: the connection task calling the dispatcher), so that a reply
    /// to it made in that call ([`ConnTable::with`]) finds it without the table's lookup (a
    /// shard lock, a hash, an `Arc` clone). A guard rather than a closure: the event (an HTTP
    /// request's head, a few hundred bytes) is not moved once more into one.
    pub(crate) fn serving(conn: &Arc<Conn>) -> Serving {
        Serving(SERVING.with(|s| s.replace(Some(conn.clone()))))
    }

    /// Runs `f` with connection `id` of this table (`None`: not here): the connection being
    /// served on this thread ([`ConnTable::serving`]) when it is that one, else the table's.
    pub(crate) fn with<R>(&self, id: ConnId, f: impl FnOnce(Option<&Arc<Conn>>) -> R) -> R {
        // Taken out while `f` runs (a lookup nested in it goes to the table), then put back.
        let cur = SERVING.with(|s| s.take());
        let r = match &cur {
            Some(c) if c.id == id && c.flushed_by(&self.flusher) => f(Some(c)),
            _ => f(self.get(id).as_ref()),
        };
        SERVING.with(|s| s.set(cur));
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection of `table` (its flusher) with id `id`, not inserted, and its client end.
    async fn conn_of(table: &ConnTable, id: u64) -> (Arc<Conn>, std::net::TcpStream) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, remote) = l.accept().await.unwrap();
        let conn = Arc::new(Conn::new(
            ConnId(id),
            0,
            remote,
            s,
            crate::ipc::shared::Shared::new(1, 16).unwrap(),
            1 << 20,
            table.flusher.clone(),
            None,
        ));
        (conn, c)
    }

    /// While a connection is being served, a lookup of its id in its own table is that
    /// connection, without the table (here it is not even in it); any other lookup (another
    /// id, the same id in another table, one nested in the first, one after the serving) is
    /// the table's.
    #[tokio::test]
    async fn the_connection_being_served_is_found_without_the_table() {
        let (t, other) = (ConnTable::new(), ConnTable::new());
        let (served, _c1) = conn_of(&t, 1).await;
        let (two, _c2) = conn_of(&t, 2).await;
        t.insert(two.clone());
        let (elsewhere, _c3) = conn_of(&other, 1).await;
        other.insert(elsewhere.clone());
        let found = |t: &ConnTable, id| t.with(ConnId(id), |c| c.cloned());
        {
            let _serving = ConnTable::serving(&served);
            let got = found(&t, 1).expect("the connection being served");
            assert!(Arc::ptr_eq(&got, &served));
            assert!(Arc::ptr_eq(&found(&t, 2).expect("in the table"), &two));
            assert!(Arc::ptr_eq(
                &found(&other, 1).expect("in the other table"),
                &elsewhere
            ));
            // Nested: the served connection is lent out to the outer lookup meanwhile.
            t.with(ConnId(1), |c| {
                assert!(c.is_some_and(|c| Arc::ptr_eq(c, &served)));
                assert!(found(&t, 1).is_none(), "nested lookups go to the table");
            });
            assert!(found(&t, 1).is_some(), "put back after a lookup");
        }
        assert!(found(&t, 1).is_none(), "not served any more");
        // The served connection is not kept alive by the thread.
        assert_eq!(Arc::strong_count(&served), 1);
    }
}
