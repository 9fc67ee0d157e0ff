//! Integration tests for rswoole-shm. Every cross-process scenario runs in
//! child processes of `examples/shm_stress.rs`; this harness never forks.
//!
//! - `util`: spawning the helper with timeouts, unique table names, cleanup.
//! - `table`: values, limits, capacity, concurrent incr from 4 processes.
//! - `fault`: SIGKILL while holding a row lock or the table lock.
//! - `persist`: persistent tables outlive processes; layout mismatch.
//! - `sync`: Atomic wait/wakeup and Lock across processes, fork inheritance.

mod fault;
mod persist;
mod sync;
mod table;
mod util;
