//! Starting a server: checks, binding, the fork of the manager, and the master's own loop.
//!
//! The master owns the server's outside interface, its signals: SIGTERM/SIGINT stop,
//! SIGUSR1 reloads the workers, SIGUSR2 the task workers, SIGRTMIN reopens the log files
//! (`crate::control::VERBS`). It passes reloads and log reopening on to the manager as
//! messages on the control socket ([`crate::ipc::command`]), not as signals, so that no
//! request merges with another; only the stop stays a signal (SIGTERM, also the manager's
//! PDEATHSIG).

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::Ordering::{Relaxed, Release};
use std::sync::Arc;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::signal::unix::{signal, SignalKind};

use super::app::App;
use super::reactor::Reactor;
use super::{daemon, manager};
use crate::base::settings::DEFAULT_MAX_CONNECTION_CAP;
use crate::base::{Error, MasterInfo, Mode, Result, Settings, SockType};
use crate::ipc::command::{self, Command};
use crate::ipc::shared::{Shared, PHASE_RUNNING, PHASE_STOPPING};
use crate::ipc::PipeTx;
use crate::owner::accept::{accept_loop, Ids};
use crate::owner::inbound::ConnConfig;
use crate::owner::tls::TlsListener;
use crate::sys;

/// A listener bound by the master before anything forks.
#[derive(Debug)]
pub(crate) struct Bound {
    pub(crate) addr: SocketAddr,
    pub(crate) kind: SockType,
    pub(crate) tcp: Option<Socket>,
    pub(crate) udp: Option<std::net::UdpSocket>,
}

/// What the manager and workers inherit from the master.
#[derive(Debug)]
pub(crate) struct Launch {
    pub(crate) settings: Arc<Settings>,
    pub(crate) shared: Shared,
    pub(crate) listeners: Vec<Bound>,
    pub(crate) master_pid: u32,
    /// Task worker `j`'s listening socket (src/task_link.rs), bound before anything forks.
    pub(crate) task_listeners: Vec<OwnedFd>,
    /// Listener `i`'s TLS (certificate loaded and checked before anything forks).
    pub(crate) tls: Vec<Option<Arc<TlsListener>>>,
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RSWOOLE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

fn bind_all(app: &App, mode: Mode) -> Result<Vec<Bound>> {
    let mut out = Vec::new();
    for p in &app.listeners {
        let addr = p.addr;
        let err = |source| Error::Bind { addr, source };
        let (ty, proto) = match p.sock_type {
            SockType::Tcp => (Type::STREAM, Protocol::TCP),
            SockType::Udp => (Type::DGRAM, Protocol::UDP),
        };
        let s = Socket::new(Domain::for_address(addr), ty, Some(proto)).map_err(err)?;
        s.set_reuse_address(true).map_err(err)?;
        if addr.is_ipv6() {
            s.set_only_v6(true).map_err(err)?;
        }
        // Base mode: workers add their own SO_REUSEPORT listeners to this (bound, never
        // listening) socket's port; it only reserves the port and makes "in use" fail here.
        if mode == Mode::Base && p.sock_type == SockType::Tcp {
            s.set_reuse_port(true).map_err(err)?;
        }
        s.set_nonblocking(true).map_err(err)?;
        s.bind(&addr.into()).map_err(err)?;
        let actual = s
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .unwrap_or(addr);
        match p.sock_type {
            SockType::Tcp => {
                if mode == Mode::Process {
                    s.listen(4096).map_err(err)?;
                }
                out.push(Bound {
                    addr: actual,
                    kind: SockType::Tcp,
                    tcp: Some(s),
                    udp: None,
                });
            }
            SockType::Udp => {
                let _ = s.set_recv_buffer_size(4 << 20);
                out.push(Bound {
                    addr: actual,
                    kind: SockType::Udp,
                    tcp: None,
                    udp: Some(s.into()),
                });
            }
        }
    }
    Ok(out)
}

/// Raises the open-files soft limit to the hard limit; returns the soft limit now in force.
fn raise_nofile() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) => {
            if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
                hard
            } else {
                soft
            }
        }
        Err(_) => 1024,
    }
}

/// Starts the server `app` with `settings` (validated here, before anything forks). Returns
/// in the master once the server has stopped; never returns in other processes.
pub(crate) fn start(app: App, settings: Settings) -> Result<()> {
    let res = start_inner(app, settings);
    if let Err(e) = &res {
        // Daemon mode: the starting process prints this and exits 1.
        daemon::report_failure(e);
    }
    res
}

fn start_inner(app: App, settings: Settings) -> Result<()> {
    let mut settings = settings.resolve()?;
    let mut tls = Vec::with_capacity(app.listeners.len());
    for l in &app.listeners {
        tls.push(match &l.tls {
            None => None,
            Some(t) => {
                t.validate()?;
                let http = matches!(
                    l.protocol,
                    crate::owner::inbound::Protocol::Http
                        | crate::owner::inbound::Protocol::WebSocket
                );
                let built =
                    TlsListener::new(t, http, settings.http.http2.enabled).map_err(|e| {
                        Error::Tls {
                            addr: l.addr,
                            reason: e.to_string(),
                        }
                    })?;
                Some(Arc::new(built))
            }
        });
    }
    for l in &app.listeners {
        if let Some(f) = &l.framing {
            rswoole_codec::stream::StreamConfig {
                framing: f.clone(),
                package_max_length: settings.package_max_length,
            }
            .validate()
            .map_err(|e| Error::InvalidSetting {
                name: "framing",
                reason: format!("listener {}: {e}", l.addr),
            })?;
        }
    }
    if sys::thread_count() != 1 {
        return Err(Error::InvalidSetting {
            name: "start",
            reason: "start() must be called from a single-threaded process (before any runtime or thread is started), because it forks".into(),
        });
    }
    // Daemon mode detaches here (the starting process waits in there for "listening").
    daemon::prepare(&mut settings)?;
    init_logging();
    let nofile = raise_nofile();
    // Every connection needs a socket; keep 64 descriptors for listeners, pipes and files.
    let fd_room = (nofile as usize).saturating_sub(64).max(16);
    if settings.max_connection == 0 {
        settings.max_connection = fd_room.min(DEFAULT_MAX_CONNECTION_CAP);
    } else if settings.max_connection > fd_room {
        tracing::warn!(
            max_connection = settings.max_connection,
            open_files_limit = nofile,
            "max_connection is above what the open-files limit allows: connections beyond ~{fd_room} will fail to be accepted; raise `ulimit -n` (hard limit) or lower max_connection"
        );
    }
    // Base mode: each worker owns the slots congruent to its id, so round the table up.
    let n = settings.worker_num;
    let cap = settings.max_connection.div_ceil(n) * n;
    let listeners = bind_all(&app, settings.mode)?;
    let shared = Shared::new(settings.worker_num + settings.task_worker_num, cap)
        .map_err(Error::io("mapping shared memory"))?;
    let master_pid = std::process::id();
    shared.header().master_pid.store(master_pid, Relaxed);
    let settings = Arc::new(settings);
    let task_listeners = (0..settings.task_worker_num)
        .map(|j| crate::ipc::task_link::listen(master_pid, j))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(Error::io("binding the task workers' sockets"))?;
    let launch = Launch {
        settings: settings.clone(),
        shared: shared.clone(),
        listeners,
        master_pid,
        task_listeners,
        tls,
    };
    let (control_master, control_manager) =
        sys::seqpacket_pair().map_err(Error::io("creating the manager's control socket"))?;
    sys::ignore_sigpipe();
    let manager_pid = match sys::fork().map_err(Error::io("forking the manager"))? {
        sys::Forked::Child => {
            drop(control_master);
            manager::run(&app, launch, control_manager)
        }
        sys::Forked::Parent(pid) => pid as u32,
    };
    drop(control_manager);
    shared.header().manager_pid.store(manager_pid, Relaxed);
    sys::set_process_title("rswoole: master");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.reactor_num.max(1))
        .thread_name("rswoole-reactor")
        .enable_all()
        .build()
        .map_err(Error::io("building the master's runtime"))?;
    let info = MasterInfo {
        master_pid,
        manager_pid,
        addrs: launch.listeners.iter().map(|b| b.addr).collect(),
    };
    let result = rt.block_on(master_main(&app, launch, control_master, &info));
    if let Some(cb) = &app.on_shutdown {
        cb(&info);
    }
    rt.shutdown_timeout(Duration::from_millis(100));
    result
}

async fn master_main(app: &App, launch: Launch, control: OwnedFd, info: &MasterInfo) -> Result<()> {
    let settings = launch.settings.clone();
    let shared = launch.shared.clone();
    let reactor = Arc::new(Reactor::new(shared.clone(), settings.clone()));
    let mut sigterm = signal(SignalKind::terminate()).map_err(Error::io("watching SIGTERM"))?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(Error::io("watching SIGINT"))?;
    let mut sigusr1 = signal(SignalKind::user_defined1()).map_err(Error::io("watching SIGUSR1"))?;
    let mut sigusr2 = signal(SignalKind::user_defined2()).map_err(Error::io("watching SIGUSR2"))?;
    let mut sigchld = signal(SignalKind::child()).map_err(Error::io("watching SIGCHLD"))?;
    let manager = nix::unistd::Pid::from_raw(info.manager_pid as i32);

    let mut tasks = Vec::new();
    // The control socket: worker pipes from the manager (Process mode), commands to it.
    let control =
        Arc::new(sys::async_fd(control).map_err(Error::io("registering the control socket"))?);
    if settings.mode == Mode::Process {
        let (c, r) = (control.clone(), reactor.clone());
        tasks.push(tokio::spawn(async move { read_control(&c, r).await }));
        for (i, b) in launch.listeners.iter().enumerate() {
            match b.kind {
                SockType::Tcp => {
                    let sock = b
                        .tcp
                        .as_ref()
                        .expect("tcp")
                        .try_clone()
                        .map_err(Error::io("cloning a listener"))?;
                    let l = tokio::net::TcpListener::from_std(sock.into())
                        .map_err(Error::io("registering a listener"))?;
                    let framing = Arc::new(launch.conn_config(app, i));
                    tasks.push(tokio::spawn(serve_listener(l, i, reactor.clone(), framing)));
                }
                SockType::Udp => {
                    let u = b
                        .udp
                        .as_ref()
                        .expect("udp")
                        .try_clone()
                        .map_err(Error::io("cloning a UDP socket"))?;
                    let u = tokio::net::UdpSocket::from_std(u)
                        .map_err(Error::io("registering a UDP socket"))?;
                    let r = reactor.clone();
                    tasks.push(tokio::spawn(async move {
                        let mut buf = vec![0u8; 65536];
                        loop {
                            match u.recv_from(&mut buf).await {
                                Ok((n, from)) => r.packet(i as u16, from, &buf[..n]),
                                Err(e) => tracing::debug!(error = %e, "udp recv"),
                            }
                        }
                    }));
                }
            }
        }
    }
    tracing::info!(mode = ?settings.mode, workers = settings.worker_num, addrs = ?info.addrs, "phase=Running: rswoole is serving");
    shared.header().phase.store(PHASE_RUNNING, Release);
    tasks.extend(daemon::running(
        &settings,
        &shared,
        info,
        control.clone(),
        launch.cert_reload(),
    ));
    let heartbeat =
        crate::owner::heartbeat::heartbeat(&settings, shared.clone(), reactor.clone(), |r| {
            &r.conns
        });
    if let (Some(hb), Mode::Process) = (heartbeat, settings.mode) {
        tasks.push(tokio::spawn(hb));
    }
    if let Some(cb) = &app.on_start {
        cb(info);
    }
    let mut manager_gone = false;
    loop {
        tokio::select! {
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            _ = sigusr1.recv() => tell_manager(&control, Command::Reload).await,
            _ = sigusr2.recv() => tell_manager(&control, Command::ReloadTasks).await,
            _ = sigchld.recv() => {
                if reap(manager) {
                    tracing::error!("the manager process died; shutting down");
                    manager_gone = true;
                    break;
                }
            }
        }
    }
    tracing::info!("phase=ShuttingDown");
    shared.header().phase.store(PHASE_STOPPING, Release);
    reactor.stopping.store(true, Release);
    for t in &tasks {
        t.abort();
    }
    // Close the listening sockets now, so the port is free as soon as we exit.
    drop(launch.listeners);
    // Process mode: each worker handles what was dispatched to it before its `Stop`, and
    // the reactor keeps writing what workers send (replies from on_finish, too) while they
    // finish; the connections are closed only once every worker has exited.
    reactor.stop_workers();
    if !manager_gone {
        let _ = nix::sys::signal::kill(manager, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + settings.max_wait_time + Duration::from_secs(3);
        loop {
            if reap(manager) {
                break;
            }
            if Instant::now() > deadline {
                tracing::warn!("manager did not stop in time; killing it");
                let _ = nix::sys::signal::kill(manager, nix::sys::signal::Signal::SIGKILL);
                let _ = nix::sys::wait::waitpid(manager, None);
                break;
            }
            let _ = tokio::time::timeout(Duration::from_millis(50), sigchld.recv()).await;
        }
    }
    // The workers' last records may still be in their pipes.
    reactor.wait_pipes_done(Duration::from_secs(2)).await;
    for c in reactor.conns.all() {
        c.close();
    }
    reactor.conns.flushed(Duration::from_secs(1)).await;
    daemon::stopped(&settings);
    tracing::info!("phase=Stopped");
    Ok(())
}

/// True if `pid` has exited (reaped now).
fn reap(pid: nix::unistd::Pid) -> bool {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    matches!(
        waitpid(pid, Some(WaitPidFlag::WNOHANG)),
        Ok(WaitStatus::Exited(..)) | Ok(WaitStatus::Signaled(..)) | Err(_)
    )
}

/// Sends the manager `cmd` on the control socket (logs if it cannot).
async fn tell_manager(control: &AsyncFd<OwnedFd>, cmd: Command) {
    if let Err(e) = command::send_async(control, cmd).await {
        tracing::error!(error = %e, ?cmd, "cannot send a command to the manager");
    }
}

async fn read_control(control: &AsyncFd<OwnedFd>, reactor: Arc<Reactor>) {
    let mut buf = [0u8; 16];
    loop {
        let mut guard = match control.readable().await {
            Ok(g) => g,
            Err(_) => return,
        };
        let res = guard.try_io(|fd| sys::recv_with_fd(fd.get_ref().as_raw_fd(), &mut buf));
        match res {
            Ok(Ok(Some((n, Some(fd))))) if n >= 8 => {
                let slot = u32::from_le_bytes(buf[0..4].try_into().expect("4")) as usize;
                let pid = u32::from_le_bytes(buf[4..8].try_into().expect("4"));
                match PipeTx::new(fd) {
                    Ok(tx) => reactor.install(slot, pid, tx),
                    Err(e) => tracing::error!(error = %e, "cannot register a worker pipe"),
                }
            }
            Ok(Ok(None)) => return,
            Ok(Ok(Some(_))) => tracing::warn!("malformed control message from the manager"),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "control socket failed");
                return;
            }
            Err(_) => continue,
        }
    }
}

/// Accepts listener `index`'s connections and runs each one's task on the reactor threads.
async fn serve_listener(
    listener: tokio::net::TcpListener,
    index: usize,
    reactor: Arc<Reactor>,
    framing: Arc<ConnConfig>,
) {
    let shared = reactor.shared.clone();
    let reactors = reactor.settings.reactor_num as u64;
    let ids = Ids {
        counter: &shared.header().next_id,
        first: 1,
        stride: 1,
    };
    let cap = reactor.settings.buffer_output_size;
    accept_loop(
        listener,
        index,
        &shared,
        ids,
        |n| (n % reactors) as u32,
        0,
        &reactor.conns,
        cap,
        framing.tls.clone(),
        |conn| {
            let id = conn.id;
            let (r, f) = (reactor.clone(), framing.clone());
            tokio::spawn(async move {
                conn.run(r.clone(), &f).await;
                r.conns.remove(id);
                r.shared.free(id);
            });
        },
    )
    .await
}

impl Launch {
    /// The connection configuration of listener `i` of `app`.
    pub(crate) fn conn_config(&self, app: &App, i: usize) -> ConnConfig {
        let l = &app.listeners[i];
        let mut c = ConnConfig::new(
            l.protocol,
            l.framing.as_ref(),
            &self.settings,
            app.ws_handshake,
        );
        c.tls = self.tls.get(i).cloned().flatten();
        c
    }
}

/// Reloads the TLS certificates (`rswoole reload-certs`).
pub(crate) type CertReload = Arc<dyn Fn() -> std::result::Result<String, String> + Send + Sync>;

impl Launch {
    fn cert_reload(&self) -> CertReload {
        let tls = self.tls.clone();
        let addrs: Vec<SocketAddr> = self.listeners.iter().map(|b| b.addr).collect();
        let shared = self.shared.clone();
        Arc::new(move || reload_certs(&tls, &addrs, &shared))
    }
}

/// `rswoole reload-certs`: reads and checks every TLS listener's files; if all pass,
/// serves them (the master's own listeners at once; Base-mode workers before their next
/// handshake, through the shared `certs_gen`). Otherwise nothing changes. Returns what is
/// served now, or why nothing changed.
fn reload_certs(
    tls: &[Option<Arc<TlsListener>>],
    addrs: &[SocketAddr],
    shared: &Shared,
) -> std::result::Result<String, String> {
    let mut checked = Vec::new();
    for (i, t) in tls.iter().enumerate() {
        let Some(t) = t else { continue };
        match t.check() {
            Ok(ck) => checked.push((i, t, ck)),
            Err(e) => {
                let msg = format!("listener {}: {e}; the old certificate stays", addrs[i]);
                tracing::error!("reload-certs refused: {msg}");
                return Err(msg);
            }
        }
    }
    if checked.is_empty() {
        return Err("no listener serves TLS".into());
    }
    let gen = shared.header().certs_gen.load(Relaxed) + 1;
    let mut lines = Vec::new();
    for (i, t, ck) in checked {
        t.install(ck, gen);
        let fp = crate::owner::tls::fingerprint(&t.current_leaf());
        let hex: String = fp.iter().map(|b| format!("{b:02x}")).collect();
        lines.push(format!(
            "listener {} serves {} (sha256 {hex})",
            addrs[i],
            t.cert_file().display()
        ));
    }
    shared.header().certs_gen.store(gen, Relaxed);
    let msg = lines.join("\n");
    tracing::info!(gen, "reload-certs: {}", msg.replace('\n', "; "));
    Ok(msg)
}
