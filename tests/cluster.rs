//! Several chat nodes share one Redis (`--redis URL --node NAME`): a broadcast reaches the
//! clients of every node exactly once, in each sender's order; the membership list follows
//! the nodes' heartbeats (a node killed with kill -9 disappears within seconds) and the
//! survivors keep working. Each test starts its own `redis-server` on a free port (`.ci/run`
//! installs the Debian package) and kills it by PID.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use rswoole_codec::ws::MessageKind;

use crate::tls::Pki;
use crate::util::*;
use crate::websocket::Ws;

const T: Duration = Duration::from_secs(30);

/// A `redis-server` of this test: no persistence, killed by PID on drop.
struct Redis {
    child: Child,
    port: u16,
    /// `requirepass`, if any.
    pass: Option<String>,
    /// The TLS port (`--tls-port`), if any: then [`url`](Self::url) is `rediss://` on it.
    tls_port: Option<u16>,
    _dir: tempfile::TempDir,
}

impl Redis {
    fn start() -> Redis {
        Redis::start_on(free_port())
    }

    fn start_on(port: u16) -> Redis {
        Redis::start_with(port, None)
    }

    fn start_with(port: u16, pass: Option<&str>) -> Redis {
        Redis::spawn(port, pass, None)
    }

    /// A Redis that serves TLS on a second port with `pki`'s server certificate (clients
    /// not asked for one); the plain port stays for [`cmd`](Self::cmd).
    fn start_tls(pki: &Pki) -> Redis {
        Redis::spawn(free_port(), None, Some(pki))
    }

    fn spawn(port: u16, pass: Option<&str>, tls: Option<&Pki>) -> Redis {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cmd = Command::new("redis-server");
        if let Some(p) = pass {
            cmd.args(["--requirepass", p]);
        }
        let tls_port = tls.map(|pki| {
            let tls_port = free_port();
            cmd.args([
                "--tls-port",
                &tls_port.to_string(),
                "--tls-auth-clients",
                "no",
            ])
            .arg("--tls-cert-file")
            .arg(&pki.cert)
            .arg("--tls-key-file")
            .arg(&pki.key)
            .arg("--tls-ca-cert-file")
            .arg(&pki.ca);
            tls_port
        });
        let child = cmd
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (Debian package redis-server; .ci/run installs it)");
        let r = Redis {
            child,
            port,
            pass: pass.map(str::to_string),
            tls_port,
            _dir: dir,
        };
        let deadline = Instant::now() + T;
        while r.cmd("PING") != "+PONG" {
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer PING"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        r
    }

    fn url(&self) -> String {
        if let Some(p) = self.tls_port {
            return format!("rediss://127.0.0.1:{p}/");
        }
        match &self.pass {
            Some(p) => format!("redis://:{p}@127.0.0.1:{}/", self.port),
            None => format!("redis://127.0.0.1:{}/", self.port),
        }
    }

    /// One inline command (after `AUTH` with a password); its first reply line (empty if
    /// Redis cannot be reached).
    fn cmd(&self, line: &str) -> String {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return String::new();
        };
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let auth = self.pass.as_ref().map(|p| format!("AUTH {p}\r\n"));
        let skip = auth.is_some() as usize;
        let req = auth.unwrap_or_default() + line + "\r\n";
        if s.write_all(req.as_bytes()).is_err() {
            return String::new();
        }
        let mut got = Vec::new();
        let mut buf = [0u8; 512];
        while got.iter().filter(|&&b| b == b'\n').count() <= skip {
            match s.read(&mut buf) {
                Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
                _ => break,
            }
        }
        String::from_utf8_lossy(&got)
            .lines()
            .nth(skip)
            .unwrap_or("")
            .to_string()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Chat node `name` on a free port, joined to `redis`, ready once it registered and
/// subscribed.
fn node(redis: &Redis, name: &str, mode: &str) -> ServerProc {
    node_with(redis, name, mode, &[])
}

/// Three nodes, both modes: n1 (Process), n2 (Base), n3 (Process).
fn mixed_nodes(redis: &Redis) -> (ServerProc, ServerProc, ServerProc) {
    (
        node(redis, "n1", "process"),
        node(redis, "n2", "base"),
        node(redis, "n3", "process"),
    )
}

/// As [`node`], with more flags; with `--task-worker-num` also ready once it takes tasks.
fn node_with(redis: &Redis, name: &str, mode: &str, extra: &[&str]) -> ServerProc {
    let url = redis.url();
    let mut args = vec![
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--worker-num",
        "2",
        "--mode",
        mode,
        "--redis",
        &url,
        "--node",
        name,
    ];
    args.extend_from_slice(extra);
    let srv = ServerProc::start("chat", &args, 0);
    srv.wait_stderr("cluster: node subscribed", 1, T);
    srv.wait_stderr("cluster: node registered", 1, T);
    if extra.contains(&"--task-worker-num") {
        srv.wait_stderr("cluster: taking cluster tasks", 1, T);
    }
    srv
}

/// `n` clients on `srv`, each established (its on_open printed) on return.
async fn clients(srv: &ServerProc, n: usize) -> Vec<Ws> {
    let before = srv.stdout().matches(" joined ").count();
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(Ws::connect(srv.port, false).await);
    }
    srv.wait_stdout(" joined ", before + n, T);
    v
}

async fn text(ws: &mut Ws) -> String {
    let (kind, data) = tokio::time::timeout(T, ws.message())
        .await
        .expect("a message in time");
    assert_eq!(kind, MessageKind::Text);
    String::from_utf8(data.to_vec()).unwrap()
}

/// Asks `/nodes` through `ws` (a client that no broadcast is in flight for): `name=count`.
async fn nodes(ws: &mut Ws) -> Vec<(String, u64)> {
    ws.send(MessageKind::Text, b"/nodes").await;
    let line = text(ws).await;
    let rest = line
        .trim_end()
        .strip_prefix("nodes")
        .unwrap_or_else(|| panic!("{line:?}"));
    rest.split_whitespace()
        .map(|t| {
            let (n, c) = t.split_once('=').unwrap();
            (n.to_string(), c.parse().unwrap())
        })
        .collect()
}

/// Reads `count` broadcasts from each client; checks each sender's messages (`{s}-{k}`)
/// arrive once each, k in order.
async fn expect_broadcasts(all: &mut [Ws], senders: &[String], per: usize) {
    for (i, ws) in all.iter_mut().enumerate() {
        let mut next: HashMap<String, usize> = HashMap::new();
        for _ in 0..senders.len() * per {
            let m = text(ws).await;
            let body = m.trim_end().split_once(':').expect("from{fd}:body").1;
            let (s, k) = body.rsplit_once('-').expect("sender-k");
            let k: usize = k.parse().unwrap();
            let n = next.entry(s.to_string()).or_default();
            assert_eq!(*n, k, "client {i}: sender {s}: out of order or duplicate");
            *n += 1;
        }
        for s in senders {
            assert_eq!(next.get(s), Some(&per), "client {i} missed some of {s}");
        }
    }
}

/// Three nodes (two Process mode, one Base mode), 12 clients each; one sender per node sends
/// 20 messages: all 36 clients get all 60 exactly once, each sender's in order, then one more
/// broadcast arrives next everywhere (no late duplicate). Fails without the cluster: a
/// node's clients would get only its own senders' messages.
#[test]
fn cluster_broadcast_three_nodes_exactly_once_in_order() {
    let redis = Redis::start();
    let nodes_ = [
        node(&redis, "n1", "process"),
        node(&redis, "n2", "base"),
        node(&redis, "n3", "process"),
    ];
    const PER_NODE: usize = 12;
    const PER: usize = 20;
    rt().block_on(async {
        let mut all = Vec::new();
        for n in &nodes_ {
            all.extend(clients(n, PER_NODE).await);
        }
        let senders: Vec<String> = (0..3).map(|i| format!("node{i}")).collect();
        // The first client of each node sends; messages interleave across nodes.
        for k in 0..PER {
            for (i, s) in senders.iter().enumerate() {
                all[i * PER_NODE]
                    .send(MessageKind::Text, format!("{s}-{k}").as_bytes())
                    .await;
            }
        }
        expect_broadcasts(&mut all, &senders, PER).await;
        all[PER_NODE].send(MessageKind::Text, b"end").await;
        for ws in all.iter_mut() {
            assert!(text(ws).await.ends_with(":end\n"));
        }
        // Membership and counts: every node, with its clients.
        let listed = nodes(&mut all[0]).await;
        let names: Vec<&str> = listed.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["n1", "n2", "n3"]);
    });
}

/// kill -9 of every process of node n3: the other two keep broadcasting to each other, and
/// n3 leaves the membership list within a few seconds (its heartbeat key expires, TTL 3 s).
#[test]
fn cluster_node_killed_leaves_and_others_keep_working() {
    let redis = Redis::start();
    let n1 = node(&redis, "n1", "process");
    let n2 = node(&redis, "n2", "process");
    let n3 = node(&redis, "n3", "process");
    rt().block_on(async {
        let mut a = clients(&n1, 3).await;
        let mut b = clients(&n2, 2).await;
        let _c = clients(&n3, 1).await;
        // The counts are those of each node's last heartbeat: wait for the one after connect.
        let deadline = Instant::now() + T;
        loop {
            let got = nodes(&mut a[0]).await;
            let want = [("n1", 3), ("n2", 2), ("n3", 1)].map(|(n, c)| (n.to_string(), c));
            if got == want {
                break;
            }
            assert!(Instant::now() < deadline, "nodes: {got:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = killpg(Pid::from_raw(n3.pid()), Signal::SIGKILL);
        let killed = Instant::now();
        loop {
            let got = nodes(&mut a[0]).await;
            if got.iter().all(|(n, _)| n != "n3") {
                assert_eq!(got.len(), 2, "{got:?}");
                break;
            }
            assert!(
                killed.elapsed() < Duration::from_secs(10),
                "n3 still listed"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        eprintln!("n3 left the list {:?} after kill -9", killed.elapsed());
        let senders = vec!["s1".to_string()];
        for k in 0..10 {
            b[0].send(MessageKind::Text, format!("s1-{k}").as_bytes())
                .await;
        }
        expect_broadcasts(&mut a, &senders, 10).await;
        expect_broadcasts(&mut b, &senders, 10).await;
    });
    assert!(redis.cmd("PING") == "+PONG");
}

/// Waits up to `limit` for a text message on `ws`; `None` if none came.
async fn text_within(ws: &mut Ws, limit: Duration) -> Option<String> {
    match tokio::time::timeout(limit, ws.message()).await {
        Ok((_, data)) => Some(String::from_utf8(data.to_vec()).unwrap()),
        Err(_) => None,
    }
}

/// Redis is killed mid-traffic and restarted on the same port: the nodes do not crash, keep
/// serving their own clients (the chat page over HTTP), the sender of a broadcast is told
/// (`error: ...` from the chat, a `SendError::Cluster` in the server), and once Redis is back
/// broadcasts cross nodes again, in order.
#[test]
fn cluster_redis_down_and_back() {
    let redis = Redis::start();
    let port = redis.port;
    let n1 = node(&redis, "n1", "process");
    let n2 = node(&redis, "n2", "base");
    rt().block_on(async {
        let mut a = clients(&n1, 1).await.pop().unwrap();
        let mut b = clients(&n2, 1).await.pop().unwrap();
        a.send(MessageKind::Text, b"up-0").await;
        assert!(text(&mut b).await.ends_with(":up-0\n"));
        assert!(text(&mut a).await.ends_with(":up-0\n"));
        drop(redis);
        // Traffic goes on; the sender is told once the node knows Redis is gone.
        let deadline = Instant::now() + T;
        let mut k = 0;
        let err = loop {
            a.send(MessageKind::Text, format!("down-{k}").as_bytes())
                .await;
            k += 1;
            if let Some(m) = text_within(&mut a, Duration::from_millis(300)).await {
                if m.starts_with("error: ") {
                    break m;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no error reported while redis is down"
            );
        };
        assert!(err.contains("redis"), "{err:?}");
        // Local service goes on: the page, and membership answers with an error.
        assert_eq!(http_get(n1.port, "/").status, 200);
        assert_eq!(http_get(n2.port, "/").status, 200);
        a.send(MessageKind::Text, b"/nodes").await;
        loop {
            let m = text(&mut a).await;
            if m.starts_with("error: ") && m.contains("redis unavailable") {
                break;
            }
        }
        let redis = Redis::start_on(port);
        // Broadcasts cross nodes again once both nodes reconnected.
        let deadline = Instant::now() + T;
        let mut k = 0;
        loop {
            a.send(MessageKind::Text, format!("back-{k}").as_bytes())
                .await;
            k += 1;
            if let Some(m) = text_within(&mut b, Duration::from_millis(300)).await {
                if m.contains(":back-") {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "broadcasts did not resume");
        }
        for i in 0..10 {
            a.send(MessageKind::Text, format!("after-{i}").as_bytes())
                .await;
        }
        let mut want = 0;
        while want < 10 {
            let m = text(&mut b).await;
            if let Some((_, i)) = m.trim_end().rsplit_once(":after-") {
                assert_eq!(i.parse::<usize>().unwrap(), want, "after Redis came back");
                want += 1;
            }
        }
        assert_eq!(redis.cmd("PING"), "+PONG");
    });
    for n in [&n1, &n2] {
        assert!(alive(n.pid()), "a node died with redis");
    }
}

/// deploy/nginx-cluster.conf with a real nginx in front of three nodes: 9 WebSocket clients
/// through nginx land on every node (least_conn), and one client's messages reach all 9.
#[test]
fn cluster_behind_nginx() {
    let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let Some(nginx) = nginx else {
        assert!(
            std::env::var("CI").is_err(),
            "nginx must be installed in CI (.ci/run installs nginx-light)"
        );
        eprintln!("nginx not installed: skipping (CI installs it)");
        return;
    };
    let redis = Redis::start();
    let nodes_ = [
        node(&redis, "n1", "process"),
        node(&redis, "n2", "process"),
        node(&redis, "n3", "base"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let listen = free_port();
    let mut site = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/nginx-cluster.conf"
    ))
    .unwrap()
    .replace("listen 8081;", &format!("listen 127.0.0.1:{listen};"));
    for (i, n) in nodes_.iter().enumerate() {
        site = site.replace(
            &format!("server 127.0.0.1:960{};", i + 1),
            &format!("server 127.0.0.1:{};", n.port),
        );
        site = site.replace(
            &format!("server 127.0.0.1:960{} ", i + 1),
            &format!("server 127.0.0.1:{} ", n.port),
        );
    }
    assert!(
        nodes_
            .iter()
            .all(|n| site.contains(&format!(":{} ", n.port)))
            && site.contains(&format!(":{listen};")),
        "deploy/nginx-cluster.conf changed shape: update this test"
    );
    let d = dir.path().display();
    let main = format!(
        "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{ worker_connections 256; }}\nhttp {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  include {d}/site.conf;\n}}\n"
    );
    std::fs::write(dir.path().join("site.conf"), site).unwrap();
    std::fs::write(dir.path().join("nginx.conf"), main).unwrap();
    let ng = Command::new(nginx)
        .args(["-p", &d.to_string(), "-c", &format!("{d}/nginx.conf")])
        .args(["-g", "daemon off; user root;"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nginx");
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _ng = Kill(ng);
    let deadline = Instant::now() + T;
    while TcpStream::connect(("127.0.0.1", listen)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nginx did not listen: {}",
            std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(30));
    }
    rt().block_on(async {
        let mut all = Vec::new();
        for i in 0..9 {
            all.push(Ws::connect(listen, false).await);
            // Established on its node before the next connects (least_conn sees it).
            let deadline = Instant::now() + T;
            while nodes_
                .iter()
                .map(|n| n.stdout().matches(" joined ").count())
                .sum::<usize>()
                <= i
            {
                assert!(Instant::now() < deadline, "client {i} not established");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        for n in &nodes_ {
            assert!(n.stdout().contains(" joined "), "a node got no client");
        }
        for k in 0..10 {
            all[0]
                .send(MessageKind::Text, format!("via-{k}").as_bytes())
                .await;
        }
        expect_broadcasts(&mut all, &["via".to_string()], 10).await;
    });
}

/// Push by user and by cluster-wide id: alice has a connection on n1 and one on n2, bob one on
/// n3. From n3, `/touser alice` reaches both of alice's (and not bob), `/to n1 FD` reaches one
/// connection of n1; after kill -9 of n2, alice's entry there stops counting within seconds
/// and a push to n2 is an error, not `Ok`.
#[test]
fn cluster_push_by_uid_and_by_id() {
    let redis = Redis::start();
    let (n1, n2, n3) = mixed_nodes(&redis);
    rt().block_on(async {
        let mut a1 = clients(&n1, 1).await.pop().unwrap();
        let mut a2 = clients(&n2, 1).await.pop().unwrap();
        let mut b = clients(&n3, 1).await.pop().unwrap();
        for (ws, uid) in [(&mut a1, "alice"), (&mut a2, "alice"), (&mut b, "bob")] {
            ws.send(MessageKind::Text, format!("/bind {uid}").as_bytes())
                .await;
            assert_eq!(text(ws).await, format!("bound {uid}\n"));
        }
        b.send(MessageKind::Text, b"/touser alice hello").await;
        assert_eq!(text(&mut b).await, "pushed 2\n");
        assert_eq!(text(&mut a1).await, "hello\n");
        assert_eq!(text(&mut a2).await, "hello\n");
        a1.send(MessageKind::Text, b"/whoami").await;
        let me = text(&mut a1).await;
        let id = me.trim_end().strip_prefix("you are ").unwrap().to_string();
        let (node_, fd) = id.split_once('/').unwrap();
        assert_eq!(node_, "n1");
        b.send(MessageKind::Text, format!("/to n1 {fd} direct").as_bytes())
            .await;
        assert_eq!(text(&mut b).await, "sent\n");
        assert_eq!(text(&mut a1).await, "direct\n");
        // bob got nothing of alice's: his next message is this broadcast.
        a1.send(MessageKind::Text, b"mark").await;
        assert!(text(&mut b).await.ends_with(":mark\n"));
        assert!(text(&mut a1).await.ends_with(":mark\n"));
        assert!(text(&mut a2).await.ends_with(":mark\n"));
        let _ = killpg(Pid::from_raw(n2.pid()), Signal::SIGKILL);
        let killed = Instant::now();
        loop {
            b.send(MessageKind::Text, b"/touser alice again").await;
            let r = text(&mut b).await;
            if r == "pushed 1\n" {
                break;
            }
            assert_eq!(r, "pushed 2\n");
            // (a1 got this one too)
            assert_eq!(text(&mut a1).await, "again\n");
            assert!(
                killed.elapsed() < Duration::from_secs(10),
                "n2 still counted"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(text(&mut a1).await, "again\n");
        b.send(MessageKind::Text, b"/to n2 1 lost").await;
        let r = text(&mut b).await;
        assert!(r.starts_with("error: no live node"), "{r:?}");
    });
}

/// `/tasks COUNT MS TIMEOUT_MS` through `ws`: which node ran how many (`tasks ok=N a=1 b=2`),
/// or the error line.
async fn tasks(
    ws: &mut Ws,
    count: usize,
    ms: u64,
    timeout_ms: u64,
) -> Result<Vec<(String, usize)>, String> {
    ws.send(
        MessageKind::Text,
        format!("/tasks {count} {ms} {timeout_ms}").as_bytes(),
    )
    .await;
    let line = text(ws).await;
    let Some(rest) = line.trim_end().strip_prefix(&format!("tasks ok={count}")) else {
        assert!(line.starts_with("error: "), "{line:?}");
        return Err(line);
    };
    let ran: Vec<(String, usize)> = rest
        .split_whitespace()
        .map(|t| {
            let (n, c) = t.split_once('=').unwrap();
            (n.to_string(), c.parse().unwrap())
        })
        .collect();
    assert_eq!(ran.iter().map(|(_, c)| c).sum::<usize>(), count, "{line:?}");
    Ok(ran)
}

/// The `TAG-I` of every `task TAG-I started on NODE` line of `srv`.
fn started(srv: &ServerProc) -> Vec<String> {
    srv.stdout()
        .lines()
        .filter_map(|l| {
            l.strip_prefix("task ")?
                .split_once(" started on ")
                .map(|(t, _)| t.to_string())
        })
        .collect()
}

/// Twelve tasks queued at once from n1 to the cluster (each node has one task worker, each
/// task takes 300 ms): every caller gets its own result (the example checks it), n2 and n3
/// ran some of them, and each task ran exactly once over the three nodes. Then a caller on
/// n2 gets results too. Fails without the cluster queue: n1 alone would run them all.
#[test]
fn cluster_tasks_run_on_every_node() {
    let redis = Redis::start();
    let tw = ["--task-worker-num", "1"];
    let n1 = node_with(&redis, "n1", "process", &tw);
    let n2 = node_with(&redis, "n2", "base", &tw);
    let n3 = node_with(&redis, "n3", "process", &tw);
    rt().block_on(async {
        let mut a = clients(&n1, 1).await.pop().unwrap();
        let ran = tasks(&mut a, 12, 300, 20_000).await.unwrap();
        let on = |n: &str| ran.iter().find(|(m, _)| m == n).map_or(0, |(_, c)| *c);
        assert!(
            on("n2") > 0 && on("n3") > 0,
            "only some nodes ran tasks: {ran:?}"
        );
        let mut all: Vec<String> = [&n1, &n2, &n3].iter().flat_map(|n| started(n)).collect();
        all.sort();
        let n = all.len();
        all.dedup();
        assert_eq!(
            (n, all.len()),
            (12, 12),
            "a task ran twice or not at all: {all:?}"
        );
        let mut b = clients(&n2, 1).await.pop().unwrap();
        tasks(&mut b, 3, 10, 20_000).await.unwrap();
    });
}

/// n1 queues four 2-second tasks (it has no task workers: n2 and n3 run them, one at a time
/// each); as soon as n2 started one, every process of n2 is killed with kill -9. After the
/// claim timeout (1.5 s) n3 takes the dead node's task over and runs it again: the caller
/// gets all four results, all from n3, and the killed task ran on n3 too.
#[test]
fn cluster_task_of_killed_node_reruns_elsewhere() {
    let redis = Redis::start();
    let claim = ["--cluster-task-claim-ms", "1500"];
    let n1 = node_with(&redis, "n1", "process", &claim);
    let tw = ["--task-worker-num", "1", "--cluster-task-claim-ms", "1500"];
    let n2 = node_with(&redis, "n2", "process", &tw);
    let n3 = node_with(&redis, "n3", "process", &tw);
    rt().block_on(async {
        let mut a = clients(&n1, 1).await.pop().unwrap();
        a.send(MessageKind::Text, b"/tasks 4 2000 60000").await;
        n2.wait_stdout(" started on n2", 1, T);
        let _ = killpg(Pid::from_raw(n2.pid()), Signal::SIGKILL);
        let lost = started(&n2);
        assert_eq!(lost.len(), 1, "{lost:?}");
        let line = text(&mut a).await;
        assert_eq!(line, "tasks ok=4 n3=4\n");
        let on3 = started(&n3);
        assert!(
            on3.contains(&lost[0]),
            "{lost:?} did not run again on n3: {on3:?}"
        );
        assert_eq!(on3.len(), 4, "{on3:?}");
    });
}

/// Redis killed: a cluster task is refused with a typed error naming Redis (the caller is
/// told, nothing hangs); Redis restarted on the same port: the nodes' consumers recreate
/// the group and tasks run across nodes again.
#[test]
fn cluster_tasks_redis_down_and_back() {
    let redis = Redis::start();
    let port = redis.port;
    let tw = ["--task-worker-num", "1"];
    let n1 = node_with(&redis, "n1", "process", &tw);
    let n2 = node_with(&redis, "n2", "base", &tw);
    rt().block_on(async {
        let mut a = clients(&n1, 1).await.pop().unwrap();
        tasks(&mut a, 4, 10, 10_000).await.unwrap();
        drop(redis);
        let err = tasks(&mut a, 1, 10, 5_000).await.unwrap_err();
        assert!(err.contains("redis"), "{err:?}");
        let redis = Redis::start_on(port);
        let deadline = Instant::now() + T;
        while tasks(&mut a, 2, 10, 5_000).await.is_err() {
            assert!(Instant::now() < deadline, "cluster tasks did not resume");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // Both nodes take tasks again (each reconnects on its own backoff).
        loop {
            if let Ok(ran) = tasks(&mut a, 6, 100, 20_000).await {
                if ran.len() == 2 {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "a node does not take tasks again"
            );
        }
        assert_eq!(redis.cmd("PING"), "+PONG");
    });
    for n in [&n1, &n2] {
        assert!(alive(n.pid()), "a node died with redis");
    }
}

/// This client's cluster id (`/whoami`).
async fn whoami(ws: &mut Ws) -> String {
    ws.send(MessageKind::Text, b"/whoami").await;
    let me = text(ws).await;
    me.trim_end().strip_prefix("you are ").unwrap().to_string()
}

/// One command through `ws`, its answer line.
async fn ask(ws: &mut Ws, line: &str) -> String {
    ws.send(MessageKind::Text, line.as_bytes()).await;
    text(ws).await
}

/// Connection operations on cluster ids, from n3 on connections of n1 (Process mode) and n2
/// (Base mode): exists, connection info (the owner's listener port), push with an answer,
/// raw send (a WebSocket frame written with `send`), broadcast_to across three nodes, close;
/// then a closed connection is refused by its owner, a malformed id is an error, and after
/// kill -9 of n2 an id of n2 is `no live node`, not `exists false`.
#[test]
fn cluster_connection_ops_across_nodes() {
    let redis = Redis::start();
    let (n1, n2, n3) = mixed_nodes(&redis);
    rt().block_on(async {
        let mut a1 = clients(&n1, 1).await.pop().unwrap();
        let mut a2 = clients(&n2, 1).await.pop().unwrap();
        let mut b = clients(&n3, 1).await.pop().unwrap();
        let (id1, id2, idb) = (
            whoami(&mut a1).await,
            whoami(&mut a2).await,
            whoami(&mut b).await,
        );
        assert_eq!(
            ask(&mut b, &format!("/exists {id1}")).await,
            "exists true\n"
        );
        assert_eq!(
            ask(&mut b, &format!("/exists {id2}")).await,
            "exists true\n"
        );
        assert_eq!(
            ask(&mut b, &format!("/info {id1}")).await,
            format!("info 127.0.0.1 {}\n", n1.port)
        );
        assert_eq!(
            ask(&mut b, &format!("/info {id2}")).await,
            format!("info 127.0.0.1 {}\n", n2.port)
        );
        assert_eq!(ask(&mut b, &format!("/push {id2} hi two")).await, "sent\n");
        assert_eq!(text(&mut a2).await, "hi two\n");
        assert_eq!(ask(&mut b, &format!("/rawsend {id1} raw")).await, "sent\n");
        assert_eq!(text(&mut a1).await, "raw");
        // b is a target too: its copy and the answer come in either order.
        let mut got = vec![
            ask(&mut b, &format!("/multi {id1},{id2},{idb} all")).await,
            text(&mut b).await,
        ];
        got.sort();
        assert_eq!(got, ["all\n", "reached 3\n"]);
        for ws in [&mut a1, &mut a2] {
            assert_eq!(text(ws).await, "all\n");
        }
        let fd1 = id1.split_once('/').unwrap().1.to_string();
        assert_eq!(ask(&mut b, &format!("/kick {id1}")).await, "kicked\n");
        n1.wait_stdout(&format!("client {fd1} left"), 1, T);
        assert_eq!(
            ask(&mut b, &format!("/exists {id1}")).await,
            "exists false\n"
        );
        assert_eq!(ask(&mut b, &format!("/info {id1}")).await, "info none\n");
        let r = ask(&mut b, &format!("/push {id1} late")).await;
        assert!(
            r.starts_with("error: refused by the owning node: "),
            "{r:?}"
        );
        let r = ask(&mut b, "/exists n1").await;
        assert!(r.contains("not a cluster connection id"), "{r:?}");
        let _ = killpg(Pid::from_raw(n2.pid()), Signal::SIGKILL);
        let killed = Instant::now();
        loop {
            let r = ask(&mut b, &format!("/exists {id2}")).await;
            if r.starts_with("error: no live node") {
                break;
            }
            // Until Redis noticed the dead subscriber: a request in flight times out.
            assert!(
                r == "exists true\n" || r.contains("did not answer in time"),
                "{r:?}"
            );
            assert!(killed.elapsed() < T, "a dead node's id still answers");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let r = ask(&mut b, &format!("/push {id2} gone")).await;
        assert!(r.starts_with("error: no live node"), "{r:?}");
    });
}

/// Rooms across nodes: a1 (n1), a2 (n2, Base mode) and b (n3) join room r; c (n3, not a
/// member) sends to it: the three get it, c gets only its answer. a2 leaves: two members.
/// a1's client disconnects: it leaves its rooms (one member left). a2 joins again and n2 is
/// killed: its member stops counting once n2's heartbeat expires.
#[test]
fn cluster_rooms_across_nodes() {
    let redis = Redis::start();
    let (n1, n2, n3) = mixed_nodes(&redis);
    rt().block_on(async {
        let mut a1 = clients(&n1, 1).await.pop().unwrap();
        let mut a2 = clients(&n2, 1).await.pop().unwrap();
        let mut bc = clients(&n3, 2).await;
        let mut c = bc.pop().unwrap();
        let mut b = bc.pop().unwrap();
        for ws in [&mut a1, &mut a2, &mut b] {
            assert_eq!(ask(ws, "/join r").await, "joined r\n");
        }
        assert_eq!(ask(&mut c, "/room r hello").await, "room 3\n");
        for ws in [&mut a1, &mut a2, &mut b] {
            assert_eq!(text(ws).await, "hello\n");
        }
        assert_eq!(ask(&mut a2, "/leave r").await, "left r\n");
        assert_eq!(ask(&mut c, "/room r two").await, "room 2\n");
        assert_eq!(text(&mut a1).await, "two\n");
        assert_eq!(text(&mut b).await, "two\n");
        // c and a2 got nothing of the room: their next message is this broadcast.
        b.send(MessageKind::Text, b"mark").await;
        assert!(text(&mut c).await.ends_with(":mark\n"));
        assert!(text(&mut a2).await.ends_with(":mark\n"));
        assert!(text(&mut a1).await.ends_with(":mark\n"));
        assert!(text(&mut b).await.ends_with(":mark\n"));
        drop(a1);
        n1.wait_stdout(" left", 1, T);
        let deadline = Instant::now() + T;
        loop {
            let r = ask(&mut c, "/room r three").await;
            if r == "room 1\n" {
                break;
            }
            assert_eq!(r, "room 2\n");
            assert!(
                Instant::now() < deadline,
                "a closed connection stays in its room"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(ask(&mut a2, "/join r").await, "joined r\n");
        assert_eq!(ask(&mut c, "/room r four").await, "room 2\n");
        let _ = killpg(Pid::from_raw(n2.pid()), Signal::SIGKILL);
        let killed = Instant::now();
        loop {
            let r = ask(&mut c, "/room r five").await;
            if r == "room 1\n" {
                break;
            }
            assert_eq!(r, "room 2\n");
            assert!(
                killed.elapsed() < Duration::from_secs(10),
                "a dead node's member still counts"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
}

/// The worker (`client FD joined (worker W)`) that holds connection `fd` of `srv`.
fn worker_of(srv: &ServerProc, fd: &str) -> usize {
    let needle = format!("client {fd} joined (worker ");
    let out = srv.stdout();
    let w = out
        .lines()
        .find_map(|l| l.strip_prefix(&needle)?.strip_suffix(')'))
        .unwrap_or_else(|| panic!("no join line for {fd}"));
    w.parse().unwrap()
}

/// Clients of Base-mode node `srv` (two workers), connected one by one until at least `each`
/// are held by worker 0 and by worker 1: (cluster id, client) per worker.
async fn clients_on_both_workers(srv: &ServerProc, each: usize) -> [Vec<(String, Ws)>; 2] {
    let mut by: [Vec<(String, Ws)>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..64 {
        if by.iter().all(|v| v.len() >= each) {
            return by;
        }
        let mut ws = clients(srv, 1).await.pop().unwrap();
        let id = whoami(&mut ws).await;
        let w = worker_of(srv, id.split_once('/').unwrap().1);
        by[w].push((id, ws));
    }
    panic!(
        "SO_REUSEPORT gave 64 connections to one worker: {} / {}",
        by[0].len(),
        by[1].len()
    );
}

/// Base mode, two workers, every worker owns the connections it accepted: cluster operations
/// from another node (n2) and from the other worker of the same node reach connections held
/// by worker 1 (send, close, exists, connection_info, push), and broadcasts, `push_to_user`
/// and rooms reach both workers' clients exactly once. Fails when only worker 0 (the one
/// with the node's subscription) applies requests: `send`/`close` of worker 1's connections
/// are refused there.
#[test]
fn cluster_base_mode_ops_reach_every_worker() {
    let redis = Redis::start();
    let n1 = node(&redis, "n1", "base");
    let n2 = node(&redis, "n2", "process");
    rt().block_on(async {
        let [mut on0, mut on1] = clients_on_both_workers(&n1, 2).await;
        let mut b = clients(&n2, 1).await.pop().unwrap();
        let (x1, y1) = (on1[0].0.clone(), on1[1].0.clone());
        // From another node.
        assert_eq!(ask(&mut b, &format!("/exists {x1}")).await, "exists true\n");
        assert_eq!(
            ask(&mut b, &format!("/info {x1}")).await,
            format!("info 127.0.0.1 {}\n", n1.port)
        );
        assert_eq!(ask(&mut b, &format!("/rawsend {x1} raw")).await, "sent\n");
        assert_eq!(text(&mut on1[0].1).await, "raw");
        assert_eq!(ask(&mut b, &format!("/push {x1} pushed")).await, "sent\n");
        assert_eq!(text(&mut on1[0].1).await, "pushed\n");
        // From worker 0 of the same node.
        let (_, w0) = &mut on0[0];
        assert_eq!(ask(w0, &format!("/rawsend {y1} same")).await, "sent\n");
        assert_eq!(text(&mut on1[1].1).await, "same");
        // Directory and rooms: worker 1's clients, asked for from n2.
        assert_eq!(ask(&mut on1[0].1, "/bind u1").await, "bound u1\n");
        assert_eq!(ask(&mut b, "/touser u1 to-user").await, "pushed 1\n");
        assert_eq!(text(&mut on1[0].1).await, "to-user\n");
        for (_, ws) in on1.iter_mut().chain(on0.iter_mut().take(1)) {
            assert_eq!(ask(ws, "/join r").await, "joined r\n");
        }
        let members = on1.len() + 1;
        assert_eq!(
            ask(&mut b, "/room r roomed").await,
            format!("room {members}\n")
        );
        for (_, ws) in on1.iter_mut().chain(on0.iter_mut().take(1)) {
            assert_eq!(text(ws).await, "roomed\n");
        }
        // A broadcast reaches every client of both workers once: the next message after it
        // is the next broadcast, not a copy.
        b.send(MessageKind::Text, b"one").await;
        b.send(MessageKind::Text, b"two").await;
        for (_, ws) in on0.iter_mut().chain(on1.iter_mut()) {
            assert!(text(ws).await.ends_with(":one\n"));
            assert!(text(ws).await.ends_with(":two\n"));
        }
        assert!(text(&mut b).await.ends_with(":one\n"));
        assert!(text(&mut b).await.ends_with(":two\n"));
        // Close: from n2 for x1, from worker 0 for y1.
        for (from, id) in [(&mut b, &x1), (&mut on0[0].1, &y1)] {
            assert_eq!(ask(from, &format!("/kick {id}")).await, "kicked\n");
            let fd = id.split_once('/').unwrap().1;
            n1.wait_stdout(&format!("client {fd} left"), 1, T);
            assert_eq!(ask(from, &format!("/exists {id}")).await, "exists false\n");
        }
        let r = ask(&mut b, &format!("/rawsend {x1} late")).await;
        assert!(r.starts_with("error: "), "{r:?}");
    });
}

/// `/ctask COUNT MS` through `ws`: its `ctask queued COUNT` and the COUNT `ctask TAG-I done
/// on NODE` lines (in any order: results may come before the answer): the nodes that ran
/// each index.
async fn ctasks(ws: &mut Ws, count: usize, ms: u64) -> Result<Vec<(u64, String)>, String> {
    ws.send(MessageKind::Text, format!("/ctask {count} {ms}").as_bytes())
        .await;
    let (mut queued, mut done) = (false, Vec::new());
    while !queued || done.len() < count {
        let line = text(ws).await;
        let line = line.trim_end();
        if line == format!("ctask queued {count}") {
            queued = true;
        } else if let Some((tag, node)) = line
            .strip_prefix("ctask ")
            .and_then(|r| r.split_once(" done on "))
        {
            let i = tag.rsplit_once('-').unwrap().1.parse().unwrap();
            done.push((i, node.to_string()));
        } else {
            assert!(!queued, "{line:?}");
            return Err(line.to_string());
        }
    }
    done.sort();
    Ok(done)
}

/// Fire-and-forget cluster tasks (`task_cluster`): n1 has no task workers; its client's six
/// tasks are queued (answer once Redis has them) and run on n2 and n3; each result reaches
/// on_finish of the calling worker on n1 exactly once (the example pushes it to the client
/// that queued it). Redis down: `task_cluster` is refused at once with an error naming
/// Redis, nothing queued.
#[test]
fn cluster_task_fire_and_forget_reaches_on_finish() {
    let redis = Redis::start();
    let n1 = node(&redis, "n1", "base");
    let tw = ["--task-worker-num", "1"];
    let n2 = node_with(&redis, "n2", "process", &tw);
    let n3 = node_with(&redis, "n3", "base", &tw);
    rt().block_on(async {
        let mut a = clients(&n1, 1).await.pop().unwrap();
        let done = ctasks(&mut a, 6, 200).await.unwrap();
        let idx: Vec<u64> = done.iter().map(|(i, _)| *i).collect();
        assert_eq!(idx, [0, 1, 2, 3, 4, 5], "{done:?}");
        assert!(done.iter().all(|(_, n)| n == "n2" || n == "n3"), "{done:?}");
        // Nothing more comes: the next message is this broadcast.
        a.send(MessageKind::Text, b"mark").await;
        assert!(text(&mut a).await.ends_with(":mark\n"));
        let mut ran: Vec<String> = [&n2, &n3].iter().flat_map(|n| started(n)).collect();
        ran.sort();
        assert_eq!(ran.len(), 6, "{ran:?}");
        drop(redis);
        let err = ctasks(&mut a, 1, 10).await.unwrap_err();
        assert!(
            err.starts_with("error: ") && err.contains("redis"),
            "{err:?}"
        );
    });
}

/// n1 (no task workers) queues two 2-second fire-and-forget tasks; n2 and n3 take one each;
/// n2 is killed with kill -9 while it runs its: after the claim timeout n3 runs it again and
/// both results reach n1's on_finish, from n3.
#[test]
fn cluster_task_fire_and_forget_of_killed_node_reruns() {
    let redis = Redis::start();
    let claim = ["--cluster-task-claim-ms", "1500"];
    let n1 = node_with(&redis, "n1", "process", &claim);
    let tw = ["--task-worker-num", "1", "--cluster-task-claim-ms", "1500"];
    let n2 = node_with(&redis, "n2", "process", &tw);
    let n3 = node_with(&redis, "n3", "process", &tw);
    rt().block_on(async {
        let mut a = clients(&n1, 1).await.pop().unwrap();
        a.send(MessageKind::Text, b"/ctask 2 2000").await;
        assert_eq!(text(&mut a).await, "ctask queued 2\n");
        n2.wait_stdout(" started on n2", 1, T);
        let _ = killpg(Pid::from_raw(n2.pid()), Signal::SIGKILL);
        let lost = started(&n2);
        assert_eq!(lost.len(), 1, "{lost:?}");
        let mut got = vec![text(&mut a).await, text(&mut a).await];
        got.sort();
        let tag = lost[0].rsplit_once('-').unwrap().0.to_string();
        assert_eq!(
            got,
            [
                format!("ctask {tag}-0 done on n3\n"),
                format!("ctask {tag}-1 done on n3\n")
            ]
        );
        assert!(
            started(&n3).contains(&lost[0]),
            "{lost:?} did not run again on n3"
        );
    });
}

/// Redis with a password (`requirepass`): nodes given `redis://:PASS@host:port/` join and
/// broadcast across (one Process-mode, one Base-mode); a node given a wrong password starts,
/// serves its own clients, logs why Redis refuses it and answers a broadcast with an error
/// (nothing lost silently).
#[test]
fn cluster_redis_password_url() {
    let redis = Redis::start_with(free_port(), Some("s3cret"));
    assert_eq!(redis.cmd("PING"), "+PONG");
    let n1 = node(&redis, "n1", "process");
    let n2 = node(&redis, "n2", "base");
    let bad = format!("redis://:wrong@127.0.0.1:{}/", redis.port);
    let n3 = ServerProc::start(
        "chat",
        &[
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--worker-num",
            "1",
            "--redis",
            &bad,
            "--node",
            "n3",
        ],
        0,
    );
    rt().block_on(async {
        let mut a = clients(&n1, 1).await.pop().unwrap();
        let mut b = clients(&n2, 1).await.pop().unwrap();
        a.send(MessageKind::Text, b"hello").await;
        assert!(text(&mut a).await.ends_with(":hello\n"));
        assert!(text(&mut b).await.ends_with(":hello\n"));
        let names: Vec<String> = nodes(&mut b).await.into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["n1", "n2"]);
        n3.wait_stderr("cannot reach redis", 1, T);
        let log = n3.stderr();
        assert!(
            log.to_lowercase().contains("authentication failed"),
            "{log}"
        );
        let mut c = clients(&n3, 1).await.pop().unwrap();
        c.send(MessageKind::Text, b"lost?").await;
        let r = text(&mut c).await;
        assert!(r.starts_with("error: "), "{r:?}");
    });
}

/// `rediss://`: Redis serves TLS only to the nodes (certificates made here); n1 (Process
/// mode) and n2 (Base mode) join through `rediss://127.0.0.1:P` trusting the test CA
/// (`--redis-ca`) and a broadcast crosses them; n3, given another CA, logs the failed
/// certificate check, still serves its own clients, and answers a broadcast and a cross-node
/// call with an error. Fails without TLS support: the nodes are refused at start.
#[test]
fn cluster_rediss_tls_with_ca() {
    let pki = Pki::new();
    let other = Pki::new();
    let redis = Redis::start_tls(&pki);
    let ca = Pki::s(&pki.ca);
    let n1 = node_with(&redis, "n1", "process", &["--redis-ca", ca]);
    let n2 = node_with(&redis, "n2", "base", &["--redis-ca", ca]);
    let url = redis.url();
    let n3 = ServerProc::start(
        "chat",
        &[
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--worker-num",
            "1",
            "--redis",
            &url,
            "--redis-ca",
            Pki::s(&other.ca),
            "--node",
            "n3",
        ],
        0,
    );
    rt().block_on(async {
        let mut a = clients(&n1, 1).await.pop().unwrap();
        let mut b = clients(&n2, 1).await.pop().unwrap();
        a.send(MessageKind::Text, b"over tls").await;
        assert!(text(&mut a).await.ends_with(":over tls\n"));
        assert!(text(&mut b).await.ends_with(":over tls\n"));
        let names: Vec<String> = nodes(&mut b).await.into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["n1", "n2"]);
        let id_a = whoami(&mut a).await;
        n3.wait_stderr("cannot reach redis", 1, T);
        let log = n3.stderr();
        assert!(log.contains("invalid peer certificate"), "{log}");
        let mut c = clients(&n3, 1).await.pop().unwrap();
        c.send(MessageKind::Text, b"lost?").await;
        let r = text(&mut c).await;
        assert!(r.starts_with("error: "), "{r:?}");
        let r = ask(&mut c, &format!("/push {id_a} hi")).await;
        assert!(r.starts_with("error: "), "{r:?}");
        // Its own clients are still served: a second client comes and goes.
        let mut d = clients(&n3, 1).await.pop().unwrap();
        let r = ask(&mut d, "/whoami").await;
        assert!(r.starts_with("you are "), "{r:?}");
    });
    assert_eq!(redis.cmd("PING"), "+PONG");
}
