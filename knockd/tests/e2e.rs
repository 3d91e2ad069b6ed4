//! End-to-end tests of the `knockd` binary, black box: real processes, real packets in
//! network namespaces, real `/bin/sh` commands whose marker files tell what ran.
//!
//! One test binary (cargo discovers only `tests/*.rs`); the modules live in `tests/e2e/`.
//! Tests that create namespaces or capture packets need root and are
//! `#[ignore = "needs root"]`; `scripts/test.sh` runs them as root with `--include-ignored`.
//! The rest (command line, `--check`, configuration errors, `--replay`) run anywhere.
//!
//! Run: `cargo test -p knock-server --test e2e -- --include-ignored --test-threads 2`.

#[path = "e2e/fixture.rs"]
mod fixture;

#[path = "e2e/cli.rs"]
mod cli;
#[path = "e2e/commands.rs"]
mod commands;
#[path = "e2e/hostile.rs"]
mod hostile;
#[path = "e2e/interop.rs"]
mod interop;
#[path = "e2e/knocks.rs"]
mod knocks;
#[path = "e2e/lifecycle.rs"]
mod lifecycle;
#[path = "e2e/nft.rs"]
mod nft;
#[path = "e2e/ops.rs"]
mod ops;
#[path = "e2e/replay.rs"]
mod replay;
#[path = "e2e/spa.rs"]
mod spa;
#[path = "e2e/stages.rs"]
mod stages;
#[path = "e2e/totp.rs"]
mod totp;
