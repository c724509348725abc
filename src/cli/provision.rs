//! `rehearse provision`: a throwaway Postgres kept until Ctrl-C.

use clap::Args;

use super::{BackendArgs, fail, provision_exit};
use crate::exit::Exit;
use crate::migrate::{Layout, MigrationSet, RunnerKind, apply_serial};
use crate::provision::Postgres;
use crate::seed::{SeedOptions, SeedSpec, seed_database};

#[derive(Debug, Args)]
pub(crate) struct ProvisionArgs {
    #[command(flatten)]
    backend: BackendArgs,
    /// Print the connection URL with its password (it is hidden otherwise).
    #[arg(long)]
    show_password: bool,
    /// Migrations to apply first (a .sql file or a migrations directory).
    #[arg(long, value_name = "DIR")]
    migrations: Option<std::path::PathBuf>,
    /// Seed the database from this seeds file (after the migrations).
    #[arg(long, value_name = "FILE")]
    seed: Option<std::path::PathBuf>,
    /// RNG seed for `--seed`.
    #[arg(long, default_value_t = 42, requires = "seed")]
    seed_value: u64,
}

/// Starts the Postgres, prints its URL on stdout (alone on a line, for
/// scripts), and waits. The signal handler in `cli::main` ends the wait; the
/// handle's drop stops the server.
pub(crate) async fn provision(args: ProvisionArgs, quiet: bool) -> Exit {
    // Bad input is found before anything starts.
    let migrations = match &args.migrations {
        Some(dir) => match MigrationSet::load(dir, Layout::Auto) {
            Ok(set) => set.migrations,
            Err(e) => return fail(&e, Exit::BadInput),
        },
        None => Vec::new(),
    };
    let spec = match &args.seed {
        Some(path) => match SeedSpec::load(path) {
            Ok(spec) => Some(spec),
            Err(e) => return fail(&e, Exit::BadInput),
        },
        None => None,
    };
    let postgres = match Postgres::start(&args.backend.options(None)).await {
        Ok(postgres) => postgres,
        Err(e) => return fail(&e, provision_exit(&e)),
    };
    if let Err(e) = apply_serial(postgres.conn(), &RunnerKind::Naive, &migrations).await {
        return fail(&e, Exit::BadInput);
    }
    if let Some(spec) = &spec {
        let options = SeedOptions {
            seed: args.seed_value,
            progress: !quiet,
            ..SeedOptions::default()
        };
        match seed_database(postgres.conn(), Some(spec), &options).await {
            Ok(report) if !quiet => super::seed::print_report(&report),
            Ok(_) => {}
            Err(e) => {
                let exit = if e.is_bad_input() {
                    Exit::BadInput
                } else {
                    Exit::Infrastructure
                };
                return fail(&e, exit);
            }
        }
    }
    if !quiet {
        for note in postgres.notes() {
            eprintln!("rehearse: {note}");
        }
        eprintln!("rehearse: {}", postgres.describe());
        if !args.show_password {
            eprintln!("rehearse: password hidden; pass --show-password to print it");
        }
        eprintln!("rehearse: press Ctrl-C to stop and remove it");
    }
    let url = if args.show_password {
        postgres.conn().url_with_password()
    } else {
        postgres.conn().display_url()
    };
    println!("{url}");
    // Keep the handle alive until a signal drops this future.
    std::future::pending::<()>().await;
    drop(postgres);
    Exit::Pass
}
