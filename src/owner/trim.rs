//! Giving memory back after a burst. The allocator keeps what a burst freed (connection
//! records, tasks, buffers of large messages) for reuse, so a process that once held 15,000
//! connections or echoed a 60 MiB message would stay that large. Once a second, a server
//! process (the socket owners, and Process-mode workers) looks at how much the allocator
//! holds free; when that is a lot and either the process grew or the free memory grew since
//! the last release, it asks the allocator to give it back
//! ([`crate::sys::release_free_memory`], glibc's `malloc_trim`). Measured in BENCHMARKS.md
//! ("Memory after bursts").
//!
//! Growth of the *free* memory is what ends a burst: while 15,000 connections close, the
//! process does not grow (their memory turns free in place), so looking at the process's
//! size alone would never release it once a release had happened during the burst.
//!
//! With the `mimalloc` feature the allocator keeps no count of its free bytes, and it holds
//! freed pages per thread until that thread allocates again. There the check asks for a
//! release (`mi_collect(true)`, [`crate::sys::release_thread_memory`]) while the process is
//! busy and for [`SETTLED_AFTER`] checks after it went quiet ([`Activity`]): busy is CPU used
//! since the previous check ([`BUSY_CPU`], not counting the releases themselves) or a
//! resident size that moved by [`SETTLED_DRIFT`]. A quiet server is left alone. In a
//! multi-threaded runtime (the Process master with several reactor threads) the other threads
//! collect their own pages when they next park ([`collect_on_park`]).
//!
//! What the process itself keeps sized by a burst's peak goes too: its tables of connections
//! and of queued events are hash maps, which never shrink on their own ([`shrink_map`], on
//! the same 1 s clock as the release check).

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// How often the allocator's free memory is looked at.
pub(crate) const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Free memory held by the allocator past which it is given back (if the process, or its free
/// memory, also grew by as much since the last release). 1 MiB: a Process-mode master kept
/// ~2 MiB of freed heap after a 60 MiB echo under a 4 MiB threshold (BENCHMARKS.md);
/// a release costs one `malloc_trim` (page faults when the pages are used again), at most
/// once a second.
pub(crate) const RELEASE_ABOVE: usize = 1024 * 1024;

static STARTED: AtomicBool = AtomicBool::new(false);
static TABLE_STARTED: AtomicBool = AtomicBool::new(false);

/// Connections closed since the last pass (the shared table's `closed` count) past which the
/// connection table's free pages are looked for: 64, about two pages of slots.
pub(crate) const TABLE_SHRANK_BY: u64 = 64;

/// Checks without a release after which the free memory is given back on the timer alone,
/// if it moved by [`SETTLED_DRIFT`] since the last release (3 s): the tail of a burst — the
/// last connections closing after the last release — frees less than [`RELEASE_ABOVE`] and
/// would otherwise stay until the free memory grows again, which in a quiet server is never.
pub(crate) const SETTLED_AFTER: u32 = 3;

/// How far the allocator's free bytes must have moved since the last release for the timer
/// release ([`SETTLED_AFTER`]): 64 KiB. A quiet server's free memory does not move, so it is
/// not trimmed again and again for nothing.
pub(crate) const SETTLED_DRIFT: usize = 64 * 1024;

/// Whether to release now: the allocator holds `free` bytes and the process is `rss`
/// bytes; right after the last release (or since, at their lowest) they were `last`.
pub(crate) fn due(free: usize, rss: usize, last: Mark) -> bool {
    free >= RELEASE_ABOVE
        && (rss >= last.rss.saturating_add(RELEASE_ABOVE)
            || free >= last.free.saturating_add(RELEASE_ABOVE)
            || last.released >= RELEASE_ABOVE
            || (last.checks >= SETTLED_AFTER && free.abs_diff(last.at_release) >= SETTLED_DRIFT))
}

/// The process's size and the allocator's free bytes, right after the last release or at
/// their lowest since, and what the last release gave back. A release that gave back much
/// is followed by another at the next check: while a burst winds down (15,000 connections
/// closing over seconds), the free memory a release finds is interleaved with memory still
/// in use and only part of it can go back; the next release, once more of it is free, gets
/// the rest — even if the free memory grew by less than the threshold meanwhile.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Mark {
    pub(crate) rss: usize,
    pub(crate) free: usize,
    pub(crate) released: usize,
    /// The allocator's free bytes right after the last release (not lowered since).
    pub(crate) at_release: usize,
    /// Checks since the last release.
    pub(crate) checks: u32,
}

impl Mark {
    /// The mark right after a release that took the process from `before` to `rss` bytes
    /// and left `free` bytes free in the allocator.
    fn released(before: usize, rss: usize, free: usize) -> Mark {
        Mark {
            rss,
            free,
            released: before.saturating_sub(rss),
            at_release: free,
            checks: 0,
        }
    }

    /// Follows `rss` and `free` down (so that the next rise counts from the low point).
    fn lower(&mut self, free: usize, rss: usize) {
        self.rss = self.rss.min(rss);
        self.free = self.free.min(free);
        self.released = 0;
        self.checks = self.checks.saturating_add(1);
    }
}

/// The release checks' clock: a tick every [`CHECK_EVERY`]; a late tick is delayed, not
/// followed by a catch-up burst.
pub(crate) fn check_clock() -> tokio::time::Interval {
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick
}

/// Shrinks a process's tables ([`shrink_map`]) on the release checks' clock: `shrink` returns
/// the slots it gave back, or `None` once what it shrinks is gone (the task then ends).
pub(crate) async fn shrink_on_clock(mut shrink: impl FnMut() -> Option<usize>) {
    let mut tick = check_clock();
    loop {
        tick.tick().await;
        let Some(freed) = shrink() else { return };
        if freed > 0 {
            tracing::debug!(slots = freed, "shrank tables a burst left");
        }
    }
}

/// Capacity (entries) up to which a table is left as it is by [`shrink_map`].
pub(crate) const SHRINK_ABOVE: usize = 64;

/// Gives back the capacity a burst left in `map`: hash maps keep the capacity of their
/// largest size, so the tables a socket owner keeps per connection (its connections by id,
/// the worker's event queues) would hold 15,000 connections' worth of slots (~1 MB in a Base
/// worker) long after they closed. A map of more than [`SHRINK_ABOVE`] slots that is at most
/// a quarter full is reallocated for twice its entries (room to grow again without a
/// reallocation at once; at most one reallocation a check, however the size moves).
/// Called on the release check's clock, never on the hot path. Returns the slots given back.
pub(crate) fn shrink_map<K, V, S>(map: &mut std::collections::HashMap<K, V, S>) -> usize
where
    K: Eq + std::hash::Hash,
    S: std::hash::BuildHasher,
{
    let cap = map.capacity();
    if cap <= SHRINK_ABOVE || map.len().saturating_mul(4) > cap {
        return 0;
    }
    map.shrink_to(map.len() * 2);
    cap.saturating_sub(map.capacity())
}

/// CPU time a process must have used since the previous check to count as busy for the
/// mimalloc policy ([`Activity`]): 5 ms a second (0.5 % of a core). An idle server's timers
/// stay below it; closing connections or moving a large message do not.
pub(crate) const BUSY_CPU: Duration = Duration::from_millis(5);

/// The mimalloc policy's view of the process: its CPU time and resident size at the previous
/// check, and how many checks it has been quiet for. mimalloc has no count of its free bytes;
/// what a burst freed is found by releasing while the process works and for a few checks after.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Activity {
    cpu_us: u64,
    rss: usize,
    quiet: u32,
}

impl Activity {
    /// The process at start: `cpu_us` microseconds of CPU used, `rss` bytes resident.
    pub(crate) fn new(cpu_us: u64, rss: usize) -> Activity {
        Activity {
            cpu_us,
            rss,
            quiet: SETTLED_AFTER + 1,
        }
    }

    /// One check with the process at `cpu_us` and `rss`: whether to release now — it used
    /// [`BUSY_CPU`] or more since the previous check, or its size moved by [`SETTLED_DRIFT`],
    /// now or within the last [`SETTLED_AFTER`] checks.
    pub(crate) fn due(&mut self, cpu_us: u64, rss: usize) -> bool {
        let busy = cpu_us.saturating_sub(self.cpu_us) >= BUSY_CPU.as_micros() as u64
            || rss.abs_diff(self.rss) >= SETTLED_DRIFT;
        self.quiet = if busy {
            0
        } else {
            self.quiet.saturating_add(1)
        };
        self.cpu_us = cpu_us;
        self.rss = rss;
        self.quiet <= SETTLED_AFTER
    }

    /// After a release: the process at `cpu_us` and `rss` (what the release cost and gave
    /// back is not activity).
    pub(crate) fn released(&mut self, cpu_us: u64, rss: usize) {
        self.cpu_us = cpu_us;
        self.rss = rss;
    }
}

/// Releases asked of every thread of the process: a thread whose last release is older
/// collects its own pages when it next parks ([`collect_on_park`]).
static EPOCH: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static SEEN: Cell<u64> = const { Cell::new(0) };
}

/// A runtime thread's park hook (the Process master's multi-threaded runtime, with the
/// `mimalloc` feature): if a release was asked since this thread's last one, it frees its own
/// empty pages ([`crate::sys::release_thread_memory`]). One atomic load otherwise.
pub(crate) fn collect_on_park() {
    let epoch = EPOCH.load(Relaxed);
    SEEN.with(|seen| {
        if seen.get() != epoch {
            seen.set(epoch);
            crate::sys::release_thread_memory();
        }
    });
}

/// The mimalloc release check (see the module's doc), once a second.
async fn mimalloc_checks() {
    let mut act = Activity::new(
        crate::sys::cpu_micros(),
        crate::sys::resident_bytes().unwrap_or(0),
    );
    let mut tick = check_clock();
    loop {
        tick.tick().await;
        let rss = crate::sys::resident_bytes().unwrap_or(0);
        if act.due(crate::sys::cpu_micros(), rss) {
            EPOCH.fetch_add(1, Relaxed);
            collect_on_park(); // this thread at once
            crate::sys::release_free_memory();
            let after = crate::sys::resident_bytes().unwrap_or(rss);
            act.released(crate::sys::cpu_micros(), after);
            tracing::debug!(
                rss_before = rss,
                rss_after = after,
                "gave free memory back to the kernel (mimalloc)"
            );
        }
    }
}

/// Starts this process's release check (once; later calls do nothing). Needs a Tokio runtime.
pub(crate) fn start() {
    if STARTED.swap(true, Relaxed) {
        return;
    }
    if cfg!(feature = "mimalloc") {
        tokio::spawn(mimalloc_checks());
        return;
    }
    let task = async {
        let mut last = Mark::released(
            0,
            crate::sys::resident_bytes().unwrap_or(0),
            crate::sys::allocator_free_bytes().unwrap_or(0),
        );
        let mut tick = check_clock();
        loop {
            tick.tick().await;
            let (Some(free), Some(rss)) = (
                crate::sys::allocator_free_bytes(),
                crate::sys::resident_bytes(),
            ) else {
                return; // not glibc: nothing to do
            };
            if due(free, rss, last) {
                crate::sys::release_free_memory();
                last = Mark::released(
                    rss,
                    crate::sys::resident_bytes().unwrap_or(rss),
                    crate::sys::allocator_free_bytes().unwrap_or(free),
                );
                tracing::debug!(
                    free_bytes = free,
                    rss_before = rss,
                    rss_after = last.rss,
                    "gave free memory back to the kernel"
                );
            } else {
                last.lower(free, rss);
            }
        }
    };
    tokio::spawn(task);
}

/// Whether to look for free connection-table pages, with `now` connections closed so far,
/// `seen` at the previous check and `last` at the last pass: [`TABLE_SHRANK_BY`] or more
/// closed since the last pass, or some did and the closing stopped (none since the previous
/// check: the tail of a burst).
pub(crate) fn table_due(now: u64, seen: u64, last: u64) -> bool {
    now >= last + TABLE_SHRANK_BY || (now > last && now == seen)
}

/// Starts this process's check of the shared connection table (once; later calls do
/// nothing; a socket owner calls it): once a second, when [`TABLE_SHRANK_BY`] or more
/// connections closed (any process's) since the last pass, or fewer and no more are closing
/// ([`table_due`]), the table's pages that hold no
/// connection any more go back to the kernel ([`Shared::release_free_slots`](crate::ipc::shared::Shared::release_free_slots)).
/// Needs a Tokio runtime.
pub(crate) fn start_table(shared: crate::ipc::shared::Shared) {
    if TABLE_STARTED.swap(true, Relaxed) {
        return;
    }
    let task = async move {
        let closed = || shared.header().closed.load(Relaxed);
        let mut last = closed();
        let mut seen = last;
        let mut tick = check_clock();
        loop {
            tick.tick().await;
            let now = closed();
            if table_due(now, seen, last) {
                let released = shared.release_free_slots();
                tracing::debug!(
                    closed = now - last,
                    released_bytes = released,
                    "gave free connection-table pages back"
                );
                last = now;
            }
            seen = now;
        }
    };
    tokio::spawn(task);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_only_what_a_burst_left() {
        let m = RELEASE_ABOVE;
        let last = |rss, free| Mark {
            rss,
            free,
            ..Mark::default()
        };
        // Little free memory: nothing to give back.
        assert!(!due(m / 2, 100 * m, last(10 * m, 0)));
        // Much free memory after the process grew: release.
        assert!(due(50 * m, 100 * m, last(10 * m, 0)));
        // Much free memory but no growth of either since the last release (already given
        // back: trimming does not lower the allocator's count of free bytes).
        assert!(!due(50 * m, 10 * m + m / 2, last(10 * m, 50 * m)));
        // A burst ended: the process did not grow since the last release (made while the
        // connections were still open), but its free memory did — release.
        assert!(due(16 * m, 23 * m, last(23 * m, 2 * m)));
        // The last release gave back 5 MiB while the burst was winding down: release again,
        // though the free memory grew by less than the threshold since.
        let big = Mark {
            rss: 40 * m,
            free: 18 * m,
            released: 5 * m,
            at_release: 18 * m,
            checks: 0,
        };
        assert!(due(18 * m + m / 2, 40 * m, big));
        // One that gave back little ends the series.
        assert!(!due(
            18 * m + m / 2,
            40 * m,
            Mark {
                released: m / 2,
                ..big
            }
        ));
    }

    #[test]
    fn the_tail_of_a_burst_goes_back_on_the_timer() {
        let m = RELEASE_ABOVE;
        // A release during the burst left 2 MiB free; the last connections closed afterwards
        // and freed 512 KiB more: less than the threshold, the process did not grow.
        let mut mark = Mark::released(30 * m, 12 * m, 2 * m);
        mark.released = 0; // it gave back little: no follow-up release
        let free = 2 * m + m / 2;
        for _ in 1..SETTLED_AFTER {
            assert!(!due(free, 12 * m, mark), "not before the burst settled");
            mark.lower(free, 12 * m);
        }
        assert!(!due(free, 12 * m, mark));
        mark.lower(free, 12 * m);
        // Settled: released on the timer.
        assert!(due(free, 12 * m, mark));
        // A quiet server whose free memory has not moved since its release is left alone,
        // however long it waits.
        let mut quiet = Mark::released(13 * m, 12 * m, 3 * m);
        quiet.released = 0;
        for _ in 0..100 {
            quiet.lower(3 * m + SETTLED_DRIFT - 1, 12 * m);
            assert!(!due(3 * m + SETTLED_DRIFT - 1, 12 * m, quiet));
        }
        // Below the threshold nothing is released, settled or not.
        assert!(!due(m - 1, 12 * m, quiet));
    }

    #[test]
    fn mimalloc_releases_while_busy_and_a_few_checks_after() {
        let busy = BUSY_CPU.as_micros() as u64;
        let m = RELEASE_ABOVE;
        let mut act = Activity::new(0, 10 * m);
        // A quiet server from the start: nothing.
        assert!(!act.due(busy / 2, 10 * m));
        // A burst: CPU used; released each check while it lasts.
        assert!(act.due(busy / 2 + busy * 20, 30 * m));
        act.released(busy * 21, 30 * m);
        // The burst ended (connections closed: CPU used, no growth: the memory they
        // freed is held by the allocator until released).
        assert!(act.due(busy * 30, 30 * m));
        // The release gave much back: the size moved, released again.
        act.released(busy * 30 + busy / 2, 12 * m);
        assert!(act.due(busy * 31, 12 * m - 2 * SETTLED_DRIFT));
        act.released(busy * 31, 12 * m - 2 * SETTLED_DRIFT);
        // Quiet since (what the releases cost is not activity): SETTLED_AFTER more releases
        // (a large message freed just after the last busy check), then none.
        for _ in 0..SETTLED_AFTER {
            assert!(act.due(busy * 31 + 1, 12 * m - 2 * SETTLED_DRIFT));
        }
        for _ in 0..100 {
            assert!(!act.due(busy * 31 + 1, 12 * m - 2 * SETTLED_DRIFT));
        }
        // Work again (a trickle of requests below BUSY_CPU is not; a size change is).
        assert!(!act.due(busy * 31 + busy - 1, 12 * m - 2 * SETTLED_DRIFT));
        assert!(act.due(busy * 31 + busy - 1, 12 * m));
    }

    #[test]
    fn a_thread_collects_once_per_asked_release() {
        std::thread::spawn(|| {
            let e = EPOCH.load(Relaxed);
            SEEN.with(|s| s.set(e));
            collect_on_park();
            assert_eq!(SEEN.with(|s| s.get()), e);
            EPOCH.fetch_add(1, Relaxed);
            collect_on_park();
            assert!(SEEN.with(|s| s.get()) > e);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_table_a_burst_left_mostly_empty_shrinks() {
        let mut m: std::collections::HashMap<u64, u64> = (0..15_000).map(|i| (i, i)).collect();
        let peak = m.capacity();
        // Still full: kept.
        assert_eq!(shrink_map(&mut m), 0);
        // Half of it closed: kept (it may fill again).
        m.retain(|k, _| k % 2 == 0);
        assert_eq!(shrink_map(&mut m), 0);
        // (`capacity` counts a removed entry's slot only once it is reused.)
        assert!(m.capacity() > peak * 3 / 4, "{} of {peak}", m.capacity());
        // A burst's end: 100 left of 15,000: shrunk to room for twice as many.
        m.retain(|k, _| *k < 200);
        assert_eq!(m.len(), 100);
        let held = m.capacity();
        let freed = shrink_map(&mut m);
        assert!(
            m.capacity() >= 200 && m.capacity() < 1000,
            "{}",
            m.capacity()
        );
        assert_eq!(freed, held - m.capacity());
        assert!((0..200).step_by(2).all(|k| m[&k] == k));
        // Empty: the whole table goes.
        m.clear();
        shrink_map(&mut m);
        assert_eq!(m.capacity(), 0);
        // Small tables are left alone.
        let mut small: std::collections::HashMap<u64, u64> = (0..40)
            .collect::<Vec<_>>()
            .into_iter()
            .map(|i| (i, i))
            .collect();
        small.clear();
        assert_eq!(shrink_map(&mut small), 0);
    }

    #[test]
    fn table_pass_after_many_closes_or_the_tail_of_a_burst() {
        let n = TABLE_SHRANK_BY;
        // Nothing closed: no pass.
        assert!(!table_due(10, 10, 10));
        // Many closed since the last pass, still closing: pass.
        assert!(table_due(10 + n, 10 + n / 2, 10));
        // A few closed, still closing: wait.
        assert!(!table_due(12, 11, 10));
        // A few closed and none since the previous check (a burst's tail): pass.
        assert!(table_due(12, 12, 10));
    }

    #[test]
    fn the_mark_follows_the_lows() {
        let m = RELEASE_ABOVE;
        let mut mark = Mark {
            rss: 20 * m,
            free: 10 * m,
            ..Mark::default()
        };
        mark.lower(3 * m, 25 * m);
        assert_eq!((mark.rss, mark.free, mark.checks), (20 * m, 3 * m, 1));
        // Free memory back up by RELEASE_ABOVE from its low: due again.
        assert!(due(4 * m, 20 * m, mark));
        assert!(!due(4 * m - 1, 20 * m, mark));
    }
}
