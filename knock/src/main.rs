//! `knock`: the port-knock client. All the logic is in the library (`knock::cli`).

fn main() -> std::process::ExitCode {
    knock::cli::main()
}
