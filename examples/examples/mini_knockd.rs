//! A minimal port-knock server built from the two libraries alone: knock-capture delivers
//! packets, knock-core's `Matcher` turns them and the passing of time into actions, and this
//! loop prints each action with the command a daemon would run (it runs nothing).
//!
//! ```sh
//! # Live, on an interface (needs root or CAP_NET_RAW); stops after 60 s:
//! cargo run -p knock-examples --example mini_knockd -- -c knockd.conf -i eth0
//! # From a capture file, at the packets' own times:
//! cargo run -p knock-examples --example mini_knockd -- -c knockd.conf -r knocks.pcap
//! ```
//!
//! The whole calling contract is here: feed `handle_packet`, drain `poll_action`, sleep until
//! `poll_timeout` (or the next packet), then `handle_timeout`. `examples/tests/mini_knockd.rs`
//! runs it in CI on a capture file and, as root, live on a veth pair.

use std::time::Duration;

use crossbeam_channel::RecvTimeoutError;
use knock_capture::{
    CaptureConfig, CaptureEvent, Clock, Destinations, LiveCapture, OfflineCapture,
};
use knock_core::{Action, Config, Instant, Matcher};

/// Prints what the matcher decided, as knockd logs it, plus the command it would run.
fn drain(matcher: &mut Matcher) {
    while let Some(action) = matcher.poll_action() {
        println!("{action}");
        let command = match &action {
            Action::Open { door, source, .. } => door.start_command_line(*source),
            Action::Close { door, source } => door.stop_command_line(*source),
            _ => None,
        };
        if let Some(command) = command {
            println!("would run: {command}");
        }
    }
}

/// Lets every deadline up to `now` fire, each at its own instant.
fn advance(matcher: &mut Matcher, now: Instant) {
    while let Some(at) = matcher.poll_timeout().filter(|&at| at <= now) {
        matcher.handle_timeout(at);
        drain(matcher);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config_path = None;
    let mut interfaces = Vec::new();
    let mut file = None;
    let mut seconds = 60;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-c" => config_path = Some(args.next().ok_or("-c needs a file")?),
            "-i" => interfaces.push(args.next().ok_or("-i needs an interface")?),
            "-r" => file = Some(args.next().ok_or("-r needs a file")?),
            "--seconds" => seconds = args.next().ok_or("--seconds needs a number")?.parse()?,
            other => return Err(format!("unknown argument `{other}`").into()),
        }
    }
    let config_path = config_path.ok_or("-c knockd.conf is required")?;
    let parsed = Config::parse(&std::fs::read_to_string(&config_path)?)
        .map_err(|e| e.with_file(config_path.clone()).to_string())?;
    for warning in &parsed.warnings {
        eprintln!("warning: {warning}");
    }
    let config = parsed.config;
    let mut matcher = Matcher::new(&config);

    if let Some(path) = file {
        // Time is the packets' own; every destination counts (the capture may come from
        // another host), which is the matcher's default.
        let mut capture = OfflineCapture::open(&path)?;
        for event in capture.by_ref().flatten() {
            advance(&mut matcher, event.timestamp);
            matcher.handle_packet(&event);
            drain(&mut matcher);
        }
        advance(&mut matcher, Instant::MAX);
        if let Some(error) = capture.take_error() {
            return Err(error.into());
        }
        return Ok(());
    }

    if interfaces.is_empty() {
        return Err("-i INTERFACE or -r FILE is required".into());
    }
    // The destinations the doors accept and the kernel filter follow the local addresses,
    // which the capture reports at start and on every change.
    let mut destinations = Destinations::new(false);
    let capture_config = CaptureConfig::new(interfaces, destinations.filter(&config.doors));
    let (sender, receiver) = capture_config.channel();
    let clock = Clock::new();
    let capture = LiveCapture::start(capture_config, clock, sender)?;
    let end = std::time::Instant::now() + Duration::from_secs(seconds);
    loop {
        // Sleep until the next packet, the matcher's next deadline, or the end.
        let wake = matcher
            .poll_timeout()
            .and_then(|at| clock.to_std(at))
            .map_or(end, |at| at.min(end));
        match receiver.recv_deadline(wake) {
            Ok(CaptureEvent::Packet(packet)) => {
                advance(&mut matcher, packet.timestamp);
                matcher.handle_packet(&packet);
                drain(&mut matcher);
            }
            Ok(CaptureEvent::AddressesChanged { addresses }) => {
                destinations.set_addresses(addresses);
                matcher.set_local_addresses(destinations.local());
                capture.set_filter(destinations.filter(&config.doors))?;
            }
            Ok(CaptureEvent::InterfaceUp { interface, .. }) => {
                println!("listening on {interface}");
            }
            Ok(other) => eprintln!("{other:?}"),
            Err(RecvTimeoutError::Timeout) if std::time::Instant::now() < end => {
                advance(&mut matcher, clock.now());
            }
            Err(_) => break,
        }
    }
    capture.stop();
    Ok(())
}
