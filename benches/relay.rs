//! Relay benchmarks (criterion): written next.

fn main() {}
