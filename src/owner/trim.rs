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

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
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

/// Starts this process's release check (once; later calls do nothing). Needs a Tokio runtime.
pub(crate) fn start() {
    if STARTED.swap(true, Relaxed) {
        return;
    }
    let task = async {
        let mut last = Mark::released(
            0,
            crate::sys::resident_bytes().unwrap_or(0),
            crate::sys::allocator_free_bytes().unwrap_or(0),
        );
        let mut tick = tokio::time::interval(CHECK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
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
        let mut tick = tokio::time::interval(CHECK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
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
