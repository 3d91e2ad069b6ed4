//! Helpers shared by the core's test modules: a virtual clock, default options, a running
//! configuration without one-time sequences, TOTP or SPA doors, and the drained effects.

use std::path::PathBuf;

use knock_core::{Config, Instant, Limits};

use super::{Core, CoreOptions, Effect, RunningConfig, Time};

/// The tests' wall-clock epoch, in Unix seconds.
pub(super) const UNIX0: u64 = 1_795_000_000;

/// `millis` after the start, on both clocks (the wall clock from [`UNIX0`]).
pub(super) fn at(millis: u64) -> Time {
    Time {
        instant: Instant::from_millis(millis),
        unix_secs: UNIX0 + millis / 1000,
    }
}

/// The options the tests run the core with.
pub(super) fn options() -> CoreOptions {
    CoreOptions {
        limits: Limits::default(),
        ipv4_only: false,
        max_running: 4,
        max_waiting_starts: 4096,
        state_file: PathBuf::from("/var/lib/knockd/pending-stops"),
    }
}

/// `config` to run, with no one-time sequences, TOTP or SPA doors loaded.
pub(super) fn running(config: Config) -> RunningConfig {
    RunningConfig {
        config,
        ots: Vec::new(),
        totp: Vec::new(),
        spa: Vec::new(),
    }
}

/// A core running the configuration text `conf` with [`options`].
pub(super) fn new_core(conf: &str) -> Core {
    Core::new(running(Config::parse(conf).unwrap().config), options())
}

/// Every effect queued now.
pub(super) fn effects(core: &mut Core) -> Vec<Effect> {
    std::iter::from_fn(|| core.poll_effect()).collect()
}

/// The logged lines among `effects`.
pub(super) fn lines(effects: &[Effect]) -> Vec<String> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Log(record) => Some(record.to_string()),
            _ => None,
        })
        .collect()
}
