//! Base mode: the worker accepts on its own `SO_REUSEPORT` listeners and feeds its own
//! connections' events straight into its dispatcher ([`LocalSink`]). The accept loop is the
//! one the master uses ([`crate::owner::accept::accept_loop`]).

use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;

use super::dispatcher::{Dispatcher, WEv};
use crate::base::{ConnId, Settings, SockType};
use crate::ipc::shared::Shared;
use crate::ipc::{encode_packet, Kind};
use crate::owner::accept::{accept_loop, reuseport_listener, Ids};
use crate::owner::conn::{Conn, Ended, Reviver, Start};
use crate::owner::inbound::ConnConfig;
use crate::owner::sink::EventSink;
use crate::owner::table::ConnTable;
use crate::runtime::master::Bound;

/// A connection stops reading while more than this many bytes of its events wait in the
/// dispatcher (as a Process-mode connection does past `PIPE_BACKLOG_LIMIT` unacknowledged):
/// a handler slower than its client (a large upload streamed to a service that reads it
/// slowly) does not make the worker buffer what the client sends.
const LOCAL_BACKLOG_LIMIT: usize = 1024 * 1024;

/// Feeds a Base-mode worker's own connections into its dispatcher.
struct LocalSink {
    disp: Rc<Dispatcher>,
}

impl EventSink for LocalSink {
    type State = ();

    fn stream_request(
        &self,
        conn: &Arc<Conn>,
        stream: u32,
        head: rswoole_codec::http1::RequestHead,
        body: Bytes,
    ) {
        // A handler that answers at once writes to `conn` without the table's lookup.
        let _serving = ConnTable::serving(conn);
        self.disp.submit(WEv {
            kind: Kind::HttpRequest,
            fd: conn.id,
            listener: conn.listener,
            payload: body,
            seq: None,
            stream,
            head: Some(head),
        });
    }
    fn busy(&self, conn: &Arc<Conn>) -> bool {
        self.disp.queues.borrow().contains_key(&(conn.id.0, 0))
    }
    fn backlogged(&self, conn: &Arc<Conn>) -> bool {
        self.stream_backlogged(conn, 0)
    }
    fn stream_backlogged(&self, conn: &Arc<Conn>, stream: u32) -> bool {
        // Asked on every turn of every connection task: no queue at all (handlers that answer
        // at once) is the common case, and needs no lookup.
        let q = self.disp.queues.borrow();
        !q.is_empty()
            && q.get(&(conn.id.0, stream)).is_some_and(|q| {
                q.iter().map(|e| e.payload.len()).sum::<usize>() > LOCAL_BACKLOG_LIMIT
            })
    }
    fn connected(&self, conn: &Arc<Conn>) {
        self.disp.submit(WEv {
            kind: Kind::Connect,
            fd: conn.id,
            listener: conn.listener,
            payload: Bytes::new(),
            seq: None,
            stream: 0,
            head: None,
        });
    }
    fn data(&self, conn: &Arc<Conn>, data: Bytes) {
        // An `on_receive` that replies at once writes to `conn` without the table's lookup.
        let _serving = ConnTable::serving(conn);
        self.disp.submit_receive(conn.id, conn.listener, data);
    }
    fn stream_event(&self, conn: &Arc<Conn>, stream: u32, kind: Kind, payload: Bytes) {
        // WebSocket messages: a handler that pushes at once finds `conn` without a lookup.
        let _serving = ConnTable::serving(conn);
        self.disp.submit(WEv {
            kind,
            fd: conn.id,
            listener: conn.listener,
            payload,
            seq: None,
            stream,
            head: None,
        });
    }
    fn closed(&self, conn: &Arc<Conn>) {
        self.disp.submit(WEv {
            kind: Kind::Close,
            fd: conn.id,
            listener: conn.listener,
            payload: crate::ipc::close_payload(conn.half_closed()),
            seq: None,
            stream: 0,
            head: None,
        });
    }
}

/// Serves listener `b` (number `index`) in worker `id`: UDP datagrams or TCP connections on
/// the worker's own `SO_REUSEPORT` socket. `None`: nothing to serve (a UDP socket it lacks).
#[allow(clippy::too_many_arguments)]
pub(super) fn listen(
    b: &Bound,
    index: usize,
    id: usize,
    shared: &Shared,
    settings: &Arc<Settings>,
    disp: &Rc<Dispatcher>,
    conns: &Arc<ConnTable>,
    framing: ConnConfig,
) -> std::io::Result<Option<tokio::task::JoinHandle<()>>> {
    match b.kind {
        SockType::Udp => {
            let Some(u) = &b.udp else { return Ok(None) };
            let sock = tokio::net::UdpSocket::from_std(u.try_clone()?)?;
            let disp = disp.clone();
            Ok(Some(tokio::task::spawn_local(async move {
                let mut buf = vec![0u8; 65536];
                loop {
                    match sock.recv_from(&mut buf).await {
                        Ok((n, from)) => disp.submit(WEv {
                            kind: Kind::Packet,
                            fd: ConnId(0),
                            listener: index as u16,
                            payload: encode_packet(from, &buf[..n]),
                            seq: None,
                            stream: 0,
                            head: None,
                        }),
                        Err(e) => tracing::debug!(error = %e, "udp recv"),
                    }
                }
            })))
        }
        SockType::Tcp => {
            // An inherited listening socket (systemd) is shared by every worker: one accept
            // queue; otherwise each worker has its own SO_REUSEPORT listener.
            let std_listener = match (&b.tcp, b.shared_accept) {
                (Some(s), true) => s.try_clone()?.into(),
                _ => reuseport_listener(b.addr)?,
            };
            let listener = tokio::net::TcpListener::from_std(std_listener)?;
            let tasks = Rc::new(ConnTasks {
                sink: Rc::new(LocalSink { disp: disp.clone() }),
                conns: conns.clone(),
                shared: shared.clone(),
                framing: Rc::new(framing),
                revived: revived(),
            });
            // Parked connections woken up (from the I/O driver or a write) get a task again
            // here: the reviver only queues them, since tasks of this worker are `!Send`.
            tokio::task::spawn_local({
                let tasks = tasks.clone();
                async move {
                    loop {
                        tasks.revived.0 .1.notified().await;
                        let woken = std::mem::take(&mut *tasks.revived.0 .0.lock());
                        for conn in woken {
                            tasks.spawn(conn, Start::Unparked);
                        }
                    }
                }
            });
            let shared = shared.clone();
            let cap = settings.buffer_output_size;
            let workers = settings.worker_num as u64;
            let conns = conns.clone();
            Ok(Some(tokio::task::spawn_local(async move {
                let ids = Ids {
                    counter: &shared.worker(id).next_seq,
                    first: id as u64 + 1,
                    stride: workers,
                };
                let accepting = accept_loop(
                    listener,
                    index,
                    &shared,
                    ids,
                    |_| id as u32,
                    id as u32,
                    &conns,
                    cap,
                    tasks.framing.tls.clone(),
                    |conn| tasks.spawn(conn, Start::Fresh),
                );
                // After an upgrade handed the port to a new server, stop accepting (the
                // listener closes; its connections go on) so that this worker drains.
                tokio::select! {
                    _ = accepting => {}
                    _ = until_draining(&shared) => {
                        tracing::info!(worker = id, "draining: no longer accepting");
                    }
                }
            })))
        }
    }
}

/// Parked connections to start a task for again, and the notification that there are some.
type RevivedQueue = (parking_lot::Mutex<Vec<Arc<Conn>>>, tokio::sync::Notify);

/// The reviver of a Base worker's parked connections, which queues them for the listener's
/// task, and its queue.
fn revived() -> (Arc<RevivedQueue>, Reviver<()>) {
    let q: Arc<RevivedQueue> = Arc::default();
    let qq = q.clone();
    let revive: Reviver<()> = Arc::new(move |conn| {
        qq.0.lock().push(conn);
        qq.1.notify_one();
    });
    (q, revive)
}

/// What a Base worker's connection tasks of one listener share.
struct ConnTasks {
    sink: Rc<LocalSink>,
    conns: Arc<ConnTable>,
    shared: Shared,
    framing: Rc<ConnConfig>,
    revived: (Arc<RevivedQueue>, Reviver<()>),
}

impl ConnTasks {
    /// Runs `conn`'s task; a connection that ends leaves the table, one that parks stays.
    fn spawn(&self, conn: Arc<Conn>, start: Start) {
        let (sink, conns, shared, framing, revive) = (
            self.sink.clone(),
            self.conns.clone(),
            self.shared.clone(),
            self.framing.clone(),
            self.revived.1.clone(),
        );
        tokio::task::spawn_local(async move {
            let cid = conn.id;
            match conn.run_from(sink, &framing, start, &revive).await {
                Ended::Parked => {}
                // Base workers hand nothing over: a move ends the connection here too.
                Ended::Done | Ended::Moved(_) => {
                    conns.remove(cid);
                    shared.free(cid);
                }
            }
        });
    }
}

/// Resolves once the server drains after an upgrade (the master sets the phase in shm).
async fn until_draining(shared: &Shared) {
    while !shared.draining() {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
