//! Scenario files: what a rehearsal does.
//!
//! A scenario is a TOML file under `scenarios/`, or a folder holding
//! `scenario.toml` with its migrations and workloads beside it. Parsing keeps
//! spans, so every error names `file:line:column` and the offending key;
//! unknown keys are rejected. The format is documented in
//! `docs/scenario-format.md`.

mod discover;
mod error;
pub mod expect;
pub mod lint_rules;
pub mod replicas;
pub mod rollout;
pub mod workload;

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_spanned::Spanned;

pub use discover::discover;
pub use error::{ScenarioError, line_column};
pub use replicas::{FaultConfig, RaceConfig};

use crate::migrate::Layout;
use crate::provision::Backend;
pub use expect::{CheckId, LockBudget};
pub use lint_rules::RuleId;

/// The scenario file as written, before paths are resolved.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: Spanned<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    backend: Option<Backend>,
    #[serde(default)]
    postgres: Option<Spanned<u32>>,
    migrations: RawMigrations,
    #[serde(default)]
    seed: Option<RawSeed>,
    #[serde(default)]
    replicas: Option<Spanned<RaceConfig>>,
    #[serde(default)]
    expect: Expectations,
    // App workloads per version (`old = "workloads/old.toml"`)
    // and the rollout plan they follow.
    #[serde(default)]
    workloads: std::collections::BTreeMap<String, Spanned<PathBuf>>,
    #[serde(default)]
    rollout: Option<Spanned<rollout::RolloutConfig>>,
    #[serde(default)]
    locks: RawLocks,
    /// Production size for `rehearse forecast`.
    #[serde(default)]
    forecast: Option<RawForecast>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawForecast {
    #[serde(default)]
    rows: std::collections::BTreeMap<String, Spanned<f64>>,
    #[serde(default)]
    stats: Option<Spanned<PathBuf>>,
    #[serde(default)]
    fractions: Option<Spanned<Vec<f64>>>,
    #[serde(default)]
    max_rows: Option<Spanned<u64>>,
}

/// `[forecast]`: production's size, and the sizes to time.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ForecastSpec {
    /// Production rows per table (`orders` or `schema.orders`).
    pub rows: std::collections::BTreeMap<String, f64>,
    /// A `rehearse stats capture` snapshot giving production's sizes.
    pub stats: Option<PathBuf>,
    /// Sizes to time: fractions of production (with a snapshot) or
    /// multiples of the seed scale (without).
    pub fractions: Option<Vec<f64>>,
    /// Rows of the largest table at the largest size, at most.
    pub max_rows: Option<u64>,
}

/// The keys written in `[replicas]`, with where they are (a second read of
/// the file; every other section is ignored here).
#[derive(Debug, Deserialize)]
struct ReplicaKeys {
    #[serde(default)]
    replicas: Option<std::collections::BTreeMap<String, Spanned<toml::Value>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLocks {
    #[serde(default)]
    sample_interval_ms: Option<Spanned<u64>>,
    #[serde(default)]
    catalog: bool,
    #[serde(default)]
    allow: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMigrations {
    dir: Spanned<PathBuf>,
    #[serde(default)]
    layout: Layout,
    #[serde(default)]
    baseline: Option<Spanned<String>>,
}

/// Largest `scale` a seeds file (or `[seed] scale`) may give.
pub const MAX_SCALE: f64 = 10_000.0;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSeed {
    #[serde(default)]
    spec: Option<Spanned<PathBuf>>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    scale: Option<Spanned<f64>>,
    #[serde(default)]
    hostile: bool,
    /// A `rehearse stats capture` snapshot shaping the seed.
    #[serde(default)]
    stats: Option<Spanned<PathBuf>>,
}

/// What a scenario expects; decides pass or fail.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Expectations {
    /// Checks that must report something (and are then allowed), e.g. a
    /// race the scenario exists to demonstrate.
    #[serde(default)]
    pub findings: Vec<CheckId>,
    /// Checks whose findings are tolerated.
    #[serde(default)]
    pub allow: Vec<CheckId>,
    /// Lock thresholds, judged from the lock report: longest
    /// ACCESS EXCLUSIVE hold on any table, in milliseconds.
    #[serde(default)]
    pub max_access_exclusive_ms: Option<u64>,
    /// Waiting sessions x seconds over the whole rehearsal.
    #[serde(default)]
    pub max_blocked_backend_seconds: Option<f64>,
    /// Longest lock wait of an application query, in milliseconds.
    #[serde(default)]
    pub max_app_stall_ms: Option<u64>,
    /// Fail when a statement takes a write-blocking lock with no lock_timeout.
    #[serde(default)]
    pub require_lock_timeout: bool,
    /// The lock budget in milliseconds (`docs/verdicts.md`): a migration's
    /// lock that blocks reads or writes on an existing table, or an
    /// application's lock wait, lasting longer fails the scenario
    /// (`lock-budget`). Unset: `rehearse run --lock-budget`, else 1000.
    #[serde(default)]
    pub lock_budget_ms: Option<u64>,
}

impl Expectations {
    /// The lock budget this scenario is judged against.
    #[must_use]
    pub fn lock_budget(&self) -> LockBudget {
        self.lock_budget_ms
            .map_or_else(LockBudget::default, LockBudget::from_ms)
    }
}

/// A loaded, validated scenario with absolute paths.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Scenario {
    pub name: String,
    pub description: Option<String>,
    /// The scenario file.
    pub path: PathBuf,
    /// `None`: whatever the command line says (default auto).
    pub backend: Option<Backend>,
    /// Postgres major version asked for.
    pub postgres: Option<u32>,
    pub migrations: MigrationsSpec,
    pub seed: Option<SeedSpecRef>,
    /// How the pending migrations are applied: replicas and runner.
    pub replicas: RaceConfig,
    pub expect: Expectations,
    /// Each version's workload, loaded.
    pub workloads: Vec<workload::Workload>,
    /// The rollout plan, steps expanded.
    pub rollout: Option<rollout::RolloutSpec>,
    /// How the lock sampler watches the rehearsal.
    pub locks: LocksSpec,
    /// `[forecast]`: production's size for `rehearse forecast`.
    pub forecast: Option<ForecastSpec>,
}

/// `[locks]`: how the live lock sampler watches the rehearsal.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LocksSpec {
    /// Time between two `pg_locks` samples: the resolution of every lock
    /// hold and wait in the report. Each sample is a round trip, so a
    /// shorter interval takes more CPU from the rehearsed workload (about
    /// 1.6 % of a 2-core machine at 10 ms; README, "Lock sampler").
    pub sample_interval_ms: u64,
    /// Keep holds on system catalogs (`pg_catalog.*`) in the lock report;
    /// left out by default (docs/verdicts.md).
    pub catalog: bool,
    /// Lint rules this scenario accepts: their findings are still
    /// reported, marked suppressed.
    pub allow: Vec<RuleId>,
}

impl LocksSpec {
    /// The default interval, 10 ms.
    pub const DEFAULT_INTERVAL_MS: u64 = 10;
    /// Bounds a scenario may ask for.
    pub const INTERVAL_MS: std::ops::RangeInclusive<u64> = 1..=1_000;

    #[must_use]
    pub fn sample_interval(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.sample_interval_ms)
    }
}

impl Default for LocksSpec {
    fn default() -> Self {
        LocksSpec {
            sample_interval_ms: Self::DEFAULT_INTERVAL_MS,
            catalog: false,
            allow: Vec::new(),
        }
    }
}

/// Where the migrations are and which of them production already has.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MigrationsSpec {
    pub dir: PathBuf,
    pub layout: Layout,
    /// Last version production already has; later ones are pending.
    pub baseline: Option<String>,
}

/// How to seed the database after the baseline.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SeedSpecRef {
    /// A seeds file; `None` seeds from the schema alone.
    pub spec: Option<PathBuf>,
    pub seed: u64,
    pub scale: f64,
    pub hostile: bool,
    /// A statistics snapshot (`rehearse stats capture`): row counts (times
    /// `scale`) and column shapes for what the seeds file leaves open.
    pub stats: Option<PathBuf>,
}

/// Oldest and newest major versions a scenario may ask for.
const SUPPORTED_MAJORS: std::ops::RangeInclusive<u32> = 12..=18;

/// Longest scenario `name` accepted, in characters.
pub const MAX_NAME_CHARS: usize = 200;

impl Scenario {
    /// Loads a scenario file, or the `scenario.toml` in a folder.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let file = if path.is_dir() {
            path.join("scenario.toml")
        } else {
            path.to_path_buf()
        };
        let text = std::fs::read_to_string(&file).map_err(|e| ScenarioError::Io {
            path: file.clone(),
            message: e.to_string(),
        })?;
        Self::parse(&text, &file)
    }

    /// Parses scenario text; `path` names the file in errors and anchors
    /// relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Scenario, ScenarioError> {
        let raw: RawScenario = toml::from_str(text).map_err(|e| {
            let at = e.span().map_or(0, |span| span.start);
            ScenarioError::at(path, text, at, e.message().trim_end().to_string())
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let error_at = |span: std::ops::Range<usize>, message: String| {
            ScenarioError::at(path, text, span.start, message)
        };

        let name = raw.name.get_ref().trim().to_string();
        if name.is_empty() {
            return Err(error_at(raw.name.span(), "`name` must not be empty".into()));
        }
        // A name is a heading in every report; a huge one is a mistake (or
        // hostile) and made the terminal renderer panic.
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(error_at(
                raw.name.span(),
                format!(
                    "`name` is {} characters long; at most {MAX_NAME_CHARS} are allowed",
                    name.chars().count()
                ),
            ));
        }
        if let Some(version) = &raw.postgres
            && !SUPPORTED_MAJORS.contains(version.get_ref())
        {
            return Err(error_at(
                version.span(),
                format!(
                    "`postgres` = {} is not a supported major version ({}-{})",
                    version.get_ref(),
                    SUPPORTED_MAJORS.start(),
                    SUPPORTED_MAJORS.end()
                ),
            ));
        }
        let dir = base.join(raw.migrations.dir.get_ref());
        if !dir.is_dir() {
            return Err(error_at(
                raw.migrations.dir.span(),
                format!("`migrations.dir`: {} is not a directory", dir.display()),
            ));
        }
        let seed = match raw.seed {
            None => None,
            Some(seed) => {
                let spec = match seed.spec {
                    None => None,
                    Some(spec) => {
                        let resolved = base.join(spec.get_ref());
                        if !resolved.is_file() {
                            return Err(error_at(
                                spec.span(),
                                format!("`seed.spec`: {} does not exist", resolved.display()),
                            ));
                        }
                        Some(resolved)
                    }
                };
                let scale = match seed.scale {
                    Some(scale) if !(*scale.get_ref() > 0.0 && scale.get_ref().is_finite()) => {
                        return Err(error_at(
                            scale.span(),
                            "`seed.scale` must be a positive number".into(),
                        ));
                    }
                    Some(scale) if *scale.get_ref() > MAX_SCALE => {
                        return Err(error_at(
                            scale.span(),
                            format!("`seed.scale` must be at most {}", MAX_SCALE),
                        ));
                    }
                    Some(scale) => *scale.get_ref(),
                    None => 1.0,
                };
                let stats = match seed.stats {
                    None => None,
                    Some(stats) => {
                        let resolved = base.join(stats.get_ref());
                        if let Err(e) = crate::stats::StatsSnapshot::load(&resolved) {
                            return Err(error_at(stats.span(), format!("`seed.stats`: {e}")));
                        }
                        Some(resolved)
                    }
                };
                Some(SeedSpecRef {
                    stats,
                    spec,
                    seed: seed.seed.unwrap_or(42),
                    scale,
                    hostile: seed.hostile,
                })
            }
        };
        let replicas_given = raw.replicas.is_some();
        let replicas = match raw.replicas {
            None => RaceConfig::default(),
            Some(spanned) => {
                let span = spanned.span();
                let mut config = spanned.into_inner();
                if let Err(e) = config.validate() {
                    return Err(error_at(span, e.to_string()));
                }
                // The user's tool runs where the scenario says, relative to
                // it; by default in the scenario's own folder.
                let process = config
                    .tool()
                    .is_some_and(|t| t.kind == crate::migrate::RunnerKind::Command);
                config.workdir = match config.workdir {
                    Some(dir) => Some(base.join(dir)),
                    None if process => Some(base.to_path_buf()),
                    None => None,
                };
                config
            }
        };
        let (workloads, mut rollout) =
            workloads_and_rollout(raw.workloads, raw.rollout, base, &error_at)?;
        // In a rollout, `[replicas]` says who performs the `migrate` steps;
        // a key that cannot take effect there is an error, not ignored.
        if let Some(rollout) = &mut rollout
            && replicas_given
        {
            let keys: ReplicaKeys = toml::from_str(text).map_err(|e| {
                ScenarioError::at(path, text, 0, e.message().trim_end().to_string())
            })?;
            let keys = keys.replicas.unwrap_or_default();
            let names: Vec<String> = keys.keys().cloned().collect();
            let migrator = rollout::Migrator::of(replicas.runner);
            if let Some((key, message)) = migrator.unused_key(&replicas, &names) {
                let span = keys.get(&key).map_or(0..0, Spanned::span);
                return Err(error_at(span, message));
            }
            rollout.migrator = Some(replicas.clone());
        }
        let mut locks = LocksSpec {
            catalog: raw.locks.catalog,
            ..LocksSpec::default()
        };
        if let Some(interval) = raw.locks.sample_interval_ms {
            if !LocksSpec::INTERVAL_MS.contains(interval.get_ref()) {
                return Err(error_at(
                    interval.span(),
                    format!(
                        "`locks.sample_interval_ms` = {} is out of range: use {}-{} \
                         milliseconds (default {}; shorter costs the workload more CPU, \
                         longer misses short lock holds)",
                        interval.get_ref(),
                        LocksSpec::INTERVAL_MS.start(),
                        LocksSpec::INTERVAL_MS.end(),
                        LocksSpec::DEFAULT_INTERVAL_MS
                    ),
                ));
            }
            locks.sample_interval_ms = interval.into_inner();
        }
        let forecast = match raw.forecast {
            None => None,
            Some(f) => Some(forecast_spec(f, base, &error_at)?),
        };
        for id in raw.locks.allow {
            match RuleId::from_id(id.get_ref()) {
                Some(rule) => locks.allow.push(rule),
                None => {
                    return Err(error_at(
                        id.span(),
                        format!(
                            "`locks.allow` names no lint rule: `{}` (rules: {})",
                            id.get_ref(),
                            RuleId::ALL
                                .iter()
                                .map(|r| r.id())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
            }
        }
        Ok(Scenario {
            forecast,
            workloads,
            rollout,
            locks,
            name,
            description: raw.description,
            path: path.to_path_buf(),
            backend: raw.backend,
            postgres: raw.postgres.map(Spanned::into_inner),
            migrations: MigrationsSpec {
                dir,
                layout: raw.migrations.layout,
                baseline: raw.migrations.baseline.map(Spanned::into_inner),
            },
            seed,
            replicas,
            expect: raw.expect,
        })
    }
}

/// Checks `[forecast]`: positive row counts and fractions, a readable
/// snapshot; errors at the key's line.
fn forecast_spec(
    raw: RawForecast,
    base: &Path,
    error_at: &dyn Fn(std::ops::Range<usize>, String) -> ScenarioError,
) -> Result<ForecastSpec, ScenarioError> {
    let mut rows = std::collections::BTreeMap::new();
    for (table, n) in raw.rows {
        if !(n.get_ref().is_finite() && *n.get_ref() > 0.0) {
            return Err(error_at(
                n.span(),
                format!("`forecast.rows.{table}` must be a positive number of rows"),
            ));
        }
        rows.insert(table, n.into_inner());
    }
    let stats = match raw.stats {
        None => None,
        Some(path) => {
            let resolved = base.join(path.get_ref());
            if let Err(e) = crate::stats::StatsSnapshot::load(&resolved) {
                return Err(error_at(path.span(), format!("`forecast.stats`: {e}")));
            }
            Some(resolved)
        }
    };
    let fractions = match raw.fractions {
        None => None,
        Some(f) => {
            if f.get_ref().len() < 2 || f.get_ref().iter().any(|x| !(x.is_finite() && *x > 0.0)) {
                return Err(error_at(
                    f.span(),
                    "`forecast.fractions` needs at least two positive numbers".into(),
                ));
            }
            Some(f.into_inner())
        }
    };
    let max_rows = match raw.max_rows {
        Some(m) if *m.get_ref() == 0 => {
            return Err(error_at(
                m.span(),
                "`forecast.max_rows` must be positive".into(),
            ));
        }
        m => m.map(Spanned::into_inner),
    };
    Ok(ForecastSpec {
        rows,
        stats,
        fractions,
        max_rows,
    })
}

/// Loads the `[workloads]` files and checks the `[rollout]` plan
/// against them.
fn workloads_and_rollout(
    raw: std::collections::BTreeMap<String, Spanned<PathBuf>>,
    rollout: Option<Spanned<rollout::RolloutConfig>>,
    base: &Path,
    error_at: &dyn Fn(std::ops::Range<usize>, String) -> ScenarioError,
) -> Result<(Vec<workload::Workload>, Option<rollout::RolloutSpec>), ScenarioError> {
    let mut workloads = Vec::new();
    for (version, file) in &raw {
        let resolved = base.join(file.get_ref());
        if !resolved.is_file() {
            return Err(error_at(
                file.span(),
                format!(
                    "`workloads.{version}`: {} does not exist",
                    resolved.display()
                ),
            ));
        }
        // Errors inside the workload file name that file and line; say
        // which scenario key brought it in, and where.
        let workload = workload::Workload::load(version, &resolved).map_err(|e| match e {
            ScenarioError::Io { path, message } => error_at(
                file.span(),
                format!("`workloads.{version}`: {}: {message}", path.display()),
            ),
            ScenarioError::At {
                path,
                line,
                column,
                message,
            } => ScenarioError::At {
                path,
                line,
                column,
                message: format!("{message} (the workload of `workloads.{version}`)"),
            },
            other => other,
        })?;
        workloads.push(workload);
    }
    let Some(rollout) = rollout else {
        if let Some(file) = raw.values().next() {
            return Err(error_at(
                file.span(),
                "`[workloads]` run only along a `[rollout]` plan: add one".into(),
            ));
        }
        return Ok((workloads, None));
    };
    let span = rollout.span();
    let config = rollout.into_inner();
    let steps = config.steps().map_err(|(step, message)| match step {
        Some(i) => error_at(span.clone(), format!("`rollout.steps[{i}]`: {message}")),
        None => error_at(span.clone(), message),
    })?;
    for version in rollout::versions_of(&steps) {
        if !raw.contains_key(&version) {
            return Err(error_at(
                span.clone(),
                format!("`rollout` runs version `{version}`, which has no entry in `[workloads]`"),
            ));
        }
    }
    Ok((
        workloads,
        Some(rollout::RolloutSpec {
            config,
            steps,
            migrator: None,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Scenario, ScenarioError> {
        // The crate's own directory always exists, so `dir = "src"` is valid.
        Scenario::parse(text, &Path::new(env!("CARGO_MANIFEST_DIR")).join("s.toml"))
    }

    #[test]
    fn a_minimal_scenario_parses() {
        let s = parse("name = \"x\"\n[migrations]\ndir = \"src\"\nbaseline = \"0001\"\n").unwrap();
        assert_eq!(s.name, "x");
        assert_eq!(s.migrations.baseline.as_deref(), Some("0001"));
        assert!(s.migrations.dir.ends_with("src"));
        assert!(s.seed.is_none());
    }

    #[test]
    fn unknown_keys_are_rejected_with_line_and_column() {
        let err =
            parse("name = \"x\"\n[migrations]\ndir = \"src\"\nbasline = \"1\"\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("s.toml:4:1:"), "{text}");
        assert!(text.contains("unknown field `basline`"), "{text}");
    }

    #[test]
    fn a_missing_directory_points_at_its_value() {
        let err = parse("name = \"x\"\n[migrations]\ndir = \"nope\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("s.toml:3:7:"), "{err}");
        assert!(err.contains("is not a directory"), "{err}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let err = parse("name = \"x\"\npostgres = 9\n[migrations]\ndir = \"src\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("s.toml:2:12:") && err.contains("`postgres` = 9"),
            "{err}"
        );
        let err = parse("name = \"x\"\nbackend = \"podman\"\n[migrations]\ndir = \"src\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("s.toml:2:11:") && err.contains("podman"),
            "{err}"
        );
        let err = parse("name = \"x\"\n[migrations]\ndir = \"src\"\n[seed]\nscale = -1.0\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("s.toml:5:9:") && err.contains("seed.scale"),
            "{err}"
        );
    }

    #[test]
    fn a_replicas_key_of_another_runner_is_an_error_at_its_section() {
        let err = parse(
            "name = \"x\"\n[migrations]\ndir = \"src\"\n[replicas]\nrunner = \"naive\"\ncommand = [\"dbmate\", \"migrate\"]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("s.toml:4:1:")
                && err.contains("`command` does not apply to runner \"naive\""),
            "{err}"
        );
    }

    #[test]
    fn replicas_and_expectations_are_checked_where_they_are_written() {
        let err = parse("name = \"x\"\n[migrations]\ndir = \"src\"\n[replicas]\ncount = 0\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("s.toml:4:1:") && err.contains("count must be"),
            "{err}"
        );
        let err =
            parse("name = \"x\"\n[migrations]\ndir = \"src\"\n[expect]\nallow = [\"races\"]\n")
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("s.toml:5:10:") && err.contains("unknown variant `races`"),
            "{err}"
        );
        let err = parse("name = \"x\"\n[migrations]\ndir = \"src\"\nlayout = \"liquibase\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("s.toml:4:10:") && err.contains("liquibase"),
            "{err}"
        );
        let ok = parse("name = \"x\"\n[migrations]\ndir = \"src\"\n[replicas]\ncount = 8\nrunner = \"session-advisory-lock\"\n[expect]\nfindings = [\"double-application\"]\n").unwrap();
        assert_eq!(ok.replicas.count, 8);
        assert_eq!(ok.expect.findings, vec![CheckId::DoubleApplication]);
    }

    #[test]
    fn the_lock_sampling_interval_is_read_and_bounded() {
        let s = parse("name = \"x\"\n[migrations]\ndir = \"src\"\n").unwrap();
        assert_eq!(s.locks.sample_interval_ms, 10);
        let s =
            parse("name = \"x\"\n[migrations]\ndir = \"src\"\n[locks]\nsample_interval_ms = 50\n")
                .unwrap();
        assert_eq!(
            s.locks.sample_interval(),
            std::time::Duration::from_millis(50)
        );
        assert!(!s.locks.catalog);
        let s =
            parse("name = \"x\"\n[migrations]\ndir = \"src\"\n[locks]\ncatalog = true\n").unwrap();
        assert!(s.locks.catalog);
        let err =
            parse("name = \"x\"\n[migrations]\ndir = \"src\"\n[locks]\nsample_interval_ms = 0\n")
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("s.toml:5:22:") && err.contains("`locks.sample_interval_ms` = 0"),
            "{err}"
        );
        let s = parse(
            "name = \"x\"\n[migrations]\ndir = \"src\"\n[locks]\nallow = [\"json-column\"]\n",
        )
        .unwrap();
        assert_eq!(s.locks.allow, vec![RuleId::JsonColumn]);
        let err =
            parse("name = \"x\"\n[migrations]\ndir = \"src\"\n[locks]\nallow = [\"no-such\"]\n")
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("s.toml:5:10:") && err.contains("`locks.allow` names no lint rule"),
            "{err}"
        );
        let err = parse("name = \"x\"\n[migrations]\ndir = \"src\"\n[locks]\ninterval = 50\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("s.toml:5:1:") && err.contains("unknown field `interval`"),
            "{err}"
        );
    }

    #[test]
    fn an_absurd_seed_scale_is_refused_with_its_line() {
        let err = parse("name = \"x\"\n[migrations]\ndir = \"src\"\n[seed]\nscale = 1e300\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(":5:") && err.contains("at most 10000"),
            "{err}"
        );
    }

    #[test]
    fn an_over_long_name_is_refused_with_its_line() {
        let long = "n".repeat(65_536);
        let err = parse(&format!(
            "\nname = \"{long}\"\n[migrations]\ndir = \"src\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains(":2:"), "{}", &err[..err.len().min(200)]);
        assert!(
            err.contains("at most 200"),
            "{}",
            &err[..err.len().min(200)]
        );
        assert!(err.len() < 500, "the error must not echo the name");
    }

    #[test]
    fn a_missing_required_key_is_named() {
        let err = parse("name = \"x\"\n").unwrap_err().to_string();
        assert!(err.contains("missing field `migrations`"), "{err}");
    }

    /// `[workloads]` files load relative to the scenario and the
    /// `[rollout]` plan is checked against them.
    #[test]
    fn workloads_and_rollout_are_loaded_and_checked() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/drop-column-old-reads");
        let s = Scenario::load(&dir).unwrap();
        assert_eq!(s.workloads.len(), 2);
        assert_eq!(s.workloads[0].version, "new");
        let rollout = s.rollout.unwrap();
        assert_eq!(rollout.steps.len(), 4);
        let file = dir.join("scenario.toml");
        let text = std::fs::read_to_string(&file).unwrap();
        let bad = text.replace(
            "plan = \"migrate-then-deploy\"",
            "steps = [\"serve old\", \"deploy v3\"]",
        );
        let e = Scenario::parse(&bad, &file).unwrap_err().to_string();
        assert!(
            e.contains("scenario.toml:15:1:") && e.contains("version `v3`"),
            "{e}"
        );
        let bad = text.replace(
            "old = \"workloads/old.toml\"",
            "old = \"workloads/gone.toml\"",
        );
        let e = Scenario::parse(&bad, &file).unwrap_err().to_string();
        assert!(
            e.contains("scenario.toml:12:7:") && e.contains("gone.toml"),
            "{e}"
        );
        let start = text.find("[rollout]").unwrap();
        let end = text.find("[expect]").unwrap();
        let bad = format!("{}{}", &text[..start], &text[end..]);
        let e = Scenario::parse(&bad, &file).unwrap_err().to_string();
        assert!(
            e.contains("scenario.toml:13:7:") && e.contains("add one"),
            "{e}"
        );
        let bad = text.replace("replicas = 2", "replica = 2");
        let e = Scenario::parse(&bad, &file).unwrap_err().to_string();
        assert!(e.contains("unknown field `replica`"), "{e}");
    }

    /// In a rollout, `[replicas]` says who migrates; a key that cannot take
    /// effect there is an error at its line, not silently dropped.
    #[test]
    fn replicas_keys_that_do_not_apply_in_a_rollout_are_rejected() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/drop-column-old-reads");
        let file = dir.join("scenario.toml");
        let text = std::fs::read_to_string(&file).unwrap();
        let with = |replicas: &str| format!("{text}\n[replicas]\n{replicas}");
        let job_count = with("runner = \"job\"\ncount = 3\n");
        let line = job_count[..job_count.find("count = 3").unwrap()]
            .lines()
            .count()
            + 1;
        let e = Scenario::parse(&job_count, &file).unwrap_err().to_string();
        assert!(
            e.contains(&format!("scenario.toml:{line}:9:")) && e.contains("`replicas.count`"),
            "{e}"
        );
        let e = Scenario::parse(
            &with("runner = \"job\"\nhold_failed_connection = true\n"),
            &file,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("`replicas.hold_failed_connection`"), "{e}");
        let e = Scenario::parse(&with("runner = \"job\"\n[replicas.fault]\n"), &file)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`replicas.fault.rerun`"), "{e}");
        let ok =
            Scenario::parse(&with("runner = \"job\"\nlock_timeout_ms = 500\n"), &file).unwrap();
        let migrator = ok.rollout.unwrap().migrator.unwrap();
        assert_eq!(migrator.lock_timeout_ms, Some(500));
        let ok = Scenario::parse(&with("runner = \"naive\"\ncount = 3\n"), &file).unwrap();
        assert_eq!(ok.rollout.unwrap().migrator.unwrap().count, 3);
        // Without `[replicas]`, one job migrates, as before.
        assert!(
            Scenario::load(&dir)
                .unwrap()
                .rollout
                .unwrap()
                .migrator
                .is_none()
        );
    }
}
