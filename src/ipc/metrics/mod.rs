//! The server's metrics in shared memory: counters every process adds to, summed where they
//! are scraped (the master's admin listener).
//!
//! One anonymous shared mapping, made by the master before it forks (only when the admin
//! listener is on: `Settings::admin.addr`), holds a [`ProcSlot`] per worker and task worker
//! (indexed by worker id, so a worker's counts outlive its incarnation: a `kill -9` loses
//! nothing already counted) and one per master reactor thread, plus the user metrics table
//! ([`user`]). A slot is a block of relaxed atomics written by one process (one thread, in
//! the master): counting is one uncontended atomic add, no lock and no allocation. With
//! metrics off the mapping does not exist and [`slot`] is `None`: one branch per count.
//!
//! Each process says which slots are its own with [`enter`] right after its fork; a thread
//! then picks one of them on first use (the master's reactor threads spread over theirs).

use std::cell::Cell;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::sys::{ShmRegion, ShmSafe};

pub(crate) mod expose;
pub(crate) mod user;

/// HTTP status codes counted one by one: 100..=599 (a code outside counts as the nearest end).
pub(crate) const STATUS_MIN: u16 = 100;
/// See [`STATUS_MIN`].
pub(crate) const STATUS_COUNT: usize = 500;

/// Upper bounds (seconds) of the task latency histogram's buckets (then `+Inf`).
pub(crate) const TASK_BUCKETS: [f64; 10] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0];

/// Server-wide counters that are not per process.
#[repr(C)]
pub(crate) struct MetricsHeader {
    /// Worker and task worker incarnations replaced on purpose (reload, max_request).
    pub(crate) reloads: AtomicU64,
    /// Worker and task worker incarnations that died unasked (a signal or a non-zero exit).
    pub(crate) crashes: AtomicU64,
    /// User metrics refused because the table was full or the key too long.
    pub(crate) user_refused: AtomicU64,
}
// SAFETY: only atomics; all-zero is a valid value.
#[allow(unsafe_code)]
unsafe impl ShmSafe for MetricsHeader {}

/// One process's (or one master thread's) counters.
#[repr(C, align(64))]
pub(crate) struct ProcSlot {
    /// Bytes read from clients (by the socket owner).
    pub(crate) bytes_in: AtomicU64,
    /// Bytes written to clients (by the socket owner).
    pub(crate) bytes_out: AtomicU64,
    /// WebSocket messages received from clients.
    pub(crate) ws_in: AtomicU64,
    /// WebSocket messages sent to clients (a broadcast counts once per recipient).
    pub(crate) ws_out: AtomicU64,
    /// Broadcasts fanned out (one per broadcast record).
    pub(crate) ws_broadcasts: AtomicU64,
    /// HTTP requests answered, by protocol: HTTP/1.0, HTTP/1.1, HTTP/2.
    pub(crate) http_proto: [AtomicU64; 3],
    /// Tasks answered (`task_latency`'s count) and their summed latency in microseconds.
    pub(crate) task_count: AtomicU64,
    pub(crate) task_sum_us: AtomicU64,
    /// Task latency histogram: per bucket of [`TASK_BUCKETS`], then `+Inf` (not cumulative).
    pub(crate) task_buckets: [AtomicU64; TASK_BUCKETS.len() + 1],
    /// Tasks sent and not answered yet (a gauge; a worker's own).
    pub(crate) task_queue: AtomicU64,
    /// Access log lines dropped because the writer was behind.
    pub(crate) access_dropped: AtomicU64,
    /// HTTP responses by status code, `status - STATUS_MIN`.
    pub(crate) http_status: [AtomicU64; STATUS_COUNT],
}
// SAFETY: only atomics; all-zero is a valid value.
#[allow(unsafe_code)]
unsafe impl ShmSafe for ProcSlot {}

impl ProcSlot {
    /// One HTTP response with `status`, to a request of HTTP/1.`minor` (`minor` 2: an
    /// HTTP/2 stream).
    pub(crate) fn http(&self, status: u16, minor: u8) {
        let i = status.clamp(STATUS_MIN, STATUS_MIN + STATUS_COUNT as u16 - 1) - STATUS_MIN;
        self.http_status[i as usize].fetch_add(1, Relaxed);
        self.http_proto[(minor as usize).min(2)].fetch_add(1, Relaxed);
    }

    /// One task answered after `d`.
    pub(crate) fn task_latency(&self, d: Duration) {
        let s = d.as_secs_f64();
        let b = TASK_BUCKETS
            .iter()
            .position(|&ub| s <= ub)
            .unwrap_or(TASK_BUCKETS.len());
        self.task_buckets[b].fetch_add(1, Relaxed);
        self.task_sum_us
            .fetch_add(d.as_micros().min(u64::MAX as u128) as u64, Relaxed);
        self.task_count.fetch_add(1, Relaxed);
    }
}

/// The metrics mapping (cheap to clone).
#[derive(Debug, Clone)]
pub(crate) struct Metrics {
    region: Arc<ShmRegion>,
    /// Worker and task worker slots (by worker id).
    pub(crate) workers: usize,
    /// The master's slots (after the workers').
    pub(crate) master_slots: usize,
    slots_off: usize,
    user_off: usize,
}

fn align(n: usize, a: usize) -> usize {
    n.div_ceil(a) * a
}

impl Metrics {
    /// Maps the region for `workers` workers and task workers and `master_slots` master
    /// threads.
    pub(crate) fn new(workers: usize, master_slots: usize) -> std::io::Result<Metrics> {
        let slots_off = align(std::mem::size_of::<MetricsHeader>(), 64);
        let user_off = align(
            slots_off + (workers + master_slots) * std::mem::size_of::<ProcSlot>(),
            64,
        );
        let len = user_off + user::region_len();
        Ok(Metrics {
            region: Arc::new(ShmRegion::new(len)?),
            workers,
            master_slots,
            slots_off,
            user_off,
        })
    }

    pub(crate) fn header(&self) -> &MetricsHeader {
        self.region.get(0)
    }

    /// Slot `i`: a worker id, or `workers + k` for master thread `k`.
    pub(crate) fn slot(&self, i: usize) -> &ProcSlot {
        assert!(i < self.workers + self.master_slots);
        self.region
            .get(self.slots_off + i * std::mem::size_of::<ProcSlot>())
    }

    /// Every slot.
    pub(crate) fn slots(&self) -> impl Iterator<Item = &ProcSlot> + '_ {
        (0..self.workers + self.master_slots).map(|i| self.slot(i))
    }

    /// The user metrics table.
    pub(crate) fn user(&self) -> user::Table<'_> {
        user::Table::new(&self.region, self.user_off)
    }

    /// Sums `f` over every slot.
    pub(crate) fn sum(&self, f: impl Fn(&ProcSlot) -> &AtomicU64) -> u64 {
        self.slots().map(|s| f(s).load(Relaxed)).sum()
    }
}

static METRICS: OnceLock<Metrics> = OnceLock::new();
/// This process's slots: `FIRST .. FIRST + COUNT`.
static FIRST: AtomicUsize = AtomicUsize::new(0);
static COUNT: AtomicUsize = AtomicUsize::new(0);
/// Bumped by [`enter`], so that a thread picks again after a fork.
static EPOCH: AtomicU32 = AtomicU32::new(1);
static NEXT_THREAD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// (epoch, slot index) chosen by this thread.
    static PICK: Cell<(u32, usize)> = const { Cell::new((0, 0)) };
}

/// Installs the mapping for this process and its future children (the master, before it
/// forks). Returns false if one was installed already.
pub(crate) fn install(m: Metrics) -> bool {
    METRICS.set(m).is_ok()
}

/// The installed mapping, if metrics are on.
pub(crate) fn get() -> Option<&'static Metrics> {
    METRICS.get()
}

/// This process counts in slots `first .. first + count` from now on (called right after a
/// fork, and by the master for its reactor threads).
pub(crate) fn enter(first: usize, count: usize) {
    FIRST.store(first, Relaxed);
    COUNT.store(count.max(1), Relaxed);
    NEXT_THREAD.store(0, Relaxed);
    EPOCH.fetch_add(1, Relaxed);
}

/// This thread's slot, or `None` when metrics are off.
#[inline]
pub(crate) fn slot() -> Option<&'static ProcSlot> {
    let m = METRICS.get()?;
    let epoch = EPOCH.load(Relaxed);
    let i = PICK.with(|p| {
        let (e, i) = p.get();
        if e == epoch {
            return i;
        }
        let k = NEXT_THREAD.fetch_add(1, Relaxed) % COUNT.load(Relaxed).max(1);
        let i = FIRST.load(Relaxed) + k;
        p.set((epoch, i));
        i
    });
    Some(m.slot(i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_task_latency_lands_in_its_bucket() {
        let m = Metrics::new(2, 1).unwrap();
        let s = m.slot(1);
        s.task_latency(Duration::from_micros(800));
        s.task_latency(Duration::from_millis(30));
        s.task_latency(Duration::from_secs(60));
        let b: Vec<u64> = s.task_buckets.iter().map(|b| b.load(Relaxed)).collect();
        assert_eq!(b, [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]);
        assert_eq!(s.task_count.load(Relaxed), 3);
        assert_eq!(s.task_sum_us.load(Relaxed), 800 + 30_000 + 60_000_000);
        m.slot(0).http(200, 1);
        m.slot(2).http(200, 0);
        m.slot(2).http(999, 1);
        m.slot(1).http(200, 2);
        assert_eq!(m.sum(|s| &s.http_status[100]), 3);
        assert_eq!(m.sum(|s| &s.http_status[STATUS_COUNT - 1]), 1);
        assert_eq!(m.sum(|s| &s.http_proto[1]), 2);
        assert_eq!(m.sum(|s| &s.http_proto[2]), 1);
    }
}
