//! `rehearse stats capture`: a read-only snapshot of a database's
//! statistics (never a row of data), for production-shaped seeding and
//! forecasts.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::fail;
use crate::exit::Exit;
use crate::provision::parse_database_url as parse_url;
use crate::stats::{CaptureOptions, capture};

#[derive(Debug, Args)]
pub(crate) struct StatsArgs {
    #[command(subcommand)]
    command: StatsCommand,
}

#[derive(Debug, Subcommand)]
enum StatsCommand {
    /// Snapshot table sizes, indexes and pg_stats of a database, read-only.
    ///
    /// Needs SELECT on the tables (or the pg_read_all_data role): pg_stats
    /// hides the statistics of columns the role may not select. No row is
    /// read; text sample values are replaced unless --keep-values.
    Capture(CaptureArgs),
}

#[derive(Debug, Args)]
struct CaptureArgs {
    /// The database to read statistics from.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// Only this schema (default: every user schema).
    #[arg(long)]
    schema: Option<String>,
    /// Keep the original most-common values and histogram bounds of text
    /// columns (they may be personal data).
    #[arg(long)]
    keep_values: bool,
    /// Write the JSON here instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
}

pub(crate) async fn stats(args: StatsArgs, quiet: bool) -> Exit {
    match args.command {
        StatsCommand::Capture(args) => capture_command(args, quiet).await,
    }
}

async fn capture_command(args: CaptureArgs, quiet: bool) -> Exit {
    let conn = match parse_url(&args.database_url) {
        Ok(conn) => conn,
        Err(e) => return fail(&e, Exit::BadInput),
    };
    let client = match conn.connect("rehearse-stats").await {
        Ok(client) => client,
        Err(e) => {
            return fail(
                &format!("cannot connect to {}: {e}", conn.display_url()),
                Exit::Infrastructure,
            );
        }
    };
    let options = CaptureOptions {
        schema: args.schema,
        keep_values: args.keep_values,
    };
    let snapshot = match capture(&client, &options).await {
        Ok(snapshot) => snapshot,
        Err(e) => {
            let exit = if e.is_bad_input() {
                Exit::BadInput
            } else {
                Exit::Infrastructure
            };
            return fail(&e, exit);
        }
    };
    let json = match serde_json::to_string_pretty(&snapshot) {
        Ok(json) => json,
        Err(e) => return fail(&format!("encoding the snapshot: {e}"), Exit::Infrastructure),
    };
    match &args.output {
        Some(path) => {
            if let Err(e) = std::fs::write(path, json + "\n") {
                return fail(
                    &format!(
                        "writing {}: {}",
                        path.display(),
                        e.to_string().to_lowercase()
                    ),
                    Exit::Infrastructure,
                );
            }
            if !quiet {
                let columns: usize = snapshot.tables.iter().map(|t| t.columns.len()).sum();
                eprintln!(
                    "rehearse: captured {} tables, {} columns of {} into {}",
                    snapshot.tables.len(),
                    columns,
                    snapshot.database,
                    path.display()
                );
            }
        }
        None => println!("{json}"),
    }
    Exit::Pass
}
