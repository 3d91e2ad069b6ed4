//! Local address discovery (getifaddrs).

use std::net::IpAddr;

/// The pseudo-interface that captures on every interface.
pub const ANY_INTERFACE: &str = "any";

/// Whether the getifaddrs entry `entry_name` belongs to one of `interfaces`.
///
/// Labelled IPv4 aliases (`ip addr add … label eth0:1`) are listed by getifaddrs under
/// `eth0:1`; they belong to `eth0` (knockd 0.8 missed them, bug B4).
fn belongs_to(entry_name: &str, interfaces: &[String]) -> bool {
    let base = entry_name.split(':').next().unwrap_or(entry_name);
    interfaces
        .iter()
        .any(|i| i == ANY_INTERFACE || i == entry_name || i == base)
}

/// The IPv4 and IPv6 addresses of `interfaces` (all interfaces if one of them is `any`),
/// sorted and deduplicated, including labelled aliases (`eth0:1` counts as `eth0`) and
/// link-local IPv6 addresses (without their scope).
///
/// Returns an empty list if the addresses cannot be read (the caller treats that as "not
/// known", like an interface that has no address yet).
#[must_use]
pub fn local_addresses(interfaces: &[String]) -> Vec<IpAddr> {
    let Ok(entries) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut out: Vec<IpAddr> = entries
        .filter(|entry| belongs_to(&entry.interface_name, interfaces))
        .filter_map(|entry| {
            let address = entry.address?;
            if let Some(v4) = address.as_sockaddr_in() {
                Some(IpAddr::V4(v4.ip()))
            } else {
                address.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
            }
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_belong_to_their_interface() {
        let eth0 = ["eth0".to_owned()];
        assert!(belongs_to("eth0", &eth0));
        assert!(belongs_to("eth0:1", &eth0));
        assert!(!belongs_to("eth01", &eth0));
        assert!(!belongs_to("eth1", &eth0));
        assert!(belongs_to("wg0", &[ANY_INTERFACE.to_owned()]));
    }

    #[test]
    fn loopback_has_its_addresses() {
        let addresses = local_addresses(&["lo".to_owned()]);
        assert!(
            addresses.contains(&IpAddr::from([127, 0, 0, 1])),
            "{addresses:?}"
        );
        let all = local_addresses(&[ANY_INTERFACE.to_owned()]);
        assert!(addresses.iter().all(|a| all.contains(a)));
        assert!(local_addresses(&["no-such-interface0".to_owned()]).is_empty());
    }
}
