//! The `rswoole` command line.
fn main() {}
