//! Layer 3, the socket owner: client connections and what turns their bytes into events.
//!
//! Whoever owns a client socket (the master's reactor threads in Process mode, each worker in
//! Base mode) runs a [`conn::Conn`] task per connection. The task reads, decodes with the
//! codec crate's I/O-free state machines ([`inbound`]: raw, stream framing, [`http`],
//! [`ws`]), hands events to an [`sink::EventSink`] and writes what comes back. The sink is the
//! handler slot this layer defines and the runtime fills; nothing here names the runtime or
//! the public API. Imports: `base`, `ipc`.
//!
//! - [`conn`]: one connection: its output buffer, half-close, the close life cycle.
//! - [`flusher`]: writes broadcast output once per scheduler turn for every connection.
//! - [`table`]: the connections of a process, by id.
//! - [`accept`]: ids, `max_connection`, listener options and the one accept loop.
//! - [`h2`]: HTTP/2 (prior knowledge or ALPN) over the connection's transport.
//! - [`h2resp`]: the structured responses of HTTP/2 streams (and their pipe record, I/O-free).
//! - [`handover`]: a connection's state as moved to a new master on upgrade (I/O-free).
//! - [`heartbeat`]: closing idle connections.
//! - [`tls`]: a TLS listener's rustls config and live certificate.
//! - [`trim`]: giving memory back to the kernel after bursts.

pub(crate) mod accept;
pub(crate) mod conn;
pub(crate) mod flusher;
pub(crate) mod h2;
pub(crate) mod h2resp;
pub(crate) mod handover;
pub(crate) mod heartbeat;
pub(crate) mod http;
pub(crate) mod inbound;
pub(crate) mod sink;
pub(crate) mod table;
pub(crate) mod tls;
pub(crate) mod trim;
pub(crate) mod ws;
