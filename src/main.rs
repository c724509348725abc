//! The `rehearse` binary: parses arguments and hands over to the library.

fn main() -> std::process::ExitCode {
    pg_rehearse::cli::main()
}
