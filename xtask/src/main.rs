//! `cargo run -p xtask -- gen` regenerates packaging/man and packaging/completions;
//! `cargo run -p xtask -- check` exits 1 when they are stale.

use std::process::ExitCode;

fn main() -> ExitCode {
    let root = xtask::workspace_root();
    let task = std::env::args().nth(1);
    let result = match task.as_deref() {
        Some("gen") => xtask::write_all(&root).map(|written| {
            for path in written {
                println!("wrote {}", path.display());
            }
            ExitCode::SUCCESS
        }),
        Some("check") => xtask::stale_files(&root).map(|stale| {
            if stale.is_empty() {
                println!("man pages and completions are up to date");
                ExitCode::SUCCESS
            } else {
                for path in stale {
                    eprintln!("stale: {} (run: cargo run -p xtask -- gen)", path.display());
                }
                ExitCode::FAILURE
            }
        }),
        _ => {
            eprintln!("usage: cargo run -p xtask -- gen|check");
            return ExitCode::from(2);
        }
    };
    result.unwrap_or_else(|error| {
        eprintln!("xtask: {error}");
        ExitCode::FAILURE
    })
}
