//! `rehearse gc`: removes what killed runs left behind.

use clap::Args;

use crate::exit::Exit;
use crate::provision::gc::collect;

#[derive(Debug, Args)]
pub(crate) struct GcArgs {
    /// Remove every resource of ours, even those a live run still uses.
    #[arg(long)]
    all: bool,
}

pub(crate) async fn gc(args: GcArgs) -> Exit {
    let report = collect(args.all).await;
    for dir in &report.clusters_removed {
        println!("removed local cluster {}", dir.display());
    }
    for id in &report.containers_removed {
        println!("removed container {id}");
    }
    for dir in &report.cache_partials_removed {
        println!(
            "removed half-written template cache entry {}",
            dir.display()
        );
    }
    if report.clusters_removed.is_empty()
        && report.containers_removed.is_empty()
        && report.cache_partials_removed.is_empty()
    {
        println!("nothing to remove");
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
