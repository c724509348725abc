//! Running the `rehearse` binary from a test, as users run it.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_rehearse");

/// Runs `rehearse ARGS` (without `DATABASE_URL` from the environment):
/// exit code, stdout, stderr.
pub fn rehearse(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(BIN)
        .args(args)
        .env_remove("DATABASE_URL")
        // Tests neither read nor fill the user's template cache; a test of
        // the cache passes --cache-dir and unsets this.
        .env("REHEARSE_NO_CACHE", "1")
        .output()
        .expect("run rehearse");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Whether local Postgres binaries exist; otherwise a loud skip (a failure
/// under CI).
pub fn local_binaries_or_skip() -> bool {
    if pg_rehearse::provision::PgBinaries::find(None, None).is_ok() {
        return true;
    }
    let _: Option<()> = pg_rehearse::testing::skip("local postgres binaries", &"none found");
    false
}
