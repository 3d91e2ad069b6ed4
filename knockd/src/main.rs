//! knockd: the port-knock server. Everything lives in the library; this maps the outcome
//! to an exit status, in one place.

use std::process::ExitCode;

fn main() -> ExitCode {
    match knockd::run(std::env::args_os()) {
        Ok(exit) => ExitCode::from(exit.status()),
        Err(e) => ExitCode::from(knockd::report(&e)),
    }
}
