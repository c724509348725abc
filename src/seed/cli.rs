//! `rehearse seed <seeds file> --database-url URL`.

use std::path::PathBuf;

use clap::Args;

use super::{SeedError, SeedOptions, SeedReport, SeedSpec, seed_database};

/// Arguments of `rehearse seed`.
#[derive(Debug, Clone, Args)]
pub struct SeedArgs {
    /// The seeds file (`seeds/*.toml`).
    pub spec: PathBuf,
    /// Database to fill, e.g. `postgres://user@127.0.0.1:5432/app`.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// RNG seed; defaults to the file's `seed`, else 0.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Multiplies every row count.
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Boundary values, NULLs, duplicates, unicode and quotes everywhere allowed.
    #[arg(long)]
    pub hostile: bool,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
}

/// Runs `rehearse seed`.
pub async fn run_cli(args: &SeedArgs) -> Result<SeedReport, SeedError> {
    if !(args.scale.is_finite() && args.scale >= 0.0) {
        return Err(SeedError::Read {
            path: "--scale".into(),
            message: "must be a finite number >= 0".into(),
        });
    }
    let spec = SeedSpec::load(&args.spec)?;
    let conn =
        crate::provision::parse_database_url(&args.database_url).map_err(|e| SeedError::Read {
            path: "--database-url".into(),
            message: e.to_string(),
        })?;
    let options = SeedOptions {
        seed: args.seed.or(spec.seed()).unwrap_or(0),
        scale: args.scale,
        hostile: args.hostile,
        progress: !args.quiet,
    };
    seed_database(&conn, Some(&spec), &options).await
}
