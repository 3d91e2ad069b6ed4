//! Runnable examples of embedding the knock crates: see the `examples/` folder
//! (`cargo run -p knock-examples --example NAME`).
