//! `rehearse cache ls|prune`, and the cache flags `run` shares.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::fail;
use crate::exit::Exit;
use crate::provision::cache::{
    CACHE_DIR_ENV, CacheSettings, DEFAULT_MAX_SIZE, human_size, list, parse_size, prune,
};

/// Where the persistent template cache lives and how big it may grow.
#[derive(Debug, Clone, Args)]
pub(crate) struct CacheArgs {
    /// Template cache directory (default $XDG_CACHE_HOME/rehearse, else
    /// ~/.cache/rehearse).
    #[arg(long, env = CACHE_DIR_ENV, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Total size above which the least recently used cache entries are
    /// evicted, in bytes or with a unit (4G, 500M); default 4 GiB.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value_t = DEFAULT_MAX_SIZE)]
    cache_max_size: u64,
}

impl CacheArgs {
    pub(crate) fn settings(&self) -> Result<CacheSettings, String> {
        CacheSettings::new(self.cache_dir.clone(), self.cache_max_size).map_err(|e| e.to_string())
    }
}

#[derive(Debug, Args)]
pub(crate) struct CacheCommand {
    #[command(subcommand)]
    action: CacheAction,
}

#[derive(Debug, Subcommand)]
enum CacheAction {
    /// List the cached templates, most recently used first.
    Ls {
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Evict least recently used entries down to --cache-max-size (every
    /// entry with --all); entries a running rehearse is copying stay.
    Prune {
        #[command(flatten)]
        cache: CacheArgs,
        #[arg(long)]
        all: bool,
    },
}

pub(crate) fn cache(command: CacheCommand) -> Exit {
    match command.action {
        CacheAction::Ls { cache } => ls(&cache),
        CacheAction::Prune { cache, all } => prune_cache(&cache, all),
    }
}

fn ls(args: &CacheArgs) -> Exit {
    let settings = match args.settings() {
        Ok(settings) => settings,
        Err(e) => return fail(&e, Exit::BadInput),
    };
    let entries = match list(&settings.dir) {
        Ok(entries) => entries,
        Err(e) => return fail(&e, Exit::Infrastructure),
    };
    let total: u64 = entries.iter().map(|e| e.size).sum();
    println!(
        "{}: {} entr{}, {} of {}",
        settings.dir.display(),
        entries.len(),
        if entries.len() == 1 { "y" } else { "ies" },
        human_size(total),
        human_size(settings.max_size)
    );
    for entry in &entries {
        let used = chrono::DateTime::<chrono::Utc>::from(entry.last_used)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        println!(
            "{}  {:>9}  used {used}  postgres {}  rehearse {}",
            entry.id(),
            human_size(entry.size),
            entry.manifest.postgres_version,
            entry.manifest.tool_version
        );
        for template in &entry.manifest.templates {
            println!("    {} (key {})", template.database, &template.key);
        }
    }
    Exit::Pass
}

fn prune_cache(args: &CacheArgs, all: bool) -> Exit {
    let settings = match args.settings() {
        Ok(settings) => settings,
        Err(e) => return fail(&e, Exit::BadInput),
    };
    let report = prune(&settings.dir, if all { 0 } else { settings.max_size }, None);
    for dir in &report.removed {
        println!("removed {}", dir.display());
    }
    println!(
        "freed {}; {} entr{} left ({}), {} in use",
        human_size(report.freed),
        report.kept,
        if report.kept == 1 { "y" } else { "ies" },
        human_size(report.kept_size),
        report.in_use
    );
    for error in &report.errors {
        eprintln!("rehearse: error: {error}");
    }
    if report.errors.is_empty() {
        Exit::Pass
    } else {
        Exit::Infrastructure
    }
}
