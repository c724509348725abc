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

use super::{ReplicaCtx, ReplicaEnd, StepError, Strategy, failed};
use crate::migrate::Migration;
use crate::timeline::{EventKind, ExitStatus, SqlState};

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

/// The first `SQLSTATE XXXXX` a tool printed (pgx and golang-migrate print
/// errors this way).
pub(crate) fn sqlstate_in(text: &str) -> Option<SqlState> {
    let at = text.find("SQLSTATE ")?;
    let code: String = text[at + 9..].chars().take(5).collect();
    (code.len() == 5 && code.chars().all(|c| c.is_ascii_alphanumeric()))
        .then(|| SqlState::from_code(&code))
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
        let app = ctx.app_name();
        let mut url = match url::Url::parse(&ctx.conn.url_with_password()) {
            Ok(u) => u,
            Err(e) => {
                let e = StepError {
                    version: None,
                    line: None,
                    sqlstate: None,
                    message: format!("bad database url: {e}"),
                };
                return failed(ctx, &e, None);
            }
        };
        url.query_pairs_mut().append_pair("application_name", &app);
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .env("DATABASE_URL", url.as_str())
            .env("PGAPPNAME", &app)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(dir) = &ctx.workdir {
            cmd.current_dir(dir);
        }
        let child = match cmd.spawn() {
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
        let output = match child.wait_with_output().await {
            Ok(o) => o,
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
        let password = ctx.conn.password();
        let mut all = String::new();
        for (stream, bytes) in [("stdout", &output.stdout), ("stderr", &output.stderr)] {
            let mut text = redact(&String::from_utf8_lossy(bytes), password);
            all.push_str(&text);
            if text.len() > MAX_OUTPUT {
                let cut = (0..=MAX_OUTPUT)
                    .rev()
                    .find(|i| text.is_char_boundary(*i))
                    .unwrap_or(0);
                text.truncate(cut);
            }
            if !text.is_empty() {
                ctx.emit(EventKind::Output {
                    stream: stream.into(),
                    text,
                });
            }
        }
        let code = output.status.code();
        if output.status.success() {
            return ReplicaEnd {
                status: ExitStatus::Success,
                code,
                held: None,
            };
        }
        let last_line = all
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim()
            .to_string();
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

    #[test]
    fn sqlstate_is_found_in_tool_output() {
        assert_eq!(
            sqlstate_in("ERROR: relation exists (SQLSTATE 42P07)"),
            Some(SqlState::DuplicateTable)
        );
        assert_eq!(sqlstate_in("no code"), None);
    }
}
