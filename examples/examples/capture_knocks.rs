//! Prints the TCP/UDP packets knock-capture sees, live or from a savefile.
//!
//! ```sh
//! cargo run -p knock-examples --example capture_knocks -- -i eth0 [-i wg0] [-p 7000,8000:udp]
//! cargo run -p knock-examples --example capture_knocks -- -r knocks.pcap
//! ```
//!
//! Live capture needs root (or CAP_NET_RAW). `-p` builds the kernel filter the daemon would
//! install for one door with that sequence; without it every TCP/UDP packet is shown.
//! Stops after 60 seconds of capture (or at the end of the file).

use std::time::Duration;

use knock_capture::{
    CaptureConfig, CaptureEvent, Clock, LiveCapture, OfflineCapture, filter_expression,
};
use knock_core::parse_sequence;
use knock_core::{Door, PacketEvent};

fn print(event: &PacketEvent) {
    println!(
        "{:?} {} -> {} {}:{} flags {:?} ({} bytes)",
        event.timestamp,
        event.source,
        event.destination,
        event.protocol,
        event.destination_port,
        event.tcp_flags,
        event.wire_len
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut interfaces = Vec::new();
    let mut file = None;
    let mut steps = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-i" => interfaces.push(args.next().ok_or("-i needs an interface")?),
            "-r" => file = Some(args.next().ok_or("-r needs a file")?),
            "-p" => steps = Some(parse_sequence(&args.next().ok_or("-p needs ports")?)?),
            other => return Err(format!("unknown argument `{other}`").into()),
        }
    }

    if let Some(path) = file {
        let mut capture = OfflineCapture::open(&path)?;
        println!("{path}: link type {}", capture.link_type());
        for event in capture.by_ref().flatten() {
            print(&event);
        }
        println!("ignored: {:?}", capture.ignored());
        if let Some(error) = capture.take_error() {
            return Err(error.into());
        }
        return Ok(());
    }

    if interfaces.is_empty() {
        interfaces.push("any".to_owned());
    }
    let filter = match steps {
        Some(steps) => {
            let addresses = knock_capture::local_addresses(&interfaces);
            filter_expression(&[Door::new("example", steps)], &addresses)
        }
        None => "tcp or udp".to_owned(),
    };
    println!("filter: {filter}");
    let config = CaptureConfig::new(interfaces, filter);
    let (sender, receiver) = config.channel();
    let capture = LiveCapture::start(config, Clock::new(), sender)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while let Ok(event) = receiver.recv_deadline(deadline) {
        match event {
            CaptureEvent::Packet(packet) => print(&packet),
            other => println!("{other:?}"),
        }
    }
    for stats in capture.stats() {
        println!("{stats:?}");
    }
    capture.stop();
    Ok(())
}
