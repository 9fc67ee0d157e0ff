//! The seed's WebSocket group chat (§14) on 0.0.0.0:9502: every message goes to every client
//! as `from{fd}:{data}\n`, whichever worker holds the client (one `broadcast`: fanned out by
//! the master, or with `--mode base` by each worker for its own clients). The chat page is
//! served at `/` by the same server and connects back to the host it was loaded from.
//!
//! With `--redis URL --node NAME` the server is one node of a cluster: a message reaches the
//! clients of every node (through Redis), and `/nodes` answers the sender alone with the live
//! nodes and their connections (`nodes a=3 b=5`), `/bind UID` records the sender as user UID,
//! `/touser UID TEXT` pushes TEXT to every connection of UID on any node (`pushed N`),
//! `/whoami` answers `you are NODE/FD` and `/to NODE FD TEXT` pushes to one connection of any node. A message that could not be broadcast (the
//! cluster's Redis is down) is answered to its sender alone with `error: ...`.
//!
//! Connections of any node, by cluster id `NODE/FD` (what `/whoami` answers): `/exists ID`
//! (`exists true|false`), `/info ID` (`info IP SERVER_PORT` or `info none`), `/push ID TEXT`
//! and `/rawsend ID TEXT` (`sent`; the latter writes a WebSocket frame with the raw `send`),
//! `/kick ID` (`kicked`), `/multi ID,ID,... TEXT` (`reached N`); failures answer `error: ...`.
//!
//! Rooms of the cluster: `/join ROOM` (`joined ROOM`), `/leave ROOM` (`left ROOM`), `/room ROOM
//! TEXT` (`room N`: how many members it reached, on any node).
//!
//! Cluster tasks (with `--task-worker-num N` on the nodes that run them): `/tasks COUNT MS
//! TIMEOUT_MS` queues COUNT tasks to the cluster at once, each sleeping MS in a task worker
//! of whichever node takes it (which prints `task TAG-I started on NODE`), and answers
//! `tasks ok=COUNT NODE=RAN ...` once every result came back (each checked against its
//! task), or `error: ...` with the first failure.
//!
//! Fire-and-forget cluster tasks: `/ctask COUNT MS` queues COUNT such tasks with
//! `task_cluster` and answers `ctask queued COUNT` once Redis has them all (or `error: ...`);
//! each result then comes to this worker's `on_finish`, which tells the client
//! `ctask TAG-I done on NODE` (or `ctask ID error: ...`).
//!
//! ```text
//! cargo run --release --example chat      # then open http://127.0.0.1:9502/ in two tabs
//! cargo run --release --example chat -- --port 9601 --redis redis://127.0.0.1:6379/ --node a
//! ```
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rswoole::cli::ExampleArgs;
use rswoole::websocket::{OpCode, WebSocketServer};
use rswoole::ConnId;

const PAGE: &str = include_str!("chat.html");

/// The commands on cluster connection ids.
const CONN_OPS: [&str; 6] = ["/exists", "/info", "/push", "/rawsend", "/kick", "/multi"];

/// A cluster task of the chat: (tag, index, milliseconds to sleep).
type Job = (String, u64, u64);
/// Its result: (node that ran it, tag, index).
type Done = (String, String, u64);

/// `/tasks COUNT MS TIMEOUT_MS`: queues COUNT tasks to the cluster at once and reports which
/// node ran how many.
async fn cluster_tasks(srv: &rswoole::Handle, fd: ConnId, args: &str) -> String {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let n: Vec<u64> = args.split(' ').filter_map(|a| a.parse().ok()).collect();
    let [count, ms, timeout] = n[..] else {
        return "error: want /tasks COUNT MS TIMEOUT_MS\n".into();
    };
    let me = srv.cluster_node().unwrap_or("-");
    let tag = format!(
        "{me}.{}.{}.{}",
        srv.worker_id(),
        fd.0,
        CALLS.fetch_add(1, Ordering::Relaxed)
    );
    let calls = (0..count).map(|i| {
        srv.task_wait_cluster::<Job, Done>((tag.clone(), i, ms), Duration::from_millis(timeout))
    });
    let mut ran = BTreeMap::new();
    for (i, r) in futures_util::future::join_all(calls)
        .await
        .into_iter()
        .enumerate()
    {
        match r {
            Ok((node, t, k)) if t == tag && k == i as u64 => *ran.entry(node).or_insert(0) += 1,
            Ok(other) => return format!("error: task {i} got the result of {other:?}\n"),
            Err(e) => return format!("error: {e}\n"),
        }
    }
    ran.iter()
        .fold(format!("tasks ok={count}"), |l, (node, k)| {
            format!("{l} {node}={k}")
        })
        + "\n"
}

thread_local! {
    /// This worker's `task_cluster`s: task id -> the client that queued it.
    static CTASKS: std::cell::RefCell<std::collections::HashMap<rswoole::TaskId, ConnId>> =
        Default::default();
}

/// `/ctask COUNT MS`: queues COUNT fire-and-forget tasks to the cluster.
async fn cluster_ctasks(srv: &rswoole::Handle, fd: ConnId, args: &str) -> String {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let n: Vec<u64> = args.split(' ').filter_map(|a| a.parse().ok()).collect();
    let [count, ms] = n[..] else {
        return "error: want /ctask COUNT MS\n".into();
    };
    let me = srv.cluster_node().unwrap_or("-");
    let tag = format!(
        "{me}.{}.{}.c{}",
        srv.worker_id(),
        fd.0,
        CALLS.fetch_add(1, Ordering::Relaxed)
    );
    for i in 0..count {
        let job: Job = (tag.clone(), i, ms);
        match srv.task_cluster(job).await {
            Ok(id) => CTASKS.with(|m| m.borrow_mut().insert(id, fd)),
            Err(e) => return format!("error: {e}\n"),
        };
    }
    format!("ctask queued {count}\n")
}

fn main() -> rswoole::Result<()> {
    let args = ExampleArgs::parse_or_exit("0.0.0.0", 9502);
    let mut server = WebSocketServer::bind(&args.addr())?;
    server.set(args.settings());
    if args.task_worker_num > 0 {
        let node = args.node.clone().unwrap_or_else(|| "-".into());
        server.on_task(move |_srv, task| {
            let node = node.clone();
            async move {
                // Not a Job: the caller sees a result that is not its own.
                let (tag, i, ms): Job = task.data().unwrap_or_else(|e| (e.to_string(), 0, 0));
                println!("task {tag}-{i} started on {node}");
                std::thread::sleep(Duration::from_millis(ms));
                let done: Done = (node, tag, i);
                done
            }
        });
    }
    server.on_finish(|srv, id, result| async move {
        let Some(fd) = CTASKS.with(|m| m.borrow_mut().remove(&id)) else {
            return Err(format!("on_finish for unknown task {id}"));
        };
        let line = match result.get::<Done>() {
            Ok((node, tag, i)) => format!("ctask {tag}-{i} done on {node}\n"),
            Err(e) => format!("ctask {id} error: {e}\n"),
        };
        srv.push(fd, line, OpCode::Text).map_err(|e| e.to_string())
    });
    server.on_open(|srv, req| async move {
        println!("client {} joined (worker {})", req.fd, srv.worker_id());
    });
    server.on_message(|srv, frame| async move {
        let text = String::from_utf8_lossy(&frame.data);
        if let Some(uid) = text.strip_prefix("/bind ") {
            let line = match srv.cluster_bind(frame.fd, uid).await {
                Ok(()) => format!("bound {uid}\n"),
                Err(e) => format!("error: {e}\n"),
            };
            return srv.push(frame.fd, line, OpCode::Text);
        }
        if let Some((uid, msg)) = text
            .strip_prefix("/touser ")
            .and_then(|r| r.split_once(' '))
        {
            let line = match srv
                .push_to_user(uid, format!("{msg}\n"), OpCode::Text)
                .await
            {
                Ok(n) => format!("pushed {n}\n"),
                Err(e) => format!("error: {e}\n"),
            };
            return srv.push(frame.fd, line, OpCode::Text);
        }
        if let Some(rest) = text.strip_prefix("/to ") {
            // `/to NODE FD TEXT`: one connection of any node.
            let mut it = rest.splitn(3, ' ');
            let (node, fd, msg) = (it.next(), it.next().and_then(|f| f.parse().ok()), it.next());
            let line = match (node, fd, msg) {
                (Some(node), Some(fd), Some(msg)) => {
                    match srv
                        .push_to_node(node, ConnId(fd), format!("{msg}\n"), OpCode::Text)
                        .await
                    {
                        Ok(()) => "sent\n".to_string(),
                        Err(e) => format!("error: {e}\n"),
                    }
                }
                _ => "error: want /to NODE FD TEXT\n".to_string(),
            };
            return srv.push(frame.fd, line, OpCode::Text);
        }
        if let Some(rest) = text.strip_prefix("/ctask ") {
            let line = cluster_ctasks(&srv, frame.fd, rest).await;
            return srv.push(frame.fd, line, OpCode::Text);
        }
        if let Some(rest) = text.strip_prefix("/tasks ") {
            let line = cluster_tasks(&srv, frame.fd, rest).await;
            return srv.push(frame.fd, line, OpCode::Text);
        }
        if let Some((cmd, rest)) = text.split_once(' ') {
            // Connection operations on a cluster id (`NODE/FD`) of any node.
            let (id, msg) = rest.split_once(' ').unwrap_or((rest, ""));
            let ids: Result<Vec<rswoole::ClusterConnId>, _> =
                id.split(',').map(str::parse).collect();
            let line = match (cmd, ids) {
                (_, Err(e)) if cmd.starts_with('/') && CONN_OPS.contains(&cmd) => {
                    Some(format!("error: {e}\n"))
                }
                ("/exists", Ok(ids)) => Some(match srv.cluster_exists(&ids[0]).await {
                    Ok(b) => format!("exists {b}\n"),
                    Err(e) => format!("error: {e}\n"),
                }),
                ("/info", Ok(ids)) => Some(match srv.cluster_connection_info(&ids[0]).await {
                    Ok(Some(i)) => format!("info {} {}\n", i.remote_addr.ip(), i.server_port),
                    Ok(None) => "info none\n".to_string(),
                    Err(e) => format!("error: {e}\n"),
                }),
                ("/push", Ok(ids)) => Some(
                    match srv
                        .cluster_push(&ids[0], format!("{msg}\n"), OpCode::Text)
                        .await
                    {
                        Ok(()) => "sent\n".to_string(),
                        Err(e) => format!("error: {e}\n"),
                    },
                ),
                ("/rawsend", Ok(ids)) => {
                    // A whole WebSocket text frame, written as raw bytes with `send`.
                    let mut frame_bytes = vec![0x81, msg.len().min(125) as u8];
                    frame_bytes.extend_from_slice(&msg.as_bytes()[..msg.len().min(125)]);
                    Some(match srv.cluster_send(&ids[0], frame_bytes).await {
                        Ok(()) => "sent\n".to_string(),
                        Err(e) => format!("error: {e}\n"),
                    })
                }
                ("/kick", Ok(ids)) => Some(match srv.cluster_close(&ids[0]).await {
                    Ok(()) => "kicked\n".to_string(),
                    Err(e) => format!("error: {e}\n"),
                }),
                ("/multi", Ok(ids)) => Some(
                    match srv
                        .cluster_broadcast_to(&ids, format!("{msg}\n"), OpCode::Text)
                        .await
                    {
                        Ok(n) => format!("reached {n}\n"),
                        Err(e) => format!("error: {e}\n"),
                    },
                ),
                _ => None,
            };
            if let Some(line) = line {
                return srv.push(frame.fd, line, OpCode::Text);
            }
        }
        if let Some(room) = text.strip_prefix("/join ") {
            let line = match srv.join_room(frame.fd, room).await {
                Ok(()) => format!("joined {room}\n"),
                Err(e) => format!("error: {e}\n"),
            };
            return srv.push(frame.fd, line, OpCode::Text);
        }
        if let Some(room) = text.strip_prefix("/leave ") {
            let line = match srv.leave_room(frame.fd, room).await {
                Ok(()) => format!("left {room}\n"),
                Err(e) => format!("error: {e}\n"),
            };
            return srv.push(frame.fd, line, OpCode::Text);
        }
        if let Some((room, msg)) = text.strip_prefix("/room ").and_then(|r| r.split_once(' ')) {
            let line = match srv
                .broadcast_to_room(room, format!("{msg}\n"), OpCode::Text)
                .await
            {
                Ok(n) => format!("room {n}\n"),
                Err(e) => format!("error: {e}\n"),
            };
            return srv.push(frame.fd, line, OpCode::Text);
        }
        if text == "/whoami" {
            let me = srv.cluster_node().unwrap_or("-").to_string();
            return srv.push(
                frame.fd,
                format!("you are {me}/{}\n", frame.fd.0),
                OpCode::Text,
            );
        }
        if text == "/nodes" {
            let line = match srv.cluster_nodes().await {
                Ok(nodes) => nodes.iter().fold("nodes".to_string(), |l, n| {
                    format!("{l} {}={}", n.name, n.connections)
                }),
                Err(e) => format!("error: {e}"),
            };
            return srv.push(frame.fd, line + "\n", OpCode::Text);
        }
        match srv.broadcast(format!("from{}:{}\n", frame.fd, text), OpCode::Text) {
            // Not sent (e.g. the cluster's Redis is down): the sender is told.
            Err(e) => srv.push(frame.fd, format!("error: {e}\n"), OpCode::Text),
            ok => ok,
        }
    });
    server.on_close(|_srv, fd| async move {
        println!("client {fd} left");
    });
    server.on_request(|_srv, req, mut resp| async move {
        if req.path == "/" || req.path == "/index.html" {
            resp.header("content-type", "text/html; charset=utf-8")?;
            resp.end(PAGE)
        } else {
            resp.status(404)?;
            resp.end("not found\n")
        }
    });
    server.start()
}
