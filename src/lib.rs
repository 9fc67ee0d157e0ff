//! rswoole: the Swoole server model in Rust (under construction).
