//! Everything in knockd that differs between operating systems, in one place (the rest is
//! POSIX through `nix` and `signal-hook`, libpcap through knock-capture, and plain Rust):
//!
//! * [`default_route_interface`]: the interface of the IPv4 default route, the default for
//!   `-i`, read from `/proc/net/route` on Linux; elsewhere there is none and knockd falls back
//!   to `eth0` as knockd 0.8 did (name the interface with `-i` or `Interface` there).

/// The interface of the IPv4 default route, from `/proc/net/route`.
#[cfg(target_os = "linux")]
pub(crate) fn default_route_interface() -> Option<String> {
    let text = std::fs::read_to_string("/proc/net/route").ok()?;
    default_route_from_table(&text)
}

/// No route table to read outside Linux: the caller falls back to `eth0`.
#[cfg(not(target_os = "linux"))]
pub(crate) fn default_route_interface() -> Option<String> {
    None
}

/// The interface of the first default route (destination and mask 0, flag RTF_UP) in the
/// text of `/proc/net/route`.
#[cfg(any(target_os = "linux", test))]
fn default_route_from_table(text: &str) -> Option<String> {
    text.lines().skip(1).find_map(|line| {
        let mut fields = line.split_whitespace();
        let interface = fields.next()?;
        let destination = fields.next()?;
        let _gateway = fields.next()?;
        let flags = u16::from_str_radix(fields.next()?, 16).ok()?;
        let mask = fields.nth(3)?;
        // RTF_UP = 1; destination 0/0 is the default route.
        (destination == "00000000" && mask == "00000000" && flags & 1 == 1)
            .then(|| interface.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_route_is_read_from_the_route_table() {
        let table = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                     ens3\t0002A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                     ens4\t00000000\t0102A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n";
        assert_eq!(default_route_from_table(table), Some("ens4".into()));
        assert_eq!(default_route_from_table("Iface\n"), None);
    }
}
