//! `rehearse gc`: removes what killed runs left behind.

use std::path::PathBuf;

use clap::Args;

use crate::exit::Exit;
use crate::provision::gc::{GcOptions, collect};

#[derive(Debug, Args)]
pub(crate) struct GcArgs {
    /// Remove every resource of ours, even those a live run still uses.
    #[arg(long)]
    all: bool,
    /// Also drop throwaway databases that killed runs left on this server
    /// (url backend). Only databases carrying our marker comment, whose
    /// run is dead, are dropped.
    #[arg(long)]
    database_url: Option<String>,
    /// Also look for local clusters in this directory (the `--tmp-dir` the
    /// killed run used).
    #[arg(long, value_name = "DIR")]
    tmp_dir: Option<PathBuf>,
}

pub(crate) async fn gc(args: GcArgs) -> Exit {
    let options = GcOptions {
        all: args.all,
        database_url: args.database_url,
        tmp_dir: args.tmp_dir,
    };
    if let Some(url) = &options.database_url
        && let Err(e) = crate::provision::parse_database_url(url)
    {
        return super::fail(&e, Exit::BadInput);
    }
    let report = collect(&options).await;
    for dir in &report.clusters_removed {
        println!("removed local cluster {}", dir.display());
    }
    for id in &report.containers_removed {
        println!("removed container {id}");
    }
    for name in &report.databases_removed {
        println!("dropped database {name}");
    }
    for name in &report.roles_removed {
        println!("dropped role {name}");
    }
    for dir in &report.cache_partials_removed {
        println!(
            "removed half-written template cache entry {}",
            dir.display()
        );
    }
    if report.clusters_removed.is_empty()
        && report.containers_removed.is_empty()
        && report.databases_removed.is_empty()
        && report.roles_removed.is_empty()
        && report.cache_partials_removed.is_empty()
    {
        println!("nothing to remove");
    }
    for name in &report.databases_unmarked {
        println!("left database {name} alone: it carries no rehearse marker");
    }
    if report.in_use > 0 {
        println!(
            "left {} in use by running rehearse processes (--all removes them)",
            report.in_use
        );
    }
    if let Some(reason) = &report.docker_skipped {
        println!("docker not checked: {reason}");
    }
    for error in &report.errors {
        eprintln!("rehearse: error: {error}");
    }
    if report.errors.is_empty() {
        Exit::Pass
    } else {
        Exit::Infrastructure
    }
}
