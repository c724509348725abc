//! The `rehearse` command line.

use clap::{Parser, Subcommand};

use crate::exit::Exit;

#[derive(Debug, Parser)]
#[command(name = "rehearse", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Fill a database with generated data from a seeds file.
    Seed(crate::seed::SeedArgs),
}

/// Entry point of the binary.
#[must_use]
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        None => Exit::Pass.into(),
        Some(Command::Seed(args)) => {
            let Ok(runtime) = tokio::runtime::Runtime::new() else {
                return Exit::Infrastructure.into();
            };
            match runtime.block_on(crate::seed::run_cli(&args)) {
                Ok(report) => {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&report).unwrap_or_default()
                    );
                    Exit::Pass.into()
                }
                Err(error) => {
                    eprintln!("error: {error}");
                    if error.is_bad_input() {
                        Exit::BadInput
                    } else {
                        Exit::Infrastructure
                    }
                    .into()
                }
            }
        }
    }
}
