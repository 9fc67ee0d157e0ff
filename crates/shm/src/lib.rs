//! Shared-memory Table, Atomic and Lock (under construction).
