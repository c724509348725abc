//! `rehearse provision`: a throwaway Postgres kept until Ctrl-C.

use clap::Args;

use super::{BackendArgs, fail, provision_exit};
use crate::exit::Exit;
use crate::provision::Postgres;

#[derive(Debug, Args)]
pub(crate) struct ProvisionArgs {
    #[command(flatten)]
    backend: BackendArgs,
    /// Print the connection URL with its password (it is hidden otherwise).
    #[arg(long)]
    show_password: bool,
}

/// Starts the Postgres, prints its URL on stdout (alone on a line, for
/// scripts), and waits. The signal handler in `cli::main` ends the wait; the
/// handle's drop stops the server.
pub(crate) async fn provision(args: ProvisionArgs, quiet: bool) -> Exit {
    let postgres = match Postgres::start(&args.backend.options(None)).await {
        Ok(postgres) => postgres,
        Err(e) => return fail(&e, provision_exit(&e)),
    };
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
