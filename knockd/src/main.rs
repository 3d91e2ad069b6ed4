//! knockd: the port-knock server. PLACEHOLDER.

fn main() {}
