//! Knocking from Rust with the `knock` library instead of the `knock` program.
//!
//! ```text
//! cargo run -p knock-examples --example knock_from_rust                 # loopback demo
//! cargo run -p knock-examples --example knock_from_rust -- myserver 7000 8000:udp 9000
//! ```
//!
//! Without arguments it knocks three UDP ports of a socket it opened on 127.0.0.1 and shows
//! what that "server" received: one datagram of one NUL byte per hit, as knock 0.8 sends.
//! With arguments it knocks HOST on the given ports, 100 ms apart, like
//! `knock -v -d 100 HOST PORT…`.

use std::error::Error;
use std::net::UdpSocket;
use std::process::ExitCode;
use std::time::Duration;

use knock::{AddressFamily, Hit, Knock, KnockOptions, PortSpec, Protocol};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Display, not Debug: "port 70000 is out of range (use 1-65535)".
            eprintln!("knock_from_rust: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = KnockOptions::default().with_delay(Duration::from_millis(100));
    let print_hit = |hit: &Hit| println!("hitting {hit}");

    if let Some((host, ports)) = args.split_first() {
        // The same parsing rules as the `knock` program: `8000:udp`, `9000:TCP`, 1–65535.
        let sequence = ports
            .iter()
            .map(|arg| Ok(arg.parse::<PortSpec>()?.resolve(Protocol::Tcp)))
            .collect::<Result<Vec<Knock>, knock::PortSpecError>>()?;
        // Resolve once, then knock every port of that one address.
        let target = knock::resolve(host, AddressFamily::Any)?;
        knock::knock_with(target, &sequence, &options, print_hit)?;
        return Ok(());
    }

    // Loopback demo: a UDP socket plays the server.
    let server = UdpSocket::bind("127.0.0.1:0")?;
    server.set_read_timeout(Some(Duration::from_secs(5)))?;
    let port = server.local_addr()?.port();
    let sequence = [Knock::udp(port), Knock::udp(port), Knock::udp(port)];
    knock::knock_with(server.local_addr()?.ip(), &sequence, &options, print_hit)?;
    for _ in &sequence {
        let mut buffer = [0_u8; 16];
        let (length, from) = server.recv_from(&mut buffer)?;
        println!("server got {:?} from {from}", &buffer[..length]);
    }
    Ok(())
}
