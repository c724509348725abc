//! `command`: N processes of the user's own migration tool (for example
//! `sqlx migrate run`, `migrate -path ... up`, `flyway migrate`), each with
//! `DATABASE_URL` pointing at the rehearsal database.
//!
//! The replica number travels as `application_name` both in the URL (libpq,
//! sqlx, pgx and lib/pq read it there) and as `PGAPPNAME`. Exit codes and
//! output are captured; the password is redacted from the output before it
//! reaches the timeline. The process is killed when the replica is dropped
//! (timeout), so no child outlives the rehearsal.

use std::process::Stdio;

use super::tool_env::ToolEnv;
use super::tool_output::{error_line, sqlstate_in};
use super::{ReplicaCtx, ReplicaEnd, StepError, Strategy, failed};
use crate::migrate::Migration;
use crate::timeline::{EventKind, ExitStatus};

pub(super) struct Command;

/// Output kept per stream; the rest is cut.
const MAX_OUTPUT: usize = 16 * 1024;

/// Replaces every form of `password` in `text` with `********`.
pub(crate) fn redact(text: &str, password: Option<&str>) -> String {
    let Some(password) = password.filter(|p| !p.is_empty()) else {
        return text.to_string();
    };
    let encoded: String = url::form_urlencoded::byte_serialize(password.as_bytes()).collect();
    let percent = encoded.replace('+', "%20");
    let mut out = text.replace(password, "********");
    for form in [encoded, percent] {
        if !form.is_empty() {
            out = out.replace(&form, "********");
        }
    }
    out
}

impl Strategy for Command {
    async fn run(&self, ctx: &ReplicaCtx, _migrations: &[Migration]) -> ReplicaEnd {
        let Some((program, args)) = ctx.command.split_first() else {
            let e = StepError {
                version: None,
                line: None,
                sqlstate: None,
                message: "the command runner needs `command = [...]`".into(),
            };
            return failed(ctx, &e, None);
        };
        let env = ToolEnv::new(&ctx.conn, &ctx.app_name());
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args.iter().map(|a| env.expand(a)))
            .envs(env.vars())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(dir) = &ctx.workdir {
            cmd.current_dir(dir);
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                let e = StepError {
                    version: None,
                    line: None,
                    sqlstate: None,
                    message: format!("cannot start {program}: {e}"),
                };
                return failed(ctx, &e, None);
            }
        };
        // Read both pipes while the child runs, so a chatty tool cannot
        // block on a full pipe.
        let stdout = read_all(child.stdout.take());
        let stderr = read_all(child.stderr.take());
        let mut group = GroupKill(child.id());
        let mut killed = false;
        let status = match ctx.fault.as_ref().filter(|h| h.targets_process(ctx.actor)) {
            Some(hook) => {
                let active = tokio::select! {
                    s = child.wait() => Err(s),
                    active = hook.wait_until_active(ctx) => Ok(active),
                };
                match active {
                    Err(s) => s,
                    Ok(active) => {
                        if active {
                            group.kill();
                            hook.struck_process(ctx).await;
                            killed = true;
                        }
                        child.wait().await
                    }
                }
            }
            None => child.wait().await,
        };
        // The tool exited: whatever it left running in its group is ours to
        // leave alone now (its pid may be reused).
        group.0 = None;
        let status = match status {
            Ok(s) => s,
            Err(e) => {
                let e = StepError {
                    version: None,
                    line: None,
                    sqlstate: None,
                    message: format!("{program}: {e}"),
                };
                return failed(ctx, &e, None);
            }
        };
        let output = std::process::Output {
            status,
            stdout: stdout.await.unwrap_or_default(),
            stderr: stderr.await.unwrap_or_default(),
        };
        let password = ctx.conn.password();
        let mut all = String::new();
        for (stream, bytes) in [("stdout", &output.stdout), ("stderr", &output.stderr)] {
            let text = redact(&String::from_utf8_lossy(bytes), password);
            all.push_str(&text);
            if !text.is_empty() {
                ctx.emit(EventKind::Output {
                    stream: stream.into(),
                    text: clip(text),
                });
            }
        }
        let code = output.status.code();
        if killed {
            return ReplicaEnd {
                status: ExitStatus::Killed,
                code,
                held: None,
            };
        }
        if output.status.success() {
            return ReplicaEnd {
                status: ExitStatus::Success,
                code,
                held: None,
            };
        }
        let last_line = error_line(&all);
        ctx.emit(EventKind::Failed {
            version: None,
            line: None,
            sqlstate: sqlstate_in(&all),
            message: format!(
                "{program} exited with {}: {last_line}",
                code.map_or("a signal".into(), |c| c.to_string())
            ),
        });
        ReplicaEnd {
            status: ExitStatus::Failure,
            code,
            held: None,
        }
    }
}

/// Cuts captured output to [`MAX_OUTPUT`] bytes on a character boundary.
pub(crate) fn clip(mut text: String) -> String {
    if text.len() > MAX_OUTPUT {
        let cut = (0..=MAX_OUTPUT)
            .rev()
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(0);
        text.truncate(cut);
    }
    text
}

/// Collects a pipe to the end on a task of its own.
fn read_all<R>(pipe: Option<R>) -> tokio::task::JoinHandle<Vec<u8>>
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut buf = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = tokio::io::AsyncReadExt::read_to_end(&mut pipe, &mut buf).await;
        }
        buf
    })
}

/// The tool runs in a process group of its own (`sh -c "..."` may fork the
/// real tool as a child). Killing the group with SIGKILL is what an
/// orchestrator killing a pod does; dropping the guard (timeout) does it.
struct GroupKill(Option<u32>);

impl GroupKill {
    fn kill(&mut self) {
        if let Some(pid) = self.0.take().and_then(|p| i32::try_from(p).ok()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

impl Drop for GroupKill {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_in_every_form() {
        let out = redact(
            "url postgres://u:p%40ss%20w@h/db and p@ss w",
            Some("p@ss w"),
        );
        assert!(!out.contains("p@ss"), "{out}");
        assert!(!out.contains("p%40ss"), "{out}");
        assert_eq!(redact("no secret", None), "no secret");
    }
}
