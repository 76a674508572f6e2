//! Shared helpers for Strata's criterion benchmarks (`benches/benches/*.rs`).
