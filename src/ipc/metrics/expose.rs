//! What the admin listener shows: one [`Snapshot`] of the shared counters and of every
//! process (`/proc`), written as Prometheus text ([`Snapshot::prometheus`], what
//! `prometheus_client.parser` and Prometheus read) or JSON ([`Snapshot::json`], for the
//! dashboard and `rswoole top`).

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

use super::user::{Kind, HIST_BUCKETS};
use super::{Metrics, STATUS_COUNT, STATUS_MIN, TASK_BUCKETS};
use crate::ipc::shared::{self, Shared};

/// One process's resources, read from `/proc/<pid>`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct ProcUsage {
    /// Resident set size, bytes.
    pub(crate) rss: u64,
    /// User + system CPU time, seconds.
    pub(crate) cpu: f64,
}

/// Reads `/proc/<pid>/status` (VmRSS) and `/proc/<pid>/stat` (utime, stime). `None` if the
/// process is gone.
pub(crate) fn proc_usage(pid: u32) -> Option<ProcUsage> {
    if pid == 0 {
        return None;
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): state is field 3; utime and
    // stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let cpu = (ticks(11) + ticks(12)) as f64 / crate::sys::clock_ticks() as f64;
    Some(ProcUsage { rss, cpu })
}

/// One worker or task worker.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WorkerView {
    pub(crate) id: usize,
    /// "worker" or "task_worker".
    pub(crate) kind: &'static str,
    pub(crate) pid: u32,
    pub(crate) state: &'static str,
    pub(crate) requests: u64,
    pub(crate) restarts: u64,
    /// Tasks it sent and were not answered yet.
    pub(crate) task_queue: u64,
    /// Bytes queued on its pipe from the master, not yet acknowledged (Process mode).
    pub(crate) ipc_queue: u64,
    pub(crate) usage: Option<ProcUsage>,
}

/// Everything the admin listener shows, read at one moment.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub(crate) uptime_s: f64,
    pub(crate) start_time_s: f64,
    pub(crate) connections: u64,
    pub(crate) accepted: u64,
    pub(crate) closed: u64,
    pub(crate) refused: u64,
    pub(crate) overflows: u64,
    pub(crate) ws_connections: u64,
    pub(crate) master: Option<ProcUsage>,
    pub(crate) manager: Option<ProcUsage>,
    pub(crate) master_pid: u32,
    pub(crate) manager_pid: u32,
    pub(crate) workers: Vec<WorkerView>,
    /// (status, count) for every status seen.
    pub(crate) http: Vec<(u16, u64)>,
    pub(crate) http_proto: [u64; 3],
    pub(crate) bytes_in: u64,
    pub(crate) bytes_out: u64,
    pub(crate) ws_in: u64,
    pub(crate) ws_out: u64,
    pub(crate) ws_broadcasts: u64,
    pub(crate) task_buckets: Vec<u64>,
    pub(crate) task_count: u64,
    pub(crate) task_sum_s: f64,
    pub(crate) reloads: u64,
    pub(crate) crashes: u64,
    pub(crate) access_dropped: u64,
    pub(crate) user_refused: u64,
    pub(crate) user: Vec<super::user::Series>,
    /// Watched tables: (name, rows in use, capacity).
    pub(crate) tables: Vec<(String, u64, u64)>,
}

/// The name of a worker state.
pub(crate) fn state_name(s: u32) -> &'static str {
    match s {
        shared::W_STARTING => "starting",
        shared::W_IDLE => "idle",
        shared::W_BUSY => "busy",
        shared::W_EXITING => "exiting",
        shared::W_DOWN => "down",
        _ => "unknown",
    }
}

/// A label value escaped for the text format.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

const STATES: [&str; 5] = ["starting", "idle", "busy", "exiting", "down"];

impl Snapshot {
    /// Reads the counters now. `worker_num` workers then `task_worker_num` task workers;
    /// `ipc_queue(i)`: bytes waiting on worker `i`'s pipe.
    pub(crate) fn take(
        shared: &Shared,
        metrics: &Metrics,
        worker_num: usize,
        task_worker_num: usize,
        ipc_queue: &dyn Fn(usize) -> u64,
    ) -> Snapshot {
        let h = shared.header();
        let now = shared::now_ms();
        let started = h.started_ms.load(Relaxed);
        let workers = (0..worker_num + task_worker_num)
            .map(|i| {
                let w = shared.worker(i);
                let pid = w.pid.load(Relaxed);
                let state = w.state.load(Relaxed);
                WorkerView {
                    id: i,
                    kind: if i < worker_num {
                        "worker"
                    } else {
                        "task_worker"
                    },
                    pid,
                    state: state_name(state),
                    requests: w.requests.load(Relaxed),
                    restarts: w.restarts.load(Relaxed),
                    task_queue: if i < metrics.workers {
                        metrics.slot(i).task_queue.load(Relaxed)
                    } else {
                        0
                    },
                    ipc_queue: ipc_queue(i),
                    usage: if state == shared::W_DOWN {
                        None
                    } else {
                        proc_usage(pid)
                    },
                }
            })
            .collect();
        let http = (0..STATUS_COUNT)
            .filter_map(|i| {
                let n = metrics.sum(|s| &s.http_status[i]);
                (n > 0).then_some((STATUS_MIN + i as u16, n))
            })
            .collect();
        let mh = metrics.header();
        let (master_pid, manager_pid) = (h.master_pid.load(Relaxed), h.manager_pid.load(Relaxed));
        Snapshot {
            uptime_s: now.saturating_sub(started) as f64 / 1000.0,
            start_time_s: started as f64 / 1000.0,
            connections: h.live.load(Relaxed),
            accepted: h.accepted.load(Relaxed),
            closed: h.closed.load(Relaxed),
            refused: h.refused.load(Relaxed),
            overflows: h.overflowed.load(Relaxed),
            ws_connections: shared.websockets().len() as u64,
            master: proc_usage(master_pid),
            manager: proc_usage(manager_pid),
            master_pid,
            manager_pid,
            workers,
            http,
            http_proto: [
                metrics.sum(|s| &s.http_proto[0]),
                metrics.sum(|s| &s.http_proto[1]),
                metrics.sum(|s| &s.http_proto[2]),
            ],
            bytes_in: metrics.sum(|s| &s.bytes_in),
            bytes_out: metrics.sum(|s| &s.bytes_out),
            ws_in: metrics.sum(|s| &s.ws_in),
            ws_out: metrics.sum(|s| &s.ws_out),
            ws_broadcasts: metrics.sum(|s| &s.ws_broadcasts),
            task_buckets: (0..=TASK_BUCKETS.len())
                .map(|b| metrics.sum(|s| &s.task_buckets[b]))
                .collect(),
            task_count: metrics.sum(|s| &s.task_count),
            task_sum_s: metrics.sum(|s| &s.task_sum_us) as f64 / 1e6,
            reloads: mh.reloads.load(Relaxed),
            crashes: mh.crashes.load(Relaxed),
            access_dropped: metrics.sum(|s| &s.access_dropped),
            user_refused: mh.user_refused.load(Relaxed),
            user: metrics.user().series(),
            tables: Vec::new(),
        }
    }

    /// Adds the watched tables' (name, rows in use, capacity).
    pub(crate) fn with_tables(mut self, tables: Vec<(String, u64, u64)>) -> Snapshot {
        self.tables = tables;
        self
    }

    /// Prometheus text exposition format (version 0.0.4).
    pub(crate) fn prometheus(&self) -> String {
        let mut o = String::with_capacity(8192);
        let family = |o: &mut String, name: &str, ty: &str, help: &str| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {ty}");
        };
        let one = |o: &mut String, name: &str, ty: &str, help: &str, v: f64| {
            family(o, name, ty, help);
            let _ = writeln!(o, "{name} {v}");
        };
        one(
            &mut o,
            "rswoole_uptime_seconds",
            "gauge",
            "Seconds since the server started.",
            self.uptime_s,
        );
        one(
            &mut o,
            "rswoole_start_time_seconds",
            "gauge",
            "When the server started (Unix time).",
            self.start_time_s,
        );
        one(
            &mut o,
            "rswoole_connections",
            "gauge",
            "Client connections open now.",
            self.connections as f64,
        );
        one(
            &mut o,
            "rswoole_websocket_connections",
            "gauge",
            "Established WebSocket connections open now.",
            self.ws_connections as f64,
        );
        one(
            &mut o,
            "rswoole_connections_accepted_total",
            "counter",
            "Client connections accepted.",
            self.accepted as f64,
        );
        one(
            &mut o,
            "rswoole_connections_closed_total",
            "counter",
            "Client connections closed.",
            self.closed as f64,
        );
        one(
            &mut o,
            "rswoole_connections_refused_total",
            "counter",
            "Client connections refused (max_connection reached).",
            self.refused as f64,
        );
        one(
            &mut o,
            "rswoole_connections_overflowed_total",
            "counter",
            "Connections closed for a full output buffer.",
            self.overflows as f64,
        );
        family(
            &mut o,
            "rswoole_http_requests_total",
            "counter",
            "HTTP requests answered, by status code.",
        );
        for (status, n) in &self.http {
            let _ = writeln!(
                o,
                "rswoole_http_requests_total{{status=\"{status}\",class=\"{}xx\"}} {n}",
                status / 100
            );
        }
        family(
            &mut o,
            "rswoole_http_requests_by_protocol_total",
            "counter",
            "HTTP requests answered, by protocol.",
        );
        for (p, n) in ["HTTP/1.0", "HTTP/1.1", "HTTP/2"]
            .iter()
            .zip(self.http_proto)
        {
            let _ = writeln!(
                o,
                "rswoole_http_requests_by_protocol_total{{protocol=\"{p}\"}} {n}"
            );
        }
        one(
            &mut o,
            "rswoole_received_bytes_total",
            "counter",
            "Bytes read from clients.",
            self.bytes_in as f64,
        );
        one(
            &mut o,
            "rswoole_sent_bytes_total",
            "counter",
            "Bytes written to clients.",
            self.bytes_out as f64,
        );
        one(
            &mut o,
            "rswoole_websocket_messages_received_total",
            "counter",
            "WebSocket messages received.",
            self.ws_in as f64,
        );
        one(
            &mut o,
            "rswoole_websocket_messages_sent_total",
            "counter",
            "WebSocket messages sent (a broadcast counts once per recipient).",
            self.ws_out as f64,
        );
        one(
            &mut o,
            "rswoole_websocket_broadcasts_total",
            "counter",
            "WebSocket broadcasts fanned out.",
            self.ws_broadcasts as f64,
        );
        one(
            &mut o,
            "rswoole_reloads_total",
            "counter",
            "Worker and task worker incarnations replaced on purpose (reload, max_request).",
            self.reloads as f64,
        );
        one(
            &mut o,
            "rswoole_crashes_total",
            "counter",
            "Worker and task worker incarnations that died unasked.",
            self.crashes as f64,
        );
        one(
            &mut o,
            "rswoole_access_log_dropped_total",
            "counter",
            "Access log lines dropped because the writer was behind.",
            self.access_dropped as f64,
        );
        one(
            &mut o,
            "rswoole_user_metrics_refused_total",
            "counter",
            "User metrics dropped (table full, key too long, type clash).",
            self.user_refused as f64,
        );
        let label = |w: &WorkerView| format!("worker=\"{}\",kind=\"{}\"", w.id, w.kind);
        family(
            &mut o,
            "rswoole_worker_state",
            "gauge",
            "1 for the state each worker is in.",
        );
        for w in &self.workers {
            for s in STATES {
                let v = u8::from(w.state == s);
                let _ = writeln!(o, "rswoole_worker_state{{{},state=\"{s}\"}} {v}", label(w));
            }
        }
        let per =
            |o: &mut String, name: &str, ty: &str, help: &str, f: &dyn Fn(&WorkerView) -> u64| {
                family(o, name, ty, help);
                for w in &self.workers {
                    let _ = writeln!(o, "{name}{{{}}} {}", label(w), f(w));
                }
            };
        per(
            &mut o,
            "rswoole_worker_requests_total",
            "counter",
            "Events handled, per worker slot (all incarnations).",
            &|w| w.requests,
        );
        per(
            &mut o,
            "rswoole_worker_restarts_total",
            "counter",
            "Restarts, per worker slot.",
            &|w| w.restarts,
        );
        per(
            &mut o,
            "rswoole_task_queue_depth",
            "gauge",
            "Tasks a worker sent that are not answered yet.",
            &|w| w.task_queue,
        );
        per(
            &mut o,
            "rswoole_ipc_queue_bytes",
            "gauge",
            "Bytes the master sent on a worker's pipe not yet acknowledged (Process mode).",
            &|w| w.ipc_queue,
        );
        family(
            &mut o,
            "rswoole_task_latency_seconds",
            "histogram",
            "Time from task() to its result, seen by the sending worker.",
        );
        let mut cum = 0;
        for (i, n) in self.task_buckets.iter().enumerate() {
            cum += n;
            let le = TASK_BUCKETS
                .get(i)
                .map_or("+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(
                o,
                "rswoole_task_latency_seconds_bucket{{le=\"{le}\"}} {cum}"
            );
        }
        let _ = writeln!(o, "rswoole_task_latency_seconds_sum {}", self.task_sum_s);
        let _ = writeln!(o, "rswoole_task_latency_seconds_count {}", self.task_count);
        let procs: Vec<(String, Option<ProcUsage>)> = [
            (
                format!("process=\"master\",pid=\"{}\"", self.master_pid),
                self.master,
            ),
            (
                format!("process=\"manager\",pid=\"{}\"", self.manager_pid),
                self.manager,
            ),
        ]
        .into_iter()
        .chain(self.workers.iter().map(|w| {
            (
                format!(
                    "process=\"{}\",worker=\"{}\",pid=\"{}\"",
                    w.kind, w.id, w.pid
                ),
                w.usage,
            )
        }))
        .collect();
        family(
            &mut o,
            "rswoole_process_resident_memory_bytes",
            "gauge",
            "Resident memory per process.",
        );
        for (l, u) in procs.iter().filter_map(|(l, u)| Some((l, (*u)?))) {
            let _ = writeln!(o, "rswoole_process_resident_memory_bytes{{{l}}} {}", u.rss);
        }
        family(
            &mut o,
            "rswoole_process_cpu_seconds_total",
            "counter",
            "User and system CPU time per process.",
        );
        for (l, u) in procs.iter().filter_map(|(l, u)| Some((l, (*u)?))) {
            let _ = writeln!(o, "rswoole_process_cpu_seconds_total{{{l}}} {}", u.cpu);
        }
        family(
            &mut o,
            "rswoole_table_rows",
            "gauge",
            "Rows in use in a watched shared table.",
        );
        for (name, rows, _) in &self.tables {
            let _ = writeln!(o, "rswoole_table_rows{{table=\"{}\"}} {rows}", escape(name));
        }
        family(
            &mut o,
            "rswoole_table_capacity_rows",
            "gauge",
            "Rows a watched shared table can hold.",
        );
        for (name, _, cap) in &self.tables {
            let _ = writeln!(
                o,
                "rswoole_table_capacity_rows{{table=\"{}\"}} {cap}",
                escape(name)
            );
        }
        self.user_metrics(&mut o);
        o
    }

    fn user_metrics(&self, o: &mut String) {
        let mut typed: Vec<&str> = Vec::new();
        let mut user: Vec<&super::user::Series> = self.user.iter().collect();
        user.sort_by(|a, b| a.name.cmp(&b.name));
        for s in user {
            let braces = |extra: &str| match (s.labels.is_empty(), extra.is_empty()) {
                (true, true) => String::new(),
                (true, false) => format!("{{{extra}}}"),
                (false, true) => format!("{{{}}}", s.labels),
                (false, false) => format!("{{{},{extra}}}", s.labels),
            };
            let ty = match s.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
                Kind::Histogram => "histogram",
            };
            if !typed.contains(&s.name.as_str()) {
                typed.push(&s.name);
                let _ = writeln!(o, "# TYPE {} {ty}", s.name);
            }
            match s.kind {
                Kind::Counter => {
                    let _ = writeln!(o, "{}{} {}", s.name, braces(""), s.count);
                }
                Kind::Gauge => {
                    let _ = writeln!(o, "{}{} {}", s.name, braces(""), s.value);
                }
                Kind::Histogram => {
                    let mut cum = 0;
                    for (i, n) in s.buckets.iter().enumerate() {
                        cum += n;
                        let le = HIST_BUCKETS
                            .get(i)
                            .map_or("+Inf".to_string(), |b| b.to_string());
                        let _ = writeln!(
                            o,
                            "{}_bucket{} {cum}",
                            s.name,
                            braces(&format!("le=\"{le}\""))
                        );
                    }
                    let _ = writeln!(o, "{}_sum{} {}", s.name, braces(""), s.value);
                    let _ = writeln!(o, "{}_count{} {}", s.name, braces(""), s.count);
                }
            }
        }
    }

    /// The same numbers as one JSON object (the dashboard's feed, `rswoole top`).
    pub(crate) fn json(&self) -> serde_json::Value {
        let usage = |u: &Option<ProcUsage>| match u {
            Some(u) => serde_json::json!({"rss": u.rss, "cpu": u.cpu}),
            None => serde_json::Value::Null,
        };
        let mut classes = [0u64; 6];
        for (s, n) in &self.http {
            classes[(*s as usize / 100).min(5)] += n;
        }
        serde_json::json!({
            "uptime_s": self.uptime_s,
            "connections": self.connections,
            "websocket_connections": self.ws_connections,
            "accepted": self.accepted,
            "closed": self.closed,
            "refused": self.refused,
            "http": self.http.iter().map(|(s, n)| (s.to_string(), serde_json::json!(n))).collect::<serde_json::Map<_, _>>(),
            "http_by_class": {"1xx": classes[1], "2xx": classes[2], "3xx": classes[3], "4xx": classes[4], "5xx": classes[5]},
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "ws_in": self.ws_in,
            "ws_out": self.ws_out,
            "reloads": self.reloads,
            "crashes": self.crashes,
            "tasks_done": self.task_count,
            "master": {"pid": self.master_pid, "usage": usage(&self.master)},
            "manager": {"pid": self.manager_pid, "usage": usage(&self.manager)},
            "workers": self.workers.iter().map(|w| serde_json::json!({
                "id": w.id, "kind": w.kind, "pid": w.pid, "state": w.state,
                "requests": w.requests, "restarts": w.restarts,
                "task_queue": w.task_queue, "ipc_queue": w.ipc_queue,
                "usage": usage(&w.usage),
            })).collect::<Vec<_>>(),
        })
    }
}
