//! Migration sources (the layouts of real tools) and the runners that apply them.

pub mod source;

pub use source::{Layout, MigrateError, Migration, MigrationKind, MigrationSet, Statement};
pub mod runner;
pub mod snapshot;

pub use runner::{RunnerError, RunnerKind, application_name, apply_serial, bookkeeping_state};
