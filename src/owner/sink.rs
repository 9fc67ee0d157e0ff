//! The slot where the process that owns a connection plugs in: what the connection task
//! hands over (events) and what it asks (back-pressure, busy).

use std::sync::Arc;

use bytes::Bytes;

use super::conn::Conn;
use crate::ipc::Kind;

/// Receives what a connection task produces: the handler slot of the socket owner. The
/// runtime fills it (the master's reactor in Process mode, a worker's dispatcher in Base
/// mode); this layer never names what is behind it.
pub(crate) trait EventSink: 'static {
    /// What the sink keeps in each connection (the reactor's dispatch bookkeeping; nothing in
    /// Base mode).
    type State: Default + Send + Sync + 'static;
    /// The connection was accepted.
    fn connected(&self, conn: &Arc<Conn<Self::State>>);
    /// A message arrived (one read, or one frame when framing is on).
    fn data(&self, conn: &Arc<Conn<Self::State>>, data: Bytes);
    /// A protocol event (HTTP request parts) of the given kind.
    fn event(&self, conn: &Arc<Conn<Self::State>>, kind: Kind, payload: Bytes) {
        self.stream_event(conn, 0, kind, payload);
    }
    /// A protocol event of HTTP/2 stream `stream` (0: not HTTP/2): the stream travels with
    /// the event, the worker's answer comes back tagged with it ([`Conn::write_h2`]).
    fn stream_event(&self, conn: &Arc<Conn<Self::State>>, stream: u32, kind: Kind, payload: Bytes);
    /// A whole HTTP request. By default it travels as an `HttpRequest` event; a sink in the
    /// same process as the handler (Base mode) keeps the parsed head instead.
    fn http_request(
        &self,
        conn: &Arc<Conn<Self::State>>,
        head: rswoole_codec::http1::RequestHead,
        body: Bytes,
    ) {
        self.stream_request(conn, 0, head, body);
    }
    /// A whole HTTP request of HTTP/2 stream `stream` (0: not HTTP/2).
    fn stream_request(
        &self,
        conn: &Arc<Conn<Self::State>>,
        stream: u32,
        head: rswoole_codec::http1::RequestHead,
        body: Bytes,
    ) {
        self.stream_event(
            conn,
            stream,
            Kind::HttpRequest,
            super::http::request_payload(&head, &body),
        );
    }
    /// Whether the connection must stop reading for now (its events are not consumed fast
    /// enough downstream). Default: never.
    fn backlogged(&self, _conn: &Arc<Conn<Self::State>>) -> bool {
        false
    }
    /// Whether HTTP/2 stream `stream`'s events are not consumed fast enough: its request
    /// body's flow-control window is not reopened meanwhile. Default: as
    /// [`backlogged`](Self::backlogged).
    fn stream_backlogged(&self, conn: &Arc<Conn<Self::State>>, _stream: u32) -> bool {
        self.backlogged(conn)
    }
    /// Whether events of the connection are still being handled (dispatched and not
    /// finished). Default: never.
    fn busy(&self, _conn: &Arc<Conn<Self::State>>) -> bool {
        false
    }
    /// The connection is over (peer FIN, error, or server close after flush). Called once. The
    /// sink must call [`Conn::close_done`] after the application's `on_close` ran.
    fn closed(&self, conn: &Arc<Conn<Self::State>>);
}
