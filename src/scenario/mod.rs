//! Scenario files: what a rehearsal does.
//!
//! A scenario is a TOML file under `scenarios/`, or a folder holding
//! `scenario.toml` with its migrations and workloads beside it. Parsing keeps
//! spans, so every error names `file:line:column` and the offending key;
//! unknown keys are rejected. The format is documented in
//! `docs/scenario-format.md`.

mod discover;
mod error;

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_spanned::Spanned;

pub use discover::discover;
pub use error::{ScenarioError, line_column};

use crate::findings::CheckId;
use crate::migrate::Layout;
use crate::provision::Backend;
use crate::rehearsal::RaceConfig;

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
    // Issue 5: app workloads per version (`old = "workloads/old.toml"`)
    // and the rollout plan they follow.
    #[serde(default)]
    workloads: std::collections::BTreeMap<String, Spanned<PathBuf>>,
    #[serde(default)]
    rollout: Option<Spanned<crate::rehearsal::rollout::RolloutConfig>>,
    #[serde(default)]
    locks: RawLocks,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLocks {
    #[serde(default)]
    sample_interval_ms: Option<Spanned<u64>>,
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
    /// Lock thresholds (issue 6), judged from the lock report: longest
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
    /// Issue 5: each version's workload, loaded.
    pub workloads: Vec<crate::workload::Workload>,
    /// Issue 5: the rollout plan, steps expanded.
    pub rollout: Option<crate::rehearsal::rollout::RolloutSpec>,
    /// How the lock sampler watches the rehearsal.
    pub locks: LocksSpec,
}

/// `[locks]`: how the live lock sampler watches the rehearsal.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LocksSpec {
    /// Time between two `pg_locks` samples: the resolution of every lock
    /// hold and wait in the report. Each sample is a round trip, so a
    /// shorter interval takes more CPU from the rehearsed workload (about
    /// 1.6 % of a 2-core machine at 10 ms; README, "Lock sampler").
    pub sample_interval_ms: u64,
    /// Lint rules this scenario accepts: their findings are still
    /// reported, marked suppressed.
    pub allow: Vec<crate::locks::RuleId>,
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
}

/// Oldest and newest major versions a scenario may ask for.
const SUPPORTED_MAJORS: std::ops::RangeInclusive<u32> = 12..=18;

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
                    Some(scale) => *scale.get_ref(),
                    None => 1.0,
                };
                Some(SeedSpecRef {
                    spec,
                    seed: seed.seed.unwrap_or(42),
                    scale,
                    hostile: seed.hostile,
                })
            }
        };
        let replicas = match raw.replicas {
            None => RaceConfig::default(),
            Some(spanned) => {
                let span = spanned.span();
                let mut config = spanned.into_inner();
                if let Err(e) = config.validate() {
                    return Err(error_at(span, e.to_string()));
                }
                // The user's tool runs where the scenario says, relative to it.
                config.workdir = config.workdir.map(|dir| base.join(dir));
                config
            }
        };
        let (workloads, rollout) =
            workloads_and_rollout(raw.workloads, raw.rollout, base, &error_at)?;
        let mut locks = LocksSpec::default();
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
        for id in raw.locks.allow {
            match crate::locks::RuleId::from_id(id.get_ref()) {
                Some(rule) => locks.allow.push(rule),
                None => {
                    return Err(error_at(
                        id.span(),
                        format!(
                            "`locks.allow` names no lint rule: `{}` (rules: {})",
                            id.get_ref(),
                            crate::locks::lint::RULES
                                .iter()
                                .map(|r| r.id.id())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
            }
        }
        Ok(Scenario {
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

/// Issue 5: loads the `[workloads]` files and checks the `[rollout]` plan
/// against them.
fn workloads_and_rollout(
    raw: std::collections::BTreeMap<String, Spanned<PathBuf>>,
    rollout: Option<Spanned<crate::rehearsal::rollout::RolloutConfig>>,
    base: &Path,
    error_at: &dyn Fn(std::ops::Range<usize>, String) -> ScenarioError,
) -> Result<
    (
        Vec<crate::workload::Workload>,
        Option<crate::rehearsal::rollout::RolloutSpec>,
    ),
    ScenarioError,
> {
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
        workloads.push(crate::workload::Workload::load(version, &resolved)?);
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
    for version in crate::rehearsal::rollout::versions_of(&steps) {
        if !raw.contains_key(&version) {
            return Err(error_at(
                span.clone(),
                format!("`rollout` runs version `{version}`, which has no entry in `[workloads]`"),
            ));
        }
    }
    Ok((
        workloads,
        Some(crate::rehearsal::rollout::RolloutSpec { config, steps }),
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
        assert_eq!(s.locks.allow, vec![crate::locks::RuleId::JsonColumn]);
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
    fn a_missing_required_key_is_named() {
        let err = parse("name = \"x\"\n").unwrap_err().to_string();
        assert!(err.contains("missing field `migrations`"), "{err}");
    }

    /// Issue 5: `[workloads]` files load relative to the scenario and the
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
}
