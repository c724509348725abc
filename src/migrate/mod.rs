//! Migration sources (the layouts of real tools), the runners that apply
//! them, and the read-only snapshot of what they leave behind.

pub mod runner;
pub mod snapshot;
pub mod source;

pub use runner::{
    ContainerSpec, RunnerError, RunnerKind, ToolSetup, application_name, apply_serial,
    apply_serial_in, apply_tool_baseline, bookkeeping_state, run_tool_once,
    serial_application_name, tool_bookkeeping_state,
};
pub use source::{Layout, MigrateError, Migration, MigrationKind, MigrationSet, Statement};
