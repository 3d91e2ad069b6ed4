//! The README's "Embedding the libraries" example, verbatim below this header (the
//! `readme` test checks that the two stay identical).
//!
//! ```text
//! cargo run -p knock-examples --example readme_embedding
//! ```

use knock_core::{Config, Instant, Matcher, PacketEvent};
use std::net::IpAddr;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let parsed = Config::parse(
        "[openSSH]\n sequence = 7000,8000:udp,9000\n tcpflags = syn\n\
         command = open %IP%\n cmd_timeout = 10\n stop_command = close %IP%\n",
    )?;
    let door = &parsed.config.doors[0];
    let mut matcher = Matcher::new(&parsed.config);

    let (client, server): (IpAddr, IpAddr) = ("10.0.0.1".parse()?, "10.0.0.2".parse()?);
    // Each packet carries its time (here one step a second, as a knock client sends them).
    for (second, step) in (1..).zip(&door.sequence) {
        matcher.handle_packet(&PacketEvent::knock(
            Instant::from_secs(second),
            client,
            server,
            *step,
        ));
    }
    // Time is the caller's: jump to the next deadline (the stop command) instead of sleeping.
    if let Some(deadline) = matcher.poll_timeout() {
        matcher.handle_timeout(deadline);
    }
    while let Some(action) = matcher.poll_action() {
        // "10.0.0.1: openSSH: Stage 1" … "OPEN SESAME" … "command timeout", as knockd logs.
        println!("{action}");
        // On Open, run door.start_command_line(source) (%IP% substituted) with /bin/sh -c;
        // on Close, door.stop_command_line(source).
    }
    Ok(())
}
