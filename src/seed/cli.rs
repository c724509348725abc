//! `rehearse seed <seeds file> --database-url URL`.

use std::path::PathBuf;

use clap::Args;

use super::{SeedError, SeedOptions, SeedReport, SeedSpec, seed_database};
use crate::provision::ConnInfo;

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

/// Parses a `postgres://` URL into connection settings.
fn conn_from_url(url: &str) -> Result<ConnInfo, SeedError> {
    let bad = |message: String| SeedError::Read {
        path: "--database-url".into(),
        message,
    };
    let config: tokio_postgres::Config = url
        .parse()
        .map_err(|e: tokio_postgres::Error| bad(format!("invalid url: {e}")))?;
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config
        .get_user()
        .ok_or_else(|| bad("the url names no user".into()))?;
    let mut conn = ConnInfo::new(host, port, user).with_password(
        config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
    );
    if let Some(db) = config.get_dbname() {
        conn = conn.with_dbname(db);
    }
    Ok(conn)
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
    let conn = conn_from_url(&args.database_url)?;
    let options = SeedOptions {
        seed: args.seed.or(spec.seed()).unwrap_or(0),
        scale: args.scale,
        hostile: args.hostile,
        progress: !args.quiet,
    };
    seed_database(&conn, Some(&spec), &options).await
}
