//! Giving memory back after a burst. The allocator keeps what a burst freed (connection
//! records, tasks, buffers of large messages) for reuse, so a process that once held 15,000
//! connections or echoed a 60 MiB message would stay that large. Once a second, the process
//! that owns the sockets looks at how much the allocator holds free; when that is a lot and
//! the process grew since the last release, it asks the allocator to give it back
//! ([`crate::sys::release_free_memory`], glibc's `malloc_trim`). Measured in BENCHMARKS.md
//! ("Memory after bursts").

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

/// How often the allocator's free memory is looked at.
pub(crate) const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Free memory held by the allocator past which it is given back (if the process also grew
/// by as much since the last release).
pub(crate) const RELEASE_ABOVE: usize = 4 * 1024 * 1024;

static STARTED: AtomicBool = AtomicBool::new(false);

/// Whether to release now: the allocator holds `free` bytes, the process is `rss` bytes and
/// was `after_last` bytes right after the last release.
pub(crate) fn due(free: usize, rss: usize, after_last: usize) -> bool {
    free >= RELEASE_ABOVE && rss >= after_last.saturating_add(RELEASE_ABOVE)
}

/// Starts this process's release check (once; later calls do nothing). Needs a Tokio runtime.
pub(crate) fn start() {
    if STARTED.swap(true, Relaxed) {
        return;
    }
    tokio::spawn(async {
        let mut after_last = crate::sys::resident_bytes().unwrap_or(0);
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
            if due(free, rss, after_last) {
                crate::sys::release_free_memory();
                after_last = crate::sys::resident_bytes().unwrap_or(rss);
                tracing::debug!(
                    free_bytes = free,
                    rss_before = rss,
                    rss_after = after_last,
                    "gave free memory back to the kernel"
                );
            } else if rss < after_last {
                after_last = rss;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_only_what_a_burst_left() {
        let m = 1024 * 1024;
        // Little free memory: nothing to give back.
        assert!(!due(m, 100 * m, 10 * m));
        // Much free memory after the process grew: release.
        assert!(due(50 * m, 100 * m, 10 * m));
        // Much free memory but no growth since the last release (already given back).
        assert!(!due(50 * m, 12 * m, 10 * m));
    }
}
