//! `container`: N containers of the user's own image (the app, or its
//! migration image), started on the database's Docker network with
//! `DATABASE_URL` set, as an orchestrator starts replicas.
//!
//! The database address inside the network differs from the harness's
//! loopback one: `db_host` / `db_port` give it (the database container's
//! name and 5432 for the Docker backend). Without them the containers join
//! the host network and use the harness's address. Exit code and logs are
//! captured, the password redacted; containers are removed afterwards, and
//! when the replica is dropped (timeout).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use testcontainers::core::WaitFor;
use testcontainers::runners::AsyncRunner;
use testcontainers::{GenericImage, ImageExt};

use super::command::redact;
use super::tool_env::ToolEnv;
use super::tool_output::{error_line, sqlstate_in};
use super::{ReplicaCtx, ReplicaEnd, StepError, Strategy, failed};
use crate::migrate::Migration;
use crate::timeline::{EventKind, ExitStatus};

/// `[replicas.container]`: which image, on which network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct ContainerSpec {
    /// `name:tag` of a locally available image; pin the tag.
    pub image: String,
    /// Docker network to join; `host` when unset.
    #[serde(default)]
    pub network: Option<String>,
    /// Database host as seen from the network (e.g. the database
    /// container's name); the harness's host when unset.
    #[serde(default)]
    pub db_host: Option<String>,
    #[serde(default)]
    pub db_port: Option<u16>,
}

impl ContainerSpec {
    /// Splits `image` into name and tag (`latest` when none is given; a
    /// registry port such as `host:5000/app` is not mistaken for a tag).
    pub(crate) fn name_and_tag(&self) -> (String, String) {
        let slash = self.image.rfind('/').map_or(0, |i| i + 1);
        match self.image[slash..].rfind(':') {
            Some(i) => (
                self.image[..slash + i].to_string(),
                self.image[slash + i + 1..].to_string(),
            ),
            None => (self.image.clone(), "latest".into()),
        }
    }
}

pub(super) struct Container;

const POLL: Duration = Duration::from_millis(50);

fn step(message: String) -> StepError {
    StepError {
        version: None,
        line: None,
        sqlstate: None,
        message,
    }
}

impl Strategy for Container {
    async fn run(&self, ctx: &ReplicaCtx, _migrations: &[Migration]) -> ReplicaEnd {
        let Some(spec) = &ctx.container else {
            return failed(
                ctx,
                &step("the container runner needs [replicas.container] image = ...".into()),
                None,
            );
        };
        let app = ctx.app_name();
        let mut conn = ctx.conn.clone();
        if let Some(host) = &spec.db_host {
            conn.host.clone_from(host);
        }
        if let Some(port) = spec.db_port {
            conn.port = port;
        }
        let env = ToolEnv::new(&conn, &app);
        let (name, tag) = spec.name_and_tag();
        let mut request = GenericImage::new(name, tag)
            .with_wait_for(WaitFor::Nothing)
            .with_network(spec.network.clone().unwrap_or_else(|| "host".into()));
        for (key, value) in env.vars() {
            request = request.with_env_var(key, value);
        }
        if !ctx.command.is_empty() {
            request = request.with_cmd(ctx.command.iter().map(|a| env.expand(a)));
        }
        let container = match request.start().await {
            Ok(c) => c,
            Err(e) => {
                let message = redact(
                    &format!("cannot start {}: {e}", spec.image),
                    ctx.conn.password(),
                );
                return failed(ctx, &step(message), None);
            }
        };
        let striking = ctx.fault.as_ref().filter(|h| h.targets_process(ctx.actor));
        let mut killed = false;
        let exit = async {
            loop {
                match container.exit_code().await {
                    Ok(Some(code)) => return Ok(code),
                    Ok(None) => tokio::time::sleep(POLL).await,
                    Err(e) => return Err(e.to_string()),
                }
            }
        };
        let code = match striking {
            Some(hook) => {
                tokio::pin!(exit);
                let active = tokio::select! {
                    code = &mut exit => Err(code),
                    active = hook.wait_until_active(ctx) => Ok(active),
                };
                match active {
                    Err(code) => code,
                    Ok(active) => {
                        if active {
                            // SIGKILL, no grace period: what a node failure does.
                            let _ = container.stop_with_timeout(Some(0)).await;
                            hook.struck_process(ctx).await;
                            killed = true;
                        }
                        exit.await
                    }
                }
            }
            None => exit.await,
        };
        let stdout = container.stdout_to_vec().await.unwrap_or_default();
        let stderr = container.stderr_to_vec().await.unwrap_or_default();
        let _ = container.rm().await;
        let code = match code {
            Ok(c) => c,
            Err(e) => return failed(ctx, &step(format!("{}: {e}", spec.image)), None),
        };
        let password = ctx.conn.password();
        let mut all = String::new();
        for (stream, bytes) in [("stdout", &stdout), ("stderr", &stderr)] {
            let text = redact(&String::from_utf8_lossy(bytes), password);
            all.push_str(&text);
            if !text.is_empty() {
                ctx.emit(EventKind::Output {
                    stream: stream.into(),
                    text: super::command::clip(text),
                });
            }
        }
        let code32 = i32::try_from(code).ok();
        if killed {
            return ReplicaEnd {
                status: ExitStatus::Killed,
                code: code32,
                held: None,
            };
        }
        if code == 0 {
            return ReplicaEnd {
                status: ExitStatus::Success,
                code: code32,
                held: None,
            };
        }
        ctx.emit(EventKind::Failed {
            version: None,
            line: None,
            sqlstate: sqlstate_in(&all),
            message: format!("{} exited with {code}: {}", spec.image, error_line(&all)),
        });
        ReplicaEnd {
            status: ExitStatus::Failure,
            code: code32,
            held: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(image: &str) -> ContainerSpec {
        ContainerSpec {
            image: image.into(),
            network: None,
            db_host: None,
            db_port: None,
        }
    }

    #[test]
    fn image_names_split_into_name_and_tag() {
        assert_eq!(spec("app:1.2").name_and_tag(), ("app".into(), "1.2".into()));
        assert_eq!(spec("app").name_and_tag(), ("app".into(), "latest".into()));
        assert_eq!(
            spec("reg:5000/team/app:v3").name_and_tag(),
            ("reg:5000/team/app".into(), "v3".into())
        );
        assert_eq!(
            spec("reg:5000/app").name_and_tag(),
            ("reg:5000/app".into(), "latest".into())
        );
    }
}
