//! Every exit code `rehearse` returns, in one place.

/// The process exit codes of `rehearse`. Documented in the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Every scenario ran and met its expectations.
    Pass,
    /// A scenario ran, and its findings fail its expectations.
    FindingsFail,
    /// Bad input or usage: a scenario file, a flag, a URL.
    BadInput,
    /// The harness could not do its job: no backend, a container or cluster
    /// that did not start, a lost connection.
    Infrastructure,
    /// Interrupted by SIGINT; everything was cleaned up.
    Interrupted,
    /// Terminated by SIGTERM; everything was cleaned up.
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
