//! Every exit code `rehearse` returns, in one place.
//!
//! The same condition gives the same code in every command:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | done; every scenario met its expectations (`gc`: nothing failed) |
//! | 1 | a scenario ran and its findings fail its expectations |
//! | 2 | bad input, found before anything starts: usage, a scenario, seeds or migration file (named with file:line), a missing or malformed database url, a bad `sslmode` |
//! | 3 | the environment failed: no backend, a server that did not start or answer, TLS refused by the server, a lost connection, a cleanup that failed |
//! | 130 | SIGINT; what the run created was removed (else a line says to run `rehearse gc`) |
//! | 143 | SIGTERM; likewise |
//!
//! A second signal, or a cleanup that cannot finish within 20 s, exits
//! with 130/143 at once and leaves the rest to `rehearse gc`.

/// The process exit codes of `rehearse`. Documented in the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Every scenario ran and met its expectations.
    Pass,
    /// A scenario ran, and its findings fail its expectations.
    FindingsFail,
    /// Bad input or usage: a scenario file, a flag, a URL (missing or
    /// malformed), in every command.
    BadInput,
    /// The harness could not do its job: no backend, a container or cluster
    /// that did not start, a lost connection.
    Infrastructure,
    /// Interrupted by SIGINT; cleaned up unless a line said otherwise.
    Interrupted,
    /// Terminated by SIGTERM; cleaned up unless a line said otherwise.
    Terminated,
}

impl Exit {
    #[must_use]
    pub const fn code(self) -> u8 {
        match self {
            Exit::Pass => 0,
            Exit::FindingsFail => 1,
            Exit::BadInput => 2,
            Exit::Infrastructure => 3,
            Exit::Interrupted => 130,
            Exit::Terminated => 143,
        }
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        std::process::ExitCode::from(exit.code())
    }
}
