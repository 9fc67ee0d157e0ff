//! Layer 1, plain types: ids, errors, settings, events and counters that every other layer
//! shares. Nothing here needs a process, a socket or a runtime; this module imports nothing
//! from the rest of the crate.

pub(crate) mod arena;
pub(crate) mod error;
pub(crate) mod ids;
pub(crate) mod info;
pub(crate) mod names;
pub(crate) mod settings;
pub(crate) mod task;

pub use error::{ClusterError, ConnError, Error, Result, SendError, TimerError};
pub use ids::{ClusterConnId, ConnId, SockType, TaskId, TimerId};
pub use info::{
    CallbackResult, ClusterNode, ConnectionInfo, MasterInfo, Packet, ReceiveEvent, Stats,
};
pub use settings::admin::{AccessLogFormat, AdminSettings};
pub use settings::cluster::ClusterSettings;
pub use settings::http::{Http2Settings, HttpSettings};
pub use settings::websocket::WebSocketSettings;
pub use settings::{DispatchMode, Mode, Settings};
pub use task::{TaskError, TaskResult};
