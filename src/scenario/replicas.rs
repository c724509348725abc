//! The `[replicas]` section: how many replicas race, with which runner, and
//! where a fault is injected. Pure configuration; `rehearsal::races` runs it.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::migrate::runner::ContainerSpec;
use crate::migrate::{Layout, RunnerKind, ToolSetup};

/// A `[replicas]` section whose values serde cannot reject: ranges and
/// combinations. The rehearsal reports it as
/// `RehearsalError::InvalidConfig`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid [replicas] section: {0}")]
pub struct InvalidRaceConfig(pub String);

/// Where to inject a fault (`[replicas.fault]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct FaultConfig {
    /// Replica whose backend (and process) is terminated.
    #[serde(default)]
    pub replica: u32,
    /// 0-based index over all pending statements in order; random if unset.
    #[serde(default)]
    pub statement: Option<usize>,
    /// Re-run the migrations serially afterwards to see if they converge.
    #[serde(default = "yes")]
    pub rerun: bool,
}

fn yes() -> bool {
    true
}

/// The `[replicas]` section of a scenario.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct RaceConfig {
    /// Number of replicas starting together.
    #[serde(default = "default_count")]
    pub count: u32,
    #[serde(default)]
    pub runner: RunnerKind,
    /// Each replica waits a random 0..=jitter_ms after the barrier, inside
    /// its timeout; at most [`MAX_JITTER_MS`].
    #[serde(default)]
    pub jitter_ms: u64,
    /// A replica still running after this long is recorded as timed out and
    /// its backend terminated.
    #[serde(default = "default_timeout_s")]
    pub timeout_s: u64,
    /// `SET lock_timeout` on every replica session.
    #[serde(default)]
    pub lock_timeout_ms: Option<u64>,
    /// For `runner = "command"` (or a `job` running the user's tool): the
    /// tool and its arguments; placeholders `{url}`, `{jdbc_url}`, `{host}`,
    /// `{port}`, `{user}`, `{password}`, `{database}` are filled in. For
    /// `container`: the command the image runs instead of its default.
    #[serde(default)]
    pub command: Vec<String>,
    /// For a user's tool: its own command that migrates the template to the
    /// baseline version (run once, like `command`). Unset: the harness
    /// applies the baseline and writes the layout's tool's bookkeeping.
    #[serde(default)]
    pub baseline_command: Vec<String>,
    /// The migrations' layout, resolved when the plan is read: whose
    /// bookkeeping a user's tool keeps. Not a key of the section.
    #[serde(skip)]
    pub layout: Layout,
    /// Working directory of `command` (the lead resolves it against the
    /// scenario file).
    #[serde(default)]
    pub workdir: Option<PathBuf>,
    /// A failed replica keeps its connection (and any session lock) open
    /// until the race ends, like an app that logs and keeps serving.
    #[serde(default)]
    pub hold_failed_connection: bool,
    #[serde(default)]
    pub fault: Option<FaultConfig>,
    /// For `runner = "container"`: `[replicas.container]`.
    #[serde(default)]
    pub container: Option<ContainerSpec>,
}

fn default_count() -> u32 {
    4
}

fn default_timeout_s() -> u64 {
    30
}

/// Largest number of replicas accepted; each holds one or two connections.
pub const MAX_REPLICAS: u32 = 64;

/// Largest start jitter accepted: a minute of spread is already far more
/// than any orchestrator's; more is a typo.
pub const MAX_JITTER_MS: u64 = 60_000;

impl Default for RaceConfig {
    fn default() -> Self {
        Self {
            count: default_count(),
            runner: RunnerKind::default(),
            jitter_ms: 0,
            timeout_s: default_timeout_s(),
            lock_timeout_ms: None,
            command: Vec::new(),
            baseline_command: Vec::new(),
            layout: Layout::Auto,
            workdir: None,
            hold_failed_connection: false,
            fault: None,
            container: None,
        }
    }
}

impl RaceConfig {
    /// Checks values serde cannot: ranges and combinations.
    pub fn validate(&self) -> Result<(), InvalidRaceConfig> {
        let bad = |m: String| Err(InvalidRaceConfig(m));
        if self.count == 0 || self.count > MAX_REPLICAS {
            return bad(format!(
                "count must be 1..={MAX_REPLICAS}, got {}",
                self.count
            ));
        }
        if self.timeout_s == 0 {
            return bad("timeout_s must be at least 1".into());
        }
        if self.jitter_ms > MAX_JITTER_MS {
            return bad(format!(
                "jitter_ms must be at most {MAX_JITTER_MS}, got {}",
                self.jitter_ms
            ));
        }
        if self.runner == RunnerKind::Command && self.command.is_empty() {
            return bad("runner \"command\" needs command = [\"tool\", \"arg\", ...]".into());
        }
        if self.runner == RunnerKind::Container && self.container.is_none() {
            return bad(
                "runner \"container\" needs [replicas.container] image = \"name:tag\"".into(),
            );
        }
        let runner = self.runner.name();
        let tool_runner = matches!(
            self.runner,
            RunnerKind::Command | RunnerKind::Container | RunnerKind::Job
        );
        // Keys of a user's tool with a built-in runner would be ignored.
        if !tool_runner && !self.command.is_empty() {
            return bad(format!(
                "`command` does not apply to runner \"{runner}\", which applies the migrations \
                 itself: use runner \"command\" (replicas run the tool) or \"job\" (one job runs it)"
            ));
        }
        if !tool_runner && self.container.is_some() {
            return bad(format!(
                "[replicas.container] does not apply to runner \"{runner}\": use runner \"container\" or \"job\""
            ));
        }
        if self.runner == RunnerKind::Command && self.container.is_some() {
            return bad(
                "[replicas.container] does not apply to runner \"command\": use runner \"container\""
                    .into(),
            );
        }
        if self.workdir.is_some() && (self.command.is_empty() || self.container.is_some()) {
            return bad(
                "`workdir` applies only to a `command` run as a process (runner \"command\" or \"job\")"
                    .into(),
            );
        }
        if !self.baseline_command.is_empty() && self.tool().is_none() {
            return bad(format!(
                "`baseline_command` does not apply to runner \"{runner}\" without the user's tool: \
                 the built-in runner applies the baseline itself"
            ));
        }
        let tool = self.tool().is_some();
        if tool && self.hold_failed_connection {
            return bad(
                "`hold_failed_connection` does not apply to the user's tool: its connections close when its process exits"
                    .into(),
            );
        }
        if tool && self.lock_timeout_ms.is_some() {
            return bad(
                "`lock_timeout_ms` does not apply to the user's tool: set lock_timeout in the tool's own configuration (or in `command`)"
                    .into(),
            );
        }
        let process = matches!(
            self.migrator_kind(),
            RunnerKind::Command | RunnerKind::Container
        );
        if let Some(f) = &self.fault {
            if f.replica >= self.count {
                return bad(format!(
                    "fault.replica {} is not below count {}",
                    f.replica, self.count
                ));
            }
            if process && f.statement.is_some() {
                return bad(
                    "the command and container runners cannot stop at a statement: leave fault.statement unset"
                        .into(),
                );
            }
        }
        Ok(())
    }

    pub(crate) fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_s)
    }

    /// The user's tool, when the migrations run through it: runner
    /// `command` / `container`, or a `job` given a `command` or container.
    #[must_use]
    pub fn tool(&self) -> Option<ToolSetup> {
        let kind = match self.runner {
            RunnerKind::Command => RunnerKind::Command,
            RunnerKind::Container => RunnerKind::Container,
            RunnerKind::Job if self.container.is_some() => RunnerKind::Container,
            RunnerKind::Job if !self.command.is_empty() => RunnerKind::Command,
            _ => return None,
        };
        Some(ToolSetup {
            kind,
            layout: self.layout,
            baseline_command: self.baseline_command.clone(),
            workdir: self.workdir.clone(),
            container: self.container.clone(),
        })
    }

    /// The strategy that applies the migrations: the user's tool when there
    /// is one (also for a `job`), else the runner itself.
    #[must_use]
    pub fn migrator_kind(&self) -> RunnerKind {
        self.tool().map_or(self.runner, |t| t.kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_section_parses_with_defaults_and_rejects_unknown_keys() {
        let c: RaceConfig = toml::from_str(
            "count = 8\nrunner = \"naive\"\njitter_ms = 20\ntimeout_s = 30\nlock_timeout_ms = 2000\ncommand = [\"sqlx\", \"migrate\", \"run\"]",
        )
        .unwrap();
        assert_eq!(c.count, 8);
        assert_eq!(c.lock_timeout_ms, Some(2000));
        assert_eq!(c.command, ["sqlx", "migrate", "run"]);
        let d: RaceConfig = toml::from_str("").unwrap();
        assert_eq!(d, RaceConfig::default());
        assert!(toml::from_str::<RaceConfig>("cout = 3").is_err());
        let f: RaceConfig = toml::from_str("[fault]\nreplica = 1\nstatement = 2").unwrap();
        assert_eq!(f.fault.unwrap().statement, Some(2));
    }

    #[test]
    fn keys_that_do_not_apply_to_the_runner_are_rejected() {
        let bad = |text: &str| {
            toml::from_str::<RaceConfig>(text)
                .unwrap()
                .validate()
                .unwrap_err()
                .to_string()
        };
        let naive = bad("runner = \"naive\"\ncommand = [\"dbmate\", \"migrate\"]");
        assert!(
            naive.contains("`command` does not apply to runner \"naive\""),
            "{naive}"
        );
        assert!(bad("jitter_ms = 60001").contains("jitter_ms must be at most 60000"));
        assert!(
            bad("runner = \"session-advisory-lock\"\nbaseline_command = [\"x\"]")
                .contains("`baseline_command` does not apply")
        );
        assert!(
            bad("runner = \"command\"\ncommand = [\"x\"]\nhold_failed_connection = true")
                .contains("`hold_failed_connection` does not apply")
        );
        assert!(
            bad("runner = \"command\"\ncommand = [\"x\"]\nlock_timeout_ms = 100")
                .contains("`lock_timeout_ms` does not apply")
        );
        assert!(bad("runner = \"naive\"\nworkdir = \"db\"").contains("`workdir` applies only"));
        assert!(
            bad("runner = \"try-lock\"\n[container]\nimage = \"app:1\"")
                .contains("does not apply to runner \"try-lock\"")
        );
    }

    #[test]
    fn a_job_with_a_command_runs_the_users_tool() {
        let job: RaceConfig =
            toml::from_str("runner = \"job\"\ncommand = [\"dbmate\", \"migrate\"]").unwrap();
        job.validate().unwrap();
        assert_eq!(job.migrator_kind(), RunnerKind::Command);
        assert!(job.tool().is_some());
        let built_in = RaceConfig {
            runner: RunnerKind::Job,
            ..Default::default()
        };
        assert_eq!(built_in.migrator_kind(), RunnerKind::Job);
        assert!(built_in.tool().is_none());
        let ok: RaceConfig = toml::from_str("jitter_ms = 60000").unwrap();
        ok.validate().unwrap();
    }

    #[test]
    fn validation_catches_ranges_and_missing_command() {
        assert!(
            RaceConfig {
                count: 0,
                ..Default::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            RaceConfig {
                runner: RunnerKind::Command,
                ..Default::default()
            }
            .validate()
            .is_err()
        );
        let fault = Some(FaultConfig {
            replica: 9,
            statement: None,
            rerun: true,
        });
        assert!(
            RaceConfig {
                fault,
                ..Default::default()
            }
            .validate()
            .is_err()
        );
        assert!(RaceConfig::default().validate().is_ok());
    }
}
