//! knock: the port-knock client. PLACEHOLDER.

fn main() {}
