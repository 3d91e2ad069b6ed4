//! knockd: the port-knock server. Everything lives in the library; this maps the outcome
//! to an exit status, in one place.

use std::process::ExitCode;

fn main() -> ExitCode {
    match knockd::run(std::env::args_os()) {
        Ok(exit) => ExitCode::from(exit.status()),
        Err(knockd::Error::Usage(e)) => {
            // Help and version go to stdout and exit 0; a bad option is an error (exit 1,
            // not clap's 2, which would read as "stopped by SIGINT").
            let _ = e.print();
            ExitCode::from(if e.use_stderr() { 1 } else { 0 })
        }
        Err(e @ knockd::Error::Config { .. }) => {
            // `FILE:LINE:COL: message`, the quoted line and a caret: the shape editors and
            // compilers use, so no program-name prefix.
            knockd::logging::stderr_line(&e.to_string());
            ExitCode::from(e.status())
        }
        Err(e) => {
            knockd::logging::stderr_line(&format!("knockd: {e}"));
            ExitCode::from(e.status())
        }
    }
}
