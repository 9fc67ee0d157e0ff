//! User metrics: the `metrics` crate's facade, recorded in shared memory.
//!
//! `metrics::counter!("orders_total").increment(1)` in any worker lands in one entry of a
//! fixed table in the metrics mapping, keyed by name and labels: every process that names the
//! same series adds to the same atomics, so the admin listener shows the sum of all workers,
//! and a worker's `kill -9` loses nothing it counted. Why the `metrics` facade rather than
//! `prometheus-client`: a facade lets us own where values live (here: shared memory), and
//! library code that already uses `metrics` shows up with no change; a `prometheus-client`
//! registry lives in one process's heap, so each worker would need its own endpoint or an
//! extra aggregation step.
//!
//! Entries are claimed once (compare-and-swap on `state`, then key and kind written, then
//! `state = READY` with release ordering) and never freed. A gauge is last-writer-wins across
//! processes (its `increment`/`decrement` are atomic). Histograms use fixed buckets
//! ([`HIST_BUCKETS`]). When the table is full, or a key is longer than [`KEY_BYTES`], the
//! metric is dropped and counted in `rswoole_user_metrics_refused_total`.

use std::collections::HashMap;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::sync::{Arc, Mutex};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};

use crate::sys::{ShmRegion, ShmSafe};

/// Entries in the table.
pub(crate) const CAPACITY: usize = 256;
/// Longest `name` + labels, in bytes, as stored.
pub(crate) const KEY_BYTES: usize = 192;
/// Upper bounds (seconds, or whatever unit the user records) of user histograms' buckets.
pub(crate) const HIST_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

const FREE: u32 = 0;
const CLAIMING: u32 = 1;
const READY: u32 = 2;
/// How long `find_or_claim` waits on an entry another process is claiming before it takes
/// the next one (the claimer was killed half-way).
const CLAIM_WAIT: std::time::Duration = std::time::Duration::from_millis(20);

/// What an entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Counter = 1,
    Gauge = 2,
    Histogram = 3,
}

impl Kind {
    fn from_u32(v: u32) -> Option<Kind> {
        Some(match v {
            1 => Kind::Counter,
            2 => Kind::Gauge,
            3 => Kind::Histogram,
            _ => return None,
        })
    }
}

#[repr(C)]
pub(crate) struct Entry {
    state: AtomicU32,
    kind: AtomicU32,
    hash: AtomicU64,
    key_len: AtomicU64,
    key: [AtomicU64; KEY_BYTES / 8],
    /// Counter value, gauge (f64 bits), or histogram count.
    value: AtomicU64,
    /// Histogram sum (f64 bits).
    sum: AtomicU64,
    /// Histogram buckets (not cumulative), then `+Inf`.
    buckets: [AtomicU64; HIST_BUCKETS.len() + 1],
}
// SAFETY: only atomics; all-zero is a valid value (a free entry).
#[allow(unsafe_code)]
unsafe impl ShmSafe for Entry {}

/// Bytes the table takes in the mapping.
pub(crate) fn region_len() -> usize {
    CAPACITY * std::mem::size_of::<Entry>()
}

/// One series read back from the table.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Series {
    pub(crate) kind: Kind,
    /// The metric name (sanitized for Prometheus).
    pub(crate) name: String,
    /// The labels as exposition text (`a="1",b="2"`), possibly empty.
    pub(crate) labels: String,
    /// Counter value or histogram count.
    pub(crate) count: u64,
    /// Gauge value or histogram sum.
    pub(crate) value: f64,
    /// Histogram buckets (not cumulative), then `+Inf`.
    pub(crate) buckets: Vec<u64>,
}

/// The table inside the mapping.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Table<'a> {
    region: &'a ShmRegion,
    off: usize,
}

fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| {
        (h ^ x as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// `name` made a valid Prometheus metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`).
pub(crate) fn sanitize_name(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

/// The stored key of a series: name, a NUL, then the labels as exposition text.
pub(crate) fn encode_key(name: &str, labels: &[(&str, &str)]) -> Vec<u8> {
    let mut k = sanitize_name(name).into_bytes();
    k.push(0);
    for (i, (n, v)) in labels.iter().enumerate() {
        if i > 0 {
            k.push(b',');
        }
        k.extend_from_slice(sanitize_name(n).as_bytes());
        k.extend_from_slice(b"=\"");
        for c in v.chars() {
            match c {
                '\\' => k.extend_from_slice(b"\\\\"),
                '"' => k.extend_from_slice(b"\\\""),
                '\n' => k.extend_from_slice(b"\\n"),
                c => {
                    let mut b = [0u8; 4];
                    k.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
                }
            }
        }
        k.push(b'"');
    }
    k
}

impl<'a> Table<'a> {
    pub(crate) fn new(region: &'a ShmRegion, off: usize) -> Table<'a> {
        Table { region, off }
    }

    pub(crate) fn entry(&self, i: usize) -> &'a Entry {
        assert!(i < CAPACITY);
        self.region.get(self.off + i * std::mem::size_of::<Entry>())
    }

    fn key_matches(e: &Entry, key: &[u8]) -> bool {
        if e.key_len.load(Relaxed) as usize != key.len() {
            return false;
        }
        key.chunks(8).enumerate().all(|(w, c)| {
            let mut b = [0u8; 8];
            b[..c.len()].copy_from_slice(c);
            e.key[w].load(Relaxed) == u64::from_le_bytes(b)
        })
    }

    fn read_key(e: &Entry) -> Vec<u8> {
        let n = (e.key_len.load(Relaxed) as usize).min(KEY_BYTES);
        let mut out = Vec::with_capacity(n);
        for w in &e.key {
            out.extend_from_slice(&w.load(Relaxed).to_le_bytes());
        }
        out.truncate(n);
        out
    }

    /// The entry of series `key` of `kind`, claimed if new. `None`: the key is too long,
    /// the table is full, or the series exists with another kind.
    pub(crate) fn find_or_claim(&self, kind: Kind, key: &[u8]) -> Option<usize> {
        if key.len() > KEY_BYTES {
            return None;
        }
        let h = fnv(key);
        for probe in 0..CAPACITY {
            let i = (h as usize).wrapping_add(probe) % CAPACITY;
            let e = self.entry(i);
            let mut spins = 0u32;
            let mut waited = None;
            loop {
                match e.state.load(Acquire) {
                    READY => {
                        if e.hash.load(Relaxed) == h && Self::key_matches(e, key) {
                            return (e.kind.load(Relaxed) == kind as u32).then_some(i);
                        }
                        break;
                    }
                    FREE => {
                        if e.state
                            .compare_exchange(FREE, CLAIMING, AcqRel, Acquire)
                            .is_err()
                        {
                            continue;
                        }
                        for (w, c) in key.chunks(8).enumerate() {
                            let mut b = [0u8; 8];
                            b[..c.len()].copy_from_slice(c);
                            e.key[w].store(u64::from_le_bytes(b), Relaxed);
                        }
                        e.key_len.store(key.len() as u64, Relaxed);
                        e.hash.store(h, Relaxed);
                        e.kind.store(kind as u32, Relaxed);
                        e.state.store(READY, Release);
                        return Some(i);
                    }
                    _ => {
                        // Another process is claiming it: a few stores, unless it was
                        // preempted half-way (then wait for it to run again: giving up early
                        // would claim a second entry for the same key), or killed half-way,
                        // which leaves the entry CLAIMING for good: give up after CLAIM_WAIT.
                        spins += 1;
                        if spins < 100 {
                            std::hint::spin_loop();
                        } else if spins == 100 {
                            waited = Some(std::time::Instant::now());
                        } else if waited.is_some_and(|t| t.elapsed() > CLAIM_WAIT) {
                            break;
                        } else {
                            std::thread::yield_now();
                        }
                    }
                }
            }
        }
        None
    }

    /// Every series, in table order. A key claimed twice (a claimer that gave up waiting on
    /// an entry left half-claimed) is one series: counters and histograms add up.
    pub(crate) fn series(&self) -> Vec<Series> {
        let mut out: Vec<Series> = Vec::new();
        for i in 0..CAPACITY {
            let e = self.entry(i);
            if e.state.load(Acquire) != READY {
                continue;
            }
            let Some(kind) = Kind::from_u32(e.kind.load(Relaxed)) else {
                continue;
            };
            let key = Self::read_key(e);
            let mut parts = key.splitn(2, |&b| b == 0);
            let name = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
            let labels = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
            let raw = e.value.load(Relaxed);
            let (count, value) = match kind {
                Kind::Counter => (raw, raw as f64),
                Kind::Gauge => (0, f64::from_bits(raw)),
                Kind::Histogram => (raw, f64::from_bits(e.sum.load(Relaxed))),
            };
            let buckets = match kind {
                Kind::Histogram => e.buckets.iter().map(|b| b.load(Relaxed)).collect(),
                _ => Vec::new(),
            };
            if let Some(same) = out
                .iter_mut()
                .find(|o| o.kind == kind && o.name == name && o.labels == labels)
            {
                same.count += count;
                if kind == Kind::Histogram {
                    same.value += value;
                    for (a, b) in same.buckets.iter_mut().zip(&buckets) {
                        *a += b;
                    }
                } else if kind == Kind::Counter {
                    same.value += value;
                }
                continue;
            }
            out.push(Series {
                kind,
                name,
                labels,
                count,
                value,
                buckets,
            });
        }
        out
    }
}

fn add_f64(a: &AtomicU64, d: f64) {
    let _ = a.fetch_update(Relaxed, Relaxed, |v| {
        Some((f64::from_bits(v) + d).to_bits())
    });
}

/// A handle on one entry (what `counter!` etc. return).
struct Handle(&'static Entry);

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UserMetric")
    }
}

impl CounterFn for Handle {
    fn increment(&self, value: u64) {
        self.0.value.fetch_add(value, Relaxed);
    }
    fn absolute(&self, value: u64) {
        self.0.value.fetch_max(value, Relaxed);
    }
}

impl GaugeFn for Handle {
    fn increment(&self, value: f64) {
        add_f64(&self.0.value, value);
    }
    fn decrement(&self, value: f64) {
        add_f64(&self.0.value, -value);
    }
    fn set(&self, value: f64) {
        self.0.value.store(value.to_bits(), Relaxed);
    }
}

impl HistogramFn for Handle {
    fn record(&self, value: f64) {
        let b = HIST_BUCKETS
            .iter()
            .position(|&ub| value <= ub)
            .unwrap_or(HIST_BUCKETS.len());
        self.0.buckets[b].fetch_add(1, Relaxed);
        add_f64(&self.0.sum, value);
        self.0.value.fetch_add(1, Relaxed);
    }
}

/// The `metrics` recorder rswoole installs when metrics are on (see the module doc).
#[derive(Debug)]
pub(crate) struct ShmRecorder {
    metrics: &'static super::Metrics,
    /// This process's lookups (the table's entries never move).
    cache: Mutex<HashMap<(Key, u32), Option<usize>>>,
}

impl ShmRecorder {
    pub(crate) fn new(metrics: &'static super::Metrics) -> ShmRecorder {
        ShmRecorder {
            metrics,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn lookup(&self, key: &Key, kind: Kind) -> Option<&'static Entry> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let ck = (key.clone(), kind as u32);
        let i = match cache.get(&ck) {
            Some(i) => *i,
            None => {
                let labels: Vec<(&str, &str)> =
                    key.labels().map(|l| (l.key(), l.value())).collect();
                let i = self
                    .metrics
                    .user()
                    .find_or_claim(kind, &encode_key(key.name(), &labels));
                if i.is_none() {
                    self.metrics.header().user_refused.fetch_add(1, Relaxed);
                    tracing::warn!(metric = key.name(), "user metric refused: table full, key too long, or the name is used with another type");
                }
                cache.insert(ck, i);
                i
            }
        };
        let table: Table<'static> = self.metrics.user();
        i.map(|i| table.entry(i))
    }
}

impl Recorder for ShmRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        match self.lookup(key, Kind::Counter) {
            Some(e) => Counter::from_arc(Arc::new(Handle(e))),
            None => Counter::noop(),
        }
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        match self.lookup(key, Kind::Gauge) {
            Some(e) => Gauge::from_arc(Arc::new(Handle(e))),
            None => Gauge::noop(),
        }
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        match self.lookup(key, Kind::Histogram) {
            Some(e) => Histogram::from_arc(Arc::new(Handle(e))),
            None => Histogram::noop(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_user_table_finds_the_same_series_and_refuses_a_kind_clash() {
        let m = super::super::Metrics::new(1, 1).unwrap();
        let t = m.user();
        let k = encode_key("orders.total", &[("shop", "a\"b")]);
        assert_eq!(k, b"orders_total\0shop=\"a\\\"b\"");
        let a = t.find_or_claim(Kind::Counter, &k).unwrap();
        assert_eq!(t.find_or_claim(Kind::Counter, &k), Some(a));
        assert_eq!(t.find_or_claim(Kind::Gauge, &k), None);
        let g = t.find_or_claim(Kind::Gauge, &encode_key("g", &[])).unwrap();
        assert_ne!(a, g);
        t.entry(a).value.fetch_add(5, Relaxed);
        let s = t.series();
        assert_eq!(s.len(), 2);
        let c = s.iter().find(|s| s.kind == Kind::Counter).unwrap();
        assert_eq!(
            (c.name.as_str(), c.labels.as_str(), c.count),
            ("orders_total", "shop=\"a\\\"b\"", 5)
        );
        assert_eq!(t.find_or_claim(Kind::Counter, &[b'x'; KEY_BYTES + 1]), None);
    }

    /// A claimer killed (or stalled past `CLAIM_WAIT`) half-way: the next process waits, then
    /// claims another entry for the key; when both exist the scrape shows one series, summed.
    #[test]
    fn metrics_user_table_half_claimed_entry_is_skipped_and_merged() {
        let m = super::super::Metrics::new(1, 1).unwrap();
        let t = m.user();
        let k = encode_key("jobs", &[("q", "x")]);
        let a = t.find_or_claim(Kind::Counter, &k).unwrap();
        t.entry(a).state.store(CLAIMING, Release);
        let started = std::time::Instant::now();
        let b = t.find_or_claim(Kind::Counter, &k).unwrap();
        assert_ne!(a, b);
        assert!(
            started.elapsed() >= CLAIM_WAIT,
            "it waited for the claimer first"
        );
        t.entry(a).state.store(READY, Release);
        t.entry(a).value.fetch_add(3, Relaxed);
        t.entry(b).value.fetch_add(4, Relaxed);
        let s = t.series();
        assert_eq!(s.len(), 1, "{s:?}");
        assert_eq!((s[0].name.as_str(), s[0].count), ("jobs", 7));
    }

    #[test]
    fn metrics_user_table_full_refuses() {
        let m = super::super::Metrics::new(1, 1).unwrap();
        let t = m.user();
        for i in 0..CAPACITY {
            assert!(t
                .find_or_claim(Kind::Counter, &encode_key(&format!("c{i}"), &[]))
                .is_some());
        }
        assert_eq!(
            t.find_or_claim(Kind::Counter, &encode_key("one_more", &[])),
            None
        );
    }
}
