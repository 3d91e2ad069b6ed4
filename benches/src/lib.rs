//! criterion benchmarks of the knock crates; run `cargo bench -p knock-benches`.
//! Shared fixtures for the benches live here.
