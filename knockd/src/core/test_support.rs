//! Helpers shared by the core's test modules: a virtual clock, default options, a running
//! configuration without one-time sequences, TOTP or SPA doors, and the drained effects.

use std::path::PathBuf;

use knock_core::{Config, Instant, Limits};

use super::{Core, CoreOptions, Effect, RunningConfig, Time, TotpRun};

/// The tests' wall-clock epoch, in Unix seconds.
pub(super) const UNIX0: u64 = 1_795_000_000;

/// `millis` after the start, on both clocks (the wall clock from [`UNIX0`]).
pub(super) fn at(millis: u64) -> Time {
    Time {
        instant: Instant::from_millis(millis),
        unix_secs: UNIX0 + millis / 1000,
        unix_nanos: u32::try_from(millis % 1000).unwrap_or(0) * 1_000_000,
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

/// `config` to run, as `Loaded::running` makes it, for inline secrets only: TOTP doors with
/// their `TOTP_Secret`, SPA doors with their base64 keys (no one-time sequences files).
pub(crate) fn running(config: Config) -> RunningConfig {
    let mut totp = Vec::new();
    let mut spa = Vec::new();
    for (door_index, door) in config.doors.iter().enumerate() {
        if let Some(settings) = &door.totp {
            let secret = settings
                .inline_secret()
                .expect("an inline TOTP secret")
                .clone();
            let calculator = settings.totp(secret, &door.sequence).unwrap();
            totp.push(TotpRun {
                door: door_index,
                totp: calculator,
            });
        }
        if let Some(settings) = &door.spa {
            let keys = settings.inline_keys().expect("inline SPA keys").unwrap();
            spa.push((door_index, settings.door(keys)));
        }
    }
    RunningConfig {
        config,
        ots: Vec::new(),
        totp,
        spa,
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
