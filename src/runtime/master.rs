//! Starting a server: checks, binding, the fork of the manager, and the master's own loop.
//!
//! The master owns the server's outside interface, its signals: SIGTERM/SIGINT stop,
//! SIGUSR1 reloads the workers, SIGUSR2 the task workers, SIGRTMIN reopens the log files,
//! SIGWINCH upgrades to the binary at the master's path ([`super::upgrade`])
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
use super::inherit::{self, Inherited};
use super::reactor::Reactor;
use super::upgrade;
use super::{daemon, manager};
use crate::base::settings::DEFAULT_MAX_CONNECTION_CAP;
use crate::base::{Error, MasterInfo, Mode, Result, Settings, SockType};
use crate::ipc::command::{self, Command};
use crate::ipc::metrics;
use crate::ipc::shared::{Shared, PHASE_DRAINING, PHASE_RUNNING, PHASE_STOPPING};
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
    /// Base mode: an inherited *listening* socket that every worker accepts on (instead of
    /// its own `SO_REUSEPORT` listener); see [`super::inherit`].
    pub(crate) shared_accept: bool,
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

fn bind_all(app: &App, mode: Mode, pool: &mut Vec<Inherited>) -> Result<Vec<Bound>> {
    let mut out = Vec::new();
    for (i, p) in app.listeners.iter().enumerate() {
        let addr = p.addr;
        let err = |source| Error::Bind { addr, source };
        if let Some(inh) = inherit::take(pool, i, addr, p.sock_type) {
            tracing::info!(listener = i, addr = %inh.addr, from = inh.origin, listening = inh.listening, "adopting an inherited socket");
            let listening = inh.listening;
            match p.sock_type {
                SockType::Tcp => {
                    if mode == Mode::Process && !listening {
                        inh.sock.listen(4096).map_err(err)?;
                    }
                    out.push(Bound {
                        addr: inh.addr,
                        kind: SockType::Tcp,
                        tcp: Some(inh.sock),
                        udp: None,
                        shared_accept: mode == Mode::Base && listening,
                    });
                }
                SockType::Udp => out.push(Bound {
                    addr: inh.addr,
                    kind: SockType::Udp,
                    tcp: None,
                    udp: Some(inh.sock.into()),
                    shared_accept: false,
                }),
            }
            continue;
        }
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
                    shared_accept: false,
                });
            }
            SockType::Udp => {
                let _ = s.set_recv_buffer_size(4 << 20);
                out.push(Bound {
                    addr: actual,
                    kind: SockType::Udp,
                    tcp: None,
                    udp: Some(s.into()),
                    shared_accept: false,
                });
            }
        }
    }
    if !pool.is_empty() {
        return Err(inherit::unmatched(pool));
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
        // Upgrade: the old master keeps serving and reports this.
        upgrade::report_failure(e);
    }
    res
}

fn start_inner(app: App, settings: Settings) -> Result<()> {
    // The allocator's settings, before any process is forked (they inherit them).
    sys::configure_allocator();
    // Before the process title overwrites argv: what an upgrade runs again.
    let origin = upgrade::Origin::now();
    // Sockets passed by systemd or by the master this one replaces (taken before anything
    // can fail, so that a failure is reported to that master).
    let mut pool = inherit::from_systemd()?;
    if let Some(u) = upgrade::adopt()? {
        pool.extend(u);
    }
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
    let fd_room = connection_room(nofile, settings.mode, settings.worker_num);
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
    let listeners = bind_all(&app, settings.mode, &mut pool)?;
    let shared = Shared::new(settings.worker_num + settings.task_worker_num, cap)
        .map_err(Error::io("mapping shared memory"))?;
    let master_pid = std::process::id();
    shared.header().master_pid.store(master_pid, Relaxed);
    let admin = start_metrics(&settings)?;
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
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder
        .worker_threads(settings.reactor_num.max(1))
        .thread_name("rswoole-reactor")
        .enable_all();
    // mimalloc keeps freed pages per thread: each reactor thread gives its own back when it
    // parks after a release was asked (`owner::trim`).
    #[cfg(feature = "mimalloc")]
    builder.on_thread_park(crate::owner::trim::collect_on_park);
    let rt = builder
        .build()
        .map_err(Error::io("building the master's runtime"))?;
    let info = MasterInfo {
        master_pid,
        manager_pid,
        addrs: launch.listeners.iter().map(|b| b.addr).collect(),
    };
    let result = rt.block_on(master_main(
        &app,
        launch,
        control_master,
        &info,
        origin,
        admin,
    ));
    if let Some(cb) = &app.on_shutdown {
        cb(&info);
    }
    rt.shutdown_timeout(Duration::from_millis(100));
    result
}

/// How many connections the open-files limit `nofile` leaves room for: every connection needs
/// a socket in the process that owns it, less 64 descriptors for listeners, pipes and files.
/// Process mode: the master owns them all. Base mode: each of the `workers` workers owns its
/// own (`SO_REUSEPORT`), under its own limit — 4 workers hold 4 times as many (50,000
/// connections under a 20,000 hard limit, BENCHMARKS.md "Memory: bursts and 50,000
/// connections").
fn connection_room(nofile: u64, mode: Mode, workers: usize) -> usize {
    let per_process = (nofile as usize).saturating_sub(64).max(16);
    match mode {
        Mode::Base => per_process.saturating_mul(workers.max(1)),
        _ => per_process,
    }
}

/// With `admin.addr`: maps the metrics, installs the `metrics` recorder and binds the admin
/// listener (before the fork, so a taken port fails the start). The master's reactor threads
/// count in the slots after the workers'.
fn start_metrics(settings: &Settings) -> Result<Option<std::net::TcpListener>> {
    let Some(addr) = settings.admin.addr else {
        return Ok(None);
    };
    let workers = settings.worker_num + settings.task_worker_num;
    let master_slots = settings.reactor_num.max(1) + 1;
    let m = metrics::Metrics::new(workers, master_slots)
        .map_err(Error::io("mapping the metrics' shared memory"))?;
    metrics::install(m);
    metrics::enter(workers, master_slots);
    if let Some(m) = metrics::get() {
        if ::metrics::set_global_recorder(metrics::user::ShmRecorder::new(m)).is_err() {
            tracing::warn!("a `metrics` recorder is already installed: user metrics go there, not to the admin listener");
        }
    }
    // SO_REUSEPORT: during `rswoole upgrade` the new master binds the admin port while the
    // old one still holds it; the old one closes its listener when it starts draining.
    let l = crate::owner::accept::reuseport_listener(addr)
        .map_err(|source| Error::Bind { addr, source })?;
    Ok(Some(l))
}

async fn master_main(
    app: &App,
    launch: Launch,
    control: OwnedFd,
    info: &MasterInfo,
    origin: upgrade::Origin,
    admin: Option<std::net::TcpListener>,
) -> Result<()> {
    let settings = launch.settings.clone();
    let shared = launch.shared.clone();
    let reactor = Arc::new(Reactor::new(shared.clone(), settings.clone()));
    // The connection table keeps a burst's peak capacity: shrunk when mostly empty, on the
    // release check's clock (`owner::trim::shrink_map`).
    {
        let reactor = Arc::downgrade(&reactor);
        tokio::spawn(crate::owner::trim::shrink_on_clock(move || {
            reactor.upgrade().map(|r| r.conns.shrink())
        }));
    }
    let mut sigterm = signal(SignalKind::terminate()).map_err(Error::io("watching SIGTERM"))?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(Error::io("watching SIGINT"))?;
    let mut sigusr1 = signal(SignalKind::user_defined1()).map_err(Error::io("watching SIGUSR1"))?;
    let mut sigusr2 = signal(SignalKind::user_defined2()).map_err(Error::io("watching SIGUSR2"))?;
    let mut sigchld = signal(SignalKind::child()).map_err(Error::io("watching SIGCHLD"))?;
    let mut sigwinch =
        signal(SignalKind::window_change()).map_err(Error::io("watching SIGWINCH"))?;
    let cert_reload = launch.cert_reload();
    let manager = nix::unistd::Pid::from_raw(info.manager_pid as i32);

    let mut tasks = vec![super::certs::on_signal(cert_reload.clone())
        .map_err(Error::io("watching SIGRTMIN+1 (reload-certs)"))?];
    // The tasks that take new connections and datagrams: the first to go on an upgrade.
    let mut accepting = Vec::new();
    // The control socket: worker pipes from the manager (Process mode), commands to it.
    let control =
        Arc::new(sys::async_fd(control).map_err(Error::io("registering the control socket"))?);
    // Every listener's connection configuration (also what moved connections resume with).
    let cfgs: Vec<Arc<ConnConfig>> = (0..launch.listeners.len())
        .map(|i| Arc::new(launch.conn_config(app, i)))
        .collect();
    // The accept loops wait while the old master (upgrade) moves its connections here.
    let expect_moves = settings.mode == Mode::Process && upgrade::moves_expected();
    let (gate_tx, gate) = tokio::sync::watch::channel(!expect_moves);
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
                    let (framing, mut gate) = (cfgs[i].clone(), gate.clone());
                    let r = reactor.clone();
                    accepting.push(tokio::spawn(async move {
                        let _ = gate.wait_for(|open| *open).await;
                        serve_listener(l, i, r, framing).await
                    }));
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
                    accepting.push(tokio::spawn(async move {
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
    let build = origin.build();
    let (upgrade_tx, mut upgrade_rx) = tokio::sync::mpsc::channel::<upgrade::Request>(4);
    let mut status_tasks = daemon::running(
        &settings,
        &shared,
        info,
        control.clone(),
        cert_reload.clone(),
        upgrade_tx,
        &build,
    );
    // The file watch stops with the control socket (an old master draining after an upgrade
    // leaves the certificates to the new one).
    if let Some((files, every)) = launch.watched_cert_files() {
        status_tasks.push(super::certs::watch(files, every, cert_reload));
    }
    // Type=notify, and the master this one replaces: ready once the workers serve.
    {
        let shared = shared.clone();
        let slots = settings.worker_num + settings.task_worker_num;
        let build = build.clone();
        let (r, cfgs) = (reactor.clone(), cfgs.clone());
        tasks.push(tokio::spawn(async move {
            if !super::systemd::wait_serving(&shared, slots, upgrade::READY_TIMEOUT).await {
                tracing::warn!("the workers did not all start in time; reporting ready anyway");
            }
            match upgrade::report_ready(build) {
                Some(sock) if expect_moves => {
                    tokio::spawn(super::handover::receive(sock, r, cfgs, gate_tx));
                }
                _ => {
                    let _ = gate_tx.send(true);
                }
            }
            super::systemd::notify(&format!("READY=1\nMAINPID={}", std::process::id()));
        }));
    }
    tasks.extend(super::systemd::watchdog());
    if let (Some(l), Some(m)) = (admin, metrics::get()) {
        let l = tokio::net::TcpListener::from_std(l)
            .map_err(Error::io("registering the admin listener"))?;
        tracing::info!(addr = ?l.local_addr().ok(), "admin listener: /metrics and the dashboard");
        let a = super::admin::Admin {
            settings: settings.clone(),
            shared: shared.clone(),
            metrics: m,
            reactor: reactor.clone(),
            tables: Arc::new(app.tables.clone()),
        };
        // With the control socket: an old master stops serving it when an upgrade drains it.
        status_tasks.push(tokio::spawn(super::admin::serve(l, a)));
    }
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
    let mut upgrading: Option<Upgrading> = None;
    let mut handed_over = false;
    let mut handover_sock = None;
    let n = settings.worker_num;
    let slots = |r: std::ops::Range<usize>| -> Vec<(usize, u32)> {
        r.map(|i| (i, shared.worker(i).pid.load(Relaxed))).collect()
    };
    loop {
        tokio::select! {
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            _ = sigusr1.recv() => {
                // The pids before the manager hears of it: it may replace a slot at once.
                let before = slots(0..n + settings.task_worker_num);
                tell_manager(&control, Command::Reload).await;
                tasks.push(reload_notice(&shared, before, &settings));
            }
            _ = sigusr2.recv() => {
                let before = slots(n..n + settings.task_worker_num);
                tell_manager(&control, Command::ReloadTasks).await;
                tasks.push(reload_notice(&shared, before, &settings));
            }
            _ = sigwinch.recv() => upgrading = start_upgrade(upgrading, &origin, &launch, None, None),
            Some(req) = upgrade_rx.recv() => {
                upgrading = start_upgrade(upgrading, &origin, &launch, req.exe, Some(req.reply));
            }
            res = async { (&mut upgrading.as_mut().expect("guarded").task).await }, if upgrading.is_some() => {
                let u = upgrading.take().expect("guarded");
                let res = res.unwrap_or_else(|e| Err(format!("the upgrade task failed: {e}")));
                let answer = match &res {
                    Ok(done) => {
                        tracing::info!(new_pid = done.new.pid, exe = %done.new.exe, "upgrade: the new master serves; this one stops accepting and drains");
                        serde_json::json!({"ok": true, "old": build, "new": done.new})
                    }
                    Err(why) => {
                        tracing::error!(error = %why, "upgrade failed; this master keeps serving");
                        serde_json::json!({"ok": false, "pid": std::process::id(), "error": why})
                    }
                };
                if let Some(reply) = u.reply {
                    let _ = reply.send(answer.to_string());
                }
                if let Ok(done) = res {
                    super::systemd::notify(&format!("MAINPID={}\nREADY=1", done.new.pid));
                    handover_sock = done.sock;
                    handed_over = true;
                    break;
                }
            }
            _ = sigchld.recv() => {
                if reap(manager) {
                    tracing::error!("the manager process died; shutting down");
                    manager_gone = true;
                    break;
                }
            }
        }
    }
    if handed_over {
        drain(
            &shared,
            &reactor,
            &settings,
            &mut accepting,
            &mut status_tasks,
            &mut sigterm,
            handover_sock.map(|s| (s, &cfgs[..])),
        )
        .await;
    } else {
        super::systemd::notify("STOPPING=1");
    }
    tracing::info!("phase=ShuttingDown");
    shared.header().phase.store(PHASE_STOPPING, Release);
    reactor.stopping.store(true, Release);
    for t in tasks.iter().chain(&accepting).chain(&status_tasks) {
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
            super::handover::spawn_conn(
                reactor.clone(),
                conn,
                framing.clone(),
                crate::owner::conn::Start::Fresh,
            )
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

impl Launch {
    /// The files of the TLS listeners that are watched (`TlsSettings::watch`: certificate,
    /// key, client CA) and the shortest period asked; `None` if none is.
    fn watched_cert_files(&self) -> Option<(Vec<std::path::PathBuf>, Duration)> {
        let mut files = Vec::new();
        let mut every: Option<Duration> = None;
        for t in self.tls.iter().flatten() {
            let s = t.settings();
            let Some(w) = s.watch else { continue };
            every = Some(every.map_or(w, |e| e.min(w)));
            files.extend([s.cert_file.clone(), s.key_file.clone()]);
            files.extend(s.client_ca_file.clone());
        }
        files.sort();
        files.dedup();
        every.map(|e| (files, e))
    }
}

/// Reloads the TLS certificates (`rswoole reload-certs`).
pub(crate) type CertReload = Arc<dyn Fn() -> std::result::Result<String, String> + Send + Sync>;

impl Launch {
    fn cert_reload(&self) -> CertReload {
        let tls = self.tls.clone();
        let addrs: Vec<SocketAddr> = self.listeners.iter().map(|b| b.addr).collect();
        let shared = self.shared.clone();
        // The control socket, the signal and the file watch may ask at once: one at a time.
        let one = std::sync::Mutex::new(());
        Arc::new(move || {
            let _one = one.lock().unwrap_or_else(|e| e.into_inner());
            reload_certs(&tls, &addrs, &shared)
        })
    }
}

/// `rswoole reload-certs`: reads and checks every TLS listener's files (certificate, key,
/// client CA); if all pass,
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
        let s = t.settings();
        let ca = match &s.client_ca_file {
            Some(ca) => format!(", client CA {}", ca.display()),
            None => String::new(),
        };
        lines.push(format!(
            "listener {} serves {} (sha256 {hex}){ca}",
            addrs[i],
            s.cert_file.display()
        ));
    }
    shared.header().certs_gen.store(gen, Relaxed);
    let msg = lines.join("\n");
    tracing::info!(gen, "reload-certs: {}", msg.replace('\n', "; "));
    Ok(msg)
}

/// An upgrade under way: its task, and who waits for its answer.
struct Upgrading {
    task: tokio::task::JoinHandle<std::result::Result<upgrade::Done, String>>,
    reply: Option<tokio::sync::oneshot::Sender<String>>,
}

/// Starts an upgrade to `exe` (default: this master's executable path) unless one is under
/// way (then `reply` hears so); returns the one under way.
fn start_upgrade(
    current: Option<Upgrading>,
    origin: &upgrade::Origin,
    launch: &Launch,
    exe: Option<std::path::PathBuf>,
    reply: Option<tokio::sync::oneshot::Sender<String>>,
) -> Option<Upgrading> {
    let refuse = |reply: Option<tokio::sync::oneshot::Sender<String>>, why: String| {
        tracing::error!(error = %why, "upgrade refused");
        if let Some(r) = reply {
            let _ = r.send(
                serde_json::json!({"ok": false, "pid": std::process::id(), "error": why})
                    .to_string(),
            );
        }
    };
    if current.is_some() {
        refuse(reply, "an upgrade is already under way".into());
        return current;
    }
    let mut fds = Vec::new();
    for (i, b) in launch.listeners.iter().enumerate() {
        let fd = match (&b.tcp, &b.udp) {
            (Some(t), _) => t.try_clone().map(OwnedFd::from),
            (None, Some(u)) => u.try_clone().map(OwnedFd::from),
            (None, None) => continue,
        };
        match fd {
            Ok(fd) => fds.push((fd, format!("listener{i}"))),
            Err(e) => {
                refuse(reply, format!("cannot duplicate listener {i}: {e}"));
                return None;
            }
        }
    }
    let exe = exe.unwrap_or_else(|| origin.exe.clone());
    let origin = origin.clone();
    // Process mode: the live connections follow the listeners.
    let moves = launch.settings.mode == Mode::Process;
    Some(Upgrading {
        task: tokio::spawn(async move { upgrade::run(&origin, exe, fds, moves).await }),
        reply,
    })
}

/// After a reload request: `RELOADING=1` now, `READY=1` once every slot of `before` runs a
/// new serving process (or after `max_wait_time` + 30 s).
fn reload_notice(
    shared: &Shared,
    before: Vec<(usize, u32)>,
    settings: &Settings,
) -> tokio::task::JoinHandle<()> {
    super::systemd::reloading();
    let shared = shared.clone();
    let limit = settings.max_wait_time + Duration::from_secs(30);
    tokio::spawn(async move {
        super::systemd::wait_replaced(&shared, &before, limit).await;
        super::systemd::notify("READY=1");
    })
}

/// The old master after an upgrade: stops accepting (the new master accepts on the same
/// listening sockets; Base-mode workers close their own listeners when they see the phase),
/// moves the connections that can move (`handover`: the upgrade socket and the listeners'
/// configurations; Process mode), says `Connection: close` on every HTTP response, and waits
/// (at most `max_wait_time`, or until SIGTERM) for the other connections to end before the
/// usual stop.
#[allow(clippy::too_many_arguments)]
async fn drain(
    shared: &Shared,
    reactor: &Arc<Reactor>,
    settings: &Settings,
    accepting: &mut Vec<tokio::task::JoinHandle<()>>,
    status: &mut Vec<tokio::task::JoinHandle<()>>,
    sigterm: &mut tokio::signal::unix::Signal,
    handover: Option<(OwnedFd, &[Arc<ConnConfig>])>,
) {
    for t in accepting.drain(..).chain(status.drain(..)) {
        t.abort();
    }
    // Process mode: the connections that can move go first; HTTP responses still keep the
    // connection alive meanwhile, so a request in flight does not stop its connection from
    // moving once it is answered.
    if let Some((sock, cfgs)) = handover {
        super::handover::send_all(reactor, sock, cfgs).await;
    }
    shared.header().phase.store(PHASE_DRAINING, Release);
    let deadline = tokio::time::Instant::now() + settings.max_wait_time;
    let start = Instant::now();
    loop {
        // Process mode: the reactor's connections; Base mode: the workers' (counted in shm).
        let left = match settings.mode {
            Mode::Process => reactor.conns.all().len(),
            Mode::Base => shared.header().live.load(Relaxed) as usize,
        };
        if left == 0 {
            tracing::info!(waited = ?start.elapsed(), "drained: no connection left");
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {
                tracing::info!(left, "drain: max_wait_time passed; closing the rest");
                // WebSocket clients that stayed (compression context, mid-handshake) hear
                // why: a Close 1001 (going away) before the socket closes, so they reconnect
                // to the new master.
                if settings.mode == Mode::Process {
                    for c in reactor.conns.all() {
                        if crate::owner::ws::is_open(&c) {
                            crate::owner::ws::disconnect(&c, 1001, "server upgraded");
                        }
                    }
                }
                return;
            }
            _ = sigterm.recv() => return,
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_workers_each_have_room_under_their_own_open_files_limit() {
        // The master owns every connection: one limit.
        assert_eq!(connection_room(20_000, Mode::Process, 4), 19_936);
        // Each Base worker owns its own: 4 workers, 4 limits (50,000 fits under 20,000).
        assert_eq!(connection_room(20_000, Mode::Base, 4), 4 * 19_936);
        assert_eq!(connection_room(20_000, Mode::Base, 1), 19_936);
        // A tiny limit still leaves a few.
        assert_eq!(connection_room(10, Mode::Process, 1), 16);
    }
}
