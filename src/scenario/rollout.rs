//! The `[rollout]` section: the deploy as steps over time (`serve`,
//! `migrate`, `deploy`, `rollback`, `backfill`), shorthands expanded, and
//! who performs the `migrate` steps. Pure configuration;
//! `rehearsal::rollout` runs it.

use serde::{Deserialize, Serialize};

use crate::migrate::RunnerKind;
use crate::scenario::RaceConfig;

/// Shorthands for the common plans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlanShorthand {
    /// serve from -> migrate (all) -> deploy to.
    MigrateThenDeploy,
    /// serve from -> deploy to -> migrate (all).
    DeployThenMigrate,
    /// serve from -> migrate the first pending (expand) -> deploy to ->
    /// migrate the rest (contract).
    ExpandContract,
}

/// The `[rollout]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutConfig {
    #[serde(default)]
    pub plan: Option<PlanShorthand>,
    /// Explicit steps: `serve <v>`, `migrate [<version>]`,
    /// `deploy <v> [<replicas>]`, `rollback <v>`.
    #[serde(default)]
    pub steps: Vec<String>,
    /// The version serving before the rollout (shorthands).
    #[serde(default = "default_from")]
    pub from: String,
    /// The version being deployed (shorthands).
    #[serde(default = "default_to")]
    pub to: String,
    /// Shorthands: end by rolling back to `from`.
    #[serde(default)]
    pub rollback: bool,
    /// App replicas; each runs its version's `clients`.
    #[serde(default = "default_replicas")]
    pub replicas: u32,
    /// How long each serving phase lasts.
    #[serde(default = "default_phase_ms")]
    pub phase_ms: u64,
    /// An execution at least this slow is a stall.
    #[serde(default = "default_stall_ms")]
    pub stall_ms: u64,
    /// Bound on the whole rollout.
    #[serde(default = "default_deadline_s")]
    pub deadline_s: u64,
}

fn default_from() -> String {
    "old".into()
}
fn default_to() -> String {
    "new".into()
}
fn default_replicas() -> u32 {
    2
}
fn default_phase_ms() -> u64 {
    1000
}
fn default_stall_ms() -> u64 {
    1000
}
fn default_deadline_s() -> u64 {
    120
}

/// A checked `[rollout]` section: its settings and expanded steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutSpec {
    pub config: RolloutConfig,
    pub steps: Vec<Step>,
    /// The scenario's `[replicas]` section, when it has one: who performs
    /// the `migrate` steps (see [`Migrator`]). `None`: one migration job
    /// applying the migrations in order, with no lock and no settings.
    #[serde(default)]
    pub migrator: Option<RaceConfig>,
}

/// Who performs a rollout's `migrate` steps, from `[replicas] runner`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Migrator {
    /// One gated job (`job`, `command`, `container`): the deploy waits for
    /// it, and a failure halts the rollout.
    Job,
    /// `count` new replicas each migrate as they start (`naive`,
    /// `session-advisory-lock`, `xact-advisory-lock`, `try-lock`), racing
    /// each other while the old version serves.
    StartupCoupled,
}

impl Migrator {
    #[must_use]
    pub fn of(runner: RunnerKind) -> Migrator {
        match runner {
            RunnerKind::Job | RunnerKind::Command | RunnerKind::Container => Migrator::Job,
            _ => Migrator::StartupCoupled,
        }
    }

    /// `[replicas]` keys that mean nothing for this migrator in a rollout:
    /// accepting them would rehearse something other than what the file
    /// says. Returns the key and why.
    #[must_use]
    pub fn unused_key(self, config: &RaceConfig, keys: &[String]) -> Option<(String, String)> {
        let has = |k: &str| keys.iter().any(|key| key == k);
        if config.fault.as_ref().is_some_and(|f| f.rerun) {
            // A fault halts the rollout (the deploy does not go on past a
            // failed migration); nothing re-runs it.
            return Some((
                "fault".into(),
                "`replicas.fault.rerun` does not apply in a rollout: the fault halts it; \
                 set `rerun = false`"
                    .into(),
            ));
        }
        match self {
            Migrator::Job => {
                for key in ["count", "jitter_ms", "hold_failed_connection"] {
                    if has(key) {
                        return Some((
                            key.to_string(),
                            format!(
                                "`replicas.{key}` does not apply in a rollout with runner `{}`: one \
                                 job performs the `migrate` steps (a startup-coupled runner such as \
                                 `naive` races `count` replicas instead)",
                                config.runner.name()
                            ),
                        ));
                    }
                }
                if config.fault.as_ref().is_some_and(|f| f.replica != 0) {
                    return Some((
                        "fault".into(),
                        "`replicas.fault.replica` must be 0 in a rollout with one migration job"
                            .into(),
                    ));
                }
                None
            }
            Migrator::StartupCoupled => ["command", "workdir", "container"]
                .into_iter()
                .find(|k| has(k))
                .map(|key| {
                    (
                        key.to_string(),
                        format!(
                            "`replicas.{key}` applies only to runner `command` or `container`, \
                             not `{}`",
                            config.runner.name()
                        ),
                    )
                }),
        }
    }
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// Every replica runs this version.
    Serve(String),
    /// Apply pending migrations up to this version (all when `None`) while
    /// the fleet serves.
    Migrate(Option<String>),
    /// Replace replicas with this version one at a time (`count` of them,
    /// all when `None`).
    Deploy { version: String, count: Option<u32> },
    /// Every replica back to this version at once.
    Rollback(String),
    /// The next pending migration, `version`, is a batched backfill: each
    /// of its statements runs again and again, each run in its own
    /// transaction, until it changes no row, `pause_ms` apart. `{batch}`
    /// in a statement is replaced by `batch` (the rows per run).
    Backfill {
        version: String,
        batch: Option<u64>,
        pause_ms: u64,
    },
}

impl RolloutConfig {
    /// The steps, shorthand expanded; errors name the offending step.
    pub fn steps(&self) -> Result<Vec<Step>, (Option<usize>, String)> {
        if self.replicas == 0 || self.replicas > 16 {
            return Err((None, "`rollout.replicas` must be 1-16".into()));
        }
        if self.phase_ms == 0 || self.phase_ms > 600_000 {
            return Err((None, "`rollout.phase_ms` must be 1-600000".into()));
        }
        let mut steps = match (&self.plan, self.steps.is_empty()) {
            (Some(_), false) => {
                return Err((
                    None,
                    "`rollout`: give either `plan` or `steps`, not both".into(),
                ));
            }
            (None, true) => return Err((None, "`rollout` needs `plan` or `steps`".into())),
            (Some(plan), true) => {
                let (from, to) = (self.from.clone(), self.to.clone());
                let deploy = Step::Deploy {
                    version: to,
                    count: None,
                };
                match plan {
                    PlanShorthand::MigrateThenDeploy => {
                        vec![Step::Serve(from.clone()), Step::Migrate(None), deploy]
                    }
                    PlanShorthand::DeployThenMigrate => {
                        vec![Step::Serve(from.clone()), deploy, Step::Migrate(None)]
                    }
                    PlanShorthand::ExpandContract => vec![
                        Step::Serve(from.clone()),
                        Step::Migrate(Some("+1".into())),
                        deploy,
                        Step::Migrate(None),
                    ],
                }
            }
            (None, false) => {
                let mut steps = Vec::new();
                for (i, text) in self.steps.iter().enumerate() {
                    steps.push(parse_step(text).map_err(|e| (Some(i), e))?);
                }
                steps
            }
        };
        if self.plan.is_some() && self.rollback {
            steps.push(Step::Rollback(self.from.clone()));
        }
        if !matches!(steps.first(), Some(Step::Serve(_))) {
            return Err((Some(0), "the first step must be `serve <version>`".into()));
        }
        Ok(steps)
    }
}

fn parse_step(text: &str) -> Result<Step, String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    match words.as_slice() {
        ["serve", v] => Ok(Step::Serve((*v).into())),
        ["migrate"] => Ok(Step::Migrate(None)),
        ["migrate", v] => Ok(Step::Migrate(Some((*v).into()))),
        ["deploy", v] => Ok(Step::Deploy {
            version: (*v).into(),
            count: None,
        }),
        ["deploy", v, n] => match n.parse() {
            Ok(count) if count > 0 => Ok(Step::Deploy {
                version: (*v).into(),
                count: Some(count),
            }),
            _ => Err(format!(
                "step `{text}`: replica count must be a positive number"
            )),
        },
        ["rollback", v] => Ok(Step::Rollback((*v).into())),
        ["backfill", v, options @ ..] => {
            let (mut batch, mut pause_ms) = (None, 0);
            for option in options {
                let value = |key: &str| {
                    option
                        .strip_prefix(key)
                        .and_then(|n| n.parse::<u64>().ok())
                        .filter(|n| *n > 0 || key == "pause_ms=")
                };
                if let Some(n) = value("batch=") {
                    batch = Some(n);
                } else if let Some(n) = value("pause_ms=") {
                    pause_ms = n;
                } else {
                    return Err(format!(
                        "step `{text}`: `{option}` is not `batch=<rows>` or `pause_ms=<ms>`"
                    ));
                }
            }
            Ok(Step::Backfill {
                version: (*v).into(),
                batch,
                pause_ms,
            })
        }
        _ => Err(format!(
            "step `{text}` is not one of `serve <version>`, `migrate [<version>]`, \
             `deploy <version> [<replicas>]`, `rollback <version>`, \
             `backfill <version> [batch=<rows>] [pause_ms=<ms>]`"
        )),
    }
}

/// The versions a list of steps runs.
#[must_use]
pub fn versions_of(steps: &[Step]) -> Vec<String> {
    let mut versions = Vec::new();
    for step in steps {
        let v = match step {
            Step::Serve(v) | Step::Rollback(v) | Step::Deploy { version: v, .. } => v,
            Step::Migrate(_) | Step::Backfill { .. } => continue,
        };
        if !versions.contains(v) {
            versions.push(v.clone());
        }
    }
    versions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml_text: &str) -> RolloutConfig {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn shorthands_expand() {
        let steps = config("plan = \"expand-contract\"\nrollback = true\n")
            .steps()
            .unwrap();
        assert_eq!(
            steps,
            vec![
                Step::Serve("old".into()),
                Step::Migrate(Some("+1".into())),
                Step::Deploy {
                    version: "new".into(),
                    count: None
                },
                Step::Migrate(None),
                Step::Rollback("old".into()),
            ]
        );
        assert_eq!(versions_of(&steps), vec!["old", "new"]);
    }

    #[test]
    fn explicit_steps_parse_and_errors_name_the_step() {
        let steps =
            config("steps = [\"serve v1\", \"deploy v2 1\", \"migrate 0005\", \"rollback v1\"]\n")
                .steps()
                .unwrap();
        assert_eq!(steps.len(), 4);
        let (at, e) = config("steps = [\"serve v1\", \"launch v2\"]\n")
            .steps()
            .unwrap_err();
        assert_eq!(at, Some(1));
        assert!(e.contains("launch v2"), "{e}");
        let steps = config("steps = [\"serve v1\", \"backfill 0003 batch=500 pause_ms=20\"]\n")
            .steps()
            .unwrap();
        assert_eq!(
            steps[1],
            Step::Backfill {
                version: "0003".into(),
                batch: Some(500),
                pause_ms: 20
            }
        );
        let (at, e) = config("steps = [\"serve v1\", \"backfill 0003 size=5\"]\n")
            .steps()
            .unwrap_err();
        assert_eq!(at, Some(1));
        assert!(e.contains("`size=5`"), "{e}");
        let (at, _) = config("steps = [\"migrate\"]\n").steps().unwrap_err();
        assert_eq!(at, Some(0));
        assert!(
            config("plan = \"deploy-then-migrate\"\nreplicas = 0\n")
                .steps()
                .is_err()
        );
    }
}
