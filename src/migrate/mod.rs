//! Migration sources (the layouts of real tools) and the runners that apply them.

pub mod source;

pub use source::{Layout, MigrateError, Migration, MigrationKind, MigrationSet, Statement};
