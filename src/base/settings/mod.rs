//! Server settings: one struct with documented defaults, validated in `start()` before any
//! process is forked.

use std::path::PathBuf;
use std::time::Duration;

use rswoole_codec::stream::{Framing, StreamConfig};

use super::error::Error;

pub(crate) mod admin;
pub(crate) mod cluster;
pub(crate) mod http;
pub(crate) mod tls;
pub(crate) mod websocket;

/// Default for [`Settings::buffer_output_size`]: 2 MiB of unsent output per connection.
pub const DEFAULT_BUFFER_OUTPUT_SIZE: usize = 2 * 1024 * 1024;
/// Default for [`Settings::package_max_length`]: 2 MiB per framed message (as Swoole).
pub const DEFAULT_PACKAGE_MAX_LENGTH: usize = 2 * 1024 * 1024;
/// Default upper bound of [`Settings::max_connection`] when it is left at 0: the open-files
/// limit, but no more than this.
pub const DEFAULT_MAX_CONNECTION_CAP: usize = 100_000;
/// Default for [`Settings::max_wait_time`]: how long a stopping worker may take to finish.
pub const DEFAULT_MAX_WAIT_TIME: Duration = Duration::from_secs(3);
/// Default for [`Settings::half_close_timeout`]: how long a connection the client half-closed
/// (sent FIN) stays open for replies the application still owes it. Long enough for the
/// usual task or timer reply, short enough that a reply that never comes does not keep a
/// socket for long. Not tied to `max_wait_time`, which bounds a stop, not a client's wait.
pub const DEFAULT_HALF_CLOSE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default for [`Settings::park_idle_after`]: a connection idle this long waits without a task
/// of its own (about 600 bytes less per idle connection). Long enough that a busy keep-alive
/// or echo connection never parks between two messages (parking and waking again cost a task
/// spawn each).
pub const DEFAULT_PARK_IDLE_AFTER: Duration = Duration::from_secs(1);
/// Largest accepted [`Settings::half_close_timeout`].
pub const MAX_HALF_CLOSE_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// Default for [`Settings::max_request`]: 0, workers are never recycled.
pub const DEFAULT_MAX_REQUEST: u64 = 0;
/// Default for [`Settings::heartbeat_check_interval`]: zero, no idle check.
pub const DEFAULT_HEARTBEAT_CHECK_INTERVAL: Duration = Duration::ZERO;
/// Default for [`Settings::max_redeliveries`]: an event a dead worker left unfinished is sent
/// again at most 3 times.
pub const DEFAULT_MAX_REDELIVERIES: u32 = 3;
/// Default for [`Settings::task_queue_size`]: 1024 unanswered tasks per worker and task worker.
pub const DEFAULT_TASK_QUEUE_SIZE: usize = 1024;
/// Default for [`Settings::task_max_payload`]: 64 MiB per encoded task or result.
pub const DEFAULT_TASK_MAX_PAYLOAD: usize = 64 * 1024 * 1024;

/// Where client connections live.
///
/// # Default
/// [`Mode::Process`].
///
/// # Examples
///
/// ```
/// use rswoole::{Mode, Settings};
/// assert_eq!(Settings::default().mode, Mode::Process);
/// let fastest = Settings::default().mode(Mode::Base);
/// assert_eq!(fastest.mode, Mode::Base);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// The master owns every client socket (reactor threads read, frame and write) and hands
    /// events to workers over unix-socket pipes. A worker that crashes, reloads or is recycled
    /// is replaced and no client connection drops. Swoole's `SWOOLE_PROCESS`.
    #[default]
    Process,
    /// Each worker accepts on its own `SO_REUSEPORT` listener and owns its connections: no IPC
    /// hop, fastest, but a worker's crash drops that worker's connections. `SWOOLE_BASE`.
    Base,
}

/// How the master picks the worker for a connection's events ([`Mode::Process`] only).
///
/// In every mode the events of one connection reach the application in order (a connection
/// with events still in flight keeps going to the same worker), and `on_connect`/`on_close`
/// are always delivered.
///
/// # Default
/// [`DispatchMode::Fixed`] (Swoole's 2).
///
/// # Examples
///
/// ```
/// use rswoole::{DispatchMode, Settings};
/// let s = Settings::default().dispatch_mode(DispatchMode::IpHash);
/// assert_eq!(s.dispatch_mode, DispatchMode::from_swoole(4)?);
/// assert_eq!(DispatchMode::default(), DispatchMode::Fixed);
/// # Ok::<(), rswoole::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DispatchMode {
    /// 1: round robin, event by event.
    RoundRobin,
    /// 2: fixed by connection: every event of a connection goes to the same worker.
    #[default]
    Fixed,
    /// 3: preemptive: the worker with the fewest events in flight.
    Preemptive,
    /// 4: by client IP address: all connections of one IP go to the same worker.
    IpHash,
    /// 5: by user id: once [`Handle::bind`](crate::Handle::bind) gave a connection a `uid`,
    /// its later events go to worker `uid % worker_num`; until then (and for connections never
    /// bound) it behaves as [`Fixed`](DispatchMode::Fixed). Events already in flight when
    /// `bind` runs finish on their worker first, so the switch keeps per-connection order.
    ///
    /// Swoole's modes 7 (stream) and 8 (co_conn_lb) are not implemented: mode 7 has workers
    /// accept from a shared queue, which does not fit a master that owns every socket.
    Uid,
}

impl DispatchMode {
    /// The mode for Swoole's numeric `dispatch_mode` value.
    ///
    /// # Errors
    /// A value rswoole does not implement.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole::{DispatchMode, Error};
    /// assert_eq!(DispatchMode::from_swoole(1)?, DispatchMode::RoundRobin);
    /// assert_eq!(DispatchMode::from_swoole(5)?, DispatchMode::Uid);
    /// assert!(matches!(DispatchMode::from_swoole(7), Err(Error::InvalidSetting { name: "dispatch_mode", .. })));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn from_swoole(n: u8) -> Result<DispatchMode, Error> {
        Ok(match n {
            1 => DispatchMode::RoundRobin,
            2 => DispatchMode::Fixed,
            3 => DispatchMode::Preemptive,
            4 => DispatchMode::IpHash,
            5 => DispatchMode::Uid,
            _ => {
                return Err(Error::InvalidSetting {
                    name: "dispatch_mode",
                    reason: format!(
                        "{n} is not one of 1 (round robin), 2 (fixed), 3 (preemptive), 4 (ip hash), 5 (uid); 7 (stream) is not implemented"
                    ),
                })
            }
        })
    }
}

/// Server settings. Build with struct-update syntax over the defaults.
///
/// # Examples
/// ```
/// use rswoole::{Settings, Mode};
/// let s = Settings::default().worker_num(2).mode(Mode::Base);
/// assert_eq!(s.worker_num, 2);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Settings {
    /// Worker processes. 0 (the default) means one per CPU.
    pub worker_num: usize,
    /// Reactor threads in the master ([`Mode::Process`]). 0 (the default) means one per CPU.
    pub reactor_num: usize,
    /// Task worker processes. Default 0.
    pub task_worker_num: usize,
    /// Where connections live. Default [`Mode::Process`].
    pub mode: Mode,
    /// Worker choice for events. Default [`DispatchMode::Fixed`].
    pub dispatch_mode: DispatchMode,
    /// Most simultaneous connections; beyond it new connections are accepted and closed at once.
    /// 0 (the default) means the open-files limit, capped at [`DEFAULT_MAX_CONNECTION_CAP`]; in
    /// [`Mode::Base`] the limit times `worker_num` (each worker owns its connections' sockets,
    /// under its own limit).
    pub max_connection: usize,
    /// Most unsent bytes buffered for one connection; `send` beyond it fails with
    /// [`SendError::BufferFull`](crate::SendError::BufferFull) (Process mode: bytes the workers
    /// sent that are still on their way to the master count too). Default
    /// [`DEFAULT_BUFFER_OUTPUT_SIZE`].
    pub buffer_output_size: usize,
    /// How TCP streams are cut into messages (Swoole's `open_eof_check`/`open_eof_split`/
    /// `open_length_check`). Default [`Framing::Raw`]: each read is one message.
    pub framing: Framing,
    /// Most bytes in one framed message. Default [`DEFAULT_PACKAGE_MAX_LENGTH`].
    pub package_max_length: usize,
    /// How long a stopping worker may finish its callbacks and wait for its tasks' results
    /// (replies produced meanwhile are delivered) before it is killed; tasks still unanswered
    /// then get [`TaskError::Timeout`](crate::TaskError::Timeout) in `on_finish`. Default
    /// [`DEFAULT_MAX_WAIT_TIME`].
    pub max_wait_time: Duration,
    /// When a client half-closes its connection (sends FIN: "no more requests") while the
    /// application still owes it replies — tasks started (`task`, result to `on_finish`) or
    /// one-shot timers set (`after`) while handling one of its events — the connection stays
    /// writable until that work is done, the application calls `close`, or this much time has
    /// passed; then it is closed and `on_close` runs (once, after those replies, not at the
    /// FIN). With nothing owed it is closed at once. Zero closes at the FIN as before (later
    /// replies fail with `SendError::Closed`). Replies from elsewhere (another worker, a
    /// `tick`, a task spawned by hand) are not tracked. Default
    /// [`DEFAULT_HALF_CLOSE_TIMEOUT`]; at most [`MAX_HALF_CLOSE_TIMEOUT`].
    pub half_close_timeout: Duration,
    /// How long a connection may stay idle (nothing to read, nothing queued to write, nothing
    /// partial, no timer due) before its task ends and it waits without one: its socket's
    /// readiness, a write or a close for it start a task again. An idle connection then costs
    /// its record and the socket's registration only. `None`: connections keep their task;
    /// zero: they park as soon as they are idle (each message then costs a task spawn). TLS
    /// and HTTP/2 connections keep their task. Default [`DEFAULT_PARK_IDLE_AFTER`].
    pub park_idle_after: Option<Duration>,
    /// [`Mode::Process`]: when a worker dies (SIGKILL, panic outside a callback), re-deliver
    /// the events it had received but not finished to its replacement, so no message is lost
    /// (an event whose callback was running when the worker died runs again). Default `true`.
    /// Connect, close and WebSocket open events are re-delivered even when it is `false`.
    /// Either way, [`max_redeliveries`](Self::max_redeliveries) bounds how often.
    pub redeliver_on_worker_crash: bool,
    /// [`Mode::Process`]: how many times one event may be re-delivered after the worker it was
    /// with died (it may be what killed it). An event that was unfinished at more deaths than
    /// this is dropped with an error log naming its connection and kind, and the server
    /// closes that connection (`on_close` runs; a UDP datagram or a `send_message` is just
    /// dropped), so an event that kills every worker it reaches costs at most
    /// `max_redeliveries + 1` worker deaths, not a crash loop. Events re-delivered after a
    /// death go to the replacement one at a time, so an event is counted against this limit
    /// only for deaths that happened while it was the one re-delivered event in flight (or
    /// the first time it was unfinished). HTTP requests are never re-delivered (they are
    /// answered 503). Default [`DEFAULT_MAX_REDELIVERIES`]; between 1 and 100.
    pub max_redeliveries: u32,
    /// HTTP settings (static files, compression, timeouts, limits); see
    /// [`HttpSettings`](http::HttpSettings).
    pub http: http::HttpSettings,
    /// [`WebSocketSettings`](websocket::WebSocketSettings).
    pub websocket: websocket::WebSocketSettings,
    /// TLS on the server's first listener (the address given to `bind`); `None` (default):
    /// plain. Other listeners: [`Port::set_tls`](crate::Port::set_tls).
    pub tls: Option<tls::TlsSettings>,
    /// Detach from the terminal after start (see the production issue); default `false`.
    pub daemonize: bool,
    /// Write the master's pid here once listening. Default none.
    pub pid_file: Option<PathBuf>,
    /// Append logs (and stdout/stderr when daemonized) here. Default none (stderr).
    pub log_file: Option<PathBuf>,
    /// Recycle a worker after it handled this many events (receives, packets, HTTP requests,
    /// WebSocket messages): a new incarnation takes over first, the old one finishes what it
    /// has and exits, so no event is lost (the standard cure for slow leaks). Default [`DEFAULT_MAX_REQUEST`] (0 = never).
    pub max_request: u64,
    /// Each worker incarnation recycles after `max_request + random(0..=max_request_grace)`
    /// events, so that workers do not all recycle at once. Default 0 (no jitter).
    pub max_request_grace: u64,
    /// How often the owner of the sockets (the master in [`Mode::Process`], each worker in
    /// [`Mode::Base`]) looks for idle connections. Default
    /// [`DEFAULT_HEARTBEAT_CHECK_INTERVAL`] (zero = no check).
    pub heartbeat_check_interval: Duration,
    /// A connection that has received nothing for this long is closed by the server (on_close
    /// fires). Zero (the default) means twice `heartbeat_check_interval`, as in Swoole.
    pub heartbeat_idle_time: Duration,
    /// Most tasks one worker may have waiting for one task worker (sent, not yet answered);
    /// beyond it `task` returns [`TaskError::Full`](crate::TaskError::Full) with the payload.
    /// Default [`DEFAULT_TASK_QUEUE_SIZE`].
    pub task_queue_size: usize,
    /// Largest encoded task payload or result. Default [`DEFAULT_TASK_MAX_PAYLOAD`].
    pub task_max_payload: usize,
    /// When a task worker dies (crash, SIGKILL) with tasks it had not answered: `false` (the
    /// default) reports [`TaskError::WorkerDied`](crate::TaskError::WorkerDied) to their
    /// origins; `true` sends them again to its replacement (at most 3 times; a task may then
    /// run more than once).
    pub task_retry_on_crash: bool,
    /// The admin listener (metrics, dashboard) and the access log; see
    /// [`AdminSettings`](admin::AdminSettings). Off by default.
    pub admin: admin::AdminSettings,
    /// Several nodes share WebSocket broadcasts and membership through Redis; see
    /// [`ClusterSettings`](cluster::ClusterSettings). Default `None` (one node alone).
    pub cluster: Option<cluster::ClusterSettings>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            worker_num: 0,
            reactor_num: 0,
            task_worker_num: 0,
            mode: Mode::Process,
            dispatch_mode: DispatchMode::Fixed,
            max_connection: 0,
            buffer_output_size: DEFAULT_BUFFER_OUTPUT_SIZE,
            framing: Framing::Raw,
            package_max_length: DEFAULT_PACKAGE_MAX_LENGTH,
            max_wait_time: DEFAULT_MAX_WAIT_TIME,
            half_close_timeout: DEFAULT_HALF_CLOSE_TIMEOUT,
            park_idle_after: Some(DEFAULT_PARK_IDLE_AFTER),
            redeliver_on_worker_crash: true,
            max_redeliveries: DEFAULT_MAX_REDELIVERIES,
            http: http::HttpSettings::default(),
            websocket: websocket::WebSocketSettings::default(),
            tls: None,
            daemonize: false,
            pid_file: None,
            log_file: None,
            max_request: DEFAULT_MAX_REQUEST,
            max_request_grace: 0,
            heartbeat_check_interval: DEFAULT_HEARTBEAT_CHECK_INTERVAL,
            heartbeat_idle_time: Duration::ZERO,
            task_queue_size: DEFAULT_TASK_QUEUE_SIZE,
            task_max_payload: DEFAULT_TASK_MAX_PAYLOAD,
            task_retry_on_crash: false,
            admin: admin::AdminSettings::default(),
            cluster: None,
        }
    }
}

impl Settings {
    /// Fills the "0 means automatic" fields and checks the others.
    pub(crate) fn resolve(&self) -> Result<Settings, Error> {
        let mut s = self.clone();
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        if s.worker_num == 0 {
            s.worker_num = cpus;
        }
        if s.reactor_num == 0 {
            s.reactor_num = cpus;
        }
        if !s.heartbeat_check_interval.is_zero() && s.heartbeat_idle_time.is_zero() {
            s.heartbeat_idle_time = s.heartbeat_check_interval * 2;
        }
        if s.daemonize && s.pid_file.is_none() {
            return Err(Error::InvalidSetting {
                name: "pid_file",
                reason: "daemonize needs a pid_file, so that the server can be found and stopped"
                    .into(),
            });
        }
        if s.worker_num > 1024 {
            return Err(Error::InvalidSetting {
                name: "worker_num",
                reason: format!("{} is more than 1024", s.worker_num),
            });
        }
        if s.task_queue_size == 0 {
            return Err(Error::InvalidSetting {
                name: "task_queue_size",
                reason: "must be at least 1".into(),
            });
        }
        if s.task_max_payload == 0 || s.task_max_payload > u32::MAX as usize {
            return Err(Error::InvalidSetting {
                name: "task_max_payload",
                reason: "must be between 1 byte and 4 GiB".into(),
            });
        }
        if s.task_worker_num > 1024 {
            return Err(Error::InvalidSetting {
                name: "task_worker_num",
                reason: format!("{} is more than 1024", s.task_worker_num),
            });
        }
        if !(1..=100).contains(&s.max_redeliveries) {
            return Err(Error::InvalidSetting {
                name: "max_redeliveries",
                reason: format!(
                    "{} is not between 1 and 100 (to re-deliver only connect/close events, set redeliver_on_worker_crash to false)",
                    s.max_redeliveries
                ),
            });
        }
        if s.half_close_timeout > MAX_HALF_CLOSE_TIMEOUT {
            return Err(Error::InvalidSetting {
                name: "half_close_timeout",
                reason: format!(
                    "{:?} is more than {MAX_HALF_CLOSE_TIMEOUT:?}",
                    s.half_close_timeout
                ),
            });
        }
        if s.buffer_output_size < 1024 {
            return Err(Error::InvalidSetting {
                name: "buffer_output_size",
                reason: "must be at least 1024 bytes".into(),
            });
        }
        if s.package_max_length < 8 {
            return Err(Error::InvalidSetting {
                name: "package_max_length",
                reason: "must be at least 8 bytes".into(),
            });
        }
        StreamConfig {
            framing: s.framing.clone(),
            package_max_length: s.package_max_length,
        }
        .validate()
        .map_err(|e| Error::InvalidSetting {
            name: "framing",
            reason: e.to_string(),
        })?;
        s.http.validate()?;
        s.websocket.validate()?;
        if let Some(t) = &s.tls {
            t.validate()?;
        }
        s.admin.validate()?;
        if let Some(c) = &s.cluster {
            c.validate()?;
        }
        Ok(s)
    }
}

impl Settings {
    /// Sets [`worker_num`](Self::worker_num), for building the settings in one expression:
    /// `Settings::default().worker_num(4).task_worker_num(2)`.
    #[must_use]
    pub fn worker_num(mut self, worker_num: usize) -> Self {
        self.worker_num = worker_num;
        self
    }

    /// Sets [`reactor_num`](Self::reactor_num), for building the settings in one expression:
    /// `Settings::default().worker_num(4).task_worker_num(2)`.
    #[must_use]
    pub fn reactor_num(mut self, reactor_num: usize) -> Self {
        self.reactor_num = reactor_num;
        self
    }

    /// Sets [`task_worker_num`](Self::task_worker_num), for building the settings in one expression:
    /// `Settings::default().worker_num(4).task_worker_num(2)`.
    #[must_use]
    pub fn task_worker_num(mut self, task_worker_num: usize) -> Self {
        self.task_worker_num = task_worker_num;
        self
    }

    /// Sets [`mode`](Self::mode), for building the settings in one expression:
    /// `Settings::default().worker_num(4).task_worker_num(2)`.
    #[must_use]
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets [`dispatch_mode`](Self::dispatch_mode), for building the settings in one expression:
    /// `Settings::default().worker_num(4).task_worker_num(2)`.
    #[must_use]
    pub fn dispatch_mode(mut self, dispatch_mode: DispatchMode) -> Self {
        self.dispatch_mode = dispatch_mode;
        self
    }

    /// Sets [`max_connection`](Self::max_connection), for building the settings in one expression:
    /// `Settings::default().worker_num(4).task_worker_num(2)`.
    #[must_use]
    pub fn max_connection(mut self, max_connection: usize) -> Self {
        self.max_connection = max_connection;
        self
    }

    /// Sets [`buffer_output_size`](Self::buffer_output_size), for building the settings in one expression:
    /// `Settings::default().worker_num(4).task_worker_num(2)`.
    #[must_use]
    pub fn buffer_output_size(mut self, buffer_output_size: usize) -> Self {
        self.buffer_output_size = buffer_output_size;
        self
    }

    /// Sets [`framing`](Self::framing), for building the settings in one expression:
    /// `Settings::default().worker_num(4).task_worker_num(2)`.
    #[must_use]
    pub fn framing(mut self, framing: Framing) -> Self {
        self.framing = framing;
        self
    }

    /// Sets [`package_max_length`](Self::package_max_length), for building the settings in one expression:
    /// `Settings::default().worker_num(4).task_worker_num(2)`.
    #[must_use]
    pub fn package_max_length(mut self, package_max_length: usize) -> Self {
        self.package_max_length = package_max_length;
        self
    }

    /// Sets [`max_wait_time`](Self::max_wait_time), for building the settings in one expression:
    /// `Settings::default().worker_num(4).task_worker_num(2)`.
    #[must_use]
    pub fn max_wait_time(mut self, max_wait_time: Duration) -> Self {
        self.max_wait_time = max_wait_time;
        self
    }

    /// Sets [`half_close_timeout`](Self::half_close_timeout), for building the settings in one
    /// expression: `Settings::default().half_close_timeout(Duration::from_secs(5))`.
    #[must_use]
    pub fn half_close_timeout(mut self, half_close_timeout: Duration) -> Self {
        self.half_close_timeout = half_close_timeout;
        self
    }

    /// Sets [`park_idle_after`](Self::park_idle_after), for building the settings in one
    /// expression: `Settings::default().park_idle_after(Some(Duration::from_secs(5)))`.
    #[must_use]
    pub fn park_idle_after(mut self, park_idle_after: Option<Duration>) -> Self {
        self.park_idle_after = park_idle_after;
        self
    }

    /// Sets [`redeliver_on_worker_crash`](Self::redeliver_on_worker_crash), for building the settings in one expression:
    /// `Settings::default().worker_num(4).task_worker_num(2)`.
    #[must_use]
    pub fn redeliver_on_worker_crash(mut self, redeliver_on_worker_crash: bool) -> Self {
        self.redeliver_on_worker_crash = redeliver_on_worker_crash;
        self
    }

    /// Sets [`max_redeliveries`](Self::max_redeliveries), for building the settings in one expression:
    /// `Settings::default().worker_num(4).task_worker_num(2)`.
    #[must_use]
    pub fn max_redeliveries(mut self, max_redeliveries: u32) -> Self {
        self.max_redeliveries = max_redeliveries;
        self
    }

    /// Sets [`http`](Self::http), for building the settings in one expression:
    /// `Settings::default().worker_num(4).task_worker_num(2)`.
    #[must_use]
    pub fn http(mut self, http: http::HttpSettings) -> Self {
        self.http = http;
        self
    }

    /// Sets [`tls`](Self::tls), for building the settings in one expression.
    ///
    /// # Examples
    /// ```
    /// use rswoole::{tls::TlsSettings, Settings};
    /// let s = Settings::default().tls(Some(TlsSettings::new("cert.pem", "key.pem")));
    /// assert!(s.tls.is_some());
    /// ```
    #[must_use]
    pub fn tls(mut self, tls: Option<tls::TlsSettings>) -> Self {
        self.tls = tls;
        self
    }

    /// Sets [`cluster`](Self::cluster).
    ///
    /// # Examples
    /// ```
    /// use rswoole::{ClusterSettings, Settings};
    /// let s = Settings::default().cluster(Some(ClusterSettings::new("redis://127.0.0.1/", "a")));
    /// assert!(s.cluster.is_some());
    /// ```
    #[must_use]
    pub fn cluster(mut self, cluster: Option<cluster::ClusterSettings>) -> Self {
        self.cluster = cluster;
        self
    }

    /// Sets [`websocket`](Self::websocket), for building the settings in one expression:
    /// `Settings::default().worker_num(4).task_worker_num(2)`.
    #[must_use]
    pub fn websocket(mut self, websocket: websocket::WebSocketSettings) -> Self {
        self.websocket = websocket;
        self
    }

    /// Sets [`daemonize`](Self::daemonize), for building the settings in one expression:
    /// `Settings::default().worker_num(4).task_worker_num(2)`.
    #[must_use]
    pub fn daemonize(mut self, daemonize: bool) -> Self {
        self.daemonize = daemonize;
        self
    }

    /// Sets [`pid_file`](Self::pid_file), for building the settings in one expression:
    /// `Settings::default().worker_num(4).task_worker_num(2)`.
    #[must_use]
    pub fn pid_file(mut self, pid_file: Option<PathBuf>) -> Self {
        self.pid_file = pid_file;
        self
    }

    /// Sets [`log_file`](Self::log_file), for building the settings in one expression:
    /// `Settings::default().worker_num(4).task_worker_num(2)`.
    #[must_use]
    pub fn log_file(mut self, log_file: Option<PathBuf>) -> Self {
        self.log_file = log_file;
        self
    }

    /// Sets [`max_request`](Self::max_request), for building the settings in one expression:
    /// `Settings::default().worker_num(4).task_worker_num(2)`.
    #[must_use]
    pub fn max_request(mut self, max_request: u64) -> Self {
        self.max_request = max_request;
        self
    }

    /// Sets [`max_request_grace`](Self::max_request_grace), for building the settings in one expression:
    /// `Settings::default().worker_num(4).task_worker_num(2)`.
    #[must_use]
    pub fn max_request_grace(mut self, max_request_grace: u64) -> Self {
        self.max_request_grace = max_request_grace;
        self
    }

    /// Sets [`heartbeat_check_interval`](Self::heartbeat_check_interval), for building the settings in one expression:
    /// `Settings::default().worker_num(4).task_worker_num(2)`.
    #[must_use]
    pub fn heartbeat_check_interval(mut self, heartbeat_check_interval: Duration) -> Self {
        self.heartbeat_check_interval = heartbeat_check_interval;
        self
    }

    /// Sets [`heartbeat_idle_time`](Self::heartbeat_idle_time), for building the settings in one expression:
    /// `Settings::default().worker_num(4).task_worker_num(2)`.
    #[must_use]
    pub fn heartbeat_idle_time(mut self, heartbeat_idle_time: Duration) -> Self {
        self.heartbeat_idle_time = heartbeat_idle_time;
        self
    }

    /// Sets [`task_queue_size`](Self::task_queue_size), for building the settings in one expression:
    /// `Settings::default().worker_num(4).task_worker_num(2)`.
    #[must_use]
    pub fn task_queue_size(mut self, task_queue_size: usize) -> Self {
        self.task_queue_size = task_queue_size;
        self
    }

    /// Sets [`task_max_payload`](Self::task_max_payload), for building the settings in one expression:
    /// `Settings::default().worker_num(4).task_worker_num(2)`.
    #[must_use]
    pub fn task_max_payload(mut self, task_max_payload: usize) -> Self {
        self.task_max_payload = task_max_payload;
        self
    }

    /// Sets [`task_retry_on_crash`](Self::task_retry_on_crash), for building the settings in one expression:
    /// `Settings::default().worker_num(4).task_worker_num(2)`.
    #[must_use]
    pub fn task_retry_on_crash(mut self, task_retry_on_crash: bool) -> Self {
        self.task_retry_on_crash = task_retry_on_crash;
        self
    }

    /// Sets [`admin`](Self::admin): `Settings::default().admin(AdminSettings::default().addr(..))`.
    #[must_use]
    pub fn admin(mut self, admin: admin::AdminSettings) -> Self {
        self.admin = admin;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(s: Settings) -> &'static str {
        match s.resolve() {
            Err(Error::InvalidSetting { name, .. }) => name,
            other => panic!("expected InvalidSetting, got {other:?}"),
        }
    }

    /// Sub-settings are checked at start like the rest: nothing is clamped silently.
    #[test]
    fn settings_sub_settings_are_validated_not_clamped() {
        let ws = |w: websocket::WebSocketSettings| Settings::default().websocket(w);
        let w = websocket::WebSocketSettings::default;
        assert_eq!(
            refused(ws(w().compression_level(12))),
            "websocket.compression_level"
        );
        assert_eq!(
            refused(ws(w().ping_interval(Some(Duration::ZERO)))),
            "websocket.ping_interval"
        );
        assert_eq!(
            refused(ws(w().max_frame_size(0))),
            "websocket.max_frame_size"
        );
        let http = |h: http::HttpSettings| Settings::default().http(h);
        let h = http::HttpSettings::default;
        assert_eq!(
            refused(http(h().enable_static_handler(true))),
            "http.enable_static_handler"
        );
        assert_eq!(
            refused(http(h().request_timeout(Some(Duration::ZERO)))),
            "http.request_timeout"
        );
        assert_eq!(
            refused(http(h().max_header_size(10))),
            "http.max_header_size"
        );
        let h2 = http::Http2Settings::default;
        for (bad, name) in [
            (
                h2().max_concurrent_streams(0),
                "http.http2.max_concurrent_streams",
            ),
            (h2().max_frame_size(1000), "http.http2.max_frame_size"),
            (
                h2().initial_window_size(1 << 31),
                "http.http2.initial_window_size",
            ),
            (
                h2().initial_connection_window_size(10),
                "http.http2.initial_connection_window_size",
            ),
            (
                h2().max_header_list_size(Some(1)),
                "http.http2.max_header_list_size",
            ),
            (
                h2().keepalive_interval(Some(Duration::ZERO)),
                "http.http2.keepalive_interval",
            ),
            (
                h2().keepalive_timeout(Duration::ZERO),
                "http.http2.keepalive_timeout",
            ),
        ] {
            assert_eq!(refused(http(h().http2(bad))), name);
        }
        assert_eq!(
            refused(Settings::default().half_close_timeout(MAX_HALF_CLOSE_TIMEOUT * 2)),
            "half_close_timeout"
        );
        assert!(Settings::default()
            .half_close_timeout(Duration::ZERO)
            .resolve()
            .is_ok());
        assert!(Settings::default().resolve().is_ok());
        assert_eq!(
            refused(Settings::default().max_redeliveries(0)),
            "max_redeliveries"
        );
        assert_eq!(
            refused(Settings::default().max_redeliveries(101)),
            "max_redeliveries"
        );
        assert!(Settings::default().max_redeliveries(1).resolve().is_ok());
        assert!(ws(w().compression_level(9)).resolve().is_ok());
    }
}
