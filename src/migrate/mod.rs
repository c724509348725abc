//! Migration sources (the layouts of real tools), the runners that apply
//! them, and the read-only snapshot of what they leave behind.

pub mod runner;
pub mod snapshot;
pub mod source;

pub use runner::{
    ContainerSpec, RunnerError, RunnerKind, application_name, apply_serial, bookkeeping_state,
    serial_application_name,
};
pub use source::{Layout, MigrateError, Migration, MigrationKind, MigrationSet, Statement};
